//! The `jinja2` mapper: target fields rendered from templates (minijinja), with the row so far
//! as context.
//!
//! ```json
//! {"type": "jinja2", "config": {"fields": [
//!   {"target": "full_name", "template": "{{ first_name }} {{ last_name | upper }}"},
//!   {"target": "reference", "template": "{{ member_id | pad_left(8, '0') }}"},
//!   {"target": "fee_text", "template": "{{ fee | decimals(2) }} SEK"},
//!   {"target": "joined", "template": "{{ joined | date('%d.%m.%Y') }}"},
//!   {"target": "fee_cents", "template": "{{ (fee * 100) | round | int }}", "cast": "integer"}
//! ]}}
//! ```
//!
//! - Every field's template sees the row as the mappers before produced it (the fields of this
//!   mapper do not see each other); a field that exists is overwritten, a new one is added.
//! - The rendered text is cast like a `field_mapping` source (`cast`, default `string`); an
//!   empty text is `null` unless `empty_as_null` is `false`.
//! - Undefined names are errors (strict), so a misspelt column rejects the row instead of
//!   rendering nothing. Templates cannot read files or include other templates, and rendering is
//!   fuel-limited, so a runaway loop fails its row, not the worker.
//! - Filters beyond minijinja's built-ins: `date(format)` (an ISO date or date-time to a chrono
//!   format), `decimals(n)` (a number with exactly n decimals), `pad_left(width, fill)` and
//!   `pad_right(width, fill)` (fill defaults to a space).
//! - A syntax error is a template error with the field's path and the line.

use intake_parsers::Row;
use minijinja::value::Value as JinjaValue;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cast::CompiledCast;
use crate::config::{Cast, FieldSpec};
use crate::error::{CastErrorKind, FieldMappingError, MappingConfigError};

/// Instructions one field's rendering may take before it is stopped (minijinja fuel).
const FUEL_PER_FIELD: u64 = 100_000;

/// The `config` of a `jinja2` mapper.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Jinja2Config {
    /// The fields rendered, in order.
    pub fields: Vec<Jinja2Field>,
}

/// One rendered field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Jinja2Field {
    /// The target field.
    pub target: String,
    /// The template, e.g. `{{ first_name }} {{ last_name }}`.
    pub template: String,
    /// The type the rendered text is cast to (default `string`).
    #[serde(default)]
    pub cast: Cast,
    /// An empty rendering becomes `null` (default `true`).
    #[serde(default = "yes")]
    pub empty_as_null: bool,
}

fn yes() -> bool {
    true
}

/// A compiled `jinja2` mapper.
#[derive(Debug)]
pub(crate) struct CompiledJinja {
    env: Environment<'static>,
    fields: Vec<CompiledField>,
}

#[derive(Debug)]
struct CompiledField {
    target: String,
    /// The template's name in the environment (its path in the template).
    name: String,
    cast: CompiledCast,
    empty_as_null: bool,
}

impl CompiledJinja {
    /// Compiles the mapper at `path` (e.g. `mapping[1]`); every problem goes to `errors`.
    pub(crate) fn compile(
        config: &Jinja2Config,
        path: &str,
        errors: &mut Vec<MappingConfigError>,
    ) -> Option<Self> {
        let before = errors.len();
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL_PER_FIELD));
        env.set_recursion_limit(64);
        env.add_filter("date", date_filter);
        env.add_filter("decimals", decimals_filter);
        env.add_filter("pad_left", |value: JinjaValue, width: usize, fill: Option<String>| {
            pad(&value, width, fill, true)
        });
        env.add_filter("pad_right", |value: JinjaValue, width: usize, fill: Option<String>| {
            pad(&value, width, fill, false)
        });
        let mut fields = Vec::with_capacity(config.fields.len());
        if config.fields.is_empty() {
            errors.push(MappingConfigError::Template {
                path: format!("{path}.config.fields"),
                message: "a jinja2 mapper needs at least one field".to_owned(),
            });
        }
        for (index, field) in config.fields.iter().enumerate() {
            let field_path = format!("{path}.config.fields[{index}]");
            if field.target.trim().is_empty() {
                errors
                    .push(MappingConfigError::EmptyTarget { path: format!("{field_path}.target") });
            }
            if config.fields[..index].iter().any(|f| f.target == field.target) {
                errors.push(MappingConfigError::DuplicateTarget {
                    target: field.target.clone(),
                    paths: vec![format!("{field_path}.target")],
                });
            }
            if let Err(error) = env.add_template_owned(field_path.clone(), field.template.clone()) {
                errors.push(MappingConfigError::Template {
                    path: format!("{field_path}.template"),
                    message: describe(&error),
                });
                continue;
            }
            let spec = FieldSpec { cast: field.cast, ..FieldSpec::from_column(&field.target, "") };
            if let Some(cast) = CompiledCast::compile(&spec, &field_path, errors) {
                fields.push(CompiledField {
                    target: field.target.clone(),
                    name: field_path,
                    cast,
                    empty_as_null: field.empty_as_null,
                });
            }
        }
        (errors.len() == before).then_some(Self { env, fields })
    }

    /// The target fields, in order.
    pub(crate) fn targets(&self) -> impl Iterator<Item = &str> + '_ {
        self.fields.iter().map(|f| f.target.as_str())
    }

    /// The row so far as a template context.
    pub(crate) fn context(row: &Row) -> JinjaValue {
        JinjaValue::from_pairs(row.fields().map(|(name, value)| (name, to_jinja(value))))
    }

    /// Renders every field from `context` (the row so far, see [`CompiledJinja::context`]) into
    /// `values`, field `i` at `positions[i]`.
    pub(crate) fn apply(
        &self,
        context: &JinjaValue,
        values: &mut [Value],
        positions: &[usize],
        errors: &mut Vec<FieldMappingError>,
    ) {
        for (field, &position) in self.fields.iter().zip(positions) {
            let Some(slot) = values.get_mut(position) else { continue };
            let rendered =
                self.env.get_template(&field.name).and_then(|template| template.render(context));
            let text = match rendered {
                Ok(text) => text,
                Err(error) => {
                    *slot = Value::Null;
                    errors.push(FieldMappingError {
                        field: field.target.clone(),
                        column: None,
                        value: String::new(),
                        kind: CastErrorKind::Template { message: describe(&error) },
                    });
                    continue;
                }
            };
            if text.is_empty() && field.empty_as_null {
                *slot = Value::Null;
                continue;
            }
            if let Err(kind) = field.cast.apply(&text, slot) {
                *slot = Value::Null;
                errors.push(FieldMappingError {
                    field: field.target.clone(),
                    column: None,
                    value: text,
                    kind,
                });
            }
        }
    }
}

/// A minijinja error in one line: what, where, and why.
fn describe(error: &Error) -> String {
    let what = match error.kind() {
        ErrorKind::OutOfFuel => "the template ran too long (it was stopped)".to_owned(),
        ErrorKind::UndefinedError => "an undefined name".to_owned(),
        _ => error.kind().to_string(),
    };
    let detail = error.detail().map(|d| format!(": {d}")).unwrap_or_default();
    let line = error.line().map(|l| format!(" (line {l})")).unwrap_or_default();
    format!("{what}{detail}{line}")
}

/// A JSON value as a template value.
fn to_jinja(value: &Value) -> JinjaValue {
    match value {
        Value::Null => JinjaValue::from(()),
        Value::Bool(b) => JinjaValue::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => JinjaValue::from(i),
            (None, Some(f)) => JinjaValue::from(f),
            (None, None) => JinjaValue::from(n.to_string()),
        },
        Value::String(s) => JinjaValue::from(s.as_str()),
        Value::Array(items) => items.iter().map(to_jinja).collect(),
        Value::Object(map) => {
            JinjaValue::from_pairs(map.iter().map(|(k, v)| (k.as_str(), to_jinja(v))))
        }
    }
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// `{{ d | date('%d.%m.%Y') }}`: an ISO date (`2026-11-23`) or date-time to a chrono format.
fn date_filter(value: String, format: String) -> Result<String, Error> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let written = |result: Result<String, std::fmt::Error>| {
        result.map_err(|_| invalid(format!("'{format}' is not a valid date format")))
    };
    let render = |item: &dyn Fn(&mut String) -> std::fmt::Result| {
        let mut out = String::new();
        written(item(&mut out).map(|()| out))
    };
    use std::fmt::Write as _;
    if let Ok(date) = NaiveDate::parse_from_str(&value, "%Y-%m-%d") {
        return render(&|out| write!(out, "{}", date.format(&format)));
    }
    if let Ok(moment) = DateTime::parse_from_rfc3339(&value) {
        return render(&|out| write!(out, "{}", moment.format(&format)));
    }
    for pattern in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(moment) = NaiveDateTime::parse_from_str(&value, pattern) {
            return render(&|out| write!(out, "{}", moment.format(&format)));
        }
    }
    Err(invalid(format!("'{value}' is not an ISO date (YYYY-MM-DD) or date-time")))
}

/// `{{ x | decimals(2) }}`: a number (or numeric text) with exactly `places` decimals.
fn decimals_filter(value: JinjaValue, places: usize) -> Result<String, Error> {
    let number = match value.as_i64() {
        Some(i) => i as f64,
        None => match f64::try_from(value.clone()) {
            Ok(f) => f,
            Err(_) => value
                .as_str()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .ok_or_else(|| invalid(format!("'{value}' is not a number")))?,
        },
    };
    if places > 12 {
        return Err(invalid("decimals: at most 12 places".to_owned()));
    }
    Ok(format!("{number:.places$}"))
}

/// Pads the value's text to `width` characters with `fill` (one character, default a space).
fn pad(
    value: &JinjaValue,
    width: usize,
    fill: Option<String>,
    left: bool,
) -> Result<String, Error> {
    let text = match value.as_str() {
        Some(text) => text.to_owned(),
        None => value.to_string(),
    };
    let fill = fill.unwrap_or_else(|| " ".to_owned());
    let mut chars = fill.chars();
    let (Some(fill), None) = (chars.next(), chars.next()) else {
        return Err(invalid("the fill must be one character".to_owned()));
    };
    if width > 10_000 {
        return Err(invalid("the width may be at most 10000".to_owned()));
    }
    let missing = width.saturating_sub(text.chars().count());
    let padding: String = std::iter::repeat_n(fill, missing).collect();
    Ok(if left { format!("{padding}{text}") } else { format!("{text}{padding}") })
}

#[cfg(test)]
mod tests {
    use intake_parsers::{Locale, Record};
    use serde_json::json;

    use crate::{MapperConfig, MappingChain, MappingConfigError};

    fn chain(
        mapping: serde_json::Value,
        columns: &[&str],
    ) -> Result<MappingChain, Vec<MappingConfigError>> {
        let mapping: Vec<MapperConfig> = serde_json::from_value(mapping).expect("mapping");
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        MappingChain::build(&mapping, &[], &serde_json::Map::new(), &columns)
            .map_err(|errors| errors.iter().cloned().collect())
    }

    fn members() -> MappingChain {
        chain(
            json!([
                {"type": "field_mapping", "config": {"fields": [
                    {"target": "id", "source": "Id", "cast": "integer"},
                    {"target": "first", "source": "Förnamn"},
                    {"target": "last", "source": "Efternamn"},
                    {"target": "fee", "source": "Avgift", "cast": "decimal"},
                    {"target": "joined", "source": "Datum", "cast": "date"}
                ]}},
                {"type": "jinja2", "config": {"fields": [
                    {"target": "name", "template": "{{ first }} {{ last | upper }}"},
                    {"target": "reference", "template": "{{ id | pad_left(6, '0') }}"},
                    {"target": "fee_text", "template": "{{ fee | decimals(2) }} SEK"},
                    {"target": "joined_text", "template": "{{ joined | date('%d.%m.%Y') }}"},
                    {"target": "fee", "template": "{{ (fee * 100) | round | int }}", "cast": "integer"},
                    {"target": "note", "template": "{% if fee > 100 %}high{% endif %}"}
                ]}}
            ]),
            &["Id", "Förnamn", "Efternamn", "Avgift", "Datum"],
        )
        .expect("chain")
    }

    #[test]
    fn fields_are_rendered_with_filters_and_cast_and_new_ones_join_the_shape() {
        let chain = members();
        let mut row = chain.new_row();
        let record = Record::from_cells(3, ["7", "Åsa", "Öberg", "12.5", "2026-03-01"]);
        chain.apply(&record, &mut row).expect("maps");
        assert_eq!(
            serde_json::Value::Object(row.to_object()),
            json!({
                "id": 7, "first": "Åsa", "last": "Öberg", "fee": 1250, "joined": "2026-03-01",
                "name": "Åsa ÖBERG", "reference": "000007", "fee_text": "12.50 SEK",
                "joined_text": "01.03.2026", "note": null
            })
        );
    }

    #[test]
    fn an_undefined_name_or_a_bad_value_rejects_the_row_naming_the_field() {
        let chain = chain(
            json!([{"type": "jinja2", "config": {"fields": [
                {"target": "x", "template": "{{ Nmae }}"},
                {"target": "d", "template": "{{ Datum | date('%Y') }}"},
                {"target": "n", "template": "{{ Datum }}", "cast": "integer"}
            ]}}]),
            &["Namn", "Datum"],
        )
        .expect("chain");
        let mut row = chain.new_row();
        let errors = chain
            .apply(&Record::from_cells(2, ["Anna", "igår"]), &mut row)
            .expect_err("bad")
            .rejected();
        let found: Vec<(&str, &str)> =
            errors.iter().map(|e| (e.field.as_str(), e.rule())).collect();
        assert_eq!(found, vec![("x", "jinja2"), ("d", "jinja2"), ("n", "cast_integer")]);
        let message = errors[0].message(Locale::En);
        assert!(message.contains("undefined"), "{message}");
        assert!(
            errors[1].message(Locale::Sv).contains("'igår' is not an ISO date"),
            "{}",
            errors[1].message(Locale::Sv)
        );
        // The chain started from every column as text.
        assert_eq!(row.get("Namn"), Some(&json!("Anna")));
    }

    #[test]
    fn a_runaway_template_is_stopped_and_only_its_row_fails() {
        let chain = chain(
            json!([{"type": "jinja2", "config": {"fields": [
                {"target": "x", "template": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"}
            ]}}]),
            &["a"],
        )
        .expect("chain");
        let mut row = chain.new_row();
        let errors =
            chain.apply(&Record::from_cells(2, ["1"]), &mut row).expect_err("stopped").rejected();
        assert!(
            errors[0].message(Locale::En).contains("ran too long"),
            "{}",
            errors[0].message(Locale::En)
        );
        let mut row = chain.new_row();
        assert!(
            chain.apply(&Record::from_cells(3, ["2"]), &mut row).is_err(),
            "every row is bounded the same way"
        );
    }

    #[test]
    fn templates_cannot_reach_files() {
        let chain = chain(
            json!([{"type": "jinja2", "config": {"fields": [
                {"target": "x", "template": "{% include '/etc/passwd' %}"}
            ]}}]),
            &["a"],
        )
        .expect("chain");
        let mut row = chain.new_row();
        let errors =
            chain.apply(&Record::from_cells(2, ["1"]), &mut row).expect_err("no loader").rejected();
        assert_eq!(errors[0].rule(), "jinja2");
        assert_eq!(row.get("x"), Some(&serde_json::Value::Null));
    }

    #[test]
    fn a_syntax_error_is_a_template_error_with_its_path_and_line() {
        let errors = chain(
            json!([
                {"type": "field_mapping", "config": {"fields": [{"target": "a", "source": "a"}]}},
                {"type": "jinja2", "config": {"fields": [
                    {"target": "ok", "template": "{{ a }}"},
                    {"target": "bad", "template": "line one\n{{ a | }}"}
                ]}}
            ]),
            &["a"],
        )
        .expect_err("syntax error");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].pointer(), "/mapping/1/config/fields/1/template");
        assert!(errors[0].to_string().contains("(line 2)"), "{}", errors[0]);
    }
}
