//! The email channel against a real SMTP server on 127.0.0.1 (tests/support/smtp_sink.rs):
//! what arrives (subject, addresses, both alternative bodies, the X-Intake headers) over
//! STARTTLS and implicit TLS with AUTH PLAIN and LOGIN, and the typed errors for a wrong
//! password, a refused recipient, a busy or absent or silent server, a server without STARTTLS
//! and an untrusted certificate; then the config problems, each at its path.

#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use intake_alerts::channels::email::{EVENT_HEADER, SEVERITY_HEADER};
use intake_alerts::channels::{Channel, ChannelConfigError, http_client};
use intake_alerts::{
    Alert, AlertChannel, AlertEvent, ChannelSecret, DeliveryError, EventType, MessageRenderer,
    MessageTemplates, SecretError, Severity,
};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};
use smtp_sink::{AuthAttempt, Behaviour, PATIENCE, SmtpSink, TestCert, closed_port};

const USER: &str = "alerts@example.com";
const PASSWORD: &str = "s3cret-Smtp-pässword";

fn secrets(reference: &str) -> Result<ChannelSecret, SecretError> {
    match reference {
        "env:SMTP_PASSWORD" => Ok(ChannelSecret::new(PASSWORD)),
        "env:WRONG_PASSWORD" => Ok(ChannelSecret::new("not-the-password")),
        other => Err(SecretError { reference: other.into(), reason: "not set".into() }),
    }
}

fn item(config: Value) -> AlertChannel {
    serde_json::from_value(json!({"name": "ops-email", "type": "email", "config": config}))
        .expect("channel item")
}

fn build(config: Value) -> Channel {
    item(config).build(&http_client().expect("client")).expect("valid channel")
}

/// A STARTTLS config for the sink on `port`, trusting `cert`, logging in as [`USER`].
fn config(port: u16, cert: &TestCert) -> Value {
    json!({
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "from": "Intake Alerts <alerts@example.com>",
        "to": ["ops@example.com", "Data Team <data@example.com>"],
        "cc": ["audit@example.com"],
        "username": USER,
        "credential_name": "env:SMTP_PASSWORD",
        "ca_file": cert.ca_file(),
        "timeout_seconds": 10
    })
}

fn with(mut config: Value, key: &str, value: Value) -> Value {
    config[key] = value;
    config
}

fn login() -> Option<(String, String)> {
    Some((USER.to_owned(), PASSWORD.to_owned()))
}

fn event() -> AlertEvent {
    AlertEvent::new(EventType::ValidationFailed, Severity::Error, "3 of 10 rows <rejected>")
        .tag("tenant", "acme")
        .tag("template", "members")
        .subject("run-01J9Z")
        .link("https://intake.example/imports/runs/run-01J9Z")
}

async fn deliver(channel: &Channel, alert: &Alert) -> Result<(), DeliveryError> {
    tokio::time::timeout(PATIENCE, channel.deliver(alert, &secrets))
        .await
        .expect("the delivery ends in time")
}

/// Line endings as the renderer writes them (SMTP carries CRLF).
fn lf(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// Asserts the error and its `Debug` output hold no form of [`PASSWORD`].
fn assert_no_password(error: &DeliveryError) {
    let plain = BASE64.encode(format!("\0{USER}\0{PASSWORD}"));
    for text in [error.to_string(), format!("{error:?}")] {
        for secret in [PASSWORD.to_owned(), BASE64.encode(PASSWORD), plain.clone()] {
            assert!(!text.contains(&secret), "the password shows in: {text}");
        }
    }
}

#[tokio::test]
async fn an_alert_arrives_over_starttls_as_one_multipart_message_with_headers() {
    let cert = TestCert::new();
    let sink = SmtpSink::start(Behaviour {
        tls: Some(cert.acceptor.clone()),
        login: login(),
        ..Behaviour::default()
    })
    .await;
    let alert = Alert::single(event()).with_held_back(2);
    deliver(&build(config(sink.port, &cert)), &alert).await.expect("delivered");

    let sessions = sink.sessions();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert!(session.starttls && !session.implicit_tls, "{session:?}");
    assert_eq!(session.verbs[..3], ["EHLO", "STARTTLS", "EHLO"], "{session:?}");
    assert_eq!(session.encrypted_at_mail, Some(true), "TLS was up before MAIL");
    assert_eq!(
        session.auth,
        [AuthAttempt {
            mechanism: "PLAIN".into(),
            username: USER.into(),
            accepted: true,
            encrypted: true
        }]
    );
    assert_eq!(session.mail_from.as_deref(), Some("alerts@example.com"));
    assert_eq!(session.rcpt_to, ["ops@example.com", "data@example.com", "audit@example.com"]);

    let expected = MessageRenderer::new(&MessageTemplates::default())
        .expect("defaults")
        .render(&alert)
        .expect("render");
    let raw = session.data.clone().expect("a message was captured");
    let message = MessageParser::default().parse(&raw).expect("the message parses");
    assert_eq!(message.subject(), Some("[intake] ERROR: Rows were rejected (members)"));
    assert_eq!(message.subject(), Some(expected.title.as_str()));
    let from = message.from().and_then(|f| f.first()).expect("From");
    assert_eq!((from.name(), from.address()), (Some("Intake Alerts"), Some("alerts@example.com")));
    let to: Vec<_> = message.to().expect("To").iter().map(|a| (a.name(), a.address())).collect();
    assert_eq!(
        to,
        [(None, Some("ops@example.com")), (Some("Data Team"), Some("data@example.com"))]
    );
    let cc = message.cc().and_then(|c| c.first()).and_then(|a| a.address());
    assert_eq!(cc, Some("audit@example.com"));
    assert!(message.header("Bcc").is_none());
    assert!(message.message_id().is_some_and(|id| !id.is_empty()), "a Message-ID");
    assert!(message.date().is_some(), "a Date");
    let header = |name: &str| message.header(name).and_then(|v| v.as_text()).map(str::to_owned);
    assert_eq!(header(EVENT_HEADER).as_deref(), Some("validation_failed"));
    assert_eq!(header(SEVERITY_HEADER).as_deref(), Some("error"));

    let root = message.root_part().content_type().expect("Content-Type");
    assert_eq!((root.ctype(), root.subtype()), ("multipart", Some("alternative")));
    let kinds: Vec<String> = message.parts[1..]
        .iter()
        .map(|part| {
            let ct = part.content_type().expect("part Content-Type");
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
        })
        .collect();
    assert_eq!(kinds, ["text/plain", "text/html"]);
    let text = message.body_text(0).expect("text body");
    let html = message.body_html(0).expect("html body");
    assert_eq!(lf(&text).trim_end(), expected.text.trim_end());
    assert_eq!(lf(&html).trim_end(), expected.html.trim_end());
    assert!(text.contains("3 of 10 rows <rejected>"), "{text}");
    assert!(text.contains("2 earlier alert(s)"), "{text}");
    assert!(html.contains("3 of 10 rows &lt;rejected&gt;"), "{html}");
}

#[tokio::test]
async fn implicit_tls_with_auth_login_carries_a_digest_through_the_channels_own_templates() {
    let cert = TestCert::new();
    let sink = SmtpSink::start(Behaviour {
        implicit_tls: true,
        tls: Some(cert.acceptor.clone()),
        login: login(),
        auth_mechanisms: "LOGIN",
        ..Behaviour::default()
    })
    .await;
    let mut config = config(sink.port, &cert);
    config["security"] = json!("tls");
    config["title_template"] = json!("{{ digest|length }} held for {{ event.tags.tenant }}");
    config["text_template"] =
        json!("{% for e in digest %}{{ e.event_type }}: {{ e.summary }}\n{% endfor %}");
    config["html_template"] = json!("<p>{{ event.summary }}</p>");
    let digest = Alert::digest(vec![
        AlertEvent::new(EventType::UnmatchedFile, Severity::Warning, "x.csv").tag("tenant", "acme"),
        event(),
    ])
    .expect("digest");
    deliver(&build(config), &digest).await.expect("delivered");

    let session = &sink.sessions()[0];
    assert!(session.implicit_tls && !session.starttls, "{session:?}");
    assert!(!session.verbs.contains(&"STARTTLS".to_owned()));
    assert_eq!(session.encrypted_at_mail, Some(true));
    assert_eq!(session.auth.len(), 1);
    assert_eq!((session.auth[0].mechanism.as_str(), session.auth[0].accepted), ("LOGIN", true));

    let raw = session.data.clone().expect("captured");
    let message = MessageParser::default().parse(&raw).expect("parses");
    // The digest's event is its most severe one: the validation failure, tagged acme.
    assert_eq!(message.subject(), Some("2 held for acme"));
    let header = |name: &str| message.header(name).and_then(|v| v.as_text()).map(str::to_owned);
    assert_eq!(header(EVENT_HEADER).as_deref(), Some("validation_failed"));
    assert_eq!(header(SEVERITY_HEADER).as_deref(), Some("error"));
    let text = lf(&message.body_text(0).expect("text"));
    assert_eq!(text, "unmatched_file: x.csv\nvalidation_failed: 3 of 10 rows <rejected>\n");
    let html = message.body_html(0).expect("html");
    assert_eq!(lf(&html).trim_end(), "<p>3 of 10 rows &lt;rejected&gt;</p>");
}

#[tokio::test]
async fn a_wrong_password_is_a_permanent_rejection_that_never_shows_the_password() {
    let cert = TestCert::new();
    // The server knows another password, so the channel's (right) one is refused.
    let sink = SmtpSink::start(Behaviour {
        tls: Some(cert.acceptor.clone()),
        login: Some((USER.to_owned(), "the-servers-password".to_owned())),
        ..Behaviour::default()
    })
    .await;
    let error = deliver(&build(config(sink.port, &cert)), &Alert::single(event()))
        .await
        .expect_err("wrong password");
    let DeliveryError::Rejected { channel, server, code, message } = &error else {
        panic!("a rejection: {error:?}");
    };
    assert_eq!((channel.as_str(), *code), ("ops-email", 535));
    assert_eq!(server, &format!("127.0.0.1:{}", sink.port));
    assert!(message.contains("Authentication credentials invalid"), "{message}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("check username"), "{error}");
    assert_no_password(&error);
    let session = &sink.sessions()[0];
    assert_eq!(session.auth.len(), 1);
    assert!(!session.auth[0].accepted && session.auth[0].encrypted);
    assert_eq!(session.mail_from, None, "nothing is sent after a refused login");
}

#[tokio::test]
async fn a_refused_recipient_stops_the_message_and_is_not_retryable() {
    let cert = TestCert::new();
    let sink = SmtpSink::start(Behaviour {
        tls: Some(cert.acceptor.clone()),
        login: login(),
        refuse_recipients: vec![(
            "data@example.com".into(),
            550,
            "5.1.1 <data@example.com>: no such user",
        )],
        ..Behaviour::default()
    })
    .await;
    let error = deliver(&build(config(sink.port, &cert)), &Alert::single(event()))
        .await
        .expect_err("refused recipient");
    let DeliveryError::Rejected { code, message, .. } = &error else {
        panic!("a rejection: {error:?}");
    };
    assert_eq!(*code, 550);
    assert!(message.contains("no such user"), "{message}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("check the addresses"), "{error}");
    assert_no_password(&error);
    let session = &sink.sessions()[0];
    assert_eq!(session.rcpt_to, ["ops@example.com"]);
    assert!(session.data.is_none(), "no message is sent to anyone");
}

#[tokio::test]
async fn a_busy_server_and_a_transient_refusal_of_the_message_are_retryable() {
    let cert = TestCert::new();
    let busy = SmtpSink::start(Behaviour {
        greeting: (421, "4.3.2 sink.test busy, try again later"),
        ..Behaviour::default()
    })
    .await;
    let error =
        deliver(&build(config(busy.port, &cert)), &Alert::single(event())).await.expect_err("busy");
    let DeliveryError::Rejected { code, message, .. } = &error else {
        panic!("a rejection: {error:?}");
    };
    assert_eq!(*code, 421);
    assert!(message.contains("try again later"), "{message}");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("temporary"), "{error}");

    let full = SmtpSink::start(Behaviour {
        tls: Some(cert.acceptor.clone()),
        login: login(),
        data_reply: (452, "4.3.1 mailbox full"),
        ..Behaviour::default()
    })
    .await;
    let error = deliver(&build(config(full.port, &cert)), &Alert::single(event()))
        .await
        .expect_err("mailbox full");
    assert!(matches!(error, DeliveryError::Rejected { code: 452, .. }), "{error:?}");
    assert!(error.is_retryable());
    assert_no_password(&error);
}

#[tokio::test]
async fn a_refused_connection_and_a_silent_server_are_unreachable_and_retryable() {
    let cert = TestCert::new();
    let port = closed_port().await;
    let error = deliver(&build(config(port, &cert)), &Alert::single(event()))
        .await
        .expect_err("nothing listens");
    let DeliveryError::Unreachable { origin, timed_out, .. } = &error else {
        panic!("unreachable: {error:?}");
    };
    assert_eq!(origin, &format!("smtp://127.0.0.1:{port}"));
    assert!(!timed_out);
    assert!(error.is_retryable());

    let silent = SmtpSink::start(Behaviour { silent: true, ..Behaviour::default() }).await;
    let started = Instant::now();
    let config = with(config(silent.port, &cert), "timeout_seconds", json!(1));
    let error = deliver(&build(config), &Alert::single(event())).await.expect_err("silent");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(
        matches!(error, DeliveryError::Unreachable { timed_out: true, .. }),
        "a time-out: {error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn starttls_is_required_so_a_server_without_it_never_sees_the_password() {
    let cert = TestCert::new();
    let sink = SmtpSink::start(Behaviour {
        tls: Some(cert.acceptor.clone()),
        offer_starttls: false,
        login: login(),
        ..Behaviour::default()
    })
    .await;
    let error = deliver(&build(config(sink.port, &cert)), &Alert::single(event()))
        .await
        .expect_err("no STARTTLS");
    let DeliveryError::Smtp { reason, .. } = &error else { panic!("an SMTP error: {error:?}") };
    assert!(reason.contains("STARTTLS"), "{reason}");
    assert!(!error.is_retryable());
    let session = &sink.sessions()[0];
    assert!(session.auth.is_empty() && session.mail_from.is_none(), "{session:?}");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_before_anything_is_sent() {
    let cert = TestCert::new();
    let sink = SmtpSink::start(Behaviour {
        tls: Some(cert.acceptor.clone()),
        login: login(),
        ..Behaviour::default()
    })
    .await;
    let mut config = config(sink.port, &cert);
    config.as_object_mut().expect("object").remove("ca_file");
    let error = deliver(&build(config), &Alert::single(event())).await.expect_err("untrusted");
    let DeliveryError::Unreachable { reason, .. } = &error else { panic!("{error:?}") };
    assert!(reason.contains("certificate") && reason.contains("ca_file"), "{reason}");
    assert!(error.is_retryable());
    let session = &sink.sessions()[0];
    assert!(!session.starttls && session.auth.is_empty() && session.mail_from.is_none());
}

#[tokio::test]
async fn plain_text_to_a_relay_on_this_machine_works_without_login() {
    let sink = SmtpSink::start(Behaviour::default()).await;
    let config = json!({
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "security": "none",
        "from": "alerts@example.com",
        "to": ["ops@example.com"]
    });
    deliver(&build(config), &Alert::single(event())).await.expect("delivered");
    let session = &sink.sessions()[0];
    assert_eq!(session.encrypted_at_mail, Some(false));
    assert!(session.auth.is_empty());
    let raw = session.data.clone().expect("captured");
    let message = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(message.subject(), Some("[intake] ERROR: Rows were rejected (members)"));
}

#[tokio::test]
async fn a_credential_that_cannot_be_resolved_fails_before_connecting() {
    let cert = TestCert::new();
    let sink = SmtpSink::start(Behaviour::default()).await;
    let config = with(config(sink.port, &cert), "credential_name", json!("env:UNSET"));
    let error = deliver(&build(config), &Alert::single(event())).await.expect_err("no secret");
    assert!(matches!(error, DeliveryError::Secret { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert!(sink.sessions().is_empty(), "no connection was made");
}

fn problems(config: Value) -> Vec<(String, String)> {
    match item(config).channel_config() {
        Err(ChannelConfigError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| (p.path, p.message)).collect()
        }
        other => panic!("invalid: {other:?}"),
    }
}

#[test]
fn plain_text_to_another_host_is_a_config_problem() {
    let found = problems(json!({
        "smtp_host": "smtp.example.com",
        "security": "none",
        "from": "alerts@example.com",
        "to": ["ops@example.com"]
    }));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "config.security");
    assert!(found[0].1.contains("only for a relay on this machine"), "{}", found[0].1);
    assert!(found[0].1.contains("smtp.example.com"), "{}", found[0].1);
    let local = item(json!({
        "smtp_host": "localhost",
        "security": "none",
        "from": "alerts@example.com",
        "to": ["ops@example.com"]
    }));
    assert!(local.channel_config().is_ok());
}

#[test]
fn every_config_problem_is_reported_at_its_path() {
    let found = problems(json!({
        "smtp_host": "smtp://mail.example.com:587",
        "smtp_port": 0,
        "from": "Intake Alerts",
        "to": ["ops@example.com", "not an address", ""],
        "cc": ["audit@@example.com"],
        "username": "alerts",
        "timeout_seconds": 301,
        "html_template": "{% if %}"
    }));
    let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "config.smtp_host",
            "config.smtp_port",
            "config.from",
            "config.to[1]",
            "config.to[2]",
            "config.cc[0]",
            "config.credential_name",
            "config.timeout_seconds",
            "config.html_template",
        ],
        "{found:?}"
    );
    let empty =
        problems(json!({"smtp_host": "smtp.example.com", "from": "a@example.com", "to": []}));
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].0, "config.to");
    let unknown =
        item(json!({"smtp_host": "h", "from": "a@b.c", "to": ["d@e.f"], "password": "x"}))
            .channel_config()
            .expect_err("unknown field");
    assert!(unknown.to_string().contains("password"), "{unknown}");
    assert!(!unknown.to_string().contains("\"x\""), "{unknown}");
}

#[test]
fn defaults_and_a_ca_file_that_cannot_be_read_are_reported_when_built() {
    let parsed = item(json!({"smtp_host": "smtp.example.com", "from": "a@example.com",
                             "to": ["b@example.com"]}));
    let Ok(intake_alerts::ChannelConfig::Email(config)) = parsed.channel_config() else {
        panic!("an email config");
    };
    assert_eq!(config.security, intake_alerts::SmtpSecurity::Starttls);
    assert_eq!((config.port(), config.timeout_seconds), (587, 30));

    let missing = with(
        json!({"smtp_host": "smtp.example.com", "from": "a@example.com", "to": ["b@example.com"]}),
        "ca_file",
        json!("/nonexistent/intake-ca.pem"),
    );
    let error = item(missing).build(&http_client().expect("client")).expect_err("no CA file");
    let ChannelConfigError::Invalid { problems, .. } = &error else { panic!("{error:?}") };
    assert_eq!(problems[0].path, "config.ca_file");
    assert!(problems[0].message.contains("cannot read"), "{}", problems[0].message);

    let not_pem = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(not_pem.path(), "not a certificate").expect("write");
    let config = with(
        json!({"smtp_host": "smtp.example.com", "from": "a@example.com", "to": ["b@example.com"]}),
        "ca_file",
        json!(not_pem.path().display().to_string()),
    );
    let error = item(config).build(&http_client().expect("client")).expect_err("not PEM");
    let ChannelConfigError::Invalid { problems, .. } = &error else { panic!("{error:?}") };
    assert_eq!(problems[0].path, "config.ca_file");
    assert!(problems[0].message.contains("no PEM certificate"), "{}", problems[0].message);
}
