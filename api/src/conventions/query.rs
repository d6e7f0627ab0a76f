//! List queries: `where` filters, `field__op=` filters, `sort`, `fields` and pagination, parsed
//! once per request into a [`ListQuery`] and evaluated against stored items. The semantics are
//! described in the sandbox's module documentation; an empty `sort=`, `fields=` or `where=`
//! counts as not given.

use std::cmp::Ordering;
use std::collections::HashSet;

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

/// Deepest nesting of `where` accepted.
const MAX_DEPTH: usize = 16;
/// Largest `per_page`.
pub(crate) const MAX_PER_PAGE: u64 = 100;
/// `per_page` when none is given.
pub(crate) const DEFAULT_PER_PAGE: u64 = 25;
/// Longest regex pattern accepted.
const MAX_REGEX_LEN: usize = 1000;

/// A parsed list request.
#[derive(Debug)]
pub(crate) struct ListQuery {
    /// Every filter, ANDed.
    pub(crate) filter: Filter,
    /// Sort keys, most significant first.
    pub(crate) sort: Vec<SortKey>,
    /// Projection (`fields=`), if any.
    pub(crate) fields: Option<Vec<Vec<String>>>,
    /// 1-based page.
    pub(crate) page: u64,
    /// Items per page.
    pub(crate) per_page: u64,
    /// Whether soft-deleted items are listed too.
    pub(crate) include_deleted: bool,
}

/// One `sort` key.
#[derive(Debug)]
pub(crate) struct SortKey {
    /// Field path.
    path: Vec<String>,
    /// `-field`.
    descending: bool,
}

/// A filter expression over an item.
#[derive(Debug)]
pub(crate) enum Filter {
    /// Every one matches (the empty AND matches everything).
    And(Vec<Filter>),
    /// At least one matches.
    Or(Vec<Filter>),
    /// The inner filter does not match.
    Not(Box<Filter>),
    /// A condition on one field.
    Field {
        /// Dotted path, split.
        path: Vec<String>,
        /// What the field must satisfy.
        cond: Cond,
    },
}

/// A condition on one field's value.
#[derive(Debug)]
pub(crate) enum Cond {
    /// Every one holds (several operators on one field).
    All(Vec<Cond>),
    /// Equal.
    Eq(Operand),
    /// Not equal (missing counts as not equal).
    Ne(Operand),
    /// Ordered comparison.
    Cmp(CmpOp, Operand),
    /// One of.
    In(ValueSet),
    /// None of.
    Nin(ValueSet),
    /// Present (or absent).
    Exists(bool),
    /// A string matching.
    Regex(Regex),
    /// The inner condition does not hold.
    Not(Box<Cond>),
}

/// `$gt`, `$gte`, `$lt`, `$lte`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CmpOp {
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
}

impl CmpOp {
    /// Whether `field <op> operand` holds given `field.cmp(operand)`.
    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            CmpOp::Gt => ordering == Ordering::Greater,
            CmpOp::Gte => ordering != Ordering::Less,
            CmpOp::Lt => ordering == Ordering::Less,
            CmpOp::Lte => ordering != Ordering::Greater,
        }
    }
}

/// An operand: typed JSON from `where`, or text from a query parameter (typed by the field).
#[derive(Debug)]
pub(crate) enum Operand {
    /// From `where`.
    Json(Value),
    /// From `field=…` / `field__op=…`.
    Text(String),
}

/// The operands of `$in`/`$nin`: scalars by canonical key, compound values kept whole.
#[derive(Debug, Default)]
pub(crate) struct ValueSet {
    /// Canonical keys of scalar operands (see [`canonical`]).
    keys: HashSet<String>,
    /// Array and object operands.
    compound: Vec<Value>,
}

impl ValueSet {
    /// From `where` operands.
    fn from_json(values: &[Value]) -> Self {
        let mut set = ValueSet::default();
        for v in values {
            match canonical(v) {
                Some(k) => {
                    set.keys.insert(k);
                }
                None => set.compound.push(v.clone()),
            }
        }
        set
    }

    /// From a comma-separated query value: each element matches as text.
    fn from_text(list: &str) -> Self {
        let mut set = ValueSet::default();
        for t in list.split(',') {
            set.keys.extend(text_keys(t));
        }
        set
    }

    /// Whether `value` (or, for a missing field, null) is in the set.
    fn contains(&self, value: Option<&Value>) -> bool {
        match value {
            None => self.keys.contains(NULL_KEY),
            Some(v) => any_element(v, |x| {
                canonical(x).is_some_and(|k| self.keys.contains(&k))
                    || self.compound.iter().any(|c| json_eq(x, c))
            }),
        }
    }
}

/// The canonical key of null.
const NULL_KEY: &str = "z";

/// A hashable key for a scalar such that equal values (1 and 1.0 included) share it.
fn canonical(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(NULL_KEY.into()),
        Value::Bool(b) => Some(format!("b:{b}")),
        Value::Number(n) => Some(number_key(n.as_i64(), n.as_u64(), n.as_f64())),
        Value::String(s) => Some(format!("s:{s}")),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// The canonical key of a number given its possible representations.
fn number_key(i: Option<i64>, u: Option<u64>, f: Option<f64>) -> String {
    if let Some(i) = i {
        return format!("n:{i}");
    }
    if let Some(u) = u {
        return format!("n:{u}");
    }
    match f {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("n:{}", f as i64),
        Some(f) => format!("n:{f}"),
        None => "n:?".into(),
    }
}

/// Every canonical key a query text can equal: the string itself, and the number, boolean or
/// null it spells.
fn text_keys(t: &str) -> Vec<String> {
    let mut keys = vec![format!("s:{t}")];
    if let Ok(f) = t.trim().parse::<f64>()
        && f.is_finite()
    {
        keys.push(number_key(t.trim().parse::<i64>().ok(), None, Some(f)));
    }
    match t {
        "true" | "false" => keys.push(format!("b:{t}")),
        "null" => keys.push(NULL_KEY.into()),
        _ => {}
    }
    keys
}

/// Numeric equality/ordering, exact for integers.
fn cmp_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// JSON equality with numbers compared numerically.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Whether `s` looks like an RFC 3339 timestamp (cheap pre-check before parsing).
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't' | b' ')
}

/// Orders two strings: as instants when both are RFC 3339 timestamps, else by code point.
fn cmp_strings(a: &str, b: &str) -> Ordering {
    if looks_like_timestamp(a)
        && looks_like_timestamp(b)
        && let (Ok(x), Ok(y)) =
            (chrono::DateTime::parse_from_rfc3339(a), chrono::DateTime::parse_from_rfc3339(b))
    {
        return x.cmp(&y);
    }
    a.cmp(b)
}

/// Orders a field value against an operand; `None` across types.
fn cmp_operand(field: &Value, operand: &Operand) -> Option<Ordering> {
    match operand {
        Operand::Json(j) => match (field, j) {
            (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y),
            (Value::String(x), Value::String(y)) => Some(cmp_strings(x, y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            _ => None,
        },
        Operand::Text(t) => match field {
            Value::Number(x) => x.as_f64()?.partial_cmp(&t.trim().parse::<f64>().ok()?),
            Value::String(x) => Some(cmp_strings(x, t)),
            Value::Bool(x) => Some(x.cmp(&t.parse::<bool>().ok()?)),
            _ => None,
        },
    }
}

/// Whether a field value equals an operand.
fn eq_operand(field: &Value, operand: &Operand) -> bool {
    match operand {
        Operand::Json(j) => json_eq(field, j),
        Operand::Text(t) => match field {
            Value::String(s) => s == t,
            Value::Number(n) => {
                text_keys(t).contains(&number_key(n.as_i64(), n.as_u64(), n.as_f64()))
            }
            Value::Bool(b) => t == if *b { "true" } else { "false" },
            Value::Null => t == "null",
            Value::Array(_) | Value::Object(_) => false,
        },
    }
}

/// Whether `f` holds for `value` itself or, when it is an array, for any element.
fn any_element(value: &Value, f: impl Fn(&Value) -> bool) -> bool {
    f(value) || matches!(value, Value::Array(items) if items.iter().any(&f))
}

/// Equality including the missing-field rule (`null` matches a missing field).
fn eq_matches(value: Option<&Value>, operand: &Operand) -> bool {
    match value {
        None => match operand {
            Operand::Json(j) => j.is_null(),
            Operand::Text(t) => t == "null",
        },
        Some(v) => any_element(v, |x| eq_operand(x, operand)),
    }
}

/// The value at a dotted path; numeric segments index arrays.
pub(crate) fn lookup<'a>(doc: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = doc.get(first)?;
    for segment in rest {
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

impl Filter {
    /// A top-level field and keys such that only items whose field holds one of them (itself,
    /// or as an array element; see [`index_keys`]) can match: the first `field: {$in: [...]}`
    /// among the conjuncts, when its operands are scalars other than null. Lets a list answer
    /// a look-up by key from an index instead of reading every item.
    pub(crate) fn index_probe(&self) -> Option<(&str, &HashSet<String>)> {
        match self {
            Filter::And(filters) => filters.iter().find_map(Filter::index_probe),
            Filter::Field { path, cond: Cond::In(set) }
                if path.len() == 1 && set.compound.is_empty() && !set.keys.contains(NULL_KEY) =>
            {
                Some((&path[0], &set.keys))
            }
            _ => None,
        }
    }
}

/// The keys a field value is indexed by: its canonical key and those of its scalar elements.
pub(crate) fn index_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = canonical(value).into_iter().collect();
    if let Value::Array(items) = value {
        keys.extend(items.iter().filter_map(canonical));
    }
    keys
}

impl Filter {
    /// Whether the item matches.
    pub(crate) fn matches(&self, doc: &Map<String, Value>) -> bool {
        match self {
            Filter::And(filters) => filters.iter().all(|f| f.matches(doc)),
            Filter::Or(filters) => filters.iter().any(|f| f.matches(doc)),
            Filter::Not(filter) => !filter.matches(doc),
            Filter::Field { path, cond } => cond.matches(lookup(doc, path)),
        }
    }
}

impl Cond {
    /// Whether the field value (absent: `None`) satisfies the condition.
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Cond::All(conds) => conds.iter().all(|c| c.matches(value)),
            Cond::Eq(operand) => eq_matches(value, operand),
            Cond::Ne(operand) => !eq_matches(value, operand),
            Cond::Cmp(op, operand) => value.is_some_and(|v| {
                any_element(v, |x| cmp_operand(x, operand).is_some_and(|o| op.accepts(o)))
            }),
            Cond::In(set) => set.contains(value),
            Cond::Nin(set) => !set.contains(value),
            Cond::Exists(want) => value.is_some() == *want,
            Cond::Regex(re) => value
                .is_some_and(|v| any_element(v, |x| x.as_str().is_some_and(|s| re.is_match(s)))),
            Cond::Not(cond) => !cond.matches(value),
        }
    }
}

/// Whether an operator is one of the blocked, code-executing ones.
fn is_blocked(op: &str) -> bool {
    matches!(op, "$where" | "$expr" | "$function" | "$accumulator")
}

/// The error for a `$…` that is not allowed.
fn operator_error(op: &str) -> String {
    if is_blocked(op) {
        format!("operator '{op}' is not allowed")
    } else {
        format!(
            "unknown operator '{op}' (allowed: $eq $ne $gt $gte $lt $lte $in $nin $exists \
             $regex $options $and $or $not)"
        )
    }
}

/// Splits a dotted field path; refuses empty segments and `$` segments.
fn parse_path(field: &str) -> Result<Vec<String>, String> {
    let path: Vec<String> = field.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("invalid field path '{field}'"));
    }
    if let Some(op) = path.iter().find(|s| s.starts_with('$')) {
        return Err(operator_error(op));
    }
    Ok(path)
}

/// Compiles a regex with Mongo-style options.
fn build_regex(pattern: &str, options: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(format!("regex longer than {MAX_REGEX_LEN} characters"));
    }
    let mut builder = RegexBuilder::new(pattern);
    for option in options.chars() {
        match option {
            'i' => builder.case_insensitive(true),
            'm' => builder.multi_line(true),
            's' => builder.dot_matches_new_line(true),
            'x' => builder.ignore_whitespace(true),
            other => return Err(format!("unknown $options flag '{other}' (allowed: i m s x)")),
        };
    }
    builder
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regex '{pattern}': {e}"))
}

/// Parses the `where` parameter.
pub(crate) fn parse_where(text: &str) -> Result<Filter, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("where is not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => parse_filter(&map, 0),
        _ => Err("where must be a JSON object".into()),
    }
}

/// Parses a filter object (`{"field": cond, "$and": [...], ...}`).
fn parse_filter(map: &Map<String, Value>, depth: usize) -> Result<Filter, String> {
    if depth > MAX_DEPTH {
        return Err(format!("where is nested deeper than {MAX_DEPTH} levels"));
    }
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        match key.as_str() {
            "$and" | "$or" => {
                let items = value
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| format!("{key} needs a non-empty array of filters"))?;
                let mut filters = Vec::with_capacity(items.len());
                for item in items {
                    let obj =
                        item.as_object().ok_or_else(|| format!("{key} items must be objects"))?;
                    filters.push(parse_filter(obj, depth + 1)?);
                }
                parts.push(if key == "$and" { Filter::And(filters) } else { Filter::Or(filters) });
            }
            "$not" => {
                let obj = value.as_object().ok_or("$not needs a filter object")?;
                parts.push(Filter::Not(Box::new(parse_filter(obj, depth + 1)?)));
            }
            op if op.starts_with('$') => return Err(operator_error(op)),
            field => {
                let path = parse_path(field)?;
                let cond = parse_cond(value, depth + 1)?;
                parts.push(Filter::Field { path, cond });
            }
        }
    }
    Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::And(parts) })
}

/// Parses a field's condition: an operator object, or a value for equality.
fn parse_cond(value: &Value, depth: usize) -> Result<Cond, String> {
    match value {
        Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => {
            if let Some(plain) = map.keys().find(|k| !k.starts_with('$')) {
                return Err(format!("a condition mixes operators and the plain key '{plain}'"));
            }
            parse_operators(map, depth)
        }
        other => Ok(Cond::Eq(Operand::Json(other.clone()))),
    }
}

/// Parses `{"$gt": 1, "$lt": 5, ...}` on one field.
fn parse_operators(map: &Map<String, Value>, depth: usize) -> Result<Cond, String> {
    if depth > MAX_DEPTH {
        return Err(format!("where is nested deeper than {MAX_DEPTH} levels"));
    }
    let mut conds = Vec::with_capacity(map.len());
    for (op, arg) in map {
        let cond =
            match op.as_str() {
                "$eq" => Cond::Eq(Operand::Json(arg.clone())),
                "$ne" => Cond::Ne(Operand::Json(arg.clone())),
                "$gt" | "$gte" | "$lt" | "$lte" => {
                    if !(arg.is_number() || arg.is_string() || arg.is_boolean()) {
                        return Err(format!("{op} needs a number, string or boolean"));
                    }
                    let cmp = match op.as_str() {
                        "$gt" => CmpOp::Gt,
                        "$gte" => CmpOp::Gte,
                        "$lt" => CmpOp::Lt,
                        _ => CmpOp::Lte,
                    };
                    Cond::Cmp(cmp, Operand::Json(arg.clone()))
                }
                "$in" | "$nin" => {
                    let items = arg.as_array().ok_or_else(|| format!("{op} needs an array"))?;
                    let set = ValueSet::from_json(items);
                    if op == "$in" { Cond::In(set) } else { Cond::Nin(set) }
                }
                "$exists" => match arg {
                    Value::Bool(b) => Cond::Exists(*b),
                    Value::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                        Cond::Exists(n.as_i64() == Some(1))
                    }
                    _ => return Err("$exists needs true or false".into()),
                },
                "$regex" => {
                    let pattern = arg.as_str().ok_or("$regex needs a string")?;
                    let options = match map.get("$options") {
                        None => "",
                        Some(Value::String(o)) => o.as_str(),
                        Some(_) => return Err("$options needs a string".into()),
                    };
                    Cond::Regex(build_regex(pattern, options)?)
                }
                "$options" => {
                    if !map.contains_key("$regex") {
                        return Err("$options is only allowed next to $regex".into());
                    }
                    continue;
                }
                "$not" => match arg {
                    Value::Object(inner)
                        if !inner.is_empty() && inner.keys().all(|k| k.starts_with('$')) =>
                    {
                        Cond::Not(Box::new(parse_operators(inner, depth + 1)?))
                    }
                    _ => return Err(
                        "a field's $not needs an operator object, e.g. {\"$not\": {\"$gt\": 5}}"
                            .into(),
                    ),
                },
                other => return Err(operator_error(other)),
            };
        conds.push(cond);
    }
    Ok(if conds.len() == 1 { conds.remove(0) } else { Cond::All(conds) })
}

/// Parses a `field=value` or `field__op=value` query parameter.
fn parse_param_filter(key: &str, value: &str) -> Result<Filter, String> {
    let text = || Operand::Text(value.to_owned());
    if let Some((field, suffix)) = key.rsplit_once("__")
        && !field.is_empty()
    {
        let path = parse_path(field)?;
        let cond = match suffix {
            "gt" => Cond::Cmp(CmpOp::Gt, text()),
            "gte" => Cond::Cmp(CmpOp::Gte, text()),
            "lt" => Cond::Cmp(CmpOp::Lt, text()),
            "lte" => Cond::Cmp(CmpOp::Lte, text()),
            "ne" => Cond::Ne(text()),
            "in" => Cond::In(ValueSet::from_text(value)),
            "nin" => Cond::Nin(ValueSet::from_text(value)),
            "regex" => Cond::Regex(build_regex(value, "")?),
            "exists" => Cond::Exists(parse_bool(key, value)?),
            other => {
                return Err(format!(
                    "unknown filter operator '__{other}' in '{key}' (allowed: __gt __gte __lt \
                     __lte __ne __in __nin __regex __exists)"
                ));
            }
        };
        return Ok(Filter::Field { path, cond });
    }
    Ok(Filter::Field { path: parse_path(key)?, cond: Cond::Eq(text()) })
}

/// Parses `true|false|1|0`.
fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{name} must be true or false, got '{value}'")),
    }
}

/// Parses a positive integer parameter within `1..=max`.
fn parse_count(name: &str, value: &str, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("{name} must be an integer from 1 to {max}, got '{value}'")),
    }
}

/// Parses `sort=-a,b`.
fn parse_sort(value: &str) -> Result<Vec<SortKey>, String> {
    value
        .split(',')
        .map(|part| {
            let part = part.trim();
            let (descending, field) = match part.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, part.strip_prefix('+').unwrap_or(part)),
            };
            if field.is_empty() {
                return Err(format!("invalid sort '{value}'"));
            }
            Ok(SortKey { path: parse_path(field)?, descending })
        })
        .collect()
}

/// Parses `fields=a,b.c`.
fn parse_fields(value: &str) -> Result<Vec<Vec<String>>, String> {
    value
        .split(',')
        .map(|f| {
            let f = f.trim();
            if f.is_empty() { Err(format!("invalid fields '{value}'")) } else { parse_path(f) }
        })
        .collect()
}

impl ListQuery {
    /// Parses a list request's query string.
    pub(crate) fn parse(raw: &str) -> Result<ListQuery, String> {
        let mut filters = Vec::new();
        let mut query = ListQuery {
            filter: Filter::And(Vec::new()),
            sort: vec![SortKey { path: vec!["created_at".into()], descending: true }],
            fields: None,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            include_deleted: false,
        };
        let mut seen = HashSet::new();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let reserved =
                matches!(&*key, "page" | "per_page" | "sort" | "fields" | "include_deleted");
            if reserved && !seen.insert(key.clone().into_owned()) {
                return Err(format!("'{key}' is given more than once"));
            }
            // An empty `sort=`, `fields=` or `where=` is the same as leaving it out (what a
            // form or a client library sends for an unset option).
            let blank = value.trim().is_empty();
            match &*key {
                "" => {}
                "sort" | "fields" | "where" if blank => {}
                "page" => query.page = parse_count("page", &value, u64::MAX)?,
                "per_page" => query.per_page = parse_count("per_page", &value, MAX_PER_PAGE)?,
                "sort" => query.sort = parse_sort(&value)?,
                "fields" => query.fields = Some(parse_fields(&value)?),
                "include_deleted" => query.include_deleted = parse_bool("include_deleted", &value)?,
                "where" => filters.push(parse_where(&value)?),
                _ => filters.push(parse_param_filter(&key, &value)?),
            }
        }
        query.filter = Filter::And(filters);
        Ok(query)
    }

    /// Orders two items (with their creation sequence numbers) by the sort keys. `created_at`
    /// orders by creation sequence, which agrees with the timestamps and breaks their ties (two
    /// items created within one microsecond). Other ties are `Equal`, so a stable sort over
    /// items in creation order keeps creation order.
    pub(crate) fn compare(
        &self,
        (a, a_seq): (&Map<String, Value>, u64),
        (b, b_seq): (&Map<String, Value>, u64),
    ) -> Ordering {
        for key in &self.sort {
            let ordering = if key.path.len() == 1 && key.path[0] == "created_at" {
                a_seq.cmp(&b_seq)
            } else {
                sort_cmp(lookup(a, &key.path), lookup(b, &key.path))
            };
            let ordering = if key.descending { ordering.reverse() } else { ordering };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    /// The requested page of `candidates` (items with their creation sequence numbers): those
    /// the filter matches, sorted, sliced and projected; with the number that matched.
    pub(crate) fn select(&self, candidates: Vec<(&Map<String, Value>, u64)>) -> (Vec<Value>, u64) {
        let mut matches: Vec<(&Map<String, Value>, u64)> =
            candidates.into_iter().filter(|(doc, _)| self.filter.matches(doc)).collect();
        matches.sort_by_key(|(_, seq)| *seq);
        matches.sort_by(|a, b| self.compare(*a, *b));
        let total = matches.len() as u64;
        let start = (self.page - 1).saturating_mul(self.per_page);
        let page = matches
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(self.per_page).unwrap_or(usize::MAX))
            .map(|(doc, _)| self.project(doc))
            .collect();
        (page, total)
    }

    /// The item as the response shows it (projected when `fields` was given).
    pub(crate) fn project(&self, doc: &Map<String, Value>) -> Value {
        let Some(fields) = &self.fields else {
            return Value::Object(doc.clone());
        };
        let mut out = Map::new();
        if let Some(id) = doc.get("_id") {
            out.insert("_id".into(), id.clone());
        }
        for path in fields {
            if let Some(value) = lookup(doc, path) {
                insert_path(&mut out, path, value.clone());
            }
        }
        Value::Object(out)
    }
}

/// Sets `value` at a dotted path in `out`, creating objects on the way.
fn insert_path(out: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut map = out;
    for segment in parents {
        let entry = map.entry(segment.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        map = next;
    }
    map.insert(last.clone(), value);
}

/// The rank of a value's type in sort order.
fn type_rank(value: Option<&Value>) -> u8 {
    match value {
        None | Some(Value::Null) => 0,
        Some(Value::Number(_)) => 1,
        Some(Value::String(_)) => 2,
        Some(Value::Bool(_)) => 3,
        Some(Value::Object(_)) => 4,
        Some(Value::Array(_)) => 5,
    }
}

/// Orders two field values for sorting: by type rank, then by value.
fn sort_cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    type_rank(a).cmp(&type_rank(b)).then_with(|| match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            cmp_numbers(x, y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => cmp_strings(x, y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(x @ (Value::Object(_) | Value::Array(_))), Some(y)) => {
            x.to_string().cmp(&y.to_string())
        }
        _ => Ordering::Equal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn matches(query: &str, item: Value) -> bool {
        ListQuery::parse(query).unwrap().filter.matches(&doc(item))
    }

    fn w(filter: Value) -> String {
        format!(
            "where={}",
            url::form_urlencoded::byte_serialize(filter.to_string().as_bytes()).collect::<String>()
        )
    }

    #[test]
    fn numbers_compare_numerically_and_equal_across_int_and_float() {
        assert!(matches(&w(json!({"n": 1.0})), json!({"n": 1})));
        assert!(matches(&w(json!({"n": {"$gt": 9}})), json!({"n": 10})));
        assert!(!matches(&w(json!({"n": {"$gt": "9"}})), json!({"n": 10})));
        assert!(matches("n__gt=9", json!({"n": 10})));
        // A string field compares as text: "10" < "9".
        assert!(!matches("n__gt=9", json!({"n": "10"})));
        assert!(matches("n=10", json!({"n": 10.0})));
        assert!(matches("n=010", json!({"n": 10})));
        assert!(!matches("n=010", json!({"n": "10"})));
    }

    #[test]
    fn timestamps_compare_as_instants() {
        assert!(matches(
            &w(json!({"t": {"$gt": "2026-04-01T08:00:00Z"}})),
            json!({"t": "2026-04-01T08:00:00.5Z"})
        ));
        assert!(matches("t__lt=2026-04-01T10:00:00%2B02:00", json!({"t": "2026-04-01T07:59:59Z"})));
    }

    #[test]
    fn null_matches_missing_and_ne_matches_missing() {
        assert!(matches(&w(json!({"x": null})), json!({})));
        assert!(matches(&w(json!({"x": {"$ne": 1}})), json!({})));
        assert!(!matches(&w(json!({"x": {"$gt": 1}})), json!({})));
        assert!(matches(&w(json!({"x": {"$in": [null]}})), json!({})));
    }

    #[test]
    fn arrays_match_by_any_element() {
        assert!(matches(&w(json!({"tags": "a"})), json!({"tags": ["b", "a"]})));
        assert!(matches(&w(json!({"tags": ["b", "a"]})), json!({"tags": ["b", "a"]})));
        assert!(!matches(&w(json!({"tags": {"$ne": "a"}})), json!({"tags": ["b", "a"]})));
        assert!(matches(&w(json!({"tags": {"$nin": ["c"]}})), json!({"tags": ["b", "a"]})));
        assert!(matches(&w(json!({"lines.0.sku": "x"})), json!({"lines": [{"sku": "x"}]})));
    }

    #[test]
    fn blocked_unknown_and_malformed_operators_are_errors() {
        for bad in [
            json!({"$where": "1"}),
            json!({"a": {"$where": "1"}}),
            json!({"$expr": {}}),
            json!({"a": {"$function": {}}}),
            json!({"a": {"$elemMatch": {}}}),
            json!({"$nor": []}),
            json!({"a": {"$gt": 1, "b": 2}}),
            json!({"a": {"$in": 1}}),
            json!({"a": {"$options": "i"}}),
            json!({"a": {"$regex": "x", "$options": "q"}}),
            json!({"a": {"$regex": "("}}),
            json!({"$or": []}),
            json!({"a.$b": 1}),
        ] {
            assert!(ListQuery::parse(&w(bad.clone())).is_err(), "accepted {bad}");
        }
        assert!(ListQuery::parse("where=%7Bnot json").is_err());
        assert!(ListQuery::parse("where=%5B1%5D").is_err());
        assert!(ListQuery::parse("a__foo=1").is_err());
        assert!(ListQuery::parse("a__where=1").is_err());
        assert!(ListQuery::parse("a__exists=maybe").is_err());
        let mut deep = json!({"a": 1});
        for _ in 0..20 {
            deep = json!({"$not": deep});
        }
        assert!(ListQuery::parse(&w(deep)).is_err());
    }

    #[test]
    fn pagination_parameters_are_checked() {
        assert_eq!(ListQuery::parse("").unwrap().per_page, 25);
        assert_eq!(ListQuery::parse("per_page=100").unwrap().per_page, 100);
        for bad in ["per_page=101", "per_page=0", "page=0", "page=x", "page=1&page=2"] {
            assert!(ListQuery::parse(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn projection_keeps_id_and_nested_paths() {
        let q = ListQuery::parse("fields=a,b.c").unwrap();
        let out = q.project(&doc(json!({"_id": "1", "a": 1, "b": {"c": 2, "d": 3}, "e": 4})));
        assert_eq!(out, json!({"_id": "1", "a": 1, "b": {"c": 2}}));
    }
}
