//! Lists on the sandbox: pagination with its headers, every `where` operator and `__suffix`
//! filter (blocked and unknown operators → 400), sort and field selection.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

/// A sandbox with four bookings and a token for them.
async fn seeded() -> (Served, String) {
    let (served, client) = standard().await;
    for item in [
        json!({"name": "Premium Suite", "city": "New York", "amount": 600, "status": "active",
               "tags": ["a", "b"], "address": {"city": "NYC", "zip": "10001"},
               "start_time": "2026-04-02T08:00:00Z", "is_published": true}),
        json!({"name": "premier hall", "city": "Boston", "amount": 250, "status": "confirmed",
               "tags": ["b"], "address": {"city": "Boston"}, "start_time": "2026-04-10T08:00:00Z",
               "is_published": false, "valid_until": "2027-01-01"}),
        json!({"name": "Basic Room", "city": "New York", "amount": 500, "status": "cancelled",
               "tags": [], "start_time": "2026-05-01T00:00:00Z", "is_published": true,
               "valid_until": null}),
        json!({"name": "Zed", "amount": 500.5, "status": "active",
               "start_time": "2026-03-31T23:59:59.500Z"}),
    ] {
        served.sandbox.insert(TENANT, "bookings", item);
    }
    let token = served.token(&client).await;
    (served, token)
}

fn encode(s: &str) -> String {
    // Minimal percent-encoding for the tests' query values.
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The names a list query returns.
async fn names(served: &Served, token: &str, query: &str) -> BTreeSet<String> {
    let response = served.get(token, &format!("/bookings/?{query}")).await;
    let body = json_with_status(response, 200).await;
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn names_where(served: &Served, token: &str, filter: Value) -> BTreeSet<String> {
    names(served, token, &format!("where={}", encode(&filter.to_string()))).await
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[tokio::test]
async fn pages_come_with_totals_and_pagination_headers() {
    let (served, client) = standard().await;
    for i in 0..30 {
        served.sandbox.insert(TENANT, "players", json!({"n": i}));
    }
    let token = served.token(&client).await;
    let response = served.get(&token, "/players/?page=2&per_page=10&sort=n").await;
    let headers = response.headers().clone();
    let body = json_with_status(response, 200).await;
    assert_eq!(headers["x-total-count"], "30");
    assert_eq!(headers["x-page"], "2");
    assert_eq!(headers["x-per-page"], "10");
    assert_eq!(headers["x-total-pages"], "3");
    assert_eq!(body["total"], 30);
    assert_eq!(body["page"], 2);
    assert_eq!(body["per_page"], 10);
    let ns: Vec<i64> =
        body["items"].as_array().unwrap().iter().map(|i| i["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, (10..20).collect::<Vec<_>>());
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["items", "total", "page", "per_page"]);

    // Default 25 per page, newest first.
    let body = json_with_status(served.get(&token, "/players/").await, 200).await;
    assert_eq!(body["per_page"], 25);
    assert_eq!(body["items"].as_array().unwrap().len(), 25);
    assert_eq!(body["items"][0]["n"], 29);
    // The spec's paging loop ends after the last page.
    let body =
        json_with_status(served.get(&token, "/players/?page=4&per_page=10").await, 200).await;
    assert!(body["items"].as_array().unwrap().is_empty());
    assert_eq!(
        json_with_status(served.get(&token, "/players/?per_page=100").await, 200).await["per_page"],
        100
    );
    for bad in ["per_page=101", "per_page=0", "page=0", "page=-1", "per_page=ten"] {
        let body =
            json_with_status(served.get(&token, &format!("/players/?{bad}")).await, 400).await;
        assert!(body["detail"].is_string(), "{bad}: {body}");
    }
}

#[tokio::test]
async fn where_supports_every_allowed_operator() {
    let (served, token) = seeded().await;
    let cases = [
        (json!({"status": "active"}), vec!["Premium Suite", "Zed"]),
        (json!({"status": "active", "city": "New York"}), vec!["Premium Suite"]),
        (json!({"amount": {"$gt": 500}}), vec!["Premium Suite", "Zed"]),
        (json!({"amount": {"$gte": 500}}), vec!["Premium Suite", "Basic Room", "Zed"]),
        (json!({"amount": {"$lt": 500}}), vec!["premier hall"]),
        (json!({"amount": {"$lte": 500}}), vec!["premier hall", "Basic Room"]),
        (json!({"amount": {"$gt": 250, "$lt": 600}}), vec!["Basic Room", "Zed"]),
        (json!({"status": {"$ne": "active"}}), vec!["premier hall", "Basic Room"]),
        (
            json!({"status": {"$in": ["confirmed", "cancelled"]}}),
            vec!["premier hall", "Basic Room"],
        ),
        (json!({"status": {"$nin": ["confirmed", "cancelled"]}}), vec!["Premium Suite", "Zed"]),
        (json!({"valid_until": {"$exists": true}}), vec!["premier hall", "Basic Room"]),
        (json!({"valid_until": {"$exists": false}}), vec!["Premium Suite", "Zed"]),
        (json!({"name": {"$regex": "^Prem"}}), vec!["Premium Suite"]),
        (
            json!({"name": {"$regex": "^Prem", "$options": "i"}}),
            vec!["Premium Suite", "premier hall"],
        ),
        (
            json!({"$or": [{"status": "active"}, {"status": "confirmed"}]}),
            vec!["Premium Suite", "premier hall", "Zed"],
        ),
        (json!({"$and": [{"city": "New York"}, {"amount": {"$lt": 550}}]}), vec!["Basic Room"]),
        (json!({"$not": {"status": "active"}}), vec!["premier hall", "Basic Room"]),
        (json!({"amount": {"$not": {"$gt": 500}}}), vec!["premier hall", "Basic Room"]),
        (json!({"address.city": "NYC"}), vec!["Premium Suite"]),
        (json!({"address.zip": {"$exists": true}}), vec!["Premium Suite"]),
        (json!({"tags": "b"}), vec!["Premium Suite", "premier hall"]),
        (json!({"tags.0": "a"}), vec!["Premium Suite"]),
        (json!({"is_published": true, "city": "New York"}), vec!["Premium Suite", "Basic Room"]),
        (
            json!({"start_time": {"$gte": "2026-04-01T00:00:00Z"}, "start_time2": null}),
            vec!["Premium Suite", "premier hall", "Basic Room"],
        ),
        (json!({"start_time": {"$lt": "2026-04-01T00:00:00+02:00"}}), vec![]),
        (json!({"start_time": {"$lt": "2026-04-01T01:59:59.600+02:00"}}), vec!["Zed"]),
        (json!({"amount": 500.0}), vec!["Basic Room"]),
        (json!({"valid_until": null}), vec!["Premium Suite", "Basic Room", "Zed"]),
    ];
    for (filter, want) in cases {
        assert_eq!(
            names_where(&served, &token, filter.clone()).await,
            set(&want),
            "where {filter}"
        );
    }
}

#[tokio::test]
async fn blocked_unknown_and_malformed_where_clauses_are_400() {
    let (served, token) = seeded().await;
    for filter in [
        json!({"$where": "this.amount > 1"}),
        json!({"$expr": {"$gt": ["$amount", 1]}}),
        json!({"amount": {"$function": {"body": "x", "args": [], "lang": "js"}}}),
        json!({"amount": {"$elemMatch": {"$gt": 1}}}),
        json!({"$nor": [{"a": 1}]}),
        json!({"amount": {"$gt": {"$where": "1"}}}),
        json!({"name": {"$regex": "(unclosed"}}),
    ] {
        let query = format!("where={}", encode(&filter.to_string()));
        let body =
            json_with_status(served.get(&token, &format!("/bookings/?{query}")).await, 400).await;
        assert!(body["detail"].is_string(), "{filter}: {body}");
    }
    let body =
        json_with_status(served.get(&token, "/bookings/?where=%7Bstatus%3A").await, 400).await;
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"));
    let blocked = json_with_status(
        served.get(&token, &format!("/bookings/?where={}", encode(r#"{"$where":"1"}"#))).await,
        400,
    )
    .await;
    assert!(blocked["detail"].as_str().unwrap().contains("not allowed"));
}

#[tokio::test]
async fn query_parameter_filters_support_every_suffix() {
    let (served, token) = seeded().await;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("status=active", vec!["Premium Suite", "Zed"]),
        ("status=active&city=New%20York", vec!["Premium Suite"]),
        ("amount__gt=500", vec!["Premium Suite", "Zed"]),
        ("amount__gte=500", vec!["Premium Suite", "Basic Room", "Zed"]),
        ("amount__lt=500", vec!["premier hall"]),
        ("amount__lte=500", vec!["premier hall", "Basic Room"]),
        ("amount=500", vec!["Basic Room"]),
        ("amount=500.5", vec!["Zed"]),
        ("status__ne=active", vec!["premier hall", "Basic Room"]),
        ("status__in=active,confirmed", vec!["Premium Suite", "premier hall", "Zed"]),
        ("status__nin=active,confirmed", vec!["Basic Room"]),
        ("amount__in=250,600", vec!["Premium Suite", "premier hall"]),
        ("name__regex=%5EPrem", vec!["Premium Suite"]),
        ("valid_until__exists=false", vec!["Premium Suite", "Zed"]),
        ("valid_until__exists=true", vec!["premier hall", "Basic Room"]),
        ("is_published=true", vec!["Premium Suite", "Basic Room"]),
        ("address.city=Boston", vec!["premier hall"]),
        (
            "start_time__gte=2026-04-01T00:00:00Z&start_time__lt=2026-05-01T00:00:00Z",
            vec!["Premium Suite", "premier hall"],
        ),
        ("where=%7B%22city%22%3A%22New%20York%22%7D&amount__gt=550", vec!["Premium Suite"]),
    ];
    for (query, want) in cases {
        assert_eq!(names(&served, &token, query).await, set(&want), "{query}");
    }
    for bad in
        ["amount__foo=1", "amount__where=1", "amount__exists=maybe", "name__regex=(", "a..b=1"]
    {
        let response = served.get(&token, &format!("/bookings/?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn sort_orders_by_several_fields_and_defaults_to_newest_first() {
    let (served, token) = seeded().await;
    let order = |body: Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let body = json_with_status(served.get(&token, "/bookings/").await, 200).await;
    assert_eq!(order(body), ["Zed", "Basic Room", "premier hall", "Premium Suite"]);
    let body =
        json_with_status(served.get(&token, "/bookings/?sort=-amount,name").await, 200).await;
    assert_eq!(order(body), ["Premium Suite", "Zed", "Basic Room", "premier hall"]);
    let body =
        json_with_status(served.get(&token, "/bookings/?sort=status,-start_time").await, 200).await;
    assert_eq!(order(body), ["Premium Suite", "Zed", "Basic Room", "premier hall"]);
    let body = json_with_status(served.get(&token, "/bookings/?sort=start_time").await, 200).await;
    assert_eq!(order(body), ["Zed", "Premium Suite", "premier hall", "Basic Room"]);
    // Missing values sort first ascending.
    let body = json_with_status(served.get(&token, "/bookings/?sort=city,name").await, 200).await;
    assert_eq!(order(body), ["Zed", "premier hall", "Basic Room", "Premium Suite"]);
    assert_eq!(served.get(&token, "/bookings/?sort=-").await.status(), 400);
}

#[tokio::test]
async fn fields_selects_fields_and_always_keeps_the_id() {
    let (served, token) = seeded().await;
    let body = json_with_status(
        served.get(&token, "/bookings/?fields=name,address.city&sort=amount").await,
        200,
    )
    .await;
    let first = &body["items"][0];
    assert_eq!(first.as_object().unwrap().len(), 3, "{first}");
    assert!(first["_id"].is_string());
    assert_eq!(first["name"], "premier hall");
    assert_eq!(first["address"], json!({"city": "Boston"}));
    let with_rev =
        json_with_status(served.get(&token, "/bookings/?fields=revision_id").await, 200).await;
    assert!(with_rev["items"][0]["revision_id"].is_string());
}

#[tokio::test]
async fn an_in_lookup_of_a_hundred_keys_finds_them_in_one_request() {
    let (served, client) = standard().await;
    for i in 0..300 {
        served.sandbox.insert(
            TENANT,
            "payments",
            json!({"reference": format!("REF-{i:04}"), "n": i}),
        );
    }
    let token = served.token(&client).await;
    let keys: Vec<String> = (100..200).map(|i| format!("REF-{i:04}")).collect();
    let filter = json!({"reference": {"$in": keys}});
    let before = served.sandbox.request_count();
    let response = served
        .get(&token, &format!("/payments/?per_page=100&where={}", encode(&filter.to_string())))
        .await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["total"], 100);
    assert_eq!(body["items"].as_array().unwrap().len(), 100);
    assert_eq!(served.sandbox.request_count(), before + 1);
}
