//! A fresh RabbitMQ virtual host per test on the broker named by `INTAKE_TEST_AMQP_URL`
//! (`amqp://127.0.0.1:5672`), made and removed with `rabbitmqctl`, so tests never see each
//! other's queues (also used by the root crate's `tests/common/services.rs`). Without the variable the tests skip, saying so; with
//! `INTAKE_REQUIRE_SERVICES=1` (CI) they fail instead.
#![allow(dead_code)]

use std::process::Command;

/// A virtual host that is deleted when dropped.
pub struct Vhost {
    name: String,
    /// The broker URL into it (guest's default credentials: no password in the URL).
    pub url: String,
}

impl Vhost {
    /// A fresh virtual host, or `None` (the test skips) when no broker is configured.
    pub fn create() -> Option<Vhost> {
        let Ok(base) = std::env::var("INTAKE_TEST_AMQP_URL") else {
            assert!(
                std::env::var("INTAKE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "INTAKE_REQUIRE_SERVICES=1 but INTAKE_TEST_AMQP_URL is not set"
            );
            eprintln!("skipped: set INTAKE_TEST_AMQP_URL=amqp://127.0.0.1:5672 to run on RabbitMQ");
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("intake-test-{}-{nanos}", std::process::id());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let url = format!("{}/{name}", base.trim_end_matches('/'));
        Some(Vhost { name, url })
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["delete_vhost", &self.name]).output();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rabbitmqctl (RabbitMQ's admin tool): {e}"));
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
