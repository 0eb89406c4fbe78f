//! Which images must be signed, and what a set of found signatures says about
//! one image. The same check runs at build (signatures fetched from the
//! registry) and at unpack (signatures read back from the bundle, offline).

use super::{
    Expected, Fingerprint, KeySet, SignatureFailure, SignatureStatus, parse_signature_manifest,
    verify_cosign, verify_index_child,
};
use crate::oci::{Digest, ManifestKind, MediaType};
use crate::reference::Reference;
use crate::values::Role;

/// `--verify-key`, `--require-signatures`, `--require-signature NAME`,
/// `--ignore-signature-identity`.
#[derive(Debug, Clone, Default)]
pub struct SignaturePolicy {
    /// Keys that may sign images; `None` checks nothing.
    pub keys: Option<KeySet>,
    /// Every image must be signed.
    pub require_all: bool,
    /// These plugins must be signed.
    pub require: Vec<String>,
    /// Skip the `docker-reference` identity check.
    pub ignore_identity: bool,
}

/// A signature found for an image: the digest it signs, the signature
/// manifest and its payloads, byte for byte.
#[derive(Debug, Clone)]
pub struct FoundSignature<'a> {
    /// The digest the signature is for.
    pub signed_digest: &'a Digest,
    pub manifest: &'a [u8],
    /// Payload blobs by digest.
    pub payloads: Vec<(&'a Digest, &'a [u8])>,
}

/// What is known about one image when its signatures are checked.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// Canonical reference (the identity a signature must name).
    pub canonical: &'a Reference,
    /// What the image is for.
    pub role: &'a Role,
    /// The manifest the bundle carries (`index.json`'s digest).
    pub bundled_digest: &'a Digest,
    /// The source index the bundled manifest was chosen from, with its digest.
    pub source_index: Option<(&'a Digest, &'a [u8])>,
    /// When the bundled manifest is an index filtered out of the source index
    /// (a platform list), its children: each must be a child of a signed index.
    pub bundled_children: Vec<&'a Digest>,
}

/// Why an image's signatures do not satisfy the policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A signature is required and none was found.
    #[error(
        "{image} must be signed, but has no cosign signature (looked for tags {looked_for}; keys {keys})"
    )]
    Missing {
        image: String,
        /// The signature tags looked for.
        looked_for: String,
        /// Fingerprints of the keys that would have been tried.
        keys: String,
    },
    /// A signature is present and fails: evidence of tampering, an error with
    /// or without a policy.
    #[error("{image}: signature {signed_digest} does not verify: {reason} (keys tried: {keys})")]
    Invalid {
        image: String,
        /// What it signs.
        signed_digest: String,
        /// Why it fails.
        reason: String,
        /// Fingerprints of the keys tried.
        keys: String,
    },
    /// `--require-signature` names no plugin the images have.
    #[error("--require-signature {name}: no plugin of that name ({known})")]
    UnknownPlugin {
        name: String,
        /// The plugin names there are.
        known: String,
    },
    /// A policy requires signatures but no key was given.
    #[error("{image} must be signed, but no --verify-key was given to check it with")]
    NoKeys { image: String },
}

impl SignaturePolicy {
    /// Whether `role`'s image must be signed.
    pub fn required(&self, role: &Role) -> bool {
        self.require_all || matches!(role, Role::Plugin(name) if self.require.contains(name))
    }

    /// Refuses a `--require-signature` name that no image's role carries: a
    /// typo, or a role edited out of an unsigned bundle, must not pass silently.
    pub fn check_names<'r>(
        &self,
        roles: impl Iterator<Item = &'r Role>,
    ) -> Result<(), PolicyError> {
        let plugins: Vec<&str> = roles
            .filter_map(|role| match role {
                Role::Plugin(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        match self
            .require
            .iter()
            .find(|name| !plugins.contains(&name.as_str()))
        {
            Some(name) => Err(PolicyError::UnknownPlugin {
                name: name.clone(),
                known: if plugins.is_empty() {
                    "the bundle has no plugins".into()
                } else {
                    format!("plugins: {}", plugins.join(", "))
                },
            }),
            None => Ok(()),
        }
    }

    /// Whether signatures are looked up at all.
    pub fn checks(&self) -> bool {
        self.keys.is_some()
    }

    fn key_list(&self) -> String {
        self.keys
            .as_ref()
            .map(|k| {
                k.fingerprints()
                    .iter()
                    .map(Fingerprint::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "none".into())
    }

    /// The status of one image given the signatures found for it.
    pub fn check(
        &self,
        subject: &Subject<'_>,
        found: &[FoundSignature<'_>],
    ) -> Result<SignatureStatus, PolicyError> {
        let image = subject.canonical.to_string();
        let Some(keys) = &self.keys else {
            return if self.required(subject.role) {
                Err(PolicyError::NoKeys { image })
            } else {
                Ok(SignatureStatus::Unsigned)
            };
        };
        let mut first_failure = None;
        for signature in found {
            match self.verify_one(keys, subject, signature) {
                Ok(fingerprint) => {
                    return Ok(SignatureStatus::Verified {
                        key_fingerprint: fingerprint,
                    });
                }
                Err(reason) => {
                    first_failure.get_or_insert((signature.signed_digest.to_string(), reason));
                }
            }
        }
        if let Some((signed_digest, reason)) = first_failure {
            return Err(PolicyError::Invalid {
                image,
                signed_digest,
                reason,
                keys: self.key_list(),
            });
        }
        if self.required(subject.role) {
            return Err(PolicyError::Missing {
                image,
                looked_for: signed_digests(subject)
                    .iter()
                    .map(|d| super::cosign_tag(d))
                    .collect::<Vec<_>>()
                    .join(", "),
                keys: self.key_list(),
            });
        }
        Ok(SignatureStatus::Unsigned)
    }

    /// One signature manifest: any payload that verifies makes it count.
    fn verify_one(
        &self,
        keys: &KeySet,
        subject: &Subject<'_>,
        signature: &FoundSignature<'_>,
    ) -> Result<Fingerprint, String> {
        let layers = parse_signature_manifest(signature.manifest).map_err(|e| e.to_string())?;
        let repository = subject.canonical.name();
        let expected = Expected {
            signed_digest: signature.signed_digest,
            canonical_repository: &repository,
        };
        let mut last: Option<SignatureFailure> = None;
        for layer in &layers {
            let Some((_, payload)) = signature.payloads.iter().find(|(d, _)| **d == layer.digest)
            else {
                return Err(format!("payload {} is missing", layer.digest));
            };
            match verify_cosign(
                payload,
                &layer.signature,
                keys,
                &expected,
                self.ignore_identity,
            ) {
                Ok(verified) => {
                    if signature.signed_digest != subject.bundled_digest {
                        let (index_digest, index) = subject.source_index.ok_or_else(|| {
                            format!(
                                "it signs {}, which is not the bundled manifest, and no source index links them",
                                signature.signed_digest
                            )
                        })?;
                        if index_digest != signature.signed_digest {
                            return Err(format!(
                                "it signs {}, neither the bundled manifest nor its source index",
                                signature.signed_digest
                            ));
                        }
                        let proven: Vec<&Digest> = if subject.bundled_children.is_empty() {
                            vec![subject.bundled_digest]
                        } else {
                            subject.bundled_children.clone()
                        };
                        for digest in proven {
                            verify_index_child(index, index_digest, digest)
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    return Ok(verified.fingerprint);
                }
                Err(failure) => last = Some(failure),
            }
        }
        Err(last.map_or_else(|| "no payload".into(), |f| f.to_string()))
    }
}

/// The digests a signature may be for: the source index (what `cosign sign
/// IMAGE:TAG` signs for a multi-arch image) and the bundled manifest itself.
pub fn signed_digests<'a>(subject: &Subject<'a>) -> Vec<&'a Digest> {
    let mut digests: Vec<&Digest> = subject.source_index.iter().map(|(d, _)| *d).collect();
    digests.push(subject.bundled_digest);
    digests
}

/// The children of a bundled index (a filtered platform list), which a signature on the
/// source index must cover; none for a single manifest.
pub fn bundled_children<'a>(
    media_type: &MediaType,
    manifests: impl Iterator<Item = &'a Digest>,
) -> Vec<&'a Digest> {
    if media_type.manifest_kind() == Some(ManifestKind::Index) {
        manifests.collect()
    } else {
        Vec::new()
    }
}
