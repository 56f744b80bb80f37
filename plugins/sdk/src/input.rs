//! Helpers for plugins that read URL inputs: parse an http(s) URL (declining
//! anything else so another provider may take it) and match hosts.

use crate::PluginError;
use url::{Host, Url};

/// Parses the input as an http or https URL.
///
/// Input that is not an http(s) URL at all (a bare product id, another
/// scheme) is declined, so that another provider may take it; input that
/// claims the http(s) scheme but does not parse is [`InvalidInput`].
///
/// [`InvalidInput`]: crate::Status::InvalidInput
pub fn parse_http_url(input: &str) -> Result<Url, PluginError> {
    let input = input.trim();
    let Some((scheme, _)) = input.split_once(':') else {
        return Err(PluginError::declined());
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(PluginError::declined());
    }
    let url = Url::parse(input)
        .map_err(|e| PluginError::invalid_input(format!("malformed URL {input:?}: {e}")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(PluginError::invalid_input(format!(
            "URL {input:?} has no host"
        )));
    }
    Ok(url)
}

/// The URL's domain in matching form (lower case, no trailing dot); `None`
/// for IP addresses, which no domain matches.
pub fn domain_of(url: &Url) -> Option<&str> {
    match url.host() {
        Some(Host::Domain(domain)) => Some(domain.trim_end_matches('.')),
        _ => None,
    }
}

/// Whether `host` is `domain` or one of its subdomains.
pub fn host_matches(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}
