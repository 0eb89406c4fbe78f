//! Scalars, collections, anchors, and what is refused.

use super::{error, node, value};
use crate::yaml::{Key, NodeValue, Position, Problem, ScalarStyle, Value, YamlError, parse};

/// The value node of `v:` in `text`.
fn scalar(text: &str) -> crate::yaml::Node {
    let NodeValue::Mapping(mut entries) = node(text).value else {
        panic!("not a mapping: {text}")
    };
    entries.remove(0).1
}

fn float(value: f64, text: &str) -> NodeValue {
    NodeValue::Float {
        value,
        text: text.into(),
    }
}

#[test]
fn plain_scalars_resolve_by_the_core_schema() {
    use NodeValue::{Bool, Integer, Null};
    let string = |text: &str| NodeValue::String(text.into());
    for (text, expected) in [
        ("", Null),
        ("~", Null),
        ("null", Null),
        ("Null", Null),
        ("NULL", Null),
        ("nULL", string("nULL")),
        ("true", Bool(true)),
        ("True", Bool(true)),
        ("TRUE", Bool(true)),
        ("false", Bool(false)),
        ("False", Bool(false)),
        ("FALSE", Bool(false)),
        ("yes", string("yes")),
        ("on", string("on")),
        ("n", string("n")),
        ("0", Integer(0)),
        ("-0", Integer(0)),
        ("+12", Integer(12)),
        ("007", Integer(7)),
        ("-9223372036854775808", Integer(i64::MIN)),
        ("0o17", Integer(15)),
        ("0x1F", Integer(31)),
        ("0xff", Integer(255)),
        ("0o8", string("0o8")),
        ("0x", string("0x")),
        ("-0x1", string("-0x1")),
        ("1_000", string("1_000")),
        ("1.10", float(1.1, "1.10")),
        ("-.5", float(-0.5, "-.5")),
        ("5.", float(5.0, "5.")),
        ("1e3", float(1000.0, "1e3")),
        ("1.5E-2", float(0.015, "1.5E-2")),
        ("+.inf", float(f64::INFINITY, "+.inf")),
        ("-.Inf", float(f64::NEG_INFINITY, "-.Inf")),
        (".INF", float(f64::INFINITY, ".INF")),
        ("1e", string("1e")),
        (".", string(".")),
        ("1.2.3", string("1.2.3")),
        ("inf", string("inf")),
        ("nan", string("nan")),
        ("99999999999999999999", float(1e20, "99999999999999999999")),
        (
            "0x10000000000000000",
            float(18_446_744_073_709_551_616.0, "0x10000000000000000"),
        ),
        ("v1.10", string("v1.10")),
    ] {
        assert_eq!(scalar(&format!("v: {text}\n")).value, expected, "{text:?}");
    }
    let NodeValue::Float { value, text } = scalar("v: .NaN").value else {
        panic!("not a float")
    };
    assert!(value.is_nan());
    assert_eq!(text, ".NaN");
}

#[test]
fn only_plain_scalars_resolve() {
    for text in [
        "'1.10'",
        "\"1.10\"",
        "!!str 1.10",
        "|-\n  1.10",
        ">-\n  1.10",
    ] {
        let node = scalar(&format!("v: {text}\n"));
        assert_eq!(node.value, NodeValue::String("1.10".into()), "{text}");
    }
    assert_eq!(scalar("v: \"\"").value, NodeValue::String(String::new()));
    assert_eq!(scalar("v: !!str").value, NodeValue::String(String::new()));
    assert_eq!(scalar("v: 'true'").style, ScalarStyle::SingleQuoted);
    // A plain float keeps its text, and writes it back.
    let plain = value("v: 1.10\n");
    let Some(Value::Number(number)) = plain.get("v") else {
        panic!("{plain:?}")
    };
    assert_eq!(number.to_string(), "1.10");
    assert_eq!(number.as_f64(), 1.1);
}

#[test]
fn block_scalars() {
    let text = "lit: |\n  a\n   b\n\n  c\n\nkeep: |+\n  k\n\nstrip: |-\n  s\n\nfold: >\n  one\n  two\n\n  three\nfoldstrip: >-\n  f\n";
    let value = value(text);
    for (key, expected) in [
        ("lit", "a\n b\n\nc\n"),
        ("keep", "k\n\n"),
        ("strip", "s"),
        ("fold", "one two\nthree\n"),
        ("foldstrip", "f"),
    ] {
        assert_eq!(
            value.get(key).and_then(Value::as_str),
            Some(expected),
            "{key}"
        );
    }
    let node = node(text);
    assert_eq!(node.literal_start("lit"), Some(2));
    assert_eq!(node.literal_start("keep"), Some(8));
    assert_eq!(node.literal_start("fold"), None);
}

#[test]
fn flow_collections() {
    let value = value("a: {x: 1, y: [true, ~, 'q', {z: 2.50}]}\nb: []\nc: {}\n");
    let json = serde_json::to_string(&value).expect("serialises");
    assert_eq!(
        json,
        r#"{"a":{"x":1,"y":[true,null,"q",{"z":2.5}]},"b":[],"c":{}}"#
    );
}

#[test]
fn positions_of_nodes_and_keys() {
    let node = node("a:\n  bb: 'x'\n  cc: [1, 2]\n");
    let NodeValue::Mapping(entries) = &node.value else {
        panic!("{node:?}")
    };
    let NodeValue::Mapping(inner) = &entries[0].1.value else {
        panic!("{node:?}")
    };
    let (key, value) = &inner[1];
    let key_at = Key {
        text: "cc".into(),
        line: 3,
        column: 3,
    };
    assert_eq!(key, &key_at);
    assert_eq!((value.line, value.column), (3, 7));
    let (_, quoted) = &inner[0];
    assert_eq!(
        (quoted.line, quoted.column, quoted.style),
        (2, 7, ScalarStyle::SingleQuoted)
    );
    // Non-string keys keep their text.
    let node = value_keys("1: a\ntrue: b\n~: c\n0x1F: d\n'q': e\n");
    assert_eq!(node, ["1", "true", "~", "0x1F", "q"]);
}

fn value_keys(text: &str) -> Vec<String> {
    let value = value(text);
    value
        .as_mapping()
        .expect("a mapping")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn anchors_and_aliases_are_copied() {
    let text = "base: &b {image: x, tags: [1, 2]}\nname: &n pg\nuses:\n  - *b\n  - *n\n*n : 3\n";
    let value = value(text);
    let base = value.get("base").expect("base");
    assert_eq!(value.get("uses").and_then(|uses| uses.get(0)), Some(base));
    assert_eq!(
        value.get("uses").and_then(|uses| uses.get(1)),
        Some(&Value::from("pg"))
    );
    assert_eq!(value.get("pg"), Some(&Value::from(3)));
    // A copy keeps the positions of the original.
    let node = node(text);
    assert_eq!(node.line_of("uses[0].tags"), 1);
    // An anchor may be redefined; aliases take the latest.
    let value = super::value("- &a 1\n- *a\n- &a [2]\n- *a\n");
    assert_eq!(value, super::value("[1, 1, [2], [2]]"));
    // Merge keys are ordinary keys.
    let value = super::value("base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n");
    assert_eq!(value.get("m").and_then(|m| m.get("<<")), value.get("base"));
}

#[test]
fn alias_within_its_own_anchor_is_refused() {
    let refused = error("a: &a [1, *a]\n");
    assert_eq!(refused.problem, Problem::RecursiveAlias);
    assert_eq!(
        refused.position,
        Some(Position {
            line: 1,
            column: 11
        })
    );
    assert_eq!(error("a: &a {b: *a}\n").problem, Problem::RecursiveAlias);
    assert_eq!(
        error("a: *x\n").problem,
        Problem::Syntax("while parsing node, found unknown anchor".into())
    );
}

#[test]
fn collection_aliases_as_keys_are_refused() {
    let refused = error("a: &a [1]\n*a : 2\n");
    assert_eq!(refused.problem, Problem::NonScalarKey);
    assert_eq!(refused.position, Some(Position { line: 2, column: 1 }));
}

#[test]
fn duplicate_keys_are_refused_at_the_repeat() {
    let refused = error("a: 1\nb:\n  c: 1\n  'c': 2\n");
    assert_eq!(refused.to_string(), "t.yaml:4:3: duplicate key \"c\"");
    assert_eq!(
        error("{x: 1, x: 2}").position,
        Some(Position { line: 1, column: 8 })
    );
    // An alias repeating a key counts too.
    assert_eq!(
        error("a: &k x\nx: 1\n*k : 2\n").problem,
        Problem::DuplicateKey("x".into())
    );
    // A huge key is shortened in the message.
    let long = "k".repeat(1000);
    let refused = error(&format!("{long}: 1\n{long}: 2\n"));
    assert_eq!(
        refused.problem,
        Problem::DuplicateKey(format!("{}…", &long[..64]))
    );
}

#[test]
fn one_document_only() {
    let refused = error("a: 1\n---\nb: 2\n");
    assert_eq!(
        refused.to_string(),
        "t.yaml:2:1: holds more than one YAML document"
    );
    assert_eq!(
        super::error("---\n---\n").problem,
        Problem::MultipleDocuments
    );
    // A second document is refused before its syntax is read.
    assert_eq!(
        super::error("a: 1\n---\nb: [").problem,
        Problem::MultipleDocuments
    );
    assert_eq!(value("---\na: 1\n...\n"), value("a: 1"));
}

#[test]
fn empty_texts() {
    let limits = crate::yaml::Limits::default();
    for text in ["", "\n\n", "# only a comment\n", "..."] {
        assert_eq!(parse(text, "t.yaml", &limits), Ok(None), "{text:?}");
    }
    assert_eq!(value("---\n"), Value::Null);
    assert_eq!(
        crate::yaml::parse_value("", "t.yaml", &limits),
        Ok(Value::Null)
    );
}

#[test]
fn tags_other_than_str_are_refused() {
    for (text, tag) in [
        ("a: !!int 1", "!!int"),
        ("a: !foo x", "!foo"),
        ("a: ! x", "!"),
        ("a: !!str [x]", "!!str"),
        ("a: !!map {}", "!!map"),
    ] {
        let refused: YamlError = error(text);
        assert_eq!(refused.problem, Problem::Tag(tag.into()), "{text}");
        assert_eq!(refused.position.map(|at| at.line), Some(1));
    }
    assert_eq!(
        error("a: !x 1").to_string(),
        "t.yaml:1:7: tags are not supported (found !x)"
    );
}

#[test]
fn type_names() {
    let node = node("[~, true, 1, 1.5, s, [], {}]");
    let NodeValue::Sequence(items) = &node.value else {
        panic!("{node:?}")
    };
    let names: Vec<_> = items.iter().map(crate::yaml::Node::type_name).collect();
    let expected = [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "a list",
        "a mapping",
    ];
    assert_eq!(names, expected);
    let value = node.to_value();
    let names: Vec<_> = value
        .as_sequence()
        .into_iter()
        .flatten()
        .map(Value::type_name)
        .collect();
    assert_eq!(names, expected);
}
