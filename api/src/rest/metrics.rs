//! `GET /metrics`: Prometheus text format, no token (aggregates over every tenant, no tenant
//! labels, nothing from any item's content).
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `intake_import_runs{status}` | gauge | import runs in the state store per status (`queued`, `running`, `succeeded`, `partially_succeeded`, `failed`) |
//! | `intake_import_rows{outcome}` | gauge | rows of those runs per outcome (`read`, `valid`, `rejected`, `created`, `updated`, `deleted`, `skipped_already_written`) |
//! | `intake_job_queue_depth` | gauge | jobs still to run (waiting, running, to be retried); absent without a queue |
//! | `intake_sources_in_error` | gauge | sources whose last poll failed |
//! | `intake_poll_errors_total{source}` | counter | failed polls in this process |
//! | `intake_platform_write_seconds{method,outcome}` | histogram | latency of this process's writes to the platform |
//!
//! The gauges are read from the store and the queue when scraped, so they are right whichever
//! process did the work; the counter and the histogram are this process's
//! ([`intake_engine::metrics`]). A store that does not answer is 503.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::errors::store_error;
use crate::conventions::ApiError;

/// The route.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let statistics = state.store.run_statistics().await.map_err(store_error)?;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP intake_import_runs Import runs in the state store, by status.");
    let _ = writeln!(out, "# TYPE intake_import_runs gauge");
    for (status, runs, _) in &statistics.by_status {
        let _ = writeln!(out, "intake_import_runs{{status=\"{}\"}} {runs}", escape(status));
    }
    let _ = writeln!(out, "# HELP intake_import_rows Rows of the import runs, by outcome.");
    let _ = writeln!(out, "# TYPE intake_import_rows gauge");
    let mut totals = [0u64; 7];
    for (_, _, counts) in &statistics.by_status {
        let each = [
            counts.read,
            counts.valid,
            counts.rejected,
            counts.created,
            counts.updated,
            counts.deleted,
            counts.skipped_already_written,
        ];
        for (total, n) in totals.iter_mut().zip(each) {
            *total = total.saturating_add(n);
        }
    }
    let outcomes =
        ["read", "valid", "rejected", "created", "updated", "deleted", "skipped_already_written"];
    for (outcome, total) in outcomes.iter().zip(totals) {
        let _ = writeln!(out, "intake_import_rows{{outcome=\"{outcome}\"}} {total}");
    }
    let _ = writeln!(out, "# HELP intake_sources_in_error Sources whose last poll failed.");
    let _ = writeln!(out, "# TYPE intake_sources_in_error gauge");
    let _ = writeln!(out, "intake_sources_in_error {}", statistics.sources_in_error);
    if let Some(queue) = &state.queue {
        let depth = queue.depth().await.map_err(|e| ApiError::Unavailable {
            error: "job_queue_unavailable",
            message: format!("the job queue failed: {e}"),
        })?;
        let _ = writeln!(out, "# HELP intake_job_queue_depth Jobs still to run.");
        let _ = writeln!(out, "# TYPE intake_job_queue_depth gauge");
        let _ = writeln!(out, "intake_job_queue_depth {depth}");
    }
    if let Some(process) = intake_engine::metrics::metrics() {
        out.push_str(&process.render());
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
