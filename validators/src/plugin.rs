//! Validation layer 5: plugins, so a customer can check rows with rules only their own code
//! knows: external commands, in any language, without rebuilding intake; or plugins compiled into
//! intake and registered by name (`{"type": "builtin", "name": "compare_fields", "options":
//! {…}}`, see [`register_validation_plugin`]).
//!
//! A template names a plugin; the operator installs it: `{"type": "command", "name":
//! "member_checks", "args": ["--strict"], "timeout_seconds": 10}` runs the executable
//! `member_checks` from the plugin directory (`INTAKE_PLUGIN_DIR`, default
//! `/usr/local/lib/intake/plugins`). Templates arrive over the REST API, so they can only choose
//! among installed plugins, never run a command of their own.
//!
//! The protocol, one JSON object per line:
//! - intake starts the plugin once per file and writes, for every row that passed layers 1–3,
//!   `{"row_number": 7, "locale": "sv", "row": {…the mapped row…}}` to its stdin;
//! - the plugin answers each line with one line on stdout: `{"errors": []}` for a good row, or
//!   `{"errors": [{"field": "email", "rule": "blocked_domain", "message": "…"}]}` (`field` and
//!   `rule` optional); the row is then rejected with those errors (layer `plugins`);
//! - at the end of the file intake closes stdin and the plugin exits with status 0.
//!
//! A plugin that does not answer within `timeout_seconds`, exits early, answers something that is
//! not such a line, or exits non-zero fails the file with the reason and the end of its stderr:
//! a broken plugin is a broken run, never rows rejected as if their data were wrong.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use intake_parsers::line_process::{PLUGIN_DIR_VAR, plugin_dir};

use intake_parsers::line_process::{AnswerError, LineProcess, plugin_name_problem, stderr_suffix};
use intake_parsers::plugin_registry::PluginRegistry;
use intake_parsers::{Layer, Locale, Row, RowError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest answer line read from a plugin.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How long a plugin may take to exit once its input is closed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Config of one validation plugin, as written in `validation.plugins`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PluginConfig {
    /// An executable from the plugin directory speaking JSON lines on stdin and stdout.
    Command(CommandPluginConfig),
    /// A plugin compiled into intake, by its registered name.
    Builtin(BuiltinPluginConfig),
}

/// `{"type": "builtin", "name": "compare_fields", "options": {…}}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuiltinPluginConfig {
    /// The registered name.
    pub name: String,
    /// The plugin's own options.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub options: Value,
}

/// A validation plugin compiled into intake: checks one row that passed layers 1–4.
pub trait ValidationPlugin: Send {
    /// Appends what is wrong with `row` to `errors` (layer `plugins`), in `locale`.
    fn check(&self, row: &Row, locale: Locale, errors: &mut Vec<RowError>);
}

/// Builds a [`ValidationPlugin`] from its `options`, or says what is wrong with them.
pub type ValidationPluginFactory = fn(&Value) -> Result<Box<dyn ValidationPlugin>, String>;

static REGISTRY: PluginRegistry<ValidationPluginFactory> = PluginRegistry::new(|| {
    vec![("compare_fields", crate::compare_fields::factory as ValidationPluginFactory)]
});

/// Registers a compiled-in validation plugin under `name` (replacing one of the same name), for
/// programs that embed intake's engine with their own plugins.
pub fn register_validation_plugin(name: &str, factory: ValidationPluginFactory) {
    REGISTRY.register(name, factory);
}

/// The built-in plugin `config` names, built from its options.
fn builtin(config: &BuiltinPluginConfig) -> Result<Box<dyn ValidationPlugin>, String> {
    REGISTRY.get("validation plugin", &config.name)?(&config.options)
}

/// `{"type": "command", "name": "member_checks"}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandPluginConfig {
    /// The executable's file name in the plugin directory (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Arguments passed to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// How long it may take to answer one row; default 10, at most 300.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    10
}

impl PluginConfig {
    /// Every problem with this config that shows without starting anything.
    pub fn problems(&self) -> Vec<String> {
        let config = match self {
            PluginConfig::Command(config) => config,
            PluginConfig::Builtin(config) => return builtin(config).err().into_iter().collect(),
        };
        let mut problems = Vec::new();
        problems.extend(plugin_name_problem(&config.name));
        if !(1..=300).contains(&config.timeout_seconds) {
            problems.push("timeout_seconds must be between 1 and 300".to_owned());
        }
        problems
    }
}

/// Why a plugin failed the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A built-in plugin's name or options are wrong.
    #[error("validation plugin '{name}': {problem}")]
    Builtin {
        /// The plugin.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The plugin could not be started.
    #[error(
        "validation plugin '{name}' could not be started from {path}: {error} (plugins are \
         executables in the plugin directory, set with {PLUGIN_DIR_VAR})"
    )]
    Start {
        /// The plugin.
        name: String,
        /// The executable.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The plugin did not answer in time.
    #[error(
        "validation plugin '{name}' did not answer row {row_number} within {seconds} s; it was \
         stopped{}",
        stderr_suffix(.stderr)
    )]
    Timeout {
        /// The plugin.
        name: String,
        /// The row it was given.
        row_number: u64,
        /// The limit.
        seconds: u64,
        /// The end of its stderr.
        stderr: String,
    },
    /// The plugin exited or closed its output before answering.
    #[error(
        "validation plugin '{name}' stopped before answering row {row_number} ({status}){}",
        stderr_suffix(.stderr)
    )]
    Crashed {
        /// The plugin.
        name: String,
        /// The row it was given.
        row_number: u64,
        /// How it ended.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// The plugin answered something that is not an answer line.
    #[error(
        "validation plugin '{name}' answered row {row_number} with {answer:?}, which is not \
         {{\"errors\": [...]}}: {reason}"
    )]
    BadAnswer {
        /// The plugin.
        name: String,
        /// The row it was given.
        row_number: u64,
        /// The start of the answer.
        answer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin exited with a failure at the end of the file.
    #[error("validation plugin '{name}' exited with {status} at the end of the file{}", stderr_suffix(.stderr))]
    FailedAtEnd {
        /// The plugin.
        name: String,
        /// How it ended.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
}

/// A running validation plugin, for one file.
pub struct RunningPlugin(Running);

enum Running {
    Command(CommandPlugin),
    Builtin(Box<dyn ValidationPlugin>, Locale),
}

impl RunningPlugin {
    /// Starts the plugin `config` names (a command from `dir`), with messages in `locale`.
    pub fn start(config: &PluginConfig, dir: &Path, locale: Locale) -> Result<Self, PluginError> {
        Ok(Self(match config {
            PluginConfig::Command(config) => {
                Running::Command(CommandPlugin::start(config, dir, locale)?)
            }
            PluginConfig::Builtin(config) => {
                let plugin = builtin(config).map_err(|problem| PluginError::Builtin {
                    name: config.name.clone(),
                    problem,
                })?;
                Running::Builtin(plugin, locale)
            }
        }))
    }

    /// Checks `row`; its errors are appended to `errors`. Returns whether the row is still valid.
    pub fn check(&mut self, row: &Row, errors: &mut Vec<RowError>) -> Result<bool, PluginError> {
        match &mut self.0 {
            Running::Command(plugin) => plugin.check(row, errors),
            Running::Builtin(plugin, locale) => {
                let before = errors.len();
                plugin.check(row, *locale, errors);
                Ok(errors.len() == before)
            }
        }
    }

    /// Ends the plugin: a command's input is closed and it must exit with status 0.
    pub fn finish(self) -> Result<(), PluginError> {
        match self.0 {
            Running::Command(plugin) => plugin.finish(),
            Running::Builtin(..) => Ok(()),
        }
    }
}

/// A command plugin's process.
struct CommandPlugin {
    name: String,
    process: LineProcess,
    timeout: Duration,
    locale: Locale,
    request: Vec<u8>,
}

impl CommandPlugin {
    fn start(
        config: &CommandPluginConfig,
        dir: &Path,
        locale: Locale,
    ) -> Result<Self, PluginError> {
        let path = dir.join(&config.name);
        let start_error =
            |error| PluginError::Start { name: config.name.clone(), path: path.clone(), error };
        let process = LineProcess::spawn(
            Command::new(&path).args(&config.args).env("INTAKE_PLUGIN_PROTOCOL", "1"),
            MAX_ANSWER_BYTES,
        )
        .map_err(start_error)?;
        Ok(Self {
            name: config.name.clone(),
            process,
            timeout: Duration::from_secs(config.timeout_seconds),
            locale,
            request: Vec::new(),
        })
    }

    fn check(&mut self, row: &Row, errors: &mut Vec<RowError>) -> Result<bool, PluginError> {
        let row_number = row.row_number();
        self.request.clear();
        let request = serde_json::json!({
            "row_number": row_number,
            "locale": self.locale.to_string(),
            "row": row.to_object(),
        });
        // Writing a JSON value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.request, &request);
        self.request.push(b'\n');
        let line = match self.process.ask(&self.request, self.timeout) {
            Ok(line) => String::from_utf8_lossy(&line).into_owned(),
            Err(AnswerError::Timeout(_)) => {
                return Err(PluginError::Timeout {
                    name: self.name.clone(),
                    row_number,
                    seconds: self.timeout.as_secs(),
                    stderr: self.process.stderr_tail(),
                });
            }
            Err(AnswerError::Stopped | AnswerError::Read(_)) => {
                return Err(self.crashed(row_number));
            }
        };
        let found = parse_answer(&line).map_err(|reason| PluginError::BadAnswer {
            name: self.name.clone(),
            row_number,
            answer: line.chars().take(200).collect(),
            reason,
        })?;
        let valid = found.is_empty();
        errors.extend(found);
        Ok(valid)
    }

    fn finish(mut self) -> Result<(), PluginError> {
        let status = match self.process.close(EXIT_GRACE) {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => status.to_string(),
            Err(reason) => reason,
        };
        Err(PluginError::FailedAtEnd {
            name: self.name.clone(),
            status,
            stderr: self.process.stderr_tail(),
        })
    }

    fn crashed(&mut self, row_number: u64) -> PluginError {
        // The plugin is gone or going: its exit status says how.
        self.process.kill();
        PluginError::Crashed {
            name: self.name.clone(),
            row_number,
            status: self.process.exit_status(),
            stderr: self.process.stderr_tail(),
        }
    }
}

/// The row errors of an answer line, or why it is not one.
fn parse_answer(line: &str) -> Result<Vec<RowError>, String> {
    let answer: Value = serde_json::from_str(line.trim()).map_err(|e| e.to_string())?;
    let Some(object) = answer.as_object() else { return Err("not a JSON object".into()) };
    let errors = match object.get("errors") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(errors)) => errors,
        Some(_) => return Err("`errors` is not an array".into()),
    };
    errors
        .iter()
        .map(|error| {
            let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_owned);
            let message = text("message").ok_or("an error without a `message` text")?;
            Ok(RowError {
                layer: Layer::Plugins,
                field: text("field"),
                rule: text("rule").unwrap_or_else(|| "plugin".to_owned()),
                message,
                value: error.get("value").cloned(),
            })
        })
        .collect::<Result<Vec<_>, &str>>()
        .map_err(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_row_errors_of_the_plugins_layer() {
        assert_eq!(parse_answer("{\"errors\": []}\n"), Ok(Vec::new()));
        assert_eq!(parse_answer("{}"), Ok(Vec::new()));
        let errors =
            parse_answer(r#"{"errors": [{"field": "a", "rule": "r", "message": "m", "value": 3}, {"message": "n"}]}"#)
                .expect("answer");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].layer, Layer::Plugins);
        assert_eq!((errors[0].field.as_deref(), errors[0].rule.as_str()), (Some("a"), "r"));
        assert_eq!(errors[0].value, Some(serde_json::json!(3)));
        assert_eq!((errors[1].field.as_deref(), errors[1].rule.as_str()), (None, "plugin"));
    }

    #[test]
    fn anything_else_is_a_bad_answer() {
        for bad in ["ok", "[]", r#"{"errors": "none"}"#, r#"{"errors": [{"field": "a"}]}"#] {
            assert!(parse_answer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plugin_names_cannot_leave_the_plugin_directory() {
        for (name, ok) in [
            ("licence_age", true),
            ("check-1.py", true),
            ("../x", false),
            (".hidden", false),
            ("a/b", false),
            ("", false),
        ] {
            let config = PluginConfig::Command(CommandPluginConfig {
                name: name.to_owned(),
                args: Vec::new(),
                timeout_seconds: 10,
            });
            assert_eq!(config.problems().is_empty(), ok, "{name}");
        }
    }
}
