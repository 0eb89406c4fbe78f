//! `unpack`: load a verified bundle on the offline node, into a registry,
//! straight into containerd, or as an archive in k0s's images directory, and
//! write the values that point at the loaded images.
//!
//! The bundle is verified in full before the target is touched; a bundle that
//! fails leaves the target as it was. Every target is idempotent: a second run
//! loads nothing new and says so.

mod audit;
mod images;
pub mod signatures;
mod store;
mod to_containerd;
mod to_k0s;
mod to_registry;
pub mod values;

pub use images::{ImageNames, LoadImage};
pub use values::InstallSettings;

use crate::bundle::{self, Problem};
use crate::registry::{BasicCredentials, RegistryOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use store::BlobStore;

/// Where images go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Push to a registry at `address` (`HOST:PORT`).
    Registry {
        /// `HOST:PORT`.
        address: String,
        /// TLS, CA and Docker-config settings.
        options: RegistryOptions,
        /// Explicit credentials (`--username` + `--password-stdin`).
        credentials: Option<BasicCredentials>,
    },
    /// Import over containerd's gRPC API.
    Containerd {
        /// The daemon's socket.
        socket: PathBuf,
        /// The namespace (`k8s.io` for Kubernetes).
        namespace: String,
    },
    /// Write an OCI archive for k0s to import at start.
    K0sImagesDir(PathBuf),
}

impl Target {
    /// How the target is named in output and the audit log.
    pub fn describe(&self) -> String {
        match self {
            Target::Registry { address, .. } => format!("registry {address}"),
            Target::Containerd { socket, namespace } => {
                format!("containerd {} (namespace {namespace})", socket.display())
            }
            Target::K0sImagesDir(dir) => format!("k0s images directory {}", dir.display()),
        }
    }
}

/// What to unpack, where.
#[derive(Debug, Clone)]
pub struct UnpackRequest {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Where the images go.
    pub target: Target,
    /// Where to write the values; `None` writes none.
    pub values_out: Option<PathBuf>,
    /// The registry address pods pull from, when not the target's.
    pub local_registry: Option<String>,
    /// Install-time settings for the values.
    pub install: InstallSettings,
    /// Parallel requests.
    pub jobs: usize,
    /// Say what would happen; write nothing.
    pub dry_run: bool,
    /// Append a JSON line per image here.
    pub audit_log: Option<PathBuf>,
    /// Where a compressed bundle is decompressed to (default: the system temp dir).
    pub staging_dir: Option<PathBuf>,
    /// Keys one of which must have signed the bundle file (`BUNDLE.sig`).
    pub bundle_keys: Option<crate::sign::KeySet>,
    /// Image signatures to re-check, offline, before anything is loaded.
    pub signatures: crate::sign::SignaturePolicy,
    /// Cancelled on Ctrl-C; blocking loops check it and stop, leaving no
    /// partial file in place.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Progress, for the caller to draw.
#[derive(Debug, Clone)]
pub enum Event {
    /// The verification pass starts.
    Verifying,
    /// The bundle verified.
    Verified {
        /// SHA-256 of the bundle file.
        sha256: String,
    },
    /// Loading starts.
    Loading {
        /// Images to load.
        images: usize,
        /// Bytes of their blobs.
        bytes: u64,
    },
    /// Bytes handed to the target.
    Progress {
        /// How many since the last event.
        bytes: u64,
    },
    /// An image is in place.
    Image(ImageAction),
}

/// What happened to one image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageAction {
    /// Canonical reference.
    pub canonical: String,
    /// The names it has at the target.
    pub target_references: Vec<String>,
    /// Digest of the manifest the names point at.
    pub digest: String,
    /// `pushed`, `skipped`, `imported`, `written` or `would load` (dry run).
    pub action: String,
    /// The image's signature, when signatures were checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::sign::SignatureStatus>,
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpackSummary {
    /// The bundle.
    pub bundle: PathBuf,
    /// SHA-256 of the bundle file.
    pub bundle_sha256: String,
    /// The target, described.
    pub target: String,
    /// Per image.
    pub images: Vec<ImageAction>,
    /// Blobs loaded into the target.
    pub blobs_loaded: usize,
    /// Blobs the target already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository (registry target).
    pub blobs_mounted: usize,
    /// Bytes loaded.
    pub bytes: u64,
    /// Whether nothing was loaded because the target had everything.
    pub nothing_to_do: bool,
    /// The values file written.
    pub values_out: Option<PathBuf>,
    /// The address the values point at.
    pub values_address: String,
    /// Warnings for the user (e.g. a loopback values address).
    pub warnings: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Fingerprint of the key that verified `BUNDLE.sig`, when checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_key_fingerprint: Option<crate::sign::Fingerprint>,
}

/// Why unpack failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The bundle cannot be opened.
    #[error(transparent)]
    Open(#[from] bundle::ReadError),
    /// The bundle failed verification; nothing was loaded.
    #[error(
        "{bundle}: verification failed, nothing was loaded: {}",
        join(problems)
    )]
    Verification {
        /// The bundle.
        bundle: String,
        /// What is wrong.
        problems: Vec<Problem>,
    },
    /// The node's platform is not in the bundle.
    #[error(
        "this node is {node}, but the bundle holds {bundle}; build a bundle with --platform {node}"
    )]
    Platform {
        /// The node's platform.
        node: String,
        /// The bundle's platforms.
        bundle: String,
    },
    /// Not enough free space.
    #[error(
        "{path} has {available} bytes free, but loading needs {needed}; free some space or choose another directory"
    )]
    Space {
        /// Where.
        path: PathBuf,
        /// Free bytes.
        available: u64,
        /// Needed bytes.
        needed: u64,
    },
    /// A signature check failed; nothing was loaded.
    #[error(transparent)]
    Signature(#[from] signatures::SignatureCheckError),
    /// The registry target failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The containerd target failed.
    #[error(transparent)]
    Containerd(#[from] crate::containerd::ContainerdError),
    /// The values could not be re-targeted.
    #[error(transparent)]
    Values(#[from] values::RetargetError),
    /// A registry address is not valid.
    #[error("{address:?} is not a registry address: {source}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: crate::reference::DomainError,
    },
    /// The bundle's content does not describe images we can load.
    #[error("{bundle}: {reason}")]
    Content {
        /// The bundle.
        bundle: String,
        /// What is wrong.
        reason: String,
    },
    /// Local I/O.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

fn join(problems: &[Problem]) -> String {
    let shown: Vec<String> = problems.iter().take(5).map(ToString::to_string).collect();
    match problems.len() {
        n if n > 5 => format!("{} (and {} more)", shown.join("; "), n - 5),
        _ => shown.join("; "),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Verifies, then loads `request.bundle` into the target and writes the values.
pub async fn unpack(
    request: UnpackRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<UnpackSummary, UnpackError> {
    events(Event::Verifying);
    let path = request.bundle.clone();
    // Everything acted on below comes from this one verified pass: the leading
    // entries and manifests are kept from it, and blob bytes read again later
    // are checked against their digests by every target.
    let (report, verified) = tokio::task::spawn_blocking(move || bundle::verify_keeping(&path))
        .await
        .map_err(|e| UnpackError::Io {
            path: request.bundle.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let bundle_name = request.bundle.display().to_string();
    let Some(verified) = verified.filter(|_| report.is_ok()) else {
        return Err(UnpackError::Verification {
            bundle: bundle_name,
            problems: report.problems,
        });
    };
    let sha256 = report.sha256.map(|d| d.hex()).unwrap_or_default();
    let bundle_key_fingerprint = match (&request.bundle_keys, &report.sha256) {
        (Some(keys), Some(digest)) => Some(signatures::check_bundle_signature(
            &request.bundle,
            digest,
            keys,
        )?),
        _ => None,
    };
    events(Event::Verified {
        sha256: sha256.clone(),
    });

    let bundle::VerifiedContent {
        manifest,
        values_yaml,
        manifests: verified_manifests,
    } = verified;
    let compression = report.compression;

    let values_address = match (&request.local_registry, &request.target) {
        (Some(address), _) => address.clone(),
        (None, Target::Registry { address, .. }) => address.clone(),
        (None, _) => values::bundle_address(&manifest),
    };
    let mut warnings = Vec::new();
    if request.local_registry.is_none() && is_loopback(&values_address) {
        warnings.push(format!(
            "the values point at {values_address}, a loopback address: pods cannot pull from the node's loopback through the service network; pass --local-registry with the cluster's registry address"
        ));
    }
    crate::reference::validate_domain(&values_address).map_err(|source| UnpackError::Address {
        address: values_address.clone(),
        source,
    })?;
    let values_bytes =
        values::retarget(&manifest, &values_yaml, &values_address, &request.install)?;

    if let Target::Containerd { .. } | Target::K0sImagesDir(_) = &request.target {
        check_platform(&request, &manifest).await?;
    }

    let staging = request
        .staging_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let needed: u64 = manifest.files.iter().map(|f| f.size).sum();
    if !request.dry_run {
        if compression != bundle::Compression::None {
            check_space(&staging, needed)?;
        }
        if let Target::K0sImagesDir(dir) = &request.target {
            check_space(dir, needed)?;
        }
    }

    let store = if request.dry_run && compression != bundle::Compression::None {
        None
    } else {
        let (path, staging) = (request.bundle.clone(), staging.clone());
        Some(
            tokio::task::spawn_blocking(move || BlobStore::open(&path, compression, &staging))
                .await
                .map_err(|e| UnpackError::Io {
                    path: request.bundle.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?
                .map_err(io_error(&request.bundle))?,
        )
    };
    let images = match &store {
        Some(store) => images::load_images(&manifest, &verified_manifests, store, &bundle_name)?,
        None => images::describe_images(&manifest, &bundle_name)?,
    };
    let checked_signatures = match &store {
        Some(store)
            if request.signatures.checks()
                || request.signatures.require_all
                || !request.signatures.require.is_empty() =>
        {
            Some(signatures::check_images(
                &manifest,
                &verified_manifests,
                store,
                &request.signatures,
                &bundle_name,
            )?)
        }
        _ => None,
    };
    let target_address = match &request.target {
        Target::Registry { address, .. } => address.clone(),
        _ => values_address.clone(),
    };

    let mut summary = UnpackSummary {
        bundle: request.bundle.clone(),
        bundle_sha256: sha256.clone(),
        target: request.target.describe(),
        images: vec![],
        blobs_loaded: 0,
        blobs_skipped: 0,
        blobs_mounted: 0,
        bytes: 0,
        nothing_to_do: false,
        values_out: request.values_out.clone(),
        values_address: values_address.clone(),
        warnings,
        dry_run: request.dry_run,
        bundle_key_fingerprint,
    };

    if request.dry_run {
        for image in &images {
            let names = image.names(&target_address)?;
            summary.images.push(ImageAction {
                canonical: image.canonical.to_string(),
                target_references: names.all(),
                digest: image.top.digest.clone(),
                action: "would load".into(),
                signature: None,
            });
        }
        return Ok(summary);
    }
    let store = store.ok_or_else(|| UnpackError::Content {
        bundle: bundle_name.clone(),
        reason: "no blob store".into(),
    })?;
    // The values file must be writable before the target is touched.
    let values_temp = match &request.values_out {
        Some(out) => Some(temp_beside(out)?),
        None => None,
    };
    events(Event::Loading {
        images: images.len(),
        bytes: images::total_bytes(&images),
    });

    let loaded = match &request.target {
        Target::Registry {
            address,
            options,
            credentials,
        } => {
            to_registry::push(
                &images,
                &store,
                address,
                options,
                credentials.clone(),
                request.jobs,
                events,
            )
            .await
        }
        Target::Containerd { socket, namespace } => {
            to_containerd::import(
                &images,
                &store,
                socket,
                namespace,
                &target_address,
                request.jobs,
                events,
            )
            .await
        }
        Target::K0sImagesDir(dir) => {
            to_k0s::write(
                &images,
                &store,
                dir,
                &target_address,
                &sha256,
                &request.cancel,
                events,
            )
            .await
        }
    };
    let loaded = loaded.and_then(|loaded| {
        if let (Some(out), Some(temp)) = (&request.values_out, values_temp) {
            persist(temp, out, &values_bytes)?;
        }
        Ok(loaded)
    });
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            if let Some(log) = &request.audit_log {
                audit::failure(log, &sha256, &summary.target, &err.to_string());
            }
            return Err(err);
        }
    };
    summary.images = loaded.images;
    if let Some(statuses) = checked_signatures {
        for image in &mut summary.images {
            image.signature = statuses
                .iter()
                .find(|(canonical, _)| canonical == &image.canonical)
                .map(|(_, status)| status.clone());
        }
    }
    summary.blobs_loaded = loaded.blobs_loaded;
    summary.blobs_skipped = loaded.blobs_skipped;
    summary.blobs_mounted = loaded.blobs_mounted;
    summary.bytes = loaded.bytes;
    summary.nothing_to_do = loaded.blobs_loaded == 0
        && loaded.blobs_mounted == 0
        && summary.images.iter().all(|i| i.action == "skipped");

    if let Some(log) = &request.audit_log {
        audit::success(log, &summary).map_err(io_error(log))?;
    }
    Ok(summary)
}

/// What a target reports back.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) images: Vec<ImageAction>,
    pub(crate) blobs_loaded: usize,
    pub(crate) blobs_skipped: usize,
    pub(crate) blobs_mounted: usize,
    pub(crate) bytes: u64,
}

fn is_loopback(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// Refuses a bundle whose platforms do not include the node's: k0s and CRI
/// would otherwise import nothing, silently.
async fn check_platform(
    request: &UnpackRequest,
    manifest: &bundle::BundleManifest,
) -> Result<(), UnpackError> {
    use crate::containerd::{Containerd, Platform};
    let node = match &request.target {
        Target::Containerd { socket, namespace } => {
            let daemon = Containerd::connect(socket, namespace).await?;
            daemon.platform().await?.unwrap_or_else(Platform::host)
        }
        _ => Platform::host(),
    };
    let matches = manifest
        .platforms
        .iter()
        .any(|p| p == "all" || Platform::parse(p).is_ok_and(|platform| platform.matches(&node)));
    if matches {
        Ok(())
    } else {
        Err(UnpackError::Platform {
            node: node.to_string(),
            bundle: manifest.platforms.join(", "),
        })
    }
}

fn check_space(dir: &Path, needed: u64) -> Result<(), UnpackError> {
    // The directory may not exist yet: its nearest existing ancestor holds it.
    let dir = dir
        .ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("."));
    let stat = rustix::fs::statvfs(dir).map_err(|e| UnpackError::Io {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    if available < needed {
        return Err(UnpackError::Space {
            path: dir.to_path_buf(),
            available,
            needed,
        });
    }
    Ok(())
}

/// A temp file beside `path`, to be renamed over it once complete.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, UnpackError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".velero-airgap-")
        .tempfile_in(dir)
        .map_err(io_error(dir))
}

/// Writes `bytes` into `temp` and renames it to `path`.
fn persist(
    mut temp: tempfile::NamedTempFile,
    path: &Path,
    bytes: &[u8],
) -> Result<(), UnpackError> {
    use std::io::Write;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_error(path))?;
    temp.persist(path).map_err(|e| UnpackError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}
