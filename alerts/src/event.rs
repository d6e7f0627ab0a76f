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
    #[serde(default)]
    pub subject: Option<String>,
    /// Where a person can look at it (the run's URL in the REST layer), when known.
    #[serde(default)]
    pub link: Option<String>,
    /// What identifies the incident across events: events with the same key concern the same
    /// thing (PagerDuty's `dedup_key`; an `sla_recovered` carries its `sla_violation`'s key).
    #[serde(default)]
    pub dedup_key: Option<String>,
}

impl AlertEvent {
    /// An event without tags or subject.
    pub fn new(event_type: EventType, severity: Severity, summary: impl Into<String>) -> Self {
        Self {
            event_type,
            severity,
            summary: summary.into(),
            tags: BTreeMap::new(),
            subject: None,
            link: None,
            dedup_key: None,
        }
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

    /// The event with a link to what it concerns.
    pub fn link(mut self, link: impl Into<String>) -> Self {
        self.link = Some(link.into());
        self
    }

    /// The event with the key of the incident it belongs to.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// The incident key: [`AlertEvent::dedup_key`] when set, else one derived from the type,
    /// tags and subject (so a repeated event updates the same incident).
    pub fn incident_key(&self) -> String {
        if let Some(key) = &self.dedup_key {
            return key.clone();
        }
        let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "intake:{}:{}:{}",
            self.event_type,
            tags.join(","),
            self.subject.as_deref().unwrap_or("")
        )
    }
}

/// What one delivery to a channel carries: one event, or the digest of the events a channel held
/// during its quiet hours, and how many alerts its rate limit suppressed since its last delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The event the alert is about; for a digest, the most severe held event (the first of
    /// equals).
    pub event: AlertEvent,
    /// For a digest, every held event in the order they were raised; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digest: Vec<AlertEvent>,
    /// Alerts the channel's `max_alerts_per_5min` suppressed since its last delivery.
    #[serde(default)]
    pub held_back: u32,
}

impl Alert {
    /// One event, nothing held back.
    pub fn single(event: AlertEvent) -> Self {
        Alert { event, digest: Vec::new(), held_back: 0 }
    }

    /// The digest of `events` held during quiet hours (`None` when there are none).
    pub fn digest(events: Vec<AlertEvent>) -> Option<Self> {
        let mut headline = events.first()?;
        for event in &events {
            if event.severity > headline.severity {
                headline = event;
            }
        }
        Some(Alert { event: headline.clone(), digest: events, held_back: 0 })
    }

    /// The alert saying that `held_back` alerts were suppressed before it.
    pub fn with_held_back(mut self, held_back: u32) -> Self {
        self.held_back = held_back;
        self
    }

    /// Whether this is a quiet-hours digest.
    pub fn is_digest(&self) -> bool {
        !self.digest.is_empty()
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

    #[test]
    fn a_digest_is_about_its_most_severe_event_and_keeps_them_all_in_order() {
        let events = vec![
            AlertEvent::new(EventType::ValidationFailed, Severity::Warning, "a"),
            AlertEvent::new(EventType::ParseError, Severity::Error, "b"),
            AlertEvent::new(EventType::ImportFailed, Severity::Error, "c"),
        ];
        let digest = Alert::digest(events.clone()).expect("digest");
        assert_eq!(digest.event.summary, "b");
        assert_eq!(digest.digest, events);
        assert!(digest.is_digest() && !Alert::single(events[0].clone()).is_digest());
        assert!(Alert::digest(Vec::new()).is_none());
        let keyed = events[0].clone().dedup_key("sla:t1:2026-11-24T05:00:00Z");
        assert_eq!(keyed.incident_key(), "sla:t1:2026-11-24T05:00:00Z");
        assert_eq!(events[0].incident_key(), events[0].clone().incident_key());
        assert_ne!(events[0].incident_key(), events[1].incident_key());
    }
}
