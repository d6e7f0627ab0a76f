//! How the REST layer answers the state store's failures and the shared refusals.

use intake_engine::store::StoreError;
use serde_json::json;

use crate::conventions::{ApiError, FieldError};

/// A store failure as the API answers it: 404, 409, 412-worthy conflicts are handled by the
/// callers; a database that does not answer is 503, anything else 500 (logged).
pub(crate) fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound { .. } => ApiError::NotFound,
        StoreError::IllegalTransition { what, id, from, to } => ApiError::Conflict {
            error: "illegal_transition",
            message: format!("{what} {id} is {from}: it cannot become {to}"),
        },
        StoreError::Invalid(message) => ApiError::Validation(vec![FieldError {
            loc: vec![json!("body")],
            msg: message,
            kind: "value_error".into(),
        }]),
        StoreError::UnknownField { field, .. } => {
            ApiError::BadRequest(format!("cannot filter or sort by {field:?}"))
        }
        e @ (StoreError::Database(_) | StoreError::Open { .. }) => {
            tracing::warn!(error = %e, "state store failure");
            ApiError::Unavailable {
                error: "state_store_unavailable",
                message: "the state store failed; try again".into(),
            }
        }
        other => {
            tracing::error!(error = %other, "state store error");
            ApiError::Misconfigured(format!("internal error: {other}"))
        }
    }
}

/// 503 with a stable code: a dependency is missing or failing (`platform_not_configured`,
/// `queue_not_configured`, `upload_storage`, …).
pub(crate) fn unavailable(error: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unavailable { error, message: message.into() }
}
