//! Cosign signatures at build: looked up for each image (through its mirror)
//! and checked under the signature policy.

use super::{BuildError, BuildRequest, Event, Resolved};
use crate::registry::{self, Registry};
use crate::sign::policy::signed_digests;
use crate::sign::{FoundSignature, SignaturePolicy, SignatureStatus, Subject};
use futures::{StreamExt, TryStreamExt};

/// Looks up and checks each image's cosign signatures (when keys are given),
/// images in parallel. A signature that is present and fails stops the build.
pub(super) async fn check_signatures(
    registry: &Registry,
    resolved: &mut [Resolved],
    request: &BuildRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), BuildError> {
    let policy = &request.signatures;
    if !policy.checks() {
        // Without keys nothing is looked up; a policy that requires a signature
        // fails here, naming the image.
        for r in resolved.iter() {
            let canonical = crate::reference::Reference::parse(&r.image.canonical)
                .map_err(|e| BuildError::Digest(e.to_string()))?;
            policy.check(&subject(r, &canonical), &[])?;
        }
        events(Event::Warning(
            "image signatures were not checked (no --verify-key); every image is recorded as unsigned".into(),
        ));
        return Ok(());
    }
    let results: Vec<_> = futures::stream::iter(resolved.iter())
        .map(|r| image_signature(registry, r, policy))
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

/// Looks up one image's cosign signatures (for the index its tag resolves to
/// and for the bundled manifest) and checks them under `policy`.
pub(super) async fn image_signature(
    registry: &Registry,
    r: &Resolved,
    policy: &SignaturePolicy,
) -> Result<(Vec<registry::StoredSignature>, SignatureStatus), BuildError> {
    let canonical = crate::reference::Reference::parse(&r.image.canonical)
        .map_err(|e| BuildError::Digest(e.to_string()))?;
    let subject = subject(r, &canonical);
    let mut stored = Vec::new();
    for digest in signed_digests(&subject) {
        if let Some(signature) = registry.cosign_signature(&r.image, digest).await? {
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
                .map(|p| (p.descriptor.digest.as_str(), &p.bytes[..]))
                .collect(),
        })
        .collect();
    let status = policy.check(&subject, &found)?;
    Ok((stored, status))
}

/// The signature subject of a resolved image.
fn subject<'a>(r: &'a Resolved, canonical: &'a crate::reference::Reference) -> Subject<'a> {
    Subject {
        canonical,
        role: &r.role,
        bundled_digest: &r.image.top.digest,
        source_index: r
            .image
            .source_index
            .as_ref()
            .map(|c| (c.descriptor.digest.as_str(), &c.bytes[..])),
        bundled_children: bundled_children(
            &r.image.top.media_type,
            r.image
                .manifests
                .iter()
                .skip(1)
                .map(|m| m.descriptor.digest.as_str()),
        ),
    }
}

/// The children of a bundled index (a filtered platform list), which a
/// signature on the source index must cover; none for a single manifest.
pub(crate) fn bundled_children<'a>(
    media_type: &str,
    manifests: impl Iterator<Item = &'a str>,
) -> Vec<&'a str> {
    if media_type == registry::OCI_INDEX || media_type == registry::DOCKER_LIST {
        manifests.collect()
    } else {
        Vec::new()
    }
}
