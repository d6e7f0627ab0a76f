//! A file uploaded through the REST layer (`POST /imports/runs`) imported under its run: the
//! same steps as a source file's import ([`super::import_source_file`], step 3), without a
//! source, a claim, matching or post-processing — the uploader named the template, and the file
//! is the uploaded bytes kept at `path`.
//!
//! The run is created by the caller (`queued`, with its template and the upload's name) before
//! the import starts, so an upload has a run id whether it is imported inline or by a job.
//! [`import_uploaded_file`] moves it `queued → running`, imports the file (rejected rows become
//! rejected records as they come, written keys are recorded), and finishes it with its final
//! status, counts and timings in one transaction. A run found `running` (an attempt that
//! crashed) is resumed: the writer's deterministic idempotency keys (run key = template id +
//! content hash) keep every row from being written twice. A run already final is returned as it
//! is, so importing the same upload again does nothing.

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::tally::Tally;
use super::{Concluded, RunnerError, RunnerOptions, elapsed_ms, import_and_conclude, template_key};
use crate::m2m::ApiClient;
use crate::m2m::writer::run_key;
use crate::store::{ImportRun, RunOutcome, RunStatus, Store};
use crate::template::Template;

/// Everything the import of one uploaded file needs.
#[derive(Debug)]
pub struct UploadImport<'a> {
    /// The state store.
    pub store: &'a Store,
    /// The tenant that uploaded the file.
    pub tenant: &'a str,
    /// The run created for the upload (`queued`, or `running` when resumed).
    pub run_id: &'a str,
    /// The template the uploader named (its store id is the run's `template_id`).
    pub template: &'a Template,
    /// Where the uploaded bytes are kept.
    pub path: &'a Path,
    /// The platform client rows are written through.
    pub client: ApiClient,
    /// Behaviour (the progress interval).
    pub options: &'a RunnerOptions,
    /// Stops the import; the run stays `running` ([`RunnerError::Cancelled`]).
    pub cancel: CancellationToken,
}

/// Imports an uploaded file under its run; see the module documentation. Returns the run as it
/// ended.
pub async fn import_uploaded_file(job: UploadImport<'_>) -> Result<ImportRun, RunnerError> {
    let run = job.store.get_run(job.tenant, job.run_id).await?;
    let resumed = match run.body.status {
        RunStatus::Queued => {
            job.store.start_run(job.tenant, job.run_id).await?;
            false
        }
        RunStatus::Running => true,
        _ => return Ok(run),
    };
    let template = job.template;
    let template_id = template_key(template);
    let source_name = run.body.source_name.clone().unwrap_or_else(|| "upload".to_owned());
    let hashing = Instant::now();
    let sha256 = {
        let path = job.path.to_path_buf();
        tokio::task::spawn_blocking(move || file_sha256(&path))
            .await
            .map_err(|e| RunnerError::Internal(e.to_string()))?
            .map_err(|error| RunnerError::Snapshot { path: source_name.clone(), error })?
    };
    let hash_ms = elapsed_ms(hashing);
    let key = run_key(&template_id, &sha256);
    let mut tally = Tally::new(
        job.store,
        job.tenant,
        job.run_id,
        &template_id,
        &key,
        json!({"hash_ms": hash_ms, "resumed": resumed, "upload": true}),
    );
    let (concluded, import_ms) = import_and_conclude(
        template,
        job.path,
        job.client.clone(),
        &mut tally,
        job.options,
        &job.cancel,
    )
    .await?;
    let Concluded { status, error, failure, counts, warnings, rejected } =
        concluded.map_err(|e| e.for_file(&source_name, job.run_id))?;
    let mut timings = json!({
        "hash_ms": hash_ms,
        "import_ms": import_ms,
        "resumed": resumed,
        "upload": true,
        "post_process": {"policy": "keep"},
    });
    if !warnings.is_empty() {
        timings["warnings"] = json!(warnings);
    }
    if let Some(failure) = failure {
        timings["failure"] = json!(failure);
    }
    let outcome = RunOutcome { status, counts, timings, error };
    Ok(job.store.finish_run(job.tenant, job.run_id, &outcome, &rejected).await?)
}

/// SHA-256 of a file's bytes, lowercase hex.
fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
