//! Alert routing: which channels an event goes to, decided by the tenant's routing rules
//! (`/alert-routing-rules`).
//!
//! The rules, as the platform's spec defines them:
//! - every rule that is active (`is_active`, default `true`) and not soft-deleted (`is_deleted`)
//!   is evaluated, highest `priority` first (default `0`; rules of equal priority keep the order
//!   they were given in);
//! - a rule matches when the event's type is in its `event_types`, its severity is in its
//!   `severity`, and every `tags` pair is present with the same value among the event's tags
//!   (the event may carry more tags than the rule names);
//! - the `channel_ids` of all matching rules are collected without duplicates, each in the place
//!   of the highest-priority rule naming it;
//! - an event no rule matches — or whose matching rules name no channel — goes to the `log`
//!   channel ([`Route::Log`]), so no event is ever dropped silently.
//!
//! Absent and empty lists: `event_types`, `severity` and `channel_ids` are *required* by the spec,
//! so a rule without them does not parse; an *empty* `event_types` or `severity` list matches
//! nothing (no type is "in" an empty list). `tags` is optional: absent or `{}` puts no condition
//! on the event's tags.
//!
//! What this module is not: it does not fetch rules (the caller passes the rules of the event's
//! tenant, as listed from the platform) and does not deliver (see [`crate::channels`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::{AlertEvent, EventType, Severity};

/// The id of an `/alert-channels` item, as routing rules name it in `channel_ids`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelId(pub String);

impl ChannelId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ChannelId {
    fn from(id: &str) -> Self {
        ChannelId(id.to_owned())
    }
}

/// A routing rule, with every field of the platform's `/alert-routing-rules` resource under the
/// same names and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRoutingRule {
    /// The rule's id, set by the platform.
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The revision the stored rule is at (its ETag), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_id: Option<String>,
    /// When the rule was created (RFC 3339), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When the rule was last changed (RFC 3339), set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The owning tenant; read-only, set by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Soft-deleted rules are kept but never evaluated.
    #[serde(default)]
    pub is_deleted: bool,
    /// When the rule was soft-deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Whether personal data in the rule has been removed.
    #[serde(default)]
    pub is_depersonalized: bool,
    /// When personal data was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depersonalized_at: Option<String>,
    /// An id of the rule in the integrator's own system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Tag key-value pairs that must all match the event's tags; absent or empty: any tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Rule name for display, e.g. 'finance-critical-to-pagerduty'.
    pub name: String,
    /// Higher priority rules are evaluated first.
    #[serde(default)]
    pub priority: i64,
    /// Event types this rule matches, e.g. `["sla_violation", "parse_error"]`; empty: none.
    pub event_types: Vec<EventType>,
    /// Severity levels this rule matches, e.g. `["warning", "critical"]`; empty: none.
    pub severity: Vec<Severity>,
    /// The `/alert-channels` ids to dispatch to when this rule matches.
    pub channel_ids: Vec<ChannelId>,
    /// Inactive rules are never evaluated.
    #[serde(default = "active_by_default")]
    pub is_active: bool,
}

fn active_by_default() -> bool {
    true
}

impl AlertRoutingRule {
    /// Whether the rule is evaluated at all: active and not soft-deleted.
    pub fn is_live(&self) -> bool {
        self.is_active && !self.is_deleted
    }

    /// Whether `event` matches the rule's conditions (type, severity, every tag pair). Says
    /// nothing about whether the rule is live; [`route`] checks both.
    pub fn matches(&self, event: &AlertEvent) -> bool {
        self.event_types.contains(&event.event_type)
            && self.severity.contains(&event.severity)
            && self.tags.iter().all(|(key, value)| event.tags.get(key) == Some(value))
    }
}

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To these channels: never empty, no duplicates, ordered by the highest-priority matching
    /// rule naming each (then by their order within that rule).
    Channels(Vec<ChannelId>),
    /// No live rule matched, or the matching rules name no channel: to the `log` channel.
    Log,
}

/// Routes `event` by the tenant's `rules` (see the module documentation for the rules). Pure: no
/// I/O, no clock.
pub fn route(event: &AlertEvent, rules: &[AlertRoutingRule]) -> Route {
    let mut live: Vec<&AlertRoutingRule> = rules.iter().filter(|rule| rule.is_live()).collect();
    // A stable sort: rules of equal priority keep the order they were given in.
    live.sort_by_key(|rule| Reverse(rule.priority));
    let mut seen = HashSet::new();
    let mut channels = Vec::new();
    for rule in live.into_iter().filter(|rule| rule.matches(event)) {
        for id in &rule.channel_ids {
            if seen.insert(id) {
                channels.push(id.clone());
            }
        }
    }
    if channels.is_empty() { Route::Log } else { Route::Channels(channels) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str, priority: i64, channels: &[&str]) -> AlertRoutingRule {
        AlertRoutingRule {
            id: None,
            revision_id: None,
            created_at: None,
            updated_at: None,
            tenant_id: None,
            is_deleted: false,
            deleted_at: None,
            is_depersonalized: false,
            depersonalized_at: None,
            external_id: None,
            tags: BTreeMap::new(),
            name: name.to_owned(),
            priority,
            event_types: vec![EventType::ParseError, EventType::ImportFailed],
            severity: vec![Severity::Error, Severity::Critical],
            channel_ids: channels.iter().map(|id| ChannelId::from(*id)).collect(),
            is_active: true,
        }
    }

    fn ids(list: &[&str]) -> Route {
        Route::Channels(list.iter().map(|id| ChannelId::from(*id)).collect())
    }

    fn parse_error() -> AlertEvent {
        AlertEvent::new(EventType::ParseError, Severity::Error, "bad file")
            .tag("tenant", "acme")
            .tag("source", "bank-sftp")
    }

    #[test]
    fn rules_parse_with_the_spec_names_and_defaults() {
        let parsed: AlertRoutingRule = serde_json::from_value(json!({
            "_id": "64a1b2c3d4e5f6789012abcd",
            "revision_id": "r1",
            "name": "finance-critical-to-pagerduty",
            "event_types": ["sla_violation", "parse_error"],
            "severity": ["warning", "critical"],
            "channel_ids": ["64a1b2c3d4e5f6789012ab01"]
        }))
        .expect("a rule with only the required fields parses");
        assert_eq!(parsed.priority, 0);
        assert!(parsed.is_active && !parsed.is_deleted && parsed.is_live());
        assert!(parsed.tags.is_empty());
        assert_eq!(parsed.event_types, [EventType::SlaViolation, EventType::ParseError]);
        assert_eq!(parsed.severity, [Severity::Warning, Severity::Critical]);
        assert_eq!(parsed.id.as_deref(), Some("64a1b2c3d4e5f6789012abcd"));
    }

    #[test]
    fn rules_missing_a_required_list_or_naming_unknown_values_are_refused() {
        let without_severity = json!({
            "name": "r", "event_types": ["parse_error"], "channel_ids": ["c"]
        });
        let error = serde_json::from_value::<AlertRoutingRule>(without_severity)
            .expect_err("severity is required");
        assert!(error.to_string().contains("severity"), "{error}");

        let unknown_type = json!({
            "name": "r", "event_types": ["disk_full"], "severity": ["error"], "channel_ids": ["c"]
        });
        let error = serde_json::from_value::<AlertRoutingRule>(unknown_type)
            .expect_err("unknown event types are refused");
        assert!(error.to_string().contains("disk_full"), "{error}");

        let unknown_field = json!({
            "name": "r", "event_types": [], "severity": [], "channel_ids": [], "priorty": 3
        });
        let error = serde_json::from_value::<AlertRoutingRule>(unknown_field)
            .expect_err("misspelt fields are refused");
        assert!(error.to_string().contains("priorty"), "{error}");
    }

    #[test]
    fn higher_priority_rules_come_first_and_ties_keep_their_order() {
        let rules = [
            rule("low", -5, &["c-low"]),
            rule("tie-a", 10, &["c-tie-a"]),
            rule("high", 100, &["c-high"]),
            rule("tie-b", 10, &["c-tie-b"]),
            rule("default", 0, &["c-default"]),
        ];
        assert_eq!(
            route(&parse_error(), &rules),
            ids(&["c-high", "c-tie-a", "c-tie-b", "c-default", "c-low"])
        );
    }

    #[test]
    fn inactive_and_deleted_rules_are_skipped() {
        let mut inactive = rule("inactive", 50, &["c-inactive"]);
        inactive.is_active = false;
        let mut deleted = rule("deleted", 40, &["c-deleted"]);
        deleted.is_deleted = true;
        let rules = [inactive, deleted, rule("live", 0, &["c-live"])];
        assert_eq!(route(&parse_error(), &rules), ids(&["c-live"]));
        assert_eq!(route(&parse_error(), &rules[..2]), Route::Log);
    }

    #[test]
    fn event_type_and_severity_must_both_be_listed() {
        let rules = [rule("errors", 0, &["c1"])];
        let wrong_type = AlertEvent::new(EventType::SlaViolation, Severity::Error, "late");
        let wrong_severity = AlertEvent::new(EventType::ParseError, Severity::Warning, "odd");
        let both = AlertEvent::new(EventType::ImportFailed, Severity::Critical, "down");
        assert_eq!(route(&wrong_type, &rules), Route::Log);
        assert_eq!(route(&wrong_severity, &rules), Route::Log);
        assert_eq!(route(&both, &rules), ids(&["c1"]));
    }

    #[test]
    fn empty_event_type_or_severity_lists_match_nothing() {
        let mut no_types = rule("no-types", 0, &["c1"]);
        no_types.event_types.clear();
        let mut no_severities = rule("no-severities", 0, &["c2"]);
        no_severities.severity.clear();
        assert_eq!(route(&parse_error(), &[no_types, no_severities]), Route::Log);
    }

    #[test]
    fn every_tag_pair_of_a_rule_must_match_the_events_tags() {
        let mut acme_bank = rule("acme-bank", 0, &["c-acme-bank"]);
        acme_bank.tags.insert("tenant".into(), "acme".into());
        acme_bank.tags.insert("source".into(), "bank-sftp".into());
        let rules = [acme_bank, rule("untagged", 0, &["c-any"])];

        // Both pairs present (and one more tag on the event): the tagged rule matches too.
        let extra = parse_error().tag("template", "payments");
        assert_eq!(route(&extra, &rules), ids(&["c-acme-bank", "c-any"]));
        // One pair missing.
        let only_tenant =
            AlertEvent::new(EventType::ParseError, Severity::Error, "x").tag("tenant", "acme");
        assert_eq!(route(&only_tenant, &rules), ids(&["c-any"]));
        // Same keys, one value different.
        let other_source = parse_error().tag("source", "s3-drop");
        assert_eq!(route(&other_source, &rules), ids(&["c-any"]));
        // Tag values compare exactly.
        let other_case = parse_error().tag("tenant", "ACME");
        assert_eq!(route(&other_case, &rules), ids(&["c-any"]));
    }

    #[test]
    fn channels_named_by_several_rules_are_collected_once() {
        let rules = [
            rule("a", 1, &["c1", "c2", "c1"]),
            rule("b", 5, &["c2", "c3"]),
            rule("c", 0, &["c3", "c1", "c4"]),
        ];
        assert_eq!(route(&parse_error(), &rules), ids(&["c2", "c3", "c1", "c4"]));
    }

    #[test]
    fn an_event_nothing_routes_goes_to_the_log_channel() {
        assert_eq!(route(&parse_error(), &[]), Route::Log);
        let succeeded = AlertEvent::new(EventType::ImportSucceeded, Severity::Info, "ok");
        assert_eq!(route(&succeeded, &[rule("errors", 0, &["c1"])]), Route::Log);
        // A matching rule without channels routes nowhere, so the event still goes to the log.
        assert_eq!(route(&parse_error(), &[rule("empty", 0, &[])]), Route::Log);
    }
}
