//! The mapper chain of a template, compiled for one file: the `mapping` mappers in order (or the
//! legacy `field_mapping`, or the identity mapping), then `default_values`.

use std::collections::HashMap;
use std::sync::Arc;

use intake_parsers::{Locale, Record, Row, RowShape};
use serde_json::{Map, Value};

use crate::cast::set_value;
use crate::config::{FieldSpec, MapperConfig};
use crate::error::{FieldMappingError, MappingConfigError, MappingConfigErrors};
use crate::field_mapping::{Columns, CompiledFieldMapping};
use crate::jinja::CompiledJinja;
use crate::jq::{JqEvaluator, jq_worker};
use crate::plugin::{CompiledPlugin, MapperPluginError};
use crate::row_object::{ObjectMapper, ObjectStep};

/// Why a record was not mapped: its own data (the row is rejected), or a broken mapper plugin
/// (the file fails).
#[derive(Debug)]
pub enum MappingFailure {
    /// The record's values could not be mapped: every problem found.
    Rejected(Vec<FieldMappingError>),
    /// A `command` mapper plugin failed; no row can be mapped any more.
    Broken(MapperPluginError),
}

impl MappingFailure {
    /// The row errors of a rejected record (none for a broken plugin).
    pub fn rejected(self) -> Vec<FieldMappingError> {
        match self {
            MappingFailure::Rejected(errors) => errors,
            MappingFailure::Broken(_) => Vec::new(),
        }
    }
}

/// A template's mapping compiled for the columns of one file; maps each record into a [`Row`].
///
/// Build it once per file with [`MappingChain::build`], then call [`MappingChain::apply`] for
/// every record, reusing one `Row`. It is `Send + Sync`, so one chain can serve several threads.
#[derive(Debug)]
pub struct MappingChain {
    shape: Arc<RowShape>,
    /// The mapper that reads the record: the first `field_mapping`, or the identity mapping.
    first: CompiledFieldMapping,
    /// The rows `first` writes: `shape` itself unless a `jq` or `plugin` step follows.
    first_shape: Arc<RowShape>,
    /// The mappers after it, in order.
    later: Vec<Step>,
    defaults: Vec<DefaultFill>,
    /// The language plugins are asked to reject rows in.
    locale: Locale,
}

/// A mapper after the first.
#[derive(Debug)]
enum Step {
    /// A `jinja2` mapper, with the position of each of its targets in the current row.
    Jinja(CompiledJinja, Vec<usize>),
    /// A `jq` or `plugin` mapper, which starts a new row of its own shape.
    Object(ObjectStep),
}

/// One `default_values` entry, resolved to its position in the row.
#[derive(Debug)]
struct DefaultFill {
    position: usize,
    value: Value,
    /// The field exists only because of the default, so the chain sets it on every row.
    always: bool,
}

impl MappingChain {
    /// Compiles the chain for a file with these `columns` (its header, in order).
    ///
    /// - `mapping` runs in order: a `field_mapping` only as the first mapper (without one the
    ///   chain starts from every column as text), `jinja2` mappers anywhere; `jq`, `xslt` and
    ///   `plugin` are refused as not supported yet.
    /// - `legacy_field_mapping` is the older form of one `field_mapping` mapper; setting both it
    ///   and `mapping` is an error.
    /// - With no mapper at all the chain is the identity: every column becomes a string field of
    ///   the same name, its text kept exactly (not trimmed; an empty cell stays `""`, not null).
    /// - `default_values` are applied after the chain. A default fills a gap, never overwrites a
    ///   value from the file: it is used when the field is `null` (an empty cell, or a record
    ///   shorter than the header) or not produced by the chain at all. An empty string kept by
    ///   `empty_as_null: false` is a value, not a gap.
    ///
    /// Every problem is reported, not just the first: source columns the file lacks (all named
    /// in one error, with the file's columns), duplicate targets, bad options, unsupported
    /// mappers, each with its JSON path.
    pub fn build(
        mapping: &[MapperConfig],
        legacy_field_mapping: &[FieldSpec],
        default_values: &Map<String, Value>,
        columns: &[String],
    ) -> Result<MappingChain, MappingConfigErrors> {
        compile(mapping, legacy_field_mapping, default_values, Some(columns))
    }

    /// Checks a template's mapping before any file exists: everything [`MappingChain::build`]
    /// checks except whether the source columns exist.
    pub fn validate(
        mapping: &[MapperConfig],
        legacy_field_mapping: &[FieldSpec],
        default_values: &Map<String, Value>,
    ) -> Result<(), MappingConfigErrors> {
        compile(mapping, legacy_field_mapping, default_values, None).map(|_| ())
    }

    /// The shape of the rows this chain produces: the mapped targets in order, then the columns
    /// passed through (`keep_unmapped`, or every column for the identity mapping) in file order,
    /// then the `default_values` keys the chain does not produce, in the map's order.
    pub fn shape(&self) -> &Arc<RowShape> {
        &self.shape
    }

    /// A fresh row of this chain's shape, to pass to [`MappingChain::apply`] again and again.
    pub fn new_row(&self) -> Row {
        Row::new(Arc::clone(&self.shape))
    }

    /// Maps one record into `row`, overwriting every field, and sets the row's line number.
    ///
    /// `row` is reused across calls and should be of [`MappingChain::shape`] (the same `Arc`);
    /// a row of any other shape is replaced by a fresh one first. Every field's cast error is
    /// collected; a field whose cast failed is `null`.
    pub fn apply(&self, record: &Record, row: &mut Row) -> Result<(), MappingFailure> {
        if !Arc::ptr_eq(row.shape(), &self.shape) {
            *row = self.new_row();
        }
        let mut errors = Vec::new();
        let mut current = if Arc::ptr_eq(&self.first_shape, &self.shape) {
            std::mem::replace(row, Row::new(Arc::clone(&self.shape)))
        } else {
            Row::new(Arc::clone(&self.first_shape))
        };
        current.set_row_number(record.row_number());
        self.first.apply(record, &mut current, &mut errors);
        for step in &self.later {
            match step {
                Step::Jinja(mapper, positions) => {
                    let context = CompiledJinja::context(&current);
                    mapper.apply(&context, current.values_mut(), positions, &mut errors);
                }
                Step::Object(step) => {
                    // A row already rejected is not handed on: its errors are what to fix.
                    if !errors.is_empty() {
                        break;
                    }
                    match step.apply(&current, self.locale).map_err(MappingFailure::Broken)? {
                        Ok(next) => current = next,
                        Err(error) => {
                            errors.push(error);
                            break;
                        }
                    }
                }
            }
        }
        if Arc::ptr_eq(current.shape(), &self.shape) {
            *row = current;
        } else {
            // Rejected before the last step: the row keeps the final shape, its fields null.
            row.set_row_number(record.row_number());
            row.values_mut().iter_mut().for_each(|value| *value = Value::Null);
        }
        for fill in &self.defaults {
            if let Some(slot) = row.value_mut(fill.position)
                && (fill.always || slot.is_null())
            {
                set_value(slot, &fill.value);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(MappingFailure::Rejected(errors)) }
    }

    /// The same chain, asking plugins to reject rows in `locale` (default Swedish).
    pub fn with_locale(mut self, locale: Locale) -> Self {
        self.locale = locale;
        self
    }
}

fn compile(
    mapping: &[MapperConfig],
    legacy_field_mapping: &[FieldSpec],
    default_values: &Map<String, Value>,
    columns: Option<&[String]>,
) -> Result<MappingChain, MappingConfigErrors> {
    let mut errors = Vec::new();
    let mut unknown = Vec::new();
    let index = columns.map(Columns::new);

    let mut first = None;
    let mut later = Vec::new();
    if !mapping.is_empty() && !legacy_field_mapping.is_empty() {
        errors.push(MappingConfigError::MappingAndLegacyFieldMapping);
    }
    for (i, mapper) in mapping.iter().enumerate() {
        let path = format!("mapping[{i}]");
        match mapper {
            MapperConfig::FieldMapping(config) => {
                if i > 0 {
                    errors.push(MappingConfigError::NotSupportedYet {
                        what: "a `field_mapping` mapper after the first mapper".to_owned(),
                        path: path.clone(),
                    });
                }
                let compiled = CompiledFieldMapping::compile(
                    &config.fields,
                    config.keep_unmapped,
                    &format!("{path}.config.fields"),
                    &path,
                    if i == 0 { index.as_ref() } else { None },
                    &mut errors,
                    &mut unknown,
                );
                if i == 0 {
                    first = Some(compiled);
                }
            }
            MapperConfig::Jinja2(config) => {
                if let Some(compiled) = CompiledJinja::compile(config, &path, &mut errors) {
                    later.push(Pending::Jinja(compiled));
                }
            }
            MapperConfig::Jq(config) => {
                errors.extend(
                    config
                        .problems(&format!("{path}.config"))
                        .into_iter()
                        .map(|(path, message)| MappingConfigError::Template { path, message }),
                );
                // Checking a template needs no worker; building a chain for a file does.
                match jq_worker() {
                    Some(worker) => later.push(Pending::Object(
                        ObjectMapper::Jq(JqEvaluator::new(config, worker.clone())),
                        config.fields.clone(),
                    )),
                    None if columns.is_some() => errors.push(MappingConfigError::Template {
                        path: path.clone(),
                        message: "the jq mapper runs in a worker process, and this program has \
                                  not set one up (the intake binary does)"
                            .to_owned(),
                    }),
                    None => {}
                }
            }
            MapperConfig::Plugin(config) => {
                let mut problems = Vec::new();
                let compiled =
                    CompiledPlugin::compile(config, &format!("{path}.config"), &mut problems);
                errors.extend(
                    problems
                        .into_iter()
                        .map(|(path, message)| MappingConfigError::Template { path, message }),
                );
                if let Some(compiled) = compiled {
                    let fields = config.fields().map(<[String]>::to_vec);
                    later.push(Pending::Object(ObjectMapper::Plugin(compiled), fields));
                }
            }
            MapperConfig::Xslt(_) => errors.push(MappingConfigError::NotSupportedYet {
                what: "the `xslt` mapper (see the README: use a jq mapper on the XML records)"
                    .to_owned(),
                path,
            }),
        }
    }
    if !legacy_field_mapping.is_empty() {
        let compiled = CompiledFieldMapping::compile(
            legacy_field_mapping,
            false,
            "field_mapping",
            "field_mapping",
            index.as_ref(),
            &mut errors,
            &mut unknown,
        );
        first.get_or_insert(compiled);
    }
    if first.is_none() {
        // No mapper at all, or a chain that does not start with a field_mapping: the chain
        // starts from every column as text.
        let identity = CompiledFieldMapping::compile(
            &[],
            true,
            "mapping",
            "mapping",
            index.as_ref(),
            &mut errors,
            &mut unknown,
        );
        first = Some(identity);
    }
    if !unknown.is_empty() {
        errors.push(MappingConfigError::UnknownColumns {
            unknown,
            available: columns.unwrap_or_default().to_vec(),
        });
    }
    if !errors.is_empty() {
        return Err(MappingConfigErrors::new(errors));
    }

    let first = first.unwrap_or_else(CompiledFieldMapping::empty);
    // The rows between two `jq`/`plugin` steps share a shape: the step's fields (or the fields
    // before it), then the targets of the `jinja2` mappers up to the next such step. The
    // defaults end the last one.
    let mut segments = vec![Segment::new(first.names().map(str::to_owned))];
    let mut jinja = Vec::new();
    let mut objects = Vec::new();
    for pending in later {
        match pending {
            Pending::Jinja(mapper) => {
                let Some(segment) = segments.last_mut() else { continue };
                let targets = mapper.targets().map(|target| segment.position(target)).collect();
                jinja.push((segments.len() - 1, mapper, targets));
            }
            Pending::Object(mapper, fields) => {
                let before = segments.last().map(|s| s.names.clone()).unwrap_or_default();
                let names = fields.unwrap_or(before);
                let produced = names.len();
                segments.push(Segment::new(names));
                objects.push((segments.len() - 1, mapper, produced));
            }
        }
    }
    let mut defaults = Vec::with_capacity(default_values.len());
    if let Some(last) = segments.last_mut() {
        for (name, value) in default_values {
            let always = !last.index.contains_key(name);
            let position = last.position(name);
            defaults.push(DefaultFill { position, value: value.clone(), always });
        }
    }
    let shapes: Vec<Arc<RowShape>> =
        segments.into_iter().map(|segment| Arc::new(RowShape::new(segment.names))).collect();
    // Steps in template order: each jinja mapper belongs to a segment after the object step
    // that opened it, so ordering by (segment, kind) restores the order.
    let mut steps: Vec<(usize, u8, Step)> = Vec::new();
    for (segment, mapper, positions) in jinja {
        steps.push((segment, 1, Step::Jinja(mapper, positions)));
    }
    for (segment, mapper, produced) in objects {
        let shape = Arc::clone(&shapes[segment]);
        steps.push((segment, 0, Step::Object(ObjectStep { mapper, shape, produced })));
    }
    steps.sort_by_key(|(segment, kind, _)| (*segment, *kind));
    let shape = shapes.last().map(Arc::clone).unwrap_or_else(|| Arc::new(RowShape::new([""; 0])));
    let first_shape = shapes.first().map(Arc::clone).unwrap_or_else(|| Arc::clone(&shape));
    Ok(MappingChain {
        shape,
        first,
        first_shape,
        later: steps.into_iter().map(|(_, _, step)| step).collect(),
        defaults,
        locale: Locale::default(),
    })
}

/// A mapper after the first, before the chain's shapes are known.
enum Pending {
    Jinja(CompiledJinja),
    /// A `jq` or `plugin` mapper with the fields it may produce, if listed.
    Object(ObjectMapper, Option<Vec<String>>),
}

/// The field names of the rows of one stretch of the chain, as they are collected.
struct Segment {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Segment {
    fn new(names: impl IntoIterator<Item = String>) -> Self {
        let mut segment = Segment { names: Vec::new(), index: HashMap::new() };
        for name in names {
            segment.position(&name);
        }
        segment
    }

    /// The position of `name`, added at the end if new.
    fn position(&mut self, name: &str) -> usize {
        if let Some(&position) = self.index.get(name) {
            return position;
        }
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), self.names.len() - 1);
        self.names.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cast, FieldMappingConfig};
    use crate::error::{CastErrorKind, UnknownColumn};
    use intake_parsers::Locale;
    use serde_json::json;

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn chain_from(
        template: Value,
        file_columns: &[&str],
    ) -> Result<MappingChain, MappingConfigErrors> {
        let mapping: Vec<MapperConfig> =
            serde_json::from_value(template.get("mapping").cloned().unwrap_or(json!([])))
                .expect("no error");
        let legacy: Vec<FieldSpec> =
            serde_json::from_value(template.get("field_mapping").cloned().unwrap_or(json!([])))
                .expect("no error");
        let defaults: Map<String, Value> =
            serde_json::from_value(template.get("default_values").cloned().unwrap_or(json!({})))
                .expect("no error");
        MappingChain::build(&mapping, &legacy, &defaults, &columns(file_columns))
    }

    fn map(chain: &MappingChain, cells: &[&str]) -> (Value, Vec<FieldMappingError>) {
        let mut row = chain.new_row();
        let result = chain.apply(&Record::from_cells(2, cells), &mut row);
        assert_eq!(row.row_number(), 2);
        (
            Value::Object(row.to_object()),
            result.err().map(MappingFailure::rejected).unwrap_or_default(),
        )
    }

    fn field_mapping(fields: Value) -> Value {
        json!({"mapping": [{"type": "field_mapping", "config": {"fields": fields}}]})
    }

    #[test]
    fn a_field_mapping_trims_casts_nulls_and_adds_constants() {
        let chain = chain_from(
            field_mapping(json!([
                {"target": "id", "source": "Id", "cast": "integer"},
                {"target": "name", "source": "Namn"},
                {"target": "note", "source": "Anteckning"},
                {"target": "raw", "source": "Namn", "trim": false},
                {"target": "empty", "source": "Anteckning", "empty_as_null": false},
                {"target": "amount", "source": "Belopp", "cast": "decimal", "decimal_comma": true, "thousands_separator": " "},
                {"target": "active", "source": "Aktiv", "cast": "boolean"},
                {"target": "born", "source": "Född", "cast": "date", "formats": ["%d.%m.%Y"]},
                {"target": "origin", "constant": "sftp"},
                {"target": "tags", "constant": ["a", {"b": 1}]},
                {"target": "nothing", "constant": null}
            ])),
            &["Id", "Namn", "Anteckning", "Belopp", "Aktiv", "Född"],
        )
        .expect("no error");
        let names: Vec<&str> = chain.shape().names().iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "id", "name", "note", "raw", "empty", "amount", "active", "born", "origin", "tags",
                "nothing"
            ]
        );
        let (row, errors) =
            map(&chain, &[" 42 ", "  Anna ", "   ", "1 234,50", "JA", "01.02.1990"]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            row,
            json!({"id": 42, "name": "Anna", "note": null, "raw": "  Anna ", "empty": "",
                   "amount": 1234.5, "active": true, "born": "1990-02-01", "origin": "sftp",
                   "tags": ["a", {"b": 1}], "nothing": null})
        );
    }

    #[test]
    fn every_cast_error_of_a_row_is_collected_with_the_original_value() {
        let chain = chain_from(
            field_mapping(json!([
                {"target": "id", "source": "Id", "cast": "integer"},
                {"target": "amount", "source": "Belopp", "cast": "decimal", "decimal_comma": true},
                {"target": "day", "source": "Dag", "cast": "date"},
                {"target": "name", "source": "Namn"}
            ])),
            &["Id", "Belopp", "Dag", "Namn"],
        )
        .expect("no error");
        let (row, errors) = map(&chain, &[" 1.0 ", "12,3,4", "2026-02-30", "ok"]);
        assert_eq!(row, json!({"id": null, "amount": null, "day": null, "name": "ok"}));
        let summary: Vec<(&str, Option<&str>, &str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.column.as_deref(), e.value.as_str(), e.rule()))
            .collect();
        assert_eq!(
            summary,
            [
                ("id", Some("Id"), " 1.0 ", "cast_integer"),
                ("amount", Some("Belopp"), "12,3,4", "cast_decimal"),
                ("day", Some("Dag"), "2026-02-30", "cast_date"),
            ]
        );
        for error in &errors {
            let (sv, en) = (error.message(Locale::Sv), error.message(Locale::En));
            assert!(!sv.is_empty() && !en.is_empty());
            assert_ne!(sv, en);
        }
        assert_eq!(errors[2].kind, CastErrorKind::NoSuchDate);
        assert!(
            errors[0].message(Locale::Sv).contains("heltal")
                && errors[0].message(Locale::Sv).contains("kolumn 'Id'")
        );
        assert!(
            errors[0].message(Locale::En).contains("whole number")
                && errors[0].message(Locale::En).contains("column 'Id'")
        );
        assert!(errors[0].to_string().contains("' 1.0 '"));
    }

    #[test]
    fn the_row_is_reused_and_every_field_rewritten() {
        let chain = chain_from(
            json!({"field_mapping": [{"target": "a", "source": "A"}, {"target": "n", "source": "N", "cast": "integer"}]}),
            &["A", "N"],
        )
        .expect("no error");
        let mut row = chain.new_row();
        chain.apply(&Record::from_cells(2, ["first", "1"]), &mut row).expect("no error");
        assert!(chain.apply(&Record::from_cells(3, ["", "x"]), &mut row).is_err());
        assert_eq!(Value::Object(row.to_object()), json!({"a": null, "n": null}));
        chain.apply(&Record::from_cells(4, ["again"]), &mut row).expect("no error");
        assert_eq!(Value::Object(row.to_object()), json!({"a": "again", "n": null}));
        assert_eq!(row.row_number(), 4);

        let mut foreign = Row::new(Arc::new(RowShape::new(["x"])));
        chain.apply(&Record::from_cells(5, ["b", "2"]), &mut foreign).expect("no error");
        assert!(Arc::ptr_eq(foreign.shape(), chain.shape()));
        assert_eq!(Value::Object(foreign.to_object()), json!({"a": "b", "n": 2}));
    }

    #[test]
    fn keep_unmapped_passes_other_columns_through_as_text() {
        let template = json!({"mapping": [{"type": "field_mapping", "config": {
            "keep_unmapped": true,
            "fields": [{"target": "amount", "source": "Belopp", "cast": "integer"},
                       {"target": "Extra", "source": "Namn"}]}}]});
        let chain =
            chain_from(template, &["Namn", "Belopp", "Ort", "Extra", "Kod"]).expect("no error");
        let names: Vec<&str> = chain.shape().names().iter().map(String::as_str).collect();
        // `Extra` is a mapped target, so the column of that name is not passed through.
        assert_eq!(names, ["amount", "Extra", "Ort", "Kod"]);
        let (row, errors) = map(&chain, &["Anna", "5", " Lund ", "x", ""]);
        assert!(errors.is_empty());
        assert_eq!(row, json!({"amount": 5, "Extra": "Anna", "Ort": " Lund ", "Kod": ""}));
    }

    #[test]
    fn no_mapper_is_the_identity_and_keeps_text_exactly() {
        let chain = chain_from(json!({}), &["a", "b", "c"]).expect("no error");
        let (row, errors) = map(&chain, &[" x ", ""]);
        assert!(errors.is_empty());
        assert_eq!(row, json!({"a": " x ", "b": "", "c": null}));

        let duplicate = chain_from(json!({}), &["a", "b", "a"]).expect_err("an error");
        assert!(matches!(
            duplicate.errors(),
            [MappingConfigError::DuplicatePassThroughColumn { column, count: 2, .. }] if column == "a"
        ));
    }

    #[test]
    fn defaults_fill_gaps_and_never_overwrite_values_from_the_file() {
        let template = json!({
            "field_mapping": [{"target": "status", "source": "Status"}, {"target": "name", "source": "Namn"}],
            "default_values": {"status": "active", "category_id": "abc", "priority": 3}
        });
        let chain = chain_from(template, &["Status", "Namn"]).expect("no error");
        let names: Vec<&str> = chain.shape().names().iter().map(String::as_str).collect();
        assert_eq!(names, ["status", "name", "category_id", "priority"]);
        let (row, _) = map(&chain, &["  ", "Anna"]);
        assert_eq!(
            row,
            json!({"status": "active", "name": "Anna", "category_id": "abc", "priority": 3})
        );
        let (row, _) = map(&chain, &["closed", "Bo"]);
        assert_eq!(
            row,
            json!({"status": "closed", "name": "Bo", "category_id": "abc", "priority": 3})
        );

        let chain = chain_from(json!({"default_values": {"b": "fill", "z": 1}}), &["a", "b"])
            .expect("no error");
        let (row, _) = map(&chain, &["", ""]);
        assert_eq!(row, json!({"a": "", "b": "", "z": 1}), "an empty string is a value");
        let (row, _) = map(&chain, &["x"]);
        assert_eq!(row, json!({"a": "x", "b": "fill", "z": 1}), "a missing cell is a gap");
    }

    #[test]
    fn unknown_source_columns_are_all_named_with_the_available_ones() {
        let err = chain_from(
            field_mapping(json!([
                {"target": "a", "source": "A"},
                {"target": "b", "source": "Bee"},
                {"target": "c", "source": "C"},
                {"target": "d", "source": "Dee"}
            ])),
            &["A", "B", "C", "D"],
        )
        .expect_err("an error");
        let [MappingConfigError::UnknownColumns { unknown, available }] = err.errors() else {
            panic!("{err}");
        };
        assert_eq!(
            unknown,
            &[
                UnknownColumn {
                    column: "Bee".into(),
                    path: "mapping[0].config.fields[1].source".into()
                },
                UnknownColumn {
                    column: "Dee".into(),
                    path: "mapping[0].config.fields[3].source".into()
                },
            ]
        );
        assert_eq!(available, &columns(&["A", "B", "C", "D"]));
        assert_eq!(
            err.errors()[0].to_string(),
            "the file has no columns 'Bee' (mapping[0].config.fields[1].source), 'Dee' \
             (mapping[0].config.fields[3].source); its columns are: 'A', 'B', 'C', 'D'"
        );
    }

    #[test]
    fn every_problem_of_a_template_is_reported_at_once() {
        let template = json!({
            "mapping": [
                {"type": "field_mapping", "config": {"fields": [
                    {"target": "a", "source": "A"},
                    {"target": "a", "source": "B", "cast": "integer", "formats": ["%Y"]},
                    {"target": "", "constant": 1, "cast": "integer"},
                    {"target": "e", "source": "E", "constant": 2},
                    {"target": "f"},
                    {"target": "g", "source": "Nope"},
                    {"target": "h", "source": "Twice"}
                ]}},
                {"type": "xslt", "config": {}}
            ],
            "field_mapping": [{"target": "x", "source": "Missing"}]
        });
        let err = chain_from(template, &["A", "B", "E", "Twice", "Twice"]).expect_err("an error");
        let text: Vec<String> = err.errors().iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "both `mapping` and the legacy `field_mapping` are set: move the fields of \
                 `field_mapping` into a `field_mapping` mapper in `mapping` and remove `field_mapping`",
                "mapping[0].config.fields[1].formats: `formats` has no effect here; it is only used \
                 with cast `date` or `datetime`, this field has `integer`",
                "mapping[0].config.fields[2].target: the target field name is empty",
                "mapping[0].config.fields[2].cast: `cast` has no effect here; a `constant` is used \
                 exactly as given (write it as the JSON value you want)",
                "mapping[0].config.fields[3]: set either `source` or `constant`, not both",
                "mapping[0].config.fields[4]: set `source` (a column of the file) or `constant` (a \
                 fixed value)",
                "mapping[0].config.fields[6].source: the file has 2 columns named 'Twice', so the \
                 source is ambiguous",
                "target field 'a' is mapped more than once: mapping[0].config.fields[0], \
                 mapping[0].config.fields[1]",
                "not supported yet: the `xslt` mapper (see the README: use a jq mapper on the XML \
                 records) (mapping[1])",
                "the file has no columns 'Nope' (mapping[0].config.fields[5].source), 'Missing' \
                 (field_mapping[0].source); its columns are: 'A', 'B', 'E', 'Twice', 'Twice'",
            ]
        );
        assert!(err.to_string().starts_with("the mapping cannot be used (10 problems):"));
    }

    #[test]
    fn mappers_not_supported_yet_are_refused_with_their_position() {
        let template = json!({"mapping": [
            {"type": "field_mapping", "config": {"fields": [{"target": "a", "source": "A"}]}},
            {"type": "xslt", "config": {}}
        ]});
        let err = chain_from(template, &["A"]).expect_err("an error");
        assert!(err.errors()[0].to_string().starts_with("not supported yet: the `xslt` mapper"));
        assert_eq!(err.errors()[0].pointer(), "/mapping/1");
        let template = json!({"mapping": [
            {"type": "field_mapping", "config": {"fields": [{"target": "a", "source": "A"}]}},
            {"type": "field_mapping", "config": {"fields": [{"target": "b", "source": "a"}]}}
        ]});
        let err = chain_from(template, &["A"]).expect_err("an error");
        assert_eq!(
            err.to_string(),
            "the mapping cannot be used: not supported yet: a `field_mapping` mapper after the \
             first mapper (mapping[1])"
        );
    }

    #[test]
    fn a_template_is_validated_without_a_file() {
        let fields = vec![
            FieldSpec::from_column("a", "Whatever"),
            FieldSpec {
                cast: Cast::Date,
                formats: vec!["%Y".into()],
                ..FieldSpec::from_column("b", "B")
            },
        ];
        let mapping =
            [MapperConfig::FieldMapping(FieldMappingConfig { fields, keep_unmapped: true })];
        let err = MappingChain::validate(&mapping, &[], &Map::new()).expect_err("an error");
        assert!(matches!(err.errors(), [MappingConfigError::InvalidFormat { .. }]), "{err}");
        let ok = [MapperConfig::FieldMapping(FieldMappingConfig {
            fields: vec![FieldSpec::from_column("a", "Whatever")],
            keep_unmapped: false,
        })];
        assert!(MappingChain::validate(&ok, &[], &Map::new()).is_ok());
    }

    #[test]
    fn the_chain_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<MappingChain>();
        shareable::<MappingConfigErrors>();
        shareable::<FieldMappingError>();
    }

    fn plugin_step(fields: Option<Value>) -> Value {
        let mut config = json!({"type": "builtin", "name": "normalize_personnummer",
                                "options": {"field": "pnr", "format": "YYYYMMDD-NNNN"}});
        if let Some(fields) = fields {
            config["fields"] = fields;
        }
        json!({"type": "plugin", "config": config})
    }

    #[test]
    fn a_plugin_step_starts_rows_of_its_own_shape_and_later_mappers_build_on_it() {
        let template = json!({"mapping": [
            {"type": "field_mapping", "config": {"fields": [
                {"target": "pnr", "source": "Personnummer"},
                {"target": "name", "source": "Namn"},
                {"target": "internal", "source": "Intern"}
            ]}},
            plugin_step(Some(json!(["pnr", "name"]))),
            {"type": "jinja2", "config": {"fields": [{"target": "label", "template": "{{ name }} ({{ pnr }})"}]}}
        ], "default_values": {"status": "active"}});
        // `internal` is not among the plugin's fields: the plugin's answer has it, so the row
        // is rejected naming it, rather than the field being dropped.
        let chain = chain_from(template.clone(), &["Personnummer", "Namn", "Intern"]).expect("ok");
        let names: Vec<&str> = chain.shape().names().iter().map(String::as_str).collect();
        assert_eq!(names, ["pnr", "name", "label", "status"]);
        let (row, errors) = map(&chain, &["8112189876", "Åsa", "x"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].rule(), "undeclared_field");
        assert!(
            errors[0].message(Locale::En).contains("'internal'"),
            "{}",
            errors[0].message(Locale::En)
        );
        assert_eq!(row, json!({"pnr": null, "name": null, "label": null, "status": "active"}));

        let mut template = template;
        template["mapping"][0]["config"]["fields"].as_array_mut().expect("fields").pop();
        let chain = chain_from(template, &["Personnummer", "Namn"]).expect("ok");
        let (row, errors) = map(&chain, &["8112189876", "Åsa"]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            row,
            json!({"pnr": "19811218-9876", "name": "Åsa", "label": "Åsa (19811218-9876)",
                   "status": "active"})
        );
        let (_, errors) = map(&chain, &["811218-0000", "Bo"]);
        assert_eq!(errors[0].rule(), "plugin");
        assert!(errors[0].message(Locale::Sv).contains("normalize_personnummer"));
    }

    #[test]
    fn a_plugin_step_without_fields_keeps_the_fields_it_was_given() {
        let template = json!({"mapping": [plugin_step(None)]});
        let chain = chain_from(template, &["pnr", "Namn"]).expect("ok");
        let (row, errors) = map(&chain, &["19811218-9876", "Åsa"]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(row, json!({"pnr": "19811218-9876", "Namn": "Åsa"}));
    }

    #[test]
    fn a_row_rejected_before_a_plugin_step_is_not_handed_to_it() {
        let template = json!({"mapping": [
            {"type": "field_mapping", "config": {"fields": [
                {"target": "pnr", "source": "P"}, {"target": "n", "source": "N", "cast": "integer"}
            ]}},
            plugin_step(None)
        ]});
        let chain = chain_from(template, &["P", "N"]).expect("ok");
        let (_, errors) = map(&chain, &["not a number", "x"]);
        let rules: Vec<&str> = errors.iter().map(FieldMappingError::rule).collect();
        assert_eq!(rules, ["cast_integer"]);
    }
}
