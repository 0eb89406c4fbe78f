//! The read-only view of a manifest or index: what it points to.
//!
//! Manifests are parsed only to learn their children; their bytes are kept as served so
//! digests never change. Every digest inside is a [`Digest`](super::Digest), so a
//! manifest naming another algorithm, or a malformed digest meant to become a path
//! (`sha256:../../etc/passwd`), is refused here, before anything uses it.

use serde::Deserialize;

use super::{Descriptor, Digest, ManifestKind, MediaType, Platform};

/// What a manifest points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An OCI index or Docker manifest list: its entries, with their platforms.
    Index(Vec<Descriptor>),
    /// An image manifest: its config and layers.
    Image {
        config: Descriptor,
        /// The layer blobs, bottom first.
        layers: Vec<Descriptor>,
    },
}

/// Why manifest bytes are not a manifest this crate can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the manifest shape (a malformed or unsupported digest included).
    #[error("not a valid manifest: {0}")]
    Json(String),
    /// Docker's schema 1.
    #[error(
        "Docker schema 1 manifests are not supported (re-push the image with a current client)"
    )]
    Schema1,
    /// Another schema version.
    #[error("unsupported schemaVersion {0:?}")]
    SchemaVersion(Option<i64>),
    /// A media type that is neither an image manifest nor an index.
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    /// No media type, and the shape says neither index nor manifest.
    #[error("manifest without mediaType and of unknown shape")]
    UnknownShape,
    /// An index without `manifests`.
    #[error("index without a manifests list")]
    NoManifests,
    /// An image manifest without `config`.
    #[error("image manifest without a config")]
    NoConfig,
    /// A descriptor without a media type.
    #[error("descriptor {0} has no mediaType")]
    NoDescriptorMediaType(Digest),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
}

/// A descriptor whose media type may be missing, as early OCI manifests allowed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<MediaType>,
    digest: Digest,
    size: u64,
    platform: Option<Platform>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl RawDescriptor {
    fn into_descriptor(self) -> Result<Descriptor, ManifestError> {
        Ok(Descriptor {
            media_type: self
                .media_type
                .ok_or(ManifestError::NoDescriptorMediaType(self.digest))?,
            digest: self.digest,
            size: self.size,
            platform: self.platform,
            annotations: self.annotations,
        })
    }
}

impl Manifest {
    /// Parses manifest bytes into their media type and what they point to.
    pub fn parse(bytes: &[u8]) -> Result<(MediaType, Manifest), ManifestError> {
        let raw: RawManifest = serde_json::from_slice(bytes)
            .map_err(|error| ManifestError::Json(error.to_string()))?;
        match raw.schema_version {
            Some(2) => {}
            Some(1) => return Err(ManifestError::Schema1),
            other => return Err(ManifestError::SchemaVersion(other)),
        }
        let media_type = match (raw.media_type, &raw.manifests, &raw.config) {
            (Some(text), _, _) => {
                let media_type = MediaType::new(text);
                if media_type.manifest_kind().is_none() {
                    return Err(ManifestError::UnsupportedMediaType(
                        media_type.as_str().to_owned(),
                    ));
                }
                media_type
            }
            // The OCI spec made mediaType optional at first: tell the kinds apart by shape.
            (None, Some(_), None) => MediaType::OCI_INDEX,
            (None, None, Some(_)) => MediaType::OCI_MANIFEST,
            (None, _, _) => return Err(ManifestError::UnknownShape),
        };
        let manifest = match media_type.manifest_kind() {
            Some(ManifestKind::Index) => Manifest::Index(
                raw.manifests
                    .ok_or(ManifestError::NoManifests)?
                    .into_iter()
                    .map(RawDescriptor::into_descriptor)
                    .collect::<Result<_, _>>()?,
            ),
            _ => Manifest::Image {
                config: raw
                    .config
                    .ok_or(ManifestError::NoConfig)?
                    .into_descriptor()?,
                layers: raw
                    .layers
                    .unwrap_or_default()
                    .into_iter()
                    .map(RawDescriptor::into_descriptor)
                    .collect::<Result<_, _>>()?,
            },
        };
        Ok((media_type, manifest))
    }

    /// Every descriptor the manifest names: the index entries, or config then layers.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Manifest::Index(entries) => entries.iter().collect(),
            Manifest::Image { config, layers } => std::iter::once(config).chain(layers).collect(),
        }
    }
}

/// Writes a copy of the index `source` keeping only the entries at `keep` (source order),
/// with every other field as in the source. Serialising through `serde_json::Value` makes
/// the bytes a function of the source bytes alone, so rebuilds give the same digest.
pub fn filter_index(source: &[u8], keep: &[usize]) -> Result<Vec<u8>, ManifestError> {
    let invalid = |error: serde_json::Error| ManifestError::Json(error.to_string());
    let mut index: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(source).map_err(invalid)?;
    let Some(serde_json::Value::Array(entries)) = index.remove("manifests") else {
        return Err(ManifestError::NoManifests);
    };
    let kept: Vec<serde_json::Value> = entries
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, entry)| entry)
        .collect();
    index.insert("manifests".into(), serde_json::Value::Array(kept));
    serde_json::to_vec(&index).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn index_json() -> String {
        let oci_manifest = MediaType::OCI_MANIFEST;
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","annotations":{{"a":"b"}},"manifests":[
              {{"mediaType":"{oci_manifest}","digest":"{}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{oci_manifest}","digest":"{}","size":11,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{oci_manifest}","digest":"{}","size":12,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            MediaType::OCI_INDEX,
            digest('a'),
            digest('b'),
            digest('c')
        )
    }

    #[test]
    fn parses_index_entries_with_platforms() {
        let (media_type, parsed) = Manifest::parse(index_json().as_bytes()).unwrap();
        assert_eq!(media_type, MediaType::OCI_INDEX);
        let Manifest::Index(entries) = parsed else {
            panic!("expected an index");
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[1].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(entries[2].size, 12);
    }

    #[test]
    fn parses_docker_manifest() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}",
                "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":5}},
                "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":7}}]}}"#,
            MediaType::DOCKER_MANIFEST,
            digest('1'),
            digest('2')
        );
        let (media_type, parsed) = Manifest::parse(json.as_bytes()).unwrap();
        assert_eq!(media_type, MediaType::DOCKER_MANIFEST);
        let Manifest::Image { config, layers } = parsed else {
            panic!("expected an image");
        };
        assert_eq!(config.size, 5);
        assert_eq!(layers[0].digest.to_string(), digest('2'));
    }

    #[test]
    fn refuses_schema1_and_bad_digests() {
        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}"#;
        assert_eq!(
            Manifest::parse(schema1.as_bytes()).unwrap_err(),
            ManifestError::Schema1
        );
        for bad in [
            "sha256:../../etc/passwd",
            &digest('A'),
            &digest('a').replace("sha256", "sha512"),
        ] {
            let json = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{bad}","size":1}},"layers":[]}}"#,
                MediaType::OCI_MANIFEST
            );
            assert!(Manifest::parse(json.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_type_from_shape_when_absent() {
        let json = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(Manifest::parse(json).unwrap().0, MediaType::OCI_INDEX);
    }

    #[test]
    fn filtered_index_keeps_order_fields_and_is_deterministic() {
        let source = index_json();
        let filtered = filter_index(source.as_bytes(), &[1, 0]).unwrap();
        assert_eq!(filtered, filter_index(source.as_bytes(), &[0, 1]).unwrap());
        let (media_type, parsed) = Manifest::parse(&filtered).unwrap();
        assert_eq!(media_type, MediaType::OCI_INDEX);
        let Manifest::Index(entries) = parsed else {
            panic!("expected an index");
        };
        let digests: Vec<String> = entries.iter().map(|e| e.digest.to_string()).collect();
        assert_eq!(digests, [digest('a'), digest('b')]);
        let value: serde_json::Value = serde_json::from_slice(&filtered).unwrap();
        assert_eq!(value["annotations"]["a"], "b");
    }
}
