//! The `luhn` rule: numbers ending in a Luhn (mod 10) check digit, and the Luhn sum itself.

use super::violation::{Subject, ViolationKind, char_at};

/// A number whose last digit is its Luhn (mod 10) check digit: card numbers, Swedish OCR
/// payment references, IMEI numbers and the like.
///
/// Digits only, at least 2 of them; a single space or hyphen between groups is allowed
/// (`4111 1111 1111 1111`, bankgiro `5050-1055`), separators at either end or doubled are not. A JSON number is checked by
/// its text, so a negative or fractional number fails.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct LuhnRuleConfig {
    /// The mapped field the rule checks.
    pub field: String,
}

/// Whether digits (values 0–9), given from the last to the first, have a Luhn sum that is a
/// multiple of 10: every second digit from the right (starting with the one before the check
/// digit) is doubled, and 9 subtracted when that is above 9.
pub(super) fn sum_is_valid(digits_from_right: impl Iterator<Item = u8>) -> bool {
    let mut sum = 0u32;
    for (index, digit) in digits_from_right.enumerate() {
        let digit = u32::from(digit);
        sum += if index % 2 == 1 {
            let doubled = digit * 2;
            if doubled > 9 { doubled - 9 } else { doubled }
        } else {
            digit
        };
    }
    sum.is_multiple_of(10)
}

/// Checks a Luhn number; no allocation unless it is broken.
pub(super) fn check(text: &str) -> Result<(), ViolationKind> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(ViolationKind::Empty { subject: Subject::Luhn });
    }
    let mut digits = 0usize;
    let mut after_space = true;
    for (index, &c) in bytes.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                after_space = false;
            }
            b' ' | b'-' if !after_space => after_space = true,
            b' ' | b'-' => {
                return Err(ViolationKind::BadSpacing { subject: Subject::Luhn });
            }
            _ => {
                let (ch, position) = char_at(text, index);
                return Err(ViolationKind::InvalidCharacter {
                    subject: Subject::Luhn,
                    ch,
                    position,
                });
            }
        }
    }
    if after_space {
        return Err(ViolationKind::BadSpacing { subject: Subject::Luhn });
    }
    if digits < 2 {
        return Err(ViolationKind::LuhnTooShort { digits });
    }
    let from_right = bytes.iter().rev().filter(|c| c.is_ascii_digit()).map(|&c| c - b'0');
    if sum_is_valid(from_right) {
        Ok(())
    } else {
        Err(ViolationKind::CheckDigit { subject: Subject::Luhn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent Luhn check digit: the classic table of doubled-digit sums, from the left.
    fn check_digit(payload: &str) -> u8 {
        const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
        let digits: Vec<u32> = payload.bytes().map(|b| u32::from(b - b'0')).collect();
        let n = digits.len();
        let sum: u32 = digits
            .iter()
            .enumerate()
            .map(|(i, &d)| if (n - i) % 2 == 1 { DOUBLED[d as usize] } else { d })
            .sum();
        ((10 - sum % 10) % 10) as u8
    }

    #[test]
    fn real_luhn_numbers_pass() {
        for number in [
            "79927398713",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5050-1055",
            "4111111111111111",
            "5555 5555 5555 4444",
            "378282246310005",
            "18",
            "00",
        ] {
            assert_eq!(check(number), Ok(()), "{number}");
        }
        assert_eq!(check_digit("7992739871"), 3);
        assert_eq!(check_digit("411111111111111"), 1);
    }

    #[test]
    fn every_wrong_check_digit_fails() {
        for last in b'0'..=b'9' {
            let number = format!("7992739871{}", last as char);
            let expected = if last == b'3' {
                Ok(())
            } else {
                Err(ViolationKind::CheckDigit { subject: Subject::Luhn })
            };
            assert_eq!(check(&number), expected, "{number}");
        }
        assert!(check("79927398710").is_err());
        assert!(check("4111 1111 1111 1112").is_err());
        // Swapping two neighbouring digits (other than 0 and 9) is caught.
        assert!(check("79927398731").is_err());
    }

    #[test]
    fn short_spaced_and_non_digit_values_fail() {
        assert_eq!(check("7"), Err(ViolationKind::LuhnTooShort { digits: 1 }));
        assert_eq!(check(""), Err(ViolationKind::Empty { subject: Subject::Luhn }));
        for spaced in [
            " 79927398713",
            "79927398713 ",
            "7992  7398713",
            " ",
            "-5050-1055",
            "5050--1055",
            "5050 -1055",
        ] {
            assert_eq!(check(spaced), Err(ViolationKind::BadSpacing { subject: Subject::Luhn }));
        }
        assert_eq!(
            check("4111/1111"),
            Err(ViolationKind::InvalidCharacter { subject: Subject::Luhn, ch: '/', position: 5 })
        );
        assert!(matches!(check("7992739871a"), Err(ViolationKind::InvalidCharacter { .. })));
    }

    #[test]
    fn the_sum_matches_the_independent_check_digit() {
        for payload in ["0", "12345", "7992739871", "55555555555544", "000000000000000"] {
            let digit = check_digit(payload);
            let number = format!("{payload}{digit}");
            assert_eq!(check(&number), Ok(()), "{number}");
        }
    }
}
