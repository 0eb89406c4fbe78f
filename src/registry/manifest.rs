//! Reading manifests as served, and writing filtered indexes.
//!
//! Manifests are parsed only to learn what they point to; their bytes are kept as served so
//! digests never change. Every digest is checked to be `sha256:` + 64 lowercase hex digits
//! before anything uses it, because callers turn digests into file names.

use bytes::Bytes;
use serde::Deserialize;

use super::platform::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest types a registry is asked for, in order of preference.
pub(crate) const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// What a piece of content is, where it is, and how big: an OCI descriptor's essentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Descriptor {
    /// Its media type, e.g. `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: String,
    /// `sha256:` followed by 64 lowercase hex digits.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A descriptor together with the content's exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// What the bytes are.
    pub descriptor: Descriptor,
    /// The bytes, exactly as served (or, for a filtered index, as written by this tool).
    pub bytes: Bytes,
}

/// One entry of an index.
#[derive(Debug, Clone)]
pub(crate) struct IndexEntry {
    pub descriptor: Descriptor,
    pub platform: Option<Platform>,
}

/// What a manifest points to.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    /// An OCI index or Docker manifest list.
    Index(Vec<IndexEntry>),
    /// An image manifest: its config and layers.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: u64,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Parses a manifest and returns its media type and what it points to. The error is a
/// reason for the user, e.g. why a schema 1 manifest is refused.
pub(crate) fn parse(bytes: &[u8]) -> Result<(String, Parsed), String> {
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|error| format!("not a valid manifest: {error}"))?;
    if raw.schema_version == Some(1) {
        return Err(
            "Docker schema 1 manifests are not supported (re-push the image with a current client)"
                .into(),
        );
    }
    if raw.schema_version != Some(2) {
        return Err(format!(
            "unsupported schemaVersion {:?}",
            raw.schema_version
        ));
    }
    let media_type = match (raw.media_type.as_deref(), &raw.manifests, &raw.config) {
        (Some(known @ (OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST)), _, _) => {
            known.to_string()
        }
        (Some(other), _, _) => return Err(format!("unsupported media type {other}")),
        // The OCI spec made mediaType optional at first: tell the kinds apart by shape.
        (None, Some(_), None) => OCI_INDEX.to_string(),
        (None, None, Some(_)) => OCI_MANIFEST.to_string(),
        (None, _, _) => return Err("manifest without mediaType and of unknown shape".into()),
    };
    let parsed = if matches!(media_type.as_str(), OCI_INDEX | DOCKER_LIST) {
        let entries = raw
            .manifests
            .ok_or("index without a manifests list")?
            .into_iter()
            .map(|entry| {
                let platform = entry
                    .platform
                    .as_ref()
                    .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref()));
                Ok(IndexEntry {
                    descriptor: descriptor(entry)?,
                    platform,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Parsed::Index(entries)
    } else {
        Parsed::Image {
            config: descriptor(raw.config.ok_or("image manifest without a config")?)?,
            layers: raw
                .layers
                .unwrap_or_default()
                .into_iter()
                .map(descriptor)
                .collect::<Result<_, _>>()?,
        }
    };
    Ok((media_type, parsed))
}

fn descriptor(raw: RawDescriptor) -> Result<Descriptor, String> {
    check_digest(&raw.digest)?;
    Ok(Descriptor {
        media_type: raw
            .media_type
            .ok_or_else(|| format!("descriptor {} has no mediaType", raw.digest))?,
        digest: raw.digest,
        size: raw.size,
    })
}

/// Accepts `sha256:` + 64 lowercase hex digits only.
pub(crate) fn check_digest(digest: &str) -> Result<(), String> {
    let valid = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if valid {
        Ok(())
    } else {
        Err(format!("unsupported or malformed digest {digest:?}"))
    }
}

/// Writes a copy of the index `source` keeping only the entries at `keep` (source order),
/// with every other field as in the source. Serialising through `serde_json::Value` makes
/// the bytes a function of the source bytes alone, so rebuilds give the same digest.
pub(crate) fn filter_index(source: &[u8], keep: &[usize]) -> Result<Vec<u8>, String> {
    let mut index: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(source).map_err(|error| format!("not a valid index: {error}"))?;
    let Some(serde_json::Value::Array(entries)) = index.remove("manifests") else {
        return Err("index without a manifests list".into());
    };
    let kept: Vec<serde_json::Value> = entries
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, entry)| entry)
        .collect();
    index.insert("manifests".into(), serde_json::Value::Array(kept));
    serde_json::to_vec(&index).map_err(|error| error.to_string())
}

/// The sha256 digest of `bytes` in `sha256:<hex>` form.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn index_json() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","annotations":{{"a":"b"}},"manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":11,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":12,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            digest('a'),
            digest('b'),
            digest('c')
        )
    }

    #[test]
    fn parses_index_entries_with_platforms() {
        let (media_type, parsed) = parse(index_json().as_bytes()).unwrap();
        assert_eq!(media_type, OCI_INDEX);
        let Parsed::Index(entries) = parsed else {
            panic!("expected an index");
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[1].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(entries[2].descriptor.size, 12);
    }

    #[test]
    fn parses_docker_manifest() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
                "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":5}},
                "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":7}}]}}"#,
            digest('1'),
            digest('2')
        );
        let (media_type, parsed) = parse(json.as_bytes()).unwrap();
        assert_eq!(media_type, DOCKER_MANIFEST);
        let Parsed::Image { config, layers } = parsed else {
            panic!("expected an image");
        };
        assert_eq!(config.size, 5);
        assert_eq!(layers[0].digest, digest('2'));
    }

    #[test]
    fn refuses_schema1_and_bad_digests() {
        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}"#;
        assert!(parse(schema1.as_bytes()).unwrap_err().contains("schema 1"));
        let traversal = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"sha256:../../etc/passwd","size":1}},"layers":[]}}"#
        );
        assert!(parse(traversal.as_bytes()).is_err());
        assert!(check_digest(&digest('A')).is_err());
        assert!(check_digest(&digest('a')).is_ok());
    }

    #[test]
    fn media_type_from_shape_when_absent() {
        let json = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(parse(json).unwrap().0, OCI_INDEX);
    }

    #[test]
    fn filtered_index_keeps_order_fields_and_is_deterministic() {
        let source = index_json();
        let filtered = filter_index(source.as_bytes(), &[1, 0]).unwrap();
        assert_eq!(filtered, filter_index(source.as_bytes(), &[0, 1]).unwrap());
        let (media_type, parsed) = parse(&filtered).unwrap();
        assert_eq!(media_type, OCI_INDEX);
        let Parsed::Index(entries) = parsed else {
            panic!("expected an index");
        };
        let digests: Vec<_> = entries
            .iter()
            .map(|e| e.descriptor.digest.clone())
            .collect();
        assert_eq!(digests, [digest('a'), digest('b')]);
        let value: serde_json::Value = serde_json::from_slice(&filtered).unwrap();
        assert_eq!(value["annotations"]["a"], "b");
    }
}
