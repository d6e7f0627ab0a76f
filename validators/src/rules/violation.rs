//! Why a value broke a row rule: kept as data, rendered in a locale only when asked.

use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::Value;

use super::messages;
use crate::Locale;

/// Why a value broke a rule; rendered in a locale on demand (only for rejected rows, so cheap
/// on the hot path: nothing is formatted until [`Violation::message`] is called).
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    kind: ViolationKind,
}

impl Violation {
    pub(super) fn new(kind: ViolationKind) -> Self {
        Self { kind }
    }

    /// A stable, machine-readable name for the kind of problem (`iban_checksum`,
    /// `date_before_min`, …), for reports and for grouping rejected rows.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// What is wrong and what to check, in the operator's language.
    pub fn message(&self, locale: Locale) -> String {
        use ViolationKind as K;
        match &self.kind {
            K::WrongType { got } => messages::wrong_type(locale, *got),
            K::Empty { subject } => messages::empty(locale, *subject),
            K::PatternMismatch { pattern } => messages::pattern_mismatch(locale, pattern),
            K::InvalidCharacter { subject, ch, position } => {
                messages::invalid_character(locale, *subject, *ch, *position)
            }
            K::BadSpacing { subject } => messages::bad_spacing(locale, *subject),
            K::Lowercase { subject, ch, position } => {
                messages::lowercase(locale, *subject, *ch, *position)
            }
            K::IbanTooShort { got } => messages::iban_too_short(locale, *got),
            K::IbanCountryCode { got } => messages::iban_country_code(locale, got),
            K::IbanUnknownCountry { country } => {
                messages::iban_unknown_country(locale, country.as_str())
            }
            K::IbanLength { country, expected, got } => {
                messages::iban_length(locale, country.as_str(), *expected, *got)
            }
            K::IbanCheckDigitsFormat { got } => messages::iban_check_digits_format(locale, got),
            K::IbanCheckDigitsRange { got } => messages::iban_check_digits_range(locale, *got),
            K::IbanChecksum => messages::iban_checksum(locale),
            K::BicLength { got } => messages::bic_length(locale, *got),
            K::BicBankCode { got } => messages::bic_bank_code(locale, got),
            K::BicCountry { got } => messages::bic_country(locale, got),
            K::BicLocation { got } => messages::bic_location(locale, got),
            K::BicBranch { got } => messages::bic_branch(locale, got),
            K::IdShape { subject } => messages::id_shape(locale, *subject),
            K::OrgnrPrefix { got } => messages::orgnr_prefix(locale, got),
            K::OrgnrThirdDigit { got } => messages::orgnr_third_digit(locale, *got),
            K::PersonnrCentury { got } => messages::personnr_century(locale, got),
            K::BirthDate { year, month, day } => messages::birth_date(locale, *year, *month, *day),
            K::SamordningsnummerNotAllowed => messages::samordningsnummer_not_allowed(locale),
            K::CheckDigit { subject } => messages::check_digit(locale, *subject),
            K::LuhnTooShort { digits } => messages::luhn_too_short(locale, *digits),
            K::NotADate { got } => messages::not_a_date(locale, got),
            K::DateDoesNotExist { year, month, day } => {
                messages::date_does_not_exist(locale, *year, *month, *day)
            }
            K::DateBeforeMin { date, min, relative } => {
                messages::date_before_min(locale, *date, *min, relative.as_deref())
            }
            K::DateAfterMax { date, max, relative } => {
                messages::date_after_max(locale, *date, *max, relative.as_deref())
            }
            K::NotOneOf { got, allowed, case_insensitive, hint } => {
                messages::not_one_of(locale, got, allowed, *case_insensitive, *hint)
            }
        }
    }
}

/// What the rule expected, for messages shared by several rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Subject {
    Iban,
    Bic,
    Orgnr,
    Personnr,
    Samordningsnummer,
    Luhn,
    Date,
}

/// The JSON type of a value a rule cannot check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JsonType {
    Bool,
    Array,
    Object,
}

/// A two-letter country code known to be ASCII capital letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CountryCode(pub(super) [u8; 2]);

impl CountryCode {
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// For `one_of`: an allowed value the given one nearly matched, to point the operator at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OneOfHint {
    None,
    /// The allowed value at this index differs only in upper/lower case.
    Case(usize),
    /// The allowed value at this index has the same text but another JSON type ("1" vs 1).
    Type(usize),
}

/// Every way a value can break a row rule. Positions are 1-based character positions.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ViolationKind {
    WrongType {
        got: JsonType,
    },
    Empty {
        subject: Subject,
    },
    PatternMismatch {
        pattern: Arc<str>,
    },
    InvalidCharacter {
        subject: Subject,
        ch: char,
        position: usize,
    },
    BadSpacing {
        subject: Subject,
    },
    Lowercase {
        subject: Subject,
        ch: char,
        position: usize,
    },
    IbanTooShort {
        got: usize,
    },
    IbanCountryCode {
        got: Box<str>,
    },
    IbanUnknownCountry {
        country: CountryCode,
    },
    IbanLength {
        country: CountryCode,
        expected: usize,
        got: usize,
    },
    IbanCheckDigitsFormat {
        got: Box<str>,
    },
    IbanCheckDigitsRange {
        got: u8,
    },
    IbanChecksum,
    BicLength {
        got: usize,
    },
    BicBankCode {
        got: Box<str>,
    },
    BicCountry {
        got: Box<str>,
    },
    BicLocation {
        got: Box<str>,
    },
    BicBranch {
        got: Box<str>,
    },
    IdShape {
        subject: Subject,
    },
    OrgnrPrefix {
        got: Box<str>,
    },
    OrgnrThirdDigit {
        got: u8,
    },
    PersonnrCentury {
        got: Box<str>,
    },
    /// The birth date in a personnummer does not exist; `day` as written (61–91 for a
    /// samordningsnummer).
    BirthDate {
        year: i32,
        month: u8,
        day: u8,
    },
    SamordningsnummerNotAllowed,
    CheckDigit {
        subject: Subject,
    },
    LuhnTooShort {
        digits: usize,
    },
    NotADate {
        got: Box<str>,
    },
    DateDoesNotExist {
        year: i32,
        month: u32,
        day: u32,
    },
    DateBeforeMin {
        date: NaiveDate,
        min: NaiveDate,
        relative: Option<Arc<str>>,
    },
    DateAfterMax {
        date: NaiveDate,
        max: NaiveDate,
        relative: Option<Arc<str>>,
    },
    NotOneOf {
        got: Value,
        allowed: Arc<[Value]>,
        case_insensitive: bool,
        hint: OneOfHint,
    },
}

impl ViolationKind {
    fn code(&self) -> &'static str {
        use ViolationKind as K;
        match self {
            K::WrongType { .. } => "wrong_type",
            K::Empty { .. } => "empty",
            K::PatternMismatch { .. } => "pattern_mismatch",
            K::InvalidCharacter { .. } => "invalid_character",
            K::BadSpacing { .. } => "bad_spacing",
            K::Lowercase { .. } => "lowercase",
            K::IbanTooShort { .. } => "iban_too_short",
            K::IbanCountryCode { .. } => "iban_country_code",
            K::IbanUnknownCountry { .. } => "iban_unknown_country",
            K::IbanLength { .. } => "iban_length",
            K::IbanCheckDigitsFormat { .. } => "iban_check_digits_format",
            K::IbanCheckDigitsRange { .. } => "iban_check_digits_range",
            K::IbanChecksum => "iban_checksum",
            K::BicLength { .. } => "bic_length",
            K::BicBankCode { .. } => "bic_bank_code",
            K::BicCountry { .. } => "bic_country",
            K::BicLocation { .. } => "bic_location",
            K::BicBranch { .. } => "bic_branch",
            K::IdShape { .. } => "id_format",
            K::OrgnrPrefix { .. } => "orgnr_prefix",
            K::OrgnrThirdDigit { .. } => "orgnr_third_digit",
            K::PersonnrCentury { .. } => "personnr_century",
            K::BirthDate { .. } => "birth_date",
            K::SamordningsnummerNotAllowed => "samordningsnummer_not_allowed",
            K::CheckDigit { .. } => "check_digit",
            K::LuhnTooShort { .. } => "luhn_too_short",
            K::NotADate { .. } => "not_a_date",
            K::DateDoesNotExist { .. } => "date_does_not_exist",
            K::DateBeforeMin { .. } => "date_before_min",
            K::DateAfterMax { .. } => "date_after_max",
            K::NotOneOf { .. } => "not_one_of",
        }
    }
}

/// The text of `bytes` for a message, with anything not UTF-8 replaced (cold path only).
pub(super) fn lossy(bytes: &[u8]) -> Box<str> {
    String::from_utf8_lossy(bytes).into()
}

/// The character starting at byte `index` of `text` and its 1-based character position.
pub(super) fn char_at(text: &str, index: usize) -> (char, usize) {
    let ch = text.get(index..).and_then(|rest| rest.chars().next()).unwrap_or('\u{FFFD}');
    let position = text.get(..index).map_or(index, |before| before.chars().count()) + 1;
    (ch, position)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("test date")
    }

    /// One of each kind (and each subject where the text differs).
    fn every_kind() -> Vec<ViolationKind> {
        use ViolationKind as K;
        let subjects = [
            Subject::Iban,
            Subject::Bic,
            Subject::Orgnr,
            Subject::Personnr,
            Subject::Samordningsnummer,
            Subject::Luhn,
            Subject::Date,
        ];
        let mut kinds = vec![
            K::WrongType { got: JsonType::Bool },
            K::WrongType { got: JsonType::Array },
            K::WrongType { got: JsonType::Object },
            K::PatternMismatch { pattern: Arc::from("^[^@]+@[^@]+$") },
            K::IbanTooShort { got: 3 },
            K::IbanCountryCode { got: "12".into() },
            K::IbanUnknownCountry { country: CountryCode(*b"XX") },
            K::IbanLength { country: CountryCode(*b"SE"), expected: 24, got: 22 },
            K::IbanCheckDigitsFormat { got: "AB".into() },
            K::IbanCheckDigitsRange { got: 1 },
            K::IbanChecksum,
            K::BicLength { got: 9 },
            K::BicBankCode { got: "DE1T".into() },
            K::BicCountry { got: "XX".into() },
            K::BicLocation { got: "F-".into() },
            K::BicBranch { got: "5 0".into() },
            K::OrgnrPrefix { got: "19".into() },
            K::OrgnrThirdDigit { got: 1 },
            K::PersonnrCentury { got: "21".into() },
            K::BirthDate { year: 1999, month: 2, day: 29 },
            K::BirthDate { year: 1970, month: 10, day: 92 },
            K::SamordningsnummerNotAllowed,
            K::LuhnTooShort { digits: 1 },
            K::NotADate { got: "31/12/2024".into() },
            K::DateDoesNotExist { year: 1999, month: 2, day: 29 },
            K::DateBeforeMin { date: date(2019, 12, 31), min: date(2020, 1, 1), relative: None },
            K::DateBeforeMin {
                date: date(2019, 12, 31),
                min: date(2020, 1, 1),
                relative: Some(Arc::from("today-1y")),
            },
            K::DateAfterMax { date: date(2030, 1, 1), max: date(2026, 1, 1), relative: None },
            K::DateAfterMax {
                date: date(2030, 1, 1),
                max: date(2026, 1, 1),
                relative: Some(Arc::from("today")),
            },
            K::NotOneOf {
                got: json!("USD"),
                allowed: Arc::from(vec![json!("SEK"), json!("EUR")]),
                case_insensitive: false,
                hint: OneOfHint::None,
            },
            K::NotOneOf {
                got: json!("usd"),
                allowed: Arc::from(vec![json!("SEK"), json!("EUR")]),
                case_insensitive: true,
                hint: OneOfHint::None,
            },
            K::NotOneOf {
                got: json!("sek"),
                allowed: Arc::from(vec![json!("SEK"), json!("EUR")]),
                case_insensitive: false,
                hint: OneOfHint::Case(0),
            },
            K::NotOneOf {
                got: json!(1),
                allowed: Arc::from(vec![json!("1"), json!("2")]),
                case_insensitive: false,
                hint: OneOfHint::Type(0),
            },
            K::NotOneOf {
                got: json!(99),
                allowed: Arc::from((0..30).map(|n| json!(n)).collect::<Vec<_>>()),
                case_insensitive: false,
                hint: OneOfHint::None,
            },
        ];
        for subject in subjects {
            kinds.push(K::Empty { subject });
            kinds.push(K::InvalidCharacter { subject, ch: '#', position: 5 });
            kinds.push(K::BadSpacing { subject });
            kinds.push(K::Lowercase { subject, ch: 'e', position: 2 });
            kinds.push(K::IdShape { subject });
            kinds.push(K::CheckDigit { subject });
        }
        kinds
    }

    #[test]
    fn every_kind_renders_in_both_locales_with_different_texts() {
        let kinds = every_kind();
        let mut codes = HashSet::new();
        for kind in kinds {
            codes.insert(kind.code());
            let violation = Violation::new(kind);
            let sv = violation.message(Locale::Sv);
            let en = violation.message(Locale::En);
            assert!(!sv.trim().is_empty(), "{violation:?} has no Swedish text");
            assert!(!en.trim().is_empty(), "{violation:?} has no English text");
            assert_ne!(sv, en, "{violation:?} is not translated");
        }
        // Every code in `ViolationKind::code` is covered above.
        assert_eq!(codes.len(), 31);
    }

    #[test]
    fn messages_carry_the_specifics() {
        let length = Violation::new(ViolationKind::IbanLength {
            country: CountryCode(*b"SE"),
            expected: 24,
            got: 22,
        });
        assert!(length.message(Locale::En).contains("IBAN for SE must be 24 characters, got 22"));
        assert!(length.message(Locale::Sv).contains("24"));
        let checksum = Violation::new(ViolationKind::IbanChecksum);
        assert_eq!(
            checksum.message(Locale::En),
            "IBAN check digits do not match (mod 97): check for a mistyped digit"
        );
        assert_eq!(
            checksum.message(Locale::Sv),
            "IBAN-kontrollsiffrorna stämmer inte (mod 97): kontrollera om en siffra är felskriven"
        );
        let date =
            Violation::new(ViolationKind::DateDoesNotExist { year: 1999, month: 2, day: 29 });
        assert_eq!(date.message(Locale::En), "not a valid date: 1999-02-29 does not exist");
        assert_eq!(date.message(Locale::Sv), "inget giltigt datum: 1999-02-29 finns inte");
    }

    #[test]
    fn char_at_reports_the_character_and_its_position() {
        assert_eq!(char_at("SE45 å", 5), ('å', 6));
        assert_eq!(char_at("åäö#", 6), ('#', 4));
        assert_eq!(char_at("abc", 10), ('\u{FFFD}', 11));
    }
}
