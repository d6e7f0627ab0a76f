//! intake-api: the HTTP surfaces of intake.
//!
//! Today it holds [`sandbox`], a local implementation of the platform's documented M2M API
//! (token endpoint, generic resources, faults) used by `intake sandbox`, the demo and the tests.
//! The REST layer for templates, sources, runs, rejected records and alerting will live here
//! too. It depends on the engine (for JWS signing and verification); it does not import files.

pub mod sandbox;

pub use sandbox::{
    ClientKey, ClientRegistration, Faults, Sandbox, SandboxConfig, SandboxConfigError,
};
