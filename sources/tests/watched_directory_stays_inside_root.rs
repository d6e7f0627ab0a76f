//! Nothing outside a watched directory's root is ever read, moved or deleted: `..`, absolute
//! paths and symlinks resolving outside are refused.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::fs;
use std::os::unix::fs::symlink;
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

fn assert_refused<T: std::fmt::Debug>(result: Result<T, SourceError>) {
    match result {
        Err(SourceError::PathRefused { .. }) => {}
        other => panic!("expected PathRefused, got {other:?}"),
    }
}

#[tokio::test]
async fn traversal_and_absolute_paths_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(outer.path().join("secret.csv"), "secret").unwrap();
    fs::write(root.join("a.csv"), "a").unwrap();
    let src = source(&root);
    let secret = outer.path().join("secret.csv");
    let absolute = secret.to_str().unwrap();

    for path in ["../secret.csv", "x/../../secret.csv", absolute, "", "\0.csv"] {
        assert_refused(src.stat(path).await);
        assert_refused(src.open(path).await.map(|_| ()));
        assert_refused(src.delete(path).await);
        assert_refused(src.move_to(path, "done").await);
    }
    assert_refused(src.move_to("a.csv", "../escaped").await);
    assert_refused(src.move_to("a.csv", absolute).await);
    assert_refused(src.rename("a.csv", "../escaped.csv").await);
    assert_refused(src.rename("a.csv", absolute).await);
    assert!(root.join("a.csv").exists());
    assert!(!outer.path().join("escaped").exists());
    assert!(!outer.path().join("escaped.csv").exists());
    assert_eq!(fs::read_to_string(&secret).unwrap(), "secret");
}

#[tokio::test]
async fn symlinks_resolving_outside_the_root_are_refused_and_not_listed() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.csv"), "secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("a.csv"), "a").unwrap();
    fs::create_dir(root.join("in")).unwrap();
    fs::write(root.join("in/real.csv"), "real").unwrap();
    symlink(outside.path().join("secret.csv"), root.join("escape.csv")).unwrap();
    symlink(outside.path(), root.join("escdir")).unwrap();
    symlink(root.join("in/real.csv"), root.join("inner-link.csv")).unwrap();
    symlink(root.join("in"), root.join("inner-dir")).unwrap();
    symlink(root.join("missing.csv"), root.join("dangling.csv")).unwrap();
    let src = source(root);

    let mut listed: Vec<String> = src.list().await.unwrap().into_iter().map(|e| e.path).collect();
    listed.sort();
    assert_eq!(
        listed,
        vec!["a.csv", "in/real.csv", "inner-link.csv"],
        "outside links, symlinked folders and dangling links are not listed"
    );

    for path in ["escape.csv", "escdir/secret.csv"] {
        assert_refused(src.stat(path).await);
        assert_refused(src.open(path).await.map(|_| ()));
        assert_refused(src.delete(path).await);
        assert_refused(src.move_to(path, "done").await);
        assert_refused(src.rename(path, "taken.csv").await);
    }
    assert_refused(src.move_to("a.csv", "escdir").await);
    assert_refused(src.move_to("a.csv", "escdir/deeper").await);
    assert_refused(src.rename("a.csv", "escdir/a.csv").await);
    assert!(root.join("a.csv").exists());
    assert!(!outside.path().join("a.csv").exists());
    assert!(!outside.path().join("deeper").exists());
    assert_eq!(fs::read_to_string(outside.path().join("secret.csv")).unwrap(), "secret");
    assert!(root.join("escape.csv").symlink_metadata().is_ok(), "the link itself is untouched");

    // Links that stay inside the root work.
    assert_eq!(src.stat("inner-link.csv").await.unwrap().size, 4);
    assert_eq!(src.stat("inner-dir/real.csv").await.unwrap().size, 4);
    let moved = src.move_to("inner-link.csv", "inner-dir/done").await.unwrap();
    assert_eq!(moved, "inner-dir/done/inner-link.csv");
    assert!(root.join("in/done/inner-link.csv").symlink_metadata().is_ok());
}
