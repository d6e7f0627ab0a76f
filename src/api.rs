//! `intake api`: the REST layer alone (templates, sources, runs, alert channels and routing
//! rules) over a state store, for integrators and operators; `intake serve` runs the engine.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use intake_api::auth::{AccessTokenVerifier, IssuerConfig};
use intake_api::rest::{self, AppState};
use intake_engine::store::Store;
use tokio::signal::unix::{SignalKind, signal};

/// Arguments of `intake api`.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8090)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// The state store: a SQLite file (created if missing) or a `sqlite://` URL — the same one
    /// `intake serve` uses.
    #[arg(long, default_value = "intake.sqlite", value_name = "PATH")]
    state: String,
    /// The token issuers to trust: a JSON array of `{"issuer", "audience", "keys":
    /// {"jwks_file": PATH} | {"pem_files": [PATH, …]}, "algorithms"}` (relative paths are
    /// relative to this file).
    #[arg(long, value_name = "issuers.json")]
    issuers: PathBuf,
}

/// Serves until SIGINT/SIGTERM.
pub fn run(args: &ApiArgs) -> anyhow::Result<()> {
    let verifier = load_issuers(&args.issuers)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open(&args.state)
            .await
            .with_context(|| format!("cannot open the state store {}", args.state))?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let address = listener.local_addr()?;
        // A closed stdout (a parent that stopped reading) must not stop the server.
        let _ = writeln!(std::io::stdout(), "intake api listening on http://{address}");
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let stop = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        let state = AppState::new(store.clone(), verifier);
        rest::serve(listener, state, stop).await.context("the REST server stopped")?;
        store.close().await;
        Ok(())
    })
}

/// The verifier trusting the issuers configured in `path`.
fn load_issuers(path: &PathBuf) -> anyhow::Result<AccessTokenVerifier> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the issuer configuration {}", path.display()))?;
    let mut configs: Vec<IssuerConfig> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid issuer configuration", path.display()))?;
    anyhow::ensure!(
        !configs.is_empty(),
        "{} names no issuer: no token could be accepted",
        path.display()
    );
    let base = path.parent().map(PathBuf::from).unwrap_or_default();
    for config in &mut configs {
        config.resolve_paths(&base);
    }
    AccessTokenVerifier::from_configs(&configs)
        .with_context(|| format!("cannot load the issuers of {}", path.display()))
}
