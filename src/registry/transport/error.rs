//! The errors of the transport, classified for the caller's retry loop: [`TransportError::is_transient`]
//! tells whether another attempt may help. Messages name the registry host and what was asked
//! for, never a URL query, a credential or a token.

use std::error::Error as StdError;

/// A boxed error from a lower layer (reqwest, rustls, the caller's body or credential source).
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The connection could not be made or broke (reset, refused, closed mid-body).
    #[error("cannot reach registry {host} for {what}")]
    Connect {
        host: String,
        /// What was asked for.
        what: String,
        /// The underlying failure (reqwest's error without its URL).
        #[source]
        source: BoxError,
    },
    /// No answer, or no progress, within the configured time.
    #[error("registry {host} timed out for {what}")]
    Timeout {
        host: String,
        /// What was asked for.
        what: String,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, expired...).
    #[error("TLS with {host} failed")]
    Tls {
        host: String,
        /// The underlying failure; a `rustls::Error` sits in its chain.
        #[source]
        source: BoxError,
    },
    /// The registry (or its token server) refused access.
    #[error("registry {host} refused access to {what}: {}", auth_hint(*.had_credentials))]
    AuthRefused {
        host: String,
        /// What was asked for.
        what: String,
        /// Whether credentials were sent.
        had_credentials: bool,
    },
    /// The registry refused access, and the caller's credentials were not sent: its token
    /// server is plain HTTP and not an insecure host (the credentials would travel in clear).
    #[error(
        "registry {host} refused access to {what}: its token server {realm} is plain HTTP, so the credentials were not sent"
    )]
    CredentialsWithheld {
        /// The registry host.
        host: String,
        /// What was asked for.
        what: String,
        /// The token realm, without its query.
        realm: String,
        /// The realm's `host[:port]`, as an insecure host would be named.
        realm_host: String,
    },
    /// The registry does not have it.
    #[error("registry {host} has no {what}{}", code_suffix(.code))]
    NotFound {
        host: String,
        /// What was asked for.
        what: String,
        /// The distribution error code, e.g. `MANIFEST_UNKNOWN`.
        code: Option<String>,
    },
    /// 429 or 5xx: the registry is overloaded or broken for now.
    #[error(
        "registry {host} answered HTTP {status} for {what}{}{}",
        code_suffix(.code),
        .body_cut_at.map(cut_suffix).unwrap_or_default()
    )]
    Server {
        host: String,
        /// What was asked for.
        what: String,
        status: u16,
        /// The distribution error code, if the body named one.
        code: Option<String>,
        /// The error body went past this many bytes and was not read further.
        body_cut_at: Option<u64>,
    },
    /// A streamed upload met a 401: the token was refreshed, but the body cannot be replayed,
    /// so the caller must reopen it and call again. Transient.
    #[error("registry {host} wants fresh credentials for {what}; reopen the body and retry")]
    ReauthRequired {
        host: String,
        /// What was asked for.
        what: String,
    },
    /// Content did not hash to the digest it was asked by.
    #[error("digest mismatch for {what} from {host}: expected {expected}, got {actual}")]
    DigestMismatch {
        host: String,
        /// What was fetched.
        what: String,
        expected: String,
        /// The digest of what arrived (or what the registry reported).
        actual: String,
    },
    /// Content did not have the announced size.
    #[error("size mismatch for {what} from {host}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        host: String,
        /// What was fetched.
        what: String,
        expected: u64,
        actual: u64,
    },
    /// A body was larger than we accept for its kind.
    #[error("registry {host} sent more than {limit} bytes for {what}")]
    TooLarge {
        host: String,
        /// What was being read.
        what: String,
        limit: u64,
    },
    /// The answer breaks the distribution protocol (unexpected status, missing header,
    /// malformed JSON or challenge).
    #[error("unexpected answer from registry {host} for {what}: {reason}")]
    Protocol {
        host: String,
        /// What was asked for.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// The caller's upload body failed while it was being sent.
    #[error("the body of {what} for {host} failed")]
    Source {
        host: String,
        /// What was being uploaded.
        what: String,
        /// The body's error.
        #[source]
        source: std::io::Error,
    },
    /// The caller's credential source failed for this host.
    #[error("cannot get credentials for registry {host}")]
    Credentials {
        host: String,
        /// The source's error.
        #[source]
        source: BoxError,
    },
    /// A repository name, reference, digest or URL given by the caller is not valid.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be set up (TLS roots, proxy URL).
    #[error("cannot set up the registry client: {reason}")]
    Setup {
        /// Why.
        reason: String,
    },
}

impl TransportError {
    /// Whether another attempt may succeed: connection errors, timeouts, 429, 5xx, and a
    /// streamed upload that needs its body reopened after a re-authentication.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Timeout { .. }
                | Self::Server { .. }
                | Self::ReauthRequired { .. }
        )
    }

    /// Classifies a reqwest failure: a timeout, a TLS failure, the caller's body failing, or
    /// a connection problem. The URL is dropped from the error (its query may carry upload
    /// state).
    pub(crate) fn from_reqwest(error: reqwest::Error, host: &str, what: &str) -> TransportError {
        if error.is_timeout() {
            return TransportError::Timeout {
                host: host.to_string(),
                what: what.to_string(),
            };
        }
        if let Some(source) = find_source_failure(&error) {
            return TransportError::Source {
                host: host.to_string(),
                what: what.to_string(),
                source,
            };
        }
        let source: BoxError = Box::new(error.without_url());
        if find_rustls_error(source.as_ref()).is_some() {
            TransportError::Tls {
                host: host.to_string(),
                source,
            }
        } else {
            TransportError::Connect {
                host: host.to_string(),
                what: what.to_string(),
                source,
            }
        }
    }
}

fn auth_hint(had_credentials: bool) -> &'static str {
    if had_credentials {
        "the credentials sent were rejected"
    } else {
        "no credentials were sent"
    }
}

/// What an error message adds when the error body went past `limit` bytes.
pub(crate) fn cut_suffix(limit: u64) -> String {
    format!("; its error body went past the {limit}-byte limit and was not read further")
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}

/// The caller's body error, marked so it can be told from a network failure once reqwest
/// has wrapped it.
#[derive(Debug, thiserror::Error)]
#[error("the upload body failed")]
pub(crate) struct SourceFailure(#[source] pub std::io::Error);

/// Walks an error chain, looking inside `io::Error`s too: tokio-rustls and hyper wrap
/// errors in an `io::Error`, whose `source()` skips the wrapped error.
fn walk<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(found) = io.get_ref().and_then(|inner| walk::<T>(inner))
        {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The rustls error somewhere in `error`'s chain, if any.
pub(crate) fn find_rustls_error<'a>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a rustls::Error> {
    walk::<rustls::Error>(error)
}

/// Takes the caller's body error out of a reqwest error (rebuilt: `io::Error` is not `Clone`).
fn find_source_failure(error: &reqwest::Error) -> Option<std::io::Error> {
    walk::<SourceFailure>(error)
        .map(|failure| std::io::Error::new(failure.0.kind(), failure.0.to_string()))
}

/// The first `errors[].code` of a distribution error body, if it has one.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    envelope.errors.into_iter().next().map(|entry| entry.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classes() {
        let host = || "r.example".to_string();
        let what = || "manifest latest".to_string();
        assert!(
            TransportError::Timeout {
                host: host(),
                what: what()
            }
            .is_transient()
        );
        assert!(
            TransportError::Server {
                host: host(),
                what: what(),
                status: 503,
                code: None,
                body_cut_at: None,
            }
            .is_transient()
        );
        assert!(
            TransportError::ReauthRequired {
                host: host(),
                what: what()
            }
            .is_transient()
        );
        assert!(
            !TransportError::AuthRefused {
                host: host(),
                what: what(),
                had_credentials: true
            }
            .is_transient()
        );
        assert!(
            !TransportError::TooLarge {
                host: host(),
                what: what(),
                limit: 4
            }
            .is_transient()
        );
    }

    #[test]
    fn rustls_error_is_found_inside_io_errors() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(find_rustls_error(&tls).is_some());
        assert!(find_rustls_error(&std::io::Error::other("reset")).is_none());
    }

    #[test]
    fn error_codes_are_read_from_envelopes() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"m"},{"code":"X"}]}"#;
        assert_eq!(error_code(body).as_deref(), Some("MANIFEST_UNKNOWN"));
        assert_eq!(error_code(b"<html>"), None);
    }

    #[test]
    fn messages_name_host_and_limit() {
        let error = TransportError::TooLarge {
            host: "r.example:5000".into(),
            what: "manifest of acme/app:1".into(),
            limit: 4 << 20,
        };
        let text = error.to_string();
        assert!(
            text.contains("r.example:5000") && text.contains("4194304"),
            "{text}"
        );
    }
}
