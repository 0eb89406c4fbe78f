//! The request machinery every operation goes through: settle the host (`host.rs`), attach
//! the credentials the host wants (Basic, or a bearer token for the request's scopes), send,
//! and on a 401 absorb the fresh challenge (its scopes are added to ours, the refused token
//! is dropped) and send once more. GET and HEAD follow redirects by hand, so each hop gets
//! its own host's TLS policy and credentials never leave the registry's origin.
//!
//! A token realm's host is reached with that host's TLS policy. Retries on failure are the
//! caller's business.

use std::sync::PoisonError;
use std::time::Instant;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::Transport;
use super::auth::{Scopes, TokenRequest, fetch_token};
use super::body::read_error_code;
use super::challenge::RegistryChallenge;
use super::error::TransportError;
use super::host::{HostState, host_key, loggable};
use super::response::{challenge_of, status_error};
use super::tls::RegistryPolicy;

/// Redirect hops followed for one GET or HEAD.
const MAX_REDIRECTS: usize = 5;

/// One logical request: its host, what it is for (for errors), the scopes its token needs.
pub(crate) struct Exchange<'a> {
    pub host: &'a str,
    pub what: String,
    pub scopes: Scopes,
}

/// A request that can be sent again (its body is bytes, if any).
pub(crate) struct Outgoing {
    pub method: Method,
    /// `None`: the registry's base URL joined with `path`.
    pub url: Option<Url>,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Bound only the wait for the headers (the caller streams the body with its own idle
    /// limit), instead of the whole exchange.
    pub streamed_response: bool,
}

impl Outgoing {
    pub fn new(method: Method, path: String) -> Outgoing {
        Outgoing {
            method,
            url: None,
            path,
            headers: HeaderMap::new(),
            body: None,
            streamed_response: false,
        }
    }
}

impl Transport {
    /// The `Authorization` value for `exchange`: Basic, a bearer token for its scopes
    /// (cached or fetched now), or nothing.
    async fn authorization(
        &self,
        exchange: &Exchange<'_>,
        state: &HostState,
    ) -> Result<Option<HeaderValue>, TransportError> {
        let credentials = self.credentials(exchange.host, state).await?;
        let challenge = state
            .challenge
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let bearer = match challenge {
            None => return Ok(None),
            Some(RegistryChallenge::Basic) => return Ok(credentials.basic_header()),
            Some(RegistryChallenge::Bearer(bearer)) => bearer,
        };
        let host = exchange.host;
        let now = Instant::now();
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host, &exchange.scopes, now);
        let token = match cached {
            Some(token) => token,
            None => {
                let realm = Url::parse(&bearer.realm)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
                    .ok_or_else(|| TransportError::Protocol {
                        host: host.to_string(),
                        what: exchange.what.clone(),
                        reason: "the token realm is not an http(s) URL".into(),
                    })?;
                let realm_host = host_key(&realm);
                let send_credentials = realm.scheme() == "https"
                    || matches!(self.policy(&realm_host), RegistryPolicy::Insecure);
                let withheld = !send_credentials && !credentials.is_anonymous();
                if withheld {
                    tracing::debug!(
                        host,
                        realm_host,
                        "not sending credentials to a plain-HTTP token realm"
                    );
                }
                *state
                    .withheld_from
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    withheld.then(|| (loggable(&realm), realm_host.clone()));
                let client = self.client(&realm_host)?;
                let request = TokenRequest {
                    host,
                    realm,
                    service: bearer.service.as_deref(),
                    scopes: &exchange.scopes,
                    credentials: &credentials,
                    send_credentials,
                    timeout: self.options.request_timeout,
                };
                let (token, lifetime) = fetch_token(&client, &request)
                    .await
                    .map_err(|error| self.withheld(exchange, state, error))?;
                self.tokens
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(host, &exchange.scopes, token.clone(), lifetime, now);
                token
            }
        };
        token
            .header()
            .map(Some)
            .ok_or_else(|| TransportError::Protocol {
                host: host.to_string(),
                what: exchange.what.clone(),
                reason: "the token is not a valid header value".into(),
            })
    }

    /// The error for an answer the operation did not expect (see [`status_error`]).
    pub(crate) async fn unexpected(
        &self,
        exchange: &Exchange<'_>,
        response: Response,
    ) -> TransportError {
        let had_credentials = self.had_credentials(exchange.host);
        let error = status_error(response, exchange.host, &exchange.what, had_credentials).await;
        match self.hosts_state(exchange.host) {
            Some(state) => self.withheld(exchange, &state, error),
            None => error,
        }
    }

    /// A refusal after the credentials were kept from a plain-HTTP token realm becomes
    /// [`TransportError::CredentialsWithheld`], which says so (instead of "rejected").
    fn withheld(
        &self,
        exchange: &Exchange<'_>,
        state: &HostState,
        error: TransportError,
    ) -> TransportError {
        if !matches!(error, TransportError::AuthRefused { .. }) {
            return error;
        }
        let withheld = state
            .withheld_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match withheld {
            Some((realm, realm_host)) => TransportError::CredentialsWithheld {
                host: exchange.host.to_string(),
                what: exchange.what.clone(),
                realm,
                realm_host,
            },
            None => error,
        }
    }

    /// Sends `outgoing` with the host's auth; on a 401, absorbs the challenge and sends once
    /// more; GET and HEAD follow redirects. The answer may be any status.
    pub(crate) async fn send(
        &self,
        exchange: &mut Exchange<'_>,
        outgoing: &Outgoing,
    ) -> Result<Response, TransportError> {
        let (state, base) = self.settle(exchange.host).await?;
        let mut url = match &outgoing.url {
            Some(url) => url.clone(),
            None => join(&base, &outgoing.path, exchange)?,
        };
        let mut response = self
            .dispatch(exchange, &state, &base, &url, outgoing, None)
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.absorb_refusal(exchange, &state, response).await?;
            response = self
                .dispatch(exchange, &state, &base, &url, outgoing, None)
                .await?;
        }
        if !matches!(outgoing.method, Method::GET | Method::HEAD) {
            return Ok(response);
        }
        for _ in 0..MAX_REDIRECTS {
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok());
            let next = location
                .and_then(|location| url.join(location).ok())
                .ok_or_else(|| protocol(exchange, "a redirect without a usable Location"))?;
            if url.scheme() == "https"
                && next.scheme() == "http"
                && !matches!(self.policy(&host_key(&next)), RegistryPolicy::Insecure)
            {
                return Err(protocol(exchange, "a redirect from HTTPS to plain HTTP"));
            }
            tracing::debug!(host = exchange.host, to = %loggable(&next), "following a redirect");
            url = next;
            response = self
                .dispatch(exchange, &state, &base, &url, outgoing, None)
                .await?;
        }
        Err(protocol(exchange, "too many redirects"))
    }

    /// Sends a request with a body that cannot be replayed: no second attempt on a 401
    /// (the challenge is absorbed and [`TransportError::ReauthRequired`] returned).
    pub(crate) async fn send_once(
        &self,
        exchange: &mut Exchange<'_>,
        url: &Url,
        outgoing: &Outgoing,
        body: reqwest::Body,
    ) -> Result<Response, TransportError> {
        let (state, base) = self.settle(exchange.host).await?;
        let response = self
            .dispatch(exchange, &state, &base, url, outgoing, Some(body))
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.absorb_refusal(exchange, &state, response).await?;
            return Err(TransportError::ReauthRequired {
                host: exchange.host.to_string(),
                what: exchange.what.clone(),
            });
        }
        Ok(response)
    }

    /// One HTTP exchange. Credentials go only to the registry's own origin.
    async fn dispatch(
        &self,
        exchange: &Exchange<'_>,
        state: &HostState,
        base: &Url,
        url: &Url,
        outgoing: &Outgoing,
        body: Option<reqwest::Body>,
    ) -> Result<Response, TransportError> {
        let client = self.client(&host_key(url))?;
        let mut builder = client
            .request(outgoing.method.clone(), url.clone())
            .headers(outgoing.headers.clone());
        if url.origin() == base.origin()
            && let Some(authorization) = self.authorization(exchange, state).await?
        {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        if let Some(body) = body.or_else(|| outgoing.body.clone().map(reqwest::Body::from)) {
            builder = builder.body(body);
        }
        tracing::trace!(method = %outgoing.method, url = %loggable(url), "request");
        let sent = if outgoing.streamed_response {
            tokio::time::timeout(self.options.request_timeout, builder.send())
                .await
                .map_err(|_| TransportError::Timeout {
                    host: exchange.host.to_string(),
                    what: exchange.what.clone(),
                })?
        } else {
            builder.timeout(self.options.request_timeout).send().await
        };
        let response = sent
            .map_err(|error| TransportError::from_reqwest(error, exchange.host, &exchange.what))?;
        tracing::trace!(url = %loggable(url), status = response.status().as_u16(), "response");
        Ok(response)
    }

    /// Takes in a 401: the challenge it carries becomes the host's, the scopes it names are
    /// added to the exchange's (`insufficient_scope` on a mount names both repositories),
    /// and the refused token is dropped.
    async fn absorb_refusal(
        &self,
        exchange: &mut Exchange<'_>,
        state: &HostState,
        response: Response,
    ) -> Result<(), TransportError> {
        let challenge = challenge_of(&response, exchange.host, &exchange.what)?;
        let _ = read_error_code(response, exchange.host).await;
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.remove(exchange.host, &exchange.scopes);
        if let Some(RegistryChallenge::Bearer(bearer)) = &challenge {
            exchange.scopes.extend(&bearer.scopes);
            tokens.remove(exchange.host, &exchange.scopes);
            tracing::debug!(
                host = exchange.host,
                error = bearer.error.as_deref().unwrap_or(""),
                scopes = %exchange.scopes.iter().collect::<Vec<_>>().join(" "),
                "401: asking for a new token"
            );
        }
        if challenge.is_some() {
            *state
                .challenge
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = challenge;
        }
        Ok(())
    }
}

fn join(base: &Url, path: &str, exchange: &Exchange<'_>) -> Result<Url, TransportError> {
    base.join(path)
        .map_err(|_| protocol(exchange, "cannot build the request URL"))
}

fn protocol(exchange: &Exchange<'_>, reason: &str) -> TransportError {
    TransportError::Protocol {
        host: exchange.host.to_string(),
        what: exchange.what.clone(),
        reason: reason.to_string(),
    }
}
