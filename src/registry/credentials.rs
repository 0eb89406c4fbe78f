//! Registry credentials from the Docker config (`auths`, `credHelpers`, `credsStore`).
//!
//! The file is read once, when the [`Registry`](super::Registry) is built, so a broken
//! config fails before any pull; credentials are then looked up per host actually contacted
//! (the mirror, not the canonical registry). Secrets live only in [`Credentials`], whose
//! `Debug` redacts them; nothing here formats a credential into a message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::RegistryError;
use super::transport::Credentials;

/// What docker-credential-helpers print when they hold nothing for a server: not an error.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// The Docker config's content, if there is one.
#[derive(Clone)]
pub(crate) struct DockerConfig {
    path: Option<PathBuf>,
    contents: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DockerConfig {
    /// Reads `explicit` (a `config.json` or a directory holding one), else
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Only an explicit path must
    /// exist; without any config, every registry is accessed anonymously.
    pub fn load(explicit: Option<&Path>) -> Result<DockerConfig, RegistryError> {
        let (path, required) = match explicit {
            Some(path) if path.is_dir() => (Some(path.join("config.json")), true),
            Some(path) => (Some(path.to_path_buf()), true),
            None => (default_path(), false),
        };
        let Some(path) = path else {
            return Ok(DockerConfig {
                path: None,
                contents: None,
            });
        };
        let contents = match std::fs::read(&path) {
            Ok(contents) => contents,
            Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig {
                    path: None,
                    contents: None,
                });
            }
            Err(error) => {
                return Err(RegistryError::DockerConfig {
                    path,
                    reason: error.to_string(),
                });
            }
        };
        // serde_json's messages give a position, never the text around it.
        if let Err(error) = serde_json::from_slice::<serde_json::Value>(&contents) {
            return Err(RegistryError::DockerConfig {
                path,
                reason: format!("not valid JSON: {error}"),
            });
        }
        Ok(DockerConfig {
            path: Some(path),
            contents: Some(contents.into()),
        })
    }

    /// The credentials for `host`, running a credential helper if the config names one.
    /// Blocking: helpers are processes.
    pub fn lookup(&self, host: &str) -> Result<Credentials, RegistryError> {
        let Some(contents) = &self.contents else {
            return Ok(Credentials::Anonymous);
        };
        let failed = |reason: String| RegistryError::Credentials {
            host: host.to_string(),
            reason,
        };
        let config: FileConfig = serde_json::from_slice(contents)
            .map_err(|e| failed(format!("the Docker config is not usable: {e}")))?;
        let key = server_key(host);
        if let Some(helper) = config.cred_helpers.get(key).or(config.creds_store.as_ref()) {
            return run_helper(helper, key).map_err(failed);
        }
        let Some(entry) = config.auths.get(key) else {
            return Ok(Credentials::Anonymous);
        };
        if let Some(token) = &entry.identitytoken {
            return Ok(Credentials::IdentityToken(token.clone()));
        }
        if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            });
        }
        let Some(auth) = &entry.auth else {
            return Ok(Credentials::Anonymous);
        };
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                failed(format!(
                    "the auth entry for {key} is not base64 of user:password"
                ))
            })?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            failed(format!(
                "the auth entry for {key} is not base64 of user:password"
            ))
        })?;
        Ok(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

/// The parts of `config.json` we read.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FileConfig {
    auths: std::collections::HashMap<String, AuthEntry>,
    cred_helpers: std::collections::HashMap<String, String>,
    creds_store: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperResponse {
    username: String,
    secret: String,
}

/// Runs `docker-credential-<helper> get` with the server on stdin. A helper that
/// exits without reading stdin is fine: only its exit status and output count.
fn run_helper(helper: &str, server: &str) -> Result<Credentials, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let name = format!("docker-credential-{helper}");
    let mut child = Command::new(&name)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {name} (is it installed?): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A broken pipe means the helper did not want the input; its answer follows.
        let _ = stdin.write_all(server.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{name} did not finish: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        if stdout.trim() == HELPER_NOT_FOUND {
            return Ok(Credentials::Anonymous);
        }
        // The helper's own output may echo secrets: name the helper only.
        return Err(format!("{name} failed"));
    }
    let response: HelperResponse = serde_json::from_slice(&output.stdout)
        .map_err(|_| format!("{name} answered something that is not credentials"))?;
    // Helpers hand out an identity token under the user name `<token>`.
    if response.username == "<token>" {
        return Ok(Credentials::IdentityToken(response.secret));
    }
    Ok(Credentials::Basic {
        username: response.username,
        password: response.secret,
    })
}

fn default_path() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))?;
    Some(dir.join("config.json"))
}

/// The key the Docker CLI files a registry under: Docker Hub keeps its historical URL.
fn server_key(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        let config = DockerConfig::load(Some(dir.path())).unwrap();
        (dir, config)
    }

    #[test]
    fn base64_auth_and_plain_fields_are_read() {
        // "alice:s3cret"
        let (_dir, config) = config(
            r#"{"auths":{"r.local:5000":{"auth":"YWxpY2U6czNjcmV0"},
                         "https://index.docker.io/v1/":{"username":"bob","password":"pw"}}}"#,
        );
        assert_eq!(
            config.lookup("r.local:5000").unwrap(),
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert_eq!(
            config.lookup("index.docker.io").unwrap(),
            Credentials::Basic {
                username: "bob".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            config.lookup("other.local").unwrap(),
            Credentials::Anonymous
        );
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let (_dir, config) =
            config(r#"{"credHelpers":{"r.local":"velero-airgap-no-such-helper"}}"#);
        let error = config.lookup("r.local").unwrap_err();
        assert!(error.to_string().contains("r.local"), "{error}");
    }

    #[test]
    fn explicit_config_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DockerConfig::load(Some(&dir.path().join("absent.json"))).is_err());
        let file = dir.path().join("bad.json");
        std::fs::write(&file, r#"{"auths": {"x": {"auth": "c2VjcmV0"}"#).unwrap();
        let error = DockerConfig::load(Some(&file)).unwrap_err().to_string();
        assert!(!error.contains("c2VjcmV0"), "{error}");
    }

    #[test]
    fn debug_shows_no_content() {
        let (_dir, config) = config(r#"{"auths":{"r":{"auth":"YWxpY2U6czNjcmV0"}}}"#);
        assert!(!format!("{config:?}").contains("YWxp"));
    }
}
