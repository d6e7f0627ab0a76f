//! The `teams` channel: each alert is one Adaptive Card `POST`ed to a Microsoft Teams incoming
//! webhook (a Workflows "post to a channel when a webhook request is received" URL, or a legacy
//! connector URL).
//!
//! The webhook URL embeds a signature, so it is a secret: the config names the credential
//! holding it and never holds the URL. The config has the same shape as `slack`'s:
//! - `credential_name` (required): the reference of the credential whose value is the webhook
//!   URL, e.g. `env:TEAMS_WEBHOOK_URL` or `file:/run/secrets/teams_webhook`; resolved at each
//!   delivery;
//! - `timeout_seconds` (optional, 1 to 300, default 10): how long one delivery may take in all;
//! - `title_template`, `text_template` (optional): minijinja templates replacing the default
//!   title and body ([`crate::message`]); `html_template` is accepted but unused.
//!
//! An inline `webhook_url` is refused ("store it as a credential"), as are unknown fields.
//!
//! ```json
//! {
//!   "name": "finance-teams",
//!   "type": "teams",
//!   "config": {"credential_name": "env:TEAMS_WEBHOOK_URL"}
//! }
//! ```
//!
//! The message (`Content-Type: application/json`):
//! ```json
//! {
//!   "type": "message",
//!   "attachments": [{
//!     "contentType": "application/vnd.microsoft.card.adaptive",
//!     "contentUrl": null,
//!     "content": {
//!       "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
//!       "type": "AdaptiveCard",
//!       "version": "1.4",
//!       "body": [
//!         {"type": "TextBlock", "text": "<title>", "weight": "Bolder", "size": "Medium",
//!          "wrap": true, "color": "Attention"},
//!         {"type": "TextBlock", "text": "<body>", "wrap": true},
//!         {"type": "FactSet", "facts": [
//!           {"title": "Severity", "value": "error"},
//!           {"title": "Event", "value": "parse_error"},
//!           {"title": "Tenant", "value": "acme"}
//!         ]}
//!       ],
//!       "actions": [{"type": "Action.OpenUrl", "title": "Open in intake", "url": "<link>"}]
//!     }
//!   }]
//! }
//! ```
//! The title's `color` is `Attention` for `error` and `critical`, `Warning` for `warning`, and
//! left out for `info`. The facts are the severity, the event type, then every tag (its key
//! capitalised) in key order. `actions` is left out when the event has no link; the body
//! TextBlock when the body renders empty. A body longer than [`MAX_TEXT_CHARS`] is cut (Teams
//! refuses cards above about 28 KB) and ends with [`CUT_MARKER`].
//!
//! Teams answers `200` (connectors) or `202` (Workflows): any `2xx` is delivered. Anything else
//! is [`DeliveryError::Refused`] with the status and the start of the body (`429` and `5xx`:
//! retryable; other `4xx`: not); a connection failure or time-out is
//! [`DeliveryError::Unreachable`]. Errors show the URL's origin only.

use serde_json::{Value, json};

use super::incoming_webhook::{IncomingWebhook, IncomingWebhookConfig};
use super::{ChannelType, ConfigProblem, DeliveryError};
use crate::event::{Alert, Severity};
use crate::message::Message;
use crate::secret::SecretResolver;

/// The `config` of a `teams` channel.
pub type TeamsConfig = IncomingWebhookConfig;

/// The longest body text sent, in characters.
pub const MAX_TEXT_CHARS: usize = 15_000;
/// What ends a body cut to [`MAX_TEXT_CHARS`].
pub const CUT_MARKER: &str = "…\n\n(cut: the message was longer than Teams allows)";

/// A configured `teams` channel.
#[derive(Debug, Clone)]
pub struct TeamsChannel {
    hook: IncomingWebhook,
}

impl TeamsChannel {
    /// A channel named `name` for a config, sending through `http` (see
    /// [`super::http_client`]); every problem with the config is reported at once.
    pub fn new(
        name: &str,
        config: &TeamsConfig,
        http: reqwest::Client,
    ) -> Result<Self, Vec<ConfigProblem>> {
        Ok(TeamsChannel { hook: IncomingWebhook::new(name, ChannelType::Teams, config, http)? })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        self.hook.name()
    }

    /// Renders `alert` as a card and `POST`s it to the webhook URL the credential holds.
    pub async fn deliver(
        &self,
        alert: &Alert,
        secrets: &dyn SecretResolver,
    ) -> Result<(), DeliveryError> {
        let message = self.hook.render(alert)?;
        let reply = self.hook.post(&payload(alert, &message), secrets).await?;
        if reply.answer.status.is_success() {
            tracing::debug!(
                channel = %self.name(),
                status = reply.answer.status.as_u16(),
                "teams message delivered"
            );
            return Ok(());
        }
        Err(reply.refused(self.name()))
    }
}

/// The message Teams is sent for `alert` rendered as `message`.
pub fn payload(alert: &Alert, message: &Message) -> Value {
    let event = &alert.event;
    let mut title = json!({
        "type": "TextBlock",
        "text": message.title,
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true
    });
    let color = match event.severity {
        Severity::Critical | Severity::Error => Some("Attention"),
        Severity::Warning => Some("Warning"),
        Severity::Info => None,
    };
    if let (Some(color), Some(block)) = (color, title.as_object_mut()) {
        block.insert("color".into(), color.into());
    }
    let mut body = vec![title];
    let text = message.text.trim();
    if !text.is_empty() {
        let text = super::http::cut_chars(text, MAX_TEXT_CHARS, CUT_MARKER);
        body.push(json!({"type": "TextBlock", "text": text, "wrap": true}));
    }
    let mut facts = vec![
        json!({"title": "Severity", "value": event.severity.as_str()}),
        json!({"title": "Event", "value": event.event_type.as_str()}),
    ];
    facts.extend(
        event.tags.iter().map(|(key, value)| json!({"title": capitalise(key), "value": value})),
    );
    body.push(json!({"type": "FactSet", "facts": facts}));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body
    });
    if let (Some(link), Some(card)) = (&event.link, card.as_object_mut()) {
        card.insert(
            "actions".into(),
            json!([{"type": "Action.OpenUrl", "title": "Open in intake", "url": link}]),
        );
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card
        }]
    })
}

/// `key` with its first letter upper-case (`tenant` → `Tenant`).
fn capitalise(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
