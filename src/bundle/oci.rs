//! The parts of OCI and Docker manifest JSON a bundle reads and writes: descriptors,
//! image indexes (our `index.json` and index blobs) and image manifests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::manifest::BundledImage;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The annotation `index.json` names each image with.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// What a media type says about a blob's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestKind {
    /// An image manifest: a config and layers.
    Image,
    /// An index or manifest list: child manifests.
    Index,
}

impl ManifestKind {
    /// The kind of manifest a media type names, or `None` for configs, layers and the rest.
    pub(crate) fn of(media_type: &str) -> Option<Self> {
        match media_type {
            OCI_MANIFEST | DOCKER_MANIFEST => Some(Self::Image),
            OCI_INDEX | DOCKER_MANIFEST_LIST => Some(Self::Index),
            _ => None,
        }
    }
}

/// A content descriptor as found in manifests and indexes. The digest stays text: a
/// manifest may name an algorithm the bundle does not store, and that is reported, not
/// a parse failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OciDescriptor {
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

/// An image index, as much of it as closure and `index.json` checks need.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OciIndex {
    pub(crate) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    pub(crate) manifests: Vec<OciDescriptor>,
}

/// An image manifest, as much of it as the closure check needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OciManifest {
    pub(crate) config: OciDescriptor,
    #[serde(default)]
    pub(crate) layers: Vec<OciDescriptor>,
}

/// The bytes of `index.json` for these images: each listed once, in `bundle.json` order,
/// named by its canonical reference. Compact JSON, so equal inputs give equal bytes.
pub(crate) fn index_json(images: &[BundledImage]) -> Vec<u8> {
    let index = OciIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_owned()),
        manifests: images.iter().map(index_entry).collect(),
    };
    // Serialising plain strings and numbers into a Vec cannot fail.
    serde_json::to_vec(&index).unwrap_or_default()
}

/// The `index.json` entry `bundle.json` implies for one image.
pub(crate) fn index_entry(bundled: &BundledImage) -> OciDescriptor {
    let image = &bundled.image;
    OciDescriptor {
        media_type: image.media_type.clone(),
        digest: image.digest.to_string(),
        size: image.size,
        annotations: BTreeMap::from([(
            REF_NAME_ANNOTATION.to_owned(),
            image.canonical_reference.clone(),
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_kinds() {
        assert_eq!(ManifestKind::of(OCI_MANIFEST), Some(ManifestKind::Image));
        assert_eq!(ManifestKind::of(DOCKER_MANIFEST), Some(ManifestKind::Image));
        assert_eq!(ManifestKind::of(OCI_INDEX), Some(ManifestKind::Index));
        assert_eq!(
            ManifestKind::of(DOCKER_MANIFEST_LIST),
            Some(ManifestKind::Index)
        );
        assert_eq!(
            ManifestKind::of("application/vnd.oci.image.layer.v1.tar+gzip"),
            None
        );
    }

    #[test]
    fn manifest_parses_docker_and_oci() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7,"digest":"sha256:00"},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":9,"digest":"sha256:11"}]}"#;
        let parsed: OciManifest = serde_json::from_slice(docker).unwrap();
        assert_eq!(parsed.layers[0].size, 9);
        let oci_without_type =
            br#"{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"sha256:00"}}"#;
        let parsed: OciManifest = serde_json::from_slice(oci_without_type).unwrap();
        assert!(parsed.layers.is_empty());
    }
}
