//! Pushing whole images: blobs before manifests, an index after its children, each piece
//! only when the registry lacks it, shared blobs uploaded once and mounted elsewhere.
//!
//! Manifests are checked first, one image at a time: an image whose top manifest the
//! registry holds by digest (found through its tag, else by digest), with every child
//! manifest of an index, is there whole. A registry holds its manifests' blobs: the
//! distribution registry (and those built on it) refuses a manifest whose blobs, or an
//! index whose child manifests, are missing from the repository. So the blobs of such an
//! image are not checked one by one, and a re-run that finds everything makes one request
//! per image (plus one per child of an index) instead of one per blob.
//!
//! For the other images, blobs go first, `jobs` at a time, each (repository, digest) pair
//! once. Work on one digest is serialised across repositories, so a layer shared by two
//! images is uploaded once and then mounted (also from a repository of an image already
//! there). Manifests follow per image: children by digest, then the top manifest by tag
//! (which stores it under its digest too), or by digest when there is no tag. A HEAD before
//! every piece makes a re-run after an interruption push only what is missing. An image
//! that is there under another tag's manifest only gets its tag put back.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::{Pusher, check_manifest_type, repository_named};
use crate::oci::{Content, Descriptor, Digest};
use crate::registry::RegistryError;

/// One image to push with [`Pusher::push_images`].
#[derive(Debug, Clone)]
pub struct PushImage {
    /// The target repository, `HOST[:PORT]/PATH`, without tag or digest.
    pub repository: String,
    /// The tag to set on `top`; `None` for an image referred to by digest only.
    pub tag: Option<String>,
    /// The image's manifest or index, pushed last.
    pub top: Content,
    /// The manifests `top` lists (for an index), pushed by digest before it, in this order.
    pub children: Vec<Content>,
    /// Every config and layer blob of the image's manifests.
    pub blobs: Vec<Descriptor>,
}

/// What happened to an image, or to a blob in one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PushAction {
    /// Uploaded (for an image: at least one manifest or the tag was written).
    Pushed,
    /// Mounted from another repository of the same registry (blobs only).
    Mounted,
    /// Already there.
    Skipped,
}

/// The outcome for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedImage {
    pub repository: String,
    /// The tag set, if any.
    pub tag: Option<String>,
    /// The digest of the top manifest.
    pub digest: Digest,
    /// [`PushAction::Pushed`] or [`PushAction::Skipped`].
    pub action: PushAction,
}

/// Counts of a push; [`PushReport::nothing_pushed`] tells a run that changed nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// Per image, in the order given.
    pub images: Vec<PushedImage>,
    /// Blobs uploaded (per repository).
    pub blobs_pushed: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Blobs the registry already had in the target repository: found there, or held by a
    /// manifest the registry holds (then not checked one by one).
    pub blobs_skipped: usize,
    /// Bytes uploaded.
    pub bytes_pushed: u64,
    /// Manifests written (a tag update counts as one).
    pub manifests_pushed: usize,
    /// Manifests already there (for a tagged top manifest: the tag already named it).
    pub manifests_skipped: usize,
}

impl PushReport {
    /// Whether the registry already had everything.
    pub fn nothing_pushed(&self) -> bool {
        self.blobs_pushed == 0 && self.blobs_mounted == 0 && self.manifests_pushed == 0
    }
}

/// Progress of [`Pusher::push_images`], for the caller to draw.
#[derive(Debug, Clone)]
pub enum PushEvent {
    /// Blob bytes handed to the registry since the last event.
    BlobProgress {
        /// How many.
        bytes: u64,
    },
    /// A blob is in a repository.
    Blob {
        repository: String,
        blob: Descriptor,
        /// Pushed, mounted or skipped.
        action: PushAction,
    },
    /// An image's manifests and tag are in place.
    Image(PushedImage),
}

impl Pusher {
    /// Pushes `images`. Images the registry holds whole (top manifest and children, see
    /// the module documentation) are skipped, blobs unchecked, or only get their tag put
    /// back. For the others: blobs first (skipping those present, mounting those already in
    /// another repository of the same registry, uploading the rest from `source`), then
    /// their children by digest and their top manifest by tag (or by digest when it has no
    /// tag), skipping what is already there. Up to `jobs` requests run at once. A second run
    /// pushes nothing ([`PushReport::nothing_pushed`]) and checks no blob.
    pub async fn push_images<S, R>(
        &self,
        images: &[PushImage],
        source: &S,
        jobs: usize,
        events: &(dyn Fn(PushEvent) + Sync),
    ) -> Result<PushReport, RegistryError>
    where
        S: Fn(&Descriptor) -> std::io::Result<R> + Sync,
        R: Read + Send + 'static,
    {
        let jobs = jobs.max(1);
        // Bad input fails here, not after the blobs went up.
        for image in images {
            repository_named(&image.repository)?;
            for manifest in std::iter::once(&image.top).chain(&image.children) {
                check_manifest_type(&image.repository, &manifest.descriptor.media_type)?;
            }
        }
        let holdings: Vec<Holding> = futures::stream::iter(images)
            .map(|image| self.holding(image))
            .buffered(jobs)
            .try_collect()
            .await?;
        // The blobs of images that are there are there; the rest are checked, each once
        // per repository, in image order.
        let mut implied = HashSet::new();
        for (image, holding) in images.iter().zip(&holdings) {
            if *holding != Holding::Missing {
                for blob in &image.blobs {
                    implied.insert((image.repository.as_str(), blob.digest));
                }
            }
        }
        let mut seen = implied.clone();
        let blobs: Vec<(&str, &Descriptor)> = images
            .iter()
            .zip(&holdings)
            .filter(|(_, holding)| **holding == Holding::Missing)
            .flat_map(|(image, _)| image.blobs.iter().map(|b| (image.repository.as_str(), b)))
            .filter(|(repository, blob)| seen.insert((*repository, blob.digest)))
            .collect();
        let known = KnownBlobs::default();
        let report = PushReport {
            blobs_skipped: implied.len(),
            ..PushReport::default()
        };
        for (image, holding) in images.iter().zip(&holdings) {
            if *holding == Holding::Missing {
                continue;
            }
            for blob in &image.blobs {
                // Each pair once, and a mount source for the images still to push.
                if implied.remove(&(image.repository.as_str(), blob.digest)) {
                    known.add(&blob.digest, &image.repository);
                    events(PushEvent::Blob {
                        repository: image.repository.clone(),
                        blob: blob.clone(),
                        action: PushAction::Skipped,
                    });
                }
            }
        }
        let report = Mutex::new(report);
        futures::stream::iter(blobs)
            .map(|(repository, blob)| {
                let (known, report) = (&known, &report);
                async move {
                    let action = self
                        .place_blob(repository, blob, source, known, events)
                        .await?;
                    let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
                    match action {
                        PushAction::Pushed => {
                            report.blobs_pushed += 1;
                            report.bytes_pushed += blob.size;
                        }
                        PushAction::Mounted => report.blobs_mounted += 1,
                        PushAction::Skipped => report.blobs_skipped += 1,
                    }
                    drop(report);
                    events(PushEvent::Blob {
                        repository: repository.to_string(),
                        blob: blob.clone(),
                        action,
                    });
                    Ok::<_, RegistryError>(())
                }
            })
            .buffer_unordered(jobs)
            .try_collect::<Vec<()>>()
            .await?;
        let pushed = futures::stream::iter(images.iter().zip(holdings))
            .map(|(image, holding)| {
                let report = &report;
                async move {
                    let (pushed, written) = match holding {
                        Holding::Missing => self.place_manifests(image).await?,
                        Holding::Whole => (pushed_image(image, 0), 0),
                        Holding::Retag => self.put_tag(image).await?,
                    };
                    let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
                    report.manifests_pushed += written;
                    report.manifests_skipped += image.children.len() + 1 - written;
                    drop(report);
                    events(PushEvent::Image(pushed.clone()));
                    Ok::<_, RegistryError>(pushed)
                }
            })
            .buffered(jobs)
            .try_collect::<Vec<PushedImage>>()
            .await?;
        let mut report = report.into_inner().unwrap_or_else(PoisonError::into_inner);
        report.images = pushed;
        Ok(report)
    }

    /// Whether the registry holds `image` whole: its top manifest (through its tag, else
    /// by digest) and every child manifest by digest.
    async fn holding(&self, image: &PushImage) -> Result<Holding, RegistryError> {
        let top = &image.top.descriptor;
        let tagged = match &image.tag {
            // A tag naming the manifest means the registry holds it by digest.
            Some(tag) => {
                self.manifest_exists(&format!("{}:{tag}", image.repository), &top.digest)
                    .await?
            }
            None => false,
        };
        if !tagged
            && !self
                .manifest_exists(&format!("{}@{}", image.repository, top.digest), &top.digest)
                .await?
        {
            return Ok(Holding::Missing);
        }
        for child in &image.children {
            let digest = &child.descriptor.digest;
            let reference = format!("{}@{digest}", image.repository);
            if !self.manifest_exists(&reference, digest).await? {
                return Ok(Holding::Missing);
            }
        }
        Ok(if tagged || image.tag.is_none() {
            Holding::Whole
        } else {
            Holding::Retag
        })
    }

    /// Points `image`'s tag at its top manifest, which the registry holds.
    async fn put_tag(&self, image: &PushImage) -> Result<(PushedImage, usize), RegistryError> {
        let tag = image.tag.as_deref().unwrap_or_default();
        let top = &image.top.descriptor;
        self.push_manifest(
            &format!("{}:{tag}", image.repository),
            image.top.bytes.clone(),
            &top.media_type,
        )
        .await?;
        Ok((pushed_image(image, 1), 1))
    }

    /// Makes sure `blob` is in `repository`: skipped when there, mounted when a repository
    /// of the same registry is known to hold it, else uploaded.
    async fn place_blob<S, R>(
        &self,
        repository: &str,
        blob: &Descriptor,
        source: &S,
        known: &KnownBlobs,
        events: &(dyn Fn(PushEvent) + Sync),
    ) -> Result<PushAction, RegistryError>
    where
        S: Fn(&Descriptor) -> std::io::Result<R> + Sync,
        R: Read + Send + 'static,
    {
        // One repository at a time per digest: a blob shared by images is uploaded once
        // and mounted everywhere else, never uploaded twice in parallel.
        let holders = known.holders(&blob.digest);
        let mut holders = holders.lock().await;
        let action = if self.blob_exists(repository, &blob.digest).await? {
            PushAction::Skipped
        } else if let Some(from) = holders.first()
            && self.mount_blob(repository, from, &blob.digest).await?
        {
            PushAction::Mounted
        } else {
            let progress = |bytes| events(PushEvent::BlobProgress { bytes });
            self.upload(repository, blob, &mut || source(blob), &progress)
                .await?;
            PushAction::Pushed
        };
        holders.push(repository.to_string());
        Ok(action)
    }

    /// Pushes the manifests of `image` that are missing; returns the outcome and how many
    /// manifests were written.
    async fn place_manifests(
        &self,
        image: &PushImage,
    ) -> Result<(PushedImage, usize), RegistryError> {
        let mut written = 0;
        for child in &image.children {
            let reference = format!("{}@{}", image.repository, child.descriptor.digest);
            if !self
                .manifest_exists(&reference, &child.descriptor.digest)
                .await?
            {
                self.push_manifest(
                    &reference,
                    child.bytes.clone(),
                    &child.descriptor.media_type,
                )
                .await?;
                written += 1;
            }
        }
        let top = &image.top.descriptor;
        // Pushing by tag stores the manifest under its digest as well.
        let reference = match &image.tag {
            Some(tag) => format!("{}:{tag}", image.repository),
            None => format!("{}@{}", image.repository, top.digest),
        };
        if !self.manifest_exists(&reference, &top.digest).await? {
            self.push_manifest(&reference, image.top.bytes.clone(), &top.media_type)
                .await?;
            written += 1;
        }
        Ok((pushed_image(image, written), written))
    }
}

/// What the registry holds of an image before the push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holding {
    /// Not all of its manifests: push what is missing, blobs first.
    Missing,
    /// Every manifest, and the tag (if any) names the top one: nothing to do.
    Whole,
    /// Every manifest, but the tag names another manifest or nothing: put the tag.
    Retag,
}

/// The outcome for `image` after `written` manifest writes.
fn pushed_image(image: &PushImage, written: usize) -> PushedImage {
    PushedImage {
        repository: image.repository.clone(),
        tag: image.tag.clone(),
        digest: image.top.descriptor.digest,
        action: if written > 0 {
            PushAction::Pushed
        } else {
            PushAction::Skipped
        },
    }
}

/// Per digest, the repositories known to hold it; the async lock serialises work on one
/// digest across repositories.
#[derive(Default)]
struct KnownBlobs {
    holders: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<Vec<String>>>>>,
}

impl KnownBlobs {
    /// Records that `repository` holds `digest` (before any work starts).
    fn add(&self, digest: &Digest, repository: &str) {
        let holders = self.holders(digest);
        // Nothing else holds the lock before the blob work starts.
        if let Ok(mut holders) = holders.try_lock() {
            holders.push(repository.to_string());
        }
    }

    fn holders(&self, digest: &Digest) -> Arc<tokio::sync::Mutex<Vec<String>>> {
        self.holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(*digest)
            .or_default()
            .clone()
    }
}
