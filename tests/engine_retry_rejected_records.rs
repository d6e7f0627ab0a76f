//! A rejected record an operator corrected goes through mapping, validation and write again:
//! `retried` when written, back to `pending` with fresh errors when not. Against the sandbox on a
//! real socket, a real folder and a SQLite store in a temporary folder.

// A failed set-up step or expectation should panic right there.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::Platform;
use intake_engine::Template;
use intake_engine::runner::{
    FileImport, FileOutcome, RecordsRetry, RetryOutcome, RetryReport, RunnerOptions, SourceContext,
    import_source_file, retry_rejected_records,
};
use intake_engine::store::{ListQuery, RejectedRecord, RejectedStatus, Store};
use intake_sources::{SourceSettings, WatchedDirectory, WatchedDirectoryConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TENANT: &str = common::TENANT;

/// A sandbox, a store, and one imported file with rejected rows.
struct Bench {
    platform: Platform,
    store: Store,
    templates: Vec<Template>,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// Imports `content` as `members.csv` with the members template; `players` refuses an age
    /// over 120 on the platform side.
    async fn import(content: &str) -> (Bench, Vec<RejectedRecord>) {
        Bench::import_file("members.csv", content.as_bytes()).await
    }

    /// Imports `content` as the file `name` with the members template (see [`Bench::import`]).
    async fn import_file(name: &str, content: &[u8]) -> (Bench, Vec<RejectedRecord>) {
        let platform = Platform::start_with(|config| {
            config.schemas.insert(
                "players".into(),
                json!({"type": "object", "properties": {"age": {"type": "integer", "maximum": 120}}}),
            );
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        std::fs::write(inbox.join(name), content).unwrap();
        let store = Store::open(dir.path().join("state.db").to_str().unwrap()).await.unwrap();
        let folder = WatchedDirectory::build(
            &WatchedDirectoryConfig { path: inbox },
            &SourceSettings::named("inbox"),
        )
        .unwrap();
        let source = SourceContext::new("5f0000000000000000000001", Arc::new(folder));
        let templates = vec![template()];
        let file = source.source.stat(name).await.unwrap();
        let outcome = import_source_file(FileImport {
            store: &store,
            tenant: TENANT,
            source: &source,
            templates: &templates,
            client: platform.writer_client(),
            file: &file,
            options: &RunnerOptions::default(),
            cancel: CancellationToken::new(),
        })
        .await
        .unwrap();
        let FileOutcome::Imported { run, .. } = outcome else { panic!("{outcome:?}") };
        let query = ListQuery::new().eq("import_run_id", run.meta.id.clone()).page(1, 100);
        let mut rejected = store.list_rejected_records(TENANT, &query).await.unwrap().items;
        rejected.sort_by_key(|r| r.body.row_number);
        (Bench { platform, store, templates, _dir: dir }, rejected)
    }

    async fn correct(&self, record: &RejectedRecord, data: Value) {
        self.store.correct_rejected_record(TENANT, &record.meta.id, None, data).await.unwrap();
    }

    async fn retry(&self, ids: &[&str]) -> RetryReport {
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        retry_rejected_records(RecordsRetry {
            store: &self.store,
            tenant: TENANT,
            record_ids: &ids,
            templates: &self.templates,
            client: self.platform.writer_client(),
            cancel: CancellationToken::new(),
        })
        .await
        .unwrap()
    }

    async fn record(&self, id: &str) -> RejectedRecord {
        self.store.get_rejected_record(TENANT, id).await.unwrap()
    }

    async fn history(&self, id: &str) -> Vec<(Option<RejectedStatus>, RejectedStatus)> {
        let history = self.store.rejected_record_history(TENANT, id).await.unwrap();
        history.into_iter().map(|h| (h.from_status, h.to_status)).collect()
    }

    fn member_numbers(&self) -> Vec<u64> {
        let mut numbers: Vec<u64> = self
            .platform
            .items("players")
            .iter()
            .map(|i| i["member_no"].as_u64().unwrap())
            .collect();
        numbers.sort_unstable();
        numbers
    }
}

/// `id,name,age` rows to `players` (create, no natural key: only the idempotency key guards
/// against a second write).
fn template() -> Template {
    let value = json!({
        "name": "members",
        "file_type": "csv",
        "target_resource": "players",
        "import_mode": "create",
        "file_matcher": "members.csv*",
        "field_mapping": common::member_mapping(),
        "validation": common::member_validation()
    });
    intake_engine::load("members", &value.to_string()).unwrap()
}

const FILE: &str = "id,name,age\n1,Anna,31\n2,Björn,-4\n3,Chen,old\n";

fn id(record: &RejectedRecord) -> &str {
    &record.meta.id
}

#[tokio::test]
async fn a_corrected_record_is_written_and_becomes_retried() {
    let (bench, rejected) = Bench::import(FILE).await;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let bjorn = &rejected[0];
    assert_eq!(bjorn.body.original_data, json!({"id": "2", "name": "Björn", "age": "-4"}));
    assert_eq!(bench.member_numbers(), vec![1]);

    bench.correct(bjorn, json!({"id": "2", "name": "Björn", "age": "44"})).await;
    let report = bench.retry(&[id(bjorn)]).await;
    let Some(RetryOutcome::Retried { effect, id: Some(created) }) = report.outcome(id(bjorn))
    else {
        panic!("{report:?}")
    };
    assert_eq!(effect, "created");
    assert_eq!((report.retried(), report.still_pending(), report.refused()), (1, 0, 0));

    assert_eq!(bench.member_numbers(), vec![1, 2]);
    let written = bench.platform.item_where("players", "member_no", &json!(2));
    assert_eq!(&written["_id"], created);
    assert_eq!((&written["name"], &written["age"]), (&json!("Björn"), &json!(44)));

    let record = bench.record(id(bjorn)).await;
    assert_eq!(record.body.status, RejectedStatus::Retried);
    assert_eq!(record.body.corrected_data.unwrap()["age"], "44");
    use RejectedStatus::*;
    let moves = bench.history(id(bjorn)).await.into_iter().skip_while(|m| m.0.is_none());
    assert_eq!(
        moves.collect::<Vec<_>>(),
        vec![(Some(Pending), Corrected), (Some(Corrected), Retried)]
    );
    // The other record was not asked for: untouched.
    assert_eq!(bench.record(id(&rejected[1])).await.body.status, Pending);
}

#[tokio::test]
async fn a_correction_that_is_still_invalid_goes_back_to_pending_with_fresh_errors() {
    let (bench, rejected) = Bench::import(FILE).await;
    let (bjorn, chen) = (&rejected[0], &rejected[1]);
    // Still negative (template validation), and past the platform's maximum (its 422).
    bench.correct(bjorn, json!({"id": "2", "name": "Björn", "age": "-5"})).await;
    bench.correct(chen, json!({"id": "3", "name": "Chen", "age": "150"})).await;

    let report = bench.retry(&[id(bjorn), id(chen)]).await;
    assert_eq!((report.retried(), report.still_pending()), (0, 2), "{report:?}");
    assert_eq!(bench.member_numbers(), vec![1]);

    let record = bench.record(id(bjorn)).await;
    assert_eq!(record.body.status, RejectedStatus::Pending);
    let errors = record.body.validation_errors.as_array().unwrap();
    assert_eq!(errors[0]["field"], "age", "{errors:?}");
    assert_eq!(errors[0]["value"], -5, "fresh errors, not the import's: {errors:?}");
    assert_eq!(record.body.corrected_data.unwrap()["age"], "-5", "the correction is kept");

    let record = bench.record(id(chen)).await;
    assert_eq!(record.body.status, RejectedStatus::Pending);
    let errors = record.body.validation_errors.as_array().unwrap();
    assert_eq!(errors[0]["layer"], "write", "{errors:?}");
    use RejectedStatus::*;
    let last = bench.history(id(chen)).await.pop().unwrap();
    assert_eq!(last, (Some(Corrected), Pending));

    // Corrected once more, it goes through.
    bench.correct(chen, json!({"id": "3", "name": "Chen", "age": "60"})).await;
    let report = bench.retry(&[id(chen)]).await;
    assert_eq!(report.retried(), 1, "{report:?}");
    assert_eq!(bench.member_numbers(), vec![1, 3]);
}

#[tokio::test]
async fn a_record_without_corrected_data_is_refused_and_left_unchanged() {
    let (bench, rejected) = Bench::import(FILE).await;
    let before = bench.record(id(&rejected[0])).await;
    let report = bench.retry(&[id(&rejected[0]), "5f00000000000000000000ff"]).await;
    let Some(RetryOutcome::Refused { reason }) = report.outcome(id(&rejected[0])) else {
        panic!("{report:?}")
    };
    assert!(reason.contains("no corrected_data"), "{reason}");
    assert!(matches!(
        report.outcome("5f00000000000000000000ff"),
        Some(RetryOutcome::Refused { .. })
    ));
    assert_eq!(bench.record(id(&rejected[0])).await, before);
    assert_eq!(bench.member_numbers(), vec![1]);
}

#[tokio::test]
async fn retrying_the_same_correction_twice_writes_it_once() {
    let (bench, rejected) = Bench::import(FILE).await;
    let bjorn = &rejected[0];
    bench.correct(bjorn, json!({"id": "2", "name": "Björn", "age": "44"})).await;

    // Two jobs racing on the same record (a job re-delivered while the first still runs).
    let ids = [id(bjorn)];
    let (a, b) = tokio::join!(bench.retry(&ids), bench.retry(&ids));
    assert_eq!(a.retried() + b.retried(), 1, "{a:?} {b:?}");
    assert_eq!(bench.member_numbers(), vec![1, 2]);

    // And once more after it was retried: refused, nothing written.
    let again = bench.retry(&[id(bjorn)]).await;
    let Some(RetryOutcome::Refused { reason }) = again.outcome(id(bjorn)) else {
        panic!("{again:?}")
    };
    assert!(reason.contains("retried"), "{reason}");
    assert_eq!(bench.member_numbers(), vec![1, 2]);
    assert_eq!(bench.record(id(bjorn)).await.body.status, RejectedStatus::Retried);
}

#[tokio::test]
async fn a_row_the_api_refused_in_a_gzipped_file_keeps_its_original_data() {
    use std::io::Write;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(b"id,name,age\n1,Anna,31\n2,Dana,150\n").unwrap();
    let (bench, rejected) = Bench::import_file("members.csv.gz", &gzip.finish().unwrap()).await;
    // Valid in the file, refused by the platform (age over 120): its data is read back from the
    // file through the same pre-flight (gunzip) as the import.
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].body.row_number, 3);
    assert_eq!(rejected[0].body.original_data, json!({"id": "2", "name": "Dana", "age": "150"}));
    assert_eq!(bench.member_numbers(), vec![1]);
}
