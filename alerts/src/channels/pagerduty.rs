//! The `pagerduty` channel: each alert is one event `POST`ed to the PagerDuty Events API v2,
//! opening (`trigger`) or closing (`resolve`) an incident keyed by the event's
//! [`AlertEvent::incident_key`].
//!
//! The config:
//! - `credential_name` (required): the reference of the credential whose value is the
//!   integration's routing key (the "Integration Key" of an Events API v2 integration), e.g.
//!   `env:PAGERDUTY_ROUTING_KEY` or `file:/run/secrets/pagerduty_routing_key`; resolved at each
//!   delivery. An inline `routing_key` is refused ("store it as a credential");
//! - `events_url` (optional, default [`DEFAULT_EVENTS_URL`]): where events are sent; an absolute
//!   `https://` (or `http://`) URL, e.g. `https://events.eu.pagerduty.com/v2/enqueue` for an EU
//!   account;
//! - `timeout_seconds` (optional, 1 to 300, default 10): how long one delivery may take in all;
//! - `source` (optional, default `intake`): the event's `payload.source`, the system where it
//!   happened (not blank);
//! - `title_template` (optional): a minijinja template replacing the default title
//!   ([`crate::message`]), which becomes the incident's summary.
//!
//! ```json
//! {
//!   "name": "ops-pagerduty",
//!   "type": "pagerduty",
//!   "config": {
//!     "credential_name": "env:PAGERDUTY_ROUTING_KEY",
//!     "events_url": "https://events.pagerduty.com/v2/enqueue",
//!     "timeout_seconds": 10,
//!     "source": "intake-prod"
//!   }
//! }
//! ```
//!
//! A trigger (`Content-Type: application/json`):
//! ```json
//! {
//!   "routing_key": "<the credential's value>",
//!   "event_action": "trigger",
//!   "dedup_key": "<event.incident_key()>",
//!   "payload": {
//!     "summary": "<title, at most 1024 chars>",
//!     "source": "intake",
//!     "severity": "critical | error | warning | info",
//!     "timestamp": "2026-11-24T05:00:00.000Z",
//!     "component": "<tags.template, else tags.source>",
//!     "group": "<tags.tenant>",
//!     "class": "<event_type>",
//!     "custom_details": {"summary": "…", "tags": {…}, "subject": "…" | null, "held_back": 0}
//!   },
//!   "links": [{"href": "<event.link>", "text": "Open in intake"}]
//! }
//! ```
//! `component`, `group` and `links` are left out when the event lacks the tag or link; a
//! quiet-hours digest is one trigger about its most severe event, with every held event in
//! `custom_details.digest`. An incident key longer than PagerDuty's 255 characters is sent as
//! `intake:sha256:<hex of the key>` (the same for a trigger and its resolve).
//!
//! `sla_recovered` and `import_succeeded` are sent as a resolve, PagerDuty's shape for it:
//! `{"routing_key": "…", "event_action": "resolve", "dedup_key": "<event.incident_key()>"}`.
//! The engine gives an `sla_recovered` the `dedup_key` of its `sla_violation`, so repeated
//! violations update one incident and the recovery resolves it.
//!
//! PagerDuty answers `202` with `{"status": "success", "dedup_key": …}`: any `2xx` is delivered.
//! Anything else is [`DeliveryError::Refused`] with the status and the start of the body (`400`,
//! an invalid event: not retryable; `429` and `5xx`: retryable); a connection failure or
//! time-out is [`DeliveryError::Unreachable`]. Errors show the URL's origin only, and the
//! routing key appears in no error or log (it is redacted from a quoted body too).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::http::{self, default_timeout_seconds, parse_url, timeout_problem};
use super::incoming_webhook::InlineSecret;
use super::{ConfigProblem, DeliveryError};
use crate::event::{Alert, AlertEvent, EventType};
use crate::message::{MessageRenderer, MessageTemplates};
use crate::secret::{SecretError, SecretResolver};

/// The Events API v2 endpoint (US service region).
pub const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// The `payload.source` when the config sets none.
pub const DEFAULT_SOURCE: &str = "intake";
/// The longest `payload.summary` PagerDuty accepts, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// The longest `dedup_key` PagerDuty accepts, in characters.
pub const MAX_DEDUP_KEY_CHARS: usize = 255;

/// The `config` of a `pagerduty` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The reference of the credential whose value is the routing key
    /// (`env:PAGERDUTY_ROUTING_KEY`), never the key itself.
    #[serde(default)]
    pub credential_name: String,
    /// Where events are `POST`ed (default [`DEFAULT_EVENTS_URL`]).
    #[serde(default = "default_events_url")]
    pub events_url: String,
    /// How long one delivery may take in all, in seconds (1 to 300; default 10).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// The events' `payload.source` (default [`DEFAULT_SOURCE`]).
    #[serde(default = "default_source")]
    pub source: String,
    /// Replaces the default title template (the incident's summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_template: Option<String>,
    /// An inline routing key: refused, it belongs in a credential (see [`InlineSecret`]).
    #[serde(default, skip_serializing)]
    pub routing_key: Option<InlineSecret>,
}

fn default_events_url() -> String {
    DEFAULT_EVENTS_URL.to_owned()
}

fn default_source() -> String {
    DEFAULT_SOURCE.to_owned()
}

impl PagerDutyConfig {
    /// A config naming the credential `credential_name`, with every default.
    pub fn new(credential_name: impl Into<String>) -> Self {
        PagerDutyConfig {
            credential_name: credential_name.into(),
            events_url: default_events_url(),
            timeout_seconds: default_timeout_seconds(),
            source: default_source(),
            title_template: None,
            routing_key: None,
        }
    }

    fn templates(&self) -> MessageTemplates {
        MessageTemplates { title_template: self.title_template.clone(), ..Default::default() }
    }

    /// Every problem with the config (an empty list: it is valid). No I/O.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.routing_key.is_some() {
            problems.push(ConfigProblem {
                path: "config.routing_key".into(),
                message: "is not allowed: the routing key is a secret; store it as a credential \
                          (e.g. env:PAGERDUTY_ROUTING_KEY), name that in credential_name and \
                          remove routing_key"
                    .into(),
            });
        }
        if self.credential_name.trim().is_empty() {
            problems.push(ConfigProblem {
                path: "config.credential_name".into(),
                message: "is missing or empty; name the credential holding the integration's \
                          routing key, e.g. env:PAGERDUTY_ROUTING_KEY"
                    .into(),
            });
        }
        if let Err(message) = parse_url(&self.events_url) {
            problems.push(ConfigProblem { path: "config.events_url".into(), message });
        }
        problems.extend(timeout_problem(self.timeout_seconds));
        if self.source.trim().is_empty() {
            problems.push(ConfigProblem {
                path: "config.source".into(),
                message: format!(
                    "is empty; leave it out for '{DEFAULT_SOURCE}' or name the system"
                ),
            });
        }
        if let Err(template_problems) = MessageRenderer::new(&self.templates()) {
            problems.extend(template_problems);
        }
        problems
    }
}

/// A configured `pagerduty` channel.
#[derive(Debug, Clone)]
pub struct PagerDutyChannel {
    name: String,
    url: Url,
    credential_name: String,
    timeout: Duration,
    source: String,
    renderer: Arc<MessageRenderer>,
    http: reqwest::Client,
}

impl PagerDutyChannel {
    /// A channel named `name` for a config, sending through `http` (see
    /// [`super::http_client`]); every problem with the config is reported at once.
    pub fn new(
        name: &str,
        config: &PagerDutyConfig,
        http: reqwest::Client,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let problems = config.validate();
        let url = match parse_url(&config.events_url) {
            Ok(url) if problems.is_empty() => url,
            _ => return Err(problems),
        };
        let renderer = MessageRenderer::new(&config.templates())?;
        Ok(PagerDutyChannel {
            name: name.to_owned(),
            url,
            credential_name: config.credential_name.clone(),
            timeout: Duration::from_secs(config.timeout_seconds),
            source: config.source.clone(),
            renderer: Arc::new(renderer),
            http,
        })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `alert` as a trigger (or a resolve, for `sla_recovered` and `import_succeeded`),
    /// resolving the routing key through `secrets`.
    pub async fn deliver(
        &self,
        alert: &Alert,
        secrets: &dyn SecretResolver,
    ) -> Result<(), DeliveryError> {
        let summary = self
            .renderer
            .render(alert)
            .map_err(|source| DeliveryError::Render { channel: self.name.clone(), source })?
            .title;
        let key = secrets
            .resolve(&self.credential_name)
            .map_err(|source| DeliveryError::Secret { channel: self.name.clone(), source })?;
        let routing_key = key.expose().trim();
        if routing_key.is_empty() {
            return Err(DeliveryError::Secret {
                channel: self.name.clone(),
                source: SecretError {
                    reference: self.credential_name.clone(),
                    reason: "the credential is empty; put the integration's routing key there"
                        .into(),
                },
            });
        }
        let event = event(alert, routing_key, &summary, &self.source, SystemTime::now());
        let body = serde_json::to_vec(&event).map_err(|e| DeliveryError::Encoding {
            channel: self.name.clone(),
            reason: e.to_string(),
        })?;
        let answer =
            http::post_json(&self.http, &self.name, &self.url, self.timeout, body, &[routing_key])
                .await?;
        if answer.status.is_success() {
            tracing::debug!(
                channel = %self.name,
                action = action(alert),
                status = answer.status.as_u16(),
                "pagerduty event accepted"
            );
            return Ok(());
        }
        Err(DeliveryError::Refused {
            channel: self.name.clone(),
            origin: http::origin(&self.url),
            status: answer.status.as_u16(),
            body: answer.body,
        })
    }
}

/// Whether `kind` closes the incident its key names (`sla_recovered`, `import_succeeded`).
pub fn resolves(kind: EventType) -> bool {
    matches!(kind, EventType::SlaRecovered | EventType::ImportSucceeded)
}

fn action(alert: &Alert) -> &'static str {
    if resolves(alert.event.event_type) { "resolve" } else { "trigger" }
}

/// The `dedup_key` of `event`: its incident key, or when longer than PagerDuty allows,
/// `intake:sha256:<hex>` of it.
pub fn dedup_key(event: &AlertEvent) -> String {
    let key = event.incident_key();
    if key.chars().count() <= MAX_DEDUP_KEY_CHARS {
        return key;
    }
    format!("intake:sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// The Events API v2 body for `alert` with the summary `summary`, sent at `now`.
pub fn event(
    alert: &Alert,
    routing_key: &str,
    summary: &str,
    source: &str,
    now: SystemTime,
) -> Value {
    let event = &alert.event;
    let dedup_key = dedup_key(event);
    if resolves(event.event_type) {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key
        });
    }
    let summary = if summary.trim().is_empty() {
        format!("[intake] {}", event.event_type)
    } else {
        http::cut_chars(summary, MAX_SUMMARY_CHARS, "…")
    };
    let mut details = json!({
        "summary": event.summary,
        "tags": event.tags,
        "subject": event.subject,
        "held_back": alert.held_back
    });
    if let (true, Some(details)) = (alert.is_digest(), details.as_object_mut()) {
        details.insert("digest".into(), json!(alert.digest));
    }
    let timestamp = DateTime::<Utc>::from(now).to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut payload = json!({
        "summary": summary,
        "source": source,
        "severity": event.severity.as_str(),
        "timestamp": timestamp,
        "class": event.event_type.as_str(),
        "custom_details": details
    });
    let component = event.tags.get("template").or_else(|| event.tags.get("source"));
    if let Some(fields) = payload.as_object_mut() {
        if let Some(component) = component {
            fields.insert("component".into(), json!(component));
        }
        if let Some(tenant) = event.tags.get("tenant") {
            fields.insert("group".into(), json!(tenant));
        }
    }
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload
    });
    if let (Some(link), Some(fields)) = (&event.link, body.as_object_mut()) {
        fields.insert("links".into(), json!([{"href": link, "text": "Open in intake"}]));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Severity;

    #[test]
    fn long_incident_keys_are_hashed_the_same_way_every_time() {
        let short = AlertEvent::new(EventType::SlaViolation, Severity::Error, "late")
            .dedup_key("sla:t1:2026-11-24T05:00:00Z");
        assert_eq!(dedup_key(&short), "sla:t1:2026-11-24T05:00:00Z");
        let long = short.clone().dedup_key("k".repeat(300));
        let hashed = dedup_key(&long);
        assert!(hashed.starts_with("intake:sha256:") && hashed.len() == 14 + 64, "{hashed}");
        assert_eq!(hashed, dedup_key(&long.clone()));
        assert!(hashed.len() <= MAX_DEDUP_KEY_CHARS);
    }

    #[test]
    fn every_problem_is_reported_and_an_inline_key_is_refused() {
        let config: PagerDutyConfig = serde_json::from_value(json!({
            "routing_key": "R0UT1NGKEY0123456789abcdefabcdef",
            "events_url": "events.pagerduty.com/v2/enqueue",
            "timeout_seconds": 500,
            "source": " ",
            "title_template": "{{ unclosed"
        }))
        .expect("parses");
        let paths: Vec<String> = config.validate().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "config.routing_key",
                "config.credential_name",
                "config.events_url",
                "config.timeout_seconds",
                "config.source",
                "config.title_template"
            ]
        );
        assert!(!format!("{config:?}").contains("R0UT1NGKEY"));
        let defaults: PagerDutyConfig =
            serde_json::from_value(json!({"credential_name": "env:PD"})).expect("parses");
        assert_eq!(defaults, PagerDutyConfig::new("env:PD"));
        assert!(defaults.validate().is_empty());
        let unknown = serde_json::from_value::<PagerDutyConfig>(
            json!({"credential_name": "env:PD", "text_template": "x"}),
        );
        assert!(unknown.is_err());
    }
}
