//! Secrets a channel needs (a webhook's signing key), referenced by name in the channel's config
//! (`credential_name`, e.g. `env:ALERT_WEBHOOK_SECRET` or `file:/run/secrets/alert_webhook`).
//!
//! This crate does not resolve references itself: the caller passes a [`SecretResolver`] (the
//! engine adapts its credential resolver; any `Fn(&str) -> Result<ChannelSecret, SecretError>`
//! is one). A reference is resolved each time a message is sent, so a rotated secret takes effect
//! without rebuilding the channel. Neither [`ChannelSecret`]'s `Debug` nor any error prints the
//! secret's value.

use std::fmt;

/// A secret value. Its `Debug` output is `ChannelSecret(<redacted>)`; read it with
/// [`ChannelSecret::expose`] only where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelSecret(String);

impl ChannelSecret {
    /// Wraps a value that must not be logged.
    pub fn new(value: impl Into<String>) -> Self {
        ChannelSecret(value.into())
    }

    /// The secret value. Do not log or store what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelSecret(<redacted>)")
    }
}

/// Why a secret reference could not be resolved. It must never carry the secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential '{reference}' could not be resolved: {reason}")]
pub struct SecretError {
    /// The reference as configured.
    pub reference: String,
    /// What went wrong and what to do (never the secret itself).
    pub reason: String,
}

/// Resolves a credential reference to its secret.
pub trait SecretResolver: Send + Sync {
    /// The secret `reference` names.
    fn resolve(&self, reference: &str) -> Result<ChannelSecret, SecretError>;
}

impl<F> SecretResolver for F
where
    F: Fn(&str) -> Result<ChannelSecret, SecretError> + Send + Sync,
{
    fn resolve(&self, reference: &str) -> Result<ChannelSecret, SecretError> {
        self(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output_and_closures_resolve() {
        let secret = ChannelSecret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "ChannelSecret(<redacted>)");
        assert_eq!(secret.expose(), "hunter2");
        let resolver = |reference: &str| match reference {
            "env:HOOK" => Ok(ChannelSecret::new("s3cret")),
            other => Err(SecretError { reference: other.into(), reason: "not set".into() }),
        };
        assert_eq!(resolver.resolve("env:HOOK").map(|s| s.expose().len()), Ok(6));
        let error = resolver.resolve("env:OTHER").expect_err("unknown reference");
        assert_eq!(error.to_string(), "credential 'env:OTHER' could not be resolved: not set");
    }
}
