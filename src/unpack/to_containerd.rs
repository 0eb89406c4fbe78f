//! The containerd target: stream every blob into the content store under a
//! lease, with GC labels on manifests, then name each image three ways.
//!
//! Names are set only after all content is committed, so a run killed midway
//! leaves no name pointing at incomplete content; its lease expires on its own
//! and a re-run completes.

use super::images::LoadImage;
use super::{Event, ImageAction, LoadAction, Loaded, UnpackError};
use crate::bundle::BlobStore;
use crate::containerd::{BlobOutcome, Containerd, ImageOutcome, gc_labels};
use crate::oci::Descriptor;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
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

    // Layers and configs first, then manifests (children before the index that
    // names them), each once.
    let mut seen = BTreeSet::new();
    let mut blobs: Vec<(Descriptor, BTreeMap<String, String>)> = Vec::new();
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
    let written = AtomicUsize::new(0);
    let manifests_written = AtomicUsize::new(0);
    let present = AtomicUsize::new(0);
    let bytes = std::sync::atomic::AtomicU64::new(0);
    // Only configs and layers are counted as blobs (as every command counts them).
    for (batch, counted) in [(blobs, true), (manifests, false)] {
        futures::stream::iter(batch)
            .map(|(blob, labels)| {
                let (import, written, present, bytes) = (&import, &written, &present, &bytes);
                let manifests_written = &manifests_written;
                async move {
                    let digest = blob.digest;
                    let file = store.open_blob(&digest).map_err(|source| {
                        crate::files::FileError::Read {
                            path: crate::bundle::blob_entry_name(&digest).into(),
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
                            if counted {
                                written.fetch_add(1, Ordering::Relaxed);
                                bytes.fetch_add(blob.size, Ordering::Relaxed);
                            } else {
                                manifests_written.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        BlobOutcome::Present if counted => {
                            present.fetch_add(1, Ordering::Relaxed);
                        }
                        BlobOutcome::Present => {}
                    }
                    Ok::<_, UnpackError>(())
                }
            })
            .buffer_unordered(jobs.max(1))
            .try_collect::<Vec<()>>()
            .await?;
    }

    let mut loaded = Loaded {
        blobs_loaded: written.load(Ordering::Relaxed),
        blobs_skipped: present.load(Ordering::Relaxed),
        bytes: bytes.load(Ordering::Relaxed),
        ..Loaded::default()
    };
    for image in images {
        let names = image.names(address)?;
        let target = &image.top;
        let mut changed = false;
        for name in names.all() {
            let outcome = import.set_image(&name, target, &BTreeMap::new()).await?;
            changed |= outcome != ImageOutcome::Unchanged;
        }
        let action = ImageAction {
            canonical: image.canonical.to_string(),
            target_references: names.all(),
            digest: image.top.digest,
            signature: None,
            action: if changed
                || loaded.blobs_loaded > 0
                || manifests_written.load(Ordering::Relaxed) > 0
            {
                LoadAction::Imported
            } else {
                LoadAction::Skipped
            },
        };
        events(Event::Image(action.clone()));
        loaded.images.push(action);
    }
    import.finish().await?;
    Ok(loaded)
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
