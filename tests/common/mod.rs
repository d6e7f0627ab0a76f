//! Shared set-up for the tests that talk to the sandbox over real sockets (`m2m_transport_*`,
//! `m2m_writer_*`):
//!
//! - [`platform`]: a sandbox on 127.0.0.1 with one registered client, and clients of it;
//! - [`proxy`]: an HTTP proxy in front of the sandbox that counts what it sees, injects scripted
//!   answers, delays and dropped connections, and runs a hook before forwarding a chosen request;
//! - [`writer`]: runs the row writer over a list of rows and collects every outcome.

// Each test file uses only part of this.
#![allow(dead_code)]
// Test support: a failed set-up step should panic right there, like in a test body.
#![allow(clippy::unwrap_used)]

pub mod platform;
pub mod proxy;
pub mod writer;

// Not every test file uses every part.
#[allow(unused_imports)]
pub use {platform::*, proxy::*, writer::*};

use serde_json::{Map, Value};

/// A JSON object from a `json!` literal.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}
