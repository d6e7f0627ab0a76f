//! `/imports/runs`: the import runs, read-only.
//!
//! | route | capability | what it does |
//! | --- | --- | --- |
//! | `GET /imports/runs` | `imports/runs:list` | the list conventions; filter by `status`, `source_id`, `template_id`, `claim_id` (pushed down) or any field |
//! | `GET /imports/runs/{id}` | `imports/runs:read` | the run, with its `ETag` |
//!
//! The spec has no capability for runs (they are the engine's own records), so they are named
//! like every resource's: `imports/runs:list|read`; `admin.imports.manage` grants them. A run is
//! written only by the engine: PATCH, PUT and DELETE are 405. Its body: `status` (`queued`,
//! `running`, `succeeded`, `partially_succeeded`, `failed`), `source_id`, `template_id`,
//! `claim_id`, `source_name`, `counts` (`read`, `valid`, `rejected`, `created`, `updated`,
//! `deleted`, `skipped_already_written`), `timings`, `error`, `started_at`, `finished_at`.

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

/// The `/imports/runs` read routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/imports/runs", get(list))
        .route("/imports/runs/", get(list))
        .route("/imports/runs/{id}", get(read))
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require("imports/runs:list")?;
    listing::list(&state, &principal, Collection::ImportRuns, query.as_deref()).await
}

async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require("imports/runs:read")?;
    let run = state.store.get_run(&principal.tenant_id, &id).await.map_err(store_error)?;
    Ok(item_response(StatusCode::OK, &run.to_json(), &run.meta.revision_id))
}
