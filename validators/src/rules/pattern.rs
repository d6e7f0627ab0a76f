//! The `regex` rule: the value must match a regular expression.

use std::sync::Arc;

use regex::Regex;

use super::RuleConfigError;
use super::violation::ViolationKind;

/// The value must match a regular expression somewhere: unanchored like JSON Schema `pattern`,
/// so write `^…$` to match the whole value. The syntax is Rust's `regex` crate (Perl-like; no
/// look-around or back-references), which guarantees linear-time matching on any input.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RegexRuleConfig {
    /// The mapped field the rule checks.
    pub field: String,
    /// The regular expression, e.g. `^[^@]+@[^@]+$`; unanchored unless it uses `^` and `$`.
    pub pattern: String,
}

impl RegexRuleConfig {
    pub(super) fn build(&self) -> Result<PatternRule, RuleConfigError> {
        let regex = Regex::new(&self.pattern).map_err(|source| {
            RuleConfigError::InvalidPattern { field: self.field.clone(), source }
        })?;
        Ok(PatternRule { regex, pattern: Arc::from(self.pattern.as_str()) })
    }
}

/// A compiled `regex` rule.
#[derive(Debug, Clone)]
pub(super) struct PatternRule {
    regex: Regex,
    pattern: Arc<str>,
}

impl PatternRule {
    pub(super) fn check(&self, text: &str) -> Result<(), ViolationKind> {
        if self.regex.is_match(text) {
            Ok(())
        } else {
            Err(ViolationKind::PatternMismatch { pattern: Arc::clone(&self.pattern) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str) -> PatternRule {
        RegexRuleConfig { field: "f".into(), pattern: pattern.into() }.build().expect("compiles")
    }

    #[test]
    fn patterns_match_anywhere_unless_anchored() {
        let email = rule("^[^@]+@[^@]+$");
        assert_eq!(email.check("anna@example.se"), Ok(()));
        assert_eq!(
            email.check("anna.example.se"),
            Err(ViolationKind::PatternMismatch { pattern: Arc::from("^[^@]+@[^@]+$") })
        );
        assert!(email.check("a@b@c").is_err());
        assert!(email.check("").is_err());

        let unanchored = rule("[0-9]{3}");
        assert_eq!(unanchored.check("ab123cd"), Ok(()));
        assert!(unanchored.check("ab12cd").is_err());
        assert_eq!(rule("").check(""), Ok(()));
        assert_eq!(rule(r"^\p{Lu}").check("Åsa"), Ok(()));
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_a_config_error() {
        for bad in ["(", "[a-", r"(?<=a)b", r"(a)\1", "a{2,1}"] {
            let error = RegexRuleConfig { field: "email".into(), pattern: bad.into() }
                .build()
                .expect_err(bad);
            assert!(
                matches!(&error, RuleConfigError::InvalidPattern { field, .. } if field == "email")
            );
            let text = error.to_string();
            assert!(text.contains("regex") && text.contains("`email`"), "{text}");
        }
    }
}
