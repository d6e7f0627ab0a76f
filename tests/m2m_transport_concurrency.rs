//! The M2M client's concurrency bound, measured on the server side of a real socket: never more
//! than `max_in_flight` requests at once, and a request waiting out a `Retry-After` does not hold
//! a slot while it waits.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Injected, Platform, Proxy, object};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_flight_requests_never_exceed_max_in_flight() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    proxy.set_delay(Duration::from_millis(20));
    let client = platform.client_with(&proxy.url, |config, _| config.max_in_flight = 4);
    // Some requests fail and are retried, so the bound is checked across retries too.
    proxy.inject(Some("POST"), "/payments", 10, Injected::status(503, "{}"));
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                client.create("payments", &object(json!({"n": n})), &format!("c-{n}")).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let max = proxy.stats.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 4, "{max} requests were in flight at once");
    assert!(max >= 2, "the requests did not overlap at all ({max})");
    assert_eq!(platform.items("payments").len(), 64);
    assert_eq!(client.requests_sent(), 74);
}

#[tokio::test]
async fn a_request_waiting_out_retry_after_frees_its_slot() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client_with(&proxy.url, |config, _| config.max_in_flight = 1);
    client.tokens().token().await.unwrap();
    proxy.inject(
        Some("POST"),
        "/payments",
        1,
        Injected::with_header(429, "Retry-After", "2", "{}"),
    );
    let first = {
        let client = client.clone();
        tokio::spawn(async move { client.create("payments", &object(json!({"n": 1})), "a").await })
    };
    // Once the first request has had its 429, send a second one with the only slot.
    while proxy.stats.seen("/payments").is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.create("payments", &object(json!({"n": 2})), "b").await.unwrap();
    first.await.unwrap().unwrap();
    let seen = proxy.stats.seen("/payments");
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].headers["idempotency-key"], "b", "the second request waited for the first");
    assert_eq!(seen[2].headers["idempotency-key"], "a");
    assert!(seen[2].at - seen[0].at >= Duration::from_secs(2));
}
