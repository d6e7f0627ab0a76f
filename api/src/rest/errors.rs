//! How the REST layer answers the state store's failures and the shared refusals.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// 405 with `Allow` and a `{"detail": message}` body.
pub(crate) fn method_not_allowed(allow: &'static str, message: &str) -> Response {
    let mut response =
        (StatusCode::METHOD_NOT_ALLOWED, Json(json!({"detail": message}))).into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
