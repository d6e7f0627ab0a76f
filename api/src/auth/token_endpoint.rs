//! `POST /auth/token`: the client credentials grant with `private_key_jwt` client assertions
//! (RFC 7523), optional DPoP binding, lockout after repeated failures.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use intake_engine::m2m::jws::{self, JwsAlgorithm};
use serde_json::{Map, Value, json};

use super::authority::{Client, Lockout, TokenAuthority, lock, now_secs};
use super::clients::is_plain_kid;
use super::dpop;
use crate::conventions::ApiError;

/// The only `client_assertion_type`.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Tolerated clock difference, seconds.
const SKEW: u64 = 30;
/// Longest assertion lifetime (`exp - iat`), seconds.
const MAX_ASSERTION_LIFETIME: u64 = 300;
/// Consecutive failures that lock a client.
const LOCKOUT_FAILURES: u32 = 5;
/// How long a lock lasts, seconds.
const LOCKOUT_SECONDS: u64 = 15 * 60;

/// What a successful token request grants.
struct Grant {
    /// The client id.
    client_id: String,
    /// Its tenant.
    tenant_id: String,
    /// Granted scopes.
    scope: Vec<String>,
    /// DPoP key thumbprint when bound.
    jkt: Option<String>,
}

/// Parses a form body; a repeated parameter is an error (RFC 6749 §3.2).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if content_type != "application/x-www-form-urlencoded" {
        return Err(ApiError::invalid_request(
            "the token request must be application/x-www-form-urlencoded",
        ));
    }
    let mut form = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        if form.insert(key.clone().into_owned(), value.into_owned()).is_some() {
            return Err(ApiError::invalid_request(format!("parameter '{key}' is repeated")));
        }
    }
    Ok(form)
}

/// A numeric date claim (JSON number, may be fractional) as whole seconds.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(ApiError::invalid_grant(format!("'{name}' must be a NumericDate"))),
        },
    }
}

/// `POST /auth/token`.
pub(crate) async fn token_endpoint(
    State(authority): State<TokenAuthority>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app = &*authority.inner;
    app.token_requests.fetch_add(1, Ordering::Relaxed);
    let form = parse_form(&headers, &body)?;
    let assertion = form.get("client_assertion").map(String::as_str);
    // The client: the form's client_id, or else the assertion's (still unverified) iss.
    let claimed_client = form.get("client_id").cloned().or_else(|| {
        let decoded = jws::decode(assertion?).ok()?;
        decoded.claims.get("iss")?.as_str().map(str::to_owned)
    });
    let registered = claimed_client.as_deref().and_then(|id| app.clients.get(id));
    if let Some(client) = registered {
        let now = now_secs();
        let security = lock(&app.security);
        if let Some(l) = security.lockouts.get(&client.client_id)
            && l.locked_until > now
        {
            return Err(ApiError::Locked {
                client_id: client.client_id.clone(),
                retry_after: l.locked_until - now,
            });
        }
    }
    let outcome = check_request(&authority, &headers, &form, claimed_client.as_deref(), registered);
    if let Some(client) = registered {
        let mut security = lock(&app.security);
        let entry = security.lockouts.entry(client.client_id.clone()).or_default();
        if outcome.is_ok() {
            *entry = Lockout::default();
        } else {
            entry.failures += 1;
            if entry.failures >= LOCKOUT_FAILURES {
                entry.failures = 0;
                entry.locked_until = now_secs() + LOCKOUT_SECONDS;
            }
        }
    }
    let grant = outcome?;
    let token = authority
        .sign_access_token(&grant.client_id, &grant.tenant_id, &grant.scope, grant.jkt.as_deref())
        .map_err(|e| ApiError::Misconfigured(format!("cannot sign the access token: {e}")))?;
    let token_type = if grant.jkt.is_some() { "DPoP" } else { "Bearer" };
    app.tokens_issued.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "access_token": token,
        "token_type": token_type,
        "expires_in": app.settings.access_token_lifetime_seconds,
        "scope": grant.scope.join(" "),
    });
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Every check of a token request, in order; consumes the assertion's `jti` once the assertion
/// itself is valid.
fn check_request(
    authority: &TokenAuthority,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    claimed_client: Option<&str>,
    registered: Option<&Client>,
) -> Result<Grant, ApiError> {
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "grant_type must be 'client_credentials', got '{other}'"
            )));
        }
        None => return Err(ApiError::invalid_request("grant_type is required")),
    }
    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(ApiError::invalid_request(format!(
            "client_assertion_type must be '{JWT_BEARER}'"
        )));
    }
    let assertion = form
        .get("client_assertion")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::invalid_request("client_assertion is required"))?;
    let decoded = jws::decode(assertion)
        .map_err(|e| ApiError::invalid_request(format!("client_assertion: {e}")))?;
    let client_id = claimed_client
        .ok_or_else(|| ApiError::invalid_client("no client_id and no 'iss' in the assertion"))?;
    let client = registered
        .ok_or_else(|| ApiError::invalid_client(format!("Unknown client '{client_id}'")))?;

    // Key and signature.
    let kid = decoded
        .header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_client("the client_assertion header has no 'kid'"))?;
    if !is_plain_kid(kid) {
        return Err(ApiError::invalid_client(format!(
            "kid '{}' is not a valid key id",
            kid.escape_debug()
        )));
    }
    let key = client.keys.get(kid).ok_or_else(|| {
        ApiError::invalid_client(format!(
            "No active key with kid '{kid}' found for client '{client_id}'"
        ))
    })?;
    decoded
        .verify(&key.key, &JwsAlgorithm::ALL)
        .map_err(|e| ApiError::invalid_client(format!("client_assertion rejected: {e}")))?;
    // Only a caller holding the key learns that it expired.
    if let Some(until) = key.active_until
        && until <= chrono::Utc::now()
    {
        return Err(ApiError::invalid_client(format!(
            "key '{kid}' of client '{client_id}' expired at {}: sign with its newer key",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }

    // Claims.
    let claims = &decoded.claims;
    let string_claim = |name: &str| claims.get(name).and_then(Value::as_str);
    if string_claim("iss") != Some(client_id) {
        return Err(ApiError::invalid_grant(format!("'iss' must be the client_id '{client_id}'")));
    }
    if string_claim("sub") != Some(client_id) {
        return Err(ApiError::invalid_grant(format!("'sub' must be the client_id '{client_id}'")));
    }
    let token_url = format!("{}/auth/token", authority.base_url(headers));
    match claims.get("aud") {
        Some(Value::String(aud)) if *aud == token_url => {}
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid_grant(format!(
                "'aud' must be the single string '{token_url}', not an array"
            )));
        }
        _ => {
            return Err(ApiError::invalid_grant(format!(
                "'aud' must be exactly the token endpoint URL '{token_url}'"
            )));
        }
    }
    let now = now_secs();
    let exp = numeric_date(claims, "exp")?
        .ok_or_else(|| ApiError::invalid_grant("the assertion has no 'exp'"))?;
    let iat = numeric_date(claims, "iat")?
        .ok_or_else(|| ApiError::invalid_grant("the assertion has no 'iat'"))?;
    if exp + SKEW <= now {
        return Err(ApiError::invalid_grant("the assertion has expired"));
    }
    if iat > now + SKEW {
        return Err(ApiError::invalid_grant("the assertion's 'iat' is in the future"));
    }
    if exp > iat + MAX_ASSERTION_LIFETIME {
        return Err(ApiError::invalid_grant(format!(
            "'exp' must be at most {MAX_ASSERTION_LIFETIME} s after 'iat'"
        )));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now + SKEW
    {
        return Err(ApiError::invalid_grant("the assertion is not valid yet ('nbf')"));
    }
    let jti = string_claim("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| ApiError::invalid_grant("the assertion needs a 'jti' (1-256 characters)"))?;

    // DPoP, checked before the jti is consumed so a bad proof does not burn the assertion.
    let jkt = if headers.contains_key("dpop") {
        if !authority.inner.settings.dpop {
            return Err(ApiError::invalid_request(
                "this token endpoint issues Bearer tokens only: send the request without a DPoP header",
            ));
        }
        let requirements = dpop::Requirements {
            method: "POST",
            url: &token_url,
            access_token: None,
            bound_jkt: None,
        };
        Some(dpop::check_proof(authority, headers, &requirements).map_err(ApiError::token_dpop)?)
    } else {
        None
    };

    {
        let mut security = lock(&authority.inner.security);
        let slot = format!("{client_id}\0{jti}");
        if !security.assertion_jtis.insert(slot, exp + SKEW, now) {
            return Err(ApiError::invalid_grant(format!(
                "the assertion's jti '{jti}' was already used"
            )));
        }
    }

    // Scope.
    let requested: Vec<&str> =
        form.get("scope").map(|s| s.split_whitespace().collect()).unwrap_or_default();
    let scope = if requested.is_empty() {
        client.capabilities.clone()
    } else {
        let mut scope: Vec<String> = Vec::with_capacity(requested.len());
        for wanted in requested {
            if !client.capabilities.iter().any(|c| c == wanted) {
                return Err(ApiError::invalid_scope(format!(
                    "Client '{client_id}' does not have capability '{wanted}'"
                )));
            }
            if !scope.iter().any(|s| s == wanted) {
                scope.push(wanted.to_owned());
            }
        }
        scope
    };
    Ok(Grant {
        client_id: client.client_id.clone(),
        tenant_id: client.tenant_id.clone(),
        scope,
        jkt,
    })
}
