//! intake-alerts: telling people when something needs them.
//!
//! It owns the [`AlertEvent`] the engine raises, the routing of events to channels by the
//! tenant's `/alert-routing-rules` ([`routing`]), the channels of `/alert-channels`
//! ([`channels`]: `log`, `webhook`, `email` (SMTP), `slack`, `teams` and `pagerduty`), the
//! wording of messages ([`message`]), the delivery-SLA windows of a template's
//! `schedule_expectation` ([`sla`]), and per channel the rate limit, de-duplication and quiet
//! hours with their digest ([`throttle`]). The engine's dispatcher and SLA monitor job use them
//! (`intake_engine::alerting`).
//!
//! What it is not: it fetches nothing from the platform (the caller passes the tenant's rules and
//! channels) and resolves no credential itself (the caller passes a [`SecretResolver`]). It
//! depends on no other workspace crate.

pub mod channels;
pub mod event;
pub mod message;
pub mod routing;
pub mod secret;
pub mod sla;
pub mod throttle;

pub use channels::log::log_event;
pub use channels::{
    AlertChannel, Channel, ChannelConfig, ChannelType, DeliveryError, EmailConfig,
    PagerDutyChannel, PagerDutyConfig, SlackChannel, SlackConfig, SmtpSecurity, TeamsChannel,
    TeamsConfig,
};
pub use event::{Alert, AlertEvent, EventType, Severity};
pub use message::{Message, MessageRenderer, MessageTemplates};
pub use routing::{AlertRoutingRule, ChannelId, Route, route};
pub use secret::{ChannelSecret, SecretError, SecretResolver};
pub use sla::{Schedule, ScheduleError, ScheduleExpectation, Verdict, Window};
pub use throttle::{ChannelGate, Decision, QuietHours};
