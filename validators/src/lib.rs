//! intake-validators: checks mapped rows and says, in the operator's language, what is wrong.
//!
//! Layers 1, 2, 3 and 5 of the five-layer validation live here: `schema` (a JSON Schema per
//! row), `row_rules` (regex, IBAN, BIC, organisationsnummer, personnummer, date ranges, allowed
//! values, Luhn), `cross_row_rules` (duplicates, counts, aggregates and control totals across a
//! file, see [`cross_row`]) and `plugins` (external executables or built-in plugins such as
//! `compare_fields`, see [`plugin`]). A row's
//! problems are data, collected as [`RowError`]s, never an `Err` that stops a file. Layer 4
//! (`business_rules`) is accepted in a config but refused as "not supported yet".

mod compare_fields;
pub mod config;
pub mod cross_row;
pub mod plugin;
mod row_json;
mod row_validator;
pub mod rules;
pub mod schema;

pub use config::ValidationConfig;
pub use cross_row::{CrossRowValidator, FileRuleFailure};
pub use intake_parsers::{Layer, Locale, RowError};
pub use plugin::{PluginError, RunningPlugin};
pub use row_validator::{RowValidator, ValidationConfigError};
