//! The SQLite backend: one database file in WAL mode (readers never block the writer), a busy
//! timeout so concurrent writers queue instead of failing, foreign keys on, `synchronous=FULL` so
//! a committed transaction survives a crash or power loss, and the migrations in
//! `engine/migrations/sqlite` applied on open.
//!
//! Read-modify-write operations run in `BEGIN IMMEDIATE` transactions: the write lock is taken
//! up front, so two writers never deadlock upgrading a read lock, and the state machine checks
//! see the row as it is when the write happens.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, SqliteConnection, Transaction};

use super::common::{
    Condition, ListPlan, Scalar, change_rejected_body, check_claim_move, check_outcome,
    check_revision, check_run_move, clean_body, finish_run_body, from_doc_text, new_meta,
    new_rejected_body, new_run_body, not_found, now, parse_rejected_status, plan_list,
    rejected_template, start_run_body, to_doc_text,
};
use super::types::*;
use super::{StoreError, new_object_id};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The base columns, in the order [`meta_from_row`] reads them.
const BASE_COLUMNS: &str =
    "_id, tenant_id, created_at, updated_at, revision_id, is_deleted, deleted_at";
/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 16;
/// How long a writer waits for the write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Idempotency keys per INSERT statement (5 binds each).
const KEYS_PER_INSERT: usize = 200;
/// Candidate keys per SELECT statement.
const KEYS_PER_SELECT: usize = 500;

/// The state store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn bind_all<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments>,
    binds: &[Scalar],
) -> Query<'q, Sqlite, SqliteArguments> {
    for bind in binds {
        query = match bind {
            Scalar::Text(s) => query.bind(s.clone()),
            Scalar::Int(i) => query.bind(*i),
            Scalar::Real(f) => query.bind(*f),
            Scalar::Bool(b) => query.bind(*b),
            Scalar::Time(t) => query.bind(ts(*t)),
        };
    }
    query
}

/// A timestamp as stored: RFC 3339 UTC with microseconds, which sorts chronologically.
fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(text: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        StoreError::Corrupt {
            what: what.to_owned(),
            reason: format!("bad timestamp {text:?}: {e}"),
        }
    })
}

fn meta_from_row(row: &SqliteRow) -> Result<Meta, StoreError> {
    let id: String = row.try_get("_id")?;
    let created_at: String = row.try_get("created_at")?;
    let updated_at: String = row.try_get("updated_at")?;
    let deleted_at: Option<String> = row.try_get("deleted_at")?;
    Ok(Meta {
        tenant_id: row.try_get("tenant_id")?,
        created_at: parse_ts(&created_at, &id)?,
        updated_at: parse_ts(&updated_at, &id)?,
        revision_id: row.try_get("revision_id")?,
        is_deleted: row.try_get("is_deleted")?,
        deleted_at: deleted_at.map(|d| parse_ts(&d, &id)).transpose()?,
        id,
    })
}

fn document_from_row(row: &SqliteRow) -> Result<Document, StoreError> {
    let meta = meta_from_row(row)?;
    let doc: String = row.try_get("doc")?;
    let body = from_doc_text(&doc, &meta.id)?;
    Ok(Document { meta, body })
}

fn claim_from_row(row: &SqliteRow) -> Result<FileClaim, StoreError> {
    let meta = meta_from_row(row)?;
    let size: i64 = row.try_get("size")?;
    let modified: String = row.try_get("modified")?;
    let version: String = row.try_get("version")?;
    let state: String = row.try_get("state")?;
    let corrupt =
        |reason: String| StoreError::Corrupt { what: format!("file claim {}", meta.id), reason };
    Ok(FileClaim {
        source_id: row.try_get("source_id")?,
        path: row.try_get("path")?,
        size: u64::try_from(size).map_err(|_| corrupt(format!("negative size {size}")))?,
        modified: if modified.is_empty() { None } else { Some(parse_ts(&modified, &meta.id)?) },
        version: (!version.is_empty()).then_some(version),
        content_sha256: row.try_get("content_sha256")?,
        state: ClaimState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown state {state:?}")))?,
        run_id: row.try_get("run_id")?,
        meta,
    })
}

/// The WHERE clause of a list and its binds, in SQLite's dialect.
fn where_clause(tenant: &str, plan: &ListPlan) -> (String, Vec<Scalar>) {
    let mut conditions = String::from("tenant_id = ?");
    let mut binds = vec![Scalar::Text(tenant.to_owned())];
    if !plan.include_deleted {
        conditions.push_str(" AND is_deleted = 0");
    }
    for condition in &plan.conditions {
        match condition {
            Condition::IsNull(column) => conditions.push_str(&format!(" AND {column} IS NULL")),
            Condition::IsNotNull(column) => {
                conditions.push_str(&format!(" AND {column} IS NOT NULL"))
            }
            Condition::Never => conditions.push_str(" AND 0 = 1"),
            Condition::In(column, values) => {
                let marks = vec!["?"; values.len()].join(", ");
                conditions.push_str(&format!(" AND {column} IN ({marks})"));
                binds.extend(values.iter().cloned());
            }
            Condition::Compare(column, op, value) => {
                let symbol = match op {
                    FilterOp::Eq => "=",
                    FilterOp::Ne => "IS NOT",
                    FilterOp::Gt => ">",
                    FilterOp::Gte => ">=",
                    FilterOp::Lt => "<",
                    FilterOp::Lte => "<=",
                    FilterOp::In => "IN",
                };
                conditions.push_str(&format!(" AND {column} {symbol} ?"));
                binds.push(value.clone());
            }
        }
    }
    (conditions, binds)
}

/// Loads a live document inside a transaction.
async fn load_doc(
    conn: &mut SqliteConnection,
    collection: Collection,
    tenant: &str,
    id: &str,
) -> Result<Document, StoreError> {
    let sql = format!(
        "SELECT {BASE_COLUMNS}, doc FROM {} WHERE _id = ? AND tenant_id = ? AND is_deleted = 0",
        collection.table()
    );
    let row = sqlx::query(AssertSqlSafe(sql)).bind(id).bind(tenant).fetch_optional(conn).await?;
    match row {
        Some(row) => document_from_row(&row),
        None => Err(not_found(collection, id)),
    }
}

/// Writes a document's body with a new revision inside a transaction; returns the new base fields.
async fn save_body<T: Serialize>(
    conn: &mut SqliteConnection,
    collection: Collection,
    meta: &Meta,
    body: &T,
) -> Result<Meta, StoreError> {
    let at = now();
    let revision = new_object_id();
    let sql = format!(
        "UPDATE {} SET doc = ?, updated_at = ?, revision_id = ? WHERE _id = ? AND tenant_id = ?",
        collection.table()
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(to_doc_text(body)?)
        .bind(ts(at))
        .bind(&revision)
        .bind(&meta.id)
        .bind(&meta.tenant_id)
        .execute(conn)
        .await?;
    Ok(Meta { updated_at: at, revision_id: revision, ..meta.clone() })
}

async fn insert_history(
    conn: &mut SqliteConnection,
    record: &Meta,
    from: Option<RejectedStatus>,
    to: RejectedStatus,
    note: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rejected_record_history \
         (_id, tenant_id, rejected_record_id, from_status, to_status, revision_id, changed_at, note) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new_object_id())
    .bind(&record.tenant_id)
    .bind(&record.id)
    .bind(from.map(RejectedStatus::as_str))
    .bind(to.as_str())
    .bind(&record.revision_id)
    .bind(ts(record.updated_at))
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_rejected(
    conn: &mut SqliteConnection,
    tenant: &str,
    run_id: &str,
    template_id: &str,
    records: &[NewRejectedRecord],
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for record in records {
        let body = new_rejected_body(run_id, template_id, record);
        let meta = new_meta(tenant);
        let done = sqlx::query(
            "INSERT INTO rejected_records \
             (_id, tenant_id, created_at, updated_at, revision_id, is_deleted, deleted_at, doc) \
             VALUES (?, ?, ?, ?, ?, 0, NULL, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&meta.id)
        .bind(tenant)
        .bind(ts(meta.created_at))
        .bind(ts(meta.updated_at))
        .bind(&meta.revision_id)
        .bind(to_doc_text(&body)?)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {
            inserted += 1;
            insert_history(&mut *conn, &meta, None, RejectedStatus::Pending, None).await?;
        }
    }
    Ok(inserted)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `location` — a file path or a `sqlite:` URL —
    /// and applies the migrations.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open { location: location.to_owned(), source };
        let options = if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location).map_err(open_error)?
        } else {
            SqliteConnectOptions::new().filename(location)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        crate::sqlite_migrations::migrate(&MIGRATOR, &pool).await?;
        Ok(SqliteStore { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Takes or renews the lease `name` for `holder` until `ttl` from now; `false` when another
    /// holder's lease has not expired.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now_ms = Utc::now().timestamp_millis();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at_ms) VALUES (?1, ?2, ?3 + ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at_ms = excluded.expires_at_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_at_ms <= ?3 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now_ms)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    /// Gives the lease `name` up, if `holder` still holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Runs per status with their summed counts, and the sources in error, over every tenant.
    pub async fn run_statistics(&self) -> Result<RunStatistics, StoreError> {
        let sum = |field: &str| format!("COALESCE(SUM(json_extract(doc, '$.counts.{field}')), 0)");
        let sql = format!(
            "SELECT status, COUNT(*), {}, {}, {}, {}, {}, {}, {} FROM import_runs \
             WHERE is_deleted = 0 GROUP BY status ORDER BY status",
            sum("read"),
            sum("valid"),
            sum("rejected"),
            sum("created"),
            sum("updated"),
            sum("deleted"),
            sum("skipped_already_written"),
        );
        let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        let count = |row: &sqlx::sqlite::SqliteRow, i: usize| {
            u64::try_from(row.try_get::<i64, _>(i).unwrap_or(0)).unwrap_or(0)
        };
        let by_status = rows
            .iter()
            .map(|row| {
                let status: Option<String> = row.try_get(0).unwrap_or(None);
                let counts = RunCounts {
                    read: count(row, 2),
                    valid: count(row, 3),
                    rejected: count(row, 4),
                    created: count(row, 5),
                    updated: count(row, 6),
                    deleted: count(row, 7),
                    skipped_already_written: count(row, 8),
                };
                (status.unwrap_or_default(), count(row, 1), counts)
            })
            .collect();
        let (in_error,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sources WHERE is_deleted = 0 \
             AND json_extract(doc, '$.last_error') IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(RunStatistics { by_status, sources_in_error: u64::try_from(in_error).unwrap_or(0) })
    }

    /// A transaction holding the write lock from its start.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// See [`super::Store::create`].
    pub async fn create(
        &self,
        collection: Collection,
        tenant: &str,
        body: Value,
    ) -> Result<Document, StoreError> {
        if collection.is_managed() {
            return Err(StoreError::Managed(collection));
        }
        let body = clean_body(body)?;
        let mut conn = self.pool.acquire().await?;
        let meta = self.insert_doc(&mut conn, collection, tenant, &body).await?;
        Ok(Document { meta, body })
    }

    async fn insert_doc<T: Serialize>(
        &self,
        conn: &mut SqliteConnection,
        collection: Collection,
        tenant: &str,
        body: &T,
    ) -> Result<Meta, StoreError> {
        let meta = new_meta(tenant);
        let sql = format!(
            "INSERT INTO {} \
             (_id, tenant_id, created_at, updated_at, revision_id, is_deleted, deleted_at, doc) \
             VALUES (?, ?, ?, ?, ?, 0, NULL, ?)",
            collection.table()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&meta.id)
            .bind(tenant)
            .bind(ts(meta.created_at))
            .bind(ts(meta.updated_at))
            .bind(&meta.revision_id)
            .bind(to_doc_text(body)?)
            .execute(conn)
            .await?;
        Ok(meta)
    }

    /// See [`super::Store::get`].
    pub async fn get(
        &self,
        collection: Collection,
        tenant: &str,
        id: &str,
    ) -> Result<Document, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_doc(&mut conn, collection, tenant, id).await
    }

    /// See [`super::Store::list`].
    pub async fn list(
        &self,
        collection: Collection,
        tenant: &str,
        query: &ListQuery,
    ) -> Result<Page<Document>, StoreError> {
        let plan = plan_list(collection, query)?;
        let (conditions, binds) = where_clause(tenant, &plan);
        let order: Vec<String> = plan
            .order
            .iter()
            .map(|(column, descending)| {
                format!("{column} {}", if *descending { "DESC" } else { "ASC" })
            })
            .collect();
        let ListPlan { page, per_page, offset, .. } = plan;

        let table = collection.table();
        let mut conn = self.pool.acquire().await?;
        let count_sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {conditions}");
        let total: i64 = bind_all(sqlx::query(AssertSqlSafe(count_sql)), &binds)
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        let items_sql = format!(
            "SELECT {BASE_COLUMNS}, doc FROM {table} WHERE {conditions} ORDER BY {} LIMIT ? OFFSET ?",
            order.join(", ")
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(items_sql)), &binds)
            .bind(i64::from(per_page))
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
        Ok(Page {
            items: rows.iter().map(document_from_row).collect::<Result<_, _>>()?,
            total: u64::try_from(total).unwrap_or(0),
            page,
            per_page,
        })
    }

    /// See [`super::Store::update`].
    pub async fn update(
        &self,
        collection: Collection,
        tenant: &str,
        id: &str,
        expected_revision: Option<&str>,
        body: Value,
    ) -> Result<Document, StoreError> {
        if collection.is_managed() {
            return Err(StoreError::Managed(collection));
        }
        let body = clean_body(body)?;
        let mut tx = self.write_tx().await?;
        let current = load_doc(&mut tx, collection, tenant, id).await?;
        check_revision(collection, &current.meta, expected_revision)?;
        let meta = save_body(&mut tx, collection, &current.meta, &body).await?;
        tx.commit().await?;
        Ok(Document { meta, body })
    }

    /// See [`super::Store::delete`].
    pub async fn delete(
        &self,
        collection: Collection,
        tenant: &str,
        id: &str,
        expected_revision: Option<&str>,
    ) -> Result<Document, StoreError> {
        let mut tx = self.write_tx().await?;
        let current = load_doc(&mut tx, collection, tenant, id).await?;
        check_revision(collection, &current.meta, expected_revision)?;
        let at = now();
        let revision = new_object_id();
        let sql = format!(
            "UPDATE {} SET is_deleted = 1, deleted_at = ?, updated_at = ?, revision_id = ? \
             WHERE _id = ? AND tenant_id = ?",
            collection.table()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(ts(at))
            .bind(ts(at))
            .bind(&revision)
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Document {
            meta: Meta {
                updated_at: at,
                revision_id: revision,
                is_deleted: true,
                deleted_at: Some(at),
                ..current.meta
            },
            body: current.body,
        })
    }

    // ---- file claims ------------------------------------------------------------------------

    /// See [`super::Store::claim_file`].
    pub async fn claim_file(
        &self,
        tenant: &str,
        file: &NewFileClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        let size = i64::try_from(file.size)
            .map_err(|_| StoreError::Invalid(format!("file size {} is too large", file.size)))?;
        let modified = file.modified.map(|m| ts(m.trunc_subsecs(6))).unwrap_or_default();
        let version = file.version.clone().unwrap_or_default();
        let at = now();
        let id = new_object_id();
        let revision = new_object_id();
        // The unique index decides: of any number of racing inserts exactly one lands.
        let inserted = sqlx::query(
            "INSERT INTO file_claims \
             (_id, tenant_id, created_at, updated_at, revision_id, is_deleted, deleted_at, \
              source_id, path, size, modified, version, content_sha256, state, run_id) \
             VALUES (?, ?, ?, ?, ?, 0, NULL, ?, ?, ?, ?, ?, ?, 'claimed', NULL) \
             ON CONFLICT (source_id, path, size, modified, version, content_sha256) DO NOTHING",
        )
        .bind(&id)
        .bind(tenant)
        .bind(ts(at))
        .bind(ts(at))
        .bind(&revision)
        .bind(&file.source_id)
        .bind(&file.path)
        .bind(size)
        .bind(&modified)
        .bind(&version)
        .bind(&file.content_sha256)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(ClaimOutcome::Claimed(FileClaim {
                meta: Meta {
                    id,
                    tenant_id: tenant.to_owned(),
                    created_at: at,
                    updated_at: at,
                    revision_id: revision,
                    is_deleted: false,
                    deleted_at: None,
                },
                source_id: file.source_id.clone(),
                path: file.path.clone(),
                size: file.size,
                modified: file.modified.map(|m| m.trunc_subsecs(6)),
                version: file.version.clone().filter(|v| !v.is_empty()),
                content_sha256: file.content_sha256.clone(),
                state: ClaimState::Claimed,
                run_id: None,
            }));
        }
        let row = sqlx::query(
            "SELECT * FROM file_claims WHERE source_id = ? AND path = ? AND size = ? \
             AND modified = ? AND version = ? AND content_sha256 = ? AND tenant_id = ?",
        )
        .bind(&file.source_id)
        .bind(&file.path)
        .bind(size)
        .bind(&modified)
        .bind(&version)
        .bind(&file.content_sha256)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(ClaimOutcome::AlreadyClaimed(claim_from_row(&row)?)),
            None => Err(StoreError::Invalid(format!(
                "file {:?} of source {} is claimed under another tenant",
                file.path, file.source_id
            ))),
        }
    }

    /// See [`super::Store::get_claim`].
    pub async fn get_claim(&self, tenant: &str, id: &str) -> Result<FileClaim, StoreError> {
        let row = sqlx::query("SELECT * FROM file_claims WHERE _id = ? AND tenant_id = ?")
            .bind(id)
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => claim_from_row(&row),
            None => Err(not_found("file_claims", id)),
        }
    }

    /// See [`super::Store::set_claim_state`].
    pub async fn set_claim_state(
        &self,
        tenant: &str,
        id: &str,
        to: ClaimState,
        run_id: Option<&str>,
    ) -> Result<FileClaim, StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT * FROM file_claims WHERE _id = ? AND tenant_id = ?")
            .bind(id)
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
        let mut claim = match row {
            Some(row) => claim_from_row(&row)?,
            None => return Err(not_found("file_claims", id)),
        };
        check_claim_move(id, claim.state, to)?;
        let at = now();
        let revision = new_object_id();
        if let Some(run_id) = run_id {
            claim.run_id = Some(run_id.to_owned());
        }
        sqlx::query(
            "UPDATE file_claims SET state = ?, run_id = ?, updated_at = ?, revision_id = ? \
             WHERE _id = ? AND tenant_id = ?",
        )
        .bind(to.as_str())
        .bind(&claim.run_id)
        .bind(ts(at))
        .bind(&revision)
        .bind(id)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        claim.state = to;
        claim.meta.updated_at = at;
        claim.meta.revision_id = revision;
        Ok(claim)
    }

    // ---- import runs ------------------------------------------------------------------------

    /// See [`super::Store::create_run`].
    pub async fn create_run(
        &self,
        tenant: &str,
        run: &NewImportRun,
    ) -> Result<ImportRun, StoreError> {
        let body = new_run_body(run);
        let mut conn = self.pool.acquire().await?;
        let meta = self.insert_doc(&mut conn, Collection::ImportRuns, tenant, &body).await?;
        Ok(Document { meta, body })
    }

    /// See [`super::Store::get_run`].
    pub async fn get_run(&self, tenant: &str, id: &str) -> Result<ImportRun, StoreError> {
        self.get(Collection::ImportRuns, tenant, id).await?.decode()
    }

    async fn load_run(
        conn: &mut SqliteConnection,
        tenant: &str,
        id: &str,
        to: RunStatus,
    ) -> Result<ImportRun, StoreError> {
        let run: ImportRun = load_doc(conn, Collection::ImportRuns, tenant, id).await?.decode()?;
        check_run_move(&run, to)?;
        Ok(run)
    }

    /// See [`super::Store::start_run`].
    pub async fn start_run(&self, tenant: &str, id: &str) -> Result<ImportRun, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut run: ImportRun =
            load_doc(&mut tx, Collection::ImportRuns, tenant, id).await?.decode()?;
        start_run_body(&mut run)?;
        run.meta = save_body(&mut tx, Collection::ImportRuns, &run.meta, &run.body).await?;
        tx.commit().await?;
        Ok(run)
    }

    /// See [`super::Store::record_run_progress`].
    pub async fn record_run_progress(
        &self,
        tenant: &str,
        id: &str,
        counts: &RunCounts,
        timings: &Value,
    ) -> Result<ImportRun, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut run = Self::load_run(&mut tx, tenant, id, RunStatus::Running).await?;
        run.body.counts = *counts;
        run.body.timings = timings.clone();
        run.meta = save_body(&mut tx, Collection::ImportRuns, &run.meta, &run.body).await?;
        tx.commit().await?;
        Ok(run)
    }

    /// See [`super::Store::finish_run`].
    pub async fn finish_run(
        &self,
        tenant: &str,
        id: &str,
        outcome: &RunOutcome,
        rejected: &[NewRejectedRecord],
    ) -> Result<ImportRun, StoreError> {
        check_outcome(outcome)?;
        let mut tx = self.write_tx().await?;
        let mut run = Self::load_run(&mut tx, tenant, id, outcome.status).await?;
        if !rejected.is_empty() {
            let template_id = rejected_template(&run)?;
            insert_rejected(&mut tx, tenant, id, &template_id, rejected).await?;
        }
        let at = now();
        let state = finish_run_body(&mut run, outcome, at);
        run.meta = save_body(&mut tx, Collection::ImportRuns, &run.meta, &run.body).await?;
        if let Some(claim_id) = &run.body.claim_id {
            sqlx::query(
                "UPDATE file_claims SET state = ?, run_id = ?, updated_at = ?, revision_id = ? \
                 WHERE _id = ? AND tenant_id = ?",
            )
            .bind(state.as_str())
            .bind(id)
            .bind(ts(at))
            .bind(new_object_id())
            .bind(claim_id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(run)
    }

    // ---- rejected records -------------------------------------------------------------------

    /// See [`super::Store::insert_rejected_records`].
    pub async fn insert_rejected_records(
        &self,
        tenant: &str,
        run_id: &str,
        template_id: &str,
        records: &[NewRejectedRecord],
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        load_doc(&mut tx, Collection::ImportRuns, tenant, run_id).await?;
        let inserted = insert_rejected(&mut tx, tenant, run_id, template_id, records).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// See [`super::Store::correct_rejected_record`] and [`super::Store::set_rejected_status`]:
    /// one status change with its history row, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn change_rejected(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: Option<&str>,
        to: RejectedStatus,
        corrected_data: Option<Value>,
        validation_errors: Option<Value>,
        note: Option<&str>,
    ) -> Result<RejectedRecord, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut record: RejectedRecord =
            load_doc(&mut tx, Collection::RejectedRecords, tenant, id).await?.decode()?;
        check_revision(Collection::RejectedRecords, &record.meta, expected_revision)?;
        let from = change_rejected_body(&mut record, to, corrected_data, validation_errors)?;
        record.meta =
            save_body(&mut tx, Collection::RejectedRecords, &record.meta, &record.body).await?;
        insert_history(&mut tx, &record.meta, Some(from), to, note).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// See [`super::Store::rejected_record_history`].
    pub async fn rejected_record_history(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Vec<RejectedStatusChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.* FROM rejected_record_history h \
             JOIN rejected_records r ON r._id = h.rejected_record_id \
             WHERE h.rejected_record_id = ? AND h.tenant_id = ? AND r.tenant_id = ? \
             ORDER BY h.changed_at, h.rowid",
        )
        .bind(id)
        .bind(tenant)
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            // Distinguish "no such record" from "no history yet".
            self.get(Collection::RejectedRecords, tenant, id).await?;
        }
        rows.iter()
            .map(|row| {
                let hid: String = row.try_get("_id")?;
                let what = format!("rejected record history {hid}");
                let from: Option<String> = row.try_get("from_status")?;
                let to: String = row.try_get("to_status")?;
                let changed_at: String = row.try_get("changed_at")?;
                Ok(RejectedStatusChange {
                    rejected_record_id: row.try_get("rejected_record_id")?,
                    from_status: from.map(|f| parse_rejected_status(&f, &what)).transpose()?,
                    to_status: parse_rejected_status(&to, &what)?,
                    revision_id: row.try_get("revision_id")?,
                    changed_at: parse_ts(&changed_at, &hid)?,
                    note: row.try_get("note")?,
                    id: hid,
                })
            })
            .collect()
    }

    // ---- idempotency keys -------------------------------------------------------------------

    /// See [`super::Store::record_written_keys`].
    pub async fn record_written_keys(
        &self,
        tenant: &str,
        template_id: &str,
        run_id: Option<&str>,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let at = ts(now());
        let mut tx = self.write_tx().await?;
        let mut inserted = 0;
        for chunk in keys.chunks(KEYS_PER_INSERT) {
            let rows = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO row_idempotency_keys \
                 (template_id, key, tenant_id, import_run_id, created_at) VALUES {rows} \
                 ON CONFLICT DO NOTHING"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for key in chunk {
                query = query
                    .bind(template_id)
                    .bind(key.as_str())
                    .bind(tenant)
                    .bind(run_id)
                    .bind(at.as_str());
            }
            inserted += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// See [`super::Store::written_keys`].
    pub async fn written_keys(
        &self,
        tenant: &str,
        template_id: &str,
        candidates: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        let mut conn = self.pool.acquire().await?;
        for chunk in candidates.chunks(KEYS_PER_SELECT) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT key FROM row_idempotency_keys \
                 WHERE tenant_id = ? AND template_id = ? AND key IN ({marks})"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(tenant).bind(template_id);
            for key in chunk {
                query = query.bind(key.as_str());
            }
            for row in query.fetch_all(&mut *conn).await? {
                found.insert(row.try_get::<String, _>("key")?);
            }
        }
        Ok(found)
    }
}
