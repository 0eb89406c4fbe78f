//! Resolution of plain scalars by the YAML 1.2 core schema: `null`, booleans, integers
//! and floats. Quoted and block scalars never come here; they are always strings.

use super::node::NodeValue;

/// The value a plain scalar's text stands for.
pub(super) fn resolve_plain(text: String) -> NodeValue {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return float(f64::INFINITY, text);
        }
        "-.inf" | "-.Inf" | "-.INF" => return float(f64::NEG_INFINITY, text),
        ".nan" | ".NaN" | ".NAN" => return float(f64::NAN, text),
        _ => {}
    }
    for (prefix, radix) in [("0o", 8), ("0x", 16)] {
        if let Some(digits) = text.strip_prefix(prefix)
            && !digits.is_empty()
            && digits.chars().all(|c| c.is_digit(radix))
        {
            return match i64::from_str_radix(digits, radix) {
                Ok(value) => NodeValue::Integer(value),
                Err(_) => float(approximate(digits, radix), text),
            };
        }
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(&text);
    if is_digits(unsigned) {
        return match text.parse::<i64>() {
            Ok(value) => NodeValue::Integer(value),
            // Too large for i64: still a number; the text is kept, so nothing is lost.
            Err(_) => match text.parse::<f64>() {
                Ok(value) => float(value, text),
                Err(_) => NodeValue::String(text),
            },
        };
    }
    if is_float(unsigned) {
        // The grammar was checked above: Rust's parser also takes `inf` or `nan`.
        if let Ok(value) = text.parse::<f64>() {
            return float(value, text);
        }
    }
    NodeValue::String(text)
}

fn float(value: f64, text: String) -> NodeValue {
    NodeValue::Float { value, text }
}

/// The value of digits too many for i64, as a float (the text is kept beside it).
fn approximate(digits: &str, radix: u32) -> f64 {
    digits
        .chars()
        .filter_map(|c| c.to_digit(radix))
        .fold(0.0, |acc, digit| acc * f64::from(radix) + f64::from(digit))
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, the core schema's float without sign.
fn is_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (text, None),
    };
    let mantissa = match mantissa.split_once('.') {
        Some(("", fraction)) => is_digits(fraction),
        Some((whole, fraction)) => is_digits(whole) && fraction.bytes().all(|b| b.is_ascii_digit()),
        None => is_digits(mantissa),
    };
    mantissa
        && exponent
            .is_none_or(|exponent| is_digits(exponent.strip_prefix(['-', '+']).unwrap_or(exponent)))
}
