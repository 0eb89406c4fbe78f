//! Why a YAML text was refused, with the source name and the position for messages such
//! as `config.yaml:3:5: nesting deeper than 64 levels`.

use std::fmt;

/// A text that could not be parsed, or that exceeded a [`Limits`](super::Limits) bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", Located(source_name, *position))]
pub struct YamlError {
    /// The file name (or other name) the text came from.
    pub source_name: String,
    /// Where the problem was found; None only for a text refused before parsing.
    pub position: Option<Position>,
    /// What is wrong, without the position.
    pub problem: Problem,
}

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// What is wrong with a YAML text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The YAML parser's own message (unclosed brackets, bad indentation, …).
    #[error("{0}")]
    Syntax(String),
    /// A second `---` document follows the first.
    #[error("holds more than one YAML document")]
    MultipleDocuments,
    /// A sequence or mapping used as a mapping key.
    #[error("mapping keys must be scalars")]
    NonScalarKey,
    /// A key that repeats an earlier key of the same mapping (the key possibly shortened).
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    /// A tag other than `!!str` on a scalar.
    #[error("tags are not supported (found {0})")]
    Tag(String),
    /// An alias to a node that is still open, i.e. inside the node it names.
    #[error("alias refers to a node that contains it")]
    RecursiveAlias,
    /// The text is longer than `max_bytes`.
    #[error("larger than {limit} bytes ({size} bytes)")]
    TooLarge {
        /// `Limits::max_bytes`.
        limit: usize,
        /// The text's size.
        size: usize,
    },
    /// Collections nest deeper than `max_depth`.
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    /// More nodes than `max_nodes`, alias expansions included.
    #[error("more than {0} nodes (aliases counted as expanded)")]
    TooManyNodes(usize),
    /// More scalar bytes than `max_expanded_bytes`, alias expansions included.
    #[error("more than {0} bytes of scalars (aliases counted as expanded)")]
    TooManyBytes(usize),
}

/// Keys and tags are quoted in messages; a hostile one can be a megabyte long.
pub(super) fn shortened(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `name:line:column`, or `name` alone without a position.
struct Located<'a>(&'a str, Option<Position>);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(Position { line, column }) => write!(f, "{}:{line}:{column}", self.0),
            None => f.write_str(self.0),
        }
    }
}
