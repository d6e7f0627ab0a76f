//! Row idempotency keys: recorded in batches, unique per (template, key), and checked in batches
//! so a re-run skips what was already written.

mod store_support;

use intake_engine::store::Store;
use store_support::{TENANT_A, TENANT_B, fresh_store};

const TEMPLATE: &str = "5f00000000000000000000aa";
const OTHER_TEMPLATE: &str = "5f00000000000000000000bb";

fn keys(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("sha256:{i:064x}")).collect()
}

on_every_backend! {
    #[tokio::test]
    async fn ten_thousand_written_keys_are_found_in_one_batch_check() {
        let t = fresh_store().await;
        let s = &t.store;
        // Written in two runs of 5,000, overlapping by 500.
        assert_eq!(
            s.record_written_keys(TENANT_A, TEMPLATE, Some("run1"), &keys(0..5_000))
                .await
                .expect("record"),
            5_000
        );
        assert_eq!(
            s.record_written_keys(TENANT_A, TEMPLATE, Some("run2"), &keys(4_500..10_000))
                .await
                .expect("record"),
            5_000
        );
        assert_eq!(
            s.record_written_keys(TENANT_A, TEMPLATE, None, &keys(0..10_000))
                .await
                .expect("record"),
            0,
            "nothing twice"
        );

        let candidates = keys(5_000..15_000);
        let written = s.written_keys(TENANT_A, TEMPLATE, &candidates).await.expect("check");
        assert_eq!(written.len(), 5_000);
        assert!(written.contains(&keys(9_999..10_000)[0]));
        assert!(!written.contains(&keys(10_000..10_001)[0]));

        // Keys are per template and per tenant.
        assert!(
            s.written_keys(TENANT_A, OTHER_TEMPLATE, &candidates).await.expect("check").is_empty()
        );
        assert!(s.written_keys(TENANT_B, TEMPLATE, &candidates).await.expect("check").is_empty());
        assert!(s.written_keys(TENANT_A, TEMPLATE, &[]).await.expect("check").is_empty());
        assert_eq!(s.record_written_keys(TENANT_A, TEMPLATE, None, &[]).await.expect("record"), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_writers_record_each_key_once() {
        let t = fresh_store().await;
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = Store::open(&t.location).await.expect("open");
            tasks.push(tokio::spawn(async move {
                store.record_written_keys(TENANT_A, TEMPLATE, None, &keys(0..2_000)).await
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("join").expect("record");
        }
        assert_eq!(total, 2_000);
    }

    #[tokio::test]
    async fn written_keys_survive_reopening() {
        let t = fresh_store().await;
        t.store.record_written_keys(TENANT_A, TEMPLATE, None, &keys(0..10)).await.expect("record");
        t.store.close().await;
        let store = Store::open(&t.location).await.expect("re-open");
        assert_eq!(
            store.written_keys(TENANT_A, TEMPLATE, &keys(0..20)).await.expect("check").len(),
            10
        );
    }
}
