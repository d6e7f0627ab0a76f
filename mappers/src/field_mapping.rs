//! The `field_mapping` mapper: reads a record's cells by column, trims them, turns empty cells
//! into `null`, casts them, and adds constants — one target field per [`FieldSpec`].
//!
//! Column names are resolved to cell indices when the mapper is compiled for a file, so mapping
//! a row is a walk over a vector: no look-up by name, and no allocation unless a value is new
//! (string values are written into the row's existing buffers).
//!
//! The identity mapping (a template without any mapper) is this mapper with no fields and every
//! column passed through.

use std::collections::HashMap;

use intake_parsers::{Record, Row};
use serde_json::Value;

use crate::cast::{CompiledCast, set_str, set_value};
use crate::config::FieldSpec;
use crate::error::{FieldMappingError, MappingConfigError, UnknownColumn};

/// The columns of the file a chain is built for, indexed by name.
pub(crate) struct Columns<'a> {
    names: &'a [String],
    /// Per name: the first index and how many columns have that name.
    by_name: HashMap<&'a str, (usize, usize)>,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(names: &'a [String]) -> Self {
        let mut by_name: HashMap<&str, (usize, usize)> = HashMap::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            by_name.entry(name.as_str()).or_insert((index, 0)).1 += 1;
        }
        Self { names, by_name }
    }
}

/// A compiled `field_mapping`: its fields at row positions `0..fields.len()`, then the columns
/// passed through.
#[derive(Debug)]
pub(crate) struct CompiledFieldMapping {
    fields: Vec<CompiledField>,
    pass_through: Vec<PassThrough>,
}

#[derive(Debug)]
struct CompiledField {
    target: String,
    value: FieldValue,
}

#[derive(Debug)]
enum FieldValue {
    Constant(Value),
    Cell { index: usize, column: String, trim: bool, empty_as_null: bool, cast: CompiledCast },
}

/// A column copied as text under its own name.
#[derive(Debug)]
struct PassThrough {
    index: usize,
    name: String,
}

impl CompiledFieldMapping {
    /// A mapping that produces nothing (used in place of a mapper that failed to compile).
    pub(crate) fn empty() -> Self {
        Self { fields: Vec::new(), pass_through: Vec::new() }
    }

    /// Checks and compiles `fields` (at `fields_path`, e.g. `mapping[0].config.fields`) of the
    /// mapper at `mapper_path`. Without `columns` (a template checked before any file exists),
    /// sources are not resolved and nothing is passed through. Problems go to `errors`, source
    /// columns the file lacks to `unknown`.
    pub(crate) fn compile(
        fields: &[FieldSpec],
        keep_unmapped: bool,
        fields_path: &str,
        mapper_path: &str,
        columns: Option<&Columns<'_>>,
        errors: &mut Vec<MappingConfigError>,
        unknown: &mut Vec<UnknownColumn>,
    ) -> Self {
        let mut compiled = Vec::with_capacity(fields.len());
        let mut targets: HashMap<&str, Vec<String>> = HashMap::new();
        let mut target_order: Vec<&str> = Vec::new();
        for (i, spec) in fields.iter().enumerate() {
            let path = format!("{fields_path}[{i}]");
            if spec.target.is_empty() {
                errors.push(MappingConfigError::EmptyTarget { path: format!("{path}.target") });
            }
            let paths = targets.entry(spec.target.as_str()).or_default();
            if paths.is_empty() {
                target_order.push(spec.target.as_str());
            }
            paths.push(path.clone());
            if let Some(value) = compile_value(spec, &path, columns, errors, unknown) {
                compiled.push(CompiledField { target: spec.target.clone(), value });
            }
        }
        for target in target_order {
            if let Some(paths) = targets.get(target).filter(|paths| paths.len() > 1) {
                errors.push(MappingConfigError::DuplicateTarget {
                    target: target.to_owned(),
                    paths: paths.clone(),
                });
            }
        }

        let mut pass_through = Vec::new();
        if let (true, Some(columns)) = (keep_unmapped, columns) {
            let sources: Vec<&str> = fields.iter().filter_map(|f| f.source.as_deref()).collect();
            for (index, name) in columns.names.iter().enumerate() {
                if sources.contains(&name.as_str()) || targets.contains_key(name.as_str()) {
                    continue;
                }
                let (first, count) =
                    columns.by_name.get(name.as_str()).copied().unwrap_or((index, 1));
                if count > 1 {
                    if first == index {
                        errors.push(MappingConfigError::DuplicatePassThroughColumn {
                            path: mapper_path.to_owned(),
                            column: name.clone(),
                            count,
                        });
                    }
                    continue;
                }
                pass_through.push(PassThrough { index, name: name.clone() });
            }
        }
        Self { fields: compiled, pass_through }
    }

    /// The field names this mapper produces, in row order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> + '_ {
        let targets = self.fields.iter().map(|f| f.target.as_str());
        targets.chain(self.pass_through.iter().map(|p| p.name.as_str()))
    }

    /// Maps `record` into the first positions of `row`; every failed cast goes to `errors` and
    /// leaves its field `null`.
    pub(crate) fn apply(
        &self,
        record: &Record,
        row: &mut Row,
        errors: &mut Vec<FieldMappingError>,
    ) {
        for (position, field) in self.fields.iter().enumerate() {
            let Some(slot) = row.value_mut(position) else {
                continue;
            };
            match &field.value {
                FieldValue::Constant(value) => set_value(slot, value),
                FieldValue::Cell { index, column, trim, empty_as_null, cast } => {
                    // A record shorter than the header has no cell here: the field is null.
                    let Some(raw) = record.get(*index) else {
                        *slot = Value::Null;
                        continue;
                    };
                    let text = if *trim { raw.trim() } else { raw };
                    if *empty_as_null && text.is_empty() {
                        *slot = Value::Null;
                    } else if let Err(kind) = cast.apply(text, slot) {
                        *slot = Value::Null;
                        errors.push(FieldMappingError {
                            field: field.target.clone(),
                            column: Some(column.clone()),
                            value: raw.to_owned(),
                            kind,
                        });
                    }
                }
            }
        }
        let offset = self.fields.len();
        for (i, pass) in self.pass_through.iter().enumerate() {
            let Some(slot) = row.value_mut(offset + i) else {
                continue;
            };
            match record.get(pass.index) {
                Some(raw) => set_str(slot, raw),
                None => *slot = Value::Null,
            }
        }
    }
}

/// Checks where a field's value comes from and compiles it.
fn compile_value(
    spec: &FieldSpec,
    path: &str,
    columns: Option<&Columns<'_>>,
    errors: &mut Vec<MappingConfigError>,
    unknown: &mut Vec<UnknownColumn>,
) -> Option<FieldValue> {
    match (&spec.source, &spec.constant) {
        (Some(_), Some(_)) => {
            errors.push(MappingConfigError::SourceAndConstant { path: path.to_owned() });
            None
        }
        (None, None) => {
            errors.push(MappingConfigError::NoSourceOrConstant { path: path.to_owned() });
            None
        }
        (None, Some(value)) => {
            let before = errors.len();
            check_constant_options(spec, path, errors);
            (errors.len() == before).then(|| FieldValue::Constant(value.clone()))
        }
        (Some(column), None) => {
            let cast = CompiledCast::compile(spec, path, errors);
            let index = match columns {
                None => None,
                Some(columns) => match columns.by_name.get(column.as_str()) {
                    Some(&(index, 1)) => Some(index),
                    Some(&(_, count)) => {
                        errors.push(MappingConfigError::AmbiguousColumn {
                            path: format!("{path}.source"),
                            column: column.clone(),
                            count,
                        });
                        None
                    }
                    None => {
                        unknown.push(UnknownColumn {
                            column: column.clone(),
                            path: format!("{path}.source"),
                        });
                        None
                    }
                },
            };
            Some(FieldValue::Cell {
                index: index?,
                column: column.clone(),
                trim: spec.trim,
                empty_as_null: spec.empty_as_null,
                cast: cast?,
            })
        }
    }
}

/// A constant is used as given, so cast options on it are mistakes.
fn check_constant_options(spec: &FieldSpec, path: &str, errors: &mut Vec<MappingConfigError>) {
    let set = [
        ("cast", spec.cast != crate::config::Cast::String),
        ("formats", !spec.formats.is_empty()),
        ("decimal_comma", spec.decimal_comma),
        ("thousands_separator", spec.thousands_separator.is_some()),
        ("true_values", spec.true_values.is_some()),
        ("false_values", spec.false_values.is_some()),
    ];
    for (option, _) in set.into_iter().filter(|(_, is_set)| *is_set) {
        errors.push(MappingConfigError::OptionHasNoEffect {
            path: format!("{path}.{option}"),
            option,
            reason: "a `constant` is used exactly as given (write it as the JSON value you want)"
                .to_owned(),
        });
    }
}
