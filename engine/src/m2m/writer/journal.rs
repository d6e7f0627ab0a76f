//! The undo journal of an `all_or_nothing` transaction, and the roll-back that replays it.
//!
//! Every effect on the platform is journaled as it succeeds: a created record (undo: delete it),
//! an updated one with its pre-image (undo: PUT the pre-image with the current ETag), a deleted
//! one (undo: [`ApiClient::restore`], a PATCH `is_deleted: false, deleted_at: null` with
//! `include_deleted=true`, after reading the record's ETag with
//! [`ApiClient::get_including_deleted`]). Only a record's *first* effect is kept: undoing it
//! restores the state before the run, whatever later rows did to the same record — an updated
//! record that a later row deleted is un-deleted before its pre-image is put back. The roll-back
//! undoes the newest effect first. The journal lives in memory, which is why `all_or_nothing` has
//! `max_transaction_rows`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::errors::MAX_CONFLICT_RETRIES;
use super::modes::is_deleted;
use super::outcome::{CompensationAction, CompensationKind, CompensationReport};
use crate::m2m::client::ApiClient;
use crate::m2m::error::ApiError;

/// Fields the platform sets itself; a restoring PUT leaves them out.
const SYSTEM_FIELDS: &[&str] =
    &["_id", "id", "tenant_id", "created_at", "updated_at", "revision_id"];

/// One effect to undo.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Effect {
    /// The row that caused it (none for a sync delete).
    pub(crate) row_number: Option<u64>,
    /// The record.
    pub(crate) id: String,
    /// What happened, and what undoing it needs.
    pub(crate) kind: EffectKind,
}

/// What an effect was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EffectKind {
    /// The run created the record.
    Created,
    /// The run changed the record; this is its body before the change.
    Updated {
        /// The record's body as read before the first change.
        pre_image: Map<String, Value>,
    },
    /// The run soft-deleted the record.
    Deleted,
}

/// Effects in the order they happened, one per record.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    effects: Vec<Effect>,
    records: HashSet<String>,
}

impl Journal {
    /// Journals an effect, unless the record already has an earlier one.
    pub(crate) fn record(&mut self, effect: Effect) {
        if self.records.insert(effect.id.clone()) {
            self.effects.push(effect);
        }
    }

    /// Effects recorded.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.effects.len()
    }

    /// Undoes every effect, newest first, and reports each action.
    pub(crate) async fn roll_back(
        self,
        client: &ApiClient,
        resource: &str,
        reason: String,
    ) -> CompensationReport {
        let mut report = CompensationReport { reason, ..CompensationReport::default() };
        for effect in self.effects.into_iter().rev() {
            let (kind, result) = match &effect.kind {
                EffectKind::Created => (
                    CompensationKind::DeleteCreated,
                    delete_record(client, resource, &effect.id).await,
                ),
                EffectKind::Updated { pre_image } => (
                    CompensationKind::RestoreUpdated,
                    restore(client, resource, &effect.id, pre_image).await,
                ),
                EffectKind::Deleted => {
                    (CompensationKind::Undelete, undelete(client, resource, &effect.id).await)
                }
            };
            if result.is_ok() {
                match kind {
                    CompensationKind::DeleteCreated => report.deleted_created += 1,
                    CompensationKind::RestoreUpdated => report.restored_updated += 1,
                    CompensationKind::Undelete => report.undeleted += 1,
                }
            }
            report.actions.push(CompensationAction {
                row_number: effect.row_number,
                id: effect.id,
                kind,
                error: result.err(),
            });
        }
        report
    }
}

/// The body a restoring PUT sends: the pre-image without the fields the platform sets.
pub(crate) fn restorable(pre_image: &Map<String, Value>) -> Map<String, Value> {
    pre_image
        .iter()
        .filter(|(k, _)| !SYSTEM_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

const KEPT_CHANGING: &str = "the record kept changing (HTTP 412 on every attempt)";

async fn delete_record(client: &ApiClient, resource: &str, id: &str) -> Result<(), String> {
    for _ in 0..=MAX_CONFLICT_RETRIES {
        let item = match client.get(resource, id).await {
            Ok(item) => item,
            Err(ApiError::NotFound) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if item.body.get("is_deleted") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        match client.delete(resource, id, &item.etag).await {
            Ok(()) | Err(ApiError::NotFound) => return Ok(()),
            Err(ApiError::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(KEPT_CHANGING.into())
}

async fn restore(
    client: &ApiClient,
    resource: &str,
    id: &str,
    pre_image: &Map<String, Value>,
) -> Result<(), String> {
    let body = restorable(pre_image);
    for _ in 0..=MAX_CONFLICT_RETRIES {
        let mut item =
            client.get_including_deleted(resource, id).await.map_err(|e| e.to_string())?;
        if is_deleted(&item.body) {
            // A later row of the run deleted it: bring it back first, then put the pre-image.
            item = match client.restore(resource, id, &item.etag).await {
                Ok(item) if !is_deleted(&item.body) => item,
                Ok(_) => return Err(KEPT_DELETED.into()),
                Err(ApiError::PreconditionFailed { .. }) => continue,
                Err(ApiError::NotFound) => return Err(NOT_REACHABLE.into()),
                Err(e) => return Err(e.to_string()),
            };
        }
        match client.put(resource, id, &body, &item.etag).await {
            Ok(_) => return Ok(()),
            Err(ApiError::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(KEPT_CHANGING.into())
}

const KEPT_DELETED: &str = "the platform kept the record deleted (is_deleted is read-only there); un-delete it in the \
     platform";
const NOT_REACHABLE: &str = "the platform does not let a soft-deleted record be read or changed \
                             through the API (HTTP 404 even with include_deleted=true); un-delete \
                             it in the platform";

async fn undelete(client: &ApiClient, resource: &str, id: &str) -> Result<(), String> {
    for _ in 0..=MAX_CONFLICT_RETRIES {
        let item = match client.get_including_deleted(resource, id).await {
            Ok(item) => item,
            Err(ApiError::NotFound) => return Err(NOT_REACHABLE.into()),
            Err(e) => return Err(e.to_string()),
        };
        if !is_deleted(&item.body) {
            // Live again already (restored by someone else): the state before the run holds.
            return Ok(());
        }
        match client.restore(resource, id, &item.etag).await {
            Ok(item) if !is_deleted(&item.body) => return Ok(()),
            Ok(_) => return Err(KEPT_DELETED.into()),
            Err(ApiError::PreconditionFailed { .. }) => continue,
            Err(ApiError::NotFound) => return Err(NOT_REACHABLE.into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(KEPT_CHANGING.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_records_first_effect_is_journaled() {
        let mut journal = Journal::default();
        journal.record(Effect { row_number: Some(1), id: "a".into(), kind: EffectKind::Created });
        journal.record(Effect {
            row_number: Some(2),
            id: "a".into(),
            kind: EffectKind::Updated { pre_image: Map::new() },
        });
        journal.record(Effect { row_number: Some(3), id: "b".into(), kind: EffectKind::Deleted });
        assert_eq!(journal.len(), 2);
        assert_eq!(journal.effects[0].kind, EffectKind::Created);
        assert_eq!(journal.effects[1].id, "b");
    }

    #[test]
    fn restoring_leaves_out_platform_fields() {
        let pre = match json!({"_id": "x", "revision_id": "3", "updated_at": "t", "name": "Ada", "is_deleted": false})
        {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let body = restorable(&pre);
        assert_eq!(Value::Object(body), json!({"name": "Ada", "is_deleted": false}));
    }
}
