//! Running the row writer over a list of rows and collecting every outcome.

use std::time::Duration;

use intake_engine::m2m::ApiClient;
use intake_engine::m2m::writer::{
    FileVerdict, RowWriteOutcome, RowWriter, ValidRow, WriteReport, WriterConfig,
};
use intake_engine::template::ImportMode;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{Platform, object};

impl Platform {
    /// A client of the sandbox for writer runs: like [`Platform::client`] with faster, more
    /// patient retries, asking for no scopes (its token carries whatever the client may do).
    pub fn writer_client(&self) -> ApiClient {
        self.writer_client_via(&self.url)
    }

    /// Like [`Platform::writer_client`], talking to `base` (e.g. a proxy in front of the sandbox).
    pub fn writer_client_via(&self, base: &Url) -> ApiClient {
        self.client_with(base, |config, credentials| {
            config.initial_backoff = Duration::from_millis(10);
            config.max_attempts = 12;
            credentials.scopes = Vec::new();
        })
    }
}

/// A writer configuration for the tests' run key.
pub fn config(resource: &str, mode: ImportMode) -> WriterConfig {
    WriterConfig::new(resource, mode, "writer-test-run")
}

/// What one run of the writer gave.
#[derive(Debug)]
pub struct Written {
    /// The totals.
    pub report: WriteReport,
    /// Every outcome, sorted by row number.
    pub outcomes: Vec<RowWriteOutcome>,
    /// Rows the writer accepted from the channel (all of them unless the run stopped early).
    pub sent: u64,
}

impl Written {
    /// The outcome of row `row_number`.
    pub fn outcome(&self, row_number: u64) -> &RowWriteOutcome {
        let found: Vec<&RowWriteOutcome> =
            self.outcomes.iter().filter(|o| o.row_number() == row_number).collect();
        assert_eq!(found.len(), 1, "outcomes of row {row_number}: {found:?}");
        found[0]
    }
}

/// Runs a writer over `rows` (numbered 1, 2, …, sent in order through a small bounded channel
/// while outcomes are consumed concurrently) and reports `verdict` once every row was sent.
pub async fn write(
    client: ApiClient,
    config: WriterConfig,
    rows: Vec<Value>,
    verdict: Option<FileVerdict>,
) -> Written {
    write_cancellable(client, config, rows, verdict, CancellationToken::new()).await
}

/// Like [`write`], with the caller's cancellation token.
pub async fn write_cancellable(
    client: ApiClient,
    config: WriterConfig,
    rows: Vec<Value>,
    verdict: Option<FileVerdict>,
    cancel: CancellationToken,
) -> Written {
    let writer = RowWriter::new(client, config).unwrap();
    let (row_sender, row_receiver) = mpsc::channel(64);
    let (outcome_sender, mut outcome_receiver) = mpsc::channel(64);
    let (verdict_sender, verdict_receiver) = oneshot::channel();
    let producer = tokio::spawn(async move {
        let mut sent = 0;
        for (index, data) in rows.into_iter().enumerate() {
            let row = ValidRow { row_number: index as u64 + 1, data: object(data) };
            if row_sender.send(row).await.is_err() {
                break;
            }
            sent += 1;
        }
        drop(row_sender);
        if let Some(verdict) = verdict {
            let _ = verdict_sender.send(verdict);
        }
        sent
    });
    let collector = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        while let Some(outcome) = outcome_receiver.recv().await {
            outcomes.push(outcome);
        }
        outcomes
    });
    let report = writer.run(row_receiver, verdict_receiver, outcome_sender, cancel).await;
    let sent = producer.await.unwrap();
    let mut outcomes = collector.await.unwrap();
    outcomes.sort_by_key(RowWriteOutcome::row_number);
    Written { report, outcomes, sent }
}
