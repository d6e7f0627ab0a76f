//! End-to-end: the built `intake sandbox` serves the platform API on a real socket and the built
//! `intake import` writes a fixture file into it — once, and a second run changes nothing.

mod common;

use std::process::{Command, Output};

use common::SandboxProcess;
use serde_json::Value;

fn import(sandbox: &SandboxProcess, template: &str, file: &str) -> Output {
    import_command(sandbox, template, file).output().expect("intake import runs")
}

/// `intake import` of `file` with `template` into the sandbox, as the demo integration.
fn import_command(sandbox: &SandboxProcess, template: &str, file: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_intake"));
    command
        .args([
            "import",
            "--template",
            template,
            "--target",
            &sandbox.url,
            "--client-id",
            "demo-integration",
            "--kid",
            "demo-2026",
            "--key",
            "file:fixtures/sandbox/demo-client.key.pem",
            "--format",
            "json",
            file,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn summary(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!("no output; stderr: {}", String::from_utf8_lossy(&output.stderr))
    });
    serde_json::from_str::<Value>(last).expect("JSON summary")["summary"].clone()
}

#[test]
fn importing_a_file_twice_writes_its_valid_rows_once() {
    let sandbox = SandboxProcess::start();
    let template = "fixtures/member-register/template.json";
    let file = "fixtures/member-register/input.csv";

    let first = import(&sandbox, template, file);
    assert_eq!(first.status.code(), Some(1), "{}", String::from_utf8_lossy(&first.stderr));
    let report = summary(&first);
    assert_eq!(report["check"]["valid"], 6);
    assert_eq!(report["check"]["rejected"], 8);
    assert_eq!(report["write"]["created"], 6);
    assert_eq!(report["write"]["failure"], Value::Null);

    let second = import(&sandbox, template, file);
    let report = summary(&second);
    assert_eq!(report["write"]["created"], 0);
    assert_eq!(report["write"]["unchanged"], 6);
    // One $in look-up for the six keys, nothing else.
    assert_eq!(report["write"]["requests"], 1);
}

#[test]
fn a_key_that_cannot_be_resolved_is_a_clear_error_without_the_secret() {
    let sandbox = SandboxProcess::start();
    let output = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args([
            "import",
            "-t",
            "fixtures/member-register/template.json",
            "--target",
            &sandbox.url,
            "--client-id",
            "demo-integration",
            "--kid",
            "demo-2026",
            "--key",
            "env:INTAKE_TEST_NO_SUCH_VARIABLE",
            "fixtures/member-register/input.csv",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INTAKE_TEST_NO_SUCH_VARIABLE"), "{stderr}");
}

#[test]
fn the_templates_tenant_is_sent_and_a_foreign_one_fails_the_run() {
    let sandbox = SandboxProcess::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut template: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/member-register/template.json"),
        )
        .expect("fixture"),
    )
    .expect("json");
    let file = "fixtures/member-register/input.csv";

    template["tenant_id"] = Value::from("64a1b2c3d4e5f6789012abcd");
    let own = dir.path().join("own-tenant.json");
    std::fs::write(&own, template.to_string()).expect("write");
    let output = import(&sandbox, &own.display().to_string(), file);
    assert_eq!(summary(&output)["write"]["created"], 6);

    template["tenant_id"] = Value::from("ffffffffffffffffffffffff");
    let foreign = dir.path().join("foreign-tenant.json");
    std::fs::write(&foreign, template.to_string()).expect("write");
    let output = import(&sandbox, &foreign.display().to_string(), file);
    assert_eq!(output.status.code(), Some(2));
    let report = summary(&output);
    assert_eq!(report["write"]["created"], 0);
    let failure = report["write"]["failure"].as_str().unwrap_or_default();
    assert!(failure.contains("403") || failure.to_lowercase().contains("tenant"), "{failure}");
}

#[test]
fn rows_reshaped_by_jq_and_plugin_mappers_are_written_to_the_platform() {
    let sandbox = SandboxProcess::start();
    let output = import_command(
        &sandbox,
        "fixtures/jq-members/template.json",
        "fixtures/jq-members/members.csv",
    )
    .env("INTAKE_PLUGIN_DIR", "fixtures/plugins")
    .output()
    .expect("intake import runs");
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let report = summary(&output);
    assert_eq!(
        (report["check"]["valid"].as_u64(), report["check"]["rejected"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(report["write"]["created"], 2);
    assert_eq!(report["write"]["failure"], Value::Null);
    assert_eq!(sandbox.total("players"), 2);
}
