//! Failed jobs: retried with backoff when retryable, failed at once when permanent, failed after
//! their attempts run out — always with the reason kept.

mod jobs_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use intake_engine::jobs::{ImportFile, JobError, JobState, PollSource, QueueConfig, Workers};
use jobs_support::{fast_config, open_queue, wait_for_state};
use tokio_util::sync::CancellationToken;

fn import(claim: &str) -> ImportFile {
    ImportFile { tenant_id: "t1".into(), source_id: "s1".into(), claim_id: claim.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_retried_with_backoff_and_then_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fast_config();
    let backoff_min = config.backoff_min;
    let queue = open_queue(&dir, config).await;
    let id = queue.enqueue_import_file(import("c1")).await.expect("enqueue");
    let starts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let s = starts.clone();
    let workers = Workers::new(&queue).import_file(1, move |_job: ImportFile| {
        let starts = s.clone();
        async move {
            let attempt = {
                let mut starts = starts.lock().expect("lock");
                starts.push(Instant::now());
                starts.len()
            };
            if attempt < 3 { Err(JobError::retryable("platform returned 503")) } else { Ok(()) }
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    let job = wait_for_state(&queue, &id, JobState::Succeeded).await;
    shutdown.cancel();
    running.await.expect("join").expect("workers ran cleanly");

    assert_eq!(job.attempts, 3);
    let starts = starts.lock().expect("lock").clone();
    assert_eq!(starts.len(), 3);
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= backoff_min,
            "retried without waiting: {:?}",
            pair[1] - pair[0]
        );
    }
    assert!(queue.failed_jobs().await.expect("failed jobs").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_ends_failed_at_once_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = open_queue(&dir, fast_config()).await;
    let id = queue.enqueue_import_file(import("c1")).await.expect("enqueue");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let workers = Workers::new(&queue).import_file(1, move |_job: ImportFile| {
        let calls = c.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(JobError::permanent("no template matches inbox/x.csv"))
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    let job = wait_for_state(&queue, &id, JobState::Failed).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    running.await.expect("join").expect("workers ran cleanly");

    assert_eq!(calls.load(Ordering::SeqCst), 1, "a permanent failure was retried");
    assert_eq!(job.last_error.as_deref(), Some("no template matches inbox/x.csv"));
    let failed = queue.failed_jobs().await.expect("failed jobs");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, id);
    assert_eq!(failed[0].payload["claim_id"], "c1");

    // Typed, for the owner to end its own records of the job: payload and reason.
    let given_up = queue.given_up::<ImportFile>().await.expect("given-up jobs");
    assert_eq!(given_up.len(), 1);
    assert_eq!(given_up[0].id, id);
    assert_eq!(given_up[0].job, import("c1"));
    assert_eq!(given_up[0].attempts, 1);
    assert_eq!(given_up[0].reason, "no template matches inbox/x.csv");
    assert!(queue.given_up::<PollSource>().await.expect("other queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_attempts_run_out_ends_failed_with_the_last_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fast_config();
    let max_attempts = config.max_attempts;
    let queue = open_queue(&dir, config).await;
    let id = queue.enqueue_import_file(import("c1")).await.expect("enqueue");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let workers = Workers::new(&queue).import_file(1, move |_job: ImportFile| {
        let calls = c.clone();
        async move {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Err(JobError::retryable(format!("platform unreachable (try {n})")))
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    let job = wait_for_state(&queue, &id, JobState::Failed).await;
    // A failed job is not picked up again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    running.await.expect("join").expect("workers ran cleanly");

    assert_eq!(calls.load(Ordering::SeqCst), max_attempts);
    assert_eq!(job.attempts, max_attempts as u64);
    let reason = format!("platform unreachable (try {max_attempts})");
    assert_eq!(job.last_error.as_deref(), Some(reason.as_str()));
    assert_eq!(queue.failed_jobs().await.expect("failed jobs").len(), 1);
    let given_up = queue.given_up::<ImportFile>().await.expect("given-up jobs");
    assert_eq!(given_up.len(), 1);
    assert_eq!((given_up[0].job.clone(), given_up[0].reason.clone()), (import("c1"), reason));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_waiting_or_that_succeeded_is_not_given_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A long backoff: the retrying job stays between attempts while the test looks.
    let config = QueueConfig { backoff_min: Duration::from_secs(5), ..fast_config() };
    let config = QueueConfig { backoff_max: Duration::from_secs(10), ..config };
    let queue = open_queue(&dir, config).await;
    let done = queue.enqueue_import_file(import("c1")).await.expect("enqueue");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let workers = Workers::new(&queue).import_file(1, move |job: ImportFile| {
        let calls = c.clone();
        async move {
            if job.claim_id == "c1" {
                return Ok(());
            }
            calls.fetch_add(1, Ordering::SeqCst);
            Err(JobError::retryable("not yet"))
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    wait_for_state(&queue, &done, JobState::Succeeded).await;
    queue.enqueue_import_file(import("c2")).await.expect("enqueue");
    jobs_support::wait_until("a failed attempt", || async { calls.load(Ordering::SeqCst) >= 1 })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(queue.given_up::<ImportFile>().await.expect("given-up jobs").is_empty());
    shutdown.cancel();
    running.await.expect("join").expect("workers ran cleanly");
}
