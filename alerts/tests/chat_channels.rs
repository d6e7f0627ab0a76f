//! The `slack`, `teams` and `pagerduty` channels against real HTTP receivers on 127.0.0.1: the
//! exact JSON each sends, that the webhook URL and the routing key come from the credential (and
//! show in no error), PagerDuty's trigger then resolve under one `dedup_key`, and how refusals,
//! time-outs and absent receivers map to typed, retryable-or-not errors.

#[path = "support/http_receiver.rs"]
mod http_receiver;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use intake_alerts::channels::{Channel, ChannelConfigError, http_client, slack, teams};
use intake_alerts::{
    Alert, AlertChannel, AlertEvent, ChannelSecret, DeliveryError, EventType, SecretError, Severity,
};
use serde_json::{Value, json};

use http_receiver::{Answer, Received, Server, closed_address};

/// The path of the test's Slack webhook URL: the token a Slack URL embeds.
const SLACK_PATH: &str = "/services/T0INTAKE/B0ALERTS/s3cr3tSlackT0ken";
/// The path of the test's Teams webhook URL, with its signature.
const TEAMS_PATH: &str = "/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3tTeamsS1g";
/// A PagerDuty routing key (32 characters, like a real one).
const ROUTING_KEY: &str = "R0UT1NGkey0123456789abcdefABCDEF";

fn channel(name: &str, kind: &str, config: Value) -> Channel {
    let item: AlertChannel =
        serde_json::from_value(json!({"name": name, "type": kind, "config": config}))
            .expect("channel item");
    item.build(&http_client().expect("client")).expect("valid channel")
}

fn slack_channel(config: Value) -> Channel {
    channel("ops-slack", "slack", config)
}

fn teams_channel(config: Value) -> Channel {
    channel("finance-teams", "teams", config)
}

fn pagerduty_channel(events_url: &str) -> Channel {
    channel(
        "ops-pagerduty",
        "pagerduty",
        json!({"credential_name": "env:PD_ROUTING_KEY", "events_url": events_url,
               "timeout_seconds": 5}),
    )
}

/// A resolver knowing one credential: `reference` → `value`.
fn only(
    reference: &'static str,
    value: String,
) -> impl Fn(&str) -> Result<ChannelSecret, SecretError> + Send + Sync {
    move |asked: &str| {
        if asked == reference {
            Ok(ChannelSecret::new(value.clone()))
        } else {
            Err(SecretError { reference: asked.into(), reason: "not set".into() })
        }
    }
}

fn parse_error() -> AlertEvent {
    AlertEvent::new(EventType::ParseError, Severity::Error, "payments.csv: row 3 is <not> CSV")
        .tag("tenant", "acme")
        .tag("source", "bank-sftp")
        .subject("run-01J9Z")
        .link("https://intake.example/imports/runs/run-01J9Z")
}

/// Every text an error can show.
fn shown(error: &DeliveryError) -> String {
    format!("{error} {error:?}")
}

// ---------------------------------------------------------------------------------------------
// Slack

#[tokio::test]
async fn slack_posts_header_section_and_context_blocks_to_the_url_from_the_credential() {
    let server = Server::start(Answer::new(StatusCode::OK, "ok")).await;
    let secrets = only("env:SLACK_WEBHOOK_URL", server.url(SLACK_PATH));
    let slack = slack_channel(json!({"credential_name": "env:SLACK_WEBHOOK_URL"}));
    slack.deliver(&Alert::single(parse_error()), &secrets).await.expect("delivered");

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!((request.method.as_str(), request.uri.path()), ("POST", SLACK_PATH));
    assert_eq!(request.header("content-type"), "application/json");
    let title = "[intake] ERROR: A file could not be read (bank-sftp)";
    let body = request.json();
    let section = body["blocks"][1]["text"]["text"].as_str().expect("section text");
    assert!(section.starts_with("A file could not be read\n\npayments.csv: row 3 is &lt;not&gt;"));
    assert!(section.contains("Details: https://intake.example/imports/runs/run-01J9Z"));
    assert_eq!(
        body,
        json!({
            "text": title,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title}},
                {"type": "section", "text": {"type": "mrkdwn", "text": section}},
                {"type": "context", "elements": [
                    {"type": "mrkdwn", "text": "*Severity:* error"},
                    {"type": "mrkdwn", "text": "*Event:* parse_error"},
                    {"type": "mrkdwn", "text": "*Tenant:* acme"}
                ]}
            ]
        })
    );
}

#[tokio::test]
async fn slack_uses_the_channel_templates_and_cuts_to_slacks_limits() {
    let server = Server::start(Answer::new(StatusCode::OK, "ok")).await;
    let secrets = only("env:SLACK_WEBHOOK_URL", server.url(SLACK_PATH));
    let slack = slack_channel(json!({
        "credential_name": "env:SLACK_WEBHOOK_URL",
        "title_template": "{{ event.tags.tenant }}: {{ event.summary }}",
        "text_template": "{{ event.summary }}"
    }));
    let long = format!("{} & more", "x".repeat(4000));
    let event = AlertEvent::new(EventType::SourceError, Severity::Warning, long).tag("tenant", "t");
    slack.deliver(&Alert::single(event), &secrets).await.expect("delivered");

    let body = server.received()[0].json();
    let header = body["blocks"][0]["text"]["text"].as_str().expect("header");
    assert_eq!(header.chars().count(), slack::MAX_HEADER_CHARS);
    assert!(header.starts_with("t: xxx") && header.ends_with('…'), "{header}");
    let section = body["blocks"][1]["text"]["text"].as_str().expect("section");
    assert_eq!(section.chars().count(), slack::MAX_SECTION_CHARS);
    assert!(section.ends_with(slack::CUT_MARKER), "{section}");
    assert!(body["text"].as_str().expect("fallback").starts_with("t: xxx"));
    assert_eq!(body["blocks"][2]["elements"][0]["text"], "*Severity:* warning");
}

#[tokio::test]
async fn slack_refusals_are_retryable_only_for_429_and_5xx_and_never_show_the_token() {
    let cases = [
        (StatusCode::FORBIDDEN, "invalid_token", false),
        (StatusCode::NOT_FOUND, "no_service", false),
        (StatusCode::BAD_REQUEST, "invalid_blocks", false),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited", true),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error", true),
        (StatusCode::OK, "not ok", false),
    ];
    for (status, answer, retryable) in cases {
        let server = Server::start(Answer::new(status, answer)).await;
        let secrets = only("env:SLACK_WEBHOOK_URL", server.url(SLACK_PATH));
        let slack = slack_channel(json!({"credential_name": "env:SLACK_WEBHOOK_URL"}));
        let error = slack.deliver(&Alert::single(parse_error()), &secrets).await.expect_err("no");
        let DeliveryError::Refused { channel, origin, status: code, body } = &error else {
            panic!("a refusal: {error:?}");
        };
        assert_eq!(
            (channel.as_str(), origin.as_str(), *code, body.as_str()),
            ("ops-slack", server.base.as_str(), status.as_u16(), answer)
        );
        assert_eq!(error.is_retryable(), retryable, "{status}");
        assert!(!shown(&error).contains("s3cr3tSlackT0ken"), "{error}");
        assert_eq!(server.received().len(), 1);
    }
}

#[tokio::test]
async fn a_receiver_echoing_the_webhook_url_has_it_redacted_and_an_absent_one_is_unreachable() {
    let mut echo = Answer::new(StatusCode::NOT_FOUND, "no_service for");
    echo.echo_uri = true;
    let server = Server::start(echo).await;
    let secrets = only("env:SLACK_WEBHOOK_URL", server.url(SLACK_PATH));
    let slack = slack_channel(json!({"credential_name": "env:SLACK_WEBHOOK_URL"}));
    let error = slack.deliver(&Alert::single(parse_error()), &secrets).await.expect_err("404");
    let DeliveryError::Refused { body, .. } = &error else { panic!("{error:?}") };
    assert_eq!(body, "no_service for <redacted>");
    assert!(!shown(&error).contains("s3cr3tSlackT0ken"), "{error}");

    let closed = closed_address();
    let secrets = only("env:SLACK_WEBHOOK_URL", format!("{closed}{SLACK_PATH}"));
    let error = slack.deliver(&Alert::single(parse_error()), &secrets).await.expect_err("closed");
    assert!(
        matches!(&error, DeliveryError::Unreachable { origin, timed_out: false, .. } if *origin == closed),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(!shown(&error).contains("s3cr3tSlackT0ken") && !shown(&error).contains("/services"));
}

#[tokio::test]
async fn a_missing_empty_or_malformed_url_credential_sends_nothing_and_is_not_retryable() {
    let server = Server::start(Answer::new(StatusCode::OK, "ok")).await;
    let slack = slack_channel(json!({"credential_name": "env:SLACK_WEBHOOK_URL"}));
    let alert = Alert::single(parse_error());

    let missing = only("env:OTHER", String::new());
    let error = slack.deliver(&alert, &missing).await.expect_err("unresolved");
    assert!(
        matches!(&error, DeliveryError::Secret { source, .. } if source.reference == "env:SLACK_WEBHOOK_URL"),
        "{error:?}"
    );
    assert!(!error.is_retryable());

    let empty = only("env:SLACK_WEBHOOK_URL", "  ".into());
    let error = slack.deliver(&alert, &empty).await.expect_err("empty");
    assert!(error.to_string().contains("the credential is empty"), "{error}");

    let not_a_url =
        only("env:SLACK_WEBHOOK_URL", "hooks.slack.com/services/s3cr3tSlackT0ken".into());
    let error = slack.deliver(&alert, &not_a_url).await.expect_err("not a URL");
    assert!(matches!(&error, DeliveryError::Secret { .. }), "{error:?}");
    assert!(error.to_string().contains("is not an absolute URL"), "{error}");
    assert!(!shown(&error).contains("s3cr3tSlackT0ken"), "{error}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn an_inline_webhook_url_is_a_config_problem_telling_to_use_a_credential() {
    for kind in ["slack", "teams"] {
        let item: AlertChannel = serde_json::from_value(json!({
            "name": "inline", "type": kind,
            "config": {"webhook_url": format!("https://hooks.example.com{SLACK_PATH}")}
        }))
        .expect("item");
        let error = item.build(&http_client().expect("client")).expect_err("refused");
        let ChannelConfigError::Invalid { problems, .. } = &error else { panic!("{error:?}") };
        assert_eq!(problems[0].path, "config.webhook_url");
        assert!(problems[0].message.contains("store it as a credential"), "{}", problems[0]);
        assert!(problems[0].message.contains(&format!("env:{}_WEBHOOK_URL", kind.to_uppercase())));
        assert!(problems.iter().any(|p| p.path == "config.credential_name"));
        assert!(!format!("{error} {error:?}").contains("s3cr3tSlackT0ken"));
    }
}

// ---------------------------------------------------------------------------------------------
// Teams

fn card(body: Value, actions: Option<Value>) -> Value {
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body
    });
    if let Some(actions) = actions {
        content["actions"] = actions;
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content
        }]
    })
}

#[tokio::test]
async fn teams_posts_an_adaptive_card_with_title_text_facts_and_a_link_action() {
    let server = Server::start(Answer::new(StatusCode::ACCEPTED, "")).await;
    let secrets = only("env:TEAMS_WEBHOOK_URL", server.url(TEAMS_PATH));
    let teams = teams_channel(json!({
        "credential_name": "env:TEAMS_WEBHOOK_URL",
        "text_template": "{{ event.summary }} ({{ event.subject }})"
    }));
    teams.deliver(&Alert::single(parse_error()), &secrets).await.expect("202 is delivered");

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.uri.to_string(), TEAMS_PATH, "the URL came from the credential");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(
        request.json(),
        card(
            json!([
                {"type": "TextBlock", "text": "[intake] ERROR: A file could not be read (bank-sftp)",
                 "weight": "Bolder", "size": "Medium", "wrap": true, "color": "Attention"},
                {"type": "TextBlock", "text": "payments.csv: row 3 is <not> CSV (run-01J9Z)",
                 "wrap": true},
                {"type": "FactSet", "facts": [
                    {"title": "Severity", "value": "error"},
                    {"title": "Event", "value": "parse_error"},
                    {"title": "Source", "value": "bank-sftp"},
                    {"title": "Tenant", "value": "acme"}
                ]}
            ]),
            Some(json!([{
                "type": "Action.OpenUrl",
                "title": "Open in intake",
                "url": "https://intake.example/imports/runs/run-01J9Z"
            }]))
        )
    );
}

#[tokio::test]
async fn teams_colours_by_severity_and_leaves_out_actions_without_a_link() {
    let server = Server::start(Answer::new(StatusCode::OK, "1")).await;
    let secrets = only("env:TEAMS_WEBHOOK_URL", server.url(TEAMS_PATH));
    let teams = teams_channel(json!({
        "credential_name": "env:TEAMS_WEBHOOK_URL",
        "title_template": "{{ event.severity }}",
        "text_template": "{{ event.summary }}"
    }));
    for (severity, color) in [
        (Severity::Critical, Some("Attention")),
        (Severity::Warning, Some("Warning")),
        (Severity::Info, None),
    ] {
        let event = AlertEvent::new(EventType::UnmatchedFile, severity, "x.csv");
        teams.deliver(&Alert::single(event), &secrets).await.expect("200 is delivered");
        let mut title = json!({"type": "TextBlock", "text": severity.as_str(), "weight": "Bolder",
                               "size": "Medium", "wrap": true});
        if let Some(color) = color {
            title["color"] = json!(color);
        }
        let expected = card(
            json!([
                title,
                {"type": "TextBlock", "text": "x.csv", "wrap": true},
                {"type": "FactSet", "facts": [
                    {"title": "Severity", "value": severity.as_str()},
                    {"title": "Event", "value": "unmatched_file"}
                ]}
            ]),
            None,
        );
        let received = server.received();
        assert_eq!(received.last().expect("a request").json(), expected, "{severity:?}");
    }
}

#[tokio::test]
async fn teams_refusals_map_to_retryable_or_not_without_the_signed_url() {
    for (status, retryable) in [
        (StatusCode::BAD_REQUEST, false),
        (StatusCode::UNAUTHORIZED, false),
        (StatusCode::TOO_MANY_REQUESTS, true),
        (StatusCode::BAD_GATEWAY, true),
    ] {
        let mut echo = Answer::new(status, "Bad payload for");
        echo.echo_uri = true;
        let server = Server::start(echo).await;
        let secrets = only("env:TEAMS_WEBHOOK_URL", server.url(TEAMS_PATH));
        let teams = teams_channel(json!({"credential_name": "env:TEAMS_WEBHOOK_URL"}));
        let error = teams.deliver(&Alert::single(parse_error()), &secrets).await.expect_err("no");
        assert!(
            matches!(&error, DeliveryError::Refused { status: s, origin, .. }
                if *s == status.as_u16() && *origin == server.base),
            "{error:?}"
        );
        assert_eq!(error.is_retryable(), retryable, "{status}");
        // The echoed path and query (with the signature) are redacted from the quoted body.
        let DeliveryError::Refused { body, .. } = &error else { panic!("{error:?}") };
        assert_eq!(body, "Bad payload for <redacted>?<redacted>");
        assert!(!shown(&error).contains("s3cr3tTeamsS1g"), "{error}");
    }
}

#[tokio::test]
async fn a_teams_receiver_slower_than_the_timeout_gives_a_timed_out_error() {
    let mut slow = Answer::new(StatusCode::OK, "");
    slow.delay = Duration::from_secs(5);
    let server = Server::start(slow).await;
    let secrets = only("env:TEAMS_WEBHOOK_URL", server.url(TEAMS_PATH));
    let teams = teams_channel(json!({"credential_name": "env:TEAMS_WEBHOOK_URL",
                                     "timeout_seconds": 1}));
    let error = teams.deliver(&Alert::single(parse_error()), &secrets).await.expect_err("slow");
    assert!(matches!(&error, DeliveryError::Unreachable { timed_out: true, .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(!shown(&error).contains("s3cr3tTeamsS1g") && !shown(&error).contains("/workflows"));
}

// ---------------------------------------------------------------------------------------------
// PagerDuty

/// The body with `payload.timestamp` checked to be RFC 3339 between `before` and `after` and
/// replaced by `"<now>"`.
fn without_timestamp(mut body: Value, before: SystemTime, after: SystemTime) -> Value {
    let stamp = body["payload"]["timestamp"].as_str().expect("a timestamp").to_owned();
    let at = DateTime::parse_from_rfc3339(&stamp).expect("RFC 3339").with_timezone(&Utc);
    let (before, after) = (DateTime::<Utc>::from(before), DateTime::<Utc>::from(after));
    assert!(at >= before - chrono::Duration::milliseconds(1) && at <= after, "{stamp}");
    assert!(stamp.ends_with('Z'), "{stamp}");
    body["payload"]["timestamp"] = json!("<now>");
    body
}

const PD_ACCEPTED: &str = r#"{"status":"success","message":"Event processed","dedup_key":"k"}"#;

#[tokio::test]
async fn pagerduty_triggers_then_resolves_one_incident_with_the_routing_key_from_the_credential() {
    let server = Server::start(Answer::new(StatusCode::ACCEPTED, PD_ACCEPTED)).await;
    let secrets = only("env:PD_ROUTING_KEY", ROUTING_KEY.into());
    let pagerduty = pagerduty_channel(&server.url("/v2/enqueue"));
    let key = "sla:members:2026-11-24T05:00:00Z";
    let violation =
        AlertEvent::new(EventType::SlaViolation, Severity::Critical, "members.csv is late")
            .tag("tenant", "acme")
            .tag("template", "members")
            .tag("source", "bank-sftp")
            .subject("tpl-members")
            .dedup_key(key);
    let recovered = AlertEvent::new(EventType::SlaRecovered, Severity::Info, "members.csv came")
        .tag("tenant", "acme")
        .tag("template", "members")
        .dedup_key(key);

    let before = SystemTime::now();
    pagerduty.deliver(&Alert::single(violation.clone()), &secrets).await.expect("trigger");
    pagerduty.deliver(&Alert::single(violation).with_held_back(2), &secrets).await.expect("again");
    let after = SystemTime::now();
    pagerduty.deliver(&Alert::single(recovered), &secrets).await.expect("resolve");

    let received = server.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.uri.path() == "/v2/enqueue"));
    assert!(received.iter().all(|r| r.header("content-type") == "application/json"));
    let trigger = without_timestamp(received[0].json(), before, after);
    let expected = json!({
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": "[intake] CRITICAL: An expected file did not arrive (members)",
            "source": "intake",
            "severity": "critical",
            "timestamp": "<now>",
            "component": "members",
            "group": "acme",
            "class": "sla_violation",
            "custom_details": {
                "summary": "members.csv is late",
                "tags": {"tenant": "acme", "template": "members", "source": "bank-sftp"},
                "subject": "tpl-members",
                "held_back": 0
            }
        }
    });
    assert_eq!(trigger, expected);
    let again = without_timestamp(received[1].json(), before, after);
    assert_eq!(again["dedup_key"], key, "a repeated violation updates the same incident");
    assert_eq!(again["payload"]["custom_details"]["held_back"], 2);
    assert_eq!(
        received[2].json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": key})
    );
}

#[tokio::test]
async fn pagerduty_derives_a_stable_key_maps_severities_and_sends_links_and_digests() {
    let server = Server::start(Answer::new(StatusCode::ACCEPTED, PD_ACCEPTED)).await;
    let secrets = only("env:PD_ROUTING_KEY", ROUTING_KEY.into());
    let pagerduty = channel(
        "ops-pagerduty",
        "pagerduty",
        json!({"credential_name": "env:PD_ROUTING_KEY", "events_url": server.url("/v2/enqueue"),
               "source": "intake-prod", "title_template": "{{ event.summary }}"}),
    );
    pagerduty.deliver(&Alert::single(parse_error()), &secrets).await.expect("first");
    pagerduty.deliver(&Alert::single(parse_error()), &secrets).await.expect("second");
    let held = vec![
        AlertEvent::new(EventType::ValidationFailed, Severity::Warning, "3 rows rejected"),
        AlertEvent::new(EventType::UnmatchedFile, Severity::Info, "x.csv"),
    ];
    let digest = Alert::digest(held.clone()).expect("digest");
    pagerduty.deliver(&digest, &secrets).await.expect("digest");

    let bodies: Vec<Value> = server.received().iter().map(Received::json).collect();
    let first = &bodies[0];
    assert_eq!(first["dedup_key"], parse_error().incident_key());
    assert_eq!(first["dedup_key"], bodies[1]["dedup_key"], "the same event, the same incident");
    assert_eq!(first["payload"]["summary"], "payments.csv: row 3 is <not> CSV");
    assert_eq!(first["payload"]["source"], "intake-prod");
    assert_eq!(first["payload"]["severity"], "error");
    assert_eq!(first["payload"]["component"], "bank-sftp", "tags.source without a template");
    assert_eq!(
        first["links"],
        json!([{"href": "https://intake.example/imports/runs/run-01J9Z", "text": "Open in intake"}])
    );
    let digest_body = &bodies[2];
    assert_eq!(digest_body["event_action"], "trigger");
    assert_eq!(digest_body["dedup_key"], held[0].incident_key(), "the most severe held event");
    assert_eq!(digest_body["payload"]["severity"], "warning");
    assert_eq!(digest_body["payload"]["custom_details"]["digest"], json!(held));
    let payload = digest_body["payload"].as_object().expect("payload");
    assert!(!payload.contains_key("component") && !payload.contains_key("group"));
    assert!(digest_body.get("links").is_none());
}

#[tokio::test]
async fn pagerduty_cuts_the_summary_to_1024_characters() {
    let server = Server::start(Answer::new(StatusCode::ACCEPTED, PD_ACCEPTED)).await;
    let secrets = only("env:PD_ROUTING_KEY", ROUTING_KEY.into());
    let pagerduty = channel(
        "ops-pagerduty",
        "pagerduty",
        json!({"credential_name": "env:PD_ROUTING_KEY", "events_url": server.url("/v2/enqueue"),
               "title_template": "{{ event.summary }}"}),
    );
    let event = AlertEvent::new(EventType::ImportFailed, Severity::Error, "é".repeat(2000));
    pagerduty.deliver(&Alert::single(event), &secrets).await.expect("delivered");
    let body = server.received()[0].json();
    let summary = body["payload"]["summary"].as_str().expect("summary");
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.ends_with("é…"), "{summary}");
    assert_eq!(body["payload"]["custom_details"]["summary"], "é".repeat(2000));
}

#[tokio::test]
async fn pagerduty_400_is_not_retryable_and_says_why_429_and_5xx_are() {
    let invalid = format!(
        r#"{{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' {ROUTING_KEY} is incorrect"]}}"#
    );
    for (status, answer, retryable) in [
        (StatusCode::BAD_REQUEST, invalid.as_str(), false),
        (StatusCode::TOO_MANY_REQUESTS, r#"{"status":"throttle event"}"#, true),
        (StatusCode::INTERNAL_SERVER_ERROR, "oops", true),
        (StatusCode::SERVICE_UNAVAILABLE, "", true),
    ] {
        let server = Server::start(Answer::new(status, answer)).await;
        let secrets = only("env:PD_ROUTING_KEY", ROUTING_KEY.into());
        let pagerduty = pagerduty_channel(&server.url("/v2/enqueue"));
        let error =
            pagerduty.deliver(&Alert::single(parse_error()), &secrets).await.expect_err("no");
        let DeliveryError::Refused { channel, origin, status: code, body } = &error else {
            panic!("a refusal: {error:?}");
        };
        assert_eq!((channel.as_str(), *code), ("ops-pagerduty", status.as_u16()));
        assert_eq!(origin, &server.base);
        assert_eq!(error.is_retryable(), retryable, "{status}");
        assert!(!shown(&error).contains(ROUTING_KEY), "{error}");
        if status == StatusCode::BAD_REQUEST {
            assert!(body.contains("Event object is invalid"), "{body}");
            assert!(body.contains("Length of 'routing_key' <redacted> is incorrect"), "{body}");
            assert!(error.to_string().contains("HTTP 400"), "{error}");
        }
    }
}

#[tokio::test]
async fn pagerduty_unreachable_or_slow_is_retryable_and_a_missing_key_sends_nothing() {
    let secrets = only("env:PD_ROUTING_KEY", ROUTING_KEY.into());
    let closed = closed_address();
    let pagerduty = pagerduty_channel(&format!("{closed}/v2/enqueue"));
    let error = pagerduty.deliver(&Alert::single(parse_error()), &secrets).await.expect_err("down");
    assert!(
        matches!(&error, DeliveryError::Unreachable { origin, timed_out: false, .. } if *origin == closed),
        "{error:?}"
    );
    assert!(error.is_retryable());

    let mut slow = Answer::new(StatusCode::ACCEPTED, PD_ACCEPTED);
    slow.delay = Duration::from_secs(5);
    let server = Server::start(slow).await;
    let pagerduty = channel(
        "ops-pagerduty",
        "pagerduty",
        json!({"credential_name": "env:PD_ROUTING_KEY", "events_url": server.url("/v2/enqueue"),
               "timeout_seconds": 1}),
    );
    let error = pagerduty.deliver(&Alert::single(parse_error()), &secrets).await.expect_err("slow");
    assert!(matches!(&error, DeliveryError::Unreachable { timed_out: true, .. }), "{error:?}");
    assert!(error.is_retryable() && !shown(&error).contains(ROUTING_KEY));

    let quiet = Server::start(Answer::new(StatusCode::ACCEPTED, PD_ACCEPTED)).await;
    let pagerduty = pagerduty_channel(&quiet.url("/v2/enqueue"));
    let missing = only("env:OTHER", String::new());
    let error = pagerduty.deliver(&Alert::single(parse_error()), &missing).await.expect_err("no");
    assert!(matches!(&error, DeliveryError::Secret { .. }) && !error.is_retryable());
    let empty = only("env:PD_ROUTING_KEY", String::new());
    let error = pagerduty.deliver(&Alert::single(parse_error()), &empty).await.expect_err("empty");
    assert!(error.to_string().contains("routing key"), "{error}");
    assert!(quiet.received().is_empty());
    assert!(!format!("{pagerduty:?}").contains(ROUTING_KEY));
}

/// A `tracing` writer keeping everything in memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn neither_the_routing_key_nor_a_webhook_url_is_logged_even_at_trace_level() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Server::start(Answer::new(StatusCode::ACCEPTED, PD_ACCEPTED)).await;
    let pagerduty = pagerduty_channel(&server.url("/v2/enqueue"));
    let secrets = only("env:PD_ROUTING_KEY", ROUTING_KEY.into());
    pagerduty.deliver(&Alert::single(parse_error()), &secrets).await.expect("delivered");
    let slack_server = Server::start(Answer::new(StatusCode::OK, "ok")).await;
    let slack = slack_channel(json!({"credential_name": "env:SLACK_WEBHOOK_URL"}));
    let secrets = only("env:SLACK_WEBHOOK_URL", slack_server.url(SLACK_PATH));
    slack.deliver(&Alert::single(parse_error()), &secrets).await.expect("delivered");

    let text = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    assert!(text.contains("pagerduty event accepted"), "the capture works: {text}");
    assert!(text.contains("slack message delivered"), "{text}");
    assert!(!text.contains(ROUTING_KEY), "{text}");
    assert!(!text.contains("s3cr3tSlackT0ken"), "{text}");
}

#[test]
fn teams_and_slack_payload_builders_are_public_for_previews() {
    // The payload functions are what the channels send; a preview endpoint can reuse them.
    let message =
        intake_alerts::Message { title: "T".into(), text: String::new(), html: String::new() };
    let alert = Alert::single(AlertEvent::new(EventType::ImportFailed, Severity::Info, "s"));
    let slack_body = slack::payload(&alert, &message);
    assert_eq!(slack_body["blocks"].as_array().map(Vec::len), Some(2), "no empty section");
    let teams_body = teams::payload(&alert, &message);
    let blocks = &teams_body["attachments"][0]["content"]["body"];
    assert_eq!(blocks.as_array().map(Vec::len), Some(2), "no empty text block");
}
