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

/// Where a shopper from a country is sent, by default: the marketplaces to
/// try in order (the first with a store ID configured wins). Every country
/// with an Amazon store maps to it first; countries without one map to the
/// store that ships there and speaks their language or their neighbour's
/// (AT, CH, LI, LU → amazon.de; NZ → amazon.com.au; IE → amazon.ie, then
/// amazon.co.uk). A country not listed stays on the link's own marketplace.
/// Operators override entries in the config (`[localize.countries]`).
pub const COUNTRY_MARKETPLACES: &[(&str, &[&str])] = &[
    // North and South America.
    ("US", &["amazon.com"]),
    ("PR", &["amazon.com"]),
    ("VI", &["amazon.com"]),
    ("GU", &["amazon.com"]),
    ("AS", &["amazon.com"]),
    ("MP", &["amazon.com"]),
    ("UM", &["amazon.com"]),
    ("CA", &["amazon.ca", "amazon.com"]),
    ("MX", &["amazon.com.mx", "amazon.com"]),
    ("BR", &["amazon.com.br"]),
    // Europe.
    ("GB", &["amazon.co.uk"]),
    ("IM", &["amazon.co.uk"]),
    ("JE", &["amazon.co.uk"]),
    ("GG", &["amazon.co.uk"]),
    ("GI", &["amazon.co.uk", "amazon.es"]),
    ("IE", &["amazon.ie", "amazon.co.uk"]),
    ("DE", &["amazon.de"]),
    ("AT", &["amazon.de"]),
    ("CH", &["amazon.de"]),
    ("LI", &["amazon.de"]),
    ("LU", &["amazon.de", "amazon.fr"]),
    ("FR", &["amazon.fr"]),
    ("MC", &["amazon.fr"]),
    ("IT", &["amazon.it"]),
    ("SM", &["amazon.it"]),
    ("VA", &["amazon.it"]),
    ("MT", &["amazon.it", "amazon.co.uk"]),
    ("ES", &["amazon.es"]),
    ("AD", &["amazon.es", "amazon.fr"]),
    ("PT", &["amazon.es"]),
    ("NL", &["amazon.nl", "amazon.de"]),
    ("BE", &["amazon.com.be", "amazon.fr", "amazon.nl"]),
    ("SE", &["amazon.se", "amazon.de"]),
    ("DK", &["amazon.se", "amazon.de"]),
    ("NO", &["amazon.se", "amazon.de"]),
    ("FI", &["amazon.se", "amazon.de"]),
    ("IS", &["amazon.co.uk", "amazon.de"]),
    ("PL", &["amazon.pl", "amazon.de"]),
    ("CZ", &["amazon.de"]),
    ("SK", &["amazon.de"]),
    ("HU", &["amazon.de"]),
    ("SI", &["amazon.de"]),
    ("HR", &["amazon.de"]),
    ("RO", &["amazon.de"]),
    ("BG", &["amazon.de"]),
    ("GR", &["amazon.de"]),
    ("CY", &["amazon.co.uk", "amazon.de"]),
    ("EE", &["amazon.de"]),
    ("LV", &["amazon.de"]),
    ("LT", &["amazon.pl", "amazon.de"]),
    ("TR", &["amazon.com.tr"]),
    // Middle East and Africa.
    ("AE", &["amazon.ae"]),
    ("SA", &["amazon.sa", "amazon.ae"]),
    ("KW", &["amazon.ae", "amazon.sa"]),
    ("BH", &["amazon.ae", "amazon.sa"]),
    ("QA", &["amazon.ae", "amazon.sa"]),
    ("OM", &["amazon.ae", "amazon.sa"]),
    ("EG", &["amazon.eg", "amazon.ae"]),
    // Asia and Oceania.
    ("IN", &["amazon.in"]),
    ("JP", &["amazon.co.jp"]),
    ("SG", &["amazon.sg"]),
    ("MY", &["amazon.sg"]),
    ("AU", &["amazon.com.au"]),
    ("NZ", &["amazon.com.au"]),
];

/// The default marketplaces for a shopper's country (upper-case ISO 3166-1
/// alpha-2), in order of preference; empty when the country has none.
pub fn country_marketplaces(country: &str) -> &'static [&'static str] {
    COUNTRY_MARKETPLACES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(country))
        .map_or(&[], |(_, m)| m)
}

/// The ASIN of a canonical product URL (`https://www.<marketplace>/dp/<ASIN>`,
/// what the amazon plugin builds as a link's destination).
pub fn asin_of_destination(destination: &str) -> Option<&str> {
    let rest = destination.split_once("/dp/")?.1;
    let asin = rest.split(['/', '?', '#']).next()?;
    is_asin(asin).then_some(asin)
}

/// The Amazon API regions: each has its own credentials and endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// North America: amazon.com, .ca, .com.mx, .com.br.
    NorthAmerica,
    /// Europe, the Middle East and India.
    Europe,
    /// The Far East: amazon.co.jp, .sg, .com.au.
    FarEast,
}

impl Region {
    /// The region of a marketplace domain.
    pub fn of_marketplace(domain: &str) -> Option<Region> {
        let i = marketplace_index(domain)?;
        Some(match MARKETPLACES[i] {
            "amazon.com" | "amazon.ca" | "amazon.com.mx" | "amazon.com.br" => Region::NorthAmerica,
            "amazon.co.jp" | "amazon.sg" | "amazon.com.au" => Region::FarEast,
            _ => Region::Europe,
        })
    }

    /// The region of a Creators API credential version (`2.1`/`3.1` North
    /// America, `2.2`/`3.2` Europe, `2.3`/`3.3` Far East).
    pub fn of_credential_version(version: &str) -> Option<Region> {
        match version.trim() {
            "2.1" | "3.1" => Some(Region::NorthAmerica),
            "2.2" | "3.2" => Some(Region::Europe),
            "2.3" | "3.3" => Some(Region::FarEast),
            _ => None,
        }
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Region::NorthAmerica => "North America",
            Region::Europe => "Europe",
            Region::FarEast => "Far East",
        })
    }
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

    #[test]
    fn every_country_map_entry_names_known_marketplaces_once() {
        let mut seen = std::collections::HashSet::new();
        for (country, marketplaces) in COUNTRY_MARKETPLACES {
            assert!(seen.insert(*country), "{country} twice");
            assert!(!marketplaces.is_empty(), "{country}");
            for m in *marketplaces {
                assert!(marketplace_index(m).is_some(), "{country}: {m}");
            }
        }
        // Every marketplace is some country's first choice.
        for m in MARKETPLACES {
            assert!(
                COUNTRY_MARKETPLACES.iter().any(|(_, ms)| ms[0] == m),
                "{m} is nobody's store"
            );
        }
        assert_eq!(country_marketplaces("at"), ["amazon.de"]);
        assert_eq!(country_marketplaces("NZ"), ["amazon.com.au"]);
        assert_eq!(country_marketplaces("IE"), ["amazon.ie", "amazon.co.uk"]);
        assert!(country_marketplaces("AQ").is_empty());
    }

    #[test]
    fn the_asin_of_a_canonical_destination() {
        assert_eq!(
            asin_of_destination("https://www.amazon.de/dp/B08N5WRWNW"),
            Some("B08N5WRWNW")
        );
        assert_eq!(
            asin_of_destination("https://www.amazon.de/dp/B08N5WRWNW?x=1"),
            Some("B08N5WRWNW")
        );
        assert_eq!(asin_of_destination("https://www.amazon.de/s?k=echo"), None);
    }

    #[test]
    fn every_marketplace_has_a_region_and_versions_name_one() {
        for m in MARKETPLACES {
            assert!(Region::of_marketplace(m).is_some(), "{m}");
        }
        assert_eq!(Region::of_marketplace("amazon.de"), Some(Region::Europe));
        assert_eq!(
            Region::of_marketplace("amazon.com.au"),
            Some(Region::FarEast)
        );
        assert_eq!(
            Region::of_credential_version("3.1"),
            Some(Region::NorthAmerica)
        );
        assert_eq!(Region::of_credential_version("4.0"), None);
    }
}
