//! What a channel does with an alert before sending it: identical events in a short window are
//! sent once, `max_alerts_per_5min` caps a sliding five-minute window (the next alert sent says
//! how many were held back), and quiet hours hold everything below
//! `quiet_hours_severity_override` for one digest when they end.
//!
//! The gate only decides; the clock is a parameter, so tests (and a restart that replays the
//! outcomes) control time. One [`ChannelGate`] per channel, kept by the dispatcher.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::channels::AlertChannel;
use crate::event::{AlertEvent, Severity};

/// How long an identical event (type, severity, summary, tags, subject) is not sent again.
pub const DEDUP_WINDOW: Duration = Duration::minutes(10);

/// The rate limit's window.
const RATE_WINDOW: Duration = Duration::minutes(5);

/// What to do with one alert on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it now; `held_back` alerts were suppressed by the rate limit since the last one
    /// sent (say so in this one).
    Send {
        /// Alerts suppressed since the last one sent.
        held_back: u32,
    },
    /// The rate limit is reached: counted, not sent.
    Suppressed,
    /// The same event was sent within [`DEDUP_WINDOW`].
    Duplicate,
    /// Quiet hours: kept for the digest at their end.
    Held,
}

impl Decision {
    /// The outcome's name, as stored with the alert (`sent`, `suppressed`, `duplicate`, `held`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Send { .. } => "sent",
            Decision::Suppressed => "suppressed",
            Decision::Duplicate => "duplicate",
            Decision::Held => "held",
        }
    }
}

/// Quiet hours of a channel, in the tenant's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
    timezone: Tz,
    /// Alerts at or above this severity are sent anyway.
    override_severity: Severity,
}

impl QuietHours {
    /// The channel's quiet hours (`quiet_hours_start`/`_end` as `HH:MM`) in `timezone`, or
    /// `None` when it has none; an error names the bad field.
    pub fn of(channel: &AlertChannel, timezone: Tz) -> Result<Option<Self>, String> {
        let parse = |field: &str, text: &str| {
            NaiveTime::parse_from_str(text.trim(), "%H:%M")
                .map_err(|_| format!("{field} '{text}' is not a time of day as HH:MM"))
        };
        match (&channel.quiet_hours_start, &channel.quiet_hours_end) {
            (None, None) => Ok(None),
            (Some(start), Some(end)) => {
                let start = parse("quiet_hours_start", start)?;
                let end = parse("quiet_hours_end", end)?;
                if start == end {
                    return Err("quiet_hours_start and quiet_hours_end are the same".to_owned());
                }
                Ok(Some(QuietHours {
                    start,
                    end,
                    timezone,
                    override_severity: channel.quiet_hours_severity_override,
                }))
            }
            _ => Err("set both quiet_hours_start and quiet_hours_end, or neither".to_owned()),
        }
    }

    /// Whether `now` is inside the quiet hours (start included, end excluded; a period whose
    /// end is before its start crosses midnight).
    pub fn is_quiet(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.timezone).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

/// The decisions of one channel over time.
#[derive(Debug, Clone)]
pub struct ChannelGate {
    max_per_window: u32,
    quiet: Option<QuietHours>,
    /// When the alerts sent in the last five minutes were sent.
    sent: VecDeque<DateTime<Utc>>,
    /// Suppressed since the last alert sent.
    held_back: u32,
    /// Fingerprints of events sent recently, with when.
    recent: VecDeque<(String, DateTime<Utc>)>,
    /// Held during quiet hours, for the digest.
    digest: Vec<AlertEvent>,
}

impl ChannelGate {
    /// A gate for `channel`, its quiet hours read in `timezone` (the tenant's).
    pub fn new(channel: &AlertChannel, timezone: Tz) -> Result<Self, String> {
        Ok(Self {
            max_per_window: channel.max_alerts_per_5min,
            quiet: QuietHours::of(channel, timezone)?,
            sent: VecDeque::new(),
            held_back: 0,
            recent: VecDeque::new(),
            digest: Vec::new(),
        })
    }

    /// Decides what happens to `event` at `now`.
    pub fn decide(&mut self, event: &AlertEvent, now: DateTime<Utc>) -> Decision {
        self.recent.retain(|(_, at)| now - *at < DEDUP_WINDOW);
        let fingerprint = fingerprint(event);
        if self.recent.iter().any(|(seen, _)| *seen == fingerprint) {
            return Decision::Duplicate;
        }
        if let Some(quiet) = &self.quiet
            && quiet.is_quiet(now)
            && event.severity < quiet.override_severity
        {
            self.digest.push(event.clone());
            self.recent.push_back((fingerprint, now));
            return Decision::Held;
        }
        while self.sent.front().is_some_and(|at| now - *at >= RATE_WINDOW) {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.max_per_window as usize {
            self.held_back += 1;
            return Decision::Suppressed;
        }
        self.sent.push_back(now);
        self.recent.push_back((fingerprint, now));
        Decision::Send { held_back: std::mem::take(&mut self.held_back) }
    }

    /// The events held during quiet hours, once they are over at `now` (and only then), to send
    /// as one digest; empty otherwise.
    pub fn take_digest(&mut self, now: DateTime<Utc>) -> Vec<AlertEvent> {
        match &self.quiet {
            Some(quiet) if !quiet.is_quiet(now) => std::mem::take(&mut self.digest),
            _ => Vec::new(),
        }
    }
}

fn fingerprint(event: &AlertEvent) -> String {
    // Serializing the event cannot fail: it is strings and maps of strings.
    serde_json::to_string(&(
        event.event_type,
        event.severity,
        &event.summary,
        &event.tags,
        &event.subject,
    ))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::event::EventType;

    fn channel(extra: serde_json::Value) -> AlertChannel {
        let mut value = json!({"name": "ops", "type": "log"});
        if let (Some(target), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            target.extend(extra.clone());
        }
        serde_json::from_value(value).expect("channel")
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, s).single().expect("time")
    }

    fn event(n: u32, severity: Severity) -> AlertEvent {
        AlertEvent::new(EventType::ValidationFailed, severity, format!("file {n}: rows rejected"))
    }

    #[test]
    fn the_rate_limit_is_a_sliding_window_and_the_next_alert_says_how_many_were_held_back() {
        let mut gate =
            ChannelGate::new(&channel(json!({"max_alerts_per_5min": 2})), chrono_tz::UTC)
                .expect("gate");
        assert_eq!(
            gate.decide(&event(1, Severity::Error), at(10, 0, 0)),
            Decision::Send { held_back: 0 }
        );
        assert_eq!(
            gate.decide(&event(2, Severity::Error), at(10, 1, 0)),
            Decision::Send { held_back: 0 }
        );
        assert_eq!(gate.decide(&event(3, Severity::Error), at(10, 2, 0)), Decision::Suppressed);
        assert_eq!(gate.decide(&event(4, Severity::Error), at(10, 4, 59)), Decision::Suppressed);
        // 10:00 has left the window; 10:01 has not.
        assert_eq!(
            gate.decide(&event(5, Severity::Error), at(10, 5, 0)),
            Decision::Send { held_back: 2 }
        );
        assert_eq!(gate.decide(&event(6, Severity::Error), at(10, 5, 30)), Decision::Suppressed);
        assert_eq!(
            gate.decide(&event(7, Severity::Error), at(10, 6, 0)),
            Decision::Send { held_back: 1 }
        );
    }

    #[test]
    fn an_identical_event_within_ten_minutes_is_sent_once() {
        let mut gate = ChannelGate::new(&channel(json!({})), chrono_tz::UTC).expect("gate");
        let same = event(1, Severity::Error);
        assert_eq!(gate.decide(&same, at(10, 0, 0)), Decision::Send { held_back: 0 });
        assert_eq!(gate.decide(&same, at(10, 9, 59)), Decision::Duplicate);
        assert_eq!(
            gate.decide(&same.clone().tag("source", "b"), at(10, 9, 59)),
            Decision::Send { held_back: 0 }
        );
        assert_eq!(gate.decide(&same, at(10, 10, 0)), Decision::Send { held_back: 0 });
    }

    #[test]
    fn quiet_hours_across_midnight_in_the_tenants_zone_hold_all_but_urgent_alerts_for_a_digest() {
        let quiet = channel(json!({"quiet_hours_start": "22:00", "quiet_hours_end": "07:00",
                                   "quiet_hours_severity_override": "critical"}));
        let mut gate = ChannelGate::new(&quiet, chrono_tz::Europe::Stockholm).expect("gate");
        // Stockholm is UTC+1 in November: 22:00 local is 21:00 UTC, 07:00 local 06:00 UTC.
        assert_eq!(
            gate.decide(&event(1, Severity::Error), at(20, 59, 0)),
            Decision::Send { held_back: 0 }
        );
        assert_eq!(gate.decide(&event(2, Severity::Error), at(21, 0, 0)), Decision::Held);
        assert_eq!(
            gate.decide(&event(3, Severity::Critical), at(23, 30, 0)),
            Decision::Send { held_back: 0 }
        );
        let after_midnight = Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).single().expect("t");
        assert_eq!(gate.decide(&event(4, Severity::Warning), after_midnight), Decision::Held);
        assert!(gate.take_digest(after_midnight).is_empty(), "still quiet");
        let morning = Utc.with_ymd_and_hms(2026, 11, 25, 6, 0, 0).single().expect("t");
        let digest = gate.take_digest(morning);
        let summaries: Vec<&str> = digest.iter().map(|e| e.summary.as_str()).collect();
        assert_eq!(summaries, ["file 2: rows rejected", "file 4: rows rejected"]);
        assert!(gate.take_digest(morning).is_empty(), "a digest is sent once");
    }

    #[test]
    fn quiet_hours_must_be_two_times_of_day() {
        let half = channel(json!({"quiet_hours_start": "22:00"}));
        assert!(ChannelGate::new(&half, chrono_tz::UTC).is_err());
        let bad = channel(json!({"quiet_hours_start": "22", "quiet_hours_end": "07:00"}));
        let error = ChannelGate::new(&bad, chrono_tz::UTC).expect_err("bad time");
        assert!(error.contains("quiet_hours_start '22'"), "{error}");
    }
}
