//! Who is calling a resource route: the access token (Bearer or DPoP-bound), the DPoP proof,
//! `X-Tenant-ID`, and the capability checks.

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::dpop;

/// The authenticated caller of a resource route.
#[derive(Debug)]
pub(crate) struct Principal {
    /// The client id.
    pub(crate) client_id: String,
    /// The tenant every read and write is scoped to.
    pub(crate) tenant_id: String,
    /// The granted capabilities.
    scopes: BTreeSet<String>,
}

impl Principal {
    /// Requires one capability (403 `missing_capabilities` otherwise).
    pub(crate) fn require(&self, capability: &str) -> Result<(), ApiError> {
        if self.scopes.contains(capability) {
            Ok(())
        } else {
            Err(ApiError::MissingCapabilities(vec![capability.to_owned()]))
        }
    }

    /// Requires `capability`, or accepts `alternative` instead (reported missing: `capability`).
    pub(crate) fn require_either(
        &self,
        capability: &str,
        alternative: &str,
    ) -> Result<(), ApiError> {
        if self.scopes.contains(alternative) { Ok(()) } else { self.require(capability) }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (scheme, token) = crate::conventions::authorization(&parts.headers)?;
        let is_dpop = if scheme.eq_ignore_ascii_case("bearer") {
            false
        } else if scheme.eq_ignore_ascii_case("dpop") {
            true
        } else {
            return Err(ApiError::invalid_token(format!(
                "unsupported authorization scheme '{scheme}'"
            )));
        };
        let claims = app.authority.verify_access_token(token).map_err(ApiError::invalid_token)?;
        match (&claims.jkt, is_dpop) {
            (None, false) => {}
            (Some(_), false) => {
                return Err(ApiError::invalid_dpop(
                    "this access token is DPoP-bound: send Authorization: DPoP <token> and a DPoP proof",
                ));
            }
            (None, true) => {
                return Err(ApiError::invalid_token(
                    "this access token is not DPoP-bound: send Authorization: Bearer <token>",
                ));
            }
            (Some(jkt), true) => {
                let url = format!("{}{}", app.base_url(&parts.headers), parts.uri.path());
                let requirements = dpop::Requirements {
                    method: parts.method.as_str(),
                    url: &url,
                    access_token: Some(token),
                    bound_jkt: Some(jkt),
                };
                dpop::check_proof(&app.authority, &parts.headers, &requirements)
                    .map_err(ApiError::invalid_dpop)?;
            }
        }
        if let Some(tenant) = parts.headers.get("x-tenant-id") {
            let tenant = tenant.to_str().unwrap_or("");
            if tenant != claims.tenant_id {
                return Err(ApiError::TenantMismatch { header: tenant.to_owned() });
            }
        }
        Ok(Principal {
            client_id: claims.client_id,
            tenant_id: claims.tenant_id,
            scopes: claims.scopes,
        })
    }
}
