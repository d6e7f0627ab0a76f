//! `intake serve`: the engine's pollers and import workers — and the REST layer when the
//! configuration has an `[api]` section — until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use intake_api::rest::{AppState, PlatformClients, QueueUpload, QueuedUpload, UploadSettings};
use intake_engine::jobs::{ImportUpload, JobQueue};
use intake_engine::service::{CompanionContext, Role, Service};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::api::Trust;

/// Arguments of `intake serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration (TOML): state store, job queue, platform client, sources and their
    /// templates. `INTAKE_<SECTION>_<KEY>` environment variables override its scalar settings
    /// (for example INTAKE_PLATFORM_URL); see fixtures/serve/intake.toml.
    #[arg(long, short = 'c', value_name = "intake.toml")]
    config: PathBuf,
    /// Load and check the configuration and every template, then exit (0 when usable).
    #[arg(long)]
    check: bool,
    /// Which part of the engine this process runs, so the parts can be split across machines
    /// sharing the state store and the job queue: `poller` (polls sources, enqueues files, the
    /// alert monitor), `worker` (imports, uploads, retries, alert deliveries), `api` (the REST
    /// layer of `[api]`), or `all`.
    #[arg(long, value_enum, default_value_t = RoleArg::All)]
    role: RoleArg,
}

/// The values of `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    Poller,
    Worker,
    Api,
    All,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Poller => Role::Poller,
            RoleArg::Worker => Role::Worker,
            RoleArg::Api => Role::Api,
            RoleArg::All => Role::All,
        }
    }
}

/// Runs until a shutdown signal; exit 0 after a clean stop.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Built inside the runtime: the HTTP client and the watched folders need it.
        let role = Role::from(args.role);
        let service = Service::from_file(&args.config, std::env::vars())?.with_role(role);
        if role == Role::Api && service.config().api.is_none() {
            anyhow::bail!(
                "--role api serves the REST layer, but {} has no [api] section",
                args.config.display()
            );
        }
        // The REST layer, when configured and this role serves it: its trust is loaded (and,
        // unless checking, its address bound) before anything runs, so a mistake there stops
        // the start.
        let trust = match service.config().api.as_ref().filter(|_| role.serves_api()) {
            Some(api) => Some(
                Trust::load(
                    api.issuers.as_deref(),
                    api.clients.as_deref(),
                    api.token_key.as_deref(),
                    api.public_url.clone(),
                )
                .context("[api]")?,
            ),
            None => None,
        };
        if args.check {
            println!("intake serve: {} is usable", args.config.display());
            return Ok(ExitCode::SUCCESS);
        }
        let api = match (trust, service.config().api.as_ref()) {
            (Some(trust), Some(api)) => {
                let listener = tokio::net::TcpListener::bind(&api.listen)
                    .await
                    .with_context(|| format!("[api] cannot listen on {}", api.listen))?;
                Some((trust, listener))
            }
            _ => None,
        };
        let shutdown = CancellationToken::new();
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let sources = service.config().sources.len();
        if let Some((_, listener)) = &api {
            let address = listener.local_addr()?;
            println!("intake serve: REST layer listening on http://{address}");
        }
        println!(
            "intake serve: running ({sources} source(s), role {}); SIGTERM or Ctrl-C stops",
            role.as_str()
        );
        let running = service.run_with(shutdown.clone(), move |context| serve_rest(api, context));
        tokio::pin!(running);
        let summary = tokio::select! {
            result = &mut running => result,
            _ = terminate.recv() => {
                shutdown.cancel();
                running.await
            }
            _ = interrupt.recv() => {
                shutdown.cancel();
                running.await
            }
        }?;
        println!("intake serve stopped: {summary}");
        Ok(ExitCode::SUCCESS)
    })
}

/// Serves the REST layer over the engine's store, queue and platform client until the service
/// stops (nothing to do without `[api]`).
async fn serve_rest(
    api: Option<(Trust, tokio::net::TcpListener)>,
    context: CompanionContext,
) -> Result<(), String> {
    let Some((trust, listener)) = api else { return Ok(()) };
    let address = listener.local_addr().map_err(|e| format!("the REST listener: {e}"))?;
    let CompanionContext { store, queue, tenant, client, shutdown, upload_dir } = context;
    let app = trust.app(address, |verifier| {
        let mut state = AppState::new(store, verifier);
        state.platform = PlatformClients::new().with_client(tenant, client);
        state.uploads =
            UploadSettings { dir: Some(upload_dir), queued: Some(queue_uploads(&queue)) };
        state.queue = Some(queue);
        state
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| format!("the REST layer stopped: {e}"))
}

/// Hands uploads over the inline limits to the workers as `ImportUpload` jobs.
fn queue_uploads(queue: &JobQueue) -> QueueUpload {
    let queue = queue.clone();
    Arc::new(move |upload: QueuedUpload| {
        let queue = queue.clone();
        Box::pin(async move {
            let job = ImportUpload {
                tenant_id: upload.tenant_id,
                run_id: upload.run_id,
                template_id: upload.template_id,
                path: upload.path.display().to_string(),
            };
            queue.enqueue_import_upload(job).await.map(|_| ()).map_err(|e| e.to_string())
        })
    })
}
