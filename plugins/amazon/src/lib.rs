//! The `amazon` provider plugin: Amazon Associates links for the 22 Amazon
//! marketplaces.
//!
//! The plugin reads the ASIN from an Amazon product URL (every path shape in
//! common use: `/dp/<ASIN>`, `/<slug>/dp/<ASIN>/ref=…`, `/gp/product/<ASIN>`,
//! `/gp/aw/d/<ASIN>`, `/exec/obidos/ASIN/<ASIN>`, `/o/ASIN/<ASIN>`) or takes a
//! bare ASIN, and builds the canonical tracked link
//!
//! ```text
//! https://www.amazon.<tld>/dp/<ASIN>?tag=<store-id>&ascsubtag=<sub-id>
//! ```
//!
//! with the sub-ID slot at the very end. Every query parameter of the input
//! (someone else's `tag`, `ascsubtag`, `linkCode`, `ref_`, …) is dropped, and no
//! Amazon Attribution `maas` tag is ever emitted: since December 2024 a link
//! may carry only one commission tag.
//!
//! Configuration (the provider's table of the host config, as JSON):
//!
//! ```json
//! {"tags": {"amazon.com": "linkwright-20", "amazon.co.uk": "linkwright-21"},
//!  "default_marketplace": "amazon.com", "subid_max_len": 64}
//! ```
//!
//! A link may override the store ID with its `tag` parameter. With a
//! `search` parameter (a product title), the template is a tracked search on
//! the marketplace (`https://www.amazon.<tld>/s?k=<title>&tag=…&ascsubtag=`):
//! where localization sends a shopper whose store does not sell the product.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use linkwright_plugin_sdk::{
    BuildRequest, PluginError, Provider, Status, SubIdEncoding, Template, export_plugin,
    parse_config,
};
use serde::Deserialize;
use url::Url;

pub use linkwright_model::amazon::{MARKETPLACES, SHORT_HOSTS};
use linkwright_model::amazon::{is_asin, marketplace_index};

/// Subdomains of a marketplace domain that serve the store.
const STORE_SUBDOMAINS: [&str; 3] = ["www.", "smile.", "m."];

/// Path keywords that precede the ASIN, compared case-insensitively.
const PRODUCT_PATHS: [&[&str]; 6] = [
    &["dp"],
    &["gp", "product"],
    &["gp", "aw", "d"],
    &["exec", "obidos", "asin"],
    &["exec", "obidos", "tg", "detail", "-"],
    &["o", "asin"],
];

/// The sub-ID length limit when the configuration sets none. Amazon publishes
/// no limit; values seen in the wild stay under about 60 characters.
const DEFAULT_SUBID_MAX_LEN: u32 = 64;

/// The configuration as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Store ID (Associates tracking tag) per marketplace domain, e.g.
    /// `{"amazon.com": "linkwright-20"}`. May be empty when every link
    /// carries its own `tag` parameter.
    tags: BTreeMap<String, String>,
    /// The marketplace for a bare ASIN whose request names none
    /// (`amazon.com` by default).
    #[serde(default)]
    default_marketplace: Option<String>,
    /// The longest sub-ID to put in `ascsubtag` (64 by default; 0: no limit).
    #[serde(default)]
    subid_max_len: Option<u32>,
}

/// The Amazon Associates provider.
#[derive(Debug)]
pub struct Amazon {
    /// Store ID per marketplace, indexed like [`MARKETPLACES`].
    tags: [Option<Box<str>>; MARKETPLACES.len()],
    /// Index into [`MARKETPLACES`] of the marketplace for bare ASINs.
    default_marketplace: usize,
    /// The sub-ID length limit handed to the host.
    subid_max_len: u32,
}

fn known_marketplaces() -> String {
    MARKETPLACES.join(", ")
}

/// Whether a store ID is non-empty and only `[A-Za-z0-9_-]`.
fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The error for a malformed ASIN, quoting (at most 40 characters of) it.
fn invalid_asin(value: &str) -> PluginError {
    let shown = match value.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}…", &value[..end]),
        None => format!("{value:?}"),
    };
    PluginError::invalid_product_id(format!("{shown} is not a valid ASIN: 10 letters or digits"))
}

impl Amazon {
    /// Validates the raw configuration, reporting every problem at once.
    fn compile(raw: RawConfig) -> Result<Self, PluginError> {
        let mut problems = Vec::new();
        let mut tags: [Option<Box<str>>; MARKETPLACES.len()] = Default::default();
        for (key, tag) in &raw.tags {
            let Some(index) = marketplace_index(key) else {
                problems.push(format!(
                    "tags.{key:?}: unknown marketplace; must be one of {}",
                    known_marketplaces()
                ));
                continue;
            };
            if tag.trim().is_empty() {
                problems.push(format!("tags.{key:?}: the store ID is empty"));
            } else if !is_valid_tag(tag) {
                problems.push(format!(
                    "tags.{key:?}: store ID {tag:?} may hold only letters, digits, '-' and '_'"
                ));
            } else if tags[index].is_some() {
                problems.push(format!(
                    "tags.{key:?}: marketplace {} is configured twice",
                    MARKETPLACES[index]
                ));
            } else {
                tags[index] = Some(tag.as_str().into());
            }
        }
        let default_marketplace = match raw.default_marketplace.as_deref() {
            None => Some(0),
            Some(name) => {
                let index = marketplace_index(name);
                if index.is_none() {
                    problems.push(format!(
                        "default_marketplace: unknown marketplace {name:?}; must be one of {}",
                        known_marketplaces()
                    ));
                }
                index
            }
        };
        match default_marketplace {
            Some(default_marketplace) if problems.is_empty() => Ok(Amazon {
                tags,
                default_marketplace,
                subid_max_len: raw.subid_max_len.unwrap_or(DEFAULT_SUBID_MAX_LEN),
            }),
            _ => Err(PluginError::config(problems.join("; "))),
        }
    }

    /// The marketplace and ASIN of a bare (non-URL) input.
    fn parse_bare<'a>(
        &self,
        input: &'a str,
        marketplace: Option<&str>,
    ) -> Result<(usize, &'a str), PluginError> {
        if !is_asin(input) {
            let asin_attempt = (8..=14).contains(&input.len())
                && !input
                    .bytes()
                    .any(|b| matches!(b, b'.' | b'/' | b':') || b.is_ascii_whitespace());
            return Err(if asin_attempt {
                invalid_asin(input)
            } else {
                PluginError::invalid_input(format!(
                    "{input:?} is neither an http(s) Amazon URL nor a 10-character ASIN"
                ))
            });
        }
        let index = match marketplace.map(str::trim).filter(|m| !m.is_empty()) {
            None => self.default_marketplace,
            Some(name) => marketplace_index(name).ok_or_else(|| {
                PluginError::invalid_input(format!(
                    "unknown marketplace {name:?}: must be one of {}",
                    known_marketplaces()
                ))
            })?,
        };
        Ok((index, input))
    }

    /// The marketplace and ASIN of a URL input.
    fn parse_url(url: &Url) -> Result<(usize, &str), PluginError> {
        let host = url.host_str().unwrap_or_default();
        let host = host.strip_suffix('.').unwrap_or(host);
        let index = match STORE_SUBDOMAINS
            .iter()
            .find_map(|sub| host.strip_prefix(sub))
            .and_then(marketplace_index)
            .or_else(|| marketplace_index(host))
        {
            Some(index) => index,
            None if SHORT_HOSTS.contains(&host) => {
                return Err(PluginError::new(
                    Status::NeedsExpansion,
                    format!(
                        "{host} is an Amazon short link: it must be expanded first \
                         (follow its redirect) to read the product's ASIN"
                    ),
                ));
            }
            None => {
                return Err(
                    match MARKETPLACES
                        .iter()
                        .find(|m| host.strip_suffix(*m).is_some_and(|sub| sub.ends_with('.')))
                    {
                        // Another Amazon service (aws., music., sellercentral., …).
                        Some(_) => PluginError::not_a_product_url(format!(
                            "{host} is not an Amazon store host"
                        )),
                        None => PluginError::declined(),
                    },
                );
            }
        };
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        for start in 0..segments.len() {
            for keywords in PRODUCT_PATHS {
                let Some(candidate) = segments.get(start..start + keywords.len()) else {
                    continue;
                };
                if candidate
                    .iter()
                    .zip(keywords)
                    .all(|(segment, keyword)| segment.eq_ignore_ascii_case(keyword))
                {
                    let asin = segments
                        .get(start + keywords.len())
                        .copied()
                        .unwrap_or_default();
                    return if is_asin(asin) {
                        Ok((index, asin))
                    } else {
                        Err(invalid_asin(asin))
                    };
                }
            }
        }
        Err(PluginError::not_a_product_url(format!(
            "{} is not an Amazon product page: expected a path such as /dp/<ASIN> or \
             /gp/product/<ASIN>",
            url.as_str()
        )))
    }

    /// The canonical tracked template for an ASIN on a marketplace.
    fn template(&self, index: usize, asin: &str, tag: &str) -> Template {
        let mut path = String::with_capacity(14);
        path.push_str("/dp/");
        path.extend(asin.chars().map(|c| c.to_ascii_uppercase()));
        self.tracked(index, &path, '?', tag)
    }

    /// The tracked template of a page of a marketplace: the store's URL
    /// with `path` (which may carry a query: then `joiner` is `&`), then
    /// the store ID and the sub-ID slot at the very end.
    fn tracked(&self, index: usize, path: &str, joiner: char, tag: &str) -> Template {
        let domain = MARKETPLACES[index];
        let mut destination = String::with_capacity(12 + domain.len() + path.len());
        destination.push_str("https://www.");
        destination.push_str(domain);
        destination.push_str(path);
        let mut prefix = String::with_capacity(destination.len() + tag.len() + 16);
        prefix.push_str(&destination);
        prefix.push(joiner);
        prefix.push_str("tag=");
        prefix.push_str(tag);
        prefix.push_str("&ascsubtag=");
        Template {
            prefix,
            suffix: String::new(),
            destination,
            marketplace: Some(domain.to_owned()),
            subid_max_len: self.subid_max_len,
            subid_encoding: SubIdEncoding::UrlSafe,
        }
    }
}

/// Longest search text a search template carries, in bytes.
const MAX_SEARCH_LEN: usize = 200;

impl Amazon {
    /// A tracked search on a marketplace (`/s?k=…`): where localization
    /// sends a shopper whose store does not sell the product (the link's
    /// `search` parameter holds the product's title).
    fn search_template(
        &self,
        index: usize,
        query: &str,
        tag: &str,
    ) -> Result<Template, PluginError> {
        let query = query.trim();
        if query.is_empty() || query.len() > MAX_SEARCH_LEN {
            return Err(PluginError::invalid_input(format!(
                "search parameter must hold 1 to {MAX_SEARCH_LEN} bytes"
            )));
        }
        let mut path = String::with_capacity(5 + query.len() * 3);
        path.push_str("/s?k=");
        path.extend(url::form_urlencoded::byte_serialize(query.as_bytes()));
        Ok(self.tracked(index, &path, '&', tag))
    }
}

impl Provider for Amazon {
    const NAME: &'static str = "amazon";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config_json: &str) -> Result<Self, PluginError> {
        Amazon::compile(parse_config(config_json)?)
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Template, PluginError> {
        let input = request.input.trim();
        let is_url = ["http://", "https://"].iter().any(|scheme| {
            input
                .get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        });
        let url;
        let (index, asin) = if is_url {
            url = Url::parse(input)
                .map_err(|e| PluginError::invalid_input(format!("not a valid URL: {e}")))?;
            Amazon::parse_url(&url)?
        } else {
            self.parse_bare(input, request.marketplace)?
        };
        let tag = match request.param("tag") {
            Some(tag) if is_valid_tag(tag) => tag,
            Some(tag) => {
                return Err(PluginError::invalid_input(format!(
                    "tag parameter {tag:?} must be a non-empty store ID of letters, digits, \
                     '-' and '_'"
                )));
            }
            None => self.tags[index].as_deref().ok_or_else(|| {
                PluginError::new(
                    Status::MarketplaceNotConfigured,
                    format!(
                        "no store ID configured for marketplace {}: add it under tags or \
                         give the link a tag parameter",
                        MARKETPLACES[index]
                    ),
                )
            })?,
        };
        match request.param("search") {
            Some(query) => self.search_template(index, query, tag),
            None => Ok(self.template(index, asin, tag)),
        }
    }

    fn describe(&self) -> String {
        let marketplaces: Vec<&str> = MARKETPLACES
            .iter()
            .zip(&self.tags)
            .filter(|(_, tag)| tag.is_some())
            .map(|(domain, _)| *domain)
            .collect();
        serde_json::json!({
            "marketplaces": marketplaces,
            "default_marketplace": MARKETPLACES[self.default_marketplace],
            "short_hosts": SHORT_HOSTS,
            "subid_max_len": self.subid_max_len,
            // Where its tracked links point (the host checks every template
            // against this): the marketplaces, with their subdomains.
            "link_hosts": MARKETPLACES,
        })
        .to_string()
    }
}

export_plugin!(Amazon);
