//! Integrators upload files and preview templates over the REST layer: `POST /imports/runs`
//! imports a small file inline through the platform client (200 with the finished run, rejected
//! rows as rejected records), refuses what it cannot import with a clear answer, and `POST
//! /imports/templates/{id}/preview` shows the first rows with their errors while writing
//! nothing. Real sandbox, real REST server, real store, over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../api/tests/common/rest.rs"]
mod rest;

use common::Platform;
use intake_api::rest::PlatformClients;
use reqwest::multipart::{Form, Part};
use rest::RestServer;
use serde_json::{Value, json};

const TENANT: &str = common::TENANT;
const FILE: &str = "id,name,age\n1,Anna,31\n2,Björn,-4\n3,Chen,old\n4,Dana,52\n";

fn members_template(extra: Value) -> Value {
    let mut body = json!({
        "name": "members",
        "file_type": "csv",
        "target_resource": "players",
        "field_mapping": common::member_mapping(),
        "validation": common::member_validation(),
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn json(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
}

fn file_part(content: &str, name: &str) -> Part {
    Part::bytes(content.as_bytes().to_vec()).file_name(name.to_owned())
}

async fn post_form(server: &RestServer, token: &str, path: &str, form: Form) -> reqwest::Response {
    server.http.post(server.url(path)).bearer_auth(token).multipart(form).send().await.unwrap()
}

/// A sandbox and a REST server writing through it, with the members template created.
async fn start(template: Value) -> (Platform, RestServer, String, String) {
    let platform = Platform::start().await;
    let client = platform.writer_client();
    let server = RestServer::start_with(move |state| {
        state.platform = PlatformClients::new().with_client(TENANT, client);
        state.limits.max_upload_bytes = 64 * 1024;
    })
    .await;
    let token = server.full_token(TENANT);
    let (created, _) = server.create(&token, "/imports/templates/", &template).await;
    let id = created["_id"].as_str().unwrap().to_owned();
    (platform, server, token, id)
}

fn upload_token(server: &RestServer) -> String {
    server.token(
        TENANT,
        &[
            "imports/runs:create",
            "imports/runs:read",
            "rejected-records:list",
            "imports/templates:read",
        ],
    )
}

#[tokio::test]
async fn a_small_upload_is_imported_inline_and_its_rejected_rows_are_kept() {
    let (platform, server, _, template_id) = start(members_template(json!({}))).await;
    let token = upload_token(&server);
    let form = Form::new()
        .text("template_id", template_id.clone())
        .part("file", file_part(FILE, "members.csv"));
    let response = post_form(&server, &token, "/imports/runs", form).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let run = json(response, 200).await;
    assert_eq!(run["status"], "partially_succeeded", "{run}");
    assert_eq!(run["template_id"], template_id.as_str());
    assert_eq!(run["source_name"], "members.csv");
    assert_eq!(run["counts"]["read"], 4);
    assert_eq!(run["counts"]["created"], 2);
    assert_eq!(run["counts"]["rejected"], 2);
    assert_eq!(location, format!("/imports/runs/{}", run["_id"].as_str().unwrap()));

    // The platform has the valid rows; the run and its rejected records are readable.
    let mut names: Vec<String> =
        platform.items("players").iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["Anna", "Dana"]);
    let read = json(server.get(&token, &location).await, 200).await;
    assert_eq!(read["status"], "partially_succeeded");
    let path =
        format!("/rejected-records?import_run_id={}&sort=row_number", run["_id"].as_str().unwrap());
    let rejected = json(server.get(&token, &path).await, 200).await;
    assert_eq!(rejected["total"], 2);
    assert_eq!(rejected["items"][0]["original_data"]["name"], "Björn");

    // /metrics (no token) counts the run and its rows from the store, and this process's
    // writes to the platform.
    let metrics =
        server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("intake_import_runs{status=\"partially_succeeded\"} 1"), "{metrics}");
    assert!(metrics.contains("intake_import_rows{outcome=\"created\"} 2"), "{metrics}");
    assert!(metrics.contains("intake_import_rows{outcome=\"rejected\"} 2"), "{metrics}");
    assert!(metrics.contains("intake_sources_in_error 0"), "{metrics}");
    let writes: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("intake_platform_write_seconds_count{method=\"POST\",outcome=\"2xx\"}")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(writes >= 2, "the two created rows were timed: {metrics}");

    // The same bytes uploaded again are a new run whose rows the idempotency keys skip.
    let form =
        Form::new().text("template_id", template_id).part("file", file_part(FILE, "members.csv"));
    let again = json(post_form(&server, &token, "/imports/runs", form).await, 200).await;
    assert_ne!(again["_id"], run["_id"]);
    assert_eq!(platform.items("players").len(), 2, "nothing is written twice");
}

#[tokio::test]
async fn uploads_that_cannot_be_imported_are_refused_clearly() {
    let policy = json!({"offload_policy": {"inline_max_size_mb": 0.00001}});
    let (platform, server, admin, template_id) = start(members_template(json!({}))).await;
    let token = upload_token(&server);

    // Missing parts and unknown templates: 422 at their place.
    let form = Form::new().part("file", file_part(FILE, "m.csv"));
    let body = json(post_form(&server, &token, "/imports/runs", form).await, 422).await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "template_id"]));
    let form = Form::new().text("template_id", template_id.clone());
    let body = json(post_form(&server, &token, "/imports/runs", form).await, 422).await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "file"]));
    let form = Form::new()
        .text("template_id", "aaaaaaaaaaaaaaaaaaaaaaaa")
        .part("file", file_part(FILE, "m.csv"));
    let body = json(post_form(&server, &token, "/imports/runs", form).await, 422).await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "template_id"]));
    // Another tenant's template does not exist for the caller.
    let other = server.token("0123456789abcdef01234567", &["imports/runs:create"]);
    let form =
        Form::new().text("template_id", template_id.clone()).part("file", file_part(FILE, "m.csv"));
    json(post_form(&server, &other, "/imports/runs", form).await, 422).await;

    // Over the upload limit: 413, and nothing was imported.
    let big = format!("id,name,age\n{}", "9,Xavier,40\n".repeat(8000));
    let form = Form::new()
        .text("template_id", template_id.clone())
        .part("file", file_part(&big, "big.csv"));
    let body = json(post_form(&server, &token, "/imports/runs", form).await, 413).await;
    assert_eq!(body["detail"]["error"], "payload_too_large");

    // Over the template's inline limits, and this server has no queue for uploads: 503.
    let mut offloaded = members_template(policy);
    offloaded["name"] = json!("offloaded");
    let (created, _) = server.create(&admin, "/imports/templates/", &offloaded).await;
    let form = Form::new()
        .text("template_id", created["_id"].as_str().unwrap().to_owned())
        .part("file", file_part(FILE, "m.csv"));
    let body = json(post_form(&server, &token, "/imports/runs", form).await, 503).await;
    assert_eq!(body["detail"]["error"], "queue_not_configured");

    // Without the capability: 403.
    let reader = server.token(TENANT, &["imports/runs:read"]);
    let form = Form::new().text("template_id", template_id).part("file", file_part(FILE, "m.csv"));
    let body = json(post_form(&server, &reader, "/imports/runs", form).await, 403).await;
    assert_eq!(body["detail"]["missing"], json!(["imports/runs:create"]));

    assert!(platform.items("players").is_empty());
    let runs = json(server.get(&admin, "/imports/runs").await, 200).await;
    assert_eq!(runs["total"], 0, "refused uploads leave no run: {runs}");
}

#[tokio::test]
async fn a_preview_shows_the_first_rows_and_writes_nothing() {
    let (platform, server, admin, template_id) = start(members_template(json!({}))).await;
    let token = upload_token(&server);
    let form = Form::new().text("rows", "3").part("file", file_part(FILE, "sample.csv"));
    let path = format!("/imports/templates/{template_id}/preview");
    let report = json(post_form(&server, &token, &path, form).await, 200).await;
    assert_eq!(report["rows_previewed"], 3, "{report}");
    assert_eq!(report["valid"], 1);
    assert_eq!(report["rejected"], 2);
    assert_eq!(report["truncated"], true);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[0]["status"], "valid");
    assert_eq!(rows[0]["data"]["name"], "Anna");
    assert_eq!(rows[1]["status"], "rejected");
    assert_eq!(rows[1]["original_data"]["age"], "-4");
    assert!(!rows[1]["errors"].as_array().unwrap().is_empty());

    // An unsaved template can be tried too (it needs the create capability).
    let template = members_template(json!({"name": "draft"})).to_string();
    let form = Form::new().text("template", template).part("file", file_part(FILE, "sample.csv"));
    let report =
        json(post_form(&server, &admin, "/imports/templates/preview", form).await, 200).await;
    assert_eq!(report["rows_previewed"], 4);
    assert_eq!(report["truncated"], false);
    let form = Form::new()
        .text("template", r#"{"name": "x", "file_type": "csv"}"#)
        .part("file", file_part(FILE, "s.csv"));
    let body =
        json(post_form(&server, &admin, "/imports/templates/preview", form).await, 422).await;
    assert!(body.to_string().contains("target_resource"), "{body}");
    assert_eq!(body["detail"][0]["loc"][1], "template");
    let form = Form::new().text("rows", "0").part("file", file_part(FILE, "s.csv"));
    json(post_form(&server, &token, &path, form).await, 422).await;

    // Nothing was written: no platform rows, no runs, no rejected records.
    assert!(platform.items("players").is_empty());
    assert_eq!(json(server.get(&admin, "/imports/runs").await, 200).await["total"], 0);
    assert_eq!(json(server.get(&admin, "/rejected-records").await, 200).await["total"], 0);
}
