//! End-to-end: the built `intake api` serves the REST layer over a state store file, trusting
//! the issuers of its `--issuers` file; it stops cleanly on SIGTERM and the state outlives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::ListeningProcess;
use intake_engine::m2m::jws::{self, JwsAlgorithm, SigningKey};
use serde_json::{Map, Value, json};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
const ISSUER: &str = "https://login.example.test";

fn token(key: &SigningKey, kid: &str, scope: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut header = Map::new();
    header.insert("kid".into(), json!(kid));
    let claims = json!({
        "iss": ISSUER, "aud": "intake", "client_id": "ops-portal", "tenant_id": TENANT,
        "scope": scope, "iat": now, "exp": now + 300,
    });
    jws::sign(header, &claims, key).unwrap()
}

#[tokio::test]
async fn intake_api_serves_templates_from_its_state_file_to_trusted_tokens() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(JwsAlgorithm::Es384);
    // The PEM's file stem is its kid; a relative path is relative to the issuers file.
    std::fs::write(dir.path().join("login-2026.pem"), key.verifying_key().to_pem().unwrap())
        .unwrap();
    let issuers = dir.path().join("issuers.json");
    let config = json!([{"issuer": ISSUER, "audience": "intake", "keys": {"pem_files": ["login-2026.pem"]}, "algorithms": ["ES384"]}]);
    std::fs::write(&issuers, config.to_string()).unwrap();
    let state = dir.path().join("state.sqlite");
    let args = |state: &str, issuers: &str| {
        ["api", "--port", "0", "--state", state, "--issuers", issuers].map(str::to_owned)
    };
    let argv = args(state.to_str().unwrap(), issuers.to_str().unwrap());
    let server = ListeningProcess::start_with(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    let http = reqwest::Client::new();
    let admin = token(&key, "login-2026", "admin.imports.manage");

    let template = json!({"name": "Players", "file_type": "csv", "target_resource": "players"});
    let response = http
        .post(format!("{}/imports/templates/", server.url))
        .bearer_auth(&admin)
        .json(&template)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/imports/templates/{}", created["_id"].as_str().unwrap()));

    // A token signed by another key is refused.
    let stranger =
        token(&SigningKey::generate(JwsAlgorithm::Es384), "login-2026", "admin.imports.manage");
    let response = http
        .get(format!("{}/imports/templates", server.url))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    assert!(server.terminate().success(), "intake api exits 0 on SIGTERM");

    // Restarted on the same state file: the template is still there.
    let server = ListeningProcess::start_with(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    let reader = token(&key, "login-2026", "imports/templates:list imports/templates:read");
    let page: Value = http
        .get(format!("{}/imports/templates", server.url))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "Players");
    let response =
        http.get(format!("{}{location}", server.url)).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

/// `intake api` with `issuers` and a state file in `dir`: its output, once it exited.
fn api_exits(dir: &std::path::Path, issuers: &std::path::Path) -> std::process::Output {
    let state = dir.join("s.db");
    std::process::Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["api", "--port", "0", "--state", state.to_str().unwrap()])
        .args(["--issuers", issuers.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn intake_api_refuses_an_unusable_issuer_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let issuers = dir.path().join("issuers.json");
    std::fs::write(&issuers, r#"[{"issuer": "x", "keys": {"pem_files": ["missing.pem"]}}]"#)
        .unwrap();
    let output = api_exits(dir.path(), &issuers);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing.pem"), "{stderr}");
    std::fs::write(&issuers, "[]").unwrap();
    let output = api_exits(dir.path(), &issuers);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("names no issuer"));
}
