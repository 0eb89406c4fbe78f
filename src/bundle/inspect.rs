//! `inspect`: what a bundle holds, at a glance, from its leading entries only.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::layout::Compression;
use super::manifest::{Tool, VeleroInfo};
use super::problem::Problem;
use super::reader::{BundleReader, ReadError};
use crate::oci::Digest;
use crate::sign::SignatureStatus as Signature;
use crate::values::Role as ImageRole;

/// A summary of a bundle, for people and for `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleSummary {
    /// The bundle file.
    pub path: PathBuf,
    /// Bundle format version.
    pub format_version: u32,
    /// The program that wrote it.
    pub tool: Tool,
    /// The Velero release it carries.
    pub velero: VeleroInfo,
    /// Platforms the images are pinned to.
    pub platforms: Vec<String>,
    /// Build time, when the build recorded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_time: Option<String>,
    /// How the archive is stored.
    pub compression: Compression,
    /// Size of the bundle file.
    pub file_size: u64,
    /// Sum of the sizes of the files listed in `bundle.json`.
    pub content_size: u64,
    /// The images' config and layer blobs, as every command counts them.
    pub blobs: super::BlobCount,
    /// The images.
    pub images: Vec<ImageSummary>,
    /// Problems seen in the leading entries (the rest is not read: use `verify`).
    pub problems: Vec<Problem>,
}

/// One image of a bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// Why the bundle carries it.
    pub role: ImageRole,
    /// Its canonical reference.
    pub canonical_reference: String,
    /// The digest `index.json` lists.
    pub digest: Digest,
    /// Media type of that manifest.
    pub media_type: crate::oci::MediaType,
    /// Bytes of all its blobs.
    pub size: u64,
    /// Signature status.
    pub signature: Signature,
}

/// Summarises a bundle from its leading entries, without reading the blobs.
pub fn inspect(path: &Path) -> Result<BundleSummary, ReadError> {
    let reader = BundleReader::open(path)?;
    let bundle = reader.bundle();
    Ok(BundleSummary {
        path: path.to_owned(),
        format_version: bundle.format_version,
        tool: bundle.tool.clone(),
        velero: bundle.velero.clone(),
        platforms: bundle.platforms.clone(),
        build_time: bundle.build_time.clone(),
        compression: reader.compression(),
        file_size: reader.file_size(),
        content_size: bundle.content_size(),
        blobs: bundle.content_blobs(),
        images: bundle
            .images
            .iter()
            .map(|bundled| ImageSummary {
                role: bundled.image.role.clone(),
                canonical_reference: bundled.image.canonical_reference.clone(),
                digest: bundled.image.digest,
                media_type: bundled.image.media_type.clone(),
                size: bundled.total_size,
                signature: bundled.image.signature.clone(),
            })
            .collect(),
        problems: reader.problems().to_vec(),
    })
}
