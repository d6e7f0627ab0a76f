//! End-to-end alerts: the built `intake serve` raises events from its imports and its SLA monitor,
//! routes them by the `/alert-routing-rules` in its state store, and delivers them through its
//! job queue to real receivers started here: an SMTP server (STARTTLS, AUTH, a self-signed
//! certificate trusted through `ca_file`), and HTTP receivers standing in for Slack and
//! PagerDuty. Every alert's outcome is stored in `/alerts`.

// Test code: a failed set-up step should panic right there.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "../alerts/tests/support/smtp_sink.rs"]
#[allow(dead_code)]
mod smtp_sink;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{Timelike, Utc};
use common::{
    SandboxProcess, ServeProcess, demo_issuer_token, repo, serve_config_base, wait_until,
};
use intake_engine::store::{Collection, ListQuery, Store};
use serde_json::{Value, json};
use smtp_sink::{Behaviour, SmtpSink, TestCert};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
const TIMEOUT: Duration = Duration::from_secs(120);
const SMTP_PASSWORD: &str = "smtp-pass-5f2c";
const PD_ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000000";

/// An HTTP receiver recording every POSTed JSON body, answering `status` with `body`.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start(status: StatusCode, answer: &'static str) -> Receiver {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let app = Router::new()
            .route(
                "/{*path}",
                post(move |State(bodies): State<Arc<Mutex<Vec<Value>>>>, body: Bytes| async move {
                    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    bodies.lock().unwrap().push(value);
                    (status, answer)
                }),
            )
            .with_state(bodies.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url: format!("http://{address}/hook/T000/B000/secret"), bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// The member template with `extra` fields, written into `dir`.
fn member_template(dir: &Path, extra: Value) -> PathBuf {
    let mut template: Value = serde_json::from_str(
        &fs::read_to_string(repo("fixtures/member-register/template.json")).unwrap(),
    )
    .unwrap();
    template.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let path = dir.join("members.json");
    fs::write(&path, template.to_string()).unwrap();
    path
}

fn write_config(dir: &Path, sandbox: &str, inbox: &Path, template: &Path) -> PathBuf {
    let config = format!(
        r#"{base}
[alerts]
timezone = "Europe/Stockholm"
monitor_interval_seconds = 1

[api]
listen = "127.0.0.1:0"
issuers = {issuers:?}
public_url = "https://intake.example.test"

[[sources]]
id = "inbox"
source_type = "watched_directory"
connection_config = {{ path = {inbox:?} }}
polling_interval_seconds = 1
event_driven = true
templates = [ {{ path = {template:?}, file_matcher = "member-*.csv" }} ]
"#,
        base = serve_config_base(sandbox),
        issuers = repo("fixtures/api/issuers.json"),
        inbox = inbox.display().to_string(),
        template = template.display().to_string(),
    );
    let path = dir.join("intake.toml");
    fs::write(&path, config).unwrap();
    path
}

/// Creates the alert channels and routing rules in the state store before `intake serve` starts
/// (what `POST /alert-channels` and `/alert-routing-rules` do through the REST layer).
fn seed(runtime: &tokio::runtime::Runtime, state: &Path, channels: &[Value], rules: &[Value]) {
    runtime.block_on(async {
        fs::create_dir_all(state.parent().unwrap()).unwrap();
        let store = Store::open(&state.display().to_string()).await.unwrap();
        let mut ids = std::collections::HashMap::new();
        for channel in channels {
            let created =
                store.create(Collection::AlertChannels, TENANT, channel.clone()).await.unwrap();
            ids.insert(channel["name"].as_str().unwrap().to_owned(), created.meta.id);
        }
        for rule in rules {
            let mut rule = rule.clone();
            let names: Vec<String> = serde_json::from_value(rule["channel_ids"].clone()).unwrap();
            rule["channel_ids"] = json!(names.iter().map(|n| ids[n].clone()).collect::<Vec<_>>());
            store.create(Collection::AlertRoutingRules, TENANT, rule).await.unwrap();
        }
        store.close().await;
    });
}

/// The stored alerts, oldest first.
fn stored_alerts(runtime: &tokio::runtime::Runtime, state: &Path) -> Vec<Value> {
    runtime.block_on(async {
        let store = Store::open(&state.display().to_string()).await.unwrap();
        let query = ListQuery { per_page: 100, ..ListQuery::new() };
        let page = store.list(Collection::Alerts, TENANT, &query).await.unwrap();
        store.close().await;
        page.items.iter().rev().map(|d| d.to_json()).collect()
    })
}

fn alerts_of<'a>(alerts: &'a [Value], event_type: &str, channel: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["event_type"] == event_type && a["channel_name"] == channel)
        .collect()
}

#[test]
fn rejected_rows_reach_email_and_slack_through_a_routing_rule() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cert = TestCert::new();
    let behaviour = Behaviour {
        tls: Some(cert.acceptor.clone()),
        login: Some(("intake".into(), SMTP_PASSWORD.into())),
        ..Behaviour::default()
    };
    let smtp = runtime.block_on(SmtpSink::start(behaviour));
    let slack = runtime.block_on(Receiver::start(StatusCode::OK, "ok"));
    let sandbox = SandboxProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir(&inbox).unwrap();
    let template = member_template(dir.path(), json!({}));
    let config = write_config(dir.path(), &sandbox.url, &inbox, &template);
    let state = dir.path().join("state/intake.sqlite");
    seed(
        &runtime,
        &state,
        &[
            json!({"name": "ops-email", "type": "email", "config": {
                "smtp_host": "localhost", "smtp_port": smtp.port, "security": "starttls",
                "ca_file": cert.ca_file(), "from": "intake <intake@example.com>",
                "to": ["ops@example.com"], "username": "intake",
                "credential_name": "env:TEST_SMTP_PASSWORD"
            }}),
            json!({"name": "ops-slack", "type": "slack",
                   "config": {"credential_name": "env:TEST_SLACK_WEBHOOK_URL"}}),
            json!({"name": "ops-unused", "type": "log"}),
        ],
        &[
            json!({"name": "rejections-to-ops", "priority": 10,
                   "event_types": ["validation_failed"], "severity": ["warning", "error"],
                   "tags": {"template": "Member and licence register"},
                   "channel_ids": ["ops-email", "ops-slack"]}),
            json!({"name": "other-template", "event_types": ["validation_failed"],
                   "severity": ["warning"], "tags": {"template": "another"},
                   "channel_ids": ["ops-unused"]}),
        ],
    );
    let env =
        [("TEST_SMTP_PASSWORD", SMTP_PASSWORD), ("TEST_SLACK_WEBHOOK_URL", slack.url.as_str())];
    let mut serve = ServeProcess::start_with_env(&config, dir.path(), 1, &env);
    fs::copy(repo("fixtures/member-register/input.csv"), inbox.join("member-register.csv"))
        .unwrap();

    wait_until(&mut serve, "the email and the Slack message", TIMEOUT, || {
        !slack.bodies().is_empty() && smtp.sessions().iter().any(|s| s.data.is_some())
    });
    let alerts = stored_alerts(&runtime, &state);
    let rejected = alerts_of(&alerts, "validation_failed", "ops-email");
    assert_eq!(rejected.len(), 1, "{alerts:#?}");
    let summary = rejected[0]["summary"].as_str().unwrap().to_owned();
    assert!(summary.starts_with("member-register.csv: "), "{summary}");
    assert!(summary.contains(" rows were rejected"), "{summary}");

    // The email: over STARTTLS, logged in, the rendered subject and both parts.
    let sessions = smtp.sessions();
    let session = sessions.iter().find(|s| s.data.is_some()).unwrap();
    assert!(session.starttls && session.encrypted_at_mail == Some(true), "{session:?}");
    assert_eq!(session.rcpt_to, ["ops@example.com"]);
    let data = session.data.clone().unwrap();
    let message = mail_parser::MessageParser::default().parse(&data).unwrap();
    assert_eq!(
        message.subject(),
        Some("[intake] WARNING: Rows were rejected (Member and licence register)")
    );
    let text = message.body_text(0).unwrap();
    assert!(text.contains(&summary), "{text}");
    let run_id = rejected[0]["subject"].as_str().unwrap();
    let link = format!("Details: https://intake.example.test/imports/runs/{run_id}");
    assert!(text.contains(&link), "{text}");
    assert!(text.contains("Review the rejected records"), "{text}");
    assert!(message.body_html(0).unwrap().contains("<h2>Rows were rejected</h2>"));
    assert!(!String::from_utf8_lossy(&data).contains(SMTP_PASSWORD));

    // The Slack message: the title as the fallback text, the summary in the section.
    let posted = slack.bodies();
    assert_eq!(posted.len(), 1, "{posted:#?}");
    assert_eq!(
        posted[0]["text"],
        "[intake] WARNING: Rows were rejected (Member and licence register)"
    );
    assert!(posted[0]["blocks"].to_string().contains("rows were rejected"), "{}", posted[0]);

    // Every outcome is stored: both deliveries sent; the import's other events went to the log
    // (no rule routes them), and the rule for another template matched nothing.
    wait_until(&mut serve, "both deliveries recorded as sent", TIMEOUT, || {
        let alerts = stored_alerts(&runtime, &state);
        ["ops-email", "ops-slack"].iter().all(|channel| {
            alerts_of(&alerts, "validation_failed", channel)
                .first()
                .is_some_and(|a| a["status"] == "sent" && a["attempts"] == 1)
        })
    });
    let alerts = stored_alerts(&runtime, &state);
    assert_eq!(alerts_of(&alerts, "import_succeeded", "log").len(), 1, "{alerts:#?}");
    assert!(alerts.iter().all(|a| a["channel_name"] != "ops-unused"), "{alerts:#?}");

    // The outcomes are listed by the REST layer, filterable.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stdout = fs::read_to_string(dir.path().join("serve-1.out")).unwrap();
    let rest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("intake serve: REST layer listening on "))
        .unwrap()
        .to_owned();
    let page: Value = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{rest}/alerts?event_type=validation_failed&status=sent"))
            .bearer_auth(demo_issuer_token("admin.imports.manage"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(page["total"], 2, "{page}");
    let mut channels: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["channel_name"].as_str())
        .collect();
    channels.sort();
    assert_eq!(channels, ["ops-email", "ops-slack"]);
    let status = serve.terminate(TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", serve.output());
    assert!(!serve.output().contains(SMTP_PASSWORD), "the password is never logged");
}

#[test]
fn a_missed_delivery_triggers_pagerduty_and_the_late_file_resolves_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pagerduty =
        runtime.block_on(Receiver::start(StatusCode::ACCEPTED, r#"{"status":"success"}"#));
    let sandbox = SandboxProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir(&inbox).unwrap();
    // One delivery expected every day at a second ~15 s from now (UTC), no tolerance: the window
    // closes while the test waits, with no file.
    let due = Utc::now() + chrono::Duration::seconds(15);
    let cron = format!("{} {} {} * * *", due.second(), due.minute(), due.hour());
    let template = member_template(
        dir.path(),
        json!({"schedule_expectation": {
            "cron": cron, "timezone": "UTC", "tolerance_minutes": 0, "severity": "critical",
            "alert_channels": ["ops-pagerduty"]
        }}),
    );
    let config = write_config(dir.path(), &sandbox.url, &inbox, &template);
    let state = dir.path().join("state/intake.sqlite");
    seed(
        &runtime,
        &state,
        &[json!({"name": "ops-pagerduty", "type": "pagerduty", "config": {
            "credential_name": "env:TEST_PD_ROUTING_KEY", "events_url": pagerduty.url
        }})],
        &[],
    );
    let env = [("TEST_PD_ROUTING_KEY", PD_ROUTING_KEY)];
    let mut serve = ServeProcess::start_with_env(&config, dir.path(), 1, &env);

    wait_until(&mut serve, "the sla_violation on PagerDuty", TIMEOUT, || {
        !pagerduty.bodies().is_empty()
    });
    let trigger = pagerduty.bodies()[0].clone();
    assert_eq!(trigger["event_action"], "trigger", "{trigger}");
    assert_eq!(trigger["routing_key"], PD_ROUTING_KEY);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["class"], "sla_violation");
    assert_eq!(trigger["payload"]["component"], "Member and licence register");
    let dedup_key = trigger["dedup_key"].as_str().unwrap().to_owned();
    assert!(dedup_key.starts_with("sla:"), "{dedup_key}");
    let summary = trigger["payload"]["custom_details"]["summary"].to_string();
    assert!(
        summary.contains("no file for template Member and licence register arrived"),
        "{summary}"
    );

    // The late file arrives: its run recovers the window and PagerDuty resolves the incident.
    fs::copy(repo("fixtures/member-register/input.csv"), inbox.join("member-register.csv"))
        .unwrap();
    wait_until(&mut serve, "the resolve on PagerDuty", TIMEOUT, || {
        pagerduty.bodies().iter().any(|b| b["event_action"] == "resolve")
    });
    let bodies = pagerduty.bodies();
    let resolve = bodies.iter().find(|b| b["event_action"] == "resolve").unwrap();
    assert_eq!(
        resolve,
        &json!({"routing_key": PD_ROUTING_KEY, "event_action": "resolve", "dedup_key": dedup_key})
    );
    // One violation for the one window however many times the monitor looked (every second).
    std::thread::sleep(Duration::from_secs(3));
    let triggers = pagerduty.bodies().iter().filter(|b| b["event_action"] == "trigger").count();
    assert_eq!(triggers, 1);
    let alerts = stored_alerts(&runtime, &state);
    let violations = alerts_of(&alerts, "sla_violation", "ops-pagerduty");
    let recoveries = alerts_of(&alerts, "sla_recovered", "ops-pagerduty");
    assert_eq!((violations.len(), recoveries.len()), (1, 1), "{alerts:#?}");
    assert_eq!(violations[0]["dedup_key"], dedup_key.as_str());
    assert_eq!(recoveries[0]["status"], "sent");
    let status = serve.terminate(TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", serve.output());
    assert!(!serve.output().contains(PD_ROUTING_KEY), "the routing key is never logged");
}
