//! The [`Source`] trait: what every file source (watched directory, SFTP, S3, email inbox, HTTP
//! pull) can do, the [`FileEntry`] it lists, and the [`ChangeFeed`] of wake-ups for event-driven
//! polling.

use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::SourceError;

/// A boxed, sendable future: what [`Source`] methods return, so that `dyn Source` works
/// (`Arc<dyn Source>` in the engine's registry) without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An open file: read it as a stream, never all at once.
pub type FileStream = Box<dyn AsyncRead + Send + Unpin>;

/// One file as a source lists it.
///
/// The engine's claim key is `(source, path, version_token(), content hash)`: `path` and
/// [`FileEntry::version_token`] come from here, the hash from [`content_sha256`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the source root, `/`-separated, exactly as found (no unicode
    /// normalization): it can be passed back to [`Source::open`] and friends.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, when the source knows one.
    pub modified: Option<SystemTime>,
    /// A server-side version (S3 ETag, HTTP ETag, IMAP UID…), when the source has one.
    pub version: Option<String>,
    /// The name ends with one of the source's `temp_file_extensions`: an upload in progress.
    pub is_temp_upload: bool,
}

impl FileEntry {
    /// The file name: the last path component.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// A stable string for "which version of this file": the server version when there is one
    /// (`etag:<v>`), else the modification time (`mtime:<seconds>.<nanoseconds>` since the Unix
    /// epoch), else `size:<n>`. Together with the path, size and content hash it makes the
    /// claim key.
    pub fn version_token(&self) -> String {
        if let Some(v) = &self.version {
            return format!("etag:{v}");
        }
        match self.modified.map(|m| m.duration_since(UNIX_EPOCH)) {
            Some(Ok(d)) => format!("mtime:{}.{:09}", d.as_secs(), d.subsec_nanos()),
            Some(Err(e)) => {
                let d = e.duration();
                format!("mtime:-{}.{:09}", d.as_secs(), d.subsec_nanos())
            }
            None => format!("size:{}", self.size),
        }
    }
}

/// A stream of "something changed, poll now" signals from an event-driven source.
///
/// Signals are coalesced (a burst of changes is one wake-up) and carry no detail: the poller
/// lists the source again. When the feed ends ([`ChangeFeed::changed`] returns `None`) the
/// watcher has stopped and polling on the interval continues alone.
pub struct ChangeFeed {
    receiver: mpsc::Receiver<()>,
    _guard: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// A feed reading from `receiver`; `guard` is kept alive as long as the feed (the watcher
    /// or the task handle that produces the signals: dropping the feed stops it).
    pub fn new(receiver: mpsc::Receiver<()>, guard: Box<dyn Send + Sync>) -> Self {
        Self { receiver, _guard: guard }
    }

    /// Waits for the next change; `None` when the feed has ended for good.
    pub async fn changed(&mut self) -> Option<()> {
        let signal = self.receiver.recv().await;
        // Coalesce whatever else queued up meanwhile.
        while self.receiver.try_recv().is_ok() {}
        signal
    }
}

/// A file source: list, stat, open, move, rename, delete — all relative to the source's root,
/// never outside it.
///
/// Paths are relative, `/`-separated, as returned in [`FileEntry::path`]. Implementations must
/// refuse `..`, absolute paths and anything resolving outside their root with
/// [`SourceError::PathRefused`], skip `ignored_folders` and hidden (dot) entries in
/// [`Source::list`], and flag temp uploads. Nothing is ever overwritten.
pub trait Source: Send + Sync {
    /// The source's name, as used in its errors.
    fn name(&self) -> &str;

    /// Every file below the root (recursively), skipping ignored folders and hidden entries;
    /// temp uploads are included with `is_temp_upload` set. Order is unspecified.
    fn list(&self) -> BoxFuture<'_, Result<Vec<FileEntry>, SourceError>>;

    /// The current size, modification time and version of one file.
    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileEntry, SourceError>>;

    /// Opens a file for streaming reads.
    fn open<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileStream, SourceError>>;

    /// Moves a file into `folder` (relative to the root; created as needed) keeping its name, or
    /// `name (1).ext`, `name (2).ext`… when that name is taken. Returns the final relative path.
    fn move_to<'a>(
        &'a self,
        path: &'a str,
        folder: &'a str,
    ) -> BoxFuture<'a, Result<String, SourceError>>;

    /// Renames a file to `to` (parent folders created as needed); fails with
    /// [`SourceError::AlreadyExists`] if `to` exists.
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), SourceError>>;

    /// Deletes a file (never a folder).
    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), SourceError>>;

    /// Subscribes to change notifications. `Ok(None)` (the default) means the source has no
    /// events and is polled only; an error means events were wanted but the watcher could not
    /// start — poll instead. Must be called inside a Tokio runtime.
    fn subscribe_events(&self) -> Result<Option<ChangeFeed>, SourceError> {
        Ok(None)
    }
}

/// The SHA-256 of a file's content as lowercase hex, read as a stream (64 KiB at a time) — the
/// content-hash part of the claim key.
pub async fn content_sha256(source: &dyn Source, path: &str) -> Result<String, SourceError> {
    let mut stream = source.open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(|error| SourceError::Io {
            source_name: source.name().to_owned(),
            path: path.to_owned(),
            operation: "read",
            error,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn version_token_prefers_the_server_version() {
        let mut e = FileEntry {
            path: "a/b.csv".into(),
            size: 3,
            modified: Some(UNIX_EPOCH + Duration::new(5, 7)),
            version: None,
            is_temp_upload: false,
        };
        assert_eq!(e.file_name(), "b.csv");
        assert_eq!(e.version_token(), "mtime:5.000000007");
        e.version = Some("\"abc\"".into());
        assert_eq!(e.version_token(), "etag:\"abc\"");
        e.version = None;
        e.modified = None;
        assert_eq!(e.version_token(), "size:3");
    }
}
