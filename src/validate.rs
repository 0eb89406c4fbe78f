//! `validate`: every problem of a cluster config in one run.
//!
//! Each finding names its path (`spec.extensions.velero.plugins[1].image`) and a
//! line when the parser knows one. Errors make the config unusable; warnings are
//! things that work today and hurt later (unpinned images, dropped plugins,
//! secrets copied into every bundle).

use crate::config::{ClusterConfig, Plugin, ProblemLevel, VeleroOverride};
use crate::reference::{self, Reference};
use crate::release::{self, Release};
use crate::values::{self, ImageUse, Recipe, RenderInputs, Role};
use crate::yaml::Value;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

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
        write!(f, "{severity}: {}", self.path)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, ": {}", self.message)
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
        Err(err) => {
            vec![error(String::new(), err.line(), err.to_string())]
        }
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
    if parsed.digest().is_none() {
        findings.push(warning(
            path.to_string(),
            line,
            format!("{image:?} is not pinned by digest; add @sha256:… so every bundle carries the same image"),
        ));
    }
    match parsed.tag() {
        Some("latest") => findings.push(warning(
            path.to_string(),
            line,
            format!("{image:?} uses the tag latest, which changes under you; use a version tag"),
        )),
        None if parsed.digest().is_none() => findings.push(warning(
            path.to_string(),
            line,
            format!("{image:?} has no tag, so it means latest; use a version tag"),
        )),
        _ => {}
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
        let at = |inner: &str| format!("{} ({inner})", over.values_path);
        if values.get("initContainers").is_some() {
            findings.push(warning(
                at("initContainers"),
                over.line_of("initContainers"),
                "overriding initContainers replaces the whole list and silently drops the AWS plugin and every configured plugin; configure plugins under spec.extensions.velero.plugins instead".into(),
            ));
        }
        check_plugin_config_maps(over, values, findings);
        for (inner, message) in literal_secrets(values) {
            findings.push(warning(at(&inner), over.line_of(&inner), message));
        }
    }
}

fn check_plugin_config_maps(over: &VeleroOverride, values: &Value, findings: &mut Vec<Finding>) {
    let Some(Value::Mapping(config_maps)) = values.get("configMaps") else {
        return;
    };
    for (name, config_map) in config_maps {
        let name = name.as_str();
        let inner = format!("configMaps.{name}.labels");
        let path = format!("{} ({inner})", over.values_path);
        let line = over
            .line_of(&inner)
            .or_else(|| over.line_of(&format!("configMaps.{name}")));
        let labels = config_map.get("labels").and_then(Value::as_mapping);
        let has_marker = labels.is_some_and(|l| l.contains_key("velero.io/plugin-config"));
        if !has_marker {
            findings.push(warning(
                path.clone(),
                line,
                format!("ConfigMap {name:?} has no label velero.io/plugin-config: \"\", so Velero plugins will not find it"),
            ));
        }
        for (key, kind) in labels.into_iter().flatten() {
            let (key, kind) = (key.as_str(), kind.as_str().unwrap_or_default());
            let Some(plugin) = key.strip_prefix("velero.io/") else {
                continue;
            };
            if plugin == "plugin-config" || PLUGIN_KINDS.contains(&kind) {
                continue;
            }
            findings.push(warning(
                path.clone(),
                line,
                format!("label {key}: {kind:?} on ConfigMap {name:?} names no plugin kind; use one of {}", PLUGIN_KINDS.join(", ")),
            ));
        }
    }
}

/// Keys that name a secret rather than hold one.
fn names_a_secret_object(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.starts_with("existing")
        || lower.ends_with("name")
        || lower.ends_with("ref")
        || lower == "usesecret"
}

/// Literal secrets in override values: `credentials.secretContents`, and keys
/// named like password/token/secret holding a literal string. Returns
/// (path inside the values, message).
pub fn literal_secrets(values: &Value) -> Vec<(String, String)> {
    let mut found = vec![];
    if let Some(contents) = values
        .get("credentials")
        .and_then(|c| c.get("secretContents"))
        && !contents.is_null()
        && contents.as_mapping().is_none_or(|m| !m.is_empty())
    {
        found.push((
            "credentials.secretContents".to_string(),
            "credentials.secretContents puts cloud credentials into the values, which are copied into every bundle; create the cloud-credentials secret on the cluster instead".to_string(),
        ));
    }
    walk_secrets(values, String::new(), &mut found);
    found
}

fn walk_secrets(value: &Value, path: String, found: &mut Vec<(String, String)>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = key.as_str();
                let child_path = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                if child_path == "credentials.secretContents" {
                    continue;
                }
                let lower = key.to_ascii_lowercase();
                let secret_like = ["password", "passwd", "token", "secret"]
                    .iter()
                    .any(|w| lower.contains(w));
                // Any scalar counts: `password: 123456` is as literal as a string.
                let literal = match child {
                    Value::String(s) => !s.is_empty(),
                    Value::Number(_) => true,
                    _ => false,
                };
                if secret_like && !names_a_secret_object(key) && literal {
                    found.push((
                        child_path.clone(),
                        format!("{key} holds a literal value, which would be copied into every bundle; reference a Kubernetes secret instead"),
                    ));
                }
                walk_secrets(child, child_path, found);
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_secrets(item, format!("{path}[{i}]"), found);
            }
        }
        _ => {}
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
                format!("the values after overrides are unusable: {err}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_found_and_secret_names_allowed() {
        let values: Value = crate::yaml::from_str(
            "credentials:\n  existingSecret: cloud-credentials\n  secretContents:\n    cloud: x\nconfiguration:\n  backupStorageLocation:\n  - config: {accessToken: abc, tokenSecretName: t}\nextraEnvVars:\n- {name: DB_PASSWORD, value: x}\npassword: ''\n",
        )
        .unwrap();
        let paths: Vec<_> = literal_secrets(&values)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            paths,
            [
                "credentials.secretContents",
                "configuration.backupStorageLocation[0].config.accessToken",
            ]
        );
    }
}
