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

/// The URL's domain in matching form (lower case, without the one trailing
/// dot a fully qualified name may have); `None` for IP addresses, which no
/// domain matches, and for names with an empty label (`ebay.com..`,
/// `.ebay.com`, `a..b`), which name no host.
pub fn domain_of(url: &Url) -> Option<&str> {
    match url.host() {
        Some(Host::Domain(domain)) => {
            let domain = domain.strip_suffix('.').unwrap_or(domain);
            (!domain.split('.').any(str::is_empty)).then_some(domain)
        }
        _ => None,
    }
}

/// Whether `host` is `domain` or one of its subdomains.
pub fn host_matches(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// Turns a configured domain into its matching form: a valid host name in
/// lower case (IDNA-encoded), without a trailing dot or a leading `www.`.
/// The error says what is wrong, to follow the config key in a message.
pub fn normalise_domain(written: &str) -> Result<String, &'static str> {
    let trimmed = written.trim();
    if trimmed.is_empty() {
        return Err("is empty");
    }
    if trimmed.contains("://") {
        return Err("is a URL; give the host name only, like example.com");
    }
    if trimmed.chars().any(|c| {
        c.is_whitespace() || matches!(c, '/' | ':' | '?' | '#' | '@' | '*' | '[' | ']' | '\\')
    }) {
        return Err("is not a host name; give the host name only, like example.com");
    }
    let url = Url::parse(&format!("http://{trimmed}/")).map_err(|_| "is not a valid host name")?;
    let host = match url.host() {
        Some(Host::Domain(host)) => host.trim_end_matches('.'),
        _ => return Err("is not a domain name"),
    };
    if host.is_empty() {
        return Err("is not a valid host name");
    }
    Ok(strip_www(host).to_owned())
}

/// `www.example.com` → `example.com`; a bare `www.com` stays as it is.
pub fn strip_www(host: &str) -> &str {
    match host.strip_prefix("www.") {
        Some(rest) if rest.contains('.') => rest,
        _ => host,
    }
}
