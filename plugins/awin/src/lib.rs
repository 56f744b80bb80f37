//! The Awin provider plugin for linkwright.
//!
//! Turns a link to an advertiser's site into an Awin tracked link,
//!
//! ```text
//! https://www.awin1.com/cread.php?awinmid=<advertiser>&awinaffid=<publisher>
//!     [&campaign=…][&clickref2=…..&clickref6=…][&ued=<destination>]&clickref=<click sub-ID>
//! ```
//!
//! with the per-click sub-ID in `clickref`, the only click reference Awin's
//! Click Reference report shows. The advertiser is found by the URL's host
//! among the configured advertisers' domains (the most specific domain wins),
//! or forced with the link parameter `advertiser` (an `awinmid`).
//!
//! A link to an advertiser's home page is not a deep link: it goes to the
//! advertiser's configured `default_landing`, or without `ued` to Awin's
//! default for the advertiser. Any other page is a deep link, refused for
//! advertisers that do not permit them.
//!
//! Configuration (the provider's table in the host config):
//!
//! ```toml
//! publisher_id = "123456"
//! subid_max_len = 50          # optional; 0 for no limit
//!
//! [[advertisers]]
//! id = "5678"
//! name = "Example Shop"
//! domains = ["example.com", "example.co.uk"]
//! deeplinks = true            # optional, default true
//! approved = true             # optional, default true
//! default_landing = "https://www.example.com/sale"   # optional
//! ```
#![forbid(unsafe_code)]

mod config;
use linkwright_plugin_sdk::input;

use linkwright_plugin_sdk::{
    BuildRequest, PluginError, Provider, Status, SubIdEncoding, Template, export_plugin,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use crate::config::{Advertiser, Config};
use linkwright_plugin_sdk::input::strip_www;

/// Everything but the unreserved characters `A-Za-z0-9-._~`: what a value
/// must escape to be one URL query component.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The link parameters passed through to Awin, in the order they appear in
/// the tracked link. `clickref` is not among them: the click sub-ID owns it.
const PASSED_PARAMS: [&str; 6] = [
    "campaign",
    "clickref2",
    "clickref3",
    "clickref4",
    "clickref5",
    "clickref6",
];

/// The Awin provider: one publisher account and its advertisers.
#[derive(Debug)]
pub struct Awin {
    config: Config,
}

impl Awin {
    /// The advertiser serving `host`, the one with the longest matching
    /// domain.
    fn advertiser_for_host(&self, host: &str) -> Option<&Advertiser> {
        self.config
            .domains
            .iter()
            .find(|(domain, _)| input::host_matches(host, domain))
            .and_then(|(_, index)| self.config.advertisers.get(*index))
    }

    /// The advertiser the request asks for with its `advertiser` parameter;
    /// the URL's host must be one of its domains.
    fn forced_advertiser(&self, id: &str, host: Option<&str>) -> Result<&Advertiser, PluginError> {
        let id = id.trim();
        let advertiser = self
            .config
            .advertisers
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| {
                PluginError::new(
                    Status::UnsupportedHost,
                    format!("no Awin advertiser with id {id} is configured"),
                )
            })?;
        let serves =
            host.is_some_and(|h| advertiser.domains.iter().any(|d| input::host_matches(h, d)));
        if !serves {
            return Err(PluginError::invalid_input(format!(
                "{} is not a domain of Awin advertiser {} ({}); its domains are {}",
                host.unwrap_or("the URL's host"),
                advertiser.name,
                advertiser.id,
                advertiser.domains.join(", ")
            )));
        }
        Ok(advertiser)
    }
}

/// Whether `url` is the advertiser's home page: the root of one of its
/// domains (with or without `www.`), with no query. A subdomain's root
/// (`blog.example.com/`) is a page of its own, so a deep link.
fn is_home_page(url: &Url, host: &str, advertiser: &Advertiser) -> bool {
    let root = matches!(url.path(), "" | "/");
    let no_query = url.query().is_none_or(str::is_empty);
    let own_domain = advertiser.domains.iter().any(|d| d == strip_www(host));
    root && no_query && own_domain
}

impl Provider for Awin {
    const NAME: &'static str = "awin";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config_json: &str) -> Result<Self, PluginError> {
        Ok(Awin {
            config: Config::parse(config_json)?,
        })
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Template, PluginError> {
        let url = input::parse_http_url(request.input)?;
        let host = input::domain_of(&url);
        let advertiser = match request.param("advertiser") {
            Some(id) => self.forced_advertiser(id, host)?,
            None => host
                .and_then(|h| self.advertiser_for_host(h))
                .ok_or_else(PluginError::declined)?,
        };

        if !advertiser.approved {
            return Err(PluginError::new(
                Status::NotApproved,
                format!(
                    "publisher {} is not approved for advertiser {} ({})",
                    self.config.publisher_id, advertiser.name, advertiser.id
                ),
            ));
        }

        let home_page = host.is_some_and(|h| is_home_page(&url, h, advertiser));
        let ued = if home_page {
            advertiser.default_landing.as_ref().map(Url::as_str)
        } else if advertiser.deeplinks {
            Some(url.as_str())
        } else {
            return Err(PluginError::new(
                Status::DeeplinkNotPermitted,
                format!(
                    "advertiser {} ({}) does not permit deep links; link to its home page instead",
                    advertiser.name, advertiser.id
                ),
            ));
        };

        let mut prefix = format!(
            "https://www.awin1.com/cread.php?awinmid={}&awinaffid={}",
            advertiser.id, self.config.publisher_id
        );
        for name in PASSED_PARAMS {
            if let Some(value) = request.param(name).filter(|v| !v.is_empty()) {
                prefix.push('&');
                prefix.push_str(name);
                prefix.push('=');
                prefix.extend(utf8_percent_encode(value, COMPONENT));
            }
        }
        if let Some(ued) = ued {
            prefix.push_str("&ued=");
            prefix.extend(utf8_percent_encode(ued, COMPONENT));
        }
        prefix.push_str("&clickref=");

        Ok(Template {
            prefix,
            suffix: String::new(),
            destination: url.into(),
            marketplace: Some(advertiser.id.clone()),
            subid_max_len: self.config.subid_max_len,
            subid_encoding: SubIdEncoding::Alphanumeric,
        })
    }

    fn describe(&self) -> String {
        let advertisers: Vec<serde_json::Value> = self
            .config
            .advertisers
            .iter()
            .map(|a| {
                serde_json::json!({
                    "id": a.id,
                    "name": a.name,
                    "domains": a.domains,
                    "deeplinks": a.deeplinks,
                    "approved": a.approved,
                })
            })
            .collect();
        serde_json::json!({
            "publisher_id": self.config.publisher_id,
            "advertisers": advertisers,
            // Where its tracked links point (the host checks every template
            // against this).
            "link_hosts": ["www.awin1.com"],
        })
        .to_string()
    }
}

export_plugin!(Awin);
