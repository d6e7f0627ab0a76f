//! Which template reads an arriving file: `file_matcher`, `is_active` and `priority`.
//!
//! A template's `file_matcher` is matched against the file's path relative to the source root,
//! with `/` between folders:
//! - `glob:PATTERN` or a bare `PATTERN` is a glob (`*`, `?`, `[abc]`, `{a,b}`, `**`). A pattern
//!   without a `/` is matched against the file name alone, in any folder (`payments_*.csv`); a
//!   pattern with a `/` against the whole relative path (`bank/**/*.csv`). `*` never crosses a
//!   `/`; `**` does. Matching is case-sensitive; write `*.[cC][sS][vV]` or use a regex otherwise.
//! - `re:REGEX` is a regular expression (Rust `regex` syntax) that must match the whole relative
//!   path (it is anchored for you); `(?i)` makes it case-insensitive.
//! - An absent or empty `file_matcher` matches every file.
//!
//! Among the source's active, non-deleted templates that match, the highest `priority` wins. A
//! tie is resolved deterministically — by name, then id — and reported so it can be logged.

use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;
use thiserror::Error;

use crate::template::Template;

/// A `file_matcher` that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MatcherError {
    /// The glob is malformed.
    #[error("file_matcher '{pattern}' is not a valid glob: {reason}")]
    Glob {
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// The regular expression is malformed.
    #[error("file_matcher '{pattern}' is not a valid regular expression: {reason}")]
    Regex {
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
}

/// A compiled `file_matcher`.
#[derive(Debug, Clone)]
pub enum FileMatcher {
    /// No matcher: every file.
    Any,
    /// A glob on the file name (no `/` in the pattern).
    FileName(GlobMatcher),
    /// A glob on the whole relative path.
    Path(GlobMatcher),
    /// An anchored regular expression on the whole relative path.
    Regex(Regex),
}

impl FileMatcher {
    /// Compiles a template's `file_matcher`.
    pub fn parse(matcher: Option<&str>) -> Result<Self, MatcherError> {
        let text = matcher.map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Ok(FileMatcher::Any);
        }
        if let Some(pattern) = text.strip_prefix("re:") {
            return Regex::new(&format!("^(?:{pattern})$")).map(FileMatcher::Regex).map_err(|e| {
                MatcherError::Regex { pattern: pattern.to_owned(), reason: e.to_string() }
            });
        }
        let pattern = text.strip_prefix("glob:").unwrap_or(text);
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| MatcherError::Glob {
                pattern: pattern.to_owned(),
                reason: e.kind().to_string(),
            })?
            .compile_matcher();
        Ok(if pattern.contains('/') {
            FileMatcher::Path(glob)
        } else {
            FileMatcher::FileName(glob)
        })
    }

    /// Whether the file at `relative_path` (folders separated by `/`) matches.
    pub fn is_match(&self, relative_path: &str) -> bool {
        match self {
            FileMatcher::Any => true,
            FileMatcher::FileName(glob) => {
                glob.is_match(relative_path.rsplit('/').next().unwrap_or(relative_path))
            }
            FileMatcher::Path(glob) => glob.is_match(relative_path),
            FileMatcher::Regex(regex) => regex.is_match(relative_path),
        }
    }
}

/// The template chosen for a file.
#[derive(Debug)]
pub struct Selection<'a> {
    /// The winner.
    pub template: &'a Template,
    /// Other matching templates with the same priority, which lost the tie by name/id; worth
    /// a warning in the log, since the integrator probably did not intend it.
    pub tied_with: Vec<&'a Template>,
}

/// Chooses the template for `relative_path` among `templates` (a source's templates): active,
/// not deleted, matching, highest priority, ties by name then id. `None` when nothing matches.
/// A template whose matcher does not compile never matches (templates are validated on load,
/// so this only concerns data that bypassed validation).
pub fn select<'a>(templates: &'a [Template], relative_path: &str) -> Option<Selection<'a>> {
    let mut candidates: Vec<&Template> = templates
        .iter()
        .filter(|t| t.is_active && !t.is_deleted)
        .filter(|t| {
            FileMatcher::parse(t.file_matcher.as_deref()).is_ok_and(|m| m.is_match(relative_path))
        })
        .collect();
    candidates.sort_by(|a, b| {
        b.priority.cmp(&a.priority).then_with(|| a.name.cmp(&b.name)).then_with(|| {
            a.id.as_ref().map(ToString::to_string).cmp(&b.id.as_ref().map(ToString::to_string))
        })
    });
    let mut candidates = candidates.into_iter();
    let template = candidates.next()?;
    let tied_with = candidates.filter(|t| t.priority == template.priority).collect();
    Some(Selection { template, tied_with })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(name: &str, matcher: Option<&str>, priority: i64) -> Template {
        let mut value =
            json!({"name": name, "file_type": "csv", "target_resource": "t", "priority": priority});
        if let Some(matcher) = matcher {
            value["file_matcher"] = json!(matcher);
        }
        crate::template::load(name, &value.to_string()).expect("valid template")
    }

    #[test]
    fn a_glob_without_a_slash_matches_the_file_name_in_any_folder() {
        let matcher = FileMatcher::parse(Some("payments_*.csv")).expect("glob");
        assert!(matcher.is_match("payments_2026-03.csv"));
        assert!(matcher.is_match("bank/march/payments_2026-03.csv"));
        assert!(!matcher.is_match("payments_2026-03.CSV"));
        assert!(!matcher.is_match("bank/payments_2026-03.csv.part"));
    }

    #[test]
    fn a_glob_with_a_slash_matches_the_whole_path_and_star_stays_in_its_folder() {
        let matcher = FileMatcher::parse(Some("glob:bank/*.csv")).expect("glob");
        assert!(matcher.is_match("bank/a.csv"));
        assert!(!matcher.is_match("bank/old/a.csv"));
        let deep = FileMatcher::parse(Some("bank/**/*.csv")).expect("glob");
        assert!(deep.is_match("bank/old/a.csv"));
        assert!(deep.is_match("bank/a.csv"));
        assert!(!deep.is_match("other/a.csv"));
    }

    #[test]
    fn a_regex_is_anchored_on_the_relative_path() {
        let matcher = FileMatcher::parse(Some(r"re:(?i)members_\d{8}\.csv")).expect("regex");
        assert!(matcher.is_match("MEMBERS_20260301.csv"));
        assert!(!matcher.is_match("old_members_20260301.csv"));
        assert!(!matcher.is_match("dir/members_20260301.csv"));
    }

    #[test]
    fn broken_patterns_are_errors_and_absent_matches_everything() {
        assert!(matches!(FileMatcher::parse(Some("re:(")), Err(MatcherError::Regex { .. })));
        assert!(matches!(FileMatcher::parse(Some("[a-")), Err(MatcherError::Glob { .. })));
        assert!(FileMatcher::parse(None).expect("any").is_match("anything/at/all.txt"));
        assert!(FileMatcher::parse(Some("  ")).expect("any").is_match("x"));
    }

    #[test]
    fn the_highest_priority_wins_and_a_tie_is_decided_by_name_and_reported() {
        let templates = vec![
            template("generic csv", Some("*.csv"), 0),
            template("bank b", Some("bank_*.csv"), 10),
            template("bank a", Some("bank_*.csv"), 10),
            template("text", Some("*.txt"), 99),
        ];
        let chosen = select(&templates, "in/bank_1.csv").expect("a match");
        assert_eq!(chosen.template.name, "bank a");
        assert_eq!(
            chosen.tied_with.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            vec!["bank b"]
        );
        let generic = select(&templates, "other.csv").expect("a match");
        assert_eq!(generic.template.name, "generic csv");
        assert!(generic.tied_with.is_empty());
        assert!(select(&templates, "image.png").is_none());
    }

    #[test]
    fn inactive_and_deleted_templates_never_match() {
        let mut inactive = template("inactive", Some("*.csv"), 50);
        inactive.is_active = false;
        let mut deleted = template("deleted", Some("*.csv"), 40);
        deleted.is_deleted = true;
        let templates = vec![inactive, deleted, template("live", Some("*.csv"), 0)];
        assert_eq!(select(&templates, "a.csv").expect("match").template.name, "live");
    }
}
