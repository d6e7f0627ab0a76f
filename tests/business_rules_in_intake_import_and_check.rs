//! End-to-end: the built `intake sandbox` on a real socket holds clubs; the built `intake import`
//! and `intake check` look each row's club up in it (validation layer 4), and `intake check`
//! without the platform refuses business rules unless told to skip them.

// A failed set-up step or expectation should panic right there.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::SandboxProcess;
use intake_engine::m2m::jws::SigningKey;
use intake_engine::m2m::{ApiClient, ClientConfig, ClientCredentials, TokenManager};
use serde_json::{Value, json};

const TENANT: &str = "64a1b2c3d4e5f6789012abcd";

/// Creates `clubs` in the sandbox through the M2M API, as the demo integration.
fn seed_clubs(sandbox: &SandboxProcess, clubs: &[Value]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base = url::Url::parse(&sandbox.url).unwrap();
    let mut config = ClientConfig::new(base.clone());
    config.tenant_id = Some(TENANT.to_owned());
    runtime.block_on(async {
        let http = ApiClient::http_client(&config).unwrap();
        let key = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sandbox/demo-client.key.pem"),
        )
        .unwrap();
        let credentials = ClientCredentials {
            token_url: base.join("auth/token").unwrap(),
            client_id: "demo-integration".to_owned(),
            kid: "demo-2026".to_owned(),
            key: SigningKey::from_pem(&key).unwrap(),
            scopes: vec!["clubs:create".to_owned()],
            dpop_key: None,
        };
        let client = ApiClient::new(config, TokenManager::new(http.clone(), credentials), http);
        for (i, club) in clubs.iter().enumerate() {
            let Value::Object(body) = club else { panic!("not an object") };
            client.create("clubs", body, &format!("seed-club-{i}")).await.unwrap();
        }
    });
}

fn intake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("intake runs")
}

fn platform_args(sandbox: &SandboxProcess) -> Vec<String> {
    [
        "--target",
        &sandbox.url,
        "--client-id",
        "demo-integration",
        "--kid",
        "demo-2026",
        "--key",
        "file:fixtures/sandbox/demo-client.key.pem",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn intake_import_and_check_look_each_rows_club_up_in_the_platform() {
    let sandbox = SandboxProcess::start();
    seed_clubs(
        &sandbox,
        &[
            json!({"code": "C001", "status": "active"}),
            json!({"code": "C002", "status": "active"}),
            json!({"code": "C003", "status": "dissolved"}),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("registrations.json");
    std::fs::write(
        &template,
        json!({
            "name": "registrations",
            "file_type": "csv",
            "target_resource": "players",
            "import_mode": "create",
            "locale": "sv",
            "field_mapping": [
                {"source": "name", "target": "name"},
                {"source": "club", "target": "club_code"}
            ],
            "validation": {
                "schema": {"type": "object", "required": ["name"]},
                "business_rules": [
                    {"type": "exists", "resource": "clubs", "where": {"code": "club_code"},
                     "compare": [{"record_field": "status", "op": "eq", "value": "active"}]}
                ]
            }
        })
        .to_string(),
    )
    .unwrap();
    let file = dir.path().join("registrations.csv");
    std::fs::write(&file, "name,club\nAnna,C001\nBjörn,C404\nChen,C003\nDana,C002\nEva,\n")
        .unwrap();
    let (template, file) = (template.to_str().unwrap(), file.to_str().unwrap());

    // No platform: refused, saying how to go on.
    let refused = intake(&["check", "-t", template, file]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("business_rules") && stderr.contains("--skip-business-rules"),
        "{stderr}"
    );

    // Skipped on request: every row passes, and the summary says what was not checked.
    let skipped = intake(&["check", "-t", template, "--skip-business-rules", file]);
    assert_eq!(skipped.status.code(), Some(0), "{}", String::from_utf8_lossy(&skipped.stderr));
    let stdout = String::from_utf8_lossy(&skipped.stdout);
    assert!(stdout.contains("skipped:   business rules"), "{stdout}");

    // Checked against the sandbox: exactly the missing and the dissolved club are rejected.
    let mut args = vec!["check", "-t", template, "--format", "json"];
    let platform = platform_args(&sandbox);
    args.extend(platform.iter().map(String::as_str));
    args.push(file);
    let checked = intake(&args);
    assert_eq!(checked.status.code(), Some(1), "{}", String::from_utf8_lossy(&checked.stderr));
    let lines = json_lines(&checked);
    let (rows, summary) = lines.split_at(lines.len() - 1);
    let summary = &summary[0]["summary"];
    assert_eq!((summary["valid"].clone(), summary["rejected"].clone()), (json!(3), json!(2)));
    assert_eq!(summary["business_rule_requests"], 1);
    let errors: Vec<(u64, Value, Value, Value)> = rows
        .iter()
        .map(|row| {
            let error = &row["errors"][0];
            assert_eq!(error["layer"], "business_rules");
            (
                row["row_number"].as_u64().unwrap(),
                error["rule"].clone(),
                error["value"].clone(),
                error["message"].clone(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            (
                3,
                json!("exists"),
                json!("C404"),
                json!(
                    "det finns ingen post i 'clubs' med code 'C404': kontrollera värdet, eller \
                     skapa posten i plattformen först"
                )
            ),
            (
                4,
                json!("compare"),
                json!("C003"),
                json!(
                    "posten i 'clubs' med code 'C003' har status 'dissolved', men det ska vara \
                     'active'"
                )
            ),
        ]
    );
    assert_eq!(sandbox.total("players"), 0, "check writes nothing");

    // Imported: the three good rows are written; the scopes asked for include clubs:list.
    let mut args = vec!["import", "-t", template, "--format", "json"];
    args.extend(platform.iter().map(String::as_str));
    args.push(file);
    let imported = intake(&args);
    assert_eq!(imported.status.code(), Some(1), "{}", String::from_utf8_lossy(&imported.stderr));
    let lines = json_lines(&imported);
    let summary = &lines[lines.len() - 1]["summary"];
    assert_eq!(summary["check"]["rejected"], 2);
    assert_eq!(summary["check"]["business_rule_requests"], 1);
    assert_eq!(summary["write"]["created"], 3);
    assert_eq!(summary["write"]["failure"], Value::Null);
    let rejected: Vec<u64> =
        lines[..lines.len() - 1].iter().map(|l| l["row_number"].as_u64().unwrap()).collect();
    assert_eq!(rejected.len(), 2);
    assert!(rejected.contains(&3) && rejected.contains(&4));
    assert_eq!(sandbox.total("players"), 3);
}
