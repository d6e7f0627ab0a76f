//! The writer's configuration: the template's `transaction` and `idempotency` parts (owned here,
//! composed by the [`Template`](crate::template::Template)), and [`WriterConfig`], everything one
//! write run needs, checked without I/O by [`WriterConfig::validate`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::template::ImportMode;

/// The largest `batch_size` a template may ask for.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// How a file's writes hang together (the template's `transaction`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionConfig {
    /// `best_effort`: every valid row is written, a row the API refuses becomes a rejected
    /// record. `batched`: rows are written in batches of `batch_size`; with `stop_on_error`, no
    /// batch starts after one in which a row failed. `all_or_nothing`: the file is written only if
    /// every row is valid; if a write fails midway, everything already written is compensated.
    #[serde(default)]
    pub mode: TransactionMode,
    /// Rows per batch in `batched` mode (1 to 10000).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// `all_or_nothing`: the most rows a file may have; a larger file is refused before anything
    /// is written (the undo journal of a transaction is held in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_transaction_rows: Option<usize>,
    /// `batched`: after a batch in which any row failed, the remaining rows are not attempted.
    #[serde(default)]
    pub stop_on_error: bool,
}

fn default_batch_size() -> usize {
    100
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            mode: TransactionMode::default(),
            batch_size: default_batch_size(),
            max_transaction_rows: None,
            stop_on_error: false,
        }
    }
}

impl TransactionConfig {
    /// Every problem with this part of a template, without I/O.
    pub fn problems(&self) -> Vec<WriterConfigProblem> {
        let mut problems = Vec::new();
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            problems.push(WriterConfigProblem::BatchSize(self.batch_size));
        }
        if self.max_transaction_rows == Some(0) {
            problems.push(WriterConfigProblem::MaxTransactionRowsZero);
        }
        problems
    }

    /// Whether a file of `rows` valid rows may be written in this mode: `all_or_nothing` refuses
    /// a file larger than `max_transaction_rows`. Call it before writing when the row count is
    /// known; the writer also enforces it while streaming (and compensates when it trips).
    pub fn admits(&self, rows: u64) -> Result<(), String> {
        match (self.mode, self.max_transaction_rows) {
            (TransactionMode::AllOrNothing, Some(max)) if rows > max as u64 => Err(format!(
                "the file has {rows} rows, more than max_transaction_rows ({max}) allows in \
                 all_or_nothing mode; split the file or raise the limit"
            )),
            _ => Ok(()),
        }
    }
}

/// How a file's writes hang together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionMode {
    /// Every valid row is attempted; a row the API refuses becomes a rejected record.
    #[default]
    BestEffort,
    /// Rows are written in batches of `batch_size`; see `stop_on_error`.
    Batched,
    /// All rows or none: on the first failed write the run stops and everything written is
    /// compensated (created records deleted, updated ones restored, deleted ones un-deleted).
    AllOrNothing,
}

/// Deterministic duplicate detection across re-runs (the template's `idempotency`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// Fields that together identify a record in the target resource. In `create` and `append`
    /// mode the writer looks them up (one batched GET per 100 rows) and skips rows whose record
    /// already exists, so re-running a file never duplicates even where the platform ignores
    /// `Idempotency-Key`. Every row must have a value for each of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub natural_key_fields: Vec<String>,
}

impl IdempotencyConfig {
    /// Every problem with this part of a template, without I/O.
    pub fn problems(&self) -> Vec<WriterConfigProblem> {
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for field in &self.natural_key_fields {
            if field.trim().is_empty() {
                problems.push(WriterConfigProblem::EmptyNaturalKeyField);
            } else if !seen.insert(field.as_str()) {
                problems.push(WriterConfigProblem::DuplicateNaturalKeyField(field.clone()));
            }
        }
        problems
    }
}

/// Everything one write run needs: the target, the import mode and its keys, the transaction and
/// idempotency settings, and the sync guard.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    /// The target resource, e.g. `payments` (the template's `target_resource`).
    pub resource: String,
    /// How rows are written. `create`: every row is POSTed (rows whose natural key exists are
    /// skipped when `natural_key_fields` is set). `append`: insert-if-absent by the natural key
    /// (or `upsert_key`); existing records are never touched. `update`: only existing records,
    /// found by `upsert_key`. `upsert`: update by `upsert_key` or create. `sync`: upsert, then
    /// soft-delete the records in `scope_filter` the file no longer contains.
    pub mode: ImportMode,
    /// The field rows are matched on (update, upsert, sync; append when no natural key is set;
    /// and `delete_column`).
    pub upsert_key: Option<String>,
    /// Sync: which existing records the file is compared against (a `where` object).
    pub scope_filter: Map<String, Value>,
    /// A column whose value true/1/yes/delete (any case) soft-deletes the row's record instead of
    /// writing it; the column itself is never written. Needs `upsert_key` (update/upsert/sync).
    pub delete_column: Option<String>,
    /// The template's `transaction`.
    pub transaction: TransactionConfig,
    /// The template's `idempotency`.
    pub idempotency: IdempotencyConfig,
    /// A stable id of this file under this template (see [`run_key`](super::run_key)); part of
    /// every `Idempotency-Key`, so a restart of the same file re-sends the same keys.
    pub run_key: String,
    /// Sync: the largest share (0..=1) of the records in scope a run may delete.
    pub sync_max_delete_share: f64,
    /// Sync: allow deleting more than `sync_max_delete_share` of the scope.
    pub allow_large_sync_delete: bool,
}

impl WriterConfig {
    /// A configuration with the defaults: no keys, best-effort transaction, sync share 0.5.
    pub fn new(resource: impl Into<String>, mode: ImportMode, run_key: impl Into<String>) -> Self {
        WriterConfig {
            resource: resource.into(),
            mode,
            upsert_key: None,
            scope_filter: Map::new(),
            delete_column: None,
            transaction: TransactionConfig::default(),
            idempotency: IdempotencyConfig::default(),
            run_key: run_key.into(),
            sync_max_delete_share: 0.5,
            allow_large_sync_delete: false,
        }
    }

    /// Every problem with this configuration at once, without I/O.
    pub fn validate(&self) -> Result<(), WriterConfigError> {
        let mut problems = Vec::new();
        if self.resource.trim().is_empty() {
            problems.push(WriterConfigProblem::EmptyResource);
        }
        if self.run_key.trim().is_empty() {
            problems.push(WriterConfigProblem::EmptyRunKey);
        }
        let has_upsert_key = self.upsert_key.as_deref().is_some_and(|k| !k.trim().is_empty());
        if self.upsert_key.is_some() && !has_upsert_key {
            problems.push(WriterConfigProblem::EmptyUpsertKey);
        }
        match self.mode {
            ImportMode::Update | ImportMode::Upsert | ImportMode::Sync if !has_upsert_key => {
                problems.push(WriterConfigProblem::UpsertKeyRequired(mode_name(self.mode)));
            }
            ImportMode::Append
                if !has_upsert_key && self.idempotency.natural_key_fields.is_empty() =>
            {
                problems.push(WriterConfigProblem::AppendNeedsIdentity);
            }
            _ => {}
        }
        if let Some(column) = &self.delete_column {
            if column.trim().is_empty() {
                problems.push(WriterConfigProblem::EmptyDeleteColumn);
            } else if matches!(self.mode, ImportMode::Create | ImportMode::Append) {
                problems.push(WriterConfigProblem::DeleteColumnMode(mode_name(self.mode)));
            } else if self.upsert_key.as_deref() == Some(column.as_str()) {
                problems.push(WriterConfigProblem::DeleteColumnIsKey);
            }
        }
        if !(0.0..=1.0).contains(&self.sync_max_delete_share) {
            problems.push(WriterConfigProblem::DeleteShare(self.sync_max_delete_share));
        }
        problems.extend(self.transaction.problems());
        problems.extend(self.idempotency.problems());
        if problems.is_empty() { Ok(()) } else { Err(WriterConfigError { problems }) }
    }
}

/// The template name of an import mode.
pub(crate) fn mode_name(mode: ImportMode) -> &'static str {
    match mode {
        ImportMode::Create => "create",
        ImportMode::Append => "append",
        ImportMode::Update => "update",
        ImportMode::Upsert => "upsert",
        ImportMode::Sync => "sync",
    }
}

/// A writer configuration that cannot run, with every problem found.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("the write configuration cannot run:\n{}", self.problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct WriterConfigError {
    /// Every problem, in no particular order.
    pub problems: Vec<WriterConfigProblem>,
}

/// One problem with a writer configuration, phrased as what to change in the template.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WriterConfigProblem {
    /// `target_resource` is empty.
    #[error("target_resource is empty")]
    EmptyResource,
    /// The run key is empty (an engine bug: it must identify file and template).
    #[error("the run key is empty; idempotency keys would not be stable")]
    EmptyRunKey,
    /// `upsert_key` is set but blank.
    #[error("upsert_key is blank")]
    EmptyUpsertKey,
    /// Update, upsert and sync need `upsert_key`.
    #[error("import_mode '{0}' needs upsert_key: the field that finds a row's existing record")]
    UpsertKeyRequired(&'static str),
    /// Append needs an identity.
    #[error(
        "import_mode 'append' needs idempotency.natural_key_fields or upsert_key to know which \
         rows already exist; use 'create' to add every row"
    )]
    AppendNeedsIdentity,
    /// `delete_column` is blank.
    #[error("delete_column is blank")]
    EmptyDeleteColumn,
    /// `delete_column` with a mode that never deletes.
    #[error("delete_column works with import_mode update, upsert or sync, not '{0}'")]
    DeleteColumnMode(&'static str),
    /// `delete_column` equal to `upsert_key`.
    #[error("delete_column must not be the upsert_key column")]
    DeleteColumnIsKey,
    /// The sync share is outside 0..=1.
    #[error("the sync delete share must be between 0 and 1, got {0}")]
    DeleteShare(f64),
    /// `transaction.batch_size` out of range.
    #[error("transaction.batch_size must be between 1 and {MAX_BATCH_SIZE}, got {0}")]
    BatchSize(usize),
    /// `transaction.max_transaction_rows` is zero.
    #[error("transaction.max_transaction_rows must be at least 1")]
    MaxTransactionRowsZero,
    /// A blank natural key field.
    #[error("idempotency.natural_key_fields has a blank field name")]
    EmptyNaturalKeyField,
    /// A natural key field listed twice.
    #[error("idempotency.natural_key_fields lists '{0}' twice")]
    DuplicateNaturalKeyField(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transaction_config_reads_the_template_shape_with_defaults() {
        let config: TransactionConfig = serde_json::from_value(json!({"mode": "batched"})).unwrap();
        assert_eq!(config.mode, TransactionMode::Batched);
        assert_eq!(config.batch_size, 100);
        assert!(!config.stop_on_error);
        let empty: TransactionConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, TransactionConfig::default());
        assert!(serde_json::from_value::<TransactionConfig>(json!({"mdoe": "batched"})).is_err());
        assert!(serde_json::from_value::<IdempotencyConfig>(json!({"fields": []})).is_err());
    }

    #[test]
    fn upsert_update_and_sync_need_an_upsert_key() {
        for mode in [ImportMode::Update, ImportMode::Upsert, ImportMode::Sync] {
            let error = WriterConfig::new("players", mode, "k").validate().unwrap_err();
            assert!(matches!(error.problems[..], [WriterConfigProblem::UpsertKeyRequired(_)]));
        }
        assert!(WriterConfig::new("players", ImportMode::Create, "k").validate().is_ok());
        let error = WriterConfig::new("players", ImportMode::Append, "k").validate().unwrap_err();
        assert_eq!(error.problems, vec![WriterConfigProblem::AppendNeedsIdentity]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut config = WriterConfig::new("", ImportMode::Create, "");
        config.delete_column = Some("deleted".into());
        config.sync_max_delete_share = 1.5;
        config.transaction.batch_size = 0;
        config.idempotency.natural_key_fields = vec!["a".into(), "a".into()];
        let error = config.validate().unwrap_err();
        assert_eq!(error.problems.len(), 6, "{error}");
    }

    #[test]
    fn all_or_nothing_admits_files_up_to_the_limit() {
        let config = TransactionConfig {
            mode: TransactionMode::AllOrNothing,
            max_transaction_rows: Some(10),
            ..TransactionConfig::default()
        };
        assert!(config.admits(10).is_ok());
        assert!(config.admits(11).is_err());
        assert!(TransactionConfig::default().admits(u64::MAX).is_ok());
    }
}
