//! Fixed-width (flat) files: every line is cut into columns by width, and in files with record
//! types (Bankgirot's BGMax, bank statements, payroll files) the type code at a fixed position of
//! each line chooses its layout.
//!
//! Rules:
//! - Widths count characters of the decoded text (for the single-byte encodings these are
//!   bytes). A line shorter than its layout leaves the missing columns empty (trailing blanks are
//!   often stripped in transit); text beyond the layout must be blank, otherwise the line is
//!   rejected rather than silently cut.
//! - Values are trimmed of surrounding whitespace by default ([`Trim`]).
//! - Blank lines are not records. Line numbers are physical lines, counted from 1, so an
//!   operator finds the line in any editor.
//! - With record types ([`Layout::PostTypes`]), each type has a [`PostRole`]:
//!   - `record` lines become records; every record has the column `post_type` (the type's name)
//!     and the columns of all record and continuation types, empty where its type has none.
//!   - `continuation` lines add their columns to the record before them (BGMax name, address and
//!     information records belong to the payment before them); a continuation type that repeats
//!     for one record joins its values with a line break. A continuation with no record before it
//!     is rejected.
//!   - `header` and `trailer` lines are not records: they are kept as [`ControlRecord`]s, so that
//!     cross-row rules can compare control totals and counts with the records.
//!   - `ignore` lines are read past.
//!   - A line whose type is not configured is rejected with [`strict_post_types`](Layout) and
//!     skipped (and counted) without.

use std::collections::VecDeque;
use std::io::{self, Read};

use serde::Serialize;

use crate::Record;
use crate::csv::{ReadOutcome, RowParseError, RowParseErrorKind};
use crate::encoding::{DecodingReader, EncodingError, TextEncoding};
use crate::lines::{Line, LineReader, excerpt};

/// The name of the column that holds each record's type name in a file with record types.
pub const POST_TYPE_COLUMN: &str = "post_type";

/// The most header and trailer records a file may have: they are kept in memory for the
/// cross-row rules.
pub const MAX_CONTROL_RECORDS: usize = 100_000;

/// One column of a layout: its width in characters and its name; a column without a name is a
/// filler that is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedColumn {
    /// The column name, or `None` for filler.
    pub name: Option<String>,
    /// Width in characters, at least 1.
    pub width: usize,
}

impl FixedColumn {
    /// A named column.
    pub fn named(name: &str, width: usize) -> Self {
        Self { name: Some(name.to_owned()), width }
    }

    /// A filler of `width` characters.
    pub fn filler(width: usize) -> Self {
        Self { name: None, width }
    }
}

/// What the lines of one record type are.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PostRole {
    /// Each line is a record (the default).
    #[default]
    Record,
    /// Each line adds its columns to the record before it.
    Continuation,
    /// A control record before the records it describes (file or section opening).
    Header,
    /// A control record after the records it describes (section or file totals).
    Trailer,
    /// Lines that are read past.
    Ignore,
}

/// One record type of a file with record types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostType {
    /// The code at the type position, e.g. `20`.
    pub code: String,
    /// The name records of this type carry in `post_type`, e.g. `payment`.
    pub name: String,
    /// What its lines are.
    pub role: PostRole,
    /// The whole line's layout, from its first character (the type code included, usually as
    /// filler).
    pub columns: Vec<FixedColumn>,
}

/// How the lines of a file are cut into columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Every line has the same columns.
    Single(Vec<FixedColumn>),
    /// The type code at `type_start` (0-based character), `type_width` characters long, chooses
    /// the layout of each line.
    PostTypes {
        /// Where the type code starts (0-based, in characters).
        type_start: usize,
        /// How long the type code is.
        type_width: usize,
        /// The types.
        types: Vec<PostType>,
        /// Whether a line of an unknown type is rejected (`true`) or skipped.
        strict_post_types: bool,
    },
}

/// Which whitespace is trimmed from values.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Trim {
    /// Leading and trailing (the default).
    #[default]
    Both,
    /// Trailing only (leading blanks or zeros are kept).
    End,
    /// Nothing: values are exactly the characters of the column.
    None,
}

/// The options of a [`FixedWidthReader`], built by the engine from a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedWidthOptions {
    /// How lines are cut.
    pub layout: Layout,
    /// The declared encoding; a byte order mark in the file wins.
    pub encoding: TextEncoding,
    /// Physical lines skipped before the first record, whatever they hold.
    pub skip_rows: u64,
    /// Which whitespace is trimmed from values.
    pub trim: Trim,
    /// A line may be at most this many bytes (decoded, line ending excluded).
    pub max_record_bytes: usize,
}

impl FixedWidthOptions {
    /// Options for `layout` with the defaults: UTF-8, no skipped lines, values trimmed, lines
    /// up to 1 MiB.
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            encoding: TextEncoding::Utf8,
            skip_rows: 0,
            trim: Trim::Both,
            max_record_bytes: 1 << 20,
        }
    }

    /// The record columns these options produce (see [`FixedWidthReader::columns`]).
    pub fn columns(&self) -> Vec<String> {
        compile(&self.layout).0
    }

    /// Every problem with these options, in words; empty when they are usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.layout {
            Layout::Single(columns) => problems.extend(column_problems("the layout", columns)),
            Layout::PostTypes { type_width, types, .. } => {
                for post_type in types {
                    let what = format!("post type {:?}", post_type.code);
                    problems.extend(column_problems(&what, &post_type.columns));
                    if post_type.code.chars().count() != *type_width {
                        problems.push(format!(
                            "post type {:?}: the code must be {type_width} character(s) long, \
                             like the record type position",
                            post_type.code
                        ));
                    }
                }
                problems.extend(post_type_problems(types));
            }
        }
        if self.max_record_bytes == 0 {
            problems.push("max_record_bytes must be at least 1".to_owned());
        }
        problems
    }
}

/// Problems of one layout's columns (`what` names the layout).
fn column_problems(what: &str, columns: &[FixedColumn]) -> Vec<String> {
    let mut problems = Vec::new();
    if columns.is_empty() {
        problems.push(format!("{what} has no columns"));
    }
    if columns.iter().any(|c| c.width == 0) {
        problems.push(format!("{what}: every column width must be at least 1"));
    }
    let mut seen = Vec::new();
    for name in columns.iter().filter_map(|c| c.name.as_deref()) {
        if seen.contains(&name) {
            problems.push(format!("{what}: the column name {name:?} is used twice"));
        }
        seen.push(name);
    }
    problems
}

/// Problems of a set of record types that no single type shows.
fn post_type_problems(types: &[PostType]) -> Vec<String> {
    let mut problems = Vec::new();
    if types.is_empty() {
        problems.push("post_types is empty".to_owned());
    }
    if !types.iter().any(|t| t.role == PostRole::Record) {
        problems
            .push("no post type has the role 'record', so the file would have no records".into());
    }
    for (i, post_type) in types.iter().enumerate() {
        if types[..i].iter().any(|t| t.code == post_type.code) {
            problems.push(format!("the post type code {:?} is used twice", post_type.code));
        }
        if types[..i].iter().any(|t| t.name == post_type.name) {
            problems.push(format!("the post type name {:?} is used twice", post_type.name));
        }
        let names = post_type.columns.iter().filter_map(|c| c.name.as_deref());
        for name in names {
            if name == POST_TYPE_COLUMN
                && matches!(post_type.role, PostRole::Record | PostRole::Continuation)
            {
                problems.push(format!(
                    "post type {:?}: the column name {POST_TYPE_COLUMN:?} is reserved for the \
                     record's type name",
                    post_type.code
                ));
            }
            if post_type.role == PostRole::Continuation
                && types.iter().any(|t| t.role == PostRole::Record && t.has_column(name))
            {
                problems.push(format!(
                    "post type {:?}: the continuation column {name:?} is also a column of a \
                     record type; a continuation would overwrite it",
                    post_type.code
                ));
            }
        }
    }
    problems
}

impl PostType {
    fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name.as_deref() == Some(name))
    }
}

/// A header or trailer line, kept for the cross-row rules (control totals and counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlRecord {
    /// The type's name, e.g. `deposit`.
    pub post_type: String,
    /// `header` or `trailer`.
    pub role: PostRole,
    /// The physical line.
    pub row_number: u64,
    /// Its named columns, in layout order.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Why a fixed-width file could not be read at all. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum FixedWidthFileError {
    /// Reading failed.
    #[error("{file}: could not read the file: {error}")]
    Io {
        /// The file.
        file: String,
        /// The error from the reader.
        #[source]
        error: io::Error,
    },
    /// The text encoding cannot be used on this file.
    #[error("{file}: {error}")]
    Encoding {
        /// The file.
        file: String,
        /// What is wrong.
        error: EncodingError,
    },
    /// The options cannot read any file.
    #[error("{file}: the fixed-width options are not usable: {}", .problems.join("; "))]
    InvalidOptions {
        /// The file.
        file: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// More header and trailer lines than can be kept.
    #[error(
        "{file}: more than {MAX_CONTROL_RECORDS} header and trailer lines (at line {row_number}): \
         check the post_types roles"
    )]
    TooManyControlRecords {
        /// The file.
        file: String,
        /// The line where the limit was passed.
        row_number: u64,
    },
}

/// A layout compiled for cutting lines: for each column, where it starts, how wide it is and
/// which output cell (record column or control field) it fills.
#[derive(Debug, Clone)]
struct Cuts {
    cuts: Vec<Cut>,
    /// Characters covered by the layout.
    width: usize,
}

#[derive(Debug, Clone)]
struct Cut {
    start: usize,
    width: usize,
    /// Index into the reader's columns (record and continuation types) or into the type's
    /// field names (header and trailer types).
    slot: usize,
}

#[derive(Debug, Clone)]
struct CompiledType {
    code: String,
    name: String,
    role: PostRole,
    cuts: Cuts,
    /// Header and trailer types: the field names, by slot.
    field_names: Vec<String>,
}

/// What reading on produced, queued: a line can end the record before it and be rejected itself.
enum Pending {
    Record(Record),
    Rejected(RowParseError),
}

/// Reads the records of one fixed-width file, streaming.
pub struct FixedWidthReader<R: Read> {
    file: String,
    lines: LineReader<R>,
    options: FixedWidthOptions,
    columns: Vec<String>,
    types: Vec<CompiledType>,
    /// The record being built (continuations may still follow), as cells by column.
    open: Option<(u64, Vec<String>)>,
    ready: VecDeque<Pending>,
    control_records: Vec<ControlRecord>,
    skipped_lines: u64,
    ended: bool,
    /// The byte offset of each character of the current line (reused between lines).
    boundaries: Vec<usize>,
}

impl<R: Read> FixedWidthReader<R> {
    /// Opens `input` (named `file` in errors): checks the options and skips `skip_rows` lines.
    pub fn new(
        file: &str,
        input: R,
        options: FixedWidthOptions,
    ) -> Result<Self, FixedWidthFileError> {
        let problems = options.problems();
        if !problems.is_empty() {
            return Err(FixedWidthFileError::InvalidOptions { file: file.to_owned(), problems });
        }
        let decoded = DecodingReader::new(input, options.encoding)
            .map_err(|error| FixedWidthFileError::Encoding { file: file.to_owned(), error })?;
        let (columns, types) = compile(&options.layout);
        let mut reader = Self {
            file: file.to_owned(),
            lines: LineReader::new(decoded, options.max_record_bytes),
            options,
            columns,
            types,
            open: None,
            ready: VecDeque::new(),
            control_records: Vec::new(),
            skipped_lines: 0,
            ended: false,
            boundaries: Vec::new(),
        };
        for _ in 0..reader.options.skip_rows {
            let line = reader.lines.next_line();
            if line
                .map_err(|error| FixedWidthFileError::Io { file: file.to_owned(), error })?
                .is_none()
            {
                break;
            }
        }
        Ok(reader)
    }

    /// The record columns: the layout's names (with record types: `post_type` first, then the
    /// columns of every record and continuation type).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The header and trailer records read so far (all of them once the end is reached).
    pub fn control_records(&self) -> &[ControlRecord] {
        &self.control_records
    }

    /// Lines of unknown record types that were skipped (without `strict_post_types`).
    pub fn skipped_lines(&self) -> u64 {
        self.skipped_lines
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.lines.bytes_read()
    }

    /// Reads the next record into `record`; a line that cannot be read comes back as
    /// [`ReadOutcome::Rejected`] and reading goes on after it.
    pub fn read_record(&mut self, record: &mut Record) -> Result<ReadOutcome, FixedWidthFileError> {
        loop {
            if let Some(pending) = self.ready.pop_front() {
                return Ok(match pending {
                    Pending::Record(ready) => {
                        *record = ready;
                        ReadOutcome::Record
                    }
                    Pending::Rejected(error) => ReadOutcome::Rejected(error),
                });
            }
            if self.ended {
                return Ok(ReadOutcome::End);
            }
            self.read_line()?;
        }
    }

    /// Reads one line, queueing what it completes.
    fn read_line(&mut self) -> Result<(), FixedWidthFileError> {
        let file = &self.file;
        // The line about to be read, if there is one.
        let row_number = self.lines.line_number() + 1;
        let line = self
            .lines
            .next_line()
            .map_err(|error| FixedWidthFileError::Io { file: file.clone(), error })?;
        let reject = |kind, text: &[u8]| {
            Pending::Rejected(RowParseError { row_number, kind, cells: vec![excerpt(text)] })
        };
        let text = match line {
            None => {
                self.ended = true;
                close(&mut self.open, &mut self.ready);
                return Ok(());
            }
            Some(Line::TooLong(start)) => {
                let kind =
                    RowParseErrorKind::RecordTooLarge { max_bytes: self.options.max_record_bytes };
                let rejected = reject(kind, start);
                close(&mut self.open, &mut self.ready);
                self.ready.push_back(rejected);
                return Ok(());
            }
            Some(Line::Text(bytes)) => match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(error) => {
                    let kind = RowParseErrorKind::InvalidUtf8 { byte_offset: error.valid_up_to() };
                    let rejected = reject(kind, bytes);
                    close(&mut self.open, &mut self.ready);
                    self.ready.push_back(rejected);
                    return Ok(());
                }
            },
        };
        if text.trim().is_empty() {
            return Ok(());
        }
        fill_char_boundaries(&mut self.boundaries, text);
        let boundaries = &self.boundaries;
        let char_count = boundaries.len() - 1;
        let type_index = match &self.options.layout {
            Layout::Single(_) => 0,
            Layout::PostTypes { type_start, type_width, strict_post_types, .. } => {
                let code = cut(text, boundaries, *type_start, *type_width);
                match self.types.iter().position(|t| t.code == code) {
                    Some(index) => index,
                    None if *strict_post_types => {
                        let kind = RowParseErrorKind::UnknownPostType {
                            start: *type_start + 1,
                            width: *type_width,
                        };
                        let rejected = Pending::Rejected(RowParseError {
                            row_number,
                            kind,
                            cells: vec![text.to_owned()],
                        });
                        close(&mut self.open, &mut self.ready);
                        self.ready.push_back(rejected);
                        return Ok(());
                    }
                    None => {
                        self.skipped_lines += 1;
                        return Ok(());
                    }
                }
            }
        };
        let post_type = &self.types[type_index];
        if char_count > post_type.cuts.width
            && !text[boundaries[post_type.cuts.width]..].trim().is_empty()
        {
            let kind = RowParseErrorKind::TextBeyondLayout {
                layout_width: post_type.cuts.width,
                line_width: char_count,
            };
            let rejected =
                Pending::Rejected(RowParseError { row_number, kind, cells: vec![text.to_owned()] });
            close(&mut self.open, &mut self.ready);
            self.ready.push_back(rejected);
            return Ok(());
        }
        let trim = self.options.trim;
        let value = |c: &Cut| trimmed(cut(text, boundaries, c.start, c.width), trim);
        match post_type.role {
            PostRole::Record => {
                close(&mut self.open, &mut self.ready);
                let mut cells = vec![String::new(); self.columns.len()];
                if matches!(self.options.layout, Layout::PostTypes { .. }) {
                    cells[0] = post_type.name.clone();
                }
                for c in &post_type.cuts.cuts {
                    cells[c.slot] = value(c).to_owned();
                }
                self.open = Some((row_number, cells));
            }
            PostRole::Continuation => match &mut self.open {
                Some((_, cells)) => {
                    for c in &post_type.cuts.cuts {
                        let cell = &mut cells[c.slot];
                        if !cell.is_empty() {
                            cell.push('\n');
                        }
                        cell.push_str(value(c));
                    }
                }
                None => {
                    let kind = RowParseErrorKind::OrphanContinuation;
                    self.ready.push_back(Pending::Rejected(RowParseError {
                        row_number,
                        kind,
                        cells: vec![text.to_owned()],
                    }));
                }
            },
            PostRole::Header | PostRole::Trailer => {
                let fields = post_type
                    .cuts
                    .cuts
                    .iter()
                    .map(|c| {
                        let name = post_type.field_names[c.slot].clone();
                        (name, serde_json::Value::String(value(c).to_owned()))
                    })
                    .collect();
                let control = ControlRecord {
                    post_type: post_type.name.clone(),
                    role: post_type.role,
                    row_number,
                    fields,
                };
                close(&mut self.open, &mut self.ready);
                if self.control_records.len() >= MAX_CONTROL_RECORDS {
                    return Err(FixedWidthFileError::TooManyControlRecords {
                        file: self.file.clone(),
                        row_number,
                    });
                }
                self.control_records.push(control);
            }
            PostRole::Ignore => {}
        }
        Ok(())
    }
}

/// Queues the record being built, if any: no more continuations can join it.
fn close(open: &mut Option<(u64, Vec<String>)>, ready: &mut VecDeque<Pending>) {
    if let Some((row_number, cells)) = open.take() {
        ready.push_back(Pending::Record(Record::from_cells(row_number, cells)));
    }
}

/// The record columns and the compiled types of a layout.
fn compile(layout: &Layout) -> (Vec<String>, Vec<CompiledType>) {
    match layout {
        Layout::Single(columns) => {
            let names: Vec<String> = columns.iter().filter_map(|c| c.name.clone()).collect();
            let cuts = cuts(columns, |name| names.iter().position(|n| n == name));
            let single = CompiledType {
                code: String::new(),
                name: String::new(),
                role: PostRole::Record,
                cuts,
                field_names: Vec::new(),
            };
            (names, vec![single])
        }
        Layout::PostTypes { types, .. } => {
            let mut names = vec![POST_TYPE_COLUMN.to_owned()];
            for post_type in types {
                if matches!(post_type.role, PostRole::Record | PostRole::Continuation) {
                    for name in post_type.columns.iter().filter_map(|c| c.name.as_ref()) {
                        if !names.contains(name) {
                            names.push(name.clone());
                        }
                    }
                }
            }
            let compiled = types
                .iter()
                .map(|post_type| {
                    let field_names: Vec<String> =
                        post_type.columns.iter().filter_map(|c| c.name.clone()).collect();
                    let cuts = match post_type.role {
                        PostRole::Record | PostRole::Continuation => {
                            cuts(&post_type.columns, |name| names.iter().position(|n| n == name))
                        }
                        _ => cuts(&post_type.columns, |name| {
                            field_names.iter().position(|n| n == name)
                        }),
                    };
                    CompiledType {
                        code: post_type.code.clone(),
                        name: post_type.name.clone(),
                        role: post_type.role,
                        cuts,
                        field_names,
                    }
                })
                .collect();
            (names, compiled)
        }
    }
}

fn cuts(columns: &[FixedColumn], slot_of: impl Fn(&str) -> Option<usize>) -> Cuts {
    let mut start = 0;
    let mut cuts = Vec::new();
    for column in columns {
        if let Some(slot) = column.name.as_deref().and_then(&slot_of) {
            cuts.push(Cut { start, width: column.width, slot });
        }
        start += column.width;
    }
    Cuts { cuts, width: start }
}

/// Fills `boundaries` with the byte offset of every character of `text`, and its length last.
fn fill_char_boundaries(boundaries: &mut Vec<usize>, text: &str) {
    boundaries.clear();
    boundaries.extend(text.char_indices().map(|(i, _)| i));
    boundaries.push(text.len());
}

/// Characters `start..start + width` of `text` (fewer, or none, past its end).
fn cut<'a>(text: &'a str, boundaries: &[usize], start: usize, width: usize) -> &'a str {
    let last = boundaries.len() - 1;
    let from = boundaries[start.min(last)];
    let to = boundaries[(start + width).min(last)];
    &text[from..to]
}

fn trimmed(value: &str, trim: Trim) -> &str {
    match trim {
        Trim::Both => value.trim(),
        Trim::End => value.trim_end(),
        Trim::None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str, options: FixedWidthOptions) -> (Vec<String>, Vec<ControlRecord>) {
        let mut reader = FixedWidthReader::new("t.txt", text.as_bytes(), options).unwrap();
        let mut record = Record::new();
        let mut out = Vec::new();
        loop {
            match reader.read_record(&mut record).unwrap() {
                ReadOutcome::End => break,
                ReadOutcome::Record => out.push(format!(
                    "{}: {}",
                    record.row_number(),
                    record.cells().collect::<Vec<_>>().join("|")
                )),
                ReadOutcome::Rejected(error) => {
                    out.push(format!("{}: rejected {}", error.row_number, error.kind.rule()))
                }
            }
        }
        (out, reader.control_records().to_vec())
    }

    fn single() -> FixedWidthOptions {
        FixedWidthOptions::new(Layout::Single(vec![
            FixedColumn::named("id", 3),
            FixedColumn::filler(1),
            FixedColumn::named("name", 5),
        ]))
    }

    fn typed(strict: bool) -> FixedWidthOptions {
        let post_type = |code: &str, name: &str, role, columns| PostType {
            code: code.into(),
            name: name.into(),
            role,
            columns,
        };
        FixedWidthOptions::new(Layout::PostTypes {
            type_start: 0,
            type_width: 2,
            strict_post_types: strict,
            types: vec![
                post_type(
                    "01",
                    "opening",
                    PostRole::Header,
                    vec![FixedColumn::filler(2), FixedColumn::named("date", 8)],
                ),
                post_type(
                    "20",
                    "payment",
                    PostRole::Record,
                    vec![FixedColumn::filler(2), FixedColumn::named("amount", 5)],
                ),
                post_type(
                    "26",
                    "name",
                    PostRole::Continuation,
                    vec![FixedColumn::filler(2), FixedColumn::named("payer", 6)],
                ),
                post_type(
                    "70",
                    "closing",
                    PostRole::Trailer,
                    vec![FixedColumn::filler(2), FixedColumn::named("count", 3)],
                ),
            ],
        })
    }

    #[test]
    fn a_single_layout_cuts_by_width_trims_and_pads_short_lines() {
        let (rows, _) = read_all("  1 Anna \n002xBo\n\n3\n", single());
        assert_eq!(rows, vec!["1: 1|Anna", "2: 002|Bo", "4: 3|"]);
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let (rows, _) = read_all("001 Åsa Ö\n", single());
        assert_eq!(rows, vec!["1: 001|Åsa Ö"]);
    }

    #[test]
    fn text_past_the_layout_rejects_the_line_but_blanks_do_not() {
        let (rows, _) = read_all("001 Anna     \n002 Bertil\n", single());
        assert_eq!(rows, vec!["1: 001|Anna", "2: rejected text_beyond_layout"]);
    }

    #[test]
    fn record_types_choose_layouts_and_continuations_join_the_record_before() {
        let text = "0120261123\n2000100\n26Anna\n26Berg\n2000250\n7002 \n";
        let (rows, control) = read_all(text, typed(true));
        assert_eq!(rows, vec!["2: payment|00100|Anna\nBerg", "5: payment|00250|"]);
        assert_eq!(control.len(), 2);
        assert_eq!(control[0].post_type, "opening");
        assert_eq!(control[0].fields["date"], "20261123");
        assert_eq!((control[1].role, control[1].row_number), (PostRole::Trailer, 6));
        assert_eq!(control[1].fields["count"], "02");
    }

    #[test]
    fn unknown_types_are_rejected_when_strict_and_skipped_otherwise() {
        let text = "2000100\n99whatever\n2000200\n";
        let (rows, _) = read_all(text, typed(true));
        assert_eq!(
            rows,
            vec!["1: payment|00100|", "2: rejected unknown_post_type", "3: payment|00200|"]
        );
        let mut reader = FixedWidthReader::new("t", text.as_bytes(), typed(false)).unwrap();
        let mut record = Record::new();
        let mut records = 0;
        while reader.read_record(&mut record).unwrap() != ReadOutcome::End {
            records += 1;
        }
        assert_eq!((records, reader.skipped_lines()), (2, 1));
    }

    #[test]
    fn a_continuation_without_a_record_is_rejected() {
        let (rows, _) = read_all("0120261123\n26Anna\n", typed(true));
        assert_eq!(rows, vec!["2: rejected orphan_continuation"]);
    }

    #[test]
    fn invalid_utf8_rejects_only_its_line() {
        let mut text = b"001 Anna\n".to_vec();
        text.extend_from_slice(b"002 B\xffo\n003 Cia\n");
        let mut reader = FixedWidthReader::new("t", text.as_slice(), single()).unwrap();
        let mut record = Record::new();
        let mut kinds = Vec::new();
        loop {
            match reader.read_record(&mut record).unwrap() {
                ReadOutcome::End => break,
                ReadOutcome::Record => kinds.push(format!("{} ok", record.row_number())),
                ReadOutcome::Rejected(e) => {
                    kinds.push(format!("{} {}", e.row_number, e.kind.rule()))
                }
            }
        }
        assert_eq!(kinds, vec!["1 ok", "2 invalid_encoding", "3 ok"]);
    }

    #[test]
    fn latin1_files_are_decoded_first() {
        let mut options = single();
        options.encoding = TextEncoding::Iso8859_1;
        let (rows, _) = read_all_bytes(b"001 \xc5sa\n", options);
        assert_eq!(rows, vec!["1: 001|Åsa"]);
    }

    fn read_all_bytes(bytes: &[u8], options: FixedWidthOptions) -> (Vec<String>, usize) {
        let mut reader = FixedWidthReader::new("t", bytes, options).unwrap();
        let mut record = Record::new();
        let mut out = Vec::new();
        while reader.read_record(&mut record).unwrap() == ReadOutcome::Record {
            out.push(format!(
                "{}: {}",
                record.row_number(),
                record.cells().collect::<Vec<_>>().join("|")
            ));
        }
        (out, reader.control_records().len())
    }

    #[test]
    fn bad_options_are_all_named() {
        let options = FixedWidthOptions::new(Layout::PostTypes {
            type_start: 0,
            type_width: 2,
            strict_post_types: true,
            types: vec![
                PostType {
                    code: "1".into(),
                    name: "a".into(),
                    role: PostRole::Header,
                    columns: vec![FixedColumn::named("x", 0)],
                },
                PostType {
                    code: "02".into(),
                    name: "a".into(),
                    role: PostRole::Continuation,
                    columns: vec![FixedColumn::named("post_type", 1)],
                },
            ],
        });
        let problems = options.problems().join("\n");
        for expected in [
            "at least 1",
            "2 character(s)",
            "name \"a\" is used twice",
            "no post type has the role 'record'",
            "reserved",
        ] {
            assert!(problems.contains(expected), "{expected} not in {problems}");
        }
    }
}
