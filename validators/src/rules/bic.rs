//! The `bic` rule: Business Identifier Codes (ISO 9362, "SWIFT codes").

use super::violation::{Subject, ViolationKind, char_at, lossy};

/// A BIC (ISO 9362): 8 or 11 characters, all capitals or digits: a 4-letter bank code, the
/// bank's ISO 3166 country (`SE`, `DE`, …, and `XK` for Kosovo, which SWIFT uses), a 2-character
/// location code and an optional 3-character branch code (`XXX` for the head office).
///
/// Refused: lowercase letters (uppercase them in the mapping if a source sends lowercase),
/// spaces, digits in the bank code and country codes that do not exist.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct BicRuleConfig {
    /// The mapped field the rule checks.
    pub field: String,
}

/// Every officially assigned ISO 3166-1 alpha-2 code (249), plus `XK` (Kosovo, user-assigned
/// but used by SWIFT and the IBAN registry).
const COUNTRIES: &str = concat!(
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE ",
    "BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD ",
    "CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM ",
    "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF ",
    "GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ",
    "ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN ",
    "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME ",
    "MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA ",
    "NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM ",
    "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI ",
    "SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK ",
    "TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI ",
    "VN VU WF WS YE YT ZA ZM ZW ",
    "XK ",
);

/// [`COUNTRIES`] as a bit set: bit `b` of row `a` is set for the code `a b`.
static COUNTRY_BITS: [u32; 26] = {
    let codes = COUNTRIES.as_bytes();
    let mut bits = [0u32; 26];
    let mut i = 0;
    while i + 2 < codes.len() {
        bits[(codes[i] - b'A') as usize] |= 1 << (codes[i + 1] - b'A');
        i += 3;
    }
    bits
};

/// Whether two capital letters are an ISO 3166 country code (or `XK`).
pub(super) fn is_country(a: u8, b: u8) -> bool {
    match (a.checked_sub(b'A'), b.checked_sub(b'A')) {
        (Some(row), Some(bit)) if bit < 26 => {
            COUNTRY_BITS.get(usize::from(row)).is_some_and(|bits| bits & (1 << bit) != 0)
        }
        _ => false,
    }
}

fn is_code_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

/// Checks a BIC; no allocation unless it is broken.
pub(super) fn check(text: &str) -> Result<(), ViolationKind> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(ViolationKind::Empty { subject: Subject::Bic });
    }
    if bytes.len() != 8 && bytes.len() != 11 {
        return Err(ViolationKind::BicLength { got: text.chars().count() });
    }
    if let Some(index) = bytes.iter().position(u8::is_ascii_lowercase) {
        let (ch, position) = char_at(text, index);
        return Err(ViolationKind::Lowercase { subject: Subject::Bic, ch, position });
    }
    let (bank, rest) = bytes.split_at(4);
    let (country, rest) = rest.split_at(2);
    let (location, branch) = rest.split_at(2);
    if !bank.iter().all(u8::is_ascii_uppercase) {
        return Err(ViolationKind::BicBankCode { got: lossy(bank) });
    }
    if !matches!(country, &[a, b] if is_country(a, b)) {
        return Err(ViolationKind::BicCountry { got: lossy(country) });
    }
    if !location.iter().copied().all(is_code_char) {
        return Err(ViolationKind::BicLocation { got: lossy(location) });
    }
    if !branch.iter().copied().all(is_code_char) {
        return Err(ViolationKind::BicBranch { got: lossy(branch) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> &'static str {
        super::super::Violation::new(check(text).expect_err(text)).code()
    }

    #[test]
    fn real_bics_pass() {
        for bic in [
            "DEUTDEFF",
            "DEUTDEFF500",
            "NDEASESS",
            "ESSESESS",
            "HANDSESS",
            "SWEDSESS",
            "NDEAFIHH",
            "DNBANOKK",
            "BNPAFRPPXXX",
            "UBSWCHZH80A",
            "RBKOXKPR",
        ] {
            assert_eq!(check(bic), Ok(()), "{bic}");
        }
    }

    #[test]
    fn wrong_lengths_are_refused() {
        for (bic, got) in [
            ("DEUTDEF", 7),
            ("DEUTDEFF5", 9),
            ("DEUTDEFF50", 10),
            ("DEUTDEFF5000", 12),
            ("NDEA SESS", 9),
            ("SWEDSESSÅ", 9),
        ] {
            assert_eq!(check(bic), Err(ViolationKind::BicLength { got }), "{bic}");
        }
        assert_eq!(code(""), "empty");
    }

    #[test]
    fn each_part_is_checked() {
        assert_eq!(check("DE1TDEFF"), Err(ViolationKind::BicBankCode { got: "DE1T".into() }));
        assert_eq!(check("1234DEFF"), Err(ViolationKind::BicBankCode { got: "1234".into() }));
        assert_eq!(check("ABCDXX12"), Err(ViolationKind::BicCountry { got: "XX".into() }));
        assert_eq!(check("ABCD1212"), Err(ViolationKind::BicCountry { got: "12".into() }));
        assert_eq!(check("DEUTDE-F"), Err(ViolationKind::BicLocation { got: "-F".into() }));
        assert_eq!(check("DEUTDEFF5 0"), Err(ViolationKind::BicBranch { got: "5 0".into() }));
        assert_eq!(code("DEUÖDEF"), "bic_bank_code");
    }

    #[test]
    fn lowercase_is_refused() {
        assert_eq!(
            check("deutdeff"),
            Err(ViolationKind::Lowercase { subject: Subject::Bic, ch: 'd', position: 1 })
        );
        assert_eq!(code("NDEASEss"), "lowercase");
        assert_eq!(code("DEUTDEFF50a"), "lowercase");
    }

    #[test]
    fn the_country_table_has_every_iso_code() {
        let count = COUNTRY_BITS.iter().map(|bits| bits.count_ones()).sum::<u32>();
        assert_eq!(count, 250);
        for (a, b) in [(b'S', b'E'), (b'X', b'K'), (b'A', b'X'), (b'Z', b'W')] {
            assert!(is_country(a, b));
        }
        for (a, b) in [(b'X', b'X'), (b'U', b'K'), (b'E', b'U'), (b'a', b'x'), (b'1', b'2')] {
            assert!(!is_country(a, b));
        }
    }
}
