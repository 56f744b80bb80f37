//! Expanding Amazon short links (`amzn.to`, `amzn.eu`, `a.co`).
//!
//! Provider plugins answer "needs expansion" for a short link: the ASIN is not
//! in it, only behind its redirect. An [`Expander`] follows that redirect chain
//! hop by hop and returns the first `Location` that lands on a target host (an
//! Amazon marketplace); the caller then routes that URL like any other.
//!
//! This is outbound HTTP driven by user input, so it is fenced in (see
//! docs/ARCHITECTURE.md, "Security"):
//!
//! - only `http`/`https`, and only hosts on two allow-lists: a hop is fetched
//!   only if its host is a short host, and the chain stops at the first
//!   target host, whose page is never fetched; anything else (another host,
//!   an IP address, credentials or an explicit port in the URL) is refused;
//! - redirects are followed by this module, never by the HTTP client, and at
//!   most [`ExpandConfig::max_hops`] of them;
//! - every request has a timeout covering connect and the whole exchange;
//! - bodies are never needed: at most [`ExpandConfig::max_body_bytes`] of one
//!   is read (only to let a keep-alive connection be reused) before it is
//!   dropped;
//! - transient failures (timeouts, connection errors, 408, 429, 5xx) are
//!   retried a bounded number of times with doubling backoff, then reported as
//!   [`ExpandError::Unavailable`], which is retryable.
//!
//! Error messages name the short link and the hosts involved but never the
//! address actually connected to (see [`ExpandConfig::upstream_override`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HOST, HeaderValue, LOCATION};
use url::{Host, Url};

use crate::retry::{Backoff, Retries};
use linkwright_model::amazon::{
    MARKETPLACES as DEFAULT_TARGET_HOSTS, SHORT_HOSTS as DEFAULT_SHORT_HOSTS,
};

/// The User-Agent sent with every expansion request.
const USER_AGENT: &str = concat!("linkwright/", env!("CARGO_PKG_VERSION"));

/// Settings for outbound short-link expansion.
#[derive(Debug, Clone)]
pub struct ExpandConfig {
    /// Hosts whose links are expanded, and the only hosts ever fetched.
    /// Matched case-insensitively, with or without a `www.` prefix.
    /// Default: `amzn.to`, `amzn.eu`, `a.co`.
    pub short_hosts: Vec<String>,
    /// Where an expansion may land: a `Location` on one of these domains or
    /// any of their subdomains ends the chain and is returned (never
    /// fetched). Default: every Amazon marketplace domain (`amazon.com`,
    /// `amazon.co.uk`, … all 22).
    pub target_hosts: Vec<String>,
    /// The most redirects followed (and so requests made, retries aside) for
    /// one expansion; a longer chain is refused. Default 5; at least 1.
    pub max_hops: u32,
    /// Time limit of one request: connect plus the whole exchange. Default
    /// 5 s; must not be zero.
    pub timeout: Duration,
    /// The most bytes of a response body ever read. Bodies are never needed;
    /// a small one is read only so its connection can be reused. Default
    /// 64 KiB.
    pub max_body_bytes: usize,
    /// How many times a transient failure (timeout, connection error, 408,
    /// 429, 5xx) of one request is retried before giving up. Default 2.
    pub retries: u32,
    /// The wait before the first retry of a request; it doubles for each
    /// further retry. Default 200 ms.
    pub backoff: Duration,
    /// Test/ops override: send requests for a short host to this base URL
    /// instead (e.g. `{"amzn.to": "http://127.0.0.1:PORT"}`); the path and
    /// query are kept (appended to the base URL's path) and the `Host` header
    /// stays the short host. Keys must be short hosts; values `http(s)` URLs
    /// without credentials, query or fragment. Default: empty.
    pub upstream_override: HashMap<String, String>,
}

impl Default for ExpandConfig {
    fn default() -> Self {
        ExpandConfig {
            short_hosts: DEFAULT_SHORT_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            target_hosts: DEFAULT_TARGET_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            max_hops: 5,
            timeout: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            retries: 2,
            backoff: Duration::from_millis(200),
            upstream_override: HashMap::new(),
        }
    }
}

/// Why a short link could not be expanded.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    /// Not a short link of an allowed host (caller bug or bad input).
    #[error("not a short link of an allowed host: {0}")]
    NotShortLink(String),
    /// The short link does not exist (404/410 from the short host) or
    /// redirects nowhere useful (no redirect, no `Location`, an unparsable
    /// `Location`).
    #[error("short link not found: {0}")]
    NotFound(String),
    /// The redirect chain left the allow-list (e.g. to a non-Amazon host, an
    /// IP address or a non-http scheme) or is too long.
    #[error("short link expansion refused: {0}")]
    Disallowed(String),
    /// The short-link service is unavailable: timeout, connection failure,
    /// 5xx, 408, 429 (after retries), or it refused the request with another
    /// client-error status (not retried here). Retryable.
    #[error("short-link service unavailable: {0}")]
    Unavailable(String),
}

impl ExpandError {
    /// Whether the same expansion may succeed later (only
    /// [`ExpandError::Unavailable`]).
    pub fn retryable(&self) -> bool {
        matches!(self, ExpandError::Unavailable(_))
    }
}

/// Why an [`Expander`] could not be built from its [`ExpandConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ExpandConfigError {
    /// The settings are invalid; every problem found, each naming its field.
    #[error("invalid short-link expansion settings: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the short-link expansion HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Follows short-link redirects to the product URL they point at.
///
/// Cheap to clone (the HTTP client and settings are shared). The worst-case
/// duration of one [`Expander::expand`] is about
/// `max_hops × (retries + 1) × timeout` plus the backoffs.
#[derive(Debug, Clone)]
pub struct Expander {
    /// Built once: no automatic redirects, timeouts, our User-Agent.
    client: reqwest::Client,
    /// The validated settings.
    settings: Arc<Settings>,
}

/// [`ExpandConfig`] validated and normalised.
#[derive(Debug)]
struct Settings {
    /// Lowercase ASCII host names, no trailing dot.
    short_hosts: Vec<String>,
    /// Lowercase ASCII domain names, no trailing dot.
    target_hosts: Vec<String>,
    max_hops: u32,
    max_body_bytes: usize,
    retries: u32,
    backoff: Duration,
    /// Base URL per normalised short host.
    upstream_override: HashMap<String, Url>,
}

/// How one request attempt ended, when it did not yield a `Location`.
enum Failure {
    /// Worth retrying; the text says what happened.
    Transient(String),
    /// Final for this expansion.
    Final(ExpandError),
}

impl Expander {
    /// Validates `config` and builds the HTTP client (once, for every
    /// expansion).
    pub fn new(config: ExpandConfig) -> Result<Self, ExpandConfigError> {
        let timeout = config.timeout;
        let settings = Settings::compile(config).map_err(ExpandConfigError::Invalid)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .referer(false)
            .build()
            .map_err(ExpandConfigError::Client)?;
        Ok(Expander {
            client,
            settings: Arc::new(settings),
        })
    }

    /// Whether `input` is an `http(s)` URL on one of the short hosts
    /// (case-insensitive, `www.` prefix tolerated), without credentials or
    /// an explicit non-default port.
    pub fn is_short_link(&self, input: &str) -> bool {
        self.short_url(input).is_some()
    }

    /// Follows the redirects of the short link `input` hop by hop while they
    /// stay on short hosts, and returns the first `Location` on a target host
    /// as an absolute URL (relative `Location`s are resolved against the URL
    /// that answered). The target page itself is never fetched.
    ///
    /// Each hop is a `GET` whose body is dropped after at most
    /// `max_body_bytes`; transient failures are retried with doubling backoff.
    pub async fn expand(&self, input: &str) -> Result<String, ExpandError> {
        let Some(mut current) = self.short_url(input) else {
            return Err(ExpandError::NotShortLink(input.to_owned()));
        };
        for _ in 0..self.settings.max_hops {
            let location = self.fetch_location(&current).await?;
            let next = current.join(&location).map_err(|e| {
                ExpandError::NotFound(format!(
                    "{current} redirects to an invalid Location `{location}`: {e}"
                ))
            })?;
            match self.classify_hop(&current, &next)? {
                Hop::Target => return Ok(next.into()),
                Hop::Short => current = next,
            }
        }
        Err(ExpandError::Disallowed(format!(
            "{input}: more than {} redirects",
            self.settings.max_hops
        )))
    }

    /// `input` parsed, if it is an allowed short link.
    fn short_url(&self, input: &str) -> Option<Url> {
        let url = Url::parse(input.trim()).ok()?;
        let clean = matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && url.port().is_none();
        let host = domain(&url)?;
        (clean && self.settings.short_host(host).is_some()).then_some(url)
    }

    /// Where the redirect chain may go from `current` to `next`.
    fn classify_hop(&self, current: &Url, next: &Url) -> Result<Hop, ExpandError> {
        let refuse = |why: String| Err(ExpandError::Disallowed(format!("{current} {why}")));
        if !matches!(next.scheme(), "http" | "https") {
            return refuse(format!("redirects to a `{}:` URL", next.scheme()));
        }
        let host = match next.host() {
            Some(Host::Domain(d)) => d,
            Some(ip) => return refuse(format!("redirects to the IP address {ip}")),
            None => return refuse("redirects to a URL without a host".to_owned()),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        let is_target = self.settings.target_host(host);
        if !is_target && self.settings.short_host(host).is_none() {
            return refuse(format!("redirects to {host}, which is not an allowed host"));
        }
        if !next.username().is_empty() || next.password().is_some() {
            return refuse(format!("redirects to a URL on {host} with credentials"));
        }
        if let Some(port) = next.port() {
            return refuse(format!("redirects to {host} on port {port}"));
        }
        Ok(if is_target { Hop::Target } else { Hop::Short })
    }

    /// The `Location` that the short link `current` redirects to, retrying
    /// transient failures.
    async fn fetch_location(&self, current: &Url) -> Result<String, ExpandError> {
        let (target, host_header) = self.request_target(current);
        let mut retries = Retries::new(
            Backoff {
                retries: self.settings.retries,
                first: self.settings.backoff,
            },
            "short-link expansion",
        );
        loop {
            match self
                .fetch_once(current, &target, host_header.as_ref())
                .await
            {
                Ok(location) => return Ok(location),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Transient(reason)) => retries
                    .failed(reason, None)
                    .await
                    .map_err(|e| ExpandError::Unavailable(format!("{current}: {e}")))?,
            }
        }
    }

    /// One request for `current`, sent to `target`.
    async fn fetch_once(
        &self,
        current: &Url,
        target: &Url,
        host_header: Option<&HeaderValue>,
    ) -> Result<String, Failure> {
        let mut request = self.client.get(target.clone());
        if let Some(host) = host_header {
            request = request.header(HOST, host.clone());
        }
        let response = request.send().await.map_err(|e| {
            tracing::debug!(url = %current, error = %e, "short-link request failed");
            Failure::Transient(describe_reqwest_error(&e).to_owned())
        })?;
        let status = response.status();
        let location = response.headers().get(LOCATION).cloned();
        self.discard_body(response).await;

        if status.is_redirection() {
            let Some(location) = location else {
                return Err(Failure::Final(ExpandError::NotFound(format!(
                    "{current} answered {status} without a Location"
                ))));
            };
            return match std::str::from_utf8(location.as_bytes()) {
                Ok(location) if !location.trim().is_empty() => Ok(location.trim().to_owned()),
                _ => Err(Failure::Final(ExpandError::NotFound(format!(
                    "{current} answered {status} with an unusable Location"
                )))),
            };
        }
        Err(match status {
            StatusCode::NOT_FOUND | StatusCode::GONE => Failure::Final(ExpandError::NotFound(
                format!("{current} answered {status}"),
            )),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
                Failure::Transient(format!("the short host answered {status}"))
            }
            s if s.is_server_error() => {
                Failure::Transient(format!("the short host answered {status}"))
            }
            s if s.is_success() => Failure::Final(ExpandError::NotFound(format!(
                "{current} answered {status}: the short link does not redirect to a product"
            ))),
            _ => Failure::Final(ExpandError::Unavailable(format!(
                "{current}: the short host refused the request with {status}"
            ))),
        })
    }

    /// Reads at most `max_body_bytes` of `response`'s body, so that a small
    /// body leaves its connection reusable, and drops the rest unread. A body
    /// announced as larger than the cap is not read at all; read errors are
    /// irrelevant (the status and headers are all we need). A body that
    /// stalls is cut off by the request timeout.
    async fn discard_body(&self, mut response: reqwest::Response) {
        let cap = self.settings.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > u64::try_from(cap).unwrap_or(u64::MAX))
        {
            return;
        }
        let mut read = 0usize;
        while read < cap {
            match response.chunk().await {
                Ok(Some(chunk)) => read = read.saturating_add(chunk.len()),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// The URL to send the request for `current` to, and the `Host` header
    /// to send when that is not `current`'s own host (an upstream override).
    fn request_target(&self, current: &Url) -> (Url, Option<HeaderValue>) {
        let base = domain(current)
            .and_then(|host| self.settings.short_host(host))
            .and_then(|short| self.settings.upstream_override.get(short));
        let Some(base) = base else {
            return (current.clone(), None);
        };
        let host_header = current
            .host_str()
            .and_then(|h| HeaderValue::from_str(h).ok());
        (override_url(base, current), host_header)
    }
}

/// Where a hop landed.
enum Hop {
    /// On a target host: the expansion is done.
    Target,
    /// On a short host: fetch it next.
    Short,
}

impl Settings {
    /// Validates and normalises `config`, reporting every problem at once.
    fn compile(config: ExpandConfig) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let short_hosts = hosts("short_hosts", &config.short_hosts, &mut problems);
        let target_hosts = hosts("target_hosts", &config.target_hosts, &mut problems);
        if config.short_hosts.is_empty() {
            problems.push("short_hosts: must name at least one host".to_owned());
        }
        if config.target_hosts.is_empty() {
            problems.push("target_hosts: must name at least one host".to_owned());
        }
        for short in &short_hosts {
            if target_hosts.iter().any(|t| on_domain(short, t)) {
                problems.push(format!(
                    "short_hosts: `{short}` is also covered by target_hosts"
                ));
            }
        }
        if config.max_hops == 0 {
            problems.push("max_hops: must be at least 1".to_owned());
        }
        if config.timeout.is_zero() {
            problems.push("timeout: must not be zero".to_owned());
        }

        let mut upstream_override = HashMap::new();
        let mut keys: Vec<_> = config.upstream_override.iter().collect();
        keys.sort();
        for (key, base) in keys {
            let host = normalise_host(key);
            let Some(short) = short_hosts
                .iter()
                .find(|s| **s == host || host.strip_prefix("www.") == Some(s.as_str()))
            else {
                problems.push(format!(
                    "upstream_override: `{key}` is not one of short_hosts"
                ));
                continue;
            };
            match parse_override(base) {
                Ok(url) => {
                    upstream_override.insert(short.clone(), url);
                }
                Err(why) => problems.push(format!("upstream_override.{key}: `{base}` {why}")),
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Settings {
            short_hosts,
            target_hosts,
            max_hops: config.max_hops,
            max_body_bytes: config.max_body_bytes,
            retries: config.retries,
            backoff: config.backoff,
            upstream_override,
        })
    }

    /// The configured short host that `host` (lowercase, no trailing dot)
    /// is, possibly behind `www.`.
    fn short_host(&self, host: &str) -> Option<&str> {
        let bare = host.strip_prefix("www.");
        self.short_hosts
            .iter()
            .find(|s| s.as_str() == host || bare == Some(s.as_str()))
            .map(String::as_str)
    }

    /// Whether `host` (lowercase, no trailing dot) is a target domain or one
    /// of its subdomains.
    fn target_host(&self, host: &str) -> bool {
        self.target_hosts.iter().any(|t| on_domain(host, t))
    }
}

/// The configured host names of `field`, normalised; problems are collected.
fn hosts(field: &str, names: &[String], problems: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let host = normalise_host(name);
        match Host::parse(&host) {
            Ok(Host::Domain(d)) if !d.is_empty() => out.push(d.to_ascii_lowercase()),
            Ok(_) => problems.push(format!("{field}: `{name}` is not a domain name")),
            Err(e) => problems.push(format!("{field}: `{name}` is not a host name ({e})")),
        }
    }
    out
}

/// `name` trimmed, lowercased, without a trailing dot.
fn normalise_host(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether `host` is `domain` or a subdomain of it (label boundary).
fn on_domain(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

/// `url`'s host if it is a domain name, without a trailing dot (the `url`
/// crate already lowercases and punycodes it for `http(s)`).
fn domain(url: &Url) -> Option<&str> {
    match url.host() {
        Some(Host::Domain(d)) => Some(d.strip_suffix('.').unwrap_or(d)),
        _ => None,
    }
}

/// An upstream override base URL, checked.
fn parse_override(base: &str) -> Result<Url, &'static str> {
    let url = Url::parse(base).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("is not an http(s) URL");
    }
    if url.host().is_none() {
        return Err("has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment");
    }
    Ok(url)
}

/// `current`'s path and query on the override `base` (whose path, if any,
/// is a prefix).
fn override_url(base: &Url, current: &Url) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}{}", current.path()));
    url.set_query(current.query());
    url
}

/// What went wrong with a request, for messages: never the address connected
/// to, which may be an internal override.
fn describe_reqwest_error(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "the request timed out"
    } else if e.is_connect() {
        "could not connect to the short host"
    } else {
        "the request failed"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn expander() -> Expander {
        Expander::new(ExpandConfig::default()).unwrap()
    }

    fn invalid(config: ExpandConfig) -> Vec<String> {
        match Expander::new(config) {
            Err(ExpandConfigError::Invalid(problems)) => problems,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn default_config_covers_the_three_short_hosts_and_22_marketplaces() {
        let c = ExpandConfig::default();
        assert_eq!(c.short_hosts, ["amzn.to", "amzn.eu", "a.co"]);
        assert_eq!(c.target_hosts.len(), 22);
        for host in [
            "amazon.com",
            "amazon.co.uk",
            "amazon.co.jp",
            "amazon.com.au",
            "amazon.eg",
        ] {
            assert!(c.target_hosts.iter().any(|t| t == host), "{host}");
        }
        assert_eq!(c.max_hops, 5);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.max_body_bytes, 65_536);
        assert_eq!(c.retries, 2);
        assert_eq!(c.backoff, Duration::from_millis(200));
        assert!(c.upstream_override.is_empty());
    }

    #[test]
    fn is_short_link_cases() {
        let e = expander();
        let cases = [
            ("https://amzn.to/3abcDEF", true),
            ("http://amzn.to/3abcDEF", true),
            ("https://AMZN.TO/3abcDEF", true),
            ("https://www.amzn.to/3abcDEF", true),
            ("https://amzn.eu/d/abc", true),
            ("https://a.co/d/abc", true),
            ("https://amzn.to./x", true),
            ("  https://amzn.to/x  ", true),
            ("https://www.amazon.com/dp/B08N5WRWNW", false),
            ("ftp://amzn.to/x", false),
            ("amzn.to/x", false),
            ("not a url", false),
            ("", false),
            ("https://amzn.to.evil.example/x", false),
            ("https://evilamzn.to/x", false),
            ("https://sub.amzn.to/x", false),
            ("https://www.www.amzn.to/x", false),
            ("https://user@amzn.to/x", false),
            ("https://amzn.to:8443/x", false),
            ("https://amzn.to:443/x", true), // default port: same origin
            ("https://1.2.3.4/x", false),
        ];
        for (input, want) in cases {
            assert_eq!(e.is_short_link(input), want, "{input}");
        }
    }

    #[test]
    fn target_hosts_match_domains_and_subdomains_on_label_boundaries() {
        let s = Settings::compile(ExpandConfig::default()).unwrap();
        for host in [
            "amazon.com",
            "www.amazon.com",
            "smile.amazon.co.uk",
            "m.amazon.de",
        ] {
            assert!(s.target_host(host), "{host}");
        }
        for host in [
            "notamazon.com",
            "amazon.com.evil.example",
            "amazon.co",
            "evil.example",
        ] {
            assert!(!s.target_host(host), "{host}");
        }
    }

    #[test]
    fn hops_are_classified_by_scheme_host_credentials_and_port() {
        let e = expander();
        let from = Url::parse("https://amzn.to/x").unwrap();
        let hop = |to: &str| e.classify_hop(&from, &Url::parse(to).unwrap());
        assert!(matches!(
            hop("https://www.amazon.com/dp/X"),
            Ok(Hop::Target)
        ));
        assert!(matches!(hop("http://amazon.de/dp/X"), Ok(Hop::Target)));
        assert!(matches!(
            hop("https://WWW.AMAZON.COM./dp/X"),
            Ok(Hop::Target)
        ));
        assert!(matches!(hop("https://a.co/d/x"), Ok(Hop::Short)));
        let refused = [
            ("https://evil.example/", "evil.example"),
            ("https://www.amazon.com@evil.example/", "evil.example"),
            (
                "https://amazon.com.evil.example/",
                "amazon.com.evil.example",
            ),
            (
                "http://169.254.169.254/latest",
                "IP address 169.254.169.254",
            ),
            ("http://[::1]/", "IP address [::1]"),
            ("javascript:alert(1)", "`javascript:` URL"),
            ("file:///etc/passwd", "`file:` URL"),
            ("https://u:p@www.amazon.com/dp/X", "credentials"),
            ("https://www.amazon.com:8443/dp/X", "port 8443"),
        ];
        for (to, named) in refused {
            match hop(to) {
                Err(ExpandError::Disallowed(m)) => assert!(m.contains(named), "{to}: {m}"),
                Err(other) => panic!("{to}: expected Disallowed, got {other:?}"),
                Ok(_) => panic!("{to}: expected Disallowed, got Ok"),
            }
        }
    }

    #[test]
    fn override_keeps_path_and_query_and_host_header() {
        let mut config = ExpandConfig::default();
        config
            .upstream_override
            .insert("amzn.to".into(), "http://127.0.0.1:9/prefix/".into());
        let e = Expander::new(config).unwrap();
        let current = Url::parse("https://www.amzn.to/abc/def?x=1&y=%20#frag").unwrap();
        let (target, host) = e.request_target(&current);
        assert_eq!(
            target.as_str(),
            "http://127.0.0.1:9/prefix/abc/def?x=1&y=%20"
        );
        assert_eq!(host.unwrap(), "www.amzn.to");

        let other = Url::parse("https://a.co/d/x").unwrap();
        let (target, host) = e.request_target(&other);
        assert_eq!(target, other);
        assert!(host.is_none());
    }

    #[test]
    fn invalid_config_reports_every_problem() {
        let mut config = ExpandConfig {
            short_hosts: vec!["amzn.to".into(), "http://bad/".into(), "1.2.3.4".into()],
            target_hosts: vec![],
            max_hops: 0,
            timeout: Duration::ZERO,
            ..ExpandConfig::default()
        };
        config
            .upstream_override
            .insert("evil.example".into(), "http://127.0.0.1:1".into());
        config
            .upstream_override
            .insert("amzn.to".into(), "ftp://127.0.0.1/".into());
        let problems = invalid(config);
        let expected = [
            "short_hosts: `http://bad/` is not a host name",
            "short_hosts: `1.2.3.4` is not a domain name",
            "target_hosts: must name at least one host",
            "max_hops: must be at least 1",
            "timeout: must not be zero",
            "upstream_override.amzn.to: `ftp://127.0.0.1/` is not an http(s) URL",
            "upstream_override: `evil.example` is not one of short_hosts",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "missing {want:?} in {problems:?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:?}");
    }

    #[test]
    fn short_host_that_is_also_a_target_is_rejected() {
        let config = ExpandConfig {
            short_hosts: vec!["go.amazon.com".into()],
            ..ExpandConfig::default()
        };
        assert_eq!(
            invalid(config),
            ["short_hosts: `go.amazon.com` is also covered by target_hosts"]
        );
    }

    #[test]
    fn override_with_query_or_credentials_is_rejected() {
        for (base, why) in [
            (
                "http://127.0.0.1:1/?q=1",
                "must not have a query or fragment",
            ),
            ("http://u:p@127.0.0.1:1/", "must not carry credentials"),
            ("localhost:1", "is not an http(s) URL"),
            ("not a url", "is not a URL"),
        ] {
            let mut config = ExpandConfig::default();
            config
                .upstream_override
                .insert("AMZN.TO".into(), base.into());
            assert_eq!(
                invalid(config),
                [format!("upstream_override.AMZN.TO: `{base}` {why}")]
            );
        }
    }

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(ExpandError::Unavailable("x".into()).retryable());
        assert!(!ExpandError::NotFound("x".into()).retryable());
        assert!(!ExpandError::Disallowed("x".into()).retryable());
        assert!(!ExpandError::NotShortLink("x".into()).retryable());
    }

    #[tokio::test]
    async fn non_short_input_is_refused_without_a_request() {
        // No override and no network needed: refused before any I/O.
        let e = expander();
        let err = e
            .expand("https://www.amazon.com/dp/B08N5WRWNW")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ExpandError::NotShortLink(ref s) if s == "https://www.amazon.com/dp/B08N5WRWNW")
        );
    }

    #[test]
    fn expand_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let e = expander();
        let future = e.expand("https://amzn.to/x");
        assert_send(&future);
    }
}
