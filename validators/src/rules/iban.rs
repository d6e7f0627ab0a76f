//! The `iban` rule: International Bank Account Numbers (ISO 13616).

use super::violation::{CountryCode, Subject, ViolationKind, char_at, lossy};

/// An IBAN (ISO 13616): a country code from the SWIFT IBAN registry, two check digits and the
/// country's BBAN, with exactly the registry's length for that country and a mod-97 remainder
/// of 1.
///
/// Accepted: the electronic form (`SE4550000000058398257466`) and the print form with single
/// spaces between groups (`SE45 5000 0000 0583 9825 7466`; group sizes are not checked). Refused:
/// lowercase letters (an IBAN is written in capitals; uppercase it in the mapping if a source
/// sends lowercase), spaces at either end or doubled, and any other character. Check digits 00,
/// 01 and 99 are refused although they can satisfy mod 97: the algorithm never issues them.
/// The BBAN is checked for letters and digits only, not for each country's inner structure.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct IbanRuleConfig {
    /// The mapped field the rule checks.
    pub field: String,
}

/// IBAN length per country prefix, from the SWIFT IBAN registry (89 prefixes, current in 2026).
/// Territories without a prefix of their own (Åland, the French overseas departments, Jersey, …)
/// use their parent's prefix (FI, FR, GB, …) and are covered by it.
#[rustfmt::skip]
const REGISTRY: &[([u8; 2], u8)] = &[
    (*b"AD", 24), (*b"AE", 23), (*b"AL", 28), (*b"AT", 20), (*b"AZ", 28), (*b"BA", 20),
    (*b"BE", 16), (*b"BG", 22), (*b"BH", 22), (*b"BI", 27), (*b"BR", 29), (*b"BY", 28),
    (*b"CH", 21), (*b"CR", 22), (*b"CY", 28), (*b"CZ", 24), (*b"DE", 22), (*b"DJ", 27),
    (*b"DK", 18), (*b"DO", 28), (*b"EE", 20), (*b"EG", 29), (*b"ES", 24), (*b"FI", 18),
    (*b"FK", 18), (*b"FO", 18), (*b"FR", 27), (*b"GB", 22), (*b"GE", 22), (*b"GI", 23),
    (*b"GL", 18), (*b"GR", 27), (*b"GT", 28), (*b"HN", 28), (*b"HR", 21), (*b"HU", 28),
    (*b"IE", 22), (*b"IL", 23), (*b"IQ", 23), (*b"IS", 26), (*b"IT", 27), (*b"JO", 30),
    (*b"KW", 30), (*b"KZ", 20), (*b"LB", 28), (*b"LC", 32), (*b"LI", 21), (*b"LT", 20),
    (*b"LU", 20), (*b"LV", 21), (*b"LY", 25), (*b"MC", 27), (*b"MD", 24), (*b"ME", 22),
    (*b"MK", 19), (*b"MN", 20), (*b"MR", 27), (*b"MT", 31), (*b"MU", 30), (*b"NI", 28),
    (*b"NL", 18), (*b"NO", 15), (*b"OM", 23), (*b"PK", 24), (*b"PL", 28), (*b"PS", 29),
    (*b"PT", 25), (*b"QA", 29), (*b"RO", 24), (*b"RS", 22), (*b"RU", 33), (*b"SA", 24),
    (*b"SC", 31), (*b"SD", 18), (*b"SE", 24), (*b"SI", 19), (*b"SK", 24), (*b"SM", 27),
    (*b"SO", 23), (*b"ST", 25), (*b"SV", 28), (*b"TL", 23), (*b"TN", 24), (*b"TR", 26),
    (*b"UA", 29), (*b"VA", 22), (*b"VG", 24), (*b"XK", 20), (*b"YE", 30),
];

/// [`REGISTRY`] as a table indexed by the two letters: 0 means "no IBAN for this country".
static LENGTHS: [u8; 26 * 26] = {
    let mut table = [0u8; 26 * 26];
    let mut i = 0;
    while i < REGISTRY.len() {
        let ([a, b], length) = REGISTRY[i];
        table[(a - b'A') as usize * 26 + (b - b'A') as usize] = length;
        i += 1;
    }
    table
};

/// The IBAN length for a country given as two capital letters, if it has IBANs.
fn length_for(a: u8, b: u8) -> Option<usize> {
    let index = usize::from(a.checked_sub(b'A')?) * 26 + usize::from(b.checked_sub(b'A')?);
    LENGTHS.get(index).copied().filter(|&length| length > 0).map(usize::from)
}

/// Appends one IBAN character to a number being reduced mod 97, where a digit is itself and a
/// letter stands for the two digits 10 (A) to 35 (Z). The number is kept below 10^15 (reduced
/// only when it grows past that), so most steps are a multiply and an add.
fn mod97_push(number: u64, c: u8) -> u64 {
    let number = if c.is_ascii_digit() {
        number * 10 + u64::from(c - b'0')
    } else {
        number * 100 + u64::from(c - b'A') + 10
    };
    if number >= 1_000_000_000_000_000 { number % 97 } else { number }
}

/// Checks an IBAN; no allocation unless it is broken.
///
/// One pass over the text checks characters and spacing, keeps the first four characters
/// (country code and check digits) and reduces the rest (the BBAN) mod 97; ISO 7064 then
/// appends the first four to the BBAN, so the checksum ends with those.
pub(super) fn check(text: &str) -> Result<(), ViolationKind> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(ViolationKind::Empty { subject: Subject::Iban });
    }
    let mut head = [0u8; 4];
    let mut bban = 0u64;
    let mut length = 0usize;
    let mut after_space = true;
    for (index, &c) in bytes.iter().enumerate() {
        match c {
            b'A'..=b'Z' | b'0'..=b'9' => {
                match head.get_mut(length) {
                    Some(slot) => *slot = c,
                    None => bban = mod97_push(bban, c),
                }
                length += 1;
                after_space = false;
            }
            b' ' if !after_space => after_space = true,
            b' ' => {
                return Err(ViolationKind::BadSpacing { subject: Subject::Iban });
            }
            b'a'..=b'z' => {
                let (ch, position) = char_at(text, index);
                return Err(ViolationKind::Lowercase { subject: Subject::Iban, ch, position });
            }
            _ => {
                let (ch, position) = char_at(text, index);
                return Err(ViolationKind::InvalidCharacter {
                    subject: Subject::Iban,
                    ch,
                    position,
                });
            }
        }
    }
    if after_space {
        return Err(ViolationKind::BadSpacing { subject: Subject::Iban });
    }
    if length < 4 {
        return Err(ViolationKind::IbanTooShort { got: length });
    }
    let [a, b, c, d] = head;
    if !(a.is_ascii_uppercase() && b.is_ascii_uppercase()) {
        return Err(ViolationKind::IbanCountryCode { got: lossy(&[a, b]) });
    }
    let country = CountryCode([a, b]);
    let Some(expected) = length_for(a, b) else {
        return Err(ViolationKind::IbanUnknownCountry { country });
    };
    if length != expected {
        return Err(ViolationKind::IbanLength { country, expected, got: length });
    }
    if !(c.is_ascii_digit() && d.is_ascii_digit()) {
        return Err(ViolationKind::IbanCheckDigitsFormat { got: lossy(&[c, d]) });
    }
    let check_digits = (c - b'0') * 10 + (d - b'0');
    if !(2..=98).contains(&check_digits) {
        return Err(ViolationKind::IbanCheckDigitsRange { got: check_digits });
    }
    let remainder = [a, b, c, d].into_iter().fold(bban, mod97_push) % 97;
    if remainder != 1 {
        return Err(ViolationKind::IbanChecksum);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real IBANs (registry and bank examples) of 14 countries.
    const VALID: &[&str] = &[
        "SE4550000000058398257466",
        "GB82WEST12345698765432",
        "GB29NWBK60161331926819",
        "DE89370400440532013000",
        "NL91ABNA0417164300",
        "FR1420041010050500013M02606",
        "NO9386011117947",
        "DK5000400440116243",
        "FI2112345600000785",
        "ES9121000418450200051332",
        "BE68539007547034",
        "CH9300762011623852957",
        "IT60X0542811101000000123456",
        "PL61109010140000071219812874",
        "AT611904300234573201",
        "RU0304452522540817810538091310419",
    ];

    /// An independent mod-97 over the whole number, with big-number arithmetic done digit by
    /// digit on the string form, as ISO 7064 describes it.
    fn iso7064_remainder(iban: &str) -> u32 {
        let rearranged = format!("{}{}", &iban[4..], &iban[..4]);
        let digits: String =
            rearranged.chars().map(|c| c.to_digit(36).expect("alphanumeric").to_string()).collect();
        digits.bytes().fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97)
    }

    fn code(text: &str) -> &'static str {
        super::super::Violation::new(check(text).expect_err(text)).code()
    }

    #[test]
    fn real_ibans_pass() {
        for iban in VALID {
            assert_eq!(iso7064_remainder(iban), 1, "{iban} is not a real IBAN");
            assert_eq!(check(iban), Ok(()), "{iban}");
        }
    }

    #[test]
    fn the_print_form_with_single_spaces_passes() {
        assert_eq!(check("SE45 5000 0000 0583 9825 7466"), Ok(()));
        assert_eq!(check("DE89 3704 0044 0532 0130 00"), Ok(()));
        assert_eq!(check("FR14 2004 1010 0505 0001 3M02 606"), Ok(()));
        // Group sizes are not checked.
        assert_eq!(check("SE45 50000000058398257466"), Ok(()));
    }

    #[test]
    fn one_changed_digit_fails_the_checksum() {
        for iban in VALID {
            let mut bytes = iban.as_bytes().to_vec();
            let last = bytes.len() - 1;
            let changed = if bytes[last] == b'9' { b'0' } else { bytes[last] + 1 };
            bytes[last] = if bytes[last].is_ascii_digit() { changed } else { b'0' };
            let changed = String::from_utf8(bytes).expect("ascii");
            assert_eq!(check(&changed), Err(ViolationKind::IbanChecksum), "{changed}");
        }
        assert_eq!(check("SE4550000000058398257467"), Err(ViolationKind::IbanChecksum));
        assert_eq!(check("DE89370400440532013001"), Err(ViolationKind::IbanChecksum));
        assert_eq!(check("GB82WEST12345698765433"), Err(ViolationKind::IbanChecksum));
    }

    #[test]
    fn swapped_check_digits_and_swapped_neighbours_fail() {
        assert_eq!(check("SE5450000000058398257466"), Err(ViolationKind::IbanChecksum));
        assert_eq!(check("DE98370400440532013000"), Err(ViolationKind::IbanChecksum));
        assert_eq!(check("NL19ABNA0417164300"), Err(ViolationKind::IbanChecksum));
        // Two neighbouring digits of the account swapped.
        assert_eq!(check("SE4550000000058398257646"), Err(ViolationKind::IbanChecksum));
    }

    #[test]
    fn check_digits_never_issued_are_refused() {
        for (iban, got) in [
            ("SE0050000000058398257466", 0),
            ("SE0150000000058398257466", 1),
            ("SE9950000000058398257466", 99),
        ] {
            assert_eq!(check(iban), Err(ViolationKind::IbanCheckDigitsRange { got }));
        }
        assert_eq!(code("SEAB50000000058398257466"), "iban_check_digits_format");
    }

    #[test]
    fn a_wrong_length_for_the_country_is_named() {
        assert_eq!(
            check("SE45500000000583982574"),
            Err(ViolationKind::IbanLength { country: CountryCode(*b"SE"), expected: 24, got: 22 })
        );
        // A valid Norwegian IBAN with the Swedish prefix is too short for SE.
        assert_eq!(code("SE9386011117947"), "iban_length");
        assert_eq!(code("DE8937040044053201300"), "iban_length");
        assert_eq!(code("DE893704004405320130000"), "iban_length");
    }

    #[test]
    fn unknown_countries_and_non_letter_prefixes_are_refused() {
        assert_eq!(
            check("XX4550000000058398257466"),
            Err(ViolationKind::IbanUnknownCountry { country: CountryCode(*b"XX") })
        );
        assert_eq!(code("US12345678901234567890"), "iban_unknown_country");
        assert_eq!(code("1245500000000583982574"), "iban_country_code");
        assert_eq!(code("S"), "iban_too_short");
        assert_eq!(code("SE4"), "iban_too_short");
        // Four characters are enough to name the country, which then wants more.
        assert_eq!(code("SE45"), "iban_length");
    }

    #[test]
    fn lowercase_is_refused_with_its_position() {
        assert_eq!(
            check("se4550000000058398257466"),
            Err(ViolationKind::Lowercase { subject: Subject::Iban, ch: 's', position: 1 })
        );
        assert_eq!(
            check("GB82west12345698765432"),
            Err(ViolationKind::Lowercase { subject: Subject::Iban, ch: 'w', position: 5 })
        );
    }

    #[test]
    fn bad_spacing_and_other_characters_are_refused() {
        for iban in [
            " SE4550000000058398257466",
            "SE4550000000058398257466 ",
            "SE45  5000 0000 0583 9825 7466",
            " ",
        ] {
            assert_eq!(check(iban), Err(ViolationKind::BadSpacing { subject: Subject::Iban }));
        }
        assert_eq!(
            check("SE45-5000-0000-0583-9825-7466"),
            Err(ViolationKind::InvalidCharacter { subject: Subject::Iban, ch: '-', position: 5 })
        );
        assert_eq!(code("SE45\t5000 0000 0583 9825 7466"), "invalid_character");
        assert_eq!(code("SE455000000005839825746Ö"), "invalid_character");
        assert_eq!(code(""), "empty");
    }

    #[test]
    fn the_registry_table_is_complete_and_consistent() {
        assert_eq!(REGISTRY.len(), 89);
        let lengths: Vec<usize> = REGISTRY.iter().map(|&(_, length)| usize::from(length)).collect();
        assert_eq!(lengths.iter().min(), Some(&15));
        assert_eq!(lengths.iter().max(), Some(&33));
        for window in REGISTRY.windows(2) {
            assert!(window[0].0 < window[1].0, "registry not sorted at {:?}", window[1].0);
        }
        for &([a, b], length) in REGISTRY {
            assert_eq!(length_for(a, b), Some(usize::from(length)));
            assert!(super::super::bic::is_country(a, b), "{} is not a country", a as char);
        }
        assert_eq!(length_for(b'U', b'S'), None);
    }
}
