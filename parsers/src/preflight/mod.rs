//! Pre-flight: the bytes of a file as it was delivered in, the plaintext bytes the parsers read
//! out.
//!
//! Files often arrive compressed (`payments.csv.gz`, `export.zip`). [`PreflightReader`] is a
//! streaming [`std::io::Read`] adapter put in front of every parser so that every path (`intake
//! check`, imports, the REST preview) reads compressed files the same way, in bounded memory:
//!
//! - gzip (every member of a multi-member file) is inflated as a stream;
//! - zip needs random access to its central directory, so the delivered bytes are spooled to a
//!   temporary file first (never to memory); one entry is then inflated as a stream. Entry names
//!   are only compared, never used as file system paths;
//! - a plain file passes through untouched (no copy).
//!
//! Compression bombs fail fast: the inflated output is counted while it streams and reading
//! stops with a [`PreflightError`] as soon as it passes [`PreflightOptions::max_decompressed_bytes`]
//! or [`PreflightOptions::max_compression_ratio`], never after inflating everything.
//!
//! OpenPGP decryption and signature verification come before this (see [`crate::pgp`]): the
//! engine feeds the verified plaintext of a message to a [`PreflightReader`].

mod decompress;

pub use decompress::{CompressedBytes, PreflightReader};

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Default [`PreflightOptions::max_decompressed_bytes`]: 10 GiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// Default [`PreflightOptions::max_compression_ratio`]: 200 plaintext bytes per delivered byte.
pub const DEFAULT_MAX_COMPRESSION_RATIO: u64 = 200;
/// The compression ratio is only checked once this much plaintext has come out, so that small
/// files that compress very well (a header and a few repeated rows) are never refused.
pub const RATIO_CHECK_FLOOR_BYTES: u64 = 1024 * 1024;

/// How the delivered bytes are turned into plaintext: chosen per template, because the file name
/// alone is not always trustworthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decompression {
    /// Detect by magic bytes (gzip `1f 8b`, zip `PK\x03\x04`); the `.gz` / `.zip` extension of
    /// the file name is used as a hint when the file is too short to tell.
    #[default]
    Auto,
    /// Always gzip (all members of a multi-member file).
    Gzip,
    /// Always zip: one entry is read.
    Zip,
    /// Never decompress: the bytes are the plaintext.
    None,
}

impl fmt::Display for Decompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decompression::Auto => "auto",
            Decompression::Gzip => "gzip",
            Decompression::Zip => "zip",
            Decompression::None => "none",
        })
    }
}

/// The runtime options of a [`PreflightReader`], built by the engine from a template's `crypto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightOptions {
    /// How to decompress.
    pub decompression: Decompression,
    /// The zip entry to read; `None` reads the only file entry of the archive.
    pub zip_entry: Option<String>,
    /// Reading stops with an error once more plaintext than this has come out.
    pub max_decompressed_bytes: u64,
    /// Reading stops with an error once the plaintext is more than this many times the delivered
    /// bytes read (checked from [`RATIO_CHECK_FLOOR_BYTES`] of plaintext on).
    pub max_compression_ratio: u64,
}

impl Default for PreflightOptions {
    fn default() -> Self {
        Self {
            decompression: Decompression::Auto,
            zip_entry: None,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_compression_ratio: DEFAULT_MAX_COMPRESSION_RATIO,
        }
    }
}

/// Why a file could not be turned into plaintext. Every message names the file.
#[derive(Debug, Error)]
pub enum PreflightError {
    /// Reading the delivered bytes (or the temporary spool file) failed.
    #[error("{source_name}: could not read the file: {source}")]
    Io {
        /// The file.
        source_name: String,
        /// The error from the reader.
        #[source]
        source: std::io::Error,
    },
    /// The compressed data is damaged or truncated.
    #[error("{source_name}: the {format} data is corrupt or truncated: {detail}")]
    Corrupt {
        /// The file.
        source_name: String,
        /// `gzip` or `zip`.
        format: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// More plaintext came out than [`PreflightOptions::max_decompressed_bytes`] allows.
    #[error(
        "{source_name}: decompressed size limit exceeded: more than {limit} bytes \
         (max_decompressed_bytes) came out after reading {compressed} compressed bytes; \
         refusing a possible decompression bomb"
    )]
    TooLarge {
        /// The file.
        source_name: String,
        /// The limit.
        limit: u64,
        /// Plaintext bytes seen when reading stopped.
        decompressed: u64,
        /// Delivered bytes read when reading stopped.
        compressed: u64,
    },
    /// The plaintext grew more than [`PreflightOptions::max_compression_ratio`] times the
    /// delivered bytes.
    #[error(
        "{source_name}: compression ratio limit exceeded: {decompressed} bytes came out of \
         {compressed} compressed bytes, more than {limit}:1 (max_compression_ratio); refusing a \
         possible decompression bomb"
    )]
    RatioExceeded {
        /// The file.
        source_name: String,
        /// The limit (plaintext bytes per delivered byte).
        limit: u64,
        /// Plaintext bytes seen when reading stopped.
        decompressed: u64,
        /// Delivered bytes read when reading stopped.
        compressed: u64,
    },
    /// The zip archive has several file entries and the template does not say which to read.
    #[error(
        "{source_name}: the zip archive has {} file entries ({}); set crypto.zip_entry to the \
         one to read",
        .entries.len(), quoted(.entries)
    )]
    SeveralZipEntries {
        /// The file.
        source_name: String,
        /// The names of the file entries.
        entries: Vec<String>,
    },
    /// The zip archive has no file entry (or not the one asked for).
    #[error("{source_name}: the zip archive has no file entry {wanted}; it has: {}", quoted(.entries))]
    ZipEntryNotFound {
        /// The file.
        source_name: String,
        /// `named "…"`, or `at all`.
        wanted: String,
        /// The names of the file entries.
        entries: Vec<String>,
    },
    /// Entries of the zip archive share compressed data (an overlapping-entry zip bomb).
    #[error(
        "{source_name}: the zip archive has entries that share the same compressed data \
         (an overlapping-entry zip bomb); refusing it"
    )]
    OverlappingZipEntries {
        /// The file.
        source_name: String,
    },
    /// The zip entry is encrypted; zip passwords are not supported.
    #[error(
        "{source_name}: the zip entry \"{entry}\" is encrypted; encrypted zip files are not supported"
    )]
    EncryptedZipEntry {
        /// The file.
        source_name: String,
        /// The entry.
        entry: String,
    },
    /// The zip entry uses a compression method other than stored or deflate.
    #[error(
        "{source_name}: the zip entry \"{entry}\" uses the unsupported compression method \
         {method}; only stored and deflate are supported"
    )]
    UnsupportedZipMethod {
        /// The file.
        source_name: String,
        /// The entry.
        entry: String,
        /// The method, as the zip crate names it.
        method: String,
    },
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

impl PreflightError {
    /// Wraps the error as an [`std::io::Error`], so it can travel through the parsers' readers;
    /// [`PreflightError::from_io`] gets it back.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }

    /// The pre-flight error inside an I/O error made by [`PreflightError::into_io`], if any.
    pub fn from_io(error: &std::io::Error) -> Option<&PreflightError> {
        error.get_ref().and_then(|inner| inner.downcast_ref::<PreflightError>())
    }
}
