//! The durable job queue: poll a source, import a claimed file, retry rejected records.
//!
//! Jobs live in SQLite through [apalis] (`apalis-sqlite`), the embedded default; the scale-out
//! issue puts RabbitMQ (`apalis-amqp`) behind the same [`JobQueue`] / [`Workers`] interface.
//!
//! # Where the jobs live
//! In their **own SQLite file** (for example `intake.jobs.sqlite` next to the state store), not in
//! the state store's file: both sides migrate with sqlx, and sqlx keeps one `_sqlx_migrations`
//! table per file, so each migrator would see the other's migrations as "applied but missing"
//! and refuse to start. apalis's table names (`Jobs`, `Workers`) are also generic enough to
//! collide with state tables one day. Nothing needs a transaction across the two files: an
//! enqueue that must not duplicate is idempotent (below), so "write state, then enqueue" is safe
//! to repeat after a crash. The file is opened in WAL mode with `synchronous = FULL` (apalis's own
//! `setup` would switch it to `OFF`, so it is not used; only its migrations are run).
//!
//! # Promises
//! - **Idempotent enqueue**: [`ImportFile`] carries the key `import_file:{tenant}:{claim}`;
//!   apalis stores it in a unique index `(queue, idempotency_key)` and an insert that hits it does
//!   nothing, so enqueueing the same claim twice (or again after a crash) returns the id of the
//!   job already there, whatever its state. [`PollSource`] and [`RetryRejectedRecords`] have no
//!   key: polling twice is harmless, and a record retry is guarded by the record's state machine.
//! - **Acknowledged after the effects**: a job is marked done only after its handler returned
//!   `Ok`; a handler's effects must be durable by then.
//! - **Retries with backoff, then failed — never silently**: a [`JobError::retryable`] failure is
//!   retried with jittered exponential backoff ([`QueueConfig::backoff_min`] doubling up to
//!   [`QueueConfig::backoff_max`]) until [`QueueConfig::max_attempts`] attempts were made; a
//!   [`JobError::permanent`] failure is not retried. Either way the job ends
//!   [`JobState::Failed`] with the reason, listed by [`JobQueue::failed_jobs`] (and, typed, by
//!   [`JobQueue::given_up`], for the owner to end its own records of the job as failed).
//! - **Crash safety**: every worker registers in the `Workers` table and heartbeats every
//!   [`QueueConfig::heartbeat_interval`]. A job held by a worker that stopped heartbeating for
//!   `heartbeat_interval × missed_heartbeats` (the *orphan timeout*, 30 s by default) is put back
//!   by the next heartbeat of any live worker of the same queue, so a SIGKILLed worker's job runs
//!   again, after at most the orphan timeout plus one heartbeat interval. Each such re-run counts
//!   as an attempt; a job that already used up its attempts that way (a job that kills its
//!   worker) ends failed instead of looping.
//! - **Explicit lifecycle**: [`Workers::run`] runs until its cancellation token fires, then takes
//!   no new job, lets the in-flight ones finish (a retry backoff in progress is cut short and the
//!   job handed back), returns jobs it had fetched but not started to the queue, and returns.
//!   apalis 1.0 refuses every call once it is shutting down, a retry's too, so a retry cut short
//!   by the stop is let through to its handler (which hands the job back at once) before apalis
//!   is told to stop, waiting at most 5 s; no retry starts after that. Without this, one stop in
//!   five waited for ever (`a_job_still_waiting_or_that_succeeded_is_not_given_up` hung).
//!
//! Known limit (apalis 1.0): once shutdown begins, apalis stops driving the backend's own database
//! writes until the running jobs finish. A fetch or heartbeat transaction caught half-way then holds
//! the queue file's write lock meanwhile, so an enqueue during shutdown may wait up to the busy
//! timeout (10 s) and fail. The per-job "lock" write is switched off to keep that window small.
//!
//! Retries and backoff run inside the worker process (apalis's retry layer): a worker killed
//! during a backoff loses nothing, its job comes back through the orphan path above.

mod worker;

use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskId, TaskSink};
use apalis_sqlite::{Config as ApalisConfig, SqliteStorage};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use worker::{JobHandler, Workers};

/// The columns of a [`JobRecord`].
macro_rules! select_job {
    () => {
        "SELECT id, job_type, status, attempts, max_attempts, last_result, job FROM Jobs"
    };
}

/// How long a connection waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A kind of job: its payload, the queue it goes to and whether its enqueue is deduplicated.
pub trait Job: Clone + Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The queue's name (apalis's `job_type` column); stable across releases.
    const QUEUE: &'static str;

    /// The key that makes enqueueing this job idempotent, if it should be: a second enqueue with
    /// the same key (in the same queue) is a no-op, for ever (also after the job finished).
    fn idempotency_key(&self) -> Option<String>;
}

/// Poll a source: list it, claim the stable new files and enqueue an [`ImportFile`] per claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollSource {
    /// The tenant owning the source.
    pub tenant_id: String,
    /// The source to poll.
    pub source_id: String,
}

impl Job for PollSource {
    const QUEUE: &'static str = "intake.poll_source";
    fn idempotency_key(&self) -> Option<String> {
        None
    }
}

/// Import one claimed file (the runner defines what the import does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportFile {
    /// The tenant owning the source.
    pub tenant_id: String,
    /// The source the file was found in.
    pub source_id: String,
    /// The file claim this job imports; at most one job per claim is ever enqueued.
    pub claim_id: String,
}

impl Job for ImportFile {
    const QUEUE: &'static str = "intake.import_file";
    fn idempotency_key(&self) -> Option<String> {
        Some(format!("import_file:{}:{}", self.tenant_id, self.claim_id))
    }
}

/// Run rejected records whose `corrected_data` is set through mapping, validation and write again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRejectedRecords {
    /// The tenant owning the records.
    pub tenant_id: String,
    /// The rejected records to retry.
    pub record_ids: Vec<String>,
}

impl Job for RetryRejectedRecords {
    const QUEUE: &'static str = "intake.retry_rejected_records";
    fn idempotency_key(&self) -> Option<String> {
        None
    }
}

/// Import a file uploaded through the REST layer (`POST /imports/runs`) under its `queued` run:
/// the upload was too large to import while the request waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportUpload {
    /// The tenant that uploaded the file.
    pub tenant_id: String,
    /// The upload's run (`queued`); at most one job per run is ever enqueued.
    pub run_id: String,
    /// The template the uploader named (its store id).
    pub template_id: String,
    /// Where the uploaded bytes are kept; the job removes the file once the run is final.
    pub path: String,
}

impl Job for ImportUpload {
    const QUEUE: &'static str = "intake.import_upload";
    fn idempotency_key(&self) -> Option<String> {
        Some(format!("import_upload:{}:{}", self.tenant_id, self.run_id))
    }
}

/// Deliver one stored alert to its channel ([`crate::alerting`]); retried with backoff while the
/// channel fails in a way that may pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverAlert {
    /// The tenant owning the alert.
    pub tenant_id: String,
    /// The stored alert (`/alerts`) to deliver.
    pub alert_id: String,
}

impl Job for DeliverAlert {
    const QUEUE: &'static str = "intake.deliver_alert";
    fn idempotency_key(&self) -> Option<String> {
        Some(format!("deliver_alert:{}:{}", self.tenant_id, self.alert_id))
    }
}

/// Why a job's handler failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct JobError {
    retryable: bool,
    reason: String,
}

impl JobError {
    /// A failure that may go away (an external system is down, a lock timed out): the job is
    /// retried with backoff until its attempts run out.
    pub fn retryable(reason: impl std::fmt::Display) -> Self {
        JobError { retryable: true, reason: reason.to_string() }
    }

    /// A failure that another attempt cannot fix (bad input, a missing resource, our own bug):
    /// the job ends failed at once.
    pub fn permanent(reason: impl std::fmt::Display) -> Self {
        JobError { retryable: false, reason: reason.to_string() }
    }

    /// Whether another attempt can help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// What went wrong, as stored on the failed job.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// What went wrong in the queue itself (not in a job).
#[derive(Debug, thiserror::Error)]
pub enum JobQueueError {
    /// The queue's database could not be opened.
    #[error("cannot open the job queue at {location}: {source}")]
    Open {
        /// Where.
        location: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Applying apalis's migrations failed.
    #[error("migrating the job queue failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A database operation failed (I/O, locking); usually worth a retry.
    #[error("job queue database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A job could not be put on its queue.
    #[error("cannot enqueue a {queue} job: {reason}")]
    Enqueue {
        /// The queue.
        queue: &'static str,
        /// Why.
        reason: String,
    },
    /// The configuration is unusable (reported before anything starts).
    #[error("invalid job queue configuration: {0}")]
    Config(String),
    /// A worker stopped with an error (its backend failed, e.g. the database went away).
    #[error("the {queue} worker failed: {reason}")]
    Worker {
        /// The queue the worker served.
        queue: &'static str,
        /// Why.
        reason: String,
    },
}

/// Retry, heartbeat and polling settings shared by the queue and its workers.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Attempts a job gets in all (first run included) before it ends failed. Default 5.
    pub max_attempts: usize,
    /// The first retry's delay; it doubles per attempt (with jitter). Default 1 s.
    pub backoff_min: Duration,
    /// The longest retry delay. Default 5 minutes.
    pub backoff_max: Duration,
    /// How often a worker records that it is alive. Default 10 s.
    pub heartbeat_interval: Duration,
    /// Missed heartbeats after which a worker counts as dead and its jobs are re-queued.
    /// Default 3 (an orphan timeout of 30 s).
    pub missed_heartbeats: usize,
    /// How often an idle worker looks for new jobs. Default 250 ms.
    pub poll_interval: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_attempts: 5,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(10),
            missed_heartbeats: 3,
            poll_interval: Duration::from_millis(250),
        }
    }
}

impl QueueConfig {
    /// How long a silent worker keeps its jobs before they are re-queued.
    pub fn orphan_timeout(&self) -> Duration {
        self.heartbeat_interval
            .saturating_mul(u32::try_from(self.missed_heartbeats).unwrap_or(u32::MAX))
    }

    /// Checks the settings, reporting every problem at once.
    pub fn validate(&self) -> Result<(), JobQueueError> {
        let mut problems = Vec::new();
        if self.max_attempts == 0 {
            problems.push("max_attempts must be at least 1");
        }
        if self.backoff_max.is_zero() || self.backoff_min > self.backoff_max {
            problems.push("backoff_max must be non-zero and not below backoff_min");
        }
        // apalis keeps heartbeats in whole seconds.
        if self.heartbeat_interval < Duration::from_secs(1) {
            problems.push("heartbeat_interval must be at least 1 s");
        }
        if self.missed_heartbeats == 0 {
            problems.push("missed_heartbeats must be at least 1");
        }
        if self.poll_interval.is_zero() {
            problems.push("poll_interval must be non-zero");
        }
        if problems.is_empty() { Ok(()) } else { Err(JobQueueError::Config(problems.join("; "))) }
    }

    pub(crate) fn apalis_config(&self, queue: &str, batch_size: usize) -> ApalisConfig {
        ApalisConfig::default()
            .queue(queue)
            .batch_size(batch_size.max(1))
            .heartbeat_interval(self.heartbeat_interval)
            .missed_heartbeats(self.missed_heartbeats)
            // No separate "lock" write when a job starts (fetching already assigned it to this
            // worker): apalis stops driving those writes once shutdown begins, and one caught
            // half-way would hold SQLite's write lock until every running job finished.
            .lock_tasks(false)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to run: new, handed back, or failed with attempts left.
    Waiting,
    /// Taken by a worker.
    Running,
    /// Its handler returned `Ok`.
    Succeeded,
    /// Ended failed: a permanent error, or its attempts ran out.
    Failed,
}

/// A job as the queue stores it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// The job's id (a ULID).
    pub id: String,
    /// Its queue ([`Job::QUEUE`]).
    pub queue: String,
    /// Where it is in its life.
    pub state: JobState,
    /// Attempts made so far.
    pub attempts: u64,
    /// Attempts allowed.
    pub max_attempts: u64,
    /// The last failure's reason (for a failed job: why it failed).
    pub last_error: Option<String>,
    /// The payload, as JSON.
    pub payload: Value,
}

/// A job the queue gave up on ([`JobQueue::given_up`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GivenUpJob<J> {
    /// The job's id.
    pub id: String,
    /// Its payload.
    pub job: J,
    /// Attempts made.
    pub attempts: u64,
    /// Why it failed (the last failure's reason).
    pub reason: String,
}

/// The job queue: enqueue jobs and read their state. Cheap to clone (it shares one pool).
#[derive(Debug, Clone)]
pub struct JobQueue {
    pool: SqlitePool,
    config: QueueConfig,
}

impl JobQueue {
    /// Opens (creating if needed) the queue's SQLite file at `location` — a path or a `sqlite:`
    /// URL — and applies apalis's migrations.
    pub async fn open(location: &str, config: QueueConfig) -> Result<Self, JobQueueError> {
        config.validate()?;
        let open_error = |source| JobQueueError::Open { location: location.to_owned(), source };
        let options = if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location).map_err(open_error)?
        } else {
            SqliteConnectOptions::new().filename(location)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        crate::sqlite_migrations::migrate(&SqliteStorage::migrations(), &pool).await?;
        Ok(JobQueue { pool, config })
    }

    /// The settings the queue was opened with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Closes the pool (after every worker stopped).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether the queue's database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), JobQueueError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How many jobs of every queue are still to run: waiting, running or to be retried (for
    /// `/metrics`).
    pub async fn depth(&self) -> Result<u64, JobQueueError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM Jobs WHERE status NOT IN ('Done', 'Killed') \
             AND NOT (status = 'Failed' AND attempts >= max_attempts)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Puts `job` on its queue and returns the job's id. With an idempotency key
    /// ([`Job::idempotency_key`]) already used in that queue nothing is added and the id of the
    /// existing job is returned.
    pub async fn enqueue<J: Job>(&self, job: J) -> Result<String, JobQueueError> {
        let key = job.idempotency_key();
        if let Some(key) = &key
            && let Some(id) = self.job_id_for_key(J::QUEUE, key).await?
        {
            return Ok(id);
        }
        let id = ulid::Ulid::generate();
        let mut builder = TaskBuilder::new(job)
            .task_id(TaskId::from_ulid(id))
            .max_attempts(self.config.max_attempts);
        if let Some(key) = &key {
            builder = builder.idempotency_key(key);
        }
        let mut storage =
            SqliteStorage::<J>::new(&self.pool).with_config(self.config.apalis_config(J::QUEUE, 1));
        storage
            .push_task(builder.build())
            .await
            .map_err(|e| JobQueueError::Enqueue { queue: J::QUEUE, reason: e.to_string() })?;
        match &key {
            // A concurrent enqueue may have won the race: report the job that is there.
            Some(key) => {
                Ok(self.job_id_for_key(J::QUEUE, key).await?.unwrap_or_else(|| id.to_string()))
            }
            None => Ok(id.to_string()),
        }
    }

    /// Enqueues a [`PollSource`].
    pub async fn enqueue_poll_source(&self, job: PollSource) -> Result<String, JobQueueError> {
        self.enqueue(job).await
    }

    /// Enqueues an [`ImportFile`]; idempotent per claim.
    pub async fn enqueue_import_file(&self, job: ImportFile) -> Result<String, JobQueueError> {
        self.enqueue(job).await
    }

    /// Enqueues an [`ImportUpload`] (once per run).
    pub async fn enqueue_import_upload(&self, job: ImportUpload) -> Result<String, JobQueueError> {
        self.enqueue(job).await
    }

    /// Enqueues a [`RetryRejectedRecords`].
    pub async fn enqueue_retry_rejected_records(
        &self,
        job: RetryRejectedRecords,
    ) -> Result<String, JobQueueError> {
        self.enqueue(job).await
    }

    async fn job_id_for_key(
        &self,
        queue: &str,
        key: &str,
    ) -> Result<Option<String>, JobQueueError> {
        let row = sqlx::query("SELECT id FROM Jobs WHERE job_type = ? AND idempotency_key = ?")
            .bind(queue)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    /// One job by id.
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, JobQueueError> {
        let row = sqlx::query(concat!(select_job!(), " WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_record))
    }

    /// Every job that ended failed (permanently, or with its attempts used up), oldest first.
    pub async fn failed_jobs(&self) -> Result<Vec<JobRecord>, JobQueueError> {
        let rows = sqlx::query(concat!(
            select_job!(),
            " WHERE status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts)",
            " ORDER BY done_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_record).collect())
    }

    /// The jobs of `J`'s queue the queue gave up on (ended failed), oldest first, each with its
    /// payload and the reason — for the owner to record the failure on its own state (e.g. end
    /// the import run `failed`). Listed for ever: a consumer must be idempotent.
    pub async fn given_up<J: Job>(&self) -> Result<Vec<GivenUpJob<J>>, JobQueueError> {
        let rows = sqlx::query(concat!(
            select_job!(),
            " WHERE job_type = ? AND (status = 'Killed' OR (status = 'Failed' AND attempts >= \
             max_attempts)) ORDER BY done_at, id"
        ))
        .bind(J::QUEUE)
        .fetch_all(&self.pool)
        .await?;
        let mut given_up = Vec::with_capacity(rows.len());
        for record in rows.iter().map(job_record) {
            match serde_json::from_value::<J>(record.payload.clone()) {
                Ok(job) => given_up.push(GivenUpJob {
                    reason: record.last_error.clone().unwrap_or_else(|| {
                        format!("gave up after {} attempt(s); no reason recorded", record.attempts)
                    }),
                    id: record.id,
                    attempts: record.attempts,
                    job,
                }),
                Err(e) => {
                    tracing::warn!(job = %record.id, queue = J::QUEUE, error = %e, "a failed job's payload cannot be read");
                }
            }
        }
        Ok(given_up)
    }

    /// Every job of one queue, oldest first (for tests and the operator view).
    pub async fn jobs(&self, queue: &str) -> Result<Vec<JobRecord>, JobQueueError> {
        let rows = sqlx::query(concat!(select_job!(), " WHERE job_type = ? ORDER BY id"))
            .bind(queue)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(job_record).collect())
    }
}

fn job_record(row: &sqlx::sqlite::SqliteRow) -> JobRecord {
    let status: String = row.get("status");
    let attempts = u64::try_from(row.get::<i64, _>("attempts")).unwrap_or(0);
    let max_attempts = u64::try_from(row.get::<i64, _>("max_attempts")).unwrap_or(0);
    let state = match status.as_str() {
        "Done" => JobState::Succeeded,
        "Killed" => JobState::Failed,
        "Failed" if attempts >= max_attempts => JobState::Failed,
        "Queued" | "Running" => JobState::Running,
        _ => JobState::Waiting,
    };
    let payload: Vec<u8> = row.get("job");
    let payload = serde_json::from_slice(&payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into_owned()));
    let last_error = row.get::<Option<String>, _>("last_result").and_then(|r| error_reason(&r));
    JobRecord {
        id: row.get("id"),
        queue: row.get("job_type"),
        state,
        attempts,
        max_attempts,
        last_error,
        payload,
    }
}

/// apalis stores a result as `{"Ok": …}` or `{"Err": "…"}`; a permanent failure is wrapped in
/// apalis's `AbortError`, whose prefix is dropped here.
fn error_reason(last_result: &str) -> Option<String> {
    let value: Value = serde_json::from_str(last_result).ok()?;
    let err = value.get("Err")?;
    let text = err.as_str().map_or_else(|| err.to_string(), str::to_owned);
    Some(text.strip_prefix("AbortError: ").unwrap_or(&text).to_owned())
}
