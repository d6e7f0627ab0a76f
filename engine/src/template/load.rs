//! Reading a template from JSON and checking it completely before anything runs.
//!
//! Three passes, each reporting every problem it finds with a JSON path: the template's own JSON
//! Schema (structure, types, unknown fields), serde (the Rust types, with a path for anything the
//! schema let through), and the semantic checks that need the parsed template (options that must
//! agree, rules and schemas that must compile). No I/O happens here.

use std::fmt;

use intake_mappers::{FieldSpec, MapperConfig, MappingChain, MappingConfigError, PreTransform};
use intake_parsers::csv::CsvOptions;
use intake_parsers::encoding::TextEncoding;
use intake_parsers::excel::ExcelOptions;
use intake_parsers::fixed_width::{FixedColumn, FixedWidthOptions, Layout, PostType};
use intake_parsers::json::{JsonMode, JsonOptions};
use intake_parsers::object_record::ObjectColumns;
use intake_parsers::xml::XmlOptions;
use intake_validators::business_rules::BusinessRuleConfig;
use intake_validators::rules::RowRuleConfig;
use serde_json::Value;
use thiserror::Error;

use super::{ColumnWidth, CryptoConfig, Format, ImportMode, PostProcessPolicy, Template};

/// One thing wrong with a template, and where: a JSON pointer into the template document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// JSON pointer to the offending value (`/validation/row_rules/2/pattern`); `/` is the root.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl TemplateProblem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        let path = if path.is_empty() { "/".to_owned() } else { path };
        Self { path, message: message.into() }
    }
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a template cannot be used.
#[derive(Debug, Error)]
pub enum TemplateError {
    /// The text is not JSON.
    #[error("{source_name}: not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// The template file.
        source_name: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The JSON is not a valid template; every problem is listed.
    #[error("{source_name}: invalid template:\n{}", list(problems))]
    Invalid {
        /// The template file.
        source_name: String,
        /// Every problem found.
        problems: Vec<TemplateProblem>,
    },
}

fn list(problems: &[TemplateProblem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// The JSON Schema of a template document (draft 2020-12), generated from [`Template`].
pub fn template_schema() -> Value {
    let schema = schemars::schema_for!(Template);
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// Parses and checks a template; `source_name` names it in errors.
pub fn load(source_name: &str, text: &str) -> Result<Template, TemplateError> {
    let document: Value = serde_json::from_str(text).map_err(|error| TemplateError::Syntax {
        source_name: source_name.to_owned(),
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    })?;
    let invalid =
        |problems| TemplateError::Invalid { source_name: source_name.to_owned(), problems };

    let mut problems = Vec::new();
    let parsed = serde_path_to_error::deserialize::<_, Template>(&document);
    if let Err(error) = &parsed {
        problems.push(serde_problem("", error));
    }
    for problem in schema_problems(&document) {
        // serde's message for a place, or for an unknown field, is the more precise one.
        let covered = problems.iter().any(|q: &TemplateProblem| {
            // serde stops at the first missing field; the schema names every one.
            let same_place = match missing_name(&q.message) {
                Some(name) => {
                    q.path == problem.path && problem.message.contains(&format!("\"{name}\""))
                }
                None => q.path == problem.path,
            };
            same_place
                || unknown_name(&q.message).is_some_and(|name| {
                    problem.message.contains(&format!("'{name}' was unexpected"))
                })
        });
        if !covered {
            problems.push(problem);
        }
    }
    let template = match parsed {
        Ok(template) if problems.is_empty() => template,
        _ => return Err(invalid(problems)),
    };
    let problems = template.validate();
    if problems.is_empty() { Ok(template) } else { Err(invalid(problems)) }
}

/// Problems the generated JSON Schema finds in the document.
fn schema_problems(document: &Value) -> Vec<TemplateProblem> {
    let schema = template_schema();
    match jsonschema::draft202012::new(&schema) {
        Ok(validator) => validator
            .iter_errors(document)
            .map(|e| {
                let pointer = e.instance_path().as_str();
                tagged_entry_problem(document, pointer)
                    .unwrap_or_else(|| TemplateProblem::new(pointer, e.to_string()))
            })
            .collect(),
        Err(error) => {
            vec![TemplateProblem::new("/", format!("internal: template schema: {error}"))]
        }
    }
}

/// For an entry of a family tagged by `type` (a row rule, a mapper, a field spec), the schema only
/// says "not valid under any of the schemas"; deserializing the entry alone names what is wrong.
fn tagged_entry_problem(document: &Value, pointer: &str) -> Option<TemplateProblem> {
    let entry = document.pointer(pointer)?;
    let segments: Vec<&str> = pointer.split('/').collect();
    let error = match segments.as_slice() {
        ["", "validation", "row_rules", _] => {
            serde_path_to_error::deserialize::<_, RowRuleConfig>(entry).err()
        }
        ["", "validation", "business_rules", _] => {
            serde_path_to_error::deserialize::<_, BusinessRuleConfig>(entry).err()
        }
        ["", "mapping", _] => serde_path_to_error::deserialize::<_, MapperConfig>(entry).err(),
        ["", "field_mapping", _] | ["", "mapping", _, "config", "fields", _] => {
            serde_path_to_error::deserialize::<_, FieldSpec>(entry).err()
        }
        _ => None,
    }?;
    Some(serde_problem(pointer, &error))
}

/// A serde error below `base` as a problem, with a suggestion for a misspelt name.
fn serde_problem(
    base: &str,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> TemplateProblem {
    let message = error.inner().to_string();
    let message = match (unknown_name(&message), expected_names(&message)) {
        (Some(name), expected) if !expected.is_empty() => {
            let kind = if message.starts_with("unknown field") { "field" } else { "value" };
            match closest(name, &expected) {
                Some(suggestion) => {
                    format!("unknown {kind} `{name}`: did you mean `{suggestion}`?")
                }
                None if expected.len() > 12 => format!(
                    "unknown {kind} `{name}` (the fields are listed in fixtures/template.schema.json, or run `intake schema`)"
                ),
                None => format!("unknown {kind} `{name}`: expected one of {}", expected.join(", ")),
            }
        }
        _ => message,
    };
    TemplateProblem::new(format!("{base}{}", serde_pointer(error.path())), message)
}

/// The name in serde's "unknown field `x`" / "unknown variant `x`" messages.
fn unknown_name(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    rest.split('`').next()
}

/// The field a serde "missing field `x`" message names.
fn missing_name(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// The names serde lists after "expected one of".
fn expected_names(message: &str) -> Vec<&str> {
    let Some((_, list)) = message.split_once("expected ") else { return Vec::new() };
    list.split('`').skip(1).step_by(2).collect()
}

/// The expected name closest to `name`, if it is plausibly a typo of it.
fn closest<'a>(name: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, for suggestions on short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// A serde_path_to_error path as a JSON pointer.
fn serde_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    pointer
}

impl Template {
    /// Semantic checks on a parsed template, with no I/O; every problem is returned.
    pub fn validate(&self) -> Vec<TemplateProblem> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push(TemplateProblem::new("/name", "must not be empty"));
        }
        if self.target_resource.trim().is_empty() {
            problems.push(TemplateProblem::new("/target_resource", "must not be empty"));
        }
        if let Some(format) = self.format {
            let expected = match self.file_type {
                super::FileType::Csv => Some(Format::Csv),
                super::FileType::Json => Some(Format::Json),
                super::FileType::Xml => Some(Format::Xml),
                super::FileType::FixedWidth => Some(Format::FlatFile),
                super::FileType::Excel => None,
            };
            if expected.is_some_and(|expected| expected != format) {
                problems.push(TemplateProblem::new(
                    "/format",
                    format!(
                        "format '{}' does not read file_type '{}'",
                        super::ser_name(&format),
                        super::ser_name(&self.file_type)
                    ),
                ));
            }
        }
        if self.effective_format() == Some(Format::Csv)
            && let Err(mut csv_problems) = self.csv_options()
        {
            problems.append(&mut csv_problems);
        }
        if self.reads_excel()
            && let Err(mut excel_problems) = self.excel_options()
        {
            problems.append(&mut excel_problems);
        }
        if self.effective_format() == Some(Format::FlatFile) {
            if let Err(mut fixed_width_problems) = self.fixed_width_options() {
                problems.append(&mut fixed_width_problems);
            }
        } else if !self.column_widths.is_empty() {
            problems.push(TemplateProblem::new(
                "/column_widths",
                "column_widths are for fixed-width files (file_type fixed_width)",
            ));
        }
        if matches!(self.import_mode, ImportMode::Update | ImportMode::Upsert | ImportMode::Sync)
            && self.upsert_key.as_deref().is_none_or(|key| key.trim().is_empty())
        {
            problems.push(TemplateProblem::new(
                "/upsert_key",
                format!("import_mode '{}' needs an upsert_key", super::ser_name(&self.import_mode)),
            ));
        }
        if self.post_process_policy == PostProcessPolicy::Move {
            for (path, folder) in [
                ("/completed_folder", &self.completed_folder),
                ("/error_folder", &self.error_folder),
            ] {
                if folder.as_deref().is_none_or(|f| f.trim().is_empty()) {
                    problems.push(TemplateProblem::new(
                        path,
                        "post_process_policy 'move' needs both completed_folder and error_folder",
                    ));
                }
            }
        }
        if let Err(errors) =
            MappingChain::validate(&self.mapping, &self.field_mapping, &self.default_values)
        {
            // A mapper of a later release is valid here; running it is refused (`unsupported`).
            problems.extend(
                errors
                    .iter()
                    .filter(|e| !matches!(e, MappingConfigError::NotSupportedYet { .. }))
                    .map(|e| TemplateProblem::new(e.pointer(), e.to_string())),
            );
        }
        if let Some(problem) = self.pre_transform.as_deref().and_then(PreTransform::problem) {
            problems.push(TemplateProblem::new("/pre_transform", problem));
        }
        if let Err(error) = crate::matcher::FileMatcher::parse(self.file_matcher.as_deref()) {
            problems.push(TemplateProblem::new("/file_matcher", error.to_string()));
        }
        if let Some(Err(problem)) = self
            .schedule_expectation
            .as_ref()
            .and_then(intake_alerts::ScheduleExpectation::schedule_of)
        {
            problems.push(TemplateProblem::new("/schedule_expectation", problem));
        }
        if let Some(transaction) = &self.transaction {
            problems.extend(
                transaction
                    .problems()
                    .into_iter()
                    .map(|p| TemplateProblem::new("/transaction", p.to_string())),
            );
        }
        if let Some(idempotency) = &self.idempotency {
            problems.extend(
                idempotency
                    .problems()
                    .into_iter()
                    .map(|p| TemplateProblem::new("/idempotency", p.to_string())),
            );
        }
        if let Some(column) = &self.delete_column
            && !matches!(
                self.import_mode,
                ImportMode::Update | ImportMode::Upsert | ImportMode::Sync
            )
        {
            problems.push(TemplateProblem::new(
                "/delete_column",
                format!(
                    "delete_column '{column}' works with import_mode update, upsert or sync, not '{}'",
                    super::ser_name(&self.import_mode)
                ),
            ));
        }
        if let Some(crypto) = &self.crypto {
            problems.extend(crypto.pgp_problems());
        }
        for problem in self.validation.validate() {
            problems.push(TemplateProblem::new(
                format!("/validation{}", problem.path()),
                problem.to_string(),
            ));
        }
        problems
    }

    /// The CSV reader options this template asks for, or every problem with them.
    pub fn csv_options(&self) -> Result<CsvOptions, Vec<TemplateProblem>> {
        let mut problems = self.foreign_settings(
            "CSV",
            &["delimiter", "quote_char", "has_header", "max_record_lines", "max_record_bytes"],
        );
        let config = self.parser_config.clone().unwrap_or_default();
        let delimiter_text = match &config.delimiter {
            Some(inner) if *inner != self.delimiter && self.delimiter != "," => {
                problems.push(TemplateProblem::new(
                    "/parser_config/delimiter",
                    format!(
                        "parser_config.delimiter '{inner}' contradicts delimiter '{}'",
                        self.delimiter
                    ),
                ));
                inner.as_str()
            }
            Some(inner) => inner.as_str(),
            None => self.delimiter.as_str(),
        };
        let delimiter = match single_ascii(delimiter_text) {
            Some(byte) if byte != b'\n' && byte != b'\r' => Some(byte),
            _ => {
                problems.push(TemplateProblem::new(
                    if config.delimiter.is_some() { "/parser_config/delimiter" } else { "/delimiter" },
                    format!("the delimiter must be one ASCII character (\\t for tab), got '{delimiter_text}'"),
                ));
                None
            }
        };
        let quote = match config.quote_char.as_deref() {
            None => Some(b'"'),
            Some("") => None,
            Some(text) => match single_ascii(text) {
                Some(byte) if Some(byte) != delimiter => Some(byte),
                _ => {
                    problems.push(TemplateProblem::new(
                        "/parser_config/quote_char",
                        format!("the quote character must be one ASCII character other than the delimiter, or empty for none; got '{text}'"),
                    ));
                    None
                }
            },
        };
        let has_header = self.agreed_has_header(&mut problems);
        let encoding = self.text_encoding(&mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let defaults = CsvOptions::default();
        Ok(CsvOptions {
            delimiter: delimiter.unwrap_or(b','),
            quote,
            has_header,
            skip_rows: self.skip_rows,
            encoding,
            required_columns: self.required_columns.clone(),
            max_record_lines: config.max_record_lines.unwrap_or(defaults.max_record_lines),
            max_record_bytes: config.max_record_bytes.unwrap_or(defaults.max_record_bytes),
        })
    }
}

impl Template {
    /// The Excel reader options this template asks for, or every problem with them.
    ///
    /// CSV-only settings (`delimiter`, `encoding`, `parser_config.delimiter`, `quote_char`,
    /// `max_record_lines`, `max_record_bytes`) mean nothing for a workbook: left at their
    /// defaults they are ignored, set to anything else they are a problem, so a template that
    /// expects them to act is not run as if they did.
    pub fn excel_options(&self) -> Result<ExcelOptions, Vec<TemplateProblem>> {
        let mut problems = Vec::new();
        let not_for_excel = "this option is for CSV files; this template reads Excel";
        if self.delimiter != "," {
            problems.push(TemplateProblem::new("/delimiter", not_for_excel));
        }
        if !self.encoding.eq_ignore_ascii_case("utf-8") {
            problems.push(TemplateProblem::new("/encoding", not_for_excel));
        }
        problems.extend(self.foreign_settings("Excel", &["has_header"]));
        let has_header = self.agreed_has_header(&mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ExcelOptions {
            sheet_name: self.sheet_name.clone(),
            has_header,
            skip_rows: self.skip_rows,
            required_columns: self.required_columns.clone(),
            ..ExcelOptions::default()
        })
    }
}

impl Template {
    /// The field-mapping `source`s of the template (top-level `field_mapping` and `field_mapping`
    /// mappers), in order: for JSON and XML files these paths are the columns.
    pub fn mapped_sources(&self) -> Vec<&str> {
        let chained = self.mapping.iter().flat_map(|mapper| match mapper {
            MapperConfig::FieldMapping(config) => config.fields.as_slice(),
            _ => &[],
        });
        self.field_mapping
            .iter()
            .chain(chained)
            .filter_map(|field| field.source.as_deref())
            .collect()
    }

    /// The problems of `parser_config` options that belong to other formats, for a template
    /// reading `format` (which takes the options in `allowed`).
    fn foreign_settings(&self, format: &str, allowed: &[&str]) -> Vec<TemplateProblem> {
        let mut problems = Vec::new();
        let config = self.parser_config.clone().unwrap_or_default();
        let message = format!("this option is for another format; this template reads {format}");
        for (field, set) in [
            ("delimiter", config.delimiter.is_some()),
            ("quote_char", config.quote_char.is_some()),
            ("has_header", config.has_header.is_some()),
            ("max_record_lines", config.max_record_lines.is_some()),
            ("max_record_bytes", config.max_record_bytes.is_some()),
            ("records_path", config.records_path.is_some()),
            ("mode", config.mode.is_some()),
            ("record_tag", config.record_tag.is_some()),
            ("namespaces", config.namespaces.is_some()),
            ("post_types", config.post_types.is_some()),
            ("strict_post_types", config.strict_post_types.is_some()),
            ("record_type", config.record_type.is_some()),
            ("trim", config.trim.is_some()),
        ] {
            if set && !allowed.contains(&field) {
                problems
                    .push(TemplateProblem::new(format!("/parser_config/{field}"), message.clone()));
            }
        }
        problems
    }

    /// The problem of a top-level CSV `delimiter` on a template reading `format`.
    fn top_level_csv_settings(&self, format: &str) -> Vec<TemplateProblem> {
        let message = format!("this option is for another format; this template reads {format}");
        (self.delimiter != ",")
            .then(|| TemplateProblem::new("/delimiter", message))
            .into_iter()
            .collect()
    }

    /// `has_header`, where `parser_config.has_header` may repeat it (or set it when the top
    /// level is left at its default); a contradiction is a problem.
    fn agreed_has_header(&self, problems: &mut Vec<TemplateProblem>) -> bool {
        let config = self.parser_config.as_ref().and_then(|c| c.has_header);
        match config {
            Some(inner) if inner != self.has_header && !self.has_header => {
                problems.push(TemplateProblem::new(
                    "/parser_config/has_header",
                    "parser_config.has_header contradicts has_header",
                ));
                inner
            }
            Some(inner) => inner,
            None => self.has_header,
        }
    }

    fn text_encoding(&self, problems: &mut Vec<TemplateProblem>) -> TextEncoding {
        match self.encoding.parse::<TextEncoding>() {
            Ok(encoding) => encoding,
            Err(error) => {
                problems.push(TemplateProblem::new("/encoding", error.to_string()));
                TextEncoding::Utf8
            }
        }
    }

    /// The JSON reader's options: `parser_config.mode` (`array`, the default, or `lines`),
    /// `parser_config.records_path` (array mode) and `encoding`, every problem at once.
    pub fn json_options(&self) -> Result<JsonOptions, Vec<TemplateProblem>> {
        let mut problems = self.top_level_csv_settings("JSON");
        problems
            .extend(self.foreign_settings("JSON", &["records_path", "mode", "max_record_bytes"]));
        let config = self.parser_config.clone().unwrap_or_default();
        let encoding = self.text_encoding(&mut problems);
        let mode = match config.mode.as_deref() {
            None | Some("array") => JsonMode::Array,
            Some("lines" | "jsonl" | "ndjson") => JsonMode::Lines,
            Some(other) => {
                problems.push(TemplateProblem::new(
                    "/parser_config/mode",
                    format!("mode must be 'array' or 'lines' (JSON Lines), not '{other}'"),
                ));
                JsonMode::Array
            }
        };
        let records_path = match (&config.records_path, mode) {
            (Some(_), JsonMode::Lines) => {
                problems.push(TemplateProblem::new(
                    "/parser_config/records_path",
                    "records_path applies to mode 'array'; in JSON Lines every line is a record",
                ));
                Vec::new()
            }
            (Some(path), JsonMode::Array) => match JsonOptions::parse_records_path(path) {
                Ok(keys) => keys,
                Err(problem) => {
                    problems.push(TemplateProblem::new("/parser_config/records_path", problem));
                    Vec::new()
                }
            },
            (None, _) => Vec::new(),
        };
        let defaults = JsonOptions::default();
        let max_record_bytes = config.max_record_bytes.unwrap_or(defaults.max_record_bytes);
        if problems.is_empty() {
            Ok(JsonOptions { mode, records_path, encoding, max_record_bytes })
        } else {
            Err(problems)
        }
    }

    /// The XML reader's options: `parser_config.record_tag` (required) and `namespaces`, and
    /// `encoding`, every problem at once.
    pub fn xml_options(&self) -> Result<XmlOptions, Vec<TemplateProblem>> {
        let mut problems = self.top_level_csv_settings("XML");
        problems.extend(
            self.foreign_settings("XML", &["record_tag", "namespaces", "max_record_bytes"]),
        );
        let config = self.parser_config.clone().unwrap_or_default();
        let encoding = self.text_encoding(&mut problems);
        let mut options = XmlOptions::new(config.record_tag.clone().unwrap_or_default());
        options.encoding = encoding;
        if let Some(max) = config.max_record_bytes {
            options.max_record_bytes = max as u64;
        }
        if config.record_tag.as_deref().is_none_or(str::is_empty) {
            problems.push(TemplateProblem::new(
                "/parser_config/record_tag",
                "XML files need parser_config.record_tag: the element that holds one record",
            ));
        }
        for (prefix, uri) in config.namespaces.iter().flatten() {
            match uri.as_str() {
                Some(uri) => {
                    options.namespaces.insert(prefix.clone(), uri.to_owned());
                }
                None => problems.push(TemplateProblem::new(
                    format!("/parser_config/namespaces/{prefix}"),
                    "a namespace is a URI string",
                )),
            }
        }
        if let Some((prefix, _)) = options.record_tag.split_once(':')
            && !options.namespaces.contains_key(prefix)
        {
            problems.push(TemplateProblem::new(
                "/parser_config/record_tag",
                format!("the prefix '{prefix}' is not defined in parser_config.namespaces"),
            ));
        }
        if problems.is_empty() { Ok(options) } else { Err(problems) }
    }

    /// The columns of a JSON or XML file: the mapped sources as paths into each record.
    pub fn object_columns(&self) -> Result<ObjectColumns, Vec<TemplateProblem>> {
        ObjectColumns::new(self.mapped_sources()).map_err(|problems| {
            problems
                .into_iter()
                .map(|p| TemplateProblem::new("/field_mapping", format!("source path {p}")))
                .collect()
        })
    }
}

impl Template {
    /// The fixed-width reader's options: one layout from `column_widths`, or a layout per record
    /// type from `parser_config.post_types` (with `record_type`, `strict_post_types`), and
    /// `encoding`, `skip_rows`, `parser_config.trim` and `max_record_bytes`; every problem at once.
    ///
    /// A fixed-width file has no header line: its column names come from the template
    /// (`has_header` does not apply; skip a title line with `skip_rows`).
    pub fn fixed_width_options(&self) -> Result<FixedWidthOptions, Vec<TemplateProblem>> {
        let mut problems = self.top_level_csv_settings("fixed-width");
        problems.extend(self.foreign_settings(
            "fixed-width",
            &["post_types", "strict_post_types", "record_type", "trim", "max_record_bytes"],
        ));
        let config = self.parser_config.clone().unwrap_or_default();
        let encoding = self.text_encoding(&mut problems);
        let layout = match (&config.post_types, self.column_widths.is_empty()) {
            (Some(_), false) => {
                problems.push(TemplateProblem::new(
                    "/column_widths",
                    "give either column_widths (one layout) or parser_config.post_types (a \
                     layout per record type), not both",
                ));
                None
            }
            (None, true) => {
                problems.push(TemplateProblem::new(
                    "/column_widths",
                    "fixed-width files need column_widths, or parser_config.post_types for files \
                     with record types",
                ));
                None
            }
            (None, false) => {
                if config.strict_post_types.is_some() || config.record_type.is_some() {
                    problems.push(TemplateProblem::new(
                        "/parser_config",
                        "strict_post_types and record_type apply to parser_config.post_types",
                    ));
                }
                Some(Layout::Single(fixed_columns(&self.column_widths, true)))
            }
            (Some(types), true) => {
                let types: Vec<PostType> = types
                    .iter()
                    .map(|(code, config)| PostType {
                        code: code.clone(),
                        name: config.name.clone(),
                        role: config.role,
                        columns: fixed_columns(&config.columns, false),
                    })
                    .collect();
                let (type_start, type_width) = match &config.record_type {
                    Some(position) => (position.start.saturating_sub(1), position.width),
                    None => {
                        let mut lengths = types.iter().map(|t| t.code.chars().count());
                        let first = lengths.next().unwrap_or(0);
                        if lengths.any(|length| length != first) {
                            problems.push(TemplateProblem::new(
                                "/parser_config/record_type",
                                "the post_types codes differ in length: give record_type \
                                 {\"start\": …, \"width\": …}",
                            ));
                        }
                        (0, first)
                    }
                };
                Some(Layout::PostTypes {
                    type_start,
                    type_width,
                    types,
                    strict_post_types: config.strict_post_types.unwrap_or(false),
                })
            }
        };
        let Some(layout) = layout else { return Err(problems) };
        let mut options = FixedWidthOptions::new(layout);
        options.encoding = encoding;
        options.skip_rows = self.skip_rows;
        options.trim = config.trim.unwrap_or_default();
        if let Some(max) = config.max_record_bytes {
            options.max_record_bytes = max;
        }
        let path = if config.post_types.is_some() {
            "/parser_config/post_types"
        } else {
            "/column_widths"
        };
        problems.extend(options.problems().into_iter().map(|p| TemplateProblem::new(path, p)));
        let columns = options.columns();
        for required in &self.required_columns {
            if !columns.contains(required) {
                problems.push(TemplateProblem::new(
                    "/required_columns",
                    format!("{required:?} is not a column of the fixed-width layout"),
                ));
            }
        }
        if problems.is_empty() { Ok(options) } else { Err(problems) }
    }
}

/// A template's column widths as the reader's columns; a bare width is a column named
/// `column_<position>` when `bare_is_named`, filler otherwise.
fn fixed_columns(widths: &[ColumnWidth], bare_is_named: bool) -> Vec<FixedColumn> {
    widths
        .iter()
        .enumerate()
        .map(|(index, width)| match width {
            ColumnWidth::Width(width) if bare_is_named => {
                FixedColumn::named(&format!("column_{}", index + 1), *width)
            }
            ColumnWidth::Width(width) => FixedColumn::filler(*width),
            ColumnWidth::Column(column) => {
                FixedColumn { name: column.name.clone(), width: column.width }
            }
        })
        .collect()
}

impl CryptoConfig {
    /// The problems of the OpenPGP settings: malformed credential references (an empty one
    /// included), `verify` without signers, and `signature_required` with nobody to verify.
    fn pgp_problems(&self) -> Vec<TemplateProblem> {
        let mut problems = Vec::new();
        let mut reference = |path: String, reference: &str| {
            if let Err(error) = crate::m2m::check_reference(reference) {
                problems.push(TemplateProblem::new(path, error.to_string()));
            }
        };
        if let Some(decrypt) = &self.decrypt {
            reference("/crypto/decrypt/secret_key".to_owned(), &decrypt.secret_key);
            if let Some(passphrase) = &decrypt.passphrase {
                reference("/crypto/decrypt/passphrase".to_owned(), passphrase);
            }
        }
        let signers = self.verify.as_ref().map_or(&[][..], |verify| verify.signers.as_slice());
        for (index, signer) in signers.iter().enumerate() {
            reference(format!("/crypto/verify/signers/{index}"), signer);
        }
        if self.verify.is_some() && signers.is_empty() {
            problems.push(TemplateProblem::new(
                "/crypto/verify/signers",
                "list at least one signer's certificate (a credential reference)",
            ));
        }
        if self.signature_required && signers.is_empty() {
            problems.push(TemplateProblem::new(
                "/crypto/signature_required",
                "signature_required needs crypto.verify.signers: the certificates whose \
                 signatures are accepted",
            ));
        }
        problems
    }
}

/// The byte of a one-character ASCII string; `\t` written out also means tab.
fn single_ascii(text: &str) -> Option<u8> {
    match text.as_bytes() {
        [byte] if byte.is_ascii() => Some(*byte),
        b"\\t" => Some(b'\t'),
        _ => None,
    }
}
