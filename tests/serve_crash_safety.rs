//! Crash safety, end to end: the built `intake serve` imports a 50,025-row file (50,000 valid
//! rows, 25 invalid ones) into the built `intake sandbox` while the test SIGKILLs it again and
//! again and restarts it on the same state. In the end the sandbox holds every valid row exactly
//! once, the file was post-processed exactly once, and the single run's counts add up.
//!
//! The kills: [`SHORT_KILLS`] at a random 300–1500 ms after the import job was (re)delivered to
//! the new process — so each lands in the import itself (snapshot, hashing, the resumed run
//! re-sending rows) rather than in start-up or in the orphan wait — then one late kill once the
//! run's recorded progress passed a random row in the last tenth of the file (or the run ended),
//! so the end of the import, `finish_run` and the move are exposed too. The seed is printed;
//! `INTAKE_CRASH_SEED=<n>` replays a sequence of delays.
//!
//! Timing (debug build, 2 cores): one uninterrupted import of the file takes about 40 s (one
//! request per row); the whole test about 2 minutes.

// Test code: a failed set-up step should panic right there.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{SandboxProcess, ServeProcess, files_in, repo};

use intake_engine::jobs::{ImportFile, Job, JobQueue, JobRecord, JobState, QueueConfig};
use intake_engine::m2m::jws::SigningKey;
use intake_engine::m2m::{ApiClient, ClientConfig, ClientCredentials, ListQuery, TokenManager};
use intake_engine::store::{
    ClaimState, Collection, ImportRun, ListQuery as StoreQuery, RunStatus, Store,
};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
/// Valid rows in the file; each must end up on the platform exactly once.
const VALID_ROWS: u64 = 50_000;
/// An invalid row (currency `USD`) follows every this many valid rows.
const INVALID_EVERY: u64 = 2_000;
const INVALID_ROWS: u64 = VALID_ROWS / INVALID_EVERY;
/// Kills early in an attempt; one late kill follows.
const SHORT_KILLS: u32 = 10;
const FILE_NAME: &str = "bench-crash.csv";
const TIMEOUT: Duration = Duration::from_secs(150);

/// splitmix64: a tiny seeded generator, so a failing sequence of kills can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// The file: `VALID_ROWS` valid rows (`EXT-00000000`…) in the layout of
/// `shared/bench/gen_rows.py`, with an invalid row (`EXT-9…`, currency `USD`) after every
/// `INVALID_EVERY` of them. Deterministic.
fn write_rows(path: &Path) {
    let ibans = [
        "SE4550000000058398257466",
        "GB82WEST12345698765432",
        "DE89370400440532013000",
        "NL91ABNA0417164300",
    ];
    let mut text = String::with_capacity(6_000_000);
    text.push_str("id,external_id,name,email,iban,amount,currency,date,country,orgnr\n");
    for i in 0..VALID_ROWS {
        let amount = (i * 7919) % 100_000;
        let _ = writeln!(
            text,
            "{i},EXT-{i:08},Name {},user{i}@example.com,{},{}.{:02},{},2026-{:02}-{:02},SE,\
             556016-0680",
            i % 997,
            ibans[(i % 4) as usize],
            amount / 100,
            amount % 100,
            if i % 3 == 0 { "EUR" } else { "SEK" },
            1 + i % 12,
            1 + i % 28,
        );
        if (i + 1) % INVALID_EVERY == 0 {
            let bad = 90_000_000 + i;
            let _ = writeln!(
                text,
                "{bad},EXT-{bad:08},Bad {i},bad{i}@example.com,{},1.00,USD,2026-01-01,SE,\
                 556016-0680",
                ibans[0]
            );
        }
    }
    fs::write(path, text).unwrap();
}

fn write_config(dir: &Path, url: &str, inbox: &Path, max_attempts: u32) -> PathBuf {
    let config = format!(
        r#"
[state]
path = "state/intake.sqlite"

[jobs]
path = "state/intake.jobs.sqlite"
import_concurrency = 1
shutdown_grace_seconds = 10
# A killed process's import is re-delivered after 1 s × 2 missed heartbeats instead of 30 s.
heartbeat_seconds = 1
missed_heartbeats = 2
# Every kill during the import costs the job one attempt (the default, 5, would end it failed
# after the fifth kill): the main test leaves room for all of them.
max_attempts = {max_attempts}

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
temp_file_extensions = [".part"]
polling_interval_seconds = 1
event_driven = true
templates = [
  {{ path = {template:?}, file_matcher = "bench-*.csv", post_process_policy = "move",
     completed_folder = "completed", error_folder = "error" }},
]
"#,
        key = format!("file:{}", repo("fixtures/sandbox/demo-client.key.pem")),
        inbox = inbox.display().to_string(),
        template = repo("fixtures/bench/create.json"),
    );
    let path = dir.join("intake.toml");
    fs::write(&path, config).unwrap();
    path
}

/// Reads the platform through the M2M API, as the demo client.
struct Platform {
    client: ApiClient,
}

impl Platform {
    async fn new(url: &str) -> Self {
        let base = url::Url::parse(url).unwrap();
        let mut config = ClientConfig::new(base.clone());
        config.tenant_id = Some(TENANT.to_owned());
        let http = ApiClient::http_client(&config).unwrap();
        let key = fs::read_to_string(repo("fixtures/sandbox/demo-client.key.pem")).unwrap();
        let credentials = ClientCredentials {
            token_url: base.join("auth/token").unwrap(),
            client_id: "demo-integration".to_owned(),
            kid: "demo-2026".to_owned(),
            key: SigningKey::from_pem(&key).unwrap(),
            scopes: vec!["payments:list".to_owned()],
            dpop_key: None,
        };
        Platform {
            client: ApiClient::new(config, TokenManager::new(http.clone(), credentials), http),
        }
    }

    /// Every payment's `external_id` → how many records carry it, with its `id` column.
    async fn payments(&self) -> BTreeMap<String, (u64, Option<u64>)> {
        let mut seen: BTreeMap<String, (u64, Option<u64>)> = BTreeMap::new();
        let mut page = 1;
        loop {
            let query = ListQuery {
                fields: Some(vec!["external_id".to_owned(), "id".to_owned()]),
                page,
                per_page: 100,
                ..ListQuery::default()
            };
            let listed = self.client.list("payments", &query).await.unwrap();
            for item in &listed.items {
                let key = item.body.get("external_id").and_then(|v| v.as_str()).unwrap_or("?");
                let entry = seen.entry(key.to_owned()).or_insert((0, None));
                entry.0 += 1;
                entry.1 = item.body.get("id").and_then(serde_json::Value::as_u64);
            }
            if listed.items.is_empty() || u64::from(page) * 100 >= listed.total {
                return seen;
            }
            page += 1;
        }
    }
}

/// The test's view of the state: the store and the job queue, opened next to the running
/// process (both are SQLite files in WAL mode).
struct State {
    store: Store,
    queue: JobQueue,
}

impl State {
    /// Opens both once `serve` has created and migrated them (it logs that it is polling).
    async fn open(dir: &Path, serve: &mut ServeProcess) -> Self {
        let deadline = Instant::now() + TIMEOUT;
        while !serve.output().contains("intake serve: polling") {
            serve.assert_running();
            assert!(Instant::now() < deadline, "serve never started:\n{}", serve.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let path = |name: &str| dir.join("state").join(name).display().to_string();
        let store = Store::open(&path("intake.sqlite")).await.unwrap();
        let jobs = path("intake.jobs.sqlite");
        let queue = JobQueue::open(&jobs, QueueConfig::default()).await.unwrap();
        State { store, queue }
    }

    /// The file's import job, once it exists.
    async fn import_job(&self) -> Option<JobRecord> {
        let jobs = self.queue.jobs(ImportFile::QUEUE).await.unwrap();
        assert!(jobs.len() <= 1, "one file, one import job: {jobs:?}");
        jobs.into_iter().next()
    }

    async fn runs(&self) -> Vec<ImportRun> {
        let query = StoreQuery::new().page(1, 100);
        let listed = self.store.list(Collection::ImportRuns, TENANT, &query).await.unwrap();
        let mut runs = Vec::new();
        for document in listed.items {
            runs.push(self.store.get_run(TENANT, &document.meta.id).await.unwrap());
        }
        runs
    }

    /// Rows the run has accounted for so far (its last progress record).
    async fn progress(&self) -> (u64, bool) {
        match self.runs().await.first() {
            Some(run) => {
                let c = &run.body.counts;
                let done = !matches!(run.body.status, RunStatus::Queued | RunStatus::Running);
                (c.rejected + c.created + c.updated + c.skipped_already_written, done)
            }
            None => (0, false),
        }
    }
}

/// Waits (checking the process is alive) until the import job has been handed to this process:
/// running, with more attempts than `after` (a re-delivery counts one), or finished.
async fn wait_for_delivery(
    serve: &mut ServeProcess,
    state: &State,
    after: Option<u64>,
) -> JobRecord {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        serve.assert_running();
        if let Some(job) = state.import_job().await {
            let delivered = match after {
                None => job.state == JobState::Running,
                Some(attempts) => job.state == JobState::Running && job.attempts > attempts,
            };
            if delivered || matches!(job.state, JobState::Succeeded | JobState::Failed) {
                return job;
            }
        }
        assert!(Instant::now() < deadline, "the import job never ran:\n{}", serve.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_with_sigkill_during_a_50000_row_import_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let seed =
        std::env::var("INTAKE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
    println!("crash seed: {seed} (replay with INTAKE_CRASH_SEED={seed})");
    let mut rng = Rng(seed);

    let sandbox = SandboxProcess::start();
    let platform = Platform::new(&sandbox.url).await;
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir(&inbox).unwrap();
    let config = write_config(dir.path(), &sandbox.url, &inbox, 30);
    // Written beside the inbox and renamed in, so the poller never sees a partial file.
    let staged = dir.path().join(FILE_NAME);
    write_rows(&staged);

    let mut round = 0;
    let mut serve = ServeProcess::start(&config, dir.path(), round);
    fs::rename(&staged, inbox.join(FILE_NAME)).unwrap();
    let state = State::open(dir.path(), &mut serve).await;

    // The short kills: each a random 300–1500 ms into an attempt of the import.
    let mut attempts = None;
    let mut kills = Vec::new();
    for _ in 0..SHORT_KILLS {
        let job = wait_for_delivery(&mut serve, &state, attempts).await;
        assert_eq!(job.state, JobState::Running, "the import ended before the kills: {job:?}");
        let delay = rng.between(300, 1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let (progress, _) = state.progress().await;
        serve.kill_9();
        kills.push(format!("{delay} ms into attempt {} (~{progress} rows)", job.attempts + 1));
        attempts = Some(job.attempts);
        round += 1;
        serve = ServeProcess::start(&config, dir.path(), round);
    }

    // The late kill: once the resumed run got past a random row of the last tenth of the file
    // (its progress is recorded every second), or ended, after a random 0–1000 ms more.
    let total_rows = VALID_ROWS + INVALID_ROWS;
    let target = rng.between(total_rows * 9 / 10, total_rows);
    let job = wait_for_delivery(&mut serve, &state, attempts).await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        serve.assert_running();
        let (progress, done) = state.progress().await;
        if progress >= target || done {
            break;
        }
        assert!(Instant::now() < deadline, "no progress to row {target}:\n{}", serve.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delay = rng.between(0, 1000);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    serve.kill_9();
    kills.push(format!("{delay} ms after row {target} of attempt {}", job.attempts + 1));
    round += 1;
    println!("{} kills:\n  {}", kills.len(), kills.join("\n  "));

    // The last start runs to the end undisturbed.
    let mut serve = ServeProcess::start(&config, dir.path(), round);
    let completed = inbox.join("completed");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        serve.assert_running();
        let finished = matches!(
            state.import_job().await,
            Some(JobRecord { state: JobState::Succeeded | JobState::Failed, .. })
        );
        if finished && !files_in(&completed).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the import never finished:\n{}", serve.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One more poll cycle: a second move or a second run would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = serve.terminate(TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", serve.output());

    // The job succeeded; nothing failed on the queue.
    let job = state.import_job().await.unwrap();
    println!("import job: {:?} after {} attempt(s)", job.state, job.attempts);
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert!(state.queue.failed_jobs().await.unwrap().is_empty());

    // Post-processed exactly once: in completed/, not in the inbox, no `(1)` copy, no error/.
    assert_eq!(files_in(&completed), [FILE_NAME]);
    assert_eq!(files_in(&inbox), Vec::<String>::new());
    assert_eq!(files_in(&inbox.join("error")), Vec::<String>::new());
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), 1, "only completed/ in the inbox");

    // One run, final, for the file's one claim, its counts adding up.
    let runs = state.runs().await;
    assert_eq!(runs.len(), 1, "one run for the file: {runs:?}");
    let run = &runs[0];
    assert_eq!(run.body.status, RunStatus::PartiallySucceeded, "{run:?}");
    let counts = &run.body.counts;
    println!("run counts: {counts:?}");
    assert_eq!(counts.read, total_rows, "{counts:?}");
    assert_eq!(counts.valid, VALID_ROWS, "{counts:?}");
    assert_eq!(counts.rejected, INVALID_ROWS, "{counts:?}");
    assert_eq!(counts.updated + counts.deleted, 0, "{counts:?}");
    assert_eq!(counts.created + counts.skipped_already_written, VALID_ROWS, "{counts:?}");
    assert_eq!(counts.read, counts.rejected + counts.created + counts.skipped_already_written);
    let claim_id = run.body.claim_id.as_deref().unwrap();
    let claim = state.store.get_claim(TENANT, claim_id).await.unwrap();
    assert_eq!(claim.state, ClaimState::Done, "{claim:?}");
    assert_eq!(job.payload["claim_id"], claim_id);
    let rejected = state
        .store
        .list_rejected_records(
            TENANT,
            &StoreQuery::new().eq("import_run_id", &*run.meta.id).page(1, 1000),
        )
        .await
        .unwrap();
    assert_eq!(rejected.total, INVALID_ROWS, "each invalid row rejected once");

    // The platform: every valid row exactly once, nothing else.
    let payments = platform.payments().await;
    let twice: Vec<_> = payments.iter().filter(|(_, (n, _))| *n > 1).take(5).collect();
    assert!(twice.is_empty(), "records written twice, e.g. {twice:?}");
    let expected: Vec<String> = (0..VALID_ROWS).map(|i| format!("EXT-{i:08}")).collect();
    let missing: Vec<_> = expected.iter().filter(|k| !payments.contains_key(*k)).take(5).collect();
    assert!(missing.is_empty(), "rows missing on the platform, e.g. {missing:?}");
    assert_eq!(payments.len() as u64, VALID_ROWS, "no record that is not a valid row");
    for (i, key) in expected.iter().enumerate() {
        assert_eq!(payments[key].1, Some(i as u64), "{key} carries its row's id");
    }
    state.store.close().await;
    state.queue.close().await;
    println!("done in {:.0?}", started.elapsed());
}

/// The queue gives up on the import (`max_attempts = 1`, and the one attempt's process is
/// SIGKILLed, so its re-delivery exceeds the attempts): the run must not stay `running` for ever.
/// It ends `failed` with the job's reason, the claim `failed`, the file in the error folder; a
/// restart imports nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_job_given_up_by_the_queue_ends_as_a_failed_run_with_the_reason() {
    let sandbox = SandboxProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir(&inbox).unwrap();
    let config = write_config(dir.path(), &sandbox.url, &inbox, 1);
    let staged = dir.path().join(FILE_NAME);
    write_rows(&staged);

    let mut serve = ServeProcess::start(&config, dir.path(), 0);
    fs::rename(&staged, inbox.join(FILE_NAME)).unwrap();
    let state = State::open(dir.path(), &mut serve).await;
    // Killed once the run is under way.
    let job = wait_for_delivery(&mut serve, &state, None).await;
    assert_eq!(job.state, JobState::Running, "{job:?}");
    let deadline = Instant::now() + TIMEOUT;
    while state.progress().await.0 == 0 {
        serve.assert_running();
        assert!(Instant::now() < deadline, "the import never started:\n{}", serve.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve.kill_9();

    // The next process gets the orphaned job back with no attempt left: the queue gives up, and
    // the service ends the run.
    let mut serve = ServeProcess::start(&config, dir.path(), 1);
    let error = inbox.join("error");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        serve.assert_running();
        let failed =
            matches!(state.import_job().await, Some(JobRecord { state: JobState::Failed, .. }));
        if failed && !files_in(&error).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the given-up import never ended:\n{}", serve.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(serve.terminate(TIMEOUT).code(), Some(0), "{}", serve.output());

    let revision = given_up_state(&state, &inbox, "after the give-up").await;

    // A restart changes nothing: no new run, the failed one untouched, the file left in error/.
    let mut serve = ServeProcess::start(&config, dir.path(), 2);
    let _ = State::open(dir.path(), &mut serve).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(serve.terminate(TIMEOUT).code(), Some(0), "{}", serve.output());
    assert_eq!(
        given_up_state(&state, &inbox, "after a restart").await,
        revision,
        "the failed run was written again"
    );
    state.store.close().await;
    state.queue.close().await;
}

/// Checks the outcome of a given-up import; returns the run's revision.
async fn given_up_state(state: &State, inbox: &Path, round: &str) -> String {
    let job = state.import_job().await.unwrap();
    assert_eq!(job.state, JobState::Failed, "{round}: {job:?}");
    let reason = job.last_error.clone().unwrap();
    let runs = state.runs().await;
    assert_eq!(runs.len(), 1, "{round}: one run for the file: {runs:?}");
    let run = &runs[0];
    assert_eq!(run.body.status, RunStatus::Failed, "{round}: {run:?}");
    let run_error = run.body.error.as_deref().unwrap_or_default();
    assert!(run_error.contains("given up") && run_error.contains(&reason), "{run_error:?}");
    let claim_id = run.body.claim_id.as_deref().unwrap();
    assert_eq!(job.payload["claim_id"], claim_id);
    let claim = state.store.get_claim(TENANT, claim_id).await.unwrap();
    assert_eq!(claim.state, ClaimState::Failed, "{round}: {claim:?}");
    assert_eq!(files_in(&inbox.join("error")), [FILE_NAME], "{round}");
    assert_eq!(files_in(inbox), Vec::<String>::new(), "{round}");
    assert_eq!(files_in(&inbox.join("completed")), Vec::<String>::new(), "{round}");
    run.meta.revision_id.clone()
}
