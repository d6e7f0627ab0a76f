//! The API client: resource requests to the platform's M2M REST API (`/{resource}/` and
//! `/{resource}/{id}`), with the access token from a [`TokenManager`], bounded concurrency,
//! retries with backoff, `Retry-After`, one re-authentication on 401, ETags and idempotency keys.
//!
//! What it is not: the import modes. Deciding create vs update, batching look-ups and
//! re-applying a change after a 412 belong to the writer built on top of this client.
//!
//! Soft-deleted items answer 404 to [`ApiClient::get`], `patch` and `put`; with the query's
//! `include_deleted=true`, [`ApiClient::get_including_deleted`] reads one and
//! [`ApiClient::restore`] un-deletes it (how a rolled-back transaction undoes its deletes).
//!
//! Retry rules, per request:
//! - 5xx, 408, timeouts and connection errors (including a connection closed without an answer)
//!   are retried with exponential backoff and full jitter, up to `max_attempts` attempts in all;
//! - 429 waits exactly `Retry-After` (seconds or an HTTP date; backoff when absent) and retries;
//! - 401 drops the token and retries once with a fresh one; a second 401 is
//!   [`ApiError::Unauthorized`];
//! - everything else is answered at once with its [`ApiError`].
//!
//! A `POST` is retried safely because it always carries the caller's `Idempotency-Key`. A `PATCH`,
//! `PUT` or `DELETE` whose first attempt landed but whose answer was lost meets a changed ETag on
//! its retry: the caller sees [`ApiError::PreconditionFailed`] (or `NotFound` after a delete) and
//! re-reads, which is the contract's conflict path anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, HeaderMap, IF_MATCH, RETRY_AFTER,
};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tracing::{debug, warn};
use url::Url;

use super::dpop;
pub use super::error::{ApiError, ErrorDomain, FieldError};
use super::error::{AuthError, quote_body};
use super::retry::{Backoff, parse_retry_after};
use super::token::{TokenManager, TokenType, describe};

/// The header carrying the tenant.
pub const TENANT_HEADER: &str = "X-Tenant-ID";
/// The header carrying a create's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// The largest `per_page` the platform accepts.
pub const MAX_PER_PAGE: u32 = 100;
/// A `Retry-After` longer than this is not waited out: the request fails as exhausted.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How the client talks to the platform.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API's base URL (`https://api.example.com`, or with a path prefix).
    pub base_url: Url,
    /// The tenant, sent as `X-Tenant-ID` on every request when set.
    pub tenant_id: Option<String>,
    /// The most HTTP requests in flight at once (default 32).
    pub max_in_flight: usize,
    /// The most attempts per request, the first included (default 8).
    pub max_attempts: u32,
    /// The cap of the first backoff delay (default 100 ms).
    pub initial_backoff: Duration,
    /// The cap of any backoff delay (default 10 s).
    pub max_backoff: Duration,
    /// The timeout of one attempt, connecting to the last byte of the answer (default 30 s).
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// The defaults, for `base_url`.
    pub fn new(base_url: Url) -> Self {
        ClientConfig {
            base_url,
            tenant_id: None,
            max_in_flight: 32,
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff { initial: self.initial_backoff, max: self.max_backoff }
    }
}

impl Default for ClientConfig {
    /// The defaults, for a sandbox on `http://127.0.0.1:8080/`.
    fn default() -> Self {
        ClientConfig::new(Url::parse("http://127.0.0.1:8080/").expect("a constant, valid URL"))
    }
}

/// One page of a list. `total` counts every matching item, not just this page's.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The items of this page, in the requested order.
    pub items: Vec<Item>,
    /// All matching items.
    pub total: u64,
    /// This page's number (1-based).
    pub page: u32,
    /// The page size used.
    pub per_page: u32,
}

/// A list request: filter, order, projection and page.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// The `where` filter as JSON (`{"iban": {"$in": [...]}}`), sent serialized.
    pub filter: Option<Value>,
    /// The `sort` parameter (`-created_at,name`).
    pub sort: Option<String>,
    /// The `fields` to return; `revision_id` is always added (list items' ETags are made of it).
    pub fields: Option<Vec<String>>,
    /// The page (1-based, default 1).
    pub page: u32,
    /// The page size (default and maximum 100).
    pub per_page: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery { filter: None, sort: None, fields: None, page: 1, per_page: MAX_PER_PAGE }
    }
}

/// A resource item as returned by the platform, with the ETag needed to change it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The item's `_id`.
    pub id: String,
    /// The item's ETag, quotes included, ready for `If-Match`: from the `ETag` header, or for
    /// list items `"<revision_id>"` (or the item's `_etag`); empty if the platform gave neither.
    pub etag: String,
    /// The item's JSON object.
    pub body: Map<String, Value>,
}

impl Item {
    /// An item from a JSON object and, for single-item answers, the `ETag` header.
    fn from_json(body: Value, etag_header: Option<&str>) -> Option<Item> {
        let Value::Object(body) = body else { return None };
        let id = match body.get("_id").or_else(|| body.get("id"))? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let etag = match etag_header {
            Some(tag) => tag.to_owned(),
            None => etag_of(&body),
        };
        Some(Item { id, etag, body })
    }
}

/// The ETag of a list item: its `_etag`, else `"<revision_id>"`.
fn etag_of(body: &Map<String, Value>) -> String {
    let quote = |s: &str| {
        if s.starts_with('"') || s.starts_with("W/\"") { s.to_owned() } else { format!("\"{s}\"") }
    };
    for name in ["_etag", "etag", "revision_id", "_rev", "revision"] {
        match body.get(name) {
            Some(Value::String(s)) if !s.is_empty() => return quote(s),
            Some(Value::Number(n)) => return format!("\"{n}\""),
            _ => {}
        }
    }
    String::new()
}

struct Inner {
    config: ClientConfig,
    tokens: TokenManager,
    http: reqwest::Client,
    permits: Semaphore,
    sent: AtomicU64,
}

/// The platform's M2M API as async methods. Cheap to clone (clones share the token, the
/// concurrency bound and the counters); `Send + Sync`.
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.inner.config.base_url.as_str())
            .field("tenant_id", &self.inner.config.tenant_id)
            .field("max_in_flight", &self.inner.config.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// What one request sends, besides the token.
struct Call<'a> {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    if_match: Option<&'a str>,
    idempotency_key: Option<&'a str>,
}

/// A successful answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|_| self.unexpected())
    }

    fn unexpected(&self) -> ApiError {
        ApiError::Unexpected { status: self.status.as_u16(), body: quote_body(&self.text()) }
    }

    fn item(&self) -> Result<Item, ApiError> {
        let etag = self.headers.get(ETAG).and_then(|v| v.to_str().ok());
        Item::from_json(self.json()?, etag).ok_or_else(|| self.unexpected())
    }
}

impl ApiClient {
    /// A client for `config`, authenticating with `tokens`, sending with `http` (build it with
    /// [`ApiClient::http_client`]).
    pub fn new(config: ClientConfig, tokens: TokenManager, http: reqwest::Client) -> Self {
        let permits = Semaphore::new(config.max_in_flight.max(1));
        ApiClient {
            inner: Arc::new(Inner { config, tokens, http, permits, sent: AtomicU64::new(0) }),
        }
    }

    /// A `reqwest::Client` for the platform (and its token endpoint): rustls with the ring
    /// provider and the webpki roots, configured explicitly (no process-wide provider is
    /// installed), HTTP/2 offered by ALPN, the config's timeouts, and a connection pool sized for
    /// `max_in_flight`.
    pub fn http_client(config: &ClientConfig) -> Result<reqwest::Client, ApiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ApiError::Config(format!("TLS set-up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.max_in_flight.max(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("intake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Config(format!("HTTP client: {}", describe(&e))))
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The token manager in use.
    pub fn tokens(&self) -> &TokenManager {
        &self.inner.tokens
    }

    /// Requests sent so far (each HTTP attempt counts; token requests do not, see
    /// [`TokenManager::requests_sent`]), for requests-per-row figures.
    pub fn requests_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// `GET /{resource}/{id}`.
    pub async fn get(&self, resource: &str, id: &str) -> Result<Item, ApiError> {
        let url = self.item_url(resource, id)?;
        let answer = self.execute(self.call(Method::GET, url, None)?).await?;
        answer.item()
    }

    /// `GET /{resource}/{id}?include_deleted=true`: the item even when it is soft-deleted (its
    /// body then has `is_deleted: true`), with the ETag a [`restore`](Self::restore) needs.
    /// [`get`](Self::get) answers [`ApiError::NotFound`] for a soft-deleted item.
    pub async fn get_including_deleted(&self, resource: &str, id: &str) -> Result<Item, ApiError> {
        let url = including_deleted(self.item_url(resource, id)?);
        let answer = self.execute(self.call(Method::GET, url, None)?).await?;
        answer.item()
    }

    /// Un-deletes a soft-deleted item: `PATCH /{resource}/{id}?include_deleted=true` with
    /// `{"is_deleted": false, "deleted_at": null}` and `If-Match: etag` (from
    /// [`get_including_deleted`](Self::get_including_deleted)); answers the item, live again with
    /// the fields it had. The contract lists `is_deleted` and `deleted_at` as ordinary writable
    /// fields; a platform that keeps them read-only answers the item still deleted, which the
    /// caller should check. A stale `etag` is [`ApiError::PreconditionFailed`], as for
    /// [`patch`](Self::patch); a live item is simply patched (it stays live).
    pub async fn restore(&self, resource: &str, id: &str, etag: &str) -> Result<Item, ApiError> {
        let mut body = Map::new();
        body.insert("is_deleted".into(), Value::Bool(false));
        body.insert("deleted_at".into(), Value::Null);
        let url = including_deleted(self.item_url(resource, id)?);
        let mut call = self.call(Method::PATCH, url, Some(&body))?;
        call.if_match = Some(etag);
        self.execute(call).await?.item()
    }

    /// `GET /{resource}/`: one page; `query` holds `where` (as JSON, serialized into the `where`
    /// parameter), `sort`, `fields` (plus `revision_id`, for the items' ETags), `page` and
    /// `per_page` (at most 100).
    pub async fn list(&self, resource: &str, query: &ListQuery) -> Result<Page, ApiError> {
        let mut url = self.collection_url(resource)?;
        let page = query.page.max(1);
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(filter) = &query.filter {
                pairs.append_pair("where", &filter.to_string());
            }
            if let Some(sort) = &query.sort {
                pairs.append_pair("sort", sort);
            }
            if let Some(fields) = &query.fields {
                // The revision is what a list item's ETag is made of: always ask for it.
                let mut fields = fields.join(",");
                if !query.fields.iter().flatten().any(|f| f == "revision_id") {
                    if !fields.is_empty() {
                        fields.push(',');
                    }
                    fields.push_str("revision_id");
                }
                pairs.append_pair("fields", &fields);
            }
            pairs.append_pair("page", &page.to_string());
            pairs.append_pair("per_page", &per_page.to_string());
        }
        let answer = self.execute(self.call(Method::GET, url, None)?).await?;
        let Value::Object(mut body) = answer.json()? else { return Err(answer.unexpected()) };
        let Some(Value::Array(raw_items)) = body.remove("items") else {
            return Err(answer.unexpected());
        };
        let items = raw_items
            .into_iter()
            .map(|v| Item::from_json(v, None))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| answer.unexpected())?;
        let header_number = |name: &str| {
            answer.headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
        };
        let number = |name: &str| body.get(name).and_then(Value::as_u64);
        let total = number("total")
            .or_else(|| header_number("x-total-count"))
            .unwrap_or(items.len() as u64);
        let page = number("page").and_then(|p| u32::try_from(p).ok()).unwrap_or(page);
        let per_page = number("per_page").and_then(|p| u32::try_from(p).ok()).unwrap_or(per_page);
        Ok(Page { items, total, page, per_page })
    }

    /// `POST /{resource}/`; `idempotency_key` is sent as the `Idempotency-Key` header so a
    /// retried create whose answer was lost is not duplicated.
    pub async fn create(
        &self,
        resource: &str,
        body: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<Item, ApiError> {
        let url = self.collection_url(resource)?;
        let mut call = self.call(Method::POST, url, Some(body))?;
        call.idempotency_key = Some(idempotency_key);
        self.execute(call).await?.item()
    }

    /// `PATCH /{resource}/{id}` with `If-Match: etag`: changes the given fields.
    pub async fn patch(
        &self,
        resource: &str,
        id: &str,
        body: &Map<String, Value>,
        etag: &str,
    ) -> Result<Item, ApiError> {
        self.change(Method::PATCH, resource, id, body, etag).await
    }

    /// `PUT /{resource}/{id}` with `If-Match: etag`: replaces the item.
    pub async fn put(
        &self,
        resource: &str,
        id: &str,
        body: &Map<String, Value>,
        etag: &str,
    ) -> Result<Item, ApiError> {
        self.change(Method::PUT, resource, id, body, etag).await
    }

    /// `DELETE /{resource}/{id}` with `If-Match: etag` (the platform soft-deletes).
    pub async fn delete(&self, resource: &str, id: &str, etag: &str) -> Result<(), ApiError> {
        let url = self.item_url(resource, id)?;
        let mut call = self.call(Method::DELETE, url, None)?;
        call.if_match = Some(etag);
        self.execute(call).await.map(|_| ())
    }

    async fn change(
        &self,
        method: Method,
        resource: &str,
        id: &str,
        body: &Map<String, Value>,
        etag: &str,
    ) -> Result<Item, ApiError> {
        let url = self.item_url(resource, id)?;
        let mut call = self.call(method, url, Some(body))?;
        call.if_match = Some(etag);
        self.execute(call).await?.item()
    }

    fn call<'a>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Map<String, Value>>,
    ) -> Result<Call<'a>, ApiError> {
        let body = match body {
            Some(map) => Some(
                serde_json::to_vec(map)
                    .map_err(|e| ApiError::Config(format!("request body: {e}")))?,
            ),
            None => None,
        };
        Ok(Call { method, url, body, if_match: None, idempotency_key: None })
    }

    /// `{base}/{resource}/` — a resource may be nested (`imports/templates`).
    fn collection_url(&self, resource: &str) -> Result<Url, ApiError> {
        self.url_with(resource, None)
    }

    /// `{base}/{resource}/{id}`.
    fn item_url(&self, resource: &str, id: &str) -> Result<Url, ApiError> {
        if id.is_empty() {
            return Err(ApiError::Config(format!("an empty id for resource '{resource}'")));
        }
        self.url_with(resource, Some(id))
    }

    fn url_with(&self, resource: &str, id: Option<&str>) -> Result<Url, ApiError> {
        let segments: Vec<&str> = resource.split('/').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() || segments.iter().any(|s| *s == "." || *s == "..") {
            return Err(ApiError::Config(format!("invalid resource name '{resource}'")));
        }
        let mut url = self.inner.config.base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                ApiError::Config(format!(
                    "the base URL '{}' cannot have paths",
                    self.inner.config.base_url
                ))
            })?;
            path.pop_if_empty().extend(&segments);
            match id {
                Some(id) => path.push(id),
                None => path.push(""),
            };
        }
        Ok(url)
    }

    /// Sends `call` until it succeeds or fails for good (see the module documentation).
    async fn execute(&self, call: Call<'_>) -> Result<Answer, ApiError> {
        let config = &self.inner.config;
        let backoff = config.backoff();
        let max_attempts = config.max_attempts.max(1);
        let mut attempt: u32 = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let token = self.inner.tokens.token().await?;
            let request = self.build(&call, &token.value, token.token_type)?;
            let outcome = {
                let _permit = self
                    .inner
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| ApiError::Config("the request semaphore is closed".into()))?;
                self.inner.sent.fetch_add(1, Ordering::Relaxed);
                let started = std::time::Instant::now();
                let answer = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let headers = response.headers().clone();
                        response.bytes().await.map(|b| Answer { status, headers, body: b.to_vec() })
                    }
                    Err(e) => Err(e),
                };
                if call.method != Method::GET {
                    let outcome = match &answer {
                        Ok(a) => format!("{}xx", a.status.as_u16() / 100),
                        Err(_) => "error".to_owned(),
                    };
                    crate::metrics::observe_platform_write(
                        call.method.as_str(),
                        &outcome,
                        started.elapsed().as_secs_f64(),
                    );
                }
                answer
            };
            let (failure, delay) = match outcome {
                Ok(answer) => {
                    let status = answer.status;
                    debug!(method = %call.method, path = call.url.path(), status = status.as_u16(),
                        attempt, "m2m request");
                    if status.is_success() {
                        return Ok(answer);
                    }
                    if status == StatusCode::UNAUTHORIZED {
                        if reauthenticated {
                            return Err(ApiError::Unauthorized { detail: detail_of(&answer) });
                        }
                        warn!(method = %call.method, path = call.url.path(),
                            "401 from the platform; renewing the token and retrying once");
                        reauthenticated = true;
                        self.inner.tokens.invalidate(&token);
                        // The retry with a fresh token is not counted against the budget.
                        attempt -= 1;
                        continue;
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let retry_after = answer
                            .headers
                            .get(RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, SystemTime::now()));
                        match retry_after {
                            Some(wait) if wait > MAX_RETRY_AFTER => {
                                return Err(ApiError::Exhausted {
                                    attempts: attempt,
                                    last: format!(
                                        "HTTP 429 asking to wait {}s, longer than intake waits",
                                        wait.as_secs()
                                    ),
                                });
                            }
                            Some(wait) => ("HTTP 429".to_owned(), wait),
                            None => ("HTTP 429".to_owned(), backoff.delay(attempt)),
                        }
                    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                        (format!("HTTP {}", status.as_u16()), backoff.delay(attempt))
                    } else {
                        return Err(error_for(&answer));
                    }
                }
                Err(e) if e.is_builder() => {
                    return Err(ApiError::Config(format!(
                        "cannot build the request: {}",
                        describe(&e)
                    )));
                }
                Err(e) => (describe(&e), backoff.delay(attempt)),
            };
            if attempt >= max_attempts {
                warn!(method = %call.method, path = call.url.path(), attempt, last = %failure,
                    "m2m request failed; no attempts left");
                return Err(ApiError::Exhausted { attempts: attempt, last: failure });
            }
            warn!(method = %call.method, path = call.url.path(), attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), failure = %failure,
                "m2m request failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt's request: token, fresh DPoP proof, tenant, idempotency key, If-Match, body.
    fn build(
        &self,
        call: &Call<'_>,
        token: &str,
        token_type: TokenType,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let config = &self.inner.config;
        let authorization = match token_type {
            TokenType::Bearer => format!("Bearer {token}"),
            TokenType::Dpop => format!("DPoP {token}"),
        };
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .timeout(config.request_timeout)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, authorization);
        if token_type == TokenType::Dpop {
            let key = self.inner.tokens.dpop_key().ok_or_else(|| {
                ApiError::Auth(AuthError::Signing("a DPoP-bound token but no DPoP key".into()))
            })?;
            let proof = dpop::proof(key, call.method.as_str(), &call.url, Some(token))
                .map_err(|e| ApiError::Auth(AuthError::Signing(e.to_string())))?;
            request = request.header("DPoP", proof);
        }
        if let Some(tenant) = &config.tenant_id {
            request = request.header(TENANT_HEADER, tenant);
        }
        if let Some(key) = call.idempotency_key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key);
        }
        if let Some(etag) = call.if_match {
            request = request.header(IF_MATCH, etag);
        }
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        Ok(request)
    }
}

/// `url` with `include_deleted=true`, which lets a request reach a soft-deleted item.
fn including_deleted(mut url: Url) -> Url {
    url.query_pairs_mut().append_pair("include_deleted", "true");
    url
}

/// The error for a final (non-retried) status.
fn error_for(answer: &Answer) -> ApiError {
    let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
    match answer.status.as_u16() {
        400 => ApiError::BadRequest { detail: detail_of(answer) },
        403 => ApiError::Forbidden { missing: missing_capabilities(body.as_ref()) },
        404 => ApiError::NotFound,
        409 => ApiError::Conflict { detail: detail_of(answer) },
        412 => {
            let etag = answer.headers.get(ETAG).and_then(|v| v.to_str().ok());
            // The current item, as `{"detail": …, "current": item}` or as the body itself.
            let current = body
                .and_then(|mut b| match b.get_mut("current").map(Value::take) {
                    Some(current @ Value::Object(_)) => Some(current),
                    _ => b.get("_id").is_some().then_some(b),
                })
                .and_then(|b| Item::from_json(b, etag));
            ApiError::PreconditionFailed { current }
        }
        422 => ApiError::Validation {
            status: 422,
            errors: field_errors(body.as_ref(), &answer.text()),
        },
        428 => ApiError::PreconditionRequired,
        _ => answer.unexpected(),
    }
}

/// A short human text of an error body: its `detail` (string or JSON), `message`, or the body.
fn detail_of(answer: &Answer) -> String {
    let text = answer.text();
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) else {
        return if text.trim().is_empty() {
            "no details given".to_owned()
        } else {
            quote_body(&text)
        };
    };
    let detail = ["detail", "message", "error_description", "error"]
        .iter()
        .find_map(|k| map.get(*k))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or(text);
    quote_body(&detail)
}

/// The missing capabilities of a 403: `{"detail": {"error": "missing_capabilities",
/// "missing": [...]}}` (also accepted without the `detail` wrapper).
fn missing_capabilities(body: Option<&Value>) -> Vec<String> {
    let Some(body) = body else { return Vec::new() };
    let holder = match body.get("detail") {
        Some(detail @ Value::Object(_)) => detail,
        _ => body,
    };
    holder
        .get("missing")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The field errors of a 422, from FastAPI's `{"detail": [{"loc", "msg", "type"}]}`, from
/// `{"errors": [{"field"|"path"|"loc", "message"|"msg", "code"|"type"|"kind"}]}` (also under
/// `detail`), from a field → message(s) object, or the body as one record-level error.
fn field_errors(body: Option<&Value>, text: &str) -> Vec<FieldError> {
    let whole = |message: String| vec![FieldError { field: None, message, kind: None }];
    let Some(body) = body else {
        return whole(if text.trim().is_empty() {
            "the platform refused the record without details".to_owned()
        } else {
            quote_body(text)
        });
    };
    let list = match body {
        Value::Array(list) => Some(list),
        Value::Object(map) => ["detail", "errors"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array))
            .or_else(|| map.get("detail").and_then(|d| d.get("errors")).and_then(Value::as_array)),
        _ => None,
    };
    if let Some(list) = list {
        let errors: Vec<FieldError> = list.iter().map(field_error).collect();
        if !errors.is_empty() {
            return errors;
        }
    }
    match body {
        Value::Object(map) => {
            if let Some(Value::String(s)) = map.get("detail").or_else(|| map.get("message")) {
                return whole(s.clone());
            }
            // {"errors": {"amount": ["must be positive"]}} or {"detail": {"amount": "…"}}
            let by_field =
                ["errors", "detail"].iter().find_map(|k| map.get(*k).and_then(Value::as_object));
            if let Some(by_field) = by_field {
                let errors: Vec<FieldError> = by_field
                    .iter()
                    .flat_map(|(field, messages)| {
                        let messages: Vec<String> = match messages {
                            Value::Array(a) => a.iter().map(message_text).collect(),
                            other => vec![message_text(other)],
                        };
                        messages.into_iter().map(move |message| FieldError {
                            field: Some(field.clone()),
                            message,
                            kind: None,
                        })
                    })
                    .collect();
                if !errors.is_empty() {
                    return errors;
                }
            }
            whole(quote_body(text))
        }
        other => whole(message_text(other)),
    }
}

fn message_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One entry of an error list.
fn field_error(entry: &Value) -> FieldError {
    let Value::Object(map) = entry else {
        return FieldError { field: None, message: message_text(entry), kind: None };
    };
    let field = if let Some(Value::Array(loc)) = map.get("loc") {
        let parts: Vec<String> = loc
            .iter()
            .enumerate()
            .filter(|(i, part)| {
                // FastAPI puts where the value came from first: body, query, path, header.
                !(*i == 0 && matches!(part.as_str(), Some("body" | "query" | "path" | "header")))
            })
            .map(|(_, part)| message_text(part))
            .collect();
        (!parts.is_empty()).then(|| parts.join("."))
    } else {
        ["field", "path", "instance_path", "instancePath", "pointer", "loc"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str))
            .map(|p| p.trim_start_matches('/').replace('/', "."))
            .filter(|p| !p.is_empty())
    };
    let message = ["msg", "message", "detail", "error"]
        .iter()
        .find_map(|k| map.get(*k))
        .map(message_text)
        .unwrap_or_else(|| Value::Object(map.clone()).to_string());
    let kind = ["type", "kind", "code", "rule", "keyword"]
        .iter()
        .find_map(|k| map.get(*k))
        .map(message_text);
    FieldError { field, message, kind }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn fastapi_validation_errors() {
        let body = json!({"detail": [
            {"loc": ["body", "amount"], "msg": "Input should be greater than 0", "type": "greater_than"},
            {"loc": ["body", "lines", 0, "qty"], "msg": "Field required", "type": "missing"},
            {"loc": ["body"], "msg": "Invalid JSON", "type": "json_invalid"}
        ]});
        let errors = field_errors(Some(&body), "");
        assert_eq!(
            errors,
            vec![
                FieldError {
                    field: Some("amount".into()),
                    message: "Input should be greater than 0".into(),
                    kind: Some("greater_than".into())
                },
                FieldError {
                    field: Some("lines.0.qty".into()),
                    message: "Field required".into(),
                    kind: Some("missing".into())
                },
                FieldError {
                    field: None,
                    message: "Invalid JSON".into(),
                    kind: Some("json_invalid".into())
                },
            ]
        );
    }

    #[test]
    fn other_validation_shapes() {
        let e = field_errors(
            Some(&json!({"errors": [{"field": "iban", "message": "bad", "code": "iban"}]})),
            "",
        );
        assert_eq!(e[0].field.as_deref(), Some("iban"));
        assert_eq!(e[0].kind.as_deref(), Some("iban"));
        let e = field_errors(
            Some(&json!({"detail": {"errors": [{"instance_path": "/a/b", "message": "x"}]}})),
            "",
        );
        assert_eq!(e[0].field.as_deref(), Some("a.b"));
        let e = field_errors(Some(&json!({"errors": {"amount": ["too small", "not even"]}})), "");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].field.as_deref(), Some("amount"));
        let e = field_errors(Some(&json!({"detail": "Body is not valid"})), "");
        assert_eq!(
            e,
            vec![FieldError { field: None, message: "Body is not valid".into(), kind: None }]
        );
        let e = field_errors(None, "plain text refusal");
        assert_eq!(e[0].message, "plain text refusal");
        let e = field_errors(None, "");
        assert!(e[0].message.contains("without details"));
    }

    #[test]
    fn forbidden_lists_missing_capabilities() {
        let a = answer(
            403,
            r#"{"detail":{"error":"missing_capabilities","missing":["payments:create","payments:update"]}}"#,
        );
        let ApiError::Forbidden { missing } = error_for(&a) else { panic!() };
        assert_eq!(missing, ["payments:create", "payments:update"]);
        let ApiError::Forbidden { missing } = error_for(&answer(403, "nope")) else { panic!() };
        assert!(missing.is_empty());
    }

    #[test]
    fn statuses_map_to_variants() {
        assert!(matches!(error_for(&answer(404, "{}")), ApiError::NotFound));
        assert!(matches!(error_for(&answer(428, "{}")), ApiError::PreconditionRequired));
        assert!(matches!(
            error_for(&answer(409, r#"{"detail":"children exist"}"#)),
            ApiError::Conflict { detail } if detail == "children exist"
        ));
        assert!(matches!(
            error_for(&answer(400, r#"{"detail":"Invalid JSON in where"}"#)),
            ApiError::BadRequest { detail } if detail.contains("where")
        ));
        assert!(matches!(
            error_for(&answer(412, "{}")),
            ApiError::PreconditionFailed { current: None }
        ));
        let mut a = answer(412, r#"{"_id":"abc","revision_id":"r2","name":"x"}"#);
        a.headers.insert(ETAG, "\"r2\"".parse().unwrap());
        let ApiError::PreconditionFailed { current: Some(item) } = error_for(&a) else { panic!() };
        assert_eq!((item.id.as_str(), item.etag.as_str()), ("abc", "\"r2\""));
        let a =
            answer(412, r#"{"detail":"ETag mismatch","current":{"_id":"abc","revision_id":"r3"}}"#);
        let ApiError::PreconditionFailed { current: Some(item) } = error_for(&a) else { panic!() };
        assert_eq!((item.id.as_str(), item.etag.as_str()), ("abc", "\"r3\""));
        assert!(matches!(
            error_for(&answer(418, "teapot")),
            ApiError::Unexpected { status: 418, .. }
        ));
    }

    #[test]
    fn list_item_etags() {
        let item = |v: Value| Item::from_json(v, None).unwrap();
        assert_eq!(item(json!({"_id": "a", "revision_id": "r1"})).etag, "\"r1\"");
        assert_eq!(item(json!({"_id": "a", "revision_id": 7})).etag, "\"7\"");
        assert_eq!(item(json!({"_id": "a", "_etag": "\"x\""})).etag, "\"x\"");
        assert_eq!(item(json!({"_id": "a"})).etag, "");
        assert!(Item::from_json(json!({"name": "no id"}), None).is_none());
        assert_eq!(Item::from_json(json!({"_id": "a"}), Some("W/\"z\"")).unwrap().etag, "W/\"z\"");
    }

    #[test]
    fn urls_for_plain_nested_and_prefixed_resources() {
        let client = |base: &str| {
            let config = ClientConfig::new(Url::parse(base).unwrap());
            let http = ApiClient::http_client(&config).unwrap();
            let tokens = TokenManager::new(
                http.clone(),
                super::super::token::ClientCredentials {
                    token_url: Url::parse("http://x/auth/token").unwrap(),
                    client_id: "c".into(),
                    kid: "k".into(),
                    key: super::super::jws::SigningKey::generate(
                        super::super::jws::JwsAlgorithm::Es256,
                    ),
                    scopes: vec![],
                    dpop_key: None,
                },
            );
            ApiClient::new(config, tokens, http)
        };
        let c = client("http://h:1");
        assert_eq!(c.collection_url("payments").unwrap().as_str(), "http://h:1/payments/");
        assert_eq!(
            c.item_url("payments", "a b/c").unwrap().as_str(),
            "http://h:1/payments/a%20b%2Fc"
        );
        assert_eq!(
            c.collection_url("imports/templates").unwrap().as_str(),
            "http://h:1/imports/templates/"
        );
        assert_eq!(
            including_deleted(c.item_url("payments", "1").unwrap()).as_str(),
            "http://h:1/payments/1?include_deleted=true"
        );
        let c = client("https://h/api/v1/");
        assert_eq!(c.item_url("payments", "1").unwrap().as_str(), "https://h/api/v1/payments/1");
        assert!(c.collection_url("../admin").is_err());
        assert!(c.collection_url("").is_err());
        assert!(c.item_url("payments", "").is_err());
    }

    #[test]
    fn defaults() {
        let c = ClientConfig::default();
        assert_eq!(c.base_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!((c.max_in_flight, c.max_attempts), (32, 8));
        assert_eq!(c.initial_backoff, Duration::from_millis(100));
        assert_eq!(c.max_backoff, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        let q = ListQuery::default();
        assert_eq!((q.page, q.per_page), (1, 100));
    }
}
