//! The events a finished import run raises, read off the stored run: `parse_error` or
//! `import_failed` for a failed run (by its `timings.failure`), `validation_failed` when the
//! template's `validation.alert_rejected_share` of its rows was rejected, `assert_empty_violation`
//! when an `assert_empty` template got rows, `import_succeeded` for every run that did not fail,
//! and `unmatched_file` for a file no template matched.

use intake_alerts::{AlertEvent, EventType, Severity};
use serde_json::Value;

use crate::store::{ImportRun, RunStatus};
use crate::template::Template;

/// Where a person can look at a run: `<public_url>/imports/runs/<id>` of the REST layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// The REST layer's public base URL (`[api] public_url`), if it has one.
    pub public_url: Option<String>,
}

impl Links {
    /// The run's URL, if there is a public URL.
    pub fn run(&self, run_id: &str) -> Option<String> {
        let base = self.public_url.as_deref()?.trim_end_matches('/');
        Some(format!("{base}/imports/runs/{run_id}"))
    }
}

/// The events of a finished run of `template`.
pub fn run_events(
    run: &ImportRun,
    template: &Template,
    tenant: &str,
    links: &Links,
) -> Vec<AlertEvent> {
    let body = &run.body;
    let file = body.source_name.as_deref().unwrap_or("(upload)");
    let counts = &body.counts;
    let event = |kind: EventType, severity: Severity, summary: String| {
        let mut event = AlertEvent::new(kind, severity, summary)
            .tag("tenant", tenant)
            .tag("template", template.name.as_str())
            .tag("resource", template.target_resource.as_str())
            .subject(run.meta.id.as_str());
        if let Some(source) = &body.source_id {
            event = event.tag("source", source.as_str());
        }
        if let Some(link) = links.run(&run.meta.id) {
            event = event.link(link);
        }
        event
    };
    let mut events = Vec::new();
    let share = template.validation.alert_rejected_share;
    if counts.rejected > 0 && counts.read > 0 {
        let rejected_share = counts.rejected as f64 / counts.read as f64;
        if rejected_share >= share {
            let severity =
                if counts.rejected == counts.read { Severity::Error } else { Severity::Warning };
            events.push(event(
                EventType::ValidationFailed,
                severity,
                format!(
                    "{file}: {} of {} rows were rejected ({:.1} %)",
                    counts.rejected,
                    counts.read,
                    rejected_share * 100.0
                ),
            ));
        }
    }
    let warnings = body.timings.get("warnings").and_then(Value::as_array);
    if let Some(warning) = warnings
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|warning| warning.starts_with("assert_empty"))
    {
        events.push(event(
            EventType::AssertEmptyViolation,
            Severity::Warning,
            format!("{file}: {warning}"),
        ));
    }
    match body.status {
        RunStatus::Failed => {
            let error = body.error.as_deref().unwrap_or("no reason recorded");
            let parse = body.timings.get("failure").and_then(Value::as_str) == Some("parse");
            let kind = if parse { EventType::ParseError } else { EventType::ImportFailed };
            events.push(event(kind, Severity::Error, format!("{file}: {error}")));
        }
        RunStatus::Succeeded | RunStatus::PartiallySucceeded => {
            events.push(event(
                EventType::ImportSucceeded,
                Severity::Info,
                format!(
                    "{file}: {} rows read, {} created, {} updated, {} deleted, {} rejected",
                    counts.read, counts.created, counts.updated, counts.deleted, counts.rejected
                ),
            ));
        }
        RunStatus::Queued | RunStatus::Running => {}
    }
    events
}

/// The `unmatched_file` event of the failed run recording a file of `source_id` that no
/// template matched.
pub fn unmatched_event(
    run: &ImportRun,
    source_id: &str,
    tenant: &str,
    links: &Links,
) -> AlertEvent {
    let file = run.body.source_name.as_deref().unwrap_or("(unknown)");
    let mut event = AlertEvent::new(
        EventType::UnmatchedFile,
        Severity::Warning,
        format!("no active template of source {source_id} matches {file:?}"),
    )
    .tag("tenant", tenant)
    .tag("source", source_id)
    .subject(run.meta.id.as_str());
    if let Some(link) = links.run(&run.meta.id) {
        event = event.link(link);
    }
    event
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::store::{ImportRunBody, Meta, RunCounts};

    fn template(share: f64) -> Template {
        let mut template = crate::template::load(
            "t.json",
            &json!({
                "name": "members", "file_type": "csv", "target_resource": "players",
                "field_mapping": [{"source": "a", "target": "a"}]
            })
            .to_string(),
        )
        .expect("template");
        template.validation.alert_rejected_share = share;
        template
    }

    fn run(status: RunStatus, read: u64, rejected: u64, timings: Value) -> ImportRun {
        ImportRun {
            meta: Meta {
                id: "r1".into(),
                tenant_id: "acme".into(),
                created_at: Utc::now(),
                updated_at: Utc::now(),
                revision_id: "x".into(),
                is_deleted: false,
                deleted_at: None,
            },
            body: ImportRunBody {
                status,
                source_id: Some("s1".into()),
                template_id: Some("t1".into()),
                claim_id: None,
                source_name: Some("in.csv".into()),
                counts: RunCounts {
                    read,
                    rejected,
                    valid: read - rejected,
                    ..RunCounts::default()
                },
                timings,
                error: (status == RunStatus::Failed).then(|| "boom".to_owned()),
                started_at: None,
                finished_at: None,
            },
        }
    }

    fn kinds(events: &[AlertEvent]) -> Vec<(EventType, Severity)> {
        events.iter().map(|e| (e.event_type, e.severity)).collect()
    }

    #[test]
    fn rejected_rows_raise_validation_failed_from_the_templates_share_on() {
        let links = Links { public_url: Some("https://intake.example/".into()) };
        let partial = run(RunStatus::PartiallySucceeded, 100, 4, json!({}));
        let events = run_events(&partial, &template(0.0), "acme", &links);
        assert_eq!(
            kinds(&events),
            [
                (EventType::ValidationFailed, Severity::Warning),
                (EventType::ImportSucceeded, Severity::Info)
            ]
        );
        assert_eq!(events[0].summary, "in.csv: 4 of 100 rows were rejected (4.0 %)");
        assert_eq!(events[0].tags["template"], "members");
        assert_eq!(events[0].tags["source"], "s1");
        assert_eq!(events[0].link.as_deref(), Some("https://intake.example/imports/runs/r1"));
        // Below a 5 % threshold: no validation_failed.
        let events = run_events(&partial, &template(0.05), "acme", &links);
        assert_eq!(kinds(&events), [(EventType::ImportSucceeded, Severity::Info)]);
    }

    #[test]
    fn failed_runs_raise_parse_error_or_import_failed_by_their_failure_kind() {
        let links = Links::default();
        let parse = run(RunStatus::Failed, 0, 0, json!({"failure": "parse"}));
        let events = run_events(&parse, &template(0.0), "acme", &links);
        assert_eq!(kinds(&events), [(EventType::ParseError, Severity::Error)]);
        assert_eq!(events[0].summary, "in.csv: boom");
        assert_eq!(events[0].link, None);
        let all_rejected = run(RunStatus::Failed, 3, 3, json!({"failure": "import"}));
        assert_eq!(
            kinds(&run_events(&all_rejected, &template(0.5), "acme", &links)),
            [
                (EventType::ValidationFailed, Severity::Error),
                (EventType::ImportFailed, Severity::Error)
            ]
        );
        let empty = run(
            RunStatus::PartiallySucceeded,
            2,
            0,
            json!({"warnings": ["assert_empty: the template expects an empty file, but it has 2 rows"]}),
        );
        assert_eq!(
            kinds(&run_events(&empty, &template(0.0), "acme", &links)),
            [
                (EventType::AssertEmptyViolation, Severity::Warning),
                (EventType::ImportSucceeded, Severity::Info)
            ]
        );
    }
}
