//! Tests of the CSV reader. Most inputs are read several ways (whole, through tiny buffers and
//! one byte per read) and every way must give the same records, so that lines, line endings
//! and multi-byte characters split across reads are covered everywhere.

use std::io::{self, Read};

use super::*;

use crate::test_support::OneByteAtATime;

/// Hands out its bytes, then fails.
struct FailsAfter<'a>(&'a [u8]);

impl Read for FailsAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "the connection dropped"));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// One thing read from a file, in a shape that is easy to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Row(u64, Vec<String>),
    Rejected(u64, RowParseErrorKind),
}

fn row(line: u64, cells: &[&str]) -> Got {
    Got::Row(line, cells.iter().map(|cell| (*cell).to_owned()).collect())
}

fn read_with<R: Read>(reader: CsvReader<R>) -> (Vec<String>, Vec<Got>, Vec<RowParseError>) {
    let mut reader = reader;
    let columns = reader.columns().to_vec();
    let mut record = Record::new();
    let mut got = Vec::new();
    let mut rejections = Vec::new();
    loop {
        match reader.read_record(&mut record).unwrap() {
            ReadOutcome::Record => {
                got.push(Got::Row(record.row_number(), record.cells().map(str::to_owned).collect()))
            }
            ReadOutcome::Rejected(error) => {
                got.push(Got::Rejected(error.row_number, error.kind));
                rejections.push(error);
            }
            ReadOutcome::End => break,
        }
    }
    // End is sticky.
    assert_eq!(reader.read_record(&mut record).unwrap(), ReadOutcome::End);
    (columns, got, rejections)
}

/// Reads `bytes` whole, through tiny buffers and one byte per read; all must agree.
fn read_all(bytes: &[u8], options: &CsvOptions) -> (Vec<String>, Vec<Got>, Vec<RowParseError>) {
    let whole = read_with(CsvReader::new("test.csv", bytes, options.clone()).unwrap());
    for size in [1, 2, 3, 5, 7, 16] {
        let reader = CsvReader::with_buffer_size("t.csv", bytes, options.clone(), size).unwrap();
        assert_eq!(read_with(reader), whole, "buffer size {size}");
        let reader =
            CsvReader::with_buffer_size("t.csv", OneByteAtATime(bytes), options.clone(), size)
                .unwrap();
        assert_eq!(read_with(reader), whole, "one byte per read, buffer size {size}");
    }
    whole
}

fn rows(bytes: &[u8], options: &CsvOptions) -> Vec<Got> {
    read_all(bytes, options).1
}

fn open_error(bytes: &[u8], options: CsvOptions) -> CsvFileError {
    match CsvReader::new("orders.csv", bytes, options) {
        Ok(_) => panic!("the file was accepted"),
        Err(error) => error,
    }
}

fn no_header() -> CsvOptions {
    CsvOptions { has_header: false, ..CsvOptions::default() }
}

fn utf16(text: &str, little_endian: bool) -> Vec<u8> {
    std::iter::once(0xFEFF)
        .chain(text.encode_utf16())
        .flat_map(|unit| if little_endian { unit.to_le_bytes() } else { unit.to_be_bytes() })
        .collect()
}

#[test]
fn header_gives_the_columns_and_records_carry_their_physical_line() {
    let (columns, got, _) = read_all(b"id,name\n1,Anna\n2,Bo\n", &CsvOptions::default());
    assert_eq!(columns, ["id", "name"]);
    assert_eq!(got, [row(2, &["1", "Anna"]), row(3, &["2", "Bo"])]);
}

#[test]
fn row_numbers_count_skipped_rows_the_header_and_quoted_line_breaks() {
    let input = b"Export 2026-01-31\nsecond preamble line, \"with a quote\n\
                  id,note\n1,\"two\nlines\"\n2,\"three\r\nline\nnote\"\n3,plain\n";
    let options = CsvOptions { skip_rows: 2, ..CsvOptions::default() };
    let (columns, got, _) = read_all(input, &options);
    assert_eq!(columns, ["id", "note"]);
    assert_eq!(
        got,
        [
            row(4, &["1", "two\nlines"]),
            row(6, &["2", "three\r\nline\nnote"]),
            row(9, &["3", "plain"])
        ]
    );
}

#[test]
fn crlf_lf_and_mixed_line_endings_all_work() {
    let expected = [row(2, &["1", "a"]), row(3, &["2", "b"])];
    assert_eq!(rows(b"id,v\r\n1,a\r\n2,b\r\n", &CsvOptions::default()), expected);
    assert_eq!(rows(b"id,v\n1,a\n2,b\n", &CsvOptions::default()), expected);
    assert_eq!(rows(b"id,v\r\n1,a\n2,b\r\n", &CsvOptions::default()), expected);
    // Old Mac line endings: a lone CR ends a line too.
    assert_eq!(rows(b"id,v\r1,a\r2,b\r", &CsvOptions::default()), expected);
}

#[test]
fn a_final_line_without_newline_is_a_record_and_a_trailing_empty_line_is_not() {
    let expected = [row(2, &["1", "a"]), row(3, &["2", "b"])];
    assert_eq!(rows(b"id,v\n1,a\n2,b", &CsvOptions::default()), expected);
    assert_eq!(rows(b"id,v\r\n1,a\r\n2,b", &CsvOptions::default()), expected);
    assert_eq!(rows(b"id,v\n1,a\n2,b\n\n", &CsvOptions::default()), expected);
    assert_eq!(rows(b"id,v\r\n1,a\r\n2,b\r\n\r\n", &CsvOptions::default()), expected);
    // A last field that is quoted and unterminated by a newline.
    assert_eq!(rows(b"id,v\n1,\"a\"", &CsvOptions::default()), [row(2, &["1", "a"])]);
}

#[test]
fn blank_lines_between_records_are_skipped_but_counted() {
    let got = rows(b"\n\nid,v\n\n1,a\r\n\r\n\n2,b\n\n", &CsvOptions::default());
    assert_eq!(got, [row(5, &["1", "a"]), row(8, &["2", "b"])]);
}

#[test]
fn quoted_fields_keep_delimiters_doubled_quotes_and_line_breaks() {
    let input = b"id,text,n\n1,\"a,b\",\"say \"\"hi\"\"\"\n2,\"\",\"x\ny\"\n3,,\n\
                  4,\"\"\"quoted\"\"\nline\",\"\"\"\"\n";
    assert_eq!(
        rows(input, &CsvOptions::default()),
        [
            row(2, &["1", "a,b", "say \"hi\""]),
            row(3, &["2", "", "x\ny"]),
            row(5, &["3", "", ""]),
            row(6, &["4", "\"quoted\"\nline", "\""]),
        ]
    );
}

#[test]
fn ragged_rows_are_rejected_one_by_one_and_reading_goes_on() {
    let input = b"a,b,c\n1,2,3\n1,2\n1,2,3,4\n7,8,9\n";
    let (_, got, rejections) = read_all(input, &CsvOptions::default());
    assert_eq!(
        got,
        [
            row(2, &["1", "2", "3"]),
            Got::Rejected(3, RowParseErrorKind::WrongFieldCount { expected: 3, found: 2 }),
            Got::Rejected(4, RowParseErrorKind::WrongFieldCount { expected: 3, found: 4 }),
            row(5, &["7", "8", "9"]),
        ]
    );
    assert_eq!(rejections[0].cells, ["1", "2"]);
    assert_eq!(rejections[1].cells, ["1", "2", "3", "4"]);
    let message = rejections[0].to_string();
    assert!(
        message.starts_with("line 3: the record has 2 field(s) but the file has 3"),
        "{message}"
    );
}

#[test]
fn without_a_header_the_first_record_sets_the_column_count() {
    let (columns, got, _) = read_all(b"1,a\n2,b,c\n3,c\n", &no_header());
    assert_eq!(columns, ["column_1", "column_2"]);
    assert_eq!(
        got,
        [
            row(1, &["1", "a"]),
            Got::Rejected(2, RowParseErrorKind::WrongFieldCount { expected: 2, found: 3 }),
            row(3, &["3", "c"]),
        ]
    );
    let options = CsvOptions { required_columns: vec!["column_2".into()], ..no_header() };
    assert_eq!(read_all(b"1,a\n", &options).0, ["column_1", "column_2"]);
}

#[test]
fn without_a_header_a_broken_first_record_does_not_decide_the_column_count() {
    let (columns, got, rejections) = read_all(b"\"1,a\n2,b,c\n3,c,d\n", &no_header());
    assert_eq!(columns, ["column_1", "column_2", "column_3"]);
    assert_eq!(
        got,
        [
            Got::Rejected(1, RowParseErrorKind::UnterminatedQuote { lines: 3 }),
            row(2, &["2", "b", "c"]),
            row(3, &["3", "c", "d"]),
        ]
    );
    assert_eq!(rejections[0].cells, ["1,a"]);
}

#[test]
fn an_unterminated_quote_is_rejected_and_the_following_rows_are_still_read() {
    let input = b"id,name,city\n1,Anna,Lund\n2,\"abc,Malmo\n3,Bo,Umea\n4,Cy,Kiruna\n5,Di,Visby\n";
    let (_, got, rejections) = read_all(input, &CsvOptions::default());
    assert_eq!(
        got,
        [
            row(2, &["1", "Anna", "Lund"]),
            Got::Rejected(3, RowParseErrorKind::UnterminatedQuote { lines: 4 }),
            row(4, &["3", "Bo", "Umea"]),
            row(5, &["4", "Cy", "Kiruna"]),
            row(6, &["5", "Di", "Visby"]),
        ]
    );
    assert_eq!(rejections[0].cells, ["2", "abc,Malmo"]);
    let message = rejections[0].to_string();
    assert!(message.starts_with("line 3: a quoted value in this record has no closing quote"));
}

#[test]
fn an_unterminated_quote_closed_by_a_later_quoted_field_does_not_swallow_rows() {
    // The stray quote on line 3 is "closed" by the quote that opens a field on line 5; the
    // resulting record spans lines 3..5 with the wrong field count, so it is a broken quote.
    let input =
        b"id,name,city\n1,Anna,Lund\n2,\"abc,Malmo\n3,Bo,Umea\n4,\"Cy\",Kiruna\n5,Di,Visby\n";
    assert_eq!(
        rows(input, &CsvOptions::default()),
        [
            row(2, &["1", "Anna", "Lund"]),
            Got::Rejected(3, RowParseErrorKind::UnterminatedQuote { lines: 3 }),
            row(4, &["3", "Bo", "Umea"]),
            row(5, &["4", "Cy", "Kiruna"]),
            row(6, &["5", "Di", "Visby"]),
        ]
    );
}

#[test]
fn an_unterminated_quote_on_the_last_line_is_rejected() {
    let expected = [
        row(2, &["1", "a"]),
        row(3, &["2", "b"]),
        Got::Rejected(4, RowParseErrorKind::UnterminatedQuote { lines: 1 }),
    ];
    assert_eq!(rows(b"id,v\n1,a\n2,b\n3,\"c\n", &CsvOptions::default()), expected);
    assert_eq!(rows(b"id,v\n1,a\n2,b\n3,\"c", &CsvOptions::default()), expected);
    let expected_two_lines = [
        row(2, &["1", "a"]),
        Got::Rejected(3, RowParseErrorKind::UnterminatedQuote { lines: 2 }),
        row(4, &["3", "c"]),
    ];
    assert_eq!(rows(b"id,v\n1,a\n2,\"b\n3,c", &CsvOptions::default()), expected_two_lines);
}

#[test]
fn a_quote_that_legitimately_spans_lines_is_accepted() {
    let input = b"id,note\n1,\"first line\nsecond line\"\n2,x\n";
    assert_eq!(
        rows(input, &CsvOptions::default()),
        [row(2, &["1", "first line\nsecond line"]), row(4, &["2", "x"])]
    );
    // At the limit it is still accepted, one line more is not.
    let options = CsvOptions { max_record_lines: 2, ..CsvOptions::default() };
    assert_eq!(rows(input, &options)[0], row(2, &["1", "first line\nsecond line"]));
    let options = CsvOptions { max_record_lines: 1, ..CsvOptions::default() };
    assert_eq!(
        rows(input, &options),
        [
            Got::Rejected(2, RowParseErrorKind::UnterminatedQuote { lines: 1 }),
            Got::Rejected(3, RowParseErrorKind::WrongFieldCount { expected: 2, found: 1 }),
            row(4, &["2", "x"]),
        ]
    );
}

#[test]
fn a_quoted_field_running_past_max_record_lines_is_cut_off_there() {
    let mut input = b"id,v\n1,\"open\n".to_vec();
    for i in 0..20 {
        input.extend_from_slice(format!("{i}\n").as_bytes());
    }
    input.extend_from_slice(b"end\",x\n");
    let options = CsvOptions { max_record_lines: 5, ..CsvOptions::default() };
    let got = rows(&input, &options);
    assert_eq!(got[0], Got::Rejected(2, RowParseErrorKind::UnterminatedQuote { lines: 5 }));
    assert_eq!(
        got[1],
        Got::Rejected(3, RowParseErrorKind::WrongFieldCount { expected: 2, found: 1 })
    );
    assert_eq!(got.len(), 22);
}

#[test]
fn a_line_longer_than_max_record_bytes_is_rejected_and_skipped() {
    let long = "x".repeat(3000);
    let input = format!("id,v\n1,a\n2,{long}\n3,c\n4,\"{long}\"\n5,e");
    let options = CsvOptions { max_record_bytes: 1000, ..CsvOptions::default() };
    let (_, got, rejections) = read_all(input.as_bytes(), &options);
    assert_eq!(
        got,
        [
            row(2, &["1", "a"]),
            Got::Rejected(3, RowParseErrorKind::RecordTooLarge { max_bytes: 1000 }),
            row(4, &["3", "c"]),
            Got::Rejected(5, RowParseErrorKind::RecordTooLarge { max_bytes: 1000 }),
            row(6, &["5", "e"]),
        ]
    );
    assert!(rejections[0].cells[0].starts_with("2,xxx"));
    assert!(rejections[0].cells[0].len() <= TOO_LARGE_EXCERPT_BYTES);
    // A quoted field whose lines add up to more than the limit is cut off where it passes it.
    let input = format!("id,v\n1,\"{}\n{}\n{}\"\n2,b\n", &long[..400], &long[..400], &long[..400]);
    assert_eq!(
        rows(input.as_bytes(), &options),
        [
            Got::Rejected(2, RowParseErrorKind::UnterminatedQuote { lines: 3 }),
            Got::Rejected(3, RowParseErrorKind::WrongFieldCount { expected: 2, found: 1 }),
            Got::Rejected(4, RowParseErrorKind::WrongFieldCount { expected: 2, found: 1 }),
            row(5, &["2", "b"]),
        ]
    );
}

#[test]
fn utf8_with_and_without_bom() {
    let expected = [row(2, &["Åsa", "Öberg", "ä€😀"])];
    let plain = "förnamn;efternamn;övrigt\nÅsa;Öberg;ä€😀\n";
    let options = CsvOptions { delimiter: b';', ..CsvOptions::default() };
    let (columns, got, _) = read_all(plain.as_bytes(), &options);
    assert_eq!(columns, ["förnamn", "efternamn", "övrigt"]);
    assert_eq!(got, expected);
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), plain.as_bytes()].concat();
    let (columns, got, _) = read_all(&with_bom, &options);
    assert_eq!(columns, ["förnamn", "efternamn", "övrigt"]);
    assert_eq!(got, expected);
}

#[test]
fn utf16_le_and_be_with_bom() {
    let text = "namn;ort\r\nÅsa;\"Malmö\nsyd\"\r\n😀;€\r\n";
    for little_endian in [true, false] {
        let bytes = utf16(text, little_endian);
        for declared in [TextEncoding::Utf16, TextEncoding::Utf16Le, TextEncoding::Utf8] {
            let options =
                CsvOptions { delimiter: b';', encoding: declared, ..CsvOptions::default() };
            let (columns, got, _) = read_all(&bytes, &options);
            assert_eq!(columns, ["namn", "ort"]);
            assert_eq!(got, [row(2, &["Åsa", "Malmö\nsyd"]), row(4, &["😀", "€"])]);
        }
    }
}

#[test]
fn a_utf16_bom_wins_over_a_declared_windows_1252() {
    let options = CsvOptions { encoding: TextEncoding::Windows1252, ..CsvOptions::default() };
    let bytes = utf16("a\nä\n", true);
    let mut reader = CsvReader::new("x.csv", &bytes[..], options).unwrap();
    assert_eq!(reader.encoding(), TextEncoding::Utf16Le);
    let mut record = Record::new();
    assert_eq!(reader.read_record(&mut record).unwrap(), ReadOutcome::Record);
    assert_eq!(record.get(0), Some("ä"));
}

#[test]
fn utf16_without_bom_must_name_its_byte_order() {
    let bytes: Vec<u8> = "a\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let options = CsvOptions { encoding: TextEncoding::Utf16, ..CsvOptions::default() };
    let error = open_error(&bytes, options);
    assert!(matches!(error, CsvFileError::Utf16WithoutByteOrderMark { .. }));
    assert!(error.to_string().starts_with("orders.csv: "));
    let options = CsvOptions { encoding: TextEncoding::Utf16Le, ..no_header() };
    assert_eq!(rows(&bytes, &options), [row(1, &["a"])]);
}

#[test]
fn windows_1252_and_iso_8859_1() {
    // "namn;efternamn;x\nÅsa;Öberg;ä€\n" in windows-1252: € is 0x80.
    let bytes = b"namn;efternamn;x\n\xC5sa;\xD6berg;\xE4\x80\n";
    let options = CsvOptions {
        delimiter: b';',
        encoding: TextEncoding::Windows1252,
        ..CsvOptions::default()
    };
    assert_eq!(rows(bytes, &options), [row(2, &["Åsa", "Öberg", "ä€"])]);
    // True Latin-1: 0x80 is the control character U+0080, 0xA4 the currency sign.
    let options = CsvOptions { encoding: TextEncoding::Iso8859_1, ..options };
    assert_eq!(rows(bytes, &options), [row(2, &["Åsa", "Öberg", "ä\u{80}"])]);
    assert_eq!(rows(b"v\n\xA4\xFF\n", &options), [row(2, &["¤ÿ"])]);
}

#[test]
fn invalid_utf8_rejects_only_its_own_row() {
    let input = b"id,name\n1,Anna\n2,\"J\xF6rg\"\n3,Bo\n4,ok\xC3\n";
    let (_, got, rejections) = read_all(input, &CsvOptions::default());
    assert_eq!(
        got,
        [
            row(2, &["1", "Anna"]),
            Got::Rejected(3, RowParseErrorKind::InvalidUtf8 { byte_offset: 4 }),
            row(4, &["3", "Bo"]),
            Got::Rejected(5, RowParseErrorKind::InvalidUtf8 { byte_offset: 4 }),
        ]
    );
    assert_eq!(rejections[0].cells, ["2", "J\u{FFFD}rg"]);
    let message = rejections[0].to_string();
    assert!(message.contains("not valid UTF-8 at byte 4"), "{message}");
    assert!(message.contains("check the template's encoding"), "{message}");
}

#[test]
fn bytes_valid_only_once_fields_are_joined_are_still_invalid() {
    // 0xC3 ends one field and 0xA9 starts the next: together they would read as "é".
    assert_eq!(
        rows(b"a,b\n\xC3,\xA9\n", &CsvOptions::default()),
        [Got::Rejected(2, RowParseErrorKind::InvalidUtf8 { byte_offset: 0 })]
    );
}

#[test]
fn an_empty_file_has_no_columns_and_no_records() {
    let (columns, got, _) = read_all(b"", &CsvOptions::default());
    assert!(columns.is_empty());
    assert!(got.is_empty());
    let (columns, got, _) = read_all(b"", &no_header());
    assert!(columns.is_empty());
    assert!(got.is_empty());
    let options = CsvOptions { required_columns: vec!["id".into()], ..CsvOptions::default() };
    let error = open_error(b"", options);
    assert!(matches!(error, CsvFileError::MissingColumns { ref found, .. } if found.is_empty()));
    assert_eq!(
        error.to_string(),
        "orders.csv: required column(s) \"id\" missing; the file has no columns (it is empty)"
    );
}

#[test]
fn header_only_bom_header_and_skip_rows_past_the_end() {
    let (columns, got, _) = read_all(b"id,name\n", &CsvOptions::default());
    assert_eq!(columns, ["id", "name"]);
    assert!(got.is_empty());
    let (columns, got, _) = read_all(b"\xEF\xBB\xBFid,name", &CsvOptions::default());
    assert_eq!(columns, ["id", "name"]);
    assert!(got.is_empty());
    let options = CsvOptions { skip_rows: 10, ..CsvOptions::default() };
    let (columns, got, _) = read_all(b"id,name\n1,a\n", &options);
    assert!(columns.is_empty());
    assert!(got.is_empty());
}

#[test]
fn quote_none_treats_quotes_as_data() {
    let options = CsvOptions { quote: None, ..CsvOptions::default() };
    let input = b"id,v\n1,\"a\n2,\"b,c\"\n3,x\"\"y\n";
    assert_eq!(
        rows(input, &options),
        [
            row(2, &["1", "\"a"]),
            Got::Rejected(3, RowParseErrorKind::WrongFieldCount { expected: 2, found: 3 }),
            row(4, &["3", "x\"\"y"]),
        ]
    );
}

#[test]
fn semicolon_and_tab_delimiters() {
    let options = CsvOptions { delimiter: b';', ..CsvOptions::default() };
    assert_eq!(rows(b"a;b\n1,5;\"x;y\"\n", &options), [row(2, &["1,5", "x;y"])]);
    let options = CsvOptions { delimiter: b'\t', ..CsvOptions::default() };
    assert_eq!(rows(b"a\tb\n1 2\t\"x\ty\"\n", &options), [row(2, &["1 2", "x\ty"])]);
}

#[test]
fn missing_required_columns_are_all_named_with_the_columns_found() {
    let options = CsvOptions {
        required_columns: vec!["id".into(), "email".into(), "iban".into(), "name".into()],
        ..CsvOptions::default()
    };
    let error = open_error(b"id,Email,name\n1,a@b.se,Anna\n", options);
    match &error {
        CsvFileError::MissingColumns { source_name, missing, found } => {
            assert_eq!(source_name, "orders.csv");
            assert_eq!(missing, &["email", "iban"]);
            assert_eq!(found, &["id", "Email", "name"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "orders.csv: required column(s) \"email\", \"iban\" missing; the file has \"id\", \
         \"Email\", \"name\""
    );
}

#[test]
fn duplicate_column_names_are_refused_and_named() {
    let error = open_error(b"id,name,id,x,name,id\n", CsvOptions::default());
    match &error {
        CsvFileError::DuplicateColumns { duplicates, .. } => {
            assert_eq!(duplicates, &["id", "name"])
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        error.to_string().starts_with("orders.csv: the header names column(s) \"id\", \"name\"")
    );
}

#[test]
fn an_unreadable_header_is_a_file_error() {
    let error = open_error(b"id,n\xE4me\n1,a\n", CsvOptions::default());
    assert!(matches!(
        error,
        CsvFileError::BadHeader {
            row_number: 1,
            problem: RowParseErrorKind::InvalidUtf8 { byte_offset: 4 },
            ..
        }
    ));
    assert!(error.to_string().starts_with("orders.csv: the header on line 1 cannot be read"));
}

#[test]
fn read_errors_name_the_file() {
    let error = match CsvReader::new("broken.csv", FailsAfter(b""), CsvOptions::default()) {
        Ok(_) => panic!("the file was accepted"),
        Err(error) => error,
    };
    assert!(matches!(error, CsvFileError::Io { .. }));
    assert_eq!(error.to_string(), "broken.csv: could not read the file: the connection dropped");

    let mut reader = CsvReader::with_buffer_size(
        "broken.csv",
        FailsAfter(b"id\n1\n2\n"),
        CsvOptions::default(),
        4,
    )
    .unwrap();
    let mut record = Record::new();
    assert_eq!(reader.read_record(&mut record).unwrap(), ReadOutcome::Record);
    let error = loop {
        match reader.read_record(&mut record) {
            Ok(ReadOutcome::Record) => continue,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(error) => break error,
        }
    };
    assert!(
        matches!(error, CsvFileError::Io { ref source_name, .. } if source_name == "broken.csv")
    );
}

#[test]
fn unusable_options_are_all_reported() {
    let options = CsvOptions {
        delimiter: b'\n',
        quote: Some(0xE4),
        max_record_lines: 0,
        max_record_bytes: 0,
        ..CsvOptions::default()
    };
    match open_error(b"a\n", options) {
        CsvFileError::InvalidOptions { source_name, problems } => {
            assert_eq!(source_name, "orders.csv");
            assert_eq!(problems.len(), 4, "{problems:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let options = CsvOptions { quote: Some(b';'), delimiter: b';', ..CsvOptions::default() };
    assert!(matches!(open_error(b"a\n", options), CsvFileError::InvalidOptions { .. }));
}

#[test]
fn bytes_read_reaches_the_file_size() {
    let input = b"id,v\n1,a\n2,b\n";
    let mut reader =
        CsvReader::with_buffer_size("x.csv", &input[..], CsvOptions::default(), 4).unwrap();
    let mut record = Record::new();
    while reader.read_record(&mut record).unwrap() != ReadOutcome::End {}
    assert_eq!(reader.bytes_read(), input.len() as u64);
}

#[test]
fn the_record_is_reused_and_holds_only_the_current_row() {
    let mut reader = CsvReader::new(
        "x.csv",
        &b"a,b\nlong-value,other-long-value\nx,y\n"[..],
        CsvOptions::default(),
    )
    .unwrap();
    let mut record = Record::new();
    assert_eq!(reader.read_record(&mut record).unwrap(), ReadOutcome::Record);
    assert_eq!(reader.read_record(&mut record).unwrap(), ReadOutcome::Record);
    assert_eq!(record.cells().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(record.row_number(), 3);
}

#[test]
fn quoting_that_keeps_reopening_ends_in_a_file_error_not_endless_rereading() {
    // Every line both closes the quote left open by the line before and opens a new one, so
    // each rejected record makes the reader re-read up to max_record_lines lines.
    let input = format!("a,b\n{}", "x\" ,\"y\n".repeat(20_000));
    let error = match read_until_error(input.as_bytes()) {
        Some(error) => error,
        None => panic!("the file was read to the end"),
    };
    assert!(matches!(error, CsvFileError::UnbalancedQuotes { .. }), "{error:?}");
    assert!(error.to_string().contains("check the template's quote character"));
}

fn read_until_error(bytes: &[u8]) -> Option<CsvFileError> {
    let mut reader = CsvReader::new("q.csv", bytes, CsvOptions::default()).ok()?;
    let mut record = Record::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(ReadOutcome::End) => return None,
            Ok(_) => {}
            Err(error) => return Some(error),
        }
    }
}
