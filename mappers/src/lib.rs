//! intake-mappers: the mapper chain, which turns the records of a parsed file into the rows the
//! target API expects.
//!
//! A template's `mapping` is an ordered chain of mappers — `field_mapping`, `jq`, `xslt`,
//! `jinja2`, `plugin` — where the output of one feeds the next; the legacy `field_mapping` list
//! is the same as one `field_mapping` mapper, and a template with neither passes every column
//! through unchanged. `default_values` are applied after the chain and only fill gaps.
//!
//! This crate owns the chain's config types ([`MapperConfig`], [`FieldMappingConfig`],
//! [`FieldSpec`], [`Cast`]), compiles them once per file into a [`MappingChain`] (resolving
//! column names to cell indices and reporting every problem with its JSON path), and runs that
//! chain on each [`intake_parsers::Record`], writing into a reused [`intake_parsers::Row`]. A
//! value that cannot be cast is a [`FieldMappingError`]: data for a rejected record, with
//! messages in Swedish and English, not an error that stops the file.
//!
//! `field_mapping`, `jinja2`, `jq` (evaluated in a worker process, see [`jq`]) and `plugin`
//! (compiled-in or an external command, see [`plugin`]) run; `xslt` is parsed and refused when a
//! chain is built ([`MappingConfigError::NotSupportedYet`]). This crate does not read files (that
//! is intake-parsers) or validate rows (intake-validators).
//!
//! ```
//! use intake_mappers::{MapperConfig, MappingChain};
//! use intake_parsers::Record;
//! use serde_json::json;
//!
//! let mapping: Vec<MapperConfig> = serde_json::from_value(json!([
//!     {"type": "field_mapping", "config": {"fields": [
//!         {"target": "amount", "source": "Belopp", "cast": "decimal", "decimal_comma": true},
//!         {"target": "day", "source": "Datum", "cast": "date", "formats": ["%d.%m.%Y"]}
//!     ]}}
//! ]))?;
//! let defaults = json!({"status": "active"}).as_object().cloned().unwrap_or_default();
//! let columns = ["Datum".to_owned(), "Belopp".to_owned()];
//! let chain = MappingChain::build(&mapping, &[], &defaults, &columns)?;
//!
//! let mut row = chain.new_row();
//! let record = Record::from_cells(2, ["15.02.2026", "12,50"]);
//! assert!(chain.apply(&record, &mut row).is_ok());
//! assert_eq!(
//!     serde_json::Value::Object(row.to_object()),
//!     json!({"amount": 12.5, "day": "2026-02-15", "status": "active"})
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cast;
mod chain;
mod config;
mod dates;
mod error;
mod field_mapping;
mod jinja;
pub mod jq;
mod personnummer;
pub mod plugin;
mod row_object;

pub use chain::{MappingChain, MappingFailure};
pub use config::{Cast, FieldMappingConfig, FieldSpec, Jinja2Config, Jinja2Field, MapperConfig};
pub use error::{
    CastErrorKind, FieldMappingError, MappingConfigError, MappingConfigErrors, UnknownColumn,
};
pub use jq::{JqConfig, PreTransform};
