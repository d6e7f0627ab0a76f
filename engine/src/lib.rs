//! intake-engine: import templates and the pipeline that runs a file through them.
//!
//! The engine composes the leaf crates: it owns the [`Template`] (whose parts are the components'
//! own config types), checks templates on load, and runs a file through parse → map → validate
//! ([`FilePipeline`], [`check_file`]); as an M2M client of the platform ([`m2m`]) it writes the
//! valid rows ([`import::import_file`]). It does not parse formats, map or validate by itself.

pub mod alerting;
pub mod business_rules;
pub mod check;
pub mod events;
pub mod import;
pub mod jobs;
pub mod m2m;
pub mod matcher;
pub mod metrics;
pub mod pipeline;
pub mod preflight;
pub mod preview;
pub mod runner;
pub mod service;
mod sqlite_migrations;
pub mod store;
pub mod template;

pub use business_rules::BusinessRuleLookups;
pub use check::{CheckReport, check_file, check_file_with};
pub use intake_parsers::RowError;
pub use intake_parsers::fixed_width::ControlRecord;
pub use pipeline::{FilePipeline, PipelineError, RejectedRow, RowOutcome};
pub use template::{Template, TemplateError, TemplateProblem, load, template_schema};
