//! Shared set-up for the tests that talk to the sandbox over real sockets (`m2m_transport_*`,
//! `m2m_writer_*`):
//!
//! - [`platform`]: a sandbox on 127.0.0.1 with one registered client, and clients of it;
//! - [`proxy`]: an HTTP proxy in front of the sandbox that counts what it sees, injects scripted
//!   answers, delays and dropped connections, and runs a hook before forwarding a chosen request;
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
pub mod writer;

// Not every test file uses every part.
#[allow(unused_imports)]
pub use {platform::*, processes::*, proxy::*, writer::*};

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
