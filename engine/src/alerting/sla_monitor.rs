//! The SLA monitor: for every active template of the tenant with a `schedule_expectation`, the
//! expected-delivery windows whose deadline has passed are checked against the template's import
//! runs (a run is created when a file for the template arrives). A window without one raises one
//! `sla_violation`; a late file, arriving before the next window's deadline, raises
//! `sla_recovered` with the same `dedup_key` (`sla:<template id>:<expected time>`), so PagerDuty
//! resolves the incident the violation opened.
//!
//! The stored alerts are the monitor's ledger: a window whose `sla_violation` (or
//! `sla_recovered`) is in `/alerts` was reported, so each is raised once however often the
//! monitor runs and across restarts. Windows are looked at from the template's creation, at
//! most [`LOOKBACK`] back.

use chrono::{DateTime, Duration, Utc};
use intake_alerts::{AlertEvent, EventType, Schedule, ScheduleExpectation, Severity, Verdict};
use serde_json::Value;

use super::Alerting;
use crate::store::{Collection, Document, FilterOp, ListQuery, StoreError};

/// How far back the monitor looks for windows it has not decided yet.
pub const LOOKBACK: Duration = Duration::days(7);

/// Checks every template's windows due by `now`; see the module documentation.
pub async fn check(alerting: &Alerting, now: DateTime<Utc>) -> Result<(), StoreError> {
    let tenant = alerting.tenant().to_owned();
    let templates =
        alerting.store().list_all(Collection::Templates, &tenant, ListQuery::new()).await?;
    for template in &templates {
        let active = template.body.get("is_active").and_then(Value::as_bool).unwrap_or(true);
        if !active || template.meta.is_deleted {
            continue;
        }
        let Some(field) = template.body.get("schedule_expectation") else { continue };
        let Some(checked) = ScheduleExpectation::schedule_of(field) else { continue };
        let (expectation, schedule) = match checked {
            Ok(checked) => checked,
            Err(problem) => {
                tracing::warn!(template = %template.meta.id, %problem, "schedule_expectation is not valid; not monitored");
                continue;
            }
        };
        check_template(alerting, template, &expectation, &schedule, now).await?;
    }
    Ok(())
}

async fn check_template(
    alerting: &Alerting,
    template: &Document,
    expectation: &ScheduleExpectation,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let since = template.meta.created_at.max(now - LOOKBACK);
    let windows = schedule.windows_due(since, now);
    let Some(first) = windows.first() else { return Ok(()) };
    let template_id = template.meta.id.as_str();
    let name = template.body.get("name").and_then(Value::as_str).unwrap_or(template_id);
    let deliveries = deliveries(alerting, template_id, first.opens_after).await?;
    for (index, window) in windows.iter().enumerate() {
        let next_deadline =
            windows.get(index + 1).map(|w| w.deadline).or_else(|| schedule.next_deadline(window));
        let Verdict::Missed { recovered_at } =
            Schedule::verdict(window, next_deadline, &deliveries)
        else {
            continue;
        };
        let key = format!("sla:{template_id}:{}", window.expected_at.to_rfc3339());
        let local = |t: DateTime<Utc>| match expectation.timezone.parse::<chrono_tz::Tz>() {
            Ok(tz) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
            Err(_) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        };
        let event = |kind: EventType, severity: Severity, summary: String| {
            AlertEvent::new(kind, severity, summary)
                .tag("tenant", alerting.tenant())
                .tag("template", name)
                .subject(template_id)
                .dedup_key(key.as_str())
        };
        let violated = reported(alerting, &key, EventType::SlaViolation).await?;
        if !violated {
            let summary = format!(
                "no file for template {name} arrived for {} (deadline {}, {} minutes tolerance)",
                local(window.expected_at),
                local(window.deadline),
                expectation.tolerance_minutes
            );
            alerting
                .raise_to(
                    event(EventType::SlaViolation, expectation.severity, summary),
                    &expectation.alert_channels,
                )
                .await;
        }
        if let Some(arrived) = recovered_at
            && !reported(alerting, &key, EventType::SlaRecovered).await?
        {
            let late = (arrived - window.deadline).num_minutes();
            let summary = format!(
                "a file for template {name} arrived at {}, {late} minutes after the deadline of \
                 the delivery expected {}",
                local(arrived),
                local(window.expected_at)
            );
            alerting
                .raise_to(
                    event(EventType::SlaRecovered, Severity::Info, summary),
                    &expectation.alert_channels,
                )
                .await;
        }
    }
    Ok(())
}

/// When files for the template arrived after `after`: its runs' creation times.
async fn deliveries(
    alerting: &Alerting,
    template_id: &str,
    after: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, StoreError> {
    let mut query = ListQuery::new().eq("template_id", template_id);
    if after > DateTime::<Utc>::MIN_UTC {
        query = query.filter("created_at", FilterOp::Gt, after.to_rfc3339());
    }
    let runs = alerting.store().list_all(Collection::ImportRuns, alerting.tenant(), query).await?;
    Ok(runs.iter().map(|run| run.meta.created_at).collect())
}

/// Whether an event of `kind` with `key` was already raised (is in the ledger).
async fn reported(alerting: &Alerting, key: &str, kind: EventType) -> Result<bool, StoreError> {
    let query = ListQuery::new().eq("dedup_key", key).eq("event_type", kind.as_str()).page(1, 1);
    let page = alerting.store().list(Collection::Alerts, alerting.tenant(), &query).await?;
    Ok(!page.items.is_empty())
}
