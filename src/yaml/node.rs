//! The parsed tree: every node and key carries its source position, so messages can
//! point at lines, and paths such as `spec.extensions.velero.plugins[1].image` can be
//! turned into line numbers by walking the tree.

use super::value::{Mapping, Number, Value};

/// How a scalar was written; collections say `Plain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    /// Unquoted; the only style whose text is resolved to null, booleans and numbers.
    Plain,
    /// `'text'`.
    SingleQuoted,
    /// `"text"`.
    DoubleQuoted,
    /// `|` block.
    Literal,
    /// `>` block.
    Folded,
}

/// A node of the tree with its position in the source.
///
/// A copy made by an alias keeps the positions of the anchored original: that is where
/// its text is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: NodeValue,
    /// 1-based line where the node starts.
    pub line: usize,
    /// 1-based column (in characters) where the node starts.
    pub column: usize,
    /// How a scalar was written; `Plain` for collections.
    pub style: ScalarStyle,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `null`, `~` or nothing, written plain.
    Null,
    /// `true` or `false` (or their capitalised forms), written plain.
    Bool(bool),
    /// A plain decimal, `0o` or `0x` integer that fits in i64.
    Integer(i64),
    /// A plain float, or an integer too large for i64, with its text as written, so that
    /// writing it back gives the same text (`1.10` stays `1.10`, not `1.1`).
    Float { value: f64, text: String },
    /// Any quoted or block scalar, a plain scalar that is no other type, or `!!str`.
    String(String),
    /// A sequence, in order.
    Sequence(Vec<Node>),
    /// A mapping, in order; keys are unique.
    Mapping(Vec<(Key, Node)>),
}

/// A mapping key: the text of a scalar, whatever type it would resolve to (`1: a` has
/// the key `"1"`), with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key's text.
    pub text: String,
    /// 1-based line of the key.
    pub line: usize,
    /// 1-based column (in characters) of the key.
    pub column: usize,
}

impl Node {
    /// The line of `path` below this node (`""` is the node itself), or of its nearest
    /// ancestor when `path` is absent, so a missing field points at its parent.
    ///
    /// Paths join mapping keys with `.` and add `[i]` for sequence items; a mapping entry
    /// is at its key, a sequence item at the item. A key may itself hold `.` or `[`: at
    /// each mapping the longest key that matches the path up to a `.`, a `[` or its end
    /// is taken. Costs the size of the mappings along the path, nothing more.
    pub fn line_of(&self, path: &str) -> usize {
        self.walk(path).1
    }

    /// The source line holding line 1 of the literal block scalar (`key: |`) at `path`,
    /// so that line `n` of its text is at source line `start + n - 1`. None for other
    /// nodes: quoted and folded strings do not keep the source's line breaks.
    pub fn literal_start(&self, path: &str) -> Option<usize> {
        let (node, _, whole) = self.walk(path);
        match &node.value {
            NodeValue::String(text) if whole && node.style == ScalarStyle::Literal => {
                // The node starts at its first non-blank line; leading blank lines are in
                // the text as line breaks.
                let blank = text.bytes().take_while(|&b| b == b'\n').count();
                Some(node.line.saturating_sub(blank))
            }
            _ => None,
        }
    }

    /// How the node's type is named in messages: "null", "a boolean", "a number",
    /// "a string", "a list" or "a mapping".
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Integer(_) | NodeValue::Float { .. } => "a number",
            NodeValue::String(_) => "a string",
            NodeValue::Sequence(_) => "a list",
            NodeValue::Mapping(_) => "a mapping",
        }
    }

    /// A copy as a plain [`Value`], without positions.
    pub fn to_value(&self) -> Value {
        Value::from(self.clone())
    }

    /// The deepest node along `path`, the line it is at (a mapping entry's key line),
    /// and whether the whole path was found.
    fn walk(&self, path: &str) -> (&Node, usize, bool) {
        let (mut node, mut line, mut rest) = (self, self.line, path);
        let mut top = true;
        while !rest.is_empty() {
            let Some((child, child_line, after)) = node.step(rest, top) else {
                return (node, line, false);
            };
            (node, line, rest, top) = (child, child_line, after, false);
        }
        (node, line, true)
    }

    /// The child named at the start of `rest`, its line and what follows its name. A key
    /// is preceded by `.` except at the top of the path.
    fn step<'p>(&self, rest: &'p str, top: bool) -> Option<(&Node, usize, &'p str)> {
        match &self.value {
            NodeValue::Sequence(items) => {
                let (index, after) = rest.strip_prefix('[')?.split_once(']')?;
                let item = items.get(index.parse::<usize>().ok()?)?;
                Some((item, item.line, after))
            }
            NodeValue::Mapping(entries) => {
                let rest = if top { rest } else { rest.strip_prefix('.')? };
                entries
                    .iter()
                    .filter_map(|(key, value)| {
                        let after = rest.strip_prefix(key.text.as_str())?;
                        let ends = after.is_empty() || after.starts_with(['.', '[']);
                        ends.then_some((key, value, after))
                    })
                    .max_by_key(|(key, ..)| key.text.len())
                    .map(|(key, value, after)| (value, key.line, after))
            }
            _ => None,
        }
    }
}

impl From<Node> for Value {
    fn from(node: Node) -> Self {
        match node.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(value) => Value::Bool(value),
            NodeValue::Integer(value) => Value::Number(Number::from(value)),
            NodeValue::Float { value, text } => Value::Number(Number::written(value, text)),
            NodeValue::String(text) => Value::String(text),
            NodeValue::Sequence(items) => {
                Value::Sequence(items.into_iter().map(Value::from).collect())
            }
            NodeValue::Mapping(entries) => Value::Mapping(
                entries
                    .into_iter()
                    .map(|(key, value)| (key.text, Value::from(value)))
                    .collect::<Mapping>(),
            ),
        }
    }
}
