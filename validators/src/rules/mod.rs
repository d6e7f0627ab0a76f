//! Row rules: validation layer 2, one check on one mapped field of one row.
//!
//! A template lists its rules in `validation.row_rules`; each entry is a [`RowRuleConfig`] tagged
//! by `type` (`regex`, `iban`, `bic`, `orgnr`, `personnr`, `date_range`, `one_of`, `luhn`).
//! [`RowRuleConfig::build`] checks and compiles a rule once, when the template is loaded, and
//! returns a [`RowRule`]; [`RowRule::check`] then runs on every row. A broken rule is a
//! [`Violation`]: data that becomes part of a rejected record, rendered in the operator's
//! language only when someone looks at it.
//!
//! What this module is not: presence checks and JSON types (layer 1, the row's JSON Schema),
//! checks across rows, look-ups in the platform, and normalisation (rules never change a value;
//! use the mapping for that).
//!
//! Hot-path contract: `check` does not allocate for a valid value. IBAN, BIC, organisationsnummer,
//! personnummer, Luhn and date checks are byte-level, and only the `regex` rule runs a regex.

mod bic;
mod date_range;
mod iban;
mod luhn;
mod messages;
mod one_of;
mod pattern;
mod swedish_id;
mod violation;

use std::fmt::{self, Write as _};

use serde_json::{Number, Value};

pub use bic::BicRuleConfig;
pub use date_range::DateRangeRuleConfig;
pub use iban::IbanRuleConfig;
pub use luhn::LuhnRuleConfig;
pub use one_of::OneOfRuleConfig;
pub use pattern::RegexRuleConfig;
pub use swedish_id::{OrgnrRuleConfig, PersonnrRuleConfig};
pub use violation::Violation;

use violation::{JsonType, ViolationKind};

/// Config of one row rule, as written in a template's `validation.row_rules` (JSON).
///
/// Every rule names the mapped `field` it checks. A `null` (absent) value always passes: whether
/// a field must be present is the row schema's job. Numbers are checked by their JSON text, so an
/// organisationsnummer or a card number in an integer column works; other non-text values fail
/// with a "wrong type" violation, except for `one_of`, which compares JSON values.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RowRuleConfig {
    /// The value must match a regular expression (unanchored, like JSON Schema `pattern`; Rust
    /// `regex` syntax, no look-around or back-references).
    Regex(RegexRuleConfig),
    /// The value must be an IBAN (ISO 13616) of a country in the SWIFT IBAN registry, with that
    /// country's length and valid mod-97 check digits; in capitals, compact or with single spaces
    /// between groups (`SE45 5000 0000 0583 9825 7466`).
    Iban(IbanRuleConfig),
    /// The value must be a BIC (ISO 9362, "SWIFT code") of 8 or 11 capitals and digits with an
    /// existing ISO 3166 country code (`NDEASESS`, `DEUTDEFF500`).
    Bic(BicRuleConfig),
    /// The value must be a Swedish organisationsnummer: `NNNNNN-NNNN`, 10 digits, or 12 digits
    /// with the prefix `16`; third digit 2 or more; Luhn check digit.
    Orgnr(OrgnrRuleConfig),
    /// The value must be a Swedish personnummer (or samordningsnummer, unless refused):
    /// `YYMMDD-NNNN`, `YYMMDD+NNNN`, `YYYYMMDD-NNNN` or 10/12 digits, a real birth date, Luhn
    /// check digit.
    Personnr(PersonnrRuleConfig),
    /// The value must be a date `YYYY-MM-DD` (or an RFC 3339 date-time, compared by its date)
    /// within inclusive bounds; "today" is the current UTC date.
    DateRange(DateRangeRuleConfig),
    /// The value must be one of a list of allowed JSON values (text never equals a number).
    OneOf(OneOfRuleConfig),
    /// The value must be digits (a single space or hyphen between groups allowed), at least 2,
    /// whose last is a valid Luhn (mod 10) check digit.
    Luhn(LuhnRuleConfig),
}

impl RowRuleConfig {
    /// Compile once at template load (regex compile, date bounds parse). No I/O.
    pub fn build(&self) -> Result<RowRule, RuleConfigError> {
        let field = self.field();
        if field.is_empty() {
            return Err(RuleConfigError::EmptyField { rule: self.name() });
        }
        let kind = match self {
            RowRuleConfig::Regex(config) => RuleKind::Pattern(config.build()?),
            RowRuleConfig::Iban(_) => RuleKind::Iban,
            RowRuleConfig::Bic(_) => RuleKind::Bic,
            RowRuleConfig::Orgnr(_) => RuleKind::Orgnr,
            RowRuleConfig::Personnr(config) => {
                RuleKind::Personnr { allow_samordningsnummer: config.allow_samordningsnummer }
            }
            RowRuleConfig::DateRange(config) => RuleKind::DateRange(config.build()?),
            RowRuleConfig::OneOf(config) => RuleKind::OneOf(config.build()?),
            RowRuleConfig::Luhn(_) => RuleKind::Luhn,
        };
        Ok(RowRule { field: field.to_owned(), kind })
    }

    /// The mapped field the rule checks.
    pub fn field(&self) -> &str {
        match self {
            RowRuleConfig::Regex(config) => &config.field,
            RowRuleConfig::Iban(config) => &config.field,
            RowRuleConfig::Bic(config) => &config.field,
            RowRuleConfig::Orgnr(config) => &config.field,
            RowRuleConfig::Personnr(config) => &config.field,
            RowRuleConfig::DateRange(config) => &config.field,
            RowRuleConfig::OneOf(config) => &config.field,
            RowRuleConfig::Luhn(config) => &config.field,
        }
    }

    /// The rule's name as written in the template's `type`.
    fn name(&self) -> &'static str {
        match self {
            RowRuleConfig::Regex(_) => "regex",
            RowRuleConfig::Iban(_) => "iban",
            RowRuleConfig::Bic(_) => "bic",
            RowRuleConfig::Orgnr(_) => "orgnr",
            RowRuleConfig::Personnr(_) => "personnr",
            RowRuleConfig::DateRange(_) => "date_range",
            RowRuleConfig::OneOf(_) => "one_of",
            RowRuleConfig::Luhn(_) => "luhn",
        }
    }
}

/// A row rule whose config cannot be used; says which rule and field, and what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleConfigError {
    /// The rule's `field` is an empty string.
    #[error("row rule `{rule}`: `field` is empty; name the mapped field the rule checks")]
    EmptyField {
        /// The rule's `type`.
        rule: &'static str,
    },
    /// A `regex` rule's pattern does not compile.
    #[error("row rule `regex` on field `{field}`: the pattern does not compile: {source}")]
    InvalidPattern {
        /// The field the rule checks.
        field: String,
        /// What the regex compiler said.
        source: regex::Error,
    },
    /// A `date_range` bound is neither an ISO date nor `today`, `today+Nd`, `today-Nm`, ….
    #[error(
        "row rule `date_range` on field `{field}`: `{bound}` is {value:?}: {reason}; \
         write YYYY-MM-DD, `today`, or `today` followed by +N or -N and a unit d, m or y \
         (e.g. `today+30d`, `today-1y`)"
    )]
    InvalidDateBound {
        /// The field the rule checks.
        field: String,
        /// Which bound: `min` or `max`.
        bound: &'static str,
        /// The bound as written.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `date_range` rule has neither `min` nor `max`.
    #[error("row rule `date_range` on field `{field}`: give `min`, `max` or both")]
    MissingDateBounds {
        /// The field the rule checks.
        field: String,
    },
    /// A `date_range` rule's `min` is after its `max`, so no date could pass.
    #[error(
        "row rule `date_range` on field `{field}`: `min` ({min}) is after `max` ({max}), so no \
         date could pass; swap them"
    )]
    EmptyDateRange {
        /// The field the rule checks.
        field: String,
        /// `min` as written.
        min: String,
        /// `max` as written.
        max: String,
    },
    /// A `one_of` rule has an empty `values` list, so no value could pass.
    #[error("row rule `one_of` on field `{field}`: `values` is empty, so no value could pass")]
    EmptyOneOf {
        /// The field the rule checks.
        field: String,
    },
}

/// A compiled row rule, ready to check one field of every row.
#[derive(Debug, Clone)]
pub struct RowRule {
    field: String,
    kind: RuleKind,
}

#[derive(Debug, Clone)]
enum RuleKind {
    Pattern(pattern::PatternRule),
    Iban,
    Bic,
    Orgnr,
    Personnr { allow_samordningsnummer: bool },
    DateRange(date_range::DateRangeRule),
    OneOf(one_of::OneOfRule),
    Luhn,
}

impl RowRule {
    /// The mapped field the rule checks.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The rule's name as written in the template's `type` ("iban", "date_range", ...).
    pub fn name(&self) -> &'static str {
        match self.kind {
            RuleKind::Pattern(_) => "regex",
            RuleKind::Iban => "iban",
            RuleKind::Bic => "bic",
            RuleKind::Orgnr => "orgnr",
            RuleKind::Personnr { .. } => "personnr",
            RuleKind::DateRange(_) => "date_range",
            RuleKind::OneOf(_) => "one_of",
            RuleKind::Luhn => "luhn",
        }
    }

    /// Checks one value. `null` always passes: whether a field must be present is the row
    /// schema's job (layer 1), not a row rule's.
    ///
    /// Numbers are checked by their JSON text (so `luhn` and `orgnr` work on integer columns);
    /// booleans, arrays and objects fail with a "wrong type" violation, except for `one_of`,
    /// which compares JSON values. An empty string is a value like any other: it fails every rule
    /// except a `regex` or `one_of` that allows it. A valid value costs no allocation.
    pub fn check(&self, value: &Value) -> Result<(), Violation> {
        let result = match (&self.kind, value) {
            (_, Value::Null) => Ok(()),
            (RuleKind::OneOf(rule), value) => rule.check(value),
            (kind, Value::String(text)) => kind.check_text(text),
            (kind, Value::Number(number)) => kind.check_number(number),
            (_, Value::Bool(_)) => Err(ViolationKind::WrongType { got: JsonType::Bool }),
            (_, Value::Array(_)) => Err(ViolationKind::WrongType { got: JsonType::Array }),
            (_, Value::Object(_)) => Err(ViolationKind::WrongType { got: JsonType::Object }),
        };
        result.map_err(Violation::new)
    }
}

impl RuleKind {
    fn check_text(&self, text: &str) -> Result<(), ViolationKind> {
        match self {
            RuleKind::Pattern(rule) => rule.check(text),
            RuleKind::Iban => iban::check(text),
            RuleKind::Bic => bic::check(text),
            RuleKind::Orgnr => swedish_id::check_orgnr(text),
            RuleKind::Personnr { allow_samordningsnummer } => {
                swedish_id::check_personnr(text, *allow_samordningsnummer, current_year)
            }
            RuleKind::DateRange(rule) => rule.check(text),
            // `one_of` compares JSON values and is dispatched before text is extracted; a text
            // value reaching here is compared as a JSON string all the same.
            RuleKind::OneOf(rule) => rule.check_str(text),
            RuleKind::Luhn => luhn::check(text),
        }
    }

    /// Checks a number by its JSON text, written into a stack buffer (no allocation).
    fn check_number(&self, number: &Number) -> Result<(), ViolationKind> {
        match NumberText::of(number) {
            Some(text) => self.check_text(text.as_str()),
            // Longer than any number serde_json prints; fall back to the heap.
            None => self.check_text(&number.to_string()),
        }
    }
}

/// The current year (UTC), for the one personnummer check that needs it (see `swedish_id`).
fn current_year() -> i32 {
    use chrono::Datelike;
    date_range::today_utc().year()
}

/// The JSON text of a number, on the stack.
struct NumberText {
    buf: [u8; 40],
    len: usize,
}

impl Default for NumberText {
    fn default() -> Self {
        Self { buf: [0; 40], len: 0 }
    }
}

impl NumberText {
    /// The number's JSON text; integers are written digit by digit, floats through `Display`.
    fn of(number: &Number) -> Option<Self> {
        let mut text = Self::default();
        if let Some(unsigned) = number.as_u64() {
            text.push_digits(unsigned);
        } else if let Some(signed) = number.as_i64() {
            text.buf[0] = b'-';
            text.len = 1;
            text.push_digits(signed.unsigned_abs());
        } else {
            write!(text, "{number}").ok()?;
        }
        Some(text)
    }

    /// Appends the decimal digits of `value` (at most 20, which always fit after a sign).
    fn push_digits(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        let digits = &digits[start..];
        self.buf[self.len..self.len + digits.len()].copy_from_slice(digits);
        self.len += digits.len();
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written, so the bytes are always UTF-8.
        self.buf.get(..self.len).and_then(|bytes| std::str::from_utf8(bytes).ok()).unwrap_or("")
    }
}

impl fmt::Write for NumberText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Locale;

    fn rule(config: Value) -> RowRule {
        let config: RowRuleConfig = serde_json::from_value(config).expect("config parses");
        config.build().expect("config builds")
    }

    #[test]
    fn configs_read_exactly_like_the_template_json() {
        let config: RowRuleConfig =
            serde_json::from_value(json!({"type": "iban", "field": "iban"})).expect("parses");
        assert_eq!(config, RowRuleConfig::Iban(IbanRuleConfig { field: "iban".into() }));
        assert_eq!(config.field(), "iban");

        let config: RowRuleConfig =
            serde_json::from_value(json!({"type": "personnr", "field": "pnr"})).expect("parses");
        assert_eq!(
            config,
            RowRuleConfig::Personnr(PersonnrRuleConfig {
                field: "pnr".into(),
                allow_samordningsnummer: true
            })
        );

        let config: RowRuleConfig = serde_json::from_value(json!({
            "type": "date_range", "field": "d", "min": "2020-01-01", "max": "today"
        }))
        .expect("parses");
        let back = serde_json::to_value(&config).expect("serializes");
        assert_eq!(
            back,
            json!({"type": "date_range", "field": "d", "min": "2020-01-01", "max": "today"})
        );
    }

    #[test]
    fn unknown_fields_and_unknown_types_are_refused() {
        let unknown_field = json!({"type": "iban", "field": "iban", "message": "custom"});
        assert!(serde_json::from_value::<RowRuleConfig>(unknown_field).is_err());
        let unknown_type = json!({"type": "isbn", "field": "x"});
        assert!(serde_json::from_value::<RowRuleConfig>(unknown_type).is_err());
        let missing_field = json!({"type": "luhn"});
        assert!(serde_json::from_value::<RowRuleConfig>(missing_field).is_err());
    }

    #[test]
    fn an_empty_field_name_is_a_config_error() {
        let config = RowRuleConfig::Luhn(LuhnRuleConfig { field: String::new() });
        let error = config.build().expect_err("empty field");
        assert_eq!(error, RuleConfigError::EmptyField { rule: "luhn" });
        assert!(error.to_string().contains("luhn"));
    }

    #[test]
    fn names_and_fields_match_the_template() {
        let cases = [
            (json!({"type": "regex", "field": "a", "pattern": "x"}), "regex"),
            (json!({"type": "iban", "field": "a"}), "iban"),
            (json!({"type": "bic", "field": "a"}), "bic"),
            (json!({"type": "orgnr", "field": "a"}), "orgnr"),
            (json!({"type": "personnr", "field": "a"}), "personnr"),
            (json!({"type": "date_range", "field": "a", "min": "2020-01-01"}), "date_range"),
            (json!({"type": "one_of", "field": "a", "values": [1]}), "one_of"),
            (json!({"type": "luhn", "field": "a"}), "luhn"),
        ];
        for (config, name) in cases {
            let built = rule(config.clone());
            assert_eq!(built.name(), name);
            assert_eq!(built.field(), "a");
            assert_eq!(config["type"], name);
        }
    }

    #[test]
    fn null_always_passes() {
        for config in [
            json!({"type": "regex", "field": "a", "pattern": "^x$"}),
            json!({"type": "iban", "field": "a"}),
            json!({"type": "bic", "field": "a"}),
            json!({"type": "orgnr", "field": "a"}),
            json!({"type": "personnr", "field": "a"}),
            json!({"type": "date_range", "field": "a", "min": "2020-01-01"}),
            json!({"type": "one_of", "field": "a", "values": ["x"]}),
            json!({"type": "luhn", "field": "a"}),
        ] {
            assert_eq!(rule(config).check(&Value::Null), Ok(()));
        }
    }

    #[test]
    fn numbers_are_checked_by_their_json_text() {
        let luhn = rule(json!({"type": "luhn", "field": "a"}));
        assert_eq!(luhn.check(&json!(79927398713_u64)), Ok(()));
        assert!(luhn.check(&json!(79927398710_u64)).is_err());
        assert!(luhn.check(&json!(-79927398713_i64)).is_err());
        assert!(luhn.check(&json!(7992739871.3)).is_err());

        let orgnr = rule(json!({"type": "orgnr", "field": "a"}));
        assert_eq!(orgnr.check(&json!(5560160680_u64)), Ok(()));

        let regex = rule(json!({"type": "regex", "field": "a", "pattern": r"^\d+\.5$"}));
        assert_eq!(regex.check(&json!(12.5)), Ok(()));
        assert!(regex.check(&json!(12)).is_err());
    }

    #[test]
    fn booleans_arrays_and_objects_are_the_wrong_type() {
        let iban = rule(json!({"type": "iban", "field": "a"}));
        for value in [json!(true), json!(["SE4550000000058398257466"]), json!({"iban": 1})] {
            let violation = iban.check(&value).expect_err("wrong type");
            assert_eq!(violation.code(), "wrong_type");
            assert!(!violation.message(Locale::En).is_empty());
        }
        let one_of = rule(json!({"type": "one_of", "field": "a", "values": [true]}));
        assert_eq!(one_of.check(&json!(true)), Ok(()));
    }

    #[test]
    fn rules_are_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + fmt::Debug>() {}
        assert_traits::<RowRule>();
        assert_traits::<Violation>();
        assert_traits::<RuleConfigError>();
    }

    #[test]
    fn the_json_schema_documents_every_rule_and_field() {
        let schema = schemars::schema_for!(RowRuleConfig);
        let text = serde_json::to_string(&schema).expect("schema serializes");
        for needle in [
            "date_range",
            "one_of",
            "allow_samordningsnummer",
            "case_insensitive",
            "The mapped field",
            "today+30d",
            "additionalProperties",
        ] {
            assert!(text.contains(needle), "schema lacks {needle}: {text}");
        }
    }

    #[test]
    fn number_text_holds_every_number_serde_json_prints() {
        for number in [
            json!(0),
            json!(7),
            json!(-7),
            json!(5560160680_u64),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(12.5),
            json!(-1.2345678901234567e-300),
            json!(f64::MAX),
        ] {
            let Value::Number(number) = number else { unreachable!() };
            let text = NumberText::of(&number).expect("fits");
            assert_eq!(text.as_str(), number.to_string());
        }
    }
}
