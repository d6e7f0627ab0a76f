//! The `intake` command line: parses arguments, loads configuration and calls into the crates.

mod api;
mod bench;
mod clients;
mod demo;
mod import;
mod sandbox;
mod serve;

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use intake_engine::{CheckReport, RowOutcome, Template};

/// Takes in files and turns them into clean, validated records.
///
/// Exit codes: 0 = every row valid, 1 = rows were rejected, 2 = the file or the template is
/// unusable (or the command line is wrong).
#[derive(Debug, Parser)]
#[command(name = "intake", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole path on the embedded fixtures: an in-process sandbox platform API, three
    /// sample files (good and bad rows) checked and imported, and a report. Needs nothing
    /// installed.
    Demo(demo::DemoArgs),
    /// Check a file against an import template: parse, map and validate every row, write nothing.
    ///
    /// Prints a summary (rows read, valid, rejected, errors by rule) and the first errors with
    /// row, field, rule, message and value. Exit code 0 when every row is valid, 1 when rows were
    /// rejected, 2 when the file or the template is unusable.
    Check(CheckArgs),
    /// Print the JSON Schema of an import template (draft 2020-12).
    Schema,
    /// Import a file into the platform through its M2M API (parse, map, validate, write).
    ///
    /// Exit code 0 when every row was written, 1 when rows were rejected or not written, 2 when
    /// the import could not run or failed as a whole.
    Import(import::ImportArgs),
    /// Serve the REST layer alone (templates, sources, runs, alert channels, routing rules)
    /// over a state store, for integrators and operators; until SIGTERM/SIGINT.
    Api(api::ApiArgs),
    /// Manage the M2M clients of `intake api --clients` (and `intake sandbox --clients`): add,
    /// list, rotate a key with an overlap, remove.
    Clients(clients::ClientsArgs),
    /// Serve the platform's M2M API locally (tokens, generic resources, filters, ETags, faults).
    Sandbox(sandbox::SandboxArgs),
    /// Run the engine: poll the configured sources, import each new file once through the job
    /// queue, record every run; until SIGTERM/SIGINT, then finish or hand back what is in flight
    /// and exit 0.
    Serve(serve::ServeArgs),
    /// Measure parse → map → validate speed on a file next to a raw CSV read of the same file.
    Bench(bench::BenchArgs),
    /// Evaluate jq mappers for another intake process (JSON lines on stdin and stdout). Started
    /// by intake itself, one per jq mapper and file, so that a runaway expression costs this
    /// process and not the worker.
    #[command(hide = true)]
    JqWorker,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The import template (JSON).
    #[arg(long, short = 't', value_name = "TEMPLATE.json")]
    template: PathBuf,
    /// The file to check; `-` reads standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Output: a human summary, or JSON lines (one per rejected row, then the summary).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// With `--format json`, also print every valid row as `{row_number, data}`: the mapped
    /// record that would be written.
    #[arg(long)]
    include_valid: bool,
    /// How many errors the text report lists (the summary always counts all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    max_errors: usize,
    /// Never draw a progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// The platform, for a template's business rules (look-ups in the target API).
    #[command(flatten)]
    platform: import::LookupArgs,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Summary and the first errors, for people.
    Text,
    /// One JSON object per rejected row, then `{"summary": …}`, for programs.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    register_jq_worker();
    // The demo's report is its interface; engine progress lines would only clutter it.
    init_logging(matches!(cli.command, Command::Demo(_)));
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Check(args) => run_check(&args),
        Command::Schema => print_schema().map(|()| ExitCode::SUCCESS),
        Command::Import(args) => import::run(&args),
        Command::Api(args) => api::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Clients(args) => clients::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Sandbox(args) => sandbox::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::run(&args),
        Command::Bench(args) => bench::run(&args).map(|()| ExitCode::SUCCESS),
        Command::JqWorker => Ok(run_jq_worker()),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("intake: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// jq mappers run in `intake jq-worker` processes of this same executable.
fn register_jq_worker() {
    if let Ok(program) = std::env::current_exe() {
        intake_mappers::jq::set_jq_worker(intake_mappers::jq::JqWorkerCommand {
            program,
            args: vec!["jq-worker".to_owned()],
        });
    }
}

/// `intake jq-worker`: serves jq evaluations on stdin/stdout until stdin closes.
fn run_jq_worker() -> ExitCode {
    intake_mappers::jq::limit_jq_worker_memory();
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match intake_mappers::jq::serve_jq_worker(stdin, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("intake jq-worker: {error}");
            ExitCode::from(2)
        }
    }
}

/// Log lines to stderr, filtered by `RUST_LOG` (default: warnings, and info from intake itself
/// unless `quiet`).
fn init_logging(quiet: bool) {
    let default = if quiet {
        "warn"
    } else {
        "warn,intake=info,intake_engine=info,intake_sources=info,intake_api=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

fn print_schema() -> anyhow::Result<()> {
    let schema = serde_json::to_string_pretty(&intake_engine::template_schema())?;
    println!("{schema}");
    Ok(())
}

/// Reads and checks a template file.
pub(crate) fn load_template(path: &Path) -> anyhow::Result<Template> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the template {}", path.display()))?;
    Ok(intake_engine::load(&path.display().to_string(), &text)?)
}

fn run_check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let template = load_template(&args.template)?;
    // Send + Sync: an OpenPGP message is read by sequoia's decryptor, which requires it.
    type Input = Box<dyn Read + Send + Sync>;
    let (input, size, name): (Input, Option<u64>, String) = if args.file == Path::new("-") {
        (Box::new(io::stdin()), None, "<stdin>".to_owned())
    } else {
        let file = File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size, args.file.display().to_string())
    };
    let progress = progress_bar(size, args.no_progress);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut listed = 0usize;
    let mut write_error: Option<io::Error> = None;
    let mut on_row = |outcome: &RowOutcome<'_>| {
        let result = match (args.format, outcome) {
            (OutputFormat::Json, RowOutcome::Rejected(_)) => writeln!(out, "{}", outcome.to_json()),
            (OutputFormat::Json, RowOutcome::Valid(_)) if args.include_valid => {
                writeln!(out, "{}", outcome.to_json())
            }
            (_, RowOutcome::Valid(_)) => Ok(()),
            (OutputFormat::Text, RowOutcome::Rejected(row)) => {
                let mut result = Ok(());
                for error in &row.errors {
                    if listed < args.max_errors {
                        listed += 1;
                        result =
                            result.and_then(|()| print_error_line(&mut out, row.row_number, error));
                    }
                }
                result
            }
        };
        if let Err(error) = result {
            write_error.get_or_insert(error);
        }
    };
    let (_runtime, lookups) = args.platform.lookups(&template)?;
    let report =
        intake_engine::check_file_with(&template, &name, input, &lookups, &mut on_row, |bytes| {
            if let Some(bar) = &progress {
                bar.set_position(bytes);
            }
        });
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let report = report?;
    if let Some(error) = write_error {
        return Err(error).context("cannot write the report");
    }
    match args.format {
        OutputFormat::Json => {
            writeln!(out, "{}", serde_json::json!({ "summary": report }))?;
        }
        OutputFormat::Text => print_summary(&mut out, &template, &report, listed)?,
    }
    out.flush()?;
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A byte progress bar on stderr, only when stderr is a terminal.
pub(crate) fn progress_bar(size: Option<u64>, disabled: bool) -> Option<ProgressBar> {
    if disabled || !io::stderr().is_terminal() {
        return None;
    }
    let bar = match size {
        Some(size) => ProgressBar::new(size),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    Some(bar)
}

/// One error of a row, as the text reports list it.
pub(crate) fn print_error_line(
    out: &mut impl Write,
    row_number: u64,
    error: &intake_engine::RowError,
) -> io::Result<()> {
    let value = error.value.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned());
    writeln!(
        out,
        "  row {}  field {}  rule {}.{}  value {}\n      {}",
        row_number,
        error.field.as_deref().unwrap_or("-"),
        error.layer.as_str(),
        error.rule,
        value,
        error.message
    )
}

fn print_summary(
    out: &mut impl Write,
    template: &Template,
    report: &CheckReport,
    listed: usize,
) -> io::Result<()> {
    let total_errors: u64 = report.errors_by_rule.values().sum();
    if listed > 0 && (listed as u64) < total_errors {
        writeln!(
            out,
            "  … {} more error(s) not listed (use --max-errors or --format json)",
            total_errors - listed as u64
        )?;
    }
    if listed > 0 {
        writeln!(out)?;
    }
    writeln!(out, "file:      {}", report.file)?;
    writeln!(out, "template:  {}", template.name)?;
    writeln!(out, "rows read: {}", report.rows_read)?;
    writeln!(out, "valid:     {}", report.valid)?;
    writeln!(out, "rejected:  {}", report.rejected)?;
    if !report.errors_by_rule.is_empty() {
        writeln!(out, "errors by rule:")?;
        let width = report.errors_by_rule.keys().map(String::len).max().unwrap_or(0);
        for (rule, count) in &report.errors_by_rule {
            writeln!(out, "  {rule:<width$}  {count}")?;
        }
    }
    if report.assert_empty_violated {
        writeln!(
            out,
            "warning:   the template asserts an empty file (assert_empty) but it has {} row(s)",
            report.rows_read
        )?;
    }
    for failure in &report.file_failures {
        writeln!(
            out,
            "file rule failed ({}.{}): {}",
            failure.layer.as_str(),
            failure.rule,
            failure.message
        )?;
    }
    if report.business_rule_requests > 0 {
        writeln!(
            out,
            "look-ups:  {} API request(s) for business rules",
            report.business_rule_requests
        )?;
    }
    if report.business_rules_skipped {
        writeln!(out, "skipped:   business rules (--skip-business-rules): nothing was looked up")?;
    }
    if report.skipped_lines > 0 {
        writeln!(
            out,
            "skipped:   {} line(s) of record types not in post_types (strict_post_types is off)",
            report.skipped_lines
        )?;
    }
    print_control_records(out, &report.control_records)
}

/// How many header and trailer records the text report lists.
const LISTED_CONTROL_RECORDS: usize = 20;

/// The header and trailer records of a fixed-width file, one line each.
fn print_control_records(
    out: &mut impl Write,
    records: &[intake_engine::ControlRecord],
) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    writeln!(out, "control records (header and trailer lines):")?;
    for record in records.iter().take(LISTED_CONTROL_RECORDS) {
        let fields: Vec<String> =
            record.fields.iter().map(|(name, value)| format!("{name}={value}")).collect();
        writeln!(out, "  line {}  {}  {}", record.row_number, record.post_type, fields.join(" "))?;
    }
    if records.len() > LISTED_CONTROL_RECORDS {
        writeln!(out, "  … {} more (use --format json)", records.len() - LISTED_CONTROL_RECORDS)?;
    }
    Ok(())
}
