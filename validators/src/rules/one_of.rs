//! The `one_of` rule: the value must be one of a list of allowed JSON values.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Number, Value};

use super::RuleConfigError;
use super::violation::{OneOfHint, ViolationKind};

/// The value must equal one of `values`, compared as JSON values: text equals text, numbers
/// compare by value (`1` equals `1.0`), booleans equal booleans. Text never equals a number
/// (`"1"` is not `1`): list the values with the type the mapping produces.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OneOfRuleConfig {
    /// The mapped field the rule checks.
    pub field: String,
    /// The allowed values, e.g. `["SEK", "EUR"]` or `[1, 2, 3]`; at least one.
    pub values: Vec<Value>,
    /// Whether text is compared ignoring upper/lower case (Unicode lowercase mapping).
    /// Default `false`. Numbers and booleans are unaffected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_insensitive: bool,
}

impl OneOfRuleConfig {
    pub(super) fn build(&self) -> Result<OneOfRule, RuleConfigError> {
        if self.values.is_empty() {
            return Err(RuleConfigError::EmptyOneOf { field: self.field.clone() });
        }
        let mut strings = Vec::new();
        let mut others = Vec::new();
        for value in &self.values {
            match value {
                Value::String(text) if self.case_insensitive => strings.push(lowercase(text)),
                Value::String(text) => strings.push(text.as_str().into()),
                other => others.push(other.clone()),
            }
        }
        Ok(OneOfRule {
            allowed: Arc::from(self.values.as_slice()),
            strings: StringSet::new(strings),
            others: others.into(),
            case_insensitive: self.case_insensitive,
        })
    }
}

/// Lowercase char by char (so "Σ" is always "σ", as in [`eq_lowercase`]).
fn lowercase(text: &str) -> Box<str> {
    text.chars().flat_map(char::to_lowercase).collect::<String>().into()
}

/// Whether `text` lowercased char by char equals `lowered`, without allocating.
fn eq_lowercase(text: &str, lowered: &str) -> bool {
    text.chars().flat_map(char::to_lowercase).eq(lowered.chars())
}

/// Up to this many strings are searched one by one; more go in a hash set.
const LINEAR_SEARCH_MAX: usize = 8;
/// ASCII values up to this length are lowercased on the stack for a hash look-up.
const STACK_LOWERCASE_MAX: usize = 64;

/// The allowed strings (lowercased if the rule ignores case).
#[derive(Debug, Clone)]
enum StringSet {
    Few(Box<[Box<str>]>),
    Many(HashSet<Box<str>>),
}

impl StringSet {
    fn new(strings: Vec<Box<str>>) -> Self {
        if strings.len() <= LINEAR_SEARCH_MAX {
            StringSet::Few(strings.into())
        } else {
            StringSet::Many(strings.into_iter().collect())
        }
    }

    fn contains(&self, text: &str) -> bool {
        match self {
            StringSet::Few(strings) => strings.iter().any(|allowed| **allowed == *text),
            StringSet::Many(strings) => strings.contains(text),
        }
    }

    fn contains_ignoring_case(&self, text: &str) -> bool {
        if text.is_ascii() && text.len() <= STACK_LOWERCASE_MAX {
            let mut buffer = [0u8; STACK_LOWERCASE_MAX];
            let lowered = &mut buffer[..text.len()];
            lowered.copy_from_slice(text.as_bytes());
            lowered.make_ascii_lowercase();
            // ASCII in, ASCII out.
            return std::str::from_utf8(lowered).is_ok_and(|lowered| self.contains(lowered));
        }
        match self {
            StringSet::Few(strings) => strings.iter().any(|allowed| eq_lowercase(text, allowed)),
            StringSet::Many(strings) => strings.iter().any(|allowed| eq_lowercase(text, allowed)),
        }
    }
}

/// Whether two JSON numbers have the same value (`1` equals `1.0`).
fn numbers_equal(a: &Number, b: &Number) -> bool {
    if a.is_f64() || b.is_f64() {
        return match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        };
    }
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a.as_u64().is_some() && a.as_u64() == b.as_u64(),
    }
}

/// A compiled `one_of` rule.
#[derive(Debug, Clone)]
pub(super) struct OneOfRule {
    /// The values as configured, in order, for messages.
    allowed: Arc<[Value]>,
    strings: StringSet,
    /// The allowed values that are not strings.
    others: Box<[Value]>,
    case_insensitive: bool,
}

impl OneOfRule {
    /// Checks any JSON value; no allocation unless it is refused.
    pub(super) fn check(&self, value: &Value) -> Result<(), ViolationKind> {
        let found = match value {
            Value::String(text) => return self.check_str(text),
            Value::Number(number) => self.others.iter().any(|allowed| match allowed {
                Value::Number(allowed) => numbers_equal(allowed, number),
                _ => false,
            }),
            other => self.others.iter().any(|allowed| allowed == other),
        };
        if found { Ok(()) } else { Err(self.violation(value.clone())) }
    }

    /// Checks a text value.
    pub(super) fn check_str(&self, text: &str) -> Result<(), ViolationKind> {
        let found = if self.case_insensitive {
            self.strings.contains_ignoring_case(text)
        } else {
            self.strings.contains(text)
        };
        if found { Ok(()) } else { Err(self.violation(Value::String(text.to_owned()))) }
    }

    /// The violation for a refused value, pointing at a near miss if there is one.
    fn violation(&self, got: Value) -> ViolationKind {
        let hint = self.near_miss(&got);
        ViolationKind::NotOneOf {
            got,
            allowed: Arc::clone(&self.allowed),
            case_insensitive: self.case_insensitive,
            hint,
        }
    }

    fn near_miss(&self, got: &Value) -> OneOfHint {
        if let (Value::String(text), false) = (got, self.case_insensitive) {
            let lowered = lowercase(text);
            let same_but_case = self.allowed.iter().position(|allowed| {
                matches!(allowed, Value::String(allowed) if eq_lowercase(allowed, &lowered))
            });
            if let Some(index) = same_but_case {
                return OneOfHint::Case(index);
            }
        }
        // The same text in another JSON type: "1" and 1, "true" and true.
        let text_of = |value: &Value| match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let got_text = text_of(got);
        let same_text_other_type = self.allowed.iter().position(|allowed| {
            std::mem::discriminant(allowed) != std::mem::discriminant(got)
                && text_of(allowed) == got_text
        });
        same_text_other_type.map_or(OneOfHint::None, OneOfHint::Type)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(values: Value, case_insensitive: bool) -> OneOfRule {
        let values = serde_json::from_value(values).expect("a list");
        OneOfRuleConfig { field: "f".into(), values, case_insensitive }.build().expect("builds")
    }

    fn hint(result: Result<(), ViolationKind>) -> OneOfHint {
        match result {
            Err(ViolationKind::NotOneOf { hint, .. }) => hint,
            other => panic!("expected not_one_of, got {other:?}"),
        }
    }

    #[test]
    fn strings_must_match_exactly_by_default() {
        let currency = rule(json!(["SEK", "EUR"]), false);
        assert_eq!(currency.check(&json!("SEK")), Ok(()));
        assert_eq!(currency.check(&json!("EUR")), Ok(()));
        assert_eq!(hint(currency.check(&json!("USD"))), OneOfHint::None);
        assert_eq!(hint(currency.check(&json!("sek"))), OneOfHint::Case(0));
        assert!(currency.check(&json!("SEK ")).is_err());
        assert!(currency.check(&json!("")).is_err());
        assert!(currency.check(&json!(1)).is_err());
        assert!(currency.check(&json!(["SEK"])).is_err());
    }

    #[test]
    fn case_insensitive_rules_ignore_case_for_text_only() {
        let currency = rule(json!(["SEK", "Eur", "Öre", 1]), true);
        for value in ["SEK", "sek", "SeK", "EUR", "eur", "öre", "ÖRE"] {
            assert_eq!(currency.check(&json!(value)), Ok(()), "{value}");
        }
        assert_eq!(currency.check(&json!(1)), Ok(()));
        assert!(currency.check(&json!("USD")).is_err());
        assert!(currency.check(&json!("ore")).is_err());
        let long = "S".repeat(100);
        let long_rule = rule(json!([long.to_lowercase()]), true);
        assert_eq!(long_rule.check(&json!(long)), Ok(()));
    }

    #[test]
    fn numbers_compare_by_value_and_never_equal_text() {
        let codes = rule(json!([1, 2.5, -3, 18446744073709551615_u64]), false);
        assert_eq!(codes.check(&json!(1)), Ok(()));
        assert_eq!(codes.check(&json!(1.0)), Ok(()));
        assert_eq!(codes.check(&json!(2.5)), Ok(()));
        assert_eq!(codes.check(&json!(-3)), Ok(()));
        assert_eq!(codes.check(&json!(u64::MAX)), Ok(()));
        assert!(codes.check(&json!(4)).is_err());
        assert!(codes.check(&json!(-1)).is_err());
        assert_eq!(hint(codes.check(&json!("1"))), OneOfHint::Type(0));
        let texts = rule(json!(["1", "2"]), false);
        assert_eq!(hint(texts.check(&json!(2))), OneOfHint::Type(1));
    }

    #[test]
    fn booleans_and_other_values_compare_as_json() {
        let flags = rule(json!([true, null, ["a"]]), false);
        assert_eq!(flags.check(&json!(true)), Ok(()));
        assert!(flags.check(&json!(false)).is_err());
        assert_eq!(flags.check(&json!(["a"])), Ok(()));
        assert_eq!(hint(flags.check(&json!("true"))), OneOfHint::Type(0));
    }

    #[test]
    fn long_lists_use_a_hash_set() {
        let codes: Vec<String> = (0..200).map(|n| format!("C{n:03}")).collect();
        let exact = rule(json!(codes), false);
        assert!(matches!(exact.strings, StringSet::Many(_)));
        assert_eq!(exact.check(&json!("C199")), Ok(()));
        assert!(exact.check(&json!("c199")).is_err());
        let ignoring_case = rule(json!(codes), true);
        assert_eq!(ignoring_case.check(&json!("c199")), Ok(()));
        assert_eq!(ignoring_case.check(&json!("C000")), Ok(()));
        assert!(ignoring_case.check(&json!("C200")).is_err());
    }

    #[test]
    fn an_empty_list_is_a_config_error() {
        let error =
            OneOfRuleConfig { field: "currency".into(), values: vec![], case_insensitive: false }
                .build()
                .expect_err("empty");
        assert_eq!(error, RuleConfigError::EmptyOneOf { field: "currency".into() });
    }
}
