//! The `watched_directory` source: a local (or mounted) folder, listed recursively, optionally
//! watched with notify (inotify on Linux) to wake the poller early.
//!
//! ## Safety rules
//! - Every path is relative to the root; `..`, absolute paths and NUL bytes are refused.
//! - The root is canonicalized once at [`WatchedDirectory::build`]. Before a file is read,
//!   stat'ed, moved, renamed or deleted its real location is resolved and must lie inside the
//!   root, so a symlink (to a file or to a folder on the way) that points outside is refused.
//! - Listing never descends into symlinked folders (no escapes, no loops); a symlinked *file*
//!   whose target is inside the root is listed under the link's path, one pointing outside is
//!   skipped.
//! - Hidden entries (names starting with `.`) are skipped, as are `ignored_folders`, non-UTF-8
//!   names (they cannot be represented in a relative path string; a warning is logged) and
//!   anything that is not a regular file (sockets, FIFOs, devices).
//! - Nothing is overwritten: moves and renames link the file under its new name (which fails if
//!   the name is taken) and then unlink the old name; where hard links are unsupported they
//!   fall back to check-then-rename.
//!
//! The resolve-then-act checks are not atomic against someone swapping a folder for a symlink
//! between the two steps; whoever can write inside the root can already make intake import what
//! they like, so the rules guard against mistakes and hostile names, not hostile local users.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::settings::{PathRules, is_hidden, normalize_folder, relative_components};
use crate::{BoxFuture, ChangeFeed, FileEntry, FileStream, Source, SourceError, SourceSettings};

/// The `connection_config` of a `watched_directory` source.
///
/// ```json
/// { "path": "/srv/inbox" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchedDirectoryConfig {
    /// Absolute path of the folder to take files from (the source's root). It must exist when
    /// the source is built; symlinks in it are resolved once, then it is fixed.
    pub path: PathBuf,
}

impl WatchedDirectoryConfig {
    /// Checks the configuration without I/O, listing every problem (with its JSON path).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.path.as_os_str().is_empty() {
            problems.push("connection_config.path: must not be empty".to_owned());
        } else if !self.path.is_absolute() {
            problems.push(format!(
                "connection_config.path: {:?} must be an absolute path",
                self.path.display()
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// A folder on the local file system as a [`Source`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WatchedDirectory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    root: PathBuf,
    rules: PathRules,
}

impl WatchedDirectory {
    /// Validates `config` and `settings` (reporting every problem at once), then resolves the
    /// root, which must be an existing folder.
    pub fn build(
        config: &WatchedDirectoryConfig,
        settings: &SourceSettings,
    ) -> Result<Self, SourceError> {
        let mut problems = Vec::new();
        if let Err(p) = settings.validate() {
            problems.extend(p);
        }
        if let Err(p) = config.validate() {
            problems.extend(p);
        }
        if !problems.is_empty() {
            return Err(SourceError::InvalidConfig {
                source_name: settings.name.clone(),
                problems,
            });
        }
        let unavailable = |error| SourceError::RootUnavailable {
            source_name: settings.name.clone(),
            root: config.path.display().to_string(),
            error,
        };
        let root = fs::canonicalize(&config.path).map_err(unavailable)?;
        if !fs::metadata(&root).map_err(unavailable)?.is_dir() {
            return Err(unavailable(io::Error::new(
                io::ErrorKind::NotADirectory,
                "the path is not a folder",
            )));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                name: settings.name.clone(),
                root,
                rules: settings.path_rules(),
            }),
        })
    }

    /// The canonical root folder.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, SourceError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| SourceError::Internal {
            source_name: self.inner.name.clone(),
            message: format!("file-system task failed: {e}"),
        })?
    }
}

impl Inner {
    fn refused(&self, path: &str, reason: impl Into<String>) -> SourceError {
        SourceError::PathRefused {
            source_name: self.name.clone(),
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn io(&self, operation: &'static str, path: &str, error: io::Error) -> SourceError {
        match error.kind() {
            io::ErrorKind::NotFound => {
                SourceError::NotFound { source_name: self.name.clone(), path: path.to_owned() }
            }
            _ => SourceError::Io {
                source_name: self.name.clone(),
                path: path.to_owned(),
                operation,
                error,
            },
        }
    }

    fn components<'p>(&self, path: &'p str) -> Result<Vec<&'p str>, SourceError> {
        relative_components(path).map_err(|reason| self.refused(path, reason))
    }

    /// Resolves an existing path following every symlink; the result must be inside the root.
    fn resolve_existing(&self, op: &'static str, path: &str) -> Result<PathBuf, SourceError> {
        let components = self.components(path)?;
        let full = components.iter().fold(self.root.clone(), |p, c| p.join(c));
        let real = fs::canonicalize(&full).map_err(|e| self.io(op, path, e))?;
        if !real.starts_with(&self.root) {
            return Err(self.refused(path, "resolves outside the source root"));
        }
        Ok(real)
    }

    /// Resolves an existing file for moving/deleting: the folder it is in must resolve inside
    /// the root, and if the entry is a symlink its target must too. Returns the path of the
    /// entry itself (a symlink is moved or deleted, not its target).
    fn resolve_entry(&self, op: &'static str, path: &str) -> Result<PathBuf, SourceError> {
        let components = self.components(path)?;
        let (last, parents) =
            components.split_last().ok_or_else(|| self.refused(path, "is empty"))?;
        let parent = parents.iter().fold(self.root.clone(), |p, c| p.join(c));
        let parent = fs::canonicalize(&parent).map_err(|e| self.io(op, path, e))?;
        if !parent.starts_with(&self.root) {
            return Err(self.refused(path, "resolves outside the source root"));
        }
        let entry = parent.join(last);
        let meta = fs::symlink_metadata(&entry).map_err(|e| self.io(op, path, e))?;
        let is_file = if meta.file_type().is_symlink() {
            let real = fs::canonicalize(&entry)
                .map_err(|_| self.refused(path, "is a dangling symlink"))?;
            if !real.starts_with(&self.root) {
                return Err(self.refused(path, "is a symlink resolving outside the source root"));
            }
            fs::metadata(&real).map_err(|e| self.io(op, path, e))?.is_file()
        } else {
            meta.is_file()
        };
        if !is_file {
            return Err(SourceError::NotAFile {
                source_name: self.name.clone(),
                path: path.to_owned(),
            });
        }
        Ok(entry)
    }

    /// Creates `folder` (relative) component by component, never through a symlink that leads
    /// outside the root. Returns the real folder and its normalized relative form.
    fn ensure_folder(&self, folder: &str) -> Result<(PathBuf, String), SourceError> {
        let normalized = normalize_folder(folder).map_err(|reason| self.refused(folder, reason))?;
        let mut current = self.root.clone();
        for component in normalized.split('/').filter(|c| !c.is_empty()) {
            let next = current.join(component);
            match fs::symlink_metadata(&next) {
                Ok(meta) if meta.is_dir() => current = next,
                Ok(meta) if meta.file_type().is_symlink() => {
                    let real = fs::canonicalize(&next)
                        .map_err(|_| self.refused(folder, "contains a dangling symlink"))?;
                    if !real.starts_with(&self.root) {
                        return Err(self.refused(folder, "resolves outside the source root"));
                    }
                    if !real.is_dir() {
                        return Err(self.refused(folder, "a file is in the way of the folder"));
                    }
                    current = real;
                }
                Ok(_) => return Err(self.refused(folder, "a file is in the way of the folder")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match fs::create_dir(&next) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && next.is_dir() => {}
                        Err(e) => return Err(self.io("create folder", folder, e)),
                    }
                    current = next;
                }
                Err(e) => return Err(self.io("create folder", folder, e)),
            }
        }
        Ok((current, normalized))
    }

    fn entry_for(&self, rel: String, meta: &fs::Metadata) -> FileEntry {
        FileEntry {
            is_temp_upload: self.rules.is_temp_upload(&rel),
            path: rel,
            size: meta.len(),
            modified: meta.modified().ok(),
            version: None,
        }
    }

    fn list(&self) -> Result<Vec<FileEntry>, SourceError> {
        let root_display = self.root.display().to_string();
        let mut files = Vec::new();
        let mut folders: Vec<(PathBuf, String)> = vec![(self.root.clone(), String::new())];
        while let Some((dir, rel_dir)) = folders.pop() {
            let reader = match fs::read_dir(&dir) {
                Ok(r) => r,
                Err(error) if rel_dir.is_empty() => {
                    return Err(SourceError::RootUnavailable {
                        source_name: self.name.clone(),
                        root: root_display,
                        error,
                    });
                }
                Err(error) => {
                    tracing::warn!(source = %self.name, folder = %rel_dir, %error, "folder skipped: cannot be read");
                    continue;
                }
            };
            for item in reader {
                let item = match item {
                    Ok(i) => i,
                    Err(error) => {
                        tracing::warn!(source = %self.name, folder = %rel_dir, %error, "entry skipped");
                        continue;
                    }
                };
                let os_name = item.file_name();
                let Some(name) = os_name.to_str() else {
                    tracing::warn!(source = %self.name, folder = %rel_dir, name = ?os_name, "entry skipped: name is not UTF-8");
                    continue;
                };
                if is_hidden(name) {
                    continue;
                }
                let rel =
                    if rel_dir.is_empty() { name.to_owned() } else { format!("{rel_dir}/{name}") };
                let Ok(file_type) = item.file_type() else { continue };
                let path = item.path();
                if file_type.is_dir() {
                    if !self.rules.is_ignored_folder(&rel) {
                        folders.push((path, rel));
                    }
                } else if file_type.is_file() {
                    if let Ok(meta) = item.metadata() {
                        files.push(self.entry_for(rel, &meta));
                    }
                } else if file_type.is_symlink() {
                    let Ok(real) = fs::canonicalize(&path) else { continue };
                    if !real.starts_with(&self.root) {
                        tracing::debug!(source = %self.name, path = %rel, "symlink skipped: resolves outside the root");
                        continue;
                    }
                    match fs::metadata(&real) {
                        Ok(meta) if meta.is_file() => files.push(self.entry_for(rel, &meta)),
                        _ => {} // symlinked folders are not followed
                    }
                }
            }
        }
        Ok(files)
    }

    fn stat(&self, path: &str) -> Result<FileEntry, SourceError> {
        let real = self.resolve_existing("stat", path)?;
        let meta = fs::metadata(&real).map_err(|e| self.io("stat", path, e))?;
        if !meta.is_file() {
            return Err(SourceError::NotAFile {
                source_name: self.name.clone(),
                path: path.to_owned(),
            });
        }
        let rel = self.components(path)?.join("/");
        Ok(self.entry_for(rel, &meta))
    }

    fn open(&self, path: &str) -> Result<fs::File, SourceError> {
        let real = self.resolve_existing("open", path)?;
        let file = fs::File::open(&real).map_err(|e| self.io("open", path, e))?;
        let meta = file.metadata().map_err(|e| self.io("open", path, e))?;
        if !meta.is_file() {
            return Err(SourceError::NotAFile {
                source_name: self.name.clone(),
                path: path.to_owned(),
            });
        }
        Ok(file)
    }

    fn move_to(&self, path: &str, folder: &str) -> Result<String, SourceError> {
        let source = self.resolve_entry("move", path)?;
        let (target_dir, rel_folder) = self.ensure_folder(folder)?;
        let name = self.components(path)?.last().copied().unwrap_or_default().to_owned();
        for attempt in 0..10_000u32 {
            let candidate = suffixed_name(&name, attempt);
            match link_no_overwrite(&source, &target_dir.join(&candidate)) {
                Ok(()) => {
                    return Ok(if rel_folder.is_empty() {
                        candidate
                    } else {
                        format!("{rel_folder}/{candidate}")
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.io("move", path, e)),
            }
        }
        Err(SourceError::AlreadyExists {
            source_name: self.name.clone(),
            path: format!("{rel_folder}/{name}"),
        })
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), SourceError> {
        let source = self.resolve_entry("rename", from)?;
        let components = self.components(to)?;
        let (last, parents) =
            components.split_last().ok_or_else(|| self.refused(to, "is empty"))?;
        let (dir, _) = self.ensure_folder(&parents.join("/"))?;
        match link_no_overwrite(&source, &dir.join(last)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(SourceError::AlreadyExists {
                source_name: self.name.clone(),
                path: to.to_owned(),
            }),
            Err(e) => Err(self.io("rename", from, e)),
        }
    }

    fn delete(&self, path: &str) -> Result<(), SourceError> {
        let entry = self.resolve_entry("delete", path)?;
        fs::remove_file(&entry).map_err(|e| self.io("delete", path, e))
    }

    /// Whether a file-system event could change what `list` returns.
    fn is_relevant(&self, event: &notify::Event) -> bool {
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return false,
            _ => {}
        }
        if event.paths.is_empty() {
            return true;
        }
        event.paths.iter().any(|p| {
            let Ok(rel) = p.strip_prefix(&self.root) else { return true };
            let Some(rel) = rel.to_str() else { return false };
            let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
            if rel.is_empty() {
                return true;
            }
            let hidden = rel.split('/').any(is_hidden);
            !hidden && !self.rules.is_ignored_folder(&rel) && !self.rules.is_in_ignored_folder(&rel)
        })
    }
}

/// `name.csv` → `name.csv`, `name (1).csv`, `name (2).csv`…; a name without an extension (or a
/// leading-dot-only one) gets the suffix at the end.
pub fn suffixed_name(name: &str, attempt: u32) -> String {
    if attempt == 0 {
        return name.to_owned();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({attempt}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({attempt})"),
    }
}

/// Gives `source` the new name `target` without ever replacing an existing `target`.
fn link_no_overwrite(source: &Path, target: &Path) -> io::Result<()> {
    match fs::hard_link(source, target) {
        Ok(()) => fs::remove_file(source),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            // Hard links unsupported here (some network or FAT file systems): check, then rename.
            if fs::symlink_metadata(target).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fs::rename(source, target)
        }
    }
}

impl Source for WatchedDirectory {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<FileEntry>, SourceError>> {
        Box::pin(self.blocking(Inner::list))
    }

    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileEntry, SourceError>> {
        let path = path.to_owned();
        Box::pin(self.blocking(move |inner| inner.stat(&path)))
    }

    fn open<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileStream, SourceError>> {
        let path = path.to_owned();
        Box::pin(async move {
            let file = self.blocking(move |inner| inner.open(&path)).await?;
            Ok(Box::new(tokio::fs::File::from_std(file)) as FileStream)
        })
    }

    fn move_to<'a>(
        &'a self,
        path: &'a str,
        folder: &'a str,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        let (path, folder) = (path.to_owned(), folder.to_owned());
        Box::pin(self.blocking(move |inner| inner.move_to(&path, &folder)))
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        let (from, to) = (from.to_owned(), to.to_owned());
        Box::pin(self.blocking(move |inner| inner.rename(&from, &to)))
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        let path = path.to_owned();
        Box::pin(self.blocking(move |inner| inner.delete(&path)))
    }

    /// Starts a recursive notify watcher on the root. Reads (open, read, close after reading)
    /// and changes only inside hidden entries or ignored folders do not wake the poller; a
    /// watcher error (an overflowed event queue, …) does, so nothing is missed.
    fn subscribe_events(&self) -> Result<Option<ChangeFeed>, SourceError> {
        let (sender, receiver) = mpsc::channel(1);
        let inner = Arc::clone(&self.inner);
        let watch_error = |e: notify::Error| SourceError::Io {
            source_name: self.inner.name.clone(),
            path: String::new(),
            operation: "watch",
            error: io::Error::other(e.to_string()),
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let wake = match event {
                    Ok(event) => inner.is_relevant(&event),
                    Err(error) => {
                        tracing::warn!(source = %inner.name, %error, "file watcher error; polling anyway");
                        true
                    }
                };
                if wake {
                    // A full channel already holds a pending wake-up.
                    let _ = sender.try_send(());
                }
            })
            .map_err(watch_error)?;
        watcher.watch(&self.inner.root, RecursiveMode::Recursive).map_err(watch_error)?;
        Ok(Some(ChangeFeed::new(receiver, Box::new(watcher))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_go_before_the_last_extension() {
        assert_eq!(suffixed_name("a.csv", 0), "a.csv");
        assert_eq!(suffixed_name("a.csv", 1), "a (1).csv");
        assert_eq!(suffixed_name("r.2024.csv", 2), "r.2024 (2).csv");
        assert_eq!(suffixed_name("README", 1), "README (1)");
        assert_eq!(suffixed_name(".env", 1), ".env (1)");
    }

    #[test]
    fn config_rejects_unknown_fields_and_relative_paths() {
        let err = serde_json::from_str::<WatchedDirectoryConfig>(r#"{"path":"/x","pth":1}"#);
        assert!(err.is_err());
        let rel: WatchedDirectoryConfig = serde_json::from_str(r#"{"path":"in"}"#).unwrap();
        assert_eq!(rel.validate().unwrap_err().len(), 1);
    }
}
