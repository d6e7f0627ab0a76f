//! `check`: a whole file through the pipeline, counted, with every rejected row handed out.
//!
//! This is what `intake check` prints and what golden tests compare. Nothing is written anywhere.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

use intake_parsers::fixed_width::ControlRecord;
use intake_validators::FileRuleFailure;

use crate::business_rules::BusinessRuleLookups;
use crate::pipeline::{FilePipeline, PipelineError, RowOutcome};
use crate::template::Template;

/// How often (in rows) the progress callback is called.
const PROGRESS_EVERY_ROWS: u64 = 16_384;

/// The summary of a checked file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The file.
    pub file: String,
    /// Records read (valid and rejected; blank lines are not records).
    pub rows_read: u64,
    /// Rows that mapped and validated.
    pub valid: u64,
    /// Rows refused.
    pub rejected: u64,
    /// How many errors each rule produced, keyed `layer.rule` (e.g. `row_rules.iban`).
    pub errors_by_rule: BTreeMap<String, u64>,
    /// Set when the template asserts an empty file (`assert_empty`) and the file has rows.
    pub assert_empty_violated: bool,
    /// Fixed-width files: the header and trailer records (control totals and counts), in file
    /// order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub control_records: Vec<ControlRecord>,
    /// File-level rules that failed (cross-row rules: counts, aggregates, control totals): the
    /// file as a whole is not clean.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_failures: Vec<FileRuleFailure>,
    /// Fixed-width files: lines skipped because their record type is not in `post_types` (only
    /// without `strict_post_types`, which rejects them instead).
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped_lines: u64,
    /// List requests the business rules' look-ups made (each page counts).
    #[serde(skip_serializing_if = "is_zero")]
    pub business_rule_requests: u64,
    /// Set when the template's business rules were skipped on request
    /// (`intake check --skip-business-rules`): rows were not looked up in the target API.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub business_rules_skipped: bool,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl CheckReport {
    /// Whether every row was valid and no assertion failed.
    pub fn is_clean(&self) -> bool {
        self.rejected == 0 && !self.assert_empty_violated && self.file_failures.is_empty()
    }
}

/// Runs `input` through `template`, calling `on_row` with every row's outcome in file order and
/// `on_progress` with the bytes read so far every few thousand rows. (`input` is `Send + Sync`
/// because an OpenPGP message is read by sequoia's decryptor, which requires it.) A template with
/// business rules needs [`check_file_with`].
pub fn check_file<R: Read + Send + Sync>(
    template: &Template,
    source_name: &str,
    input: R,
    on_row: impl FnMut(&RowOutcome<'_>),
    on_progress: impl FnMut(u64),
) -> Result<CheckReport, PipelineError> {
    check_file_with(
        template,
        source_name,
        input,
        &BusinessRuleLookups::Unavailable,
        on_row,
        on_progress,
    )
}

/// Like [`check_file`], with the template's business rules looked up (or skipped) as `lookups`
/// says; with [`BusinessRuleLookups::Api`], call it from a thread that may block.
pub fn check_file_with<R: Read + Send + Sync>(
    template: &Template,
    source_name: &str,
    input: R,
    lookups: &BusinessRuleLookups,
    mut on_row: impl FnMut(&RowOutcome<'_>),
    mut on_progress: impl FnMut(u64),
) -> Result<CheckReport, PipelineError> {
    let mut pipeline = FilePipeline::open_with(template, source_name, input, lookups)?;
    let mut report = CheckReport { file: source_name.to_owned(), ..CheckReport::default() };
    loop {
        let bytes = pipeline.bytes_read();
        let Some(outcome) = pipeline.next_row()? else { break };
        report.rows_read += 1;
        match &outcome {
            RowOutcome::Valid(_) => report.valid += 1,
            RowOutcome::Rejected(rejected) => {
                report.rejected += 1;
                for error in &rejected.errors {
                    let key = format!("{}.{}", error.layer.as_str(), error.rule);
                    *report.errors_by_rule.entry(key).or_default() += 1;
                }
            }
        }
        on_row(&outcome);
        if report.rows_read.is_multiple_of(PROGRESS_EVERY_ROWS) {
            on_progress(bytes);
        }
    }
    on_progress(pipeline.bytes_read());
    report.control_records = pipeline.control_records().to_vec();
    report.file_failures = pipeline.file_failures().to_vec();
    for failure in &report.file_failures {
        let key = format!("{}.{}", failure.layer.as_str(), failure.rule);
        *report.errors_by_rule.entry(key).or_default() += 1;
    }
    report.skipped_lines = pipeline.skipped_lines();
    report.business_rule_requests = pipeline.lookup_requests();
    report.business_rules_skipped = pipeline.business_rules_skipped();
    report.assert_empty_violated = template.assert_empty && report.rows_read > 0;
    Ok(report)
}
