//! Templates kept in the state store — created through the REST layer (`/imports/templates`) or
//! registered by `intake serve` — turned back into runnable [`Template`]s.
//!
//! A stored template's body is the template document without its base fields; it goes through
//! the same loader as a template file ([`crate::template::load`]), so a stored template is
//! checked exactly like one read from disk. The loaded template carries the store's id, which is
//! the id its runs, rejected records and run keys use ([`super::template_key`]).

use thiserror::Error;

use crate::store::{Collection, Document, Store, StoreError};
use crate::template::{ObjectId, Template, TemplateError};

/// Why a stored template cannot be used.
#[derive(Debug, Error)]
pub enum StoredTemplateError {
    /// The store failed, or holds no such template for the tenant ([`StoreError::NotFound`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored document is not a template this release can run.
    #[error("stored template {id} cannot be used: {source}")]
    Invalid {
        /// The template's id.
        id: String,
        /// Every problem found.
        source: TemplateError,
    },
}

impl StoredTemplateError {
    /// Whether the template does not exist (for this tenant).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoredTemplateError::Store(StoreError::NotFound { .. }))
    }
}

/// Loads template `id` of `tenant` from the store.
pub async fn stored_template(
    store: &Store,
    tenant: &str,
    id: &str,
) -> Result<Template, StoredTemplateError> {
    let document = store.get(Collection::Templates, tenant, id).await?;
    template_from_document(&document)
        .map_err(|source| StoredTemplateError::Invalid { id: id.to_owned(), source })
}

/// A stored template document as a runnable template, with the store's id and revision.
pub fn template_from_document(document: &Document) -> Result<Template, TemplateError> {
    let name = format!("template {}", document.meta.id);
    let mut template = crate::template::load(&name, &document.body.to_string())?;
    template.id = ObjectId::try_from(document.meta.id.clone()).ok();
    template.revision_id = Some(document.meta.revision_id.clone());
    Ok(template)
}
