//! Talking to OCI registries: resolving references, pulling manifests and blobs, and (through
//! [`Pusher`]) pushing them.
//!
//! [`Registry::resolve`] turns a canonical reference into a [`ResolvedImage`]: every manifest
//! (bytes as served), the chosen platforms, and the list of config and layer blobs, all known
//! before a single layer byte is fetched so the caller can lay the bundle out in advance.
//! [`Registry::fetch_blob`] then streams one blob into a caller-owned [`BlobSink`], checking
//! size and digest before it reports success.
//!
//! Mirrors change only where bytes come from; everything a [`ResolvedImage`] records about
//! identity uses the canonical reference. Credentials are those of the host actually
//! contacted. Connection errors, timeouts, 5xx and 429 are retried with exponential backoff.
//!
//! The HTTP side is our own distribution client, [`transport`]: its module documentation
//! says why we own it rather than use `oci-client`. TLS is chosen per registry (insecure
//! hosts, `--ca-file` certificates trusted and pinned), tokens per scope set, and every
//! answer read whole is capped.

mod credentials;
mod error;
mod mirror;
mod push;
mod resolve;
mod signature;
mod sink;
pub mod transport;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::Digest as _;

use crate::oci::{Content, Descriptor, Digest, PlatformSelection};
use crate::reference::Reference;
use credentials::DockerConfig;
use error::{Failure, RequestContext};
use mirror::Mirrors;
use transport::{
    Credentials, Policies, ProxyConfig, RegistryPolicy, Repository, Transport, TransportOptions,
};

pub use error::RegistryError;
pub use mirror::Mirror;
pub use push::{
    BasicCredentials, PushAction, PushEvent, PushImage, PushReport, PushedImage, Pusher,
};
pub use signature::StoredSignature;
pub use sink::{BlobSink, OffsetSink};

/// First retry delay; each further retry doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Docker Hub's canonical name, and the host that serves its registry API.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Pull mirrors (`--mirror FROM=TO`).
    pub mirrors: Vec<Mirror>,
    /// Insecure hosts (`host[:port]`): HTTPS without certificate verification, then plain
    /// HTTP, as Docker and containerd treat an insecure registry.
    pub insecure: Vec<String>,
    /// PEM files with certificates to trust: CAs, or a registry's own self-signed
    /// certificate, accepted as it is (see [`transport`]).
    pub ca_files: Vec<PathBuf>,
    /// A Docker `config.json`, or a directory holding one; when `None`,
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` if present.
    pub docker_config: Option<PathBuf>,
    /// Retries after a connection error, timeout, 5xx or 429; 0 means a single attempt.
    pub retries: u32,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            mirrors: Vec::new(),
            insecure: Vec::new(),
            ca_files: Vec::new(),
            docker_config: None,
            retries: 3,
        }
    }
}

/// One image, resolved: what goes into the bundle for it, blobs still to fetch.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The canonical reference, as given to [`Registry::resolve`].
    pub canonical: Reference,
    /// The reference actually pulled from (differs from `canonical` through a mirror).
    pub source: Reference,
    /// The descriptor for the bundle's `index.json`: the pinned platform manifest, the
    /// source index (`all`), the filtered index (a platform list), or the single manifest.
    pub top: Descriptor,
    /// Every manifest to store, `top` first, then the manifests it references.
    pub manifests: Vec<Content>,
    /// The source index when a platform was pinned or the index filtered: stored as a blob
    /// so the choice can be checked against a signature on the index.
    pub source_index: Option<Content>,
    /// Config and layer blobs, each once, in manifest order.
    pub blobs: Vec<Descriptor>,
    /// Config blobs already fetched (and verified) while resolving, so they need no second
    /// request.
    pub configs: Vec<Content>,
}

/// A connection to registries, shared by every pull of a build: it is `Send + Sync`, so
/// one `Registry` serves concurrent tasks and reuses connections and tokens.
#[derive(Debug)]
pub struct Registry {
    transport: Arc<Transport>,
    mirrors: Mirrors,
    retries: u32,
}

impl Registry {
    /// Reads the CA files and the Docker config and sets up the client. Credentials come
    /// from the Docker config, looked up per host contacted.
    pub fn new(options: RegistryOptions) -> Result<Registry, RegistryError> {
        let docker_config = DockerConfig::load(options.docker_config.as_deref())?;
        let transport = transport_for(&options, move |host| Ok(docker_config.lookup(host)?))?;
        Ok(Registry {
            transport: Arc::new(transport),
            mirrors: Mirrors::new(options.mirrors)?,
            retries: options.retries,
        })
    }

    /// What the user should know about how registries were reached (an insecure host's
    /// unverified TLS or plain HTTP), each once.
    pub fn warnings(&self) -> Vec<String> {
        self.transport
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Resolves `canonical` for `platforms`: pulls its manifests (through a mirror if one
    /// matches) and lists the blobs to fetch. A missing platform is
    /// [`RegistryError::MissingPlatform`], naming the image and every missing platform; an
    /// image without an index must match every requested platform (read from its config).
    pub async fn resolve(
        &self,
        canonical: &Reference,
        platforms: &PlatformSelection,
    ) -> Result<ResolvedImage, RegistryError> {
        let source = self.mirrors.rewrite(canonical)?;
        if source != *canonical {
            tracing::debug!("pulling {canonical} through the mirror {source}");
        }
        let session = self.session(canonical, &source)?;
        let resolved = resolve::resolve(&session, platforms).await?;
        Ok(ResolvedImage {
            canonical: canonical.clone(),
            source,
            top: resolved.top,
            manifests: resolved.manifests,
            source_index: resolved.source_index,
            blobs: resolved.blobs,
            configs: resolved.configs,
        })
    }

    /// Streams blob `blob` of `image` into `sink`. Succeeds only once all bytes arrived with
    /// the expected size and digest; on a retry the sink is reset and the blob restarts.
    pub async fn fetch_blob<S: BlobSink + ?Sized>(
        &self,
        image: &ResolvedImage,
        blob: &Descriptor,
        sink: &mut S,
    ) -> Result<(), RegistryError> {
        self.session(&image.canonical, &image.source)?
            .fetch_blob(blob, sink)
            .await
    }

    fn session<'a>(
        &'a self,
        canonical: &'a Reference,
        source: &'a Reference,
    ) -> Result<Session<'a>, RegistryError> {
        Ok(Session {
            transport: &self.transport,
            retries: self.retries,
            canonical: canonical.to_string(),
            source,
            repository: repository_of(source)?,
        })
    }
}

/// The transport for `options`: insecure hosts get [`RegistryPolicy::Insecure`], every
/// other host the system roots plus the `--ca-file` certificates; proxies come from the
/// environment.
fn transport_for(
    options: &RegistryOptions,
    credentials: impl Fn(&str) -> Result<Credentials, transport::BoxError> + Send + Sync + 'static,
) -> Result<Transport, RegistryError> {
    let mut certificates = Vec::new();
    for path in &options.ca_files {
        certificates.extend(read_certificates(path)?);
    }
    let mut policies = Policies::new(RegistryPolicy::trusting(certificates));
    for host in &options.insecure {
        policies = policies.with_host(host.trim(), RegistryPolicy::Insecure);
    }
    let setup = |source| RegistryError::Setup {
        source: Box::new(source),
    };
    let mut transport_options = TransportOptions::new(policies);
    transport_options.proxy = ProxyConfig::from_env().map_err(setup)?;
    Transport::new(transport_options, credentials).map_err(setup)
}

/// The repository `reference` names, on the host that serves its API.
fn repository_of(reference: &Reference) -> Result<Repository, RegistryError> {
    let host = match reference.registry() {
        DOCKER_HUB => DOCKER_HUB_API,
        other => other,
    };
    Repository::new(host, reference.repository()).map_err(|error| RegistryError::InvalidReference {
        reference: reference.to_string(),
        reason: error.to_string(),
    })
}

/// Reads every PEM certificate in `path` (a CA, or a registry's own certificate).
fn read_certificates(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let failed = |reason: String| RegistryError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    // Certificates are a few kilobytes; a bundle of every public CA is under a megabyte.
    let pem = crate::files::read_capped(
        path,
        4 << 20,
        "certificate file",
        crate::files::Origin::Named,
    )
    .map_err(|error| failed(error.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| failed(format!("bad PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(failed("no PEM certificate found".into()));
    }
    Ok(certificates)
}

/// Requests for one image on one host.
pub(crate) struct Session<'a> {
    transport: &'a Transport,
    retries: u32,
    /// The canonical reference, for messages.
    canonical: String,
    /// The reference pulled from (a mirror's, or the canonical one).
    source: &'a Reference,
    repository: Repository,
}

impl Session<'_> {
    fn context<'b>(&'b self, object: &'b str) -> RequestContext<'b> {
        RequestContext {
            host: &self.repository.host,
            reference: &self.canonical,
            object,
        }
    }

    /// Pulls a manifest by tag or digest (the bytes are checked against a digest); `None`
    /// asks for the source reference itself (its digest, else its tag, else `latest`).
    async fn manifest(&self, digest: Option<&Digest>) -> Result<bytes::Bytes, RegistryError> {
        let reference = match (digest, self.source.digest(), self.source.tag()) {
            (Some(digest), ..) | (None, Some(digest), _) => digest.to_string(),
            (None, None, tag) => tag.unwrap_or("latest").to_string(),
        };
        self.manifest_named(&reference).await
    }

    /// Pulls the manifest under `reference` (a tag or a digest) of the source repository.
    async fn manifest_named(&self, reference: &str) -> Result<bytes::Bytes, RegistryError> {
        let object = if reference.starts_with("sha256:") {
            format!("manifest {reference}")
        } else {
            format!("manifest for tag {reference}")
        };
        let context = self.context(&object);
        let manifest = retrying(self.retries, &context, || async {
            self.transport
                .get_manifest(&self.repository, reference)
                .await
                .map_err(|error| Failure::from_transport(error, &context))
        })
        .await?;
        Ok(manifest.bytes)
    }

    /// Streams one blob into `sink`, restarting it on transient failures.
    async fn fetch_blob<S: BlobSink + ?Sized>(
        &self,
        blob: &Descriptor,
        sink: &mut S,
    ) -> Result<(), RegistryError> {
        let object = format!("blob {}", blob.digest);
        let context = self.context(&object);
        let mut retry = Retry::new(self.retries);
        loop {
            sink.reset()
                .map_err(|source| self.sink_error(blob, source))?;
            match self.fetch_blob_once(blob, sink, &context).await {
                Ok(()) => return Ok(()),
                Err(failure) => retry.after(failure, &context).await?,
            }
        }
    }

    /// One download, hashing as it writes: the size must match before, during (a
    /// registry sending more than announced is stopped before it fills the disk) and
    /// after, and the digest at the end.
    async fn fetch_blob_once<S: BlobSink + ?Sized>(
        &self,
        blob: &Descriptor,
        sink: &mut S,
        context: &RequestContext<'_>,
    ) -> Result<(), Failure> {
        let size_mismatch = |actual: u64| {
            Failure::Final(RegistryError::SizeMismatch {
                reference: self.canonical.clone(),
                object: context.object.to_string(),
                expected: blob.size,
                actual,
            })
        };
        let mut download = self
            .transport
            .get_blob(&self.repository, &blob.digest)
            .await
            .map_err(|error| Failure::from_transport(error, context))?;
        if let Some(announced) = download.length
            && announced != blob.size
        {
            return Err(size_mismatch(announced));
        }
        let mut hasher = sha2::Sha256::new();
        let mut received: u64 = 0;
        while let Some(chunk) = download.chunks.next().await {
            let chunk = chunk.map_err(|error| Failure::from_transport(error, context))?;
            received += chunk.len() as u64;
            if received > blob.size {
                return Err(size_mismatch(received));
            }
            hasher.update(&chunk);
            sink.write_all(&chunk)
                .map_err(|source| Failure::Final(self.sink_error(blob, source)))?;
        }
        if received != blob.size {
            return Err(size_mismatch(received));
        }
        let actual = Digest::from_hasher(hasher);
        if actual != blob.digest {
            return Err(Failure::Final(RegistryError::DigestMismatch {
                reference: self.canonical.clone(),
                object: context.object.to_string(),
                expected: blob.digest.to_string(),
                actual: actual.to_string(),
            }));
        }
        Ok(())
    }

    fn sink_error(&self, blob: &Descriptor, source: std::io::Error) -> RegistryError {
        RegistryError::Sink {
            reference: self.canonical.clone(),
            digest: blob.digest.to_string(),
            source,
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the `retries` are spent.
async fn retrying<T, F, Fut>(
    retries: u32,
    context: &RequestContext<'_>,
    mut attempt: F,
) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut retry = Retry::new(retries);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(failure) => retry.after(failure, context).await?,
        }
    }
}

/// Counts attempts and sleeps between them.
struct Retry {
    attempts: u32,
    retries: u32,
}

impl Retry {
    fn new(retries: u32) -> Retry {
        Retry {
            attempts: 1,
            retries,
        }
    }

    /// After a failed attempt: waits and returns `Ok` if another attempt is due, else the
    /// error to report.
    async fn after(
        &mut self,
        failure: Failure,
        context: &RequestContext<'_>,
    ) -> Result<(), RegistryError> {
        if !failure.is_transient() || self.attempts > self.retries {
            return Err(failure.into_error(context, self.attempts));
        }
        let delay = FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(self.attempts - 1))
            .min(MAX_BACKOFF);
        if let Failure::Transient(error) = &failure {
            tracing::debug!(
                "retrying {} of {} in {} ms after attempt {}: {error}",
                context.object,
                context.reference,
                delay.as_millis(),
                self.attempts
            );
        }
        tokio::time::sleep(delay).await;
        self.attempts += 1;
        Ok(())
    }
}
