//! What a person reads: an [`Alert`] rendered to a title, a plain-text body and an HTML body with
//! minijinja templates. Every event type has a default wording saying what happened and what to
//! do; a channel may replace any of the three templates (`title_template`, `text_template`,
//! `html_template` in its `config`).
//!
//! A template sees:
//! - `event`: the alert's event — `event_type`, `severity`, `summary`, `tags` (a map: `tenant`,
//!   `template`, `source`, `resource`, …), `subject` (the run or source id), `link`,
//!   `dedup_key`;
//! - `headline`: the event type's default headline ("Rows were rejected");
//! - `advice`: the event type's default advice ("Review the rejected records …");
//! - `digest`: for a quiet-hours digest, every held event (each as `event` above); empty
//!   otherwise;
//! - `held_back`: how many alerts the channel's rate limit suppressed before this one.
//!
//! The HTML template is auto-escaped; the title and text are not. Undefined names render empty,
//! so a template naming a tag an event lacks still renders. A template that does not compile is
//! a channel config problem, reported when the channel is built.

use minijinja::value::Serde;
use minijinja::{Environment, Value as JinjaValue, context};
use serde::{Deserialize, Serialize};

use crate::channels::ConfigProblem;
use crate::event::{Alert, EventType};

/// The default title template.
pub const DEFAULT_TITLE: &str = "[intake] {{ event.severity|upper }}: {{ headline }}\
{% if event.tags.template %} ({{ event.tags.template }}){% elif event.tags.source %} \
({{ event.tags.source }}){% endif %}{% if digest %}: {{ digest|length }} alerts held during \
quiet hours{% endif %}";

/// The default plain-text body template.
pub const DEFAULT_TEXT: &str = "{% if digest %}{{ digest|length }} alerts were held during this \
channel's quiet hours:
{% for e in digest %}
- [{{ e.severity }}] {{ e.event_type }}: {{ e.summary }}{% if e.link %} <{{ e.link }}>\
{% elif e.subject %} ({{ e.subject }}){% endif %}{% endfor %}
{% else %}{{ headline }}

{{ event.summary }}

{{ advice }}
{% endif %}
Severity: {{ event.severity }}
Event: {{ event.event_type }}
{% for key, value in event.tags|items %}{{ key|capitalize }}: {{ value }}
{% endfor %}{% if event.subject %}Concerns: {{ event.subject }}
{% endif %}{% if event.link %}Details: {{ event.link }}
{% endif %}{% if held_back %}
{{ held_back }} earlier alert(s) to this channel were held back by its rate limit \
(max_alerts_per_5min).
{% endif %}";

/// The default HTML body template.
pub const DEFAULT_HTML: &str = "<!DOCTYPE html>
<html><body style=\"font-family: sans-serif\">
{% if digest %}<h2>{{ digest|length }} alerts held during quiet hours</h2>
<ul>{% for e in digest %}<li><strong>{{ e.severity }}</strong> {{ e.event_type }}: \
{{ e.summary }}{% if e.link %} (<a href=\"{{ e.link }}\">details</a>){% endif %}</li>\
{% endfor %}</ul>
{% else %}<h2>{{ headline }}</h2>
<p>{{ event.summary }}</p>
<p>{{ advice }}</p>
{% endif %}<table>
<tr><th align=\"left\">Severity</th><td>{{ event.severity }}</td></tr>
<tr><th align=\"left\">Event</th><td>{{ event.event_type }}</td></tr>
{% for key, value in event.tags|items %}<tr><th align=\"left\">{{ key|capitalize }}</th>\
<td>{{ value }}</td></tr>
{% endfor %}{% if event.subject %}<tr><th align=\"left\">Concerns</th>\
<td>{{ event.subject }}</td></tr>{% endif %}
</table>
{% if event.link %}<p><a href=\"{{ event.link }}\">Open in intake</a></p>{% endif %}
{% if held_back %}<p>{{ held_back }} earlier alert(s) to this channel were held back by its rate \
limit (max_alerts_per_5min).</p>{% endif %}
</body></html>
";

/// A rendered alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// One line: an email's subject, a chat message's heading.
    pub title: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// A channel's own templates, replacing the defaults one by one (the `config` fields
/// `title_template`, `text_template`, `html_template`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTemplates {
    /// Replaces [`DEFAULT_TITLE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_template: Option<String>,
    /// Replaces [`DEFAULT_TEXT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_template: Option<String>,
    /// Replaces [`DEFAULT_HTML`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_template: Option<String>,
}

/// Why an alert could not be rendered (a channel's own template failed at render time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {part} template could not be rendered: {reason}")]
pub struct RenderError {
    /// `title`, `text` or `html`.
    pub part: &'static str,
    /// minijinja's explanation.
    pub reason: String,
}

/// The compiled templates of one channel.
#[derive(Debug)]
pub struct MessageRenderer {
    env: Environment<'static>,
}

const PARTS: [(&str, &str); 3] =
    [("title", "title.txt"), ("text", "text.txt"), ("html", "html.html")];

impl MessageRenderer {
    /// Compiles `templates` over the defaults; every template that does not compile is a
    /// problem at its config path (`config.text_template`).
    pub fn new(templates: &MessageTemplates) -> Result<Self, Vec<ConfigProblem>> {
        let mut env = Environment::new();
        let chosen = [
            (&templates.title_template, DEFAULT_TITLE, "title_template"),
            (&templates.text_template, DEFAULT_TEXT, "text_template"),
            (&templates.html_template, DEFAULT_HTML, "html_template"),
        ];
        let mut problems = Vec::new();
        for ((_, name), (custom, default, field)) in PARTS.iter().zip(chosen) {
            let source = custom.clone().unwrap_or_else(|| default.to_owned());
            if let Err(error) = env.add_template_owned(name.to_string(), source) {
                problems.push(ConfigProblem {
                    path: format!("config.{field}"),
                    message: format!("not a valid minijinja template: {error:#}"),
                });
            }
        }
        if problems.is_empty() { Ok(MessageRenderer { env }) } else { Err(problems) }
    }

    /// Renders `alert`.
    pub fn render(&self, alert: &Alert) -> Result<Message, RenderError> {
        let kind = alert.event.event_type;
        let ctx = context! {
            event => JinjaValue::from(Serde(&alert.event)),
            headline => headline(kind),
            advice => advice(kind),
            digest => JinjaValue::from(Serde(&alert.digest)),
            held_back => alert.held_back,
        };
        let render = |(part, name): (&'static str, &str)| {
            self.env
                .get_template(name)
                .and_then(|template| template.render(&ctx))
                .map_err(|error| RenderError { part, reason: format!("{error:#}") })
        };
        Ok(Message {
            title: render(PARTS[0])?.trim().replace('\n', " "),
            text: render(PARTS[1])?,
            html: render(PARTS[2])?,
        })
    }
}

/// The default headline of an event type.
pub fn headline(kind: EventType) -> &'static str {
    match kind {
        EventType::ParseError => "A file could not be read",
        EventType::ValidationFailed => "Rows were rejected",
        EventType::ImportFailed => "An import failed",
        EventType::ImportSucceeded => "An import succeeded",
        EventType::UnmatchedFile => "A file matched no template",
        EventType::SourceError => "A source cannot be polled",
        EventType::SlaViolation => "An expected file did not arrive",
        EventType::SlaRecovered => "A late file arrived",
        EventType::AssertEmptyViolation => "A file that must be empty was not",
    }
}

/// The default advice of an event type: what to do next.
pub fn advice(kind: EventType) -> &'static str {
    match kind {
        EventType::ParseError => {
            "Nothing from this file was imported. Check the file against the template's parser \
             settings (encoding, delimiter, columns); drop a corrected file to import it."
        }
        EventType::ValidationFailed => {
            "The valid rows were imported. Review the rejected records (GET /rejected-records \
             with this run's import_run_id), correct them and retry them."
        }
        EventType::ImportFailed => {
            "The run's error says why; the file was kept. Fix the cause and import it again."
        }
        EventType::ImportSucceeded => "No action needed.",
        EventType::UnmatchedFile => {
            "No active template of the source matches the file's name. Add or fix a template's \
             file_pattern, or tell the sender the expected name."
        }
        EventType::SourceError => {
            "The source keeps failing to answer. Check its host, credentials and folder; files \
             wait there until it answers again."
        }
        EventType::SlaViolation => {
            "The file expected by the template's schedule_expectation has not come. Ask the \
             sender whether it was produced and delivered."
        }
        EventType::SlaRecovered => "The late file has arrived; the earlier violation is resolved.",
        EventType::AssertEmptyViolation => {
            "The file was expected to hold no rows. Check with the sender why it did."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AlertEvent, Severity};

    fn rejected() -> AlertEvent {
        AlertEvent::new(EventType::ValidationFailed, Severity::Warning, "3 of 10 rows <rejected>")
            .tag("template", "members")
            .tag("tenant", "acme")
            .subject("run-1")
            .link("https://intake.example/imports/runs/run-1")
    }

    #[test]
    fn the_defaults_say_what_happened_what_to_do_and_escape_html() {
        let renderer = MessageRenderer::new(&MessageTemplates::default()).expect("defaults");
        let message =
            renderer.render(&Alert::single(rejected()).with_held_back(4)).expect("render");
        assert_eq!(message.title, "[intake] WARNING: Rows were rejected (members)");
        assert!(message.text.contains("3 of 10 rows <rejected>"), "{}", message.text);
        assert!(message.text.contains("Review the rejected records"), "{}", message.text);
        assert!(message.text.contains("Template: members\nTenant: acme\n"), "{}", message.text);
        assert!(message.text.contains("Details: https://intake.example/imports/runs/run-1"));
        assert!(message.text.contains("4 earlier alert(s)"), "{}", message.text);
        assert!(message.html.contains("3 of 10 rows &lt;rejected&gt;"), "{}", message.html);
        // minijinja's HTML escaping also escapes `/` (as `&#x2f;`), which browsers read back.
        assert!(
            message.html.contains("<a href=\"https:&#x2f;&#x2f;intake.example"),
            "{}",
            message.html
        );
    }

    #[test]
    fn a_digest_lists_every_held_event() {
        let renderer = MessageRenderer::new(&MessageTemplates::default()).expect("defaults");
        let other = AlertEvent::new(EventType::UnmatchedFile, Severity::Warning, "x.csv");
        let digest = Alert::digest(vec![rejected(), other]).expect("digest");
        let message = renderer.render(&digest).expect("render");
        assert!(message.title.ends_with(": 2 alerts held during quiet hours"), "{}", message.title);
        assert!(message.text.contains("- [warning] validation_failed: 3 of 10 rows <rejected>"));
        assert!(message.text.contains("- [warning] unmatched_file: x.csv"), "{}", message.text);
    }

    #[test]
    fn a_channel_may_replace_a_template_and_a_broken_one_is_a_config_problem() {
        let templates = MessageTemplates {
            title_template: Some("{{ event.event_type }} in {{ event.tags.template }}".into()),
            ..MessageTemplates::default()
        };
        let renderer = MessageRenderer::new(&templates).expect("custom");
        let message = renderer.render(&Alert::single(rejected())).expect("render");
        assert_eq!(message.title, "validation_failed in members");
        let broken = MessageTemplates {
            text_template: Some("{% if %}".into()),
            ..MessageTemplates::default()
        };
        let problems = MessageRenderer::new(&broken).expect_err("broken");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "config.text_template");
    }
}
