//! Cosign signatures at pack time: looked up for each image (through its mirror) and
//! checked under the signature policy.

use futures::{StreamExt, TryStreamExt};

use super::{Event, PackError, PackRequest, Resolved};
use crate::registry::{Registry, ResolvedImage, StoredSignature};
use crate::sign::policy::{bundled_children, signed_digests};
use crate::sign::{FoundSignature, SignaturePolicy, SignatureStatus, Subject};
use crate::values::Role;

/// Looks up and checks each image's cosign signatures (when keys are given), images in
/// parallel. A signature that is present and fails stops the build.
pub(super) async fn check_signatures(
    registry: &Registry,
    resolved: &mut [Resolved],
    request: &PackRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), PackError> {
    let policy = &request.signatures;
    if !policy.checks() {
        // Without keys nothing is looked up; a policy that requires a signature fails
        // here, naming the image.
        for r in resolved.iter() {
            policy.check(&subject(&r.image, &r.role), &[])?;
        }
        events(Event::Warning(
            "image signatures were not checked (no --verify-key); every image is recorded as unsigned".into(),
        ));
        return Ok(());
    }
    let results: Vec<_> = futures::stream::iter(resolved.iter())
        .map(|r| image_signature(registry, &r.image, &r.role, policy))
        .buffered(request.jobs)
        .try_collect()
        .await?;
    for (r, (stored, status)) in resolved.iter_mut().zip(results) {
        if status == SignatureStatus::Unsigned {
            events(Event::Warning(format!(
                "{} has no cosign signature; recorded as unsigned",
                r.image.canonical
            )));
        }
        r.signature = status;
        r.signatures = stored;
    }
    Ok(())
}

/// Looks up one image's cosign signatures (for the index its tag resolves to and for
/// the bundled manifest) and checks them under `policy`.
pub(super) async fn image_signature(
    registry: &Registry,
    image: &ResolvedImage,
    role: &Role,
    policy: &SignaturePolicy,
) -> Result<(Vec<StoredSignature>, SignatureStatus), PackError> {
    let subject = subject(image, role);
    let mut stored = Vec::new();
    for digest in signed_digests(&subject) {
        if let Some(signature) = registry.cosign_signature(image, digest).await? {
            stored.push(signature);
        }
    }
    let found: Vec<FoundSignature<'_>> = stored
        .iter()
        .map(|s| FoundSignature {
            signed_digest: &s.signed_digest,
            manifest: &s.manifest.bytes,
            payloads: s
                .payloads
                .iter()
                .map(|p| (&p.descriptor.digest, &p.bytes[..]))
                .collect(),
        })
        .collect();
    let status = policy.check(&subject, &found)?;
    Ok((stored, status))
}

/// The signature subject of a resolved image.
fn subject<'a>(image: &'a ResolvedImage, role: &'a Role) -> Subject<'a> {
    Subject {
        canonical: &image.canonical,
        role,
        bundled_digest: &image.top.digest,
        source_index: image
            .source_index
            .as_ref()
            .map(|c| (&c.descriptor.digest, &c.bytes[..])),
        bundled_children: bundled_children(
            &image.top.media_type,
            image.manifests.iter().skip(1).map(|m| &m.descriptor.digest),
        ),
    }
}
