//! The platform's resource id: 24 lowercase hex digits.

use std::fmt;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A resource id as the platform writes it (`_id`, `tenant_id`, `source_id`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectId(String);

impl JsonSchema for ObjectId {
    fn schema_name() -> Cow<'static, str> {
        "ObjectId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9a-f]{24}$",
            "description": "A resource id: 24 lowercase hex digits."
        })
    }
}

impl TryFrom<String> for ObjectId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.len() == 24 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(text))
        } else {
            Err(format!("'{text}' is not an object id (24 lowercase hex digits)"))
        }
    }
}

impl From<ObjectId> for String {
    fn from(id: ObjectId) -> Self {
        id.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_24_lowercase_hex_digits_are_ids() {
        assert!(ObjectId::try_from("64a1b2c3d4e5f6789012abcd".to_owned()).is_ok());
        assert!(ObjectId::try_from("64A1B2C3D4E5F6789012ABCD".to_owned()).is_err());
        assert!(ObjectId::try_from("64a1b2c3d4e5f6789012abc".to_owned()).is_err());
        assert!(ObjectId::try_from("64a1b2c3d4e5f6789012abcg".to_owned()).is_err());
    }
}
