//! Deterministic YAML output for rendered values.
//!
//! We write YAML ourselves instead of trusting a serializer's quoting rules:
//! every string is double-quoted, so an image tag like `1.10` can never turn into
//! the number 1.1 (which the Velero chart's schema refuses), and the bytes depend
//! only on the value, not on a library version.

use crate::yaml::Value;
use std::fmt::Write;

/// Renders `value` as block-style YAML, keys in mapping order, strings quoted.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Mapping(m) if !m.is_empty() => write_mapping(&mut out, m, 0, false),
        Value::Sequence(s) if !s.is_empty() => write_sequence(&mut out, s, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// `after_dash`: the mapping is a sequence item, its first key already sits
/// after "- ".
fn write_mapping(
    out: &mut String,
    mapping: &crate::yaml::Mapping,
    indent: usize,
    after_dash: bool,
) {
    for (i, (key, value)) in mapping.iter().enumerate() {
        if i > 0 || !after_dash {
            pad(out, indent);
        }
        out.push_str(&key_text(key));
        out.push(':');
        write_nested(out, value, indent);
    }
}

fn write_sequence(out: &mut String, sequence: &[Value], indent: usize) {
    for item in sequence {
        pad(out, indent);
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                out.push_str("- ");
                write_mapping(out, m, indent + 2, true);
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push_str("-\n");
                write_sequence(out, s, indent + 2);
            }
            other => {
                out.push_str("- ");
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// Writes what follows `key:`: a scalar on the same line, a collection below.
fn write_nested(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            write_mapping(out, m, indent + 2, false);
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            write_sequence(out, s, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Mapping(_) => "{}".into(),
        Value::Sequence(_) => "[]".into(),
    }
}

/// A key stays plain when YAML cannot read it as anything but that string.
fn key_text(key: &str) -> String {
    if is_plain_safe(key) {
        key.to_owned()
    } else {
        quoted(key)
    }
}

fn is_plain_safe(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~",
    ];
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

/// Double-quoted YAML scalar; JSON's escapes are a subset of YAML's.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> String {
        let value: Value = crate::yaml::from_str(text).unwrap();
        let out = to_yaml(&value);
        let back: Value = crate::yaml::from_str(&out).unwrap();
        assert_eq!(back, value, "output did not read back the same:\n{out}");
        out
    }

    #[test]
    fn quotes_every_string_and_keeps_numbers() {
        let out = roundtrip("image:\n  tag: '1.10'\n  n: 3\n  on: true\n");
        // YAML 1.1 readers take `n` and `on` as booleans: such keys are quoted.
        assert_eq!(out, "image:\n  tag: \"1.10\"\n  \"n\": 3\n  \"on\": true\n");
    }

    #[test]
    fn lists_of_mappings_and_nested_lists() {
        let out = roundtrip(
            "initContainers:\n- name: a\n  volumeMounts:\n  - mountPath: /target\n    name: plugins\n- [1, 2]\n- []\n- {}\n",
        );
        assert_eq!(
            out,
            "initContainers:\n  - name: \"a\"\n    volumeMounts:\n      - mountPath: \"/target\"\n        name: \"plugins\"\n  -\n    - 1\n    - 2\n  - []\n  - {}\n"
        );
    }

    #[test]
    fn awkward_keys_and_strings() {
        roundtrip("'velero.io/plugin-config': ''\n'yes': 'a \"b\" \\ c\n d'\n'1': x\n'': e\n");
    }
}
