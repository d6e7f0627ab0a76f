//! Dates and datetimes of a `field_mapping` field: input formats compiled once, read per cell,
//! written as ISO 8601 / RFC 3339 text into the row's string buffer.
//!
//! Formats are chrono strftime strings, and chrono decides what they accept. For speed, a format
//! made of fixed-width numbers (`%Y`, `%m`, `%d`, `%H`, `%M`, `%S`), literals, spaces, `%.f`,
//! `%z`/`%:z`, or chrono's `%+` also gets a small hand-written reader that accepts a strict
//! subset of what chrono accepts, with the same result; whatever it does not accept goes to
//! chrono, so the fast path never changes an outcome (a test compares the two on many inputs).

use std::fmt::{self, Write as _};
use std::sync::Arc;

use chrono::format::{Fixed, Item, Numeric, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono::{ParseError, Timelike};

use crate::error::{CastErrorKind, MappingConfigError};

/// The default `formats` of `cast: date`.
pub(crate) const DATE_FORMATS: [&str; 1] = ["%Y-%m-%d"];
/// The default `formats` of `cast: datetime`. `%+` is chrono's relaxed RFC 3339 reader: `T` or a
/// space between date and time, optional fractional seconds, `Z` or a `±hh:mm` / `±hhmm` offset.
pub(crate) const DATETIME_FORMATS: [&str; 3] =
    ["%+", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"];

/// The compiled input formats of a date or datetime field, with an example of each for messages.
#[derive(Debug)]
pub(crate) struct DateFormats {
    formats: Vec<Format>,
    examples: Arc<[String]>,
}

#[derive(Debug)]
struct Format {
    items: Vec<Item<'static>>,
    quick: Option<Quick>,
}

/// A date and time as read: the local date and time, and the offset in seconds east of UTC when
/// the text had one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadDatetime {
    local: NaiveDateTime,
    offset: Option<i32>,
}

impl DateFormats {
    /// Compiles `given` formats (or `defaults` when none are given) for a date field, or a
    /// datetime field when `with_time`; problems go to `errors` with their paths.
    pub(crate) fn compile(
        given: &[String],
        defaults: &[&str],
        with_time: bool,
        path: &str,
        errors: &mut Vec<MappingConfigError>,
    ) -> Option<Self> {
        let example = example_moment();
        let mut formats = Vec::new();
        let mut examples = Vec::new();
        let before = errors.len();
        let list: Vec<(String, &str)> = if given.is_empty() {
            defaults.iter().map(|f| (format!("{path}.formats"), *f)).collect()
        } else {
            let paths =
                given.iter().enumerate().map(|(i, f)| (format!("{path}.formats[{i}]"), f.as_str()));
            paths.collect()
        };
        for (format_path, format) in list {
            let invalid = |reason| MappingConfigError::InvalidFormat {
                path: format_path.clone(),
                format: format.to_owned(),
                reason,
            };
            let Ok(items) = StrftimeItems::new(format).parse_to_owned() else {
                errors.push(invalid("is not a valid chrono strftime format"));
                continue;
            };
            // Write the example moment in the format and read it back: a format that cannot give
            // a whole date (or date and time) would refuse every value.
            let mut written = String::new();
            let example_text = match write!(written, "{}", example.format_with_items(items.iter()))
            {
                Ok(()) => Some(written),
                // Some specifiers (e.g. `%#z`) can only be read, not written.
                Err(_) => None,
            };
            if let Some(text) = &example_text {
                let mut parsed = Parsed::new();
                let complete = chrono::format::parse(&mut parsed, text, items.iter()).is_ok()
                    && if with_time {
                        parsed.to_naive_datetime_with_offset(0).is_ok()
                    } else {
                        parsed.to_naive_date().is_ok()
                    };
                if !complete {
                    errors.push(invalid(if with_time {
                        "does not give a whole date and time (it needs at least a year, month, \
                         day, hour and minute)"
                    } else {
                        "does not give a whole date (it needs a year, a month and a day)"
                    }));
                    continue;
                }
            }
            examples.push(example_text.unwrap_or_else(|| format.to_owned()));
            let quick = Quick::compile(&items, with_time);
            formats.push(Format { items, quick });
        }
        (errors.len() == before).then(|| Self { formats, examples: examples.into() })
    }

    /// Reads a date with the first format that accepts the whole text.
    pub(crate) fn read_date(&self, text: &str) -> Result<NaiveDate, CastErrorKind> {
        let mut no_such = false;
        for format in &self.formats {
            if let Some(read) = format.quick.as_ref().and_then(|q| q.read(text)) {
                return Ok(read.local.date());
            }
            let mut parsed = Parsed::new();
            match chrono::format::parse(&mut parsed, text, format.items.iter())
                .and_then(|()| parsed.to_naive_date())
            {
                Ok(date) if (0..=9999).contains(&date.year()) => return Ok(date),
                Ok(_) => {}
                Err(e) => no_such |= impossible(e),
            }
        }
        Err(if no_such {
            CastErrorKind::NoSuchDate
        } else {
            CastErrorKind::NotADate { examples: self.examples.clone() }
        })
    }

    /// Reads a date and time with the first format that accepts the whole text.
    pub(crate) fn read_datetime(&self, text: &str) -> Result<ReadDatetime, CastErrorKind> {
        let mut no_such = false;
        for format in &self.formats {
            if let Some(read) = format.quick.as_ref().and_then(|q| q.read(text)) {
                return Ok(read);
            }
            match chrono_datetime(&format.items, text) {
                Ok(read) if (0..=9999).contains(&read.local.year()) => return Ok(read),
                Ok(_) => {}
                Err(e) => no_such |= impossible(e),
            }
        }
        Err(if no_such {
            CastErrorKind::NoSuchDatetime
        } else {
            CastErrorKind::NotADatetime { examples: self.examples.clone() }
        })
    }
}

fn chrono_datetime(items: &[Item<'static>], text: &str) -> Result<ReadDatetime, ParseError> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, items.iter())?;
    if parsed.offset().is_some() {
        let at = parsed.to_datetime()?;
        Ok(ReadDatetime { local: at.naive_local(), offset: Some(at.offset().local_minus_utc()) })
    } else {
        Ok(ReadDatetime { local: parsed.to_naive_datetime_with_offset(0)?, offset: None })
    }
}

/// Whether chrono read the text in the format but the day or time does not exist.
fn impossible(error: ParseError) -> bool {
    use chrono::format::ParseErrorKind;
    matches!(error.kind(), ParseErrorKind::OutOfRange | ParseErrorKind::Impossible)
}

/// 31 December 2026, 14:30:45 at +01:00: the moment error messages show in each format. The
/// day is above 12, so day and month cannot be mistaken for each other.
fn example_moment() -> DateTime<FixedOffset> {
    let naive = NaiveDate::from_ymd_opt(2026, 12, 31).and_then(|d| d.and_hms_opt(14, 30, 45));
    match (FixedOffset::east_opt(3600), naive) {
        (Some(offset), Some(naive)) => match offset.from_local_datetime(&naive).single() {
            Some(moment) => moment,
            None => DateTime::UNIX_EPOCH.fixed_offset(),
        },
        _ => DateTime::UNIX_EPOCH.fixed_offset(),
    }
}

/// The hand-written reader of a simple format.
#[derive(Debug)]
enum Quick {
    /// Fixed-width numbers, literals and the like, in order.
    Items(Vec<QuickItem>),
    /// chrono's `%+`, restricted to `YYYY-MM-DD[T ]hh:mm:ss[.f]` and `Z`, `±hh:mm` or `±hhmm`.
    Rfc3339,
}

#[derive(Debug)]
enum QuickItem {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Literal(Box<str>),
    /// chrono's whitespace item: skips any whitespace.
    Space,
    /// `%.f`: an optional `.` and 1–9 digits.
    Fraction,
    /// `%z` / `%:z`: `±hh:mm` or `±hhmm`.
    Offset,
}

/// What a quick read found; unset fields are `None`.
#[derive(Default)]
struct Fields {
    year: Option<u32>,
    month: Option<u32>,
    day: Option<u32>,
    hour: Option<u32>,
    minute: Option<u32>,
    second: Option<u32>,
    nanosecond: u32,
    offset: Option<i32>,
}

impl Quick {
    /// The quick reader of a format, if it has one: each of year, month and day once (and for a
    /// datetime, hour and minute, optionally second), with nothing chrono reads differently.
    fn compile(items: &[Item<'static>], with_time: bool) -> Option<Quick> {
        if let [Item::Fixed(Fixed::RFC3339)] = items {
            return with_time.then_some(Quick::Rfc3339);
        }
        let mut quick = Vec::with_capacity(items.len());
        let mut seen = [false; 6];
        for item in items {
            let next = match item {
                Item::Literal(text) => QuickItem::Literal((*text).into()),
                Item::OwnedLiteral(text) => QuickItem::Literal(text.clone()),
                Item::Space(_) | Item::OwnedSpace(_) => QuickItem::Space,
                Item::Numeric(numeric, _) => {
                    let (slot, item) = match numeric {
                        Numeric::Year => (0, QuickItem::Year),
                        Numeric::Month => (1, QuickItem::Month),
                        Numeric::Day => (2, QuickItem::Day),
                        Numeric::Hour => (3, QuickItem::Hour),
                        Numeric::Minute => (4, QuickItem::Minute),
                        Numeric::Second => (5, QuickItem::Second),
                        _ => return None,
                    };
                    if std::mem::replace(&mut seen[slot], true) {
                        return None;
                    }
                    item
                }
                Item::Fixed(Fixed::Nanosecond) => QuickItem::Fraction,
                Item::Fixed(Fixed::TimezoneOffset | Fixed::TimezoneOffsetColon) => {
                    QuickItem::Offset
                }
                _ => return None,
            };
            quick.push(next);
        }
        let has_date = seen[0] && seen[1] && seen[2];
        let has_time = seen[3] && seen[4];
        let times = quick.iter().any(|i| {
            matches!(
                i,
                QuickItem::Hour
                    | QuickItem::Minute
                    | QuickItem::Second
                    | QuickItem::Fraction
                    | QuickItem::Offset
            )
        });
        let fits = if with_time { has_date && has_time } else { has_date && !times };
        fits.then_some(Quick::Items(quick))
    }

    /// Reads `text` if it is in the strict subset this reader knows; `None` leaves it to chrono.
    fn read(&self, text: &str) -> Option<ReadDatetime> {
        let mut fields = Fields::default();
        let rest = match self {
            Quick::Items(items) => {
                let mut rest = text;
                for item in items {
                    rest = match item {
                        QuickItem::Year => digits(rest, 4, &mut fields.year)?,
                        QuickItem::Month => digits(rest, 2, &mut fields.month)?,
                        QuickItem::Day => digits(rest, 2, &mut fields.day)?,
                        QuickItem::Hour => digits(rest, 2, &mut fields.hour)?,
                        QuickItem::Minute => digits(rest, 2, &mut fields.minute)?,
                        QuickItem::Second => digits(rest, 2, &mut fields.second)?,
                        QuickItem::Literal(literal) => rest.strip_prefix(&**literal)?,
                        QuickItem::Space => rest.trim_start(),
                        QuickItem::Fraction => fraction(rest, &mut fields.nanosecond)?,
                        QuickItem::Offset => offset(rest, &mut fields.offset)?,
                    };
                }
                rest
            }
            Quick::Rfc3339 => rfc3339(text, &mut fields)?,
        };
        if !rest.is_empty() {
            return None;
        }
        let date =
            NaiveDate::from_ymd_opt(i32::try_from(fields.year?).ok()?, fields.month?, fields.day?)?;
        let time = match (fields.hour, fields.minute) {
            (Some(hour), Some(minute)) => {
                let second = fields.second.unwrap_or(0);
                if second > 59 {
                    return None;
                }
                NaiveTime::from_hms_nano_opt(hour, minute, second, fields.nanosecond)?
            }
            _ => NaiveTime::MIN,
        };
        Some(ReadDatetime { local: date.and_time(time), offset: fields.offset })
    }
}

/// Exactly `width` ASCII digits.
fn digits<'t>(text: &'t str, width: usize, into: &mut Option<u32>) -> Option<&'t str> {
    let head = text.as_bytes().get(..width)?;
    let mut value = 0;
    for &b in head {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    *into = Some(value);
    Some(&text[width..])
}

/// Nothing, or `.` and 1–9 digits (not followed by another digit).
fn fraction<'t>(text: &'t str, nanos: &mut u32) -> Option<&'t str> {
    let Some(after) = text.strip_prefix('.') else { return Some(text) };
    let count = after.bytes().take_while(u8::is_ascii_digit).count();
    if count == 0 || count > 9 {
        return None;
    }
    let mut value = 0;
    for b in after.bytes().take(count) {
        value = value * 10 + u32::from(b - b'0');
    }
    *nanos = value * 10u32.pow(9 - count as u32);
    Some(&after[count..])
}

/// `±hh:mm` or `±hhmm`, hours below 24.
fn offset<'t>(text: &'t str, into: &mut Option<i32>) -> Option<&'t str> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut hours = None;
    let mut minutes = None;
    let rest = digits(&text[1..], 2, &mut hours)?;
    let rest = digits(rest.strip_prefix(':').unwrap_or(rest), 2, &mut minutes)?;
    let (hours, minutes) = (hours?, minutes?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    *into = Some(sign * i32::try_from(hours * 3600 + minutes * 60).ok()?);
    Some(rest)
}

fn rfc3339<'t>(text: &'t str, fields: &mut Fields) -> Option<&'t str> {
    let rest = digits(text, 4, &mut fields.year)?;
    let rest = digits(rest.strip_prefix('-')?, 2, &mut fields.month)?;
    let rest = digits(rest.strip_prefix('-')?, 2, &mut fields.day)?;
    let rest = rest.strip_prefix(['T', ' '])?;
    let rest = digits(rest, 2, &mut fields.hour)?;
    let rest = digits(rest.strip_prefix(':')?, 2, &mut fields.minute)?;
    let rest = digits(rest.strip_prefix(':')?, 2, &mut fields.second)?;
    let rest = fraction(rest, &mut fields.nanosecond)?;
    match rest.strip_prefix('Z') {
        Some(rest) => {
            fields.offset = Some(0);
            Some(rest)
        }
        None => offset(rest, &mut fields.offset),
    }
}

/// Writes `YYYY-MM-DD`.
pub(crate) fn write_date(out: &mut String, date: NaiveDate) -> fmt::Result {
    // Years are checked to be within 0..=9999 when read.
    push_digits(out, date.year().unsigned_abs(), 4);
    out.push('-');
    push_digits(out, date.month(), 2);
    out.push('-');
    push_digits(out, date.day(), 2);
    Ok(())
}

/// Writes RFC 3339 (`2026-02-15T10:30:00+01:00`) when the text had an offset, else
/// `YYYY-MM-DDTHH:MM:SS`; fractional seconds as `.fff`, `.ffffff` or `.fffffffff` when there are
/// any. A leap second is written as second 60; an offset's seconds (which RFC 3339 cannot
/// express) are dropped.
pub(crate) fn write_datetime(out: &mut String, at: ReadDatetime) -> fmt::Result {
    write_date(out, at.local.date())?;
    let mut second = at.local.second();
    let mut nanos = at.local.nanosecond();
    if nanos >= 1_000_000_000 {
        second += 1;
        nanos -= 1_000_000_000;
    }
    out.push('T');
    push_digits(out, at.local.hour(), 2);
    out.push(':');
    push_digits(out, at.local.minute(), 2);
    out.push(':');
    push_digits(out, second, 2);
    if nanos != 0 {
        out.push('.');
        if nanos.is_multiple_of(1_000_000) {
            push_digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            push_digits(out, nanos / 1_000, 6);
        } else {
            push_digits(out, nanos, 9);
        }
    }
    if let Some(seconds_east) = at.offset {
        out.push(if seconds_east < 0 { '-' } else { '+' });
        let minutes = seconds_east.unsigned_abs() / 60;
        push_digits(out, minutes / 60, 2);
        out.push(':');
        push_digits(out, minutes % 60, 2);
    }
    Ok(())
}

/// Appends the last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u32.pow(place)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats(given: &[&str], with_time: bool) -> DateFormats {
        let given: Vec<String> = given.iter().map(|f| (*f).to_owned()).collect();
        let defaults: &[&str] = if with_time { &DATETIME_FORMATS } else { &DATE_FORMATS };
        let mut errors = Vec::new();
        let compiled = DateFormats::compile(&given, defaults, with_time, "f", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        compiled.expect("compiled")
    }

    fn date(formats: &DateFormats, text: &str) -> Result<String, CastErrorKind> {
        let mut out = String::new();
        write_date(&mut out, formats.read_date(text)?).expect("written");
        Ok(out)
    }

    fn datetime(formats: &DateFormats, text: &str) -> Result<String, CastErrorKind> {
        let mut out = String::new();
        write_datetime(&mut out, formats.read_datetime(text)?).expect("written");
        Ok(out)
    }

    #[test]
    fn dates_in_several_formats_and_impossible_dates() {
        let iso = formats(&[], false);
        assert_eq!(date(&iso, "2026-02-15").as_deref(), Ok("2026-02-15"));
        assert_eq!(
            date(&iso, "2026-2-5").as_deref(),
            Ok("2026-02-05"),
            "chrono reads short numbers"
        );
        assert_eq!(date(&iso, "2026-02-30"), Err(CastErrorKind::NoSuchDate));
        assert_eq!(date(&iso, "2026-13-01"), Err(CastErrorKind::NoSuchDate));
        assert_eq!(date(&iso, "2024-02-29").as_deref(), Ok("2024-02-29"));
        assert_eq!(date(&iso, "2025-02-29"), Err(CastErrorKind::NoSuchDate));
        let Err(CastErrorKind::NotADate { examples }) = date(&iso, "15.02.2026") else { panic!() };
        assert_eq!(&*examples, ["2026-12-31".to_owned()]);

        let swedish = formats(&["%d.%m.%Y", "%Y%m%d"], false);
        assert_eq!(date(&swedish, "15.02.2026").as_deref(), Ok("2026-02-15"));
        assert_eq!(date(&swedish, "1.2.2026").as_deref(), Ok("2026-02-01"));
        assert_eq!(date(&swedish, "20260215").as_deref(), Ok("2026-02-15"));
        assert_eq!(date(&swedish, "30.02.2026"), Err(CastErrorKind::NoSuchDate));
        assert_eq!(date(&swedish, "20260230"), Err(CastErrorKind::NoSuchDate));
        // chrono reads numbers up to their width, so a short day is accepted even here.
        assert_eq!(date(&swedish, "2026021").as_deref(), Ok("2026-02-01"));
        assert!(date(&swedish, "202602").is_err());
        let Err(CastErrorKind::NotADate { examples }) = date(&swedish, "2026-02-15") else {
            panic!()
        };
        assert_eq!(&*examples, ["31.12.2026".to_owned(), "20261231".to_owned()]);

        let named = formats(&["%e %B %Y"], false);
        assert_eq!(date(&named, "5 March 2026").as_deref(), Ok("2026-03-05"));
    }

    #[test]
    fn datetimes_keep_an_offset_when_there_is_one() {
        let defaults = formats(&[], true);
        for (text, out) in [
            ("2026-02-15T10:30:00+01:00", "2026-02-15T10:30:00+01:00"),
            ("2026-02-15T10:30:00Z", "2026-02-15T10:30:00+00:00"),
            ("2026-02-15 10:30:00+0100", "2026-02-15T10:30:00+01:00"),
            ("2026-02-15T10:30:00.250-05:30", "2026-02-15T10:30:00.250-05:30"),
            ("2026-02-15T10:30:00 UTC", "2026-02-15T10:30:00+00:00"),
            ("2026-02-15T10:30:00", "2026-02-15T10:30:00"),
            ("2026-02-15 10:30:00.000001", "2026-02-15T10:30:00.000001"),
            ("2026-02-15T10:30:00.123456789", "2026-02-15T10:30:00.123456789"),
            ("2016-12-31T23:59:60Z", "2016-12-31T23:59:60+00:00"),
        ] {
            assert_eq!(datetime(&defaults, text).as_deref(), Ok(out), "{text}");
        }
        assert_eq!(datetime(&defaults, "2026-02-30T10:00:00"), Err(CastErrorKind::NoSuchDatetime));
        assert_eq!(datetime(&defaults, "2026-02-15T25:00:00"), Err(CastErrorKind::NoSuchDatetime));
        let Err(CastErrorKind::NotADatetime { examples }) = datetime(&defaults, "2026-02-15")
        else {
            panic!()
        };
        assert_eq!(
            &*examples,
            ["2026-12-31T14:30:45+01:00", "2026-12-31T14:30:45", "2026-12-31 14:30:45"]
                .map(String::from)
        );

        let custom = formats(&["%d.%m.%Y %H:%M", "%Y%m%d%H%M%S%z"], true);
        assert_eq!(datetime(&custom, "15.02.2026 08:05").as_deref(), Ok("2026-02-15T08:05:00"));
        assert_eq!(
            datetime(&custom, "20260215080501+0200").as_deref(),
            Ok("2026-02-15T08:05:01+02:00")
        );
    }

    #[test]
    fn formats_that_cannot_give_a_whole_value_are_refused() {
        let mut errors = Vec::new();
        let given = ["%Y-%m", "%Q", "%Y-%m-%d"].map(String::from);
        assert!(DateFormats::compile(&given, &DATE_FORMATS, false, "f", &mut errors).is_none());
        let paths: Vec<_> = errors
            .iter()
            .map(|e| match e {
                MappingConfigError::InvalidFormat { path, .. } => path.as_str(),
                _ => "?",
            })
            .collect();
        assert_eq!(paths, ["f.formats[0]", "f.formats[1]"]);
        let mut errors = Vec::new();
        let given = ["%Y-%m-%d".to_owned()];
        assert!(DateFormats::compile(&given, &DATETIME_FORMATS, true, "f", &mut errors).is_none());
        assert!(errors[0].to_string().contains("whole date and time"), "{errors:?}");
    }

    /// The quick reader must agree with chrono wherever it answers.
    #[test]
    fn the_quick_reader_agrees_with_chrono() {
        let date_formats = ["%Y-%m-%d", "%d.%m.%Y", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y"];
        let time_formats = [
            "%+",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%d.%m.%Y %H:%M",
            "%Y-%m-%dT%H:%M:%S%:z",
            "%Y-%m-%dT%H:%M:%S%z",
            "%Y%m%d%H%M%S",
        ];
        let mut inputs = Vec::new();
        for date in [
            "2026-02-15",
            "2026-02-30",
            "2024-02-29",
            "0000-01-01",
            "9999-12-31",
            "2026-2-15",
            "2026-13-01",
            " 2026-02-15",
            "2026-02-15 ",
        ] {
            inputs.push(date.to_owned());
            inputs.push(date.replace('-', ""));
            let parts: Vec<&str> = date.trim().split('-').collect();
            if let [y, m, d] = parts[..] {
                inputs.push(format!("{d}.{m}.{y}"));
                inputs.push(format!("{m}/{d}/{y}"));
                for time in [
                    "10:30:00",
                    "23:59:60",
                    "24:00:00",
                    "10:30",
                    "10:30:00.5",
                    "10:30:00.1234567891",
                    "1:02:03",
                ] {
                    for zone in ["", "Z", "z", "+01:00", "-0530", "+24:00", "+01", " +01:00", "UTC"]
                    {
                        for sep in ["T", " ", "t"] {
                            inputs.push(format!("{y}-{m}-{d}{sep}{time}{zone}"));
                        }
                        inputs.push(format!("{d}.{m}.{y} {time}{zone}"));
                        inputs.push(format!("{y}{m}{d}{}{zone}", time.replace(':', "")));
                    }
                }
            }
        }
        let mut quick_answers = 0;
        for (list, with_time) in [(&date_formats[..], false), (&time_formats[..], true)] {
            for format in list {
                let items = StrftimeItems::new(format).parse_to_owned().expect("format");
                let quick = Quick::compile(&items, with_time).expect("a quick reader");
                for input in &inputs {
                    let Some(read) = quick.read(input) else { continue };
                    quick_answers += 1;
                    let by_chrono = if with_time {
                        chrono_datetime(&items, input).ok()
                    } else {
                        let mut parsed = Parsed::new();
                        chrono::format::parse(&mut parsed, input, items.iter())
                            .and_then(|()| parsed.to_naive_date())
                            .ok()
                            .map(|d| ReadDatetime {
                                local: d.and_time(NaiveTime::MIN),
                                offset: None,
                            })
                    };
                    assert_eq!(by_chrono, Some(read), "{format} on {input:?}");
                }
            }
        }
        assert!(quick_answers > 100, "{quick_answers}");
    }

    #[test]
    fn formats_chrono_reads_differently_get_no_quick_reader() {
        for (format, with_time) in [
            ("%y-%m-%d", false),
            ("%Y-%m-%d %H:%M", false),
            ("%Y-%j", false),
            ("%Y-%m-%dT%H:%M:%S%#z", true),
            ("%+", false),
            ("%d.%m.%Y %d", false),
        ] {
            let items = StrftimeItems::new(format).parse_to_owned().expect("format");
            assert!(Quick::compile(&items, with_time).is_none(), "{format}");
        }
    }
}
