//! End-to-end: `intake serve` with an `[api]` section serves the REST layer beside the engine,
//! over the same state store and job queue: a file dropped in the inbox is imported by the
//! engine, and its run and rejected records are read over REST; the templates `intake serve`
//! registered are listed; a template created through the API for the configured source
//! imports the next matching file, and a source created through the API is polled while it runs,
//! stops when deactivated, resumes when reactivated, and is polled after a restart; an upload over its template's inline limits is queued and imported by
//! a worker; readiness covers the queue; `/metrics` counts the runs; SIGTERM stops both cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{SandboxProcess, ServeProcess, demo_issuer_token, repo, wait_until};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn write_config(dir: &Path, url: &str, inbox: &Path) -> std::path::PathBuf {
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
templates = [{{ path = {members:?}, file_matcher = "member-*.csv" }}]
"#,
        base = common::serve_config_base(url),
        issuers = repo("fixtures/api/issuers.json"),
        inbox = inbox.display().to_string(),
        members = repo("fixtures/member-register/template.json"),
    );
    let path = dir.join("intake.toml");
    fs::write(&path, config).unwrap();
    path
}

/// The REST address `intake serve` printed on `stdout`.
fn rest_url(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|line| {
        line.strip_prefix("intake serve: REST layer listening on ").map(str::to_owned)
    })
}

#[test]
fn serve_with_an_api_section_serves_the_rest_layer_over_the_engines_state() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir_all(&inbox).unwrap();
    let sandbox = SandboxProcess::start();
    let config = write_config(dir.path(), &sandbox.url, &inbox);
    let mut serve = ServeProcess::start(&config, dir.path(), 1);
    let stdout = dir.path().join("serve-1.out");
    let mut url = None;
    wait_until(&mut serve, "the REST address", TIMEOUT, || {
        url = rest_url(&fs::read_to_string(&stdout).unwrap_or_default());
        url.is_some()
    });
    let url = url.unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let token = demo_issuer_token("admin.imports.manage");
    let get = |path: &str| -> (u16, Value) {
        runtime.block_on(async {
            let response =
                http.get(format!("{url}{path}")).bearer_auth(&token).send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    };

    // The template `intake serve` registered from its configuration is in the store (the REST
    // layer may answer a moment before the engine has registered it).
    wait_until(&mut serve, "the registered template", TIMEOUT, || {
        get("/imports/templates/").1["total"] == 1
    });
    let (status, templates) = get("/imports/templates/");
    assert_eq!(status, 200, "{templates}");
    assert_eq!(templates["total"], 1);
    assert_eq!(templates["items"][0]["file_matcher"], "member-*.csv");
    let (status, ready) = get("/readyz");
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["job_queue"], "ok");

    // A dropped file is imported by the engine; its run and rejected rows are read over REST.
    fs::copy(repo("fixtures/member-register/input.csv"), inbox.join("member-2026.csv")).unwrap();
    let mut run = Value::Null;
    wait_until(&mut serve, "the import run", TIMEOUT, || {
        let (_, page) = get("/imports/runs?status__in=succeeded,partially_succeeded,failed");
        run = page["items"][0].clone();
        !run.is_null()
    });
    assert_eq!(run["status"], "partially_succeeded", "{run}");
    assert_eq!(run["counts"]["valid"], 6);
    let run_id = run["_id"].as_str().unwrap();
    let (_, rejected) = get(&format!("/rejected-records?import_run_id={run_id}&per_page=100"));
    assert_eq!(rejected["total"], run["counts"]["rejected"], "{rejected}");
    assert!(rejected["total"].as_u64().unwrap() >= 7);

    // A template created through the API for the configured source takes effect with the next
    // file: it matches `api-*.csv`, which no configured template does.
    let (_, sources) = get("/imports/sources");
    let source_id = sources["items"][0]["_id"].as_str().unwrap().to_owned();
    let mut api_template: Value = serde_json::from_str(
        &fs::read_to_string(repo("fixtures/member-register/template.json")).unwrap(),
    )
    .unwrap();
    api_template["name"] = "members from the API".into();
    api_template["source_id"] = source_id.into();
    api_template["file_matcher"] = "api-*.csv".into();
    let api_created: Value = runtime.block_on(async {
        let response = http
            .post(format!("{url}/imports/templates/"))
            .bearer_auth(&token)
            .json(&api_template)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    });
    fs::copy(repo("fixtures/member-register/input.csv"), inbox.join("api-2026.csv")).unwrap();
    let api_template_id = api_created["_id"].as_str().unwrap().to_owned();
    let mut api_run = Value::Null;
    wait_until(&mut serve, "the run of the API template", TIMEOUT, || {
        let (_, page) = get(&format!(
            "/imports/runs?template_id={api_template_id}&status__in=succeeded,partially_succeeded,failed"
        ));
        api_run = page["items"][0].clone();
        !api_run.is_null()
    });
    assert_eq!(api_run["status"], "partially_succeeded", "{api_run}");
    assert_eq!(api_run["source_name"], "api-2026.csv");

    // An upload over the template's inline limits is queued (202) and imported by a worker.
    let mut template: Value = serde_json::from_str(
        &fs::read_to_string(repo("fixtures/member-register/template.json")).unwrap(),
    )
    .unwrap();
    template["name"] = "members, offloaded".into();
    template["offload_policy"] = serde_json::json!({"inline_max_size_mb": 0.0001});
    let created: Value = runtime.block_on(async {
        let response = http
            .post(format!("{url}/imports/templates/"))
            .bearer_auth(&token)
            .json(&template)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    });
    let (status, location, queued) = runtime.block_on(async {
        let file = reqwest::multipart::Part::bytes(
            fs::read(repo("fixtures/member-register/input.csv")).unwrap(),
        )
        .file_name("big-members.csv");
        let form = reqwest::multipart::Form::new()
            .text("template_id", created["_id"].as_str().unwrap().to_owned())
            .part("file", file);
        let response = http
            .post(format!("{url}/imports/runs"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        (status, location, response.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    let location = location.unwrap();
    let mut finished = Value::Null;
    wait_until(&mut serve, "the queued upload's run", TIMEOUT, || {
        let (_, run) = get(&location);
        let done =
            matches!(run["status"].as_str(), Some("succeeded" | "partially_succeeded" | "failed"));
        finished = run;
        done
    });
    assert_eq!(finished["status"], "partially_succeeded", "{finished}");
    assert_eq!(finished["source_name"], "big-members.csv");
    assert_eq!(finished["counts"]["read"], run["counts"]["read"]);
    // The kept upload is removed once its run is final.
    let uploads = dir.path().join("state/uploads");
    wait_until(&mut serve, "the kept upload's removal", TIMEOUT, || {
        fs::read_dir(&uploads).map(|d| d.count() == 0).unwrap_or(true)
    });

    let (status, metrics) = get("/metrics");
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("intake_import_runs{status=\"partially_succeeded\"} 3"), "{metrics}");
    assert!(metrics.contains("intake_job_queue_depth 0"), "{metrics}");

    // A source created through the API (with a template of its own) is polled within seconds,
    // while `intake serve` runs.
    let api_inbox = dir.path().join("api-inbox");
    let source = serde_json::json!({
        "name": "API inbox", "source_type": "watched_directory",
        "connection_config": {"path": api_inbox.display().to_string()},
        "polling_interval_seconds": 1,
    });
    let post = |path: &str, body: &Value| -> Value {
        runtime.block_on(async {
            let response = http
                .post(format!("{url}{path}"))
                .bearer_auth(&token)
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            response.json().await.unwrap()
        })
    };
    let mut template = api_template.clone();
    let api_source = post("/imports/sources/", &source);
    template["name"] = "members of the API inbox".into();
    template["source_id"] = api_source["_id"].clone();
    template["file_matcher"] = "*.csv".into();
    let inbox_template = post("/imports/templates/", &template);
    let template_id = inbox_template["_id"].as_str().unwrap().to_owned();
    let inbox_runs = |url: &str| -> Vec<Value> {
        let path = format!(
            "{url}/imports/runs?template_id={template_id}&status__in=succeeded,partially_succeeded,failed&sort=source_name"
        );
        let page: Value = runtime.block_on(async {
            http.get(&path).bearer_auth(&token).send().await.unwrap().json().await.unwrap()
        });
        page["items"].as_array().cloned().unwrap_or_default()
    };
    wait_until(&mut serve, "the API inbox folder", TIMEOUT, || api_inbox.is_dir());
    fs::copy(repo("fixtures/member-register/input.csv"), api_inbox.join("members-1.csv")).unwrap();
    let mut runs = Vec::new();
    wait_until(&mut serve, "the run of the API source", TIMEOUT, || {
        runs = inbox_runs(&url);
        !runs.is_empty()
    });
    assert_eq!(runs[0]["status"], "partially_succeeded", "{runs:?}");
    assert_eq!(runs[0]["source_id"], api_source["_id"]);

    // Deactivated through the API, it stops being polled: its last poll time stays put.
    let source_path = format!("/imports/sources/{}", api_source["_id"].as_str().unwrap());
    let patch_active = |active: bool| {
        let (_, current) = get(&source_path);
        let etag = format!("\"{}\"", current["revision_id"].as_str().unwrap());
        runtime.block_on(async {
            let body = serde_json::json!({"is_active": active});
            let response = http
                .patch(format!("{url}{source_path}"))
                .bearer_auth(&token)
                .header("If-Match", etag)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        });
    };
    patch_active(false);
    wait_until(&mut serve, "the API source's poller to stop", TIMEOUT, || {
        let before = get(&source_path).1["last_successful_poll_at"].clone();
        // Three poll intervals (and more than one refresh of the stored sources).
        std::thread::sleep(Duration::from_secs(3));
        before == get(&source_path).1["last_successful_poll_at"]
    });
    // Reactivated, it is polled again and imports what arrived meanwhile.
    fs::copy(repo("fixtures/member-register/input.csv"), api_inbox.join("members-1b.csv")).unwrap();
    patch_active(true);
    wait_until(&mut serve, "the run after reactivation", TIMEOUT, || {
        runs = inbox_runs(&url);
        runs.len() == 2
    });
    assert_eq!(runs[1]["source_name"], "members-1b.csv");

    assert!(serve.terminate(TIMEOUT).success(), "{}", serve.output());
    // The REST layer stopped with the engine.
    let refused = runtime.block_on(http.get(format!("{url}/healthz")).send());
    assert!(refused.is_err(), "the REST layer still answers after SIGTERM");

    // After a restart it is polled again.
    let mut serve = ServeProcess::start(&config, dir.path(), 2);
    let stdout = dir.path().join("serve-2.out");
    let mut url = None;
    wait_until(&mut serve, "the REST address", TIMEOUT, || {
        url = rest_url(&fs::read_to_string(&stdout).unwrap_or_default());
        url.is_some()
    });
    let url = url.unwrap();
    fs::copy(repo("fixtures/member-register/input.csv"), api_inbox.join("members-2.csv")).unwrap();
    wait_until(&mut serve, "the third run of the API source", TIMEOUT, || {
        runs = inbox_runs(&url);
        runs.len() == 3
    });
    assert_eq!(runs[2]["source_name"], "members-2.csv");
    assert!(serve.terminate(TIMEOUT).success(), "{}", serve.output());
}
