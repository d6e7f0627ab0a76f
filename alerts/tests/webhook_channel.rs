//! The webhook channel against a real HTTP receiver on 127.0.0.1: what arrives (headers, JSON
//! body, a signature the receiver can check on its own), and the typed errors for a refusing,
//! redirecting, slow or absent receiver and for a secret that cannot be resolved.

#[path = "support/http_receiver.rs"]
mod http_receiver;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use intake_alerts::channels::webhook::{
    EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature,
};
use intake_alerts::channels::{Channel, http_client};
use intake_alerts::{
    Alert, AlertChannel, AlertEvent, ChannelSecret, DeliveryError, EventType, SecretError, Severity,
};
use serde_json::{Value, json};

use http_receiver::{Answer, Server};

const SECRET: &str = "whsec_0123456789abcdef";
/// Where the receiver takes the webhook.
const HOOK_PATH: &str = "/hooks/intake";

fn webhook(url: &str, timeout_seconds: u64) -> Channel {
    let item: AlertChannel = serde_json::from_value(json!({
        "_id": "64a1b2c3d4e5f6789012ab01",
        "name": "ops-hook",
        "type": "webhook",
        "config": {
            "webhook_url": url,
            "credential_name": "env:OPS_HOOK_SECRET",
            "timeout_seconds": timeout_seconds
        }
    }))
    .expect("channel item");
    item.build(&http_client().expect("client")).expect("valid channel")
}

fn secrets(reference: &str) -> Result<ChannelSecret, SecretError> {
    match reference {
        "env:OPS_HOOK_SECRET" => Ok(ChannelSecret::new(SECRET)),
        other => Err(SecretError { reference: other.into(), reason: "not set".into() }),
    }
}

fn event() -> AlertEvent {
    AlertEvent::new(EventType::ParseError, Severity::Error, "payments.csv: row 3 is not CSV")
        .tag("tenant", "acme")
        .tag("source", "bank-sftp")
        .subject("run-01J9Z")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

#[tokio::test]
async fn a_delivered_event_is_signed_json_the_receiver_can_verify() {
    let server = Server::start(Answer::new(StatusCode::NO_CONTENT, "")).await;
    let before = now();
    webhook(&server.url(HOOK_PATH), 5)
        .deliver(&Alert::single(event()), &secrets)
        .await
        .expect("delivered");
    let after = now();

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.uri.path(), HOOK_PATH);
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header(EVENT_HEADER), "parse_error");
    let timestamp = request.header(TIMESTAMP_HEADER);
    let seconds: u64 = timestamp.parse().expect("the timestamp is Unix seconds");
    assert!((before..=after).contains(&seconds), "{before} <= {seconds} <= {after}");

    // Verify as a receiver would, without the crate's helper: HMAC-SHA256 of "<ts>.<body>".
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(request.header(SIGNATURE_HEADER), expected);
    // And with the helper the module documents for receivers.
    let signature = request.header(SIGNATURE_HEADER);
    assert!(verify_signature(SECRET.as_bytes(), timestamp, &request.body, signature));
    assert!(!verify_signature(b"another secret", timestamp, &request.body, signature));

    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert_eq!(
        body,
        json!({
            "event_type": "parse_error",
            "severity": "error",
            "summary": "payments.csv: row 3 is not CSV",
            "tags": {"source": "bank-sftp", "tenant": "acme"},
            "subject": "run-01J9Z",
            "link": null,
            "dedup_key": null,
            "held_back": 0
        })
    );
    assert!(!String::from_utf8_lossy(&request.body).contains(SECRET));
}

#[tokio::test]
async fn a_receiver_answering_500_gives_a_retryable_refusal_with_the_start_of_its_body() {
    let page = format!("database is down; {}", "x".repeat(5000));
    let server = Server::start(Answer::new(StatusCode::INTERNAL_SERVER_ERROR, page)).await;
    let error = webhook(&server.url(HOOK_PATH), 5)
        .deliver(&Alert::single(event()), &secrets)
        .await
        .expect_err("500");
    let DeliveryError::Refused { channel, origin, status, body } = &error else {
        panic!("a refusal: {error:?}");
    };
    assert_eq!(channel, "ops-hook");
    assert_eq!(*status, 500);
    assert_eq!(origin, &server.url(""));
    assert!(body.starts_with("database is down; xxx"), "{body}");
    assert!(body.ends_with('…') && body.len() <= 512 + '…'.len_utf8(), "{}", body.len());
    assert!(error.is_retryable());
    let text = error.to_string();
    assert!(text.contains("HTTP 500") && text.contains("database is down"), "{text}");
    assert!(!text.contains(SECRET) && !format!("{error:?}").contains(SECRET));
    assert!(!text.contains("/hooks/intake"), "only the origin is shown: {text}");
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn a_client_error_is_not_retryable_and_a_redirect_is_not_followed() {
    let server = Server::start(Answer::new(StatusCode::UNAUTHORIZED, "bad signature")).await;
    let error = webhook(&server.url(HOOK_PATH), 5)
        .deliver(&Alert::single(event()), &secrets)
        .await
        .expect_err("401");
    assert!(
        matches!(&error, DeliveryError::Refused { status: 401, body, .. } if body == "bad signature")
    );
    assert!(!error.is_retryable());

    let mut moved = Answer::new(StatusCode::FOUND, "");
    let elsewhere = Server::start(Answer::new(StatusCode::OK, "")).await;
    moved.location = Some(elsewhere.url(HOOK_PATH));
    let server = Server::start(moved).await;
    let error = webhook(&server.url(HOOK_PATH), 5)
        .deliver(&Alert::single(event()), &secrets)
        .await
        .expect_err("302");
    assert!(
        matches!(&error, DeliveryError::Refused { status: 302, body, .. } if body == "(empty body)")
    );
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn a_receiver_that_is_not_listening_gives_an_unreachable_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let url = format!("http://{address}/hooks/intake");
    let error =
        webhook(&url, 5).deliver(&Alert::single(event()), &secrets).await.expect_err("refused");
    let DeliveryError::Unreachable { channel, origin, timed_out, .. } = &error else {
        panic!("unreachable: {error:?}");
    };
    assert_eq!((channel.as_str(), *timed_out), ("ops-hook", false));
    assert_eq!(origin, &format!("http://{address}"));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_gives_a_timed_out_error() {
    let mut slow = Answer::new(StatusCode::OK, "");
    slow.delay = Duration::from_secs(5);
    let server = Server::start(slow).await;
    let error = webhook(&server.url(HOOK_PATH), 1)
        .deliver(&Alert::single(event()), &secrets)
        .await
        .expect_err("timeout");
    assert!(matches!(error, DeliveryError::Unreachable { timed_out: true, .. }), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn an_unresolvable_or_empty_secret_sends_nothing() {
    let server = Server::start(Answer::new(StatusCode::OK, "")).await;
    let channel = webhook(&server.url(HOOK_PATH), 5);

    let missing = |reference: &str| {
        Err(SecretError { reference: reference.into(), reason: "variable not set".into() })
    };
    let error = channel.deliver(&Alert::single(event()), &missing).await.expect_err("no secret");
    assert!(
        matches!(&error, DeliveryError::Secret { source, .. } if source.reference == "env:OPS_HOOK_SECRET")
    );
    assert!(error.to_string().contains("env:OPS_HOOK_SECRET"), "{error}");
    assert!(!error.is_retryable());

    let empty = |_: &str| Ok(ChannelSecret::new(""));
    let error = channel.deliver(&Alert::single(event()), &empty).await.expect_err("empty secret");
    assert!(error.to_string().contains("empty"), "{error}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn the_secret_is_resolved_for_every_delivery_so_rotation_needs_no_rebuild() {
    let server = Server::start(Answer::new(StatusCode::OK, "")).await;
    let channel = webhook(&server.url(HOOK_PATH), 5);
    let current = Arc::new(Mutex::new("first-secret".to_owned()));
    let resolver = {
        let current = current.clone();
        move |_: &str| Ok(ChannelSecret::new(current.lock().expect("lock").clone()))
    };
    channel.deliver(&Alert::single(event()), &resolver).await.expect("first");
    *current.lock().expect("lock") = "second-secret".to_owned();
    channel.deliver(&Alert::single(event()), &resolver).await.expect("second");

    let received = server.received();
    assert_eq!(received.len(), 2);
    for (request, secret) in received.iter().zip(["first-secret", "second-secret"]) {
        let (timestamp, signature) =
            (request.header(TIMESTAMP_HEADER), request.header(SIGNATURE_HEADER));
        assert!(verify_signature(secret.as_bytes(), timestamp, &request.body, signature));
    }
}
