//! The tests of the project's former `config/lines.rs` (an index built by a second
//! parse), ported to [`Node::line_of`] and [`Node::literal_start`].

use super::{error, node};
use crate::yaml::{Position, Problem};

/// As in lines.rs, but the complex key `? [complex, key]` is commented out: such keys
/// are now refused (see `complex_keys_are_refused`). Its two lines stay, so the
/// expected lines do too.
const TEXT: &str = "\
spec:
  extensions:
    velero:
      plugins:
        - name: pg
          image: a.com/pg:1
        -
          name: mongo

          image: a.com/mongo:1
  flow: {a: 1, b: [x, y]}
  # ? [complex, key]
  # : ignored
  after: 1
";

#[test]
fn maps_paths_to_lines() {
    let node = node(TEXT);
    for (path, line) in [
        ("", 1),
        ("spec", 1),
        ("spec.extensions.velero.plugins", 4),
        ("spec.extensions.velero.plugins[0]", 5),
        ("spec.extensions.velero.plugins[0].name", 5),
        ("spec.extensions.velero.plugins[0].image", 6),
        ("spec.extensions.velero.plugins[1]", 8),
        ("spec.extensions.velero.plugins[1].name", 8),
        ("spec.extensions.velero.plugins[1].image", 10),
        ("spec.flow.b[1]", 11),
        ("spec.after", 14),
    ] {
        assert_eq!(node.line_of(path), line, "{path}");
    }
    assert_eq!(node.line_of("spec.extensions.velero.plugins[2].name"), 4);
    assert_eq!(node.line_of("spec.complex"), 1);
    assert_eq!(node.line_of("elsewhere"), 1);
}

#[test]
fn complex_keys_are_refused() {
    let refused = error("spec:\n  ? [complex, key]\n  : ignored\n");
    assert_eq!(refused.problem, Problem::NonScalarKey);
    assert_eq!(refused.position, Some(Position { line: 2, column: 5 }));
}

#[test]
fn finds_the_first_line_of_literal_scalars() {
    let node = node("a: |\n  x: 1\nb: |2\n\n\n   y\nc: >\n  folded\nd: \"q\"\n");
    assert_eq!(node.literal_start("a"), Some(2));
    assert_eq!(node.literal_start("b"), Some(4));
    assert_eq!(
        (node.literal_start("c"), node.literal_start("d")),
        (None, None)
    );
    // Only the scalar itself: not a missing path's ancestor, nor the mapping.
    assert_eq!(
        (node.literal_start("a.x"), node.literal_start("")),
        (None, None)
    );
}

#[test]
fn finds_the_first_repeated_key() {
    let refused = error("a:\n  b: 1\n  c: 2\n  b: 3\nc: 4\na: 5\n");
    assert_eq!(refused.position, Some(Position { line: 4, column: 3 }));
    assert_eq!(refused.problem, Problem::DuplicateKey("b".into()));
    node("a: {b: 1}\nb: 1\n");
}

#[test]
fn unreadable_text_is_an_error() {
    let refused = error("a: [1\n");
    assert!(matches!(refused.problem, Problem::Syntax(_)), "{refused}");
    assert_eq!(refused.position.map(|at| at.line), Some(2));
}

#[test]
fn keys_holding_dots_and_brackets() {
    let node = node("labels:\n  velero.io/plugin-config: ''\n  a: {b: 1}\n  a.b: 2\n  x[0]: 3\n");
    assert_eq!(node.line_of("labels.velero.io/plugin-config"), 2);
    // The longest key that fits wins.
    assert_eq!(node.line_of("labels.a.b"), 4);
    assert_eq!(node.line_of("labels.x[0]"), 5);
    assert_eq!(node.line_of("labels.velero"), 1);
}

#[test]
fn root_lists_and_columns() {
    let node = node("# comment\n- a\n-   b: 1\n");
    assert_eq!(node.line_of("[1].b"), 3);
    assert_eq!(node.line_of("[7]"), 2);
    let crate::yaml::NodeValue::Sequence(items) = &node.value else {
        panic!("{node:?}")
    };
    // A block mapping starts at its first key, not at the `:` where yaml-rust2 marks it.
    assert_eq!((items[1].line, items[1].column), (3, 5));
    assert_eq!((node.line, node.column), (2, 1));
}
