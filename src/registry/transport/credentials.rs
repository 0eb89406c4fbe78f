//! What we present to a registry host and its token server.

use base64::Engine as _;
use reqwest::header::HeaderValue;

/// What to present to one registry host (and its token server). `Debug` redacts secrets.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// Nothing: anonymous access (an anonymous token where the registry uses tokens).
    #[default]
    Anonymous,
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth refresh token (`identitytoken` in a Docker config), exchanged at the realm.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Whether there is anything to present.
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credentials::Anonymous)
    }

    /// The `Authorization: Basic` value, for Basic credentials.
    pub(crate) fn basic_header(&self) -> Option<HeaderValue> {
        let Credentials::Basic { username, password } = self else {
            return None;
        };
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        sensitive_header(&format!("Basic {encoded}"))
    }
}

/// A header value marked sensitive (hyper keeps it out of its debug output); `None` for a
/// value that is not a valid header (a token with a newline).
pub(crate) fn sensitive_header(value: &str) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(value).ok()?;
    header.set_sensitive(true);
    Some(header)
}
