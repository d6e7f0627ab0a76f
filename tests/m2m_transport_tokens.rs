//! The M2M client's token handling against the sandbox over real sockets: one token for many
//! concurrent calls, renewal before expiry, one re-authentication on 401, every token error
//! surfaced as its own variant, and DPoP end to end.

mod common;

use std::time::Duration;

use common::{
    CAPABILITIES, CLIENT_ID, Injected, Platform, Proxy, build_client, fast_config, object,
    registration,
};
use intake_engine::m2m::jws::{JwsAlgorithm, SigningKey};
use intake_engine::m2m::{
    ApiError, AuthError, ListQuery, TokenManager, TokenType, load_signing_key,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_is_fetched_and_cached_across_50_concurrent_calls() {
    let platform = Platform::start().await;
    let client = platform.client(&platform.url);
    let calls = (0..50).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            client.create("payments", &object(json!({"n": i})), &format!("key-{i}")).await
        })
    });
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(platform.token_requests(), 1, "the sandbox saw more than one token request");
    assert_eq!(client.tokens().requests_sent(), 1);
    assert_eq!(platform.items("payments").len(), 50);
    assert_eq!(client.requests_sent(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_renewed_when_near_expiry_and_not_before() {
    // 4-second tokens: the 60 s margin is capped at half the lifetime, so renewal after 2 s.
    let platform = Platform::start_with(|c| c.access_token_lifetime_seconds = 4).await;
    let client = platform.client(&platform.url);
    client.list("payments", &ListQuery::default()).await.unwrap();
    let first = client.tokens().token().await.unwrap();
    client.list("payments", &ListQuery::default()).await.unwrap();
    assert_eq!(platform.token_requests(), 1, "renewed too early");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    // Many callers at the renewal point: still exactly one renewal.
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list("payments", &ListQuery::default()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(platform.token_requests(), 2);
    let second = client.tokens().token().await.unwrap();
    assert_ne!(first.value, second.value);
    assert!(second.expires_at > first.expires_at);
}

#[tokio::test]
async fn a_configurable_margin_renews_earlier() {
    let platform = Platform::start_with(|c| c.access_token_lifetime_seconds = 10).await;
    let http = intake_engine::m2m::ApiClient::http_client(&fast_config(&platform.url)).unwrap();
    let tokens = TokenManager::new(http, platform.credentials(&platform.url))
        .with_renewal_margin(Duration::from_secs(4));
    let first = tokens.token().await.unwrap();
    assert_eq!(tokens.token().await.unwrap().value, first.value);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(tokens.token().await.unwrap().value, first.value, "renewed with 8.8 s left");
    tokio::time::sleep(Duration::from_millis(5000)).await;
    assert_ne!(tokens.token().await.unwrap().value, first.value, "not renewed with 3.8 s left");
    assert_eq!(platform.token_requests(), 2);
}

#[tokio::test]
async fn a_401_renews_the_token_and_retries_once() {
    let platform = Platform::start().await;
    let client = platform.client(&platform.url);
    let created = client.create("payments", &object(json!({"n": 1})), "k1").await.unwrap();
    // Every token issued so far becomes invalid: the next call gets 401.
    let admin = intake_engine::m2m::ApiClient::http_client(&fast_config(&platform.url)).unwrap();
    let revoked = admin.post(platform.url.join("_sandbox/revoke-tokens").unwrap()).send().await;
    assert!(revoked.unwrap().status().is_success());
    let got = client.get("payments", &created.id).await.unwrap();
    assert_eq!(got.id, created.id);
    assert_eq!(platform.token_requests(), 2);
    assert_eq!(client.requests_sent(), 3, "create, the 401, the retry");
}

#[tokio::test]
async fn a_second_401_is_unauthorized() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client(&proxy.url);
    let body = r#"{"detail":{"error":"invalid_token","error_description":"token revoked"}}"#;
    proxy.inject(None, "/payments", 2, Injected::status(401, body));
    let err = client.list("payments", &ListQuery::default()).await.unwrap_err();
    let ApiError::Unauthorized { detail } = &err else { panic!("{err:?}") };
    assert!(detail.contains("invalid_token"), "{detail}");
    assert_eq!(proxy.stats.token_requests(), 2, "exactly one re-authentication");
    assert_eq!(proxy.stats.seen("/payments").len(), 2);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn the_key_can_come_from_a_credential_reference() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client-private-key.pem");
    std::fs::write(&path, platform.key.to_pkcs8_pem().unwrap()).unwrap();
    let key = load_signing_key(&format!("file:{}", path.display())).unwrap();
    let client = platform.client_with(&platform.url, |_, c| c.key = key);
    client.list("payments", &ListQuery::default()).await.unwrap();
}

/// Asks for a token with credentials changed by `adjust` and returns the error.
async fn token_error(
    platform: &Platform,
    adjust: impl FnOnce(&mut intake_engine::m2m::ClientCredentials),
) -> AuthError {
    let client = platform.client_with(&platform.url, |_, c| adjust(c));
    match client.list("payments", &ListQuery::default()).await {
        Err(ApiError::Auth(e)) => e,
        other => panic!("expected a token error, got {other:?}"),
    }
}

#[tokio::test]
async fn each_token_error_is_surfaced_as_its_variant() {
    let other = SigningKey::generate(JwsAlgorithm::Es384);
    let registered = other.clone();
    let platform = Platform::start_with(move |c| {
        c.clients.push(registration("other-client", &["payments:read"], &registered));
    })
    .await;

    let e = token_error(&platform, |c| c.kid = "2026-04-expired".into()).await;
    assert!(
        matches!(&e, AuthError::InvalidClient { description } if description.contains("2026-04-expired")),
        "{e:?}"
    );
    assert!(e.to_string().contains("check the client_id, the kid"));

    let e = token_error(&platform, |c| c.key = SigningKey::generate(JwsAlgorithm::Es256)).await;
    assert!(matches!(e, AuthError::InvalidClient { .. }), "a wrong key: {e:?}");

    let e = token_error(&platform, |c| c.client_id = "nobody".into()).await;
    assert!(matches!(e, AuthError::InvalidClient { .. }), "an unknown client: {e:?}");

    let e = token_error(&platform, |c| c.scopes = vec!["admin:delete".into()]).await;
    assert!(
        matches!(&e, AuthError::InvalidScope { description } if description.contains("admin:delete")),
        "{e:?}"
    );
    assert!(e.to_string().contains("capabilities in the platform's Admin UI"));

    // Another client (ES384 key) asking for capabilities it was not given.
    let e = token_error(&platform, |c| {
        c.client_id = "other-client".into();
        c.key = other;
    })
    .await;
    assert!(matches!(e, AuthError::InvalidScope { .. }), "{e:?}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn an_assertion_for_another_audience_is_invalid_grant() {
    let platform =
        Platform::start_with(|c| c.public_url = Some("https://platform.example".into())).await;
    let e = token_error(&platform, |_| {}).await;
    assert!(matches!(e, AuthError::InvalidGrant { .. }), "{e:?}");
    assert!(e.to_string().contains("token URL"), "{e}");
}

#[tokio::test]
async fn repeated_failures_lock_the_client_out_with_retry_after() {
    let platform = Platform::start().await;
    for _ in 0..5 {
        let e = token_error(&platform, |c| c.kid = "wrong".into()).await;
        assert!(matches!(e, AuthError::InvalidClient { .. }), "{e:?}");
    }
    // Now even the right key is refused, with the lockout's Retry-After.
    let e = token_error(&platform, |_| {}).await;
    let AuthError::Locked { retry_after } = e else { panic!("{e:?}") };
    assert!(retry_after > Duration::from_secs(800), "{retry_after:?}");
    assert!(ApiError::Auth(AuthError::Locked { retry_after }).is_retryable());
}

#[tokio::test]
async fn concurrent_callers_share_one_failed_renewal() {
    let platform = Platform::start().await;
    let client = platform.client_with(&platform.url, |_, c| c.kid = "wrong".into());
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list("payments", &ListQuery::default()).await })
        })
        .collect();
    for call in calls {
        let e = call.await.unwrap().unwrap_err();
        assert!(matches!(e, ApiError::Auth(AuthError::InvalidClient { .. })), "{e:?}");
    }
    // One request, not 20 failures, which would have locked the client out for 15 minutes.
    assert_eq!(platform.token_requests(), 1);
    // A caller right after is answered from memory too.
    let e = client.list("payments", &ListQuery::default()).await.unwrap_err();
    assert!(matches!(e, ApiError::Auth(AuthError::InvalidClient { .. })), "{e:?}");
    assert_eq!(platform.token_requests(), 1);
}

#[tokio::test]
async fn dpop_bound_tokens_work_end_to_end_with_a_fresh_proof_per_attempt() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client_with(&proxy.url, |_, c| {
        c.dpop_key = Some(SigningKey::generate(JwsAlgorithm::Es256));
    });
    let token = client.tokens().token().await.unwrap();
    assert_eq!(token.token_type, TokenType::Dpop);

    // One 503 first, so the create is sent twice: each attempt must carry its own proof.
    proxy.inject(Some("POST"), "/payments", 1, Injected::status(503, "{}"));
    let created = client.create("payments", &object(json!({"amount": 5})), "dpop-1").await.unwrap();
    let got = client.get("payments", &created.id).await.unwrap();
    let patched =
        client.patch("payments", &got.id, &object(json!({"amount": 6})), &got.etag).await.unwrap();
    assert_eq!(patched.body["amount"], 6);
    let page = client
        .list("payments", &ListQuery { filter: Some(json!({"amount": 6})), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    client.delete("payments", &patched.id, &patched.etag).await.unwrap();
    assert!(platform.items("payments").is_empty());

    let seen = proxy.stats.seen("/payments");
    assert_eq!(seen.len(), 6);
    let mut proofs = std::collections::HashSet::new();
    for request in &seen {
        assert!(request.headers["authorization"].starts_with("DPoP "), "{:?}", request.headers);
        assert!(proofs.insert(request.headers["dpop"].clone()), "a proof was reused");
    }
    let token_request = &proxy.stats.seen("/auth/token")[0];
    assert!(token_request.headers.contains_key("dpop"));
    assert_eq!(platform.token_requests(), 1);
}

#[tokio::test]
async fn es384_and_es512_client_keys_authenticate() {
    for alg in [JwsAlgorithm::Es384, JwsAlgorithm::Es512] {
        let key = SigningKey::generate(alg);
        let registered = key.clone();
        let platform = Platform::start_with(move |c| {
            c.clients = vec![registration(CLIENT_ID, &CAPABILITIES, &registered)];
        })
        .await;
        let mut credentials = platform.credentials(&platform.url);
        credentials.key = key;
        let client = build_client(fast_config(&platform.url), credentials);
        client.list("payments", &ListQuery::default()).await.unwrap();
    }
}

#[tokio::test]
async fn token_endpoint_5xx_is_retried_then_reported_unavailable() {
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let client = platform.client(&proxy.url);
    let unavailable = r#"{"error":"server_error","error_description":"auth service unavailable"}"#;
    proxy.inject(Some("POST"), "/auth/token", 2, Injected::status(503, unavailable));
    client.list("payments", &ListQuery::default()).await.unwrap();
    assert_eq!(proxy.stats.token_requests(), 3);

    // Always unavailable: the sandbox's own fault knob, applied to the token endpoint.
    platform.set_faults(intake_api::sandbox::Faults {
        error_rate: 1.0,
        include_token_endpoint: true,
        ..Default::default()
    });
    let fresh = platform.client(&platform.url);
    let err = fresh.list("payments", &ListQuery::default()).await.unwrap_err();
    let ApiError::Auth(AuthError::Unavailable { attempts: 4, .. }) = &err else {
        panic!("{err:?}")
    };
    assert!(err.is_retryable());
}

#[tokio::test]
async fn refusals_the_client_cannot_provoke_still_map_to_their_variants() {
    // Our client never sends a malformed request or a bad DPoP proof, so these two answers are
    // scripted (in the spec's exact shape) in front of the sandbox.
    let platform = Platform::start().await;
    let proxy = Proxy::start(platform.url.clone()).await;
    let cases = [
        (
            400,
            "invalid_request",
            "client_assertion_type must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
        ),
        (401, "invalid_dpop_proof", "DPoP proof htu does not match"),
    ];
    for (status, code, description) in cases {
        let body = json!({"error": code, "error_description": description}).to_string();
        proxy.inject(Some("POST"), "/auth/token", 1, Injected::status(status, &body));
        let client = platform.client(&proxy.url);
        let err = client.tokens().token().await.unwrap_err();
        match (code, &err) {
            ("invalid_request", AuthError::InvalidRequest { description: d })
            | ("invalid_dpop_proof", AuthError::InvalidDpopProof { description: d }) => {
                assert_eq!(d, description);
            }
            _ => panic!("{code}: {err:?}"),
        }
        assert_eq!(err.domain(), intake_engine::m2m::ErrorDomain::Internal);
    }
}
