//! How a final [`ApiError`] (transient faults were already retried by the client) turns into a
//! row's fate: the row is rejected and the run goes on, or the run fails.

use intake_parsers::{Layer, RowError};
use serde_json::{Map, Value};

use crate::m2m::error::ApiError;

/// How many times a write that meets `412 Precondition Failed` re-reads the record and re-applies
/// itself before the row is rejected.
pub(crate) const MAX_CONFLICT_RETRIES: usize = 3;

/// What an error means for the run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// The row is rejected with these errors; the run goes on.
    Reject(Vec<RowError>),
    /// The run fails with this message; no further rows are written.
    FailRun(String),
}

/// Classifies a final error of a write for `row`.
pub(crate) fn classify(error: &ApiError, row: &Map<String, Value>) -> Verdict {
    match error {
        ApiError::Validation { errors, .. } if !errors.is_empty() => Verdict::Reject(
            errors
                .iter()
                .map(|e| RowError {
                    layer: Layer::Write,
                    value: e.field.as_deref().and_then(|f| value_at(row, f)).cloned(),
                    field: e.field.clone(),
                    rule: "api_validation".into(),
                    message: match &e.kind {
                        Some(kind) => format!("{} ({kind})", e.message),
                        None => e.message.clone(),
                    },
                })
                .collect(),
        ),
        ApiError::Validation { .. }
        | ApiError::NotFound
        | ApiError::Conflict { .. }
        | ApiError::BadRequest { .. } => {
            Verdict::Reject(vec![write_error(None, "api_error", error.to_string(), None)])
        }
        ApiError::Unexpected { status, .. }
            if (400..500).contains(status) && *status != 401 && *status != 403 =>
        {
            Verdict::Reject(vec![write_error(None, "api_error", error.to_string(), None)])
        }
        ApiError::PreconditionFailed { .. } => Verdict::Reject(vec![write_error(
            None,
            "concurrent_modification",
            format!(
                "the record kept changing while it was written ({} re-reads); retry the row",
                MAX_CONFLICT_RETRIES
            ),
            None,
        )]),
        _ => Verdict::FailRun(error.to_string()),
    }
}

/// A row error of layer `write`.
pub(crate) fn write_error(
    field: Option<&str>,
    rule: &str,
    message: String,
    value: Option<Value>,
) -> RowError {
    RowError {
        layer: Layer::Write,
        field: field.map(str::to_owned),
        rule: rule.to_owned(),
        message,
        value,
    }
}

/// The row's value at a field path (`amount`, `lines.0.qty`).
fn value_at<'a>(row: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = row.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut current = row.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m2m::error::FieldError;
    use serde_json::json;

    fn row() -> Map<String, Value> {
        match json!({"amount": -5, "lines": [{"qty": 0}]}) {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn field_errors_become_row_errors_with_the_rows_value() {
        let error = ApiError::Validation {
            status: 422,
            errors: vec![
                FieldError {
                    field: Some("amount".into()),
                    message: "must be ≥ 0".into(),
                    kind: None,
                },
                FieldError {
                    field: Some("lines.0.qty".into()),
                    message: "too small".into(),
                    kind: Some("min".into()),
                },
            ],
        };
        let Verdict::Reject(errors) = classify(&error, &row()) else { panic!("rejects") };
        assert_eq!(errors[0].layer, Layer::Write);
        assert_eq!(errors[0].rule, "api_validation");
        assert_eq!(errors[0].field.as_deref(), Some("amount"));
        assert_eq!(errors[0].value, Some(json!(-5)));
        assert_eq!(errors[1].value, Some(json!(0)));
        assert_eq!(errors[1].message, "too small (min)");
    }

    #[test]
    fn capability_auth_and_exhaustion_fail_the_run() {
        for error in [
            ApiError::Forbidden { missing: vec!["players:create".into()] },
            ApiError::Unauthorized { detail: "x".into() },
            ApiError::Exhausted { attempts: 5, last: "503".into() },
            ApiError::Transport("refused".into()),
        ] {
            assert!(matches!(classify(&error, &row()), Verdict::FailRun(_)), "{error}");
        }
        assert!(matches!(
            classify(&ApiError::Conflict { detail: "x".into() }, &row()),
            Verdict::Reject(_)
        ));
    }
}
