//! intake-validators: checks mapped rows and says, in the operator's language, what is wrong.
//!
//! Layers 1 and 2 of the five-layer validation live here: `schema` (a JSON Schema per row) and
//! `row_rules` (regex, IBAN, BIC, organisationsnummer, personnummer, date ranges, allowed values,
//! Luhn). A row's problems are data, collected as [`RowError`]s, never an `Err` that stops a file.
//! Layers 3–5 are accepted in a config but refused as "not supported yet" when compiled.

pub mod config;
mod row_json;
mod row_validator;
pub mod rules;
pub mod schema;

pub use config::ValidationConfig;
pub use intake_parsers::{Layer, Locale, RowError};
pub use row_validator::{RowValidator, ValidationConfigError};
