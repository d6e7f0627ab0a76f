//! End-to-end scale-out: `intake serve` processes split into pollers and workers, sharing a
//! PostgreSQL state store (a database of the test's own) and a RabbitMQ job queue (a virtual host
//! of its own), import 200 files of 50 rows (10,000 rows) dropped into one watched folder:
//! - every file exactly once (one run per file, each final, each file in `completed/`), and the
//!   sandbox holds exactly the valid rows, once each;
//! - the same while a worker is SIGKILLed in the middle of its imports and the poller holding the
//!   source's lease is SIGKILLed: the broker redelivers the worker's jobs, the other poller takes
//!   the lease over when it expires;
//! - a poison file (its rows make the worker process die, every time) ends in the dead-letter
//!   queue and as a failed run, while the other files are imported.
//!
//! Needs `INTAKE_TEST_POSTGRES_URL` and `INTAKE_TEST_AMQP_URL` (see `common::services`).

// Test code: a failed set-up step should panic right there.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Database, SandboxProcess, ServeProcess, Vhost, files_in, repo};
use intake_engine::jobs::{ImportFile, JobQueue, QueueConfig};
use intake_engine::store::{Collection, ListQuery, RunStatus, Store};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
const FILES: usize = 200;
const ROWS_PER_FILE: usize = 50;
/// Every 25th row of a file is invalid (currency `USD`): 2 per file.
const INVALID_EVERY: usize = 25;
const VALID_PER_FILE: usize = ROWS_PER_FILE - ROWS_PER_FILE / INVALID_EVERY;
const TIMEOUT: Duration = Duration::from_secs(300);

/// The cluster's shared pieces and its processes.
struct Cluster {
    dir: tempfile::TempDir,
    inbox: PathBuf,
    config: PathBuf,
    database: Database,
    vhost: Vhost,
    sandbox: SandboxProcess,
    plugins: PathBuf,
    runtime: tokio::runtime::Runtime,
    round: u32,
}

impl Cluster {
    /// `None` when PostgreSQL or RabbitMQ is not configured (the test skips).
    fn new(extra_templates: &str) -> Option<Cluster> {
        let database = Database::create()?;
        let vhost = Vhost::create()?;
        let sandbox = SandboxProcess::start();
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        fs::create_dir_all(&inbox).unwrap();
        fs::create_dir_all(dir.path().join("staging")).unwrap();
        let plugins = dir.path().join("plugins");
        fs::create_dir_all(&plugins).unwrap();
        let config = dir.path().join("intake.toml");
        let text = format!(
            r#"
[state]
path = {state:?}

[jobs]
queue = {queue:?}
import_concurrency = 2
max_attempts = 3
shutdown_grace_seconds = 5
# A dead poller's source (and a dead worker's file) is taken over after 3 s instead of 30 s.
lease_seconds = 3

[platform]
url = {url:?}
client_id = "demo-integration"
kid = "demo-2026"
key_credential = {key:?}
tenant_id = "{TENANT}"

[[sources]]
id = "inbox"
source_type = "watched_directory"
connection_config = {{ path = {inbox:?} }}
polling_interval_seconds = 1
templates = [
  {{ path = {template:?}, file_matcher = "bench-*.csv", post_process_policy = "move",
     completed_folder = "completed", error_folder = "error" }},{extra_templates}
]
"#,
            state = database.url,
            queue = vhost.url,
            url = sandbox.url,
            key = format!("file:{}", repo("fixtures/sandbox/demo-client.key.pem")),
            inbox = inbox.display().to_string(),
            template = repo("fixtures/bench/create.json"),
        );
        fs::write(&config, text).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        Some(Cluster { dir, inbox, config, database, vhost, sandbox, plugins, runtime, round: 0 })
    }

    /// Starts `intake serve --role <role>`.
    fn start(&mut self, role: &str) -> ServeProcess {
        self.round += 1;
        let plugins = self.plugins.display().to_string();
        ServeProcess::start_with_args(
            &self.config,
            self.dir.path(),
            self.round,
            &[("INTAKE_PLUGIN_DIR", plugins.as_str())],
            &["--role", role],
        )
    }

    /// Drops files `range` into the inbox (each written aside, then renamed in).
    fn drop_files(&self, range: std::ops::Range<usize>) {
        self.drop_files_of(range, ROWS_PER_FILE);
    }

    /// Drops files `range` of `rows_per_file` rows each.
    fn drop_files_of(&self, range: std::ops::Range<usize>, rows_per_file: usize) {
        for file in range {
            let name = format!("bench-{file:03}.csv");
            let staged = self.dir.path().join("staging").join(&name);
            fs::write(&staged, rows(file, "Name", rows_per_file)).unwrap();
            fs::rename(&staged, self.inbox.join(&name)).unwrap();
        }
    }

    /// The import runs in the state store, by file name.
    fn runs(&self) -> BTreeMap<String, Vec<(RunStatus, Option<String>)>> {
        self.runtime.block_on(async {
            let store = Store::open(&self.database.url).await.unwrap();
            let runs = store.list_all(Collection::ImportRuns, TENANT, ListQuery::new()).await;
            store.close().await;
            let mut by_file: BTreeMap<String, Vec<_>> = BTreeMap::new();
            for run in runs.unwrap() {
                let body = &run.body;
                let name = body["source_name"].as_str().unwrap_or("?").to_owned();
                let status: RunStatus = serde_json::from_value(body["status"].clone()).unwrap();
                let error = body["error"].as_str().map(str::to_owned);
                by_file.entry(name).or_default().push((status, error));
            }
            by_file
        })
    }

    /// How many runs are final.
    fn final_runs(&self) -> usize {
        self.runs().values().flatten().filter(|(status, _)| is_final(*status)).count()
    }

    /// Waits until `done`, restarting any worker that died (as a supervisor would).
    fn wait(
        &mut self,
        workers: &mut [ServeProcess],
        what: &str,
        mut done: impl FnMut(&Self) -> bool,
    ) {
        let deadline = Instant::now() + TIMEOUT;
        while !done(self) {
            for worker in workers.iter_mut() {
                if worker.exited() {
                    *worker = self.start("worker");
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", self.runs());
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Checks the end state of the 200 files: one final run each, each file in `completed/`, and
    /// every valid row once on the platform.
    fn assert_every_file_imported_exactly_once(&self) {
        let runs = self.runs();
        assert_eq!(runs.len(), FILES, "a run per file: {runs:?}");
        for (file, file_runs) in &runs {
            assert_eq!(file_runs.len(), 1, "{file}: one run, not {file_runs:?}");
            assert_eq!(file_runs[0].0, RunStatus::PartiallySucceeded, "{file}: {file_runs:?}");
        }
        assert_eq!(files_in(&self.inbox.join("completed")).len(), FILES);
        assert_eq!(files_in(&self.inbox), Vec::<String>::new(), "nothing left in the inbox");
        let ids = self.sandbox.values("payments", "external_id");
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &ids {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "rows written twice: {twice:?}");
        assert_eq!(ids.len(), FILES * VALID_PER_FILE, "exactly the valid rows");
        assert!(ids.iter().all(|id| !id.starts_with("EXT-9")), "no invalid row was written");
    }
}

fn is_final(status: RunStatus) -> bool {
    !matches!(status, RunStatus::Queued | RunStatus::Running)
}

/// A file of `count` rows in the layout of `fixtures/bench/create.json`; row ids are
/// unique across files (`EXT-<file × 1000 + row>`), every `INVALID_EVERY`th row is invalid
/// (currency `USD`, id `EXT-9…`).
fn rows(file: usize, name: &str, count: usize) -> String {
    let mut text =
        String::from("id,external_id,name,email,iban,amount,currency,date,country,orgnr\n");
    for row in 0..count {
        let id = file * 1000 + row;
        let (external, currency) = if (row + 1) % INVALID_EVERY == 0 {
            (format!("EXT-{:08}", 90_000_000 + id), "USD")
        } else {
            (format!("EXT-{id:08}"), "SEK")
        };
        let _ = writeln!(
            text,
            "{id},{external},{name} {row},user{id}@example.com,SE4550000000058398257466,\
             {}.50,{currency},2026-03-{:02},SE,556016-0680",
            10 + row,
            1 + row % 28
        );
    }
    text
}

fn terminate_all(processes: &mut [ServeProcess]) {
    for serve in processes {
        if !serve.exited() {
            let status = serve.terminate(TIMEOUT);
            assert_eq!(status.code(), Some(0), "{}", serve.output());
        }
    }
}

/// The number after `label` in a process's closing summary line (`…, 12 imported, …`).
fn summary_count(serve: &ServeProcess, label: &str) -> u64 {
    let output = serve.output();
    let line = output
        .lines()
        .find_map(|l| l.split_once("intake serve stopped: ").map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no summary in:\n{output}"));
    line.split(", ")
        .find_map(|part| part.strip_suffix(label).and_then(|n| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no '{label}' in {line:?}"))
}

#[test]
fn three_workers_and_two_pollers_import_200_files_exactly_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(mut cluster) = Cluster::new("") else { return };
    let mut pollers = vec![cluster.start("poller"), cluster.start("poller")];
    let mut workers =
        vec![cluster.start("worker"), cluster.start("worker"), cluster.start("worker")];
    cluster.drop_files(0..FILES);
    cluster.wait(&mut [], "200 final runs", |c| {
        c.final_runs() >= FILES && files_in(&c.inbox.join("completed")).len() == FILES
    });
    std::thread::sleep(Duration::from_secs(2));
    terminate_all(&mut pollers);
    terminate_all(&mut workers);
    cluster.assert_every_file_imported_exactly_once();

    let imported: Vec<u64> = workers.iter().map(|w| summary_count(w, "imported")).collect();
    assert_eq!(imported.iter().sum::<u64>(), FILES as u64, "{imported:?}");
    assert!(imported.iter().all(|n| *n > 0), "every worker took a share: {imported:?}");
    let queued: Vec<u64> = pollers.iter().map(|p| summary_count(p, "file(s) queued")).collect();
    // One poller polled: it queued each file once. (Under heavy load the lease may change hands;
    // the new holder then queues the unfinished files again, harmlessly — the runs above are
    // still one per file.)
    let takeovers: usize = pollers
        .iter()
        .map(|p| p.output().matches("polling this source (took its lease)").count())
        .sum();
    if takeovers == 1 {
        assert_eq!(queued.iter().sum::<u64>(), FILES as u64, "each file queued once: {queued:?}");
    } else {
        assert!(queued.iter().sum::<u64>() >= FILES as u64, "{queued:?}");
    }
}

#[test]
fn a_killed_worker_and_a_killed_poller_lose_and_duplicate_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(mut cluster) = Cluster::new("") else { return };
    let mut pollers = vec![cluster.start("poller"), cluster.start("poller")];
    let mut workers =
        vec![cluster.start("worker"), cluster.start("worker"), cluster.start("worker")];
    cluster.drop_files(0..FILES / 2);

    // A worker dies with imports in flight.
    cluster.wait(&mut [], "a quarter of the runs", |c| c.final_runs() >= FILES / 4);
    workers.remove(0).kill_9();
    // The poller holding the source's lease dies; the other must take over for the next files.
    let leader = pollers
        .iter()
        .position(|p| p.output().contains("polling this source (took its lease)"))
        .expect("a poller holds the lease");
    pollers.remove(leader).kill_9();
    cluster.drop_files(FILES / 2..FILES);

    cluster.wait(&mut [], "200 final runs", |c| {
        c.final_runs() >= FILES && files_in(&c.inbox.join("completed")).len() == FILES
    });
    std::thread::sleep(Duration::from_secs(2));
    terminate_all(&mut pollers);
    terminate_all(&mut workers);
    cluster.assert_every_file_imported_exactly_once();
    assert!(
        pollers[0].output().contains("polling this source (took its lease)"),
        "the surviving poller took the lease over:\n{}",
        pollers[0].output()
    );
}

/// A mapper plugin that kills the process running it (the worker) on a row named `POISON`, and
/// passes every other row on: stands in for a parser that crashes on a file, every time.
const POISON_PLUGIN: &str = r#"#!/usr/bin/env python3
import json, os, signal, sys
for line in sys.stdin:
    row = json.loads(line)["row"]
    if str(row.get("name", "")).startswith("POISON"):
        os.kill(os.getppid(), signal.SIGKILL)
        sys.exit(1)
    sys.stdout.write(json.dumps({"row": row}) + "\n")
    sys.stdout.flush()
"#;

#[test]
fn a_file_that_kills_its_worker_every_time_ends_dead_and_failed_without_blocking_others() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The poison template: the bench template with the plugin as a second mapping step.
    let mut template: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo("fixtures/bench/create.json")).unwrap())
            .unwrap();
    template["name"] = "Benchmark through a plugin".into();
    let fields: Vec<_> = [
        "id",
        "external_id",
        "name",
        "email",
        "iban",
        "amount",
        "currency",
        "date",
        "country",
        "orgnr",
    ]
    .into();
    template["mapping"].as_array_mut().unwrap().push(serde_json::json!({
        "type": "plugin",
        "config": {"type": "command", "name": "poison", "fields": fields}
    }));
    let staging = tempfile::tempdir().unwrap();
    let template_path = staging.path().join("poison.json");
    fs::write(&template_path, template.to_string()).unwrap();
    let extra = format!(
        "\n  {{ path = {:?}, file_matcher = \"poison-*.csv\", post_process_policy = \"move\", \
         completed_folder = \"completed\", error_folder = \"error\" }},",
        template_path.display().to_string()
    );
    let Some(mut cluster) = Cluster::new(&extra) else { return };
    let plugin = cluster.plugins.join("poison");
    fs::write(&plugin, POISON_PLUGIN).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&plugin, fs::Permissions::from_mode(0o755)).unwrap();
    }

    let mut poller = cluster.start("poller");
    let mut workers =
        vec![cluster.start("worker"), cluster.start("worker"), cluster.start("worker")];
    fs::write(cluster.inbox.join("poison-000.csv"), rows(999, "POISON", ROWS_PER_FILE)).unwrap();
    cluster.drop_files(0..20);
    cluster.wait(&mut workers, "21 final runs", |c| {
        c.final_runs() >= 21 && files_in(&c.inbox.join("error")).len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    poller.assert_running();
    terminate_all(std::slice::from_mut(&mut poller));
    terminate_all(&mut workers);

    let runs = cluster.runs();
    let poison = &runs["poison-000.csv"];
    assert_eq!(poison.len(), 1, "{poison:?}");
    assert_eq!(poison[0].0, RunStatus::Failed, "{poison:?}");
    let error = poison[0].1.clone().unwrap_or_default();
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    assert_eq!(files_in(&cluster.inbox.join("error")), ["poison-000.csv"]);
    let others: Vec<_> = runs.iter().filter(|(name, _)| name.starts_with("bench-")).collect();
    assert_eq!(others.len(), 20);
    assert!(
        others.iter().all(|(_, r)| r.len() == 1 && r[0].0 == RunStatus::PartiallySucceeded),
        "{others:?}"
    );
    assert_eq!(cluster.sandbox.values("payments", "external_id").len(), 20 * VALID_PER_FILE);

    // The job is in the dead-letter queue, with its reason.
    let dead = cluster.runtime.block_on(async {
        let queue = JobQueue::open(&cluster.vhost.url, QueueConfig::default()).await.unwrap();
        let dead = queue.given_up::<ImportFile>().await.unwrap();
        queue.close().await;
        dead
    });
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].reason.contains("ended without a result"), "{}", dead[0].reason);
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// CPU time of every process whose command line contains `pattern` (PostgreSQL, RabbitMQ).
fn cpu_seconds_of(pattern: &str) -> f64 {
    let output = std::process::Command::new("pgrep").args(["-f", pattern]).output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|pid| pid.trim().parse().ok())
        .map(cpu_seconds)
        .sum()
}

/// Throughput with 1, 2 and 4 workers and one poller (the figures in BENCHMARKS.md), and where
/// the CPU went. A measurement, not a test: it asserts nothing about time. Run it with
/// `cargo test --release --test serve_cluster -- --ignored --nocapture throughput`
/// (`INTAKE_CLUSTER_BENCH_FILES`, default 200, and `INTAKE_CLUSTER_BENCH_ROWS` per file, default
/// 50).
#[test]
#[ignore = "a benchmark: run it explicitly, see BENCHMARKS.md"]
fn throughput_with_1_2_and_4_workers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let setting = |name: &str, default: usize| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let files = setting("INTAKE_CLUSTER_BENCH_FILES", FILES);
    let rows_per_file = setting("INTAKE_CLUSTER_BENCH_ROWS", ROWS_PER_FILE);
    assert!(rows_per_file < 1000, "row ids are file × 1000 + row: at most 999 rows per file");
    for count in [1, 2, 4] {
        let Some(mut cluster) = Cluster::new("") else { return };
        let mut poller = cluster.start("poller");
        let mut workers: Vec<_> = (0..count).map(|_| cluster.start("worker")).collect();
        std::thread::sleep(Duration::from_secs(3));
        let before = (
            workers.iter().map(|w| cpu_seconds(w.pid())).sum::<f64>(),
            cpu_seconds(poller.pid()),
            cpu_seconds(cluster.sandbox.pid()),
            cpu_seconds_of("postgres"),
            cpu_seconds_of("beam.smp"),
        );
        let started = Instant::now();
        cluster.drop_files_of(0..files, rows_per_file);
        cluster.wait(&mut [], "every run final", |c| c.final_runs() >= files);
        let seconds = started.elapsed().as_secs_f64();
        let after = (
            workers.iter().map(|w| cpu_seconds(w.pid())).sum::<f64>(),
            cpu_seconds(poller.pid()),
            cpu_seconds(cluster.sandbox.pid()),
            cpu_seconds_of("postgres"),
            cpu_seconds_of("beam.smp"),
        );
        let rows = (files * rows_per_file) as f64;
        println!(
            "workers={count} files={files} rows={rows} seconds={seconds:.1} files/s={:.1} \
             rows/s={:.0} | CPU s: workers {:.1}, poller {:.1}, sandbox {:.1}, postgres {:.1}, \
             rabbitmq {:.1}",
            files as f64 / seconds,
            rows / seconds,
            after.0 - before.0,
            after.1 - before.1,
            after.2 - before.2,
            after.3 - before.3,
            after.4 - before.4,
        );
        terminate_all(std::slice::from_mut(&mut poller));
        terminate_all(&mut workers);
    }
}
