//! The containerd target: stream every blob into the content store under a
//! lease, with GC labels on manifests, then name each image three ways.
//!
//! Names are set only after all content is committed, so a run killed midway
//! leaves no name pointing at incomplete content; its lease expires on its own
//! and a re-run completes.

use super::images::LoadImage;
use super::{Event, ImageAction, LoadAction, Loaded, UnpackError};
use crate::bundle::BlobStore;
use crate::containerd::{BlobOutcome, Containerd, ImageOutcome, Import, gc_labels};
use crate::oci::Descriptor;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// Imports `images` into containerd at `socket`, named under `address`.
pub(crate) async fn import(
    images: &[LoadImage],
    store: &BlobStore,
    socket: &Path,
    namespace: &str,
    address: &str,
    jobs: usize,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Loaded, UnpackError> {
    let daemon = Containerd::connect(socket, namespace).await?;
    let import = daemon.begin().await?;
    let (blobs, manifests) = write_order(images)?;
    // Only configs and layers count as blobs (as every command counts them); a manifest
    // written still means the images changed.
    let counts = write_batch(&import, blobs, store, jobs, events).await?;
    let mut loaded = Loaded {
        blobs_loaded: counts.written,
        blobs_skipped: counts.present,
        bytes: counts.bytes,
        ..Loaded::default()
    };
    let manifests = write_batch(&import, manifests, store, jobs, events).await?;
    let wrote = counts.written > 0 || manifests.written > 0;
    for image in images {
        let action = name_image(&import, image, address, wrote).await?;
        events(Event::Image(action.clone()));
        loaded.images.push(action);
    }
    import.finish().await?;
    Ok(loaded)
}

/// A blob to write with the labels it must carry.
type Labelled = (Descriptor, BTreeMap<String, String>);

/// Layers and configs first, then manifests (children before the index that names them),
/// each once; manifests carry their GC labels.
fn write_order(images: &[LoadImage]) -> Result<(Vec<Labelled>, Vec<Labelled>), UnpackError> {
    let mut seen = BTreeSet::new();
    let mut blobs = Vec::new();
    for image in images {
        for blob in &image.blobs {
            if seen.insert(blob.digest) {
                blobs.push((blob.clone(), BTreeMap::new()));
            }
        }
    }
    let mut manifests = Vec::new();
    for image in images {
        for manifest in image.manifests.iter().rev() {
            let descriptor = &manifest.descriptor;
            if seen.insert(descriptor.digest) {
                let labels =
                    gc_labels(&descriptor.digest, &descriptor.media_type, &manifest.bytes)?;
                manifests.push((descriptor.clone(), labels));
            }
        }
    }
    Ok((blobs, manifests))
}

/// What one batch of writes did.
#[derive(Default)]
struct Counts {
    written: usize,
    present: usize,
    bytes: u64,
}

/// Writes `batch`, `jobs` blobs at a time, skipping those containerd has.
async fn write_batch(
    import: &Import,
    batch: Vec<Labelled>,
    store: &BlobStore,
    jobs: usize,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Counts, UnpackError> {
    let written = AtomicUsize::new(0);
    let present = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    futures::stream::iter(batch)
        .map(|(blob, labels)| {
            let (written, present, bytes) = (&written, &present, &bytes);
            async move {
                let file = store.open_blob(&blob.digest).map_err(|source| {
                    crate::files::FileError::Read {
                        path: crate::bundle::blob_entry_name(&blob.digest).into(),
                        source,
                    }
                })?;
                let reader = Progress {
                    inner: tokio::fs::File::from_std(file.into_inner()),
                    events,
                };
                let reader = tokio::io::AsyncReadExt::take(reader, blob.size);
                match import
                    .write_blob(&blob.digest, blob.size, &labels, reader)
                    .await?
                {
                    BlobOutcome::Written => {
                        written.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(blob.size, Ordering::Relaxed);
                    }
                    BlobOutcome::Present => {
                        present.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<_, UnpackError>(())
            }
        })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(Counts {
        written: written.into_inner(),
        present: present.into_inner(),
        bytes: bytes.into_inner(),
    })
}

/// Points the three names of `image` at its manifest, once all its content is in.
async fn name_image(
    import: &Import,
    image: &LoadImage,
    address: &str,
    blobs_written: bool,
) -> Result<ImageAction, UnpackError> {
    let names = image.names(address)?;
    let mut changed = false;
    for name in names.all() {
        let outcome = import
            .set_image(&name, &image.top, &BTreeMap::new())
            .await?;
        changed |= outcome != ImageOutcome::Unchanged;
    }
    Ok(ImageAction {
        canonical: image.canonical.to_string(),
        target_references: names.all(),
        digest: image.top.digest,
        signature: None,
        action: if changed || blobs_written {
            LoadAction::Imported
        } else {
            LoadAction::Skipped
        },
    })
}

/// Counts bytes read, for progress.
struct Progress<'a, R> {
    inner: R,
    events: &'a (dyn Fn(Event) + Sync),
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Progress<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            (self.events)(Event::Progress { bytes: read as u64 });
        }
        poll
    }
}
