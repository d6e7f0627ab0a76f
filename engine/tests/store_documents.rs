//! Generic document CRUD: revisions and optimistic concurrency, soft delete, tenant isolation,
//! list filters, sort and pagination.

mod store_support;

use intake_engine::store::{Collection, FilterOp, ListQuery, StoreError};
use serde_json::json;
use store_support::{TENANT_A, TENANT_B, fresh_store};

fn is_hex24(s: &str) -> bool {
    s.len() == 24 && s.chars().all(|c| c.is_ascii_hexdigit())
}

on_every_backend! {
    #[tokio::test]
    async fn create_get_update_renew_the_revision_and_stale_updates_conflict() {
        let t = fresh_store().await;
        let s = &t.store;
        let created = s
            .create(
                Collection::Templates,
                TENANT_A,
                json!({"name": "Bank CSV", "file_type": "csv", "target_resource": "payments",
                       "tenant_id": "ffffffffffffffffffffffff", "_id": "not-mine"}),
            )
            .await
            .expect("create");
        assert!(is_hex24(&created.meta.id));
        assert!(is_hex24(&created.meta.revision_id));
        assert_eq!(created.meta.tenant_id, TENANT_A, "tenant comes from the call, not the body");
        assert!(created.body.get("tenant_id").is_none() && created.body.get("_id").is_none());
        assert_eq!(created.meta.created_at, created.meta.updated_at);

        let got = s.get(Collection::Templates, TENANT_A, &created.meta.id).await.expect("get");
        assert_eq!(got, created);
        let rendered = got.to_json();
        assert_eq!(rendered["_id"], json!(created.meta.id));
        assert_eq!(rendered["name"], json!("Bank CSV"));

        let updated = s
            .update(
                Collection::Templates,
                TENANT_A,
                &created.meta.id,
                Some(&created.meta.revision_id),
                json!({"name": "Bank CSV v2", "file_type": "csv", "target_resource": "payments"}),
            )
            .await
            .expect("update with the current revision");
        assert_ne!(updated.meta.revision_id, created.meta.revision_id);
        assert_eq!(updated.meta.created_at, created.meta.created_at);
        assert!(updated.meta.updated_at >= created.meta.updated_at);
        assert_eq!(updated.body["name"], json!("Bank CSV v2"));

        let stale = s
            .update(
                Collection::Templates,
                TENANT_A,
                &created.meta.id,
                Some(&created.meta.revision_id),
                json!({"name": "lost"}),
            )
            .await;
        match stale {
            Err(StoreError::Conflict { current_revision, expected, .. }) => {
                assert_eq!(current_revision, updated.meta.revision_id);
                assert_eq!(expected, created.meta.revision_id);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let stale_delete = s
            .delete(
                Collection::Templates,
                TENANT_A,
                &created.meta.id,
                Some(&created.meta.revision_id),
            )
            .await;
        assert!(matches!(stale_delete, Err(StoreError::Conflict { .. })));

        let unconditional = s
            .update(Collection::Templates, TENANT_A, &created.meta.id, None, json!({"name": "v3"}))
            .await
            .expect("update without an expected revision");
        assert_eq!(unconditional.body["name"], json!("v3"));

        let not_object = s.create(Collection::Sources, TENANT_A, json!([1, 2])).await;
        assert!(matches!(not_object, Err(StoreError::Invalid(_))));
        let missing = s.get(Collection::Templates, TENANT_A, "0123456789abcdef01234567").await;
        assert!(matches!(missing, Err(StoreError::NotFound { .. })));
    }

    #[tokio::test]
    async fn documents_come_back_with_their_keys_in_the_order_written() {
        let t = fresh_store().await;
        let s = &t.store;
        let body = json!({"zeta": 1, "name": "ordered", "source_type": "s3",
                          "alpha": {"z": true, "a": [3, 1]}, "mid": null, "b": 2.50});
        let created = s.create(Collection::Sources, TENANT_A, body.clone()).await.expect("create");
        let written = serde_json::to_string(&body).expect("json");
        let got = s.get(Collection::Sources, TENANT_A, &created.meta.id).await.expect("get");
        assert_eq!(serde_json::to_string(&got.body).expect("json"), written);
        let listed = s.list(Collection::Sources, TENANT_A, &ListQuery::new()).await.expect("list");
        assert_eq!(serde_json::to_string(&listed.items[0].body).expect("json"), written);
    }

    #[tokio::test]
    async fn soft_deleted_documents_are_hidden_from_get_and_list() {
        let t = fresh_store().await;
        let s = &t.store;
        let keep = s
            .create(Collection::AlertChannels, TENANT_A, json!({"name": "ops", "type": "log"}))
            .await
            .expect("create");
        let gone = s
            .create(Collection::AlertChannels, TENANT_A, json!({"name": "old", "type": "log"}))
            .await
            .expect("create");
        let deleted = s
            .delete(
                Collection::AlertChannels,
                TENANT_A,
                &gone.meta.id,
                Some(&gone.meta.revision_id),
            )
            .await
            .expect("delete");
        assert!(deleted.meta.is_deleted);
        assert!(deleted.meta.deleted_at.is_some());
        assert_ne!(deleted.meta.revision_id, gone.meta.revision_id);

        let page =
            s.list(Collection::AlertChannels, TENANT_A, &ListQuery::new()).await.expect("list");
        assert_eq!(page.total, 1);
        assert_eq!(page.items[0].meta.id, keep.meta.id);
        assert!(matches!(
            s.get(Collection::AlertChannels, TENANT_A, &gone.meta.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.update(
                Collection::AlertChannels,
                TENANT_A,
                &gone.meta.id,
                None,
                json!({"name": "x"})
            )
            .await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.delete(Collection::AlertChannels, TENANT_A, &gone.meta.id, None).await,
            Err(StoreError::NotFound { .. })
        ));
        let all = s
            .list(Collection::AlertChannels, TENANT_A, &ListQuery::new().include_deleted())
            .await
            .expect("list with deleted");
        assert_eq!(all.total, 2);
    }

    #[tokio::test]
    async fn tenants_never_see_each_others_documents() {
        let t = fresh_store().await;
        let s = &t.store;
        let a = s
            .create(Collection::Sources, TENANT_A, json!({"name": "a", "source_type": "s3"}))
            .await
            .expect("a");
        s.create(Collection::Sources, TENANT_B, json!({"name": "b", "source_type": "s3"}))
            .await
            .expect("b");

        let list_a = s.list(Collection::Sources, TENANT_A, &ListQuery::new()).await.expect("list");
        assert_eq!(list_a.total, 1);
        assert_eq!(list_a.items[0].meta.id, a.meta.id);
        assert!(matches!(
            s.get(Collection::Sources, TENANT_B, &a.meta.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.update(Collection::Sources, TENANT_B, &a.meta.id, None, json!({"name": "stolen"}))
                .await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.delete(Collection::Sources, TENANT_B, &a.meta.id, None).await,
            Err(StoreError::NotFound { .. })
        ));
        let still = s.get(Collection::Sources, TENANT_A, &a.meta.id).await.expect("untouched");
        assert_eq!(still, a);
    }

    #[tokio::test]
    async fn list_filters_sorts_and_pages_on_indexed_fields() {
        let t = fresh_store().await;
        let s = &t.store;
        let source = s
            .create(
                Collection::Sources,
                TENANT_A,
                json!({"name": "inbox", "source_type": "watched_directory"}),
            )
            .await
            .expect("source");
        for i in 0..7 {
            s.create(
                Collection::Templates,
                TENANT_A,
                json!({"name": format!("t{i}"), "priority": i, "is_active": i % 2 == 0,
                       "source_id": if i < 5 { json!(source.meta.id) } else { json!(null) },
                       "file_type": "csv", "target_resource": "products"}),
            )
            .await
            .expect("template");
        }
        // A template without `is_active` counts as active (the platform's default).
        s.create(
            Collection::Templates,
            TENANT_A,
            json!({"name": "default-active", "file_type": "csv", "target_resource": "x"}),
        )
        .await
        .expect("template");

        let by_source = s
            .list(
                Collection::Templates,
                TENANT_A,
                &ListQuery::new()
                    .eq("source_id", source.meta.id.as_str())
                    .sort_by("priority", true),
            )
            .await
            .expect("list");
        assert_eq!(by_source.total, 5);
        let priorities: Vec<_> =
            by_source.items.iter().map(|d| d.body["priority"].clone()).collect();
        assert_eq!(priorities, vec![json!(4), json!(3), json!(2), json!(1), json!(0)]);

        let active = s
            .list(Collection::Templates, TENANT_A, &ListQuery::new().eq("is_active", true))
            .await
            .expect("list");
        assert_eq!(active.total, 5, "t0, t2, t4, t6 and the default");

        let high = s
            .list(
                Collection::Templates,
                TENANT_A,
                &ListQuery::new().filter("priority", FilterOp::Gte, 5),
            )
            .await
            .expect("list");
        assert_eq!(high.total, 2);
        let named = s
            .list(
                Collection::Templates,
                TENANT_A,
                &ListQuery::new().filter("name", FilterOp::In, json!(["t1", "t6", "nope"])),
            )
            .await
            .expect("list");
        assert_eq!(named.total, 2);
        let no_source = s
            .list(Collection::Templates, TENANT_A, &ListQuery::new().eq("source_id", json!(null)))
            .await
            .expect("list");
        assert_eq!(no_source.total, 3);

        // Pages: 8 templates, 3 per page, name ascending.
        let mut seen = Vec::new();
        for page in 1..=3 {
            let p = s
                .list(
                    Collection::Templates,
                    TENANT_A,
                    &ListQuery::new().sort_by("name", false).page(page, 3),
                )
                .await
                .expect("page");
            assert_eq!(p.total, 8);
            assert_eq!((p.page, p.per_page), (page, 3));
            seen.extend(
                p.items.into_iter().map(|d| d.body["name"].as_str().unwrap_or_default().to_owned()),
            );
        }
        assert_eq!(seen, vec!["default-active", "t0", "t1", "t2", "t3", "t4", "t5", "t6"]);
        let beyond = s
            .list(Collection::Templates, TENANT_A, &ListQuery::new().page(9, 3))
            .await
            .expect("page");
        assert!(beyond.items.is_empty());
        assert_eq!(beyond.total, 8);

        // Newest first by default.
        let newest = s
            .list(Collection::Templates, TENANT_A, &ListQuery::new().page(1, 1))
            .await
            .expect("list");
        assert_eq!(newest.items[0].body["name"], json!("default-active"));

        let unknown =
            s.list(Collection::Templates, TENANT_A, &ListQuery::new().eq("description", "x")).await;
        assert!(matches!(unknown, Err(StoreError::UnknownField { .. })));
        let injected = s
            .list(
                Collection::Templates,
                TENANT_A,
                &ListQuery::new().sort_by("name; DROP TABLE templates", false),
            )
            .await;
        assert!(matches!(injected, Err(StoreError::UnknownField { .. })));
    }

    #[tokio::test]
    async fn list_filters_on_timestamps_given_in_any_rfc_3339_offset_and_on_ids() {
        let t = fresh_store().await;
        let s = &t.store;
        let mut created = Vec::new();
        for name in ["a", "b", "c"] {
            let body = json!({"name": name, "source_type": "s3"});
            created.push(s.create(Collection::Sources, TENANT_A, body).await.expect("create"));
        }
        // The second one's creation time, written with a +02:00 offset.
        let offset = chrono::FixedOffset::east_opt(2 * 3600).expect("offset");
        let cut = created[1].meta.created_at.with_timezone(&offset).to_rfc3339();
        let names = |page: intake_engine::store::Page<intake_engine::store::Document>| {
            page.items.iter().map(|d| d.body["name"].clone()).collect::<Vec<_>>()
        };
        let from = ListQuery::new().filter("created_at", FilterOp::Gte, cut.as_str());
        let since = s.list(Collection::Sources, TENANT_A, &from).await.expect("list");
        assert_eq!(names(since), vec![json!("c"), json!("b")]);
        let before = ListQuery::new().filter("created_at", FilterOp::Lt, cut.as_str());
        let before = s.list(Collection::Sources, TENANT_A, &before).await.expect("list");
        assert_eq!(names(before), vec![json!("a")]);
        let by_id = ListQuery::new().eq("_id", created[2].meta.id.as_str());
        let by_id = s.list(Collection::Sources, TENANT_A, &by_id).await.expect("list");
        assert_eq!(names(by_id), vec![json!("c")]);
        let not_b = ListQuery::new().filter("_id", FilterOp::Ne, created[1].meta.id.as_str());
        assert_eq!(s.list(Collection::Sources, TENANT_A, &not_b).await.expect("list").total, 2);
    }

    #[tokio::test]
    async fn runs_and_rejected_records_are_not_written_through_the_generic_calls() {
        let t = fresh_store().await;
        for collection in [Collection::ImportRuns, Collection::RejectedRecords] {
            let created =
                t.store.create(collection, TENANT_A, json!({"status": "succeeded"})).await;
            assert!(matches!(created, Err(StoreError::Managed(_))));
        }
    }
}
