//! `unpack`: load a verified bundle on the offline node, into a registry, straight into
//! containerd, or as an archive in k0s's images directory, and write the values that
//! point at the loaded images.
//!
//! The steps, in order: verify (the same pass as `verify`, plus signatures) → settle the
//! values and check the cheap things (platform, free space, the values file is writable)
//! → load into the target → put the values file in place → record the run. A bundle that
//! fails verification leaves the target as it was. Every target is idempotent: a second
//! run loads nothing new and says so.

mod audit;
mod images;
mod to_containerd;
mod to_k0s;
mod to_registry;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use images::{ImageNames, LoadImage};
pub use to_k0s::{ARCHIVE_NAME, DEFAULT_STATE_DIR, K0sTarget};
pub use values::InstallSettings;

use crate::ErrorKind;
use crate::bundle::{self, BlobStore, Problem, VerifiedContent};
use crate::files::{AtomicFile, FileError, Privacy};
use crate::oci::Digest;
use crate::registry::{BasicCredentials, RegistryOptions};
use crate::sign::{Fingerprint, SignatureStatus};
use crate::verify::{self, SignatureCheckError, VerifyError, VerifyOptions};

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
    K0s(K0sTarget),
}

impl Target {
    /// How the target is named in output and the audit log.
    pub fn describe(&self) -> String {
        match self {
            Target::Registry { address, .. } => format!("registry {address}"),
            Target::Containerd { socket, namespace } => {
                format!("containerd {} (namespace {namespace})", socket.display())
            }
            Target::K0s(target) => {
                format!("k0s images directory {}", target.images_dir.display())
            }
        }
    }
}

/// What to unpack, where.
#[derive(Debug, Clone)]
pub struct UnpackRequest {
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
    /// The bundle signature and the image signatures to check before loading.
    pub verify: VerifyOptions,
    /// Cancelled on Ctrl-C; blocking loops check it and stop, leaving no partial file in
    /// place.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Progress, for the caller to draw.
#[derive(Debug, Clone)]
pub enum Event {
    /// The verification pass starts.
    Verifying,
    /// How far the verification pass is.
    Pass(bundle::PassEvent),
    /// The bundle verified.
    Verified {
        /// SHA-256 of the bundle file.
        sha256: String,
    },
    /// Loading starts.
    Loading {
        /// Images to load.
        images: usize,
        /// Their config and layer blobs, each once (as every command counts blobs).
        blobs: usize,
        /// Their bytes (the manifests, a few kB, come on top).
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

/// What was done with one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LoadAction {
    /// Pushed to the registry.
    #[serde(rename = "pushed")]
    Pushed,
    /// Imported into containerd.
    #[serde(rename = "imported")]
    Imported,
    /// Written into the k0s archive.
    #[serde(rename = "written")]
    Written,
    /// The target had it already.
    #[serde(rename = "skipped")]
    Skipped,
    /// A dry run: it would be loaded.
    #[serde(rename = "would load")]
    WouldLoad,
}

impl std::fmt::Display for LoadAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoadAction::Pushed => "pushed",
            LoadAction::Imported => "imported",
            LoadAction::Written => "written",
            LoadAction::Skipped => "skipped",
            LoadAction::WouldLoad => "would load",
        })
    }
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
    pub digest: Digest,
    /// What was done.
    pub action: LoadAction,
    /// The image's signature, when signatures were checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureStatus>,
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpackSummary {
    pub bundle: PathBuf,
    /// SHA-256 of the bundle file.
    pub bundle_sha256: String,
    /// The target, described.
    pub target: String,
    /// Per image.
    pub images: Vec<ImageAction>,
    /// The images' config and layer blobs, each once
    /// ([`bundle::BundleManifest::content_blobs`]): loaded, already there or mounted.
    pub blobs: usize,
    /// Blobs loaded into the target.
    pub blobs_loaded: usize,
    /// Blobs the target already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository (registry target).
    pub blobs_mounted: usize,
    /// Bytes of the blobs loaded.
    pub bytes: u64,
    /// Whether nothing was loaded because the target had everything.
    pub nothing_to_do: bool,
    pub values_out: Option<PathBuf>,
    /// The address the values point at.
    pub values_address: String,
    /// The proxy variables written into the values (`HTTP_PROXY`, `HTTPS_PROXY`,
    /// `NO_PROXY`), each password replaced by `***`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_env: BTreeMap<String, String>,
    /// Warnings for the user (e.g. a loopback values address).
    pub warnings: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Fingerprint of the key that verified `BUNDLE.sig`, when checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_key_fingerprint: Option<Fingerprint>,
}

/// Why unpack failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The bundle cannot be read, or a signature check failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The bundle failed verification; nothing was loaded.
    #[error(
        "{bundle}: verification failed, nothing was loaded: {}",
        bundle::join(problems)
    )]
    Verification {
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
    /// The state directory cannot hold the k0s archive until it is complete.
    #[error(
        "the state directory {} is not on the filesystem of {}, so the archive could not be renamed into place; pass --state-dir on that filesystem",
        state_dir.display(),
        images_dir.display()
    )]
    StateDir {
        state_dir: PathBuf,
        /// k0s's images directory.
        images_dir: PathBuf,
    },
    #[error(
        "state directory {} is a symbolic link or writable by others; give --state-dir a directory only you can write",
        state_dir.display()
    )]
    UnsafeStateDir { state_dir: PathBuf },
    /// A signature check failed; nothing was loaded.
    #[error(transparent)]
    Signature(#[from] SignatureCheckError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Containerd(#[from] crate::containerd::ContainerdError),
    /// The values could not be re-targeted.
    #[error(transparent)]
    Values(#[from] values::RetargetError),
    /// A registry address is not valid.
    #[error("{address:?} is not a registry address")]
    Address {
        address: String,
        /// Why.
        #[source]
        source: crate::reference::DomainError,
    },
    /// The bundle's content does not describe images we can load.
    #[error("{bundle}: {reason}")]
    Content {
        bundle: String,
        /// What is wrong.
        reason: String,
    },
    /// A local file: the bundle read again, the values, the archive, the audit log.
    #[error(transparent)]
    File(#[from] FileError),
}

impl UnpackError {
    /// The class of this error, looking through the errors it wraps.
    pub fn kind(&self) -> ErrorKind {
        match self {
            UnpackError::Verify(error) => error.kind(),
            UnpackError::Registry(error) => error.kind(),
            UnpackError::Containerd(_) => ErrorKind::Remote,
            UnpackError::File(error) => error.kind(),
            UnpackError::Space { .. } | UnpackError::StateDir { .. } => ErrorKind::Local,
            UnpackError::Verification { .. }
            | UnpackError::Platform { .. }
            | UnpackError::Signature(_)
            | UnpackError::Values(_)
            | UnpackError::Address { .. }
            | UnpackError::UnsafeStateDir { .. }
            | UnpackError::Content { .. } => ErrorKind::Input,
        }
    }
}

/// What the verification step established.
struct Verified {
    content: VerifiedContent,
    /// What verification could not prove, or found worth a look.
    warnings: Vec<String>,
    sha256: String,
    compression: bundle::Compression,
    bundle_key_fingerprint: Option<Fingerprint>,
}

/// Verifies, then loads `request.bundle` into the target and writes the values.
pub async fn unpack(
    request: UnpackRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<UnpackSummary, UnpackError> {
    let checked = match preflight(&request).await {
        Ok(checked) => checked,
        Err(error) => {
            record_failure(&request, "", &error);
            return Err(error);
        }
    };
    let verified = verify_bundle(&request, events).await?;
    let manifest = &verified.content.manifest;
    let bundle_name = request.bundle.display().to_string();
    let (values_address, mut warnings) = values_address(&request, manifest)?;
    warnings.extend(verified.warnings.iter().cloned());
    let values_bytes = values::retarget(
        manifest,
        &verified.content.values_yaml,
        &values_address,
        &request.install,
    )?;
    if !checked.target {
        check_target(&request, manifest).await?;
    }
    if !request.dry_run {
        check_space(&request, &verified)?;
    }
    let store = open_store(&request, &verified).await?;
    let images = match &store {
        Some(store) => {
            images::load_images(manifest, &verified.content.manifests, store, &bundle_name)?
        }
        None => images::describe_images(manifest, &bundle_name)?,
    };
    let signatures = match &store {
        Some(store) if verify::checks_images(&request.verify.signatures) => Some(
            verify::check_image_signatures(&verified.content, store, &request.verify.signatures)?,
        ),
        _ => None,
    };
    let target_address = match &request.target {
        Target::Registry { address, .. } => address.clone(),
        _ => values_address.clone(),
    };
    let mut summary = UnpackSummary::new(&request, &verified, values_address, warnings);
    let Some(store) = store.filter(|_| !request.dry_run) else {
        summary.images = dry_run(&images, &target_address)?;
        return Ok(summary);
    };
    let values_file = checked.values_file;
    events(Event::Loading {
        images: images.len(),
        blobs: summary.blobs,
        bytes: images::content_blobs(&images).values().sum(),
    });
    let loaded = load(
        &request,
        &images,
        Arc::new(store),
        &target_address,
        &verified,
        events,
    )
    .await
    .and_then(|loaded| {
        if let Some(file) = values_file {
            write_values(file, &values_bytes)?;
        }
        Ok(loaded)
    });
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            record_failure(&request, &verified.sha256, &error);
            return Err(error);
        }
    };
    summary.record(loaded, signatures);
    if let Some(log) = &request.audit_log {
        audit::success(log, &summary)?;
    }
    Ok(summary)
}

/// What the checks before verification established.
struct Preflight {
    /// The values file, created (not yet in place) so it is known to be writable.
    values_file: Option<AtomicFile>,
    /// Whether the target was checked against the leading `bundle.json`.
    target: bool,
}

/// Cheap checks before the long verification pass, so that a wrong flag, an unwritable file
/// or an unreachable target fails in seconds rather than after reading gigabytes: the audit
/// log and the values file can be written, and the target is checked against `bundle.json`
/// read from the leading entries (verification proves it afterwards; when it cannot be read
/// there, verification reports why and the target is checked after it).
async fn preflight(request: &UnpackRequest) -> Result<Preflight, UnpackError> {
    if request.dry_run {
        return Ok(Preflight {
            values_file: None,
            target: false,
        });
    }
    if let Some(log) = &request.audit_log {
        crate::files::append_to_log(log, b"")?;
    }
    let values_file = match &request.values_out {
        Some(out) => Some(AtomicFile::create(
            out,
            values_privacy(&request.install),
            None,
        )?),
        None => None,
    };
    let path = request.bundle.clone();
    let leading = crate::task::blocking(move || bundle::BundleReader::open(&path)).await;
    let target = match leading {
        Ok(reader) => {
            check_target(request, reader.bundle()).await?;
            true
        }
        Err(error) => {
            tracing::debug!(%error, "bundle.json not readable before verification");
            false
        }
    };
    Ok(Preflight {
        values_file,
        target,
    })
}

/// The target answers and suits the bundle: a registry takes pushes with the credentials
/// given; containerd answers and runs a platform the bundle holds, as does the node for k0s.
async fn check_target(
    request: &UnpackRequest,
    manifest: &bundle::BundleManifest,
) -> Result<(), UnpackError> {
    match &request.target {
        Target::Registry {
            address,
            options,
            credentials,
        } if !request.dry_run => {
            let images = images::describe_images(manifest, &request.bundle.display().to_string())?;
            let Some(first) = images.first() else {
                return Ok(());
            };
            let pusher = crate::registry::Pusher::new(options.clone(), credentials.clone())?;
            Ok(pusher.check_push(&first.names(address)?.repository).await?)
        }
        Target::Registry { .. } => Ok(()),
        Target::Containerd { .. } | Target::K0s(_) => check_platform(request, manifest).await,
    }
}

/// Records a failed run in the audit log, when there is one (best effort: the error itself
/// is what the user sees).
fn record_failure(
    request: &UnpackRequest,
    bundle_sha256: &str,
    error: &(dyn std::error::Error + 'static),
) {
    if let Some(log) = &request.audit_log {
        audit::failure(
            log,
            bundle_sha256,
            &request.target.describe(),
            &crate::chain(error),
        );
    }
}

/// Puts the values file in place, once the images it names are loaded.
fn write_values(mut file: AtomicFile, bytes: &[u8]) -> Result<(), UnpackError> {
    std::io::Write::write_all(&mut file, bytes).map_err(|source| FileError::Write {
        path: file.target().to_path_buf(),
        source,
    })?;
    Ok(file.commit()?)
}

/// Runs the verification pass (and signature checks) off the async runtime.
async fn verify_bundle(
    request: &UnpackRequest,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Verified, UnpackError> {
    events(Event::Verifying);
    let (path, options) = (request.bundle.clone(), request.verify.clone());
    // The pass is blocking work: its progress comes back through a channel.
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let progress: bundle::PassProgress = Arc::new(move |event| {
        // The receiver is gone only when the run is over.
        let _ = sender.send(event);
    });
    let mut verifying = std::pin::pin!(crate::task::blocking(move || verify::verify(
        &path,
        &options,
        Some(progress)
    )));
    let verification = loop {
        tokio::select! {
            Some(event) = received.recv() => events(Event::Pass(event)),
            result = &mut verifying => break result,
        }
    };
    while let Ok(event) = received.try_recv() {
        events(Event::Pass(event));
    }
    let verification = match verification {
        Ok(verification) => verification,
        Err(error) => {
            record_failure(request, "", &error);
            return Err(error.into());
        }
    };
    let report = verification.report;
    let Some(content) = verification.content.filter(|_| report.is_ok()) else {
        let error = UnpackError::Verification {
            bundle: request.bundle.display().to_string(),
            problems: report.problems,
        };
        record_failure(request, "", &error);
        return Err(error);
    };
    let sha256 = report.sha256.map(|d| d.hex()).unwrap_or_default();
    events(Event::Verified {
        sha256: sha256.clone(),
    });
    Ok(Verified {
        content,
        warnings: report.warnings,
        sha256,
        compression: report.compression,
        bundle_key_fingerprint: verification.signatures.bundle_key_fingerprint,
    })
}

/// The address the values point pods at, and a warning when that is loopback.
fn values_address(
    request: &UnpackRequest,
    manifest: &bundle::BundleManifest,
) -> Result<(String, Vec<String>), UnpackError> {
    let address = match (&request.local_registry, &request.target) {
        (Some(address), _) => address.clone(),
        (None, Target::Registry { address, .. }) => address.clone(),
        (None, _) => manifest.render_inputs.local_registry.clone(),
    };
    let mut warnings = Vec::new();
    if request.local_registry.is_none() && is_loopback(&address) {
        warnings.push(format!(
            "the values point at {address}, a loopback address: pods cannot pull from the node's loopback through the service network; pass --local-registry with the cluster's registry address"
        ));
    }
    crate::reference::validate_domain(&address).map_err(|source| UnpackError::Address {
        address: address.clone(),
        source,
    })?;
    Ok((address, warnings))
}

/// The proxy variables the values get, passwords hidden.
fn proxy_env(install: &InstallSettings) -> BTreeMap<String, String> {
    let proxy = install.proxy.redacted();
    [
        ("HTTP_PROXY", proxy.http_proxy),
        ("HTTPS_PROXY", proxy.https_proxy),
        ("NO_PROXY", proxy.no_proxy),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_string(), value?)))
    .collect()
}

/// Values that carry proxy credentials are readable by their owner only.
fn values_privacy(install: &InstallSettings) -> Privacy {
    if install.proxy.has_credentials() {
        Privacy::Private
    } else {
        Privacy::Shared
    }
}

/// Random access to the blobs: none for a dry run of a compressed bundle (staging it
/// would write a full copy).
async fn open_store(
    request: &UnpackRequest,
    verified: &Verified,
) -> Result<Option<BlobStore>, UnpackError> {
    let compression = verified.compression;
    if request.dry_run && compression != bundle::Compression::None {
        return Ok(None);
    }
    let path = request.bundle.clone();
    let staging = staging_dir(request);
    let store = crate::task::blocking(move || BlobStore::open(&path, compression, &staging)).await;
    Ok(Some(store?))
}

fn staging_dir(request: &UnpackRequest) -> PathBuf {
    request
        .staging_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
}

fn dry_run(images: &[LoadImage], address: &str) -> Result<Vec<ImageAction>, UnpackError> {
    images
        .iter()
        .map(|image| {
            Ok(ImageAction {
                canonical: image.canonical.to_string(),
                target_references: image.names(address)?.all(),
                digest: image.top.digest,
                action: LoadAction::WouldLoad,
                signature: None,
            })
        })
        .collect()
}

/// Loads the images into the request's target.
async fn load(
    request: &UnpackRequest,
    images: &[LoadImage],
    store: Arc<BlobStore>,
    address: &str,
    verified: &Verified,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Loaded, UnpackError> {
    match &request.target {
        Target::Registry {
            address,
            options,
            credentials,
        } => {
            to_registry::push(
                images,
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
                images,
                &store,
                socket,
                namespace,
                address,
                request.jobs,
                events,
            )
            .await
        }
        Target::K0s(target) => {
            to_k0s::write(
                images,
                store,
                target,
                address,
                &verified.sha256,
                &request.cancel,
                events,
            )
            .await
        }
    }
}

/// What a target reports back.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) images: Vec<ImageAction>,
    /// How the target was reached, when the user should know (an unverified registry).
    pub(crate) warnings: Vec<String>,
    pub(crate) blobs_loaded: usize,
    pub(crate) blobs_skipped: usize,
    pub(crate) blobs_mounted: usize,
    pub(crate) bytes: u64,
}

impl UnpackSummary {
    /// The summary before anything is loaded.
    fn new(
        request: &UnpackRequest,
        verified: &Verified,
        values_address: String,
        warnings: Vec<String>,
    ) -> UnpackSummary {
        UnpackSummary {
            bundle: request.bundle.clone(),
            bundle_sha256: verified.sha256.clone(),
            target: request.target.describe(),
            images: vec![],
            blobs: verified.content.manifest.content_blobs().blobs,
            blobs_loaded: 0,
            blobs_skipped: 0,
            blobs_mounted: 0,
            bytes: 0,
            nothing_to_do: false,
            values_out: request.values_out.clone(),
            values_address,
            proxy_env: proxy_env(&request.install),
            warnings,
            dry_run: request.dry_run,
            bundle_key_fingerprint: verified.bundle_key_fingerprint.clone(),
        }
    }

    fn record(&mut self, loaded: Loaded, signatures: Option<Vec<(String, SignatureStatus)>>) {
        self.images = loaded.images;
        self.warnings.extend(loaded.warnings);
        if let Some(statuses) = signatures {
            for image in &mut self.images {
                image.signature = statuses
                    .iter()
                    .find(|(canonical, _)| *canonical == image.canonical)
                    .map(|(_, status)| status.clone());
            }
        }
        self.blobs_loaded = loaded.blobs_loaded;
        self.blobs_skipped = loaded.blobs_skipped;
        self.blobs_mounted = loaded.blobs_mounted;
        self.bytes = loaded.bytes;
        self.nothing_to_do = loaded.blobs_loaded == 0
            && loaded.blobs_mounted == 0
            && self
                .images
                .iter()
                .all(|image| image.action == LoadAction::Skipped);
    }
}

fn is_loopback(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// Refuses a bundle whose platforms do not include the node's: k0s and CRI would
/// otherwise import nothing, silently.
async fn check_platform(
    request: &UnpackRequest,
    manifest: &bundle::BundleManifest,
) -> Result<(), UnpackError> {
    use crate::containerd::Containerd;
    use crate::oci::Platform;
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

/// A compressed bundle is staged in full; the k0s archive needs its own copy.
fn check_space(request: &UnpackRequest, verified: &Verified) -> Result<(), UnpackError> {
    let needed: u64 = verified.content.manifest.files.iter().map(|f| f.size).sum();
    if verified.compression != bundle::Compression::None {
        free_space_at_least(&staging_dir(request), needed)?;
    }
    if let Target::K0s(target) = &request.target {
        free_space_at_least(&target.state_dir, needed)?;
    }
    Ok(())
}

fn free_space_at_least(dir: &Path, needed: u64) -> Result<(), UnpackError> {
    // The directory may not exist yet: its nearest existing ancestor holds it.
    let dir = dir
        .ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("."));
    let stat = rustix::fs::statvfs(dir).map_err(|error| FileError::Read {
        path: dir.to_path_buf(),
        source: error.into(),
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
