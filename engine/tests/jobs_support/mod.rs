//! Shared helpers for the job queue tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use intake_engine::jobs::{JobQueue, JobRecord, JobState, QueueConfig};

/// Settings that make retries and orphan detection quick in tests.
pub fn fast_config() -> QueueConfig {
    QueueConfig {
        max_attempts: 3,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        heartbeat_interval: Duration::from_secs(1),
        missed_heartbeats: 2,
        poll_interval: Duration::from_millis(50),
    }
}

/// A queue in a fresh file inside `dir`.
pub async fn open_queue(dir: &tempfile::TempDir, config: QueueConfig) -> JobQueue {
    let path = dir.path().join("jobs.sqlite");
    JobQueue::open(path.to_str().expect("utf-8 temp path"), config).await.expect("open queue")
}

/// Polls `check` until it holds, panicking after a generous timeout.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until job `id` is in `state` and returns it.
pub async fn wait_for_state(queue: &JobQueue, id: &str, state: JobState) -> JobRecord {
    wait_until(&format!("job {id} to be {state:?}"), || async {
        queue.job(id).await.expect("read job").is_some_and(|j| j.state == state)
    })
    .await;
    queue.job(id).await.expect("read job").expect("job exists")
}
