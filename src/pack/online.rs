//! `validate --online`: every image the values need, resolved without pulling its layers,
//! with its platforms and (given keys) its signature checked — what a pack would find
//! before it fetches anything.

use std::path::PathBuf;

use futures::StreamExt;
use serde::Serialize;

use super::PackError;
use super::signatures::image_signature;
use crate::config::ClusterConfig;
use crate::oci::{Digest, PlatformSelection};
use crate::reference::Reference;
use crate::registry::{Registry, RegistryOptions};
use crate::release::Release;
use crate::sign::{SignaturePolicy, SignatureStatus};
use crate::values::{self, Recipe, RenderInputs, Role};

/// What to check online.
#[derive(Debug, Clone)]
pub struct OnlineRequest {
    /// The Embedded Cluster config file.
    pub config: PathBuf,
    pub release: Release,
    /// Platforms every image must have.
    pub platforms: PlatformSelection,
    /// How to reach registries.
    pub registry: RegistryOptions,
    /// Parallel requests.
    pub jobs: usize,
    /// Which image signatures to check, with which keys.
    pub signatures: SignaturePolicy,
}

/// One image as `validate --online` saw it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnlineResult {
    /// Canonical reference.
    pub reference: Reference,
    /// What it is for.
    pub role: Role,
    /// Whether it resolved, has the platforms and (with keys) a valid signature.
    pub ok: bool,
    /// The digest the bundle would carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Where it was looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Reference>,
    /// Signature status, when keys were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureStatus>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `validate --online` found.
#[derive(Debug, Clone, Serialize)]
pub struct OnlineReport {
    /// Per image.
    pub images: Vec<OnlineResult>,
    /// How registries were reached, when the user should know (an unverified registry).
    pub warnings: Vec<String>,
}

/// Resolves every image the values need (manifests only, no layers), checks the
/// requested platforms and, with keys, the signatures. Per-image failures are results,
/// not errors.
pub async fn check_online(request: &OnlineRequest) -> Result<OnlineReport, PackError> {
    let config = ClusterConfig::load(&request.config)?;
    // Proxy and CA settings change no image: the defaults render the same images.
    let rendered = values::render(&Recipe::from_config(
        &config,
        request.release.clone(),
        RenderInputs::default(),
    ))?;
    let registry = Registry::new(request.registry.clone())?;
    let registry = &registry;
    let images = futures::stream::iter(rendered.distinct_images())
        .map(|(reference, role)| async move {
            match check_image(registry, &reference, &role, request).await {
                Ok((digest, source, signature)) => OnlineResult {
                    reference,
                    role,
                    ok: true,
                    digest: Some(digest),
                    source: Some(source),
                    signature,
                    error: None,
                },
                Err(error) => OnlineResult {
                    reference,
                    role,
                    ok: false,
                    digest: None,
                    source: None,
                    signature: None,
                    error: Some(crate::chain(&error)),
                },
            }
        })
        .buffered(request.jobs)
        .collect()
        .await;
    Ok(OnlineReport {
        images,
        warnings: registry.warnings(),
    })
}

async fn check_image(
    registry: &Registry,
    reference: &Reference,
    role: &Role,
    request: &OnlineRequest,
) -> Result<(Digest, Reference, Option<SignatureStatus>), PackError> {
    let image = registry.resolve(reference, &request.platforms).await?;
    let signature = if request.signatures.checks() {
        Some(
            image_signature(registry, &image, role, &request.signatures)
                .await?
                .1,
        )
    } else {
        None
    };
    Ok((image.top.digest, image.source.clone(), signature))
}
