//! The casts of a `field_mapping` field: compiled once from a [`FieldSpec`], then run on each
//! cell's text, writing the JSON value into the row's slot.
//!
//! The per-row path allocates nothing on success: numbers are read straight from the `&str`
//! (thousands separators and decimal commas are handled while scanning, not by building a new
//! string), and string-valued results (strings, dates, datetimes) are written into the slot's
//! existing `String`.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde_json::{Number, Value};

use crate::config::{Cast, FieldSpec};
use crate::dates::{DATE_FORMATS, DATETIME_FORMATS, DateFormats, write_date, write_datetime};
use crate::error::{CastErrorKind, MappingConfigError};

/// The default `true_values`.
const TRUE_VALUES: [&str; 7] = ["true", "1", "yes", "y", "ja", "j", "t"];
/// The default `false_values`.
const FALSE_VALUES: [&str; 6] = ["false", "0", "no", "n", "nej", "f"];

/// Significant digits beyond which a decimal is checked by formatting the float back.
/// Every decimal of at most 15 significant digits (in the normal float range) survives a round
/// trip through an f64 exactly.
const ALWAYS_EXACT_DIGITS: usize = 15;
/// The powers of ten an f64 holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
/// No f64's shortest decimal form has more significant digits than this.
const MAX_F64_DIGITS: usize = 17;

/// A compiled cast.
#[derive(Debug)]
pub(crate) enum CompiledCast {
    String,
    Integer { thousands: Option<Arc<str>> },
    Decimal { decimal: char, thousands: Option<Arc<str>> },
    Boolean(BooleanValues),
    Date(DateFormats),
    Datetime(DateFormats),
}

impl CompiledCast {
    /// Checks the cast options of `spec` (at `path`) and compiles them; every problem goes to
    /// `errors`.
    pub(crate) fn compile(
        spec: &FieldSpec,
        path: &str,
        errors: &mut Vec<MappingConfigError>,
    ) -> Option<Self> {
        let before = errors.len();
        let cast = spec.cast;
        let unused =
            |option: &'static str, used_with: &str| MappingConfigError::OptionHasNoEffect {
                path: format!("{path}.{option}"),
                option,
                reason: format!(
                    "it is only used with cast {used_with}, this field has `{}`",
                    cast.as_str()
                ),
            };
        if !spec.formats.is_empty() && !matches!(cast, Cast::Date | Cast::Datetime) {
            errors.push(unused("formats", "`date` or `datetime`"));
        }
        if spec.decimal_comma && cast != Cast::Decimal {
            errors.push(unused("decimal_comma", "`decimal`"));
        }
        if spec.thousands_separator.is_some() && !matches!(cast, Cast::Integer | Cast::Decimal) {
            errors.push(unused("thousands_separator", "`integer` or `decimal`"));
        }
        if cast != Cast::Boolean {
            if spec.true_values.is_some() {
                errors.push(unused("true_values", "`boolean`"));
            }
            if spec.false_values.is_some() {
                errors.push(unused("false_values", "`boolean`"));
            }
        }
        let decimal = if spec.decimal_comma { ',' } else { '.' };
        let compiled = match cast {
            Cast::String => Some(CompiledCast::String),
            Cast::Integer => thousands_separator(spec, None, path, errors)
                .map(|thousands| CompiledCast::Integer { thousands }),
            Cast::Decimal => thousands_separator(spec, Some(decimal), path, errors)
                .map(|thousands| CompiledCast::Decimal { decimal, thousands }),
            Cast::Boolean => BooleanValues::compile(spec, path, errors).map(CompiledCast::Boolean),
            Cast::Date => DateFormats::compile(&spec.formats, &DATE_FORMATS, false, path, errors)
                .map(CompiledCast::Date),
            Cast::Datetime => {
                DateFormats::compile(&spec.formats, &DATETIME_FORMATS, true, path, errors)
                    .map(CompiledCast::Datetime)
            }
        };
        if errors.len() == before { compiled } else { None }
    }

    /// Casts `text` (already trimmed if the field trims) into `slot`, or says why it cannot.
    pub(crate) fn apply(&self, text: &str, slot: &mut Value) -> Result<(), CastErrorKind> {
        match self {
            CompiledCast::String => {
                set_str(slot, text);
                Ok(())
            }
            CompiledCast::Integer { thousands } => {
                let number = parse_integer(text, thousands.as_deref()).map_err(|e| match e {
                    IntegerError::Syntax => {
                        CastErrorKind::NotAnInteger { thousands_separator: thousands.clone() }
                    }
                    IntegerError::Overflow => CastErrorKind::IntegerOutOfRange,
                })?;
                *slot = Value::Number(number.into());
                Ok(())
            }
            CompiledCast::Decimal { decimal, thousands } => {
                let number =
                    parse_decimal(text, *decimal, thousands.as_deref()).map_err(|e| match e {
                        DecimalError::Syntax => CastErrorKind::NotADecimal {
                            decimal_separator: *decimal,
                            thousands_separator: thousands.clone(),
                        },
                        DecimalError::TooManyDigits => CastErrorKind::TooManySignificantDigits,
                        DecimalError::OutOfRange => CastErrorKind::DecimalOutOfRange,
                    })?;
                *slot = Value::Number(number);
                Ok(())
            }
            CompiledCast::Boolean(values) => {
                *slot = Value::Bool(values.read(text)?);
                Ok(())
            }
            CompiledCast::Date(formats) => {
                let date = formats.read_date(text)?;
                write_into(slot, |out| write_date(out, date));
                Ok(())
            }
            CompiledCast::Datetime(formats) => {
                let datetime = formats.read_datetime(text)?;
                write_into(slot, |out| write_datetime(out, datetime));
                Ok(())
            }
        }
    }
}

/// Puts `text` in `slot`, reusing the slot's string buffer when it holds one.
pub(crate) fn set_str(slot: &mut Value, text: &str) {
    if let Value::String(buffer) = slot {
        buffer.clear();
        buffer.push_str(text);
    } else {
        *slot = Value::String(text.to_owned());
    }
}

/// Puts a copy of `value` in `slot`, reusing the slot's string buffer for a string.
pub(crate) fn set_value(slot: &mut Value, value: &Value) {
    match (&mut *slot, value) {
        (Value::String(buffer), Value::String(text)) => {
            if buffer != text {
                buffer.clear();
                buffer.push_str(text);
            }
        }
        _ => {
            if slot != value {
                *slot = value.clone();
            }
        }
    }
}

/// Writes a string value into `slot` through `write`, reusing the slot's string buffer.
fn write_into(slot: &mut Value, write: impl FnOnce(&mut String) -> fmt::Result) {
    let mut buffer = match std::mem::take(slot) {
        Value::String(mut buffer) => {
            buffer.clear();
            buffer
        }
        _ => String::new(),
    };
    // Writing into a String cannot fail.
    let _ = write(&mut buffer);
    *slot = Value::String(buffer);
}

fn thousands_separator(
    spec: &FieldSpec,
    decimal: Option<char>,
    path: &str,
    errors: &mut Vec<MappingConfigError>,
) -> Option<Option<Arc<str>>> {
    let Some(separator) = &spec.thousands_separator else {
        return Some(None);
    };
    let reason = if separator.is_empty() {
        Some("is empty; leave `thousands_separator` out if numbers have no separator")
    } else if separator.chars().any(|c| c.is_ascii_digit() || c == '+' || c == '-') {
        Some("contains a digit or a sign")
    } else if decimal.is_some_and(|d| separator.contains(d)) {
        Some("is the decimal separator too; set `decimal_comma` to use ',' for decimals")
    } else {
        None
    };
    match reason {
        Some(reason) => {
            errors.push(MappingConfigError::InvalidThousandsSeparator {
                path: format!("{path}.thousands_separator"),
                separator: separator.clone(),
                reason,
            });
            None
        }
        None => Some(Some(Arc::from(separator.as_str()))),
    }
}

/// Splits an optional leading sign off a number; `true` for a minus.
fn split_sign(text: &str) -> (bool, &str) {
    if let Some(rest) = text.strip_prefix('-') {
        (true, rest)
    } else {
        (false, text.strip_prefix('+').unwrap_or(text))
    }
}

/// Reads the integer part of a number: ASCII digits, optionally grouped by `thousands` (a first
/// group of 1–3 digits, then groups of exactly 3). Calls `digit` with each digit's value and
/// returns the rest of the text and how many digits were read, or `None` for a bad grouping.
fn integer_digits<'t>(
    text: &'t str,
    thousands: Option<&str>,
    mut digit: impl FnMut(u8),
) -> Option<(&'t str, usize)> {
    let bytes = text.as_bytes();
    let lead = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    bytes[..lead].iter().for_each(|b| digit(b - b'0'));
    let mut rest = &text[lead..];
    let mut count = lead;
    if let Some(separator) = thousands {
        while let Some(after) = rest.strip_prefix(separator) {
            let group = after.as_bytes().iter().take_while(|b| b.is_ascii_digit()).count();
            if group == 0 {
                // A separator not followed by digits is not part of the number; the caller sees
                // it as trailing text.
                break;
            }
            if group != 3 || lead == 0 || lead > 3 {
                return None;
            }
            after.as_bytes()[..3].iter().for_each(|b| digit(b - b'0'));
            count += 3;
            rest = &after[3..];
        }
    }
    Some((rest, count))
}

enum IntegerError {
    Syntax,
    Overflow,
}

/// Reads a 64-bit integer: optional sign, digits, optional thousands grouping, nothing else.
fn parse_integer(text: &str, thousands: Option<&str>) -> Result<i64, IntegerError> {
    let (negative, body) = split_sign(text);
    let mut value: i64 = 0;
    let mut overflow = false;
    let read = integer_digits(body, thousands, |d| {
        let next = value.checked_mul(10).and_then(|v| {
            if negative { v.checked_sub(i64::from(d)) } else { v.checked_add(i64::from(d)) }
        });
        match next {
            Some(next) => value = next,
            None => overflow = true,
        }
    });
    match read {
        Some(("", digits)) if digits > 0 => {
            if overflow {
                Err(IntegerError::Overflow)
            } else {
                Ok(value)
            }
        }
        _ => Err(IntegerError::Syntax),
    }
}

#[derive(Debug, PartialEq)]
enum DecimalError {
    Syntax,
    TooManyDigits,
    OutOfRange,
}

/// The significant digits of a decimal and its exponent: the value is `0.DIGITS × 10^exponent`.
/// Leading and trailing zeros are not stored.
struct Significant {
    digits: [u8; MAX_F64_DIGITS],
    len: usize,
    /// Zeros seen after the last non-zero digit, stored only if another non-zero digit follows.
    pending_zeros: usize,
    exponent: i64,
    /// More significant digits than any f64 has.
    too_many: bool,
}

impl Significant {
    fn new() -> Self {
        Self { digits: [0; MAX_F64_DIGITS], len: 0, pending_zeros: 0, exponent: 0, too_many: false }
    }

    fn started(&self) -> bool {
        self.len > 0
    }

    fn integer_digit(&mut self, digit: u8) {
        if self.started() || digit != 0 {
            self.exponent += 1;
            self.push(digit);
        }
    }

    fn fraction_digit(&mut self, digit: u8) {
        if self.started() || digit != 0 {
            self.push(digit);
        } else {
            self.exponent -= 1;
        }
    }

    fn push(&mut self, digit: u8) {
        if digit == 0 {
            self.pending_zeros += 1;
            return;
        }
        if self.len + self.pending_zeros + 1 > MAX_F64_DIGITS {
            self.too_many = true;
            return;
        }
        let zeros_end = self.len + self.pending_zeros;
        self.digits[self.len..zeros_end].fill(b'0');
        self.len = zeros_end;
        self.pending_zeros = 0;
        self.digits[self.len] = b'0' + digit;
        self.len += 1;
    }

    fn digits(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

/// Reads a decimal as a JSON number; refuses one an f64 cannot hold exactly.
fn parse_decimal(
    text: &str,
    decimal: char,
    thousands: Option<&str>,
) -> Result<Number, DecimalError> {
    let (negative, body) = split_sign(text);
    let mut significant = Significant::new();
    let (rest, integer_count) = integer_digits(body, thousands, |d| significant.integer_digit(d))
        .ok_or(DecimalError::Syntax)?;
    let mut fraction_count = 0;
    if let Some(fraction) = rest.strip_prefix(decimal) {
        for byte in fraction.bytes() {
            if !byte.is_ascii_digit() {
                return Err(DecimalError::Syntax);
            }
            significant.fraction_digit(byte - b'0');
            fraction_count += 1;
        }
        if fraction_count == 0 {
            return Err(DecimalError::Syntax);
        }
    } else if !rest.is_empty() {
        return Err(DecimalError::Syntax);
    }
    if integer_count + fraction_count == 0 {
        return Err(DecimalError::Syntax);
    }
    if significant.too_many {
        return Err(DecimalError::TooManyDigits);
    }
    if !significant.started() {
        return Number::from_f64(0.0).ok_or(DecimalError::OutOfRange);
    }

    // Clinger's fast path: an integer below 2^53 multiplied or divided by a power of ten that is
    // itself exact in an f64 is one correctly rounded operation, i.e. the nearest f64.
    let scale = significant.exponent - significant.len as i64;
    if significant.len <= ALWAYS_EXACT_DIGITS
        && let Some(power) = POWERS_OF_TEN.get(scale.unsigned_abs() as usize)
    {
        let mantissa = significant.digits().iter().fold(0u64, |m, d| m * 10 + u64::from(d - b'0'));
        let magnitude = mantissa as f64;
        let value = if scale >= 0 { magnitude * power } else { magnitude / power };
        return Number::from_f64(if negative { -value } else { value })
            .ok_or(DecimalError::OutOfRange);
    }

    // "-0.DIGITSeEXP" always fits: sign, "0.", 17 digits, "e" and an i64.
    let mut canonical = StackText::<48>::new();
    let written = write!(
        canonical,
        "{}0.{}e{}",
        if negative { "-" } else { "" },
        canonical_digits(significant.digits()),
        significant.exponent
    );
    // The canonical text is always a valid float; failing to read it would be our bug, reported
    // as out of range rather than blaming the user's syntax.
    let value: f64 = written
        .ok()
        .and_then(|()| canonical.as_str().parse().ok())
        .ok_or(DecimalError::OutOfRange)?;
    if !value.is_finite() || value == 0.0 {
        return Err(DecimalError::OutOfRange);
    }
    let surely_exact =
        significant.len <= ALWAYS_EXACT_DIGITS && (-290..=290).contains(&significant.exponent);
    if !surely_exact && !round_trips(value, &significant)? {
        return Err(DecimalError::TooManyDigits);
    }
    Number::from_f64(value).ok_or(DecimalError::OutOfRange)
}

/// ASCII digits as text (they are always ASCII, so this never falls back).
fn canonical_digits(digits: &[u8]) -> &str {
    std::str::from_utf8(digits).unwrap_or("0")
}

/// Whether `value`'s shortest decimal form has exactly the digits and exponent of the input.
/// A subnormal float that lost digits, or a value rounded to the nearest float, does not.
fn round_trips(value: f64, significant: &Significant) -> Result<bool, DecimalError> {
    let mut shortest = StackText::<40>::new();
    // `{:e}` writes the shortest digits that read back as the same f64: "1.2345e3", "5e-1".
    write!(shortest, "{:e}", value.abs()).map_err(|_| DecimalError::OutOfRange)?;
    let text = shortest.as_str();
    let Some((mantissa, exponent)) = text.split_once('e') else {
        return Ok(false);
    };
    let Ok(exponent) = exponent.parse::<i64>() else {
        return Ok(false);
    };
    let mut digits = StackText::<24>::new();
    for c in mantissa.chars().filter(|c| *c != '.') {
        digits.write_char(c).map_err(|_| DecimalError::OutOfRange)?;
    }
    let digits = digits.as_str().trim_end_matches('0');
    Ok(digits.as_bytes() == significant.digits() && exponent + 1 == significant.exponent)
}

/// A small text buffer on the stack, for number conversions without allocating.
struct StackText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    fn new() -> Self {
        Self { bytes: [0; N], len: 0 }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let target = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        target.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The texts a boolean field reads as `true` and `false`.
#[derive(Debug)]
pub(crate) struct BooleanValues {
    trues: Arc<[String]>,
    falses: Arc<[String]>,
}

impl BooleanValues {
    fn compile(spec: &FieldSpec, path: &str, errors: &mut Vec<MappingConfigError>) -> Option<Self> {
        let list = |given: &Option<Vec<String>>, default: &[&str]| -> Arc<[String]> {
            match given {
                Some(values) => values.iter().map(|v| v.to_lowercase()).collect(),
                None => default.iter().map(|v| (*v).to_owned()).collect(),
            }
        };
        let trues = list(&spec.true_values, &TRUE_VALUES);
        let falses = list(&spec.false_values, &FALSE_VALUES);
        let before = errors.len();
        for (name, values) in [("true_values", &trues), ("false_values", &falses)] {
            if values.is_empty() {
                errors.push(MappingConfigError::InvalidBooleanValues {
                    path: format!("{path}.{name}"),
                    problem: format!("`{name}` is empty; leave it out to use the defaults"),
                });
            }
        }
        for value in trues.iter().filter(|v| falses.contains(v)) {
            errors.push(MappingConfigError::InvalidBooleanValues {
                path: path.to_owned(),
                problem: format!("'{value}' is in both `true_values` and `false_values`"),
            });
        }
        (errors.len() == before).then_some(Self { trues, falses })
    }

    fn read(&self, text: &str) -> Result<bool, CastErrorKind> {
        let ascii = text.is_ascii();
        if self.trues.iter().any(|v| same_ignoring_case(text, ascii, v)) {
            Ok(true)
        } else if self.falses.iter().any(|v| same_ignoring_case(text, ascii, v)) {
            Ok(false)
        } else {
            Err(CastErrorKind::NotABoolean {
                true_values: self.trues.clone(),
                false_values: self.falses.clone(),
            })
        }
    }
}

/// Case-insensitive equality with `lower`, which is already lower case. Allocates nothing.
/// An ASCII text can only equal a lower-case candidate that is ASCII too, so bytes will do.
fn same_ignoring_case(text: &str, text_is_ascii: bool, lower: &str) -> bool {
    if text_is_ascii {
        text.eq_ignore_ascii_case(lower)
    } else {
        text.chars().flat_map(char::to_lowercase).eq(lower.chars())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(cast: Cast) -> FieldSpec {
        FieldSpec { cast, ..FieldSpec::from_column("f", "F") }
    }

    fn compile(spec: &FieldSpec) -> CompiledCast {
        let mut errors = Vec::new();
        let cast = CompiledCast::compile(spec, "f", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        cast.expect("no error")
    }

    fn run(cast: &CompiledCast, text: &str) -> Result<Value, CastErrorKind> {
        let mut slot = Value::Null;
        cast.apply(text, &mut slot).map(|()| slot)
    }

    fn integer(thousands: Option<&str>) -> CompiledCast {
        compile(&FieldSpec {
            thousands_separator: thousands.map(str::to_owned),
            ..spec(Cast::Integer)
        })
    }

    fn decimal(comma: bool, thousands: Option<&str>) -> CompiledCast {
        compile(&FieldSpec {
            decimal_comma: comma,
            thousands_separator: thousands.map(str::to_owned),
            ..spec(Cast::Decimal)
        })
    }

    #[test]
    fn integers_take_signs_and_refuse_fractions_exponents_and_overflow() {
        let cast = integer(None);
        for (text, value) in [("12", 12), ("+12", 12), ("-3", -3), ("007", 7), ("-0", 0)] {
            assert_eq!(run(&cast, text), Ok(json!(value)), "{text}");
        }
        assert_eq!(run(&cast, "9223372036854775807"), Ok(json!(i64::MAX)));
        assert_eq!(run(&cast, "-9223372036854775808"), Ok(json!(i64::MIN)));
        assert_eq!(run(&cast, "9223372036854775808"), Err(CastErrorKind::IntegerOutOfRange));
        assert_eq!(run(&cast, "-99999999999999999999"), Err(CastErrorKind::IntegerOutOfRange));
        let not = Err(CastErrorKind::NotAnInteger { thousands_separator: None });
        for text in
            ["1.0", "1e3", "", "+", "-", "1 000", "12a", "99999999999999999999x", " 1", "--1", "١"]
        {
            assert_eq!(run(&cast, text), not, "{text}");
        }
    }

    #[test]
    fn integers_with_thousands_separators_check_the_grouping() {
        let cast = integer(Some(" "));
        for (text, value) in [
            ("1 234", 1234),
            ("1 234 567", 1_234_567),
            ("-12 345", -12345),
            ("999", 999),
            ("1234", 1234),
        ] {
            assert_eq!(run(&cast, text), Ok(json!(value)), "{text}");
        }
        for text in ["1 23 4", "1234 567", " 234", "1 2345", "1 234 ", "1  234", "1 234,5"] {
            assert!(matches!(run(&cast, text), Err(CastErrorKind::NotAnInteger { .. })), "{text}");
        }
        let dots = integer(Some("."));
        assert_eq!(run(&dots, "1.234.567"), Ok(json!(1_234_567)));
        assert!(run(&dots, "1.0").is_err());
        let nbsp = integer(Some("\u{a0}"));
        assert_eq!(run(&nbsp, "12\u{a0}000"), Ok(json!(12000)));
    }

    #[test]
    fn decimals_with_a_point() {
        let cast = decimal(false, None);
        for (text, value) in [
            ("1234.50", 1234.5),
            ("-0.5", -0.5),
            (".5", 0.5),
            ("+3", 3.0),
            ("0.1", 0.1),
            ("100.25", 100.25),
        ] {
            assert_eq!(run(&cast, text), Ok(json!(value)), "{text}");
        }
        assert_eq!(run(&cast, "-0.0"), Ok(json!(0.0)));
        for text in ["1,5", "5.", ".", "1e3", "1.2.3", "abc", "", "-"] {
            assert!(
                matches!(
                    run(&cast, text),
                    Err(CastErrorKind::NotADecimal { decimal_separator: '.', .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn decimals_with_a_comma_and_thousands() {
        let cast = decimal(true, Some(" "));
        for (text, value) in [
            ("1 234,50", 1234.5),
            ("1234,50", 1234.5),
            ("-0,5", -0.5),
            (",5", 0.5),
            ("-1 000 000", -1e6),
            ("12", 12.0),
        ] {
            assert_eq!(run(&cast, text), Ok(json!(value)), "{text}");
        }
        for text in ["12,3,4", "1.5", "1 23,4", "1 234,5 6", "12,", "1 234.50"] {
            assert!(
                matches!(
                    run(&cast, text),
                    Err(CastErrorKind::NotADecimal { decimal_separator: ',', .. })
                ),
                "{text}"
            );
        }
        let dotted = decimal(true, Some("."));
        assert_eq!(run(&dotted, "1.234.567,89"), Ok(json!(1234567.89)));
    }

    #[test]
    fn decimals_never_lose_precision_silently() {
        let cast = decimal(false, None);
        // 17 significant digits that an f64 holds exactly (its shortest form).
        assert_eq!(run(&cast, "0.30000000000000004"), Ok(json!(0.30000000000000004)));
        assert_eq!(run(&cast, "123456789012345.6"), Ok(json!(123456789012345.6)));
        assert_eq!(run(&cast, "9007199254740993"), Err(CastErrorKind::TooManySignificantDigits));
        assert_eq!(
            run(&cast, "1234567890.123456789"),
            Err(CastErrorKind::TooManySignificantDigits)
        );
        assert_eq!(
            run(&cast, "0.1000000000000000055511151231257827"),
            Err(CastErrorKind::TooManySignificantDigits)
        );
        // Trailing and leading zeros are not significant.
        assert_eq!(run(&cast, "000001.5000000000000000000000"), Ok(json!(1.5)));
        assert_eq!(run(&cast, &format!("1{}", "0".repeat(300))), Ok(json!(1e300)));
        assert_eq!(
            run(&cast, &format!("1{}", "0".repeat(400))),
            Err(CastErrorKind::DecimalOutOfRange)
        );
        assert_eq!(
            run(&cast, &format!("0.{}1", "0".repeat(400))),
            Err(CastErrorKind::DecimalOutOfRange)
        );
        // A subnormal keeps too few digits to round-trip 16 of them.
        assert_eq!(
            run(&cast, &format!("0.{}1234567890123456", "0".repeat(320))),
            Err(CastErrorKind::TooManySignificantDigits)
        );
        assert_eq!(
            run(&cast, "5e-324"),
            Err(CastErrorKind::NotADecimal { decimal_separator: '.', thousands_separator: None })
        );
    }

    /// The quick path (an exact multiply or divide) and the checked path must agree with the
    /// standard library's correctly rounded reading.
    #[test]
    fn decimals_read_the_nearest_float() {
        let cast = decimal(false, None);
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut accepted = 0;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let digits = (seed % 17 + 1) as usize;
            let mantissa = (seed >> 8) % 10u64.pow(digits as u32);
            let point = ((seed >> 40) % 40) as usize;
            let text = format!("{mantissa:0>width$}", width = point.max(1) + 1);
            let (int, frac) = text.split_at(text.len() - point.min(text.len() - 1));
            let text = if frac.is_empty() { int.to_owned() } else { format!("{int}.{frac}") };
            let expected: f64 = text.parse().expect("a float");
            let significant = text.replace('.', "");
            let significant = significant.trim_start_matches('0').trim_end_matches('0').len();
            match run(&cast, &text) {
                Ok(value) => {
                    assert_eq!(value.as_f64(), Some(expected), "{text}");
                    accepted += 1;
                }
                Err(kind) => {
                    assert_eq!(kind, CastErrorKind::TooManySignificantDigits, "{text}");
                    assert!(significant > 15, "{text} has only {significant} digits");
                }
            }
        }
        assert!((10_000..20_000).contains(&accepted), "{accepted}");
    }

    #[test]
    fn booleans_read_swedish_and_english_in_any_case() {
        let cast = compile(&spec(Cast::Boolean));
        for text in ["true", "TRUE", "1", "yes", "Y", "ja", "JA", "j", "t"] {
            assert_eq!(run(&cast, text), Ok(json!(true)), "{text}");
        }
        for text in ["false", "0", "No", "n", "nej", "NEJ", "F"] {
            assert_eq!(run(&cast, text), Ok(json!(false)), "{text}");
        }
        assert!(matches!(run(&cast, "kanske"), Err(CastErrorKind::NotABoolean { .. })));
        let custom = compile(&FieldSpec {
            true_values: Some(vec!["Sant".into(), "ÄKTA".into()]),
            false_values: Some(vec!["falskt".into()]),
            ..spec(Cast::Boolean)
        });
        assert_eq!(run(&custom, "SANT"), Ok(json!(true)));
        assert_eq!(run(&custom, "äkta"), Ok(json!(true)));
        assert_eq!(run(&custom, "Falskt"), Ok(json!(false)));
        assert!(run(&custom, "true").is_err());
    }

    #[test]
    fn strings_reuse_the_slot_buffer() {
        let cast = compile(&spec(Cast::String));
        let mut slot = Value::String(String::with_capacity(64));
        cast.apply("abc", &mut slot).expect("no error");
        let Value::String(s) = &slot else { panic!() };
        assert_eq!((s.as_str(), s.capacity()), ("abc", 64));
        let date = compile(&spec(Cast::Date));
        date.apply("2026-01-02", &mut slot).expect("no error");
        let Value::String(s) = &slot else { panic!() };
        assert_eq!((s.as_str(), s.capacity()), ("2026-01-02", 64));
    }

    #[test]
    fn bad_cast_options_are_all_reported() {
        let mut errors = Vec::new();
        let bad = FieldSpec {
            formats: vec!["%d".into()],
            decimal_comma: true,
            thousands_separator: Some("".into()),
            true_values: Some(vec![]),
            ..spec(Cast::Integer)
        };
        assert!(CompiledCast::compile(&bad, "fields[0]", &mut errors).is_none());
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{text:?}");
        assert!(text[0].starts_with("fields[0].formats: `formats` has no effect"), "{text:?}");

        for (separator, comma) in [("1", false), (".", false), (",", true), ("-", false)] {
            let mut errors = Vec::new();
            let s = FieldSpec {
                thousands_separator: Some(separator.into()),
                decimal_comma: comma,
                ..spec(Cast::Decimal)
            };
            assert!(CompiledCast::compile(&s, "f", &mut errors).is_none(), "{separator}");
            assert!(
                matches!(errors[..], [MappingConfigError::InvalidThousandsSeparator { .. }]),
                "{errors:?}"
            );
        }

        let mut errors = Vec::new();
        let s = FieldSpec {
            true_values: Some(vec!["Ja".into()]),
            false_values: Some(vec!["ja".into()]),
            ..spec(Cast::Boolean)
        };
        assert!(CompiledCast::compile(&s, "f", &mut errors).is_none());
        assert!(errors[0].to_string().contains("'ja' is in both"), "{errors:?}");
    }
}
