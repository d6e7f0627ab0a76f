//! The platform's REST conventions, implemented once for both HTTP surfaces (the sandbox and the
//! REST layer): list queries (`where` filters, `field__op` filters, `sort`, `fields`,
//! pagination), `If-Match` preconditions, and the error bodies.
//!
//! The semantics are written down in the [`sandbox`](crate::sandbox) module documentation; the
//! REST layer follows them exactly.

mod authorization;
mod error;
mod if_match;
mod page;
mod query;

pub(crate) use authorization::authorization;
pub use error::{ApiError, FieldError};
pub use if_match::IfMatch;
pub(crate) use page::page_response;
pub(crate) use query::*;

/// Whether `s` is 24 lowercase hex digits (an ObjectId), the form of every id and tenant id.
pub fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
