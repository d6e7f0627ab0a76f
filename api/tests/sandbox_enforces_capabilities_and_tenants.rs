//! The sandbox enforces authentication, capabilities (`{resource}:list|read|create|update|
//! delete` → 403 `missing_capabilities`) and tenant isolation (another tenant's item → 404).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::*;
use intake_engine::m2m::jws::{self, JwsAlgorithm, SigningKey};
use serde_json::{Map, Value, json};

#[tokio::test]
async fn each_action_needs_its_capability_with_the_spec_body() {
    let reader = TestClient::new("reader", JwsAlgorithm::Es256, TENANT, &["players:read"]);
    let served = serve_clients(&[&reader]).await;
    let item = served.sandbox.insert(TENANT, "players", json!({"name": "Ada"}));
    let path = format!("/players/{}", item["_id"].as_str().unwrap());
    let token = served.token(&reader).await;

    let response = served.post(&token, "/players/", &json!({"name": "Bo"})).await;
    let body = json_with_status(response, 403).await;
    assert_eq!(
        body,
        json!({"detail": {"error": "missing_capabilities", "missing": ["players:create"]}})
    );

    for (method, missing) in [
        (reqwest::Method::PATCH, "players:update"),
        (reqwest::Method::PUT, "players:update"),
        (reqwest::Method::DELETE, "players:delete"),
    ] {
        let response = served
            .http
            .request(method.clone(), served.url(&path))
            .bearer_auth(&token)
            .header("If-Match", "*")
            .json(&json!({"name": "X"}))
            .send()
            .await
            .unwrap();
        let body = json_with_status(response, 403).await;
        assert_eq!(body["detail"]["missing"], json!([missing]), "{method}");
    }
    // Reading works; listing works with :read too (the spec's Quick Start lists with bookings:read).
    json_with_status(served.get(&token, &path).await, 200).await;
    json_with_status(served.get(&token, "/players/").await, 200).await;
    // Other resources: nothing.
    let body = json_with_status(served.get(&token, "/payments/").await, 403).await;
    assert_eq!(body["detail"]["missing"], json!(["payments:list"]));
    assert_eq!(served.sandbox.items(TENANT, "players").len(), 1);
}

#[tokio::test]
async fn a_token_carries_only_the_requested_scope() {
    let (served, client) = standard().await;
    let token = served.token_with_scope(&client, Some("players:list")).await;
    json_with_status(served.get(&token, "/players/").await, 200).await;
    let body = json_with_status(served.post(&token, "/players/", &json!({})).await, 403).await;
    assert_eq!(body["detail"]["missing"], json!(["players:create"]));
}

#[tokio::test]
async fn another_tenants_items_are_not_found_and_not_listed() {
    let (served, client) = standard().await;
    let caps = all_capabilities(&["players"]);
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let other = TestClient::new("other", JwsAlgorithm::Es256, OTHER_TENANT, &caps);
    let served = {
        drop(served);
        serve_clients(&[&client, &other]).await
    };
    let mine = served.token(&client).await;
    let theirs = served.token(&other).await;
    let item =
        json_with_status(served.post(&theirs, "/players/", &json!({"name": "Theirs"})).await, 201)
            .await;
    let path = format!("/players/{}", item["_id"].as_str().unwrap());
    let body = json_with_status(served.get(&mine, &path).await, 404).await;
    assert_eq!(body, json!({"detail": "Not Found"}));
    for method in [reqwest::Method::PATCH, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response = served
            .http
            .request(method.clone(), served.url(&path))
            .bearer_auth(&mine)
            .header("If-Match", "*")
            .json(&json!({"name": "Mine now"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method}");
    }
    let list = json_with_status(served.get(&mine, "/players/").await, 200).await;
    assert_eq!(list["total"], 0);
    assert_eq!(served.sandbox.items(OTHER_TENANT, "players")[0]["name"], "Theirs");
    json_with_status(served.get(&theirs, &path).await, 200).await;
}

#[tokio::test]
async fn an_x_tenant_id_of_another_tenant_is_403() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let ok = served
        .http
        .get(served.url("/players/"))
        .bearer_auth(&token)
        .header("X-Tenant-ID", TENANT)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = served
        .http
        .get(served.url("/players/"))
        .bearer_auth(&token)
        .header("X-Tenant-ID", OTHER_TENANT)
        .send()
        .await
        .unwrap();
    let body = json_with_status(wrong, 403).await;
    assert_eq!(body["detail"]["error"], "tenant_mismatch");
}

#[tokio::test]
async fn calls_without_a_valid_access_token_are_401() {
    let (served, client) = standard().await;
    let none = served.http.get(served.url("/players/")).send().await.unwrap();
    let body = json_with_status(none, 401).await;
    assert_eq!(body["detail"]["error"], "invalid_token");

    // An assertion is not an access token; a token signed by another ES512 key neither.
    let assertion = served.assertion(&client);
    assert_eq!(served.get(&assertion, "/players/").await.status(), 401);
    let forger = SigningKey::generate(JwsAlgorithm::Es512);
    let mut header = Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    let claims = json!({"iss": "intake-sandbox", "sub": "acme-integration", "tenant_id": TENANT,
        "scope": "players:list", "iat": now(), "exp": now() + 900, "jti": unique(), "gen": 0});
    let forged = jws::sign(header, &claims, &forger).unwrap();
    assert_eq!(served.get(&forged, "/players/").await.status(), 401);
    for auth in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not.a.token", "Token abc"] {
        let response = served
            .http
            .get(served.url("/players/"))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{auth}");
    }
    // Authentication comes before anything else, even for unknown paths and ids.
    let response =
        served.http.get(served.url("/players/ffffffffffffffffffffffff")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value =
        json_with_status(served.get(&served.token(&client).await, "/players/").await, 200).await;
    assert_eq!(body["total"], 0);
}
