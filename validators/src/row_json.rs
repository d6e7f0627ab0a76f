//! A mapped [`Row`] seen by the JSON Schema validator as a JSON object, without building one.
//!
//! Building a `serde_json` map per row (cloning every name and value) cost more than the whole
//! rest of the pipeline. The `jsonschema` crate validates any representation that implements its
//! `Json` traits, so the row is handed over as it is: its fields are the object's members, and a
//! null field is absent (the schema's `required` then reports an empty cell). Nested values are
//! ordinary `serde_json` values.

use std::borrow::Cow;

use intake_parsers::Row;
use jsonschema::JsonType;
use jsonschema::json::{Array, Json, Node, NodeIdentity, Object};
use serde_json::{Map, Number, Value};

/// The row representation for `jsonschema::options_for::<RowJson>()`.
pub(crate) struct RowJson;

/// A node: the row itself, or a value inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowNode<'a> {
    /// The row, an object of its non-null fields.
    Row(&'a Row),
    /// A field value or anything nested in one.
    Value(&'a Value),
}

/// An object: the row, or a nested JSON object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowObject<'a> {
    /// The row's non-null fields.
    Row(&'a Row),
    /// A nested object.
    Map(&'a Map<String, Value>),
}

impl Json for RowJson {
    type Node<'a> = RowNode<'a>;
    type PreparedKey = String;
    type StringBuffer = Value;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Value,
        string: &str,
        f: impl FnOnce(RowNode<'_>) -> T,
    ) -> T {
        *buffer = Value::String(string.to_owned());
        f(RowNode::Value(buffer))
    }
}

impl<'a> Node<'a, RowJson> for RowNode<'a> {
    type Object = RowObject<'a>;
    type Array = ValueArray<'a>;
    type Number = &'a Number;

    fn as_object(&self) -> Option<RowObject<'a>> {
        match *self {
            RowNode::Row(row) => Some(RowObject::Row(row)),
            RowNode::Value(Value::Object(map)) => Some(RowObject::Map(map)),
            RowNode::Value(_) => None,
        }
    }

    fn as_array(&self) -> Option<ValueArray<'a>> {
        match *self {
            RowNode::Value(Value::Array(items)) => Some(ValueArray(items)),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match *self {
            RowNode::Value(Value::String(text)) => Some(Cow::Borrowed(text)),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a Number> {
        match *self {
            RowNode::Value(Value::Number(number)) => Some(number),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match *self {
            RowNode::Value(Value::Bool(flag)) => Some(*flag),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, RowNode::Value(Value::Null))
    }

    fn json_type(&self) -> JsonType {
        match *self {
            RowNode::Row(_) => JsonType::Object,
            RowNode::Value(value) => match value {
                Value::Null => JsonType::Null,
                Value::Bool(_) => JsonType::Boolean,
                Value::Number(_) => JsonType::Number,
                Value::String(_) => JsonType::String,
                Value::Array(_) => JsonType::Array,
                Value::Object(_) => JsonType::Object,
            },
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        match *self {
            RowNode::Row(row) => Cow::Owned(Value::Object(present_fields(row))),
            RowNode::Value(value) => Cow::Borrowed(value),
        }
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(match *self {
            RowNode::Row(row) => std::ptr::from_ref(row) as usize,
            RowNode::Value(value) => std::ptr::from_ref(value) as usize,
        }))
    }
}

/// The row's non-null fields as a JSON object: what the schema validates against.
pub(crate) fn present_fields(row: &Row) -> Map<String, Value> {
    row.fields()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| (name.to_owned(), value.clone()))
        .collect()
}

/// The members of an object node.
pub(crate) enum Members<'a> {
    /// The row's fields, skipping nulls.
    Row(std::iter::Zip<std::slice::Iter<'a, String>, std::slice::Iter<'a, Value>>),
    /// A nested object's members.
    Map(serde_json::map::Iter<'a>),
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, RowNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Members::Row(fields) => fields
                .find(|(_, value)| !value.is_null())
                .map(|(name, value)| (name.as_str(), RowNode::Value(value))),
            Members::Map(members) => {
                members.next().map(|(name, value)| (name.as_str(), RowNode::Value(value)))
            }
        }
    }
}

impl<'a> Object<'a, RowJson> for RowObject<'a> {
    type Node = RowNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        match *self {
            RowObject::Row(row) => row.values().iter().filter(|v| !v.is_null()).count(),
            RowObject::Map(map) => map.len(),
        }
    }

    fn get(&self, key: &String) -> Option<RowNode<'a>> {
        match *self {
            RowObject::Row(row) => {
                row.get(key).filter(|value| !value.is_null()).map(RowNode::Value)
            }
            RowObject::Map(map) => map.get(key).map(RowNode::Value),
        }
    }

    fn members(&self) -> Members<'a> {
        match *self {
            RowObject::Row(row) => Members::Row(row.shape().names().iter().zip(row.values())),
            RowObject::Map(map) => Members::Map(map.iter()),
        }
    }
}

/// A nested JSON array.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValueArray<'a>(&'a [Value]);

impl<'a> Array<'a, RowJson> for ValueArray<'a> {
    type Node = RowNode<'a>;
    type ElementsIter = std::iter::Map<std::slice::Iter<'a, Value>, fn(&'a Value) -> RowNode<'a>>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> Self::ElementsIter {
        self.0.iter().map(RowNode::Value as fn(&'a Value) -> RowNode<'a>)
    }
}
