//! The runner turns one ready file of a watched folder into a durable, exactly-once outcome:
//! against the sandbox on a real socket, a real folder and a SQLite store in a temporary folder.

// A failed set-up step or expectation should panic right there.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::Platform;
use intake_api::sandbox::Faults;
use intake_engine::Template;
use intake_engine::runner::{
    FileImport, FileOutcome, Placement, RunnerError, RunnerOptions, SkipReason, SourceContext,
    import_source_file,
};
use intake_engine::store::{ClaimState, ImportRun, ListQuery, RunStatus, Store};
use intake_sources::{FileEntry, SourceSettings, WatchedDirectory, WatchedDirectoryConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TENANT: &str = common::TENANT;

/// A folder source, a store and a sandbox.
struct Bench {
    platform: Platform,
    store: Store,
    inbox: PathBuf,
    source: SourceContext,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let store = Store::open(dir.path().join("state.db").to_str().unwrap()).await.unwrap();
        let folder = WatchedDirectory::build(
            &WatchedDirectoryConfig { path: inbox.clone() },
            &SourceSettings::named("inbox"),
        )
        .unwrap();
        let mut source = SourceContext::new("5f0000000000000000000001", Arc::new(folder));
        source.move_unmatched_to_error = true;
        Bench { platform: Platform::start().await, store, inbox, source, _dir: dir }
    }

    fn write(&self, path: &str, content: &str) {
        let full = self.inbox.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    async fn entry(&self, path: &str) -> FileEntry {
        self.source.source.stat(path).await.unwrap()
    }

    async fn import(&self, templates: &[Template], path: &str) -> FileOutcome {
        self.import_with(templates, path, &RunnerOptions::default(), CancellationToken::new())
            .await
            .unwrap()
    }

    async fn import_with(
        &self,
        templates: &[Template],
        path: &str,
        options: &RunnerOptions,
        cancel: CancellationToken,
    ) -> Result<FileOutcome, RunnerError> {
        let file = self.entry(path).await;
        import_source_file(FileImport {
            store: &self.store,
            tenant: TENANT,
            source: &self.source,
            templates,
            client: self.platform.writer_client(),
            file: &file,
            options,
            cancel,
        })
        .await
    }

    fn exists(&self, path: &str) -> bool {
        self.inbox.join(path).exists()
    }

    async fn rejected_records(&self, run: &ImportRun) -> Vec<Value> {
        let query = ListQuery::new().eq("import_run_id", run.meta.id.clone()).page(1, 1000);
        let page = self.store.list_rejected_records(TENANT, &query).await.unwrap();
        let mut records: Vec<Value> = page.items.iter().map(|r| r.to_json()).collect();
        records.sort_by_key(|r| r["row_number"].as_u64());
        records
    }
}

/// A template writing `id,name,age` rows to `resource` (create, natural key `member_no`).
fn template(name: &str, matcher: &str, priority: i64, resource: &str, policy: &str) -> Template {
    let value = json!({
        "name": name,
        "file_type": "csv",
        "target_resource": resource,
        "import_mode": "create",
        "file_matcher": matcher,
        "priority": priority,
        "post_process_policy": policy,
        "completed_folder": "completed",
        "error_folder": "failed",
        "field_mapping": common::member_mapping(),
        "validation": common::member_validation()
    });
    intake_engine::load(name, &value.to_string()).unwrap()
}

fn members(range: std::ops::RangeInclusive<u32>) -> String {
    let mut csv = String::from("id,name,age\n");
    for i in range {
        csv.push_str(&format!("{i},Member {i},{}\n", 20 + i % 50));
    }
    csv
}

fn imported(outcome: FileOutcome) -> (ImportRun, Placement) {
    match outcome {
        FileOutcome::Imported { run, placement, .. } => (*run, placement),
        other => panic!("expected an import, got {other:?}"),
    }
}

fn member_numbers(platform: &Platform, resource: &str) -> Vec<u64> {
    let mut numbers: Vec<u64> =
        platform.items(resource).iter().map(|i| i["member_no"].as_u64().unwrap()).collect();
    numbers.sort_unstable();
    numbers
}

#[tokio::test]
async fn a_file_is_imported_once_and_moved_to_the_completed_folder() {
    let bench = Bench::start().await;
    let templates = vec![template("members", "*.csv", 0, "players", "move")];
    bench.write("members.csv", &members(1..=3));

    let (run, placement) = imported(bench.import(&templates, "members.csv").await);
    assert_eq!(run.body.status, RunStatus::Succeeded, "{run:?}");
    let counts = run.body.counts;
    assert_eq!((counts.read, counts.valid, counts.rejected), (3, 3, 0));
    assert_eq!((counts.created, counts.updated, counts.skipped_already_written), (3, 0, 0));
    assert_eq!(run.body.template_id.as_deref(), Some("members"));
    assert!(run.body.timings["hash_ms"].is_u64() && run.body.timings["import_ms"].is_u64());
    assert_eq!(run.body.timings["post_process"]["to"], "completed/members.csv");
    assert_eq!(placement, Placement::Moved { to: "completed/members.csv".into() });
    assert!(!bench.exists("members.csv") && bench.exists("completed/members.csv"));
    assert_eq!(member_numbers(&bench.platform, "players"), vec![1, 2, 3]);

    let claim_id = run.body.claim_id.clone().unwrap();
    assert_eq!(bench.store.get_claim(TENANT, &claim_id).await.unwrap().state, ClaimState::Done);
    // The moved file is in a post-processing folder: never imported again.
    match bench.import(&templates, "completed/members.csv").await {
        FileOutcome::Skipped { reason: SkipReason::InPostProcessFolder, .. } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_same_file_again_is_skipped_and_a_changed_file_is_imported_again() {
    let bench = Bench::start().await;
    let templates = vec![template("members", "*.csv", 0, "players", "keep")];
    bench.write("members.csv", &members(1..=2));
    let (first, placement) = imported(bench.import(&templates, "members.csv").await);
    assert_eq!(first.body.status, RunStatus::Succeeded);
    assert_eq!(placement, Placement::Kept);

    match bench.import(&templates, "members.csv").await {
        FileOutcome::Skipped { reason: SkipReason::AlreadyImported, claim_id, placement } => {
            assert_eq!(claim_id, first.body.claim_id);
            assert_eq!(placement, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(member_numbers(&bench.platform, "players"), vec![1, 2]);

    bench.write("members.csv", &members(1..=4));
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(bench.inbox.join("members.csv"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (second, _) = imported(bench.import(&templates, "members.csv").await);
    assert_ne!(second.meta.id, first.meta.id);
    assert_eq!(second.body.status, RunStatus::Succeeded);
    // A new content hash means new idempotency keys: rows 1-2 are created again as the file
    // says (the template has no natural key), rows 3-4 are new.
    assert_eq!(second.body.counts.read, 4);
    assert_eq!(bench.platform.items("players").len(), 6);
}

#[tokio::test]
async fn rejected_rows_become_rejected_records_with_their_errors_and_original_data() {
    let bench = Bench::start().await;
    let templates = vec![template("members", "*.csv", 0, "players", "move")];
    bench.write("members.csv", "id,name,age\n1,Anna,31\n2,Björn,-4\n3,Chen,old\n4,Dana,40\n");

    let (run, placement) = imported(bench.import(&templates, "members.csv").await);
    assert_eq!(run.body.status, RunStatus::PartiallySucceeded);
    let counts = run.body.counts;
    assert_eq!((counts.read, counts.valid, counts.rejected, counts.created), (4, 2, 2, 2));
    assert_eq!(placement, Placement::Moved { to: "completed/members.csv".into() });
    assert_eq!(member_numbers(&bench.platform, "players"), vec![1, 4]);

    let records = bench.rejected_records(&run).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["row_number"], 3);
    assert_eq!(records[0]["original_data"], json!({"id": "2", "name": "Björn", "age": "-4"}));
    assert_eq!(records[0]["status"], "pending");
    assert_eq!(records[0]["template_id"], "members");
    assert_eq!(records[0]["validation_errors"][0]["field"], "age");
    assert_eq!(records[1]["row_number"], 4);
    assert_eq!(records[1]["original_data"]["age"], "old");
    assert!(!records[1]["validation_errors"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_unmatched_file_is_recorded_and_moved_to_the_error_folder() {
    let bench = Bench::start().await;
    let templates = vec![template("members", "*.csv", 0, "players", "move")];
    bench.write("notes.txt", "hello\n");

    let (run, placement) = match bench.import(&templates, "notes.txt").await {
        FileOutcome::Unmatched { run, placement } => (*run, placement),
        other => panic!("{other:?}"),
    };
    assert_eq!(run.body.status, RunStatus::Failed);
    assert_eq!(run.body.template_id, None);
    assert!(run.body.error.as_deref().unwrap().starts_with("unmatched_file:"), "{run:?}");
    assert_eq!(placement, Placement::Moved { to: "errors/notes.txt".into() });
    assert!(!bench.exists("notes.txt") && bench.exists("errors/notes.txt"));
    let claim = bench.store.get_claim(TENANT, run.body.claim_id.as_deref().unwrap()).await;
    assert_eq!(claim.unwrap().state, ClaimState::Failed);
    assert!(bench.platform.items("players").is_empty());
    // The event `intake serve` raises for it names the file and the source, linked to the run.
    let links = intake_engine::alerting::Links { public_url: Some("https://intake.test".into()) };
    let event = intake_engine::alerting::unmatched_event(&run, "inbox", TENANT, &links);
    assert_eq!(event.event_type, intake_alerts::EventType::UnmatchedFile);
    assert_eq!(event.summary, "no active template of source inbox matches \"notes.txt\"");
    assert_eq!(event.tags["source"], "inbox");
    assert_eq!(event.link, Some(format!("https://intake.test/imports/runs/{}", run.meta.id)));
}

#[tokio::test]
async fn the_matching_template_with_the_highest_priority_reads_the_file() {
    let bench = Bench::start().await;
    let templates = vec![
        template("generic", "*.csv", 1, "clubs", "keep"),
        template("members", "members_*.csv", 10, "players", "keep"),
    ];
    bench.write("members_2026.csv", &members(1..=2));
    bench.write("other.csv", &members(7..=7));

    let (run, _) = imported(bench.import(&templates, "members_2026.csv").await);
    assert_eq!(run.body.template_id.as_deref(), Some("members"));
    let (other, _) = imported(bench.import(&templates, "other.csv").await);
    assert_eq!(other.body.template_id.as_deref(), Some("generic"));
    assert_eq!(member_numbers(&bench.platform, "players"), vec![1, 2]);
    assert_eq!(member_numbers(&bench.platform, "clubs"), vec![7]);
}

#[tokio::test]
async fn a_file_with_every_row_rejected_fails_and_goes_to_the_error_folder() {
    let bench = Bench::start().await;
    let templates = vec![template("members", "*.csv", 0, "players", "move")];
    bench.write("bad.csv", "id,name,age\nx,Anna,1\n2,Björn,-1\n");

    let (run, placement) = imported(bench.import(&templates, "bad.csv").await);
    assert_eq!(run.body.status, RunStatus::Failed);
    assert!(run.body.error.as_deref().unwrap().contains("every row"), "{run:?}");
    assert_eq!(run.body.counts.rejected, 2);
    assert_eq!(placement, Placement::Moved { to: "failed/bad.csv".into() });
    assert!(bench.exists("failed/bad.csv"));
    assert_eq!(bench.rejected_records(&run).await.len(), 2);
    let claim = bench.store.get_claim(TENANT, run.body.claim_id.as_deref().unwrap()).await;
    assert_eq!(claim.unwrap().state, ClaimState::Failed);

    // A file that cannot be parsed at all fails too, with the reason.
    bench.write("broken.csv", "name,age\nAnna,1\n");
    let (run, placement) = imported(bench.import(&templates, "broken.csv").await);
    assert_eq!(run.body.status, RunStatus::Failed);
    assert!(run.body.error.is_some());
    assert_eq!(placement, Placement::Moved { to: "failed/broken.csv".into() });
}

#[tokio::test]
async fn post_processing_never_overwrites_a_file_already_in_the_folder() {
    let bench = Bench::start().await;
    let templates = vec![template("members", "*.csv", 0, "players", "move")];
    bench.write("completed/members.csv", "an older file\n");
    bench.write("members.csv", &members(1..=1));

    let (run, placement) = imported(bench.import(&templates, "members.csv").await);
    assert_eq!(placement, Placement::Moved { to: "completed/members (1).csv".into() });
    assert_eq!(run.body.timings["post_process"]["to"], "completed/members (1).csv");
    let old = std::fs::read_to_string(bench.inbox.join("completed/members.csv")).unwrap();
    assert_eq!(old, "an older file\n");
    assert!(bench.exists("completed/members (1).csv") && !bench.exists("members.csv"));
}

#[tokio::test]
async fn a_run_interrupted_half_way_resumes_without_duplicates() {
    let bench = Bench::start().await;
    let templates = vec![template("members", "*.csv", 0, "players", "move")];
    let rows = 120u64;
    bench.write("members.csv", &members(1..=rows as u32));
    bench.platform.set_faults(Faults { latency_ms: 20, ..Faults::default() });

    // The first attempt stops after some rows are written (as a worker killed mid-file would).
    let cancel = CancellationToken::new();
    let watcher = {
        let (cancel, platform_items) = (cancel.clone(), bench.platform.sandbox.clone());
        tokio::spawn(async move {
            while platform_items.items(TENANT, "players").len() < 30 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cancel.cancel();
        })
    };
    let options =
        RunnerOptions { progress_interval: Duration::from_millis(50), ..Default::default() };
    let stopped = bench.import_with(&templates, "members.csv", &options, cancel).await;
    watcher.await.unwrap();
    let Err(RunnerError::Cancelled { run_id, .. }) = stopped else { panic!("{stopped:?}") };
    let run = bench.store.get_run(TENANT, &run_id).await.unwrap();
    assert_eq!(run.body.status, RunStatus::Running);
    let claim = bench.store.get_claim(TENANT, run.body.claim_id.as_deref().unwrap()).await;
    assert_eq!(claim.unwrap().state, ClaimState::Importing);
    let written_before = bench.platform.items("players").len() as u64;
    assert!(written_before > 0 && written_before < rows, "{written_before}");
    assert!(bench.exists("members.csv"));

    // Seen again without permission to resume: somebody may still be importing it.
    match bench.import(&templates, "members.csv").await {
        FileOutcome::Skipped { reason: SkipReason::InFlight, .. } => {}
        other => panic!("{other:?}"),
    }

    // The recovering worker resumes the same run.
    bench.platform.set_faults(Faults::default());
    let resume = RunnerOptions { resume_unfinished: true, ..Default::default() };
    let outcome =
        bench.import_with(&templates, "members.csv", &resume, CancellationToken::new()).await;
    let FileOutcome::Imported { run, resumed, placement } = outcome.unwrap() else {
        panic!("not imported")
    };
    assert!(resumed);
    assert_eq!(run.meta.id, run_id);
    assert_eq!(run.body.status, RunStatus::Succeeded, "{run:?}");
    let counts = run.body.counts;
    assert_eq!(counts.read, rows);
    assert_eq!(counts.created + counts.skipped_already_written, rows, "{counts:?}");
    assert!(counts.skipped_already_written >= 1, "{counts:?}");
    assert_eq!(member_numbers(&bench.platform, "players"), (1..=rows).collect::<Vec<_>>());
    assert_eq!(placement, Placement::Moved { to: "completed/members.csv".into() });
    let moved: Vec<_> = std::fs::read_dir(bench.inbox.join("completed")).unwrap().collect();
    assert_eq!(moved.len(), 1);
}

#[tokio::test]
async fn a_move_left_undone_by_a_crash_is_carried_out_once_when_the_file_is_seen_again() {
    let bench = Bench::start().await;
    let templates = vec![template("members", "*.csv", 0, "players", "move")];
    bench.write("members.csv", &members(1..=2));
    let (run, _) = imported(bench.import(&templates, "members.csv").await);

    // Put the file back as if the process died after finishing the run, before the move:
    // same bytes, same modification time.
    let moved = bench.inbox.join("completed/members.csv");
    let mtime = std::fs::metadata(&moved).unwrap().modified().unwrap();
    std::fs::rename(&moved, bench.inbox.join("members.csv")).unwrap();
    let file = std::fs::File::options().write(true).open(bench.inbox.join("members.csv"));
    file.unwrap().set_modified(mtime).unwrap();

    match bench.import(&templates, "members.csv").await {
        FileOutcome::Skipped { reason: SkipReason::AlreadyImported, placement, claim_id } => {
            assert_eq!(claim_id, run.body.claim_id);
            assert_eq!(placement, Some(Placement::Moved { to: "completed/members.csv".into() }));
        }
        other => panic!("{other:?}"),
    }
    assert!(!bench.exists("members.csv") && bench.exists("completed/members.csv"));
    assert!(!bench.exists("completed/members (1).csv"));
    assert_eq!(bench.platform.items("players").len(), 2);
}
