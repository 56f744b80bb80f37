//! Amazon: its marketplaces, its link shorteners, and what an ASIN looks like
//! (the Associates Central list of stores; docs/ARCHITECTURE.md).

/// The Amazon marketplaces, by domain. Each has its own store ID (tag).
pub const MARKETPLACES: [&str; 22] = [
    "amazon.com",    // US
    "amazon.ca",     // CA
    "amazon.com.mx", // MX
    "amazon.com.br", // BR
    "amazon.co.uk",  // UK
    "amazon.de",     // DE
    "amazon.fr",     // FR
    "amazon.it",     // IT
    "amazon.es",     // ES
    "amazon.nl",     // NL
    "amazon.com.be", // BE
    "amazon.se",     // SE
    "amazon.pl",     // PL
    "amazon.ie",     // IE
    "amazon.com.tr", // TR
    "amazon.ae",     // AE
    "amazon.sa",     // SA
    "amazon.eg",     // EG
    "amazon.in",     // IN
    "amazon.co.jp",  // JP
    "amazon.sg",     // SG
    "amazon.com.au", // AU
];

/// Amazon's link shorteners: their links must be expanded (their redirect
/// followed) before the ASIN can be read.
pub const SHORT_HOSTS: [&str; 3] = ["amzn.to", "amzn.eu", "a.co"];

/// The index in [`MARKETPLACES`] of a marketplace domain, ignoring case.
pub fn marketplace_index(domain: &str) -> Option<usize> {
    MARKETPLACES
        .iter()
        .position(|m| m.eq_ignore_ascii_case(domain))
}

/// Whether a string is an ASIN: 10 ASCII letters or digits.
pub fn is_asin(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asins_are_ten_letters_or_digits() {
        assert!(is_asin("B08N5WRWNW"));
        assert!(is_asin("0316769487"));
        assert!(!is_asin("B08N5WRWN"));
        assert!(!is_asin("B08N5WRWNWX"));
        assert!(!is_asin("B08N5-RWNW"));
        assert!(!is_asin("not-an-asin"));
    }

    #[test]
    fn marketplaces_are_found_ignoring_case() {
        assert_eq!(marketplace_index("Amazon.DE"), Some(5));
        assert_eq!(marketplace_index("amazon.xx"), None);
        assert_eq!(MARKETPLACES.len(), 22);
    }
}
