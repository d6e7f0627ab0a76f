//! The document resources: `/imports/templates`, `/imports/sources`, `/alert-channels` and
//! `/alert-routing-rules` — list, create, get, PATCH, PUT and DELETE, each scoped to the
//! caller's tenant, with the platform's conventions.
//!
//! | method | path | capability | answer |
//! | --- | --- | --- | --- |
//! | GET | `/{resource}` or `/{resource}/` | `{resource}:list` | a page ([`super::listing`]) |
//! | POST | `/{resource}` or `/{resource}/` | `{resource}:create` | 201, the item, `ETag`, `Location` |
//! | GET | `/{resource}/{id}` | `{resource}:read` | the item with its `ETag` |
//! | PATCH | `/{resource}/{id}` | `{resource}:update` | shallow merge; `If-Match` required |
//! | PUT | `/{resource}/{id}` | `{resource}:update` | full replace; `If-Match` required |
//! | DELETE | `/{resource}/{id}` | `{resource}:delete` | soft delete, 204; `If-Match` required |
//!
//! `{resource}` in a capability is the path without its leading slash (`imports/templates`).
//!
//! # Bodies
//! A body is a JSON object of at most [`super::Limits::max_json_bytes`] (413 beyond). Base
//! fields (`_id`, `revision_id`, `created_at`, `updated_at`, `is_deleted`, `deleted_at`) are
//! ignored; `tenant_id` is refused (422 `readonly`) unless it is the caller's own. Fields the
//! engine maintains (a source's `last_successful_poll_at`, `last_error`) are kept from the stored
//! item. The result of create, PUT and PATCH is checked whole, and a 422 lists every problem
//! with its place:
//! - a **template** goes through the engine's template loader — its JSON Schema, its types, and
//!   compiling its regexes, schemas and expressions — and is stored as the loader reads it (with
//!   the spec's defaults filled in); its `source_id`, when set, must be one of the tenant's
//!   sources; `shared_from_tenant_id` cannot be set through the API, and a template that has it
//!   is read-only (403 `shared_template_read_only`);
//! - a **source**, **channel** or **rule** is checked against its schema ([`super::schemas`],
//!   unknown fields refused), defaults filled in on create and PUT; secrets inline in a
//!   `connection_config` or `config` are refused; a source's type must be one this release polls;
//!   a rule's `channel_ids` must be the tenant's channels.
//!
//! # Deletes
//! A delete that would orphan children is 409 `has_dependents`: a source still referenced by a
//! template, a channel still referenced by a routing rule.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use intake_engine::store::{Collection, Document, ListQuery as StoreQuery, StoreError};
use intake_engine::template::load as load_template;
use serde_json::{Map, Value, json};

use super::AppState;
use super::errors::store_error;
use super::item::{if_match_required, item_response, json_object};
use super::listing;
use super::schemas::{
    channel_problems, channel_schema, field_error, read_only_fields, routing_rule_schema,
    schema_errors, source_problems, source_schema, template_problems, with_defaults,
};
use crate::auth::Principal;
use crate::conventions::{ApiError, FieldError, IfMatch, is_object_id};

/// Base fields the store keeps; ignored in bodies.
const BASE_FIELDS: [&str; 7] =
    ["_id", "revision_id", "created_at", "updated_at", "is_deleted", "deleted_at", "tenant_id"];

/// One document resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `/imports/templates`.
    Templates,
    /// `/imports/sources`.
    Sources,
    /// `/alert-channels`.
    AlertChannels,
    /// `/alert-routing-rules`.
    AlertRoutingRules,
}

impl Resource {
    /// Every document resource.
    pub(crate) const ALL: [Resource; 4] = [
        Resource::Templates,
        Resource::Sources,
        Resource::AlertChannels,
        Resource::AlertRoutingRules,
    ];

    /// The collection path, e.g. `/imports/templates`.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Resource::Templates => "/imports/templates",
            Resource::Sources => "/imports/sources",
            Resource::AlertChannels => "/alert-channels",
            Resource::AlertRoutingRules => "/alert-routing-rules",
        }
    }

    /// The capability `action` on this resource, e.g. `imports/templates:read`.
    pub(crate) fn capability(self, action: &str) -> String {
        format!("{}:{action}", &self.path()[1..])
    }

    /// The store collection.
    pub(crate) fn collection(self) -> Collection {
        match self {
            Resource::Templates => Collection::Templates,
            Resource::Sources => Collection::Sources,
            Resource::AlertChannels => Collection::AlertChannels,
            Resource::AlertRoutingRules => Collection::AlertRoutingRules,
        }
    }

    /// The body schema (templates: the engine's template schema).
    pub(crate) fn schema(self) -> Value {
        match self {
            Resource::Templates => intake_engine::template::template_schema(),
            Resource::Sources => source_schema(),
            Resource::AlertChannels => channel_schema(),
            Resource::AlertRoutingRules => routing_rule_schema(),
        }
    }
}

/// The routes of every document resource.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for resource in Resource::ALL {
        let collection =
            get(move |s: State<AppState>, p: Principal, q: RawQuery| list(resource, s, p, q))
                .post(move |s: State<AppState>, p: Principal, b: Body| create(resource, s, p, b));
        let item =
            get(move |s: State<AppState>, p: Principal, id: Path<String>| read(resource, s, p, id))
                .patch(
                    move |s: State<AppState>,
                          p: Principal,
                          id: Path<String>,
                          h: HeaderMap,
                          b: Body| {
                        write(resource, Write::Patch, s, p, id, h, b)
                    },
                )
                .put(
                    move |s: State<AppState>,
                          p: Principal,
                          id: Path<String>,
                          h: HeaderMap,
                          b: Body| {
                        write(resource, Write::Put, s, p, id, h, b)
                    },
                )
                .delete(move |s: State<AppState>, p: Principal, id: Path<String>, h: HeaderMap| {
                    delete(resource, s, p, id, h)
                });
        router = router
            .route(resource.path(), collection.clone())
            .route(&format!("{}/", resource.path()), collection)
            .route(&format!("{}/{{id}}", resource.path()), item);
    }
    router
}

async fn list(
    resource: Resource,
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(&resource.capability("list"))?;
    listing::list(&state, &principal, resource.collection(), query.as_deref()).await
}

async fn read(
    resource: Resource,
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(&resource.capability("read"))?;
    let document = load(&state, &principal, resource, &id).await?;
    Ok(item_response(StatusCode::OK, &document.to_json(), &document.meta.revision_id))
}

async fn create(
    resource: Resource,
    State(state): State<AppState>,
    principal: Principal,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(&resource.capability("create"))?;
    let body = read_body(&state, body).await?;
    let fields = client_fields(resource, &principal, body, None)?;
    let fields = checked(&state, &principal, resource, fields).await?;
    let document = state
        .store
        .create(resource.collection(), &principal.tenant_id, Value::Object(fields))
        .await
        .map_err(store_error)?;
    tracing::info!(client = %principal.client_id, resource = resource.path(), id = %document.meta.id, "created");
    let mut response =
        item_response(StatusCode::CREATED, &document.to_json(), &document.meta.revision_id);
    let location = format!("{}/{}", resource.path(), document.meta.id);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// PATCH or PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Patch,
    Put,
}

async fn write(
    resource: Resource,
    how: Write,
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(&resource.capability("update"))?;
    let condition = if_match_required(&headers)?;
    let body = read_body(&state, body).await?;
    let current = load(&state, &principal, resource, &id).await?;
    check_not_shared(resource, &principal, &current)?;
    check_condition(&condition, &current)?;
    let fields = client_fields(resource, &principal, body, Some((how, &current)))?;
    let fields = checked(&state, &principal, resource, fields).await?;
    let updated = state
        .store
        .update(
            resource.collection(),
            &principal.tenant_id,
            &id,
            Some(&current.meta.revision_id),
            Value::Object(fields),
        )
        .await
        .map_err(write_error)?;
    tracing::info!(client = %principal.client_id, resource = resource.path(), %id, "updated");
    Ok(item_response(StatusCode::OK, &updated.to_json(), &updated.meta.revision_id))
}

async fn delete(
    resource: Resource,
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(&resource.capability("delete"))?;
    let condition = if_match_required(&headers)?;
    let current = load(&state, &principal, resource, &id).await?;
    check_not_shared(resource, &principal, &current)?;
    check_condition(&condition, &current)?;
    check_no_dependents(&state, &principal, resource, &id).await?;
    state
        .store
        .delete(resource.collection(), &principal.tenant_id, &id, Some(&current.meta.revision_id))
        .await
        .map_err(write_error)?;
    tracing::info!(client = %principal.client_id, resource = resource.path(), %id, "deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- steps ------------------------------------------------------------------------------------

/// The request body, at most the JSON limit (413 beyond), as a JSON object (400 otherwise).
async fn read_body(state: &AppState, body: Body) -> Result<Map<String, Value>, ApiError> {
    let limit = state.limits.max_json_bytes;
    let bytes: Bytes =
        axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX)).await.map_err(
            |_| ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes")),
        )?;
    json_object(&bytes)
}

/// The tenant's item, or 404 (also for another tenant's item and a malformed id).
async fn load(
    state: &AppState,
    principal: &Principal,
    resource: Resource,
    id: &str,
) -> Result<Document, ApiError> {
    if !is_object_id(id) {
        return Err(ApiError::NotFound);
    }
    state.store.get(resource.collection(), &principal.tenant_id, id).await.map_err(store_error)
}

/// 412 with the current item when `If-Match` does not name its revision.
fn check_condition(condition: &IfMatch, current: &Document) -> Result<(), ApiError> {
    if condition.matches(&current.meta.revision_id) {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed {
            current: current.to_json(),
            etag: format!("\"{}\"", current.meta.revision_id),
        })
    }
}

/// A store refusal of a write: a revision that changed meanwhile is 412.
fn write_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict { current_revision, .. } => ApiError::PreconditionFailed {
            current: json!({"revision_id": current_revision}),
            etag: format!("\"{current_revision}\""),
        },
        other => store_error(other),
    }
}

/// A template shared from another tenant is read-only for the tenant it is shared with.
fn check_not_shared(
    resource: Resource,
    principal: &Principal,
    current: &Document,
) -> Result<(), ApiError> {
    let shared_from = current.body.get("shared_from_tenant_id").and_then(Value::as_str);
    match shared_from {
        Some(owner) if resource == Resource::Templates && owner != principal.tenant_id => {
            Err(ApiError::Forbidden {
                error: "shared_template_read_only",
                message: format!(
                    "this template is shared from tenant {owner}: it can be used but not changed"
                ),
            })
        }
        _ => Ok(()),
    }
}

/// The fields to store from a client's body: base fields dropped, `tenant_id` refused unless it
/// is the caller's, engine-maintained fields kept from the stored item; for PATCH merged over
/// the stored fields, for create and PUT completed with the defaults (templates get theirs from
/// the loader).
fn client_fields(
    resource: Resource,
    principal: &Principal,
    mut body: Map<String, Value>,
    current: Option<(Write, &Document)>,
) -> Result<Map<String, Value>, ApiError> {
    match body.get("tenant_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if *t == principal.tenant_id => {}
        Some(_) => {
            return Err(ApiError::Validation(vec![field_error(
                &["tenant_id"],
                "tenant_id is read-only; it is set from the access token",
                "readonly",
            )]));
        }
    }
    let stored = current.and_then(|(_, d)| d.body.as_object().cloned()).unwrap_or_default();
    if resource == Resource::Templates {
        let given = body.get("shared_from_tenant_id").filter(|v| !v.is_null());
        if given.is_some() && given != stored.get("shared_from_tenant_id") {
            return Err(ApiError::Validation(vec![field_error(
                &["shared_from_tenant_id"],
                "shared_from_tenant_id is read-only: templates are shared by their owner tenant",
                "readonly",
            )]));
        }
    }
    for field in BASE_FIELDS {
        body.remove(field);
    }
    let schema = resource.schema();
    let read_only = read_only_fields(&schema);
    for field in &read_only {
        body.remove(field);
    }
    let mut fields = match current {
        Some((Write::Patch, _)) => {
            let mut merged = stored.clone();
            merged.extend(body);
            merged
        }
        _ => {
            let mut replaced =
                if resource == Resource::Templates { body } else { with_defaults(&schema, body) };
            for field in &read_only {
                if let Some(value) = stored.get(field) {
                    replaced.insert(field.clone(), value.clone());
                }
            }
            replaced
        }
    };
    for field in BASE_FIELDS {
        fields.remove(field);
    }
    Ok(fields)
}

/// Checks the fields to store completely (422 listing every problem) and returns them as they
/// are stored.
async fn checked(
    state: &AppState,
    principal: &Principal,
    resource: Resource,
    fields: Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let (fields, mut problems) = match resource {
        Resource::Templates => template_fields(fields),
        Resource::Sources => {
            let problems = schema_or_semantic(&source_schema(), &fields, source_problems);
            (fields, problems)
        }
        Resource::AlertChannels => {
            let problems = schema_or_semantic(&channel_schema(), &fields, channel_problems);
            (fields, problems)
        }
        Resource::AlertRoutingRules => {
            let problems = schema_or_semantic(&routing_rule_schema(), &fields, |_| Vec::new());
            (fields, problems)
        }
    };
    if problems.is_empty() {
        problems.extend(missing_references(state, principal, resource, &fields).await?);
    }
    if problems.is_empty() { Ok(fields) } else { Err(ApiError::Validation(problems)) }
}

/// Schema errors; the semantic checks only when the schema holds (they assume its shape).
fn schema_or_semantic(
    schema: &Value,
    fields: &Map<String, Value>,
    semantic: impl Fn(&Map<String, Value>) -> Vec<FieldError>,
) -> Vec<FieldError> {
    let errors = schema_errors(schema, &Value::Object(fields.clone()));
    if errors.is_empty() { semantic(fields) } else { errors }
}

/// A template body through the engine's loader: the stored form (defaults filled in), or every
/// problem at its place.
fn template_fields(fields: Map<String, Value>) -> (Map<String, Value>, Vec<FieldError>) {
    let text = Value::Object(fields.clone()).to_string();
    match load_template("body", &text) {
        Ok(template) => match serde_json::to_value(&template) {
            Ok(Value::Object(mut stored)) => {
                for field in BASE_FIELDS.iter().chain(&["is_depersonalized"]) {
                    if !fields.contains_key(*field) {
                        stored.remove(*field);
                    }
                }
                for field in BASE_FIELDS {
                    stored.remove(field);
                }
                (stored, Vec::new())
            }
            _ => (fields, vec![field_error(&[], "the template cannot be stored", "internal")]),
        },
        Err(e) => (fields, template_problems(&e, &[])),
    }
}

/// References to the tenant's other items that do not exist: a template's `source_id`, a
/// rule's `channel_ids`.
async fn missing_references(
    state: &AppState,
    principal: &Principal,
    resource: Resource,
    fields: &Map<String, Value>,
) -> Result<Vec<FieldError>, ApiError> {
    let mut out = Vec::new();
    let references: Vec<(Vec<Value>, Collection, String)> = match resource {
        Resource::Templates => fields
            .get("source_id")
            .and_then(Value::as_str)
            .map(|id| (vec![json!("body"), json!("source_id")], Collection::Sources, id.to_owned()))
            .into_iter()
            .collect(),
        Resource::AlertRoutingRules => fields
            .get("channel_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, id)| {
                let loc = vec![json!("body"), json!("channel_ids"), json!(i)];
                id.as_str().map(|id| (loc, Collection::AlertChannels, id.to_owned()))
            })
            .collect(),
        Resource::Sources | Resource::AlertChannels => Vec::new(),
    };
    for (loc, collection, id) in references {
        match state.store.get(collection, &principal.tenant_id, &id).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => out.push(FieldError {
                loc,
                msg: format!(
                    "no {} with id {id} in this tenant",
                    collection.table().trim_end_matches('s')
                ),
                kind: "reference".into(),
            }),
            Err(e) => return Err(store_error(e)),
        }
    }
    Ok(out)
}

/// 409 when deleting `id` would orphan items that reference it.
async fn check_no_dependents(
    state: &AppState,
    principal: &Principal,
    resource: Resource,
    id: &str,
) -> Result<(), ApiError> {
    let (children, what) = match resource {
        Resource::Sources => {
            let query = StoreQuery::new().eq("source_id", id).page(1, 100);
            let page = state
                .store
                .list(Collection::Templates, &principal.tenant_id, &query)
                .await
                .map_err(store_error)?;
            (page.items.iter().map(|d| d.meta.id.clone()).collect::<Vec<_>>(), "templates")
        }
        Resource::AlertChannels => {
            let rules =
                listing::all(state, &principal.tenant_id, Collection::AlertRoutingRules).await?;
            let ids = rules
                .iter()
                .filter(|rule| {
                    rule.get("channel_ids")
                        .and_then(Value::as_array)
                        .is_some_and(|ids| ids.iter().any(|c| c.as_str() == Some(id)))
                })
                .filter_map(|rule| rule.get("_id").and_then(Value::as_str).map(str::to_owned))
                .collect();
            (ids, "alert routing rules")
        }
        Resource::Templates | Resource::AlertRoutingRules => (Vec::new(), ""),
    };
    if children.is_empty() {
        return Ok(());
    }
    Err(ApiError::Conflict {
        error: "has_dependents",
        message: format!(
            "{} {id} is still referenced by {what} {}: delete or re-point them first",
            &resource.path()[1..],
            children.join(", ")
        ),
    })
}
