//! The bounds a YAML text must stay within, so that hostile input (deep nesting, alias
//! bombs, huge files) is refused quickly instead of exhausting memory or time.

/// Bounds checked while parsing; exceeding any refuses the text.
///
/// Aliases are expanded into copies, so `max_nodes` and `max_expanded_bytes` bound what
/// the parsed tree holds, not only what the text spells out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size of the text in bytes, checked before parsing.
    pub max_bytes: usize,
    /// Levels of nested sequences and mappings, copies made by aliases included.
    pub max_depth: usize,
    /// Nodes in the tree: scalars, keys, sequences and mappings, each node an alias
    /// expands to counted again.
    pub max_nodes: usize,
    /// Bytes of scalar text (keys included), counted again for each alias expansion.
    pub max_expanded_bytes: usize,
}

impl Limits {
    /// Roomy for any real config or Helm values file: 1 MiB of text, 64 levels,
    /// 100,000 nodes and 4 MiB of scalars.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 1 << 20,
        max_depth: 64,
        max_nodes: 100_000,
        max_expanded_bytes: 4 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
