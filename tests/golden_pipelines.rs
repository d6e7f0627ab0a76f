//! Golden tests: every `fixtures/<case>/` with a `template.json`, an `input.*` and an
//! `expected.jsonl` runs through the same code path as `intake check --format json --include-valid`, and the
//! output must match line for line. A new case is a folder, not new code.
//!
//! `INTAKE_BLESS=1 cargo test --test golden_pipelines` rewrites the expected files; read the diff.

use std::fs;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn input_of(case: &Path) -> Option<PathBuf> {
    fs::read_dir(case)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_stem().is_some_and(|s| s == "input"))
}

fn run_case(case: &Path) -> String {
    let template_text = fs::read_to_string(case.join("template.json")).expect("template");
    let template = intake_engine::load("template.json", &template_text).expect("template loads");
    let input = input_of(case).expect("input file");
    let name = input.file_name().expect("name").to_string_lossy().into_owned();
    let file = fs::File::open(&input).expect("input opens");
    let mut lines = Vec::new();
    let report = intake_engine::check_file(
        &template,
        &name,
        file,
        |outcome| lines.push(outcome.to_json()),
        |_| {},
    )
    .expect("file checks");
    lines.push(serde_json::json!({ "summary": report }));
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn every_fixture_case_matches_its_expected_report() {
    let mut cases = 0;
    for entry in fs::read_dir(fixtures()).expect("fixtures dir") {
        let case = entry.expect("entry").path();
        let expected_path = case.join("expected.jsonl");
        if !case.join("template.json").exists() || input_of(&case).is_none() {
            continue;
        }
        let actual = run_case(&case);
        if std::env::var_os("INTAKE_BLESS").is_some() {
            fs::write(&expected_path, &actual).expect("bless");
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
        for (n, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
            assert_eq!(a, e, "{}: line {} differs", case.display(), n + 1);
        }
        assert_eq!(actual.lines().count(), expected.lines().count(), "{}", case.display());
        cases += 1;
    }
    assert!(cases >= 2, "expected at least two golden cases, found {cases}");
}
