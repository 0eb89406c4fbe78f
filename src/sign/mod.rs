//! Supply-chain signatures, without the network: keys, bundle signatures and cosign checks.
//!
//! Everything here is ECDSA P-256 with SHA-256, the one scheme that both `openssl dgst` and
//! `cosign sign --key` produce, so a reviewer can check our work with either tool:
//!
//! - [`keys`]: PEM public and private keys as openssl and cosign write them, and the key
//!   fingerprint recorded in `bundle.json`;
//! - [`detached`]: the bundle signature, an ASN.1 DER signature over the bundle file's bytes
//!   (`openssl dgst -sha256 -verify pub.pem -signature BUNDLE.sig BUNDLE`);
//! - [`cosign`]: cosign's legacy tag-based image signatures (`sha256-<hex>.sig`): reading and
//!   writing the signature manifest, and checking a payload against keys, digest and identity.
//!
//! Fetching signatures from registries is the registry module's work; this module only judges
//! the bytes it is given.

pub mod cosign;
pub mod detached;
pub mod keys;
pub mod policy;

use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use cosign::{
    CosignLayer, Expected, ManifestError, SignatureFailure, SignatureRecord, Verified,
    cosign_payload, cosign_signature_config, cosign_signature_manifest, cosign_tag,
    parse_signature_manifest, sign_cosign_payload, verify_cosign, verify_index_child,
};
pub use detached::{sign_digest, sign_file, verify_digest, verify_file};
pub use keys::{KeyError, KeySet, PublicKey, SigningKey};
pub use policy::{FoundSignature, PolicyError, SignaturePolicy, Subject};

/// Why signing or checking a signature failed, naming the file or the signed thing.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A key, bundle or signature file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A key file is not a key this tool can use.
    #[error("key file {}", path.display())]
    Key {
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// Verification was asked for with an empty key set.
    #[error("no public key given to verify signatures with")]
    NoKeys,
    /// The signature bytes are not an ASN.1 DER ECDSA signature.
    #[error("the signature of {subject} is not an ASN.1 DER ECDSA signature")]
    MalformedSignature {
        /// What was signed: a file path or a digest.
        subject: String,
    },
    /// No key of the set verifies the signature: wrong key, or the signed bytes changed.
    #[error(
        "no key verifies the signature of {subject} (tried {})",
        fingerprint_list(tried)
    )]
    NotVerified {
        /// What was signed: a file path or a digest.
        subject: String,
        /// The fingerprints of every key tried.
        tried: Vec<Fingerprint>,
    },
    /// The signing primitive refused (only for degenerate inputs; never seen in practice).
    #[error("cannot sign {subject}")]
    Sign {
        /// What was to be signed.
        subject: String,
        /// The primitive's error.
        #[source]
        source: p256::ecdsa::Error,
    },
}

impl SignError {
    /// A key or signature file that cannot be read after opening is local; every other
    /// failure is about the input (a missing or unusable key, a signature that does not
    /// verify).
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            SignError::Read { source, .. } => crate::files::read_failure_kind(source),
            _ => crate::ErrorKind::Input,
        }
    }
}

/// The identity of a public key: `sha256:` and the hex SHA-256 of its DER
/// SubjectPublicKeyInfo, the same as `openssl pkey -pubin -in key.pub -outform DER | sha256sum`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

/// A string that is not `sha256:` followed by 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key fingerprint {value:?} must be sha256: followed by 64 lowercase hex characters")]
pub struct FingerprintError {
    pub value: String,
}

impl Fingerprint {
    const PREFIX: &'static str = "sha256:";

    /// The fingerprint of a DER-encoded SubjectPublicKeyInfo.
    pub fn of_spki_der(der: &[u8]) -> Self {
        Self(format!(
            "{}{}",
            Self::PREFIX,
            hex::encode(Sha256::digest(der))
        ))
    }

    /// The fingerprint as text, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = FingerprintError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let well_formed = value.strip_prefix(Self::PREFIX).is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if well_formed {
            Ok(Self(value))
        } else {
            Err(FingerprintError { value })
        }
    }
}

impl From<Fingerprint> for String {
    fn from(fingerprint: Fingerprint) -> Self {
        fingerprint.0
    }
}

/// `sha256:aa…, sha256:bb…` for error messages.
fn fingerprint_list(fingerprints: &[Fingerprint]) -> String {
    fingerprints
        .iter()
        .map(Fingerprint::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An image's signature state as `bundle.json` and `inspect --json` record it:
/// `{"status":"unsigned"}` or `{"status":"verified","keyFingerprint":"sha256:…"}`.
///
/// There is no "failed" state on purpose: a signature that is present but does not verify
/// stops the build, so no bundle ever records one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "status",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum SignatureStatus {
    /// No signature was found and no policy required one.
    Unsigned,
    /// A signature verified with the key of this fingerprint.
    Verified {
        /// The fingerprint of the key that verified the signature.
        key_fingerprint: Fingerprint,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "12112ba1784d050ae75648917b914b7f6f60eb79c6d0e34f35ea240fc2ae354b";

    #[test]
    fn status_serialises_in_camel_case() {
        let unsigned = serde_json::to_string(&SignatureStatus::Unsigned).unwrap();
        assert_eq!(unsigned, r#"{"status":"unsigned"}"#);
        let verified = SignatureStatus::Verified {
            key_fingerprint: Fingerprint(format!("sha256:{HEX}")),
        };
        let json = serde_json::to_string(&verified).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"status":"verified","keyFingerprint":"sha256:{HEX}"}}"#)
        );
        assert_eq!(
            serde_json::from_str::<SignatureStatus>(&json).unwrap(),
            verified
        );
    }

    #[test]
    fn status_refuses_a_malformed_fingerprint() {
        let json = r#"{"status":"verified","keyFingerprint":"sha256:ABC"}"#;
        let error = serde_json::from_str::<SignatureStatus>(json).unwrap_err();
        assert!(error.to_string().contains("64 lowercase hex"), "{error}");
    }

    #[test]
    fn fingerprint_checks_its_form() {
        assert!(Fingerprint::try_from(format!("sha256:{HEX}")).is_ok());
        for bad in [
            HEX.to_owned(),
            format!("sha512:{HEX}"),
            format!("sha256:{HEX}0"),
        ] {
            assert_eq!(
                Fingerprint::try_from(bad.clone()),
                Err(FingerprintError { value: bad })
            );
        }
    }
}
