//! Shared helpers for the sandbox tests: a sandbox served on a real socket, registered test
//! clients with their private keys, assertion signing and token requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use intake_api::sandbox::{ClientKey, ClientRegistration, Sandbox, SandboxConfig};
use intake_engine::m2m::jws::{self, JwsAlgorithm, SigningKey};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// The tenant of the main test client.
pub const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
/// Another tenant.
pub const OTHER_TENANT: &str = "0123456789abcdef01234567";
/// The jwt-bearer assertion type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A test client: id, key id and private key.
pub struct TestClient {
    pub client_id: String,
    pub kid: String,
    pub key: SigningKey,
    pub tenant_id: String,
    pub capabilities: Vec<String>,
}

impl TestClient {
    pub fn new(client_id: &str, alg: JwsAlgorithm, tenant: &str, capabilities: &[&str]) -> Self {
        TestClient {
            client_id: client_id.into(),
            kid: format!("{client_id}-key-1"),
            key: SigningKey::generate(alg),
            tenant_id: tenant.into(),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    pub fn registration(&self) -> ClientRegistration {
        ClientRegistration {
            client_id: self.client_id.clone(),
            tenant_id: self.tenant_id.clone(),
            capabilities: self.capabilities.clone(),
            keys: vec![ClientKey {
                kid: self.kid.clone(),
                public_key_pem: self.key.verifying_key().to_pem().unwrap(),
                active_until: None,
            }],
        }
    }
}

/// Every capability on `resources`.
pub fn all_capabilities(resources: &[&str]) -> Vec<String> {
    resources
        .iter()
        .flat_map(|r| ["list", "read", "create", "update", "delete"].map(|a| format!("{r}:{a}")))
        .collect()
}

/// A sandbox served on 127.0.0.1 on a free port; stops when dropped.
pub struct Served {
    pub sandbox: Sandbox,
    pub base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A fresh unique id.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

pub async fn serve(config: SandboxConfig) -> Served {
    // reqwest is built without a default TLS provider; the tests only speak plain HTTP, but the
    // client builder still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::try_new(config).expect("valid sandbox config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let sandbox = sandbox.clone();
        let shutdown = shutdown.clone();
        async move { sandbox.serve(listener, shutdown).await }
    });
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    Served { sandbox, base, http, shutdown, task: Some(task) }
}

/// A sandbox with `clients` and no faults.
pub async fn serve_clients(clients: &[&TestClient]) -> Served {
    serve(SandboxConfig {
        clients: clients.iter().map(|c| c.registration()).collect(),
        ..SandboxConfig::default()
    })
    .await
}

/// The main client (ES256, players/payments/bookings, TENANT) and a sandbox serving it.
pub async fn standard() -> (Served, TestClient) {
    let client = TestClient::new(
        "acme-integration",
        JwsAlgorithm::Es256,
        TENANT,
        &all_capabilities(&["players", "payments", "bookings"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let served = serve_clients(&[&client]).await;
    (served, client)
}

impl Served {
    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.base)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Valid assertion claims for `client`.
    pub fn claims(&self, client: &TestClient) -> Value {
        let now = now();
        json!({
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": self.token_url(),
            "jti": unique(),
            "iat": now,
            "exp": now + 120,
        })
    }

    /// Signs `claims` with `client`'s key and kid.
    pub fn sign(&self, client: &TestClient, claims: &Value) -> String {
        let mut header = Map::new();
        header.insert("kid".into(), json!(client.kid));
        header.insert("typ".into(), json!("JWT"));
        jws::sign(header, claims, &client.key).unwrap()
    }

    /// A valid assertion for `client`.
    pub fn assertion(&self, client: &TestClient) -> String {
        self.sign(client, &self.claims(client))
    }

    /// Posts a token request with `client_id`, `assertion` and optional scope and DPoP proof.
    pub async fn token_request(
        &self,
        client_id: Option<&str>,
        assertion: &str,
        scope: Option<&str>,
        dpop: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ];
        if let Some(id) = client_id {
            form.push(("client_id", id));
        }
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let mut request = self.http.post(self.token_url()).form(&form);
        if let Some(proof) = dpop {
            request = request.header("DPoP", proof);
        }
        request.send().await.unwrap()
    }

    /// A Bearer access token for `client` (all its capabilities).
    pub async fn token(&self, client: &TestClient) -> String {
        self.token_with_scope(client, None).await
    }

    pub async fn token_with_scope(&self, client: &TestClient, scope: Option<&str>) -> String {
        let assertion = self.assertion(client);
        let response = self.token_request(Some(&client.client_id), &assertion, scope, None).await;
        assert_eq!(response.status(), 200, "token request failed");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// GET with a Bearer token.
    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    /// POST JSON with a Bearer token.
    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.unwrap()
    }

    /// Stops the server and waits for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        task.await.unwrap()
    }
}

/// The JSON body of a response, asserting its status.
pub async fn json_with_status(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
}
pub mod rest;
