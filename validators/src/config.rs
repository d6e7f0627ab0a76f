//! The template's `validation` object: what each of the five layers checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::business_rules::BusinessRuleConfig;
use crate::cross_row::CrossRowRuleConfig;
use crate::plugin::PluginConfig;
use crate::rules::RowRuleConfig;

/// The five-layer validation of a template, as written in its `validation` object.
///
/// Per row, the layers run in order: 1 (`schema`) and 2 (`row_rules`), then 4
/// (`business_rules`, look-ups in the target API, for rows that passed 1 and 2), then 3
/// (`cross_row_rules`, which keep state across the file) and 5 (`plugins`, for rows that passed
/// everything else). Every error names its layer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Layer 1: a JSON Schema (draft 2020-12) every mapped row must satisfy. The row is checked
    /// as an object whose null fields are left out, so `required` catches empty cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Layer 2: rules checked per field of every row (regex, iban, bic, orgnr, personnr,
    /// date_range, one_of, luhn). A null value passes every rule: presence is the schema's job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_rules: Vec<RowRuleConfig>,
    /// Layer 3: rules across the rows of a file: `unique`, `count`, `aggregate` (sum, min,
    /// max, avg, count compared with a constant or a control total of a header or trailer
    /// record), `control_field`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cross_row_rules: Vec<CrossRowRuleConfig>,
    /// Layer 4: read-only look-ups in the target API for each row that passed layers 1 and 2:
    /// `exists` (a record matching `where` must exist, optionally passing `compare`) and
    /// `not_exists` (none may). Look-ups are batched (`$in`, up to 100 keys per request) and
    /// cached per run; an API failure fails the run and never rejects a row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub business_rules: Vec<BusinessRuleConfig>,
    /// Layer 5: validation plugins, executables from the plugin directory that answer each row
    /// that passed layers 1–3 with its errors (see the README for the JSON-lines protocol).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfig>,
    /// The most errors kept for one row; further errors of that row are not reported.
    #[serde(default = "default_max_errors_per_row")]
    pub max_errors_per_row: usize,
    /// The share of a file's rows (0 to 1) that must be rejected for its run to raise a
    /// `validation_failed` alert: 0 (the default) alerts on any rejected row, 0.05 when at least
    /// 5 % of the rows were rejected, 1 only when every row was.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub alert_rejected_share: f64,
}

fn is_zero(share: &f64) -> bool {
    *share == 0.0
}

fn default_max_errors_per_row() -> usize {
    20
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            schema: None,
            row_rules: Vec::new(),
            cross_row_rules: Vec::new(),
            business_rules: Vec::new(),
            plugins: Vec::new(),
            max_errors_per_row: default_max_errors_per_row(),
            alert_rejected_share: 0.0,
        }
    }
}
