//! The reliability promise, end to end over real sockets: with 10 % 5xx, 5 % 429 and 3 % dropped
//! connections (half of them after the write was applied), an upsert and a create of 2,000 rows
//! each end with exactly the expected records on the platform — none missing, none twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Platform, config, write};
use intake_api::sandbox::Faults;
use intake_engine::template::ImportMode;
use serde_json::{Value, json};

fn faults() -> Faults {
    Faults {
        error_rate: 0.10,
        throttle_rate: 0.05,
        drop_rate: 0.03,
        retry_after_seconds: 0,
        ..Faults::default()
    }
}

/// Checks that the faults were really injected, including drops after an applied write.
fn assert_faults_happened(platform: &Platform) {
    let stats = platform.sandbox.stats();
    for counter in
        ["injected_errors", "injected_throttles", "dropped_before_write", "dropped_after_write"]
    {
        assert!(stats[counter].as_u64().expect("a counter") > 0, "no {counter}: {stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_under_faults_ends_with_exactly_the_expected_records() {
    let platform = Platform::start().await;
    platform.seed(
        "players",
        (0..1000)
            .map(|n| json!({"code": format!("P{n:05}"), "goals": 0, "name": "Seed"}))
            .collect(),
    );
    platform.sandbox.set_faults(faults());
    let mut cfg = config("players", ImportMode::Upsert);
    cfg.upsert_key = Some("code".into());
    let rows: Vec<Value> = (0..2000)
        .map(|n| json!({"code": format!("P{n:05}"), "goals": n + 1, "name": "File"}))
        .collect();
    let written = write(platform.writer_client(), cfg, rows, None).await;
    let report = &written.report;
    assert_eq!(
        (report.failure.clone(), report.rejected, report.not_attempted),
        (None, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.created, 1000, "{report:?}");
    // An update whose answer was dropped after it was applied comes back as 412, is re-read and
    // found already applied: unchanged.
    assert_eq!(report.updated + report.unchanged, 1000, "{report:?}");
    assert_faults_happened(&platform);

    let every_item = platform.all_items("players");
    assert_eq!(every_item.len(), 2000, "no record created twice, none deleted");
    let mut by_code = BTreeMap::new();
    for item in platform.items("players") {
        let code = item["code"].as_str().unwrap().to_owned();
        assert!(by_code.insert(code.clone(), item).is_none(), "{code} twice");
    }
    let expected: BTreeMap<String, i64> = (0..2000).map(|n| (format!("P{n:05}"), n + 1)).collect();
    let actual: BTreeMap<String, i64> = by_code
        .iter()
        .map(|(code, item)| (code.clone(), item["goals"].as_i64().unwrap()))
        .collect();
    assert_eq!(actual, expected);
    assert!(by_code.values().all(|item| item["name"] == "File"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_under_faults_creates_every_row_exactly_once() {
    let platform = Platform::start().await;
    platform.sandbox.set_faults(faults());
    let rows: Vec<Value> =
        (0..2000).map(|n| json!({"seq": n, "name": format!("row {n}")})).collect();
    let written =
        write(platform.writer_client(), config("players", ImportMode::Create), rows, None).await;
    let report = &written.report;
    assert_eq!((report.created, report.failure.clone()), (2000, None), "{report:?}");
    assert_faults_happened(&platform);
    assert!(
        platform.sandbox.stats()["idempotent_replays"].as_u64().unwrap() > 0,
        "a retried create was replayed"
    );

    let items = platform.all_items("players");
    let seqs: Vec<i64> = items.iter().map(|i| i["seq"].as_i64().unwrap()).collect();
    let distinct: BTreeSet<i64> = seqs.iter().copied().collect();
    assert_eq!(seqs.len(), 2000, "exactly one record per row");
    assert_eq!(distinct, (0..2000).collect::<BTreeSet<i64>>());
    // Every row's outcome names the record that holds it.
    let ids: BTreeSet<String> =
        items.iter().map(|i| i["_id"].as_str().unwrap().to_owned()).collect();
    for outcome in &written.outcomes {
        match outcome {
            intake_engine::m2m::writer::RowWriteOutcome::Created { id, .. } => {
                assert!(ids.contains(id))
            }
            other => panic!("{other:?}"),
        }
    }
}
