//! `fixtures/template.schema.json` is the published JSON Schema of an import template; it must
//! be exactly what the code generates. `INTAKE_BLESS=1` rewrites it after a deliberate change.

use std::path::{Path, PathBuf};

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
    let json_files_in = |dir: PathBuf| {
        std::fs::read_dir(dir)
            .expect("fixture folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect::<Vec<_>>()
    };
    let mut templates: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("fixtures")
        .map(|e| e.expect("entry").path().join("template.json"))
        .filter(|p| p.exists())
        .collect();
    templates.extend(json_files_in(fixtures.join("bench")));
    templates.extend(json_files_in(fixtures.join("bench/layers")));
    for template in &templates {
        let text = std::fs::read_to_string(template).expect("readable");
        let document: serde_json::Value = serde_json::from_str(&text).expect("json");
        let errors: Vec<String> = validator.iter_errors(&document).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", template.display());
        intake_engine::load(&template.display().to_string(), &text)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(templates.len() >= 10, "checked only {} templates", templates.len());
}
