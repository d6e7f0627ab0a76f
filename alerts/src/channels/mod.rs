//! Alert channels (`/alert-channels`): where alerts are delivered.
//!
//! A channel is an [`AlertChannel`] item of the platform: a `name`, a `type` and a type-specific
//! `config` object. The three steps every component takes:
//! 1. parse: [`AlertChannel`] (the resource) and [`ChannelConfig`] (its `type` + `config`,
//!    [`ChannelConfig::from_parts`]);
//! 2. validate, without I/O, reporting every problem at once ([`ChannelConfig::validate`]);
//! 3. build the runnable [`Channel`] ([`AlertChannel::build`]) and [`Channel::deliver`] events
//!    to it.
//!
//! Channel types: `log` ([`log`]), `webhook` ([`webhook`]), `email` ([`email`]), `slack`
//! ([`slack`]), `teams` ([`teams`]) and `pagerduty` ([`pagerduty`]). Each channel module
//! documents its config (every field, defaults, an example) and what it sends.
//!
//! Rate limits (`max_alerts_per_5min`), de-duplication and quiet hours are decided per channel
//! by [`crate::throttle::ChannelGate`]; the wording of chat messages comes from
//! [`crate::message`].

pub mod email;
mod http;
pub mod incoming_webhook;
pub mod log;
pub mod pagerduty;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{Alert, Severity};
use crate::message::RenderError;
use crate::routing::ChannelId;
use crate::secret::{SecretError, SecretResolver};

pub use email::{EmailChannel, EmailConfig, SmtpSecurity};
pub use incoming_webhook::IncomingWebhookConfig;
pub use log::{LogChannel, LogConfig};
pub use pagerduty::{PagerDutyChannel, PagerDutyConfig};
pub use slack::{SlackChannel, SlackConfig};
pub use teams::{TeamsChannel, TeamsConfig};
pub use webhook::{WebhookChannel, WebhookConfig};

/// The dispatch types of the spec's `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    /// A structured `tracing` record.
    Log,
    /// An email through an SMTP relay.
    Email,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams incoming webhook (an Adaptive Card).
    Teams,
    /// PagerDuty's Events API v2.
    #[serde(rename = "pagerduty")]
    PagerDuty,
    /// A signed JSON `POST` to a URL.
    Webhook,
}

impl ChannelType {
    /// The type's name as the API spells it (`pagerduty`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Email => "email",
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::PagerDuty => "pagerduty",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert channel, with every field of the platform's `/alert-channels` resource under the
/// same names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertChannel {
    /// The channel's id (what routing rules name in `channel_ids`), set by the platform.
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ChannelId>,
    /// The revision the stored channel is at (its ETag), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_id: Option<String>,
    /// When the channel was created (RFC 3339), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When the channel was last changed (RFC 3339), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The owning tenant; read-only, set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Soft-deleted channels are kept but never used.
    #[serde(default)]
    pub is_deleted: bool,
    /// When the channel was soft-deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Whether personal data in the channel has been removed.
    #[serde(default)]
    pub is_depersonalized: bool,
    /// When personal data was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depersonalized_at: Option<String>,
    /// An id of the channel in the integrator's own system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Tags (ids of tag resources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Channel name, e.g. 'ops-slack', 'finance-teams'.
    pub name: String,
    /// Dispatch type.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// Type-specific config (`webhook_url`, `credential_name`, …); see [`ChannelConfig`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Whether this channel accepts alerts.
    #[serde(default = "active_by_default")]
    pub is_active: bool,
    /// Maximum alerts dispatched to this channel per 5-minute window (see [`crate::throttle`]).
    #[serde(default = "default_max_alerts_per_5min")]
    pub max_alerts_per_5min: u32,
    /// Start of quiet period in HH:MM format, e.g. '22:00', in the tenant's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours_start: Option<String>,
    /// End of quiet period in HH:MM format, e.g. '07:00'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours_end: Option<String>,
    /// During quiet hours, only alerts at or above this severity are sent; the rest wait
    /// for one digest when they end.
    #[serde(default = "default_quiet_hours_severity_override")]
    pub quiet_hours_severity_override: Severity,
}

fn active_by_default() -> bool {
    true
}

fn default_max_alerts_per_5min() -> u32 {
    10
}

fn default_quiet_hours_severity_override() -> Severity {
    Severity::Critical
}

impl AlertChannel {
    /// The channel's typed config: its `type` and `config` parsed and validated, every problem
    /// reported at once.
    pub fn channel_config(&self) -> Result<ChannelConfig, ChannelConfigError> {
        let invalid =
            |problems| ChannelConfigError::Invalid { channel: self.name.clone(), problems };
        let config = ChannelConfig::from_parts(self.channel_type, self.config.as_ref())
            .map_err(|problem| invalid(vec![problem]))?;
        let problems = config.validate();
        if problems.is_empty() { Ok(config) } else { Err(invalid(problems)) }
    }

    /// The runnable channel, sending HTTP through `http` (see [`http_client`]).
    pub fn build(&self, http: &reqwest::Client) -> Result<Channel, ChannelConfigError> {
        let invalid =
            |problems| ChannelConfigError::Invalid { channel: self.name.clone(), problems };
        let (name, http) = (self.name.as_str(), http.clone());
        let channel = match self.channel_config()? {
            ChannelConfig::Log(_) => Channel::Log(LogChannel::new(name)),
            ChannelConfig::Email(config) => {
                Channel::Email(EmailChannel::new(name, &config).map_err(invalid)?)
            }
            ChannelConfig::Webhook(config) => {
                Channel::Webhook(WebhookChannel::new(name, &config, http).map_err(invalid)?)
            }
            ChannelConfig::Slack(config) => {
                Channel::Slack(SlackChannel::new(name, &config, http).map_err(invalid)?)
            }
            ChannelConfig::Teams(config) => {
                Channel::Teams(TeamsChannel::new(name, &config, http).map_err(invalid)?)
            }
            ChannelConfig::PagerDuty(config) => {
                Channel::PagerDuty(PagerDutyChannel::new(name, &config, http).map_err(invalid)?)
            }
        };
        Ok(channel)
    }
}

/// A channel's `type` and `config`, typed: an enum tagged by `type` with its `config` beside it,
/// so it reads exactly like the resource's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "config", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// `log`: a structured `tracing` record.
    Log(LogConfig),
    /// `email`: one message per alert through an SMTP relay.
    Email(EmailConfig),
    /// `slack`: a Slack incoming webhook.
    Slack(SlackConfig),
    /// `teams`: a Microsoft Teams incoming webhook.
    Teams(TeamsConfig),
    /// `pagerduty`: PagerDuty's Events API v2.
    #[serde(rename = "pagerduty")]
    PagerDuty(PagerDutyConfig),
    /// `webhook`: a signed JSON `POST`.
    Webhook(WebhookConfig),
}

impl ChannelConfig {
    /// Parses the `config` of a channel of type `channel_type`; an absent or `null` config is
    /// `{}`. The problem names the field at fault (`config.webhook_url`).
    pub fn from_parts(
        channel_type: ChannelType,
        config: Option<&Value>,
    ) -> Result<Self, ConfigProblem> {
        let value = match config {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(value) => value.clone(),
        };
        let parsed = match channel_type {
            ChannelType::Log => serde_json::from_value(value).map(Self::Log),
            ChannelType::Webhook => serde_json::from_value(value).map(Self::Webhook),
            ChannelType::Email => serde_json::from_value(value).map(Self::Email),
            ChannelType::Slack => serde_json::from_value(value).map(Self::Slack),
            ChannelType::Teams => serde_json::from_value(value).map(Self::Teams),
            ChannelType::PagerDuty => serde_json::from_value(value).map(Self::PagerDuty),
        };
        parsed.map_err(|error| ConfigProblem {
            path: "config".into(),
            message: format!("not a valid {channel_type} channel config: {error}"),
        })
    }

    /// The channel type this config is for.
    pub fn channel_type(&self) -> ChannelType {
        match self {
            Self::Log(_) => ChannelType::Log,
            Self::Email(_) => ChannelType::Email,
            Self::Slack(_) => ChannelType::Slack,
            Self::Teams(_) => ChannelType::Teams,
            Self::PagerDuty(_) => ChannelType::PagerDuty,
            Self::Webhook(_) => ChannelType::Webhook,
        }
    }

    /// Every problem with the config, without I/O (an empty list: it is valid). Types not
    /// supported yet are not checked beyond parsing.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        match self {
            Self::Webhook(config) => config.validate(),
            Self::Email(config) => config.validate(),
            Self::Slack(config) => config.validate(ChannelType::Slack),
            Self::Teams(config) => config.validate(ChannelType::Teams),
            Self::PagerDuty(config) => config.validate(),
            Self::Log(_) => Vec::new(),
        }
    }
}

/// One problem with a channel's config: where (`config.webhook_url`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The JSON path of the field at fault, from the channel item (`config.timeout_seconds`).
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a channel cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelConfigError {
    /// The channel's config is invalid; every problem is listed.
    #[error(
        "alert channel '{channel}' is not valid: {}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Invalid {
        /// The channel's name.
        channel: String,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
    /// The HTTP client could not be set up (TLS roots, the system's resolver).
    #[error("cannot set up the HTTP client for alert channels: {0}")]
    HttpClient(String),
}

/// A channel ready to deliver.
#[derive(Debug, Clone)]
pub enum Channel {
    /// The `log` channel.
    Log(LogChannel),
    /// A `webhook` channel.
    Webhook(WebhookChannel),
    /// An `email` channel.
    Email(EmailChannel),
    /// A `slack` channel.
    Slack(SlackChannel),
    /// A `teams` channel.
    Teams(TeamsChannel),
    /// A `pagerduty` channel.
    PagerDuty(PagerDutyChannel),
}

impl Channel {
    /// The channel's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Log(channel) => channel.name(),
            Self::Webhook(channel) => channel.name(),
            Self::Email(channel) => channel.name(),
            Self::Slack(channel) => channel.name(),
            Self::Teams(channel) => channel.name(),
            Self::PagerDuty(channel) => channel.name(),
        }
    }

    /// Delivers `alert`, resolving any credential the channel needs through `secrets`.
    pub async fn deliver(
        &self,
        alert: &Alert,
        secrets: &dyn SecretResolver,
    ) -> Result<(), DeliveryError> {
        match self {
            Self::Log(channel) => {
                channel.deliver(alert);
                Ok(())
            }
            Self::Webhook(channel) => channel.deliver(alert, secrets).await,
            Self::Email(channel) => channel.deliver(alert, secrets).await,
            Self::Slack(channel) => channel.deliver(alert, secrets).await,
            Self::Teams(channel) => channel.deliver(alert, secrets).await,
            Self::PagerDuty(channel) => channel.deliver(alert, secrets).await,
        }
    }
}

/// Why an alert was not delivered. No variant carries a secret; URLs are shown as their origin
/// only (`https://hooks.example.com`), since a path or query may hold a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The channel's credential could not be resolved (or is unusable).
    #[error("alert channel '{channel}': {source}; set the credential or fix credential_name")]
    Secret {
        /// The channel's name.
        channel: String,
        /// What went wrong (never the secret).
        #[source]
        source: SecretError,
    },
    /// The receiver could not be reached: connection refused, DNS, TLS, or a time-out.
    #[error(
        "alert channel '{channel}': cannot reach {origin}: {reason}{}; check the URL and that \
         the receiver is up",
        if *timed_out { " (timed out)" } else { "" }
    )]
    Unreachable {
        /// The channel's name.
        channel: String,
        /// The receiver's origin (`scheme://host:port`).
        origin: String,
        /// What failed.
        reason: String,
        /// Whether the request timed out.
        timed_out: bool,
    },
    /// The receiver answered with a status other than 2xx (redirects are not followed).
    #[error("alert channel '{channel}': {origin} answered HTTP {status}: {body}")]
    Refused {
        /// The channel's name.
        channel: String,
        /// The receiver's origin (`scheme://host:port`).
        origin: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body (at most about 512 bytes, marked when cut).
        body: String,
    },
    /// An SMTP server answered a command with a negative reply: 4xx is transient (`421` busy,
    /// `451`, `452`), 5xx permanent (`535` authentication failed, `550` unknown recipient).
    #[error(
        "alert channel '{channel}': the SMTP server {server} answered {code}: {message}{}",
        smtp_hint(*code)
    )]
    Rejected {
        /// The channel's name.
        channel: String,
        /// The SMTP server (`host:port`).
        server: String,
        /// The reply code.
        code: u16,
        /// The reply's text (at most about 512 bytes, never the password).
        message: String,
    },
    /// The SMTP session could not go on: the server lacks what the channel requires (`STARTTLS`,
    /// AUTH PLAIN or LOGIN) or does not speak SMTP.
    #[error(
        "alert channel '{channel}': SMTP with {server} failed: {reason}; check the channel's \
             security and smtp_port against what the server offers"
    )]
    Smtp {
        /// The channel's name.
        channel: String,
        /// The SMTP server (`host:port`).
        server: String,
        /// What failed.
        reason: String,
    },
    /// The channel's own template failed while rendering the alert (it compiled, but, say, calls
    /// a filter on a value of the wrong type); fix the template in the channel's config.
    #[error("alert channel '{channel}': {source}; fix the template in the channel's config")]
    Render {
        /// The channel's name.
        channel: String,
        /// Which template failed and why.
        #[source]
        source: RenderError,
    },
    /// The event could not be encoded (a bug in intake).
    #[error(
        "alert channel '{channel}': the event could not be encoded ({reason}); a bug in intake"
    )]
    Encoding {
        /// The channel's name.
        channel: String,
        /// What failed.
        reason: String,
    },
}

impl DeliveryError {
    /// Whether sending again later may succeed: an unreachable receiver, a time-out, an HTTP
    /// 5xx, 408 or 429, an SMTP 4xx. A refused credential, an HTTP 4xx, an SMTP 5xx, a failing
    /// template or an unsupported type needs someone to act first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            Self::Rejected { code, .. } => (400..500).contains(code),
            Self::Secret { .. } | Self::Smtp { .. } | Self::Render { .. } => false,
            Self::Encoding { .. } => false,
        }
    }
}

/// What to do about an SMTP reply code, for [`DeliveryError::Rejected`]'s message.
fn smtp_hint(code: u16) -> &'static str {
    match code {
        530 | 534 | 535 | 538 => "; check username and the password credential_name names",
        550 | 551 | 553 => "; check the addresses in from, to and cc",
        552 | 554 => "; the server refused the message",
        400..=499 => " (temporary; it will be retried)",
        _ => "",
    }
}

/// The connect time-out of [`http_client`]; each webhook adds its own total time-out.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `reqwest::Client` for channels that speak HTTP: rustls with the ring provider and the
/// webpki roots (configured explicitly; no process-wide provider is installed), a connect
/// time-out of [`CONNECT_TIMEOUT`], and no redirects (a webhook answering 3xx is a
/// [`DeliveryError::Refused`]). Build one and share it between channels.
pub fn http_client() -> Result<reqwest::Client, ChannelConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ChannelConfigError::HttpClient(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("intake/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ChannelConfigError::HttpClient(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn channel(value: Value) -> AlertChannel {
        serde_json::from_value(value).expect("the channel item parses")
    }

    #[test]
    fn channels_parse_with_the_spec_names_and_defaults() {
        let parsed = channel(json!({
            "_id": "64a1b2c3d4e5f6789012ab01",
            "name": "ops-hook",
            "type": "webhook",
            "config": {
                "webhook_url": "https://hooks.example.com/intake",
                "credential_name": "env:OPS_HOOK_SECRET"
            }
        }));
        assert_eq!(parsed.id, Some(ChannelId::from("64a1b2c3d4e5f6789012ab01")));
        assert!(parsed.is_active);
        assert_eq!(parsed.max_alerts_per_5min, 10);
        assert_eq!(parsed.quiet_hours_severity_override, Severity::Critical);
        assert_eq!(parsed.quiet_hours_start, None);
        let Ok(ChannelConfig::Webhook(config)) = parsed.channel_config() else {
            panic!("a webhook config: {:?}", parsed.channel_config());
        };
        assert_eq!(config.webhook_url, "https://hooks.example.com/intake");
        assert_eq!(config.credential_name, "env:OPS_HOOK_SECRET");
        assert_eq!(config.timeout_seconds, webhook::DEFAULT_TIMEOUT_SECONDS);
    }

    #[test]
    fn a_log_channel_needs_no_config_and_refuses_unknown_settings() {
        let bare = channel(json!({"name": "ops-log", "type": "log"}));
        assert_eq!(bare.channel_config(), Ok(ChannelConfig::Log(LogConfig {})));
        let null = channel(json!({"name": "ops-log", "type": "log", "config": null}));
        assert_eq!(null.channel_config(), Ok(ChannelConfig::Log(LogConfig {})));
        let odd = channel(json!({"name": "ops-log", "type": "log", "config": {"level": "x"}}));
        let error = odd.channel_config().expect_err("unknown log setting");
        assert!(error.to_string().contains("level"), "{error}");
    }

    #[test]
    fn unknown_channel_types_and_fields_are_refused() {
        let error = serde_json::from_value::<AlertChannel>(json!({"name": "x", "type": "sms"}))
            .expect_err("sms is not a channel type");
        assert!(error.to_string().contains("sms"), "{error}");
        let error = serde_json::from_value::<AlertChannel>(
            json!({"name": "x", "type": "log", "quiet_hours": "22-07"}),
        )
        .expect_err("misspelt field");
        assert!(error.to_string().contains("quiet_hours"), "{error}");
    }

    #[test]
    fn every_webhook_problem_is_reported_at_once() {
        let bad = channel(json!({
            "name": "bad-hook",
            "type": "webhook",
            "config": {"webhook_url": "ftp://example.com/x", "credential_name": " ",
                       "timeout_seconds": 0}
        }));
        let Err(ChannelConfigError::Invalid { channel, problems }) = bad.channel_config() else {
            panic!("invalid: {:?}", bad.channel_config());
        };
        assert_eq!(channel, "bad-hook");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["config.webhook_url", "config.credential_name", "config.timeout_seconds"]
        );
        let missing = channel_missing_url();
        let error = missing.channel_config().expect_err("webhook_url is required");
        assert!(error.to_string().contains("webhook_url"), "{error}");
    }

    fn channel_missing_url() -> AlertChannel {
        channel(json!({"name": "h", "type": "webhook", "config": {"credential_name": "env:X"}}))
    }

    #[test]
    fn chat_channel_configs_are_typed_and_every_problem_is_reported() {
        let slack = channel(json!({
            "name": "ops-slack", "type": "slack",
            "config": {"credential_name": "env:SLACK_WEBHOOK_URL"}
        }));
        let Ok(ChannelConfig::Slack(config)) = slack.channel_config() else {
            panic!("a slack config: {:?}", slack.channel_config());
        };
        assert_eq!(config, SlackConfig::new("env:SLACK_WEBHOOK_URL"));
        let inline = channel(json!({
            "name": "ops-teams", "type": "teams",
            "config": {"webhook_url": "https://example.webhook.office.com/webhookb2/SECRET",
                       "timeout_seconds": 0}
        }));
        let error = inline.channel_config().expect_err("an inline URL is refused");
        let ChannelConfigError::Invalid { problems, .. } = &error else { panic!("{error:?}") };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["config.webhook_url", "config.credential_name", "config.timeout_seconds"]
        );
        assert!(error.to_string().contains("store it as a credential"), "{error}");
        assert!(!format!("{error} {error:?}").contains("SECRET"), "{error:?}");
        let pagerduty = channel(json!({
            "name": "ops-pd", "type": "pagerduty",
            "config": {"credential_name": "env:PD", "events_url": "ftp://x"}
        }));
        let error = pagerduty.build(&http_client().expect("client")).expect_err("bad URL");
        assert!(error.to_string().contains("config.events_url"), "{error}");
    }

    #[test]
    fn only_failures_that_may_pass_later_are_retryable() {
        let refused = |status| DeliveryError::Refused {
            channel: "c".into(),
            origin: "http://127.0.0.1:1".into(),
            status,
            body: String::new(),
        };
        assert!(refused(500).is_retryable() && refused(503).is_retryable());
        assert!(refused(429).is_retryable() && refused(408).is_retryable());
        assert!(!refused(400).is_retryable() && !refused(401).is_retryable());
        assert!(!refused(302).is_retryable());
        let rejected = |code| DeliveryError::Rejected {
            channel: "c".into(),
            server: "127.0.0.1:25".into(),
            code,
            message: String::new(),
        };
        assert!(rejected(421).is_retryable() && rejected(451).is_retryable());
        assert!(!rejected(535).is_retryable() && !rejected(550).is_retryable());
        let smtp = DeliveryError::Smtp {
            channel: "c".into(),
            server: "127.0.0.1:25".into(),
            reason: "STARTTLS is not supported".into(),
        };
        assert!(!smtp.is_retryable());
    }
}
