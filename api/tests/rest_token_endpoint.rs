//! The REST layer with its built-in token endpoint (`TokenAuthority` mounted next to
//! `rest::router`, its issuer trusted by the REST verifier), over a real socket: a registered
//! client gets a token with a signed assertion and calls a REST route with it; scopes beyond its
//! capabilities, repeated bad assertions (lockout) and rotated-out keys are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, Utc};
use common::{JWT_BEARER, TENANT, TestClient, now, unique};
use intake_api::auth::{AccessTokenVerifier, AuthoritySettings, TokenAuthority};
use intake_api::rest::{self, AppState};
use intake_api::{ClientKey, ClientRegistration};
use intake_engine::m2m::jws::{self, JwsAlgorithm, SigningKey};
use intake_engine::store::Store;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// The REST layer and the token endpoint on one socket; stops when dropped.
struct Server {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Server {
    /// Serves `clients` the way `intake api --clients` does: the issuer is the public URL, the
    /// audience too, tokens are Bearer only.
    async fn start(clients: Vec<ClientRegistration>) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.db").to_str().unwrap()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let authority = TokenAuthority::new(
            clients,
            SigningKey::generate(JwsAlgorithm::Es256),
            base.clone(),
            AuthoritySettings {
                audience: Some(base.clone()),
                public_url: Some(base.clone()),
                access_token_lifetime_seconds: 900,
                dpop: false,
                kid_prefix: "intake".into(),
            },
        );
        let mut verifier = AccessTokenVerifier::default();
        verifier.trust(authority.issuer());
        let app = rest::router(AppState::new(store, verifier)).merge(authority.router());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone().cancelled_owned();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop).await });
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        Server { base, http, shutdown, _dir: dir }
    }

    /// A valid assertion for `client`, signed with `key` under `kid`, with `changes` applied.
    fn assertion_with(
        &self,
        client_id: &str,
        kid: &str,
        key: &SigningKey,
        changes: Value,
    ) -> String {
        let now = now();
        let mut claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": format!("{}/auth/token", self.base),
            "jti": unique(),
            "iat": now,
            "exp": now + 120,
        });
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        let mut header = Map::new();
        header.insert("kid".into(), json!(kid));
        header.insert("typ".into(), json!("JWT"));
        jws::sign(header, &claims, key).unwrap()
    }

    /// Posts a token request for `client_id` with `assertion` and an optional scope.
    async fn token_request(
        &self,
        client_id: &str,
        assertion: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("client_id", client_id),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let url = format!("{}/auth/token", self.base);
        self.http.post(url).form(&form).send().await.unwrap()
    }

    /// A token for `client` (its own key), asserting the 200.
    async fn token(&self, client: &TestClient, scope: Option<&str>) -> String {
        let assertion = self.assertion_with(&client.client_id, &client.kid, &client.key, json!({}));
        let response = self.token_request(&client.client_id, &assertion, scope).await;
        let body = json_with_status(response, 200).await;
        assert_eq!(body["token_type"], "Bearer");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap()
    }
}

/// The JSON body of a response, asserting its status.
async fn json_with_status(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
}

fn templates_client() -> TestClient {
    TestClient::new(
        "acme-operator",
        JwsAlgorithm::Es256,
        TENANT,
        &["imports/templates:list", "imports/templates:read"],
    )
}

#[tokio::test]
async fn a_client_token_from_the_built_in_endpoint_is_accepted_by_the_rest_routes() {
    let client = templates_client();
    let server = Server::start(vec![client.registration()]).await;
    let token = server.token(&client, None).await;
    let body = json_with_status(server.get(&token, "/imports/templates").await, 200).await;
    assert_eq!(body["total"], 0, "{body}");
    // A narrower scope is granted as asked, and the REST layer enforces it.
    let narrow = server.token(&client, Some("imports/templates:read")).await;
    json_with_status(server.get(&narrow, "/imports/templates").await, 403).await;
    // The signing key is published.
    let jwks = server.http.get(format!("{}/.well-known/jwks.json", server.base)).send().await;
    let jwks = json_with_status(jwks.unwrap(), 200).await;
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
}

#[tokio::test]
async fn a_scope_beyond_the_client_capabilities_is_refused() {
    let client = templates_client();
    let server = Server::start(vec![client.registration()]).await;
    let assertion = server.assertion_with(&client.client_id, &client.kid, &client.key, json!({}));
    let response =
        server.token_request(&client.client_id, &assertion, Some("imports/templates:delete")).await;
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "invalid_scope", "{body}");
}

#[tokio::test]
async fn five_bad_assertions_lock_the_client_out_with_retry_after() {
    let client = templates_client();
    let server = Server::start(vec![client.registration()]).await;
    for _ in 0..5 {
        let bad = server.assertion_with(
            &client.client_id,
            &client.kid,
            &client.key,
            json!({"aud": "https://elsewhere.test/auth/token"}),
        );
        let body =
            json_with_status(server.token_request(&client.client_id, &bad, None).await, 400).await;
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    let good = server.assertion_with(&client.client_id, &client.kid, &client.key, json!({}));
    let response = server.token_request(&client.client_id, &good, None).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 =
        response.headers()["retry-after"].to_str().unwrap().parse().expect("seconds");
    assert!(retry_after > 0);
}

#[tokio::test]
async fn a_rotated_out_key_works_until_its_active_until_and_not_after() {
    let old_key = SigningKey::generate(JwsAlgorithm::Es256);
    let new_key = SigningKey::generate(JwsAlgorithm::Es384);
    let registration = |client_id: &str, old_until| ClientRegistration {
        client_id: client_id.into(),
        tenant_id: TENANT.into(),
        capabilities: vec!["imports/templates:list".into()],
        keys: vec![
            ClientKey {
                kid: "old".into(),
                public_key_pem: old_key.verifying_key().to_pem().unwrap(),
                active_until: Some(old_until),
            },
            ClientKey {
                kid: "new".into(),
                public_key_pem: new_key.verifying_key().to_pem().unwrap(),
                active_until: None,
            },
        ],
    };
    let server = Server::start(vec![
        registration("in-overlap", Utc::now() + Duration::hours(1)),
        registration("after-overlap", Utc::now() - Duration::seconds(1)),
    ])
    .await;

    // During the overlap both keys work.
    for kid in ["old", "new"] {
        let key = if kid == "old" { &old_key } else { &new_key };
        let assertion = server.assertion_with("in-overlap", kid, key, json!({}));
        let body =
            json_with_status(server.token_request("in-overlap", &assertion, None).await, 200).await;
        let token = body["access_token"].as_str().unwrap();
        json_with_status(server.get(token, "/imports/templates").await, 200).await;
    }

    // After it the old key is refused, saying why; the new one still works.
    let assertion = server.assertion_with("after-overlap", "old", &old_key, json!({}));
    let body =
        json_with_status(server.token_request("after-overlap", &assertion, None).await, 401).await;
    assert_eq!(body["error"], "invalid_client", "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("expired at"), "{description}");
    let assertion = server.assertion_with("after-overlap", "new", &new_key, json!({}));
    json_with_status(server.token_request("after-overlap", &assertion, None).await, 200).await;
}

#[tokio::test]
async fn a_dpop_bound_token_is_not_issued_where_routes_take_bearer_tokens_only() {
    let client = templates_client();
    let server = Server::start(vec![client.registration()]).await;
    let assertion = server.assertion_with(&client.client_id, &client.kid, &client.key, json!({}));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let response = server
        .http
        .post(format!("{}/auth/token", server.base))
        .header("DPoP", "a.b.c")
        .form(&form)
        .send()
        .await
        .unwrap();
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "invalid_request", "{body}");
}
