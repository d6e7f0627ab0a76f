//! Physical lines of a decoded text file, numbered and bounded in length: what the line-based
//! formats (JSON Lines, fixed-width) read, so that an over-long line is one rejected record, never
//! a runaway buffer.

use std::io::{self, BufRead, BufReader, Read};

use crate::encoding::DecodingReader;

/// At most this many bytes of a line are kept in a rejection, for the operator.
const EXCERPT_BYTES: usize = 1024;

/// One physical line.
pub(crate) enum Line<'a> {
    /// The line's bytes without the line ending (`\n` or `\r\n`).
    Text(&'a [u8]),
    /// The line is longer than the limit; it was skipped. The bytes are its start.
    TooLong(&'a [u8]),
}

/// Reads the lines of a decoded file one at a time, reusing one buffer.
pub(crate) struct LineReader<R: Read> {
    input: BufReader<DecodingReader<R>>,
    line: Vec<u8>,
    line_number: u64,
    max_line_bytes: usize,
}

impl<R: Read> LineReader<R> {
    /// Lines of `input`, each at most `max_line_bytes` long (line ending excluded).
    pub(crate) fn new(input: DecodingReader<R>, max_line_bytes: usize) -> Self {
        Self {
            input: BufReader::with_capacity(64 * 1024, input),
            line: Vec::new(),
            line_number: 0,
            max_line_bytes,
        }
    }

    /// The 1-based number of the line last returned (0 before the first).
    pub(crate) fn line_number(&self) -> u64 {
        self.line_number
    }

    /// Bytes of the underlying file read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.input.get_ref().bytes_read()
    }

    /// The next line, or `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let Some(fits) = read_line(&mut self.input, &mut self.line, self.max_line_bytes)? else {
            return Ok(None);
        };
        self.line_number += 1;
        Ok(Some(if fits {
            Line::Text(&self.line)
        } else {
            Line::TooLong(&self.line[..self.line.len().min(EXCERPT_BYTES)])
        }))
    }
}

/// Reads one line of `input` into `line`, without its ending (`\n` or `\r\n`): `None` at the
/// end of the input, `Some(true)` for a line of at most `max_line_bytes`, `Some(false)` for a
/// longer one, which is skipped up to its end without being buffered (`line` keeps its start).
pub(crate) fn read_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    max_line_bytes: usize,
) -> io::Result<Option<bool>> {
    line.clear();
    // One byte more than the limit, plus the line ending, tells an over-long line apart.
    let limit = max_line_bytes as u64 + 2;
    if input.take(limit).read_until(b'\n', line)? == 0 {
        return Ok(None);
    }
    let terminated = line.last() == Some(&b'\n');
    if terminated {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.len() <= max_line_bytes {
        return Ok(Some(true));
    }
    if !terminated {
        skip_rest_of_line(input)?;
    }
    Ok(Some(false))
}

/// Skips up to and including the next line ending without buffering what is skipped.
fn skip_rest_of_line(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                return Ok(());
            }
            None => {
                let len = buf.len();
                input.consume(len);
            }
        }
    }
}

/// At most 1 KiB of a line as text (U+FFFD for bytes that are not UTF-8), for the operator.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::TextEncoding;

    fn lines(text: &[u8], max: usize) -> Vec<Result<String, String>> {
        let decoded = DecodingReader::new(text, TextEncoding::Utf8).unwrap();
        let mut reader = LineReader::new(decoded, max);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(match line {
                Line::Text(bytes) => Ok(excerpt(bytes)),
                Line::TooLong(bytes) => Err(excerpt(bytes)),
            });
        }
        out
    }

    #[test]
    fn line_endings_are_stripped_and_a_last_line_without_one_counts() {
        assert_eq!(
            lines(b"a\r\nbb\n\nccc", 10),
            vec![Ok("a".into()), Ok("bb".into()), Ok("".into()), Ok("ccc".into())]
        );
    }

    #[test]
    fn an_over_long_line_is_skipped_whole_and_reading_goes_on() {
        assert_eq!(
            lines(b"1234\n123456789\nok\n12345", 4),
            vec![Ok("1234".into()), Err("123456".into()), Ok("ok".into()), Err("12345".into())]
        );
    }
}
