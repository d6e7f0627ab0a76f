//! The long-running engine behind `intake serve`: pollers and import workers over the state
//! store and the job queue, until a shutdown signal.
//!
//! Three steps, like every component: [`ServiceConfig`] is parsed and validated with no I/O;
//! [`Service::prepare`] loads and checks every template, builds every source and the platform
//! client (reporting *all* problems at once, each with its file); [`Service::run`] opens the
//! store and the queue and runs until its cancellation token fires.
//!
//! # How a file travels
//! 1. **Registration.** At start each configured source and template becomes a document of the
//!    store (found again by `external_id`: the source's configured `id`, and
//!    `<source id>:<template name>` for a template), so claims and runs reference stable ids
//!    across restarts. A template's store id is the id its runs (and the writer's run keys) use.
//! 2. **Polling.** One poller task per active source (owned by a [`JoinSet`], stopped by the
//!    token) lists the source through [`Poller`]; the post-processing folders (templates'
//!    `completed_folder` / `error_folder`, the source's `unmatched_folder`) are added to its
//!    `ignored_folders`. Each poll is recorded on the source document (`last_successful_poll_at`,
//!    `last_error`); a source whose polls fail three times in a row raises one `source_error`
//!    event ([`crate::events`]) per failure streak.
//! 3. **Claim, then enqueue.** For every ready file the poller hashes the content, **claims** the
//!    file version in the store (unique per source, path, size, mtime/ETag, content hash) and
//!    enqueues an [`ImportFile`] job for the claim. The job's idempotency key is the claim, so
//!    a file version gets exactly one job however often it is seen (every poll, every restart).
//!    A file version handed off is remembered in memory, so it is hashed once per process. A
//!    claim found final whose run planned a move that did not happen (a crash between the end of
//!    the run and the move) is completed right there by the runner.
//! 4. **Import.** A worker ([`Workers`], `import_concurrency` at once) reads the claim, `stat`s
//!    the file by the claim's path into a [`FileEntry`](intake_sources::FileEntry) and calls
//!    [`import_source_file`], which re-claims the same version (finding the poller's claim),
//!    matches, runs and post-processes. It runs with `resume_unfinished`: the queue hands a claim's
//!    one job to one worker at a time, so a claim found `claimed`/`importing` is this job's own
//!    (fresh, or left by a crash). The runner hence marks every run `resumed` in its timings;
//!    counts are unaffected (nothing was recorded before). A claim whose file is gone or changed
//!    before its import is marked `failed` (the new version gets its own claim).
//!    When the queue gives up on an import job (its attempts ran out — each re-delivery of a
//!    killed worker's job counts — or it failed permanently), the poller of its source ends it
//!    before its next poll (also right at start-up) with
//!    [`fail_given_up_import`](crate::runner::fail_given_up_import): the run `failed` with the
//!    job's reason, the claim `failed`, the file moved to the template's `error_folder` (when it
//!    moves files). Never silently stuck `running`.
//! 5. **Retrying rejected records.** A [`RetryRejectedRecords`] job (one at a time) runs its
//!    corrected records through [`retry_rejected_records`] with every template this process
//!    serves; a record the platform did not take stays `corrected` and the job is retried.
//!
//! # Crashes and restarts
//! After a crash, the unfinished file is still at its path: the poller sees it again, finds its
//! claim `claimed`/`importing` and enqueues again — a no-op when the job exists (SQLite). A job
//! handed back at a clean shutdown runs at once on the next start; the job of a killed process is
//! re-delivered by the queue (SQLite: its orphan recovery, after its orphan timeout, 30 s by
//! default; RabbitMQ: at once, when the connection drops), and the runner resumes the run without
//! writing a row twice. A crash between claiming and enqueueing is healed by the same re-enqueue.
//!
//! # A cluster (PostgreSQL state, RabbitMQ jobs)
//! Processes on several machines share the work through leases in the state store (the `leases`
//! module): the configured sources and templates are registered by one process at a time; a
//! source is polled only by the holder of its lease (taken and renewed at every poll and before
//! each file, released at shutdown, taken over by another poller when it expires); the alert
//! monitor runs in one poller at a time. RabbitMQ cannot deduplicate an enqueue, so a file may get
//! a second job (a new poller enqueues the unfinished claims it finds); the import job then holds
//! a lease on its claim while it imports, and a second job waits for it ([`JobError::busy`], no
//! attempt used) and finds the claim final.
//!
//! # Shutdown
//! When the token fires: pollers stop; workers take no new job; imports in flight may finish for
//! `shutdown_grace_seconds`, after which they are cancelled and handed back to the queue (their
//! runs stay `running` and resume on the next start). [`Service::run`] returns a
//! [`ServeSummary`] only when every task it started has ended.

pub mod config;
mod email_inbox;
mod http_pull;
mod leases;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use intake_sources::{
    CredentialLookup, FileEntry, Poller, PollerOptions, S3Config, S3Source, SecretValue,
    SftpConfig, SftpSource, Source, SourceError, SourceSettings, Wake, WatchedDirectory,
    WatchedDirectoryConfig, content_sha256,
};
use serde_json::{Value, json};
use thiserror::Error;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerting::{Alerting, Links, run_events, unmatched_event};
use crate::events::SourceHealth;
use crate::import::template_scopes;
use crate::jobs::{
    DeliverAlert, ImportFile, ImportUpload, JobError, JobQueue, JobQueueError,
    RetryRejectedRecords, Workers,
};
use crate::m2m::{ApiClient, ClientConfig, ClientCredentials, TokenManager, load_signing_key};
use crate::runner::{
    FileImport, FileOutcome, GivenUpImport, RecordsRetry, RunnerError, RunnerOptions, SkipReason,
    SourceContext, StoredTemplateError, UploadImport, fail_given_up_import, import_source_file,
    import_uploaded_file, retry_rejected_records, stored_template, template_from_document,
};
use crate::store::{
    ClaimOutcome, ClaimState, Collection, Document, FileClaim, ListQuery, NewFileClaim, RunCounts,
    RunOutcome, RunStatus, Store, StoreError,
};
use crate::template::{ObjectId, PostProcessPolicy, Template};

pub use config::ServiceConfig;

/// Why the service could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The configuration, a template, a source or the client key is unusable; every problem is
    /// listed.
    #[error("{origin}: the configuration cannot be used:\n{}", list(problems))]
    Config {
        /// The configuration file.
        origin: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job queue failed.
    #[error(transparent)]
    Queue(#[from] JobQueueError),
    /// A folder for the state or the queue could not be created.
    #[error("cannot create {path}: {error}")]
    Folder {
        /// The folder.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A task of the service ended abnormally (our bug).
    #[error("internal error: {0}")]
    Internal(String),
}

fn list(problems: &[String]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// What one [`Service::run`] did, for its closing line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Sources polled.
    pub sources: usize,
    /// Polls made (all sources).
    pub polls: u64,
    /// File versions claimed and queued for import by this process.
    pub files_queued: u64,
    /// Import runs finished by this process (any final status).
    pub imported: u64,
    /// Files no template matched.
    pub unmatched: u64,
    /// Import jobs that found nothing to do (already imported, changed or gone).
    pub skipped: u64,
    /// Import attempts that failed (retried or ended failed on the queue).
    pub failed_attempts: u64,
}

impl std::fmt::Display for ServeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} source(s), {} poll(s), {} file(s) queued, {} imported, {} unmatched, {} skipped, \
             {} failed attempt(s)",
            self.sources,
            self.polls,
            self.files_queued,
            self.imported,
            self.unmatched,
            self.skipped,
            self.failed_attempts
        )
    }
}

#[derive(Debug, Default)]
struct Stats {
    polls: AtomicU64,
    files_queued: AtomicU64,
    imported: AtomicU64,
    unmatched: AtomicU64,
    skipped: AtomicU64,
    failed_attempts: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A configured source, built and with its templates loaded.
struct PreparedSource {
    config: config::SourceConfig,
    settings: SourceSettings,
    source: Arc<dyn Source>,
    templates: Vec<Template>,
}

/// Which parts of the engine one `intake serve` process runs, so they can be split across
/// machines over a shared state store and job queue (`--role`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Polls the sources, claims and enqueues files, ends given-up imports, and runs the alert
    /// monitor (SLA windows, quiet-hours digests).
    Poller,
    /// Takes jobs from the queue: imports, uploads, record retries, alert deliveries.
    Worker,
    /// Serves the REST layer only (the binary's `[api]`).
    Api,
    /// All of the above in one process (the default).
    #[default]
    All,
}

impl Role {
    /// Whether this role polls sources (and runs the alert monitor).
    pub fn polls(self) -> bool {
        matches!(self, Role::Poller | Role::All)
    }

    /// Whether this role takes jobs from the queue.
    pub fn works(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }

    /// Whether this role serves the REST layer.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    /// The role's name, as `--role` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Poller => "poller",
            Role::Worker => "worker",
            Role::Api => "api",
            Role::All => "all",
        }
    }
}

/// A checked configuration, ready to [`run`](Service::run).
pub struct Service {
    config: ServiceConfig,
    sources: Vec<PreparedSource>,
    client: ApiClient,
    role: Role,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .field("sources", &self.sources.iter().map(|s| &s.config.id).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Reads `path`, applies the environment overrides (`vars`), makes relative paths relative
    /// to the file's folder and [`prepare`](Service::prepare)s it.
    pub fn from_file<I, K, V>(path: &Path, vars: I) -> Result<Service, ServiceError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let origin = path.display().to_string();
        let config_error = |problems| ServiceError::Config { origin: origin.clone(), problems };
        let text = std::fs::read_to_string(path)
            .map_err(|e| config_error(vec![format!("cannot read the file: {e}")]))?;
        let mut config = ServiceConfig::from_toml(&origin, &text).map_err(config_error)?;
        config.apply_env(vars).map_err(config_error)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        config.resolve_relative_to(&base);
        Service::prepare(&origin, config)
    }

    /// Validates the configuration, loads every template (with its overrides), builds every
    /// source (creating a missing watched folder) and the platform client, and reports every
    /// problem at once. Opens no database and sends no request.
    pub fn prepare(origin: &str, config: ServiceConfig) -> Result<Service, ServiceError> {
        let config_error = |problems| ServiceError::Config { origin: origin.to_owned(), problems };
        config.validate().map_err(config_error)?;
        let mut problems = Vec::new();
        let mut sources = Vec::new();
        for (i, source) in config.sources.iter().enumerate() {
            let at = format!("sources[{i}] ({})", source.id);
            let mut templates = Vec::new();
            for template in &source.templates {
                match load_template(template) {
                    Ok(t) => templates.push(t),
                    Err(problem) => problems.push(format!("{at}.templates: {problem}")),
                }
            }
            let mut names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
            names.sort_unstable();
            for pair in names.windows(2) {
                if pair[0] == pair[1] {
                    problems.push(format!("{at}.templates: two templates are named {:?}", pair[0]));
                }
            }
            let settings = source_settings(source, &templates);
            match build_source(source, &settings, &templates) {
                Ok(built) => {
                    sources.push(PreparedSource {
                        config: source.clone(),
                        settings,
                        source: built,
                        templates,
                    });
                }
                Err(mut p) => problems.extend(p.drain(..).map(|p| format!("{at}: {p}"))),
            }
        }
        let client = match build_client(&config, sources.iter().flat_map(|s| &s.templates)) {
            Ok(client) => Some(client),
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        match client {
            Some(client) if problems.is_empty() => {
                Ok(Service { config, sources, client, role: Role::All })
            }
            _ => Err(config_error(problems)),
        }
    }

    /// The configuration in force (overrides applied, paths absolute).
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The service running only `role`'s part of the engine.
    #[must_use]
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Runs pollers and workers until `shutdown` fires, then stops them as the module docs say
    /// and returns what was done. Nothing it started is left running when it returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<ServeSummary, ServiceError> {
        self.run_with(shutdown, |_| async { Ok(()) }).await
    }

    /// Like [`Service::run`], with `companion` running beside the engine on the same state
    /// store, job queue and platform client (the REST layer, served by the binary): it is
    /// started once the store and the queue are open and must return when the context's
    /// `shutdown` fires; its error stops the service.
    pub async fn run_with<F, Fut>(
        self,
        shutdown: CancellationToken,
        companion: F,
    ) -> Result<ServeSummary, ServiceError>
    where
        F: FnOnce(CompanionContext) -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let Service { config, sources, client, role } = self;
        create_parent(&config.state.path)?;
        if !config.jobs.on_broker() {
            create_parent(&config.jobs.path)?;
        }
        let queue_location = config.jobs.queue_location().map_err(ServiceError::Internal)?;
        let store = Store::open(&config.state.path).await?;
        let queue = match JobQueue::open(&queue_location, config.jobs.queue_config()).await {
            Ok(queue) => queue,
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        };
        // Beside the first of the state and queue files (a PostgreSQL state has no folder).
        let upload_dir = [&config.state.path, &config.jobs.path]
            .into_iter()
            .find(|location| !config::is_url(location))
            .and_then(|file| Path::new(file).parent())
            .map_or_else(|| Path::new("uploads").to_owned(), |dir| dir.join("uploads"));
        let context = CompanionContext {
            upload_dir,
            store: store.clone(),
            queue: queue.clone(),
            tenant: config.platform.tenant_id.clone(),
            client: client.clone(),
            shutdown: shutdown.clone(),
        };
        let companion = tokio::spawn(companion(context));
        let result = serve(&config, role, sources, client, &store, &queue, shutdown.clone()).await;
        // The engine stopped (on shutdown, or failing): the companion stops too.
        shutdown.cancel();
        let companion = match companion.await {
            Ok(outcome) => outcome.map_err(ServiceError::Internal),
            Err(e) => Err(ServiceError::Internal(format!("the companion task: {e}"))),
        };
        queue.close().await;
        store.close().await;
        let summary = result?;
        companion?;
        Ok(summary)
    }
}

/// What a task running beside the engine ([`Service::run_with`]) shares with it.
#[derive(Debug, Clone)]
pub struct CompanionContext {
    /// The state store.
    pub store: Store,
    /// The job queue.
    pub queue: JobQueue,
    /// The tenant the engine imports for (`[platform] tenant_id`).
    pub tenant: String,
    /// The platform client of that tenant.
    pub client: ApiClient,
    /// Fires when the service stops; the companion must return then.
    pub shutdown: CancellationToken,
    /// Where uploads queued for the workers are kept (`uploads/` beside the state store).
    pub upload_dir: std::path::PathBuf,
}

/// Everything the poller and import tasks share.
struct Shared {
    store: Store,
    queue: JobQueue,
    tenant: String,
    client: ApiClient,
    /// The sources being polled: the configured ones, and those created through the REST
    /// layer (added and removed by [`watch_stored_sources`]).
    sources: std::sync::RwLock<Vec<Arc<ActiveSource>>>,
    options: RunnerOptions,
    /// Cancels imports in flight (fired when the shutdown grace period is over).
    abort: CancellationToken,
    stats: Stats,
    /// Routes, gates, stores and queues the alert events.
    alerting: Arc<Alerting>,
    /// This process among the cluster's, as the holder of its leases.
    instance: String,
    /// How long a lease lasts unless renewed (`[jobs] lease_seconds`).
    lease: Duration,
}

/// A registered source: its store id and what the runner needs.
struct ActiveSource {
    context: SourceContext,
    templates: Vec<Template>,
    poller: PollerOptions,
    active: bool,
}

impl Shared {
    /// The polled source with store id `id`.
    fn source(&self, id: &str) -> Option<Arc<ActiveSource>> {
        let sources = self.sources.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        sources.iter().find(|s| s.context.id == id).cloned()
    }

    /// Starts serving `source` (replacing one with the same id).
    fn add_source(&self, source: Arc<ActiveSource>) {
        let mut sources = self.sources.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        sources.retain(|s| s.context.id != source.context.id);
        sources.push(source);
    }

    /// Stops serving source `id`.
    fn remove_source(&self, id: &str) {
        let mut sources = self.sources.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        sources.retain(|s| s.context.id != id);
    }

    /// How many sources are polled.
    fn active_sources(&self) -> usize {
        let sources = self.sources.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        sources.iter().filter(|s| s.active).count()
    }
}

async fn serve(
    config: &ServiceConfig,
    role: Role,
    sources: Vec<PreparedSource>,
    client: ApiClient,
    store: &Store,
    queue: &JobQueue,
    shutdown: CancellationToken,
) -> Result<ServeSummary, ServiceError> {
    let tenant = config.platform.tenant_id.clone();
    let mut active = Vec::with_capacity(sources.len());
    // Processes of a cluster starting together register the same sources: one at a time.
    let instance = format!("{}-{}", std::process::id(), ulid::Ulid::generate());
    let lease_ttl = config.jobs.lease();
    let registering = leases::HeldLease::wait_for(
        store,
        leases::registration_lease(&tenant),
        instance.clone(),
        lease_ttl,
        lease_ttl.saturating_mul(2),
    )
    .await?
    .ok_or_else(|| {
        ServiceError::Internal(
            "another process kept the registration lease too long; try again".to_owned(),
        )
    })?;
    let mut registered = Ok(());
    for prepared in sources {
        match register(store, &tenant, prepared).await {
            Ok(source) => active.push(source),
            Err(e) => {
                registered = Err(e);
                break;
            }
        }
    }
    registering.release().await;
    registered?;
    let configured: HashSet<String> = active.iter().map(|s| s.context.id.clone()).collect();
    let links = Links { public_url: config.api.as_ref().and_then(|api| api.public_url.clone()) };
    let alerting =
        Alerting::new(store.clone(), queue.clone(), &tenant, &config.alerts.timezone, links)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let shared = Arc::new(Shared {
        store: store.clone(),
        queue: queue.clone(),
        tenant,
        client,
        sources: std::sync::RwLock::new(active.into_iter().map(Arc::new).collect()),
        options: RunnerOptions { resume_unfinished: true, ..RunnerOptions::default() },
        abort: CancellationToken::new(),
        stats: Stats::default(),
        alerting: Arc::new(alerting),
        instance,
        lease: lease_ttl,
    });

    // Pollers stop on shutdown, or when the workers stopped on their own (a queue failure).
    let stop_polling = shutdown.child_token();
    let mut pollers = JoinSet::new();
    let configured_sources: Vec<Arc<ActiveSource>> = shared
        .sources
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|s| s.active)
        .cloned()
        .collect();
    if role.polls() {
        for source in configured_sources {
            pollers.spawn(poll_source(shared.clone(), source, stop_polling.clone()));
        }
        tracing::info!(sources = pollers.len(), "intake serve: polling");
        let interval = Duration::from_secs(config.alerts.monitor_interval_seconds);
        pollers.spawn(monitor_alerts(shared.clone(), interval, stop_polling.clone()));
    }
    // Every role knows the sources created through the REST layer (a worker imports their
    // files); only a poller polls them.
    let stored =
        watch_stored_sources(shared.clone(), configured, role.polls(), stop_polling.clone());
    pollers.spawn(stored);

    let handler = {
        let shared = shared.clone();
        move |job: ImportFile| {
            let shared = shared.clone();
            async move { import_job(&shared, job).await }
        }
    };
    let retry_handler = {
        let shared = shared.clone();
        move |job: RetryRejectedRecords| {
            let shared = shared.clone();
            async move { retry_job(&shared, job).await }
        }
    };
    let upload_handler = {
        let shared = shared.clone();
        move |job: ImportUpload| {
            let shared = shared.clone();
            async move { upload_job(&shared, job).await }
        }
    };
    let alert_handler = {
        let alerting = shared.alerting.clone();
        let tenant = shared.tenant.clone();
        move |job: DeliverAlert| {
            let alerting = alerting.clone();
            let tenant = tenant.clone();
            async move {
                if job.tenant_id != tenant {
                    return Err(JobError::permanent(format!(
                        "tenant {} is not served by this process",
                        job.tenant_id
                    )));
                }
                alerting.deliver(&job.alert_id).await
            }
        }
    };
    let workers = Workers::new(queue)
        .import_file(config.jobs.import_concurrency, handler)
        .retry_rejected_records(RETRY_CONCURRENCY, retry_handler)
        .import_upload(config.jobs.import_concurrency, upload_handler)
        .deliver_alert(ALERT_CONCURRENCY, alert_handler);
    let (work, stop_work) = (role.works(), shutdown.clone());
    let running = async move {
        if work {
            workers.run(stop_work).await
        } else {
            stop_work.cancelled().await;
            Ok(())
        }
    };
    tokio::pin!(running);
    let grace = Duration::from_secs(config.jobs.shutdown_grace_seconds);
    let worked = tokio::select! {
        result = &mut running => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("shutdown grace period over: cancelling the imports in flight");
            shared.abort.cancel();
            running.await
        }
    };
    stop_polling.cancel();
    let mut internal = None;
    while let Some(joined) = pollers.join_next().await {
        if let Err(e) = joined {
            internal.get_or_insert_with(|| ServiceError::Internal(format!("a poller: {e}")));
        }
    }
    worked?;
    if let Some(error) = internal {
        return Err(error);
    }
    let stats = &shared.stats;
    Ok(ServeSummary {
        sources: shared.active_sources(),
        polls: stats.polls.load(Ordering::Relaxed),
        files_queued: stats.files_queued.load(Ordering::Relaxed),
        imported: stats.imported.load(Ordering::Relaxed),
        unmatched: stats.unmatched.load(Ordering::Relaxed),
        skipped: stats.skipped.load(Ordering::Relaxed),
        failed_attempts: stats.failed_attempts.load(Ordering::Relaxed),
    })
}

// ---- preparation ------------------------------------------------------------------------------

/// Loads one template file with the configured overrides; the problem names the file.
fn load_template(reference: &config::TemplateRef) -> Result<Template, String> {
    let path = reference.path();
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let overrides = reference.overrides();
    let text = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut object)) if !overrides.is_empty() => {
            for (field, value) in overrides {
                object.insert(field.to_owned(), value);
            }
            Value::Object(object).to_string()
        }
        // Not JSON (or no overrides): the loader reports it with line and column.
        _ => text,
    };
    crate::template::load(&name, &text).map_err(|e| e.to_string())
}

/// The poller's settings: the configured ones, the templates' `ignored_folders` and
/// `temp_file_extensions`, and the post-processing folders (never listed again).
fn source_settings(source: &config::SourceConfig, templates: &[Template]) -> SourceSettings {
    let mut ignored = source.ignored_folders.clone();
    let mut temp = source.temp_file_extensions.clone();
    for template in templates {
        ignored.extend(template.ignored_folders.iter().cloned());
        temp.extend(template.temp_file_extensions.iter().cloned());
        if template.post_process_policy == PostProcessPolicy::Move {
            ignored.extend(template.completed_folder.iter().cloned());
            ignored.extend(template.error_folder.iter().cloned());
        }
    }
    if source.move_unmatched_to_error {
        ignored.push(source.unmatched_folder.clone());
    }
    ignored.sort();
    ignored.dedup();
    temp.sort();
    temp.dedup();
    SourceSettings {
        name: source.id.clone(),
        ignored_folders: ignored,
        temp_file_extensions: temp,
        polling_interval_seconds: source.polling_interval_seconds,
        event_driven: source.event_driven,
    }
}

fn build_source(
    source: &config::SourceConfig,
    settings: &SourceSettings,
    templates: &[Template],
) -> Result<Arc<dyn Source>, Vec<String>> {
    match source.source_type.as_str() {
        "watched_directory" => {
            let connection: WatchedDirectoryConfig = connection_config(source)?;
            connection.validate()?;
            if !connection.path.exists() {
                std::fs::create_dir_all(&connection.path).map_err(|e| {
                    vec![format!("cannot create {}: {e}", connection.path.display())]
                })?;
                tracing::info!(path = %connection.path.display(), "created the watched folder");
            }
            built(WatchedDirectory::build(&connection, settings))
        }
        "http_pull" => http_pull::build_http_pull(source, settings),
        "email_inbox" => email_inbox::build_email_inbox(source, settings, templates),
        "sftp" => {
            let connection: SftpConfig = connection_config(source)?;
            built(SftpSource::build(&connection, settings, credential_lookup()))
        }
        "s3" => {
            let connection: S3Config = connection_config(source)?;
            built(S3Source::build(&connection, settings, credential_lookup()))
        }
        other => Err(vec![format!("not supported yet: source_type '{other}'")]),
    }
}

/// A source's `connection_config` read as its source type's own config.
fn connection_config<T: serde::de::DeserializeOwned>(
    source: &config::SourceConfig,
) -> Result<T, Vec<String>> {
    source
        .connection_config
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| vec![format!("connection_config: {}", e.message())])
}

/// The engine's credential resolver for a source: references are resolved when the source
/// needs them, never stored or logged.
fn credential_lookup() -> CredentialLookup {
    Arc::new(|reference: &str| {
        crate::m2m::resolve_credential(reference)
            .map(|secret| SecretValue::new(secret.expose()))
            .map_err(|e| e.to_string())
    })
}

/// A built source, or its configuration problems.
fn built<S: Source + 'static>(
    result: Result<S, SourceError>,
) -> Result<Arc<dyn Source>, Vec<String>> {
    match result {
        Ok(source) => Ok(Arc::new(source)),
        Err(SourceError::InvalidConfig { problems, .. }) => Err(problems),
        Err(e) => Err(vec![e.to_string()]),
    }
}

/// One client for the tenant, asking for every capability the templates need.
fn build_client<'a>(
    config: &ServiceConfig,
    templates: impl Iterator<Item = &'a Template>,
) -> Result<ApiClient, String> {
    let platform = &config.platform;
    let key = load_signing_key(&platform.key_credential)
        .map_err(|e| format!("platform.key_credential: {e}"))?;
    let base = url::Url::parse(&platform.url).map_err(|e| format!("platform.url: {e}"))?;
    let token_url = base.join("auth/token").map_err(|e| format!("platform.url: {e}"))?;
    let mut scopes: Vec<String> = templates.flat_map(template_scopes).collect();
    scopes.sort();
    scopes.dedup();
    let mut client_config = ClientConfig::new(base);
    client_config.tenant_id = Some(platform.tenant_id.clone());
    let http = ApiClient::http_client(&client_config).map_err(|e| format!("platform: {e}"))?;
    let credentials = ClientCredentials {
        token_url,
        client_id: platform.client_id.clone(),
        kid: platform.kid.clone(),
        key,
        scopes,
        dpop_key: None,
    };
    Ok(ApiClient::new(client_config, TokenManager::new(http.clone(), credentials), http))
}

fn create_parent(location: &str) -> Result<(), ServiceError> {
    if config::is_url(location) {
        return Ok(());
    }
    match Path::new(location).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
            .map_err(|error| ServiceError::Folder { path: parent.display().to_string(), error }),
        _ => Ok(()),
    }
}

// ---- registration -----------------------------------------------------------------------------

/// Creates or refreshes the document with this `external_id`, keeping the `keep` fields the
/// service itself maintains.
async fn upsert_document(
    store: &Store,
    collection: Collection,
    tenant: &str,
    external_id: &str,
    mut body: Value,
    keep: &[&str],
) -> Result<Document, StoreError> {
    body["external_id"] = json!(external_id);
    let query = ListQuery::new().eq("external_id", external_id).page(1, 1);
    let found = store.list(collection, tenant, &query).await?.items.into_iter().next();
    match found {
        Some(existing) => {
            for field in keep {
                if let Some(value) = existing.body.get(*field) {
                    body[*field] = value.clone();
                }
            }
            store.update(collection, tenant, &existing.meta.id, None, body).await
        }
        None => store.create(collection, tenant, body).await,
    }
}

/// Registers a source and its templates; the templates get their store ids.
async fn register(
    store: &Store,
    tenant: &str,
    prepared: PreparedSource,
) -> Result<ActiveSource, ServiceError> {
    let PreparedSource { config, settings, source, mut templates } = prepared;
    let connection = serde_json::to_value(&config.connection_config).unwrap_or_default();
    let body = json!({
        "name": config.display_name(),
        "source_type": config.source_type,
        "connection_config": connection,
        "ignored_folders": settings.ignored_folders,
        "temp_file_extensions": settings.temp_file_extensions,
        "polling_interval_seconds": config.polling_interval_seconds,
        "event_driven": config.event_driven,
        "move_unmatched_to_error": config.move_unmatched_to_error,
        "is_active": config.is_active,
        "last_successful_poll_at": null,
        "last_error": null,
    });
    let keep = ["last_successful_poll_at", "last_error"];
    let document =
        upsert_document(store, Collection::Sources, tenant, &config.id, body, &keep).await?;
    let source_id = document.meta.id;
    for template in &mut templates {
        template.id = None;
        template.source_id = ObjectId::try_from(source_id.clone()).ok();
        let external = template
            .external_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", config.id, template.name));
        let body = serde_json::to_value(&*template).map_err(|e| {
            ServiceError::Internal(format!("template {} as JSON: {e}", template.name))
        })?;
        let document =
            upsert_document(store, Collection::Templates, tenant, &external, body, &[]).await?;
        template.id = ObjectId::try_from(document.meta.id).ok();
    }
    let context = SourceContext {
        id: source_id,
        source,
        move_unmatched_to_error: config.move_unmatched_to_error,
        unmatched_folder: config.unmatched_folder.clone(),
    };
    Ok(ActiveSource {
        context,
        templates,
        poller: PollerOptions::from_settings(&settings),
        active: config.is_active,
    })
}

/// How often the sources in the state store are compared with the polled ones.
const SOURCE_REFRESH: Duration = Duration::from_secs(2);

/// Polls the sources created through the REST layer: every [`SOURCE_REFRESH`], the tenant's
/// active sources in the store that the configuration does not name are compared with the
/// polled ones — a new source starts being polled, a deactivated or deleted one stops, and one
/// whose settings changed is restarted with them. A source that cannot be built is not polled
/// and its `last_error` says why (once per version of its settings). Returns when `stop` fires,
/// after its pollers stopped.
async fn watch_stored_sources(
    shared: Arc<Shared>,
    configured: HashSet<String>,
    poll: bool,
    stop: CancellationToken,
) {
    // id → (the settings it runs with, its poller's stop token)
    let mut running: HashMap<String, (String, CancellationToken)> = HashMap::new();
    // id → the settings that could not be built
    let mut broken: HashMap<String, String> = HashMap::new();
    let mut pollers = JoinSet::new();
    loop {
        let query = ListQuery::new().eq("is_active", true).page(1, ListQuery::MAX_PER_PAGE);
        match shared.store.list(Collection::Sources, &shared.tenant, &query).await {
            Ok(page) => {
                let wanted: Vec<&Document> =
                    page.items.iter().filter(|d| !configured.contains(&d.meta.id)).collect();
                // Stop what is gone or changed.
                running.retain(|id, (settings, token)| {
                    let keep = wanted
                        .iter()
                        .any(|d| &d.meta.id == id && &source_settings_key(d) == settings);
                    if !keep {
                        token.cancel();
                        shared.remove_source(id);
                        tracing::info!(source = %id, "stopped polling a source (deactivated, deleted or changed)");
                    }
                    keep
                });
                // Start what is new.
                for document in wanted {
                    let id = &document.meta.id;
                    let settings = source_settings_key(document);
                    if running.contains_key(id) || broken.get(id) == Some(&settings) {
                        continue;
                    }
                    match build_stored_source(&shared, document).await {
                        Ok(source) => {
                            let token = stop.child_token();
                            let source = Arc::new(source);
                            shared.add_source(source.clone());
                            if poll {
                                pollers.spawn(poll_source(shared.clone(), source, token.clone()));
                                tracing::info!(source = %id, "polling a source created through the API");
                            }
                            running.insert(id.clone(), (settings, token));
                            broken.remove(id);
                        }
                        Err(problem) => {
                            mark_source_error(&shared.store, &shared.tenant, document, &problem)
                                .await;
                            broken.insert(id.clone(), settings);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the stored sources"),
        }
        // Reap pollers that ended (cancelled above).
        while pollers.try_join_next().is_some() {}
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(SOURCE_REFRESH) => {}
        }
    }
    while pollers.join_next().await.is_some() {}
}

/// The settings of a stored source that decide how it is polled (not what polling writes back:
/// `last_successful_poll_at`, `last_error`), as comparable text.
fn source_settings_key(document: &Document) -> String {
    let body = &document.body;
    let fields = [
        "source_type",
        "connection_config",
        "ignored_folders",
        "temp_file_extensions",
        "polling_interval_seconds",
        "event_driven",
        "move_unmatched_to_error",
        "unmatched_folder",
    ];
    fields.map(|f| body.get(f).map(Value::to_string).unwrap_or_default()).join("|")
}

/// A stored source, ready to poll (with the templates it has now, for its ignored folders).
async fn build_stored_source(shared: &Shared, document: &Document) -> Result<ActiveSource, String> {
    let id = document.meta.id.clone();
    let config = stored_source_config(document)?;
    let query = ListQuery::new().eq("source_id", id.clone()).page(1, ListQuery::MAX_PER_PAGE);
    let templates: Vec<Template> =
        match shared.store.list(Collection::Templates, &shared.tenant, &query).await {
            Ok(page) => page.items.iter().filter_map(|d| template_from_document(d).ok()).collect(),
            Err(e) => return Err(format!("cannot read its templates: {e}")),
        };
    let settings = source_settings(&config, &templates);
    let source =
        build_source(&config, &settings, &templates).map_err(|problems| problems.join("; "))?;
    Ok(ActiveSource {
        context: SourceContext {
            id,
            source,
            move_unmatched_to_error: config.move_unmatched_to_error,
            unmatched_folder: config.unmatched_folder.clone(),
        },
        templates,
        poller: PollerOptions::from_settings(&settings),
        active: true,
    })
}

/// A stored source document as the configuration of a source.
fn stored_source_config(document: &Document) -> Result<config::SourceConfig, String> {
    let body = &document.body;
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
    let strings = |field: &str| -> Vec<String> {
        body.get(field)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let connection_config: toml::Table =
        serde_json::from_value(body.get("connection_config").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("connection_config: {e}"))?;
    Ok(config::SourceConfig {
        id: document.meta.id.clone(),
        name: text("name"),
        source_type: text("source_type").ok_or("source_type is missing")?,
        connection_config,
        ignored_folders: strings("ignored_folders"),
        temp_file_extensions: strings("temp_file_extensions"),
        polling_interval_seconds: body
            .get("polling_interval_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(300),
        event_driven: body.get("event_driven").and_then(Value::as_bool).unwrap_or(false),
        move_unmatched_to_error: body
            .get("move_unmatched_to_error")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        unmatched_folder: text("unmatched_folder")
            .unwrap_or_else(|| crate::runner::DEFAULT_UNMATCHED_FOLDER.to_owned()),
        is_active: true,
        templates: Vec::new(),
    })
}

/// Records why a stored source is not polled (its `last_error`), logging it.
async fn mark_source_error(store: &Store, tenant: &str, document: &Document, problem: &str) {
    tracing::warn!(source = %document.meta.id, %problem, "a stored source cannot be polled");
    let mut body = document.body.clone();
    body["last_error"] = Value::String(format!("cannot be polled: {problem}"));
    if let Err(e) = store.update(Collection::Sources, tenant, &document.meta.id, None, body).await {
        tracing::warn!(source = %document.meta.id, error = %e, "cannot record the source's error");
    }
}

// ---- polling ----------------------------------------------------------------------------------

/// Polls one source until `stop` fires: claims and enqueues each ready file version once.
async fn poll_source(shared: Arc<Shared>, source: Arc<ActiveSource>, stop: CancellationToken) {
    let source = source.as_ref();
    let name = source.context.source.name().to_owned();
    let mut poller = Poller::new(source.context.source.clone(), source.poller.clone());
    // path → the version handed off (hashed, claimed, enqueued), so it is hashed once.
    let mut handed: HashMap<String, String> = HashMap::new();
    // Given-up import jobs of this source already ended on the store by this process.
    let mut ended: HashSet<String> = HashSet::new();
    let mut health = SourceHealth::default();
    let lease = leases::poll_lease(&shared.tenant, &source.context.id);
    let mut leading = false;
    loop {
        // One poller of the cluster at a time: the holder of the source's lease.
        match shared.store.acquire_lease(&lease, &shared.instance, shared.lease).await {
            Ok(true) => {
                if !leading {
                    tracing::info!(source = %name, "polling this source (took its lease)");
                }
                leading = true;
            }
            Ok(false) | Err(_) => {
                if leading {
                    tracing::warn!(source = %name, "another process polls this source now (lease lost)");
                }
                leading = false;
                if poller.wait(&stop).await == Wake::Cancelled {
                    break;
                }
                continue;
            }
        }
        end_given_up_imports(&shared, source, &mut ended).await;
        let report = poller.poll().await;
        bump(&shared.stats.polls);
        let mut error = report.error_message();
        if let Some(message) = &error {
            tracing::warn!(source = %name, error = %message, "poll failed");
            crate::metrics::count_poll_error(&name);
        }
        if let Some(event) = health.record(&shared.tenant, &source.context.id, error.as_deref()) {
            shared.alerting.raise(event).await;
        }
        if let Ok(observed) = &report.outcome {
            handed.retain(|path, _| observed.ready.iter().any(|f| &f.path == path));
        }
        for file in report.ready() {
            if stop.is_cancelled() {
                break;
            }
            let version = format!("{}:{}", file.size, file.version_token());
            if handed.get(&file.path) == Some(&version) {
                continue;
            }
            // Still the source's poller? (Hashing a large file may take a while.)
            if !matches!(
                shared.store.acquire_lease(&lease, &shared.instance, shared.lease).await,
                Ok(true)
            ) {
                break;
            }
            match hand_off(&shared, source, file).await {
                Ok(()) => {
                    handed.insert(file.path.clone(), version);
                }
                Err(e) => {
                    tracing::warn!(source = %name, path = %file.path, error = %e, "cannot queue the file; trying again at the next poll");
                    error.get_or_insert(format!("{}: {e}", file.path));
                }
            }
        }
        record_poll(&shared, source, report.finished_at, error).await;
        if poller.wait(&stop).await == Wake::Cancelled {
            break;
        }
    }
    if leading && let Err(e) = shared.store.release_lease(&lease, &shared.instance).await {
        tracing::warn!(source = %name, error = %e, "cannot release the source's lease; it expires on its own");
    }
    tracing::debug!(source = %name, "poller stopped");
}

/// Ends the imports of this source whose job the queue gave up on (attempts exhausted, e.g. a
/// worker killed again and again, or a permanent error): the run `failed` with the job's reason,
/// the claim `failed`, the file post-processed per its template. Runs before every poll (so also
/// at start-up); a job already handled (its claim final) is skipped, so repeating is harmless.
async fn end_given_up_imports(shared: &Shared, source: &ActiveSource, ended: &mut HashSet<String>) {
    let given_up = match shared.queue.given_up::<ImportFile>().await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the failed import jobs");
            return;
        }
    };
    for failed in given_up {
        let job = &failed.job;
        if ended.contains(&failed.id)
            || job.tenant_id != shared.tenant
            || job.source_id != source.context.id
        {
            continue;
        }
        let templates = current_templates(shared, source).await;
        let give_up = GivenUpImport {
            store: &shared.store,
            tenant: &shared.tenant,
            source: &source.context,
            templates: &templates,
            claim_id: &job.claim_id,
            reason: &failed.reason,
        };
        match fail_given_up_import(give_up).await {
            Ok(outcome) => {
                if let Some((run, placement)) = outcome {
                    tracing::warn!(job = %failed.id, claim = %job.claim_id, run = %run.meta.id, reason = %failed.reason, ?placement, "import job given up: run ended failed");
                    raise_run_events(shared, &run, &templates).await;
                }
                ended.insert(failed.id);
            }
            Err(e) => {
                tracing::warn!(job = %failed.id, claim = %job.claim_id, error = %e, "cannot end the given-up import; trying again at the next poll");
            }
        }
    }
}

/// Hashes and claims a ready file and enqueues its import (idempotent per claim).
async fn hand_off(shared: &Shared, source: &ActiveSource, file: &FileEntry) -> Result<(), String> {
    let sha256 = match content_sha256(source.context.source.as_ref(), &file.path).await {
        Ok(sha256) => sha256,
        // Moved or deleted since the listing: nothing to do.
        Err(SourceError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let claim = NewFileClaim {
        source_id: source.context.id.clone(),
        path: file.path.clone(),
        size: file.size,
        modified: file.modified.map(DateTime::<Utc>::from),
        version: file.version.clone(),
        content_sha256: sha256,
    };
    let claim = match shared.store.claim_file(&shared.tenant, &claim).await {
        Ok(ClaimOutcome::Claimed(claim) | ClaimOutcome::AlreadyClaimed(claim)) => claim,
        Err(e) => return Err(e.to_string()),
    };
    match claim.state {
        ClaimState::Claimed | ClaimState::Importing => {
            let job = ImportFile {
                tenant_id: shared.tenant.clone(),
                source_id: source.context.id.clone(),
                claim_id: claim.meta.id.clone(),
            };
            shared.queue.enqueue_import_file(job).await.map_err(|e| e.to_string())?;
            bump(&shared.stats.files_queued);
            tracing::info!(source = %source.context.id, path = %file.path, claim = %claim.meta.id, "file queued for import");
            Ok(())
        }
        ClaimState::Done | ClaimState::Failed => {
            finish_pending_move(shared, source, file, &claim).await
        }
    }
}

/// A file whose claim is final but which is still here: if its run planned a move, the runner
/// carries it out (a crash came between the end of the run and the move).
async fn finish_pending_move(
    shared: &Shared,
    source: &ActiveSource,
    file: &FileEntry,
    claim: &FileClaim,
) -> Result<(), String> {
    let Some(run_id) = &claim.run_id else { return Ok(()) };
    let run = shared.store.get_run(&shared.tenant, run_id).await.map_err(|e| e.to_string())?;
    if run.body.timings.pointer("/post_process/to").is_none() {
        return Ok(());
    }
    let templates = current_templates(shared, source).await;
    let job = FileImport {
        store: &shared.store,
        tenant: &shared.tenant,
        source: &source.context,
        templates: &templates,
        client: shared.client.clone(),
        file,
        options: &RunnerOptions::default(),
        cancel: shared.abort.clone(),
    };
    import_source_file(job).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Records a poll on the source document.
async fn record_poll(
    shared: &Shared,
    source: &ActiveSource,
    finished_at: SystemTime,
    error: Option<String>,
) {
    let id = &source.context.id;
    let result = async {
        let mut document = shared.store.get(Collection::Sources, &shared.tenant, id).await?;
        if error.is_none() {
            let at = DateTime::<Utc>::from(finished_at).to_rfc3339();
            document.body["last_successful_poll_at"] = json!(at);
        }
        document.body["last_error"] = json!(error);
        shared.store.update(Collection::Sources, &shared.tenant, id, None, document.body).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(source = %id, error = %e, "cannot record the poll on the source");
    }
}

// ---- importing --------------------------------------------------------------------------------

fn job_error(retryable: bool, reason: impl std::fmt::Display) -> JobError {
    if retryable { JobError::retryable(reason) } else { JobError::permanent(reason) }
}

/// The templates of `source` as they are now: the tenant's templates in the state store whose
/// `source_id` is the source's — those `intake serve` registered from its configuration and
/// those created or changed through the REST layer — so an API change takes effect with the
/// next file. A stored template that no longer loads is skipped with a warning; when the store
/// cannot be read, the configured templates are used.
async fn current_templates(shared: &Shared, source: &ActiveSource) -> Vec<Template> {
    let query = ListQuery::new()
        .eq("source_id", source.context.id.clone())
        .page(1, ListQuery::MAX_PER_PAGE);
    let documents = match shared.store.list(Collection::Templates, &shared.tenant, &query).await {
        Ok(page) => page.items,
        Err(e) => {
            tracing::warn!(source = %source.context.id, error = %e, "cannot read the stored templates; using the configured ones");
            return source.templates.clone();
        }
    };
    let mut templates = Vec::with_capacity(documents.len());
    for document in &documents {
        match template_from_document(document) {
            Ok(template) => templates.push(template),
            Err(e) => {
                tracing::warn!(template = %document.meta.id, error = %e, "stored template skipped: it does not load");
            }
        }
    }
    templates
}

/// The `ImportUpload` handler: a queued upload imported under its run with the tenant's stored
/// template. A job that cannot succeed (another tenant, a template gone or no longer valid)
/// ends its run `failed` with the reason; the kept file is removed once the run is final.
async fn upload_job(shared: &Shared, job: ImportUpload) -> Result<(), JobError> {
    let tenant = &shared.tenant;
    if &job.tenant_id != tenant {
        let reason = format!("tenant {} is not served by this process", job.tenant_id);
        return fail_upload(shared, &job, reason).await;
    }
    let template = match stored_template(&shared.store, tenant, &job.template_id).await {
        Ok(template) => template,
        Err(StoredTemplateError::Store(e)) if e.is_retryable() => return Err(job_error(true, e)),
        Err(e) => {
            return fail_upload(shared, &job, format!("template {}: {e}", job.template_id)).await;
        }
    };
    let import = UploadImport {
        store: &shared.store,
        tenant,
        run_id: &job.run_id,
        template: &template,
        path: Path::new(&job.path),
        client: shared.client.clone(),
        options: &shared.options,
        cancel: shared.abort.clone(),
    };
    match import_uploaded_file(import).await {
        Ok(run) => {
            bump(&shared.stats.imported);
            tracing::info!(run = %run.meta.id, status = run.body.status.as_str(), "upload imported");
            raise_run_events(shared, &run, std::slice::from_ref(&template)).await;
            remove_upload(&job.path).await;
            Ok(())
        }
        Err(e) => {
            bump(&shared.stats.failed_attempts);
            tracing::warn!(run = %job.run_id, error = %e, "upload import attempt failed");
            Err(job_error(e.is_retryable(), e))
        }
    }
}

/// Ends a queued upload's run `failed` with `reason` (a run already final stays as it is) and
/// removes its file.
async fn fail_upload(shared: &Shared, job: &ImportUpload, reason: String) -> Result<(), JobError> {
    tracing::warn!(run = %job.run_id, %reason, "queued upload cannot be imported");
    let outcome = RunOutcome {
        status: RunStatus::Failed,
        counts: RunCounts::default(),
        timings: serde_json::json!({"upload": true}),
        error: Some(reason),
    };
    match shared.store.finish_run(&job.tenant_id, &job.run_id, &outcome, &[]).await {
        Ok(_) | Err(StoreError::NotFound { .. } | StoreError::IllegalTransition { .. }) => {
            remove_upload(&job.path).await;
            Ok(())
        }
        Err(e) => Err(job_error(e.is_retryable(), e)),
    }
}

/// Removes a queued upload's kept file (a missing file is fine: a re-delivered job).
async fn remove_upload(path: &str) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%path, error = %e, "cannot remove an uploaded file");
    }
}

/// The `ImportFile` handler: the claim's file, by path, through the runner.
async fn import_job(shared: &Shared, job: ImportFile) -> Result<(), JobError> {
    let result = import_claimed_file(shared, &job).await;
    if let Err(e) = &result {
        bump(&shared.stats.failed_attempts);
        tracing::warn!(claim = %job.claim_id, error = %e, retryable = e.is_retryable(), "import attempt failed");
    }
    result
}

async fn import_claimed_file(shared: &Shared, job: &ImportFile) -> Result<(), JobError> {
    if job.tenant_id != shared.tenant {
        return Err(JobError::permanent(format!(
            "tenant {} is not served by this process (it serves {})",
            job.tenant_id, shared.tenant
        )));
    }
    let Some(source) = shared.source(&job.source_id) else {
        // Not (yet) served: a source created through the API is picked up within seconds.
        return Err(JobError::retryable(format!(
            "source {} is not served by this process",
            job.source_id
        )));
    };
    let tenant = &shared.tenant;
    let store_error = |e: StoreError| job_error(e.is_retryable(), e);
    let claim = shared.store.get_claim(tenant, &job.claim_id).await.map_err(store_error)?;
    // A queue that may deliver this job twice (RabbitMQ): hold the claim while importing it.
    let lease = if shared.queue.enqueue_is_idempotent() {
        None
    } else {
        let name = leases::import_lease(tenant, &claim.meta.id);
        let holder = format!("{}:{}", shared.instance, ulid::Ulid::generate());
        match leases::HeldLease::take(&shared.store, name, holder, shared.lease).await {
            Ok(Some(lease)) => Some(lease),
            Ok(None) => {
                return Err(JobError::busy(format!(
                    "another worker is importing {} (claim {})",
                    claim.path, claim.meta.id
                )));
            }
            Err(e) => return Err(store_error(e)),
        }
    };
    let result = import_held_claim(shared, &source, &claim).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    result
}

/// Imports a claimed file of `source` (see [`import_claimed_file`]).
async fn import_held_claim(
    shared: &Shared,
    source: &ActiveSource,
    claim: &FileClaim,
) -> Result<(), JobError> {
    let tenant = &shared.tenant;
    let file = match source.context.source.stat(&claim.path).await {
        Ok(file) => file,
        Err(SourceError::NotFound { .. }) => {
            // Gone before it was imported (or after, when the job is re-delivered after the move).
            supersede(shared, claim, "the file is gone").await;
            bump(&shared.stats.skipped);
            return Ok(());
        }
        Err(e) => return Err(job_error(e.is_retryable(), e)),
    };
    let templates = current_templates(shared, source).await;
    let import = FileImport {
        store: &shared.store,
        tenant,
        source: &source.context,
        templates: &templates,
        client: shared.client.clone(),
        file: &file,
        options: &shared.options,
        cancel: shared.abort.clone(),
    };
    match import_source_file(import).await {
        Ok(FileOutcome::Imported { run, placement, .. }) => {
            bump(&shared.stats.imported);
            tracing::info!(path = %file.path, run = %run.meta.id, status = run.body.status.as_str(), ?placement, "file imported");
            raise_run_events(shared, &run, &templates).await;
            if run.body.claim_id.as_deref() != Some(claim.meta.id.as_str()) {
                supersede(shared, claim, "its content changed before the import").await;
            }
            Ok(())
        }
        Ok(FileOutcome::Unmatched { run, placement }) => {
            bump(&shared.stats.unmatched);
            tracing::info!(path = %file.path, run = %run.meta.id, ?placement, "file unmatched");
            let alerting = &shared.alerting;
            let event = unmatched_event(&run, &source.context.id, tenant, alerting.links());
            alerting.raise(event).await;
            Ok(())
        }
        Ok(FileOutcome::Skipped { reason, claim_id, .. }) => {
            bump(&shared.stats.skipped);
            tracing::info!(path = %file.path, ?reason, "nothing to import");
            if reason != SkipReason::AlreadyImported || claim_id.as_deref() != Some(&claim.meta.id)
            {
                supersede(shared, claim, "the file changed before the import").await;
            }
            Ok(())
        }
        Err(e @ RunnerError::Cancelled { .. }) => Err(JobError::retryable(e)),
        Err(e) => Err(job_error(e.is_retryable(), e)),
    }
}

// ---- alerts ------------------------------------------------------------------------------------

/// Alert deliveries in flight at once.
const ALERT_CONCURRENCY: usize = 2;

/// Every `interval` until `stop`: the alert dispatcher's tick (digests, given-up deliveries) and
/// the SLA monitor.
/// One poller of the cluster at a time runs it (a lease), so a window is reported once.
async fn monitor_alerts(shared: Arc<Shared>, interval: Duration, stop: CancellationToken) {
    let alerting = &shared.alerting;
    let lease = leases::alert_monitor_lease(&shared.tenant);
    loop {
        let now = Utc::now();
        match shared.store.acquire_lease(&lease, &shared.instance, shared.lease).await {
            Ok(true) => {
                alerting.tick(now).await;
                if let Err(e) = crate::alerting::sla_monitor::check(alerting, now).await {
                    tracing::warn!(error = %e, "the SLA monitor could not check the templates");
                }
            }
            Ok(false) => tracing::debug!("another process runs the alert monitor"),
            Err(e) => tracing::warn!(error = %e, "cannot take the alert monitor's lease"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Raises the events of a finished run of one of `templates` (found by the run's template id).
async fn raise_run_events(shared: &Shared, run: &crate::store::ImportRun, templates: &[Template]) {
    let template_id = run.body.template_id.as_deref();
    let template =
        templates.iter().find(|t| Some(crate::runner::template_key(t).as_str()) == template_id);
    let Some(template) = template else {
        tracing::debug!(run = %run.meta.id, "the run's template is not served; no run alerts");
        return;
    };
    let alerting = &shared.alerting;
    for event in run_events(run, template, &shared.tenant, alerting.links()) {
        alerting.raise(event).await;
    }
}

// ---- retrying rejected records ----------------------------------------------------------------

/// `RetryRejectedRecords` jobs run at once (each retries its records one after the other).
const RETRY_CONCURRENCY: usize = 1;

/// The `RetryRejectedRecords` handler: the records through [`retry_rejected_records`] with every
/// template this process serves. Records refused or still invalid are outcomes (recorded on the
/// records); a store failure, or a record the platform did not take, is retried by the queue.
async fn retry_job(shared: &Shared, job: RetryRejectedRecords) -> Result<(), JobError> {
    if job.tenant_id != shared.tenant {
        return Err(JobError::permanent(format!(
            "tenant {} is not served by this process (it serves {})",
            job.tenant_id, shared.tenant
        )));
    }
    // Every record's template is read from the store as it is now (API changes included).
    let retry = RecordsRetry {
        store: &shared.store,
        tenant: &shared.tenant,
        record_ids: &job.record_ids,
        templates: &[],
        client: shared.client.clone(),
        cancel: shared.abort.clone(),
    };
    let report = retry_rejected_records(retry).await.map_err(|e| job_error(e.is_retryable(), e))?;
    tracing::info!(
        retried = report.retried(),
        still_pending = report.still_pending(),
        refused = report.refused(),
        not_written = report.not_written(),
        "rejected records retried"
    );
    if report.not_written() > 0 {
        return Err(JobError::retryable(format!(
            "{} of {} corrected record(s) could not be written; they stay corrected: {}",
            report.not_written(),
            report.records.len(),
            report.to_json()["records"]
        )));
    }
    Ok(())
}

/// Ends a claim that will never be imported (its file changed or went away) as `failed`, when it
/// is still only `claimed`; a newer version of the file gets its own claim.
async fn supersede(shared: &Shared, claim: &FileClaim, why: &str) {
    let Ok(current) = shared.store.get_claim(&shared.tenant, &claim.meta.id).await else { return };
    if current.state != ClaimState::Claimed {
        return;
    }
    tracing::info!(claim = %claim.meta.id, path = %claim.path, why, "claim superseded");
    if let Err(e) =
        shared.store.set_claim_state(&shared.tenant, &claim.meta.id, ClaimState::Failed, None).await
    {
        tracing::warn!(claim = %claim.meta.id, error = %e, "cannot mark the claim failed");
    }
}
