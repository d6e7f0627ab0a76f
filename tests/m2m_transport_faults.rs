//! The M2M client under faults, against the sandbox over real sockets: 429 waits `Retry-After`
//! (seconds or an HTTP date) and not less, 5xx, timeouts and dropped connections are retried to
//! success, retries run out as `Exhausted`, and a run under the sandbox's random faults ends with
//! exactly the expected records — none missing, none twice.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{Injected, Platform, Proxy, object};
use intake_api::sandbox::Faults;
use intake_engine::m2m::{ApiError, ListQuery};
use serde_json::json;

#[tokio::test]
async fn a_429_waits_retry_after_seconds_then_succeeds() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client(&proxy.url);
    proxy.inject(
        Some("POST"),
        "/payments",
        1,
        Injected::with_header(429, "Retry-After", "2", r#"{"detail":"slow down"}"#),
    );
    client.create("payments", &object(json!({"n": 1})), "k-429").await.unwrap();
    let seen = proxy.stats.seen("/payments");
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}, before Retry-After");
    assert_eq!(platform.items("payments").len(), 1);
}

#[tokio::test]
async fn a_429_with_an_http_date_waits_until_that_date() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client(&proxy.url);
    client.tokens().token().await.unwrap();
    let until = SystemTime::now() + Duration::from_secs(2);
    let date = httpdate::fmt_http_date(until);
    proxy.inject(None, "/payments", 1, Injected::with_header(429, "Retry-After", &date, "{}"));
    client.list("payments", &ListQuery::default()).await.unwrap();
    let seen = proxy.stats.seen("/payments");
    assert_eq!(seen.len(), 2);
    // The retry came no earlier than the date (which has whole seconds).
    let date_secs = until.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let retried = seen[1].wall.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert!(retried >= Duration::from_secs(date_secs), "retried at {retried:?}, before {date}");
}

#[tokio::test]
async fn server_errors_are_retried_to_success() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client(&proxy.url);
    proxy.inject(
        Some("POST"),
        "/payments",
        2,
        Injected::status(503, r#"{"error":"server_error"}"#),
    );
    proxy.inject(Some("POST"), "/payments", 1, Injected::status(500, "oops"));
    let created = client.create("payments", &object(json!({"n": 1})), "k-5xx").await.unwrap();
    assert_eq!(client.requests_sent(), 4);
    assert_eq!(platform.items("payments").len(), 1);
    assert_eq!(platform.items("payments")[0]["_id"], created.id.as_str());
}

#[tokio::test]
async fn dropped_connections_are_retried_to_success() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client(&proxy.url);
    proxy.inject(Some("POST"), "/payments", 2, Injected::Drop);
    client.create("payments", &object(json!({"n": 1})), "k-drop").await.unwrap();
    assert_eq!(proxy.stats.seen("/payments").len(), 3);
    assert_eq!(platform.items("payments").len(), 1);
}

#[tokio::test]
async fn a_timed_out_create_is_retried_without_a_duplicate() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client_with(&proxy.url, |config, _| {
        config.request_timeout = Duration::from_millis(300);
    });
    // The first attempt is held past the client's timeout and then still reaches the sandbox,
    // after the retry has created the item: the shared Idempotency-Key makes it a replay.
    proxy.inject(Some("POST"), "/payments", 1, Injected::Slow(Duration::from_millis(1000)));
    client.create("payments", &object(json!({"n": 1})), "k-slow").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let seen = proxy.stats.seen("/payments");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["idempotency-key"], "k-slow");
    assert_eq!(seen[1].headers["idempotency-key"], "k-slow");
    assert_eq!(platform.items("payments").len(), 1, "the late first attempt duplicated the row");
}

#[tokio::test]
async fn retries_run_out_as_exhausted() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client_with(&proxy.url, |config, _| config.max_attempts = 3);
    proxy.inject(None, "/payments", 100, Injected::status(502, "bad gateway"));
    let err = client.list("payments", &ListQuery::default()).await.unwrap_err();
    let ApiError::Exhausted { attempts, last } = &err else { panic!("{err:?}") };
    assert_eq!((*attempts, last.as_str()), (3, "HTTP 502"));
    assert_eq!(client.requests_sent(), 3);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn timeouts_count_as_attempts_and_say_so() {
    let platform = Platform::start().await;
    let client = platform.client_with(&platform.url, |config, _| {
        config.request_timeout = Duration::from_millis(100);
        config.max_attempts = 2;
    });
    client.tokens().token().await.unwrap();
    platform.set_faults(Faults { latency_ms: 400, ..Faults::default() });
    let err = client.list("payments", &ListQuery::default()).await.unwrap_err();
    let ApiError::Exhausted { attempts: 2, last } = &err else { panic!("{err:?}") };
    assert!(last.contains("timed out"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_under_random_faults_ends_with_exactly_the_expected_records() {
    let platform = Platform::start().await;
    platform.set_faults(Faults {
        error_rate: 0.10,
        throttle_rate: 0.05,
        retry_after_seconds: 0,
        drop_rate: 0.05,
        ..Faults::default()
    });
    let client = platform.client_with(&platform.url, |config, _| {
        config.max_attempts = 20;
        config.max_in_flight = 16;
    });
    let rows = 300;
    let tasks: Vec<_> = (0..rows)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .create("payments", &object(json!({"row": n})), &format!("run-1/row-{n}"))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut counts = BTreeMap::new();
    for item in platform.items("payments") {
        *counts.entry(item["row"].as_u64().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), rows as usize, "rows missing");
    assert!(counts.values().all(|c| *c == 1), "rows written twice: {counts:?}");
    let stats = platform.sandbox.stats();
    assert!(stats["injected_errors"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["dropped_after_write"].as_u64().unwrap() > 0, "{stats}");
    assert!(client.requests_sent() > rows);
}

#[tokio::test]
async fn the_sandbox_rate_limit_slows_a_run_without_failing_it() {
    let platform = Platform::start().await;
    platform.set_faults(Faults { rate_limit_per_second: Some(20), ..Faults::default() });
    let client = platform.client(&platform.url);
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                client.create("payments", &object(json!({"row": n})), &format!("rl-{n}")).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(platform.items("payments").len(), 50);
    assert!(platform.sandbox.stats()["rate_limited"].as_u64().unwrap() > 0);
}
