//! The one error type of the HTTP handlers (sandbox and REST layer), rendering the platform's
//! error bodies.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One field error of a 422 answer, FastAPI style.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Where: `["body", "amount"]`, `["body", "lines", 0, "sku"]`.
    pub loc: Vec<Value>,
    /// What is wrong, for a person.
    pub msg: String,
    /// The kind of error (the JSON Schema keyword, `readonly`, …).
    pub kind: String,
}

/// Everything a sandbox handler can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A token endpoint error: `{"error", "error_description"}` with the spec's status.
    #[error("{error}: {description}")]
    OAuth {
        /// HTTP status (400 or 401).
        status: StatusCode,
        /// The OAuth error code (`invalid_request`, `invalid_client`, …).
        error: &'static str,
        /// The explanation.
        description: String,
    },
    /// The client is locked after repeated failures (429 with `Retry-After`).
    #[error("client '{client_id}' is locked for {retry_after} more seconds")]
    Locked {
        /// The locked client.
        client_id: String,
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// A resource call without a valid access token or DPoP proof (401).
    #[error("{error}: {description}")]
    Unauthorized {
        /// `invalid_token` or `invalid_dpop_proof`.
        error: &'static str,
        /// The explanation.
        description: String,
    },
    /// The token lacks capabilities (403).
    #[error("missing capabilities: {0:?}")]
    MissingCapabilities(Vec<String>),
    /// `X-Tenant-ID` names another tenant than the token's (403).
    #[error("X-Tenant-ID '{header}' is not the token's tenant")]
    TenantMismatch {
        /// The header's value.
        header: String,
    },
    /// Unknown resource, id, or another tenant's item (404).
    #[error("not found")]
    NotFound,
    /// Malformed input: query parameters, `where`, body (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// PATCH/PUT/DELETE without `If-Match` (428).
    #[error("If-Match required")]
    PreconditionRequired,
    /// `If-Match` does not match the current revision (412).
    #[error("ETag mismatch")]
    PreconditionFailed {
        /// The item as it is now.
        current: Value,
        /// Its ETag.
        etag: String,
    },
    /// The body fails the resource's schema or a read-only field rule (422).
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// An `Idempotency-Key` reused for a different request (422).
    #[error("Idempotency-Key '{0}' was already used for a different request")]
    IdempotencyKeyReused(String),
    /// Injected or rate-limit 429 with `Retry-After`.
    #[error("too many requests")]
    Throttled {
        /// Seconds for `Retry-After`.
        retry_after: u64,
    },
    /// The caller may not do this to this item, whatever its capabilities (403).
    #[error("{error}: {message}")]
    Forbidden {
        /// A stable code (`shared_template_read_only`, …).
        error: &'static str,
        /// The explanation.
        message: String,
    },
    /// The request conflicts with the item's state or its children (409).
    #[error("{error}: {message}")]
    Conflict {
        /// A stable code (`illegal_transition`, `has_dependents`, …).
        error: &'static str,
        /// The explanation.
        message: String,
    },
    /// The body (or an uploaded file, or a form field) is larger than the route accepts (413).
    #[error("request too large: {0}")]
    PayloadTooLarge(String),
    /// A dependency is not available or not configured (503).
    #[error("{error}: {message}")]
    Unavailable {
        /// A stable code (`state_store_unavailable`, `queue_not_configured`, …).
        error: &'static str,
        /// The explanation.
        message: String,
    },
    /// Injected 503.
    #[error("injected server error")]
    ServerError,
    /// The sandbox's own configuration is broken (500), e.g. a schema that does not compile.
    #[error("sandbox misconfigured: {0}")]
    Misconfigured(String),
}

impl ApiError {
    /// An OAuth `invalid_request` (400).
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        ApiError::OAuth {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }

    /// An OAuth `invalid_client` (401).
    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        ApiError::OAuth {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
        }
    }

    /// An OAuth `invalid_grant` (400).
    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        ApiError::OAuth {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: description.into(),
        }
    }

    /// An OAuth `invalid_scope` (400).
    pub(crate) fn invalid_scope(description: impl Into<String>) -> Self {
        ApiError::OAuth {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_scope",
            description: description.into(),
        }
    }

    /// An `invalid_dpop_proof` at the token endpoint (401, as the spec's table says).
    pub(crate) fn token_dpop(description: impl Into<String>) -> Self {
        ApiError::OAuth {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_dpop_proof",
            description: description.into(),
        }
    }

    /// A resource call's `invalid_token` (401).
    pub fn invalid_token(description: impl Into<String>) -> Self {
        ApiError::Unauthorized { error: "invalid_token", description: description.into() }
    }

    /// A resource call's `invalid_dpop_proof` (401).
    pub(crate) fn invalid_dpop(description: impl Into<String>) -> Self {
        ApiError::Unauthorized { error: "invalid_dpop_proof", description: description.into() }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::OAuth { status, .. } => *status,
            ApiError::Locked { .. } | ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::MissingCapabilities(_)
            | ApiError::TenantMismatch { .. }
            | ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::Validation(_) | ApiError::IdempotencyKeyReused(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ServerError | ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body of this error.
    fn body(&self) -> Value {
        match self {
            ApiError::OAuth { error, description, .. } => {
                json!({"error": error, "error_description": description})
            }
            ApiError::Locked { client_id, retry_after } => json!({
                "error": "rate_limited",
                "error_description": format!(
                    "Client '{client_id}' is locked after 5 consecutive failed token requests; \
                     retry in {retry_after} s"
                ),
            }),
            ApiError::Unauthorized { error, description } => {
                json!({"detail": {"error": error, "error_description": description}})
            }
            ApiError::MissingCapabilities(missing) => {
                json!({"detail": {"error": "missing_capabilities", "missing": missing}})
            }
            ApiError::TenantMismatch { header } => json!({"detail": {
                "error": "tenant_mismatch",
                "message": format!("X-Tenant-ID '{header}' is not the tenant of the access token"),
            }}),
            ApiError::NotFound => json!({"detail": "Not Found"}),
            ApiError::BadRequest(message) => json!({"detail": message}),
            ApiError::PreconditionRequired => json!({
                "detail": "If-Match header required: send the item's ETag (PATCH, PUT and DELETE)"
            }),
            ApiError::PreconditionFailed { current, etag } => json!({
                "detail": format!("ETag mismatch: the item was modified; its current ETag is {etag}"),
                "current": current,
            }),
            ApiError::Validation(errors) => json!({
                "detail": errors
                    .iter()
                    .map(|e| json!({"loc": e.loc, "msg": e.msg, "type": e.kind}))
                    .collect::<Vec<_>>()
            }),
            ApiError::IdempotencyKeyReused(key) => json!({"detail": {
                "error": "idempotency_key_reused",
                "message": format!(
                    "Idempotency-Key '{key}' was already used for a different request"
                ),
            }}),
            ApiError::Throttled { retry_after } => json!({
                "detail": format!("Too Many Requests: retry after {retry_after} s")
            }),
            ApiError::Forbidden { error, message }
            | ApiError::Conflict { error, message }
            | ApiError::Unavailable { error, message } => {
                json!({"detail": {"error": error, "message": message}})
            }
            ApiError::PayloadTooLarge(message) => json!({"detail": {
                "error": "payload_too_large",
                "message": message,
            }}),
            ApiError::ServerError => json!({
                "error": "server_error",
                "error_description": "Service temporarily unavailable (injected by the sandbox)",
            }),
            ApiError::Misconfigured(message) => json!({"detail": message}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Locked { retry_after, .. } | ApiError::Throttled { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::OAuth { .. } => {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            ApiError::Unauthorized { error, description } => {
                let scheme = if *error == "invalid_dpop_proof" { "DPoP" } else { "Bearer" };
                let algs = if scheme == "DPoP" { ", algs=\"ES256 ES384 ES512\"" } else { "" };
                let description: String =
                    description.chars().filter(|c| *c != '"' && *c != '\\').collect();
                let value = format!(
                    "{scheme} error=\"{error}\", error_description=\"{description}\"{algs}"
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            ApiError::PreconditionFailed { etag, .. } => {
                if let Ok(v) = HeaderValue::from_str(etag) {
                    headers.insert(header::ETAG, v);
                }
            }
            _ => {}
        }
        response
    }
}
