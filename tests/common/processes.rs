//! The built `intake` binary as child processes: `intake sandbox` on a free port and
//! `intake serve` with its output in files, plus the waiting and folder helpers around them.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `intake` server command (`sandbox`, `api`) that prints its URL first; killed on
/// drop.
pub struct ListeningProcess {
    child: Child,
    pub url: String,
    /// Kept open: a closed pipe would fail the server's later writes to stdout.
    _stdout: BufReader<std::process::ChildStdout>,
}

/// A running `intake sandbox` on a free port.
pub type SandboxProcess = ListeningProcess;

impl ListeningProcess {
    /// How many `resource` records the sandbox holds for the fixture tenant, asked through the
    /// M2M client as the demo integration (needs `<resource>:list`).
    pub fn total(&self, resource: &str) -> u64 {
        let client = self.demo_client(resource);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let query = intake_engine::m2m::ListQuery { per_page: 1, ..Default::default() };
        runtime.block_on(async { client.list(resource, &query).await.unwrap().total })
    }

    /// An M2M client of the demo integration for the fixture tenant, allowed to list `resource`.
    fn demo_client(&self, resource: &str) -> intake_engine::m2m::ApiClient {
        use intake_engine::m2m::TokenManager;
        use intake_engine::m2m::jws::SigningKey;
        use intake_engine::m2m::{ApiClient, ClientConfig, ClientCredentials};
        let base = url::Url::parse(&self.url).unwrap();
        let mut config = ClientConfig::new(base.clone());
        config.tenant_id = Some("64a1b2c3d4e5f6789012abcd".to_owned());
        let http = ApiClient::http_client(&config).unwrap();
        let key = fs::read_to_string(repo("fixtures/sandbox/demo-client.key.pem")).unwrap();
        let credentials = ClientCredentials {
            token_url: base.join("auth/token").unwrap(),
            client_id: "demo-integration".to_owned(),
            kid: "demo-2026".to_owned(),
            key: SigningKey::from_pem(&key).unwrap(),
            scopes: vec![format!("{resource}:list")],
            dpop_key: None,
        };
        ApiClient::new(config, TokenManager::new(http.clone(), credentials), http)
    }

    /// Every `resource` record's `field` value (as text), read page by page through the M2M
    /// client as the demo integration.
    pub fn values(&self, resource: &str, field: &str) -> Vec<String> {
        let client = self.demo_client(resource);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut values = Vec::new();
            for page in 1.. {
                let query = intake_engine::m2m::ListQuery {
                    fields: Some(vec![field.to_owned()]),
                    page,
                    per_page: 100,
                    ..intake_engine::m2m::ListQuery::default()
                };
                let listed = client.list(resource, &query).await.unwrap();
                values.extend(listed.items.iter().map(|item| match item.body.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    other => format!("{other:?}"),
                }));
                if listed.items.is_empty() || u64::from(page) * 100 >= listed.total {
                    break;
                }
            }
            values
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `intake sandbox` with the fixture clients.
    pub fn start() -> Self {
        Self::start_with(&["sandbox", "--port", "0", "--clients", "fixtures/sandbox/clients.json"])
    }

    /// `intake ARGS…` from the repository root, once it printed its `http://` address.
    pub fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the server prints its address");
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        ListeningProcess { child, url, _stdout: stdout }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().expect("the server exits")
    }
}

impl Drop for ListeningProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `intake serve`, its output in files; killed on drop if still running.
pub struct ServeProcess {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl ServeProcess {
    /// `intake serve --config <config>`, its output in `serve-<round>.out` / `.err` in `logs`.
    pub fn start(config: &Path, logs: &Path, round: u32) -> Self {
        Self::start_with_env(config, logs, round, &[])
    }

    /// Like [`ServeProcess::start`], with `env` added to the child's environment.
    pub fn start_with_env(config: &Path, logs: &Path, round: u32, env: &[(&str, &str)]) -> Self {
        Self::start_with_args(config, logs, round, env, &[])
    }

    /// Like [`ServeProcess::start_with_env`], with more `intake serve` arguments.
    pub fn start_with_args(
        config: &Path,
        logs: &Path,
        round: u32,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let stdout = logs.join(format!("serve-{round}.out"));
        let stderr = logs.join(format!("serve-{round}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["serve", "--config"])
            .arg(config)
            .args(args)
            .envs(env.iter().copied())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("intake serve starts");
        ServeProcess { child, stdout, stderr }
    }

    pub fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            fs::read_to_string(&self.stdout).unwrap_or_default(),
            fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("intake serve exited early ({status}):\n{}", self.output());
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has ended (a supervisor would restart it).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// SIGKILL: no handler runs, nothing is flushed or handed back.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status (within `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + timeout;
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

/// Waits until `done` holds, checking the process is alive; panics with `what` once `timeout`
/// has passed.
pub fn wait_until(
    serve: &mut ServeProcess,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        serve.assert_running();
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", serve.output());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `path` (relative to the repository) as an absolute path.
pub fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path).display().to_string()
}

/// The names of the files (not folders) directly in `folder`, sorted; none when it is missing.
pub fn files_in(folder: &Path) -> Vec<String> {
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

/// The `[state]`, `[jobs]` and `[platform]` sections of an `intake serve` configuration: state
/// and queue under `state/` next to the file, and the demo client of the sandbox at `url` for
/// the demo tenant. Sources (and `[api]`) are appended by the caller.
pub fn serve_config_base(url: &str) -> String {
    format!(
        r#"
[state]
path = "state/intake.sqlite"

[jobs]
path = "state/intake.jobs.sqlite"

[platform]
url = {url:?}
client_id = "demo-integration"
kid = "demo-2026"
key_credential = {key:?}
tenant_id = "64a1b2c3d4e5f6789012abcd"
"#,
        key = format!("file:{}", repo("fixtures/sandbox/demo-client.key.pem")),
    )
}
