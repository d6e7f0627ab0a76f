//! End-to-end: the built `intake` binary checks the fixture files and reports exact counts with
//! the documented exit codes (0 all valid, 1 rows rejected, 2 file or template unusable).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "common/gpg.rs"]
mod gpg;

use gpg::Gpg;

fn intake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("intake runs")
}

fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path).display().to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON report: rejected rows and the summary line.
fn json_report(output: &Output) -> (Vec<Value>, Value) {
    let mut lines: Vec<Value> = stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let summary = lines.pop().expect("a summary line")["summary"].clone();
    (lines, summary)
}

/// (row, layer.rule) for every error of every rejected row.
fn errors(rows: &[Value]) -> Vec<(u64, String)> {
    rows.iter()
        .flat_map(|row| {
            let n = row["row_number"].as_u64().expect("row number");
            row["errors"].as_array().expect("errors").iter().map(move |e| {
                (
                    n,
                    format!(
                        "{}.{}",
                        e["layer"].as_str().unwrap_or(""),
                        e["rule"].as_str().unwrap_or("")
                    ),
                )
            })
        })
        .collect()
}

#[test]
fn bank_payments_in_windows_1252_are_checked_row_by_row() {
    let output = intake(&[
        "check",
        "--template",
        &fixture("bank-payments/template.json"),
        &fixture("bank-payments/input.csv"),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    assert_eq!(summary["rows_read"], 16);
    assert_eq!(summary["valid"], 6);
    assert_eq!(summary["rejected"], 10);
    assert_eq!(
        errors(&rows),
        vec![
            (5, "row_rules.iban".to_owned()),
            (6, "mapping.cast_decimal".to_owned()),
            (7, "row_rules.one_of".to_owned()),
            (8, "row_rules.luhn".to_owned()),
            (9, "schema.required".to_owned()),
            (10, "parse.wrong_field_count".to_owned()),
            (11, "mapping.cast_date".to_owned()),
            (12, "row_rules.orgnr".to_owned()),
            (14, "row_rules.date_range".to_owned()),
            (15, "schema.exclusiveMinimum".to_owned()),
        ]
    );
    // Windows-1252 text arrives intact and the message is in the template's locale (sv).
    let ragged = &rows[5];
    assert_eq!(ragged["original_data"]["Mottagare"], "Kort rad");
    let iban = &rows[0];
    assert_eq!(iban["original_data"]["Mottagare"], "Café Östergök");
    assert_eq!(iban["errors"][0]["field"], "iban");
    assert_eq!(iban["errors"][0]["value"], "SE4550000000058398257467");
    assert!(iban["errors"][0]["message"].as_str().unwrap_or("").contains("IBAN"));
}

#[test]
fn the_member_register_survives_quoted_newlines_and_an_unterminated_quote() {
    let output = intake(&[
        "check",
        "-t",
        &fixture("member-register/template.json"),
        &fixture("member-register/input.csv"),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    assert_eq!(summary["rows_read"], 14);
    assert_eq!(summary["valid"], 6);
    assert_eq!(summary["rejected"], 8);
    assert_eq!(
        errors(&rows),
        vec![
            (8, "row_rules.personnr".to_owned()),
            (9, "schema.format".to_owned()),
            (10, "row_rules.one_of".to_owned()),
            (11, "mapping.cast_integer".to_owned()),
            (12, "row_rules.iban".to_owned()),
            (13, "row_rules.date_range".to_owned()),
            (14, "schema.required".to_owned()),
            (14, "row_rules.orgnr".to_owned()),
            (15, "parse.unterminated_quote".to_owned()),
        ]
    );
}

#[test]
fn a_text_report_lists_errors_and_counts_by_rule() {
    let output = intake(&[
        "check",
        "-t",
        &fixture("member-register/template.json"),
        &fixture("member-register/input.csv"),
        "--max-errors",
        "3",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("rows read: 14"), "{text}");
    assert!(text.contains("valid:     6"), "{text}");
    assert!(text.contains("rejected:  8"), "{text}");
    assert!(text.contains("row_rules.personnr"), "{text}");
    assert!(
        text.contains("row 8  field personal_identity_number  rule row_rules.personnr"),
        "{text}"
    );
    assert!(text.contains("6 more error(s) not listed"), "{text}");
}

#[test]
fn a_file_with_only_valid_rows_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = std::fs::read_to_string(fixture("member-register/input.csv")).expect("fixture");
    let clean: String = source.lines().take(7).map(|l| format!("{l}\n")).collect();
    let path: PathBuf = dir.path().join("clean.csv");
    std::fs::write(&path, clean).expect("write");
    let output = intake(&[
        "check",
        "-t",
        &fixture("member-register/template.json"),
        &path.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("rows read: 4"), "{}", stdout(&output));
}

#[test]
fn a_missing_required_column_makes_the_file_unusable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-email.csv");
    std::fs::write(&path, "member_id,personnummer,licence_type\n1,121212-1212,senior\n")
        .expect("write");
    let output = intake(&[
        "check",
        "-t",
        &fixture("member-register/template.json"),
        &path.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("email"), "{err}");
    assert!(err.contains("no-email.csv"), "{err}");
}

#[test]
fn an_invalid_template_lists_every_problem_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"{"name": "x", "file_type": "csv", "target_resource": "t", "delimiter": ";;",
            "import_mode": "upsert",
            "validation": {"row_rules": [{"type": "regex", "field": "a", "pattern": "("}]}}"#,
    )
    .expect("write");
    let output = intake(&[
        "check",
        "-t",
        &path.display().to_string(),
        &fixture("member-register/input.csv"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("/delimiter"), "{err}");
    assert!(err.contains("/upsert_key"), "{err}");
    assert!(err.contains("/validation/row_rules/0"), "{err}");
}

#[test]
fn a_misspelt_field_is_named_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("typo.json");
    std::fs::write(
        &path,
        r#"{"name": "x", "file_type": "csv", "target_resource": "t", "delimter": ";"}"#,
    )
    .expect("write");
    let output = intake(&[
        "check",
        "-t",
        &path.display().to_string(),
        &fixture("member-register/input.csv"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("delimter"), "{}", stderr(&output));
}

#[test]
fn a_setting_of_a_later_release_is_refused_not_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xslt.json");
    std::fs::write(
        &path,
        r#"{"name": "x", "file_type": "csv", "target_resource": "t",
            "mapping": [{"type": "xslt", "config": {"stylesheet": "x.xsl"}}]}"#,
    )
    .expect("write");
    let output = intake(&[
        "check",
        "-t",
        &path.display().to_string(),
        &fixture("member-register/input.csv"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("not supported yet"), "{err}");
    assert!(err.contains("/mapping/0"), "{err}");
}

#[test]
fn help_describes_every_subcommand() {
    let output = intake(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for command in ["demo", "check", "import", "sandbox", "schema", "bench"] {
        assert!(text.contains(command), "{text}");
    }
    let check = stdout(&intake(&["check", "--help"]));
    for option in ["--template", "--format", "--max-errors", "Exit code"] {
        assert!(check.contains(option), "{check}");
    }
}

#[test]
fn the_schema_command_prints_the_published_schema() {
    let output = intake(&["schema"]);
    assert_eq!(output.status.code(), Some(0));
    let printed: Value = serde_json::from_str(&stdout(&output)).expect("json");
    let published: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("template.schema.json")).expect("published schema"),
    )
    .expect("json");
    assert_eq!(printed, published);
}

#[test]
fn an_excel_sheet_is_checked_with_excel_row_numbers() {
    let output = intake(&[
        "check",
        "--template",
        &fixture("excel/template.json"),
        &fixture("excel/members.xlsx"),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    assert_eq!(summary["rows_read"], 5);
    assert_eq!(summary["valid"], 3);
    assert_eq!(summary["rejected"], 2);
    assert_eq!(
        errors(&rows),
        vec![(7, "parse.excel_error_cell".to_owned()), (8, "schema.format".to_owned())]
    );
    assert_eq!(rows[0]["original_data"]["fee"], "#DIV/0!");
    assert_eq!(rows[0]["original_data"]["joined"], "2026-03-01");
    let message = rows[0]["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("column F holds the Excel error #DIV/0!"), "{message}");
}

#[test]
fn a_workbook_that_is_not_one_makes_the_file_unusable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.xlsx");
    std::fs::write(&path, b"PK\x03\x04 this is not really a zip archive").expect("write");
    let output = intake(&[
        "check",
        "--template",
        &fixture("excel/template.json"),
        &path.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(err.contains("not a readable Excel or OpenDocument workbook"), "{err}");
}

#[test]
fn the_entries_of_a_camt053_statement_are_checked_as_records() {
    let output = intake(&[
        "check",
        "--template",
        &fixture("camt053/template.json"),
        &fixture("camt053/statement.xml"),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    assert_eq!((summary["rows_read"].as_u64(), summary["valid"].as_u64()), (Some(3), Some(2)));
    // The third entry is pending and has no transaction details.
    assert_eq!(errors(&rows), vec![(3, "schema.required".to_owned())]);
    assert_eq!(rows[0]["original_data"]["Amt.#text"], "99.00");
    assert_eq!(rows[0]["original_data"]["Amt.@Ccy"], "SEK");
}

#[test]
fn a_json_export_and_json_lines_are_checked_with_record_numbers() {
    let output = intake(&[
        "check",
        "--template",
        &fixture("json-members/template.json"),
        &fixture("json-members/members.json"),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    assert_eq!((summary["rows_read"].as_u64(), summary["valid"].as_u64()), (Some(4), Some(2)));
    assert_eq!(
        errors(&rows),
        vec![(2, "schema.format".to_owned()), (3, "parse.not_an_object".to_owned())]
    );
    assert_eq!(rows[0]["original_data"]["name.first"], "Björn");

    let output = intake(&[
        "check",
        "--template",
        &fixture("json-members/template-lines.json"),
        &fixture("json-members/members.jsonl"),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    assert_eq!((summary["rows_read"].as_u64(), summary["valid"].as_u64()), (Some(5), Some(2)));
    assert_eq!(
        errors(&rows),
        vec![
            (3, "schema.format".to_owned()),
            (4, "parse.invalid_json".to_owned()),
            (5, "parse.not_an_object".to_owned())
        ]
    );
    assert_eq!(rows[1]["original_data"]["record"], r#"{"id": 1003, "name": {"first": "Cecilia""#);
}

#[test]
fn an_xml_file_with_a_dtd_is_refused_before_any_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("laughs.xml");
    std::fs::write(
        &path,
        r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><Ntry><NtryRef>&b;</NtryRef></Ntry></Document>"#,
    )
    .expect("write");
    let output = intake(&[
        "check",
        "--template",
        &fixture("camt053/template.json"),
        &path.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stderr(&output).contains("DTD"), "{}", stderr(&output));
}

/// The JSON report of `intake check` on `file` with the bank payments template: its exit code,
/// rejected rows and summary without the file name.
fn bank_payments_report(file: &str) -> (Option<i32>, Vec<Value>, Value) {
    let output = intake(&[
        "check",
        "--template",
        &fixture("bank-payments/template.json"),
        file,
        "--format",
        "json",
    ]);
    let (rows, mut summary) = json_report(&output);
    if let Some(summary) = summary.as_object_mut() {
        summary.remove("file");
    }
    (output.status.code(), rows, summary)
}

#[test]
fn gzipped_and_zipped_files_are_checked_exactly_like_the_plain_file() {
    let plain = bank_payments_report(&fixture("bank-payments/input.csv"));
    assert_eq!(plain.0, Some(1));
    assert_eq!(plain.2["rows_read"], 16);
    assert_eq!(plain.2["rejected"], 10);
    // Made by gzip(1) (two members) and Python's zipfile: fixtures/compressed/make.sh.
    for file in ["compressed/payments.csv.gz", "compressed/payments.zip"] {
        let compressed = bank_payments_report(&fixture(file));
        assert_eq!(compressed.0, plain.0, "{file}: exit code");
        assert_eq!(compressed.2, plain.2, "{file}: summary");
        assert_eq!(errors(&compressed.1), errors(&plain.1), "{file}: rows and rules");
        assert_eq!(compressed.1, plain.1, "{file}: rejected rows");
    }
}

#[test]
fn a_truncated_gzip_file_is_unusable_with_an_error_naming_it() {
    let gz = std::fs::read(fixture("compressed/payments.csv.gz")).expect("fixture");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cut.csv.gz");
    std::fs::write(&path, &gz[..gz.len() / 3]).expect("write");
    let output = intake(&[
        "check",
        "--template",
        &fixture("bank-payments/template.json"),
        &path.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("cut.csv.gz: the gzip data is corrupt or truncated"), "{message}");
}

/// `intake check --format json --include-valid` on a BGMax sample, which must exit with
/// `code`: (rows, summary).
fn bgmax_report(file: &str, code: i32) -> (Vec<Value>, Value) {
    let output = intake(&[
        "check",
        "--template",
        &fixture("bgmax/template.json"),
        &fixture(file),
        "--format",
        "json",
        "--include-valid",
    ]);
    assert_eq!(output.status.code(), Some(code), "{}{}", stdout(&output), stderr(&output));
    json_report(&output)
}

#[test]
fn a_bgmax_file_reads_payments_with_their_continuation_lines_and_keeps_control_records() {
    let (rows, summary) = bgmax_report("bgmax/bgmax-ok.txt", 0);
    assert_eq!(summary["rows_read"], 5);
    assert_eq!(summary["valid"], 5);
    let lines: Vec<u64> = rows.iter().filter_map(|row| row["row_number"].as_u64()).collect();
    assert_eq!(lines, vec![3, 7, 11, 14, 15]);
    let first = &rows[0]["data"];
    assert_eq!(first["kind"], "payment");
    assert_eq!(first["payer_bankgiro"], "0003783511");
    assert_eq!(first["amount_ore"], 50000);
    // ISO 8859-1 decoded; the name and city lines belong to the payment before them.
    assert_eq!(first["payer_name"], "Åsa Öberg");
    assert_eq!(first["payer_city"], "Stockholm");
    assert_eq!(rows[1]["data"]["message"], "Medlemsavgift 2026\nFaktura 1001");
    assert_eq!(rows[2]["data"]["kind"], "deduction");
    assert_eq!(rows[4]["data"]["kind"], "extra_reference");

    let control = summary["control_records"].as_array().expect("control records");
    let names: Vec<(&str, u64)> = control
        .iter()
        .map(|c| (c["post_type"].as_str().unwrap_or(""), c["row_number"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(
        names,
        vec![
            ("start", 1),
            ("opening", 2),
            ("deposit", 12),
            ("opening", 13),
            ("deposit", 16),
            ("end", 17)
        ]
    );
    // The control totals agree with the records (payments less deductions): what cross-row
    // rules compare.
    let section_one: i64 = rows[..3]
        .iter()
        .map(|r| {
            let amount = r["data"]["amount_ore"].as_i64().unwrap_or(0);
            if r["data"]["kind"] == "deduction" { -amount } else { amount }
        })
        .sum();
    assert_eq!(section_one, 172550);
    assert_eq!(control[2]["fields"]["deposit_amount_ore"], "000000000000172550");
    assert_eq!(control[5]["fields"]["payment_records"], "00000003");
}

#[test]
fn a_bgmax_file_with_a_wrong_control_total_fails_its_cross_row_rules() {
    let (_, ok) = bgmax_report("bgmax/bgmax-ok.txt", 0);
    assert!(ok.get("file_failures").is_none(), "{ok}");
    let (rows, bad) = bgmax_report("bgmax/bgmax-bad-total.txt", 1);
    // Every record is valid; the file is not: its deposit total and payment count disagree.
    assert_eq!(
        (rows.len(), bad["valid"].as_u64(), bad["rejected"].as_u64()),
        (5, Some(5), Some(0))
    );
    let failures = bad["file_failures"].as_array().expect("file failures");
    let found: Vec<(&str, u64)> = failures
        .iter()
        .map(|f| (f["rule"].as_str().unwrap_or(""), f["row_number"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(found, vec![("sum", 12), ("count", 17)]);
    let message = failures[0]["message"].as_str().unwrap_or("");
    assert!(
        message
            .contains("sum of amount_ore is 172550, but the deposit record on line 12 says 182550"),
        "{message}"
    );
    assert_eq!(bad["errors_by_rule"]["cross_row_rules.sum"], 1);
}

#[test]
fn a_bgmax_start_record_must_be_written_on_the_date_in_the_files_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(fixture("bgmax/template.json")).expect("template");
    let mut template: Value = serde_json::from_str(&text).expect("json");
    template["validation"]["cross_row_rules"]
        .as_array_mut()
        .expect("rules")
        .push(serde_json::json!({"type": "control_field", "control_record": "start",
                           "field": "written_at", "equals_file_name": "^BGMAX_(\\d{8})\\."}));
    let template_path = dir.path().join("template.json");
    std::fs::write(&template_path, template.to_string()).expect("write");
    let check = |name: &str| {
        let file = dir.path().join(name);
        std::fs::copy(fixture("bgmax/bgmax-ok.txt"), &file).expect("copy");
        let output = intake(&[
            "check",
            "--template",
            &template_path.display().to_string(),
            &file.display().to_string(),
            "--format",
            "json",
        ]);
        let (_, summary) = json_report(&output);
        (output.status.code(), summary)
    };
    // The start record says it was written 2026-11-23 06:30.
    let (code, summary) = check("BGMAX_20261123.txt");
    assert_eq!(code, Some(0), "{summary}");
    let (code, summary) = check("BGMAX_20261124.txt");
    assert_eq!(code, Some(1), "{summary}");
    let failure = &summary["file_failures"][0];
    assert_eq!(
        (failure["rule"].as_str(), failure["row_number"].as_u64()),
        (Some("control_field"), Some(1))
    );
    let message = failure["message"].as_str().unwrap_or("");
    assert!(message.contains("to begin with '20261124' (from the file's name)"), "{message}");
}

#[test]
fn fixed_width_lines_that_do_not_fit_are_rejected_with_their_line_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("template.json");
    std::fs::write(
        &template,
        r#"{"name": "members", "file_type": "fixed_width", "target_resource": "members",
            "locale": "en", "skip_rows": 1,
            "column_widths": [{"name": "id", "width": 4}, 1, {"name": "name", "width": 10}],
            "field_mapping": [{"source": "id", "target": "id", "cast": "integer"},
                              {"source": "name", "target": "name"}]}"#,
    )
    .expect("write");
    let file = dir.path().join("members.txt");
    std::fs::write(&file, "ID   NAME\n0001 Anna\n0002 Bertil Karlsson\n000x Cecilia\n")
        .expect("write");
    let output = intake(&[
        "check",
        "--template",
        &template.display().to_string(),
        &file.display().to_string(),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    assert_eq!((summary["rows_read"].as_u64(), summary["valid"].as_u64()), (Some(3), Some(1)));
    assert_eq!(
        errors(&rows),
        vec![(3, "parse.text_beyond_layout".to_owned()), (4, "mapping.cast_integer".to_owned())]
    );
    assert_eq!(rows[0]["original_data"]["record"], "0002 Bertil Karlsson");
}

#[test]
fn a_strict_flat_file_rejects_an_unknown_record_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bgmax.txt");
    let mut text = std::fs::read(fixture("bgmax/bgmax-ok.txt")).expect("fixture");
    text.extend_from_slice(b"99 not a BGMax record\r\n");
    std::fs::write(&file, text).expect("write");
    let output = intake(&[
        "check",
        "--template",
        &fixture("bgmax/template.json"),
        &file.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("row 18"), "{text}");
    assert!(text.contains("parse.unknown_post_type"), "{text}");
    assert!(text.contains("line 12  deposit"), "{text}");
}

#[test]
fn xls_and_ods_workbooks_made_by_other_tools_are_checked_like_xlsx() {
    for workbook in ["excel/members.xls", "excel/members.ods"] {
        let output = intake(&[
            "check",
            "--template",
            &fixture("excel/template.json"),
            &fixture(workbook),
            "--format",
            "json",
            "--include-valid",
        ]);
        assert_eq!(output.status.code(), Some(1), "{workbook}: {}", stderr(&output));
        let (rows, summary) = json_report(&output);
        assert_eq!((summary["rows_read"].as_u64(), summary["valid"].as_u64()), (Some(4), Some(3)));
        let rejected: Vec<&Value> = rows.iter().filter(|row| row.get("errors").is_some()).collect();
        assert_eq!(
            errors(&rejected.into_iter().cloned().collect::<Vec<_>>()),
            vec![(7, "schema.format".to_owned())],
            "{workbook}"
        );
        let first = rows.iter().find(|row| row["row_number"] == 4).expect("row 4");
        assert_eq!(first["data"]["member_id"], 1, "{workbook}");
        assert_eq!(first["data"]["licence_valid_from"], "2026-01-15", "{workbook}");
        let last = rows.iter().find(|row| row["row_number"] == 8).expect("row 8");
        assert_eq!(last["data"]["last_name"], "Ström", "{workbook}");
    }
}

/// `file` encrypted to `to` (if any) and signed by `signer`, written to `out`.
fn pgp_message(gpg: &Gpg, file: &str, to: Option<&str>, signer: &str, out: &Path) {
    let content = std::fs::read(file).expect("plain file");
    std::fs::write(out, gpg.message(&content, to, Some(signer))).expect("message");
}

/// An armored key or certificate as text.
fn armored(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("armored text")
}

/// The bank payments template with `crypto` set to `crypto`, written into `dir`.
fn bank_payments_template_with(crypto: Value, dir: &Path) -> String {
    let text = std::fs::read_to_string(fixture("bank-payments/template.json")).expect("fixture");
    let mut template: Value = serde_json::from_str(&text).expect("template JSON");
    template["crypto"] = crypto;
    let path = dir.join("template.json");
    std::fs::write(&path, template.to_string()).expect("write template");
    path.display().to_string()
}

/// `intake check --format json` on `file` with `template`, and only `env` (plus PATH) as the
/// child's environment, so credentials come from nowhere else.
fn check_with_env(template: &str, file: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["check", "--template", template, &file.display().to_string(), "--format", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("intake runs")
}

#[test]
fn a_gzipped_csv_encrypted_and_signed_by_gpg_is_checked_like_the_plain_file() {
    let Some(gpg) = Gpg::start() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).expect("secrets dir");
    // The partner's certificate as a file in INTAKE_CREDENTIALS_DIR, our key in an environment
    // variable: both ways of resolving a bare credential name.
    let certificate = armored(gpg.certificate("files@partner.test"));
    std::fs::write(secrets.join("partner-cert"), &certificate).expect("write cert");
    let secret_key = armored(gpg.secret_key("intake@receiver.test", ""));
    let secrets_dir = secrets.display().to_string();
    // The child's temporary folder, where the plaintext is spooled, to see that it is emptied.
    let spool = dir.path().join("tmp");
    std::fs::create_dir(&spool).expect("spool dir");
    let spool_dir = spool.display().to_string();
    let spool_is_empty = || std::fs::read_dir(&spool).expect("spool dir").next().is_none();
    let env = [
        ("TMPDIR", spool_dir.as_str()),
        ("INTAKE_CREDENTIALS_DIR", secrets_dir.as_str()),
        ("INTAKE_CREDENTIAL_INTAKE_PGP_KEY", secret_key.as_str()),
    ];
    let template = bank_payments_template_with(
        serde_json::json!({
            "decrypt": {"secret_key": "intake-pgp-key"},
            "verify": {"signers": ["partner-cert"]},
            "signature_required": true
        }),
        dir.path(),
    );
    let message = dir.path().join("payments.csv.gz.pgp");
    let gz = fixture("compressed/payments.csv.gz");
    pgp_message(&gpg, &gz, Some("intake@receiver.test"), "files@partner.test", &message);

    let plain = bank_payments_report(&fixture("bank-payments/input.csv"));
    let output = check_with_env(&template, &message, &env);
    assert_eq!(output.status.code(), plain.0, "{}", stderr(&output));
    let (rows, mut summary) = json_report(&output);
    assert_eq!(summary["file"], message.display().to_string());
    if let Some(summary) = summary.as_object_mut() {
        summary.remove("file");
    }
    assert_eq!(summary, plain.2, "the same counts as the plain file");
    assert_eq!(rows, plain.1, "the same rejected rows, original data included");
    assert!(spool_is_empty(), "the decrypted plaintext is deleted after the check");

    // Signed by a key that is not among the signers: refused before any row, naming the file.
    let by_stranger = dir.path().join("by-stranger.csv.gz.pgp");
    pgp_message(&gpg, &gz, Some("intake@receiver.test"), "x@stranger.test", &by_stranger);
    let output = check_with_env(&template, &by_stranger, &env);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).is_empty(), "no rows: {}", stdout(&output));
    let message_text = stderr(&output);
    let expected =
        format!("{}: signature check failed: signed only by unknown key", by_stranger.display());
    assert!(message_text.contains(&expected), "{message_text}");
    assert!(spool_is_empty(), "a refused message leaves no plaintext behind");

    // A missing credential: a clear error naming the setting and the reference, never a value.
    let output = check_with_env(&template, &message, &env[..2]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).is_empty(), "no rows: {}", stdout(&output));
    let message_text = stderr(&output);
    for part in [
        "payments.csv.gz.pgp: cannot open the OpenPGP message: crypto.decrypt.secret_key",
        "credential 'intake-pgp-key' not found",
        "INTAKE_CREDENTIAL_INTAKE_PGP_KEY",
    ] {
        assert!(message_text.contains(part), "{part} missing from: {message_text}");
    }
    assert!(!message_text.contains("BEGIN PGP"), "{message_text}");

    // A credential that holds a certificate where the secret key belongs.
    let wrong = [env[0], env[1], ("INTAKE_CREDENTIAL_INTAKE_PGP_KEY", certificate.as_str())];
    let output = check_with_env(&template, &message, &wrong);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let message_text = stderr(&output);
    let expected = "credential 'intake-pgp-key' does not hold an ASCII-armored OpenPGP secret key";
    assert!(message_text.contains(expected), "{message_text}");
    assert!(!message_text.contains("BEGIN PGP"), "{message_text}");
}

#[test]
fn a_csv_only_signed_by_gpg_is_checked_with_verify_alone() {
    let Some(gpg) = Gpg::start() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let certificate = dir.path().join("partner.asc");
    std::fs::write(&certificate, armored(gpg.certificate("files@partner.test"))).expect("cert");
    let reference = format!("file:{}", certificate.display());
    let template = bank_payments_template_with(
        serde_json::json!({"verify": {"signers": [reference]}, "signature_required": true}),
        dir.path(),
    );
    let signed = dir.path().join("payments.csv.gpg");
    pgp_message(&gpg, &fixture("bank-payments/input.csv"), None, "files@partner.test", &signed);
    let plain = bank_payments_report(&fixture("bank-payments/input.csv"));
    let output = check_with_env(&template, &signed, &[]);
    assert_eq!(output.status.code(), plain.0, "{}", stderr(&output));
    let (rows, mut summary) = json_report(&output);
    if let Some(summary) = summary.as_object_mut() {
        summary.remove("file");
    }
    assert_eq!((rows, summary), (plain.1, plain.2));

    // The plain file is not an OpenPGP message: with `verify` set it is refused.
    let output = check_with_env(&template, Path::new(&fixture("bank-payments/input.csv")), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("input.csv: not a valid OpenPGP message"),
        "{}",
        stderr(&output)
    );
}

/// The member-register template with `validation.plugins` set to `plugins`, written to `dir`.
fn member_template_with_plugins(dir: &Path, plugins: Value) -> String {
    let text = std::fs::read_to_string(fixture("member-register/template.json")).expect("template");
    let mut template: Value = serde_json::from_str(&text).expect("json");
    template["validation"]["plugins"] = plugins;
    let path = dir.join("template.json");
    std::fs::write(&path, template.to_string()).expect("write");
    path.display().to_string()
}

/// `intake check --format json` of the member register with plugins from `plugin_dir`.
fn check_with_plugins(plugin_dir: &str, plugins: Value) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = member_template_with_plugins(dir.path(), plugins);
    Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["check", "--format", "json", "--template", &template])
        .arg(fixture("member-register/input.csv"))
        .env("INTAKE_PLUGIN_DIR", plugin_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("intake runs")
}

/// A plugin directory holding one shell script `name`.
fn plugin_dir_with(name: &str, script: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, script).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

#[test]
fn a_python_validation_plugin_rejects_the_rows_it_finds_wrong() {
    let output = check_with_plugins(
        &fixture("plugins"),
        serde_json::json!([{"type": "command", "name": "licence_age"}]),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    // Without the plugin 6 rows are valid; the junior born in 2000 is 25.
    assert_eq!((summary["rows_read"].as_u64(), summary["valid"].as_u64()), (Some(14), Some(5)));
    let row7 = rows.iter().find(|r| r["row_number"] == 7).expect("row 7 rejected");
    assert_eq!(errors(std::slice::from_ref(row7)), vec![(7, "plugins.licence_age".to_owned())]);
    let message = row7["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("this member is 25 on 2026-02-10"), "{message}");
    assert_eq!(summary["errors_by_rule"]["plugins.licence_age"], 1);
}

#[test]
fn a_plugin_that_crashes_fails_the_file_with_its_stderr() {
    let dir = plugin_dir_with(
        "crash",
        "#!/bin/sh\nread line\necho '{\"errors\": []}'\nread line\necho 'database unreachable' >&2\nexit 3\n",
    );
    let output = check_with_plugins(
        &dir.path().display().to_string(),
        serde_json::json!([{"type": "command", "name": "crash"}]),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(err.contains("validation plugin 'crash' stopped before answering row 3"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("database unreachable"), "{err}");
}

#[test]
fn a_plugin_that_hangs_is_stopped_after_its_timeout() {
    let dir = plugin_dir_with("slow", "#!/bin/sh\nread line\necho 'thinking' >&2\nsleep 60\n");
    let output = check_with_plugins(
        &dir.path().display().to_string(),
        serde_json::json!([{"type": "command", "name": "slow", "timeout_seconds": 1}]),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(err.contains("'slow' did not answer row 2 within 1 s"), "{err}");
    assert!(err.contains("thinking"), "{err}");
}

#[test]
fn plugins_are_only_run_from_the_plugin_directory() {
    let missing = check_with_plugins(
        &fixture("plugins"),
        serde_json::json!([{"type": "command", "name": "not_installed"}]),
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("'not_installed' could not be started"),
        "{}",
        stderr(&missing)
    );
    let escape = check_with_plugins(
        &fixture("plugins"),
        serde_json::json!([{"type": "command", "name": "../../usr/bin/env"}]),
    );
    assert_eq!(escape.status.code(), Some(2));
    assert!(stderr(&escape).contains("/validation/plugins/0"), "{}", stderr(&escape));
}

#[test]
fn a_jinja2_mapper_renders_fields_from_the_mapped_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(fixture("excel/template.json")).expect("template");
    let mut template: Value = serde_json::from_str(&text).expect("json");
    let fields = template["field_mapping"].take();
    template.as_object_mut().expect("object").remove("field_mapping");
    template["mapping"] = serde_json::json!([
        {"type": "field_mapping", "config": {"fields": fields}},
        {"type": "jinja2", "config": {"fields": [
            {"target": "display_name", "template": "{{ last_name | upper }}, {{ first_name }}"},
            {"target": "member_ref", "template": "M{{ member_id | pad_left(5, '0') }}"},
            {"target": "valid_from_text", "template": "{{ licence_valid_from | date('%d.%m.%Y') }}"}
        ]}}
    ]);
    let path = dir.path().join("template.json");
    std::fs::write(&path, template.to_string()).expect("write");
    let output = intake(&[
        "check",
        "--template",
        &path.display().to_string(),
        &fixture("excel/members.ods"),
        "--format",
        "json",
        "--include-valid",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (rows, summary) = json_report(&output);
    assert_eq!((summary["rows_read"].as_u64(), summary["valid"].as_u64()), (Some(4), Some(3)));
    let last = rows.iter().find(|row| row["row_number"] == 8).expect("row 8");
    assert_eq!(last["data"]["display_name"], "STRÖM, Eva");
    assert_eq!(last["data"]["member_ref"], "M00005");
    assert_eq!(last["data"]["valid_from_text"], "01.05.2026");
}
