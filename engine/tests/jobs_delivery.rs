//! Jobs are delivered once each, with their payload, within the concurrency limit, idempotently
//! enqueued, and durable across reopening the queue.

mod jobs_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intake_engine::jobs::{
    ImportFile, JobError, JobState, PollSource, RetryRejectedRecords, Workers,
};
use jobs_support::{fast_config, open_queue, wait_for_state, wait_until};
use tokio_util::sync::CancellationToken;

fn import(claim: usize) -> ImportFile {
    ImportFile {
        tenant_id: "t1".into(),
        source_id: "s1".into(),
        claim_id: format!("claim-{claim}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_type_is_handled_exactly_once_with_its_payload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = open_queue(&dir, fast_config()).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(queue.enqueue_import_file(import(i)).await.expect("enqueue"));
    }
    let poll = PollSource { tenant_id: "t1".into(), source_id: "s1".into() };
    ids.push(queue.enqueue_poll_source(poll.clone()).await.expect("enqueue"));
    let retry =
        RetryRejectedRecords { tenant_id: "t1".into(), record_ids: vec!["r1".into(), "r2".into()] };
    ids.push(queue.enqueue_retry_rejected_records(retry.clone()).await.expect("enqueue"));

    let imports = Arc::new(Mutex::new(Vec::new()));
    let polls = Arc::new(Mutex::new(Vec::new()));
    let retries = Arc::new(Mutex::new(Vec::new()));
    let (i, p, r) = (imports.clone(), polls.clone(), retries.clone());
    let workers = Workers::new(&queue)
        .import_file(2, move |job: ImportFile| {
            let seen = i.clone();
            async move {
                seen.lock().expect("lock").push(job);
                Ok::<(), JobError>(())
            }
        })
        .poll_source(1, move |job: PollSource| {
            let seen = p.clone();
            async move {
                seen.lock().expect("lock").push(job);
                Ok(())
            }
        })
        .retry_rejected_records(1, move |job: RetryRejectedRecords| {
            let seen = r.clone();
            async move {
                seen.lock().expect("lock").push(job);
                Ok(())
            }
        });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));

    for id in &ids {
        let job = wait_for_state(&queue, id, JobState::Succeeded).await;
        assert_eq!(job.attempts, 1, "{job:?}");
    }
    // Give a wrongly repeated delivery the chance to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    running.await.expect("join").expect("workers ran cleanly");

    let mut imported: Vec<String> =
        imports.lock().expect("lock").iter().map(|j| j.claim_id.clone()).collect();
    imported.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("claim-{i}")).collect();
    expected.sort();
    assert_eq!(imported, expected);
    assert_eq!(*polls.lock().expect("lock"), vec![poll]);
    assert_eq!(*retries.lock().expect("lock"), vec![retry]);
    assert!(queue.failed_jobs().await.expect("failed jobs").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_jobs_run_at_once_than_the_concurrency_allows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = open_queue(&dir, fast_config()).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(queue.enqueue_import_file(import(i)).await.expect("enqueue"));
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, pk) = (in_flight.clone(), peak.clone());
    let workers = Workers::new(&queue).import_file(3, move |_job: ImportFile| {
        let (in_flight, peak) = (f.clone(), pk.clone());
        async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    for id in &ids {
        wait_for_state(&queue, id, JobState::Succeeded).await;
    }
    shutdown.cancel();
    running.await.expect("join").expect("workers ran cleanly");
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} jobs ran at once with a concurrency of 3");
    assert!(peak >= 2, "jobs never ran concurrently (peak {peak})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_for_a_claim_already_queued_is_not_queued_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = open_queue(&dir, fast_config()).await;
    let first = queue.enqueue_import_file(import(1)).await.expect("enqueue");
    let again = queue.enqueue_import_file(import(1)).await.expect("enqueue");
    assert_eq!(first, again);
    let other = queue.enqueue_import_file(import(2)).await.expect("enqueue");
    assert_ne!(first, other);

    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let workers = Workers::new(&queue).import_file(1, move |_job: ImportFile| {
        let calls = c.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    wait_for_state(&queue, &first, JobState::Succeeded).await;
    wait_for_state(&queue, &other, JobState::Succeeded).await;
    // Also after the job finished, the same claim is not imported again.
    assert_eq!(queue.enqueue_import_file(import(1)).await.expect("enqueue"), first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    running.await.expect("join").expect("workers ran cleanly");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(queue.jobs("intake.import_file").await.expect("jobs").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_survive_reopening_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = {
        let queue = open_queue(&dir, fast_config()).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(queue.enqueue_import_file(import(i)).await.expect("enqueue"));
        }
        queue.close().await;
        ids
    };
    let queue = open_queue(&dir, fast_config()).await;
    for id in &ids {
        assert_eq!(
            queue.job(id).await.expect("read").expect("still there").state,
            JobState::Waiting
        );
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let workers = Workers::new(&queue).import_file(2, move |job: ImportFile| {
        let seen = s.clone();
        async move {
            seen.lock().expect("lock").push(job.claim_id);
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    wait_until("all three imported", || async { seen.lock().expect("lock").len() == 3 }).await;
    for id in &ids {
        wait_for_state(&queue, id, JobState::Succeeded).await;
    }
    shutdown.cancel();
    running.await.expect("join").expect("workers ran cleanly");
}
