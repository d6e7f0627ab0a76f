#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn rules(value: Value) -> Vec<BusinessRuleConfig> {
    serde_json::from_value(value).unwrap()
}

fn shape() -> Arc<RowShape> {
    Arc::new(RowShape::new(["name", "club_code", "licence_no", "paid_on", "season"]))
}

fn row(values: [Value; 5]) -> Row {
    let mut row = Row::new(shape());
    for (i, value) in values.into_iter().enumerate() {
        *row.value_mut(i).unwrap() = value;
    }
    row
}

fn build(value: Value, locale: Locale) -> BusinessRules {
    BusinessRules::build(&rules(value), &shape(), locale, 20).unwrap()
}

fn record(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Answers look-ups from a fixed list of records per resource, applying `$in` and equality.
struct Records {
    items: Vec<(&'static str, Map<String, Value>)>,
    requests: Vec<LookupRequest>,
    fail: bool,
}

impl RecordLookup for Records {
    fn find(&mut self, request: &LookupRequest) -> Result<Vec<Map<String, Value>>, String> {
        self.requests.push(request.clone());
        if self.fail {
            return Err("503 Service Unavailable".to_owned());
        }
        let filter = request.filter.as_object().unwrap();
        Ok(self
            .items
            .iter()
            .filter(|(resource, _)| *resource == request.resource)
            .map(|(_, item)| item)
            .filter(|item| {
                filter.iter().all(|(field, condition)| match condition {
                    Value::Object(op) if op.contains_key("$in") => op["$in"]
                        .as_array()
                        .unwrap()
                        .contains(item.get(field).unwrap_or(&Value::Null)),
                    plain => item.get(field).unwrap_or(&Value::Null) == plain,
                })
            })
            .cloned()
            .collect())
    }
}

fn clubs() -> Records {
    Records {
        items: vec![
            ("clubs", record(json!({"_id": "c1", "code": "C001", "status": "active"}))),
            ("clubs", record(json!({"_id": "c2", "code": "C002", "status": "inactive"}))),
            (
                "licences",
                record(json!({"_id": "l1", "number": 7, "status": "active",
                              "valid_until": "2026-12-31", "void": false})),
            ),
            (
                "licences",
                record(json!({"_id": "l2", "number": 8, "status": "expired",
                              "valid_until": "2025-12-31", "void": false})),
            ),
            ("players", record(json!({"_id": "p1", "name": "Anna"}))),
        ],
        requests: Vec::new(),
        fail: false,
    }
}

/// Registers, resolves and checks `rows` the way the pipeline does; the errors of each row.
fn run(rules: &mut BusinessRules, lookup: &mut Records, rows: &[Row]) -> Vec<Vec<RowError>> {
    for row in rows {
        rules.register(row);
    }
    rules.resolve(lookup).unwrap();
    let checked = rows
        .iter()
        .map(|row| {
            let mut errors = Vec::new();
            let valid = rules.check(row, &mut errors).unwrap();
            assert_eq!(valid, errors.is_empty());
            errors
        })
        .collect();
    rules.end_batch();
    checked
}

// ---- config checking ----

fn problems(value: Value) -> Vec<(String, String)> {
    rules(json!([value]))[0].problems().into_iter().map(|p| (p.path, p.problem)).collect()
}

#[test]
fn the_suggested_config_reads_and_writes_back_unchanged() {
    let config = json!([
        {"type": "exists", "resource": "clubs", "where": {"code": "club_code"}},
        {"type": "not_exists", "resource": "players", "where": {"personnummer": "personnummer"},
         "message": {"sv": "finns redan", "en": "already there"}},
        {"type": "exists", "resource": "licences", "where": {"number": "licence_no", "season": "season"},
         "filter": {"deleted": false},
         "compare": [{"record_field": "status", "op": "eq", "value": "active"},
                     {"record_field": "valid_until", "op": "gte", "row_field": "paid_on"},
                     {"record_field": "ended_at", "op": "eq", "value": null}]}
    ]);
    let parsed = rules(config.clone());
    assert!(parsed.iter().all(|rule| rule.problems().is_empty()));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), config);
    let BusinessRuleConfig::Exists(licences) = &parsed[2] else { panic!("exists") };
    assert_eq!(licences.where_fields.pairs()[1], ("season".to_owned(), "season".to_owned()));
    assert_eq!(licences.compare[2].value, Some(Value::Null));
}

#[test]
fn unknown_options_and_types_are_refused_when_read() {
    let unknown = serde_json::from_value::<BusinessRuleConfig>(
        json!({"type": "exists", "resource": "clubs", "where": {"code": "c"}, "wher": {}}),
    );
    assert!(unknown.unwrap_err().to_string().contains("unknown field `wher`"));
    let compare_on_not_exists = serde_json::from_value::<BusinessRuleConfig>(json!({
        "type": "not_exists", "resource": "clubs", "where": {"code": "c"},
        "compare": [{"record_field": "a", "op": "eq", "value": 1}]
    }));
    assert!(compare_on_not_exists.is_err());
    let bad_op = serde_json::from_value::<BusinessRuleConfig>(json!({
        "type": "exists", "resource": "clubs", "where": {"code": "c"},
        "compare": [{"record_field": "a", "op": "like", "value": 1}]
    }));
    assert!(bad_op.unwrap_err().to_string().contains("unknown variant `like`"));
    let twice = serde_json::from_str::<BusinessRuleConfig>(
        r#"{"type": "exists", "resource": "clubs", "where": {"code": "a", "code": "b"}}"#,
    );
    assert!(twice.unwrap_err().to_string().contains("listed twice"));
}

#[test]
fn config_problems_name_their_place_in_the_rule() {
    let found = problems(json!({"type": "exists", "resource": "../clubs", "where": {}}));
    let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(paths, vec!["/resource", "/where"]);

    let found = problems(json!({
        "type": "exists", "resource": "licences", "where": {"number": "", "$or": "x"},
        "filter": {"number": 5},
        "compare": [
            {"record_field": "status", "op": "eq"},
            {"record_field": "status", "op": "eq", "value": "a", "row_field": "b"},
            {"record_field": "status", "op": "in", "value": "active"},
            {"record_field": "until", "op": "gte", "value": true},
            {"record_field": "status", "op": "in", "row_field": "x"},
            {"record_field": "", "op": "eq", "value": ["a"]}
        ],
        "message": {}
    }));
    let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/where/number",
            "/where",
            "/filter/number",
            "/compare/0",
            "/compare/1",
            "/compare/2/value",
            "/compare/3/value",
            "/compare/4/op",
            "/compare/5/record_field",
            "/compare/5/value",
            "/message",
        ]
    );
    assert!(found[3].1.contains("exactly one of value"), "{found:?}");

    let found = problems(json!({
        "type": "not_exists", "resource": "players", "where": {"pnr": "pnr"},
        "message": {"sv": " "}
    }));
    assert_eq!(found, vec![("/message/sv".to_owned(), "the message is empty".to_owned())]);
}

#[test]
fn a_row_field_the_mapped_rows_lack_is_a_problem_with_its_path() {
    let config = rules(json!([
        {"type": "exists", "resource": "clubs", "where": {"code": "club"}},
        {"type": "exists", "resource": "licences", "where": {"number": "licence_no"},
         "compare": [{"record_field": "valid_until", "op": "gte", "row_field": "paid"}]}
    ]));
    let problems = BusinessRules::build(&config, &shape(), Locale::En, 20).unwrap_err();
    let places: Vec<(usize, &str)> = problems.iter().map(|p| (p.index, p.path.as_str())).collect();
    assert_eq!(places, vec![(0, "/where/code"), (1, "/compare/0/row_field")]);
    assert!(problems[0].problem.contains("'club'"), "{}", problems[0].problem);
    assert!(problems[0].problem.contains("club_code"), "{}", problems[0].problem);
}

// ---- key building ----

#[test]
fn look_ups_ask_for_each_distinct_key_once_with_in_and_the_filter() {
    let mut rules = build(
        json!([{"type": "exists", "resource": "licences",
                "where": {"number": "licence_no", "season": "season"},
                "filter": {"void": false},
                "compare": [{"record_field": "status", "op": "eq", "value": "active"}]}]),
        Locale::En,
    );
    let rows = [
        row([json!("A"), Value::Null, json!(7), Value::Null, json!(2026)]),
        row([json!("B"), Value::Null, json!(7), Value::Null, json!(2026)]),
        row([json!("C"), Value::Null, json!(8), Value::Null, json!(2026)]),
        row([json!("D"), Value::Null, Value::Null, Value::Null, json!(2026)]),
        row([json!("E"), Value::Null, json!(7.0), Value::Null, json!(2026)]),
    ];
    assert!(rules.register(&rows[0]));
    assert!(rules.register(&rows[1]));
    assert!(rules.register(&rows[2]));
    assert!(!rules.register(&rows[3]), "a null look-up field skips the rule");
    assert!(rules.is_ready(&rows[3]));
    assert!(!rules.is_ready(&rows[0]));
    rules.register(&rows[4]);
    let requests = rules.take_requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.rule_index, request.rule_type), (0, "exists"));
    assert_eq!(request.resource, "licences");
    assert_eq!(request.key_count, 2, "7 and 7.0 are one key");
    assert_eq!(
        request.filter,
        json!({"void": false, "number": {"$in": [7, 8]}, "season": {"$in": [2026]}})
    );
    assert_eq!(request.fields, vec!["number", "season", "status"]);
    assert!(!rules.has_pending());
}

#[test]
fn a_hundred_waiting_keys_fill_a_batch_and_requests_hold_at_most_a_hundred() {
    let mut rules = build(
        json!([{"type": "exists", "resource": "clubs", "where": {"code": "club_code"}}]),
        Locale::En,
    );
    for i in 0..250 {
        let key = json!(format!("C{i:03}"));
        rules.register(&row([json!("x"), key, Value::Null, Value::Null, Value::Null]));
        if i == 98 {
            assert!(!rules.batch_full());
        }
        if i == 99 {
            assert!(rules.batch_full());
        }
    }
    let sizes: Vec<usize> = rules.take_requests().iter().map(|r| r.key_count).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
}

#[test]
fn records_are_matched_back_to_keys_by_their_text() {
    let mut rules = build(
        json!([{"type": "exists", "resource": "licences", "where": {"number": "licence_no"}}]),
        Locale::En,
    );
    let rows = [
        row([json!("A"), Value::Null, json!("7"), Value::Null, Value::Null]),
        row([json!("B"), Value::Null, json!(8), Value::Null, Value::Null]),
    ];
    rules.register(&rows[0]);
    rules.register(&rows[1]);
    let requests = rules.take_requests();
    // The API answered the text "7" with a record whose number is 7, and 8 with a list holding 8.
    rules.complete(&requests[0], &[record(json!({"_id": "l1", "number": 7}))]);
    let mut errors = Vec::new();
    assert!(rules.check(&rows[0], &mut errors).unwrap());
    assert!(!rules.check(&rows[1], &mut errors).unwrap());
    assert_eq!(errors[0].rule, "exists");

    let mut again = build(
        json!([{"type": "exists", "resource": "licences", "where": {"numbers": "licence_no"}}]),
        Locale::En,
    );
    again.register(&rows[1]);
    let requests = again.take_requests();
    again.complete(&requests[0], &[record(json!({"_id": "l2", "numbers": [5, 8]}))]);
    assert!(again.check(&rows[1], &mut Vec::new()).unwrap());
}

#[test]
fn checking_a_row_before_its_look_up_is_an_internal_error_not_a_pass() {
    let rules = build(
        json!([{"type": "exists", "resource": "clubs", "where": {"code": "club_code"}}]),
        Locale::En,
    );
    let row = row([json!("x"), json!("C001"), Value::Null, Value::Null, Value::Null]);
    assert_eq!(rules.check(&row, &mut Vec::new()), Err(NotResolved { rule_index: 0 }));
}

#[test]
fn the_cache_answers_known_keys_and_stays_bounded() {
    let mut rules = build(
        json!([{"type": "exists", "resource": "clubs", "where": {"code": "club_code"}}]),
        Locale::En,
    );
    rules.set_cache_keys(100);
    let mut lookup = clubs();
    let club = |code: &str| row([json!("x"), json!(code), Value::Null, Value::Null, Value::Null]);
    run(&mut rules, &mut lookup, &[club("C001"), club("C002"), club("C404")]);
    assert_eq!(lookup.requests.len(), 1);
    assert!(rules.is_ready(&club("C001")) && rules.is_ready(&club("C404")));
    let errors = run(&mut rules, &mut lookup, &[club("C001"), club("C404")]);
    assert_eq!(lookup.requests.len(), 1, "known keys, found or not, are not asked again");
    assert_eq!(errors[1][0].rule, "exists");

    // 150 new keys do not fit beside the 3 known ones: the unneeded ones are dropped.
    let many: Vec<Row> = (0..150).map(|i| club(&format!("N{i:03}"))).collect();
    let mut held = vec![club("C001")];
    held.extend(many);
    for row in &held {
        rules.register(row);
    }
    rules.resolve(&mut lookup).unwrap();
    for row in &held {
        assert!(rules.check(row, &mut Vec::new()).is_ok(), "a held row's key is kept");
    }
    rules.end_batch();
    assert!(!rules.is_ready(&club("C404")), "C404 was dropped from the full cache");
    assert!(rules.rules[0].cache.len() <= 151 + 100);
}

// ---- comparisons and verdicts ----

#[test]
fn exists_not_exists_and_compare_reject_exactly_the_failing_rows() {
    let mut rules = build(
        json!([
            {"type": "exists", "resource": "clubs", "where": {"code": "club_code"}},
            {"type": "exists", "resource": "licences", "where": {"number": "licence_no"},
             "filter": {"void": false},
             "compare": [{"record_field": "status", "op": "eq", "value": "active"},
                         {"record_field": "valid_until", "op": "gte", "row_field": "paid_on"}]},
            {"type": "not_exists", "resource": "players", "where": {"name": "name"}}
        ]),
        Locale::En,
    );
    let mut lookup = clubs();
    let rows = [
        row([json!("Bo"), json!("C001"), json!(7), json!("2026-03-01"), Value::Null]),
        row([json!("Cy"), json!("C999"), json!(7), json!("2026-03-01"), Value::Null]),
        row([json!("Di"), json!("C001"), json!(8), json!("2025-03-01"), Value::Null]),
        row([json!("Ed"), json!("C001"), json!(7), json!("2027-03-01"), Value::Null]),
        row([json!("Anna"), json!("C001"), json!(7), Value::Null, Value::Null]),
        row([json!("Fu"), Value::Null, Value::Null, Value::Null, Value::Null]),
    ];
    let errors = run(&mut rules, &mut lookup, &rows);
    assert_eq!(lookup.requests.len(), 3, "one request per rule");
    let summary: Vec<Vec<(&str, &str, Value)>> = errors
        .iter()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    assert_eq!(e.layer, Layer::BusinessRules);
                    (e.rule.as_str(), e.field.as_deref().unwrap(), e.value.clone().unwrap())
                })
                .collect()
        })
        .collect();
    assert_eq!(summary[0], vec![]);
    assert_eq!(summary[1], vec![("exists", "club_code", json!("C999"))]);
    assert_eq!(summary[2], vec![("compare", "licence_no", json!(8))]);
    assert_eq!(summary[3], vec![("compare", "paid_on", json!("2027-03-01"))]);
    assert_eq!(summary[4], vec![("not_exists", "name", json!("Anna"))], "null paid_on skips");
    assert_eq!(summary[5], vec![], "null look-up fields skip every rule");
    assert_eq!(
        errors[2][0].message,
        "the record in 'licences' with number 8 has status 'expired', but it must be 'active'"
    );
    assert_eq!(
        errors[3][0].message,
        "the record in 'licences' with number 7 has valid_until '2026-12-31', but it must be at \
         least '2027-03-01' (the row's paid_on)"
    );
}

#[test]
fn compare_passes_when_any_matching_record_passes() {
    let mut rules = build(
        json!([{"type": "exists", "resource": "licences", "where": {"holder": "name"},
                "compare": [{"record_field": "status", "op": "in", "value": ["active", "pending"]}]}]),
        Locale::En,
    );
    let mut lookup = Records {
        items: vec![
            ("licences", record(json!({"_id": "a", "holder": "Bo", "status": "expired"}))),
            ("licences", record(json!({"_id": "b", "holder": "Bo", "status": "pending"}))),
            ("licences", record(json!({"_id": "c", "holder": "Cy", "status": "expired"}))),
            ("licences", record(json!({"_id": "d", "holder": "Di"}))),
        ],
        requests: Vec::new(),
        fail: false,
    };
    let rows = [
        row([json!("Bo"), Value::Null, Value::Null, Value::Null, Value::Null]),
        row([json!("Cy"), Value::Null, Value::Null, Value::Null, Value::Null]),
        row([json!("Di"), Value::Null, Value::Null, Value::Null, Value::Null]),
    ];
    let errors = run(&mut rules, &mut lookup, &rows);
    assert!(errors[0].is_empty());
    assert_eq!(
        errors[1][0].message,
        "the record in 'licences' with holder 'Cy' has status 'expired', but it must be one of \
         'active', 'pending'"
    );
    assert_eq!(
        errors[2][0].message,
        "the record in 'licences' with holder 'Di' has no status, but it must be one of 'active', \
         'pending'"
    );
}

#[test]
fn a_list_in_a_look_up_field_is_a_row_error() {
    let mut rules = build(
        json!([{"type": "exists", "resource": "clubs", "where": {"code": "club_code"}}]),
        Locale::Sv,
    );
    let bad = row([json!("x"), json!(["C001"]), Value::Null, Value::Null, Value::Null]);
    assert!(!rules.register(&bad));
    assert!(rules.is_ready(&bad));
    let mut errors = Vec::new();
    assert!(!rules.check(&bad, &mut errors).unwrap());
    assert_eq!((errors[0].rule.as_str(), errors[0].layer), ("exists", Layer::BusinessRules));
    assert!(errors[0].message.starts_with("värdet är en lista eller ett objekt"));
}

// ---- messages ----

#[test]
fn messages_are_in_swedish_and_english() {
    let config = json!([
        {"type": "exists", "resource": "clubs", "where": {"code": "club_code"}},
        {"type": "exists", "resource": "licences", "where": {"number": "licence_no"},
         "compare": [{"record_field": "valid_until", "op": "gte", "row_field": "paid_on"}]},
        {"type": "not_exists", "resource": "players", "where": {"name": "name"}}
    ]);
    let rows = [row([json!("Anna"), json!("C9"), json!(8), json!("2026-01-01"), Value::Null])];
    let mut en = build(config.clone(), Locale::En);
    let messages: Vec<String> =
        run(&mut en, &mut clubs(), &rows)[0].iter().map(|e| e.message.clone()).collect();
    assert_eq!(
        messages,
        vec![
            "no record in 'clubs' has code 'C9': check the value, or create the record in the \
             platform first",
            "the record in 'licences' with number 8 has valid_until '2025-12-31', but it must be \
             at least '2026-01-01' (the row's paid_on)",
            "a record in 'players' already has name 'Anna' (id p1): this row must not duplicate it",
        ]
    );
    let mut sv = build(config, Locale::Sv);
    let messages: Vec<String> =
        run(&mut sv, &mut clubs(), &rows)[0].iter().map(|e| e.message.clone()).collect();
    assert_eq!(
        messages,
        vec![
            "det finns ingen post i 'clubs' med code 'C9': kontrollera värdet, eller skapa posten \
             i plattformen först",
            "posten i 'licences' med number 8 har valid_until '2025-12-31', men det ska vara minst \
             '2026-01-01' (radens paid_on)",
            "det finns redan en post i 'players' med name 'Anna' (id p1): raden får inte bli en \
             dubblett",
        ]
    );
}

#[test]
fn a_rules_own_message_is_used_in_the_templates_language_with_placeholders() {
    let config = json!([
        {"type": "exists", "resource": "clubs", "where": {"code": "club_code"},
         "message": {"sv": "Klubben {value} finns inte ({field})", "en": "Club {value} unknown in {resource}"}},
        {"type": "not_exists", "resource": "players", "where": {"name": "name"},
         "message": {"en": "{value} is already a player"}}
    ]);
    let rows = [row([json!("Anna"), json!("C9"), Value::Null, Value::Null, Value::Null])];
    let sv: Vec<String> = run(&mut build(config.clone(), Locale::Sv), &mut clubs(), &rows)[0]
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(sv, vec!["Klubben 'C9' finns inte (club_code)", "'Anna' is already a player"]);
    let en: Vec<String> = run(&mut build(config, Locale::En), &mut clubs(), &rows)[0]
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(en, vec!["Club 'C9' unknown in clubs", "'Anna' is already a player"]);
}

#[test]
fn a_failed_look_up_is_an_error_naming_the_rule_not_a_row_error() {
    let mut rules = build(
        json!([{"type": "not_exists", "resource": "players", "where": {"name": "name"}}]),
        Locale::En,
    );
    let mut lookup = clubs();
    lookup.fail = true;
    rules.register(&row([json!("Anna"), Value::Null, Value::Null, Value::Null, Value::Null]));
    let error = rules.resolve(&mut lookup).unwrap_err();
    assert_eq!(
        error.to_string(),
        "business rule 0 (not_exists in 'players'): the look-up in the target API failed: 503 \
         Service Unavailable"
    );
}

#[test]
fn several_look_up_fields_name_the_first_and_report_all_values() {
    let mut rules = build(
        json!([{"type": "exists", "resource": "licences",
                "where": {"number": "licence_no", "season": "season"}}]),
        Locale::En,
    );
    let rows = [row([json!("A"), Value::Null, json!(7), Value::Null, json!(2025)])];
    let errors = run(&mut rules, &mut clubs(), &rows);
    assert_eq!(errors[0][0].field.as_deref(), Some("licence_no"));
    assert_eq!(errors[0][0].value, Some(json!({"licence_no": 7, "season": 2025})));
    assert_eq!(
        errors[0][0].message,
        "no record in 'licences' has number 7 and season 2025: check the value, or create the \
         record in the platform first"
    );
}
