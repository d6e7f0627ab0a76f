//! Mappers that take the whole row as a JSON object and give back a new one (`jq` and `plugin`),
//! as one step of the chain: the object goes in, the answer's keys are checked against the
//! fields the step may produce, and the next row is filled from it.

use std::sync::Arc;

use intake_parsers::{Locale, Row, RowShape};

use crate::error::{CastErrorKind, FieldMappingError};
use crate::jq::JqEvaluator;
use crate::plugin::{CompiledPlugin, MapperPluginError, PluginOutcome};

/// A `jq` or `plugin` step, with the shape of the rows it produces.
#[derive(Debug)]
pub(crate) struct ObjectStep {
    pub(crate) mapper: ObjectMapper,
    /// The rows after this step (its fields, then any `jinja2` targets after it).
    pub(crate) shape: Arc<RowShape>,
    /// How many of the shape's fields this step itself may produce (the first ones).
    pub(crate) produced: usize,
}

/// What runs the step.
#[derive(Debug)]
pub(crate) enum ObjectMapper {
    Jq(JqEvaluator),
    Plugin(CompiledPlugin),
}

impl ObjectMapper {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Jq(_) => "jq",
            Self::Plugin(_) => "plugin",
        }
    }
}

/// Checks a `fields` list at `path`: not empty, no empty or repeated names.
pub(crate) fn check_fields(fields: &[String], path: &str, problems: &mut Vec<(String, String)>) {
    if fields.is_empty() {
        problems.push((path.to_owned(), "lists no field".to_owned()));
    }
    for (index, field) in fields.iter().enumerate() {
        if field.trim().is_empty() {
            problems.push((format!("{path}[{index}]"), "is empty".to_owned()));
        } else if fields[..index].contains(field) {
            problems.push((format!("{path}[{index}]"), format!("'{field}' is listed twice")));
        }
    }
}

impl ObjectStep {
    /// Runs the step on `input`; the next row, or why this row is rejected (`Ok(Err)`), or a
    /// broken plugin that fails the file (`Err`).
    pub(crate) fn apply(
        &self,
        input: &Row,
        locale: Locale,
    ) -> Result<Result<Row, FieldMappingError>, MapperPluginError> {
        let object = input.to_object();
        let rejected = FieldMappingError::of_row;
        let answer = match &self.mapper {
            ObjectMapper::Jq(jq) => match jq.evaluate(&object) {
                Ok(answer) => answer,
                Err(error) => return Ok(Err(rejected(CastErrorKind::Jq(error)))),
            },
            ObjectMapper::Plugin(plugin) => {
                match plugin.map(input.row_number(), object, locale)? {
                    PluginOutcome::Row(answer) => answer,
                    PluginOutcome::Rejected(message) => {
                        return Ok(Err(rejected(CastErrorKind::Plugin {
                            name: plugin.name(),
                            message,
                        })));
                    }
                }
            }
        };
        let mut row = Row::new(Arc::clone(&self.shape));
        row.set_row_number(input.row_number());
        let mut undeclared = Vec::new();
        for (key, value) in answer {
            match self.shape.position(&key).filter(|&position| position < self.produced) {
                Some(position) => {
                    if let Some(slot) = row.value_mut(position) {
                        *slot = value;
                    }
                }
                None => undeclared.push(key),
            }
        }
        if !undeclared.is_empty() {
            let declared = self.shape.names()[..self.produced].to_vec();
            return Ok(Err(rejected(CastErrorKind::UndeclaredFields {
                mapper: self.mapper.type_name(),
                fields: undeclared,
                declared,
            })));
        }
        Ok(Ok(row))
    }
}
