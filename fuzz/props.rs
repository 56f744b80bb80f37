//! The properties the fuzz targets assert, one function per target, shared
//! by the libFuzzer targets (`fuzz/fuzz_targets/*.rs`) and the corpus replay
//! of the ordinary suite (`tests/fuzz_corpus.rs`), which includes this file
//! with `#[path]` so that CI replays every corpus without libFuzzer.
//!
//! Each function takes the fuzzer's bytes and panics (an `assert!`) when a
//! property fails: not only "no panic", but what must hold of the answer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;

use linkwright_core::click::{CLICK_ID_LEN, ClickId, ClickIdGenerator};
use linkwright_core::conversions::{self, Format, FormatSettings, ImportError};
use linkwright_core::money::Micros;
use linkwright_core::plugin::{BuildRequest, Providers};
use linkwright_core::template::Template;
use linkwright_core::{Config, classify};

/// A target's property over the fuzzer's bytes.
pub type Property = fn(&[u8]);

/// Every fuzz target: its name (the folder of its corpus) and its property.
pub const TARGETS: &[(&str, Property)] = &[
    ("go_url", go_url),
    ("code", code),
    ("user_agent", user_agent),
    ("referrer", referrer),
    ("config", config),
    ("bulk_csv", bulk_csv),
    ("conv_amazon_earnings", conv_amazon_earnings),
    ("conv_amazon_orders", conv_amazon_orders),
    ("conv_amazon_bounty", conv_amazon_bounty),
    ("conv_awin_csv", conv_awin_csv),
    ("conv_awin_json", conv_awin_json),
    ("money", money),
    ("click_id", click_id),
    ("link_json", link_json),
    ("request_head", request_head),
];

/// The plugin targets: their names and the providers each exercises (names
/// in [`PROVIDERS_TOML`]).
pub const PLUGIN_TARGETS: &[(&str, &[&str])] = &[
    ("plugin_amazon", &["amazon"]),
    ("plugin_awin", &["awin"]),
    ("plugin_networks", &["rakuten", "ebay"]),
];

// ---------------------------------------------------------------- plugins

/// The providers the plugin targets load, `{dir}` being the folder of the
/// built plugin libraries. One per style each plugin has.
pub const PROVIDERS_TOML: &str = r#"
[[providers]]
name = "amazon"
plugin = "{dir}/liblinkwright_amazon.so"
[providers.config]
tags = { "amazon.com" = "lw-20", "amazon.de" = "lw-21", "amazon.co.uk" = "lwuk-21" }

[[providers]]
name = "awin"
plugin = "{dir}/liblinkwright_awin.so"
[providers.config]
publisher_id = "123456"
[[providers.config.advertisers]]
id = "5678"
name = "Example Shop"
domains = ["example.com", "example.co.uk"]
default_landing = "https://www.example.com/sale"
[[providers.config.advertisers]]
id = "9999"
name = "No Deep Links"
domains = ["nodeep.example"]
deeplinks = false

[[providers]]
name = "rakuten"
plugin = "{dir}/liblinkwright_networks.so"
[providers.config]
network = "rakuten"
hosts = ["shop.example"]
template = "https://click.linksynergy.com/deeplink?id=PUB&mid=123&murl={url}&u1={subid}"
subid_max_len = 72

[[providers]]
name = "ebay"
plugin = "{dir}/liblinkwright_networks.so"
[providers.config]
network = "ebay"
hosts = ["ebay.com", "ebay.co.uk"]
append = "mkevt=1&mkcid=1&campid=5338&customid={subid}"
subid_max_len = 64
subid_encoding = "url_safe"
"#;

/// Loads [`PROVIDERS_TOML`] with the plugin libraries in `dir`; panics
/// unless every provider loads.
pub fn load_providers(dir: &Path) -> Providers {
    let text = PROVIDERS_TOML.replace("{dir}", &dir.display().to_string());
    let providers = Config::from_toml_str(&text)
        .expect("the fuzz providers' config is valid")
        .load_providers();
    assert!(
        providers.refused().is_empty(),
        "fuzz providers refused: {:?}",
        providers.refused()
    );
    providers
}

/// The fuzz targets' providers, loaded once per process from
/// `$LINKWRIGHT_PLUGIN_DIR` (default: the workspace's `target/release`;
/// `scripts/fuzz` builds the plugins there first: the plugins are not
/// instrumented, so an optimised build only makes each input cheaper).
pub fn fuzz_providers() -> &'static Providers {
    static PROVIDERS: std::sync::LazyLock<Providers> = std::sync::LazyLock::new(|| {
        let dir = std::env::var_os("LINKWRIGHT_PLUGIN_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release"))
            });
        load_providers(&dir)
    });
    &PROVIDERS
}

/// Whether `host` (as the `url` crate serialises it) is one a provider owns:
/// where its tracked links may point. This is the allow-list of the
/// no-open-redirect property; it is written here independently of the
/// plugins' own tables.
pub fn provider_owns(provider: &str, host: &url::Host<&str>) -> bool {
    let url::Host::Domain(domain) = host else {
        return false; // no provider tracks IP addresses
    };
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let under = |owned: &str| {
        domain == owned
            || domain
                .strip_suffix(owned)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    match provider {
        "amazon" => linkwright_model::amazon::MARKETPLACES
            .iter()
            .any(|m| domain == *m || domain.strip_prefix("www.") == Some(m)),
        "awin" => domain == "www.awin1.com",
        "rakuten" => domain == "click.linksynergy.com",
        "ebay" => under("ebay.com") || under("ebay.co.uk"),
        _ => false,
    }
}

/// The sub-ID characters of an encoding.
pub fn subid_byte_allowed(encoding: linkwright_plugin_sdk::SubIdEncoding, b: u8) -> bool {
    use linkwright_plugin_sdk::SubIdEncoding;
    b.is_ascii_alphanumeric() || (encoding == SubIdEncoding::UrlSafe && matches!(b, b'-' | b'_'))
}

/// What a template filled with `sub_id` must be: a valid `Location` header
/// value that is an absolute https URL (http only where the destination
/// itself is http and the network appends to it) on a host the provider
/// owns. Returns the URL.
pub fn check_filled(t: &Template, sub_id: &str) -> url::Url {
    let filled = t.fill_str(sub_id);
    assert!(
        http::HeaderValue::from_str(&filled).is_ok(),
        "{}: `{filled}` is not a valid Location header value",
        t.provider
    );
    let url = url::Url::parse(&filled)
        .unwrap_or_else(|e| panic!("{}: `{filled}` is not a URL: {e}", t.provider));
    let appends = t.provider == "ebay";
    assert!(
        url.scheme() == "https" || (appends && url.scheme() == "http"),
        "{}: `{filled}` is not https",
        t.provider
    );
    let host = url
        .host()
        .unwrap_or_else(|| panic!("{}: `{filled}` has no host", t.provider));
    assert!(
        provider_owns(&t.provider, &host),
        "{}: `{filled}` points at `{host}`, a host the provider does not own",
        t.provider
    );
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{}: `{filled}` carries user info",
        t.provider
    );
    url
}

/// Every property of one built template.
pub fn check_template(t: &Template) {
    // The sub-ID fits: a click ID is always accepted.
    assert!(
        t.subid_max_len == 0 || t.subid_max_len as usize >= CLICK_ID_LEN,
        "{}: sub-IDs limited to {}",
        t.provider,
        t.subid_max_len
    );
    let id = ClickId::parse("Zz09aZ09zZ09a").expect("a click ID");
    assert!(
        id.as_bytes()
            .iter()
            .all(|&b| subid_byte_allowed(t.subid_encoding, b))
    );
    let with_id = check_filled(t, id.as_str());
    // The sub-ID lands in the URL as it is (never escaped, never lost).
    assert!(
        with_id.as_str().contains(id.as_str()),
        "{}: {with_id} lost the sub-ID",
        t.provider
    );
    // No sub-ID (bots) and the longest sub-ID of the encoding's characters
    // give URLs on the same host: the slot cannot move the host.
    let longest = match t.subid_encoding {
        linkwright_plugin_sdk::SubIdEncoding::UrlSafe => "-_aZ9".repeat(40),
        _ => "aZ9".repeat(40),
    };
    let max = if t.subid_max_len == 0 {
        longest.len()
    } else {
        (t.subid_max_len as usize).min(longest.len())
    };
    let bare = check_filled(t, "");
    let long = check_filled(t, &longest[..max]);
    assert_eq!(bare.host_str(), with_id.host_str(), "{}", t.provider);
    assert_eq!(long.host_str(), with_id.host_str(), "{}", t.provider);
}

/// A build request as the plugin targets read it: line 1 the input, line 2
/// the marketplace (empty: none), then `key=value` parameters.
pub fn build_case(data: &[u8]) -> (String, Option<String>, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let input = lines.next().unwrap_or_default().to_owned();
    let marketplace = lines.next().filter(|m| !m.is_empty()).map(str::to_owned);
    let params = lines
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    (input, marketplace, params)
}

/// A plugin target: builds `data` with each named provider through the C
/// ABI; any template returned must pass [`check_template`], and an error
/// must be a client error or a decline, never the host's internal one
/// (which would mean the plugin built something the host refused).
///
/// The build runs on this thread, without the host's time budget (a
/// worker-thread hand-off per input cost more than the plugin call): a
/// call that hangs is caught by libFuzzer's `-timeout` instead, which
/// `scripts/fuzz` sets to the budget for these targets.
pub fn plugin_build(providers: &Providers, names: &[&str], data: &[u8]) {
    let (input, marketplace, params) = build_case(data);
    for name in names {
        let req = BuildRequest {
            input: &input,
            marketplace: marketplace.as_deref(),
            params: &params,
            provider: Some(name),
        };
        match providers.build_on_this_thread(&req) {
            Ok(t) => {
                assert_eq!(t.provider, *name);
                check_template(&t);
            }
            Err(e) => {
                assert!(
                    e.code.is_client_error(),
                    "{name}: `{input}` failed with a non-client error: {e:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- public host

/// `/go?url=`: a key is an http(s) URL with a host and no fragment, and a
/// fixed point (normalising it again gives it back).
pub fn go_url(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let Ok(key) = linkwright_core::server::redirect::middleware_key(&raw) else {
        return;
    };
    let url = url::Url::parse(&key).expect("a key is a URL");
    assert!(matches!(url.scheme(), "http" | "https"));
    assert!(
        url.host_str().is_some_and(|h| !h.is_empty()),
        "`{key}` has no host"
    );
    assert!(url.fragment().is_none());
    assert_eq!(
        linkwright_core::server::redirect::middleware_key(&key).as_deref(),
        Ok(key.as_str()),
        "normalising `{raw}` twice changes it"
    );
}

/// Link codes: accepted exactly when 1-64 letters, digits, `-`, `_`, and
/// not a reserved path.
pub fn code(data: &[u8]) {
    let Ok(code) = std::str::from_utf8(data) else {
        return;
    };
    let expected = (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !linkwright_core::store::RESERVED_CODES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(code));
    let got = linkwright_core::store::validate_code(code);
    assert_eq!(got.is_ok(), expected, "`{code}`: {got:?}");
}

// ---------------------------------------------------------------- classify

/// The UA classifier: HEAD is always a bot; class `Bot` implies `bot`; the
/// answer does not depend on ASCII case or on the per-thread memo.
pub fn user_agent(data: &[u8]) {
    let v = classify::classify(false, Some(data));
    assert!(v.class != classify::UaClass::Bot || v.bot);
    assert!(classify::classify(true, Some(data)).bot);
    assert_eq!(
        classify::classify(false, Some(data)),
        v,
        "memo changed the answer"
    );
    let upper = data.to_ascii_uppercase();
    assert_eq!(
        classify::classify(false, Some(&upper)),
        v,
        "case changed the class of {:?}",
        String::from_utf8_lossy(data)
    );
}

/// The referrer parser: a host is non-empty, lower-case, without user info
/// or port; the country reader gives two upper-case letters or nothing.
pub fn referrer(data: &[u8]) {
    if let Some(host) = classify::referrer_host(Some(data)) {
        assert!(!host.is_empty());
        assert!(!host.bytes().any(|b| b.is_ascii_uppercase()), "{host}");
        assert!(!host.contains('@') && !host.contains('/'), "{host}");
        assert!(
            !host.contains(':') || (host.starts_with('[') && host.ends_with(']')),
            "{host} keeps a port"
        );
    }
    if let Some(c) = classify::country(Some(data)) {
        assert!(c.iter().all(u8::is_ascii_uppercase));
        assert!(&c != b"XX" && &c != b"ZZ");
    }
}

// ---------------------------------------------------------------- inputs

/// The config loader: a config is accepted, or refused with at least one
/// problem, each with a message.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Config::from_toml_str(&text) {
        Ok(_) => {}
        Err(linkwright_core::config::ConfigError::Invalid { problems, .. }) => {
            assert!(!problems.is_empty(), "refused with no problem");
            for p in &problems {
                assert!(!p.to_string().trim().is_empty());
            }
        }
        Err(e) => panic!("a config from text failed as if read from a file: {e}"),
    }
}

/// Bulk CSV: at least one and at most `MAX_ITEMS` requests, each a JSON
/// object whose string values are trimmed and non-empty; a refusal says why.
pub fn bulk_csv(data: &[u8]) {
    use linkwright_core::jobs::{MAX_ITEMS, SubmitError, parse_csv};
    match parse_csv(data) {
        Ok(items) => {
            assert!(!items.is_empty() && items.len() <= MAX_ITEMS);
            for item in &items {
                let object = item.as_object().expect("each item is an object");
                for (key, value) in object {
                    if let Some(s) = value.as_str() {
                        assert!(!s.is_empty() && s.trim() == s, "{key}: {s:?}");
                    }
                }
            }
        }
        Err(SubmitError::Invalid { message, .. }) => assert!(!message.is_empty()),
        Err(SubmitError::TooMany(n)) => assert!(n > MAX_ITEMS),
        Err(e) => panic!("parsing a CSV touched the store: {e}"),
    }
}

// ---------------------------------------------------------------- conversions

/// A format's default settings, made once per process (as the server
/// makes them once, from its config).
fn default_settings(format: Format) -> &'static FormatSettings {
    static SETTINGS: std::sync::LazyLock<Vec<FormatSettings>> = std::sync::LazyLock::new(|| {
        Format::ALL
            .iter()
            .map(|f| FormatSettings::defaults(*f))
            .collect()
    });
    let at = Format::ALL
        .iter()
        .position(|f| *f == format)
        .expect("every format is listed");
    &SETTINGS[at]
}

fn conversions(format: Format, data: &[u8]) {
    // Lines of the file, at most: a CR or LF byte each (a bare CR ends a
    // line; UTF-16 line ends hold those bytes too).
    let lines = data.iter().filter(|b| matches!(**b, b'\n' | b'\r')).count() as u64 + 1;
    match conversions::parse(format, default_settings(format), data) {
        Ok(report) => {
            // No row at all is fine (an empty window); rows that are all
            // rejected make the file an error instead.
            assert!(
                !report.rows.is_empty() || report.rejections.is_empty(),
                "a report whose every row is rejected is an error"
            );
            let mut accepted = HashSet::new();
            let mut last = 0;
            for (line, row) in &report.rows {
                assert!((1..=lines).contains(line), "row line {line} of {lines}");
                assert!(*line >= last, "rows out of order");
                last = *line;
                accepted.insert(*line);
                for micros in [row.price_micros, row.revenue_micros, row.commission_micros] {
                    money_round_trip(micros);
                }
                assert!(row.quantity >= 0 && row.returns >= 0, "{row:?}");
            }
            for r in &report.rejections {
                assert!(
                    (1..=lines).contains(&r.line),
                    "rejection line {} of {lines}",
                    r.line
                );
                assert!(!r.reason.is_empty());
                // A CSV line is a row accepted or rejected, never both (JSON
                // transactions can share a line).
                if format != Format::AwinJson {
                    assert!(
                        !accepted.contains(&r.line),
                        "line {} accepted and rejected",
                        r.line
                    );
                }
            }
        }
        Err(ImportError::Malformed { line, message }) => {
            assert!(
                (1..=lines).contains(&line),
                "error line {line} of {lines}: {message}"
            );
            assert!(!message.is_empty());
        }
        Err(e) => panic!("parsing a report touched the database: {e}"),
    }
}

pub fn conv_amazon_earnings(data: &[u8]) {
    conversions(Format::AmazonEarnings, data);
}
pub fn conv_amazon_orders(data: &[u8]) {
    conversions(Format::AmazonOrders, data);
}
pub fn conv_amazon_bounty(data: &[u8]) {
    conversions(Format::AmazonBounty, data);
}
pub fn conv_awin_csv(data: &[u8]) {
    conversions(Format::AwinCsv, data);
}
pub fn conv_awin_json(data: &[u8]) {
    conversions(Format::AwinJson, data);
}

/// An amount shown as the API shows it reads back as the same amount.
pub fn money_round_trip(micros: i64) {
    let shown = Micros(micros).to_string();
    assert_eq!(
        conversions::money::parse_micros(&shown),
        Ok(Some(micros)),
        "{micros} shown as `{shown}` does not read back"
    );
}

/// Money: whatever reads as an amount shows and reads back as the same
/// amount; 8 bytes as an `i64` round-trip too.
pub fn money(data: &[u8]) {
    if let Ok(bytes) = <[u8; 8]>::try_from(data.get(..8).unwrap_or_default()) {
        money_round_trip(i64::from_le_bytes(bytes));
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(Some(micros)) = conversions::money::parse_micros(&text) {
        money_round_trip(micros);
    }
    if let Ok(Some(n)) = conversions::money::parse_count(&text) {
        assert_eq!(conversions::money::parse_count(&n.to_string()), Ok(Some(n)));
    }
}

// ---------------------------------------------------------------- click IDs

/// Click IDs: a parsed ID writes back as the same text; a minted one parses
/// back with its node, and later IDs of a generator sort after earlier ones.
pub fn click_id(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(id) = ClickId::parse(text)
    {
        assert_eq!(id.as_str(), text);
        assert!(id.as_bytes().iter().all(u8::is_ascii_alphanumeric));
        let _ = (id.node(), id.unix_ms(), id.time());
    }
    if data.len() >= 10 {
        let node = u16::from_le_bytes([data[0], data[1]]);
        let floor = u64::from_le_bytes(data[2..10].try_into().unwrap_or_default());
        let generator = ClickIdGenerator::with_floor(node, floor);
        let a = generator.next_id();
        let b = generator.next_id();
        for id in [a, b] {
            assert_eq!(ClickId::parse(id.as_str()), Some(id));
            assert_eq!(id.as_str().len(), CLICK_ID_LEN);
            assert_eq!(id.node(), node & linkwright_core::click::MAX_NODE_ID);
        }
        // Later IDs sort after earlier ones, until the 64-bit state ends
        // (the year 2163, or a corrupt floor), where they stay put.
        assert!(b >= a, "{b} sorts before {a}");
        if floor < u64::MAX - 1024 {
            assert!(b > a, "{b} does not sort after {a}");
            assert!(b.value() > a.value());
        }
    }
}

// ---------------------------------------------------------------- admin API JSON

/// How deep a parsed JSON value nests (arrays and objects).
fn value_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// JSON bodies of the admin API: the nesting bound counts exactly what a
/// parser sees; a link request is accepted only within every field limit,
/// and refused otherwise with a client error naming the field; its key is
/// stable across a serialisation round trip; a change request parses or not,
/// never panics.
pub fn link_json(data: &[u8]) {
    use linkwright_core::api::{MAX_JSON_DEPTH, json_depth};
    use linkwright_core::links::{self, CreateLinkRequest, PatchLinkRequest};
    let depth = json_depth(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        assert_eq!(
            depth,
            value_depth(&value),
            "json_depth disagrees with the parser"
        );
    }
    // The API refuses deeper bodies before parsing them.
    if depth > MAX_JSON_DEPTH {
        return;
    }
    let _ = serde_json::from_slice::<PatchLinkRequest>(data);
    let Ok(req) = serde_json::from_slice::<CreateLinkRequest>(data) else {
        return;
    };
    match req.input() {
        Ok(input) => {
            assert!(!input.is_empty() && input.trim() == input, "{input:?}");
            assert!(req.name.as_deref().unwrap_or("").len() <= links::MAX_NAME_LEN);
            assert!(req.campaign.as_deref().unwrap_or("").len() <= links::MAX_CAMPAIGN_LEN);
            let tags = req.tags.as_deref().unwrap_or(&[]);
            assert!(tags.len() <= links::MAX_TAGS);
            assert!(tags.iter().all(|t| t.len() <= links::MAX_TAG_LEN));
            let params = req.params();
            assert!(params.len() <= links::MAX_PARAMS);
            assert!(
                params.iter().all(
                    |(k, v)| k.len() <= links::MAX_PARAM_LEN && v.len() <= links::MAX_PARAM_LEN
                )
            );
        }
        Err(e) => {
            assert!(e.code.is_client_error(), "{e:?}");
            assert!(e.field.is_some(), "a refusal names no field: {e:?}");
        }
    }
    let key = req.key();
    assert_eq!(key.len(), 64);
    let again: CreateLinkRequest =
        serde_json::from_str(&serde_json::to_string(&req).expect("serialises"))
            .expect("a serialised request parses back");
    assert_eq!(again, req);
    assert_eq!(again.key(), key, "the key changed across a round trip");
}

// ---------------------------------------------------------------- request heads

/// A request head to the public host, parsed as hyper parses it (httparse,
/// at most the host's 100 header fields), then routed as the host routes it:
/// `/go`'s `url` parameter through the middleware key, any other path as a
/// code, the headers it reads (User-Agent, Referer, the country header)
/// through the classifiers, each with its properties.
pub fn request_head(data: &[u8]) {
    use linkwright_core::server::redirect::{middleware_key, url_param};
    let mut headers = [httparse::EMPTY_HEADER; linkwright_core::server::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = req.parse(data) else {
        return;
    };
    assert!(len <= data.len());
    let Some(path) = req.path else { return };
    // hyper turns the target into a URI, or answers 400.
    let Ok(uri) = path.parse::<http::Uri>() else {
        return;
    };
    match uri.path() {
        "/go" => {
            if let Some(raw) = url_param(uri.query())
                && let Ok(key) = middleware_key(&raw)
            {
                go_url(key.as_bytes());
            }
        }
        "/robots.txt" => {}
        p => {
            let code = p.strip_prefix('/').unwrap_or(p);
            if linkwright_core::store::validate_code(code).is_ok() {
                assert!(
                    code.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "code `{code}` holds bytes no code may"
                );
            }
        }
    }
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("user-agent") {
            user_agent(h.value);
        } else if h.name.eq_ignore_ascii_case("referer")
            || h.name.eq_ignore_ascii_case("cf-ipcountry")
        {
            referrer(h.value);
        }
    }
}
