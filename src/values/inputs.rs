//! What values are rendered from besides the config and the release: the settings of the
//! run and the facts of the images. `bundle.json` records them verbatim as `renderInputs`
//! (proxy credentials redacted), so `values.yaml` can be re-derived from the bundle alone.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DEFAULT_LOCAL_REGISTRY;

/// The version of the rendering steps. Bump it whenever the same inputs would render
/// other bytes, so a reader knows whether it can re-derive a bundle's values.
pub const RENDER_SCHEME: u32 = 1;

/// Everything besides the config and the release that the values depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderInputs {
    /// [`RENDER_SCHEME`] of the tool that rendered; absent in bundles older than the
    /// record, whose values cannot be re-derived.
    #[serde(default)]
    pub scheme: Option<u32>,
    /// The registry address pods pull from.
    #[serde(default = "default_local_registry")]
    pub local_registry: String,
    /// Proxy environment for Velero and the node agent.
    #[serde(default)]
    pub proxy: ProxySettings,
    /// Path of the host's CA bundle, mounted into the pods.
    #[serde(default)]
    pub host_ca_bundle: Option<String>,
    /// Whether plugin init containers get the restricted `securityContext` and small
    /// `resources` (absent: bundles made before the step existed, which had neither).
    #[serde(default)]
    pub plugin_hardening: bool,
    /// The `User` of each plugin init container's image (by container name), when the
    /// image says it and all its platforms agree: `runAsNonRoot` depends on it.
    #[serde(default)]
    pub plugin_users: BTreeMap<String, String>,
    /// The plugins (by config name) whose unrecognised entrypoint `--allow-unrecognised-plugin`
    /// turned into a warning. They do not change the values; they are recorded so that an
    /// offline re-check of the plugin images (`verify --plugins`) judges the same way.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub allow_unrecognised_plugins: BTreeSet<String>,
}

fn default_local_registry() -> String {
    DEFAULT_LOCAL_REGISTRY.to_string()
}

impl Default for RenderInputs {
    fn default() -> RenderInputs {
        RenderInputs {
            scheme: Some(RENDER_SCHEME),
            local_registry: default_local_registry(),
            proxy: ProxySettings::default(),
            host_ca_bundle: None,
            plugin_hardening: true,
            plugin_users: BTreeMap::new(),
            allow_unrecognised_plugins: BTreeSet::new(),
        }
    }
}

/// Proxy settings the installer gets at install time. Serialised with the credentials
/// of the URLs redacted; bundles made before they were recorded hold `true`/`false`,
/// which reads as unknown. `Debug` hides the credentials too.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxySettings {
    /// `HTTP_PROXY`.
    #[serde(
        default,
        serialize_with = "serialize_redacted",
        deserialize_with = "deserialize_url_or_flag"
    )]
    pub http_proxy: Option<String>,
    /// `HTTPS_PROXY`.
    #[serde(
        default,
        serialize_with = "serialize_redacted",
        deserialize_with = "deserialize_url_or_flag"
    )]
    pub https_proxy: Option<String>,
    /// `NO_PROXY`.
    #[serde(default, deserialize_with = "deserialize_url_or_flag")]
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = self.redacted();
        f.debug_struct("ProxySettings")
            .field("http_proxy", &redacted.http_proxy)
            .field("https_proxy", &redacted.https_proxy)
            .field("no_proxy", &redacted.no_proxy)
            .finish()
    }
}

impl ProxySettings {
    /// Whether a proxy URL carries a user name or password (`http://user:pass@host`).
    pub fn has_credentials(&self) -> bool {
        self.credential_flag().is_some()
    }

    /// The flag (`--http-proxy` or `--https-proxy`) whose URL carries a user name or
    /// password, if any: a literal secret once written into values.
    pub fn credential_flag(&self) -> Option<&'static str> {
        [
            ("--http-proxy", &self.http_proxy),
            ("--https-proxy", &self.https_proxy),
        ]
        .into_iter()
        .find(|(_, url)| url.as_deref().and_then(userinfo_span).is_some())
        .map(|(flag, _)| flag)
    }

    /// Refuses credentials in a proxy URL unless `allow_secrets`.
    pub fn check_secrets(&self, allow_secrets: bool) -> Result<(), ProxyCredentialsError> {
        match self.credential_flag() {
            Some(flag) if !allow_secrets => Err(ProxyCredentialsError { flag }),
            _ => Ok(()),
        }
    }

    /// The settings with user information replaced by `***`, for output.
    pub fn redacted(&self) -> ProxySettings {
        let hide = |url: &Option<String>| url.as_deref().map(redact_url);
        ProxySettings {
            http_proxy: hide(&self.http_proxy),
            https_proxy: hide(&self.https_proxy),
            no_proxy: self.no_proxy.clone(),
        }
    }
}

/// A proxy URL of the install-time flags carries credentials, and writing them into values
/// that travel (`build`, `render`) was not allowed with `--allow-secrets`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{flag} carries proxy credentials (user:password@), which would be copied into the values and every bundle made from them; give them to `unpack {flag}` on the node instead, or pass --allow-secrets"
)]
pub struct ProxyCredentialsError {
    /// `--http-proxy` or `--https-proxy`.
    pub flag: &'static str,
}

/// Where `url`'s `user[:password]@` part is, if it has one.
fn userinfo_span(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://").map_or(0, |at| at + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |end| start + end);
    let at = url[start..authority_end].rfind('@')?;
    Some(start..start + at)
}

/// `url` with its user information (user name and password: either can be a token)
/// replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match userinfo_span(url) {
        Some(span) => format!("{}***{}", &url[..span.start], &url[span.end..]),
        None => url.to_string(),
    }
}

/// Whether `recorded` is what [`redact_url`] makes of `actual`.
pub fn redacted_matches(recorded: &str, actual: &str) -> bool {
    redact_url(actual) == recorded
}

fn serialize_redacted<S: Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    url.as_deref().map(redact_url).serialize(serializer)
}

fn deserialize_url_or_flag<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Recorded {
        Url(String),
        /// `true`/`false` in bundles made before the URLs were recorded.
        Unknown(serde::de::IgnoredAny),
    }
    Ok(match Option::<Recorded>::deserialize(deserializer)? {
        Some(Recorded::Url(url)) => Some(url),
        Some(Recorded::Unknown(_)) | None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_the_record_only() {
        let inputs = RenderInputs {
            proxy: ProxySettings {
                http_proxy: Some("http://user:s3cret@proxy.example:3128".into()),
                https_proxy: Some("http://TOKEN@proxy.example:3128/path@x".into()),
                no_proxy: Some("localhost,.svc".into()),
            },
            ..RenderInputs::default()
        };
        assert!(inputs.proxy.has_credentials());
        let json = serde_json::to_string(&inputs).unwrap();
        assert!(
            !json.contains("s3cret") && !json.contains("TOKEN"),
            "{json}"
        );
        let read: RenderInputs = serde_json::from_str(&json).unwrap();
        assert_eq!(
            read.proxy.http_proxy.as_deref(),
            Some("http://***@proxy.example:3128")
        );
        assert_eq!(
            read.proxy.https_proxy.as_deref(),
            Some("http://***@proxy.example:3128/path@x")
        );
        assert!(redacted_matches(
            "http://***@proxy.example:3128",
            "http://user:s3cret@proxy.example:3128"
        ));
        assert_eq!(read.proxy.no_proxy, inputs.proxy.no_proxy);
        assert_eq!(redact_url("http://proxy:3128"), "http://proxy:3128");
    }

    #[test]
    fn allowed_plugins_are_recorded_only_when_there_are_some() {
        let none = serde_json::to_string(&RenderInputs::default()).unwrap();
        assert!(!none.contains("allowUnrecognisedPlugins"), "{none}");
        let inputs = RenderInputs {
            allow_unrecognised_plugins: ["b".to_string(), "a".to_string()].into(),
            ..RenderInputs::default()
        };
        let json = serde_json::to_string(&inputs).unwrap();
        assert!(
            json.contains(r#""allowUnrecognisedPlugins":["a","b"]"#),
            "{json}"
        );
        let read: RenderInputs = serde_json::from_str(&json).unwrap();
        assert_eq!(read, inputs);
    }

    #[test]
    fn old_records_read_with_defaults() {
        let old = r#"{"mode":"airgap","localRegistry":"10.244.128.11:5000","httpProxy":true,
            "proxy":{"httpProxy":true,"noProxy":false},"configSha256":"ab"}"#;
        let read: RenderInputs = serde_json::from_str(old).unwrap();
        assert_eq!(read.scheme, None);
        assert!(!read.plugin_hardening);
        assert_eq!(read.proxy, ProxySettings::default());
        assert_eq!(read.local_registry, DEFAULT_LOCAL_REGISTRY);
    }
}
