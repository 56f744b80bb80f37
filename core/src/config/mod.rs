//! Configuration: a raw serde structure parsed from TOML, compiled by one
//! function ([`Config::from_toml_str`]) into a validated [`Config`].
//!
//! Every problem is reported at once with its key path, unknown keys included,
//! so an operator fixes a config in one pass.

mod compile;
mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::plugin::{PluginRef, ProviderConfig};

/// Largest config file read (1 MiB): a config is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The config file name looked for when none is given.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folders searched for plugin files, in order, already resolved: the
    /// configured ones, then [`default_plugin_dirs`].
    pub plugin_dirs: Vec<PathBuf>,
    /// How plugins are called and loaded.
    pub plugins: PluginsConfig,
    /// How this instance gets its node ID for click IDs.
    pub click_ids: ClickIdsConfig,
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
    /// Web console settings.
    pub console: ConsoleConfig,
    /// Outbound HTTP settings.
    pub upstream: UpstreamConfig,
    /// Conversion import settings.
    pub conversions: crate::conversions::ConversionsConfig,
    /// The geo database, if configured.
    pub geoip: Option<GeoIpConfig>,
    /// Amazon localization.
    pub localize: LocalizeConfig,
    /// Where links, clicks and the rest are kept (`[store]`).
    pub store: StoreConfig,
}

/// `[store]`, validated.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// A PostgreSQL URL shared by several instances; `None`: the embedded
    /// SQLite file under `server.data_dir`.
    pub url: Option<String>,
    /// Months of raw clicks kept on PostgreSQL (0: all).
    pub click_retention_months: u32,
}

/// `[geoip]`, validated.
#[derive(Debug, Clone)]
pub struct GeoIpConfig {
    /// The `.mmdb` file.
    pub database: PathBuf,
    /// How often it is checked for a newer version.
    pub check_interval: Duration,
}

/// Where a shopper goes when the product is not sold in their store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// A search in their store for the product's title.
    Search,
    /// The link's own store.
    Own,
}

/// `[localize]` and the providers' `localize` flags, validated.
#[derive(Debug, Clone)]
pub struct LocalizeConfig {
    /// Providers whose links are localized unless a link says otherwise.
    pub providers: std::collections::BTreeSet<String>,
    /// When the product is not sold in the shopper's store.
    pub fallback: Fallback,
    /// How often availability is checked again.
    pub refresh: Duration,
    /// How often the background task looks for links to check again (an
    /// assumed availability is retried this often).
    pub retry: Duration,
    /// Country (upper case) → marketplaces in order, overriding the
    /// default table (`linkwright_model::amazon::COUNTRY_MARKETPLACES`).
    pub countries: std::collections::BTreeMap<String, Vec<String>>,
    /// Creators API credentials, one per region; none: availability is
    /// assumed.
    pub creators: Vec<crate::creators::CreatorsConfig>,
}

impl Default for LocalizeConfig {
    fn default() -> Self {
        LocalizeConfig {
            providers: Default::default(),
            fallback: Fallback::Search,
            refresh: Duration::from_secs(24 * 3600),
            retry: Duration::from_secs(60),
            countries: Default::default(),
            creators: Vec::new(),
        }
    }
}

impl LocalizeConfig {
    /// The marketplaces for a shopper's country, in order of preference.
    pub fn marketplaces(&self, country: &str) -> Vec<&str> {
        match self.countries.get(country) {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => linkwright_model::amazon::country_marketplaces(country).to_vec(),
        }
    }
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
    /// How often an instance renews its claims on bulk jobs and looks for
    /// jobs to claim (a claim lives ten times this).
    pub job_claim_interval: Duration,
}

/// `[console]`, validated.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleConfig {
    /// How long a session lasts after sign-in.
    pub session_ttl: Duration,
    /// Failed sign-ins per minute per client address; 0: unlimited.
    pub sign_in_failures_per_minute: u32,
    /// Failed sign-ins a client address may make at once.
    pub sign_in_failure_burst: u32,
    /// Session cookies carry `Secure`: `server.public_base_url` is https,
    /// so the deployment is served over TLS.
    pub secure_cookies: bool,
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
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
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

/// `[click_ids]`, validated.
#[derive(Debug, Clone, Copy)]
pub struct ClickIdsConfig {
    /// A node ID this instance must have; `None`: lease a free one from
    /// the store (see `nodes`).
    pub node_id: Option<u16>,
    /// How long a node ID lease lasts without renewal (renewed every third
    /// of it): how long a crashed instance's node ID stays unavailable.
    pub lease: Duration,
}

/// `[plugins]`, validated (the folders are [`Config::plugin_dirs`]).
#[derive(Debug, Clone, Copy)]
pub struct PluginsConfig {
    /// Time budget of one plugin call.
    pub call_budget: Duration,
    /// Whether plugins are probed in a child process before loading.
    pub probe: bool,
}

impl Config {
    /// Loads every enabled provider of this config from its plugin folders,
    /// in this process only (no probe): for tests and tools.
    pub fn load_providers(&self) -> crate::plugin::Providers {
        self.load_providers_probed(None)
    }

    /// Loads every enabled provider; with `probe` (how to start the
    /// binary's probe subcommand) and `plugins.probe` on, each plugin is
    /// first probed in a child process and refused if it crashes or hangs
    /// there.
    pub fn load_providers_probed(
        &self,
        probe: Option<crate::plugin::ProbeCommand>,
    ) -> crate::plugin::Providers {
        let options = crate::plugin::LoadOptions {
            call_budget: self.plugins.call_budget,
            probe: probe.filter(|_| self.plugins.probe),
        };
        crate::plugin::Providers::load_with(&self.providers, &self.plugin_dirs, &options)
    }
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
    /// How often the click journal is synced to disk: the most clicks power
    /// loss can take.
    pub sync_interval: Duration,
    /// Bytes per click journal segment.
    pub segment_bytes: usize,
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
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_CONFIG_BYTES {
            return Err(read_error(std::io::Error::other(format!(
                "the file is {size} bytes; a config file holds at most {MAX_CONFIG_BYTES}"
            ))));
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        compile::compile(&text, &path.display().to_string(), &base)
    }

    /// Compiles a config from TOML text; relative paths are taken from the
    /// current folder.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        compile::compile(text, "config", Path::new(""))
    }
}

/// The built-in plugin folders of the running executable, searched after
/// the configured ones: see [`plugin_dirs_for_exe`].
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    std::env::current_exe()
        .map(|exe| plugin_dirs_for_exe(&exe))
        .unwrap_or_default()
}

/// Where an executable at `exe` finds the bundled plugins, in order:
///
/// 1. its own folder (a build or an unpacked archive keeps them side by side);
/// 2. `deps/` under it, when there is one: cargo's `target/<profile>/deps`,
///    where a development build puts the plugin crates' libraries;
/// 3. `<prefix>/lib/linkwright/plugins` when the executable is installed as
///    `<prefix>/bin/linkwright` (the Debian package: `/usr/bin` and
///    `/usr/lib/linkwright/plugins`; `cargo install --root R` alike).
pub fn plugin_dirs_for_exe(exe: &Path) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    let mut dirs = vec![dir.to_owned()];
    let deps = dir.join("deps");
    if deps.is_dir() {
        dirs.push(deps);
    }
    if dir.file_name().is_some_and(|name| name == "bin")
        && let Some(prefix) = dir.parent()
    {
        dirs.push(prefix.join("lib").join("linkwright").join("plugins"));
    }
    dirs
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
        assert_eq!(c.click_ids.node_id, None, "leased");
        assert_eq!(c.click_ids.lease, Duration::from_secs(30));
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
            lease_ms = 10
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
                "click_ids.lease_ms: must be at least 1000, got 10",
                "providers[1].name: duplicate provider name `amazon`",
                "providers[1].plugin: `Bad Name` is neither a plugin name (lowercase letters, digits, `-`, `_`) nor a path",
                "providers[2].name: missing: every provider needs a name",
            ]
        );
    }

    #[test]
    fn plugin_call_budget_and_link_hosts_are_checked() {
        let c = Config::from_toml_str("").expect("defaults");
        assert_eq!(c.plugins.call_budget, Duration::from_secs(2));
        assert!(c.plugins.probe);
        let got = problems(
            r#"
            [plugins]
            call_timeout_ms = 0
            [[providers]]
            name = "awin"
            plugin = "awin"
            link_hosts = ["www.awin1.com", "", "evil.example/x"]
            "#,
        );
        assert_eq!(
            got,
            vec![
                "plugins.call_timeout_ms: must be at least 1, got 0",
                "providers[0].link_hosts[1]: `` is not a host name",
                "providers[0].link_hosts[2]: `evil.example/x` is not a host name",
            ]
        );
    }

    #[test]
    fn a_config_file_over_the_size_limit_is_refused_unread() {
        let dir = crate::testing::scratch("config-size");
        let file = dir.join("big.toml");
        let padding = "# padding\n".repeat(MAX_CONFIG_BYTES as usize / 10 + 1);
        std::fs::write(&file, padding).expect("write");
        let e = Config::load(&file).expect_err("refused");
        assert!(
            e.to_string()
                .contains("a config file holds at most 1048576"),
            "{e}"
        );
    }

    #[test]
    fn plugin_with_a_slash_is_a_path_relative_to_the_config_file() {
        let dir = crate::testing::scratch("config-plugin-path");
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
        let mut expected = vec![dir.join("lib")];
        expected.extend(default_plugin_dirs());
        assert_eq!(c.plugin_dirs, expected);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn configured_plugin_dirs_come_first_then_the_built_in_ones_without_repeats() {
        let builtin = default_plugin_dirs();
        let first = builtin[0].display();
        let c = Config::from_toml_str(&format!("[plugins]\ndirs = [\"/opt/lw\", \"{first}\"]\n"))
            .expect("valid");
        let mut expected = vec![PathBuf::from("/opt/lw")];
        expected.extend(builtin);
        assert_eq!(c.plugin_dirs, expected);
    }

    #[test]
    fn an_executable_in_a_bin_folder_finds_plugins_under_its_prefix() {
        let root = crate::testing::scratch("config-prefix");
        let bin = root.join("usr/bin");
        std::fs::create_dir_all(&bin).expect("temp dir");
        assert_eq!(
            plugin_dirs_for_exe(&bin.join("linkwright")),
            vec![bin.clone(), root.join("usr/lib/linkwright/plugins")]
        );
        // A cargo build: `deps/` when it exists, and no prefix (not in `bin`).
        let debug = root.join("target/debug");
        assert_eq!(
            plugin_dirs_for_exe(&debug.join("linkwright")),
            vec![debug.clone()]
        );
        std::fs::create_dir_all(debug.join("deps")).expect("deps");
        assert_eq!(
            plugin_dirs_for_exe(&debug.join("linkwright")),
            vec![debug.clone(), debug.join("deps")]
        );
        std::fs::remove_dir_all(&root).ok();
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
