//! The pinned host key of an SFTP server: an OpenSSH known_hosts entry or a `SHA256:` fingerprint,
//! and the check every connection makes against it. An unknown or changed key is refused.

use russh::keys::ssh_key::{Algorithm, PublicKey};
use russh::keys::{HashAlg, parse_public_key_base64};

/// What the server's host key must be.
#[derive(Debug, Clone)]
pub(crate) enum HostKeyPin {
    /// Any of these keys (the lines of a known_hosts entry, e.g. from `ssh-keyscan`).
    Keys(Vec<PublicKey>),
    /// The SHA-256 fingerprint as `ssh-keygen -lf` prints it (`SHA256:` + unpadded base64).
    Fingerprint(String),
}

impl HostKeyPin {
    /// Parses a known_hosts entry: one or more lines `hosts keytype base64 [comment]` (the hosts
    /// field may be left out, hashed host names are fine). `@cert-authority` and `@revoked`
    /// markers are refused.
    pub(crate) fn from_known_hosts(entry: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for line in entry.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first().is_some_and(|f| f.starts_with('@')) {
                return Err("markers such as @cert-authority or @revoked are not supported".into());
            }
            let key = [(1, 2), (0, 1)]
                .iter()
                .filter_map(|&(t, k)| Some((*fields.get(t)?, *fields.get(k)?)))
                .find_map(|(kind, data)| {
                    let key = parse_public_key_base64(data).ok()?;
                    (key.algorithm().as_str() == kind
                        || key.algorithm().is_rsa() && kind == "ssh-rsa")
                        .then_some(key)
                });
            match key {
                Some(key) => keys.push(key),
                None => {
                    return Err(format!(
                        "{:?} is not a known_hosts line (hosts keytype base64)",
                        truncate(line)
                    ));
                }
            }
        }
        if keys.is_empty() {
            return Err("holds no key".into());
        }
        Ok(Self::Keys(keys))
    }

    /// Parses a `SHA256:…` fingerprint (43 characters of unpadded base64 after the prefix).
    pub(crate) fn from_fingerprint(fingerprint: &str) -> Result<Self, String> {
        let fingerprint = fingerprint.trim();
        let Some(b64) = fingerprint.strip_prefix("SHA256:") else {
            return Err("must start with 'SHA256:' (as `ssh-keygen -lf` prints it)".into());
        };
        let b64 = b64.trim_end_matches('=');
        if b64.len() != 43
            || !b64.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        {
            return Err(
                "is not a SHA-256 fingerprint (43 base64 characters after 'SHA256:')".into()
            );
        }
        Ok(Self::Fingerprint(format!("SHA256:{b64}")))
    }

    /// Accepts the server's key, or says what was presented and what was expected.
    pub(crate) fn check(&self, key: &PublicKey) -> Result<(), String> {
        let presented = fingerprint(key);
        let expected = match self {
            Self::Keys(keys) => {
                if keys.iter().any(|k| k.key_data() == key.key_data()) {
                    return Ok(());
                }
                keys.iter().map(fingerprint).collect::<Vec<_>>().join(" or ")
            }
            Self::Fingerprint(pinned) => {
                if *pinned == presented {
                    return Ok(());
                }
                pinned.clone()
            }
        };
        Err(format!(
            "the server presented {} key {presented}, but {expected} is pinned; if the server's key \
             really changed, update the pin",
            key.algorithm().as_str()
        ))
    }

    /// The host-key algorithms to ask for first, so that a server with several host keys shows
    /// the pinned one (all algorithms stay allowed: a fingerprint pin does not say which).
    pub(crate) fn preferred_algorithms(&self, defaults: &[Algorithm]) -> Vec<Algorithm> {
        let Self::Keys(keys) = self else { return defaults.to_vec() };
        let pinned = |a: &Algorithm| {
            keys.iter().any(|k| {
                let p = k.algorithm();
                &p == a || (p.is_rsa() && matches!(a, Algorithm::Rsa { .. }))
            })
        };
        let (mut first, rest): (Vec<_>, Vec<_>) = defaults.iter().cloned().partition(pinned);
        first.extend(rest);
        first
    }
}

/// The key's SHA-256 fingerprint as `ssh-keygen -lf` prints it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn truncate(line: &str) -> String {
    line.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEF555IQLheVqQMTfAZuZNnV8WnldXT6nrG10cLKpnXi";

    #[test]
    fn known_hosts_lines_parse_with_or_without_hosts() {
        let with = format!("[127.0.0.1]:2222 ssh-ed25519 {ED} comment\n");
        let HostKeyPin::Keys(keys) = HostKeyPin::from_known_hosts(&with).unwrap() else {
            panic!("keys expected")
        };
        assert_eq!(keys.len(), 1);
        assert!(HostKeyPin::from_known_hosts(&format!("ssh-ed25519 {ED}")).is_ok());
        assert!(HostKeyPin::from_known_hosts("host ssh-ed25519 notbase64").is_err());
        assert!(HostKeyPin::from_known_hosts(&format!("@revoked h ssh-ed25519 {ED}")).is_err());
        assert!(HostKeyPin::from_known_hosts("# only a comment").is_err());
        assert!(HostKeyPin::from_known_hosts(&format!("h ssh-rsa {ED}")).is_err());
    }

    #[test]
    fn fingerprints_are_checked_against_the_presented_key() {
        let key = parse_public_key_base64(ED).unwrap();
        let good = fingerprint(&key);
        assert!(good.starts_with("SHA256:"));
        assert!(HostKeyPin::from_fingerprint(&good).unwrap().check(&key).is_ok());
        let wrong = format!("SHA256:{}", "A".repeat(43));
        let err = HostKeyPin::from_fingerprint(&wrong).unwrap().check(&key).unwrap_err();
        assert!(err.contains(&good) && err.contains(&wrong), "{err}");
        assert!(HostKeyPin::from_fingerprint("MD5:aa:bb").is_err());
        assert!(HostKeyPin::from_fingerprint("SHA256:short").is_err());
    }
}
