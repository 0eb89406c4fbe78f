//! Media types: the few the crate acts on by name, and any other kept as written.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The annotation an OCI layout's `index.json` names each image with.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// A media type, e.g. `application/vnd.oci.image.manifest.v1+json`. Compared as text:
/// unknown types (layers, configs, artifacts) pass through unchanged.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaType(Cow<'static, str>);

/// What a manifest media type says about its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image manifest: a config and layers.
    Image,
    /// An index or manifest list: child manifests.
    Index,
}

impl MediaType {
    /// OCI image manifest.
    pub const OCI_MANIFEST: MediaType = Self::named("application/vnd.oci.image.manifest.v1+json");
    /// OCI image index.
    pub const OCI_INDEX: MediaType = Self::named("application/vnd.oci.image.index.v1+json");
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: MediaType =
        Self::named("application/vnd.docker.distribution.manifest.v2+json");
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: MediaType =
        Self::named("application/vnd.docker.distribution.manifest.list.v2+json");
    /// OCI image config.
    pub const OCI_CONFIG: MediaType = Self::named("application/vnd.oci.image.config.v1+json");
    /// Cosign's simple-signing payload.
    pub const COSIGN_SIMPLESIGNING: MediaType =
        Self::named("application/vnd.dev.cosign.simplesigning.v1+json");

    /// The manifest types a registry is asked for, in order of preference.
    pub const ACCEPTED_MANIFESTS: &'static [MediaType] = &[
        Self::OCI_INDEX,
        Self::DOCKER_MANIFEST_LIST,
        Self::OCI_MANIFEST,
        Self::DOCKER_MANIFEST,
    ];

    const fn named(text: &'static str) -> MediaType {
        MediaType(Cow::Borrowed(text))
    }

    /// A media type as written.
    pub fn new(text: impl Into<String>) -> MediaType {
        MediaType(Cow::Owned(text.into()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this names a manifest or an index (OCI or Docker), and which.
    pub fn manifest_kind(&self) -> Option<ManifestKind> {
        if *self == Self::OCI_MANIFEST || *self == Self::DOCKER_MANIFEST {
            Some(ManifestKind::Image)
        } else if *self == Self::OCI_INDEX || *self == Self::DOCKER_MANIFEST_LIST {
            Some(ManifestKind::Index)
        } else {
            None
        }
    }
}

impl From<&str> for MediaType {
    fn from(text: &str) -> MediaType {
        MediaType::new(text)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(MediaType::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_kinds() {
        assert_eq!(
            MediaType::OCI_MANIFEST.manifest_kind(),
            Some(ManifestKind::Image)
        );
        assert_eq!(
            MediaType::from("application/vnd.docker.distribution.manifest.v2+json").manifest_kind(),
            Some(ManifestKind::Image)
        );
        assert_eq!(
            MediaType::OCI_INDEX.manifest_kind(),
            Some(ManifestKind::Index)
        );
        assert_eq!(
            MediaType::DOCKER_MANIFEST_LIST.manifest_kind(),
            Some(ManifestKind::Index)
        );
        assert_eq!(
            MediaType::from("application/vnd.oci.image.layer.v1.tar+gzip").manifest_kind(),
            None
        );
    }

    #[test]
    fn serialises_as_its_text() {
        let json = serde_json::to_string(&MediaType::OCI_CONFIG).unwrap();
        assert_eq!(json, "\"application/vnd.oci.image.config.v1+json\"");
        assert_eq!(
            serde_json::from_str::<MediaType>(&json).unwrap(),
            MediaType::OCI_CONFIG
        );
    }
}
