//! Operators fix rejected rows over the REST layer: a file imported by the runner into the
//! sandbox leaves rejected records; `/rejected-records` lists them by run, status and row, a
//! PATCH of `corrected_data` (If-Match) corrects one, a retry writes it through the platform
//! client, a discard gives up on another, and the history keeps every step. A bulk retry queues
//! jobs. The REST layer, the sandbox and the store are real, over real sockets and files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../api/tests/common/rest.rs"]
mod rest;

use std::sync::Arc;

use common::Platform;
use intake_api::rest::PlatformClients;
use intake_engine::jobs::{JobQueue, QueueConfig};
use intake_engine::runner::{
    FileImport, FileOutcome, RunnerOptions, SourceContext, import_source_file, stored_template,
};
use intake_sources::{SourceSettings, WatchedDirectory, WatchedDirectoryConfig};
use rest::RestServer;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TENANT: &str = common::TENANT;
const OTHER_TENANT: &str = "0123456789abcdef01234567";
const FILE: &str = "id,name,age\n1,Anna,31\n2,Björn,-4\n3,Chen,old\n";

/// A sandbox whose `players` refuse an age over 120, a REST server writing through it, and one
/// imported file with two rejected rows (Björn row 3, Chen row 4).
struct Bench {
    platform: Platform,
    server: RestServer,
    token: String,
    run_id: String,
}

impl Bench {
    async fn start(queue: bool) -> Bench {
        let platform = Platform::start_with(|config| {
            config.schemas.insert(
                "players".into(),
                json!({"type": "object", "properties": {"age": {"type": "integer", "maximum": 120}}}),
            );
        })
        .await;
        let queue_dir = tempfile::tempdir().unwrap();
        let queue = if queue {
            let path = queue_dir.path().join("jobs.db");
            Some(JobQueue::open(path.to_str().unwrap(), QueueConfig::default()).await.unwrap())
        } else {
            None
        };
        let client = platform.writer_client();
        let server = RestServer::start_with(move |state| {
            state.platform = PlatformClients::new().with_client(TENANT, client);
            state.queue = queue;
        })
        .await;
        std::mem::forget(queue_dir); // the queue file lives as long as the test process
        let token = server.full_token(TENANT);

        // The template is created through the API; the runner imports with the stored one.
        let body = json!({
            "name": "members",
            "file_type": "csv",
            "target_resource": "players",
            "file_matcher": "*.csv",
            "field_mapping": common::member_mapping(),
            "validation": common::member_validation(),
        });
        let (created, _) = server.create(&token, "/imports/templates/", &body).await;
        let template_id = created["_id"].as_str().unwrap();
        let template = stored_template(&server.store, TENANT, template_id).await.unwrap();

        let inbox = server.dir().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        std::fs::write(inbox.join("members.csv"), FILE).unwrap();
        let folder = WatchedDirectory::build(
            &WatchedDirectoryConfig { path: inbox },
            &SourceSettings::named("inbox"),
        )
        .unwrap();
        let source = SourceContext::new("5f0000000000000000000001", Arc::new(folder));
        let file = source.source.stat("members.csv").await.unwrap();
        let outcome = import_source_file(FileImport {
            store: &server.store,
            tenant: TENANT,
            source: &source,
            templates: &[template],
            client: platform.writer_client(),
            file: &file,
            options: &RunnerOptions::default(),
            cancel: CancellationToken::new(),
        })
        .await
        .unwrap();
        let FileOutcome::Imported { run, .. } = outcome else { panic!("{outcome:?}") };
        Bench { platform, server, token, run_id: run.meta.id }
    }

    /// The run's rejected records, by row.
    async fn rejected(&self) -> Vec<Value> {
        let path = format!("/rejected-records?import_run_id={}&sort=row_number", self.run_id);
        let page = json(self.server.get(&self.token, &path).await, 200).await;
        page["items"].as_array().unwrap().clone()
    }

    async fn record(&self, id: &str) -> (Value, String) {
        let response = self.server.get(&self.token, &format!("/rejected-records/{id}")).await;
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        (json(response, 200).await, etag)
    }

    async fn history(&self, id: &str) -> Vec<(Value, Value)> {
        let path = format!("/rejected-records/{id}/history");
        let body = json(self.server.get(&self.token, &path).await, 200).await;
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["from_status"].clone(), h["to_status"].clone()))
            .collect()
    }

    async fn correct(&self, id: &str, data: Value) -> Value {
        let (_, etag) = self.record(id).await;
        let path = format!("/rejected-records/{id}");
        let body = json!({"corrected_data": data});
        json(self.server.patch(&self.token, &path, &body, Some(&etag)).await, 200).await
    }
}

async fn json(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
}

#[tokio::test]
async fn operators_list_correct_retry_and_discard_rejected_records() {
    let bench = Bench::start(false).await;
    let server = &bench.server;
    let token = &bench.token;
    let rejected = bench.rejected().await;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let (bjorn, chen) = (&rejected[0], &rejected[1]);
    assert_eq!(bjorn["original_data"], json!({"id": "2", "name": "Björn", "age": "-4"}));
    assert_eq!(bjorn["status"], "pending");
    let bjorn_id = bjorn["_id"].as_str().unwrap();
    let chen_id = chen["_id"].as_str().unwrap();

    // Filters by status and row; another tenant sees nothing.
    let path = format!("/rejected-records?status=pending&row_number={}", chen["row_number"]);
    let page = json(server.get(token, &path).await, 200).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["_id"], chen_id);
    let other = server.full_token(OTHER_TENANT);
    assert_eq!(json(server.get(&other, "/rejected-records").await, 200).await["total"], 0);
    json(server.get(&other, &format!("/rejected-records/{bjorn_id}")).await, 404).await;

    // PATCH needs If-Match, refuses stale ones and any field but corrected_data.
    let path = format!("/rejected-records/{bjorn_id}");
    let correction = json!({"corrected_data": {"id": "2", "name": "Björn", "age": "44"}});
    json(server.patch(token, &path, &correction, None).await, 428).await;
    json(server.patch(token, &path, &correction, Some("\"stale\"")).await, 412).await;
    let (_, etag) = bench.record(bjorn_id).await;
    let refused =
        json(server.patch(token, &path, &json!({"status": "retried"}), Some(&etag)).await, 422)
            .await;
    assert_eq!(refused["detail"][0]["loc"], json!(["body", "status"]));
    assert_eq!(refused["detail"][0]["type"], "readonly");
    let corrected = json(server.patch(token, &path, &correction, Some(&etag)).await, 200).await;
    assert_eq!(corrected["status"], "corrected");

    // The retry writes it through the platform client: retried, and the platform has it.
    let retried = json(server.post(token, &format!("{path}/retry"), &json!({})).await, 200).await;
    assert_eq!(retried["record"]["status"], "retried", "{retried}");
    let players = bench.platform.items("players");
    assert!(players.iter().any(|p| p["name"] == "Björn" && p["age"] == 44), "{players:?}");
    assert_eq!(
        bench.history(bjorn_id).await,
        [
            (Value::Null, json!("pending")),
            (json!("pending"), json!("corrected")),
            (json!("corrected"), json!("retried"))
        ]
    );
    // A retried record is final: correcting or retrying it again is 409.
    let (_, etag) = bench.record(bjorn_id).await;
    json(server.patch(token, &path, &correction, Some(&etag)).await, 409).await;
    json(server.post(token, &format!("{path}/retry"), &json!({})).await, 409).await;

    // A correction the platform refuses goes back to pending with the platform's errors.
    bench.correct(chen_id, json!({"id": "3", "name": "Chen", "age": "300"})).await;
    let chen_path = format!("/rejected-records/{chen_id}");
    let answer =
        json(server.post(token, &format!("{chen_path}/retry"), &json!({})).await, 200).await;
    assert_eq!(answer["record"]["status"], "pending", "{answer}");
    assert!(answer["record"]["validation_errors"].to_string().contains("age"), "{answer}");

    // Discard with a note; afterwards the record stays readable, and is final.
    let discarded = json(
        server
            .post(token, &format!("{chen_path}/discard"), &json!({"note": "left the club"}))
            .await,
        200,
    )
    .await;
    assert_eq!(discarded["status"], "discarded");
    let history = bench.history(chen_id).await;
    assert_eq!(history.last().unwrap().1, json!("discarded"));
    let (record, etag) = bench.record(chen_id).await;
    assert_eq!(record["status"], "discarded");
    let body = json!({"corrected_data": {"id": "3"}});
    json(server.patch(token, &chen_path, &body, Some(&etag)).await, 409).await;

    // Records are made by imports only.
    let response = server.post(token, "/rejected-records/", &json!({"row_number": 1})).await;
    assert_eq!(response.status(), 405);
    let response = server.put(token, &chen_path, &json!({}), Some(&etag)).await;
    assert_eq!(response.status(), 405);
    // Capabilities: reading does not allow correcting.
    let reader = server.token(TENANT, &["rejected-records:list", "rejected-records:read"]);
    let refused = json(server.patch(&reader, &path, &correction, Some(&etag)).await, 403).await;
    assert_eq!(refused["detail"]["missing"], json!(["rejected-records:update"]));
}

#[tokio::test]
async fn a_bulk_retry_queues_the_matching_corrected_records() {
    let bench = Bench::start(true).await;
    let server = &bench.server;
    let token = &bench.token;
    let rejected = bench.rejected().await;
    for (record, age) in rejected.iter().zip(["44", "55"]) {
        let id = record["_id"].as_str().unwrap();
        let data = json!({"id": record["original_data"]["id"], "name": record["original_data"]["name"], "age": age});
        bench.correct(id, data).await;
    }
    let path = format!("/rejected-records/retry?import_run_id={}", bench.run_id);
    let answer = json(server.post(token, &path, &json!({})).await, 202).await;
    assert_eq!(answer["queued"], 2, "{answer}");
    let mut ids: Vec<&str> =
        answer["record_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected: Vec<&str> = rejected.iter().map(|r| r["_id"].as_str().unwrap()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(answer["jobs"].as_array().unwrap().len(), 1);
    // The queued job is the queue's depth in /metrics (no worker runs here).
    let metrics =
        server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("intake_job_queue_depth 1"), "{metrics}");

    // A filter nothing matches queues nothing.
    let answer =
        json(server.post(token, "/rejected-records/retry?status=pending", &json!({})).await, 200)
            .await;
    assert_eq!(answer["queued"], 0);
}

#[tokio::test]
async fn a_bulk_retry_without_a_job_queue_is_refused() {
    let bench = Bench::start(false).await;
    let record = &bench.rejected().await[0];
    let id = record["_id"].as_str().unwrap();
    bench.correct(id, json!({"id": "2", "name": "Björn", "age": "44"})).await;
    let answer =
        json(bench.server.post(&bench.token, "/rejected-records/retry", &json!({})).await, 503)
            .await;
    assert_eq!(answer["detail"]["error"], "queue_not_configured");
}
