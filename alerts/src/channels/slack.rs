//! The `slack` channel: each alert is one message `POST`ed to a Slack incoming webhook.
//!
//! The webhook URL embeds a token, so it is a secret: the config names the credential holding it
//! and never holds the URL. The config:
//! - `credential_name` (required): the reference of the credential whose value is the webhook
//!   URL (`https://hooks.slack.com/services/T…/B…/…`), e.g. `env:SLACK_WEBHOOK_URL` or
//!   `file:/run/secrets/slack_webhook`; resolved at each delivery;
//! - `timeout_seconds` (optional, 1 to 300, default 10): how long one delivery may take in all;
//! - `title_template`, `text_template` (optional): minijinja templates replacing the default
//!   title and body ([`crate::message`]); `html_template` is accepted but unused.
//!
//! An inline `webhook_url` is refused ("store it as a credential"), as are unknown fields.
//!
//! ```json
//! {
//!   "name": "ops-slack",
//!   "type": "slack",
//!   "config": {"credential_name": "env:SLACK_WEBHOOK_URL", "timeout_seconds": 10}
//! }
//! ```
//!
//! The message (`Content-Type: application/json`):
//! ```json
//! {
//!   "text": "<title: the notification's fallback text>",
//!   "blocks": [
//!     {"type": "header", "text": {"type": "plain_text", "text": "<title, at most 150 chars>"}},
//!     {"type": "section", "text": {"type": "mrkdwn", "text": "<body, at most 3000 chars>"}},
//!     {"type": "context", "elements": [
//!       {"type": "mrkdwn", "text": "*Severity:* error"},
//!       {"type": "mrkdwn", "text": "*Event:* parse_error"},
//!       {"type": "mrkdwn", "text": "*Tenant:* acme"}
//!     ]}
//!   ]
//! }
//! ```
//! `&`, `<` and `>` in the mrkdwn texts are escaped as Slack asks; a body longer than Slack's
//! 3000 characters is cut and ends with [`CUT_MARKER`]; the section is left out when the body
//! renders empty and the tenant element when the event has no `tenant` tag.
//!
//! Slack answers `200` with the body `ok`. Anything else is [`DeliveryError::Refused`] with the
//! status and the start of the body (`403 invalid_token`, `404 no_service`: not retryable; `429`
//! and `5xx`: retryable); a connection failure or time-out is [`DeliveryError::Unreachable`].
//! Errors show the URL's origin only.

use serde_json::{Value, json};

use super::incoming_webhook::{IncomingWebhook, IncomingWebhookConfig, tag};
use super::{ChannelType, ConfigProblem, DeliveryError};
use crate::event::Alert;
use crate::message::Message;
use crate::secret::SecretResolver;

/// The `config` of a `slack` channel.
pub type SlackConfig = IncomingWebhookConfig;

/// The longest header text Slack accepts, in characters.
pub const MAX_HEADER_CHARS: usize = 150;
/// The longest section text Slack accepts, in characters.
pub const MAX_SECTION_CHARS: usize = 3000;
/// What ends a body cut to [`MAX_SECTION_CHARS`].
pub const CUT_MARKER: &str = "…\n_(cut: the message was longer than Slack allows)_";

/// A configured `slack` channel.
#[derive(Debug, Clone)]
pub struct SlackChannel {
    hook: IncomingWebhook,
}

impl SlackChannel {
    /// A channel named `name` for a config, sending through `http` (see
    /// [`super::http_client`]); every problem with the config is reported at once.
    pub fn new(
        name: &str,
        config: &SlackConfig,
        http: reqwest::Client,
    ) -> Result<Self, Vec<ConfigProblem>> {
        Ok(SlackChannel { hook: IncomingWebhook::new(name, ChannelType::Slack, config, http)? })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        self.hook.name()
    }

    /// Renders `alert` and `POST`s it to the webhook URL the credential holds.
    pub async fn deliver(
        &self,
        alert: &Alert,
        secrets: &dyn SecretResolver,
    ) -> Result<(), DeliveryError> {
        let message = self.hook.render(alert)?;
        let reply = self.hook.post(&payload(alert, &message), secrets).await?;
        if reply.answer.status == reqwest::StatusCode::OK && reply.answer.body.trim() == "ok" {
            tracing::debug!(channel = %self.name(), "slack message delivered");
            return Ok(());
        }
        Err(reply.refused(self.name()))
    }
}

/// The message Slack is sent for `alert` rendered as `message`.
pub fn payload(alert: &Alert, message: &Message) -> Value {
    let title = if message.title.trim().is_empty() {
        format!("[intake] {}", alert.event.event_type)
    } else {
        message.title.clone()
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": super::http::cut_chars(&title, MAX_HEADER_CHARS, "…")}
    })];
    let body = message.text.trim();
    if !body.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": section_text(body)}
        }));
    }
    let event = &alert.event;
    let mut context = vec![
        format!("*Severity:* {}", event.severity.as_str()),
        format!("*Event:* {}", event.event_type),
    ];
    if let Some(tenant) = tag(alert, "tenant") {
        context.push(format!("*Tenant:* {}", escape(tenant)));
    }
    let elements: Vec<Value> =
        context.into_iter().map(|text| json!({"type": "mrkdwn", "text": text})).collect();
    blocks.push(json!({"type": "context", "elements": elements}));
    json!({"text": escape(&title), "blocks": blocks})
}

/// `body` escaped for mrkdwn and cut to [`MAX_SECTION_CHARS`] (marked with [`CUT_MARKER`]),
/// never in the middle of an escape (`&lt;`).
fn section_text(body: &str) -> String {
    let escaped = escape(body);
    if escaped.chars().count() <= MAX_SECTION_CHARS {
        return escaped;
    }
    let keep = MAX_SECTION_CHARS - CUT_MARKER.chars().count();
    let mut cut: String = escaped.chars().take(keep).collect();
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
    {
        cut.truncate(amp);
    }
    cut.push_str(CUT_MARKER);
    cut
}

/// `text` with `&`, `<` and `>` escaped, as Slack's mrkdwn requires (`<` starts a link or
/// mention otherwise).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_body_is_cut_to_the_limit_with_a_marker_and_no_half_escape() {
        // The cut falls two characters into the escape of `<` ("&l"), which must not be left.
        let kept = MAX_SECTION_CHARS - CUT_MARKER.chars().count();
        let body = format!("{}<tail>{}", "a".repeat(kept - 2), "b".repeat(100));
        let text = section_text(&body);
        assert!(text.chars().count() <= MAX_SECTION_CHARS, "{}", text.chars().count());
        assert!(text.ends_with(CUT_MARKER));
        let before_marker = text.trim_end_matches(CUT_MARKER);
        assert!(!before_marker.contains('&'), "a half escape was left: {before_marker}");
        assert_eq!(section_text("a < b & c"), "a &lt; b &amp; c");
    }
}
