//! End-to-end: `intake serve` polls an `http_pull` source — a partner's export served over real
//! HTTP with ETags — imports it once into the built `intake sandbox`, does not import it again
//! while the server answers 304, and imports the new version when it changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{SandboxProcess, ServeProcess, repo, wait_until};
use intake_engine::store::{Collection, ListQuery, Store};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
const TIMEOUT: Duration = Duration::from_secs(120);

/// The export: its version, its bytes, and the conditional requests seen.
struct Export {
    etag: String,
    body: Vec<u8>,
    not_modified: u64,
}

async fn export(State(export): State<Arc<Mutex<Export>>>, headers: HeaderMap) -> Response {
    let mut export = export.lock().unwrap();
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        != Some("Bearer partner-token")
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let etag = format!("\"{}\"", export.etag);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        export.not_modified += 1;
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([(header::ETAG, etag)], export.body.clone()).into_response()
}

fn write_config(dir: &Path, sandbox: &str, export_url: &str) -> std::path::PathBuf {
    let config = format!(
        r#"{base}
[[sources]]
id = "partner"
source_type = "http_pull"
connection_config = {{ url = {export_url:?}, bearer_token_credential = "env:INTAKE_TEST_PARTNER_TOKEN" }}
polling_interval_seconds = 1
templates = [{{ path = {members:?}, file_matcher = "members.csv" }}]
"#,
        base = common::serve_config_base(sandbox),
        members = repo("fixtures/member-register/template.json"),
    );
    let path = dir.join("intake.toml");
    fs::write(&path, config).unwrap();
    path
}

/// The finished runs, oldest first.
fn runs(runtime: &tokio::runtime::Runtime, state: &Path) -> Vec<serde_json::Value> {
    if !state.exists() {
        return Vec::new();
    }
    runtime.block_on(async {
        let store = Store::open(&state.display().to_string()).await.unwrap();
        let query = ListQuery::new().sort_by("created_at", false).page(1, 100);
        let page = store.list(Collection::ImportRuns, TENANT, &query).await.unwrap();
        store.close().await;
        page.items
            .into_iter()
            .map(|d| d.body)
            .filter(|b| {
                matches!(b["status"].as_str(), Some("succeeded" | "partially_succeeded" | "failed"))
            })
            .collect()
    })
}

#[test]
fn serve_imports_an_http_export_once_per_version() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let body = fs::read(repo("fixtures/member-register/input.csv")).unwrap();
    let state =
        Arc::new(Mutex::new(Export { etag: "v1".into(), body: body.clone(), not_modified: 0 }));
    let export_url = runtime.block_on(async {
        let app =
            Router::new().route("/exports/members.csv", get(export)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/exports/members.csv", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    });
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start();
    let config = write_config(dir.path(), &sandbox.url, &export_url);
    // The bearer token reaches `intake serve` by reference: an environment variable of its own.
    let token = [("INTAKE_TEST_PARTNER_TOKEN", "partner-token")];
    let mut serve = ServeProcess::start_with_env(&config, dir.path(), 1, &token);
    let store_path = dir.path().join("state/intake.sqlite");

    let mut finished = Vec::new();
    wait_until(&mut serve, "the first import", TIMEOUT, || {
        finished = runs(&runtime, &store_path);
        !finished.is_empty()
    });
    assert_eq!(finished[0]["status"], "partially_succeeded", "{finished:?}");
    assert_eq!(finished[0]["source_name"], "members.csv");
    assert_eq!(finished[0]["counts"]["valid"], 6);

    // Unchanged (answered 304 several times): nothing is imported again.
    wait_until(&mut serve, "three conditional polls", TIMEOUT, || {
        state.lock().unwrap().not_modified >= 3
    });
    assert_eq!(runs(&runtime, &store_path).len(), 1);

    // A new version is imported.
    {
        let mut export = state.lock().unwrap();
        export.etag = "v2".into();
        export.body = body.iter().copied().chain(b"9001,Nils,Nilsson,19811228-9874,nils@example.se,,senior,2026-03-01,802002-4280,Storgatan 9\n".iter().copied()).collect();
    }
    wait_until(&mut serve, "the second import", TIMEOUT, || runs(&runtime, &store_path).len() == 2);
    assert!(serve.terminate(TIMEOUT).success(), "{}", serve.output());
}
