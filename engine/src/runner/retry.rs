//! Retrying rejected records an operator corrected: the body of the "retry rejected records" job.
//!
//! [`retry_rejected_records`] takes each record whose status is `corrected` and runs its
//! `corrected_data` through the same steps an import runs a row through:
//!
//! 1. **Source row.** `corrected_data` is the row as it came, corrected — column → text, like
//!    `original_data` (a number or boolean the operator typed is taken as its text, `null` as an
//!    empty cell). It becomes a [`Record`] with the file's row number, its keys are the columns.
//! 2. **Map and validate** with the record's template ([`RowProcessor`], the compiled mapping and
//!    validation [`FilePipeline`](crate::pipeline::FilePipeline) runs on every row of a file),
//!    then its business rules (looked up in the platform through the job's client; a look-up
//!    the platform does not answer leaves the record `corrected`, reported as not written) and
//!    its plugins. A template that cannot run on these columns (a column the mapping needs is
//!    missing) is a row error too: the correction has to supply it.
//! 3. **Write** the valid row through a [`RowWriter`] with the template's write settings. Its run
//!    key is derived from the record's id and its revision (which changes with every correction),
//!    so trying the same correction again — a re-delivered job, a crash between the write and the
//!    status change — re-sends the same `Idempotency-Key` and writes nothing twice. The row's key
//!    (`<run key>:<row number>`) is recorded with `record_written_keys` once written, and a key
//!    found there is not written again. No [`FileVerdict`](crate::m2m::writer::FileVerdict) is
//!    sent, so a `sync` template never deletes anything for a single retried row.
//! 4. **Status**, with a history row, guarded by the revision read in step 1: written →
//!    `retried`; refused by validation or by the API (422) → back to `pending` with the fresh
//!    errors as `validation_errors` (the correction is kept). A record changed meanwhile is left
//!    to its new state.
//!
//! The record's template is looked up among the templates given, then among the tenant's
//! templates in the state store (those created through the REST layer).
//!
//! A record that is not `corrected` (no `corrected_data`, already retried, discarded) or whose
//! template is not available is refused with the reason and left unchanged. A row the writer
//! could not attempt (the platform failed, the retry was cancelled) is not the data's fault: the
//! record stays `corrected` and the report says why, so the job can try again.

use intake_parsers::{Layer, Record, RowError};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::stored::{StoredTemplateError, stored_template};
use super::tally::{errors_json, row_key};
use super::template_key;
use crate::business_rules::find_records;
use crate::import::writer_config;
use crate::m2m::ApiClient;
use crate::m2m::writer::{RowWriteOutcome, RowWriter, ValidRow, run_key};
use crate::pipeline::RowProcessor;
use crate::store::{RejectedRecord, RejectedStatus, Store, StoreError};
use crate::template::Template;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RetryOutcome {
    /// Written; the record is `retried`.
    Retried {
        /// What the writer did (`created`, `updated`, `deleted`, `unchanged`), or
        /// `already_written` when an earlier attempt of this correction had written it.
        effect: String,
        /// The platform record, when there is one.
        id: Option<String>,
    },
    /// The correction was refused again (mapping, validation or the API); the record is back to
    /// `pending` with these errors.
    StillPending {
        /// The fresh errors.
        errors: Vec<RowError>,
    },
    /// Not retried, and not changed: not `corrected`, its template is not available, or it
    /// changed during the retry.
    Refused {
        /// Why.
        reason: String,
    },
    /// The row could not be written through no fault of its own (the platform failed, the retry
    /// was cancelled); the record stays `corrected` and can be retried.
    NotWritten {
        /// Why.
        reason: String,
    },
}

/// One record's retry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordRetry {
    /// The rejected record.
    pub record_id: String,
    /// What became of it.
    #[serde(flatten)]
    pub outcome: RetryOutcome,
}

/// What a retry did, record by record in the order asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetryReport {
    /// One entry per record id asked for.
    pub records: Vec<RecordRetry>,
}

impl RetryReport {
    /// The outcome for `record_id`, if it was asked for.
    pub fn outcome(&self, record_id: &str) -> Option<&RetryOutcome> {
        self.records.iter().find(|r| r.record_id == record_id).map(|r| &r.outcome)
    }

    /// Records now `retried`.
    pub fn retried(&self) -> usize {
        self.count(|o| matches!(o, RetryOutcome::Retried { .. }))
    }

    /// Records back to `pending` with fresh errors.
    pub fn still_pending(&self) -> usize {
        self.count(|o| matches!(o, RetryOutcome::StillPending { .. }))
    }

    /// Records refused and left unchanged.
    pub fn refused(&self) -> usize {
        self.count(|o| matches!(o, RetryOutcome::Refused { .. }))
    }

    /// Records left `corrected` because they could not be written; worth another attempt.
    pub fn not_written(&self) -> usize {
        self.count(|o| matches!(o, RetryOutcome::NotWritten { .. }))
    }

    /// The report as one JSON object: the counts and every record's outcome.
    pub fn to_json(&self) -> Value {
        json!({
            "retried": self.retried(),
            "still_pending": self.still_pending(),
            "refused": self.refused(),
            "not_written": self.not_written(),
            "records": self.records,
        })
    }

    fn count(&self, wanted: impl Fn(&RetryOutcome) -> bool) -> usize {
        self.records.iter().filter(|r| wanted(&r.outcome)).count()
    }
}

/// Everything one retry needs.
#[derive(Debug)]
pub struct RecordsRetry<'a> {
    /// The state store.
    pub store: &'a Store,
    /// The tenant owning the records.
    pub tenant: &'a str,
    /// The records to retry.
    pub record_ids: &'a [String],
    /// The templates the records may refer to (found by their store id, as
    /// [`template_key`] gives it). A record whose template is not among them is retried with
    /// the tenant's template of that id in the store, when there is one.
    pub templates: &'a [Template],
    /// The platform client rows are written through.
    pub client: ApiClient,
    /// Stops the retry: records not yet written are [`RetryOutcome::NotWritten`].
    pub cancel: CancellationToken,
}

/// Retries each record of `job`; see the module documentation. Only a store failure is an `Err`
/// (what was done before it is durable; running the same retry again is safe).
pub async fn retry_rejected_records(job: RecordsRetry<'_>) -> Result<RetryReport, StoreError> {
    let mut report = RetryReport::default();
    for id in job.record_ids {
        let outcome = retry_one(&job, id).await?;
        match &outcome {
            RetryOutcome::Refused { reason } | RetryOutcome::NotWritten { reason } => {
                tracing::info!(record = %id, reason = %reason, "rejected record not retried");
            }
            RetryOutcome::StillPending { errors } => {
                tracing::info!(record = %id, errors = errors.len(), "corrected record still invalid");
            }
            RetryOutcome::Retried { effect, .. } => {
                tracing::info!(record = %id, effect = %effect, "corrected record retried");
            }
        }
        report.records.push(RecordRetry { record_id: id.clone(), outcome });
    }
    Ok(report)
}

fn refused(reason: impl Into<String>) -> RetryOutcome {
    RetryOutcome::Refused { reason: reason.into() }
}

async fn retry_one(job: &RecordsRetry<'_>, id: &str) -> Result<RetryOutcome, StoreError> {
    let record = match job.store.get_rejected_record(job.tenant, id).await {
        Ok(record) => record,
        Err(StoreError::NotFound { .. }) => {
            return Ok(refused(format!("rejected record {id} not found")));
        }
        Err(e) => return Err(e),
    };
    let status = record.body.status;
    let Some(corrected) = record.body.corrected_data.as_ref() else {
        return Ok(refused(format!(
            "rejected record {id} has no corrected_data (status {}): correct it before retrying",
            status.as_str()
        )));
    };
    if status != RejectedStatus::Corrected {
        return Ok(refused(format!(
            "rejected record {id} is {}, not corrected: only a corrected record is retried",
            status.as_str()
        )));
    }
    let Some(cells) = corrected.as_object() else {
        return Ok(refused(format!(
            "the corrected_data of rejected record {id} is not an object of column → text"
        )));
    };
    let template_id = &record.body.template_id;
    let loaded;
    let template = match job.templates.iter().find(|t| &template_key(t) == template_id) {
        Some(template) => template,
        // Not one of the given templates: the tenant's stored template of that id, if any.
        None => match stored_template(job.store, job.tenant, template_id).await {
            Ok(template) => {
                loaded = template;
                &loaded
            }
            Err(StoredTemplateError::Store(StoreError::NotFound { .. })) => {
                return Ok(refused(format!(
                    "template {template_id} of rejected record {id} is not available"
                )));
            }
            Err(StoredTemplateError::Store(e)) => return Err(e),
            Err(e @ StoredTemplateError::Invalid { .. }) => {
                return Ok(refused(format!("rejected record {id} cannot be retried: {e}")));
            }
        },
    };
    if job.cancel.is_cancelled() {
        return Ok(RetryOutcome::NotWritten { reason: "the retry was cancelled".into() });
    }

    let row_number = record.body.row_number;
    let row = match map_and_validate(template, row_number, cells, &job.client).await {
        Checked::Valid(row) => row,
        Checked::Invalid(errors) => return back_to_pending(job, &record, errors).await,
        // Not the data's fault: the record stays corrected, to be retried later.
        Checked::LookupFailed(reason) => return Ok(RetryOutcome::NotWritten { reason }),
    };

    let key =
        run_key(template_id, &format!("rejected-record {id} revision {}", record.meta.revision_id));
    let written_key = row_key(&key, row_number);
    let known = job.store.written_keys(job.tenant, template_id, std::slice::from_ref(&written_key));
    if known.await?.contains(&written_key) {
        let outcome = RetryOutcome::Retried { effect: "already_written".into(), id: None };
        return mark_retried(job, &record, outcome).await;
    }
    let outcome = match write(job, template, key, row_number, row).await {
        Ok(outcome) => outcome,
        Err(reason) => return Ok(RetryOutcome::NotWritten { reason }),
    };
    let (effect, platform_id) = match outcome {
        RowWriteOutcome::Created { id, .. } => ("created", Some(id)),
        RowWriteOutcome::Updated { id, .. } => ("updated", Some(id)),
        RowWriteOutcome::Deleted { id, .. } => ("deleted", Some(id)),
        RowWriteOutcome::Unchanged { id, .. } => ("unchanged", id),
        RowWriteOutcome::Rejected { errors, .. } => {
            return back_to_pending(job, &record, errors).await;
        }
        RowWriteOutcome::NotAttempted { reason, .. } => {
            return Ok(RetryOutcome::NotWritten { reason });
        }
    };
    job.store
        .record_written_keys(
            job.tenant,
            template_id,
            Some(&record.body.import_run_id),
            std::slice::from_ref(&written_key),
        )
        .await?;
    let outcome = RetryOutcome::Retried { effect: effect.to_owned(), id: platform_id };
    mark_retried(job, &record, outcome).await
}

/// What validation made of a corrected row.
enum Checked {
    /// Valid: the mapped row to write.
    Valid(Map<String, Value>),
    /// Refused, with every error.
    Invalid(Vec<RowError>),
    /// A business rule's look-up in the target API failed; nothing is known about the row.
    LookupFailed(String),
}

/// The corrected row through the template's mapping and validation: layers 1 and 2, then the
/// business rules (looked up through `client`), then the plugins.
async fn map_and_validate(
    template: &Template,
    row_number: u64,
    cells: &Map<String, Value>,
    client: &ApiClient,
) -> Checked {
    match map_and_check(template, row_number, cells) {
        Ok((processor, row)) => {
            match business_rule_errors(template, &processor, &row, client).await {
                Ok(errors) if errors.is_empty() => {}
                Ok(errors) => return Checked::Invalid(errors),
                Err(reason) => return Checked::LookupFailed(reason),
            }
            let plugin_dir = intake_validators::plugin::plugin_dir();
            match plugin_errors(template, &row, processor.locale(), &plugin_dir) {
                Ok(()) => Checked::Valid(row.to_object()),
                Err(errors) => Checked::Invalid(errors),
            }
        }
        Err(errors) => Checked::Invalid(errors),
    }
}

/// Validation layer 4 for one corrected row: its look-ups (no cache: one row), its errors.
async fn business_rule_errors(
    template: &Template,
    processor: &RowProcessor,
    row: &intake_parsers::Row,
    client: &ApiClient,
) -> Result<Vec<RowError>, String> {
    if template.validation.business_rules.is_empty() {
        return Ok(Vec::new());
    }
    let mut rules = processor.business_rules(template).map_err(|problems| {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        format!("the template's business rules cannot run: {}", problems.join("; "))
    })?;
    rules.register(row);
    for request in rules.take_requests() {
        let (records, _) = find_records(client, &request)
            .await
            .map_err(|e| request.failed(e.to_string()).to_string())?;
        rules.complete(&request, &records);
    }
    let mut errors = Vec::new();
    rules.check(row, &mut errors).map_err(|e| e.to_string())?;
    Ok(errors)
}

/// Mapping and layers 1 and 2 of the corrected row: the processor and the row.
fn map_and_check(
    template: &Template,
    row_number: u64,
    cells: &Map<String, Value>,
) -> Result<(RowProcessor, intake_parsers::Row), Vec<RowError>> {
    let columns: Vec<String> = cells.keys().cloned().collect();
    let record = Record::from_cells(row_number, cells.values().map(cell_text));
    let processor = RowProcessor::from_template(template, &columns).map_err(|problems| {
        problems
            .into_iter()
            .map(|problem| RowError {
                layer: Layer::Mapping,
                field: None,
                rule: "template_columns".to_owned(),
                message: format!(
                    "the template cannot map the corrected row ({problem}); the correction must \
                     hold every column the file had"
                ),
                value: None,
            })
            .collect::<Vec<_>>()
    })?;
    let row = processor.process(&record)?;
    Ok((processor, row))
}

/// Validation layer 5 for one corrected row: each plugin is started, asked and stopped. A plugin
/// that fails leaves the record rejected, saying why, so that it can be retried later.
fn plugin_errors(
    template: &Template,
    row: &intake_parsers::Row,
    locale: intake_parsers::Locale,
    dir: &std::path::Path,
) -> Result<(), Vec<RowError>> {
    let mut errors = Vec::new();
    for config in &template.validation.plugins {
        let checked =
            intake_validators::RunningPlugin::start(config, dir, locale).and_then(|mut plugin| {
                plugin.check(row, &mut errors)?;
                plugin.finish()
            });
        if let Err(error) = checked {
            errors.push(RowError {
                layer: Layer::Plugins,
                field: None,
                rule: "plugin_failed".to_owned(),
                message: format!("the row could not be checked: {error}; retry it later"),
                value: None,
            });
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// A corrected cell as the text a file would have held.
fn cell_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Writes one valid row with the template's write settings; its outcome, or why the writer
/// gave none.
async fn write(
    job: &RecordsRetry<'_>,
    template: &Template,
    run_key: String,
    row_number: u64,
    data: Map<String, Value>,
) -> Result<RowWriteOutcome, String> {
    let writer = RowWriter::new(job.client.clone(), writer_config(template, run_key))
        .map_err(|e| e.to_string())?;
    let (row_tx, row_rx) = mpsc::channel(1);
    let (outcome_tx, mut outcome_rx) = mpsc::channel(1);
    // No verdict: a single row is never a complete file, so sync deletes nothing.
    let (verdict_tx, verdict_rx) = oneshot::channel();
    drop(verdict_tx);
    row_tx.send(ValidRow { row_number, data }).await.map_err(|e| e.to_string())?;
    drop(row_tx);
    let report = writer.run(row_rx, verdict_rx, outcome_tx, job.cancel.child_token()).await;
    match outcome_rx.recv().await {
        Some(outcome) => Ok(outcome),
        None => Err(report.failure.unwrap_or_else(|| "the writer reported no outcome".into())),
    }
}

async fn mark_retried(
    job: &RecordsRetry<'_>,
    record: &RejectedRecord,
    outcome: RetryOutcome,
) -> Result<RetryOutcome, StoreError> {
    let note = match &outcome {
        RetryOutcome::Retried { effect, id: Some(id) } => format!("retried: {effect} {id}"),
        RetryOutcome::Retried { effect, id: None } => format!("retried: {effect}"),
        _ => "retried".to_owned(),
    };
    let changed = change_status(job, record, RejectedStatus::Retried, None, &note).await?;
    Ok(changed.unwrap_or(outcome))
}

async fn back_to_pending(
    job: &RecordsRetry<'_>,
    record: &RejectedRecord,
    errors: Vec<RowError>,
) -> Result<RetryOutcome, StoreError> {
    let note = format!("retry refused again: {} error(s)", errors.len());
    let fresh = errors_json(&errors);
    let changed = change_status(job, record, RejectedStatus::Pending, Some(fresh), &note).await?;
    Ok(changed.unwrap_or(RetryOutcome::StillPending { errors }))
}

/// Moves the record as read, with a history row; `Some(refusal)` when it changed meanwhile.
async fn change_status(
    job: &RecordsRetry<'_>,
    record: &RejectedRecord,
    to: RejectedStatus,
    errors: Option<Value>,
    note: &str,
) -> Result<Option<RetryOutcome>, StoreError> {
    let id = &record.meta.id;
    let revision = Some(record.meta.revision_id.as_str());
    match job.store.set_rejected_status(job.tenant, id, revision, to, errors, Some(note)).await {
        Ok(_) => Ok(None),
        Err(e @ (StoreError::Conflict { .. } | StoreError::IllegalTransition { .. })) => {
            Ok(Some(refused(format!("rejected record {id} changed during the retry: {e}"))))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::pipeline::RowProcessor;

    fn template(plugin: &str) -> Template {
        let value = json!({
            "name": "members", "file_type": "csv", "target_resource": "players", "locale": "en",
            "validation": {"plugins": [{"type": "command", "name": plugin}]}
        });
        crate::load("members", &value.to_string()).expect("template")
    }

    fn row(template: &Template, licence: &str, born: &str) -> intake_parsers::Row {
        let columns: Vec<String> =
            ["licence_type", "personal_identity_number", "licence_valid_from"]
                .map(str::to_owned)
                .to_vec();
        let processor = RowProcessor::from_template(template, &columns).expect("processor");
        let record = Record::from_cells(4, [licence, born, "2026-02-10"]);
        processor.process(&record).expect("row")
    }

    #[test]
    fn a_corrected_row_is_checked_by_the_templates_plugins_too() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/plugins");
        let template = template("licence_age");
        let locale = intake_parsers::Locale::En;
        let young = row(&template, "junior", "200802291235");
        assert_eq!(plugin_errors(&template, &young, locale, &dir), Ok(()));
        let old = row(&template, "junior", "200002291235");
        let errors = plugin_errors(&template, &old, locale, &dir).expect_err("too old");
        assert_eq!((errors[0].layer, errors[0].rule.as_str()), (Layer::Plugins, "licence_age"));
    }

    #[test]
    fn a_plugin_that_cannot_run_leaves_the_record_rejected_saying_why() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/plugins");
        let template = template("not_installed");
        let any = row(&template, "junior", "200802291235");
        let errors = plugin_errors(&template, &any, intake_parsers::Locale::En, &dir)
            .expect_err("cannot run");
        assert_eq!(errors[0].rule, "plugin_failed");
        assert!(errors[0].message.contains("could not be started"), "{}", errors[0].message);
    }
}
