//! `/alerts`: the alerts the engine raised and what became of them, read-only.
//!
//! | route | capability | what it does |
//! | --- | --- | --- |
//! | `GET /alerts` | `alerts:list` | the list conventions; filter by `status`, `channel_id`, `event_type`, `severity`, `dedup_key` (pushed down) or any field |
//! | `GET /alerts/{id}` | `alerts:read` | the alert, with its `ETag` |
//!
//! The spec has no resource for alerts (they are the engine's own records), so they are named
//! like every resource: `alerts:list|read`; `admin.imports.manage` grants them. An alert is
//! written only by the engine's dispatcher: PATCH, PUT and DELETE are 405. Its body: the
//! event's `event_type`, `severity`, `summary`, `tags`, `subject`, `link`, `dedup_key`, a
//! digest's `digest` events, `held_back`, the `channel_id` and `channel_name` (`log` for events
//! no rule routed), `status` (`queued`, `sent`, `suppressed`, `duplicate`, `held`, `failed`),
//! `reason`, `attempts` and `sent_at`.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use intake_engine::store::Collection;

use super::AppState;
use super::errors::store_error;
use super::item::item_response;
use super::listing;
use crate::auth::Principal;
use crate::conventions::ApiError;

/// The `/alerts` read routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/", get(list))
        .route("/alerts/{id}", get(read))
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require("alerts:list")?;
    listing::list(&state, &principal, Collection::Alerts, query.as_deref()).await
}

async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require("alerts:read")?;
    let alert = state
        .store
        .get(Collection::Alerts, &principal.tenant_id, &id)
        .await
        .map_err(store_error)?;
    Ok(item_response(StatusCode::OK, &alert.to_json(), &alert.meta.revision_id))
}
