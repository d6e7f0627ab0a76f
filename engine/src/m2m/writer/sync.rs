//! Sync mode's second phase: soft-delete the records within `scope_filter` that the file no longer
//! contains — only after a complete, fully valid file, and never more than a configured share of
//! the scope without an explicit override.
//!
//! The scope is listed completely first (`per_page` 100, sorted by `_id`), then the share guard is
//! checked, and only then is anything deleted (DELETE with the listed item's ETag; a `412`
//! re-reads the record and deletes it again unless it has meanwhile been deleted or now carries a
//! key from the file).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::errors::{MAX_CONFLICT_RETRIES, Verdict, classify};
use super::keys::Identity;
use crate::m2m::client::{ApiClient, Item, ListQuery};
use crate::m2m::error::ApiError;

/// Records listed per page (the platform's maximum).
pub(crate) const PAGE_SIZE: u32 = 100;

/// Deletes sent at once (the client bounds requests in flight further).
const DELETES_IN_FLIGHT: usize = 32;

/// How the file ended, as far as the pipeline in front of the writer knows; sent to
/// [`RowWriter::run`](super::RowWriter::run) once the file has been read to its end. Sync deletes
/// need a complete file in which no row was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVerdict {
    /// The file was read to its end (no fatal parse error, no cancellation).
    pub complete: bool,
    /// Rows the pipeline rejected (parse, mapping, validation).
    pub rejected_rows: u64,
}

impl FileVerdict {
    /// A complete file without rejected rows.
    pub fn complete_and_valid() -> Self {
        FileVerdict { complete: true, rejected_rows: 0 }
    }

    /// Why sync deletes must be skipped for this file; none when they may run.
    pub fn sync_blocker(&self) -> Option<String> {
        if !self.complete {
            Some("the file was not read completely".into())
        } else if self.rejected_rows > 0 {
            Some(format!("{} rows of the file were rejected", self.rejected_rows))
        } else {
            None
        }
    }
}

/// The share guard: whether deleting `to_delete` of `in_scope` records is allowed.
pub(crate) fn check_delete_share(
    in_scope: u64,
    to_delete: u64,
    max_share: f64,
    allow_large: bool,
) -> Result<(), String> {
    if to_delete == 0 || in_scope == 0 || allow_large {
        return Ok(());
    }
    let share = to_delete as f64 / in_scope as f64;
    if share > max_share {
        return Err(format!(
            "sync refused: it would delete {to_delete} of the {in_scope} records in scope ({:.1} %), \
             more than the allowed {:.1} %; check that the file is the full data set, or allow a \
             large sync delete explicitly",
            share * 100.0,
            max_share * 100.0
        ));
    }
    Ok(())
}

/// The `where` filter of the live records in scope.
pub(crate) fn scope_query_filter(scope: &Map<String, Value>) -> Value {
    let live = json!({"is_deleted": {"$ne": true}});
    if scope.is_empty() { live } else { json!({"$and": [Value::Object(scope.clone()), live]}) }
}

/// Lists every live record in scope.
pub(crate) async fn list_scope(
    client: &ApiClient,
    resource: &str,
    scope: &Map<String, Value>,
) -> Result<Vec<Item>, ApiError> {
    let filter = scope_query_filter(scope);
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let query = ListQuery {
            filter: Some(filter.clone()),
            sort: Some("_id".into()),
            page,
            per_page: PAGE_SIZE,
            ..ListQuery::default()
        };
        let answer = client.list(resource, &query).await?;
        let got = answer.items.len();
        items.extend(
            answer
                .items
                .into_iter()
                .filter(|i| i.body.get("is_deleted") != Some(&Value::Bool(true))),
        );
        if got == 0 || (page as u64) * (PAGE_SIZE as u64) >= answer.total {
            break;
        }
        page += 1;
    }
    Ok(items)
}

/// The records in `scope` whose identity is not among `file_keys` (records without a key value
/// cannot match any row, so they go too).
pub(crate) fn records_to_delete(
    scope: Vec<Item>,
    identity: &Identity,
    file_keys: &HashSet<String>,
) -> Vec<Item> {
    scope
        .into_iter()
        .filter(|item| match identity.value_of(&item.body) {
            Ok(key) => !file_keys.contains(&key.text),
            Err(_) => true,
        })
        .collect()
}

/// The result of the delete phase.
#[derive(Debug, Default)]
pub(crate) struct DeletePhase {
    /// Records deleted.
    pub(crate) deleted: Vec<String>,
    /// Why the phase stopped early (a run failure), if it did.
    pub(crate) failure: Option<String>,
    /// Records that could not be deleted, with why.
    pub(crate) skipped: Vec<(String, String)>,
}

/// Deletes `records`, a bounded number at a time; stops starting new deletes at the first
/// run-level failure or when `stop` is cancelled (deletes in flight finish).
pub(crate) async fn delete_records(
    client: &ApiClient,
    resource: &str,
    records: Vec<Item>,
    identity: &Identity,
    file_keys: &Arc<HashSet<String>>,
    stop: &CancellationToken,
) -> DeletePhase {
    let mut phase = DeletePhase::default();
    let mut pending = records.into_iter();
    let mut tasks = JoinSet::new();
    loop {
        if stop.is_cancelled() && phase.failure.is_none() {
            phase.failure = Some("the run was cancelled".into());
        }
        while tasks.len() < DELETES_IN_FLIGHT && phase.failure.is_none() {
            let Some(item) = pending.next() else { break };
            let client = client.clone();
            let resource = resource.to_owned();
            let identity = identity.clone();
            let keys = Arc::clone(file_keys);
            tasks.spawn(async move {
                let id = item.id.clone();
                (id, delete_one(&client, &resource, item, &identity, &keys).await)
            });
        }
        let Some(joined) = tasks.join_next().await else { break };
        match joined {
            Ok((id, Ok(true))) => phase.deleted.push(id),
            Ok((_, Ok(false))) => {}
            Ok((id, Err(DeleteFailure::Record(why)))) => phase.skipped.push((id, why)),
            Ok((_, Err(DeleteFailure::Run(why)))) => {
                phase.failure.get_or_insert(why);
            }
            Err(e) => {
                phase.failure.get_or_insert(format!("a sync delete task failed: {e}"));
            }
        }
    }
    phase
}

enum DeleteFailure {
    Record(String),
    Run(String),
}

/// Deletes one record; `Ok(false)` when it turned out not to need deleting any more.
async fn delete_one(
    client: &ApiClient,
    resource: &str,
    mut item: Item,
    identity: &Identity,
    file_keys: &HashSet<String>,
) -> Result<bool, DeleteFailure> {
    for _ in 0..=MAX_CONFLICT_RETRIES {
        match client.delete(resource, &item.id, &item.etag).await {
            Ok(()) => return Ok(true),
            Err(ApiError::NotFound) => return Ok(false),
            Err(ApiError::PreconditionFailed { current }) => {
                let fresh = match current {
                    Some(current) => current,
                    None => match client.get(resource, &item.id).await {
                        Ok(fresh) => fresh,
                        Err(ApiError::NotFound) => return Ok(false),
                        Err(e) => return Err(failure(&e)),
                    },
                };
                let now_in_file =
                    identity.value_of(&fresh.body).is_ok_and(|k| file_keys.contains(&k.text));
                if fresh.body.get("is_deleted") == Some(&Value::Bool(true)) || now_in_file {
                    return Ok(false);
                }
                item = fresh;
            }
            Err(e) => return Err(failure(&e)),
        }
    }
    Err(DeleteFailure::Record("the record kept changing (HTTP 412 on every attempt)".into()))
}

fn failure(error: &ApiError) -> DeleteFailure {
    match classify(error, &Map::new()) {
        Verdict::Reject(_) => DeleteFailure::Record(error.to_string()),
        Verdict::FailRun(why) => DeleteFailure::Run(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_guard_allows_up_to_the_share_and_refuses_beyond() {
        assert!(check_delete_share(10, 5, 0.5, false).is_ok());
        let refused = check_delete_share(10, 6, 0.5, false).unwrap_err();
        assert!(refused.contains("6 of the 10") && refused.contains("60.0 %"), "{refused}");
        assert!(check_delete_share(10, 6, 0.5, true).is_ok(), "the override allows it");
        assert!(check_delete_share(10, 10, 1.0, false).is_ok());
        assert!(check_delete_share(0, 0, 0.5, false).is_ok());
        assert!(check_delete_share(1, 1, 0.0, false).is_err(), "share 0 forbids any delete");
        assert!(check_delete_share(1, 0, 0.0, false).is_ok());
    }

    #[test]
    fn the_scope_excludes_deleted_records() {
        assert_eq!(scope_query_filter(&Map::new()), json!({"is_deleted": {"$ne": true}}));
        let scope = match json!({"club": "a"}) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        assert_eq!(
            scope_query_filter(&scope),
            json!({"$and": [{"club": "a"}, {"is_deleted": {"$ne": true}}]})
        );
    }

    #[test]
    fn records_missing_from_the_file_are_chosen_for_deletion() {
        let identity = Identity { fields: vec!["code".into()] };
        let item = |id: &str, body: Value| Item {
            id: id.into(),
            etag: "\"1\"".into(),
            body: match body {
                Value::Object(map) => map,
                _ => unreachable!(),
            },
        };
        let scope = vec![
            item("1", json!({"code": "a"})),
            item("2", json!({"code": "b"})),
            item("3", json!({})),
        ];
        let keys = HashSet::from(["\"a\"".to_owned()]);
        let ids: Vec<String> =
            records_to_delete(scope, &identity, &keys).into_iter().map(|i| i.id).collect();
        assert_eq!(ids, ["2", "3"]);
    }

    #[test]
    fn verdicts() {
        assert_eq!(FileVerdict::complete_and_valid().sync_blocker(), None);
        assert!(FileVerdict { complete: false, rejected_rows: 0 }.sync_blocker().is_some());
        assert!(FileVerdict { complete: true, rejected_rows: 2 }.sync_blocker().is_some());
    }
}
