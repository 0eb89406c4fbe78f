//! The registry module's error type, and the translation of transport failures into it.
//!
//! Every variant names what the user can act on (registry host, image reference, digest,
//! platform) and none ever carries a credential or a response body.

use std::path::PathBuf;

use super::transport::TransportError;
use crate::ErrorKind;

/// An error raised while talking to a registry or interpreting what it served.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference or repository cannot be used with a registry.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        reference: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A `--mirror FROM=TO` specification is malformed or cannot be applied.
    #[error("invalid mirror {spec:?}: {reason}")]
    InvalidMirror {
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A platform specification is malformed.
    #[error(transparent)]
    InvalidPlatform(#[from] crate::oci::PlatformError),
    /// A CA file could not be read or holds no PEM certificate.
    #[error("cannot use CA file {path}: {reason}")]
    CaFile {
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be set up (TLS roots, proxy settings).
    #[error("cannot set up the registry client")]
    Setup {
        #[source]
        source: Box<TransportError>,
    },
    /// The Docker config file could not be read or parsed.
    #[error("cannot use Docker config {path}: {reason}")]
    DockerConfig {
        path: PathBuf,
        /// What went wrong (never the file's content).
        reason: String,
    },
    /// The Docker config holds an entry for the host that cannot be turned into credentials.
    #[error("cannot get credentials for registry {host} from the Docker config: {reason}")]
    Credentials {
        /// The registry host whose credentials were looked up.
        host: String,
        /// What went wrong (never the secret itself).
        reason: String,
    },
    /// The registry answered 401/403.
    #[error("registry {host} refused access to {reference}: {}", auth_hint(*.had_credentials))]
    AuthRefused {
        host: String,
        reference: String,
        /// Whether credentials (from the Docker config or given explicitly) were sent.
        had_credentials: bool,
    },
    /// The registry refused access, and the credentials were kept from its plain-HTTP token
    /// server.
    #[error(
        "registry {host} refused access to {reference}: the credentials were not sent, because its token server {realm} is plain HTTP; mark {realm_host} insecure (--insecure-registry {realm_host}) to send them anyway, or serve the token server over HTTPS"
    )]
    CredentialsWithheld {
        /// The registry host contacted.
        host: String,
        /// The canonical image reference.
        reference: String,
        /// The token realm, without its query.
        realm: String,
        /// The realm's `host[:port]`.
        realm_host: String,
    },
    /// The registry does not have the manifest or blob.
    #[error("{reference}: {object} not found on registry {host}")]
    NotFound {
        host: String,
        reference: String,
        /// What was asked for: `manifest for tag <tag>`, `manifest <digest>` or `blob <digest>`.
        object: String,
    },
    /// The registry could not be reached, or the connection broke, on every attempt.
    #[error(
        "cannot reach registry {host} (for {reference}, {attempts} attempt(s)); check that it runs and that the address (or --mirror) is right"
    )]
    Network {
        host: String,
        reference: String,
        /// How many attempts were made.
        attempts: u32,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS handshake failed (unknown CA, wrong name, or a plain-HTTP registry).
    #[error(
        "TLS handshake with registry {host} failed (trust its CA or its own certificate with --ca-file, or skip the check: --insecure-registry for build and validate, --insecure for unpack)"
    )]
    Tls {
        host: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry kept answering with a server error (5xx) or throttling (429).
    #[error(
        "registry {host} answered HTTP {status} for {object} of {reference} ({attempts} attempt(s)){}",
        .body_cut_at.map(super::transport::cut_suffix).unwrap_or_default()
    )]
    Server {
        host: String,
        reference: String,
        /// What was asked for.
        object: String,
        status: u16,
        /// How many attempts were made.
        attempts: u32,
        /// The last error body went past this many bytes and was not read further.
        body_cut_at: Option<u64>,
    },
    /// The registry (or its token server) sent more than a manifest or a token answer may
    /// be: it was not read further.
    #[error(
        "registry {host} sent more than {} for {what} (for {reference}); that is over the limit for it, so it was not read further",
        human_limit(*.limit)
    )]
    TooLarge {
        /// The registry host contacted.
        host: String,
        /// The canonical image reference.
        reference: String,
        /// What was being read (a manifest, a token answer...).
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The registry answered in a way the distribution protocol does not allow.
    #[error("unexpected answer from registry {host} for {object} of {reference}")]
    Protocol {
        host: String,
        reference: String,
        /// What was asked for.
        object: String,
        #[source]
        source: Box<TransportError>,
    },
    /// Content did not hash to the digest it was asked by.
    #[error("digest mismatch for {object} of {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        reference: String,
        /// What was fetched.
        object: String,
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// Content did not have the size its descriptor announced.
    #[error("size mismatch for {object} of {reference}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        reference: String,
        /// What was fetched.
        object: String,
        /// The size announced by the descriptor.
        expected: u64,
        /// The size received (or announced by the registry's Content-Length).
        actual: u64,
    },
    /// The image has no manifest for some requested platform.
    #[error(
        "{reference} has no image for platform {}; available: {}",
        .missing.join(", "),
        if .available.is_empty() { "none".to_string() } else { .available.join(", ") }
    )]
    MissingPlatform {
        reference: String,
        /// Requested platforms the image lacks.
        missing: Vec<String>,
        /// Platforms the image offers.
        available: Vec<String>,
    },
    /// The manifest is of a kind this tool refuses (schema 1, unknown media type, malformed).
    #[error("cannot use the manifest of {reference}: {reason}")]
    UnsupportedManifest {
        reference: String,
        /// Why it is refused.
        reason: String,
    },
    /// A blob to push could not be read from its source.
    #[error("cannot read blob {digest} to push to {reference}")]
    Source {
        reference: String,
        digest: String,
        /// The source's failure.
        #[source]
        source: std::io::Error,
    },
    /// The blob sink refused bytes or could not be reset.
    #[error("cannot store blob {digest} of {reference}")]
    Sink {
        reference: String,
        digest: String,
        /// The sink's failure.
        #[source]
        source: std::io::Error,
    },
}

/// `4 MiB (4194304 bytes)`, `64 KiB (65536 bytes)`.
fn human_limit(limit: u64) -> String {
    match limit {
        l if l >= 1 << 20 && l % (1 << 20) == 0 => format!("{} MiB ({l} bytes)", l >> 20),
        l if l >= 1 << 10 && l % (1 << 10) == 0 => format!("{} KiB ({l} bytes)", l >> 10),
        l => format!("{l} bytes"),
    }
}

fn auth_hint(had_credentials: bool) -> &'static str {
    if had_credentials {
        "the credentials sent were rejected"
    } else {
        "no credentials were sent (none given, none for it in the Docker config)"
    }
}

impl RegistryError {
    /// The class of this error: bad input, a remote failure, or a local one (the
    /// caller's blob source or sink).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidReference { .. }
            | Self::InvalidMirror { .. }
            | Self::InvalidPlatform(_)
            | Self::CaFile { .. }
            | Self::Setup { .. }
            | Self::DockerConfig { .. }
            | Self::Credentials { .. }
            | Self::DigestMismatch { .. }
            | Self::SizeMismatch { .. }
            | Self::MissingPlatform { .. }
            | Self::UnsupportedManifest { .. } => ErrorKind::Input,
            Self::AuthRefused { .. }
            | Self::CredentialsWithheld { .. }
            | Self::NotFound { .. }
            | Self::Network { .. }
            | Self::Tls { .. }
            | Self::Server { .. }
            | Self::TooLarge { .. }
            | Self::Protocol { .. } => ErrorKind::Remote,
            Self::Sink { .. } | Self::Source { .. } => ErrorKind::Local,
        }
    }
}

/// Where a request went and what it asked for, to name both in errors.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext<'a> {
    pub host: &'a str,
    pub reference: &'a str,
    pub object: &'a str,
}

/// The outcome of one failed attempt: whether another attempt may help, and the error to
/// report if none is made.
pub(crate) enum Failure {
    /// Connection trouble, a timeout, 5xx or 429, or fresh credentials needed: worth
    /// retrying.
    Transient(TransportError),
    /// Anything else: final.
    Final(RegistryError),
}

impl Failure {
    /// Turns the failure into the error reported after `attempts` attempts.
    pub fn into_error(self, context: &RequestContext<'_>, attempts: u32) -> RegistryError {
        match self {
            Failure::Transient(TransportError::Server {
                status,
                body_cut_at,
                ..
            }) => RegistryError::Server {
                host: context.host.to_string(),
                reference: context.reference.to_string(),
                object: context.object.to_string(),
                status,
                attempts,
                body_cut_at,
            },
            // The connection failure itself: the transport's wrapper would repeat what
            // this error already says (the host, what was asked).
            Failure::Transient(TransportError::Connect { source, .. }) => RegistryError::Network {
                host: context.host.to_string(),
                reference: context.reference.to_string(),
                attempts,
                source,
            },
            Failure::Transient(source) => RegistryError::Network {
                host: context.host.to_string(),
                reference: context.reference.to_string(),
                attempts,
                source: Box::new(source),
            },
            Failure::Final(error) => error,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient(_))
    }

    /// Classifies a transport failure for a request made in `context`.
    pub fn from_transport(error: TransportError, context: &RequestContext<'_>) -> Failure {
        if error.is_transient() {
            return Failure::Transient(error);
        }
        let host = context.host.to_string();
        let reference = context.reference.to_string();
        let object = context.object.to_string();
        Failure::Final(match error {
            TransportError::AuthRefused {
                had_credentials, ..
            } => RegistryError::AuthRefused {
                host,
                reference,
                had_credentials,
            },
            TransportError::CredentialsWithheld {
                realm, realm_host, ..
            } => RegistryError::CredentialsWithheld {
                host,
                reference,
                realm,
                realm_host,
            },
            TransportError::TooLarge { what, limit, .. } => RegistryError::TooLarge {
                host,
                reference,
                what,
                limit,
            },
            TransportError::NotFound { .. } => RegistryError::NotFound {
                host,
                reference,
                object,
            },
            TransportError::Tls { .. } => RegistryError::Tls {
                host,
                source: Box::new(error),
            },
            TransportError::DigestMismatch {
                expected, actual, ..
            } => RegistryError::DigestMismatch {
                reference,
                object,
                expected,
                actual,
            },
            TransportError::SizeMismatch {
                expected, actual, ..
            } => RegistryError::SizeMismatch {
                reference,
                object,
                expected,
                actual,
            },
            // The Docker config's own error already names the host and what went wrong.
            TransportError::Credentials { source, .. } => {
                match source.downcast::<RegistryError>() {
                    Ok(error) => *error,
                    Err(other) => RegistryError::Credentials {
                        host,
                        reason: other.to_string(),
                    },
                }
            }
            TransportError::Invalid { reason, .. } => {
                RegistryError::InvalidReference { reference, reason }
            }
            other => RegistryError::Protocol {
                host,
                reference,
                object,
                source: Box::new(other),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RequestContext<'static> {
        RequestContext {
            host: "registry.example.com",
            reference: "registry.example.com/app:1",
            object: "manifest 1",
        }
    }

    fn server(status: u16) -> TransportError {
        TransportError::Server {
            host: "registry.example.com".into(),
            what: "manifest 1".into(),
            status,
            code: None,
            body_cut_at: None,
        }
    }

    #[test]
    fn transient_failures_become_server_or_network_errors() {
        let ctx = context();
        let failure = Failure::from_transport(server(503), &ctx);
        assert!(failure.is_transient());
        assert!(matches!(
            failure.into_error(&ctx, 4),
            RegistryError::Server {
                status: 503,
                attempts: 4,
                ..
            }
        ));
        let timeout = TransportError::Timeout {
            host: "registry.example.com".into(),
            what: "blob".into(),
        };
        let error = Failure::from_transport(timeout, &ctx).into_error(&ctx, 2);
        assert!(matches!(error, RegistryError::Network { attempts: 2, .. }));
        assert_eq!(error.kind(), ErrorKind::Remote);
    }

    #[test]
    fn refusals_name_host_and_hint_without_secrets() {
        let ctx = context();
        let refused = TransportError::AuthRefused {
            host: "registry.example.com".into(),
            what: "manifest 1".into(),
            had_credentials: true,
        };
        let Failure::Final(error) = Failure::from_transport(refused, &ctx) else {
            panic!("a refusal is final");
        };
        let text = error.to_string();
        assert!(text.contains("registry.example.com"), "{text}");
        assert!(text.contains("rejected"), "{text}");
        assert_eq!(error.kind(), ErrorKind::Remote);
        let missing = TransportError::NotFound {
            host: "registry.example.com".into(),
            what: "manifest 1".into(),
            code: Some("MANIFEST_UNKNOWN".into()),
        };
        assert!(matches!(
            Failure::from_transport(missing, &ctx),
            Failure::Final(RegistryError::NotFound { .. })
        ));
    }

    #[test]
    fn withheld_credentials_say_why_and_what_to_do() {
        let ctx = context();
        let withheld = TransportError::CredentialsWithheld {
            host: "registry.example.com".into(),
            what: "blob x".into(),
            realm: "http://auth.example.com:8080/token".into(),
            realm_host: "auth.example.com:8080".into(),
        };
        let Failure::Final(error) = Failure::from_transport(withheld, &ctx) else {
            panic!("a refusal is final");
        };
        let text = error.to_string();
        for part in [
            "registry.example.com",
            "not sent",
            "http://auth.example.com:8080/token",
            "--insecure-registry auth.example.com:8080",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        assert!(!text.contains("rejected"), "{text}");
        assert_eq!(error.kind(), ErrorKind::Remote);
    }

    #[test]
    fn answers_over_their_limit_name_the_registry_and_the_limit() {
        let ctx = context();
        let too_large = TransportError::TooLarge {
            host: "registry.example.com".into(),
            what: "manifest 1 of app".into(),
            limit: 4 << 20,
        };
        let Failure::Final(error) = Failure::from_transport(too_large, &ctx) else {
            panic!("too large is final");
        };
        let text = error.to_string();
        assert!(
            text.contains("registry registry.example.com sent more than 4 MiB (4194304 bytes)")
                && text.contains("manifest 1 of app"),
            "{text}"
        );
        let mut cut = server(500);
        if let TransportError::Server { body_cut_at, .. } = &mut cut {
            *body_cut_at = Some(64 << 10);
        }
        let text = Failure::from_transport(cut, &ctx)
            .into_error(&ctx, 1)
            .to_string();
        assert!(
            text.contains("HTTP 500") && text.contains("65536-byte limit"),
            "{text}"
        );
    }
}
