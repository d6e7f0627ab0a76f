//! End-to-end through the built `intake check`: the `jq` mapper and `pre_transform` (evaluated in
//! `intake jq-worker` processes), the built-in `normalize_personnummer` plugin and an external
//! Python mapper plugin (`fixtures/plugins/club_codes`) reshape the rows of one file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)
}

/// `intake check --format json --include-valid` of `file` with `template`.
fn check(template: &Value, file: &Path, plugin_dir: &Path) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("template.json");
    std::fs::write(&path, template.to_string()).expect("write");
    Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["check", "--format", "json", "--include-valid", "--template"])
        .arg(&path)
        .arg(file)
        .env("INTAKE_PLUGIN_DIR", plugin_dir)
        .output()
        .expect("intake runs")
}

fn members_template() -> Value {
    let text = std::fs::read_to_string(fixture("jq-members/template.json")).expect("template");
    serde_json::from_str(&text).expect("json")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Valid rows (row → data), rejected rows (row → [(rule, message)]) and the summary.
type Report = (Vec<(u64, Value)>, Vec<(u64, Vec<(String, String)>)>, Value);

fn report(output: &Output) -> Report {
    let mut valid = Vec::new();
    let mut rejected = Vec::new();
    let mut summary = Value::Null;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let line: Value = serde_json::from_str(line).expect("JSON line");
        let row = line["row_number"].as_u64().unwrap_or(0);
        if let Some(data) = line.get("data") {
            valid.push((row, data.clone()));
        } else if let Some(errors) = line["errors"].as_array() {
            let errors = errors
                .iter()
                .map(|e| {
                    let rule = format!("{}.{}", e["layer"].as_str().unwrap_or(""), e["rule"]);
                    (rule.replace('"', ""), e["message"].as_str().unwrap_or("").to_owned())
                })
                .collect();
            rejected.push((row, errors));
        } else {
            summary = line["summary"].clone();
        }
    }
    (valid, rejected, summary)
}

#[test]
fn jq_and_plugin_mappers_reshape_members_and_reject_only_the_rows_they_cannot_map() {
    let output =
        check(&members_template(), &fixture("jq-members/members.csv"), &fixture("plugins"));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (valid, rejected, summary) = report(&output);
    assert_eq!(
        valid,
        [
            (
                2,
                json!({"member_id": 1001, "name": "Anna Åberg", "personnummer": "19811228-9874",
                       "club_code": "MFF", "fee": 450.0, "tags": ["styrelse", "ungdom"]})
            ),
            (
                3,
                json!({"member_id": 1002, "name": "Björn Ekström",
                       "personnummer": "19670919-9530", "club_code": "IFKG", "fee": 300.5,
                       "tags": []})
            ),
        ]
    );
    let rules: Vec<(u64, &str)> =
        rejected.iter().map(|(row, errors)| (*row, errors[0].0.as_str())).collect();
    assert_eq!(rules, [(4, "mapping.jq"), (5, "mapping.plugin"), (6, "mapping.plugin")]);
    assert!(rejected[0].1[0].1.contains("cannot parse \\\"abc\\\""), "{:?}", rejected[0]);
    assert!(rejected[1].1[0].1.contains("'811218-0000' is not a valid"), "{:?}", rejected[1]);
    assert!(rejected[2].1[0].1.contains("no club named 'Okänd klubb'"), "{:?}", rejected[2]);
    assert_eq!(summary["rows_read"], 5);
}

#[test]
fn a_jq_expression_that_never_ends_costs_only_its_row() {
    let mut template = members_template();
    // Row 3 (Björn) loops forever; row 2 recurses without end; the others are mapped.
    template["mapping"][0]["config"]["expression"] = json!(
        "if .Medlemsnr == \"1002\" then (def f: f; f) \
         elif .Medlemsnr == \"1001\" then (def g: 1 + g; g) \
         else {member_id: (.Medlemsnr | tonumber), name: .Efternamn} end"
    );
    template["mapping"][0]["config"]["fields"] = json!(["member_id", "name"]);
    template["mapping"][0]["config"]["timeout_ms"] = json!(300);
    template["mapping"].as_array_mut().expect("mapping").truncate(1);
    template["validation"] = json!({});
    let output = check(&template, &fixture("jq-members/members.csv"), &fixture("plugins"));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (valid, rejected, _) = report(&output);
    let valid_rows: Vec<u64> = valid.iter().map(|(row, _)| *row).collect();
    assert_eq!(valid_rows, [4, 5, 6]);
    assert_eq!(valid[0].1, json!({"member_id": 1003, "name": "Li"}));
    let rejected_rows: Vec<(u64, &str)> =
        rejected.iter().map(|(row, errors)| (*row, errors[0].0.as_str())).collect();
    assert_eq!(rejected_rows, [(2, "mapping.jq"), (3, "mapping.jq")]);
    assert!(rejected[1].1[0].1.contains("did not finish within 300 ms"), "{:?}", rejected[1]);
    // Unbounded recursion ends the worker (stack or time), never intake itself.
    let recursion = &rejected[0].1[0].1;
    assert!(
        recursion.contains("ended its worker") || recursion.contains("did not finish"),
        "{recursion}"
    );
}

#[test]
fn pre_transform_rewrites_cells_before_the_mapping_and_may_only_use_the_files_columns() {
    let mut template = members_template();
    template["pre_transform"] = json!(".Klubb |= ascii_upcase | .Extra = \"x\"");
    let output = check(&template, &fixture("jq-members/members.csv"), &fixture("plugins"));
    let (valid, rejected, _) = report(&output);
    assert!(valid.is_empty(), "{valid:?}");
    assert_eq!(rejected.len(), 5);
    let (rule, message) = &rejected[0].1[0];
    assert_eq!(rule, "mapping.undeclared_field");
    assert!(
        message.starts_with("pre_transform produced field it may not produce: 'Extra'"),
        "{message}"
    );

    // Without the stray column, the upper-cased club names still find their codes, and the
    // untrimmed " Anna " shows that this pre_transform replaced the template's trimming one.
    template["pre_transform"] = json!(".Klubb |= ascii_upcase");
    let output = check(&template, &fixture("jq-members/members.csv"), &fixture("plugins"));
    let (valid, _, _) = report(&output);
    assert_eq!(valid[0].1["name"], " Anna  Åberg");
    assert_eq!(valid[0].1["club_code"], "MFF");
}

#[test]
fn a_jq_syntax_error_is_a_template_error_with_its_position() {
    let mut template = members_template();
    template["mapping"][0]["config"]["expression"] =
        json!("{member_id: .Medlemsnr,\n name: (.x | }");
    let output = check(&template, &fixture("jq-members/members.csv"), &fixture("plugins"));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("/mapping/0/config/expression"), "{err}");
    assert!(err.contains("line 2, column"), "{err}");
}

#[test]
fn a_mapper_plugin_that_crashes_fails_the_file_with_its_stderr() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("club_codes");
    std::fs::write(
        &script,
        "#!/bin/sh\nread line\necho '{\"row\": {\"member_id\": 1, \"club_code\": \"X\"}}'\n\
         read line\necho 'lookup table missing' >&2\nexit 4\n",
    )
    .expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let output = check(&members_template(), &fixture("jq-members/members.csv"), dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stdout));
    let err = stderr(&output);
    assert!(err.contains("mapper plugin 'club_codes' failed at row 3"), "{err}");
    assert!(err.contains("exit status: 4"), "{err}");
    assert!(err.contains("lookup table missing"), "{err}");
}

#[test]
fn a_built_in_validation_plugin_compares_two_fields_of_a_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("licences.csv");
    std::fs::write(
        &file,
        "licence,valid_from,valid_to\nA1,2026-01-01,2026-12-31\nA2,2026-06-01,2026-05-31\nA3,2026-01-01,\n",
    )
    .expect("write");
    let template = json!({
        "name": "licences", "file_type": "csv", "target_resource": "licences", "locale": "sv",
        "mapping": [{"type": "field_mapping", "config": {"fields": [
            {"target": "licence", "source": "licence"},
            {"target": "valid_from", "source": "valid_from", "cast": "date"},
            {"target": "valid_to", "source": "valid_to", "cast": "date"}
        ]}}],
        "validation": {"plugins": [{"type": "builtin", "name": "compare_fields",
            "options": {"left": "valid_to", "op": "gte", "right": "valid_from"}}]}
    });
    let output = check(&template, &file, dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (valid, rejected, _) = report(&output);
    let valid_rows: Vec<u64> = valid.iter().map(|(row, _)| *row).collect();
    assert_eq!(valid_rows, [2, 4]);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, 3);
    assert_eq!(
        rejected[0].1,
        [(
            "plugins.compare_fields".to_owned(),
            "'valid_to' (2026-05-31) ska vara minst 'valid_from' (2026-06-01)".to_owned()
        )]
    );

    let mut unknown = template;
    unknown["validation"]["plugins"][0]["name"] = json!("no_such_plugin");
    let output = check(&unknown, &file, dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no built-in validation plugin 'no_such_plugin'"),
        "{}",
        stderr(&output)
    );
}
