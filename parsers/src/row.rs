//! The mapped row: named JSON values in a fixed field order shared by every row of a run.
//!
//! Mappers produce rows, validators check them and the writer sends them. The field names live
//! once in a shared [`RowShape`], so a row is just a vector of values and a look-up by name is
//! resolved to an index once, when a validator is built, not once per row.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Up to this many fields, a name is found by comparing names rather than by hashing.
const LINEAR_SCAN_MAX_FIELDS: usize = 24;

/// The ordered field names of the rows of one run, shared by all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowShape {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl RowShape {
    /// A shape with these field names, in this order; a repeated name keeps its first position.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut shape = Self { names: Vec::new(), index: HashMap::new() };
        for name in names {
            let name = name.into();
            if !shape.index.contains_key(&name) {
                shape.index.insert(name.clone(), shape.names.len());
                shape.names.push(name);
            }
        }
        shape
    }

    /// The field names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The position of a field, if the shape has it.
    pub fn position(&self, name: &str) -> Option<usize> {
        // Rows are narrow: comparing a few names beats hashing one, and this runs per field of
        // every row when a schema looks fields up by name.
        if self.names.len() <= LINEAR_SCAN_MAX_FIELDS {
            let (length, first) = (name.len(), name.as_bytes().first());
            return self.names.iter().position(|candidate| {
                // Length and first byte settle almost every mismatch without a memcmp call.
                candidate.len() == length
                    && candidate.as_bytes().first() == first
                    && candidate == name
            });
        }
        self.index.get(name).copied()
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the shape has no fields.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One mapped row: a value per field of its [`RowShape`], with the source line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    shape: Arc<RowShape>,
    values: Vec<Value>,
    row_number: u64,
}

impl Row {
    /// A row of `shape` with every field null.
    pub fn new(shape: Arc<RowShape>) -> Self {
        let values = vec![Value::Null; shape.len()];
        Self { shape, values, row_number: 0 }
    }

    /// The shape shared by the rows of this run.
    pub fn shape(&self) -> &Arc<RowShape> {
        &self.shape
    }

    /// The physical line in the source file of the record this row was mapped from.
    pub fn row_number(&self) -> u64 {
        self.row_number
    }

    /// Sets the source line number.
    pub fn set_row_number(&mut self, row_number: u64) {
        self.row_number = row_number;
    }

    /// The value at a field position.
    pub fn value(&self, position: usize) -> Option<&Value> {
        self.values.get(position)
    }

    /// The value of a named field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.value(self.shape.position(name)?)
    }

    /// A mutable slot for the value at a field position.
    pub fn value_mut(&mut self, position: usize) -> Option<&mut Value> {
        self.values.get_mut(position)
    }

    /// The values in field order, to change in place (a mapper writing several fields).
    pub fn values_mut(&mut self) -> &mut [Value] {
        &mut self.values
    }

    /// The values in field order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Pairs of field name and value, in field order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.shape.names().iter().map(String::as_str).zip(self.values.iter())
    }

    /// The row as a JSON object, as the target API receives it.
    pub fn to_object(&self) -> Map<String, Value> {
        self.fields().map(|(name, value)| (name.to_owned(), value.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_found_by_name_and_position() {
        let shape = Arc::new(RowShape::new(["id", "name", "id"]));
        assert_eq!(shape.len(), 2);
        let mut row = Row::new(shape.clone());
        *row.value_mut(1).expect("slot") = json!("Anna");
        assert_eq!(row.get("name"), Some(&json!("Anna")));
        assert_eq!(row.get("missing"), None);
        assert_eq!(Value::Object(row.to_object()), json!({"id": null, "name": "Anna"}));
    }
}
