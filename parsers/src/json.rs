//! The streaming JSON reader: a JSON document's array of records, or a JSON Lines file, in;
//! one JSON object per record out, numbered, in bounded memory.
//!
//! Modes ([`JsonMode`]):
//! - **array** (default): the records are the elements of one array. [`JsonOptions::records_path`]
//!   says where it is: `$` (or empty) for a document that is the array itself, `$.data.items`
//!   (or `data.items`) for the array under the key `items` of the object under the key `data`
//!   of the top-level object. Keys are separated by dots; a key containing a dot or other
//!   special characters is written in brackets and quotes: `$["odd.key"].items`. Array indexes
//!   are not supported. Other keys' values are skipped without being built, so a 1 GB array
//!   holds only one record in memory at a time. The row number of a record is its 1-based
//!   position in the array. A record that is not an object is rejected on its own; a syntax
//!   error inside the array ends the file with an error naming the record, since JSON cannot be
//!   resynchronised after it.
//! - **lines** (JSON Lines): one object per line; blank lines are skipped. The row number is the
//!   line number. A line that is not valid JSON, is not an object, is not valid UTF-8 or is longer
//!   than [`JsonOptions::max_record_bytes`] is rejected on its own and reading goes on.
//!
//! Text in other encodings is decoded to UTF-8 first, as for CSV ([`crate::encoding`]). Nesting
//! is limited to 128 levels (serde_json's recursion limit), so a file of 100,000 nested arrays
//! is a clear error, not a stack overflow.

use std::io::{self, BufRead, BufReader, Read};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::csv::RowParseErrorKind;
use crate::encoding::{DecodingReader, EncodingError, TextEncoding};

/// How the records are laid out in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JsonMode {
    /// The elements of one array, found by `records_path`.
    #[default]
    Array,
    /// One object per line (JSON Lines).
    Lines,
}

/// The options of a [`JsonReader`], built by the engine from a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonOptions {
    /// Array or JSON Lines.
    pub mode: JsonMode,
    /// The keys leading to the records array (array mode); empty for a top-level array.
    pub records_path: Vec<String>,
    /// The declared encoding; a byte order mark wins.
    pub encoding: TextEncoding,
    /// The longest line in JSON Lines mode (longer lines are rejected, not buffered).
    pub max_record_bytes: usize,
}

impl Default for JsonOptions {
    fn default() -> Self {
        Self {
            mode: JsonMode::Array,
            records_path: Vec::new(),
            encoding: TextEncoding::Utf8,
            max_record_bytes: 16 << 20,
        }
    }
}

impl JsonOptions {
    /// Parses a `records_path` (`$`, `$.data.items`, `data.items`, `$["odd.key"].items`).
    pub fn parse_records_path(path: &str) -> Result<Vec<String>, String> {
        if matches!(path.trim(), "" | "$") {
            return Ok(Vec::new());
        }
        let keys = crate::object_record::parse_path(path)?;
        if keys.iter().any(|k| k.parse::<u64>().is_ok()) {
            return Err(format!("{path:?}: array indexes are not supported"));
        }
        Ok(keys)
    }
}

/// Why a JSON file cannot be read on.
#[derive(Debug, thiserror::Error)]
pub enum JsonFileError {
    /// The file could not be read.
    #[error("{file}: cannot read: {error}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        error: io::Error,
    },
    /// The declared encoding cannot be used.
    #[error("{file}: {error}")]
    Encoding {
        /// The file.
        file: String,
        /// The problem.
        #[source]
        error: EncodingError,
    },
    /// The document's structure is not what the options say, or it is not valid JSON.
    #[error("{file}: {message}")]
    Structure {
        /// The file.
        file: String,
        /// What is wrong and where (the record number, the byte offset).
        message: String,
    },
}

/// What [`JsonReader::read_record`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonOutcome {
    /// A record.
    Record {
        /// Its position in the array (1-based), or its line (JSON Lines).
        row_number: u64,
        /// The record.
        object: Map<String, Value>,
    },
    /// A record that cannot be used; reading goes on.
    Rejected {
        /// Its position or line.
        row_number: u64,
        /// Why.
        kind: RowParseErrorKind,
        /// The record as read (the line, at most 1 KiB of it), for the operator.
        text: String,
    },
    /// No more records.
    End,
}

/// Reads the records of a JSON or JSON Lines file one at a time.
pub struct JsonReader<R: Read> {
    file: String,
    input: BufReader<DecodingReader<R>>,
    options: JsonOptions,
    /// Records (array) or lines (JSON Lines) read so far.
    position: u64,
    /// Array mode: positioned inside the array; `None` before navigation, `Some(false)` at end.
    in_array: Option<bool>,
    line: Vec<u8>,
}

impl<R: Read> JsonReader<R> {
    /// Opens `input` (named `file` in errors).
    pub fn new(file: &str, input: R, options: JsonOptions) -> Result<Self, JsonFileError> {
        let decoded = DecodingReader::new(input, options.encoding)
            .map_err(|error| JsonFileError::Encoding { file: file.to_owned(), error })?;
        Ok(Self {
            file: file.to_owned(),
            input: BufReader::with_capacity(64 * 1024, decoded),
            options,
            position: 0,
            in_array: None,
            line: Vec::new(),
        })
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.input.get_ref().bytes_read()
    }

    /// The next record, a rejected record, or the end.
    pub fn read_record(&mut self) -> Result<JsonOutcome, JsonFileError> {
        match self.options.mode {
            JsonMode::Lines => self.read_line_record(),
            JsonMode::Array => self.read_array_record(),
        }
    }

    fn structure(&self, message: impl Into<String>) -> JsonFileError {
        JsonFileError::Structure { file: self.file.clone(), message: message.into() }
    }

    fn io(&self, error: io::Error) -> JsonFileError {
        JsonFileError::Io { file: self.file.clone(), error }
    }

    fn read_line_record(&mut self) -> Result<JsonOutcome, JsonFileError> {
        loop {
            let max = self.options.max_record_bytes;
            let read = crate::lines::read_line(&mut self.input, &mut self.line, max);
            let Some(fits) = read.map_err(|e| self.io(e))? else {
                return Ok(JsonOutcome::End);
            };
            self.position += 1;
            let row_number = self.position;
            if !fits {
                return Ok(JsonOutcome::Rejected {
                    row_number,
                    kind: RowParseErrorKind::RecordTooLarge { max_bytes: max },
                    text: excerpt(&self.line),
                });
            }
            let text = match std::str::from_utf8(&self.line) {
                Ok(text) => text.trim(),
                Err(e) => {
                    return Ok(JsonOutcome::Rejected {
                        row_number,
                        kind: RowParseErrorKind::InvalidUtf8 { byte_offset: e.valid_up_to() },
                        text: excerpt(&self.line),
                    });
                }
            };
            if text.is_empty() {
                continue;
            }
            return Ok(match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => JsonOutcome::Record { row_number, object },
                Ok(other) => JsonOutcome::Rejected {
                    row_number,
                    kind: RowParseErrorKind::NotAnObject { found: kind(&other) },
                    text: excerpt(text.as_bytes()),
                },
                Err(_) => JsonOutcome::Rejected {
                    row_number,
                    kind: RowParseErrorKind::InvalidJson,
                    text: excerpt(text.as_bytes()),
                },
            });
        }
    }

    fn read_array_record(&mut self) -> Result<JsonOutcome, JsonFileError> {
        match self.in_array {
            None => {
                self.navigate()?;
                if self.peek()? == Some(b']') {
                    self.input.consume(1);
                    self.in_array = Some(false);
                    return Ok(JsonOutcome::End);
                }
                self.in_array = Some(true);
            }
            Some(false) => return Ok(JsonOutcome::End),
            Some(true) => match self.peek()? {
                Some(b',') => self.input.consume(1),
                Some(b']') => {
                    self.input.consume(1);
                    self.in_array = Some(false);
                    return Ok(JsonOutcome::End);
                }
                other => {
                    return Err(self.structure(format!(
                        "after record {}: expected ',' or ']' but found {}",
                        self.position,
                        found(other)
                    )));
                }
            },
        }
        self.position += 1;
        let row_number = self.position;
        let offset = self.bytes_read();
        match self.peek()? {
            Some(b'{') => {
                let object = Map::<String, Value>::deserialize(
                    &mut serde_json::Deserializer::from_reader(&mut self.input),
                )
                .map_err(|e| {
                    self.structure(format!("record {row_number} (near byte {offset}): {e}"))
                })?;
                Ok(JsonOutcome::Record { row_number, object })
            }
            Some(b']') => {
                Err(self.structure(format!("a trailing comma after record {}", row_number - 1)))
            }
            _ => {
                let what = self.skip_value(&format!("record {row_number}"))?;
                Ok(JsonOutcome::Rejected {
                    row_number,
                    kind: RowParseErrorKind::NotAnObject { found: what },
                    text: String::new(),
                })
            }
        }
    }

    /// Consumes whitespace and returns the next byte without consuming it.
    fn peek(&mut self) -> Result<Option<u8>, JsonFileError> {
        loop {
            let buf = self.input.fill_buf().map_err(io_error(&self.file))?;
            let Some(&first) = buf.first() else { return Ok(None) };
            if first.is_ascii_whitespace() {
                self.input.consume(1);
            } else {
                return Ok(Some(first));
            }
        }
    }

    fn expect(&mut self, wanted: u8, context: &str) -> Result<(), JsonFileError> {
        match self.peek()? {
            Some(b) if b == wanted => {
                self.input.consume(1);
                Ok(())
            }
            other => Err(self.structure(format!(
                "{context}: expected '{}' but found {}",
                char::from(wanted),
                found(other)
            ))),
        }
    }

    /// Skips one value without building it; says what it was.
    fn skip_value(&mut self, context: &str) -> Result<&'static str, JsonFileError> {
        let what = match self.peek()? {
            Some(b'{') => "object",
            Some(b'[') => "array",
            Some(b'"') => "string",
            Some(b't' | b'f') => "boolean",
            Some(b'n') => "null",
            Some(_) => "number",
            None => return Err(self.structure("the document ends too early")),
        };
        if matches!(what, "object" | "array" | "string") {
            // Delimited values: serde_json stops right after the closing delimiter.
            IgnoredAny::deserialize(&mut serde_json::Deserializer::from_reader(&mut self.input))
                .map_err(|e| self.structure(format!("{context}: {e}")))?;
        } else {
            // Scalars: consume up to the next delimiter, which is left in place.
            loop {
                let buf = self.input.fill_buf().map_err(io_error(&self.file))?;
                let Some(&b) = buf.first() else { break };
                if matches!(b, b',' | b']' | b'}') || b.is_ascii_whitespace() {
                    break;
                }
                self.input.consume(1);
            }
        }
        Ok(what)
    }

    /// Moves to just inside the records array.
    fn navigate(&mut self) -> Result<(), JsonFileError> {
        let path = self.options.records_path.clone();
        for (depth, key) in path.iter().enumerate() {
            let at =
                if depth == 0 { "$".to_owned() } else { format!("$.{}", path[..depth].join(".")) };
            self.expect(b'{', &format!("records_path: {at} must be an object"))?;
            loop {
                match self.peek()? {
                    Some(b'"') => {}
                    Some(b'}') => {
                        return Err(
                            self.structure(format!("records_path: {at} has no key {key:?}"))
                        );
                    }
                    other => {
                        return Err(self.structure(format!(
                            "records_path: expected a key in {at} but found {}",
                            found(other)
                        )));
                    }
                }
                let name = String::deserialize(&mut serde_json::Deserializer::from_reader(
                    &mut self.input,
                ))
                .map_err(|e| self.structure(format!("in {at}: {e}")))?;
                self.expect(b':', &format!("in {at}"))?;
                if &name == key {
                    break;
                }
                self.skip_value(&format!("the value of {name:?} in {at}"))?;
                if self.peek()? == Some(b',') {
                    self.input.consume(1);
                }
            }
        }
        let at = if path.is_empty() { "$".to_owned() } else { format!("$.{}", path.join(".")) };
        self.expect(b'[', &format!("records_path: {at} must be an array of records"))
    }
}

fn io_error(file: &str) -> impl Fn(io::Error) -> JsonFileError + '_ {
    move |error| JsonFileError::Io { file: file.to_owned(), error }
}

/// At most 1 KiB of a line, as text, for the operator.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]);
    text.trim_end_matches(['\r', '\n']).to_owned()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn found(byte: Option<u8>) -> String {
    match byte {
        None => "the end of the file".to_owned(),
        Some(b) if b.is_ascii_graphic() => format!("'{}'", char::from(b)),
        Some(b) => format!("byte {b:#04x}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_all(text: &[u8], options: JsonOptions) -> Result<Vec<JsonOutcome>, JsonFileError> {
        let mut reader = JsonReader::new("f.json", text, options)?;
        let mut out = Vec::new();
        loop {
            match reader.read_record()? {
                JsonOutcome::End => return Ok(out),
                other => out.push(other),
            }
        }
    }

    fn array_at(path: &str) -> JsonOptions {
        JsonOptions {
            records_path: JsonOptions::parse_records_path(path).unwrap(),
            ..JsonOptions::default()
        }
    }

    #[test]
    fn records_paths_parse_with_and_without_the_dollar() {
        assert_eq!(JsonOptions::parse_records_path("$").unwrap(), Vec::<String>::new());
        assert_eq!(JsonOptions::parse_records_path("data.items").unwrap(), ["data", "items"]);
        assert_eq!(
            JsonOptions::parse_records_path("$[\"odd.key\"].items").unwrap(),
            ["odd.key", "items"]
        );
        assert!(JsonOptions::parse_records_path("$.items.0").is_err());
        assert!(JsonOptions::parse_records_path("$..x").is_err());
    }

    #[test]
    fn the_array_under_a_path_is_streamed_with_other_keys_skipped() {
        let text = br#"{"meta": {"n": [1, 2, {"x": "]"}]}, "count": 3, "ok": true,
            "data": {"skip": null, "items": [ {"id": 1, "tags": ["a"]}, 7, {"id": 2} ]}}"#;
        let out = read_all(text, array_at("$.data.items")).unwrap();
        assert_eq!(out.len(), 3);
        let JsonOutcome::Record { row_number: 1, object } = &out[0] else { panic!("{out:?}") };
        assert_eq!(object["tags"][0], "a");
        assert!(matches!(
            &out[1],
            JsonOutcome::Rejected {
                row_number: 2,
                kind: RowParseErrorKind::NotAnObject { found: "number" },
                ..
            }
        ));
        assert!(matches!(&out[2], JsonOutcome::Record { row_number: 3, .. }));
        assert_eq!(read_all(b" [ ] ", array_at("$")).unwrap(), []);
    }

    #[test]
    fn structure_errors_name_the_path_or_the_record() {
        let error = read_all(br#"{"data": {}}"#, array_at("data.items")).unwrap_err();
        assert!(error.to_string().contains("$.data has no key \"items\""), "{error}");
        let error = read_all(br#"{"data": 5}"#, array_at("data")).unwrap_err();
        assert!(error.to_string().contains("must be an array"), "{error}");
        let error = read_all(br#"[{"a": 1}, {"a": }]"#, array_at("$")).unwrap_err();
        assert!(error.to_string().contains("record 2"), "{error}");
        let error = read_all(br#"[{"a": 1} {"a": 2}]"#, array_at("$")).unwrap_err();
        assert!(error.to_string().contains("after record 1"), "{error}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut text = b"[{\"a\": ".to_vec();
        text.extend(std::iter::repeat_n(b'[', 100_000));
        text.extend(std::iter::repeat_n(b']', 100_000));
        text.extend(b"}]");
        let error = read_all(&text, array_at("$")).unwrap_err();
        assert!(error.to_string().contains("recursion limit"), "{error}");
        // A deeply nested value skipped on the way to the records is skipped without recursion.
        let mut text = b"{\"skip\": ".to_vec();
        text.extend(std::iter::repeat_n(b'[', 100_000));
        text.extend(std::iter::repeat_n(b']', 100_000));
        text.extend(br#", "items": [{"a": 1}]}"#);
        assert_eq!(read_all(&text, array_at("items")).unwrap().len(), 1);
        let error = read_all(&text[..50_000], array_at("items")).unwrap_err();
        assert!(error.to_string().contains("the value of \"skip\" in $"), "{error}");
    }

    #[test]
    fn json_lines_reject_bad_lines_one_by_one_with_their_line_numbers() {
        let mut text = b"{\"id\": 1}\n\n[1]\n{bad\n".to_vec();
        text.extend(b"{\"name\": \"caf\xe9\"}\n");
        text.extend(b"{\"long\": \"");
        text.extend(std::iter::repeat_n(b'x', 100));
        text.extend(b"\"}\n{\"id\": 7}");
        let options =
            JsonOptions { mode: JsonMode::Lines, max_record_bytes: 64, ..JsonOptions::default() };
        let out = read_all(&text, options).unwrap();
        let summary: Vec<(u64, bool)> = out
            .iter()
            .map(|o| match o {
                JsonOutcome::Record { row_number, .. } => (*row_number, true),
                JsonOutcome::Rejected { row_number, .. } => (*row_number, false),
                JsonOutcome::End => unreachable!(),
            })
            .collect();
        assert_eq!(summary, [(1, true), (3, false), (4, false), (5, false), (6, false), (7, true)]);
        assert!(
            matches!(&out[3], JsonOutcome::Rejected { kind: RowParseErrorKind::InvalidUtf8 { byte_offset: 13 }, text, .. } if text.contains("caf"))
        );
        assert!(matches!(
            &out[4],
            JsonOutcome::Rejected { kind: RowParseErrorKind::RecordTooLarge { max_bytes: 64 }, .. }
        ));
    }

    #[test]
    fn invalid_utf8_in_a_utf8_array_is_a_clear_error_naming_the_record() {
        let error =
            read_all(b"[{\"a\": \"ok\"}, {\"a\": \"caf\xe9\"}]", array_at("$")).unwrap_err();
        assert!(error.to_string().contains("record 2"), "{error}");
    }

    #[test]
    fn other_encodings_are_decoded_first() {
        let text = b"\xff\xfe[\x00{\x00\"\x00a\x00\"\x00:\x001\x00}\x00]\x00";
        let out = read_all(text, array_at("$")).unwrap();
        assert!(matches!(&out[0], JsonOutcome::Record { object, .. } if object["a"] == 1));
    }
}
