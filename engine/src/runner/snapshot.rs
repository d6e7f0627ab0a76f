//! A local, private copy of the file being imported, hashed while it is copied.

use std::io;
use std::path::{Path, PathBuf};

use intake_sources::Source;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::RunnerError;

/// The bytes of one file version as they were when claimed: the claim's content hash is the hash
/// of exactly these bytes, and the import reads exactly these bytes.
pub(super) struct Snapshot {
    file: tempfile::NamedTempFile,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// How many bytes were copied.
    pub bytes: u64,
}

impl Snapshot {
    /// Where the copy is.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Streams `path` of `source` into a temporary file in `work_dir` (the system's temporary folder
/// when none), 64 KiB at a time, hashing as it goes.
pub(super) async fn take(
    source: &dyn Source,
    path: &str,
    work_dir: Option<&Path>,
) -> Result<Snapshot, RunnerError> {
    let snapshot_error = |error: io::Error| RunnerError::Snapshot { path: path.to_owned(), error };
    let dir: PathBuf = work_dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let temp = tokio::task::spawn_blocking(move || {
        tempfile::Builder::new().prefix("intake-import-").suffix(".snapshot").tempfile_in(dir)
    })
    .await
    .map_err(|e| RunnerError::Internal(format!("temporary file task failed: {e}")))?
    .map_err(snapshot_error)?;
    let mut out = tokio::fs::File::from_std(temp.as_file().try_clone().map_err(snapshot_error)?);
    let mut input = source.open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = input.read(&mut buffer).await.map_err(|error| {
            RunnerError::Source(intake_sources::SourceError::Io {
                source_name: source.name().to_owned(),
                path: path.to_owned(),
                operation: "read",
                error,
            })
        })?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        out.write_all(&buffer[..read]).await.map_err(snapshot_error)?;
        bytes += read as u64;
    }
    out.flush().await.map_err(snapshot_error)?;
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Snapshot { file: temp, sha256, bytes })
}
