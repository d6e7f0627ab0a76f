//! intake-api: the HTTP surfaces.
//!
//! It will own the REST layer for templates, sources, runs, rejected records and alerting, the
//! token issuing and verification, and the sandbox implementation of the platform's M2M API. It
//! depends on the engine. Nothing is implemented yet.
