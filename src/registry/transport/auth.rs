//! Scopes and bearer tokens.
//!
//! The caller's [`Credentials`] for a registry host go to that registry's token server. A token is requested for a set of scopes in one GET
//! (`realm?service=S&scope=A&scope=B`, one parameter per scope), or one POST with an identity
//! (OAuth refresh) token, and cached per (registry host, sorted scope set) until 10 s before it
//! expires. The expiry is counted from the moment we sent the token request, not from the
//! server's `issued_at`, so a token server's clock skew cannot make us keep a dead token.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::body::{TOKEN_LIMIT, read_response};
use super::credentials::{Credentials, sensitive_header};
use super::error::TransportError;
use super::host::loggable;
use super::response::status_error;

/// A token counts as expired this long before its stated end, so it does not die in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The lifetime of a token whose answer has no `expires_in` (the distribution token spec's
/// default).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// The `client_id` sent with an identity-token (OAuth) request.
const CLIENT_ID: &str = "velero-airgap";

/// A bearer token. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    pub fn header(&self) -> Option<HeaderValue> {
        sensitive_header(&format!("Bearer {}", self.0))
    }
}

/// A set of token scopes, kept sorted so equal sets share a cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct Scopes(BTreeSet<String>);

impl Scopes {
    /// `repository:NAME:pull`.
    pub fn pull(name: &str) -> Scopes {
        Scopes([format!("repository:{name}:pull")].into())
    }

    /// `repository:NAME:pull,push`.
    pub fn push(name: &str) -> Scopes {
        Scopes([format!("repository:{name}:pull,push")].into())
    }

    /// Push on `destination` and pull on `source`, for a cross-repository mount: one token
    /// must carry both.
    pub fn mount(destination: &str, source: &str) -> Scopes {
        Scopes(
            [
                format!("repository:{destination}:pull,push"),
                format!("repository:{source}:pull"),
            ]
            .into(),
        )
    }

    /// Adds the scopes a registry named in its challenge.
    pub fn extend<'a>(&mut self, more: impl IntoIterator<Item = &'a String>) {
        self.0.extend(more.into_iter().cloned());
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Tokens per (registry host, scope set). The clock is passed in, so expiry is testable.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: HashMap<(String, Scopes), CachedToken>,
}

#[derive(Debug)]
struct CachedToken {
    token: Token,
    expires: Instant,
}

impl TokenCache {
    /// A token for `host` and `scopes` still good at `now` (with the margin), if any.
    pub fn get(&self, host: &str, scopes: &Scopes, now: Instant) -> Option<Token> {
        let entry = self.entries.get(&(host.to_string(), scopes.clone()))?;
        (now + EXPIRY_MARGIN < entry.expires).then(|| entry.token.clone())
    }

    /// Stores a token requested at `requested` that lives `lifetime` (default when `None`).
    pub fn insert(
        &mut self,
        host: &str,
        scopes: &Scopes,
        token: Token,
        lifetime: Option<Duration>,
        requested: Instant,
    ) {
        let expires = requested + lifetime.unwrap_or(DEFAULT_LIFETIME);
        self.entries.insert(
            (host.to_string(), scopes.clone()),
            CachedToken { token, expires },
        );
    }

    /// Forgets the token for `host` and `scopes` (the registry refused it).
    pub fn remove(&mut self, host: &str, scopes: &Scopes) {
        self.entries.remove(&(host.to_string(), scopes.clone()));
    }
}

/// Where and how to ask for a token.
pub(crate) struct TokenRequest<'a> {
    /// The registry host the token is for (names it in errors).
    pub host: &'a str,
    /// The realm URL, already checked to be http or https.
    pub realm: url::Url,
    pub service: Option<&'a str>,
    pub scopes: &'a Scopes,
    /// The registry host's credentials.
    pub credentials: &'a Credentials,
    /// Whether the credentials may go to this realm (never to plain HTTP unless the realm's
    /// host is insecure by the user's choice).
    pub send_credentials: bool,
    pub timeout: Duration,
}

/// Asks the token server for a token; returns it with its lifetime, if stated.
pub(crate) async fn fetch_token(
    client: &reqwest::Client,
    request: &TokenRequest<'_>,
) -> Result<(Token, Option<Duration>), TransportError> {
    let what = format!(
        "a token for {}",
        request.scopes.iter().collect::<Vec<_>>().join(" ")
    );
    let host = request.host;
    let credentials = if request.send_credentials {
        request.credentials
    } else {
        &Credentials::Anonymous
    };
    let method = match credentials {
        Credentials::IdentityToken(_) => "POST",
        Credentials::Basic { .. } | Credentials::Anonymous => "GET",
    };
    let builder = match credentials {
        Credentials::IdentityToken(refresh_token) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("client_id", CLIENT_ID)
                .append_pair("refresh_token", refresh_token);
            if let Some(service) = request.service {
                form.append_pair("service", service);
            }
            let scope = request.scopes.iter().collect::<Vec<_>>().join(" ");
            form.append_pair("scope", &scope);
            client
                .post(request.realm.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form.finish())
        }
        Credentials::Basic { .. } | Credentials::Anonymous => {
            let mut url = request.realm.clone();
            {
                let mut query = url.query_pairs_mut();
                if let Some(service) = request.service {
                    query.append_pair("service", service);
                }
                for scope in request.scopes.iter() {
                    query.append_pair("scope", scope);
                }
            }
            let mut builder = client.get(url);
            if let Some(header) = credentials.basic_header() {
                builder = builder.header(AUTHORIZATION, header);
            }
            builder
        }
    };
    tracing::trace!(method = %method, url = %loggable(&request.realm), "request");
    let response = builder
        .timeout(request.timeout)
        .send()
        .await
        .map_err(|error| TransportError::from_reqwest(error, host, &what))?;
    let status = response.status();
    tracing::trace!(url = %loggable(&request.realm), status = status.as_u16(), "response");
    if matches!(status.as_u16(), 401 | 403) {
        return Err(TransportError::AuthRefused {
            host: host.to_string(),
            what,
            had_credentials: !credentials.is_anonymous(),
        });
    }
    if !status.is_success() {
        return Err(status_error(response, host, &what, false).await);
    }
    let body = read_response(response, TOKEN_LIMIT, host, &what).await?;
    let answer = parse_token_answer(&body).map_err(|reason| TransportError::Protocol {
        host: host.to_string(),
        what: what.clone(),
        reason,
    })?;
    tracing::debug!(host, scopes = %what, "token fetched");
    Ok(answer)
}

/// Reads `{"token" | "access_token", "expires_in"}`; `access_token` wins when both are set
/// (as in Go's distribution client). The error never quotes the body.
fn parse_token_answer(body: &[u8]) -> Result<(Token, Option<Duration>), String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|error| format!("token answer is not the expected JSON: {error}"))?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .or(answer.token.filter(|t| !t.is_empty()))
        .ok_or("token answer holds no token")?;
    Ok((
        Token(token),
        answer
            .expires_in
            .filter(|&s| s > 0)
            .map(Duration::from_secs),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Token {
        Token(text.into())
    }

    #[test]
    fn cache_expiry_with_margin_and_default_lifetime() {
        let start = Instant::now();
        let mut cache = TokenCache::default();
        let scopes = Scopes::pull("a");
        cache.insert(
            "r",
            &scopes,
            token("t1"),
            Some(Duration::from_secs(300)),
            start,
        );
        assert_eq!(cache.get("r", &scopes, start), Some(token("t1")));
        assert!(
            cache
                .get("r", &scopes, start + Duration::from_secs(289))
                .is_some()
        );
        // Expired 10 s early.
        assert!(
            cache
                .get("r", &scopes, start + Duration::from_secs(290))
                .is_none()
        );
        // Without expires_in: 60 s, so good for 50 s.
        cache.insert("r", &scopes, token("t2"), None, start);
        assert!(
            cache
                .get("r", &scopes, start + Duration::from_secs(49))
                .is_some()
        );
        assert!(
            cache
                .get("r", &scopes, start + Duration::from_secs(50))
                .is_none()
        );
        // A lifetime under the margin is never served from the cache.
        cache.insert(
            "r",
            &scopes,
            token("t3"),
            Some(Duration::from_secs(5)),
            start,
        );
        assert!(cache.get("r", &scopes, start).is_none());
    }

    #[test]
    fn cache_keys_on_host_and_scope_set() {
        let now = Instant::now();
        let mut cache = TokenCache::default();
        let mut ab = Scopes::pull("a");
        ab.extend(&["repository:b:pull".to_string()]);
        let mut ba = Scopes::pull("b");
        ba.extend(&["repository:a:pull".to_string()]);
        cache.insert("r", &ab, token("t"), None, now);
        assert_eq!(cache.get("r", &ba, now), Some(token("t")));
        assert!(cache.get("other", &ba, now).is_none());
        assert!(cache.get("r", &Scopes::pull("a"), now).is_none());
        cache.remove("r", &ba);
        assert!(cache.get("r", &ab, now).is_none());
    }

    #[test]
    fn scopes_for_operations() {
        let join = |s: Scopes| s.iter().collect::<Vec<_>>().join(" ");
        assert_eq!(join(Scopes::pull("a/b")), "repository:a/b:pull");
        assert_eq!(join(Scopes::push("a/b")), "repository:a/b:pull,push");
        assert_eq!(
            join(Scopes::mount("dest", "src")),
            "repository:dest:pull,push repository:src:pull"
        );
    }

    #[test]
    fn token_answers() {
        let (t, life) = parse_token_answer(
            br#"{"token":"a","expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((t, life), (token("a"), Some(Duration::from_secs(300))));
        let (t, life) = parse_token_answer(br#"{"token":"a","access_token":"b"}"#).unwrap();
        assert_eq!((t, life), (token("b"), None));
        assert!(parse_token_answer(br#"{"token":""}"#).is_err());
        let error = parse_token_answer(b"secret-looking garbage").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let basic = Credentials::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let shown = format!(
            "{basic:?} {:?} {:?}",
            Credentials::IdentityToken("idt0k".into()),
            token("tok3n")
        );
        assert!(shown.contains("alice"), "{shown}");
        for secret in ["s3cret", "idt0k", "tok3n"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(basic.basic_header().unwrap().is_sensitive());
    }
}
