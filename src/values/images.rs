//! Where the Velero chart takes its images from in the values, and how to read
//! and rewrite them.
//!
//! The chart reads images from two shapes: a `{repository, tag, digest}` mapping
//! (`image`, `kubectl.image`) and a whole reference string (each initContainer,
//! the restore helper's ConfigMap). Every step that touches images (proxy domain,
//! airgap rewrite, collecting what to pull, re-targeting on unpack) goes through
//! [`image_fields`], so they cannot disagree about which fields are images.

use crate::yaml::{Mapping, Value};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The name of the AWS plugin's initContainer in the base values.
pub const AWS_PLUGIN_CONTAINER: &str = "velero-plugin-for-aws";

/// What an image is for, as recorded in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Role {
    /// The Velero server (also the node agent, the CRD job and the restore helper).
    Velero,
    /// The AWS object-store plugin of the chosen release.
    AwsPlugin,
    /// A plugin from `spec.extensions.velero.plugins[]`, by name.
    Plugin(String),
    /// Anything else the final values make the chart run.
    Other,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Velero => f.write_str("velero"),
            Role::AwsPlugin => f.write_str("aws-plugin"),
            Role::Plugin(name) => write!(f, "plugin:{name}"),
            Role::Other => f.write_str("other"),
        }
    }
}

impl From<Role> for String {
    fn from(role: Role) -> String {
        role.to_string()
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "velero" => Ok(Role::Velero),
            "aws-plugin" => Ok(Role::AwsPlugin),
            "other" => Ok(Role::Other),
            _ => match s.strip_prefix("plugin:") {
                Some(name) if !name.is_empty() => Ok(Role::Plugin(name.to_string())),
                _ => Err(format!(
                    "`{s}` is not an image role (velero, aws-plugin, plugin:<name>, other)"
                )),
            },
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Role, String> {
        s.parse()
    }
}

/// One place in the values that names an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageField {
    /// Path of the field, e.g. `image`, `initContainers[1].image`,
    /// `configMaps.fs-restore-action-config.data.image`.
    pub path: String,
    /// Whether `path` is a `{repository, tag, digest}` mapping or a string.
    pub split: bool,
    /// Path of the pull policy that goes with it, when the chart has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy_path: Option<String>,
    /// What the image is for.
    pub role: Role,
}

/// Path segments, so that keys with dots (`velero.io/...`) never need escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A field's location as segments plus its display path.
#[derive(Debug, Clone)]
struct Location {
    segments: Vec<Segment>,
}

impl Location {
    fn root() -> Location {
        Location { segments: vec![] }
    }
    fn key(&self, key: &str) -> Location {
        let mut segments = self.segments.clone();
        segments.push(Segment::Key(key.to_string()));
        Location { segments }
    }
    fn index(&self, index: usize) -> Location {
        let mut segments = self.segments.clone();
        segments.push(Segment::Index(index));
        Location { segments }
    }
    fn path(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// Parses a display path back into segments. Keys are split on `.` except that
/// a ConfigMap name or label key may contain dots, so known prefixes are kept.
fn parse_path(path: &str) -> Vec<Segment> {
    // Paths we produce have at most one key with dots: the ConfigMap name in
    // `configMaps.<name>.data.image`. Handle that shape first.
    if let Some(rest) = path.strip_prefix("configMaps.")
        && let Some(name) = rest.strip_suffix(".data.image")
    {
        return ["configMaps", name, "data", "image"]
            .iter()
            .map(|k| Segment::Key(k.to_string()))
            .collect();
    }
    let mut segments = vec![];
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            segments.push(Segment::Key(key.to_string()));
        }
        for index in indexes.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                segments.push(Segment::Index(i));
            }
        }
    }
    segments
}

fn get<'a>(value: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    segments.iter().try_fold(value, |v, s| match s {
        Segment::Key(k) => v.get(k.as_str()),
        Segment::Index(i) => v.get(*i),
    })
}

fn get_mut<'a>(value: &'a mut Value, segments: &[Segment]) -> Option<&'a mut Value> {
    segments.iter().try_fold(value, |v, s| match s {
        Segment::Key(k) => v.get_mut(k.as_str()),
        Segment::Index(i) => v.get_mut(*i),
    })
}

/// Reads a value at a display path such as `initContainers[1].image`.
pub fn get_path<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    get(values, &parse_path(path))
}

fn truthy(value: Option<&Value>, default: bool) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Null) | None => default,
        Some(_) => true,
    }
}

/// Every field of `values` that makes the chart run an image, in a fixed order:
/// the Velero image, the initContainers in order, restore-helper ConfigMaps by
/// name, then `kubectl.image` when a CRD job that runs it is enabled.
///
/// `plugins` are the names of configured plugins, to tell their role.
pub fn image_fields(values: &Value, plugins: &[String]) -> Vec<ImageField> {
    let root = Location::root();
    let mut fields = vec![];
    if values.get("image").is_some_and(Value::is_mapping) {
        fields.push(ImageField {
            path: "image".into(),
            split: true,
            pull_policy_path: Some("image.pullPolicy".into()),
            role: Role::Velero,
        });
    }
    if let Some(Value::Sequence(containers)) = values.get("initContainers") {
        for (i, container) in containers.iter().enumerate() {
            if container.get("image").is_none() {
                continue;
            }
            let name = container.get("name").and_then(Value::as_str).unwrap_or("");
            let role = if name == AWS_PLUGIN_CONTAINER {
                Role::AwsPlugin
            } else if plugins.iter().any(|p| p == name) {
                Role::Plugin(name.to_string())
            } else {
                Role::Other
            };
            let at = root.key("initContainers").index(i);
            fields.push(ImageField {
                path: at.key("image").path(),
                split: false,
                pull_policy_path: Some(at.key("imagePullPolicy").path()),
                role,
            });
        }
    }
    if let Some(Value::Mapping(config_maps)) = values.get("configMaps") {
        let mut names: Vec<&str> = config_maps
            .iter()
            .filter(|(_, cm)| is_restore_helper_config(cm))
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        for name in names {
            fields.push(ImageField {
                path: root
                    .key("configMaps")
                    .key(name)
                    .key("data")
                    .key("image")
                    .path(),
                split: false,
                pull_policy_path: None,
                role: Role::Velero,
            });
        }
    }
    let crd_job =
        truthy(values.get("upgradeCRDs"), true) || truthy(values.get("cleanUpCRDs"), false);
    if crd_job {
        fields.push(ImageField {
            path: "kubectl.image".into(),
            split: true,
            pull_policy_path: Some("image.pullPolicy".into()),
            role: Role::Other,
        });
    }
    fields
}

/// The restore helper's ConfigMap: Velero looks it up by these labels.
fn is_restore_helper_config(config_map: &Value) -> bool {
    let Some(labels) = config_map.get("labels") else {
        return false;
    };
    labels.get("velero.io/plugin-config").is_some()
        && labels
            .get("velero.io/pod-volume-restore")
            .and_then(Value::as_str)
            == Some("RestoreItemAction")
        && config_map
            .get("data")
            .and_then(|d| d.get("image"))
            .is_some()
}

/// Why an image field cannot be read as a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The field is missing where the chart needs it.
    #[error("{path} is not set; the chart would fall back to an image from the internet")]
    Missing {
        /// Path of the field.
        path: String,
    },
    /// The field is there but is not a non-empty string.
    #[error("{path} must be a non-empty string")]
    NotAString {
        /// Path of the field.
        path: String,
    },
}

/// The image reference a field makes the chart run, as the chart would build it:
/// `repository@digest` when a digest is set, else `repository:tag`.
pub fn read_field(values: &Value, field: &ImageField) -> Result<String, FieldError> {
    let segments = parse_path(&field.path);
    let node = get(values, &segments);
    let text = |v: Option<&Value>, suffix: &str| -> Result<String, FieldError> {
        let path = if suffix.is_empty() {
            field.path.clone()
        } else {
            format!("{}.{suffix}", field.path)
        };
        match v {
            None | Some(Value::Null) => Err(FieldError::Missing { path }),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(_) => Err(FieldError::NotAString { path }),
        }
    };
    if !field.split {
        return text(node, "");
    }
    let repository = text(node.and_then(|n| n.get("repository")), "repository")?;
    if let Some(digest) = node.and_then(|n| n.get("digest")).filter(|d| !d.is_null()) {
        let digest = text(Some(digest), "digest")?;
        return Ok(format!("{repository}@{digest}"));
    }
    let tag = text(node.and_then(|n| n.get("tag")), "tag")?;
    Ok(format!("{repository}:{tag}"))
}

/// Writes `reference` into a field. For the split shape the repository gets the
/// name and the tag gets `tag[@digest]` (what Embedded Cluster ships), or the
/// `digest` key when there is no tag.
pub fn write_field(
    values: &mut Value,
    field: &ImageField,
    reference: &crate::reference::Reference,
) {
    let segments = parse_path(&field.path);
    let Some(node) = get_mut(values, &segments) else {
        return;
    };
    if !field.split {
        *node = Value::String(reference.to_string());
        return;
    }
    if !node.is_mapping() {
        *node = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(map) = node else {
        return;
    };
    map.insert("repository".into(), Value::String(reference.name()));
    map.remove("digest");
    match (reference.tag(), reference.digest()) {
        (Some(tag), Some(digest)) => {
            map.insert("tag".into(), Value::String(format!("{tag}@{digest}")));
        }
        (Some(tag), None) => {
            map.insert("tag".into(), Value::String(tag.to_string()));
        }
        (None, Some(digest)) => {
            map.remove("tag");
            map.insert("digest".into(), Value::String(digest.to_string()));
        }
        (None, None) => {}
    }
}

/// Sets a pull policy at `path` when the parent exists.
pub fn write_pull_policy(values: &mut Value, path: &str, policy: &str) {
    let mut segments = parse_path(path);
    let Some(Segment::Key(last)) = segments.pop() else {
        return;
    };
    if let Some(Value::Mapping(parent)) = get_mut(values, &segments) {
        parent.insert(last, Value::String(policy.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        crate::yaml::from_str(text).unwrap()
    }

    #[test]
    fn paths_round_trip() {
        for path in [
            "image",
            "initContainers[1].image",
            "configMaps.fs-restore-action-config.data.image",
            "kubectl.image",
        ] {
            let location = parse_path(path);
            let rebuilt = Location { segments: location }.path();
            assert_eq!(rebuilt, path);
        }
    }

    #[test]
    fn finds_every_image_field_in_order() {
        let values = yaml(
            "image: {repository: r, tag: t}\nupgradeCRDs: false\ninitContainers:\n- {name: velero-plugin-for-aws, image: a}\n- {name: pg, image: b}\n- {name: extra, image: c}\nconfigMaps:\n  fs-restore-action-config:\n    labels: {velero.io/plugin-config: '', velero.io/pod-volume-restore: RestoreItemAction}\n    data: {image: d}\n  other: {labels: {x: y}, data: {image: e}}\n",
        );
        let fields = image_fields(&values, &["pg".to_string()]);
        let summary: Vec<_> = fields
            .iter()
            .map(|f| (f.path.as_str(), f.role.to_string()))
            .collect();
        assert_eq!(
            summary,
            [
                ("image", "velero".to_string()),
                ("initContainers[0].image", "aws-plugin".to_string()),
                ("initContainers[1].image", "plugin:pg".to_string()),
                ("initContainers[2].image", "other".to_string()),
                (
                    "configMaps.fs-restore-action-config.data.image",
                    "velero".to_string()
                ),
            ]
        );
    }

    #[test]
    fn kubectl_image_only_when_a_crd_job_runs() {
        let off = yaml("upgradeCRDs: false\n");
        assert!(image_fields(&off, &[]).is_empty());
        let default_on = yaml("kubectl: {image: {repository: k, tag: '1.33'}}\n");
        let fields = image_fields(&default_on, &[]);
        assert_eq!(fields[0].path, "kubectl.image");
        assert_eq!(read_field(&default_on, &fields[0]).unwrap(), "k:1.33");
        let cleanup = yaml("upgradeCRDs: false\ncleanUpCRDs: true\n");
        let fields = image_fields(&cleanup, &[]);
        assert_eq!(
            read_field(&cleanup, &fields[0]).unwrap_err().to_string(),
            "kubectl.image.repository is not set; the chart would fall back to an image from the internet"
        );
    }

    #[test]
    fn split_field_prefers_digest_like_the_chart() {
        let values =
            yaml("image: {repository: r, tag: t, digest: 'sha256:abc'}\nupgradeCRDs: false\n");
        let fields = image_fields(&values, &[]);
        assert_eq!(read_field(&values, &fields[0]).unwrap(), "r@sha256:abc");
    }

    #[test]
    fn role_serialises_as_text() {
        assert_eq!(
            Role::try_from("plugin:pg".to_string()),
            Ok(Role::Plugin("pg".into()))
        );
        assert_eq!(String::from(Role::AwsPlugin), "aws-plugin");
    }
}
