use serde_json::json;

use super::*;

fn load_json(value: serde_json::Value) -> Result<Template, TemplateError> {
    load("t.json", &value.to_string())
}

fn problems(value: serde_json::Value) -> Vec<TemplateProblem> {
    match load_json(value) {
        Err(TemplateError::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid template, got {other:?}"),
    }
}

fn paths(problems: &[TemplateProblem]) -> Vec<&str> {
    problems.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn a_minimal_template_gets_the_contracts_defaults() {
    let template =
        load_json(json!({"name": "n", "file_type": "csv", "target_resource": "payments"}))
            .expect("valid");
    assert_eq!(template.delimiter, ",");
    assert_eq!(template.encoding, "utf-8");
    assert!(template.has_header);
    assert_eq!(template.skip_rows, 0);
    assert_eq!(template.priority, 0);
    assert!(template.is_active);
    assert_eq!(template.import_mode, ImportMode::Create);
    assert_eq!(template.locale, "sv");
    assert_eq!(template.post_process_policy, PostProcessPolicy::Keep);
    assert!(!template.assert_empty && !template.auto_execute && !template.is_portal_visible);
    assert_eq!(template.retention_category, "financial");
    assert_eq!(template.validation.max_errors_per_row, 20);
    assert_eq!(template.effective_format(), Some(Format::Csv));
    assert!(template.unsupported().is_empty());
}

#[test]
fn a_template_round_trips_through_json() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/bank-payments/template.json"
    ))
    .expect("fixture");
    let template = load("bank", &text).expect("valid");
    let again = load("again", &serde_json::to_string(&template).expect("json")).expect("valid");
    assert_eq!(template, again);
}

#[test]
fn syntax_errors_give_line_and_column() {
    match load("broken.json", "{\n  \"name\": \"x\",\n  oops\n}") {
        Err(TemplateError::Syntax { line, column, .. }) => assert_eq!((line, column), (3, 3)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn a_missing_required_field_and_a_wrong_type_are_named_by_path() {
    let found = problems(json!({"name": "n", "file_type": "csv", "skip_rows": "two"}));
    let text = found.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(text.contains("target_resource"), "{text}");
    assert!(paths(&found).contains(&"/skip_rows"), "{text}");
}

#[test]
fn an_unknown_row_rule_type_says_which_types_exist() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "validation": {"row_rules": [{"type": "ibann", "field": "iban"}]}
    }));
    let text = found.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(text.contains("/validation/row_rules/0"), "{text}");
    assert!(text.contains("ibann") && text.contains("iban"), "{text}");
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "delimiter": "ab",
        "encoding": "ebcdic",
        "parser_config": {"quote_char": "''", "record_tag": "Ntry"},
        "import_mode": "sync",
        "post_process_policy": "move",
        "completed_folder": "done",
        "mapping": [{"type": "field_mapping", "config": {"fields": [
            {"source": "a", "target": "x", "cast": "date", "formats": ["%Q"]},
            {"source": "b", "target": "x"}
        ]}}],
        "validation": {
            "schema": {"type": "nonsense"},
            "row_rules": [{"type": "regex", "field": "x", "pattern": "("}],
            "max_errors_per_row": 0
        }
    }));
    let found_paths = paths(&found);
    for expected in [
        "/delimiter",
        "/encoding",
        "/parser_config/quote_char",
        "/parser_config/record_tag",
        "/upsert_key",
        "/error_folder",
        "/validation/schema",
        "/validation/row_rules/0",
        "/validation/max_errors_per_row",
    ] {
        assert!(found_paths.contains(&expected), "{expected} missing from {found_paths:?}");
    }
    assert!(
        found_paths.iter().any(|p| p.starts_with("/mapping/0/config/fields")),
        "mapping problems missing from {found_paths:?}"
    );
}

#[test]
fn parser_config_and_top_level_options_must_agree() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "delimiter": ";", "parser_config": {"delimiter": "|"}
    }));
    assert_eq!(paths(&found), vec!["/parser_config/delimiter"]);
    let agreeing = load_json(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "parser_config": {"delimiter": "\t", "quote_char": ""}
    }))
    .expect("valid");
    let options = agreeing.csv_options().expect("options");
    assert_eq!(options.delimiter, b'\t');
    assert_eq!(options.quote, None);
}

#[test]
fn a_format_that_does_not_read_the_file_type_is_refused() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "format": "json", "target_resource": "t"
    }));
    assert_eq!(paths(&found), vec!["/format"]);
}

#[test]
fn settings_of_later_releases_load_but_are_listed_as_unsupported() {
    let template = load_json(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"decompression": "gzip"},
        "pre_transform": ".a |= ascii_downcase",
        "mapping": [
            {"type": "field_mapping", "config": {"fields": [{"source": "a", "target": "a"}]}},
            {"type": "xslt", "config": {"stylesheet": "members.xsl"}}
        ]
    }))
    .expect("a template using later settings is still valid");
    let unsupported = template.unsupported();
    assert_eq!(paths(&unsupported), vec!["/mapping/1"]);
    assert!(unsupported.iter().all(|p| p.message.starts_with("not supported yet: ")));
}

#[test]
fn a_pre_transform_that_is_not_jq_is_a_template_error() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t", "pre_transform": "row['a'].strip()"
    }));
    assert_eq!(paths(&found), vec!["/pre_transform"]);
}

#[test]
fn platform_fields_are_accepted_and_ids_are_checked() {
    let template = load_json(json!({
        "_id": "64a1b2c3d4e5f6789012abcd", "tenant_id": "64a1b2c3d4e5f6789012abce",
        "revision_id": "3", "created_at": "2026-01-01T00:00:00Z", "tags": [],
        "name": "n", "file_type": "csv", "target_resource": "t"
    }))
    .expect("valid");
    assert_eq!(template.id.map(|id| id.to_string()).as_deref(), Some("64a1b2c3d4e5f6789012abcd"));
    let found = problems(json!({
        "source_id": "not-an-id", "name": "n", "file_type": "csv", "target_resource": "t"
    }));
    assert_eq!(paths(&found), vec!["/source_id"]);
}

#[test]
fn excel_templates_run_and_csv_only_settings_must_stay_at_their_defaults() {
    let template = load_json(json!({
        "name": "n", "file_type": "excel", "target_resource": "t",
        "sheet_name": "Members", "skip_rows": 2, "has_header": false
    }))
    .expect("valid");
    assert!(template.unsupported().is_empty());
    assert!(template.reads_excel());
    let options = template.excel_options().expect("options");
    assert_eq!(options.sheet_name.as_deref(), Some("Members"));
    assert_eq!(options.skip_rows, 2);
    assert!(!options.has_header);
    let found = problems(json!({
        "name": "n", "file_type": "excel", "target_resource": "t",
        "delimiter": ";", "parser_config": {"quote_char": "'"}
    }));
    assert_eq!(paths(&found), vec!["/delimiter", "/parser_config/quote_char"]);
    let csv_format = load_json(json!({
        "name": "n", "file_type": "excel", "format": "csv", "target_resource": "t"
    }))
    .expect("valid");
    assert_eq!(paths(&csv_format.unsupported()), vec!["/format"]);
}

#[test]
fn json_and_xml_options_report_every_problem_with_its_path() {
    let json_template = load_json(json!({
        "name": "n", "file_type": "json", "target_resource": "t", "delimiter": ";",
        "parser_config": {"mode": "lines", "records_path": "$.data", "record_tag": "x"},
        "field_mapping": [{"source": "a.b", "target": "a"}]
    }))
    .expect("valid");
    let found = json_template.json_options().unwrap_err();
    assert_eq!(
        paths(&found),
        vec!["/delimiter", "/parser_config/record_tag", "/parser_config/records_path"]
    );
    let xml_template = load_json(json!({
        "name": "n", "file_type": "xml", "target_resource": "t",
        "parser_config": {"record_tag": "c:Ntry", "namespaces": {"d": "urn:x", "e": 5}},
        "field_mapping": [{"source": "Amt.#text", "target": "amount"}]
    }))
    .expect("valid");
    let found = xml_template.xml_options().unwrap_err();
    assert_eq!(paths(&found), vec!["/parser_config/namespaces/e", "/parser_config/record_tag"]);
    assert_eq!(xml_template.object_columns().expect("paths").columns(), ["Amt.#text"]);
    assert!(xml_template.unsupported().is_empty());
}

#[test]
fn crypto_decompression_settings_load_with_their_defaults() {
    let template = load_json(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {
            "decompression": "zip", "zip_entry": "payments.csv",
            "max_decompressed_bytes": 1000, "max_compression_ratio": 50
        }
    }))
    .expect("valid");
    assert!(template.unsupported().is_empty());
    let options = template.preflight_options();
    assert_eq!(options.decompression, Decompression::Zip);
    assert_eq!(options.zip_entry.as_deref(), Some("payments.csv"));
    assert_eq!((options.max_decompressed_bytes, options.max_compression_ratio), (1000, 50));

    let defaults = load_json(json!({"name": "n", "file_type": "csv", "target_resource": "t"}))
        .expect("valid")
        .preflight_options();
    assert_eq!(defaults, PreflightOptions::default());
    assert_eq!(defaults.decompression, Decompression::Auto);
    assert!(!template.crypto.as_ref().is_some_and(CryptoConfig::uses_pgp));
}

#[test]
fn crypto_pgp_settings_load_typed_and_run() {
    let template = load_json(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {
            "decrypt": {"secret_key": "acme-pgp-key", "passphrase": "env:ACME_PGP_PASSPHRASE"},
            "verify": {"signers": ["file:/run/secrets/bank.asc", "bank-backup-cert"]},
            "signature_required": true
        }
    }))
    .expect("valid");
    assert!(template.unsupported().is_empty(), "{:?}", template.unsupported());
    let crypto = template.crypto.as_ref().expect("crypto");
    assert!(crypto.uses_pgp() && crypto.signature_required);
    let decrypt = crypto.decrypt.as_ref().expect("decrypt");
    assert_eq!(decrypt.secret_key, "acme-pgp-key");
    assert_eq!(decrypt.passphrase.as_deref(), Some("env:ACME_PGP_PASSPHRASE"));
    let signers = &crypto.verify.as_ref().expect("verify").signers;
    assert_eq!(signers, &["file:/run/secrets/bank.asc", "bank-backup-cert"]);
    // Verify alone (signed, not encrypted files) is enough to use OpenPGP.
    let verify_only = load_json(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"verify": {"signers": ["bank-cert"]}}
    }))
    .expect("valid");
    assert!(verify_only.crypto.as_ref().is_some_and(CryptoConfig::uses_pgp));
    let again = load("again", &serde_json::to_string(&template).expect("json")).expect("valid");
    assert_eq!(again, template);
}

#[test]
fn crypto_pgp_settings_without_signers_or_with_empty_references_are_problems() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"signature_required": true}
    }));
    assert_eq!(paths(&found), vec!["/crypto/signature_required"]);
    assert!(found[0].message.contains("verify.signers"), "{found:?}");

    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {
            "decrypt": {"secret_key": " ", "passphrase": ""},
            "verify": {"signers": []},
            "signature_required": true
        }
    }));
    assert_eq!(
        paths(&found),
        vec![
            "/crypto/decrypt/secret_key",
            "/crypto/decrypt/passphrase",
            "/crypto/verify/signers",
            "/crypto/signature_required"
        ]
    );
    assert!(found[0].message.contains("it is empty"), "{found:?}");

    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"verify": {"signers": ["ok-name", "../etc/passwd", "env:"]}}
    }));
    assert_eq!(paths(&found), vec!["/crypto/verify/signers/1", "/crypto/verify/signers/2"]);
}

#[test]
fn crypto_pgp_settings_refuse_unknown_fields_and_missing_keys_with_their_paths() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"decrypt": {"secret_key": "k", "key": "inline-secret"}}
    }));
    assert!(paths(&found).iter().all(|p| p.starts_with("/crypto")), "{found:?}");
    assert!(
        found.iter().any(|p| p.path == "/crypto/decrypt/key" && p.message.contains("secret_key")),
        "{found:?}"
    );
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"decrypt": {"passphrase": "p"}, "verify": {"signer": ["c"]}}
    }));
    let found_paths = paths(&found);
    assert!(found_paths.iter().all(|p| p.starts_with("/crypto")), "{found:?}");
    let text = found.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(text.contains("secret_key"), "{text}");
}

#[test]
fn crypto_refuses_unknown_keys_bad_methods_and_zero_limits_with_their_paths() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"decompress": "gzip"}
    }));
    assert!(paths(&found).iter().all(|p| p.starts_with("/crypto")), "{found:?}");
    assert!(found.iter().any(|p| p.message.contains("decompress")), "{found:?}");
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"decompression": "bzip2"}
    }));
    assert!(paths(&found).contains(&"/crypto/decompression"), "{found:?}");
    // A zero limit is refused by the schema (minimum 1), within crypto.
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t",
        "crypto": {"max_compression_ratio": 0}
    }));
    assert!(!found.is_empty() && paths(&found).iter().all(|p| p.starts_with("/crypto")));
}

#[test]
fn a_fixed_width_template_needs_one_layout_and_names_every_problem() {
    let found = problems(json!({"name": "n", "file_type": "fixed_width", "target_resource": "t"}));
    assert_eq!(paths(&found), vec!["/column_widths"]);

    let found = problems(json!({
        "name": "n", "file_type": "fixed_width", "target_resource": "t", "delimiter": ";",
        "column_widths": [3, {"name": "a", "width": 0}, {"name": "a", "width": 2}],
        "parser_config": {"strict_post_types": true, "quote_char": "'"},
        "required_columns": ["b"]
    }));
    assert_eq!(
        paths(&found),
        vec![
            "/delimiter",
            "/parser_config/quote_char",
            "/parser_config",
            "/column_widths",
            "/column_widths",
            "/required_columns"
        ],
        "{found:?}"
    );
}

#[test]
fn post_types_are_checked_as_a_whole() {
    let found = problems(json!({
        "name": "n", "file_type": "fixed_width", "target_resource": "t",
        "parser_config": {"post_types": {
            "1": {"name": "start", "role": "header", "columns": [1, {"name": "d", "width": 8}]},
            "20": {"name": "info", "role": "continuation", "columns": [2, {"name": "x", "width": 3}]}
        }}
    }));
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("differ in length")), "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("no post type has the role 'record'")),
        "{messages:?}"
    );
}

#[test]
fn a_bgmax_template_gives_the_columns_of_its_records() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bgmax/template.json"),
    )
    .expect("fixture");
    let template = load("bgmax.json", &text).expect("valid");
    assert!(template.unsupported().is_empty(), "{:?}", template.unsupported());
    let options = template.fixed_width_options().expect("options");
    let columns = options.columns();
    assert_eq!(columns[0], "post_type");
    assert!(columns.contains(&"payer_name".to_owned()));
    assert!(columns.contains(&"deduction_code".to_owned()));
    assert!(!columns.contains(&"deposit_amount_ore".to_owned()), "a trailer field is no column");
}

#[test]
fn column_widths_on_a_csv_template_are_a_problem() {
    let found = problems(json!({
        "name": "n", "file_type": "csv", "target_resource": "t", "column_widths": [3]
    }));
    assert_eq!(paths(&found), vec!["/column_widths"]);
}
