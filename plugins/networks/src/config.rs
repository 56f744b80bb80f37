//! The instance configuration: the raw serde shape and its validation into
//! the typed [`Config`] the provider serves from.

use linkwright_plugin_sdk::{PluginError, SubIdEncoding, input, parse_config};
use serde::Deserialize;
use url::Url;

use crate::pattern::{self, Part, Placeholder};

/// The configuration as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The network's label (`rakuten`), reported as the link's marketplace:
    /// ASCII letters, digits, `-`, `_` and `.`.
    network: String,
    /// The advertiser destination hosts this instance tracks; each also
    /// matches its subdomains. A leading `*.` or `www.` is ignored.
    hosts: Vec<String>,
    /// A tracked-URL template with `{url}` (the destination, percent-encoded
    /// as a component), `{url_raw}` (the destination as it is) and `{subid}`
    /// (the click sub-ID, exactly once). Exclusive with `append`.
    #[serde(default)]
    template: Option<String>,
    /// A query string appended to the destination itself (eBay Partner
    /// Network style), with `{subid}` exactly once; parameters of the same
    /// names already in the destination are removed first. Exclusive with
    /// `template`.
    #[serde(default)]
    append: Option<String>,
    /// The longest sub-ID the network keeps; greater than 0.
    subid_max_len: u32,
    /// The characters the network's sub-ID may hold: `alphanumeric` (the
    /// default) or `url_safe` (adds `-` and `_`).
    #[serde(default)]
    subid_encoding: RawEncoding,
}

/// `subid_encoding` as written.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawEncoding {
    /// `[A-Za-z0-9]`.
    #[default]
    Alphanumeric,
    /// `[A-Za-z0-9_-]`.
    UrlSafe,
}

/// A validated configuration.
#[derive(Debug)]
pub(crate) struct Config {
    /// The network's label.
    pub(crate) network: String,
    /// Normalised hosts: lower case, no `*.`/`www.`, no trailing dot.
    pub(crate) hosts: Vec<String>,
    /// How links are made.
    pub(crate) style: Style,
    /// The longest sub-ID, greater than 0.
    pub(crate) subid_max_len: u32,
    /// The sub-ID's characters.
    pub(crate) subid_encoding: SubIdEncoding,
}

/// How a network's tracked link is made from the destination.
#[derive(Debug)]
pub(crate) enum Style {
    /// A URL template, as written and parsed.
    Template {
        /// The template as configured.
        written: String,
        /// Its parts.
        parts: Vec<Part>,
    },
    /// A query string appended to the destination.
    Append {
        /// The query string as configured (without a leading `?`).
        written: String,
        /// Its parts (text and the `{subid}` slot).
        parts: Vec<Part>,
        /// The decoded names of the appended parameters, removed from the
        /// destination first.
        names: Vec<String>,
    },
}

impl Config {
    /// Parses and validates the JSON configuration, reporting every problem
    /// at once, each with its key.
    pub(crate) fn parse(config_json: &str) -> Result<Config, PluginError> {
        let raw: RawConfig = parse_config(config_json)?;
        let mut problems = Vec::new();

        let network = raw.network.trim().to_owned();
        if network.is_empty() {
            problems.push("network: must not be empty".to_owned());
        } else if !network
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            problems.push(format!(
                "network: {network:?} may hold only ASCII letters, digits, '-', '_' and '.'"
            ));
        }

        if raw.hosts.is_empty() {
            problems.push("hosts: must list at least one host".to_owned());
        }
        let mut hosts: Vec<String> = Vec::with_capacity(raw.hosts.len());
        for (index, written) in raw.hosts.iter().enumerate() {
            match normalise_host(written) {
                Ok(host) if hosts.contains(&host) => {
                    problems.push(format!("hosts[{index}]: duplicate host {host}"));
                }
                Ok(host) => hosts.push(host),
                Err(why) => problems.push(format!("hosts[{index}]: {written:?} {why}")),
            }
        }

        let style = match (raw.template, raw.append) {
            (Some(template), None) => match parse_template(template.trim()) {
                Ok(parts) => Some(Style::Template {
                    written: template.trim().to_owned(),
                    parts,
                }),
                Err(why) => {
                    problems.push(format!("template: {why}"));
                    None
                }
            },
            (None, Some(append)) => match parse_append(&append) {
                Ok(style) => Some(style),
                Err(why) => {
                    problems.push(format!("append: {why}"));
                    None
                }
            },
            (Some(_), Some(_)) => {
                problems.push("template, append: give exactly one of them, not both".to_owned());
                None
            }
            (None, None) => {
                problems.push(
                    "template, append: give exactly one of them (a URL template, or a query \
                     string to append to the destination)"
                        .to_owned(),
                );
                None
            }
        };

        if raw.subid_max_len == 0 {
            problems.push("subid_max_len: must be greater than 0".to_owned());
        }

        match style {
            Some(style) if problems.is_empty() => Ok(Config {
                network,
                hosts,
                style,
                subid_max_len: raw.subid_max_len,
                subid_encoding: match raw.subid_encoding {
                    RawEncoding::Alphanumeric => SubIdEncoding::Alphanumeric,
                    RawEncoding::UrlSafe => SubIdEncoding::UrlSafe,
                },
            }),
            _ => Err(PluginError::config(problems.join("; "))),
        }
    }
}

/// Parses a URL template and checks that it makes an http(s) URL.
fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let parts = pattern::parse(template, &Placeholder::ALL)?;
    let lower = template.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(format!("{template:?} must start with https:// or http://"));
    }
    // Expand with a sample destination and sub-ID: the result must parse.
    let (prefix, suffix) = pattern::expand(&parts, |p| match p {
        Placeholder::Url => "https%3A%2F%2Fexample.com%2F".to_owned(),
        _ => "https://example.com/".to_owned(),
    });
    let sample = format!("{prefix}SUBID{suffix}");
    match Url::parse(&sample) {
        Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(parts),
        Ok(_) => Err(format!("{template:?} has no host")),
        Err(e) => Err(format!(
            "{template:?} does not make a valid URL ({sample}: {e})"
        )),
    }
}

/// Parses an append-style query string: `name=value` pairs joined by `&`,
/// with `{subid}` once, in a value.
fn parse_append(append: &str) -> Result<Style, String> {
    let written = append.trim().trim_start_matches('?').to_owned();
    let parts = pattern::parse(&written, &[Placeholder::SubId])?;
    if written
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(format!(
            "{written:?} must be a query string without spaces or '#'; percent-encode them"
        ));
    }
    let mut names = Vec::new();
    for pair in written.split('&') {
        let Some((name, _)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not a name=value pair"));
        };
        if name.is_empty() || name.contains("{subid}") {
            return Err(format!(
                "{pair:?} needs a parameter name; {{subid}} goes in a value"
            ));
        }
        names.push(decode_name(name));
    }
    Ok(Style::Append {
        written,
        parts,
        names,
    })
}

/// A query parameter's name, percent-decoded, for comparing names.
pub(crate) fn decode_name(name: &str) -> String {
    percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .into_owned()
}

/// Turns a configured host into its matching form (see
/// [`input::normalise_domain`]), also accepting a leading `*.`.
fn normalise_host(written: &str) -> Result<String, &'static str> {
    let trimmed = written.trim();
    input::normalise_domain(trimmed.strip_prefix("*.").unwrap_or(trimmed))
}
