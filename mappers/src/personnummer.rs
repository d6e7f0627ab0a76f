//! The built-in mapper plugin `normalize_personnummer`: Swedish personal identity numbers (and
//! coordination numbers) written in any of the usual ways become one form.
//!
//! `{"type": "builtin", "name": "normalize_personnummer", "options": {"field": "pnr",
//! "format": "YYYYMMDD-NNNN"}}` reads `pnr` as `YYMMDD-NNNN`, `YYMMDD+NNNN` (a hundred years or
//! older), `YYMMDDNNNN`, `YYYYMMDDNNNN` or `YYYYMMDD-NNNN`, checks the date (a coordination number
//! adds 60 to the day) and the check digit, and writes it back as `YYYYMMDDNNNN` (the default
//! format) or `YYYYMMDD-NNNN`. A ten-digit number gets the latest century that does not put the
//! birth date in the future. An empty or null field is left alone; anything else that is not a
//! valid number rejects the row.

use chrono::{Datelike, NaiveDate, Utc};
use intake_parsers::Locale;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::plugin::MapperPlugin;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    field: String,
    #[serde(default)]
    format: Format,
}

#[derive(Deserialize, Default, Clone, Copy)]
enum Format {
    #[default]
    #[serde(rename = "YYYYMMDDNNNN")]
    Plain,
    #[serde(rename = "YYYYMMDD-NNNN")]
    Dash,
}

struct NormalizePersonnummer {
    options: Options,
}

/// The registry's factory for `normalize_personnummer`.
pub(crate) fn factory(options: &Value) -> Result<Box<dyn MapperPlugin>, String> {
    let options: Options = serde_json::from_value(options.clone()).map_err(|error| {
        format!(
            "{error}; the options are {{\"field\": \"<row field>\", \"format\": \
             \"YYYYMMDDNNNN\" | \"YYYYMMDD-NNNN\"}}"
        )
    })?;
    Ok(Box::new(NormalizePersonnummer { options }))
}

impl MapperPlugin for NormalizePersonnummer {
    fn map(
        &self,
        mut row: Map<String, Value>,
        locale: Locale,
    ) -> Result<Map<String, Value>, String> {
        let Some(slot) = row.get_mut(&self.options.field) else { return Ok(row) };
        let text = match slot {
            Value::Null => return Ok(row),
            Value::String(text) if text.trim().is_empty() => return Ok(row),
            Value::String(text) => text.trim().to_owned(),
            Value::Number(number) => number.to_string(),
            _ => return Err(invalid(&self.options.field, &slot.to_string(), locale)),
        };
        let today = chrono::DateTime::<Utc>::from(std::time::SystemTime::now()).date_naive();
        let digits =
            normalize(&text, today).ok_or_else(|| invalid(&self.options.field, &text, locale))?;
        *slot = Value::String(match self.options.format {
            Format::Plain => digits,
            Format::Dash => format!("{}-{}", &digits[..8], &digits[8..]),
        });
        Ok(row)
    }
}

fn invalid(field: &str, value: &str, locale: Locale) -> String {
    match locale {
        Locale::Sv => format!(
            "fältet '{field}': '{value}' är inget giltigt personnummer eller samordningsnummer \
             (skriv ÅÅÅÅMMDD-NNNN eller ÅÅMMDD-NNNN)"
        ),
        Locale::En => format!(
            "field '{field}': '{value}' is not a valid Swedish personal identity or coordination \
             number (write YYYYMMDD-NNNN or YYMMDD-NNNN)"
        ),
    }
}

/// The twelve digits of a valid number written in one of the accepted forms.
fn normalize(text: &str, today: NaiveDate) -> Option<String> {
    let (body, hundred_plus) = match text.len() {
        11 | 13 => {
            let separator = text.len() - 5;
            let sign = text.get(separator..=separator)?;
            let body = format!("{}{}", text.get(..separator)?, text.get(separator + 1..)?);
            (body, sign == "+")
        }
        10 | 12 => (text.to_owned(), false),
        _ => return None,
    };
    if !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = if body.len() == 12 {
        body
    } else {
        let year: i32 = body.get(..2)?.parse().ok()?;
        let mut full_year = today.year() - (today.year() - year).rem_euclid(100);
        if hundred_plus {
            full_year -= 100;
        }
        format!("{full_year:04}{}", body.get(2..)?)
    };
    let year: i32 = full.get(..4)?.parse().ok()?;
    let month: u32 = full.get(4..6)?.parse().ok()?;
    let mut day: u32 = full.get(6..8)?.parse().ok()?;
    if day > 60 {
        day -= 60; // a coordination number
    }
    NaiveDate::from_ymd_opt(year, month, day)?;
    luhn_valid(full.get(2..)?).then_some(full)
}

/// The Luhn check over the ten digits YYMMDDNNNC.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
            if d > 9 { d - 9 } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn every_usual_form_becomes_twelve_digits() {
        let today = day(2026, 11, 24);
        for written in ["811218-9876", "8112189876", "198112189876", "19811218-9876"] {
            assert_eq!(normalize(written, today).as_deref(), Some("198112189876"), "{written}");
        }
        // A hundred years or older, and a coordination number (day + 60).
        assert_eq!(normalize("811218+9876", today).as_deref(), Some("188112189876"));
        assert_eq!(normalize("701063-2391", today).as_deref(), Some("197010632391"));
        // This year's children are of this century.
        assert_eq!(normalize("260101-0000", today), None); // bad check digit
    }

    #[test]
    fn bad_numbers_are_refused() {
        let today = day(2026, 11, 24);
        for bad in ["811218-9875", "811318-9876", "81121-89876", "abcdefghij", "", "8112189876x"] {
            assert_eq!(normalize(bad, today), None, "{bad}");
        }
    }

    #[test]
    fn the_plugin_rewrites_its_field_and_rejects_with_a_localized_message() {
        let plugin =
            factory(&serde_json::json!({"field": "pnr", "format": "YYYYMMDD-NNNN"})).expect("ok");
        let row = serde_json::json!({"pnr": "8112189876", "name": "Åsa"});
        let Value::Object(row) = row else { unreachable!() };
        let mapped = plugin.map(row, Locale::Sv).expect("valid");
        assert_eq!(mapped["pnr"], "19811218-9876");
        let Value::Object(bad) = serde_json::json!({"pnr": "811218-0000"}) else { unreachable!() };
        let message = plugin.map(bad, Locale::Sv).expect_err("invalid");
        assert!(message.contains("inget giltigt personnummer"), "{message}");
        assert!(factory(&serde_json::json!({"fields": "pnr"})).is_err());
    }
}
