//! One item's request and answer: the JSON body (size-limited), `If-Match`, and the item
//! response with its `ETag`.

use axum::Json;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::conventions::{ApiError, IfMatch};

/// A JSON answer about one item, with `ETag` = the quoted revision.
pub(crate) fn item_response(status: StatusCode, body: &Value, revision: &str) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The `If-Match` header, required on PATCH, PUT and DELETE (428 without).
pub(crate) fn if_match_required(headers: &HeaderMap) -> Result<IfMatch, ApiError> {
    if_match_optional(headers)?.ok_or(ApiError::PreconditionRequired)
}

/// The `If-Match` header, when sent.
pub(crate) fn if_match_optional(headers: &HeaderMap) -> Result<Option<IfMatch>, ApiError> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(value) => {
            let text =
                value.to_str().map_err(|_| ApiError::BadRequest("If-Match is not ASCII".into()))?;
            Ok(IfMatch::parse(text))
        }
    }
}

/// The request body as a JSON object (400 otherwise).
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest("the request body must be a JSON object".into())),
        Err(e) => Err(ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))),
    }
}
