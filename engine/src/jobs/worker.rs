//! The workers: N concurrent handlers per job type, on apalis (SQLite) or on a RabbitMQ consumer
//! ([`super::amqp_worker`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{
    Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff,
};
use apalis::prelude::{
    AbortError, Attempt, BackendExt, BoxDynError, Data, RetryPolicy, WorkerBuilder,
    WorkerBuilderExt, WorkerError,
};
use apalis_sqlite::SqliteStorage;
use tokio_util::sync::CancellationToken;

use super::sqlite::SqliteJobs;
use super::{
    Backend, DeliverAlert, ImportFile, ImportUpload, Job, JobError, JobQueue, JobQueueError,
    PollSource, RetryRejectedRecords,
};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the engine plugs in to run one job: an async function of the payload. Its effects must be
/// durable when it returns `Ok` (the job is acknowledged right after); a job may run more than
/// once (after a crash), so the effects must be idempotent.
///
/// Implemented for every `Fn(J) -> impl Future<Output = Result<(), JobError>>` that is `Clone`.
pub trait JobHandler<J>: Clone + Send + Sync + 'static {
    /// Runs one job.
    fn handle(&self, job: J) -> impl Future<Output = Result<(), JobError>> + Send;
}

impl<J, F, Fut> JobHandler<J> for F
where
    F: Fn(J) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send,
{
    fn handle(&self, job: J) -> impl Future<Output = Result<(), JobError>> + Send {
        self(job)
    }
}

/// A lane's handler, type-erased.
pub(super) type DynHandler<J> = Arc<dyn Fn(J) -> BoxFuture<Result<(), JobError>> + Send + Sync>;

/// One job type's share of the workers: how many run at once, and what runs them.
pub(super) struct Lane<J> {
    /// Jobs run at once (at least 1).
    pub(super) concurrency: usize,
    /// The engine's handler.
    pub(super) handler: DynHandler<J>,
}

impl<J: Job> Lane<J> {
    fn new<H: JobHandler<J>>(concurrency: usize, handler: H) -> Self {
        let handler: DynHandler<J> = Arc::new(move |job| {
            let handler = handler.clone();
            Box::pin(async move { handler.handle(job).await })
        });
        Lane { concurrency: concurrency.max(1), handler }
    }
}

/// The workers of one process: for each job type given a handler, up to `concurrency` jobs run at
/// once. Built with the job types it serves, then [`run`](Workers::run) until cancelled.
pub struct Workers {
    queue: JobQueue,
    poll_source: Option<Lane<PollSource>>,
    import_file: Option<Lane<ImportFile>>,
    retry_rejected_records: Option<Lane<RetryRejectedRecords>>,
    import_upload: Option<Lane<ImportUpload>>,
    deliver_alert: Option<Lane<DeliverAlert>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("poll_source", &self.poll_source.as_ref().map(|l| l.concurrency))
            .field("import_file", &self.import_file.as_ref().map(|l| l.concurrency))
            .field(
                "retry_rejected_records",
                &self.retry_rejected_records.as_ref().map(|l| l.concurrency),
            )
            .field("import_upload", &self.import_upload.as_ref().map(|l| l.concurrency))
            .field("deliver_alert", &self.deliver_alert.as_ref().map(|l| l.concurrency))
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// Workers taking jobs from `queue`, serving no job type yet.
    pub fn new(queue: &JobQueue) -> Self {
        Workers {
            queue: queue.clone(),
            poll_source: None,
            import_file: None,
            retry_rejected_records: None,
            import_upload: None,
            deliver_alert: None,
        }
    }

    /// Serve [`PollSource`] jobs with `handler`, at most `concurrency` at once (at least 1).
    #[must_use]
    pub fn poll_source<H: JobHandler<PollSource>>(
        mut self,
        concurrency: usize,
        handler: H,
    ) -> Self {
        self.poll_source = Some(Lane::new(concurrency, handler));
        self
    }

    /// Serve [`ImportFile`] jobs with `handler`, at most `concurrency` at once (at least 1).
    #[must_use]
    pub fn import_file<H: JobHandler<ImportFile>>(
        mut self,
        concurrency: usize,
        handler: H,
    ) -> Self {
        self.import_file = Some(Lane::new(concurrency, handler));
        self
    }

    /// Serve [`RetryRejectedRecords`] jobs with `handler`, at most `concurrency` at once.
    #[must_use]
    pub fn retry_rejected_records<H: JobHandler<RetryRejectedRecords>>(
        mut self,
        concurrency: usize,
        handler: H,
    ) -> Self {
        self.retry_rejected_records = Some(Lane::new(concurrency, handler));
        self
    }

    /// Serve [`ImportUpload`] jobs with `handler`, at most `concurrency` at once.
    #[must_use]
    pub fn import_upload<H: JobHandler<ImportUpload>>(
        mut self,
        concurrency: usize,
        handler: H,
    ) -> Self {
        self.import_upload = Some(Lane::new(concurrency, handler));
        self
    }

    /// Serve [`DeliverAlert`] jobs with `handler`, at most `concurrency` at once.
    #[must_use]
    pub fn deliver_alert<H: JobHandler<DeliverAlert>>(
        mut self,
        concurrency: usize,
        handler: H,
    ) -> Self {
        self.deliver_alert = Some(Lane::new(concurrency, handler));
        self
    }

    /// Runs the workers until `shutdown` is cancelled, then stops taking jobs, lets the running
    /// ones finish, hands fetched-but-unstarted ones back to the queue and returns. If one job
    /// type's worker fails (its database went away), the others are stopped the same way and the
    /// first error is returned. Nothing is left running when this returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), JobQueueError> {
        self.queue.config().validate()?;
        let stop = shutdown.child_token();
        let queue = self.queue;
        let (a, b, c, d, e) = tokio::join!(
            run_lane(queue.clone(), self.poll_source, stop.clone()),
            run_lane(queue.clone(), self.import_file, stop.clone()),
            run_lane(queue.clone(), self.retry_rejected_records, stop.clone()),
            run_lane(queue.clone(), self.import_upload, stop.clone()),
            run_lane(queue.clone(), self.deliver_alert, stop.clone()),
        );
        a.and(b).and(c).and(d).and(e)
    }
}

async fn run_lane<J: Job>(
    queue: JobQueue,
    lane: Option<Lane<J>>,
    stop: CancellationToken,
) -> Result<(), JobQueueError> {
    let Some(lane) = lane else { return Ok(()) };
    // Boxed as a `Send` future here, where the job type is concrete: the compiler cannot prove
    // apalis's worker future `Send` for every lifetime otherwise.
    let serving: BoxFuture<Result<(), JobQueueError>> = match queue.backend() {
        Backend::Sqlite(jobs) => Box::pin(serve(jobs.clone(), lane, stop.clone())),
        Backend::Amqp(jobs) => {
            Box::pin(super::amqp_worker::serve(jobs.clone(), lane, stop.clone()))
        }
    };
    let result = serving.await;
    if result.is_err() {
        // Stop the sibling job types gracefully rather than leaving them running alone.
        stop.cancel();
    }
    result
}

async fn serve<J: Job>(
    queue: SqliteJobs,
    lane: Lane<J>,
    stop: CancellationToken,
) -> Result<(), JobQueueError> {
    let config = queue.config().clone();
    let storage = SqliteStorage::<J>::new(queue.pool())
        .with_config(config.apalis_config(J::QUEUE, lane.concurrency))
        .poll_with_interval(config.poll_interval);
    let backoff = ExponentialBackoffMaker::new(
        config.backoff_min,
        config.backoff_max,
        0.5,
        HasherRng::default(),
    )
    .map_err(|e| JobQueueError::Config(e.to_string()))?
    .make_backoff();
    let retrying = Arc::new(AtomicUsize::new(0));
    let backoff =
        StoppableBackoff { inner: backoff, stop: stop.clone(), retrying: retrying.clone() };
    let policy = RetryPolicy::retries(config.max_attempts.saturating_sub(1))
        .with_backoff(backoff)
        .retry_if(retryable_until(stop.clone()));

    let context = LaneContext {
        handler: lane.handler,
        max_attempts: config.max_attempts,
        stop: stop.clone(),
        retrying: retrying.clone(),
    };
    let name = format!("{}-{}", J::QUEUE, ulid::Ulid::generate());
    let worker = WorkerBuilder::new(name)
        .backend(storage)
        .concurrency(lane.concurrency)
        .retry(policy)
        .data(context)
        .build(run_job::<J>);
    worker
        .run_until(async move {
            stop.cancelled().await;
            // apalis refuses new calls once it is shutting down, retries included: a retry whose
            // backoff the stop just cut short would then wait for ever. Let such retries reach
            // their handler (which hands the job back at once) before apalis is told to stop.
            let deadline = tokio::time::Instant::now() + RETRY_HAND_BACK_GRACE;
            while retrying.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<(), WorkerError>(())
        })
        .await
        .map_err(|e| JobQueueError::Worker { queue: J::QUEUE, reason: e.to_string() })
}

/// How long a stopping lane waits for retries cut short by the stop to reach their handler.
const RETRY_HAND_BACK_GRACE: Duration = Duration::from_secs(5);

/// What [`run_job`] needs besides the payload.
struct LaneContext<J> {
    handler: DynHandler<J>,
    max_attempts: usize,
    stop: CancellationToken,
    /// Retries between their backoff's start and their attempt's start.
    retrying: Arc<AtomicUsize>,
}

impl<J> Clone for LaneContext<J> {
    fn clone(&self) -> Self {
        LaneContext {
            handler: self.handler.clone(),
            max_attempts: self.max_attempts,
            stop: self.stop.clone(),
            retrying: self.retrying.clone(),
        }
    }
}

/// One attempt at a job: the engine's handler, its error turned into apalis's retry-or-abort.
async fn run_job<J: Job>(
    job: J,
    attempt: Attempt,
    context: Data<LaneContext<J>>,
) -> Result<(), BoxDynError> {
    let attempt = attempt.current();
    if attempt > 1 {
        // A retry has reached its attempt (a job re-fetched after a crash may arrive here too:
        // the count never goes below zero, which only ends a stopping lane's wait sooner).
        let _ =
            context.retrying.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
    if attempt > context.max_attempts {
        // The earlier attempts ended without a result: their workers died (or this job kills them).
        return Err(abort(JobError::permanent(format!(
            "gave up after {} attempts; the last ones ended without a result (the worker died or \
             was stopped while running it)",
            attempt - 1
        ))));
    }
    if attempt > 1 && context.stop.is_cancelled() {
        // A retry whose backoff was cut short by shutdown: hand it back rather than start it.
        return Err(Box::new(JobError::retryable(
            "the worker stopped before this retry; handed back to the queue",
        )));
    }
    match (context.handler)(job).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_retryable() => Err(Box::new(e)),
        Err(e) => Err(abort(e)),
    }
}

/// Whether the retry layer should try again: only a [`JobError::retryable`] failure.
fn is_retryable(error: &BoxDynError) -> bool {
    error.downcast_ref::<JobError>().is_some_and(JobError::is_retryable)
}

/// [`is_retryable`], and only until the lane is stopping: a failure then ends the attempt chain,
/// and the job, failed with attempts left, waits in the queue for the next worker.
fn retryable_until(
    stop: CancellationToken,
) -> impl Fn(&BoxDynError) -> bool + Clone + Send + Sync + 'static {
    move |error| !stop.is_cancelled() && is_retryable(error)
}

/// A permanent failure: apalis marks an [`AbortError`] `Killed` and never retries it.
fn abort(error: JobError) -> BoxDynError {
    Box::new(AbortError::new(error))
}

/// The exponential backoff, cut short when the workers are stopping (so a shutdown never waits
/// for a long retry delay).
#[derive(Clone)]
struct StoppableBackoff {
    inner: ExponentialBackoff,
    stop: CancellationToken,
    /// Counts the retries under way, see [`LaneContext::retrying`].
    retrying: Arc<AtomicUsize>,
}

impl Backoff for StoppableBackoff {
    type Future = BoxFuture<()>;

    fn next_backoff(&mut self) -> Self::Future {
        self.retrying.fetch_add(1, Ordering::SeqCst);
        let delay = self.inner.next_backoff();
        let stop = self.stop.clone();
        Box::pin(async move {
            tokio::select! {
                () = delay => {}
                () = stop.cancelled() => {}
            }
        })
    }
}
