//! `pack` (the `build` command): from a cluster config to one bundle file.
//!
//! Every name, size and digest of the bundle is known once the manifests are resolved,
//! before a single blob is fetched. So the bundle is laid out first and each blob is
//! written once, straight from the socket into its place in the archive, many at a time.
//! The steps, in order: check the config → render the values → resolve every image →
//! check signatures → fetch and check the plugin and Velero images (see [`inspect`]
//! for why this comes before the layout) → plan the bundle → fill the blobs → finish
//! (hash, compress, rename) → sign.

mod fill;
mod inspect;
pub mod online;
mod plan;
mod signatures;
mod spool;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use crate::bundle::{self, BundleWriter, WrittenBundle};
use crate::config::{ClusterConfig, ConfigError};
use crate::files::{self, FileError, Privacy};
use crate::oci::{Digest, ImageConfig, PlatformSelection};
use crate::plugin::{
    DeploymentImage, ImageFacts, InspectError, Judgement, PluginReport, ReadBlobs,
    Severity as FindingSeverity, check_deployment, codes,
};
use crate::reference::Reference;
use crate::registry::{self, Registry, RegistryError, RegistryOptions};
use crate::release::Release;
use crate::sign::{Fingerprint, SignaturePolicy, SignatureStatus, SigningKey};
use crate::validate::{self, Severity};
use crate::values::{self, Recipe, RenderInputs, Role};

/// What to pack.
#[derive(Debug, Clone)]
pub struct PackRequest {
    /// The Embedded Cluster config file.
    pub config: PathBuf,
    pub release: Release,
    /// What the values are rendered from besides the config (the image users are
    /// filled in once the images are resolved).
    pub render_inputs: RenderInputs,
    /// Platforms to keep.
    pub platforms: PlatformSelection,
    /// How to reach registries.
    pub registry: RegistryOptions,
    /// Parallel requests.
    pub jobs: usize,
    /// Content-addressed blob cache.
    pub cache_dir: Option<PathBuf>,
    /// Bundle override values that carry literal secrets.
    pub allow_secrets: bool,
    /// The bundle file to write.
    pub output: PathBuf,
    /// Which image signatures to check, with which keys.
    pub signatures: SignaturePolicy,
    /// Sign the bundle file with this key (`BUNDLE.sig`).
    pub sign_key: Option<SigningKey>,
    /// Whether the plugin checks read the images' layers. Only the benchmark turns this
    /// off, to measure what the checks cost; the bundle then has no plugin reports and
    /// an SBOM without programs.
    pub inspect_layers: bool,
    /// Cancelled on Ctrl-C: the bundle is then never put in place.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Progress, for the caller to draw.
#[derive(Debug, Clone)]
pub enum Event {
    /// The layers of the plugin images and of the Velero image are being fetched and
    /// read for the plugin checks.
    Inspecting {
        /// Images read.
        images: usize,
        /// Distinct layers to read.
        layers: usize,
        bytes: u64,
    },
    /// What the plugin checks found about one plugin image on one platform.
    PluginFinding {
        /// `plugin NAME` or `the AWS plugin`, with the reference and platform.
        subject: String,
        finding: crate::plugin::Finding,
    },
    /// An image's manifests were resolved.
    Resolved {
        /// Canonical reference.
        reference: String,
        /// Digest listed in `index.json`.
        digest: String,
        /// Config and layer blobs.
        blobs: usize,
        bytes: u64,
    },
    /// The bundle is laid out; blobs are about to be fetched.
    Planned {
        /// Images in the bundle.
        images: usize,
        /// Their config and layer blobs, each once (as every command counts blobs).
        blobs: usize,
        bytes: u64,
        /// Bytes of those already in the bundle (configs read while resolving).
        written: u64,
        /// How many come from the cache.
        cached: usize,
    },
    /// Bytes written into the bundle.
    BlobProgress {
        /// How many since the last event.
        bytes: u64,
    },
    /// Every blob of an image is in the bundle.
    ImagePulled {
        /// Canonical reference.
        reference: String,
    },
    /// All blobs are in; the bundle is being completed (hash, compression).
    Finishing,
    /// Something the user should know that does not stop the build.
    Warning(String),
}

/// What was packed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackSummary {
    pub bundle: PathBuf,
    pub sidecar: PathBuf,
    /// SHA-256 of the bundle file.
    pub sha256: String,
    /// Size of the bundle file.
    pub size: u64,
    /// Images in the bundle.
    pub images: usize,
    /// The images' config and layer blobs, each once
    /// ([`bundle::BundleManifest::content_blobs`]).
    pub blobs: usize,
    /// Of those, fetched from a registry.
    pub blobs_fetched: usize,
    /// Of those, copied from the cache.
    pub blobs_cached: usize,
    /// Bytes of those blobs.
    pub bytes: u64,
    /// Per image: role, canonical reference, digest.
    pub image_lock: Vec<LockedImage>,
    /// The detached bundle signature, when the bundle was signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_signature: Option<PathBuf>,
    /// Fingerprint of the key that signed the bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_key_fingerprint: Option<Fingerprint>,
    /// The plugin checks' reports, per plugin image.
    pub plugins: Vec<PluginImage>,
}

/// The reports of one plugin image, as `bundle.json` records them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginImage {
    pub role: Role,
    pub reference: Reference,
    /// Per platform manifest.
    pub reports: std::collections::BTreeMap<Digest, PluginReport>,
}

/// One image of the summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockedImage {
    /// What it is for.
    pub role: Role,
    /// Canonical reference.
    pub reference: Reference,
    /// Digest in `index.json`.
    pub digest: crate::oci::Digest,
    /// Where it was pulled from.
    pub source: Reference,
    /// Signature status.
    pub signature: SignatureStatus,
}

/// Why packing failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The config cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config has validation errors.
    #[error("{file}: {first}{more}; run `velero-airgap validate -c {file}` for all findings")]
    Invalid {
        file: String,
        first: String,
        /// ` (and N more)` or empty.
        more: String,
    },
    /// Override values carry literal secrets and `--allow-secrets` was not given.
    #[error(
        "{file}: {path} carries a literal secret that would be copied into the bundle; remove it (create the secret on the cluster) or pass --allow-secrets"
    )]
    Secrets {
        file: String,
        /// Where the secret is.
        path: String,
    },
    /// A proxy URL carries credentials and `--allow-secrets` was not given.
    #[error(transparent)]
    ProxySecret(#[from] values::ProxyCredentialsError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] values::RenderError),
    /// Talking to a registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An image's signatures do not satisfy the policy.
    #[error(transparent)]
    Signature(#[from] crate::sign::PolicyError),
    /// The bundle could not be signed.
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
    /// A plugin or Velero image could not be inspected.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// The plugin checks found errors (each was reported as an event).
    #[error("{first}{more}")]
    PluginChecks {
        first: String,
        /// ` (and N more errors above)` or empty.
        more: String,
    },
    /// `--allow-unrecognised-plugin` names no plugin of the config.
    #[error("--allow-unrecognised-plugin {name}: {file} has no plugin of that name")]
    UnknownAllowedPlugin { name: String, file: String },
    /// Some images lack requested platforms.
    #[error("missing platforms: {}", .0.join("; "))]
    MissingPlatforms(Vec<String>),
    /// The bundle could not be laid out.
    #[error(transparent)]
    Plan(#[from] bundle::PlanError),
    /// The bundle could not be written.
    #[error(transparent)]
    Write(#[from] bundle::WriteError),
    /// A local file (the cache, the bundle signature).
    #[error(transparent)]
    File(#[from] FileError),
}

impl PackError {
    /// The class of this error, looking through the errors it wraps.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            PackError::Config(error) => error.kind(),
            PackError::Registry(error) => error.kind(),
            PackError::Sign(error) => error.kind(),
            PackError::Write(error) => error.kind(),
            PackError::File(error) => error.kind(),
            PackError::Plan(_)
            | PackError::Invalid { .. }
            | PackError::Secrets { .. }
            | PackError::ProxySecret(_)
            | PackError::Render(_)
            | PackError::Signature(_)
            | PackError::Inspect(_)
            | PackError::PluginChecks { .. }
            | PackError::UnknownAllowedPlugin { .. }
            | PackError::MissingPlatforms(_) => crate::ErrorKind::Input,
        }
    }
}

/// An image resolved, with its role and signatures.
pub(crate) struct Resolved {
    role: Role,
    image: registry::ResolvedImage,
    signatures: Vec<registry::StoredSignature>,
    signature: SignatureStatus,
}

/// Packs the bundle. Nothing is left at `request.output` unless packing succeeds: the
/// writer works on a temp file beside it.
pub async fn pack(
    request: PackRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<PackSummary, PackError> {
    // A wrong output name fails before any network work.
    if bundle::Compression::from_file_name(&request.output).is_none() {
        return Err(bundle::WriteError::UnsupportedFileName {
            path: request.output.clone(),
        }
        .into());
    }
    let config = ClusterConfig::load(&request.config)?;
    check_config(&config, &request)?;
    let recipe = Recipe::from_config(
        &config,
        request.release.clone(),
        request.render_inputs.clone(),
    );
    let rendered = values::render(&recipe)?;
    request
        .signatures
        .check_names(rendered.images.iter().map(|u| &u.field.role))?;

    let registry = Registry::new(request.registry.clone())?;
    let mut warned = 0;
    let resolved = resolve_all(
        &registry,
        &rendered,
        &request.platforms,
        request.jobs,
        events,
    )
    .await;
    // Every source registry is contacted while resolving: say how each was reached (an
    // insecure one), once, even when resolving failed.
    warn_about_registries(&registry, &mut warned, events);
    let mut resolved = resolved?;
    let checked = signatures::check_signatures(&registry, &mut resolved, &request, events).await;
    warn_about_registries(&registry, &mut warned, events);
    checked?;
    let (facts, spool) =
        check_plugins(&registry, &mut resolved, &rendered, &request, events).await?;

    let pins = resolved
        .iter()
        .map(|r| (r.image.canonical.clone(), r.image.top.digest))
        .collect();
    // The images' users decide runAsNonRoot: render again now that they are known.
    let recipe = Recipe {
        inputs: RenderInputs {
            plugin_users: plugin_users(&resolved),
            ..recipe.inputs
        },
        ..recipe
    };
    let values_yaml = values::airgap_values(&recipe, &pins)?;
    let plan = plan::plan(
        &request,
        &config,
        &rendered,
        &resolved,
        &facts,
        recipe.inputs,
        values_yaml,
    )?;
    let writer = BundleWriter::create(&request.output, plan)?;
    let counts = fill::fill_blobs(
        &writer,
        &registry,
        &resolved,
        spool.as_deref(),
        &request,
        events,
    )
    .await?;
    events(Event::Finishing);
    let written = finish(writer, &request.cancel).await?;
    let (bundle_signature, bundle_key_fingerprint) = sign_bundle(&written, &request)?;
    Ok(PackSummary {
        bundle: written.path,
        sidecar: written.sidecar,
        sha256: written.sha256.hex(),
        size: written.size,
        images: resolved.len(),
        blobs: counts.blobs,
        blobs_fetched: counts.blobs - counts.cached,
        blobs_cached: counts.cached,
        bytes: counts.bytes,
        image_lock: resolved
            .iter()
            .map(|r| LockedImage {
                role: r.role.clone(),
                reference: r.image.canonical.clone(),
                digest: r.image.top.digest,
                source: r.image.source.clone(),
                signature: r.signature.clone(),
            })
            .collect(),
        bundle_signature,
        bundle_key_fingerprint,
        plugins: resolved
            .iter()
            .zip(facts)
            .filter(|(_, facts)| !facts.reports.is_empty())
            .map(|(r, facts)| PluginImage {
                role: r.role.clone(),
                reference: r.image.canonical.clone(),
                reports: facts.reports,
            })
            .collect(),
    })
}

/// The plugin checks: every plugin image and the Velero image read (their layers stay
/// in the returned spool for the bundle), every finding reported as an event, and an
/// error when any finding is one.
async fn check_plugins(
    registry: &Registry,
    resolved: &mut [Resolved],
    rendered: &values::Rendered,
    request: &PackRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(Vec<ImageFacts>, Option<Arc<spool::Spool>>), PackError> {
    check_allowed(
        &request.render_inputs.allow_unrecognised_plugins,
        rendered,
        &request.config,
    )?;
    if !request.inspect_layers {
        events(Event::Warning(
            "the plugin checks are off (benchmark switch): the bundle has no plugin reports".into(),
        ));
        return Ok((vec![ImageFacts::default(); resolved.len()], None));
    }
    let images = inspect::deployment(resolved, rendered)?;
    let reader = inspect::Reader {
        registry,
        jobs: request.jobs,
        cache: request.cache_dir.as_deref(),
        spool_beside: &request.output,
        cancel: &request.cancel,
        events,
    };
    let mut read = ReadBlobs::default();
    let spool = inspect::read_blobs(&reader, resolved, &images, true, &mut read).await?;
    let judgement = Judgement {
        velero_version: &request.release.version,
        allow_unrecognised: &request.render_inputs.allow_unrecognised_plugins,
    };
    let facts = check_deployment(&images, &read, judgement)?;
    report_findings(&images, &facts, events)?;
    Ok((facts, Some(spool)))
}

/// `--allow-unrecognised-plugin` must name plugins of the config.
pub(crate) fn check_allowed(
    allowed: &BTreeSet<String>,
    rendered: &values::Rendered,
    config: &Path,
) -> Result<(), PackError> {
    for name in allowed {
        let known = rendered
            .images
            .iter()
            .any(|use_| matches!(&use_.field.role, Role::Plugin(plugin) if plugin == name));
        if !known {
            return Err(PackError::UnknownAllowedPlugin {
                name: name.clone(),
                file: config.display().to_string(),
            });
        }
    }
    Ok(())
}

/// Reports every finding as an event, and fails on the first error.
pub(crate) fn report_findings(
    images: &[DeploymentImage],
    facts: &[ImageFacts],
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), PackError> {
    let mut errors = Vec::new();
    for (image, facts) in images.iter().zip(facts) {
        for report in facts.reports.values() {
            let subject = plugin_subject(image, &report.platform);
            for finding in &report.findings {
                if finding.severity == FindingSeverity::Error {
                    let hint = match image.roles.iter().find_map(|role| match role {
                        Role::Plugin(name) if finding.code == codes::NOT_A_PLUGIN => Some(name),
                        _ => None,
                    }) {
                        Some(name) => format!(
                            " (if it is one all the same, pass --allow-unrecognised-plugin {name})"
                        ),
                        None => String::new(),
                    };
                    errors.push(format!("{subject}: {}{hint}", finding.message));
                }
                events(Event::PluginFinding {
                    subject: subject.clone(),
                    finding: finding.clone(),
                });
            }
        }
    }
    match errors.first() {
        None => Ok(()),
        Some(first) => Err(PackError::PluginChecks {
            first: first.clone(),
            more: match errors.len() {
                1 => String::new(),
                n => format!(" (and {} more errors above)", n - 1),
            },
        }),
    }
}

/// How findings name a plugin image: `plugin NAME (REFERENCE, PLATFORM)`.
pub(crate) fn plugin_subject(image: &DeploymentImage, platform: &str) -> String {
    let names: Vec<String> = image
        .roles
        .iter()
        .filter_map(|role| match role {
            Role::Plugin(name) => Some(format!("plugin {name}")),
            Role::AwsPlugin => Some("the AWS plugin".to_string()),
            _ => None,
        })
        .collect();
    format!("{} ({}, {platform})", names.join(" and "), image.reference)
}

/// The `User` of each plugin image by initContainer name, where every bundled platform's
/// config names the same one.
fn plugin_users(resolved: &[Resolved]) -> BTreeMap<String, String> {
    resolved
        .iter()
        .filter_map(|r| {
            let container = match &r.role {
                Role::AwsPlugin => values::images::AWS_PLUGIN_CONTAINER.to_string(),
                Role::Plugin(name) => name.clone(),
                Role::Velero | Role::Other => return None,
            };
            let mut users = r.image.configs.iter().map(|config| {
                ImageConfig::parse(&config.bytes)
                    .ok()
                    .and_then(|config| config.user)
            });
            let first = users.next()??;
            users
                .all(|user| user.as_ref() == Some(&first))
                .then_some((container, first))
        })
        .collect()
}

/// Emits the registry's warnings (an insecure host reached without verified TLS or over
/// plain HTTP) that `warned` did not count yet: each once per host.
fn warn_about_registries(registry: &Registry, warned: &mut usize, events: &(dyn Fn(Event) + Sync)) {
    let warnings = registry.warnings();
    for warning in warnings.iter().skip(*warned) {
        events(Event::Warning(warning.clone()));
    }
    *warned = warnings.len();
}

/// Refuses configs with validation errors, and literal secrets (in the overrides, or a
/// proxy URL's credentials) unless allowed.
fn check_config(config: &ClusterConfig, request: &PackRequest) -> Result<(), PackError> {
    let file = request.config.display().to_string();
    let options = validate::Options {
        release: request.release.clone(),
        local_registry: values::DEFAULT_LOCAL_REGISTRY.to_string(),
    };
    let findings = validate::validate(config, &options);
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if let Some(first) = errors.first() {
        return Err(PackError::Invalid {
            file,
            first: first.to_string(),
            more: match errors.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            },
        });
    }
    request
        .render_inputs
        .proxy
        .check_secrets(request.allow_secrets)?;
    if !request.allow_secrets {
        for over in config.velero_overrides() {
            if let Ok(values) = &over.values
                && let Some((inner, _)) = validate::literal_secrets(values).into_iter().next()
            {
                return Err(PackError::Secrets {
                    file,
                    path: format!("{} ({inner})", over.values_path),
                });
            }
        }
    }
    Ok(())
}

/// Resolves every distinct image in parallel, keeping first-use order. Missing platforms
/// are gathered into one error listing every image.
async fn resolve_all(
    registry: &Registry,
    rendered: &values::Rendered,
    platforms: &PlatformSelection,
    jobs: usize,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Vec<Resolved>, PackError> {
    let results: Vec<_> = futures::stream::iter(rendered.distinct_images())
        .map(|(reference, role)| async move {
            let image = registry.resolve(&reference, platforms).await?;
            events(Event::Resolved {
                reference: image.canonical.to_string(),
                digest: image.top.digest.to_string(),
                blobs: image.blobs.len(),
                bytes: image.blobs.iter().map(|b| b.size).sum(),
            });
            Ok::<_, RegistryError>(Resolved {
                role,
                image,
                signatures: vec![],
                signature: SignatureStatus::Unsigned,
            })
        })
        .buffered(jobs)
        .collect()
        .await;
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    for result in results {
        match result {
            Ok(r) => resolved.push(r),
            Err(err @ RegistryError::MissingPlatform { .. }) => missing.push(err.to_string()),
            Err(err) => return Err(err.into()),
        }
    }
    if !missing.is_empty() {
        return Err(PackError::MissingPlatforms(missing));
    }
    Ok(resolved)
}

/// Completes the bundle (hash, compression, rename) on a blocking thread. That thread
/// outlives a dropped future, so a watcher aborts it on Ctrl-C before the bundle is
/// renamed into place.
async fn finish(
    writer: BundleWriter,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<WrittenBundle, PackError> {
    let abort = writer.abort_handle();
    let token = cancel.clone();
    let watcher = tokio::spawn(async move {
        token.cancelled().await;
        abort.abort();
    });
    let written = crate::task::blocking(move || writer.finish()).await;
    watcher.abort();
    Ok(written?)
}

/// Writes `BUNDLE.sig` when a key is given, and otherwise removes a signature left from
/// an earlier build, which would not match this bundle.
fn sign_bundle(
    written: &WrittenBundle,
    request: &PackRequest,
) -> Result<(Option<PathBuf>, Option<Fingerprint>), PackError> {
    let path = bundle::signature_path(&written.path);
    let Some(key) = &request.sign_key else {
        remove_stale(&path)?;
        return Ok((None, None));
    };
    let signature = crate::sign::sign_digest(written.sha256.as_bytes(), key)?;
    files::write_atomic(&path, &signature, Privacy::Shared)?;
    Ok((Some(path), Some(key.public_key().fingerprint().clone())))
}

fn remove_stale(path: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(FileError::Write {
            path: path.to_path_buf(),
            source: error,
        }),
        _ => Ok(()),
    }
}
