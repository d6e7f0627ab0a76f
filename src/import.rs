//! `intake import`: one file imported into the platform through its M2M API, without a queue.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use intake_engine::RowError;
use intake_engine::import::{ImportReport, ImportRowOutcome, import_file, template_scopes};
use intake_engine::m2m::jws::SigningKey;
use intake_engine::m2m::writer::RowWriteOutcome;
use intake_engine::m2m::{
    ApiClient, ClientConfig, ClientCredentials, TokenManager, load_signing_key,
};
use intake_engine::template::Template;
use intake_engine::{BusinessRuleLookups, business_rules::lookup_scopes};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::OutputFormat;

/// Arguments of `intake import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The import template (JSON).
    #[arg(long, short = 't', value_name = "TEMPLATE.json")]
    template: PathBuf,
    /// Base URL of the platform's API (the token endpoint is `<URL>/auth/token`).
    #[arg(long, value_name = "URL")]
    target: Url,
    /// The M2M client's id.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The key id (`kid`) the client's public key is registered under.
    #[arg(long, value_name = "KID")]
    kid: String,
    /// The client's private key (PEM), as a credential reference: `env:VAR`, `file:/path`, or a
    /// name looked up as INTAKE_CREDENTIAL_<NAME> or in $INTAKE_CREDENTIALS_DIR. Never the key itself.
    #[arg(long, value_name = "CREDENTIAL")]
    key: String,
    /// Capabilities to request; by default those the template's import mode needs, and
    /// `<resource>:list` for each resource its business rules look in.
    #[arg(long = "scope", value_name = "CAPABILITY")]
    scopes: Vec<String>,
    /// Tenant sent as X-Tenant-ID; by default the template's `tenant_id`, when it has one.
    #[arg(long, value_name = "TENANT_ID")]
    tenant: Option<String>,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_in_flight: usize,
    /// Bind the token to a fresh key with DPoP (RFC 9449).
    #[arg(long)]
    dpop: bool,
    /// The file to import.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Output: a human summary, or JSON lines (one per row that was not written, then the summary).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// How many errors the text report lists.
    #[arg(long, default_value_t = 20, value_name = "N")]
    max_errors: usize,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// The platform settings `intake check` takes for a template's business rules, which look
/// records up in the target API (read-only: `<resource>:list` for each rule's resource).
#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// Base URL of the platform's API, to look records up for the template's business rules
    /// (read-only); needs --client-id, --kid and --key, as for `intake import`.
    #[arg(long, value_name = "URL", requires = "client_id", requires = "kid", requires = "key")]
    target: Option<Url>,
    /// The M2M client's id (with --target).
    #[arg(long, value_name = "ID", requires = "target")]
    client_id: Option<String>,
    /// The key id (`kid`) of the client's public key (with --target).
    #[arg(long, value_name = "KID", requires = "target")]
    kid: Option<String>,
    /// The client's private key as a credential reference (`env:VAR`, `file:/path`, a name), with
    /// --target. Never the key itself.
    #[arg(long, value_name = "CREDENTIAL", requires = "target")]
    key: Option<String>,
    /// Tenant sent as X-Tenant-ID; by default the template's `tenant_id`, when it has one.
    #[arg(long, value_name = "TENANT_ID", requires = "target")]
    tenant: Option<String>,
    /// Check without the template's business rules (no look-ups in the platform); the summary
    /// says they were skipped. Without this or --target, a template with business rules is
    /// refused (exit 2).
    #[arg(long, conflicts_with = "target")]
    skip_business_rules: bool,
}

impl LookupArgs {
    /// How `intake check` runs `template`'s business rules, and the runtime the client lives on
    /// (keep it until the check is done; the pipeline blocks on it from this thread).
    pub fn lookups(
        &self,
        template: &Template,
    ) -> anyhow::Result<(Option<tokio::runtime::Runtime>, BusinessRuleLookups)> {
        if self.skip_business_rules {
            return Ok((None, BusinessRuleLookups::Skip));
        }
        let (Some(target), Some(client_id), Some(kid), Some(key)) =
            (&self.target, &self.client_id, &self.kid, &self.key)
        else {
            return Ok((None, BusinessRuleLookups::Unavailable));
        };
        if template.validation.business_rules.is_empty() {
            return Ok((None, BusinessRuleLookups::Unavailable));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let platform = Platform {
            target,
            client_id,
            kid,
            key,
            tenant: self.tenant.as_deref(),
            scopes: lookup_scopes(template),
            max_in_flight: 4,
            dpop: false,
        };
        let client = {
            // The HTTP client's connection pool belongs to the runtime it is used on.
            let _entered = runtime.enter();
            platform_client(&platform, template)?
        };
        let lookups = BusinessRuleLookups::Api { client, runtime: runtime.handle().clone() };
        Ok((Some(runtime), lookups))
    }
}

/// Where and as whom to reach the platform.
struct Platform<'a> {
    target: &'a Url,
    client_id: &'a str,
    kid: &'a str,
    key: &'a str,
    tenant: Option<&'a str>,
    scopes: Vec<String>,
    max_in_flight: usize,
    dpop: bool,
}

/// The M2M client for `platform`; the tenant defaults to `template`'s.
fn platform_client(platform: &Platform<'_>, template: &Template) -> anyhow::Result<ApiClient> {
    let key = load_signing_key(platform.key).context("cannot load the client key")?;
    let token_url = platform.target.join("auth/token").context("bad --target URL")?;
    let mut config = ClientConfig::new(platform.target.clone());
    config.tenant_id = platform
        .tenant
        .map(str::to_owned)
        .or_else(|| template.tenant_id.as_ref().map(ToString::to_string));
    config.max_in_flight = platform.max_in_flight;
    let http = ApiClient::http_client(&config)?;
    let credentials = ClientCredentials {
        token_url,
        client_id: platform.client_id.to_owned(),
        kid: platform.kid.to_owned(),
        key,
        scopes: platform.scopes.clone(),
        dpop_key: platform
            .dpop
            .then(|| SigningKey::generate(intake_engine::m2m::jws::JwsAlgorithm::Es256)),
    };
    Ok(ApiClient::new(config, TokenManager::new(http.clone(), credentials), http))
}

/// Runs the import; exit 0 when every row was written, 1 when rows were rejected or not written,
/// 2 when the import could not run or failed as a whole.
pub fn run(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let template = Arc::new(crate::load_template(&args.template)?);
    let mut scopes = args.scopes.clone();
    if scopes.is_empty() {
        scopes = template_scopes(&template);
    }
    let client = platform_client(
        &Platform {
            target: &args.target,
            client_id: &args.client_id,
            kid: &args.kid,
            key: &args.key,
            tenant: args.tenant.as_deref(),
            scopes,
            max_in_flight: args.max_in_flight,
            dpop: args.dpop,
        },
        &template,
    )?;

    let size = File::open(&args.file)
        .and_then(|f| f.metadata())
        .with_context(|| format!("cannot open {}", args.file.display()))?
        .len();
    let progress = crate::progress_bar(Some(size), args.no_progress);
    let bar = progress.clone();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut listed = 0usize;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let cancel = CancellationToken::new();
    let report = runtime.block_on(async {
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        import_file(
            template.clone(),
            &args.file,
            client,
            |outcome| {
                let _ = report_row(&mut out, args, &outcome, &mut listed);
            },
            move |bytes| {
                if let Some(bar) = &bar {
                    bar.set_position(bytes);
                }
            },
            cancel.clone(),
        )
        .await
    });
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let report = report?;
    match args.format {
        OutputFormat::Json => writeln!(out, "{}", serde_json::json!({ "summary": report }))?,
        OutputFormat::Text => print_summary(&mut out, &template.name, &report, listed)?,
    }
    out.flush()?;
    Ok(if report.write.failure.is_some() {
        ExitCode::from(2)
    } else if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints one row that was not written (rejected, or not attempted); written rows are counted only.
fn report_row(
    out: &mut impl Write,
    args: &ImportArgs,
    outcome: &ImportRowOutcome,
    listed: &mut usize,
) -> io::Result<()> {
    let (row_number, errors, reason): (u64, &[RowError], Option<&str>) = match outcome {
        ImportRowOutcome::Rejected(rejected) => (rejected.row_number, &rejected.errors, None),
        ImportRowOutcome::Written(RowWriteOutcome::Rejected { row_number, errors }) => {
            (*row_number, errors, None)
        }
        ImportRowOutcome::Written(RowWriteOutcome::NotAttempted { row_number, reason }) => {
            (*row_number, &[], Some(reason.as_str()))
        }
        ImportRowOutcome::Written(_) => return Ok(()),
    };
    match args.format {
        OutputFormat::Json => {
            let line = match outcome {
                ImportRowOutcome::Rejected(rejected) => serde_json::json!({
                    "row_number": rejected.row_number,
                    "original_data": rejected.original_data,
                    "errors": rejected.errors,
                }),
                ImportRowOutcome::Written(written) => {
                    serde_json::to_value(written).unwrap_or_default()
                }
            };
            writeln!(out, "{line}")
        }
        OutputFormat::Text => {
            if let Some(reason) = reason
                && *listed < args.max_errors
            {
                *listed += 1;
                writeln!(out, "  row {row_number}  not written: {reason}")?;
            }
            for error in errors {
                if *listed < args.max_errors {
                    *listed += 1;
                    crate::print_error_line(out, row_number, error)?;
                }
            }
            Ok(())
        }
    }
}

fn print_summary(
    out: &mut impl Write,
    template: &str,
    report: &ImportReport,
    listed: usize,
) -> io::Result<()> {
    if listed > 0 {
        writeln!(out)?;
    }
    let (check, write) = (&report.check, &report.write);
    writeln!(out, "file:          {}", check.file)?;
    writeln!(out, "template:      {template}")?;
    writeln!(out, "rows read:     {}", check.rows_read)?;
    writeln!(out, "valid:         {}", check.valid)?;
    writeln!(out, "rejected:      {}", check.rejected + write.rejected)?;
    writeln!(out, "created:       {}", write.created)?;
    writeln!(out, "updated:       {}", write.updated)?;
    writeln!(out, "unchanged:     {}", write.unchanged)?;
    writeln!(out, "deleted:       {}", write.deleted + write.sync_deleted)?;
    writeln!(out, "not written:   {}", write.not_attempted)?;
    writeln!(out, "requests:      {}", write.requests)?;
    if let Some(reason) = &report.not_written {
        writeln!(out, "nothing written: {reason}")?;
    }
    if let Some(skipped) = &write.sync_skipped {
        writeln!(out, "sync deletes skipped: {skipped}")?;
    }
    if let Some(failure) = &write.failure {
        writeln!(out, "FAILED:        {failure}")?;
    }
    Ok(())
}
