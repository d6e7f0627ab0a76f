//! Alert events: what happened (one of the platform's event types), how bad it is, and the
//! tags routing rules match on. The engine raises them; routing and channels deliver them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The event types routing rules can name in `event_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A file could not be parsed.
    ParseError,
    /// Rows were rejected by validation (above the template's threshold).
    ValidationFailed,
    /// An import run failed.
    ImportFailed,
    /// An import run succeeded.
    ImportSucceeded,
    /// A file matched no template.
    UnmatchedFile,
    /// A source keeps failing to poll.
    SourceError,
    /// An expected delivery did not arrive in its window.
    SlaViolation,
    /// A late delivery arrived after an SLA violation.
    SlaRecovered,
    /// A file that had to be empty was not.
    AssertEmptyViolation,
}

impl EventType {
    /// The type's name as the API spells it (`source_error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParseError => "parse_error",
            Self::ValidationFailed => "validation_failed",
            Self::ImportFailed => "import_failed",
            Self::ImportSucceeded => "import_succeeded",
            Self::UnmatchedFile => "unmatched_file",
            Self::SourceError => "source_error",
            Self::SlaViolation => "sla_violation",
            Self::SlaRecovered => "sla_recovered",
            Self::AssertEmptyViolation => "assert_empty_violation",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an event is, lowest first (so `>=` compares urgency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look today.
    Warning,
    /// Something failed and needs action.
    Error,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// The severity's name as the API spells it (`error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

/// One event: its type, severity, a one-line summary for people, the tags routing rules match
/// (`tenant`, `source`, `template`, `resource`, …) and the id of what it concerns (a run, a
/// source), so a message can link to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// What happened.
    pub event_type: EventType,
    /// How urgent it is.
    pub severity: Severity,
    /// One line saying what happened and what to do.
    pub summary: String,
    /// Routing tags.
    pub tags: BTreeMap<String, String>,
    /// The id of the run, source or record concerned.
    pub subject: Option<String>,
}

impl AlertEvent {
    /// An event without tags or subject.
    pub fn new(event_type: EventType, severity: Severity, summary: impl Into<String>) -> Self {
        Self { event_type, severity, summary: summary.into(), tags: BTreeMap::new(), subject: None }
    }

    /// The event with one more routing tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The event with the id of what it concerns.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_apis_and_severities_order_by_urgency() {
        let json = serde_json::to_value(EventType::AssertEmptyViolation).unwrap_or_default();
        assert_eq!(json, "assert_empty_violation");
        assert_eq!(EventType::SourceError.to_string(), "source_error");
        assert!(Severity::Critical > Severity::Error && Severity::Warning > Severity::Info);
        let event = AlertEvent::new(EventType::SourceError, Severity::Error, "down")
            .tag("source", "s1")
            .subject("s1");
        assert_eq!(event.tags["source"], "s1");
        assert_eq!(event.subject.as_deref(), Some("s1"));
    }
}
