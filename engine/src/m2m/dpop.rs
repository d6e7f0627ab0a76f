//! DPoP proofs (RFC 9449): a fresh JWT per HTTP request, signed with the client's DPoP key, that
//! binds the request's method and URL (and, on resource requests, the access token) to that key.
//!
//! This module only builds proofs; the token manager sends one with the token request, and the
//! API client sends one with every attempt of every request made with a DPoP-bound token.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use super::jws::{self, JwsError, SigningKey};

/// The `htu` of a request: its URL without query and fragment (RFC 9449 §4.2).
pub fn htu(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

/// The `ath` of an access token: base64url(SHA-256(token)) without padding.
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// A random 128-bit identifier in lowercase hex, for `jti` claims.
pub(crate) fn random_jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A DPoP proof for one request: header `{typ: "dpop+jwt", alg, jwk}` (the public key only),
/// claims `{jti, htm, htu, iat}` plus `ath` when `access_token` is given (resource requests).
pub fn proof(
    key: &SigningKey,
    method: &str,
    url: &Url,
    access_token: Option<&str>,
) -> Result<String, JwsError> {
    let mut header = Map::new();
    header.insert("typ".into(), Value::String("dpop+jwt".into()));
    header.insert("jwk".into(), key.verifying_key().to_jwk());
    let mut claims = json!({
        "jti": random_jti(),
        "htm": method.to_ascii_uppercase(),
        "htu": htu(url),
        "iat": unix_now(),
    });
    if let (Some(token), Some(map)) = (access_token, claims.as_object_mut()) {
        map.insert("ath".into(), Value::String(ath(token)));
    }
    jws::sign(header, &claims, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m2m::jws::{JwsAlgorithm, VerifyingKey, decode};

    #[test]
    fn proof_carries_the_rfc9449_claims_and_verifies_with_its_jwk() {
        for alg in JwsAlgorithm::ALL {
            let key = SigningKey::generate(alg);
            let url = Url::parse("https://api.example.com/payments/?where=%7B%7D#frag").unwrap();
            let token = proof(&key, "get", &url, Some("the-token")).unwrap();
            let decoded = decode(&token).unwrap();
            assert_eq!(decoded.header["typ"], "dpop+jwt");
            assert_eq!(decoded.header["alg"], alg.as_str());
            let jwk = &decoded.header["jwk"];
            assert!(jwk.get("d").is_none(), "the private key must never be in the proof");
            let public = VerifyingKey::from_jwk(jwk).unwrap();
            decoded.verify(&public, &[alg]).unwrap();
            assert_eq!(decoded.claims["htm"], "GET");
            assert_eq!(decoded.claims["htu"], "https://api.example.com/payments/");
            // ath of "the-token", computed independently.
            let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(b"the-token"));
            assert_eq!(decoded.claims["ath"], expected.as_str());
            let iat = decoded.claims["iat"].as_u64().unwrap();
            assert!(iat.abs_diff(unix_now()) <= 2);
            assert_eq!(decoded.claims["jti"].as_str().unwrap().len(), 32);
        }
    }

    #[test]
    fn token_request_proofs_have_no_ath_and_fresh_jtis() {
        let key = SigningKey::generate(JwsAlgorithm::Es256);
        let url = Url::parse("http://127.0.0.1:9/auth/token").unwrap();
        let a = decode(&proof(&key, "POST", &url, None).unwrap()).unwrap();
        let b = decode(&proof(&key, "POST", &url, None).unwrap()).unwrap();
        assert!(a.claims.get("ath").is_none());
        assert_ne!(a.claims["jti"], b.claims["jti"]);
        assert_eq!(a.claims["htu"], "http://127.0.0.1:9/auth/token");
    }

    #[test]
    fn ath_matches_rfc9449_example() {
        // RFC 9449 §7.1: the access token and its ath.
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
