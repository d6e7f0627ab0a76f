//! The PostgreSQL backend: a connection pool to one database, the migrations in
//! `engine/migrations/postgres` applied on open (sqlx takes an advisory lock, so several
//! processes opening the same database at once migrate it once).
//!
//! Where SQLite takes the write lock up front (`BEGIN IMMEDIATE`), the read-modify-write
//! operations here run in READ COMMITTED transactions that read the row they change with
//! `SELECT … FOR UPDATE`: concurrent writers of the same row queue on its lock, and the state
//! machine checks see the row as it is when the write happens. Rows are always locked in the same
//! order (a run before its claim), so these transactions do not deadlock each other. Claims,
//! rejected rows and idempotency keys are decided by unique indexes with `ON CONFLICT DO
//! NOTHING`, which waits for a racing insert of the same key and then skips it.
//!
//! Errors: SQLSTATE class 22 (data exceptions, e.g. a `\u0000` in a string) is the caller's input
//! and becomes [`StoreError::Invalid`]; everything else (connection trouble, serialization
//! failures, deadlocks, ...) is [`StoreError::Database`], which is retryable.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres,
};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Row};

use super::common::{
    Condition, ListPlan, Scalar, change_rejected_body, check_claim_move, check_outcome,
    check_revision, check_run_move, clean_body, finish_run_body, from_doc_text, new_meta,
    new_rejected_body, new_run_body, not_found, now, parse_rejected_status, plan_list,
    rejected_template, start_run_body, to_doc_text,
};
use super::types::*;
use super::{StoreError, new_object_id};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The base columns and the document (as text, so its key order is kept), as
/// [`document_from_row`] reads them.
const DOC_COLUMNS: &str =
    "_id, tenant_id, created_at, updated_at, revision_id, is_deleted, deleted_at, doc::text AS doc";
/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The state store in one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// Maps a database error to the store's errors: bad data is the caller's, the rest retryable.
fn db(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(e) = &error
        && e.code().is_some_and(|code| code.starts_with("22"))
    {
        return StoreError::Invalid(e.message().to_owned());
    }
    StoreError::Database(error)
}

/// `.db()` on a sqlx result: [`db`] as a method, for `?`.
trait Db<T> {
    /// Maps the error with [`db`].
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db)
    }
}

/// A value bound to a placeholder of a dynamically built statement, in the column's type.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// The SQL type of a queryable column (see the migrations): timestamps, the boolean
/// `is_active`, the numeric `priority` and `row_number`, and text for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    Time,
}

fn kind(column: &str) -> Kind {
    match column {
        "created_at" | "updated_at" => Kind::Time,
        "is_active" => Kind::Bool,
        "priority" | "row_number" => Kind::Number,
        _ => Kind::Text,
    }
}

/// A filter value converted to its column's type (PostgreSQL does not compare text with
/// numbers as SQLite does).
fn typed_bind(column: &str, value: &Scalar) -> Result<Bind, StoreError> {
    let mismatch = |what: &str| {
        StoreError::Invalid(format!("the filter on {column:?} needs {what}, not {value:?}"))
    };
    Ok(match (kind(column), value) {
        (Kind::Text, Scalar::Text(s)) => Bind::Text(s.clone()),
        (Kind::Text, Scalar::Int(i)) => Bind::Text(i.to_string()),
        (Kind::Text, Scalar::Real(f)) => Bind::Text(f.to_string()),
        (Kind::Text, Scalar::Bool(b)) => Bind::Text(b.to_string()),
        (Kind::Text, Scalar::Time(t)) => Bind::Text(t.to_rfc3339()),
        (Kind::Number, Scalar::Int(i)) => Bind::Int(*i),
        (Kind::Number, Scalar::Real(f)) => Bind::Real(*f),
        (Kind::Number, Scalar::Bool(b)) => Bind::Int(i64::from(*b)),
        (Kind::Number, Scalar::Text(s)) => match (s.parse::<i64>(), s.parse::<f64>()) {
            (Ok(i), _) => Bind::Int(i),
            (_, Ok(f)) => Bind::Real(f),
            _ => return Err(mismatch("a number")),
        },
        (Kind::Bool, Scalar::Bool(b)) => Bind::Bool(*b),
        (Kind::Bool, Scalar::Int(0)) => Bind::Bool(false),
        (Kind::Bool, Scalar::Int(1)) => Bind::Bool(true),
        (Kind::Bool, Scalar::Text(s)) if s == "true" || s == "false" => Bind::Bool(s == "true"),
        (Kind::Time, Scalar::Time(t)) => Bind::Time(*t),
        (Kind::Number, Scalar::Time(_)) => return Err(mismatch("a number")),
        (Kind::Bool, _) => return Err(mismatch("a boolean")),
        (Kind::Time, _) => return Err(mismatch("an RFC 3339 timestamp")),
    })
}

fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    binds: &[Bind],
) -> Query<'q, Postgres, PgArguments> {
    for bind in binds {
        query = match bind {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
            Bind::Real(f) => query.bind(*f),
            Bind::Bool(b) => query.bind(*b),
            Bind::Time(t) => query.bind(*t),
        };
    }
    query
}

/// The WHERE clause of a list and its binds, with `$n` placeholders.
fn where_clause(tenant: &str, plan: &ListPlan) -> Result<(String, Vec<Bind>), StoreError> {
    let mut binds = vec![Bind::Text(tenant.to_owned())];
    let mut conditions = String::from("tenant_id = $1");
    if !plan.include_deleted {
        conditions.push_str(" AND NOT is_deleted");
    }
    fn mark(binds: &mut Vec<Bind>, bind: Bind) -> String {
        binds.push(bind);
        format!("${}", binds.len())
    }
    for condition in &plan.conditions {
        match condition {
            Condition::IsNull(column) => conditions.push_str(&format!(" AND {column} IS NULL")),
            Condition::IsNotNull(column) => {
                conditions.push_str(&format!(" AND {column} IS NOT NULL"))
            }
            Condition::Never => conditions.push_str(" AND false"),
            Condition::In(column, values) => {
                let mut marks = Vec::with_capacity(values.len());
                for value in values {
                    marks.push(mark(&mut binds, typed_bind(column, value)?));
                }
                conditions.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
            }
            Condition::Compare(column, op, value) => {
                let symbol = match op {
                    FilterOp::Eq => "=",
                    FilterOp::Ne => "IS DISTINCT FROM",
                    FilterOp::Gt => ">",
                    FilterOp::Gte => ">=",
                    FilterOp::Lt => "<",
                    FilterOp::Lte => "<=",
                    FilterOp::In => "IN",
                };
                let placeholder = mark(&mut binds, typed_bind(column, value)?);
                conditions.push_str(&format!(" AND {column} {symbol} {placeholder}"));
            }
        }
    }
    Ok((conditions, binds))
}

fn meta_from_row(row: &PgRow) -> Result<Meta, StoreError> {
    Ok(Meta {
        id: row.try_get("_id")?,
        tenant_id: row.try_get("tenant_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_id: row.try_get("revision_id")?,
        is_deleted: row.try_get("is_deleted")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

fn document_from_row(row: &PgRow) -> Result<Document, StoreError> {
    let meta = meta_from_row(row)?;
    let doc: String = row.try_get("doc")?;
    let body = from_doc_text(&doc, &meta.id)?;
    Ok(Document { meta, body })
}

fn claim_from_row(row: &PgRow) -> Result<FileClaim, StoreError> {
    let meta = meta_from_row(row)?;
    let size: i64 = row.try_get("size")?;
    let state: String = row.try_get("state")?;
    let corrupt =
        |reason: String| StoreError::Corrupt { what: format!("file claim {}", meta.id), reason };
    Ok(FileClaim {
        source_id: row.try_get("source_id")?,
        path: row.try_get("path")?,
        size: u64::try_from(size).map_err(|_| corrupt(format!("negative size {size}")))?,
        modified: row.try_get("modified")?,
        version: row.try_get("version")?,
        content_sha256: row.try_get("content_sha256")?,
        state: ClaimState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown state {state:?}")))?,
        run_id: row.try_get("run_id")?,
        meta,
    })
}

/// Loads a live document; inside a transaction, `FOR UPDATE` locks it until the commit.
async fn load_doc(
    conn: &mut PgConnection,
    collection: Collection,
    tenant: &str,
    id: &str,
    for_update: bool,
) -> Result<Document, StoreError> {
    let sql = format!(
        "SELECT {DOC_COLUMNS} FROM {} WHERE _id = $1 AND tenant_id = $2 AND NOT is_deleted{}",
        collection.table(),
        if for_update { " FOR UPDATE" } else { "" }
    );
    let row =
        sqlx::query(AssertSqlSafe(sql)).bind(id).bind(tenant).fetch_optional(conn).await.db()?;
    match row {
        Some(row) => document_from_row(&row),
        None => Err(not_found(collection, id)),
    }
}

/// Inserts a new document; returns its base fields.
async fn insert_doc<T: Serialize>(
    conn: &mut PgConnection,
    collection: Collection,
    tenant: &str,
    body: &T,
) -> Result<Meta, StoreError> {
    let meta = new_meta(tenant);
    let sql = format!(
        "INSERT INTO {} \
         (_id, tenant_id, created_at, updated_at, revision_id, is_deleted, deleted_at, doc) \
         VALUES ($1, $2, $3, $3, $4, false, NULL, $5::json)",
        collection.table()
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(&meta.id)
        .bind(tenant)
        .bind(meta.created_at)
        .bind(&meta.revision_id)
        .bind(to_doc_text(body)?)
        .execute(conn)
        .await
        .db()?;
    Ok(meta)
}

/// Writes a document's body with a new revision inside a transaction; returns the new base fields.
async fn save_body<T: Serialize>(
    conn: &mut PgConnection,
    collection: Collection,
    meta: &Meta,
    body: &T,
) -> Result<Meta, StoreError> {
    let at = now();
    let revision = new_object_id();
    let sql = format!(
        "UPDATE {} SET doc = $1::json, updated_at = $2, revision_id = $3 \
         WHERE _id = $4 AND tenant_id = $5",
        collection.table()
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(to_doc_text(body)?)
        .bind(at)
        .bind(&revision)
        .bind(&meta.id)
        .bind(&meta.tenant_id)
        .execute(conn)
        .await
        .db()?;
    Ok(Meta { updated_at: at, revision_id: revision, ..meta.clone() })
}

async fn insert_history(
    conn: &mut PgConnection,
    record: &Meta,
    from: Option<RejectedStatus>,
    to: RejectedStatus,
    note: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rejected_record_history \
         (_id, tenant_id, rejected_record_id, from_status, to_status, revision_id, changed_at, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_object_id())
    .bind(&record.tenant_id)
    .bind(&record.id)
    .bind(from.map(RejectedStatus::as_str))
    .bind(to.as_str())
    .bind(&record.revision_id)
    .bind(record.updated_at)
    .bind(note)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

/// Inserts rejected rows as `pending` with their history rows, in two statements; rows already
/// recorded for the run are skipped. Returns how many were new.
async fn insert_rejected(
    conn: &mut PgConnection,
    tenant: &str,
    run_id: &str,
    template_id: &str,
    records: &[NewRejectedRecord],
) -> Result<u64, StoreError> {
    if records.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(records.len());
    let mut revisions = Vec::with_capacity(records.len());
    let mut times = Vec::with_capacity(records.len());
    let mut docs = Vec::with_capacity(records.len());
    for record in records {
        let meta = new_meta(tenant);
        docs.push(to_doc_text(&new_rejected_body(run_id, template_id, record))?);
        ids.push(meta.id);
        revisions.push(meta.revision_id);
        times.push(meta.created_at);
    }
    let inserted = sqlx::query(
        "INSERT INTO rejected_records \
         (_id, tenant_id, created_at, updated_at, revision_id, is_deleted, deleted_at, doc) \
         SELECT r.id, $1, r.at, r.at, r.revision, false, NULL, r.doc::json \
         FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[]) \
              AS r (id, revision, at, doc) \
         ON CONFLICT DO NOTHING \
         RETURNING _id, revision_id, updated_at",
    )
    .bind(tenant)
    .bind(ids)
    .bind(revisions)
    .bind(times)
    .bind(docs)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    if inserted.is_empty() {
        return Ok(0);
    }
    let mut history_ids = Vec::with_capacity(inserted.len());
    let mut record_ids = Vec::with_capacity(inserted.len());
    let mut revisions = Vec::with_capacity(inserted.len());
    let mut times = Vec::with_capacity(inserted.len());
    for row in &inserted {
        history_ids.push(new_object_id());
        record_ids.push(row.try_get::<String, _>("_id")?);
        revisions.push(row.try_get::<String, _>("revision_id")?);
        times.push(row.try_get::<DateTime<Utc>, _>("updated_at")?);
    }
    sqlx::query(
        "INSERT INTO rejected_record_history \
         (_id, tenant_id, rejected_record_id, from_status, to_status, revision_id, changed_at, note) \
         SELECT h.id, $1, h.record_id, NULL, $2, h.revision, h.at, NULL \
         FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[]) \
              AS h (id, record_id, revision, at)",
    )
    .bind(tenant)
    .bind(RejectedStatus::Pending.as_str())
    .bind(history_ids)
    .bind(record_ids)
    .bind(revisions)
    .bind(times)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(u64::try_from(inserted.len()).unwrap_or(u64::MAX))
}

impl PgStore {
    /// Connects to the database at `location` — a `postgres:` or `postgresql:` URL — and applies
    /// the migrations. The database must exist.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open { location: location.to_owned(), source };
        let options = PgConnectOptions::from_str(location).map_err(open_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(())
    }

    /// Takes or renews the lease `name` for `holder` until `ttl` from now (the database's
    /// clock); `false` when another holder's lease has not expired.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) \
             VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= clock_timestamp() \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(ttl_ms as f64)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        Ok(taken.is_some())
    }

    /// Gives the lease `name` up, if `holder` still holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    /// Runs per status with their summed counts, and the sources in error, over every tenant.
    pub async fn run_statistics(&self) -> Result<RunStatistics, StoreError> {
        let sum = |field: &str| {
            format!("COALESCE(SUM(intake_doc_number(doc -> 'counts', '{field}', NULL)), 0)::bigint")
        };
        let sql = format!(
            "SELECT status, COUNT(*), {}, {}, {}, {}, {}, {}, {} FROM import_runs \
             WHERE NOT is_deleted GROUP BY status ORDER BY status",
            sum("read"),
            sum("valid"),
            sum("rejected"),
            sum("created"),
            sum("updated"),
            sum("deleted"),
            sum("skipped_already_written"),
        );
        let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&self.pool).await.db()?;
        let count = |row: &PgRow, i: usize| {
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
            "SELECT COUNT(*) FROM sources WHERE NOT is_deleted AND doc ->> 'last_error' IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .db()?;
        Ok(RunStatistics { by_status, sources_in_error: u64::try_from(in_error).unwrap_or(0) })
    }

    /// A READ COMMITTED transaction; the rows it changes are read `FOR UPDATE`.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.db()
    }

    // ---- generic documents ------------------------------------------------------------------

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
        let mut conn = self.pool.acquire().await.db()?;
        let meta = insert_doc(&mut conn, collection, tenant, &body).await?;
        Ok(Document { meta, body })
    }

    /// See [`super::Store::get`].
    pub async fn get(
        &self,
        collection: Collection,
        tenant: &str,
        id: &str,
    ) -> Result<Document, StoreError> {
        let mut conn = self.pool.acquire().await.db()?;
        load_doc(&mut conn, collection, tenant, id, false).await
    }

    /// See [`super::Store::list`].
    pub async fn list(
        &self,
        collection: Collection,
        tenant: &str,
        query: &ListQuery,
    ) -> Result<Page<Document>, StoreError> {
        let plan = plan_list(collection, query)?;
        let (conditions, binds) = where_clause(tenant, &plan)?;
        // NULLs sort as the smallest value, as on SQLite.
        let order: Vec<String> = plan
            .order
            .iter()
            .map(|(column, descending)| {
                let direction = if *descending { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
                format!("{column} {direction}")
            })
            .collect();
        let ListPlan { page, per_page, offset, .. } = plan;

        let table = collection.table();
        let mut conn = self.pool.acquire().await.db()?;
        let count_sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {conditions}");
        let total: i64 = bind_all(sqlx::query(AssertSqlSafe(count_sql)), &binds)
            .fetch_one(&mut *conn)
            .await
            .db()?
            .try_get("n")?;
        let items_sql = format!(
            "SELECT {DOC_COLUMNS} FROM {table} WHERE {conditions} ORDER BY {} \
             LIMIT ${} OFFSET ${}",
            order.join(", "),
            binds.len() + 1,
            binds.len() + 2,
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(items_sql)), &binds)
            .bind(i64::from(per_page))
            .bind(offset)
            .fetch_all(&mut *conn)
            .await
            .db()?;
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
        let current = load_doc(&mut tx, collection, tenant, id, true).await?;
        check_revision(collection, &current.meta, expected_revision)?;
        let meta = save_body(&mut tx, collection, &current.meta, &body).await?;
        tx.commit().await.db()?;
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
        let current = load_doc(&mut tx, collection, tenant, id, true).await?;
        check_revision(collection, &current.meta, expected_revision)?;
        let at = now();
        let revision = new_object_id();
        let sql = format!(
            "UPDATE {} SET is_deleted = true, deleted_at = $1, updated_at = $1, revision_id = $2 \
             WHERE _id = $3 AND tenant_id = $4",
            collection.table()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(at)
            .bind(&revision)
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
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
        let modified = file.modified.map(|m| m.trunc_subsecs(6));
        let version = file.version.clone().filter(|v| !v.is_empty());
        let meta = new_meta(tenant);
        // The unique index decides: of any number of racing inserts exactly one lands; the
        // others wait for it and do nothing.
        let inserted = sqlx::query(
            "INSERT INTO file_claims \
             (_id, tenant_id, created_at, updated_at, revision_id, is_deleted, deleted_at, \
              source_id, path, size, modified, version, content_sha256, state, run_id) \
             VALUES ($1, $2, $3, $3, $4, false, NULL, $5, $6, $7, $8, $9, $10, 'claimed', NULL) \
             ON CONFLICT (source_id, path, size, coalesce(modified, '-infinity'), \
                          coalesce(version, ''), content_sha256) DO NOTHING",
        )
        .bind(&meta.id)
        .bind(tenant)
        .bind(meta.created_at)
        .bind(&meta.revision_id)
        .bind(&file.source_id)
        .bind(&file.path)
        .bind(size)
        .bind(modified)
        .bind(&version)
        .bind(&file.content_sha256)
        .execute(&self.pool)
        .await
        .db()?;
        if inserted.rows_affected() == 1 {
            return Ok(ClaimOutcome::Claimed(FileClaim {
                meta,
                source_id: file.source_id.clone(),
                path: file.path.clone(),
                size: file.size,
                modified,
                version,
                content_sha256: file.content_sha256.clone(),
                state: ClaimState::Claimed,
                run_id: None,
            }));
        }
        let row = sqlx::query(
            "SELECT * FROM file_claims WHERE source_id = $1 AND path = $2 AND size = $3 \
             AND coalesce(modified, '-infinity') = coalesce($4::timestamptz, '-infinity') \
             AND coalesce(version, '') = coalesce($5::text, '') \
             AND content_sha256 = $6 AND tenant_id = $7",
        )
        .bind(&file.source_id)
        .bind(&file.path)
        .bind(size)
        .bind(modified)
        .bind(&version)
        .bind(&file.content_sha256)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await
        .db()?;
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
        let row = sqlx::query("SELECT * FROM file_claims WHERE _id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .db()?;
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
        let row =
            sqlx::query("SELECT * FROM file_claims WHERE _id = $1 AND tenant_id = $2 FOR UPDATE")
                .bind(id)
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
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
            "UPDATE file_claims SET state = $1, run_id = $2, updated_at = $3, revision_id = $4 \
             WHERE _id = $5 AND tenant_id = $6",
        )
        .bind(to.as_str())
        .bind(&claim.run_id)
        .bind(at)
        .bind(&revision)
        .bind(id)
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
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
        let mut conn = self.pool.acquire().await.db()?;
        let meta = insert_doc(&mut conn, Collection::ImportRuns, tenant, &body).await?;
        Ok(Document { meta, body })
    }

    /// See [`super::Store::get_run`].
    pub async fn get_run(&self, tenant: &str, id: &str) -> Result<ImportRun, StoreError> {
        self.get(Collection::ImportRuns, tenant, id).await?.decode()
    }

    /// Loads and locks a run that may move to `to`.
    async fn load_run(
        conn: &mut PgConnection,
        tenant: &str,
        id: &str,
        to: RunStatus,
    ) -> Result<ImportRun, StoreError> {
        let run: ImportRun =
            load_doc(conn, Collection::ImportRuns, tenant, id, true).await?.decode()?;
        check_run_move(&run, to)?;
        Ok(run)
    }

    /// See [`super::Store::start_run`].
    pub async fn start_run(&self, tenant: &str, id: &str) -> Result<ImportRun, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut run: ImportRun =
            load_doc(&mut tx, Collection::ImportRuns, tenant, id, true).await?.decode()?;
        start_run_body(&mut run)?;
        run.meta = save_body(&mut tx, Collection::ImportRuns, &run.meta, &run.body).await?;
        tx.commit().await.db()?;
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
        tx.commit().await.db()?;
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
                "UPDATE file_claims SET state = $1, run_id = $2, updated_at = $3, revision_id = $4 \
                 WHERE _id = $5 AND tenant_id = $6",
            )
            .bind(state.as_str())
            .bind(id)
            .bind(at)
            .bind(new_object_id())
            .bind(claim_id)
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .db()?;
        }
        tx.commit().await.db()?;
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
        load_doc(&mut tx, Collection::ImportRuns, tenant, run_id, true).await?;
        let inserted = insert_rejected(&mut tx, tenant, run_id, template_id, records).await?;
        tx.commit().await.db()?;
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
            load_doc(&mut tx, Collection::RejectedRecords, tenant, id, true).await?.decode()?;
        check_revision(Collection::RejectedRecords, &record.meta, expected_revision)?;
        let from = change_rejected_body(&mut record, to, corrected_data, validation_errors)?;
        record.meta =
            save_body(&mut tx, Collection::RejectedRecords, &record.meta, &record.body).await?;
        insert_history(&mut tx, &record.meta, Some(from), to, note).await?;
        tx.commit().await.db()?;
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
             WHERE h.rejected_record_id = $1 AND h.tenant_id = $2 AND r.tenant_id = $2 \
             ORDER BY h.changed_at, h.seq",
        )
        .bind(id)
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .db()?;
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
                Ok(RejectedStatusChange {
                    rejected_record_id: row.try_get("rejected_record_id")?,
                    from_status: from.map(|f| parse_rejected_status(&f, &what)).transpose()?,
                    to_status: parse_rejected_status(&to, &what)?,
                    revision_id: row.try_get("revision_id")?,
                    changed_at: row.try_get("changed_at")?,
                    note: row.try_get("note")?,
                    id: hid,
                })
            })
            .collect()
    }

    // ---- idempotency keys -------------------------------------------------------------------

    /// See [`super::Store::record_written_keys`]. One statement (so one transaction); the keys
    /// are inserted sorted, so racing writers of overlapping batches take their row locks in
    /// the same order and never deadlock.
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
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let done = sqlx::query(
            "INSERT INTO row_idempotency_keys \
             (template_id, key, tenant_id, import_run_id, created_at) \
             SELECT $1, k.key, $2, $3, $4 FROM unnest($5::text[]) WITH ORDINALITY AS k (key, n) \
             ORDER BY k.n \
             ON CONFLICT DO NOTHING",
        )
        .bind(template_id)
        .bind(tenant)
        .bind(run_id)
        .bind(now())
        .bind(sorted)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    /// See [`super::Store::written_keys`].
    pub async fn written_keys(
        &self,
        tenant: &str,
        template_id: &str,
        candidates: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        if candidates.is_empty() {
            return Ok(HashSet::new());
        }
        let rows = sqlx::query(
            "SELECT key FROM row_idempotency_keys \
             WHERE tenant_id = $1 AND template_id = $2 AND key = ANY($3::text[])",
        )
        .bind(tenant)
        .bind(template_id)
        .bind(candidates)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(|row| Ok(row.try_get::<String, _>("key")?)).collect()
    }
}
