//! Post-processing in a watched directory: moves create folders and never overwrite; renames
//! and deletes stay inside the root.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::fs;
use std::path::Path;

use intake_sources::{
    Source, SourceError, SourceSettings, WatchedDirectory, WatchedDirectoryConfig,
};

fn source(root: &Path) -> WatchedDirectory {
    WatchedDirectory::build(
        &WatchedDirectoryConfig { path: root.to_path_buf() },
        &SourceSettings::named("inbox"),
    )
    .unwrap()
}

#[tokio::test]
async fn move_to_creates_folders_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = source(root);

    fs::write(root.join("report.csv"), "first").unwrap();
    let first = src.move_to("report.csv", "archive/2024/completed").await.unwrap();
    assert_eq!(first, "archive/2024/completed/report.csv");

    fs::write(root.join("report.csv"), "second").unwrap();
    let second = src.move_to("report.csv", "./archive/2024/completed/").await.unwrap();
    assert_eq!(second, "archive/2024/completed/report (1).csv");

    fs::create_dir(root.join("in")).unwrap();
    fs::write(root.join("in/report.csv"), "third").unwrap();
    let third = src.move_to("in/report.csv", "archive/2024/completed").await.unwrap();
    assert_eq!(third, "archive/2024/completed/report (2).csv");

    let done = root.join("archive/2024/completed");
    assert_eq!(fs::read_to_string(done.join("report.csv")).unwrap(), "first");
    assert_eq!(fs::read_to_string(done.join("report (1).csv")).unwrap(), "second");
    assert_eq!(fs::read_to_string(done.join("report (2).csv")).unwrap(), "third");
    assert!(!root.join("report.csv").exists());
    assert!(!root.join("in/report.csv").exists());
}

#[tokio::test]
async fn move_keeps_modified_time() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    fs::write(dir.path().join("a.csv"), "x").unwrap();
    let before = src.stat("a.csv").await.unwrap();
    let moved = src.move_to("a.csv", "done").await.unwrap();
    let after = src.stat(&moved).await.unwrap();
    assert_eq!(before.modified, after.modified);
    assert_eq!(before.size, after.size);
}

#[tokio::test]
async fn move_into_a_file_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    fs::write(dir.path().join("a.csv"), "x").unwrap();
    fs::write(dir.path().join("done"), "i am a file").unwrap();
    let err = src.move_to("a.csv", "done").await.unwrap_err();
    assert!(matches!(err, SourceError::PathRefused { .. }), "{err}");
    assert!(dir.path().join("a.csv").exists());
}

#[tokio::test]
async fn rename_never_overwrites_and_delete_removes_only_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = source(root);
    fs::write(root.join("a.csv"), "a").unwrap();
    fs::write(root.join("b.csv"), "b").unwrap();

    let err = src.rename("a.csv", "b.csv").await.unwrap_err();
    assert!(matches!(err, SourceError::AlreadyExists { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(fs::read_to_string(root.join("b.csv")).unwrap(), "b");

    src.rename("a.csv", "new folder/a renamed.csv").await.unwrap();
    assert_eq!(fs::read_to_string(root.join("new folder/a renamed.csv")).unwrap(), "a");
    assert!(!root.join("a.csv").exists());

    src.delete("b.csv").await.unwrap();
    assert!(!root.join("b.csv").exists());
    let err = src.delete("new folder").await.unwrap_err();
    assert!(matches!(err, SourceError::NotAFile { .. }), "{err}");
    assert!(root.join("new folder").is_dir());
    let err = src.delete("b.csv").await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
}
