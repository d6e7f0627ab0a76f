//! intake-validators: checks mapped rows and says, in the operator's language, what is wrong.
//!
//! Layers 1 and 2 of the five-layer validation live here: `schema` (a JSON Schema per row) and
//! `row_rules` (regex, IBAN, BIC, organisationsnummer, personnummer, date ranges, allowed values,
//! Luhn). A row's problems are data, collected as [`RowError`]s, never an `Err` that stops a file.

pub mod locale;
pub mod rules;

pub use locale::Locale;
