//! The REST layer served on a real socket over a fresh SQLite state store, trusting a test
//! issuer whose tokens the tests mint with any tenant and capabilities. Self-contained, so the
//! binary crate's tests include it too (`#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use intake_api::auth::{AccessTokenVerifier, Issuer};
use intake_api::rest::{self, AppState};
use intake_engine::m2m::jws::{self, JwsAlgorithm, SigningKey};
use intake_engine::store::Store;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// The test issuer's `iss`.
pub const ISSUER: &str = "https://issuer.test";
/// The audience the REST layer is configured with.
pub const AUDIENCE: &str = "intake-rest";
/// The test issuer's key id.
pub const KID: &str = "issuer-key-1";

/// Every capability on every REST resource, without the admin one.
pub fn every_capability() -> Vec<String> {
    let mut out = Vec::new();
    for resource in [
        "imports/templates",
        "imports/sources",
        "alert-channels",
        "alert-routing-rules",
        "rejected-records",
    ] {
        for action in ["list", "read", "create", "update", "delete"] {
            out.push(format!("{resource}:{action}"));
        }
    }
    out.extend(["imports/runs:list".to_owned(), "imports/runs:read".to_owned()]);
    out
}

/// A REST server on 127.0.0.1; stops when dropped.
pub struct RestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Store,
    key: SigningKey,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for RestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl RestServer {
    /// Starts a server over a new store.
    pub async fn start() -> RestServer {
        RestServer::start_with(|_| {}).await
    }

    /// Like [`RestServer::start`], after `adjust` has changed the server's state (platform
    /// clients, a job queue, limits).
    pub async fn start_with(adjust: impl FnOnce(&mut AppState)) -> RestServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.db").to_str().unwrap()).await.unwrap();
        let key = SigningKey::generate(JwsAlgorithm::Es256);
        let mut verifier = AccessTokenVerifier::default();
        verifier.trust(Issuer::new(
            ISSUER,
            Some(AUDIENCE.to_owned()),
            vec![(KID.to_owned(), key.verifying_key())],
            vec![JwsAlgorithm::Es256],
        ));
        let mut state = AppState::new(store.clone(), verifier);
        adjust(&mut state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move { rest::serve(listener, state, stop.cancelled_owned()).await });
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        RestServer { base, http, store, key, shutdown, _dir: dir }
    }

    /// A valid access token for `tenant` with `scopes`.
    pub fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        self.token_with_claims(&json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "test-client",
            "client_id": "test-client",
            "tenant_id": tenant,
            "scope": scopes.join(" "),
            "iat": now,
            "exp": now + 300,
            "jti": format!("{now}-{}", rand_suffix()),
        }))
    }

    /// A token for `tenant` with every REST capability (not the admin one).
    pub fn full_token(&self, tenant: &str) -> String {
        let scopes = every_capability();
        self.token(tenant, &scopes.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A token with exactly `claims`, signed by the test issuer's key.
    pub fn token_with_claims(&self, claims: &Value) -> String {
        let mut header = Map::new();
        header.insert("typ".into(), json!("JWT"));
        header.insert("kid".into(), json!(KID));
        jws::sign(header, claims, &self.key).unwrap()
    }

    /// A directory that lives as long as the server (for queue files and the like).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with a Bearer token, an optional JSON body and `If-Match`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(tag) = if_match {
            request = request.header("If-Match", tag);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, token, None, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, token, Some(body), None).await
    }

    pub async fn patch(
        &self,
        token: &str,
        path: &str,
        body: &Value,
        etag: Option<&str>,
    ) -> reqwest::Response {
        self.send(reqwest::Method::PATCH, path, token, Some(body), etag).await
    }

    pub async fn put(
        &self,
        token: &str,
        path: &str,
        body: &Value,
        etag: Option<&str>,
    ) -> reqwest::Response {
        self.send(reqwest::Method::PUT, path, token, Some(body), etag).await
    }

    pub async fn delete(&self, token: &str, path: &str, etag: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, token, None, etag).await
    }

    /// Creates an item (201 expected) and returns it with its ETag.
    pub async fn create(&self, token: &str, path: &str, body: &Value) -> (Value, String) {
        let response = self.post(token, path, body).await;
        let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 201, "create {path}: {text}");
        (serde_json::from_str(&text).unwrap(), etag.expect("an ETag on 201"))
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A minimal valid template body.
pub fn template_body(name: &str) -> Value {
    json!({
        "name": name,
        "file_type": "csv",
        "target_resource": "players",
        "field_mapping": [{"source": "Name", "target": "name"}],
    })
}
