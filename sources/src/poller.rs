//! [`Poller`]: drives one source — list, sort out the files that finished arriving, wait for the
//! next poll (the interval, a quick re-check while files are settling, or a change event).
//!
//! The engine owns the loop, so it can record each [`PollReport`] (`last_successful_poll_at`,
//! `last_error`) and claim the ready files:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use intake_sources::{Poller, PollerOptions, Source, Wake};
//! # async fn run(source: Arc<dyn Source>, options: PollerOptions, cancel: tokio_util::sync::CancellationToken) {
//! let mut poller = Poller::new(source, options);
//! loop {
//!     let report = poller.poll().await;
//!     // store report.finished_at / report.error_message(); claim report.ready()
//!     if poller.wait(&cancel).await == Wake::Cancelled {
//!         break;
//!     }
//! }
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::{
    ChangeFeed, FileEntry, Observed, Source, SourceError, SourceSettings, StabilityTracker,
};

/// How a [`Poller`] paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollerOptions {
    /// Time between polls when nothing is settling (`polling_interval_seconds`).
    pub polling_interval: Duration,
    /// Subscribe to the source's change events and poll as soon as one arrives.
    pub event_driven: bool,
    /// Time until the next poll while some file is settling (seen but not yet confirmed
    /// unchanged), when shorter than the interval. Default 500 ms.
    pub recheck_interval: Duration,
    /// The stability rule's minimum quiet time (see [`StabilityTracker`]). Default 500 ms.
    pub min_quiet: Duration,
    /// After a change event, wait this long for the burst to end before polling. Default 100 ms.
    pub event_debounce: Duration,
}

impl PollerOptions {
    /// Options from a source's settings, with the default re-check, quiet time and debounce.
    pub fn from_settings(settings: &SourceSettings) -> Self {
        Self {
            polling_interval: settings.polling_interval(),
            event_driven: settings.event_driven,
            recheck_interval: Duration::from_millis(500),
            min_quiet: Duration::from_millis(500),
            event_debounce: Duration::from_millis(100),
        }
    }
}

/// The result of one poll: when it ran and what it found, or why it failed.
#[derive(Debug)]
pub struct PollReport {
    /// When the listing started.
    pub started_at: SystemTime,
    /// When the poll finished: the `last_successful_poll_at` when `outcome` is `Ok`.
    pub finished_at: SystemTime,
    /// The sorted listing, or the error to store as `last_error`.
    pub outcome: Result<Observed, SourceError>,
}

impl PollReport {
    /// The files that finished arriving (empty when the poll failed).
    pub fn ready(&self) -> &[FileEntry] {
        self.outcome.as_ref().map(|o| o.ready.as_slice()).unwrap_or_default()
    }

    /// The error message to store as the source's `last_error`, `None` after a success.
    pub fn error_message(&self) -> Option<String> {
        self.outcome.as_ref().err().map(ToString::to_string)
    }
}

/// Why [`Poller::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The polling interval (or the settling re-check) elapsed.
    Timer,
    /// The source reported a change.
    Changed,
    /// The cancellation token fired: stop polling.
    Cancelled,
}

/// Polls one source and tracks file stability between polls. See the module docs.
pub struct Poller {
    source: Arc<dyn Source>,
    options: PollerOptions,
    tracker: StabilityTracker,
    feed: Option<ChangeFeed>,
    event_error: Option<String>,
    settling: bool,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("source", &self.source.name())
            .field("options", &self.options)
            .field("events_active", &self.feed.is_some())
            .field("event_error", &self.event_error)
            .finish_non_exhaustive()
    }
}

impl Poller {
    /// A poller for `source`. With `event_driven`, subscribes to the source's events right away
    /// (inside a Tokio runtime); if that fails the error is logged, kept in
    /// [`Poller::event_error`], and the poller polls on the interval.
    pub fn new(source: Arc<dyn Source>, options: PollerOptions) -> Self {
        let (feed, event_error) = if options.event_driven {
            match source.subscribe_events() {
                Ok(feed) => (feed, None),
                Err(error) => {
                    tracing::warn!(source = %source.name(), %error, "change events unavailable; polling only");
                    (None, Some(error.to_string()))
                }
            }
        } else {
            (None, None)
        };
        Self {
            tracker: StabilityTracker::new(options.min_quiet),
            source,
            options,
            feed,
            event_error,
            settling: false,
        }
    }

    /// The source being polled.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// Whether change events are currently waking the poller.
    pub fn events_active(&self) -> bool {
        self.feed.is_some()
    }

    /// Why change events are not active although wanted, if so.
    pub fn event_error(&self) -> Option<&str> {
        self.event_error.as_deref()
    }

    /// Lists the source once and sorts the files into ready / settling / temp uploads.
    pub async fn poll(&mut self) -> PollReport {
        let started_at = SystemTime::now();
        let outcome = self.source.list().await.map(|listing| {
            let observed = self.tracker.observe(listing, Instant::now());
            self.settling = !observed.settling.is_empty();
            observed
        });
        PollReport { started_at, finished_at: SystemTime::now(), outcome }
    }

    /// Forgets what the tracker knows about a path (after the engine moved or deleted it).
    pub fn forget(&mut self, path: &str) {
        self.tracker.forget(path);
    }

    /// Waits until the next poll is due: the polling interval (or the shorter re-check interval
    /// while a file is settling), a change event, or cancellation — whichever comes first. If
    /// the event feed ends, it is dropped and the timer alone paces the poller.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> Wake {
        let delay = if self.settling {
            self.options.polling_interval.min(self.options.recheck_interval)
        } else {
            self.options.polling_interval
        };
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            let Some(feed) = self.feed.as_mut() else {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Wake::Cancelled,
                    () = tokio::time::sleep_until(deadline) => return Wake::Timer,
                }
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Wake::Cancelled,
                () = tokio::time::sleep_until(deadline) => return Wake::Timer,
                signal = feed.changed() => match signal {
                    Some(()) => {
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => return Wake::Cancelled,
                            () = tokio::time::sleep(self.options.event_debounce) => {}
                        }
                        return Wake::Changed;
                    }
                    None => {
                        tracing::warn!(source = %self.source.name(), "change events stopped; polling only");
                        self.feed = None;
                        self.event_error = Some("the change event feed stopped".to_owned());
                    }
                },
            }
        }
    }
}
