//! `intake api`: the REST layer alone (templates, sources, runs, alert channels and routing
//! rules) over a state store, for integrators and operators; `intake serve` runs the engine.
//! With `--clients` it also serves its own token endpoint, `POST /auth/token`, for deployments
//! without the platform's issuer.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use intake_api::SandboxConfig;
use intake_api::auth::{AccessTokenVerifier, AuthoritySettings, IssuerConfig, TokenAuthority};
use intake_api::rest::{self, AppState};
use intake_engine::m2m::jws::{JwsAlgorithm, SigningKey};
use intake_engine::store::Store;
use tokio::signal::unix::{SignalKind, signal};

/// Arguments of `intake api`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("trust").required(true).multiple(true).args(["issuers", "clients"])))]
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
    /// relative to this file). At least one of `--issuers` and `--clients` is required.
    #[arg(long, value_name = "issuers.json")]
    issuers: Option<PathBuf>,
    /// Serve the built-in token endpoint `POST /auth/token` for the M2M clients in this file
    /// (`{"clients": [...]}`, as `intake sandbox --clients` and `intake clients` use), and trust
    /// the tokens it issues.
    #[arg(long, value_name = "clients.json")]
    clients: Option<PathBuf>,
    /// The PKCS#8 EC private key (PEM) the built-in token endpoint signs access tokens with;
    /// generated (ES256, mode 0600) when the file does not exist, so restarts keep tokens valid.
    /// Required with `--clients`.
    #[arg(long, value_name = "key.pem", requires = "clients")]
    token_key: Option<PathBuf>,
    /// The base URL clients reach this server at: the built-in issuer's name, and assertions'
    /// `aud` must be `{public_url}/auth/token`. Default: the clients file's `public_url`, else
    /// `http://{listen address}`.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

/// Serves until SIGINT/SIGTERM.
pub fn run(args: &ApiArgs) -> anyhow::Result<()> {
    let trust = Trust::load(
        args.issuers.as_deref(),
        args.clients.as_deref(),
        args.token_key.as_deref(),
        args.public_url.clone(),
    )?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open(&args.state)
            .await
            .with_context(|| format!("cannot open the state store {}", args.state))?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let address = listener.local_addr()?;
        let app = trust.app(address, |verifier| AppState::new(store.clone(), verifier));
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
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("the REST server stopped")?;
        store.close().await;
        Ok(())
    })
}

/// Where the REST layer's access tokens come from — the issuers file and/or the clients of the
/// built-in token endpoint — loaded and checked before anything listens (`intake api`, and
/// `intake serve`'s `[api]`).
pub(crate) struct Trust {
    verifier: AccessTokenVerifier,
    clients: Option<(SandboxConfig, SigningKey)>,
    public_url: Option<String>,
}

impl Trust {
    /// Loads the issuers, the clients and the token key; at least one of `issuers` and
    /// `clients` is needed, and `clients` needs `token_key`.
    pub(crate) fn load(
        issuers: Option<&Path>,
        clients: Option<&Path>,
        token_key: Option<&Path>,
        public_url: Option<String>,
    ) -> anyhow::Result<Trust> {
        anyhow::ensure!(
            issuers.is_some() || clients.is_some(),
            "the REST layer needs token issuers (issuers) or a clients file (clients): \
             otherwise no token could be accepted"
        );
        let verifier = match issuers {
            Some(path) => load_issuers(path)?,
            None => AccessTokenVerifier::default(),
        };
        let clients = match (clients, token_key) {
            (Some(path), Some(key)) => Some((load_clients(path)?, load_or_create_token_key(key)?)),
            (Some(_), None) => anyhow::bail!(
                "a clients file needs a token key file: the private key access tokens are \
                 signed with (generated there if the file does not exist)"
            ),
            (None, _) => None,
        };
        Ok(Trust { verifier, clients, public_url })
    }

    /// The REST router over the state `state` builds from the verifier, with the built-in
    /// token endpoint when there are clients; `address` is where it listens (the default
    /// public URL).
    pub(crate) fn app(
        self,
        address: SocketAddr,
        state: impl FnOnce(AccessTokenVerifier) -> AppState,
    ) -> axum::Router {
        let Trust { mut verifier, clients, public_url } = self;
        let authority = clients.map(|(config, key)| {
            let public_url = public_url
                .or(config.public_url)
                .unwrap_or_else(|| format!("http://{address}"))
                .trim_end_matches('/')
                .to_owned();
            let authority = TokenAuthority::new(
                config.clients,
                key,
                public_url.clone(),
                AuthoritySettings {
                    audience: Some(public_url.clone()),
                    public_url: Some(public_url),
                    access_token_lifetime_seconds: config.access_token_lifetime_seconds,
                    dpop: false,
                    kid_prefix: "intake".into(),
                },
            );
            verifier.trust(authority.issuer());
            authority
        });
        let mut app = rest::router(state(verifier));
        if let Some(authority) = &authority {
            app = app.merge(authority.router());
        }
        app
    }
}

/// The verifier trusting the issuers configured in `path`.
fn load_issuers(path: &Path) -> anyhow::Result<AccessTokenVerifier> {
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

/// The registered clients of `path`, validated (every problem at once).
fn load_clients(path: &Path) -> anyhow::Result<SandboxConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the clients file {}", path.display()))?;
    let config: SandboxConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid clients file", path.display()))?;
    config.validate().with_context(|| format!("{} is not usable", path.display()))?;
    Ok(config)
}

/// The token signing key in `path`, or a new ES256 key written there (mode 0600, never
/// overwriting a file that appeared meanwhile).
fn load_or_create_token_key(path: &Path) -> anyhow::Result<SigningKey> {
    match std::fs::read_to_string(path) {
        Ok(pem) => SigningKey::from_pem(&pem).with_context(|| {
            format!("{} is not a PKCS#8 EC private key (P-256/384/521)", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(JwsAlgorithm::Es256);
            let pem = key.to_pkcs8_pem().context("cannot encode the new token key")?;
            write_private_file(path, pem.as_bytes())
                .with_context(|| format!("cannot write the new token key {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the token key {}", path.display())),
    }
}

/// Creates `path` with `contents`, readable by the owner only; fails if it exists.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
