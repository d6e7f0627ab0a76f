//! Listing a watched directory: recursion, ignored folders, hidden files, temp uploads, odd
//! file names, and reading files back as streams.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::fs;
use std::path::Path;

use intake_sources::{
    Source, SourceError, SourceSettings, WatchedDirectory, WatchedDirectoryConfig, content_sha256,
};
use tokio::io::AsyncReadExt;

fn source(root: &Path, settings: SourceSettings) -> WatchedDirectory {
    WatchedDirectory::build(&WatchedDirectoryConfig { path: root.to_path_buf() }, &settings)
        .unwrap()
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

async fn listed_paths(source: &WatchedDirectory) -> Vec<String> {
    let mut paths: Vec<String> = source.list().await.unwrap().into_iter().map(|e| e.path).collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn lists_recursively_skipping_ignored_folders_and_hidden_entries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.csv", "1");
    write(root, "in/b.csv", "22");
    write(root, "in/deep/er/c.csv", "333");
    write(root, "done/old.csv", "x");
    write(root, "errors/2024/bad.csv", "x");
    write(root, "in/done/kept.csv", "x"); // only the top-level `done` is ignored
    write(root, ".hidden.csv", "x");
    write(root, ".git/config", "x");
    write(root, "in/.rsync-tmp.csv.XYZ", "x");
    fs::create_dir_all(root.join("empty/folder")).unwrap();

    let mut settings = SourceSettings::named("inbox");
    settings.ignored_folders = vec!["done".into(), "./errors/".into()];
    let src = source(root, settings);

    assert_eq!(
        listed_paths(&src).await,
        vec!["a.csv", "in/b.csv", "in/deep/er/c.csv", "in/done/kept.csv"]
    );
    let entries = src.list().await.unwrap();
    let c = entries.iter().find(|e| e.path == "in/deep/er/c.csv").unwrap();
    assert_eq!(c.size, 3);
    assert!(c.modified.is_some());
    assert!(c.version.is_none());
    assert!(!c.is_temp_upload);
    assert!(c.version_token().starts_with("mtime:"));
}

#[tokio::test]
async fn temp_uploads_are_listed_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "up/a.csv.part", "1");
    write(dir.path(), "b.TMP", "1");
    write(dir.path(), "c.filepart", "1");
    write(dir.path(), "d.csv", "1");
    let mut settings = SourceSettings::named("inbox");
    settings.temp_file_extensions = vec![".part".into(), ".tmp".into(), "filepart".into()];
    let src = source(dir.path(), settings);
    let mut flags: Vec<(String, bool)> =
        src.list().await.unwrap().into_iter().map(|e| (e.path, e.is_temp_upload)).collect();
    flags.sort();
    assert_eq!(
        flags,
        vec![
            ("b.TMP".to_owned(), true),
            ("c.filepart".to_owned(), true),
            ("d.csv".to_owned(), false),
            ("up/a.csv.part".to_owned(), true),
        ]
    );
}

#[tokio::test]
async fn odd_file_names_list_stat_open_and_move() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "with space.csv",
        "-leading-dash.csv",
        "quotes 'single' \"double\".csv",
        "hash#and%percent%20.csv",
        "semi;colon & amp $HOME `tick`.csv",
        "nfc-\u{e5}\u{e4}\u{f6}.csv",
        "nfd-a\u{30a}a\u{308}o\u{308}.csv",
        "emoji-📄.csv",
        "folder with space/日本語.csv",
    ];
    for (i, name) in names.iter().enumerate() {
        write(dir.path(), name, &format!("content {i}"));
    }
    let src = source(dir.path(), SourceSettings::named("inbox"));
    let listed = listed_paths(&src).await;
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected, "names come back exactly as found (NFC and NFD kept apart)");

    for (i, name) in names.iter().enumerate() {
        let entry = src.stat(name).await.unwrap();
        assert_eq!(entry.path, *name);
        let mut text = String::new();
        src.open(name).await.unwrap().read_to_string(&mut text).await.unwrap();
        assert_eq!(text, format!("content {i}"));
        let moved = src.move_to(name, "done/odd #1").await.unwrap();
        assert_eq!(moved, format!("done/odd #1/{}", entry.file_name()));
        assert!(src.stat(&moved).await.is_ok());
    }
}

#[tokio::test]
async fn open_streams_content_and_hash_matches() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB + a bit, read through the stream in chunks.
    let content: String = (0..70_000).map(|i| format!("{i:>14}\n")).collect();
    write(dir.path(), "big.csv", &content);
    let src = source(dir.path(), SourceSettings::named("inbox"));
    let hash = content_sha256(&src, "big.csv").await.unwrap();
    assert_eq!(hash.len(), 64);
    write(dir.path(), "same.csv", &content);
    assert_eq!(content_sha256(&src, "same.csv").await.unwrap(), hash);
    write(dir.path(), "other.csv", "different");
    assert_ne!(content_sha256(&src, "other.csv").await.unwrap(), hash);
}

#[tokio::test]
async fn missing_files_and_folders_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let src = source(dir.path(), SourceSettings::named("inbox"));
    let err = src.stat("nope.csv").await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(err.path(), Some("nope.csv"));
    assert_eq!(err.source_name(), "inbox");
    let err = src.open("sub").await.err().unwrap();
    assert!(matches!(err, SourceError::NotAFile { .. }), "{err}");
}

#[tokio::test]
async fn build_reports_every_config_problem_and_missing_root() {
    let mut settings = SourceSettings::named("inbox");
    settings.polling_interval_seconds = 0;
    settings.ignored_folders = vec!["../up".into()];
    let err =
        WatchedDirectory::build(&WatchedDirectoryConfig { path: "relative".into() }, &settings)
            .unwrap_err();
    match err {
        SourceError::InvalidConfig { problems, .. } => {
            assert_eq!(problems.len(), 3, "{problems:?}")
        }
        other => panic!("unexpected {other}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let err = WatchedDirectory::build(
        &WatchedDirectoryConfig { path: dir.path().join("missing") },
        &SourceSettings::named("inbox"),
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::RootUnavailable { .. }), "{err}");
    assert!(err.is_retryable());
}
