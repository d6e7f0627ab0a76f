//! The errors of the M2M transport: [`AuthError`] for the token endpoint, [`ApiError`] for
//! resource requests, and the [`ErrorDomain`] each belongs to.
//!
//! Every error says what to do next and carries whether repeating the operation later could help
//! ([`ApiError::is_retryable`]) and whose problem it is ([`ApiError::domain`]), so the engine can
//! turn it into reject-the-row, retry-the-run or fail-and-alert. No error carries a client
//! assertion, an access token or a DPoP proof.

use std::time::Duration;

use super::client::Item;

/// Whose problem an error is: it decides between rejecting a row, retrying, and alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorDomain {
    /// Bad data from the user (a row the platform refuses): reject the row, the run goes on.
    Data,
    /// The platform, the network or the platform-side configuration of the client (keys,
    /// capabilities): retry later, or fail the run and alert an operator.
    External,
    /// A bug in intake itself (a request the contract says we must never send).
    Internal,
}

/// The longest response body quoted in an error message.
const MAX_QUOTED_BODY: usize = 2048;

/// Shortens a response body for an error message (on a character boundary).
pub(crate) fn quote_body(body: &str) -> String {
    if body.len() <= MAX_QUOTED_BODY {
        return body.to_owned();
    }
    let mut end = MAX_QUOTED_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &body[..end], body.len())
}

/// A failure to obtain an access token from the platform's token endpoint (`POST /auth/token`).
/// The variants follow the spec's authentication error table; each message names what to check.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// `400 invalid_request`: the token request is malformed.
    #[error(
        "token request refused (invalid_request: {description}); check grant_type and \
         client_assertion_type — this is a bug in intake if it persists"
    )]
    InvalidRequest {
        /// The server's `error_description`.
        description: String,
    },
    /// `401 invalid_client`: unknown client, unknown or inactive `kid`, bad signature, wrong
    /// algorithm for the key.
    #[error(
        "client authentication failed (invalid_client: {description}); check the client_id, the \
         kid and that the private key matches the public key registered for it"
    )]
    InvalidClient {
        /// The server's `error_description`.
        description: String,
    },
    /// `400 invalid_grant`: the assertion was expired, replayed, for another audience or issuer.
    #[error(
        "client assertion refused (invalid_grant: {description}); check this machine's clock \
         (iat/exp), that the token URL is exactly the platform's (aud) and the client_id (iss/sub)"
    )]
    InvalidGrant {
        /// The server's `error_description`.
        description: String,
    },
    /// `400 invalid_scope`: a requested capability is unknown or not assigned to the client.
    #[error(
        "scope refused (invalid_scope: {description}); check the client's capabilities in the \
         platform's Admin UI, or request fewer scopes"
    )]
    InvalidScope {
        /// The server's `error_description`.
        description: String,
    },
    /// `invalid_dpop_proof`: the DPoP proof on the token request is missing or malformed.
    #[error(
        "DPoP proof refused (invalid_dpop_proof: {description}); check the DPoP key and this \
         machine's clock"
    )]
    InvalidDpopProof {
        /// The server's `error_description`.
        description: String,
    },
    /// `429`: the client is locked out after repeated failures, or rate limited.
    #[error(
        "the token endpoint refuses this client for {}s (lockout after repeated failures or rate \
         limit); fix the cause of the earlier failures, then wait",
        retry_after.as_secs()
    )]
    Locked {
        /// How long to wait, from `Retry-After`.
        retry_after: Duration,
    },
    /// `503 server_error` (or another 5xx) on every attempt.
    #[error(
        "the token endpoint is unavailable after {attempts} attempts ({description}); retry later"
    )]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last answer or error.
        description: String,
    },
    /// The token endpoint could not be reached (connection refused, timeout, TLS) on every attempt.
    #[error("cannot reach the token endpoint: {0}; check the token URL and the network")]
    Transport(String),
    /// The client assertion or DPoP proof could not be signed (a bad key).
    #[error("cannot sign the client assertion or DPoP proof: {0}; check the private key")]
    Signing(String),
    /// An answer the contract does not describe.
    #[error("unexpected answer from the token endpoint: HTTP {status}: {body}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The response body (shortened).
        body: String,
    },
}

impl AuthError {
    /// Whether asking again later could succeed without anyone changing configuration.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AuthError::Locked { .. } | AuthError::Unavailable { .. } | AuthError::Transport(_)
        )
    }

    /// Whose problem this is.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            AuthError::InvalidRequest { .. } | AuthError::InvalidDpopProof { .. } => {
                ErrorDomain::Internal
            }
            _ => ErrorDomain::External,
        }
    }
}

/// One field error from a `422` answer: which field, what is wrong, and the platform's error
/// type if it gave one. These become the errors of a rejected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path (`amount`, `lines.0.qty`), without FastAPI's leading `body`; `None`
    /// when the error is about the whole record.
    pub field: Option<String>,
    /// The platform's message.
    pub message: String,
    /// The platform's error type or code (`missing`, `string_too_short`, …), if any.
    pub kind: Option<String>,
}

/// A failed resource request. See [`ApiError::is_retryable`] and [`ApiError::domain`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// `422`: the platform refused the record's content. The row becomes a rejected record
    /// carrying these field errors; the run goes on.
    #[error("the platform refused the record (HTTP {status}): {}", summarize_fields(errors))]
    Validation {
        /// The HTTP status (422).
        status: u16,
        /// The field errors parsed from the body.
        errors: Vec<FieldError>,
    },
    /// `412`: the item changed since its ETag was read. Re-read it and re-apply the change.
    #[error("the item changed since it was read (HTTP 412); re-read it and apply the change again")]
    PreconditionFailed {
        /// The current item, when the platform sent it with the 412.
        current: Option<Item>,
    },
    /// `404`: no such item (or it belongs to another tenant).
    #[error(
        "not found (HTTP 404): the item does not exist, was deleted, or belongs to another tenant"
    )]
    NotFound,
    /// `403`: the token lacks capabilities for this endpoint.
    #[error("forbidden (HTTP 403): {}", forbidden_message(missing))]
    Forbidden {
        /// The missing capabilities (`payments:create`, …).
        missing: Vec<String>,
    },
    /// `401` again after one fresh token: the platform does not accept this client's tokens.
    #[error(
        "unauthorized (HTTP 401) even with a fresh token: {detail}; check the client's keys, its \
         tenant and the platform's token settings"
    )]
    Unauthorized {
        /// What the platform said.
        detail: String,
    },
    /// `428`: a change was sent without `If-Match` — a bug in intake.
    #[error("the platform requires If-Match (HTTP 428); this is a bug in intake")]
    PreconditionRequired,
    /// `409`: e.g. a cascade delete denied because children exist.
    #[error("conflict (HTTP 409): {detail}; resolve the dependent records first")]
    Conflict {
        /// What the platform said.
        detail: String,
    },
    /// `400`: malformed input (e.g. an invalid `where`).
    #[error("bad request (HTTP 400): {detail}; check the filter and the record's values")]
    BadRequest {
        /// What the platform said.
        detail: String,
    },
    /// Retries used up on 5xx, 429, timeouts or dropped connections.
    #[error(
        "gave up after {attempts} attempts, the last: {last}; the platform or the network is failing, retry later"
    )]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// No access token could be obtained.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A request that could not be sent at all (not retried).
    #[error("cannot send the request: {0}")]
    Transport(String),
    /// The client is misconfigured (base URL, TLS set-up).
    #[error("the M2M client is misconfigured: {0}")]
    Config(String),
    /// An answer the contract does not describe.
    #[error("unexpected answer from the platform: HTTP {status}: {body}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The response body (shortened).
        body: String,
    },
}

fn forbidden_message(missing: &[String]) -> String {
    if missing.is_empty() {
        "the client may not do this; check its capabilities in the platform's Admin UI and that \
         the configured tenant (X-Tenant-ID) is the client's own"
            .to_owned()
    } else {
        format!(
            "the client lacks {}; assign them to the client in the platform's Admin UI and \
             request them as scopes",
            missing.join(", ")
        )
    }
}

fn summarize_fields(errors: &[FieldError]) -> String {
    if errors.is_empty() {
        return "no details given".to_owned();
    }
    errors
        .iter()
        .map(|e| match &e.field {
            Some(field) => format!("{field}: {}", e.message),
            None => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// Whether repeating the same request later (a new job attempt) could succeed without anyone
    /// changing data or configuration. `PreconditionFailed` is `false`: it needs a re-read first.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Exhausted { .. } | ApiError::Transport(_) => true,
            ApiError::Auth(e) => e.is_retryable(),
            ApiError::Unexpected { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Whose problem this is: [`ErrorDomain::Data`] errors reject the row and the run goes on.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ApiError::Validation { .. }
            | ApiError::NotFound
            | ApiError::Conflict { .. }
            | ApiError::BadRequest { .. } => ErrorDomain::Data,
            ApiError::PreconditionRequired | ApiError::Config(_) => ErrorDomain::Internal,
            ApiError::Auth(e) => e.domain(),
            ApiError::PreconditionFailed { .. }
            | ApiError::Forbidden { .. }
            | ApiError::Unauthorized { .. }
            | ApiError::Exhausted { .. }
            | ApiError::Transport(_)
            | ApiError::Unexpected { .. } => ErrorDomain::External,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_shortened_on_a_char_boundary() {
        let body = "é".repeat(3000);
        let quoted = quote_body(&body);
        assert!(quoted.len() < 2100 && quoted.ends_with("(6000 bytes in all)"));
    }

    #[test]
    fn domains_and_retryability() {
        let v = ApiError::Validation { status: 422, errors: vec![] };
        assert_eq!((v.domain(), v.is_retryable()), (ErrorDomain::Data, false));
        let e = ApiError::Exhausted { attempts: 8, last: "HTTP 503".into() };
        assert_eq!((e.domain(), e.is_retryable()), (ErrorDomain::External, true));
        let a = ApiError::Auth(AuthError::InvalidClient { description: "x".into() });
        assert_eq!((a.domain(), a.is_retryable()), (ErrorDomain::External, false));
        let l = ApiError::Auth(AuthError::Locked { retry_after: Duration::from_secs(900) });
        assert!(l.is_retryable());
        assert!(l.to_string().contains("900s"));
        assert_eq!(ApiError::PreconditionRequired.domain(), ErrorDomain::Internal);
    }

    #[test]
    fn forbidden_names_missing_capabilities() {
        let f = ApiError::Forbidden { missing: vec!["payments:create".into()] };
        assert!(f.to_string().contains("payments:create"));
    }
}
