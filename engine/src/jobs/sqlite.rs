//! The job queue in its own SQLite file, through apalis (`apalis-sqlite`): the embedded default.
//! See the [module documentation](super) for where the file lives and what it promises.

use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskId, TaskSink};
use apalis_sqlite::SqliteStorage;
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Job, JobQueueError, JobRecord, JobState, QueueConfig};

/// The columns of a [`JobRecord`].
macro_rules! select_job {
    () => {
        "SELECT id, job_type, status, attempts, max_attempts, last_result, job FROM Jobs"
    };
}

/// How long a connection waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The job queue in SQLite: enqueue jobs and read their state. Cheap to clone (it shares one
/// pool).
#[derive(Debug, Clone)]
pub(crate) struct SqliteJobs {
    pool: SqlitePool,
    config: QueueConfig,
}

impl SqliteJobs {
    /// Opens (creating if needed) the queue's SQLite file at `location` — a path or a `sqlite:`
    /// URL — and applies apalis's migrations.
    pub(crate) async fn open(location: &str, config: QueueConfig) -> Result<Self, JobQueueError> {
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
        Ok(SqliteJobs { pool, config })
    }

    /// The settings the queue was opened with.
    pub(crate) fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Closes the pool (after every worker stopped).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether the queue's database answers (for `/readyz`).
    pub(crate) async fn ping(&self) -> Result<(), JobQueueError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How many jobs of every queue are still to run: waiting, running or to be retried (for
    /// `/metrics`).
    pub(crate) async fn depth(&self) -> Result<u64, JobQueueError> {
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
    pub(crate) async fn enqueue<J: Job>(&self, job: J) -> Result<String, JobQueueError> {
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
    pub(crate) async fn job(&self, id: &str) -> Result<Option<JobRecord>, JobQueueError> {
        let row = sqlx::query(concat!(select_job!(), " WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_record))
    }

    /// Every job that ended failed (permanently, or with its attempts used up), oldest first.
    pub(crate) async fn failed_jobs(&self) -> Result<Vec<JobRecord>, JobQueueError> {
        let rows = sqlx::query(concat!(
            select_job!(),
            " WHERE status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts)",
            " ORDER BY done_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_record).collect())
    }

    /// The jobs of `queue` that ended failed, oldest first.
    pub(crate) async fn given_up(&self, queue: &str) -> Result<Vec<JobRecord>, JobQueueError> {
        let rows = sqlx::query(concat!(
            select_job!(),
            " WHERE job_type = ? AND (status = 'Killed' OR (status = 'Failed' AND attempts >= \
             max_attempts)) ORDER BY done_at, id"
        ))
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_record).collect())
    }

    /// Every job of one queue, oldest first (for tests and the operator view).
    pub(crate) async fn jobs(&self, queue: &str) -> Result<Vec<JobRecord>, JobQueueError> {
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
