//! Everything that can be proven about a bundle offline, for `verify` and as the first
//! step of `unpack`: the streaming pass (every checksum and digest, the layout), the
//! agreement of its files with each other (values re-derived from the config), the
//! detached bundle signature `BUNDLE.sig` (`--bundle-key`), and the cosign image
//! signatures the build stored in the bundle (`--verify-key`, `--require-signatures`),
//! judged by the same policy as at build ([`crate::sign::SignaturePolicy`]), and, on
//! request, the plugin checks and the SBOM derived again from the bundled layers
//! ([`check_plugins`]).

mod consistency;
mod plugins;

pub use plugins::{PluginCheckError, check_plugins};

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::bundle::{self, BlobStore, PassProgress, ReadError, VerifiedContent, VerifyReport};
use crate::files::{self, FileError, Origin};
use crate::oci::Digest;
use crate::reference::Reference;
use crate::sign::policy::bundled_children;
use crate::sign::{
    Fingerprint, FoundSignature, KeySet, PolicyError, SignError, SignaturePolicy, SignatureStatus,
    Subject, verify_digest,
};

/// A DER ECDSA P-256 signature is at most 72 bytes; anything much larger is not one.
const SIGNATURE_LIMIT: u64 = 1024;
/// Signature payloads and manifests are small.
const SIGNATURE_BLOB_LIMIT: u64 = 4 << 20;

/// What to check besides the streaming pass.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Keys one of which must have signed the bundle file (`BUNDLE.sig`).
    pub bundle_keys: Option<KeySet>,
    /// Image signatures to re-check against the signatures stored in the bundle.
    pub signatures: SignaturePolicy,
    /// Derive the plugin reports and the SBOM from the bundled layers again and compare
    /// (`--plugins`): a second pass over the bundle.
    pub plugins: bool,
}

/// The signatures a verification proved.
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
    /// `--bundle-key` was given and `BUNDLE.sig` is missing or unusable.
    #[error("no bundle signature could be read; --bundle-key requires one")]
    BundleSignatureFile(#[source] FileError),
    /// `BUNDLE.sig` does not verify.
    #[error("{path} does not verify", path = .path.display())]
    BadBundleSignature {
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: SignError,
    },
    /// An image signature fails the policy.
    #[error(transparent)]
    Image(#[from] PolicyError),
    /// A stored signature, payload or source index cannot be read from the bundle.
    #[error("cannot read {entry} of the bundle")]
    Blob {
        /// The blob's entry name.
        entry: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An image's canonical reference in `bundle.json` does not parse.
    #[error("bundle.json names image {reference:?}, which is not a valid reference")]
    Reference { reference: String },
}

/// Reads `BUNDLE.sig` before the long pass: with `--bundle-key`, a missing or unreadable
/// signature fails at once instead of after hashing gigabytes.
pub fn read_bundle_signature(bundle: &Path) -> Result<Vec<u8>, SignatureCheckError> {
    files::read_capped(
        &bundle::signature_path(bundle),
        SIGNATURE_LIMIT,
        "signature",
        Origin::Found,
    )
    .map_err(SignatureCheckError::BundleSignatureFile)
}

/// Checks `signature` (the bytes of `BUNDLE.sig`) against `keys` for a bundle whose file
/// hashes to `sha256`.
pub fn check_bundle_signature(
    bundle: &Path,
    signature: &[u8],
    sha256: &Digest,
    keys: &KeySet,
) -> Result<Fingerprint, SignatureCheckError> {
    verify_digest(sha256.as_bytes(), signature, keys).map_err(|source| {
        SignatureCheckError::BadBundleSignature {
            path: bundle::signature_path(bundle),
            source,
        }
    })
}

/// The full offline verification of one bundle.
#[derive(Debug)]
pub struct Verification {
    pub report: VerifyReport,
    /// What the pass read, when the bundle is good.
    pub content: Option<VerifiedContent>,
    /// Signatures proven (bundle signature only; image signatures need a blob store, see
    /// [`check_image_signatures`]).
    pub signatures: SignatureReport,
}

/// Reads `BUNDLE.sig` first when keys are given, then makes the streaming pass and checks
/// the bundle signature over the file's digest. `progress` hears how far the pass is.
pub fn verify(
    path: &Path,
    options: &VerifyOptions,
    progress: Option<PassProgress>,
) -> Result<Verification, VerifyError> {
    let signature = match &options.bundle_keys {
        Some(_) => Some(read_bundle_signature(path)?),
        None => None,
    };
    let (mut report, mut content) = bundle::verify_keeping(path, progress)?;
    if let Some(verified) = &content {
        let findings = consistency::check(verified);
        report.warnings.extend(findings.warnings);
        report.problems.extend(findings.problems);
        if options.plugins && report.is_ok() {
            report.problems.extend(check_plugins(path, verified)?);
        }
        if !report.is_ok() {
            content = None;
        }
    }
    let mut signatures = SignatureReport::default();
    if let (Some(keys), Some(signature), Some(sha256), true) = (
        &options.bundle_keys,
        &signature,
        &report.sha256,
        report.is_ok(),
    ) {
        signatures.bundle_key_fingerprint =
            Some(check_bundle_signature(path, signature, sha256, keys)?);
    }
    Ok(Verification {
        report,
        content,
        signatures,
    })
}

/// Why verification could not run or a signature failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The bundle cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Signature(#[from] SignatureCheckError),
    #[error(transparent)]
    Plugins(#[from] PluginCheckError),
}

impl VerifyError {
    /// The class of this error.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            VerifyError::Read(error) => error.kind(),
            VerifyError::Signature(error) => error.kind(),
            VerifyError::Plugins(error) => error.kind(),
        }
    }
}

impl SignatureCheckError {
    /// The class of this error: a missing or failing signature is bad input, a blob that
    /// cannot be read again is local.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            SignatureCheckError::BundleSignatureFile(error) => error.kind(),
            SignatureCheckError::Blob { .. } => crate::ErrorKind::Local,
            _ => crate::ErrorKind::Input,
        }
    }
}

/// Whether the policy asks for any image signature check.
pub fn checks_images(policy: &SignaturePolicy) -> bool {
    policy.checks() || policy.require_all || !policy.require.is_empty()
}

/// Re-checks every image's stored cosign signatures under `policy`, offline: manifests
/// come from the verified pass, payloads and source indexes from the store.
pub fn check_image_signatures(
    verified: &VerifiedContent,
    store: &BlobStore,
    policy: &SignaturePolicy,
) -> Result<Vec<(String, SignatureStatus)>, SignatureCheckError> {
    let manifest = &verified.manifest;
    policy.check_names(manifest.images.iter().map(|i| &i.image.role))?;
    manifest
        .images
        .iter()
        .map(|image| {
            let status = check_one(image, &verified.manifests, store, policy)?;
            Ok((image.image.canonical_reference.clone(), status))
        })
        .collect()
}

fn check_one(
    image: &bundle::BundledImage,
    verified: &HashMap<Digest, Vec<u8>>,
    store: &BlobStore,
    policy: &SignaturePolicy,
) -> Result<SignatureStatus, SignatureCheckError> {
    let read = |digest: &Digest| match verified.get(digest) {
        Some(bytes) => Ok(bytes.clone()),
        None => store
            .read_small(digest, SIGNATURE_BLOB_LIMIT)
            .map_err(|source| SignatureCheckError::Blob {
                entry: bundle::blob_entry_name(digest),
                source,
            }),
    };
    let record = &image.image;
    let canonical = Reference::parse(&record.canonical_reference).map_err(|_| {
        SignatureCheckError::Reference {
            reference: record.canonical_reference.clone(),
        }
    })?;
    let source_index = match &record.source_index {
        Some(index) => Some((index.digest, read(&index.digest)?)),
        None => None,
    };
    let mut stored = Vec::new();
    for signature in &record.signatures {
        let payloads = signature
            .payloads
            .iter()
            .map(|payload| Ok((payload.digest, read(&payload.digest)?)))
            .collect::<Result<Vec<_>, SignatureCheckError>>()?;
        stored.push((signature, read(&signature.manifest.digest)?, payloads));
    }
    let found: Vec<FoundSignature<'_>> = stored
        .iter()
        .map(|(signature, manifest_bytes, payloads)| FoundSignature {
            signed_digest: &signature.signed_digest,
            manifest: manifest_bytes,
            payloads: payloads.iter().map(|(d, b)| (d, &b[..])).collect(),
        })
        .collect();
    let subject = Subject {
        canonical: &canonical,
        role: &record.role,
        bundled_digest: &record.digest,
        source_index: source_index.as_ref().map(|(d, b)| (d, &b[..])),
        bundled_children: bundled_children(
            &record.media_type,
            image.manifests.iter().skip(1).map(|m| &m.digest),
        ),
    };
    Ok(policy.check(&subject, &found)?)
}
