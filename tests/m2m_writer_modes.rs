//! The row writer's import modes against the sandbox over real sockets: create (and its re-run),
//! append, update (a missing key is a rejected row), upsert at about one request per row, sync
//! (the deletes, the share guard, the incomplete-file guard), `delete_column`, same-key rows in
//! file order, a `412` caused by a concurrent writer, `422` field errors and a `403`.

mod common;

use std::collections::BTreeMap;

use common::{Platform, Proxy, config, object, write};
use intake_api::sandbox::SandboxConfig;
use intake_engine::m2m::writer::{FileVerdict, RowWriteOutcome};
use intake_engine::template::ImportMode;
use serde_json::{Value, json};

fn player(code: &str, name: &str, goals: i64) -> Value {
    json!({"code": code, "name": name, "goals": goals, "club": "north"})
}

/// `code` → item, for live items.
fn by_code(items: Vec<Value>) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for item in items {
        let code = item["code"].as_str().expect("a code").to_owned();
        assert!(map.insert(code.clone(), item).is_none(), "two live records with code {code}");
    }
    map
}

#[tokio::test]
async fn create_writes_every_row_and_a_rerun_of_the_same_file_creates_nothing_more() {
    let platform = Platform::start().await;
    let rows: Vec<Value> = (0..5).map(|n| player(&format!("P{n}"), "Ada", n)).collect();
    let first =
        write(platform.writer_client(), config("players", ImportMode::Create), rows.clone(), None)
            .await;
    assert_eq!((first.report.created, first.report.rows()), (5, 5), "{:?}", first.report);
    assert_eq!(platform.items("players").len(), 5);

    // The same file again (same run key): the same Idempotency-Keys, replayed by the platform.
    let second =
        write(platform.writer_client(), config("players", ImportMode::Create), rows, None).await;
    assert_eq!(second.report.created, 5);
    assert_eq!(platform.items("players").len(), 5, "a re-run must not duplicate");
    assert_eq!(first.outcomes, second.outcomes, "the re-run reports the same records");
}

#[tokio::test]
async fn create_with_a_natural_key_skips_rows_whose_record_exists() {
    let platform = Platform::start().await;
    platform.seed("players", vec![player("P1", "Ada", 1), player("P2", "Bo", 2)]);
    let mut cfg = config("players", ImportMode::Create);
    cfg.idempotency.natural_key_fields = vec!["code".into()];
    // A different file content than the seeded one: the Idempotency-Keys cannot help here.
    let rows = vec![
        player("P1", "Ada", 10),
        player("P3", "Cy", 3),
        player("P2", "Bo", 20),
        player("P4", "Di", 4),
    ];
    let written = write(platform.writer_client(), cfg, rows, None).await;
    assert_eq!((written.report.created, written.report.unchanged), (2, 2), "{:?}", written.report);
    assert!(matches!(written.outcome(1), RowWriteOutcome::Unchanged { id: Some(_), .. }));
    let items = by_code(platform.items("players"));
    assert_eq!(items.len(), 4);
    assert_eq!(items["P1"]["goals"], 1, "an existing record is not touched");
}

#[tokio::test]
async fn append_adds_missing_records_and_never_touches_existing_ones() {
    let platform = Platform::start().await;
    platform.seed("players", vec![player("A", "Old", 1)]);
    let mut cfg = config("players", ImportMode::Append);
    cfg.upsert_key = Some("code".into());
    let written = write(
        platform.writer_client(),
        cfg,
        vec![player("A", "New", 9), player("B", "Bo", 2)],
        None,
    )
    .await;
    assert!(matches!(written.outcome(1), RowWriteOutcome::Unchanged { .. }));
    assert!(matches!(written.outcome(2), RowWriteOutcome::Created { .. }));
    let items = by_code(platform.items("players"));
    assert_eq!(items["A"]["name"], "Old");
    assert_eq!(items["B"]["name"], "Bo");
}

#[tokio::test]
async fn update_changes_existing_records_skips_unchanged_ones_and_rejects_missing_keys() {
    let platform = Platform::start().await;
    platform.seed("players", vec![player("A", "Ada", 1), player("B", "Bo", 2)]);
    let mut cfg = config("players", ImportMode::Update);
    cfg.upsert_key = Some("code".into());
    let rows = vec![player("A", "Ada", 5), player("B", "Bo", 2), player("C", "Cy", 3)];
    let requests_before = platform.sandbox.request_count();
    let written = write(platform.writer_client(), cfg, rows, None).await;
    assert!(matches!(written.outcome(1), RowWriteOutcome::Updated { .. }));
    assert!(matches!(written.outcome(2), RowWriteOutcome::Unchanged { id: Some(_), .. }));
    match written.outcome(3) {
        RowWriteOutcome::Rejected { errors, .. } => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].layer.as_str(), "write");
            assert_eq!(errors[0].rule, "record_not_found");
            assert_eq!(errors[0].field.as_deref(), Some("code"));
            assert_eq!(errors[0].value, Some(json!("C")));
            assert!(errors[0].message.contains("upsert"), "{}", errors[0].message);
        }
        other => panic!("row 3: {other:?}"),
    }
    let items = by_code(platform.items("players"));
    assert_eq!(items.len(), 2, "update never creates");
    assert_eq!(items["A"]["goals"], 5);
    // One look-up for the three keys and one PATCH: the unchanged row costs nothing.
    assert_eq!(platform.sandbox.request_count() - requests_before, 2);
    assert_eq!(written.report.requests, 2);
}

#[tokio::test]
async fn upsert_updates_or_creates_at_about_one_request_per_row() {
    let platform = Platform::start().await;
    platform.seed("players", (0..500).map(|n| player(&format!("P{n:04}"), "Seed", n)).collect());
    let mut cfg = config("players", ImportMode::Upsert);
    cfg.upsert_key = Some("code".into());
    let rows: Vec<Value> = (0..1000).map(|n| player(&format!("P{n:04}"), "File", n * 10)).collect();
    let requests_before = platform.sandbox.request_count();
    let written = write(platform.writer_client(), cfg, rows, None).await;
    assert_eq!(
        (written.report.created, written.report.updated),
        (500, 500),
        "{:?}",
        written.report
    );
    let requests = platform.sandbox.request_count() - requests_before;
    let per_row = requests as f64 / 1000.0;
    assert!(per_row <= 1.05, "{requests} requests for 1000 rows ({per_row:.3} per row)");
    assert_eq!(written.report.requests, requests);
    let items = by_code(platform.items("players"));
    assert_eq!(items.len(), 1000);
    assert!(items.values().all(|i| i["name"] == "File"));
    assert_eq!(items["P0999"]["goals"], 9990);
}

fn sync_config() -> intake_engine::m2m::writer::WriterConfig {
    let mut cfg = config("players", ImportMode::Sync);
    cfg.upsert_key = Some("code".into());
    cfg.scope_filter = object(json!({"club": "north"}));
    cfg
}

#[tokio::test]
async fn sync_deletes_the_records_in_scope_that_the_file_no_longer_has() {
    let platform = Platform::start().await;
    platform.seed("players", (0..10).map(|n| player(&format!("P{n}"), "Seed", n)).collect());
    platform.seed("players", vec![json!({"code": "S1", "name": "South", "club": "south"})]);
    let mut rows: Vec<Value> = (0..6).map(|n| player(&format!("P{n}"), "Seed", n)).collect();
    rows.push(player("NEW", "New", 0));
    let written = write(
        platform.writer_client(),
        sync_config(),
        rows,
        Some(FileVerdict::complete_and_valid()),
    )
    .await;
    assert_eq!(written.report.failure, None);
    assert_eq!(written.report.sync_deleted, 4, "{:?}", written.report);
    assert_eq!((written.report.created, written.report.unchanged), (1, 6));
    let live = by_code(platform.items("players"));
    let codes: Vec<&str> = live.keys().map(String::as_str).collect();
    assert_eq!(codes, ["NEW", "P0", "P1", "P2", "P3", "P4", "P5", "S1"], "out-of-scope S1 stays");
    let deleted: Vec<Value> =
        platform.all_items("players").into_iter().filter(|i| i["is_deleted"] == true).collect();
    assert_eq!(deleted.len(), 4, "soft-deleted, not removed");
}

#[tokio::test]
async fn sync_refuses_to_delete_more_than_the_allowed_share_unless_told_to() {
    let platform = Platform::start().await;
    platform.seed("players", (0..10).map(|n| player(&format!("P{n}"), "Seed", n)).collect());
    let rows: Vec<Value> = (0..3).map(|n| player(&format!("P{n}"), "Seed", n)).collect();
    let refused = write(
        platform.writer_client(),
        sync_config(),
        rows.clone(),
        Some(FileVerdict::complete_and_valid()),
    )
    .await;
    let failure = refused.report.failure.clone().unwrap_or_default();
    assert!(failure.contains("7 of the 10"), "{failure}");
    assert_eq!(refused.report.sync_deleted, 0);
    assert_eq!(platform.items("players").len(), 10);

    let mut allowed = sync_config();
    allowed.allow_large_sync_delete = true;
    let written =
        write(platform.writer_client(), allowed, rows, Some(FileVerdict::complete_and_valid()))
            .await;
    assert_eq!((written.report.sync_deleted, written.report.failure.clone()), (7, None));
    assert_eq!(platform.items("players").len(), 3);
}

#[tokio::test]
async fn sync_deletes_nothing_after_an_incomplete_or_invalid_file() {
    let platform = Platform::start().await;
    platform.seed("players", (0..4).map(|n| player(&format!("P{n}"), "Seed", n)).collect());
    let rows = vec![player("P0", "Seed", 0), player("P1", "Seed", 1), player("P2", "Seed", 2)];
    for verdict in [
        Some(FileVerdict { complete: false, rejected_rows: 0 }),
        Some(FileVerdict { complete: true, rejected_rows: 1 }),
        None,
    ] {
        let written = write(platform.writer_client(), sync_config(), rows.clone(), verdict).await;
        assert_eq!(written.report.sync_deleted, 0);
        let skipped = written.report.sync_skipped.clone().unwrap_or_default();
        assert!(skipped.starts_with("sync deletes skipped"), "{verdict:?}: {skipped}");
        assert_eq!(platform.items("players").len(), 4);
    }
}

#[tokio::test]
async fn delete_column_soft_deletes_the_rows_record_and_is_never_written() {
    let platform = Platform::start().await;
    platform.seed("players", vec![player("A", "Ada", 1), player("B", "Bo", 2)]);
    let mut cfg = config("players", ImportMode::Upsert);
    cfg.upsert_key = Some("code".into());
    cfg.delete_column = Some("remove".into());
    let rows = vec![
        json!({"code": "A", "remove": "YES"}),
        json!({"code": "B", "name": "Bo", "goals": 3, "remove": "no"}),
        json!({"code": "C", "remove": true}),
        json!({"code": "D", "name": "Di", "goals": 4, "remove": ""}),
    ];
    let written = write(platform.writer_client(), cfg, rows, None).await;
    assert!(matches!(written.outcome(1), RowWriteOutcome::Deleted { .. }));
    assert!(matches!(written.outcome(2), RowWriteOutcome::Updated { .. }));
    assert_eq!(
        written.outcome(3),
        &RowWriteOutcome::Unchanged { row_number: 3, id: None },
        "nothing to delete"
    );
    assert!(matches!(written.outcome(4), RowWriteOutcome::Created { .. }));
    let live = by_code(platform.items("players"));
    assert_eq!(live.keys().collect::<Vec<_>>(), ["B", "D"]);
    assert!(live.values().all(|i| i.get("remove").is_none()), "the delete column is not a field");
    let a = platform.all_items("players").into_iter().find(|i| i["code"] == "A").unwrap();
    assert_eq!(a["is_deleted"], true);
}

#[tokio::test]
async fn rows_with_the_same_key_are_written_in_file_order_across_batches() {
    let platform = Platform::start().await;
    let mut cfg = config("players", ImportMode::Upsert);
    cfg.upsert_key = Some("code".into());
    // "HOT" appears in rows 1, 2, 50, 101, 150, 299 (three look-up batches); everything else once.
    let hot_rows = [1u64, 2, 50, 101, 150, 299];
    let rows: Vec<Value> = (1..=300u64)
        .map(|n| {
            let code = if hot_rows.contains(&n) { "HOT".to_owned() } else { format!("R{n}") };
            json!({"code": code, "last_row": n, format!("row_{n}"): true})
        })
        .collect();
    let written = write(platform.writer_client(), cfg, rows, None).await;
    assert_eq!(written.report.rejected, 0, "{:?}", written.report);
    assert!(matches!(written.outcome(1), RowWriteOutcome::Created { .. }));
    for n in &hot_rows[1..] {
        assert!(
            matches!(written.outcome(*n), RowWriteOutcome::Updated { .. }),
            "row {n}: {:?}",
            written.outcome(*n)
        );
    }
    let items = by_code(platform.items("players"));
    assert_eq!(items.len(), 300 - hot_rows.len() + 1, "one record per key");
    let hot = &items["HOT"];
    assert_eq!(hot["last_row"], 299, "the last row in the file wins");
    for n in hot_rows {
        assert_eq!(hot[format!("row_{n}")], true, "row {n} was applied (PATCH merges)");
    }
}

#[tokio::test]
async fn a_concurrent_change_between_look_up_and_patch_is_re_read_and_re_applied() {
    let platform = Platform::start().await;
    platform.seed("players", vec![player("A", "Ada", 1)]);
    // Another writer changes the record just before our PATCH reaches the platform.
    let other = platform.writer_client();
    let hook: common::Hook = Box::new(move || {
        Box::pin(async move {
            let page = other
                .list(
                    "players",
                    &intake_engine::m2m::ListQuery {
                        filter: Some(json!({"code": "A"})),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let item = &page.items[0];
            other
                .patch("players", &item.id, &object(json!({"club": "south"})), &item.etag)
                .await
                .unwrap();
        })
    });
    let proxy = Proxy::start(platform.url.clone()).await;
    proxy.hook("PATCH", "/players/", hook);
    let mut cfg = config("players", ImportMode::Upsert);
    cfg.upsert_key = Some("code".into());
    let written = write(
        platform.writer_client_via(&proxy.url),
        cfg,
        vec![json!({"code": "A", "goals": 7})],
        None,
    )
    .await;
    assert!(proxy.hook_ran());
    assert!(
        matches!(written.outcome(1), RowWriteOutcome::Updated { .. }),
        "{:?}",
        written.outcome(1)
    );
    let requests = proxy.stats.requests();
    let patches = requests.iter().filter(|s| s.starts_with("PATCH")).count();
    assert_eq!(patches, 2, "the first PATCH met 412, the second applied: {requests:?}");
    let a = platform.item_where("players", "code", &json!("A"));
    assert_eq!(
        (a["goals"].clone(), a["club"].clone()),
        (json!(7), json!("south")),
        "both changes kept"
    );
}

#[tokio::test]
async fn api_validation_errors_reject_only_their_row_with_the_fields_and_values() {
    let platform = Platform::start_with(|c: &mut SandboxConfig| {
        c.schemas.insert(
            "players".into(),
            json!({"type": "object", "properties": {"goals": {"type": "integer", "minimum": 0}}}),
        );
    })
    .await;
    let rows = vec![player("A", "Ada", 1), player("B", "Bo", -3), player("C", "Cy", 2)];
    let written =
        write(platform.writer_client(), config("players", ImportMode::Create), rows, None).await;
    assert_eq!((written.report.created, written.report.rejected), (2, 1));
    assert_eq!(written.report.failure, None);
    match written.outcome(2) {
        RowWriteOutcome::Rejected { errors, .. } => {
            assert_eq!(errors[0].layer.as_str(), "write");
            assert_eq!(errors[0].rule, "api_validation");
            assert_eq!(errors[0].field.as_deref(), Some("goals"));
            assert_eq!(errors[0].value, Some(json!(-3)));
        }
        other => panic!("row 2: {other:?}"),
    }
    assert_eq!(platform.items("players").len(), 2);
}

#[tokio::test]
async fn a_forbidden_write_fails_the_run_and_no_row_is_lost() {
    let read_only = ["players:list", "players:read"];
    let platform = Platform::start_for(&read_only, |_| {}).await;
    let rows: Vec<Value> = (0..250).map(|n| player(&format!("P{n}"), "Ada", n)).collect();
    let written =
        write(platform.writer_client(), config("players", ImportMode::Create), rows, None).await;
    let failure = written.report.failure.clone().unwrap_or_default();
    assert!(failure.contains("players:create"), "{failure}");
    assert_eq!(written.report.not_attempted, 250, "{:?}", written.report);
    assert_eq!(written.outcomes.len(), 250, "every row has its outcome");
    assert!(
        written.report.requests < 250,
        "the run stopped early: {} requests",
        written.report.requests
    );
    assert!(platform.items("players").is_empty());
}
