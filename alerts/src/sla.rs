//! Delivery SLAs: when a template expects files (`schedule_expectation`), which deliveries were
//! due, by when, and whether one arrived.
//!
//! ```json
//! "schedule_expectation": {"cron": "0 6 * * Mon-Fri", "timezone": "Europe/Stockholm",
//!                          "tolerance_minutes": 30, "severity": "error",
//!                          "alert_channels": ["ops-pagerduty"]}
//! ```
//! reads "every weekday at 06:00 Stockholm time, 30 minutes tolerance". Other examples:
//! `"0 2 1 * *"` (02:00 on the first of each month), `"30 7,13 * * *"` (07:30 and 13:30 every
//! day), `"0 0 6 * * Mon-Fri"` (the same as the first, with a seconds field).
//!
//! - `cron` has five fields (minute hour day-of-month month day-of-week) or six/seven with
//!   seconds first (and a year last), as the `cron` crate reads them; names (`Mon`, `Jan`),
//!   ranges, lists and steps work. It is read in `timezone` (an IANA name, default `UTC`), so
//!   06:00 stays 06:00 local time across daylight-saving changes.
//! - Each time the expression names is a **window**. A delivery counts for the first window
//!   whose deadline (the time plus `tolerance_minutes`) is not before it, after the deadline of
//!   the window before: a file at 05:55 or at 06:20 meets the 06:00 window; a file at 06:45 is
//!   late — the window is violated, and the late file recovers it.
//! - A local time that does not exist that day (inside the spring-forward hour) expects nothing
//!   that day; one that occurs twice (the autumn hour) is one window, at its first occurrence.
//!
//! This module only computes: the engine's periodic job asks for the windows whose deadline
//! passed since its last look, checks the import runs of the template, and raises
//! `sla_violation` / `sla_recovered` events.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::event::Severity;

/// A template's `schedule_expectation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleExpectation {
    /// When deliveries are expected: a cron expression, read in `timezone`.
    pub cron: String,
    /// The IANA time zone the expression is read in (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// How long after each expected time a delivery still counts (default 0).
    #[serde(default)]
    pub tolerance_minutes: u32,
    /// The severity of the `sla_violation` events (default `error`).
    #[serde(default = "error")]
    pub severity: Severity,
    /// Channels (by name) the events go to besides the routing rules' choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_channels: Vec<String>,
}

impl ScheduleExpectation {
    /// Reads a template's `schedule_expectation` field: an object, or (as the platform types the
    /// field) a string holding one; `None` when it is absent (`null` or an empty string). The
    /// error says what is wrong.
    pub fn from_template_field(value: &serde_json::Value) -> Option<Result<Self, String>> {
        let parsed = match value {
            serde_json::Value::Null => return None,
            serde_json::Value::String(text) if text.trim().is_empty() => return None,
            serde_json::Value::String(text) => serde_json::from_str(text),
            other => serde_json::from_value(other.clone()),
        };
        Some(parsed.map_err(|e| e.to_string()))
    }

    /// The field read and checked ([`Schedule::new`]): `None` when absent.
    pub fn schedule_of(value: &serde_json::Value) -> Option<Result<(Self, Schedule), String>> {
        let checked = Self::from_template_field(value)?.and_then(|expectation| {
            let schedule = Schedule::new(&expectation).map_err(|e| e.to_string())?;
            Ok((expectation, schedule))
        });
        Some(checked)
    }
}

fn utc() -> String {
    "UTC".to_owned()
}

fn error() -> Severity {
    Severity::Error
}

/// What is wrong with a `schedule_expectation`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("`cron` '{cron}' is not a cron expression: {reason}")]
    Cron {
        /// The expression.
        cron: String,
        /// The parser's reason.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error("`timezone` '{0}' is not an IANA time zone name (like Europe/Stockholm)")]
    Timezone(String),
    /// The tolerance reaches into the next window.
    #[error(
        "`tolerance_minutes` {tolerance} is as long as the {gap} minutes between two expected \
         deliveries ({first} and {second}), so windows would overlap"
    )]
    Overlap {
        /// The tolerance.
        tolerance: u32,
        /// The shortest gap found.
        gap: i64,
        /// The first of the two times.
        first: String,
        /// The second.
        second: String,
    },
}

/// One expected delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the delivery was expected.
    pub expected_at: DateTime<Utc>,
    /// The end of its tolerance: no delivery by then is a violation.
    pub deadline: DateTime<Utc>,
    /// The deadline of the window before: a delivery after it counts for this window.
    pub opens_after: DateTime<Utc>,
}

/// Whether a window was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A delivery arrived within the window, at this time.
    Met(DateTime<Utc>),
    /// None arrived by the deadline; a later delivery (before the next window's deadline), if
    /// any, recovers it.
    Missed {
        /// The first delivery after the deadline that still belongs to this window.
        recovered_at: Option<DateTime<Utc>>,
    },
}

/// A checked `schedule_expectation`, ready to compute windows.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: cron::Schedule,
    timezone: Tz,
    tolerance: Duration,
}

impl Schedule {
    /// Checks `expectation`: the cron expression, the time zone, and that the tolerance is
    /// shorter than the gaps between expected deliveries (over the coming year).
    pub fn new(expectation: &ScheduleExpectation) -> Result<Self, ScheduleError> {
        let text = expectation.cron.trim();
        let with_seconds = if text.split_whitespace().count() == 5 {
            format!("0 {text}")
        } else {
            text.to_owned()
        };
        let cron = cron::Schedule::from_str(&with_seconds).map_err(|error| {
            ScheduleError::Cron { cron: expectation.cron.clone(), reason: error.to_string() }
        })?;
        let timezone = Tz::from_str(&expectation.timezone)
            .map_err(|_| ScheduleError::Timezone(expectation.timezone.clone()))?;
        let schedule = Schedule {
            cron,
            timezone,
            tolerance: Duration::minutes(i64::from(expectation.tolerance_minutes)),
        };
        schedule.check_overlap(expectation.tolerance_minutes)?;
        Ok(schedule)
    }

    fn check_overlap(&self, tolerance: u32) -> Result<(), ScheduleError> {
        let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default(); // 2026-01-01
        let times: Vec<DateTime<Utc>> = self
            .expected_after(start)
            .take_while(|t| *t < start + Duration::days(366))
            .take(10_000)
            .collect();
        for pair in times.windows(2) {
            let gap = (pair[1] - pair[0]).num_minutes();
            if gap <= i64::from(tolerance) {
                return Err(ScheduleError::Overlap {
                    tolerance,
                    gap,
                    first: pair[0].with_timezone(&self.timezone).to_rfc3339(),
                    second: pair[1].with_timezone(&self.timezone).to_rfc3339(),
                });
            }
        }
        Ok(())
    }

    /// The expected delivery times after `after`, in order (an ambiguous local time once).
    fn expected_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut previous_local: Option<NaiveDateTime> = None;
        self.cron.after(&after.with_timezone(&self.timezone)).filter_map(move |time| {
            let local = time.naive_local();
            if previous_local == Some(local) {
                return None; // the second occurrence of an hour that repeats
            }
            previous_local = Some(local);
            Some(time.with_timezone(&Utc))
        })
    }

    /// The windows whose deadline falls in `(after, until]`, in order: what a periodic check
    /// that last looked at `after` must decide now.
    pub fn windows_due(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Window> {
        // The window before the first one due gives its `opens_after`.
        let mut previous_deadline = self
            .expected_after(after - self.tolerance - Duration::days(400))
            .take_while(|t| *t + self.tolerance <= after)
            .last()
            .map_or(DateTime::<Utc>::MIN_UTC, |t| t + self.tolerance);
        let mut windows = Vec::new();
        for expected_at in self.expected_after(after - self.tolerance) {
            let deadline = expected_at + self.tolerance;
            if deadline <= after {
                previous_deadline = deadline;
                continue;
            }
            if deadline > until {
                break;
            }
            windows.push(Window { expected_at, deadline, opens_after: previous_deadline });
            previous_deadline = deadline;
        }
        windows
    }

    /// Whether `window` was met by one of `deliveries` (the times import runs of the template
    /// were created), given the next window's deadline for a late delivery (`None`: no later
    /// window yet, any later delivery recovers it).
    pub fn verdict(
        window: &Window,
        next_deadline: Option<DateTime<Utc>>,
        deliveries: &[DateTime<Utc>],
    ) -> Verdict {
        if let Some(on_time) =
            deliveries.iter().filter(|t| **t > window.opens_after && **t <= window.deadline).min()
        {
            return Verdict::Met(*on_time);
        }
        let recovered_at = deliveries
            .iter()
            .filter(|t| **t > window.deadline && next_deadline.is_none_or(|next| **t <= next))
            .min()
            .copied();
        Verdict::Missed { recovered_at }
    }

    /// The deadline of the first window after `window` (for [`Schedule::verdict`]).
    pub fn next_deadline(&self, window: &Window) -> Option<DateTime<Utc>> {
        self.expected_after(window.expected_at).next().map(|t| t + self.tolerance)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn schedule(cron: &str, timezone: &str, tolerance_minutes: u32) -> Schedule {
        Schedule::new(&ScheduleExpectation {
            cron: cron.to_owned(),
            timezone: timezone.to_owned(),
            tolerance_minutes,
            severity: Severity::Error,
            alert_channels: Vec::new(),
        })
        .expect("valid schedule")
    }

    /// A UTC instant from Stockholm wall-clock time.
    fn stockholm(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Stockholm
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .expect("local time exists")
            .with_timezone(&Utc)
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("time")
    }

    #[test]
    fn weekdays_at_six_stockholm_time_with_thirty_minutes_tolerance() {
        let s = schedule("0 6 * * Mon-Fri", "Europe/Stockholm", 30);
        // Friday 2026-11-20 to Tuesday 2026-11-24, 12:00: Fri, Mon, Tue.
        let windows = s.windows_due(stockholm(2026, 11, 20, 0, 0), stockholm(2026, 11, 24, 12, 0));
        let expected: Vec<DateTime<Utc>> = windows.iter().map(|w| w.expected_at).collect();
        assert_eq!(
            expected,
            [
                stockholm(2026, 11, 20, 6, 0),
                stockholm(2026, 11, 23, 6, 0),
                stockholm(2026, 11, 24, 6, 0)
            ]
        );
        // In winter Stockholm is UTC+1: 06:00 local is 05:00 UTC, the deadline 05:30 UTC.
        assert_eq!(windows[0].deadline, utc(2026, 11, 20, 5, 30));
        assert_eq!(windows[1].opens_after, windows[0].deadline);
    }

    #[test]
    fn a_delivery_is_on_time_early_or_within_the_tolerance_and_a_late_one_recovers() {
        let s = schedule("0 6 * * *", "Europe/Stockholm", 30);
        let windows = s.windows_due(stockholm(2026, 11, 22, 12, 0), stockholm(2026, 11, 24, 12, 0));
        assert_eq!(windows.len(), 2);
        let (monday, tuesday) = (&windows[0], &windows[1]);
        let next = s.next_deadline(monday);
        assert_eq!(next, Some(tuesday.deadline));
        let early = stockholm(2026, 11, 23, 5, 55);
        assert_eq!(Schedule::verdict(monday, next, &[early]), Verdict::Met(early));
        let in_tolerance = stockholm(2026, 11, 23, 6, 29);
        assert_eq!(Schedule::verdict(monday, next, &[in_tolerance]), Verdict::Met(in_tolerance));
        let late = stockholm(2026, 11, 23, 6, 45);
        assert_eq!(
            Schedule::verdict(monday, next, &[late]),
            Verdict::Missed { recovered_at: Some(late) }
        );
        // Sunday's delivery belongs to Sunday's window, not Monday's.
        let sunday = stockholm(2026, 11, 22, 6, 10);
        assert_eq!(
            Schedule::verdict(monday, next, &[sunday]),
            Verdict::Missed { recovered_at: None }
        );
    }

    #[test]
    fn six_oclock_stays_six_oclock_local_time_across_daylight_saving_changes() {
        let s = schedule("0 6 * * *", "Europe/Stockholm", 0);
        // Summer time starts 2026-03-29 (UTC+1 → UTC+2) and ends 2026-10-25.
        let spring = s.windows_due(utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0));
        let times: Vec<DateTime<Utc>> = spring.iter().map(|w| w.expected_at).collect();
        assert_eq!(times, [utc(2026, 3, 28, 5, 0), utc(2026, 3, 29, 4, 0)]);
        let autumn = s.windows_due(utc(2026, 10, 24, 0, 0), utc(2026, 10, 26, 0, 0));
        let times: Vec<DateTime<Utc>> = autumn.iter().map(|w| w.expected_at).collect();
        assert_eq!(times, [utc(2026, 10, 24, 4, 0), utc(2026, 10, 25, 5, 0)]);
    }

    #[test]
    fn a_time_in_the_skipped_hour_expects_nothing_and_a_repeated_hour_expects_once() {
        let s = schedule("30 2 * * *", "Europe/Stockholm", 0);
        let spring = s.windows_due(utc(2026, 3, 28, 0, 0), utc(2026, 3, 31, 0, 0));
        let times: Vec<DateTime<Utc>> = spring.iter().map(|w| w.expected_at).collect();
        // 02:30 does not exist on 2026-03-29.
        assert_eq!(times, [utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 0, 30)]);
        let autumn = s.windows_due(utc(2026, 10, 24, 12, 0), utc(2026, 10, 26, 0, 0));
        let times: Vec<DateTime<Utc>> = autumn.iter().map(|w| w.expected_at).collect();
        // 02:30 happens twice on 2026-10-25: at 00:30 and 01:30 UTC; one window, the first.
        assert_eq!(times, [utc(2026, 10, 25, 0, 30)]);
    }

    #[test]
    fn a_window_crossing_midnight_keeps_its_late_delivery() {
        let s = schedule("30 23 * * *", "UTC", 60);
        let windows = s.windows_due(utc(2026, 11, 23, 12, 0), utc(2026, 11, 24, 1, 0));
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].deadline, utc(2026, 11, 24, 0, 30));
        let after_midnight = utc(2026, 11, 24, 0, 20);
        assert_eq!(
            Schedule::verdict(&windows[0], s.next_deadline(&windows[0]), &[after_midnight]),
            Verdict::Met(after_midnight)
        );
        // Deciding again later finds no new window until the next deadline.
        assert!(s.windows_due(utc(2026, 11, 24, 1, 0), utc(2026, 11, 24, 12, 0)).is_empty());
    }

    #[test]
    fn bad_expectations_are_refused_with_the_reason() {
        let bad = |cron: &str, timezone: &str, tolerance: u32| {
            Schedule::new(&ScheduleExpectation {
                cron: cron.to_owned(),
                timezone: timezone.to_owned(),
                tolerance_minutes: tolerance,
                severity: Severity::Error,
                alert_channels: Vec::new(),
            })
            .expect_err("refused")
        };
        assert!(matches!(bad("every day", "UTC", 0), ScheduleError::Cron { .. }));
        assert_eq!(bad("0 6 * * *", "Stockholm", 0), ScheduleError::Timezone("Stockholm".into()));
        assert!(matches!(bad("0 * * * *", "UTC", 60), ScheduleError::Overlap { gap: 60, .. }));
        let config: ScheduleExpectation =
            serde_json::from_value(serde_json::json!({"cron": "0 6 * * Mon-Fri"})).expect("json");
        assert_eq!((config.timezone.as_str(), config.tolerance_minutes), ("UTC", 0));
    }
}
