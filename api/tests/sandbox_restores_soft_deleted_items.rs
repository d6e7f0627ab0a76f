//! Soft deletes on the sandbox are reversible, as the spec lists `is_deleted` and `deleted_at` as
//! ordinary fields: GET, PATCH and PUT reach a soft-deleted item with `include_deleted=true`, and
//! `is_deleted: false` restores it (`is_deleted: true` soft-deletes), with the usual `If-Match`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::*;
use serde_json::{Value, json};

/// Sends `method` to `path` with `If-Match` (and an `Idempotency-Key` when given).
async fn write(
    served: &Served,
    token: &str,
    method: reqwest::Method,
    path: &str,
    if_match: &str,
    idempotency_key: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = served
        .http
        .request(method, served.url(path))
        .bearer_auth(token)
        .header("If-Match", if_match);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

fn etag_of(response: &reqwest::Response) -> String {
    response.headers()["etag"].to_str().unwrap().to_owned()
}

/// Creates a player and soft-deletes it; returns its path and the deleted item.
async fn deleted_player(served: &Served, token: &str) -> (String, Value) {
    let response = served.post(token, "/players/", &json!({"name": "Ada", "club": "A"})).await;
    let etag = etag_of(&response);
    let item = json_with_status(response, 201).await;
    let path = format!("/players/{}", item["_id"].as_str().unwrap());
    let deleted = write(served, token, reqwest::Method::DELETE, &path, &etag, None, None).await;
    assert_eq!(deleted.status(), 204);
    let deleted =
        json_with_status(served.get(token, &format!("{path}?include_deleted=true")).await, 200)
            .await;
    assert_eq!(deleted["is_deleted"], true);
    (path, deleted)
}

#[tokio::test]
async fn patch_with_include_deleted_restores_a_soft_deleted_item() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let (path, deleted) = deleted_player(&served, &token).await;
    let with_deleted = format!("{path}?include_deleted=true");
    let restore = json!({"is_deleted": false, "deleted_at": null});

    // The ETag rules hold for a soft-deleted item: GET gives it, a stale one is 412.
    let response = served.get(&token, &with_deleted).await;
    let etag = etag_of(&response);
    assert_eq!(etag, format!("\"{}\"", deleted["revision_id"].as_str().unwrap()));
    let stale = write(
        &served,
        &token,
        reqwest::Method::PATCH,
        &with_deleted,
        "\"stale\"",
        None,
        Some(&restore),
    )
    .await;
    assert_eq!(etag_of(&stale), etag);
    assert_eq!(json_with_status(stale, 412).await["current"], deleted);

    let response =
        write(&served, &token, reqwest::Method::PATCH, &with_deleted, &etag, None, Some(&restore))
            .await;
    let new_etag = etag_of(&response);
    let restored = json_with_status(response, 200).await;
    assert_ne!(new_etag, etag);
    assert_eq!(restored["is_deleted"], false);
    assert_eq!(restored["deleted_at"], Value::Null);
    assert_eq!((restored["name"].clone(), restored["club"].clone()), (json!("Ada"), json!("A")));
    assert_eq!(restored["created_at"], deleted["created_at"]);

    // Live again: found without include_deleted, listed, and writable as any item.
    assert_eq!(json_with_status(served.get(&token, &path).await, 200).await, restored);
    let list = json_with_status(served.get(&token, "/players/").await, 200).await;
    assert_eq!(list["total"], 1);
    assert_eq!(served.sandbox.items(TENANT, "players").len(), 1);
    let response = write(
        &served,
        &token,
        reqwest::Method::PATCH,
        &path,
        &new_etag,
        None,
        Some(&json!({"club": "B"})),
    )
    .await;
    assert_eq!(json_with_status(response, 200).await["club"], "B");
}

#[tokio::test]
async fn without_include_deleted_a_soft_deleted_item_stays_404() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let (path, _) = deleted_player(&served, &token).await;
    let restore = json!({"is_deleted": false, "deleted_at": null});
    assert_eq!(served.get(&token, &path).await.status(), 404);
    for method in [reqwest::Method::PATCH, reqwest::Method::PUT] {
        let response =
            write(&served, &token, method.clone(), &path, "*", None, Some(&restore)).await;
        assert_eq!(response.status(), 404, "{method}");
        let explicit = format!("{path}?include_deleted=false");
        let response =
            write(&served, &token, method.clone(), &explicit, "*", None, Some(&restore)).await;
        assert_eq!(response.status(), 404, "{method}");
    }
    // DELETE never reaches a soft-deleted item, include_deleted or not.
    let again = format!("{path}?include_deleted=true");
    let response = write(&served, &token, reqwest::Method::DELETE, &again, "*", None, None).await;
    assert_eq!(response.status(), 404);
    assert!(served.sandbox.items(TENANT, "players").is_empty());
    assert_eq!(served.sandbox.all_items(TENANT, "players")[0]["is_deleted"], true);
}

#[tokio::test]
async fn put_restores_patch_soft_deletes_and_contradictions_are_422() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let (path, _) = deleted_player(&served, &token).await;
    let with_deleted = format!("{path}?include_deleted=true");

    // PUT with include_deleted replaces the fields of the deleted item; it stays deleted unless
    // the body says otherwise.
    let response = write(
        &served,
        &token,
        reqwest::Method::PUT,
        &with_deleted,
        "*",
        None,
        Some(&json!({"name": "Bo"})),
    )
    .await;
    let still = json_with_status(response, 200).await;
    assert_eq!((still["name"].clone(), still["is_deleted"].clone()), (json!("Bo"), json!(true)));
    assert!(still.get("club").is_none());
    let body = json!({"name": "Bo", "is_deleted": false});
    let response =
        write(&served, &token, reqwest::Method::PUT, &with_deleted, "*", None, Some(&body)).await;
    let restored = json_with_status(response, 200).await;
    assert_eq!(
        (restored["is_deleted"].clone(), restored["deleted_at"].clone()),
        (json!(false), Value::Null)
    );

    // PATCH is_deleted: true soft-deletes, with deleted_at = now.
    let response = write(
        &served,
        &token,
        reqwest::Method::PATCH,
        &path,
        "*",
        None,
        Some(&json!({"is_deleted": true})),
    )
    .await;
    let deleted = json_with_status(response, 200).await;
    assert_eq!(deleted["is_deleted"], true);
    assert!(deleted["deleted_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(served.get(&token, &path).await.status(), 404);

    // Contradictions and wrong types are 422 naming the field; nothing changes.
    for (body, field) in [
        (json!({"is_deleted": "no"}), "is_deleted"),
        (json!({"deleted_at": null}), "deleted_at"),
        (json!({"is_deleted": false, "deleted_at": "2026-04-01T08:00:00Z"}), "deleted_at"),
        (json!({"is_deleted": true, "deleted_at": "yesterday"}), "deleted_at"),
    ] {
        let response =
            write(&served, &token, reqwest::Method::PATCH, &with_deleted, "*", None, Some(&body))
                .await;
        let refused = json_with_status(response, 422).await;
        assert_eq!(refused["detail"][0]["loc"], json!(["body", field]), "{body}");
    }
    assert_eq!(served.sandbox.all_items(TENANT, "players")[0], deleted);
}

#[tokio::test]
async fn an_idempotency_key_replays_a_restore_and_tells_include_deleted_apart() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let (path, _) = deleted_player(&served, &token).await;
    let with_deleted = format!("{path}?include_deleted=true");
    let restore = json!({"is_deleted": false});
    let send = |target: String| {
        let (served, token, restore) = (&served, &token, &restore);
        async move {
            write(
                served,
                token,
                reqwest::Method::PATCH,
                &target,
                "*",
                Some("restore-1"),
                Some(restore),
            )
            .await
        }
    };
    let first = json_with_status(send(with_deleted.clone()).await, 200).await;
    let replayed = send(with_deleted).await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(json_with_status(replayed, 200).await, first);
    assert_eq!(send(path).await.status(), 422, "the same key without include_deleted");
}
