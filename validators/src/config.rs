//! The template's `validation` object: what each of the five layers checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cross_row::CrossRowRuleConfig;
use crate::plugin::PluginConfig;
use crate::rules::RowRuleConfig;

/// The five-layer validation of a template, as written in its `validation` object.
///
/// Layers 1 (`schema`), 2 (`row_rules`), 3 (`cross_row_rules`) and 5 (`plugins`) run today.
/// Layer 4 (`business_rules`) is accepted in a template so that it can be stored, but a run of a
/// template that uses it fails with "not supported yet" rather than skipping it silently.
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
    /// Layer 4: read-only look-ups in the target API. Not supported yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub business_rules: Vec<Value>,
    /// Layer 5: validation plugins, executables from the plugin directory that answer each row
    /// that passed layers 1–3 with its errors (see the README for the JSON-lines protocol).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfig>,
    /// The most errors kept for one row; further errors of that row are not reported.
    #[serde(default = "default_max_errors_per_row")]
    pub max_errors_per_row: usize,
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
        }
    }
}
