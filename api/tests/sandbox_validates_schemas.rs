//! A per-resource JSON Schema makes the sandbox answer 422 with FastAPI-style field errors for
//! creates and updates that fail it, and leaves the stored item unchanged.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::*;
use intake_api::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

fn payment_schema() -> Value {
    json!({
        "type": "object",
        "required": ["reference", "amount"],
        "properties": {
            "reference": {"type": "string", "minLength": 1},
            "amount": {"type": "number", "minimum": 0},
            "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
        },
        "additionalProperties": false
    })
}

async fn with_schema() -> (Served, String) {
    let client = TestClient::new(
        "acme",
        intake_engine::m2m::jws::JwsAlgorithm::Es256,
        TENANT,
        &all_capabilities(&["payments", "players"]).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut config =
        SandboxConfig { clients: vec![client.registration()], ..SandboxConfig::default() };
    config.schemas.insert("payments".into(), payment_schema());
    let served = serve(config).await;
    let token = served.token(&client).await;
    (served, token)
}

#[tokio::test]
async fn an_invalid_create_is_422_with_field_errors() {
    let (served, token) = with_schema().await;
    let response =
        served.post(&token, "/payments/", &json!({"amount": -5, "lines": [{"qty": 1}]})).await;
    let body = json_with_status(response, 422).await;
    let errors = body["detail"].as_array().unwrap();
    let locs: Vec<&Value> = errors.iter().map(|e| &e["loc"]).collect();
    assert!(locs.contains(&&json!(["body", "reference"])), "{body}");
    assert!(locs.contains(&&json!(["body", "amount"])), "{body}");
    assert!(locs.contains(&&json!(["body", "lines", 0, "sku"])), "{body}");
    for error in errors {
        assert!(error["msg"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error["type"].is_string());
    }
    let types: Vec<&str> = errors.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"required") && types.contains(&"minimum"), "{types:?}");
    assert!(served.sandbox.items(TENANT, "payments").is_empty());

    // System fields do not count against additionalProperties: false.
    let ok = served
        .post(&token, "/payments/", &json!({"reference": "R1", "amount": 5, "_id": "x"}))
        .await;
    json_with_status(ok, 201).await;
    // A resource without a schema takes anything.
    json_with_status(served.post(&token, "/players/", &json!({"anything": [1, 2]})).await, 201)
        .await;
}

#[tokio::test]
async fn an_update_that_breaks_the_schema_is_422_and_changes_nothing() {
    let (served, token) = with_schema().await;
    let response =
        served.post(&token, "/payments/", &json!({"reference": "R1", "amount": 5})).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let item = json_with_status(response, 201).await;
    let path = format!("/payments/{}", item["_id"].as_str().unwrap());
    let patch = served
        .http
        .patch(served.url(&path))
        .bearer_auth(&token)
        .header("If-Match", &etag)
        .json(&json!({"amount": "five"}))
        .send()
        .await
        .unwrap();
    let body = json_with_status(patch, 422).await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "amount"]));
    assert_eq!(body["detail"][0]["type"], "type");
    let put = served
        .http
        .put(served.url(&path))
        .bearer_auth(&token)
        .header("If-Match", &etag)
        .json(&json!({"reference": "R1"}))
        .send()
        .await
        .unwrap();
    let body = json_with_status(put, 422).await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "amount"]));
    assert_eq!(served.sandbox.items(TENANT, "payments")[0], item);
    // The ETag still holds: nothing was written.
    let ok = served
        .http
        .patch(served.url(&path))
        .bearer_auth(&token)
        .header("If-Match", &etag)
        .json(&json!({"amount": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(ok, 200).await["amount"], 7);
}

#[tokio::test]
async fn an_invalid_configuration_reports_every_problem() {
    let mut config: SandboxConfig = serde_json::from_value(json!({
        "clients": [
            {"client_id": "a", "tenant_id": "XYZ", "capabilities": ["p:read"],
             "keys": [{"kid": "../k", "public_key_pem": "nope"}]},
            {"client_id": "a", "tenant_id": TENANT, "capabilities": [], "keys": []}
        ],
        "faults": {"error_rate": 1.5}
    }))
    .unwrap();
    config.schemas.insert("payments".into(), json!({"type": "no-such-type"}));
    let problems = Sandbox::try_new(config).unwrap_err().problems;
    let text = problems.join("\n");
    for needle in [
        "tenant_id 'XYZ'",
        "kid '../k'",
        "key '../k'",
        "registered twice",
        "no keys",
        "schemas.payments",
        "error_rate",
    ] {
        assert!(text.contains(needle), "missing '{needle}' in:\n{text}");
    }
    let unknown = serde_json::from_value::<SandboxConfig>(json!({"clients": [], "extra": 1}));
    assert!(unknown.is_err());
}
