//! The platform clients the REST layer writes through (single-record retries, inline uploads).

use std::collections::HashMap;

use intake_engine::m2m::ApiClient;

/// The platform clients the REST layer writes through (inline uploads, single-record retries):
/// at most one per tenant, each the M2M client `intake serve`'s `[platform]` section describes
/// for that tenant (its `ClientConfig::tenant_id` is sent as `X-Tenant-ID`). A tenant without a
/// client cannot upload or retry inline (503 `platform_not_configured`).
#[derive(Debug, Clone, Default)]
pub struct PlatformClients {
    by_tenant: HashMap<String, ApiClient>,
}

impl PlatformClients {
    /// No client: nothing is written to the platform from the REST layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the client rows of `tenant` are written through.
    pub fn with_client(mut self, tenant: impl Into<String>, client: ApiClient) -> Self {
        self.by_tenant.insert(tenant.into(), client);
        self
    }

    /// The client of `tenant`, if one is configured.
    pub fn client(&self, tenant: &str) -> Option<ApiClient> {
        self.by_tenant.get(tenant).cloned()
    }

    /// Whether no tenant has a client.
    pub fn is_empty(&self) -> bool {
        self.by_tenant.is_empty()
    }
}
