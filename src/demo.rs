//! `intake demo`: the whole path on the embedded fixtures, with nothing installed.
//!
//! Starts the sandbox platform API in this process, registers the demo client, and imports each
//! fixture file with its template: a Swedish bank payments file (Windows-1252), a member register
//! (UTF-8) and a club register export (UTF-16). Every file has good and bad rows; the report
//! shows what was written where and why each bad row was rejected. Everything it uses is compiled
//! into the binary, so it runs from any folder.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use intake_api::sandbox::{Sandbox, SandboxConfig};
use intake_engine::import::{
    ImportReport, ImportRowOutcome, import_file, required_scopes, writer_config,
};
use intake_engine::m2m::jws::SigningKey;
use intake_engine::m2m::writer::RowWriteOutcome;
use intake_engine::m2m::{ApiClient, ClientConfig, ClientCredentials, TokenManager};
use tokio_util::sync::CancellationToken;

/// The demo client (fixtures/sandbox): a key published for the local sandbox only.
const CLIENTS: &str = include_str!("../fixtures/sandbox/clients.json");
const DEMO_KEY: &str = include_str!("../fixtures/sandbox/demo-client.key.pem");
const CLIENT_ID: &str = "demo-integration";
const KID: &str = "demo-2026";
const TENANT: &str = "64a1b2c3d4e5f6789012abcd";

/// One embedded fixture: a template and a file.
struct Case {
    template: &'static str,
    file_name: &'static str,
    file: &'static [u8],
}

const CASES: [Case; 3] = [
    Case {
        template: include_str!("../fixtures/bank-payments/template.json"),
        file_name: "bank-payments.csv",
        file: include_bytes!("../fixtures/bank-payments/input.csv"),
    },
    Case {
        template: include_str!("../fixtures/member-register/template.json"),
        file_name: "member-register.csv",
        file: include_bytes!("../fixtures/member-register/input.csv"),
    },
    Case {
        template: include_str!("../fixtures/club-export-utf16/template.json"),
        file_name: "club-export.txt",
        file: include_bytes!("../fixtures/club-export-utf16/input.txt"),
    },
];

/// Arguments of `intake demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the sandbox running after the report (until Ctrl-C), to explore it with curl.
    #[arg(long)]
    keep: bool,
    /// Rejected rows listed per file.
    #[arg(long, default_value_t = 3, value_name = "N")]
    show_rejected: usize,
}

/// Runs the demo; exit 0 when every file was processed as expected.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let config: SandboxConfig =
        serde_json::from_str(CLIENTS).context("embedded sandbox clients")?;
    let sandbox = Sandbox::try_new(config).context("embedded sandbox clients")?;
    let workspace = tempfile::tempdir().context("cannot create a temporary workspace")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let server = {
            let (sandbox, shutdown) = (sandbox.clone(), shutdown.clone());
            tokio::spawn(async move { sandbox.serve(listener, shutdown).await })
        };
        println!("intake demo");
        println!("  sandbox platform API: {url} (tenant {TENANT}, client {CLIENT_ID})");
        println!("  workspace:            {} (removed at exit)", workspace.path().display());
        let mut clean = true;
        for case in &CASES {
            clean &= import_case(case, &url, workspace.path(), args.show_rejected).await?;
        }
        println!();
        println!("records now on the platform (tenant {TENANT}):");
        for resource in ["payments", "players", "clubs"] {
            println!("  {resource:<9} {}", sandbox.items(TENANT, resource).len());
        }
        if args.keep {
            println!();
            println!("the sandbox keeps running at {url}; Ctrl-C stops it");
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        }
        shutdown.cancel();
        server.await.context("the sandbox task")?.context("the sandbox")?;
        Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}

/// Imports one fixture and prints its part of the report; whether it went as the fixture expects
/// (rows read, some rejected, no run failure).
async fn import_case(
    case: &Case,
    url: &str,
    workspace: &Path,
    show: usize,
) -> anyhow::Result<bool> {
    let template = Arc::new(intake_engine::load(case.file_name, case.template)?);
    let path = workspace.join(case.file_name);
    std::fs::write(&path, case.file).with_context(|| format!("cannot write {}", path.display()))?;

    let base = url::Url::parse(url)?;
    let mut config = ClientConfig::new(base.clone());
    config.tenant_id = Some(TENANT.to_owned());
    let http = ApiClient::http_client(&config)?;
    let credentials = ClientCredentials {
        token_url: base.join("auth/token")?,
        client_id: CLIENT_ID.to_owned(),
        kid: KID.to_owned(),
        key: SigningKey::from_pem(DEMO_KEY).context("the embedded demo key")?,
        scopes: required_scopes(&writer_config(&template, String::new())),
        dpop_key: None,
    };
    let client = ApiClient::new(config, TokenManager::new(http.clone(), credentials), http);

    let mut problems: Vec<String> = Vec::new();
    let report: ImportReport = import_file(
        template.clone(),
        &path,
        client,
        |outcome| {
            let line = match &outcome {
                ImportRowOutcome::Rejected(rejected) => rejected.errors.first().map(|e| {
                    format!(
                        "row {}: {} {} — {}",
                        rejected.row_number,
                        e.field.as_deref().unwrap_or("(record)"),
                        e.rule,
                        e.message
                    )
                }),
                ImportRowOutcome::Written(RowWriteOutcome::Rejected { row_number, errors }) => {
                    errors.first().map(|e| format!("row {row_number}: {} — {}", e.rule, e.message))
                }
                _ => None,
            };
            problems.extend(line);
        },
        |_| {},
        CancellationToken::new(),
    )
    .await?;
    problems.sort_by_key(|line| {
        line.split(':').next().and_then(|r| r.trim_start_matches("row ").parse::<u64>().ok())
    });

    let (check, write) = (&report.check, &report.write);
    println!();
    println!("{} → {} ({})", case.file_name, template.target_resource, template.name);
    println!(
        "  rows read {}, valid {}, rejected {}; created {}, updated {}, unchanged {}",
        check.rows_read,
        check.valid,
        check.rejected + write.rejected,
        write.created,
        write.updated,
        write.unchanged
    );
    for line in problems.iter().take(show) {
        println!("  {line}");
    }
    if problems.len() > show {
        println!(
            "  … {} more rejected row(s): `intake check` lists them all",
            problems.len() - show
        );
    }
    if let Some(failure) = &write.failure {
        println!("  FAILED: {failure}");
    }
    Ok(write.failure.is_none() && check.rows_read > 0)
}
