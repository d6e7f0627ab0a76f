//! Comparing a found record's value with a constant or a row value, and the text a look-up key
//! is matched by.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::config::CompareOp;

/// Whether `actual` (the record's value; `None` when the record lacks the field) relates to
/// `expected` as `op` says. See [`super::Comparison`] for the rules.
pub(crate) fn holds(op: CompareOp, actual: Option<&Value>, expected: &Value) -> bool {
    let actual = actual.unwrap_or(&Value::Null);
    match op {
        CompareOp::Eq => equal(actual, expected),
        CompareOp::Ne => !equal(actual, expected),
        CompareOp::In => list(expected).iter().any(|e| equal(actual, e)),
        CompareOp::NotIn => !list(expected).iter().any(|e| equal(actual, e)),
        CompareOp::Gt => order(actual, expected) == Some(Ordering::Greater),
        CompareOp::Gte => {
            matches!(order(actual, expected), Some(Ordering::Greater | Ordering::Equal))
        }
        CompareOp::Lt => order(actual, expected) == Some(Ordering::Less),
        CompareOp::Lte => matches!(order(actual, expected), Some(Ordering::Less | Ordering::Equal)),
    }
}

fn list(value: &Value) -> &[Value] {
    match value {
        Value::Array(values) => values,
        other => std::slice::from_ref(other),
    }
}

/// JSON equality, except that numbers compare by value and a number equals a text holding it.
fn equal(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) if a.is_number() || b.is_number() => x == y,
        _ => a == b,
    }
}

/// Numbers by value (also against a text holding a number), text by characters; else none.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ if a.is_number() || b.is_number() => number(a)?.partial_cmp(&number(b)?),
        _ => None,
    }
}

/// A number, or a text holding one.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// The text a look-up value is matched by: text as it is, a number in its shortest form
/// (`42`, `42.5`; `42.0` is `42`), a boolean as `true`/`false`; `None` for a list or an
/// object. A record found by the API is matched back to the rows that asked for it by this text.
pub(crate) fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn number_text(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        // Integral and exactly representable: print it as an integer.
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_is_json_equality_with_numbers_by_value() {
        assert!(holds(CompareOp::Eq, Some(&json!("active")), &json!("active")));
        assert!(!holds(CompareOp::Eq, Some(&json!("Active")), &json!("active")));
        assert!(holds(CompareOp::Eq, Some(&json!(1)), &json!(1.0)));
        assert!(holds(CompareOp::Eq, Some(&json!("42")), &json!(42)));
        assert!(!holds(CompareOp::Eq, Some(&json!(true)), &json!("true")));
        assert!(holds(CompareOp::Eq, None, &json!(null)));
        assert!(holds(CompareOp::Ne, None, &json!("active")));
        assert!(!holds(CompareOp::Ne, Some(&json!("x")), &json!("x")));
    }

    #[test]
    fn ordering_compares_numbers_and_text_never_across_other_types() {
        assert!(holds(CompareOp::Gte, Some(&json!("2026-12-31")), &json!("2026-06-01")));
        assert!(holds(CompareOp::Gte, Some(&json!("2026-06-01")), &json!("2026-06-01")));
        assert!(!holds(CompareOp::Gt, Some(&json!("2026-06-01")), &json!("2026-06-01")));
        assert!(holds(CompareOp::Lt, Some(&json!("2025-12-31")), &json!("2026-01-01")));
        assert!(holds(CompareOp::Lte, Some(&json!(9)), &json!(10)));
        assert!(holds(CompareOp::Gt, Some(&json!("10")), &json!(9)));
        assert!(!holds(CompareOp::Gt, Some(&json!(true)), &json!(0)));
        assert!(!holds(CompareOp::Gte, None, &json!("2026-01-01")));
        assert!(!holds(CompareOp::Lt, Some(&json!(null)), &json!(5)));
    }

    #[test]
    fn in_and_not_in_take_a_list() {
        let allowed = json!(["active", "pending"]);
        assert!(holds(CompareOp::In, Some(&json!("pending")), &allowed));
        assert!(!holds(CompareOp::In, Some(&json!("expired")), &allowed));
        assert!(holds(CompareOp::NotIn, Some(&json!("expired")), &allowed));
        assert!(!holds(CompareOp::NotIn, Some(&json!("active")), &allowed));
        assert!(holds(CompareOp::NotIn, None, &allowed));
    }

    #[test]
    fn key_text_unifies_numbers_and_text() {
        assert_eq!(key_text(&json!("C001")).as_deref(), Some("C001"));
        assert_eq!(key_text(&json!(42)).as_deref(), Some("42"));
        assert_eq!(key_text(&json!(42.0)).as_deref(), Some("42"));
        assert_eq!(key_text(&json!(42.5)).as_deref(), Some("42.5"));
        assert_eq!(key_text(&json!(-7)).as_deref(), Some("-7"));
        assert_eq!(key_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(key_text(&json!(null)), None);
        assert_eq!(key_text(&json!(["a"])), None);
        assert_eq!(key_text(&json!({"a": 1})), None);
    }
}
