//! The job queue on a real RabbitMQ broker (a fresh virtual host per test): delivery and
//! acknowledgement, retries through the delay queues, the dead-letter queue with reasons,
//! redelivery of a dead worker's job, hand-back at shutdown and waiting while busy — neither
//! using an attempt.

mod amqp_support;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use intake_engine::jobs::{ImportFile, JobError, JobQueue, QueueConfig, Workers};
use tokio_util::sync::CancellationToken;

use amqp_support::Vhost;

fn config(max_attempts: usize) -> QueueConfig {
    QueueConfig {
        max_attempts,
        backoff_min: Duration::from_millis(300),
        backoff_max: Duration::from_secs(2),
        ..QueueConfig::default()
    }
}

fn import(claim: &str) -> ImportFile {
    ImportFile { tenant_id: "t".into(), source_id: "s".into(), claim_id: claim.into() }
}

/// When each claim's attempts started.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, Vec<Instant>>>>);

impl Calls {
    fn record(&self, claim: &str) -> usize {
        let mut calls = self.0.lock().expect("lock");
        let entry = calls.entry(claim.to_owned()).or_default();
        entry.push(Instant::now());
        entry.len()
    }
    fn count(&self, claim: &str) -> usize {
        self.0.lock().expect("lock").get(claim).map_or(0, Vec::len)
    }
    fn total(&self) -> usize {
        self.0.lock().expect("lock").values().map(Vec::len).sum()
    }
    fn times(&self, claim: &str) -> Vec<Instant> {
        self.0.lock().expect("lock").get(claim).cloned().unwrap_or_default()
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// A handler that records each call in `calls` and answers `answer(claim, nth call of it)`.
fn recording(
    calls: &Calls,
    answer: impl Fn(&str, usize) -> Result<(), JobError> + Clone + Send + Sync + 'static,
) -> impl Fn(ImportFile) -> Answer + Clone + Send + Sync + 'static {
    let calls = calls.clone();
    move |job: ImportFile| {
        let result = answer(&job.claim_id, calls.record(&job.claim_id));
        Box::pin(async move { result })
    }
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_for_dead(queue: &JobQueue, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dead = queue.given_up::<ImportFile>().await.expect("browse");
        if dead.len() >= count {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {count} dead job(s): {dead:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_runs_once_and_the_queue_drains() {
    let Some(vhost) = Vhost::create() else { return };
    let queue = JobQueue::open(&vhost.url, config(3)).await.expect("open");
    assert!(!queue.enqueue_is_idempotent());
    for i in 0..40 {
        queue.enqueue_import_file(import(&format!("c{i}"))).await.expect("enqueue");
    }
    assert_eq!(queue.depth().await.expect("depth"), 40, "published and confirmed");

    let calls = Calls::default();
    let stop = CancellationToken::new();
    let handler = recording(&calls, |_, _| Ok(()));
    let workers = tokio::spawn(Workers::new(&queue).import_file(4, handler).run(stop.clone()));
    wait_until("40 jobs run", || calls.total() >= 40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    workers.await.expect("join").expect("workers");
    assert_eq!(calls.total(), 40, "no job twice");
    assert!((0..40).all(|i| calls.count(&format!("c{i}")) == 1));
    assert_eq!(queue.depth().await.expect("depth"), 0, "every job acknowledged");
    assert!(queue.failed_jobs().await.expect("dead").is_empty());
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_comes_back_after_its_delay_until_it_succeeds() {
    let Some(vhost) = Vhost::create() else { return };
    let queue = JobQueue::open(&vhost.url, config(3)).await.expect("open");
    queue.enqueue_import_file(import("flaky")).await.expect("enqueue");
    let calls = Calls::default();
    let stop = CancellationToken::new();
    let handler = recording(&calls, |_, n| match n {
        1 | 2 => Err(JobError::retryable("the platform answered 503")),
        _ => Ok(()),
    });
    let workers = tokio::spawn(Workers::new(&queue).import_file(2, handler).run(stop.clone()));
    wait_until("the third attempt", || calls.count("flaky") >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    workers.await.expect("join").expect("workers");
    assert_eq!(calls.count("flaky"), 3, "two failures, one success, nothing more");
    let times = calls.times("flaky");
    // Backoff: 300 ms after the first failure, 600 ms after the second (by the delay queues).
    assert!(times[1] - times[0] >= Duration::from_millis(280), "{:?}", times[1] - times[0]);
    assert!(times[2] - times[1] >= Duration::from_millis(580), "{:?}", times[2] - times[1]);
    assert!(queue.given_up::<ImportFile>().await.expect("dead").is_empty());
    assert_eq!(queue.depth().await.expect("depth"), 0);
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_and_used_up_attempts_end_in_the_dead_letter_queue_with_the_reason() {
    let Some(vhost) = Vhost::create() else { return };
    let queue = JobQueue::open(&vhost.url, config(3)).await.expect("open");
    let broken = queue.enqueue_import_file(import("broken")).await.expect("enqueue");
    let flaky = queue.enqueue_import_file(import("always-503")).await.expect("enqueue");
    queue.enqueue_import_file(import("fine")).await.expect("enqueue");
    let calls = Calls::default();
    let stop = CancellationToken::new();
    let handler = recording(&calls, |claim, _| match claim {
        "broken" => Err(JobError::permanent("no template matches inbox/x.csv")),
        "always-503" => Err(JobError::retryable("the platform answered 503")),
        _ => Ok(()),
    });
    let workers = tokio::spawn(Workers::new(&queue).import_file(2, handler).run(stop.clone()));
    wait_for_dead(&queue, 2).await;
    stop.cancel();
    workers.await.expect("join").expect("workers");

    assert_eq!((calls.count("broken"), calls.count("always-503"), calls.count("fine")), (1, 3, 1));
    let dead = queue.given_up::<ImportFile>().await.expect("browse");
    let by_claim: BTreeMap<_, _> = dead.iter().map(|d| (d.job.claim_id.as_str(), d)).collect();
    assert_eq!(by_claim.len(), 2, "{dead:?}");
    assert_eq!(by_claim["broken"].id, broken);
    assert_eq!(by_claim["broken"].attempts, 1);
    assert_eq!(by_claim["broken"].reason, "no template matches inbox/x.csv");
    assert_eq!(by_claim["always-503"].id, flaky);
    assert_eq!(by_claim["always-503"].attempts, 3);
    assert_eq!(by_claim["always-503"].reason, "the platform answered 503");
    // Reading the dead-letter queue leaves the jobs there.
    assert_eq!(queue.given_up::<ImportFile>().await.expect("browse again").len(), 2);
    assert_eq!(queue.failed_jobs().await.expect("dead").len(), 2);
    assert_eq!(queue.depth().await.expect("depth"), 0);
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_is_redelivered_and_its_attempt_counts() {
    let Some(vhost) = Vhost::create() else { return };
    // The worker that dies: its own connection, a handler that never ends.
    let doomed = JobQueue::open(&vhost.url, config(2)).await.expect("open");
    doomed.enqueue_import_file(import("held")).await.expect("enqueue");
    let started = Calls::default();
    let hang = {
        let started = started.clone();
        move |job: ImportFile| {
            let started = started.clone();
            async move {
                started.record(&job.claim_id);
                std::future::pending::<Result<(), JobError>>().await
            }
        }
    };
    let dying =
        tokio::spawn(Workers::new(&doomed).import_file(1, hang).run(CancellationToken::new()));
    wait_until("the job to start", || started.count("held") == 1).await;
    // The process "dies": its task is gone and its connection closes without an acknowledgement.
    dying.abort();
    doomed.close().await;

    let queue = JobQueue::open(&vhost.url, config(2)).await.expect("open");
    let calls = Calls::default();
    let stop = CancellationToken::new();
    let handler = recording(&calls, |_, _| Err(JobError::retryable("still failing")));
    let workers = tokio::spawn(Workers::new(&queue).import_file(1, handler).run(stop.clone()));
    wait_for_dead(&queue, 1).await;
    stop.cancel();
    workers.await.expect("join").expect("workers");
    // Attempt 1 died with its worker; attempt 2 (the last of 2) failed: dead, not retried.
    assert_eq!(calls.count("held"), 1);
    let dead = queue.given_up::<ImportFile>().await.expect("browse");
    assert_eq!((dead[0].attempts, dead[0].reason.as_str()), (2, "still failing"));
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cut_short_by_shutdown_or_busy_elsewhere_uses_no_attempt() {
    let Some(vhost) = Vhost::create() else { return };
    // One attempt in all: anything counted as an attempt would end the job dead.
    let queue = JobQueue::open(&vhost.url, config(1)).await.expect("open");
    queue.enqueue_import_file(import("long")).await.expect("enqueue");
    let started = Calls::default();
    let stop = CancellationToken::new();
    let interrupted = {
        let (started, stop) = (started.clone(), stop.clone());
        move |job: ImportFile| {
            let (started, stop) = (started.clone(), stop.clone());
            async move {
                started.record(&job.claim_id);
                stop.cancelled().await;
                Err::<(), _>(JobError::retryable("cancelled by the shutdown"))
            }
        }
    };
    let first = tokio::spawn(Workers::new(&queue).import_file(1, interrupted).run(stop.clone()));
    wait_until("the job to start", || started.count("long") == 1).await;
    stop.cancel();
    first.await.expect("join").expect("workers");
    assert_eq!(queue.depth().await.expect("depth"), 1, "handed back to the queue");

    queue.enqueue_import_file(import("contended")).await.expect("enqueue");
    let calls = Calls::default();
    let stop = CancellationToken::new();
    let handler = recording(&calls, |claim, n| match claim {
        "contended" if n <= 2 => Err(JobError::busy("another worker is importing it")),
        _ => Ok(()),
    });
    let second = tokio::spawn(Workers::new(&queue).import_file(2, handler).run(stop.clone()));
    wait_until("both jobs done", || calls.count("long") == 1 && calls.count("contended") == 3)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    second.await.expect("join").expect("workers");
    assert!(queue.given_up::<ImportFile>().await.expect("browse").is_empty());
    assert_eq!(queue.depth().await.expect("depth"), 0);
    queue.close().await;
}
