//! `validate`: every problem of a cluster config in one run.
//!
//! Each finding names its path (`spec.extensions.velero.plugins[1].image`) and a
//! line when the parser knows one. Errors make the config unusable; warnings are
//! things that work today and hurt later (unpinned images, dropped plugins,
//! secrets copied into every bundle).

use crate::config::{ClusterConfig, ConfigError, Plugin, ProblemLevel, VeleroOverride};
use crate::reference::{self, Reference};
use crate::release::{self, Release};
use crate::values::{self, ImageUse, Recipe, RenderInputs, Role};
use crate::yaml::Value;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

mod overrides;

pub use overrides::{ValuesFinding, literal_secrets, override_findings, privilege};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config cannot be used as it is.
    Error,
    /// Works, but probably not as intended.
    Warning,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Path in the config, e.g. `spec.extensions.velero.plugins[1].image`.
    pub path: String,
    /// 1-based line in the config file, when known.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        // A finding about the whole file has no path; its message names the position
        // only through `line`.
        match (self.path.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{severity}: {} (line {line}): ", self.path)?,
            (false, None) => write!(f, "{severity}: {}: ", self.path)?,
            (true, Some(line)) => write!(f, "{severity}: line {line}: ")?,
            (true, None) => write!(f, "{severity}: ")?,
        }
        f.write_str(&self.message)
    }
}

/// The Velero plugin kinds a `velero.io/<plugin-name>` label may name.
pub const PLUGIN_KINDS: &[&str] = &[
    "BackupItemAction",
    "BackupItemActionV2",
    "RestoreItemAction",
    "RestoreItemActionV2",
    "VolumeSnapshotter",
    "ObjectStore",
    "DeleteItemAction",
    "ItemBlockAction",
];

/// What validation needs besides the config.
#[derive(Debug, Clone)]
pub struct Options {
    /// The release the values are rendered for.
    pub release: Release,
    /// The cluster's local registry, for the airgap collision check.
    pub local_registry: String,
}

/// Loads and validates a config file. An unreadable file or invalid YAML is a
/// single error finding, so `--json` callers always get findings.
pub fn validate_file(path: &std::path::Path, options: &Options) -> Vec<Finding> {
    match ClusterConfig::load(path) {
        Ok(config) => validate(&config, options),
        // The position goes into `line`, so the message does not repeat it.
        Err(ConfigError::Yaml(err)) => vec![error(
            String::new(),
            err.position.map(|p| p.line),
            format!("invalid YAML: {}", err.problem),
        )],
        Err(err) => vec![error(String::new(), None, crate::chain(&err))],
    }
}

fn error(path: String, line: Option<usize>, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        path,
        line,
        message,
    }
}

fn warning(path: String, line: Option<usize>, message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        path,
        line,
        message,
    }
}

/// Every finding for a loaded config, errors first, each group in document order.
pub fn validate(config: &ClusterConfig, options: &Options) -> Vec<Finding> {
    let mut findings: Vec<Finding> = config
        .problems()
        .iter()
        .map(|p| match p.level {
            ProblemLevel::Error => error(p.path.clone(), p.line, p.message.clone()),
            ProblemLevel::Warning => warning(p.path.clone(), p.line, p.message.clone()),
        })
        .collect();
    check_plugins(config, &options.release, &mut findings);
    check_domains(config, &mut findings);
    let overrides = config.velero_overrides();
    check_overrides(&overrides, &mut findings);
    check_rendered(config, options, &mut findings);
    findings.sort_by_key(|f| f.severity);
    findings
}

/// Names of the initContainers the base values already have.
fn built_in_container_names(release: &Release) -> Vec<String> {
    let Ok(base) = values::base(release) else {
        return vec![];
    };
    base.get("initContainers")
        .and_then(Value::as_sequence)
        .map(|containers| {
            containers
                .iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn check_plugins(config: &ClusterConfig, release: &Release, findings: &mut Vec<Finding>) {
    let built_in = built_in_container_names(release);
    let mut names: HashMap<&str, &Plugin> = HashMap::new();
    let mut images: HashMap<String, &Plugin> = HashMap::new();
    for plugin in config.plugins() {
        let name_path = format!("{}.name", plugin.path);
        let line = config
            .line_of(&name_path)
            .or_else(|| config.line_of(&plugin.path));
        match plugin.name.as_deref().map(str::trim) {
            None | Some("") => findings.push(error(
                name_path,
                line,
                "plugin name is empty; give each plugin a container name such as velero-plugin-postgres".into(),
            )),
            Some(name) => {
                if let Some(first) = names.insert(name, plugin) {
                    findings.push(error(
                        name_path.clone(),
                        line,
                        format!("duplicate plugin name {name:?} (also {}.name); names must be unique", first.path),
                    ));
                }
                if !reference::is_dns1123_label(name) {
                    findings.push(error(
                        name_path.clone(),
                        line,
                        format!("{name:?} is not a valid container name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"),
                    ));
                }
                if built_in.iter().any(|b| b == name) {
                    findings.push(error(
                        name_path,
                        line,
                        format!("{name:?} is the name of a built-in initContainer; choose another name"),
                    ));
                }
            }
        }

        let image_path = format!("{}.image", plugin.path);
        let line = config
            .line_of(&image_path)
            .or_else(|| config.line_of(&plugin.path));
        match plugin.image.as_deref().map(str::trim) {
            None | Some("") => findings.push(error(
                image_path,
                line,
                "plugin image is empty; give a reference such as registry.example.com/acme/plugin:1.0@sha256:…".into(),
            )),
            Some(image) => match Reference::parse(image) {
                Err(err) => findings.push(error(image_path, line, err.to_string())),
                Ok(parsed) => {
                    if let Some(first) = images.insert(parsed.to_string(), plugin) {
                        findings.push(error(
                            image_path.clone(),
                            line,
                            format!("duplicate plugin image {image:?} (also {}.image)", first.path),
                        ));
                    }
                    image_warnings(&parsed, image, &image_path, line, findings);
                }
            },
        }

        if let Err(err) = plugin.pull_policy() {
            let path = format!("{}.imagePullPolicy", plugin.path);
            let line = config.line_of(&path);
            findings.push(error(path, line, err.to_string()));
        }
    }
}

fn image_warnings(
    parsed: &Reference,
    image: &str,
    path: &str,
    line: Option<usize>,
    findings: &mut Vec<Finding>,
) {
    for message in overrides::image_warnings(parsed, image) {
        findings.push(warning(path.to_string(), line, message));
    }
}

fn check_domains(config: &ClusterConfig, findings: &mut Vec<Finding>) {
    for (path, value) in config.domains().entries() {
        let Some(value) = value else { continue };
        let path = path.to_string();
        if let Err(err) = reference::validate_domain(value) {
            let line = config.line_of(&path);
            findings.push(error(
                path,
                line,
                format!("{value:?} is not a valid domain: {err}"),
            ));
        }
    }
}

/// What the config's Velero overrides ask for on their own (literal secrets, privilege on
/// the node, dropped plugins, an unpinned `kubectl.image`): the part of [`validate`] that
/// `verify` and `unpack` repeat on a bundle's `config.yaml`, where checksums alone prove
/// consistency, not origin.
pub fn override_checks(config: &ClusterConfig) -> Vec<Finding> {
    let mut findings = vec![];
    check_overrides(&config.velero_overrides(), &mut findings);
    findings
}

fn check_overrides(overrides: &[VeleroOverride], findings: &mut Vec<Finding>) {
    for over in overrides {
        let values = match &over.values {
            Ok(values) => values,
            Err(err) => {
                let line = match err {
                    crate::config::OverrideValuesError::Yaml { line, .. } => *line,
                    _ => None,
                }
                .or_else(|| over.line_of(""));
                findings.push(error(over.values_path.clone(), line, err.to_string()));
                continue;
            }
        };
        for finding in override_findings(values) {
            findings.push(Finding {
                severity: finding.severity,
                path: format!("{} ({})", over.values_path, finding.path),
                line: over.line_of(&finding.path),
                message: finding.message,
            });
        }
    }
}

/// Checks that need the final values: image fields from overrides, the
/// Velero/AWS plugin pair, and airgap name collisions.
fn check_rendered(config: &ClusterConfig, options: &Options, findings: &mut Vec<Finding>) {
    let recipe = Recipe::from_config(config, options.release.clone(), RenderInputs::default());
    let overrides_path = crate::config::OVERRIDES_PATH;
    let rendered = match values::render(&recipe) {
        Ok(rendered) => rendered,
        Err(err) => {
            findings.push(error(
                overrides_path.to_string(),
                config.line_of(overrides_path),
                format!(
                    "the values after overrides are unusable: {}",
                    crate::chain(&err)
                ),
            ));
            return;
        }
    };
    check_release_pair(&rendered.images, config, findings);
    if let Err(err) = reference::validate_domain(&options.local_registry) {
        findings.push(error(
            "--local-registry".into(),
            None,
            format!(
                "{:?} is not a registry address: {err}",
                options.local_registry
            ),
        ));
        return;
    }
    let mut targets: BTreeMap<String, &Reference> = BTreeMap::new();
    for (use_, source) in rendered.images.iter().map(|u| (u, &u.reference)) {
        let Ok(target) = values::airgap_reference(source, &options.local_registry) else {
            continue;
        };
        match targets.get(&target.to_string()) {
            Some(other) if *other != source => {
                let path = config_path_of(use_, config);
                findings.push(error(
                    path.clone(),
                    config.line_of(&path),
                    format!("{source} and {other} both become {target} in the local registry; rename one repository or tag"),
                ));
            }
            _ => {
                targets.insert(target.to_string(), source);
            }
        }
    }
}

/// Where to point a user for an image found in the values.
fn config_path_of(use_: &ImageUse, config: &ClusterConfig) -> String {
    if let Role::Plugin(name) = &use_.field.role
        && let Some(plugin) = config
            .plugins()
            .iter()
            .find(|p| p.name.as_deref().map(str::trim) == Some(name.as_str()))
    {
        return format!("{}.image", plugin.path);
    }
    format!("{} ({})", crate::config::OVERRIDES_PATH, use_.field.path)
}

fn check_release_pair(images: &[ImageUse], config: &ClusterConfig, findings: &mut Vec<Finding>) {
    let tag_of = |role: Role| {
        images
            .iter()
            .find(|u| u.field.role == role)
            .and_then(|u| u.reference.tag().map(str::to_string))
    };
    let (Some(velero), Some(aws)) = (tag_of(Role::Velero), tag_of(Role::AwsPlugin)) else {
        return;
    };
    if release::compatible(&velero, &aws) == Some(false) {
        let path = crate::config::OVERRIDES_PATH.to_string();
        findings.push(warning(
            path.clone(),
            config.line_of(&path),
            format!("Velero {velero} with AWS plugin {aws} is outside the compatibility table (Velero 1.16 ↔ plugin 1.12, 1.17 ↔ 1.13, 1.18 ↔ 1.14)"),
        ));
    }
}
