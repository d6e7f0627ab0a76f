//! End-to-end: `intake demo` runs the whole path on its embedded fixtures from any folder, with
//! nothing else installed, and reports what was written and rejected.

use std::process::Command;

#[test]
fn the_demo_imports_every_fixture_into_its_in_process_sandbox() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("demo")
        .current_dir(elsewhere.path())
        .output()
        .expect("intake demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "bank-payments.csv → payments",
        "rows read 16, valid 6, rejected 10; created 6",
        "member-register.csv → players",
        "rows read 14, valid 6, rejected 8; created 6",
        "club-export.txt → clubs",
        "rows read 6, valid 2, rejected 4; created 2",
        "row 5: iban iban — IBAN-kontrollsiffrorna stämmer inte",
        "row 8: personal_identity_number personnr",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    let totals: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("records now")).collect();
    assert_eq!(totals[1..4], ["  payments  6", "  players   6", "  clubs     2"], "{stdout}");
}
