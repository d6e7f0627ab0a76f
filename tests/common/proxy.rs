//! An HTTP proxy between a client and the sandbox, on real sockets.
//!
//! It measures what only the server side can see — how many requests are in flight at once, how
//! many token requests arrived, which headers came — and injects scripted answers (a 401, a 429
//! with a given `Retry-After`, a 503, a connection closed without an answer) and delays
//! deterministically, in front of an otherwise real sandbox. It can also run a hook before
//! forwarding a chosen request: e.g. another writer changes a record between the look-up and the
//! PATCH, which then meets a real `412`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use intake_engine::m2m::{ApiClient, ClientConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path_and_query: String,
    /// The headers, names lower-cased (only the first value of each).
    pub headers: HashMap<String, String>,
    /// When it arrived.
    pub at: Instant,
    /// When it arrived, by the wall clock.
    pub wall: SystemTime,
}

/// What a scripted rule answers instead of forwarding.
#[derive(Debug, Clone)]
pub enum Injected {
    /// This status, headers and body.
    Status { status: u16, headers: Vec<(String, String)>, body: String },
    /// Close the connection without any answer.
    Drop,
    /// Hold the request this long, then forward it (to make a client time out).
    Slow(Duration),
}

impl Injected {
    /// A plain status with a JSON body.
    pub fn status(status: u16, body: &str) -> Self {
        Injected::Status { status, headers: vec![], body: body.to_owned() }
    }

    /// A status with one extra header.
    pub fn with_header(status: u16, name: &str, value: &str, body: &str) -> Self {
        Injected::Status {
            status,
            headers: vec![(name.to_owned(), value.to_owned())],
            body: body.to_owned(),
        }
    }
}

struct Rule {
    method: Option<String>,
    path_prefix: String,
    remaining: usize,
    answer: Injected,
}

/// A hook run once, before the proxy forwards the first request it matches.
pub type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct PendingHook {
    method: String,
    path_prefix: String,
    /// `None` once it has run.
    hook: Option<Hook>,
}

/// Counters and the request log.
#[derive(Default)]
pub struct Stats {
    /// Every request the proxy received.
    pub total: AtomicUsize,
    /// Requests to `/auth/token`.
    pub token_requests: AtomicUsize,
    /// Resource requests (not `/auth/token`) in flight now.
    pub in_flight: AtomicUsize,
    /// The most resource requests ever in flight at once.
    pub max_in_flight: AtomicUsize,
    /// Every request, in arrival order.
    pub seen: Mutex<Vec<Seen>>,
}

impl Stats {
    /// Requests to `/auth/token` so far.
    pub fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    /// The requests seen whose path starts with `prefix` (`""` for all of them).
    pub fn seen(&self, prefix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path_and_query.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Every request seen so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.seen("").iter().map(|s| format!("{} {}", s.method, s.path_and_query)).collect()
    }
}

struct State {
    upstream: Url,
    http: reqwest::Client,
    stats: Arc<Stats>,
    rules: Mutex<Vec<Rule>>,
    /// Added to every forwarded resource request, to make concurrency observable.
    delay: Mutex<Duration>,
    hook: Mutex<Option<PendingHook>>,
}

/// The running proxy; stops when dropped.
pub struct Proxy {
    /// The proxy's base URL (`http://127.0.0.1:<port>/`).
    pub url: Url,
    /// What it has seen.
    pub stats: Arc<Stats>,
    state: Arc<State>,
    cancel: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Proxy {
    /// Starts a proxy forwarding to `upstream`.
    pub async fn start(upstream: Url) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let http =
            ApiClient::http_client(&ClientConfig { max_in_flight: 256, ..Default::default() })
                .unwrap();
        let stats = Arc::new(Stats::default());
        let state = Arc::new(State {
            upstream,
            http,
            stats: stats.clone(),
            rules: Mutex::new(Vec::new()),
            delay: Mutex::new(Duration::ZERO),
            hook: Mutex::new(None),
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
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
        Proxy { url, stats, state, cancel }
    }

    /// The next `times` requests with this method (any if `None`) whose path starts with
    /// `path_prefix` get `answer` instead of being forwarded. Rules apply in the order added.
    pub fn inject(&self, method: Option<&str>, path_prefix: &str, times: usize, answer: Injected) {
        self.state.rules.lock().unwrap().push(Rule {
            method: method.map(str::to_owned),
            path_prefix: path_prefix.to_owned(),
            remaining: times,
            answer,
        });
    }

    /// Holds every forwarded resource request this long before forwarding it.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Runs `hook` (once) before forwarding the first request with `method` whose path starts
    /// with `path_prefix`; that request waits for it.
    pub fn hook(&self, method: &str, path_prefix: &str, hook: Hook) {
        *self.state.hook.lock().unwrap() = Some(PendingHook {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            hook: Some(hook),
        });
    }

    /// Whether the hook set with [`Proxy::hook`] has run.
    pub fn hook_ran(&self) -> bool {
        matches!(&*self.state.hook.lock().unwrap(), Some(PendingHook { hook: None, .. }))
    }

    /// The URL of `path` on the proxy.
    pub fn join(&self, path: &str) -> Url {
        self.url.join(path).unwrap()
    }
}

/// Decrements the in-flight counter when a resource request finishes, however it finishes.
struct InFlight(Arc<Stats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let stats = &state.stats;
    let method = req.method().as_str().to_owned();
    let path_and_query =
        req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let mut headers: HashMap<String, String> = HashMap::new();
    for (k, v) in req.headers() {
        if let Ok(v) = v.to_str() {
            headers.entry(k.as_str().to_owned()).or_insert_with(|| v.to_owned());
        }
    }
    stats.total.fetch_add(1, Ordering::SeqCst);
    let is_token = req.uri().path().starts_with("/auth/token");
    if is_token {
        stats.token_requests.fetch_add(1, Ordering::SeqCst);
    }
    stats.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path_and_query: path_and_query.clone(),
        headers,
        at: Instant::now(),
        wall: SystemTime::now(),
    });
    let _guard = (!is_token).then(|| {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats.clone())
    });

    let injected = {
        let mut rules = state.rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| {
                r.remaining > 0
                    && r.method.as_deref().is_none_or(|m| m == method)
                    && path_and_query.starts_with(&r.path_prefix)
            })
            .map(|r| {
                r.remaining -= 1;
                r.answer.clone()
            })
    };
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    match injected {
        Some(Injected::Drop) => {
            // Returning an error makes hyper close the connection without an answer.
            return Err(std::io::Error::other("scripted connection drop"));
        }
        Some(Injected::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Injected::Status { status, headers, body }) => {
            let mut response = Response::builder().status(status);
            for (k, v) in headers {
                response = response.header(k, v);
            }
            return Ok(response
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap());
        }
        None => {}
    }
    if !is_token {
        let delay = *state.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let hook = match &mut *state.hook.lock().unwrap() {
        Some(pending)
            if method == pending.method && path_and_query.starts_with(&pending.path_prefix) =>
        {
            pending.hook.take()
        }
        _ => None,
    };
    if let Some(hook) = hook {
        hook().await;
    }
    let target = state.upstream.join(&path_and_query[1..]).unwrap();
    let mut forward = state.http.request(parts.method.clone(), target).body(body.to_vec());
    for (name, value) in parts.headers.iter() {
        if !matches!(
            name.as_str(),
            // `host` is kept: the sandbox checks `aud` and DPoP `htu` against the Host the client
            // used, which is the proxy's.
            "content-length" | "connection" | "transfer-encoding" | "keep-alive"
        ) {
            forward = forward.header(name, value);
        }
    }
    let upstream = match forward.send().await {
        Ok(r) => r,
        // The sandbox dropped the connection (a fault knob): pass that on.
        Err(_) => return Err(std::io::Error::other("upstream failed")),
    };
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding") {
            response = response.header(name, value);
        }
    }
    let bytes = upstream.bytes().await.map_err(std::io::Error::other)?;
    Ok(response.body(Full::new(bytes)).unwrap())
}
