//! The query-parameter networks provider plugin for linkwright.
//!
//! One configurable provider for the many networks whose tracked link is a
//! fixed pattern around the destination and a sub-ID: Rakuten, Skimlinks,
//! Impact, CJ, eBay Partner Network and the like. The host config has one
//! `[[providers]]` entry per network (or per advertiser, where the pattern
//! names one), each using this plugin with its own configuration:
//!
//! ```toml
//! network = "rakuten"
//! hosts = ["shop.example"]          # destinations tracked; subdomains match
//! template = "https://click.linksynergy.com/deeplink?id=PUB&mid=123&murl={url}&u1={subid}"
//! subid_max_len = 72
//! subid_encoding = "alphanumeric"   # or "url_safe"; optional
//! ```
//!
//! A link is made in one of two styles:
//!
//! - `template`: a URL with `{url}` (the destination percent-encoded as one
//!   component), `{url_raw}` (the destination as it is, for networks that
//!   put it in the path) and `{subid}` (the click sub-ID slot, exactly once).
//! - `append`: a query string added to the destination itself, as eBay
//!   Partner Network does (`mkevt=1&…&customid={subid}`). Parameters of the
//!   same names already in the destination are removed first, so a visitor's
//!   or another publisher's values never override the sub-ID or campaign.
//!
//! The template is split at `{subid}` into the prefix and suffix the host
//! puts each click's sub-ID between.
#![forbid(unsafe_code)]

mod config;
use linkwright_plugin_sdk::input;
mod pattern;

use linkwright_plugin_sdk::{
    BuildRequest, PluginError, Provider, SubIdEncoding, Template, export_plugin,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::{Position, Url};

use crate::config::{Config, Style, decode_name};
use crate::pattern::{Part, Placeholder};

/// Everything but the unreserved characters `A-Za-z0-9-._~`: what a value
/// must escape to be one URL component.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A query-parameter network: one instance per `[[providers]]` entry.
#[derive(Debug)]
pub struct Networks {
    config: Config,
}

/// The template's prefix and suffix for a URL template.
fn expand_template(parts: &[Part], destination: &Url) -> (String, String) {
    pattern::expand(parts, |placeholder| match placeholder {
        Placeholder::Url => utf8_percent_encode(destination.as_str(), COMPONENT).to_string(),
        Placeholder::UrlRaw => destination.as_str().to_owned(),
        // The split point, never filled.
        Placeholder::SubId => String::new(),
    })
}

/// The template's prefix and suffix for an appended query string: the
/// destination without the parameters about to be appended, then the
/// appended ones, then the destination's fragment.
fn expand_append(parts: &[Part], names: &[String], destination: &Url) -> (String, String) {
    let mut prefix = destination[..Position::AfterPath].to_owned();
    prefix.push('?');
    for pair in destination.query().unwrap_or("").split('&') {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        if pair.is_empty() || names.contains(&decode_name(name)) {
            continue;
        }
        prefix.push_str(pair);
        prefix.push('&');
    }
    let (appended_prefix, mut suffix) = pattern::expand(parts, |_| String::new());
    prefix.push_str(&appended_prefix);
    if let Some(fragment) = destination.fragment() {
        suffix.push('#');
        suffix.push_str(fragment);
    }
    (prefix, suffix)
}

impl Networks {
    /// Where its tracked links point (the host checks every template
    /// against this): the template's own host, or, for an appended query
    /// string (or a template that starts with the destination), the hosts
    /// it tracks, with their subdomains.
    fn link_hosts(&self) -> Vec<String> {
        if let Style::Template { written, .. } = &self.config.style
            && !written.starts_with("{url")
        {
            let sample = written
                .replace("{url_raw}", "x")
                .replace("{url}", "x")
                .replace("{subid}", "x");
            if let Some(host) = url::Url::parse(&sample)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
            {
                return vec![host];
            }
        }
        self.config.hosts.clone()
    }
}

impl Provider for Networks {
    const NAME: &'static str = "networks";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config_json: &str) -> Result<Self, PluginError> {
        Ok(Networks {
            config: Config::parse(config_json)?,
        })
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Template, PluginError> {
        let mut url = input::parse_http_url(request.input)?;
        // User info is never part of a product URL; kept, it would make the
        // tracked link read `https://evil.example@shop.example/` (append
        // style puts it in the link itself). Dropping it cannot fail on an
        // http(s) URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let served = input::domain_of(&url).is_some_and(|host| {
            self.config
                .hosts
                .iter()
                .any(|tracked| input::host_matches(host, tracked))
        });
        if !served {
            return Err(PluginError::declined());
        }
        let (prefix, suffix) = match &self.config.style {
            Style::Template { parts, .. } => expand_template(parts, &url),
            Style::Append { parts, names, .. } => expand_append(parts, names, &url),
        };
        Ok(Template {
            prefix,
            suffix,
            destination: url.into(),
            marketplace: Some(self.config.network.clone()),
            subid_max_len: self.config.subid_max_len,
            subid_encoding: self.config.subid_encoding,
        })
    }

    fn describe(&self) -> String {
        let (style, pattern) = match &self.config.style {
            Style::Template { written, .. } => ("template", written),
            Style::Append { written, .. } => ("append", written),
        };
        let encoding = match self.config.subid_encoding {
            SubIdEncoding::Alphanumeric => "alphanumeric",
            SubIdEncoding::UrlSafe => "url_safe",
        };
        serde_json::json!({
            "network": self.config.network,
            "hosts": self.config.hosts,
            style: pattern,
            "subid_max_len": self.config.subid_max_len,
            "subid_encoding": encoding,
            "link_hosts": self.link_hosts(),
        })
        .to_string()
    }
}

export_plugin!(Networks);
