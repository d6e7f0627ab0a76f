//! What the writer reports: one [`RowWriteOutcome`] per row it was given, and the run's
//! [`WriteReport`] (with the [`CompensationReport`] of an `all_or_nothing` roll-back).

use intake_parsers::{Layer, RowError};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// A valid row, ready to be written: its row number in the source file and its mapped data.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRow {
    /// The row's number in the source file (as the pipeline reports it).
    pub row_number: u64,
    /// The mapped, validated fields; this is the record body that is written.
    pub data: Map<String, Value>,
}

/// What happened to one row. Every row the writer receives gets exactly one outcome; outcomes
/// arrive in any order (rows with the same key are written in file order, their outcomes too).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RowWriteOutcome {
    /// A new record was created.
    Created {
        /// The row.
        row_number: u64,
        /// The new record's `_id`.
        id: String,
    },
    /// An existing record was changed.
    Updated {
        /// The row.
        row_number: u64,
        /// The record's `_id`.
        id: String,
    },
    /// Nothing needed writing: the record already holds the row's values (update, upsert, sync),
    /// the row's record already exists (create or append with a natural key), or a delete row's
    /// record does not exist (any more). `id` is the existing record, none for the last case.
    Unchanged {
        /// The row.
        row_number: u64,
        /// The record's `_id`, when there is one.
        id: Option<String>,
    },
    /// The row's record was soft-deleted (`delete_column`).
    Deleted {
        /// The row.
        row_number: u64,
        /// The deleted record's `_id`.
        id: String,
    },
    /// The API (or the mode) refused the row; it becomes a rejected record.
    Rejected {
        /// The row.
        row_number: u64,
        /// Why, as row errors of layer `write`.
        errors: Vec<RowError>,
    },
    /// The row was not written, through no fault of its own: the run failed or was cancelled,
    /// `stop_on_error` stopped it, or an `all_or_nothing` transaction was rolled back (its effect
    /// compensated). Re-running the file writes it.
    NotAttempted {
        /// The row.
        row_number: u64,
        /// Why, for the operator.
        reason: String,
    },
}

impl RowWriteOutcome {
    /// The row this outcome is for.
    pub fn row_number(&self) -> u64 {
        match self {
            RowWriteOutcome::Created { row_number, .. }
            | RowWriteOutcome::Updated { row_number, .. }
            | RowWriteOutcome::Unchanged { row_number, .. }
            | RowWriteOutcome::Deleted { row_number, .. }
            | RowWriteOutcome::Rejected { row_number, .. }
            | RowWriteOutcome::NotAttempted { row_number, .. } => *row_number,
        }
    }

    /// Whether the row failed (rejected), which is what `stop_on_error` and `all_or_nothing`
    /// react to.
    pub fn is_failure(&self) -> bool {
        matches!(self, RowWriteOutcome::Rejected { .. })
    }

    pub(crate) fn rejected(
        row_number: u64,
        field: Option<&str>,
        rule: &str,
        message: String,
        value: Option<Value>,
    ) -> Self {
        RowWriteOutcome::Rejected {
            row_number,
            errors: vec![RowError {
                layer: Layer::Write,
                field: field.map(str::to_owned),
                rule: rule.to_owned(),
                message,
                value,
            }],
        }
    }

    pub(crate) fn not_attempted(row_number: u64, reason: impl Into<String>) -> Self {
        RowWriteOutcome::NotAttempted { row_number, reason: reason.into() }
    }
}

/// The totals of one write run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WriteReport {
    /// Rows that created a record.
    pub created: u64,
    /// Rows that changed a record.
    pub updated: u64,
    /// Rows that needed no write.
    pub unchanged: u64,
    /// Rows that soft-deleted their record (`delete_column`).
    pub deleted: u64,
    /// Rows the API refused.
    pub rejected: u64,
    /// Rows not written (run failed, cancelled, stopped, rolled back).
    pub not_attempted: u64,
    /// Sync: records in scope soft-deleted because the file no longer has them.
    pub sync_deleted: u64,
    /// Sync: why the deletes were skipped, when they were (incomplete or invalid file, the share
    /// guard, a failed or cancelled run). The share guard is also a run `failure`.
    pub sync_skipped: Option<String>,
    /// `all_or_nothing`: what the roll-back did, when there was one.
    pub compensated: Option<CompensationReport>,
    /// HTTP requests sent during the run (including retries and compensation).
    pub requests: u64,
    /// Whether the run stopped because it was cancelled.
    pub cancelled: bool,
    /// Why the run did not complete: a run failure (403, 401 after renewal, retries exhausted),
    /// sync refused by the share guard, `stop_on_error`, an `all_or_nothing` roll-back, more rows
    /// than `max_transaction_rows`. None when it completed or was only cancelled (`cancelled`).
    pub failure: Option<String>,
}

impl WriteReport {
    /// Rows given to the writer (every row has exactly one outcome).
    pub fn rows(&self) -> u64 {
        self.created
            + self.updated
            + self.unchanged
            + self.deleted
            + self.rejected
            + self.not_attempted
    }

    pub(crate) fn count(&mut self, outcome: &RowWriteOutcome) {
        match outcome {
            RowWriteOutcome::Created { .. } => self.created += 1,
            RowWriteOutcome::Updated { .. } => self.updated += 1,
            RowWriteOutcome::Unchanged { .. } => self.unchanged += 1,
            RowWriteOutcome::Deleted { .. } => self.deleted += 1,
            RowWriteOutcome::Rejected { .. } => self.rejected += 1,
            RowWriteOutcome::NotAttempted { .. } => self.not_attempted += 1,
        }
    }
}

/// What an `all_or_nothing` roll-back did: every effect it undid and every one it could not.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompensationReport {
    /// Why the transaction was rolled back.
    pub reason: String,
    /// Records created by the run and deleted again.
    pub deleted_created: u64,
    /// Records updated by the run and restored from their pre-image.
    pub restored_updated: u64,
    /// Records deleted by the run and un-deleted.
    pub undeleted: u64,
    /// Every compensation action, in the order it was taken (newest effect first).
    pub actions: Vec<CompensationAction>,
}

impl CompensationReport {
    /// The actions that failed: effects that remain on the platform.
    pub fn failures(&self) -> impl Iterator<Item = &CompensationAction> {
        self.actions.iter().filter(|a| a.error.is_some())
    }

    /// Whether every effect was undone.
    pub fn complete(&self) -> bool {
        self.failures().next().is_none()
    }
}

/// One compensation: which record, what was done, and whether it worked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompensationAction {
    /// The row whose write is undone (none for a sync delete).
    pub row_number: Option<u64>,
    /// The record.
    pub id: String,
    /// What undoing it means.
    pub kind: CompensationKind,
    /// Why it could not be undone; none when it was.
    pub error: Option<String>,
}

/// How an effect is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompensationKind {
    /// A created record is deleted.
    DeleteCreated,
    /// An updated record is restored with a PUT of its pre-image.
    RestoreUpdated,
    /// A deleted record is un-deleted (`is_deleted: false, deleted_at: null`).
    Undelete,
}

/// Where outcomes go: counted, then sent to the caller, or held back until an `all_or_nothing`
/// transaction commits or rolls back.
pub(crate) struct OutcomeSink {
    sender: mpsc::Sender<RowWriteOutcome>,
    state: std::sync::Mutex<SinkState>,
    hold: bool,
}

#[derive(Default)]
struct SinkState {
    report: WriteReport,
    held: Vec<RowWriteOutcome>,
    failures: u64,
}

impl OutcomeSink {
    pub(crate) fn new(sender: mpsc::Sender<RowWriteOutcome>, hold: bool) -> Self {
        OutcomeSink { sender, state: std::sync::Mutex::new(SinkState::default()), hold }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        // A poisoned lock only means a task panicked mid-update of plain counters.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reports one row's outcome.
    pub(crate) async fn emit(&self, outcome: RowWriteOutcome) {
        {
            let mut state = self.lock();
            if outcome.is_failure() {
                state.failures += 1;
            }
            if self.hold {
                state.held.push(outcome);
                return;
            }
            state.report.count(&outcome);
        }
        // The caller may have stopped listening; the totals still count the row.
        let _ = self.sender.send(outcome).await;
    }

    /// Rows that failed so far (held or sent).
    pub(crate) fn failures(&self) -> u64 {
        self.lock().failures
    }

    /// Takes the held outcomes (all_or_nothing).
    pub(crate) fn take_held(&self) -> Vec<RowWriteOutcome> {
        std::mem::take(&mut self.lock().held)
    }

    /// Sends outcomes that were held back, counting them.
    pub(crate) async fn release(&self, outcomes: Vec<RowWriteOutcome>) {
        for outcome in outcomes {
            self.lock().report.count(&outcome);
            let _ = self.sender.send(outcome).await;
        }
    }

    /// The row totals so far.
    pub(crate) fn totals(&self) -> WriteReport {
        self.lock().report.clone()
    }
}
