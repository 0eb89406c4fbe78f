//! What a registry's answer means beyond its body: the error for its status, the auth
//! challenge it makes.

use reqwest::Response;
use reqwest::header::WWW_AUTHENTICATE;

use super::body::read_error_body;
use super::challenge::{RegistryChallenge, registry_challenge};
use super::error::{TransportError, cut_suffix};

/// The registry's challenge in a 401's `WWW-Authenticate` headers.
pub(crate) fn challenge_of(
    response: &Response,
    host: &str,
    what: &str,
) -> Result<Option<RegistryChallenge>, TransportError> {
    let values = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    registry_challenge(values).map_err(|reason| TransportError::Protocol {
        host: host.to_string(),
        what: what.to_string(),
        reason: format!("malformed WWW-Authenticate: {reason}"),
    })
}

/// The error for an unexpected status, with the distribution error code if the body has
/// one (read within the error-body limit, which the error mentions when the body went past
/// it).
pub(crate) async fn status_error(
    response: Response,
    host: &str,
    what: &str,
    had_credentials: bool,
) -> TransportError {
    let status = response.status().as_u16();
    let body = read_error_body(response, host).await;
    let code = body.code;
    let (host, what) = (host.to_string(), what.to_string());
    match status {
        401 | 403 => TransportError::AuthRefused {
            host,
            what,
            had_credentials,
        },
        404 => TransportError::NotFound { host, what, code },
        429 | 500..=599 => TransportError::Server {
            host,
            what,
            status,
            code,
            body_cut_at: body.cut_at,
        },
        _ => TransportError::Protocol {
            host,
            what,
            reason: match (code, body.cut_at) {
                (Some(code), _) => format!("HTTP {status} ({code})"),
                (None, Some(limit)) => format!("HTTP {status}{}", cut_suffix(limit)),
                (None, None) => format!("HTTP {status}"),
            },
        },
    }
}
