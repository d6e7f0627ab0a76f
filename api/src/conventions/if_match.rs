//! `If-Match` preconditions: the one parser both HTTP surfaces use.

use serde_json::{Map, Value};

/// `If-Match` as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum IfMatch {
    /// `*`: any current revision.
    Any,
    /// Strong entity tags (quotes removed); weak tags are kept out (they never match).
    Tags(Vec<String>),
}

impl IfMatch {
    /// Parses the header; `None` when it holds nothing usable at all.
    pub fn parse(value: &str) -> Option<IfMatch> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if value == "*" {
            return Some(IfMatch::Any);
        }
        let tags = value
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.starts_with("W/"))
            .map(|t| t.trim_matches('"').to_owned())
            .collect();
        Some(IfMatch::Tags(tags))
    }

    /// Whether a resource whose current revision is `revision` satisfies it.
    pub fn matches(&self, revision: &str) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Tags(tags) => tags.iter().any(|t| t == revision),
        }
    }

    /// Whether the item's current `revision_id` satisfies it.
    pub(crate) fn matches_item(&self, item: &Map<String, Value>) -> bool {
        item.get("revision_id").and_then(Value::as_str).is_some_and(|rev| self.matches(rev))
    }
}
