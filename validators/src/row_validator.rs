//! The compiled validation of a template: every layer that runs, ready for one row after another.

use intake_parsers::{Layer, Locale, Row, RowError, RowShape};
use thiserror::Error;

use crate::config::ValidationConfig;
use crate::cross_row::CrossRowValidator;
use crate::rules::{RowRule, RuleConfigError};
use crate::schema::SchemaLayer;

/// A problem with a template's `validation` object, found when it is compiled.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ValidationConfigError {
    /// The JSON Schema does not compile.
    #[error("{0}")]
    Schema(String),
    /// A row rule's options are wrong.
    #[error("{source}")]
    Rule {
        /// The rule's position in `row_rules`.
        index: usize,
        /// What is wrong with it.
        source: RuleConfigError,
    },
    /// A row rule names a field that mapped rows do not have.
    #[error(
        "row rule '{rule}' checks the field '{field}', which mapped rows do not have (they have: {available})"
    )]
    UnknownField {
        /// The rule's position in `row_rules`.
        index: usize,
        /// The rule's type.
        rule: &'static str,
        /// The field it names.
        field: String,
        /// The fields mapped rows have, comma-separated.
        available: String,
    },
    /// A cross-row rule's options are wrong.
    #[error("{source}")]
    CrossRow {
        /// The rule's position in `cross_row_rules`.
        index: usize,
        /// What is wrong with it.
        source: crate::cross_row::CrossRowConfigError,
    },
    /// A business rule is wrong (its options, or a row field the mapped rows do not have).
    #[error("{problem}")]
    BusinessRule {
        /// The rule's position in `business_rules`.
        index: usize,
        /// Where in the rule, as a JSON pointer relative to it (`/where`, `/compare/0/value`).
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A validation plugin's config is wrong.
    #[error("{problem}")]
    Plugin {
        /// The plugin's position in `plugins`.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// A layer that a later release implements.
    #[error("not supported yet: validation layer '{0}'")]
    NotSupportedYet(&'static str),
    /// `max_errors_per_row` is zero, which would hide every error.
    #[error("max_errors_per_row must be at least 1")]
    ZeroErrorCap,
    /// `alert_rejected_share` is not a share between 0 and 1.
    #[error("alert_rejected_share is {0}; use a share from 0 (any rejected row) to 1 (all rows)")]
    AlertShare(f64),
}

impl From<crate::business_rules::BusinessRuleFieldError> for ValidationConfigError {
    fn from(error: crate::business_rules::BusinessRuleFieldError) -> Self {
        Self::BusinessRule { index: error.index, path: error.path, problem: error.problem }
    }
}

impl ValidationConfigError {
    /// Where in the `validation` object the problem is, as a JSON pointer relative to it.
    pub fn path(&self) -> String {
        match self {
            Self::Schema(_) => "/schema".to_owned(),
            Self::Rule { index, .. } | Self::UnknownField { index, .. } => {
                format!("/row_rules/{index}")
            }
            Self::CrossRow { index, .. } => format!("/cross_row_rules/{index}"),
            Self::BusinessRule { index, path, .. } => format!("/business_rules/{index}{path}"),
            Self::Plugin { index, .. } => format!("/plugins/{index}"),
            Self::NotSupportedYet(layer) => format!("/{layer}"),
            Self::ZeroErrorCap => "/max_errors_per_row".to_owned(),
            Self::AlertShare(_) => "/alert_rejected_share".to_owned(),
        }
    }
}

impl ValidationConfig {
    /// Compiles what can be compiled without knowing the rows (the schema, each rule) and reports
    /// every problem at once. (That the fields rules name exist is checked by
    /// [`RowValidator::build`] and [`BusinessRules::build`](crate::BusinessRules::build), which
    /// know the mapped rows.)
    pub fn validate(&self) -> Vec<ValidationConfigError> {
        let mut problems = Vec::new();
        if let Some(schema) = &self.schema
            && let Err(message) = SchemaLayer::build(schema)
        {
            problems.push(ValidationConfigError::Schema(message));
        }
        for (index, rule) in self.row_rules.iter().enumerate() {
            if let Err(source) = rule.build() {
                problems.push(ValidationConfigError::Rule { index, source });
            }
        }
        for (index, source) in CrossRowValidator::validate(&self.cross_row_rules) {
            problems.push(ValidationConfigError::CrossRow { index, source });
        }
        for (index, rule) in self.business_rules.iter().enumerate() {
            for problem in rule.problems() {
                let (path, problem) = (problem.path, problem.problem);
                problems.push(ValidationConfigError::BusinessRule { index, path, problem });
            }
        }
        for (index, plugin) in self.plugins.iter().enumerate() {
            for problem in plugin.problems() {
                problems.push(ValidationConfigError::Plugin { index, problem });
            }
        }
        if self.max_errors_per_row == 0 {
            problems.push(ValidationConfigError::ZeroErrorCap);
        }
        if !(0.0..=1.0).contains(&self.alert_rejected_share) {
            problems.push(ValidationConfigError::AlertShare(self.alert_rejected_share));
        }
        problems
    }
}

/// Validation layers 1 and 2, compiled for rows of one shape (layer 3, which keeps state across
/// a file, is [`CrossRowValidator`]; layer 4, which looks rows up in the API, is
/// [`BusinessRules`](crate::BusinessRules)).
#[derive(Debug, Clone)]
pub struct RowValidator {
    schema: Option<SchemaLayer>,
    rules: Vec<(usize, RowRule)>,
    locale: Locale,
    max_errors: usize,
}

impl RowValidator {
    /// Compiles `config` for rows of `shape`, with messages in `locale`; every problem is reported.
    pub fn build(
        config: &ValidationConfig,
        shape: &RowShape,
        locale: Locale,
    ) -> Result<Self, Vec<ValidationConfigError>> {
        let mut problems = config.validate();
        let schema = config.schema.as_ref().and_then(|schema| SchemaLayer::build(schema).ok());
        let mut rules = Vec::with_capacity(config.row_rules.len());
        for (index, rule_config) in config.row_rules.iter().enumerate() {
            let Ok(rule) = rule_config.build() else {
                continue;
            };
            match shape.position(rule.field()) {
                Some(position) => rules.push((position, rule)),
                None => problems.push(ValidationConfigError::UnknownField {
                    index,
                    rule: rule.name(),
                    field: rule.field().to_owned(),
                    available: shape.names().join(", "),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self { schema, rules, locale, max_errors: config.max_errors_per_row })
    }

    /// Checks one row and appends its errors to `errors` (at most `max_errors_per_row` of them).
    /// Returns whether the row is valid.
    pub fn validate(&self, row: &Row, errors: &mut Vec<RowError>) -> bool {
        let start = errors.len();
        if let Some(schema) = &self.schema {
            schema.check(row, self.locale, self.max_errors, errors);
        }
        for (position, rule) in &self.rules {
            if errors.len() - start >= self.max_errors {
                break;
            }
            let Some(value) = row.value(*position) else {
                continue;
            };
            if let Err(violation) = rule.check(value) {
                errors.push(RowError {
                    layer: Layer::RowRules,
                    field: Some(rule.field().to_owned()),
                    rule: rule.name().to_owned(),
                    message: violation.message(self.locale),
                    value: Some(value.clone()),
                });
            }
        }
        errors.len() == start
    }
}
