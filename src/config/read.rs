//! Picks the fields this tool uses out of a parsed config, turning every unusable field
//! into a [`FieldProblem`] instead of stopping at the first.

use serde_yaml_ng::{Mapping, Value};

use super::lines::LineIndex;
use super::{
    API_VERSION, BuiltInExtension, Domains, FieldProblem, KIND, OVERRIDES_PATH, PLUGINS_PATH,
    Plugin,
};

/// How a YAML value is named in messages.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Picks the fields out of a document, collecting problems instead of stopping.
struct Reader<'a> {
    lines: &'a LineIndex,
    problems: Vec<FieldProblem>,
}

/// The fields this tool uses.
pub(super) type Fields = (Vec<Plugin>, Domains, Vec<BuiltInExtension>);

/// Picks the fields out of `document`, with the problems found in document order.
pub(super) fn read(document: &Value, lines: &LineIndex) -> (Fields, Vec<FieldProblem>) {
    let mut reader = Reader {
        lines,
        problems: Vec::new(),
    };
    let fields = reader.read(document);
    let mut problems = reader.problems;
    // Stable: problems without a line (an empty document) keep their reading order.
    problems.sort_by_key(|problem| problem.line);
    (fields, problems)
}

impl Reader<'_> {
    fn read(&mut self, document: &Value) -> Fields {
        // An empty file is an empty config, which then lacks apiVersion and kind.
        let empty = Mapping::new();
        let root = if document.is_null() {
            Some(&empty)
        } else {
            self.mapping(Some(document), "")
        };
        if root.is_none() {
            return Fields::default();
        }
        for (key, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            let value = field(root, key);
            match self.string(value, key) {
                Some(found) if found != expected => {
                    self.problem(key, format!("is {found:?}, expected {expected:?}"))
                }
                None if is_absent(value) => {
                    self.problem(key, format!("is missing (expected {expected})"))
                }
                _ => {}
            }
        }
        let spec = self.mapping(field(root, "spec"), "spec");
        let extensions = self.mapping(field(spec, "extensions"), "spec.extensions");
        let velero = self.mapping(field(extensions, "velero"), "spec.extensions.velero");
        let plugins = self
            .entries(field(velero, "plugins"), PLUGINS_PATH)
            .into_iter()
            .map(|(_, path, entry)| Plugin {
                name: self.member(entry, &path, "name"),
                image: self.member(entry, &path, "image"),
                image_pull_policy: self.member(entry, &path, "imagePullPolicy"),
                path,
            })
            .collect();

        let domains = self.mapping(field(spec, "domains"), "spec.domains");
        let domains = domains.map_or_else(Domains::default, |domains| Domains {
            proxy_registry_domain: self.member(domains, "spec.domains", "proxyRegistryDomain"),
            replicated_app_domain: self.member(domains, "spec.domains", "replicatedAppDomain"),
            replicated_registry_domain: self.member(
                domains,
                "spec.domains",
                "replicatedRegistryDomain",
            ),
        });

        let overrides = field(spec, "unsupportedOverrides");
        let overrides = self.mapping(overrides, "spec.unsupportedOverrides");
        let built_in_extensions = self
            .entries(field(overrides, "builtInExtensions"), OVERRIDES_PATH)
            .into_iter()
            .map(|(index, path, entry)| {
                if is_absent(entry.get("name")) {
                    let message = "is missing (the chart name, e.g. velero)".to_owned();
                    self.problem(&format!("{path}.name"), message);
                }
                BuiltInExtension {
                    index,
                    name: self.member(entry, &path, "name"),
                    values: self.member(entry, &path, "values"),
                    path,
                }
            })
            .collect();
        (plugins, domains, built_in_extensions)
    }

    fn problem(&mut self, path: &str, message: String) {
        self.problems.push(FieldProblem {
            path: path.to_owned(),
            line: self.lines.line_of(path),
            message,
        });
    }

    /// `value` through `pick`: absent and null read as None, another type is a problem.
    fn typed<'v, T: ?Sized>(
        &mut self,
        value: Option<&'v Value>,
        path: &str,
        expected: &str,
        pick: fn(&'v Value) -> Option<&'v T>,
    ) -> Option<&'v T> {
        let value = value.filter(|value| !value.is_null())?;
        let picked = pick(value);
        if picked.is_none() {
            let message = format!("must be {expected}, got {}", type_name(value));
            self.problem(path, message);
        }
        picked
    }

    fn mapping<'v>(&mut self, value: Option<&'v Value>, path: &str) -> Option<&'v Mapping> {
        self.typed(value, path, "a mapping", Value::as_mapping)
    }

    fn string(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        self.typed(value, path, "a string", Value::as_str)
            .map(str::to_owned)
    }

    /// The string at `key` of the mapping at `parent`.
    fn member(&mut self, parent: &Mapping, parent_path: &str, key: &str) -> Option<String> {
        self.string(parent.get(key), &format!("{parent_path}.{key}"))
    }

    /// The mapping items of the list at `path` with their index and path; other items
    /// are problems.
    fn entries<'v>(
        &mut self,
        value: Option<&'v Value>,
        path: &str,
    ) -> Vec<(usize, String, &'v Mapping)> {
        let items = self.typed(value, path, "a list", Value::as_sequence);
        let mut entries = Vec::new();
        for (index, item) in items.into_iter().flatten().enumerate() {
            let path = format!("{path}[{index}]");
            let expected = "a mapping";
            if let Some(entry) = self.typed(Some(item), &path, expected, Value::as_mapping) {
                entries.push((index, path, entry));
            } else if item.is_null() {
                self.problem(&path, format!("must be {expected}, got null"));
            }
        }
        entries
    }
}

/// Absent and null both mean "not given".
fn is_absent(value: Option<&Value>) -> bool {
    value.is_none_or(Value::is_null)
}

fn field<'v>(mapping: Option<&'v Mapping>, key: &str) -> Option<&'v Value> {
    mapping?.get(key)
}
