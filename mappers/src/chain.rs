//! The mapper chain of a template, compiled for one file: the `mapping` mappers in order (or the
//! legacy `field_mapping`, or the identity mapping), then `default_values`.

use std::collections::HashMap;
use std::sync::Arc;

use intake_parsers::{Record, Row, RowShape};
use serde_json::{Map, Value};

use crate::cast::set_value;
use crate::config::{FieldSpec, MapperConfig};
use crate::error::{FieldMappingError, MappingConfigError, MappingConfigErrors};
use crate::field_mapping::{Columns, CompiledFieldMapping};
use crate::jinja::CompiledJinja;

/// A template's mapping compiled for the columns of one file; maps each record into a [`Row`].
///
/// Build it once per file with [`MappingChain::build`], then call [`MappingChain::apply`] for
/// every record, reusing one `Row`. It is `Send + Sync`, so one chain can serve several threads.
#[derive(Debug)]
pub struct MappingChain {
    shape: Arc<RowShape>,
    /// The mapper that reads the record: the first `field_mapping`, or the identity mapping.
    first: CompiledFieldMapping,
    /// The mappers after it, in order, with the row position of each of their targets.
    later: Vec<(CompiledJinja, Vec<usize>)>,
    defaults: Vec<DefaultFill>,
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
    pub fn apply(&self, record: &Record, row: &mut Row) -> Result<(), Vec<FieldMappingError>> {
        if !Arc::ptr_eq(row.shape(), &self.shape) {
            *row = self.new_row();
        }
        row.set_row_number(record.row_number());
        let mut errors = Vec::new();
        self.first.apply(record, row, &mut errors);
        for (mapper, positions) in &self.later {
            let context = CompiledJinja::context(row);
            mapper.apply(&context, row.values_mut(), positions, &mut errors);
        }
        for fill in &self.defaults {
            if let Some(slot) = row.value_mut(fill.position)
                && (fill.always || slot.is_null())
            {
                set_value(slot, &fill.value);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
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
                    later.push(compiled);
                }
            }
            other => errors.push(MappingConfigError::NotSupportedYet {
                what: format!("the `{}` mapper", other.type_name()),
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
    let mut names: Vec<&str> = first.names().collect();
    let mut positions: HashMap<&str, usize> =
        names.iter().enumerate().map(|(position, name)| (*name, position)).collect();
    let mut later_positions = Vec::with_capacity(later.len());
    for mapper in &later {
        let mut targets = Vec::new();
        for target in mapper.targets() {
            let position = *positions.entry(target).or_insert_with(|| {
                names.push(target);
                names.len() - 1
            });
            targets.push(position);
        }
        later_positions.push(targets);
    }
    let mut defaults = Vec::with_capacity(default_values.len());
    for (name, value) in default_values {
        let (position, always) = match positions.get(name.as_str()) {
            Some(&position) => (position, false),
            None => {
                let position = names.len();
                names.push(name);
                positions.insert(name, position);
                (position, true)
            }
        };
        defaults.push(DefaultFill { position, value: value.clone(), always });
    }
    let shape = Arc::new(RowShape::new(names.iter().copied()));
    let later = later.into_iter().zip(later_positions).collect();
    Ok(MappingChain { shape, first, later, defaults })
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
        (Value::Object(row.to_object()), result.err().unwrap_or_default())
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
                {"type": "jq", "config": {"program": "."}}
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
                "not supported yet: the `jq` mapper (mapping[1])",
                "the file has no columns 'Nope' (mapping[0].config.fields[5].source), 'Missing' \
                 (field_mapping[0].source); its columns are: 'A', 'B', 'E', 'Twice', 'Twice'",
            ]
        );
        assert!(err.to_string().starts_with("the mapping cannot be used (10 problems):"));
    }

    #[test]
    fn mappers_not_supported_yet_are_refused_with_their_position() {
        for (kind, index) in [("jq", 1), ("xslt", 1), ("plugin", 1)] {
            let template = json!({"mapping": [
                {"type": "field_mapping", "config": {"fields": [{"target": "a", "source": "A"}]}},
                {"type": kind, "config": {}}
            ]});
            let err = chain_from(template, &["A"]).expect_err("an error");
            assert_eq!(
                err.errors()[0].to_string(),
                format!("not supported yet: the `{kind}` mapper (mapping[{index}])")
            );
        }
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
}
