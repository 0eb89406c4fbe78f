//! `build`: from a cluster config to one bundle file.
//!
//! Every name, size and digest of the bundle is known once the manifests are
//! resolved, before a single blob is fetched. So the bundle is laid out first and
//! each blob is written once, straight from the socket into its place in the
//! archive, many at a time.

mod fill;
mod online;
mod signatures;

pub use online::{OnlineResult, check_online};
pub(crate) use signatures::bundled_children;

use crate::bundle::{self, BundlePlan, BundleWriter, ImageRecord, Sha256Digest, Tool, VeleroInfo};
use crate::config::{ClusterConfig, ConfigError};
use crate::registry::{self, PlatformSelection, Registry, RegistryError, RegistryOptions};
use crate::release::Release;
use crate::sign::{SignaturePolicy, SignatureStatus, SigningKey};
use crate::validate::{self, Severity};
use crate::values::{self, ProxySettings, Role};
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The Embedded Cluster config file.
    pub config: PathBuf,
    /// The Velero release.
    pub release: Release,
    /// Install-time proxy settings rendered into the values.
    pub proxy: ProxySettings,
    /// Host CA bundle path rendered into the values.
    pub host_ca_bundle: Option<String>,
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
    /// Cancelled on Ctrl-C: the bundle is then never put in place.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Progress, for the caller to draw.
#[derive(Debug, Clone)]
pub enum Event {
    /// An image's manifests were resolved.
    Resolved {
        /// Canonical reference.
        reference: String,
        /// Digest listed in `index.json`.
        digest: String,
        /// Config and layer blobs.
        blobs: usize,
        /// Their total size.
        bytes: u64,
    },
    /// The bundle is laid out; blobs are about to be fetched.
    Planned {
        /// Images in the bundle.
        images: usize,
        /// Distinct blobs to fill.
        blobs: usize,
        /// Their total size.
        bytes: u64,
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

/// What was built.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSummary {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Its sidecar checksum file.
    pub sidecar: PathBuf,
    /// SHA-256 of the bundle file.
    pub sha256: String,
    /// Size of the bundle file.
    pub size: u64,
    /// Images in the bundle.
    pub images: usize,
    /// Distinct blobs filled after the layout (configs and layers).
    pub blobs: usize,
    /// Blobs fetched from a registry.
    pub blobs_fetched: usize,
    /// Blobs copied from the cache.
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
    pub bundle_key_fingerprint: Option<String>,
}

/// One image of the summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockedImage {
    /// What it is for.
    pub role: String,
    /// Canonical reference.
    pub reference: String,
    /// Digest in `index.json`.
    pub digest: String,
    /// Where it was pulled from.
    pub source: String,
    /// Signature status.
    pub signature: crate::sign::SignatureStatus,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config has validation errors.
    #[error("{file}: {first}{more}; run `velero-airgap validate -c {file}` for all findings")]
    Invalid {
        /// The config file.
        file: String,
        /// The first error.
        first: String,
        /// ` (and N more)` or empty.
        more: String,
    },
    /// Override values carry literal secrets and `--allow-secrets` was not given.
    #[error(
        "{file}: {path} carries a literal secret that would be copied into the bundle; remove it (create the secret on the cluster) or pass --allow-secrets"
    )]
    Secrets {
        /// The config file.
        file: String,
        /// Where the secret is.
        path: String,
    },
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
    /// Some images lack requested platforms.
    #[error("missing platforms: {}", .0.join("; "))]
    MissingPlatforms(Vec<String>),
    /// The bundle could not be laid out.
    #[error(transparent)]
    Plan(#[from] bundle::PlanError),
    /// The bundle could not be written.
    #[error(transparent)]
    Write(#[from] bundle::WriteError),
    /// A registry named content by a digest that is not sha256, or the bundle
    /// asked for a blob no image has: a defect, reported rather than hidden.
    #[error("unexpected digest {0}")]
    Digest(String),
    /// Local I/O (cache).
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// An image resolved, with its role and signatures.
struct Resolved {
    role: Role,
    image: registry::ResolvedImage,
    signatures: Vec<registry::StoredSignature>,
    signature: SignatureStatus,
}

/// Builds the bundle. Nothing is left at `request.output` unless the build
/// succeeds: the writer works on a temp file beside it.
pub async fn build(
    request: BuildRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<BuildSummary, BuildError> {
    // A wrong output name fails before any network work.
    if bundle::Compression::from_file_name(&request.output).is_none() {
        return Err(bundle::WriteError::UnsupportedFileName {
            path: request.output.clone(),
        }
        .into());
    }
    let file = request.config.display().to_string();
    let config = ClusterConfig::load(&request.config)?;
    check_config(&config, &request, &file)?;
    let rendered = render(&config, &request)?;

    request
        .signatures
        .check_names(rendered.images.iter().map(|u| &u.field.role))?;
    let registry = Registry::new(request.registry.clone())?;
    let mut resolved = resolve_all(&registry, &rendered, &request, events).await?;
    signatures::check_signatures(&registry, &mut resolved, &request, events).await?;

    let pins: BTreeMap<String, String> = resolved
        .iter()
        .map(|r| (r.image.canonical.clone(), r.image.top.digest.clone()))
        .collect();
    let values = values::to_airgap(&rendered, values::DEFAULT_LOCAL_REGISTRY, &pins)?;
    let plan = plan(
        &request,
        &config,
        &rendered,
        &resolved,
        values::to_yaml(&values),
    )?;
    let writer = BundleWriter::create(&request.output, plan)?;

    let counts = fill::fill_blobs(&writer, &registry, &resolved, &request, events).await?;
    events(Event::Finishing);
    let output = request.output.clone();
    // Finishing runs on a blocking thread that outlives a dropped future: a
    // watcher aborts it on Ctrl-C, before the bundle is renamed into place.
    let abort = writer.abort_handle();
    let token = request.cancel.clone();
    let watcher = tokio::spawn(async move {
        token.cancelled().await;
        abort.abort();
    });
    let written = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .map_err(|join| BuildError::Io {
            path: output.clone(),
            source: std::io::Error::other(join.to_string()),
        });
    watcher.abort();
    let written = written??;
    let (bundle_signature, bundle_key_fingerprint) = match &request.sign_key {
        Some(key) => {
            let signature = crate::sign::sign_digest(written.sha256.as_bytes(), key)?;
            let path = signature_path(&written.path);
            write_beside(&path, &signature)?;
            (Some(path), Some(key.public_key().fingerprint().to_string()))
        }
        None => {
            // A signature left from an earlier build would not match this bundle.
            let stale = signature_path(&written.path);
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|source| BuildError::Io {
                    path: stale.clone(),
                    source,
                })?;
            }
            (None, None)
        }
    };
    Ok(BuildSummary {
        bundle: written.path,
        sidecar: written.sidecar,
        sha256: written.sha256.hex(),
        size: written.size,
        images: resolved.len(),
        blobs: counts.fetched + counts.cached,
        blobs_fetched: counts.fetched,
        blobs_cached: counts.cached,
        bytes: counts.bytes,
        image_lock: resolved
            .iter()
            .map(|r| LockedImage {
                role: r.role.to_string(),
                reference: r.image.canonical.clone(),
                digest: r.image.top.digest.clone(),
                source: r.image.source.clone(),
                signature: r.signature.clone(),
            })
            .collect(),
        bundle_signature,
        bundle_key_fingerprint,
    })
}

/// `BUNDLE.sig`: the DER ECDSA signature over the bundle file's bytes, which
/// `openssl dgst -sha256 -verify pub.pem -signature BUNDLE.sig BUNDLE` checks.
pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Writes a small file through a temp file beside it.
fn write_beside(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io = |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    temp.write_all(bytes).map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The values the request's config and install settings render to.
pub(super) fn render(
    config: &ClusterConfig,
    request: &BuildRequest,
) -> Result<values::Rendered, BuildError> {
    let input = validate::render_input(
        config,
        request.release.clone(),
        request.proxy.clone(),
        request.host_ca_bundle.clone(),
    );
    Ok(values::render(&input)?)
}

/// Refuses configs with validation errors, and literal secrets unless allowed.
fn check_config(
    config: &ClusterConfig,
    request: &BuildRequest,
    file: &str,
) -> Result<(), BuildError> {
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
        return Err(BuildError::Invalid {
            file: file.to_string(),
            first: first.to_string(),
            more: match errors.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            },
        });
    }
    if !request.allow_secrets {
        for over in config.velero_overrides() {
            if let Ok(values) = &over.values
                && let Some((inner, _)) = validate::literal_secrets(values).into_iter().next()
            {
                return Err(BuildError::Secrets {
                    file: file.to_string(),
                    path: format!("{} ({inner})", over.values_path),
                });
            }
        }
    }
    Ok(())
}

/// Resolves every distinct image in parallel, keeping first-use order. Missing
/// platforms are gathered into one error listing every image.
async fn resolve_all(
    registry: &Registry,
    rendered: &values::Rendered,
    request: &BuildRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Vec<Resolved>, BuildError> {
    let results: Vec<_> = futures::stream::iter(rendered.distinct_images())
        .map(|(reference, role)| async move {
            let image = registry
                .resolve(&reference.to_string(), &request.platforms)
                .await?;
            events(Event::Resolved {
                reference: image.canonical.clone(),
                digest: image.top.digest.clone(),
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
        .buffered(request.jobs)
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
        return Err(BuildError::MissingPlatforms(missing));
    }
    Ok(resolved)
}

pub(super) fn sha256_of(digest: &str) -> Result<Sha256Digest, BuildError> {
    digest
        .strip_prefix("sha256:")
        .and_then(|hex| Sha256Digest::from_hex(hex).ok())
        .ok_or_else(|| BuildError::Digest(digest.to_string()))
}

fn descriptor(d: &registry::Descriptor) -> Result<bundle::Descriptor, BuildError> {
    Ok(bundle::Descriptor {
        digest: sha256_of(&d.digest)?,
        media_type: d.media_type.clone(),
        size: d.size,
    })
}

/// The bundle's plan: records, inline manifests and configs, blobs to fill.
fn plan(
    request: &BuildRequest,
    config: &ClusterConfig,
    rendered: &values::Rendered,
    resolved: &[Resolved],
    values_yaml: String,
) -> Result<BundlePlan, BuildError> {
    let mut images = Vec::new();
    let mut inline_blobs = Vec::new();
    let mut blobs = Vec::new();
    for r in resolved {
        let image = &r.image;
        images.push(ImageRecord {
            role: r.role.clone(),
            canonical_reference: image.canonical.clone(),
            digest: sha256_of(&image.top.digest)?,
            media_type: image.top.media_type.clone(),
            size: image.top.size,
            source: image.source.clone(),
            source_index: image
                .source_index
                .as_ref()
                .map(|c| descriptor(&c.descriptor))
                .transpose()?,
            values_fields: rendered
                .images
                .iter()
                .filter(|u| u.reference.to_string() == image.canonical)
                .map(|u| u.field.path.clone())
                .collect(),
            signatures: r
                .signatures
                .iter()
                .map(|s| {
                    Ok(bundle::SignatureRecord {
                        signed_digest: sha256_of(&s.signed_digest)?,
                        manifest: descriptor(&s.manifest.descriptor)?,
                        payloads: s
                            .payloads
                            .iter()
                            .map(|p| descriptor(&p.descriptor))
                            .collect::<Result<_, BuildError>>()?,
                    })
                })
                .collect::<Result<_, BuildError>>()?,
            signature: r.signature.clone(),
        });
        let inline = image
            .manifests
            .iter()
            .chain(&image.source_index)
            .chain(&image.configs);
        inline_blobs.extend(inline.map(|c| c.bytes.to_vec()));
        for signature in &r.signatures {
            inline_blobs.push(signature.manifest.bytes.to_vec());
            inline_blobs.extend(signature.payloads.iter().map(|p| p.bytes.to_vec()));
        }
        let configs: Vec<&str> = image
            .configs
            .iter()
            .map(|c| c.descriptor.digest.as_str())
            .collect();
        for blob in image
            .blobs
            .iter()
            .filter(|b| !configs.contains(&b.digest.as_str()))
        {
            blobs.push(bundle::BlobRef {
                digest: sha256_of(&blob.digest)?,
                size: blob.size,
            });
        }
    }
    let velero = |role: Role| {
        resolved
            .iter()
            .find(|r| r.role == role)
            .map(|r| r.image.canonical.clone())
            .unwrap_or_default()
    };
    let mut render_inputs = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value| {
        render_inputs.insert(key.to_string(), value);
    };
    put("mode", "airgap".into());
    put("localRegistry", values::DEFAULT_LOCAL_REGISTRY.into());
    put("veleroVersion", request.release.version.clone().into());
    put(
        "configSha256",
        Sha256Digest::of(config.text().as_bytes()).hex().into(),
    );
    put(
        "proxyRegistryDomain",
        config.domains().proxy_registry_domain.clone().into(),
    );
    put("httpProxy", request.proxy.http_proxy.is_some().into());
    put("httpsProxy", request.proxy.https_proxy.is_some().into());
    put("noProxy", request.proxy.no_proxy.is_some().into());
    put("hostCaBundle", request.host_ca_bundle.clone().into());
    Ok(BundlePlan {
        tool: Tool {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
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
        images,
        config_yaml: config.text().as_bytes().to_vec(),
        values_yaml: values_yaml.into_bytes(),
        inline_blobs,
        blobs,
        source_date_epoch: bundle::source_date_epoch_from_env()?,
    })
}
