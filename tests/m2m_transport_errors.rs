//! The M2M client's answers to the platform's errors, against the sandbox over real sockets:
//! 412 as `PreconditionFailed` with the current item, 422 field errors, 403 missing capabilities,
//! 404, and the happy paths of every verb (ETags, list queries, X-Tenant-ID).

mod common;

use common::{CLIENT_ID, Platform, Proxy, TENANT, object, registration};
use intake_engine::m2m::{ApiError, ErrorDomain, ListQuery};
use serde_json::json;

#[tokio::test]
async fn a_stale_etag_is_precondition_failed_with_the_current_item() {
    let platform = Platform::start().await;
    let client = platform.client(&platform.url);
    let created = client.create("payments", &object(json!({"amount": 1})), "k1").await.unwrap();
    assert!(created.etag.starts_with('"'), "{}", created.etag);
    // A concurrent writer changes the item.
    let other = platform.client(&platform.url);
    let changed = other
        .patch("payments", &created.id, &object(json!({"amount": 2})), &created.etag)
        .await
        .unwrap();
    assert_ne!(changed.etag, created.etag);

    let err = client
        .patch("payments", &created.id, &object(json!({"amount": 3})), &created.etag)
        .await
        .unwrap_err();
    let ApiError::PreconditionFailed { current: Some(current) } = &err else { panic!("{err:?}") };
    assert_eq!(current.etag, changed.etag);
    assert_eq!(current.body["amount"], 2);
    assert_eq!(err.domain(), ErrorDomain::External);
    // Re-apply on the current version.
    let applied = client
        .patch("payments", &created.id, &object(json!({"amount": 3})), &current.etag)
        .await
        .unwrap();
    assert_eq!(applied.body["amount"], 3);
    // PUT and DELETE check the ETag too.
    let err =
        client.put("payments", &created.id, &object(json!({"amount": 4})), &current.etag).await;
    assert!(matches!(err, Err(ApiError::PreconditionFailed { .. })), "{err:?}");
    let err = client.delete("payments", &created.id, &current.etag).await;
    assert!(matches!(err, Err(ApiError::PreconditionFailed { .. })), "{err:?}");
    let replaced = client
        .put("payments", &created.id, &object(json!({"total": 9})), &applied.etag)
        .await
        .unwrap();
    assert!(replaced.body.get("amount").is_none());
    client.delete("payments", &created.id, &replaced.etag).await.unwrap();
    assert!(matches!(client.get("payments", &created.id).await, Err(ApiError::NotFound)));
}

#[tokio::test]
async fn a_422_carries_the_field_errors() {
    let platform = Platform::start_with(|c| {
        c.schemas.insert(
            "payments".into(),
            json!({
                "type": "object",
                "required": ["amount", "iban"],
                "properties": {"amount": {"type": "number", "exclusiveMinimum": 0}, "iban": {"type": "string"}}
            }),
        );
    })
    .await;
    let client = platform.client(&platform.url);
    let err = client
        .create("payments", &object(json!({"amount": -5, "iban": "SE45"})), "bad-1")
        .await
        .unwrap_err();
    let ApiError::Validation { status: 422, errors } = &err else { panic!("{err:?}") };
    assert!(!errors.is_empty());
    let amount = errors.iter().find(|e| e.field.as_deref() == Some("amount"));
    assert!(amount.is_some(), "{errors:?}");
    assert!(!amount.unwrap().message.is_empty());
    assert_eq!(err.domain(), ErrorDomain::Data);
    assert!(!err.is_retryable());

    let err = client.create("payments", &object(json!({"amount": 5})), "bad-2").await.unwrap_err();
    let ApiError::Validation { errors, .. } = &err else { panic!("{err:?}") };
    assert!(errors.iter().any(|e| e.message.contains("iban")), "{errors:?}");
    assert!(platform.items("payments").is_empty());
}

#[tokio::test]
async fn a_403_lists_the_missing_capabilities() {
    let key =
        intake_engine::m2m::jws::SigningKey::generate(intake_engine::m2m::jws::JwsAlgorithm::Es256);
    let registered = key.clone();
    let platform = Platform::start_with(move |c| {
        c.clients =
            vec![registration(CLIENT_ID, &["payments:read", "payments:create"], &registered)];
    })
    .await;
    let client = platform.client_with(&platform.url, |_, c| {
        c.key = key;
        c.scopes = vec![];
    });
    let created = client.create("payments", &object(json!({"n": 1})), "k").await.unwrap();
    let err = client.delete("payments", &created.id, &created.etag).await.unwrap_err();
    let ApiError::Forbidden { missing } = &err else { panic!("{err:?}") };
    assert_eq!(missing, &["payments:delete"]);
    assert!(err.to_string().contains("payments:delete"));
    let err = client.patch("payments", &created.id, &object(json!({})), &created.etag).await;
    assert!(matches!(err, Err(ApiError::Forbidden { missing }) if missing == ["payments:update"]));
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let platform = Platform::start().await;
    let client = platform.client(&platform.url);
    let err = client.get("payments", "0123456789abcdef01234567").await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound), "{err:?}");
    assert_eq!(err.domain(), ErrorDomain::Data);
}

#[tokio::test]
async fn a_bad_filter_is_bad_request() {
    let platform = Platform::start().await;
    let client = platform.client(&platform.url);
    let query = ListQuery { filter: Some(json!({"$where": "1"})), ..Default::default() };
    let err = client.list("payments", &query).await.unwrap_err();
    assert!(matches!(err, ApiError::BadRequest { .. }), "{err:?}");
}

#[tokio::test]
async fn lists_filter_sort_project_and_page_and_their_etags_work_for_writes() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client(&proxy.url);
    for n in 0..7 {
        client
            .create(
                "payments",
                &object(json!({"n": n, "kind": if n % 2 == 0 { "even" } else { "odd" }})),
                &format!("k{n}"),
            )
            .await
            .unwrap();
    }
    let query = ListQuery {
        filter: Some(json!({"n": {"$in": [0, 2, 4, 6]}})),
        sort: Some("-n".into()),
        fields: Some(vec!["n".into()]),
        page: 2,
        per_page: 3,
    };
    let page = client.list("payments", &query).await.unwrap();
    assert_eq!((page.total, page.page, page.per_page), (4, 2, 3));
    assert_eq!(page.items.len(), 1);
    let item = &page.items[0];
    assert_eq!(item.body["n"], 0);
    assert!(item.body.get("kind").is_none(), "fields= was not applied");
    assert!(item.etag.starts_with('"') && item.etag.len() > 2, "{}", item.etag);
    // A list item's ETag is good for If-Match.
    client.patch("payments", &item.id, &object(json!({"n": 100})), &item.etag).await.unwrap();
    // X-Tenant-ID went with every request.
    for request in proxy.stats.seen("/payments") {
        assert_eq!(request.headers["x-tenant-id"], TENANT);
    }
}

#[tokio::test]
async fn another_tenant_in_x_tenant_id_is_forbidden() {
    let platform = Platform::start().await;
    let client = platform.client_with(&platform.url, |config, _| {
        config.tenant_id = Some("ffffffffffffffffffffffff".into());
    });
    let err = client.list("payments", &ListQuery::default()).await.unwrap_err();
    assert!(matches!(err, ApiError::Forbidden { .. }), "{err:?}");
}
