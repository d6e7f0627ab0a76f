//! What the `slack` and `teams` channels share: both post to an "incoming webhook" whose URL is
//! itself the secret (it embeds a token), so their config names a credential that resolves to
//! the URL instead of holding it. Both render their text with a [`MessageRenderer`].
//!
//! The config of either (see [`super::slack`] and [`super::teams`] for an example):
//! - `credential_name` (required): the reference of the credential holding the webhook URL
//!   (`env:SLACK_WEBHOOK_URL`, `file:/run/secrets/teams_webhook`); it is resolved at each
//!   delivery, so a rotated URL takes effect without rebuilding the channel;
//! - `timeout_seconds` (optional, 1 to 300, default 10): how long one delivery may take;
//! - `title_template`, `text_template`, `html_template` (optional): minijinja templates replacing
//!   the default wording ([`crate::message`]); the HTML one is not used by chat channels.
//!
//! An inline `webhook_url` is refused with a config problem saying to put it in a credential.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

use super::http::{self, Answer, default_timeout_seconds, timeout_problem};
use super::{ChannelType, ConfigProblem, DeliveryError};
use crate::event::Alert;
use crate::message::{Message, MessageRenderer, MessageTemplates};
use crate::secret::{SecretError, SecretResolver};

/// A secret written inline in a config where only a credential reference is allowed (a
/// `webhook_url` of a chat channel, a PagerDuty `routing_key`). Only its presence is kept, so it
/// can be refused with a clear message; neither `Debug` nor serialising can show its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InlineSecret;

impl<'de> Deserialize<'de> for InlineSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| InlineSecret)
    }
}

/// The `config` of a `slack` or `teams` channel (the two share its shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingWebhookConfig {
    /// The reference of the credential whose value is the webhook URL (`env:SLACK_WEBHOOK_URL`),
    /// never the URL itself.
    #[serde(default)]
    pub credential_name: String,
    /// How long one delivery may take in all, in seconds (1 to 300; default 10).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Replaces the default title template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_template: Option<String>,
    /// Replaces the default plain-text body template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_template: Option<String>,
    /// Replaces the default HTML body template (accepted for symmetry; chat channels send text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_template: Option<String>,
    /// An inline webhook URL: refused, since the URL embeds a token (see [`InlineSecret`]).
    #[serde(default, skip_serializing)]
    pub webhook_url: Option<InlineSecret>,
}

impl IncomingWebhookConfig {
    /// A config naming the credential `credential_name`, with the default time-out and wording.
    pub fn new(credential_name: impl Into<String>) -> Self {
        IncomingWebhookConfig {
            credential_name: credential_name.into(),
            timeout_seconds: default_timeout_seconds(),
            title_template: None,
            text_template: None,
            html_template: None,
            webhook_url: None,
        }
    }

    /// The config's templates.
    pub fn templates(&self) -> MessageTemplates {
        MessageTemplates {
            title_template: self.title_template.clone(),
            text_template: self.text_template.clone(),
            html_template: self.html_template.clone(),
        }
    }

    /// Every problem with the config of a channel of type `kind` (`slack` or `teams`; it names
    /// the example credential). An empty list: it is valid. No I/O.
    pub fn validate(&self, kind: ChannelType) -> Vec<ConfigProblem> {
        let example = format!("env:{}_WEBHOOK_URL", kind.as_str().to_ascii_uppercase());
        let mut problems = Vec::new();
        if self.webhook_url.is_some() {
            problems.push(ConfigProblem {
                path: "config.webhook_url".into(),
                message: format!(
                    "is not allowed: a {kind} webhook URL embeds a token, so it is a secret; \
                     store it as a credential (e.g. {example}), name that in credential_name \
                     and remove webhook_url"
                ),
            });
        }
        if self.credential_name.trim().is_empty() {
            problems.push(ConfigProblem {
                path: "config.credential_name".into(),
                message: format!(
                    "is missing or empty; name the credential holding the {kind} webhook URL, \
                     e.g. {example}"
                ),
            });
        }
        problems.extend(timeout_problem(self.timeout_seconds));
        if let Err(template_problems) = MessageRenderer::new(&self.templates()) {
            problems.extend(template_problems);
        }
        problems
    }
}

/// The sending half of a `slack` or `teams` channel: resolve the URL credential, render, `POST`
/// JSON, and hand back the answer.
#[derive(Debug, Clone)]
pub(crate) struct IncomingWebhook {
    name: String,
    kind: ChannelType,
    credential_name: String,
    timeout: Duration,
    renderer: Arc<MessageRenderer>,
    http: reqwest::Client,
}

/// One answer of an incoming webhook, with the origin it came from (for errors).
pub(crate) struct Reply {
    pub answer: Answer,
    pub origin: String,
}

impl Reply {
    /// The answer as a [`DeliveryError::Refused`].
    pub fn refused(self, channel: &str) -> DeliveryError {
        DeliveryError::Refused {
            channel: channel.to_owned(),
            origin: self.origin,
            status: self.answer.status.as_u16(),
            body: self.answer.body,
        }
    }
}

impl IncomingWebhook {
    /// The sender of channel `name` of type `kind`; every config problem is reported at once.
    pub fn new(
        name: &str,
        kind: ChannelType,
        config: &IncomingWebhookConfig,
        http: reqwest::Client,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let problems = config.validate(kind);
        if !problems.is_empty() {
            return Err(problems);
        }
        let renderer = MessageRenderer::new(&config.templates())?;
        Ok(IncomingWebhook {
            name: name.to_owned(),
            kind,
            credential_name: config.credential_name.clone(),
            timeout: Duration::from_secs(config.timeout_seconds),
            renderer: Arc::new(renderer),
            http,
        })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `alert` rendered with the channel's templates.
    pub fn render(&self, alert: &Alert) -> Result<Message, DeliveryError> {
        self.renderer
            .render(alert)
            .map_err(|source| DeliveryError::Render { channel: self.name.clone(), source })
    }

    /// Resolves the webhook URL and `POST`s `payload` to it. The URL shows nowhere but the
    /// request: errors carry its origin, and the answer quoted has it (and its path and query)
    /// redacted.
    pub async fn post(
        &self,
        payload: &serde_json::Value,
        secrets: &dyn SecretResolver,
    ) -> Result<Reply, DeliveryError> {
        let secret_error = |reason: String| DeliveryError::Secret {
            channel: self.name.clone(),
            source: SecretError { reference: self.credential_name.clone(), reason },
        };
        let secret = secrets
            .resolve(&self.credential_name)
            .map_err(|source| DeliveryError::Secret { channel: self.name.clone(), source })?;
        let text = secret.expose().trim();
        if text.is_empty() {
            return Err(secret_error(format!(
                "the credential is empty; put the {} webhook URL there",
                self.kind
            )));
        }
        let url: Url = http::parse_url(text).map_err(|problem| {
            secret_error(format!("the {} webhook URL it holds {problem}", self.kind))
        })?;
        let body = serde_json::to_vec(payload).map_err(|e| DeliveryError::Encoding {
            channel: self.name.clone(),
            reason: e.to_string(),
        })?;
        // The token may sit in the path (Slack) or the query (a Workflows `sig`).
        let path = if url.path().len() > 1 { url.path() } else { "" };
        let hidden = [text, path, url.query().unwrap_or_default()];
        let answer =
            http::post_json(&self.http, &self.name, &url, self.timeout, body, &hidden).await?;
        Ok(Reply { answer, origin: http::origin(&url) })
    }
}

/// The value of the tag `key` of the alert's event, if any.
pub(crate) fn tag<'a>(alert: &'a Alert, key: &str) -> Option<&'a str> {
    alert.event.tags.get(key).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_inline_url_is_refused_and_never_shown() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
        let config: IncomingWebhookConfig =
            serde_json::from_value(json!({"webhook_url": url})).expect("parses");
        let problems = config.validate(ChannelType::Slack);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["config.webhook_url", "config.credential_name"]);
        assert!(problems[0].message.contains("env:SLACK_WEBHOOK_URL"), "{}", problems[0]);
        assert!(!format!("{config:?} {problems:?}").contains("XXXXSECRET"));
        let back = serde_json::to_string(&config).expect("serialises");
        assert!(!back.contains("XXXXSECRET") && !back.contains("webhook_url"), "{back}");
    }

    #[test]
    fn template_and_timeout_problems_are_reported_at_their_paths() {
        let config: IncomingWebhookConfig = serde_json::from_value(json!({
            "credential_name": "env:TEAMS_WEBHOOK_URL",
            "timeout_seconds": 0,
            "title_template": "{% if %}"
        }))
        .expect("parses");
        let paths: Vec<String> =
            config.validate(ChannelType::Teams).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["config.timeout_seconds", "config.title_template"]);
        assert!(IncomingWebhookConfig::new("env:X").validate(ChannelType::Teams).is_empty());
    }
}
