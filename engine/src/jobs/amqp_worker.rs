//! One job type's workers on RabbitMQ: a consumer with prefetch = concurrency, each delivery run
//! by the engine's handler and then acknowledged, retried through a delay queue, or dead-lettered.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::amqp::{ATTEMPTS_HEADER, AmqpJobs, DELIVERY_COUNT_HEADER, Republish, header_u64};
use super::worker::{DynHandler, Lane};
use super::{Job, JobError, JobQueueError};

/// Serves `J`'s queue until `stop`: takes no new job then, hands deliveries not yet started back,
/// lets the running ones finish, and returns.
pub(super) async fn serve<J: Job>(
    jobs: Arc<AmqpJobs>,
    lane: Lane<J>,
    stop: CancellationToken,
) -> Result<(), JobQueueError> {
    let broker = |what: &str, e: lapin::Error| JobQueueError::Worker {
        queue: J::QUEUE,
        reason: format!("{what}: {e}"),
    };
    let channel = jobs.connection().create_channel().await.map_err(|e| broker("channel", e))?;
    let prefetch = u16::try_from(lane.concurrency).unwrap_or(u16::MAX);
    channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(|e| broker("qos", e))?;
    let tag = format!("{}-{}", J::QUEUE, ulid::Ulid::generate());
    let mut consumer = channel
        .basic_consume(
            J::QUEUE.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker("consume", e))?;

    let mut running = JoinSet::new();
    let mut failure = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    let attempt = Attempt { jobs: jobs.clone(), handler: lane.handler.clone(), stop: stop.clone() };
                    running.spawn(attempt.run(delivery));
                }
                Some(Err(e)) => {
                    failure = Some(broker("the consumer failed", e));
                    break;
                }
                None => {
                    failure = Some(JobQueueError::Worker {
                        queue: J::QUEUE,
                        reason: "the broker cancelled the consumer".to_owned(),
                    });
                    break;
                }
            },
            Some(ended) = running.join_next(), if !running.is_empty() => log_panic(J::QUEUE, ended),
        }
    }

    if failure.is_none() {
        // Stop taking jobs; deliveries already on their way are handed back, not started.
        match channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await {
            Ok(()) => {
                while let Some(Ok(delivery)) = consumer.next().await {
                    hand_back::<J>(&jobs, delivery, "the worker stopped before starting it").await;
                }
            }
            Err(e) => {
                tracing::warn!(queue = J::QUEUE, error = %e, "cannot cancel the consumer; its unstarted jobs return when the channel closes")
            }
        }
    }
    while let Some(ended) = running.join_next().await {
        log_panic(J::QUEUE, ended);
    }
    let _ = channel.close(200, "worker stopped".into()).await;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn log_panic(queue: &str, ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        tracing::error!(queue, error = %e, "a job's delivery task ended abnormally");
    }
}

/// Everything one delivery needs.
struct Attempt<J> {
    jobs: Arc<AmqpJobs>,
    handler: DynHandler<J>,
    stop: CancellationToken,
}

impl<J: Job> Attempt<J> {
    /// Runs one delivery to its end: acknowledged (done, retried or dead), or handed back.
    async fn run(self, delivery: Delivery) {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let used = attempts_used(&headers);
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map_or_else(|| "(no id)".to_owned(), |id| id.to_string());
        let max = u64::try_from(self.jobs.max_attempts()).unwrap_or(u64::MAX);
        let job: J = match serde_json::from_slice(&delivery.data) {
            Ok(job) => job,
            Err(e) => {
                let reason = format!("the job's payload cannot be read: {e}");
                return self.dead(&delivery, &id, used + 1, &reason).await;
            }
        };
        if used >= max {
            let reason = format!(
                "gave up after {used} attempts; the last ones ended without a result (the worker \
                 died or was stopped while running it)"
            );
            return self.dead(&delivery, &id, used, &reason).await;
        }
        let attempt = used + 1;
        let handler = self.handler.clone();
        // Its own task, so a panicking handler is a failed attempt, not a lost delivery.
        let outcome = match tokio::spawn(async move { handler(job).await }).await {
            Ok(outcome) => outcome,
            Err(e) => Err(JobError::retryable(format!("the job's handler panicked: {e}"))),
        };
        match outcome {
            Ok(()) => ack(J::QUEUE, &delivery).await,
            Err(e) if self.stop.is_cancelled() && e.is_retryable() => {
                // Cut short by the shutdown: back to the queue, the attempt not counted.
                hand_back::<J>(&self.jobs, delivery, e.reason()).await;
            }
            Err(e) if e.is_busy() => {
                let copy = Republish {
                    body: &delivery.data,
                    id: &id,
                    attempts: used,
                    reason: Some(e.reason()),
                };
                let delay = self.jobs.retry_delay(1);
                match self.jobs.publish_retry(J::QUEUE, delay, copy).await {
                    Ok(()) => ack(J::QUEUE, &delivery).await,
                    Err(error) => requeue(J::QUEUE, &delivery, &error).await,
                }
            }
            Err(e) if e.is_retryable() && attempt < max => {
                tracing::info!(queue = J::QUEUE, job = %id, attempt, error = %e, "job attempt failed; retrying after a delay");
                let copy = Republish {
                    body: &delivery.data,
                    id: &id,
                    attempts: attempt,
                    reason: Some(e.reason()),
                };
                match self.jobs.publish_retry(J::QUEUE, self.jobs.retry_delay(attempt), copy).await
                {
                    Ok(()) => ack(J::QUEUE, &delivery).await,
                    Err(error) => requeue(J::QUEUE, &delivery, &error).await,
                }
            }
            Err(e) => self.dead(&delivery, &id, attempt, e.reason()).await,
        }
    }

    /// Moves the job to the dead-letter queue with its reason, then acknowledges it.
    async fn dead(&self, delivery: &Delivery, id: &str, attempts: u64, reason: &str) {
        tracing::warn!(queue = J::QUEUE, job = %id, attempts, %reason, "job given up: moved to the dead-letter queue");
        let copy = Republish { body: &delivery.data, id, attempts, reason: Some(reason) };
        match self.jobs.publish_dead(J::QUEUE, copy).await {
            Ok(()) => ack(J::QUEUE, delivery).await,
            Err(error) => requeue(J::QUEUE, delivery, &error).await,
        }
    }
}

/// Puts a job back on its queue without counting an attempt (a copy with the same headers, then
/// the delivery acknowledged); if that fails, the delivery is returned to the broker.
async fn hand_back<J: Job>(jobs: &AmqpJobs, delivery: Delivery, why: &str) {
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    let used = attempts_used(&headers);
    let id =
        delivery.properties.message_id().as_ref().map_or_else(String::new, |id| id.to_string());
    let copy = Republish { body: &delivery.data, id: &id, attempts: used, reason: Some(why) };
    match jobs.publish_back(J::QUEUE, copy).await {
        Ok(()) => {
            tracing::info!(queue = J::QUEUE, job = %id, %why, "job handed back to the queue");
            ack(J::QUEUE, &delivery).await;
        }
        Err(error) => requeue(J::QUEUE, &delivery, &error).await,
    }
}

/// Attempts a delivery's job used before it: failed ones carried over by retries, and
/// deliveries that died with their worker.
fn attempts_used(headers: &FieldTable) -> u64 {
    header_u64(headers, ATTEMPTS_HEADER).unwrap_or(0)
        + header_u64(headers, DELIVERY_COUNT_HEADER).unwrap_or(0)
}

async fn ack(queue: &str, delivery: &Delivery) {
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        // The broker redelivers it; the handlers are idempotent.
        tracing::warn!(queue, error = %e, "cannot acknowledge a finished job; it will be delivered again");
    }
}

/// Returns a delivery to the broker (counted by the quorum queue as a delivery without a result).
async fn requeue(queue: &str, delivery: &Delivery, error: &JobQueueError) {
    tracing::warn!(queue, %error, "cannot publish the job's next step; returning it to the queue");
    let options = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
    if let Err(e) = delivery.acker.nack(options).await {
        tracing::warn!(queue, error = %e, "cannot return the job; the broker redelivers it when the channel closes");
    }
}
