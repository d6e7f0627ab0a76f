//! The pre-flight of one file, in one place: the bytes as delivered → decompression (gzip, zip)
//! → the record reader the template asks for.
//!
//! [`open_records`] is the only way the engine opens a file for its records: the pipeline
//! (`intake check`, imports, the REST preview) and the runner's second read of rows the API
//! refused both use it, so they cannot disagree about what a file holds.

use std::io::Read;

use intake_parsers::preflight::{CompressedBytes, PreflightReader};

use crate::pipeline::{PipelineError, RecordReader};
use crate::template::Template;

/// How much of the file as delivered has been read, to compare with its size.
#[derive(Debug, Clone)]
pub struct DeliveredProgress {
    /// Bytes read by the decompression step.
    read: CompressedBytes,
}

impl DeliveredProgress {
    /// Bytes of the file as delivered read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.get()
    }
}

/// A file opened for its records, after the whole pre-flight.
pub struct OpenedRecords<R: Read> {
    /// The template's record reader on the file's plaintext (header read, columns checked).
    pub reader: RecordReader<PreflightReader<R>>,
    /// How far through the file as delivered reading is.
    pub progress: DeliveredProgress,
}

/// Opens `input` (named `source_name` in errors) for `template`: refuses settings this release
/// cannot run, starts the decompression (detecting gzip or zip; a zip is spooled and its entry
/// chosen), and opens the template's record reader on the result.
pub fn open_records<R: Read>(
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
    let input = PreflightReader::new(source_name, input, template.preflight_options())?;
    let progress = DeliveredProgress { read: input.compressed_bytes() };
    let reader = RecordReader::open(template, source_name, input)?;
    Ok(OpenedRecords { reader, progress })
}
