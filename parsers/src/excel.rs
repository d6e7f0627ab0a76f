//! The Excel reader: a workbook (xlsx, xlsm, xlsb, xls or ods) in, numbered [`Record`]s out.
//!
//! [`ExcelReader`] has the interface of [`crate::CsvReader`] (`columns`, `read_record`,
//! `bytes_read`) so the engine runs a sheet through the same map → validate steps as a CSV file.
//!
//! How a sheet is read:
//! - The workbook is read with calamine, which needs `Read + Seek`: [`ExcelReader::new`] takes
//!   any `Read` and spools it to an anonymous temporary file (at most
//!   [`ExcelOptions::max_file_bytes`]), so memory stays bounded by the sheet, not the file.
//! - One sheet is read: [`ExcelOptions::sheet_name`], or the first sheet.
//! - Before any cell is read, the sheet's declared dimension (`<dimension ref=…>` in xlsx) is
//!   checked against [`ExcelOptions::max_cells`]: a tiny file claiming `A1:XFD1048576` is refused
//!   rather than allocated (calamine allocates the declared range at once, tafia/calamine#693).
//!   xlsx/xlsm/xlsb cells are streamed and stored sparsely, so the cap also holds for files that
//!   declare nothing. xls and ods sheets are loaded by calamine as a whole when the workbook is
//!   opened; their size is checked after loading.
//! - Row numbers are Excel's (1-based, as Excel shows them). Rows with no value are skipped but
//!   counted (the next row keeps its Excel number). `skip_rows` rows, counted from the first row
//!   of the sheet's used range, are skipped before the header.
//! - Cells become text the way an operator sees them: strings as they are, whole numbers without
//!   `.0`, other numbers rounded to 15 significant digits like Excel shows them (`0.1 + 0.2` is
//!   `0.3`), booleans `true`/`false`, dates `2026-11-23`, date-times `2026-11-23T08:30:00`,
//!   durations as ISO 8601 (`PT1H30M`), formulas as their cached values.
//! - A cell holding an Excel error (`#DIV/0!`, `#N/A`, …) rejects its row
//!   ([`RowParseErrorKind::ExcelErrorCell`]) and reading goes on.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use calamine::{Data, DataRef, Reader, Sheets};
use chrono::Timelike;

use crate::csv::{ReadOutcome, RowParseError, RowParseErrorKind};
use crate::record::Record;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

/// The runtime options of an [`ExcelReader`], built by the engine from a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcelOptions {
    /// The sheet to read; `None` reads the first sheet.
    pub sheet_name: Option<String>,
    /// Whether the first non-empty row (after `skip_rows`) holds the column names.
    pub has_header: bool,
    /// Rows skipped before the header (or the data), counted from the first row of the sheet's
    /// used range, whatever they contain.
    pub skip_rows: u64,
    /// Columns that must be present; the file is refused when any is missing.
    pub required_columns: Vec<String>,
    /// The most cells a sheet may declare or hold (rows × columns of its dimension).
    pub max_cells: u64,
    /// The most bytes the workbook file may have.
    pub max_file_bytes: u64,
    /// The most bytes the parts of a zip workbook (xlsx, xlsm, xlsb, ods) may inflate to, by
    /// the sizes its central directory declares (which the zip reader enforces).
    pub max_expanded_bytes: u64,
}

impl Default for ExcelOptions {
    fn default() -> Self {
        Self {
            sheet_name: None,
            has_header: true,
            skip_rows: 0,
            required_columns: Vec::new(),
            max_cells: 50_000_000,
            max_file_bytes: 256 << 20,
            max_expanded_bytes: 1 << 30,
        }
    }
}

/// Why a whole workbook could not be read. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ExcelFileError {
    /// Reading or spooling the file failed.
    #[error("{source_name}: could not read the file: {source}")]
    Io {
        /// The file.
        source_name: String,
        /// The error from the reader.
        #[source]
        source: io::Error,
    },
    /// The file is larger than [`ExcelOptions::max_file_bytes`].
    #[error("{source_name}: the workbook is larger than {max_bytes} bytes")]
    TooLarge {
        /// The file.
        source_name: String,
        /// The limit.
        max_bytes: u64,
    },
    /// The zip workbook inflates to more than [`ExcelOptions::max_expanded_bytes`], or its
    /// parts overlap (a zip bomb).
    #[error(
        "{source_name}: the workbook's parts inflate to more than {max_bytes} bytes, or overlap: \
         refused as a possible zip bomb"
    )]
    ExpandsTooMuch {
        /// The file.
        source_name: String,
        /// The limit.
        max_bytes: u64,
    },
    /// The bytes are not a workbook calamine can read (corrupt, or another kind of file).
    #[error(
        "{source_name}: not a readable Excel or OpenDocument workbook (xlsx, xlsm, xlsb, xls, \
         ods): {detail}"
    )]
    NotAWorkbook {
        /// The file.
        source_name: String,
        /// What calamine said.
        detail: String,
    },
    /// The workbook has no sheet of that name.
    #[error("{source_name}: there is no sheet {sheet:?}; the workbook has {}", quoted(.sheets))]
    UnknownSheet {
        /// The file.
        source_name: String,
        /// The sheet asked for.
        sheet: String,
        /// The sheets the workbook has.
        sheets: Vec<String>,
    },
    /// The workbook has no sheets at all.
    #[error("{source_name}: the workbook has no sheets")]
    NoSheets {
        /// The file.
        source_name: String,
    },
    /// The sheet declares (or holds) more cells than [`ExcelOptions::max_cells`].
    #[error(
        "{source_name}: sheet {sheet:?} spans {rows} row(s) × {columns} column(s), more than \
         the limit of {max_cells} cells: delete unused rows and columns (Excel keeps formatted \
         empty cells in the used range) or raise the limit"
    )]
    SheetTooLarge {
        /// The file.
        source_name: String,
        /// The sheet.
        sheet: String,
        /// Rows in its dimension.
        rows: u64,
        /// Columns in its dimension.
        columns: u64,
        /// The limit.
        max_cells: u64,
    },
    /// The sheet could not be read.
    #[error("{source_name}: sheet {sheet:?} cannot be read: {detail}")]
    BadSheet {
        /// The file.
        source_name: String,
        /// The sheet.
        sheet: String,
        /// What calamine said.
        detail: String,
    },
    /// A header cell holds an Excel error.
    #[error("{source_name}: the header on row {row_number} holds the error {error} in cell {cell}")]
    BadHeader {
        /// The file.
        source_name: String,
        /// The header's Excel row.
        row_number: u64,
        /// The cell, e.g. `C1`.
        cell: String,
        /// The error, e.g. `#REF!`.
        error: &'static str,
    },
    /// Required columns are not in the sheet.
    #[error("{source_name}: required column(s) {} missing; the sheet has {}", quoted(.missing), quoted(.found))]
    MissingColumns {
        /// The file.
        source_name: String,
        /// Every required column that is missing.
        missing: Vec<String>,
        /// The columns the sheet has.
        found: Vec<String>,
    },
    /// The header names a column more than once.
    #[error("{source_name}: the header names column(s) {} more than once: column names must be unique", quoted(.duplicates))]
    DuplicateColumns {
        /// The file.
        source_name: String,
        /// Every name that appears more than once.
        duplicates: Vec<String>,
    },
}

fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ")
}

/// One cell as text, or the Excel error it holds.
#[derive(Debug, Clone, PartialEq)]
enum CellText {
    Text(String),
    Error(&'static str),
}

/// A non-empty row of the sheet: its Excel row number and its cells by 0-based column.
type SheetRow = (u64, Vec<(u32, CellText)>);

/// Reads one sheet of a workbook as numbered records.
#[derive(Debug)]
pub struct ExcelReader {
    columns: Vec<String>,
    first_column: u32,
    rows: std::vec::IntoIter<SheetRow>,
    bytes: u64,
}

impl ExcelReader {
    /// Opens a workbook from any reader: spools it to a temporary file (calamine needs to seek),
    /// checks the sheet's size, reads the header and checks the required columns.
    ///
    /// `source_name` is the file name used in error messages.
    pub fn new<R: Read>(
        source_name: &str,
        mut input: R,
        options: ExcelOptions,
    ) -> Result<Self, ExcelFileError> {
        let io_error = |source| ExcelFileError::Io { source_name: source_name.to_owned(), source };
        let mut spool = tempfile::tempfile().map_err(io_error)?;
        let copied = io::copy(&mut (&mut input).take(options.max_file_bytes + 1), &mut spool)
            .map_err(io_error)?;
        if copied > options.max_file_bytes {
            return Err(ExcelFileError::TooLarge {
                source_name: source_name.to_owned(),
                max_bytes: options.max_file_bytes,
            });
        }
        spool.flush().map_err(io_error)?;
        let mut workbook = open_workbook(source_name, &spool, options.max_expanded_bytes)?;
        let size = copied;
        let name = || source_name.to_owned();
        let sheets = workbook.sheet_names();
        let sheet = match &options.sheet_name {
            Some(wanted) if sheets.contains(wanted) => wanted.clone(),
            Some(wanted) => {
                return Err(ExcelFileError::UnknownSheet {
                    source_name: name(),
                    sheet: wanted.clone(),
                    sheets,
                });
            }
            None => match sheets.first() {
                Some(first) => first.clone(),
                None => return Err(ExcelFileError::NoSheets { source_name: name() }),
            },
        };
        let too_large = |rows: u64, columns: u64| ExcelFileError::SheetTooLarge {
            source_name: name(),
            sheet: sheet.clone(),
            rows,
            columns,
            max_cells: options.max_cells,
        };
        let bad_sheet = |detail: String| ExcelFileError::BadSheet {
            source_name: name(),
            sheet: sheet.clone(),
            detail,
        };
        let mut cells: BTreeMap<u32, Vec<(u32, CellText)>> = BTreeMap::new();
        let mut count: u64 = 0;
        let mut span = Span::default();
        let mut add = |row: u32, column: u32, text: Option<CellText>| -> bool {
            span.add(row, column);
            if let Some(text) = text {
                count += 1;
                cells.entry(row).or_default().push((column, text));
            }
            count <= options.max_cells && span.cells() <= options.max_cells
        };
        // The xlsx and xlsb cell readers have the same methods but no common trait: the
        // declared dimension is checked before any cell is read, then cells stream one by one.
        macro_rules! read_cells {
            ($workbook:expr) => {{
                let mut reader = $workbook
                    .worksheet_cells_reader(&sheet)
                    .map_err(|e| bad_sheet(e.to_string()))?;
                let declared = reader.dimensions();
                let (rows, columns) = dimension_size(declared.start, declared.end);
                if rows.saturating_mul(columns) > options.max_cells {
                    return Err(too_large(rows, columns));
                }
                while let Some(cell) = reader.next_cell().map_err(|e| bad_sheet(e.to_string()))? {
                    let (row, column) = cell.get_position();
                    if !add(row, column, data_ref_text(cell.get_value())) {
                        return Err(too_large(span.rows(), span.columns()));
                    }
                }
            }};
        }
        match &mut workbook {
            Sheets::Xlsx(xlsx) => read_cells!(xlsx),
            Sheets::Xlsb(xlsb) => read_cells!(xlsb),
            other => {
                let range = other.worksheet_range(&sheet).map_err(|e| bad_sheet(e.to_string()))?;
                if let (Some(start), Some(end)) = (range.start(), range.end()) {
                    let (rows, columns) = dimension_size(start, end);
                    if rows.saturating_mul(columns) > options.max_cells {
                        return Err(too_large(rows, columns));
                    }
                }
                for (row, column, value) in range.used_cells() {
                    let (start_row, start_column) = range.start().unwrap_or((0, 0));
                    let (row, column) = (start_row + row as u32, start_column + column as u32);
                    if !add(row, column, data_text(value)) {
                        return Err(too_large(span.rows(), span.columns()));
                    }
                }
            }
        }
        Self::from_cells(source_name, cells, &span, size, &options)
    }

    fn from_cells(
        source_name: &str,
        cells: BTreeMap<u32, Vec<(u32, CellText)>>,
        span: &Span,
        size: u64,
        options: &ExcelOptions,
    ) -> Result<Self, ExcelFileError> {
        let first_row = span.first_row.unwrap_or(0);
        let first_column = span.first_column.unwrap_or(0);
        let width = span.columns() as usize;
        let mut rows: Vec<SheetRow> = cells
            .into_iter()
            .filter(|(row, _)| u64::from(*row) >= u64::from(first_row) + options.skip_rows)
            .map(|(row, mut cells)| {
                cells.sort_by_key(|(column, _)| *column);
                (u64::from(row) + 1, cells)
            })
            .collect();
        let mut columns: Vec<String> = Vec::new();
        if options.has_header && !rows.is_empty() {
            let (row_number, header) = rows.remove(0);
            let mut names = vec![String::new(); width];
            for (column, cell) in header {
                let index = (column - first_column) as usize;
                match cell {
                    CellText::Text(text) => {
                        if let Some(name) = names.get_mut(index) {
                            *name = text.trim().to_owned();
                        }
                    }
                    CellText::Error(error) => {
                        return Err(ExcelFileError::BadHeader {
                            source_name: source_name.to_owned(),
                            row_number,
                            cell: cell_reference(column, row_number),
                            error,
                        });
                    }
                }
            }
            while names.last().is_some_and(String::is_empty) {
                names.pop();
            }
            columns = names
                .into_iter()
                .enumerate()
                .map(|(i, name)| if name.is_empty() { format!("column_{}", i + 1) } else { name })
                .collect();
            let mut seen = std::collections::BTreeSet::new();
            let mut duplicates = Vec::new();
            for name in &columns {
                if !seen.insert(name) && !duplicates.contains(name) {
                    duplicates.push(name.clone());
                }
            }
            if !duplicates.is_empty() {
                return Err(ExcelFileError::DuplicateColumns {
                    source_name: source_name.to_owned(),
                    duplicates,
                });
            }
        } else if !rows.is_empty() {
            columns = (1..=width).map(|i| format!("column_{i}")).collect();
        }
        let missing: Vec<String> = options
            .required_columns
            .iter()
            .filter(|required| !columns.contains(required))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(ExcelFileError::MissingColumns {
                source_name: source_name.to_owned(),
                missing,
                found: columns,
            });
        }
        Ok(Self { columns, first_column, rows: rows.into_iter(), bytes: size })
    }

    /// Column names: the header's (an empty header cell is `column_N`), or `column_1`..
    /// `column_N` when there is no header (N the width of the used range). Empty for an empty
    /// sheet.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Reads the next non-empty row into `record` (reused), numbered with its Excel row.
    ///
    /// A row with an error cell, or with values right of the last column, comes back as
    /// [`ReadOutcome::Rejected`] and the next call goes on with the following row. The whole
    /// sheet is read when the reader is opened, so this never fails; the `Result` keeps the
    /// shape of [`crate::CsvReader::read_record`].
    pub fn read_record(&mut self, record: &mut Record) -> Result<ReadOutcome, ExcelFileError> {
        let Some((row_number, cells)) = self.rows.next() else { return Ok(ReadOutcome::End) };
        let width = self.columns.len();
        let mut texts = vec![String::new(); width];
        let mut problem = None;
        let mut found = width;
        for (column, cell) in cells {
            let index = (column - self.first_column) as usize;
            let text = match cell {
                CellText::Text(text) => text,
                CellText::Error(error) => {
                    if problem.is_none() {
                        problem =
                            Some(RowParseErrorKind::ExcelErrorCell { column: column + 1, error });
                    }
                    error.to_owned()
                }
            };
            if index >= texts.len() {
                found = index + 1;
                texts.resize(index + 1, String::new());
            }
            texts[index] = text;
        }
        if problem.is_none() && found > width {
            problem = Some(RowParseErrorKind::WrongFieldCount { expected: width, found });
        }
        if let Some(kind) = problem {
            return Ok(ReadOutcome::Rejected(RowParseError { row_number, kind, cells: texts }));
        }
        record.clear(row_number);
        for text in &texts {
            record.push_cell(text);
        }
        Ok(ReadOutcome::Record)
    }

    /// The workbook's size in bytes: the whole file is read when the reader is opened.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

/// A fresh buffered reader over the spooled file, at its start.
fn rewound(file: &std::fs::File) -> io::Result<io::BufReader<std::fs::File>> {
    let mut file = file.try_clone()?;
    file.seek(SeekFrom::Start(0))?;
    Ok(io::BufReader::new(file))
}

/// Opens the spooled workbook with the calamine reader its container implies: an OLE file is
/// xls; a zip is xlsx/xlsm, else xlsb, else ods.
fn open_workbook(
    source_name: &str,
    file: &std::fs::File,
    max_expanded_bytes: u64,
) -> Result<Sheets<io::BufReader<std::fs::File>>, ExcelFileError> {
    use calamine::{Ods, Xls, Xlsb, Xlsx, open_workbook_from_rs};
    let io_error = |source| ExcelFileError::Io { source_name: source_name.to_owned(), source };
    let not_a_workbook = |detail: String| ExcelFileError::NotAWorkbook {
        source_name: source_name.to_owned(),
        detail,
    };
    let mut magic = [0u8; 4];
    let mut head = rewound(file).map_err(io_error)?;
    let got = head.read(&mut magic).map_err(io_error)?;
    match &magic[..got] {
        [0xD0, 0xCF, 0x11, 0xE0] => {
            open_workbook_from_rs::<Xls<_>, _>(rewound(file).map_err(io_error)?)
                .map(Sheets::Xls)
                .map_err(|e| not_a_workbook(e.to_string()))
        }
        [b'P', b'K', 3, 4] => {
            let mut archive = zip::ZipArchive::new(rewound(file).map_err(io_error)?)
                .map_err(|e| not_a_workbook(e.to_string()))?;
            let mut expanded: u64 = 0;
            for index in 0..archive.len() {
                let part =
                    archive.by_index_raw(index).map_err(|e| not_a_workbook(e.to_string()))?;
                expanded = expanded.saturating_add(part.size());
            }
            if expanded > max_expanded_bytes || archive.has_overlapping_files().unwrap_or(true) {
                return Err(ExcelFileError::ExpandsTooMuch {
                    source_name: source_name.to_owned(),
                    max_bytes: max_expanded_bytes,
                });
            }
            let xlsx_error =
                match open_workbook_from_rs::<Xlsx<_>, _>(rewound(file).map_err(io_error)?) {
                    Ok(workbook) => return Ok(Sheets::Xlsx(workbook)),
                    Err(error) => error.to_string(),
                };
            if let Ok(workbook) =
                open_workbook_from_rs::<Xlsb<_>, _>(rewound(file).map_err(io_error)?)
            {
                return Ok(Sheets::Xlsb(workbook));
            }
            if let Ok(workbook) =
                open_workbook_from_rs::<Ods<_>, _>(rewound(file).map_err(io_error)?)
            {
                return Ok(Sheets::Ods(workbook));
            }
            Err(not_a_workbook(xlsx_error))
        }
        _ => Err(not_a_workbook(
            "the file is neither a zip archive (xlsx, xlsm, xlsb, ods) nor an OLE file (xls)"
                .to_owned(),
        )),
    }
}

/// The rows and columns spanned by the cells seen so far (0-based positions).
#[derive(Debug, Default)]
struct Span {
    first_row: Option<u32>,
    last_row: u32,
    first_column: Option<u32>,
    last_column: u32,
}

impl Span {
    fn add(&mut self, row: u32, column: u32) {
        self.first_row = Some(self.first_row.map_or(row, |r| r.min(row)));
        self.first_column = Some(self.first_column.map_or(column, |c| c.min(column)));
        self.last_row = self.last_row.max(row);
        self.last_column = self.last_column.max(column);
    }

    fn rows(&self) -> u64 {
        self.first_row.map_or(0, |first| u64::from(self.last_row - first) + 1)
    }

    fn columns(&self) -> u64 {
        self.first_column.map_or(0, |first| u64::from(self.last_column - first) + 1)
    }

    fn cells(&self) -> u64 {
        self.rows().saturating_mul(self.columns())
    }
}

/// Rows and columns of a dimension given by its inclusive corners.
fn dimension_size(start: (u32, u32), end: (u32, u32)) -> (u64, u64) {
    let rows = u64::from(end.0.saturating_sub(start.0)) + 1;
    let columns = u64::from(end.1.saturating_sub(start.1)) + 1;
    (rows, columns)
}

/// An A1-style reference for a 0-based column and a 1-based row.
fn cell_reference(column: u32, row_number: u64) -> String {
    format!("{}{row_number}", column_letters(column + 1))
}

/// The letters of a 1-based column number (1 → A, 27 → AA).
pub(crate) fn column_letters(mut column: u32) -> String {
    let mut letters = Vec::new();
    while column > 0 {
        let rem = (column - 1) % 26;
        letters.push(char::from(b'A' + rem as u8));
        column = (column - 1) / 26;
    }
    letters.iter().rev().collect()
}

fn data_ref_text(value: &DataRef<'_>) -> Option<CellText> {
    match value {
        DataRef::SharedString(text) => Some(CellText::Text((*text).to_owned())),
        other => data_text(&Data::from(other.clone())),
    }
}

/// A cell as the text an operator expects; `None` for an empty cell.
fn data_text(value: &Data) -> Option<CellText> {
    let text = match value {
        Data::Empty => return None,
        Data::String(text) => text.clone(),
        Data::Int(number) => number.to_string(),
        Data::Float(number) => float_text(*number),
        Data::Bool(flag) => flag.to_string(),
        Data::DateTime(date) => {
            if date.is_duration() {
                match date.as_duration() {
                    Some(duration) => duration_text(duration),
                    None => float_text(date.as_f64()),
                }
            } else {
                // Stored date-times carry float noise (08:29:59.9999): round to the second.
                let rounded = date.as_datetime().map(|when| {
                    let when = when + chrono::Duration::milliseconds(500);
                    when.with_nanosecond(0).unwrap_or(when)
                });
                match rounded {
                    Some(when) if when.time() == chrono::NaiveTime::MIN => {
                        when.date().format("%Y-%m-%d").to_string()
                    }
                    Some(when) => when.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    None => float_text(date.as_f64()),
                }
            }
        }
        Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
        Data::Error(error) => return Some(CellText::Error(error_code(error))),
    };
    if text.is_empty() { None } else { Some(CellText::Text(text)) }
}

/// A number as Excel shows it: 15 significant digits, shortest form (`3`, `12.5`, `0.3`).
fn float_text(number: f64) -> String {
    if !number.is_finite() {
        return number.to_string();
    }
    let rounded: f64 = format!("{number:.14e}").parse().unwrap_or(number);
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    rounded.to_string()
}

/// A duration as ISO 8601 (`PT1H30M`, `PT0S`).
fn duration_text(duration: chrono::Duration) -> String {
    let negative = duration < chrono::Duration::zero();
    let total = duration.num_seconds().unsigned_abs();
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    let mut text = String::from(if negative { "-PT" } else { "PT" });
    if hours > 0 {
        text.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}M"));
    }
    if seconds > 0 || total == 0 {
        text.push_str(&format!("{seconds}S"));
    }
    text
}

/// The text Excel shows for an error value.
fn error_code(error: &calamine::CellErrorType) -> &'static str {
    use calamine::CellErrorType as E;
    match error {
        E::Div0 => "#DIV/0!",
        E::NA => "#N/A",
        E::Name => "#NAME?",
        E::Null => "#NULL!",
        E::Num => "#NUM!",
        E::Ref => "#REF!",
        E::Value => "#VALUE!",
        E::GettingData => "#GETTING_DATA",
    }
}
