//! Security tests of the sandbox's token endpoint: every bad assertion is refused with the
//! spec's error code and status, and repeated failures lock the client.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use intake_engine::m2m::jws::{JwsAlgorithm, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Sends `assertion` for the standard client and returns (status, body).
async fn send(served: &Served, client: &TestClient, assertion: &str) -> (u16, Value) {
    let response = served.token_request(Some(&client.client_id), assertion, None, None).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Asserts the spec's error body: exactly `error` and `error_description`.
fn assert_error(status: u16, body: &Value, want_status: u16, want_error: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want_error, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Signs claims with a given header by hand (to set odd headers).
fn sign_with_header(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let mut map = header.as_object().unwrap().clone();
    map.remove("alg");
    intake_engine::m2m::jws::sign(map, claims, key).unwrap()
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 { Sha256::digest(key).to_vec() } else { key.to_vec() };
    k.resize(64, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(message).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().to_vec()
}

#[tokio::test]
async fn alg_none_is_invalid_client() {
    let (served, client) = standard().await;
    let header = json!({"alg": "none", "kid": client.kid, "typ": "JWT"});
    let token = format!("{}.{}.", b64(&header), b64(&served.claims(&client)));
    let (status, body) = send(&served, &client, &token).await;
    assert_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_invalid_client() {
    let (served, client) = standard().await;
    let public_pem = client.key.verifying_key().to_pem().unwrap();
    let header = json!({"alg": "HS256", "kid": client.kid, "typ": "JWT"});
    let input = format!("{}.{}", b64(&header), b64(&served.claims(&client)));
    let mac = hmac_sha256(public_pem.as_bytes(), input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac));
    let (status, body) = send(&served, &client, &token).await;
    assert_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn an_unknown_kid_is_invalid_client_with_the_spec_message() {
    let (served, client) = standard().await;
    let header = json!({"kid": "2026-04-expired", "typ": "JWT"});
    let token = sign_with_header(&header, &served.claims(&client), &client.key);
    let (status, body) = send(&served, &client, &token).await;
    assert_error(status, &body, 401, "invalid_client");
    assert_eq!(
        body["error_description"],
        "No active key with kid '2026-04-expired' found for client 'acme-integration'"
    );
}

#[tokio::test]
async fn a_kid_with_path_characters_is_invalid_client() {
    for kid in ["../x", "..\\x", "keys/../../etc/passwd", "/etc/passwd", "a/b", "x\u{0}y", ""] {
        let (served, client) = standard().await;
        let header = json!({"kid": kid, "typ": "JWT"});
        let token = sign_with_header(&header, &served.claims(&client), &client.key);
        let (status, body) = send(&served, &client, &token).await;
        assert_error(status, &body, 401, "invalid_client");
    }
}

#[tokio::test]
async fn a_missing_kid_is_invalid_client() {
    let (served, client) = standard().await;
    let token = sign_with_header(&json!({"typ": "JWT"}), &served.claims(&client), &client.key);
    let (status, body) = send(&served, &client, &token).await;
    assert_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn a_signature_by_another_key_or_over_a_changed_payload_is_invalid_client() {
    let (served, client) = standard().await;
    let impostor = SigningKey::generate(JwsAlgorithm::Es256);
    let header = json!({"kid": client.kid, "typ": "JWT"});
    let token = sign_with_header(&header, &served.claims(&client), &impostor);
    let (status, body) = send(&served, &client, &token).await;
    assert_error(status, &body, 401, "invalid_client");

    let genuine = served.assertion(&client);
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut claims = served.claims(&client);
    claims["exp"] = json!(now() + 250);
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let (status, body) = send(&served, &client, &tampered).await;
    assert_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn an_algorithm_other_than_the_keys_is_invalid_client() {
    let (served, client) = standard().await;
    // The client's key is P-256; a header claiming ES384 over a P-256 signature is refused.
    let header = json!({"alg": "ES384", "kid": client.kid, "typ": "JWT"});
    let genuine = served.assertion(&client);
    let signature = genuine.rsplit_once('.').unwrap().1;
    let token = format!("{}.{}.{signature}", b64(&header), b64(&served.claims(&client)));
    let (status, body) = send(&served, &client, &token).await;
    assert_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn an_expired_assertion_is_invalid_grant() {
    let (served, client) = standard().await;
    let mut claims = served.claims(&client);
    claims["iat"] = json!(now() - 400);
    claims["exp"] = json!(now() - 120);
    let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
    assert_error(status, &body, 400, "invalid_grant");
}

#[tokio::test]
async fn an_iat_in_the_future_is_invalid_grant() {
    let (served, client) = standard().await;
    let mut claims = served.claims(&client);
    claims["iat"] = json!(now() + 120);
    claims["exp"] = json!(now() + 240);
    let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
    assert_error(status, &body, 400, "invalid_grant");
}

#[tokio::test]
async fn an_exp_more_than_five_minutes_after_iat_is_invalid_grant() {
    let (served, client) = standard().await;
    let mut claims = served.claims(&client);
    claims["exp"] = json!(now() + 301);
    let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
    assert_error(status, &body, 400, "invalid_grant");
    // Exactly five minutes is allowed.
    let mut claims = served.claims(&client);
    claims["exp"] = json!(claims["iat"].as_u64().unwrap() + 300);
    let (status, _) = send(&served, &client, &served.sign(&client, &claims)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_missing_exp_iat_or_jti_is_invalid_grant() {
    for claim in ["exp", "iat", "jti"] {
        let (served, client) = standard().await;
        let mut claims = served.claims(&client);
        claims.as_object_mut().unwrap().remove(claim);
        let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
        assert_error(status, &body, 400, "invalid_grant");
    }
}

#[tokio::test]
async fn a_replayed_jti_is_invalid_grant() {
    let (served, client) = standard().await;
    let assertion = served.assertion(&client);
    let (status, _) = send(&served, &client, &assertion).await;
    assert_eq!(status, 200);
    let (status, body) = send(&served, &client, &assertion).await;
    assert_error(status, &body, 400, "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("already used"));

    // A new assertion reusing the jti is a replay too.
    let mut claims = served.claims(&client);
    claims["jti"] = jws_claim(&assertion, "jti");
    let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
    assert_error(status, &body, 400, "invalid_grant");
}

fn jws_claim(token: &str, name: &str) -> Value {
    intake_engine::m2m::jws::decode(token).unwrap().claims[name].clone()
}

#[tokio::test]
async fn a_wrong_audience_is_invalid_grant() {
    let (served, client) = standard().await;
    for aud in [
        json!("http://api.petanque.life/auth/token"),
        json!(format!("{}/auth/token/", served.base)),
        json!(served.base),
        json!(null),
    ] {
        let mut claims = served.claims(&client);
        claims["aud"] = aud.clone();
        let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
        assert_error(status, &body, 400, "invalid_grant");
        // Reset the failure streak so the loop never reaches the lockout.
        let (status, _) = send(&served, &client, &served.assertion(&client)).await;
        assert_eq!(status, 200, "{aud}");
    }
}

#[tokio::test]
async fn a_multi_valued_audience_is_invalid_grant() {
    let (served, client) = standard().await;
    let mut claims = served.claims(&client);
    claims["aud"] = json!([served.token_url()]);
    let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
    assert_error(status, &body, 400, "invalid_grant");
    claims["aud"] = json!([served.token_url(), "https://other.example/"]);
    claims["jti"] = json!(unique());
    let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
    assert_error(status, &body, 400, "invalid_grant");
}

#[tokio::test]
async fn a_wrong_issuer_or_subject_is_invalid_grant() {
    for claim in ["iss", "sub"] {
        let (served, client) = standard().await;
        let mut claims = served.claims(&client);
        claims[claim] = json!("someone-else");
        let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
        assert_error(status, &body, 400, "invalid_grant");
    }
}

#[tokio::test]
async fn a_scope_beyond_the_clients_capabilities_is_invalid_scope() {
    let (served, client) = standard().await;
    let response = served
        .token_request(
            Some(&client.client_id),
            &served.assertion(&client),
            Some("players:read admin:delete"),
            None,
        )
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_error(status, &body, 400, "invalid_scope");
    assert_eq!(
        body["error_description"],
        "Client 'acme-integration' does not have capability 'admin:delete'"
    );
}

#[tokio::test]
async fn an_unknown_client_is_invalid_client() {
    let (served, client) = standard().await;
    let response =
        served.token_request(Some("nobody"), &served.assertion(&client), None, None).await;
    let status = response.status().as_u16();
    assert_error(status, &response.json().await.unwrap(), 401, "invalid_client");
}

#[tokio::test]
async fn malformed_requests_are_invalid_request_with_the_spec_message() {
    let (served, client) = standard().await;
    let assertion = served.assertion(&client);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                ("client_assertion", &assertion),
            ],
            "client_assertion_type must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
            ],
            "grant_type must be 'client_credentials', got 'password'",
        ),
        (vec![("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER)], ""),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", "not.a.jws.at.all"),
            ],
            "",
        ),
    ];
    for (form, message) in cases {
        let response = served.http.post(served.token_url()).form(&form).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_error(status, &body, 400, "invalid_request");
        if !message.is_empty() {
            assert_eq!(body["error_description"], message);
        }
    }
    let json_body = served
        .http
        .post(served.token_url())
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
}

#[tokio::test]
async fn five_consecutive_failures_lock_the_client_for_fifteen_minutes() {
    let (served, client) = standard().await;
    for _ in 0..5 {
        let mut claims = served.claims(&client);
        claims["aud"] = json!("http://wrong/auth/token");
        let (status, body) = send(&served, &client, &served.sign(&client, &claims)).await;
        assert_error(status, &body, 400, "invalid_grant");
    }
    // Now even a valid assertion is refused with 429 and Retry-After.
    let response =
        served.token_request(Some(&client.client_id), &served.assertion(&client), None, None).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((890..=900).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");

    // Another client is not affected.
    let other = TestClient::new("other", JwsAlgorithm::Es384, TENANT, &["players:read"]);
    let served2 = serve_clients(&[&client, &other]).await;
    let (status, _) = send(&served2, &other, &served2.assertion(&other)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn failures_of_every_kind_count_towards_the_lockout() {
    let (served, client) = standard().await;
    let header = json!({"alg": "none", "kid": client.kid});
    let none = format!("{}.{}.", b64(&header), b64(&served.claims(&client)));
    let (s1, _) = send(&served, &client, &none).await;
    let unknown_kid =
        sign_with_header(&json!({"kid": "nope"}), &served.claims(&client), &client.key);
    let (s2, _) = send(&served, &client, &unknown_kid).await;
    let assertion = served.assertion(&client);
    let (s3, _) = send(&served, &client, &assertion).await;
    let (s4, _) = send(&served, &client, &assertion).await; // replay
    let (s5, _) = send(&served, &client, &assertion).await; // replay
    let response = served
        .token_request(Some(&client.client_id), &served.assertion(&client), Some("x:y"), None)
        .await;
    let s6 = response.status().as_u16();
    let (s7, _) = send(&served, &client, &served.assertion(&client)).await;
    assert_eq!([s1, s2, s3, s4, s5, s6, s7], [401, 401, 200, 400, 400, 400, 200]);
    // Three failures since the last success: two more lock it.
    for _ in 0..2 {
        let (status, _) = send(&served, &client, &assertion).await;
        assert_eq!(status, 400);
    }
    let (status, _) = send(&served, &client, &served.assertion(&client)).await;
    assert_eq!(status, 200, "only 2 failures after the last success");
    for _ in 0..5 {
        send(&served, &client, &assertion).await;
    }
    let (status, _) = send(&served, &client, &served.assertion(&client)).await;
    assert_eq!(status, 429);
}
