//! Rejected records: bulk insert per run, lists by run/template/status/row, correction with an
//! expected revision, `pending → corrected → retried | discarded`, and a history of every change.

mod store_support;

use intake_engine::store::{
    FilterOp, ListQuery, NewImportRun, NewRejectedRecord, RejectedStatus, StoreError,
};
use serde_json::json;
use store_support::{TENANT_A, TENANT_B, fresh_store};

const TEMPLATE: &str = "5f00000000000000000000aa";

fn rows(range: std::ops::Range<u64>) -> Vec<NewRejectedRecord> {
    range
        .map(|row| NewRejectedRecord {
            row_number: row,
            original_data: json!({"row": row}),
            validation_errors: json!([{"field": "iban", "message": "bad checksum"}]),
        })
        .collect()
}

on_every_backend! {
    #[tokio::test]
    async fn rejected_records_are_inserted_in_bulk_once_per_row_and_listed_by_run_template_status_and_row()
     {
        let t = fresh_store().await;
        let s = &t.store;
        let run = s
            .create_run(
                TENANT_A,
                &NewImportRun { template_id: Some(TEMPLATE.into()), ..Default::default() },
            )
            .await
            .expect("run");
        let other_run = s.create_run(TENANT_A, &NewImportRun::default()).await.expect("run");
        assert_eq!(
            s.insert_rejected_records(TENANT_A, &run.meta.id, TEMPLATE, &rows(1..501))
                .await
                .expect("insert"),
            500
        );
        // A resumed run re-inserting the same rows adds nothing.
        assert_eq!(
            s.insert_rejected_records(TENANT_A, &run.meta.id, TEMPLATE, &rows(495..505))
                .await
                .expect("insert"),
            4
        );
        s.insert_rejected_records(
            TENANT_A,
            &other_run.meta.id,
            "5f00000000000000000000bb",
            &rows(1..3),
        )
        .await
        .expect("insert");
        // Only into the tenant's own runs.
        assert!(matches!(
            s.insert_rejected_records(TENANT_B, &run.meta.id, TEMPLATE, &rows(900..901)).await,
            Err(StoreError::NotFound { .. })
        ));

        let by_run = s
            .list_rejected_records(
                TENANT_A,
                &ListQuery::new().eq("import_run_id", run.meta.id.as_str()).page(1, 100),
            )
            .await
            .expect("list");
        assert_eq!(by_run.total, 504);
        assert_eq!(by_run.items.len(), 100);
        let by_template = s
            .list_rejected_records(TENANT_A, &ListQuery::new().eq("template_id", TEMPLATE))
            .await
            .expect("list");
        assert_eq!(by_template.total, 504);
        let row_7 = s
            .list_rejected_records(
                TENANT_A,
                &ListQuery::new().eq("import_run_id", run.meta.id.as_str()).eq("row_number", 7),
            )
            .await
            .expect("list");
        assert_eq!(row_7.total, 1);
        assert_eq!(row_7.items[0].body.original_data, json!({"row": 7}));
        assert_eq!(row_7.items[0].body.status, RejectedStatus::Pending);
        let window = s
            .list_rejected_records(
                TENANT_A,
                &ListQuery::new()
                    .eq("template_id", TEMPLATE)
                    .filter("row_number", FilterOp::Gt, 10)
                    .filter("row_number", FilterOp::Lte, 20),
            )
            .await
            .expect("list");
        assert_eq!(window.total, 10);
        let pending = s
            .list_rejected_records(TENANT_A, &ListQuery::new().eq("status", "pending"))
            .await
            .expect("list");
        assert_eq!(pending.total, 506);
        assert_eq!(
            s.list_rejected_records(TENANT_B, &ListQuery::new()).await.expect("list").total,
            0
        );
    }

    #[tokio::test]
    async fn a_rejected_record_is_corrected_retried_or_discarded_and_every_change_is_in_its_history()
     {
        let t = fresh_store().await;
        let s = &t.store;
        let run = s
            .create_run(
                TENANT_A,
                &NewImportRun { template_id: Some(TEMPLATE.into()), ..Default::default() },
            )
            .await
            .expect("run");
        s.insert_rejected_records(TENANT_A, &run.meta.id, TEMPLATE, &rows(1..4))
            .await
            .expect("insert");
        let page = s
            .list_rejected_records(TENANT_A, &ListQuery::new().sort_by("row_number", false))
            .await
            .expect("list");
        let [one, two, three] = [&page.items[0], &page.items[1], &page.items[2]];

        // pending → retried skips the correction.
        assert!(matches!(
            s.set_rejected_status(
                TENANT_A,
                &one.meta.id,
                None,
                RejectedStatus::Retried,
                None,
                None
            )
            .await,
            Err(StoreError::IllegalTransition { .. })
        ));
        // pending → corrected needs data.
        assert!(matches!(
            s.set_rejected_status(
                TENANT_A,
                &one.meta.id,
                None,
                RejectedStatus::Corrected,
                None,
                None
            )
            .await,
            Err(StoreError::Invalid(_))
        ));
        let corrected = s
            .correct_rejected_record(
                TENANT_A,
                &one.meta.id,
                Some(&one.meta.revision_id),
                json!({"iban": "SE45..."}),
            )
            .await
            .expect("correct");
        assert_eq!(corrected.body.status, RejectedStatus::Corrected);
        assert_eq!(corrected.body.corrected_data, Some(json!({"iban": "SE45..."})));
        // A stale If-Match.
        match s
            .correct_rejected_record(TENANT_A, &one.meta.id, Some(&one.meta.revision_id), json!({}))
            .await
        {
            Err(StoreError::Conflict { current_revision, .. }) => {
                assert_eq!(current_revision, corrected.meta.revision_id)
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        // A retry that fails validation again goes back to pending with fresh errors.
        let again = s
            .set_rejected_status(
                TENANT_A,
                &one.meta.id,
                Some(&corrected.meta.revision_id),
                RejectedStatus::Pending,
                Some(json!([{"field": "iban", "message": "still bad"}])),
                Some("retry failed"),
            )
            .await
            .expect("back to pending");
        assert_eq!(
            again.body.validation_errors,
            json!([{"field": "iban", "message": "still bad"}])
        );
        let again = s
            .correct_rejected_record(TENANT_A, &one.meta.id, None, json!({"iban": "SE35..."}))
            .await
            .expect("correct again");
        let retried = s
            .set_rejected_status(
                TENANT_A,
                &one.meta.id,
                Some(&again.meta.revision_id),
                RejectedStatus::Retried,
                None,
                Some("written"),
            )
            .await
            .expect("retried");
        assert_eq!(retried.body.status, RejectedStatus::Retried);
        assert_eq!(s.get_rejected_record(TENANT_A, &one.meta.id).await.expect("get"), retried);
        // Final states are final.
        for to in [RejectedStatus::Pending, RejectedStatus::Corrected, RejectedStatus::Discarded] {
            let result = if to == RejectedStatus::Corrected {
                s.correct_rejected_record(TENANT_A, &one.meta.id, None, json!({})).await
            } else {
                s.set_rejected_status(TENANT_A, &one.meta.id, None, to, None, None).await
            };
            assert!(matches!(result, Err(StoreError::IllegalTransition { .. })), "{to:?}");
        }

        let history = s.rejected_record_history(TENANT_A, &one.meta.id).await.expect("history");
        let moves: Vec<_> = history.iter().map(|h| (h.from_status, h.to_status)).collect();
        use RejectedStatus::*;
        assert_eq!(
            moves,
            vec![
                (None, Pending),
                (Some(Pending), Corrected),
                (Some(Corrected), Pending),
                (Some(Pending), Corrected),
                (Some(Corrected), Retried),
            ]
        );
        assert_eq!(history[2].note.as_deref(), Some("retry failed"));
        assert_eq!(
            history.last().map(|h| h.revision_id.clone()),
            Some(retried.meta.revision_id.clone())
        );

        // pending → discarded, and corrected → discarded.
        s.set_rejected_status(TENANT_A, &two.meta.id, None, Discarded, None, Some("duplicate"))
            .await
            .expect("discard");
        s.correct_rejected_record(TENANT_A, &three.meta.id, None, json!({"x": 1}))
            .await
            .expect("correct");
        s.set_rejected_status(TENANT_A, &three.meta.id, None, Discarded, None, None)
            .await
            .expect("discard");
        assert_eq!(
            s.rejected_record_history(TENANT_A, &three.meta.id).await.expect("history").len(),
            3
        );

        // Another tenant sees neither the record nor its history, and cannot change it.
        assert!(matches!(
            s.get_rejected_record(TENANT_B, &two.meta.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.rejected_record_history(TENANT_B, &two.meta.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.correct_rejected_record(TENANT_B, &three.meta.id, None, json!({})).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}
