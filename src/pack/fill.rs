//! Filling the laid-out bundle: every pending blob slot, in archive order,
//! `jobs` at a time: from the spool when the plugin checks fetched the blob already,
//! from the cache when it holds the blob (checked by hashing as it is copied), else
//! straight from the registry socket into the slot.

use super::spool::Spool;
use super::{Event, PackError, PackRequest, Resolved};
use crate::bundle::{BlobSlot, BundleWriter, SlotCheck};
use crate::files::{self, FileError};
use crate::oci::{Descriptor, Digest};
use crate::registry::{BlobSink, Registry, ResolvedImage};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The bundle's blobs ([`crate::bundle::BundleManifest::content_blobs`]: configs and
/// layers, each once) and where they came from.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Every config and layer blob of the images.
    pub(super) blobs: usize,
    /// Those copied from the cache; every other one came from a registry (configs read
    /// while resolving, and layers the plugin checks read, included).
    pub(super) cached: usize,
    /// Bytes of all of them.
    pub(super) bytes: u64,
}

/// Fills every pending slot, in archive order, `jobs` at a time.
pub(super) async fn fill_blobs(
    writer: &BundleWriter,
    registry: &Registry,
    resolved: &[Resolved],
    spool: Option<&Spool>,
    request: &PackRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Counts, PackError> {
    // Which image to fetch each blob through, and how many blobs each image awaits.
    let mut owner: HashMap<Digest, (usize, Descriptor)> = HashMap::new();
    let mut users: HashMap<Digest, Vec<usize>> = HashMap::new();
    for (i, r) in resolved.iter().enumerate() {
        for blob in &r.image.blobs {
            let digest = blob.digest;
            owner.entry(digest).or_insert_with(|| (i, blob.clone()));
            let list = users.entry(digest).or_default();
            if !list.contains(&i) {
                list.push(i);
            }
        }
    }
    let pending = writer.pending();
    let mut remaining: Vec<usize> = vec![0; resolved.len()];
    for blob in &pending {
        for &i in users.get(&blob.digest).into_iter().flatten() {
            remaining[i] += 1;
        }
    }
    for (i, r) in resolved.iter().enumerate() {
        if remaining[i] == 0 {
            events(Event::ImagePulled {
                reference: r.image.canonical.to_string(),
            });
        }
    }
    let cache = request.cache_dir.as_deref();
    let cached = pending
        .iter()
        .filter(|b| cache.is_some_and(|dir| cache_path(dir, &b.digest).is_file()))
        .count();
    let mut blobs: HashMap<Digest, u64> = HashMap::new();
    for r in resolved {
        blobs.extend(r.image.blobs.iter().map(|b| (b.digest, b.size)));
    }
    let bytes: u64 = blobs.values().sum();
    let pending_bytes: u64 = pending.iter().map(|b| b.size).sum();
    events(Event::Planned {
        images: resolved.len(),
        blobs: blobs.len(),
        bytes,
        written: bytes.saturating_sub(pending_bytes),
        cached,
    });
    let remaining = Mutex::new(remaining);
    let counts = Mutex::new(Counts {
        blobs: blobs.len(),
        cached: 0,
        bytes,
    });
    let owner = &owner;
    futures::stream::iter(pending)
        .map(|blob| {
            let remaining = &remaining;
            let counts = &counts;
            let users = &users;
            async move {
                let (i, desc) =
                    owner
                        .get(&blob.digest)
                        .cloned()
                        .ok_or(crate::bundle::WriteError::NoSlot {
                            digest: blob.digest,
                        })?;
                let from_cache = fill_one(
                    writer,
                    registry,
                    &resolved[i].image,
                    &desc,
                    Sources { spool, cache },
                    events,
                )
                .await?;
                if from_cache {
                    counts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .cached += 1;
                }
                let mut remaining = remaining
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for &user in users.get(&blob.digest).into_iter().flatten() {
                    remaining[user] -= 1;
                    if remaining[user] == 0 {
                        events(Event::ImagePulled {
                            reference: resolved[user].image.canonical.to_string(),
                        });
                    }
                }
                Ok::<_, PackError>(())
            }
        })
        .buffer_unordered(request.jobs)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(counts
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

pub(super) fn cache_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("sha256").join(digest.hex())
}

/// Where a blob may already be on this machine.
#[derive(Clone, Copy)]
struct Sources<'a> {
    spool: Option<&'a Spool>,
    cache: Option<&'a Path>,
}

/// Fills one slot: from the spool (verified when it was fetched), from the cache when it
/// holds the blob (checked by hashing as it is copied, on a blocking thread: hashing a
/// big layer would stall every download in flight), else from the registry. Returns
/// whether the cache served it.
async fn fill_one(
    writer: &BundleWriter,
    registry: &Registry,
    image: &ResolvedImage,
    blob: &Descriptor,
    sources: Sources<'_>,
    events: &(dyn Fn(Event) + Sync),
) -> Result<bool, PackError> {
    let digest = blob.digest;
    let cache = sources.cache;
    if let Some((file, offset)) = sources.spool.and_then(|spool| spool.filled(&digest)) {
        let mut slot = writer.slot(&digest, SlotCheck::SizeOnly)?;
        slot.copy_from(file, offset)
            .map_err(|source| FileError::Write {
                path: writer.target().to_path_buf(),
                source,
            })?;
        slot.finish()?;
        events(Event::BlobProgress { bytes: blob.size });
        return Ok(false);
    }
    if let Some(dir) = cache {
        let path = cache_path(dir, &digest);
        if path.is_file() {
            let slot = writer.slot(&digest, SlotCheck::Sha256)?;
            let copied = crate::task::blocking({
                let path = path.clone();
                move || copy_file(&path, slot)
            })
            .await;
            match copied {
                Ok(()) => {
                    events(Event::BlobProgress { bytes: blob.size });
                    return Ok(true);
                }
                // A damaged cache entry is dropped and fetched again.
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    let slot = SlotSink {
        writer,
        digest,
        slot: Some(writer.slot(&digest, SlotCheck::SizeOnly)?),
    };
    let mut sink = Fetching::new(slot, &digest, cache, events)?;
    registry.fetch_blob(image, blob, &mut sink).await?;
    sink.finish()?.finish()?;
    Ok(false)
}

/// Copies a cached blob into its slot; the slot checks size and digest on `finish`.
fn copy_file(path: &Path, mut slot: BlobSlot) -> std::io::Result<()> {
    slot.copy_from(&std::fs::File::open(path)?, 0)?;
    slot.finish()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Receives a blob from the registry into its slot. A retry takes the slot again from
/// its start.
struct SlotSink<'a> {
    writer: &'a BundleWriter,
    digest: Digest,
    slot: Option<BlobSlot>,
}

impl SlotSink<'_> {
    fn finish(mut self) -> Result<(), PackError> {
        if let Some(slot) = self.slot.take() {
            slot.finish()?;
        }
        Ok(())
    }
}

impl BlobSink for SlotSink<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.slot
            .as_mut()
            .ok_or_else(|| std::io::Error::other("blob slot already finished"))?
            .write_all(bytes)
    }

    fn reset(&mut self) -> std::io::Result<()> {
        // Give the slot back and take it again: the retry overwrites from the start.
        self.slot = None;
        self.slot = Some(
            self.writer
                .slot(&self.digest, SlotCheck::SizeOnly)
                .map_err(std::io::Error::other)?,
        );
        Ok(())
    }
}

/// A blob on its way from the registry: into `inner`, into the cache too when one is
/// used, with progress reported.
pub(super) struct Fetching<'a, S> {
    inner: S,
    cache: Option<(PathBuf, tempfile::NamedTempFile)>,
    events: &'a (dyn Fn(Event) + Sync),
}

impl<'a, S: BlobSink> Fetching<'a, S> {
    pub(super) fn new(
        inner: S,
        digest: &Digest,
        cache: Option<&Path>,
        events: &'a (dyn Fn(Event) + Sync),
    ) -> Result<Self, PackError> {
        let cache = match cache {
            None => None,
            Some(dir) => {
                let target = cache_path(dir, digest);
                let parent = target.parent().unwrap_or(dir).to_path_buf();
                let io = |source| FileError::Write {
                    path: parent.clone(),
                    source,
                };
                std::fs::create_dir_all(&parent).map_err(io)?;
                let temp = files::temp_file_in(&parent, &digest.hex(), 0o666).map_err(io)?;
                Some((target, temp))
            }
        };
        Ok(Fetching {
            inner,
            cache,
            events,
        })
    }

    /// Keeps the blob in the cache (the registry checked its digest before `fetch_blob`
    /// returned) and gives the inner sink back.
    pub(super) fn finish(self) -> Result<S, PackError> {
        if let Some((target, temp)) = self.cache {
            temp.persist(&target).map_err(|e| FileError::Write {
                path: target,
                source: e.error,
            })?;
        }
        Ok(self.inner)
    }
}

impl<S: BlobSink> BlobSink for Fetching<'_, S> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)?;
        if let Some((_, temp)) = &mut self.cache {
            temp.write_all(bytes)?;
        }
        (self.events)(Event::BlobProgress {
            bytes: bytes.len() as u64,
        });
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.inner.reset()?;
        if let Some((_, temp)) = &mut self.cache {
            temp.as_file().set_len(0)?;
            std::io::Seek::rewind(temp)?;
        }
        Ok(())
    }
}
