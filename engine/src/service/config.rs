//! The configuration of `intake serve`: one TOML file, with environment overrides for the scalar
//! settings.
//!
//! ```toml
//! [state]
//! path = "intake.sqlite"              # the state store (SQLite file or sqlite: URL)
//!
//! [jobs]
//! path = "intake.jobs.sqlite"         # the job queue (its own SQLite file)
//! import_concurrency = 2              # ImportFile jobs run at once in this process
//! shutdown_grace_seconds = 30         # after SIGTERM, how long in-flight imports may finish
//! heartbeat_seconds = 10              # how often a worker records that it is alive (≥ 1)
//! missed_heartbeats = 3               # silent heartbeats before a worker's jobs are re-queued
//! max_attempts = 5                    # attempts per job (a crashed attempt counts as one)
//!
//! [platform]
//! url = "http://127.0.0.1:8080"       # the platform API (token endpoint: <url>/auth/token)
//! client_id = "demo-integration"
//! kid = "demo-2026"
//! key_credential = "file:../sandbox/demo-client.key.pem"   # a reference, never the key
//! tenant_id = "64a1b2c3d4e5f6789012abcd"
//!
//! [[sources]]
//! id = "inbox"                        # stable: claims and runs hang off it across restarts
//! source_type = "watched_directory"
//! connection_config = { path = "inbox" }
//! temp_file_extensions = [".part"]
//! polling_interval_seconds = 5
//! event_driven = true
//! move_unmatched_to_error = true
//! unmatched_folder = "error"
//! templates = [
//!   "templates/payments.json",
//!   { path = "../bank-payments/template.json", file_matcher = "bank-*.csv",
//!     post_process_policy = "move", completed_folder = "completed", error_folder = "error" },
//! ]
//! ```
//!
//! - **Relative paths** (state, jobs, templates, a watched folder, a `file:` key reference) are
//!   relative to the folder of the configuration file.
//! - **Templates** are JSON files checked by [`crate::template::load`]; a table entry may set
//!   `file_matcher`, `priority`, `is_active`, `post_process_policy`, `completed_folder` and
//!   `error_folder` over the file's own values (so one template file serves several sources).
//! - **Environment overrides**: `INTAKE_<SECTION>_<KEY>` replaces a scalar setting:
//!   `INTAKE_STATE_PATH`, `INTAKE_JOBS_QUEUE`, `INTAKE_JOBS_QUEUE_PASSWORD`, `INTAKE_JOBS_PATH`,
//!   `INTAKE_JOBS_LEASE_SECONDS`, `INTAKE_JOBS_IMPORT_CONCURRENCY`,
//!   `INTAKE_JOBS_SHUTDOWN_GRACE_SECONDS`, `INTAKE_JOBS_HEARTBEAT_SECONDS`,
//!   `INTAKE_JOBS_MISSED_HEARTBEATS`, `INTAKE_JOBS_MAX_ATTEMPTS`, `INTAKE_PLATFORM_URL`, `INTAKE_PLATFORM_CLIENT_ID`,
//!   `INTAKE_PLATFORM_KID`, `INTAKE_PLATFORM_KEY_CREDENTIAL`, `INTAKE_PLATFORM_TENANT_ID`.
//!   Sources are not overridable from the environment.
//! - **Secrets**: the client key is only ever a credential reference (`env:VAR`, `file:/path`,
//!   or a bare name, see [`crate::m2m::resolve_credential`]).
//! - **Source types**: `watched_directory`, `sftp`, `s3`, `http_pull` and `email_inbox` (see
//!   [`SUPPORTED_SOURCE_TYPES`]); the platform's other types are refused with "not supported
//!   yet".

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::jobs::QueueConfig;
use crate::template::PostProcessPolicy;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The state store.
    #[serde(default)]
    pub state: StateConfig,
    /// The job queue and the workers.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// The platform rows are written to.
    pub platform: PlatformConfig,
    /// The sources to poll.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// The REST layer served beside the engine (none: not served).
    #[serde(default)]
    pub api: Option<ApiConfig>,
    /// Alert delivery and the SLA monitor.
    #[serde(default)]
    pub alerts: AlertsConfig,
}

/// `[alerts]`: how alerts are dispatched (the channels and routing rules themselves are
/// `/alert-channels` and `/alert-routing-rules` in the state store).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The tenant's IANA time zone, in which channels' quiet hours are read. Default `UTC`.
    #[serde(default = "default_alerts_timezone")]
    pub timezone: String,
    /// How often the SLA monitor checks the templates' `schedule_expectation` windows and quiet
    /// hours' digests are handed over, in seconds (at least 1). Default 30.
    #[serde(default = "default_monitor_interval_seconds")]
    pub monitor_interval_seconds: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            timezone: default_alerts_timezone(),
            monitor_interval_seconds: default_monitor_interval_seconds(),
        }
    }
}

fn default_alerts_timezone() -> String {
    "UTC".to_owned()
}

fn default_monitor_interval_seconds() -> u64 {
    30
}

/// `[api]`: the REST layer `intake serve` serves beside the engine, over the same state store
/// and job queue, writing inline uploads and retries through the `[platform]` client. The
/// options are `intake api`'s.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// The address to listen on, e.g. `127.0.0.1:8090`.
    pub listen: String,
    /// The token issuers to trust (a JSON array, as `intake api --issuers`).
    #[serde(default)]
    pub issuers: Option<PathBuf>,
    /// The clients of the built-in token endpoint (as `intake api --clients`).
    #[serde(default)]
    pub clients: Option<PathBuf>,
    /// The built-in token endpoint's signing key (as `intake api --token-key`).
    #[serde(default)]
    pub token_key: Option<PathBuf>,
    /// The base URL clients reach the server at (as `intake api --public-url`).
    #[serde(default)]
    pub public_url: Option<String>,
}

/// `[state]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The state store: a SQLite file (or a `sqlite:` URL), or a PostgreSQL URL
    /// (`postgres://user@host:5432/intake`) shared by every process of a cluster. Default
    /// `intake.sqlite`.
    #[serde(default = "default_state_path")]
    pub path: String,
}

/// Whether a state or queue location is a URL (`sqlite:`, `postgres:`, `postgresql:`) rather
/// than a file path.
pub fn is_url(location: &str) -> bool {
    let lower = location.to_ascii_lowercase();
    ["sqlite:", "postgres:", "postgresql:"].iter().any(|scheme| lower.starts_with(scheme))
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { path: default_state_path() }
    }
}

fn default_state_path() -> String {
    "intake.sqlite".to_owned()
}

/// `[jobs]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Where the jobs live: `"sqlite"` (the file at `path`; the default), or a RabbitMQ URL
    /// (`amqp://intake@rabbit:5672/%2f`, `amqps://…`) shared by every process of a cluster.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// The RabbitMQ password as a credential reference (`env:VAR`, `file:/path`), put into the
    /// `queue` URL when it is opened, so the configuration file holds no secret.
    #[serde(default)]
    pub queue_password: Option<String>,
    /// The job queue's SQLite file (or a `sqlite:` URL) when `queue = "sqlite"`; never the state
    /// store's file. Default `intake.jobs.sqlite`.
    #[serde(default = "default_jobs_path")]
    pub path: String,
    /// How long a poller's hold on a source (and, on RabbitMQ, a worker's hold on the file it
    /// imports) lasts unless renewed, in seconds: another process takes over a dead holder's
    /// sources and files after it. Renewed every third of it. Default 30.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// How many files this process imports at once. Default 2.
    #[serde(default = "default_import_concurrency")]
    pub import_concurrency: usize,
    /// After a shutdown signal, how long in-flight imports may run to their end before they are
    /// cancelled and handed back to the queue (resumed by the next start). Default 30.
    #[serde(default = "default_shutdown_grace_seconds")]
    pub shutdown_grace_seconds: u64,
    /// How often each worker records that it is alive, in seconds (at least 1). Default 10.
    #[serde(default = "default_heartbeat_seconds")]
    pub heartbeat_seconds: u64,
    /// Heartbeats a worker may miss before it counts as dead and the jobs it held (a killed
    /// process's imports) are handed to a live worker: the *orphan timeout* is
    /// `heartbeat_seconds × missed_heartbeats`. Default 3 (30 s).
    #[serde(default = "default_missed_heartbeats")]
    pub missed_heartbeats: usize,
    /// Attempts a job gets in all, first run included; an attempt whose process died (and was
    /// re-delivered after the orphan timeout) counts as one. Default 5.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            queue: default_queue(),
            queue_password: None,
            path: default_jobs_path(),
            lease_seconds: default_lease_seconds(),
            import_concurrency: default_import_concurrency(),
            shutdown_grace_seconds: default_shutdown_grace_seconds(),
            heartbeat_seconds: default_heartbeat_seconds(),
            missed_heartbeats: default_missed_heartbeats(),
            max_attempts: default_max_attempts(),
        }
    }
}

impl JobsConfig {
    /// Whether the jobs live on a RabbitMQ broker (`queue` is an `amqp(s)://` URL).
    pub fn on_broker(&self) -> bool {
        let lower = self.queue.to_ascii_lowercase();
        lower.starts_with("amqp://") || lower.starts_with("amqps://")
    }

    /// Where [`crate::jobs::JobQueue::open`] finds the queue: the broker URL with its password
    /// resolved from `queue_password`, or the SQLite `path`.
    pub fn queue_location(&self) -> Result<String, String> {
        if !self.on_broker() {
            return Ok(self.path.clone());
        }
        let Some(reference) = &self.queue_password else { return Ok(self.queue.clone()) };
        let secret = crate::m2m::resolve_credential(reference)
            .map_err(|e| format!("jobs.queue_password: {e}"))?;
        let mut url =
            reqwest::Url::parse(&self.queue).map_err(|e| format!("jobs.queue: not a URL: {e}"))?;
        url.set_password(Some(secret.expose()))
            .map_err(|()| "jobs.queue: this URL cannot carry a password".to_owned())?;
        Ok(url.to_string())
    }

    /// How long a lease lasts unless renewed.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    /// The job queue's settings: these over [`QueueConfig::default`].
    pub fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            heartbeat_interval: Duration::from_secs(self.heartbeat_seconds),
            missed_heartbeats: self.missed_heartbeats,
            max_attempts: self.max_attempts,
            ..QueueConfig::default()
        }
    }
}

fn default_queue() -> String {
    "sqlite".to_owned()
}

fn default_lease_seconds() -> u64 {
    30
}

fn default_jobs_path() -> String {
    "intake.jobs.sqlite".to_owned()
}

fn default_import_concurrency() -> usize {
    2
}

fn default_shutdown_grace_seconds() -> u64 {
    30
}

fn default_heartbeat_seconds() -> u64 {
    10
}

fn default_missed_heartbeats() -> usize {
    3
}

fn default_max_attempts() -> usize {
    5
}

/// `[platform]`: where and as whom rows are written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// The API's base URL; the token endpoint is `<url>/auth/token`.
    pub url: String,
    /// The M2M client's id.
    pub client_id: String,
    /// The key id the client's public key is registered under.
    pub kid: String,
    /// The client's private key as a credential reference (`env:VAR`, `file:/path`, a bare
    /// name); never the key itself.
    pub key_credential: String,
    /// The tenant every source, run and write belongs to (sent as `X-Tenant-ID`).
    pub tenant_id: String,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A stable identifier (stored as the source's `external_id`): claims and runs refer to the
    /// source through it across restarts.
    pub id: String,
    /// A display name; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The kind of source; `watched_directory` is the one supported today.
    pub source_type: String,
    /// The source type's own connection settings (`{ path = "…" }` for a watched directory).
    pub connection_config: toml::Table,
    /// Folders (relative to the root) never listed. Post-processing folders are added.
    #[serde(default)]
    pub ignored_folders: Vec<String>,
    /// File endings of uploads in progress (`.part`, `.tmp`).
    #[serde(default)]
    pub temp_file_extensions: Vec<String>,
    /// Seconds between polls. Default 300.
    #[serde(default = "default_polling_interval_seconds")]
    pub polling_interval_seconds: u64,
    /// Wake on file-system events as well as on the interval.
    #[serde(default)]
    pub event_driven: bool,
    /// Move files no template matches to `unmatched_folder`.
    #[serde(default)]
    pub move_unmatched_to_error: bool,
    /// Where unmatched files go, relative to the root. Default `errors`.
    #[serde(default = "default_unmatched_folder")]
    pub unmatched_folder: String,
    /// Whether the source is polled. Default true.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// The templates files of this source are matched against.
    #[serde(default)]
    pub templates: Vec<TemplateRef>,
}

fn default_polling_interval_seconds() -> u64 {
    300
}

fn default_unmatched_folder() -> String {
    crate::runner::DEFAULT_UNMATCHED_FOLDER.to_owned()
}

fn yes() -> bool {
    true
}

impl SourceConfig {
    /// The display name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// A template of a source: a path, or a path with overrides.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum TemplateRef {
    /// Just the template file.
    Path(PathBuf),
    /// The template file with some of its fields replaced.
    WithOverrides(TemplateOverrides),
}

/// A template file and the fields set over it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateOverrides {
    /// The template file (JSON).
    pub path: PathBuf,
    /// Replaces `file_matcher`.
    #[serde(default)]
    pub file_matcher: Option<String>,
    /// Replaces `priority`.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Replaces `is_active`.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Replaces `post_process_policy`.
    #[serde(default)]
    pub post_process_policy: Option<PostProcessPolicy>,
    /// Replaces `completed_folder`.
    #[serde(default)]
    pub completed_folder: Option<String>,
    /// Replaces `error_folder`.
    #[serde(default)]
    pub error_folder: Option<String>,
}

impl TemplateRef {
    /// The template file.
    pub fn path(&self) -> &Path {
        match self {
            TemplateRef::Path(path) => path,
            TemplateRef::WithOverrides(o) => &o.path,
        }
    }

    /// The overrides as template JSON fields.
    pub fn overrides(&self) -> Vec<(&'static str, Value)> {
        let TemplateRef::WithOverrides(o) = self else { return Vec::new() };
        let mut fields = Vec::new();
        if let Some(v) = &o.file_matcher {
            fields.push(("file_matcher", Value::from(v.clone())));
        }
        if let Some(v) = o.priority {
            fields.push(("priority", Value::from(v)));
        }
        if let Some(v) = o.is_active {
            fields.push(("is_active", Value::from(v)));
        }
        if let Some(v) = o.post_process_policy {
            fields.push(("post_process_policy", serde_json::to_value(v).unwrap_or(Value::Null)));
        }
        if let Some(v) = &o.completed_folder {
            fields.push(("completed_folder", Value::from(v.clone())));
        }
        if let Some(v) = &o.error_folder {
            fields.push(("error_folder", Value::from(v.clone())));
        }
        fields
    }

    fn path_mut(&mut self) -> &mut PathBuf {
        match self {
            TemplateRef::Path(path) => path,
            TemplateRef::WithOverrides(o) => &mut o.path,
        }
    }
}

/// The source types the platform defines and this release does not run yet.
const LATER_SOURCE_TYPES: [&str; 2] = ["azure_blob", "gcs"];

/// The source types that run today.
pub const SUPPORTED_SOURCE_TYPES: [&str; 5] =
    ["watched_directory", "http_pull", "sftp", "s3", "email_inbox"];

/// The scalar settings `INTAKE_<SECTION>_<KEY>` can replace.
pub const ENV_OVERRIDES: [&str; 12] = [
    "INTAKE_STATE_PATH",
    "INTAKE_JOBS_PATH",
    "INTAKE_JOBS_IMPORT_CONCURRENCY",
    "INTAKE_JOBS_SHUTDOWN_GRACE_SECONDS",
    "INTAKE_JOBS_HEARTBEAT_SECONDS",
    "INTAKE_JOBS_MISSED_HEARTBEATS",
    "INTAKE_JOBS_MAX_ATTEMPTS",
    "INTAKE_PLATFORM_URL",
    "INTAKE_PLATFORM_CLIENT_ID",
    "INTAKE_PLATFORM_KID",
    "INTAKE_PLATFORM_KEY_CREDENTIAL",
    "INTAKE_PLATFORM_TENANT_ID",
];

impl ServiceConfig {
    /// Parses the TOML text; `origin` names the file in errors.
    pub fn from_toml(origin: &str, text: &str) -> Result<Self, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![format!("{origin}: {}", e.to_string().trim_end())])
    }

    /// Applies the `INTAKE_<SECTION>_<KEY>` overrides found in `vars` (see the module docs);
    /// every unusable value is reported at once.
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Result<(), Vec<String>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut problems = Vec::new();
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref().to_owned());
            let number = |problems: &mut Vec<String>| match value.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(format!("{name}: {value:?} is not a whole number"));
                    None
                }
            };
            match name {
                "INTAKE_STATE_PATH" => self.state.path = value,
                "INTAKE_JOBS_PATH" => self.jobs.path = value,
                "INTAKE_JOBS_QUEUE" => self.jobs.queue = value,
                "INTAKE_JOBS_QUEUE_PASSWORD" => self.jobs.queue_password = Some(value),
                "INTAKE_JOBS_LEASE_SECONDS" => {
                    if let Some(n) = number(&mut problems) {
                        self.jobs.lease_seconds = n;
                    }
                }
                "INTAKE_JOBS_IMPORT_CONCURRENCY" => {
                    if let Some(n) = number(&mut problems) {
                        self.jobs.import_concurrency = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                "INTAKE_JOBS_SHUTDOWN_GRACE_SECONDS" => {
                    if let Some(n) = number(&mut problems) {
                        self.jobs.shutdown_grace_seconds = n;
                    }
                }
                "INTAKE_JOBS_HEARTBEAT_SECONDS" => {
                    if let Some(n) = number(&mut problems) {
                        self.jobs.heartbeat_seconds = n;
                    }
                }
                "INTAKE_JOBS_MISSED_HEARTBEATS" => {
                    if let Some(n) = number(&mut problems) {
                        self.jobs.missed_heartbeats = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                "INTAKE_JOBS_MAX_ATTEMPTS" => {
                    if let Some(n) = number(&mut problems) {
                        self.jobs.max_attempts = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                "INTAKE_PLATFORM_URL" => self.platform.url = value,
                "INTAKE_PLATFORM_CLIENT_ID" => self.platform.client_id = value,
                "INTAKE_PLATFORM_KID" => self.platform.kid = value,
                "INTAKE_PLATFORM_KEY_CREDENTIAL" => self.platform.key_credential = value,
                "INTAKE_PLATFORM_TENANT_ID" => self.platform.tenant_id = value,
                _ => {}
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Makes every relative path absolute against `base` (the configuration file's folder):
    /// the state and job files, template files, `connection_config.path`, and a `file:` key
    /// reference.
    pub fn resolve_relative_to(&mut self, base: &Path) {
        let absolute = |path: &str| -> String {
            if is_url(path) || Path::new(path).is_absolute() {
                path.to_owned()
            } else {
                base.join(path).display().to_string()
            }
        };
        self.state.path = absolute(&self.state.path);
        self.jobs.path = absolute(&self.jobs.path);
        if let Some(path) = self.platform.key_credential.strip_prefix("file:")
            && !path.is_empty()
        {
            self.platform.key_credential = format!("file:{}", absolute(path));
        }
        if let Some(api) = &mut self.api {
            for path in
                [&mut api.issuers, &mut api.clients, &mut api.token_key].into_iter().flatten()
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        for source in &mut self.sources {
            if let Some(toml::Value::String(path)) = source.connection_config.get_mut("path") {
                *path = absolute(path);
            }
            for template in &mut source.templates {
                let path = template.path_mut();
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
    }

    /// Checks the configuration without I/O, reporting every problem at once (each with where
    /// it is: `platform.url`, `sources[0].source_type`, …).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("state.path", &self.state.path),
            ("jobs.path", &self.jobs.path),
            ("platform.client_id", &self.platform.client_id),
            ("platform.kid", &self.platform.kid),
            ("platform.key_credential", &self.platform.key_credential),
            ("platform.tenant_id", &self.platform.tenant_id),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("{field}: must not be empty"));
            }
        }
        if self.state.path == self.jobs.path {
            problems.push(
                "jobs.path: the job queue needs its own file, not the state store's".to_owned(),
            );
        }
        if self.jobs.queue != "sqlite" && !self.jobs.on_broker() {
            problems.push(format!(
                "jobs.queue: '{}' is neither \"sqlite\" nor a RabbitMQ URL (amqp://… or amqps://…)",
                self.jobs.queue
            ));
        }
        if self.jobs.queue_password.is_some() && !self.jobs.on_broker() {
            problems.push("jobs.queue_password: only a RabbitMQ queue takes a password".to_owned());
        }
        if self.jobs.on_broker()
            && let Ok(url) = reqwest::Url::parse(&self.jobs.queue)
            && url.password().is_some()
        {
            problems.push(
                "jobs.queue: put no password in the URL; name it with jobs.queue_password \
                 (env:VAR or file:/path)"
                    .to_owned(),
            );
        }
        if self.jobs.lease_seconds < 3 {
            problems.push("jobs.lease_seconds: must be at least 3".to_owned());
        }
        if self.jobs.import_concurrency == 0 {
            problems.push("jobs.import_concurrency: must be at least 1".to_owned());
        }
        if self.alerts.monitor_interval_seconds == 0 {
            problems.push("alerts.monitor_interval_seconds: must be at least 1".to_owned());
        }
        if self.alerts.timezone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!(
                "alerts.timezone: '{}' is not an IANA time zone name (e.g. Europe/Stockholm)",
                self.alerts.timezone
            ));
        }
        for (field, zero) in [
            ("jobs.heartbeat_seconds", self.jobs.heartbeat_seconds == 0),
            ("jobs.missed_heartbeats", self.jobs.missed_heartbeats == 0),
            ("jobs.max_attempts", self.jobs.max_attempts == 0),
        ] {
            if zero {
                problems.push(format!("{field}: must be at least 1"));
            }
        }
        if self.platform.key_credential.contains("PRIVATE KEY") {
            problems.push(
                "platform.key_credential: give a credential reference (env:VAR, file:/path or a \
                 name), never the key itself"
                    .to_owned(),
            );
        }
        match url::Url::parse(&self.platform.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(_) => problems.push("platform.url: must be an http or https URL".to_owned()),
            Err(e) => {
                problems.push(format!("platform.url: {:?} is not a URL: {e}", self.platform.url))
            }
        }
        if self.sources.is_empty() {
            problems.push("sources: at least one [[sources]] entry is needed".to_owned());
        }
        let mut ids = BTreeSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let at = format!("sources[{i}]");
            if source.id.trim().is_empty() {
                problems.push(format!("{at}.id: must not be empty"));
            } else if !ids.insert(source.id.as_str()) {
                problems.push(format!("{at}.id: {:?} is used by another source", source.id));
            }
            let kind = source.source_type.as_str();
            if LATER_SOURCE_TYPES.contains(&kind) {
                problems.push(format!(
                    "{at}.source_type: not supported yet: source_type '{kind}' (supported: {})",
                    SUPPORTED_SOURCE_TYPES.join(", ")
                ));
            } else if !SUPPORTED_SOURCE_TYPES.contains(&kind) {
                problems.push(format!(
                    "{at}.source_type: unknown source_type '{kind}' (supported: {})",
                    SUPPORTED_SOURCE_TYPES.join(", ")
                ));
            }
            if source.templates.is_empty() {
                problems.push(format!("{at}.templates: at least one template is needed"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MINIMAL: &str = r#"
        [platform]
        url = "http://127.0.0.1:8080"
        client_id = "c"
        kid = "k"
        key_credential = "file:key.pem"
        tenant_id = "64a1b2c3d4e5f6789012abcd"

        [[sources]]
        id = "inbox"
        source_type = "watched_directory"
        connection_config = { path = "in" }
        templates = ["t.json", { path = "u.json", file_matcher = "*.csv" }]
    "#;

    #[test]
    fn defaults_paths_and_template_overrides() {
        let mut config = ServiceConfig::from_toml("x.toml", MINIMAL).unwrap();
        assert_eq!(config.jobs.import_concurrency, 2);
        config.resolve_relative_to(Path::new("/etc/intake"));
        assert_eq!(config.state.path, "/etc/intake/intake.sqlite");
        assert_eq!(config.platform.key_credential, "file:/etc/intake/key.pem");
        let source = &config.sources[0];
        assert_eq!(
            source.connection_config.get("path").and_then(|v| v.as_str()),
            Some("/etc/intake/in")
        );
        assert_eq!(source.templates[1].path(), Path::new("/etc/intake/u.json"));
        assert_eq!(source.templates[1].overrides(), vec![("file_matcher", Value::from("*.csv"))]);
        config.validate().unwrap();
    }

    #[test]
    fn environment_overrides_replace_scalars_and_report_bad_numbers() {
        let mut config = ServiceConfig::from_toml("x.toml", MINIMAL).unwrap();
        config
            .apply_env([
                ("INTAKE_PLATFORM_URL", "http://10.0.0.1:9000"),
                ("INTAKE_JOBS_IMPORT_CONCURRENCY", "4"),
                ("UNRELATED", "x"),
            ])
            .unwrap();
        assert_eq!(config.platform.url, "http://10.0.0.1:9000");
        assert_eq!(config.jobs.import_concurrency, 4);
        let problems = config
            .apply_env([
                ("INTAKE_JOBS_IMPORT_CONCURRENCY", "many"),
                ("INTAKE_JOBS_SHUTDOWN_GRACE_SECONDS", "-1"),
            ])
            .unwrap_err();
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn heartbeat_and_attempts_reach_the_queue_and_zero_is_refused() {
        let config = ServiceConfig::from_toml("x.toml", MINIMAL).unwrap();
        assert_eq!(config.jobs.queue_config(), QueueConfig::default());
        let text = MINIMAL.replace(
            "[platform]",
            "[jobs]\nheartbeat_seconds = 1\nmissed_heartbeats = 2\nmax_attempts = 9\n[platform]",
        );
        let mut config = ServiceConfig::from_toml("x.toml", &text).unwrap();
        let queue = config.jobs.queue_config();
        assert_eq!(queue.orphan_timeout(), Duration::from_secs(2));
        assert_eq!(queue.max_attempts, 9);
        config
            .apply_env([("INTAKE_JOBS_HEARTBEAT_SECONDS", "0"), ("INTAKE_JOBS_MAX_ATTEMPTS", "0")])
            .unwrap();
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn later_source_types_are_not_supported_yet_and_all_problems_are_listed() {
        let text = MINIMAL
            .replace("watched_directory", "gcs")
            .replace("url = \"http://127.0.0.1:8080\"", "url = \"nope\"");
        let config = ServiceConfig::from_toml("x.toml", &text).unwrap();
        let problems = config.validate().unwrap_err();
        assert!(problems.iter().any(|p| p.contains("not supported yet: source_type 'gcs'")));
        assert!(problems.iter().any(|p| p.starts_with("platform.url")));
    }

    #[test]
    fn a_rabbitmq_queue_takes_its_password_by_reference_and_nothing_else_is_a_queue() {
        let with = |jobs: &str| {
            let text = MINIMAL.replace("[platform]", &format!("[jobs]\n{jobs}\n[platform]"));
            ServiceConfig::from_toml("x.toml", &text).unwrap()
        };
        let default = with("");
        assert!(!default.jobs.on_broker());
        assert_eq!(default.jobs.queue_location().unwrap(), default.jobs.path);
        assert_eq!(default.jobs.lease(), Duration::from_secs(30));

        let broker = with(
            "queue = \"amqp://intake@rabbit:5672/%2f\"\nqueue_password = \"file:/nonexistent/pw\"",
        );
        assert!(broker.jobs.on_broker());
        assert_eq!(broker.validate(), Ok(()));
        let error = broker.jobs.queue_location().unwrap_err();
        assert!(error.starts_with("jobs.queue_password:"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "s3cret").unwrap();
        let broker = with(&format!(
            "queue = \"amqp://intake@rabbit:5672/%2f\"\nqueue_password = \"file:{}\"",
            secret.display()
        ));
        assert_eq!(broker.jobs.queue_location().unwrap(), "amqp://intake:s3cret@rabbit:5672/%2f");

        let problems = with("queue = \"redis://x\"\nqueue_password = \"env:X\"\nlease_seconds = 1")
            .validate()
            .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let inline = with("queue = \"amqp://intake:pw@rabbit/%2f\"").validate().unwrap_err();
        assert!(inline[0].contains("put no password in the URL"), "{inline:?}");
    }

    #[test]
    fn unknown_fields_are_refused_with_the_file_name() {
        let problems = ServiceConfig::from_toml("x.toml", "[state]\npaht = 1\n").unwrap_err();
        assert!(problems[0].starts_with("x.toml:"), "{problems:?}");
    }
}
