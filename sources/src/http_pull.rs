//! `http_pull`: one URL fetched on the poll interval, as a source holding one file.
//!
//! ```json
//! { "url": "https://partner.example.com/export/members.csv",
//!   "file_name": "members.csv",
//!   "bearer_token_credential": "env:PARTNER_TOKEN" }
//! ```
//!
//! Every [`Source::list`] sends a conditional GET (`If-None-Match` with the last `ETag`,
//! `If-Modified-Since` with the last `Last-Modified`). A `200` is streamed to a spool file (never
//! held in memory) and listed as the one file, with the server's `ETag` (else `Last-Modified`, else
//! the content's SHA-256) as its version, so an unchanged resource claims nothing new; a `304`
//! lists the spooled copy again. `open` reads the spool. The resource cannot be moved, renamed
//! or deleted on the server: those calls fail with a clear error (use `post_process_policy =
//! "keep"`). Credentials are references (`bearer_token_credential`, or `username` +
//! `password_credential` for basic auth), resolved by the caller into [`HttpPullSecrets`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::{BoxFuture, FileEntry, FileStream, Source, SourceError, SourceSettings};

/// The `connection_config` of an `http_pull` source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpPullConfig {
    /// The `http://` or `https://` URL to fetch.
    pub url: String,
    /// The name the fetched file is listed under (default: the URL's last path segment, else
    /// `download`); templates match it.
    #[serde(default)]
    pub file_name: Option<String>,
    /// A credential reference whose value is sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer_token_credential: Option<String>,
    /// The user of basic authentication (with `password_credential`).
    #[serde(default)]
    pub username: Option<String>,
    /// A credential reference holding the basic-auth password.
    #[serde(default)]
    pub password_credential: Option<String>,
    /// Seconds one request may take (default 60).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

fn default_timeout_seconds() -> u64 {
    60
}

/// The resolved secrets of an [`HttpPullConfig`] (the caller resolves the references).
#[derive(Clone, Default)]
pub struct HttpPullSecrets {
    /// The bearer token.
    pub bearer_token: Option<String>,
    /// The basic-auth password.
    pub password: Option<String>,
}

impl std::fmt::Debug for HttpPullSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPullSecrets")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "[redacted]"))
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl HttpPullConfig {
    /// Checks the configuration without I/O, listing every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let lower = self.url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            problems.push(format!("connection_config.url: {:?} is not an http(s) URL", self.url));
        }
        if self.bearer_token_credential.is_some() && self.username.is_some() {
            problems.push(
                "connection_config: bearer_token_credential and username (basic auth) exclude \
                 each other"
                    .to_owned(),
            );
        }
        if self.username.is_some() != self.password_credential.is_some() {
            problems.push(
                "connection_config: basic auth needs both username and password_credential"
                    .to_owned(),
            );
        }
        if let Some(name) = &self.file_name
            && (name.is_empty() || name.contains('/') || name.starts_with('.'))
        {
            problems.push(format!(
                "connection_config.file_name: {name:?} must be a plain, visible file name"
            ));
        }
        if self.timeout_seconds == 0 {
            problems.push("connection_config.timeout_seconds: must be at least 1".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The name the file is listed under.
    fn listed_name(&self) -> String {
        if let Some(name) = &self.file_name {
            return name.clone();
        }
        let path = self.url.split(['?', '#']).next().unwrap_or_default();
        let last = path.rsplit('/').next().unwrap_or_default();
        if last.is_empty() || last.contains(':') || last.starts_with('.') {
            "download".to_owned()
        } else {
            last.to_owned()
        }
    }
}

/// What the last `200` left: the spooled copy and the validators to send next time.
#[derive(Debug, Clone)]
struct Snapshot {
    entry: FileEntry,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// An `http_pull` source.
pub struct HttpPull {
    name: String,
    config: HttpPullConfig,
    secrets: HttpPullSecrets,
    client: reqwest::Client,
    spool: PathBuf,
    file_name: String,
    snapshot: Arc<Mutex<Option<Snapshot>>>,
}

impl std::fmt::Debug for HttpPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPull")
            .field("name", &self.name)
            .field("url", &self.config.url)
            .field("spool", &self.spool)
            .finish_non_exhaustive()
    }
}

impl HttpPull {
    /// Builds the source: `client` is the HTTP client to use (with its TLS set up), `spool_dir`
    /// a folder the fetched copy is kept in.
    pub fn build(
        config: &HttpPullConfig,
        settings: &SourceSettings,
        secrets: HttpPullSecrets,
        client: reqwest::Client,
        spool_dir: PathBuf,
    ) -> Result<HttpPull, SourceError> {
        config.validate().map_err(|problems| SourceError::InvalidConfig {
            source_name: settings.name.clone(),
            problems,
        })?;
        if config.bearer_token_credential.is_some() && secrets.bearer_token.is_none()
            || config.password_credential.is_some() && secrets.password.is_none()
        {
            return Err(SourceError::InvalidConfig {
                source_name: settings.name.clone(),
                problems: vec![
                    "connection_config: a referenced credential was not resolved".into(),
                ],
            });
        }
        Ok(HttpPull {
            name: settings.name.clone(),
            file_name: config.listed_name(),
            config: config.clone(),
            secrets,
            client,
            spool: spool_dir.join("current"),
            snapshot: Arc::new(Mutex::new(None)),
        })
    }

    fn unavailable(&self, error: impl std::fmt::Display) -> SourceError {
        SourceError::RootUnavailable {
            source_name: self.name.clone(),
            root: self.config.url.clone(),
            error: std::io::Error::other(error.to_string()),
        }
    }

    fn io(&self, operation: &'static str, error: std::io::Error) -> SourceError {
        SourceError::Io {
            source_name: self.name.clone(),
            path: self.file_name.clone(),
            operation,
            error,
        }
    }

    fn check_path(&self, path: &str) -> Result<(), SourceError> {
        if path == self.file_name {
            Ok(())
        } else {
            Err(SourceError::NotFound { source_name: self.name.clone(), path: path.to_owned() })
        }
    }

    /// Fetches the resource if it changed; the current snapshot.
    async fn refresh(&self) -> Result<Option<FileEntry>, SourceError> {
        let mut snapshot = self.snapshot.lock().await;
        let mut request = self
            .client
            .get(&self.config.url)
            .timeout(Duration::from_secs(self.config.timeout_seconds));
        if let Some(token) = &self.secrets.bearer_token {
            request = request.bearer_auth(token);
        }
        if let (Some(user), Some(password)) = (&self.config.username, &self.secrets.password) {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(current) = snapshot.as_ref() {
            if let Some(etag) = &current.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &current.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
            }
        }
        let mut response = request.send().await.map_err(|e| self.unavailable(e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(snapshot.as_ref().map(|s| s.entry.clone()));
        }
        if !status.is_success() {
            return Err(self.unavailable(format!("GET answered HTTP {}", status.as_u16())));
        }
        let header = |name: reqwest::header::HeaderName| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        // Streamed to a new file, then renamed over the spool: `open` never sees half a body.
        if let Some(parent) = self.spool.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| self.io("spool", e))?;
        }
        let partial = self.spool.with_extension("partial");
        let mut file = tokio::fs::File::create(&partial).await.map_err(|e| self.io("spool", e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unavailable(e))? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(|e| self.io("spool", e))?;
        }
        file.sync_all().await.map_err(|e| self.io("spool", e))?;
        drop(file);
        tokio::fs::rename(&partial, &self.spool).await.map_err(|e| self.io("spool", e))?;
        let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let version = etag
            .clone()
            .or_else(|| last_modified.clone().map(|m| format!("last-modified:{m}")))
            .unwrap_or_else(|| format!("sha256:{digest}"));
        let entry = FileEntry {
            path: self.file_name.clone(),
            size,
            modified: None,
            version: Some(version),
            is_temp_upload: false,
        };
        *snapshot = Some(Snapshot { entry: entry.clone(), etag, last_modified });
        Ok(Some(entry))
    }

    fn unsupported(&self, operation: &'static str) -> SourceError {
        self.io(
            operation,
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "an http_pull resource cannot be moved, renamed or deleted on the server; use \
                 post_process_policy = \"keep\"",
            ),
        )
    }
}

impl Source for HttpPull {
    fn name(&self) -> &str {
        &self.name
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<FileEntry>, SourceError>> {
        Box::pin(async move { Ok(self.refresh().await?.into_iter().collect()) })
    }

    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileEntry, SourceError>> {
        Box::pin(async move {
            self.check_path(path)?;
            let snapshot = self.snapshot.lock().await;
            match snapshot.as_ref() {
                Some(s) => Ok(s.entry.clone()),
                None => Err(SourceError::NotFound {
                    source_name: self.name.clone(),
                    path: path.to_owned(),
                }),
            }
        })
    }

    fn open<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileStream, SourceError>> {
        Box::pin(async move {
            self.check_path(path)?;
            let _snapshot = self.snapshot.lock().await;
            let file = tokio::fs::File::open(&self.spool).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    SourceError::NotFound { source_name: self.name.clone(), path: path.to_owned() }
                }
                _ => self.io("open", e),
            })?;
            Ok(Box::new(file) as FileStream)
        })
    }

    fn move_to<'a>(
        &'a self,
        _path: &'a str,
        _folder: &'a str,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(async move { Err(self.unsupported("move")) })
    }

    fn rename<'a>(
        &'a self,
        _from: &'a str,
        _to: &'a str,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move { Err(self.unsupported("rename")) })
    }

    fn delete<'a>(&'a self, _path: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move { Err(self.unsupported("delete")) })
    }
}
