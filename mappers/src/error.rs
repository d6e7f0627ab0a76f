//! What can go wrong in mapping: a template's chain that cannot be built for a file
//! ([`MappingConfigErrors`], fails the file before any row is read), and a value of one row that
//! cannot be cast ([`FieldMappingError`], data: the row is rejected, the file goes on).

use std::fmt;
use std::sync::Arc;

use intake_parsers::Locale;

/// One problem with a template's mapping, with the JSON path it is at (e.g.
/// `mapping[0].config.fields[2].source`). The user fixes the template (or the file's header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingConfigError {
    /// A mapper type this version cannot run yet (`jq`, `xslt`, `jinja2`, `plugin`, or a
    /// `field_mapping` that is not the first mapper).
    #[error("not supported yet: {what} ({path})")]
    NotSupportedYet {
        /// What is not supported, e.g. "the `jq` mapper".
        what: String,
        /// Where it is, e.g. `mapping[1]`.
        path: String,
    },
    /// Both `mapping` and the legacy `field_mapping` list fields; only one may.
    #[error(
        "both `mapping` and the legacy `field_mapping` are set: move the fields of \
         `field_mapping` into a `field_mapping` mapper in `mapping` and remove `field_mapping`"
    )]
    MappingAndLegacyFieldMapping,
    /// Source columns the file does not have; every one is named, with the file's columns.
    #[error(
        "the file has no column{} {}; its columns are: {}",
        if unknown.len() == 1 { "" } else { "s" },
        list_unknown(unknown),
        list_names(available)
    )]
    UnknownColumns {
        /// Each missing column and the path of the `source` naming it.
        unknown: Vec<UnknownColumn>,
        /// The columns the file has, in order.
        available: Vec<String>,
    },
    /// A `source` names a column the file's header has more than once.
    #[error("{path}: the file has {count} columns named '{column}', so the source is ambiguous")]
    AmbiguousColumn {
        /// The path of the `source`.
        path: String,
        /// The repeated column name.
        column: String,
        /// How many columns have that name.
        count: usize,
    },
    /// Columns that would be passed through unchanged (no mapping, or `keep_unmapped`) share a
    /// name, so they cannot all become fields.
    #[error(
        "{path}: the file has {count} columns named '{column}', which cannot all be passed \
         through; map them to distinct targets with a `field_mapping`"
    )]
    DuplicatePassThroughColumn {
        /// The mapper passing columns through (`mapping[0]`), or `mapping` for no mapper at all.
        path: String,
        /// The repeated column name.
        column: String,
        /// How many columns have that name.
        count: usize,
    },
    /// Two fields of a mapper have the same target.
    #[error("target field '{target}' is mapped more than once: {}", paths.join(", "))]
    DuplicateTarget {
        /// The repeated target.
        target: String,
        /// The path of every field spec with that target.
        paths: Vec<String>,
    },
    /// A field spec with an empty `target`.
    #[error("{path}: the target field name is empty")]
    EmptyTarget {
        /// The path of the `target`.
        path: String,
    },
    /// A field spec with both `source` and `constant`.
    #[error("{path}: set either `source` or `constant`, not both")]
    SourceAndConstant {
        /// The path of the field spec.
        path: String,
    },
    /// A field spec with neither `source` nor `constant`.
    #[error("{path}: set `source` (a column of the file) or `constant` (a fixed value)")]
    NoSourceOrConstant {
        /// The path of the field spec.
        path: String,
    },
    /// An option that has no effect on this field: a cast option with a `constant`, or an
    /// option of another cast (e.g. `formats` with `cast: integer`).
    #[error("{path}: `{option}` has no effect here; {reason}")]
    OptionHasNoEffect {
        /// The path of the option.
        path: String,
        /// The option's name.
        option: &'static str,
        /// Why, e.g. "it is only used with cast `date` or `datetime`".
        reason: String,
    },
    /// A date or datetime format chrono cannot read, or that does not give a full value.
    #[error("{path}: the format '{format}' {reason}")]
    InvalidFormat {
        /// The path of the format.
        path: String,
        /// The format as written.
        format: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A thousands separator that cannot work (empty, a digit or sign, or the decimal separator).
    #[error("{path}: the thousands separator '{separator}' {reason}")]
    InvalidThousandsSeparator {
        /// The path of the separator.
        path: String,
        /// The separator as written.
        separator: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A boolean value list that is empty, or a text in both `true_values` and `false_values`.
    #[error("{path}: {problem}")]
    InvalidBooleanValues {
        /// The path of the list.
        path: String,
        /// What is wrong, e.g. "'ja' is in both `true_values` and `false_values`".
        problem: String,
    },
    /// A `jinja2` template that does not compile (with its line), or a mapper without fields.
    #[error("{path}: {message}")]
    Template {
        /// The path of the template.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl MappingConfigError {
    /// Where in the template the problem is, as a JSON pointer from the template's root, e.g.
    /// `/mapping/0/config/fields/2/source` (for several places, the first one to fix: the
    /// first unknown column, the second use of a duplicate target).
    pub fn pointer(&self) -> String {
        let path = match self {
            MappingConfigError::NotSupportedYet { path, .. }
            | MappingConfigError::AmbiguousColumn { path, .. }
            | MappingConfigError::DuplicatePassThroughColumn { path, .. }
            | MappingConfigError::EmptyTarget { path }
            | MappingConfigError::SourceAndConstant { path }
            | MappingConfigError::NoSourceOrConstant { path }
            | MappingConfigError::OptionHasNoEffect { path, .. }
            | MappingConfigError::InvalidFormat { path, .. }
            | MappingConfigError::InvalidThousandsSeparator { path, .. }
            | MappingConfigError::InvalidBooleanValues { path, .. }
            | MappingConfigError::Template { path, .. } => path.as_str(),
            MappingConfigError::MappingAndLegacyFieldMapping => "field_mapping",
            MappingConfigError::UnknownColumns { unknown, .. } => {
                unknown.first().map_or("mapping", |u| u.path.as_str())
            }
            MappingConfigError::DuplicateTarget { paths, .. } => {
                paths.get(1).or(paths.first()).map_or("mapping", String::as_str)
            }
        };
        let mut pointer = String::with_capacity(path.len() + 1);
        pointer.push('/');
        for c in path.chars() {
            match c {
                '.' | '[' => pointer.push('/'),
                ']' => {}
                c => pointer.push(c),
            }
        }
        pointer
    }
}

/// A `source` column the file does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownColumn {
    /// The column name as written in the template.
    pub column: String,
    /// The path of the `source`, e.g. `mapping[0].config.fields[3].source`.
    pub path: String,
}

fn list_unknown(unknown: &[UnknownColumn]) -> String {
    let items: Vec<String> =
        unknown.iter().map(|u| format!("'{}' ({})", u.column, u.path)).collect();
    items.join(", ")
}

fn list_names(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".to_owned();
    }
    let items: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    items.join(", ")
}

/// Every problem found in a template's mapping, never just the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfigErrors {
    errors: Vec<MappingConfigError>,
}

impl MappingConfigErrors {
    pub(crate) fn new(errors: Vec<MappingConfigError>) -> Self {
        Self { errors }
    }

    /// The problems, in the order of the template.
    pub fn errors(&self) -> &[MappingConfigError] {
        &self.errors
    }

    /// The problems, owned.
    pub fn into_errors(self) -> Vec<MappingConfigError> {
        self.errors
    }

    /// The problems, in the order of the template.
    pub fn iter(&self) -> std::slice::Iter<'_, MappingConfigError> {
        self.errors.iter()
    }
}

impl<'a> IntoIterator for &'a MappingConfigErrors {
    type Item = &'a MappingConfigError;
    type IntoIter = std::slice::Iter<'a, MappingConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for MappingConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "the mapping cannot be used: {one}"),
            all => {
                write!(f, "the mapping cannot be used ({} problems):", all.len())?;
                for error in all {
                    write!(f, "\n  - {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for MappingConfigErrors {}

impl IntoIterator for MappingConfigErrors {
    type Item = MappingConfigError;
    type IntoIter = std::vec::IntoIter<MappingConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

/// A value of one row that could not be mapped: it makes the row a rejected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMappingError {
    /// The target field.
    pub field: String,
    /// The source column the value came from, when it came from one.
    pub column: Option<String>,
    /// The cell exactly as it was in the file (not trimmed).
    pub value: String,
    /// What is wrong with it.
    pub kind: CastErrorKind,
}

impl FieldMappingError {
    /// An error of the whole row rather than of one field (a `jq` or `plugin` step, or
    /// `pre_transform`): no field, column or value.
    pub(crate) fn of_row(kind: CastErrorKind) -> Self {
        FieldMappingError { field: String::new(), column: None, value: String::new(), kind }
    }

    /// What is wrong and how to write the value instead, in `locale`; names the source column.
    pub fn message(&self, locale: Locale) -> String {
        let mut message = self.kind.message(locale);
        if let Some(column) = &self.column {
            let label = match locale {
                Locale::Sv => "kolumn",
                Locale::En => "column",
            };
            message.push_str(&format!(" ({label} '{column}')"));
        }
        message
    }

    /// The rule that failed, for the rejected record: `cast_integer`, `cast_decimal`,
    /// `cast_boolean`, `cast_date` or `cast_datetime`.
    pub fn rule(&self) -> &'static str {
        self.kind.rule()
    }
}

impl fmt::Display for FieldMappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field '{}': '{}' {}", self.field, self.value, self.message(Locale::En))
    }
}

impl std::error::Error for FieldMappingError {}

/// Why a cast failed. The lists it carries are shared with the compiled chain (cheap to clone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CastErrorKind {
    /// Not a whole number (a fraction, an exponent, letters, wrong digit grouping).
    NotAnInteger {
        /// The thousands separator the field accepts, if any.
        thousands_separator: Option<Arc<str>>,
    },
    /// A whole number outside the 64-bit signed range.
    IntegerOutOfRange,
    /// Not a decimal number in the field's notation.
    NotADecimal {
        /// The decimal separator the field uses (`.` or `,`).
        decimal_separator: char,
        /// The thousands separator the field accepts, if any.
        thousands_separator: Option<Arc<str>>,
    },
    /// More significant digits than a JSON number (64-bit float) holds exactly.
    TooManySignificantDigits,
    /// Too large or too small (too close to zero) for a JSON number.
    DecimalOutOfRange,
    /// Not one of the accepted yes/no texts.
    NotABoolean {
        /// The texts read as `true`.
        true_values: Arc<[String]>,
        /// The texts read as `false`.
        false_values: Arc<[String]>,
    },
    /// Not a date in any of the accepted formats.
    NotADate {
        /// One example of each accepted format (31 December 2026 written in it).
        examples: Arc<[String]>,
    },
    /// In an accepted format, but no such day exists (`2026-02-30`, month 13).
    NoSuchDate,
    /// Not a date and time in any of the accepted formats.
    NotADatetime {
        /// One example of each accepted format.
        examples: Arc<[String]>,
    },
    /// In an accepted format, but no such date or time exists (`2026-02-30T10:00:00`, `25:00`).
    NoSuchDatetime,
    /// A `jinja2` template failed to render for this row (an undefined name, a filter error,
    /// out of fuel).
    Template {
        /// What went wrong, with the line of the template.
        message: String,
    },
    /// A `jq` mapper (or `pre_transform`) did not turn the row into one object.
    Jq(crate::jq::JqRowError),
    /// A mapper plugin rejected the row, with its own message (in the template's locale, which
    /// it is told).
    Plugin {
        /// The plugin's name.
        name: String,
        /// Its message.
        message: String,
    },
    /// A `jq` or `plugin` mapper produced fields its `fields` does not list, or `pre_transform`
    /// produced columns the file does not have.
    UndeclaredFields {
        /// Which step: `jq`, `plugin` (mappers) or `pre_transform`.
        mapper: &'static str,
        /// The fields, in the order produced.
        fields: Vec<String>,
        /// The fields it may produce.
        declared: Vec<String>,
    },
}

impl CastErrorKind {
    /// The rule name reported for this failure.
    pub fn rule(&self) -> &'static str {
        match self {
            CastErrorKind::NotAnInteger { .. } | CastErrorKind::IntegerOutOfRange => "cast_integer",
            CastErrorKind::NotADecimal { .. }
            | CastErrorKind::TooManySignificantDigits
            | CastErrorKind::DecimalOutOfRange => "cast_decimal",
            CastErrorKind::NotABoolean { .. } => "cast_boolean",
            CastErrorKind::NotADate { .. } | CastErrorKind::NoSuchDate => "cast_date",
            CastErrorKind::NotADatetime { .. } | CastErrorKind::NoSuchDatetime => "cast_datetime",
            CastErrorKind::Template { .. } => "jinja2",
            CastErrorKind::Jq(_) => "jq",
            CastErrorKind::Plugin { .. } => "plugin",
            CastErrorKind::UndeclaredFields { .. } => "undeclared_field",
        }
    }

    /// What is wrong and how to write the value instead, in `locale`.
    pub fn message(&self, locale: Locale) -> String {
        use Locale::{En, Sv};
        match (self, locale) {
            (CastErrorKind::Template { message }, Sv) => {
                format!("mallen för fältet gick inte att fylla i: {message}")
            }
            (CastErrorKind::Template { message }, En) => {
                format!("the field's template failed: {message}")
            }
            (CastErrorKind::Jq(error), locale) => error.message(locale),
            (CastErrorKind::Plugin { name, message }, Sv) => {
                format!("mappningspluginen '{name}' avvisade raden: {message}")
            }
            (CastErrorKind::Plugin { name, message }, En) => {
                format!("the mapper plugin '{name}' rejected the row: {message}")
            }
            (CastErrorKind::UndeclaredFields { mapper, fields, declared }, Sv) => format!(
                "{} gav fält{} som inte får förekomma: {} (tillåtna är {})",
                match *mapper {
                    "pre_transform" => "pre_transform".to_owned(),
                    other => format!("{other}-mapparen"),
                },
                if fields.len() == 1 { "et" } else { "en" },
                list_names(fields),
                list_names(declared)
            ),
            (CastErrorKind::UndeclaredFields { mapper, fields, declared }, En) => format!(
                "{} produced field{} it may not produce: {} (it may produce {})",
                match *mapper {
                    "pre_transform" => "pre_transform".to_owned(),
                    other => format!("the {other} mapper"),
                },
                if fields.len() == 1 { "" } else { "s" },
                list_names(fields),
                list_names(declared)
            ),
            (CastErrorKind::NotAnInteger { thousands_separator }, Sv) => format!(
                "är inte ett heltal: skriv siffror med ett valfritt inledande + eller -{}",
                grouping(thousands_separator.as_deref(), Sv)
            ),
            (CastErrorKind::NotAnInteger { thousands_separator }, En) => format!(
                "is not a whole number: write digits with an optional leading + or -{}",
                grouping(thousands_separator.as_deref(), En)
            ),
            (CastErrorKind::IntegerOutOfRange, Sv) => format!(
                "ligger utanför det tillåtna intervallet för ett heltal ({} till {})",
                i64::MIN,
                i64::MAX
            ),
            (CastErrorKind::IntegerOutOfRange, En) => format!(
                "is outside the range allowed for a whole number ({} to {})",
                i64::MIN,
                i64::MAX
            ),
            (CastErrorKind::NotADecimal { decimal_separator, thousands_separator }, Sv) => {
                format!(
                    "är inte ett tal: skriv siffror med ett valfritt inledande + eller - och \
                     '{decimal_separator}' som decimaltecken{}",
                    grouping(thousands_separator.as_deref(), Sv)
                )
            }
            (CastErrorKind::NotADecimal { decimal_separator, thousands_separator }, En) => {
                format!(
                    "is not a number: write digits with an optional leading + or - and \
                     '{decimal_separator}' as the decimal separator{}",
                    grouping(thousands_separator.as_deref(), En)
                )
            }
            (CastErrorKind::TooManySignificantDigits, Sv) => "har för många värdesiffror för ett \
                JSON-tal (15 bevaras alltid exakt): avrunda värdet eller importera fältet som text"
                .to_owned(),
            (CastErrorKind::TooManySignificantDigits, En) => "has too many significant digits for \
                a JSON number (15 are always kept exactly): round the value or import the field \
                as text"
                .to_owned(),
            (CastErrorKind::DecimalOutOfRange, Sv) => {
                "är för stort eller för nära noll för ett JSON-tal".to_owned()
            }
            (CastErrorKind::DecimalOutOfRange, En) => {
                "is too large, or too close to zero, for a JSON number".to_owned()
            }
            (CastErrorKind::NotABoolean { true_values, false_values }, Sv) => format!(
                "är inte ett ja/nej-värde: skriv {} för ja eller {} för nej",
                alternatives(true_values, "eller"),
                alternatives(false_values, "eller")
            ),
            (CastErrorKind::NotABoolean { true_values, false_values }, En) => format!(
                "is not a yes/no value: write {} for yes or {} for no",
                alternatives(true_values, "or"),
                alternatives(false_values, "or")
            ),
            (CastErrorKind::NotADate { examples }, Sv) => format!(
                "är inte ett datum i ett godkänt format, till exempel {}",
                alternatives(examples, "eller")
            ),
            (CastErrorKind::NotADate { examples }, En) => format!(
                "is not a date in an accepted format, for example {}",
                alternatives(examples, "or")
            ),
            (CastErrorKind::NoSuchDate, Sv) => {
                "är inget datum som finns: kontrollera dag och månad".to_owned()
            }
            (CastErrorKind::NoSuchDate, En) => {
                "is not a date that exists: check the day and the month".to_owned()
            }
            (CastErrorKind::NotADatetime { examples }, Sv) => format!(
                "är inte en tidpunkt i ett godkänt format, till exempel {}",
                alternatives(examples, "eller")
            ),
            (CastErrorKind::NotADatetime { examples }, En) => format!(
                "is not a date and time in an accepted format, for example {}",
                alternatives(examples, "or")
            ),
            (CastErrorKind::NoSuchDatetime, Sv) => {
                "är ingen tidpunkt som finns: kontrollera datum och klockslag".to_owned()
            }
            (CastErrorKind::NoSuchDatetime, En) => {
                "is not a date and time that exists: check the date and the time of day".to_owned()
            }
        }
    }
}

/// "', digit groups of three may be separated by a space'" or nothing.
fn grouping(separator: Option<&str>, locale: Locale) -> String {
    let Some(separator) = separator else {
        return String::new();
    };
    let (space, nbsp, narrow) = match locale {
        Locale::Sv => ("mellanslag", "hårt mellanslag", "smalt hårt mellanslag"),
        Locale::En => ("a space", "a non-breaking space", "a narrow non-breaking space"),
    };
    let name = match separator {
        " " => space.to_owned(),
        "\u{a0}" => nbsp.to_owned(),
        "\u{202f}" => narrow.to_owned(),
        other => format!("'{other}'"),
    };
    match locale {
        Locale::Sv => format!("; siffrorna får delas i grupper om tre med {name}"),
        Locale::En => format!("; digits may be grouped in threes with {name}"),
    }
}

/// "'a', 'b' or 'c'".
fn alternatives(values: &[String], or: &str) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} {or} {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<CastErrorKind> {
        let list: Arc<[String]> = vec!["a".to_owned(), "b".to_owned()].into();
        vec![
            CastErrorKind::NotAnInteger { thousands_separator: Some(" ".into()) },
            CastErrorKind::NotAnInteger { thousands_separator: None },
            CastErrorKind::IntegerOutOfRange,
            CastErrorKind::NotADecimal {
                decimal_separator: ',',
                thousands_separator: Some(".".into()),
            },
            CastErrorKind::TooManySignificantDigits,
            CastErrorKind::DecimalOutOfRange,
            CastErrorKind::NotABoolean { true_values: list.clone(), false_values: list.clone() },
            CastErrorKind::NotADate { examples: list.clone() },
            CastErrorKind::NoSuchDate,
            CastErrorKind::NotADatetime { examples: list },
            CastErrorKind::NoSuchDatetime,
        ]
    }

    #[test]
    fn every_kind_has_a_swedish_and_an_english_message() {
        for kind in every_kind() {
            let (sv, en) = (kind.message(Locale::Sv), kind.message(Locale::En));
            assert!(!sv.is_empty() && !en.is_empty(), "{kind:?}");
            assert_ne!(sv, en, "{kind:?}");
            assert!(kind.rule().starts_with("cast_"));
        }
    }

    #[test]
    fn separators_and_alternatives_read_naturally() {
        let kind = CastErrorKind::NotAnInteger { thousands_separator: Some(" ".into()) };
        assert!(kind.message(Locale::En).ends_with("grouped in threes with a space"));
        assert!(kind.message(Locale::Sv).ends_with("med mellanslag"));
        let three = ["x".to_owned(), "y".to_owned(), "z".to_owned()];
        assert_eq!(alternatives(&three, "or"), "'x', 'y' or 'z'");
        assert_eq!(alternatives(&three[..1], "or"), "'x'");
    }

    #[test]
    fn all_config_problems_are_listed() {
        let errors = MappingConfigErrors::new(vec![
            MappingConfigError::MappingAndLegacyFieldMapping,
            MappingConfigError::EmptyTarget { path: "field_mapping[0].target".into() },
        ]);
        let text = errors.to_string();
        assert!(text.contains("2 problems") && text.contains("field_mapping[0].target"), "{text}");
        let pointers: Vec<String> = errors.iter().map(MappingConfigError::pointer).collect();
        assert_eq!(pointers, ["/field_mapping", "/field_mapping/0/target"]);
        let nested = MappingConfigError::DuplicateTarget {
            target: "a".into(),
            paths: vec!["mapping[0].config.fields[0]".into(), "mapping[0].config.fields[3]".into()],
        };
        assert_eq!(nested.pointer(), "/mapping/0/config/fields/3");
    }
}
