//! `validate --online`: every image the values need, resolved, with its platforms and
//! (given keys) its signature checked, and the plugin checks run on the plugin images'
//! layers (streamed into a temp file, read, and dropped) — what a pack would find. The
//! Velero image's layers are read only when a plugin binary is dynamically linked: only
//! then do the checks need them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures::StreamExt;
use serde::Serialize;

use super::signatures::image_signature;
use super::{Event, PackError, Resolved, inspect};
use crate::config::ClusterConfig;
use crate::oci::{Digest, PlatformSelection};
use crate::plugin::{ImageFacts, Judgement, PluginReport, ReadBlobs, check_deployment};
use crate::reference::Reference;
use crate::registry::{Registry, RegistryOptions, ResolvedImage};
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
    /// Plugins (by name) whose unrecognised entrypoint is only a warning.
    pub allow_unrecognised: BTreeSet<String>,
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
    /// For a plugin image, the plugin checks' report of each platform manifest.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub plugin: BTreeMap<Digest, PluginReport>,
}

/// What `validate --online` found.
#[derive(Debug, Clone, Serialize)]
pub struct OnlineReport {
    /// Per image.
    pub images: Vec<OnlineResult>,
    /// How registries were reached, when the user should know (an unverified registry).
    pub warnings: Vec<String>,
}

/// Resolves every image the values need, checks the requested platforms, with keys the
/// signatures, and runs the plugin checks. Per-image failures (plugin findings
/// included) are results, not errors; an image that cannot be inspected is an error.
pub async fn check_online(
    request: &OnlineRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<OnlineReport, PackError> {
    let config = ClusterConfig::load(&request.config)?;
    // Proxy and CA settings change no image: the defaults render the same images.
    let rendered = values::render(&Recipe::from_config(
        &config,
        request.release.clone(),
        RenderInputs::default(),
    ))?;
    super::check_allowed(&request.allow_unrecognised, &rendered, &request.config)?;
    let registry = Registry::new(request.registry.clone())?;
    let registry = &registry;
    let checked: Vec<(OnlineResult, Option<ResolvedImage>)> =
        futures::stream::iter(rendered.distinct_images())
            .map(|(reference, role)| async move {
                match check_image(registry, &reference, &role, request).await {
                    Ok((image, signature)) => (
                        OnlineResult {
                            reference,
                            role,
                            ok: true,
                            digest: Some(image.top.digest),
                            source: Some(image.source.clone()),
                            signature,
                            error: None,
                            plugin: BTreeMap::new(),
                        },
                        Some(image),
                    ),
                    Err(error) => (
                        OnlineResult {
                            reference,
                            role,
                            ok: false,
                            digest: None,
                            source: None,
                            signature: None,
                            error: Some(crate::chain(&error)),
                            plugin: BTreeMap::new(),
                        },
                        None,
                    ),
                }
            })
            .buffered(request.jobs)
            .collect()
            .await;
    let (mut results, resolved): (Vec<OnlineResult>, Vec<Option<ResolvedImage>>) =
        checked.into_iter().unzip();
    let mut resolved: Vec<Resolved> = results
        .iter()
        .zip(resolved)
        .filter_map(|(result, image)| {
            Some(Resolved {
                role: result.role.clone(),
                image: image?,
                signatures: vec![],
                signature: SignatureStatus::Unsigned,
            })
        })
        .collect();
    let facts = check_plugins(registry, &mut resolved, &rendered, request, events).await?;
    for (r, facts) in resolved.iter().zip(facts) {
        if let Some(result) = results
            .iter_mut()
            .find(|result| result.reference == r.image.canonical)
        {
            result.ok &= !facts.reports.values().any(PluginReport::has_errors);
            result.plugin = facts.reports;
        }
    }
    Ok(OnlineReport {
        images: results,
        warnings: registry.warnings(),
    })
}

/// The plugin checks on the resolved images, reading the Velero image only when a
/// plugin binary is dynamic. Findings are reported as events.
async fn check_plugins(
    registry: &Registry,
    resolved: &mut [Resolved],
    rendered: &values::Rendered,
    request: &OnlineRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Vec<ImageFacts>, PackError> {
    let images = inspect::deployment(resolved, rendered)?;
    // Nothing is written: the spool is an unnamed file in the temp directory.
    let spool_beside = std::env::temp_dir().join("velero-airgap-plugin-checks");
    let cancel = tokio_util::sync::CancellationToken::new();
    let reader = inspect::Reader {
        registry,
        jobs: request.jobs,
        cache: None,
        spool_beside: &spool_beside,
        cancel: &cancel,
        events,
    };
    let judgement = Judgement {
        velero_version: &request.release.version,
        allow_unrecognised: &request.allow_unrecognised,
    };
    let mut read = ReadBlobs::default();
    inspect::read_blobs(&reader, resolved, &images, false, &mut read).await?;
    let mut facts = check_deployment(&images, &read, judgement)?;
    let dynamic = facts
        .iter()
        .flat_map(|facts| facts.reports.values())
        .flat_map(|report| &report.binaries)
        .any(|binary| binary.is_static == Some(false));
    if dynamic {
        inspect::read_blobs(&reader, resolved, &images, true, &mut read).await?;
        facts = check_deployment(&images, &read, judgement)?;
    }
    // Errors are per-image results here, not a failure of the run.
    let _ = super::report_findings(&images, &facts, events);
    Ok(facts)
}

async fn check_image(
    registry: &Registry,
    reference: &Reference,
    role: &Role,
    request: &OnlineRequest,
) -> Result<(ResolvedImage, Option<SignatureStatus>), PackError> {
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
    Ok((image, signature))
}
