//! Every text a business-rule failure is shown as, in Swedish and English.
//!
//! Values are quoted with plain single quotes (text) or bare (numbers, booleans), cut after 40
//! characters, as the row-rule messages do.

use serde_json::Value;

use super::config::{CompareOp, RuleMessage};
use crate::Locale;

/// How many characters of a value a message quotes.
const QUOTED_CHARS: usize = 40;

/// A value for a message: text in single quotes, anything else as JSON; cut when long.
pub(super) fn show(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut out: String = text.chars().take(QUOTED_CHARS).collect();
    if text.chars().nth(QUOTED_CHARS).is_some() {
        out.push('…');
    }
    if value.is_string() { format!("'{out}'") } else { out }
}

/// "code 'C9'" / "code 'C9' and season 2026": the look-up a row made.
pub(super) fn describe_key(locale: Locale, pairs: &[(&str, &Value)]) -> String {
    let and = match locale {
        Locale::En => " and ",
        Locale::Sv => " och ",
    };
    pairs
        .iter()
        .map(|(field, value)| format!("{field} {}", show(value)))
        .collect::<Vec<_>>()
        .join(and)
}

/// No record matched an `exists` rule.
pub(super) fn missing(locale: Locale, resource: &str, key: &str) -> String {
    match locale {
        Locale::En => format!(
            "no record in '{resource}' has {key}: check the value, or create the record in the \
             platform first"
        ),
        Locale::Sv => format!(
            "det finns ingen post i '{resource}' med {key}: kontrollera värdet, eller skapa posten \
             i plattformen först"
        ),
    }
}

/// A record matched a `not_exists` rule.
pub(super) fn already_exists(
    locale: Locale,
    resource: &str,
    key: &str,
    id: Option<&str>,
) -> String {
    let id = id.map(|id| format!(" (id {id})")).unwrap_or_default();
    match locale {
        Locale::En => format!(
            "a record in '{resource}' already has {key}{id}: this row must not duplicate it"
        ),
        Locale::Sv => format!(
            "det finns redan en post i '{resource}' med {key}{id}: raden får inte bli en dubblett"
        ),
    }
}

/// The other side of a failed comparison.
pub(super) enum Expected<'a> {
    /// A constant of the rule.
    Constant(&'a Value),
    /// A field of the row, with its value.
    RowField(&'a str, &'a Value),
}

/// A record was found, but it fails a comparison.
pub(super) fn comparison_failed(
    locale: Locale,
    resource: &str,
    key: &str,
    record_field: &str,
    actual: Option<&Value>,
    op: CompareOp,
    expected: Expected<'_>,
) -> String {
    let expected = match (&expected, locale) {
        (Expected::Constant(Value::Array(values)), _) => {
            values.iter().map(show).collect::<Vec<_>>().join(", ")
        }
        (Expected::Constant(value), _) => show(value),
        (Expected::RowField(field, value), Locale::En) => {
            format!("{} (the row's {field})", show(value))
        }
        (Expected::RowField(field, value), Locale::Sv) => {
            format!("{} (radens {field})", show(value))
        }
    };
    let actual = actual.filter(|v| !v.is_null());
    match locale {
        Locale::En => {
            let has = match actual {
                Some(value) => format!("has {record_field} {}", show(value)),
                None => format!("has no {record_field}"),
            };
            let relation = match op {
                CompareOp::Eq => "",
                CompareOp::Ne => "other than ",
                CompareOp::Gt => "greater than ",
                CompareOp::Gte => "at least ",
                CompareOp::Lt => "less than ",
                CompareOp::Lte => "at most ",
                CompareOp::In => "one of ",
                CompareOp::NotIn => "none of ",
            };
            format!(
                "the record in '{resource}' with {key} {has}, but it must be {relation}{expected}"
            )
        }
        Locale::Sv => {
            let has = match actual {
                Some(value) => format!("har {record_field} {}", show(value)),
                None => format!("saknar {record_field}"),
            };
            let relation = match op {
                CompareOp::Eq => "",
                CompareOp::Ne => "något annat än ",
                CompareOp::Gt => "större än ",
                CompareOp::Gte => "minst ",
                CompareOp::Lt => "mindre än ",
                CompareOp::Lte => "högst ",
                CompareOp::In => "ett av ",
                CompareOp::NotIn => "inget av ",
            };
            format!("posten i '{resource}' med {key} {has}, men det ska vara {relation}{expected}")
        }
    }
}

/// A look-up field holds a list or an object, which cannot be looked up.
pub(super) fn not_a_single_value(locale: Locale, resource: &str) -> String {
    match locale {
        Locale::En => format!(
            "the value is a list or an object, so it cannot be looked up in '{resource}': map it \
             to a single text or number"
        ),
        Locale::Sv => format!(
            "värdet är en lista eller ett objekt och kan inte slås upp i '{resource}': mappa det \
             till en enda text eller ett tal"
        ),
    }
}

/// The rule's own message in `locale` (else the other language), with `{resource}`, `{field}`
/// and `{value}` replaced.
pub(super) fn custom(
    locale: Locale,
    message: &RuleMessage,
    resource: &str,
    field: &str,
    value: &Value,
) -> Option<String> {
    let text = match locale {
        Locale::Sv => message.sv.as_ref().or(message.en.as_ref()),
        Locale::En => message.en.as_ref().or(message.sv.as_ref()),
    }?;
    Some(
        text.replace("{resource}", resource)
            .replace("{field}", field)
            .replace("{value}", &show(value)),
    )
}
