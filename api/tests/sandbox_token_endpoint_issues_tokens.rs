//! The sandbox's token endpoint issues access tokens for valid `private_key_jwt` assertions
//! signed ES256, ES384 or ES512, with the spec's response shape and the requested scope.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use intake_api::sandbox::SandboxConfig;
use intake_engine::m2m::jws::{self, JwsAlgorithm, VerifyingKey};
use serde_json::{Value, json};

#[tokio::test]
async fn assertions_signed_es256_es384_and_es512_get_bearer_tokens() {
    for alg in JwsAlgorithm::ALL {
        let client = TestClient::new("acme", alg, TENANT, &["players:list", "players:read"]);
        let served = serve_clients(&[&client]).await;
        let assertion = served.assertion(&client);
        assert_eq!(jws::decode(&assertion).unwrap().algorithm(), Some(alg.as_str()));
        let response =
            served.token_request(Some("acme"), &assertion, Some("players:read"), None).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body = json_with_status(response, 200).await;
        assert_eq!(body["token_type"], "Bearer", "{alg}");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["scope"], "players:read");
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["access_token", "token_type", "expires_in", "scope"]);

        // The access token is an ES512 JWT carrying scope and tenant, signed by the sandbox.
        let token = body["access_token"].as_str().unwrap();
        let decoded = jws::decode(token).unwrap();
        assert_eq!(decoded.algorithm(), Some("ES512"));
        decoded.verify(&served.sandbox.token_verifying_key(), &[JwsAlgorithm::Es512]).unwrap();
        assert_eq!(decoded.claims["sub"], "acme");
        assert_eq!(decoded.claims["tenant_id"], TENANT);
        assert_eq!(decoded.claims["scope"], "players:read");
        let exp = decoded.claims["exp"].as_u64().unwrap();
        let iat = decoded.claims["iat"].as_u64().unwrap();
        assert_eq!(exp - iat, 900);
        assert!(decoded.claims.get("cnf").is_none());

        let listed = served.get(token, "/players/").await;
        assert_eq!(listed.status(), 200);
    }
}

#[tokio::test]
async fn no_or_empty_scope_grants_every_capability_of_the_client() {
    let client = TestClient::new("acme", JwsAlgorithm::Es256, TENANT, &["a:read", "b:create"]);
    let served = serve_clients(&[&client]).await;
    for scope in [None, Some(""), Some("  ")] {
        let response =
            served.token_request(Some("acme"), &served.assertion(&client), scope, None).await;
        let body = json_with_status(response, 200).await;
        assert_eq!(body["scope"], "a:read b:create", "scope {scope:?}");
    }
}

#[tokio::test]
async fn the_requested_scope_is_granted_exactly_once_each() {
    let client =
        TestClient::new("acme", JwsAlgorithm::Es256, TENANT, &["a:read", "b:create", "c:list"]);
    let served = serve_clients(&[&client]).await;
    let response = served
        .token_request(Some("acme"), &served.assertion(&client), Some("c:list a:read c:list"), None)
        .await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["scope"], "c:list a:read");
}

#[tokio::test]
async fn the_client_is_identified_by_iss_when_client_id_is_omitted() {
    let (served, client) = standard().await;
    let response = served.token_request(None, &served.assertion(&client), None, None).await;
    json_with_status(response, 200).await;
}

#[tokio::test]
async fn a_der_encoded_assertion_signature_is_accepted_as_a_compatibility_choice() {
    let (served, client) = standard().await;
    let assertion = served.assertion(&client);
    let (input, signature) = assertion.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let der = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
    assert_eq!(der.as_bytes()[0], 0x30);
    let der_assertion = format!("{input}.{}", URL_SAFE_NO_PAD.encode(der.as_bytes()));
    let response = served.token_request(Some(&client.client_id), &der_assertion, None, None).await;
    json_with_status(response, 200).await;
}

#[tokio::test]
async fn a_success_resets_the_consecutive_failure_count() {
    let (served, client) = standard().await;
    for round in 0..2 {
        for _ in 0..4 {
            let mut claims = served.claims(&client);
            claims["aud"] = json!("http://elsewhere/auth/token");
            let bad = served.sign(&client, &claims);
            let response = served.token_request(Some(&client.client_id), &bad, None, None).await;
            assert_eq!(response.status(), 400, "round {round}");
        }
        let ok = served.assertion(&client);
        let response = served.token_request(Some(&client.client_id), &ok, None, None).await;
        assert_eq!(response.status(), 200, "round {round}: a valid request after 4 failures");
    }
}

#[tokio::test]
async fn the_configured_public_url_is_the_audience() {
    let client = TestClient::new("acme", JwsAlgorithm::Es256, TENANT, &["a:read"]);
    let served = serve(SandboxConfig {
        clients: vec![client.registration()],
        public_url: Some("https://api.example.test/".into()),
        ..SandboxConfig::default()
    })
    .await;
    let mut claims = served.claims(&client);
    let with_host = served.sign(&client, &claims);
    let response = served.token_request(Some("acme"), &with_host, None, None).await;
    assert_eq!(json_with_status(response, 400).await["error"], "invalid_grant");
    claims["aud"] = json!("https://api.example.test/auth/token");
    claims["jti"] = json!(unique());
    let response =
        served.token_request(Some("acme"), &served.sign(&client, &claims), None, None).await;
    json_with_status(response, 200).await;
}

#[tokio::test]
async fn the_jwks_endpoint_publishes_the_access_token_key() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let jwks: Value = served
        .http
        .get(served.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["alg"], "ES512");
    let decoded = jws::decode(&token).unwrap();
    assert_eq!(decoded.header["kid"], jwk["kid"]);
    let key = VerifyingKey::from_jwk(
        &json!({"kty": "EC", "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]}),
    )
    .unwrap();
    decoded.verify(&key, &[JwsAlgorithm::Es512]).unwrap();
}

#[tokio::test]
async fn revoked_and_expired_access_tokens_are_refused_with_401() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    assert_eq!(served.get(&token, "/players/").await.status(), 200);
    let revoked = served.http.post(served.url("/_sandbox/revoke-tokens")).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let response = served.get(&token, "/players/").await;
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let body = json_with_status(response, 401).await;
    assert_eq!(body["detail"]["error"], "invalid_token");
    let fresh = served.token(&client).await;
    assert_eq!(served.get(&fresh, "/players/").await.status(), 200);

    let short = TestClient::new("short", JwsAlgorithm::Es256, TENANT, &["players:list"]);
    let served = serve(SandboxConfig {
        clients: vec![short.registration()],
        access_token_lifetime_seconds: 1,
        ..SandboxConfig::default()
    })
    .await;
    let token = served.token(&short).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let body = json_with_status(served.get(&token, "/players/").await, 401).await;
    assert!(body["detail"]["error_description"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn token_requests_are_not_counted_as_api_requests() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    served.token(&client).await;
    assert_eq!(served.sandbox.request_count(), 0);
    served.get(&token, "/players/").await;
    served.http.get(served.url("/_sandbox/stats")).send().await.unwrap();
    assert_eq!(served.sandbox.request_count(), 1);
    assert_eq!(served.sandbox.stats()["token_requests"], 2);
}

#[tokio::test]
async fn the_demo_fixture_client_gets_a_token_with_its_published_key() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sandbox");
    let config: SandboxConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("clients.json")).unwrap()).unwrap();
    let registration = config.clients[0].clone();
    let key_pem = std::fs::read_to_string(dir.join("demo-client.key.pem")).unwrap();
    let client = TestClient {
        client_id: registration.client_id.clone(),
        kid: registration.keys[0].kid.clone(),
        key: intake_engine::m2m::jws::SigningKey::from_pem(&key_pem).unwrap(),
        tenant_id: registration.tenant_id.clone(),
        capabilities: registration.capabilities.clone(),
    };
    let served = serve(config).await;
    let token = served.token(&client).await;
    json_with_status(served.post(&token, "/players/", &json!({"name": "Ada"})).await, 201).await;
}
