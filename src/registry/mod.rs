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
//! contacted. Connection errors, 5xx and 429 are retried with exponential backoff.

mod credentials;
mod error;
mod mirror;
mod push;
mod resolve;
mod signature;
mod sink;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::OnceCell;

use crate::oci::{Content, Descriptor, Digest, MediaType, PlatformSelection};
use credentials::DockerConfig;
use error::{Failure, RequestContext};
use mirror::Mirrors;

pub use error::RegistryError;
pub use mirror::Mirror;
pub use push::{
    BasicCredentials, PushAction, PushEvent, PushImage, PushReport, PushedImage, Pusher,
};
pub use signature::StoredSignature;
pub use sink::{BlobSink, OffsetSink};

const USER_AGENT: &str = concat!("velero-airgap/", env!("CARGO_PKG_VERSION"));
/// First retry delay; each further retry doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Pull mirrors (`--mirror FROM=TO`).
    pub mirrors: Vec<Mirror>,
    /// Hosts (`host[:port]`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// PEM files with extra root CAs to trust.
    pub ca_files: Vec<PathBuf>,
    /// A Docker `config.json`, or a directory holding one; when `None`,
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` if present.
    pub docker_config: Option<PathBuf>,
    /// Retries after a connection error, 5xx or 429; 0 means a single attempt.
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
    pub canonical: crate::reference::Reference,
    /// The reference actually pulled from (differs from `canonical` through a mirror).
    pub source: crate::reference::Reference,
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
    source_reference: Reference,
}

/// A connection to registries, shared by every pull of a build: it is `Send + Sync`, so
/// one `Arc<Registry>` serves concurrent tasks and reuses connections and tokens.
pub struct Registry {
    client: Client,
    mirrors: Mirrors,
    docker_config: DockerConfig,
    /// Credentials per contacted host, looked up once (a helper is a process spawn).
    credentials: Mutex<HashMap<String, Arc<OnceCell<RegistryAuth>>>>,
    retries: u32,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("mirrors", &self.mirrors)
            .field("docker_config", &self.docker_config)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Reads the CA files and the Docker config and sets up the HTTP client.
    pub fn new(options: RegistryOptions) -> Result<Registry, RegistryError> {
        Registry::with_client_config(options, |_| ())
    }

    /// Like [`Registry::new`], with `adjust` applied to the client settings (the pusher's
    /// differ).
    fn with_client_config(
        options: RegistryOptions,
        adjust: impl FnOnce(&mut ClientConfig),
    ) -> Result<Registry, RegistryError> {
        let mirrors = Mirrors::new(options.mirrors)?;
        let docker_config = DockerConfig::load(options.docker_config.as_deref())?;
        let mut certificates = Vec::new();
        for path in &options.ca_files {
            certificates.extend(read_certificates(path)?);
        }
        let insecure: Vec<String> = options
            .insecure
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut config = ClientConfig {
            protocol: if insecure.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(insecure)
            },
            extra_root_certificates: certificates,
            // Platforms are chosen here, from raw manifests.
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        adjust(&mut config);
        // `Client::new` would fall back to default TLS settings on error; this surfaces it.
        let client = Client::try_from(config).map_err(|source| RegistryError::TlsSetup {
            source: Box::new(source),
        })?;
        Ok(Registry {
            client,
            mirrors,
            docker_config,
            credentials: Mutex::new(HashMap::new()),
            retries: options.retries,
        })
    }

    /// Resolves `canonical` for `platforms`: pulls its manifests (through a mirror if one
    /// matches) and lists the blobs to fetch. A missing platform is
    /// [`RegistryError::MissingPlatform`], naming the image and every missing platform; an
    /// image without an index must match every requested platform (read from its config).
    pub async fn resolve(
        &self,
        canonical: &crate::reference::Reference,
        platforms: &PlatformSelection,
    ) -> Result<ResolvedImage, RegistryError> {
        let text = canonical.to_string();
        let canonical_reference = Reference::try_from(text.as_str()).map_err(|source| {
            RegistryError::InvalidReference {
                reference: text.clone(),
                source,
            }
        })?;
        let source = self.mirrors.rewrite(&canonical_reference)?;
        let session = self.session(&text, &source).await?;
        session.authenticate().await?;
        let resolved = resolve::resolve(&session, platforms).await?;
        let source_text = source.to_string();
        Ok(ResolvedImage {
            canonical: canonical.clone(),
            source: crate::reference::Reference::parse(&source_text).map_err(|_| {
                RegistryError::InvalidMirror {
                    spec: source_text.clone(),
                    reason: "the mirrored reference is not a valid reference".into(),
                }
            })?,
            top: resolved.top,
            manifests: resolved.manifests,
            source_index: resolved.source_index,
            blobs: resolved.blobs,
            configs: resolved.configs,
            source_reference: source,
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
        let canonical = image.canonical.to_string();
        let session = self.session(&canonical, &image.source_reference).await?;
        session.fetch_blob(blob, sink).await
    }

    async fn session<'a>(
        &'a self,
        canonical: &'a str,
        source: &'a Reference,
    ) -> Result<Session<'a>, RegistryError> {
        let host = source.resolve_registry();
        let auth = self.credentials_for(host).await?;
        Ok(Session {
            registry: self,
            canonical,
            source,
            host,
            auth,
        })
    }

    async fn credentials_for(&self, host: &str) -> Result<RegistryAuth, RegistryError> {
        let cell = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_string())
            .or_default()
            .clone();
        let auth = cell
            .get_or_try_init(|| {
                let config = self.docker_config.clone();
                let host = host.to_string();
                async move {
                    tokio::task::spawn_blocking({
                        let host = host.clone();
                        move || config.lookup(&host)
                    })
                    .await
                    .map_err(|_| RegistryError::Credentials {
                        host,
                        reason: "the credential lookup panicked".into(),
                    })?
                }
            })
            .await?;
        Ok(auth.clone())
    }
}

/// Reads every PEM certificate in `path`.
fn read_certificates(path: &std::path::Path) -> Result<Vec<Certificate>, RegistryError> {
    let failed = |reason: String| RegistryError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .map(|certificate| {
            certificate
                .map(|der| Certificate {
                    encoding: CertificateEncoding::Der,
                    data: der.to_vec(),
                })
                .map_err(|error| failed(format!("bad PEM: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if certificates.is_empty() {
        return Err(failed("no PEM certificate found".into()));
    }
    Ok(certificates)
}

/// Requests for one image on one host, with the credentials for that host.
pub(crate) struct Session<'a> {
    registry: &'a Registry,
    canonical: &'a str,
    source: &'a Reference,
    host: &'a str,
    auth: RegistryAuth,
}

impl<'a> Session<'a> {
    fn context<'b>(&'b self, object: &'b str) -> RequestContext<'b> {
        RequestContext {
            host: self.host,
            reference: self.canonical,
            object,
            had_credentials: self.auth != RegistryAuth::Anonymous,
        }
    }

    /// Gets a pull token (Bearer flows) or settles on Basic, surfacing refusals early.
    async fn authenticate(&self) -> Result<(), RegistryError> {
        let context = self.context("authentication");
        self.retrying(&context, || async {
            self.registry
                .client
                .auth(self.source, &self.auth, RegistryOperation::Pull)
                .await
                .map(drop)
                .map_err(|error| Failure::from_oci(error, &context))
        })
        .await
    }

    /// Pulls a manifest by tag or digest; when `expected` is given the bytes must hash to it.
    async fn manifest(
        &self,
        reference: &Reference,
        expected: Option<&Digest>,
    ) -> Result<bytes::Bytes, RegistryError> {
        let object = match expected {
            Some(digest) => format!("manifest {digest}"),
            None => format!("manifest for tag {}", reference.tag().unwrap_or("latest")),
        };
        let context = self.context(&object);
        let accepted = MediaType::ACCEPTED_MANIFESTS.map(|t| t.as_str().to_owned());
        let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
        let (bytes, _) = self
            .retrying(&context, || async {
                self.registry
                    .client
                    .pull_manifest_raw(reference, &self.auth, &accepted)
                    .await
                    .map_err(|error| Failure::from_oci(error, &context))
            })
            .await?;
        // oci-client checks the digest it is given; computing sha256 here too costs
        // microseconds on a manifest and keeps the guarantee independent of its header logic.
        if let Some(expected) = expected {
            let actual = Digest::of(&bytes);
            if actual != *expected {
                return Err(RegistryError::DigestMismatch {
                    reference: self.canonical.to_string(),
                    object,
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(bytes)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent.
    async fn retrying<T, F, Fut>(
        &self,
        context: &RequestContext<'_>,
        mut attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut retry = Retry::new(self.registry.retries);
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(failure) => retry.after(failure, context).await?,
            }
        }
    }

    /// Streams one blob into `sink`, restarting it on transient failures.
    async fn fetch_blob<S: BlobSink + ?Sized>(
        &self,
        blob: &Descriptor,
        sink: &mut S,
    ) -> Result<(), RegistryError> {
        let object = format!("blob {}", blob.digest);
        let context = self.context(&object);
        let mut retry = Retry::new(self.registry.retries);
        loop {
            sink.reset()
                .map_err(|source| self.sink_error(blob, source))?;
            match self.fetch_blob_once(blob, sink, &context).await {
                Ok(()) => return Ok(()),
                Err(failure) => retry.after(failure, &context).await?,
            }
        }
    }

    async fn fetch_blob_once<S: BlobSink + ?Sized>(
        &self,
        blob: &Descriptor,
        sink: &mut S,
        context: &RequestContext<'_>,
    ) -> Result<(), Failure> {
        let size_mismatch = |actual: u64| {
            Failure::Final(RegistryError::SizeMismatch {
                reference: self.canonical.to_string(),
                object: context.object.to_string(),
                expected: blob.size,
                actual,
            })
        };
        // The stream hashes what passes through and fails at its end on a digest mismatch
        // (oci-client's VerifyingStream), so the bytes are hashed once, here, not twice.
        let mut stream = self
            .registry
            .client
            .pull_blob_stream(self.source, blob.digest.to_string().as_str())
            .await
            .map_err(|error| Failure::from_oci(error, context))?;
        if let Some(announced) = stream.content_length
            && announced != blob.size
        {
            return Err(size_mismatch(announced));
        }
        let mut received: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| Failure::from_io(error, context))?;
            received += chunk.len() as u64;
            // Stop a registry that sends more than announced before it fills the disk.
            if received > blob.size {
                return Err(size_mismatch(received));
            }
            sink.write_all(&chunk)
                .map_err(|source| Failure::Final(self.sink_error(blob, source)))?;
        }
        if received != blob.size {
            return Err(size_mismatch(received));
        }
        Ok(())
    }

    fn sink_error(&self, blob: &Descriptor, source: std::io::Error) -> RegistryError {
        RegistryError::Sink {
            reference: self.canonical.to_string(),
            digest: blob.digest.to_string(),
            source,
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
        tokio::time::sleep(delay).await;
        self.attempts += 1;
        Ok(())
    }
}
