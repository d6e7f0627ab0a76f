//! Every text a row-rule violation is shown as, in Swedish and English.
//!
//! One function per kind of violation, each matching on the locale, so a translator finds every
//! message here and nowhere else. Messages say what is wrong and what to check; they do not
//! repeat the field name (the rejected record shows it beside the message). Values are quoted
//! with plain single quotes in both languages.

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde_json::Value;

use super::violation::{JsonType, OneOfHint, Subject};
use crate::Locale;

/// How many allowed values a `one_of` message lists before summing up the rest.
const LISTED_VALUES: usize = 10;
/// How many characters of an offending value a message quotes.
const QUOTED_CHARS: usize = 40;

/// The subject with its article ("the IBAN", "IBAN-numret"); messages start in lowercase.
fn the(locale: Locale, subject: Subject) -> &'static str {
    match (locale, subject) {
        (Locale::En, Subject::Iban) => "the IBAN",
        (Locale::En, Subject::Bic) => "the BIC",
        (Locale::En, Subject::Orgnr) => "the organisationsnummer",
        (Locale::En, Subject::Personnr) => "the personnummer",
        (Locale::En, Subject::Samordningsnummer) => "the samordningsnummer",
        (Locale::En, Subject::Luhn) => "the number",
        (Locale::En, Subject::Date) => "the date",
        (Locale::Sv, Subject::Iban) => "IBAN-numret",
        (Locale::Sv, Subject::Bic) => "BIC-koden",
        (Locale::Sv, Subject::Orgnr) => "organisationsnumret",
        (Locale::Sv, Subject::Personnr) => "personnumret",
        (Locale::Sv, Subject::Samordningsnummer) => "samordningsnumret",
        (Locale::Sv, Subject::Luhn) => "numret",
        (Locale::Sv, Subject::Date) => "datumet",
    }
}

/// Up to [`QUOTED_CHARS`] characters of `text`, with "…" when cut.
fn quoted(text: &str) -> String {
    let mut out: String = text.chars().take(QUOTED_CHARS).collect();
    if text.chars().nth(QUOTED_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A JSON value as text for a message, cut like [`quoted`].
fn json_text(value: &Value) -> String {
    quoted(&value.to_string())
}

/// `value` is a boolean, list or object where text or a number was expected.
pub(super) fn wrong_type(locale: Locale, got: JsonType) -> String {
    match locale {
        Locale::En => {
            let got = match got {
                JsonType::Bool => "a boolean (true/false)",
                JsonType::Array => "a list",
                JsonType::Object => "an object",
            };
            format!("wrong type: expected text or a number, got {got}")
        }
        Locale::Sv => {
            let got = match got {
                JsonType::Bool => "ett sanningsvärde (true/false)",
                JsonType::Array => "en lista",
                JsonType::Object => "ett objekt",
            };
            format!("fel typ: förväntade text eller ett tal, men fick {got}")
        }
    }
}

/// An empty string where an identifier, number or date was expected.
pub(super) fn empty(locale: Locale, subject: Subject) -> String {
    let the = the(locale, subject);
    match locale {
        Locale::En => format!(
            "{the} is empty: fill it in (an empty cell passes only if the template maps it to null)"
        ),
        Locale::Sv => {
            // Swedish adjectives agree with the noun: "koden är tom", "numret är tomt".
            let empty = if subject == Subject::Bic { "tom" } else { "tomt" };
            format!(
                "{the} är {empty}: fyll i värdet (en tom cell godtas bara om mallen gör om den \
                 till null)"
            )
        }
    }
}

/// The value does not match a `regex` rule's pattern.
pub(super) fn pattern_mismatch(locale: Locale, pattern: &str) -> String {
    match locale {
        Locale::En => {
            format!("does not match the required pattern {pattern}: check the value's format")
        }
        Locale::Sv => {
            format!("matchar inte det krävda mönstret {pattern}: kontrollera värdets format")
        }
    }
}

/// A character the format does not allow.
pub(super) fn invalid_character(
    locale: Locale,
    subject: Subject,
    ch: char,
    position: usize,
) -> String {
    let the = the(locale, subject);
    match (locale, subject) {
        (Locale::En, Subject::Iban) => format!(
            "{the} contains {ch:?} at position {position}: only capital letters A–Z, digits and \
             single spaces between groups are allowed"
        ),
        (Locale::Sv, Subject::Iban) => format!(
            "{the} innehåller {ch:?} på position {position}: endast versaler A–Z, siffror och \
             enkla mellanslag mellan grupper är tillåtna"
        ),
        (Locale::En, Subject::Luhn) => format!(
            "{the} contains {ch:?} at position {position}: only digits, with a single space or \
             hyphen between groups, are allowed"
        ),
        (Locale::Sv, Subject::Luhn) => format!(
            "{the} innehåller {ch:?} på position {position}: endast siffror är tillåtna, med ett \
             mellanslag eller bindestreck mellan grupper"
        ),
        (Locale::En, _) => {
            format!("{the} contains {ch:?} at position {position}, which is not allowed there")
        }
        (Locale::Sv, _) => {
            format!("{the} innehåller {ch:?} på position {position}, vilket inte är tillåtet där")
        }
    }
}

/// Spaces at the start or end, or two in a row.
pub(super) fn bad_spacing(locale: Locale, subject: Subject) -> String {
    let the = the(locale, subject);
    match locale {
        Locale::En => format!(
            "{the} has a space at the start or end, or two spaces in a row: remove the extra \
             spaces (single spaces between groups are fine)"
        ),
        Locale::Sv => format!(
            "{the} har mellanslag först eller sist, eller två mellanslag i rad: ta bort de extra \
             mellanslagen (enkla mellanslag mellan grupper går bra)"
        ),
    }
}

/// A lowercase letter where the format wants capitals.
pub(super) fn lowercase(locale: Locale, subject: Subject, ch: char, position: usize) -> String {
    let the = the(locale, subject);
    match locale {
        Locale::En => format!(
            "{the} must be written in capital letters: {ch:?} at position {position} is lowercase"
        ),
        Locale::Sv => {
            format!("{the} ska skrivas med versaler: {ch:?} på position {position} är en gemen")
        }
    }
}

/// Too few characters to hold a country code and check digits.
pub(super) fn iban_too_short(locale: Locale, got: usize) -> String {
    match locale {
        Locale::En => format!(
            "too short to be an IBAN ({got} characters): an IBAN has 15 to 33 characters and \
             starts with a country code such as SE"
        ),
        Locale::Sv => format!(
            "för kort för att vara ett IBAN-nummer ({got} tecken): ett IBAN-nummer har 15 till 33 \
             tecken och börjar med en landskod som SE"
        ),
    }
}

/// The first two characters are not letters.
pub(super) fn iban_country_code(locale: Locale, got: &str) -> String {
    match locale {
        Locale::En => format!(
            "an IBAN starts with a two-letter country code such as SE, but this starts with '{got}'"
        ),
        Locale::Sv => format!(
            "ett IBAN-nummer börjar med en landskod på två bokstäver, till exempel SE, men det här \
             börjar med '{got}'"
        ),
    }
}

/// The country code is not in the SWIFT IBAN registry.
pub(super) fn iban_unknown_country(locale: Locale, country: &str) -> String {
    match locale {
        Locale::En => format!(
            "'{country}' is not an IBAN country code: check the first two letters (countries \
             without IBAN, such as US, use other account formats)"
        ),
        Locale::Sv => format!(
            "'{country}' är ingen landskod som används för IBAN: kontrollera de två första \
             bokstäverna (länder utan IBAN, till exempel US, använder andra kontoformat)"
        ),
    }
}

/// The length does not match the country's IBAN length.
pub(super) fn iban_length(locale: Locale, country: &str, expected: usize, got: usize) -> String {
    match locale {
        Locale::En => format!(
            "IBAN for {country} must be {expected} characters, got {got}: check for a missing or \
             extra character"
        ),
        Locale::Sv => format!(
            "IBAN för {country} ska ha {expected} tecken, men har {got}: kontrollera om ett tecken \
             saknas eller är för mycket"
        ),
    }
}

/// Characters 3–4 are not digits.
pub(super) fn iban_check_digits_format(locale: Locale, got: &str) -> String {
    match locale {
        Locale::En => {
            format!("IBAN check digits (characters 3–4) must be digits, but are '{got}'")
        }
        Locale::Sv => {
            format!("IBAN-kontrollsiffrorna (tecken 3–4) ska vara siffror, men är '{got}'")
        }
    }
}

/// Check digits 00, 01 or 99, which the IBAN algorithm never produces.
pub(super) fn iban_check_digits_range(locale: Locale, got: u8) -> String {
    match locale {
        Locale::En => format!(
            "IBAN check digits {got:02} are never issued (only 02–98 are): check for a mistyped \
             digit"
        ),
        Locale::Sv => format!(
            "IBAN-kontrollsiffrorna {got:02} förekommer aldrig (bara 02–98 används): kontrollera \
             om en siffra är felskriven"
        ),
    }
}

/// The mod-97 check fails.
pub(super) fn iban_checksum(locale: Locale) -> String {
    match locale {
        Locale::En => "IBAN check digits do not match (mod 97): check for a mistyped digit".into(),
        Locale::Sv => {
            "IBAN-kontrollsiffrorna stämmer inte (mod 97): kontrollera om en siffra är felskriven"
                .into()
        }
    }
}

/// A BIC of neither 8 nor 11 characters.
pub(super) fn bic_length(locale: Locale, got: usize) -> String {
    match locale {
        Locale::En => format!(
            "a BIC has 8 or 11 characters, but this has {got}: check for missing or extra \
             characters and spaces"
        ),
        Locale::Sv => format!(
            "en BIC-kod har 8 eller 11 tecken, men den här har {got}: kontrollera om tecken eller \
             mellanslag saknas eller är för många"
        ),
    }
}

/// Characters 1–4 are not four letters.
pub(super) fn bic_bank_code(locale: Locale, got: &str) -> String {
    match locale {
        Locale::En => {
            format!("BIC bank code (characters 1–4) must be four letters A–Z, but is '{got}'")
        }
        Locale::Sv => {
            format!("BIC-kodens bankkod (tecken 1–4) ska vara fyra bokstäver A–Z, men är '{got}'")
        }
    }
}

/// Characters 5–6 are not an ISO 3166 country.
pub(super) fn bic_country(locale: Locale, got: &str) -> String {
    match locale {
        Locale::En => format!(
            "BIC country code (characters 5–6) '{got}' is not an ISO 3166 country: check for a \
             mistyped letter"
        ),
        Locale::Sv => format!(
            "BIC-kodens landskod (tecken 5–6) '{got}' är inget land enligt ISO 3166: kontrollera \
             om en bokstav är felskriven"
        ),
    }
}

/// Characters 7–8 are not letters or digits.
pub(super) fn bic_location(locale: Locale, got: &str) -> String {
    match locale {
        Locale::En => format!(
            "BIC location code (characters 7–8) must be letters A–Z or digits, but is '{got}'"
        ),
        Locale::Sv => format!(
            "BIC-kodens ortskod (tecken 7–8) ska vara bokstäver A–Z eller siffror, men är '{got}'"
        ),
    }
}

/// Characters 9–11 are not letters or digits.
pub(super) fn bic_branch(locale: Locale, got: &str) -> String {
    match locale {
        Locale::En => format!(
            "BIC branch code (characters 9–11) must be letters A–Z or digits, but is '{got}'"
        ),
        Locale::Sv => format!(
            "BIC-kodens kontorskod (tecken 9–11) ska vara bokstäver A–Z eller siffror, men är \
             '{got}'"
        ),
    }
}

/// A Swedish identity number of the wrong shape (length, separators, non-digits).
pub(super) fn id_shape(locale: Locale, subject: Subject) -> String {
    match (locale, subject) {
        (Locale::En, Subject::Orgnr) => "not an organisationsnummer: write it as NNNNNN-NNNN or \
                                         as 10 digits (12 digits starting with 16 are also \
                                         accepted)"
            .into(),
        (Locale::Sv, Subject::Orgnr) => "inget giltigt organisationsnummer: skriv det som \
                                         NNNNNN-NNNN eller som 10 siffror (12 siffror som börjar \
                                         med 16 godtas också)"
            .into(),
        (Locale::En, _) => {
            "not a personnummer: write it as YYMMDD-NNNN, YYMMDD+NNNN (100 years or \
                            older), YYYYMMDD-NNNN, or as 10 or 12 digits"
                .into()
        }
        (Locale::Sv, _) => "inget giltigt personnummer: skriv det som ÅÅMMDD-NNNN, ÅÅMMDD+NNNN \
                            (100 år eller äldre), ÅÅÅÅMMDD-NNNN, eller som 10 eller 12 siffror"
            .into(),
    }
}

/// A 12-digit organisationsnummer not starting with 16.
pub(super) fn orgnr_prefix(locale: Locale, got: &str) -> String {
    match locale {
        Locale::En => format!(
            "a 12-digit organisationsnummer starts with 16, but this starts with '{got}': use the \
             10-digit form"
        ),
        Locale::Sv => format!(
            "ett organisationsnummer med 12 siffror börjar med 16, men det här börjar med '{got}': \
             använd formen med 10 siffror"
        ),
    }
}

/// The third digit of an organisationsnummer is below 2 (it is a personnummer).
pub(super) fn orgnr_third_digit(locale: Locale, got: u8) -> String {
    match locale {
        Locale::En => format!(
            "not an organisationsnummer: the third digit is {got} but must be 2 or higher (with a \
             lower third digit it is a personnummer, e.g. of a sole trader)"
        ),
        Locale::Sv => format!(
            "inget organisationsnummer: tredje siffran är {got} men ska vara minst 2 (med lägre \
             tredje siffra är det ett personnummer, till exempel för en enskild firma)"
        ),
    }
}

/// A 12-digit personnummer whose century is not 18, 19 or 20.
pub(super) fn personnr_century(locale: Locale, got: &str) -> String {
    match locale {
        Locale::En => format!(
            "a 12-digit personnummer starts with the century 18, 19 or 20, but this starts with \
             '{got}'"
        ),
        Locale::Sv => format!(
            "ett personnummer med 12 siffror börjar med seklet 18, 19 eller 20, men det här börjar \
             med '{got}'"
        ),
    }
}

/// The birth date in a personnummer does not exist; `day` as written (61–91 in a
/// samordningsnummer, where 60 is added to the day).
pub(super) fn birth_date(locale: Locale, year: i32, month: u8, day: u8) -> String {
    if day > 60 {
        let real = day - 60;
        match locale {
            Locale::En => format!(
                "not a valid date: {year:04}-{month:02}-{real:02} does not exist \
                 (samordningsnummer: day {day} minus 60); check the birth-date digits"
            ),
            Locale::Sv => format!(
                "inget giltigt datum: {year:04}-{month:02}-{real:02} finns inte \
                 (samordningsnummer: dag {day} minus 60); kontrollera födelsedatumets siffror"
            ),
        }
    } else {
        match locale {
            Locale::En => format!(
                "not a valid date: {year:04}-{month:02}-{day:02} does not exist; check the \
                 birth-date digits of the personnummer"
            ),
            Locale::Sv => format!(
                "inget giltigt datum: {year:04}-{month:02}-{day:02} finns inte; kontrollera \
                 personnumrets födelsedatum"
            ),
        }
    }
}

/// A samordningsnummer where the rule asks for a personnummer.
pub(super) fn samordningsnummer_not_allowed(locale: Locale) -> String {
    match locale {
        Locale::En => "a samordningsnummer (birth day + 60) is not accepted here: a personnummer \
                       is required"
            .into(),
        Locale::Sv => {
            "samordningsnummer (födelsedag + 60) godtas inte här: ett personnummer krävs".into()
        }
    }
}

/// The Luhn check digit does not match.
pub(super) fn check_digit(locale: Locale, subject: Subject) -> String {
    match locale {
        Locale::En => {
            let the = the(locale, subject);
            format!(
                "the check digit (last digit) of {the} does not match (Luhn): check for a mistyped \
                 or swapped digit"
            )
        }
        Locale::Sv => {
            let the = the(locale, subject);
            format!(
                "kontrollsiffran (sista siffran) i {the} stämmer inte (Luhn): kontrollera om en \
                 siffra är felskriven eller omkastad"
            )
        }
    }
}

/// Fewer than two digits for a Luhn check.
pub(super) fn luhn_too_short(locale: Locale, digits: usize) -> String {
    match locale {
        Locale::En => {
            format!("a number with a Luhn check digit has at least 2 digits, but this has {digits}")
        }
        Locale::Sv => format!(
            "ett nummer med Luhn-kontrollsiffra har minst 2 siffror, men det här har {digits}"
        ),
    }
}

/// The value is not a date or date-time at all.
pub(super) fn not_a_date(locale: Locale, got: &str) -> String {
    let got = quoted(got);
    match locale {
        Locale::En => format!(
            "not a date: expected YYYY-MM-DD or a date-time such as 2024-05-31T12:00:00Z, got \
             '{got}'"
        ),
        Locale::Sv => format!(
            "inget datum: förväntade ÅÅÅÅ-MM-DD eller datum och tid som 2024-05-31T12:00:00Z, men \
             fick '{got}'"
        ),
    }
}

/// A well-formed date that is not in the calendar (February 30th, month 13, …).
pub(super) fn date_does_not_exist(locale: Locale, year: i32, month: u32, day: u32) -> String {
    match locale {
        Locale::En => format!("not a valid date: {year:04}-{month:02}-{day:02} does not exist"),
        Locale::Sv => format!("inget giltigt datum: {year:04}-{month:02}-{day:02} finns inte"),
    }
}

/// " (today-1y)" after a bound given relative to today, empty otherwise.
fn relative_note(relative: Option<&str>) -> String {
    relative.map(|spec| format!(" ({spec})")).unwrap_or_default()
}

/// A date before the rule's `min`.
pub(super) fn date_before_min(
    locale: Locale,
    date: NaiveDate,
    min: NaiveDate,
    relative: Option<&str>,
) -> String {
    let note = relative_note(relative);
    match locale {
        Locale::En => format!("date {date} is before the earliest allowed date {min}{note}"),
        Locale::Sv => format!("datumet {date} är före det tidigaste tillåtna datumet {min}{note}"),
    }
}

/// A date after the rule's `max`.
pub(super) fn date_after_max(
    locale: Locale,
    date: NaiveDate,
    max: NaiveDate,
    relative: Option<&str>,
) -> String {
    let note = relative_note(relative);
    match locale {
        Locale::En => format!("date {date} is after the latest allowed date {max}{note}"),
        Locale::Sv => format!("datumet {date} är efter det senaste tillåtna datumet {max}{note}"),
    }
}

/// A value not in a `one_of` list.
pub(super) fn not_one_of(
    locale: Locale,
    got: &Value,
    allowed: &[Value],
    case_insensitive: bool,
    hint: OneOfHint,
) -> String {
    let mut list = String::new();
    for (index, value) in allowed.iter().take(LISTED_VALUES).enumerate() {
        if index > 0 {
            list.push_str(", ");
        }
        list.push_str(&json_text(value));
    }
    let more = allowed.len().saturating_sub(LISTED_VALUES);
    let got = json_text(got);
    let mut text = match locale {
        Locale::En => format!("{got} is not an allowed value: use one of {list}"),
        Locale::Sv => format!("{got} är inget tillåtet värde: använd något av {list}"),
    };
    if more > 0 {
        let _ = match locale {
            Locale::En => write!(text, " (and {more} more)"),
            Locale::Sv => write!(text, " (och {more} till)"),
        };
    }
    if case_insensitive {
        text.push_str(match locale {
            Locale::En => "; upper/lower case does not matter",
            Locale::Sv => "; versaler/gemener spelar ingen roll",
        });
    }
    let near = |index: usize| allowed.get(index).map(json_text).unwrap_or_default();
    let _ = match (locale, hint) {
        (_, OneOfHint::None) => Ok(()),
        (Locale::En, OneOfHint::Case(index)) => {
            write!(text, "; did you mean {}? Upper/lower case matters here", near(index))
        }
        (Locale::Sv, OneOfHint::Case(index)) => {
            write!(text, "; menade du {}? Versaler/gemener spelar roll här", near(index))
        }
        (Locale::En, OneOfHint::Type(index)) => write!(
            text,
            "; the list has {}, which is of another JSON type (text and numbers never match)",
            near(index)
        ),
        (Locale::Sv, OneOfHint::Type(index)) => write!(
            text,
            "; listan har {}, som är av en annan JSON-typ (text och tal matchar aldrig varandra)",
            near(index)
        ),
    };
    text
}
