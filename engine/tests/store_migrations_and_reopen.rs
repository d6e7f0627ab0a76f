//! The store's schema is created on a fresh file (or PostgreSQL database), re-opening applies
//! nothing twice, and data survives dropping and re-opening the store.

mod store_support;

use intake_engine::store::{Collection, ListQuery, NewImportRun, Store};
use serde_json::json;
use store_support::{TENANT_A, fresh_store};

on_every_backend! {
    #[tokio::test]
    async fn migrations_apply_on_a_fresh_file_and_reopen_works() {
        let t = fresh_store().await;
        t.store.ping().await.expect("ping");
        for collection in Collection::ALL {
            let page = t
                .store
                .list(collection, TENANT_A, &ListQuery::new())
                .await
                .expect("every collection's table exists");
            assert_eq!(page.total, 0);
        }
        t.store.close().await;
        let again = Store::open(&t.location).await.expect("re-open");
        again.ping().await.expect("ping after re-open");
        let third = Store::open(&t.location).await.expect("open while another handle is open");
        third.ping().await.expect("ping");
    }

    #[tokio::test]
    async fn data_survives_drop_and_reopen() {
        let t = fresh_store().await;
        let source = t
            .store
            .create(
                Collection::Sources,
                TENANT_A,
                json!({"name": "inbox", "source_type": "watched_directory"}),
            )
            .await
            .expect("create");
        let run = t
            .store
            .create_run(
                TENANT_A,
                &NewImportRun { source_name: Some("a.csv".into()), ..Default::default() },
            )
            .await
            .expect("run");
        let store_support::TestStore { store, location, dir } = t;
        store.close().await;
        drop(store);

        let store = Store::open(&location).await.expect("re-open");
        let again = store.get(Collection::Sources, TENANT_A, &source.meta.id).await.expect("get");
        assert_eq!(again, source);
        let run_again = store.get_run(TENANT_A, &run.meta.id).await.expect("run");
        assert_eq!(run_again, run);
        drop(dir);
    }
}
