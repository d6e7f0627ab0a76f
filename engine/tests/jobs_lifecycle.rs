//! Stopping workers and losing them: cancellation lets the running job finish and takes no new
//! one; a job held by a dead worker is run again after the orphan timeout.

mod jobs_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intake_engine::jobs::{ImportFile, JobState, Workers};
use jobs_support::{fast_config, open_queue, wait_for_state, wait_until};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

fn import(claim: &str) -> ImportFile {
    ImportFile { tenant_id: "t1".into(), source_id: "s1".into(), claim_id: claim.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_lets_the_running_job_finish_and_takes_no_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = open_queue(&dir, fast_config()).await;
    let first = queue.enqueue_import_file(import("first")).await.expect("enqueue");

    let started = Arc::new(Notify::new());
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release = Arc::new(Mutex::new(Some(release_rx)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (st, rl, sn) = (started.clone(), release.clone(), seen.clone());
    let workers = Workers::new(&queue).import_file(1, move |job: ImportFile| {
        let (started, release, seen) = (st.clone(), rl.clone(), sn.clone());
        async move {
            started.notify_one();
            let gate = release.lock().expect("lock").take();
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            seen.lock().expect("lock").push(job.claim_id);
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    started.notified().await;

    shutdown.cancel();
    let second = queue.enqueue_import_file(import("second")).await.expect("enqueue");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.is_finished(), "the workers returned while a job was still running");
    release_tx.send(()).expect("release the running job");
    running.await.expect("join").expect("workers stopped cleanly");

    assert_eq!(*seen.lock().expect("lock"), vec!["first".to_owned()]);
    assert_eq!(queue.job(&first).await.expect("read").expect("job").state, JobState::Succeeded);
    assert_eq!(queue.job(&second).await.expect("read").expect("job").state, JobState::Waiting);

    // The job left behind is taken by the next workers.
    let s = seen.clone();
    let workers = Workers::new(&queue).import_file(1, move |job: ImportFile| {
        let seen = s.clone();
        async move {
            seen.lock().expect("lock").push(job.claim_id);
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(workers.run(shutdown.clone()));
    wait_for_state(&queue, &second, JobState::Succeeded).await;
    shutdown.cancel();
    running.await.expect("join").expect("workers stopped cleanly");
    assert_eq!(*seen.lock().expect("lock"), vec!["first".to_owned(), "second".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_held_by_a_dead_worker_runs_again_after_the_orphan_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = open_queue(&dir, fast_config()).await;
    let id = queue.enqueue_import_file(import("c1")).await.expect("enqueue");

    // A worker takes the job and dies in the middle of it: its task is aborted, so it neither
    // acknowledges the job nor heartbeats again (what SIGKILL does to a worker process).
    let started = Arc::new(Notify::new());
    let st = started.clone();
    let doomed = Workers::new(&queue).import_file(1, move |_job: ImportFile| {
        let started = st.clone();
        async move {
            started.notify_one();
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let dead = tokio::spawn(doomed.run(CancellationToken::new()));
    started.notified().await;
    dead.abort();
    let _ = dead.await;
    assert_eq!(queue.job(&id).await.expect("read").expect("job").state, JobState::Running);

    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (calls.clone(), seen.clone());
    let survivor = Workers::new(&queue).import_file(1, move |job: ImportFile| {
        let (calls, seen) = (c.clone(), s.clone());
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            seen.lock().expect("lock").push(job);
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(survivor.run(shutdown.clone()));
    let job = wait_for_state(&queue, &id, JobState::Succeeded).await;
    wait_until("the handler to have run", || async { calls.load(Ordering::SeqCst) == 1 }).await;
    shutdown.cancel();
    running.await.expect("join").expect("workers stopped cleanly");

    assert_eq!(*seen.lock().expect("lock"), vec![import("c1")]);
    assert!(job.attempts >= 2, "the lost attempt was not counted: {job:?}");
}
