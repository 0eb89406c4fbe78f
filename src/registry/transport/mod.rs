//! Our own OCI distribution client, on `reqwest` (as skopeo and crane own theirs).
//!
//! Why not `oci-client` (0.18): it has one TLS policy per client, where the field needs one
//! per registry (verified with extra CAs here, insecure there); it takes no custom
//! certificate verifier, so Embedded Cluster's self-signed CA:FALSE certificate cannot be
//! trusted even when the user hands it to us; a cross-repository mount asks only for push
//! scope on the target, so token registries refuse the mount; and it reads token and manifest
//! bodies whole, so an endless body drove RSS to 6 GB. Here:
//!
//! - TLS is chosen per `host[:port]` ([`Policies`], [`RegistryPolicy`]), with pinning of
//!   `--ca-file` certificates and Docker's insecure-registry semantics (`tls.rs`); one
//!   `reqwest::Client` per distinct policy, connections reused per host.
//! - Proxies come from the environment with Go's rules ([`ProxyConfig`], `proxy.rs`).
//! - Each host is pinged once (`host.rs`); auth is Basic or bearer tokens per scope set,
//!   with a real `WWW-Authenticate` parser (`auth.rs`, `challenge.rs`, `request.rs`).
//! - Every body read whole is capped (`body.rs`); blobs stream.
//! - Operations (`manifest.rs`, `blob.rs`) return [`TransportError`], whose
//!   [`TransportError::is_transient`] drives the caller's retries: this module never retries
//!   on its own, except one re-authentication after a 401.

mod auth;
mod blob;
mod body;
mod certificate;
mod challenge;
mod credentials;
mod error;
mod host;
mod manifest;
mod proxy;
mod request;
mod response;
mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::oci::Digest;

pub use blob::{BlobDownload, MountOutcome};
pub use credentials::Credentials;
pub(crate) use error::cut_suffix;
pub use error::{BoxError, TransportError};
pub use manifest::{Manifest, ManifestHead};
pub use proxy::{ProxyConfig, redact};
pub use tls::{Policies, RegistryPolicy};

/// Settings of a [`Transport`].
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// TLS per registry host.
    pub policies: Policies,
    /// Proxies; [`ProxyConfig::from_env`] for the usual behaviour.
    pub proxy: ProxyConfig,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The longest a TCP connect (plus TLS handshake) may take.
    pub connect_timeout: Duration,
    /// The longest a request with a small answer may take from start to end, and the
    /// longest wait for the headers of a blob download.
    pub request_timeout: Duration,
    /// The longest a blob download may go without a byte, or an upload without taking one
    /// (or, once all is sent, without an answer).
    pub idle_timeout: Duration,
}

impl TransportOptions {
    /// Defaults for `policies`: no proxy, 15 s connect, 60 s requests, 60 s idle.
    pub fn new(policies: Policies) -> TransportOptions {
        TransportOptions {
            policies,
            proxy: ProxyConfig::default(),
            user_agent: concat!("velero-airgap/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Looks up the credentials for a registry host; called once per host, on a blocking
/// thread (it may run a credential helper). The host is the registry's, never a token
/// realm's: a realm gets the credentials of the registry that sent us there.
pub type CredentialSource = dyn Fn(&str) -> Result<Credentials, BoxError> + Send + Sync;

/// Something the user should know about how a host is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// An insecure host speaks TLS, but its certificate is not verified.
    UnverifiedTls { host: String },
    /// An insecure host does not speak TLS: plain HTTP is used.
    PlainHttp { host: String },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::UnverifiedTls { host } => {
                write!(
                    f,
                    "registry {host} is insecure: its TLS certificate is not verified"
                )
            }
            Warning::PlainHttp { host } => {
                write!(
                    f,
                    "registry {host} is insecure: it is reached over plain HTTP"
                )
            }
        }
    }
}

/// A repository on a registry host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// `host[:port]` as contacted (Docker Hub's `docker.io` must already be mapped to the
    /// host that serves its API).
    pub host: String,
    /// The repository path, e.g. `library/nginx`.
    pub name: String,
}

impl Repository {
    /// Checks `name` against the distribution grammar (lower-case components of
    /// `[a-z0-9]` joined by `.`, `_`, `__` or `-`, separated by `/`), so it is safe in a URL path.
    pub fn new(host: &str, name: &str) -> Result<Repository, TransportError> {
        let valid_component = |component: &str| {
            !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && component.starts_with(|c: char| c.is_ascii_alphanumeric())
                && component.ends_with(|c: char| c.is_ascii_alphanumeric())
                && !component.contains("..")
        };
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(TransportError::Invalid {
                what: "registry host".into(),
                reason: format!("{host:?} is not host[:port]"),
            });
        }
        if name.len() > 255 || !name.split('/').all(valid_component) {
            return Err(TransportError::Invalid {
                what: "repository name".into(),
                reason: format!("{name:?} is not a valid repository name"),
            });
        }
        Ok(Repository {
            host: host.to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.name)
    }
}

/// The distribution client. `Send + Sync`: share one (in an `Arc`) across tasks, so
/// connections, pings and tokens are reused.
pub struct Transport {
    options: TransportOptions,
    credentials: Arc<CredentialSource>,
    /// One client per distinct policy (indexed like `options.policies`), built on first use.
    clients: Mutex<Vec<Option<reqwest::Client>>>,
    system_roots: OnceLock<Vec<CertificateDer<'static>>>,
    hosts: Mutex<HashMap<String, Arc<host::HostState>>>,
    tokens: Mutex<auth::TokenCache>,
    warnings: Mutex<Vec<Warning>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport with `options`, asking `credentials` for each registry host's
    /// credentials. Fails when a pinned certificate cannot be read; HTTP clients are built
    /// on first use.
    pub fn new(
        options: TransportOptions,
        credentials: impl Fn(&str) -> Result<Credentials, BoxError> + Send + Sync + 'static,
    ) -> Result<Transport, TransportError> {
        options.policies.check_pins()?;
        let clients = vec![None; options.policies.len()];
        Ok(Transport {
            options,
            credentials: Arc::new(credentials),
            clients: Mutex::new(clients),
            system_roots: OnceLock::new(),
            hosts: Mutex::new(HashMap::new()),
            tokens: Mutex::new(auth::TokenCache::default()),
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// The warnings so far (each once per host), e.g. to print after a run; they are also
    /// logged with `tracing::warn!` when they arise.
    pub fn warnings(&self) -> Vec<Warning> {
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn warn(&self, warning: Warning) {
        let mut warnings = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        if !warnings.contains(&warning) {
            tracing::warn!("{warning}");
            warnings.push(warning);
        }
    }

    fn policy(&self, host: &str) -> &RegistryPolicy {
        let policies = &self.options.policies;
        policies.get(policies.index_for(host))
    }

    /// The client for `host`'s policy, built on first use.
    fn client(&self, host: &str) -> Result<reqwest::Client, TransportError> {
        let index = self.options.policies.index_for(host);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = &clients[index] {
            return Ok(client.clone());
        }
        let policy = self.options.policies.get(index);
        let roots = match policy {
            RegistryPolicy::Verified { .. } => {
                self.system_roots.get_or_init(tls::system_roots).as_slice()
            }
            RegistryPolicy::Insecure => &[],
        };
        let tls = tls::client_config(policy, roots)?;
        // No client-level read timeout: reqwest's runs from the request's start through the
        // answer, which for a streamed upload is the whole upload. Requests are bounded one
        // by one instead (request.rs, blob.rs).
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(self.options.user_agent.clone())
            .connect_timeout(self.options.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if !self.options.proxy.is_empty() {
            let proxy = self.options.proxy.clone();
            builder = builder.proxy(reqwest::Proxy::custom(move |url| proxy.proxy_for(url)));
        }
        let client = builder.build().map_err(|error| TransportError::Setup {
            reason: format!("HTTP client: {error}"),
        })?;
        tracing::debug!(?policy, "built an HTTP client");
        clients[index] = Some(client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_grammar() {
        for good in ["a", "library/nginx", "a/b-c/d_e.f", "x__y", "0/1"] {
            assert!(Repository::new("r:5000", good).is_ok(), "{good}");
        }
        for bad in [
            "", "A", "a//b", "/a", "a/", "a/../b", "-a", "a-", "a b", "a?b", "a%2fb", "..",
        ] {
            assert!(Repository::new("r:5000", bad).is_err(), "{bad}");
        }
        assert!(Repository::new("r/evil", "a").is_err());
        assert!(Repository::new("", "a").is_err());
    }

    #[test]
    fn warnings_are_recorded_once() {
        let transport = Transport::new(
            TransportOptions::new(Policies::new(RegistryPolicy::system())),
            |_| Ok(Credentials::Anonymous),
        )
        .unwrap();
        transport.warn(Warning::PlainHttp { host: "h".into() });
        transport.warn(Warning::PlainHttp { host: "h".into() });
        assert_eq!(transport.warnings().len(), 1);
    }
}
