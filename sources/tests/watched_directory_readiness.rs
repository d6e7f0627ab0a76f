//! When a file in a watched directory is ready: temp uploads wait for the rename, growing files
//! wait until they are stable across two polls, change events wake the poller, and polling on
//! the interval takes over when events are unavailable.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use intake_sources::{
    BoxFuture, ChangeFeed, FileEntry, FileStream, Poller, PollerOptions, Source, SourceError,
    SourceSettings, Wake, WatchedDirectory, WatchedDirectoryConfig,
};
use tokio_util::sync::CancellationToken;

/// Generous bound for anything that should take about a second.
const PATIENCE: Duration = Duration::from_secs(20);

fn watched(root: &Path, event_driven: bool) -> (WatchedDirectory, SourceSettings) {
    let mut settings = SourceSettings::named("inbox");
    settings.temp_file_extensions = vec![".part".into()];
    settings.ignored_folders = vec!["done".into()];
    settings.event_driven = event_driven;
    let source =
        WatchedDirectory::build(&WatchedDirectoryConfig { path: root.to_path_buf() }, &settings)
            .unwrap();
    (source, settings)
}

fn options(polling_interval: Duration, event_driven: bool) -> PollerOptions {
    PollerOptions {
        polling_interval,
        event_driven,
        recheck_interval: Duration::from_millis(50),
        min_quiet: Duration::ZERO,
        event_debounce: Duration::from_millis(20),
    }
}

fn ready_paths(ready: &[FileEntry]) -> Vec<&str> {
    ready.iter().map(|e| e.path.as_str()).collect()
}

/// Polls (waiting between polls as the poller decides) until `path` is ready; returns the
/// wake-up reasons seen on the way.
async fn poll_until_ready(poller: &mut Poller, path: &str) -> Vec<Wake> {
    let cancel = CancellationToken::new();
    let mut wakes = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let report = poller.poll().await;
            let ready = report.outcome.unwrap();
            if ready.ready.iter().any(|e| e.path == path) {
                return;
            }
            wakes.push(poller.wait(&cancel).await);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path} was not ready within {PATIENCE:?}; wakes: {wakes:?}"));
    wakes
}

#[tokio::test]
async fn temp_upload_then_rename_appears_once_when_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = watched(dir.path(), false);
    let mut poller = Poller::new(Arc::new(source), options(Duration::from_secs(3600), false));

    fs::write(dir.path().join("rows.csv.part"), "a,b\n1,2\n").unwrap();
    for _ in 0..3 {
        let report = poller.poll().await;
        let observed = report.outcome.unwrap();
        assert!(observed.ready.is_empty());
        assert_eq!(ready_paths(&observed.temp_uploads), vec!["rows.csv.part"]);
    }
    fs::rename(dir.path().join("rows.csv.part"), dir.path().join("rows.csv")).unwrap();
    let observed = poller.poll().await.outcome.unwrap();
    assert!(observed.ready.is_empty(), "first sighting after the rename is not ready yet");
    assert_eq!(ready_paths(&observed.settling), vec!["rows.csv"]);
    let report = poller.poll().await;
    assert!(report.error_message().is_none());
    assert_eq!(ready_paths(report.ready()), vec!["rows.csv"]);
    assert!(report.finished_at >= report.started_at);
}

#[tokio::test]
async fn growing_file_is_not_ready_until_stable_across_two_polls() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = watched(dir.path(), false);
    let mut poller = Poller::new(Arc::new(source), options(Duration::from_secs(3600), false));
    let path = dir.path().join("growing.csv");
    let mut file = OpenOptions::new().create(true).append(true).open(&path).unwrap();

    for i in 0..5 {
        writeln!(file, "row {i}").unwrap();
        file.flush().unwrap();
        let observed = poller.poll().await.outcome.unwrap();
        assert!(observed.ready.is_empty(), "still growing at step {i}");
        assert_eq!(ready_paths(&observed.settling), vec!["growing.csv"]);
    }
    drop(file);
    let report = poller.poll().await;
    assert_eq!(ready_paths(report.ready()), vec!["growing.csv"]);
    assert_eq!(report.ready()[0].size, fs::metadata(&path).unwrap().len());
}

#[tokio::test]
async fn quick_second_poll_does_not_count_before_min_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = watched(dir.path(), false);
    let mut opts = options(Duration::from_secs(3600), false);
    opts.min_quiet = Duration::from_secs(3600);
    let mut poller = Poller::new(Arc::new(source), opts);
    fs::write(dir.path().join("a.csv"), "x").unwrap();
    for _ in 0..3 {
        assert!(poller.poll().await.ready().is_empty());
    }
}

#[tokio::test]
async fn event_driven_wake_up_follows_a_file_write() {
    let dir = tempfile::tempdir().unwrap();
    let (source, settings) = watched(dir.path(), true);
    assert!(PollerOptions::from_settings(&settings).event_driven);
    // The interval is an hour: only an event can wake the poller in time.
    let mut poller = Poller::new(Arc::new(source), options(Duration::from_secs(3600), true));
    assert!(poller.events_active(), "watcher failed: {:?}", poller.event_error());
    assert!(poller.poll().await.ready().is_empty());

    fs::write(dir.path().join("dropped.csv"), "a\n1\n").unwrap();
    let cancel = CancellationToken::new();
    let wake = tokio::time::timeout(PATIENCE, poller.wait(&cancel)).await;
    assert_eq!(wake, Ok(Wake::Changed), "no change event after a file write");

    let wakes = poll_until_ready(&mut poller, "dropped.csv").await;
    assert!(!wakes.is_empty(), "a first sighting is never ready");

    // A change inside an ignored folder does not wake the poller.
    fs::create_dir(dir.path().join("done")).unwrap();
    // Drain the event for the folder creation itself, if any, then write inside it.
    let _ = tokio::time::timeout(Duration::from_millis(300), poller.wait(&cancel)).await;
    fs::write(dir.path().join("done/ignored.csv"), "x").unwrap();
    let woke = tokio::time::timeout(Duration::from_millis(500), poller.wait(&cancel)).await;
    assert!(woke.is_err() || woke == Ok(Wake::Timer), "woken by an ignored folder: {woke:?}");

    cancel.cancel();
    assert_eq!(poller.wait(&cancel).await, Wake::Cancelled);
}

/// A watched directory whose change events cannot start (or stop at once).
struct NoEvents {
    inner: WatchedDirectory,
    feed_ends_at_once: bool,
}

impl Source for NoEvents {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<FileEntry>, SourceError>> {
        self.inner.list()
    }
    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileEntry, SourceError>> {
        self.inner.stat(path)
    }
    fn open<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileStream, SourceError>> {
        self.inner.open(path)
    }
    fn move_to<'a>(
        &'a self,
        path: &'a str,
        folder: &'a str,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        self.inner.move_to(path, folder)
    }
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        self.inner.rename(from, to)
    }
    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        self.inner.delete(path)
    }
    fn subscribe_events(&self) -> Result<Option<ChangeFeed>, SourceError> {
        if self.feed_ends_at_once {
            let (_sender, receiver) = tokio::sync::mpsc::channel(1);
            Ok(Some(ChangeFeed::new(receiver, Box::new(()))))
        } else {
            Err(SourceError::Internal {
                source_name: self.name().to_owned(),
                message: "no inotify watches left".into(),
            })
        }
    }
}

#[tokio::test]
async fn polling_takes_over_when_events_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, _) = watched(dir.path(), true);
    let source = NoEvents { inner, feed_ends_at_once: false };
    let mut poller = Poller::new(Arc::new(source), options(Duration::from_millis(200), true));
    assert!(!poller.events_active());
    assert!(poller.event_error().unwrap().contains("no inotify watches left"));

    fs::write(dir.path().join("a.csv"), "x").unwrap();
    let wakes = poll_until_ready(&mut poller, "a.csv").await;
    assert!(wakes.iter().all(|w| *w == Wake::Timer), "{wakes:?}");
}

#[tokio::test]
async fn polling_takes_over_when_the_event_feed_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, _) = watched(dir.path(), true);
    let source = NoEvents { inner, feed_ends_at_once: true };
    let mut poller = Poller::new(Arc::new(source), options(Duration::from_millis(200), true));
    assert!(poller.events_active());
    let cancel = CancellationToken::new();
    let wake = tokio::time::timeout(PATIENCE, poller.wait(&cancel)).await;
    assert_eq!(wake, Ok(Wake::Timer));
    assert!(!poller.events_active());
    assert!(poller.event_error().is_some());

    fs::write(dir.path().join("b.csv"), "x").unwrap();
    poll_until_ready(&mut poller, "b.csv").await;
}

#[tokio::test]
async fn a_failed_poll_reports_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    fs::create_dir(&root).unwrap();
    let (source, _) = watched(&root, false);
    let mut poller = Poller::new(Arc::new(source), options(Duration::from_secs(1), false));
    fs::remove_dir(&root).unwrap();
    let report = poller.poll().await;
    let message = report.error_message().unwrap();
    assert!(message.contains("inbox"), "{message}");
    assert!(report.outcome.unwrap_err().is_retryable());
}
