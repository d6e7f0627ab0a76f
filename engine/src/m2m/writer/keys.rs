//! Deterministic keys: the `Idempotency-Key` of a row, the run key of a file, a row's identity
//! (its `upsert_key` or natural key value), and the `delete_column` flag.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A stable id of one file under one template: hex SHA-256 of the template id and the file's
/// content hash. The same file under the same template always gets the same run key, so a restart
/// re-sends the same idempotency keys; a changed file or template gets new ones.
pub fn run_key(template_id: &str, file_content_sha256: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"intake-run\n");
    hasher.update(template_id.as_bytes());
    hasher.update(b"\n");
    hasher.update(file_content_sha256.as_bytes());
    hex(&hasher.finalize())
}

/// The `Idempotency-Key` of a row's create: hex SHA-256 of the run key, the row number and the
/// row's canonical JSON (keys sorted at every level), so it depends on nothing but the file.
pub fn idempotency_key(run_key: &str, row_number: u64, body: &Map<String, Value>) -> String {
    let mut canonical = String::new();
    write_canonical_object(&mut canonical, body);
    let mut hasher = Sha256::new();
    hasher.update(run_key.as_bytes());
    hasher.update(b"\n");
    hasher.update(row_number.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex(&hasher.finalize())
}

/// The JSON text of a value with every object's keys sorted: the same data always gives the same
/// text, whatever order the mapping produced the fields in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => write_canonical_object(out, map),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_canonical_object(out: &mut String, map: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key.clone()).to_string());
        out.push(':');
        write_canonical(out, value);
    }
    out.push('}');
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The fields that identify a record: one `upsert_key` field or several natural key fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The field names, in configuration order.
    pub fields: Vec<String>,
}

/// A row's identity value: the JSON values of the identity fields and their canonical text
/// (which is what rows and records are matched by).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// One value per identity field.
    pub values: Vec<Value>,
    /// Canonical text of `values`: equal identities, equal text.
    pub text: String,
}

impl Identity {
    /// The identity value of a row or a record, or the first identity field it lacks (missing or
    /// null).
    pub fn value_of(&self, data: &Map<String, Value>) -> Result<KeyValue, String> {
        let mut values = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            match data.get(field) {
                None | Some(Value::Null) => return Err(field.clone()),
                Some(value) => values.push(value.clone()),
            }
        }
        let text = if let [single] = &values[..] {
            canonical_json(single)
        } else {
            canonical_json(&Value::Array(values.clone()))
        };
        Ok(KeyValue { values, text })
    }

    /// The `where` filter that finds the live records with any of `keys` (one `$in` for a single
    /// field; an `$or` of exact matches for several), excluding soft-deleted records.
    pub fn lookup_filter(&self, keys: &[&KeyValue]) -> Value {
        let mut filter = Map::new();
        if let [field] = &self.fields[..] {
            let values: Vec<Value> = keys.iter().map(|k| k.values[0].clone()).collect();
            filter.insert(field.clone(), serde_json::json!({ "$in": values }));
        } else {
            let alternatives: Vec<Value> = keys
                .iter()
                .map(|k| {
                    let exact: Map<String, Value> =
                        self.fields.iter().cloned().zip(k.values.iter().cloned()).collect();
                    Value::Object(exact)
                })
                .collect();
            filter.insert("$or".into(), Value::Array(alternatives));
        }
        filter.insert("is_deleted".into(), serde_json::json!({ "$ne": true }));
        Value::Object(filter)
    }
}

/// Whether a `delete_column` value asks for deletion: true, 1, "true", "1", "yes", "delete" (any
/// case, surrounding blanks ignored). Anything else, including a missing or null value, does not.
pub fn is_delete_flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(n)) => n.as_f64() == Some(1.0),
        Some(Value::String(s)) => {
            let s = s.trim();
            ["true", "1", "yes", "delete"].iter().any(|word| s.eq_ignore_ascii_case(word))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m2m::writer::object;
    use serde_json::json;

    #[test]
    fn idempotency_keys_are_deterministic_and_ignore_field_order() {
        let a =
            object(json!({"name": "Ada", "n": 1, "nested": {"y": 2, "x": [1, {"b": 1, "a": 2}]}}));
        let b =
            object(json!({"nested": {"x": [1, {"a": 2, "b": 1}], "y": 2}, "n": 1, "name": "Ada"}));
        let key = idempotency_key("run", 7, &a);
        assert_eq!(key, idempotency_key("run", 7, &b));
        assert_eq!(key.len(), 64);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(key, idempotency_key("run", 8, &a), "the row number is part of the key");
        assert_ne!(key, idempotency_key("other", 7, &a), "the run key is part of the key");
        let changed =
            object(json!({"name": "Ada", "n": 2, "nested": {"y": 2, "x": [1, {"b": 1, "a": 2}]}}));
        assert_ne!(key, idempotency_key("run", 7, &changed), "the data is part of the key");
    }

    #[test]
    fn canonical_json_sorts_keys_and_escapes() {
        assert_eq!(
            canonical_json(&json!({"b": "x\"y", "a": [true, null, 1.5]})),
            r#"{"a":[true,null,1.5],"b":"x\"y"}"#
        );
    }

    #[test]
    fn run_keys_depend_on_template_and_file() {
        assert_eq!(run_key("t1", "abc"), run_key("t1", "abc"));
        assert_ne!(run_key("t1", "abc"), run_key("t2", "abc"));
        assert_ne!(run_key("t1", "abc"), run_key("t1", "abd"));
    }

    #[test]
    fn identity_values_distinguish_types_and_report_missing_fields() {
        let id = Identity { fields: vec!["code".into()] };
        assert_eq!(id.value_of(&object(json!({"code": "42"}))).unwrap().text, "\"42\"");
        assert_eq!(id.value_of(&object(json!({"code": 42}))).unwrap().text, "42");
        assert_eq!(id.value_of(&object(json!({"code": null}))).unwrap_err(), "code");
        assert_eq!(id.value_of(&object(json!({}))).unwrap_err(), "code");
        let two = Identity { fields: vec!["a".into(), "b".into()] };
        assert_eq!(two.value_of(&object(json!({"b": 2, "a": "x"}))).unwrap().text, "[\"x\",2]");
    }

    #[test]
    fn lookup_filters_use_in_for_one_field_and_or_for_several() {
        let id = Identity { fields: vec!["code".into()] };
        let k1 = id.value_of(&object(json!({"code": "a"}))).unwrap();
        let k2 = id.value_of(&object(json!({"code": "b"}))).unwrap();
        assert_eq!(
            id.lookup_filter(&[&k1, &k2]),
            json!({"code": {"$in": ["a", "b"]}, "is_deleted": {"$ne": true}})
        );
        let two = Identity { fields: vec!["a".into(), "b".into()] };
        let k = two.value_of(&object(json!({"a": 1, "b": 2}))).unwrap();
        assert_eq!(
            two.lookup_filter(&[&k]),
            json!({"$or": [{"a": 1, "b": 2}], "is_deleted": {"$ne": true}})
        );
    }

    #[test]
    fn delete_flags() {
        for yes in
            [json!(true), json!(1), json!("TRUE"), json!(" yes "), json!("Delete"), json!("1")]
        {
            assert!(is_delete_flag(Some(&yes)), "{yes}");
        }
        for no in [json!(false), json!(0), json!("no"), json!(""), json!(null), json!("deleted")] {
            assert!(!is_delete_flag(Some(&no)), "{no}");
        }
        assert!(!is_delete_flag(None));
    }
}
