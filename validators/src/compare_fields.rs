//! The built-in validation plugin `compare_fields`: one field of a row against another field of
//! the same row, which a rule on a single field cannot express (an end date on or after the
//! start date, an amount paid at most the amount due).
//!
//! `{"type": "builtin", "name": "compare_fields", "options": {"left": "valid_to", "op": "gte",
//! "right": "valid_from"}}`: `op` is `eq`, `ne`, `lt`, `lte`, `gt` or `gte`. Two numbers compare
//! as numbers, two texts as texts (so ISO dates compare as dates); a number and a text, or
//! anything else, is an error of the row. A row where either field is null passes (presence is
//! the schema's job). The row's error names `left`, rule `compare_fields`.

use std::cmp::Ordering;

use intake_parsers::{Layer, Locale, Row, RowError};
use serde::Deserialize;
use serde_json::Value;

use crate::plugin::ValidationPlugin;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    left: String,
    op: Op,
    right: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Op {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Lt => ordering == Ordering::Less,
            Op::Lte => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Gte => ordering != Ordering::Less,
        }
    }

    fn words(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Op::Eq, Locale::Sv) => "lika med",
            (Op::Eq, Locale::En) => "equal to",
            (Op::Ne, Locale::Sv) => "skilt från",
            (Op::Ne, Locale::En) => "different from",
            (Op::Lt, Locale::Sv) => "mindre än",
            (Op::Lt, Locale::En) => "less than",
            (Op::Lte, Locale::Sv) => "högst",
            (Op::Lte, Locale::En) => "at most",
            (Op::Gt, Locale::Sv) => "större än",
            (Op::Gt, Locale::En) => "greater than",
            (Op::Gte, Locale::Sv) => "minst",
            (Op::Gte, Locale::En) => "at least",
        }
    }
}

struct CompareFields {
    options: Options,
}

/// The registry's factory for `compare_fields`.
pub(crate) fn factory(options: &Value) -> Result<Box<dyn ValidationPlugin>, String> {
    let options: Options = serde_json::from_value(options.clone()).map_err(|error| {
        format!(
            "{error}; the options are {{\"left\": \"<field>\", \"op\": \"eq|ne|lt|lte|gt|gte\", \
             \"right\": \"<field>\"}}"
        )
    })?;
    Ok(Box::new(CompareFields { options }))
}

impl ValidationPlugin for CompareFields {
    fn check(&self, row: &Row, locale: Locale, errors: &mut Vec<RowError>) {
        let Options { left, op, right } = &self.options;
        let (Some(a), Some(b)) = (row.get(left), row.get(right)) else {
            errors.push(error(left, None, missing(left, right, locale)));
            return;
        };
        let ordering = match (a, b) {
            (Value::Null, _) | (_, Value::Null) => return,
            (Value::Number(x), Value::Number(y)) => {
                x.as_f64().zip(y.as_f64()).and_then(|(x, y)| x.partial_cmp(&y))
            }
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        };
        let message = match ordering {
            Some(ordering) if op.holds(ordering) => return,
            Some(_) => match locale {
                Locale::Sv => format!(
                    "'{left}' ({}) ska vara {} '{right}' ({})",
                    shown(a),
                    op.words(locale),
                    shown(b)
                ),
                Locale::En => format!(
                    "'{left}' ({}) must be {} '{right}' ({})",
                    shown(a),
                    op.words(locale),
                    shown(b)
                ),
            },
            None => match locale {
                Locale::Sv => format!(
                    "'{left}' ({}) och '{right}' ({}) går inte att jämföra: båda ska vara tal eller \
                     båda text",
                    shown(a),
                    shown(b)
                ),
                Locale::En => format!(
                    "'{left}' ({}) and '{right}' ({}) cannot be compared: both must be numbers or \
                     both text",
                    shown(a),
                    shown(b)
                ),
            },
        };
        errors.push(error(left, Some(a.clone()), message));
    }
}

fn missing(left: &str, right: &str, locale: Locale) -> String {
    match locale {
        Locale::Sv => format!("raden saknar fältet '{left}' eller '{right}' som ska jämföras"),
        Locale::En => format!("the row has no field '{left}' or '{right}' to compare"),
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn error(field: &str, value: Option<Value>, message: String) -> RowError {
    RowError {
        layer: Layer::Plugins,
        field: Some(field.to_owned()),
        rule: "compare_fields".to_owned(),
        message,
        value,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use intake_parsers::RowShape;
    use serde_json::json;

    use super::*;

    fn row(from: Value, to: Value) -> Row {
        let mut row = Row::new(Arc::new(RowShape::new(["valid_from", "valid_to"])));
        *row.value_mut(0).expect("slot") = from;
        *row.value_mut(1).expect("slot") = to;
        row
    }

    fn check(options: Value, row: &Row, locale: Locale) -> Vec<RowError> {
        let plugin = factory(&options).expect("options");
        let mut errors = Vec::new();
        plugin.check(row, locale, &mut errors);
        errors
    }

    #[test]
    fn dates_numbers_and_nulls_compare_as_an_operator_expects() {
        let gte = json!({"left": "valid_to", "op": "gte", "right": "valid_from"});
        assert!(
            check(gte.clone(), &row(json!("2026-01-01"), json!("2026-12-31")), Locale::En)
                .is_empty()
        );
        assert!(check(gte.clone(), &row(json!(5), json!(5.0)), Locale::En).is_empty());
        assert!(check(gte.clone(), &row(Value::Null, json!("x")), Locale::En).is_empty());
        let errors = check(gte.clone(), &row(json!("2026-12-31"), json!("2026-01-01")), Locale::En);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message,
            "'valid_to' (2026-01-01) must be at least 'valid_from' (2026-12-31)"
        );
        assert_eq!(
            (errors[0].field.as_deref(), errors[0].layer),
            (Some("valid_to"), Layer::Plugins)
        );
        let sv = check(gte.clone(), &row(json!(2), json!(1)), Locale::Sv);
        assert_eq!(sv[0].message, "'valid_to' (1) ska vara minst 'valid_from' (2)");
        let mixed = check(gte, &row(json!(2), json!("1")), Locale::En);
        assert!(mixed[0].message.contains("cannot be compared"));
    }

    #[test]
    fn bad_options_and_unknown_fields_are_reported() {
        assert!(factory(&json!({"left": "a", "op": "bigger", "right": "b"})).is_err());
        let errors = check(
            json!({"left": "nope", "op": "eq", "right": "valid_to"}),
            &row(json!(1), json!(1)),
            Locale::En,
        );
        assert!(errors[0].message.contains("no field 'nope'"));
    }
}
