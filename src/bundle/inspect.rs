//! `inspect`: what a bundle holds, at a glance, from its leading entries only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::layout::Compression;
use super::manifest::{Tool, VeleroInfo};
use super::problem::Problem;
use super::reader::{BundleReader, ReadError};
use crate::oci::{Digest, MediaType};
use crate::plugin::PluginReport;
use crate::sign::SignatureStatus as Signature;
use crate::values::Role as ImageRole;

/// A summary of a bundle, for people and for `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleSummary {
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
    /// `sbom.cdx.json`, for `inspect --sbom`; `None` in a format 1 bundle.
    #[serde(skip)]
    pub sbom_json: Option<Vec<u8>>,
}

/// One image of a bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// Why the bundle carries it.
    pub role: ImageRole,
    pub canonical_reference: String,
    /// The digest `index.json` lists.
    pub digest: Digest,
    /// Media type of that manifest.
    pub media_type: crate::oci::MediaType,
    /// Bytes of all its blobs.
    pub size: u64,
    /// Signature status.
    pub signature: Signature,
    /// For a plugin image, the plugin checks' report of each platform manifest.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub plugin: BTreeMap<Digest, PluginReport>,
    /// The tool that reads this image straight from the bundle: skopeo for OCI-typed
    /// images, containerd's `ctr` for Docker-typed ones (skopeo 1.9 cannot look those up by
    /// name in an OCI layout: `no descriptor found for reference`).
    pub read_with: Reader,
    /// A shell command that reads the image from the bundle file as given: `skopeo inspect
    /// oci-archive:BUNDLE:REF`, or a `ctr images import` of the bundle (every image of it,
    /// this one named REF; decompressed through a pipe, as ctr reads only a plain tar).
    pub read_command: String,
}

/// A tool that reads images from a bundle without velero-airgap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reader {
    /// `skopeo inspect oci-archive:…` (and `skopeo copy`): OCI-typed images.
    Skopeo,
    /// `ctr images import`: every image, OCI- or Docker-typed.
    Ctr,
}

/// Whether skopeo 1.9's OCI-layout reader finds an `index.json` entry of this type by name.
pub fn skopeo_reads(media_type: &MediaType) -> bool {
    *media_type == MediaType::OCI_MANIFEST || *media_type == MediaType::OCI_INDEX
}

/// The reader of an image of `media_type` and the command that reads it (see
/// [`ImageSummary::read_command`]).
pub fn read_command(
    bundle: &Path,
    compression: Compression,
    reference: &str,
    media_type: &MediaType,
) -> (Reader, String) {
    let file = shell_word(&bundle.to_string_lossy());
    if skopeo_reads(media_type) {
        let target = shell_word(&format!("oci-archive:{}:{reference}", bundle.display()));
        return (Reader::Skopeo, format!("skopeo inspect {target}"));
    }
    let command = match compression {
        Compression::None => format!("ctr images import --no-unpack {file}"),
        Compression::Zstd => format!("zstd -dc {file} | ctr images import --no-unpack -"),
        Compression::Gzip => format!("gzip -dc {file} | ctr images import --no-unpack -"),
    };
    (Reader::Ctr, command)
}

/// `text` as one shell word: as is when it is made of safe characters, else single-quoted.
fn shell_word(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
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
            .map(|bundled| {
                let image = &bundled.image;
                let (read_with, read_command) = read_command(
                    path,
                    reader.compression(),
                    &image.canonical_reference,
                    &image.media_type,
                );
                ImageSummary {
                    role: image.role.clone(),
                    canonical_reference: image.canonical_reference.clone(),
                    digest: image.digest,
                    media_type: image.media_type.clone(),
                    size: bundled.total_size,
                    signature: image.signature.clone(),
                    read_with,
                    read_command,
                    plugin: image.plugin.clone(),
                }
            })
            .collect(),
        problems: reader.problems().to_vec(),
        sbom_json: reader.sbom_json().map(<[u8]>::to_vec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_images_are_read_with_skopeo_docker_images_with_ctr() {
        let bundle = Path::new("/srv/bundles/velero bundle.tar.zst");
        let reference = "registry.example.com/acme/plugin:1.0";
        for media_type in [MediaType::OCI_MANIFEST, MediaType::OCI_INDEX] {
            assert_eq!(
                read_command(bundle, Compression::Zstd, reference, &media_type),
                (
                    Reader::Skopeo,
                    "skopeo inspect 'oci-archive:/srv/bundles/velero bundle.tar.zst:registry.example.com/acme/plugin:1.0'".to_string()
                )
            );
        }
        for media_type in [MediaType::DOCKER_MANIFEST, MediaType::DOCKER_MANIFEST_LIST] {
            let command =
                |compression| read_command(Path::new("b.tar"), compression, reference, &media_type);
            assert_eq!(
                command(Compression::None),
                (
                    Reader::Ctr,
                    "ctr images import --no-unpack b.tar".to_string()
                )
            );
            assert_eq!(
                command(Compression::Gzip).1,
                "gzip -dc b.tar | ctr images import --no-unpack -"
            );
        }
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
