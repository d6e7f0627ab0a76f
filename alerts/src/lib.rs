//! intake-alerts: telling people when something needs them.
//!
//! Today it owns the [`AlertEvent`] the engine raises, the `log` channel ([`log_event`]) and the
//! delivery-SLA windows of a `schedule_expectation` ([`sla`]).
//! Routing rules, the email, Slack, Teams, PagerDuty and webhook channels, rate limits, quiet
//! hours and SLA schedules come with the alerts issue. It depends on no other workspace crate.

pub mod event;
pub mod sla;

pub use event::{AlertEvent, EventType, Severity, log_event};
pub use sla::{Schedule, ScheduleError, ScheduleExpectation, Verdict, Window};
