//! `intake sandbox`: a local implementation of the platform's documented M2M contract
//! (`spec/platform-m2m-api.txt`), for the demo, for integrators trying templates, and for tests.
//!
//! It serves the token endpoint with the full `private_key_jwt` checks, optional DPoP, generic
//! resources with ETags, filters, pagination, capability checks and tenant isolation, and knobs
//! for latency and injected faults. It keeps everything in memory; it is not the platform and
//! does not persist anything, know any resource's fields, or implement cascades.
//!
//! # Decisions where the contract leaves a choice
//!
//! **Token endpoint** (`POST /auth/token`, form-encoded):
//! - The client is the form's `client_id`, or else the assertion's (unverified) `iss`. Errors use
//!   the spec's `{"error", "error_description"}` body and statuses: `invalid_request` 400
//!   (missing/duplicated parameters, wrong `grant_type` or `client_assertion_type`, an assertion
//!   that is not a compact JWS), `invalid_client` 401 (unknown client, missing `kid`, a `kid` with
//!   characters other than `A-Z a-z 0-9 . _ -` or containing `..`, unknown `kid`, a key whose
//!   `active_until` has passed (a rotated-out key), `alg` outside
//!   ES256/ES384/ES512 — so `none` and `HS256` —, `alg` not the key's, bad signature),
//!   `invalid_grant` 400 (`iss`/`sub` not the client, `aud` not exactly the string
//!   `{public_url}/auth/token` — an array is refused —, missing or expired `exp`, missing `iat`,
//!   `iat` more than 30 s in the future, `exp` more than 300 s after `iat`, `nbf` in the future,
//!   missing or reused `jti`), `invalid_scope` 400 (a requested scope that is not one of the
//!   client's capabilities; no or an empty `scope` grants all of them), `invalid_dpop_proof` 401.
//! - Clock skew: 30 s on `exp`, `iat` and `nbf`. A `jti` is remembered per client until the
//!   assertion's `exp` (+ skew), so a replay is always caught while the assertion could be valid.
//!   The `jti` is consumed once signature and claims pass, even if the scope is then refused.
//! - Lockout: five consecutive failed token requests for a registered client lock it for 15
//!   minutes (the spec's per-client lockout; there is no per-IP counter). While locked every
//!   request, even a valid one, gets 429 `{"error": "rate_limited"}` with `Retry-After` (the
//!   remaining seconds). A success resets the counter.
//! - The token endpoint is [`crate::auth::TokenAuthority`], the same one `intake api --clients`
//!   serves (there with the REST layer's issuer name and audience, and without DPoP binding).
//! - Access tokens are ES512 JWTs (`typ: at+jwt`) signed by a key generated at start, claims
//!   `iss: "intake-sandbox"`, `sub`/`client_id`, `tenant_id`, `scope`, `iat`, `exp`, `jti`, and
//!   `cnf.jkt` when DPoP-bound. Their public key is at `GET /.well-known/jwks.json`.
//!
//! **DPoP** (RFC 9449): a proof must have `typ: dpop+jwt`, an ES256/384/512 `alg`, a public `jwk`
//! (a private `d` is refused), a valid signature, `htm` = the request method, `htu` = the request
//! URL (`{public_url}{path}`; compared by scheme, host, port and path; query and fragment
//! ignored), `iat` within ±60 s, a `jti` never seen for that key (remembered 120 s), and on
//! resource calls `ath` = base64url(SHA-256(access token)) and the key's thumbprint = the token's
//! `cnf.jkt`. A bound token sent as `Bearer`, or any proof problem, is 401 `invalid_dpop_proof`.
//!
//! **Resource calls** answer errors FastAPI-style, `{"detail": …}`: 401
//! `{"detail": {"error": "invalid_token" | "invalid_dpop_proof", "error_description"}}` with
//! `WWW-Authenticate`; 403 `{"detail": {"error": "missing_capabilities", "missing": [...]}}`; 403
//! `{"detail": {"error": "tenant_mismatch", …}}` when an `X-Tenant-ID` header names another tenant
//! than the token's (403, not 404: the caller's own configuration is wrong, nothing leaks);
//! 404 for unknown ids, invalid ids, other tenants' items and soft-deleted items (unless the
//! query has `include_deleted=true`, see below); 400 for bad query parameters, invalid `where`
//! JSON, blocked or unknown operators, and bodies that are not a JSON object; 422
//! `{"detail": [{"loc": ["body", field, …], "msg", "type"}]}` for schema errors.
//! - Capabilities: list needs `{resource}:list` — or `{resource}:read`, because the spec's own
//!   Quick Start lists `/bookings` with a `bookings:read` token; get needs `:read`, POST `:create`,
//!   PATCH and PUT `:update`, DELETE `:delete`. Checked before the item is looked up.
//! - System fields: `_id` (24 lowercase hex), `tenant_id` (from the token), `created_at`,
//!   `updated_at` (RFC 3339 UTC, microseconds), `revision_id` (new on every write), `is_deleted`,
//!   `deleted_at`. Client-supplied system fields are ignored, except a `tenant_id` different from
//!   the token's, which is 422 (it is read-only and a mismatch is a client bug worth surfacing),
//!   and `is_deleted`/`deleted_at` on PATCH and PUT (below). A POST always creates a live item.
//! - Writes: POST → 201 with the item, `ETag` and `Location: /{resource}/{id}`; PATCH is a
//!   shallow merge (top-level keys replaced, `null` stores null); PUT replaces every non-system
//!   field; DELETE is a soft delete (`is_deleted: true`, `deleted_at`) answered 204. PATCH, PUT and
//!   DELETE need `If-Match` (428 without); it holds one or more quoted ETags (`W/` never matches),
//!   a bare revision id, or `*`. A mismatch is 412 `{"detail": …, "current": item}` with the
//!   current `ETag`, so a client can re-apply without another GET.
//! - Soft deletes are reversible, as the spec lists `is_deleted` and `deleted_at` as ordinary
//!   fields (only `tenant_id` is read-only): a PATCH or PUT with `is_deleted: false` restores an
//!   item (`deleted_at` → null, fields kept), `is_deleted: true` soft-deletes it (`deleted_at` =
//!   now, or the RFC 3339 time sent, stored as UTC). Without `is_deleted` the item keeps its
//!   state; `deleted_at` may be left out or must agree (null when live, a time when deleted),
//!   else 422 — as is a non-boolean `is_deleted`. GET by id, PATCH and PUT reach a soft-deleted
//!   item only with `include_deleted=true` in the query (else 404); DELETE never does.
//!   `If-Match` and `ETag` work the same on soft-deleted items, and an `Idempotency-Key` reused
//!   with and without `include_deleted` is a different request (422).
//! - `ETag` = the quoted `revision_id`, on every item response; list items carry `revision_id`.
//! - `Idempotency-Key` on any write (POST, PATCH, PUT, DELETE): within 24 h, the same key from the
//!   same tenant with the same method, path, `If-Match` and JSON body replays the stored first
//!   success (with `Idempotent-Replayed: true`) and writes nothing; the same key with anything
//!   different is 422 `idempotency_key_reused`. Only successes are stored. Check, write and
//!   record happen under one lock, so concurrent duplicates cannot both write.
//! - Lists: `{items, total, page, per_page}` plus `X-Total-Count`, `X-Page`, `X-Per-Page`,
//!   `X-Total-Pages`. `page` ≥ 1, `per_page` 1–100 (default 25); anything else is 400 — never
//!   silently clamped, since a client paging with its own `per_page` would then miss rows.
//!   Soft-deleted items are hidden unless `include_deleted=true` (also accepted on GET by id,
//!   PATCH and PUT).
//!
//! **Filters, sort, fields** (list query parameters; `page`, `per_page`, `sort`, `fields`,
//! `where` and `include_deleted` are reserved, every other parameter is a filter; all filters
//! are ANDed):
//! - `where` is a JSON object: implicit equality `{"f": v}`; `$eq $ne $gt $gte $lt $lte $in $nin
//!   $exists $regex` (+ `$options`, any of `imsx`) and a field-level `$not` taking an operator
//!   object; `$and`/`$or` (non-empty arrays of filters) and `$not` (a filter) at any filter level.
//!   `$where`, `$expr`, `$function` are blocked and any other `$…` is unknown: both 400, as are
//!   invalid JSON, a non-object, operators mixed with plain keys, and nesting deeper than 16.
//! - Field paths are dotted (`address.city`); numeric segments index arrays. An array field
//!   matches when any element does (`$ne`/`$nin`: when none does). Equality is JSON equality
//!   with numbers compared numerically; `null` also matches a missing field. `$gt`… compare
//!   numbers with numbers, strings with strings (two RFC 3339 timestamps as instants, so
//!   `2026-04-01T08:00:00Z` < `2026-04-01T08:00:00.5Z`), booleans with booleans, and never
//!   across types. Regexes use Rust's linear-time `regex` (no backreferences or look-around).
//! - Query filters `field=value` (equality) and `field__gt|gte|lt|lte|ne|in|nin|regex|exists`.
//!   A query value is text typed by the stored field: a number when the field is a number and
//!   the text parses as one, `true`/`false` for booleans, `null` for null, otherwise a string.
//!   `__in`/`__nin` take a comma-separated list; `__exists` takes `true|false|1|0`. An unknown
//!   `__suffix` is 400 rather than a silent filter on a field that does not exist.
//! - `sort=-start_time,status`: comma-separated, `-` for descending, default `-created_at`;
//!   ascending puts missing/null first, then numbers, strings, booleans, objects, arrays; ties
//!   keep creation order. `fields=a,b.c` returns only those fields, plus `_id` always (ask for
//!   `revision_id` too when you will send `If-Match`).
//!
//! **Faults** ([`Faults`]) apply to resource routes only — not to `/auth/token` unless
//! `include_token_endpoint` is set, and never to the admin routes. Per call: the rate limit is
//! checked first (429, `Retry-After: 1`), then the latency is added, then one roll decides drop /
//! 503 / 429 by their fractions. A dropped call closes the connection without any answer; half
//! of the drops happen before the handler runs, half after it has applied the write — the case
//! that makes idempotency keys necessary. 503 and 429 are answered without running the handler.
//! Dropping needs [`Sandbox::serve`]; under another server the drop marker is a plain 503.
//!
//! **Admin** (no auth; bind the sandbox to localhost): `GET`/`PUT /_sandbox/faults`,
//! `GET /_sandbox/stats`, and `POST /_sandbox/revoke-tokens` (every token issued so far becomes
//! invalid, to test re-authentication on 401).

mod auth;
mod faults;
mod resources;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::{get, post};
use intake_engine::m2m::jws::{JwsAlgorithm, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

pub(crate) use crate::auth::authority::{lock, now_secs, random_hex};
use crate::auth::{AuthoritySettings, TokenAuthority};
pub use crate::auth::{ClientKey, ClientRegistration};
pub(crate) use crate::conventions::is_object_id;
pub use crate::conventions::{ApiError, FieldError};

/// The `iss` of the sandbox's access tokens.
const ISSUER: &str = "intake-sandbox";

/// The sandbox's configuration: what `clients.json` holds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// The registered M2M clients.
    pub clients: Vec<ClientRegistration>,
    /// Injected faults at start-up (none by default); changeable at run time.
    #[serde(default)]
    pub faults: Faults,
    /// Optional JSON Schema per resource name; creates and updates that fail it get 422. The
    /// schema sees the item without its system fields.
    #[serde(default)]
    pub schemas: BTreeMap<String, Value>,
    /// The base URL clients use (`http://host:port`, no trailing slash), which assertions' `aud`
    /// and DPoP `htu` are checked against. Default: `http://` + the request's `Host` header.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Lifetime of issued access tokens in seconds (default 900, as the platform's).
    #[serde(default = "default_token_lifetime")]
    pub access_token_lifetime_seconds: u64,
}

impl Default for SandboxConfig {
    /// No clients, no faults, no schemas, `public_url` from the `Host` header, 900 s tokens.
    fn default() -> Self {
        SandboxConfig {
            clients: Vec::new(),
            faults: Faults::default(),
            schemas: BTreeMap::new(),
            public_url: None,
            access_token_lifetime_seconds: default_token_lifetime(),
        }
    }
}

/// The default access token lifetime, the platform's 15 minutes.
fn default_token_lifetime() -> u64 {
    900
}

/// Injected faults. The default is none. Fractions are of API calls, between 0 and 1; the three
/// fractions together must not exceed 1.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Milliseconds added to every API call.
    pub latency_ms: u64,
    /// Fraction of API calls answered 503 `{"error": "server_error"}`.
    pub error_rate: f64,
    /// Fraction of API calls answered 429 with `Retry-After`.
    pub throttle_rate: f64,
    /// The `Retry-After` seconds of throttled answers (0 is sent as 0).
    pub retry_after_seconds: u64,
    /// Fraction of API calls whose connection is closed without an answer (half before, half
    /// after the write is applied).
    pub drop_rate: f64,
    /// At most this many API calls per second (fixed one-second windows); more get 429 with
    /// `Retry-After: 1`.
    pub rate_limit_per_second: Option<u32>,
    /// Apply the faults to `POST /auth/token` too (default false: only resource routes).
    pub include_token_endpoint: bool,
}

impl Faults {
    /// Every problem with these settings (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("error_rate", self.error_rate),
            ("throttle_rate", self.throttle_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                problems.push(format!("faults.{name} must be between 0 and 1, got {value}"));
            }
        }
        let sum = self.error_rate + self.throttle_rate + self.drop_rate;
        if sum > 1.0 + 1e-9 {
            problems.push(format!(
                "faults.error_rate + throttle_rate + drop_rate must not exceed 1, got {sum}"
            ));
        }
        if self.rate_limit_per_second == Some(0) {
            problems.push("faults.rate_limit_per_second must be at least 1 (or absent)".into());
        }
        problems
    }
}

/// What is wrong with a [`SandboxConfig`]: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid sandbox configuration:\n- {}", .problems.join("\n- "))]
pub struct SandboxConfigError {
    /// Each problem, naming the client, key or resource it concerns.
    pub problems: Vec<String>,
}

impl SandboxConfig {
    /// Checks the whole configuration without starting anything and reports every problem.
    pub fn validate(&self) -> Result<(), SandboxConfigError> {
        let mut problems = Vec::new();
        problems.extend(crate::auth::client_problems(&self.clients));
        for (resource, schema) in &self.schemas {
            if let Err(e) = jsonschema::validator_for(schema) {
                problems.push(format!("schemas.{resource}: not a valid JSON Schema: {e}"));
            }
        }
        problems.extend(self.faults.problems());
        if let Some(public_url) = &self.public_url {
            match url::Url::parse(public_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() => {}
                _ => problems.push(format!(
                    "public_url '{public_url}' must be an http(s) URL without a query"
                )),
            }
        }
        if self.access_token_lifetime_seconds == 0 {
            problems.push("access_token_lifetime_seconds must be at least 1".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(SandboxConfigError { problems }) }
    }
}

/// Counters behind `request_count` and `GET /_sandbox/stats`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// API calls received on resource routes (every one, whatever its answer).
    pub(crate) requests: AtomicU64,
    /// Injected 503 answers.
    pub(crate) injected_errors: AtomicU64,
    /// Injected 429 answers (throttle fraction).
    pub(crate) injected_throttles: AtomicU64,
    /// 429 answers from the rate limit.
    pub(crate) rate_limited: AtomicU64,
    /// Connections dropped before the handler ran.
    pub(crate) dropped_before: AtomicU64,
    /// Connections dropped after the handler ran.
    pub(crate) dropped_after: AtomicU64,
    /// Idempotent replays served.
    pub(crate) idempotent_replays: AtomicU64,
}

impl Stats {
    /// The counters as JSON, with the token endpoint's from `authority`.
    fn to_json(&self, authority: &TokenAuthority) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (token_requests, tokens_issued) = authority.counters();
        serde_json::json!({
            "requests": get(&self.requests),
            "token_requests": token_requests,
            "tokens_issued": tokens_issued,
            "injected_errors": get(&self.injected_errors),
            "injected_throttles": get(&self.injected_throttles),
            "rate_limited": get(&self.rate_limited),
            "dropped_before_write": get(&self.dropped_before),
            "dropped_after_write": get(&self.dropped_after),
            "idempotent_replays": get(&self.idempotent_replays),
        })
    }
}

/// Everything the handlers share.
pub(crate) struct Inner {
    /// The token endpoint, its clients and the key access tokens are signed with.
    pub(crate) authority: TokenAuthority,
    /// Compiled schemas by resource; `Err` holds why a configured schema does not compile.
    pub(crate) schemas: HashMap<String, Result<jsonschema::Validator, String>>,
    /// The current faults.
    pub(crate) faults: RwLock<Faults>,
    /// Items and idempotency records.
    pub(crate) store: Mutex<store::Store>,
    /// The rate limit's current window.
    pub(crate) rate_window: Mutex<faults::RateWindow>,
    /// Counters.
    pub(crate) stats: Stats,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("authority", &self.authority).finish_non_exhaustive()
    }
}

impl Inner {
    /// The base URL of this request: the configured `public_url`, or `http://{Host}`.
    pub(crate) fn base_url(&self, headers: &axum::http::HeaderMap) -> String {
        self.authority.base_url(headers)
    }

    /// The current faults.
    pub(crate) fn faults(&self) -> Faults {
        self.faults.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The shared state handlers receive.
pub(crate) type AppState = Arc<Inner>;

/// A running sandbox's state; cheap to clone (an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The shared state.
    inner: AppState,
}

/// Marks a response whose connection [`Sandbox::serve`] must close without answering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// The error a connection is aborted with to simulate a dropped connection.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the sandbox's drop_rate fault")]
struct DroppedByFault;

impl Sandbox {
    /// Validates `config` ([`SandboxConfig::validate`]) and builds the sandbox.
    pub fn try_new(config: SandboxConfig) -> Result<Self, SandboxConfigError> {
        config.validate()?;
        Ok(Self::new(config))
    }

    /// Builds the sandbox without validating `config` first: an unreadable key is skipped (its
    /// assertions get `invalid_client`), a schema that does not compile makes writes to its
    /// resource fail with 500. Use [`Sandbox::try_new`] to refuse such a configuration instead.
    pub fn new(config: SandboxConfig) -> Self {
        let schemas = config
            .schemas
            .iter()
            .map(|(resource, schema)| {
                let compiled = jsonschema::validator_for(schema).map_err(|e| e.to_string());
                (resource.clone(), compiled)
            })
            .collect();
        let authority = TokenAuthority::new(
            config.clients,
            SigningKey::generate(JwsAlgorithm::Es512),
            ISSUER,
            AuthoritySettings {
                audience: None,
                public_url: config.public_url,
                access_token_lifetime_seconds: config.access_token_lifetime_seconds,
                dpop: true,
                kid_prefix: "sandbox".into(),
            },
        );
        let inner = Inner {
            authority,
            schemas,
            faults: RwLock::new(config.faults),
            store: Mutex::new(store::Store::default()),
            rate_window: Mutex::new(faults::RateWindow::default()),
            stats: Stats::default(),
        };
        Sandbox { inner: Arc::new(inner) }
    }

    /// The sandbox's routes: `/auth/token`, `/.well-known/jwks.json`, the admin routes under
    /// `/_sandbox/`, and the generic resources.
    pub fn router(&self) -> Router {
        let state = self.inner.clone();
        let resources = Router::new()
            .route("/{resource}", get(resources::list).post(resources::create))
            .route("/{resource}/", get(resources::list).post(resources::create))
            .route(
                "/{resource}/{id}",
                get(resources::get_item)
                    .patch(resources::patch_item)
                    .put(resources::put_item)
                    .delete(resources::delete_item),
            )
            .fallback(resources::not_found)
            .layer(axum::middleware::from_fn_with_state(state.clone(), faults::inject));
        let token = self
            .inner
            .authority
            .token_router()
            .layer(axum::middleware::from_fn_with_state(state.clone(), faults::inject_token));
        Router::new()
            .route("/_sandbox/faults", get(faults::get_faults).put(faults::put_faults))
            .route("/_sandbox/stats", get(faults::stats))
            .route("/_sandbox/revoke-tokens", post(revoke_tokens))
            .merge(resources)
            .with_state(state)
            .merge(self.inner.authority.jwks_router())
            .merge(token)
    }

    /// Serves the sandbox on `listener` (HTTP/1.1) until `shutdown` is cancelled, then lets the
    /// open connections finish their current request and returns. Connections chosen by the
    /// `drop_rate` fault are closed without an answer.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let router = self.router();
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!("sandbox accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move {
                        let response = match router.oneshot(request.map(Body::new)).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        };
                        if response.extensions().get::<DropConnection>().is_some() {
                            Err(DroppedByFault)
                        } else {
                            Ok::<_, DroppedByFault>(response)
                        }
                    }
                });
            let stop = shutdown.clone();
            connections.spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = stop.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
            // Reap finished connections so the set does not grow without bound.
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
        Ok(())
    }

    /// Replaces the faults (takes effect for the next call).
    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.inner.faults()
    }

    /// Every live (not soft-deleted) item of `resource` for `tenant_id`, oldest first.
    pub fn items(&self, tenant_id: &str, resource: &str) -> Vec<Value> {
        lock(&self.inner.store).snapshot(tenant_id, resource, false)
    }

    /// Every item of `resource` for `tenant_id`, soft-deleted ones included, oldest first.
    pub fn all_items(&self, tenant_id: &str, resource: &str) -> Vec<Value> {
        lock(&self.inner.store).snapshot(tenant_id, resource, true)
    }

    /// Stores `document` as a new item of `resource` for `tenant_id`, bypassing auth, schema and
    /// faults (for seeding tests and demos); returns the stored item with its system fields.
    pub fn insert(&self, tenant_id: &str, resource: &str, document: Value) -> Value {
        let fields = match document {
            Value::Object(map) => map,
            other => {
                let mut map = serde_json::Map::new();
                map.insert("value".into(), other);
                map
            }
        };
        Value::Object(lock(&self.inner.store).create(tenant_id, resource, fields))
    }

    /// API calls received on resource routes so far (every call, whatever its answer; the token
    /// endpoint and admin routes are not counted) — for requests-per-row measurements.
    pub fn request_count(&self) -> u64 {
        self.inner.stats.requests.load(Ordering::Relaxed)
    }

    /// The counters `GET /_sandbox/stats` reports.
    pub fn stats(&self) -> Value {
        self.inner.stats.to_json(&self.inner.authority)
    }

    /// The public key access tokens are signed with.
    pub fn token_verifying_key(&self) -> VerifyingKey {
        self.inner.authority.verifying_key()
    }
}

/// `POST /_sandbox/revoke-tokens`: every access token issued so far stops working.
async fn revoke_tokens(
    axum::extract::State(app): axum::extract::State<AppState>,
) -> axum::Json<Value> {
    let generation = app.authority.revoke_all();
    axum::Json(json!({"revoked_before_generation": generation}))
}
