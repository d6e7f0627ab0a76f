//! One file imported: parse → map → validate on a blocking thread, valid rows written through
//! the [`RowWriter`] as they come, every row's outcome reported.
//!
//! The parse thread and the writer are joined by a bounded channel, so back-pressure flows from
//! the API to the file reader and memory stays bounded whatever the file size. An
//! `all_or_nothing` template reads the file twice: once to validate every row (nothing is
//! written if any row is rejected), once to write.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::business_rules::{BusinessRuleLookups, lookup_scopes};
use crate::check::{CheckReport, check_file_with};
use crate::m2m::ApiClient;
use crate::m2m::writer::{
    FileVerdict, RowWriteOutcome, RowWriter, TransactionMode, ValidRow, WriteReport, WriterConfig,
    WriterConfigError, run_key,
};
use crate::pipeline::{PipelineError, RejectedRow, RowOutcome};
use crate::template::Template;

/// Rows buffered between the parse thread and the writer.
const ROW_CHANNEL_CAPACITY: usize = 1024;

/// Why a file could not be imported at all.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file cannot be read (or its template cannot run on it).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The template's write settings are inconsistent.
    #[error(transparent)]
    Writer(#[from] WriterConfigError),
    /// Reading the file to hash it failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A task of the import ended abnormally (our bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// One row's fate in an import: refused by the pipeline, or handed to the writer.
#[derive(Debug, Clone)]
pub enum ImportRowOutcome {
    /// Parse, mapping or validation refused the row; it was not sent.
    Rejected(RejectedRow),
    /// What the writer did with a valid row.
    Written(RowWriteOutcome),
}

/// The result of an import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Rows read, valid and rejected by the pipeline.
    pub check: CheckReport,
    /// What was written; for an `all_or_nothing` file with rejected rows, nothing was.
    pub write: WriteReport,
    /// Why nothing was written, when the file was refused before writing.
    pub not_written: Option<String>,
    /// SHA-256 of the file's bytes.
    pub content_sha256: String,
}

impl ImportReport {
    /// Whether every row reached the platform and nothing failed.
    pub fn is_clean(&self) -> bool {
        self.check.is_clean()
            && self.not_written.is_none()
            && self.write.rejected == 0
            && self.write.not_attempted == 0
            && self.write.failure.is_none()
    }
}

/// Imports `path` with `template` through `client`, calling `on_row` for every row's outcome
/// (pipeline rejections and write outcomes, in no particular order) and `on_progress` with the
/// bytes read. `cancel` stops the import: rows not written are reported `NotAttempted`.
pub async fn import_file(
    template: Arc<Template>,
    path: &Path,
    client: ApiClient,
    mut on_row: impl FnMut(ImportRowOutcome),
    on_progress: impl FnMut(u64) + Send + 'static,
    cancel: CancellationToken,
) -> Result<ImportReport, ImportError> {
    let path = path.to_path_buf();
    let content_sha256 = hash_file(&path).await?;
    let template_id =
        template.id.as_ref().map(ToString::to_string).unwrap_or_else(|| template.name.clone());
    // Business rules look records up through the same client, from the parse thread.
    let lookups = BusinessRuleLookups::current(client.clone());
    let writer =
        RowWriter::new(client, writer_config(&template, run_key(&template_id, &content_sha256)))?;

    if writer.config().transaction.mode == TransactionMode::AllOrNothing {
        // Validate the whole file first; its rejections are reported as they are found.
        let (reject_tx, mut reject_rx) = mpsc::unbounded_channel::<RejectedRow>();
        let validation = {
            let (template, path, lookups) = (template.clone(), path.clone(), lookups.clone());
            blocking(move || {
                let file = open(&path)?;
                let report = check_file_with(
                    &template,
                    &display(&path),
                    file,
                    &lookups,
                    |outcome| {
                        if let RowOutcome::Rejected(rejected) = outcome {
                            let _ = reject_tx.send((*rejected).clone());
                        }
                    },
                    |_| {},
                )?;
                Ok(report)
            })
        };
        tokio::pin!(validation);
        let mut check = None;
        let mut rejects_open = true;
        while check.is_none() || rejects_open {
            tokio::select! {
                report = &mut validation, if check.is_none() => check = Some(report?),
                rejected = reject_rx.recv(), if rejects_open => match rejected {
                    Some(rejected) => on_row(ImportRowOutcome::Rejected(rejected)),
                    None => rejects_open = false,
                },
            }
        }
        let check = check.ok_or_else(|| {
            ImportError::Internal("validation pass ended without a report".into())
        })?;
        if !check.is_clean() {
            let not_written = if check.file_failures.is_empty() {
                format!(
                    "all_or_nothing: {} of {} rows were rejected, so nothing was written",
                    check.rejected, check.rows_read
                )
            } else {
                let reasons: Vec<&str> =
                    check.file_failures.iter().map(|f| f.message.as_str()).collect();
                format!(
                    "all_or_nothing: the file failed its cross-row rules ({}), so nothing was written",
                    reasons.join("; ")
                )
            };
            return Ok(ImportReport {
                check,
                write: WriteReport::default(),
                not_written: Some(not_written),
                content_sha256,
            });
        }
    }

    let (row_tx, row_rx) = mpsc::channel::<ValidRow>(ROW_CHANNEL_CAPACITY);
    let (verdict_tx, verdict_rx) = oneshot::channel::<FileVerdict>();
    let (outcome_tx, mut outcome_rx) = mpsc::channel::<RowWriteOutcome>(ROW_CHANNEL_CAPACITY);
    let (reject_tx, mut reject_rx) = mpsc::unbounded_channel::<RejectedRow>();

    let parse = {
        let (template, path) = (template.clone(), path.clone());
        tokio::task::spawn_blocking(move || -> Result<CheckReport, ImportError> {
            let file = open(&path)?;
            let report = check_file_with(
                &template,
                &display(&path),
                file,
                &lookups,
                |outcome| match outcome {
                    RowOutcome::Valid(row) => {
                        let row = ValidRow { row_number: row.row_number(), data: row.to_object() };
                        // A closed channel means the writer stopped; it reports the rest.
                        let _ = row_tx.blocking_send(row);
                    }
                    RowOutcome::Rejected(rejected) => {
                        let _ = reject_tx.send((*rejected).clone());
                    }
                },
                on_progress,
            );
            let verdict = match &report {
                Ok(report) => FileVerdict { complete: true, rejected_rows: report.rejected },
                Err(_) => FileVerdict { complete: false, rejected_rows: 0 },
            };
            let _ = verdict_tx.send(verdict);
            Ok(report?)
        })
    };
    let write = writer.run(row_rx, verdict_rx, outcome_tx, cancel);
    tokio::pin!(write);

    let mut write_report = None;
    let (mut outcomes_open, mut rejects_open) = (true, true);
    while write_report.is_none() || outcomes_open || rejects_open {
        tokio::select! {
            report = &mut write, if write_report.is_none() => write_report = Some(report),
            outcome = outcome_rx.recv(), if outcomes_open => match outcome {
                Some(outcome) => on_row(ImportRowOutcome::Written(outcome)),
                None => outcomes_open = false,
            },
            rejected = reject_rx.recv(), if rejects_open => match rejected {
                Some(rejected) => on_row(ImportRowOutcome::Rejected(rejected)),
                None => rejects_open = false,
            },
        }
    }
    let check = parse.await.map_err(|e| ImportError::Internal(e.to_string()))??;
    let write = write_report.unwrap_or_default();
    Ok(ImportReport { check, write, not_written: None, content_sha256 })
}

/// The writer's settings from the template's write fields.
pub fn writer_config(template: &Template, run_key: String) -> WriterConfig {
    let mut config =
        WriterConfig::new(template.target_resource.clone(), template.import_mode, run_key);
    config.upsert_key = template.upsert_key.clone();
    config.scope_filter = template.scope_filter.clone();
    config.delete_column = template.delete_column.clone();
    if let Some(transaction) = &template.transaction {
        config.transaction = transaction.clone();
    }
    if let Some(idempotency) = &template.idempotency {
        config.idempotency = idempotency.clone();
    }
    config
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn open(path: &Path) -> Result<BufReader<File>, ImportError> {
    File::open(path)
        .map(|file| BufReader::with_capacity(1 << 16, file))
        .map_err(|source| ImportError::Io { path: path.to_path_buf(), source })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ImportError> + Send + 'static,
) -> Result<T, ImportError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ImportError::Internal(e.to_string()))?
}

/// SHA-256 of the file, hex; part of the run key, so re-running the same bytes re-sends the
/// same idempotency keys.
async fn hash_file(path: &Path) -> Result<String, ImportError> {
    let path = path.to_path_buf();
    blocking(move || {
        let mut file = open(&path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = file
                .read(&mut buffer)
                .map_err(|source| ImportError::Io { path: path.clone(), source })?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
    })
    .await
}

/// The capabilities a run of `template` needs, as M2M scopes: those of its writes on the target
/// resource ([`required_scopes`]) and `<resource>:list` for each resource its business rules
/// look in.
pub fn template_scopes(template: &Template) -> Vec<String> {
    let mut scopes = required_scopes(&writer_config(template, String::new()));
    for scope in lookup_scopes(template) {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes
}

/// The capabilities a run of `config` needs on its target resource, as M2M scopes.
pub fn required_scopes(config: &WriterConfig) -> Vec<String> {
    use crate::template::ImportMode;
    let mode = config.mode;
    let compensates = config.transaction.mode == TransactionMode::AllOrNothing;
    let looks_up =
        !matches!(mode, ImportMode::Create) || !config.idempotency.natural_key_fields.is_empty();
    let needs = [
        ("list", looks_up || mode == ImportMode::Sync),
        // An all_or_nothing roll-back re-reads and restores what it undoes.
        ("read", !matches!(mode, ImportMode::Create | ImportMode::Append) || compensates),
        ("create", mode != ImportMode::Update),
        (
            "update",
            matches!(mode, ImportMode::Update | ImportMode::Upsert | ImportMode::Sync)
                || compensates,
        ),
        ("delete", mode == ImportMode::Sync || config.delete_column.is_some() || compensates),
    ];
    needs
        .into_iter()
        .filter(|(_, needed)| *needed)
        .map(|(action, _)| format!("{}:{action}", config.resource))
        .collect()
}
