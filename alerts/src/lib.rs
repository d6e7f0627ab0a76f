//! intake-alerts: telling people when something needs them.
//!
//! It will own alert events, routing rules, the email, Slack, Teams, PagerDuty and webhook
//! channels, rate limits, quiet hours and SLA schedules. It depends on no other workspace crate.
//! Nothing is implemented yet.
