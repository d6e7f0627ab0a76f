//! Registered M2M clients: who may ask the token endpoint for access tokens, with which keys
//! and for which capabilities. One file format (`{"clients": [...]}`) serves `intake sandbox`,
//! `intake api --clients` and `intake clients`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use intake_engine::m2m::jws::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::conventions::is_object_id;

/// One registered M2M client.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    /// The client id (the assertion's `iss` and `sub`).
    pub client_id: String,
    /// The tenant the client acts for: 24 lowercase hex digits.
    pub tenant_id: String,
    /// The capabilities (= OAuth scopes) the client may be granted, e.g. `payments:create`.
    pub capabilities: Vec<String>,
    /// The client's public keys, by key id.
    pub keys: Vec<ClientKey>,
}

/// A registered public key of a client.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKey {
    /// The key id assertions name in their `kid` header.
    pub kid: String,
    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), P-256, P-384 or P-521.
    pub public_key_pem: String,
    /// After this instant (RFC 3339) assertions signed with this key are refused: a rotated-out
    /// key stays valid until then, so clients can switch keys without downtime. None: no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<DateTime<Utc>>,
}

impl ClientKey {
    /// Whether the key may still sign assertions at `now`.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.active_until.is_none_or(|until| now < until)
    }
}

/// Whether `kid` is a plain key id: `A-Z a-z 0-9 . _ -`, 1–128 characters, no `..`.
pub fn is_plain_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 128
        && !kid.contains("..")
        && kid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Every problem with a list of registrations (empty when valid), each naming its client and
/// key: empty or duplicate ids, bad tenant ids, capabilities with spaces, no keys, bad or
/// duplicate kids, keys that are not EC public keys.
pub fn client_problems(clients: &[ClientRegistration]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, client) in clients.iter().enumerate() {
        let at = format!("clients[{i}] ('{}')", client.client_id);
        if client.client_id.trim().is_empty() {
            problems.push(format!("{at}: client_id is empty"));
        }
        if !seen.insert(client.client_id.as_str()) {
            problems.push(format!("{at}: client_id is registered twice"));
        }
        if !is_object_id(&client.tenant_id) {
            problems.push(format!(
                "{at}: tenant_id '{}' is not 24 lowercase hex digits",
                client.tenant_id
            ));
        }
        for capability in &client.capabilities {
            if capability.is_empty() || capability.contains(char::is_whitespace) {
                problems.push(format!("{at}: capability '{capability}' is empty or has spaces"));
            }
        }
        if client.keys.is_empty() {
            problems.push(format!("{at}: no keys"));
        }
        let mut kids = BTreeSet::new();
        for key in &client.keys {
            if !is_plain_kid(&key.kid) {
                problems.push(format!(
                    "{at}: kid '{}' must be 1-128 of A-Z a-z 0-9 . _ - without '..'",
                    key.kid
                ));
            }
            if !kids.insert(key.kid.as_str()) {
                problems.push(format!("{at}: kid '{}' is registered twice", key.kid));
            }
            if let Err(e) = VerifyingKey::from_pem(&key.public_key_pem) {
                problems.push(format!("{at}: key '{}': {e}", key.kid));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_active_until_its_end() {
        let now = Utc::now();
        let key = |until| ClientKey {
            kid: "k".into(),
            public_key_pem: String::new(),
            active_until: until,
        };
        assert!(key(None).is_active_at(now));
        assert!(key(Some(now + chrono::Duration::seconds(1))).is_active_at(now));
        assert!(!key(Some(now)).is_active_at(now));
    }

    #[test]
    fn active_until_is_rfc3339_and_optional() {
        let key: ClientKey = serde_json::from_str(
            r#"{"kid": "k", "public_key_pem": "x", "active_until": "2026-01-02T03:04:05Z"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.active_until.map(|t| t.timestamp()), Some(1_767_323_045));
        let key: ClientKey = serde_json::from_str(r#"{"kid": "k", "public_key_pem": "x"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(key.active_until.is_none());
        assert!(!serde_json::to_string(&key).unwrap_or_default().contains("active_until"));
    }
}
