//! The parts of an image config (OCI or Docker: the same JSON) that we act on: the
//! platform it was built for, what a container of it runs, and as whom.

use serde::Deserialize;

use super::Platform;

/// Largest config accepted, fetched or parsed. Real configs are a few KiB (the history
/// list dominates); the cap keeps a hostile config from turning into a huge environment
/// or argv.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// The search path a container gets when its config sets no `PATH` (the default of
/// containerd, Docker and CRI-O).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("image config is {size} bytes, more than the {limit} accepted")]
    TooLarge { size: usize, limit: usize },
    #[error("image config is not a valid config document")]
    Json(#[source] serde_json::Error),
    /// `os` or `architecture` is absent or empty.
    #[error("image config has no `{field}`")]
    MissingField { field: &'static str },
}

/// What an image runs, on which platform, as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    pub platform: Platform,
    /// `config.Entrypoint`; empty when null.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`; empty when null.
    pub cmd: Vec<String>,
    /// `config.Env`, `KEY=VALUE` entries in order.
    pub env: Vec<String>,
    /// `config.User` as written; `None` when absent.
    pub user: Option<String>,
    /// `config.WorkingDir`; `/` when absent or empty, as runtimes do.
    pub working_dir: String,
}

/// The document as written; every field optional so that the errors can name the one
/// missing.
#[derive(Deserialize)]
struct RawConfig {
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
    config: Option<RawRuntimeConfig>,
}

#[derive(Deserialize)]
struct RawRuntimeConfig {
    #[serde(rename = "Entrypoint")]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd")]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env")]
    env: Option<Vec<String>>,
    #[serde(rename = "User")]
    user: Option<String>,
    #[serde(rename = "WorkingDir")]
    working_dir: Option<String>,
}

impl ImageConfig {
    /// Parses an image config blob.
    pub fn parse(json: &[u8]) -> Result<ImageConfig, ConfigError> {
        if json.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                size: json.len(),
                limit: MAX_CONFIG_BYTES,
            });
        }
        let raw: RawConfig = serde_json::from_slice(json).map_err(ConfigError::Json)?;
        let required = |value: Option<String>, field| {
            value
                .filter(|text| !text.is_empty())
                .ok_or(ConfigError::MissingField { field })
        };
        let os = required(raw.os, "os")?;
        let architecture = required(raw.architecture, "architecture")?;
        let runtime = raw.config.unwrap_or(RawRuntimeConfig {
            entrypoint: None,
            cmd: None,
            env: None,
            user: None,
            working_dir: None,
        });
        Ok(ImageConfig {
            platform: Platform::new(&os, &architecture, raw.variant.as_deref()),
            entrypoint: runtime.entrypoint.unwrap_or_default(),
            cmd: runtime.cmd.unwrap_or_default(),
            env: runtime.env.unwrap_or_default(),
            user: runtime.user,
            working_dir: runtime
                .working_dir
                .filter(|directory| !directory.is_empty())
                .unwrap_or_else(|| "/".to_string()),
        })
    }

    /// The directories `PATH` lists, in order, or those of [`DEFAULT_PATH`] when the
    /// config sets none. The last `PATH=` entry wins, as in the runtimes. Empty entries
    /// (meaning the working directory) and relative ones are resolved against
    /// [`ImageConfig::working_dir`].
    pub fn path_dirs(&self) -> Vec<String> {
        let path = self
            .env
            .iter()
            .rev()
            .find_map(|entry| entry.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .map(|directory| {
                if directory.starts_with('/') {
                    directory.to_string()
                } else {
                    join_relative(&self.working_dir, directory)
                }
            })
            .collect()
    }

    /// The program and arguments the container starts with: `Entrypoint` followed by `Cmd`
    /// (Velero's pod spec overrides neither for plugin init containers).
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// Whether the container runs as root: no user, an empty one, `root`, or uid 0,
    /// with or without a group.
    pub fn runs_as_root(&self) -> bool {
        runs_as_root(self.user.as_deref())
    }
}

/// Whether an image `User` (`uid`, `name`, `uid:gid`…) means root.
pub fn runs_as_root(user: Option<&str>) -> bool {
    let name = user.unwrap_or("").split(':').next().unwrap_or("");
    matches!(name, "" | "root" | "0")
}

/// Whether an image `User` names a numeric uid other than 0: the only case the kubelet
/// can check `runAsNonRoot` against (a user name makes it refuse to start the pod).
pub fn numeric_non_root(user: Option<&str>) -> bool {
    let uid = user.unwrap_or("").split(':').next().unwrap_or("");
    uid.parse::<u32>().is_ok_and(|uid| uid != 0)
}

/// `base/relative` for a relative path, `base` itself for an empty one.
fn join_relative(base: &str, relative: &str) -> String {
    if relative.is_empty() || relative == "." {
        return base.to_string();
    }
    format!("{}/{}", base.trim_end_matches('/'), relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS_CONFIG: &str = r#"{
        "architecture": "amd64", "os": "linux",
        "config": {
            "User": "65532:65532",
            "Env": ["PATH=/usr/local/bin:/usr/bin"],
            "Entrypoint": ["cp-plugin", "/plugins/velero-plugin-for-aws", "/target/velero-plugin-for-aws"],
            "Cmd": null,
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": []}
    }"#;

    #[test]
    fn parses_the_aws_plugin_config() {
        let config = ImageConfig::parse(AWS_CONFIG.as_bytes()).unwrap();
        assert_eq!(config.platform.to_string(), "linux/amd64");
        assert_eq!(
            config.argv(),
            [
                "cp-plugin",
                "/plugins/velero-plugin-for-aws",
                "/target/velero-plugin-for-aws"
            ]
        );
        assert_eq!(config.path_dirs(), ["/usr/local/bin", "/usr/bin"]);
        assert_eq!(config.user.as_deref(), Some("65532:65532"));
        assert!(!config.runs_as_root());
    }

    #[test]
    fn argv_is_entrypoint_then_cmd_and_path_defaults() {
        let json = r#"{"architecture":"arm64","os":"linux","variant":"v8",
            "config":{"Entrypoint":["/bin/sh","-c"],"Cmd":["cp /plugins/* /target/"],"WorkingDir":""}}"#;
        let config = ImageConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(config.argv(), ["/bin/sh", "-c", "cp /plugins/* /target/"]);
        assert_eq!(config.path_dirs().len(), 6);
        assert_eq!(config.path_dirs()[0], "/usr/local/sbin");
        assert_eq!(config.working_dir, "/");
        assert_eq!(config.platform.to_string(), "linux/arm64/v8");
        assert!(config.runs_as_root());
    }

    #[test]
    fn last_path_wins_and_relative_entries_use_the_working_directory() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{
            "Env":["PATH=/nowhere","HOME=/root","PATH=/bin::tools"],"WorkingDir":"/work"}}"#;
        let config = ImageConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(config.path_dirs(), ["/bin", "/work", "/work/tools"]);
    }

    #[test]
    fn users() {
        for (user, root, numeric_non_root_user) in [
            (None, true, false),
            (Some(""), true, false),
            (Some("root"), true, false),
            (Some("0"), true, false),
            (Some("0:0"), true, false),
            (Some("root:wheel"), true, false),
            (Some("65532:65532"), false, true),
            (Some("65532"), false, true),
            (Some("nonroot"), false, false),
            (Some("1000:0"), false, true),
        ] {
            assert_eq!(runs_as_root(user), root, "{user:?}");
            assert_eq!(numeric_non_root(user), numeric_non_root_user, "{user:?}");
        }
    }

    #[test]
    fn rejects_bad_documents() {
        assert!(matches!(
            ImageConfig::parse(b"{"),
            Err(ConfigError::Json(_))
        ));
        assert!(matches!(
            ImageConfig::parse(br#"{"os":"linux"}"#),
            Err(ConfigError::MissingField {
                field: "architecture"
            })
        ));
        assert!(matches!(
            ImageConfig::parse(
                br#"{"os":"linux","architecture":"amd64","config":{"Entrypoint":"cp"}}"#
            ),
            Err(ConfigError::Json(_))
        ));
        let huge = vec![b' '; MAX_CONFIG_BYTES + 1];
        assert!(matches!(
            ImageConfig::parse(&huge),
            Err(ConfigError::TooLarge { .. })
        ));
    }
}
