//! `POST /imports/runs`: a file uploaded to be imported with one of the tenant's templates.
//!
//! The request is `multipart/form-data` with a `template_id` field (a template of the caller's
//! tenant in the store) and a `file` part; it needs `imports/runs:create`. The file is streamed
//! to disk (never held in memory); a file larger than the server's upload limit is **413**.
//!
//! # Inline or queued
//! The template's `offload_policy` decides, with these defaults:
//! - `inline_max_size_mb` (default [`DEFAULT_INLINE_MAX_SIZE_MB`]): files up to this many MiB …
//! - `inline_max_estimated_rows` (default [`DEFAULT_INLINE_MAX_ESTIMATED_ROWS`]): … whose
//!   estimated row count (the line count of the first 64 KiB, scaled to the file's size) is at
//!   most this many …
//!
//! … are imported **inline**: the request waits for the import, which writes through the
//! tenant's platform client ([`super::PlatformClients`]); the answer is **200** with the
//! finished run (its `status`, `counts` and `error`), its `ETag` and `Location:
//! /imports/runs/{id}`. Rejected rows are rejected records of that run, as for any import.
//!
//! Larger files are **queued**: [`UploadSettings::queued`] receives the run and the kept file
//! (`intake serve` enqueues an `ImportUpload` job its workers import), and the answer is **202**
//! `{"_id", "status": "queued", …}` (the run) with `Location: /imports/runs/{id}`; the run is
//! followed with `GET /imports/runs/{id}`. A server without a queued-upload hand-off (`intake
//! api` alone) answers 503 `queue_not_configured` for such files, before any run is created.
//!
//! # Errors
//! - no platform client for the tenant: **503** `platform_not_configured` (nothing is stored);
//! - no `file` part, no `template_id`, or an unknown template: **422** at `["body", …]`;
//! - a stored template that is not valid any more: **422** at `["body", "template_id"]`.

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use intake_engine::runner::{
    RunnerOptions, StoredTemplateError, UploadImport, import_uploaded_file, stored_template,
};
use intake_engine::store::{
    ImportRun, NewImportRun, RunCounts, RunOutcome, RunStatus, new_object_id,
};
use intake_engine::template::Template;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::errors::{store_error, unavailable};
use super::item::item_response;
use super::schemas::{invalid, template_problems};
use crate::auth::Principal;
use crate::conventions::ApiError;

/// Files up to this many MiB are imported inline unless the template says otherwise.
pub const DEFAULT_INLINE_MAX_SIZE_MB: f64 = 10.0;
/// Files of up to this many estimated rows are imported inline unless the template says
/// otherwise.
pub const DEFAULT_INLINE_MAX_ESTIMATED_ROWS: u64 = 10_000;
/// The longest text field (`template_id`, `rows`, an inline `template`) accepted.
const MAX_FIELD_BYTES: usize = 1024 * 1024;
/// The sample the row estimate is taken from.
const ESTIMATE_SAMPLE_BYTES: usize = 64 * 1024;

/// A queued upload handed off for import: the tenant, the `queued` run and the kept file (which
/// the hand-off owns from then on; import it with
/// [`import_uploaded_file`](intake_engine::runner::import_uploaded_file)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedUpload {
    /// The tenant that uploaded the file.
    pub tenant_id: String,
    /// The run, `queued`.
    pub run_id: String,
    /// The run's template (its store id).
    pub template_id: String,
    /// Where the uploaded bytes are kept.
    pub path: PathBuf,
}

/// What hands a queued upload to the workers; an error is the reason it could not (the run
/// then ends `failed` with it).
pub type QueueUpload = Arc<
    dyn Fn(QueuedUpload) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// Where uploads are kept and how large ones are handed to the workers.
#[derive(Clone, Default)]
pub struct UploadSettings {
    /// Where uploaded files are kept while they are imported (a folder of the server's data
    /// directory); the system's temporary folder when none.
    pub dir: Option<PathBuf>,
    /// The hand-off of uploads too large to import inline; none: such uploads are refused (503
    /// `queue_not_configured`).
    pub queued: Option<QueueUpload>,
}

impl std::fmt::Debug for UploadSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSettings")
            .field("dir", &self.dir)
            .field("queued", &self.queued.is_some())
            .finish()
    }
}

/// The upload route.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/imports/runs", post(upload))
        .route("/imports/runs/", post(upload))
        // The upload limit is enforced while the parts are read (413), not by axum's default.
        .layer(DefaultBodyLimit::disable())
}

// ---- multipart forms ----------------------------------------------------------------------------

/// The file part of a form.
#[derive(Debug)]
pub(crate) struct FormFile {
    /// The file name the client gave (or `upload`).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The bytes, when read into memory.
    pub bytes: Option<Vec<u8>>,
    /// Where the bytes were written, when streamed to disk.
    pub path: Option<PathBuf>,
}

/// A `multipart/form-data` request: its text fields and its one `file` part.
#[derive(Debug, Default)]
pub(crate) struct Form {
    fields: HashMap<String, String>,
    /// The `file` part, if sent.
    pub file: Option<FormFile>,
}

impl Form {
    /// A text field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the file is larger than this server's upload limit of {max} bytes"
    ))
}

fn multipart_error(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(error.body_text())
    } else {
        ApiError::BadRequest(format!(
            "the multipart/form-data body cannot be read: {}",
            error.body_text()
        ))
    }
}

/// Reads a form: text fields into memory (up to 1 MiB each), the `file` part into memory or,
/// with `dir`, streamed into a new file there. A `file` over `max_file_bytes` is 413 (a file
/// already partly written is removed).
pub(crate) async fn read_form(
    mut multipart: Multipart,
    max_file_bytes: u64,
    dir: Option<&Path>,
) -> Result<Form, ApiError> {
    let mut form = Form::default();
    let result = async {
        while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                if form.file.is_some() {
                    return Err(ApiError::BadRequest("more than one file part".into()));
                }
                let file_name =
                    field.file_name().filter(|n| !n.is_empty()).unwrap_or("upload").to_owned();
                let mut file = FormFile { name: file_name, size: 0, bytes: None, path: None };
                let mut sink = match dir {
                    Some(dir) => {
                        let path = dir.join(format!("{}.upload", new_object_id()));
                        let out = tokio::fs::File::create(&path).await.map_err(|e| {
                            unavailable("upload_storage", format!("cannot keep the upload: {e}"))
                        })?;
                        file.path = Some(path);
                        Some(out)
                    }
                    None => {
                        file.bytes = Some(Vec::new());
                        None
                    }
                };
                // Registered before the first chunk, so a failure removes what was written.
                form.file = Some(file);
                let Some(file) = form.file.as_mut() else { break };
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    file.size += chunk.len() as u64;
                    if file.size > max_file_bytes {
                        return Err(too_large(max_file_bytes));
                    }
                    match (&mut sink, &mut file.bytes) {
                        (Some(out), _) => out.write_all(&chunk).await.map_err(|e| {
                            unavailable("upload_storage", format!("cannot keep the upload: {e}"))
                        })?,
                        (None, Some(bytes)) => bytes.extend_from_slice(&chunk),
                        (None, None) => {}
                    }
                }
                if let Some(mut out) = sink {
                    out.flush().await.map_err(|e| {
                        unavailable("upload_storage", format!("cannot keep the upload: {e}"))
                    })?;
                    out.sync_all().await.map_err(|e| {
                        unavailable("upload_storage", format!("cannot keep the upload: {e}"))
                    })?;
                }
            } else {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    text.extend_from_slice(&chunk);
                    if text.len() > MAX_FIELD_BYTES {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "the {name} field is longer than {MAX_FIELD_BYTES} bytes"
                        )));
                    }
                }
                let text = String::from_utf8(text).map_err(|_| {
                    ApiError::BadRequest(format!("the {name} field is not UTF-8 text"))
                })?;
                form.fields.insert(name, text);
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(form),
        Err(e) => {
            if let Some(path) = form.file.and_then(|f| f.path) {
                let _ = tokio::fs::remove_file(path).await;
            }
            Err(e)
        }
    }
}

// ---- the upload -------------------------------------------------------------------------------

/// The inline limits of a template: its `offload_policy` over the defaults.
fn inline_limits(template: &Template) -> (u64, u64) {
    let policy = template.offload_policy.as_ref();
    let size_mb = policy
        .and_then(|p| p.get("inline_max_size_mb"))
        .and_then(Value::as_f64)
        .filter(|mb| *mb >= 0.0)
        .unwrap_or(DEFAULT_INLINE_MAX_SIZE_MB);
    let rows = policy
        .and_then(|p| p.get("inline_max_estimated_rows"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_INLINE_MAX_ESTIMATED_ROWS);
    // Whole bytes; a fraction of a byte does not matter.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes = (size_mb * 1024.0 * 1024.0) as u64;
    (bytes, rows)
}

/// The file's row count estimated from the line count of its first 64 KiB.
fn estimated_rows(path: &Path, size: u64) -> std::io::Result<u64> {
    let mut sample = Vec::with_capacity(ESTIMATE_SAMPLE_BYTES);
    std::fs::File::open(path)?.take(ESTIMATE_SAMPLE_BYTES as u64).read_to_end(&mut sample)?;
    if sample.is_empty() {
        return Ok(0);
    }
    let lines = sample.iter().filter(|b| **b == b'\n').count().max(1) as u64;
    // lines × size / sample, rounded up, in integers.
    Ok((lines.saturating_mul(size)).div_ceil(sample.len() as u64))
}

/// Removes the kept file, logging a failure.
async fn remove(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove an uploaded file");
    }
}

fn run_response(status: StatusCode, run: &ImportRun) -> Response {
    let mut response = item_response(status, &run.to_json(), &run.meta.revision_id);
    if let Ok(location) = HeaderValue::from_str(&format!("/imports/runs/{}", run.meta.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    principal.require("imports/runs:create")?;
    let tenant = principal.tenant_id.clone();
    let dir = match &state.uploads.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir(),
    };
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        unavailable("upload_storage", format!("cannot create the upload folder: {e}"))
    })?;
    let form = read_form(multipart, state.limits.max_upload_bytes, Some(&dir)).await?;
    let path = form.file.as_ref().and_then(|f| f.path.clone());
    let result = import(&state, &tenant, form).await;
    // An inline import is over and a refused upload is not kept; a queued one owns its file.
    if let (Some(path), Ok((StatusCode::OK, _)) | Err(_)) = (&path, &result) {
        remove(path).await;
    }
    result.map(|(status, run)| run_response(status, &run))
}

/// Imports (or queues) the upload of `form`; the answer's status and the run.
async fn import(
    state: &AppState,
    tenant: &str,
    form: Form,
) -> Result<(StatusCode, ImportRun), ApiError> {
    let Some(template_id) = form.field("template_id").map(str::trim).filter(|t| !t.is_empty())
    else {
        return Err(invalid(&["template_id"], "template_id is required", "missing"));
    };
    let Some(file) = form.file.as_ref() else {
        return Err(invalid(&["file"], "the file part is required", "missing"));
    };
    let Some(path) = file.path.clone() else {
        return Err(ApiError::Misconfigured("internal error: the upload was not kept".into()));
    };
    let template = match stored_template(&state.store, tenant, template_id).await {
        Ok(template) => template,
        Err(e) if e.is_not_found() => {
            return Err(invalid(
                &["template_id"],
                format!("no template {template_id} in this tenant"),
                "not_found",
            ));
        }
        Err(StoredTemplateError::Store(e)) => return Err(store_error(e)),
        Err(StoredTemplateError::Invalid { source, .. }) => {
            return Err(ApiError::Validation(template_problems(&source, &["template_id"])));
        }
    };
    let (max_bytes, max_rows) = inline_limits(&template);
    let size = file.size;
    let rows = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || estimated_rows(&path, size))
            .await
            .map_err(|e| ApiError::Misconfigured(format!("internal error: {e}")))?
            .map_err(|e| unavailable("upload_storage", format!("cannot read the upload: {e}")))?
    };
    let inline = size <= max_bytes && rows <= max_rows;
    let client = state.platform.client(tenant);
    if inline && client.is_none() {
        return Err(unavailable(
            "platform_not_configured",
            format!(
                "this server has no platform connection for tenant {tenant}: uploaded files \
                 cannot be imported here"
            ),
        ));
    }
    if !inline && state.uploads.queued.is_none() {
        return Err(unavailable(
            "queue_not_configured",
            format!(
                "the file ({size} bytes, about {rows} rows) is over the template's inline limits \
                 ({max_bytes} bytes, {max_rows} rows) and this server has no job queue for \
                 uploads"
            ),
        ));
    }
    let new = NewImportRun {
        source_id: None,
        template_id: Some(template_id.to_owned()),
        claim_id: None,
        source_name: Some(file.name.clone()),
    };
    let run = state.store.create_run(tenant, &new).await.map_err(store_error)?;
    match (client, &state.uploads.queued) {
        (Some(client), _) if inline => {
            let job = UploadImport {
                store: &state.store,
                tenant,
                run_id: &run.meta.id,
                template: &template,
                path: &path,
                client,
                options: &RunnerOptions::default(),
                cancel: CancellationToken::new(),
            };
            let run = import_uploaded_file(job).await.map_err(|e| {
                tracing::warn!(run = %run.meta.id, error = %e, "inline upload failed");
                unavailable(
                    "import_failed",
                    format!("the import of run {} failed: {e}", run.meta.id),
                )
            })?;
            Ok((StatusCode::OK, run))
        }
        (_, Some(queue)) => {
            let queued = QueuedUpload {
                tenant_id: tenant.to_owned(),
                run_id: run.meta.id.clone(),
                template_id: template_id.to_owned(),
                path: path.clone(),
            };
            if let Err(reason) = queue(queued).await {
                let outcome = RunOutcome {
                    status: RunStatus::Failed,
                    counts: RunCounts::default(),
                    timings: json!({"upload": true}),
                    error: Some(format!("the upload could not be queued: {reason}")),
                };
                let _ = state.store.finish_run(tenant, &run.meta.id, &outcome, &[]).await;
                return Err(unavailable(
                    "queue_unavailable",
                    format!("the upload could not be queued: {reason}"),
                ));
            }
            Ok((StatusCode::ACCEPTED, run))
        }
        _ => Err(ApiError::Misconfigured("internal error: no way to import the upload".into())),
    }
}
