//! The row writer: valid rows in, records on the platform out, through the M2M [`ApiClient`].
//!
//! [`RowWriter`] implements the template's `import_mode`, `upsert_key`, `scope_filter`,
//! `delete_column`, `transaction` and `idempotency`. It is not the pipeline (rows arrive already mapped and validated) and not the transport
//! (retries of 5xx/429/dropped connections, tokens and the in-flight limit belong to the client).
//!
//! # What each mode does with a row
//! | mode | identity | no live record with the key | a live record | delete row |
//! | --- | --- | --- | --- | --- |
//! | create | natural key, if set | POST | `Unchanged` (skipped) | — |
//! | append | natural key, else `upsert_key` (required) | POST | `Unchanged`, never touched | — |
//! | update | `upsert_key` | `Rejected` (`record_not_found`) | PATCH if a value differs, else `Unchanged` | DELETE |
//! | upsert | `upsert_key` | POST | PATCH if a value differs, else `Unchanged` | DELETE |
//! | sync | `upsert_key` | POST | PATCH if a value differs, else `Unchanged` | DELETE |
//!
//! So `create` adds every row (its natural key only guards re-runs of the same data), while
//! `append` is insert-if-absent: it never creates a second record for an identity and never
//! changes an existing one. A delete row (`delete_column` true/1/yes/delete) whose record does not
//! exist (any more) is `Unchanged`: the state it asks for already holds, and re-running a file
//! must give the same result. Sync then soft-deletes the records in `scope_filter` whose key is in
//! no row of the file — only when the [`FileVerdict`] says the file was complete and valid, no
//! row failed to write, and the deletes stay within `sync_max_delete_share` of the scope (unless
//! `allow_large_sync_delete`); otherwise the run reports why in `sync_skipped` (and a refused share
//! as its `failure`). Soft-deleted records are invisible to look-ups: a row whose key only matches
//! a deleted record creates a new one.
//!
//! # Transactions
//! - `best_effort`: every row is attempted; failures are `Rejected`, the run goes on.
//! - `batched`: with `stop_on_error`, rows are written `batch_size` at a time and no batch starts
//!   after one with a failed row (later rows `NotAttempted`); without it, as best effort.
//! - `all_or_nothing`: the first failed row (or a run failure, a cancellation, more rows than
//!   `max_transaction_rows`) stops the run and rolls back every journaled effect, newest first:
//!   created records deleted, updated ones restored by PUT of their pre-image, deleted ones
//!   (row deletes and sync deletes) un-deleted with [`ApiClient::restore`] — a PATCH
//!   `is_deleted: false, deleted_at: null` with `include_deleted=true`, since the contract lists
//!   both as ordinary fields — so the record is live again with the data it had. Outcomes are
//!   held until then: on commit they are sent as they were; after a roll-back, rows whose effect
//!   was undone are `NotAttempted` ("rolled back"), rows whose compensation failed keep their real
//!   outcome, and the [`CompensationReport`] lists every action ([`CompensationReport::complete`]
//!   when all were undone). A platform that hides soft-deleted records even with
//!   `include_deleted=true`, or keeps `is_deleted` read-only, leaves the delete in place: that
//!   action fails with the reason, and its row keeps its `Deleted` outcome.
//!
//! # How a run works
//! - Rows are read from a bounded channel in chunks of up to 100. A chunk's keys are looked up with
//!   one `$in` GET (update, upsert, sync, and create/append with an identity), so an upsert costs
//!   about one request per row plus one per hundred.
//! - Rows with the same key are written by one task in file order; a later chunk's rows with a key
//!   still in flight wait for that task and start from the record it left, without a new look-up.
//!   Other keys run concurrently: as many rows at once as the client's `max_in_flight` (a row
//!   takes its slot before it checks whether the run has stopped, so a failing run sends at most
//!   that many more requests).
//! - Every POST carries `Idempotency-Key` = hex SHA-256(run key, row number, canonical row JSON):
//!   a restart of the same file re-sends the same keys, so no row is created twice.
//! - A `422` rejects the row with the API's field errors (layer `write`, rule `api_validation`);
//!   a `412` re-reads the record and re-applies the row a few times; a `403`, a `401` after
//!   renewal, exhausted retries or an unusable client fail the run: no new row is started, the
//!   rows not written are reported `NotAttempted`.
//! - Cancellation stops taking rows; requests in flight finish (with the client's own retries) so
//!   that every row still gets its true outcome; rows not started are `NotAttempted`, including
//!   those still queued in the channel (which is closed, so the producer sees it).
//!
//! # The caller's side
//! Feed rows in file order, consume `outcomes` concurrently (the channel is bounded; a caller that
//! stops reading while still sending rows stalls the run), and send the [`FileVerdict`] once the
//! file has been read (or drop its sender: no verdict means no sync deletes).

mod config;
mod errors;
mod journal;
mod keys;
mod modes;
mod order;
mod outcome;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{
    IdempotencyConfig, MAX_BATCH_SIZE, TransactionConfig, TransactionMode, WriterConfig,
    WriterConfigError, WriterConfigProblem,
};
pub use keys::{canonical_json, idempotency_key, is_delete_flag, run_key};
pub use outcome::{
    CompensationAction, CompensationKind, CompensationReport, RowWriteOutcome, ValidRow,
    WriteReport,
};
pub use sync::FileVerdict;

use crate::m2m::client::ApiClient;
use crate::template::ImportMode;
use journal::{Effect, EffectKind, Journal};
use keys::{Identity, KeyValue};
use modes::PreparedRow;
use order::{KeyState, KeyTails, Start};
use outcome::OutcomeSink;

/// Rows per look-up (the platform's `per_page` maximum, so one GET answers a chunk).
const LOOKUP_BATCH: usize = 100;

/// Same-key groups spawned and not yet finished (about four chunks: the look-ups of the next
/// chunks run while the rows of the first are written).
const GROUPS_IN_FLIGHT: usize = 4 * LOOKUP_BATCH;

/// Writes valid rows to one resource of the platform; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RowWriter {
    client: ApiClient,
    config: WriterConfig,
    identity: Option<Identity>,
}

impl RowWriter {
    /// Checks the configuration (every problem at once) and builds the writer. No I/O.
    pub fn new(client: ApiClient, config: WriterConfig) -> Result<Self, WriterConfigError> {
        config.validate()?;
        let identity = identity_for(&config);
        Ok(RowWriter { client, config, identity })
    }

    /// The configuration the writer runs with.
    pub fn config(&self) -> &WriterConfig {
        &self.config
    }

    /// Consumes valid rows in file order from `rows`, writes them with bounded concurrency,
    /// reports each row's outcome to `outcomes` (in any order; exactly one per row received) and
    /// returns the totals.
    ///
    /// `verdict` tells, once the file has been read, whether it was complete and fully valid; only
    /// sync mode waits for it (its deletes need a complete file without rejected rows, and no row
    /// that failed to write). A dropped sender counts as "not complete".
    ///
    /// `cancel` stops the run: no new row is started, requests in flight finish, every row not
    /// written is reported `NotAttempted`, and an `all_or_nothing` transaction is rolled back.
    pub async fn run(
        &self,
        mut rows: mpsc::Receiver<ValidRow>,
        verdict: oneshot::Receiver<FileVerdict>,
        outcomes: mpsc::Sender<RowWriteOutcome>,
        cancel: CancellationToken,
    ) -> WriteReport {
        let requests_before = self.client.requests_sent();
        let transaction = &self.config.transaction;
        let all_or_nothing = transaction.mode == TransactionMode::AllOrNothing;
        let shared = Arc::new(Shared {
            client: self.client.clone(),
            config: self.config.clone(),
            identity: self.identity.clone(),
            sink: OutcomeSink::new(outcomes, all_or_nothing),
            journal: all_or_nothing.then(|| Mutex::new(Journal::default())),
            stop: cancel.child_token(),
            halted: Mutex::new(None),
            slots: Semaphore::new(self.client.config().max_in_flight.max(1)),
        });
        let mut dispatcher = Dispatcher {
            shared: Arc::clone(&shared),
            tails: KeyTails::default(),
            tasks: JoinSet::new(),
            permits: Arc::new(Semaphore::new(GROUPS_IN_FLIGHT)),
            file_keys: (self.config.mode == ImportMode::Sync).then(HashSet::new),
        };

        let barrier = transaction.mode == TransactionMode::Batched && transaction.stop_on_error;
        let mut batch_left = transaction.batch_size;
        let mut batch_number = 1u64;
        let mut failures_before_batch = 0;
        let mut rows_seen = 0u64;
        let mut chunk = Vec::with_capacity(LOOKUP_BATCH);
        loop {
            let limit = if barrier { batch_left.min(LOOKUP_BATCH) } else { LOOKUP_BATCH };
            let closed = read_chunk(&mut rows, &mut chunk, limit, &shared.stop).await;
            if shared.stop.is_cancelled() {
                break;
            }
            if !chunk.is_empty() {
                rows_seen += chunk.len() as u64;
                if all_or_nothing && let Err(why) = transaction.admits(rows_seen) {
                    shared.halt(why);
                    break;
                }
                let taken = chunk.len();
                dispatcher.dispatch(std::mem::take(&mut chunk)).await;
                if barrier {
                    batch_left -= taken;
                    if batch_left == 0 || closed {
                        dispatcher.join_all().await;
                        if shared.sink.failures() > failures_before_batch {
                            shared.halt(format!(
                                "stop_on_error: batch {batch_number} (of {} rows) had a failed row, so later \
                                 batches were not attempted",
                                transaction.batch_size
                            ));
                            break;
                        }
                        failures_before_batch = shared.sink.failures();
                        batch_left = transaction.batch_size;
                        batch_number += 1;
                    }
                }
            }
            if closed {
                break;
            }
        }
        if let Some(reason) = shared.stop_reason() {
            for row in chunk.drain(..) {
                shared.report(RowWriteOutcome::not_attempted(row.row_number, reason.clone())).await;
            }
            rows.close();
            while let Some(row) = rows.recv().await {
                shared.report(RowWriteOutcome::not_attempted(row.row_number, reason.clone())).await;
            }
        }
        dispatcher.join_all().await;
        let file_keys = dispatcher.file_keys.take();

        let mut report_sync = SyncResult::default();
        if self.config.mode == ImportMode::Sync {
            report_sync = self.sync_deletes(&shared, verdict, file_keys.unwrap_or_default()).await;
        }

        let mut compensated = None;
        if all_or_nothing {
            let held = shared.sink.take_held();
            match shared.stop_reason() {
                None => shared.sink.release(held).await,
                Some(reason) => {
                    let journal = shared
                        .lock_journal()
                        .map(|mut j| std::mem::take(&mut *j))
                        .unwrap_or_default();
                    let compensation = journal
                        .roll_back(&self.client, &self.config.resource, reason.clone())
                        .await;
                    let remaining: HashSet<&str> =
                        compensation.failures().map(|a| a.id.as_str()).collect();
                    let note = format!("rolled back ({reason})");
                    let outcomes = held
                        .into_iter()
                        .map(|outcome| rolled_back(outcome, &remaining, &note))
                        .collect();
                    shared.sink.release(outcomes).await;
                    compensated = Some(compensation);
                }
            }
        }

        let mut report = shared.sink.totals();
        report.sync_deleted = report_sync.deleted;
        report.sync_skipped = report_sync.skipped;
        report.compensated = compensated;
        report.requests = self.client.requests_sent().saturating_sub(requests_before);
        report.cancelled = cancel.is_cancelled();
        report.failure = shared.lock_halted().clone();
        tracing::info!(
            resource = %self.config.resource,
            created = report.created,
            updated = report.updated,
            unchanged = report.unchanged,
            deleted = report.deleted,
            rejected = report.rejected,
            not_attempted = report.not_attempted,
            sync_deleted = report.sync_deleted,
            requests = report.requests,
            failure = report.failure.as_deref().unwrap_or(""),
            "write run finished"
        );
        report
    }

    /// Sync's delete phase, when the file allows it.
    async fn sync_deletes(
        &self,
        shared: &Shared,
        verdict: oneshot::Receiver<FileVerdict>,
        file_keys: HashSet<String>,
    ) -> SyncResult {
        let skipped = |why: String| SyncResult {
            deleted: 0,
            skipped: Some(format!("sync deletes skipped: {why}")),
        };
        if let Some(reason) = shared.stop_reason() {
            return skipped(reason);
        }
        let verdict = tokio::select! {
            verdict = verdict => verdict.ok(),
            () = shared.stop.cancelled() => return skipped("the run was cancelled".into()),
        };
        let Some(verdict) = verdict else {
            return skipped("the pipeline did not report the file complete".into());
        };
        if let Some(why) = verdict.sync_blocker() {
            return skipped(why);
        }
        let totals = shared.sink.totals();
        let not_written = shared.sink.failures() + totals.not_attempted;
        if not_written > 0 {
            return skipped(format!("{not_written} rows could not be written"));
        }
        let Some(identity) = &self.identity else { return skipped("no upsert_key".into()) };
        let scope =
            match sync::list_scope(&self.client, &self.config.resource, &self.config.scope_filter)
                .await
            {
                Ok(scope) => scope,
                Err(error) => {
                    let why = format!("listing the records in scope failed: {error}");
                    shared.halt(why.clone());
                    return skipped(why);
                }
            };
        let in_scope = scope.len() as u64;
        let doomed = sync::records_to_delete(scope, identity, &file_keys);
        if let Err(why) = sync::check_delete_share(
            in_scope,
            doomed.len() as u64,
            self.config.sync_max_delete_share,
            self.config.allow_large_sync_delete,
        ) {
            shared.halt(why.clone());
            return SyncResult { deleted: 0, skipped: Some(why) };
        }
        let file_keys = Arc::new(file_keys);
        let phase = sync::delete_records(
            &self.client,
            &self.config.resource,
            doomed,
            identity,
            &file_keys,
            &shared.stop,
        )
        .await;
        for id in &phase.deleted {
            shared.journal(Effect { row_number: None, id: id.clone(), kind: EffectKind::Deleted });
        }
        let mut notes = Vec::new();
        if let Some(why) = phase.failure {
            // A cancellation is not a failure of the run; anything else is.
            if !shared.stop.is_cancelled() {
                shared.halt(format!("sync deletes stopped: {why}"));
            }
            notes.push(format!("stopped: {why}"));
        }
        if !phase.skipped.is_empty() {
            let listed: Vec<String> =
                phase.skipped.iter().take(10).map(|(id, why)| format!("{id}: {why}")).collect();
            notes.push(format!(
                "{} records in scope could not be deleted ({})",
                phase.skipped.len(),
                listed.join("; ")
            ));
        }
        SyncResult {
            deleted: phase.deleted.len() as u64,
            skipped: (!notes.is_empty())
                .then(|| format!("sync deletes incomplete: {}", notes.join("; "))),
        }
    }
}

/// What the sync phase did.
#[derive(Debug, Default)]
struct SyncResult {
    deleted: u64,
    skipped: Option<String>,
}

/// The outcome a row gets after a roll-back: its effect is undone unless compensating its record
/// failed.
fn rolled_back(outcome: RowWriteOutcome, remaining: &HashSet<&str>, note: &str) -> RowWriteOutcome {
    match &outcome {
        RowWriteOutcome::Created { id, .. }
        | RowWriteOutcome::Updated { id, .. }
        | RowWriteOutcome::Deleted { id, .. }
            if remaining.contains(id.as_str()) =>
        {
            outcome
        }
        RowWriteOutcome::Rejected { .. } | RowWriteOutcome::NotAttempted { .. } => outcome,
        _ => RowWriteOutcome::not_attempted(outcome.row_number(), note),
    }
}

/// The fields that identify a row's record in this configuration: the natural key in create
/// mode (none without one), the natural key or else `upsert_key` in append mode, `upsert_key` in
/// update, upsert and sync mode.
fn identity_for(config: &WriterConfig) -> Option<Identity> {
    let natural = &config.idempotency.natural_key_fields;
    let upsert = config.upsert_key.clone().map(|key| Identity { fields: vec![key] });
    match config.mode {
        ImportMode::Create => (!natural.is_empty()).then(|| Identity { fields: natural.clone() }),
        ImportMode::Append => {
            if natural.is_empty() {
                upsert
            } else {
                Some(Identity { fields: natural.clone() })
            }
        }
        ImportMode::Update | ImportMode::Upsert | ImportMode::Sync => upsert,
    }
}

/// Reads up to `limit` rows into `chunk`; returns whether the channel is closed (and drained).
async fn read_chunk(
    rows: &mut mpsc::Receiver<ValidRow>,
    chunk: &mut Vec<ValidRow>,
    limit: usize,
    stop: &CancellationToken,
) -> bool {
    while chunk.len() < limit {
        let wanted = limit - chunk.len();
        tokio::select! {
            biased;
            () = stop.cancelled() => return false,
            received = rows.recv_many(chunk, wanted) => {
                if received == 0 {
                    return true;
                }
            }
        }
    }
    false
}

/// What the row tasks share.
pub(crate) struct Shared {
    client: ApiClient,
    config: WriterConfig,
    identity: Option<Identity>,
    sink: OutcomeSink,
    journal: Option<Mutex<Journal>>,
    /// Cancelled when the run stops taking rows (the caller's cancel is its parent).
    stop: CancellationToken,
    /// Why the run stopped by itself (a failure), first reason wins.
    halted: Mutex<Option<String>>,
    /// Rows being written at once: the client's in-flight limit.
    slots: Semaphore,
}

impl Shared {
    fn lock_halted(&self) -> MutexGuard<'_, Option<String>> {
        self.halted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_journal(&self) -> Option<MutexGuard<'_, Journal>> {
        self.journal.as_ref().map(|journal| journal.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Why no further row may start, if that is so.
    pub(crate) fn stop_reason(&self) -> Option<String> {
        if !self.stop.is_cancelled() {
            return None;
        }
        Some(self.lock_halted().clone().unwrap_or_else(|| "the run was cancelled".into()))
    }

    /// Stops the run for `reason`, which becomes the run's failure (the first reason wins).
    pub(crate) fn halt(&self, reason: String) {
        {
            let mut halted = self.lock_halted();
            if halted.is_none() {
                tracing::warn!(resource = %self.config.resource, %reason, "write run stopping");
                *halted = Some(reason);
            }
        }
        self.stop.cancel();
    }

    /// Fails the run because of an API error that makes further writes pointless.
    pub(crate) fn fail(&self, why: String) {
        self.halt(format!("the run failed: {why}"));
    }

    /// Reports a row's outcome; in `all_or_nothing` mode a failed row stops the transaction.
    pub(crate) async fn report(&self, outcome: RowWriteOutcome) {
        if outcome.is_failure() && self.journal.is_some() {
            self.halt(format!(
                "row {} failed, so the all_or_nothing transaction was rolled back",
                outcome.row_number()
            ));
        }
        self.sink.emit(outcome).await;
    }

    /// Journals an effect for a possible roll-back (`all_or_nothing` only).
    pub(crate) fn journal(&self, effect: Effect) {
        if let Some(mut journal) = self.lock_journal() {
            journal.record(effect);
        }
    }
}

/// Looks up the keys of one chunk with one `$in` GET and hands each group its key's state. A
/// look-up the API refuses (e.g. one odd key value) leaves the states unknown: the groups look
/// their keys up one by one, so only the rows at fault are rejected. A look-up that fails the run
/// stops it.
async fn look_up_chunk(shared: Arc<Shared>, pending: Vec<(KeyValue, oneshot::Sender<KeyState>)>) {
    if shared.stop.is_cancelled() {
        return;
    }
    let Some(identity) = &shared.identity else { return };
    let keys: Vec<&KeyValue> = pending.iter().map(|(key, _)| key).collect();
    match modes::lookup(&shared, identity, &keys).await {
        Ok(mut states) => {
            for (key, sender) in pending {
                let state = states.remove(&key.text).unwrap_or(KeyState::Unknown);
                // The group may be gone (a task failed); nothing waits then.
                let _ = sender.send(state);
            }
        }
        Err(error) => {
            if let errors::Verdict::FailRun(why) = errors::classify(&error, &serde_json::Map::new())
            {
                shared.fail(why);
            }
        }
    }
}

/// Turns chunks of rows into same-key groups and spawns them.
struct Dispatcher {
    shared: Arc<Shared>,
    tails: KeyTails,
    tasks: JoinSet<()>,
    permits: Arc<Semaphore>,
    /// Sync: the key of every row of the file.
    file_keys: Option<HashSet<String>>,
}

impl Dispatcher {
    /// Prepares, groups, looks up and spawns one chunk (≤ 100 rows, file order).
    async fn dispatch(&mut self, chunk: Vec<ValidRow>) {
        let shared = Arc::clone(&self.shared);
        let mut groups: Vec<(Option<KeyValue>, Vec<PreparedRow>)> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for row in chunk {
            let prepared = match modes::prepare(
                row.row_number,
                row.data,
                shared.identity.as_ref(),
                shared.config.delete_column.as_deref(),
            ) {
                Ok(prepared) => prepared,
                Err(rejected) => {
                    shared.report(rejected).await;
                    continue;
                }
            };
            let Some(key) = prepared.key.clone() else {
                groups.push((None, vec![prepared]));
                continue;
            };
            if let Some(keys) = &mut self.file_keys {
                keys.insert(key.text.clone());
            }
            match by_key.get(&key.text) {
                Some(&index) => groups[index].1.push(prepared),
                None => {
                    by_key.insert(key.text.clone(), groups.len());
                    groups.push((Some(key), vec![prepared]));
                }
            }
        }

        self.tails.prune();
        // Keys with a group still in flight wait for it; the others wait for this chunk's
        // look-up, which runs in a task of its own so that the groups can be spawned (and take
        // their places in the queue for request slots) at once, and the next chunk's look-up
        // can be sent while this chunk's rows are written.
        let mut pending: Vec<(KeyValue, oneshot::Sender<KeyState>)> = Vec::new();
        let mut starts: Vec<Start> = Vec::with_capacity(groups.len());
        for (key, _) in &groups {
            match key {
                None => starts.push(Start::Looked(KeyState::Known(None))),
                Some(key) => match self.tails.take(&key.text) {
                    Some(previous) => starts.push(Start::After(previous)),
                    None if shared.identity.is_some() => {
                        let (sender, receiver) = oneshot::channel();
                        pending.push((key.clone(), sender));
                        starts.push(Start::Pending(receiver));
                    }
                    None => starts.push(Start::Looked(KeyState::Unknown)),
                },
            }
        }
        if !pending.is_empty() {
            self.tasks.spawn(look_up_chunk(Arc::clone(&shared), pending));
        }

        for ((key, rows), start) in groups.into_iter().zip(starts) {
            let tail = key.map(|key| self.tails.push(key.text));
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                // The semaphore is never closed.
                continue;
            };
            self.tasks.spawn(modes::write_group(Arc::clone(&shared), rows, start, tail, permit));
            self.reap();
        }
    }

    /// Collects finished tasks without waiting.
    fn reap(&mut self) {
        while let Some(joined) = self.tasks.try_join_next() {
            self.check(joined);
        }
    }

    /// Waits for every task.
    async fn join_all(&mut self) {
        while let Some(joined) = self.tasks.join_next().await {
            self.check(joined);
        }
    }

    fn check(&self, joined: Result<(), tokio::task::JoinError>) {
        if let Err(error) = joined {
            tracing::error!(%error, "a row write task failed");
            self.shared.halt(format!("internal error: a row write task failed ({error})"));
        }
    }
}

/// The object a `json!` literal stands for, for tests that build rows and bodies.
#[cfg(test)]
pub(crate) fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identities_per_mode() {
        let mut config = WriterConfig::new("players", ImportMode::Create, "k");
        assert_eq!(identity_for(&config), None);
        config.idempotency.natural_key_fields = vec!["email".into()];
        assert_eq!(identity_for(&config).unwrap().fields, ["email"]);
        config.mode = ImportMode::Append;
        config.upsert_key = Some("code".into());
        assert_eq!(
            identity_for(&config).unwrap().fields,
            ["email"],
            "append prefers the natural key"
        );
        config.idempotency.natural_key_fields.clear();
        assert_eq!(identity_for(&config).unwrap().fields, ["code"]);
        config.mode = ImportMode::Upsert;
        config.idempotency.natural_key_fields = vec!["email".into()];
        assert_eq!(identity_for(&config).unwrap().fields, ["code"], "upsert matches on upsert_key");
    }

    #[test]
    fn a_roll_back_keeps_only_effects_that_could_not_be_undone() {
        let remaining = HashSet::from(["b"]);
        let created = |row, id: &str| RowWriteOutcome::Created { row_number: row, id: id.into() };
        assert!(matches!(
            rolled_back(created(1, "a"), &remaining, "rb"),
            RowWriteOutcome::NotAttempted { row_number: 1, .. }
        ));
        assert_eq!(rolled_back(created(2, "b"), &remaining, "rb"), created(2, "b"));
        let unchanged = RowWriteOutcome::Unchanged { row_number: 3, id: Some("c".into()) };
        assert!(matches!(
            rolled_back(unchanged, &remaining, "rb"),
            RowWriteOutcome::NotAttempted { .. }
        ));
        let rejected = RowWriteOutcome::rejected(4, None, "x", "m".into(), None);
        assert_eq!(rolled_back(rejected.clone(), &remaining, "rb"), rejected);
    }

    #[tokio::test]
    async fn read_chunk_fills_up_to_the_limit_and_sees_the_end() {
        let (sender, mut receiver) = mpsc::channel(1000);
        for n in 1..=150u64 {
            sender.send(ValidRow { row_number: n, data: serde_json::Map::new() }).await.unwrap();
        }
        drop(sender);
        let stop = CancellationToken::new();
        let mut chunk = Vec::new();
        assert!(!read_chunk(&mut receiver, &mut chunk, 100, &stop).await);
        assert_eq!(chunk.len(), 100);
        chunk.clear();
        assert!(read_chunk(&mut receiver, &mut chunk, 100, &stop).await);
        assert_eq!(
            chunk.iter().map(|r| r.row_number).collect::<Vec<_>>(),
            (101..=150).collect::<Vec<_>>()
        );
        let _ = json!(null);
    }

    #[tokio::test]
    async fn read_chunk_returns_when_stopped() {
        let (_sender, mut receiver) = mpsc::channel::<ValidRow>(10);
        let stop = CancellationToken::new();
        stop.cancel();
        let mut chunk = Vec::new();
        assert!(!read_chunk(&mut receiver, &mut chunk, 100, &stop).await);
    }
}
