//! The token manager: client credentials with a `private_key_jwt` assertion (RFC 7523), the
//! access token cached and renewed shortly before it expires, one renewal at a time however many
//! tasks ask, and optional DPoP binding (RFC 9449).
//!
//! What it is not: a general OAuth client. It speaks the platform's documented token endpoint
//! (`POST /auth/token`, `grant_type=client_credentials`) and nothing else.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, RETRY_AFTER};
use serde_json::{Map, Value, json};
use tracing::{debug, warn};
use url::Url;

pub use super::error::AuthError;
use super::error::quote_body;
use super::jws::{self, SigningKey};
use super::retry::{Backoff, parse_retry_after};
use super::{dpop, dpop::random_jti, dpop::unix_now};

/// The `client_assertion_type` of a JWT client assertion.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The lifetime of a client assertion (`exp - iat`); the platform accepts at most 300 s.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);
/// By default a token is renewed when less than this much of its life remains.
pub const DEFAULT_RENEWAL_MARGIN: Duration = Duration::from_secs(60);
/// Attempts per token request on 5xx, short 429s and transport errors.
const TOKEN_MAX_ATTEMPTS: u32 = 4;
/// Backoff between those attempts.
const TOKEN_BACKOFF: Backoff =
    Backoff { initial: Duration::from_millis(250), max: Duration::from_secs(4) };
/// A 429 from the token endpoint with a `Retry-After` up to this is waited out and retried; a
/// longer one (the 15-minute lockout) is reported as [`AuthError::Locked`].
const TOKEN_MAX_WAIT: Duration = Duration::from_secs(10);
/// A 429 without `Retry-After` is reported with this wait.
const DEFAULT_LOCKOUT: Duration = Duration::from_secs(60);
/// The lifetime assumed when the token response has no `expires_in` (the spec's default).
const DEFAULT_EXPIRES_IN: u64 = 900;
/// How long a refused token request (a configuration problem) is answered from memory.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// A token with less than this left is not handed out even when renewal fails.
const MIN_USABLE_LIFE: Duration = Duration::from_secs(2);

/// What the client authenticates with. The private keys are never logged (their `Debug` names
/// the curve only).
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The token endpoint, e.g. `https://api.example.com/auth/token`. Also the assertion's `aud`,
    /// exactly as written here.
    pub token_url: Url,
    /// The client's `client_id` (the assertion's `iss` and `sub`).
    pub client_id: String,
    /// The `kid` of the registered public key matching `key`.
    pub kid: String,
    /// The private key the assertion is signed with; its curve picks ES256, ES384 or ES512.
    pub key: SigningKey,
    /// The capabilities requested as scopes (space-joined; none requested when empty).
    pub scopes: Vec<String>,
    /// A separate key for DPoP proofs; `Some` makes every token DPoP-bound.
    pub dpop_key: Option<SigningKey>,
}

/// How an access token must be presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: DPoP <token>` plus a `DPoP` proof header on every request.
    Dpop,
}

/// An access token. Its `Debug` output hides the value.
#[derive(Clone)]
pub struct AccessToken {
    /// The token itself. Never log it.
    pub value: String,
    /// How to present it.
    pub token_type: TokenType,
    /// When it expires (measured from when it was requested, so slightly early).
    pub expires_at: Instant,
    /// The scopes granted (space-separated), as the platform reported them.
    pub scope: String,
}

impl AccessToken {
    /// The `Authorization` header value: `Bearer <token>` or `DPoP <token>`.
    pub fn authorization(&self) -> String {
        match self.token_type {
            TokenType::Bearer => format!("Bearer {}", self.value),
            TokenType::Dpop => format!("DPoP {}", self.value),
        }
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The cached token and what the last renewal did.
#[derive(Default)]
struct Cache {
    /// The current token and its lifetime as granted.
    current: Option<(AccessToken, Duration)>,
    /// Bumped by every finished renewal attempt, so tasks that waited for one can tell.
    generation: u64,
    /// The error of the last renewal and when it happened, if it failed.
    last_error: Option<(AuthError, Instant)>,
}

struct Inner {
    http: reqwest::Client,
    credentials: ClientCredentials,
    /// Renew when less than this (in ms) remains (capped at half the token's lifetime).
    renewal_margin_ms: AtomicU64,
    cache: Mutex<Cache>,
    /// Held while a renewal is in flight: the single flight.
    renewal: tokio::sync::Mutex<()>,
    requests: AtomicU64,
}

/// Obtains and caches access tokens. Cheap to clone (all clones share one cache); `Send + Sync`.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("client_id", &self.inner.credentials.client_id)
            .field("token_url", &self.inner.credentials.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// A token manager for `credentials`, making its token requests with `http` (build it with
    /// [`ApiClient::http_client`](super::client::ApiClient::http_client)).
    pub fn new(http: reqwest::Client, credentials: ClientCredentials) -> Self {
        TokenManager {
            inner: Arc::new(Inner {
                http,
                credentials,
                renewal_margin_ms: AtomicU64::new(millis(DEFAULT_RENEWAL_MARGIN)),
                cache: Mutex::new(Cache::default()),
                renewal: tokio::sync::Mutex::new(()),
                requests: AtomicU64::new(0),
            }),
        }
    }

    /// Renew when less than `margin` of a token's life remains (default 60 s; never more than
    /// half the token's lifetime, so a short-lived token is not renewed on every call). Applies
    /// to every clone of this manager.
    pub fn with_renewal_margin(self, margin: Duration) -> Self {
        self.inner.renewal_margin_ms.store(millis(margin), Ordering::Relaxed);
        self
    }

    /// The credentials this manager authenticates with.
    pub fn credentials(&self) -> &ClientCredentials {
        &self.inner.credentials
    }

    /// The DPoP key, when tokens are DPoP-bound.
    pub fn dpop_key(&self) -> Option<&SigningKey> {
        self.inner.credentials.dpop_key.as_ref()
    }

    /// Token requests sent so far (each attempt counts).
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `token` (granted for `lifetime`) is outside its renewal window at `now`.
    fn is_fresh(&self, token: &AccessToken, lifetime: Duration, now: Instant) -> bool {
        let margin = Duration::from_millis(self.inner.renewal_margin_ms.load(Ordering::Relaxed))
            .min(lifetime / 2);
        token.expires_at.checked_duration_since(now).is_some_and(|left| left > margin)
    }

    /// The cached token if it is outside its renewal window.
    fn fresh(&self, cache: &Cache, now: Instant) -> Option<AccessToken> {
        cache
            .current
            .as_ref()
            .filter(|(token, lifetime)| self.is_fresh(token, *lifetime, now))
            .map(|(token, _)| token.clone())
    }

    /// A valid token: the cached one while more than the renewal margin (60 s) of its life
    /// remains, else a new one. Exactly one renewal is in flight however many tasks ask at once:
    /// while it runs, tasks holding a still-valid token keep using it and the others wait for
    /// the result (success or error) of that one renewal. A renewal that fails for a transient
    /// reason (5xx, network, rate limit) falls back to the old token while it is still valid. A
    /// refusal is answered from memory for 5 s, and a lockout until its `Retry-After` is over,
    /// so callers do not push the client into (or further into) the platform's lockout.
    ///
    /// The assertion is signed ES256/384/512 per the key, header `{alg, kid, typ: "JWT"}`,
    /// claims `iss = sub = client_id`, `aud = token_url` exactly, a random 128-bit hex `jti`,
    /// `iat = now`, `exp = now + 60`.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let (usable_old, generation_seen) = {
            let cache = self.cache();
            let now = Instant::now();
            if let Some(token) = self.fresh(&cache, now) {
                return Ok(token);
            }
            let usable_old = usable(&cache, now);
            if let (None, Some(error)) = (&usable_old, remembered_failure(&cache, now)) {
                return Err(error);
            }
            (usable_old, cache.generation)
        };
        let _renewing = match &usable_old {
            // A valid token in hand: renew only if nobody else is; otherwise keep using it.
            Some(old) => match self.inner.renewal.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(old.clone()),
            },
            None => self.inner.renewal.lock().await,
        };
        {
            let cache = self.cache();
            let now = Instant::now();
            if let Some(token) = self.fresh(&cache, now) {
                return Ok(token);
            }
            if cache.generation != generation_seen {
                // A renewal finished while we waited, and failed: share its outcome rather than
                // hammering the endpoint (five failures lock the client out).
                if let Some((error, _)) = &cache.last_error {
                    if let (true, Some(old)) = (error.is_retryable(), usable(&cache, now)) {
                        return Ok(old);
                    }
                    return Err(error.clone());
                }
            }
        }
        let result = self.fetch().await;
        let mut cache = self.cache();
        cache.generation += 1;
        match result {
            Ok((token, lifetime)) => {
                cache.current = Some((token.clone(), lifetime));
                cache.last_error = None;
                Ok(token)
            }
            Err(error) => {
                cache.last_error = Some((error.clone(), Instant::now()));
                match usable(&cache, Instant::now()) {
                    Some(old) if error.is_retryable() => {
                        warn!(client_id = %self.inner.credentials.client_id, %error,
                            "token renewal failed; using the current token while it is valid");
                        Ok(old)
                    }
                    _ => Err(error),
                }
            }
        }
    }

    /// Drops the cached token if it is still `stale` (after a 401), so the next
    /// [`token`](Self::token) call re-authenticates. A token already replaced is left alone.
    pub fn invalidate(&self, stale: &AccessToken) {
        let mut cache = self.cache();
        if cache.current.as_ref().is_some_and(|(current, _)| current.value == stale.value) {
            debug!(client_id = %self.inner.credentials.client_id, "access token invalidated");
            cache.current = None;
        }
    }

    /// The signed client assertion for one token request.
    fn assertion(&self) -> Result<String, AuthError> {
        let c = &self.inner.credentials;
        let mut header = Map::new();
        header.insert("kid".into(), Value::String(c.kid.clone()));
        header.insert("typ".into(), Value::String("JWT".into()));
        let iat = unix_now();
        let claims = json!({
            "iss": c.client_id,
            "sub": c.client_id,
            "aud": c.token_url.as_str(),
            "jti": random_jti(),
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
        });
        jws::sign(header, &claims, &c.key).map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// Requests a new token, retrying 5xx, short 429s and transport errors with backoff.
    async fn fetch(&self) -> Result<(AccessToken, Duration), AuthError> {
        let c = &self.inner.credentials;
        let scope = c.scopes.join(" ");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let assertion = self.assertion()?;
            let mut form = vec![
                ("grant_type", "client_credentials"),
                ("client_id", c.client_id.as_str()),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ];
            if !scope.is_empty() {
                form.push(("scope", scope.as_str()));
            }
            let mut request = self
                .inner
                .http
                .post(c.token_url.clone())
                .header(ACCEPT, "application/json")
                .form(&form);
            if let Some(key) = &c.dpop_key {
                let proof = dpop::proof(key, "POST", &c.token_url, None)
                    .map_err(|e| AuthError::Signing(e.to_string()))?;
                request = request.header("DPoP", proof);
            }
            debug!(client_id = %c.client_id, token_url = %c.token_url, attempt,
                "requesting an access token");
            let started = Instant::now();
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    response.text().await.map(|body| (status, retry_after, body))
                }
                Err(e) => Err(e),
            };
            let (status, retry_after, body) = match answer {
                Ok(answer) => answer,
                Err(e) if e.is_builder() => return Err(AuthError::Transport(describe(&e))),
                Err(e) => {
                    let description = describe(&e);
                    if attempt >= TOKEN_MAX_ATTEMPTS {
                        return Err(AuthError::Transport(description));
                    }
                    let delay = TOKEN_BACKOFF.delay(attempt);
                    warn!(attempt, delay_ms = delay.as_millis() as u64, error = %description,
                        "token request failed; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            if status.is_success() {
                return self.parse_token(status, &body, started);
            }
            let (code, description) = oauth_error(&body);
            let retry = match (status, code.as_deref()) {
                (StatusCode::TOO_MANY_REQUESTS, _) => {
                    let wait = retry_after.unwrap_or(DEFAULT_LOCKOUT);
                    if wait > TOKEN_MAX_WAIT || attempt >= TOKEN_MAX_ATTEMPTS {
                        return Err(AuthError::Locked { retry_after: wait });
                    }
                    wait
                }
                (s, _) if s.is_server_error() => {
                    if attempt >= TOKEN_MAX_ATTEMPTS {
                        return Err(AuthError::Unavailable {
                            attempts: attempt,
                            description: format!("HTTP {}: {description}", s.as_u16()),
                        });
                    }
                    retry_after.unwrap_or_else(|| TOKEN_BACKOFF.delay(attempt))
                }
                (_, Some(code)) => return Err(auth_error(status, code, description, &body)),
                _ => {
                    return Err(AuthError::Unexpected {
                        status: status.as_u16(),
                        body: quote_body(&body),
                    });
                }
            };
            warn!(
                attempt,
                status = status.as_u16(),
                delay_ms = retry.as_millis() as u64,
                "token endpoint answered with a transient error; retrying"
            );
            tokio::time::sleep(retry).await;
        }
    }

    /// Reads a successful token response. The body is never quoted (it holds the token).
    fn parse_token(
        &self,
        status: StatusCode,
        body: &str,
        started: Instant,
    ) -> Result<(AccessToken, Duration), AuthError> {
        let malformed = |what: &str| AuthError::Unexpected {
            status: status.as_u16(),
            body: format!("token response {what} (body not shown: it may hold a token)"),
        };
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
            return Err(malformed("is not a JSON object"));
        };
        let Some(value) = map.get("access_token").and_then(Value::as_str) else {
            return Err(malformed("has no access_token"));
        };
        let token_type = match map.get("token_type").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("bearer") => TokenType::Bearer,
            Some(t) if t.eq_ignore_ascii_case("dpop") => TokenType::Dpop,
            Some(_) => return Err(malformed("has an unknown token_type")),
            None => return Err(malformed("has no token_type")),
        };
        if token_type == TokenType::Dpop && self.inner.credentials.dpop_key.is_none() {
            return Err(malformed("is DPoP-bound but no DPoP key was configured"));
        }
        if token_type == TokenType::Bearer && self.inner.credentials.dpop_key.is_some() {
            warn!("a DPoP proof was sent but the platform issued a Bearer token");
        }
        let expires_in = match map.get("expires_in") {
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| malformed("has an invalid expires_in"))?,
            None => {
                debug!("token response without expires_in; assuming {DEFAULT_EXPIRES_IN}s");
                DEFAULT_EXPIRES_IN
            }
        };
        let lifetime = Duration::from_secs(expires_in);
        let scope = map.get("scope").and_then(Value::as_str).unwrap_or_default().to_owned();
        debug!(client_id = %self.inner.credentials.client_id, expires_in, ?token_type, %scope,
            "access token obtained");
        Ok((
            AccessToken {
                value: value.to_owned(),
                token_type,
                expires_at: started + lifetime,
                scope,
            },
            lifetime,
        ))
    }
}

/// A recent failure that asking again now would only repeat: a refusal (`invalid_client`,
/// `invalid_grant`, …) within [`FAILURE_MEMORY`], or a lockout until its `Retry-After` is over.
/// Asking again would count towards the platform's lockout without any chance of success.
fn remembered_failure(cache: &Cache, now: Instant) -> Option<AuthError> {
    let (error, at) = cache.last_error.as_ref()?;
    let elapsed = now.saturating_duration_since(*at);
    match error {
        AuthError::Locked { retry_after } => retry_after
            .checked_sub(elapsed)
            .filter(|left| !left.is_zero())
            .map(|left| AuthError::Locked { retry_after: left }),
        e if !e.is_retryable() && elapsed < FAILURE_MEMORY => Some(e.clone()),
        _ => None,
    }
}

/// The current token if it can still be used at `now` (even inside its renewal window).
fn usable(cache: &Cache, now: Instant) -> Option<AccessToken> {
    cache
        .current
        .as_ref()
        .filter(|(t, _)| {
            t.expires_at.checked_duration_since(now).is_some_and(|l| l > MIN_USABLE_LIFE)
        })
        .map(|(t, _)| t.clone())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The `error` and `error_description` of an OAuth error body (RFC 6749 §5.2).
fn oauth_error(body: &str) -> (Option<String>, String) {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => {
            let code = map.get("error").and_then(Value::as_str).map(str::to_owned);
            let description = map
                .get("error_description")
                .and_then(Value::as_str)
                .map(quote_body)
                .unwrap_or_else(|| "no description given".to_owned());
            (code, description)
        }
        _ => (None, quote_body(body)),
    }
}

/// Maps an OAuth error code to its [`AuthError`].
fn auth_error(status: StatusCode, code: &str, description: String, body: &str) -> AuthError {
    match code {
        "invalid_request" | "unsupported_grant_type" => AuthError::InvalidRequest { description },
        "invalid_client" | "unauthorized_client" => AuthError::InvalidClient { description },
        "invalid_grant" => AuthError::InvalidGrant { description },
        "invalid_scope" => AuthError::InvalidScope { description },
        "invalid_dpop_proof" | "use_dpop_nonce" => AuthError::InvalidDpopProof { description },
        _ => AuthError::Unexpected { status: status.as_u16(), body: quote_body(body) },
    }
}

/// A reqwest error with its causes ("error sending request: connection closed before …").
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if error.is_timeout() && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m2m::jws::{JwsAlgorithm, decode};

    fn manager(alg: JwsAlgorithm) -> TokenManager {
        TokenManager::new(
            crate::m2m::client::ApiClient::http_client(&crate::m2m::client::ClientConfig::default())
                .unwrap(),
            ClientCredentials {
                token_url: Url::parse("https://api.example.com/auth/token").unwrap(),
                client_id: "acme-integration".into(),
                kid: "2026-04-primary".into(),
                key: SigningKey::generate(alg),
                scopes: vec!["payments:read".into()],
                dpop_key: None,
            },
        )
    }

    #[test]
    fn assertion_has_the_required_header_and_claims() {
        for alg in JwsAlgorithm::ALL {
            let m = manager(alg);
            let a = decode(&m.assertion().unwrap()).unwrap();
            a.verify(&m.credentials().key.verifying_key(), &[alg]).unwrap();
            assert_eq!(a.header["alg"], alg.as_str());
            assert_eq!(a.header["kid"], "2026-04-primary");
            assert_eq!(a.header["typ"], "JWT");
            assert_eq!(a.claims["iss"], "acme-integration");
            assert_eq!(a.claims["sub"], "acme-integration");
            assert_eq!(a.claims["aud"], "https://api.example.com/auth/token");
            let iat = a.claims["iat"].as_u64().unwrap();
            assert_eq!(a.claims["exp"].as_u64().unwrap(), iat + 60);
            assert!(iat.abs_diff(unix_now()) <= 2);
            let jti = a.claims["jti"].as_str().unwrap();
            assert_eq!(jti.len(), 32);
            let b = decode(&m.assertion().unwrap()).unwrap();
            assert_ne!(b.claims["jti"].as_str().unwrap(), jti, "jti must be unique");
        }
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = AccessToken {
            value: "eyJ.secret.token".into(),
            token_type: TokenType::Dpop,
            expires_at: Instant::now(),
            scope: "a:b".into(),
        };
        let text = format!("{t:?}");
        assert!(!text.contains("secret") && text.contains("<redacted>"), "{text}");
        assert_eq!(t.authorization(), "DPoP eyJ.secret.token");
    }

    #[test]
    fn oauth_errors_map_to_their_variants() {
        let body = r#"{"error":"invalid_client","error_description":"No active key with kid 'x'"}"#;
        let (code, description) = oauth_error(body);
        let err = auth_error(StatusCode::UNAUTHORIZED, code.as_deref().unwrap(), description, body);
        assert!(
            matches!(&err, AuthError::InvalidClient { description } if description.contains("kid 'x'"))
        );
        assert!(err.to_string().contains("check the client_id, the kid"));
        for (code, check) in [
            ("invalid_request", "client_assertion_type"),
            ("invalid_grant", "clock"),
            ("invalid_scope", "capabilities"),
            ("invalid_dpop_proof", "DPoP"),
        ] {
            let e = auth_error(StatusCode::BAD_REQUEST, code, "d".into(), "{}");
            assert!(e.to_string().contains(check), "{code}: {e}");
        }
        assert!(matches!(
            auth_error(StatusCode::BAD_REQUEST, "weird", "d".into(), "{}"),
            AuthError::Unexpected { status: 400, .. }
        ));
    }

    #[test]
    fn refusals_and_lockouts_are_remembered_for_a_while() {
        let now = Instant::now();
        let cache_with = |error: AuthError, ago: u64| Cache {
            last_error: Some((error, now - Duration::from_secs(ago))),
            ..Cache::default()
        };
        let refusal = AuthError::InvalidClient { description: "x".into() };
        assert!(remembered_failure(&cache_with(refusal.clone(), 1), now).is_some());
        assert!(remembered_failure(&cache_with(refusal, 6), now).is_none());
        let locked = AuthError::Locked { retry_after: Duration::from_secs(900) };
        let Some(AuthError::Locked { retry_after }) =
            remembered_failure(&cache_with(locked.clone(), 100), now)
        else {
            panic!()
        };
        assert_eq!(retry_after, Duration::from_secs(800));
        assert!(remembered_failure(&cache_with(locked, 901), now).is_none());
        let transient = AuthError::Transport("refused".into());
        assert!(remembered_failure(&cache_with(transient, 0), now).is_none());
    }

    #[tokio::test]
    async fn freshness_honours_the_margin_capped_at_half_the_lifetime() {
        let m = manager(JwsAlgorithm::Es256);
        let now = Instant::now();
        let token = |left: u64| AccessToken {
            value: "t".into(),
            token_type: TokenType::Bearer,
            expires_at: now + Duration::from_secs(left),
            scope: String::new(),
        };
        let life = Duration::from_secs(900);
        assert!(m.is_fresh(&token(61), life, now));
        assert!(!m.is_fresh(&token(60), life, now));
        assert!(!m.is_fresh(&token(0), life, now));
        // A 30-second token is renewed after 15 s, not on every call.
        assert!(m.is_fresh(&token(16), Duration::from_secs(30), now));
        let m = m.with_renewal_margin(Duration::from_secs(120));
        assert!(!m.is_fresh(&token(100), life, now));
    }
}
