//! Generic resources on the sandbox: create, read, PATCH, PUT and soft delete with system
//! fields, ETags and `If-Match` (428 without, 412 on mismatch).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::*;
use serde_json::{Value, json};

fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn patch(
    served: &Served,
    token: &str,
    path: &str,
    if_match: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = served.http.patch(served.url(path)).bearer_auth(token).json(body);
    if let Some(etag) = if_match {
        request = request.header("If-Match", etag);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn create_answers_201_with_system_fields_etag_and_location() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let response = served.post(&token, "/players/", &json!({"name": "Ada", "rating": 1500})).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let item = json_with_status(response, 201).await;
    let id = item["_id"].as_str().unwrap();
    assert!(is_object_id(id), "{id}");
    assert_eq!(location, format!("/players/{id}"));
    assert_eq!(etag, format!("\"{}\"", item["revision_id"].as_str().unwrap()));
    assert_eq!(item["name"], "Ada");
    assert_eq!(item["tenant_id"], TENANT);
    assert_eq!(item["is_deleted"], false);
    assert_eq!(item["deleted_at"], Value::Null);
    let created = item["created_at"].as_str().unwrap();
    assert!(chrono_like(created), "{created}");
    assert_eq!(item["created_at"], item["updated_at"]);

    // Both `/players` and `/players/` serve the collection.
    let response = served.post(&token, "/players", &json!({"name": "Bo"})).await;
    json_with_status(response, 201).await;
    assert_eq!(served.sandbox.items(TENANT, "players").len(), 2);
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn chrono_like(s: &str) -> bool {
    s.len() == 27 && s.ends_with('Z') && &s[10..11] == "T" && &s[19..20] == "."
}

#[tokio::test]
async fn get_answers_the_item_with_its_etag() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let item =
        json_with_status(served.post(&token, "/players/", &json!({"name": "Ada"})).await, 201)
            .await;
    let id = item["_id"].as_str().unwrap();
    let response = served.get(&token, &format!("/players/{id}")).await;
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", item["revision_id"].as_str().unwrap())
    );
    assert_eq!(json_with_status(response, 200).await, item);
    assert_eq!(served.get(&token, "/players/ffffffffffffffffffffffff").await.status(), 404);
    assert_eq!(served.get(&token, "/players/not-an-id").await.status(), 404);
    assert_eq!(served.get(&token, "/payments/".to_owned().as_str()).await.status(), 200);
    assert_eq!(served.get(&token, &format!("/payments/{id}")).await.status(), 404);
}

#[tokio::test]
async fn patch_needs_if_match_428_refuses_a_stale_etag_412_and_merges() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let response =
        served.post(&token, "/players/", &json!({"name": "Ada", "club": "A", "rating": 1})).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let item = json_with_status(response, 201).await;
    let path = format!("/players/{}", item["_id"].as_str().unwrap());

    let missing =
        json_with_status(patch(&served, &token, &path, None, &json!({"club": "B"})).await, 428)
            .await;
    assert!(missing["detail"].as_str().unwrap().contains("If-Match"));

    let response =
        patch(&served, &token, &path, Some(&etag), &json!({"club": "B", "rating": null})).await;
    let new_etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let patched = json_with_status(response, 200).await;
    assert_ne!(new_etag, etag);
    assert_eq!(new_etag, format!("\"{}\"", patched["revision_id"].as_str().unwrap()));
    assert_eq!(patched["name"], "Ada");
    assert_eq!(patched["club"], "B");
    assert_eq!(patched["rating"], Value::Null);
    assert_eq!(patched["created_at"], item["created_at"]);
    assert_ne!(patched["updated_at"], item["updated_at"]);

    // The old ETag is stale now: 412 with the current item and ETag, nothing changed.
    let response = patch(&served, &token, &path, Some(&etag), &json!({"club": "C"})).await;
    assert_eq!(response.headers()["etag"].to_str().unwrap(), new_etag);
    let conflict = json_with_status(response, 412).await;
    assert_eq!(conflict["current"], patched);
    assert_eq!(served.sandbox.items(TENANT, "players")[0]["club"], "B");

    // Weak tags never match; a list of tags and `*` do.
    let weak = format!("W/{new_etag}");
    assert_eq!(
        patch(&served, &token, &path, Some(&weak), &json!({"club": "D"})).await.status(),
        412
    );
    let list = format!("\"nope\", {new_etag}");
    let response = patch(&served, &token, &path, Some(&list), &json!({"club": "D"})).await;
    json_with_status(response, 200).await;
    assert_eq!(patch(&served, &token, &path, Some("*"), &json!({"club": "E"})).await.status(), 200);
}

#[tokio::test]
async fn put_replaces_the_user_fields_and_keeps_the_system_fields() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let response = served.post(&token, "/players/", &json!({"name": "Ada", "club": "A"})).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let item = json_with_status(response, 201).await;
    let path = format!("/players/{}", item["_id"].as_str().unwrap());
    let no_etag = served
        .http
        .put(served.url(&path))
        .bearer_auth(&token)
        .json(&json!({"name": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_etag.status(), 428);
    let response = served
        .http
        .put(served.url(&path))
        .bearer_auth(&token)
        .header("If-Match", &etag)
        .json(&json!({"name": "Ada L.", "_id": "000000000000000000000000", "created_at": "1999-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    let replaced = json_with_status(response, 200).await;
    assert_eq!(replaced["name"], "Ada L.");
    assert!(replaced.get("club").is_none());
    assert_eq!(replaced["_id"], item["_id"]);
    assert_eq!(replaced["created_at"], item["created_at"]);
    assert_eq!(replaced["tenant_id"], TENANT);
    assert_ne!(replaced["revision_id"], item["revision_id"]);
}

#[tokio::test]
async fn delete_is_a_soft_delete_answered_204() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let response = served.post(&token, "/players/", &json!({"name": "Ada"})).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let item = json_with_status(response, 201).await;
    let path = format!("/players/{}", item["_id"].as_str().unwrap());
    let without = served.http.delete(served.url(&path)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(without.status(), 428);
    let stale = served
        .http
        .delete(served.url(&path))
        .bearer_auth(&token)
        .header("If-Match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let deleted = served
        .http
        .delete(served.url(&path))
        .bearer_auth(&token)
        .header("If-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(deleted.text().await.unwrap(), "");

    assert_eq!(served.get(&token, &path).await.status(), 404);
    let kept =
        json_with_status(served.get(&token, &format!("{path}?include_deleted=true")).await, 200)
            .await;
    assert_eq!(kept["is_deleted"], true);
    assert!(kept["deleted_at"].as_str().is_some());
    let list = json_with_status(served.get(&token, "/players/").await, 200).await;
    assert_eq!(list["total"], 0);
    let list =
        json_with_status(served.get(&token, "/players/?include_deleted=true").await, 200).await;
    assert_eq!(list["total"], 1);
    assert!(served.sandbox.items(TENANT, "players").is_empty());
    assert_eq!(served.sandbox.all_items(TENANT, "players").len(), 1);
    // Deleting or patching it again: 404.
    let again = served
        .http
        .delete(served.url(&path))
        .bearer_auth(&token)
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn list_items_carry_revision_id_so_a_patch_needs_no_get() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    served.post(&token, "/players/", &json!({"name": "Ada"})).await;
    let list = json_with_status(served.get(&token, "/players/").await, 200).await;
    let item = &list["items"][0];
    let etag = format!("\"{}\"", item["revision_id"].as_str().unwrap());
    let path = format!("/players/{}", item["_id"].as_str().unwrap());
    let before = served.sandbox.request_count();
    let response = patch(&served, &token, &path, Some(&etag), &json!({"name": "Ada L."})).await;
    json_with_status(response, 200).await;
    assert_eq!(served.sandbox.request_count(), before + 1);
}

#[tokio::test]
async fn client_supplied_system_fields_are_ignored_but_another_tenant_id_is_422() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let body = json!({"name": "Ada", "_id": "aaaaaaaaaaaaaaaaaaaaaaaa", "revision_id": "mine",
        "is_deleted": true, "created_at": "1999-01-01T00:00:00Z", "tenant_id": TENANT});
    let item = json_with_status(served.post(&token, "/players/", &body).await, 201).await;
    assert_ne!(item["_id"], "aaaaaaaaaaaaaaaaaaaaaaaa");
    assert_ne!(item["revision_id"], "mine");
    assert_eq!(item["is_deleted"], false);
    assert_ne!(item["created_at"], "1999-01-01T00:00:00Z");

    let response =
        served.post(&token, "/players/", &json!({"name": "Eve", "tenant_id": OTHER_TENANT})).await;
    let body = json_with_status(response, 422).await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "tenant_id"]));
    assert_eq!(body["detail"][0]["type"], "readonly");
    assert_eq!(served.sandbox.items(TENANT, "players").len(), 1);
    assert!(served.sandbox.items(OTHER_TENANT, "players").is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    for body in ["not json", "[1,2]", "\"x\"", ""] {
        let response = served
            .http
            .post(served.url("/players/"))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body:?}");
    }
    let unknown =
        served.http.get(served.url("/Players!/")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}
