//! Cosign image signatures in the legacy tag format (what `cosign sign --key` wrote up to v2).
//!
//! The signature of digest `sha256:<hex>` lives in the image's repository under the tag
//! `sha256-<hex>.sig`: an OCI manifest whose layers are "simple signing" payloads (a small
//! JSON document naming the repository and the signed digest), each layer annotated with the
//! base64 DER ECDSA signature over the exact payload bytes.
//!
//! A signature counts only when all of these hold, checked in this order so that nothing
//! unsigned is parsed: a key verifies it; the payload is a cosign payload; it names the
//! digest that was expected; its repository is the image's canonical repository (skopeo's
//! `matchRepository`: tag and digest ignored, names normalised as Docker does). Each failure
//! is its own [`SignatureFailure`] variant, because the build reports them to people who
//! must tell tampering from a wrong key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::Signature;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Fingerprint, KeySet, SignError, SigningKey};
use crate::oci::{Descriptor, Digest, Manifest as OciManifest, MediaType};
use crate::reference::{Reference, ReferenceError};

/// Layer annotation holding the base64 DER signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of every cosign payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The tag cosign stores the signature of `digest` under: `sha256:ab…` → `sha256-ab….sig`.
pub fn cosign_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// A cosign signature kept with an image (in a bundle): the digest it signs and the
/// blobs holding it, so it can be checked again offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureRecord {
    /// The digest the signature is for: the index the canonical reference resolves to,
    /// or the bundled manifest itself.
    pub signed_digest: Digest,
    /// The signature manifest (tag `sha256-<hex>.sig`), byte for byte.
    pub manifest: Descriptor,
    pub payloads: Vec<Descriptor>,
}

/// One signature found in a signature manifest: where its payload blob is, and the
/// signature to check it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignLayer {
    /// Digest of the payload blob.
    pub digest: Digest,
    /// Size of the payload blob.
    pub size: u64,
    /// The `dev.cosignproject.cosign/signature` annotation: base64 DER signature.
    pub signature: String,
}

/// Why a signature manifest cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not shaped like an image manifest (a malformed digest included).
    #[error("signature manifest is not an OCI image manifest")]
    Manifest(#[source] crate::oci::ManifestError),
    /// No layer has the simple-signing media type.
    #[error("signature manifest has no {} layer", MediaType::COSIGN_SIMPLESIGNING)]
    NoSignatureLayers,
    /// A payload layer lacks its signature annotation.
    #[error("signature layer {digest} has no {SIGNATURE_ANNOTATION} annotation")]
    MissingSignature {
        /// The layer's digest.
        digest: Digest,
    },
}

/// Why a cosign signature does not count. Each is evidence of tampering or of a wrong key,
/// never a reason to treat the image as unsigned.
#[derive(Debug, thiserror::Error)]
pub enum SignatureFailure {
    /// The annotation is not base64.
    #[error("signature annotation is not base64")]
    SignatureNotBase64(#[source] base64::DecodeError),
    /// The decoded annotation is not an ASN.1 DER ECDSA signature.
    #[error("signature is not an ASN.1 DER ECDSA signature")]
    MalformedSignature,
    /// No key verifies the signature over the payload.
    /// (The keys are named by whoever reports the failure, e.g. [`PolicyError::Invalid`].)
    ///
    /// [`PolicyError::Invalid`]: crate::sign::PolicyError::Invalid
    #[error("no key verifies the signature")]
    NoKeyVerified {
        /// The fingerprints of every key tried.
        tried: Vec<Fingerprint>,
    },
    /// The payload is signed but not a cosign payload.
    #[error("signed payload is not a cosign simple-signing payload")]
    MalformedPayload(#[source] serde_json::Error),
    /// The payload is of another kind than a cosign image signature.
    #[error("signed payload has type {found:?}, expected {PAYLOAD_TYPE:?}")]
    PayloadType {
        /// The `critical.type` found.
        found: String,
    },
    /// The payload signs another image.
    #[error("signature is for digest {found}, expected {expected}")]
    DigestMismatch {
        /// The digest that should be signed.
        expected: Digest,
        /// `critical.image.docker-manifest-digest` of the payload.
        found: String,
    },
    /// The payload's `docker-reference` is not an image reference.
    #[error("signed payload's docker-reference is not an image reference")]
    MalformedIdentity(#[source] ReferenceError),
    /// The payload was made for another repository.
    #[error("signature is for repository {found}, expected {expected}")]
    IdentityMismatch {
        /// The canonical repository of the image.
        expected: String,
        /// The payload's `docker-reference`, normalised, without tag or digest.
        found: String,
    },
    /// The index bytes kept in the bundle do not have the signed index digest.
    #[error("source index has digest {found}, but the signature is for {expected}")]
    IndexDigestMismatch {
        expected: Digest,
        /// The digest of the index bytes.
        found: Digest,
    },
    /// The index bytes are not an image index.
    #[error("source index {digest} is not an image index")]
    MalformedIndex {
        digest: Digest,
        /// Why not, when it is not a manifest at all.
        #[source]
        source: Option<crate::oci::ManifestError>,
    },
    /// The signed index does not list the bundled manifest.
    #[error("signed index {index} does not list manifest {manifest}")]
    NotAChild {
        index: Digest,
        /// The bundled platform manifest digest.
        manifest: Digest,
    },
}

/// What a signature must vouch for.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The digest that should be signed: the digest the canonical reference resolves to.
    pub signed_digest: &'a Digest,
    /// The image's canonical repository, `registry/repository` as [`Reference::name`] gives
    /// it (e.g. `registry.example.com/acme/plugin`, `docker.io/library/nginx`).
    pub canonical_repository: &'a str,
}

/// A signature that counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The fingerprint of the key that verified it.
    pub fingerprint: Fingerprint,
}

/// The payload as cosign writes it (sigstore's `SimpleContainerImage`); field order and
/// names are those of its JSON.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    critical: Critical,
    /// Free-form claims (`cosign sign -a`); `null` when none.
    #[serde(default)]
    optional: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The image manifest cosign writes, in go-containerregistry's field order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SignatureManifest {
    schema_version: u32,
    media_type: MediaType,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// Checks one cosign signature: `payload` is the layer blob, `signature_b64` its annotation.
/// With `ignore_identity` the repository named in the payload is not compared (for images
/// signed under another name and copied since).
pub fn verify_cosign(
    payload: &[u8],
    signature_b64: &str,
    keys: &KeySet,
    expected: &Expected<'_>,
    ignore_identity: bool,
) -> Result<Verified, SignatureFailure> {
    let der = BASE64
        .decode(signature_b64.trim())
        .map_err(SignatureFailure::SignatureNotBase64)?;
    let signature = Signature::from_der(&der).map_err(|_| SignatureFailure::MalformedSignature)?;
    let prehash: [u8; 32] = Sha256::digest(payload).into();
    let fingerprint = keys
        .verify_prehash(&prehash, &signature)
        .cloned()
        .ok_or_else(|| SignatureFailure::NoKeyVerified {
            tried: keys.fingerprints(),
        })?;

    let payload: Payload =
        serde_json::from_slice(payload).map_err(SignatureFailure::MalformedPayload)?;
    let Critical {
        identity,
        image,
        kind,
    } = payload.critical;
    if kind != PAYLOAD_TYPE {
        return Err(SignatureFailure::PayloadType { found: kind });
    }
    if image.docker_manifest_digest != expected.signed_digest.to_string() {
        return Err(SignatureFailure::DigestMismatch {
            expected: *expected.signed_digest,
            found: image.docker_manifest_digest,
        });
    }
    if !ignore_identity {
        let found = Reference::parse(&identity.docker_reference)
            .map_err(SignatureFailure::MalformedIdentity)?
            .name();
        if found != expected.canonical_repository {
            return Err(SignatureFailure::IdentityMismatch {
                expected: expected.canonical_repository.to_owned(),
                found,
            });
        }
    }
    Ok(Verified { fingerprint })
}

/// Proves that `manifest_digest` is one of the manifests of the index whose bytes are
/// `index`, and that those bytes are the signed index `index_digest`: a signature on a
/// multi-arch index covers the bundled platform manifest only through this link.
pub fn verify_index_child(
    index: &[u8],
    index_digest: &Digest,
    manifest_digest: &Digest,
) -> Result<(), SignatureFailure> {
    let found = Digest::of(index);
    if found != *index_digest {
        return Err(SignatureFailure::IndexDigestMismatch {
            expected: *index_digest,
            found,
        });
    }
    let malformed = |source| SignatureFailure::MalformedIndex {
        digest: *index_digest,
        source,
    };
    let OciManifest::Index(entries) = OciManifest::parse(index)
        .map_err(|error| malformed(Some(error)))?
        .1
    else {
        return Err(malformed(None));
    };
    if entries.iter().any(|child| child.digest == *manifest_digest) {
        Ok(())
    } else {
        Err(SignatureFailure::NotAChild {
            index: *index_digest,
            manifest: *manifest_digest,
        })
    }
}

/// Reads a signature manifest (the `sha256-<hex>.sig` tag's manifest bytes) into its
/// signatures. Layers of other media types are skipped, as cosign does; a payload layer
/// without its signature annotation is refused rather than skipped, since it can only come
/// from a broken or tampered manifest.
pub fn parse_signature_manifest(bytes: &[u8]) -> Result<Vec<CosignLayer>, ManifestError> {
    let (_, manifest) = OciManifest::parse(bytes).map_err(ManifestError::Manifest)?;
    let OciManifest::Image { layers, .. } = manifest else {
        return Err(ManifestError::NoSignatureLayers);
    };
    let layers = layers
        .into_iter()
        .filter(|layer| layer.media_type == MediaType::COSIGN_SIMPLESIGNING)
        .map(|mut layer| {
            let signature = layer.annotations.remove(SIGNATURE_ANNOTATION).ok_or(
                ManifestError::MissingSignature {
                    digest: layer.digest,
                },
            )?;
            Ok(CosignLayer {
                digest: layer.digest,
                size: layer.size,
                signature,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if layers.is_empty() {
        return Err(ManifestError::NoSignatureLayers);
    }
    Ok(layers)
}

/// The payload `cosign sign` writes for `digest` in repository `docker_reference`
/// (cosign writes the repository without tag, e.g. `registry.example.com/acme/plugin`).
pub fn cosign_payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    let payload = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: docker_reference.to_owned(),
            },
            image: Image {
                docker_manifest_digest: digest.to_string(),
            },
            kind: PAYLOAD_TYPE.to_owned(),
        },
        optional: serde_json::Value::Null,
    };
    to_json(&payload)
}

/// Signs a payload as cosign does: base64 of the DER signature over its exact bytes.
pub fn sign_cosign_payload(key: &SigningKey, payload: &[u8]) -> Result<String, SignError> {
    let digest: [u8; 32] = Sha256::digest(payload).into();
    Ok(BASE64.encode(super::sign_digest(&digest, key)?))
}

/// The config blob cosign's signature image carries: an empty image whose root filesystem
/// lists the payload layers, in go-containerregistry's field order.
pub fn cosign_signature_config(layer_digests: &[Digest]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Config<'a> {
        architecture: &'a str,
        created: &'a str,
        history: Vec<History<'a>>,
        os: &'a str,
        rootfs: RootFs<'a>,
        config: Empty,
    }
    #[derive(Serialize)]
    struct History<'a> {
        created: &'a str,
    }
    #[derive(Serialize)]
    struct RootFs<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        diff_ids: Vec<String>,
    }
    #[derive(Serialize)]
    struct Empty {}

    // Go's zero time: cosign leaves every date unset so signatures stay reproducible.
    let created = "0001-01-01T00:00:00Z";
    to_json(&Config {
        architecture: "",
        created,
        history: layer_digests.iter().map(|_| History { created }).collect(),
        os: "",
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layer_digests.iter().map(ToString::to_string).collect(),
        },
        config: Empty {},
    })
}

/// The signature manifest as cosign writes it: each payload descriptor becomes a layer
/// annotated with its signature; `config` describes the [`cosign_signature_config`] blob.
pub fn cosign_signature_manifest(layers: &[(Descriptor, String)], config: &Descriptor) -> Vec<u8> {
    let manifest = SignatureManifest {
        schema_version: 2,
        media_type: MediaType::OCI_MANIFEST,
        config: config.clone(),
        layers: layers
            .iter()
            .map(|(payload, signature)| {
                let mut layer = payload.clone();
                layer
                    .annotations
                    .insert(SIGNATURE_ANNOTATION.to_owned(), signature.clone());
                layer
            })
            .collect(),
    };
    to_json(&manifest)
}

/// Serialises a value made only of strings, numbers and maps with string keys, which
/// `serde_json` cannot fail on.
fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON of strings, numbers and string-keyed maps")
}

#[cfg(test)]
mod tests;
