//! A real HTTP receiver on 127.0.0.1 for the channel tests: it records every request (any path)
//! and answers as told — a status and body, after a delay, with a `Location` header, or quoting
//! the request's path and query back (as some chat services do in their errors).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use serde_json::Value;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

/// How the receiver answers.
#[derive(Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub delay: Duration,
    /// A `Location` header to send (a redirect).
    pub location: Option<String>,
    /// Whether the body ends with the path and query the request was sent to.
    pub echo_uri: bool,
}

impl Answer {
    /// `status` with `body`, at once.
    pub fn new(status: StatusCode, body: impl Into<String>) -> Self {
        Answer { status, body: body.into(), delay: Duration::ZERO, location: None, echo_uri: false }
    }
}

#[derive(Clone)]
struct Receiver {
    answer: Answer,
    received: Arc<Mutex<Vec<Received>>>,
}

/// The running receiver; it stops when dropped.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts a receiver answering every request with `answer`.
    pub async fn start(answer: Answer) -> Server {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = Receiver { answer, received: received.clone() };
        let app = axum::Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { base: format!("http://{address}"), received, task }
    }

    /// The URL of `path` (with its query) on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let mut text = state.answer.body.clone();
    if state.answer.echo_uri {
        text = format!("{text} {uri}");
    }
    state.received.lock().expect("lock").push(Received { method, uri, headers, body });
    tokio::time::sleep(state.answer.delay).await;
    let mut response = (state.answer.status, text).into_response();
    if let Some(location) = &state.answer.location
        && let Ok(value) = location.parse()
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// An address nothing listens on.
pub fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}
