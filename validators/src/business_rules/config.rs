//! The config of a business rule, as written in a template's `validation.business_rules`, and
//! its checks that need no rows and no API.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One business rule: a read-only look-up in the target API for every row that passed layers 1
/// and 2, tagged by `type`.
///
/// ```json
/// {"type": "exists", "resource": "clubs", "where": {"code": "club_code"}}
/// {"type": "not_exists", "resource": "players", "where": {"personnummer": "personnummer"}}
/// {"type": "exists", "resource": "licences", "where": {"number": "licence_no"},
///  "filter": {"is_void": false},
///  "compare": [{"record_field": "status", "op": "eq", "value": "active"},
///              {"record_field": "valid_until", "op": "gte", "row_field": "paid_on"}]}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusinessRuleConfig {
    /// A record matching `where` (and `filter`) must exist in `resource`; with `compare`, at
    /// least one such record must also pass every comparison. Fails with rule `exists` (no
    /// record) or `compare` (records, none passing).
    Exists(ExistsRuleConfig),
    /// No record matching `where` (and `filter`) may exist in `resource` (e.g. the person is not
    /// registered yet). Fails with rule `not_exists`.
    NotExists(NotExistsRuleConfig),
}

/// The options of an `exists` rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExistsRuleConfig {
    /// The API resource looked in, e.g. `clubs` (`GET /clubs/`). The M2M client needs its
    /// `<resource>:list` capability (requested by default).
    pub resource: String,
    /// Which records match a row: resource field → mapped row field, e.g.
    /// `{"code": "club_code"}` (a record's `code` equals the row's `club_code`); several pairs
    /// must all match. A row with a null in any of these fields skips the rule (presence is the
    /// schema's job). The row's values are sent as they are: cast them in the mapping to the
    /// type the API stores (the text `"42"` does not find the number `42`).
    #[serde(rename = "where")]
    pub where_fields: WhereFields,
    /// Extra conditions every matching record must meet, in the API's `where` syntax
    /// (`{"is_deleted": false}`, `{"season": {"$gte": 2026}}`), ANDed with the look-up. Its keys
    /// may not repeat a `where` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Map<String, Value>>,
    /// Comparisons of the found record's fields: the row passes when at least one matching
    /// record passes all of them (rule `compare` otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<Comparison>,
    /// The message shown instead of the built-in one, per language; `{resource}`, `{field}` and
    /// `{value}` are replaced. A language left out uses the other one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<RuleMessage>,
}

/// The options of a `not_exists` rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotExistsRuleConfig {
    /// The API resource looked in, e.g. `players`.
    pub resource: String,
    /// Which records match a row: resource field → mapped row field (see `exists`).
    #[serde(rename = "where")]
    pub where_fields: WhereFields,
    /// Extra conditions a record must meet to count, in the API's `where` syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Map<String, Value>>,
    /// The message shown instead of the built-in one (see `exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<RuleMessage>,
}

/// One comparison of a found record's field with a constant or with a field of the row.
///
/// Numbers compare as numbers (also a number with a text holding one), text with text character
/// by character, so `YYYY-MM-DD` dates and UTC RFC 3339 times order correctly; booleans, null,
/// lists and objects are only equal to the same value and never ordered. A record without the
/// field has `null` there. A comparison with a `row_field` that is null in the row is skipped.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// The field of the found record (dotted for a nested field: `address.city`).
    pub record_field: String,
    /// How the record's value must relate to the other side.
    pub op: CompareOp,
    /// A constant to compare with (`in` / `not_in`: a list of them). Exactly one of `value`
    /// and `row_field`.
    #[serde(default, deserialize_with = "present_value", skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A mapped field of the row to compare with. Exactly one of `value` and `row_field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_field: Option<String>,
}

/// `value: null` is a value (compare with null), not an absent one.
fn present_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Equal to one of the values of a list.
    In,
    /// Equal to none of the values of a list.
    NotIn,
}

impl CompareOp {
    /// The name used in a template.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Gt => "gt",
            CompareOp::Gte => "gte",
            CompareOp::Lt => "lt",
            CompareOp::Lte => "lte",
            CompareOp::In => "in",
            CompareOp::NotIn => "not_in",
        }
    }

    fn takes_list(self) -> bool {
        matches!(self, CompareOp::In | CompareOp::NotIn)
    }

    fn orders(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Gte | CompareOp::Lt | CompareOp::Lte)
    }
}

/// A rule's own message, per language.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleMessage {
    /// Swedish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sv: Option<String>,
    /// English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

/// The `where` of a rule: pairs of resource field and mapped row field, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhereFields(pub Vec<(String, String)>);

impl WhereFields {
    /// The pairs (resource field, row field) in the order written.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

impl Serialize for WhereFields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (resource_field, row_field) in &self.0 {
            map.serialize_entry(resource_field, row_field)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for WhereFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = WhereFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of resource field → row field name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WhereFields, A::Error> {
                let mut pairs: Vec<(String, String)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    if pairs.iter().any(|(seen, _)| *seen == key) {
                        return Err(serde::de::Error::custom(format!(
                            "the resource field `{key}` is listed twice"
                        )));
                    }
                    pairs.push((key, value));
                }
                Ok(WhereFields(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

impl JsonSchema for WhereFields {
    fn schema_name() -> Cow<'static, str> {
        "WhereFields".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "Resource field → mapped row field (at least one pair); a record \
                            matches a row when every pair is equal.",
            "additionalProperties": {"type": "string"}
        })
    }
}

/// A problem with one business rule's config, found without rows or the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct BusinessRuleConfigError {
    /// Where in the rule, as a JSON pointer relative to it (`/where`, `/compare/1/value`).
    pub path: String,
    /// What is wrong and what to do.
    pub problem: String,
}

impl BusinessRuleConfigError {
    fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { path: path.into(), problem: problem.into() }
    }
}

/// The parts both rule types share, borrowed.
pub(crate) struct RuleParts<'a> {
    pub kind: &'static str,
    pub resource: &'a str,
    pub where_fields: &'a WhereFields,
    pub filter: Option<&'a Map<String, Value>>,
    pub compare: &'a [Comparison],
    pub message: Option<&'a RuleMessage>,
}

impl BusinessRuleConfig {
    /// The rule's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            BusinessRuleConfig::Exists(_) => "exists",
            BusinessRuleConfig::NotExists(_) => "not_exists",
        }
    }

    /// The resource looked in.
    pub fn resource(&self) -> &str {
        self.parts().resource
    }

    pub(crate) fn parts(&self) -> RuleParts<'_> {
        match self {
            BusinessRuleConfig::Exists(c) => RuleParts {
                kind: "exists",
                resource: &c.resource,
                where_fields: &c.where_fields,
                filter: c.filter.as_ref(),
                compare: &c.compare,
                message: c.message.as_ref(),
            },
            BusinessRuleConfig::NotExists(c) => RuleParts {
                kind: "not_exists",
                resource: &c.resource,
                where_fields: &c.where_fields,
                filter: c.filter.as_ref(),
                compare: &[],
                message: c.message.as_ref(),
            },
        }
    }

    /// Every problem of this rule that shows without rows or the API (that the row fields exist
    /// is checked when the rule is built for the mapped rows).
    pub fn problems(&self) -> Vec<BusinessRuleConfigError> {
        let parts = self.parts();
        let mut problems = Vec::new();
        if !is_resource_name(parts.resource) {
            problems.push(BusinessRuleConfigError::new(
                "/resource",
                format!(
                    "the resource '{}' must be an API resource name such as 'clubs' (letters, \
                     digits, '_', '-', '.', segments separated by '/')",
                    parts.resource
                ),
            ));
        }
        if parts.where_fields.0.is_empty() {
            problems.push(BusinessRuleConfigError::new(
                "/where",
                "where must map at least one resource field to a row field, e.g. \
                 {\"code\": \"club_code\"}",
            ));
        }
        for (resource_field, row_field) in parts.where_fields.pairs() {
            if resource_field.is_empty() || resource_field.starts_with('$') {
                problems.push(BusinessRuleConfigError::new(
                    "/where",
                    format!(
                        "'{resource_field}' is not a resource field name (empty, or an operator)"
                    ),
                ));
            }
            if row_field.is_empty() {
                problems.push(BusinessRuleConfigError::new(
                    format!("/where/{}", pointer_escape(resource_field)),
                    "the row field name is empty",
                ));
            }
        }
        if let Some(filter) = parts.filter {
            for key in filter.keys() {
                if parts.where_fields.pairs().iter().any(|(field, _)| field == key) {
                    problems.push(BusinessRuleConfigError::new(
                        format!("/filter/{}", pointer_escape(key)),
                        format!(
                            "the filter repeats the where field '{key}': the look-up already \
                             sets it from the row"
                        ),
                    ));
                }
            }
        }
        for (index, comparison) in parts.compare.iter().enumerate() {
            problems.extend(comparison.problems().into_iter().map(|(path, problem)| {
                BusinessRuleConfigError::new(format!("/compare/{index}{path}"), problem)
            }));
        }
        if let Some(message) = parts.message {
            match (&message.sv, &message.en) {
                (None, None) => problems.push(BusinessRuleConfigError::new(
                    "/message",
                    "the message needs a text in at least one language (sv, en)",
                )),
                (sv, en) => {
                    for (language, text) in [("sv", sv), ("en", en)] {
                        if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                            problems.push(BusinessRuleConfigError::new(
                                format!("/message/{language}"),
                                "the message is empty",
                            ));
                        }
                    }
                }
            }
        }
        problems
    }
}

impl Comparison {
    /// Problems as (path relative to the comparison, text).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.record_field.is_empty() {
            problems.push(("/record_field", "the record field name is empty".to_owned()));
        }
        match (&self.value, &self.row_field) {
            (Some(_), Some(_)) | (None, None) => problems.push((
                "",
                "a comparison needs exactly one of value (a constant) and row_field (a field of \
                 the row)"
                    .to_owned(),
            )),
            (None, Some(row_field)) => {
                if row_field.is_empty() {
                    problems.push(("/row_field", "the row field name is empty".to_owned()));
                }
                if self.op.takes_list() {
                    problems.push((
                        "/op",
                        format!(
                            "op '{}' compares with a list of constants: give it as value",
                            self.op.as_str()
                        ),
                    ));
                }
            }
            (Some(value), None) => {
                if self.op.takes_list() && !value.is_array() {
                    problems.push((
                        "/value",
                        format!(
                            "op '{}' needs a list of values, e.g. [\"a\", \"b\"]",
                            self.op.as_str()
                        ),
                    ));
                }
                if self.op.orders() && !(value.is_number() || value.is_string()) {
                    problems.push((
                        "/value",
                        format!(
                            "op '{}' orders numbers or text; {value} is neither",
                            self.op.as_str()
                        ),
                    ));
                }
                if matches!(self.op, CompareOp::Eq | CompareOp::Ne)
                    && (value.is_array() || value.is_object())
                {
                    problems.push((
                        "/value",
                        format!(
                            "op '{}' compares with one value; for a list use 'in' or 'not_in'",
                            self.op.as_str()
                        ),
                    ));
                }
            }
        }
        problems
    }
}

/// `clubs`, `imports/templates`: what can follow the API's base URL.
fn is_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
}

/// A key as a JSON pointer segment.
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
