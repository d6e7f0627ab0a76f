//! `intake demo`: the whole engine on the embedded fixtures, with nothing installed.
//!
//! Creates a temporary workspace, starts the sandbox platform API in this process, writes the
//! demo client's key and the three fixture templates into the workspace and starts the service
//! behind `intake serve` on a configuration built here: one watched inbox, the templates matched
//! by file name, files moved to `completed/` or `error/` afterwards. Then it drops the fixture
//! files into the inbox — a Swedish bank payments file (Windows-1252, uploaded under a `.part`
//! name and renamed), a member register (UTF-8), a club register export (UTF-16) and a file no
//! template matches — waits until every file has reached its final folder, reports the runs, the
//! records on the platform, the first rejected rows and where each file went, and stops the
//! service. Everything it uses is compiled into the binary, so it runs from any folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use intake_api::sandbox::{Sandbox, SandboxConfig};
use intake_engine::service::{ServeSummary, Service, ServiceConfig, ServiceError};
use intake_engine::store::{
    Collection, ImportRun, ImportRunBody, ListQuery, RejectedRecordBody, RunStatus, Store,
};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The demo client (fixtures/sandbox): a key published for the local sandbox only.
const CLIENTS: &str = include_str!("../fixtures/sandbox/clients.json");
const DEMO_KEY: &str = include_str!("../fixtures/sandbox/demo-client.key.pem");
const CLIENT_ID: &str = "demo-integration";
const KID: &str = "demo-2026";
const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
/// The resources the fixture templates write to, in report order.
const RESOURCES: [&str; 3] = ["payments", "players", "clubs"];
/// How long the files may take to reach their final folders.
const TIMEOUT: Duration = Duration::from_secs(60);

/// One embedded fixture: a template (with the file name pattern the demo gives it) and a file.
struct Case {
    template_file: &'static str,
    template: &'static str,
    file_matcher: &'static str,
    file_name: &'static str,
    file: &'static [u8],
}

const CASES: [Case; 3] = [
    Case {
        template_file: "bank-payments.json",
        template: include_str!("../fixtures/bank-payments/template.json"),
        file_matcher: "bank-*.csv",
        file_name: "bank-payments.csv",
        file: include_bytes!("../fixtures/bank-payments/input.csv"),
    },
    Case {
        template_file: "member-register.json",
        template: include_str!("../fixtures/member-register/template.json"),
        file_matcher: "member-*.csv",
        file_name: "member-register.csv",
        file: include_bytes!("../fixtures/member-register/input.csv"),
    },
    Case {
        template_file: "club-export-utf16.json",
        template: include_str!("../fixtures/club-export-utf16/template.json"),
        file_matcher: "club-*.txt",
        file_name: "club-export.txt",
        file: include_bytes!("../fixtures/club-export-utf16/input.txt"),
    },
];

/// The fixture uploaded under a temporary name and renamed when complete.
const UPLOADED_AS_PART: &str = "bank-payments.csv";
/// The file no template matches.
const UNMATCHED: (&str, &str) =
    ("notes.txt", "Notes from the club meeting; no template reads this.\n");

/// Arguments of `intake demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the sandbox and the service running after the report (until Ctrl-C): drop more files
    /// into the inbox, explore the sandbox with curl.
    #[arg(long)]
    keep: bool,
    /// Rejected rows listed per file.
    #[arg(long, default_value_t = 3, value_name = "N")]
    show_rejected: u32,
}

/// The workspace's layout.
struct Workspace {
    root: PathBuf,
    inbox: PathBuf,
    state: PathBuf,
}

/// Runs the demo; exit 0 when every file ended as expected, 1 otherwise.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let config: SandboxConfig =
        serde_json::from_str(CLIENTS).context("embedded sandbox clients")?;
    let sandbox = Sandbox::try_new(config).context("embedded sandbox clients")?;
    let temp = tempfile::tempdir().context("cannot create a temporary workspace")?;
    let root = temp.path().to_path_buf();
    let workspace = Workspace {
        inbox: root.join("inbox"),
        state: root.join("state").join("intake.sqlite"),
        root,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop_sandbox = CancellationToken::new();
        let server = {
            let (sandbox, stop) = (sandbox.clone(), stop_sandbox.clone());
            tokio::spawn(async move { sandbox.serve(listener, stop).await })
        };
        let result = demo(args, &sandbox, &url, &workspace).await;
        stop_sandbox.cancel();
        server.await.context("the sandbox task")?.context("the sandbox")?;
        result
    });
    drop(temp);
    result
}

async fn demo(
    args: &DemoArgs,
    sandbox: &Sandbox,
    url: &str,
    workspace: &Workspace,
) -> anyhow::Result<ExitCode> {
    let service = prepare_service(url, workspace)?;
    // Opened (and migrated) before the service opens it: the report reads runs and rejected rows.
    if let Some(folder) = workspace.state.parent() {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
    }
    let store = Store::open(&workspace.state.display().to_string())
        .await
        .context("cannot open the demo's state store")?;
    let shutdown = CancellationToken::new();
    let mut service_task: JoinHandle<Result<ServeSummary, ServiceError>> =
        tokio::spawn(service.run(shutdown.clone()));

    println!("intake demo");
    println!("  sandbox platform API: {url} (tenant {TENANT}, client {CLIENT_ID})");
    println!("  workspace:            {} (removed at exit)", workspace.root.display());
    println!("  watched inbox:        {}", workspace.inbox.display());
    println!(
        "  service:              the engine of `intake serve` ({} templates, event-driven)",
        CASES.len()
    );

    let outcome = async {
        drop_files(&workspace.inbox).await?;
        let runs = wait_until_processed(&store, &workspace.inbox, &mut service_task).await?;
        report(args, sandbox, &store, workspace, &runs).await
    }
    .await;
    let clean = match outcome {
        Ok(clean) => clean,
        Err(error) => {
            shutdown.cancel();
            if !service_task.is_finished() {
                let _ = service_task.await;
            }
            store.close().await;
            return Err(error);
        }
    };

    if args.keep {
        println!();
        println!("still running — explore, then Ctrl-C to stop:");
        println!("  sandbox platform API: {url}  (e.g. curl {url}/_sandbox/stats)");
        println!("  watched inbox:        {}", workspace.inbox.display());
        println!("  configuration:        {}", workspace.root.join("intake.toml").display());
        println!(
            "  drop more files there (bank-*.csv, member-*.csv, club-*.txt); the service imports \
             each once and moves it to completed/ or error/"
        );
        tokio::select! {
            signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C")?,
            _ = &mut service_task => bail!("the service stopped on its own"),
        }
    }
    shutdown.cancel();
    store.close().await;
    let summary = service_task.await.context("the service task")?.context("the service")?;
    println!();
    println!("the service stopped cleanly: {summary}");
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Writes the key, the templates and `intake.toml` into the workspace and prepares the service
/// on that configuration (relative paths resolved against the workspace, no environment
/// overrides).
fn prepare_service(url: &str, workspace: &Workspace) -> anyhow::Result<Service> {
    let root = &workspace.root;
    let templates = root.join("templates");
    std::fs::create_dir_all(&templates)
        .with_context(|| format!("cannot create {}", templates.display()))?;
    write(&root.join("demo-client.key.pem"), DEMO_KEY.as_bytes())?;
    let mut entries = Vec::new();
    for case in &CASES {
        write(&templates.join(case.template_file), case.template.as_bytes())?;
        entries.push(format!(
            "  {{ path = \"templates/{}\", file_matcher = \"{}\", post_process_policy = \"move\", \
             completed_folder = \"completed\", error_folder = \"error\" }},",
            case.template_file, case.file_matcher
        ));
    }
    let text = format!(
        r#"# Written by `intake demo`; `intake serve --config` runs the same configuration.
[state]
path = "state/intake.sqlite"

[jobs]
path = "state/intake.jobs.sqlite"
import_concurrency = 3
shutdown_grace_seconds = 5

[platform]
url = "{url}"
client_id = "{CLIENT_ID}"
kid = "{KID}"
key_credential = "file:demo-client.key.pem"
tenant_id = "{TENANT}"

[[sources]]
id = "inbox"
name = "Demo inbox"
source_type = "watched_directory"
connection_config = {{ path = "inbox" }}
temp_file_extensions = [".part"]
polling_interval_seconds = 1
event_driven = true
move_unmatched_to_error = true
unmatched_folder = "error"
templates = [
{}
]
"#,
        entries.join("\n")
    );
    let origin = root.join("intake.toml");
    write(&origin, text.as_bytes())?;
    let origin = origin.display().to_string();
    let mut config = ServiceConfig::from_toml(&origin, &text)
        .map_err(|problems| anyhow::anyhow!("the demo configuration: {}", problems.join("; ")))?;
    config.resolve_relative_to(root);
    Ok(Service::prepare(&origin, config)?)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Drops the fixture files into the inbox: one uploaded under a `.part` name and renamed, and
/// one file no template matches.
async fn drop_files(inbox: &Path) -> anyhow::Result<()> {
    println!();
    println!("dropping files into the inbox:");
    let part = inbox.join(format!("{UPLOADED_AS_PART}.part"));
    for case in &CASES {
        if case.file_name == UPLOADED_AS_PART {
            write(&part, case.file)?;
            println!("  {}.part  (an upload in progress: not touched yet)", case.file_name);
        } else {
            write(&inbox.join(case.file_name), case.file)?;
            println!("  {}", case.file_name);
        }
    }
    write(&inbox.join(UNMATCHED.0), UNMATCHED.1.as_bytes())?;
    println!("  {}  (no template matches it)", UNMATCHED.0);
    // Let the service see the partial upload before it is complete.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::rename(&part, inbox.join(UPLOADED_AS_PART))
        .with_context(|| format!("cannot rename {}", part.display()))?;
    println!("  {UPLOADED_AS_PART}.part renamed to {UPLOADED_AS_PART} (upload complete)");
    Ok(())
}

/// The names of the regular files directly in `folder`, sorted.
fn files_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn list_runs(store: &Store) -> anyhow::Result<Vec<ImportRun>> {
    let query = ListQuery::new().sort_by("created_at", false).page(1, ListQuery::MAX_PER_PAGE);
    let page = store.list(Collection::ImportRuns, TENANT, &query).await?;
    Ok(page.decode::<ImportRunBody>()?.items)
}

/// Waits until one run per dropped file has ended and the inbox holds no file any more.
async fn wait_until_processed(
    store: &Store,
    inbox: &Path,
    service: &mut JoinHandle<Result<ServeSummary, ServiceError>>,
) -> anyhow::Result<Vec<ImportRun>> {
    let expected = CASES.len() + 1;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let runs = list_runs(store).await?;
        let left = files_in(inbox);
        let finished = runs.iter().filter(|r| r.body.status.is_final()).count();
        if finished >= expected && left.is_empty() {
            return Ok(runs);
        }
        if service.is_finished() {
            let ended = service.await.context("the service task")?;
            bail!("the service stopped before the files were processed: {ended:?}");
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {}s: {finished} of {expected} runs finished, still in the \
                 inbox: {left:?}",
                TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the report; whether every file ended as the demo expects.
async fn report(
    args: &DemoArgs,
    sandbox: &Sandbox,
    store: &Store,
    workspace: &Workspace,
    runs: &[ImportRun],
) -> anyhow::Result<bool> {
    let mut clean = true;
    println!();
    println!("runs:");
    let mut names: Vec<&str> = CASES.iter().map(|c| c.file_name).collect();
    names.push(UNMATCHED.0);
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        let Some(run) = runs.iter().find(|r| r.body.source_name.as_deref() == Some(name)) else {
            println!("  {name}: UNEXPECTED: no run");
            clean = false;
            continue;
        };
        clean &= report_run(args, store, workspace, name, run).await?;
    }
    if runs.len() > CASES.len() + 1 {
        println!("  UNEXPECTED: {} runs for {} files", runs.len(), CASES.len() + 1);
        clean = false;
    }
    println!();
    println!("records now on the platform (tenant {TENANT}):");
    for resource in RESOURCES {
        println!("  {resource:<9} {}", sandbox.items(TENANT, resource).len());
    }
    Ok(clean)
}

async fn report_run(
    args: &DemoArgs,
    store: &Store,
    workspace: &Workspace,
    name: &str,
    run: &ImportRun,
) -> anyhow::Result<bool> {
    let body = &run.body;
    let template = match &body.template_id {
        Some(id) => Some(store.get(Collection::Templates, TENANT, id).await?.body),
        None => None,
    };
    let field = |t: &Value, key: &str| t.get(key).and_then(Value::as_str).unwrap_or("?").to_owned();
    let status = body.status.as_str();
    match &template {
        Some(t) => {
            println!("  {name} → {} ({}): {status}", field(t, "target_resource"), field(t, "name"))
        }
        None => println!("  {name} → no template matches: {status}"),
    }
    let counts = &body.counts;
    if template.is_some() {
        println!(
            "    rows read {}, valid {}, rejected {}; created {}, updated {}",
            counts.read, counts.valid, counts.rejected, counts.created, counts.updated
        );
    }
    if let Some(error) = &body.error {
        println!("    {error}");
    }
    if counts.rejected > 0 {
        let query = ListQuery::new()
            .eq("import_run_id", run.meta.id.as_str())
            .sort_by("row_number", false)
            .page(1, args.show_rejected.max(1));
        let page = store.list_rejected_records(TENANT, &query).await?;
        for record in page.items.iter().take(args.show_rejected as usize) {
            println!("    {}", rejected_line(&record.body));
        }
        let shown = page.items.len().min(args.show_rejected as usize) as u64;
        if page.total > shown {
            println!(
                "    … {} more rejected row(s) in the run's rejected records",
                page.total - shown
            );
        }
    }
    let to = body.timings.pointer("/post_process/to").and_then(Value::as_str);
    let placed = to.is_some_and(|to| workspace.inbox.join(to).is_file());
    match to {
        Some(to) if placed => println!("    file moved to {to}"),
        Some(to) => println!("    UNEXPECTED: the file should be at {to} but is not"),
        None => println!("    file left in place"),
    }
    let expected_folder = if template.is_some() { "completed/" } else { "error/" };
    let expected_status = match template {
        Some(_) => matches!(body.status, RunStatus::Succeeded | RunStatus::PartiallySucceeded),
        None => body.status == RunStatus::Failed,
    };
    let clean = expected_status && placed && to.is_some_and(|to| to.starts_with(expected_folder));
    if !clean {
        println!("    UNEXPECTED: the demo expects this file in {expected_folder}");
    }
    Ok(clean)
}

/// `row 5: iban iban — IBAN-kontrollsiffrorna stämmer inte` (the row's first error).
fn rejected_line(record: &RejectedRecordBody) -> String {
    let errors = record.validation_errors.as_array().map(Vec::as_slice).unwrap_or_default();
    let text = |e: &Value, key: &str| e.get(key).and_then(Value::as_str).map(str::to_owned);
    let first = errors.first().map_or_else(
        || "(no reason recorded)".to_owned(),
        |e| {
            format!(
                "{} {} — {}",
                text(e, "field").unwrap_or_else(|| "(record)".to_owned()),
                text(e, "rule").unwrap_or_default(),
                text(e, "message").unwrap_or_default()
            )
        },
    );
    let more = match errors.len() {
        0 | 1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    format!("row {}: {first}{more}", record.row_number)
}
