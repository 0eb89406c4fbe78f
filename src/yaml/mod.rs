//! YAML reading with bounds: one parser (yaml-rust2's event parser) builds a tree whose
//! nodes carry their source positions ([`Node`]), and a plain ordered [`Value`] serves
//! for changing and rendering values.
//!
//! Hostile input is refused quickly: the text's size is checked before parsing, and
//! nesting depth, node count and scalar bytes (alias expansions included) while parsing,
//! stopping at the first violation. Everything built from a tree is linear in its size.
//!
//! What is read, and what is not:
//! - one document; a second `---` document is refused;
//! - plain scalars resolve by the YAML 1.2 core schema (`yes`, `on` are strings); quoted
//!   and block scalars are strings;
//! - the only tag accepted is `!!str` on a scalar; any other is refused rather than
//!   ignored, as its meaning (a custom type, `!!binary`…) would be lost;
//! - anchors and aliases are expanded into copies, counted against the limits;
//! - merge keys (`<<: *base`) are ordinary keys named `<<`: YAML 1.2 has no merge, and
//!   Helm's values have no use for it;
//! - mapping keys must be scalars and unique in their mapping; a key keeps its text
//!   whatever type it would resolve to (`1: a` has the key `"1"`).

mod build;
mod error;
mod limits;
mod mapping;
mod node;
mod scalar;
mod value;

pub use error::{Position, Problem, YamlError};
pub use limits::Limits;
pub use mapping::{Entry, IntoIter, Iter, IterMut, Mapping};
pub use node::{Key, Node, NodeValue, ScalarStyle};
pub use value::{Number, Value, ValueIndex};

/// Parses the one YAML document of `text`; `source_name` names it in errors. An empty
/// text (or one of comments only) is `Ok(None)`; a bare `---` is a null node.
pub fn parse(text: &str, source_name: &str, limits: &Limits) -> Result<Option<Node>, YamlError> {
    let error = |problem, position| YamlError {
        source_name: source_name.to_owned(),
        position,
        problem,
    };
    if text.len() > limits.max_bytes {
        let problem = Problem::TooLarge {
            limit: limits.max_bytes,
            size: text.len(),
        };
        return Err(error(problem, None));
    }
    build::build(text, limits).map_err(|(problem, position)| error(problem, Some(position)))
}

/// Parses `text` as [`parse`] does, into a plain [`Value`]; no document is `Value::Null`.
pub fn parse_value(text: &str, source_name: &str, limits: &Limits) -> Result<Value, YamlError> {
    Ok(parse(text, source_name, limits)?.map_or(Value::Null, Value::from))
}

/// Parses `text` with the default limits into a plain [`Value`]; for text the crate ships
/// (the values template, the release catalogue) and for values it wrote itself.
pub fn from_str(text: &str) -> Result<Value, YamlError> {
    parse_value(text, "YAML text", &Limits::default())
}

#[cfg(test)]
mod tests;
