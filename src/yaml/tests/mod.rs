//! Tests of the YAML module, with helpers shared by its files.

mod limits;
mod lines;
mod parse;
mod value;

use super::{Limits, Node, Value, YamlError, parse};

/// The node of a text that must parse to one.
fn node(text: &str) -> Node {
    parse(text, "t.yaml", &Limits::default())
        .unwrap_or_else(|error| panic!("{error}"))
        .expect("a document")
}

/// The value of a text that must parse.
fn value(text: &str) -> Value {
    node(text).into()
}

/// The error of a text that must not parse.
fn error(text: &str) -> YamlError {
    error_with(text, &Limits::default())
}

fn error_with(text: &str, limits: &Limits) -> YamlError {
    match parse(text, "t.yaml", limits) {
        Ok(node) => panic!("parsed: {node:?}"),
        Err(error) => error,
    }
}
