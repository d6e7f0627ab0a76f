//! One file through parse → map → validate, a row at a time, in bounded memory.
//!
//! [`FilePipeline`] is what `intake check` runs, and what an import runs before writing: it is
//! opened once per file (compiling the mapping and validation for that file's columns) and then
//! yields each row's outcome in file order. A bad row is an outcome, not an error; only a file
//! that cannot be read at all (or a template that cannot run) is an `Err`.
//!
//! Every file goes through the pre-flight first ([`open_records`]: an OpenPGP message is
//! decrypted and verified, then gzip and zip files are decompressed as a stream, with the
//! template's bomb limits), so `intake check`, imports and the REST preview all read encrypted and
//! compressed files the same way.
//!
//! Per row the layers run in order: mapping, `schema` and `row_rules` ([`RowProcessor`]), then
//! `business_rules` (look-ups in the target API, for rows that passed so far), `cross_row_rules`
//! and `plugins`. Business rules are batched: rows that need a look-up not in the run's cache are
//! held back (with every row after them, so the order stays the file's) until
//! [`MAX_KEYS_PER_REQUEST`](intake_validators::business_rules::MAX_KEYS_PER_REQUEST) keys of one
//! rule wait, [`MAX_HELD_ROWS`] rows are held, or the file ends; then one `$in` list request per
//! rule resolves them, and the held rows are finished and handed out in file order. A look-up the
//! API does not answer fails the file ([`PipelineError::BusinessRule`]); it never rejects a row.

use std::collections::VecDeque;
use std::io::{self, Read};

use intake_mappers::plugin::MapperPluginError;
use intake_mappers::{FieldMappingError, MappingChain, MappingFailure, PreTransform};
use intake_parsers::csv::RowParseError;
use intake_parsers::csv::{CsvFileError, CsvReader, ReadOutcome};
use intake_parsers::excel::{ExcelFileError, ExcelReader};
use intake_parsers::fixed_width::{ControlRecord, FixedWidthFileError, FixedWidthReader};
use intake_parsers::json::{JsonFileError, JsonOutcome, JsonReader};
use intake_parsers::object_record::ObjectColumns;
use intake_parsers::pgp::PgpError;
use intake_parsers::preflight::{PreflightError, PreflightReader};
use intake_parsers::xml::{XmlFileError, XmlOutcome, XmlReader};
use intake_parsers::{Layer, Locale, Record, Row, RowError};
use intake_validators::{
    BusinessRules, CrossRowValidator, FileRuleFailure, LookupFailed, PluginError, RowValidator,
    RunningPlugin,
};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::business_rules::{ApiRecordLookup, BusinessRuleLookups};
use crate::preflight::{Delivered, DeliveredProgress, OpenedRecords, open_records};
use crate::template::{Format, Template, TemplateProblem};

/// Why a file could not be run through the pipeline at all.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The template asks for something this release cannot run, or does not fit this file.
    #[error("{source_name}: the template cannot run on this file:\n{}", list(problems))]
    Template {
        /// The file.
        source_name: String,
        /// Every problem, with its path in the template.
        problems: Vec<TemplateProblem>,
    },
    /// The file cannot be read (I/O, missing required columns, duplicate header names, …).
    #[error(transparent)]
    File(#[from] CsvFileError),
    /// The workbook cannot be read (corrupt, unknown sheet, sheet too large, …).
    #[error(transparent)]
    Excel(#[from] ExcelFileError),
    /// The JSON document cannot be read on (not JSON, no array at `records_path`, …).
    #[error(transparent)]
    Json(#[from] JsonFileError),
    /// The XML document cannot be read on (not well-formed, a DTD, too deep, …).
    #[error(transparent)]
    Xml(#[from] XmlFileError),
    /// A mapper plugin failed (did not start, timed out, crashed, answered nonsense).
    #[error("{source_name}: {error}")]
    MapperPlugin {
        /// The file.
        source_name: String,
        /// What happened.
        error: MapperPluginError,
    },
    /// A business rule's look-up in the target API failed (after the client's retries): the
    /// file cannot be checked. No row was rejected for it.
    #[error("{source_name}: {error}")]
    BusinessRule {
        /// The file.
        source_name: String,
        /// The rule, its resource and what the API said.
        error: LookupFailed,
    },
    /// The template has business rules but no platform client was given to look records up.
    #[error(
        "{source_name}: the template's business_rules look records up in the target API, and no \
         API is configured here: give the platform's settings (for `intake check`: --target, \
         --client-id, --kid and --key, as for `intake import`), or skip the rules explicitly \
         (`intake check --skip-business-rules`)"
    )]
    BusinessRulesNeedApi {
        /// The file.
        source_name: String,
    },
    /// Our bug: a row was checked against business rules before its look-up.
    #[error("{source_name}: {message}")]
    Internal {
        /// The file.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// A validation plugin failed (did not start, timed out, crashed, answered nonsense).
    #[error("{source_name}: {error}")]
    Plugin {
        /// The file.
        source_name: String,
        /// What happened.
        error: PluginError,
    },
    /// The fixed-width file cannot be read on.
    #[error(transparent)]
    FixedWidth(#[from] FixedWidthFileError),
    /// The file cannot be decompressed: corrupt or truncated data, a bomb limit exceeded, an
    /// unusable zip archive.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The OpenPGP message cannot be opened: not decryptable with the configured key, a
    /// signature check failed, malformed, or too large. No plaintext was released.
    #[error(transparent)]
    Pgp(#[from] PgpError),
    /// An OpenPGP key or certificate the template names cannot be used: its credential reference
    /// does not resolve, or it holds no usable key. The message names the reference, never the
    /// value.
    #[error("{source_name}: cannot open the OpenPGP message: {setting}: {problem}")]
    PgpCredential {
        /// The file.
        source_name: String,
        /// The template setting (`crypto.decrypt.secret_key`, `crypto.verify.signers[0]`, …).
        setting: String,
        /// What is wrong, naming the credential reference.
        problem: String,
    },
}

impl PipelineError {
    /// A parser error, unwrapped to the pre-flight error it carries when decompressing failed
    /// while the parser was reading (so the message names the file once, with the limit).
    fn from_file(error: CsvFileError) -> Self {
        match error {
            CsvFileError::Io { source_name, source }
                if PreflightError::from_io(&source).is_some() =>
            {
                match source.into_inner().map(|inner| inner.downcast::<PreflightError>()) {
                    Some(Ok(preflight)) => PipelineError::Preflight(*preflight),
                    Some(Err(other)) => PipelineError::File(CsvFileError::Io {
                        source_name,
                        source: io::Error::other(other),
                    }),
                    None => PipelineError::File(CsvFileError::Io {
                        source_name,
                        source: io::Error::other("unknown pre-flight error"),
                    }),
                }
            }
            other => PipelineError::File(other),
        }
    }
}

/// The reader a template asks for: the one place a file's format picks its parser.
///
/// `file_type` `excel` without a `format` reads a workbook with [`ExcelReader`]; format `json`
/// and `xml` read object records ([`JsonReader`], [`XmlReader`]) whose columns are the template's
/// mapped source paths ([`ObjectColumns`]); format `flat_file` reads fixed-width lines
/// ([`FixedWidthReader`]); everything else the template lets run ([`Template::unsupported`]
/// refuses the rest) is CSV.
#[allow(clippy::large_enum_variant)] // one per file: the size of the CSV reader does not matter
pub enum RecordReader<R: Read> {
    /// Delimited text.
    Csv(CsvReader<R>),
    /// One sheet of a workbook.
    Excel(ExcelReader),
    /// A JSON array or JSON Lines.
    Json(JsonReader<R>, ObjectColumns),
    /// The record elements of an XML document.
    Xml(XmlReader<R>, ObjectColumns),
    /// Fixed-width lines, with or without record types.
    FixedWidth(FixedWidthReader<R>),
}

impl<R: Read> RecordReader<R> {
    /// Opens `input` with the reader and options `template` asks for (headers read, required
    /// columns checked).
    pub fn open(template: &Template, source_name: &str, input: R) -> Result<Self, PipelineError> {
        let template_error =
            |problems| PipelineError::Template { source_name: source_name.to_owned(), problems };
        if template.reads_excel() {
            let options = template.excel_options().map_err(template_error)?;
            return Ok(Self::Excel(ExcelReader::new(source_name, input, options)?));
        }
        match template.effective_format() {
            Some(Format::Json) => {
                let (options, columns) = both(template.json_options(), template.object_columns())
                    .map_err(template_error)?;
                Ok(Self::Json(JsonReader::new(source_name, input, options)?, columns))
            }
            Some(Format::Xml) => {
                let (options, columns) = both(template.xml_options(), template.object_columns())
                    .map_err(template_error)?;
                Ok(Self::Xml(XmlReader::new(source_name, input, &options)?, columns))
            }
            Some(Format::FlatFile) => {
                let options = template.fixed_width_options().map_err(template_error)?;
                Ok(Self::FixedWidth(FixedWidthReader::new(source_name, input, options)?))
            }
            _ => {
                let options = template.csv_options().map_err(template_error)?;
                let reader = CsvReader::new(source_name, input, options)
                    .map_err(PipelineError::from_file)?;
                Ok(Self::Csv(reader))
            }
        }
    }

    /// The file's column names (for JSON and XML: the mapped source paths).
    pub fn columns(&self) -> &[String] {
        match self {
            Self::Csv(reader) => reader.columns(),
            Self::Excel(reader) => reader.columns(),
            Self::Json(_, columns) | Self::Xml(_, columns) => columns.columns(),
            Self::FixedWidth(reader) => reader.columns(),
        }
    }

    /// The header and trailer records of a fixed-width file read so far (none for other
    /// formats), for cross-row rules and the check report.
    pub fn control_records(&self) -> &[ControlRecord] {
        match self {
            Self::FixedWidth(reader) => reader.control_records(),
            _ => &[],
        }
    }

    /// Lines skipped because their record type is not configured (fixed-width files without
    /// `strict_post_types`).
    pub fn skipped_lines(&self) -> u64 {
        match self {
            Self::FixedWidth(reader) => reader.skipped_lines(),
            _ => 0,
        }
    }

    /// Reads the next record into `record`; see [`CsvReader::read_record`].
    pub fn read_record(&mut self, record: &mut Record) -> Result<ReadOutcome, PipelineError> {
        Ok(match self {
            Self::Csv(reader) => reader.read_record(record).map_err(PipelineError::from_file)?,
            Self::Excel(reader) => reader.read_record(record)?,
            Self::Json(reader, columns) => match reader.read_record()? {
                JsonOutcome::End => ReadOutcome::End,
                JsonOutcome::Record { row_number, object } => {
                    columns.fill(record, row_number, &object);
                    ReadOutcome::Record
                }
                JsonOutcome::Rejected { row_number, kind, text } => {
                    ReadOutcome::Rejected(RowParseError { row_number, kind, cells: vec![text] })
                }
            },
            Self::Xml(reader, columns) => match reader.read_record()? {
                XmlOutcome::End => ReadOutcome::End,
                XmlOutcome::Record { row_number, object } => {
                    columns.fill(record, row_number, &object);
                    ReadOutcome::Record
                }
            },
            Self::FixedWidth(reader) => reader.read_record(record)?,
        })
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        match self {
            Self::Csv(reader) => reader.bytes_read(),
            Self::Excel(reader) => reader.bytes_read(),
            Self::Json(reader, _) => reader.bytes_read(),
            Self::Xml(reader, _) => reader.bytes_read(),
            Self::FixedWidth(reader) => reader.bytes_read(),
        }
    }
}

/// Both results, or every problem of either.
fn both<A, B>(
    a: Result<A, Vec<TemplateProblem>>,
    b: Result<B, Vec<TemplateProblem>>,
) -> Result<(A, B), Vec<TemplateProblem>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(a.err().into_iter().chain(b.err()).flatten().collect()),
    }
}

fn list(problems: &[TemplateProblem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// A row the pipeline refused, with everything an operator needs to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    /// The physical line in the source file where the record starts.
    pub row_number: u64,
    /// The record as it came, column name → text.
    pub original_data: Map<String, Value>,
    /// Every error found (up to the template's cap).
    pub errors: Vec<RowError>,
}

/// What happened to one row.
#[derive(Debug, Clone, Copy)]
pub enum RowOutcome<'a> {
    /// Mapped and valid; ready to write.
    Valid(&'a Row),
    /// Refused, with its errors.
    Rejected(&'a RejectedRow),
}

/// A template's mapping and validation, compiled for one set of columns: a record in, a valid
/// row or its errors out. It is what [`FilePipeline`] runs on every record of a file, and what a
/// retry of a corrected rejected record runs on that one record.
pub struct RowProcessor {
    /// The template's `pre_transform`, with the file's columns it reads and writes.
    pre_transform: Option<(PreTransform, Vec<String>)>,
    mapping: MappingChain,
    validator: RowValidator,
    locale: Locale,
}

impl RowProcessor {
    /// Compiles `template`'s mapping and validation for records with `columns`, reporting every
    /// problem at once (a mapping that names a column not in `columns` is one).
    pub fn from_template(
        template: &Template,
        columns: &[String],
    ) -> Result<Self, Vec<TemplateProblem>> {
        let unsupported = template.unsupported();
        if !unsupported.is_empty() {
            return Err(unsupported);
        }
        let mut problems = Vec::new();
        let locale = Locale::from_tag(&template.locale);
        let pre_transform = match template.pre_transform.as_deref().map(PreTransform::build) {
            None => None,
            Some(Ok(pre_transform)) => Some((pre_transform, columns.to_vec())),
            Some(Err(problem)) => {
                problems.push(TemplateProblem::new("/pre_transform", problem));
                None
            }
        };
        let mapping = MappingChain::build(
            &template.mapping,
            &template.field_mapping,
            &template.default_values,
            columns,
        );
        let mapping = match mapping {
            Ok(mapping) => Some(mapping.with_locale(locale)),
            Err(errors) => {
                problems.extend(
                    errors.iter().map(|e| TemplateProblem::new(e.pointer(), e.to_string())),
                );
                None
            }
        };
        let mut validator = None;
        if let Some(mapping) = &mapping {
            match RowValidator::build(&template.validation, mapping.shape(), locale) {
                Ok(built) => validator = Some(built),
                Err(errors) => problems.extend(errors.iter().map(|e| {
                    TemplateProblem::new(format!("/validation{}", e.path()), e.to_string())
                })),
            }
        }
        match (mapping, validator) {
            (Some(mapping), Some(validator)) if problems.is_empty() => {
                Ok(Self { pre_transform, mapping, validator, locale })
            }
            _ => Err(problems),
        }
    }

    /// The locale messages are rendered in.
    pub fn locale(&self) -> Locale {
        self.locale
    }

    /// Validation layer 4 of `template` compiled for this processor's rows (the look-ups
    /// themselves are the caller's), or every problem with it.
    pub fn business_rules(
        &self,
        template: &Template,
    ) -> Result<BusinessRules, Vec<TemplateProblem>> {
        BusinessRules::build(
            &template.validation.business_rules,
            self.mapping.shape(),
            self.locale,
            template.validation.max_errors_per_row,
        )
        .map_err(|problems| {
            problems
                .into_iter()
                .map(|p| {
                    let problem = intake_validators::ValidationConfigError::from(p);
                    TemplateProblem::new(
                        format!("/validation{}", problem.path()),
                        problem.to_string(),
                    )
                })
                .collect()
        })
    }

    /// The shape of the rows this processor produces.
    pub fn shape(&self) -> &std::sync::Arc<intake_parsers::RowShape> {
        self.mapping.shape()
    }

    /// An empty row of the mapped shape, to reuse with [`RowProcessor::process_into`].
    pub fn new_row(&self) -> Row {
        Row::new(self.mapping.shape().clone())
    }

    /// Maps and validates `record` into `row` (numbered like the record), appending every error
    /// to `errors`: `Ok(true)` when the row is valid. A broken mapper plugin is an `Err`: no row
    /// can be mapped any more.
    pub fn process_into(
        &self,
        record: &Record,
        row: &mut Row,
        errors: &mut Vec<RowError>,
    ) -> Result<bool, MapperPluginError> {
        row.set_row_number(record.row_number());
        let transformed;
        let record = match &self.pre_transform {
            None => record,
            Some((pre_transform, columns)) => {
                let mut output = Record::new();
                if let Err(error) = pre_transform.apply(columns, record, &mut output) {
                    errors.push(self.mapping_error(&error));
                    return Ok(false);
                }
                transformed = output;
                &transformed
            }
        };
        match self.mapping.apply(record, row) {
            Ok(()) => Ok(self.validator.validate(row, errors)),
            Err(MappingFailure::Rejected(mapping_errors)) => {
                errors.extend(mapping_errors.iter().map(|e| self.mapping_error(e)));
                Ok(false)
            }
            Err(MappingFailure::Broken(error)) => Err(error),
        }
    }

    fn mapping_error(&self, error: &FieldMappingError) -> RowError {
        RowError {
            layer: Layer::Mapping,
            field: (!error.field.is_empty()).then(|| error.field.clone()),
            rule: error.rule().to_owned(),
            message: error.message(self.locale),
            value: (!error.value.is_empty() || error.column.is_some())
                .then(|| Value::String(error.value.clone())),
        }
    }

    /// Maps and validates one record: the valid row, or every error found. A broken mapper
    /// plugin is reported as this record's error (rule `plugin_failed`), so that it can be
    /// retried once the plugin is mended.
    pub fn process(&self, record: &Record) -> Result<Row, Vec<RowError>> {
        let mut row = self.new_row();
        let mut errors = Vec::new();
        match self.process_into(record, &mut row, &mut errors) {
            Ok(true) => Ok(row),
            Ok(false) => Err(errors),
            Err(error) => Err(vec![RowError {
                layer: Layer::Mapping,
                field: None,
                rule: "plugin_failed".to_owned(),
                message: error.to_string(),
                value: None,
            }]),
        }
    }
}

/// The most rows held back for business-rule look-ups before the look-ups are made anyway.
pub const MAX_HELD_ROWS: usize = 1024;

/// A row held back until its business-rule look-ups are answered.
enum Held {
    /// A record the reader refused, already rejected (layer 3 skips it when it is released).
    Unreadable(RejectedRow),
    /// A record mapped and checked by layers 1 and 2.
    Row {
        /// The mapped row (or what of it was mapped).
        row: Row,
        /// The errors found so far.
        errors: Vec<RowError>,
        /// Whether layers 1 and 2 passed.
        valid: bool,
        /// The record's cells, for a rejection's `original_data`.
        cells: Vec<String>,
    },
}

/// Validation layer 4 of one file: the compiled rules with their cache, how records are looked
/// up, and the rows held back for look-ups.
struct BusinessLayer {
    rules: BusinessRules,
    lookup: ApiRecordLookup,
    held: VecDeque<Held>,
    /// How many of the first held rows have their look-ups answered and can be finished.
    released: usize,
}

/// A file opened for parse → map → validate.
pub struct FilePipeline<R: Read> {
    reader: RecordReader<PreflightReader<Delivered<R>>>,
    progress: DeliveredProgress,
    processor: RowProcessor,
    /// Validation layer 3, with its state for this file.
    cross_row: CrossRowValidator,
    /// The file-level verdict of layer 3, once the last row has been read.
    file_failures: Option<Vec<FileRuleFailure>>,
    /// Validation layer 4, when the template has business rules and they are not skipped.
    business: Option<BusinessLayer>,
    /// Whether the template's business rules were skipped on request.
    business_skipped: bool,
    /// Whether the reader has reached the end of the file.
    read_all: bool,
    /// Validation layer 5: the plugins, started for this file.
    plugins: Vec<RunningPlugin>,
    source_name: String,
    record: Record,
    row: Row,
    rejected: RejectedRow,
}

impl<R: Read> FilePipeline<R> {
    /// Opens `input` (named `source_name` in errors) for `template`: runs the pre-flight
    /// ([`open_records`]: OpenPGP, then gzip or zip), reads the header, then compiles the mapping
    /// and validation for its columns, reporting every problem at once. A template with
    /// business rules is refused here ([`PipelineError::BusinessRulesNeedApi`]); see
    /// [`FilePipeline::open_with`].
    pub fn open(template: &Template, source_name: &str, input: R) -> Result<Self, PipelineError>
    where
        R: Send + Sync,
    {
        Self::open_with(template, source_name, input, &BusinessRuleLookups::Unavailable)
    }

    /// Like [`FilePipeline::open`], with business rules looked up (or skipped) as `lookups`
    /// says. With [`BusinessRuleLookups::Api`], call [`FilePipeline::next_row`] from a thread
    /// that may block (not from an async task).
    pub fn open_with(
        template: &Template,
        source_name: &str,
        input: R,
        lookups: &BusinessRuleLookups,
    ) -> Result<Self, PipelineError>
    where
        R: Send + Sync,
    {
        let template_error =
            |problems| PipelineError::Template { source_name: source_name.to_owned(), problems };
        let has_rules = !template.validation.business_rules.is_empty();
        if has_rules && matches!(lookups, BusinessRuleLookups::Unavailable) {
            return Err(PipelineError::BusinessRulesNeedApi {
                source_name: source_name.to_owned(),
            });
        }
        let OpenedRecords { reader, progress } = open_records(template, source_name, input)?;
        let processor =
            RowProcessor::from_template(template, reader.columns()).map_err(template_error)?;
        let cross_row = CrossRowValidator::build(
            &template.validation.cross_row_rules,
            processor.shape(),
            processor.locale(),
        )
        .map_err(|problems| {
            template_error(
                problems
                    .into_iter()
                    .map(|(index, problem)| {
                        TemplateProblem::new(
                            format!("/validation/cross_row_rules/{index}"),
                            problem.to_string(),
                        )
                    })
                    .collect(),
            )
        })?
        .for_file(source_name);
        // Compiled even when skipped, so that a rule naming a field the rows lack is reported.
        let rules = if has_rules {
            Some(processor.business_rules(template).map_err(template_error)?)
        } else {
            None
        };
        let business = match (lookups, rules) {
            (BusinessRuleLookups::Api { client, runtime }, Some(rules)) => Some(BusinessLayer {
                rules,
                lookup: ApiRecordLookup::new(client.clone(), runtime.clone()),
                held: VecDeque::new(),
                released: 0,
            }),
            _ => None,
        };
        let mut plugins = Vec::with_capacity(template.validation.plugins.len());
        let plugin_dir = intake_validators::plugin::plugin_dir();
        for config in &template.validation.plugins {
            let plugin =
                RunningPlugin::start(config, &plugin_dir, processor.locale()).map_err(|error| {
                    PipelineError::Plugin { source_name: source_name.to_owned(), error }
                })?;
            plugins.push(plugin);
        }
        let row = processor.new_row();
        Ok(Self {
            plugins,
            source_name: source_name.to_owned(),
            reader,
            progress,
            processor,
            cross_row,
            file_failures: None,
            business,
            business_skipped: has_rules && matches!(lookups, BusinessRuleLookups::Skip),
            read_all: false,
            record: Record::new(),
            row,
            rejected: RejectedRow { row_number: 0, original_data: Map::new(), errors: Vec::new() },
        })
    }

    /// The file's column names.
    pub fn columns(&self) -> &[String] {
        self.reader.columns()
    }

    /// The header and trailer records read so far; see [`RecordReader::control_records`].
    pub fn control_records(&self) -> &[ControlRecord] {
        self.reader.control_records()
    }

    /// Lines skipped for an unconfigured record type; see [`RecordReader::skipped_lines`].
    pub fn skipped_lines(&self) -> u64 {
        self.reader.skipped_lines()
    }

    /// Bytes of the file as delivered (compressed, for a gzip or zip file) read so far, so that
    /// progress compares with the file's size. A zip file is read whole (spooled) when it is
    /// opened; decompressed bytes are not counted here. For an OpenPGP message (read whole when
    /// it is opened) this is the share of the message the plaintext read so far stands for.
    pub fn bytes_read(&self) -> u64 {
        self.progress.bytes_read()
    }

    /// List requests the business rules' look-ups made so far (each page counts).
    pub fn lookup_requests(&self) -> u64 {
        self.business.as_ref().map(|b| b.lookup.requests()).unwrap_or(0)
    }

    /// Whether the template's business rules were skipped on request
    /// ([`BusinessRuleLookups::Skip`]).
    pub fn business_rules_skipped(&self) -> bool {
        self.business_skipped
    }

    fn plugin_error(&self, error: PluginError) -> PipelineError {
        PipelineError::Plugin { source_name: self.source_name.clone(), error }
    }

    /// The failures of file-level rules (cross-row rules: counts, aggregates, control totals),
    /// known once [`FilePipeline::next_row`] has returned `None`; empty before.
    pub fn file_failures(&self) -> &[FileRuleFailure] {
        self.file_failures.as_deref().unwrap_or_default()
    }

    /// The next row's outcome, or `None` at the end of the file (when the file-level rules are
    /// decided, see [`FilePipeline::file_failures`]). With business rules, rows come out in file
    /// order after their look-ups (see the module documentation).
    pub fn next_row(&mut self) -> Result<Option<RowOutcome<'_>>, PipelineError> {
        loop {
            if let Some(business) = &mut self.business
                && business.released > 0
            {
                business.released -= 1;
                if business.released == 0 {
                    // The last held row: the cache may drop its keys at the next look-up.
                    business.rules.end_batch();
                }
                let Some(held) = business.held.pop_front() else { continue };
                return self.release(held).map(Some);
            }
            if self.read_all {
                if let Some(business) = &mut self.business
                    && !business.held.is_empty()
                {
                    self.resolve()?;
                    continue;
                }
                if self.file_failures.is_none() {
                    self.file_failures = Some(self.cross_row.finish(self.reader.control_records()));
                }
                return Ok(None);
            }
            match self.reader.read_record(&mut self.record)? {
                ReadOutcome::End => self.read_all = true,
                ReadOutcome::Rejected(error) => {
                    self.rejected.row_number = error.row_number;
                    self.rejected.original_data = match &self.reader {
                        // An object record or a fixed-width line that could not be read has no
                        // columns yet: keep its text.
                        RecordReader::Json(..)
                        | RecordReader::Xml(..)
                        | RecordReader::FixedWidth(_) => error
                            .cells
                            .iter()
                            .map(|text| ("record".to_owned(), Value::String(text.clone())))
                            .collect(),
                        _ => original_data(self.reader.columns(), error.cells.iter()),
                    };
                    self.rejected.errors.clear();
                    self.rejected.errors.push(RowError {
                        layer: Layer::Parse,
                        field: None,
                        rule: error.kind.rule().to_owned(),
                        message: error.kind.message(self.processor.locale),
                        value: None,
                    });
                    if let Some(business) = &mut self.business
                        && !business.held.is_empty()
                    {
                        business.held.push_back(Held::Unreadable(self.rejected.clone()));
                        continue;
                    }
                    self.cross_row.skip_row();
                    return Ok(Some(RowOutcome::Rejected(&self.rejected)));
                }
                ReadOutcome::Record => {
                    self.rejected.errors.clear();
                    let valid = self
                        .processor
                        .process_into(&self.record, &mut self.row, &mut self.rejected.errors)
                        .map_err(|error| PipelineError::MapperPlugin {
                            source_name: self.source_name.clone(),
                            error,
                        })?;
                    if let Some(business) = &mut self.business {
                        let ready = business.held.is_empty()
                            && (!valid || business.rules.is_ready(&self.row));
                        if !ready {
                            if valid {
                                business.rules.register(&self.row);
                            }
                            business.held.push_back(Held::Row {
                                row: self.row.clone(),
                                errors: std::mem::take(&mut self.rejected.errors),
                                valid,
                                cells: self.record.cells().map(str::to_owned).collect(),
                            });
                            if business.rules.batch_full() || business.held.len() >= MAX_HELD_ROWS {
                                self.resolve()?;
                            }
                            continue;
                        }
                    }
                    if self.finish_row(valid)? {
                        return Ok(Some(RowOutcome::Valid(&self.row)));
                    }
                    self.rejected.row_number = self.record.row_number();
                    self.rejected.original_data =
                        original_data(self.reader.columns(), self.record.cells());
                    return Ok(Some(RowOutcome::Rejected(&self.rejected)));
                }
            }
        }
    }

    /// Looks up the keys the held rows wait for; every held row can then be released.
    fn resolve(&mut self) -> Result<(), PipelineError> {
        let Some(business) = &mut self.business else { return Ok(()) };
        business.rules.resolve(&mut business.lookup).map_err(|error| {
            PipelineError::BusinessRule { source_name: self.source_name.clone(), error }
        })?;
        business.released = business.held.len();
        Ok(())
    }

    /// Finishes a held row whose look-ups are answered.
    fn release(&mut self, held: Held) -> Result<RowOutcome<'_>, PipelineError> {
        match held {
            Held::Unreadable(rejected) => {
                self.cross_row.skip_row();
                self.rejected = rejected;
                Ok(RowOutcome::Rejected(&self.rejected))
            }
            Held::Row { row, errors, valid, cells } => {
                self.row = row;
                self.rejected.errors = errors;
                if self.finish_row(valid)? {
                    return Ok(RowOutcome::Valid(&self.row));
                }
                self.rejected.row_number = self.row.row_number();
                self.rejected.original_data = original_data(self.reader.columns(), cells.iter());
                Ok(RowOutcome::Rejected(&self.rejected))
            }
        }
    }

    /// Layers 4, 3 and 5 for the row in `self.row`, whose errors so far are in
    /// `self.rejected.errors` and which passed layers 1 and 2 if `valid`; whether it is valid.
    fn finish_row(&mut self, mut valid: bool) -> Result<bool, PipelineError> {
        if valid && let Some(business) = &self.business {
            valid = business.rules.check(&self.row, &mut self.rejected.errors).map_err(|e| {
                PipelineError::Internal {
                    source_name: self.source_name.clone(),
                    message: e.to_string(),
                }
            })?;
        }
        if !self.cross_row.is_empty() {
            let mapped = !self.rejected.errors.iter().any(|e| e.layer == Layer::Mapping);
            if mapped {
                valid = self.cross_row.check_row(
                    &self.row,
                    valid,
                    self.reader.control_records(),
                    &mut self.rejected.errors,
                );
            } else {
                self.cross_row.skip_row();
            }
        }
        if valid {
            for index in 0..self.plugins.len() {
                let checked = self.plugins[index].check(&self.row, &mut self.rejected.errors);
                valid &= checked.map_err(|error| self.plugin_error(error))?;
            }
        }
        Ok(valid)
    }
}

impl RowOutcome<'_> {
    /// The outcome as one JSON line of a check report: a valid row as `{row_number, data}`, a
    /// rejected one as `{row_number, original_data, errors}`.
    pub fn to_json(&self) -> Value {
        match self {
            RowOutcome::Valid(row) => serde_json::json!({
                "row_number": row.row_number(),
                "data": row.to_object(),
            }),
            RowOutcome::Rejected(rejected) => serde_json::json!({
                "row_number": rejected.row_number,
                "original_data": rejected.original_data,
                "errors": rejected.errors,
            }),
        }
    }
}

/// The record as column → text; cells beyond the header are named by position.
pub(crate) fn original_data<'a>(
    columns: &[String],
    cells: impl Iterator<Item = impl AsRef<str> + 'a>,
) -> Map<String, Value> {
    cells
        .enumerate()
        .map(|(i, cell)| {
            let name = columns.get(i).cloned().unwrap_or_else(|| format!("column_{}", i + 1));
            (name, Value::String(cell.as_ref().to_owned()))
        })
        .collect()
}
