//! RFC 7386 JSON merge patch over YAML values: how Embedded Cluster applies
//! `unsupportedOverrides.builtInExtensions[].values` on top of the rendered values.
//!
//! Arrays are replaced whole and `null` deletes a key, so an override that sets
//! `initContainers` drops every plugin the renderer injected: validate warns.

use crate::yaml::{Mapping, Value};

/// Applies `patch` to `target` in place, as RFC 7386 section 2 defines it.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Mapping(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_mapping() {
        *target = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(target) = target else {
        unreachable!("target was made a mapping above")
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            let slot = target.entry(key.clone()).or_insert(Value::Null);
            merge_patch(slot, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        crate::yaml::from_str(text).unwrap()
    }

    fn check(original: &str, patch: &str, expected: &str) {
        let mut target = yaml(original);
        merge_patch(&mut target, &yaml(patch));
        assert_eq!(target, yaml(expected), "{original} + {patch}");
    }

    /// The test cases of RFC 7386 Appendix A, in JSON (which is YAML).
    #[test]
    fn rfc7386_appendix_a() {
        check(r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#);
        check(r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#);
        check(r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#);
        check(r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#);
        check(r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#);
        check(r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#);
        check(
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":{"b":"d","c":null}}"#,
            r#"{"a":{"b":"d"}}"#,
        );
        check(r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#);
        check(r#"["a","b"]"#, r#"["c","d"]"#, r#"["c","d"]"#);
        check(r#"{"a":"b"}"#, r#"["c"]"#, r#"["c"]"#);
        check(r#"{"a":"foo"}"#, "null", "null");
        check(r#"{"a":"foo"}"#, r#""bar""#, r#""bar""#);
        check(r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#);
        check(r#"[1,2]"#, r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#);
        check(
            r#"{}"#,
            r#"{"a":{"bb":{"ccc":null}}}"#,
            r#"{"a":{"bb":{}}}"#,
        );
    }

    #[test]
    fn keeps_key_order_and_appends_new_keys() {
        let mut target = yaml("b: 1\na: 2\n");
        merge_patch(&mut target, &yaml("a: 3\nc: 4\n"));
        let keys: Vec<_> = target
            .as_mapping()
            .unwrap()
            .keys()
            .map(std::string::ToString::to_string)
            .collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }
}
