//! The platform spec's documented Python `ApiClient` (token, list, get, create, update with
//! ETag, delete), copied from the spec unchanged, runs against the built `intake api` for
//! `imports/templates` and `rejected-records`: the client is added with `intake clients`, gets
//! its token from the built-in `/auth/token`, and drives the REST layer.
//!
//! Needs openssl and python3 with authlib and requests; without them the test is skipped with a
//! printed reason, and fails under `INTAKE_REQUIRE_SPEC_TOOLS=1` (as `.ci/run` sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::ListeningProcess;
use intake_engine::store::{
    NewImportRun, NewRejectedRecord, RunCounts, RunOutcome, RunStatus, Store,
};
use serde_json::json;

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
const SPEC: &str = "../shared/spec/platform-m2m-api.txt";

fn required() -> bool {
    std::env::var("INTAKE_REQUIRE_SPEC_TOOLS").is_ok_and(|v| v == "1")
}

/// Whether openssl and python3 with authlib and requests are there (a skip or, when required,
/// a failure otherwise).
fn tools_present() -> bool {
    for (tool, args) in
        [("openssl", &["version"][..]), ("python3", &["-c", "import authlib.jose, requests"][..])]
    {
        if !Command::new(tool).args(args).output().is_ok_and(|o| o.status.success()) {
            let reason = format!("'{tool} {}' is not available", args.join(" "));
            assert!(!required(), "INTAKE_REQUIRE_SPEC_TOOLS=1 but {reason}");
            eprintln!("SKIPPED: {reason}; set INTAKE_REQUIRE_SPEC_TOOLS=1 to make this a failure");
            return false;
        }
    }
    true
}

/// The spec's `ApiClient` class, verbatim: from its imports to the spec's own usage example.
fn spec_api_client() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC);
    let spec = match std::fs::read_to_string(&path) {
        Ok(spec) => spec,
        Err(e) => {
            assert!(
                !required(),
                "INTAKE_REQUIRE_SPEC_TOOLS=1 but cannot read {}: {e}",
                path.display()
            );
            eprintln!("SKIPPED: cannot read {}: {e}", path.display());
            return None;
        }
    };
    let start = spec.find("Python — Full Client Setup\n").expect("the spec's Python client");
    let from = start + spec[start..].find("import requests").unwrap();
    let to = from + spec[from..].find("# Usage").unwrap();
    Some(spec[from..to].to_owned())
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One finished run with one pending rejected record, written to the state file before the
/// server starts.
async fn seed_rejected_record(state: &Path) -> String {
    let store = Store::open(state.to_str().unwrap()).await.unwrap();
    let run = store
        .create_run(
            TENANT,
            &NewImportRun {
                source_name: Some("members.csv".into()),
                template_id: Some("5f00000000000000000000aa".into()),
                ..NewImportRun::default()
            },
        )
        .await
        .unwrap();
    store.start_run(TENANT, &run.meta.id).await.unwrap();
    let rejected = NewRejectedRecord {
        row_number: 3,
        original_data: json!({"id": "2", "name": "Björn", "age": "-4"}),
        validation_errors: json!([{"field": "age", "message": "must be at least 0"}]),
    };
    let outcome = RunOutcome {
        status: RunStatus::PartiallySucceeded,
        counts: RunCounts { read: 2, valid: 1, rejected: 1, created: 1, ..RunCounts::default() },
        timings: json!({}),
        error: None,
    };
    store.finish_run(TENANT, &run.meta.id, &outcome, &[rejected]).await.unwrap();
    store.close().await;
    run.meta.id
}

const USAGE: &str = r#"
import sys
with open("client-private-key.pem", "rb") as f:
    key = f.read()
api = ApiClient(sys.argv[1], "acme-integration", key, "2026-04-primary",
                scope="imports/templates:list imports/templates:read imports/templates:create imports/templates:update imports/templates:delete rejected-records:list rejected-records:read rejected-records:update rejected-records:delete")

template, etag = api.create("imports/templates", {"name": "Members CSV", "file_type": "csv", "target_resource": "players"})
print("created", template["name"], template["priority"], etag == '"' + template["revision_id"] + '"')
page = api.list("imports/templates", where={"name": "Members CSV"})
print("listed", page["total"], page["items"][0]["_id"] == template["_id"])
item, etag = api.get("imports/templates", template["_id"])
updated, etag = api.update("imports/templates", template["_id"], {"priority": 7}, etag)
print("updated", updated["priority"])
api.delete("imports/templates", template["_id"], etag)
try:
    api.get("imports/templates", template["_id"])
except requests.HTTPError as e:
    print("after delete", e.response.status_code)

records = api.list("rejected-records", where={"status": "pending"}, sort="row_number")
record = records["items"][0]
print("rejected", records["total"], record["row_number"], record["original_data"]["name"])
record, etag = api.get("rejected-records", record["_id"])
record, etag = api.update("rejected-records", record["_id"], {"corrected_data": {"id": "2", "name": "Björn", "age": "44"}}, etag)
print("corrected", record["status"])
api.delete("rejected-records", record["_id"], etag)
record, etag = api.get("rejected-records", record["_id"])
print("discarded", record["status"])
"#;

#[tokio::test]
async fn the_spec_python_api_client_drives_intake_api_unchanged() {
    if !tools_present() {
        return;
    }
    let Some(client) = spec_api_client() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(
        d,
        "openssl",
        &["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "client-private-key.pem"],
    );
    run(
        d,
        "openssl",
        &["ec", "-in", "client-private-key.pem", "-pubout", "-out", "client-public-key.pem"],
    );
    let intake = env!("CARGO_BIN_EXE_intake");
    let mut add = vec![
        "clients",
        "--file",
        "clients.json",
        "add",
        "--client-id",
        "acme-integration",
        "--tenant",
        TENANT,
        "--kid",
        "2026-04-primary",
        "--public-key",
        "client-public-key.pem",
    ];
    let capabilities: Vec<String> = ["imports/templates", "rejected-records"]
        .iter()
        .flat_map(|r| ["list", "read", "create", "update", "delete"].map(|a| format!("{r}:{a}")))
        .collect();
    for capability in &capabilities {
        add.extend(["--capability", capability]);
    }
    run(d, intake, &add);
    let state = d.join("state.sqlite");
    seed_rejected_record(&state).await;

    let server = ListeningProcess::start_with(&[
        "api",
        "--port",
        "0",
        "--state",
        state.to_str().unwrap(),
        "--clients",
        d.join("clients.json").to_str().unwrap(),
        "--token-key",
        d.join("token-key.pem").to_str().unwrap(),
    ]);
    std::fs::write(d.join("client.py"), format!("{client}\n{USAGE}")).unwrap();
    let url = server.url.clone();
    let dir_path = d.to_owned();
    let out = tokio::task::spawn_blocking(move || run(&dir_path, "python3", &["client.py", &url]))
        .await
        .unwrap();
    assert_eq!(
        out,
        "created Members CSV 0 True\nlisted 1 True\nupdated 7\nafter delete 404\nrejected 1 3 Björn\ncorrected corrected\ndiscarded discarded\n"
    );
}
