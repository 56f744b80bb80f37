//! The config file as written: serde structures, every field optional
//! where a default exists. Only [`super::compile`] reads them.

use std::path::PathBuf;

use serde::Deserialize;

/// The config file as written: every field optional where a default exists.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawConfig {
    /// Where plugin files are looked for.
    #[serde(default)]
    pub(super) plugins: RawPlugins,
    /// Click ID generation.
    #[serde(default)]
    pub(super) click_ids: RawClickIds,
    /// One entry per provider instance.
    #[serde(default)]
    pub(super) providers: Vec<RawProvider>,
    /// The HTTP listeners.
    #[serde(default)]
    pub(super) server: RawServer,
    /// In-memory caches.
    #[serde(default)]
    pub(super) cache: RawCache,
    /// The click log's queue and writer.
    #[serde(default)]
    pub(super) click_log: RawClickLog,
    /// The admin API.
    #[serde(default)]
    pub(super) api: RawApi,
    /// The web console on the admin listener.
    #[serde(default)]
    pub(super) console: RawConsole,
    /// Outbound HTTP (short-link expansion).
    #[serde(default)]
    pub(super) upstream: RawUpstream,
    /// Conversion import: report formats and pulling from Awin.
    #[serde(default)]
    pub(super) conversions: RawConversions,
    /// The geo database that gives a visitor's country from their address.
    #[serde(default)]
    pub(super) geoip: RawGeoIp,
    /// Amazon localization.
    #[serde(default)]
    pub(super) localize: RawLocalize,
    /// Where links, clicks and the rest are kept.
    #[serde(default)]
    pub(super) store: RawStore,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawStore {
    /// `postgres://…` to share a PostgreSQL database between instances;
    /// unset: the embedded SQLite file under `server.data_dir`.
    pub(super) url: Option<String>,
    /// PostgreSQL: months of raw clicks kept, the current one included
    /// (older monthly partitions are dropped; the rollup keeps their sums).
    /// 0: all.
    pub(super) click_retention_months: u32,
}

/// `[geoip]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawGeoIp {
    /// A MaxMind-format country database (GeoLite2-Country, GeoIP2-Country,
    /// DB-IP lite `.mmdb`); relative to the config file. None: no lookups.
    pub(super) database: Option<PathBuf>,
    /// How often the file is checked for a newer version.
    pub(super) check_interval_ms: u64,
}

impl Default for RawGeoIp {
    fn default() -> Self {
        RawGeoIp {
            database: None,
            check_interval_ms: 10_000,
        }
    }
}

/// `[localize]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawLocalize {
    /// Where a shopper goes when the product is not sold in their store:
    /// `search` (a search there for its title) or `own` (the link's own).
    pub(super) fallback: String,
    /// How often a localized link's availability is checked again.
    pub(super) refresh_hours: u64,
    /// How often the background task looks for links to check again;
    /// an availability assumed because the catalog was down is retried
    /// this often.
    pub(super) retry_ms: u64,
    /// Country → marketplace(s), overriding the default table.
    pub(super) countries: std::collections::BTreeMap<String, RawOneOrMany>,
    /// Amazon Creators API credentials, one per region (`[[localize.creators]]`).
    pub(super) creators: Vec<crate::creators::CreatorsConfig>,
}

impl Default for RawLocalize {
    fn default() -> Self {
        RawLocalize {
            fallback: "search".into(),
            refresh_hours: 24,
            retry_ms: 60_000,
            countries: Default::default(),
            creators: Vec::new(),
        }
    }
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawOneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `[conversions]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawConversions {
    /// Per report format (`amazon-earnings`, `amazon-orders`,
    /// `amazon-bounty`, `awin-csv`, `awin-json`): how its files are read.
    pub(super) formats: std::collections::BTreeMap<String, RawConversionFormat>,
    /// Pulling transactions from Awin's publisher API.
    pub(super) awin: RawAwinPull,
}

/// `[conversions.formats.<format>]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawConversionFormat {
    /// Field → the report's column header: a string, or a list of headers
    /// tried in order (`sub_id = ["Sub Tag", "SubTag"]`). Fields not given
    /// keep their default headers.
    pub(super) columns: std::collections::BTreeMap<String, RawColumnHeaders>,
    /// ISO 4217 currency of the amounts when the report does not name one.
    pub(super) currency: Option<String>,
    /// How to read slashed or dashed dates whose year comes last: `mdy`
    /// (11/03/2026 is 3 November) or `dmy` (03/11/2026 is 3 November).
    /// Default: `mdy` for Amazon, `dmy` for Awin.
    pub(super) date_order: Option<String>,
}

/// One header or several alternatives.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawColumnHeaders {
    /// One header.
    One(String),
    /// Headers tried in order.
    Many(Vec<String>),
}

/// `[conversions.awin]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawAwinPull {
    /// Base URL of the Awin API.
    pub(super) api_base: String,
    /// Your Awin publisher id (digits); needed to pull.
    pub(super) publisher_id: Option<String>,
    /// The environment variable holding the OAuth token (never put the
    /// token itself in the config file).
    pub(super) token_env: String,
    /// The API's call budget: calls start at least 60 s / this apart.
    pub(super) calls_per_minute: u32,
    /// Time limit of one call.
    pub(super) timeout_ms: u64,
    /// Retries of a transient failure (timeout, 408, 429, 5xx).
    pub(super) retries: u32,
    /// First retry delay; doubles each time.
    pub(super) backoff_ms: u64,
    /// The most bytes read of one answer.
    pub(super) max_response_bytes: usize,
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
pub(super) struct RawApi {
    /// Requests per minute per API key; 0: unlimited.
    pub(super) rate_limit_per_minute: u32,
    /// Requests a key may make at once before the rate applies.
    pub(super) rate_limit_burst: u32,
    /// Host names bulk-job webhooks may call; empty: webhooks are refused.
    pub(super) webhook_hosts: Vec<String>,
    /// How often, in milliseconds, an instance renews its claims on the
    /// bulk jobs it runs and looks for jobs nobody runs; a claim not
    /// renewed for ten times this is taken over by another instance.
    pub(super) job_claim_interval_ms: u64,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            rate_limit_per_minute: 600,
            rate_limit_burst: 60,
            webhook_hosts: Vec::new(),
            job_claim_interval_ms: 2_000,
        }
    }
}

/// `[console]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawConsole {
    /// How long a console session lasts after sign-in, in milliseconds.
    pub(super) session_ttl_ms: u64,
    /// Failed sign-ins allowed per minute per client address; 0: unlimited.
    pub(super) sign_in_failures_per_minute: u32,
    /// Failed sign-ins a client address may make at once before the rate applies.
    pub(super) sign_in_failure_burst: u32,
}

impl Default for RawConsole {
    fn default() -> Self {
        RawConsole {
            session_ttl_ms: 12 * 60 * 60 * 1000,
            sign_in_failures_per_minute: 10,
            sign_in_failure_burst: 5,
        }
    }
}

/// `[upstream]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawUpstream {
    /// Per-request timeout of outbound calls.
    pub(super) timeout_ms: u64,
    /// Most redirects followed when expanding a short link.
    pub(super) max_hops: u32,
    /// Retries of transient failures.
    pub(super) retries: u32,
    /// First retry delay; doubles each time.
    pub(super) backoff_ms: u64,
    /// Send requests for a short-link host to another base URL instead
    /// (`{ "amzn.to" = "http://127.0.0.1:8099" }`), for tests and egress proxies.
    pub(super) short_link_override: std::collections::HashMap<String, String>,
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
pub(super) struct RawServer {
    /// Address of the public redirect host.
    pub(super) public_addr: String,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`, API).
    pub(super) admin_addr: String,
    /// Base URL of short links (`https://go.example.com`); default:
    /// `http://<public_addr>`.
    pub(super) public_base_url: Option<String>,
    /// Folder of the embedded store, relative to the config file.
    pub(super) data_dir: PathBuf,
    /// A client must send its request headers within this time.
    pub(super) header_read_timeout_ms: u64,
    /// A request must be answered within this time.
    pub(super) request_timeout_ms: u64,
    /// Requests served at once per listener; more are shed with 503.
    pub(super) max_concurrent_requests: usize,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    pub(super) shutdown_grace_ms: u64,
    /// A header set by a trusted proxy carrying the visitor's country
    /// (`CF-IPCountry`); empty: none.
    pub(super) trusted_country_header: String,
    /// Proxies (CIDR blocks) whose `X-Forwarded-For` / `Forwarded` header
    /// gives the client's address; from any other peer it is ignored.
    pub(super) trusted_proxies: Vec<String>,
    /// Redirect status: 302 or 307 (never 301: browsers cache it).
    pub(super) redirect_status: u16,
    /// Listen backlog of the public socket.
    pub(super) listen_backlog: u32,
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
            trusted_proxies: Vec::new(),
            redirect_status: 302,
            listen_backlog: 4096,
        }
    }
}

/// `[cache]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawCache {
    /// Links kept in memory by code.
    pub(super) max_links: usize,
    /// Unknown codes remembered, so scans of random codes do not reach the store.
    pub(super) max_missing: usize,
    /// Middleware-mode (`/go?url=`) URLs kept in memory.
    pub(super) max_go_urls: usize,
    /// How often a server reads the link changes made by other processes
    /// (the CLI, other instances sharing the store).
    pub(super) link_refresh_ms: u64,
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
pub(super) struct RawClickLog {
    /// Click events waiting for the writer, in memory; beyond it, clicks
    /// with a click ID wait in their journal segment only (written from
    /// there), and bot hits are dropped and counted.
    pub(super) queue_capacity: usize,
    /// Most events written in one transaction.
    pub(super) batch_size: usize,
    /// The writer flushes at least this often. A crash loses at most the
    /// events of one window.
    pub(super) flush_interval_ms: u64,
    /// The click journal (segments under `<data dir>/journal`, which a crash
    /// leaves for the next start) is synced to disk this often: power loss
    /// loses at most the clicks of one interval.
    pub(super) sync_interval_ms: u64,
    /// Size of one click journal segment file, in bytes (a click takes about
    /// 40); each busy thread keeps one or two.
    pub(super) segment_bytes: usize,
}

impl Default for RawClickLog {
    fn default() -> Self {
        RawClickLog {
            queue_capacity: 131_072,
            batch_size: 4_096,
            flush_interval_ms: 200,
            sync_interval_ms: 1_000,
            segment_bytes: 4 << 20,
        }
    }
}

/// `[plugins]`
#[derive(Debug, Deserialize)]
pub(super) struct RawPlugins {
    /// Folders searched for plugin files first, in order. Relative paths are
    /// taken from the config file's folder. After them come the built-in
    /// places ([`default_plugin_dirs`]): the running executable's folder, its
    /// `deps/` subfolder (where cargo puts dependency libraries) and, for an
    /// executable installed in `<prefix>/bin`, `<prefix>/lib/linkwright/plugins`.
    #[serde(default)]
    pub(super) dirs: Vec<PathBuf>,
    /// The time budget of one plugin call (a template build, a
    /// description), in milliseconds: a call past it fails naming the
    /// provider, which is then disabled until restart.
    #[serde(default = "default_call_timeout_ms")]
    pub(super) call_timeout_ms: u64,
    /// Probe each plugin in a child process before loading it (the commands
    /// that serve or build links do): one that crashes or hangs there is
    /// refused.
    #[serde(default = "default_true")]
    pub(super) probe: bool,
}

fn default_call_timeout_ms() -> u64 {
    2_000
}

impl Default for RawPlugins {
    fn default() -> Self {
        RawPlugins {
            dirs: Vec::new(),
            call_timeout_ms: default_call_timeout_ms(),
            probe: true,
        }
    }
}

/// `[click_ids]`
#[derive(Debug, Deserialize)]
pub(super) struct RawClickIds {
    /// This instance's node ID, 0..=4095, if it must have this one: another
    /// live instance holding it is a start-up error. Left out, the instance
    /// leases a free one from the store, so instances sharing a store never
    /// mint the same click ID.
    #[serde(default)]
    pub(super) node_id: Option<u64>,
    /// How long a node ID lease lasts without renewal; the instance renews
    /// it every third of that, and a crashed instance's node ID is free
    /// again after it.
    #[serde(default = "default_lease_ms")]
    pub(super) lease_ms: u64,
}

fn default_lease_ms() -> u64 {
    30_000
}

impl Default for RawClickIds {
    fn default() -> Self {
        RawClickIds {
            node_id: None,
            lease_ms: default_lease_ms(),
        }
    }
}

/// `[[providers]]`
#[derive(Debug, Deserialize)]
pub(super) struct RawProvider {
    /// The provider's name: how links, metrics and the API refer to it.
    pub(super) name: Option<String>,
    /// The plugin that implements it: a name (`amazon` → `liblinkwright_amazon.so`
    /// in the plugin folders) or a path to a shared library.
    pub(super) plugin: Option<String>,
    /// Set to false to keep the entry but not load it.
    #[serde(default = "default_true")]
    pub(super) enabled: bool,
    /// Amazon localization for this provider's links unless a link says
    /// otherwise.
    #[serde(default)]
    pub(super) localize: bool,
    /// The provider's own settings, handed to the plugin as a JSON object.
    #[serde(default)]
    pub(super) config: toml::Table,
    /// Hosts (each with its subdomains) this provider's tracked links may
    /// point at; a template elsewhere is refused. Empty: the hosts the
    /// plugin declares, if it declares any.
    #[serde(default)]
    pub(super) link_hosts: Vec<String>,
}

fn default_true() -> bool {
    true
}
