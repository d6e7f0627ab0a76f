//! The engine's durable state: templates, sources, import runs, file claims, rejected records,
//! row idempotency keys, alert channels and routing rules.
//!
//! [`Store`] is the one interface the engine, the job workers and the REST layer use. It is an
//! enum over backends rather than a trait object: async methods are not object-safe without
//! boxing every future, an enum keeps one concrete type to put in `AppState` and job contexts
//! without generics spreading through the crates, and a backend is added as a variant whose
//! methods have the same signatures ([`SqliteStore`] embedded, [`PgStore`] for several engine
//! processes sharing one database). What is not SQL (body cleaning, list query validation, the
//! state machine checks) is shared by both in one private module, so they cannot drift apart. The
//! store test suite (`engine/tests/store_*.rs`) is written against [`Store`] only and runs
//! against every backend.
//!
//! What the store promises:
//! - every write of a resource renews its `revision_id` (the ETag); `update` and `delete` with an
//!   expected revision fail with [`StoreError::Conflict`] carrying the current one;
//! - the tenant is a parameter of every call and rows of another tenant are invisible
//!   ([`StoreError::NotFound`]);
//! - a file version is claimed once, decided by a unique index, never by read-then-write;
//! - runs and rejected records move only along their state machines, and everything a crash
//!   could interrupt half-way (a run's final counts and its rejected records, a status change and
//!   its history row, a batch of idempotency keys) is one transaction.
//!
//! It is not the place for the REST conventions themselves (the `where` syntax, field selection,
//! defaults and read-only fields): [`ListQuery`] is the small, growable core they lower to.

mod common;
mod postgres;
mod sqlite;
mod types;

use std::collections::HashSet;

use serde_json::Value;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use types::*;

/// What went wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location given to [`Store::open`] is not one the store understands.
    #[error(
        "unsupported state store location {0:?}: expected a file path, a sqlite: URL or a \
         postgres: URL"
    )]
    UnsupportedLocation(String),
    /// The database could not be opened.
    #[error("cannot open the state store at {location}: {source}")]
    Open {
        /// Where.
        location: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("migrating the state store failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A database operation failed (I/O, locking, a lost connection, a serialization failure or
    /// deadlock, a constraint); usually worth a retry.
    #[error("state store database error: {0}")]
    Database(#[from] sqlx::Error),
    /// No such resource for this tenant (or it was deleted).
    #[error("{collection} {id} not found")]
    NotFound {
        /// The collection or table.
        collection: String,
        /// The id asked for.
        id: String,
    },
    /// The resource changed since the caller read it (a stale `If-Match`).
    #[error("{collection} {id} has revision {current_revision}, not the expected {expected}")]
    Conflict {
        /// The collection or table.
        collection: String,
        /// The resource id.
        id: String,
        /// The revision the caller expected.
        expected: String,
        /// The revision it has now (the new ETag).
        current_revision: String,
    },
    /// The state machine does not allow this move.
    #[error("{what} {id} cannot go from {from} to {to}")]
    IllegalTransition {
        /// What kind of thing (import run, rejected record, file claim).
        what: &'static str,
        /// Its id.
        id: String,
        /// Its current state.
        from: String,
        /// The state asked for.
        to: String,
    },
    /// A body or argument is not acceptable (not a JSON object, a non-scalar filter value, ...).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A filter or sort names a field that is not queryable in this collection.
    #[error("{collection} cannot be filtered or sorted by {field:?}")]
    UnknownField {
        /// The collection.
        collection: String,
        /// The field.
        field: String,
    },
    /// The collection is written only through its own operations (runs, rejected records).
    #[error("{0} is written through its own operations, not the generic create/update")]
    Managed(Collection),
    /// A stored row could not be read back.
    #[error("corrupt state in {what}: {reason}")]
    Corrupt {
        /// Which row.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// Whether trying the same call again can help (database busy or I/O trouble).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Database(_) | StoreError::Open { .. })
    }
}

/// The state store: one handle, cheap to clone, safe to share between tasks.
#[derive(Debug, Clone)]
pub enum Store {
    /// One SQLite file (the embedded default).
    Sqlite(SqliteStore),
    /// A PostgreSQL database (shared by several engine processes).
    Postgres(PgStore),
}

/// Dispatches a method call to the backend.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// Opens the store at `location` and applies the migrations: a `postgres:` or
    /// `postgresql:` URL is a PostgreSQL database (which must exist); anything else is a SQLite
    /// file path or `sqlite:` URL (the file is created if needed).
    pub async fn open(location: &str) -> Result<Store, StoreError> {
        let lower = location.to_ascii_lowercase();
        if lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
            return Ok(Store::Postgres(PgStore::open(location).await?));
        }
        Ok(Store::Sqlite(SqliteStore::open(location).await?))
    }

    /// Closes the connections, waiting for in-flight calls.
    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Runs per status with their summed row counts, and the sources in error, over every
    /// tenant (for `/metrics`).
    pub async fn run_statistics(&self) -> Result<RunStatistics, StoreError> {
        dispatch!(self, s => s.run_statistics().await)
    }

    // ---- generic documents ------------------------------------------------------------------

    /// Creates a resource from a JSON object; base fields in `body` are ignored.
    pub async fn create(
        &self,
        collection: Collection,
        tenant: &str,
        body: Value,
    ) -> Result<Document, StoreError> {
        dispatch!(self, s => s.create(collection, tenant, body).await)
    }

    /// Reads a resource that is not deleted.
    pub async fn get(
        &self,
        collection: Collection,
        tenant: &str,
        id: &str,
    ) -> Result<Document, StoreError> {
        dispatch!(self, s => s.get(collection, tenant, id).await)
    }

    /// Lists a tenant's resources.
    pub async fn list(
        &self,
        collection: Collection,
        tenant: &str,
        query: &ListQuery,
    ) -> Result<Page<Document>, StoreError> {
        dispatch!(self, s => s.list(collection, tenant, query).await)
    }

    /// Every resource `query` selects (its filters and `include_deleted`; its page and sort are
    /// replaced), read a store page at a time, in creation order.
    pub async fn list_all(
        &self,
        collection: Collection,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<Document>, StoreError> {
        let query = ListQuery { sort: Vec::new(), ..query }.sort_by("created_at", false);
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let batch = self
                .list(collection, tenant, &query.clone().page(page, ListQuery::MAX_PER_PAGE))
                .await?;
            let done = batch.items.len() < ListQuery::MAX_PER_PAGE as usize;
            all.extend(batch.items);
            if done {
                return Ok(all);
            }
            page += 1;
        }
    }

    /// Replaces a resource's body; with `expected_revision`, only if it is still current.
    pub async fn update(
        &self,
        collection: Collection,
        tenant: &str,
        id: &str,
        expected_revision: Option<&str>,
        body: Value,
    ) -> Result<Document, StoreError> {
        dispatch!(self, s => s.update(collection, tenant, id, expected_revision, body).await)
    }

    /// Soft-deletes a resource; with `expected_revision`, only if it is still current.
    pub async fn delete(
        &self,
        collection: Collection,
        tenant: &str,
        id: &str,
        expected_revision: Option<&str>,
    ) -> Result<Document, StoreError> {
        dispatch!(self, s => s.delete(collection, tenant, id, expected_revision).await)
    }

    // ---- leases -----------------------------------------------------------------------------

    /// Takes the lease `name` for `holder` until `ttl` from now, or renews it when `holder`
    /// already has it; `false` (and nothing changed) while another holder's lease runs. Of any
    /// number of racing callers at most one gets `true`. A holder that stops renewing loses the
    /// lease when it expires: that is how a dead poller's source is taken over.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.acquire_lease(name, holder, ttl).await)
    }

    /// Gives up the lease `name` if `holder` still has it (a no-op otherwise).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.release_lease(name, holder).await)
    }

    // ---- file claims ------------------------------------------------------------------------

    /// Claims one version of a file; exactly one of any number of racing callers gets
    /// [`ClaimOutcome::Claimed`].
    pub async fn claim_file(
        &self,
        tenant: &str,
        file: &NewFileClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        dispatch!(self, s => s.claim_file(tenant, file).await)
    }

    /// Reads a claim.
    pub async fn get_claim(&self, tenant: &str, id: &str) -> Result<FileClaim, StoreError> {
        dispatch!(self, s => s.get_claim(tenant, id).await)
    }

    /// Moves a claim along its state machine, optionally recording its run.
    pub async fn set_claim_state(
        &self,
        tenant: &str,
        id: &str,
        to: ClaimState,
        run_id: Option<&str>,
    ) -> Result<FileClaim, StoreError> {
        dispatch!(self, s => s.set_claim_state(tenant, id, to, run_id).await)
    }

    // ---- import runs ------------------------------------------------------------------------

    /// Creates a `queued` run.
    pub async fn create_run(
        &self,
        tenant: &str,
        run: &NewImportRun,
    ) -> Result<ImportRun, StoreError> {
        dispatch!(self, s => s.create_run(tenant, run).await)
    }

    /// Reads a run.
    pub async fn get_run(&self, tenant: &str, id: &str) -> Result<ImportRun, StoreError> {
        dispatch!(self, s => s.get_run(tenant, id).await)
    }

    /// `queued → running`.
    pub async fn start_run(&self, tenant: &str, id: &str) -> Result<ImportRun, StoreError> {
        dispatch!(self, s => s.start_run(tenant, id).await)
    }

    /// Records interim counts and timings of a `running` run.
    pub async fn record_run_progress(
        &self,
        tenant: &str,
        id: &str,
        counts: &RunCounts,
        timings: &Value,
    ) -> Result<ImportRun, StoreError> {
        dispatch!(self, s => s.record_run_progress(tenant, id, counts, timings).await)
    }

    /// Ends a run: final status, counts, timings and error, its remaining rejected records, and
    /// its claim's state (`done`, or `failed` for a failed run) — in one transaction.
    pub async fn finish_run(
        &self,
        tenant: &str,
        id: &str,
        outcome: &RunOutcome,
        rejected: &[NewRejectedRecord],
    ) -> Result<ImportRun, StoreError> {
        dispatch!(self, s => s.finish_run(tenant, id, outcome, rejected).await)
    }

    // ---- rejected records -------------------------------------------------------------------

    /// Records rejected rows of a run in one transaction, as `pending`. A row already recorded
    /// for the run is left as it is (so a resumed run can re-insert). Returns how many were new.
    pub async fn insert_rejected_records(
        &self,
        tenant: &str,
        run_id: &str,
        template_id: &str,
        records: &[NewRejectedRecord],
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.insert_rejected_records(tenant, run_id, template_id, records).await)
    }

    /// Reads a rejected record.
    pub async fn get_rejected_record(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<RejectedRecord, StoreError> {
        self.get(Collection::RejectedRecords, tenant, id).await?.decode()
    }

    /// Lists rejected records (filter by `import_run_id`, `template_id`, `status`, `row_number`).
    pub async fn list_rejected_records(
        &self,
        tenant: &str,
        query: &ListQuery,
    ) -> Result<Page<RejectedRecord>, StoreError> {
        self.list(Collection::RejectedRecords, tenant, query).await?.decode()
    }

    /// Sets `corrected_data` (status becomes `corrected`, with a history row).
    pub async fn correct_rejected_record(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: Option<&str>,
        corrected_data: Value,
    ) -> Result<RejectedRecord, StoreError> {
        let corrected = Some(corrected_data);
        let to = RejectedStatus::Corrected;
        dispatch!(self, s => s.change_rejected(tenant, id, expected_revision, to, corrected, None, None).await)
    }

    /// Moves a record along its state machine with a history row; `validation_errors` replaces
    /// the errors (a failed retry going back to `pending`).
    pub async fn set_rejected_status(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: Option<&str>,
        to: RejectedStatus,
        validation_errors: Option<Value>,
        note: Option<&str>,
    ) -> Result<RejectedRecord, StoreError> {
        let errors = validation_errors;
        dispatch!(self, s => s.change_rejected(tenant, id, expected_revision, to, None, errors, note).await)
    }

    /// A record's status changes, oldest first.
    pub async fn rejected_record_history(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Vec<RejectedStatusChange>, StoreError> {
        dispatch!(self, s => s.rejected_record_history(tenant, id).await)
    }

    // ---- idempotency keys -------------------------------------------------------------------

    /// Records the keys of rows written for a template (one transaction; keys already recorded
    /// are kept). Returns how many were new.
    pub async fn record_written_keys(
        &self,
        tenant: &str,
        template_id: &str,
        run_id: Option<&str>,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.record_written_keys(tenant, template_id, run_id, keys).await)
    }

    /// Which of `candidates` were already written for the template.
    pub async fn written_keys(
        &self,
        tenant: &str,
        template_id: &str,
        candidates: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        dispatch!(self, s => s.written_keys(tenant, template_id, candidates).await)
    }
}

/// A new 24-hex-character id: 4 bytes of seconds since the epoch, then 8 random bytes — unique,
/// and roughly ordered by creation like an ObjectId.
pub fn new_object_id() -> String {
    use std::fmt::Write as _;
    let secs = u32::try_from(chrono::Utc::now().timestamp().max(0)).unwrap_or(u32::MAX);
    let random: [u8; 8] = rand::random();
    let mut id = String::with_capacity(24);
    for byte in secs.to_be_bytes().iter().chain(random.iter()) {
        let _ = write!(id, "{byte:02x}");
    }
    id
}
