//! The streaming CSV reader: the bytes of a delimited text file in, numbered [`Record`]s out.
//!
//! [`CsvReader`] reads a file of any size in bounded memory (its buffers grow to at most a few
//! times [`CsvOptions::max_record_bytes`], whatever the file size) and without allocating per
//! record: the caller hands in one [`Record`] and it is refilled for every record.
//!
//! How a file is read:
//! - Text is decoded by [`DecodingReader`] (see [`crate::encoding`] for the encoding and byte
//!   order mark rules). UTF-8 is not transcoded; a record with invalid UTF-8 is rejected on its
//!   own ([`RowParseErrorKind::InvalidUtf8`]) and reading goes on.
//! - A *physical line* ends at `\n`, `\r\n` or a lone `\r`. Row numbers are the 1-based physical
//!   line where a record starts, counted from the start of the file (after any byte order mark)
//!   and including skipped rows, the header, blank lines and the extra lines of quoted fields
//!   that contain line breaks.
//! - Blank lines (nothing but the line ending) between records are skipped: they are not
//!   records, but they are counted for row numbers. A final line without a line ending is a
//!   record like any other.
//! - Quoted fields may contain the delimiter, doubled quotes (`""`) and line breaks (which are
//!   kept as they are in the file). With `quote: None` quotes are ordinary data.
//! - Every record must have as many fields as there are columns (the header's, or the first
//!   record's when there is no header); other records are rejected one by one
//!   ([`RowParseErrorKind::WrongFieldCount`]).
//! - A quote that is never closed does not swallow the rest of the file. Lines are fed to the
//!   parser one at a time; when a record is still inside a quoted field after
//!   [`CsvOptions::max_record_lines`] lines or [`CsvOptions::max_record_bytes`] bytes, at the end
//!   of the file, or when a record that ran over several lines turns out to have the wrong
//!   number of fields or a closing quote followed by more data (the tell-tales of a missing
//!   closing quote that a later field's opening quote happened to close), the record is rejected as [`RowParseErrorKind::UnterminatedQuote`] at the line it
//!   started on, and the lines after that first line are parsed again as new records.
//!
//! What it is not: it does not map or validate values, and it does not know about templates;
//! the engine builds [`CsvOptions`] from a template.

use std::collections::VecDeque;
use std::io::{self, Read};

use csv_core::ReadRecordResult;

use crate::encoding::{DecodingReader, EncodingError, TextEncoding};
use crate::record::Record;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

/// The size of the read buffer a reader starts with.
const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;

/// How many rejected records, at the start of a file without a header, are held back while
/// looking for the first record whose field count can be trusted.
const MAX_HELD_BACK_REJECTIONS: usize = 16;

/// At most this many bytes of an over-long line are kept in its rejection, for the operator.
const TOO_LARGE_EXCERPT_BYTES: usize = 1024;

/// The runtime options of a [`CsvReader`], built by the engine from a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field delimiter, an ASCII byte other than `\r` and `\n` (`,`, `;`, `\t`, `|`, …).
    pub delimiter: u8,
    /// The quote character, an ASCII byte other than the delimiter, `\r` and `\n`; `None` turns
    /// quoting off, so quotes are ordinary data.
    pub quote: Option<u8>,
    /// Whether the first record (after `skip_rows`) holds the column names.
    pub has_header: bool,
    /// Physical lines skipped before the header (or before the data when there is no header),
    /// whatever they contain.
    pub skip_rows: u64,
    /// The declared encoding; a byte order mark in the file wins.
    pub encoding: TextEncoding,
    /// Columns that must be present; the file is refused when any is missing.
    pub required_columns: Vec<String>,
    /// A quoted field may span at most this many physical lines (at least 1).
    pub max_record_lines: usize,
    /// A record may be at most this many bytes of (decoded) text, line endings included (at
    /// least 1).
    pub max_record_bytes: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: Some(b'"'),
            has_header: true,
            skip_rows: 0,
            encoding: TextEncoding::Utf8,
            required_columns: Vec::new(),
            max_record_lines: 1000,
            max_record_bytes: 1 << 20,
        }
    }
}

impl CsvOptions {
    /// Every problem with these options, in words; empty when they are usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.delimiter.is_ascii() || matches!(self.delimiter, b'\r' | b'\n') {
            problems.push(format!(
                "the delimiter must be one ASCII character other than a line break, not byte {:#04x}",
                self.delimiter
            ));
        }
        if let Some(quote) = self.quote {
            if !quote.is_ascii() || matches!(quote, b'\r' | b'\n') {
                problems.push(format!(
                    "the quote must be one ASCII character other than a line break, not byte {quote:#04x}"
                ));
            } else if quote == self.delimiter {
                problems.push(format!(
                    "the quote and the delimiter are the same character ({:?})",
                    char::from(quote)
                ));
            }
        }
        if self.max_record_lines == 0 {
            problems.push("max_record_lines must be at least 1".to_owned());
        }
        if self.max_record_bytes == 0 {
            problems.push("max_record_bytes must be at least 1".to_owned());
        }
        problems
    }

    fn parser(&self) -> csv_core::Reader {
        let mut builder = csv_core::ReaderBuilder::new();
        builder.delimiter(self.delimiter);
        match self.quote {
            Some(quote) => builder.quote(quote),
            None => builder.quoting(false),
        };
        builder.build()
    }
}

/// What [`CsvReader::read_record`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The caller's [`Record`] now holds the next record.
    Record,
    /// The next record could not be read; it becomes a rejected record and reading can go on.
    Rejected(RowParseError),
    /// There are no more records.
    End,
}

/// A record that could not be read, as data: the engine turns it into a rejected record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {row_number}: {kind}")]
pub struct RowParseError {
    /// The physical line (1-based) where the record starts.
    pub row_number: u64,
    /// What is wrong with it.
    pub kind: RowParseErrorKind,
    /// What was read, for the operator to see and correct: the record's fields (with U+FFFD for
    /// bytes that are not UTF-8); for [`RowParseErrorKind::UnterminatedQuote`] the fields of the
    /// record's first line alone; for [`RowParseErrorKind::RecordTooLarge`] one cell with the
    /// first kilobyte of the line.
    pub cells: Vec<String>,
}

/// What is wrong with a record that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RowParseErrorKind {
    /// The record has more or fewer fields than the file has columns.
    #[error(
        "the record has {found} field(s) but the file has {expected} column(s): check for a \
         missing or extra delimiter, or a value containing the delimiter that should be quoted"
    )]
    WrongFieldCount {
        /// The number of columns.
        expected: usize,
        /// The number of fields in this record.
        found: usize,
    },
    /// A quoted field opened in this record has no closing quote (within the limits).
    #[error(
        "a quoted value in this record has no closing quote (read on for {lines} line(s) \
         without finding one that fits): add the missing closing quote, or double a quote \
         that belongs to the value (\"\")"
    )]
    UnterminatedQuote {
        /// The physical lines read, from the record's first line, before giving up.
        lines: usize,
    },
    /// The record's bytes are not UTF-8.
    #[error(
        "the record is not valid UTF-8 at byte {byte_offset} (counting from 0): check the \
         template's encoding (is the file windows-1252 or iso-8859-1?)"
    )]
    InvalidUtf8 {
        /// The offset of the first invalid byte from the start of the record's first line.
        byte_offset: usize,
    },
    /// One line of the file is longer than the record size limit.
    #[error(
        "the line is longer than {max_bytes} bytes (the template's max_record_bytes): check \
         the delimiter and the line endings, or raise the limit"
    )]
    RecordTooLarge {
        /// The limit, in bytes.
        max_bytes: usize,
    },
    /// A line of a JSON Lines file is not valid JSON.
    #[error("the line is not valid JSON: check quotes, commas and brackets")]
    InvalidJson,
    /// A record of a JSON or JSON Lines file is not an object.
    #[error("the record is a JSON {found}, not an object with named fields")]
    NotAnObject {
        /// What it is instead (`array`, `number`, …).
        found: &'static str,
    },
    /// A cell of a spreadsheet row holds an Excel error value (`#DIV/0!`, `#N/A`, …).
    #[error(
        "the cell in column {} holds the Excel error {error}: correct the formula or the value \
         in the workbook",
        crate::excel::column_letters(*.column)
    )]
    ExcelErrorCell {
        /// The 1-based column number (1 is column A).
        column: u32,
        /// The error as Excel shows it.
        error: &'static str,
    },
    /// A line of a fixed-width file has a record type the template's `post_types` do not list.
    #[error(
        "the record type in characters {start}–{} is not one of the template's post_types: \
         add the type to post_types, or turn strict_post_types off to skip such lines",
        .start + .width - 1
    )]
    UnknownPostType {
        /// The 1-based character where the type code starts.
        start: usize,
        /// Its width.
        width: usize,
    },
    /// A line of a fixed-width file has text past the end of its layout.
    #[error(
        "the line is {line_width} characters long and has text after character {layout_width}, \
         where its layout ends: check the column widths"
    )]
    TextBeyondLayout {
        /// The characters the layout covers.
        layout_width: usize,
        /// The characters of the line.
        line_width: usize,
    },
    /// A continuation line of a fixed-width file has no record before it to belong to.
    #[error(
        "this continuation line has no record line before it to belong to: check the order of \
         the lines, or the roles in the template's post_types"
    )]
    OrphanContinuation,
}

impl RowParseErrorKind {
    /// The check that failed, as reports and rejected records name it.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::WrongFieldCount { .. } => "wrong_field_count",
            Self::UnterminatedQuote { .. } => "unterminated_quote",
            Self::InvalidUtf8 { .. } => "invalid_encoding",
            Self::RecordTooLarge { .. } => "record_too_large",
            Self::ExcelErrorCell { .. } => "excel_error_cell",
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject { .. } => "not_an_object",
            Self::UnknownPostType { .. } => "unknown_post_type",
            Self::TextBeyondLayout { .. } => "text_beyond_layout",
            Self::OrphanContinuation => "orphan_continuation",
        }
    }

    /// The message for an operator, in `locale` (the English text is the `Display` one).
    pub fn message(&self, locale: crate::Locale) -> String {
        match locale {
            crate::Locale::En => self.to_string(),
            crate::Locale::Sv => match *self {
                Self::WrongFieldCount { expected, found } => format!(
                    "raden har {found} fält men filen har {expected} kolumner: kontrollera om \
                     en avgränsare saknas eller är för mycket, eller om ett värde som innehåller \
                     avgränsaren borde ha citattecken"
                ),
                Self::UnterminatedQuote { lines } => format!(
                    "ett värde inom citattecken i raden avslutas aldrig (läste {lines} rad(er) \
                     framåt utan att hitta ett som passar): lägg till det avslutande \
                     citattecknet, eller dubblera ett citattecken som hör till värdet (\"\")"
                ),
                Self::InvalidUtf8 { byte_offset } => format!(
                    "raden är inte giltig UTF-8 vid byte {byte_offset} (räknat från 0): \
                     kontrollera mallens teckenkodning (är filen windows-1252 eller iso-8859-1?)"
                ),
                Self::RecordTooLarge { max_bytes } => format!(
                    "raden är längre än {max_bytes} byte (mallens max_record_bytes): kontrollera \
                     avgränsaren och radbrytningarna, eller höj gränsen"
                ),
                Self::InvalidJson => "raden är inte giltig JSON: kontrollera citattecken, \
                                      kommatecken och hakparenteser"
                    .to_owned(),
                Self::NotAnObject { found } => {
                    format!("posten är ett JSON-värde av typen {found}, inte ett objekt med fält")
                }
                Self::ExcelErrorCell { column, error } => format!(
                    "cellen i kolumn {} innehåller Excel-felet {error}: rätta formeln eller \
                     värdet i arbetsboken",
                    crate::excel::column_letters(column)
                ),
                Self::UnknownPostType { start, width } => format!(
                    "posttypen i tecken {start}–{} finns inte bland mallens post_types: lägg \
                     till typen i post_types, eller stäng av strict_post_types för att hoppa \
                     över sådana rader",
                    start + width - 1
                ),
                Self::TextBeyondLayout { layout_width, line_width } => format!(
                    "raden är {line_width} tecken lång och har text efter tecken \
                     {layout_width}, där dess layout slutar: kontrollera kolumnbredderna"
                ),
                Self::OrphanContinuation => "fortsättningsraden har ingen post före sig att \
                                             höra till: kontrollera radernas ordning, eller \
                                             rollerna i mallens post_types"
                    .to_owned(),
            },
        }
    }
}

/// Why a whole file could not be read. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CsvFileError {
    /// Reading the file failed.
    #[error("{source_name}: could not read the file: {source}")]
    Io {
        /// The file.
        source_name: String,
        /// The error from the reader.
        #[source]
        source: io::Error,
    },
    /// The options cannot be used to read any file.
    #[error("{source_name}: the CSV options are not usable: {}", .problems.join("; "))]
    InvalidOptions {
        /// The file.
        source_name: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The encoding is `utf-16` but the file has no byte order mark.
    #[error(
        "{source_name}: the encoding is utf-16 but the file has no byte order mark, so its \
         byte order is unknown: set the template's encoding to utf-16le or utf-16be"
    )]
    Utf16WithoutByteOrderMark {
        /// The file.
        source_name: String,
    },
    /// The header record could not be read.
    #[error("{source_name}: the header on line {row_number} cannot be read: {problem}")]
    BadHeader {
        /// The file.
        source_name: String,
        /// The physical line the header starts on.
        row_number: u64,
        /// What is wrong with it.
        problem: RowParseErrorKind,
    },
    /// Required columns are not in the file.
    #[error(
        "{source_name}: required column(s) {} missing; the file has {}",
        quoted_list(.missing),
        found_columns(.found)
    )]
    MissingColumns {
        /// Every required column that is missing.
        missing: Vec<String>,
        /// The columns the file has.
        found: Vec<String>,
        /// The file.
        source_name: String,
    },
    /// The header names a column more than once.
    #[error(
        "{source_name}: the header names column(s) {} more than once: column names must be \
         unique",
        quoted_list(.duplicates)
    )]
    DuplicateColumns {
        /// The file.
        source_name: String,
        /// Every name that appears more than once.
        duplicates: Vec<String>,
    },
    /// Unclosed quotes kept forcing the reader to re-read lines, far beyond the file's size.
    #[error(
        "{source_name}: quoted values keep running on without closing quotes (the last one \
         starting on line {row_number}); the quoting of this file looks broken: check the \
         template's quote character, or turn quoting off"
    )]
    UnbalancedQuotes {
        /// The file.
        source_name: String,
        /// The line of the last record rejected for an unclosed quote.
        row_number: u64,
    },
}

fn found_columns(found: &[String]) -> String {
    if found.is_empty() { "no columns (it is empty)".to_owned() } else { quoted_list(found) }
}

fn quoted_list(names: &[String]) -> String {
    names.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ")
}

/// A record that spans lines and is not complete yet; offsets are into the read buffer.
#[derive(Debug, Clone, Copy)]
struct OpenRecord {
    /// Where its first line starts.
    start: usize,
    /// Where its first line ends (where re-reading starts if it is rejected).
    first_line_end: usize,
    /// The physical line it starts on.
    start_line: u64,
    /// Physical lines fed so far.
    lines: usize,
}

/// What the line splitter found next.
enum LineEvent {
    /// A physical line `buf[start..end]`, line ending included when `terminated`.
    Line { start: usize, end: usize, terminated: bool },
    /// The line at `pos` is longer than `max_record_bytes`; nothing was consumed.
    TooLong,
    /// No more input.
    Eof,
}

/// An outcome read ahead while looking for the column count of a file without a header.
enum HeldBack {
    Record(Record),
    Rejected(RowParseError),
}

/// Reads the records of one CSV file, streaming; see the module docs for the rules.
pub struct CsvReader<R: Read> {
    source_name: String,
    input: DecodingReader<R>,
    options: CsvOptions,
    parser: csv_core::Reader,
    columns: Vec<String>,
    expected_fields: Option<usize>,
    /// Read buffer: `buf[..end]` holds data; lines before `pos` are done.
    buf: Vec<u8>,
    end: usize,
    pos: usize,
    /// How far past `pos` the line splitter has already looked without finding a line end.
    scanned: usize,
    eof: bool,
    /// The physical line number of the line at `pos`.
    line_no: u64,
    open: Option<OpenRecord>,
    /// Unescaped field bytes of the current record, and their end offsets.
    out: Vec<u8>,
    out_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    held_back: VecDeque<HeldBack>,
    /// Bytes parsed a second time after rejecting records with unclosed quotes.
    reread_bytes: u64,
}

impl<R: Read> CsvReader<R> {
    /// Opens a CSV file: checks the options, skips `skip_rows` lines, reads the header and
    /// checks the required columns (every missing one is named) and duplicate column names.
    ///
    /// `source_name` is the file name used in error messages.
    pub fn new(source_name: &str, reader: R, options: CsvOptions) -> Result<Self, CsvFileError> {
        Self::with_buffer_size(source_name, reader, options, DEFAULT_BUFFER_SIZE)
    }

    /// Like [`CsvReader::new`] with the initial size of the read buffer (and of the raw chunks
    /// when transcoding), so tests can split lines and characters across reads.
    pub(crate) fn with_buffer_size(
        source_name: &str,
        reader: R,
        options: CsvOptions,
        buffer_size: usize,
    ) -> Result<Self, CsvFileError> {
        let source_name = source_name.to_owned();
        let problems = options.problems();
        if !problems.is_empty() {
            return Err(CsvFileError::InvalidOptions { source_name, problems });
        }
        let input = match DecodingReader::with_chunk_size(reader, options.encoding, buffer_size) {
            Ok(input) => input,
            Err(EncodingError::Io(source)) => {
                return Err(CsvFileError::Io { source_name, source });
            }
            Err(EncodingError::Utf16WithoutByteOrderMark) => {
                return Err(CsvFileError::Utf16WithoutByteOrderMark { source_name });
            }
        };
        let mut reader = Self {
            source_name,
            input,
            parser: options.parser(),
            options,
            columns: Vec::new(),
            expected_fields: None,
            buf: vec![0; buffer_size.max(1)],
            end: 0,
            pos: 0,
            scanned: 0,
            eof: false,
            line_no: 1,
            open: None,
            out: vec![0; 1024],
            out_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            held_back: VecDeque::new(),
            reread_bytes: 0,
        };
        reader.skip_lines()?;
        if reader.options.has_header {
            reader.read_header()?;
        } else {
            reader.find_column_count()?;
        }
        if !reader.columns.is_empty() {
            reader.expected_fields = Some(reader.columns.len());
        }
        let missing: Vec<String> = reader
            .options
            .required_columns
            .iter()
            .filter(|required| !reader.columns.contains(required))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(CsvFileError::MissingColumns {
                source_name: reader.source_name,
                missing,
                found: reader.columns,
            });
        }
        Ok(reader)
    }

    /// Column names: the header's, or `column_1`..`column_N` when there is no header (N from
    /// the first record). Empty for an empty file.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Reads the next record into `record` (reused: its buffers are kept).
    ///
    /// A record that cannot be read comes back as [`ReadOutcome::Rejected`] and the next call
    /// goes on with the following record; `Err` means the file as a whole cannot be read on.
    pub fn read_record(&mut self, record: &mut Record) -> Result<ReadOutcome, CsvFileError> {
        if let Some(held) = self.held_back.pop_front() {
            return Ok(match held {
                HeldBack::Record(held) => {
                    *record = held;
                    ReadOutcome::Record
                }
                HeldBack::Rejected(error) => ReadOutcome::Rejected(error),
            });
        }
        self.next_outcome(record)
    }

    /// Bytes consumed from the underlying reader so far (for a progress bar).
    pub fn bytes_read(&self) -> u64 {
        self.input.bytes_read()
    }

    /// The encoding in effect: the declared one, or the one the byte order mark named.
    pub fn encoding(&self) -> TextEncoding {
        self.input.encoding()
    }

    fn skip_lines(&mut self) -> Result<(), CsvFileError> {
        for _ in 0..self.options.skip_rows {
            match self.next_line()? {
                LineEvent::Eof => break,
                LineEvent::Line { .. } => self.line_no += 1,
                LineEvent::TooLong => self.discard_line()?,
            }
        }
        Ok(())
    }

    fn read_header(&mut self) -> Result<(), CsvFileError> {
        let mut header = Record::new();
        match self.next_outcome(&mut header)? {
            ReadOutcome::End => {}
            ReadOutcome::Rejected(error) => {
                return Err(CsvFileError::BadHeader {
                    source_name: self.source_name.clone(),
                    row_number: error.row_number,
                    problem: error.kind,
                });
            }
            ReadOutcome::Record => {
                self.columns = header.cells().map(str::to_owned).collect();
                let mut duplicates: Vec<String> = Vec::new();
                for (index, name) in self.columns.iter().enumerate() {
                    if self.columns[..index].contains(name) && !duplicates.contains(name) {
                        duplicates.push(name.clone());
                    }
                }
                if !duplicates.is_empty() {
                    return Err(CsvFileError::DuplicateColumns {
                        source_name: self.source_name.clone(),
                        duplicates,
                    });
                }
            }
        }
        Ok(())
    }

    /// Without a header the column count is the first record's. Records rejected before it
    /// for reasons that hide their true field count (an unclosed quote, an over-long line) are
    /// held back and handed out first; if too many come, the first one's count is used.
    fn find_column_count(&mut self) -> Result<(), CsvFileError> {
        let count = loop {
            let mut first = Record::new();
            match self.next_outcome(&mut first)? {
                ReadOutcome::End => break self.first_held_back_count().unwrap_or(0),
                ReadOutcome::Record => {
                    let count = first.len();
                    self.held_back.push_back(HeldBack::Record(first));
                    break count;
                }
                ReadOutcome::Rejected(error) => {
                    let trusted = matches!(error.kind, RowParseErrorKind::InvalidUtf8 { .. });
                    let count = error.cells.len();
                    self.held_back.push_back(HeldBack::Rejected(error));
                    if trusted {
                        break count;
                    }
                    if self.held_back.len() >= MAX_HELD_BACK_REJECTIONS {
                        break self.first_held_back_count().unwrap_or(count);
                    }
                }
            }
        };
        self.columns = (1..=count).map(|n| format!("column_{n}")).collect();
        Ok(())
    }

    fn first_held_back_count(&self) -> Option<usize> {
        match self.held_back.front()? {
            HeldBack::Record(record) => Some(record.len()),
            HeldBack::Rejected(error) => Some(error.cells.len()),
        }
    }

    /// Parses the next record from the input.
    fn next_outcome(&mut self, record: &mut Record) -> Result<ReadOutcome, CsvFileError> {
        loop {
            let (start, end, terminated) = match self.next_line()? {
                LineEvent::Line { start, end, terminated } => (start, end, terminated),
                LineEvent::Eof => {
                    return match self.open.take() {
                        Some(open) => self.reject_open_record(open),
                        None => Ok(ReadOutcome::End),
                    };
                }
                LineEvent::TooLong => {
                    return match self.open.take() {
                        Some(open) => self.reject_open_record(open),
                        None => self.reject_long_line(),
                    };
                }
            };
            let line_number = self.line_no;
            self.line_no += 1;
            match &mut self.open {
                None => {
                    if matches!(self.buf[start], b'\n' | b'\r') {
                        continue; // a blank line
                    }
                    self.open = Some(OpenRecord {
                        start,
                        first_line_end: end,
                        start_line: line_number,
                        lines: 1,
                    });
                }
                Some(open) => {
                    open.lines += 1;
                    if end - open.start > self.options.max_record_bytes {
                        let open = *open;
                        self.open = None;
                        return self.reject_open_record(open);
                    }
                }
            }
            let complete = self.feed_line(start, end, terminated);
            let Some(open) = self.open.take() else {
                continue;
            };
            if complete {
                return self.finish_record(open, record);
            }
            if !terminated || open.lines >= self.options.max_record_lines {
                return self.reject_open_record(open);
            }
            self.open = Some(open);
        }
    }

    /// Feeds one physical line to the parser; true when it completed a record. A last line
    /// without a line ending is followed by one, so that a record still open after a fed line
    /// is always inside a quoted field.
    fn feed_line(&mut self, start: usize, end: usize, terminated: bool) -> bool {
        let Self { parser, buf, out, out_len, ends, ends_len, .. } = self;
        let line = &buf[start..end];
        feed(parser, line, out, out_len, ends, ends_len)
            || (!terminated && feed(parser, b"\n", out, out_len, ends, ends_len))
    }

    /// Turns the parsed fields of a complete record into a `Record` or a rejection.
    fn finish_record(
        &mut self,
        open: OpenRecord,
        record: &mut Record,
    ) -> Result<ReadOutcome, CsvFileError> {
        let found = self.ends_len;
        if open.lines > 1
            && (self.expected_fields.is_some_and(|expected| expected != found)
                || !self.strictly_quoted(&self.buf[open.start..self.pos]))
        {
            return self.reject_open_record(open);
        }
        let text = &self.out[..self.out_len];
        let ends = &self.ends[..self.ends_len];
        let outcome = match std::str::from_utf8(text) {
            Ok(text) if ends.iter().all(|&end| text.is_char_boundary(end)) => {
                match self.expected_fields {
                    Some(expected) if expected != found => ReadOutcome::Rejected(RowParseError {
                        row_number: open.start_line,
                        kind: RowParseErrorKind::WrongFieldCount { expected, found },
                        cells: lossy_cells(text.as_bytes(), ends),
                    }),
                    _ => {
                        record.fill(open.start_line, text, ends);
                        ReadOutcome::Record
                    }
                }
            }
            _ => {
                let raw = &self.buf[open.start..self.pos];
                let byte_offset = std::str::from_utf8(raw).err().map_or(0, |e| e.valid_up_to());
                ReadOutcome::Rejected(RowParseError {
                    row_number: open.start_line,
                    kind: RowParseErrorKind::InvalidUtf8 { byte_offset },
                    cells: lossy_cells(text, ends),
                })
            }
        };
        self.out_len = 0;
        self.ends_len = 0;
        Ok(outcome)
    }

    /// Whether every quoted field of `raw` (one record) is closed by a quote that is followed by
    /// the delimiter, a line break or the end. The parser itself is lenient (`"ab"c` reads as
    /// `abc`); a record that runs over several lines and is not strict was most likely "closed"
    /// by the opening quote of a later field after a closing quote went missing.
    fn strictly_quoted(&self, raw: &[u8]) -> bool {
        let Some(quote) = self.options.quote else {
            return true;
        };
        let delimiter = self.options.delimiter;
        let mut i = 0;
        let mut at_field_start = true;
        while i < raw.len() {
            let byte = raw[i];
            if at_field_start && byte == quote {
                // Inside a quoted field: find its closing quote.
                i += 1;
                loop {
                    match memchr::memchr(quote, &raw[i.min(raw.len())..]) {
                        None => return false,
                        Some(found) => {
                            i += found + 1;
                            if raw.get(i) == Some(&quote) {
                                i += 1; // a doubled quote
                                continue;
                            }
                            break;
                        }
                    }
                }
                match raw.get(i) {
                    None => return true,
                    Some(&next) if next == delimiter || next == b'\r' || next == b'\n' => {}
                    Some(_) => return false,
                }
                continue;
            }
            at_field_start = byte == delimiter || byte == b'\r' || byte == b'\n';
            i += 1;
        }
        true
    }

    /// Rejects a record whose quoted field does not close, and rewinds to the line after its
    /// first line so that the lines it swallowed are read again as records of their own.
    fn reject_open_record(&mut self, open: OpenRecord) -> Result<ReadOutcome, CsvFileError> {
        self.reread_bytes += (self.pos - open.first_line_end) as u64;
        let max_bytes = self.options.max_record_bytes as u64;
        if self.reread_bytes > 8 * self.input.bytes_read() + 8 * max_bytes {
            return Err(CsvFileError::UnbalancedQuotes {
                source_name: self.source_name.clone(),
                row_number: open.start_line,
            });
        }
        let first_line = &self.buf[open.start..open.first_line_end];
        let cells = parse_line_alone(&self.options, first_line);
        self.pos = open.first_line_end;
        self.scanned = 0;
        self.line_no = open.start_line + 1;
        self.parser.reset();
        self.out_len = 0;
        self.ends_len = 0;
        Ok(ReadOutcome::Rejected(RowParseError {
            row_number: open.start_line,
            kind: RowParseErrorKind::UnterminatedQuote { lines: open.lines },
            cells,
        }))
    }

    /// Rejects the over-long line at `pos` and skips it without holding it in memory.
    fn reject_long_line(&mut self) -> Result<ReadOutcome, CsvFileError> {
        let row_number = self.line_no;
        // At least max_record_bytes + 1 bytes of the line are buffered, whatever the reads.
        let excerpt_len = TOO_LARGE_EXCERPT_BYTES.min(self.options.max_record_bytes);
        let mut excerpt = &self.buf[self.pos..self.end.min(self.pos + excerpt_len)];
        if let Err(error) = std::str::from_utf8(excerpt)
            && error.error_len().is_none()
        {
            excerpt = &excerpt[..error.valid_up_to()]; // do not cut a character in two
        }
        let excerpt = String::from_utf8_lossy(excerpt).into_owned();
        self.discard_line()?;
        Ok(ReadOutcome::Rejected(RowParseError {
            row_number,
            kind: RowParseErrorKind::RecordTooLarge { max_bytes: self.options.max_record_bytes },
            cells: vec![excerpt],
        }))
    }

    /// Finds the next physical line, reading more input as needed.
    fn next_line(&mut self) -> Result<LineEvent, CsvFileError> {
        let max = self.options.max_record_bytes;
        loop {
            let from = self.pos + self.scanned;
            if let Some(found) = memchr::memchr2(b'\n', b'\r', &self.buf[from..self.end]) {
                let at = from + found;
                let line_end = if self.buf[at] == b'\n' {
                    Some(at + 1)
                } else if at + 1 < self.end {
                    Some(at + 1 + usize::from(self.buf[at + 1] == b'\n'))
                } else if self.eof {
                    Some(at + 1)
                } else {
                    None // a '\r' at the end of the data: is a '\n' next?
                };
                if let Some(line_end) = line_end {
                    self.scanned = 0;
                    if line_end - self.pos > max {
                        return Ok(LineEvent::TooLong);
                    }
                    let start = self.pos;
                    self.pos = line_end;
                    return Ok(LineEvent::Line { start, end: line_end, terminated: true });
                }
                self.scanned = at - self.pos;
            } else {
                self.scanned = self.end - self.pos;
                if self.eof {
                    self.scanned = 0;
                    if self.pos == self.end {
                        return Ok(LineEvent::Eof);
                    }
                    if self.end - self.pos > max {
                        return Ok(LineEvent::TooLong);
                    }
                    let start = self.pos;
                    self.pos = self.end;
                    return Ok(LineEvent::Line { start, end: self.end, terminated: false });
                }
            }
            if self.end - self.pos > max {
                self.scanned = 0;
                return Ok(LineEvent::TooLong);
            }
            self.refill()?;
        }
    }

    /// Drops the line at `pos`, line ending included, reading through it as needed.
    fn discard_line(&mut self) -> Result<(), CsvFileError> {
        loop {
            if let Some(found) = memchr::memchr2(b'\n', b'\r', &self.buf[self.pos..self.end]) {
                let at = self.pos + found;
                if self.buf[at] == b'\n' {
                    self.pos = at + 1;
                    break;
                }
                if at + 1 < self.end {
                    self.pos = at + 1 + usize::from(self.buf[at + 1] == b'\n');
                    break;
                }
                if self.eof {
                    self.pos = at + 1;
                    break;
                }
                self.pos = at; // keep the '\r' until we know what follows it
            } else {
                self.pos = self.end;
                if self.eof {
                    break;
                }
            }
            self.refill()?;
        }
        self.scanned = 0;
        self.line_no += 1;
        Ok(())
    }

    /// Moves the data still needed to the front of the buffer (growing it when that leaves
    /// too little room) and reads more after it; sets `eof` when the input is exhausted.
    fn refill(&mut self) -> Result<(), CsvFileError> {
        let keep = self.open.map_or(self.pos, |open| open.start);
        if keep > 0 {
            self.buf.copy_within(keep..self.end, 0);
            self.end -= keep;
            self.pos -= keep;
            if let Some(open) = &mut self.open {
                open.start -= keep;
                open.first_line_end -= keep;
            }
        }
        if self.buf.len() - self.end < self.buf.len() / 4 + 1 {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        let n = crate::encoding::read_retrying(&mut self.input, &mut self.buf[self.end..])
            .map_err(|source| CsvFileError::Io { source_name: self.source_name.clone(), source })?;
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(())
    }
}

/// Feeds `input` to the parser, growing the output buffers as needed; true when a record was
/// completed (any rest of `input` is then the `\n` of a `\r\n`, which the parser skips).
fn feed(
    parser: &mut csv_core::Reader,
    mut input: &[u8],
    out: &mut Vec<u8>,
    out_len: &mut usize,
    ends: &mut Vec<usize>,
    ends_len: &mut usize,
) -> bool {
    loop {
        let (result, read, written, ended) =
            parser.read_record(input, &mut out[*out_len..], &mut ends[*ends_len..]);
        input = &input[read..];
        *out_len += written;
        *ends_len += ended;
        match result {
            ReadRecordResult::Record => return true,
            ReadRecordResult::InputEmpty | ReadRecordResult::End => return false,
            ReadRecordResult::OutputFull => {
                let grown = out.len() * 2 + 64;
                out.resize(grown, 0);
            }
            ReadRecordResult::OutputEndsFull => {
                let grown = ends.len() * 2 + 8;
                ends.resize(grown, 0);
            }
        }
    }
}

/// The fields of one line parsed on its own (as if the file ended after it), for showing the
/// first line of a record rejected for an unclosed quote.
fn parse_line_alone(options: &CsvOptions, line: &[u8]) -> Vec<String> {
    let content_len = line.iter().rposition(|b| !matches!(b, b'\r' | b'\n')).map_or(0, |i| i + 1);
    let mut parser = options.parser();
    let mut out = vec![0; content_len + 1];
    let mut ends = vec![0; content_len + 2];
    let (mut out_len, mut ends_len) = (0, 0);
    let mut input = &line[..content_len];
    while !input.is_empty() {
        let (result, read, written, ended) =
            parser.read_record(input, &mut out[out_len..], &mut ends[ends_len..]);
        input = &input[read..];
        out_len += written;
        ends_len += ended;
        if result != ReadRecordResult::InputEmpty {
            break;
        }
    }
    let (_, _, written, ended) =
        parser.read_record(&[], &mut out[out_len..], &mut ends[ends_len..]);
    lossy_cells(&out[..out_len + written], &ends[..ends_len + ended])
}

/// The fields as strings, with U+FFFD for bytes that are not UTF-8.
fn lossy_cells(text: &[u8], ends: &[usize]) -> Vec<String> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let cell =
                String::from_utf8_lossy(text.get(start..end).unwrap_or_default()).into_owned();
            start = end;
            cell
        })
        .collect()
}
