//! The import template: how one kind of file is read, mapped, validated and written.
//!
//! [`Template`] has every field of the platform's `/imports/templates` resource, with the same
//! names and defaults. Each component owns the type of its own part (`validation` is the
//! validators crate's [`ValidationConfig`], `mapping` the mappers crate's [`MapperConfig`]); the
//! template only composes them. Loading a template checks it completely and reports every problem
//! with its JSON path ([`load`]); settings a later release implements parse and are stored, but
//! asking to run them is a "not supported yet" error ([`Template::unsupported`]).

mod load;
mod object_id;

use intake_mappers::{FieldSpec, MapperConfig};

use crate::m2m::writer::{IdempotencyConfig, TransactionConfig};
use std::collections::BTreeMap;

use intake_parsers::fixed_width::{PostRole, Trim};
use intake_parsers::preflight::{Decompression, PreflightOptions};
use intake_validators::ValidationConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use load::{TemplateError, TemplateProblem, load, template_schema};
pub use object_id::ObjectId;

/// An import template, as stored at `/imports/templates` and as written in a template file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ImportTemplate")]
pub struct Template {
    /// The template's id (24 hex digits), set by the platform.
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// The revision the stored template is at (its ETag), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_id: Option<String>,
    /// When the template was created (RFC 3339), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When the template was last changed (RFC 3339), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The owning tenant; read-only, set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<ObjectId>,
    /// Soft-deleted templates are kept but never used.
    #[serde(default)]
    pub is_deleted: bool,
    /// When the template was soft-deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Whether personal data in the template has been removed.
    #[serde(default)]
    pub is_depersonalized: bool,
    /// When personal data was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depersonalized_at: Option<String>,
    /// An id of the template in the integrator's own system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Tags (ids of tag resources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<ObjectId>,

    /// Template name, e.g. 'Bank payments CSV'.
    pub name: String,
    /// Human-readable description of this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The import source this template belongs to (1 source → N templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<ObjectId>,
    /// Criteria for matching incoming files to this template, on the path relative to the source
    /// root: a glob (`payments_*.csv` matches the file name in any folder, `bank/**/*.csv` the
    /// path), or `re:` and an anchored regular expression. Absent: every file. Highest
    /// `priority` wins among matching templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_matcher: Option<String>,
    /// Match priority: higher wins when several templates match the same file.
    #[serde(default)]
    pub priority: i64,
    /// Inactive templates are skipped by the matcher.
    #[serde(default = "yes")]
    pub is_active: bool,

    /// Source file type.
    pub file_type: FileType,
    /// Parser format key; supersedes `file_type` for the streaming parser layer. When absent it
    /// follows `file_type` (csv → csv, json → json, xml → xml, fixed_width → flat_file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "csv"))]
    pub format: Option<Format>,
    /// Format-specific parser options. A value given both here and at the top level
    /// (`delimiter`, `has_header`) must agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser_config: Option<ParserConfig>,
    /// Column delimiter for CSV files: one ASCII character (`\t` for tab).
    #[serde(default = "comma")]
    pub delimiter: String,
    /// File encoding: utf-8, utf-16 (with BOM), utf-16le, utf-16be, windows-1252 or iso-8859-1.
    /// A byte-order mark in the file always wins.
    #[serde(default = "utf8")]
    pub encoding: String,
    /// Whether the file has a header row.
    #[serde(default = "yes")]
    pub has_header: bool,
    /// Number of physical lines to skip at the beginning, before the header.
    #[serde(default)]
    pub skip_rows: u64,
    /// Sheet name for Excel files (default: the first sheet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet_name: Option<String>,
    /// Column widths for fixed-width files whose lines all have one layout, in order from the
    /// first character: a number is a column named `column_<position>`, `{"name": "amount",
    /// "width": 12}` a named column, `{"width": 2}` filler that is not read. Files with record
    /// types use `parser_config.post_types` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_widths: Vec<ColumnWidth>,
    /// Field mappings from source to target (legacy form of one `field_mapping` mapper).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_mapping: Vec<FieldSpec>,
    /// Ordered mapper chain; the output of one feeds the next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mapping: Vec<MapperConfig>,
    /// Target API resource, e.g. 'payments', 'players'.
    pub target_resource: String,
    /// How rows are written to the target resource.
    #[serde(default)]
    pub import_mode: ImportMode,
    /// Field to match on in upsert, update and sync mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert_key: Option<String>,
    /// Values that fill a field after mapping when the field is missing or null; they never
    /// overwrite a value from the file.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub default_values: Map<String, Value>,
    /// Sync mode: which existing records to compare against, e.g. {"category_id": "abc"}.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub scope_filter: Map<String, Value>,
    /// Column whose values 'true'/'1'/'yes'/'delete' mark a row for (soft) deletion in upsert mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_column: Option<String>,
    /// Run the import automatically after validation (for SFTP flows).
    #[serde(default)]
    pub auto_execute: bool,
    /// Whether this template is visible in the portal for property owners.
    #[serde(default)]
    pub is_portal_visible: bool,
    /// Simplified name shown in the portal, e.g. 'Import products'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_label: Option<String>,
    /// Short description for portal users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_description: Option<String>,
    /// Columns that must be present in the source file; a file without them is refused whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_columns: Vec<String>,
    /// The five-layer validation.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// Locale of validation messages: 'sv' or 'en' (any other language gets English).
    #[serde(default = "sv")]
    pub locale: String,
    /// Pre-flight: how the delivered bytes become plaintext before parsing (OpenPGP decryption
    /// and signature verification, then decompression of gzip and zip, with bomb limits). Absent
    /// means no OpenPGP and automatic decompression with the default limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto: Option<CryptoConfig>,
    /// A jq expression applied to each raw record (an object of column → text) before the
    /// mapping chain; its answer's keys must be columns of the file. The platform's field holds
    /// a Python expression: intake takes jq instead (see the README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_transform: Option<String>,
    /// Set when the template is owned by a parent tenant and shared read-only to sub-tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_from_tenant_id: Option<ObjectId>,
    /// What happens with the source file after a run.
    #[serde(default)]
    pub post_process_policy: PostProcessPolicy,
    /// Folder (relative to the source) where successful files are moved; needs policy 'move'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_folder: Option<String>,
    /// Folder where files are moved on total failure; needs policy 'move'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_folder: Option<String>,
    /// Relative folders the source skips entirely when polling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_folders: Vec<String>,
    /// File extensions that mark an upload in progress; the runner waits for the rename.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temp_file_extensions: Vec<String>,
    /// If true, the file is expected to hold no rows; rows in it are reported as a warning.
    #[serde(default)]
    pub assert_empty: bool,
    /// Transactional execution of the writes: mode (best_effort, batched, all_or_nothing),
    /// batch_size, max_transaction_rows, stop_on_error. Absent: best effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionConfig>,
    /// Idempotency: natural_key_fields for per-row duplicate detection across re-runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyConfig>,
    /// Retention policy; when absent the tenant default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy_id: Option<ObjectId>,
    /// Retention category: decides the default retention period when no policy is set.
    #[serde(default = "financial")]
    pub retention_category: String,
    /// When files go to the job queue instead of being processed inline: inline_max_size_mb,
    /// inline_max_estimated_rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offload_policy: Option<Map<String, Value>>,
    /// Expected delivery schedule (cron and tolerance window) for the SLA monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_expectation: Option<Value>,
}

/// The kind of file a template reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    /// Delimited text.
    Csv,
    /// xlsx, xlsm, xls or ods workbooks.
    Excel,
    /// JSON documents or JSON Lines.
    Json,
    /// XML documents.
    Xml,
    /// Fixed-width text records.
    FixedWidth,
}

/// The parser a template uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The streaming CSV parser.
    Csv,
    /// The streaming JSON parser.
    Json,
    /// The streaming XML parser.
    Xml,
    /// The fixed-width parser with record types.
    FlatFile,
}

/// How rows are written to the target resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Every row creates a record.
    #[default]
    Create,
    /// Rows are added to what exists, nothing is changed.
    Append,
    /// Rows update existing records found by `upsert_key`.
    Update,
    /// Rows update by `upsert_key` or create when absent.
    Upsert,
    /// Like upsert, and records in `scope_filter` missing from the file are deleted.
    Sync,
}

/// What happens to the source file after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostProcessPolicy {
    /// Leave the file in place; the run records its name.
    #[default]
    Keep,
    /// Move it to `completed_folder` on success, `error_folder` on failure.
    Move,
}

/// The template's `crypto` pre-flight: what turns the delivered bytes of a file into the
/// plaintext the parser reads. OpenPGP comes first (decrypt, verify), then decompression, so a
/// `.csv.gz.pgp` file is decrypted, then gunzipped, then parsed. Both are bounded, so a
/// compression bomb fails fast instead of filling memory or disk.
///
/// Example: `{"decompression": "auto", "zip_entry": "payments.csv",
/// "max_decompressed_bytes": 10737418240, "max_compression_ratio": 200,
/// "decrypt": {"secret_key": "acme-pgp-key", "passphrase": "acme-pgp-passphrase"},
/// "verify": {"signers": ["bank-signing-cert"]}, "signature_required": true}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CryptoConfig {
    /// `auto` (default: gzip or zip detected by magic bytes, the `.gz`/`.zip` extension as a
    /// hint), `gzip` (all members), `zip` (one entry), or `none` (never decompress).
    #[serde(default)]
    pub decompression: Decompression,
    /// Zip: the name of the entry to read, as listed in the archive. Needed when the archive
    /// holds more than one file; without it the only file entry is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_entry: Option<String>,
    /// Reading stops with an error once more decompressed bytes than this have come out;
    /// default 10737418240 (10 GiB). The same limit applies to the plaintext of an OpenPGP
    /// message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_decompressed_bytes: Option<u64>,
    /// Reading stops with an error once the decompressed bytes exceed this many times the
    /// compressed bytes read (checked after the first MiB of output); default 200. The same
    /// limit applies to the plaintext of an OpenPGP message against the message's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_compression_ratio: Option<u64>,
    /// OpenPGP: decrypt every file with this secret key. With `decrypt` or `verify` set, every
    /// file must be an OpenPGP message (encrypted, signed, or both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decrypt: Option<PgpDecryptConfig>,
    /// OpenPGP: check the message's signatures against these signers' certificates. A
    /// signature that does not verify always refuses the file; one by a key that is not listed
    /// is refused only with `signature_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<PgpVerifyConfig>,
    /// OpenPGP: refuse a file unless it carries a good signature by one of `verify.signers`
    /// (which must then be set). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signature_required: bool,
}

/// `crypto.decrypt`: the key files are encrypted to. Secrets are named by credential reference
/// only (`env:NAME`, `file:/path`, or a bare name: the environment variable
/// `INTAKE_CREDENTIAL_<NAME>`, else the file `<INTAKE_CREDENTIALS_DIR>/<name>`), resolved when a
/// file is opened; a template never holds key material.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgpDecryptConfig {
    /// Credential reference to the ASCII-armored OpenPGP secret key (`gpg --armor
    /// --export-secret-keys`) that decrypts the files.
    pub secret_key: String,
    /// Credential reference to the passphrase protecting the secret key, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
}

/// `crypto.verify`: who may sign the files, by credential reference (see `crypto.decrypt`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgpVerifyConfig {
    /// Credential references to the ASCII-armored OpenPGP certificates (public keys, `gpg
    /// --armor --export`) of the parties allowed to sign; at least one.
    pub signers: Vec<String>,
}

impl CryptoConfig {
    /// The pre-flight options for the parsers, with the defaults filled in.
    pub fn preflight_options(&self) -> PreflightOptions {
        let defaults = PreflightOptions::default();
        PreflightOptions {
            decompression: self.decompression,
            zip_entry: self.zip_entry.clone(),
            max_decompressed_bytes: self
                .max_decompressed_bytes
                .unwrap_or(defaults.max_decompressed_bytes),
            max_compression_ratio: self
                .max_compression_ratio
                .unwrap_or(defaults.max_compression_ratio),
        }
    }

    /// Whether files are OpenPGP messages to open before decompression (`decrypt` or `verify`
    /// is set).
    pub fn uses_pgp(&self) -> bool {
        self.decrypt.is_some() || self.verify.is_some()
    }
}

/// Format-specific parser options (`parser_config`); each applies to one format only.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParserConfig {
    /// CSV: column delimiter, one ASCII character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// CSV: quote character, one ASCII character; an empty string turns quoting off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_char: Option<String>,
    /// CSV: whether the file has a header row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_header: Option<bool>,
    /// CSV: the most physical lines one record may span (quoted newlines); default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_record_lines: Option<usize>,
    /// CSV: the most bytes one record may take; default 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_record_bytes: Option<usize>,
    /// JSON: path to the array of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_path: Option<String>,
    /// JSON: 'array' or 'lines' (JSON Lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// XML: the element that holds one record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_tag: Option<String>,
    /// XML: namespace prefixes and their URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Map<String, Value>>,
    /// Flat file: the layouts by record type code, e.g. `{"20": {"name": "payment", "columns":
    /// [{"width": 2}, {"name": "payer_bankgiro", "width": 10}, …]}, "70": {"name": "closing",
    /// "role": "trailer", "columns": […]}}`. Each line's code (see `record_type`) picks its type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_types: Option<BTreeMap<String, PostTypeConfig>>,
    /// Flat file: whether a line of a type not in `post_types` is rejected (`true`) or skipped
    /// (`false`, the default; skipped lines are counted in the check report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_post_types: Option<bool>,
    /// Flat file: where the record type code is on each line; default the first characters, as
    /// long as the codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_type: Option<RecordTypePosition>,
    /// Flat file: which whitespace is trimmed from values: `both` (default), `end` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim: Option<Trim>,
}

/// One column of a fixed-width layout: a width alone, or an object with a width and a name.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ColumnWidth {
    /// A width in characters: in `column_widths` a column named `column_<position>`, in a post
    /// type's `columns` filler.
    Width(usize),
    /// A column with a name, or without one (filler).
    Column(NamedColumnWidth),
}

/// A fixed-width column given as an object.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedColumnWidth {
    /// The column name; without one the characters are filler and not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Width in characters, at least 1.
    pub width: usize,
}

/// One record type of a flat file (`parser_config.post_types`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostTypeConfig {
    /// The type's name, which records carry in the column `post_type` (e.g. `payment`).
    pub name: String,
    /// `record` (default: each line is a record), `continuation` (adds its columns to the
    /// record before it), `header` or `trailer` (control records for cross-row rules), or
    /// `ignore`.
    #[serde(default)]
    pub role: PostRole,
    /// The line's columns from its first character (the type code included, as filler).
    pub columns: Vec<ColumnWidth>,
}

/// Where a flat file's record type code is on each line.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordTypePosition {
    /// The code's first character, counting from 1.
    #[schemars(range(min = 1))]
    pub start: usize,
    /// The code's length in characters.
    #[schemars(range(min = 1))]
    pub width: usize,
}

fn yes() -> bool {
    true
}
fn comma() -> String {
    ",".to_owned()
}
fn utf8() -> String {
    "utf-8".to_owned()
}
fn sv() -> String {
    "sv".to_owned()
}
fn financial() -> String {
    "financial".to_owned()
}

impl Template {
    /// The pre-flight options for a file read with this template (automatic decompression with
    /// the default limits when `crypto` is absent).
    pub fn preflight_options(&self) -> PreflightOptions {
        let mut options =
            self.crypto.as_ref().map(CryptoConfig::preflight_options).unwrap_or_default();
        // A workbook (xlsx, xlsm, ods) is itself a zip archive: automatic detection would open
        // it as a compressed file. Excel files are decompressed only when `decompression` says so.
        if self.reads_excel() && options.decompression == Decompression::Auto {
            options.decompression = Decompression::None;
        }
        options
    }

    /// The parser format this template uses: `format` when set, else the one `file_type` implies.
    /// Excel has no format key of its own and is `None` here.
    pub fn effective_format(&self) -> Option<Format> {
        self.format.or(match self.file_type {
            FileType::Csv => Some(Format::Csv),
            FileType::Json => Some(Format::Json),
            FileType::Xml => Some(Format::Xml),
            FileType::FixedWidth => Some(Format::FlatFile),
            FileType::Excel => None,
        })
    }

    /// Whether this template reads spreadsheets with the Excel reader: `file_type` `excel` and
    /// no `format` (Excel has no parser format key of its own).
    pub fn reads_excel(&self) -> bool {
        self.file_type == FileType::Excel && self.format.is_none()
    }

    /// Whether this template reads records that are objects (JSON, JSON Lines, XML), whose
    /// columns are the mapped source paths.
    pub fn reads_objects(&self) -> bool {
        matches!(self.effective_format(), Some(Format::Json | Format::Xml))
    }

    /// Settings this release cannot run, each as "not supported yet: …" text with its JSON path.
    ///
    /// A template using them is valid and can be stored; running it is refused with these,
    /// never silently ignored.
    pub fn unsupported(&self) -> Vec<TemplateProblem> {
        let mut found = Vec::new();
        let mut add = |path: &str, what: String| {
            found.push(TemplateProblem::new(path, format!("not supported yet: {what}")));
        };
        match (self.file_type, self.effective_format()) {
            (FileType::Csv, Some(Format::Csv))
            | (FileType::Excel, None)
            | (_, Some(Format::Json | Format::Xml | Format::FlatFile)) => {}
            (file_type, format) => add(
                if self.format.is_some() { "/format" } else { "/file_type" },
                format!(
                    "reading {} files (file_type {}, format {}); this release reads CSV, Excel, JSON, XML and fixed-width",
                    ser_name(&file_type),
                    ser_name(&file_type),
                    format.map(|f| ser_name(&f)).unwrap_or_else(|| "none".to_owned())
                ),
            ),
        }
        for (index, mapper) in self.mapping.iter().enumerate() {
            if matches!(mapper, MapperConfig::Xslt(_)) {
                add(
                    &format!("/mapping/{index}"),
                    "the 'xslt' mapper (use a jq mapper on the XML records)".to_owned(),
                );
            }
        }
        found
    }
}

/// The JSON spelling of a unit enum value.
fn ser_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
