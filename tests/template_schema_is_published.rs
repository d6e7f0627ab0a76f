//! `fixtures/template.schema.json` is the published JSON Schema of an import template; it must
//! be exactly what the code generates. `INTAKE_BLESS=1` rewrites it after a deliberate change.

use std::path::Path;

#[test]
fn the_published_template_schema_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/template.schema.json");
    let generated =
        serde_json::to_string_pretty(&intake_engine::template_schema()).expect("json") + "\n";
    if std::env::var_os("INTAKE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("bless");
    }
    let published = std::fs::read_to_string(&path).expect("fixtures/template.schema.json exists");
    assert!(
        published == generated,
        "fixtures/template.schema.json is out of date: run INTAKE_BLESS=1 cargo test --test template_schema_is_published"
    );
}

#[test]
fn every_fixture_template_is_valid_under_the_published_schema_and_loads() {
    let schema = intake_engine::template_schema();
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut checked = 0;
    let layers = fixtures.join("bench/layers");
    let folders = std::fs::read_dir(&fixtures)
        .expect("fixtures")
        .map(|e| e.expect("entry").path().join("template.json"));
    let bench_layers =
        std::fs::read_dir(layers).expect("bench layers").map(|e| e.expect("entry").path());
    for template in folders.chain(bench_layers) {
        if let Ok(text) = std::fs::read_to_string(&template) {
            let document: serde_json::Value = serde_json::from_str(&text).expect("json");
            let errors: Vec<String> =
                validator.iter_errors(&document).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", template.display());
            checked += 1;
        }
    }
    assert!(checked >= 8, "checked only {checked} templates");
}
