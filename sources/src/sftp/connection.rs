//! One SSH connection with its SFTP session: connecting with a timeout, checking the host key
//! against the pin, authenticating with the referenced credentials — and the cache that keeps
//! one connection for a source's operations, re-establishing it (with backoff) when it fails.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, decode_secret_key};
use russh_sftp::client::SftpSession;
use tokio::sync::Mutex;

use super::SftpConfig;
use super::host_key::HostKeyPin;
use crate::SourceError;
use crate::credentials::CredentialLookup;

/// The longest wait between two connection attempts after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A live connection: the SSH handle (kept so the session stays open) and its SFTP session.
pub(crate) struct Connection {
    handle: client::Handle<HostKeyCheck>,
    pub(crate) sftp: SftpSession,
    /// The root as the server resolves it (symlinks followed): every resolved path must be
    /// inside it.
    pub(crate) real_root: String,
}

impl Connection {
    fn is_alive(&self) -> bool {
        !self.handle.is_closed()
    }
}

/// Checks the server's host key during the handshake and remembers why it refused one.
pub(crate) struct HostKeyCheck {
    pin: Arc<HostKeyPin>,
    rejected: Arc<StdMutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.pin.check(key),
            PublicKeyOrCertificate::Certificate(_) => {
                Err("the server presented a certificate; pin its host key instead".to_owned())
            }
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(reason) => {
                if let Ok(mut slot) = self.rejected.lock() {
                    *slot = Some(reason);
                }
                Ok(false)
            }
        }
    }
}

/// Everything needed to (re)connect, and the cached connection.
pub(crate) struct Connector {
    source_name: String,
    config: SftpConfig,
    pin: Arc<HostKeyPin>,
    credentials: CredentialLookup,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    connection: Option<Arc<Connection>>,
    failures: u32,
    next_attempt: Option<Instant>,
}

impl Connector {
    pub(crate) fn new(
        source_name: String,
        config: SftpConfig,
        pin: HostKeyPin,
        credentials: CredentialLookup,
    ) -> Self {
        Self {
            source_name,
            config,
            pin: Arc::new(pin),
            credentials,
            state: Mutex::new(CacheState::default()),
        }
    }

    fn endpoint(&self) -> String {
        format!(
            "sftp://{}@{}:{}{}",
            self.config.username, self.config.host, self.config.port, self.config.root
        )
    }

    fn unavailable(&self, kind: std::io::ErrorKind, message: String) -> SourceError {
        SourceError::RootUnavailable {
            source_name: self.source_name.clone(),
            root: self.endpoint(),
            error: std::io::Error::new(kind, message),
        }
    }

    /// The cached connection when it is alive; otherwise a new one, unless the last attempts
    /// failed and the backoff (1 s, 2 s, 4 s… up to a minute) has not passed yet.
    pub(crate) async fn get(&self) -> Result<Arc<Connection>, SourceError> {
        let mut state = self.state.lock().await;
        if let Some(connection) = &state.connection {
            if connection.is_alive() {
                return Ok(Arc::clone(connection));
            }
            tracing::info!(source = %self.source_name, "sftp connection closed; reconnecting");
            state.connection = None;
        }
        if let Some(at) = state.next_attempt {
            let now = Instant::now();
            if at > now {
                return Err(self.unavailable(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "reconnecting after {} failed attempt(s); next attempt in {} s",
                        state.failures,
                        (at - now).as_secs().max(1)
                    ),
                ));
            }
        }
        let timeout = Duration::from_secs(self.config.connect_timeout_seconds);
        let result = match tokio::time::timeout(timeout, self.connect()).await {
            Ok(result) => result,
            Err(_) => Err(self.unavailable(
                std::io::ErrorKind::TimedOut,
                format!("connecting took longer than {} s", timeout.as_secs()),
            )),
        };
        match result {
            Ok(connection) => {
                let connection = Arc::new(connection);
                *state =
                    CacheState { connection: Some(Arc::clone(&connection)), ..Default::default() };
                Ok(connection)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let backoff = Duration::from_secs(1u64 << state.failures.min(6).saturating_sub(1))
                    .min(MAX_BACKOFF);
                state.next_attempt = Some(Instant::now() + backoff);
                Err(error)
            }
        }
    }

    /// Forgets the cached connection (after an error that may have broken it) unless a newer
    /// one replaced it meanwhile.
    pub(crate) async fn discard(&self, broken: &Arc<Connection>) {
        let mut state = self.state.lock().await;
        if state.connection.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
            state.connection = None;
        }
    }

    fn secret(&self, field: &str, reference: &str) -> Result<crate::SecretValue, SourceError> {
        (self.credentials)(reference).map_err(|reason| SourceError::AuthenticationFailed {
            source_name: self.source_name.clone(),
            reason: format!("{field}: {reason}"),
        })
    }

    async fn connect(&self) -> Result<Connection, SourceError> {
        let rejected = Arc::new(StdMutex::new(None));
        let handler = HostKeyCheck { pin: Arc::clone(&self.pin), rejected: Arc::clone(&rejected) };
        let mut ssh_config = client::Config {
            inactivity_timeout: Some(Duration::from_secs(self.config.idle_timeout_seconds)),
            keepalive_interval: Some(Duration::from_secs(15)),
            nodelay: true,
            ..Default::default()
        };
        ssh_config.preferred.key = self.pin.preferred_algorithms(&ssh_config.preferred.key).into();
        let address = (self.config.host.as_str(), self.config.port);
        let mut handle = match client::connect(Arc::new(ssh_config), address, handler).await {
            Ok(handle) => handle,
            Err(error) => {
                let reason = rejected.lock().ok().and_then(|mut r| r.take());
                if let Some(reason) = reason {
                    return Err(SourceError::HostKeyRejected {
                        source_name: self.source_name.clone(),
                        host: format!("{}:{}", self.config.host, self.config.port),
                        reason,
                    });
                }
                return Err(self.unavailable(io_kind(&error), format!("cannot connect: {error}")));
            }
        };
        let user = self.config.username.clone();
        let auth_failed = |reason: String| SourceError::AuthenticationFailed {
            source_name: self.source_name.clone(),
            reason,
        };
        let lost = |e: russh::Error| self.unavailable(io_kind(&e), format!("during login: {e}"));
        let (method, result) = if let Some(reference) = &self.config.password_credential {
            let password = self.secret("password_credential", reference)?;
            ("password", handle.authenticate_password(user.clone(), password.expose()).await)
        } else if let Some(reference) = &self.config.private_key_credential {
            let pem = self.secret("private_key_credential", reference)?;
            let passphrase = match &self.config.private_key_passphrase_credential {
                Some(r) => Some(self.secret("private_key_passphrase_credential", r)?),
                None => None,
            };
            let key = decode_secret_key(pem.expose(), passphrase.as_ref().map(|p| p.expose()))
                .map_err(|e| {
                    auth_failed(format!(
                        "private_key_credential '{reference}' is not a usable private key ({e})"
                    ))
                })?;
            let hash = handle.best_supported_rsa_hash().await.map_err(lost)?.flatten();
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            ("public key", handle.authenticate_publickey(user.clone(), key).await)
        } else {
            return Err(auth_failed("no password_credential or private_key_credential".into()));
        };
        if !result.map_err(lost)?.success() {
            return Err(auth_failed(format!(
                "the server refused {method} login for user '{user}'"
            )));
        }
        let channel = handle.channel_open_session().await.map_err(lost)?;
        channel.request_subsystem(true, "sftp").await.map_err(lost)?;
        let sftp_config = russh_sftp::client::Config {
            request_timeout_secs: self.config.operation_timeout_seconds,
            ..Default::default()
        };
        let sftp = SftpSession::new_with_config(channel.into_stream(), sftp_config).await.map_err(
            |e| self.unavailable(std::io::ErrorKind::Other, format!("sftp subsystem: {e}")),
        )?;
        let real_root = match sftp.canonicalize(self.config.root.as_str()).await {
            Ok(real) => real,
            Err(e) => {
                return Err(self.unavailable(
                    std::io::ErrorKind::NotFound,
                    format!("root {} cannot be resolved: {e}", self.config.root),
                ));
            }
        };
        tracing::debug!(source = %self.source_name, endpoint = %self.endpoint(), "sftp connected");
        Ok(Connection { handle, sftp, real_root })
    }
}

fn io_kind(error: &russh::Error) -> std::io::ErrorKind {
    match error {
        russh::Error::IO(e) => e.kind(),
        russh::Error::ConnectionTimeout | russh::Error::InactivityTimeout => {
            std::io::ErrorKind::TimedOut
        }
        _ => std::io::ErrorKind::ConnectionAborted,
    }
}
