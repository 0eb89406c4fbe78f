//! Offline checks of a verified bundle's signatures: the detached bundle
//! signature `BUNDLE.sig` (`--bundle-key`) and the cosign image signatures the
//! build stored in the bundle (`--verify-key`, `--require-signatures`).

use super::UnpackError;
use crate::bundle::BlobStore;
use crate::bundle::BundleManifest;
use crate::oci::Digest;
use crate::reference::Reference;
use crate::sign::{
    Fingerprint, FoundSignature, KeySet, SignaturePolicy, SignatureStatus, Subject, verify_digest,
};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Signature payloads and manifests are small.
const SMALL: u64 = 4 << 20;

/// What the signature checks found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureReport {
    /// Fingerprint of the key that verified `BUNDLE.sig`, when checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_key_fingerprint: Option<Fingerprint>,
    /// Per image (canonical reference), when image signatures were checked.
    pub images: Vec<(String, SignatureStatus)>,
}

/// Why a signature check failed.
#[derive(Debug, thiserror::Error)]
pub enum SignatureCheckError {
    /// `--bundle-key` was given and `BUNDLE.sig` is missing.
    #[error("{}: no bundle signature; --bundle-key requires one", path.display())]
    MissingBundleSignature {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `BUNDLE.sig` does not verify.
    #[error("{}: {source}", path.display())]
    BadBundleSignature {
        /// The signature file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::sign::SignError,
    },
    /// An image signature fails the policy.
    #[error(transparent)]
    Image(#[from] crate::sign::PolicyError),
}

/// Checks `BUNDLE.sig` against `keys` for a bundle whose file hashes to `sha256`.
pub fn check_bundle_signature(
    bundle: &Path,
    sha256: &Digest,
    keys: &KeySet,
) -> Result<Fingerprint, SignatureCheckError> {
    let path = crate::build::signature_path(bundle);
    let signature = std::fs::read(&path)
        .map_err(|_| SignatureCheckError::MissingBundleSignature { path: path.clone() })?;
    verify_digest(sha256.as_bytes(), &signature, keys)
        .map_err(|source| SignatureCheckError::BadBundleSignature { path, source })
}

/// Re-checks every image's stored cosign signatures under `policy`, offline.
pub(crate) fn check_images(
    manifest: &BundleManifest,
    verified: &HashMap<Digest, Vec<u8>>,
    store: &BlobStore,
    policy: &SignaturePolicy,
    bundle: &str,
) -> Result<Vec<(String, SignatureStatus)>, UnpackError> {
    let read = |digest: &Digest| match verified.get(digest) {
        Some(bytes) => Ok(bytes.clone()),
        None => store
            .read_small(digest, SMALL)
            .map_err(|e| UnpackError::Content {
                bundle: bundle.to_string(),
                reason: format!("{}: {e}", crate::bundle::blob_entry_name(digest)),
            }),
    };
    policy
        .check_names(manifest.images.iter().map(|i| &i.image.role))
        .map_err(|e| UnpackError::Signature(e.into()))?;
    let mut statuses = Vec::new();
    for image in &manifest.images {
        let record = &image.image;
        let canonical =
            Reference::parse(&record.canonical_reference).map_err(|e| UnpackError::Content {
                bundle: bundle.to_string(),
                reason: e.to_string(),
            })?;
        let source_index = match &record.source_index {
            Some(index) => Some((index.digest.to_string(), read(&index.digest)?)),
            None => None,
        };
        let mut stored = Vec::new();
        for signature in &record.signatures {
            let manifest_bytes = read(&signature.manifest.digest)?;
            let mut payloads = Vec::new();
            for payload in &signature.payloads {
                payloads.push((payload.digest.to_string(), read(&payload.digest)?));
            }
            stored.push((
                signature.signed_digest.to_string(),
                manifest_bytes,
                payloads,
            ));
        }
        let found: Vec<FoundSignature<'_>> = stored
            .iter()
            .map(|(signed, manifest_bytes, payloads)| FoundSignature {
                signed_digest: signed,
                manifest: manifest_bytes,
                payloads: payloads.iter().map(|(d, b)| (d.as_str(), &b[..])).collect(),
            })
            .collect();
        let bundled = record.digest.to_string();
        let children: Vec<String> = image
            .manifests
            .iter()
            .skip(1)
            .map(|m| m.digest.to_string())
            .collect();
        let subject = Subject {
            canonical: &canonical,
            role: &record.role,
            bundled_digest: &bundled,
            source_index: source_index.as_ref().map(|(d, b)| (d.as_str(), &b[..])),
            bundled_children: crate::build::bundled_children(
                &record.media_type,
                children.iter().map(String::as_str),
            ),
        };
        let status = policy
            .check(&subject, &found)
            .map_err(|e| UnpackError::Signature(e.into()))?;
        statuses.push((record.canonical_reference.clone(), status));
    }
    Ok(statuses)
}

/// Checks the image signatures of a bundle that verified, from the manifests
/// that pass kept (payloads are read again); for `verify --verify-key`.
pub fn check_bundle_images(
    path: &Path,
    compression: crate::bundle::Compression,
    verified: &crate::bundle::VerifiedContent,
    policy: &SignaturePolicy,
) -> Result<Vec<(String, SignatureStatus)>, UnpackError> {
    let store = BlobStore::open(path, compression, &std::env::temp_dir()).map_err(|source| {
        UnpackError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    check_images(
        &verified.manifest,
        &verified.manifests,
        &store,
        policy,
        &path.display().to_string(),
    )
}
