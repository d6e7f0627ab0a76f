//! The `email` channel: each alert is one email sent through an SMTP relay (lettre on Tokio,
//! rustls with the ring provider; no native TLS, no OpenSSL).
//!
//! The message:
//! - `Subject`: the rendered title ([`crate::message`]; `title_template` replaces the default);
//! - `From`, `To`, `Cc`: the configured addresses (the envelope's recipients are `to` and `cc`);
//! - body: `multipart/alternative` with the rendered plain text (`text_template`) then the
//!   rendered HTML (`html_template`);
//! - `X-Intake-Event`: the event type (`parse_error`; for a quiet-hours digest, its most severe
//!   event's type) and `X-Intake-Severity` (`error`), for mail filters;
//! - `Date` and a `Message-ID` on this machine's host name.
//!
//! Config (the channel's `config` object; unknown fields are refused):
//!
//! | field | required | default | meaning |
//! | --- | --- | --- | --- |
//! | `smtp_host` | yes | | the relay's host name or IP address (no scheme, no port) |
//! | `smtp_port` | no | by `security`: 587, 465, 25 | the relay's port |
//! | `security` | no | `"starttls"` | `"starttls"`: plain connect, then `STARTTLS` is required before anything else is sent (a relay that does not offer it is an error, never a fallback to plain text); `"tls"`: implicit TLS from the first byte (SMTPS); `"none"`: no TLS at all, allowed only for a relay on this machine (`localhost`, `127.0.0.0/8`, `::1`) |
//! | `from` | yes | | the sender: `alerts@example.com` or `Intake Alerts <alerts@example.com>` |
//! | `to` | yes | | a non-empty list of recipient addresses (each may carry a display name) |
//! | `cc` | no | `[]` | more recipients, copied |
//! | `username` | no | | the SMTP login (AUTH PLAIN or LOGIN); set with `credential_name` or not at all |
//! | `credential_name` | no | | the reference of the SMTP password (`env:SMTP_PASSWORD`, `file:/run/secrets/smtp`), resolved through the caller's [`SecretResolver`] for every message; never the password itself |
//! | `ca_file` | no | | a PEM file of extra CA certificates to trust besides the web PKI roots (a private relay's CA or its self-signed certificate); read when the channel is built |
//! | `timeout_seconds` | no | 30 | how long one message may take in all, connection included (1 to 300) |
//! | `title_template`, `text_template`, `html_template` | no | the defaults of [`crate::message`] | minijinja templates for the subject and the two bodies |
//!
//! The server's certificate is checked against the web PKI roots (plus `ca_file`) and the name in
//! `smtp_host`. Every address is parsed when the config is validated; a problem names its field
//! (`config.to[1]`).
//!
//! ```json
//! {
//!   "name": "ops-email",
//!   "type": "email",
//!   "config": {
//!     "smtp_host": "smtp.example.com",
//!     "security": "starttls",
//!     "from": "Intake Alerts <alerts@example.com>",
//!     "to": ["ops@example.com", "Data Team <data@example.com>"],
//!     "cc": ["audit@example.com"],
//!     "username": "alerts@example.com",
//!     "credential_name": "env:INTAKE_SMTP_PASSWORD",
//!     "timeout_seconds": 30
//!   }
//! }
//! ```
//!
//! Failures ([`DeliveryError`]): a refused connection, a TLS failure (an untrusted certificate
//! included) or a time-out is [`DeliveryError::Unreachable`] (retryable); a negative SMTP reply
//! is [`DeliveryError::Rejected`] with its code: 4xx (`421` busy, `451`, `452`) is retryable, 5xx
//! (`535` wrong password, `550` unknown recipient) is not; a relay that lacks what the channel
//! requires (`STARTTLS`, AUTH PLAIN or LOGIN) is [`DeliveryError::Smtp`], not retryable. When a
//! recipient is refused no message is sent to anyone. A `credential_name` that cannot be
//! resolved is [`DeliveryError::Secret`] and a channel template that fails on an alert is
//! [`DeliveryError::Render`], both found before connecting and not retryable. No error carries
//! the password (a server's reply quoted in one has it, and its base64 forms, removed).
//!
//! Each alert opens its own connection (EHLO with this machine's host name), sends one message and
//! says QUIT; the password is resolved for each, so a rotated one takes effect at once.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::{ConfigProblem, DeliveryError};
use crate::event::Alert;
use crate::message::{MessageRenderer, MessageTemplates};
use crate::secret::{SecretError, SecretResolver};

/// The header carrying the event type (`parse_error`).
pub const EVENT_HEADER: &str = "X-Intake-Event";
/// The header carrying the severity (`error`).
pub const SEVERITY_HEADER: &str = "X-Intake-Severity";
/// The time-out of one message when the config sets none.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
/// The longest time-out a config may set.
pub const MAX_TIMEOUT_SECONDS: u64 = 300;
/// How much of a server's reply an error quotes.
const MAX_QUOTED_REPLY: usize = 512;

/// How the connection to the relay is protected (`security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Connect in plain text, then upgrade with `STARTTLS`, which the relay must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
    /// No TLS (port 25): only for a relay on this machine.
    None,
}

impl SmtpSecurity {
    /// The port used when the config sets no `smtp_port`: 587, 465 or 25.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Starttls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }

    /// The value as the config spells it (`starttls`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starttls => "starttls",
            Self::Tls => "tls",
            Self::None => "none",
        }
    }
}

/// The `config` of an `email` channel (see the module documentation for every field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The relay's host name or IP address.
    pub smtp_host: String,
    /// The relay's port; by default [`SmtpSecurity::default_port`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// How the connection is protected (default `starttls`).
    #[serde(default)]
    pub security: SmtpSecurity,
    /// The sender's address, optionally with a display name.
    pub from: String,
    /// The recipients (at least one).
    pub to: Vec<String>,
    /// Recipients copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// The SMTP login, when the relay requires authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The reference of the SMTP password (`env:NAME`, `file:/path`), never the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// A PEM file of extra CA certificates to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// How long one message may take in all, in seconds (1 to 300; default 30).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Replaces the default subject template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_template: Option<String>,
    /// Replaces the default plain-text body template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_template: Option<String>,
    /// Replaces the default HTML body template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_template: Option<String>,
}

fn default_timeout_seconds() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

impl EmailConfig {
    /// The port connected to: `smtp_port`, else the default of `security`.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(self.security.default_port())
    }

    /// The channel's message templates.
    pub fn templates(&self) -> MessageTemplates {
        MessageTemplates {
            title_template: self.title_template.clone(),
            text_template: self.text_template.clone(),
            html_template: self.html_template.clone(),
        }
    }

    /// Every problem with the config (an empty list: it is valid). No I/O: `ca_file` is read
    /// when the channel is built.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |path: &str, message: String| {
            problems.push(ConfigProblem { path: path.into(), message });
        };
        let host_ok = match check_host(&self.smtp_host) {
            Ok(()) => true,
            Err(message) => {
                problem("config.smtp_host", message);
                false
            }
        };
        if self.smtp_port == Some(0) {
            problem("config.smtp_port", "is 0; use the relay's port (587, 465 or 25)".into());
        }
        if self.security == SmtpSecurity::None && host_ok && !is_local(&self.smtp_host) {
            problem(
                "config.security",
                format!(
                    "is \"none\" (no TLS: the messages and any password would cross the network \
                     in plain text), which is allowed only for a relay on this machine \
                     (localhost, 127.0.0.1, ::1), not for '{}'; use \"starttls\" (port 587) or \
                     \"tls\" (port 465)",
                    self.smtp_host.trim()
                ),
            );
        }
        if let Err(message) = parse_mailbox(&self.from) {
            problem("config.from", message);
        }
        if self.to.is_empty() {
            problem("config.to", "is empty; list at least one recipient address".into());
        }
        for (index, address) in self.to.iter().enumerate() {
            if let Err(message) = parse_mailbox(address) {
                problem(&format!("config.to[{index}]"), message);
            }
        }
        for (index, address) in self.cc.iter().enumerate() {
            if let Err(message) = parse_mailbox(address) {
                problem(&format!("config.cc[{index}]"), message);
            }
        }
        match (&self.username, &self.credential_name) {
            (Some(_), None) => problem(
                "config.credential_name",
                "is missing while username is set; name the SMTP password, e.g. \
                 env:INTAKE_SMTP_PASSWORD (or remove username for a relay without login)"
                    .into(),
            ),
            (None, Some(_)) => problem(
                "config.username",
                "is missing while credential_name is set; give the SMTP login (or remove \
                 credential_name for a relay without login)"
                    .into(),
            ),
            _ => {}
        }
        if self.username.as_deref().is_some_and(|u| u.trim().is_empty()) {
            problem("config.username", "is empty; give the SMTP login".into());
        }
        if self.credential_name.as_deref().is_some_and(|c| c.trim().is_empty()) {
            problem(
                "config.credential_name",
                "is empty; name the SMTP password, e.g. env:INTAKE_SMTP_PASSWORD or \
                 file:/run/secrets/smtp_password"
                    .into(),
            );
        }
        match &self.ca_file {
            Some(path) if path.trim().is_empty() => {
                problem("config.ca_file", "is empty; give the path of a PEM file".into());
            }
            Some(_) if self.security == SmtpSecurity::None => problem(
                "config.ca_file",
                "is set but security is \"none\", which uses no TLS; remove one of them".into(),
            ),
            _ => {}
        }
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            problem(
                "config.timeout_seconds",
                format!("is {}; use 1 to {MAX_TIMEOUT_SECONDS} seconds", self.timeout_seconds),
            );
        }
        if let Err(template_problems) = MessageRenderer::new(&self.templates()) {
            problems.extend(template_problems);
        }
        problems
    }
}

/// A host name or an IP address, nothing else (no scheme, port, path or brackets).
fn check_host(host: &str) -> Result<(), String> {
    let hint = "; give only the relay's host name or IP address (smtp.example.com), with the \
                port in smtp_port";
    if host.trim().is_empty() {
        return Err("is empty; give the relay's host name, e.g. smtp.example.com".into());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains("://") {
        return Err(format!("'{host}' carries a scheme{hint}"));
    }
    if host.contains(':') {
        return Err(format!("'{host}' carries a port or is not an IP address{hint}"));
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!("'{host}' is not a valid host name{hint}"));
    }
    Ok(())
}

/// Whether `host` is this machine: `localhost` (or a name under `.localhost`) or a loopback
/// address.
fn is_local(host: &str) -> bool {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    if text.trim().is_empty() {
        return Err("is empty; give an address like ops@example.com".into());
    }
    text.trim().parse::<Mailbox>().map_err(|e| {
        format!(
            "'{text}' is not an email address ({e}); write ops@example.com or \
             Ops Team <ops@example.com>"
        )
    })
}

/// Reads `ca_file` and builds the TLS parameters for `host`: the web PKI roots plus the file's
/// certificates.
fn tls_parameters(host: &str, ca_file: Option<&str>) -> Result<TlsParameters, ConfigProblem> {
    let problem = |message: String| ConfigProblem { path: "config.ca_file".into(), message };
    let mut builder =
        TlsParameters::builder(host.to_owned()).certificate_store(CertificateStore::WebpkiRoots);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| problem(format!("cannot read '{path}': {e}; check the path")))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| problem(format!("'{path}' is not valid PEM: {e}")))?;
        if certificates.is_empty() {
            return Err(problem(format!(
                "'{path}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        for certificate in certificates {
            let certificate = Certificate::from_der(certificate.to_vec())
                .map_err(|e| problem(format!("'{path}' holds an unusable certificate: {e}")))?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build_rustls().map_err(|e| match ca_file {
        Some(path) => problem(format!("'{path}' holds an unusable CA certificate: {e}")),
        None => ConfigProblem {
            path: "config.smtp_host".into(),
            message: format!("cannot set up TLS for '{host}': {e}"),
        },
    })
}

/// A configured `email` channel.
#[derive(Clone)]
pub struct EmailChannel {
    name: String,
    host: String,
    port: u16,
    security: SmtpSecurity,
    /// `None` with `security = "none"`.
    tls: Option<TlsParameters>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    username: Option<String>,
    credential_name: Option<String>,
    timeout: Duration,
    renderer: Arc<MessageRenderer>,
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("name", &self.name)
            .field("server", &self.server())
            .field("security", &self.security)
            .field("from", &self.from.to_string())
            .field("to", &self.to.iter().map(ToString::to_string).collect::<Vec<_>>())
            .field("cc", &self.cc.iter().map(ToString::to_string).collect::<Vec<_>>())
            .field("username", &self.username)
            .field("credential_name", &self.credential_name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// A channel named `name` for a config; every problem with the config is reported at once.
    /// It reads `ca_file` (a problem at `config.ca_file` when it cannot be used).
    pub fn new(name: &str, config: &EmailConfig) -> Result<Self, Vec<ConfigProblem>> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(problems);
        }
        let host = config.smtp_host.trim().to_owned();
        let tls = match config.security {
            SmtpSecurity::None => None,
            _ => Some(tls_parameters(&host, config.ca_file.as_deref()).map_err(|p| vec![p])?),
        };
        let mailboxes = |list: &[String]| list.iter().map(|a| parse_mailbox(a)).collect();
        let parsed = (parse_mailbox(&config.from), mailboxes(&config.to), mailboxes(&config.cc));
        let (Ok(from), Ok(to), Ok(cc)) = parsed else {
            // validate() parsed every address already.
            return Err(vec![ConfigProblem {
                path: "config".into(),
                message: "an address could not be parsed".into(),
            }]);
        };
        let renderer = MessageRenderer::new(&config.templates())?;
        Ok(EmailChannel {
            name: name.to_owned(),
            host,
            port: config.port(),
            security: config.security,
            tls,
            from,
            to,
            cc,
            username: config.username.clone(),
            credential_name: config.credential_name.clone(),
            timeout: Duration::from_secs(config.timeout_seconds),
            renderer: Arc::new(renderer),
        })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The relay as errors show it: `host:port`.
    pub fn server(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }

    /// Renders `alert` and sends it as one email, resolving the SMTP password (when the channel
    /// has a login) through `secrets`.
    pub async fn deliver(
        &self,
        alert: &Alert,
        secrets: &dyn SecretResolver,
    ) -> Result<(), DeliveryError> {
        let credentials = self.credentials(secrets)?;
        let message = self
            .renderer
            .render(alert)
            .map_err(|source| DeliveryError::Render { channel: self.name.clone(), source })?;
        let header = |name: &'static str, value: &str| {
            HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned())
        };
        let mut builder = Email::builder()
            .from(self.from.clone())
            .subject(message.title)
            .message_id(None)
            .raw_header(header(EVENT_HEADER, alert.event.event_type.as_str()))
            .raw_header(header(SEVERITY_HEADER, alert.event.severity.as_str()));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for cc in &self.cc {
            builder = builder.cc(cc.clone());
        }
        let email = builder
            .multipart(MultiPart::alternative_plain_html(message.text, message.html))
            .map_err(|e| DeliveryError::Encoding {
                channel: self.name.clone(),
                reason: e.to_string(),
            })?;

        let tls = match (&self.tls, self.security) {
            (Some(params), SmtpSecurity::Starttls) => Tls::Required(params.clone()),
            (Some(params), SmtpSecurity::Tls) => Tls::Wrapper(params.clone()),
            _ => Tls::None,
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        let mut redact = Vec::new();
        if let Some((username, password)) = credentials {
            redact = redactions(&username, password.expose());
            transport =
                transport.credentials(Credentials::new(username, password.expose().to_owned()));
        }
        let transport = transport.build();
        match tokio::time::timeout(self.timeout, transport.send(email)).await {
            Ok(Ok(_)) => {
                tracing::debug!(channel = %self.name, server = %self.server(), "email delivered");
                Ok(())
            }
            Ok(Err(error)) => Err(self.failure(&error, &redact)),
            Err(_) => Err(DeliveryError::Unreachable {
                channel: self.name.clone(),
                origin: self.origin(),
                reason: format!("no answer within {} s", self.timeout.as_secs()),
                timed_out: true,
            }),
        }
    }

    /// The login and password, when the channel has one.
    fn credentials(
        &self,
        secrets: &dyn SecretResolver,
    ) -> Result<Option<(String, crate::ChannelSecret)>, DeliveryError> {
        let (Some(username), Some(reference)) = (&self.username, &self.credential_name) else {
            return Ok(None);
        };
        let password = secrets
            .resolve(reference)
            .map_err(|source| DeliveryError::Secret { channel: self.name.clone(), source })?;
        if password.expose().is_empty() {
            return Err(DeliveryError::Secret {
                channel: self.name.clone(),
                source: SecretError {
                    reference: reference.clone(),
                    reason: "the secret is empty; put the SMTP password there".into(),
                },
            });
        }
        Ok(Some((username.clone(), password)))
    }

    /// The relay as a URL-like origin for [`DeliveryError::Unreachable`].
    fn origin(&self) -> String {
        let scheme = if self.security == SmtpSecurity::Tls { "smtps" } else { "smtp" };
        format!("{scheme}://{}", self.server())
    }

    fn failure(&self, error: &lettre::transport::smtp::Error, redact: &[String]) -> DeliveryError {
        if let Some(code) = error.status() {
            let reply = std::error::Error::source(error).map(ToString::to_string);
            return DeliveryError::Rejected {
                channel: self.name.clone(),
                server: self.server(),
                code: u16::from(code),
                message: quote(&reply.unwrap_or_default(), redact),
            };
        }
        let reason = quote(&describe(error), redact);
        if error.is_client() || error.is_response() {
            return DeliveryError::Smtp {
                channel: self.name.clone(),
                server: self.server(),
                reason,
            };
        }
        DeliveryError::Unreachable {
            channel: self.name.clone(),
            origin: self.origin(),
            reason,
            timed_out: error.is_timeout(),
        }
    }
}

/// The forms a password can take on the wire (itself, AUTH LOGIN's base64, AUTH PLAIN's base64
/// of `\0user\0password`), to be cut from any server text an error quotes.
fn redactions(username: &str, password: &str) -> Vec<String> {
    // Longest first, so a shorter form inside a longer one does not leave part of it behind.
    vec![
        BASE64.encode(format!("\0{username}\0{password}")),
        BASE64.encode(password),
        password.to_owned(),
    ]
}

/// `text` on one line, at most [`MAX_QUOTED_REPLY`] bytes, with every secret form replaced.
fn quote(text: &str, redact: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in redact.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "<redacted>");
    }
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > MAX_QUOTED_REPLY {
        let mut cut = MAX_QUOTED_REPLY;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    if text.is_empty() { "(no text)".to_owned() } else { text }
}

/// The error and its causes on one line, each level's own words once (lettre's errors repeat
/// their cause in their own text).
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(level) = current {
        let text = level.to_string();
        let next = level.source();
        let own = match next.map(ToString::to_string) {
            Some(cause) if text.ends_with(&cause) => {
                text[..text.len() - cause.len()].trim_end_matches([':', ' ']).to_owned()
            }
            _ => text,
        };
        if !own.is_empty() && parts.last() != Some(&own) {
            parts.push(own);
        }
        current = next;
    }
    let mut text = parts.join(": ");
    if text.contains("certificate") {
        text.push_str(" (a private relay's CA can be trusted with ca_file)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig {
            smtp_host: "smtp.example.com".into(),
            smtp_port: None,
            security: SmtpSecurity::default(),
            from: "Intake <alerts@example.com>".into(),
            to: vec!["ops@example.com".into()],
            cc: Vec::new(),
            username: None,
            credential_name: None,
            ca_file: None,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            title_template: None,
            text_template: None,
            html_template: None,
        }
    }

    #[test]
    fn ports_default_by_security() {
        assert_eq!(config().port(), 587);
        assert_eq!(EmailConfig { security: SmtpSecurity::Tls, ..config() }.port(), 465);
        assert_eq!(EmailConfig { security: SmtpSecurity::None, ..config() }.port(), 25);
        assert_eq!(EmailConfig { smtp_port: Some(2525), ..config() }.port(), 2525);
    }

    #[test]
    fn hosts_are_names_or_addresses_and_plain_text_is_for_this_machine_only() {
        for good in ["smtp.example.com", "localhost", "127.0.0.1", "::1", "mail-1.internal."] {
            assert_eq!(check_host(good), Ok(()), "{good}");
        }
        for bad in ["", "smtp://x.example.com", "smtp.example.com:587", "a b", "-x.example"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
        for local in ["localhost", "LOCALHOST", "relay.localhost", "127.0.0.1", "127.1.2.3", "::1"]
        {
            assert!(is_local(local), "{local}");
        }
        for remote in ["smtp.example.com", "10.0.0.1", "localhost.example.com", "::2"] {
            assert!(!is_local(remote), "{remote}");
        }
    }

    #[test]
    fn quoted_replies_lose_every_form_of_the_password() {
        let redact = redactions("alerts", "hunter2");
        let plain = BASE64.encode("\0alerts\0hunter2");
        let text = format!("535 bad hunter2 {plain} {}\r\n more", BASE64.encode("hunter2"));
        let quoted = quote(&text, &redact);
        assert_eq!(quoted, "535 bad <redacted> <redacted> <redacted> more");
        let long = quote(&"é".repeat(400), &[]);
        assert!(long.ends_with('…') && long.len() <= MAX_QUOTED_REPLY + 3, "{}", long.len());
    }
}
