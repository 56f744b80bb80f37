//! What a running instance shares between its listeners: the domain
//! services (links, jobs), the store, the caches, the click log, metrics.
//! Below the servers: `server` (public host, admin listener) and `api` use
//! an [`App`]; nothing here knows HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::backend::{self, Store};
use crate::cache::Caches;
use crate::click::ClickIdGenerator;
use crate::clicklog::{self, ClickLog};
use crate::clock::now_ms;
use crate::config::Config;
use crate::conversions::ConversionsConfig;
use crate::creators::Catalog;
use crate::expand::Expander;
use crate::geo::Geo;
use crate::jobs::JobRunner;
use crate::keys::RateLimiter;
use crate::links::{Builder, LinkService, Localizer, RegionalCatalog, Source};
use crate::metrics::{self, Metrics, ScrapeState};
use crate::nodes::{NodeError, NodeLease, NodeStore};
use crate::plugin::Providers;
use crate::store::{ClickStore, StoreError};
use crate::view::ShortUrls;

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The click log writer could not start.
    #[error("cannot start the click log writer: {0}")]
    ClickLog(std::io::Error),
    /// The outbound HTTP client could not be built.
    #[error("cannot build the outbound HTTP client: {0}")]
    Upstream(String),
    /// The geo database could not be read.
    #[error("cannot read the geo database: {0}")]
    Geo(#[from] crate::geo::GeoError),
    /// No node ID for click IDs could be leased.
    #[error("{0}")]
    Node(#[from] NodeError),
}

/// Everything the listeners of one instance share.
#[derive(Debug)]
pub struct App {
    /// The loaded providers.
    pub providers: Arc<Providers>,
    /// The store: links, clicks, keys, jobs, conversions, reports.
    pub store: Arc<dyn Store>,
    /// Creating, changing and deleting links.
    pub links: Arc<LinkService>,
    /// Bulk jobs.
    pub jobs: Arc<JobRunner>,
    /// Links by code and middleware-mode templates by URL.
    pub caches: Arc<Caches>,
    /// Short URLs of codes.
    pub short_urls: Arc<ShortUrls>,
    /// Per-key API rate limit.
    pub limiter: RateLimiter,
    /// Click ID generator.
    pub ids: Arc<ClickIdGenerator>,
    /// The node ID lease the generator mints with: the server renews it
    /// while it runs and releases it once the click log is flushed.
    pub node: Arc<NodeLease>,
    /// The visitor's country: trusted header, geo database.
    pub geo: Arc<Geo>,
    /// How often the geo database file is checked for a new version.
    pub geo_check: Option<Duration>,
    /// The click log.
    pub clicklog: ClickLog,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
    /// How conversion reports are read (`[conversions]`).
    pub conversions: Arc<ConversionsConfig>,
    /// Hosts bulk-job webhooks may call.
    pub webhook_hosts: Vec<String>,
    /// The web console's settings (`[console]`).
    pub console: crate::config::ConsoleConfig,
    /// The Prometheus exporter.
    pub prometheus: PrometheusHandle,
    /// The store's newest link change when the caches were empty: the
    /// server follows the changes after it.
    pub link_changes_seen: i64,
    /// How often the journal of link changes is read.
    pub link_refresh: Duration,
    ready: AtomicBool,
}

impl App {
    /// Opens the store, restores the click ID state and starts the click log.
    pub fn new(config: &Config, providers: Arc<Providers>) -> Result<App, AppError> {
        let store = backend::open(config)?;
        let link_changes_seen = store.last_link_change()?;
        let prometheus = metrics::install_recorder();
        let metrics = Arc::new(Metrics::new(
            providers.loaded().iter().map(|p| p.name.as_str()),
        ));
        // Clicks a crashed run answered and left in its journal go in first.
        let journal = config.server.data_dir.join("journal");
        clicklog::replay(&journal, &*store, config.click_log.batch_size)?;
        let node = Arc::new(NodeLease::acquire(
            Arc::clone(&store) as Arc<dyn NodeStore>,
            config.click_ids.node_id,
            crate::nodes::owner_for(&config.server.data_dir),
            config.click_ids.lease,
        )?);
        let floor = store.load_click_state()?;
        let ids = Arc::new(ClickIdGenerator::with_floor(node.node(), floor));
        let clicklog = ClickLog::start(
            Arc::clone(&store) as Arc<dyn ClickStore>,
            Arc::clone(&ids),
            config.click_log,
            Arc::clone(&metrics),
            Some(&journal),
        )
        .map_err(AppError::ClickLog)?;
        let c = &config.cache;
        let caches = Arc::new(Caches::new(c.max_links, c.max_missing, c.max_go_urls));
        let links = Arc::new(link_service(
            config,
            Arc::clone(&providers),
            Arc::clone(&store),
            Some(Arc::clone(&caches)),
        )?);
        let jobs = Arc::new(JobRunner::new(
            Arc::clone(&store) as Arc<dyn crate::jobs::JobStore>,
            Arc::clone(&links),
            Source::Api,
            config.api.job_claim_interval,
        ));
        let s = &config.server;
        let geo = Geo::new(
            s.trusted_country_header
                .as_deref()
                .and_then(|h| http::HeaderName::from_bytes(h.as_bytes()).ok()),
            s.trusted_proxies.clone(),
            config.geoip.as_ref().map(|g| g.database.as_path()),
        )?;
        Ok(App {
            geo: Arc::new(geo),
            geo_check: config.geoip.as_ref().map(|g| g.check_interval),
            providers,
            store,
            links,
            jobs,
            caches,
            short_urls: Arc::new(ShortUrls::new(s.public_base_url.as_deref(), s.public_addr)),
            limiter: RateLimiter::new(
                config.api.rate_limit_per_minute,
                config.api.rate_limit_burst,
            ),
            ids,
            node,
            clicklog,
            metrics,
            conversions: Arc::new(config.conversions.clone()),
            webhook_hosts: config.api.webhook_hosts.clone(),
            console: config.console,
            prometheus,
            link_changes_seen,
            link_refresh: config.cache.link_refresh,
            ready: AtomicBool::new(false),
        })
    }

    /// The short URL of a code on the public host.
    pub fn short_url(&self, code: &str) -> String {
        self.short_urls.of(code)
    }

    /// The Prometheus text of every metric, with the gauges read from this
    /// instance's parts (caches, click log, providers, store). Blocking (it
    /// asks the store and reads `/proc`): call it off the async workers.
    pub fn render_metrics(&self) -> String {
        let caches = &self.caches;
        let (evictions_links, evictions_missing) = caches.links.evictions();
        let clicklog_lag = self
            .clicklog
            .oldest_unwritten_ms()
            .map_or(Duration::ZERO, |oldest| {
                Duration::from_millis(u64::try_from(now_ms() - oldest).unwrap_or(0))
            });
        let store_answers = self.store.load_click_state().is_ok();
        let state = ScrapeState {
            ready: self.is_ready() && store_answers,
            queue_depth: usize::try_from(self.clicklog.depth()).unwrap_or(0),
            clicklog_lag,
            cache_links: caches.links.len(),
            cache_missing: caches.links.missing_len(),
            cache_go: caches.go.len(),
            evictions_links,
            evictions_missing,
            evictions_go: caches.go.evictions(),
            cache_memory_bytes: caches.links.memory_bytes(),
            plugins: self
                .providers
                .loaded()
                .iter()
                .map(|p| (p.name.clone(), p.is_poisoned()))
                .collect(),
            plugins_refused: self.providers.refused().len(),
            jobs_unfinished: crate::jobs::unfinished(&*self.store).ok().map(|j| j.len()),
        };
        self.metrics.render(&self.prometheus, &state)
    }

    /// Whether the server is accepting traffic (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The server starts or stops accepting traffic.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// The link service of a process with this config: the server's (with its
/// caches), or a command's (`caches: None`; running servers learn of its
/// changes from the store's journal).
pub fn link_service(
    config: &Config,
    providers: Arc<Providers>,
    store: Arc<dyn Store>,
    caches: Option<Arc<Caches>>,
) -> Result<LinkService, AppError> {
    let catalog =
        RegionalCatalog::from_config(&config.localize.creators).map_err(AppError::Upstream)?;
    let localizer = Localizer {
        config: config.localize.clone(),
        catalog: (!catalog.is_empty()).then(|| Arc::new(catalog) as Arc<dyn Catalog>),
    };
    Ok(LinkService::new(
        builder(config, providers)?,
        store,
        caches,
        config.server.request_timeout,
    )
    .with_localizer(localizer))
}

/// Template building with this config's short-link expansion.
pub fn builder(config: &Config, providers: Arc<Providers>) -> Result<Builder, AppError> {
    let expander = Expander::new(config.upstream.expand.clone())
        .map_err(|e| AppError::Upstream(e.to_string()))?;
    Ok(Builder::new(providers, expander))
}
