//! Validation layer 4: business rules look rows up in the platform — against the sandbox on a
//! real socket. Missing clubs and inactive licences reject exactly their rows (layer
//! `business_rules`), look-ups are batched and cached (the sandbox counts the requests), a
//! failing API fails the run without rejecting a row, an import writes only the rows that pass,
//! and a retried rejected record is looked up again.

// A failed set-up step or expectation should panic right there.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Platform, TENANT};
use intake_api::sandbox::Faults;
use intake_engine::import::{ImportRowOutcome, import_file};
use intake_engine::m2m::ApiClient;
use intake_engine::runner::{
    FileImport, FileOutcome, RecordsRetry, RetryOutcome, RunnerOptions, SourceContext,
    import_source_file, retry_rejected_records,
};
use intake_engine::store::{ListQuery, Store};
use intake_engine::{BusinessRuleLookups, CheckReport, PipelineError, Template, check_file_with};
use intake_sources::{SourceSettings, WatchedDirectory, WatchedDirectoryConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The test client's capabilities, and reading licences.
fn capabilities() -> Vec<&'static str> {
    let mut capabilities = common::CAPABILITIES.to_vec();
    capabilities.push("licences:list");
    capabilities
}

async fn platform() -> Platform {
    let platform = Platform::start_for(&capabilities(), |_| {}).await;
    platform.seed(
        "clubs",
        vec![
            json!({"code": "C001", "name": "Boule Club Malmö", "status": "active"}),
            json!({"code": "C002", "name": "Petanque Lund", "status": "active"}),
            json!({"code": "C003", "name": "Kulan", "status": "dissolved"}),
        ],
    );
    platform.seed(
        "licences",
        vec![
            json!({"number": 101, "status": "active", "valid_until": "2026-12-31", "is_void": false}),
            json!({"number": 102, "status": "suspended", "valid_until": "2026-12-31", "is_void": false}),
            json!({"number": 103, "status": "active", "valid_until": "2026-03-31", "is_void": false}),
            json!({"number": 104, "status": "active", "valid_until": "2026-12-31", "is_void": true}),
        ],
    );
    platform
}

/// A client that asks for every capability it has and gives up quickly.
fn client(platform: &Platform) -> ApiClient {
    platform.client_with(&platform.url, |config, credentials| {
        config.max_attempts = 3;
        credentials.scopes = Vec::new();
    })
}

/// Registrations `name,club,licence,paid_on` to `players`, with `rules` as business rules.
fn template(rules: Value) -> Template {
    let value = json!({
        "name": "registrations",
        "file_type": "csv",
        "target_resource": "players",
        "import_mode": "create",
        "locale": "en",
        "file_matcher": "registrations*.csv",
        "field_mapping": [
            {"source": "name", "target": "name"},
            {"source": "club", "target": "club_code"},
            {"source": "licence", "target": "licence_no", "cast": "integer"},
            {"source": "paid_on", "target": "paid_on"}
        ],
        "validation": {
            "schema": {"type": "object", "required": ["name"]},
            "business_rules": rules
        }
    });
    intake_engine::load("registrations", &value.to_string()).unwrap()
}

fn club_rule() -> Value {
    json!([{"type": "exists", "resource": "clubs", "where": {"code": "club_code"}}])
}

/// Checks `csv` with look-ups through `client`, on a blocking thread as imports do; the report
/// (or error) and every outcome as JSON, in the order handed out.
async fn check(
    template: Template,
    csv: String,
    client: ApiClient,
) -> (Result<CheckReport, PipelineError>, Vec<Value>) {
    let lookups = BusinessRuleLookups::current(client);
    tokio::task::spawn_blocking(move || {
        let mut outcomes = Vec::new();
        let report = check_file_with(
            &template,
            "registrations.csv",
            csv.as_bytes(),
            &lookups,
            |outcome| outcomes.push(outcome.to_json()),
            |_| {},
        );
        (report, outcomes)
    })
    .await
    .unwrap()
}

fn rejected(outcomes: &[Value]) -> Vec<&Value> {
    outcomes.iter().filter(|o| o.get("errors").is_some()).collect()
}

fn row_numbers(outcomes: &[&Value]) -> Vec<u64> {
    outcomes.iter().map(|o| o["row_number"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_whose_club_is_missing_are_rejected_by_layer_business_rules() {
    let platform = platform().await;
    let csv = "name,club,licence,paid_on\n\
               Anna,C001,,\n\
               Björn,C404,,\n\
               Chen,C002,,\n\
               ,C404,,\n\
               Dana,,,\n\
               Eva,C405,,\n\
               Frej,C001,,\n";
    let (report, outcomes) = check(template(club_rule()), csv.to_owned(), client(&platform)).await;
    let report = report.unwrap();
    assert_eq!((report.rows_read, report.valid, report.rejected), (7, 4, 3));
    // Every row comes out, in file order.
    let all: Vec<&Value> = outcomes.iter().collect();
    assert_eq!(row_numbers(&all), vec![2, 3, 4, 5, 6, 7, 8]);
    let rejected = rejected(&outcomes);
    assert_eq!(row_numbers(&rejected), vec![3, 5, 7]);
    for (row, club) in [(rejected[0], "C404"), (rejected[2], "C405")] {
        let errors = row["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{row}");
        assert_eq!(errors[0]["layer"], "business_rules");
        assert_eq!(errors[0]["rule"], "exists");
        assert_eq!(errors[0]["field"], "club_code");
        assert_eq!(errors[0]["value"], club);
        assert_eq!(
            errors[0]["message"],
            format!(
                "no record in 'clubs' has code '{club}': check the value, or create the record \
                 in the platform first"
            )
        );
    }
    // The row without a name failed its schema: it is not looked up (and C404 counts once).
    assert_eq!(rejected[1]["errors"][0]["layer"], "schema");
    assert_eq!(rejected[1]["errors"].as_array().unwrap().len(), 1);
    assert_eq!(report.errors_by_rule.get("business_rules.exists"), Some(&2));
    assert_eq!(report.business_rule_requests, 1);
    assert_eq!(platform.sandbox.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compare_rejects_a_row_whose_licence_is_not_active_or_not_valid_long_enough() {
    let platform = platform().await;
    let rules = json!([
        {"type": "exists", "resource": "clubs", "where": {"code": "club_code"},
         "compare": [{"record_field": "status", "op": "eq", "value": "active"}]},
        {"type": "exists", "resource": "licences", "where": {"number": "licence_no"},
         "filter": {"is_void": false},
         "compare": [{"record_field": "status", "op": "eq", "value": "active"},
                     {"record_field": "valid_until", "op": "gte", "row_field": "paid_on"}]}
    ]);
    let csv = "name,club,licence,paid_on\n\
               Anna,C001,101,2026-05-01\n\
               Björn,C001,102,2026-05-01\n\
               Chen,C002,103,2026-05-01\n\
               Dana,C002,104,2026-05-01\n\
               Eva,C003,101,2026-05-01\n\
               Frej,C002,103,2026-02-01\n";
    let (report, outcomes) = check(template(rules), csv.to_owned(), client(&platform)).await;
    let report = report.unwrap();
    assert_eq!((report.valid, report.rejected), (2, 4));
    let rejected = rejected(&outcomes);
    assert_eq!(row_numbers(&rejected), vec![3, 4, 5, 6]);
    let first_error = |i: usize| rejected[i]["errors"][0].clone();
    assert_eq!(first_error(0)["rule"], "compare");
    assert_eq!(first_error(0)["field"], "licence_no");
    assert_eq!(
        first_error(0)["message"],
        "the record in 'licences' with number 102 has status 'suspended', but it must be 'active'"
    );
    assert_eq!(first_error(1)["rule"], "compare");
    assert_eq!(first_error(1)["field"], "paid_on");
    assert_eq!(first_error(1)["value"], "2026-05-01");
    // Licence 104 is void: the filter hides it, so it does not exist for this rule.
    assert_eq!(
        (first_error(2)["rule"].clone(), first_error(2)["value"].clone()),
        (json!("exists"), json!(104))
    );
    assert_eq!(first_error(3)["rule"], "compare");
    assert_eq!(
        first_error(3)["message"],
        "the record in 'clubs' with code 'C003' has status 'dissolved', but it must be 'active'"
    );
    assert!(rejected.iter().all(|r| r["errors"][0]["layer"] == "business_rules"));
    // One look-up per rule for the whole file.
    assert_eq!(platform.sandbox.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_are_batched_with_in_and_cached_for_the_run() {
    let platform = platform().await;
    // 250 rows, 3 clubs: one request for the whole file.
    let mut csv = String::from("name,club,licence,paid_on\n");
    for i in 0..250 {
        csv.push_str(&format!("P{i},{},,\n", ["C001", "C002", "C404"][i % 3]));
    }
    let (report, outcomes) = check(template(club_rule()), csv, client(&platform)).await;
    let report = report.unwrap();
    assert_eq!((report.rows_read, report.rejected), (250, 83));
    assert_eq!(report.business_rule_requests, 1);
    assert_eq!(platform.sandbox.request_count(), 1);
    let numbers: Vec<u64> = outcomes.iter().map(|o| o["row_number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (2..252).collect::<Vec<u64>>(), "file order is kept");

    // 250 distinct clubs (the first three exist), each twice: 100 keys per request, and a key
    // seen again is answered from the cache.
    let before = platform.sandbox.request_count();
    let mut csv = String::from("name,club,licence,paid_on\n");
    for round in 0..2 {
        for i in 1..=250 {
            csv.push_str(&format!("P{round}-{i},C{i:03},,\n"));
        }
    }
    let (report, _) = check(template(club_rule()), csv, client(&platform)).await;
    let report = report.unwrap();
    assert_eq!((report.rows_read, report.valid, report.rejected), (500, 6, 494));
    assert_eq!(report.business_rule_requests, 3, "250 keys = 100 + 100 + 50");
    assert_eq!(platform.sandbox.request_count() - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_api_fails_the_run_and_rejects_no_row() {
    let platform = platform().await;
    platform.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let csv = "name,club,licence,paid_on\nAnna,C001,,\nBjörn,C404,,\n";
    let (report, outcomes) = check(template(club_rule()), csv.to_owned(), client(&platform)).await;
    let error = report.unwrap_err();
    assert!(matches!(error, PipelineError::BusinessRule { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("business rule 0 (exists in 'clubs')"), "{message}");
    assert!(message.contains("503"), "{message}");
    assert!(outcomes.is_empty(), "no row was handed out, none rejected: {outcomes:?}");

    // The same through an import: the import fails, nothing is rejected or written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registrations.csv");
    std::fs::write(&path, csv).unwrap();
    let mut rows = Vec::new();
    let result = import_file(
        Arc::new(template(club_rule())),
        &path,
        client(&platform),
        |outcome| rows.push(outcome),
        |_| {},
        CancellationToken::new(),
    )
    .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("exists in 'clubs'"), "{error}");
    assert!(rows.iter().all(|r| !matches!(r, ImportRowOutcome::Rejected(_))));
    platform.set_faults(Faults::default());
    assert!(platform.items("players").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_writes_only_the_rows_that_pass_its_business_rules() {
    let platform = platform().await;
    platform.seed("players", vec![json!({"name": "Anna", "club_code": "C001"})]);
    let rules = json!([
        {"type": "exists", "resource": "clubs", "where": {"code": "club_code"}},
        {"type": "not_exists", "resource": "players", "where": {"name": "name"},
         "message": {"sv": "{value} är redan registrerad", "en": "{value} is already registered"}}
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registrations.csv");
    std::fs::write(&path, "name,club,licence,paid_on\nAnna,C001,,\nBjörn,C404,,\nChen,C002,,\n")
        .unwrap();
    let mut rejected = Vec::new();
    let report = import_file(
        Arc::new(template(rules)),
        &path,
        client(&platform),
        |outcome| {
            if let ImportRowOutcome::Rejected(row) = outcome {
                rejected.push(row);
            }
        },
        |_| {},
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((report.check.valid, report.check.rejected, report.write.created), (1, 2, 1));
    rejected.sort_by_key(|r| r.row_number);
    let errors: Vec<(u64, &str, &str)> = rejected
        .iter()
        .map(|r| (r.row_number, r.errors[0].rule.as_str(), r.errors[0].message.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (2, "not_exists", "'Anna' is already registered"),
            (
                3,
                "exists",
                "no record in 'clubs' has code 'C404': check the value, or create the record in \
                 the platform first"
            ),
        ]
    );
    let names: Vec<Value> = platform.items("players").iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, vec![json!("Anna"), json!("Chen")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_rejected_record_is_looked_up_again() {
    let platform = platform().await;
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(
        inbox.join("registrations.csv"),
        "name,club,licence,paid_on\nAnna,C001,,\nBjörn,C404,,\nChen,C405,,\n",
    )
    .unwrap();
    let store = Store::open(dir.path().join("state.db").to_str().unwrap()).await.unwrap();
    let folder = WatchedDirectory::build(
        &WatchedDirectoryConfig { path: inbox },
        &SourceSettings::named("inbox"),
    )
    .unwrap();
    let source = SourceContext::new("5f0000000000000000000001", Arc::new(folder));
    let templates = vec![template(club_rule())];
    let file = source.source.stat("registrations.csv").await.unwrap();
    // The engine's own path (`intake serve`): business rules run there too.
    let outcome = import_source_file(FileImport {
        store: &store,
        tenant: TENANT,
        source: &source,
        templates: &templates,
        client: client(&platform),
        file: &file,
        options: &RunnerOptions::default(),
        cancel: CancellationToken::new(),
    })
    .await
    .unwrap();
    let FileOutcome::Imported { run, .. } = outcome else { panic!("{outcome:?}") };
    let query = ListQuery::new().eq("import_run_id", run.meta.id.clone()).page(1, 100);
    let mut records = store.list_rejected_records(TENANT, &query).await.unwrap().items;
    records.sort_by_key(|r| r.body.row_number);
    assert_eq!(records.len(), 2);
    let errors = records[0].body.validation_errors.to_string();
    assert!(errors.contains("business_rules"), "{errors}");

    // Björn's club corrected to an existing one, Chen's to another missing one.
    let corrections = [("C002", &records[0]), ("C406", &records[1])];
    for (club, record) in corrections {
        let data = json!({"name": record.body.original_data["name"], "club": club,
                          "licence": "", "paid_on": ""});
        store.correct_rejected_record(TENANT, &record.meta.id, None, data).await.unwrap();
    }
    let ids: Vec<String> = records.iter().map(|r| r.meta.id.clone()).collect();
    let retry = |client: ApiClient| {
        let (store, ids, templates) = (&store, &ids, &templates);
        async move {
            retry_rejected_records(RecordsRetry {
                store,
                tenant: TENANT,
                record_ids: ids,
                templates,
                client,
                cancel: CancellationToken::new(),
            })
            .await
            .unwrap()
        }
    };

    // The platform failing: nothing is decided, both stay corrected.
    platform.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let report = retry(client(&platform)).await;
    assert_eq!(report.not_written(), 2, "{report:?}");
    platform.set_faults(Faults::default());

    let report = retry(client(&platform)).await;
    assert!(matches!(report.outcome(&ids[0]), Some(RetryOutcome::Retried { .. })), "{report:?}");
    let Some(RetryOutcome::StillPending { errors }) = report.outcome(&ids[1]) else {
        panic!("{report:?}")
    };
    assert_eq!((errors[0].layer.as_str(), errors[0].rule.as_str()), ("business_rules", "exists"));
    assert_eq!(errors[0].value, Some(json!("C406")));
    let mut names: Vec<String> =
        platform.items("players").iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    assert_eq!(names, vec!["Anna", "Björn"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_api_business_rules_are_refused_or_explicitly_skipped() {
    let csv = "name,club,licence,paid_on\nAnna,C404,,\n";
    let refused = intake_engine::check_file(
        &template(club_rule()),
        "registrations.csv",
        csv.as_bytes(),
        |_| {},
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(refused, PipelineError::BusinessRulesNeedApi { .. }));
    assert!(refused.to_string().contains("--skip-business-rules"), "{refused}");

    let skipped = check_file_with(
        &template(club_rule()),
        "registrations.csv",
        csv.as_bytes(),
        &BusinessRuleLookups::Skip,
        |_| {},
        |_| {},
    )
    .unwrap();
    assert_eq!((skipped.valid, skipped.rejected), (1, 0));
    assert!(skipped.business_rules_skipped);
    assert_eq!(serde_json::to_value(&skipped).unwrap()["business_rules_skipped"], true);
}

#[test]
fn rule_problems_are_found_when_the_template_is_loaded_with_their_paths() {
    let load = |rules: Value| {
        let value = json!({
            "name": "registrations", "file_type": "csv", "target_resource": "players",
            "field_mapping": [{"source": "club", "target": "club_code"}],
            "validation": {"business_rules": rules}
        });
        match intake_engine::load("registrations", &value.to_string()) {
            Err(intake_engine::TemplateError::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        }
    };
    let problems = load(json!([
        {"type": "exists", "resource": "clubs", "where": {}},
        {"type": "not_exists", "resource": "players", "where": {"pnr": "pnr"},
         "filter": {"pnr": "x"}},
        {"type": "exists", "resource": "licences", "where": {"number": "licence_no"},
         "compare": [{"record_field": "status", "op": "in", "value": "active"}]}
    ]));
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("/validation/business_rules/0/where: "), "{problems:#?}");
    assert!(problems[1].starts_with("/validation/business_rules/1/filter/pnr: "), "{problems:#?}");
    assert!(
        problems[2]
            .starts_with("/validation/business_rules/2/compare/0/value: op 'in' needs a list"),
        "{problems:#?}"
    );

    let misspelt =
        load(json!([{"type": "exists", "resource": "clubs", "wher": {"code": "club_code"}}]));
    assert!(
        misspelt
            .iter()
            .any(|p| p.contains("/validation/business_rules/0")
                && p.contains("did you mean `where`?")),
        "{misspelt:#?}"
    );
    let unknown_type = load(json!([{"type": "exist", "resource": "clubs", "where": {"a": "b"}}]));
    assert!(unknown_type.iter().any(|p| p.contains("did you mean `exists`?")), "{unknown_type:#?}");
}

#[test]
fn a_row_field_the_mapping_does_not_produce_stops_the_file_with_its_path() {
    let template = template(json!([
        {"type": "exists", "resource": "clubs", "where": {"code": "club"}}
    ]));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let platform = runtime.block_on(Platform::start());
    let with_api =
        BusinessRuleLookups::Api { client: client(&platform), runtime: runtime.handle().clone() };
    // Also when the rules are skipped: a wrong field is a wrong template.
    for lookups in [with_api, BusinessRuleLookups::Skip] {
        let error = check_file_with(
            &template,
            "registrations.csv",
            "name,club,licence,paid_on\nAnna,C001,,\n".as_bytes(),
            &lookups,
            |_| {},
            |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("/validation/business_rules/0/where/code"), "{error}");
        assert!(error.contains("'club'"), "{error}");
    }
    assert_eq!(platform.sandbox.request_count(), 0);
}
