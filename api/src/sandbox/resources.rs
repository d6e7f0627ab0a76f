//! The generic resources: `/{resource}/` (list, create) and `/{resource}/{id}` (get, PATCH, PUT,
//! DELETE) for any resource name, scoped to the caller's tenant.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::auth::Principal;
use super::store::{Change, Fingerprint, Replay, StoredResponse, WriteRefused, user_fields};
use super::{ApiError, AppState, Inner, is_object_id, lock};
use crate::conventions::{FieldError, IfMatch, ListQuery, page_response};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Resource names: lowercase letters, digits, `-` and `_`, starting with a letter or digit.
fn check_resource(resource: &str) -> Result<(), ApiError> {
    let mut chars = resource.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok && resource.len() <= 64 { Ok(()) } else { Err(ApiError::NotFound) }
}

/// The request body as a JSON object (400 otherwise).
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest("the request body must be a JSON object".into())),
        Err(e) => Err(ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))),
    }
}

/// Refuses a client-supplied `tenant_id` other than the token's (422); other system fields are
/// ignored by the store.
fn check_tenant_field(body: &Map<String, Value>, tenant: &str) -> Result<(), ApiError> {
    match body.get("tenant_id") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(t)) if t == tenant => Ok(()),
        Some(_) => Err(ApiError::Validation(vec![FieldError {
            loc: vec![json!("body"), json!("tenant_id")],
            msg: "tenant_id is read-only; it is set from the access token".into(),
            kind: "readonly".into(),
        }])),
    }
}

/// Validates an item's user fields against the resource's schema, if one is configured.
fn validate(app: &Inner, resource: &str, fields: &Map<String, Value>) -> Result<(), ApiError> {
    let Some(compiled) = app.schemas.get(resource) else { return Ok(()) };
    let validator = compiled.as_ref().map_err(|e| {
        ApiError::Misconfigured(format!("the sandbox's schema for '{resource}' is invalid: {e}"))
    })?;
    let instance = Value::Object(fields.clone());
    let errors: Vec<FieldError> = validator
        .iter_errors(&instance)
        .map(|error| {
            let mut loc = vec![json!("body")];
            for segment in error.instance_path().segments() {
                loc.push(match segment {
                    jsonschema::paths::LocationSegment::Property(p) => json!(p.as_ref()),
                    jsonschema::paths::LocationSegment::Index(i) => json!(i),
                });
            }
            if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind() {
                loc.push(property.clone());
            }
            FieldError { loc, msg: error.to_string(), kind: error.kind().keyword().to_owned() }
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}

/// The `Idempotency-Key` header, if any (400 when unusable).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        ))),
    }
}

/// The `If-Match` header (428 when missing or empty).
fn if_match(headers: &HeaderMap) -> Result<IfMatch, ApiError> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(IfMatch::parse)
        .ok_or(ApiError::PreconditionRequired)
}

/// Parses `include_deleted` on a GET, PATCH or PUT of one item.
fn include_deleted(query: Option<&str>) -> Result<bool, ApiError> {
    let mut include = false;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "include_deleted" {
            include = match &*value {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "include_deleted must be true or false, got '{other}'"
                    )));
                }
            };
        }
    }
    Ok(include)
}

/// `GET /{resource}/`: a filtered, sorted page.
pub(crate) async fn list(
    State(app): State<AppState>,
    principal: Principal,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    check_resource(&resource)?;
    principal.require_either(&format!("{resource}:list"), &format!("{resource}:read"))?;
    let query = ListQuery::parse(query.as_deref().unwrap_or("")).map_err(ApiError::BadRequest)?;
    let (items, total) = lock(&app.store).list(&principal.tenant_id, &resource, &query);
    Ok(page_response(items, total, query.page, query.per_page))
}

/// `GET /{resource}/{id}`.
pub(crate) async fn get_item(
    State(app): State<AppState>,
    principal: Principal,
    Path((resource, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    check_resource(&resource)?;
    principal.require(&format!("{resource}:read"))?;
    let include_deleted = include_deleted(query.as_deref())?;
    let store = lock(&app.store);
    let item = store
        .get(&principal.tenant_id, &resource, &id, include_deleted)
        .ok_or(ApiError::NotFound)?
        .clone();
    drop(store);
    Ok(StoredResponse::item(StatusCode::OK, item).to_response(false))
}

/// `POST /{resource}/`: 201 with the new item, its ETag and Location; idempotent with a key.
pub(crate) async fn create(
    State(app): State<AppState>,
    principal: Principal,
    Path(resource): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_resource(&resource)?;
    principal.require(&format!("{resource}:create"))?;
    let body = parse_body(&body)?;
    let key = idempotency_key(&headers)?;
    let fingerprint = Fingerprint {
        method: "POST".into(),
        target: resource.clone(),
        if_match: None,
        body: Some(Value::Object(body.clone())),
    };
    let mut store = lock(&app.store);
    if let Some(replay) = replay(&app, &mut store, &principal, key.as_deref(), &fingerprint)? {
        return Ok(replay);
    }
    check_tenant_field(&body, &principal.tenant_id)?;
    let fields = user_fields(&body);
    validate(&app, &resource, &fields)?;
    tracing::debug!(client = %principal.client_id, %resource, "sandbox create");
    let item = store.create(&principal.tenant_id, &resource, fields);
    let location = format!("/{resource}/{}", item.get("_id").and_then(Value::as_str).unwrap_or(""));
    let mut response = StoredResponse::item(StatusCode::CREATED, item);
    response.location = Some(location);
    if let Some(key) = key {
        store.idempotency_record(&principal.tenant_id, &key, fingerprint, response.clone());
    }
    drop(store);
    Ok(response.to_response(false))
}

/// Answers from the idempotency record when the key was seen: the stored response for the same
/// request, 422 for a different one; `None` when the key is new or absent.
fn replay(
    app: &Inner,
    store: &mut super::store::Store,
    principal: &Principal,
    key: Option<&str>,
    fingerprint: &Fingerprint,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    match store.idempotency_lookup(&principal.tenant_id, key, fingerprint) {
        Replay::New => Ok(None),
        Replay::Same(stored) => {
            app.stats.idempotent_replays.fetch_add(1, Ordering::Relaxed);
            Ok(Some(stored.to_response(true)))
        }
        Replay::Different => Err(ApiError::IdempotencyKeyReused(key.to_owned())),
    }
}

/// One write to an existing item, as received.
struct ItemWrite {
    /// The resource name.
    resource: String,
    /// The item's id.
    id: String,
    /// `PATCH`, `PUT` or `DELETE`.
    method: &'static str,
    /// The raw query: PATCH and PUT reach a soft-deleted item with `include_deleted=true`.
    query: Option<String>,
    /// The request body (none for DELETE).
    body: Option<Bytes>,
}

/// The shared path of PATCH, PUT and DELETE.
async fn write_item(
    app: AppState,
    principal: Principal,
    headers: HeaderMap,
    write: ItemWrite,
) -> Result<Response, ApiError> {
    let ItemWrite { resource, id, method, query, body } = write;
    check_resource(&resource)?;
    let capability = if method == "DELETE" { "delete" } else { "update" };
    principal.require(&format!("{resource}:{capability}"))?;
    // DELETE never reaches a soft-deleted item: deleting it again has nothing to do.
    let include_deleted = method != "DELETE" && include_deleted(query.as_deref())?;
    let condition = if_match(&headers)?;
    let key = idempotency_key(&headers)?;
    let body = body.as_deref().map(parse_body).transpose()?;
    if let Some(body) = &body {
        check_tenant_field(body, &principal.tenant_id)?;
    }
    let fingerprint = Fingerprint {
        method: method.into(),
        // Reaching soft-deleted items makes it another request.
        target: if include_deleted {
            format!("{resource}/{id}?include_deleted=true")
        } else {
            format!("{resource}/{id}")
        },
        if_match: headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned),
        body: body.clone().map(Value::Object),
    };
    if !is_object_id(&id) {
        return Err(ApiError::NotFound);
    }
    let mut store = lock(&app.store);
    if let Some(replay) = replay(&app, &mut store, &principal, key.as_deref(), &fingerprint)? {
        return Ok(replay);
    }
    tracing::debug!(client = %principal.client_id, %resource, %id, method, "sandbox write");
    let change = match (method, body) {
        ("PATCH", Some(body)) => Change::Merge(body),
        ("PUT", Some(body)) => Change::Replace(body),
        _ => Change::Delete,
    };
    let is_delete = matches!(change, Change::Delete);
    let outcome = store.update(
        &principal.tenant_id,
        &resource,
        &id,
        include_deleted,
        &condition,
        change,
        |fields| validate(&app, &resource, fields),
    );
    let item = match outcome {
        Ok(item) => item,
        Err(WriteRefused::NotFound) => return Err(ApiError::NotFound),
        Err(WriteRefused::Invalid(e)) => return Err(e),
        Err(WriteRefused::Conflict(current)) => {
            let etag = super::store::etag_of(&current).unwrap_or_default();
            return Err(ApiError::PreconditionFailed { current: Value::Object(current), etag });
        }
    };
    let response = if is_delete {
        StoredResponse { status: StatusCode::NO_CONTENT, body: None, etag: None, location: None }
    } else {
        StoredResponse::item(StatusCode::OK, item)
    };
    if let Some(key) = key {
        store.idempotency_record(&principal.tenant_id, &key, fingerprint, response.clone());
    }
    drop(store);
    Ok(response.to_response(false))
}

/// `PATCH /{resource}/{id}`: shallow merge, needs `If-Match`; `is_deleted` restores or
/// soft-deletes, and `include_deleted=true` reaches a soft-deleted item.
pub(crate) async fn patch_item(
    State(app): State<AppState>,
    principal: Principal,
    Path((resource, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let write = ItemWrite { resource, id, method: "PATCH", query, body: Some(body) };
    write_item(app, principal, headers, write).await
}

/// `PUT /{resource}/{id}`: full replace of the non-system fields, needs `If-Match`; like PATCH
/// for `is_deleted` and `include_deleted=true`.
pub(crate) async fn put_item(
    State(app): State<AppState>,
    principal: Principal,
    Path((resource, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let write = ItemWrite { resource, id, method: "PUT", query, body: Some(body) };
    write_item(app, principal, headers, write).await
}

/// `DELETE /{resource}/{id}`: soft delete, 204, needs `If-Match`; a soft-deleted item is 404.
pub(crate) async fn delete_item(
    State(app): State<AppState>,
    principal: Principal,
    Path((resource, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let write = ItemWrite { resource, id, method: "DELETE", query: None, body: None };
    write_item(app, principal, headers, write).await
}

/// Any other path: 404 `{"detail": "Not Found"}`.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}
