//! The per-image report: what a plugin image runs, what each binary it installs is, and
//! the findings. It is stored in `bundle.json` (`images[].plugin`, keyed by platform
//! manifest digest) and compared byte for byte when `verify --plugins` derives it again,
//! so fields serialise in declaration order and absent values are left out.

use serde::{Deserialize, Serialize};

/// Stable finding codes, for callers and tests that match on them.
pub mod codes {
    /// The entrypoint does not copy into `/target`.
    pub const NOT_A_PLUGIN: &str = "not-a-plugin";
    /// The shell that runs the copy is not in the image.
    pub const MISSING_SHELL: &str = "missing-shell";
    /// The copy program is not in the image.
    pub const MISSING_COPY_PROGRAM: &str = "missing-copy-program";
    /// The copy program or shell needs libraries the image lacks.
    pub const MISSING_LIBRARY: &str = "missing-library";
    /// A source binary does not exist once the layers are applied.
    pub const MISSING_BINARY: &str = "missing-binary";
    /// A directory is named as a source of a non-recursive copy, which makes `cp` fail.
    pub const DIRECTORY_NOT_COPIED: &str = "directory-not-copied";
    /// A symbolic link would be copied as a link and dangle in Velero's container.
    pub const COPIES_SYMLINK: &str = "copies-symlink";
    /// A source is not a regular file with an execute bit.
    pub const NOT_EXECUTABLE: &str = "not-executable";
    /// A source is not an ELF file.
    pub const NOT_ELF: &str = "not-elf";
    /// A binary is built for another architecture than the image's.
    pub const WRONG_ARCHITECTURE: &str = "wrong-architecture";
    /// A binary is dynamically linked.
    pub const DYNAMIC_BINARY: &str = "dynamic-binary";
    /// A binary's program headers could not be read.
    pub const UNKNOWN_LINKAGE: &str = "unknown-linkage";
    /// A binary carries no Go build information.
    pub const NO_BUILD_INFO: &str = "no-build-info";
    /// A Go binary does not depend on Velero's module.
    pub const NO_VELERO_DEPENDENCY: &str = "no-velero-dependency";
    /// The image runs as root.
    pub const RUNS_AS_ROOT: &str = "runs-as-root";
    /// The CSI plugin with a Velero that has CSI built in.
    pub const BUILT_IN_CONFLICT: &str = "built-in-conflict";
    /// The AWS plugin configured a second time as a vendor plugin.
    pub const DUPLICATE_AWS_PLUGIN: &str = "duplicate-aws-plugin";
    /// Two plugins install the same file into `/target`.
    pub const BINARY_NAME_COLLISION: &str = "binary-name-collision";
    /// Two plugins are built from the same main module.
    pub const DUPLICATE_MODULE: &str = "duplicate-module";
    /// A plugin was built against a newer Velero minor version than the server's.
    pub const NEWER_PLUGIN_API: &str = "newer-plugin-api";
}

/// What inspecting one platform manifest of a plugin image found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginReport {
    /// `os/architecture[/variant]` from the image config.
    pub platform: String,
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`, run after the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// `config.User` as written; absent when the image sets none (it then runs as root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every file the copy installs, in copy order.
    pub binaries: Vec<BinaryReport>,
    /// What is wrong or worth knowing, in check order.
    pub findings: Vec<Finding>,
}

impl PluginReport {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|finding| finding.severity == Severity::Error)
    }
}

/// One file a plugin image installs into `/target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinaryReport {
    /// The source path in the image, as the copy names it (links not resolved).
    pub path: String,
    /// Its path below `/target` (and so below Velero's `/plugins`).
    pub target: String,
    /// ELF architecture (`amd64`, `arm64`, ...), or `machine-N` for an unknown machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Whether statically linked; absent when not an ELF file or not readable.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub is_static: Option<bool>,
    /// The dynamic loader it asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// The shared libraries it needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needed: Vec<String>,
    /// Go toolchain version, e.g. `go1.22.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_module: Option<String>,
    /// The Velero version it was built against, as Go records it (e.g. `v1.16.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub velero_version: Option<String>,
}

impl BinaryReport {
    /// The last component of [`BinaryReport::target`]: the plugin's file name.
    pub fn file_name(&self) -> &str {
        self.target.rsplit('/').next().unwrap_or(&self.target)
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The image would break Velero.
    Error,
    /// Likely a problem, or against good practice.
    Warning,
    /// Worth knowing.
    Note,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One finding about an image or a set of images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable kebab-case identifier, one of [`codes`].
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl Finding {
    pub fn error(code: &str, message: impl Into<String>) -> Finding {
        Finding::new(Severity::Error, code, message)
    }

    pub fn warning(code: &str, message: impl Into<String>) -> Finding {
        Finding::new(Severity::Warning, code, message)
    }

    pub fn note(code: &str, message: impl Into<String>) -> Finding {
        Finding::new(Severity::Note, code, message)
    }

    fn new(severity: Severity, code: &str, message: impl Into<String>) -> Finding {
        Finding {
            severity,
            code: code.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_camel_case_and_declaration_order_leaving_out_absent_values() {
        let report = PluginReport {
            platform: "linux/amd64".into(),
            entrypoint: vec!["cp-plugin".into()],
            cmd: vec![],
            user: Some("65532:65532".into()),
            binaries: vec![BinaryReport {
                path: "/plugins/p".into(),
                target: "p".into(),
                architecture: Some("amd64".into()),
                is_static: Some(true),
                interpreter: None,
                needed: vec![],
                go_version: Some("go1.22.4".into()),
                main_module: Some("example.com/p".into()),
                velero_version: Some("v1.16.1".into()),
            }],
            findings: vec![Finding::warning(codes::RUNS_AS_ROOT, "m")],
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(
            json,
            r#"{"platform":"linux/amd64","entrypoint":["cp-plugin"],"user":"65532:65532","binaries":[{"path":"/plugins/p","target":"p","architecture":"amd64","static":true,"goVersion":"go1.22.4","mainModule":"example.com/p","veleroVersion":"v1.16.1"}],"findings":[{"severity":"warning","code":"runs-as-root","message":"m"}]}"#
        );
        let back: PluginReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert!(!back.has_errors());
        assert_eq!(back.binaries[0].file_name(), "p");
    }
}
