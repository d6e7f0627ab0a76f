//! What every backend shares, so the SQLite and PostgreSQL stores cannot drift apart on anything
//! that is not SQL: body cleaning, new base fields and bodies, timestamps at the stored precision,
//! the validation of a [`ListQuery`] into a [`ListPlan`], and the state machine checks of runs,
//! claims and rejected records. Nothing here knows a SQL dialect.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::Value;

use super::types::*;
use super::{StoreError, new_object_id};

/// Keys of a body that are base fields and never stored in `doc`.
const RESERVED_KEYS: &[&str] = &[
    "_id",
    "id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_id",
    "is_deleted",
    "deleted_at",
];

/// The current time at the stored precision (microseconds).
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The base fields of a resource created now.
pub(super) fn new_meta(tenant: &str) -> Meta {
    let at = now();
    Meta {
        id: new_object_id(),
        tenant_id: tenant.to_owned(),
        created_at: at,
        updated_at: at,
        revision_id: new_object_id(),
        is_deleted: false,
        deleted_at: None,
    }
}

/// Checks a body is a JSON object and drops the base fields from it.
pub(super) fn clean_body(body: Value) -> Result<Value, StoreError> {
    match body {
        Value::Object(mut map) => {
            for key in RESERVED_KEYS {
                map.remove(*key);
            }
            Ok(Value::Object(map))
        }
        other => Err(StoreError::Invalid(format!(
            "a resource body must be a JSON object, not {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        ))),
    }
}

/// A body as the JSON text stored in `doc`.
pub(super) fn to_doc_text<T: Serialize>(body: &T) -> Result<String, StoreError> {
    serde_json::to_string(body).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// A body read back from the JSON text in `doc`.
pub(super) fn from_doc_text(doc: &str, id: &str) -> Result<Value, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
        what: id.to_owned(),
        reason: format!("document is not JSON: {e}"),
    })
}

/// The error for a missing (or other tenant's, or deleted) resource.
pub(super) fn not_found(what: impl ToString, id: &str) -> StoreError {
    StoreError::NotFound { collection: what.to_string(), id: id.to_owned() }
}

/// Fails with [`StoreError::Conflict`] when the caller expected another revision.
pub(super) fn check_revision(
    collection: Collection,
    meta: &Meta,
    expected: Option<&str>,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != meta.revision_id => Err(StoreError::Conflict {
            collection: collection.to_string(),
            id: meta.id.clone(),
            expected: expected.to_owned(),
            current_revision: meta.revision_id.clone(),
        }),
        _ => Ok(()),
    }
}

// ---- list queries ---------------------------------------------------------------------------

/// A filter value, typed as the caller gave it (timestamps of `created_at`/`updated_at` parsed).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// Any other number.
    Real(f64),
    /// A boolean.
    Bool(bool),
    /// An RFC 3339 timestamp given for a timestamp column, at the stored precision.
    Time(DateTime<Utc>),
}

/// One validated condition of a list; the column names come from the collection's fixed list.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Condition {
    /// The column is NULL (`eq null`).
    IsNull(&'static str),
    /// The column is not NULL (`ne null`).
    IsNotNull(&'static str),
    /// Nothing matches (`in []`).
    Never,
    /// The column is one of the values.
    In(&'static str, Vec<Scalar>),
    /// A comparison; [`FilterOp::Ne`] is NULL-safe (a missing value is "not equal").
    Compare(&'static str, FilterOp, Scalar),
}

/// A [`ListQuery`] checked against its collection: what each backend turns into SQL.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ListPlan {
    /// The conditions, ANDed (besides the tenant and, unless included, not deleted).
    pub conditions: Vec<Condition>,
    /// Include soft-deleted resources.
    pub include_deleted: bool,
    /// `(column, descending)`, ending with the `_id` tie-breaker.
    pub order: Vec<(&'static str, bool)>,
    /// The page, from 1.
    pub page: u32,
    /// Items per page, clamped to 1..=[`ListQuery::MAX_PER_PAGE`].
    pub per_page: u32,
    /// Rows to skip.
    pub offset: i64,
}

/// The column for a queryable field: a `'static` name from the fixed list, never the input.
fn column(collection: Collection, field: &str) -> Result<&'static str, StoreError> {
    const BASE: [&str; 3] = ["_id", "created_at", "updated_at"];
    BASE.iter()
        .chain(collection.indexed_fields())
        .find(|known| **known == field)
        .copied()
        .ok_or_else(|| StoreError::UnknownField {
            collection: collection.to_string(),
            field: field.to_owned(),
        })
}

/// A filter value as a scalar; timestamps are parsed for the timestamp columns.
fn scalar(field: &str, value: &Value) -> Result<Scalar, StoreError> {
    Ok(match value {
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) if matches!(field, "created_at" | "updated_at") => {
            match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Scalar::Time(t.with_timezone(&Utc).trunc_subsecs(6)),
                Err(_) => Scalar::Text(s.clone()),
            }
        }
        Value::String(s) => Scalar::Text(s.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => {
            return Err(StoreError::Invalid(format!(
                "the filter on {field:?} needs a scalar value"
            )));
        }
    })
}

/// Validates a list query for a collection: only queryable fields, scalar values, arrays for
/// `in`, and a page within bounds. Newest first when no sort is given; `_id` breaks ties.
pub(super) fn plan_list(collection: Collection, query: &ListQuery) -> Result<ListPlan, StoreError> {
    let mut conditions = Vec::with_capacity(query.filters.len());
    for filter in &query.filters {
        let column = column(collection, &filter.field)?;
        conditions.push(match (filter.op, &filter.value) {
            (FilterOp::Eq, Value::Null) => Condition::IsNull(column),
            (FilterOp::Ne, Value::Null) => Condition::IsNotNull(column),
            (FilterOp::In, Value::Array(values)) if values.is_empty() => Condition::Never,
            (FilterOp::In, Value::Array(values)) => Condition::In(
                column,
                values.iter().map(|v| scalar(column, v)).collect::<Result<_, _>>()?,
            ),
            (FilterOp::In, _) => {
                return Err(StoreError::Invalid(format!(
                    "the `in` filter on {column:?} needs an array"
                )));
            }
            (op, value) => Condition::Compare(column, op, scalar(column, value)?),
        });
    }
    let mut order = Vec::with_capacity(query.sort.len() + 2);
    for sort in &query.sort {
        order.push((column(collection, &sort.field)?, sort.descending));
    }
    if order.is_empty() {
        order.push(("created_at", true));
        order.push(("_id", true));
    } else {
        order.push(("_id", false));
    }
    let per_page = query.per_page.clamp(1, ListQuery::MAX_PER_PAGE);
    let page = query.page.max(1);
    Ok(ListPlan {
        conditions,
        include_deleted: query.include_deleted,
        order,
        page,
        per_page,
        offset: i64::from(page - 1) * i64::from(per_page),
    })
}

// ---- state machines -------------------------------------------------------------------------

/// Fails unless a claim may move from `from` to `to`.
pub(super) fn check_claim_move(
    id: &str,
    from: ClaimState,
    to: ClaimState,
) -> Result<(), StoreError> {
    if from.can_become(to) {
        return Ok(());
    }
    Err(StoreError::IllegalTransition {
        what: "file claim",
        id: id.to_owned(),
        from: from.as_str().to_owned(),
        to: to.as_str().to_owned(),
    })
}

/// The body of a new, `queued` run.
pub(super) fn new_run_body(run: &NewImportRun) -> ImportRunBody {
    ImportRunBody {
        status: RunStatus::Queued,
        source_id: run.source_id.clone(),
        template_id: run.template_id.clone(),
        claim_id: run.claim_id.clone(),
        source_name: run.source_name.clone(),
        counts: RunCounts::default(),
        timings: Value::Object(Default::default()),
        error: None,
        started_at: None,
        finished_at: None,
    }
}

/// Fails unless the run may move to `to`; `Running` here means "still running" (progress).
pub(super) fn check_run_move(run: &ImportRun, to: RunStatus) -> Result<(), StoreError> {
    let legal = if to == RunStatus::Running {
        run.body.status == RunStatus::Running
    } else {
        run.body.status.can_become(to)
    };
    if legal {
        return Ok(());
    }
    Err(illegal_run_move(run, to))
}

/// The error for a run that cannot move to `to`.
pub(super) fn illegal_run_move(run: &ImportRun, to: RunStatus) -> StoreError {
    StoreError::IllegalTransition {
        what: "import run",
        id: run.meta.id.clone(),
        from: run.body.status.as_str().to_owned(),
        to: to.as_str().to_owned(),
    }
}

/// Moves a loaded run `queued → running`.
pub(super) fn start_run_body(run: &mut ImportRun) -> Result<(), StoreError> {
    if !run.body.status.can_become(RunStatus::Running) {
        return Err(illegal_run_move(run, RunStatus::Running));
    }
    run.body.status = RunStatus::Running;
    run.body.started_at = Some(now());
    Ok(())
}

/// Fails unless the outcome is a final status.
pub(super) fn check_outcome(outcome: &RunOutcome) -> Result<(), StoreError> {
    if outcome.status.is_final() {
        return Ok(());
    }
    Err(StoreError::Invalid(format!("a run cannot finish as {}", outcome.status.as_str())))
}

/// The template the rejected records of a finishing run belong to.
pub(super) fn rejected_template(run: &ImportRun) -> Result<String, StoreError> {
    run.body.template_id.clone().ok_or_else(|| {
        StoreError::Invalid(format!(
            "run {} has no template, so it cannot have rejected records",
            run.meta.id
        ))
    })
}

/// Writes a run's end into its body; returns the state its claim ends in.
pub(super) fn finish_run_body(
    run: &mut ImportRun,
    outcome: &RunOutcome,
    at: DateTime<Utc>,
) -> ClaimState {
    run.body.status = outcome.status;
    run.body.counts = outcome.counts;
    run.body.timings = outcome.timings.clone();
    run.body.error = outcome.error.clone();
    run.body.finished_at = Some(at);
    // The run's end is the claim's end, whichever live state the claim was in.
    if outcome.status == RunStatus::Failed { ClaimState::Failed } else { ClaimState::Done }
}

/// The body of a new, `pending` rejected record.
pub(super) fn new_rejected_body(
    run_id: &str,
    template_id: &str,
    record: &NewRejectedRecord,
) -> RejectedRecordBody {
    RejectedRecordBody {
        import_run_id: run_id.to_owned(),
        template_id: template_id.to_owned(),
        row_number: record.row_number,
        original_data: record.original_data.clone(),
        validation_errors: record.validation_errors.clone(),
        status: RejectedStatus::Pending,
        corrected_data: None,
    }
}

/// Applies a status change to a loaded rejected record (after its revision was checked);
/// returns the status it had.
pub(super) fn change_rejected_body(
    record: &mut RejectedRecord,
    to: RejectedStatus,
    corrected_data: Option<Value>,
    validation_errors: Option<Value>,
) -> Result<RejectedStatus, StoreError> {
    let from = record.body.status;
    if !from.can_become(to) {
        return Err(StoreError::IllegalTransition {
            what: "rejected record",
            id: record.meta.id.clone(),
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
        });
    }
    if let Some(data) = corrected_data {
        record.body.corrected_data = Some(data);
    }
    if to == RejectedStatus::Corrected && record.body.corrected_data.is_none() {
        return Err(StoreError::Invalid(format!(
            "rejected record {} has no corrected_data to be corrected with",
            record.meta.id
        )));
    }
    if let Some(errors) = validation_errors {
        record.body.validation_errors = errors;
    }
    record.body.status = to;
    Ok(from)
}

/// Parses a stored rejected-record status.
pub(super) fn parse_rejected_status(s: &str, what: &str) -> Result<RejectedStatus, StoreError> {
    RejectedStatus::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: what.to_owned(),
        reason: format!("unknown status {s:?}"),
    })
}
