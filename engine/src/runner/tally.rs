//! Counting a run's row outcomes as they arrive, and making them durable as it goes: written
//! row keys, rejected records and interim counts are flushed to the store periodically.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use intake_parsers::RowError;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::import::ImportRowOutcome;
use crate::m2m::writer::RowWriteOutcome;
use crate::store::{NewRejectedRecord, RunCounts, Store, StoreError};

/// Keys buffered before a flush regardless of the interval.
const KEYS_PER_FLUSH: usize = 1000;
/// Rejected records buffered before a flush regardless of the interval.
const REJECTED_PER_FLUSH: usize = 500;

/// What a written row did, for counting once we know whether its key was written before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Created,
    Updated,
    Deleted,
    Unchanged,
}

/// The key a written row is recorded under: the run key (template id + content hash) and the
/// row number — deterministic for one file version under one template.
pub(super) fn row_key(run_key: &str, row_number: u64) -> String {
    format!("{run_key}:{row_number}")
}

/// Where a run's outcomes go.
pub(super) struct Tally<'a> {
    pub store: &'a Store,
    pub tenant: &'a str,
    pub run_id: &'a str,
    pub template_id: &'a str,
    pub run_key: &'a str,
    /// Counts so far (`read` and `valid` come from the pipeline's report at the end).
    pub counts: RunCounts,
    /// Rows the writer did not attempt (a failed or cancelled run).
    pub not_attempted: u64,
    /// Rows the API refused, with their errors; their original data is read back at the end.
    pub write_rejected: BTreeMap<u64, Vec<RowError>>,
    /// Pipeline-rejected rows not yet stored.
    pub pending_rejected: Vec<NewRejectedRecord>,
    pending_keys: Vec<(String, Effect)>,
    timings: Value,
}

impl<'a> Tally<'a> {
    /// A tally for one attempt of a run; `timings` is reported with every progress record.
    pub fn new(
        store: &'a Store,
        tenant: &'a str,
        run_id: &'a str,
        template_id: &'a str,
        run_key: &'a str,
        timings: Value,
    ) -> Self {
        Tally {
            store,
            tenant,
            run_id,
            template_id,
            run_key,
            counts: RunCounts::default(),
            not_attempted: 0,
            write_rejected: BTreeMap::new(),
            pending_rejected: Vec::new(),
            pending_keys: Vec::new(),
            timings,
        }
    }

    /// Consumes outcomes until the import drops its sender, flushing every `interval` (and when
    /// the buffers fill). On a store error the import is cancelled (`stop`), the rest drained,
    /// and the first error returned.
    pub async fn consume(
        &mut self,
        mut outcomes: mpsc::UnboundedReceiver<ImportRowOutcome>,
        interval: Duration,
        stop: CancellationToken,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure: Option<StoreError> = None;
        loop {
            let due = tokio::select! {
                outcome = outcomes.recv() => match outcome {
                    Some(outcome) => {
                        self.add(outcome);
                        self.pending_keys.len() >= KEYS_PER_FLUSH
                            || self.pending_rejected.len() >= REJECTED_PER_FLUSH
                    }
                    None => break,
                },
                _ = ticker.tick() => true,
            };
            if due && failure.is_none() {
                self.timings["import_ms_so_far"] = json!(started.elapsed().as_millis() as u64);
                if let Err(e) = self.flush(true).await {
                    stop.cancel();
                    failure = Some(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        self.flush(false).await
    }

    fn add(&mut self, outcome: ImportRowOutcome) {
        match outcome {
            ImportRowOutcome::Rejected(row) => {
                self.counts.rejected += 1;
                self.pending_rejected.push(NewRejectedRecord {
                    row_number: row.row_number,
                    original_data: Value::Object(row.original_data),
                    validation_errors: errors_json(&row.errors),
                });
            }
            ImportRowOutcome::Written(written) => {
                let (row, effect) = match written {
                    RowWriteOutcome::Created { row_number, .. } => (row_number, Effect::Created),
                    RowWriteOutcome::Updated { row_number, .. } => (row_number, Effect::Updated),
                    RowWriteOutcome::Deleted { row_number, .. } => (row_number, Effect::Deleted),
                    RowWriteOutcome::Unchanged { row_number, .. } => {
                        (row_number, Effect::Unchanged)
                    }
                    RowWriteOutcome::Rejected { row_number, errors } => {
                        self.counts.rejected += 1;
                        self.write_rejected.insert(row_number, errors);
                        return;
                    }
                    RowWriteOutcome::NotAttempted { .. } => {
                        self.not_attempted += 1;
                        return;
                    }
                };
                self.pending_keys.push((row_key(self.run_key, row), effect));
            }
        }
    }

    /// Stores the buffered keys (counting creates whose key an earlier attempt already recorded
    /// as `skipped_already_written`), the buffered rejected records and, with `progress`, the
    /// interim counts.
    async fn flush(&mut self, progress: bool) -> Result<(), StoreError> {
        if !self.pending_keys.is_empty() {
            let keys: Vec<String> = self.pending_keys.iter().map(|(k, _)| k.clone()).collect();
            let known = self.store.written_keys(self.tenant, self.template_id, &keys).await?;
            self.store
                .record_written_keys(self.tenant, self.template_id, Some(self.run_id), &keys)
                .await?;
            for (key, effect) in self.pending_keys.drain(..) {
                match effect {
                    Effect::Created if known.contains(&key) => {
                        self.counts.skipped_already_written += 1
                    }
                    Effect::Created => self.counts.created += 1,
                    Effect::Updated => self.counts.updated += 1,
                    Effect::Deleted => self.counts.deleted += 1,
                    Effect::Unchanged => self.counts.skipped_already_written += 1,
                }
            }
        }
        if !self.pending_rejected.is_empty() {
            self.store
                .insert_rejected_records(
                    self.tenant,
                    self.run_id,
                    self.template_id,
                    &self.pending_rejected,
                )
                .await?;
            self.pending_rejected.clear();
        }
        if progress {
            self.store
                .record_run_progress(self.tenant, self.run_id, &self.counts, &self.timings)
                .await?;
        }
        Ok(())
    }
}

/// Row errors as the JSON array a rejected record holds.
pub(super) fn errors_json(errors: &[RowError]) -> Value {
    serde_json::to_value(errors).unwrap_or_else(|_| Value::Array(Vec::new()))
}
