//! What a Velero values tree asks for on its own, judged without the rest of the config:
//! literal secrets (copied into every bundle), privilege on the node (privileged
//! containers, host namespaces and paths, added capabilities, root, commands run by
//! initContainers), unpinned images and settings that drop plugins. Pure, so `validate`
//! runs it on the overrides of a config and `verify`/`unpack` can run the same checks on
//! the config a bundle carries.

use super::{PLUGIN_KINDS, Severity};
use crate::reference::Reference;
use crate::values::images::{ImageField, Role, read_field};
use crate::yaml::Value;

/// One judgement of a values tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesFinding {
    /// Path inside the values, e.g. `initContainers[0].securityContext.privileged`.
    pub path: String,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong and what to do.
    pub message: String,
}

fn warning(path: impl Into<String>, message: String) -> ValuesFinding {
    ValuesFinding {
        path: path.into(),
        severity: Severity::Warning,
        message,
    }
}

/// Everything `validate` says about override values on their own, in this order: an
/// `initContainers` list that replaces the plugins, plugin ConfigMaps without their labels,
/// literal secrets, privilege on the node, and an unpinned `kubectl.image`.
pub fn override_findings(values: &Value) -> Vec<ValuesFinding> {
    let mut findings = vec![];
    if values.get("initContainers").is_some() {
        findings.push(warning(
            "initContainers",
            "overriding initContainers replaces the whole list and silently drops the AWS plugin and every configured plugin; configure plugins under spec.extensions.velero.plugins instead".into(),
        ));
    }
    plugin_config_maps(values, &mut findings);
    findings.extend(
        literal_secrets(values)
            .into_iter()
            .map(|(path, message)| warning(path, message)),
    );
    findings.extend(privilege(values));
    kubectl_image(values, &mut findings);
    findings
}

fn plugin_config_maps(values: &Value, findings: &mut Vec<ValuesFinding>) {
    let Some(Value::Mapping(config_maps)) = values.get("configMaps") else {
        return;
    };
    for (name, config_map) in config_maps {
        let name = name.as_str();
        let path = format!("configMaps.{name}.labels");
        let labels = config_map.get("labels").and_then(Value::as_mapping);
        let has_marker = labels.is_some_and(|l| l.contains_key("velero.io/plugin-config"));
        if !has_marker {
            findings.push(warning(
                path.clone(),
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
                format!("label {key}: {kind:?} on ConfigMap {name:?} names no plugin kind; use one of {}", PLUGIN_KINDS.join(", ")),
            ));
        }
    }
}

/// Words that make a key or an environment variable name a secret.
const SECRET_WORDS: [&str; 4] = ["password", "passwd", "token", "secret"];

fn secret_like(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w)) && !names_a_secret_object(&lower)
}

/// Keys that name a secret rather than hold one (`existingSecret`, `tokenSecretName`).
fn names_a_secret_object(lower: &str) -> bool {
    lower.starts_with("existing")
        || lower.ends_with("name")
        || lower.ends_with("ref")
        || lower == "usesecret"
}

/// A scalar written in the values: `password: 123456` is as literal as a string.
fn is_literal(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
        _ => false,
    }
}

/// Whether a key holds a list of environment variables (`env`, `extraEnvVars`).
fn is_env_list_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.ends_with("env") || lower.ends_with("envvars")
}

/// Literal secrets in override values: `credentials.secretContents`; keys named like
/// password/token/secret holding a literal; and environment variables (`env` or
/// `extraEnvVars` lists, anywhere: the server, initContainers, extra containers) named
/// like one with a literal `value` rather than a `valueFrom`. Returns (path inside the
/// values, message).
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
                let child_path = join(&path, key);
                if child_path == "credentials.secretContents" {
                    continue;
                }
                if secret_like(key) && is_literal(child) {
                    found.push((
                        child_path.clone(),
                        format!("{key} holds a literal value, which would be copied into every bundle; reference a Kubernetes secret instead"),
                    ));
                }
                if is_env_list_key(key)
                    && let Value::Sequence(items) = child
                {
                    env_secrets(items, &child_path, found);
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

/// `- {name: PGPASSWORD, value: …}` entries of an environment list.
fn env_secrets(items: &[Value], path: &str, found: &mut Vec<(String, String)>) {
    for (i, item) in items.iter().enumerate() {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(value) = item.get("value") else {
            continue;
        };
        if secret_like(name) && is_literal(value) && item.get("valueFrom").is_none() {
            found.push((
                format!("{path}[{i}].value"),
                format!("environment variable {name} holds a literal value, which would be copied into every bundle; use valueFrom.secretKeyRef to read it from a Kubernetes secret instead"),
            ));
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Settings that give a pod power over the node it runs on, wherever they appear in the
/// values (the server, the node agent, initContainers, extra containers).
pub fn privilege(values: &Value) -> Vec<ValuesFinding> {
    let mut findings = vec![];
    walk_privilege(values, String::new(), None, &mut findings);
    findings
}

fn walk_privilege(
    value: &Value,
    path: String,
    parent_key: Option<&str>,
    findings: &mut Vec<ValuesFinding>,
) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = key.as_str();
                let child_path = join(&path, key);
                if let Some(message) = privileged_setting(key, child, parent_key) {
                    findings.push(warning(child_path.clone(), message));
                }
                if key == "initContainers"
                    && let Value::Sequence(containers) = child
                {
                    init_container_commands(containers, &child_path, findings);
                }
                walk_privilege(child, child_path, Some(key), findings);
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_privilege(item, format!("{path}[{i}]"), parent_key, findings);
            }
        }
        _ => {}
    }
}

/// The warning for one `key: value`, when it grants privilege.
fn privileged_setting(key: &str, value: &Value, parent_key: Option<&str>) -> Option<String> {
    let on = value.as_bool() == Some(true);
    match key {
        "privileged" if on => Some(
            "privileged: true gives the container every device and capability of the node; remove it unless the plugin cannot work without it".into(),
        ),
        "hostNetwork" | "hostPID" | "hostIPC" if on => Some(format!(
            "{key}: true shares the node's {} namespace with the pod; remove it unless the plugin cannot work without it",
            match key {
                "hostNetwork" => "network",
                "hostPID" => "process",
                _ => "IPC",
            }
        )),
        "hostPath" if !value.is_null() => {
            let at = value
                .get("path")
                .and_then(Value::as_str)
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            Some(format!(
                "a hostPath volume{at} exposes the node's files to the pod; use a persistent volume or an emptyDir instead"
            ))
        }
        "add" if parent_key == Some("capabilities") => {
            let added: Vec<&str> = match value {
                Value::Null => return None,
                Value::Sequence(caps) if caps.is_empty() => return None,
                Value::Sequence(caps) => caps.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let added = if added.is_empty() {
                "extra capabilities".to_string()
            } else {
                added.join(", ")
            };
            Some(format!(
                "securityContext.capabilities.add grants {added}; drop it unless the plugin cannot work without it"
            ))
        }
        "runAsUser" if value.as_i64() == Some(0) => Some(
            "runAsUser: 0 runs the container as root; use a non-zero user id".into(),
        ),
        _ => None,
    }
}

/// initContainers that run a command of the overrides' choosing, instead of copying a
/// plugin binary as the image's own entrypoint does.
fn init_container_commands(containers: &[Value], path: &str, findings: &mut Vec<ValuesFinding>) {
    for (i, container) in containers.iter().enumerate() {
        for field in ["command", "args"] {
            if container.get(field).is_some_and(|v| !v.is_null()) {
                let name = container
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default();
                findings.push(warning(
                    format!("{path}[{i}].{field}"),
                    format!("initContainer{name} sets {field}:, so it runs a command of the values' choosing with Velero's service account before Velero starts; plugin images copy their binary without one"),
                ));
            }
        }
    }
}

/// An unpinned or `latest` `kubectl.image`, when the values set it.
fn kubectl_image(values: &Value, findings: &mut Vec<ValuesFinding>) {
    if values.get("kubectl").and_then(|k| k.get("image")).is_none() {
        return;
    }
    let field = ImageField {
        path: "kubectl.image".into(),
        split: true,
        pull_policy_path: None,
        role: Role::Other,
    };
    // A missing or malformed field is reported by rendering, with the same path.
    let Ok(image) = read_field(values, &field) else {
        return;
    };
    let Ok(parsed) = Reference::parse(&image) else {
        return;
    };
    findings.extend(
        image_warnings(&parsed, &image)
            .into_iter()
            .map(|message| warning("kubectl.image", message)),
    );
}

/// The warnings an image reference gets wherever it is written: not pinned by digest,
/// `latest`, or no tag at all.
pub(super) fn image_warnings(parsed: &Reference, image: &str) -> Vec<String> {
    let mut messages = vec![];
    if parsed.digest().is_none() {
        messages.push(format!("{image:?} is not pinned by digest; add @sha256:… so every bundle carries the same image"));
    }
    match parsed.tag() {
        Some("latest") => messages.push(format!(
            "{image:?} uses the tag latest, which changes under you; use a version tag"
        )),
        None if parsed.digest().is_none() => messages.push(format!(
            "{image:?} has no tag, so it means latest; use a version tag"
        )),
        _ => {}
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        crate::yaml::from_str(text).unwrap()
    }

    fn paths(findings: &[(String, String)]) -> Vec<&str> {
        findings.iter().map(|(p, _)| p.as_str()).collect()
    }

    #[test]
    fn secrets_found_and_secret_names_allowed() {
        let values = parse(
            "credentials:\n  existingSecret: cloud-credentials\n  secretContents:\n    cloud: x\nconfiguration:\n  backupStorageLocation:\n  - config: {accessToken: abc, tokenSecretName: t}\npassword: ''\n",
        );
        assert_eq!(
            paths(&literal_secrets(&values)),
            [
                "credentials.secretContents",
                "configuration.backupStorageLocation[0].config.accessToken",
            ]
        );
    }

    #[test]
    fn secrets_in_environment_lists_are_found() {
        let values = parse(
            "extraEnvVars:\n- {name: PGPASSWORD, value: hunter2}\n- {name: PG_HOST, value: db}\n- {name: API_TOKEN, valueFrom: {secretKeyRef: {name: s, key: k}}}\n- {name: DB_SECRET_NAME, value: creds}\n- {name: EMPTY_PASSWORD, value: ''}\ninitContainers:\n- name: p\n  env:\n  - {name: MONGO_PASSWD, value: 12345}\nextraContainers:\n- name: side\n  env:\n  - {name: S3_SECRET, value: abc}\nnodeAgent:\n  extraEnvVars:\n  - {name: TOKEN, value: t}\n",
        );
        assert_eq!(
            paths(&literal_secrets(&values)),
            [
                "extraEnvVars[0].value",
                "initContainers[0].env[0].value",
                "extraContainers[0].env[0].value",
                "nodeAgent.extraEnvVars[0].value",
            ]
        );
        assert!(literal_secrets(&values)[0].1.contains("PGPASSWORD"));
    }

    #[test]
    fn privilege_is_named_by_field() {
        let values = parse(
            "hostNetwork: true\nhostPID: false\nnodeAgent:\n  hostIPC: true\n  privileged: true\ninitContainers:\n- name: p\n  image: x\n  command: [sh, -c, 'curl x | sh']\n  args: [a]\n  securityContext:\n    privileged: true\n    runAsUser: 0\n    capabilities:\n      add: [SYS_ADMIN, NET_ADMIN]\n      drop: [ALL]\nextraVolumes:\n- name: root\n  hostPath: {path: /}\npodSecurityContext:\n  runAsUser: 1000\n",
        );
        let found: Vec<(String, String)> = privilege(&values)
            .into_iter()
            .map(|f| {
                assert_eq!(f.severity, Severity::Warning);
                (f.path, f.message)
            })
            .collect();
        assert_eq!(
            paths(&found),
            [
                "hostNetwork",
                "nodeAgent.hostIPC",
                "nodeAgent.privileged",
                "initContainers[0].command",
                "initContainers[0].args",
                "initContainers[0].securityContext.privileged",
                "initContainers[0].securityContext.runAsUser",
                "initContainers[0].securityContext.capabilities.add",
                "extraVolumes[0].hostPath",
            ]
        );
        assert!(
            found[7].1.contains("SYS_ADMIN, NET_ADMIN"),
            "{}",
            found[7].1
        );
        assert!(found[8].1.contains("(/)"), "{}", found[8].1);
    }

    #[test]
    fn kubectl_image_must_be_pinned() {
        let latest = parse("kubectl:\n  image: {repository: k.example.com/kubectl, tag: latest}\n");
        let messages: Vec<String> = override_findings(&latest)
            .into_iter()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages[0].starts_with(
            "kubectl.image: \"k.example.com/kubectl:latest\" is not pinned by digest"
        ));
        assert!(messages[1].contains("uses the tag latest"));
        let pinned = parse(&format!(
            "kubectl:\n  image: {{repository: k.example.com/kubectl, tag: '1.33', digest: 'sha256:{}'}}\n",
            "0".repeat(64)
        ));
        assert!(override_findings(&pinned).is_empty());
        assert!(override_findings(&parse("upgradeCRDs: false\n")).is_empty());
    }
}
