//! The sandbox's fault knobs, set at start or through the admin routes: latency, a fraction of
//! 503s, a fraction of 429s with Retry-After, dropped connections and a per-second rate limit.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::time::{Duration, Instant};

use common::*;
use intake_api::sandbox::{Faults, SandboxConfig};
use serde_json::{Value, json};

async fn put_faults(served: &Served, faults: &Value) -> reqwest::Response {
    served.http.put(served.url("/_sandbox/faults")).json(faults).send().await.unwrap()
}

/// Status codes of `n` list calls (0 for a connection error).
async fn statuses(served: &Served, token: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match served.http.get(served.url("/players/")).bearer_auth(token).send().await {
            Ok(r) => out.push(r.status().as_u16()),
            Err(_) => out.push(0),
        }
    }
    out
}

#[tokio::test]
async fn the_admin_route_reads_and_replaces_the_faults() {
    let (served, _client) = standard().await;
    let current: Value =
        served.http.get(served.url("/_sandbox/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!(current["error_rate"], 0.0);
    let wanted = json!({"latency_ms": 5, "error_rate": 0.1, "throttle_rate": 0.05, "retry_after_seconds": 2,
        "drop_rate": 0.01, "rate_limit_per_second": 1000});
    let response = put_faults(&served, &wanted).await;
    assert_eq!(response.status(), 200);
    let faults = served.sandbox.faults();
    assert_eq!(faults.latency_ms, 5);
    assert_eq!(faults.error_rate, 0.1);
    assert_eq!(faults.rate_limit_per_second, Some(1000));
    for bad in [
        json!({"error_rate": 2.0}),
        json!({"error_rate": 0.6, "drop_rate": 0.6}),
        json!({"nope": 1}),
        json!({"rate_limit_per_second": 0}),
    ] {
        let response = put_faults(&served, &bad).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    assert_eq!(served.sandbox.faults(), serde_json::from_value::<Faults>(wanted).unwrap());
    let stats: Value =
        served.http.get(served.url("/_sandbox/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["faults"]["latency_ms"], 5);
    assert!(stats["requests"].is_u64());
}

#[tokio::test]
async fn a_fraction_of_calls_is_answered_503_server_error() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    served.sandbox.set_faults(Faults { error_rate: 0.3, ..Faults::default() });
    let got = statuses(&served, &token, 300).await;
    let errors = got.iter().filter(|s| **s == 503).count();
    assert_eq!(errors + got.iter().filter(|s| **s == 200).count(), 300);
    // Binomial(300, 0.3): mean 90, sd ~8; this range fails with probability < 1e-6.
    assert!((50..=130).contains(&errors), "{errors} of 300");
    served.sandbox.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let response = served.get(&token, "/players/").await;
    let body = json_with_status(response, 503).await;
    assert_eq!(body["error"], "server_error");
    assert_eq!(served.sandbox.items(TENANT, "players").len(), 0);
}

#[tokio::test]
async fn a_fraction_of_calls_is_answered_429_with_retry_after() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    served.sandbox.set_faults(Faults {
        throttle_rate: 0.25,
        retry_after_seconds: 3,
        ..Faults::default()
    });
    let got = statuses(&served, &token, 300).await;
    let throttled = got.iter().filter(|s| **s == 429).count();
    assert!((40..=115).contains(&throttled), "{throttled} of 300");
    served.sandbox.set_faults(Faults {
        throttle_rate: 1.0,
        retry_after_seconds: 3,
        ..Faults::default()
    });
    let response = served.post(&token, "/players/", &json!({"name": "x"})).await;
    assert_eq!(response.headers()["retry-after"], "3");
    json_with_status(response, 429).await;
    assert!(served.sandbox.items(TENANT, "players").is_empty(), "a 429 writes nothing");
}

#[tokio::test]
async fn a_dropped_call_closes_the_connection_without_any_status() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    served.sandbox.set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    for _ in 0..10 {
        let result = served.http.get(served.url("/players/")).bearer_auth(&token).send().await;
        let error = result.expect_err("no response expected");
        assert!(error.status().is_none(), "{error:?}");
        assert!(!error.is_timeout(), "{error:?}");
    }
    let stats = served.sandbox.stats();
    let drops = stats["dropped_before_write"].as_u64().unwrap()
        + stats["dropped_after_write"].as_u64().unwrap();
    assert_eq!(drops, 10);
    // The token endpoint and the admin routes keep working.
    served.token(&client).await;
    let response = put_faults(&served, &json!({})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served.get(&token, "/players/").await.status(), 200);
}

#[tokio::test]
async fn the_rate_limit_answers_429_beyond_the_calls_per_second() {
    let client = TestClient::new(
        "acme",
        intake_engine::m2m::jws::JwsAlgorithm::Es256,
        TENANT,
        &["players:list"],
    );
    let served = serve(SandboxConfig {
        clients: vec![client.registration()],
        faults: Faults { rate_limit_per_second: Some(5), ..Faults::default() },
        ..SandboxConfig::default()
    })
    .await;
    let token = served.token(&client).await;
    let mut limited = None;
    for _ in 0..20 {
        let response = served.get(&token, "/players/").await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("20 quick calls exceed 5 per second");
    assert_eq!(response.headers()["retry-after"], "1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(served.get(&token, "/players/").await.status(), 200);
    assert!(served.sandbox.stats()["rate_limited"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn latency_is_added_to_every_api_call() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    served.sandbox.set_faults(Faults { latency_ms: 150, ..Faults::default() });
    let started = Instant::now();
    assert_eq!(served.get(&token, "/players/").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn the_token_endpoint_is_spared_unless_included() {
    let (served, client) = standard().await;
    served.sandbox.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    served.token(&client).await;
    served.sandbox.set_faults(Faults {
        error_rate: 1.0,
        include_token_endpoint: true,
        ..Faults::default()
    });
    let response =
        served.token_request(Some(&client.client_id), &served.assertion(&client), None, None).await;
    assert_eq!(json_with_status(response, 503).await["error"], "server_error");
}

#[tokio::test]
async fn serve_returns_when_shutdown_is_cancelled() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let base = served.base.clone();
    served.stop().await.unwrap();
    let http = reqwest::Client::new();
    let result = http.get(format!("{base}/players/")).bearer_auth(&token).send().await;
    assert!(result.is_err(), "nothing listens after shutdown");
}
