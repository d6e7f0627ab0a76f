//! Shared set-up for tests that talk to the sandbox over real sockets: a sandbox on 127.0.0.1
//! with one registered client, clients of it, a proxy that runs a hook before forwarding a chosen
//! request (to play a concurrent writer at an exact moment), and a harness that runs the row
//! writer over a list of rows and collects every outcome.

#![allow(dead_code)]
// Test support: a failed set-up step should panic right there, like in a test body.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use intake_api::sandbox::{ClientKey, ClientRegistration, Sandbox, SandboxConfig};
use intake_engine::m2m::jws::{JwsAlgorithm, SigningKey};
use intake_engine::m2m::writer::{
    FileVerdict, RowWriteOutcome, RowWriter, ValidRow, WriteReport, WriterConfig,
};
use intake_engine::m2m::{ApiClient, ClientConfig, ClientCredentials, TokenManager};
use intake_engine::template::ImportMode;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use url::Url;

/// The tenant the test client acts for.
pub const TENANT: &str = "c0ffee00c0ffee00c0ffee00";
/// The test client's id.
pub const CLIENT_ID: &str = "intake-writer-tests";
/// Its key id.
pub const KID: &str = "writer-tests-1";
/// Resources the test client may do everything with.
pub const RESOURCES: [&str; 2] = ["players", "clubs"];

/// Every capability on [`RESOURCES`].
pub fn capabilities() -> Vec<String> {
    RESOURCES
        .iter()
        .flat_map(|r| ["list", "read", "create", "update", "delete"].map(|a| format!("{r}:{a}")))
        .collect()
}

/// A sandbox serving on a real socket; stops when dropped.
pub struct Platform {
    /// The sandbox (items, faults, counters).
    pub sandbox: Sandbox,
    /// Its base URL, `http://127.0.0.1:<port>/`.
    pub url: Url,
    /// The test client's private key.
    pub key: SigningKey,
    cancel: CancellationToken,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Platform {
    /// A sandbox with the test client registered (ES256, every capability on [`RESOURCES`]).
    pub async fn start() -> Platform {
        Platform::start_with(|_| {}).await
    }

    /// Like [`Platform::start`], after `adjust` changed the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut SandboxConfig)) -> Platform {
        Platform::start_for(capabilities(), adjust).await
    }

    /// A sandbox whose test client has exactly `capabilities`.
    pub async fn start_for(
        capabilities: Vec<String>,
        adjust: impl FnOnce(&mut SandboxConfig),
    ) -> Platform {
        let key = SigningKey::generate(JwsAlgorithm::Es256);
        let mut config = SandboxConfig {
            clients: vec![ClientRegistration {
                client_id: CLIENT_ID.to_owned(),
                tenant_id: TENANT.to_owned(),
                capabilities,
                keys: vec![ClientKey {
                    kid: KID.to_owned(),
                    public_key_pem: key.verifying_key().to_pem().unwrap(),
                }],
            }],
            access_token_lifetime_seconds: 900,
            ..SandboxConfig::default()
        };
        adjust(&mut config);
        let sandbox = Sandbox::try_new(config).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let cancel = CancellationToken::new();
        let (serving, stop) = (sandbox.clone(), cancel.clone());
        tokio::spawn(async move { serving.serve(listener, stop).await });
        Platform { sandbox, url, key, cancel }
    }

    /// A client of the sandbox with fast retries.
    pub fn client(&self) -> ApiClient {
        self.client_via(&self.url.clone(), |_| {})
    }

    /// A client talking to `base` (the sandbox or a proxy in front of it).
    pub fn client_via(&self, base: &Url, adjust: impl FnOnce(&mut ClientConfig)) -> ApiClient {
        let mut config = ClientConfig {
            base_url: base.clone(),
            tenant_id: Some(TENANT.to_owned()),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            max_attempts: 12,
            request_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        };
        adjust(&mut config);
        let credentials = ClientCredentials {
            token_url: base.join("auth/token").unwrap(),
            client_id: CLIENT_ID.to_owned(),
            kid: KID.to_owned(),
            key: self.key.clone(),
            scopes: Vec::new(),
            dpop_key: None,
        };
        let http = ApiClient::http_client(&config).unwrap();
        let tokens = TokenManager::new(http.clone(), credentials);
        ApiClient::new(config, tokens, http)
    }

    /// Live (not soft-deleted) items of `resource`.
    pub fn items(&self, resource: &str) -> Vec<Value> {
        self.sandbox.items(TENANT, resource)
    }

    /// Every item of `resource`, soft-deleted ones included.
    pub fn all_items(&self, resource: &str) -> Vec<Value> {
        self.sandbox.all_items(TENANT, resource)
    }

    /// Stores `documents` directly (no auth, no faults); returns them with their system fields.
    pub fn seed(&self, resource: &str, documents: Vec<Value>) -> Vec<Value> {
        documents.into_iter().map(|d| self.sandbox.insert(TENANT, resource, d)).collect()
    }

    /// The live item of `resource` whose `field` is `value` (exactly one).
    pub fn item_where(&self, resource: &str, field: &str, value: &Value) -> Value {
        let found: Vec<Value> =
            self.items(resource).into_iter().filter(|i| i.get(field) == Some(value)).collect();
        assert_eq!(found.len(), 1, "items of {resource} with {field} = {value}: {found:?}");
        found.into_iter().next().unwrap()
    }
}

/// A JSON object from a `json!` literal.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A writer configuration for the tests' run key.
pub fn config(resource: &str, mode: ImportMode) -> WriterConfig {
    WriterConfig::new(resource, mode, "writer-test-run")
}

/// What one run of the writer gave.
#[derive(Debug)]
pub struct Written {
    /// The totals.
    pub report: WriteReport,
    /// Every outcome, sorted by row number.
    pub outcomes: Vec<RowWriteOutcome>,
    /// Rows the writer accepted from the channel (all of them unless the run stopped early).
    pub sent: u64,
}

impl Written {
    /// The outcome of row `row_number`.
    pub fn outcome(&self, row_number: u64) -> &RowWriteOutcome {
        let found: Vec<&RowWriteOutcome> =
            self.outcomes.iter().filter(|o| o.row_number() == row_number).collect();
        assert_eq!(found.len(), 1, "outcomes of row {row_number}: {found:?}");
        found[0]
    }
}

/// Runs a writer over `rows` (numbered 1, 2, …, sent in order through a small bounded channel
/// while outcomes are consumed concurrently) and reports `verdict` once every row was sent.
pub async fn write(
    client: ApiClient,
    config: WriterConfig,
    rows: Vec<Value>,
    verdict: Option<FileVerdict>,
) -> Written {
    write_cancellable(client, config, rows, verdict, CancellationToken::new()).await
}

/// Like [`write`], with the caller's cancellation token.
pub async fn write_cancellable(
    client: ApiClient,
    config: WriterConfig,
    rows: Vec<Value>,
    verdict: Option<FileVerdict>,
    cancel: CancellationToken,
) -> Written {
    let writer = RowWriter::new(client, config).unwrap();
    let (row_sender, row_receiver) = mpsc::channel(64);
    let (outcome_sender, mut outcome_receiver) = mpsc::channel(64);
    let (verdict_sender, verdict_receiver) = oneshot::channel();
    let producer = tokio::spawn(async move {
        let mut sent = 0;
        for (index, data) in rows.into_iter().enumerate() {
            let row = ValidRow { row_number: index as u64 + 1, data: object(data) };
            if row_sender.send(row).await.is_err() {
                break;
            }
            sent += 1;
        }
        drop(row_sender);
        if let Some(verdict) = verdict {
            let _ = verdict_sender.send(verdict);
        }
        sent
    });
    let collector = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        while let Some(outcome) = outcome_receiver.recv().await {
            outcomes.push(outcome);
        }
        outcomes
    });
    let report = writer.run(row_receiver, verdict_receiver, outcome_sender, cancel).await;
    let sent = producer.await.unwrap();
    let mut outcomes = collector.await.unwrap();
    outcomes.sort_by_key(RowWriteOutcome::row_number);
    Written { report, outcomes, sent }
}

/// A hook run once, before the proxy forwards the first request it matches.
pub type Hook =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

struct HookState {
    upstream: Url,
    http: reqwest::Client,
    method: String,
    path_prefix: String,
    hook: Mutex<Option<Hook>>,
    /// Requests seen, as `METHOD path`.
    seen: Mutex<Vec<String>>,
}

/// A proxy in front of the sandbox that runs a hook before forwarding the first request with a
/// given method and path prefix — e.g. another writer changes a record between the look-up and
/// the PATCH, which then meets a real `412`.
pub struct HookProxy {
    /// The proxy's base URL.
    pub url: Url,
    state: Arc<HookState>,
    cancel: CancellationToken,
}

impl Drop for HookProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl HookProxy {
    /// Starts the proxy in front of `upstream`.
    pub async fn start(upstream: Url, method: &str, path_prefix: &str, hook: Hook) -> HookProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let state = Arc::new(HookState {
            upstream,
            http: ApiClient::http_client(&ClientConfig {
                max_in_flight: 64,
                ..ClientConfig::default()
            })
            .unwrap(),
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            hook: Mutex::new(Some(hook)),
            seen: Mutex::new(Vec::new()),
        });
        let cancel = CancellationToken::new();
        let (accept_state, accept_cancel) = (state.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = accept_cancel.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let state = accept_state.clone();
                let cancel = accept_cancel.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| forward(state.clone(), req));
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = connection => {}
                    }
                });
            }
        });
        HookProxy { url, state, cancel }
    }

    /// Whether the hook has run.
    pub fn hook_ran(&self) -> bool {
        self.state.hook.lock().unwrap().is_none()
    }

    /// Requests forwarded so far, as `METHOD path?query`.
    pub fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn forward(
    state: Arc<HookState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let method = req.method().as_str().to_owned();
    let path =
        req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    state.seen.lock().unwrap().push(format!("{method} {path}"));
    if method == state.method && path.starts_with(&state.path_prefix) {
        let hook = state.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let target = state.upstream.join(&path[1..]).unwrap();
    let mut request = state.http.request(parts.method.clone(), target).body(body.to_vec());
    for (name, value) in parts.headers.iter() {
        // `host` is kept: the sandbox checks the assertion's `aud` against the Host used.
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding" | "keep-alive"
        ) {
            request = request.header(name, value);
        }
    }
    let upstream = request.send().await.map_err(std::io::Error::other)?;
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding") {
            response = response.header(name, value);
        }
    }
    let bytes = upstream.bytes().await.map_err(std::io::Error::other)?;
    Ok(response.body(Full::new(bytes)).unwrap())
}
