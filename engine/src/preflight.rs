//! The pre-flight of one file, in one place: the bytes as delivered → OpenPGP (decrypt and
//! verify, when the template's `crypto` asks for it) → decompression (gzip, zip) → the record
//! reader the template asks for.
//!
//! [`open_records`] is the only way the engine opens a file for its records: the pipeline
//! (`intake check`, imports, the REST preview) and the runner's second read of rows the API
//! refused both use it, so they cannot disagree about what a file holds.
//!
//! The OpenPGP keys and certificates are named in the template by credential reference and
//! resolved when a file is opened ([`crate::m2m::resolve_credential`]); their values only go into
//! the [`PgpOptions`] and are never logged. A message is opened whole before any record is read:
//! its plaintext is spooled to a private temporary file in the system's temporary folder, released
//! only once its integrity and signatures have been checked, and deleted when the reader is
//! dropped.

use std::fs::File;
use std::io::{self, Read};

use intake_parsers::pgp::{PgpError, PgpOptions, Plaintext, open_message};
use intake_parsers::preflight::{CompressedBytes, PreflightReader};

use crate::m2m::resolve_credential;
use crate::pipeline::{PipelineError, RecordReader};
use crate::template::{CryptoConfig, Template};

/// The bytes the decompression step reads: the file as delivered, or the verified plaintext of
/// its OpenPGP message.
pub enum Delivered<R> {
    /// The file as delivered (the template sets no OpenPGP).
    AsDelivered(R),
    /// The verified plaintext of an OpenPGP message.
    Decrypted {
        /// Reads the plaintext from its start.
        reader: File,
        /// Owns the temporary plaintext file, which is deleted when this is dropped.
        plaintext: Plaintext,
        /// The size of the message as delivered, to report progress against.
        message_bytes: u64,
    },
}

impl<R: Read> Read for Delivered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Delivered::AsDelivered(input) => input.read(buf),
            Delivered::Decrypted { reader, .. } => reader.read(buf),
        }
    }
}

/// How much of the file as delivered has been read, to compare with its size.
#[derive(Debug, Clone)]
pub struct DeliveredProgress {
    /// Bytes read by the decompression step.
    read: CompressedBytes,
    /// For an OpenPGP message: (message bytes, plaintext bytes), to scale plaintext progress to
    /// the message's size (the message was read whole when it was opened).
    pgp_scale: Option<(u64, u64)>,
}

impl DeliveredProgress {
    /// Bytes of the file as delivered read so far (for an OpenPGP message: the share of the
    /// message that the plaintext read so far stands for).
    pub fn bytes_read(&self) -> u64 {
        let read = self.read.get();
        match self.pgp_scale {
            None => read,
            Some((message, plaintext)) => {
                let scaled = u128::from(read) * u128::from(message) / u128::from(plaintext.max(1));
                u64::try_from(scaled).unwrap_or(u64::MAX).min(message)
            }
        }
    }
}

/// A file opened for its records, after the whole pre-flight.
pub struct OpenedRecords<R: Read> {
    /// The template's record reader on the file's plaintext (header read, columns checked).
    pub reader: RecordReader<PreflightReader<Delivered<R>>>,
    /// How far through the file as delivered reading is.
    pub progress: DeliveredProgress,
}

/// Opens `input` (named `source_name` in errors) for `template`: refuses settings this release
/// cannot run, opens an OpenPGP message when `crypto` sets `decrypt` or `verify`, starts the
/// decompression (detecting gzip or zip; a zip is spooled and its entry chosen), and opens the
/// template's record reader on the result.
pub fn open_records<R: Read + Send + Sync>(
    template: &Template,
    source_name: &str,
    input: R,
) -> Result<OpenedRecords<R>, PipelineError> {
    let unsupported = template.unsupported();
    if !unsupported.is_empty() {
        return Err(PipelineError::Template {
            source_name: source_name.to_owned(),
            problems: unsupported,
        });
    }
    let delivered = match template.crypto.as_ref().filter(|crypto| crypto.uses_pgp()) {
        Some(crypto) => open_pgp(template, crypto, source_name, input)?,
        None => Delivered::AsDelivered(input),
    };
    let pgp_scale = match &delivered {
        Delivered::AsDelivered(_) => None,
        Delivered::Decrypted { plaintext, message_bytes, .. } => {
            Some((*message_bytes, plaintext.bytes))
        }
    };
    let input = PreflightReader::new(source_name, delivered, template.preflight_options())?;
    let progress = DeliveredProgress { read: input.compressed_bytes(), pgp_scale };
    let reader = RecordReader::open(template, source_name, input)?;
    Ok(OpenedRecords { reader, progress })
}

/// Opens the OpenPGP message `input` with the keys `crypto` names and the template's size limits.
fn open_pgp<R: Read + Send + Sync>(
    template: &Template,
    crypto: &CryptoConfig,
    source_name: &str,
    input: R,
) -> Result<Delivered<R>, PipelineError> {
    let limits = template.preflight_options();
    let mut options = PgpOptions {
        signature_required: crypto.signature_required,
        max_plaintext_bytes: limits.max_decompressed_bytes,
        max_expansion_ratio: limits.max_compression_ratio,
        ..PgpOptions::default()
    };
    let unusable = |setting: &str, problem: String| PipelineError::PgpCredential {
        source_name: source_name.to_owned(),
        setting: setting.to_owned(),
        problem,
    };
    let resolve = |setting: &str, reference: &str| {
        resolve_credential(reference).map_err(|error| unusable(setting, error.to_string()))
    };
    let not_a_key = |reference: &str, expected: &str, error: PgpError| match error {
        PgpError::BadKeyMaterial { reason, .. } => format!(
            "credential '{reference}' does not hold an ASCII-armored OpenPGP {expected}: {reason}"
        ),
        other => other.to_string(),
    };
    if let Some(decrypt) = &crypto.decrypt {
        let setting = "crypto.decrypt.secret_key";
        let key = resolve(setting, &decrypt.secret_key)?;
        options.add_decryption_key(key.expose().as_bytes()).map_err(|error| {
            unusable(setting, not_a_key(&decrypt.secret_key, "secret key", error))
        })?;
        if let Some(reference) = &decrypt.passphrase {
            options.set_passphrase(resolve("crypto.decrypt.passphrase", reference)?.expose());
        }
    }
    for (index, reference) in crypto.verify.iter().flat_map(|v| &v.signers).enumerate() {
        let setting = format!("crypto.verify.signers[{index}]");
        let certificate = resolve(&setting, reference)?;
        options
            .add_signer(certificate.expose().as_bytes())
            .map_err(|error| unusable(&setting, not_a_key(reference, "certificate", error)))?;
    }
    let mut counted = Counted { inner: input, bytes: 0 };
    let plaintext = open_message(source_name, &mut counted, &options, None)?;
    let reader = plaintext
        .reader()
        .map_err(|error| PgpError::Spool { file: source_name.to_owned(), error })?;
    Ok(Delivered::Decrypted { reader, plaintext, message_bytes: counted.bytes })
}

/// Counts the bytes of the message read, for progress.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}
