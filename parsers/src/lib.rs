//! intake-parsers: turns the bytes of a file into a stream of numbered records.
//!
//! It owns the pre-flight (decompressing gzip and zip files, see [`preflight`]; OpenPGP, see
//! [`pgp`]), text encodings, the file formats (CSV, fixed-width and Excel workbooks; JSON and JSON Lines, XML
//! as object records read through [`object_record`]), and the two record types the rest of the
//! pipeline shares: [`Record`], the text cells of one source record with the line it starts on,
//! and [`Row`], a mapped row of named JSON values. It does not know about templates, mapping or
//! validation: those crates depend on this one, never the other way round.

pub mod csv;
pub mod encoding;
pub mod excel;
pub mod fixed_width;
pub mod json;
pub mod line_process;
mod lines;
pub mod locale;
pub mod object_record;
pub mod pgp;
pub mod plugin_registry;
pub mod preflight;
mod record;
pub mod row;
pub mod row_error;
#[cfg(test)]
mod test_support;
pub mod xml;

pub use csv::{CsvFileError, CsvOptions, CsvReader, ReadOutcome, RowParseError, RowParseErrorKind};
pub use encoding::{DecodingReader, EncodingError, TextEncoding, UnknownEncoding};
pub use excel::{ExcelFileError, ExcelOptions, ExcelReader};
pub use locale::Locale;
pub use preflight::{Decompression, PreflightError, PreflightOptions, PreflightReader};
pub use record::Record;
pub use row::{Row, RowShape};
pub use row_error::{Layer, RowError};
