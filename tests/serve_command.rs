//! End-to-end: the built `intake serve` watches a folder, imports each dropped fixture file once
//! into the built `intake sandbox`, post-processes it, stops cleanly on SIGTERM, and a restart on
//! the same state imports nothing again.

// Test code: a failed set-up step should panic right there.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use intake_engine::m2m::jws::SigningKey;
use intake_engine::m2m::{ApiClient, ClientConfig, ClientCredentials, ListQuery, TokenManager};
use intake_engine::store::{Collection, ListQuery as StoreQuery, Store};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
const TIMEOUT: Duration = Duration::from_secs(120);

/// A running `intake sandbox`, killed on drop.
struct SandboxProcess {
    child: Child,
    url: String,
    /// Kept open: a closed pipe would fail the sandbox's later writes to stdout.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl SandboxProcess {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["sandbox", "--port", "0", "--clients", "fixtures/sandbox/clients.json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the sandbox starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the sandbox prints its address");
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        SandboxProcess { child, url, _stdout: stdout }
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `intake serve`, its output in files; killed on drop if still running.
struct ServeProcess {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl ServeProcess {
    fn start(config: &Path, logs: &Path, round: u32) -> Self {
        let stdout = logs.join(format!("serve-{round}.out"));
        let stderr = logs.join(format!("serve-{round}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("intake serve starts");
        ServeProcess { child, stdout, stderr }
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            fs::read_to_string(&self.stdout).unwrap_or_default(),
            fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("intake serve exited early ({status}):\n{}", self.output());
        }
    }

    /// SIGTERM, then the exit status (within the timeout).
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path).display().to_string()
}

fn write_config(dir: &Path, url: &str, inbox: &Path) -> PathBuf {
    let template = |path: &str, matcher: &str| {
        format!(
            "{{ path = {:?}, file_matcher = {matcher:?}, post_process_policy = \"move\", \
             completed_folder = \"completed\", error_folder = \"error\" }}",
            repo(path)
        )
    };
    let config = format!(
        r#"
[state]
path = "state/intake.sqlite"

[jobs]
path = "state/intake.jobs.sqlite"
import_concurrency = 2

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
move_unmatched_to_error = true
unmatched_folder = "error"
templates = [
  {bank},
  {members},
  {clubs},
]
"#,
        key = format!("file:{}", repo("fixtures/sandbox/demo-client.key.pem")),
        inbox = inbox.display().to_string(),
        bank = template("fixtures/bank-payments/template.json", "bank-*.csv"),
        members = template("fixtures/member-register/template.json", "member-*.csv"),
        clubs = template("fixtures/club-export-utf16/template.json", "club-*.txt"),
    );
    let path = dir.join("intake.toml");
    fs::write(&path, config).unwrap();
    path
}

/// Counts records on the platform through the M2M API, as the demo client.
struct Platform {
    client: ApiClient,
    runtime: tokio::runtime::Runtime,
}

impl Platform {
    fn new(url: &str) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let base = url::Url::parse(url).unwrap();
        let mut config = ClientConfig::new(base.clone());
        config.tenant_id = Some(TENANT.to_owned());
        let client = runtime.block_on(async {
            let http = ApiClient::http_client(&config).unwrap();
            let key = fs::read_to_string(repo("fixtures/sandbox/demo-client.key.pem")).unwrap();
            let credentials = ClientCredentials {
                token_url: base.join("auth/token").unwrap(),
                client_id: "demo-integration".to_owned(),
                kid: "demo-2026".to_owned(),
                key: SigningKey::from_pem(&key).unwrap(),
                scopes: ["payments:list", "players:list", "clubs:list"].map(String::from).to_vec(),
                dpop_key: None,
            };
            ApiClient::new(config, TokenManager::new(http.clone(), credentials), http)
        });
        Platform { client, runtime }
    }

    fn counts(&self) -> [u64; 3] {
        ["payments", "players", "clubs"].map(|resource| {
            let query = ListQuery { per_page: 1, ..ListQuery::default() };
            self.runtime.block_on(self.client.list(resource, &query)).unwrap().total
        })
    }
}

fn files_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
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

/// Waits until `done` holds, checking the process is alive; panics with `what` on timeout.
fn wait_until(serve: &mut ServeProcess, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        serve.assert_running();
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", serve.output());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The source's `last_successful_poll_at` and the number of import runs, read from the state.
fn state(runtime: &tokio::runtime::Runtime, path: &Path) -> (Option<String>, u64) {
    runtime.block_on(async {
        let store = Store::open(&path.display().to_string()).await.unwrap();
        let sources = store.list(Collection::Sources, TENANT, &StoreQuery::new()).await.unwrap();
        let last_poll = sources.items.first().and_then(|s| {
            s.body.get("last_successful_poll_at").and_then(|v| v.as_str()).map(str::to_owned)
        });
        let runs = store.list(Collection::ImportRuns, TENANT, &StoreQuery::new()).await.unwrap();
        store.close().await;
        (last_poll, runs.total)
    })
}

#[test]
fn serve_imports_dropped_files_once_and_stops_cleanly_on_sigterm() {
    let sandbox = SandboxProcess::start();
    let platform = Platform::new(&sandbox.url);
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir(&inbox).unwrap();
    let config = write_config(dir.path(), &sandbox.url, &inbox);

    let mut serve = ServeProcess::start(&config, dir.path(), 1);
    // An upload under a temporary name, renamed when complete.
    let partial = inbox.join("bank-payments.csv.part");
    fs::write(&partial, fs::read(repo("fixtures/bank-payments/input.csv")).unwrap()).unwrap();
    fs::copy(repo("fixtures/member-register/input.csv"), inbox.join("member-register.csv"))
        .unwrap();
    fs::copy(repo("fixtures/club-export-utf16/input.txt"), inbox.join("club-export.txt")).unwrap();
    fs::write(inbox.join("notes.xyz"), "no template reads this\n").unwrap();
    fs::rename(&partial, inbox.join("bank-payments.csv")).unwrap();

    wait_until(&mut serve, "the records and the post-processed files", || {
        platform.counts() == [6, 6, 2]
            && files_in(&inbox.join("completed")).len() == 3
            && files_in(&inbox.join("error")) == ["notes.xyz"]
            && files_in(&inbox).is_empty()
    });
    assert_eq!(
        files_in(&inbox.join("completed")),
        ["bank-payments.csv", "club-export.txt", "member-register.csv"]
    );
    let status = serve.terminate();
    assert_eq!(status.code(), Some(0), "{}", serve.output());
    let output = serve.output();
    assert!(output.contains("intake serve stopped: 1 source(s)"), "{output}");
    assert!(output.contains("4 file(s) queued, 3 imported, 1 unmatched"), "{output}");

    // A restart on the same state: the source is polled again and nothing is imported twice.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state_file = dir.path().join("state/intake.sqlite");
    let (before, runs) = state(&runtime, &state_file);
    assert_eq!(runs, 4, "three imports and one unmatched file");
    let mut serve = ServeProcess::start(&config, dir.path(), 2);
    let mut polls_seen = 0;
    let mut last = before;
    wait_until(&mut serve, "two polls after the restart", || {
        let (now, _) = state(&runtime, &state_file);
        if now.is_some() && now != last {
            polls_seen += 1;
            last = now;
        }
        polls_seen >= 2
    });
    assert_eq!(platform.counts(), [6, 6, 2]);
    assert_eq!(state(&runtime, &state_file).1, 4, "no new import run");
    let status = serve.terminate();
    assert_eq!(status.code(), Some(0), "{}", serve.output());
    assert!(serve.output().contains("0 file(s) queued, 0 imported"), "{}", serve.output());
}

#[test]
fn serve_refuses_a_source_type_that_is_not_supported_yet_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("intake.toml");
    fs::write(
        &config,
        format!(
            r#"
[platform]
url = "http://127.0.0.1:8080"
client_id = "demo-integration"
kid = "demo-2026"
key_credential = "file:{key}"
tenant_id = "{TENANT}"

[[sources]]
id = "bucket"
source_type = "s3"
connection_config = {{ bucket = "b" }}
templates = ["missing.json"]

[[sources]]
id = "inbox"
source_type = "watched_directory"
connection_config = {{ path = "inbox" }}
templates = ["missing.json"]
"#,
            key = repo("fixtures/sandbox/demo-client.key.pem")
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not supported yet: source_type 's3'"), "{stderr}");

    // With the type fixed, both missing templates are reported at once, each with its file.
    let text = fs::read_to_string(&config).unwrap().replace(
        "source_type = \"s3\"\nconnection_config = { bucket = \"b\" }",
        "source_type = \"watched_directory\"\nconnection_config = { path = \"bucket\" }",
    );
    fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("missing.json").count(), 2, "{stderr}");
}

#[test]
fn the_example_configuration_for_the_fixtures_is_usable() {
    // The check creates the (git-ignored) fixtures/serve/work/inbox folder when missing.
    let output = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["serve", "--check", "--config", "fixtures/serve/intake.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}
