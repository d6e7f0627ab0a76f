//! The template JSON of the mapper chain: what a template's `mapping` (and the legacy
//! `field_mapping`) says, as serde types. These types only describe; [`crate::MappingChain`]
//! checks and compiles them.
//!
//! ```json
//! "mapping": [
//!   {"type": "field_mapping", "config": {"fields": [
//!     {"target": "amount", "source": "Belopp", "cast": "decimal", "decimal_comma": true,
//!      "thousands_separator": " "},
//!     {"target": "booked_on", "source": "Datum", "cast": "date", "formats": ["%d.%m.%Y"]},
//!     {"target": "origin", "constant": "sftp"}
//!   ]}}
//! ]
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use crate::jinja::{Jinja2Config, Jinja2Field};

/// One entry of the template's `mapping` chain; the output of one mapper feeds the next.
///
/// `field_mapping` (first only), `jq`, `jinja2` and `plugin` run. `xslt` is accepted in a
/// template with any `config` (so templates written for it can be stored), but is **not
/// supported**: building a chain that contains one fails with
/// [`crate::MappingConfigError::NotSupportedYet`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", content = "config", rename_all = "snake_case")]
pub enum MapperConfig {
    /// Maps source columns to target fields, with trimming and type casts.
    FieldMapping(FieldMappingConfig),
    /// A jq program over each row, yielding the row that goes on.
    Jq(crate::jq::JqConfig),
    /// An XSLT transform (for XML sources). Not supported: parsed, refused when built.
    Xslt(Value),
    /// Target fields rendered from Jinja templates with the row as context.
    Jinja2(Jinja2Config),
    /// A compiled-in or external plugin that maps each row.
    Plugin(crate::plugin::MapperPluginConfig),
}

impl MapperConfig {
    /// The mapper's `type` as written in the template, e.g. `field_mapping` or `jq`.
    pub fn type_name(&self) -> &'static str {
        match self {
            MapperConfig::FieldMapping(_) => "field_mapping",
            MapperConfig::Jq(_) => "jq",
            MapperConfig::Xslt(_) => "xslt",
            MapperConfig::Jinja2(_) => "jinja2",
            MapperConfig::Plugin(_) => "plugin",
        }
    }
}

/// The `config` of a `field_mapping` mapper.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMappingConfig {
    /// The target fields, in the order the rows will have them.
    pub fields: Vec<FieldSpec>,
    /// What happens to source columns no field reads. `false` (the default): only the mapped
    /// fields go on. `true`: every column no field uses as its `source` is passed through as a
    /// string (text exactly as read, not trimmed) under its column name, after the mapped fields.
    /// A mapped target of the same name wins over such a column.
    #[serde(default)]
    pub keep_unmapped: bool,
}

/// How one target field gets its value: from a source column (with an optional cast) or a
/// constant. Exactly one of `source` and `constant` is set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The target field's name in the row sent to the API.
    pub target: String,
    /// The source column's name (the file's header), read as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A value to put in the field on every row, as given (any JSON, `null` included); it is
    /// never trimmed or cast, so the cast options must be left out.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub constant: Option<Value>,
    /// Trim leading and trailing whitespace from the cell before anything else (default `true`).
    #[serde(default = "yes")]
    pub trim: bool,
    /// An empty cell (after trimming) becomes `null` and no cast is tried (default `true`).
    /// With `false`, an empty cell is cast like any other text (an empty string stays `""`).
    #[serde(default = "yes")]
    pub empty_as_null: bool,
    /// The type the text is cast to (default `string`).
    #[serde(default)]
    pub cast: Cast,
    /// Input formats (chrono strftime, e.g. `%d.%m.%Y`) for `date` and `datetime`, tried in order;
    /// the first that reads the whole text wins. Empty means the defaults: for `date`
    /// `["%Y-%m-%d"]`; for `datetime` `["%+", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]`,
    /// i.e. RFC 3339 with an offset or `Z` (`T` or a space between date and time), or the same
    /// without an offset; fractional seconds are optional.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<String>,
    /// For `decimal`: `,` is the decimal separator (`"1234,50"` is 1234.5) and `.` is not one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub decimal_comma: bool,
    /// For `integer` and `decimal`: a separator between groups of three digits in the integer
    /// part, e.g. `" "`, `"."`, `","` or `"\u00a0"`. Grouping is checked: `"1 234 567"` is
    /// accepted, `"1 23 4"` is not. Numbers without separators are accepted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thousands_separator: Option<String>,
    /// For `boolean`: the texts read as `true`, compared case-insensitively. Default `true`, `1`,
    /// `yes`, `y`, `ja`, `j`, `t`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_values: Option<Vec<String>>,
    /// For `boolean`: the texts read as `false`, compared case-insensitively. Default `false`,
    /// `0`, `no`, `n`, `nej`, `f`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_values: Option<Vec<String>>,
}

impl FieldSpec {
    /// A field read from `source` as a string, with the default options.
    pub fn from_column(target: impl Into<String>, source: impl Into<String>) -> Self {
        Self { source: Some(source.into()), ..Self::empty(target.into()) }
    }

    /// A field holding `value` on every row.
    pub fn constant(target: impl Into<String>, value: Value) -> Self {
        Self { constant: Some(value), ..Self::empty(target.into()) }
    }

    fn empty(target: String) -> Self {
        Self {
            target,
            source: None,
            constant: None,
            trim: true,
            empty_as_null: true,
            cast: Cast::String,
            formats: Vec::new(),
            decimal_comma: false,
            thousands_separator: None,
            true_values: None,
            false_values: None,
        }
    }
}

/// The JSON type a source text is cast to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cast {
    /// The text as a JSON string.
    #[default]
    String,
    /// A JSON integer (64-bit signed): optional `+`/`-`, digits, optional thousands separators.
    /// `"1.0"`, `"1e3"` and values outside the 64-bit range are errors.
    Integer,
    /// A JSON number: optional sign, digits, optional decimal separator and fraction (`".5"` is
    /// accepted, `"5."` is not; no exponent). A value a JSON number (a 64-bit float) cannot hold
    /// exactly — too many significant digits — is an error, never silently rounded.
    Decimal,
    /// `true` or `false`, from `true_values` / `false_values`.
    Boolean,
    /// An ISO date string `YYYY-MM-DD`, read with `formats`.
    Date,
    /// A date and time string, read with `formats`: RFC 3339 (`2026-02-15T10:30:00+01:00`) when
    /// the input had an offset, otherwise `YYYY-MM-DDTHH:MM:SS` without one (local time as
    /// given). Fractional seconds are kept (3, 6 or 9 digits) when present.
    Datetime,
}

impl Cast {
    /// The cast's name as written in the template.
    pub fn as_str(self) -> &'static str {
        match self {
            Cast::String => "string",
            Cast::Integer => "integer",
            Cast::Decimal => "decimal",
            Cast::Boolean => "boolean",
            Cast::Date => "date",
            Cast::Datetime => "datetime",
        }
    }
}

fn yes() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Keeps an explicit `"constant": null` as `Some(Value::Null)` rather than "no constant".
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_spec_reads_with_its_defaults() {
        let spec: FieldSpec =
            serde_json::from_value(json!({"target": "a", "source": "A"})).expect("no error");
        assert_eq!(spec, FieldSpec::from_column("a", "A"));
        assert!(spec.trim && spec.empty_as_null);
        assert_eq!(spec.cast, Cast::String);
    }

    #[test]
    fn an_explicit_null_constant_is_a_constant() {
        let spec: FieldSpec =
            serde_json::from_value(json!({"target": "a", "constant": null})).expect("no error");
        assert_eq!(spec.constant, Some(Value::Null));
        let back = serde_json::to_value(&spec).expect("no error");
        assert_eq!(back["constant"], Value::Null);
        assert_eq!(serde_json::from_value::<FieldSpec>(back).expect("no error"), spec);
    }

    #[test]
    fn unknown_options_are_refused() {
        let err = serde_json::from_value::<FieldSpec>(json!({"target": "a", "sorce": "A"}));
        assert!(err.expect_err("an error").to_string().contains("sorce"));
        let err = serde_json::from_value::<FieldMappingConfig>(json!({"fields": [], "x": 1}));
        assert!(err.is_err());
    }

    #[test]
    fn the_chain_is_tagged_by_type_and_round_trips() {
        let chain = json!([
            {"type": "field_mapping", "config": {"fields": [
                {"target": "n", "source": "N", "cast": "integer", "thousands_separator": " "}
            ], "keep_unmapped": true}},
            {"type": "jq", "config": {"expression": ".a", "timeout_ms": 1000, "max_output_bytes": 10}},
            {"type": "jinja2", "config": {"fields": [{"target": "b", "template": "{{ a }}"}]}},
            {"type": "xslt", "config": null},
            {"type": "plugin", "config": {"type": "builtin", "name": "p"}}
        ]);
        let parsed: Vec<MapperConfig> = serde_json::from_value(chain.clone()).expect("no error");
        let names: Vec<_> = parsed.iter().map(MapperConfig::type_name).collect();
        assert_eq!(names, ["field_mapping", "jq", "jinja2", "xslt", "plugin"]);
        let again: Vec<MapperConfig> =
            serde_json::from_value(serde_json::to_value(&parsed).expect("no error"))
                .expect("no error");
        assert_eq!(again, parsed);
        assert!(
            serde_json::from_value::<MapperConfig>(json!({"type": "sql", "config": {}})).is_err()
        );
    }

    #[test]
    fn the_json_schema_names_every_mapper_type() {
        let schema = serde_json::to_string(&schemars::schema_for!(MapperConfig)).expect("no error");
        for name in
            ["field_mapping", "jq", "xslt", "jinja2", "plugin", "keep_unmapped", "decimal_comma"]
        {
            assert!(schema.contains(name), "{name} missing from {schema}");
        }
    }
}
