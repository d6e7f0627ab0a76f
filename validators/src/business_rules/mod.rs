//! Business rules: validation layer 4, read-only look-ups in the target API.
//!
//! A template lists its rules in `validation.business_rules`; each is a [`BusinessRuleConfig`]
//! tagged by `type`: `exists` (a record matching the row must exist, optionally passing field
//! comparisons) or `not_exists` (none may). [`BusinessRules::build`] compiles them for the
//! mapped rows once; the rows are then checked in batches:
//!
//! 1. [`BusinessRules::is_ready`] says whether every look-up a row needs is already known (in the
//!    cache, or skipped because a look-up field is null); [`BusinessRules::register`] notes the
//!    keys a row needs that are not, and the caller holds the row back.
//! 2. When enough keys are waiting ([`BusinessRules::batch_full`]: [`MAX_KEYS_PER_REQUEST`] of one
//!    rule) or the caller wants to go on (a row cap, the end of the file),
//!    [`BusinessRules::take_requests`] gives one [`LookupRequest`] per rule and up to
//!    [`MAX_KEYS_PER_REQUEST`] keys: `{"<field>": {"$in": [...]}}` ANDed with the rule's `filter`.
//!    The caller runs them against the API (every page) and hands each answer to
//!    [`BusinessRules::complete`] — or lets [`BusinessRules::resolve`] do both through a
//!    [`RecordLookup`].
//! 3. [`BusinessRules::check`] then checks the held rows in their order, from the cache, and
//!    [`BusinessRules::end_batch`] releases the batch's keys.
//!
//! **The cache** is per run (one `BusinessRules` per file) and bounded: each rule keeps at most
//! [`DEFAULT_CACHE_KEYS`] looked-up keys (when it would grow beyond that, the keys no held row
//! needs are dropped and looked up again if they come back), each with at most
//! [`MAX_RECORDS_PER_KEY`] matching records, reduced to the fields the rule compares. A key costs
//! its text, about 100 bytes of bookkeeping, and the compared values: a rule with short keys
//! and no comparisons stays under about 10 MB.
//!
//! **Failures of the API** are not row errors: a look-up that fails (after the client's own
//! retries) is a [`LookupFailed`] that the caller turns into a failed file, never a rejected row.
//!
//! What this module is not: the HTTP calls (the engine's M2M client does them), and presence
//! checks (a row whose look-up field is null skips the rule; that is the schema's job).

mod compare;
mod config;
mod messages;

use std::collections::{HashMap, HashSet};

use intake_parsers::{Layer, Locale, Row, RowError, RowShape};
use serde_json::{Map, Value};
use thiserror::Error;

pub use config::{
    BusinessRuleConfig, BusinessRuleConfigError, CompareOp, Comparison, ExistsRuleConfig,
    NotExistsRuleConfig, RuleMessage, WhereFields,
};

use config::RuleParts;
use messages::Expected;

/// The most keys one look-up asks for (the API's largest page is 100 items).
pub const MAX_KEYS_PER_REQUEST: usize = 100;
/// The most looked-up keys a rule keeps in its cache by default.
pub const DEFAULT_CACHE_KEYS: usize = 50_000;
/// The most matching records kept per key (for comparisons; `exists` needs only one).
pub const MAX_RECORDS_PER_KEY: usize = 16;

/// Separates the parts of a key with several look-up fields.
const KEY_SEPARATOR: char = '\u{1f}';

/// The records a [`LookupRequest`] matches, fetched from the API: the seam between this crate
/// and the M2M client.
pub trait RecordLookup {
    /// Every record of `request.resource` matching `request.filter` (every page), with at least
    /// `request.fields`; or why the API could not answer (after its own retries).
    fn find(&mut self, request: &LookupRequest) -> Result<Vec<Map<String, Value>>, String>;
}

/// One look-up: a list request for the keys of one rule that are not known yet.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupRequest {
    /// The rule's position in `validation.business_rules`.
    pub rule_index: usize,
    /// The rule's type (`exists`, `not_exists`).
    pub rule_type: &'static str,
    /// The resource to list.
    pub resource: String,
    /// The `where` filter: the keys with `$in`, ANDed with the rule's `filter`.
    pub filter: Value,
    /// The fields the rule needs from each record (`_id` comes anyway).
    pub fields: Vec<String>,
    /// How many distinct keys the request asks for.
    pub key_count: usize,
    /// Which compiled rule, and the key texts asked for.
    position: usize,
    keys: Vec<String>,
}

impl LookupRequest {
    /// The failure of this request, with the API's message.
    pub fn failed(&self, message: impl Into<String>) -> LookupFailed {
        LookupFailed {
            rule_index: self.rule_index,
            rule_type: self.rule_type,
            resource: self.resource.clone(),
            message: message.into(),
        }
    }
}

/// A look-up the API did not answer: the file cannot be checked, no row is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "business rule {rule_index} ({rule_type} in '{resource}'): the look-up in the target API \
     failed: {message}"
)]
pub struct LookupFailed {
    /// The rule's position in `validation.business_rules`.
    pub rule_index: usize,
    /// The rule's type.
    pub rule_type: &'static str,
    /// The resource looked in.
    pub resource: String,
    /// What the API (or the client) said.
    pub message: String,
}

/// [`BusinessRules::check`] met a row whose keys were not looked up: a bug of the caller, which
/// must [`register`](BusinessRules::register) and resolve a row before checking it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("internal error: business rule {rule_index} was checked before its look-up")]
pub struct NotResolved {
    /// The rule's position in `validation.business_rules`.
    pub rule_index: usize,
}

/// A problem of a business rule with the mapped rows: a field they do not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessRuleFieldError {
    /// The rule's position in `validation.business_rules`.
    pub index: usize,
    /// Where in the rule (`/where/code`, `/compare/0/row_field`).
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exists,
    NotExists,
}

/// One look-up field: the resource's field and where the row holds its value.
#[derive(Debug, Clone)]
struct KeyField {
    resource_field: String,
    row_field: String,
    position: usize,
}

/// The other side of a comparison.
#[derive(Debug, Clone)]
enum Operand {
    Constant(Value),
    Row { field: String, position: usize },
}

#[derive(Debug, Clone)]
struct CompiledComparison {
    record_field: String,
    op: CompareOp,
    operand: Operand,
}

/// A record found for a key, reduced to what the rule needs.
#[derive(Debug, Clone)]
struct FoundRecord {
    id: Option<String>,
    /// The record's value of each comparison's field, `None` when it lacks it.
    values: Vec<Option<Value>>,
}

/// A key waiting for its look-up.
#[derive(Debug, Clone)]
struct PendingKey {
    text: String,
    values: Vec<Value>,
}

/// The key a row looks up with one rule.
enum RowKey {
    /// A look-up field is null: the rule does not apply.
    Skip,
    /// A look-up field holds a list or an object.
    NotScalar { field: String, value: Value },
    /// The key's text and the row's values.
    Key { text: String, values: Vec<Value> },
}

#[derive(Debug, Clone)]
struct CompiledRule {
    index: usize,
    kind: Kind,
    resource: String,
    keys: Vec<KeyField>,
    filter: Option<Map<String, Value>>,
    compare: Vec<CompiledComparison>,
    fields: Vec<String>,
    message: Option<RuleMessage>,
    /// Key text → the records found (empty: none).
    cache: HashMap<String, Vec<FoundRecord>>,
    pending: Vec<PendingKey>,
    pending_set: HashSet<String>,
    /// Keys the held rows need; never dropped from the cache while held.
    batch: HashSet<String>,
}

/// Validation layer 4 compiled for rows of one shape, with its per-run cache.
#[derive(Debug, Clone)]
pub struct BusinessRules {
    rules: Vec<CompiledRule>,
    locale: Locale,
    max_errors: usize,
    cache_keys: usize,
}

impl BusinessRules {
    /// Compiles `configs` for rows of `shape`, with messages in `locale` and at most
    /// `max_errors` errors per row; every problem is reported (config problems, see
    /// [`BusinessRuleConfig::problems`], and row fields the rows do not have).
    pub fn build(
        configs: &[BusinessRuleConfig],
        shape: &RowShape,
        locale: Locale,
        max_errors: usize,
    ) -> Result<Self, Vec<BusinessRuleFieldError>> {
        let mut problems = Vec::new();
        let mut rules = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let config_problems = config.problems();
            if !config_problems.is_empty() {
                problems.extend(config_problems.into_iter().map(|p| BusinessRuleFieldError {
                    index,
                    path: p.path,
                    problem: p.problem,
                }));
                continue;
            }
            match compile(index, &config.parts(), shape) {
                Ok(rule) => rules.push(rule),
                Err(found) => problems.extend(found),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self { rules, locale, max_errors: max_errors.max(1), cache_keys: DEFAULT_CACHE_KEYS })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Sets how many looked-up keys each rule keeps (at least [`MAX_KEYS_PER_REQUEST`]).
    pub fn set_cache_keys(&mut self, keys: usize) {
        self.cache_keys = keys.max(MAX_KEYS_PER_REQUEST);
    }

    /// The resources the rules look in, each once, in rule order (for the `<resource>:list`
    /// capabilities an import asks for).
    pub fn resources(configs: &[BusinessRuleConfig]) -> Vec<String> {
        let mut resources: Vec<String> = Vec::new();
        for config in configs {
            if !resources.iter().any(|r| r == config.resource()) {
                resources.push(config.resource().to_owned());
            }
        }
        resources
    }

    /// Whether `row` can be checked now: every key it needs is cached (or skipped).
    pub fn is_ready(&self, row: &Row) -> bool {
        self.rules.iter().all(|rule| match rule.row_key(row) {
            RowKey::Key { text, .. } => rule.cache.contains_key(&text),
            RowKey::Skip | RowKey::NotScalar { .. } => true,
        })
    }

    /// Notes the keys `row` needs: those not cached wait for the next [`take_requests`]
    /// (`Self::take_requests`), and all of them stay cached until [`end_batch`](Self::end_batch).
    /// Returns whether any key waits.
    pub fn register(&mut self, row: &Row) -> bool {
        let mut waits = false;
        for rule in &mut self.rules {
            let RowKey::Key { text, values } = rule.row_key(row) else { continue };
            if !rule.cache.contains_key(&text) {
                waits = true;
                if rule.pending_set.insert(text.clone()) {
                    rule.pending.push(PendingKey { text: text.clone(), values });
                }
            }
            rule.batch.insert(text);
        }
        waits
    }

    /// Whether some rule has [`MAX_KEYS_PER_REQUEST`] keys waiting: time to look them up.
    pub fn batch_full(&self) -> bool {
        self.rules.iter().any(|rule| rule.pending.len() >= MAX_KEYS_PER_REQUEST)
    }

    /// Whether any key waits for a look-up.
    pub fn has_pending(&self) -> bool {
        self.rules.iter().any(|rule| !rule.pending.is_empty())
    }

    /// The look-ups for every waiting key: per rule, one request per [`MAX_KEYS_PER_REQUEST`]
    /// keys. The keys stop waiting; answer each request with [`complete`](Self::complete).
    pub fn take_requests(&mut self) -> Vec<LookupRequest> {
        let mut requests = Vec::new();
        let capacity = self.cache_keys;
        for (position, rule) in self.rules.iter_mut().enumerate() {
            if rule.pending.is_empty() {
                continue;
            }
            if rule.cache.len() + rule.pending.len() > capacity {
                // Keep what the held rows need; the rest is looked up again if it comes back.
                let batch = &rule.batch;
                rule.cache.retain(|key, _| batch.contains(key));
            }
            let pending = std::mem::take(&mut rule.pending);
            rule.pending_set.clear();
            for chunk in pending.chunks(MAX_KEYS_PER_REQUEST) {
                requests.push(rule.request(position, chunk));
            }
        }
        requests
    }

    /// Stores the answer to `request`: the records the API found (keys without one are cached
    /// as missing).
    pub fn complete(&mut self, request: &LookupRequest, records: &[Map<String, Value>]) {
        let Some(rule) = self.rules.get_mut(request.position) else { return };
        let mut found: HashMap<&str, Vec<FoundRecord>> =
            request.keys.iter().map(|key| (key.as_str(), Vec::new())).collect();
        for record in records {
            for key in rule.record_keys(record) {
                if let Some(list) = found.get_mut(key.as_str())
                    && list.len() < MAX_RECORDS_PER_KEY
                {
                    list.push(rule.reduce(record));
                }
            }
        }
        for (key, records) in found {
            rule.cache.insert(key.to_owned(), records);
        }
    }

    /// Looks up every waiting key through `lookup`; returns the number of requests made.
    pub fn resolve(&mut self, lookup: &mut dyn RecordLookup) -> Result<usize, LookupFailed> {
        let requests = self.take_requests();
        for request in &requests {
            let records = lookup.find(request).map_err(|message| request.failed(message))?;
            self.complete(request, &records);
        }
        Ok(requests.len())
    }

    /// The held rows are done: their keys may leave the cache again.
    pub fn end_batch(&mut self) {
        for rule in &mut self.rules {
            rule.batch.clear();
        }
    }

    /// Checks `row` against every rule from the cache, appending its errors (layer
    /// `business_rules`); returns whether it passed. Every key must be known: see
    /// [`is_ready`](Self::is_ready) and [`register`](Self::register).
    pub fn check(&self, row: &Row, errors: &mut Vec<RowError>) -> Result<bool, NotResolved> {
        let start = errors.len();
        for rule in &self.rules {
            if errors.len() - start >= self.max_errors {
                break;
            }
            match rule.row_key(row) {
                RowKey::Skip => {}
                RowKey::NotScalar { field, value } => {
                    let message = messages::not_a_single_value(self.locale, &rule.resource);
                    errors.push(rule.error(rule.kind_name(), field, value, message));
                }
                RowKey::Key { text, .. } => {
                    let Some(found) = rule.cache.get(&text) else {
                        return Err(NotResolved { rule_index: rule.index });
                    };
                    if let Some(error) = rule.verdict(row, found, self.locale) {
                        errors.push(error);
                    }
                }
            }
        }
        Ok(errors.len() == start)
    }
}

/// One rule compiled for `shape`, or its field problems.
fn compile(
    index: usize,
    parts: &RuleParts<'_>,
    shape: &RowShape,
) -> Result<CompiledRule, Vec<BusinessRuleFieldError>> {
    let mut problems = Vec::new();
    let mut unknown = |path: String, field: &str| {
        problems.push(BusinessRuleFieldError {
            index,
            path,
            problem: format!(
                "business rule '{}' uses the field '{field}', which mapped rows do not have \
                 (they have: {})",
                parts.kind,
                shape.names().join(", ")
            ),
        });
    };
    let mut keys = Vec::new();
    for (resource_field, row_field) in parts.where_fields.pairs() {
        match shape.position(row_field) {
            Some(position) => keys.push(KeyField {
                resource_field: resource_field.clone(),
                row_field: row_field.clone(),
                position,
            }),
            None => unknown(
                format!("/where/{}", resource_field.replace('~', "~0").replace('/', "~1")),
                row_field,
            ),
        }
    }
    let mut compare = Vec::new();
    for (i, comparison) in parts.compare.iter().enumerate() {
        let operand = match (&comparison.value, &comparison.row_field) {
            (Some(value), _) => Operand::Constant(value.clone()),
            (None, Some(field)) => match shape.position(field) {
                Some(position) => Operand::Row { field: field.clone(), position },
                None => {
                    unknown(format!("/compare/{i}/row_field"), field);
                    continue;
                }
            },
            (None, None) => continue,
        };
        compare.push(CompiledComparison {
            record_field: comparison.record_field.clone(),
            op: comparison.op,
            operand,
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Ask only for what the rule reads (top-level names; `_id` comes anyway).
    let mut fields: Vec<String> = Vec::new();
    let names = keys
        .iter()
        .map(|k| k.resource_field.as_str())
        .chain(compare.iter().map(|c| c.record_field.as_str()));
    for name in names {
        let top = name.split('.').next().unwrap_or(name).to_owned();
        if !fields.contains(&top) {
            fields.push(top);
        }
    }
    Ok(CompiledRule {
        index,
        kind: if parts.kind == "exists" { Kind::Exists } else { Kind::NotExists },
        resource: parts.resource.to_owned(),
        keys,
        filter: parts.filter.cloned(),
        compare,
        fields,
        message: parts.message.cloned(),
        cache: HashMap::new(),
        pending: Vec::new(),
        pending_set: HashSet::new(),
        batch: HashSet::new(),
    })
}

impl CompiledRule {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Exists => "exists",
            Kind::NotExists => "not_exists",
        }
    }

    fn row_key(&self, row: &Row) -> RowKey {
        let mut text = String::new();
        let mut values = Vec::with_capacity(self.keys.len());
        for (i, key) in self.keys.iter().enumerate() {
            let value = row.value(key.position).unwrap_or(&Value::Null);
            if value.is_null() {
                return RowKey::Skip;
            }
            let Some(part) = compare::key_text(value) else {
                return RowKey::NotScalar { field: key.row_field.clone(), value: value.clone() };
            };
            if i > 0 {
                text.push(KEY_SEPARATOR);
            }
            text.push_str(&part);
            values.push(value.clone());
        }
        RowKey::Key { text, values }
    }

    /// The list request for `keys`.
    fn request(&self, position: usize, keys: &[PendingKey]) -> LookupRequest {
        let mut filter = self.filter.clone().unwrap_or_default();
        for (i, field) in self.keys.iter().enumerate() {
            let mut seen = HashSet::new();
            let values: Vec<Value> = keys
                .iter()
                .filter_map(|key| key.values.get(i))
                .filter(|value| seen.insert(compare::key_text(value)))
                .cloned()
                .collect();
            let mut condition = Map::new();
            condition.insert("$in".to_owned(), Value::Array(values));
            filter.insert(field.resource_field.clone(), Value::Object(condition));
        }
        LookupRequest {
            rule_index: self.index,
            rule_type: self.kind_name(),
            resource: self.resource.clone(),
            filter: Value::Object(filter),
            fields: self.fields.clone(),
            key_count: keys.len(),
            position,
            keys: keys.iter().map(|key| key.text.clone()).collect(),
        }
    }

    /// The key texts a found record answers (several when a look-up field is a list).
    fn record_keys(&self, record: &Map<String, Value>) -> Vec<String> {
        let mut keys = vec![String::new()];
        for (i, field) in self.keys.iter().enumerate() {
            let parts: Vec<String> = match record_value(record, &field.resource_field) {
                Some(Value::Array(items)) => items.iter().filter_map(compare::key_text).collect(),
                Some(value) => compare::key_text(value).into_iter().collect(),
                None => Vec::new(),
            };
            let mut next = Vec::with_capacity(keys.len() * parts.len());
            for prefix in &keys {
                for part in &parts {
                    let mut key = prefix.clone();
                    if i > 0 {
                        key.push(KEY_SEPARATOR);
                    }
                    key.push_str(part);
                    next.push(key);
                }
            }
            next.truncate(MAX_RECORDS_PER_KEY * 4);
            keys = next;
        }
        keys
    }

    fn reduce(&self, record: &Map<String, Value>) -> FoundRecord {
        let id = match record.get("_id").or_else(|| record.get("id")) {
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Number(id)) => Some(id.to_string()),
            _ => None,
        };
        let values =
            self.compare.iter().map(|c| record_value(record, &c.record_field).cloned()).collect();
        FoundRecord { id, values }
    }

    /// The error for a row whose records are `found`, if the rule fails.
    fn verdict(&self, row: &Row, found: &[FoundRecord], locale: Locale) -> Option<RowError> {
        let (field, value) = self.key_subject(row);
        let describe = || {
            let pairs: Vec<(&str, &Value)> = self
                .keys
                .iter()
                .map(|k| (k.resource_field.as_str(), row.value(k.position).unwrap_or(&Value::Null)))
                .collect();
            messages::describe_key(locale, &pairs)
        };
        match self.kind {
            Kind::Exists if found.is_empty() => {
                let message = self.message_or(locale, &field, &value, || {
                    messages::missing(locale, &self.resource, &describe())
                });
                Some(self.error("exists", field, value, message))
            }
            Kind::NotExists => {
                let first = found.first()?;
                let message = self.message_or(locale, &field, &value, || {
                    messages::already_exists(
                        locale,
                        &self.resource,
                        &describe(),
                        first.id.as_deref(),
                    )
                });
                Some(self.error("not_exists", field, value, message))
            }
            Kind::Exists => {
                if self.compare.is_empty() || found.iter().any(|r| self.failing(row, r).is_none()) {
                    return None;
                }
                let first = found.first()?;
                let i = self.failing(row, first)?;
                let comparison = &self.compare[i];
                let actual = first.values.get(i).and_then(Option::as_ref);
                let (field, value, expected) = match &comparison.operand {
                    Operand::Constant(constant) => (field, value, Expected::Constant(constant)),
                    Operand::Row { field, position } => {
                        let row_value = row.value(*position).unwrap_or(&Value::Null);
                        (field.clone(), row_value.clone(), Expected::RowField(field, row_value))
                    }
                };
                let message = self.message_or(locale, &field, &value, || {
                    messages::comparison_failed(
                        locale,
                        &self.resource,
                        &describe(),
                        &comparison.record_field,
                        actual,
                        comparison.op,
                        expected,
                    )
                });
                Some(self.error("compare", field, value, message))
            }
        }
    }

    /// The first comparison `record` fails, if any (one with a null row field is skipped).
    fn failing(&self, row: &Row, record: &FoundRecord) -> Option<usize> {
        self.compare.iter().enumerate().position(|(i, comparison)| {
            let expected = match &comparison.operand {
                Operand::Constant(value) => value,
                Operand::Row { position, .. } => match row.value(*position) {
                    Some(value) if !value.is_null() => value,
                    _ => return false,
                },
            };
            let actual = record.values.get(i).and_then(Option::as_ref);
            !compare::holds(comparison.op, actual, expected)
        })
    }

    /// The row field an error names (the first look-up field) and the value: the field's value,
    /// or for several look-up fields an object of them.
    fn key_subject(&self, row: &Row) -> (String, Value) {
        let value_of = |k: &KeyField| row.value(k.position).cloned().unwrap_or(Value::Null);
        let field = self.keys.first().map(|k| k.row_field.clone()).unwrap_or_default();
        let value = match self.keys.as_slice() {
            [single] => value_of(single),
            several => {
                Value::Object(several.iter().map(|k| (k.row_field.clone(), value_of(k))).collect())
            }
        };
        (field, value)
    }

    fn message_or(
        &self,
        locale: Locale,
        field: &str,
        value: &Value,
        built_in: impl FnOnce() -> String,
    ) -> String {
        self.message
            .as_ref()
            .and_then(|m| messages::custom(locale, m, &self.resource, field, value))
            .unwrap_or_else(built_in)
    }

    fn error(&self, rule: &str, field: String, value: Value, message: String) -> RowError {
        RowError {
            layer: Layer::BusinessRules,
            field: Some(field),
            rule: rule.to_owned(),
            message,
            value: Some(value),
        }
    }
}

/// The value at a dotted path of a record (`address.city`; a number indexes a list).
fn record_value<'a>(record: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = record.get(path) {
        return Some(value);
    }
    let mut segments = path.split('.');
    let mut current = record.get(segments.next()?)?;
    for segment in segments {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests;
