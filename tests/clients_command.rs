//! End-to-end: `intake clients` manages a clients file (add, list without key material,
//! rotate-key with an overlap, remove, and clear refusals), and `intake api --clients` issues a
//! token to a client of that file that its REST routes then accept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use common::ListeningProcess;
use intake_engine::m2m::jws::{self, JwsAlgorithm, SigningKey};
use serde_json::{Map, Value, json};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Runs `intake ARGS…` to completion.
fn intake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intake")).args(args).output().expect("intake runs")
}

/// Asserts success and returns stdout.
fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "intake failed:\n{stdout}\n{stderr}");
    stdout
}

/// Asserts failure and returns stderr.
fn refused(output: &Output) -> String {
    assert!(!output.status.success(), "intake should have refused");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A new key pair: the private key, and its public half written to `dir/name.pem`.
fn key_pair(dir: &Path, name: &str, alg: JwsAlgorithm) -> (SigningKey, String) {
    let key = SigningKey::generate(alg);
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, key.verifying_key().to_pem().unwrap()).unwrap();
    (key, path.to_str().unwrap().to_owned())
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn intake_clients_adds_lists_rotates_and_removes_clients() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clients.json");
    let f = file.to_str().unwrap();
    let (_k1, pub1) = key_pair(dir.path(), "k1", JwsAlgorithm::Es256);
    let (_k2, pub2) = key_pair(dir.path(), "k2", JwsAlgorithm::Es384);

    // add creates the file.
    let add = |id: &str, tenant: &str, kid: &str, key: &str| {
        intake(&[
            "clients",
            "--file",
            f,
            "add",
            "--client-id",
            id,
            "--tenant",
            tenant,
            "--capability",
            "imports/templates:list",
            "--capability",
            "imports/templates:read",
            "--kid",
            kid,
            "--public-key",
            key,
        ])
    };
    ok(&add("acme", TENANT, "k1", &pub1));
    let doc = read(&file);
    assert_eq!(doc["clients"][0]["client_id"], "acme");
    assert!(doc["clients"][0]["keys"][0].get("active_until").is_none());

    // Refusals, each saying what is wrong; the file is left as it was.
    let before = std::fs::read_to_string(&file).unwrap();
    assert!(refused(&add("acme", TENANT, "k9", &pub1)).contains("already registered"));
    assert!(refused(&add("b", "64A1B2", "k1", &pub1)).contains("24 lowercase hex"));
    assert!(refused(&add("b", TENANT, "../etc", &pub1)).contains("not a valid key id"));
    let private = dir.path().join("private.pem");
    std::fs::write(&private, SigningKey::generate(JwsAlgorithm::Es256).to_pkcs8_pem().unwrap())
        .unwrap();
    let err = refused(&add("b", TENANT, "k1", private.to_str().unwrap()));
    assert!(err.contains("private key"), "{err}");
    assert!(!err.contains("BEGIN"), "no key material in errors: {err}");
    let not_a_key = dir.path().join("garbage.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let err = refused(&add("b", TENANT, "k1", not_a_key.to_str().unwrap()));
    assert!(err.contains("not an EC P-256, P-384 or P-521 public key"), "{err}");
    let err = refused(&intake(&["clients", "--file", f, "remove", "--client-id", "nobody"]));
    assert!(err.contains("no client 'nobody'"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // list: a table, no key material.
    ok(&add("second", "0123456789abcdef01234567", "s1", &pub2));
    let list = ok(&intake(&["clients", "--file", f, "list"]));
    assert!(list.contains("CLIENT ID"), "{list}");
    assert!(list.lines().any(|l| l.starts_with("acme ") && l.contains(TENANT) && l.contains("k1")));
    assert!(list.contains("second"), "{list}");
    assert!(!list.contains("BEGIN") && !list.contains("MFkw"), "key material listed: {list}");

    // rotate-key: the new key is added, the old one gets active_until.
    ok(&intake(&[
        "clients",
        "--file",
        f,
        "rotate-key",
        "--client-id",
        "acme",
        "--kid",
        "k2",
        "--public-key",
        &pub2,
        "--overlap-seconds",
        "3600",
    ]));
    let doc = read(&file);
    let keys = doc["clients"][0]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], "k1");
    let until = keys[0]["active_until"].as_str().expect("the old key has active_until");
    assert!(chrono::DateTime::parse_from_rfc3339(until).is_ok(), "{until}");
    assert_eq!(keys[1]["kid"], "k2");
    assert!(keys[1].get("active_until").is_none());
    let list = ok(&intake(&["clients", "--file", f, "list"]));
    assert!(list.contains(&format!("k1 (until {until})")), "{list}");
    // The same kid twice is refused.
    let err = refused(&intake(&[
        "clients",
        "--file",
        f,
        "rotate-key",
        "--client-id",
        "acme",
        "--kid",
        "k2",
        "--public-key",
        &pub2,
    ]));
    assert!(err.contains("already has a key 'k2'"), "{err}");

    // remove.
    ok(&intake(&["clients", "--file", f, "remove", "--client-id", "acme"]));
    let doc = read(&file);
    let ids: Vec<&str> = doc["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["second"]);
}

#[tokio::test]
async fn intake_api_issues_tokens_to_clients_of_its_clients_file() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clients.json");
    let f = file.to_str().unwrap();
    let (key, public) = key_pair(dir.path(), "ops", JwsAlgorithm::Es256);
    ok(&intake(&[
        "clients",
        "--file",
        f,
        "add",
        "--client-id",
        "ops-portal",
        "--tenant",
        TENANT,
        "--capability",
        "imports/templates:list",
        "--kid",
        "ops-1",
        "--public-key",
        &public,
    ]));
    let token_key = dir.path().join("token-key.pem");
    let state = dir.path().join("state.sqlite");
    let server = ListeningProcess::start_with(&[
        "api",
        "--port",
        "0",
        "--state",
        state.to_str().unwrap(),
        "--clients",
        f,
        "--token-key",
        token_key.to_str().unwrap(),
    ]);
    // The generated signing key is private to its owner.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({
        "iss": "ops-portal", "sub": "ops-portal", "aud": format!("{}/auth/token", server.url),
        "jti": format!("jti-{now}"), "iat": now, "exp": now + 120,
    });
    let mut header = Map::new();
    header.insert("kid".into(), json!("ops-1"));
    let assertion = jws::sign(header, &claims, &key).unwrap();
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/auth/token", server.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
            ("client_id", "ops-portal"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert!(!std::fs::read_to_string(&token_key).unwrap().is_empty());

    let response = http
        .get(format!("{}/imports/templates", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // Without a token the REST layer still refuses.
    let response = http.get(format!("{}/imports/templates", server.url)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    server.terminate();

    // Neither --issuers nor --clients: a clear refusal.
    let err = refused(&intake(&["api", "--port", "0", "--state", state.to_str().unwrap()]));
    assert!(err.contains("--issuers") && err.contains("--clients"), "{err}");
}
