//! Shared set-up for the tests that talk to the sandbox over real sockets (`m2m_transport_*`,
//! `m2m_writer_*`):
//!
//! - [`platform`]: a sandbox on 127.0.0.1 with one registered client, and clients of it;
//! - [`proxy`]: an HTTP proxy in front of the sandbox that counts what it sees, injects scripted
//!   answers, delays and dropped connections, and runs a hook before forwarding a chosen request;
//! - [`services`]: a PostgreSQL database and a RabbitMQ virtual host of a test's own;
//! - [`writer`]: runs the row writer over a list of rows and collects every outcome;
//! - [`processes`]: the built `intake sandbox` and `intake serve` as child processes (the
//!   `serve_*` and `import_command` tests);
//! - [`member_mapping`] / [`member_validation`]: the `id,name,age` member rows of the runner tests.

// Each test file uses only part of this.
#![allow(dead_code)]
// Test support: a failed set-up step should panic right there, like in a test body.
#![allow(clippy::unwrap_used)]

pub mod platform;
pub mod processes;
pub mod proxy;
pub mod services;
pub mod writer;

// Not every test file uses every part.
#[allow(unused_imports)]
pub use {platform::*, processes::*, proxy::*, services::*, writer::*};

use serde_json::{Map, Value};

/// A JSON object from a `json!` literal.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The `field_mapping` of the `id,name,age` member rows: `member_no` and `age` as integers.
pub fn member_mapping() -> Value {
    serde_json::json!([
        {"source": "id", "target": "member_no", "cast": "integer"},
        {"source": "name", "target": "name"},
        {"source": "age", "target": "age", "cast": "integer"}
    ])
}

/// The `validation` of the member rows: `member_no` and `name` required, `age` not negative.
pub fn member_validation() -> Value {
    serde_json::json!({"schema": {
        "type": "object",
        "required": ["member_no", "name"],
        "properties": {"age": {"type": "integer", "minimum": 0}}
    }})
}

/// An access token of the demo issuer (`fixtures/api/`, whose key is public and demo-only) for
/// the demo tenant with `scope`, valid for an hour: what `intake api --issuers
/// fixtures/api/issuers.json` and a serve `[api]` section with that file accept.
pub fn demo_issuer_token(scope: &str) -> String {
    use intake_engine::m2m::jws::{self, SigningKey};
    let path = processes::repo("fixtures/api/demo-issuer.key.pem");
    let key = SigningKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut header = Map::new();
    header.insert("kid".into(), Value::from("demo-issuer"));
    let claims = serde_json::json!({
        "iss": "https://login.demo.intake.test", "aud": "intake", "client_id": "demo",
        "tenant_id": "64a1b2c3d4e5f6789012abcd", "scope": scope, "iat": now, "exp": now + 3600,
    });
    jws::sign(header, &claims, &key).unwrap()
}
