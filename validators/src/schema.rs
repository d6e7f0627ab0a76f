//! Layer 1: a JSON Schema (draft 2020-12) checked against every mapped row.
//!
//! The schema is compiled once when the template is loaded. A row is first asked the cheap
//! yes/no question; only a row that fails is walked again for its errors, which are then
//! rendered in the operator's language with the field, the keyword and the offending value.

use intake_parsers::{Layer, Locale, Row, RowError};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::Value;

use crate::row_json::{RowJson, RowNode};

/// A compiled row schema.
#[derive(Debug, Clone)]
pub struct SchemaLayer {
    validator: Validator<RowJson>,
}

impl SchemaLayer {
    /// Compiles `schema` as draft 2020-12 with `format` asserted (an integrator who writes
    /// `"format": "email"` expects it checked). References to other documents are refused: a
    /// template must be self-contained, and checking a file never touches the network.
    pub fn build(schema: &Value) -> Result<Self, String> {
        jsonschema::options_for::<RowJson>()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(schema)
            .map(|validator| Self { validator })
            .map_err(|error| {
                format!(
                    "invalid JSON Schema at {}: {error}",
                    pointer_or_root(error.schema_path().as_str())
                )
            })
    }

    /// Checks one row, appending its errors (at most `room` of them) to `errors`.
    pub fn check(&self, row: &Row, locale: Locale, room: usize, errors: &mut Vec<RowError>) {
        let instance = RowNode::Row(row);
        if self.validator.is_valid(instance) {
            return;
        }
        for error in self.validator.iter_errors(instance).take(room) {
            errors.push(row_error(&error, locale));
        }
    }
}

fn pointer_or_root(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

/// The first segment of a JSON pointer, unescaped: the row field an error is about.
fn field_of(pointer: &str) -> Option<String> {
    let first = pointer.strip_prefix('/')?.split('/').next()?;
    Some(first.replace("~1", "/").replace("~0", "~"))
}

fn row_error(error: &ValidationError<'_>, locale: Locale) -> RowError {
    let kind = error.kind();
    let instance = error.instance();
    let (rule, message) = describe(error, locale);
    let (field, value) = match kind {
        ValidationErrorKind::Required { property } => (property.as_str().map(str::to_owned), None),
        _ => (field_of(error.instance_path().as_str()), Some(instance.clone().into_owned())),
    };
    RowError { layer: Layer::Schema, field, rule: rule.to_owned(), message, value }
}

fn type_names(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(single) => single.to_string(),
        TypeKind::Multiple(set) => {
            set.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" | ")
        }
    }
}

/// The keyword that failed and a message for it in `locale`.
fn describe(error: &ValidationError<'_>, locale: Locale) -> (&'static str, String) {
    use Locale::{En, Sv};
    let kind = error.kind();
    let instance = error.instance().as_ref();
    use ValidationErrorKind as K;
    match kind {
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            (
                "required",
                match locale {
                    En => format!("the field '{name}' is required but missing or empty"),
                    Sv => format!("fältet '{name}' är obligatoriskt men saknas eller är tomt"),
                },
            )
        }
        K::Type { kind } => {
            let expected = type_names(kind);
            let found = json_type(instance);
            (
                "type",
                match locale {
                    En => format!("expected {expected}, got {found}"),
                    Sv => format!("förväntade {expected}, fick {found}"),
                },
            )
        }
        K::Pattern { pattern } => (
            "pattern",
            match locale {
                En => format!("does not match the pattern {pattern}"),
                Sv => format!("matchar inte mönstret {pattern}"),
            },
        ),
        K::MinLength { limit } => (
            "minLength",
            match locale {
                En => format!("must be at least {limit} characters long"),
                Sv => format!("måste vara minst {limit} tecken långt"),
            },
        ),
        K::MaxLength { limit } => (
            "maxLength",
            match locale {
                En => format!("must be at most {limit} characters long"),
                Sv => format!("får vara högst {limit} tecken långt"),
            },
        ),
        K::Minimum { limit } => (
            "minimum",
            match locale {
                En => format!("must be at least {limit}"),
                Sv => format!("måste vara minst {limit}"),
            },
        ),
        K::Maximum { limit } => (
            "maximum",
            match locale {
                En => format!("must be at most {limit}"),
                Sv => format!("får vara högst {limit}"),
            },
        ),
        K::ExclusiveMinimum { limit } => (
            "exclusiveMinimum",
            match locale {
                En => format!("must be greater than {limit}"),
                Sv => format!("måste vara större än {limit}"),
            },
        ),
        K::ExclusiveMaximum { limit } => (
            "exclusiveMaximum",
            match locale {
                En => format!("must be less than {limit}"),
                Sv => format!("måste vara mindre än {limit}"),
            },
        ),
        K::Enum { options } => (
            "enum",
            match locale {
                En => format!("must be one of {options}"),
                Sv => format!("måste vara ett av {options}"),
            },
        ),
        K::Constant { expected_value } => (
            "const",
            match locale {
                En => format!("must be {expected_value}"),
                Sv => format!("måste vara {expected_value}"),
            },
        ),
        K::Format { format } => (
            "format",
            match locale {
                En => format!("is not a valid {format}"),
                Sv => format!("är inte ett giltigt värde för formatet {format}"),
            },
        ),
        K::AdditionalProperties { unexpected } => (
            "additionalProperties",
            match locale {
                En => format!("unexpected field(s): {}", unexpected.join(", ")),
                Sv => format!("oväntade fält: {}", unexpected.join(", ")),
            },
        ),
        K::MultipleOf { .. } => (
            "multipleOf",
            match locale {
                En => format!("{instance} is not an allowed multiple"),
                Sv => format!("{instance} är inte en tillåten multipel"),
            },
        ),
        _ => {
            // Rarer keywords: keep the validator's own English text.
            let text = error.to_string();
            (
                "schema",
                match locale {
                    En => text,
                    Sv => format!("uppfyller inte schemat: {text}"),
                },
            )
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intake_parsers::RowShape;
    use serde_json::json;
    use std::sync::Arc;

    fn row(values: &[(&str, Value)]) -> Row {
        let shape = Arc::new(RowShape::new(values.iter().map(|(n, _)| *n)));
        let mut row = Row::new(shape);
        for (i, (_, v)) in values.iter().enumerate() {
            *row.value_mut(i).expect("slot") = v.clone();
        }
        row
    }

    fn layer() -> SchemaLayer {
        SchemaLayer::build(&json!({
            "type": "object",
            "required": ["id", "email"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "email": {"type": "string", "format": "email"},
                "name": {"type": "string", "maxLength": 5}
            }
        }))
        .expect("schema compiles")
    }

    #[test]
    fn a_valid_row_has_no_errors() {
        let mut errors = Vec::new();
        layer().check(
            &row(&[("id", json!(3)), ("email", json!("a@b.se"))]),
            Locale::En,
            10,
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn every_error_names_field_keyword_and_value() {
        let mut errors = Vec::new();
        let bad = row(&[("id", json!(0)), ("email", json!("nope")), ("name", json!("Alexandra"))]);
        layer().check(&bad, Locale::En, 10, &mut errors);
        let mut seen: Vec<_> = errors
            .iter()
            .map(|e| (e.field.clone().unwrap_or_default(), e.rule.clone(), e.value.clone()))
            .collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            seen,
            vec![
                ("email".into(), "format".into(), Some(json!("nope"))),
                ("id".into(), "minimum".into(), Some(json!(0))),
                ("name".into(), "maxLength".into(), Some(json!("Alexandra"))),
            ]
        );
        assert!(errors.iter().all(|e| e.layer == Layer::Schema));
    }

    #[test]
    fn a_null_required_field_reads_as_missing_in_swedish() {
        let shape = Arc::new(RowShape::new(["id", "email", "name"]));
        let mut errors = Vec::new();
        let mut r = Row::new(shape);
        *r.value_mut(0).expect("slot") = json!(1);
        layer().check(&r, Locale::Sv, 10, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field.as_deref(), Some("email"));
        assert_eq!(errors[0].rule, "required");
        assert!(errors[0].message.contains("obligatoriskt"), "{}", errors[0].message);
    }

    #[test]
    fn the_room_caps_the_number_of_errors() {
        let mut errors = Vec::new();
        let bad = row(&[("id", json!(0)), ("email", json!("nope")), ("name", json!("Alexandra"))]);
        layer().check(&bad, Locale::En, 2, &mut errors);
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn remote_references_and_broken_schemas_are_refused() {
        assert!(SchemaLayer::build(&json!({"$ref": "https://example.com/s.json"})).is_err());
        assert!(SchemaLayer::build(&json!({"type": "nonsense"})).is_err());
    }
}
