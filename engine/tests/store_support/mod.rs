//! Shared set-up for the state store suite (`store_*.rs`).
//!
//! Every test reaches the store only through [`Store`], so the suite is backend-neutral: this is
//! the one place that decides which backend a test runs against (today SQLite in a fresh temp
//! directory; the PostgreSQL backend plugs in here).

#![allow(dead_code)]

use intake_engine::store::Store;
use tempfile::TempDir;

/// A store in a fresh location, and what keeps that location alive.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// Where it lives (reopen with [`Store::open`]).
    pub location: String,
    pub dir: TempDir,
}

/// Opens a store in a fresh temp directory.
pub async fn fresh_store() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let location = dir.path().join("state.db").to_str().expect("utf-8 temp path").to_owned();
    let store = Store::open(&location).await.expect("open store");
    TestStore { store, location, dir }
}

/// A tenant id.
pub const TENANT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
/// Another tenant id.
pub const TENANT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";
