//! Garbage-collection labels: how containerd learns that a manifest keeps its config and layers
//! (and an index its manifests) alive.
//!
//! containerd's garbage collector follows only labels, never the JSON inside a blob. Content
//! written under a lease is safe until the lease goes; after that, a layer survives only if a
//! manifest that survives names it in a `containerd.io/gc.ref.content.*` label, and the
//! manifest only if an image (or an index that survives) points at it. Without these labels an
//! image looks complete right after the import and loses its layers at the next collection.

use std::collections::BTreeMap;

use super::error::{ContainerdError, Result};
use crate::oci::{Digest, Manifest, MediaType};

/// The prefix of every content reference label.
const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";

/// The labels a manifest or index blob must carry so that its children outlive the import:
/// `…config` and `…l.<i>` for the config and layers of an image manifest, `…m.<i>` for the
/// manifests of an index (OCI and Docker media types alike). Blobs of any other media type
/// (configs, layers) get no labels. `digest` only names the blob in errors.
pub fn gc_labels(
    digest: &Digest,
    media_type: &MediaType,
    manifest: &[u8],
) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    if media_type.manifest_kind().is_none() {
        return Ok(labels);
    }
    let (_, parsed) = Manifest::parse(manifest).map_err(|source| ContainerdError::Manifest {
        digest: *digest,
        media_type: media_type.clone(),
        source,
    })?;
    match parsed {
        Manifest::Image { config, layers } => {
            labels.insert(
                format!("{GC_REF_CONTENT}.config"),
                config.digest.to_string(),
            );
            for (i, layer) in layers.iter().enumerate() {
                labels.insert(format!("{GC_REF_CONTENT}.l.{i}"), layer.digest.to_string());
            }
        }
        Manifest::Index(children) => {
            for (i, child) in children.iter().enumerate() {
                labels.insert(format!("{GC_REF_CONTENT}.m.{i}"), child.digest.to_string());
            }
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn labels(media_type: &str, manifest: &[u8]) -> Result<BTreeMap<String, String>> {
        gc_labels(
            &digest('f').parse().unwrap(),
            &MediaType::new(media_type),
            manifest,
        )
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
        let labels = labels(
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
        let labels = labels(
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
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":2}}}}"#,
            digest('c')
        );
        let labels = labels(
            "application/vnd.docker.distribution.manifest.v2+json",
            manifest.as_bytes(),
        )
        .expect("labels");
        assert_eq!(labels.len(), 1);
    }

    #[test]
    fn configs_and_layers_get_no_labels() {
        for media_type in [
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ] {
            assert!(
                labels(media_type, b"not json")
                    .expect("no parse")
                    .is_empty()
            );
        }
    }

    #[test]
    fn broken_manifest_names_its_digest() {
        let error = labels(
            "application/vnd.oci.image.index.v1+json",
            b"{\"manifests\": 3}",
        )
        .expect_err("not an index");
        assert!(error.to_string().contains(&digest('f')), "{error}");
    }

    #[test]
    fn malformed_child_digest_is_refused() {
        let manifest =
            r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:nothex","size":1}}"#;
        let error = labels(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        )
        .expect_err("bad child digest");
        assert!(matches!(error, ContainerdError::Manifest { .. }));
    }
}
