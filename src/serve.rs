//! `intake serve`: the engine's pollers and import workers, until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use intake_engine::service::Service;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

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
}

/// Runs until a shutdown signal; exit 0 after a clean stop.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Built inside the runtime: the HTTP client and the watched folders need it.
        let service = Service::from_file(&args.config, std::env::vars())?;
        if args.check {
            println!("intake serve: {} is usable", args.config.display());
            return Ok(ExitCode::SUCCESS);
        }
        let shutdown = CancellationToken::new();
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let sources = service.config().sources.len();
        println!("intake serve: running ({sources} source(s)); SIGTERM or Ctrl-C stops");
        let running = service.run(shutdown.clone());
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
