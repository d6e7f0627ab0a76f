//! The REST layer's list conventions, import runs, health routes and security over a real
//! socket: filters (`where`, `__suffix`), sort, fields, pagination and its headers; tokens,
//! capabilities and tenants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::rest::{AUDIENCE, ISSUER, RestServer, template_body};
use common::{OTHER_TENANT, TENANT, json_with_status};
use intake_engine::store::{NewImportRun, RunCounts, RunOutcome, RunStatus};
use serde_json::{Value, json};

/// Creates templates named t00..t{n} with priority = index and `is_active` on even ones.
async fn seed_templates(server: &RestServer, token: &str, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut body = template_body(&format!("t{i:02}"));
        body["priority"] = json!(i);
        body["is_active"] = json!(i % 2 == 0);
        body["target_resource"] = json!(if i < 3 { "players" } else { "payments" });
        out.push(server.create(token, "/imports/templates/", &body).await.0);
    }
    out
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn list(server: &RestServer, token: &str, query: &str) -> Value {
    json_with_status(server.get(token, &format!("/imports/templates/?{query}")).await, 200).await
}

#[tokio::test]
async fn lists_filter_sort_project_and_paginate_like_the_platform() {
    let server = RestServer::start().await;
    let token = server.full_token(TENANT);
    seed_templates(&server, &token, 7).await;

    // Newest first by default; the envelope and the headers agree.
    let response = server.get(&token, "/imports/templates?per_page=3&page=2").await;
    let headers = response.headers().clone();
    let page = json_with_status(response, 200).await;
    assert_eq!(names(&page), ["t03", "t02", "t01"]);
    assert_eq!(
        (page["total"].as_u64(), page["page"].as_u64(), page["per_page"].as_u64()),
        (Some(7), Some(2), Some(3))
    );
    assert_eq!(headers["x-total-count"], "7");
    assert_eq!(headers["x-page"], "2");
    assert_eq!(headers["x-per-page"], "3");
    assert_eq!(headers["x-total-pages"], "3");
    // Past the end: an empty page, not an error.
    let page = list(&server, &token, "per_page=3&page=9").await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["total"], 7);

    // `__suffix` filters, equality (pushed down to the store) and sort.
    assert_eq!(
        names(&list(&server, &token, "priority__gte=5&sort=priority").await),
        ["t05", "t06"]
    );
    assert_eq!(
        names(&list(&server, &token, "target_resource=players&sort=name").await),
        ["t00", "t01", "t02"]
    );
    assert_eq!(
        names(&list(&server, &token, "is_active=false&sort=-priority").await),
        ["t05", "t03", "t01"]
    );
    assert_eq!(names(&list(&server, &token, "name__in=t01,t04&sort=name").await), ["t01", "t04"]);
    assert_eq!(
        names(&list(&server, &token, "name__regex=^t0[56]$&sort=name").await),
        ["t05", "t06"]
    );

    // `where` JSON with the documented operators.
    let filter = r#"{"$or":[{"priority":{"$lt":1}},{"$and":[{"target_resource":"payments"},{"is_active":true}]}]}"#;
    let query = format!("where={}&sort=priority", url_encode(filter));
    assert_eq!(names(&list(&server, &token, &query).await), ["t00", "t04", "t06"]);
    let filter = r#"{"priority":{"$nin":[0,1,2,3,4]},"description":{"$exists":false}}"#;
    let query = format!("where={}&sort=priority", url_encode(filter));
    assert_eq!(names(&list(&server, &token, &query).await), ["t05", "t06"]);

    // `fields` projects (the id always stays).
    let page = list(&server, &token, "fields=name,priority&sort=priority&per_page=1").await;
    let item = page["items"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["_id", "name", "priority"]);

    // Refused: blocked operators, unknown operators, bad JSON, per_page over 100, page 0.
    for query in [
        format!("where={}", url_encode(r#"{"$where":"this.priority > 1"}"#)),
        format!("where={}", url_encode(r#"{"priority":{"$expr":1}}"#)),
        "where=%7Bnot-json".to_owned(),
        "priority__between=1,2".to_owned(),
        "per_page=101".to_owned(),
        "page=0".to_owned(),
    ] {
        let response = server.get(&token, &format!("/imports/templates?{query}")).await;
        let body = json_with_status(response, 400).await;
        assert!(body["detail"].is_string(), "{query}: {body}");
    }
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn capabilities_are_checked_per_action_and_admin_grants_all() {
    let server = RestServer::start().await;
    let reader = server.token(TENANT, &["imports/templates:list", "imports/templates:read"]);
    let body = json_with_status(
        server.post(&reader, "/imports/templates/", &template_body("x")).await,
        403,
    )
    .await;
    assert_eq!(
        body,
        json!({"detail": {"error": "missing_capabilities", "missing": ["imports/templates:create"]}})
    );
    json_with_status(server.get(&reader, "/imports/templates/").await, 200).await;
    // Capabilities do not carry over between resources.
    let body = json_with_status(server.get(&reader, "/imports/sources/").await, 403).await;
    assert_eq!(body["detail"]["missing"], json!(["imports/sources:list"]));

    let admin = server.token(TENANT, &["admin.imports.manage"]);
    let (created, etag) =
        server.create(&admin, "/imports/templates/", &template_body("by admin")).await;
    let path = format!("/imports/templates/{}", created["_id"].as_str().unwrap());
    json_with_status(server.get(&reader, &path).await, 200).await;
    json_with_status(server.delete(&reader, &path, Some(&etag)).await, 403).await;
    assert_eq!(server.delete(&admin, &path, Some(&etag)).await.status(), 204);
}

#[tokio::test]
async fn only_valid_tokens_of_the_configured_issuer_get_in() {
    let server = RestServer::start().await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = |changes: Value| {
        let mut claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "client_id": "c", "sub": "c", "tenant_id": TENANT,
            "scope": "admin.imports.manage", "iat": now, "exp": now + 300,
        });
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let good = server.token_with_claims(&claims(json!({})));
    json_with_status(server.get(&good, "/imports/templates").await, 200).await;

    // No token, another scheme, garbage, and tokens failing each check: 401 invalid_token.
    let response = server.http.get(server.url("/imports/templates")).send().await.unwrap();
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    json_with_status(response, 401).await;
    let response = server
        .http
        .get(server.url("/imports/templates"))
        .header("authorization", "Basic dTpw")
        .send()
        .await
        .unwrap();
    json_with_status(response, 401).await;
    for token in [
        "not.a.token".to_owned(),
        server.token_with_claims(&claims(json!({"exp": now - 120}))),
        server.token_with_claims(&claims(json!({"nbf": now + 600}))),
        server.token_with_claims(&claims(json!({"aud": "someone-else"}))),
        server.token_with_claims(&claims(json!({"iss": "https://evil.test"}))),
        server.token_with_claims(&claims(json!({"tenant_id": "not-a-tenant"}))),
        server.token_with_claims(&claims(json!({"tenant_id": null}))),
        format!("{}x", &good[..good.len() - 1]),
    ] {
        let body = json_with_status(server.get(&token, "/imports/templates").await, 401).await;
        assert_eq!(body["detail"]["error"], "invalid_token", "{body}");
    }

    // X-Tenant-ID may only repeat the token's tenant.
    let response = server
        .http
        .get(server.url("/imports/templates"))
        .bearer_auth(&good)
        .header("x-tenant-id", OTHER_TENANT)
        .send()
        .await
        .unwrap();
    let body = json_with_status(response, 403).await;
    assert_eq!(body["detail"]["error"], "tenant_mismatch");
    let response = server
        .http
        .get(server.url("/imports/templates"))
        .bearer_auth(&good)
        .header("x-tenant-id", TENANT)
        .send()
        .await
        .unwrap();
    json_with_status(response, 200).await;
}

#[tokio::test]
async fn import_runs_are_listed_and_read_but_never_written_through_the_api() {
    let server = RestServer::start().await;
    let token = server.full_token(TENANT);
    let mut ids = Vec::new();
    for (i, status) in
        [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Succeeded].into_iter().enumerate()
    {
        let new =
            NewImportRun { source_name: Some(format!("file-{i}.csv")), ..NewImportRun::default() };
        let run = server.store.create_run(TENANT, &new).await.unwrap();
        server.store.start_run(TENANT, &run.meta.id).await.unwrap();
        let outcome = RunOutcome {
            status,
            counts: RunCounts { read: 10, ..RunCounts::default() },
            timings: json!({}),
            error: None,
        };
        server.store.finish_run(TENANT, &run.meta.id, &outcome, &[]).await.unwrap();
        ids.push(run.meta.id);
    }
    let page = json_with_status(
        server.get(&token, "/imports/runs?status=succeeded&sort=source_name").await,
        200,
    )
    .await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["file-0.csv", "file-2.csv"]);
    assert_eq!(page["items"][0]["counts"]["read"], 10);

    let response = server.get(&token, &format!("/imports/runs/{}", ids[1])).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let run = json_with_status(response, 200).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(etag, format!("\"{}\"", run["revision_id"].as_str().unwrap()));
    let response = server
        .patch(
            &token,
            &format!("/imports/runs/{}", ids[1]),
            &json!({"status": "succeeded"}),
            Some(&etag),
        )
        .await;
    assert_eq!(response.status(), 405);
    let response = server.delete(&token, &format!("/imports/runs/{}", ids[1]), Some(&etag)).await;
    assert_eq!(response.status(), 405);

    // Another tenant sees none of them.
    let other = server.full_token(OTHER_TENANT);
    let page = json_with_status(server.get(&other, "/imports/runs").await, 200).await;
    assert_eq!(page["total"], 0);
    json_with_status(server.get(&other, &format!("/imports/runs/{}", ids[0])).await, 404).await;
}

#[tokio::test]
async fn health_readiness_schema_and_unknown_paths() {
    let server = RestServer::start().await;
    let health =
        json_with_status(server.http.get(server.url("/healthz")).send().await.unwrap(), 200).await;
    assert_eq!(health["status"], "ok");
    let ready =
        json_with_status(server.http.get(server.url("/readyz")).send().await.unwrap(), 200).await;
    assert_eq!(ready["checks"]["state_store"], "ok");

    let token = server.full_token(TENANT);
    let schema = json_with_status(server.get(&token, "/imports/templates/schema").await, 200).await;
    assert!(schema["properties"]["file_type"].is_object(), "{schema}");
    assert!(schema["required"].as_array().unwrap().contains(&json!("target_resource")));

    let body = json_with_status(server.get(&token, "/no/such/thing").await, 404).await;
    assert_eq!(body, json!({"detail": "Not Found"}));
}

#[tokio::test]
async fn every_route_of_the_openapi_document_is_served_and_secured_as_documented() {
    let server = RestServer::start().await;
    let document =
        json_with_status(server.http.get(server.url("/openapi.json")).send().await.unwrap(), 200)
            .await;
    assert_eq!(document["openapi"], "3.1.0");
    // The document the server serves is the one the library builds.
    assert_eq!(document, intake_api::rest::openapi_document());
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    for (path, item) in paths {
        let url = path.replace("{id}", "aaaaaaaaaaaaaaaaaaaaaaaa");
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response =
                server.http.request(method.clone(), server.url(&url)).send().await.unwrap();
            let status = response.status().as_u16();
            let public = operation.get("security") == Some(&json!([]));
            if public {
                assert!(status == 200, "{method} {url}: {status}");
            } else {
                // Routed (not 404/405) and secured: no token is 401.
                assert_eq!(status, 401, "{method} {url}");
                assert!(operation["responses"]["401"].is_object(), "{method} {path} documents 401");
            }
        }
    }
}
