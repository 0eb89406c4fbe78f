//! Garbage-collection labels: how containerd learns that a manifest keeps its config and layers
//! (and an index its manifests) alive.
//!
//! containerd's garbage collector follows only labels, never the JSON inside a blob. Content
//! written under a lease is safe until the lease goes; after that, a layer survives only if a
//! manifest that survives names it in a `containerd.io/gc.ref.content.*` label, and the
//! manifest only if an image (or an index that survives) points at it. Without these labels an
//! image looks complete right after the import and loses its layers at the next collection.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{ContainerdError, Result};
use crate::reference::validate_digest;

/// The prefix of every content reference label.
const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";

/// Media types whose children are a config and layers.
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Media types whose children are manifests.
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The part of a descriptor that the labels need.
#[derive(Deserialize)]
struct Child {
    digest: String,
}

/// The children of an image manifest.
#[derive(Deserialize)]
struct Manifest {
    config: Child,
    #[serde(default)]
    layers: Vec<Child>,
}

/// The children of an index.
#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Child>,
}

/// Whether blobs of `media_type` are manifests or indexes, whose children need GC labels.
pub fn is_manifest(media_type: &str) -> bool {
    MANIFEST_TYPES.contains(&media_type) || INDEX_TYPES.contains(&media_type)
}

/// The labels a manifest or index blob must carry so that its children outlive the import:
/// `containerd.io/gc.ref.content.config` and `…l.<i>` for the layers of an image manifest,
/// `…m.<i>` for the manifests of an index (OCI and Docker media types alike). Blobs of any
/// other media type (configs, layers) get no labels. `digest` only names the blob in errors.
pub fn gc_labels(
    digest: &str,
    media_type: &str,
    manifest: &[u8],
) -> Result<BTreeMap<String, String>> {
    let invalid = |source| ContainerdError::Manifest {
        digest: digest.to_owned(),
        media_type: media_type.to_owned(),
        source,
    };
    let mut labels = BTreeMap::new();
    if MANIFEST_TYPES.contains(&media_type) {
        let manifest: Manifest = serde_json::from_slice(manifest).map_err(invalid)?;
        labels.insert(
            format!("{GC_REF_CONTENT}.config"),
            checked(manifest.config.digest)?,
        );
        for (i, layer) in manifest.layers.into_iter().enumerate() {
            labels.insert(format!("{GC_REF_CONTENT}.l.{i}"), checked(layer.digest)?);
        }
    } else if INDEX_TYPES.contains(&media_type) {
        let index: Index = serde_json::from_slice(manifest).map_err(invalid)?;
        for (i, child) in index.manifests.into_iter().enumerate() {
            labels.insert(format!("{GC_REF_CONTENT}.m.{i}"), checked(child.digest)?);
        }
    }
    Ok(labels)
}

/// A child digest, refused when malformed: containerd would ignore such a label silently and
/// collect the child.
fn checked(digest: String) -> Result<String> {
    match validate_digest(&digest) {
        Ok(()) => Ok(digest),
        Err(source) => Err(ContainerdError::InvalidDigest { digest, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn oci_manifest_labels_config_and_layers_in_order() {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest('c'), "size": 2},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest('a'), "size": 3},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest('b'), "size": 4},
            ],
        });
        let labels = gc_labels(
            &digest('f'),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        )
        .expect("labels");
        let expected: BTreeMap<String, String> = [
            ("containerd.io/gc.ref.content.config", digest('c')),
            ("containerd.io/gc.ref.content.l.0", digest('a')),
            ("containerd.io/gc.ref.content.l.1", digest('b')),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn docker_manifest_list_labels_manifests() {
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [
                {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest('1'), "size": 5,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest('2'), "size": 6,
                 "platform": {"os": "linux", "architecture": "arm64"}},
            ],
        });
        let labels = gc_labels(
            &digest('f'),
            "application/vnd.docker.distribution.manifest.list.v2+json",
            list.to_string().as_bytes(),
        )
        .expect("labels");
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["containerd.io/gc.ref.content.m.0"], digest('1'));
        assert_eq!(labels["containerd.io/gc.ref.content.m.1"], digest('2'));
    }

    #[test]
    fn docker_manifest_without_layers_labels_config_only() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}"}}}}"#,
            digest('c')
        );
        let labels = gc_labels(
            &digest('f'),
            "application/vnd.docker.distribution.manifest.v2+json",
            manifest.as_bytes(),
        )
        .expect("labels");
        assert_eq!(labels.len(), 1);
        assert!(is_manifest(
            "application/vnd.docker.distribution.manifest.v2+json"
        ));
    }

    #[test]
    fn configs_and_layers_get_no_labels() {
        for media_type in [
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ] {
            assert!(!is_manifest(media_type));
            let labels = gc_labels(&digest('f'), media_type, b"not json").expect("no parse");
            assert!(labels.is_empty());
        }
    }

    #[test]
    fn broken_manifest_names_its_digest() {
        let error = gc_labels(
            &digest('f'),
            "application/vnd.oci.image.index.v1+json",
            b"{\"manifests\": 3}",
        )
        .expect_err("not an index");
        assert!(error.to_string().contains(&digest('f')), "{error}");
    }

    #[test]
    fn malformed_child_digest_is_refused() {
        let manifest = r#"{"config":{"digest":"sha256:nothex"}}"#;
        let error = gc_labels(
            &digest('f'),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        )
        .expect_err("bad child digest");
        assert!(matches!(error, ContainerdError::InvalidDigest { .. }));
    }
}
