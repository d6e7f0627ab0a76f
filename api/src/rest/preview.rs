//! Template previews: the first rows of a sample file through a template's parse → map →
//! validate, each with its mapped data or its errors. Nothing is written (no run, no rejected
//! record, no platform request).
//!
//! | route | capability | template |
//! | --- | --- | --- |
//! | `POST /imports/templates/{id}/preview` | `imports/templates:read` | the tenant's stored template `{id}` |
//! | `POST /imports/templates/preview` | `imports/templates:create` | the `template` part of the request (a template not saved yet) |
//!
//! The request is `multipart/form-data` with a `file` part (the sample), an optional `rows` field
//! (how many rows to preview: default [`DEFAULT_ROWS`], at most [`MAX_ROWS`]) and, for the
//! inline form, a `template` part holding the template JSON. The inline form lets an integrator
//! try a template before creating it; it needs `imports/templates:create`, the capability of
//! whoever writes templates.
//!
//! The answer (200) is the engine's [`PreviewReport`](intake_engine::preview::PreviewReport):
//! `{file, columns, rows_previewed, valid, rejected, truncated, rows: [{row_number, status:
//! "valid" | "rejected", data | original_data, errors: [{layer, field, rule, message, value}]}]}`.
//! An inline template that is not valid is 422 with one `{"loc": ["body", "template", …]}` entry
//! per problem; a file the template cannot run on (unreadable, a missing column) is 422 at
//! `["body", "file"]`. A file larger than the upload limit is 413.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use intake_engine::preview::preview_file;
use intake_engine::runner::{StoredTemplateError, stored_template};
use intake_engine::template::{Template, TemplateError};
use serde_json::Value;

use super::AppState;
use super::errors::store_error;
use super::schemas::{invalid, template_problems};
use super::uploads::{Form, FormFile, read_form};
use crate::auth::Principal;
use crate::conventions::ApiError;

/// Rows previewed when `rows` is not given.
pub const DEFAULT_ROWS: u64 = 20;
/// The most rows one preview shows.
pub const MAX_ROWS: u64 = 1000;

/// The preview routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/imports/templates/preview", post(preview_inline))
        .route("/imports/templates/{id}/preview", post(preview_stored))
        // The upload limit is enforced while reading the parts (413), not by axum's default.
        .layer(DefaultBodyLimit::disable())
}

/// The `rows` field: 1 to [`MAX_ROWS`], [`DEFAULT_ROWS`] when absent.
fn rows(form: &Form) -> Result<u64, ApiError> {
    match form.field("rows") {
        None => Ok(DEFAULT_ROWS),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if (1..=MAX_ROWS).contains(&n) => Ok(n),
            _ => Err(invalid(
                &["rows"],
                format!("rows must be a whole number from 1 to {MAX_ROWS}"),
                "value_error",
            )),
        },
    }
}

async fn preview_stored(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    principal.require("imports/templates:read")?;
    let template = match stored_template(&state.store, &principal.tenant_id, &id).await {
        Ok(template) => template,
        Err(StoredTemplateError::Store(e)) => return Err(store_error(e)),
        Err(StoredTemplateError::Invalid { source, .. }) => {
            return Err(ApiError::Validation(template_problems(&source, &["template"])));
        }
    };
    let form = read_form(multipart, state.limits.max_upload_bytes, None).await?;
    preview(template, form).await
}

async fn preview_inline(
    State(state): State<AppState>,
    principal: Principal,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    principal.require("imports/templates:create")?;
    let form = read_form(multipart, state.limits.max_upload_bytes, None).await?;
    let Some(text) = form.field("template") else {
        return Err(invalid(
            &["template"],
            "the template part is required (the template JSON to preview)",
            "missing",
        ));
    };
    let template = intake_engine::load("template", text)
        .map_err(|e: TemplateError| ApiError::Validation(template_problems(&e, &["template"])))?;
    preview(template, form).await
}

async fn preview(template: Template, form: Form) -> Result<Response, ApiError> {
    let rows = rows(&form)?;
    let Some(FormFile { name, bytes, .. }) = form.file else {
        return Err(invalid(&["file"], "the file part is required", "missing"));
    };
    let bytes = bytes.unwrap_or_default();
    let report = tokio::task::spawn_blocking(move || {
        preview_file(&template, &name, bytes.as_slice(), rows).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::Misconfigured(format!("internal error: the preview failed: {e}")))?
    .map_err(|message| invalid(&["file"], message, "file_error"))?;
    let body: Value = serde_json::to_value(&report)
        .map_err(|e| ApiError::Misconfigured(format!("internal error: {e}")))?;
    Ok(Json(body).into_response())
}
