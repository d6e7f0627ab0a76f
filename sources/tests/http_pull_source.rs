//! The `http_pull` source against a real HTTP server on a loopback socket: conditional GETs
//! with `If-None-Match`, a changed resource listed as a new version, bearer auth, server errors
//! reported as retryable, and move/delete refused with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use intake_sources::{
    HttpPull, HttpPullConfig, HttpPullSecrets, Source, SourceError, SourceSettings,
};
use tokio::io::AsyncReadExt;

/// What the test server serves, and what it saw.
#[derive(Default)]
struct Served {
    status: u16,
    etag: String,
    body: String,
    requests: Vec<HeaderMap>,
}

async fn export(State(served): State<Arc<Mutex<Served>>>, headers: HeaderMap) -> Response {
    let mut served = served.lock().unwrap();
    served.requests.push(headers.clone());
    if served.status != 200 {
        return StatusCode::from_u16(served.status).unwrap().into_response();
    }
    let etag = format!("\"{}\"", served.etag);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([(header::ETAG, etag)], served.body.clone()).into_response()
}

async fn start(served: Arc<Mutex<Served>>) -> String {
    let app = Router::new().route("/export/members.csv", get(export)).with_state(served);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/export/members.csv", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn source(url: &str, dir: &std::path::Path, token: Option<&str>) -> HttpPull {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = HttpPullConfig {
        url: url.to_owned(),
        file_name: None,
        bearer_token_credential: token.map(|_| "env:PARTNER_TOKEN".to_owned()),
        username: None,
        password_credential: None,
        timeout_seconds: 10,
    };
    let secrets = HttpPullSecrets { bearer_token: token.map(str::to_owned), password: None };
    HttpPull::build(
        &config,
        &SourceSettings::named("partner"),
        secrets,
        reqwest::Client::new(),
        dir.to_owned(),
    )
    .unwrap()
}

async fn read(source: &HttpPull, path: &str) -> String {
    let mut text = String::new();
    source.open(path).await.unwrap().read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn an_unchanged_resource_lists_the_same_version_and_a_changed_one_a_new_version() {
    let served = Arc::new(Mutex::new(Served {
        status: 200,
        etag: "v1".into(),
        body: "id,name\n1,Anna\n".into(),
        ..Served::default()
    }));
    let url = start(served.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let source = source(&url, dir.path(), Some("s3cr3t"));

    let first = source.list().await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].path, "members.csv");
    assert_eq!(first[0].version.as_deref(), Some("\"v1\""));
    assert_eq!(first[0].size, 15);
    assert_eq!(read(&source, "members.csv").await, "id,name\n1,Anna\n");
    assert_eq!(source.stat("members.csv").await.unwrap(), first[0]);

    // Unchanged: a conditional GET answered 304, the same entry.
    let second = source.list().await.unwrap();
    assert_eq!(second, first);
    {
        let served = served.lock().unwrap();
        let last = served.requests.last().unwrap();
        assert_eq!(last.get(header::IF_NONE_MATCH).unwrap(), "\"v1\"");
        assert_eq!(last.get(header::AUTHORIZATION).unwrap(), "Bearer s3cr3t");
    }

    // Changed: a new version with the new bytes.
    {
        let mut served = served.lock().unwrap();
        served.etag = "v2".into();
        served.body = "id,name\n1,Anna\n2,Björn\n".into();
    }
    let third = source.list().await.unwrap();
    assert_eq!(third[0].version.as_deref(), Some("\"v2\""));
    assert_eq!(read(&source, "members.csv").await, "id,name\n1,Anna\n2,Björn\n");
    assert!(matches!(source.open("other.csv").await, Err(SourceError::NotFound { .. })));
}

#[tokio::test]
async fn server_errors_are_retryable_and_the_resource_cannot_be_moved() {
    let served = Arc::new(Mutex::new(Served { status: 503, ..Served::default() }));
    let url = start(served.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let source = source(&url, dir.path(), None);
    let error = source.list().await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("503"), "{error}");
    assert!(served.lock().unwrap().requests[0].get(header::AUTHORIZATION).is_none());

    served.lock().unwrap().status = 200;
    source.list().await.unwrap();
    let error = source.move_to("members.csv", "completed").await.unwrap_err();
    assert!(error.to_string().contains("post_process_policy"), "{error}");
    assert!(source.delete("members.csv").await.is_err());
}

#[test]
fn an_unusable_configuration_lists_every_problem() {
    let config = HttpPullConfig {
        url: "ftp://example.com/x.csv".into(),
        file_name: Some("../x".into()),
        bearer_token_credential: Some("env:T".into()),
        username: Some("u".into()),
        password_credential: None,
        timeout_seconds: 0,
    };
    let problems = config.validate().unwrap_err();
    assert_eq!(problems.len(), 5, "{problems:?}");
}
