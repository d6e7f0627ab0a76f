//! End-to-end: `intake serve` with its state store on PostgreSQL, split into a poller and a
//! worker process: both files dropped are imported once, and the runs are in PostgreSQL.
//!
//! Needs `INTAKE_TEST_POSTGRES_URL` (an admin URL; the test creates and drops its own database);
//! without it the test says so and passes, unless `INTAKE_REQUIRE_SERVICES=1` (CI) makes that a
//! failure.

// Test code: a failed set-up step should panic right there.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::time::Duration;

use common::{Database, SandboxProcess, ServeProcess, repo, serve_config_base, wait_until};
use intake_engine::store::{Collection, ListQuery, Store};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn a_poller_and_a_worker_share_a_postgresql_state_store() {
    let Some(database) = Database::create() else { return };
    let sandbox = SandboxProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir(&inbox).unwrap();
    let base = serve_config_base(&sandbox.url)
        .replace("path = \"state/intake.sqlite\"", &format!("path = {:?}", database.url));
    assert!(base.contains(&database.url), "{base}");
    let config = dir.path().join("intake.toml");
    fs::write(
        &config,
        format!(
            "{base}\n[[sources]]\nid = \"inbox\"\nsource_type = \"watched_directory\"\n\
             connection_config = {{ path = {:?} }}\npolling_interval_seconds = 1\n\
             templates = [ {{ path = {:?}, file_matcher = \"member-*.csv\" }} ]\n",
            inbox.display().to_string(),
            repo("fixtures/member-register/template.json")
        ),
    )
    .unwrap();
    let start = |round: u32, role: &str| {
        ServeProcess::start_with_args(&config, dir.path(), round, &[], &["--role", role])
    };
    let mut poller = start(1, "poller");
    let mut worker = start(2, "worker");
    for name in ["member-a.csv", "member-b.csv"] {
        fs::copy(repo("fixtures/member-register/input.csv"), inbox.join(name)).unwrap();
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let finished = || -> u64 {
        runtime.block_on(async {
            let store = Store::open(&database.url).await.unwrap();
            let query = ListQuery::new().eq("status", "partially_succeeded");
            let runs = store.list(Collection::ImportRuns, TENANT, &query).await.unwrap();
            store.close().await;
            runs.total
        })
    };
    wait_until(&mut worker, "both runs finished in PostgreSQL", TIMEOUT, || finished() == 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(finished(), 2, "each file once");
    for serve in [&mut poller, &mut worker] {
        let status = serve.terminate(TIMEOUT);
        assert_eq!(status.code(), Some(0), "{}", serve.output());
    }
    assert!(!dir.path().join("state/intake.sqlite").exists(), "no SQLite state was made");
    assert!(worker.output().contains("0 file(s) queued, 2 imported"), "{}", worker.output());
}
