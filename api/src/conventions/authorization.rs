//! The `Authorization` header of a resource call: exactly one, ASCII, `<scheme> <token>`.

use axum::http::{HeaderMap, header};

use super::ApiError;

/// The scheme and the token of the request's one `Authorization` header (401
/// `invalid_token` when it is missing, repeated, not ASCII or has no token).
pub(crate) fn authorization(headers: &HeaderMap) -> Result<(&str, &str), ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let authorization = match (values.next(), values.next()) {
        (Some(v), None) => v
            .to_str()
            .map_err(|_| ApiError::invalid_token("the Authorization header is not ASCII"))?,
        (None, _) => {
            return Err(ApiError::invalid_token(
                "Not authenticated: send Authorization: Bearer <access token>",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_token("more than one Authorization header"));
        }
    };
    authorization
        .split_once(' ')
        .map(|(s, t)| (s, t.trim()))
        .ok_or_else(|| ApiError::invalid_token("Authorization must be 'Bearer <token>'"))
}
