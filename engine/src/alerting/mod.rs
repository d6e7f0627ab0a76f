//! The engine's alert dispatcher: events raised by imports, pollers and the SLA monitor are
//! routed to the tenant's channels, gated per channel, stored, and delivered through the job
//! queue.
//!
//! # How an event travels
//! 1. **Logged and counted** at once ([`crate::events::raise`]), whatever else happens.
//! 2. **Routed** ([`intake_alerts::route`]) by the tenant's `/alert-routing-rules`, read from the
//!    state store for every event (so a rule changed through the REST layer applies to the next
//!    event). An `sla_violation`/`sla_recovered` also goes to the channels its template's
//!    `schedule_expectation` names in `alert_channels`. No channel at all: the `log` channel.
//! 3. **Gated** per channel ([`ChannelGate`]): de-duplication (10 minutes), the sliding
//!    `max_alerts_per_5min`, quiet hours in the tenant's time zone (`[alerts] timezone`). An
//!    inactive, deleted or unknown channel is not delivered to.
//! 4. **Stored** as an `/alerts` item per channel with its status (`queued`, `sent`,
//!    `suppressed`, `duplicate`, `held`, `failed` with its reason), listable through the REST
//!    layer.
//! 5. **Delivered** by a [`DeliverAlert`] job (the queue's retries with backoff): the channel is
//!    read again from the store, built, and sent the rendered alert; the credential it names is
//!    resolved at that moment. A failure that may pass (unreachable, 5xx, 429) is retried, its
//!    error kept on the alert; one that will not (4xx, a bad credential) fails the alert at once;
//!    an alert whose attempts ran out is marked `failed` with the last error by the next
//!    [`Alerting::tick`].
//! 6. **Digests**: [`Alerting::tick`] (every `[alerts] monitor_interval_seconds`) hands each
//!    channel's held events over as one digest alert when its quiet hours end.
//!
//! Gates live in this process's memory: after a restart the rate-limit window, the
//! de-duplication memory and held events not yet digested start afresh (the held alerts stay
//! listed as `held`).

pub mod record;
pub mod run_events;
pub mod sla_monitor;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use intake_alerts::{
    Alert, AlertChannel, AlertEvent, AlertRoutingRule, ChannelGate, ChannelSecret, Decision, Route,
    SecretError, route,
};
use serde_json::json;

use crate::jobs::{DeliverAlert, JobError, JobQueue};
use crate::store::{Collection, Document, ListQuery, Store, StoreError};

pub use record::{AlertRecord, AlertStatus};
pub use run_events::{Links, run_events, unmatched_event};

/// The channel name of the `log` fallback in stored alerts.
pub const LOG_CHANNEL: &str = "log";

/// The dispatcher of one tenant's alerts (see the module documentation). Cheap to share.
#[derive(Debug)]
pub struct Alerting {
    store: Store,
    queue: JobQueue,
    tenant: String,
    timezone: Tz,
    links: Links,
    http: reqwest::Client,
    /// Per channel id: the channel's revision the gate was made for, and the gate.
    gates: Mutex<HashMap<String, (String, ChannelGate)>>,
}

/// Why the dispatcher cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    /// `[alerts] timezone` is not an IANA time zone.
    #[error("[alerts] timezone '{0}' is not an IANA time zone name (e.g. Europe/Stockholm)")]
    Timezone(String),
    /// The HTTP client for channels could not be built.
    #[error("{0}")]
    Http(String),
}

impl Alerting {
    /// The dispatcher for `tenant`, reading quiet hours in `timezone` (an IANA name) and linking
    /// runs under `links`.
    pub fn new(
        store: Store,
        queue: JobQueue,
        tenant: &str,
        timezone: &str,
        links: Links,
    ) -> Result<Self, AlertingError> {
        let timezone =
            Tz::from_str(timezone).map_err(|_| AlertingError::Timezone(timezone.to_owned()))?;
        let http = intake_alerts::channels::http_client()
            .map_err(|e| AlertingError::Http(e.to_string()))?;
        Ok(Alerting {
            store,
            queue,
            tenant: tenant.to_owned(),
            timezone,
            links,
            http,
            gates: Mutex::new(HashMap::new()),
        })
    }

    /// Where runs are linked.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The state store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Raises `event`: logs it, routes it by the tenant's rules and dispatches it. A store or
    /// queue failure is logged (the event itself is already in the log), never returned: an
    /// alert must not fail the import that raised it.
    pub async fn raise(&self, event: AlertEvent) {
        self.raise_to(event, &[]).await;
    }

    /// Like [`Alerting::raise`], also to the channels named `channel_names` (a
    /// `schedule_expectation`'s `alert_channels`).
    pub async fn raise_to(&self, event: AlertEvent, channel_names: &[String]) {
        self.raise_at(event, channel_names, Utc::now()).await;
    }

    /// Like [`Alerting::raise_to`], with the gates deciding as of `now` (tests control the
    /// clock through it).
    pub async fn raise_at(&self, event: AlertEvent, channel_names: &[String], now: DateTime<Utc>) {
        crate::events::raise(&event);
        if let Err(e) = self.dispatch(event, channel_names, now).await {
            tracing::warn!(error = %e, "an alert could not be dispatched; it is only in the log");
        }
    }

    async fn dispatch(
        &self,
        event: AlertEvent,
        channel_names: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let channels = self.channels().await?;
        let mut ids: Vec<String> = Vec::new();
        if let Route::Channels(routed) = route(&event, &self.rules().await?) {
            ids.extend(routed.iter().map(|id| id.as_str().to_owned()));
        }
        for name in channel_names {
            match channels.iter().find(|c| c.body["name"].as_str() == Some(name.as_str())) {
                Some(channel) => ids.push(channel.meta.id.clone()),
                None => {
                    tracing::warn!(channel = %name, "schedule_expectation names an unknown alert channel")
                }
            }
        }
        let mut targets: Vec<&Document> = Vec::new();
        for id in &ids {
            match channels.iter().find(|c| c.meta.id == *id) {
                Some(channel) if !targets.iter().any(|t| t.meta.id == *id) => targets.push(channel),
                Some(_) => {}
                None => {
                    tracing::warn!(channel = %id, "a routing rule names an unknown alert channel")
                }
            }
        }
        let alert = Alert::single(event);
        if targets.is_empty() {
            // Already delivered to the log by `raise`; recorded for the listing and the SLA ledger.
            let record = AlertRecord::new(&alert, None, LOG_CHANNEL, AlertStatus::Sent);
            self.store_record(AlertRecord { sent_at: Some(now), ..record }).await?;
            return Ok(());
        }
        for document in targets {
            self.dispatch_to(&alert, document, now).await?;
        }
        Ok(())
    }

    /// Gates `alert` for one channel, stores the outcome and enqueues the delivery if sent.
    async fn dispatch_to(
        &self,
        alert: &Alert,
        document: &Document,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = document.meta.id.as_str();
        let channel = match parse_channel(document) {
            Ok(channel) => channel,
            Err(problem) => {
                let name = document.body["name"].as_str().unwrap_or(id);
                let record =
                    AlertRecord::new(alert, Some(id), name, AlertStatus::Failed).because(problem);
                self.store_record(record).await?;
                return Ok(());
            }
        };
        if !channel.is_active {
            let record = AlertRecord::new(alert, Some(id), &channel.name, AlertStatus::Suppressed)
                .because("the channel is not active (is_active is false)");
            self.store_record(record).await?;
            return Ok(());
        }
        let decision = match self.decide(id, &document.meta.revision_id, &channel, alert, now) {
            Ok(decision) => decision,
            Err(problem) => {
                let record = AlertRecord::new(alert, Some(id), &channel.name, AlertStatus::Failed)
                    .because(problem);
                self.store_record(record).await?;
                return Ok(());
            }
        };
        let (status, held_back) = match decision {
            Decision::Send { held_back } => (AlertStatus::Queued, held_back),
            Decision::Suppressed => (AlertStatus::Suppressed, 0),
            Decision::Duplicate => (AlertStatus::Duplicate, 0),
            Decision::Held => (AlertStatus::Held, 0),
        };
        let alert = alert.clone().with_held_back(held_back);
        let mut record = AlertRecord::new(&alert, Some(id), &channel.name, status);
        record.reason = match status {
            AlertStatus::Suppressed => Some(format!(
                "over the channel's max_alerts_per_5min ({})",
                channel.max_alerts_per_5min
            )),
            AlertStatus::Duplicate => {
                Some("the same event went to this channel within 10 minutes".into())
            }
            AlertStatus::Held => {
                Some("held during the channel's quiet hours for the digest".into())
            }
            _ => None,
        };
        let stored = self.store_record(record).await?;
        if status == AlertStatus::Queued {
            self.enqueue(&stored.meta.id).await;
        }
        Ok(())
    }

    /// The gate's decision for `alert` on channel `id` (a new gate when the channel changed).
    fn decide(
        &self,
        id: &str,
        revision: &str,
        channel: &AlertChannel,
        alert: &Alert,
        now: DateTime<Utc>,
    ) -> Result<Decision, String> {
        let mut gates = self.gates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if gates.get(id).is_none_or(|(seen, _)| seen != revision) {
            let gate = ChannelGate::new(channel, self.timezone)?;
            gates.insert(id.to_owned(), (revision.to_owned(), gate));
        }
        Ok(match gates.get_mut(id) {
            Some((_, gate)) => gate.decide(&alert.event, now),
            None => Decision::Send { held_back: 0 },
        })
    }

    async fn enqueue(&self, alert_id: &str) {
        let job = DeliverAlert { tenant_id: self.tenant.clone(), alert_id: alert_id.to_owned() };
        if let Err(e) = self.queue.enqueue(job).await {
            tracing::warn!(alert = %alert_id, error = %e, "cannot queue an alert's delivery");
            let reason = format!("its delivery could not be queued: {e}");
            self.finish(alert_id, AlertStatus::Failed, Some(reason), None).await;
        }
    }

    async fn store_record(&self, record: AlertRecord) -> Result<Document, StoreError> {
        let body = serde_json::to_value(&record)
            .map_err(|e| StoreError::Invalid(format!("an alert cannot be encoded: {e}")))?;
        self.store.create(Collection::Alerts, &self.tenant, body).await
    }

    /// Delivers the stored alert `alert_id` (the [`DeliverAlert`] job's handler).
    pub async fn deliver(&self, alert_id: &str) -> Result<(), JobError> {
        let document = match self.store.get(Collection::Alerts, &self.tenant, alert_id).await {
            Ok(document) => document,
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(JobError::retryable(e)),
        };
        let record: AlertRecord = serde_json::from_value(document.body.clone())
            .map_err(|e| JobError::permanent(format!("alert {alert_id} cannot be read: {e}")))?;
        if record.status != AlertStatus::Queued {
            return Ok(()); // delivered (or ended) by an earlier attempt
        }
        let attempts = record.attempts + 1;
        let Some(channel_id) = record.channel_id.as_deref() else {
            return Ok(());
        };
        let channel =
            match self.store.get(Collection::AlertChannels, &self.tenant, channel_id).await {
                Ok(channel) => channel,
                Err(StoreError::NotFound { .. }) => {
                    let reason = "the channel was deleted before the alert was delivered";
                    self.finish(alert_id, AlertStatus::Failed, Some(reason.into()), Some(attempts))
                        .await;
                    return Ok(());
                }
                Err(e) => return Err(JobError::retryable(e)),
            };
        let built = parse_channel(&channel)
            .and_then(|channel| channel.build(&self.http).map_err(|e| e.to_string()));
        let built = match built {
            Ok(built) => built,
            Err(problem) => {
                self.finish(alert_id, AlertStatus::Failed, Some(problem), Some(attempts)).await;
                return Ok(());
            }
        };
        match built.deliver(&record.alert(), &EngineSecrets).await {
            Ok(()) => {
                self.finish(alert_id, AlertStatus::Sent, None, Some(attempts)).await;
                tracing::info!(alert = %alert_id, channel = %record.channel_name, "alert sent");
                Ok(())
            }
            Err(e) if e.is_retryable() => {
                self.finish(alert_id, AlertStatus::Queued, Some(e.to_string()), Some(attempts))
                    .await;
                Err(JobError::retryable(e))
            }
            Err(e) => {
                tracing::warn!(alert = %alert_id, error = %e, "an alert could not be delivered");
                self.finish(alert_id, AlertStatus::Failed, Some(e.to_string()), Some(attempts))
                    .await;
                Ok(())
            }
        }
    }

    /// Sets a stored alert's status, reason and attempts (logging a store failure).
    async fn finish(
        &self,
        alert_id: &str,
        status: AlertStatus,
        reason: Option<String>,
        attempts: Option<u32>,
    ) {
        let result = async {
            let document = self.store.get(Collection::Alerts, &self.tenant, alert_id).await?;
            let mut body = document.body;
            body["status"] = json!(status);
            body["reason"] = json!(reason);
            if let Some(attempts) = attempts {
                body["attempts"] = json!(attempts);
            }
            if status == AlertStatus::Sent {
                body["sent_at"] = json!(Utc::now());
            }
            self.store.update(Collection::Alerts, &self.tenant, alert_id, None, body).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(alert = %alert_id, error = %e, "cannot record an alert's outcome");
        }
    }

    /// The periodic work: digests of channels whose quiet hours ended, and alerts whose
    /// delivery the queue gave up on marked `failed`.
    pub async fn tick(&self, now: DateTime<Utc>) {
        let digests: Vec<(String, Vec<AlertEvent>)> = {
            let mut gates = self.gates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            gates
                .iter_mut()
                .map(|(id, (_, gate))| (id.clone(), gate.take_digest(now)))
                .filter(|(_, events)| !events.is_empty())
                .collect()
        };
        for (channel_id, events) in digests {
            let Some(alert) = Alert::digest(events) else { continue };
            let name =
                match self.store.get(Collection::AlertChannels, &self.tenant, &channel_id).await {
                    Ok(document) => {
                        document.body["name"].as_str().unwrap_or(&channel_id).to_owned()
                    }
                    Err(_) => channel_id.clone(),
                };
            let record = AlertRecord::new(&alert, Some(&channel_id), &name, AlertStatus::Queued);
            match self.store_record(record).await {
                Ok(stored) => self.enqueue(&stored.meta.id).await,
                Err(e) => tracing::warn!(channel = %name, error = %e, "cannot store a digest"),
            }
        }
        match self.queue.given_up::<DeliverAlert>().await {
            Ok(given_up) => {
                for job in given_up {
                    let alert_id = &job.job.alert_id;
                    let still_queued = self
                        .store
                        .get(Collection::Alerts, &self.tenant, alert_id)
                        .await
                        .is_ok_and(|d| d.body["status"] == json!(AlertStatus::Queued));
                    if still_queued {
                        let reason = format!(
                            "gave up after {} attempts; the last error: {}",
                            job.attempts, job.reason
                        );
                        self.finish(alert_id, AlertStatus::Failed, Some(reason), None).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the given-up alert deliveries"),
        }
    }

    async fn channels(&self) -> Result<Vec<Document>, StoreError> {
        self.store.list_all(Collection::AlertChannels, &self.tenant, ListQuery::new()).await
    }

    async fn rules(&self) -> Result<Vec<AlertRoutingRule>, StoreError> {
        // In creation order, so rules of equal priority keep the order they were made in.
        let documents = self
            .store
            .list_all(Collection::AlertRoutingRules, &self.tenant, ListQuery::new())
            .await?;
        let mut rules = Vec::with_capacity(documents.len());
        for document in &documents {
            match serde_json::from_value::<AlertRoutingRule>(document.to_json()) {
                Ok(rule) => rules.push(rule),
                Err(e) => {
                    tracing::warn!(rule = %document.meta.id, error = %e, "an alert routing rule cannot be read; skipped")
                }
            }
        }
        Ok(rules)
    }
}

/// The stored channel as the alerts crate reads it; the problem says what is wrong.
fn parse_channel(document: &Document) -> Result<AlertChannel, String> {
    if document.meta.is_deleted {
        return Err("the channel was deleted".into());
    }
    let channel: AlertChannel = serde_json::from_value(document.to_json())
        .map_err(|e| format!("the alert channel {} cannot be read: {e}", document.meta.id))?;
    channel.channel_config().map_err(|e| e.to_string())?;
    Ok(channel)
}

/// Channel credentials resolved like every engine credential (`env:NAME`, `file:/path`, a bare
/// name), at the moment of delivery.
struct EngineSecrets;

impl intake_alerts::SecretResolver for EngineSecrets {
    fn resolve(&self, reference: &str) -> Result<ChannelSecret, SecretError> {
        crate::m2m::resolve_credential(reference)
            .map(|secret| ChannelSecret::new(secret.expose()))
            .map_err(|e| SecretError { reference: reference.to_owned(), reason: e.to_string() })
    }
}
