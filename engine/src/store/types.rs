//! The values the state store takes and returns, shared by every backend.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreError;

/// The base fields every stored resource carries, as the platform names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The resource id: 24 hexadecimal characters (an ObjectId).
    #[serde(rename = "_id")]
    pub id: String,
    /// The tenant the resource belongs to.
    pub tenant_id: String,
    /// When the resource was created.
    pub created_at: DateTime<Utc>,
    /// When the resource was last written.
    pub updated_at: DateTime<Utc>,
    /// Renewed on every write; served as the ETag and checked as `If-Match`.
    pub revision_id: String,
    /// Soft-deleted resources are hidden from `get` and (by default) from `list`.
    pub is_deleted: bool,
    /// When the resource was soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A stored resource: its base fields and its body (a JSON object by default, or a typed body
/// for the collections the store manages itself, such as [`ImportRun`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document<T = Value> {
    /// The base fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// The resource's own fields.
    #[serde(flatten)]
    pub body: T,
}

impl Document<Value> {
    /// Reads the JSON body as a typed body.
    pub fn decode<T: serde::de::DeserializeOwned>(self) -> Result<Document<T>, StoreError> {
        let id = self.meta.id.clone();
        let body = serde_json::from_value(self.body).map_err(|e| StoreError::Corrupt {
            what: format!("document {id}"),
            reason: e.to_string(),
        })?;
        Ok(Document { meta: self.meta, body })
    }
}

impl<T: Serialize> Document<T> {
    /// The resource as the API renders it: base fields and body in one JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The document collections of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// Import templates (`/imports/templates`).
    Templates,
    /// File sources (`/imports/sources`).
    Sources,
    /// Import runs (`/imports/runs`); written only through the run operations.
    ImportRuns,
    /// Rejected records (`/rejected-records`); written only through the rejected-record operations.
    RejectedRecords,
    /// Alert channels (`/alert-channels`).
    AlertChannels,
    /// Alert routing rules (`/alert-routing-rules`).
    AlertRoutingRules,
    /// Alerts raised and what became of them (`/alerts`, read-only); written by the engine's
    /// dispatcher ([`crate::alerting`]).
    Alerts,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Collection; 7] = [
        Collection::Templates,
        Collection::Sources,
        Collection::ImportRuns,
        Collection::RejectedRecords,
        Collection::AlertChannels,
        Collection::AlertRoutingRules,
        Collection::Alerts,
    ];

    /// The table that holds the collection.
    pub fn table(self) -> &'static str {
        match self {
            Collection::Templates => "templates",
            Collection::Sources => "sources",
            Collection::ImportRuns => "import_runs",
            Collection::RejectedRecords => "rejected_records",
            Collection::AlertChannels => "alert_channels",
            Collection::AlertRoutingRules => "alert_routing_rules",
            Collection::Alerts => "alerts",
        }
    }

    /// The body fields that are indexed columns: the fields [`ListQuery`] filters and sorts on
    /// (besides `_id`, `created_at` and `updated_at`).
    pub fn indexed_fields(self) -> &'static [&'static str] {
        match self {
            Collection::Templates => &[
                "name",
                "external_id",
                "source_id",
                "is_active",
                "priority",
                "file_type",
                "target_resource",
            ],
            Collection::Sources => &["name", "external_id", "source_type", "is_active"],
            Collection::ImportRuns => &["status", "source_id", "template_id", "claim_id"],
            Collection::RejectedRecords => {
                &["import_run_id", "template_id", "row_number", "status"]
            }
            Collection::AlertChannels => &["name", "external_id", "type", "is_active"],
            Collection::AlertRoutingRules => &["name", "external_id", "priority", "is_active"],
            Collection::Alerts => &["status", "channel_id", "event_type", "severity", "dedup_key"],
        }
    }

    /// Whether `field` can be filtered and sorted on.
    pub fn is_queryable(self, field: &str) -> bool {
        matches!(field, "_id" | "created_at" | "updated_at")
            || self.indexed_fields().contains(&field)
    }

    /// Whether the store writes this collection itself (with its state machine and history), so
    /// the generic `create`/`update` refuse it.
    pub fn is_managed(self) -> bool {
        matches!(self, Collection::ImportRuns | Collection::RejectedRecords)
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table())
    }
}

/// A comparison in a [`Filter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// Equal (`null` matches a missing value).
    Eq,
    /// Not equal (`null`: the value is present).
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// One of the values of a JSON array.
    In,
}

/// One condition on an indexed field; the conditions of a [`ListQuery`] are ANDed.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The field ([`Collection::is_queryable`]).
    pub field: String,
    /// The comparison.
    pub op: FilterOp,
    /// A JSON scalar (an array for [`FilterOp::In`]); timestamps as RFC 3339 strings.
    pub value: Value,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// The field ([`Collection::is_queryable`]).
    pub field: String,
    /// Largest first.
    pub descending: bool,
}

/// What a list call returns: filters, sort and one page. Built to grow: the REST layer's `where`
/// syntax lowers to [`Filter`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Conditions, all of which must hold.
    pub filters: Vec<Filter>,
    /// Sort keys; empty means newest first. `_id` is always the final tie-breaker.
    pub sort: Vec<Sort>,
    /// The page, from 1.
    pub page: u32,
    /// Items per page, 1 to [`ListQuery::MAX_PER_PAGE`].
    pub per_page: u32,
    /// Include soft-deleted resources.
    pub include_deleted: bool,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            filters: Vec::new(),
            sort: Vec::new(),
            page: 1,
            per_page: 25,
            include_deleted: false,
        }
    }
}

impl ListQuery {
    /// The largest page the store serves.
    pub const MAX_PER_PAGE: u32 = 1000;

    /// The first page of 25, newest first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a condition.
    pub fn filter(mut self, field: &str, op: FilterOp, value: impl Into<Value>) -> Self {
        self.filters.push(Filter { field: field.to_owned(), op, value: value.into() });
        self
    }

    /// Adds an equality condition.
    pub fn eq(self, field: &str, value: impl Into<Value>) -> Self {
        self.filter(field, FilterOp::Eq, value)
    }

    /// Adds a sort key.
    pub fn sort_by(mut self, field: &str, descending: bool) -> Self {
        self.sort.push(Sort { field: field.to_owned(), descending });
        self
    }

    /// Selects a page.
    pub fn page(mut self, page: u32, per_page: u32) -> Self {
        self.page = page;
        self.per_page = per_page;
        self
    }

    /// Includes soft-deleted resources.
    pub fn include_deleted(mut self) -> Self {
        self.include_deleted = true;
        self
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items match in all.
    pub total: u64,
    /// The page, from 1.
    pub page: u32,
    /// Items per page.
    pub per_page: u32,
}

impl Page<Document> {
    /// Reads every item's body as a typed body.
    pub fn decode<T: serde::de::DeserializeOwned>(self) -> Result<Page<Document<T>>, StoreError> {
        Ok(Page {
            items: self.items.into_iter().map(Document::decode).collect::<Result<_, _>>()?,
            total: self.total,
            page: self.page,
            per_page: self.per_page,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// File claims
// ---------------------------------------------------------------------------------------------

/// The identity of one version of a file on a source, to be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFileClaim {
    /// The source the file was found on.
    pub source_id: String,
    /// The path relative to the source root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, when the source has one.
    pub modified: Option<DateTime<Utc>>,
    /// A version or ETag, when the source has one.
    pub version: Option<String>,
    /// SHA-256 of the content, lowercase hex.
    pub content_sha256: String,
}

/// Where a claimed file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Claimed, not yet being imported.
    Claimed,
    /// A worker is importing it.
    Importing,
    /// Imported (the run ended).
    Done,
    /// The import failed for good.
    Failed,
}

impl ClaimState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Claimed => "claimed",
            ClaimState::Importing => "importing",
            ClaimState::Done => "done",
            ClaimState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "claimed" => ClaimState::Claimed,
            "importing" => ClaimState::Importing,
            "done" => ClaimState::Done,
            "failed" => ClaimState::Failed,
            _ => return None,
        })
    }

    /// Legal moves: `claimed → importing → done | failed`; `importing → claimed` (released at
    /// shutdown); `claimed → failed` (e.g. unmatched); `failed → importing` (a retry).
    pub fn can_become(self, to: ClaimState) -> bool {
        use ClaimState::*;
        matches!(
            (self, to),
            (Claimed, Importing)
                | (Claimed, Failed)
                | (Importing, Done)
                | (Importing, Failed)
                | (Importing, Claimed)
                | (Failed, Importing)
        )
    }
}

/// A durable claim on one version of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileClaim {
    /// Base fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// The source.
    pub source_id: String,
    /// The path relative to the source root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, if known.
    pub modified: Option<DateTime<Utc>>,
    /// Version or ETag, if known.
    pub version: Option<String>,
    /// SHA-256 of the content.
    pub content_sha256: String,
    /// Where the claim is in its life.
    pub state: ClaimState,
    /// The run importing the file, once there is one.
    pub run_id: Option<String>,
}

/// The result of [`crate::store::Store::claim_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This caller claimed the file and owns its import.
    Claimed(FileClaim),
    /// Somebody claimed this exact file version before; here is their claim.
    AlreadyClaimed(FileClaim),
}

// ---------------------------------------------------------------------------------------------
// Import runs
// ---------------------------------------------------------------------------------------------

/// The state of an import run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is importing.
    Running,
    /// Every row went through.
    Succeeded,
    /// Some rows were rejected.
    PartiallySucceeded,
    /// The run failed (see its `error`).
    Failed,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::PartiallySucceeded => "partially_succeeded",
            RunStatus::Failed => "failed",
        }
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::PartiallySucceeded | RunStatus::Failed)
    }

    /// Legal moves: `queued → running → succeeded | partially_succeeded | failed`, and
    /// `queued → failed` for a run that could not start.
    pub fn can_become(self, to: RunStatus) -> bool {
        use RunStatus::*;
        matches!(
            (self, to),
            (Queued, Running)
                | (Queued, Failed)
                | (Running, Succeeded)
                | (Running, PartiallySucceeded)
                | (Running, Failed)
        )
    }
}

/// Row counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    /// Rows read from the file.
    pub read: u64,
    /// Rows that passed validation.
    pub valid: u64,
    /// Rows rejected (each has a rejected record).
    pub rejected: u64,
    /// Records created on the platform.
    pub created: u64,
    /// Records updated.
    pub updated: u64,
    /// Records deleted.
    pub deleted: u64,
    /// Rows skipped because their idempotency key was already written.
    pub skipped_already_written: u64,
}

/// The body of an import run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRunBody {
    /// Where the run is.
    pub status: RunStatus,
    /// The source the file came from (none for uploads).
    #[serde(default)]
    pub source_id: Option<String>,
    /// The template used.
    #[serde(default)]
    pub template_id: Option<String>,
    /// The file claim the run imports.
    #[serde(default)]
    pub claim_id: Option<String>,
    /// The file's path or upload name.
    #[serde(default)]
    pub source_name: Option<String>,
    /// Row counts.
    #[serde(default)]
    pub counts: RunCounts,
    /// Milliseconds per stage, e.g. `{"parse_ms": 12, "write_ms": 840}`.
    #[serde(default)]
    pub timings: Value,
    /// Why the run failed.
    #[serde(default)]
    pub error: Option<String>,
    /// When the run started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the run ended.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

/// An import run.
pub type ImportRun = Document<ImportRunBody>;

/// What a new run is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewImportRun {
    /// The source.
    pub source_id: Option<String>,
    /// The template.
    pub template_id: Option<String>,
    /// The file claim; finishing the run moves the claim to `done`/`failed`.
    pub claim_id: Option<String>,
    /// The file's path or upload name.
    pub source_name: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// `succeeded`, `partially_succeeded` or `failed`.
    pub status: RunStatus,
    /// Final counts.
    pub counts: RunCounts,
    /// Per-stage timings (a JSON object).
    pub timings: Value,
    /// The error of a failed run.
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Rejected records
// ---------------------------------------------------------------------------------------------

/// The status of a rejected record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectedStatus {
    /// Waiting for an operator.
    Pending,
    /// `corrected_data` is set; ready to retry.
    Corrected,
    /// Retried and written.
    Retried,
    /// Given up on.
    Discarded,
}

impl RejectedStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectedStatus::Pending => "pending",
            RejectedStatus::Corrected => "corrected",
            RejectedStatus::Retried => "retried",
            RejectedStatus::Discarded => "discarded",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RejectedStatus::Pending,
            "corrected" => RejectedStatus::Corrected,
            "retried" => RejectedStatus::Retried,
            "discarded" => RejectedStatus::Discarded,
            _ => return None,
        })
    }

    /// Legal moves: `pending → corrected → retried | discarded`, `pending → discarded`,
    /// `corrected → corrected` (corrected again), `corrected → pending` (a retry that failed
    /// validation again).
    pub fn can_become(self, to: RejectedStatus) -> bool {
        use RejectedStatus::*;
        matches!(
            (self, to),
            (Pending, Corrected)
                | (Pending, Discarded)
                | (Corrected, Corrected)
                | (Corrected, Retried)
                | (Corrected, Discarded)
                | (Corrected, Pending)
        )
    }
}

/// The body of a rejected record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedRecordBody {
    /// The run that rejected the row.
    pub import_run_id: String,
    /// The template used.
    pub template_id: String,
    /// The row's number in the file.
    pub row_number: u64,
    /// The row as parsed.
    pub original_data: Value,
    /// The errors (field and message).
    pub validation_errors: Value,
    /// Where the record is.
    pub status: RejectedStatus,
    /// An operator's correction.
    #[serde(default)]
    pub corrected_data: Option<Value>,
}

/// A rejected record.
pub type RejectedRecord = Document<RejectedRecordBody>;

/// A row to record as rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRejectedRecord {
    /// The row's number in the file.
    pub row_number: u64,
    /// The row as parsed.
    pub original_data: Value,
    /// The errors (a JSON array).
    pub validation_errors: Value,
}

/// One status change of a rejected record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedStatusChange {
    /// The history row's id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The record.
    pub rejected_record_id: String,
    /// The status before (none when the record was created).
    pub from_status: Option<RejectedStatus>,
    /// The status after.
    pub to_status: RejectedStatus,
    /// The record's revision after the change.
    pub revision_id: String,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// Why, when given.
    pub note: Option<String>,
}

/// Import runs and their rows over every tenant, for the metrics: per run status, how many
/// runs and the sum of their counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStatistics {
    /// `(status, runs, summed counts)`, one entry per status that has runs.
    pub by_status: Vec<(String, u64, RunCounts)>,
    /// Sources (not deleted) whose last poll failed (`last_error` set).
    pub sources_in_error: u64,
}
