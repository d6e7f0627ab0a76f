//! `preview`: the first rows of a sample file through a template's parse → map → validate, each
//! with its mapped data or its errors — what an integrator looks at before activating a
//! template. Nothing is written anywhere; the rest of the file is not read.
//!
//! It runs the same [`FilePipeline`] as `intake check` and an import, so a row valid in the
//! preview is valid in an import (the checks that need the whole file — cross-row rules over
//! rows beyond the preview, `assert_empty` — see only the previewed rows).

use std::io::Read;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::pipeline::{FilePipeline, PipelineError, RowOutcome};
use crate::template::Template;
use intake_parsers::RowError;

/// One previewed row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewRow {
    /// The physical line in the file where the record starts.
    pub row_number: u64,
    /// `valid` or `rejected`.
    pub status: PreviewStatus,
    /// The row as mapped (valid rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
    /// The record as it came, column → text (rejected rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_data: Option<Map<String, Value>>,
    /// Every error found: layer, field, rule, message and the offending value.
    pub errors: Vec<RowError>,
}

/// Whether a previewed row passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewStatus {
    /// Mapped and valid: an import would write it.
    Valid,
    /// Refused: an import would keep it as a rejected record.
    Rejected,
}

/// The preview of a sample file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewReport {
    /// The sample file's name.
    pub file: String,
    /// The file's column names.
    pub columns: Vec<String>,
    /// Rows previewed (at most the limit asked for).
    pub rows_previewed: u64,
    /// Of those, valid rows.
    pub valid: u64,
    /// Of those, rejected rows.
    pub rejected: u64,
    /// Whether the file has rows beyond the preview.
    pub truncated: bool,
    /// The rows, in file order.
    pub rows: Vec<PreviewRow>,
}

/// Runs the first `max_rows` rows of `input` through `template`.
pub fn preview_file<R: Read + Send + Sync>(
    template: &Template,
    source_name: &str,
    input: R,
    max_rows: u64,
) -> Result<PreviewReport, PipelineError> {
    let mut pipeline = FilePipeline::open(template, source_name, input)?;
    let mut report = PreviewReport {
        file: source_name.to_owned(),
        columns: pipeline.columns().to_vec(),
        rows_previewed: 0,
        valid: 0,
        rejected: 0,
        truncated: false,
        rows: Vec::new(),
    };
    while let Some(outcome) = pipeline.next_row()? {
        if report.rows_previewed == max_rows {
            report.truncated = true;
            break;
        }
        report.rows_previewed += 1;
        let row = match outcome {
            RowOutcome::Valid(row) => {
                report.valid += 1;
                PreviewRow {
                    row_number: row.row_number(),
                    status: PreviewStatus::Valid,
                    data: Some(row.to_object()),
                    original_data: None,
                    errors: Vec::new(),
                }
            }
            RowOutcome::Rejected(rejected) => {
                report.rejected += 1;
                PreviewRow {
                    row_number: rejected.row_number,
                    status: PreviewStatus::Rejected,
                    data: None,
                    original_data: Some(rejected.original_data.clone()),
                    errors: rejected.errors.clone(),
                }
            }
        };
        report.rows.push(row);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn template() -> Template {
        let value = serde_json::json!({
            "name": "members",
            "file_type": "csv",
            "target_resource": "players",
            "import_mode": "create",
            "field_mapping": [
                {"source": "id", "target": "member_no", "cast": "integer"},
                {"source": "name", "target": "name"}
            ],
            "validation": {"schema": {"type": "object", "required": ["member_no", "name"]}}
        });
        crate::template::load("members", &value.to_string()).unwrap()
    }

    #[test]
    fn previews_the_first_rows_with_their_errors() {
        let file = "id,name\n1,Anna\nx,Björn\n3,Chen\n";
        let report = preview_file(&template(), "sample.csv", file.as_bytes(), 2).unwrap();
        assert_eq!(report.columns, vec!["id", "name"]);
        assert_eq!((report.rows_previewed, report.valid, report.rejected), (2, 1, 1));
        assert!(report.truncated);
        assert_eq!(report.rows[0].status, PreviewStatus::Valid);
        assert_eq!(report.rows[0].data.as_ref().unwrap()["member_no"], 1);
        let bad = &report.rows[1];
        assert_eq!((bad.row_number, bad.status), (3, PreviewStatus::Rejected));
        assert_eq!(bad.errors[0].field.as_deref(), Some("member_no"));
        assert_eq!(bad.original_data.as_ref().unwrap()["id"], "x");
    }

    #[test]
    fn an_excel_template_previews_a_workbook_with_excel_row_numbers() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/excel");
        let text = std::fs::read_to_string(root.join("template.json")).unwrap();
        let template = crate::template::load("template.json", &text).unwrap();
        let bytes = std::fs::read(root.join("members.xlsx")).unwrap();
        let report = preview_file(&template, "members.xlsx", bytes.as_slice(), 3).unwrap();
        assert_eq!(report.columns[0], "member_id");
        assert_eq!((report.rows_previewed, report.valid, report.rejected), (3, 2, 1));
        let numbers: Vec<u64> = report.rows.iter().map(|r| r.row_number).collect();
        assert_eq!(numbers, vec![4, 5, 7]);
        let first = report.rows[0].data.as_ref().unwrap();
        assert_eq!(first["member_id"], 1);
        assert_eq!(first["licence_valid_from"], "2026-01-15");
        assert_eq!(report.rows[2].errors[0].rule, "excel_error_cell");
    }

    #[test]
    fn a_file_shorter_than_the_limit_is_not_truncated() {
        let report = preview_file(&template(), "s.csv", "id,name\n1,A\n".as_bytes(), 20).unwrap();
        assert_eq!((report.rows_previewed, report.truncated), (1, false));
    }
}
