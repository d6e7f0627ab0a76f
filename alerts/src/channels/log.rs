//! The `log` channel: one structured `tracing` record per event, at a level matching its
//! severity (`info` → INFO, `warning` → WARN, `error` and `critical` → ERROR). The record's
//! message is the event's summary; its fields are `channel` (the channel's name, `log` for the
//! fallback), `event` (the type), `severity`, `subject` (empty when none) and `tags` (a JSON
//! object). Events no routing rule matches are delivered here ([`log_event`]).

use serde::{Deserialize, Serialize};

use crate::event::{Alert, AlertEvent, Severity};

/// The name the fallback log channel reports in its records' `channel` field.
pub const FALLBACK_CHANNEL_NAME: &str = "log";

/// The `config` of a `log` channel: it has no settings (absent or `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {}

/// A configured `log` channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChannel {
    name: String,
}

impl LogChannel {
    /// A log channel reporting `name` in its records.
    pub fn new(name: impl Into<String>) -> Self {
        LogChannel { name: name.into() }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes one record for the alert's event, or for a digest one per held event. Cannot
    /// fail.
    pub fn deliver(&self, alert: &Alert) {
        if alert.is_digest() {
            alert.digest.iter().for_each(|event| emit(&self.name, event));
        } else {
            emit(&self.name, &alert.event);
        }
    }
}

/// Delivers `event` to the fallback `log` channel (the channel of events no rule routes).
pub fn log_event(event: &AlertEvent) {
    emit(FALLBACK_CHANNEL_NAME, event);
}

fn emit(channel: &str, event: &AlertEvent) {
    let tags = serde_json::to_string(&event.tags).unwrap_or_default();
    let subject = event.subject.as_deref().unwrap_or("");
    let (kind, severity) = (event.event_type.as_str(), event.severity.as_str());
    match event.severity {
        Severity::Info => {
            tracing::info!(channel, event = kind, severity, subject, tags, "{}", event.summary)
        }
        Severity::Warning => {
            tracing::warn!(channel, event = kind, severity, subject, tags, "{}", event.summary)
        }
        Severity::Error | Severity::Critical => {
            tracing::error!(channel, event = kind, severity, subject, tags, "{}", event.summary)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;
    use crate::event::EventType;

    type Records = Arc<Mutex<Vec<(tracing::Level, BTreeMap<String, String>)>>>;

    /// Captures each record's level and fields.
    struct Capture(Records);

    struct Fields(BTreeMap<String, String>);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = Fields(BTreeMap::new());
            event.record(&mut fields);
            if let Ok(mut records) = self.0.lock() {
                records.push((*event.metadata().level(), fields.0));
            }
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<(tracing::Level, BTreeMap<String, String>)> {
        let records = Records::default();
        let subscriber = tracing_subscriber::registry().with(Capture(records.clone()));
        tracing::subscriber::with_default(subscriber, f);
        records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    #[test]
    fn each_event_is_one_structured_record_at_its_severitys_level() {
        let failed = AlertEvent::new(EventType::ImportFailed, Severity::Critical, "run r1 failed")
            .tag("tenant", "acme")
            .subject("r1");
        let ok = AlertEvent::new(EventType::ImportSucceeded, Severity::Info, "run r2 done");
        let late = AlertEvent::new(EventType::SlaViolation, Severity::Warning, "no file by 08:00");
        let records = capture(|| {
            LogChannel::new("ops-log").deliver(&Alert::single(failed.clone()));
            log_event(&ok);
            log_event(&late);
        });
        assert_eq!(records.len(), 3);

        let (level, fields) = &records[0];
        assert_eq!(*level, tracing::Level::ERROR);
        assert_eq!(fields["channel"], "ops-log");
        assert_eq!(fields["event"], "import_failed");
        assert_eq!(fields["severity"], "critical");
        assert_eq!(fields["subject"], "r1");
        assert_eq!(fields["tags"], r#"{"tenant":"acme"}"#);
        assert_eq!(fields["message"], "run r1 failed");

        let (level, fields) = &records[1];
        assert_eq!(*level, tracing::Level::INFO);
        assert_eq!(fields["channel"], FALLBACK_CHANNEL_NAME);
        assert_eq!(fields["subject"], "");
        assert_eq!(fields["tags"], "{}");
        assert_eq!(records[2].0, tracing::Level::WARN);
    }
}
