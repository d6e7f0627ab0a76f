//! The sandbox on a real socket, its one registered test client, and clients of it.

use std::time::Duration;

use intake_api::sandbox::{ClientKey, ClientRegistration, Faults, Sandbox, SandboxConfig};
use intake_engine::m2m::jws::{JwsAlgorithm, SigningKey};
use intake_engine::m2m::{ApiClient, ClientConfig, ClientCredentials, TokenManager};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

/// The tenant every test client acts for.
pub const TENANT: &str = "a1b2c3d4e5f6a7b8c9d0e1f2";
/// The client id of the main test client.
pub const CLIENT_ID: &str = "acme-integration";
/// Its key id.
pub const KID: &str = "2026-04-primary";
/// What the main test client may do: everything with `payments` (the transport tests) and with
/// `players` and `clubs` (the writer tests).
pub const CAPABILITIES: [&str; 15] = [
    "payments:list",
    "payments:read",
    "payments:create",
    "payments:update",
    "payments:delete",
    "players:list",
    "players:read",
    "players:create",
    "players:update",
    "players:delete",
    "clubs:list",
    "clubs:read",
    "clubs:create",
    "clubs:update",
    "clubs:delete",
];

/// A registration of `client_id` in the test tenant, with `key` under [`KID`].
pub fn registration(
    client_id: &str,
    capabilities: &[&str],
    key: &SigningKey,
) -> ClientRegistration {
    ClientRegistration {
        client_id: client_id.to_owned(),
        tenant_id: TENANT.to_owned(),
        capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
        keys: vec![ClientKey {
            kid: KID.to_owned(),
            public_key_pem: key.verifying_key().to_pem().unwrap(),
            active_until: None,
        }],
    }
}

/// A running sandbox on a real socket; stops when dropped.
pub struct Platform {
    /// The sandbox's state (items, faults, stats).
    pub sandbox: Sandbox,
    /// Its base URL (`http://127.0.0.1:<port>/`).
    pub url: Url,
    /// The main client's private key.
    pub key: SigningKey,
    cancel: CancellationToken,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Platform {
    /// A sandbox with the main client (ES256 key, every one of [`CAPABILITIES`]) registered.
    pub async fn start() -> Platform {
        Platform::start_with(|_| {}).await
    }

    /// Like [`Platform::start`], after `adjust` has changed the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut SandboxConfig)) -> Platform {
        Platform::start_for(&CAPABILITIES, adjust).await
    }

    /// Like [`Platform::start_with`], with the main client given exactly `capabilities`.
    pub async fn start_for(
        capabilities: &[&str],
        adjust: impl FnOnce(&mut SandboxConfig),
    ) -> Platform {
        let key = SigningKey::generate(JwsAlgorithm::Es256);
        let mut config = SandboxConfig {
            clients: vec![registration(CLIENT_ID, capabilities, &key)],
            access_token_lifetime_seconds: 900,
            ..SandboxConfig::default()
        };
        adjust(&mut config);
        let sandbox = Sandbox::try_new(config).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let cancel = CancellationToken::new();
        let (serving, stop) = (sandbox.clone(), cancel.clone());
        tokio::spawn(async move { serving.serve(listener, stop).await });
        Platform { sandbox, url, key, cancel }
    }

    /// Token requests the sandbox has received.
    pub fn token_requests(&self) -> u64 {
        self.sandbox.stats()["token_requests"].as_u64().unwrap()
    }

    /// Sets the sandbox's faults.
    pub fn set_faults(&self, faults: Faults) {
        self.sandbox.set_faults(faults);
    }

    /// Live (not soft-deleted) items of `resource` in the test tenant.
    pub fn items(&self, resource: &str) -> Vec<Value> {
        self.sandbox.items(TENANT, resource)
    }

    /// Every item of `resource`, soft-deleted ones included.
    pub fn all_items(&self, resource: &str) -> Vec<Value> {
        self.sandbox.all_items(TENANT, resource)
    }

    /// Stores `documents` directly (no auth, no faults); returns them with their system fields.
    pub fn seed(&self, resource: &str, documents: Vec<Value>) -> Vec<Value> {
        documents.into_iter().map(|d| self.sandbox.insert(TENANT, resource, d)).collect()
    }

    /// The live item of `resource` whose `field` is `value` (exactly one).
    pub fn item_where(&self, resource: &str, field: &str, value: &Value) -> Value {
        let found: Vec<Value> =
            self.items(resource).into_iter().filter(|i| i.get(field) == Some(value)).collect();
        assert_eq!(found.len(), 1, "items of {resource} with {field} = {value}: {found:?}");
        found.into_iter().next().unwrap()
    }

    /// Credentials of the main client for the platform at `base` (the sandbox or a proxy),
    /// asking for every one of [`CAPABILITIES`].
    pub fn credentials(&self, base: &Url) -> ClientCredentials {
        ClientCredentials {
            token_url: base.join("auth/token").unwrap(),
            client_id: CLIENT_ID.to_owned(),
            kid: KID.to_owned(),
            key: self.key.clone(),
            scopes: CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
            dpop_key: None,
        }
    }

    /// A client of the main test client talking to `base` with fast retries.
    pub fn client(&self, base: &Url) -> ApiClient {
        self.client_with(base, |_, _| {})
    }

    /// Like [`Platform::client`], after `adjust` has changed the configuration and credentials.
    pub fn client_with(
        &self,
        base: &Url,
        adjust: impl FnOnce(&mut ClientConfig, &mut ClientCredentials),
    ) -> ApiClient {
        let mut config = fast_config(base);
        let mut credentials = self.credentials(base);
        adjust(&mut config, &mut credentials);
        build_client(config, credentials)
    }
}

/// The default client configuration for `base`, with short backoff so tests run fast.
pub fn fast_config(base: &Url) -> ClientConfig {
    ClientConfig {
        base_url: base.clone(),
        tenant_id: Some(TENANT.to_owned()),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

/// A client from a configuration and credentials, on its own HTTP client.
pub fn build_client(config: ClientConfig, credentials: ClientCredentials) -> ApiClient {
    let http = ApiClient::http_client(&config).unwrap();
    let tokens = TokenManager::new(http.clone(), credentials);
    ApiClient::new(config, tokens, http)
}
