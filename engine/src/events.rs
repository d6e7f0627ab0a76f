//! The first stop of every alert event: the `log` channel and the `/metrics` count. Under
//! `intake serve` the dispatcher ([`crate::alerting::Alerting`]) calls [`raise`] and then routes
//! the event to the tenant's channels; elsewhere (`intake import`) events are only logged.

use intake_alerts::{AlertEvent, EventType, Severity, log_event};

/// Consecutive failed polls after which a source raises `source_error` (once per failure
/// streak; a successful poll ends the streak).
pub const FAILED_POLLS_BEFORE_SOURCE_ERROR: u32 = 3;

/// Delivers an event.
pub fn raise(event: &AlertEvent) {
    log_event(event);
    crate::metrics::count_event(event.event_type.as_str());
}

/// Counts a source's consecutive failed polls and says when they become a `source_error`.
#[derive(Debug, Default)]
pub struct SourceHealth {
    failed_polls: u32,
}

impl SourceHealth {
    /// Records one poll's outcome; returns the `source_error` event to raise when this failure
    /// makes [`FAILED_POLLS_BEFORE_SOURCE_ERROR`] in a row.
    pub fn record(
        &mut self,
        tenant: &str,
        source_id: &str,
        error: Option<&str>,
    ) -> Option<AlertEvent> {
        let Some(error) = error else {
            if self.failed_polls >= FAILED_POLLS_BEFORE_SOURCE_ERROR {
                tracing::info!(source = %source_id, failed_polls = self.failed_polls, "source recovered");
            }
            self.failed_polls = 0;
            return None;
        };
        self.failed_polls += 1;
        (self.failed_polls == FAILED_POLLS_BEFORE_SOURCE_ERROR).then(|| {
            AlertEvent::new(
                EventType::SourceError,
                Severity::Error,
                format!("source {source_id} failed {} polls in a row: {error}", self.failed_polls),
            )
            .tag("tenant", tenant)
            .tag("source", source_id)
            .subject(source_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_error_is_raised_once_per_failure_streak() {
        let mut health = SourceHealth::default();
        let raised: Vec<bool> = [Some("down"), Some("down"), Some("down"), Some("down"), None]
            .into_iter()
            .chain([Some("x"), Some("x"), Some("x")])
            .map(|e| health.record("t", "s1", e).is_some())
            .collect();
        assert_eq!(raised, [false, false, true, false, false, false, false, true]);
        let mut health = SourceHealth::default();
        health.record("t", "s1", Some("a"));
        health.record("t", "s1", Some("b"));
        let event = health.record("t", "s1", Some("refused")).unwrap();
        assert_eq!(event.event_type, EventType::SourceError);
        assert_eq!(event.tags["source"], "s1");
        assert!(event.summary.contains("3 polls in a row: refused"), "{}", event.summary);
    }
}
