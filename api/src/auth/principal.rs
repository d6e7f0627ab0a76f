//! The authenticated caller of a REST route and its capability checks.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::AccessTokenVerifier;
use crate::conventions::ApiError;

/// The capability that grants every `imports/…`, `rejected-records:…`, `alert-channels:…` and
/// `alert-routing-rules:…` capability.
pub const ADMIN_CAPABILITY: &str = "admin.imports.manage";

/// Who is calling: the client, its tenant (every read and write is scoped to it) and its
/// capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The client id (`client_id`, else `sub`).
    pub client_id: String,
    /// The tenant, from the token.
    pub tenant_id: String,
    /// The granted capabilities.
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// Whether the caller holds `capability`, directly or through [`ADMIN_CAPABILITY`].
    pub fn has(&self, capability: &str) -> bool {
        self.scopes.contains(capability) || self.scopes.contains(ADMIN_CAPABILITY)
    }

    /// Requires `capability` (403 `missing_capabilities` naming it otherwise).
    pub fn require(&self, capability: &str) -> Result<(), ApiError> {
        if self.has(capability) {
            Ok(())
        } else {
            Err(ApiError::MissingCapabilities(vec![capability.to_owned()]))
        }
    }
}

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    Arc<AccessTokenVerifier>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<AccessTokenVerifier>::from_ref(state);
        let token = match crate::conventions::authorization(&parts.headers)? {
            (scheme, token) if scheme.eq_ignore_ascii_case("bearer") => token,
            (scheme, _) => {
                return Err(ApiError::invalid_token(format!(
                    "unsupported authorization scheme '{scheme}': send Bearer <access token>"
                )));
            }
        };
        let principal = verifier.verify(token).map_err(ApiError::invalid_token)?;
        if let Some(tenant) = parts.headers.get("x-tenant-id") {
            let tenant = tenant.to_str().unwrap_or("");
            if tenant != principal.tenant_id {
                return Err(ApiError::TenantMismatch { header: tenant.to_owned() });
            }
        }
        Ok(principal)
    }
}
