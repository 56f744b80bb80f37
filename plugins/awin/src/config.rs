//! The instance configuration: the raw serde shape and its validation into
//! the typed [`Config`] the provider serves from.

use std::fmt;

use linkwright_plugin_sdk::input::normalise_domain;
use linkwright_plugin_sdk::{PluginError, parse_config};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use url::Url;

/// Awin's Click Reference report shows only the first 50 characters of
/// `clickref`.
const DEFAULT_SUBID_MAX_LEN: u32 = 50;

/// The configuration as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The Awin publisher id (`awinaffid`): digits, as a string or an integer.
    #[serde(deserialize_with = "numeric_id")]
    publisher_id: String,
    /// The advertisers (programmes) this publisher links to.
    #[serde(default)]
    advertisers: Vec<RawAdvertiser>,
    /// Longest click sub-ID to put in `clickref`; 0 for no limit. Defaults to
    /// 50, the length Awin's Click Reference report shows.
    #[serde(default)]
    subid_max_len: Option<u32>,
}

/// One advertiser as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdvertiser {
    /// The Awin advertiser id (`awinmid`): digits, as a string or an integer.
    #[serde(deserialize_with = "numeric_id")]
    id: String,
    /// A display name, used in messages.
    name: String,
    /// The advertiser's site hosts; each also matches its subdomains, and a
    /// leading `www.` is ignored.
    domains: Vec<String>,
    /// Whether the advertiser permits deep links (links to pages other than
    /// its home page).
    #[serde(default = "default_true")]
    deeplinks: bool,
    /// Where a link to the home page lands; without it Awin uses the
    /// advertiser's default landing page.
    #[serde(default)]
    default_landing: Option<String>,
    /// Whether the publisher is approved for this advertiser's programme.
    #[serde(default = "default_true")]
    approved: bool,
}

fn default_true() -> bool {
    true
}

/// Reads an id written either as a string (`"12345"`) or as an integer
/// (`12345`, as TOML users tend to write it); the digits are checked later.
fn numeric_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct IdVisitor;

    impl Visitor<'_> for IdVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a numeric id, as a string or an integer")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }

    deserializer.deserialize_any(IdVisitor)
}

/// A validated configuration.
#[derive(Debug)]
pub(crate) struct Config {
    /// The publisher id (`awinaffid`), digits only.
    pub(crate) publisher_id: String,
    /// The advertisers, in configuration order.
    pub(crate) advertisers: Vec<Advertiser>,
    /// Every configured domain with the index of its advertiser, longest
    /// domain first so that the most specific one matches.
    pub(crate) domains: Vec<(String, usize)>,
    /// Longest sub-ID; 0 for no limit.
    pub(crate) subid_max_len: u32,
}

/// A validated advertiser.
#[derive(Debug)]
pub(crate) struct Advertiser {
    /// The advertiser id (`awinmid`), digits only.
    pub(crate) id: String,
    /// The display name.
    pub(crate) name: String,
    /// Normalised domains: lower case, no `www.`, no trailing dot.
    pub(crate) domains: Vec<String>,
    /// Whether deep links are permitted.
    pub(crate) deeplinks: bool,
    /// The landing page for home-page links, normalised.
    pub(crate) default_landing: Option<Url>,
    /// Whether the publisher is approved.
    pub(crate) approved: bool,
}

impl Config {
    /// Parses and validates the JSON configuration, reporting every problem
    /// at once, each with its key path.
    pub(crate) fn parse(config_json: &str) -> Result<Config, PluginError> {
        let raw: RawConfig = parse_config(config_json)?;
        let mut problems = Vec::new();

        if !is_numeric_id(&raw.publisher_id) {
            problems.push(format!(
                "publisher_id: {:?} is not an Awin publisher id (digits only)",
                raw.publisher_id
            ));
        }

        let mut advertisers = Vec::with_capacity(raw.advertisers.len());
        let mut domains: Vec<(String, usize)> = Vec::new();
        for (index, adv) in raw.advertisers.into_iter().enumerate() {
            let key = format!("advertisers[{index}]");
            if !is_numeric_id(&adv.id) {
                problems.push(format!(
                    "{key}.id: {:?} is not an Awin advertiser id (digits only)",
                    adv.id
                ));
            } else if let Some(first) = advertisers.iter().position(|a: &Advertiser| a.id == adv.id)
            {
                problems.push(format!(
                    "{key}.id: advertiser id {} is already configured at advertisers[{first}]",
                    adv.id
                ));
            }
            let name = adv.name.trim().to_owned();
            if name.is_empty() {
                problems.push(format!("{key}.name: must not be empty"));
            }
            if adv.domains.is_empty() {
                problems.push(format!("{key}.domains: must list at least one domain"));
            }
            let mut own_domains = Vec::with_capacity(adv.domains.len());
            for (d_index, written) in adv.domains.iter().enumerate() {
                let d_key = format!("{key}.domains[{d_index}]");
                match normalise_domain(written) {
                    Ok(domain) => {
                        if let Some((_, owner)) = domains.iter().find(|(d, _)| *d == domain) {
                            let owner_desc = if *owner == index {
                                "this advertiser".to_owned()
                            } else {
                                format!("advertisers[{owner}]")
                            };
                            problems.push(format!(
                                "{d_key}: duplicate domain {domain}, already listed for {owner_desc}"
                            ));
                        } else {
                            domains.push((domain.clone(), index));
                            own_domains.push(domain);
                        }
                    }
                    Err(why) => problems.push(format!("{d_key}: {written:?} {why}")),
                }
            }
            let default_landing = match adv.default_landing.as_deref().map(parse_landing) {
                None => None,
                Some(Ok(url)) => Some(url),
                Some(Err(why)) => {
                    problems.push(format!("{key}.default_landing: {why}"));
                    None
                }
            };
            advertisers.push(Advertiser {
                id: adv.id,
                name,
                domains: own_domains,
                deeplinks: adv.deeplinks,
                default_landing,
                approved: adv.approved,
            });
        }

        if !problems.is_empty() {
            return Err(PluginError::config(problems.join("; ")));
        }
        // Longest first: `shop.example.com` beats `example.com`.
        domains.sort_by_key(|(domain, _)| std::cmp::Reverse(domain.len()));
        Ok(Config {
            publisher_id: raw.publisher_id,
            advertisers,
            domains,
            subid_max_len: raw.subid_max_len.unwrap_or(DEFAULT_SUBID_MAX_LEN),
        })
    }
}

/// Whether `s` is a plausible Awin id: 1 to 20 ASCII digits.
fn is_numeric_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a `default_landing` URL: an absolute http or https URL.
fn parse_landing(written: &str) -> Result<Url, String> {
    let url = Url::parse(written.trim()).map_err(|e| format!("{written:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{written:?} is not an http or https URL"));
    }
    Ok(url)
}
