//! Reading a template from JSON and checking it completely before anything runs.
//!
//! Three passes, each reporting every problem it finds with a JSON path: the template's own JSON
//! Schema (structure, types, unknown fields), serde (the Rust types, with a path for anything the
//! schema let through), and the semantic checks that need the parsed template (options that must
//! agree, rules and schemas that must compile). No I/O happens here.

use std::fmt;

use intake_parsers::csv::CsvOptions;
use intake_parsers::encoding::TextEncoding;
use serde_json::Value;
use thiserror::Error;

use super::{Format, ImportMode, PostProcessPolicy, Template};

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
        problems.push(TemplateProblem::new(serde_pointer(error.path()), error.inner().to_string()));
    }
    let from_schema: Vec<_> = schema_problems(&document)
        .into_iter()
        // The serde message for the same place is the more precise one.
        .filter(|p| !problems.iter().any(|q: &TemplateProblem| q.path == p.path))
        .collect();
    problems.extend(from_schema);
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
            .map(|e| TemplateProblem::new(e.instance_path().as_str(), e.to_string()))
            .collect(),
        Err(error) => {
            vec![TemplateProblem::new("/", format!("internal: template schema: {error}"))]
        }
    }
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
        if !self.mapping.is_empty() && !self.field_mapping.is_empty() {
            problems.push(TemplateProblem::new(
                "/field_mapping",
                "give either `mapping` or the legacy `field_mapping`, not both",
            ));
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
        let mut problems = Vec::new();
        let config = self.parser_config.clone().unwrap_or_default();
        for (field, set) in [
            ("records_path", config.records_path.is_some()),
            ("mode", config.mode.is_some()),
            ("record_tag", config.record_tag.is_some()),
            ("namespaces", config.namespaces.is_some()),
            ("post_types", config.post_types.is_some()),
            ("strict_post_types", config.strict_post_types.is_some()),
        ] {
            if set {
                problems.push(TemplateProblem::new(
                    format!("/parser_config/{field}"),
                    "this option is for another format; this template reads CSV",
                ));
            }
        }
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
        let has_header = match config.has_header {
            Some(inner) if inner != self.has_header && !self.has_header => {
                problems.push(TemplateProblem::new(
                    "/parser_config/has_header",
                    "parser_config.has_header contradicts has_header",
                ));
                inner
            }
            Some(inner) => inner,
            None => self.has_header,
        };
        let encoding = match self.encoding.parse::<TextEncoding>() {
            Ok(encoding) => Some(encoding),
            Err(error) => {
                problems.push(TemplateProblem::new("/encoding", error.to_string()));
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let defaults = CsvOptions::default();
        Ok(CsvOptions {
            delimiter: delimiter.unwrap_or(b','),
            quote,
            has_header,
            skip_rows: self.skip_rows,
            encoding: encoding.unwrap_or(defaults.encoding),
            required_columns: self.required_columns.clone(),
            max_record_lines: config.max_record_lines.unwrap_or(defaults.max_record_lines),
            max_record_bytes: config.max_record_bytes.unwrap_or(defaults.max_record_bytes),
        })
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
