//! Compiling the raw config into a validated [`Config`]: one function per
//! section, each pushing every problem it finds with its key path.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::*;
use super::*;
use crate::click::MAX_NODE_ID;

/// Parses and validates a config; `origin` names it in errors, `base` is the
/// folder relative paths in it are resolved against.
pub(super) fn compile(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        origin: origin.to_owned(),
        problems,
    };
    let mut problems = Vec::new();
    let raw = parse(text, &mut problems).map_err(|p| invalid(vec![p]))?;
    let server = compile_server(&raw.server, base, &mut problems);
    let config = Config {
        plugin_dirs: compile_plugin_dirs(&raw.plugins, base),
        plugins: compile_plugins(&raw.plugins, &mut problems),
        click_ids: compile_click_ids(&raw.click_ids, &mut problems),
        console: compile_console(&raw.console, &server, &mut problems),
        server,
        cache: compile_cache(&raw.cache, &mut problems),
        click_log: compile_click_log(&raw.click_log, &mut problems),
        api: compile_api(&raw.api, &mut problems),
        upstream: compile_upstream(&raw.upstream, &mut problems),
        conversions: compile_conversions(&raw.conversions, &mut problems),
        geoip: compile_geoip(&raw.geoip, base, &mut problems),
        store: compile_store(&raw.store, &mut problems),
        localize: compile_localize(&raw.localize, &raw.providers, &mut problems),
        providers: compile_providers(raw.providers, base, &mut problems),
    };
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(invalid(problems))
    }
}

/// The TOML as a [`RawConfig`]; unknown keys are problems, a syntax error
/// the one problem that stops everything.
fn parse(text: &str, problems: &mut Vec<ConfigProblem>) -> Result<RawConfig, ConfigProblem> {
    let whole = |e: &dyn fmt::Display| ConfigProblem {
        path: String::new(),
        message: e.to_string().trim_end().to_owned(),
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| whole(&e))?;
    let mut unknown = Vec::new();
    let raw: RawConfig = serde_ignored::deserialize(deserializer, |path| {
        unknown.push(path.to_string());
    })
    .map_err(|e| whole(&e))?;
    for path in unknown {
        // Provider tables belong to their plugins, which check them.
        if !is_provider_setting(&path) {
            problems.push(ConfigProblem {
                path: bracket_indices(&path),
                message: "unknown key".to_owned(),
            });
        }
    }
    Ok(raw)
}

fn compile_click_ids(raw: &RawClickIds, problems: &mut Vec<ConfigProblem>) -> ClickIdsConfig {
    let node_id = raw.node_id.map(|id| match u16::try_from(id) {
        Ok(n) if n <= MAX_NODE_ID => n,
        _ => {
            problems.push(ConfigProblem {
                path: "click_ids.node_id".to_owned(),
                message: format!("must be between 0 and {MAX_NODE_ID}, got {id}"),
            });
            0
        }
    });
    ClickIdsConfig {
        node_id,
        lease: Duration::from_millis(at_least(
            raw.lease_ms,
            1_000,
            "click_ids.lease_ms",
            problems,
        )),
    }
}

fn compile_cache(raw: &RawCache, problems: &mut Vec<ConfigProblem>) -> CacheConfig {
    CacheConfig {
        max_links: at_least(raw.max_links, 1, "cache.max_links", problems),
        max_missing: at_least(raw.max_missing, 1, "cache.max_missing", problems),
        max_go_urls: at_least(raw.max_go_urls, 1, "cache.max_go_urls", problems),
        link_refresh: Duration::from_millis(at_least(
            raw.link_refresh_ms,
            10,
            "cache.link_refresh_ms",
            problems,
        )),
    }
}

fn compile_click_log(raw: &RawClickLog, problems: &mut Vec<ConfigProblem>) -> ClickLogConfig {
    ClickLogConfig {
        queue_capacity: at_least(raw.queue_capacity, 1, "click_log.queue_capacity", problems),
        batch_size: at_least(raw.batch_size, 1, "click_log.batch_size", problems),
        flush_interval: Duration::from_millis(at_least(
            raw.flush_interval_ms,
            1,
            "click_log.flush_interval_ms",
            problems,
        )),
        sync_interval: Duration::from_millis(at_least(
            raw.sync_interval_ms,
            1,
            "click_log.sync_interval_ms",
            problems,
        )),
        segment_bytes: at_least(
            raw.segment_bytes,
            linkwright_journal::MIN_SEGMENT_LEN,
            "click_log.segment_bytes",
            problems,
        ),
    }
}

fn compile_api(raw: &RawApi, problems: &mut Vec<ConfigProblem>) -> ApiConfig {
    ApiConfig {
        rate_limit_per_minute: raw.rate_limit_per_minute,
        rate_limit_burst: at_least(raw.rate_limit_burst, 1, "api.rate_limit_burst", problems),
        webhook_hosts: raw
            .webhook_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        job_claim_interval: Duration::from_millis(at_least(
            raw.job_claim_interval_ms,
            10,
            "api.job_claim_interval_ms",
            problems,
        )),
    }
}

fn compile_console(
    raw: &RawConsole,
    server: &ServerConfig,
    problems: &mut Vec<ConfigProblem>,
) -> ConsoleConfig {
    ConsoleConfig {
        session_ttl: Duration::from_millis(at_least(
            raw.session_ttl_ms,
            1000,
            "console.session_ttl_ms",
            problems,
        )),
        sign_in_failures_per_minute: raw.sign_in_failures_per_minute,
        sign_in_failure_burst: at_least(
            raw.sign_in_failure_burst,
            1,
            "console.sign_in_failure_burst",
            problems,
        ),
        secure_cookies: server
            .public_base_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://")),
    }
}

fn compile_upstream(raw: &RawUpstream, problems: &mut Vec<ConfigProblem>) -> UpstreamConfig {
    let mut expand = crate::expand::ExpandConfig {
        timeout: Duration::from_millis(at_least(
            raw.timeout_ms,
            1,
            "upstream.timeout_ms",
            problems,
        )),
        max_hops: at_least(raw.max_hops, 1, "upstream.max_hops", problems),
        retries: raw.retries,
        backoff: Duration::from_millis(raw.backoff_ms),
        ..Default::default()
    };
    for (host, base) in &raw.short_link_override {
        match url::Url::parse(base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                expand.upstream_override.insert(
                    host.to_ascii_lowercase(),
                    base.trim_end_matches('/').to_owned(),
                );
            }
            _ => problems.push(ConfigProblem {
                path: format!("upstream.short_link_override.{host}"),
                message: format!("`{base}` is not an http(s) base URL"),
            }),
        }
    }
    UpstreamConfig { expand }
}

fn compile_plugins(raw: &RawPlugins, problems: &mut Vec<ConfigProblem>) -> PluginsConfig {
    let ms = at_least(raw.call_timeout_ms, 1, "plugins.call_timeout_ms", problems);
    PluginsConfig {
        call_budget: Duration::from_millis(ms),
        probe: raw.probe,
    }
}

/// The configured plugin folders (relative to the config file), then the
/// executable's own ([`default_plugin_dirs`]), each once.
fn compile_plugin_dirs(raw: &RawPlugins, base: &Path) -> Vec<PathBuf> {
    let mut plugin_dirs: Vec<PathBuf> = Vec::new();
    for dir in raw
        .dirs
        .iter()
        .map(|d| base.join(d))
        .chain(default_plugin_dirs())
    {
        if !plugin_dirs.contains(&dir) {
            plugin_dirs.push(dir);
        }
    }
    plugin_dirs
}

/// The enabled providers; a name given twice, a bad name or plugin, or
/// settings that are not JSON are problems.
fn compile_providers(
    raw: Vec<RawProvider>,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<ProviderConfig> {
    let mut providers = Vec::new();
    let mut names = BTreeSet::new();
    for (index, p) in raw.into_iter().enumerate() {
        let at = |key: &str| format!("providers[{index}].{key}");
        let name = match p.name.as_deref().map(str::trim) {
            None | Some("") => {
                problems.push(ConfigProblem {
                    path: at("name"),
                    message: "missing: every provider needs a name".to_owned(),
                });
                None
            }
            Some(n) if !valid_provider_name(n) => {
                problems.push(ConfigProblem {
                    path: at("name"),
                    message: format!(
                        "`{n}` is not a valid name: use 1-32 lowercase letters, digits, `-` or `_`"
                    ),
                });
                None
            }
            Some(n) if !names.insert(n.to_owned()) => {
                problems.push(ConfigProblem {
                    path: at("name"),
                    message: format!("duplicate provider name `{n}`"),
                });
                None
            }
            Some(n) => Some(n.to_owned()),
        };
        let plugin = match p.plugin.as_deref().map(str::trim) {
            None | Some("") => {
                problems.push(ConfigProblem {
                    path: at("plugin"),
                    message:
                        "missing: name the plugin (e.g. \"amazon\") or give a path to its file"
                            .to_owned(),
                });
                None
            }
            Some(s) if s.contains('/') || s.ends_with(std::env::consts::DLL_SUFFIX) => {
                Some(PluginRef::Path(base.join(s)))
            }
            Some(s) if valid_provider_name(s) => Some(PluginRef::Name(s.to_owned())),
            Some(s) => {
                problems.push(ConfigProblem {
                    path: at("plugin"),
                    message: format!(
                        "`{s}` is neither a plugin name (lowercase letters, digits, `-`, `_`) nor a path"
                    ),
                });
                None
            }
        };
        let settings = match serde_json::to_value(&p.config) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(ConfigProblem {
                    path: at("config"),
                    message: format!("cannot be handed to the plugin as JSON: {e}"),
                });
                None
            }
        };
        for (i, host) in p.link_hosts.iter().enumerate() {
            let host = host.trim();
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
            {
                problems.push(ConfigProblem {
                    path: at(&format!("link_hosts[{i}]")),
                    message: format!("`{host}` is not a host name"),
                });
            }
        }
        if let (Some(name), Some(plugin), Some(settings), true) =
            (name, plugin, settings, p.enabled)
        {
            providers.push(ProviderConfig {
                index,
                name,
                plugin,
                settings,
                link_hosts: p
                    .link_hosts
                    .iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect(),
            });
        }
    }
    providers
}

fn at_least<T: PartialOrd + fmt::Display + Copy>(
    value: T,
    min: T,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    if value < min {
        problems.push(ConfigProblem {
            path: path.to_owned(),
            message: format!("must be at least {min}, got {value}"),
        });
        min
    } else {
        value
    }
}

fn compile_server(raw: &RawServer, base: &Path, problems: &mut Vec<ConfigProblem>) -> ServerConfig {
    let mut addr = |value: &str, path: &str| {
        value.parse::<SocketAddr>().unwrap_or_else(|e| {
            problems.push(ConfigProblem {
                path: path.to_owned(),
                message: format!("`{value}` is not an address like 127.0.0.1:8080: {e}"),
            });
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let public_addr = addr(&raw.public_addr, "server.public_addr");
    let admin_addr = addr(&raw.admin_addr, "server.admin_addr");
    let public_base_url = raw
        .public_base_url
        .as_deref()
        .and_then(|u| match url::Url::parse(u) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https") && parsed.query().is_none() =>
            {
                Some(u.trim_end_matches('/').to_owned())
            }
            _ => {
                problems.push(ConfigProblem {
                    path: "server.public_base_url".to_owned(),
                    message: format!("`{u}` is not an http(s) URL without a query"),
                });
                None
            }
        });
    if !matches!(raw.redirect_status, 302 | 307) {
        problems.push(ConfigProblem {
            path: "server.redirect_status".to_owned(),
            message: format!(
                "must be 302 or 307, got {} (301 is cached by browsers, so later clicks would go uncounted)",
                raw.redirect_status
            ),
        });
    }
    let header = raw.trusted_country_header.trim().to_ascii_lowercase();
    if !header.is_empty() && http::HeaderName::from_bytes(header.as_bytes()).is_err() {
        problems.push(ConfigProblem {
            path: "server.trusted_country_header".to_owned(),
            message: format!("`{header}` is not a valid header name"),
        });
    }
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in raw.trusted_proxies.iter().enumerate() {
        let cidr = cidr.trim();
        // A bare address is a block of one.
        let parsed = cidr
            .parse::<ipnet::IpNet>()
            .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => problems.push(ConfigProblem {
                path: format!("server.trusted_proxies[{i}]"),
                message: format!(
                    "`{cidr}` is not an IP address or CIDR block (10.0.0.0/8, ::1/128)"
                ),
            }),
        }
    }
    ServerConfig {
        trusted_proxies,
        public_addr,
        admin_addr,
        public_base_url,
        data_dir: base.join(&raw.data_dir),
        header_read_timeout: Duration::from_millis(at_least(
            raw.header_read_timeout_ms,
            1,
            "server.header_read_timeout_ms",
            problems,
        )),
        request_timeout: Duration::from_millis(at_least(
            raw.request_timeout_ms,
            1,
            "server.request_timeout_ms",
            problems,
        )),
        max_concurrent_requests: at_least(
            raw.max_concurrent_requests,
            1,
            "server.max_concurrent_requests",
            problems,
        ),
        shutdown_grace: Duration::from_millis(raw.shutdown_grace_ms),
        trusted_country_header: (!header.is_empty()).then_some(header),
        redirect_status: raw.redirect_status,
        listen_backlog: at_least(raw.listen_backlog, 1, "server.listen_backlog", problems),
    }
}

/// Validates `[geoip]`: the database file is read at start (a missing or
/// unreadable file is a start-up error there, with its path).
fn compile_geoip(
    raw: &RawGeoIp,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<GeoIpConfig> {
    let database = raw.database.as_ref()?;
    Some(GeoIpConfig {
        database: base.join(database),
        check_interval: Duration::from_millis(at_least(
            raw.check_interval_ms,
            10,
            "geoip.check_interval_ms",
            problems,
        )),
    })
}

/// Validates `[store]`: a URL, if given, is PostgreSQL's.
fn compile_store(raw: &RawStore, problems: &mut Vec<ConfigProblem>) -> StoreConfig {
    let url = raw.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
    if let Some(url) = url
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        let scheme = url.split_once("://").map_or(url, |(s, _)| s);
        problems.push(ConfigProblem {
            path: "store.url".to_owned(),
            message: format!(
                "`{scheme}` is not a store linkwright knows: use postgres://user:password@host:port/database, or leave store.url out for the embedded SQLite store"
            ),
        });
    }
    if raw.click_retention_months > 0 && url.is_none() {
        problems.push(ConfigProblem {
            path: "store.click_retention_months".to_owned(),
            message: "raw click retention applies to the PostgreSQL store (set store.url)"
                .to_owned(),
        });
    }
    StoreConfig {
        url: url.map(str::to_owned),
        click_retention_months: raw.click_retention_months,
    }
}

/// Validates `[localize]` and collects the providers that localize.
fn compile_localize(
    raw: &RawLocalize,
    providers: &[RawProvider],
    problems: &mut Vec<ConfigProblem>,
) -> LocalizeConfig {
    use linkwright_model::amazon::marketplace_index;
    let fallback = match raw.fallback.trim() {
        "search" => Fallback::Search,
        "own" => Fallback::Own,
        other => {
            problems.push(ConfigProblem {
                path: "localize.fallback".to_owned(),
                message: format!("must be `search` or `own`, got `{other}`"),
            });
            Fallback::Search
        }
    };
    let mut regions = BTreeSet::new();
    for (i, c) in raw.creators.iter().enumerate() {
        match linkwright_model::amazon::Region::of_credential_version(&c.version) {
            Some(region) if !regions.insert(region) => problems.push(ConfigProblem {
                path: format!("localize.creators[{i}].version"),
                message: format!("a second credential for region {region}: one per region"),
            }),
            Some(_) => {}
            None => problems.push(ConfigProblem {
                path: format!("localize.creators[{i}].version"),
                message: format!(
                    "`{}` is not a Creators API credential version (2.1, 2.2, 2.3, 3.1, 3.2, 3.3)",
                    c.version
                ),
            }),
        }
    }
    let mut countries = std::collections::BTreeMap::new();
    for (country, marketplaces) in &raw.countries {
        let path = format!("localize.countries.{country}");
        let code = country.trim().to_ascii_uppercase();
        if !crate::targeting::is_country(&code) {
            problems.push(ConfigProblem {
                path,
                message: "not an ISO 3166-1 alpha-2 country code".to_owned(),
            });
            continue;
        }
        let list: Vec<String> = match marketplaces {
            RawOneOrMany::One(m) => vec![m.clone()],
            RawOneOrMany::Many(ms) => ms.clone(),
        };
        let unknown: Vec<&String> = list
            .iter()
            .filter(|m| marketplace_index(m.trim()).is_none())
            .collect();
        if !unknown.is_empty() {
            problems.push(ConfigProblem {
                path,
                message: format!(
                    "unknown Amazon marketplace(s) {unknown:?}; known: {}",
                    linkwright_model::amazon::MARKETPLACES.join(", ")
                ),
            });
            continue;
        }
        countries.insert(
            code,
            list.iter().map(|m| m.trim().to_ascii_lowercase()).collect(),
        );
    }
    LocalizeConfig {
        providers: providers
            .iter()
            .filter(|p| p.enabled && p.localize)
            .filter_map(|p| p.name.as_deref().map(|n| n.trim().to_owned()))
            .collect(),
        fallback,
        refresh: Duration::from_secs(
            3600 * at_least(raw.refresh_hours, 1, "localize.refresh_hours", problems),
        ),
        retry: Duration::from_millis(at_least(raw.retry_ms, 10, "localize.retry_ms", problems)),
        countries,
        creators: raw.creators.clone(),
    }
}

/// Validates `[conversions]`: known format names, known fields per format,
/// non-empty headers, currencies, date orders, and the Awin pull settings.
fn compile_conversions(
    raw: &RawConversions,
    problems: &mut Vec<ConfigProblem>,
) -> crate::conversions::ConversionsConfig {
    use crate::conversions::dates::DateOrder;
    use crate::conversions::{ConversionsConfig, Format, FormatSettings};
    let mut config = ConversionsConfig::default();
    for (name, raw_format) in &raw.formats {
        let at = |key: &str| format!("conversions.formats.{name}{key}");
        let Some(format) = Format::parse(name) else {
            problems.push(ConfigProblem {
                path: at(""),
                message: format!("unknown format; known formats: {}", Format::names()),
            });
            continue;
        };
        let mut settings = FormatSettings::defaults(format);
        for (field, headers) in &raw_format.columns {
            let headers: Vec<String> = match headers {
                RawColumnHeaders::One(h) => vec![h.trim().to_owned()],
                RawColumnHeaders::Many(hs) => hs.iter().map(|h| h.trim().to_owned()).collect(),
            };
            let Some(slot) = settings.columns.iter_mut().find(|(f, _)| f == field) else {
                let known: Vec<&str> = format.fields().iter().map(|f| f.name).collect();
                problems.push(ConfigProblem {
                    path: at(&format!(".columns.{field}")),
                    message: if known.is_empty() {
                        format!("unknown field: {format} reads the API's fixed field names and has no column mapping")
                    } else {
                        format!("unknown field; the fields of {format} are {}", known.join(", "))
                    },
                });
                continue;
            };
            if headers.is_empty() || headers.iter().any(|h| h.is_empty()) {
                problems.push(ConfigProblem {
                    path: at(&format!(".columns.{field}")),
                    message: "give the column's header (a non-empty string or list of strings)"
                        .to_owned(),
                });
                continue;
            }
            slot.1 = headers;
        }
        if let Some(currency) = &raw_format.currency {
            let c = currency.trim();
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) {
                settings.currency = Some(c.to_ascii_uppercase());
            } else {
                problems.push(ConfigProblem {
                    path: at(".currency"),
                    message: format!("`{currency}` is not an ISO 4217 code like USD"),
                });
            }
        }
        if let Some(order) = &raw_format.date_order {
            match DateOrder::parse(order) {
                Some(o) => settings.date_order = o,
                None => problems.push(ConfigProblem {
                    path: at(".date_order"),
                    message: format!("must be `mdy` or `dmy`, got `{order}`"),
                }),
            }
        }
        config.set_format(format, settings);
    }

    let a = &raw.awin;
    match url::Url::parse(&a.api_base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() => {
            config.awin.api_base = a.api_base.trim_end_matches('/').to_owned();
        }
        _ => problems.push(ConfigProblem {
            path: "conversions.awin.api_base".to_owned(),
            message: format!("`{}` is not an http(s) base URL", a.api_base),
        }),
    }
    match a.publisher_id.as_deref().map(str::trim) {
        None => {}
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            config.awin.publisher_id = Some(id.to_owned());
        }
        Some(id) => problems.push(ConfigProblem {
            path: "conversions.awin.publisher_id".to_owned(),
            message: format!("`{id}` is not an Awin publisher id (digits)"),
        }),
    }
    let env = a.token_env.trim();
    if env.is_empty() || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        problems.push(ConfigProblem {
            path: "conversions.awin.token_env".to_owned(),
            message: format!(
                "`{}` is not an environment variable name (letters, digits, `_`)",
                a.token_env
            ),
        });
    } else {
        config.awin.token_env = env.to_owned();
    }
    config.awin.calls_per_minute = at_least(
        a.calls_per_minute,
        1,
        "conversions.awin.calls_per_minute",
        problems,
    );
    config.awin.timeout = Duration::from_millis(at_least(
        a.timeout_ms,
        1,
        "conversions.awin.timeout_ms",
        problems,
    ));
    config.awin.retries = a.retries;
    config.awin.backoff = Duration::from_millis(a.backoff_ms);
    config.awin.max_response_bytes = at_least(
        a.max_response_bytes,
        1,
        "conversions.awin.max_response_bytes",
        problems,
    );
    config
}

/// Whether an ignored key path lies inside a provider's `config` table.
fn is_provider_setting(path: &str) -> bool {
    path.strip_prefix("providers.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(_, rest)| rest == "config" || rest.starts_with("config."))
}

/// `providers.1.nmae` → `providers[1].nmae`.
fn bracket_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for part in path.split('.') {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(part);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn valid_provider_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
