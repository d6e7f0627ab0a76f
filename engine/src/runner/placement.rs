//! Post-processing: where a file goes after its run, decided before the run is finished and
//! carried out after, so that it happens exactly once even across crashes.

use intake_sources::watched_directory::suffixed_name;
use intake_sources::{FileEntry, Source, SourceError, content_sha256};
use serde::Serialize;
use serde_json::{Value, json};

use super::RunnerError;

/// Names tried when looking for a free name in the target folder.
const MAX_SUFFIX_ATTEMPTS: u32 = 1000;

/// Where the file is after post-processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "placement", rename_all = "snake_case")]
pub enum Placement {
    /// Left where it was (`post_process_policy: keep`, or no folder configured).
    Kept,
    /// Moved; `to` is the final path relative to the source root.
    Moved {
        /// The final relative path.
        to: String,
    },
    /// Not moved although the policy says so, because the file at the path is no longer the
    /// imported version (a newer one arrived, which the next poll claims) or is gone.
    LeftInPlace {
        /// Why.
        reason: String,
    },
}

/// A move decided before the run is finished: recorded in the run's `timings.post_process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PlannedMove {
    /// The folder (normalized, relative).
    pub folder: String,
    /// The free path found in it.
    pub to: String,
}

impl PlannedMove {
    /// The run's `timings.post_process` entry.
    pub fn to_json(&self) -> Value {
        json!({"policy": "move", "folder": self.folder, "to": self.to})
    }

    /// Reads a plan back from a run's timings.
    pub fn from_timings(timings: &Value) -> Option<PlannedMove> {
        let entry = timings.get("post_process")?;
        Some(PlannedMove {
            folder: entry.get("folder")?.as_str()?.to_owned(),
            to: entry.get("to")?.as_str()?.to_owned(),
        })
    }
}

/// Normalizes a configured folder; `None` for an unusable one (absolute, `..`), logged.
pub(super) fn normalized(folder: &str) -> Option<String> {
    match intake_sources::settings::normalize_folder(folder) {
        Ok(folder) => Some(folder),
        Err(reason) => {
            tracing::warn!(%folder, reason, "post-processing folder refused");
            None
        }
    }
}

/// Whether `path` lies inside `folder` (both relative, normalized; the root folder holds
/// nothing for this purpose).
pub(super) fn is_inside(path: &str, folder: &str) -> bool {
    !folder.is_empty() && path.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'))
}

/// Finds the first free name for `file` in `folder`: `name`, `name (1).ext`, …
pub(super) async fn plan(
    source: &dyn Source,
    file: &FileEntry,
    folder: &str,
) -> Result<PlannedMove, RunnerError> {
    let name = file.file_name();
    for attempt in 0..MAX_SUFFIX_ATTEMPTS {
        let candidate = suffixed_name(name, attempt);
        let to = if folder.is_empty() { candidate } else { format!("{folder}/{candidate}") };
        match source.stat(&to).await {
            Err(SourceError::NotFound { .. }) => {
                return Ok(PlannedMove { folder: folder.to_owned(), to });
            }
            Err(e) if e.is_retryable() => return Err(e.into()),
            // Taken (a file, a folder, a refused symlink): try the next name.
            _ => continue,
        }
    }
    Err(RunnerError::Source(SourceError::AlreadyExists {
        source_name: source.name().to_owned(),
        path: format!("{folder}/{name}"),
    }))
}

/// Carries out a planned move of `file` (the claimed version, whose content hash is `sha256`).
///
/// Harmless to repeat: a file that is gone while the planned target exists was moved already;
/// a target that exists with the same content while the original is still there is the trace of
/// a move interrupted between link and unlink, finished by deleting the original; a target taken
/// by another file falls back to [`Source::move_to`] (the next free suffix). Never overwrites.
pub(super) async fn carry_out(
    source: &dyn Source,
    file: &FileEntry,
    sha256: &str,
    planned: &PlannedMove,
) -> Result<Placement, RunnerError> {
    match source.stat(&file.path).await {
        Ok(current)
            if current.size != file.size || current.version_token() != file.version_token() =>
        {
            return Ok(Placement::LeftInPlace {
                reason: "a newer version of the file arrived; it is left for the next poll".into(),
            });
        }
        Ok(_) => {}
        Err(SourceError::NotFound { .. }) => {
            return Ok(match source.stat(&planned.to).await {
                Ok(_) => Placement::Moved { to: planned.to.clone() },
                Err(_) => Placement::LeftInPlace { reason: "the file is gone".into() },
            });
        }
        Err(e) => return Err(e.into()),
    }
    match source.rename(&file.path, &planned.to).await {
        Ok(()) => Ok(Placement::Moved { to: planned.to.clone() }),
        Err(SourceError::AlreadyExists { .. }) => {
            let same = matches!(content_sha256(source, &planned.to).await, Ok(h) if h == sha256);
            if same {
                source.delete(&file.path).await?;
                Ok(Placement::Moved { to: planned.to.clone() })
            } else {
                let to = source.move_to(&file.path, &planned.folder).await?;
                Ok(Placement::Moved { to })
            }
        }
        Err(SourceError::NotFound { .. }) => {
            Ok(Placement::LeftInPlace { reason: "the file is gone".into() })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_means_below_the_folder() {
        assert!(is_inside("completed/a.csv", "completed"));
        assert!(is_inside("completed/x/a.csv", "completed"));
        assert!(!is_inside("completed.csv", "completed"));
        assert!(!is_inside("completed_old/a.csv", "completed"));
        assert!(!is_inside("a.csv", ""));
    }

    #[test]
    fn a_plan_round_trips_through_the_timings() {
        let plan = PlannedMove { folder: "done".into(), to: "done/a (1).csv".into() };
        let timings = json!({"hash_ms": 1, "post_process": plan.to_json()});
        assert_eq!(PlannedMove::from_timings(&timings), Some(plan));
        assert_eq!(PlannedMove::from_timings(&json!({"post_process": {"policy": "keep"}})), None);
    }
}
