//! A plain YAML value without positions, for building and changing values (merge patch,
//! rendering): the subset of `serde_yaml_ng::Value` the project used.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

pub use super::mapping::Mapping;

/// A YAML value. Mappings have string keys and keep their insertion order.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer or a float.
    Number(Number),
    String(String),
    Sequence(Vec<Value>),
    /// A mapping with string keys, in insertion order.
    Mapping(Mapping),
}

/// A number: an exact i64, or a float that remembers its text when it was read from
/// YAML, so that `1.10` is written back as `1.10`.
#[derive(Debug, Clone)]
pub struct Number(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Integer(i64),
    Float { value: f64, text: Option<Box<str>> },
}

impl Number {
    /// A float read from `text`, which is what [`Display`](fmt::Display) writes back.
    pub(super) fn written(value: f64, text: String) -> Self {
        Self(Repr::Float {
            value,
            text: Some(text.into_boxed_str()),
        })
    }

    /// The integer, when the number is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Integer(value) => Some(value),
            Repr::Float { .. } => None,
        }
    }

    /// The number as a float (integers converted, possibly rounding).
    pub fn as_f64(&self) -> f64 {
        match self.0 {
            // Rounding beyond 2^53 is what a float conversion means.
            Repr::Integer(value) => value as f64,
            Repr::Float { value, .. } => value,
        }
    }

    /// Whether the number is a float rather than an integer.
    pub fn is_f64(&self) -> bool {
        matches!(self.0, Repr::Float { .. })
    }
}

impl From<i64> for Number {
    fn from(value: i64) -> Self {
        Self(Repr::Integer(value))
    }
}

impl From<f64> for Number {
    fn from(value: f64) -> Self {
        Self(Repr::Float { value, text: None })
    }
}

/// Integers equal integers and floats equal floats by value (the text does not count;
/// NaN equals NaN so that a value equals its copy); `1` and `1.0` differ.
impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Integer(a), Repr::Integer(b)) => a == b,
            (Repr::Float { value: a, .. }, Repr::Float { value: b, .. }) => {
                a == b || (a.is_nan() && b.is_nan())
            }
            _ => false,
        }
    }
}

/// The text a float was read from; else YAML's spelling: `.nan`, `.inf`, `-.inf`, or a
/// decimal that always reads back as a float (`1.0`, not `1`).
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Integer(value) => write!(f, "{value}"),
            Repr::Float {
                text: Some(text), ..
            } => f.write_str(text),
            Repr::Float { value, .. } if value.is_nan() => f.write_str(".nan"),
            Repr::Float { value, .. } if value.is_infinite() => {
                f.write_str(if *value > 0.0 { ".inf" } else { "-.inf" })
            }
            // Debug keeps the `.0` that Display drops.
            Repr::Float { value, .. } => write!(f, "{value:?}"),
        }
    }
}

impl Value {
    /// How the value's type is named in messages: "null", "a boolean", "a number",
    /// "a string", "a list" or "a mapping".
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }

    /// The member of a mapping (`value.get("key")`) or item of a list (`value.get(1)`).
    pub fn get<I: ValueIndex>(&self, index: I) -> Option<&Value> {
        index.index_into(self)
    }

    /// Like [`Value::get`], mutable.
    pub fn get_mut<I: ValueIndex>(&mut self, index: I) -> Option<&mut Value> {
        index.index_into_mut(self)
    }

    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The boolean, when the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The integer, when the value is a number that is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(number) => number.as_i64(),
            _ => None,
        }
    }

    /// The mapping, when the value is one.
    pub fn as_mapping(&self) -> Option<&Mapping> {
        match self {
            Value::Mapping(mapping) => Some(mapping),
            _ => None,
        }
    }

    /// The mapping, mutable, when the value is one.
    pub fn as_mapping_mut(&mut self) -> Option<&mut Mapping> {
        match self {
            Value::Mapping(mapping) => Some(mapping),
            _ => None,
        }
    }

    /// The list, when the value is one.
    pub fn as_sequence(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// The list, mutable, when the value is one.
    pub fn as_sequence_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether the value is a mapping.
    pub fn is_mapping(&self) -> bool {
        matches!(self, Value::Mapping(_))
    }

    /// Whether the value is a list.
    pub fn is_sequence(&self) -> bool {
        matches!(self, Value::Sequence(_))
    }

    /// Whether the value is a string.
    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    /// The value as JSON, for `serde_json::from_value::<T>()` into typed structs.
    ///
    /// Mappings keep their order only when serde_json's `preserve_order` feature is on;
    /// this crate does not turn it on (the project's manifests rely on serde_json's sorted
    /// maps). Serialise the [`Value`] itself for ordered output. Floats JSON cannot hold
    /// (NaN, infinities) become `null`, as serde_json does.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(value) => serde_json::Value::Bool(*value),
            Value::Number(number) => match number.as_i64() {
                Some(value) => serde_json::Value::from(value),
                None => serde_json::Number::from_f64(number.as_f64())
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
            },
            Value::String(text) => serde_json::Value::String(text.clone()),
            Value::Sequence(items) => items.iter().map(Value::to_json).collect(),
            Value::Mapping(mapping) => serde_json::Value::Object(
                mapping
                    .iter()
                    .map(|(key, value)| (key.clone(), value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// What [`Value::get`] takes: a key (`&str`, `String`) or a list index (`usize`).
pub trait ValueIndex {
    /// The member or item of `value` this names, if any.
    fn index_into<'v>(&self, value: &'v Value) -> Option<&'v Value>;
    /// Like `index_into`, mutable.
    fn index_into_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value>;
}

impl ValueIndex for usize {
    fn index_into<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        value.as_sequence()?.get(*self)
    }

    fn index_into_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        value.as_sequence_mut()?.get_mut(*self)
    }
}

impl ValueIndex for str {
    fn index_into<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        value.as_mapping()?.get(self)
    }

    fn index_into_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        value.as_mapping_mut()?.get_mut(self)
    }
}

impl ValueIndex for String {
    fn index_into<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.as_str().index_into(value)
    }

    fn index_into_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        self.as_str().index_into_mut(value)
    }
}

impl<T: ValueIndex + ?Sized> ValueIndex for &T {
    fn index_into<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        (**self).index_into(value)
    }

    fn index_into_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        (**self).index_into_mut(value)
    }
}

/// `value["key"]` and `value[0]`: the child, or null when there is none, so lookups chain
/// (`values["image"]["tag"]`) as they do on `serde_json::Value`.
impl<I: ValueIndex> std::ops::Index<I> for Value {
    type Output = Value;

    fn index(&self, index: I) -> &Value {
        static NULL: Value = Value::Null;
        self.get(index).unwrap_or(&NULL)
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::String(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::String(text)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Number(Number::from(value))
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Number(Number::from(value))
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Sequence(items)
    }
}

impl From<Mapping> for Value {
    fn from(mapping: Mapping) -> Self {
        Value::Mapping(mapping)
    }
}

/// Serialises in mapping order, whatever the serializer's own map type does.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(value) => serializer.serialize_bool(*value),
            Value::Number(number) => match number.as_i64() {
                Some(value) => serializer.serialize_i64(value),
                None => serializer.serialize_f64(number.as_f64()),
            },
            Value::String(text) => serializer.serialize_str(text),
            Value::Sequence(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Mapping(mapping) => {
                let mut map = serializer.serialize_map(Some(mapping.len()))?;
                for (key, value) in mapping {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}
