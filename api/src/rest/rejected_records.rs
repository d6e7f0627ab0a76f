//! `/rejected-records`: the rows an import refused, kept for an operator to correct, retry or
//! discard.
//!
//! | route | capability | what it does |
//! | --- | --- | --- |
//! | `GET /rejected-records` | `rejected-records:list` | the platform's list conventions; filter by `import_run_id`, `template_id`, `status`, `row_number` (and the base fields) |
//! | `GET /rejected-records/{id}` | `rejected-records:read` | the record, with its `ETag` |
//! | `GET /rejected-records/{id}/history` | `rejected-records:read` | every status change, oldest first |
//! | `PATCH /rejected-records/{id}` | `rejected-records:update` | sets `corrected_data` (`If-Match` required) |
//! | `POST /rejected-records/{id}/retry` | `rejected-records:update` | runs the correction through mapping, validation and write again |
//! | `POST /rejected-records/retry` | `rejected-records:update` | queues a retry of every `corrected` record matching a filter |
//! | `POST /rejected-records/{id}/discard` | `rejected-records:delete` | gives up on the record (`If-Match` optional) |
//! | `DELETE /rejected-records/{id}` | `rejected-records:delete` | the same discard, `If-Match` required, 204 |
//! | `POST /rejected-records`, `PUT /rejected-records/{id}` | — | 405 (`Allow` lists the methods above): records are made by imports only; only `corrected_data` is writable |
//!
//! `admin.imports.manage` grants every capability. The tenant is the token's; another tenant's
//! record is 404.
//!
//! # Status
//! `pending → corrected → retried | discarded`, `pending → discarded`, `corrected → corrected`
//! (corrected again) and `corrected → pending` (a retry refused again, with the fresh errors as
//! `validation_errors`). Every change is one history row (`from_status`, `to_status`,
//! `revision_id`, `changed_at`, `note`). A move the state machine does not allow (correcting a
//! `retried` record, discarding a `discarded` one) is **409** `{"detail": {"error":
//! "illegal_transition", "message"}}` (the message names the record's status). Records are never deleted: a discarded record
//! stays readable with its history, for the audit trail.
//!
//! # PATCH
//! The body is `{"corrected_data": {column: text, …}}`: the row as the file had it, corrected
//! (keys are the file's columns, like `original_data`; numbers and booleans are taken as their
//! text). Any other field is read-only: **422** with `type: "readonly"` for each. A
//! `corrected_data` that is not an object is 422 `type: "object"`. The record becomes
//! `corrected`. `If-Match` is required (428), a stale one is 412 with the current record.
//!
//! # Retry
//! - **One record** (`POST /rejected-records/{id}/retry`) runs **inline** when the REST layer has
//!   a platform client for the tenant ([`super::PlatformClients`]): the answer is 200
//!   `{"outcome": {"outcome": "retried" | "still_pending", …}, "record": …}` with the record as it
//!   is now (`retried`, or back to `pending` with fresh `validation_errors`); a record that could
//!   not be written through no fault of its own (the platform failed) stays `corrected` and the
//!   answer is 503 `{"detail": {"error": "not_written", "message"}}`. Without a platform client
//!   but with a job queue, a `RetryRejectedRecords` job is queued: 202 `{"queued": 1, "jobs":
//!   [id], "record_ids": [id]}`. With neither: 503 `platform_not_configured`. Only a `corrected`
//!   record is retried (409 otherwise). An `If-Match`, when sent, must match (412).
//! - **Bulk** (`POST /rejected-records/retry?<filter>`): the filter is the list syntax (`where`,
//!   `field=value`, `field__op=value`); pagination and sort are ignored. Every matching record
//!   whose status is `corrected` is retried — through the job queue, in jobs of at most
//!   [`BULK_JOB_SIZE`] records: 202 `{"queued": n, "jobs": [job ids], "record_ids": [...]}`
//!   (200 with `queued: 0` when nothing matches). Bulk retries need the job queue (503
//!   `queue_not_configured` without one): a large selection must not hold a request open.
//!   Queued retries are carried out by `intake serve`'s workers, which find the records'
//!   templates in the store.
//!
//! # Discard
//! `POST /rejected-records/{id}/discard` with an optional body `{"note": "why"}` (kept in the
//! history) answers 200 with the record and its new `ETag`; `DELETE /rejected-records/{id}`
//! does the same with `If-Match` required and answers 204, as every DELETE of the platform.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use intake_engine::jobs::RetryRejectedRecords;
use intake_engine::runner::{RecordsRetry, RetryOutcome, retry_rejected_records};
use intake_engine::store::{
    Collection, ListQuery as StoreQuery, RejectedRecord, RejectedStatus, StoreError,
};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::errors::{store_error, unavailable};
use super::item::{if_match_optional, if_match_required, item_response, json_object};
use super::listing;
use super::schemas::{field_error, invalid};
use crate::auth::Principal;
use crate::conventions::{ApiError, FieldError, ListQuery};

/// The most records one queued bulk-retry job carries.
pub const BULK_JOB_SIZE: usize = 100;

/// The fields a client may write.
const WRITABLE: &[&str] = &["corrected_data"];

/// The `/rejected-records` routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/rejected-records", get(list))
        .route("/rejected-records/", get(list))
        .route("/rejected-records/retry", post(retry_many))
        .route("/rejected-records/{id}", get(read).patch(correct).delete(delete))
        .route("/rejected-records/{id}/history", get(history))
        .route("/rejected-records/{id}/retry", post(retry_one))
        .route("/rejected-records/{id}/discard", post(discard))
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require("rejected-records:list")?;
    listing::list(&state, &principal, Collection::RejectedRecords, query.as_deref()).await
}

async fn load(state: &AppState, tenant: &str, id: &str) -> Result<RejectedRecord, ApiError> {
    state.store.get_rejected_record(tenant, id).await.map_err(store_error)
}

async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require("rejected-records:read")?;
    let record = load(&state, &principal.tenant_id, &id).await?;
    Ok(item_response(StatusCode::OK, &record.to_json(), &record.meta.revision_id))
}

async fn history(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require("rejected-records:read")?;
    let changes = state
        .store
        .rejected_record_history(&principal.tenant_id, &id)
        .await
        .map_err(store_error)?;
    let total = changes.len();
    Ok(Json(json!({"items": changes, "total": total})).into_response())
}

/// The 412 answer for a stale `If-Match`: the record as it is now.
fn stale(record: &RejectedRecord) -> ApiError {
    ApiError::PreconditionFailed {
        current: record.to_json(),
        etag: format!("\"{}\"", record.meta.revision_id),
    }
}

/// The tenant's record `id` as it is now, if `If-Match` (required or not, per `required`)
/// allows the write: 428 when required and missing, 412 with the record when stale.
async fn load_for_write(
    state: &AppState,
    tenant: &str,
    id: &str,
    headers: &HeaderMap,
    required: bool,
) -> Result<RejectedRecord, ApiError> {
    let record = load(state, tenant, id).await?;
    let precondition =
        if required { Some(if_match_required(headers)?) } else { if_match_optional(headers)? };
    match precondition {
        Some(p) if !p.matches(&record.meta.revision_id) => Err(stale(&record)),
        _ => Ok(record),
    }
}

/// Maps a store failure on `id`, turning a revision conflict into a 412 with the current record.
async fn write_error(state: &AppState, tenant: &str, id: &str, error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict { .. } => match load(state, tenant, id).await {
            Ok(record) => stale(&record),
            Err(e) => e,
        },
        other => store_error(other),
    }
}

/// Checks the PATCH body: only `corrected_data`, and it is an object.
fn corrected_data(mut body: Map<String, Value>) -> Result<Value, ApiError> {
    let mut errors: Vec<FieldError> = body
        .keys()
        .filter(|key| !WRITABLE.contains(&key.as_str()))
        .map(|key| {
            let msg = format!(
                "{key} is read-only: a rejected record is made by an import, only corrected_data \
                 can be written"
            );
            field_error(&[key], msg, "readonly")
        })
        .collect();
    let data = body.remove("corrected_data");
    match &data {
        Some(Value::Object(_)) => {}
        Some(_) => errors.push(field_error(
            &["corrected_data"],
            "corrected_data must be an object of column → text (the row as the file had it, \
             corrected)",
            "object",
        )),
        None if errors.is_empty() => {
            errors.push(field_error(&["corrected_data"], "corrected_data is required", "missing"));
        }
        None => {}
    }
    match data {
        Some(data) if errors.is_empty() => Ok(data),
        _ => Err(ApiError::Validation(errors)),
    }
}

async fn correct(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    principal.require("rejected-records:update")?;
    let tenant = &principal.tenant_id;
    let record = load_for_write(&state, tenant, &id, &headers, true).await?;
    let data = corrected_data(json_object(&body)?)?;
    let updated = state
        .store
        .correct_rejected_record(tenant, &id, Some(&record.meta.revision_id), data)
        .await;
    match updated {
        Ok(record) => {
            Ok(item_response(StatusCode::OK, &record.to_json(), &record.meta.revision_id))
        }
        Err(e) => Err(write_error(&state, tenant, &id, e).await),
    }
}

/// Discards the record as read, guarded by its revision; the record after.
async fn discard_record(
    state: &AppState,
    tenant: &str,
    record: &RejectedRecord,
    note: Option<&str>,
) -> Result<RejectedRecord, ApiError> {
    let id = &record.meta.id;
    let revision = Some(record.meta.revision_id.as_str());
    let note = note.unwrap_or("discarded");
    match state
        .store
        .set_rejected_status(tenant, id, revision, RejectedStatus::Discarded, None, Some(note))
        .await
    {
        Ok(record) => Ok(record),
        Err(e) => Err(write_error(state, tenant, id, e).await),
    }
}

async fn discard(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    principal.require("rejected-records:delete")?;
    let tenant = &principal.tenant_id;
    let record = load_for_write(&state, tenant, &id, &headers, false).await?;
    let note = note(&body)?;
    let record = discard_record(&state, tenant, &record, note.as_deref()).await?;
    Ok(item_response(StatusCode::OK, &record.to_json(), &record.meta.revision_id))
}

/// The optional `{"note": "…"}` of an action's body.
fn note(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match json_object(body)?.get("note") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(note)) => Ok(Some(note.clone())),
        Some(_) => Err(invalid(&["note"], "note must be a string", "string")),
    }
}

async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require("rejected-records:delete")?;
    let tenant = &principal.tenant_id;
    let record = load_for_write(&state, tenant, &id, &headers, true).await?;
    discard_record(&state, tenant, &record, Some("discarded (DELETE)")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Refuses a record that is not `corrected` (409).
fn retryable(record: &RejectedRecord) -> Result<(), ApiError> {
    match record.body.status {
        RejectedStatus::Corrected => Ok(()),
        status => Err(conflict(
            status.as_str(),
            format!(
                "rejected record {} is {}: only a corrected record is retried (PATCH its \
                 corrected_data first)",
                record.meta.id,
                status.as_str()
            ),
        )),
    }
}

async fn retry_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require("rejected-records:update")?;
    let tenant = &principal.tenant_id;
    let record = load_for_write(&state, tenant, &id, &headers, false).await?;
    retryable(&record)?;
    if let Some(client) = state.platform.client(tenant) {
        let ids = [id.clone()];
        let report = retry_rejected_records(RecordsRetry {
            store: &state.store,
            tenant,
            record_ids: &ids,
            templates: &[],
            client,
            cancel: CancellationToken::new(),
        })
        .await
        .map_err(store_error)?;
        let outcome = report.outcome(&id).cloned();
        return match outcome {
            Some(outcome @ (RetryOutcome::Retried { .. } | RetryOutcome::StillPending { .. })) => {
                let record = load(&state, tenant, &id).await?;
                let body = json!({"outcome": outcome, "record": record.to_json()});
                Ok(item_response(StatusCode::OK, &body, &record.meta.revision_id))
            }
            Some(RetryOutcome::Refused { reason }) => {
                Err(conflict(load(&state, tenant, &id).await?.body.status.as_str(), reason))
            }
            Some(RetryOutcome::NotWritten { reason }) => Err(unavailable(
                "not_written",
                format!("the record stays corrected and can be retried: {reason}"),
            )),
            None => Err(ApiError::Misconfigured("the retry reported nothing".into())),
        };
    }
    let Some(queue) = &state.queue else {
        return Err(unavailable(
            "platform_not_configured",
            "this server has neither a platform connection for the tenant nor a job queue: \
             records cannot be retried here",
        ));
    };
    let job = RetryRejectedRecords { tenant_id: tenant.clone(), record_ids: vec![id.clone()] };
    let job_id = queue.enqueue_retry_rejected_records(job).await.map_err(|e| {
        unavailable("queue_unavailable", format!("the retry could not be queued: {e}"))
    })?;
    let body = json!({"queued": 1, "jobs": [job_id], "record_ids": [id]});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Every `corrected` record of `tenant` matching the list filter in `raw_query`.
async fn matching_corrected(
    state: &AppState,
    tenant: &str,
    raw_query: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let query = ListQuery::parse(raw_query.unwrap_or("")).map_err(ApiError::BadRequest)?;
    let mut ids = Vec::new();
    let mut page = 1;
    loop {
        let store_query = StoreQuery::new()
            .eq("status", RejectedStatus::Corrected.as_str())
            .sort_by("created_at", false)
            .page(page, StoreQuery::MAX_PER_PAGE);
        let found =
            state.store.list_rejected_records(tenant, &store_query).await.map_err(store_error)?;
        let seen = u64::from(page) * u64::from(StoreQuery::MAX_PER_PAGE);
        for record in &found.items {
            let Value::Object(item) = record.to_json() else { continue };
            if query.filter.matches(&item) {
                ids.push(record.meta.id.clone());
            }
        }
        if found.items.is_empty() || seen >= found.total {
            break;
        }
        page += 1;
    }
    Ok(ids)
}

async fn retry_many(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require("rejected-records:update")?;
    let tenant = &principal.tenant_id;
    let ids = matching_corrected(&state, tenant, query.as_deref()).await?;
    if ids.is_empty() {
        let body = json!({"queued": 0, "jobs": [], "record_ids": []});
        return Ok(Json(body).into_response());
    }
    let Some(queue) = &state.queue else {
        return Err(unavailable(
            "queue_not_configured",
            "bulk retries go through the job queue, and this server has none",
        ));
    };
    let mut jobs = Vec::new();
    for chunk in ids.chunks(BULK_JOB_SIZE) {
        let job = RetryRejectedRecords { tenant_id: tenant.clone(), record_ids: chunk.to_vec() };
        let id = queue.enqueue_retry_rejected_records(job).await.map_err(|e| {
            unavailable("queue_unavailable", format!("the retry could not be queued: {e}"))
        })?;
        jobs.push(id);
    }
    let body = json!({"queued": ids.len(), "jobs": jobs, "record_ids": ids});
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(count) = HeaderValue::from_str(&ids.len().to_string()) {
        response.headers_mut().insert("x-total-count", count);
    }
    Ok(response)
}

/// 409 `illegal_transition`: the record's status does not allow the operation.
fn conflict(status: &str, message: impl Into<String>) -> ApiError {
    ApiError::Conflict {
        error: "illegal_transition",
        message: format!("{} (status: {status})", message.into()),
    }
}
