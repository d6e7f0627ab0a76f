//! Shared set-up for the state store suite (`store_*.rs`).
//!
//! Every test reaches the store only through [`Store`], so the suite is backend-neutral: this is
//! the one place that decides which backend a test runs against. A test file wraps its tests in
//! [`on_every_backend!`], which turns each test `name` into a module with two tests,
//! `name::on_sqlite` (always) and `name::on_postgres`; [`fresh_store`] opens the backend of the
//! test it is called from:
//! - SQLite: a file in a fresh temp directory;
//! - PostgreSQL: a fresh database `intake_test_<random>` created through the admin URL in
//!   `INTAKE_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) and dropped
//!   when the [`TestStore`] is dropped, so tests run in parallel without seeing each other.
//!   Without the variable the PostgreSQL tests pass after printing why they skipped, unless
//!   `INTAKE_REQUIRE_SERVICES=1` makes a missing URL a failure (CI).

#![allow(dead_code)]

use std::future::Future;

use intake_engine::store::Store;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tempfile::TempDir;

/// The admin URL of the PostgreSQL server the suite may create databases on.
pub const POSTGRES_URL_VAR: &str = "INTAKE_TEST_POSTGRES_URL";

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A database on the server at [`POSTGRES_URL_VAR`].
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// Runs a test body with `backend` as what [`fresh_store`] opens. PostgreSQL tests without a
/// server skip (saying why), or fail when `INTAKE_REQUIRE_SERVICES=1`.
pub async fn run_on(backend: Backend, body: impl Future<Output = ()>) {
    if backend == Backend::Postgres && postgres_admin_url().is_none() {
        if std::env::var("INTAKE_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
            panic!("INTAKE_REQUIRE_SERVICES=1 but {POSTGRES_URL_VAR} is not set");
        }
        eprintln!(
            "SKIPPED: {POSTGRES_URL_VAR} is not set, so there is no PostgreSQL to test on; set \
             INTAKE_REQUIRE_SERVICES=1 to make this a failure"
        );
        return;
    }
    BACKEND.scope(backend, body).await;
}

/// Expands each `#[tokio::test] async fn name() { … }` into `name::on_sqlite` and
/// `name::on_postgres`, both running the same body through [`run_on`].
#[macro_export]
macro_rules! on_every_backend {
    ($($(#[$attr:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            async fn on_sqlite() {
                $crate::store_support::run_on($crate::store_support::Backend::Sqlite, async move $body)
                    .await
            }

            $(#[$attr])*
            async fn on_postgres() {
                $crate::store_support::run_on(
                    $crate::store_support::Backend::Postgres,
                    async move $body,
                )
                .await
            }
        }
    )*};
}

/// A store in a fresh location, and what keeps that location alive.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// Where it lives (reopen with [`Store::open`]).
    pub location: String,
    /// Dropping it removes the location (the temp directory, or the test database).
    pub dir: Location,
}

/// What a test store lives in; dropping it removes it.
pub enum Location {
    /// A temp directory holding the SQLite file.
    Dir(TempDir),
    /// A PostgreSQL test database, dropped (with its connections) on drop.
    Database(TestDatabase),
}

/// A database created for one test.
pub struct TestDatabase {
    admin_url: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await: a thread with its own runtime drops the database (terminating the
        // test's connections). A failure leaves an `intake_test_*` database behind, nothing worse.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR).ok().filter(|url| !url.trim().is_empty())
}

/// Opens a store in a fresh location on the backend of the running test (SQLite outside
/// [`on_every_backend!`]).
pub async fn fresh_store() -> TestStore {
    match BACKEND.try_with(|backend| *backend).unwrap_or(Backend::Sqlite) {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let location =
                dir.path().join("state.db").to_str().expect("utf-8 temp path").to_owned();
            let store = Store::open(&location).await.expect("open store");
            TestStore { store, location, dir: Location::Dir(dir) }
        }
        Backend::Postgres => {
            let admin_url = postgres_admin_url().expect("run_on checked the URL");
            let name = format!("intake_test_{:016x}", rand::random::<u64>());
            let mut admin = PgConnection::connect(&admin_url).await.expect("connect as admin");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create the test database");
            admin.close().await.expect("close the admin connection");
            let database = TestDatabase { admin_url: admin_url.clone(), name: name.clone() };
            let mut location = url::Url::parse(&admin_url).expect("the admin URL is a URL");
            location.set_path(&name);
            let location = location.to_string();
            let store = Store::open(&location).await.expect("open store");
            TestStore { store, location, dir: Location::Database(database) }
        }
    }
}

/// A tenant id.
pub const TENANT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
/// Another tenant id.
pub const TENANT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";
