//! The `plugin` mapper: a row is handed to code intake does not contain — a plugin compiled into
//! intake and registered by name, or an external command — which answers with the row that goes
//! on, or with why the row is rejected.
//!
//! ```json
//! {"type": "plugin", "config": {"type": "builtin", "name": "normalize_personnummer",
//!                               "options": {"field": "personnummer"}}}
//! {"type": "plugin", "config": {"type": "command", "name": "club_codes", "args": ["--strict"],
//!                               "timeout_seconds": 10, "fields": ["club_id", "name"]}}
//! ```
//!
//! - `builtin`: a [`MapperPlugin`] from the registry ([`register_mapper_plugin`]); intake ships
//!   `normalize_personnummer`. Its `options` are checked when the template is.
//! - `command`: an executable from the plugin directory (`INTAKE_PLUGIN_DIR`, default
//!   `/usr/local/lib/intake/plugins`), started once per file, spoken to in JSON lines: intake
//!   writes `{"row_number": 7, "locale": "sv", "row": {…}}`, the plugin answers each line with
//!   `{"row": {…}}` or `{"error": "why the row is rejected"}`. A plugin that does not answer
//!   within `timeout_seconds`, answers nonsense or exits fails the file with its stderr: a broken
//!   plugin is a broken run, never rows rejected as if their data were wrong.
//! - `fields` works as for the jq mapper: the fields the answer may have, in order (default: the
//!   fields the rows came in with); any other field rejects the row, naming it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intake_parsers::Locale;
use intake_parsers::line_process::{
    AnswerError, LineProcess, PLUGIN_DIR_VAR, plugin_dir, plugin_name_problem, stderr_suffix,
};
use intake_parsers::plugin_registry::PluginRegistry;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest answer line read from a command plugin.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The `config` of a `plugin` mapper.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MapperPluginConfig {
    /// A plugin compiled into intake, by its registered name.
    Builtin(BuiltinPluginConfig),
    /// An executable from the plugin directory speaking JSON lines.
    Command(CommandPluginConfig),
}

/// `{"type": "builtin", "name": "normalize_personnummer", "options": {…}}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuiltinPluginConfig {
    /// The registered name.
    pub name: String,
    /// The plugin's own options.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub options: Value,
    /// The fields the plugin's rows may have, in order (default: the fields they came in with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// `{"type": "command", "name": "club_codes", "args": [], "timeout_seconds": 10}`.
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
    /// The fields the plugin's rows may have, in order (default: the fields they came in with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

fn default_timeout() -> u64 {
    10
}

impl MapperPluginConfig {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Builtin(config) => &config.name,
            Self::Command(config) => &config.name,
        }
    }

    /// The fields its rows may have, if listed.
    pub fn fields(&self) -> Option<&[String]> {
        match self {
            Self::Builtin(config) => config.fields.as_deref(),
            Self::Command(config) => config.fields.as_deref(),
        }
    }
}

/// A plugin compiled into intake: maps one row (an object) to the row that goes on.
pub trait MapperPlugin: Send + Sync {
    /// The row that goes on, or why `row` is rejected (in `locale`).
    fn map(&self, row: Map<String, Value>, locale: Locale) -> Result<Map<String, Value>, String>;
}

/// Builds a [`MapperPlugin`] from its `options`, or says what is wrong with them.
pub type MapperPluginFactory = fn(&Value) -> Result<Box<dyn MapperPlugin>, String>;

static REGISTRY: PluginRegistry<MapperPluginFactory> = PluginRegistry::new(|| {
    vec![("normalize_personnummer", crate::personnummer::factory as MapperPluginFactory)]
});

/// Registers a compiled-in mapper plugin under `name` (replacing one of the same name), for
/// programs that embed intake's engine with their own plugins.
pub fn register_mapper_plugin(name: &str, factory: MapperPluginFactory) {
    REGISTRY.register(name, factory);
}

/// Why a `command` mapper plugin failed the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapperPluginError {
    /// The plugin could not be started.
    #[error(
        "mapper plugin '{name}' could not be started from {path}: {error} (plugins are \
         executables in the plugin directory, set with {PLUGIN_DIR_VAR})"
    )]
    Start {
        /// The plugin.
        name: String,
        /// The executable.
        path: String,
        /// Why.
        error: String,
    },
    /// The plugin did not answer in time, stopped, or answered something that is not an answer.
    #[error("mapper plugin '{name}' failed at row {row_number}: {what}{}", stderr_suffix(.stderr))]
    Broken {
        /// The plugin.
        name: String,
        /// The row it was given.
        row_number: u64,
        /// What happened.
        what: String,
        /// The end of its stderr.
        stderr: String,
    },
}

/// A plugin mapper compiled for a chain.
pub(crate) enum CompiledPlugin {
    Builtin { name: String, plugin: Arc<dyn MapperPlugin> },
    Command(Mutex<CommandPlugin>),
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Builtin { name, .. } => write!(f, "builtin plugin {name}"),
            Self::Command(_) => write!(f, "command plugin"),
        }
    }
}

/// A command plugin: how to start it, and the process once started.
pub(crate) struct CommandPlugin {
    name: String,
    path: PathBuf,
    args: Vec<String>,
    timeout: Duration,
    process: Option<LineProcess>,
    /// Set once the plugin has failed: every later row fails the same way.
    failed: Option<MapperPluginError>,
}

/// The outcome of handing one row to a plugin.
pub(crate) enum PluginOutcome {
    /// The row that goes on.
    Row(Map<String, Value>),
    /// The plugin rejected the row, with this message.
    Rejected(String),
}

impl CompiledPlugin {
    /// Compiles `config` at `path` (e.g. `mapping[2].config`); each problem is (path, message).
    pub(crate) fn compile(
        config: &MapperPluginConfig,
        path: &str,
        problems: &mut Vec<(String, String)>,
    ) -> Option<Self> {
        if let Some(fields) = config.fields() {
            crate::row_object::check_fields(fields, &format!("{path}.fields"), problems);
        }
        match config {
            MapperPluginConfig::Builtin(config) => {
                let factory = match REGISTRY.get("mapper plugin", &config.name) {
                    Ok(factory) => factory,
                    Err(problem) => {
                        problems.push((format!("{path}.name"), problem));
                        return None;
                    }
                };
                match factory(&config.options) {
                    Ok(plugin) => {
                        Some(Self::Builtin { name: config.name.clone(), plugin: Arc::from(plugin) })
                    }
                    Err(problem) => {
                        problems.push((format!("{path}.options"), problem));
                        None
                    }
                }
            }
            MapperPluginConfig::Command(config) => {
                if let Some(problem) = plugin_name_problem(&config.name) {
                    problems.push((format!("{path}.name"), problem));
                }
                if !(1..=300).contains(&config.timeout_seconds) {
                    problems.push((
                        format!("{path}.timeout_seconds"),
                        "must be between 1 and 300".to_owned(),
                    ));
                }
                Some(Self::Command(Mutex::new(CommandPlugin {
                    name: config.name.clone(),
                    path: plugin_dir().join(&config.name),
                    args: config.args.clone(),
                    timeout: Duration::from_secs(config.timeout_seconds),
                    process: None,
                    failed: None,
                })))
            }
        }
    }

    /// Hands `row` (line `row_number`) to the plugin.
    pub(crate) fn map(
        &self,
        row_number: u64,
        row: Map<String, Value>,
        locale: Locale,
    ) -> Result<PluginOutcome, MapperPluginError> {
        match self {
            Self::Builtin { plugin, .. } => Ok(match plugin.map(row, locale) {
                Ok(row) => PluginOutcome::Row(row),
                Err(message) => PluginOutcome::Rejected(message),
            }),
            Self::Command(command) => {
                let mut command = command.lock().map_err(|_| MapperPluginError::Broken {
                    name: "?".to_owned(),
                    row_number,
                    what: "unusable after an earlier panic".to_owned(),
                    stderr: String::new(),
                })?;
                command.map(row_number, row, locale)
            }
        }
    }

    /// The plugin's name.
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Builtin { name, .. } => name.clone(),
            Self::Command(command) => {
                command.lock().map(|c| c.name.clone()).unwrap_or_else(|_| "?".to_owned())
            }
        }
    }
}

impl CommandPlugin {
    fn map(
        &mut self,
        row_number: u64,
        row: Map<String, Value>,
        locale: Locale,
    ) -> Result<PluginOutcome, MapperPluginError> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        let result = self.ask(row_number, row, locale);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
            if let Some(process) = self.process.as_mut() {
                process.kill();
            }
        }
        result
    }

    fn ask(
        &mut self,
        row_number: u64,
        row: Map<String, Value>,
        locale: Locale,
    ) -> Result<PluginOutcome, MapperPluginError> {
        if self.process.is_none() {
            let mut command = Command::new(&self.path);
            command.args(&self.args).env("INTAKE_PLUGIN_PROTOCOL", "1");
            let process = LineProcess::spawn(&mut command, MAX_ANSWER_BYTES).map_err(|error| {
                MapperPluginError::Start {
                    name: self.name.clone(),
                    path: self.path.display().to_string(),
                    error: error.to_string(),
                }
            })?;
            self.process = Some(process);
        }
        let broken = |what: String, stderr: String| MapperPluginError::Broken {
            name: self.name.clone(),
            row_number,
            what,
            stderr,
        };
        let Some(process) = self.process.as_mut() else {
            return Err(broken("not running".to_owned(), String::new()));
        };
        let request = serde_json::json!({
            "row_number": row_number,
            "locale": locale.to_string(),
            "row": row,
        });
        let mut line = serde_json::to_vec(&request).unwrap_or_default();
        line.push(b'\n');
        let answer = match process.ask(&line, self.timeout) {
            Ok(answer) => answer,
            Err(error) => {
                let what = match error {
                    AnswerError::Timeout(limit) => {
                        format!("no answer within {} s; it was stopped", limit.as_secs())
                    }
                    AnswerError::Stopped | AnswerError::Read(_) => {
                        process.kill();
                        format!("it stopped before answering ({})", process.exit_status())
                    }
                };
                return Err(broken(what, process.stderr_tail()));
            }
        };
        parse_answer(&answer).map_err(|reason| {
            let shown: String = String::from_utf8_lossy(&answer).chars().take(200).collect();
            broken(
                format!(
                    "it answered {shown:?}, which is not {{\"row\": {{…}}}} or \
                     {{\"error\": \"…\"}}: {reason}"
                ),
                String::new(),
            )
        })
    }
}

fn parse_answer(line: &[u8]) -> Result<PluginOutcome, String> {
    let answer: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let Value::Object(mut answer) = answer else { return Err("not a JSON object".to_owned()) };
    match (answer.remove("row"), answer.remove("error")) {
        (Some(Value::Object(row)), None) => Ok(PluginOutcome::Row(row)),
        (None, Some(Value::String(message))) => Ok(PluginOutcome::Rejected(message)),
        (Some(_), None) => Err("`row` is not an object".to_owned()),
        (None, Some(_)) => Err("`error` is not a text".to_owned()),
        (Some(_), Some(_)) => Err("it has both `row` and `error`".to_owned()),
        (None, None) => Err("it has neither `row` nor `error`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_a_row_or_an_error() {
        assert!(matches!(parse_answer(br#"{"row": {"a": 1}}"#), Ok(PluginOutcome::Row(_))));
        assert!(matches!(
            parse_answer(br#"{"error": "no such club"}"#),
            Ok(PluginOutcome::Rejected(m)) if m == "no such club"
        ));
        for bad in [&b"ok"[..], b"[]", br#"{"row": 1}"#, br#"{}"#, br#"{"row": {}, "error": "x"}"#]
        {
            assert!(parse_answer(bad).is_err());
        }
    }

    #[test]
    fn unknown_builtins_and_bad_names_are_template_problems() {
        let config: MapperPluginConfig =
            serde_json::from_value(serde_json::json!({"type": "builtin", "name": "nope"}))
                .expect("config");
        let mut problems = Vec::new();
        assert!(CompiledPlugin::compile(&config, "mapping[1].config", &mut problems).is_none());
        assert_eq!(problems[0].0, "mapping[1].config.name");
        assert!(problems[0].1.contains("normalize_personnummer"), "{}", problems[0].1);
        let config: MapperPluginConfig = serde_json::from_value(
            serde_json::json!({"type": "command", "name": "../x", "timeout_seconds": 0}),
        )
        .expect("config");
        let mut problems = Vec::new();
        CompiledPlugin::compile(&config, "p", &mut problems);
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["p.name", "p.timeout_seconds"]);
    }
}
