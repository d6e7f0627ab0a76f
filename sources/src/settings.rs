//! Source-level settings shared by every source type (the fields of the platform's
//! `/imports/sources` resource and of the template that are not connection parameters), and the
//! rules for relative paths.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Settings every source takes besides its own `connection_config`.
///
/// The engine fills this from the source record (`polling_interval_seconds`, `event_driven`) and
/// from the templates bound to it (`ignored_folders`, `temp_file_extensions`, and usually the
/// `completed_folder` / `error_folder` so that post-processed files are not listed again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// A name for the source used in errors and logs (its id or display name).
    pub name: String,
    /// Folders, relative to the root with `/` separators, that are skipped entirely with
    /// everything below them. Matched literally at that position (`archive` skips `archive/**`,
    /// not `in/archive`). A leading `./` and a trailing `/` are ignored; absolute paths and `..`
    /// are refused.
    #[serde(default)]
    pub ignored_folders: Vec<String>,
    /// File-name endings that mark an upload in progress (`.part`, `.tmp`, `.filepart`); such
    /// files are listed with `is_temp_upload` set and are never ready. Matched case-insensitively
    /// at the end of the file name; a missing leading dot is added.
    #[serde(default)]
    pub temp_file_extensions: Vec<String>,
    /// Seconds between poll cycles (the platform's default is 300).
    #[serde(default = "default_polling_interval_seconds")]
    pub polling_interval_seconds: u64,
    /// Whether change notifications wake the poller early; polling continues as a fallback.
    #[serde(default)]
    pub event_driven: bool,
}

fn default_polling_interval_seconds() -> u64 {
    300
}

impl SourceSettings {
    /// Settings with the given name and every other field at its default.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ignored_folders: Vec::new(),
            temp_file_extensions: Vec::new(),
            polling_interval_seconds: default_polling_interval_seconds(),
            event_driven: false,
        }
    }

    /// Checks the settings without I/O, reporting every problem at once (each prefixed with its
    /// JSON path).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("name: must not be empty".to_owned());
        }
        if self.polling_interval_seconds == 0 {
            problems.push("polling_interval_seconds: must be at least 1".to_owned());
        }
        for (i, folder) in self.ignored_folders.iter().enumerate() {
            match normalize_folder(folder) {
                Ok(f) if f.is_empty() => problems
                    .push(format!("ignored_folders[{i}]: {folder:?} would ignore the whole root")),
                Ok(_) => {}
                Err(reason) => problems.push(format!("ignored_folders[{i}]: {folder:?} {reason}")),
            }
        }
        for (i, ext) in self.temp_file_extensions.iter().enumerate() {
            if ext.trim_start_matches('.').is_empty() || ext.contains('/') {
                problems.push(format!("temp_file_extensions[{i}]: {ext:?} is not a file ending"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The polling interval as a duration (at least one second).
    pub fn polling_interval(&self) -> Duration {
        Duration::from_secs(self.polling_interval_seconds.max(1))
    }

    /// The compiled path rules: which folders are ignored, which names are temp uploads.
    pub fn path_rules(&self) -> PathRules {
        PathRules {
            ignored_folders: self
                .ignored_folders
                .iter()
                .filter_map(|f| normalize_folder(f).ok())
                .filter(|f| !f.is_empty())
                .collect(),
            temp_endings: self
                .temp_file_extensions
                .iter()
                .map(|e| e.trim_start_matches('.'))
                .filter(|e| !e.is_empty())
                .map(|e| format!(".{}", e.to_lowercase()))
                .collect(),
        }
    }
}

/// The compiled form of `ignored_folders` and `temp_file_extensions`, shared by every source
/// implementation so they all skip and flag the same paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathRules {
    ignored_folders: Vec<String>,
    temp_endings: Vec<String>,
}

impl PathRules {
    /// Whether the folder (relative, `/`-separated) or one of its ancestors is ignored.
    pub fn is_ignored_folder(&self, folder: &str) -> bool {
        let folder = folder.trim_matches('/');
        self.ignored_folders.iter().any(|ignored| {
            folder == ignored
                || (folder.starts_with(ignored.as_str())
                    && folder.as_bytes().get(ignored.len()) == Some(&b'/'))
        })
    }

    /// Whether a file at this relative path lies in an ignored folder.
    pub fn is_in_ignored_folder(&self, path: &str) -> bool {
        match path.rsplit_once('/') {
            Some((folder, _)) => self.is_ignored_folder(folder),
            None => false,
        }
    }

    /// Whether the file name (or path) ends with one of the temp-upload endings.
    pub fn is_temp_upload(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path).to_lowercase();
        self.temp_endings.iter().any(|ending| name.ends_with(ending.as_str()) && name != *ending)
    }
}

/// Whether a file or folder name is hidden (starts with a dot). Hidden entries are never listed:
/// uploaders such as rsync and many SFTP clients write to hidden temporary names, and `.git`,
/// `.DS_Store` or `.snapshot` are never import files.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Checks a relative path given to a source and returns its components.
///
/// Refused: an empty path, an absolute path (leading `/` or `\`, or a Windows drive prefix),
/// `..` components, NUL bytes. Empty and `.` components are dropped (`a//./b` is `a/b`).
/// Anything else — spaces, unicode in whatever normalization it was found, quotes, `#`, `%`,
/// a leading dash — is a valid name.
pub fn relative_components(path: &str) -> Result<Vec<&str>, &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.contains('\0') {
        return Err("contains a NUL byte");
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Err("is absolute; paths are relative to the source root");
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err("has a drive prefix; paths are relative to the source root");
    }
    let mut components = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("contains '..'; nothing outside the source root is reachable"),
            other => components.push(other),
        }
    }
    if components.is_empty() {
        return Err("names the root itself");
    }
    Ok(components)
}

/// Normalizes a relative folder (`./done/` → `done`); the empty string (or `.`) is the root
/// itself. Absolute folders and `..` are refused like in [`relative_components`].
pub fn normalize_folder(folder: &str) -> Result<String, &'static str> {
    if folder.starts_with('/') || folder.starts_with('\\') {
        return Err("is absolute; paths are relative to the source root");
    }
    let trimmed = folder.trim_end_matches('/');
    let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
    if trimmed.is_empty() || trimmed == "." {
        return Ok(String::new());
    }
    relative_components(trimmed).map(|c| c.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_refuse_escapes_and_keep_odd_names() {
        assert!(relative_components("../etc/passwd").is_err());
        assert!(relative_components("a/../../b").is_err());
        assert!(relative_components("/etc/passwd").is_err());
        assert!(relative_components("C:/x").is_err());
        assert!(relative_components("").is_err());
        assert!(relative_components("./").is_err());
        assert_eq!(relative_components("a//./b c.csv").unwrap(), vec!["a", "b c.csv"]);
        assert_eq!(
            relative_components("-rf #1 %20 'q\".csv").unwrap(),
            vec!["-rf #1 %20 'q\".csv"]
        );
    }

    #[test]
    fn ignored_folders_match_whole_components_from_the_root() {
        let mut s = SourceSettings::named("t");
        s.ignored_folders = vec!["./done/".into(), "err/old".into()];
        let rules = s.path_rules();
        assert!(rules.is_ignored_folder("done"));
        assert!(rules.is_ignored_folder("done/2024"));
        assert!(!rules.is_ignored_folder("done2"));
        assert!(!rules.is_ignored_folder("in/done"));
        assert!(rules.is_ignored_folder("err/old/x"));
        assert!(!rules.is_ignored_folder("err"));
        assert!(rules.is_in_ignored_folder("done/a.csv"));
        assert!(!rules.is_in_ignored_folder("a.csv"));
    }

    #[test]
    fn temp_endings_are_case_insensitive_with_or_without_dot() {
        let mut s = SourceSettings::named("t");
        s.temp_file_extensions = vec![".part".into(), "TMP".into()];
        let rules = s.path_rules();
        assert!(rules.is_temp_upload("in/a.csv.PART"));
        assert!(rules.is_temp_upload("a.tmp"));
        assert!(!rules.is_temp_upload("a.csv"));
        assert!(!rules.is_temp_upload("partial.csv"));
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut s = SourceSettings::named(" ");
        s.polling_interval_seconds = 0;
        s.ignored_folders = vec!["../x".into(), "/".into()];
        s.temp_file_extensions = vec![".".into()];
        assert_eq!(s.validate().unwrap_err().len(), 5);
    }
}
