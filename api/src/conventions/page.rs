//! The list answer: `{items, total, page, per_page}` with the pagination headers.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One page of a list: the body and `X-Total-Count`, `X-Page`, `X-Per-Page`, `X-Total-Pages`.
pub(crate) fn page_response(items: Vec<Value>, total: u64, page: u64, per_page: u64) -> Response {
    let total_pages = total.div_ceil(per_page.max(1));
    let mut response = axum::Json(json!({
        "items": items,
        "total": total,
        "page": page,
        "per_page": per_page,
    }))
    .into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    headers.insert("x-page", HeaderValue::from(page));
    headers.insert("x-per-page", HeaderValue::from(per_page));
    headers.insert("x-total-pages", HeaderValue::from(total_pages));
    response
}
