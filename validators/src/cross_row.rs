//! Validation layer 3: rules across the rows of one file, checked while the file streams past.
//!
//! A template lists them in `validation.cross_row_rules`, each tagged by `type`:
//! - `unique` — the `fields` together must not repeat: a later valid row with the same values as
//!   an earlier valid row is rejected, naming the row of the first. Memory: one 128-bit hash and
//!   a row number per distinct key (about 40 bytes; 1,000,000 rows ≈ 40 MB).
//! - `count` — the number of rows (matching `where`) must be within `min`/`max`.
//! - `aggregate` — `sum`, `min`, `max`, `avg` or `count` of a field over the rows (matching
//!   `where`; rows matching `negative_when` count negative in `sum` and `avg`, like debit entries)
//!   must equal a constant, or a field of a header or trailer record of a fixed-width file (a
//!   control total), within `tolerance`. When the control record occurs more than once (BGMax has
//!   one deposit record per section), each occurrence is compared with its own rows: a trailer
//!   with the rows since the previous one, a header with the rows up to the next one.
//! - `control_field` — a field of each header or trailer record of a type must equal a constant
//!   or match a pattern (e.g. BGMax's test marker must be `P`, a production file).
//!
//! Numbers are compared exactly: decimal text with up to 9 decimals is summed as fixed-point,
//! never as floats. Aggregates keep a few numbers per rule (per group), whatever the file size.
//!
//! Which rows a rule sees: every row that mapped (valid, or rejected by layers 1–2). `unique`
//! only compares valid rows, so an invalid row never makes a valid one a duplicate. Rows that
//! could not be read or mapped cannot be counted; a failure says how many there were.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use intake_parsers::fixed_width::{ControlRecord, PostRole};
use intake_parsers::{Layer, Locale, Row, RowError, RowShape};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Config of one cross-row rule, as written in `validation.cross_row_rules`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CrossRowRuleConfig {
    /// The `fields` together must not repeat among the file's valid rows.
    Unique(UniqueRuleConfig),
    /// The number of rows must be within `min` and `max`.
    Count(CountRuleConfig),
    /// An aggregate of a field must equal a constant or a control record's field.
    Aggregate(AggregateRuleConfig),
    /// A field of a header or trailer record must equal a value or match a pattern.
    ControlField(ControlFieldRuleConfig),
}

/// `{"type": "unique", "fields": ["reference"]}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UniqueRuleConfig {
    /// Mapped fields whose values together identify a row.
    pub fields: Vec<String>,
}

/// `{"type": "count", "min": 1, "max": 10000, "where": {"kind": ["payment"]}}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRuleConfig {
    /// The fewest rows allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// The most rows allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// Only rows whose fields have one of the listed values count.
    #[serde(default, rename = "where", skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: BTreeMap<String, Vec<Value>>,
}

/// `{"type": "aggregate", "function": "sum", "field": "amount_ore", "equals": {"control_record":
/// "deposit", "field": "deposit_amount_ore"}, "negative_when": {"kind": ["deduction"]}}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateRuleConfig {
    /// `sum`, `min`, `max`, `avg` or `count`.
    pub function: AggregateFunction,
    /// The mapped field aggregated (not needed for `count`). Null values are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Only rows whose fields have one of the listed values are aggregated.
    #[serde(default, rename = "where", skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: BTreeMap<String, Vec<Value>>,
    /// Rows whose fields have one of the listed values count negative in `sum` and `avg`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub negative_when: BTreeMap<String, Vec<Value>>,
    /// What the aggregate must equal: a number, or `{"control_record": …, "field": …}`.
    pub equals: Expected,
    /// The largest difference still accepted (default 0: exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<serde_json::Number>,
}

/// `{"type": "control_field", "control_record": "start", "field": "test_marker", "equals": "P"}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlFieldRuleConfig {
    /// The header or trailer type's name (its `name` in `post_types`).
    pub control_record: String,
    /// The field of that record.
    pub field: String,
    /// The text the field must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// A regular expression the field must match (anchor it with `^…$` for the whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A regular expression with one capture group, applied to the file's name (without its
    /// folder): the field must begin with what the group captures (so a date in the name checks
    /// a date or a timestamp in the record). `"BGMAX_(\\d{8})"` checks that the BGMax start
    /// record was written on the date in the file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals_file_name: Option<String>,
    /// Whether the file must have at least one such record (default true).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFunction {
    /// The sum of the values.
    Sum,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The mean of the values.
    Avg,
    /// The number of rows.
    Count,
}

impl AggregateFunction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Avg => "avg",
            Self::Count => "count",
        }
    }
}

/// What an aggregate is compared with.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Expected {
    /// A constant.
    Constant(serde_json::Number),
    /// A field of a header or trailer record.
    Control(ControlReference),
}

/// A field of a header or trailer record of a fixed-width file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlReference {
    /// The header or trailer type's name.
    pub control_record: String,
    /// The field holding the control value.
    pub field: String,
}

/// A problem with a cross-row rule's config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossRowConfigError {
    /// The rule names a field mapped rows do not have.
    #[error("the field '{field}' is not a field of the mapped rows (they have: {available})")]
    UnknownField {
        /// The field.
        field: String,
        /// The fields rows have.
        available: String,
    },
    /// The options are contradictory or incomplete.
    #[error("{0}")]
    Invalid(String),
}

/// A number with 9 decimals, exact: what aggregates add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Fixed(i128);

const FIXED_SCALE: i128 = 1_000_000_000;

impl Fixed {
    /// Decimal text (`-12.50`, `000172550`, ` 3 `); `None` if it is not one or has more than 9
    /// decimals.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && fraction.is_empty())
            || fraction.len() > 9
            || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
            || whole.len() > 27
        {
            return None;
        }
        let mut value: i128 = 0;
        for b in whole.bytes() {
            value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let mut scaled_fraction: i128 = 0;
        for (i, b) in fraction.bytes().enumerate() {
            scaled_fraction += i128::from(b - b'0') * 10_i128.pow(8 - i as u32);
        }
        let value = value.checked_mul(FIXED_SCALE)?.checked_add(scaled_fraction)?;
        Some(Fixed(if negative { -value } else { value }))
    }

    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(number) => Self::parse(&number.to_string()),
            Value::String(text) => Self::parse(text),
            _ => None,
        }
    }
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let scale = FIXED_SCALE as u128;
        let (whole, fraction) = (magnitude / scale, magnitude % scale);
        if fraction == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let fraction = format!("{fraction:09}");
            write!(f, "{sign}{whole}.{}", fraction.trim_end_matches('0'))
        }
    }
}

/// A rule across rows that failed for the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRuleFailure {
    /// Always `cross_row_rules`.
    pub layer: Layer,
    /// The rule's position in `cross_row_rules`.
    pub rule_index: usize,
    /// The rule (`count`, `sum`, `avg`, `control_field`, …).
    pub rule: String,
    /// What is wrong, in the template's locale.
    pub message: String,
    /// The control record's line, when the failure is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_number: Option<u64>,
}

/// Rows as `where` selects them: every listed field must have one of its values.
#[derive(Debug, Clone, Default)]
struct Filter(Vec<(usize, Vec<Value>)>);

impl Filter {
    fn matches(&self, row: &Row) -> bool {
        self.0.iter().all(|(position, values)| {
            let value = row.value(*position).unwrap_or(&Value::Null);
            values.iter().any(|wanted| loosely_equal(wanted, value))
        })
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Equal as JSON values, or as text (`"20"` in a template matches the number 20).
fn loosely_equal(wanted: &Value, value: &Value) -> bool {
    wanted == value
        || match (wanted, value) {
            (Value::String(text), Value::Number(n)) | (Value::Number(n), Value::String(text)) => {
                text == &n.to_string()
            }
            _ => false,
        }
}

/// The running aggregate of one group of rows.
#[derive(Debug, Clone, Default)]
struct Accumulator {
    rows: u64,
    values: u64,
    sum: i128,
    min: Option<Fixed>,
    max: Option<Fixed>,
    first_row: Option<u64>,
    /// The first row whose value is not a number, and how many there were.
    not_numbers: u64,
    first_not_number: Option<u64>,
}

impl Accumulator {
    fn result(&self, function: AggregateFunction) -> Option<Fixed> {
        match function {
            AggregateFunction::Count => Some(Fixed(i128::from(self.rows) * FIXED_SCALE)),
            AggregateFunction::Sum => Some(Fixed(self.sum)),
            AggregateFunction::Min => self.min,
            AggregateFunction::Max => self.max,
            AggregateFunction::Avg => {
                (self.values > 0).then(|| Fixed(self.sum / i128::from(self.values)))
            }
        }
    }
}

#[derive(Debug)]
enum Compiled {
    Unique {
        positions: Vec<usize>,
        fields: Vec<String>,
        seen: HashMap<u128, u64>,
    },
    Count {
        min: Option<u64>,
        max: Option<u64>,
        filter: Filter,
        count: u64,
    },
    Aggregate(Box<AggregateState>),
    ControlField {
        config: ControlFieldRuleConfig,
        pattern: Option<Regex>,
        file_name: Option<Regex>,
    },
}

#[derive(Debug)]
struct AggregateState {
    function: AggregateFunction,
    field: Option<(usize, String)>,
    filter: Filter,
    negative: Filter,
    equals: Expected,
    tolerance: Fixed,
    /// ` where kind is payment`, for messages.
    where_text: String,
    /// Rows by group: the number of occurrences of the control record before the row.
    groups: BTreeMap<usize, Accumulator>,
    /// How far into the control records the rows have advanced, and the occurrences seen.
    scanned: usize,
    occurrences: usize,
}

/// Layer 3, compiled for rows of one shape; keeps its state for one file.
#[derive(Debug)]
pub struct CrossRowValidator {
    rules: Vec<Compiled>,
    locale: Locale,
    /// The file's name without its folder, for `equals_file_name`.
    file_name: String,
    /// Rows that could not be mapped, so no rule saw them.
    unseen_rows: u64,
}

impl CrossRowValidator {
    /// Checks the configs without knowing the rows (options, patterns); every problem with the
    /// rule's index.
    pub fn validate(configs: &[CrossRowRuleConfig]) -> Vec<(usize, CrossRowConfigError)> {
        let shape = RowShape::new(Vec::<String>::new());
        configs
            .iter()
            .enumerate()
            .filter_map(|(index, config)| compile(config, &shape, false).err().map(|e| (index, e)))
            .collect()
    }

    /// Compiles `configs` for rows of `shape`; every problem with the rule's index.
    pub fn build(
        configs: &[CrossRowRuleConfig],
        shape: &RowShape,
        locale: Locale,
    ) -> Result<Self, Vec<(usize, CrossRowConfigError)>> {
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            match compile(config, shape, true) {
                Ok(rule) => rules.push(rule),
                Err(problem) => problems.push((index, problem)),
            }
        }
        if problems.is_empty() {
            Ok(Self { rules, locale, file_name: String::new(), unseen_rows: 0 })
        } else {
            Err(problems)
        }
    }

    /// The same rules for the file `source_name` (a path or a name; `equals_file_name` reads
    /// its last part).
    pub fn for_file(mut self, source_name: &str) -> Self {
        let name = source_name.rsplit(['/', '\\']).next().unwrap_or(source_name);
        self.file_name = name.to_owned();
        self
    }

    /// Whether there are no rules (nothing to do per row).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Sees one mapped row (`valid`: it passed layers 1–2), with the control records read so
    /// far; a duplicate of an earlier valid row gets an error in `errors`. Returns whether the
    /// row is still valid.
    pub fn check_row(
        &mut self,
        row: &Row,
        valid: bool,
        control: &[ControlRecord],
        errors: &mut Vec<RowError>,
    ) -> bool {
        let mut still_valid = valid;
        for rule in &mut self.rules {
            match rule {
                Compiled::Unique { positions, fields, seen } if valid => {
                    let key = key_hash(row, positions);
                    match seen.get(&key) {
                        Some(first) => {
                            still_valid = false;
                            errors.push(RowError {
                                layer: Layer::CrossRowRules,
                                field: fields.first().cloned(),
                                rule: "unique".to_owned(),
                                message: duplicate_message(self.locale, fields, *first),
                                value: Some(Value::Array(
                                    positions
                                        .iter()
                                        .map(|p| row.value(*p).cloned().unwrap_or(Value::Null))
                                        .collect(),
                                )),
                            });
                        }
                        None => {
                            seen.insert(key, row.row_number());
                        }
                    }
                }
                Compiled::Unique { .. } | Compiled::ControlField { .. } => {}
                Compiled::Count { filter, count, .. } => {
                    if filter.matches(row) {
                        *count += 1;
                    }
                }
                Compiled::Aggregate(state) => state.observe(row, control),
            }
        }
        still_valid
    }

    /// Notes a row that could not be read or mapped, which no rule can count.
    pub fn skip_row(&mut self) {
        self.unseen_rows += 1;
    }

    /// The file-level verdict once every row is seen, given all the control records.
    pub fn finish(&mut self, control: &[ControlRecord]) -> Vec<FileRuleFailure> {
        let mut failures = Vec::new();
        let locale = self.locale;
        for (index, rule) in self.rules.iter().enumerate() {
            let mut fail = |rule: &str, message: String, row_number: Option<u64>| {
                failures.push(FileRuleFailure {
                    layer: Layer::CrossRowRules,
                    rule_index: index,
                    rule: rule.to_owned(),
                    message,
                    row_number,
                });
            };
            match rule {
                Compiled::Unique { .. } => {}
                Compiled::Count { min, max, count, filter, .. } => {
                    let low = min.is_some_and(|min| *count < min);
                    let high = max.is_some_and(|max| *count > max);
                    if low || high {
                        fail(
                            "count",
                            count_message(locale, *count, *min, *max, !filter.is_empty()),
                            None,
                        );
                    }
                }
                Compiled::Aggregate(state) => {
                    for (message, row_number) in state.failures(locale, control) {
                        fail(state.function.as_str(), message, row_number);
                    }
                }
                Compiled::ControlField { config, pattern, file_name } => {
                    let from_name = match file_name {
                        None => None,
                        Some(regex) => match regex
                            .captures(&self.file_name)
                            .and_then(|captures| captures.get(1))
                        {
                            Some(found) => Some(found.as_str()),
                            None => {
                                let message = file_name_message(locale, &self.file_name, regex);
                                fail("control_field", message, None);
                                continue;
                            }
                        },
                    };
                    let records: Vec<&ControlRecord> =
                        control.iter().filter(|c| c.post_type == config.control_record).collect();
                    if records.is_empty() && config.required {
                        fail(
                            "control_field",
                            missing_control(locale, &config.control_record),
                            None,
                        );
                    }
                    for record in records {
                        let text = record.fields.get(&config.field).and_then(Value::as_str);
                        let ok = match text {
                            None => false,
                            Some(text) => {
                                config.equals.as_deref().is_none_or(|e| e == text)
                                    && pattern.as_ref().is_none_or(|p| p.is_match(text))
                                    && from_name.is_none_or(|n| text.starts_with(n))
                            }
                        };
                        if !ok {
                            let message =
                                control_field_message(locale, config, record, text, from_name);
                            fail("control_field", message, Some(record.row_number));
                        }
                    }
                }
            }
        }
        if self.unseen_rows > 0 {
            for failure in &mut failures {
                failure.message.push_str(&unseen_note(locale, self.unseen_rows));
            }
        }
        failures
    }
}

fn compile(
    config: &CrossRowRuleConfig,
    shape: &RowShape,
    check_fields: bool,
) -> Result<Compiled, CrossRowConfigError> {
    let position = |field: &str| -> Result<usize, CrossRowConfigError> {
        match shape.position(field) {
            Some(position) => Ok(position),
            None if !check_fields => Ok(0),
            None => Err(CrossRowConfigError::UnknownField {
                field: field.to_owned(),
                available: shape.names().join(", "),
            }),
        }
    };
    let filter = |map: &BTreeMap<String, Vec<Value>>| -> Result<Filter, CrossRowConfigError> {
        map.iter()
            .map(|(field, values)| Ok((position(field)?, values.clone())))
            .collect::<Result<_, _>>()
            .map(Filter)
    };
    let invalid = |text: &str| CrossRowConfigError::Invalid(text.to_owned());
    Ok(match config {
        CrossRowRuleConfig::Unique(unique) => {
            if unique.fields.is_empty() {
                return Err(invalid("unique needs at least one field in `fields`"));
            }
            Compiled::Unique {
                positions: unique.fields.iter().map(|f| position(f)).collect::<Result<_, _>>()?,
                fields: unique.fields.clone(),
                seen: HashMap::new(),
            }
        }
        CrossRowRuleConfig::Count(count) => {
            if count.min.is_none() && count.max.is_none() {
                return Err(invalid("count needs `min`, `max` or both"));
            }
            if let (Some(min), Some(max)) = (count.min, count.max)
                && min > max
            {
                return Err(invalid("count: `min` is larger than `max`"));
            }
            Compiled::Count {
                min: count.min,
                max: count.max,
                filter: filter(&count.filter)?,
                count: 0,
            }
        }
        CrossRowRuleConfig::Aggregate(aggregate) => {
            let field = match (&aggregate.field, aggregate.function) {
                (Some(field), _) => Some((position(field)?, field.clone())),
                (None, AggregateFunction::Count) => None,
                (None, function) => {
                    return Err(CrossRowConfigError::Invalid(format!(
                        "aggregate '{}' needs the `field` to aggregate",
                        function.as_str()
                    )));
                }
            };
            let tolerance = match &aggregate.tolerance {
                None => Fixed(0),
                Some(number) => match Fixed::parse(&number.to_string()) {
                    Some(tolerance) if tolerance.0 >= 0 => tolerance,
                    _ => {
                        return Err(invalid(
                            "tolerance must be a number ≥ 0 with at most 9 decimals",
                        ));
                    }
                },
            };
            if let Expected::Constant(number) = &aggregate.equals
                && Fixed::parse(&number.to_string()).is_none()
            {
                return Err(invalid("`equals` must be a number with at most 9 decimals"));
            }
            Compiled::Aggregate(Box::new(AggregateState {
                function: aggregate.function,
                field,
                filter: filter(&aggregate.filter)?,
                negative: filter(&aggregate.negative_when)?,
                equals: aggregate.equals.clone(),
                tolerance,
                where_text: where_text(&aggregate.filter),
                groups: BTreeMap::new(),
                scanned: 0,
                occurrences: 0,
            }))
        }
        CrossRowRuleConfig::ControlField(control) => {
            if control.equals.is_none()
                && control.pattern.is_none()
                && control.equals_file_name.is_none()
            {
                return Err(invalid(
                    "control_field needs `equals`, `pattern` or `equals_file_name` (or several)",
                ));
            }
            let file_name = match &control.equals_file_name {
                None => None,
                Some(pattern) => {
                    let regex = Regex::new(pattern).map_err(|e| {
                        CrossRowConfigError::Invalid(format!(
                            "`equals_file_name` is not a valid regex: {e}"
                        ))
                    })?;
                    if regex.captures_len() != 2 {
                        return Err(invalid(
                            "`equals_file_name` needs exactly one capture group, `(…)`: the part \
                             of the file's name the field must equal",
                        ));
                    }
                    Some(regex)
                }
            };
            let pattern = match &control.pattern {
                None => None,
                Some(pattern) => Some(Regex::new(pattern).map_err(|e| {
                    CrossRowConfigError::Invalid(format!("`pattern` is not a valid regex: {e}"))
                })?),
            };
            Compiled::ControlField { config: control.clone(), pattern, file_name }
        }
    })
}

impl AggregateState {
    fn observe(&mut self, row: &Row, control: &[ControlRecord]) {
        if let Expected::Control(reference) = &self.equals {
            while let Some(record) = control.get(self.scanned) {
                if record.row_number >= row.row_number() {
                    break;
                }
                if record.post_type == reference.control_record {
                    self.occurrences += 1;
                }
                self.scanned += 1;
            }
        }
        if !self.filter.matches(row) {
            return;
        }
        let group = self.groups.entry(self.occurrences).or_default();
        group.rows += 1;
        group.first_row.get_or_insert(row.row_number());
        let Some((position, _)) = &self.field else { return };
        let value = row.value(*position).unwrap_or(&Value::Null);
        if value.is_null() {
            return;
        }
        match Fixed::from_value(value) {
            Some(mut number) => {
                group.values += 1;
                group.min = Some(group.min.map_or(number, |m| m.min(number)));
                group.max = Some(group.max.map_or(number, |m| m.max(number)));
                if !self.negative.is_empty() && self.negative.matches(row) {
                    number = Fixed(-number.0);
                }
                group.sum += number.0;
            }
            None => {
                group.not_numbers += 1;
                group.first_not_number.get_or_insert(row.row_number());
            }
        }
    }

    /// Every failed comparison, with the control record's line when there is one.
    fn failures(&self, locale: Locale, control: &[ControlRecord]) -> Vec<(String, Option<u64>)> {
        let mut failures = Vec::new();
        let described = self.describe();
        for group in self.groups.values() {
            if let Some(row) = group.first_not_number {
                failures
                    .push((not_a_number_message(locale, &described, group.not_numbers, row), None));
            }
        }
        let empty = Accumulator::default();
        match &self.equals {
            Expected::Constant(number) => {
                let expected = Fixed::parse(&number.to_string()).unwrap_or(Fixed(0));
                let mut all = empty.clone();
                for group in self.groups.values() {
                    all.rows += group.rows;
                    all.values += group.values;
                    all.sum += group.sum;
                    all.min = min_of(all.min, group.min);
                    all.max = max_of(all.max, group.max);
                }
                if let Some(message) = self.compare(locale, &described, &all, expected, None) {
                    failures.push((message, None));
                }
            }
            Expected::Control(reference) => {
                let records: Vec<&ControlRecord> =
                    control.iter().filter(|c| c.post_type == reference.control_record).collect();
                if records.is_empty() {
                    failures.push((missing_control(locale, &reference.control_record), None));
                    return failures;
                }
                // A trailer closes the rows before it; a header opens the rows after it.
                let header = records[0].role == PostRole::Header;
                for (occurrence, record) in records.iter().enumerate() {
                    let group_key = if header { occurrence + 1 } else { occurrence };
                    let group = self.groups.get(&group_key).unwrap_or(&empty);
                    let text = record.fields.get(&reference.field).and_then(Value::as_str);
                    match text.and_then(Fixed::parse) {
                        None => failures.push((
                            control_not_a_number(locale, reference, record, text),
                            Some(record.row_number),
                        )),
                        Some(expected) => {
                            if let Some(message) =
                                self.compare(locale, &described, group, expected, Some(record))
                            {
                                failures.push((message, Some(record.row_number)));
                            }
                        }
                    }
                }
                let outside =
                    if header { self.groups.get(&0) } else { self.groups.get(&records.len()) };
                if let Some(group) = outside.filter(|g| g.rows > 0) {
                    failures.push((
                        outside_message(
                            locale,
                            group.rows,
                            group.first_row.unwrap_or(0),
                            &reference.control_record,
                        ),
                        None,
                    ));
                }
            }
        }
        failures
    }

    fn compare(
        &self,
        locale: Locale,
        described: &str,
        group: &Accumulator,
        expected: Fixed,
        record: Option<&ControlRecord>,
    ) -> Option<String> {
        let actual = group.result(self.function);
        let within = actual.is_some_and(|a| (a.0 - expected.0).abs() <= self.tolerance.0);
        if within {
            return None;
        }
        let actual = actual.map(|a| a.to_string()).unwrap_or_else(|| "-".to_owned());
        Some(aggregate_message(locale, described, &actual, expected, self.tolerance, record))
    }

    /// `sum of amount_ore where kind is payment`, `count of rows`.
    fn describe(&self) -> String {
        let field = match &self.field {
            Some((_, name)) => name.as_str(),
            None => "rows",
        };
        format!("{} of {field}{}", self.function.as_str(), self.where_text)
    }
}

/// ` where kind is payment and status is one of a, b` (empty without a filter).
fn where_text(filter: &BTreeMap<String, Vec<Value>>) -> String {
    let conditions: Vec<String> = filter
        .iter()
        .map(|(field, values)| {
            let values: Vec<String> = values
                .iter()
                .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
                .collect();
            match values.as_slice() {
                [one] => format!("{field} is {one}"),
                _ => format!("{field} is one of {}", values.join(", ")),
            }
        })
        .collect();
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" where {}", conditions.join(" and "))
    }
}

fn min_of(a: Option<Fixed>, b: Option<Fixed>) -> Option<Fixed> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_of(a: Option<Fixed>, b: Option<Fixed>) -> Option<Fixed> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A 128-bit hash of the row's values at `positions` (two differently seeded SipHashes).
fn key_hash(row: &Row, positions: &[usize]) -> u128 {
    let mut first = DefaultHasher::new();
    let mut second = DefaultHasher::new();
    0xa5_u8.hash(&mut second);
    for position in positions {
        let value = row.value(*position).unwrap_or(&Value::Null);
        // The JSON text tells `1` from `"1"` and keeps fields apart.
        let text = value.to_string();
        text.hash(&mut first);
        text.hash(&mut second);
    }
    (u128::from(first.finish()) << 64) | u128::from(second.finish())
}

fn duplicate_message(locale: Locale, fields: &[String], first: u64) -> String {
    let fields = fields.join(", ");
    match locale {
        Locale::Sv => {
            format!("samma värde i {fields} som rad {first}: en fil får inte innehålla dubbletter")
        }
        Locale::En => format!("the same {fields} as row {first}: a file must not repeat them"),
    }
}

fn count_message(
    locale: Locale,
    count: u64,
    min: Option<u64>,
    max: Option<u64>,
    filtered: bool,
) -> String {
    let bounds = |at_least: &str, at_most: &str| match (min, max) {
        (Some(min), Some(max)) => format!("{at_least} {min}, {at_most} {max}"),
        (Some(min), None) => format!("{at_least} {min}"),
        (None, Some(max)) => format!("{at_most} {max}"),
        (None, None) => String::new(),
    };
    match locale {
        Locale::Sv => format!(
            "filen har {count} rader{}; mallen kräver minst/högst: {}",
            if filtered { " som matchar villkoret" } else { "" },
            bounds("minst", "högst")
        ),
        Locale::En => format!(
            "the file has {count} rows{}; the template wants {}",
            if filtered { " that match the rule's `where`" } else { "" },
            bounds("at least", "at most")
        ),
    }
}

fn aggregate_message(
    locale: Locale,
    described: &str,
    actual: &str,
    expected: Fixed,
    tolerance: Fixed,
    record: Option<&ControlRecord>,
) -> String {
    let tolerance = if tolerance.0 == 0 { String::new() } else { format!(" (± {tolerance})") };
    match (locale, record) {
        (Locale::En, Some(record)) => format!(
            "the {described} is {actual}, but the {} record on line {} says {expected}{tolerance}",
            record.post_type, record.row_number
        ),
        (Locale::En, None) => {
            format!("the {described} is {actual}, but the template expects {expected}{tolerance}")
        }
        (Locale::Sv, Some(record)) => format!(
            "{described} är {actual}, men posten {} på rad {} anger {expected}{tolerance}",
            record.post_type, record.row_number
        ),
        (Locale::Sv, None) => {
            format!("{described} är {actual}, men mallen förväntar sig {expected}{tolerance}")
        }
    }
}

fn missing_control(locale: Locale, name: &str) -> String {
    match locale {
        Locale::Sv => format!("filen saknar posten '{name}' som kontrollen jämför med"),
        Locale::En => format!("the file has no '{name}' record for the rule to compare with"),
    }
}

fn control_not_a_number(
    locale: Locale,
    reference: &ControlReference,
    record: &ControlRecord,
    text: Option<&str>,
) -> String {
    let text = text.unwrap_or("");
    match locale {
        Locale::Sv => format!(
            "fältet {} i posten {} på rad {} är inget tal: '{text}'",
            reference.field, record.post_type, record.row_number
        ),
        Locale::En => format!(
            "the field {} of the {} record on line {} is not a number: '{text}'",
            reference.field, record.post_type, record.row_number
        ),
    }
}

fn not_a_number_message(locale: Locale, described: &str, count: u64, row: u64) -> String {
    match locale {
        Locale::Sv => format!("{described}: {count} värde(n) är inga tal, första på rad {row}"),
        Locale::En => {
            format!("{described}: {count} value(s) are not numbers, the first on row {row}")
        }
    }
}

fn outside_message(locale: Locale, rows: u64, first: u64, name: &str) -> String {
    match locale {
        Locale::Sv => format!(
            "{rows} rad(er), den första på rad {first}, hör inte till någon post '{name}', så \
             ingen kontrollsumma täcker dem"
        ),
        Locale::En => format!(
            "{rows} row(s), the first on line {first}, belong to no '{name}' record, so no \
             control total covers them"
        ),
    }
}

fn control_field_message(
    locale: Locale,
    config: &ControlFieldRuleConfig,
    record: &ControlRecord,
    text: Option<&str>,
    from_name: Option<&str>,
) -> String {
    let mut wanted = Vec::new();
    if let Some(equals) = &config.equals {
        wanted.push(format!("'{equals}'"));
    }
    if let Some(pattern) = &config.pattern {
        wanted.push(format!("/{pattern}/"));
    }
    if let Some(from_name) = from_name {
        wanted.push(match locale {
            Locale::Sv => format!("att det börjar med '{from_name}' (ur filens namn)"),
            Locale::En => format!("it to begin with '{from_name}' (from the file's name)"),
        });
    }
    let wanted = wanted.join(match locale {
        Locale::Sv => " och ",
        Locale::En => " and ",
    });
    let text = text.unwrap_or("");
    match locale {
        Locale::Sv => format!(
            "fältet {} i posten {} på rad {} är '{text}'; mallen kräver {wanted}",
            config.field, record.post_type, record.row_number
        ),
        Locale::En => format!(
            "the field {} of the {} record on line {} is '{text}'; the template wants {wanted}",
            config.field, record.post_type, record.row_number
        ),
    }
}

fn file_name_message(locale: Locale, file_name: &str, regex: &Regex) -> String {
    match locale {
        Locale::Sv => format!(
            "filens namn '{file_name}' matchar inte /{regex}/, så fältet kan inte jämföras med det"
        ),
        Locale::En => format!(
            "the file's name '{file_name}' does not match /{regex}/, so the field cannot be \
             compared with it"
        ),
    }
}

fn unseen_note(locale: Locale, rows: u64) -> String {
    match locale {
        Locale::Sv => {
            format!(" ({rows} rad(er) kunde inte läsas eller mappas och räknas inte med)")
        }
        Locale::En => format!(" ({rows} row(s) could not be read or mapped and are not included)"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn shape() -> Arc<RowShape> {
        Arc::new(RowShape::new(["kind", "amount", "ref"]))
    }

    fn row(number: u64, kind: &str, amount: Value, reference: &str) -> Row {
        let mut row = Row::new(shape());
        row.set_row_number(number);
        *row.value_mut(0).expect("kind") = json!(kind);
        *row.value_mut(1).expect("amount") = amount;
        *row.value_mut(2).expect("ref") = json!(reference);
        row
    }

    fn control(
        post_type: &str,
        role: PostRole,
        row_number: u64,
        field: &str,
        value: &str,
    ) -> ControlRecord {
        let mut fields = serde_json::Map::new();
        fields.insert(field.to_owned(), json!(value));
        ControlRecord { post_type: post_type.to_owned(), role, row_number, fields }
    }

    fn validator(rules: Value) -> CrossRowValidator {
        let configs: Vec<CrossRowRuleConfig> = serde_json::from_value(rules).expect("rules");
        CrossRowValidator::build(&configs, &shape(), Locale::En).expect("builds")
    }

    /// Runs `rows` (valid) past the rules with `control`; (row errors' rules, failures' messages).
    fn run(rules: Value, rows: &[Row], control: &[ControlRecord]) -> (Vec<String>, Vec<String>) {
        let mut validator = validator(rules);
        let mut errors = Vec::new();
        for row in rows {
            let seen: Vec<ControlRecord> =
                control.iter().filter(|c| c.row_number < row.row_number()).cloned().collect();
            validator.check_row(row, true, &seen, &mut errors);
        }
        let failures = validator.finish(control);
        (
            errors.iter().map(|e| format!("{} {}", e.rule, e.message)).collect(),
            failures.iter().map(|f| f.message.clone()).collect(),
        )
    }

    #[test]
    fn fixed_point_numbers_parse_exactly_and_print_without_noise() {
        assert_eq!(Fixed::parse("000172550"), Some(Fixed(172550 * FIXED_SCALE)));
        assert_eq!(Fixed::parse(" -0.1 ").map(|f| f.to_string()), Some("-0.1".to_owned()));
        let sum = Fixed(Fixed::parse("0.1").unwrap().0 + Fixed::parse("0.2").unwrap().0);
        assert_eq!(Some(sum), Fixed::parse("0.3"));
        for bad in ["", ".", "1e5", "12a", "0.1234567891", "--1"] {
            assert_eq!(Fixed::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_later_duplicate_is_rejected_naming_the_first_row() {
        let rows = [
            row(2, "payment", json!(1), "A"),
            row(3, "payment", json!(2), "B"),
            row(4, "payment", json!(3), "A"),
        ];
        let (errors, failures) = run(json!([{"type": "unique", "fields": ["ref"]}]), &rows, &[]);
        assert_eq!(errors, vec!["unique the same ref as row 2: a file must not repeat them"]);
        assert!(failures.is_empty());
    }

    #[test]
    fn an_invalid_row_never_makes_a_valid_one_a_duplicate() {
        let mut validator = validator(json!([{"type": "unique", "fields": ["ref", "kind"]}]));
        let mut errors = Vec::new();
        assert!(!validator.check_row(&row(1, "payment", json!(1), "A"), false, &[], &mut errors));
        assert!(validator.check_row(&row(2, "payment", json!(1), "A"), true, &[], &mut errors));
        assert!(validator.check_row(&row(3, "refund", json!(1), "A"), true, &[], &mut errors));
        assert!(!validator.check_row(&row(4, "payment", json!(1), "A"), true, &[], &mut errors));
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn counts_and_constant_aggregates_are_checked_with_their_tolerance() {
        let rows = [
            row(1, "payment", json!(10.25), "A"),
            row(2, "refund", json!("4.75"), "B"),
            row(3, "payment", Value::Null, "C"),
        ];
        let rules = json!([
            {"type": "count", "min": 4},
            {"type": "count", "max": 1, "where": {"kind": ["payment"]}},
            {"type": "aggregate", "function": "sum", "field": "amount", "equals": 15},
            {"type": "aggregate", "function": "sum", "field": "amount", "equals": 5.5,
             "negative_when": {"kind": ["refund"]}},
            {"type": "aggregate", "function": "avg", "field": "amount", "equals": 7.4, "tolerance": 0.1},
            {"type": "aggregate", "function": "max", "field": "amount", "equals": 10},
        ]);
        let (_, failures) = run(rules, &rows, &[]);
        assert_eq!(
            failures,
            vec![
                "the file has 3 rows; the template wants at least 4",
                "the file has 2 rows that match the rule's `where`; the template wants at most 1",
                "the max of amount is 10.25, but the template expects 10",
            ]
        );
    }

    #[test]
    fn each_trailer_is_compared_with_the_rows_since_the_previous_one() {
        let rows = [
            row(2, "payment", json!(100), "A"),
            row(3, "payment", json!(50), "B"),
            row(5, "payment", json!(7), "C"),
            row(8, "payment", json!(1), "D"),
        ];
        let control = [
            control("deposit", PostRole::Trailer, 4, "total", "150"),
            control("deposit", PostRole::Trailer, 6, "total", "0000008"),
        ];
        let rules = json!([{"type": "aggregate", "function": "sum", "field": "amount",
                            "equals": {"control_record": "deposit", "field": "total"}}]);
        let (_, failures) = run(rules, &rows, &control);
        assert_eq!(
            failures,
            vec![
                "the sum of amount is 7, but the deposit record on line 6 says 8",
                "1 row(s), the first on line 8, belong to no 'deposit' record, so no control total covers them",
            ]
        );
    }

    #[test]
    fn each_header_is_compared_with_the_rows_up_to_the_next_one() {
        let rows =
            [row(2, "p", json!(1), "A"), row(3, "p", json!(1), "B"), row(5, "p", json!(1), "C")];
        let control = [
            control("batch", PostRole::Header, 1, "rows", "2"),
            control("batch", PostRole::Header, 4, "rows", "x"),
        ];
        let rules = json!([{"type": "aggregate", "function": "count",
                            "equals": {"control_record": "batch", "field": "rows"}}]);
        let (_, failures) = run(rules, &rows, &control);
        assert_eq!(
            failures,
            vec!["the field rows of the batch record on line 4 is not a number: 'x'"]
        );
    }

    #[test]
    fn control_fields_and_missing_control_records_fail_the_file() {
        let control = [control("start", PostRole::Header, 1, "test_marker", "T")];
        let rules = json!([
            {"type": "control_field", "control_record": "start", "field": "test_marker", "equals": "P"},
            {"type": "control_field", "control_record": "end", "field": "x", "pattern": "^\\d+$"},
            {"type": "aggregate", "function": "count", "equals": {"control_record": "end", "field": "n"}},
        ]);
        let (_, failures) = run(rules, &[row(2, "p", json!(1), "A")], &control);
        assert_eq!(
            failures,
            vec![
                "the field test_marker of the start record on line 1 is 'T'; the template wants 'P'",
                "the file has no 'end' record for the rule to compare with",
                "the file has no 'end' record for the rule to compare with",
            ]
        );
    }

    #[test]
    fn values_that_are_not_numbers_and_unseen_rows_are_reported() {
        let mut validator = validator(json!([
            {"type": "aggregate", "function": "sum", "field": "amount", "equals": 1}
        ]));
        let mut errors = Vec::new();
        validator.check_row(&row(1, "p", json!("one"), "A"), true, &[], &mut errors);
        validator.skip_row();
        let failures: Vec<String> = validator.finish(&[]).into_iter().map(|f| f.message).collect();
        assert_eq!(failures.len(), 2);
        assert!(
            failures[0]
                .starts_with("sum of amount: 1 value(s) are not numbers, the first on row 1"),
            "{failures:?}"
        );
        assert!(
            failures[1].ends_with("(1 row(s) could not be read or mapped and are not included)"),
            "{failures:?}"
        );
    }

    #[test]
    fn config_problems_are_found_before_any_row() {
        let configs: Vec<CrossRowRuleConfig> = serde_json::from_value(json!([
            {"type": "unique", "fields": []},
            {"type": "count"},
            {"type": "aggregate", "function": "sum", "equals": 1},
            {"type": "control_field", "control_record": "a", "field": "b", "pattern": "("},
            {"type": "count", "min": 1},
        ]))
        .expect("parses");
        let indexes: Vec<usize> =
            CrossRowValidator::validate(&configs).iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![0, 1, 2, 3]);
        let unknown = CrossRowValidator::build(
            &serde_json::from_value::<Vec<CrossRowRuleConfig>>(
                json!([{"type": "unique", "fields": ["nope"]}]),
            )
            .expect("parses"),
            &shape(),
            Locale::Sv,
        )
        .expect_err("unknown field");
        assert!(unknown[0].1.to_string().contains("'nope'"));
    }

    #[test]
    fn messages_are_swedish_for_a_swedish_template() {
        let configs: Vec<CrossRowRuleConfig> =
            serde_json::from_value(json!([{"type": "count", "min": 2}])).expect("rules");
        let mut validator =
            CrossRowValidator::build(&configs, &shape(), Locale::Sv).expect("builds");
        let failures = validator.finish(&[]);
        assert!(failures[0].message.starts_with("filen har 0 rader"), "{}", failures[0].message);
    }

    #[test]
    fn a_header_field_is_checked_against_the_files_name() {
        let control = [ControlRecord {
            post_type: "start".to_owned(),
            role: intake_parsers::fixed_width::PostRole::Header,
            row_number: 1,
            fields: serde_json::from_value(json!({"written_at": "20261123063012"}))
                .expect("fields"),
        }];
        let rules = json!([{"type": "control_field", "control_record": "start",
                            "field": "written_at", "equals_file_name": "BGMAX_(\\d{8})"}]);
        let shape = RowShape::new(["a"]);
        let configs: Vec<CrossRowRuleConfig> = serde_json::from_value(rules).expect("rules");
        let verdict = |file: &str| {
            let mut validator = CrossRowValidator::build(&configs, &shape, Locale::En)
                .expect("builds")
                .for_file(file);
            validator.finish(&control).into_iter().map(|f| f.message).collect::<Vec<_>>()
        };
        assert!(verdict("/inbox/BGMAX_20261123.txt").is_empty());
        assert_eq!(
            verdict("BGMAX_20261124.txt"),
            ["the field written_at of the start record on line 1 is '20261123063012'; the \
              template wants it to begin with '20261124' (from the file's name)"]
        );
        assert_eq!(
            verdict("payments.txt"),
            ["the file's name 'payments.txt' does not match /BGMAX_(\\d{8})/, so the field \
              cannot be compared with it"]
        );
        let no_group: Vec<CrossRowRuleConfig> = serde_json::from_value(json!([{"type":
            "control_field", "control_record": "start", "field": "x", "equals_file_name": "\\d+"}]))
        .expect("rules");
        assert!(CrossRowValidator::build(&no_group, &shape, Locale::En).is_err());
    }
}
