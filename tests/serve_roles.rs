//! End-to-end: `intake serve --role` splits the engine across processes sharing one state store
//! and job queue: a poller claims and enqueues, a worker imports, an API process serves the
//! REST layer; every file is imported once.

// Test code: a failed set-up step should panic right there.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    SandboxProcess, ServeProcess, demo_issuer_token, repo, serve_config_base, wait_until,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn write_config(dir: &Path, sandbox: &str, inbox: &Path) -> PathBuf {
    let config = format!(
        r#"{base}
[api]
listen = "127.0.0.1:0"
issuers = {issuers:?}

[[sources]]
id = "inbox"
source_type = "watched_directory"
connection_config = {{ path = {inbox:?} }}
polling_interval_seconds = 1
templates = [ {{ path = {members:?}, file_matcher = "member-*.csv" }} ]
"#,
        base = serve_config_base(sandbox),
        issuers = repo("fixtures/api/issuers.json"),
        inbox = inbox.display().to_string(),
        members = repo("fixtures/member-register/template.json"),
    );
    let path = dir.join("intake.toml");
    fs::write(&path, config).unwrap();
    path
}

fn summary(serve: &ServeProcess) -> String {
    let output = serve.output();
    output
        .lines()
        .find_map(|l| l.strip_prefix("intake serve stopped: "))
        .unwrap_or_else(|| panic!("no summary in:\n{output}"))
        .to_owned()
}

#[test]
fn a_poller_a_worker_and_an_api_process_share_the_work() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = SandboxProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir(&inbox).unwrap();
    let config = write_config(dir.path(), &sandbox.url, &inbox);
    let role = |round: u32, role: &str| {
        ServeProcess::start_with_args(&config, dir.path(), round, &[], &["--role", role])
    };
    let mut poller = role(1, "poller");
    let mut worker = role(2, "worker");
    let mut api = role(3, "api");
    for name in ["member-a.csv", "member-b.csv"] {
        fs::copy(repo("fixtures/member-register/input.csv"), inbox.join(name)).unwrap();
    }

    // The API process lists the runs the worker finished.
    let stdout = dir.path().join("serve-3.out");
    let mut rest = None;
    wait_until(&mut api, "the REST address", TIMEOUT, || {
        rest = fs::read_to_string(&stdout).unwrap_or_default().lines().find_map(|l| {
            l.strip_prefix("intake serve: REST layer listening on ").map(str::to_owned)
        });
        rest.is_some()
    });
    let rest = rest.unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = demo_issuer_token("admin.imports.manage");
    let finished_runs = || -> Value {
        runtime.block_on(async {
            reqwest::Client::new()
                .get(format!("{rest}/imports/runs/?status=partially_succeeded"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    };
    wait_until(&mut worker, "both files imported", TIMEOUT, || finished_runs()["total"] == 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(finished_runs()["total"], 2, "each file once");

    for serve in [&mut poller, &mut worker, &mut api] {
        let status = serve.terminate(TIMEOUT);
        assert_eq!(status.code(), Some(0), "{}", serve.output());
    }
    let (poller, worker, api) = (summary(&poller), summary(&worker), summary(&api));
    assert!(poller.contains("2 file(s) queued, 0 imported"), "poller: {poller}");
    assert!(worker.contains(" 0 poll(s), 0 file(s) queued, 2 imported"), "worker: {worker}");
    assert!(api.contains(" 0 poll(s), 0 file(s) queued, 0 imported"), "api: {api}");
    let only_api = fs::read_to_string(dir.path().join("serve-1.out")).unwrap();
    assert!(!only_api.contains("REST layer listening"), "the poller serves no REST: {only_api}");
}

#[test]
fn the_api_role_needs_an_api_section() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("intake.toml");
    let inbox = dir.path().join("inbox");
    let source = format!(
        "\n[[sources]]\nid = \"inbox\"\nsource_type = \"watched_directory\"\n\
         connection_config = {{ path = {:?} }}\ntemplates = [ {{ path = {:?} }} ]\n",
        inbox.display().to_string(),
        repo("fixtures/member-register/template.json")
    );
    fs::write(&config, serve_config_base("http://127.0.0.1:9") + &source).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["serve", "--role", "api", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--role api serves the REST layer, but"), "{stderr}");
    assert!(stderr.contains("has no [api] section"), "{stderr}");
}
