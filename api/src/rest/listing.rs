//! Lists of the state store's collections with the platform's list conventions.
//!
//! The query is parsed once by the shared [`ListQuery`] (the sandbox's parser and semantics:
//! `where`, `field__op=`, `sort`, `fields`, `page`, `per_page` ≤ 100, `include_deleted`). The
//! simple equality conditions on indexed columns are handed to the store as a pre-filter; the
//! whole filter, the sort and the projection are then evaluated on the candidates exactly as the
//! sandbox evaluates them, so both surfaces answer a query the same way.
//!
//! Memory: the candidates that survive the pre-filter are read into memory (in store pages of
//! [`StoreQuery::MAX_PER_PAGE`]) before sorting — fine for templates, sources, channels and
//! rules; a rejected-record list should be narrowed by `import_run_id`, `template_id` or
//! `status`, which are pushed down.

use axum::response::Response;
use intake_engine::store::{Collection, ListQuery as StoreQuery};
use serde_json::{Map, Value};

use super::AppState;
use super::errors::store_error;
use crate::auth::Principal;
use crate::conventions::{ApiError, Cond, Filter, ListQuery, Operand, page_response};

/// `GET /{collection}`: one page of the caller's tenant's items.
pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
    collection: Collection,
    raw_query: Option<&str>,
) -> Result<Response, ApiError> {
    let query = ListQuery::parse(raw_query.unwrap_or("")).map_err(ApiError::BadRequest)?;
    let candidates = candidates(state, &principal.tenant_id, collection, &query).await?;
    let (items, total) =
        query.select(candidates.iter().enumerate().map(|(seq, doc)| (doc, seq as u64)).collect());
    Ok(page_response(items, total, query.page, query.per_page))
}

/// Every item of the tenant's collection that the pushed-down conditions let through, in
/// creation order.
pub(crate) async fn candidates(
    state: &AppState,
    tenant: &str,
    collection: Collection,
    query: &ListQuery,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let mut store_query = StoreQuery::new();
    for (field, value) in pushed_down(collection, &query.filter) {
        store_query = store_query.eq(field, value);
    }
    if query.include_deleted {
        store_query = store_query.include_deleted();
    }
    read_all(state, tenant, collection, store_query).await
}

/// Every (not deleted) item of the tenant's collection, in creation order.
pub(crate) async fn all(
    state: &AppState,
    tenant: &str,
    collection: Collection,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    read_all(state, tenant, collection, StoreQuery::new()).await
}

/// Every item `store_query` selects, read in store pages, in creation order.
async fn read_all(
    state: &AppState,
    tenant: &str,
    collection: Collection,
    store_query: StoreQuery,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let documents =
        state.store.list_all(collection, tenant, store_query).await.map_err(store_error)?;
    Ok(documents
        .iter()
        .filter_map(|d| match d.to_json() {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .collect())
}

/// The top-level equality conditions on indexed columns that every match must satisfy, typed
/// as the column is (a pre-filter: the full filter is evaluated afterwards).
fn pushed_down(collection: Collection, filter: &Filter) -> Vec<(&str, Value)> {
    let mut out = Vec::new();
    collect_equalities(collection, filter, &mut out);
    out
}

fn collect_equalities<'a>(
    collection: Collection,
    filter: &'a Filter,
    out: &mut Vec<(&'a str, Value)>,
) {
    match filter {
        Filter::And(filters) => {
            for f in filters {
                collect_equalities(collection, f, out);
            }
        }
        Filter::Field { path, cond: Cond::Eq(operand) } if path.len() == 1 => {
            let field = path[0].as_str();
            if collection.is_queryable(field)
                && let Some(value) = column_value(field, operand)
            {
                out.push((field, value));
            }
        }
        _ => {}
    }
}

/// The operand as the column stores it, when the store's comparison is exactly the filter's.
fn column_value(field: &str, operand: &Operand) -> Option<Value> {
    match (field, operand) {
        // Timestamps are compared by instant, not text; left to the full filter.
        ("created_at" | "updated_at", _) => None,
        ("priority" | "row_number", Operand::Json(v)) if v.is_i64() => Some(v.clone()),
        ("priority" | "row_number", Operand::Text(t)) => t.parse::<i64>().ok().map(Value::from),
        ("is_active", Operand::Json(Value::Bool(b))) => Some(Value::Bool(*b)),
        ("priority" | "row_number" | "is_active", _) => None,
        // `field=null` also matches a missing or null field: left to the full filter.
        (_, Operand::Text(s)) if s == "null" => None,
        (_, Operand::Json(Value::String(s))) | (_, Operand::Text(s)) => {
            Some(Value::String(s.clone()))
        }
        _ => None,
    }
}
