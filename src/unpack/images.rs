//! The bundle's images as targets load them: manifests with their bytes,
//! blobs by descriptor, and the names each image gets at the target.

use super::UnpackError;
use crate::bundle::BlobStore;
use crate::bundle::BundleManifest;
use crate::oci::{Content, Descriptor, Digest, Manifest};
use crate::reference::Reference;
use crate::values::Role;
use std::collections::{BTreeMap, HashMap};

/// Manifests larger than this are not manifests.
const MANIFEST_LIMIT: u64 = 4 << 20;

/// One image, ready to load.
#[derive(Debug, Clone)]
pub struct LoadImage {
    /// Canonical reference.
    pub canonical: Reference,
    /// What it is for.
    pub role: Role,
    /// The manifest `index.json` names.
    pub top: Descriptor,
    /// Every manifest, `top` first, then the manifests it reaches. Empty in a
    /// dry run of a compressed bundle (not read).
    pub manifests: Vec<Content>,
    /// Configs and layers, each once.
    pub blobs: Vec<Descriptor>,
}

/// The names an image gets under a registry address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNames {
    /// `ADDR/path:tag`, when the canonical reference has a tag.
    pub tag: Option<String>,
    /// `ADDR/path@digest`.
    pub digest: String,
    /// `ADDR/path:tag@digest`, what the rendered values name (CRI looks it up
    /// as `ADDR/path@digest`).
    pub tag_and_digest: Option<String>,
    /// `ADDR/path`.
    pub repository: String,
}

impl ImageNames {
    /// Every name, tag first.
    pub fn all(&self) -> Vec<String> {
        self.tag
            .iter()
            .chain(self.tag_and_digest.iter())
            .chain(std::iter::once(&self.digest))
            .cloned()
            .collect()
    }
}

impl LoadImage {
    /// The names under `address`: `render --mode airgap`'s mapping.
    pub fn names(&self, address: &str) -> Result<ImageNames, UnpackError> {
        let moved = self
            .canonical
            .without_tag()
            .airgap(address)
            .map_err(|source| UnpackError::Address {
                address: address.to_string(),
                source,
            })?;
        let repository = moved.name();
        let tag = self.canonical.tag();
        Ok(ImageNames {
            tag: tag.map(|t| format!("{repository}:{t}")),
            digest: format!("{repository}@{}", self.top.digest),
            tag_and_digest: tag.map(|t| format!("{repository}:{t}@{}", self.top.digest)),
            repository,
        })
    }
}

/// The images' config and layer blobs, each once, with their sizes: the blobs every
/// command counts ([`BundleManifest::content_blobs`]).
pub fn content_blobs(images: &[LoadImage]) -> BTreeMap<Digest, u64> {
    images
        .iter()
        .flat_map(|image| &image.blobs)
        .map(|blob| (blob.digest, blob.size))
        .collect()
}

fn content_error(bundle: &str, reason: String) -> UnpackError {
    UnpackError::Content {
        bundle: bundle.to_string(),
        reason,
    }
}

/// Images without their bytes: names and digests only (dry runs).
pub fn describe_images(bundle: &BundleManifest, name: &str) -> Result<Vec<LoadImage>, UnpackError> {
    bundle
        .images
        .iter()
        .map(|image| {
            let record = &image.image;
            Ok(LoadImage {
                canonical: Reference::parse(&record.canonical_reference)
                    .map_err(|e| content_error(name, e.to_string()))?,
                role: record.role.clone(),
                top: Descriptor::new(record.media_type.clone(), record.digest, record.size),
                manifests: vec![],
                blobs: vec![],
            })
        })
        .collect()
}

/// Images with their manifests read from the store and their blobs listed.
pub fn load_images(
    bundle: &BundleManifest,
    verified: &HashMap<Digest, Vec<u8>>,
    store: &BlobStore,
    name: &str,
) -> Result<Vec<LoadImage>, UnpackError> {
    let mut images = describe_images(bundle, name)?;
    for (image, bundled) in images.iter_mut().zip(&bundle.images) {
        let mut blobs: Vec<Descriptor> = Vec::new();
        for manifest in &bundled.manifests {
            let bytes = match verified.get(&manifest.digest) {
                Some(bytes) => bytes.clone(),
                None => store
                    .read_small(&manifest.digest, MANIFEST_LIMIT)
                    .map_err(|e| content_error(name, e.to_string()))?,
            };
            let (_, parsed) = Manifest::parse(&bytes)
                .map_err(|e| content_error(name, format!("manifest {}: {e}", manifest.digest)))?;
            for blob in parsed.children() {
                if !blobs.iter().any(|b| b.digest == blob.digest) {
                    blobs.push(Descriptor::new(
                        blob.media_type.clone(),
                        blob.digest,
                        blob.size,
                    ));
                }
            }
            image.manifests.push(Content {
                descriptor: manifest.clone(),
                bytes: bytes.into(),
            });
        }
        // Manifests of an index are listed as manifests, not blobs.
        blobs.retain(|b| {
            !image
                .manifests
                .iter()
                .any(|m| m.descriptor.digest == b.digest)
        });
        for blob in &blobs {
            if store.size(&blob.digest) != Some(blob.size) {
                return Err(content_error(
                    name,
                    format!(
                        "blob {} of {} is missing or has another size",
                        blob.digest, image.canonical
                    ),
                ));
            }
        }
        image.blobs = blobs;
    }
    Ok(images)
}
