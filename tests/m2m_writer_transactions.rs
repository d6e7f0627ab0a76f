//! The row writer's transaction modes against the sandbox over real sockets: best effort,
//! batched with `stop_on_error`, all-or-nothing (commit, and the roll-back of created, updated and
//! deleted records — soft deletes are undone with `include_deleted=true` — when a write fails
//! midway or the file is too large), and cancellation.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Platform, Proxy, config, write, write_cancellable};
use intake_api::sandbox::{Faults, SandboxConfig};
use intake_engine::m2m::writer::{CompensationKind, RowWriteOutcome, TransactionMode};
use intake_engine::template::ImportMode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A sandbox where `players.goals` must be ≥ 0: a row with negative goals passes our pipeline
/// (in these tests) but the platform refuses it with 422.
async fn strict_platform() -> Platform {
    Platform::start_with(|c: &mut SandboxConfig| {
        c.schemas.insert(
            "players".into(),
            json!({"type": "object", "properties": {"goals": {"type": "integer", "minimum": 0}}}),
        );
    })
    .await
}

fn rows(count: u64, bad_row: Option<u64>) -> Vec<Value> {
    (1..=count)
        .map(|n| {
            let goals = if Some(n) == bad_row { -1 } else { n as i64 };
            json!({"code": format!("R{n:04}"), "goals": goals})
        })
        .collect()
}

fn codes(platform: &Platform) -> Vec<String> {
    let mut codes: Vec<String> = platform
        .items("players")
        .iter()
        .map(|i| i["code"].as_str().expect("a code").to_owned())
        .collect();
    codes.sort();
    codes
}

#[tokio::test]
async fn best_effort_writes_every_row_the_platform_accepts() {
    let platform = strict_platform().await;
    let written = write(
        platform.writer_client(),
        config("players", ImportMode::Create),
        rows(120, Some(77)),
        None,
    )
    .await;
    assert_eq!((written.report.created, written.report.rejected), (119, 1), "{:?}", written.report);
    assert!(written.outcome(77).is_failure());
    assert_eq!(written.report.failure, None);
    assert_eq!(platform.items("players").len(), 119);
}

#[tokio::test]
async fn batched_with_stop_on_error_stops_after_the_batch_with_a_failed_row() {
    let platform = strict_platform().await;
    let mut cfg = config("players", ImportMode::Create);
    cfg.transaction.mode = TransactionMode::Batched;
    cfg.transaction.batch_size = 10;
    cfg.transaction.stop_on_error = true;
    let written = write(platform.writer_client(), cfg, rows(35, Some(15)), None).await;
    let report = &written.report;
    assert_eq!((report.created, report.rejected, report.not_attempted), (19, 1, 15), "{report:?}");
    for n in 21..=35 {
        assert!(matches!(written.outcome(n), RowWriteOutcome::NotAttempted { .. }), "row {n}");
    }
    assert!(report.failure.as_deref().unwrap_or_default().contains("batch 2"), "{report:?}");
    let expected: Vec<String> = (1..=20).filter(|n| *n != 15).map(|n| format!("R{n:04}")).collect();
    assert_eq!(codes(&platform), expected);

    // Without stop_on_error every batch runs.
    let platform = strict_platform().await;
    let mut cfg = config("players", ImportMode::Create);
    cfg.transaction.mode = TransactionMode::Batched;
    cfg.transaction.batch_size = 10;
    let written = write(platform.writer_client(), cfg, rows(35, Some(15)), None).await;
    assert_eq!((written.report.created, written.report.rejected), (34, 1));
}

#[tokio::test]
async fn all_or_nothing_commits_when_every_write_succeeds() {
    let platform = strict_platform().await;
    let mut cfg = config("players", ImportMode::Upsert);
    cfg.upsert_key = Some("code".into());
    cfg.transaction.mode = TransactionMode::AllOrNothing;
    let written = write(platform.writer_client(), cfg, rows(150, None), None).await;
    assert_eq!((written.report.created, written.report.rows()), (150, 150), "{:?}", written.report);
    assert_eq!(written.outcomes.len(), 150);
    assert_eq!((written.report.compensated.clone(), written.report.failure.clone()), (None, None));
    assert_eq!(platform.items("players").len(), 150);
}

#[tokio::test]
async fn all_or_nothing_compensates_everything_written_when_a_write_fails_midway() {
    let platform = strict_platform().await;
    let seeded = platform.seed(
        "players",
        vec![
            json!({"code": "A", "name": "Ada", "goals": 1}),
            json!({"code": "B", "name": "Bo", "goals": 2}),
            json!({"code": "C", "name": "Cy", "goals": 3}),
        ],
    );
    let before: BTreeMap<String, Value> =
        seeded.iter().map(|i| (i["code"].as_str().unwrap().to_owned(), i.clone())).collect();
    let mut cfg = config("players", ImportMode::Upsert);
    cfg.upsert_key = Some("code".into());
    cfg.delete_column = Some("remove".into());
    cfg.transaction.mode = TransactionMode::AllOrNothing;
    let mut file = vec![
        json!({"code": "A", "goals": 10, "extra": "added by the file"}),
        json!({"code": "C", "remove": "yes"}),
    ];
    // Rows 3..=130 create new records; row 90 is refused by the platform (422).
    file.extend(
        (3..=130u64)
            .map(|n| json!({"code": format!("N{n:04}"), "goals": if n == 90 { -1 } else { 1 }})),
    );
    let written = write(platform.writer_client(), cfg, file, None).await;
    let report = &written.report;

    assert!(report.failure.as_deref().unwrap_or_default().contains("row 90"), "{report:?}");
    assert!(written.outcome(90).is_failure());
    let compensation = report.compensated.clone().expect("a roll-back");
    assert_eq!(compensation.restored_updated, 1, "{compensation:?}");
    assert!(
        compensation.deleted_created >= 60,
        "rows before 90 were created and are deleted again"
    );
    // The delete of row 2 is undone too: the record is read and restored with
    // include_deleted=true. Nothing remains to do by hand.
    assert_eq!(compensation.undeleted, 1, "{compensation:?}");
    assert!(compensation.complete(), "{compensation:?}");
    let undelete: Vec<_> =
        compensation.actions.iter().filter(|a| a.kind == CompensationKind::Undelete).collect();
    assert_eq!(undelete.len(), 1, "{compensation:?}");
    assert_eq!(undelete[0].row_number, Some(2));
    assert_eq!(undelete[0].id, before["C"]["_id"].as_str().unwrap());
    assert_eq!(compensation.actions.len() as u64, compensation.deleted_created + 2);

    // Outcomes say what is left: nothing but the refused row; every other row is rolled back.
    assert_eq!(
        (report.created, report.updated, report.deleted, report.rejected),
        (0, 0, 0, 1),
        "{report:?}"
    );
    assert_eq!(report.not_attempted, 129);
    for row in [1, 2] {
        assert!(
            matches!(written.outcome(row), RowWriteOutcome::NotAttempted { reason, .. } if reason.contains("rolled back")),
            "row {row}: {:?}",
            written.outcome(row)
        );
    }

    // The platform is as before the run: the same three live records with their data.
    let live = platform.items("players");
    assert_eq!(live.len(), 3, "{live:?}");
    let a = platform.item_where("players", "code", &json!("A"));
    assert_eq!(
        (a["goals"].clone(), a.get("extra").cloned()),
        (json!(1), None),
        "A restored from its pre-image"
    );
    assert_eq!(a["name"], "Ada");
    assert_eq!(platform.item_where("players", "code", &json!("B"))["goals"], 2);
    let c = platform.item_where("players", "code", &json!("C"));
    assert_eq!((c["is_deleted"].clone(), c["deleted_at"].clone()), (json!(false), Value::Null));
    for field in ["_id", "code", "name", "goals", "created_at", "tenant_id"] {
        assert_eq!(c[field], before["C"][field], "C.{field} is as before the run");
    }
}

#[tokio::test]
async fn all_or_nothing_brings_back_a_record_the_run_updated_then_deleted() {
    let platform = strict_platform().await;
    let seeded = platform.seed("players", vec![json!({"code": "A", "name": "Ada", "goals": 1})]);
    let mut cfg = config("players", ImportMode::Upsert);
    cfg.upsert_key = Some("code".into());
    cfg.delete_column = Some("remove".into());
    cfg.transaction.mode = TransactionMode::AllOrNothing;
    // Row 1 updates A, row 2 deletes it, row 3 is refused by the platform (422) — only once A is
    // deleted: its POST is held until then.
    let id = seeded[0]["_id"].as_str().unwrap().to_owned();
    let (other, deleted_id) = (platform.writer_client(), id.clone());
    let hook: common::Hook = Box::new(move || {
        Box::pin(async move {
            for _ in 0..500 {
                let item = other.get_including_deleted("players", &deleted_id).await.unwrap();
                if item.body["is_deleted"] == true {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("row 2 never deleted A");
        })
    });
    let proxy = Proxy::start(platform.url.clone()).await;
    proxy.hook("POST", "/players/", hook);
    let file = vec![
        json!({"code": "A", "goals": 10}),
        json!({"code": "A", "remove": "yes"}),
        json!({"code": "N", "goals": -1}),
    ];
    let written = write(platform.writer_client_via(&proxy.url), cfg, file, None).await;
    assert!(proxy.hook_ran());
    let compensation = written.report.compensated.clone().expect("a roll-back");
    // A's first effect is the update: undoing it un-deletes A, then puts its pre-image back.
    assert_eq!(compensation.restored_updated, 1, "{compensation:?}");
    assert!(compensation.complete(), "{compensation:?}");
    let on_a: Vec<String> = proxy
        .stats
        .requests()
        .into_iter()
        .filter(|r| r.contains(&id) && !r.starts_with("GET"))
        .collect();
    assert_eq!(
        on_a,
        [
            format!("PATCH /players/{id}"),
            format!("DELETE /players/{id}"),
            format!("PATCH /players/{id}?include_deleted=true"),
            format!("PUT /players/{id}"),
        ]
    );
    let a = platform.item_where("players", "code", &json!("A"));
    assert_eq!(a["_id"], seeded[0]["_id"]);
    assert_eq!((a["name"].clone(), a["goals"].clone()), (json!("Ada"), json!(1)));
    assert_eq!((a["is_deleted"].clone(), a["deleted_at"].clone()), (json!(false), Value::Null));
    assert_eq!(platform.items("players").len(), 1);
}

#[tokio::test]
async fn all_or_nothing_refuses_a_file_larger_than_max_transaction_rows() {
    let platform = strict_platform().await;
    let mut cfg = config("players", ImportMode::Create);
    cfg.transaction.mode = TransactionMode::AllOrNothing;
    cfg.transaction.max_transaction_rows = Some(150);
    assert!(
        cfg.transaction.admits(200).is_err(),
        "a caller that knows the count can refuse up front"
    );
    let written = write(platform.writer_client(), cfg, rows(200, None), None).await;
    let report = &written.report;
    assert!(
        report.failure.as_deref().unwrap_or_default().contains("max_transaction_rows"),
        "{report:?}"
    );
    // Rows of the first chunk were being written when the 151st arrived; they were rolled back.
    let compensation = report.compensated.clone().expect("a roll-back");
    assert!(compensation.deleted_created > 0 && compensation.complete(), "{compensation:?}");
    assert_eq!(report.not_attempted, 200);
    assert!(platform.items("players").is_empty());
}

#[tokio::test]
async fn cancelling_stops_taking_rows_and_still_reports_every_row_once() {
    let platform = Platform::start().await;
    platform.sandbox.set_faults(Faults { latency_ms: 20, ..Faults::default() });
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let written = write_cancellable(
        platform.writer_client(),
        config("players", ImportMode::Create),
        rows(2000, None),
        None,
        cancel,
    )
    .await;
    let report = &written.report;
    assert!(report.cancelled);
    assert_eq!(report.failure, None);
    assert!(written.sent < 2000, "the channel was closed: the producer stopped early");
    assert_eq!(written.outcomes.len() as u64, written.sent, "one outcome per row sent");
    let rows: Vec<u64> = written.outcomes.iter().map(RowWriteOutcome::row_number).collect();
    assert_eq!(rows, (1..=written.sent).collect::<Vec<_>>());
    assert!(report.created > 0 && report.not_attempted > 0, "{report:?}");
    assert_eq!(report.created + report.not_attempted, written.sent);
    assert_eq!(
        platform.items("players").len() as u64,
        report.created,
        "every created row is reported"
    );
}
