//! Picks the fields this tool uses out of a parsed config, turning every unusable field
//! and every unknown key into a [`FieldProblem`] instead of stopping at the first.
//!
//! The keys known here are Embedded Cluster's Config schema around what this tool reads.
//! Subtrees it does not read (`metadata`, `roles`, `k0s`, `workerProfiles`,
//! `extensions.helm`) are not checked: they are Embedded Cluster's business.

use super::{
    API_VERSION, BuiltInExtension, Domains, FieldProblem, KIND, OVERRIDES_PATH, PLUGINS_PATH,
    Plugin, ProblemLevel,
};
use crate::yaml::{Key, Node, NodeValue};

/// Keys of the top level.
const TOP_KEYS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
/// Keys of `spec`.
const SPEC_KEYS: &[&str] = &[
    "version",
    "binaryOverrideUrl",
    "metadataOverrideUrl",
    "roles",
    "unsupportedOverrides",
    "extensions",
    "domains",
    "v2Enabled",
];
/// Keys of `spec.unsupportedOverrides`.
const OVERRIDES_KEYS: &[&str] = &["k0s", "builtInExtensions", "workerProfiles"];
/// Keys of each `builtInExtensions[]` entry.
const EXTENSION_KEYS: &[&str] = &["name", "values"];
/// Keys of `spec.extensions`.
const EXTENSIONS_KEYS: &[&str] = &["helm", "velero"];
/// Keys of `spec.extensions.velero`.
const VELERO_KEYS: &[&str] = &["plugins"];
/// Keys of each `plugins[]` entry.
const PLUGIN_KEYS: &[&str] = &["name", "image", "imagePullPolicy"];
/// Keys of `spec.domains`.
const DOMAIN_KEYS: &[&str] = &[
    "replicatedAppDomain",
    "proxyRegistryDomain",
    "replicatedRegistryDomain",
];

/// A mapping node's entries.
type Entries = [(Key, Node)];

/// A node with the line problems about it point at: a mapping entry's key line, a
/// sequence item's own line.
type Located<'n> = (usize, &'n Node);

/// Picks the fields out of a document, collecting problems instead of stopping.
struct Reader {
    problems: Vec<FieldProblem>,
}

/// The fields this tool uses.
pub(super) type Fields = (Vec<Plugin>, Domains, Vec<BuiltInExtension>);

/// Picks the fields out of `document` (`None` for an empty file), with the problems found
/// in document order.
pub(super) fn read(document: Option<&Node>) -> (Fields, Vec<FieldProblem>) {
    let mut reader = Reader {
        problems: Vec::new(),
    };
    let fields = reader.read(document);
    let mut problems = reader.problems;
    // Stable: problems without a line (an empty document) keep their reading order.
    problems.sort_by_key(|problem| problem.line);
    (fields, problems)
}

impl Reader {
    fn read(&mut self, document: Option<&Node>) -> Fields {
        // An empty file is an empty config, which then lacks apiVersion and kind.
        let root: &Entries = match document {
            None => &[],
            Some(node) if is_null(node) => &[],
            Some(node) => match self.mapping(Some((node.line, node)), "") {
                Some(root) => root,
                None => return Fields::default(),
            },
        };
        self.check_keys(root, "", TOP_KEYS, ProblemLevel::Warning);
        for (key, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            let value = field(root, key);
            match self.string(value, key) {
                Some(found) if found != expected => self.problem_at(
                    key,
                    value.map(|(line, _)| line),
                    format!("is {found:?}, expected {expected:?}"),
                ),
                None if value.is_none_or(|(_, node)| is_null(node)) => {
                    self.problem_at(key, None, format!("is missing (expected {expected})"));
                }
                _ => {}
            }
        }
        let spec = self.section(root, "spec", "spec", SPEC_KEYS, ProblemLevel::Warning);
        let extensions = self.section(
            spec,
            "extensions",
            "spec.extensions",
            EXTENSIONS_KEYS,
            ProblemLevel::Warning,
        );
        let velero = self.section(
            extensions,
            "velero",
            "spec.extensions.velero",
            VELERO_KEYS,
            ProblemLevel::Error,
        );
        let plugins = self.plugins(field(velero, "plugins"));
        let domains = self.domains(spec);
        let overrides = self.section(
            spec,
            "unsupportedOverrides",
            "spec.unsupportedOverrides",
            OVERRIDES_KEYS,
            ProblemLevel::Warning,
        );
        let built_in_extensions = self.extensions(field(overrides, "builtInExtensions"));
        (plugins, domains, built_in_extensions)
    }

    /// The mapping at `parent.key` (empty when absent), its keys checked against `known`.
    fn section<'n>(
        &mut self,
        parent: &'n Entries,
        key: &str,
        path: &str,
        known: &[&str],
        level: ProblemLevel,
    ) -> &'n Entries {
        let entries = self.mapping(field(parent, key), path).unwrap_or(&[]);
        self.check_keys(entries, path, known, level);
        entries
    }

    fn plugins(&mut self, value: Option<Located>) -> Vec<Plugin> {
        self.entries(value, PLUGINS_PATH)
            .into_iter()
            .map(|(_, path, entry)| {
                self.check_keys(entry, &path, PLUGIN_KEYS, ProblemLevel::Error);
                Plugin {
                    name: self.member(entry, &path, "name"),
                    image: self.member(entry, &path, "image"),
                    image_pull_policy: self.member(entry, &path, "imagePullPolicy"),
                    path,
                }
            })
            .collect()
    }

    fn domains(&mut self, spec: &Entries) -> Domains {
        let path = "spec.domains";
        let Some(domains) = self.mapping(field(spec, "domains"), path) else {
            return Domains::default();
        };
        self.check_keys(domains, path, DOMAIN_KEYS, ProblemLevel::Error);
        Domains {
            proxy_registry_domain: self.member(domains, path, "proxyRegistryDomain"),
            replicated_app_domain: self.member(domains, path, "replicatedAppDomain"),
            replicated_registry_domain: self.member(domains, path, "replicatedRegistryDomain"),
        }
    }

    fn extensions(&mut self, value: Option<Located>) -> Vec<BuiltInExtension> {
        self.entries(value, OVERRIDES_PATH)
            .into_iter()
            .map(|(index, path, entry)| {
                self.check_keys(entry, &path, EXTENSION_KEYS, ProblemLevel::Error);
                if field(entry, "name").is_none_or(|(_, node)| is_null(node)) {
                    let message = "is missing (the chart name, e.g. velero)".to_owned();
                    let line = first_line(entry);
                    self.problem_at(&format!("{path}.name"), line, message);
                }
                BuiltInExtension {
                    index,
                    name: self.member(entry, &path, "name"),
                    values: self.member(entry, &path, "values"),
                    path,
                }
            })
            .collect()
    }

    /// Every key of `entries` not in `known` is a problem of `level`, with a suggestion
    /// when a known key is close.
    fn check_keys(&mut self, entries: &Entries, path: &str, known: &[&str], level: ProblemLevel) {
        for (key, _) in entries {
            if known.contains(&key.text.as_str()) {
                continue;
            }
            let key_path = join(path, &key.text);
            let message = match suggestion(&key.text, known) {
                Some(close) => format!("is not a known key; did you mean {close}?"),
                None => format!("is not a known key (known here: {})", known.join(", ")),
            };
            self.problems.push(FieldProblem {
                path: key_path,
                line: Some(key.line),
                message,
                level,
            });
        }
    }

    fn problem_at(&mut self, path: &str, line: Option<usize>, message: String) {
        self.problems.push(FieldProblem {
            path: path.to_owned(),
            line,
            message,
            level: ProblemLevel::Error,
        });
    }

    /// `value` through `pick`: absent and null read as None, another type is a problem.
    fn typed<'n, T: ?Sized>(
        &mut self,
        value: Option<Located<'n>>,
        path: &str,
        expected: &str,
        pick: fn(&'n Node) -> Option<&'n T>,
    ) -> Option<&'n T> {
        let (line, value) = value.filter(|(_, value)| !is_null(value))?;
        let picked = pick(value);
        if picked.is_none() {
            let message = format!("must be {expected}, got {}", value.type_name());
            self.problem_at(path, Some(line), message);
        }
        picked
    }

    fn mapping<'n>(&mut self, value: Option<Located<'n>>, path: &str) -> Option<&'n Entries> {
        self.typed(value, path, "a mapping", as_mapping)
    }

    fn string(&mut self, value: Option<Located>, path: &str) -> Option<String> {
        self.typed(value, path, "a string", as_str)
            .map(str::to_owned)
    }

    /// The string at `key` of the mapping at `parent`.
    fn member(&mut self, parent: &Entries, parent_path: &str, key: &str) -> Option<String> {
        self.string(field(parent, key), &join(parent_path, key))
    }

    /// The mapping items of the list at `path` with their index and path; other items
    /// are problems.
    fn entries<'n>(
        &mut self,
        value: Option<Located<'n>>,
        path: &str,
    ) -> Vec<(usize, String, &'n Entries)> {
        let items = self.typed(value, path, "a list", as_sequence);
        let mut entries = Vec::new();
        for (index, item) in items.into_iter().flatten().enumerate() {
            let path = format!("{path}[{index}]");
            let expected = "a mapping";
            if let Some(entry) = self.typed(Some((item.line, item)), &path, expected, as_mapping) {
                entries.push((index, path, entry));
            } else if is_null(item) {
                self.problem_at(
                    &path,
                    Some(item.line),
                    format!("must be {expected}, got null"),
                );
            }
        }
        entries
    }
}

/// The closest known key, if it is close enough to be a typo: at most two edits away,
/// or the same but for case.
fn suggestion<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|candidate| {
            let distance = if candidate.eq_ignore_ascii_case(key) {
                0
            } else {
                edit_distance(key, candidate)
            };
            (distance, *candidate)
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters. Keys are short, so the quadratic table is cheap;
/// a hostile megabyte-long key is cut off first.
fn edit_distance(a: &str, b: &str) -> usize {
    const LONGEST: usize = 64;
    let a: Vec<char> = a.chars().take(LONGEST + 3).collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 2 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn field<'n>(entries: &'n Entries, key: &str) -> Option<Located<'n>> {
    entries
        .iter()
        .find(|(candidate, _)| candidate.text == key)
        .map(|(key, value)| (key.line, value))
}

fn first_line(entries: &Entries) -> Option<usize> {
    entries.first().map(|(key, _)| key.line)
}

fn is_null(node: &Node) -> bool {
    matches!(node.value, NodeValue::Null)
}

fn as_mapping(node: &Node) -> Option<&Entries> {
    match &node.value {
        NodeValue::Mapping(entries) => Some(entries),
        _ => None,
    }
}

fn as_sequence(node: &Node) -> Option<&[Node]> {
    match &node.value {
        NodeValue::Sequence(items) => Some(items),
        _ => None,
    }
}

fn as_str(node: &Node) -> Option<&str> {
    match &node.value {
        NodeValue::String(text) => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let known = &["plugins"];
        assert_eq!(suggestion("plugin", known), Some("plugins"));
        assert_eq!(suggestion("Plugins", known), Some("plugins"));
        assert_eq!(suggestion("plugns", known), Some("plugins"));
        assert_eq!(suggestion("images", known), None);
        assert_eq!(
            suggestion("imagePulPolicy", PLUGIN_KEYS),
            Some("imagePullPolicy")
        );
        assert_eq!(
            suggestion("unsupportedOverride", SPEC_KEYS),
            Some("unsupportedOverrides")
        );
        assert_eq!(suggestion("extension", SPEC_KEYS), Some("extensions"));
        assert_eq!(suggestion(&"x".repeat(1 << 20), SPEC_KEYS), None);
    }
}
