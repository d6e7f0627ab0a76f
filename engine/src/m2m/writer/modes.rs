//! The import modes, one row at a time: what a row does given the state of its key's record.
//!
//! | mode | no live record with the key | a live record | delete row |
//! | --- | --- | --- | --- |
//! | create (no natural key) | POST | — (no look-up) | — |
//! | create / append (with identity) | POST | `Unchanged`, never touched | — |
//! | update | `Rejected` (`record_not_found`) | PATCH if anything differs, else `Unchanged` | DELETE |
//! | upsert / sync | POST | PATCH if anything differs, else `Unchanged` | DELETE |
//!
//! A delete row whose record does not exist (any more) is `Unchanged`: the file asks for a state
//! that already holds, and a re-run of the same file must give the same result. Every POST carries
//! the row's deterministic `Idempotency-Key`; every PATCH and DELETE the ETag of the record as
//! last read, and a `412` re-reads and re-applies (a PATCH is a merge, so the same body applies on
//! top of the other writer's change) up to [`MAX_CONFLICT_RETRIES`] times.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::Shared;
use super::errors::{MAX_CONFLICT_RETRIES, Verdict, classify, write_error};
use super::journal::{Effect, EffectKind};
use super::keys::{Identity, KeyValue, idempotency_key};
use super::order::{KeyState, Start};
use super::outcome::RowWriteOutcome;
use super::sync::PAGE_SIZE;
use crate::m2m::client::{Item, ListQuery};
use crate::m2m::error::ApiError;
use crate::template::ImportMode;

/// A row ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PreparedRow {
    /// The row's number in the file.
    pub(crate) row_number: u64,
    /// The body to write (the row without its `delete_column`).
    pub(crate) body: Map<String, Value>,
    /// Whether the row asks for its record's deletion.
    pub(crate) delete: bool,
    /// The row's identity value, in modes that have one.
    pub(crate) key: Option<KeyValue>,
}

/// Writes a group of same-key rows in file order, starting from `start`, and hands the record's
/// final state to the next group with the key.
pub(crate) async fn write_group(
    shared: Arc<Shared>,
    rows: Vec<PreparedRow>,
    start: Start,
    tail: Option<oneshot::Sender<KeyState>>,
    permit: OwnedSemaphorePermit,
) {
    let mut state = start.resolve().await;
    for row in rows {
        // Wait for a request slot *before* checking whether the run stopped, so that at most the
        // client's in-flight limit of rows are past that check when it stops.
        let Ok(_slot) = shared.slots.acquire().await else { break };
        if let Some(reason) = shared.stop_reason() {
            shared.report(RowWriteOutcome::not_attempted(row.row_number, reason)).await;
            continue;
        }
        if matches!(state, KeyState::Unknown)
            && let Some(key) = &row.key
        {
            state = match lookup_one(&shared, key).await {
                Ok(state) => state,
                Err(error) => {
                    reject_or_fail(&shared, &row, &error).await;
                    continue;
                }
            };
        }
        state = write_row(&shared, row, state).await;
    }
    if let Some(tail) = tail {
        // The next group may have been abandoned (the run stopped); nothing waits then.
        let _ = tail.send(state);
    }
    drop(permit);
}

/// Writes one row; returns the state of its key's record afterwards.
async fn write_row(shared: &Shared, row: PreparedRow, state: KeyState) -> KeyState {
    let mode = shared.config.mode;
    let existing = match state {
        KeyState::Known(existing) => existing,
        KeyState::Ambiguous(count) => {
            if matches!(mode, ImportMode::Create | ImportMode::Append) {
                shared
                    .report(RowWriteOutcome::Unchanged { row_number: row.row_number, id: None })
                    .await;
            } else {
                let field = shared.identity.as_ref().and_then(|i| i.fields.first().cloned());
                let value = row.key.as_ref().and_then(|k| k.values.first().cloned());
                shared
                    .report(RowWriteOutcome::rejected(
                        row.row_number,
                        field.as_deref(),
                        "ambiguous_key",
                        format!("{count} live records have this key; remove the duplicates in the target first"),
                        value,
                    ))
                    .await;
            }
            return KeyState::Ambiguous(count);
        }
        KeyState::Unknown => None,
    };
    match (mode, existing) {
        (ImportMode::Create | ImportMode::Append, Some(item)) => {
            shared
                .report(RowWriteOutcome::Unchanged {
                    row_number: row.row_number,
                    id: Some(item.id.clone()),
                })
                .await;
            KeyState::Known(Some(item))
        }
        (ImportMode::Create | ImportMode::Append, None) => create(shared, &row).await,
        (_, None) if row.delete => {
            shared
                .report(RowWriteOutcome::Unchanged { row_number: row.row_number, id: None })
                .await;
            KeyState::Known(None)
        }
        (_, Some(item)) if row.delete => delete(shared, &row, item).await,
        (ImportMode::Update, None) => reject_missing(shared, &row).await,
        (_, None) => create(shared, &row).await,
        (_, Some(item)) => update(shared, &row, item).await,
    }
}

/// Update mode: the row's record does not exist.
async fn reject_missing(shared: &Shared, row: &PreparedRow) -> KeyState {
    let field = shared.identity.as_ref().and_then(|i| i.fields.first().cloned());
    let value = row.key.as_ref().and_then(|k| k.values.first().cloned());
    shared
        .report(RowWriteOutcome::rejected(
            row.row_number,
            field.as_deref(),
            "record_not_found",
            format!(
                "no record in '{}' has {} = {}; update mode only changes existing records (use \
                 upsert to create missing ones)",
                shared.config.resource,
                field.as_deref().unwrap_or("the key"),
                value.as_ref().map(Value::to_string).unwrap_or_default()
            ),
            value,
        ))
        .await;
    KeyState::Known(None)
}

/// POSTs the row with its idempotency key.
async fn create(shared: &Shared, row: &PreparedRow) -> KeyState {
    let key = idempotency_key(&shared.config.run_key, row.row_number, &row.body);
    match shared.client.create(&shared.config.resource, &row.body, &key).await {
        Ok(item) => {
            shared.journal(Effect {
                row_number: Some(row.row_number),
                id: item.id.clone(),
                kind: EffectKind::Created,
            });
            shared
                .report(RowWriteOutcome::Created {
                    row_number: row.row_number,
                    id: item.id.clone(),
                })
                .await;
            KeyState::Known(Some(item))
        }
        Err(error) => {
            // A refused create leaves no record; after a run failure nobody knows.
            if reject_or_fail(shared, row, &error).await {
                KeyState::Known(None)
            } else {
                KeyState::Unknown
            }
        }
    }
}

/// Whether writing `body` onto `record` would change nothing (a null counts as absent).
pub(crate) fn is_unchanged(body: &Map<String, Value>, record: &Map<String, Value>) -> bool {
    body.iter().all(|(field, value)| match record.get(field) {
        Some(current) => current == value,
        None => value.is_null(),
    })
}

/// PATCHes the record with the row (unless nothing would change), re-reading on `412`.
async fn update(shared: &Shared, row: &PreparedRow, mut item: Item) -> KeyState {
    let resource = &shared.config.resource;
    for _ in 0..=MAX_CONFLICT_RETRIES {
        if is_unchanged(&row.body, &item.body) {
            shared
                .report(RowWriteOutcome::Unchanged {
                    row_number: row.row_number,
                    id: Some(item.id.clone()),
                })
                .await;
            return KeyState::Known(Some(item));
        }
        match shared.client.patch(resource, &item.id, &row.body, &item.etag).await {
            Ok(updated) => {
                shared.journal(Effect {
                    row_number: Some(row.row_number),
                    id: item.id.clone(),
                    kind: EffectKind::Updated { pre_image: item.body },
                });
                shared
                    .report(RowWriteOutcome::Updated {
                        row_number: row.row_number,
                        id: updated.id.clone(),
                    })
                    .await;
                return KeyState::Known(Some(updated));
            }
            Err(ApiError::PreconditionFailed { current }) => {
                match reread(shared, &item.id, current).await {
                    Ok(Some(fresh)) => item = fresh,
                    Ok(None) => return vanished(shared, row).await,
                    Err(error) => {
                        reject_or_fail(shared, row, &error).await;
                        return KeyState::Unknown;
                    }
                }
            }
            Err(ApiError::NotFound) => return vanished(shared, row).await,
            Err(error) => {
                reject_or_fail(shared, row, &error).await;
                return KeyState::Unknown;
            }
        }
    }
    reject_or_fail(shared, row, &ApiError::PreconditionFailed { current: None }).await;
    KeyState::Unknown
}

/// The record was deleted by someone else between look-up and write: upsert and sync create it
/// anew, update rejects the row.
async fn vanished(shared: &Shared, row: &PreparedRow) -> KeyState {
    if shared.config.mode == ImportMode::Update {
        reject_missing(shared, row).await
    } else {
        create(shared, row).await
    }
}

/// Soft-deletes the row's record (DELETE with If-Match), re-reading on `412`.
async fn delete(shared: &Shared, row: &PreparedRow, mut item: Item) -> KeyState {
    let resource = &shared.config.resource;
    for _ in 0..=MAX_CONFLICT_RETRIES {
        match shared.client.delete(resource, &item.id, &item.etag).await {
            Ok(()) => {
                shared.journal(Effect {
                    row_number: Some(row.row_number),
                    id: item.id.clone(),
                    kind: EffectKind::Deleted,
                });
                shared
                    .report(RowWriteOutcome::Deleted { row_number: row.row_number, id: item.id })
                    .await;
                return KeyState::Known(None);
            }
            Err(ApiError::PreconditionFailed { current }) => {
                match reread(shared, &item.id, current).await {
                    Ok(Some(fresh)) => item = fresh,
                    Ok(None) => {
                        shared
                            .report(RowWriteOutcome::Unchanged {
                                row_number: row.row_number,
                                id: Some(item.id),
                            })
                            .await;
                        return KeyState::Known(None);
                    }
                    Err(error) => {
                        reject_or_fail(shared, row, &error).await;
                        return KeyState::Unknown;
                    }
                }
            }
            Err(ApiError::NotFound) => {
                shared
                    .report(RowWriteOutcome::Unchanged {
                        row_number: row.row_number,
                        id: Some(item.id),
                    })
                    .await;
                return KeyState::Known(None);
            }
            Err(error) => {
                reject_or_fail(shared, row, &error).await;
                return KeyState::Unknown;
            }
        }
    }
    reject_or_fail(shared, row, &ApiError::PreconditionFailed { current: None }).await;
    KeyState::Unknown
}

/// The record's current version after a `412`: the one sent with it, or a fresh GET; none when it
/// is gone or soft-deleted.
async fn reread(
    shared: &Shared,
    id: &str,
    current: Option<Item>,
) -> Result<Option<Item>, ApiError> {
    let fresh = match current {
        Some(current) => current,
        None => match shared.client.get(&shared.config.resource, id).await {
            Ok(fresh) => fresh,
            Err(ApiError::NotFound) => return Ok(None),
            Err(error) => return Err(error),
        },
    };
    Ok(if is_deleted(&fresh.body) { None } else { Some(fresh) })
}

/// Whether a record is soft-deleted.
pub(crate) fn is_deleted(body: &Map<String, Value>) -> bool {
    body.get("is_deleted") == Some(&Value::Bool(true))
}

/// Reports the row rejected, or fails the run (and reports the row not attempted). Returns whether
/// the row was rejected (the run goes on).
async fn reject_or_fail(shared: &Shared, row: &PreparedRow, error: &ApiError) -> bool {
    match classify(error, &row.body) {
        Verdict::Reject(errors) => {
            shared.report(RowWriteOutcome::Rejected { row_number: row.row_number, errors }).await;
            true
        }
        Verdict::FailRun(why) => {
            shared.fail(why.clone());
            shared
                .report(RowWriteOutcome::not_attempted(
                    row.row_number,
                    format!("the run failed: {why}"),
                ))
                .await;
            false
        }
    }
}

/// Looks up the live records of `keys` (at most 100) with one GET (more only if a key matches
/// many records), by key text.
pub(crate) async fn lookup(
    shared: &Shared,
    identity: &Identity,
    keys: &[&KeyValue],
) -> Result<HashMap<String, KeyState>, ApiError> {
    let filter = identity.lookup_filter(keys);
    let mut found: HashMap<String, Vec<Item>> = HashMap::new();
    let mut page = 1;
    loop {
        let query = ListQuery {
            filter: Some(filter.clone()),
            page,
            per_page: PAGE_SIZE,
            ..ListQuery::default()
        };
        let answer = shared.client.list(&shared.config.resource, &query).await?;
        let got = answer.items.len();
        for item in answer.items {
            if is_deleted(&item.body) {
                continue;
            }
            if let Ok(key) = identity.value_of(&item.body) {
                found.entry(key.text).or_default().push(item);
            }
        }
        if got == 0 || (page as u64) * (PAGE_SIZE as u64) >= answer.total {
            break;
        }
        page += 1;
    }
    Ok(keys
        .iter()
        .map(|key| {
            let state = match found.remove(&key.text) {
                None => KeyState::Known(None),
                Some(mut items) if items.len() == 1 => KeyState::Known(items.pop()),
                Some(items) => KeyState::Ambiguous(items.len()),
            };
            (key.text.clone(), state)
        })
        .collect())
}

/// Looks up a single key (after a look-up batch failed, or a write left the state unknown).
async fn lookup_one(shared: &Shared, key: &KeyValue) -> Result<KeyState, ApiError> {
    let Some(identity) = &shared.identity else { return Ok(KeyState::Known(None)) };
    let mut states = lookup(shared, identity, &[key]).await?;
    Ok(states.remove(&key.text).unwrap_or(KeyState::Known(None)))
}

/// Splits a valid row into what to write: the `delete_column` flag is taken out of the body, the
/// identity read. A row without a value for an identity field is rejected.
pub(crate) fn prepare(
    row_number: u64,
    mut data: Map<String, Value>,
    identity: Option<&Identity>,
    delete_column: Option<&str>,
) -> Result<PreparedRow, RowWriteOutcome> {
    let delete = match delete_column {
        Some(column) => super::keys::is_delete_flag(data.remove(column).as_ref()),
        None => false,
    };
    let key = match identity {
        None => None,
        Some(identity) => match identity.value_of(&data) {
            Ok(key) => Some(key),
            Err(field) => {
                return Err(RowWriteOutcome::Rejected {
                    row_number,
                    errors: vec![write_error(
                        Some(&field),
                        "missing_key",
                        format!(
                            "the row has no value for '{field}', which identifies its record in the target"
                        ),
                        None,
                    )],
                });
            }
        },
    };
    Ok(PreparedRow { row_number, body: data, delete, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m2m::writer::object;
    use serde_json::json;

    #[test]
    fn unchanged_means_every_row_field_already_holds() {
        let record = object(json!({"_id": "x", "name": "Ada", "age": 36, "note": null}));
        assert!(is_unchanged(&object(json!({"name": "Ada"})), &record));
        assert!(is_unchanged(
            &object(json!({"name": "Ada", "note": null, "missing": null})),
            &record
        ));
        assert!(!is_unchanged(&object(json!({"name": "Ada", "age": 37})), &record));
        assert!(!is_unchanged(&object(json!({"new": 1})), &record));
    }

    #[test]
    fn prepare_takes_out_the_delete_column_and_reads_the_key() {
        let identity = Identity { fields: vec!["code".into()] };
        let row = prepare(
            3,
            object(json!({"code": "a", "x": 1, "del": "YES"})),
            Some(&identity),
            Some("del"),
        )
        .unwrap();
        assert!(row.delete);
        assert_eq!(row.body, object(json!({"code": "a", "x": 1})));
        assert_eq!(row.key.unwrap().text, "\"a\"");
        let kept =
            prepare(4, object(json!({"code": "b", "del": "no"})), Some(&identity), Some("del"))
                .unwrap();
        assert!(!kept.delete);
        assert_eq!(kept.body, object(json!({"code": "b"})));
        match prepare(5, object(json!({"x": 1})), Some(&identity), None) {
            Err(RowWriteOutcome::Rejected { row_number: 5, errors }) => {
                assert_eq!(errors[0].rule, "missing_key");
                assert_eq!(errors[0].field.as_deref(), Some("code"));
            }
            other => panic!("{other:?}"),
        }
        assert!(prepare(6, object(json!({"x": 1})), None, None).unwrap().key.is_none());
    }
}
