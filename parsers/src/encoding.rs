//! Text encodings: the names a template may give in `encoding`, byte-order-mark detection, and
//! [`DecodingReader`], which turns the bytes of a file into UTF-8 for the text parsers.
//!
//! Rules every text parser gets from here:
//! - A byte order mark at the very start of a file always wins over the declared encoding and is
//!   stripped: a UTF-8 BOM means UTF-8, `FF FE` means UTF-16LE, `FE FF` means UTF-16BE. So a
//!   UTF-8-with-BOM file declared `utf-8` works, and a file declared `windows-1252` that starts
//!   with a UTF-16 BOM is read as UTF-16 (a windows-1252 file cannot sensibly start with `ÿþ`).
//! - UTF-8 input is passed through untouched (apart from the BOM): it is *not* validated or
//!   repaired here, so that a parser can reject just the record with the bad bytes.
//! - Every other encoding is decoded into UTF-8 while streaming, in chunks, so memory stays
//!   bounded. UTF-16 and windows-1252 use `encoding_rs`; malformed UTF-16 (a lone surrogate, an
//!   odd trailing byte) becomes U+FFFD. `iso-8859-1` is true Latin-1 (byte value = code point),
//!   not the windows-1252 that web browsers (and `encoding_rs`) substitute for that label.
//!
//! This module does not know about records or files' structure; it only produces text bytes.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use encoding_rs::{CoderResult, Decoder, ISO_8859_15, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// A text encoding a template may name in `encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextEncoding {
    /// UTF-8 (`utf-8`, `utf8`, `utf-8-sig`); a byte order mark is optional and stripped.
    Utf8,
    /// UTF-16 in the byte order given by the file's byte order mark (`utf-16`); a file without
    /// a byte order mark is refused, because its byte order cannot be known.
    Utf16,
    /// UTF-16, little endian (`utf-16le`).
    Utf16Le,
    /// UTF-16, big endian (`utf-16be`).
    Utf16Be,
    /// Windows code page 1252, the usual "ANSI" of Western European Windows (`windows-1252`,
    /// `cp1252`).
    Windows1252,
    /// ISO 8859-1, true Latin-1: every byte is the code point of the same value (`iso-8859-1`,
    /// `latin1`, `latin-1`).
    Iso8859_1,
    /// ISO 8859-15, Latin-9: Latin-1 with the euro sign (`iso-8859-15`, `latin9`, `latin-9`).
    Iso8859_15,
}

/// Every accepted label, lower case, with the encoding it names.
const LABELS: &[(&str, TextEncoding)] = &[
    ("utf-8", TextEncoding::Utf8),
    ("utf8", TextEncoding::Utf8),
    ("utf-8-sig", TextEncoding::Utf8),
    ("utf-16", TextEncoding::Utf16),
    ("utf16", TextEncoding::Utf16),
    ("utf-16le", TextEncoding::Utf16Le),
    ("utf-16be", TextEncoding::Utf16Be),
    ("windows-1252", TextEncoding::Windows1252),
    ("cp1252", TextEncoding::Windows1252),
    ("iso-8859-1", TextEncoding::Iso8859_1),
    ("latin1", TextEncoding::Iso8859_1),
    ("latin-1", TextEncoding::Iso8859_1),
    ("iso-8859-15", TextEncoding::Iso8859_15),
    ("latin9", TextEncoding::Iso8859_15),
    ("latin-9", TextEncoding::Iso8859_15),
];

impl TextEncoding {
    /// The canonical label, as accepted by [`FromStr`] and written by `Display` and serde.
    pub fn label(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Utf16 => "utf-16",
            Self::Utf16Le => "utf-16le",
            Self::Utf16Be => "utf-16be",
            Self::Windows1252 => "windows-1252",
            Self::Iso8859_1 => "iso-8859-1",
            Self::Iso8859_15 => "iso-8859-15",
        }
    }

    /// All accepted labels (lower case; matching ignores case and treats `_` as `-`).
    pub fn labels() -> impl Iterator<Item = &'static str> {
        LABELS.iter().map(|(label, _)| *label)
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A label in a template's `encoding` that names no supported encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encoding \"{label}\": the supported encodings are {}", supported_labels())]
pub struct UnknownEncoding {
    /// The label as written.
    pub label: String,
}

fn supported_labels() -> String {
    TextEncoding::labels().collect::<Vec<_>>().join(", ")
}

impl FromStr for TextEncoding {
    type Err = UnknownEncoding;

    fn from_str(label: &str) -> Result<Self, Self::Err> {
        let wanted = label.trim().to_ascii_lowercase().replace('_', "-");
        LABELS
            .iter()
            .find(|(known, _)| *known == wanted)
            .map(|(_, encoding)| *encoding)
            .ok_or_else(|| UnknownEncoding { label: label.to_owned() })
    }
}

impl serde::Serialize for TextEncoding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.label())
    }
}

impl<'de> serde::Deserialize<'de> for TextEncoding {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let label = Cow::<'de, str>::deserialize(deserializer)?;
        label.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for TextEncoding {
    fn schema_name() -> Cow<'static, str> {
        "TextEncoding".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::TextEncoding").into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let labels: Vec<&str> = TextEncoding::labels().collect();
        schemars::json_schema!({
            "type": "string",
            "enum": labels,
            "description": "The text encoding of the file. A byte order mark at the start of \
                the file always wins. utf-16 needs a byte order mark; iso-8859-1 is true Latin-1."
        })
    }
}

/// Why a [`DecodingReader`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    /// Reading the start of the file failed.
    #[error("could not read the file: {0}")]
    Io(#[from] io::Error),
    /// The template says `utf-16` but the file has no byte order mark.
    #[error(
        "the encoding is utf-16 but the file has no byte order mark, so its byte order is \
         unknown: set the template's encoding to utf-16le or utf-16be"
    )]
    Utf16WithoutByteOrderMark,
}

/// The default size of the chunks read from the underlying reader when transcoding.
const RAW_CHUNK: usize = 32 * 1024;

/// How the bytes after the byte order mark become UTF-8.
enum Transcoder {
    /// UTF-8 in, UTF-8 out: bytes are passed through.
    Utf8,
    /// Any encoding `encoding_rs` decodes (UTF-16, windows-1252, ISO 8859-15).
    EncodingRs(Decoder),
    /// True Latin-1: each byte is the code point of the same value.
    Latin1,
}

/// A reader that yields the UTF-8 text of a file in any [`TextEncoding`], streaming.
///
/// The byte order mark, if any, is read when the reader is built (see the module docs for the
/// rules) and never appears in the output. For UTF-8 the bytes are passed through unchanged,
/// invalid sequences included; for every other encoding the output is always valid UTF-8.
pub struct DecodingReader<R> {
    inner: R,
    encoding: TextEncoding,
    transcoder: Transcoder,
    /// Raw bytes read but not yet handed on (the bytes read while looking for a BOM, and the
    /// current chunk when transcoding).
    raw: Vec<u8>,
    raw_pos: usize,
    raw_len: usize,
    raw_eof: bool,
    /// Decoded bytes not yet handed on (transcoding only).
    decoded: Vec<u8>,
    decoded_pos: usize,
    decoded_len: usize,
    /// The decoder has been flushed at the end of the input; nothing more will come.
    finished: bool,
    bytes_read: u64,
}

impl<R: Read> DecodingReader<R> {
    /// Reads the start of `inner` for a byte order mark and prepares to decode the rest as
    /// `declared` (or as the byte order mark says).
    pub fn new(inner: R, declared: TextEncoding) -> Result<Self, EncodingError> {
        Self::with_chunk_size(inner, declared, RAW_CHUNK)
    }

    /// Like [`DecodingReader::new`] with the size of the raw chunks read when transcoding (tiny
    /// sizes let tests split multi-byte characters across chunks).
    pub(crate) fn with_chunk_size(
        mut inner: R,
        declared: TextEncoding,
        chunk_size: usize,
    ) -> Result<Self, EncodingError> {
        let chunk_size = chunk_size.max(4);
        let mut start = [0u8; 3];
        let mut have = 0;
        let mut bytes_read = 0u64;
        while have < start.len() {
            let n = read_retrying(&mut inner, &mut start[have..])?;
            if n == 0 {
                break;
            }
            have += n;
            bytes_read += n as u64;
        }
        let (encoding, bom_len) = match &start[..have] {
            [0xEF, 0xBB, 0xBF] => (TextEncoding::Utf8, 3),
            [0xFF, 0xFE, ..] => (TextEncoding::Utf16Le, 2),
            [0xFE, 0xFF, ..] => (TextEncoding::Utf16Be, 2),
            [] if declared == TextEncoding::Utf16 => (TextEncoding::Utf16Le, 0),
            _ if declared == TextEncoding::Utf16 => {
                return Err(EncodingError::Utf16WithoutByteOrderMark);
            }
            _ => (declared, 0),
        };
        let transcoder = match encoding {
            TextEncoding::Utf8 => Transcoder::Utf8,
            TextEncoding::Utf16 | TextEncoding::Utf16Le => {
                Transcoder::EncodingRs(UTF_16LE.new_decoder_without_bom_handling())
            }
            TextEncoding::Utf16Be => {
                Transcoder::EncodingRs(UTF_16BE.new_decoder_without_bom_handling())
            }
            TextEncoding::Windows1252 => {
                Transcoder::EncodingRs(WINDOWS_1252.new_decoder_without_bom_handling())
            }
            TextEncoding::Iso8859_15 => {
                Transcoder::EncodingRs(ISO_8859_15.new_decoder_without_bom_handling())
            }
            TextEncoding::Iso8859_1 => Transcoder::Latin1,
        };
        let transcoding = !matches!(transcoder, Transcoder::Utf8);
        let mut raw = vec![0u8; if transcoding { chunk_size } else { start.len() }];
        let leftover = &start[bom_len..have];
        raw[..leftover.len()].copy_from_slice(leftover);
        let decoded = if transcoding { vec![0u8; chunk_size * 3 + 16] } else { Vec::new() };
        Ok(Self {
            inner,
            encoding,
            transcoder,
            raw,
            raw_pos: 0,
            raw_len: leftover.len(),
            raw_eof: false,
            decoded,
            decoded_pos: 0,
            decoded_len: 0,
            finished: false,
            bytes_read,
        })
    }

    /// The encoding in effect: the declared one, or the one the byte order mark named.
    pub fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    /// Bytes consumed from the underlying reader so far (byte order mark included).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_raw_chunk(&mut self) -> io::Result<()> {
        let n = read_retrying(&mut self.inner, &mut self.raw)?;
        self.bytes_read += n as u64;
        self.raw_pos = 0;
        self.raw_len = n;
        self.raw_eof = n == 0;
        Ok(())
    }

    /// Decodes the next piece of raw input into `self.decoded`; false once all is decoded.
    fn decode_more(&mut self) -> io::Result<bool> {
        loop {
            if self.finished {
                return Ok(false);
            }
            if self.raw_pos == self.raw_len && !self.raw_eof {
                self.read_raw_chunk()?;
            }
            let src = &self.raw[self.raw_pos..self.raw_len];
            let last = self.raw_eof;
            let (read, written, input_done) = match &mut self.transcoder {
                Transcoder::EncodingRs(decoder) => {
                    let (result, read, written, _replaced) =
                        decoder.decode_to_utf8(src, &mut self.decoded, last);
                    (read, written, result == CoderResult::InputEmpty)
                }
                Transcoder::Latin1 => {
                    let (read, written) = latin1_to_utf8(src, &mut self.decoded);
                    (read, written, read == src.len())
                }
                Transcoder::Utf8 => (0, 0, true),
            };
            self.raw_pos += read;
            self.decoded_pos = 0;
            self.decoded_len = written;
            if last && input_done {
                self.finished = true;
            }
            if written > 0 {
                return Ok(true);
            }
        }
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        if let Transcoder::Utf8 = self.transcoder {
            if self.raw_pos < self.raw_len {
                let n = dst.len().min(self.raw_len - self.raw_pos);
                dst[..n].copy_from_slice(&self.raw[self.raw_pos..self.raw_pos + n]);
                self.raw_pos += n;
                return Ok(n);
            }
            let n = read_retrying(&mut self.inner, dst)?;
            self.bytes_read += n as u64;
            return Ok(n);
        }
        if self.decoded_pos == self.decoded_len && !self.decode_more()? {
            return Ok(0);
        }
        let n = dst.len().min(self.decoded_len - self.decoded_pos);
        dst[..n].copy_from_slice(&self.decoded[self.decoded_pos..self.decoded_pos + n]);
        self.decoded_pos += n;
        Ok(n)
    }
}

/// Reads once, retrying reads that were merely interrupted.
pub(crate) fn read_retrying<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Latin-1 to UTF-8: as many whole characters as fit; returns (bytes read, bytes written).
fn latin1_to_utf8(src: &[u8], dst: &mut [u8]) -> (usize, usize) {
    let (mut read, mut written) = (0, 0);
    while read < src.len() {
        // Copy the run of ASCII bytes in one go; they are the same in UTF-8.
        let rest = &src[read..];
        let ascii = rest.iter().position(|&b| b >= 0x80).unwrap_or(rest.len());
        let run = ascii.min(dst.len() - written);
        dst[written..written + run].copy_from_slice(&rest[..run]);
        read += run;
        written += run;
        if run < ascii || read == src.len() {
            break; // dst is full, or all is done
        }
        if written + 2 > dst.len() {
            break;
        }
        let byte = src[read];
        dst[written] = 0xC0 | (byte >> 6);
        dst[written + 1] = 0x80 | (byte & 0x3F);
        read += 1;
        written += 2;
    }
    (read, written)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    use crate::test_support::OneByteAtATime;

    fn decode_all(bytes: &[u8], declared: TextEncoding, chunk: usize) -> (TextEncoding, Vec<u8>) {
        let mut reader =
            DecodingReader::with_chunk_size(OneByteAtATime(bytes), declared, chunk).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(reader.bytes_read(), bytes.len() as u64);
        (reader.encoding(), out)
    }

    fn utf16(text: &str, little_endian: bool, bom: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        let units = bom.then_some(0xFEFF).into_iter().chain(text.encode_utf16());
        for unit in units {
            if little_endian {
                bytes.extend_from_slice(&unit.to_le_bytes());
            } else {
                bytes.extend_from_slice(&unit.to_be_bytes());
            }
        }
        bytes
    }

    #[test]
    fn labels_parse_case_insensitively_and_unknown_lists_the_supported_ones() {
        assert_eq!("UTF-8".parse::<TextEncoding>().unwrap(), TextEncoding::Utf8);
        assert_eq!("utf8".parse::<TextEncoding>().unwrap(), TextEncoding::Utf8);
        assert_eq!("utf-8-sig".parse::<TextEncoding>().unwrap(), TextEncoding::Utf8);
        assert_eq!("utf-16".parse::<TextEncoding>().unwrap(), TextEncoding::Utf16);
        assert_eq!("UTF-16LE".parse::<TextEncoding>().unwrap(), TextEncoding::Utf16Le);
        assert_eq!("utf_16be".parse::<TextEncoding>().unwrap(), TextEncoding::Utf16Be);
        assert_eq!("CP1252".parse::<TextEncoding>().unwrap(), TextEncoding::Windows1252);
        assert_eq!("Windows-1252".parse::<TextEncoding>().unwrap(), TextEncoding::Windows1252);
        assert_eq!("latin1".parse::<TextEncoding>().unwrap(), TextEncoding::Iso8859_1);
        assert_eq!("Latin-1".parse::<TextEncoding>().unwrap(), TextEncoding::Iso8859_1);
        assert_eq!("ISO-8859-1".parse::<TextEncoding>().unwrap(), TextEncoding::Iso8859_1);
        assert_eq!("iso-8859-15".parse::<TextEncoding>().unwrap(), TextEncoding::Iso8859_15);
        let error = "ebcdic".parse::<TextEncoding>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"ebcdic\""), "{message}");
        assert!(message.contains("utf-16le") && message.contains("windows-1252"), "{message}");
    }

    #[test]
    fn every_canonical_label_round_trips_through_serde() {
        for (_, encoding) in LABELS {
            let json = serde_json::to_string(encoding).unwrap();
            assert_eq!(json, format!("\"{}\"", encoding.label()));
            assert_eq!(serde_json::from_str::<TextEncoding>(&json).unwrap(), *encoding);
        }
        assert!(serde_json::from_str::<TextEncoding>("\"klingon\"").is_err());
        let schema = schemars::schema_for!(TextEncoding);
        let schema = serde_json::to_value(schema).unwrap();
        assert!(schema["enum"].as_array().unwrap().contains(&"latin-1".into()));
    }

    #[test]
    fn utf8_passes_through_unchanged_even_when_invalid_and_a_bom_is_stripped() {
        let bytes = b"a\xffb\xc3\xa5\n";
        assert_eq!(decode_all(bytes, TextEncoding::Utf8, 4).1, bytes.to_vec());
        let with_bom = b"\xef\xbb\xbfid\n";
        assert_eq!(
            decode_all(with_bom, TextEncoding::Utf8, 4),
            (TextEncoding::Utf8, b"id\n".to_vec())
        );
        // A UTF-8 BOM wins over a declared UTF-16.
        assert_eq!(decode_all(with_bom, TextEncoding::Utf16Le, 4).0, TextEncoding::Utf8);
    }

    #[test]
    fn utf16_follows_its_bom_and_decodes_across_tiny_chunks() {
        let text = "Åsa;€;😀\r\nz";
        for little_endian in [true, false] {
            let bytes = utf16(text, little_endian, true);
            for declared in [TextEncoding::Utf16, TextEncoding::Utf8, TextEncoding::Windows1252] {
                for chunk in [1, 3, 5, 64] {
                    let (encoding, out) = decode_all(&bytes, declared, chunk);
                    let expected =
                        if little_endian { TextEncoding::Utf16Le } else { TextEncoding::Utf16Be };
                    assert_eq!(encoding, expected);
                    assert_eq!(String::from_utf8(out).unwrap(), text);
                }
            }
        }
    }

    #[test]
    fn utf16_without_bom_needs_the_byte_order_named() {
        let bytes = utf16("id\n", true, false);
        let error = DecodingReader::new(&bytes[..], TextEncoding::Utf16).err().unwrap();
        assert!(matches!(error, EncodingError::Utf16WithoutByteOrderMark));
        assert!(error.to_string().contains("utf-16le or utf-16be"));
        let (_, out) = decode_all(&bytes, TextEncoding::Utf16Le, 4);
        assert_eq!(out, b"id\n");
        let (_, out) = decode_all(&utf16("id\n", false, false), TextEncoding::Utf16Be, 4);
        assert_eq!(out, b"id\n");
        // An empty file has no BOM and nothing to decode: that is fine.
        assert_eq!(decode_all(b"", TextEncoding::Utf16, 4).1, b"");
    }

    #[test]
    fn windows_1252_and_latin1_differ_on_0x80() {
        let bytes = [0xC5, b's', b'a', b';', 0xD6, b';', 0xE4, 0x80];
        let (_, out) = decode_all(&bytes, TextEncoding::Windows1252, 3);
        assert_eq!(String::from_utf8(out).unwrap(), "Åsa;Ö;ä€");
        let (_, out) = decode_all(&bytes, TextEncoding::Iso8859_1, 3);
        assert_eq!(String::from_utf8(out).unwrap(), "Åsa;Ö;ä\u{80}");
        let (_, out) = decode_all(&[0xA4, 0xFF], TextEncoding::Iso8859_15, 1);
        assert_eq!(String::from_utf8(out).unwrap(), "€ÿ");
        let (_, out) = decode_all(&[0xA4, 0xFF], TextEncoding::Iso8859_1, 1);
        assert_eq!(String::from_utf8(out).unwrap(), "¤ÿ");
    }

    #[test]
    fn latin1_conversion_stops_before_a_character_that_does_not_fit() {
        let mut dst = [0u8; 3];
        assert_eq!(latin1_to_utf8(&[b'a', 0xE9, 0xE9], &mut dst), (2, 3));
        assert_eq!(&dst, "aé".as_bytes());
        let mut dst = [0u8; 2];
        assert_eq!(latin1_to_utf8(b"abc", &mut dst), (2, 2));
        let mut dst = [0u8; 16];
        assert_eq!(latin1_to_utf8(&[0xC5, b's', b'a', 0xFF], &mut dst), (4, 6));
        assert_eq!(&dst[..6], "Åsaÿ".as_bytes());
    }
}
