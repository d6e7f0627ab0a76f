//! The `webhook` channel: each event is `POST`ed as JSON to `webhook_url`, signed with
//! HMAC-SHA256 under a shared secret, so the receiver can check that it comes from intake and has
//! not been replayed.
//!
//! The request:
//! - body: the event as JSON (`Content-Type: application/json`):
//!   `{"event_type": "parse_error", "severity": "error", "summary": "…", "tags": {"tenant":
//!   "acme", …}, "subject": "<run id>" | null, "link": "<url>" | null, "dedup_key": "…" | null,
//!   "held_back": 0}`; a quiet-hours digest adds `"digest": [<event>, …]` (the top-level event is
//!   then its most severe one);
//! - `X-Intake-Event`: the event type (`parse_error`), for routing without parsing the body;
//! - `X-Intake-Timestamp`: when the request was signed, in seconds since the Unix epoch
//!   (`1700000000`);
//! - `X-Intake-Signature`: `sha256=` and the lower-case hex HMAC-SHA256, keyed with the secret's
//!   UTF-8 bytes, of the string `"<timestamp>.<body>"` — the `X-Intake-Timestamp` value, a `.`,
//!   then the raw body bytes exactly as received.
//!
//! To verify: recompute the HMAC over `"<X-Intake-Timestamp>.<raw body>"`, compare it with the
//! header in constant time ([`verify_signature`] does both), and refuse timestamps more than a few
//! minutes from your clock (5 minutes is usual) to stop replays.
//!
//! The secret is a credential reference in `credential_name` (`env:NAME`, `file:/path`, or what
//! the caller's [`SecretResolver`] accepts), resolved for every delivery; it is never logged nor
//! put in an error. Any 2xx answer is a delivery; anything else (3xx included: redirects are not
//! followed) is [`DeliveryError::Refused`] with the status and the start of the body, and a
//! connection failure or time-out is [`DeliveryError::Unreachable`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use super::http::{DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS};
use super::http::{default_timeout_seconds, parse_url, read_start, timeout_problem, unreachable};
use super::{ConfigProblem, DeliveryError};
use crate::event::{Alert, AlertEvent};
use crate::secret::{SecretError, SecretResolver};

/// The header carrying the signing time, in seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "X-Intake-Timestamp";
/// The header carrying `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Intake-Signature";
/// The header carrying the event type (`parse_error`).
pub const EVENT_HEADER: &str = "X-Intake-Event";
/// What the signature header's value starts with.
pub const SIGNATURE_PREFIX: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

/// The JSON body: the event's fields, `held_back`, and for a digest the held events.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(flatten)]
    event: &'a AlertEvent,
    held_back: u32,
    #[serde(skip_serializing_if = "<[AlertEvent]>::is_empty")]
    digest: &'a [AlertEvent],
}

/// The `config` of a `webhook` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are `POST`ed: an absolute `https://` (or `http://`) URL.
    pub webhook_url: String,
    /// The reference of the signing secret (`env:NAME`, `file:/path`), never the secret itself.
    pub credential_name: String,
    /// How long one delivery may take in all, in seconds (1 to 300; default 10).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

impl WebhookConfig {
    /// Every problem with the config (an empty list: it is valid). No I/O.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Err(message) = parse_url(&self.webhook_url) {
            problems.push(ConfigProblem { path: "config.webhook_url".into(), message });
        }
        if self.credential_name.trim().is_empty() {
            problems.push(ConfigProblem {
                path: "config.credential_name".into(),
                message: "is empty; name the signing secret, e.g. env:ALERT_WEBHOOK_SECRET or \
                          file:/run/secrets/alert_webhook"
                    .into(),
            });
        }
        problems.extend(timeout_problem(self.timeout_seconds));
        problems
    }
}

/// A configured `webhook` channel.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    name: String,
    url: Url,
    credential_name: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl WebhookChannel {
    /// A channel named `name` for a config, sending through `http` (see
    /// [`super::http_client`]); every problem with the config is reported at once.
    pub fn new(
        name: &str,
        config: &WebhookConfig,
        http: reqwest::Client,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let problems = config.validate();
        let url = match parse_url(&config.webhook_url) {
            Ok(url) if problems.is_empty() => url,
            _ => return Err(problems),
        };
        Ok(WebhookChannel {
            name: name.to_owned(),
            url,
            credential_name: config.credential_name.clone(),
            timeout: Duration::from_secs(config.timeout_seconds),
            http,
        })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The receiver's origin (`scheme://host:port`), the only part of the URL errors show.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// Signs and `POST`s `alert`, resolving the secret through `secrets`.
    pub async fn deliver(
        &self,
        alert: &Alert,
        secrets: &dyn SecretResolver,
    ) -> Result<(), DeliveryError> {
        let secret_error = |reason: &str| DeliveryError::Secret {
            channel: self.name.clone(),
            source: SecretError { reference: self.credential_name.clone(), reason: reason.into() },
        };
        let secret = secrets
            .resolve(&self.credential_name)
            .map_err(|source| DeliveryError::Secret { channel: self.name.clone(), source })?;
        if secret.expose().is_empty() {
            return Err(secret_error("the secret is empty; put the signing secret there"));
        }
        let event = &alert.event;
        let payload = Payload { event, held_back: alert.held_back, digest: &alert.digest };
        let body = serde_json::to_vec(&payload).map_err(|e| DeliveryError::Encoding {
            channel: self.name.clone(),
            reason: e.to_string(),
        })?;
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signature = sign(secret.expose().as_bytes(), timestamp, &body)
            .map_err(|_| secret_error("the secret cannot be used as an HMAC-SHA256 key"))?;
        drop(secret);

        let sent = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, event.event_type.as_str())
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let mut response = sent.map_err(|e| unreachable(&self.name, &self.url, e))?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(channel = %self.name, status = status.as_u16(), "webhook delivered");
            return Ok(());
        }
        let body = read_start(&mut response).await;
        Err(DeliveryError::Refused {
            channel: self.name.clone(),
            origin: self.origin(),
            status: status.as_u16(),
            body,
        })
    }
}

/// The `X-Intake-Signature` value for `body` signed at `timestamp`: `sha256=` and the lower-case
/// hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed with `secret`. (HMAC takes keys of any length,
/// so the error does not happen in practice.)
pub fn sign(
    secret: &[u8],
    timestamp: u64,
    body: &[u8],
) -> Result<String, hmac::digest::InvalidLength> {
    let mut mac = HmacSha256::new_from_slice(secret)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("{SIGNATURE_PREFIX}{}", hex::encode(mac.finalize().into_bytes())))
}

/// Whether `signature` (an `X-Intake-Signature` value) is right for `body` and the
/// `X-Intake-Timestamp` value `timestamp` under `secret`, compared in constant time. It does not
/// check the timestamp's age: refuse old ones yourself.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(expected) = signature.strip_prefix(SIGNATURE_PREFIX) else { return false };
    let Ok(expected) = hex::decode(expected) else { return false };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else { return false };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec_test'
        let expected = "sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789";
        assert_eq!(sign(b"whsec_test", 1_700_000_000, br#"{"a":1}"#).as_deref(), Ok(expected));
        assert!(verify_signature(b"whsec_test", "1700000000", br#"{"a":1}"#, expected));
    }

    #[test]
    fn a_changed_body_timestamp_secret_or_header_fails_verification() {
        let good = sign(b"whsec_test", 1_700_000_000, br#"{"a":1}"#).expect("sign");
        assert!(!verify_signature(b"whsec_test", "1700000000", br#"{"a":2}"#, &good));
        assert!(!verify_signature(b"whsec_test", "1700000001", br#"{"a":1}"#, &good));
        assert!(!verify_signature(b"whsec_other", "1700000000", br#"{"a":1}"#, &good));
        let bare = good.trim_start_matches(SIGNATURE_PREFIX);
        assert!(!verify_signature(b"whsec_test", "1700000000", br#"{"a":1}"#, bare));
        assert!(!verify_signature(b"whsec_test", "1700000000", br#"{"a":1}"#, "sha256=zz"));
    }

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        let config = |url: &str| WebhookConfig {
            webhook_url: url.into(),
            credential_name: "env:X".into(),
            timeout_seconds: 10,
        };
        assert!(config("https://hooks.example.com/a?b=c").validate().is_empty());
        assert!(config("http://127.0.0.1:8080/hook").validate().is_empty());
        for bad in ["hooks.example.com/a", "ftp://example.com/", "https://u:p@example.com/", ""] {
            let problems = config(bad).validate();
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert_eq!(problems[0].path, "config.webhook_url");
        }
    }
}
