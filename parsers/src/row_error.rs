//! What is wrong with one row: the shape every layer reports in, from parsing to validation.
//!
//! A row error is data, not an `Err` that stops a file: it becomes part of a rejected record that
//! an operator reads, corrects and retries. Messages are already rendered in the template's locale.

use serde::Serialize;
use serde_json::Value;

/// The pipeline step that found the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The record could not be read from the file (ragged row, unterminated quote, bad bytes).
    Parse,
    /// A value could not be mapped (a failed type cast).
    Mapping,
    /// Layer 1: the row's JSON Schema.
    Schema,
    /// Layer 2: a row rule (IBAN, personnummer, …).
    RowRules,
    /// Layer 3: a rule across the rows of the file (a duplicate of an earlier row).
    CrossRowRules,
    /// Layer 4: a business rule, a look-up in the target API (a missing club, an inactive
    /// licence, an already registered person).
    BusinessRules,
    /// Layer 5: a validation plugin.
    Plugins,
    /// The target API refused the row when it was written (422 field errors, a missing record
    /// in update mode, a conflict that did not resolve).
    Write,
}

impl Layer {
    /// The name used in reports and in a template's `validation` config.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Parse => "parse",
            Layer::Mapping => "mapping",
            Layer::Schema => "schema",
            Layer::RowRules => "row_rules",
            Layer::CrossRowRules => "cross_row_rules",
            Layer::BusinessRules => "business_rules",
            Layer::Plugins => "plugins",
            Layer::Write => "write",
        }
    }
}

/// One problem with one row: `{layer, field, rule, message, value}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowError {
    /// The step that found it.
    pub layer: Layer,
    /// The target field (or, for parse errors, none: the whole record is at fault).
    pub field: Option<String>,
    /// The rule or check that failed, e.g. `iban`, `cast_decimal`, `required`, `wrong_field_count`.
    pub rule: String,
    /// What is wrong and what to do, in the template's locale.
    pub message: String,
    /// The offending value as it was seen by the failing step, when there is one.
    pub value: Option<Value>,
}
