//! Cosign signatures in the registry an image was pulled from: the manifest
//! under tag `sha256-<hex>.sig` and its simple-signing payload blobs.

use super::{Registry, RegistryError, ResolvedImage};
use crate::oci::{Content, Descriptor, Digest, MediaType};
use crate::sign;

/// Payloads are a few hundred bytes; anything much larger is not one.
const PAYLOAD_LIMIT: u64 = 1 << 20;

/// A signature as the registry stores it.
#[derive(Debug, Clone)]
pub struct StoredSignature {
    pub signed_digest: Digest,
    /// The signature manifest, byte for byte.
    pub manifest: Content,
    /// Its payload layers, byte for byte.
    pub payloads: Vec<Content>,
}

impl Registry {
    /// The cosign signature of `digest` in the repository `image` was pulled
    /// from (through its mirror), or `None` when there is no signature tag.
    pub async fn cosign_signature(
        &self,
        image: &ResolvedImage,
        digest: &Digest,
    ) -> Result<Option<StoredSignature>, RegistryError> {
        let session = self.session(&image.canonical, &image.source)?;
        let bytes = match session.manifest_named(&sign::cosign_tag(digest)).await {
            Ok(bytes) => bytes,
            Err(RegistryError::NotFound { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        let unusable = |reason: String| RegistryError::UnsupportedManifest {
            reference: format!("{} (signature of {digest})", image.canonical),
            reason,
        };
        let layers = sign::parse_signature_manifest(&bytes).map_err(|e| unusable(e.to_string()))?;
        let mut payloads = Vec::new();
        for layer in layers {
            if layer.size > PAYLOAD_LIMIT {
                return Err(unusable(format!(
                    "payload {} is {} bytes, more than a signature payload",
                    layer.digest, layer.size
                )));
            }
            let descriptor =
                Descriptor::new(MediaType::COSIGN_SIMPLESIGNING, layer.digest, layer.size);
            let mut payload = Vec::new();
            session.fetch_blob(&descriptor, &mut payload).await?;
            payloads.push(Content {
                descriptor,
                bytes: payload.into(),
            });
        }
        Ok(Some(StoredSignature {
            signed_digest: *digest,
            manifest: Content::new(MediaType::OCI_MANIFEST, bytes),
            payloads,
        }))
    }
}
