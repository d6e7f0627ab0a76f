//! The `orgnr` and `personnr` rules: Swedish organisation and personal identity numbers.
//!
//! Both are ten digits whose last is a Luhn check digit over the other nine. A personnummer
//! starts with the birth date (YYMMDD), a samordningsnummer (coordination number) adds 60 to the
//! day, and an organisationsnummer has a third digit of 2 or more (a "month" no date has).

use super::luhn;
use super::violation::{Subject, ViolationKind, lossy};

/// A Swedish organisationsnummer (Bolagsverket / Skatteverket): `NNNNNN-NNNN` or 10 digits,
/// also the 12-digit form with the prefix `16` (`16NNNNNNNNNN` or `16NNNNNN-NNNN`).
///
/// The third digit must be 2 or higher and the last digit is a Luhn check digit. A sole trader
/// (enskild firma) uses the owner's personnummer, which this rule refuses: check such columns
/// with the `personnr` rule. A JSON number is checked by its text (`5560160680`).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct OrgnrRuleConfig {
    /// The mapped field the rule checks.
    pub field: String,
}

/// A Swedish personnummer, or a samordningsnummer (the birth day plus 60) unless refused.
///
/// Forms: `YYMMDD-NNNN`, `YYMMDD+NNNN` (`+` for people 100 years or older), `YYMMDDNNNN`,
/// `YYYYMMDD-NNNN` and `YYYYMMDDNNNN` (century 18, 19 or 20). The birth date must exist in the
/// calendar, leap years included; for the 10-digit forms the century is the most recent one that
/// fits (`-` or none: born within the last 100 years; `+`: 100 years ago or more), which only
/// matters for 29 February of a year ending in 00. The last digit is a Luhn check digit over the
/// 10-digit form.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PersonnrRuleConfig {
    /// The mapped field the rule checks.
    pub field: String,
    /// Whether a samordningsnummer (birth day + 60, for people not registered in Sweden) is
    /// accepted too. Default `true`; `false` requires a personnummer.
    #[serde(default = "accept")]
    pub allow_samordningsnummer: bool,
}

fn accept() -> bool {
    true
}

/// Copies ASCII digits from `source` into `target` as values 0–9; false if any is not a digit
/// or the lengths differ.
fn digits_into(source: &[u8], target: &mut [u8]) -> bool {
    if source.len() != target.len() {
        return false;
    }
    for (slot, &c) in target.iter_mut().zip(source) {
        if !c.is_ascii_digit() {
            return false;
        }
        *slot = c - b'0';
    }
    true
}

/// Splits `bytes` around a one-byte separator at `at`, if it is one of `separators`.
fn split_at_separator<'a>(
    bytes: &'a [u8],
    at: usize,
    separators: &[u8],
) -> Option<(&'a [u8], u8, &'a [u8])> {
    let (head, rest) = bytes.split_at_checked(at)?;
    let (&separator, tail) = rest.split_first()?;
    separators.contains(&separator).then_some((head, separator, tail))
}

/// Reads `head` + `tail` into `ten`; false unless they are exactly 6 + 4 digits.
fn read_ten(head: &[u8], tail: &[u8], ten: &mut [u8; 10]) -> bool {
    let (first, last) = ten.split_at_mut(6);
    digits_into(head, first) && digits_into(tail, last)
}

fn luhn_valid(ten: &[u8; 10]) -> bool {
    luhn::sum_is_valid(ten.iter().rev().copied())
}

/// Checks an organisationsnummer; no allocation unless it is broken.
pub(super) fn check_orgnr(text: &str) -> Result<(), ViolationKind> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(ViolationKind::Empty { subject: Subject::Orgnr });
    }
    let mut ten = [0u8; 10];
    let mut prefix = [0u8; 2];
    let (well_formed, prefixed) = match bytes.len() {
        10 => (digits_into(bytes, &mut ten), false),
        11 => {
            let ok = split_at_separator(bytes, 6, b"-")
                .is_some_and(|(head, _, tail)| read_ten(head, tail, &mut ten));
            (ok, false)
        }
        12 => {
            let (head, rest) = bytes.split_at(2);
            (digits_into(head, &mut prefix) && digits_into(rest, &mut ten), true)
        }
        13 => {
            let (head, rest) = bytes.split_at(2);
            let ok = digits_into(head, &mut prefix)
                && split_at_separator(rest, 6, b"-")
                    .is_some_and(|(head, _, tail)| read_ten(head, tail, &mut ten));
            (ok, true)
        }
        _ => (false, false),
    };
    if !well_formed {
        return Err(ViolationKind::IdShape { subject: Subject::Orgnr });
    }
    if prefixed && prefix != [1, 6] {
        return Err(ViolationKind::OrgnrPrefix { got: lossy(&bytes[..2]) });
    }
    if ten[2] < 2 {
        return Err(ViolationKind::OrgnrThirdDigit { got: ten[2] });
    }
    if !luhn_valid(&ten) {
        return Err(ViolationKind::CheckDigit { subject: Subject::Orgnr });
    }
    Ok(())
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The most recent year ending in `yy` that is at most `this_year`, or at most 100 years before
/// it for the `+` form.
fn infer_year(yy: u8, plus: bool, this_year: i32) -> i32 {
    let latest = if plus { this_year - 100 } else { this_year };
    latest - (latest - i32::from(yy)).rem_euclid(100)
}

/// Checks a personnummer or samordningsnummer; no allocation unless it is broken.
///
/// `this_year` is asked only when the century of a 10-digit number matters (29 February of a
/// year ending in 00) or for the message of a broken date, so the valid path reads no clock.
pub(super) fn check_personnr(
    text: &str,
    allow_samordningsnummer: bool,
    this_year: impl Fn() -> i32,
) -> Result<(), ViolationKind> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(ViolationKind::Empty { subject: Subject::Personnr });
    }
    let mut ten = [0u8; 10];
    let mut century = [0u8; 2];
    // `Some(century)` for the 12-digit forms, `None` for the 10-digit ones; `plus` for `+`.
    let (well_formed, long, plus) = match bytes.len() {
        10 => (digits_into(bytes, &mut ten), false, false),
        11 => match split_at_separator(bytes, 6, b"-+") {
            Some((head, separator, tail)) => {
                (read_ten(head, tail, &mut ten), false, separator == b'+')
            }
            None => (false, false, false),
        },
        12 => {
            let (head, rest) = bytes.split_at(2);
            (digits_into(head, &mut century) && digits_into(rest, &mut ten), true, false)
        }
        13 => {
            let (head, rest) = bytes.split_at(2);
            let ok = digits_into(head, &mut century)
                && split_at_separator(rest, 6, b"-")
                    .is_some_and(|(head, _, tail)| read_ten(head, tail, &mut ten));
            (ok, true, false)
        }
        _ => (false, false, false),
    };
    if !well_formed {
        return Err(ViolationKind::IdShape { subject: Subject::Personnr });
    }
    let cc = century[0] * 10 + century[1];
    if long && !(18..=20).contains(&cc) {
        return Err(ViolationKind::PersonnrCentury { got: lossy(&bytes[..2]) });
    }
    let yy = ten[0] * 10 + ten[1];
    let month = ten[2] * 10 + ten[3];
    let day_written = ten[4] * 10 + ten[5];
    let coordination = day_written > 60;
    if coordination && day_written <= 91 && !allow_samordningsnummer {
        return Err(ViolationKind::SamordningsnummerNotAllowed);
    }
    let day = if coordination { day_written - 60 } else { day_written };
    let full_year = || {
        if long { i32::from(cc) * 100 + i32::from(yy) } else { infer_year(yy, plus, this_year()) }
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => {
            // Only a year ending in 00 needs its century to tell whether it is a leap year.
            let leap = if yy % 4 != 0 {
                false
            } else if yy != 0 {
                true
            } else {
                is_leap(full_year())
            };
            if leap { 29 } else { 28 }
        }
        _ => 0,
    };
    if day == 0 || day > days_in_month {
        return Err(ViolationKind::BirthDate { year: full_year(), month, day: day_written });
    }
    if !luhn_valid(&ten) {
        let subject = if coordination { Subject::Samordningsnummer } else { Subject::Personnr };
        return Err(ViolationKind::CheckDigit { subject });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const THIS_YEAR: i32 = 2026;

    fn personnr(text: &str) -> Result<(), ViolationKind> {
        check_personnr(text, true, || THIS_YEAR)
    }

    /// An independent check digit: weights 2,1,2,… from the left, summing the digits of each
    /// product, as Skatteverket describes it.
    fn with_check_digit(nine: &str) -> String {
        assert_eq!(nine.len(), 9);
        let sum: u32 = nine
            .bytes()
            .zip([2, 1].into_iter().cycle())
            .map(|(b, weight)| {
                let product = u32::from(b - b'0') * weight;
                product / 10 + product % 10
            })
            .sum();
        format!("{nine}{}", (10 - sum % 10) % 10)
    }

    /// `ten` with a separator after the date part.
    fn separated(ten: &str, separator: char) -> String {
        format!("{}{separator}{}", &ten[..6], &ten[6..])
    }

    #[test]
    fn the_check_digit_helper_agrees_with_published_numbers() {
        assert_eq!(with_check_digit("121212121"), "1212121212");
        assert_eq!(with_check_digit("811228987"), "8112289874");
        assert_eq!(with_check_digit("670919953"), "6709199530");
        assert_eq!(with_check_digit("701063239"), "7010632391");
        assert_eq!(with_check_digit("556016068"), "5560160680");
        assert_eq!(with_check_digit("202100548"), "2021005489");
        assert_eq!(with_check_digit("802002428"), "8020024280");
    }

    #[test]
    fn real_organisationsnummer_pass() {
        for orgnr in [
            "556016-0680",
            "5560160680",
            "202100-5489",
            "2021005489",
            "802002-4280",
            "165560160680",
            "16556016-0680",
        ] {
            assert_eq!(check_orgnr(orgnr), Ok(()), "{orgnr}");
        }
    }

    #[test]
    fn broken_organisationsnummer_fail() {
        let check_digit = Err(ViolationKind::CheckDigit { subject: Subject::Orgnr });
        assert_eq!(check_orgnr("556016-0681"), check_digit);
        assert_eq!(check_orgnr("5560160689"), check_digit);
        assert_eq!(check_orgnr("165560160681"), check_digit);
        // A personnummer has a month (third digit 0 or 1) where an orgnr has 2 or more.
        assert_eq!(check_orgnr("811228-9874"), Err(ViolationKind::OrgnrThirdDigit { got: 1 }));
        assert_eq!(check_orgnr("1212121212"), Err(ViolationKind::OrgnrThirdDigit { got: 1 }));
        assert_eq!(
            check_orgnr("195560160680"),
            Err(ViolationKind::OrgnrPrefix { got: "19".into() })
        );
        let shape = Err(ViolationKind::IdShape { subject: Subject::Orgnr });
        for text in [
            "556016-068",
            "55601606800",
            "556016068",
            "55601A-0680",
            "556016+0680",
            "5560-160680",
            "556016 0680",
            "556016-0680 ",
            "1655601606800",
        ] {
            assert_eq!(check_orgnr(text), shape, "{text}");
        }
        assert_eq!(check_orgnr(""), Err(ViolationKind::Empty { subject: Subject::Orgnr }));
    }

    #[test]
    fn real_personnummer_pass_in_every_form() {
        for text in [
            "19121212-1212",
            "191212121212",
            "121212-1212",
            "1212121212",
            "121212+1212",
            "201212121212",
            "20121212-1212",
            "811228-9874",
            "8112289874",
            "198112289874",
            "19811228-9874",
            "670919-9530",
            "196709199530",
        ] {
            assert_eq!(personnr(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn samordningsnummer_pass_unless_refused() {
        for text in ["701063-2391", "7010632391", "197010632391", "19701063-2391"] {
            assert_eq!(personnr(text), Ok(()), "{text}");
            assert_eq!(
                check_personnr(text, false, || THIS_YEAR),
                Err(ViolationKind::SamordningsnummerNotAllowed),
                "{text}"
            );
        }
        // A personnummer still passes when samordningsnummer are refused.
        assert_eq!(check_personnr("811228-9874", false, || THIS_YEAR), Ok(()));
        assert_eq!(
            personnr("701063-2392"),
            Err(ViolationKind::CheckDigit { subject: Subject::Samordningsnummer })
        );
    }

    #[test]
    fn leap_days_follow_the_calendar() {
        let leap_day = with_check_digit("000229123");
        assert_eq!(personnr(&format!("20{leap_day}")), Ok(()));
        assert_eq!(
            personnr(&format!("19{leap_day}")),
            Err(ViolationKind::BirthDate { year: 1900, month: 2, day: 29 })
        );
        // 10-digit: `-` means born within 100 years (2000, a leap year), `+` means 1900.
        assert_eq!(personnr(&separated(&leap_day, '-')), Ok(()));
        assert_eq!(personnr(&leap_day), Ok(()));
        assert_eq!(
            personnr(&separated(&leap_day, '+')),
            Err(ViolationKind::BirthDate { year: 1900, month: 2, day: 29 })
        );
        let leap_1996 = with_check_digit("960229123");
        assert_eq!(personnr(&leap_1996), Ok(()));
        assert_eq!(personnr(&format!("19{leap_1996}")), Ok(()));
        let not_leap = with_check_digit("230229123");
        assert_eq!(
            personnr(&format!("20{not_leap}")),
            Err(ViolationKind::BirthDate { year: 2023, month: 2, day: 29 })
        );
        assert_eq!(
            personnr(&not_leap),
            Err(ViolationKind::BirthDate { year: 2023, month: 2, day: 29 })
        );
        // A samordningsnummer on a leap day: day 29 + 60 = 89.
        let coordination_leap_day = with_check_digit("000289123");
        assert_eq!(personnr(&format!("20{coordination_leap_day}")), Ok(()));
        assert!(personnr(&format!("19{coordination_leap_day}")).is_err());
    }

    #[test]
    fn impossible_birth_dates_fail_even_with_a_valid_check_digit() {
        for (nine, year, month, day) in [
            ("811328987", 1981, 13, 28),
            ("810028987", 1981, 0, 28),
            ("811232987", 1981, 12, 32),
            ("811200987", 1981, 12, 0),
            ("810431987", 1981, 4, 31),
            ("701092239", 1970, 10, 92),
            ("701045239", 1970, 10, 45),
        ] {
            let ten = with_check_digit(nine);
            assert_eq!(
                personnr(&separated(&ten, '-')),
                Err(ViolationKind::BirthDate { year, month, day }),
                "{ten}"
            );
        }
        // Day 92 is no samordningsnummer either, so refusing them does not change the answer.
        let day_92 = with_check_digit("701092239");
        assert!(matches!(
            check_personnr(&day_92, false, || THIS_YEAR),
            Err(ViolationKind::BirthDate { .. })
        ));
    }

    #[test]
    fn wrong_check_digits_and_shapes_fail() {
        let check_digit = Err(ViolationKind::CheckDigit { subject: Subject::Personnr });
        assert_eq!(personnr("811228-9875"), check_digit);
        assert_eq!(personnr("19121212-1213"), check_digit);
        assert_eq!(personnr("670919-9503"), check_digit);
        let shape = Err(ViolationKind::IdShape { subject: Subject::Personnr });
        for text in [
            "811228 9874",
            "81122-89874",
            "19811228+9874",
            "81122A-9874",
            "811228987",
            "81122898744",
            "1981122898744",
            "811228-98740",
            "811228_9874",
        ] {
            assert_eq!(personnr(text), shape, "{text}");
        }
        assert_eq!(
            personnr("21121212-1212"),
            Err(ViolationKind::PersonnrCentury { got: "21".into() })
        );
        assert_eq!(
            personnr("165560160680"),
            Err(ViolationKind::PersonnrCentury { got: "16".into() })
        );
        assert_eq!(personnr(""), Err(ViolationKind::Empty { subject: Subject::Personnr }));
    }

    #[test]
    fn the_century_of_a_ten_digit_number_is_the_latest_that_fits() {
        assert_eq!(infer_year(0, false, 2026), 2000);
        assert_eq!(infer_year(26, false, 2026), 2026);
        assert_eq!(infer_year(27, false, 2026), 1927);
        assert_eq!(infer_year(99, false, 2026), 1999);
        assert_eq!(infer_year(0, true, 2026), 1900);
        assert_eq!(infer_year(20, true, 2026), 1920);
        assert_eq!(infer_year(30, true, 2026), 1830);
        assert_eq!(infer_year(0, false, 2101), 2100);
    }
}
