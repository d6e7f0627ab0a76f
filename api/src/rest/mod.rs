//! The REST layer for integrators and operators: templates, sources, import runs, alert
//! channels and routing rules over the engine's state store, with exactly the platform's
//! conventions (the ones the sandbox implements, from [`crate::conventions`]).
//!
//! Every resource route needs a Bearer access token ([`crate::auth`]): the tenant comes from
//! the token and scopes every read and write; another tenant's item is 404. Capabilities are
//! the token's scopes (`imports/templates:list|read|create|update|delete`, …;
//! `admin.imports.manage` grants them all); a missing one is 403 `missing_capabilities`.
//!
//! Routes: [`documents`] (templates, sources, alert channels, routing rules), [`runs`] (import
//! runs, read-only), [`uploads`] (`POST /imports/runs`), [`preview`] (a template on a sample
//! file, writing nothing), [`rejected_records`] (list, correct, retry, discard, history),
//! [`health`] (`/healthz`, `/readyz`, the template schema), [`openapi`] (`/openapi.json`),
//! [`metrics`] (`/metrics`).
//! Anything else is 404 `{"detail": "Not Found"}`.

mod alerts;
mod documents;
mod errors;
mod health;
mod item;
mod listing;
mod metrics;
mod openapi;
mod platform;
mod preview;
mod rejected_records;
mod runs;
mod schemas;
mod uploads;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use intake_engine::jobs::JobQueue;
use intake_engine::store::Store;
use tokio::net::TcpListener;

use crate::auth::AccessTokenVerifier;
use crate::conventions::ApiError;

pub use openapi::document as openapi_document;
pub use platform::PlatformClients;
pub use uploads::{QueueUpload, QueuedUpload, UploadSettings};

/// Request size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest JSON body accepted (413 beyond).
    pub max_json_bytes: u64,
    /// Largest uploaded file accepted (413 beyond).
    pub max_upload_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_json_bytes: 1024 * 1024, max_upload_bytes: 100 * 1024 * 1024 }
    }
}

/// What every REST handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The state store.
    pub store: Store,
    /// Verifies access tokens.
    pub verifier: Arc<AccessTokenVerifier>,
    /// The job queue, when the server has one (`/readyz` checks it).
    pub queue: Option<JobQueue>,
    /// Request size limits.
    pub limits: Limits,
    /// The platform clients inline uploads and single-record retries write through, per
    /// tenant.
    pub platform: PlatformClients,
    /// Where uploads are kept and how large ones are queued.
    pub uploads: UploadSettings,
}

impl AppState {
    /// A state over `store` trusting the tokens `verifier` accepts, without a queue or platform
    /// clients and with the default limits.
    pub fn new(store: Store, verifier: AccessTokenVerifier) -> Self {
        Self {
            store,
            verifier: Arc::new(verifier),
            queue: None,
            limits: Limits::default(),
            platform: PlatformClients::new(),
            uploads: UploadSettings::default(),
        }
    }
}

impl FromRef<AppState> for Arc<AccessTokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The REST layer's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(documents::router())
        .merge(runs::router())
        .merge(alerts::router())
        .merge(rejected_records::router())
        .merge(uploads::router())
        .merge(preview::router())
        .merge(openapi::router())
        .merge(metrics::router())
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Serves the REST layer on `listener` until `shutdown` completes (in-flight requests finish).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
