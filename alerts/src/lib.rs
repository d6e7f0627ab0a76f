//! intake-alerts: telling people when something needs them.
//!
//! It owns the [`AlertEvent`] the engine raises, the routing of events to channels by the
//! tenant's `/alert-routing-rules` ([`routing`]), the channels of `/alert-channels`
//! ([`channels`]: `log` and `webhook` deliver; `email`, `slack`, `teams` and `pagerduty` parse
//! but refuse to deliver, "not supported yet"), and the delivery-SLA windows of a template's
//! `schedule_expectation` ([`sla`]), and per channel the rate limit, de-duplication and quiet
//! hours with their digest ([`throttle`]). Message templates, the other channels' delivery and
//! the engine's dispatcher and SLA monitor job come with later slices of the alerts issue.
//!
//! What it is not: it fetches nothing from the platform (the caller passes the tenant's rules and
//! channels) and resolves no credential itself (the caller passes a [`SecretResolver`]). It
//! depends on no other workspace crate.

pub mod channels;
pub mod event;
pub mod routing;
pub mod secret;
pub mod sla;
pub mod throttle;

pub use channels::log::log_event;
pub use channels::{AlertChannel, Channel, ChannelConfig, ChannelType, DeliveryError};
pub use event::{AlertEvent, EventType, Severity};
pub use routing::{AlertRoutingRule, ChannelId, Route, route};
pub use secret::{ChannelSecret, SecretError, SecretResolver};
pub use sla::{Schedule, ScheduleError, ScheduleExpectation, Verdict, Window};
pub use throttle::{ChannelGate, Decision, QuietHours};
