//! `intake sandbox`: the platform's M2M API served locally, for the demo, integrators and tests.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use intake_api::sandbox::{Sandbox, SandboxConfig};
use tokio_util::sync::CancellationToken;

/// Arguments of `intake sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Registered clients (ids, tenants, capabilities, public keys), and optionally `faults` and
    /// per-resource `schemas`; see fixtures/sandbox/clients.json.
    #[arg(long, value_name = "clients.json")]
    clients: PathBuf,
    /// Added latency per API call, in milliseconds (overrides the file's faults).
    #[arg(long, value_name = "MS")]
    latency_ms: Option<u64>,
    /// Fraction of API calls answered 503 (0.0–1.0).
    #[arg(long, value_name = "FRACTION")]
    error_rate: Option<f64>,
    /// Fraction of API calls answered 429 with Retry-After (0.0–1.0).
    #[arg(long, value_name = "FRACTION")]
    throttle_rate: Option<f64>,
    /// Fraction of API calls whose connection is dropped without an answer (0.0–1.0).
    #[arg(long, value_name = "FRACTION")]
    drop_rate: Option<f64>,
    /// Most API calls per second; more are answered 429.
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
}

/// Serves until Ctrl-C.
pub fn run(args: &SandboxArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.clients)
        .with_context(|| format!("cannot read {}", args.clients.display()))?;
    let mut config: SandboxConfig = serde_json::from_str(&text).with_context(|| {
        format!("{} is not a valid sandbox configuration", args.clients.display())
    })?;
    let faults = &mut config.faults;
    if let Some(ms) = args.latency_ms {
        faults.latency_ms = ms;
    }
    for (slot, value) in [
        (&mut faults.error_rate, args.error_rate),
        (&mut faults.throttle_rate, args.throttle_rate),
        (&mut faults.drop_rate, args.drop_rate),
    ] {
        if let Some(value) = value {
            anyhow::ensure!(
                (0.0..=1.0).contains(&value),
                "a fault rate must be between 0 and 1, got {value}"
            );
            *slot = value;
        }
    }
    if args.rate_limit.is_some() {
        faults.rate_limit_per_second = args.rate_limit;
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let address = listener.local_addr()?;
        // A closed stdout (a parent that stopped reading) must not stop the server.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "intake sandbox listening on http://{address}");
        let _ = writeln!(out, "token endpoint: http://{address}/auth/token  (Ctrl-C stops)");
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        let sandbox = Sandbox::try_new(config).context("the sandbox configuration is not valid")?;
        sandbox.serve(listener, shutdown).await.context("the sandbox stopped")
    })
}
