//! The job queue on RabbitMQ (through lapin), for engines on several machines.
//!
//! # Topology (declared by every process at start-up, idempotently)
//! For each job type's queue `Q` (e.g. `intake.import_file`):
//! - `Q`: a durable **quorum** queue, the jobs to run. A quorum queue counts the deliveries that
//!   ended without an acknowledgement (the consumer's connection died: a SIGKILLed worker) in the
//!   `x-delivery-count` header, which is how a job that kills its worker ends instead of looping.
//!   It dead-letters to `Q.dead` after [`DELIVERY_LIMIT`] such deliveries (a backstop: the worker
//!   gives up long before, see below).
//! - `Q.retry.<ms>ms`: one durable queue per retry delay, no consumer, a queue-wide TTL of that
//!   delay, dead-lettering into `Q`: a failed attempt is published here and comes back to `Q` when
//!   its delay has passed. One queue per delay (rather than per-message TTLs in one queue) so a
//!   short delay never waits behind a long one.
//! - `Q.dead`: the dead-letter queue: jobs the queue gave up on, each with its reason, its attempts
//!   and its id in headers. Read without taking by [`AmqpJobs::given_up`] (for the engine to end
//!   the job's run failed) and left for operators to inspect, replay or purge.
//!
//! # Promises
//! - **Published is durable**: every publish (enqueue, retry, hand-back, dead-letter) is
//!   persistent, mandatory and waits for the broker's publisher confirm; an unroutable or
//!   refused message is an error, never a silent loss.
//! - **Acknowledged after the effects**: a job is acknowledged only after its handler returned,
//!   and after its retry or dead-letter copy was confirmed. A worker that dies before that gets its
//!   job redelivered by the broker at once (the connection closed), to any worker.
//! - **Attempts**: `x-intake-attempts` (failed attempts carried over by retries) plus
//!   `x-delivery-count` (deliveries that died) is what a job used; one that used
//!   [`QueueConfig::max_attempts`] goes to `Q.dead` without running again.
//! - **Prefetch = concurrency**: each lane's channel has `basic.qos(concurrency)`, so a worker
//!   holds at most as many jobs as it runs.
//! - **Not deduplicated**: RabbitMQ has no unique keys, so [`Job::idempotency_key`] is carried as a
//!   header but not enforced; the handlers hold the uniqueness in the state store (the file claim,
//!   a lease per claim, row idempotency keys), so a job delivered twice does its work once.

use std::collections::BTreeMap;
use std::time::Duration;

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde_json::Value;

use super::{Job, JobQueueError, JobRecord, JobState, QueueConfig};

/// Every job type's queue, declared at start-up.
pub(crate) const QUEUES: [&str; 5] = [
    super::PollSource::QUEUE,
    super::ImportFile::QUEUE,
    super::RetryRejectedRecords::QUEUE,
    super::ImportUpload::QUEUE,
    super::DeliverAlert::QUEUE,
];

/// Deliveries without an acknowledgement after which the broker itself dead-letters a job (the
/// worker's own limit, [`QueueConfig::max_attempts`], normally ends it much earlier).
const DELIVERY_LIMIT: i64 = 50;

/// At most this many dead jobs are read per [`AmqpJobs::given_up`] call.
const BROWSE_LIMIT: usize = 10_000;

/// Header: failed attempts carried over from earlier deliveries of the job.
pub(crate) const ATTEMPTS_HEADER: &str = "x-intake-attempts";
/// Header: why the job ended in the dead-letter queue (or why its last attempt failed).
pub(crate) const REASON_HEADER: &str = "x-intake-reason";
/// Header: the job's idempotency key, when it has one (informational).
const KEY_HEADER: &str = "x-intake-idempotency-key";
/// Header set by quorum queues: deliveries that ended without an acknowledgement.
pub(crate) const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// The dead-letter queue of `queue`.
pub(crate) fn dead_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// The retry queue for one delay.
fn retry_queue(queue: &str, delay: Duration) -> String {
    format!("{queue}.retry.{}ms", delay.as_millis())
}

/// The job queue on a RabbitMQ broker: one connection, one confirming publisher channel.
pub(crate) struct AmqpJobs {
    connection: Connection,
    publisher: Channel,
    config: QueueConfig,
    /// The broker's address without credentials, for messages.
    address: String,
}

impl std::fmt::Debug for AmqpJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpJobs").field("address", &self.address).finish_non_exhaustive()
    }
}

/// A message's copy, as published again (retry, hand-back, dead-letter).
pub(crate) struct Republish<'a> {
    /// The payload.
    pub body: &'a [u8],
    /// The job's id.
    pub id: &'a str,
    /// Failed attempts so far.
    pub attempts: u64,
    /// Why (the last failure, or the reason it is dead).
    pub reason: Option<&'a str>,
}

impl AmqpJobs {
    /// Connects to the broker at `url` (`amqp://` or `amqps://`) and declares every queue.
    pub(crate) async fn open(url: &str, config: QueueConfig) -> Result<Self, JobQueueError> {
        let address = redact_credentials(url);
        let open_error = |e: lapin::Error| JobQueueError::Broker {
            address: address.clone(),
            reason: e.to_string(),
        };
        let connection =
            Connection::connect(url, ConnectionProperties::default()).await.map_err(open_error)?;
        let publisher = connection.create_channel().await.map_err(open_error)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(open_error)?;
        let jobs = AmqpJobs { connection, publisher, config, address };
        for queue in QUEUES {
            jobs.declare(queue).await?;
        }
        Ok(jobs)
    }

    fn broker_error(&self, what: &str, e: impl std::fmt::Display) -> JobQueueError {
        JobQueueError::Broker { address: self.address.clone(), reason: format!("{what}: {e}") }
    }

    /// The retry delay after failed attempt number `attempt` (1-based): `backoff_min` doubling,
    /// at most `backoff_max`.
    pub(crate) fn retry_delay(&self, attempt: u64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(30);
        self.config.backoff_min.saturating_mul(1 << doublings).min(self.config.backoff_max)
    }

    /// Every retry delay in use, each once: after each failed attempt but the last, and the
    /// wait of a busy job (the first delay, also when only one attempt is allowed).
    fn retry_delays(&self) -> Vec<Duration> {
        let attempts = u64::try_from(self.config.max_attempts).unwrap_or(u64::MAX);
        let mut delays: Vec<Duration> = (1..attempts.max(2)).map(|a| self.retry_delay(a)).collect();
        // Non-decreasing (doubling up to the maximum), so repeats are neighbours.
        delays.dedup();
        delays
    }

    /// Declares `queue`, its dead-letter queue and its retry queues.
    async fn declare(&self, queue: &str) -> Result<(), JobQueueError> {
        let channel = &self.publisher;
        let dead = dead_queue(queue);
        let mut args = BTreeMap::new();
        args.insert(ShortString::from("x-queue-type"), long_string("quorum"));
        args.insert(ShortString::from("x-dead-letter-exchange"), long_string(""));
        args.insert(ShortString::from("x-dead-letter-routing-key"), long_string(&dead));
        args.insert(ShortString::from("x-delivery-limit"), AMQPValue::LongLongInt(DELIVERY_LIMIT));
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::from(args))
            .await
            .map_err(|e| self.broker_error(&format!("declaring {queue}"), e))?;
        channel
            .queue_declare(
                dead.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.broker_error(&format!("declaring {dead}"), e))?;
        for delay in self.retry_delays() {
            let name = retry_queue(queue, delay);
            let mut args = BTreeMap::new();
            let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            args.insert(ShortString::from("x-message-ttl"), AMQPValue::LongLongInt(ttl));
            args.insert(ShortString::from("x-dead-letter-exchange"), long_string(""));
            args.insert(ShortString::from("x-dead-letter-routing-key"), long_string(queue));
            channel
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions::durable(),
                    FieldTable::from(args),
                )
                .await
                .map_err(|e| self.broker_error(&format!("declaring {name}"), e))?;
        }
        Ok(())
    }

    /// Attempts a job gets in all.
    pub(crate) fn max_attempts(&self) -> usize {
        self.config.max_attempts
    }

    /// The broker connection (the workers open their channels on it).
    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Closes the connection (after every worker stopped).
    pub(crate) async fn close(&self) {
        let _ = self.publisher.close(200, "closing".into()).await;
        let _ = self.connection.close(200, "closing".into()).await;
    }

    /// Whether the broker connection is up.
    pub(crate) fn ping(&self) -> Result<(), JobQueueError> {
        if self.connection.status().connected() {
            Ok(())
        } else {
            Err(self.broker_error("connection", "not connected"))
        }
    }

    /// Jobs waiting to run or to be retried, over every queue (jobs being run are not counted:
    /// the broker does not tell).
    pub(crate) async fn depth(&self) -> Result<u64, JobQueueError> {
        let mut names = Vec::new();
        for queue in QUEUES {
            names.push(queue.to_owned());
            for delay in self.retry_delays() {
                names.push(retry_queue(queue, delay));
            }
        }
        // A channel of its own: a failed passive declare closes the channel it was made on.
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(|e| self.broker_error("opening a channel", e))?;
        let mut depth = 0;
        for name in names {
            let declared = channel
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.broker_error(&format!("reading {name}"), e))?;
            depth += u64::from(declared.message_count());
        }
        let _ = channel.close(200, "read".into()).await;
        Ok(depth)
    }

    /// Publishes `job` on its queue; returns the new job's id.
    pub(crate) async fn enqueue<J: Job>(&self, job: &J) -> Result<String, JobQueueError> {
        let body = serde_json::to_vec(job)
            .map_err(|e| JobQueueError::Enqueue { queue: J::QUEUE, reason: e.to_string() })?;
        let id = ulid::Ulid::generate().to_string();
        let mut headers = FieldTable::default();
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(0));
        if let Some(key) = job.idempotency_key() {
            headers.insert(KEY_HEADER.into(), long_string(&key));
        }
        self.publish(J::QUEUE, &body, &id, headers)
            .await
            .map_err(|e| JobQueueError::Enqueue { queue: J::QUEUE, reason: e.to_string() })?;
        Ok(id)
    }

    /// Publishes a copy of a job to `queue`'s retry queue for `delay` (it comes back to `queue`
    /// after the delay).
    pub(crate) async fn publish_retry(
        &self,
        queue: &str,
        delay: Duration,
        copy: Republish<'_>,
    ) -> Result<(), JobQueueError> {
        self.republish(&retry_queue(queue, delay), copy).await
    }

    /// Publishes a copy of a job straight back onto `queue` (handed back at shutdown).
    pub(crate) async fn publish_back(
        &self,
        queue: &str,
        copy: Republish<'_>,
    ) -> Result<(), JobQueueError> {
        self.republish(queue, copy).await
    }

    /// Publishes a copy of a job to `queue`'s dead-letter queue.
    pub(crate) async fn publish_dead(
        &self,
        queue: &str,
        copy: Republish<'_>,
    ) -> Result<(), JobQueueError> {
        self.republish(&dead_queue(queue), copy).await
    }

    async fn republish(&self, to: &str, copy: Republish<'_>) -> Result<(), JobQueueError> {
        let mut headers = FieldTable::default();
        let attempts = i64::try_from(copy.attempts).unwrap_or(i64::MAX);
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(attempts));
        if let Some(reason) = copy.reason {
            headers.insert(REASON_HEADER.into(), long_string(reason));
        }
        self.publish(to, copy.body, copy.id, headers).await
    }

    /// Publishes persistently to the queue `to` (by the default exchange) and waits for the
    /// broker's confirm.
    async fn publish(
        &self,
        to: &str,
        body: &[u8],
        id: &str,
        headers: FieldTable,
    ) -> Result<(), JobQueueError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(id.into())
            .with_headers(headers);
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirm = self
            .publisher
            .basic_publish("".into(), to.into(), options, body, properties)
            .await
            .map_err(|e| self.broker_error(&format!("publishing to {to}"), e))?
            .await
            .map_err(|e| self.broker_error(&format!("publishing to {to}"), e))?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => {
                Err(self.broker_error(&format!("publishing to {to}"), "no queue took the job"))
            }
            Confirmation::Nack(_) => {
                Err(self.broker_error(&format!("publishing to {to}"), "the broker refused the job"))
            }
            Confirmation::NotRequested => {
                Err(self.broker_error(&format!("publishing to {to}"), "publisher confirms are off"))
            }
        }
    }

    /// The dead jobs of `queue`, oldest first, read without taking them: they stay in the
    /// dead-letter queue (the channel that read them closes without acknowledging).
    pub(crate) async fn given_up(&self, queue: &str) -> Result<Vec<JobRecord>, JobQueueError> {
        self.browse_dead(queue).await
    }

    /// Every dead job of every queue.
    pub(crate) async fn failed_jobs(&self) -> Result<Vec<JobRecord>, JobQueueError> {
        let mut failed = Vec::new();
        for queue in QUEUES {
            failed.extend(self.browse_dead(queue).await?);
        }
        Ok(failed)
    }

    async fn browse_dead(&self, queue: &str) -> Result<Vec<JobRecord>, JobQueueError> {
        let dead = dead_queue(queue);
        let browse_error = |e: lapin::Error| self.broker_error(&format!("reading {dead}"), e);
        let channel = self.connection.create_channel().await.map_err(browse_error)?;
        let mut records = Vec::new();
        let mut failure = None;
        while records.len() < BROWSE_LIMIT {
            match channel.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false }).await {
                Ok(Some(message)) => {
                    records.push(dead_record(queue, &message.delivery));
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(browse_error(e));
                    break;
                }
            }
        }
        // Closing the channel puts every message read back, in its place.
        let _ = channel.close(200, "browsed".into()).await;
        match failure {
            Some(e) => Err(e),
            None => Ok(records),
        }
    }
}

/// A dead job as a [`JobRecord`].
fn dead_record(queue: &str, delivery: &lapin::message::Delivery) -> JobRecord {
    let properties = &delivery.properties;
    let id = properties.message_id().as_ref().map_or_else(String::new, |id| id.to_string());
    let payload = serde_json::from_slice(&delivery.data)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&delivery.data).into_owned()));
    let headers = properties.headers().as_ref();
    let attempts = headers.and_then(|h| header_u64(h, ATTEMPTS_HEADER)).unwrap_or(0);
    let reason = headers.and_then(|h| header_string(h, REASON_HEADER)).or_else(|| {
        // Dead-lettered by the broker itself (its delivery limit): no reason header of ours.
        headers.and_then(|h| h.inner().get("x-first-death-reason")).map(|reason| {
            format!(
                "the broker dead-lettered the job ({}): its deliveries kept ending without a result",
                value_text(reason)
            )
        })
    });
    JobRecord {
        id,
        queue: queue.to_owned(),
        state: JobState::Failed,
        attempts,
        max_attempts: attempts,
        last_error: reason,
        payload,
    }
}

/// An integer header, whatever integer type the broker used.
pub(crate) fn header_u64(headers: &FieldTable, name: &str) -> Option<u64> {
    match headers.inner().get(name)? {
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// A string header.
fn header_string(headers: &FieldTable, name: &str) -> Option<String> {
    headers.inner().get(name).map(value_text)
}

fn value_text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text.to_owned()))
}

/// `url` without its user and password, for messages and logs.
pub(crate) fn redact_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Whether `location` names a RabbitMQ broker rather than a SQLite file.
pub(crate) fn is_broker_url(location: &str) -> bool {
    let lower = location.to_ascii_lowercase();
    lower.starts_with("amqp://") || lower.starts_with("amqps://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            redact_credentials("amqp://guest:secret@rabbit:5672/%2f"),
            "amqp://rabbit:5672/%2f"
        );
        assert_eq!(redact_credentials("amqp://rabbit:5672"), "amqp://rabbit:5672");
    }

    #[test]
    fn broker_urls_are_told_from_files() {
        assert!(is_broker_url("amqp://127.0.0.1:5672/%2f"));
        assert!(is_broker_url("AMQPS://rabbit"));
        assert!(!is_broker_url("intake.jobs.sqlite"));
        assert!(!is_broker_url("sqlite://jobs.sqlite"));
    }
}
