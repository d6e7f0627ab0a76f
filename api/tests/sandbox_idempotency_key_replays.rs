//! `Idempotency-Key` on the sandbox: a retried write (for instance after its response was lost
//! with the connection) replays the first answer instead of writing twice.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::*;
use intake_api::sandbox::Faults;
use intake_engine::m2m::jws::JwsAlgorithm;
use serde_json::{Value, json};

async fn post_with_key(served: &Served, token: &str, key: &str, body: &Value) -> reqwest::Response {
    served
        .http
        .post(served.url("/payments/"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_response_without_a_second_record() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let body = json!({"reference": "R1", "amount": 10});
    let first = post_with_key(&served, &token, "row-1", &body).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_etag = first.headers()["etag"].clone();
    let first_body = json_with_status(first, 201).await;
    // Key order and spacing of the JSON do not matter.
    let reordered = json!({"amount": 10, "reference": "R1"});
    let second = post_with_key(&served, &token, "row-1", &reordered).await;
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["etag"], first_etag);
    assert_eq!(json_with_status(second, 201).await, first_body);
    assert_eq!(served.sandbox.items(TENANT, "payments").len(), 1);
    assert_eq!(served.sandbox.stats()["idempotent_replays"], 1);

    // Without a key, the same body creates another record.
    json_with_status(served.post(&token, "/payments/", &body).await, 201).await;
    assert_eq!(served.sandbox.items(TENANT, "payments").len(), 2);
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_422() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    json_with_status(post_with_key(&served, &token, "k", &json!({"amount": 1})).await, 201).await;
    let response = post_with_key(&served, &token, "k", &json!({"amount": 2})).await;
    let body = json_with_status(response, 422).await;
    assert_eq!(body["detail"]["error"], "idempotency_key_reused");
    let other_resource = served
        .http
        .post(served.url("/players/"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "k")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(other_resource.status(), 422);
    assert_eq!(served.sandbox.items(TENANT, "payments").len(), 1);
}

#[tokio::test]
async fn keys_are_scoped_to_the_tenant() {
    let caps = all_capabilities(&["payments"]);
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let a = TestClient::new("a", JwsAlgorithm::Es256, TENANT, &caps);
    let b = TestClient::new("b", JwsAlgorithm::Es256, OTHER_TENANT, &caps);
    let served = serve_clients(&[&a, &b]).await;
    let (ta, tb) = (served.token(&a).await, served.token(&b).await);
    let body = json!({"amount": 1});
    let x = json_with_status(post_with_key(&served, &ta, "same", &body).await, 201).await;
    let y = json_with_status(post_with_key(&served, &tb, "same", &body).await, 201).await;
    assert_ne!(x["_id"], y["_id"]);
    assert_eq!(y["tenant_id"], OTHER_TENANT);
}

#[tokio::test]
async fn a_retried_patch_with_its_key_replays_instead_of_failing_412() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let created = served.post(&token, "/payments/", &json!({"amount": 1})).await;
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    let item = json_with_status(created, 201).await;
    let path = format!("/payments/{}", item["_id"].as_str().unwrap());
    let send = || {
        served
            .http
            .patch(served.url(&path))
            .bearer_auth(&token)
            .header("If-Match", &etag)
            .header("Idempotency-Key", "patch-1")
            .json(&json!({"amount": 2}))
            .send()
    };
    let first = json_with_status(send().await.unwrap(), 200).await;
    let again = send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json_with_status(again, 200).await, first);
}

#[tokio::test]
async fn creates_whose_connection_drops_are_written_once_when_retried_with_their_key() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let rows = 40;
    let mut dropped = 0;
    for row in 0..rows {
        let key = format!("import-1-row-{row}");
        let body = json!({"reference": format!("R{row}"), "amount": row});
        // First attempt: the connection is dropped, before or after the write (half each).
        served.sandbox.set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
        let lost = served
            .http
            .post(served.url("/payments/"))
            .bearer_auth(&token)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        let error = lost.expect_err("a dropped connection gives no response");
        assert!(!error.is_status(), "{error}");
        dropped += 1;
        // The retry, with the same key, gets the record exactly once.
        served.sandbox.set_faults(Faults::default());
        let retry = post_with_key(&served, &token, &key, &body).await;
        json_with_status(retry, 201).await;
    }
    let items = served.sandbox.items(TENANT, "payments");
    assert_eq!(items.len(), rows, "none missing, none twice");
    let stats = served.sandbox.stats();
    let after = stats["dropped_after_write"].as_u64().unwrap();
    let before = stats["dropped_before_write"].as_u64().unwrap();
    assert_eq!(after + before, dropped);
    assert!(after > 0 && before > 0, "both kinds of drop happen: {stats}");
    assert_eq!(stats["idempotent_replays"].as_u64().unwrap(), after);
}
