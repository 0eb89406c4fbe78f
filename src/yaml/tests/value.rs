//! The plain value: mappings, numbers, conversions.

use super::value;
use crate::yaml::{Mapping, Number, Value};

fn keys(mapping: &Mapping) -> Vec<&str> {
    mapping.keys().map(String::as_str).collect()
}

#[test]
fn mappings_keep_insertion_order() {
    let mut mapping: Mapping = [("b", 1), ("a", 2), ("c", 3)]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), Value::from(value)))
        .collect();
    assert_eq!(
        mapping.insert("a".into(), Value::from(9)),
        Some(Value::from(2))
    );
    assert_eq!(mapping.insert("d".into(), Value::Null), None);
    assert_eq!(keys(&mapping), ["b", "a", "c", "d"]);
    assert_eq!(mapping.remove("a"), Some(Value::from(9)));
    assert_eq!(mapping.remove("a"), None);
    assert_eq!(keys(&mapping), ["b", "c", "d"]);
    assert_eq!(
        (
            mapping.len(),
            mapping.contains_key("a"),
            mapping.contains_key("c")
        ),
        (3, false, true)
    );
    *mapping.entry("c".into()).or_insert(Value::Null) = Value::from("x");
    *mapping.entry("e".into()).or_insert(Value::Null) = Value::from("y");
    assert_eq!(keys(&mapping), ["b", "c", "d", "e"]);
    assert_eq!(mapping.get("c").and_then(Value::as_str), Some("x"));
    for (_, value) in &mut mapping {
        *value = Value::Bool(true);
    }
    assert!(mapping.values().all(|value| value.as_bool() == Some(true)));
    let owned: Vec<String> = mapping.clone().into_iter().map(|(key, _)| key).collect();
    assert_eq!(owned, ["b", "c", "d", "e"]);
    assert_eq!(
        format!("{mapping:?}"),
        r#"{"b": Bool(true), "c": Bool(true), "d": Bool(true), "e": Bool(true)}"#
    );
}

/// Removing most keys compacts the tombstones; order and lookups survive it.
#[test]
fn many_removals_keep_order() {
    let mut mapping = Mapping::new();
    for index in 0..1000 {
        mapping.insert(format!("k{index}"), Value::from(index));
    }
    for index in (0..1000).filter(|index| index % 10 != 0) {
        mapping.remove(&format!("k{index}"));
    }
    let expected: Vec<String> = (0..100).map(|index| format!("k{}", index * 10)).collect();
    assert_eq!(keys(&mapping), expected);
    assert_eq!(mapping.get("k990"), Some(&Value::from(990)));
    mapping.insert("k5".into(), Value::Null);
    assert_eq!(keys(&mapping).last(), Some(&"k5"));
    assert!(!mapping.is_empty());
}

#[test]
fn equality_ignores_mapping_order() {
    assert_eq!(value("{a: 1, b: [x]}"), value("{b: [x], a: 1}"));
    assert_ne!(value("{a: 1}"), value("{a: 1.0}"));
    assert_ne!(value("{a: 1}"), value("{a: 1, b: 2}"));
    assert_eq!(value("a: 1.10"), value("a: 1.1"));
    assert_eq!(value("a: .nan"), value("a: .NaN"));
}

#[test]
fn numbers_print_as_written_or_as_yaml_floats() {
    let printed: Vec<String> = ["1.10", "1e3", "-.inf", "99999999999999999999", "0x1F", "+7"]
        .iter()
        .map(|text| {
            value(&format!("v: {text}")).get("v").map(|v| match v {
                Value::Number(number) => number.to_string(),
                other => panic!("{other:?}"),
            })
        })
        .map(Option::unwrap_or_default)
        .collect();
    assert_eq!(
        printed,
        ["1.10", "1e3", "-.inf", "99999999999999999999", "31", "7"]
    );
    let made: Vec<String> = [1.0, 0.5, f64::NAN, f64::NEG_INFINITY, 1e300]
        .into_iter()
        .map(|value| Number::from(value).to_string())
        .collect();
    assert_eq!(made, ["1.0", "0.5", ".nan", "-.inf", "1e300"]);
    assert_eq!(Number::from(3).as_i64(), Some(3));
    assert!(Number::from(3.0).is_f64() && !Number::from(3).is_f64());
}

#[test]
fn accessors_and_indexing() {
    let mut value = value("a: {b: [x, 2, true]}\nn: ~\n");
    let list = value.get("a").and_then(|a| a.get("b")).expect("list");
    assert_eq!(list.get(0).and_then(Value::as_str), Some("x"));
    assert_eq!(list.get(1).and_then(Value::as_i64), Some(2));
    assert_eq!(list.get(2).and_then(Value::as_bool), Some(true));
    assert_eq!(list.get(3), None);
    assert!(value.get("n").is_some_and(Value::is_null));
    assert!(value.get("a").is_some_and(Value::is_mapping));
    assert!(
        value
            .get("a")
            .and_then(|a| a.get("b"))
            .is_some_and(Value::is_sequence)
    );
    assert!(list.get(0).is_some_and(Value::is_string));
    let key = String::from("a");
    if let Some(items) = value
        .get_mut(&key)
        .and_then(|a| a.get_mut("b"))
        .and_then(Value::as_sequence_mut)
    {
        items.push(Value::from("y"));
    }
    if let Some(mapping) = value.as_mapping_mut() {
        mapping.remove("n");
    }
    assert_eq!(value, super::value("a: {b: [x, 2, true, y]}"));
}

#[test]
fn json_for_typed_structs() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Plugin {
        name: String,
        port: i64,
        ratio: f64,
        tags: Vec<String>,
    }
    let value = value("name: pg\nport: 5432\nratio: 1.50\ntags: [a, '1.10']\nextra: .inf\n");
    let json = value.to_json();
    assert_eq!(json["extra"], serde_json::Value::Null);
    let plugin: Plugin = serde_json::from_value(json).expect("a plugin");
    assert_eq!(
        plugin,
        Plugin {
            name: "pg".into(),
            port: 5432,
            ratio: 1.5,
            tags: vec!["a".into(), "1.10".into()],
        }
    );
}

#[test]
fn serialising_keeps_mapping_order() {
    let value = value("z: 1\na: [2, {y: 3, b: null}]\n");
    let json = serde_json::to_string(&value).expect("serialises");
    assert_eq!(json, r#"{"z":1,"a":[2,{"y":3,"b":null}]}"#);
}
