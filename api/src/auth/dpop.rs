//! DPoP proof checks (RFC 9449 §4.3), shared by the token endpoint and resource calls.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use intake_engine::m2m::jws::{self, JwsAlgorithm, VerifyingKey};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::authority::{TokenAuthority, lock, now_secs};

/// How far a proof's `iat` may be from now, seconds.
const IAT_WINDOW: u64 = 60;

/// What a proof must be bound to.
pub(crate) struct Requirements<'a> {
    /// The request method (`htm`).
    pub(crate) method: &'a str,
    /// The request URL without query (`htu`).
    pub(crate) url: &'a str,
    /// The access token the proof must hash in `ath` (resource calls).
    pub(crate) access_token: Option<&'a str>,
    /// The thumbprint the proof key must have (the token's `cnf.jkt`).
    pub(crate) bound_jkt: Option<&'a str>,
}

/// Whether two URLs name the same target: scheme, host, port and path (query, fragment ignored).
fn same_target(htu: &str, expected: &str) -> bool {
    match (url::Url::parse(htu), url::Url::parse(expected)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str().map(str::to_ascii_lowercase)
                    == b.host_str().map(str::to_ascii_lowercase)
                && a.port_or_known_default() == b.port_or_known_default()
                && a.path() == b.path()
        }
        _ => false,
    }
}

/// Checks the request's `DPoP` header against `req` and records its `jti`; returns the proof
/// key's thumbprint, or why the proof is refused.
pub(crate) fn check_proof(
    authority: &TokenAuthority,
    headers: &HeaderMap,
    req: &Requirements<'_>,
) -> Result<String, String> {
    let mut values = headers.get_all("dpop").iter();
    let proof = match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().map_err(|_| "the DPoP header is not ASCII".to_owned())?,
        (None, _) => return Err("the DPoP header is missing".into()),
        (Some(_), Some(_)) => return Err("more than one DPoP header".into()),
    };
    let decoded = jws::decode(proof).map_err(|e| format!("DPoP proof: {e}"))?;
    if decoded.header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err("the DPoP proof's typ must be 'dpop+jwt'".into());
    }
    let jwk = decoded.header.get("jwk").ok_or("the DPoP proof has no 'jwk' header")?;
    let key = VerifyingKey::from_jwk(jwk).map_err(|e| format!("DPoP proof jwk: {e}"))?;
    decoded.verify(&key, &JwsAlgorithm::ALL).map_err(|e| format!("DPoP proof signature: {e}"))?;
    let claims = &decoded.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("htm") != Some(req.method) {
        return Err(format!("the DPoP proof's htm must be '{}'", req.method));
    }
    if !text("htu").is_some_and(|htu| same_target(htu, req.url)) {
        return Err(format!("the DPoP proof's htu must be '{}'", req.url));
    }
    let now = now_secs();
    let iat = claims
        .get("iat")
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite() && *f >= 0.0)
        .ok_or("the DPoP proof has no numeric 'iat'")? as u64;
    if iat + IAT_WINDOW < now || iat > now + IAT_WINDOW {
        return Err(format!("the DPoP proof's iat is more than {IAT_WINDOW} s from now"));
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("the DPoP proof needs a 'jti' (1-256 characters)")?;
    if let Some(token) = req.access_token {
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if text("ath") != Some(expected.as_str()) {
            return Err("the DPoP proof's ath is not the hash of the access token".into());
        }
    }
    let jkt = key.thumbprint();
    if let Some(bound) = req.bound_jkt
        && bound != jkt
    {
        return Err("the DPoP proof key is not the key the token is bound to".into());
    }
    let mut security = lock(&authority.inner.security);
    if !security.dpop_jtis.insert(format!("{jkt}\0{jti}"), now + 2 * IAT_WINDOW, now) {
        return Err(format!("the DPoP proof's jti '{jti}' was already used"));
    }
    Ok(jkt)
}

#[cfg(test)]
mod tests {
    use super::same_target;

    #[test]
    fn targets_compare_without_query_and_with_default_ports() {
        assert!(same_target("http://a.example/x?y=1", "http://a.example/x"));
        assert!(same_target("http://A.example:80/x", "http://a.example/x"));
        assert!(!same_target("https://a.example/x", "http://a.example/x"));
        assert!(!same_target("http://a.example/x/", "http://a.example/x"));
        assert!(!same_target("http://a.example:8080/x", "http://a.example/x"));
        assert!(!same_target("not a url", "http://a.example/x"));
    }
}
