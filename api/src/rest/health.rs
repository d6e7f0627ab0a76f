//! Liveness, readiness, and the template schema.
//!
//! - `GET /healthz`: 200 `{"status": "ok"}` while the process serves requests (no token).
//! - `GET /readyz`: 200 when the state store (and the job queue, when the server has one)
//!   answer, else 503 naming what does not (no token).
//! - `GET /imports/templates/schema`: the template JSON Schema (draft 2020-12), generated from
//!   the engine's template type — the schema every template body is checked against (needs
//!   `imports/templates:read`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::auth::Principal;
use crate::conventions::ApiError;

/// The health routes and the schema route.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/imports/templates/schema", get(template_schema))
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = match state.store.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("unavailable: {e}"),
    };
    let queue = match &state.queue {
        None => "not configured".to_owned(),
        Some(queue) => match queue.ping().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("unavailable: {e}"),
        },
    };
    let ready = store == "ok" && (queue == "ok" || state.queue.is_none());
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {"state_store": store, "job_queue": queue},
    });
    (status, Json(body)).into_response()
}

async fn template_schema(principal: Principal) -> Result<Response, ApiError> {
    principal.require("imports/templates:read")?;
    Ok(Json(intake_engine::template::template_schema()).into_response())
}
