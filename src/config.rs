//! The Embedded Cluster config (`apiVersion: embeddedcluster.replicated.com/v1beta1`,
//! `kind: Config`): the fields this tool reads, with paths and line numbers for messages.
//!
//! Loading is lenient on purpose: `validate` reports every problem in one run, so only an
//! unreadable file or invalid YAML stops loading. A field of the wrong type becomes a
//! [`FieldProblem`] and reads as absent. Keys are read strictly: an unknown key where this
//! tool reads every key is an error, an unknown key in the sections Embedded Cluster grows
//! (`spec`, `spec.extensions`, `spec.unsupportedOverrides`) is a warning, both with a
//! suggestion when a known key is close (`plugin:` for `plugins:` would otherwise drop
//! every plugin silently).
//!
//! The config is read with the crate's bounded YAML parser ([`crate::yaml`]), capped at
//! [`MAX_CONFIG_BYTES`]: a real config is a few kilobytes.

mod read;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::files::{self, FileError, Origin};
use crate::yaml::{self, Limits, Mapping, Node, Value, YamlError};

/// The `apiVersion` an Embedded Cluster config must have.
pub const API_VERSION: &str = "embeddedcluster.replicated.com/v1beta1";
/// The `kind` an Embedded Cluster config must have.
pub const KIND: &str = "Config";
/// The path of the Velero plugin list.
pub const PLUGINS_PATH: &str = "spec.extensions.velero.plugins";
/// The path of the built-in extension overrides.
pub const OVERRIDES_PATH: &str = "spec.unsupportedOverrides.builtInExtensions";
/// The chart name whose overrides apply to Velero.
pub const VELERO_CHART: &str = "velero";

/// The largest config read: a real Embedded Cluster config is a few kilobytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a config could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, permissions, not UTF-8, too large).
    #[error(transparent)]
    Read(#[from] FileError),
    /// The text is not valid YAML, holds more than one document, or exceeds the parser's
    /// bounds.
    #[error("{}: invalid YAML: {}", position(&.0.source_name, .0.position), .0.problem)]
    Yaml(YamlError),
}

impl ConfigError {
    /// A config that is missing or not YAML is bad input; one that opened and could not
    /// be read is a local failure.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            ConfigError::Read(error) => error.kind(),
            ConfigError::Yaml(_) => crate::ErrorKind::Input,
        }
    }

    /// The line of a YAML error, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Yaml(error) => error.position.map(|p| p.line),
            ConfigError::Read(_) => None,
        }
    }
}

fn position(source_name: &str, position: Option<yaml::Position>) -> String {
    match position {
        Some(at) => format!("{source_name}:{}:{}", at.line, at.column),
        None => source_name.to_owned(),
    }
}

/// A field that is present but unusable: wrong type, missing or wrong `apiVersion`/`kind`,
/// or a key this tool does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Where, e.g. `spec.extensions.velero.plugins[0].name`; `""` is the whole document.
    pub path: String,
    /// 1-based line of the field, or of its nearest ancestor when the field is missing.
    pub line: Option<usize>,
    /// What is wrong, phrased to follow the path: `must be a string, got a number`.
    pub message: String,
    /// Whether the config is unusable with it, or only probably wrong.
    pub level: ProblemLevel,
}

/// How bad a [`FieldProblem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemLevel {
    /// The field cannot be used (a wrong type, an unknown key where every key is read).
    Error,
    /// Probably a mistake, but Embedded Cluster may know the key (an unknown key in a
    /// section that grows with its releases).
    Warning,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.as_str() {
            "" => write!(f, "the document {}", self.message),
            path => write!(f, "{path} {}", self.message),
        }
    }
}

/// One entry of `spec.extensions.velero.plugins`, kept as written so `validate` can tell
/// missing from empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The entry's path, e.g. `spec.extensions.velero.plugins[1]`.
    pub path: String,
    /// `name`, the initContainer name.
    pub name: Option<String>,
    /// `image`, the image reference.
    pub image: Option<String>,
    /// `imagePullPolicy` as written; see [`Plugin::pull_policy`].
    pub image_pull_policy: Option<String>,
}

impl Plugin {
    /// The pull policy, [`PullPolicy::IfNotPresent`] when none is given.
    pub fn pull_policy(&self) -> Result<PullPolicy, UnknownPullPolicy> {
        self.image_pull_policy
            .as_deref()
            .map_or(Ok(PullPolicy::default()), str::parse)
    }
}

/// A Kubernetes image pull policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PullPolicy {
    /// Pull on every container start.
    Always,
    /// Pull only when the node lacks the image.
    #[default]
    IfNotPresent,
    /// Never pull.
    Never,
}

/// A pull policy other than `Always`, `IfNotPresent` or `Never` (case matters, as in
/// Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image pull policy {value:?} (expected Always, IfNotPresent or Never)")]
pub struct UnknownPullPolicy {
    pub value: String,
}

impl PullPolicy {
    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

impl FromStr for PullPolicy {
    type Err = UnknownPullPolicy;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        [Self::Always, Self::IfNotPresent, Self::Never]
            .into_iter()
            .find(|policy| policy.as_str() == value)
            .ok_or_else(|| UnknownPullPolicy {
                value: value.to_owned(),
            })
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `spec.domains`: replacements for Replicated's default hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Domains {
    /// `proxyRegistryDomain`, replaces `proxy.replicated.com` in image references.
    pub proxy_registry_domain: Option<String>,
    /// `replicatedAppDomain`.
    pub replicated_app_domain: Option<String>,
    /// `replicatedRegistryDomain`.
    pub replicated_registry_domain: Option<String>,
}

impl Domains {
    /// Each domain with its full path, for checks that treat them alike.
    pub fn entries(&self) -> [(&'static str, Option<&str>); 3] {
        [
            (
                "spec.domains.proxyRegistryDomain",
                self.proxy_registry_domain.as_deref(),
            ),
            (
                "spec.domains.replicatedAppDomain",
                self.replicated_app_domain.as_deref(),
            ),
            (
                "spec.domains.replicatedRegistryDomain",
                self.replicated_registry_domain.as_deref(),
            ),
        ]
    }
}

/// One entry of `spec.unsupportedOverrides.builtInExtensions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltInExtension {
    /// Position in the list.
    pub index: usize,
    /// The entry's path, e.g. `spec.unsupportedOverrides.builtInExtensions[0]`.
    pub path: String,
    /// `name`, the chart the override applies to.
    pub name: Option<String>,
    /// `values`, Helm values as a YAML document inside a string.
    pub values: Option<String>,
}

/// A `velero` override with its values parsed.
#[derive(Debug, Clone)]
pub struct VeleroOverride {
    /// Position in `builtInExtensions`.
    pub index: usize,
    /// Path of the values string, e.g. `spec.unsupportedOverrides.builtInExtensions[0].values`.
    pub values_path: String,
    /// The values; when `Ok`, always a [`Value::Mapping`] (empty when none are given).
    pub values: Result<Value, OverrideValuesError>,
    /// The parsed values with their positions, when they parsed.
    tree: Option<Node>,
    /// Source line of the values' line 1, when the string is a literal block scalar.
    start: Option<usize>,
}

impl VeleroOverride {
    /// The config-file line of `path` inside the values (e.g. `initContainers[0].image`),
    /// or of its nearest ancestor; known only for literal block scalars (`values: |`),
    /// whose lines are the file's.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        Some(self.start? + self.tree.as_ref()?.line_of(path) - 1)
    }
}

/// Why override values cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideValuesError {
    /// The string is not YAML.
    #[error("values are not valid YAML: {message}")]
    Yaml {
        /// The parser's message, without its position.
        message: String,
        /// Config-file line of the error, when the values are a literal block scalar.
        line: Option<usize>,
    },
    /// The YAML is a list or a scalar rather than a mapping.
    #[error("values must be a YAML mapping, got {found}")]
    NotMapping {
        /// What was found instead (`a list`, `a string`, …).
        found: &'static str,
    },
}

/// An Embedded Cluster config as read, with what this tool uses picked out.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    source_name: String,
    text: String,
    /// The document with positions; `None` for an empty file.
    tree: Option<Node>,
    problems: Vec<FieldProblem>,
    plugins: Vec<Plugin>,
    domains: Domains,
    built_in_extensions: Vec<BuiltInExtension>,
}

impl ClusterConfig {
    /// Reads and parses the config file at `path` (a regular file or a pipe), refusing
    /// more than [`MAX_CONFIG_BYTES`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = files::read_text_capped(path, MAX_CONFIG_BYTES, "config", Origin::Named)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses config text; `source_name` names it in messages. Fails only on invalid YAML;
    /// other problems are in [`ClusterConfig::problems`].
    pub fn parse(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let tree = yaml::parse(text, source_name, &Limits::default()).map_err(ConfigError::Yaml)?;
        let ((plugins, domains, built_in_extensions), problems) = read::read(tree.as_ref());
        Ok(Self {
            source_name: source_name.to_owned(),
            text: text.to_owned(),
            tree,
            problems,
            plugins,
            domains,
            built_in_extensions,
        })
    }

    /// The name given when loading (the file path for [`ClusterConfig::load`]).
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The text as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Fields that are present but unusable, in document order.
    pub fn problems(&self) -> &[FieldProblem] {
        &self.problems
    }

    /// `spec.extensions.velero.plugins`, in order; entries that are not mappings are left
    /// out (and reported as problems).
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// `spec.domains`.
    pub fn domains(&self) -> &Domains {
        &self.domains
    }

    /// `spec.unsupportedOverrides.builtInExtensions`, every chart, in order.
    pub fn built_in_extensions(&self) -> &[BuiltInExtension] {
        &self.built_in_extensions
    }

    /// The overrides for the `velero` chart, in order, with their values parsed.
    pub fn velero_overrides(&self) -> Vec<VeleroOverride> {
        self.built_in_extensions
            .iter()
            .filter(|extension| extension.name.as_deref() == Some(VELERO_CHART))
            .map(|extension| {
                let values_path = format!("{}.values", extension.path);
                let start = self
                    .tree
                    .as_ref()
                    .and_then(|tree| tree.literal_start(&values_path));
                let text = extension.values.as_deref().unwrap_or_default();
                let parsed = yaml::parse(text, &values_path, &Limits::default());
                let values = match &parsed {
                    Ok(None) => Ok(Value::Mapping(Mapping::new())),
                    Ok(Some(node)) => match node.to_value() {
                        Value::Null => Ok(Value::Mapping(Mapping::new())),
                        mapping @ Value::Mapping(_) => Ok(mapping),
                        _ => Err(OverrideValuesError::NotMapping {
                            found: node.type_name(),
                        }),
                    },
                    Err(error) => Err(OverrideValuesError::Yaml {
                        message: error.problem.to_string(),
                        line: start
                            .zip(error.position)
                            .map(|(start, at)| start + at.line - 1),
                    }),
                };
                VeleroOverride {
                    index: extension.index,
                    values_path,
                    tree: parsed.ok().flatten(),
                    start,
                    values,
                }
            })
            .collect()
    }

    /// The 1-based line of `path` (e.g. `spec.extensions.velero.plugins[1].image`), or of
    /// its nearest ancestor present in the file, so a missing field points at its parent.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.tree.as_ref().map(|tree| tree.line_of(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "apiVersion: embeddedcluster.replicated.com/v1beta1\nkind: Config\n";

    fn with_header(body: &str) -> ClusterConfig {
        ClusterConfig::parse(&format!("{HEADER}{body}"), "config.yaml")
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Problems as `line path message`, for compact assertions.
    fn problems(config: &ClusterConfig) -> Vec<String> {
        let line = |problem: &FieldProblem| problem.line.map_or("-".into(), |l| l.to_string());
        let problems = config.problems().iter();
        problems.map(|p| format!("{} {p}", line(p))).collect()
    }

    const FULL: &str = "\
spec:
  version: 2.0.0 # unknown fields are kept
  domains:
    proxyRegistryDomain: proxy.example.com
    replicatedAppDomain: app.example.com
  extensions:
    velero:
      plugins:
        - name: postgres
          image: ghcr.io/acme/velero-plugin-postgres:1.0.0
        - name: mongo
          image: ghcr.io/acme/velero-plugin-mongo:2.1.0
          imagePullPolicy: Always
  unsupportedOverrides:
    builtInExtensions:
      - name: openebs
        values: 'a: 1'
      - name: velero
        values: |
          initContainers: []
          configuration:
            features: EnableCSI
";

    #[test]
    fn reads_the_fields_it_uses() {
        let config = with_header(FULL);
        assert_eq!(problems(&config), Vec::<String>::new());
        let plugins = config.plugins();
        assert_eq!(plugins.len(), 2);
        assert_eq!(plugins[1].path, "spec.extensions.velero.plugins[1]");
        assert_eq!(plugins[1].name.as_deref(), Some("mongo"));
        assert_eq!(
            plugins[1].image.as_deref(),
            Some("ghcr.io/acme/velero-plugin-mongo:2.1.0")
        );
        assert_eq!(plugins[0].pull_policy(), Ok(PullPolicy::IfNotPresent));
        assert_eq!(plugins[1].pull_policy(), Ok(PullPolicy::Always));
        assert_eq!(
            config.domains().entries(),
            [
                (
                    "spec.domains.proxyRegistryDomain",
                    Some("proxy.example.com")
                ),
                ("spec.domains.replicatedAppDomain", Some("app.example.com")),
                ("spec.domains.replicatedRegistryDomain", None),
            ]
        );
        let names: Vec<_> = config
            .built_in_extensions()
            .iter()
            .map(|e| e.name.as_deref())
            .collect();
        assert_eq!(names, [Some("openebs"), Some("velero")]);
        assert_eq!(config.source_name(), "config.yaml");
        assert!(config.text().starts_with(HEADER));
    }

    #[test]
    fn knows_lines_of_paths() {
        let config = with_header(FULL);
        assert_eq!(config.line_of("apiVersion"), Some(1));
        assert_eq!(config.line_of("spec.domains.proxyRegistryDomain"), Some(6));
        assert_eq!(
            config.line_of("spec.extensions.velero.plugins[1]"),
            Some(13)
        );
        assert_eq!(
            config.line_of("spec.extensions.velero.plugins[1].image"),
            Some(14)
        );
        assert_eq!(
            config.line_of("spec.extensions.velero.plugins[2]"),
            Some(10)
        );
    }

    #[test]
    fn missing_sections_are_empty() {
        let config = with_header("spec: {}\n");
        assert!(config.problems().is_empty());
        assert!(config.plugins().is_empty());
        assert_eq!(config.domains(), &Domains::default());
        assert!(config.velero_overrides().is_empty());
        assert!(ClusterConfig::parse(HEADER, "c").is_ok_and(|c| c.problems().is_empty()));
    }

    #[test]
    fn checks_api_version_and_kind() {
        let empty = ClusterConfig::parse("", "empty.yaml").expect("empty YAML parses");
        assert_eq!(
            problems(&empty),
            [
                "- apiVersion is missing (expected embeddedcluster.replicated.com/v1beta1)",
                "- kind is missing (expected Config)",
            ]
        );
        let wrong = ClusterConfig::parse("apiVersion: 1\nkind: Installation\n", "c").expect("YAML");
        assert_eq!(
            problems(&wrong),
            [
                "1 apiVersion must be a string, got a number",
                "2 kind is \"Installation\", expected \"Config\"",
            ]
        );
        let list = ClusterConfig::parse("- a\n", "c").expect("YAML");
        assert_eq!(
            problems(&list),
            ["1 the document must be a mapping, got a list"]
        );
    }

    #[test]
    fn reports_wrong_types_with_paths_and_lines() {
        let config = with_header(
            "\
spec:
  domains: proxy.example.com
  extensions:
    velero:
      plugins:
        - name: 123
          image: [a]
        - just-a-string
        - ~
        - name: ok
          imagePullPolicy: {}
",
        );
        assert_eq!(
            problems(&config),
            [
                "4 spec.domains must be a mapping, got a string",
                "8 spec.extensions.velero.plugins[0].name must be a string, got a number",
                "9 spec.extensions.velero.plugins[0].image must be a string, got a list",
                "10 spec.extensions.velero.plugins[1] must be a mapping, got a string",
                "11 spec.extensions.velero.plugins[2] must be a mapping, got null",
                "13 spec.extensions.velero.plugins[3].imagePullPolicy must be a string, got a mapping",
            ]
        );
        let paths: Vec<_> = config.plugins().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.extensions.velero.plugins[0]",
                "spec.extensions.velero.plugins[3]"
            ]
        );
        assert_eq!(config.plugins()[0].name, None);

        let config = with_header("spec:\n  extensions:\n    velero:\n      plugins: {name: x}\n");
        assert_eq!(
            problems(&config),
            ["6 spec.extensions.velero.plugins must be a list, got a mapping"]
        );
    }

    #[test]
    fn keeps_pull_policy_as_written() {
        let config = with_header(
            "spec:\n  extensions:\n    velero:\n      plugins:\n        - imagePullPolicy: always\n",
        );
        assert_eq!(
            config.plugins()[0].image_pull_policy.as_deref(),
            Some("always")
        );
        assert_eq!(
            config.plugins()[0].pull_policy().map_err(|e| e.to_string()),
            Err(
                "unknown image pull policy \"always\" (expected Always, IfNotPresent or Never)"
                    .into()
            )
        );
        for policy in [
            PullPolicy::Always,
            PullPolicy::IfNotPresent,
            PullPolicy::Never,
        ] {
            assert_eq!(policy.as_str().parse(), Ok(policy));
            assert_eq!(policy.to_string(), policy.as_str());
        }
        assert!("".parse::<PullPolicy>().is_err());
    }

    #[test]
    fn invalid_yaml_is_an_error_with_position() {
        let error = ClusterConfig::parse(&format!("{HEADER}spec:\n  a: 1\n  a: 2\n"), "c.yaml")
            .expect_err("duplicate key");
        assert_eq!(error.line(), Some(5));
        assert_eq!(
            error.to_string(),
            "c.yaml:5:3: invalid YAML: duplicate key \"a\""
        );
        let error = ClusterConfig::parse("a: [1\n", "c.yaml").expect_err("unclosed");
        assert_eq!(error.line(), Some(2), "{error}");
        let error = ClusterConfig::parse("a: 1\n---\nb: 2\n", "c.yaml").expect_err("two docs");
        assert!(
            error
                .to_string()
                .starts_with("c.yaml:2:1: invalid YAML: holds more than one"),
            "{error}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let missing = Path::new("/nonexistent/config.yaml");
        let error = ClusterConfig::load(missing).expect_err("missing file");
        assert_eq!(error.to_string(), "cannot read /nonexistent/config.yaml");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, format!("{HEADER}spec: [")).expect("write");
        let error = ClusterConfig::load(&path).expect_err("invalid YAML");
        assert!(
            error.to_string().starts_with(&path.display().to_string()),
            "{error}"
        );
        std::fs::write(&path, HEADER).expect("write");
        let config = ClusterConfig::load(&path).expect("valid config");
        assert_eq!(config.source_name(), path.display().to_string());
    }

    fn overrides_of(entries: &str) -> Vec<VeleroOverride> {
        with_header(&format!(
            "spec:\n  unsupportedOverrides:\n    builtInExtensions:\n{entries}"
        ))
        .velero_overrides()
    }

    #[test]
    fn velero_overrides_in_order_with_parsed_values() {
        let config = with_header(FULL);
        let overrides = config.velero_overrides();
        assert_eq!(overrides.len(), 1);
        let only = &overrides[0];
        assert_eq!(only.index, 1);
        assert_eq!(
            only.values_path,
            "spec.unsupportedOverrides.builtInExtensions[1].values"
        );
        let values = only.values.as_ref().expect("a mapping");
        assert_eq!(
            values["configuration"]["features"].as_str(),
            Some("EnableCSI")
        );
        assert_eq!(only.line_of("initContainers"), Some(22));
        assert_eq!(only.line_of("configuration.features"), Some(24));
        assert_eq!(only.line_of("nothing"), Some(22), "the values' first line");

        let overrides =
            overrides_of("      - name: velero\n      - name: velero\n        values: \"a: 1\"\n");
        assert_eq!(overrides.len(), 2);
        assert_eq!(overrides[0].values, Ok(Value::Mapping(Mapping::new())));
        assert!(overrides[1].values.is_ok());
        assert_eq!(
            overrides[1].line_of("a"),
            None,
            "quoted strings have no line map"
        );
    }

    #[test]
    fn bad_override_values() {
        let overrides = overrides_of(
            "      - name: velero
        values: '- a'
      - name: velero
        values: |
          a: 1
          a: 2
      - name: velero
        values: |

          a: b: c
",
        );
        assert_eq!(
            overrides[0].values,
            Err(OverrideValuesError::NotMapping { found: "a list" })
        );
        assert!(
            matches!(
                &overrides[1].values,
                Err(OverrideValuesError::Yaml { line: Some(11), .. })
            ),
            "{:?}",
            overrides[1].values
        );
        assert!(
            matches!(
                &overrides[2].values,
                Err(OverrideValuesError::Yaml { line: Some(15), .. })
            ),
            "{:?}",
            overrides[2].values
        );

        let config = with_header(
            "spec:\n  unsupportedOverrides:\n    builtInExtensions:\n      - values:\n          a: 1\n",
        );
        assert_eq!(
            problems(&config),
            [
                "6 spec.unsupportedOverrides.builtInExtensions[0].name is missing (the chart name, e.g. velero)",
                "6 spec.unsupportedOverrides.builtInExtensions[0].values must be a string, got a mapping",
            ]
        );
    }
}
