//! intake-api: the HTTP surfaces of intake.
//!
//! - [`rest`]: the REST layer for integrators and operators (templates, sources, runs, alert
//!   channels, routing rules) over the engine's state store, served by `intake api`.
//! - [`sandbox`]: a local implementation of the platform's documented M2M API (token endpoint,
//!   generic resources, faults) used by `intake sandbox`, the demo and the tests.
//! - [`conventions`]: what both share — list queries, `If-Match`, error bodies — so that both
//!   answer a request the same way; [`auth`]: access-token verification for the REST layer,
//!   and the token endpoint ([`auth::TokenAuthority`]) both `intake sandbox` and `intake api
//!   --clients` serve.
//!
//! It depends on the engine (for the store, JWS signing and verification); it does not import
//! files itself.

pub mod auth;
pub mod conventions;
pub mod rest;
pub mod sandbox;

pub use auth::{ClientKey, ClientRegistration};
pub use sandbox::{Faults, Sandbox, SandboxConfig, SandboxConfigError};
