//! The machine's shared services, isolated per test: a PostgreSQL database of its own on the
//! server of `INTAKE_TEST_POSTGRES_URL` (an admin URL), and a RabbitMQ virtual host of its own on
//! the broker of `INTAKE_TEST_AMQP_URL` (made with `rabbitmqctl`, shared with the engine's tests).
//! Both are removed on drop.
//! Without the variable a test says so and passes, unless `INTAKE_REQUIRE_SERVICES=1` (CI).

use std::process::Command;

/// The variable's value, or `None` (the caller skips) when it is unset and not required.
fn service_url(variable: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let required = std::env::var("INTAKE_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            assert!(!required, "INTAKE_REQUIRE_SERVICES=1 but {variable} is unset");
            eprintln!("skipped: set {variable} to run this test on {what}");
            None
        }
    }
}

fn unique_name(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A database of its own, dropped at the end.
pub struct Database {
    admin: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl Database {
    /// A fresh database, or `None` when no PostgreSQL is configured.
    pub fn create() -> Option<Database> {
        let admin = service_url("INTAKE_TEST_POSTGRES_URL", "PostgreSQL")?;
        let name = unique_name("intake_serve");
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Some(Database { admin, name, url: url.to_string() })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(url: &str, sql: &str) {
    let output = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-c", sql]).output();
    let output = output.expect("psql runs (the postgresql-client package)");
    assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A RabbitMQ virtual host of its own (the engine's test helper).
#[path = "../../engine/tests/amqp_support/mod.rs"]
mod amqp_support;
#[allow(unused_imports)] // Not every test file uses it.
pub use amqp_support::Vhost;
