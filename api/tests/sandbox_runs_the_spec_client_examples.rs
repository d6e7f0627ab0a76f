//! The platform spec's own client examples run unchanged against the sandbox, except for the base
//! URL: the two cURL/openssl scripts (whose `openssl dgst -sign` writes a DER-encoded ECDSA
//! signature, which the token endpoint accepts as a documented compatibility choice) and the two
//! Python (authlib + requests) programs.
//!
//! They need bash, openssl, curl and jq (and python3 with authlib and requests). A missing tool
//! skips the test with a printed reason; with `INTAKE_REQUIRE_SPEC_TOOLS=1` it fails instead.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use intake_api::sandbox::{ClientKey, ClientRegistration, SandboxConfig};
use serde_json::json;

/// The spec, from the workspace's sibling `shared/` folder; `None` (skip) when it is not there,
/// unless required.
fn spec() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/platform-m2m-api.txt");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => {
            let reason = format!("cannot read {}: {e}", path.display());
            assert!(!required(), "INTAKE_REQUIRE_SPEC_TOOLS=1 but {reason}");
            eprintln!("SKIPPED: {reason}; set INTAKE_REQUIRE_SPEC_TOOLS=1 to make this a failure");
            None
        }
    }
}

/// Whether missing tools (or spec) must fail the tests.
fn required() -> bool {
    std::env::var("INTAKE_REQUIRE_SPEC_TOOLS").is_ok_and(|v| v == "1")
}

/// The text from `start` up to (not including) `end`, both searched in order.
fn block(spec: &str, start: &str, end: &str) -> String {
    let from = spec.find(start).unwrap_or_else(|| panic!("the spec has no '{start}'"));
    let len = spec[from..].find(end).unwrap_or_else(|| panic!("no '{end}' after '{start}'"));
    spec[from..from + len].to_owned()
}

/// Whether the tools are there; without them the test is skipped, or fails when required.
fn tools_present(tools: &[(&str, &[&str])]) -> bool {
    let required = required();
    for (tool, args) in tools {
        let ok = Command::new(tool).args(*args).output().is_ok_and(|o| o.status.success());
        if !ok {
            let reason = format!("'{tool} {}' is not available", args.join(" "));
            assert!(!required, "INTAKE_REQUIRE_SPEC_TOOLS=1 but {reason}");
            eprintln!("SKIPPED: {reason}; set INTAKE_REQUIRE_SPEC_TOOLS=1 to make this a failure");
            return false;
        }
    }
    true
}

/// A scratch directory with the spec's key files made the spec's way (`openssl ecparam`).
fn key_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("intake-spec-examples-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "client-private-key.pem"]);
    run(&["ec", "-in", "client-private-key.pem", "-pubout", "-out", "client-public-key.pem"]);
    dir
}

/// The sandbox with the spec's client (`acme-integration`, kid `2026-04-primary`) and one booking.
async fn spec_sandbox(dir: &Path) -> (Served, String) {
    let public_key_pem = std::fs::read_to_string(dir.join("client-public-key.pem")).unwrap();
    let served = serve(SandboxConfig {
        clients: vec![ClientRegistration {
            client_id: "acme-integration".into(),
            tenant_id: TENANT.into(),
            capabilities: vec!["bookings:read".into(), "bookings:create".into()],
            keys: vec![ClientKey {
                kid: "2026-04-primary".into(),
                public_key_pem,
                active_until: None,
            }],
        }],
        ..SandboxConfig::default()
    })
    .await;
    let booking = served.sandbox.insert(TENANT, "bookings", json!({"status": "confirmed"}));
    let id = booking["_id"].as_str().unwrap().to_owned();
    (served, id)
}

/// Runs `program` with `script` in `dir` (off the async runtime) and returns its stdout.
async fn run(program: &'static str, script: String, dir: &Path) -> String {
    let dir = dir.to_owned();
    let file = if program == "bash" { "example.sh" } else { "example.py" };
    std::fs::write(dir.join(file), script).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(program).arg(file).current_dir(&dir).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

#[tokio::test]
async fn openssl_dgst_sign_writes_der_signatures() {
    if !tools_present(&[("openssl", &["version"])]) {
        return;
    }
    let dir = key_dir();
    std::fs::write(dir.join("input"), "header.payload").unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", "client-private-key.pem", "input"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let sig = out.stdout;
    // ASN.1 DER: SEQUENCE { INTEGER r, INTEGER s }, not the 64-byte JWS r || s.
    assert_eq!(sig[0], 0x30);
    assert_eq!(usize::from(sig[1]), sig.len() - 2);
    assert_eq!(sig[2], 0x02);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_quick_start_curl_workflow_runs_unchanged() {
    let tools: &[(&str, &[&str])] = &[
        ("bash", &["--version"]),
        ("openssl", &["version"]),
        ("curl", &["--version"]),
        ("jq", &["--version"]),
    ];
    if !tools_present(tools) {
        return;
    }
    let dir = key_dir();
    let (served, id) = spec_sandbox(&dir).await;
    let Some(spec) = spec() else { return };
    let script = block(&spec, "#!/bin/bash\n# Complete cURL workflow", "\nConcepts\n")
        .replace("http://api.petanque.life", &served.base);
    let out = run("bash", script, &dir).await;
    assert!(out.contains("Token type: Bearer\n"), "{out}");
    assert!(out.contains("Expires in: 900s\n"), "{out}");
    assert!(out.contains("\"total\": 1"), "{out}");
    assert!(out.contains(&id), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_curl_workflow_script_runs_unchanged() {
    let tools: &[(&str, &[&str])] = &[
        ("bash", &["--version"]),
        ("openssl", &["version"]),
        ("curl", &["--version"]),
        ("jq", &["--version"]),
    ];
    if !tools_present(tools) {
        return;
    }
    let dir = key_dir();
    let (served, _id) = spec_sandbox(&dir).await;
    let Some(spec) = spec() else { return };
    let script = block(&spec, "#!/bin/bash\nset -euo pipefail", "\nUI Authentication\n")
        .replace("http://api.petanque.life", &served.base);
    let out = run("bash", script, &dir).await;
    assert!(out.contains("Token type: Bearer\nExpires in: 900s\nScope: bookings:read\n"), "{out}");
    assert!(out.ends_with("=== Bookings ===\n1\n"), "{out}");
    assert_eq!(served.sandbox.stats()["tokens_issued"], 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// Python with the spec's libraries.
const PYTHON: &[(&str, &[&str])] =
    &[("openssl", &["version"]), ("python3", &["-c", "import authlib.jose, requests"])];

#[tokio::test]
async fn the_python_quick_start_runs_unchanged() {
    if !tools_present(PYTHON) {
        return;
    }
    let dir = key_dir();
    let (served, _id) = spec_sandbox(&dir).await;
    let Some(spec) = spec() else { return };
    let program = block(&spec, "# pip install authlib requests\n", "\nC#\n")
        .replace("http://api.petanque.life", &served.base);
    let out = run("python3", program, &dir).await;
    assert_eq!(out, "Found 1 bookings\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_python_sdk_skeleton_runs_unchanged() {
    if !tools_present(PYTHON) {
        return;
    }
    let dir = key_dir();
    let (served, id) = spec_sandbox(&dir).await;
    let Some(spec) = spec() else { return };
    let program = block(&spec, "\"\"\"\nComplete M2M integration example.", "\nC# SDK Skeleton\n")
        .replace("http://api.petanque.life", &served.base);
    let out = run("python3", program, &dir).await;
    assert_eq!(out, format!("Got token (expires in 900s)\nFound 1 bookings\n  {id} — confirmed\n"));
    let _ = std::fs::remove_dir_all(dir);
}
