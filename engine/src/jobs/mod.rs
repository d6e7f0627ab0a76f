//! The durable job queue: poll a source, import a claimed file, retry rejected records.
//!
//! Jobs live in SQLite through [apalis] (`apalis-sqlite`), the embedded default ([`sqlite`]), or on
//! a RabbitMQ broker through lapin ([`amqp`]) when engines on several machines share the work;
//! [`JobQueue`] / [`Workers`] are the same for both. `apalis-amqp` is not used: its releases target
//! apalis 0.6 (we are on apalis 1), so the broker is spoken to directly.
//!
//! Everything below describes the SQLite queue; the RabbitMQ queue keeps the same promises by
//! the broker's means (publisher confirms, acknowledgements, delay and dead-letter queues), see
//! [`amqp`], except that its enqueue is not deduplicated ([`JobQueue::enqueue_is_idempotent`]).
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

mod amqp;
mod amqp_worker;
mod sqlite;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use apalis_sqlite::Config as ApalisConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use amqp::AmqpJobs;
use sqlite::SqliteJobs;
pub use worker::{JobHandler, Workers};

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
    kind: JobErrorKind,
    reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobErrorKind {
    Retryable,
    Permanent,
    Busy,
}

impl JobError {
    /// A failure that may go away (an external system is down, a lock timed out): the job is
    /// retried with backoff until its attempts run out.
    pub fn retryable(reason: impl std::fmt::Display) -> Self {
        JobError { kind: JobErrorKind::Retryable, reason: reason.to_string() }
    }

    /// A failure that another attempt cannot fix (bad input, a missing resource, our own bug):
    /// the job ends failed at once.
    pub fn permanent(reason: impl std::fmt::Display) -> Self {
        JobError { kind: JobErrorKind::Permanent, reason: reason.to_string() }
    }

    /// The job could not start because another worker holds what it works on (a second delivery
    /// of a job whose file is being imported): on RabbitMQ it waits one retry delay without
    /// using an attempt; on SQLite (where it cannot happen, enqueue being idempotent) it counts
    /// as a retryable failure.
    pub fn busy(reason: impl std::fmt::Display) -> Self {
        JobError { kind: JobErrorKind::Busy, reason: reason.to_string() }
    }

    /// Whether another attempt can help.
    pub fn is_retryable(&self) -> bool {
        self.kind != JobErrorKind::Permanent
    }

    /// Whether the job only has to wait ([`JobError::busy`]).
    pub fn is_busy(&self) -> bool {
        self.kind == JobErrorKind::Busy
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
    /// The RabbitMQ broker could not be reached or refused an operation.
    #[error("job queue broker {address}: {reason}")]
    Broker {
        /// The broker's address, without credentials.
        address: String,
        /// What failed.
        reason: String,
    },
    /// The operation needs a queue that can list its jobs (SQLite), not a broker.
    #[error("{0} is not possible on a RabbitMQ job queue")]
    Unsupported(&'static str),
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

/// The job queue: enqueue jobs and read their state. Cheap to clone (it shares one pool or one
/// broker connection).
#[derive(Debug, Clone)]
pub struct JobQueue {
    backend: Backend,
    config: QueueConfig,
}

/// Where the jobs live.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// A SQLite file, through apalis.
    Sqlite(SqliteJobs),
    /// A RabbitMQ broker.
    Amqp(Arc<AmqpJobs>),
}

impl JobQueue {
    /// Opens the queue at `location`: an `amqp://` or `amqps://` URL is a RabbitMQ broker (every
    /// queue is declared); anything else is a SQLite file path or `sqlite:` URL (created if
    /// needed, apalis's migrations applied).
    pub async fn open(location: &str, config: QueueConfig) -> Result<Self, JobQueueError> {
        config.validate()?;
        let backend = if amqp::is_broker_url(location) {
            Backend::Amqp(Arc::new(AmqpJobs::open(location, config.clone()).await?))
        } else {
            Backend::Sqlite(SqliteJobs::open(location, config.clone()).await?)
        };
        Ok(JobQueue { backend, config })
    }

    /// The settings the queue was opened with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Whether enqueueing a job with an idempotency key twice adds it once (SQLite: a unique
    /// index). RabbitMQ has no such index: a job may then be queued twice, and its handler must
    /// hold the uniqueness itself (the engine leases the claim of a file being imported).
    pub fn enqueue_is_idempotent(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

    /// Closes the pool or the broker connection (after every worker stopped).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(q) => q.close().await,
            Backend::Amqp(q) => q.close().await,
        }
    }

    /// Whether the queue's database or broker answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), JobQueueError> {
        match &self.backend {
            Backend::Sqlite(q) => q.ping().await,
            Backend::Amqp(q) => q.ping(),
        }
    }

    /// How many jobs of every queue are still to run (for `/metrics`): on SQLite waiting, running
    /// or to be retried; on RabbitMQ waiting or to be retried (the broker does not count the
    /// ones being run).
    pub async fn depth(&self) -> Result<u64, JobQueueError> {
        match &self.backend {
            Backend::Sqlite(q) => q.depth().await,
            Backend::Amqp(q) => q.depth().await,
        }
    }

    /// Puts `job` on its queue and returns the job's id. On SQLite, with an idempotency key
    /// ([`Job::idempotency_key`]) already used in that queue nothing is added and the id of the
    /// existing job is returned; on RabbitMQ every call adds a job.
    pub async fn enqueue<J: Job>(&self, job: J) -> Result<String, JobQueueError> {
        match &self.backend {
            Backend::Sqlite(q) => q.enqueue(job).await,
            Backend::Amqp(q) => q.enqueue(&job).await,
        }
    }

    /// Enqueues a [`PollSource`].
    pub async fn enqueue_poll_source(&self, job: PollSource) -> Result<String, JobQueueError> {
        self.enqueue(job).await
    }

    /// Enqueues an [`ImportFile`]; idempotent per claim on SQLite.
    pub async fn enqueue_import_file(&self, job: ImportFile) -> Result<String, JobQueueError> {
        self.enqueue(job).await
    }

    /// Enqueues an [`ImportUpload`] (once per run on SQLite).
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

    /// One job by id (SQLite only: a broker cannot look a message up).
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, JobQueueError> {
        match &self.backend {
            Backend::Sqlite(q) => q.job(id).await,
            Backend::Amqp(_) => Err(JobQueueError::Unsupported("looking a job up by id")),
        }
    }

    /// Every job that ended failed (permanently, or with its attempts used up), oldest first; on
    /// RabbitMQ the jobs in the dead-letter queues.
    pub async fn failed_jobs(&self) -> Result<Vec<JobRecord>, JobQueueError> {
        match &self.backend {
            Backend::Sqlite(q) => q.failed_jobs().await,
            Backend::Amqp(q) => q.failed_jobs().await,
        }
    }

    /// The jobs of `J`'s queue the queue gave up on (ended failed), oldest first, each with its
    /// payload and the reason — for the owner to record the failure on its own state (e.g. end
    /// the import run `failed`). Listed for ever (on RabbitMQ: while they are in the dead-letter
    /// queue): a consumer must be idempotent.
    pub async fn given_up<J: Job>(&self) -> Result<Vec<GivenUpJob<J>>, JobQueueError> {
        let records = match &self.backend {
            Backend::Sqlite(q) => q.given_up(J::QUEUE).await?,
            Backend::Amqp(q) => q.given_up(J::QUEUE).await?,
        };
        let mut given_up = Vec::with_capacity(records.len());
        for record in records {
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

    /// Every job of one queue, oldest first (SQLite only; for tests and the operator view).
    pub async fn jobs(&self, queue: &str) -> Result<Vec<JobRecord>, JobQueueError> {
        match &self.backend {
            Backend::Sqlite(q) => q.jobs(queue).await,
            Backend::Amqp(_) => Err(JobQueueError::Unsupported("listing a queue's jobs")),
        }
    }
}
