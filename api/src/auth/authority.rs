//! The token authority: registered clients, the key access tokens are signed with, and the
//! state the token endpoint keeps (replay caches, lockouts, revocation). One implementation
//! behind `intake sandbox`'s and `intake api`'s `POST /auth/token`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use intake_engine::m2m::jws::{self, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};

use super::Issuer;
use super::clients::ClientRegistration;
use super::replay::ReplayCache;
use super::token_endpoint;

/// How many verified access tokens are remembered before the set starts over.
const VERIFIED_TOKENS_KEPT: usize = 4096;

/// How a [`TokenAuthority`] issues tokens, besides its clients, key and issuer name.
#[derive(Debug, Clone)]
pub struct AuthoritySettings {
    /// The `aud` of issued access tokens (None: no `aud` claim). The REST layer's verifier is
    /// configured with it through [`TokenAuthority::issuer`].
    pub audience: Option<String>,
    /// The base URL clients use (`http://host:port`, no trailing slash): assertions' `aud` must
    /// be `{public_url}/auth/token` and DPoP `htu`s are checked against it. None: `http://` +
    /// the request's `Host` header (the sandbox's default).
    pub public_url: Option<String>,
    /// Lifetime of issued access tokens in seconds (at least 1).
    pub access_token_lifetime_seconds: u64,
    /// Whether a token request with a `DPoP` proof gets a DPoP-bound token. When false such a
    /// request is refused, for servers whose routes only accept Bearer tokens.
    pub dpop: bool,
    /// The access-token key's `kid` is this prefix, `-`, and 16 characters of its thumbprint.
    pub kid_prefix: String,
}

impl Default for AuthoritySettings {
    /// No audience, `public_url` from the `Host` header, 900 s tokens, DPoP on, kid `intake-…`.
    fn default() -> Self {
        AuthoritySettings {
            audience: None,
            public_url: None,
            access_token_lifetime_seconds: 900,
            dpop: true,
            kid_prefix: "intake".into(),
        }
    }
}

/// One public key of a registered client, parsed.
#[derive(Debug)]
pub(crate) struct ActiveKey {
    /// The key.
    pub(crate) key: VerifyingKey,
    /// Assertions signed with it are refused from this instant on.
    pub(crate) active_until: Option<DateTime<Utc>>,
}

/// A registered client, compiled: keys parsed.
#[derive(Debug)]
pub(crate) struct Client {
    /// The client id.
    pub(crate) client_id: String,
    /// The client's tenant.
    pub(crate) tenant_id: String,
    /// The capabilities it may be granted, in registration order.
    pub(crate) capabilities: Vec<String>,
    /// Public keys by kid.
    pub(crate) keys: HashMap<String, ActiveKey>,
}

/// A client's failure streak.
#[derive(Debug, Default)]
pub(crate) struct Lockout {
    /// Consecutive failures since the last success or lock.
    pub(crate) failures: u32,
    /// Locked until this Unix second.
    pub(crate) locked_until: u64,
}

/// Replay caches, lockouts and the token generation, under one lock.
#[derive(Debug, Default)]
pub(crate) struct SecurityState {
    /// Seen assertion `jti`s, as `client_id` + NUL + `jti`.
    pub(crate) assertion_jtis: ReplayCache,
    /// Seen DPoP proof `jti`s, as `jkt` + NUL + `jti`.
    pub(crate) dpop_jtis: ReplayCache,
    /// Failure streaks by client id.
    pub(crate) lockouts: HashMap<String, Lockout>,
    /// Tokens of an older generation are revoked.
    pub(crate) generation: u64,
}

/// The verified claims of an access token.
#[derive(Debug)]
pub(crate) struct AccessClaims {
    /// The client.
    pub(crate) client_id: String,
    /// The tenant.
    pub(crate) tenant_id: String,
    /// Granted scopes.
    pub(crate) scopes: std::collections::BTreeSet<String>,
    /// `cnf.jkt` when DPoP-bound.
    pub(crate) jkt: Option<String>,
}

/// What the authority shares between requests.
pub(crate) struct AuthorityInner {
    /// Registered clients by id.
    pub(crate) clients: HashMap<String, Client>,
    /// The `iss` of issued tokens.
    pub(crate) issuer: String,
    /// The settings, `public_url` without a trailing slash.
    pub(crate) settings: AuthoritySettings,
    /// The key access tokens are signed with.
    token_key: SigningKey,
    /// Its public half.
    token_public: VerifyingKey,
    /// Its key id.
    token_kid: String,
    /// Replay caches, lockouts and the token generation.
    pub(crate) security: Mutex<SecurityState>,
    /// Access tokens whose signature has been verified (expiry and revocation are still checked
    /// on every request).
    verified_tokens: Mutex<HashSet<String>>,
    /// Token endpoint calls.
    pub(crate) token_requests: AtomicU64,
    /// Tokens issued.
    pub(crate) tokens_issued: AtomicU64,
}

/// Issues access tokens to registered clients that prove who they are with a `private_key_jwt`
/// assertion (RFC 7523), optionally DPoP-bound, with replay protection and lockout; the checks
/// are documented on [`crate::sandbox`]. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct TokenAuthority {
    /// The shared state.
    pub(crate) inner: Arc<AuthorityInner>,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("issuer", &self.inner.issuer)
            .field("clients", &self.inner.clients.len())
            .field("kid", &self.inner.token_kid)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `bytes` random bytes from the OS as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore as _;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (every critical section
/// leaves its data consistent before anything can panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenAuthority {
    /// An authority for `clients` signing with `signing_key` as `issuer`. A key that does not
    /// parse is skipped (its assertions get `invalid_client`); check registrations first with
    /// [`super::client_problems`] to refuse them instead.
    pub fn new(
        clients: Vec<ClientRegistration>,
        signing_key: SigningKey,
        issuer: impl Into<String>,
        mut settings: AuthoritySettings,
    ) -> Self {
        let mut compiled = HashMap::new();
        for registration in clients {
            let mut keys = HashMap::new();
            for key in &registration.keys {
                match VerifyingKey::from_pem(&key.public_key_pem) {
                    Ok(k) => {
                        keys.insert(
                            key.kid.clone(),
                            ActiveKey { key: k, active_until: key.active_until },
                        );
                    }
                    Err(e) => tracing::warn!(
                        client = %registration.client_id, kid = %key.kid, "key skipped: {e}"
                    ),
                }
            }
            compiled.insert(
                registration.client_id.clone(),
                Client {
                    client_id: registration.client_id,
                    tenant_id: registration.tenant_id,
                    capabilities: registration.capabilities,
                    keys,
                },
            );
        }
        settings.public_url = settings.public_url.map(|u| u.trim_end_matches('/').to_owned());
        settings.access_token_lifetime_seconds = settings.access_token_lifetime_seconds.max(1);
        let token_public = signing_key.verifying_key();
        let token_kid = format!("{}-{}", settings.kid_prefix, &token_public.thumbprint()[..16]);
        TokenAuthority {
            inner: Arc::new(AuthorityInner {
                clients: compiled,
                issuer: issuer.into(),
                settings,
                token_key: signing_key,
                token_public,
                token_kid,
                security: Mutex::default(),
                verified_tokens: Mutex::default(),
                token_requests: AtomicU64::new(0),
                tokens_issued: AtomicU64::new(0),
            }),
        }
    }

    /// The issuer the REST layer's [`super::AccessTokenVerifier`] must trust to accept this
    /// authority's tokens: its name, audience, key and algorithm.
    pub fn issuer(&self) -> Issuer {
        let inner = &self.inner;
        Issuer::new(
            inner.issuer.clone(),
            inner.settings.audience.clone(),
            vec![(inner.token_kid.clone(), inner.token_public.clone())],
            vec![inner.token_key.algorithm()],
        )
    }

    /// The routes `POST /auth/token` and `GET /.well-known/jwks.json`, state applied.
    pub fn router(&self) -> Router {
        self.token_router().merge(self.jwks_router())
    }

    /// `POST /auth/token` alone (the sandbox wraps it in its fault injection).
    pub(crate) fn token_router(&self) -> Router {
        Router::new()
            .route("/auth/token", post(token_endpoint::token_endpoint))
            .with_state(self.clone())
    }

    /// `GET /.well-known/jwks.json` alone.
    pub(crate) fn jwks_router(&self) -> Router {
        Router::new().route("/.well-known/jwks.json", get(jwks)).with_state(self.clone())
    }

    /// The public key access tokens are signed with.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.inner.token_public.clone()
    }

    /// Every access token issued so far stops being accepted by
    /// [`TokenAuthority::verify_access_token`]; returns the new generation.
    pub(crate) fn revoke_all(&self) -> u64 {
        let mut security = lock(&self.inner.security);
        security.generation += 1;
        security.generation
    }

    /// The base URL of this request: the configured `public_url`, or `http://{Host}`.
    pub(crate) fn base_url(&self, headers: &axum::http::HeaderMap) -> String {
        if let Some(url) = &self.inner.settings.public_url {
            return url.clone();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// Token endpoint calls and tokens issued so far.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (
            self.inner.token_requests.load(Ordering::Relaxed),
            self.inner.tokens_issued.load(Ordering::Relaxed),
        )
    }

    /// Signs an access token for `client_id`/`tenant_id` with `scope`, DPoP-bound to `jkt`.
    pub(crate) fn sign_access_token(
        &self,
        client_id: &str,
        tenant_id: &str,
        scope: &[String],
        jkt: Option<&str>,
    ) -> Result<String, jws::JwsError> {
        let inner = &self.inner;
        let now = now_secs();
        let generation = lock(&inner.security).generation;
        let mut claims = json!({
            "iss": inner.issuer,
            "sub": client_id,
            "client_id": client_id,
            "tenant_id": tenant_id,
            "scope": scope.join(" "),
            "iat": now,
            "exp": now + inner.settings.access_token_lifetime_seconds,
            "jti": random_hex(16),
            "gen": generation,
        });
        if let Some(audience) = &inner.settings.audience {
            claims["aud"] = json!(audience);
        }
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({"jkt": jkt});
        }
        let mut header = Map::new();
        header.insert("typ".into(), json!("at+jwt"));
        header.insert("kid".into(), json!(inner.token_kid));
        jws::sign(header, &claims, &inner.token_key)
    }

    /// Verifies an access token this authority issued (signature, `typ`, `iss`, `exp`, not
    /// revoked) and returns its claims; the error explains.
    pub(crate) fn verify_access_token(&self, token: &str) -> Result<AccessClaims, String> {
        let inner = &self.inner;
        let decoded =
            jws::decode(token).map_err(|e| format!("the access token is malformed: {e}"))?;
        // Verifying a P-521 signature costs about a millisecond of CPU: once per token is
        // enough (the token is immutable), or the server, not the client, limits benchmarks.
        let known = lock(&inner.verified_tokens).contains(token);
        if !known {
            decoded
                .verify(&inner.token_public, &[inner.token_key.algorithm()])
                .map_err(|e| format!("the access token was not issued by this sandbox: {e}"))?;
            let mut verified = lock(&inner.verified_tokens);
            if verified.len() >= VERIFIED_TOKENS_KEPT {
                verified.clear();
            }
            verified.insert(token.to_owned());
        }
        let claims = &decoded.claims;
        if decoded.header.get("typ").and_then(Value::as_str) != Some("at+jwt")
            || claims.get("iss").and_then(Value::as_str) != Some(inner.issuer.as_str())
        {
            return Err("the token is not an access token of this sandbox".into());
        }
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp <= now_secs() {
            return Err("the access token has expired".into());
        }
        let generation = lock(&inner.security).generation;
        if claims.get("gen").and_then(Value::as_u64) != Some(generation) {
            return Err("the access token has been revoked".into());
        }
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(AccessClaims {
            client_id: text("sub").unwrap_or_default(),
            tenant_id: text("tenant_id").unwrap_or_default(),
            scopes: text("scope")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            jkt: claims
                .get("cnf")
                .and_then(|c| c.get("jkt"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// `GET /.well-known/jwks.json`: the public key access tokens are signed with.
async fn jwks(State(authority): State<TokenAuthority>) -> axum::Json<Value> {
    let inner = &authority.inner;
    let mut jwk = inner.token_public.to_jwk();
    jwk["kid"] = json!(inner.token_kid);
    jwk["alg"] = json!(inner.token_key.algorithm().as_str());
    jwk["use"] = json!("sig");
    axum::Json(json!({"keys": [jwk]}))
}
