//! The languages operator-facing messages (parse, mapping and validation errors) are written in.

use std::fmt;

/// A language for validation messages; the template's `locale` picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    /// Swedish, the platform's default.
    #[default]
    Sv,
    /// English, also used for any locale we have no messages for.
    En,
}

impl Locale {
    /// The locale for a template's `locale` value: `sv…` is Swedish, anything else English.
    ///
    /// Region suffixes are accepted (`sv-SE`, `en_GB`); an unknown language falls back to English
    /// so an operator always gets a message they can act on.
    pub fn from_tag(tag: &str) -> Self {
        let language = tag.split(['-', '_']).next().unwrap_or_default();
        if language.eq_ignore_ascii_case("sv") { Locale::Sv } else { Locale::En }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Locale::Sv => "sv",
            Locale::En => "en",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_pick_swedish_or_fall_back_to_english() {
        assert_eq!(Locale::from_tag("sv"), Locale::Sv);
        assert_eq!(Locale::from_tag("sv-SE"), Locale::Sv);
        assert_eq!(Locale::from_tag("en"), Locale::En);
        assert_eq!(Locale::from_tag("de"), Locale::En);
        assert_eq!(Locale::from_tag(""), Locale::En);
    }
}
