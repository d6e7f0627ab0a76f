//! `GET /openapi.json`: the OpenAPI 3.1 document of the REST layer, built from the same
//! descriptors the router is built from ([`Resource::ALL`], the body schemas the handlers check
//! bodies against, the template schema of the engine's loader), so the document cannot drift
//! from what the server does. Served without a token.
//!
//! Why not utoipa's derive macros: the document routes are generated per resource from one
//! descriptor (one handler set, four resources), which `#[utoipa::path]` cannot describe, and
//! utoipa's schema model does not keep every JSON Schema 2020-12 keyword our schemas use. The
//! schemas here are the ones requests are validated with, verbatim.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::AppState;
use super::documents::Resource;

/// The route.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}

/// The whole document.
pub fn document() -> Value {
    let mut schemas = Map::new();
    let mut paths = Map::new();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["detail"], "properties": {"detail": {}}}),
    );
    schemas.insert(
        "ValidationError".into(),
        json!({"type": "object", "required": ["detail"], "properties": {"detail": {"type": "array", "items": {
            "type": "object",
            "required": ["loc", "msg", "type"],
            "properties": {
                "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                "msg": {"type": "string"},
                "type": {"type": "string"},
            },
        }}}}),
    );
    schemas.insert("Item".into(), item_schema());
    for resource in Resource::ALL {
        let name = resource_name(resource);
        let body = lift_defs(resource.schema(), &name, &mut schemas);
        schemas.insert(format!("{name}Body"), body.clone());
        schemas.insert(format!("{name}Patch"), patch_schema(&body));
        document_resource(resource, &name, &mut paths);
    }
    document_engine_routes(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "intake REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Import templates, file sources, import runs, rejected records, alert channels and routing rules, with the platform's conventions (filters, pagination, ETags, errors). Every route but /healthz, /readyz and /openapi.json needs a Bearer access token; the tenant is the token's.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "parameters": parameters(),
            "responses": responses(),
        },
    })
}

/// `Templates`, `Sources`, `AlertChannels`, `AlertRoutingRules`.
fn resource_name(resource: Resource) -> String {
    match resource {
        Resource::Templates => "Template",
        Resource::Sources => "Source",
        Resource::AlertChannels => "AlertChannel",
        Resource::AlertRoutingRules => "AlertRoutingRule",
    }
    .to_owned()
}

/// An item as the server answers it: the base fields and the resource's own.
fn item_schema() -> Value {
    json!({
        "type": "object",
        "required": ["_id", "tenant_id", "revision_id", "created_at", "updated_at"],
        "properties": {
            "_id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
            "tenant_id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
            "revision_id": {"type": "string"},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
            "is_deleted": {"type": "boolean"},
            "deleted_at": {"type": ["string", "null"]},
        },
    })
}

/// A schema's `$defs` moved to `components/schemas` as `{prefix}.{name}`, its references
/// rewritten; `$schema` and `$id` dropped (the document's dialect is 2020-12 already).
fn lift_defs(mut schema: Value, prefix: &str, schemas: &mut Map<String, Value>) -> Value {
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("$id");
        if let Some(Value::Object(defs)) = map.remove("$defs") {
            for (name, def) in defs {
                let mut def = def;
                rewrite_refs(&mut def, prefix);
                schemas.insert(format!("{prefix}.{name}"), def);
            }
        }
    }
    rewrite_refs(&mut schema, prefix);
    schema
}

fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && let Some(name) = reference.strip_prefix("#/$defs/")
            {
                *reference = format!("#/components/schemas/{prefix}.{name}");
            }
            map.values_mut().for_each(|v| rewrite_refs(v, prefix));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

/// A PATCH body: the same fields, none required.
fn patch_schema(body: &Value) -> Value {
    let mut patch = body.clone();
    if let Value::Object(map) = &mut patch {
        map.remove("required");
    }
    patch
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn response_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn parameter_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

/// The shared parameters.
fn parameters() -> Value {
    json!({
        "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
        "page": {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        "per_page": {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
        "sort": {"name": "sort", "in": "query", "description": "Comma-separated fields, `-field` descending.", "schema": {"type": "string"}},
        "fields": {"name": "fields", "in": "query", "description": "Comma-separated fields to return (`_id` always).", "schema": {"type": "string"}},
        "where": {"name": "where", "in": "query", "description": "A JSON filter: `$eq $ne $gt $gte $lt $lte $in $nin $exists $regex $and $or $not`; `$where $expr $function $accumulator` are refused (400).", "schema": {"type": "string"}},
        "include_deleted": {"name": "include_deleted", "in": "query", "schema": {"type": "boolean"}},
        "If-Match": {"name": "If-Match", "in": "header", "required": false, "description": "The item's ETag (or `*`). Needed: without it the answer is 428.", "schema": {"type": "string"}},
    })
}

/// The shared error answers.
fn responses() -> Value {
    let error = |description: &str| json!({"description": description, "content": json_content(schema_ref("Error"))});
    json!({
        "BadRequest": error("Malformed query, filter or body"),
        "BadMultipart": {"description": "Not a readable multipart/form-data body"},
        "Unauthorized": error("No valid access token"),
        "Forbidden": error("A capability is missing, or the item may not be changed by the caller"),
        "NotFound": error("No such item in the caller's tenant"),
        "Conflict": error("The item's state or its dependents do not allow it"),
        "PreconditionFailed": error("If-Match does not match the item's current ETag (the body has the current item)"),
        "PayloadTooLarge": error("The body or the file is larger than the server accepts"),
        "PreconditionRequired": error("If-Match is missing"),
        "Unprocessable": {"description": "The body is not valid; every problem with its place", "content": json_content(schema_ref("ValidationError"))},
        "Unavailable": error("The state store, the job queue or the platform is not available or not configured"),
    })
}

/// Responses from `(status, ref name)` pairs plus the given success answers.
fn answers(success: Value, errors: &[(&str, &str)]) -> Value {
    let mut out = match success {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    out.insert("401".into(), response_ref("Unauthorized"));
    out.insert("403".into(), response_ref("Forbidden"));
    out.insert("503".into(), response_ref("Unavailable"));
    for (status, name) in errors {
        out.insert((*status).into(), response_ref(name));
    }
    Value::Object(out)
}

fn item_answer(description: &str, schema: Value, etag: bool) -> Value {
    let mut answer = json!({"description": description, "content": json_content(schema)});
    if etag {
        answer["headers"] = json!({"ETag": {"schema": {"type": "string"}, "required": true}});
    }
    answer
}

fn page_schema(item: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items", "total", "page", "per_page"],
        "properties": {
            "items": {"type": "array", "items": item},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
        },
    })
}

fn list_operation(summary: &str, capability: &str) -> Value {
    json!({
        "summary": summary,
        "description": format!("Needs `{capability}`. Any field filters as `field=value` or `field__op=value` (`gt gte lt lte ne in nin regex exists`)."),
        "parameters": (["page", "per_page", "sort", "fields", "where", "include_deleted"].map(parameter_ref)),
        "responses": answers(json!({"200": {
            "description": "One page",
            "headers": {
                "X-Total-Count": {"schema": {"type": "integer"}, "required": true},
                "X-Page": {"schema": {"type": "integer"}, "required": true},
                "X-Per-Page": {"schema": {"type": "integer"}, "required": true},
                "X-Total-Pages": {"schema": {"type": "integer"}, "required": true},
            },
            // `fields=` projects items down to `_id` and the fields asked for.
            "content": json_content(page_schema(json!({"type": "object", "required": ["_id"], "properties": {"_id": {"type": "string"}}}))),
        }}), &[("400", "BadRequest")]),
    })
}

/// The five routes of a document resource.
fn document_resource(resource: Resource, name: &str, paths: &mut Map<String, Value>) {
    let path = resource.path();
    let item = schema_ref("Item");
    paths.insert(format!("{path}/"), json!({
        "get": list_operation(&format!("List {}", &path[1..]), &resource.capability("list")),
        "post": {
            "summary": format!("Create a {}", &path[1..]),
            "description": format!("Needs `{}`. Base fields are ignored; `tenant_id` must be the caller's.", resource.capability("create")),
            "requestBody": {"required": true, "content": json_content(schema_ref(&format!("{name}Body")))},
            "responses": answers(json!({"201": item_answer("Created", item.clone(), true)}), &[("400", "BadRequest"), ("413", "PayloadTooLarge"), ("422", "Unprocessable")]),
        },
    }));
    let write_errors = [
        ("400", "BadRequest"),
        ("404", "NotFound"),
        ("412", "PreconditionFailed"),
        ("413", "PayloadTooLarge"),
        ("422", "Unprocessable"),
        ("428", "PreconditionRequired"),
    ];
    paths.insert(format!("{path}/{{id}}"), json!({
        "parameters": [parameter_ref("id")],
        "get": {
            "summary": format!("Read a {}", &path[1..]),
            "responses": answers(json!({"200": item_answer("The item", item.clone(), true)}), &[("404", "NotFound")]),
        },
        "patch": {
            "summary": "Partial update (shallow merge)",
            "parameters": [parameter_ref("If-Match")],
            "requestBody": {"required": true, "content": json_content(schema_ref(&format!("{name}Patch")))},
            "responses": answers(json!({"200": item_answer("Updated", item.clone(), true)}), &write_errors),
        },
        "put": {
            "summary": "Full replace",
            "parameters": [parameter_ref("If-Match")],
            "requestBody": {"required": true, "content": json_content(schema_ref(&format!("{name}Body")))},
            "responses": answers(json!({"200": item_answer("Replaced", item.clone(), true)}), &write_errors),
        },
        "delete": {
            "summary": "Soft delete",
            "parameters": [parameter_ref("If-Match")],
            "responses": answers(json!({"204": {"description": "Deleted"}}), &[("404", "NotFound"), ("409", "Conflict"), ("412", "PreconditionFailed"), ("428", "PreconditionRequired")]),
        },
    }));
}

/// Runs, uploads, previews, rejected records, the template schema and health.
fn document_engine_routes(paths: &mut Map<String, Value>) {
    let item = schema_ref("Item");
    let upload = json!({"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["template_id", "file"],
        "properties": {"template_id": {"type": "string"}, "file": {"type": "string", "contentMediaType": "application/octet-stream"}},
    }}});
    let preview_form = |extra: Value| {
        let mut properties = json!({"file": {"type": "string", "contentMediaType": "application/octet-stream"}, "rows": {"type": "string"}});
        if let (Value::Object(p), Value::Object(e)) = (&mut properties, extra) {
            p.extend(e);
        }
        json!({"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": properties}}})
    };
    let preview_answer = json!({"200": {"description": "The previewed rows with their errors", "content": json_content(json!({
        "type": "object",
        "required": ["file", "columns", "rows_previewed", "valid", "rejected", "truncated", "rows"],
        "properties": {"rows": {"type": "array", "items": {"type": "object", "required": ["row_number", "status", "errors"]}}},
    }))}});
    let upload_errors =
        [("400", "BadMultipart"), ("413", "PayloadTooLarge"), ("422", "Unprocessable")];
    let entries = json!({
        "/imports/runs/": {
            "get": list_operation("List import runs", "imports/runs:list"),
            "post": {
                "summary": "Upload a file to import with a template",
                "description": "Needs `imports/runs:create`. Imported inline (200, the finished run) when the file is within the template's offload_policy, else queued (202, the queued run).",
                "requestBody": {"required": true, "content": upload},
                "responses": answers(json!({
                    "200": item_answer("Imported inline: the finished run", item.clone(), true),
                    "202": item_answer("Queued: the run", item.clone(), true),
                }), &upload_errors),
            },
        },
        "/imports/runs/{id}": {
            "parameters": [parameter_ref("id")],
            "get": {"summary": "Read an import run", "responses": answers(json!({"200": item_answer("The run", item.clone(), true)}), &[("404", "NotFound")])},
        },
        "/alerts/": {
            "get": list_operation("List the alerts raised and what became of them", "alerts:list"),
        },
        "/alerts/{id}": {
            "parameters": [parameter_ref("id")],
            "get": {"summary": "Read an alert", "responses": answers(json!({"200": item_answer("The alert", item.clone(), true)}), &[("404", "NotFound")])},
        },
        "/imports/templates/schema": {
            "get": {"summary": "The template JSON Schema", "responses": answers(json!({"200": {"description": "JSON Schema (draft 2020-12)", "content": json_content(json!({"type": "object"}))}}), &[])},
        },
        "/imports/templates/{id}/preview": {
            "parameters": [parameter_ref("id")],
            "post": {
                "summary": "Preview a stored template on a sample file (writes nothing)",
                "requestBody": {"required": true, "content": preview_form(json!({}))},
                "responses": answers(preview_answer.clone(), &[("400", "BadMultipart"), ("404", "NotFound"), ("413", "PayloadTooLarge"), ("422", "Unprocessable")]),
            },
        },
        "/imports/templates/preview": {
            "post": {
                "summary": "Preview an unsaved template (the `template` part) on a sample file",
                "requestBody": {"required": true, "content": preview_form(json!({"template": {"type": "string"}}))},
                "responses": answers(preview_answer, &upload_errors),
            },
        },
        "/rejected-records/": {
            "get": list_operation("List rejected records", "rejected-records:list"),
        },
        "/rejected-records/retry": {
            "post": {
                "summary": "Queue a retry of every corrected record matching the filter",
                "parameters": [parameter_ref("where")],
                "responses": answers(json!({
                    "200": {"description": "Nothing matched", "content": json_content(json!({"type": "object"}))},
                    "202": {"description": "Queued", "content": json_content(json!({"type": "object", "required": ["queued", "jobs", "record_ids"]}))},
                }), &[("400", "BadRequest")]),
            },
        },
        "/rejected-records/{id}": {
            "parameters": [parameter_ref("id")],
            "get": {"summary": "Read a rejected record", "responses": answers(json!({"200": item_answer("The record", item.clone(), true)}), &[("404", "NotFound")])},
            "patch": {
                "summary": "Correct the record (only corrected_data is writable)",
                "parameters": [parameter_ref("If-Match")],
                "requestBody": {"required": true, "content": json_content(json!({"type": "object", "required": ["corrected_data"], "additionalProperties": false, "properties": {"corrected_data": {"type": "object"}}}))},
                "responses": answers(json!({"200": item_answer("Corrected", item.clone(), true)}), &[("400", "BadRequest"), ("404", "NotFound"), ("409", "Conflict"), ("412", "PreconditionFailed"), ("422", "Unprocessable"), ("428", "PreconditionRequired")]),
            },
            "delete": {
                "summary": "Discard the record",
                "parameters": [parameter_ref("If-Match")],
                "responses": answers(json!({"204": {"description": "Discarded"}}), &[("404", "NotFound"), ("409", "Conflict"), ("412", "PreconditionFailed"), ("428", "PreconditionRequired")]),
            },
        },
        "/rejected-records/{id}/history": {
            "parameters": [parameter_ref("id")],
            "get": {"summary": "Every status change, oldest first", "responses": answers(json!({"200": {"description": "The history", "content": json_content(json!({"type": "object", "required": ["items", "total"]}))}}), &[("404", "NotFound")])},
        },
        "/rejected-records/{id}/retry": {
            "parameters": [parameter_ref("id")],
            "post": {"summary": "Retry a corrected record", "responses": answers(json!({
                "200": {"description": "Retried inline: the outcome and the record", "content": json_content(json!({"type": "object"}))},
                "202": {"description": "Queued", "content": json_content(json!({"type": "object"}))},
            }), &[("404", "NotFound"), ("409", "Conflict"), ("412", "PreconditionFailed")])},
        },
        "/rejected-records/{id}/discard": {
            "parameters": [parameter_ref("id")],
            "post": {"summary": "Discard the record, with an optional note", "responses": answers(json!({"200": item_answer("Discarded", item, true)}), &[("400", "BadRequest"), ("404", "NotFound"), ("409", "Conflict"), ("412", "PreconditionFailed"), ("422", "Unprocessable")])},
        },
        "/healthz": {"get": {"summary": "Alive", "security": [], "responses": {"200": {"description": "Alive", "content": json_content(json!({"type": "object"}))}}}},
        "/readyz": {"get": {"summary": "The state store and the job queue answer", "security": [], "responses": {
            "200": {"description": "Ready", "content": json_content(json!({"type": "object"}))},
            "503": {"description": "Not ready, naming what does not answer", "content": json_content(json!({"type": "object"}))},
        }}},
        "/metrics": {"get": {"summary": "Prometheus metrics (runs and rows by outcome, queue depth, poll errors, write latency)", "security": [], "responses": {
            "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "503": {"description": "The state store does not answer", "content": json_content(schema_ref("Error"))},
        }}},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1", "content": json_content(json!({"type": "object"}))}}}},
    });
    if let Value::Object(entries) = entries {
        paths.extend(entries);
    }
}
