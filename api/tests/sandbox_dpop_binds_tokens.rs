//! DPoP (RFC 9449) against the sandbox: a proof on the token request binds the token
//! (`token_type: "DPoP"`, `cnf.jkt`), and every call with it needs a matching, fresh proof.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use intake_engine::m2m::jws::{self, JwsAlgorithm, SigningKey};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// A DPoP proof's parts, each overridable.
struct Proof<'a> {
    key: &'a SigningKey,
    method: &'a str,
    url: String,
    token: Option<&'a str>,
    jti: String,
    iat: u64,
    typ: &'a str,
}

impl<'a> Proof<'a> {
    fn new(key: &'a SigningKey, method: &'a str, url: String, token: Option<&'a str>) -> Self {
        Proof { key, method, url, token, jti: unique(), iat: now(), typ: "dpop+jwt" }
    }

    fn sign(&self) -> String {
        let mut header = Map::new();
        header.insert("typ".into(), json!(self.typ));
        header.insert("jwk".into(), self.key.verifying_key().to_jwk());
        let mut claims =
            json!({"jti": self.jti, "htm": self.method, "htu": self.url, "iat": self.iat});
        if let Some(token) = self.token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        jws::sign(header, &claims, self.key).unwrap()
    }
}

/// A DPoP-bound token for the standard client, with its proof key.
async fn bound_token(
    served: &Served,
    client: &TestClient,
    alg: JwsAlgorithm,
) -> (String, SigningKey) {
    let key = SigningKey::generate(alg);
    let proof = Proof::new(&key, "POST", served.token_url(), None).sign();
    let response = served
        .token_request(Some(&client.client_id), &served.assertion(client), None, Some(&proof))
        .await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = jws::decode(&token).unwrap().claims;
    assert_eq!(claims["cnf"]["jkt"], key.verifying_key().thumbprint());
    (token, key)
}

async fn call(
    served: &Served,
    method: reqwest::Method,
    path: &str,
    auth: &str,
    proof: Option<String>,
) -> reqwest::Response {
    let mut request = served.http.request(method, served.url(path)).header("Authorization", auth);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

async fn assert_dpop_refused(response: reqwest::Response) {
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("DPoP "));
    let body = json_with_status(response, 401).await;
    assert_eq!(body["detail"]["error"], "invalid_dpop_proof", "{body}");
}

#[tokio::test]
async fn a_bound_token_works_with_a_matching_proof_for_every_curve() {
    let (served, client) = standard().await;
    for alg in JwsAlgorithm::ALL {
        let (token, key) = bound_token(&served, &client, alg).await;
        let auth = format!("DPoP {token}");
        let url = served.url("/players/");
        let proof = Proof::new(&key, "GET", url.clone(), Some(&token)).sign();
        let response = call(&served, reqwest::Method::GET, "/players/", &auth, Some(proof)).await;
        json_with_status(response, 200).await;

        let proof = Proof::new(&key, "POST", url, Some(&token)).sign();
        let response = served
            .http
            .post(served.url("/players/"))
            .header("Authorization", &auth)
            .header("DPoP", proof)
            .json(&json!({"name": "Ada"}))
            .send()
            .await
            .unwrap();
        json_with_status(response, 201).await;
    }
}

#[tokio::test]
async fn the_query_string_is_not_part_of_htu() {
    let (served, client) = standard().await;
    let (token, key) = bound_token(&served, &client, JwsAlgorithm::Es256).await;
    let proof = Proof::new(&key, "GET", served.url("/players/"), Some(&token)).sign();
    let response = call(
        &served,
        reqwest::Method::GET,
        "/players/?page=1&per_page=5",
        &format!("DPoP {token}"),
        Some(proof),
    )
    .await;
    json_with_status(response, 200).await;
}

#[tokio::test]
async fn a_bound_token_sent_as_bearer_or_without_a_proof_is_refused() {
    let (served, client) = standard().await;
    let (token, key) = bound_token(&served, &client, JwsAlgorithm::Es256).await;
    let proof = Proof::new(&key, "GET", served.url("/players/"), Some(&token)).sign();
    assert_dpop_refused(
        call(&served, reqwest::Method::GET, "/players/", &format!("Bearer {token}"), Some(proof))
            .await,
    )
    .await;
    assert_dpop_refused(
        call(&served, reqwest::Method::GET, "/players/", &format!("DPoP {token}"), None).await,
    )
    .await;
}

#[tokio::test]
async fn proofs_with_the_wrong_method_url_or_token_hash_are_refused() {
    let (served, client) = standard().await;
    let (token, key) = bound_token(&served, &client, JwsAlgorithm::Es256).await;
    let auth = format!("DPoP {token}");
    let url = served.url("/players/");
    let other_token = "eyJhbGciOiJFUzUxMiJ9.e30.AAAA";
    let bad = [
        Proof::new(&key, "POST", url.clone(), Some(&token)).sign(),
        Proof::new(&key, "GET", served.url("/payments/"), Some(&token)).sign(),
        Proof::new(&key, "GET", url.replace("http://", "https://"), Some(&token)).sign(),
        Proof::new(&key, "GET", url.clone(), Some(other_token)).sign(),
        Proof::new(&key, "GET", url.clone(), None).sign(),
    ];
    for proof in bad {
        assert_dpop_refused(
            call(&served, reqwest::Method::GET, "/players/", &auth, Some(proof)).await,
        )
        .await;
    }
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let (served, client) = standard().await;
    let (token, key) = bound_token(&served, &client, JwsAlgorithm::Es256).await;
    let auth = format!("DPoP {token}");
    let proof = Proof::new(&key, "GET", served.url("/players/"), Some(&token)).sign();
    let first = call(&served, reqwest::Method::GET, "/players/", &auth, Some(proof.clone())).await;
    json_with_status(first, 200).await;
    assert_dpop_refused(call(&served, reqwest::Method::GET, "/players/", &auth, Some(proof)).await)
        .await;
}

#[tokio::test]
async fn stale_mistyped_foreign_key_and_private_jwk_proofs_are_refused() {
    let (served, client) = standard().await;
    let (token, key) = bound_token(&served, &client, JwsAlgorithm::Es256).await;
    let auth = format!("DPoP {token}");
    let url = served.url("/players/");

    let mut stale = Proof::new(&key, "GET", url.clone(), Some(&token));
    stale.iat = now() - 300;
    let mut future = Proof::new(&key, "GET", url.clone(), Some(&token));
    future.iat = now() + 300;
    let mut mistyped = Proof::new(&key, "GET", url.clone(), Some(&token));
    mistyped.typ = "JWT";
    let other_key = SigningKey::generate(JwsAlgorithm::Es256);
    let foreign = Proof::new(&other_key, "GET", url.clone(), Some(&token));
    for proof in [stale.sign(), future.sign(), mistyped.sign(), foreign.sign(), "garbage".into()] {
        assert_dpop_refused(
            call(&served, reqwest::Method::GET, "/players/", &auth, Some(proof)).await,
        )
        .await;
    }

    // A proof whose jwk carries the private key is refused.
    let mut header = Map::new();
    header.insert("typ".into(), json!("dpop+jwt"));
    let mut jwk = key.verifying_key().to_jwk();
    jwk["d"] = json!("AAAA");
    header.insert("jwk".into(), jwk);
    let claims = json!({"jti": unique(), "htm": "GET", "htu": url, "iat": now(),
        "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))});
    let proof = jws::sign(header, &claims, &key).unwrap();
    assert_dpop_refused(call(&served, reqwest::Method::GET, "/players/", &auth, Some(proof)).await)
        .await;
}

#[tokio::test]
async fn a_bad_proof_on_the_token_request_is_invalid_dpop_proof() {
    let (served, client) = standard().await;
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    for proof in [
        Proof::new(&key, "GET", served.token_url(), None).sign(),
        Proof::new(&key, "POST", served.url("/auth/other"), None).sign(),
        "not-a-proof".to_owned(),
    ] {
        let response = served
            .token_request(Some(&client.client_id), &served.assertion(&client), None, Some(&proof))
            .await;
        let body: Value = json_with_status(response, 401).await;
        assert_eq!(body["error"], "invalid_dpop_proof");
    }
}

#[tokio::test]
async fn an_unbound_token_cannot_use_the_dpop_scheme() {
    let (served, client) = standard().await;
    let token = served.token(&client).await;
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let proof = Proof::new(&key, "GET", served.url("/players/"), Some(&token)).sign();
    let response =
        call(&served, reqwest::Method::GET, "/players/", &format!("DPoP {token}"), Some(proof))
            .await;
    let body = json_with_status(response, 401).await;
    assert_eq!(body["detail"]["error"], "invalid_token");
}
