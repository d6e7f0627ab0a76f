//! End-to-end: `intake demo` runs the engine of `intake serve` on its embedded fixtures from any
//! folder, with nothing else installed: files dropped into a watched inbox are imported into the
//! in-process sandbox, post-processed, and reported (runs, records, rejected rows, folders).

use std::process::Command;

/// The lines of `stdout` from the one equal to `header` (exclusive) to the next blank line.
fn section<'a>(stdout: &'a str, header: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .skip_while(|line| *line != header)
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect()
}

#[test]
fn the_demo_imports_every_dropped_fixture_through_the_service_and_reports_it() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("demo")
        .current_dir(elsewhere.path())
        .output()
        .expect("intake demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");

    // The upload in progress, and the file no template reads.
    assert!(stdout.contains("  bank-payments.csv.part  (an upload in progress"), "{stdout}");
    assert!(stdout.contains("bank-payments.csv.part renamed to bank-payments.csv"), "{stdout}");

    // Each run: file → resource (template): status, its counts and where the file went.
    let bank = section(&stdout, "runs:");
    assert_eq!(
        bank[..2],
        [
            "  bank-payments.csv → payments (Bankbetalningar (CSV, Windows-1252)): \
             partially_succeeded",
            "    rows read 16, valid 6, rejected 10; created 6, updated 0",
        ],
        "{stdout}"
    );
    assert!(
        bank[2].starts_with("    row 5: iban iban — IBAN-kontrollsiffrorna stämmer inte"),
        "{stdout}"
    );
    assert_eq!(bank[bank.len() - 1], "    file moved to completed/bank-payments.csv", "{stdout}");
    for (header, counts, reason, moved) in [
        (
            "  member-register.csv → players (Member and licence register): partially_succeeded",
            "    rows read 14, valid 6, rejected 8; created 6, updated 0",
            "    row 8: personal_identity_number personnr — ",
            "    file moved to completed/member-register.csv",
        ),
        (
            "  club-export.txt → clubs (Club register export (UTF-16, tab-separated)): \
             partially_succeeded",
            "    rows read 6, valid 2, rejected 4; created 2, updated 0",
            "    row 7: orgnr orgnr — ",
            "    file moved to completed/club-export.txt",
        ),
    ] {
        let run = section(&stdout, header);
        assert_eq!(run.first(), Some(&counts), "{header}:\n{stdout}");
        assert!(run.iter().any(|line| line.starts_with(reason)), "{reason:?} in:\n{stdout}");
        assert_eq!(run.last(), Some(&moved), "{header}:\n{stdout}");
    }
    let unmatched = section(&stdout, "  notes.txt → no template matches: failed");
    assert_eq!(unmatched.len(), 2, "{stdout}");
    assert!(unmatched[0].contains("unmatched_file: no active template"), "{stdout}");
    assert_eq!(unmatched[1], "    file moved to error/notes.txt", "{stdout}");

    // The records written per resource, and a clean stop of the service.
    let totals = section(&stdout, "records now on the platform (tenant 64a1b2c3d4e5f6789012abcd):");
    assert_eq!(totals, ["  payments  6", "  players   6", "  clubs     2"], "{stdout}");
    assert!(
        stdout.contains("the service stopped cleanly: 1 source(s), ")
            && stdout.contains("4 file(s) queued, 3 imported, 1 unmatched, 0 skipped, 0 failed"),
        "{stdout}"
    );
}
