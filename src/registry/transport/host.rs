//! What the transport learns about each registry host, once: how to reach it (a ping of
//! `/v2/` settles the scheme; an insecure host falls back to plain HTTP here, and its warning
//! is raised), what auth it wants (the ping's challenge, updated by later 401s), and the
//! caller's credentials for it. Concurrent first requests to a host share one ping.

use std::sync::{Arc, PoisonError};

use reqwest::{Response, StatusCode};
use url::Url;

use super::body::{ERROR_LIMIT, read_response};
use super::challenge::RegistryChallenge;
use super::credentials::Credentials;
use super::error::{TransportError, find_rustls_error};
use super::response::{challenge_of, status_error};
use super::tls::RegistryPolicy;
use super::{Transport, Warning};

/// What the transport knows about one registry host.
#[derive(Default)]
pub(crate) struct HostState {
    /// The base URL (`https://host/` or `http://host/`), once `/v2/` answered.
    pub base: tokio::sync::OnceCell<Url>,
    /// What the host's last challenge asked for; `None`: nothing.
    pub challenge: std::sync::Mutex<Option<RegistryChallenge>>,
    /// The caller's credentials for the host, looked up once.
    pub credentials: tokio::sync::OnceCell<Credentials>,
    /// The token realm (URL without query, and its `host[:port]`) the credentials were last
    /// kept from, being plain HTTP; `None` when they went along (or there were none).
    pub withheld_from: std::sync::Mutex<Option<(String, String)>>,
}

impl Transport {
    /// Pings `host` once (later calls wait for or reuse the answer) and returns its state
    /// and base URL.
    pub(crate) async fn settle(&self, host: &str) -> Result<(Arc<HostState>, Url), TransportError> {
        let state = self
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_string())
            .or_default()
            .clone();
        let base = state
            .base
            .get_or_try_init(|| self.ping(host, &state))
            .await?
            .clone();
        Ok((state, base))
    }

    async fn ping(&self, host: &str, state: &HostState) -> Result<Url, TransportError> {
        let what = "the API check (/v2/)";
        let insecure = matches!(self.policy(host), RegistryPolicy::Insecure);
        let client = self.client(host)?;
        let https = base_url("https", host)?;
        let (base, response) = match get_v2(&client, &https, self.options.request_timeout).await {
            Ok(response) => (https, response),
            Err(error) if insecure && speaks_no_tls(&error, host) => {
                tracing::debug!(
                    host,
                    "TLS handshake failed on an insecure registry: falling back to plain HTTP"
                );
                let http = base_url("http", host)?;
                let response = get_v2(&client, &http, self.options.request_timeout)
                    .await
                    .map_err(|error| TransportError::from_reqwest(error, host, what))?;
                (http, response)
            }
            Err(error) => return Err(TransportError::from_reqwest(error, host, what)),
        };
        let status = response.status();
        let challenge = if status == StatusCode::UNAUTHORIZED {
            challenge_of(&response, host, what)?
        } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(status_error(response, host, what, false).await);
        } else {
            None
        };
        // Read the small body so the connection goes back to the pool.
        let _ = read_response(response, ERROR_LIMIT, host, what).await;
        tracing::debug!(host, base = %base, ?challenge, "registry settled");
        *state
            .challenge
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = challenge;
        if insecure {
            self.warn(if base.scheme() == "http" {
                Warning::PlainHttp {
                    host: host.to_string(),
                }
            } else {
                Warning::UnverifiedTls {
                    host: host.to_string(),
                }
            });
        }
        Ok(base)
    }

    /// The caller's credentials for `host`, looked up once on a blocking thread (a
    /// credential helper is a process).
    pub(crate) async fn credentials(
        &self,
        host: &str,
        state: &HostState,
    ) -> Result<Credentials, TransportError> {
        let lookup = || async {
            let source = self.credentials.clone();
            let owned = host.to_string();
            tokio::task::spawn_blocking(move || source(&owned))
                .await
                .map_err(|_| TransportError::Credentials {
                    host: host.to_string(),
                    source: "the credential lookup panicked".into(),
                })?
                .map_err(|source| TransportError::Credentials {
                    host: host.to_string(),
                    source,
                })
        };
        state.credentials.get_or_try_init(lookup).await.cloned()
    }

    /// What the transport knows about `host`, if it was contacted.
    pub(crate) fn hosts_state(&self, host: &str) -> Option<Arc<HostState>> {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.get(host).cloned()
    }

    /// Whether the caller had credentials for `host` (once they were looked up).
    pub(crate) fn had_credentials(&self, host: &str) -> bool {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts
            .get(host)
            .and_then(|state| state.credentials.get())
            .is_some_and(|credentials| !credentials.is_anonymous())
    }
}

async fn get_v2(
    client: &reqwest::Client,
    base: &Url,
    timeout: std::time::Duration,
) -> Result<Response, reqwest::Error> {
    let url = base.join("v2/").unwrap_or_else(|_| base.clone());
    tracing::trace!(method = "GET", url = %loggable(&url), "request");
    let response = client.get(url.clone()).timeout(timeout).send().await?;
    tracing::trace!(url = %loggable(&url), status = response.status().as_u16(), "response");
    Ok(response)
}

/// Whether a failed HTTPS attempt means the server does not speak TLS there, so an insecure
/// host is tried over plain HTTP (Docker's rule for insecure registries, as in containerd's
/// fallback): the handshake failed (a plain-HTTP server answers a ClientHello with an HTTP
/// error, or hangs up), or the connection was refused on the default port (443 closed, 80
/// may be open; with an explicit port the same port would refuse again).
fn speaks_no_tls(error: &reqwest::Error, host: &str) -> bool {
    if !error.is_connect() {
        return false;
    }
    if find_rustls_error(error).is_some() {
        return true;
    }
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                UnexpectedEof | ConnectionReset | ConnectionAborted | InvalidData => return true,
                ConnectionRefused => return !has_port(host),
                _ => {}
            }
        }
        current = cause.source();
    }
    false
}

fn has_port(host: &str) -> bool {
    host.rsplit_once(':').is_some_and(|(name, port)| {
        (!name.contains(':') || name.ends_with(']')) && !port.is_empty()
    })
}

/// `host[:port]` of a URL, as policies and hosts are keyed (`[v6]:port` for IPv6).
pub(crate) fn host_key(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn base_url(scheme: &str, host: &str) -> Result<Url, TransportError> {
    Url::parse(&format!("{scheme}://{host}/"))
        .ok()
        .filter(|url| url.path() == "/" && url.query().is_none() && url.username().is_empty())
        .ok_or_else(|| TransportError::Invalid {
            what: "registry host".into(),
            reason: format!("{host:?} is not host[:port]"),
        })
}

/// A URL for logs: scheme, host and path; the query (upload state, token scopes) is left out.
pub(crate) fn loggable(url: &Url) -> String {
    format!("{}://{}{}", url.scheme(), host_key(url), url.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_and_ports() {
        let key = |u: &str| host_key(&Url::parse(u).unwrap());
        assert_eq!(key("https://r.example/v2/"), "r.example");
        assert_eq!(key("https://r.example:443/v2/"), "r.example");
        assert_eq!(key("http://127.0.0.1:5000/token?scope=x"), "127.0.0.1:5000");
        assert_eq!(key("https://[::1]:5000/"), "[::1]:5000");
        assert!(has_port("127.0.0.1:5000") && has_port("[::1]:5000"));
        assert!(!has_port("r.example") && !has_port("[::1]"));
    }

    #[test]
    fn loggable_urls_have_no_query() {
        let url = Url::parse("https://r.example:5000/v2/a/blobs/uploads/x?_state=secret&digest=d")
            .unwrap();
        assert_eq!(
            loggable(&url),
            "https://r.example:5000/v2/a/blobs/uploads/x"
        );
    }

    #[test]
    fn base_urls_refuse_hosts_with_paths_or_users() {
        assert!(base_url("https", "r.example:5000").is_ok());
        for bad in ["r.example/evil", "user@r.example", "r.example?x", ""] {
            assert!(base_url("https", bad).is_err(), "{bad}");
        }
    }
}
