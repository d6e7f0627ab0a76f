//! `intake clients`: manages the M2M clients file (`{"clients": [...]}`) that `intake api
//! --clients` and `intake sandbox --clients` read: add, list, rotate a key, remove. Every write
//! is validated as a whole and replaces the file atomically; key material is never printed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use intake_api::SandboxConfig;
use intake_api::auth::{ClientKey, ClientRegistration, is_plain_kid};
use intake_api::conventions::is_object_id;
use intake_engine::m2m::jws::VerifyingKey;
use serde_json::Value;

/// Arguments of `intake clients`.
#[derive(Debug, clap::Args)]
pub struct ClientsArgs {
    /// The clients file (created by `add` when missing).
    #[arg(long, value_name = "clients.json")]
    file: PathBuf,
    /// What to do.
    #[command(subcommand)]
    action: ClientsAction,
}

/// The `intake clients` subcommands.
#[derive(Debug, clap::Subcommand)]
enum ClientsAction {
    /// Register a new client with one public key.
    Add {
        /// The client id (the assertions' `iss` and `sub`).
        #[arg(long)]
        client_id: String,
        /// The tenant the client acts for: 24 lowercase hex digits.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: String,
        /// A capability (= scope) the client may be granted, e.g. `imports/templates:list`;
        /// repeat for more.
        #[arg(long = "capability", value_name = "CAPABILITY", required = true)]
        capabilities: Vec<String>,
        /// The key id the client's assertions name in their `kid` header.
        #[arg(long)]
        kid: String,
        /// The client's public key: an SPKI PEM file (EC P-256, P-384 or P-521).
        #[arg(long, value_name = "PEM_FILE")]
        public_key: PathBuf,
    },
    /// Show the clients: id, tenant, number of capabilities, key ids and until when they work.
    List,
    /// Add a new key to a client and let its older keys expire after an overlap.
    RotateKey {
        /// The client.
        #[arg(long)]
        client_id: String,
        /// The new key's id.
        #[arg(long)]
        kid: String,
        /// The new public key: an SPKI PEM file (EC P-256, P-384 or P-521).
        #[arg(long, value_name = "PEM_FILE")]
        public_key: PathBuf,
        /// How long the older keys keep working, in seconds (a key that already ends sooner
        /// keeps its end; keys already expired are removed).
        #[arg(long, default_value_t = 86_400, value_name = "SECONDS")]
        overlap_seconds: u64,
    },
    /// Remove a client and all its keys.
    Remove {
        /// The client.
        #[arg(long)]
        client_id: String,
    },
}

/// Runs one `intake clients` subcommand.
pub fn run(args: &ClientsArgs) -> anyhow::Result<()> {
    let path = &args.file;
    let mut out = std::io::stdout().lock();
    match &args.action {
        ClientsAction::List => {
            let file = ClientsFile::load(path)?;
            let _ = out.write_all(table(&file.clients, Utc::now()).as_bytes());
        }
        ClientsAction::Add { client_id, tenant, capabilities, kid, public_key } => {
            let mut file = ClientsFile::load_or_new(path)?;
            if file.clients.iter().any(|c| c.client_id == *client_id) {
                bail!(
                    "client '{client_id}' is already registered in {}: use rotate-key to change \
                     its key, or remove it first",
                    path.display()
                );
            }
            if !is_object_id(tenant) {
                bail!("--tenant '{tenant}' is not a tenant id: 24 lowercase hex digits");
            }
            check_kid(kid)?;
            let public_key_pem = read_public_key(public_key)?;
            file.clients.push(ClientRegistration {
                client_id: client_id.clone(),
                tenant_id: tenant.clone(),
                capabilities: capabilities.clone(),
                keys: vec![ClientKey { kid: kid.clone(), public_key_pem, active_until: None }],
            });
            file.save(path)?;
            let _ = writeln!(
                out,
                "added client '{client_id}' (tenant {tenant}, {} capabilities, key '{kid}') to {}",
                capabilities.len(),
                path.display()
            );
        }
        ClientsAction::RotateKey { client_id, kid, public_key, overlap_seconds } => {
            let mut file = ClientsFile::load(path)?;
            check_kid(kid)?;
            let public_key_pem = read_public_key(public_key)?;
            let client = file.client_mut(client_id, path)?;
            if client.keys.iter().any(|k| k.kid == *kid) {
                bail!("client '{client_id}' already has a key '{kid}': choose a new kid");
            }
            let now = Utc::now();
            let overlap = i64::try_from(*overlap_seconds)
                .ok()
                .and_then(chrono::TimeDelta::try_seconds)
                .context("--overlap-seconds is too large")?;
            let until =
                now.checked_add_signed(overlap).context("--overlap-seconds is too large")?;
            // Whole seconds: the file and `list` show the same instant.
            let until = DateTime::from_timestamp(until.timestamp(), 0).unwrap_or(until);
            let before = client.keys.len();
            client.keys.retain(|k| k.is_active_at(now));
            let removed = before - client.keys.len();
            for key in &mut client.keys {
                key.active_until = Some(key.active_until.map_or(until, |t| t.min(until)));
            }
            client.keys.push(ClientKey { kid: kid.clone(), public_key_pem, active_until: None });
            file.save(path)?;
            let _ = writeln!(
                out,
                "client '{client_id}': key '{kid}' added; older keys work until {}{}",
                rfc3339(until),
                if removed > 0 {
                    format!(" ({removed} expired key(s) removed)")
                } else {
                    String::new()
                }
            );
        }
        ClientsAction::Remove { client_id } => {
            let mut file = ClientsFile::load(path)?;
            file.client_mut(client_id, path)?;
            file.clients.retain(|c| c.client_id != *client_id);
            file.save(path)?;
            let _ = writeln!(out, "removed client '{client_id}' from {}", path.display());
        }
    }
    Ok(())
}

/// A clients file: its clients, and the whole JSON document so that other settings (`faults`,
/// `schemas`, …) survive a rewrite as they were.
struct ClientsFile {
    /// The document as read.
    document: Value,
    /// Its `clients`, as edited.
    clients: Vec<ClientRegistration>,
}

impl ClientsFile {
    /// Reads and validates `path`.
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the clients file {}", path.display()))?;
        let config: SandboxConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid clients file", path.display()))?;
        let document: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        Ok(ClientsFile { document, clients: config.clients })
    }

    /// Like [`ClientsFile::load`], or an empty file when `path` does not exist.
    fn load_or_new(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(ClientsFile { document: serde_json::json!({}), clients: Vec::new() })
        }
    }

    /// The client `client_id`, or an error naming the file.
    fn client_mut(
        &mut self,
        client_id: &str,
        path: &Path,
    ) -> anyhow::Result<&mut ClientRegistration> {
        self.clients
            .iter_mut()
            .find(|c| c.client_id == client_id)
            .with_context(|| format!("no client '{client_id}' in {}", path.display()))
    }

    /// Validates the edited document as a whole and replaces `path` atomically (a temporary
    /// file in the same folder, then a rename).
    fn save(mut self, path: &Path) -> anyhow::Result<()> {
        self.document["clients"] = serde_json::to_value(&self.clients)?;
        let config: SandboxConfig = serde_json::from_value(self.document.clone())
            .context("the edited clients file would not be valid")?;
        config.validate().context("refusing to write an invalid clients file")?;
        let mut text = serde_json::to_string_pretty(&self.document)?;
        text.push('\n');
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut temporary = tempfile::NamedTempFile::new_in(folder)
            .with_context(|| format!("cannot create a temporary file in {}", folder.display()))?;
        temporary.write_all(text.as_bytes())?;
        temporary.as_file().sync_all()?;
        temporary.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }
}

/// Refuses a key id the token endpoint would refuse.
fn check_kid(kid: &str) -> anyhow::Result<()> {
    if is_plain_kid(kid) {
        Ok(())
    } else {
        bail!(
            "--kid '{}' is not a valid key id: 1-128 of A-Z a-z 0-9 . _ - without '..'",
            kid.escape_debug()
        )
    }
}

/// The EC public key in `path` as normalised SPKI PEM; the error says what the file is instead
/// (never its content).
fn read_public_key(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key {}", path.display()))?;
    if text.contains("PRIVATE KEY") {
        bail!(
            "{} holds a private key: register the public key only (openssl ec -in KEY.pem -pubout)",
            path.display()
        );
    }
    let key = VerifyingKey::from_pem(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an EC P-256, P-384 or P-521 public key (SPKI PEM): {e}",
            path.display()
        )
    })?;
    key.to_pem().map_err(|e| anyhow::anyhow!("cannot encode the public key: {e}"))
}

/// An instant as RFC 3339 in UTC, whole seconds.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The `list` table.
fn table(clients: &[ClientRegistration], now: DateTime<Utc>) -> String {
    let rows: Vec<[String; 4]> = clients
        .iter()
        .map(|c| {
            let keys = c
                .keys
                .iter()
                .map(|k| match k.active_until {
                    None => k.kid.clone(),
                    Some(t) if k.is_active_at(now) => format!("{} (until {})", k.kid, rfc3339(t)),
                    Some(t) => format!("{} (expired {})", k.kid, rfc3339(t)),
                })
                .collect::<Vec<_>>()
                .join(", ");
            [c.client_id.clone(), c.tenant_id.clone(), c.capabilities.len().to_string(), keys]
        })
        .collect();
    let header = ["CLIENT ID", "TENANT", "CAPABILITIES", "KEYS"].map(str::to_owned);
    let mut widths = [0usize; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:>w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    if rows.is_empty() {
        text.push_str("(no clients)\n");
    }
    text
}
