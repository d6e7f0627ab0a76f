//! One ready file of a source turned into a durable, exactly-once outcome: the body of the
//! "import a file" job.
//!
//! [`import_source_file`] takes everything it needs as explicit inputs ([`FileImport`]) and goes
//! through these steps:
//!
//! 1. **Snapshot and claim.** The file is streamed from the source into a private temporary file
//!    (every source alike, local folders included), hashing as it goes. The claim is
//!    `(source, path, size, mtime/ETag, content hash)`; the import reads exactly the claimed
//!    bytes, so a file rewritten in place during the import cannot mix two versions. A file whose
//!    size or version changed since it was listed is [`SkipReason::ChangedSinceListed`] (the next
//!    poll sees it again). A file inside a post-processing folder (a template's
//!    `completed_folder`/`error_folder`, or the source's unmatched folder) is never imported.
//! 2. **Match** ([`crate::matcher::select`]). No template: an *unmatched_file* event, recorded as
//!    an import run with no template that goes `queued → failed` with the error
//!    `unmatched_file: …` (which moves the claim to `failed` in the same transaction) and raised
//!    as an `unmatched_file` event ([`crate::events`]); the file goes to the source's unmatched
//!    folder (default [`DEFAULT_UNMATCHED_FOLDER`]) when `move_unmatched_to_error`.
//! 3. **Run.** `queued → running`, the claim `importing` with the run's id; then
//!    [`crate::import::import_file`] on the snapshot. Pipeline rejections are stored as rejected
//!    records as they come (`original_data` is the row as parsed, `validation_errors` its
//!    [`RowError`](intake_parsers::RowError)s); rows the API refused become rejected records too
//!    (their original data read back from the snapshot). Counts, written keys and timings are
//!    flushed every [`RunnerOptions::progress_interval`]. `finish_run` ends the run with its
//!    final counts, timings (`hash_ms`, `import_ms`, `post_process`, `warnings`) and remaining
//!    rejected records, and the claim `done`/`failed`, in one transaction.
//!    Status: `failed` when the file could not be parsed, the template cannot run on it, an
//!    `all_or_nothing` file was refused, the writer failed (403, retries exhausted, share guard…)
//!    or every row was rejected; `partially_succeeded` when some rows were rejected or an
//!    `assert_empty` template got rows (a *warning run*: the rows are still written, and
//!    `timings.warnings` says why); `succeeded` otherwise (an empty file included).
//! 4. **Post-process** (`post_process_policy: move`): the target (`completed_folder` for a
//!    succeeded or partially succeeded run, `error_folder` for a failed one) and a free name in it
//!    (`name (1).ext`… — never overwriting) are chosen *before* `finish_run` and recorded in the
//!    run's `timings.post_process.to`; the move (a no-overwrite rename) happens after. The source
//!    has no field for the final path yet, so `timings.post_process` is where it is recorded.
//!
//! ## What guarantees what
//! - *A file version is imported at most once*: the store's unique claim. A claim found `done`
//!   or `failed` is [`FileOutcome::Skipped`] ([`SkipReason::AlreadyImported`]); a claim found
//!   `claimed`/`importing` belongs to an import in flight or to a crashed one — the runner
//!   cannot tell which, so it resumes it only with [`RunnerOptions::resume_unfinished`] (the job
//!   layer sets it when it knows no other worker holds the file: a re-delivered job, recovery
//!   at start-up), and otherwise skips ([`SkipReason::InFlight`]).
//! - *No row written twice*, also when a run is resumed after a crash: the writer sends every
//!   create with a deterministic `Idempotency-Key` (run key = template id + content hash, row
//!   number, row body), so a re-sent create is answered from the platform's idempotency record;
//!   update/upsert/delete re-apply to the same values (they come back `unchanged`); with
//!   `idempotency.natural_key_fields` the writer also looks up and skips rows whose record
//!   exists (create/append), which holds even after the platform forgot the key.
//! - *Counts add up on a resumed run*: every written row's key (`<run key>:<row number>`) is
//!   stored with `record_written_keys` as the row is written. A resumed run re-reads the whole
//!   file and counts a created row whose key an earlier attempt already recorded, and every
//!   `unchanged` row, as `skipped_already_written`. So `read = rejected + created + updated +
//!   deleted + skipped_already_written` for a run that was not stopped. The resumed attempt
//!   re-sends those rows (answered by the idempotency mechanisms above) rather than skipping
//!   them before the writer: `import_file` has no hook for that yet.
//! - *Post-processing happens once*: the claim is final before the move, so nothing re-imports
//!   the file; a crash between `finish_run` and the move leaves the file at its path with a
//!   final claim, and the next time it is seen the recorded move is carried out (a file already
//!   gone is left alone, a move interrupted between link and unlink is completed).
//! - *Cancellation* stops the writer; the run stays `running` and the claim `importing`, and
//!   [`RunnerError::Cancelled`] tells the job not to acknowledge: the next attempt resumes.
//!
//! Not here: retries with backoff (the job queue), polling (the poller), alerts.

mod placement;
mod retry;
mod snapshot;
mod stored;
mod tally;
mod upload;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use intake_sources::{FileEntry, Source, SourceError};
use serde_json::{Map, Value, json};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use placement::Placement;
pub use retry::{RecordRetry, RecordsRetry, RetryOutcome, RetryReport, retry_rejected_records};
pub use stored::{StoredTemplateError, stored_template, template_from_document};
pub use upload::{UploadImport, import_uploaded_file};

use crate::import::{ImportError, import_file};
use crate::m2m::ApiClient;
use crate::m2m::writer::run_key;
use crate::matcher;
use crate::store::{
    ClaimOutcome, ClaimState, Collection, FileClaim, ImportRun, ListQuery, NewFileClaim,
    NewImportRun, NewRejectedRecord, RunCounts, RunOutcome, RunStatus, Store, StoreError,
};
use crate::template::{PostProcessPolicy, Template};
use placement::PlannedMove;
use snapshot::Snapshot;
use tally::Tally;

/// The folder unmatched files are moved to when the source says `move_unmatched_to_error`
/// (templates have their own `error_folder`, but an unmatched file has no template).
pub const DEFAULT_UNMATCHED_FOLDER: &str = "errors";

/// Why importing a file could not reach a durable outcome; the job retries when
/// [`RunnerError::is_retryable`] says so. Everything about the file's content (unreadable,
/// rejected rows, a refused write) is an outcome on the run, not an error.
#[derive(Debug, Error)]
pub enum RunnerError {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source failed (reading, stat, moving).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The local temporary copy could not be written or read.
    #[error("cannot keep a local copy of {path}: {error}")]
    Snapshot {
        /// The file's path on its source.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The import was cancelled; the run stays `running` and resumes on the next attempt.
    #[error("the import of {path} was cancelled; run {run_id} resumes on the next attempt")]
    Cancelled {
        /// The file's path on its source.
        path: String,
        /// The run left `running`.
        run_id: String,
    },
    /// A task ended abnormally (our bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunnerError {
    /// Whether running the same job again can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            RunnerError::Store(e) => e.is_retryable(),
            RunnerError::Source(e) => e.is_retryable(),
            RunnerError::Snapshot { .. } | RunnerError::Cancelled { .. } => true,
            RunnerError::Internal(_) => false,
        }
    }
}

/// The source a file came from, as the runner needs it.
#[derive(Clone)]
pub struct SourceContext {
    /// The source's id in the store (part of every claim).
    pub id: String,
    /// The source itself.
    pub source: Arc<dyn Source>,
    /// Move files no template matches to [`SourceContext::unmatched_folder`].
    pub move_unmatched_to_error: bool,
    /// Where unmatched files go (relative to the source root).
    pub unmatched_folder: String,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("id", &self.id)
            .field("source", &self.source.name())
            .field("move_unmatched_to_error", &self.move_unmatched_to_error)
            .field("unmatched_folder", &self.unmatched_folder)
            .finish()
    }
}

impl SourceContext {
    /// A source that leaves unmatched files in place.
    pub fn new(id: impl Into<String>, source: Arc<dyn Source>) -> Self {
        SourceContext {
            id: id.into(),
            source,
            move_unmatched_to_error: false,
            unmatched_folder: DEFAULT_UNMATCHED_FOLDER.to_owned(),
        }
    }
}

/// How the runner behaves.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Resume a claim found `claimed`/`importing` (a crashed import). Set it only when no other
    /// worker can be importing the file right now.
    pub resume_unfinished: bool,
    /// How often counts, written keys and rejected records are flushed during an import.
    pub progress_interval: Duration,
    /// Where the local copy of the file is kept; the system's temporary folder when none.
    pub work_dir: Option<PathBuf>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            resume_unfinished: false,
            progress_interval: Duration::from_secs(1),
            work_dir: None,
        }
    }
}

/// Everything one import of one file needs.
#[derive(Debug)]
pub struct FileImport<'a> {
    /// The state store.
    pub store: &'a Store,
    /// The tenant the source belongs to.
    pub tenant: &'a str,
    /// The source.
    pub source: &'a SourceContext,
    /// The source's templates (inactive and deleted ones are ignored by the matcher).
    pub templates: &'a [Template],
    /// The platform client rows are written through.
    pub client: ApiClient,
    /// The ready file, as the poller listed it.
    pub file: &'a FileEntry,
    /// Behaviour.
    pub options: &'a RunnerOptions,
    /// Stops the import; see [`RunnerError::Cancelled`].
    pub cancel: CancellationToken,
}

/// Why a file was not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// This exact version was imported (or failed) before.
    AlreadyImported,
    /// Another import of this version has not finished (and resuming was not asked for).
    InFlight,
    /// The file changed after it was listed; the next poll sees the new version.
    ChangedSinceListed,
    /// The file lies in a post-processing folder.
    InPostProcessFolder,
}

/// What became of the file.
#[derive(Debug, Clone)]
pub enum FileOutcome {
    /// A run ended (any final status).
    Imported {
        /// The finished run.
        run: Box<ImportRun>,
        /// Whether it continued a run an earlier attempt had started.
        resumed: bool,
        /// Where the file is now.
        placement: Placement,
    },
    /// No template matched: the run recording it (failed, no template).
    Unmatched {
        /// The failed run that records the `unmatched_file` event.
        run: Box<ImportRun>,
        /// Where the file is now.
        placement: Placement,
    },
    /// Nothing was imported.
    Skipped {
        /// Why.
        reason: SkipReason,
        /// The claim found, if any.
        claim_id: Option<String>,
        /// A post-processing an earlier attempt left undone, carried out now.
        placement: Option<Placement>,
    },
}

/// Imports one ready file of a source; see the module documentation.
pub async fn import_source_file(job: FileImport<'_>) -> Result<FileOutcome, RunnerError> {
    let source = job.source.source.as_ref();
    let file = job.file;
    if in_post_process_folder(&job) {
        return Ok(skipped(SkipReason::InPostProcessFolder, None, None));
    }

    let hashing = Instant::now();
    let snapshot = snapshot::take(source, &file.path, job.options.work_dir.as_deref()).await?;
    let hash_ms = elapsed_ms(hashing);
    let current = match source.stat(&file.path).await {
        Ok(current) => current,
        Err(SourceError::NotFound { .. }) => {
            return Ok(skipped(SkipReason::ChangedSinceListed, None, None));
        }
        Err(e) => return Err(e.into()),
    };
    if snapshot.bytes != file.size
        || current.size != file.size
        || current.version_token() != file.version_token()
    {
        return Ok(skipped(SkipReason::ChangedSinceListed, None, None));
    }

    let claim = NewFileClaim {
        source_id: job.source.id.clone(),
        path: file.path.clone(),
        size: file.size,
        modified: file.modified.map(DateTime::<Utc>::from),
        version: file.version.clone(),
        content_sha256: snapshot.sha256.clone(),
    };
    let (claim, resumed) = match job.store.claim_file(job.tenant, &claim).await? {
        ClaimOutcome::Claimed(claim) => (claim, false),
        ClaimOutcome::AlreadyClaimed(claim) => match claim.state {
            ClaimState::Done | ClaimState::Failed => {
                let placement = finish_post_processing(&job, &claim, &snapshot.sha256).await?;
                return Ok(skipped(SkipReason::AlreadyImported, Some(claim.meta.id), placement));
            }
            ClaimState::Claimed | ClaimState::Importing if !job.options.resume_unfinished => {
                return Ok(skipped(SkipReason::InFlight, Some(claim.meta.id), None));
            }
            ClaimState::Claimed | ClaimState::Importing => (claim, true),
        },
    };

    let existing =
        if resumed { unfinished_run(job.store, job.tenant, &claim).await? } else { None };
    let (run, template) = match existing {
        Some(run) => {
            let wanted = run.body.template_id.clone();
            let template = wanted
                .as_deref()
                .and_then(|id| job.templates.iter().find(|t| template_key(t) == id));
            match (wanted, template) {
                (None, _) => return unmatched(&job, &claim, Some(run), hash_ms).await,
                (Some(_), Some(template)) => (run, template),
                (Some(id), None) => {
                    let error = format!("template {id} of this run is no longer available");
                    let run = fail_before_import(&job, run, &error, hash_ms).await?;
                    let placement = Placement::Kept;
                    return Ok(FileOutcome::Imported { run: Box::new(run), resumed, placement });
                }
            }
        }
        None => {
            let Some(selection) = matcher::select(job.templates, &file.path) else {
                return unmatched(&job, &claim, None, hash_ms).await;
            };
            if !selection.tied_with.is_empty() {
                tracing::warn!(
                    path = %file.path,
                    chosen = %selection.template.name,
                    tied_with = ?selection.tied_with.iter().map(|t| &t.name).collect::<Vec<_>>(),
                    "several templates match with the same priority; chose by name"
                );
            }
            let template = selection.template;
            let run = job
                .store
                .create_run(
                    job.tenant,
                    &NewImportRun {
                        source_id: Some(job.source.id.clone()),
                        template_id: Some(template_key(template)),
                        claim_id: Some(claim.meta.id.clone()),
                        source_name: Some(file.path.clone()),
                    },
                )
                .await?;
            (run, template)
        }
    };
    if claim.state != ClaimState::Importing {
        job.store
            .set_claim_state(job.tenant, &claim.meta.id, ClaimState::Importing, Some(&run.meta.id))
            .await?;
    }
    let run = if run.body.status == RunStatus::Queued {
        job.store.start_run(job.tenant, &run.meta.id).await?
    } else {
        run
    };
    let (run, placement) = execute(&job, run, template, &snapshot, hash_ms, resumed).await?;
    Ok(FileOutcome::Imported { run: Box::new(run), resumed, placement })
}

fn skipped(
    reason: SkipReason,
    claim_id: Option<String>,
    placement: Option<Placement>,
) -> FileOutcome {
    FileOutcome::Skipped { reason, claim_id, placement }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The id a template is known by in runs, keys and run keys (as [`import_file`] computes it).
pub fn template_key(template: &Template) -> String {
    template.id.as_ref().map(ToString::to_string).unwrap_or_else(|| template.name.clone())
}

/// Whether the file lies in a folder post-processing moves files into.
fn in_post_process_folder(job: &FileImport<'_>) -> bool {
    let mut folders: Vec<&str> = job
        .templates
        .iter()
        .filter(|t| t.post_process_policy == PostProcessPolicy::Move)
        .flat_map(|t| [t.completed_folder.as_deref(), t.error_folder.as_deref()])
        .flatten()
        .collect();
    if job.source.move_unmatched_to_error {
        folders.push(&job.source.unmatched_folder);
    }
    folders
        .into_iter()
        .filter_map(placement::normalized)
        .any(|folder| placement::is_inside(&job.file.path, &folder))
}

/// The run an earlier attempt started for this claim, if it is not final.
async fn unfinished_run(
    store: &Store,
    tenant: &str,
    claim: &FileClaim,
) -> Result<Option<ImportRun>, RunnerError> {
    if let Some(run_id) = &claim.run_id {
        let run = store.get_run(tenant, run_id).await?;
        return Ok((!run.body.status.is_final()).then_some(run));
    }
    // A crash between creating the run and recording it on the claim.
    let query = ListQuery::new().eq("claim_id", claim.meta.id.clone()).page(1, 100);
    let runs = store.list(Collection::ImportRuns, tenant, &query).await?;
    for document in runs.items {
        let run: ImportRun = document.decode()?;
        if !run.body.status.is_final() {
            return Ok(Some(run));
        }
    }
    Ok(None)
}

/// A claim whose import job the job queue gave up on (its attempts ran out, or it failed
/// permanently): what [`fail_given_up_import`] needs.
#[derive(Debug)]
pub struct GivenUpImport<'a> {
    /// The state store.
    pub store: &'a Store,
    /// The tenant the source belongs to.
    pub tenant: &'a str,
    /// The source of the claimed file.
    pub source: &'a SourceContext,
    /// The source's templates.
    pub templates: &'a [Template],
    /// The claim the job was importing.
    pub claim_id: &'a str,
    /// Why the queue gave up (the job's last failure).
    pub reason: &'a str,
}

/// Ends the import of a claim whose job was given up: its unfinished run (one is created if the
/// job never got that far) ends `failed` with the job's reason, the claim `failed`, and the file
/// is post-processed per the run's template (`move`: to its `error_folder`, planned in the run's
/// `timings.post_process` like any failed run, so a crash before the move is completed by the
/// poller). Returns the failed run and where the file is, or `None` when the claim is already
/// final (so calling it again does nothing).
pub async fn fail_given_up_import(
    job: GivenUpImport<'_>,
) -> Result<Option<(ImportRun, Placement)>, RunnerError> {
    let claim = job.store.get_claim(job.tenant, job.claim_id).await?;
    if !matches!(claim.state, ClaimState::Claimed | ClaimState::Importing) {
        return Ok(None);
    }
    let run = match unfinished_run(job.store, job.tenant, &claim).await? {
        Some(run) => run,
        None => {
            let template = matcher::select(job.templates, &claim.path).map(|s| s.template);
            let new = NewImportRun {
                source_id: Some(job.source.id.clone()),
                template_id: template.map(template_key),
                claim_id: Some(claim.meta.id.clone()),
                source_name: Some(claim.path.clone()),
            };
            job.store.create_run(job.tenant, &new).await?
        }
    };
    let template = run
        .body
        .template_id
        .as_deref()
        .and_then(|id| job.templates.iter().find(|t| template_key(t) == id));
    let error_folder = template
        .filter(|t| t.post_process_policy == PostProcessPolicy::Move)
        .and_then(|t| t.error_folder.as_deref())
        .and_then(placement::normalized);
    let wants_move = error_folder.is_some();
    // Moved only if the file at the path is still the claimed version.
    let source = job.source.source.as_ref();
    let file = match source.stat(&claim.path).await {
        Ok(current)
            if current.size == claim.size
                && current.version.as_deref().unwrap_or_default()
                    == claim.version.as_deref().unwrap_or_default()
                && current.modified.map(|m| DateTime::<Utc>::from(m).trunc_subsecs(6))
                    == claim.modified =>
        {
            Some(current)
        }
        Ok(_) | Err(SourceError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let plan = match (&file, error_folder) {
        (Some(file), Some(folder)) => Some(placement::plan(source, file, &folder).await?),
        _ => None,
    };
    let mut timings = match &run.body.timings {
        Value::Object(map) => Value::Object(map.clone()),
        _ => json!({}),
    };
    timings["post_process"] = plan.as_ref().map_or(json!({"policy": "keep"}), PlannedMove::to_json);
    timings["given_up"] = json!(true);
    let error = format!("the import job was given up: {}", job.reason);
    tracing::warn!(claim = %claim.meta.id, run = %run.meta.id, path = %claim.path, %error, "import ended failed");
    let outcome = RunOutcome {
        status: RunStatus::Failed,
        counts: run.body.counts,
        timings,
        error: Some(error),
    };
    let run = job.store.finish_run(job.tenant, &run.meta.id, &outcome, &[]).await?;
    let placement = match (&file, &plan) {
        (Some(file), Some(plan)) => {
            placement::carry_out(source, file, &claim.content_sha256, plan).await?
        }
        (None, _) if wants_move => {
            Placement::LeftInPlace { reason: "the file is gone or changed".into() }
        }
        _ => Placement::Kept,
    };
    Ok(Some((run, placement)))
}

/// Records an unmatched file (a failed run without template) and moves it when the source says so.
async fn unmatched(
    job: &FileImport<'_>,
    claim: &FileClaim,
    run: Option<ImportRun>,
    hash_ms: u64,
) -> Result<FileOutcome, RunnerError> {
    let file = job.file;
    let error = format!(
        "unmatched_file: no active template of source {} matches {:?}",
        job.source.id, file.path
    );
    let run = match run {
        Some(run) => run,
        None => {
            job.store
                .create_run(
                    job.tenant,
                    &NewImportRun {
                        source_id: Some(job.source.id.clone()),
                        template_id: None,
                        claim_id: Some(claim.meta.id.clone()),
                        source_name: Some(file.path.clone()),
                    },
                )
                .await?
        }
    };
    let plan = match job.source.move_unmatched_to_error {
        true => match placement::normalized(&job.source.unmatched_folder) {
            Some(folder) => Some(placement::plan(job.source.source.as_ref(), file, &folder).await?),
            None => None,
        },
        false => None,
    };
    let mut timings = json!({"hash_ms": hash_ms});
    timings["post_process"] = plan.as_ref().map_or(json!({"policy": "keep"}), PlannedMove::to_json);
    let outcome = RunOutcome {
        status: RunStatus::Failed,
        counts: RunCounts::default(),
        timings,
        error: Some(error),
    };
    let run = job.store.finish_run(job.tenant, &run.meta.id, &outcome, &[]).await?;
    let placement = place(job, plan.as_ref(), &claim.content_sha256).await?;
    Ok(FileOutcome::Unmatched { run: Box::new(run), placement })
}

/// Fails a run that cannot import (its template is gone), leaving the file where it is.
async fn fail_before_import(
    job: &FileImport<'_>,
    run: ImportRun,
    error: &str,
    hash_ms: u64,
) -> Result<ImportRun, RunnerError> {
    let outcome = RunOutcome {
        status: RunStatus::Failed,
        counts: run.body.counts,
        timings: json!({"hash_ms": hash_ms, "post_process": {"policy": "keep"}}),
        error: Some(error.to_owned()),
    };
    Ok(job.store.finish_run(job.tenant, &run.meta.id, &outcome, &[]).await?)
}

async fn place(
    job: &FileImport<'_>,
    plan: Option<&PlannedMove>,
    sha256: &str,
) -> Result<Placement, RunnerError> {
    match plan {
        Some(plan) => {
            let placement =
                placement::carry_out(job.source.source.as_ref(), job.file, sha256, plan).await?;
            tracing::info!(path = %job.file.path, ?placement, "file post-processed");
            Ok(placement)
        }
        None => Ok(Placement::Kept),
    }
}

/// A claim found final: carries out the move its run planned, if the file is still here.
async fn finish_post_processing(
    job: &FileImport<'_>,
    claim: &FileClaim,
    sha256: &str,
) -> Result<Option<Placement>, RunnerError> {
    let Some(run_id) = &claim.run_id else { return Ok(None) };
    let run = job.store.get_run(job.tenant, run_id).await?;
    match PlannedMove::from_timings(&run.body.timings) {
        Some(plan) => Ok(Some(place(job, Some(&plan), sha256).await?)),
        None => Ok(None),
    }
}

/// Imports the snapshot under `run` and finishes it.
async fn execute(
    job: &FileImport<'_>,
    run: ImportRun,
    template: &Template,
    snapshot: &Snapshot,
    hash_ms: u64,
    resumed: bool,
) -> Result<(ImportRun, Placement), RunnerError> {
    let template_id = template_key(template);
    let key = run_key(&template_id, &snapshot.sha256);
    let run_id = run.meta.id.clone();
    let mut tally = Tally::new(
        job.store,
        job.tenant,
        &run_id,
        &template_id,
        &key,
        json!({"hash_ms": hash_ms, "resumed": resumed}),
    );
    let (concluded, import_ms) = import_and_conclude(
        template,
        snapshot.path(),
        job.client.clone(),
        &mut tally,
        job.options,
        &job.cancel,
    )
    .await?;
    let Concluded { status, error, failure, counts, warnings, rejected } =
        concluded.map_err(|e| e.for_file(&job.file.path, &run_id))?;

    let folder = match (template.post_process_policy, status) {
        (PostProcessPolicy::Keep, _) => None,
        (PostProcessPolicy::Move, RunStatus::Failed) => template.error_folder.as_deref(),
        (PostProcessPolicy::Move, _) => template.completed_folder.as_deref(),
    };
    let plan = match folder.and_then(placement::normalized) {
        Some(folder) => Some(placement::plan(job.source.source.as_ref(), job.file, &folder).await?),
        None => None,
    };
    let mut timings = json!({
        "hash_ms": hash_ms,
        "import_ms": import_ms,
        "resumed": resumed,
        "post_process": plan.as_ref().map_or(json!({"policy": "keep"}), PlannedMove::to_json),
    });
    if !warnings.is_empty() {
        timings["warnings"] = json!(warnings);
    }
    if let Some(failure) = failure {
        timings["failure"] = json!(failure);
    }
    let outcome = RunOutcome { status, counts, timings, error };
    let run = job.store.finish_run(job.tenant, &run_id, &outcome, &rejected).await?;
    let placement = place(job, plan.as_ref(), &snapshot.sha256).await?;
    Ok((run, placement))
}

/// One import attempt of the file at `path`: its rows imported while `tally` records their
/// outcomes, then concluded (see [`conclude`]); with how long the import took in ms.
async fn import_and_conclude(
    template: &Template,
    path: &Path,
    client: ApiClient,
    tally: &mut Tally<'_>,
    options: &RunnerOptions,
    cancel: &CancellationToken,
) -> Result<(Result<Concluded, Inconclusive>, u64), RunnerError> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let stop = cancel.child_token();
    let importing = Instant::now();
    let import = import_file(
        Arc::new(template.clone()),
        path,
        client,
        move |outcome| {
            // The tally outlives the import; a send fails only if it stopped on a store error.
            let _ = sender.send(outcome);
        },
        |_| {},
        stop.clone(),
    );
    let (result, tallied) =
        tokio::join!(import, tally.consume(receiver, options.progress_interval, stop));
    let import_ms = elapsed_ms(importing);
    tallied?;
    let concluded = conclude(result, tally, template, path, cancel.is_cancelled()).await;
    Ok((concluded, import_ms))
}

/// How an import attempt ended, ready for `finish_run`.
struct Concluded {
    status: RunStatus,
    error: Option<String>,
    /// What kind of failure a failed run had (stored as the run's `timings.failure`).
    failure: Option<FailureKind>,
    counts: RunCounts,
    warnings: Vec<String>,
    rejected: Vec<NewRejectedRecord>,
}

/// What kind of failure ended a failed run, stored as its `timings.failure`: `parse` (the
/// file could not be read, decrypted, decompressed or parsed: nothing was written) or `import`
/// (anything else: writing failed, cross-row rules failed, every row was rejected). The alert
/// raised for the run follows it (`parse_error` or `import_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The file could not be read or parsed.
    Parse,
    /// The import failed after the file was read.
    Import,
}

/// Why an attempt has no conclusion: the file could not be read, or the import was cancelled.
enum Inconclusive {
    Io { path: PathBuf, source: std::io::Error },
    Cancelled,
}

impl Inconclusive {
    /// The runner error for the file at `path` under run `run_id`.
    fn for_file(self, path: &str, run_id: &str) -> RunnerError {
        match self {
            Inconclusive::Io { path, source } => {
                RunnerError::Snapshot { path: path.display().to_string(), error: source }
            }
            Inconclusive::Cancelled => {
                RunnerError::Cancelled { path: path.to_owned(), run_id: run_id.to_owned() }
            }
        }
    }
}

/// The final status, error, counts, warnings and API-refused rejected records of an import
/// attempt (the rules in the module documentation, step 3).
async fn conclude(
    result: Result<crate::import::ImportReport, ImportError>,
    tally: &Tally<'_>,
    template: &Template,
    path: &Path,
    cancelled: bool,
) -> Result<Concluded, Inconclusive> {
    let mut counts = tally.counts;
    let mut warnings: Vec<String> = Vec::new();
    let mut rejected: Vec<NewRejectedRecord> = Vec::new();
    let mut failure = None;
    let (status, error) = match result {
        Err(ImportError::Io { path, source }) => {
            return Err(Inconclusive::Io { path, source });
        }
        Err(e @ ImportError::Pipeline(_)) => {
            failure = Some(FailureKind::Parse);
            (RunStatus::Failed, Some(e.to_string()))
        }
        Err(e @ (ImportError::Writer(_) | ImportError::Internal(_))) => {
            (RunStatus::Failed, Some(e.to_string()))
        }
        Ok(report) => {
            if report.write.cancelled && cancelled {
                return Err(Inconclusive::Cancelled);
            }
            counts.read = report.check.rows_read;
            counts.valid = report.check.valid;
            if !tally.write_rejected.is_empty() {
                rejected = write_rejections(template, path, &tally.write_rejected).await;
            }
            if report.check.assert_empty_violated {
                warnings.push(format!(
                    "assert_empty: the template expects an empty file, but it has {} rows",
                    report.check.rows_read
                ));
            }
            if let Some(reason) = report.not_written {
                (RunStatus::Failed, Some(reason))
            } else if !report.check.file_failures.is_empty() {
                let reasons: Vec<&str> =
                    report.check.file_failures.iter().map(|f| f.message.as_str()).collect();
                let reason = format!(
                    "the file failed its cross-row rules: {} (its valid rows were written; \
                     transaction mode all_or_nothing writes nothing in this case)",
                    reasons.join("; ")
                );
                (RunStatus::Failed, Some(reason))
            } else if let Some(failure) = report.write.failure {
                let failure = format!(
                    "writing failed: {failure} ({} rows not attempted)",
                    tally.not_attempted
                );
                (RunStatus::Failed, Some(failure))
            } else if counts.read > 0 && counts.rejected == counts.read {
                (RunStatus::Failed, Some(format!("every row ({}) was rejected", counts.read)))
            } else if counts.rejected > 0 || !warnings.is_empty() {
                (RunStatus::PartiallySucceeded, None)
            } else {
                (RunStatus::Succeeded, None)
            }
        }
    };

    if status == RunStatus::Failed && failure.is_none() {
        failure = Some(FailureKind::Import);
    }
    Ok(Concluded { status, error, failure, counts, warnings, rejected })
}

/// Rejected records for the rows the API refused: the row as parsed, read back from the
/// snapshot (an empty object if it cannot be read), and the write errors.
async fn write_rejections(
    template: &Template,
    path: &Path,
    refused: &std::collections::BTreeMap<u64, Vec<intake_parsers::RowError>>,
) -> Vec<NewRejectedRecord> {
    let wanted: BTreeSet<u64> = refused.keys().copied().collect();
    let (template, path) = (template.clone(), path.to_path_buf());
    let originals = tokio::task::spawn_blocking(move || original_rows(&template, &path, &wanted))
        .await
        .unwrap_or_default();
    refused
        .iter()
        .map(|(row_number, errors)| NewRejectedRecord {
            row_number: *row_number,
            original_data: Value::Object(originals.get(row_number).cloned().unwrap_or_default()),
            validation_errors: tally::errors_json(errors),
        })
        .collect()
}

/// The records of the given row numbers, column → text, read again from the file through the
/// same pre-flight as the import (OpenPGP, decompression), so they are the rows that were sent.
fn original_rows(
    template: &Template,
    path: &Path,
    wanted: &BTreeSet<u64>,
) -> HashMap<u64, Map<String, Value>> {
    use intake_parsers::Record;
    use intake_parsers::csv::ReadOutcome;
    let mut found = HashMap::new();
    let Ok(file) = std::fs::File::open(path) else { return found };
    let input = std::io::BufReader::new(file);
    let Ok(crate::preflight::OpenedRecords { mut reader, .. }) =
        crate::preflight::open_records(template, &path.display().to_string(), input)
    else {
        return found;
    };
    let mut record = Record::new();
    while found.len() < wanted.len() {
        match reader.read_record(&mut record) {
            Ok(ReadOutcome::Record) if wanted.contains(&record.row_number()) => {
                let data = crate::pipeline::original_data(reader.columns(), record.cells());
                found.insert(record.row_number(), data);
            }
            Ok(ReadOutcome::Record | ReadOutcome::Rejected(_)) => {}
            Ok(ReadOutcome::End) | Err(_) => break,
        }
    }
    found
}
