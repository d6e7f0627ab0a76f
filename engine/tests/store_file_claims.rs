//! A file version is claimed exactly once — also by racing claimers on separate connections —
//! and a changed file under the same name is claimed again.

mod store_support;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use intake_engine::store::{
    ClaimOutcome, ClaimState, NewFileClaim, NewImportRun, Store, StoreError,
};
use store_support::{TENANT_A, fresh_store};
use tokio::sync::Barrier;

fn file(path: &str, size: u64, sha: &str) -> NewFileClaim {
    NewFileClaim {
        source_id: "5f0000000000000000000001".into(),
        path: path.into(),
        size,
        modified: Some(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().expect("time")),
        version: None,
        content_sha256: sha.into(),
    }
}

on_every_backend! {
    #[tokio::test]
    async fn the_same_file_is_claimed_once_and_a_changed_file_gets_a_new_claim() {
        let t = fresh_store().await;
        let s = &t.store;
        let first =
            match s.claim_file(TENANT_A, &file("in/a b ü.csv", 10, "aa")).await.expect("claim") {
                ClaimOutcome::Claimed(c) => c,
                other => panic!("expected Claimed, got {other:?}"),
            };
        assert_eq!(first.state, ClaimState::Claimed);
        assert_eq!(first.path, "in/a b ü.csv");
        match s.claim_file(TENANT_A, &file("in/a b ü.csv", 10, "aa")).await.expect("claim") {
            ClaimOutcome::AlreadyClaimed(existing) => assert_eq!(existing, first),
            other => panic!("expected AlreadyClaimed, got {other:?}"),
        }
        // Same name, new content: a new claim.
        let changed = s.claim_file(TENANT_A, &file("in/a b ü.csv", 12, "bb")).await.expect("claim");
        assert!(matches!(changed, ClaimOutcome::Claimed(ref c) if c.meta.id != first.meta.id));
        // Same size and name, only the mtime differs: a new claim too.
        let mut touched = file("in/a b ü.csv", 10, "aa");
        touched.modified = Some(Utc.with_ymd_and_hms(2025, 3, 2, 0, 0, 0).single().expect("time"));
        assert!(matches!(
            s.claim_file(TENANT_A, &touched).await.expect("claim"),
            ClaimOutcome::Claimed(_)
        ));
        // No mtime but an ETag (object stores): identity includes the version.
        let mut etagged = file("bucket/x.csv", 5, "cc");
        etagged.modified = None;
        etagged.version = Some("\"etag-1\"".into());
        assert!(matches!(
            s.claim_file(TENANT_A, &etagged).await.expect("claim"),
            ClaimOutcome::Claimed(_)
        ));
        assert!(matches!(
            s.claim_file(TENANT_A, &etagged).await.expect("claim"),
            ClaimOutcome::AlreadyClaimed(_)
        ));
        etagged.version = Some("\"etag-2\"".into());
        assert!(matches!(
            s.claim_file(TENANT_A, &etagged).await.expect("claim"),
            ClaimOutcome::Claimed(_)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn eight_racing_claimers_on_separate_connections_yield_exactly_one_claim() {
        let t = fresh_store().await;
        for round in 0..5 {
            let barrier = Arc::new(Barrier::new(8));
            let mut tasks = Vec::new();
            for _ in 0..8 {
                // Separate stores: separate pools and connections, as separate processes would
                // have.
                let store = Store::open(&t.location).await.expect("open");
                let barrier = barrier.clone();
                let f = file(&format!("race-{round}.csv"), 100, "dd");
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    store.claim_file(TENANT_A, &f).await
                }));
            }
            let mut claimed = Vec::new();
            let mut already = Vec::new();
            for task in tasks {
                match task.await.expect("join").expect("claim") {
                    ClaimOutcome::Claimed(c) => claimed.push(c),
                    ClaimOutcome::AlreadyClaimed(c) => already.push(c),
                }
            }
            assert_eq!(claimed.len(), 1, "round {round}");
            assert_eq!(already.len(), 7);
            assert!(already.iter().all(|c| c.meta.id == claimed[0].meta.id));
        }
    }

    #[tokio::test]
    async fn claims_move_through_their_states_and_remember_their_run() {
        let t = fresh_store().await;
        let s = &t.store;
        let ClaimOutcome::Claimed(claim) =
            s.claim_file(TENANT_A, &file("b.csv", 1, "ee")).await.expect("claim")
        else {
            panic!("expected a new claim");
        };
        let run = s
            .create_run(
                TENANT_A,
                &NewImportRun { claim_id: Some(claim.meta.id.clone()), ..Default::default() },
            )
            .await
            .expect("run");
        let importing = s
            .set_claim_state(TENANT_A, &claim.meta.id, ClaimState::Importing, Some(&run.meta.id))
            .await
            .expect("importing");
        assert_eq!(importing.run_id.as_deref(), Some(run.meta.id.as_str()));
        assert_ne!(importing.meta.revision_id, claim.meta.revision_id);
        let illegal =
            s.set_claim_state(TENANT_A, &claim.meta.id, ClaimState::Importing, None).await;
        assert!(matches!(illegal, Err(StoreError::IllegalTransition { .. })));
        let done = s
            .set_claim_state(TENANT_A, &claim.meta.id, ClaimState::Done, None)
            .await
            .expect("done");
        assert_eq!(done.run_id.as_deref(), Some(run.meta.id.as_str()));
        assert_eq!(s.get_claim(TENANT_A, &claim.meta.id).await.expect("get"), done);
        assert!(matches!(
            s.set_claim_state(TENANT_A, &claim.meta.id, ClaimState::Claimed, None).await,
            Err(StoreError::IllegalTransition { .. })
        ));
        assert!(matches!(
            s.get_claim(store_support::TENANT_B, &claim.meta.id).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}
