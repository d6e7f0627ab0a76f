//! The alert dispatcher over a real state store and job queue, with a clock the test controls:
//! routing by stored rules, the per-channel rate limit, de-duplication and quiet hours stored as
//! outcomes, the quiet-hours digest handed over by `tick`, and deliveries through the queue to a
//! real HTTP receiver — retried while it answers 500 and failed with the reason once the
//! attempts run out, failed at once on a 401.

mod jobs_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Duration, TimeZone, Utc};
use intake_alerts::{AlertEvent, EventType, Severity};
use intake_engine::alerting::{Alerting, Links};
use intake_engine::jobs::{DeliverAlert, QueueConfig, Workers};
use intake_engine::store::{Collection, ListQuery, Store};
use jobs_support::{fast_config, open_queue, wait_until};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";

type Posts = Arc<Mutex<Vec<(String, Value)>>>;

/// A receiver answering `/ok` 204, `/fail` 500 and `/deny` 401, recording every body by path.
async fn receiver() -> (String, Posts) {
    let posts: Posts = Arc::default();
    let app = Router::new()
        .route(
            "/{path}",
            post(|State(posts): State<Posts>, Path(path): Path<String>, body: Bytes| async move {
                let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                posts.lock().expect("lock").push((path.clone(), value));
                match path.as_str() {
                    "ok" => StatusCode::NO_CONTENT,
                    "deny" => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }),
        )
        .with_state(posts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), posts)
}

fn at(minutes: i64) -> DateTime<Utc> {
    // 10:00 UTC is 11:00 in Stockholm (winter time).
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).single().expect("time")
        + Duration::minutes(minutes)
}

fn event(n: u32, severity: Severity) -> AlertEvent {
    AlertEvent::new(EventType::ValidationFailed, severity, format!("file {n}: rows rejected"))
        .tag("tenant", TENANT)
        .tag("template", "members")
        .subject(format!("run-{n}"))
}

async fn statuses(store: &Store, channel: &str) -> Vec<(String, String, u64)> {
    let query = ListQuery { per_page: 100, ..ListQuery::new() };
    let page = store.list(Collection::Alerts, TENANT, &query).await.expect("list");
    page.items
        .iter()
        .rev()
        .filter(|a| a.body["channel_name"] == channel)
        .map(|a| {
            (
                a.body["summary"].as_str().unwrap_or_default().to_owned(),
                a.body["status"].as_str().unwrap_or_default().to_owned(),
                a.body["held_back"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

fn status(list: &[(String, String, u64)]) -> Vec<&str> {
    list.iter().map(|(_, s, _)| s.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_gated_stored_and_delivered_through_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(&dir.path().join("state.sqlite").display().to_string()).await.expect("store");
    let queue = open_queue(&dir, QueueConfig { max_attempts: 2, ..fast_config() }).await;
    let secret = dir.path().join("hook-secret");
    std::fs::write(&secret, "s3cret").expect("secret");
    let (url, posts) = receiver().await;
    let webhook = |name: &str, path: &str, extra: Value| {
        let mut channel = json!({"name": name, "type": "webhook", "config": {
            "webhook_url": format!("{url}/{path}"),
            "credential_name": format!("file:{}", secret.display())
        }});
        if let (Some(c), Some(e)) = (channel.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        channel
    };
    let mut ids = Vec::new();
    for channel in [
        webhook("day", "ok", json!({"max_alerts_per_5min": 2})),
        webhook("night", "ok", json!({"quiet_hours_start": "10:30", "quiet_hours_end": "12:00"})),
        webhook("flaky", "fail", json!({})),
        webhook("denied", "deny", json!({})),
        webhook("asleep", "ok", json!({"is_active": false})),
    ] {
        let created = store.create(Collection::AlertChannels, TENANT, channel).await.expect("ch");
        ids.push(created.meta.id);
    }
    let rule = |name: &str, severity: Value, channels: &[&String]| {
        json!({"name": name, "event_types": ["validation_failed"], "severity": severity,
               "tags": {"template": "members"}, "channel_ids": channels})
    };
    let rules = [
        rule("day-and-night", json!(["warning", "critical"]), &[&ids[0], &ids[1]]),
        rule("failing", json!(["critical"]), &[&ids[2], &ids[3], &ids[4], &ids[0]]),
    ];
    for rule in rules {
        store.create(Collection::AlertRoutingRules, TENANT, rule).await.expect("rule");
    }
    let alerting = Arc::new(
        Alerting::new(store.clone(), queue.clone(), TENANT, "Europe/Stockholm", Links::default())
            .expect("alerting"),
    );

    // Raised with the test's clock: 11:00–11:06 Stockholm, inside "night"'s quiet hours.
    alerting.raise_at(event(1, Severity::Warning), &[], at(0)).await;
    alerting.raise_at(event(2, Severity::Warning), &[], at(1)).await;
    alerting.raise_at(event(3, Severity::Warning), &[], at(2)).await;
    alerting.raise_at(event(1, Severity::Warning), &[], at(3)).await;
    alerting.raise_at(event(4, Severity::Critical), &[], at(6)).await;
    // Another template's event matches no rule: the log channel.
    let other = AlertEvent::new(EventType::ParseError, Severity::Error, "x.csv: not CSV");
    alerting.raise_at(other, &[], at(7)).await;

    let day = statuses(&store, "day").await;
    assert_eq!(
        status(&day),
        ["queued", "queued", "suppressed", "duplicate", "queued"],
        "the third is over 2 per 5 minutes, the fourth repeats the first: {day:?}"
    );
    assert_eq!(day[4].2, 1, "the next alert sent says one was held back");
    let night = statuses(&store, "night").await;
    assert_eq!(status(&night), ["held", "held", "held", "duplicate", "queued"], "{night:?}");
    assert_eq!(status(&statuses(&store, "asleep").await), ["suppressed"]);
    assert_eq!(status(&statuses(&store, "log").await), ["sent"]);

    // The quiet hours end at 12:00 Stockholm: the digest of the held events is queued once.
    alerting.tick(at(59)).await;
    assert_eq!(statuses(&store, "night").await.len(), 5, "still quiet at 11:59");
    alerting.tick(at(61)).await;
    alerting.tick(at(62)).await;
    let night = statuses(&store, "night").await;
    assert_eq!(night.len(), 6, "{night:?}");
    assert_eq!(night[5].1, "queued");

    // Deliver through the queue.
    let stop = CancellationToken::new();
    let handler = {
        let alerting = alerting.clone();
        move |job: DeliverAlert| {
            let alerting = alerting.clone();
            async move { alerting.deliver(&job.alert_id).await }
        }
    };
    let workers = tokio::spawn(Workers::new(&queue).deliver_alert(2, handler).run(stop.clone()));
    wait_until("the deliveries and the given-up one", || async {
        alerting.tick(at(63)).await;
        let flaky = statuses(&store, "flaky").await;
        let posted = posts.lock().expect("lock").len();
        posted >= 8 && flaky.first().is_some_and(|f| f.1 == "failed")
    })
    .await;
    stop.cancel();
    workers.await.expect("join").expect("workers");

    let posts = posts.lock().expect("lock").clone();
    let ok: Vec<&Value> = posts.iter().filter(|(p, _)| p == "ok").map(|(_, b)| b).collect();
    // day: events 1, 2, 4; night: event 4 (critical, through the quiet hours) and the digest.
    assert_eq!(ok.len(), 5, "{posts:#?}");
    let held_back: Vec<u64> = ok.iter().filter_map(|b| b["held_back"].as_u64()).collect();
    assert!(held_back.contains(&1), "{ok:#?}");
    let digest = ok.iter().find(|b| b.get("digest").is_some()).expect("a digest was posted");
    let digested: Vec<&str> = digest["digest"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    assert_eq!(
        digested,
        ["file 1: rows rejected", "file 2: rows rejected", "file 3: rows rejected"]
    );
    assert_eq!(posts.iter().filter(|(p, _)| p == "fail").count(), 2, "two attempts");
    assert_eq!(posts.iter().filter(|(p, _)| p == "deny").count(), 1, "no retry of a 401");

    let store_list = |channel: &'static str| {
        let store = store.clone();
        async move {
            let query = ListQuery { per_page: 100, ..ListQuery::new() };
            let page = store.list(Collection::Alerts, TENANT, &query).await.expect("list");
            page.items
                .into_iter()
                .filter(move |a| a.body["channel_name"] == channel)
                .collect::<Vec<_>>()
        }
    };
    let flaky = store_list("flaky").await;
    let reason = flaky[0].body["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.starts_with("gave up after 2 attempts"), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    let denied = store_list("denied").await;
    assert_eq!(denied[0].body["status"], "failed");
    assert!(denied[0].body["reason"].as_str().unwrap_or_default().contains("HTTP 401"));
    assert_eq!(denied[0].body["attempts"], 1);
    let sent = |list: Vec<(String, String, u64)>| list.iter().filter(|s| s.1 == "sent").count();
    assert_eq!(sent(statuses(&store, "day").await), 3);
    assert_eq!(sent(statuses(&store, "night").await), 2);
    let all = store_list("day").await;
    assert!(all.iter().all(|a| !a.body.to_string().contains("s3cret")));
}
