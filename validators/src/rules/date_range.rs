//! The `date_range` rule: a date (or the date of a date-time) within inclusive bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Datelike, Days, Months, NaiveDate};

use super::RuleConfigError;
use super::violation::{Subject, ViolationKind};

/// A date within inclusive bounds.
///
/// The value is an ISO date `YYYY-MM-DD`, or a date-time `YYYY-MM-DDTHH:MM:SS` with optional
/// fraction and offset (RFC 3339, `T` or a space between date and time); a date-time is compared
/// by the date written in it, without converting its offset. A value that is no date, or a date
/// that does not exist (`1999-02-29`), is a violation of its own.
///
/// Bounds are ISO dates or relative to the current date: `today`, `today+30d`, `today-1y`
/// (units `d` days, `m` months, `y` years; a month or year step from the 31st lands on the last
/// day of a shorter month). "Today" is the current date in UTC when the row is checked, so a
/// long-running worker moves with the calendar.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct DateRangeRuleConfig {
    /// The mapped field the rule checks.
    pub field: String,
    /// The earliest allowed date, inclusive: `YYYY-MM-DD`, `today`, or `today` followed by `+N`
    /// or `-N` and a unit `d`, `m` or `y` (e.g. `today-1y`). Give `min`, `max` or both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    /// The latest allowed date, inclusive, written like `min` (e.g. `today` or `today+30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

impl DateRangeRuleConfig {
    pub(super) fn build(&self) -> Result<DateRangeRule, RuleConfigError> {
        let parse = |bound: &'static str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| {
                    parse_bound(text).map_err(|reason| RuleConfigError::InvalidDateBound {
                        field: self.field.clone(),
                        bound,
                        value: text.to_owned(),
                        reason,
                    })
                })
                .transpose()
        };
        let min = parse("min", &self.min)?;
        let max = parse("max", &self.max)?;
        if let (Some(min), Some(max)) = (&min, &max) {
            if min.always_after(max) {
                return Err(RuleConfigError::EmptyDateRange {
                    field: self.field.clone(),
                    min: self.min.clone().unwrap_or_default(),
                    max: self.max.clone().unwrap_or_default(),
                });
            }
        } else if min.is_none() && max.is_none() {
            return Err(RuleConfigError::MissingDateBounds { field: self.field.clone() });
        }
        Ok(DateRangeRule { min, max })
    }
}

/// The current date in UTC.
pub(super) fn today_utc() -> NaiveDate {
    date_of_epoch_day(epoch_day_now())
}

/// Days since 1970-01-01 (UTC) now; 0 if the clock is before 1970.
fn epoch_day_now() -> i64 {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    i64::try_from(seconds / 86_400).unwrap_or(0)
}

/// Days from 0001-01-01 (day 1) to 1970-01-01, chrono's "days from the common era".
const UNIX_EPOCH_DAY_FROM_CE: i64 = 719_163;

fn date_of_epoch_day(day: i64) -> NaiveDate {
    i32::try_from(day + UNIX_EPOCH_DAY_FROM_CE)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or(NaiveDate::MIN)
}

#[cfg(test)]
fn epoch_day_of(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAY_FROM_CE
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Days,
    Months,
    Years,
}

/// A bound relative to today, e.g. `today-1y`; resolved per check, cached for the day.
#[derive(Debug)]
struct RelativeBound {
    /// Signed number of units.
    amount: i32,
    unit: Unit,
    /// The bound as written, for messages.
    spec: Arc<str>,
    /// `(epoch day + 1) << 32 | resolved day from CE` of the last resolution; 0 before the
    /// first. Each value is self-contained, so relaxed loads and stores are enough.
    cache: AtomicU64,
}

impl Clone for RelativeBound {
    fn clone(&self) -> Self {
        Self {
            amount: self.amount,
            unit: self.unit,
            spec: Arc::clone(&self.spec),
            cache: AtomicU64::new(self.cache.load(Ordering::Relaxed)),
        }
    }
}

impl RelativeBound {
    /// In months for months and years (to compare bounds), `None` for days.
    fn months(&self) -> Option<i64> {
        match self.unit {
            Unit::Days => None,
            Unit::Months => Some(i64::from(self.amount)),
            Unit::Years => Some(i64::from(self.amount) * 12),
        }
    }

    fn resolve(&self, today: i64) -> NaiveDate {
        let key = u32::try_from(today + 1).ok();
        if let Some(key) = key {
            let cached = self.cache.load(Ordering::Relaxed);
            if cached >> 32 == u64::from(key) {
                // The low half is a day from CE that was stored from an `i32`.
                let day = cached as u32 as i32;
                if let Some(date) = NaiveDate::from_num_days_from_ce_opt(day) {
                    return date;
                }
            }
        }
        let resolved = self.compute(date_of_epoch_day(today));
        if let (Some(key), Ok(day)) = (key, u32::try_from(resolved.num_days_from_ce())) {
            self.cache.store(u64::from(key) << 32 | u64::from(day), Ordering::Relaxed);
        }
        resolved
    }

    fn compute(&self, today: NaiveDate) -> NaiveDate {
        let magnitude = self.amount.unsigned_abs();
        let forward = self.amount >= 0;
        let moved = match self.unit {
            Unit::Days if forward => today.checked_add_days(Days::new(u64::from(magnitude))),
            Unit::Days => today.checked_sub_days(Days::new(u64::from(magnitude))),
            Unit::Months | Unit::Years => {
                let months = if self.unit == Unit::Years { magnitude * 12 } else { magnitude };
                if forward {
                    today.checked_add_months(Months::new(months))
                } else {
                    today.checked_sub_months(Months::new(months))
                }
            }
        };
        // The parser caps amounts far below chrono's range, so this never falls back.
        moved.unwrap_or(today)
    }
}

#[derive(Debug, Clone)]
enum Bound {
    Fixed(NaiveDate),
    Relative(RelativeBound),
}

impl Bound {
    /// Whether this bound is after `other` whatever today is (only decidable for two fixed
    /// dates, or two relative bounds in comparable units).
    fn always_after(&self, other: &Bound) -> bool {
        match (self, other) {
            (Bound::Fixed(a), Bound::Fixed(b)) => a > b,
            (Bound::Relative(a), Bound::Relative(b)) => match (a.months(), b.months()) {
                (None, None) => a.amount > b.amount,
                (Some(a), Some(b)) => a > b,
                _ => false,
            },
            _ => false,
        }
    }

    fn is_relative(&self) -> bool {
        matches!(self, Bound::Relative(_))
    }

    /// The bound's date for `today` (days since 1970), and how it was written if relative.
    fn resolve(&self, today: i64) -> (NaiveDate, Option<&Arc<str>>) {
        match self {
            Bound::Fixed(date) => (*date, None),
            Bound::Relative(relative) => (relative.resolve(today), Some(&relative.spec)),
        }
    }
}

/// Largest `N` in `today±N…` per unit: about 270 years either way, well inside chrono's range.
const fn max_amount(unit: Unit) -> u32 {
    match unit {
        Unit::Days => 100_000,
        Unit::Months => 3_240,
        Unit::Years => 270,
    }
}

/// Parses a bound: `YYYY-MM-DD`, `today`, or `today±N` with unit `d`, `m` or `y`.
fn parse_bound(text: &str) -> Result<Bound, &'static str> {
    let Some(offset) = text.strip_prefix("today") else {
        return match parse_date(text.as_bytes()) {
            Some(Ok(date)) => Ok(Bound::Fixed(date)),
            Some(Err(_)) => Err("that date does not exist in the calendar"),
            None => Err("not a date"),
        };
    };
    let relative = |amount: i32, unit: Unit| {
        Bound::Relative(RelativeBound {
            amount,
            unit,
            spec: Arc::from(text),
            cache: AtomicU64::new(0),
        })
    };
    if offset.is_empty() {
        return Ok(relative(0, Unit::Days));
    }
    let (negative, rest) = match offset.as_bytes().split_first() {
        Some((b'+', rest)) => (false, rest),
        Some((b'-', rest)) => (true, rest),
        _ => return Err("`today` must be followed by nothing, or by + or -"),
    };
    let Some((&unit, digits)) = rest.split_last() else {
        return Err("a number and a unit must follow the sign");
    };
    let unit = match unit {
        b'd' => Unit::Days,
        b'm' => Unit::Months,
        b'y' => Unit::Years,
        _ => return Err("the unit must be d (days), m (months) or y (years)"),
    };
    if digits.is_empty() || digits.len() > 6 || !digits.iter().all(u8::is_ascii_digit) {
        return Err("the amount must be a whole number of at most 6 digits");
    }
    let amount = digits.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    if amount > max_amount(unit) {
        return Err("the amount is too large (at most 100000d, 3240m or 270y)");
    }
    let amount = i32::try_from(amount).map_err(|_| "the amount is too large")?;
    Ok(relative(if negative { -amount } else { amount }, unit))
}

fn two_digits(bytes: &[u8]) -> Option<u32> {
    match bytes {
        &[a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// Reads exactly `YYYY-MM-DD`: `None` if it is not that shape, `Some(Err((y, m, d)))` if it is
/// but no such date exists.
fn parse_date(bytes: &[u8]) -> Option<Result<NaiveDate, (i32, u32, u32)>> {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = bytes else {
        return None;
    };
    let year = i32::try_from(two_digits(&[y0, y1])? * 100 + two_digits(&[y2, y3])?).ok()?;
    let month = two_digits(&[m0, m1])?;
    let day = two_digits(&[d0, d1])?;
    Some(NaiveDate::from_ymd_opt(year, month, day).ok_or((year, month, day)))
}

/// Whether `bytes` is `HH:MM:SS` with an optional fraction and an optional `Z` or `±HH:MM`
/// offset (the time part of an RFC 3339 date-time, seconds up to 60 for leap seconds).
fn is_time(bytes: &[u8]) -> bool {
    let Some((time, mut rest)) = bytes.split_at_checked(8) else {
        return false;
    };
    let valid_clock = match time {
        &[h0, h1, b':', m0, m1, b':', s0, s1] => {
            two_digits(&[h0, h1]).is_some_and(|h| h < 24)
                && two_digits(&[m0, m1]).is_some_and(|m| m < 60)
                && two_digits(&[s0, s1]).is_some_and(|s| s <= 60)
        }
        _ => false,
    };
    if !valid_clock {
        return false;
    }
    if let Some((b'.', fraction)) = rest.split_first() {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest {
        [] | [b'Z' | b'z'] => true,
        &[b'+' | b'-', h0, h1, b':', m0, m1] => {
            two_digits(&[h0, h1]).is_some_and(|h| h < 24)
                && two_digits(&[m0, m1]).is_some_and(|m| m < 60)
        }
        _ => false,
    }
}

/// The date of a date or date-time value, or why it has none.
fn value_date(text: &str) -> Result<NaiveDate, ViolationKind> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(ViolationKind::Empty { subject: Subject::Date });
    }
    let not_a_date = || ViolationKind::NotADate { got: text.chars().take(64).collect() };
    let (date, time) = bytes.split_at_checked(10).ok_or_else(not_a_date)?;
    if let Some((&separator, time)) = time.split_first()
        && (!matches!(separator, b'T' | b't' | b' ') || !is_time(time))
    {
        return Err(not_a_date());
    }
    match parse_date(date) {
        Some(Ok(date)) => Ok(date),
        Some(Err((year, month, day))) => Err(ViolationKind::DateDoesNotExist { year, month, day }),
        None => Err(not_a_date()),
    }
}

/// A compiled `date_range` rule.
#[derive(Debug, Clone)]
pub(super) struct DateRangeRule {
    min: Option<Bound>,
    max: Option<Bound>,
}

impl DateRangeRule {
    /// Checks a value against today's bounds; reads the clock only for relative bounds.
    pub(super) fn check(&self, text: &str) -> Result<(), ViolationKind> {
        self.check_at(text, epoch_day_now)
    }

    /// Checks a value with "today" given as days since 1970-01-01.
    fn check_at(&self, text: &str, today: impl Fn() -> i64) -> Result<(), ViolationKind> {
        let date = value_date(text)?;
        let relative = |bound: &Option<Bound>| bound.as_ref().is_some_and(Bound::is_relative);
        // Fixed bounds never read the clock; relative ones read it once per value.
        let today = if relative(&self.min) || relative(&self.max) { today() } else { 0 };
        if let Some(min) = &self.min {
            let (min, relative) = min.resolve(today);
            if date < min {
                return Err(ViolationKind::DateBeforeMin {
                    date,
                    min,
                    relative: relative.cloned(),
                });
            }
        }
        if let Some(max) = &self.max {
            let (max, relative) = max.resolve(today);
            if date > max {
                return Err(ViolationKind::DateAfterMax { date, max, relative: relative.cloned() });
            }
        }
        Ok(())
    }

    /// Checks a value as if today were `today`.
    #[cfg(test)]
    fn check_on(&self, text: &str, today: NaiveDate) -> Result<(), ViolationKind> {
        self.check_at(text, || epoch_day_of(today))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("test date")
    }

    fn rule(min: Option<&str>, max: Option<&str>) -> Result<DateRangeRule, RuleConfigError> {
        DateRangeRuleConfig {
            field: "d".into(),
            min: min.map(str::to_owned),
            max: max.map(str::to_owned),
        }
        .build()
    }

    fn resolved(bound: &str, today: NaiveDate) -> NaiveDate {
        match parse_bound(bound).expect(bound) {
            Bound::Fixed(date) => date,
            Bound::Relative(relative) => relative.resolve(epoch_day_of(today)),
        }
    }

    #[test]
    fn epoch_days_convert_both_ways() {
        assert_eq!(date(1970, 1, 1).num_days_from_ce(), 719_163);
        assert_eq!(epoch_day_of(date(1970, 1, 1)), 0);
        assert_eq!(date_of_epoch_day(0), date(1970, 1, 1));
        assert_eq!(date_of_epoch_day(epoch_day_of(date(2024, 2, 29))), date(2024, 2, 29));
        assert_eq!(date_of_epoch_day(-1), date(1969, 12, 31));
        // The real clock gives some date after this code was written.
        assert!(today_utc() > date(2025, 1, 1));
    }

    #[test]
    fn fixed_bounds_are_inclusive() {
        let rule = rule(Some("2020-01-01"), Some("2020-12-31")).expect("builds");
        let today = date(2026, 6, 1);
        for inside in ["2020-01-01", "2020-06-15", "2020-12-31", "2020-02-29"] {
            assert_eq!(rule.check_on(inside, today), Ok(()), "{inside}");
        }
        assert_eq!(
            rule.check_on("2019-12-31", today),
            Err(ViolationKind::DateBeforeMin {
                date: date(2019, 12, 31),
                min: date(2020, 1, 1),
                relative: None
            })
        );
        assert_eq!(
            rule.check_on("2021-01-01", today),
            Err(ViolationKind::DateAfterMax {
                date: date(2021, 1, 1),
                max: date(2020, 12, 31),
                relative: None
            })
        );
        let open_ended = self::rule(Some("2020-01-01"), None).expect("builds");
        assert_eq!(open_ended.check_on("9999-12-31", today), Ok(()));
        let up_to = self::rule(None, Some("2020-01-01")).expect("builds");
        assert_eq!(up_to.check_on("0001-01-01", today), Ok(()));
    }

    #[test]
    fn date_times_are_compared_by_their_date() {
        let rule = rule(Some("2020-01-01"), Some("2020-12-31")).expect("builds");
        let today = date(2026, 6, 1);
        for value in [
            "2020-12-31T23:59:59",
            "2020-12-31T23:59:59Z",
            "2020-12-31T23:59:59.123456+14:00",
            "2020-12-31 08:00:00-05:00",
            "2020-12-31t08:00:00z",
            "2020-06-30T23:59:60Z",
        ] {
            assert_eq!(rule.check_on(value, today), Ok(()), "{value}");
        }
        assert!(matches!(
            rule.check_on("2021-01-01T00:00:00+01:00", today),
            Err(ViolationKind::DateAfterMax { .. })
        ));
    }

    #[test]
    fn values_that_are_not_dates_have_their_own_violation() {
        let rule = rule(Some("2020-01-01"), None).expect("builds");
        let today = date(2026, 6, 1);
        for value in [
            "31/12/2024",
            "2024-1-5",
            "20240105",
            "2024-01-05T",
            "2024-01-05T25:00:00",
            "2024-01-05T12:00",
            "2024-01-05T12:00:00.",
            "2024-01-05T12:00:00+0100",
            "2024-01-05X12:00:00",
            "yesterday",
            "2024-01-05 ",
            "２０２４-01-05",
        ] {
            assert!(
                matches!(rule.check_on(value, today), Err(ViolationKind::NotADate { .. })),
                "{value}"
            );
        }
        assert_eq!(
            rule.check_on("1999-02-29", today),
            Err(ViolationKind::DateDoesNotExist { year: 1999, month: 2, day: 29 })
        );
        assert_eq!(
            rule.check_on("2023-13-01T00:00:00Z", today),
            Err(ViolationKind::DateDoesNotExist { year: 2023, month: 13, day: 1 })
        );
        assert_eq!(rule.check_on("", today), Err(ViolationKind::Empty { subject: Subject::Date }));
    }

    #[test]
    fn relative_bounds_resolve_against_the_given_day() {
        let today = date(2024, 1, 31);
        assert_eq!(resolved("today", today), today);
        assert_eq!(resolved("today+0d", today), today);
        assert_eq!(resolved("today+30d", today), date(2024, 3, 1));
        assert_eq!(resolved("today-1d", today), date(2024, 1, 30));
        assert_eq!(resolved("today+1m", today), date(2024, 2, 29));
        assert_eq!(resolved("today-2m", today), date(2023, 11, 30));
        assert_eq!(resolved("today-1y", today), date(2023, 1, 31));
        assert_eq!(resolved("today+18y", date(2024, 2, 29)), date(2042, 2, 28));
        assert_eq!(resolved("today+100000d", today), date(2297, 11, 15));
        assert_eq!(resolved("2020-02-29", today), date(2020, 2, 29));
    }

    #[test]
    fn relative_bounds_follow_the_calendar_day_by_day() {
        let rule = rule(Some("today-1y"), Some("today")).expect("builds");
        let monday = date(2024, 6, 3);
        assert_eq!(rule.check_on("2024-06-03", monday), Ok(()));
        assert_eq!(
            rule.check_on("2024-06-04", monday),
            Err(ViolationKind::DateAfterMax {
                date: date(2024, 6, 4),
                max: monday,
                relative: Some(Arc::from("today"))
            })
        );
        // The next day the cached bounds move on.
        let tuesday = date(2024, 6, 4);
        assert_eq!(rule.check_on("2024-06-04", tuesday), Ok(()));
        assert_eq!(rule.check_on("2023-06-04", tuesday), Ok(()));
        assert_eq!(
            rule.check_on("2023-06-03", tuesday),
            Err(ViolationKind::DateBeforeMin {
                date: date(2023, 6, 3),
                min: date(2023, 6, 4),
                relative: Some(Arc::from("today-1y"))
            })
        );
        // A clone starts from the same cache and keeps working on its own.
        let copy = rule.clone();
        assert_eq!(copy.check_on("2024-06-03", monday), Ok(()));
        // Before 1970 (no cache key) still resolves.
        assert_eq!(rule.check_on("1969-06-01", date(1969, 6, 1)), Ok(()));
    }

    #[test]
    fn the_real_clock_accepts_today() {
        let rule = rule(Some("today"), Some("today")).expect("builds");
        let today = today_utc().format("%Y-%m-%d").to_string();
        // Tolerate a run that crosses midnight UTC between the two clock reads.
        let result = rule.check(&today);
        assert!(
            result.is_ok() || today_utc().format("%Y-%m-%d").to_string() != today,
            "{result:?}"
        );
    }

    #[test]
    fn bad_bounds_are_config_errors() {
        for bad in [
            "tomorrow",
            "today+",
            "today+30",
            "today+30w",
            "today+d",
            "today 30d",
            "today+-1d",
            "today+1000000d",
            "today+271y",
            "Today",
            "2020-02-30",
            "2020-13-01",
            "2020-1-1",
            "01/01/2020",
            "",
        ] {
            let error = rule(Some(bad), None).expect_err(bad);
            let RuleConfigError::InvalidDateBound { bound, value, .. } = &error else {
                panic!("{bad}: {error:?}");
            };
            assert_eq!((*bound, value.as_str()), ("min", bad));
            assert!(error.to_string().contains("field `d`"), "{error}");
            assert!(rule(None, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_and_missing_ranges_are_config_errors() {
        assert!(matches!(rule(None, None), Err(RuleConfigError::MissingDateBounds { .. })));
        assert!(matches!(
            rule(Some("2021-01-01"), Some("2020-12-31")),
            Err(RuleConfigError::EmptyDateRange { .. })
        ));
        assert!(matches!(
            rule(Some("today+1d"), Some("today")),
            Err(RuleConfigError::EmptyDateRange { .. })
        ));
        assert!(matches!(
            rule(Some("today+1y"), Some("today+11m")),
            Err(RuleConfigError::EmptyDateRange { .. })
        ));
        // Equal bounds are a one-day range; mixed kinds cannot be judged ahead of time.
        assert!(rule(Some("2020-01-01"), Some("2020-01-01")).is_ok());
        assert!(rule(Some("today-1y"), Some("today+30d")).is_ok());
        assert!(rule(Some("2020-01-01"), Some("today")).is_ok());
    }
}
