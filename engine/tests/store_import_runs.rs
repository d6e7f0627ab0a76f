//! Import runs follow `queued → running → succeeded | partially_succeeded | failed`; a run's end,
//! its rejected records and its claim's state are written together.

mod store_support;

use intake_engine::store::{
    ClaimOutcome, ClaimState, Collection, ListQuery, NewFileClaim, NewImportRun, NewRejectedRecord,
    RunCounts, RunOutcome, RunStatus, StoreError,
};
use serde_json::json;
use store_support::{TENANT_A, TENANT_B, fresh_store};

fn rejected(row: u64) -> NewRejectedRecord {
    NewRejectedRecord {
        row_number: row,
        original_data: json!({"amount": "x"}),
        validation_errors: json!([{"field": "amount", "message": "not a number"}]),
    }
}

on_every_backend! {
    #[tokio::test]
    async fn a_run_goes_queued_running_partially_succeeded_with_its_rejected_records_and_claim() {
        let t = fresh_store().await;
        let s = &t.store;
        let ClaimOutcome::Claimed(claim) = s
            .claim_file(
                TENANT_A,
                &NewFileClaim {
                    source_id: "5f0000000000000000000001".into(),
                    path: "pay.csv".into(),
                    size: 3,
                    modified: None,
                    version: None,
                    content_sha256: "ab".into(),
                },
            )
            .await
            .expect("claim")
        else {
            panic!("expected a claim")
        };
        let run = s
            .create_run(
                TENANT_A,
                &NewImportRun {
                    source_id: Some("5f0000000000000000000001".into()),
                    template_id: Some("5f00000000000000000000aa".into()),
                    claim_id: Some(claim.meta.id.clone()),
                    source_name: Some("pay.csv".into()),
                },
            )
            .await
            .expect("create");
        assert_eq!(run.body.status, RunStatus::Queued);
        s.set_claim_state(TENANT_A, &claim.meta.id, ClaimState::Importing, Some(&run.meta.id))
            .await
            .expect("importing");

        let running = s.start_run(TENANT_A, &run.meta.id).await.expect("start");
        assert_eq!(running.body.status, RunStatus::Running);
        assert!(running.body.started_at.is_some());
        assert_ne!(running.meta.revision_id, run.meta.revision_id);

        let counts = RunCounts {
            read: 10,
            valid: 8,
            rejected: 2,
            created: 6,
            updated: 1,
            deleted: 0,
            skipped_already_written: 1,
        };
        let progress = s
            .record_run_progress(
                TENANT_A,
                &run.meta.id,
                &RunCounts { read: 5, ..Default::default() },
                &json!({"parse_ms": 1}),
            )
            .await
            .expect("progress");
        assert_eq!(progress.body.counts.read, 5);
        let finished = s
            .finish_run(
                TENANT_A,
                &run.meta.id,
                &RunOutcome {
                    status: RunStatus::PartiallySucceeded,
                    counts,
                    timings: json!({"parse_ms": 3, "write_ms": 40}),
                    error: None,
                },
                &[rejected(4), rejected(9)],
            )
            .await
            .expect("finish");
        assert_eq!(finished.body.status, RunStatus::PartiallySucceeded);
        assert_eq!(finished.body.counts, counts);
        assert!(finished.body.finished_at.is_some());
        assert_eq!(s.get_run(TENANT_A, &run.meta.id).await.expect("get"), finished);

        let records = s
            .list_rejected_records(
                TENANT_A,
                &ListQuery::new()
                    .eq("import_run_id", run.meta.id.as_str())
                    .sort_by("row_number", false),
            )
            .await
            .expect("list");
        assert_eq!(records.total, 2);
        assert_eq!(records.items[0].body.row_number, 4);
        assert_eq!(records.items[0].body.template_id, "5f00000000000000000000aa");
        let claim_after = s.get_claim(TENANT_A, &claim.meta.id).await.expect("claim");
        assert_eq!(claim_after.state, ClaimState::Done);
        assert_eq!(claim_after.run_id.as_deref(), Some(run.meta.id.as_str()));

        let by_status = s
            .list(
                Collection::ImportRuns,
                TENANT_A,
                &ListQuery::new().eq("status", "partially_succeeded"),
            )
            .await
            .expect("list");
        assert_eq!(by_status.total, 1);
        assert!(
            s.list(Collection::ImportRuns, TENANT_B, &ListQuery::new())
                .await
                .expect("list")
                .items
                .is_empty()
        );
    }

    #[tokio::test]
    async fn illegal_run_transitions_are_refused_and_change_nothing() {
        let t = fresh_store().await;
        let s = &t.store;
        let outcome = |status| RunOutcome {
            status,
            counts: RunCounts::default(),
            timings: json!({}),
            error: None,
        };
        let run = s.create_run(TENANT_A, &NewImportRun::default()).await.expect("create");
        // queued → succeeded skips running.
        let skipped =
            s.finish_run(TENANT_A, &run.meta.id, &outcome(RunStatus::Succeeded), &[]).await;
        assert!(matches!(skipped, Err(StoreError::IllegalTransition { .. })));
        assert!(matches!(
            s.record_run_progress(TENANT_A, &run.meta.id, &RunCounts::default(), &json!({})).await,
            Err(StoreError::IllegalTransition { .. })
        ));
        assert!(matches!(
            s.finish_run(TENANT_A, &run.meta.id, &outcome(RunStatus::Running), &[]).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(s.get_run(TENANT_A, &run.meta.id).await.expect("get"), run);

        s.start_run(TENANT_A, &run.meta.id).await.expect("start");
        assert!(matches!(
            s.start_run(TENANT_A, &run.meta.id).await,
            Err(StoreError::IllegalTransition { .. })
        ));
        let failed = s
            .finish_run(
                TENANT_A,
                &run.meta.id,
                &RunOutcome {
                    error: Some("file is not valid UTF-8".into()),
                    ..outcome(RunStatus::Failed)
                },
                &[],
            )
            .await
            .expect("fail");
        assert_eq!(failed.body.error.as_deref(), Some("file is not valid UTF-8"));
        for again in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::PartiallySucceeded] {
            assert!(matches!(
                s.finish_run(TENANT_A, &run.meta.id, &outcome(again), &[]).await,
                Err(StoreError::IllegalTransition { .. })
            ));
        }
        assert!(matches!(
            s.start_run(TENANT_A, &run.meta.id).await,
            Err(StoreError::IllegalTransition { .. })
        ));

        // A queued run that cannot start may fail directly.
        let other = s.create_run(TENANT_A, &NewImportRun::default()).await.expect("create");
        s.finish_run(TENANT_A, &other.meta.id, &outcome(RunStatus::Failed), &[])
            .await
            .expect("queued → failed");
        // Another tenant cannot move a run.
        let third = s.create_run(TENANT_A, &NewImportRun::default()).await.expect("create");
        assert!(matches!(
            s.start_run(TENANT_B, &third.meta.id).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_finish_that_fails_leaves_neither_counts_nor_rejected_records() {
        let t = fresh_store().await;
        let s = &t.store;
        // No template on the run: rejected records cannot be stored, so nothing of the finish
        // lands.
        let run = s.create_run(TENANT_A, &NewImportRun::default()).await.expect("create");
        let running = s.start_run(TENANT_A, &run.meta.id).await.expect("start");
        let result = s
            .finish_run(
                TENANT_A,
                &run.meta.id,
                &RunOutcome {
                    status: RunStatus::PartiallySucceeded,
                    counts: RunCounts { read: 1, rejected: 1, ..Default::default() },
                    timings: json!({}),
                    error: None,
                },
                &[rejected(1)],
            )
            .await;
        assert!(result.is_err());
        assert_eq!(s.get_run(TENANT_A, &run.meta.id).await.expect("get"), running);
        assert_eq!(
            s.list_rejected_records(TENANT_A, &ListQuery::new()).await.expect("list").total,
            0
        );
    }
}
