//! Shell glob patterns, the notation [`CopyPlan`](super::entrypoint::CopyPlan) sources are
//! written in: `*`, `?` and `[...]` are wildcards and `\` makes the next character literal.
//!
//! Sources taken from an exec-form entrypoint are escaped, because no shell expands them;
//! sources from `sh -c` keep their unquoted wildcards, as the shell would expand them.

/// Whether `pattern` has an unescaped wildcard, i.e. needs matching rather than a lookup.
pub fn has_wildcards(pattern: &str) -> bool {
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => {
                characters.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// The literal text of a pattern without wildcards: escapes removed.
pub fn unescape(pattern: &str) -> String {
    let mut literal = String::with_capacity(pattern.len());
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => literal.extend(characters.next()),
            other => literal.push(other),
        }
    }
    literal
}

/// A pattern matching exactly `literal`.
pub fn escape(literal: &str) -> String {
    let mut pattern = String::with_capacity(literal.len());
    for character in literal.chars() {
        push_escaped(&mut pattern, character);
    }
    pattern
}

/// Appends `character` to a pattern so that it matches only itself.
pub fn push_escaped(pattern: &mut String, character: char) {
    if matches!(character, '*' | '?' | '[' | ']' | '\\') {
        pattern.push('\\');
    }
    pattern.push(character);
}

/// Whether one path component `name` matches the one-component `pattern`.
/// As in the shell, a leading `.` must be matched literally.
pub fn matches_component(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    if name.first() == Some(&'.') && pattern.first() != Some(&'.') {
        return false;
    }
    matches_from(&pattern, &name)
}

/// Iterative wildcard matching with one backtracking point for the last `*`, which is
/// linear enough for path components (at most 255 bytes in practice, 4096 by our caps).
fn matches_from(pattern: &[char], name: &[char]) -> bool {
    let (mut pattern_index, mut name_index) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while name_index < name.len() {
        if pattern_index < pattern.len() {
            match pattern[pattern_index] {
                '*' => {
                    backtrack = Some((pattern_index + 1, name_index));
                    pattern_index += 1;
                    continue;
                }
                '?' => {
                    pattern_index += 1;
                    name_index += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) =
                        match_bracket(pattern, pattern_index, name[name_index])
                    {
                        if matched {
                            pattern_index = next;
                            name_index += 1;
                            continue;
                        }
                    } else if name[name_index] == '[' {
                        // An unclosed `[` is an ordinary character in the shell.
                        pattern_index += 1;
                        name_index += 1;
                        continue;
                    }
                }
                '\\' if pattern_index + 1 < pattern.len() => {
                    if pattern[pattern_index + 1] == name[name_index] {
                        pattern_index += 2;
                        name_index += 1;
                        continue;
                    }
                }
                literal => {
                    if literal == name[name_index] {
                        pattern_index += 1;
                        name_index += 1;
                        continue;
                    }
                }
            }
        }
        match backtrack {
            Some((star_pattern, star_name)) => {
                pattern_index = star_pattern;
                name_index = star_name + 1;
                backtrack = Some((star_pattern, star_name + 1));
            }
            None => return false,
        }
    }
    pattern[pattern_index..]
        .iter()
        .all(|&character| character == '*')
}

/// Matches `character` against the bracket expression opening at `start`; `None` when
/// the bracket is not closed. Returns whether it matched and the index after `]`.
fn match_bracket(pattern: &[char], start: usize, character: char) -> Option<(bool, usize)> {
    let mut index = start + 1;
    let negated = matches!(pattern.get(index), Some('!' | '^'));
    if negated {
        index += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let current = *pattern.get(index)?;
        if current == ']' && !first {
            return Some((matched != negated, index + 1));
        }
        first = false;
        let low = if current == '\\' {
            index += 1;
            *pattern.get(index)?
        } else {
            current
        };
        index += 1;
        if pattern.get(index) == Some(&'-')
            && pattern.get(index + 1).is_some_and(|&next| next != ']')
        {
            let high = *pattern.get(index + 1)?;
            index += 2;
            matched |= (low..=high).contains(&character);
        } else {
            matched |= low == character;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_escapes() {
        assert!(has_wildcards("/plugins/*"));
        assert!(has_wildcards("/plugins/velero-?"));
        assert!(!has_wildcards(r"/plugins/\*"));
        assert_eq!(unescape(r"/plugins/\*x\\"), r"/plugins/*x\");
        assert_eq!(escape("/a*b[c]"), r"/a\*b\[c\]");
        assert!(!has_wildcards(&escape("/plugins/*")));
    }

    #[test]
    fn component_matching() {
        assert!(matches_component("*", "velero-plugin-for-aws"));
        assert!(!matches_component("*", ".hidden"));
        assert!(matches_component(".*", ".hidden"));
        assert!(matches_component(
            "velero-plugin-*",
            "velero-plugin-for-gcp"
        ));
        assert!(!matches_component("velero-plugin-*", "README"));
        assert!(matches_component("*-for-*", "velero-plugin-for-aws"));
        assert!(matches_component("a?c", "abc"));
        assert!(!matches_component("a?c", "ac"));
        assert!(matches_component("[a-c]x", "bx"));
        assert!(!matches_component("[!a-c]x", "bx"));
        assert!(matches_component("[!a-c]x", "dx"));
        assert!(matches_component(r"\*", "*"));
        assert!(!matches_component(r"\*", "x"));
        assert!(matches_component("[x", "[x"));
        assert!(matches_component("**", ""));
        assert!(!matches_component("*a*a*a*b", &"a".repeat(200)));
    }
}
