//! The registry target: push every image to `ADDR/<repository path>`, blobs
//! before manifests, skipping what the registry has.

use super::images::LoadImage;
use super::{Event, ImageAction, LoadAction, Loaded, UnpackError};
use crate::bundle::BlobStore;
use crate::oci::Descriptor;
use crate::oci::Digest;
use crate::registry::{
    BasicCredentials, PushAction, PushEvent, PushImage, Pusher, RegistryOptions,
};
use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, PoisonError};

/// Pushes `images` to the registry at `address`.
pub(crate) async fn push(
    images: &[LoadImage],
    store: &BlobStore,
    address: &str,
    options: &RegistryOptions,
    credentials: Option<BasicCredentials>,
    jobs: usize,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Loaded, UnpackError> {
    let pusher = Pusher::new(options.clone(), credentials)?;
    let mut plan = Vec::new();
    let mut names = Vec::new();
    for image in images {
        let image_names = image.names(address)?;
        let (top, children) =
            image
                .manifests
                .split_first()
                .ok_or_else(|| UnpackError::Content {
                    bundle: image.canonical.to_string(),
                    reason: "image has no manifest".into(),
                })?;
        plan.push(PushImage {
            repository: image_names.repository.clone(),
            tag: image.canonical.tag().map(str::to_string),
            top: top.clone(),
            children: children.to_vec(),
            blobs: image.blobs.clone(),
        });
        names.push(image_names);
    }
    let source = |blob: &Descriptor| -> io::Result<io::Take<std::fs::File>> {
        store.open_blob(&blob.digest)
    };
    // The pusher counts a blob once per repository; a blob is counted once here, by what
    // happened to it anywhere: uploaded, else mounted, else already there.
    let outcomes: Mutex<HashMap<Digest, PushAction>> = Mutex::new(HashMap::new());
    let on_event = |event: PushEvent| match event {
        PushEvent::BlobProgress { bytes } => events(Event::Progress { bytes }),
        PushEvent::Blob { blob, action, .. } => {
            let mut outcomes = outcomes.lock().unwrap_or_else(PoisonError::into_inner);
            let known = outcomes.entry(blob.digest).or_insert(action);
            if rank(action) > rank(*known) {
                *known = action;
            }
        }
        PushEvent::Image(_) => {}
    };
    let report = pusher.push_images(&plan, &source, jobs, &on_event).await?;
    let outcomes = outcomes
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let count = |wanted: PushAction| outcomes.values().filter(|a| **a == wanted).count();
    let mut loaded = Loaded {
        warnings: pusher.warnings(),
        blobs_loaded: count(PushAction::Pushed),
        blobs_skipped: count(PushAction::Skipped),
        blobs_mounted: count(PushAction::Mounted),
        bytes: report.bytes_pushed,
        ..Loaded::default()
    };
    for ((image, image_names), pushed) in images.iter().zip(&names).zip(&report.images) {
        let mut references = vec![image_names.digest.clone()];
        references.extend(image_names.tag.clone());
        let action = ImageAction {
            canonical: image.canonical.to_string(),
            target_references: references,
            digest: image.top.digest,
            signature: None,
            action: match pushed.action {
                PushAction::Skipped => LoadAction::Skipped,
                PushAction::Pushed | PushAction::Mounted => LoadAction::Pushed,
            },
        };
        events(Event::Image(action.clone()));
        loaded.images.push(action);
    }
    Ok(loaded)
}

/// Which outcome of a blob says most about this run.
fn rank(action: PushAction) -> u8 {
    match action {
        PushAction::Skipped => 0,
        PushAction::Mounted => 1,
        PushAction::Pushed => 2,
    }
}
