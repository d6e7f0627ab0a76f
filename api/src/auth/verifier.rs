//! Verifying access tokens against the configured issuers.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Mutex;

use intake_engine::m2m::jws::{self, JwsAlgorithm, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Principal;

/// Tolerated clock difference on `exp` and `nbf`, seconds.
const SKEW_SECONDS: i64 = 30;
/// How many verified tokens are remembered (verifying a P-521 signature costs about a
/// millisecond; a token is immutable, so once is enough).
const VERIFIED_TOKENS_KEPT: usize = 10_000;

/// One trusted token issuer, as configured.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The tokens' `iss` claim.
    pub issuer: String,
    /// The `aud` tokens must carry (a string, or an array containing it). None: `aud` is not
    /// checked.
    #[serde(default)]
    pub audience: Option<String>,
    /// Where the issuer's public keys are.
    pub keys: IssuerKeys,
    /// The accepted signature algorithms (default: ES256, ES384, ES512).
    #[serde(default = "all_algorithms")]
    pub algorithms: Vec<String>,
}

impl IssuerConfig {
    /// Makes relative key paths relative to `base` (the folder of the file that configured
    /// them).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match &mut self.keys {
            IssuerKeys::JwksFile(path) => resolve(path),
            IssuerKeys::PemFiles(paths) => paths.iter_mut().for_each(resolve),
        }
    }
}

/// The accepted algorithms by default.
fn all_algorithms() -> Vec<String> {
    vec!["ES256".into(), "ES384".into(), "ES512".into()]
}

/// Where an issuer's public keys come from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum IssuerKeys {
    /// A JWKS document (`{"keys": [{"kty": "EC", "crv", "x", "y", "kid"}]}`) in a file.
    JwksFile(PathBuf),
    /// SPKI PEM public keys (`-----BEGIN PUBLIC KEY-----`), one per file; the file stem is the
    /// key's `kid`.
    PemFiles(Vec<PathBuf>),
}

/// A configured issuer that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A key file could not be read.
    #[error("issuer {issuer:?}: cannot read {path}: {source}")]
    Read {
        /// The issuer.
        issuer: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key or JWKS is not usable.
    #[error("issuer {issuer:?}: {reason}")]
    Invalid {
        /// The issuer.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
}

/// An issuer ready to verify tokens: its keys parsed, its algorithms known.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The `iss` claim.
    issuer: String,
    /// The expected `aud`, if any.
    audience: Option<String>,
    /// Keys by `kid` (keys without a kid under the empty string, tried when a token has none).
    keys: Vec<(String, VerifyingKey)>,
    /// The allow-list.
    algorithms: Vec<JwsAlgorithm>,
}

impl Issuer {
    /// An issuer from keys already in hand (the built-in token endpoint's own key, tests).
    pub fn new(
        issuer: impl Into<String>,
        audience: Option<String>,
        keys: Vec<(String, VerifyingKey)>,
        algorithms: Vec<JwsAlgorithm>,
    ) -> Self {
        Issuer { issuer: issuer.into(), audience, keys, algorithms }
    }

    /// Loads an issuer's key files and checks its settings.
    pub fn load(config: &IssuerConfig) -> Result<Self, AuthConfigError> {
        let invalid =
            |reason: String| AuthConfigError::Invalid { issuer: config.issuer.clone(), reason };
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read {
                issuer: config.issuer.clone(),
                path: path.display().to_string(),
                source,
            })
        };
        if config.issuer.trim().is_empty() {
            return Err(invalid("the issuer name is empty".into()));
        }
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            let algorithm = JwsAlgorithm::from_str(name).map_err(|_| {
                invalid(format!("algorithm {name:?} is not one of ES256, ES384, ES512"))
            })?;
            algorithms.push(algorithm);
        }
        if algorithms.is_empty() {
            return Err(invalid("no algorithms are allowed".into()));
        }
        let mut keys = Vec::new();
        match &config.keys {
            IssuerKeys::JwksFile(path) => {
                let text = read(path)?;
                let jwks: Value = serde_json::from_str(&text).map_err(|e| {
                    invalid(format!("{} is not a JSON document: {e}", path.display()))
                })?;
                let Some(entries) = jwks.get("keys").and_then(Value::as_array) else {
                    return Err(invalid(format!("{} has no \"keys\" array", path.display())));
                };
                for (i, jwk) in entries.iter().enumerate() {
                    let key = VerifyingKey::from_jwk(jwk).map_err(|e| {
                        invalid(format!(
                            "{} keys[{i}] is not an EC public key: {e}",
                            path.display()
                        ))
                    })?;
                    let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or("").to_owned();
                    keys.push((kid, key));
                }
            }
            IssuerKeys::PemFiles(paths) => {
                for path in paths {
                    let key = VerifyingKey::from_pem(&read(path)?).map_err(|e| {
                        invalid(format!("{} is not a PEM public key: {e}", path.display()))
                    })?;
                    let kid = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
                    keys.push((kid, key));
                }
            }
        }
        if keys.is_empty() {
            return Err(invalid("no keys".into()));
        }
        Ok(Issuer::new(config.issuer.clone(), config.audience.clone(), keys, algorithms))
    }

    /// The keys a token with this header `kid` may be signed with.
    fn candidates<'a>(&'a self, kid: Option<&'a str>) -> impl Iterator<Item = &'a VerifyingKey> {
        self.keys
            .iter()
            .filter(move |(k, _)| kid.is_none_or(|kid| k.is_empty() || k == kid))
            .map(|(_, key)| key)
    }
}

/// Verifies bearer access tokens against every trusted issuer.
#[derive(Debug, Default)]
pub struct AccessTokenVerifier {
    /// The trusted issuers, by `iss`.
    issuers: HashMap<String, Issuer>,
    /// Tokens whose signature has been verified (claims are re-checked every time).
    verified: Mutex<BTreeSet<String>>,
}

impl AccessTokenVerifier {
    /// A verifier trusting the configured issuers (loading their key files).
    pub fn from_configs(configs: &[IssuerConfig]) -> Result<Self, AuthConfigError> {
        let mut verifier = AccessTokenVerifier::default();
        for config in configs {
            verifier.trust(Issuer::load(config)?);
        }
        Ok(verifier)
    }

    /// Trusts one more issuer (replacing one with the same `iss`).
    pub fn trust(&mut self, issuer: Issuer) {
        self.issuers.insert(issuer.issuer.clone(), issuer);
    }

    /// Whether any issuer is trusted (a REST layer without one refuses every call).
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies a token and returns who it speaks for, or why it is refused (the text of a 401).
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        let decoded =
            jws::decode(token).map_err(|e| format!("the access token is malformed: {e}"))?;
        let claims = &decoded.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let iss = text("iss").ok_or("the access token has no iss claim")?;
        let issuer = self
            .issuers
            .get(iss)
            .ok_or_else(|| format!("the access token's issuer {iss:?} is not trusted"))?;
        let known = self.verified.lock().map(|v| v.contains(token)).unwrap_or(false);
        if !known {
            let kid = decoded.header.get("kid").and_then(Value::as_str);
            let mut last_error = format!("no key of issuer {iss:?} has kid {kid:?}");
            let mut verified = false;
            for key in issuer.candidates(kid) {
                match decoded.verify(key, &issuer.algorithms) {
                    Ok(()) => {
                        verified = true;
                        break;
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
            if !verified {
                return Err(format!("the access token's signature is not valid: {last_error}"));
            }
            if let Ok(mut cache) = self.verified.lock() {
                if cache.len() >= VERIFIED_TOKENS_KEPT {
                    cache.clear();
                }
                cache.insert(token.to_owned());
            }
        }
        let now = chrono::Utc::now().timestamp();
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or("the access token has no exp")?;
        if exp + SKEW_SECONDS <= now {
            return Err("the access token has expired".into());
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_i64().ok_or("the access token's nbf is not a number")?;
            if nbf - SKEW_SECONDS > now {
                return Err("the access token is not valid yet (nbf)".into());
            }
        }
        if let Some(audience) = &issuer.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == audience,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !ok {
                return Err(format!("the access token's aud is not {audience:?}"));
            }
        }
        let tenant_id = text("tenant_id").ok_or("the access token has no tenant_id claim")?;
        if !crate::conventions::is_object_id(tenant_id) {
            return Err("the access token's tenant_id is not 24 lowercase hex digits".into());
        }
        let client_id = text("client_id").or_else(|| text("sub")).unwrap_or_default().to_owned();
        let scopes =
            text("scope").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
        Ok(Principal { client_id, tenant_id: tenant_id.to_owned(), scopes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intake_engine::m2m::jws::SigningKey;
    use serde_json::{Map, json};

    const TENANT: &str = "0123456789abcdef01234567";

    fn verifier(key: &SigningKey, audience: Option<&str>) -> AccessTokenVerifier {
        let mut v = AccessTokenVerifier::default();
        v.trust(Issuer::new(
            "issuer-a",
            audience.map(str::to_owned),
            vec![("k1".into(), key.verifying_key())],
            vec![JwsAlgorithm::Es256, JwsAlgorithm::Es384],
        ));
        v
    }

    fn token(key: &SigningKey, claims: Value) -> String {
        let mut header = Map::new();
        header.insert("kid".into(), json!("k1"));
        jws::sign(header, &claims, key).unwrap()
    }

    fn claims(extra: Value) -> Value {
        let now = chrono::Utc::now().timestamp();
        let mut base = json!({"iss": "issuer-a", "sub": "c1", "tenant_id": TENANT,
            "scope": "a:list b:read", "exp": now + 300});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    #[test]
    fn a_valid_token_gives_the_tenant_and_scopes() {
        let key = SigningKey::generate(JwsAlgorithm::Es256);
        let p = verifier(&key, None).verify(&token(&key, claims(json!({})))).unwrap();
        assert_eq!(p.tenant_id, TENANT);
        assert_eq!(p.client_id, "c1");
        assert!(p.scopes.contains("b:read"));
    }

    #[test]
    fn bad_signatures_algorithms_issuers_and_times_are_refused() {
        let key = SigningKey::generate(JwsAlgorithm::Es256);
        let other = SigningKey::generate(JwsAlgorithm::Es256);
        let v = verifier(&key, Some("intake"));
        let ok = claims(json!({"aud": "intake"}));
        assert!(v.verify(&token(&key, ok.clone())).is_ok());
        assert!(v.verify(&token(&other, ok.clone())).unwrap_err().contains("signature"));
        let es512 = SigningKey::generate(JwsAlgorithm::Es512);
        let mut v512 = verifier(&es512, None);
        v512.trust(Issuer::new(
            "issuer-a",
            None,
            vec![("k1".into(), es512.verifying_key())],
            vec![JwsAlgorithm::Es256],
        ));
        assert!(v512.verify(&token(&es512, claims(json!({})))).is_err());
        let now = chrono::Utc::now().timestamp();
        for (bad, why) in [
            (json!({"aud": "intake", "iss": "other"}), "not trusted"),
            (json!({"aud": "intake", "exp": now - 60}), "expired"),
            (json!({"aud": "intake", "nbf": now + 600}), "nbf"),
            (json!({"aud": "someone-else"}), "aud"),
            (json!({"aud": ["x", "intake"], "tenant_id": "nope"}), "tenant_id"),
        ] {
            let err = v.verify(&token(&key, claims(bad))).unwrap_err();
            assert!(err.contains(why), "{err} should mention {why}");
        }
        assert!(v.verify(&token(&key, claims(json!({"aud": ["x", "intake"]})))).is_ok());
        assert!(v.verify("not.a.jwt").is_err());
    }
}
