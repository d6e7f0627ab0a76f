//! The sandbox's in-memory store: items per (tenant, resource), and idempotency records.
//!
//! Everything here is synchronous and runs under one mutex held only for the operation (never
//! across an `.await`), so an idempotency check, the write and its record are one atomic step.

use std::collections::{HashMap, HashSet};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{FieldError, is_object_id, now_secs, random_hex};
use crate::conventions::{IfMatch, ListQuery, index_keys};

/// The fields the sandbox manages. Clients cannot set them, except `is_deleted` and `deleted_at`
/// through PATCH and PUT (see [`Store::update`]).
pub(crate) const SYSTEM_FIELDS: [&str; 7] =
    ["_id", "tenant_id", "created_at", "updated_at", "revision_id", "is_deleted", "deleted_at"];

/// How long an idempotency record is kept (24 h).
const IDEMPOTENCY_TTL_SECONDS: u64 = 24 * 3600;

/// One stored item.
#[derive(Debug)]
struct Item {
    /// Creation order, for stable ordering.
    seq: u64,
    /// The item with its system fields.
    doc: Map<String, Value>,
}

/// Items of one (tenant, resource).
#[derive(Debug, Default)]
struct Table {
    /// Items by `_id`.
    items: HashMap<String, Item>,
    /// Ids by top-level field and [`index_keys`] of its value, for the fields `$in` look-ups
    /// have asked for (built on the first one, then kept up to date by every write).
    index: HashMap<String, HashMap<String, HashSet<String>>>,
}

impl Table {
    /// Builds the index of `field` unless it exists.
    fn ensure_index(&mut self, field: &str) {
        if self.index.contains_key(field) {
            return;
        }
        let mut by_key: HashMap<String, HashSet<String>> = HashMap::new();
        for (id, item) in &self.items {
            if let Some(value) = item.doc.get(field) {
                for key in index_keys(value) {
                    by_key.entry(key).or_default().insert(id.clone());
                }
            }
        }
        self.index.insert(field.to_owned(), by_key);
    }

    /// Adds (or removes) `doc` to (from) every index.
    fn reindex(&mut self, id: &str, doc: &Map<String, Value>, add: bool) {
        for (field, by_key) in &mut self.index {
            let Some(value) = doc.get(field) else { continue };
            for key in index_keys(value) {
                if add {
                    by_key.entry(key).or_default().insert(id.to_owned());
                } else if let Some(ids) = by_key.get_mut(&key) {
                    ids.remove(id);
                    if ids.is_empty() {
                        by_key.remove(&key);
                    }
                }
            }
        }
    }
}

/// A response kept for idempotent replay, or about to be sent.
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    /// Status code.
    pub(crate) status: StatusCode,
    /// JSON body (none for 204).
    pub(crate) body: Option<Value>,
    /// `ETag` header.
    pub(crate) etag: Option<String>,
    /// `Location` header.
    pub(crate) location: Option<String>,
}

impl StoredResponse {
    /// A response carrying `item` and its ETag.
    pub(crate) fn item(status: StatusCode, item: Map<String, Value>) -> Self {
        let etag = etag_of(&item);
        StoredResponse { status, body: Some(Value::Object(item)), etag, location: None }
    }

    /// The HTTP response; `replayed` adds `Idempotent-Replayed: true`.
    pub(crate) fn to_response(&self, replayed: bool) -> Response {
        let mut response = match &self.body {
            Some(body) => (self.status, axum::Json(body.clone())).into_response(),
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        if let Some(etag) = self.etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
            headers.insert(header::ETAG, etag);
        }
        if let Some(location) = self.location.as_deref().and_then(|l| HeaderValue::from_str(l).ok())
        {
            headers.insert(header::LOCATION, location);
        }
        if replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// The quoted `revision_id` of an item.
pub(crate) fn etag_of(item: &Map<String, Value>) -> Option<String> {
    item.get("revision_id").and_then(Value::as_str).map(|r| format!("\"{r}\""))
}

/// What makes two requests with the same idempotency key "the same request".
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fingerprint {
    /// HTTP method.
    pub(crate) method: String,
    /// `resource` or `resource/id`.
    pub(crate) target: String,
    /// The `If-Match` header, if any.
    pub(crate) if_match: Option<String>,
    /// The parsed JSON body, if any (compared as JSON, so key order and spacing do not matter).
    pub(crate) body: Option<Value>,
}

/// A remembered first response to an idempotency key.
#[derive(Debug)]
struct IdempotencyRecord {
    /// The request it answered.
    fingerprint: Fingerprint,
    /// The answer.
    response: StoredResponse,
    /// When it was stored (Unix seconds).
    stored_at: u64,
}

/// What an idempotency look-up found.
#[derive(Debug)]
pub(crate) enum Replay {
    /// The key is new: go ahead.
    New,
    /// The same request was answered before: send this again.
    Same(StoredResponse),
    /// The key was used for a different request.
    Different,
}

/// How an update changes an item.
#[derive(Debug)]
pub(crate) enum Change {
    /// PATCH: top-level keys of the body replace the item's.
    Merge(Map<String, Value>),
    /// PUT: the body replaces every non-system field.
    Replace(Map<String, Value>),
    /// DELETE: soft delete.
    Delete,
}

/// Why a write to an existing item did not happen.
#[derive(Debug)]
pub(crate) enum WriteRefused {
    /// No item with that id for that tenant (or only a soft-deleted one, when not asked for).
    NotFound,
    /// `If-Match` does not match; the current item.
    Conflict(Map<String, Value>),
    /// The resulting item fails validation; the validator's error.
    Invalid(super::ApiError),
}

/// Now as RFC 3339 UTC with microseconds.
fn timestamp() -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::from_timestamp(
        i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        now.subsec_nanos(),
    )
    .unwrap_or_default()
    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The non-system fields of a document.
pub(crate) fn user_fields(doc: &Map<String, Value>) -> Map<String, Value> {
    doc.iter()
        .filter(|(k, _)| !SYSTEM_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Builds a stored document: `_id`, the user fields, then the other system fields.
fn assemble(
    id: &str,
    fields: Map<String, Value>,
    system: impl IntoIterator<Item = (&'static str, Value)>,
) -> Map<String, Value> {
    let mut doc = Map::with_capacity(fields.len() + SYSTEM_FIELDS.len());
    doc.insert("_id".into(), Value::String(id.to_owned()));
    for (k, v) in fields {
        if !SYSTEM_FIELDS.contains(&k.as_str()) {
            doc.insert(k, v);
        }
    }
    for (k, v) in system {
        doc.insert(k.into(), v);
    }
    doc
}

/// The whole store.
#[derive(Debug, Default)]
pub(crate) struct Store {
    /// Tables by (tenant, resource).
    tables: HashMap<(String, String), Table>,
    /// Next creation sequence number.
    next_seq: u64,
    /// Idempotency records by (tenant, key).
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    /// Size at which expired idempotency records are purged.
    idempotency_purge_at: usize,
}

impl Store {
    /// The table of (tenant, resource), if it has ever had an item.
    fn table(&self, tenant: &str, resource: &str) -> Option<&Table> {
        self.tables.get(&(tenant.to_owned(), resource.to_owned()))
    }

    /// Every item (live, or all), oldest first.
    pub(crate) fn snapshot(
        &self,
        tenant: &str,
        resource: &str,
        include_deleted: bool,
    ) -> Vec<Value> {
        let Some(table) = self.table(tenant, resource) else { return Vec::new() };
        let mut items: Vec<&Item> =
            table.items.values().filter(|i| include_deleted || !is_deleted(&i.doc)).collect();
        items.sort_by_key(|i| i.seq);
        items.into_iter().map(|i| Value::Object(i.doc.clone())).collect()
    }

    /// One page of a list request and the total number of matches.
    pub(crate) fn list(
        &mut self,
        tenant: &str,
        resource: &str,
        query: &ListQuery,
    ) -> (Vec<Value>, u64) {
        let Some(table) = self.tables.get_mut(&(tenant.to_owned(), resource.to_owned())) else {
            return (Vec::new(), 0);
        };
        let candidates: Vec<&Item> = match query.filter.index_probe() {
            Some((field, keys)) => {
                table.ensure_index(field);
                let by_key = &table.index[field];
                let ids: HashSet<&String> =
                    keys.iter().filter_map(|key| by_key.get(key)).flatten().collect();
                ids.into_iter().filter_map(|id| table.items.get(id)).collect()
            }
            None => table.items.values().collect(),
        };
        query.select(
            candidates
                .into_iter()
                .filter(|i| query.include_deleted || !is_deleted(&i.doc))
                .map(|i| (&i.doc, i.seq))
                .collect(),
        )
    }

    /// The item with `id`, soft-deleted ones only when `include_deleted`.
    pub(crate) fn get(
        &self,
        tenant: &str,
        resource: &str,
        id: &str,
        include_deleted: bool,
    ) -> Option<&Map<String, Value>> {
        let item = self.table(tenant, resource)?.items.get(id)?;
        (include_deleted || !is_deleted(&item.doc)).then_some(&item.doc)
    }

    /// Stores a new item from `fields` (system fields in it are ignored) and returns it.
    pub(crate) fn create(
        &mut self,
        tenant: &str,
        resource: &str,
        fields: Map<String, Value>,
    ) -> Map<String, Value> {
        let table = self.tables.entry((tenant.to_owned(), resource.to_owned())).or_default();
        let id = loop {
            // ObjectId-like: 4 bytes of seconds, 8 random bytes; unique within the table.
            let candidate = format!("{:08x}{}", now_secs() & 0xffff_ffff, random_hex(8));
            if !table.items.contains_key(&candidate) {
                break candidate;
            }
        };
        let now = timestamp();
        let doc = assemble(
            &id,
            fields,
            [
                ("tenant_id", Value::String(tenant.to_owned())),
                ("created_at", Value::String(now.clone())),
                ("updated_at", Value::String(now)),
                ("is_deleted", Value::Bool(false)),
                ("deleted_at", Value::Null),
                ("revision_id", Value::String(random_hex(12))),
            ],
        );
        self.next_seq += 1;
        table.reindex(&id, &doc, true);
        table.items.insert(id, Item { seq: self.next_seq, doc: doc.clone() });
        doc
    }

    /// Applies `change` to the item `id` — a soft-deleted one only when `include_deleted` (never
    /// for a [`Change::Delete`]) — if `if_match` holds and `validate` accepts the resulting user
    /// fields (not called for deletes); returns the new item.
    ///
    /// A merge or replace may set `is_deleted` and `deleted_at` (see [`DeletionState::resolve`]):
    /// `is_deleted: false` restores a soft-deleted item, `is_deleted: true` soft-deletes a live
    /// one. Without them the item keeps its deletion state.
    #[allow(clippy::too_many_arguments)] // each argument is one part of the request
    pub(crate) fn update(
        &mut self,
        tenant: &str,
        resource: &str,
        id: &str,
        include_deleted: bool,
        if_match: &IfMatch,
        change: Change,
        validate: impl FnOnce(&Map<String, Value>) -> Result<(), super::ApiError>,
    ) -> Result<Map<String, Value>, WriteRefused> {
        if !is_object_id(id) {
            return Err(WriteRefused::NotFound);
        }
        let reaches_deleted = include_deleted && !matches!(change, Change::Delete);
        let table = self
            .tables
            .get_mut(&(tenant.to_owned(), resource.to_owned()))
            .ok_or(WriteRefused::NotFound)?;
        let item = table
            .items
            .get_mut(id)
            .filter(|i| reaches_deleted || !is_deleted(&i.doc))
            .ok_or(WriteRefused::NotFound)?;
        if !if_match.matches_item(&item.doc) {
            return Err(WriteRefused::Conflict(item.doc.clone()));
        }
        let current = &item.doc;
        let keep = |name: &str| current.get(name).cloned().unwrap_or(Value::Null);
        let now = timestamp();
        let (fields, deletion) = match change {
            Change::Merge(patch) => {
                let deletion = DeletionState::resolve(current, &patch, &now)
                    .map_err(|e| WriteRefused::Invalid(super::ApiError::Validation(e)))?;
                let mut fields = user_fields(current);
                for (k, v) in patch {
                    if !SYSTEM_FIELDS.contains(&k.as_str()) {
                        fields.insert(k, v);
                    }
                }
                validate(&fields).map_err(WriteRefused::Invalid)?;
                (fields, deletion)
            }
            Change::Replace(body) => {
                let deletion = DeletionState::resolve(current, &body, &now)
                    .map_err(|e| WriteRefused::Invalid(super::ApiError::Validation(e)))?;
                let fields = user_fields(&body);
                validate(&fields).map_err(WriteRefused::Invalid)?;
                (fields, deletion)
            }
            Change::Delete => (user_fields(current), DeletionState::Deleted(now.clone())),
        };
        let (is_deleted, deleted_at) = match deletion {
            DeletionState::Live => (false, Value::Null),
            DeletionState::Deleted(at) => (true, Value::String(at)),
        };
        let doc = assemble(
            id,
            fields,
            [
                ("tenant_id", keep("tenant_id")),
                ("created_at", keep("created_at")),
                ("updated_at", Value::String(now)),
                ("is_deleted", Value::Bool(is_deleted)),
                ("deleted_at", deleted_at),
                ("revision_id", Value::String(random_hex(12))),
            ],
        );
        let old = std::mem::replace(&mut item.doc, doc.clone());
        table.reindex(id, &old, false);
        table.reindex(id, &doc, true);
        Ok(doc)
    }

    /// Looks up an idempotency key of `tenant`.
    pub(crate) fn idempotency_lookup(
        &mut self,
        tenant: &str,
        key: &str,
        fingerprint: &Fingerprint,
    ) -> Replay {
        let slot = (tenant.to_owned(), key.to_owned());
        let now = now_secs();
        match self.idempotency.get(&slot) {
            Some(record) if now.saturating_sub(record.stored_at) < IDEMPOTENCY_TTL_SECONDS => {
                if record.fingerprint == *fingerprint {
                    Replay::Same(record.response.clone())
                } else {
                    Replay::Different
                }
            }
            Some(_) => {
                self.idempotency.remove(&slot);
                Replay::New
            }
            None => Replay::New,
        }
    }

    /// Remembers the first successful response to an idempotency key for 24 h.
    pub(crate) fn idempotency_record(
        &mut self,
        tenant: &str,
        key: &str,
        fingerprint: Fingerprint,
        response: StoredResponse,
    ) {
        let now = now_secs();
        if self.idempotency.len() >= self.idempotency_purge_at {
            self.idempotency
                .retain(|_, r| now.saturating_sub(r.stored_at) < IDEMPOTENCY_TTL_SECONDS);
            self.idempotency_purge_at = (self.idempotency.len() * 2).max(4096);
        }
        self.idempotency.insert(
            (tenant.to_owned(), key.to_owned()),
            IdempotencyRecord { fingerprint, response, stored_at: now },
        );
    }
}

/// Whether a document is soft-deleted.
fn is_deleted(doc: &Map<String, Value>) -> bool {
    doc.get("is_deleted").and_then(Value::as_bool).unwrap_or(false)
}

/// An item's deletion state after a write.
#[derive(Debug, Clone, PartialEq)]
enum DeletionState {
    /// Not deleted: `is_deleted: false`, `deleted_at: null`.
    Live,
    /// Soft-deleted at this RFC 3339 time.
    Deleted(String),
}

impl DeletionState {
    /// The state a PATCH or PUT `body` asks for, given the `current` item and the time `now`.
    ///
    /// `is_deleted` (a boolean) decides; without it the current state stays. `deleted_at` may be
    /// left out, or agree with the outcome: `null` for a live item, an RFC 3339 time (stored in
    /// UTC with microseconds) for a deleted one. A deleted item without a given time keeps its
    /// `deleted_at`, or gets `now` when this write deletes it. Anything else is a 422 naming the
    /// field, since a contradiction is a client bug rather than something to guess at.
    fn resolve(
        current: &Map<String, Value>,
        body: &Map<String, Value>,
        now: &str,
    ) -> Result<DeletionState, Vec<FieldError>> {
        let error = |field: &str, msg: String, kind: &str| FieldError {
            loc: vec![Value::from("body"), Value::from(field)],
            msg,
            kind: kind.into(),
        };
        let deleted = match body.get("is_deleted") {
            None => is_deleted(current),
            Some(Value::Bool(deleted)) => *deleted,
            Some(other) => {
                return Err(vec![error(
                    "is_deleted",
                    format!("is_deleted must be true or false, got {other}"),
                    "bool_type",
                )]);
            }
        };
        match (deleted, body.get("deleted_at")) {
            (false, None | Some(Value::Null)) => Ok(DeletionState::Live),
            (false, Some(_)) => Err(vec![error(
                "deleted_at",
                "deleted_at must be null for an item that is not deleted (is_deleted: false)"
                    .into(),
                "value_error",
            )]),
            (true, None) => Ok(DeletionState::Deleted(
                current
                    .get("deleted_at")
                    .and_then(Value::as_str)
                    .filter(|_| is_deleted(current))
                    .unwrap_or(now)
                    .to_owned(),
            )),
            (true, Some(Value::String(at))) => chrono::DateTime::parse_from_rfc3339(at)
                .map(|at| {
                    DeletionState::Deleted(
                        at.with_timezone(&chrono::Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    )
                })
                .map_err(|e| {
                    vec![error(
                        "deleted_at",
                        format!("deleted_at must be an RFC 3339 date-time: {e}"),
                        "datetime_parsing",
                    )]
                }),
            (true, Some(_)) => Err(vec![error(
                "deleted_at",
                "deleted_at must be an RFC 3339 date-time for a deleted item (is_deleted: true); \
                 send is_deleted: false to restore it"
                    .into(),
                "value_error",
            )]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn create_sets_system_fields_and_ignores_client_supplied_ones() {
        let mut store = Store::default();
        let doc = store.create(
            "t1",
            "players",
            fields(json!({"_id": "x", "name": "A", "revision_id": "r", "is_deleted": true})),
        );
        let id = doc["_id"].as_str().unwrap();
        assert!(is_object_id(id), "{id}");
        assert_eq!(doc["name"], "A");
        assert_eq!(doc["tenant_id"], "t1");
        assert_eq!(doc["is_deleted"], false);
        assert_ne!(doc["revision_id"], "r");
        assert!(doc["created_at"].as_str().unwrap().ends_with('Z'));
        let keys: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(keys[0], "_id");
        assert_eq!(keys[1], "name");
    }

    #[test]
    fn if_match_parses_lists_weak_tags_and_bare_values() {
        let item = fields(json!({"revision_id": "abc"}));
        assert!(IfMatch::parse("\"abc\"").unwrap().matches_item(&item));
        assert!(IfMatch::parse("abc").unwrap().matches_item(&item));
        assert!(IfMatch::parse("\"x\", \"abc\"").unwrap().matches_item(&item));
        assert!(!IfMatch::parse("W/\"abc\"").unwrap().matches_item(&item));
        assert!(IfMatch::parse("*").unwrap().matches_item(&item));
        assert!(IfMatch::parse("  ").is_none());
    }

    #[test]
    fn update_changes_revision_and_keeps_system_fields() {
        let mut store = Store::default();
        let doc = store.create("t", "r", fields(json!({"a": 1, "b": 2})));
        let id = doc["_id"].as_str().unwrap().to_owned();
        let rev = IfMatch::Tags(vec![doc["revision_id"].as_str().unwrap().to_owned()]);
        let patched = store
            .update(
                "t",
                "r",
                &id,
                false,
                &rev,
                Change::Merge(fields(json!({"b": 3, "tenant_id": "x"}))),
                |_| Ok(()),
            )
            .unwrap();
        assert_eq!(patched["a"], 1);
        assert_eq!(patched["b"], 3);
        assert_eq!(patched["tenant_id"], "t");
        assert_eq!(patched["created_at"], doc["created_at"]);
        assert_ne!(patched["revision_id"], doc["revision_id"]);
        assert!(matches!(
            store.update("t", "r", &id, false, &rev, Change::Delete, |_| Ok(())),
            Err(WriteRefused::Conflict(_))
        ));
    }

    #[test]
    fn deletion_state_follows_is_deleted_and_refuses_contradictions() {
        let now = "2026-04-01T08:00:00.000000Z";
        let live = fields(json!({"is_deleted": false, "deleted_at": null}));
        let gone = fields(json!({"is_deleted": true, "deleted_at": "2026-03-01T00:00:00.000000Z"}));
        let resolve = |current: &Map<String, Value>, body: Value| {
            DeletionState::resolve(current, &fields(body), now)
        };
        // Without the fields the state stays, deleted_at included.
        assert_eq!(resolve(&live, json!({"a": 1})), Ok(DeletionState::Live));
        assert_eq!(
            resolve(&gone, json!({"a": 1})),
            Ok(DeletionState::Deleted("2026-03-01T00:00:00.000000Z".into()))
        );
        assert_eq!(
            resolve(&gone, json!({"is_deleted": false, "deleted_at": null})),
            Ok(DeletionState::Live)
        );
        assert_eq!(resolve(&gone, json!({"is_deleted": false})), Ok(DeletionState::Live));
        assert_eq!(
            resolve(&live, json!({"is_deleted": true})),
            Ok(DeletionState::Deleted(now.into()))
        );
        assert_eq!(
            resolve(&live, json!({"is_deleted": true, "deleted_at": "2026-04-01T10:00:00+02:00"})),
            Ok(DeletionState::Deleted("2026-04-01T08:00:00.000000Z".into()))
        );
        for (current, body, field) in [
            (&live, json!({"is_deleted": "no"}), "is_deleted"),
            (&live, json!({"is_deleted": null}), "is_deleted"),
            (&live, json!({"deleted_at": now}), "deleted_at"),
            (&gone, json!({"deleted_at": null}), "deleted_at"),
            (&live, json!({"is_deleted": true, "deleted_at": "yesterday"}), "deleted_at"),
        ] {
            let errors = resolve(current, body.clone()).expect_err(&body.to_string());
            assert_eq!(errors[0].loc, vec![json!("body"), json!(field)], "{body}");
        }
    }

    #[test]
    fn a_soft_deleted_item_is_reached_only_with_include_deleted() {
        let mut store = Store::default();
        let doc = store.create("t", "r", fields(json!({"a": 1})));
        let id = doc["_id"].as_str().unwrap().to_owned();
        store.update("t", "r", &id, false, &IfMatch::Any, Change::Delete, |_| Ok(())).unwrap();
        let restore = || Change::Merge(fields(json!({"is_deleted": false})));
        assert!(matches!(
            store.update("t", "r", &id, false, &IfMatch::Any, restore(), |_| Ok(())),
            Err(WriteRefused::NotFound)
        ));
        assert!(matches!(
            store.update("t", "r", &id, true, &IfMatch::Any, Change::Delete, |_| Ok(())),
            Err(WriteRefused::NotFound)
        ));
        let restored =
            store.update("t", "r", &id, true, &IfMatch::Any, restore(), |_| Ok(())).unwrap();
        assert_eq!(
            (restored["a"].clone(), restored["is_deleted"].clone()),
            (json!(1), json!(false))
        );
        assert_eq!(restored["deleted_at"], Value::Null);
        assert!(store.get("t", "r", &id, false).is_some());
    }

    #[test]
    fn in_look_ups_use_an_index_that_follows_every_write() {
        let mut store = Store::default();
        let a = store.create("t", "r", fields(json!({"code": "a", "n": 1})));
        store.create("t", "r", fields(json!({"code": ["b", 2]})));
        let codes = |store: &mut Store, list: &str| -> Vec<Value> {
            let query = ListQuery::parse(&format!(
                "where={}",
                url::form_urlencoded::byte_serialize(
                    json!({"code": {"$in": serde_json::from_str::<Value>(list).unwrap()}})
                        .to_string()
                        .as_bytes()
                )
                .collect::<String>()
            ))
            .unwrap();
            store.list("t", "r", &query).0.into_iter().map(|item| item["code"].clone()).collect()
        };
        assert_eq!(codes(&mut store, r#"["a", 2.0]"#), [json!(["b", 2]), json!("a")]);
        let id = a["_id"].as_str().unwrap().to_owned();
        let recode = Change::Merge(fields(json!({"code": "c"})));
        store.update("t", "r", &id, false, &IfMatch::Any, recode, |_| Ok(())).unwrap();
        assert!(codes(&mut store, r#"["a"]"#).is_empty(), "the old key is gone");
        assert_eq!(codes(&mut store, r#"["c"]"#), [json!("c")]);
        store.create("t", "r", fields(json!({"code": "c"})));
        assert_eq!(codes(&mut store, r#"["c"]"#).len(), 2, "new items are indexed");
        store.update("t", "r", &id, false, &IfMatch::Any, Change::Delete, |_| Ok(())).unwrap();
        assert_eq!(codes(&mut store, r#"["c"]"#).len(), 1, "soft-deleted items stay hidden");
    }
}
