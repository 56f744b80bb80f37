//! Configuration: a raw serde structure parsed from TOML, compiled by one
//! function ([`Config::from_toml_str`]) into a validated [`Config`].
//!
//! Every problem is reported at once with its key path, unknown keys included,
//! so an operator fixes a config in one pass.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::click::MAX_NODE_ID;

/// The config file name looked for when none is given.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// The config file as written: every field optional where a default exists.
#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    /// Where plugin files are looked for.
    #[serde(default)]
    plugins: RawPlugins,
    /// Click ID generation.
    #[serde(default)]
    click_ids: RawClickIds,
    /// One entry per provider instance.
    #[serde(default)]
    providers: Vec<RawProvider>,
    /// The HTTP listeners.
    #[serde(default)]
    server: RawServer,
    /// In-memory caches.
    #[serde(default)]
    cache: RawCache,
    /// The click log's queue and writer.
    #[serde(default)]
    click_log: RawClickLog,
    /// The admin API.
    #[serde(default)]
    api: RawApi,
    /// Outbound HTTP (short-link expansion).
    #[serde(default)]
    upstream: RawUpstream,
    /// Conversion import: report formats and pulling from Awin.
    #[serde(default)]
    conversions: RawConversions,
}

/// `[conversions]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConversions {
    /// Per report format (`amazon-earnings`, `amazon-orders`,
    /// `amazon-bounty`, `awin-csv`, `awin-json`): how its files are read.
    formats: std::collections::BTreeMap<String, RawConversionFormat>,
    /// Pulling transactions from Awin's publisher API.
    awin: RawAwinPull,
}

/// `[conversions.formats.<format>]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConversionFormat {
    /// Field → the report's column header: a string, or a list of headers
    /// tried in order (`sub_id = ["Sub Tag", "SubTag"]`). Fields not given
    /// keep their default headers.
    columns: std::collections::BTreeMap<String, RawColumnHeaders>,
    /// ISO 4217 currency of the amounts when the report does not name one.
    currency: Option<String>,
    /// How to read slashed or dashed dates whose year comes last: `mdy`
    /// (11/03/2026 is 3 November) or `dmy` (03/11/2026 is 3 November).
    /// Default: `mdy` for Amazon, `dmy` for Awin.
    date_order: Option<String>,
}

/// One header or several alternatives.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawColumnHeaders {
    /// One header.
    One(String),
    /// Headers tried in order.
    Many(Vec<String>),
}

/// `[conversions.awin]`
#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawAwinPull {
    /// Base URL of the Awin API.
    api_base: String,
    /// Your Awin publisher id (digits); needed to pull.
    publisher_id: Option<String>,
    /// The environment variable holding the OAuth token (never put the
    /// token itself in the config file).
    token_env: String,
    /// The API's call budget: calls start at least 60 s / this apart.
    calls_per_minute: u32,
    /// Time limit of one call.
    timeout_ms: u64,
    /// Retries of a transient failure (timeout, 408, 429, 5xx).
    retries: u32,
    /// First retry delay; doubles each time.
    backoff_ms: u64,
    /// The most bytes read of one answer.
    max_response_bytes: usize,
}

impl Default for RawAwinPull {
    fn default() -> Self {
        let d = crate::conversions::AwinPullConfig::default();
        RawAwinPull {
            api_base: d.api_base,
            publisher_id: d.publisher_id,
            token_env: d.token_env,
            calls_per_minute: d.calls_per_minute,
            timeout_ms: d.timeout.as_millis() as u64,
            retries: d.retries,
            backoff_ms: d.backoff.as_millis() as u64,
            max_response_bytes: d.max_response_bytes,
        }
    }
}

/// `[api]`
#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawApi {
    /// Requests per minute per API key; 0: unlimited.
    rate_limit_per_minute: u32,
    /// Requests a key may make at once before the rate applies.
    rate_limit_burst: u32,
    /// Host names bulk-job webhooks may call; empty: webhooks are refused.
    webhook_hosts: Vec<String>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            rate_limit_per_minute: 600,
            rate_limit_burst: 60,
            webhook_hosts: Vec::new(),
        }
    }
}

/// `[upstream]`
#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawUpstream {
    /// Per-request timeout of outbound calls.
    timeout_ms: u64,
    /// Most redirects followed when expanding a short link.
    max_hops: u32,
    /// Retries of transient failures.
    retries: u32,
    /// First retry delay; doubles each time.
    backoff_ms: u64,
    /// Send requests for a short-link host to another base URL instead
    /// (`{ "amzn.to" = "http://127.0.0.1:8099" }`), for tests and egress proxies.
    short_link_override: std::collections::HashMap<String, String>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            timeout_ms: 5_000,
            max_hops: 5,
            retries: 2,
            backoff_ms: 200,
            short_link_override: Default::default(),
        }
    }
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawServer {
    /// Address of the public redirect host.
    public_addr: String,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`, API).
    admin_addr: String,
    /// Base URL of short links (`https://go.example.com`); default:
    /// `http://<public_addr>`.
    public_base_url: Option<String>,
    /// Folder of the embedded store, relative to the config file.
    data_dir: PathBuf,
    /// A client must send its request headers within this time.
    header_read_timeout_ms: u64,
    /// A request must be answered within this time.
    request_timeout_ms: u64,
    /// Requests served at once per listener; more are shed with 503.
    max_concurrent_requests: usize,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    shutdown_grace_ms: u64,
    /// A header set by a trusted proxy carrying the visitor's country
    /// (`CF-IPCountry`); empty: none.
    trusted_country_header: String,
    /// Redirect status: 302 or 307 (never 301: browsers cache it).
    redirect_status: u16,
    /// Listen backlog of the public socket.
    listen_backlog: u32,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            public_addr: "127.0.0.1:8080".into(),
            admin_addr: "127.0.0.1:9228".into(),
            public_base_url: None,
            data_dir: PathBuf::from("data"),
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 10_000,
            max_concurrent_requests: 10_000,
            shutdown_grace_ms: 10_000,
            trusted_country_header: String::new(),
            redirect_status: 302,
            listen_backlog: 4096,
        }
    }
}

/// `[cache]`
#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawCache {
    /// Links kept in memory by code.
    max_links: usize,
    /// Unknown codes remembered, so scans of random codes do not reach the store.
    max_missing: usize,
    /// Middleware-mode (`/go?url=`) URLs kept in memory.
    max_go_urls: usize,
    /// How often a server reads the link changes made by other processes
    /// (the CLI, other instances sharing the store).
    link_refresh_ms: u64,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            max_links: 1_000_000,
            max_missing: 100_000,
            max_go_urls: 100_000,
            link_refresh_ms: 1_000,
        }
    }
}

/// `[click_log]`
#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawClickLog {
    /// Click events waiting for the writer; when full, new events are dropped
    /// and counted.
    queue_capacity: usize,
    /// Most events written in one transaction.
    batch_size: usize,
    /// The writer flushes at least this often. A crash loses at most the
    /// events of one window.
    flush_interval_ms: u64,
}

impl Default for RawClickLog {
    fn default() -> Self {
        RawClickLog {
            queue_capacity: 131_072,
            batch_size: 4_096,
            flush_interval_ms: 200,
        }
    }
}

/// `[plugins]`
#[derive(Debug, Default, Deserialize)]
struct RawPlugins {
    /// Folders searched for plugin files, in order. Relative paths are taken
    /// from the config file's folder. Default: the running executable's folder
    /// and its `deps/` subfolder (where cargo puts dependency libraries).
    #[serde(default)]
    dirs: Vec<PathBuf>,
}

/// `[click_ids]`
#[derive(Debug, Default, Deserialize)]
struct RawClickIds {
    /// This instance's node id, 0..=4095; unique per instance that shares a
    /// store, so click IDs never collide without coordination.
    #[serde(default)]
    node_id: u64,
}

/// `[[providers]]`
#[derive(Debug, Deserialize)]
struct RawProvider {
    /// The provider's name: how links, metrics and the API refer to it.
    name: Option<String>,
    /// The plugin that implements it: a name (`amazon` → `liblinkwright_amazon.so`
    /// in the plugin folders) or a path to a shared library.
    plugin: Option<String>,
    /// Set to false to keep the entry but not load it.
    #[serde(default = "default_true")]
    enabled: bool,
    /// The provider's own settings, handed to the plugin as a JSON object.
    #[serde(default)]
    config: toml::Table,
}

fn default_true() -> bool {
    true
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folders searched for plugin files, in order, already resolved.
    pub plugin_dirs: Vec<PathBuf>,
    /// This instance's node id for click IDs.
    pub node_id: u16,
    /// Enabled providers, in config order (the routing order).
    pub providers: Vec<ProviderConfig>,
    /// The HTTP listeners.
    pub server: ServerConfig,
    /// Cache bounds.
    pub cache: CacheConfig,
    /// Click log settings.
    pub click_log: ClickLogConfig,
    /// Admin API settings.
    pub api: ApiConfig,
    /// Outbound HTTP settings.
    pub upstream: UpstreamConfig,
    /// Conversion import settings.
    pub conversions: crate::conversions::ConversionsConfig,
}

/// `[api]`, validated.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Requests per minute per key; 0: unlimited.
    pub rate_limit_per_minute: u32,
    /// Burst.
    pub rate_limit_burst: u32,
    /// Hosts bulk-job webhooks may call, lower case.
    pub webhook_hosts: Vec<String>,
}

/// `[upstream]`, validated.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Short-link expansion settings.
    pub expand: crate::expand::ExpandConfig,
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Public redirect host address.
    pub public_addr: SocketAddr,
    /// Admin listener address.
    pub admin_addr: SocketAddr,
    /// Base URL of short links, without a trailing slash; `None`: from the
    /// public address actually bound.
    pub public_base_url: Option<String>,
    /// Folder of the embedded store.
    pub data_dir: PathBuf,
    /// Header-read timeout.
    pub header_read_timeout: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Concurrency limit per listener.
    pub max_concurrent_requests: usize,
    /// Shutdown drain deadline.
    pub shutdown_grace: Duration,
    /// Trusted country header, lower-case.
    pub trusted_country_header: Option<String>,
    /// 302 or 307.
    pub redirect_status: u16,
    /// Public socket listen backlog.
    pub listen_backlog: u32,
}

/// `[cache]`, validated.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Links kept in memory.
    pub max_links: usize,
    /// Unknown codes remembered.
    pub max_missing: usize,
    /// Middleware-mode URLs kept.
    pub max_go_urls: usize,
    /// How often the server reads link changes made by other processes.
    pub link_refresh: Duration,
}

/// `[click_log]`, validated.
#[derive(Debug, Clone, Copy)]
pub struct ClickLogConfig {
    /// Queue capacity.
    pub queue_capacity: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Flush interval.
    pub flush_interval: Duration,
}

/// One provider instance.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Position in the config's `providers` array, for key paths in errors.
    pub index: usize,
    /// The provider's name.
    pub name: String,
    /// The plugin: a name or a resolved path.
    pub plugin: PluginRef,
    /// The provider's table, as JSON for the plugin.
    pub settings: serde_json::Value,
}

/// How a provider names its plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginRef {
    /// Found by name in the plugin folders.
    Name(String),
    /// An explicit file.
    Path(PathBuf),
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginRef::Name(n) => f.write_str(n),
            PluginRef::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One problem in a config: the key path and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path (`providers[1].name`); empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but has problems; all of them are listed.
    #[error("{} problem(s) in {origin}:\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Where the config came from (a file name).
        origin: String,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    /// The problems, if the config was read.
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

impl Config {
    /// Reads and compiles a config file. Relative paths inside it are taken
    /// from the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        Self::compile(&text, &path.display().to_string(), &base)
    }

    /// Compiles a config from TOML text; relative paths are taken from the
    /// current folder.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::compile(text, "config", Path::new(""))
    }

    fn compile(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        };
        let mut problems = Vec::new();
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            invalid(vec![ConfigProblem {
                path: String::new(),
                message: e.to_string().trim_end().to_owned(),
            }])
        })?;
        let mut unknown = Vec::new();
        let raw: RawConfig = serde_ignored::deserialize(deserializer, |path| {
            unknown.push(path.to_string());
        })
        .map_err(|e| {
            invalid(vec![ConfigProblem {
                path: String::new(),
                message: e.to_string().trim_end().to_owned(),
            }])
        })?;
        for path in unknown {
            // Provider tables belong to their plugins, which check them.
            if !is_provider_setting(&path) {
                problems.push(ConfigProblem {
                    path: bracket_indices(&path),
                    message: "unknown key".to_owned(),
                });
            }
        }

        let node_id = match u16::try_from(raw.click_ids.node_id) {
            Ok(n) if n <= MAX_NODE_ID => n,
            _ => {
                problems.push(ConfigProblem {
                    path: "click_ids.node_id".to_owned(),
                    message: format!(
                        "must be between 0 and {MAX_NODE_ID}, got {}",
                        raw.click_ids.node_id
                    ),
                });
                0
            }
        };

        let server = compile_server(&raw.server, base, &mut problems);
        let cache = CacheConfig {
            max_links: at_least(raw.cache.max_links, 1, "cache.max_links", &mut problems),
            max_missing: at_least(raw.cache.max_missing, 1, "cache.max_missing", &mut problems),
            max_go_urls: at_least(raw.cache.max_go_urls, 1, "cache.max_go_urls", &mut problems),
            link_refresh: Duration::from_millis(at_least(
                raw.cache.link_refresh_ms,
                10,
                "cache.link_refresh_ms",
                &mut problems,
            )),
        };
        let click_log = ClickLogConfig {
            queue_capacity: at_least(
                raw.click_log.queue_capacity,
                1,
                "click_log.queue_capacity",
                &mut problems,
            ),
            batch_size: at_least(
                raw.click_log.batch_size,
                1,
                "click_log.batch_size",
                &mut problems,
            ),
            flush_interval: Duration::from_millis(at_least(
                raw.click_log.flush_interval_ms,
                1,
                "click_log.flush_interval_ms",
                &mut problems,
            )),
        };

        let api = ApiConfig {
            rate_limit_per_minute: raw.api.rate_limit_per_minute,
            rate_limit_burst: at_least(
                raw.api.rate_limit_burst,
                1,
                "api.rate_limit_burst",
                &mut problems,
            ),
            webhook_hosts: raw
                .api
                .webhook_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        };
        let mut expand = crate::expand::ExpandConfig {
            timeout: Duration::from_millis(at_least(
                raw.upstream.timeout_ms,
                1,
                "upstream.timeout_ms",
                &mut problems,
            )),
            max_hops: at_least(raw.upstream.max_hops, 1, "upstream.max_hops", &mut problems),
            retries: raw.upstream.retries,
            backoff: Duration::from_millis(raw.upstream.backoff_ms),
            ..Default::default()
        };
        for (host, base) in &raw.upstream.short_link_override {
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
        let upstream = UpstreamConfig { expand };
        let conversions = compile_conversions(&raw.conversions, &mut problems);

        let plugin_dirs = if raw.plugins.dirs.is_empty() {
            default_plugin_dirs()
        } else {
            raw.plugins.dirs.iter().map(|d| base.join(d)).collect()
        };

        let mut providers = Vec::new();
        let mut names = BTreeSet::new();
        for (index, p) in raw.providers.into_iter().enumerate() {
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
            if let (Some(name), Some(plugin), Some(settings), true) =
                (name, plugin, settings, p.enabled)
            {
                providers.push(ProviderConfig {
                    index,
                    name,
                    plugin,
                    settings,
                });
            }
        }

        if problems.is_empty() {
            Ok(Config {
                plugin_dirs,
                node_id,
                providers,
                server,
                cache,
                click_log,
                api,
                upstream,
                conversions,
            })
        } else {
            Err(invalid(problems))
        }
    }
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
    ServerConfig {
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

/// The running executable's folder and its `deps/` subfolder.
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    match std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        Some(dir) => vec![dir.clone(), dir.join("deps")],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml_str(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn empty_config_is_valid_with_defaults() {
        let c = Config::from_toml_str("").expect("empty config");
        assert_eq!(c.node_id, 0);
        assert!(c.providers.is_empty());
        assert_eq!(c.plugin_dirs, default_plugin_dirs());
    }

    #[test]
    fn provider_table_becomes_json_for_the_plugin() {
        let c = Config::from_toml_str(
            r#"
            [[providers]]
            name = "amazon"
            plugin = "amazon"
            [providers.config]
            default_marketplace = "amazon.de"
            tags = { "amazon.de" = "x-21" }
            "#,
        )
        .expect("valid");
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers[0].plugin, PluginRef::Name("amazon".into()));
        assert_eq!(
            c.providers[0].settings,
            serde_json::json!({"default_marketplace": "amazon.de", "tags": {"amazon.de": "x-21"}})
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key_path() {
        let got = problems(
            r#"
            colour = "blue"
            [click_ids]
            node_id = 5000
            [plugins]
            dris = ["x"]
            [[providers]]
            name = "amazon"
            plugin = "amazon"
            [[providers]]
            name = "amazon"
            plugin = "Bad Name"
            [[providers]]
            nmae = "typo"
            plugin = "awin"
            "#,
        );
        assert_eq!(
            got,
            vec![
                "colour: unknown key",
                "plugins.dris: unknown key",
                "providers[2].nmae: unknown key",
                "click_ids.node_id: must be between 0 and 4095, got 5000",
                "providers[1].name: duplicate provider name `amazon`",
                "providers[1].plugin: `Bad Name` is neither a plugin name (lowercase letters, digits, `-`, `_`) nor a path",
                "providers[2].name: missing: every provider needs a name",
            ]
        );
    }

    #[test]
    fn plugin_with_a_slash_is_a_path_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("lw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("lw.toml");
        std::fs::write(
            &file,
            "[[providers]]\nname = \"c\"\nplugin = \"./plugins/libc_example.so\"\n[plugins]\ndirs = [\"lib\"]\n",
        )
        .expect("write");
        let c = Config::load(&file).expect("valid");
        assert_eq!(
            c.providers[0].plugin,
            PluginRef::Path(dir.join("./plugins/libc_example.so"))
        );
        assert_eq!(c.plugin_dirs, vec![dir.join("lib")]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn syntax_error_names_the_line() {
        let got = problems("[[providers]\nname = 1");
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("line 1"), "{got:?}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let got = problems("[click_ids]\nnode_id = \"seven\"");
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("node_id"), "{got:?}");
    }

    #[test]
    fn disabled_provider_is_validated_but_not_loaded() {
        let c = Config::from_toml_str(
            "[[providers]]\nname = \"a\"\nplugin = \"amazon\"\nenabled = false\n",
        )
        .expect("valid");
        assert!(c.providers.is_empty());
    }

    #[test]
    fn conversion_formats_take_columns_currency_and_date_order() {
        use crate::conversions::Format;
        use crate::conversions::dates::DateOrder;
        let c = Config::from_toml_str(
            r#"
            [conversions.formats.amazon-earnings]
            currency = "eur"
            date_order = "dmy"
            [conversions.formats.amazon-earnings.columns]
            sub_id = "Sub Tag ID"
            date = ["Shipped", "Date Shipped"]
            [conversions.awin]
            publisher_id = "123456"
            api_base = "http://127.0.0.1:9/"
            calls_per_minute = 600
            "#,
        )
        .expect("valid");
        let f = c.conversions.format(Format::AmazonEarnings);
        assert_eq!(f.headers("sub_id"), ["Sub Tag ID"]);
        assert_eq!(f.headers("date"), ["Shipped", "Date Shipped"]);
        assert_eq!(
            f.headers("asin"),
            ["ASIN"],
            "unset fields keep their defaults"
        );
        assert_eq!(f.currency.as_deref(), Some("EUR"));
        assert_eq!(f.date_order, DateOrder::DayFirst);
        let orders = c.conversions.format(Format::AmazonOrders);
        assert_eq!(orders.headers("sub_id"), ["Sub Tag", "SubTag", "ascsubtag"]);
        assert_eq!(orders.date_order, DateOrder::MonthFirst);
        assert_eq!(c.conversions.awin.api_base, "http://127.0.0.1:9");
        assert_eq!(c.conversions.awin.publisher_id.as_deref(), Some("123456"));
        assert_eq!(c.conversions.awin.token_env, "AWIN_API_TOKEN");
        assert_eq!(c.conversions.awin.spacing(), Duration::from_millis(100));
        let d = Config::from_toml_str("").expect("empty");
        assert_eq!(d.conversions.awin.api_base, "https://api.awin.com");
        assert_eq!(d.conversions.awin.spacing(), Duration::from_secs(3));
    }

    #[test]
    fn conversion_config_problems_name_their_keys() {
        let got = problems(
            r#"
            [conversions.formats.amazon-earnigs.columns]
            sub_id = "x"
            [conversions.formats.amazon-orders]
            currency = "dollars"
            date_order = "ymd"
            colums = {}
            [conversions.formats.amazon-orders.columns]
            subid = "x"
            asin = ""
            [conversions.formats.awin-json.columns]
            id = "ID"
            [conversions.awin]
            publisher_id = "abc"
            token_env = "MY TOKEN"
            calls_per_minute = 0
            api_base = "ftp://x"
            token = "secret"
            "#,
        );
        assert_eq!(
            got,
            vec![
                "conversions.awin.token: unknown key",
                "conversions.formats.amazon-orders.colums: unknown key",
                "conversions.formats.amazon-earnigs: unknown format; known formats: amazon-earnings, amazon-orders, amazon-bounty, awin-csv, awin-json",
                "conversions.formats.amazon-orders.columns.asin: give the column's header (a non-empty string or list of strings)",
                "conversions.formats.amazon-orders.columns.subid: unknown field; the fields of amazon-orders are category, name, asin, date, quantity, returns, price, revenue, commission, tracking_id, sub_id",
                "conversions.formats.amazon-orders.currency: `dollars` is not an ISO 4217 code like USD",
                "conversions.formats.amazon-orders.date_order: must be `mdy` or `dmy`, got `ymd`",
                "conversions.formats.awin-json.columns.id: unknown field: awin-json reads the API's fixed field names and has no column mapping",
                "conversions.awin.api_base: `ftp://x` is not an http(s) base URL",
                "conversions.awin.publisher_id: `abc` is not an Awin publisher id (digits)",
                "conversions.awin.token_env: `MY TOKEN` is not an environment variable name (letters, digits, `_`)",
                "conversions.awin.calls_per_minute: must be at least 1, got 0",
            ]
        );
    }
}
