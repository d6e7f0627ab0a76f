//! What the HTTP channels (`webhook`, `slack`, `teams`, `pagerduty`) share: the URL checks, the
//! time-out bounds, sending one JSON `POST` and mapping its failure to a [`DeliveryError`], and
//! quoting the start of a refusing receiver's body without any secret in it.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;

use super::{ConfigProblem, DeliveryError};

/// The time-out of one delivery when the config sets none.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// The longest time-out a config may set.
pub const MAX_TIMEOUT_SECONDS: u64 = 300;
/// How much of a refusing receiver's body an error quotes.
const MAX_QUOTED_BODY: usize = 512;
/// What stands in a quoted body for a secret the receiver echoed.
const REDACTED: &str = "<redacted>";

/// The serde default of `timeout_seconds`.
pub(crate) fn default_timeout_seconds() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

/// The problem with a configured `timeout_seconds`, if any.
pub(crate) fn timeout_problem(seconds: u64) -> Option<ConfigProblem> {
    (!(1..=MAX_TIMEOUT_SECONDS).contains(&seconds)).then(|| ConfigProblem {
        path: "config.timeout_seconds".into(),
        message: format!("is {seconds}; use 1 to {MAX_TIMEOUT_SECONDS} seconds"),
    })
}

/// `text` as an absolute `http(s)` URL with a host and no `user:password@`. The message never
/// quotes the text (it may be a secret, like a Slack webhook URL).
pub(crate) fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!("has scheme '{}'; use https:// (or http://)", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries credentials (user:password@); put secrets behind credential_name \
                    instead"
            .into());
    }
    Ok(url)
}

/// The origin of `url` (`scheme://host:port`), the only part of a URL errors show.
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// How a receiver answered one `POST`.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The start of the body ([`read_start`]), with the secrets given to [`post_json`] replaced.
    pub body: String,
}

/// `POST`s `body` (JSON) to `url` within `timeout` for the channel `channel`, and reads the start
/// of the answer. A connection failure or time-out is [`DeliveryError::Unreachable`] (showing the
/// origin only); every text in `secrets` is replaced by `<redacted>` in the quoted answer.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    channel: &str,
    url: &Url,
    timeout: Duration,
    body: Vec<u8>,
    secrets: &[&str],
) -> Result<Answer, DeliveryError> {
    let sent = http
        .post(url.clone())
        .timeout(timeout)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let mut response = sent.map_err(|error| unreachable(channel, url, error))?;
    let status = response.status();
    let body = redact(read_start(&mut response).await, secrets);
    Ok(Answer { status, body })
}

/// A send failure as [`DeliveryError::Unreachable`], without the URL.
pub(crate) fn unreachable(channel: &str, url: &Url, error: reqwest::Error) -> DeliveryError {
    let timed_out = error.is_timeout();
    DeliveryError::Unreachable {
        channel: channel.to_owned(),
        origin: origin(url),
        reason: describe(error.without_url()),
        timed_out,
    }
}

/// The error and its causes on one line (the URL is left out by the caller).
fn describe(error: reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `text` with every non-empty secret replaced by `<redacted>`.
fn redact(mut text: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        if text.contains(secret) {
            text = text.replace(secret, REDACTED);
        }
    }
    text
}

/// The first [`MAX_QUOTED_BODY`] bytes of the body (lossy UTF-8, marked `…` when cut); reading
/// stops there, so a huge error page is not downloaded.
pub(crate) async fn read_start(response: &mut reqwest::Response) -> String {
    let mut start = Vec::new();
    let mut cut = false;
    while let Ok(Some(chunk)) = response.chunk().await {
        start.extend_from_slice(&chunk);
        if start.len() > MAX_QUOTED_BODY {
            start.truncate(MAX_QUOTED_BODY);
            cut = true;
            break;
        }
    }
    let mut text = String::from_utf8_lossy(&start).trim_end().to_owned();
    if cut {
        // A cut inside a multi-byte character leaves a replacement character at the end.
        text = text.trim_end_matches('\u{FFFD}').to_owned();
        text.push('…');
    }
    if text.is_empty() { "(empty body)".to_owned() } else { text }
}

/// `text` cut to at most `max` characters, the cut marked with `marker` (counted in `max`).
pub(crate) fn cut_chars(text: &str, max: usize, marker: &str) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(marker.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(marker);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http_with_a_host_and_no_credentials() {
        assert!(parse_url("https://hooks.example.com/a?b=c").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/hook").is_ok());
        for bad in ["hooks.example.com/a", "ftp://example.com/", "https://u:p@example.com/", ""] {
            let message = parse_url(bad).expect_err(bad);
            assert!(bad.is_empty() || !message.contains(bad), "{message}");
        }
    }

    #[test]
    fn cuts_count_characters_and_include_the_marker() {
        assert_eq!(cut_chars("short", 10, "…"), "short");
        assert_eq!(cut_chars("ééééééééééé", 5, "…"), "éééé…");
        assert_eq!(cut_chars("abcdef", 5, "[cut]"), "[cut]");
    }

    #[test]
    fn secrets_are_redacted_from_quoted_bodies() {
        let body = "no such hook: /services/T0/B0/XYZ".to_owned();
        assert_eq!(redact(body, &["", "/services/T0/B0/XYZ"]), "no such hook: <redacted>");
        assert_eq!(timeout_problem(10), None);
        assert_eq!(timeout_problem(301).map(|p| p.path), Some("config.timeout_seconds".into()));
    }
}
