//! A child process spoken to in lines: a request line on its stdin, an answer line on its
//! stdout, with a deadline per answer and the end of its stderr kept for error messages.
//!
//! Validation plugins, mapper plugins and the jq mapper's worker all run customer logic outside
//! intake's own process, so that a crash, a hang or a runaway allocation costs that process and
//! not the worker. This is the plumbing they share; each owns its protocol (what the lines say).
//! It lives here because the mappers and validators crates both depend on this one.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable naming the plugin directory, where the executables that
/// validation and mapper plugins name are installed.
pub const PLUGIN_DIR_VAR: &str = "INTAKE_PLUGIN_DIR";

/// Where plugins are installed when [`PLUGIN_DIR_VAR`] is not set.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/local/lib/intake/plugins";

/// The plugin directory: [`PLUGIN_DIR_VAR`], else [`DEFAULT_PLUGIN_DIR`].
pub fn plugin_dir() -> PathBuf {
    std::env::var_os(PLUGIN_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PLUGIN_DIR))
}

/// Why `name` cannot name an executable in the plugin directory, if it cannot: templates arrive
/// over the REST API, so they may only choose among installed plugins, never leave the directory.
pub fn plugin_name_problem(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    (!plain).then(|| {
        format!(
            "the plugin name '{name}' must be a plain file name (letters, digits, '_', '-', '.'), \
             the name of an executable in the plugin directory"
        )
    })
}

/// How much of a child's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 4096;

/// A running child process with piped stdin, stdout and stderr.
pub struct LineProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: Receiver<std::io::Result<Vec<u8>>>,
    stderr: StderrTail,
}

/// Why no answer line came.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The deadline passed; the child has been killed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The child closed its stdout or could not be written to: it has exited or is exiting.
    #[error("the process stopped")]
    Stopped,
    /// Reading its stdout failed (e.g. an answer longer than the limit).
    #[error("reading its answer failed: {0}")]
    Read(std::io::Error),
}

impl LineProcess {
    /// Starts `command` with piped standard streams. Answer lines longer than
    /// `max_answer_bytes` end the answers with an error instead of filling memory.
    pub fn spawn(command: &mut Command, max_answer_bytes: usize) -> std::io::Result<Self> {
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let stderr = StderrTail::default();
        if let Some(pipe) = child.stderr.take() {
            stderr.collect(pipe);
        }
        let (sender, answers) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout);
                loop {
                    let mut line = Vec::new();
                    let limit = max_answer_bytes as u64 + 1;
                    let answer = match (&mut lines).take(limit).read_until(b'\n', &mut line) {
                        Ok(0) => break,
                        Ok(_) if line.len() > max_answer_bytes => Err(std::io::Error::other(
                            format!("an answer line is longer than {max_answer_bytes} bytes"),
                        )),
                        Ok(_) => Ok(line),
                        Err(error) => Err(error),
                    };
                    let failed = answer.is_err();
                    if sender.send(answer).is_err() || failed {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(Self { child, stdin, answers, stderr })
    }

    /// Writes `line` (which should end with a newline) to the child's stdin.
    pub fn send(&mut self, line: &[u8]) -> Result<(), AnswerError> {
        let stdin = self.stdin.as_mut().ok_or(AnswerError::Stopped)?;
        stdin.write_all(line).and_then(|()| stdin.flush()).map_err(|_| AnswerError::Stopped)
    }

    /// Waits up to `timeout` for the next answer line; on timeout the child is killed.
    pub fn receive(&mut self, timeout: Duration) -> Result<Vec<u8>, AnswerError> {
        match self.answers.recv_timeout(timeout) {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(error)) => Err(AnswerError::Read(error)),
            Err(RecvTimeoutError::Disconnected) => Err(AnswerError::Stopped),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(AnswerError::Timeout(timeout))
            }
        }
    }

    /// Sends `line` and waits up to `timeout` for the answer.
    pub fn ask(&mut self, line: &[u8], timeout: Duration) -> Result<Vec<u8>, AnswerError> {
        self.send(line)?;
        self.receive(timeout)
    }

    /// How the child ended, waiting for it (call once it has stopped or been killed).
    pub fn exit_status(&mut self) -> String {
        match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(error) => error.to_string(),
        }
    }

    /// Closes the child's stdin and waits up to `grace` for it to exit; kills it after that.
    /// `Ok` with the status if it exited, `Err` with a description if it had to be killed.
    pub fn close(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    self.kill();
                    return Err(format!(
                        "no exit within {} s of its input closing",
                        grace.as_secs()
                    ));
                }
                Err(error) => {
                    self.kill();
                    return Err(error.to_string());
                }
            }
        }
    }

    /// Kills the child (if it still runs) and reaps it.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The end of what the child wrote to stderr (lossy UTF-8).
    pub fn stderr_tail(&self) -> String {
        self.stderr.text()
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `"; its stderr ends with:\n…"` for an error message, or nothing when stderr was empty.
pub fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; its stderr ends with:\n{}", stderr.trim_end())
    }
}

/// The end of a child's stderr, collected by a thread.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    fn collect(&self, mut stderr: impl Read + Send + 'static) {
        let tail = self.0.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                if let Ok(mut tail) = tail.lock() {
                    tail.extend(&buffer[..n]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                    tail.drain(..excess);
                }
            }
        });
    }

    fn text(&self) -> String {
        // Give the collecting thread a moment to read what a dying child just wrote.
        std::thread::sleep(Duration::from_millis(50));
        match self.0.lock() {
            Ok(tail) => String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<_>>()).into(),
            Err(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn answers_come_back_line_by_line() {
        let mut process =
            LineProcess::spawn(&mut shell("while read l; do echo \"<$l>\"; done"), 64)
                .expect("spawn");
        let answer = process.ask(b"one\n", Duration::from_secs(5)).expect("answer");
        assert_eq!(answer, b"<one>\n");
        assert!(process.close(Duration::from_secs(5)).expect("exits").success());
    }

    #[test]
    fn a_silent_child_is_killed_at_the_deadline() {
        let mut process =
            LineProcess::spawn(&mut shell("echo starting >&2; sleep 30"), 64).expect("spawn");
        let error = process.ask(b"x\n", Duration::from_millis(200)).expect_err("times out");
        assert!(matches!(error, AnswerError::Timeout(_)), "{error}");
        assert!(process.stderr_tail().contains("starting"));
        assert!(process.exit_status().contains("signal"));
    }

    #[test]
    fn a_child_that_exits_has_stopped_and_long_answers_are_refused() {
        let mut process = LineProcess::spawn(&mut shell("exit 3"), 64).expect("spawn");
        assert!(matches!(process.receive(Duration::from_secs(5)), Err(AnswerError::Stopped)));
        assert!(process.exit_status().contains('3'));
        let mut process =
            LineProcess::spawn(&mut shell("head -c 100 /dev/zero; echo"), 64).expect("spawn");
        assert!(matches!(process.receive(Duration::from_secs(5)), Err(AnswerError::Read(_))));
    }
}
