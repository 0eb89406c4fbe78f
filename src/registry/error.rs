//! The registry module's error type, and the translation of `oci-client` failures into it.
//!
//! Every variant names what the user can act on (registry host, image reference, digest,
//! platform) and none ever carries a credential: `oci-client` errors are mapped here rather
//! than passed through, because a few of them quote response bodies verbatim.

use std::path::PathBuf;

use crate::ErrorKind;

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// An error raised while talking to a registry or interpreting what it served.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference could not be parsed.
    #[error("invalid image reference {reference:?}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it was rejected.
        #[source]
        source: oci_client::ParseError,
    },
    /// A `--mirror FROM=TO` specification is malformed or cannot be applied.
    #[error("invalid mirror {spec:?}: {reason}")]
    InvalidMirror {
        /// The mirror as given.
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
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be set up with the given TLS roots.
    #[error("cannot set up TLS with the given CA certificates")]
    TlsSetup {
        /// The underlying failure.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// The Docker config file could not be read or parsed.
    #[error("cannot use Docker config {path}: {reason}")]
    DockerConfig {
        /// The config file.
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
        /// The registry host contacted.
        host: String,
        /// The canonical image reference.
        reference: String,
        /// Whether credentials (from the Docker config or given explicitly) were sent.
        had_credentials: bool,
    },
    /// The registry does not have the manifest or blob.
    #[error("{reference}: {object} not found on registry {host}")]
    NotFound {
        /// The registry host contacted.
        host: String,
        /// The canonical image reference.
        reference: String,
        /// What was asked for: `manifest for tag <tag>`, `manifest <digest>` or `blob <digest>`.
        object: String,
    },
    /// The registry could not be reached, or the connection broke, on every attempt.
    #[error(
        "cannot reach registry {host} (for {reference}, {attempts} attempt(s)); check that it runs and that the address (or --mirror) is right"
    )]
    Network {
        /// The registry host contacted.
        host: String,
        /// The canonical image reference.
        reference: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last connection failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS handshake failed (unknown CA, wrong name, or a plain-HTTP registry).
    #[error(
        "TLS handshake with registry {host} failed (add its CA with --ca-file, or mark a plain-HTTP registry with --insecure-registry)"
    )]
    Tls {
        /// The registry host contacted.
        host: String,
        /// The TLS failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry kept answering with a server error (5xx) or throttling (429).
    #[error(
        "registry {host} answered HTTP {status} for {object} of {reference} ({attempts} attempt(s))"
    )]
    Server {
        /// The registry host contacted.
        host: String,
        /// The canonical image reference.
        reference: String,
        /// What was asked for.
        object: String,
        /// The last HTTP status.
        status: u16,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The registry answered in a way the distribution protocol does not allow.
    #[error("unexpected answer from registry {host} for {object} of {reference}")]
    Protocol {
        /// The registry host contacted.
        host: String,
        /// The canonical image reference.
        reference: String,
        /// What was asked for.
        object: String,
        /// The underlying failure.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// Content did not hash to the digest it was asked by.
    #[error("digest mismatch for {object} of {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The canonical image reference.
        reference: String,
        /// What was fetched.
        object: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// Content did not have the size its descriptor announced.
    #[error("size mismatch for {object} of {reference}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The canonical image reference.
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
        /// The canonical image reference.
        reference: String,
        /// Requested platforms the image lacks.
        missing: Vec<String>,
        /// Platforms the image offers.
        available: Vec<String>,
    },
    /// The manifest is of a kind this tool refuses (schema 1, unknown media type, malformed).
    #[error("cannot use the manifest of {reference}: {reason}")]
    UnsupportedManifest {
        /// The canonical image reference.
        reference: String,
        /// Why it is refused.
        reason: String,
    },
    /// A blob to push could not be read from its source.
    #[error("cannot read blob {digest} to push to {reference}")]
    Source {
        /// The target reference.
        reference: String,
        /// The blob being read.
        digest: String,
        /// The source's failure.
        #[source]
        source: std::io::Error,
    },
    /// The blob sink refused bytes or could not be reset.
    #[error("cannot store blob {digest} of {reference}")]
    Sink {
        /// The canonical image reference.
        reference: String,
        /// The blob being stored.
        digest: String,
        /// The sink's failure.
        #[source]
        source: std::io::Error,
    },
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
            | Self::TlsSetup { .. }
            | Self::DockerConfig { .. }
            | Self::Credentials { .. }
            | Self::DigestMismatch { .. }
            | Self::SizeMismatch { .. }
            | Self::MissingPlatform { .. }
            | Self::UnsupportedManifest { .. } => ErrorKind::Input,
            Self::AuthRefused { .. }
            | Self::NotFound { .. }
            | Self::Network { .. }
            | Self::Tls { .. }
            | Self::Server { .. }
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
    pub had_credentials: bool,
}

/// The outcome of one failed attempt: whether another attempt may help, and the error to
/// report if none is made.
pub(crate) enum Failure {
    /// Connection trouble: worth retrying.
    Connection(Box<dyn std::error::Error + Send + Sync>),
    /// 5xx or 429: worth retrying.
    Status(u16),
    /// Anything else: final.
    Final(RegistryError),
}

impl Failure {
    /// Turns the failure into the error reported after `attempts` attempts.
    pub fn into_error(self, context: &RequestContext<'_>, attempts: u32) -> RegistryError {
        match self {
            Failure::Connection(source) => RegistryError::Network {
                host: context.host.to_string(),
                reference: context.reference.to_string(),
                attempts,
                source,
            },
            Failure::Status(status) => RegistryError::Server {
                host: context.host.to_string(),
                reference: context.reference.to_string(),
                object: context.object.to_string(),
                status,
                attempts,
            },
            Failure::Final(error) => error,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Failure::Final(_))
    }

    /// Classifies an `oci-client` error.
    pub fn from_oci(error: OciDistributionError, context: &RequestContext<'_>) -> Failure {
        let auth_refused = || {
            Failure::Final(RegistryError::AuthRefused {
                host: context.host.to_string(),
                reference: context.reference.to_string(),
                had_credentials: context.had_credentials,
            })
        };
        let not_found = || {
            Failure::Final(RegistryError::NotFound {
                host: context.host.to_string(),
                reference: context.reference.to_string(),
                object: context.object.to_string(),
            })
        };
        match error {
            // `error_for_status` answers (a blob HEAD) arrive as request errors with a status:
            // classify them by that status, not as a broken connection.
            OciDistributionError::RequestError(source) => match source.status() {
                Some(status) => Failure::from_oci(
                    OciDistributionError::ServerError {
                        code: status.as_u16(),
                        url: source.url().map(ToString::to_string).unwrap_or_default(),
                        message: String::new(),
                    },
                    context,
                ),
                None => Failure::from_transport(Box::new(source), context),
            },
            OciDistributionError::IoError(source) => Failure::from_io(source, context),
            OciDistributionError::UnauthorizedError { .. }
            // Token-server refusals quote its response body: never pass that text on.
            | OciDistributionError::AuthenticationFailure(_) => auth_refused(),
            OciDistributionError::ServerError { code: 401 | 403, .. } => auth_refused(),
            OciDistributionError::ServerError { code: 404, .. } => not_found(),
            OciDistributionError::ServerError { code, .. } if code == 429 || code >= 500 => {
                Failure::Status(code)
            }
            OciDistributionError::RegistryError { ref envelope, .. } => {
                match envelope.errors.first().map(|e| &e.code) {
                    Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => auth_refused(),
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound,
                    ) => not_found(),
                    Some(OciErrorCode::Toomanyrequests) => Failure::Status(429),
                    _ => Failure::Final(protocol(error, context)),
                }
            }
            OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
                expected,
                actual,
            }) => Failure::Final(RegistryError::DigestMismatch {
                reference: context.reference.to_string(),
                object: context.object.to_string(),
                expected,
                actual,
            }),
            other => Failure::Final(protocol(other, context)),
        }
    }

    /// Classifies an I/O error from a blob stream: a failed digest check or a broken connection.
    pub fn from_io(error: std::io::Error, context: &RequestContext<'_>) -> Failure {
        if let Some(oci_client::errors::DigestError::VerificationError { expected, actual }) =
            error.get_ref().and_then(|inner| inner.downcast_ref())
        {
            return Failure::Final(RegistryError::DigestMismatch {
                reference: context.reference.to_string(),
                object: context.object.to_string(),
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
        Failure::from_transport(Box::new(error), context)
    }

    /// A transport failure is a TLS problem (final) or a connection problem (worth retrying).
    fn from_transport(
        error: Box<dyn std::error::Error + Send + Sync>,
        context: &RequestContext<'_>,
    ) -> Failure {
        if is_tls_failure(error.as_ref()) {
            Failure::Final(RegistryError::Tls {
                host: context.host.to_string(),
                source: error,
            })
        } else {
            Failure::Connection(error)
        }
    }
}

fn protocol(source: OciDistributionError, context: &RequestContext<'_>) -> RegistryError {
    RegistryError::Protocol {
        host: context.host.to_string(),
        reference: context.reference.to_string(),
        object: context.object.to_string(),
        source: Box::new(source),
    }
}

/// Whether a rustls error sits anywhere in the chain. tokio-rustls wraps it in an
/// `io::Error`, whose `source()` skips the wrapped error, so look inside those by hand.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| is_tls_failure(inner))
        {
            return true;
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RequestContext<'static> {
        RequestContext {
            host: "registry.example.com",
            reference: "registry.example.com/app:1",
            object: "manifest 1",
            had_credentials: true,
        }
    }

    fn server_error(code: u16) -> OciDistributionError {
        OciDistributionError::ServerError {
            code,
            url: "https://registry.example.com/v2/app/manifests/1".into(),
            message: String::new(),
        }
    }

    #[test]
    fn status_codes_are_classified() {
        let ctx = context();
        assert!(matches!(
            Failure::from_oci(server_error(503), &ctx),
            Failure::Status(503)
        ));
        assert!(matches!(
            Failure::from_oci(server_error(429), &ctx),
            Failure::Status(429)
        ));
        assert!(matches!(
            Failure::from_oci(server_error(403), &ctx),
            Failure::Final(RegistryError::AuthRefused { .. })
        ));
        assert!(matches!(
            Failure::from_oci(server_error(404), &ctx),
            Failure::Final(RegistryError::NotFound { .. })
        ));
        assert!(!Failure::from_oci(server_error(400), &ctx).is_transient());
    }

    #[test]
    fn digest_failure_inside_io_error_is_a_mismatch() {
        let inner = oci_client::errors::DigestError::VerificationError {
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
        };
        let failure = Failure::from_io(std::io::Error::other(inner), &context());
        match failure {
            Failure::Final(RegistryError::DigestMismatch {
                expected, actual, ..
            }) => {
                assert_eq!(expected, "sha256:aa");
                assert_eq!(actual, "sha256:bb");
            }
            _ => panic!("expected a digest mismatch"),
        }
    }

    #[test]
    fn tls_error_inside_io_error_is_detected() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(is_tls_failure(&tls));
        assert!(!is_tls_failure(&std::io::Error::other("connection reset")));
    }

    #[test]
    fn auth_refused_names_host_and_hint() {
        let error = Failure::from_oci(
            OciDistributionError::AuthenticationFailure("token: hunter2".into()),
            &context(),
        )
        .into_error(&context(), 1);
        let text = error.to_string();
        assert!(text.contains("registry.example.com"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(error.kind(), ErrorKind::Remote);
    }
}
