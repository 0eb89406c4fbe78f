//! Hostile inputs are refused by the limits, each at the first violation.

use super::{error, error_with, node};
use crate::yaml::{Limits, Position, Problem, parse};

fn limits(max_depth: usize, max_nodes: usize, max_expanded_bytes: usize) -> Limits {
    Limits {
        max_bytes: 1 << 20,
        max_depth,
        max_nodes,
        max_expanded_bytes,
    }
}

/// Each limit holds exactly: at the limit is accepted, one past it is refused.
#[test]
fn limits_are_exact() {
    let defaults = Limits::default();
    assert_eq!(
        (defaults.max_bytes, defaults.max_depth, defaults.max_nodes),
        (1 << 20, 64, 100_000)
    );
    assert_eq!(defaults.max_expanded_bytes, 4 << 20);

    let tight = limits(3, 1000, 1000);
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(parse(&nested(3), "t.yaml", &tight).is_ok());
    let refused = error_with(&nested(4), &tight);
    assert_eq!(
        refused.to_string(),
        "t.yaml:1:4: nesting deeper than 3 levels"
    );

    // `[a, b]` is 3 nodes; a mapping's keys count as nodes too.
    assert!(parse("[a, b]", "t.yaml", &limits(8, 3, 1000)).is_ok());
    assert_eq!(
        error_with("[a, b, c]", &limits(8, 3, 1000)).problem,
        Problem::TooManyNodes(3)
    );
    assert_eq!(
        error_with("{a: b}", &limits(8, 2, 1000)).problem,
        Problem::TooManyNodes(2)
    );

    // Keys' bytes count too.
    assert!(parse("abc: de", "t.yaml", &limits(8, 10, 5)).is_ok());
    let refused = error_with("abc: def", &limits(8, 10, 5));
    assert_eq!(
        refused.to_string(),
        "t.yaml:1:6: more than 5 bytes of scalars (aliases counted as expanded)"
    );

    let size = Limits {
        max_bytes: 4,
        ..Limits::default()
    };
    assert!(parse("a: 1", "t.yaml", &size).is_ok());
    let refused = error_with("a: 10", &size);
    assert_eq!(refused.position, None);
    assert_eq!(refused.to_string(), "t.yaml: larger than 4 bytes (5 bytes)");
}

/// Every node an alias expands to counts again, scalar bytes too, and a copy's depth
/// adds to where it is placed.
#[test]
fn aliases_count_as_expanded() {
    // 1 + (1 + 2) + 3 + 3 = 10 nodes: the list, `- &a [x, y]`, and two copies.
    let text = "- &a [x, y]\n- *a\n- *a\n";
    assert!(parse(text, "t.yaml", &limits(8, 10, 1000)).is_ok());
    assert_eq!(
        error_with(text, &limits(8, 9, 1000)).problem,
        Problem::TooManyNodes(9)
    );
    assert!(parse(text, "t.yaml", &limits(8, 100, 6)).is_ok());
    let refused = error_with(text, &limits(8, 100, 5));
    assert_eq!(refused.position, Some(Position { line: 3, column: 3 }));

    let text = "- &a [[x]]\n- [*a]\n";
    assert!(parse(text, "t.yaml", &limits(4, 100, 100)).is_ok());
    let refused = error_with(text, &limits(3, 100, 100));
    assert_eq!(
        refused.to_string(),
        "t.yaml:2:4: nesting deeper than 3 levels"
    );
}

#[test]
fn billion_laughs_is_refused() {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=9 {
        let items = vec![format!("*a{}", level - 1); 9].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    let refused = error(&text);
    assert_eq!(refused.problem, Problem::TooManyNodes(100_000));
    // 9^5 nodes already pass the limit at level 5.
    assert_eq!(refused.position.map(|at| at.line), Some(6));
    let refused = error_with(&text, &limits(64, usize::MAX, 4 << 20));
    assert_eq!(refused.problem, Problem::TooManyBytes(4 << 20));
}

#[test]
fn big_scalar_aliased_many_times_is_refused() {
    let scalar = "x".repeat((1 << 20) - 60_000);
    let mut text = format!("- &a {scalar}\n");
    text.push_str(&"- *a\n".repeat(10_000));
    assert!(text.len() <= 1 << 20);
    let refused = error(&text);
    assert_eq!(refused.problem, Problem::TooManyBytes(4 << 20));
    // The original and three copies fit in 4 MiB; the fourth copy does not.
    assert_eq!(refused.position, Some(Position { line: 5, column: 3 }));
}

#[test]
fn deep_nesting_is_refused() {
    let refused = error(&"[".repeat(100_000));
    assert_eq!(refused.problem, Problem::TooDeep(64));
    let refused = error(&format!("a: {}", "[".repeat(100)));
    assert_eq!(
        refused.to_string(),
        "t.yaml:1:67: nesting deeper than 64 levels"
    );
    let refused = error(&"- ".repeat(100_000));
    assert_eq!(
        refused.to_string(),
        "t.yaml:1:129: nesting deeper than 64 levels"
    );
    // Two spaces a level: the deepest that fits in 1 MiB is about 1000 levels.
    let mapping: String = (0..1000)
        .map(|depth| format!("{}a:\n", "  ".repeat(depth)))
        .collect();
    let refused = error(&mapping);
    assert_eq!(
        refused.to_string(),
        "t.yaml:65:130: nesting deeper than 64 levels"
    );
    // yaml-rust2's scanner reads ahead into a flow collection that could be a key, and
    // refuses flow nesting past 255 levels itself; that is reported as too deep as well.
    let refused = error(&"{a: ".repeat(100_000));
    assert_eq!(refused.problem, Problem::TooDeep(64));
    // 64 levels are fine.
    let text = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert_eq!(node(&text).line_of("[0]"), 1);
}

#[test]
fn large_text_is_refused_before_parsing() {
    // Not YAML at all: the size is checked first.
    let text = format!("[{}", "x".repeat(1 << 20));
    let refused = error(&text);
    assert_eq!(
        refused.problem,
        Problem::TooLarge {
            limit: 1 << 20,
            size: (1 << 20) + 1
        }
    );
}
