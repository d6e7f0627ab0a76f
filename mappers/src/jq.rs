//! The `jq` mapper (and `pre_transform`): a jq program (jaq) applied to each row, yielding the
//! row that goes on.
//!
//! ```json
//! {"type": "jq", "config": {
//!   "expression": "{member_no: .Medlemsnr, name: (.Förnamn + \" \" + .Efternamn)}",
//!   "fields": ["member_no", "name"]
//! }}
//! ```
//!
//! - The expression is compiled when the template is checked; a syntax error or an unknown
//!   filter is a template error with its line and column.
//! - Each row goes in as a JSON object; the expression must yield exactly one object. No output,
//!   several outputs, a non-object, or a jq error (`error("…")`, `.a + 1` on a string) rejects
//!   that row with the message.
//! - `fields` lists the fields the output may have, in order: the rows after this mapper have
//!   exactly those fields (a field the output leaves out is null). Without `fields` the rows keep
//!   the fields they came in with (for expressions such as `.name |= ascii_upcase`). A key
//!   outside them rejects the row, naming it, so no field is silently dropped.
//! - Evaluation runs in a worker process (the `intake` binary itself) with the environment
//!   cleared, an address-space limit and a time limit per row (`timeout_ms`, default 1000): an
//!   expression that loops forever, recurses without end or allocates without bound costs its
//!   row, and the worker is restarted for the next one. Output larger than `max_output_bytes`
//!   (default 1 MiB) rejects the row.
//!
//! jq has no way to read files or the network; `env`/`$ENV` see an empty environment; `input`
//! and `inputs` yield nothing (each row is evaluated alone).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CastErrorKind, FieldMappingError};

use intake_parsers::line_process::{AnswerError, LineProcess, stderr_suffix};
use intake_parsers::{Locale, Record};

/// The address space a jq worker may use before an allocation fails and it stops.
const WORKER_MEMORY_BYTES: u64 = 2 << 30;

/// The `config` of a `jq` mapper.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JqConfig {
    /// The jq program, applied to each row (an object); it must yield exactly one object.
    pub expression: String,
    /// The fields the output may have, in the order the rows will have them. Without it, the
    /// fields the rows came in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// How long one row may take, in milliseconds (default 1000, at most 60000).
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1, max = 60000))]
    pub timeout_ms: u64,
    /// The largest output for one row, in bytes of JSON (default 1 MiB).
    #[serde(default = "default_max_output_bytes")]
    #[schemars(range(min = 1))]
    pub max_output_bytes: usize,
}

fn default_timeout_ms() -> u64 {
    1000
}

fn default_max_output_bytes() -> usize {
    1 << 20
}

impl JqConfig {
    /// A config with the defaults for `expression` (used by `pre_transform`).
    pub fn for_expression(expression: &str) -> Self {
        Self {
            expression: expression.to_owned(),
            fields: None,
            timeout_ms: default_timeout_ms(),
            max_output_bytes: default_max_output_bytes(),
        }
    }

    /// Every problem with this config, each as (JSON path under `path`, message).
    pub fn problems(&self, path: &str) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Err(error) = JqProgram::compile(&self.expression) {
            problems.push((format!("{path}.expression"), error));
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            problems.push((
                format!("{path}.timeout_ms"),
                "must be between 1 and 60000 milliseconds".to_owned(),
            ));
        }
        if self.max_output_bytes == 0 {
            problems.push((format!("{path}.max_output_bytes"), "must be at least 1".to_owned()));
        }
        if let Some(fields) = &self.fields {
            crate::row_object::check_fields(fields, &format!("{path}.fields"), &mut problems);
        }
        problems
    }
}

/// Why a jq program did not turn a row into one object: the row is rejected with this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum JqRowError {
    /// The program yielded nothing (e.g. `select` filtered the row out).
    NoValue,
    /// The program yielded more than one value.
    SeveralValues,
    /// The program yielded a value that is not an object (`null`, `a string`, …).
    NotAnObject(String),
    /// The program raised an error (`error("…")`, a type error); jq's own message.
    Failed(String),
    /// The program called `halt`.
    Halted,
    /// The output was larger than the limit (bytes).
    TooLarge(usize),
    /// The program ran longer than the limit (milliseconds) and was stopped.
    Timeout(u64),
    /// The program ended its worker (out of memory, a crash); how, with its stderr.
    Crashed(String),
    /// The worker could not be started or answered something unreadable.
    Worker(String),
}

impl JqRowError {
    /// What went wrong, in `locale` (jq's own error texts are in English).
    pub fn message(&self, locale: Locale) -> String {
        use Locale::{En, Sv};
        match (self, locale) {
            (Self::NoValue, Sv) => "jq-uttrycket gav inget värde för raden".to_owned(),
            (Self::NoValue, En) => "the jq expression yielded no value for the row".to_owned(),
            (Self::SeveralValues, Sv) => "jq-uttrycket gav mer än ett värde för raden".to_owned(),
            (Self::SeveralValues, En) => {
                "the jq expression yielded more than one value for the row".to_owned()
            }
            (Self::NotAnObject(kind), Sv) => {
                format!("jq-uttrycket gav {kind} i stället för ett objekt")
            }
            (Self::NotAnObject(kind), En) => {
                format!("the jq expression yielded {kind}, not an object")
            }
            (Self::Failed(error), Sv) => format!("jq-uttrycket misslyckades: {error}"),
            (Self::Failed(error), En) => format!("the jq expression failed: {error}"),
            (Self::Halted, Sv) => "jq-uttrycket anropade halt".to_owned(),
            (Self::Halted, En) => "the jq expression called halt".to_owned(),
            (Self::TooLarge(limit), Sv) => {
                format!("jq-uttryckets resultat är större än {limit} byte")
            }
            (Self::TooLarge(limit), En) => {
                format!("the jq expression's output is larger than {limit} bytes")
            }
            (Self::Timeout(limit), Sv) => {
                format!("jq-uttrycket blev inte klart inom {limit} ms och stoppades")
            }
            (Self::Timeout(limit), En) => {
                format!("the jq expression did not finish within {limit} ms and was stopped")
            }
            (Self::Crashed(how), Sv) => format!("jq-uttrycket stoppade sin process: {how}"),
            (Self::Crashed(how), En) => format!("the jq expression ended its worker: {how}"),
            (Self::Worker(why), Sv) => format!("jq-processen fungerade inte: {why}"),
            (Self::Worker(why), En) => format!("the jq worker failed: {why}"),
        }
    }
}

/// A compiled jq program.
pub struct JqProgram {
    filter: jaq_core::Filter<data::JustLut<Val>>,
}

impl JqProgram {
    /// Compiles `code` with jq's standard library; an error says what is wrong and where
    /// (line and column).
    pub fn compile(code: &str) -> Result<Self, String> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let position = |at: &str| position_in(code, at);
        let modules = loader.load(&arena, File { code, path: () }).map_err(|errors| {
            let mut messages = Vec::new();
            for (_, error) in errors {
                match error {
                    jaq_core::load::Error::Io(errors) => {
                        messages.extend(errors.into_iter().map(|(at, why)| {
                            format!("{}: {why} (modules cannot be loaded)", position(at))
                        }));
                    }
                    jaq_core::load::Error::Lex(errors) => {
                        messages.extend(errors.into_iter().map(|(expected, at)| {
                            let expected = match expected {
                                jaq_core::load::lex::Expect::Delim(open) => {
                                    format!("a closing delimiter for '{open}'")
                                }
                                other => other.as_str().to_owned(),
                            };
                            let found = at
                                .chars()
                                .next()
                                .map_or_else(|| "the end".to_owned(), |c| format!("'{c}'"));
                            let hint = if at.starts_with(|c: char| !c.is_ascii()) {
                                " (a name with letters like å, ä, ö is written .\"Förnamn\")"
                            } else {
                                ""
                            };
                            format!("{}: expected {expected}, found {found}{hint}", position(at))
                        }));
                    }
                    jaq_core::load::Error::Parse(errors) => {
                        messages.extend(errors.into_iter().map(|(expected, found)| {
                            let shown = if found.is_empty() { "the end" } else { found };
                            format!(
                                "{}: expected {}, found '{shown}'",
                                position(found),
                                expected.as_str()
                            )
                        }));
                    }
                }
            }
            format!("the jq expression does not parse: {}", messages.join("; "))
        })?;
        let filter = Compiler::default().with_funs(funs).compile(modules).map_err(|errors| {
            let messages: Vec<String> = errors
                .into_iter()
                .flat_map(|(_, errors)| errors)
                .map(|(name, undefined)| {
                    format!("{}: undefined {} '{name}'", position(name), undefined.as_str())
                })
                .collect();
            format!("the jq expression does not compile: {}", messages.join("; "))
        })?;
        Ok(Self { filter })
    }

    /// Runs the program on one JSON object (as bytes) and writes the one object it yields as
    /// compact JSON to `output`, which must not grow beyond `max_output_bytes`.
    pub fn run(
        &self,
        input: &[u8],
        output: &mut Vec<u8>,
        max_output_bytes: usize,
    ) -> Result<(), JqRowError> {
        let input = jaq_json::read::parse_single(input)
            .map_err(|error| JqRowError::Worker(format!("the row is not JSON: {error}")))?;
        let context = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut results = self.filter.id.run((context, input));
        let first = match results.next() {
            None => return Err(JqRowError::NoValue),
            Some(Ok(value)) => value,
            Some(Err(exception)) => return Err(exception_message(exception)),
        };
        match results.next() {
            None => {}
            Some(Ok(_)) => return Err(JqRowError::SeveralValues),
            Some(Err(exception)) => return Err(exception_message(exception)),
        }
        if !matches!(first, Val::Obj(_)) {
            return Err(JqRowError::NotAnObject(kind(&first).to_owned()));
        }
        let mut limited = LimitedWriter { output, remaining: max_output_bytes };
        jaq_json::write::write(&mut limited, &jaq_json::write::Pp::default(), 0, &first)
            .map_err(|_| JqRowError::TooLarge(max_output_bytes))
    }
}

fn kind(value: &Val) -> &'static str {
    match value {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::BStr(_) | Val::TStr(_) => "a string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    }
}

fn exception_message(exception: jaq_core::Exn<Val>) -> JqRowError {
    match exception.get_err() {
        Ok(error) => JqRowError::Failed(error.to_string()),
        Err(_) => JqRowError::Halted,
    }
}

/// `line L, column C` of the slice `at` of `code` (by address; the end if it is not in `code`).
fn position_in(code: &str, at: &str) -> String {
    let offset = (at.as_ptr() as usize).wrapping_sub(code.as_ptr() as usize);
    let offset = if offset <= code.len() { offset } else { code.len() };
    let before = code.get(..offset).unwrap_or(code);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// A writer that fails once `remaining` bytes have been written.
struct LimitedWriter<'a> {
    output: &'a mut Vec<u8>,
    remaining: usize,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if bytes.len() > self.remaining {
            return Err(std::io::Error::other("output limit"));
        }
        self.remaining -= bytes.len();
        self.output.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How to start a jq worker: a program and its arguments. The `intake` binary registers itself
/// (`intake jq-worker`) at start-up with [`set_jq_worker`].
#[derive(Debug, Clone)]
pub struct JqWorkerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

static JQ_WORKER: OnceLock<JqWorkerCommand> = OnceLock::new();

/// Registers how jq workers are started, once per process; a later call is ignored.
pub fn set_jq_worker(command: JqWorkerCommand) {
    let _ = JQ_WORKER.set(command);
}

/// The registered jq worker command, if any.
pub(crate) fn jq_worker() -> Option<&'static JqWorkerCommand> {
    JQ_WORKER.get()
}

/// The jq worker's side of the protocol: serves one program until its input ends.
///
/// The first line is `{"expression": "…", "max_output_bytes": N}`; every later line is a row
/// (a JSON object) and is answered with one line, `{"ok": {…}}` or `{"error": "…"}`. A worker
/// process calls [`limit_jq_worker_memory`] first.
pub fn serve_jq_worker(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    let mut lines = input.split(b'\n');
    let Some(setup) = lines.next().transpose()? else { return Ok(()) };
    let setup: WorkerSetup = serde_json::from_slice(&setup)
        .map_err(|error| std::io::Error::other(format!("bad jq worker setup line: {error}")))?;
    let program = JqProgram::compile(&setup.expression).map_err(std::io::Error::other)?;
    let mut answer = Vec::new();
    for line in lines {
        let line = line?;
        answer.clear();
        answer.extend_from_slice(b"{\"ok\":");
        match program.run(&line, &mut answer, setup.max_output_bytes) {
            Ok(()) => answer.push(b'}'),
            Err(error) => {
                answer.clear();
                serde_json::to_writer(&mut answer, &WorkerAnswer::Error(error))
                    .map_err(std::io::Error::other)?;
            }
        }
        answer.push(b'\n');
        output.write_all(&answer)?;
        output.flush()?;
    }
    Ok(())
}

/// Limits this process's address space to what a jq worker may use, so that a runaway
/// allocation ends the worker (and only it). Best effort: where the limit cannot be set, the
/// time limit per row still bounds a runaway.
pub fn limit_jq_worker_memory() {
    let limit = rustix::process::Rlimit {
        current: Some(WORKER_MEMORY_BYTES),
        maximum: Some(WORKER_MEMORY_BYTES),
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::As, limit);
}

#[derive(Serialize, Deserialize)]
struct WorkerSetup {
    expression: String,
    max_output_bytes: usize,
}

/// A jq mapper compiled for a chain: the program's text and limits, and the worker process
/// that evaluates it (started on first use, restarted after a row that killed it).
pub(crate) struct JqEvaluator {
    setup: Vec<u8>,
    timeout: Duration,
    max_output_bytes: usize,
    command: JqWorkerCommand,
    worker: Mutex<Option<LineProcess>>,
}

impl std::fmt::Debug for JqEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JqEvaluator").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl JqEvaluator {
    /// An evaluator for `config` (already checked), run by `command`.
    pub(crate) fn new(config: &JqConfig, command: JqWorkerCommand) -> Self {
        let setup = WorkerSetup {
            expression: config.expression.clone(),
            max_output_bytes: config.max_output_bytes,
        };
        let mut line = serde_json::to_vec(&setup).unwrap_or_default();
        line.push(b'\n');
        Self {
            setup: line,
            timeout: Duration::from_millis(config.timeout_ms),
            max_output_bytes: config.max_output_bytes,
            command,
            worker: Mutex::new(None),
        }
    }

    /// Runs the program on `row`: the object it yields, or why the row is rejected.
    pub(crate) fn evaluate(
        &self,
        row: &Map<String, Value>,
    ) -> Result<Map<String, Value>, JqRowError> {
        let worker_error = |why: String| JqRowError::Worker(why);
        let mut request =
            serde_json::to_vec(row).map_err(|error| worker_error(error.to_string()))?;
        request.push(b'\n');
        let mut guard = self.worker.lock().map_err(|_| worker_error("unusable".to_owned()))?;
        if guard.is_none() {
            let mut command = Command::new(&self.command.program);
            command.args(&self.command.args).env_clear();
            let mut worker = LineProcess::spawn(&mut command, self.max_output_bytes + 64)
                .map_err(|error| worker_error(format!("it could not be started: {error}")))?;
            if worker.send(&self.setup).is_err() {
                return Err(worker_error(format!(
                    "it stopped at once{}",
                    stderr_suffix(&worker.stderr_tail())
                )));
            }
            *guard = Some(worker);
        }
        let Some(worker) = guard.as_mut() else { return Err(worker_error("none".to_owned())) };
        let answer = match worker.ask(&request, self.timeout) {
            Ok(answer) => answer,
            Err(error) => {
                let error = match error {
                    AnswerError::Timeout(limit) => {
                        JqRowError::Timeout(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX))
                    }
                    AnswerError::Stopped | AnswerError::Read(_) => {
                        worker.kill();
                        JqRowError::Crashed(format!(
                            "{}{}",
                            worker.exit_status(),
                            stderr_suffix(&worker.stderr_tail())
                        ))
                    }
                };
                // The next row gets a fresh worker.
                *guard = None;
                return Err(error);
            }
        };
        drop(guard);
        match serde_json::from_slice(&answer) {
            Ok(WorkerAnswer::Ok(object)) => Ok(object),
            Ok(WorkerAnswer::Error(error)) => Err(error),
            Err(error) => Err(worker_error(format!("its answer is not JSON: {error}"))),
        }
    }
}

/// A template's `pre_transform`: a jq expression applied to each raw record, as an object of
/// column → text, before the mapping chain reads it.
///
/// The answer must be one object whose keys are columns of the file; a column it leaves out is
/// read as an empty cell, a value that is not text is read as its JSON text (`12`, `true`),
/// `null` as an empty cell. It runs with the jq mapper's defaults (1 s per row, 1 MiB).
#[derive(Debug)]
pub struct PreTransform {
    evaluator: JqEvaluator,
}

impl PreTransform {
    /// What is wrong with `expression`, if anything (no worker needed).
    pub fn problem(expression: &str) -> Option<String> {
        JqProgram::compile(expression).err()
    }

    /// Compiles `expression` for use; needs the jq worker ([`set_jq_worker`]).
    pub fn build(expression: &str) -> Result<Self, String> {
        if let Some(problem) = Self::problem(expression) {
            return Err(problem);
        }
        let worker = jq_worker().ok_or_else(|| {
            "pre_transform runs in a jq worker process, and this program has not set one up (the \
             intake binary does)"
                .to_owned()
        })?;
        let config = JqConfig::for_expression(expression);
        Ok(Self { evaluator: JqEvaluator::new(&config, worker.clone()) })
    }

    /// Transforms `record` (of a file with `columns`) into `output`.
    pub fn apply(
        &self,
        columns: &[String],
        record: &Record,
        output: &mut Record,
    ) -> Result<(), Box<FieldMappingError>> {
        let rejected = |kind| Box::new(FieldMappingError::of_row(kind));
        let object: Map<String, Value> = columns
            .iter()
            .zip(record.cells())
            .map(|(column, cell)| (column.clone(), Value::String(cell.to_owned())))
            .collect();
        let mut answer =
            self.evaluator.evaluate(&object).map_err(|error| rejected(CastErrorKind::Jq(error)))?;
        let undeclared: Vec<String> =
            answer.keys().filter(|key| !columns.contains(key)).cloned().collect();
        if !undeclared.is_empty() {
            return Err(rejected(CastErrorKind::UndeclaredFields {
                mapper: "pre_transform",
                fields: undeclared,
                declared: columns.to_vec(),
            }));
        }
        output.clear(record.row_number());
        for column in columns {
            match answer.remove(column) {
                None | Some(Value::Null) => output.push_cell(""),
                Some(Value::String(text)) => output.push_cell(&text),
                Some(other) => output.push_cell(&other.to_string()),
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WorkerAnswer {
    Ok(Map<String, Value>),
    Error(JqRowError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &str, input: &str) -> Result<String, String> {
        let program = JqProgram::compile(code)?;
        let mut output = Vec::new();
        program.run(input.as_bytes(), &mut output, 1000).map_err(|e| e.message(Locale::En))?;
        Ok(String::from_utf8(output).expect("utf-8"))
    }

    #[test]
    fn one_object_out_per_row() {
        assert_eq!(
            run(
                r#"{no: .nr | tonumber, name: (.first + " " + .last)}"#,
                r#"{"nr":"7","first":"Åsa","last":"Öberg"}"#
            ),
            Ok(r#"{"no":7,"name":"Åsa Öberg"}"#.to_owned())
        );
        assert_eq!(
            run(".a |= ascii_upcase", r#"{"a":"x","b":1}"#),
            Ok(r#"{"a":"X","b":1}"#.into())
        );
    }

    #[test]
    fn anything_but_exactly_one_object_is_a_row_error() {
        let error = |code: &str| run(code, r#"{"a":"x"}"#).expect_err(code);
        assert!(error("empty").contains("no value"));
        assert!(error(".,.").contains("more than one"));
        assert!(error(".a").contains("a string, not an object"));
        assert!(error(r#"error("bad club")"#).contains("bad club"));
        assert!(error(".a + 1").contains("failed"));
        let long = run("{a: (.a * 2000)}", r#"{"a":"x"}"#).expect_err("too long");
        assert!(long.contains("larger than 1000 bytes"), "{long}");
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = JqProgram::compile("{a: .b,\n  c: (.d | }").err().expect("parse error");
        assert!(error.contains("line 2"), "{error}");
        let error = JqProgram::compile(".a | no_such_filter").err().expect("undefined");
        assert!(error.contains("undefined filter 'no_such_filter'"), "{error}");
        assert!(error.contains("line 1, column 6"), "{error}");
    }

    #[test]
    fn the_worker_answers_each_row() {
        let input = "{\"expression\": \"if type == \\\"object\\\" then .n |= . + 1 else . end\", \"max_output_bytes\": 100}\n{\"n\":1}\n[]\n";
        let mut output = Vec::new();
        serve_jq_worker(input.as_bytes(), &mut output).expect("serves");
        let text = String::from_utf8(output).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"ok":{"n":2}}"#);
        assert_eq!(lines[1], r#"{"error":{"kind":"not_an_object","detail":"an array"}}"#);
    }

    #[test]
    fn config_problems_have_paths() {
        let mut config = JqConfig::for_expression(".a |");
        config.timeout_ms = 0;
        config.fields = Some(vec!["a".into(), "a".into()]);
        let problems = config.problems("mapping[1].config");
        let paths: Vec<&str> = problems.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "mapping[1].config.expression",
                "mapping[1].config.timeout_ms",
                "mapping[1].config.fields[1]"
            ]
        );
    }
}
