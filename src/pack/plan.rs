//! The bundle plan of a pack: one record per image, the manifests, configs and
//! signatures held in memory (written inline), the blobs still to fetch, and the
//! provenance `bundle.json` records.

use super::{PackError, PackRequest, Resolved};
use crate::bundle::{self, BundlePlan, ImageRecord, Tool, VeleroInfo};
use crate::config::ClusterConfig;
use crate::oci::Digest;
use crate::plugin::ImageFacts;
use crate::sbom::{SbomImage, SbomInput, write_sbom};
use crate::sign::SignatureRecord;
use crate::values::{self, RenderInputs, Role};

/// The bundle's plan: records, inline manifests and configs, blobs to fill.
pub(super) fn plan(
    request: &PackRequest,
    config: &ClusterConfig,
    rendered: &values::Rendered,
    resolved: &[Resolved],
    facts: &[ImageFacts],
    render_inputs: RenderInputs,
    values_yaml: String,
) -> Result<BundlePlan, PackError> {
    let velero = |role: Role| {
        resolved
            .iter()
            .find(|r| r.role == role)
            .map(|r| r.image.canonical.to_string())
            .unwrap_or_default()
    };
    let tool = Tool {
        name: env!("CARGO_PKG_NAME").to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let source_date_epoch = bundle::source_date_epoch_from_env()?;
    let build_time = source_date_epoch.map(bundle::manifest::rfc3339_utc);
    let sbom_json = write_sbom(&SbomInput {
        tool: &tool,
        velero_release: &request.release.version,
        timestamp: build_time.as_deref(),
        images: resolved
            .iter()
            .zip(facts)
            .map(|(r, facts)| SbomImage {
                role: &r.role,
                reference: &r.image.canonical,
                digest: &r.image.top.digest,
                manifests: &facts.programs,
            })
            .collect(),
    });
    Ok(BundlePlan {
        tool,
        velero: VeleroInfo {
            release: request.release.version.clone(),
            image: velero(Role::Velero),
            aws_plugin_image: velero(Role::AwsPlugin),
        },
        platforms: request
            .platforms
            .to_string()
            .split(',')
            .map(str::to_string)
            .collect(),
        render_inputs,
        images: resolved
            .iter()
            .zip(facts)
            .map(|(r, facts)| record(r, facts, rendered))
            .collect(),
        config_yaml: config.text().as_bytes().to_vec(),
        values_yaml: values_yaml.into_bytes(),
        sbom_json,
        inline_blobs: inline_blobs(resolved),
        blobs: blobs_to_fetch(resolved),
        source_date_epoch,
    })
}

/// What `bundle.json` records about one image.
fn record(resolved: &Resolved, facts: &ImageFacts, rendered: &values::Rendered) -> ImageRecord {
    let image = &resolved.image;
    ImageRecord {
        role: resolved.role.clone(),
        canonical_reference: image.canonical.to_string(),
        digest: image.top.digest,
        media_type: image.top.media_type.clone(),
        size: image.top.size,
        source: image.source.to_string(),
        source_index: image.source_index.as_ref().map(|c| c.descriptor.clone()),
        values_fields: rendered
            .images
            .iter()
            .filter(|u| u.reference == image.canonical)
            .map(|u| u.field.path.clone())
            .collect(),
        signatures: resolved
            .signatures
            .iter()
            .map(|s| SignatureRecord {
                signed_digest: s.signed_digest,
                manifest: s.manifest.descriptor.clone(),
                payloads: s.payloads.iter().map(|p| p.descriptor.clone()).collect(),
            })
            .collect(),
        signature: resolved.signature.clone(),
        plugin: facts.reports.clone(),
    }
}

/// Everything already in memory: manifests, the source indexes, configs, and signature
/// manifests with their payloads.
fn inline_blobs(resolved: &[Resolved]) -> Vec<Vec<u8>> {
    let mut inline = Vec::new();
    for r in resolved {
        let image = &r.image;
        let contents = image
            .manifests
            .iter()
            .chain(&image.source_index)
            .chain(&image.configs);
        inline.extend(contents.map(|c| c.bytes.to_vec()));
        for signature in &r.signatures {
            inline.push(signature.manifest.bytes.to_vec());
            inline.extend(signature.payloads.iter().map(|p| p.bytes.to_vec()));
        }
    }
    inline
}

/// Config and layer blobs still to fetch (configs read while resolving are inline).
fn blobs_to_fetch(resolved: &[Resolved]) -> Vec<bundle::BlobRef> {
    let mut blobs = Vec::new();
    for r in resolved {
        let configs: Vec<&Digest> = r
            .image
            .configs
            .iter()
            .map(|c| &c.descriptor.digest)
            .collect();
        blobs.extend(
            r.image
                .blobs
                .iter()
                .filter(|b| !configs.contains(&&b.digest))
                .map(|b| bundle::BlobRef {
                    digest: b.digest,
                    size: b.size,
                }),
        );
    }
    blobs
}
