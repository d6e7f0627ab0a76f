//! The stored alert (`/alerts`): one event routed to one channel, and what became of it.

use chrono::{DateTime, Utc};
use intake_alerts::{Alert, AlertEvent};
use serde::{Deserialize, Serialize};

/// What became of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Waiting for its delivery job (retried with backoff while the channel fails).
    Queued,
    /// Delivered.
    Sent,
    /// Not delivered: over the channel's `max_alerts_per_5min` (the next alert sent says how
    /// many), or the channel is inactive.
    Suppressed,
    /// Not delivered: the same event went to this channel within the de-duplication window.
    Duplicate,
    /// Held during the channel's quiet hours; delivered in the digest when they end.
    Held,
    /// Not delivered; `reason` says why.
    Failed,
}

impl AlertStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Queued => "queued",
            AlertStatus::Sent => "sent",
            AlertStatus::Suppressed => "suppressed",
            AlertStatus::Duplicate => "duplicate",
            AlertStatus::Held => "held",
            AlertStatus::Failed => "failed",
        }
    }
}

/// The body of a stored alert: the event's fields, the channel and the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The event (its fields at the top level of the stored alert).
    #[serde(flatten)]
    pub event: AlertEvent,
    /// For a quiet-hours digest, the held events it delivers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digest: Vec<AlertEvent>,
    /// Alerts suppressed by the rate limit before this one (said in its message).
    #[serde(default)]
    pub held_back: u32,
    /// The channel's id; `null` for the `log` fallback of events no rule routes.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// The channel's name (`log` for the fallback).
    pub channel_name: String,
    /// What became of it.
    pub status: AlertStatus,
    /// Why it was not delivered, or the last failed attempt's error while it is retried.
    #[serde(default)]
    pub reason: Option<String>,
    /// Delivery attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// When it was delivered.
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
}

impl AlertRecord {
    /// A record of `alert` for a channel, with a status.
    pub fn new(
        alert: &Alert,
        channel_id: Option<&str>,
        channel_name: &str,
        status: AlertStatus,
    ) -> Self {
        AlertRecord {
            event: alert.event.clone(),
            digest: alert.digest.clone(),
            held_back: alert.held_back,
            channel_id: channel_id.map(str::to_owned),
            channel_name: channel_name.to_owned(),
            status,
            reason: None,
            attempts: 0,
            sent_at: None,
        }
    }

    /// The record with a reason.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The alert a channel delivers.
    pub fn alert(&self) -> Alert {
        Alert { event: self.event.clone(), digest: self.digest.clone(), held_back: self.held_back }
    }
}
