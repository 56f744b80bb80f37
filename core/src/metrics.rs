//! Prometheus metrics: the recorder, every metric's description, handles
//! registered once at start-up so the redirect path bumps a cached cell
//! instead of looking a metric up, and the scrape that renders them all.
//!
//! Names carry the `linkwright_` prefix and base units, counters end in
//! `_total`, histograms have explicit buckets, and label values come from
//! small fixed sets (provider names from the config, outcomes, results,
//! route templates, at most [`MARKETPLACE_SLOTS`] marketplaces, validated
//! currency codes): never a link code, URL or click ID. Every metric has HELP
//! text ([`describe`]); `promtool check metrics` is run on a live scrape by
//! `tests/monitoring.rs`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::shard::{self, SHARDS};

/// Buckets for request durations, in seconds (10 µs to 10 s).
const REQUEST_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for click-log flushes, in seconds (100 µs to 10 s).
const FLUSH_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets for store operations and plugin template builds, in seconds
/// (10 µs to 5 s).
const OPERATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets for click-log batch sizes, in clicks.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

/// The label value for links whose provider is not loaded.
pub const OTHER_PROVIDER: &str = "other";

/// Marketplace label values per provider: `none` (links without one), the
/// first `MARKETPLACE_SLOTS - 2` marketplace names seen, then `other`.
pub const MARKETPLACE_SLOTS: usize = 32;

/// Installs the process-wide Prometheus recorder (once), describes every
/// metric, and returns its handle.
pub fn install_recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Request durations are not the exporter's: see `Hot`.
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in [
                ("linkwright_clicklog_flush_duration_seconds", FLUSH_BUCKETS),
                ("linkwright_clicklog_batch_size_clicks", BATCH_BUCKETS),
                (
                    "linkwright_store_operation_duration_seconds",
                    OPERATION_BUCKETS,
                ),
                (
                    "linkwright_plugin_build_duration_seconds",
                    OPERATION_BUCKETS,
                ),
            ] {
                // The matchers and buckets are constants, so none can fail;
                // keep the builder as it was rather than panic.
                builder = match builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
                {
                    Ok(b) => b,
                    Err(_) => PrometheusBuilder::new(),
                };
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (embedding); ours then
            // only renders what it sees, which is nothing.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
                process().describe();
            }
            handle
        })
        .clone()
}

/// The `process_*` metrics (CPU, resident memory, open fds, start time),
/// read from the OS at each scrape by `metrics-process`.
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// HELP text of every metric the exporter renders (the request-duration
/// histogram, rendered by hand, carries its own).
fn describe() {
    for (name, help) in [
        (
            "linkwright_redirects_total",
            "Requests to the redirect host, by outcome (redirect, not_found, gone, bad_request, error) and provider (none unless redirected).",
        ),
        (
            "linkwright_clicks_total",
            "Redirects served, by provider, the link's marketplace (none, the first ones seen, other) and bot (true, false).",
        ),
        (
            "linkwright_cache_lookups_total",
            "Redirect-host cache lookups, by cache (links, go) and result (hit, miss, negative_hit).",
        ),
        (
            "linkwright_cache_evictions_total",
            "Times a cache was full and shed entries, by cache (links, negative, go).",
        ),
        (
            "linkwright_clicklog_written_total",
            "Click events written to the store.",
        ),
        (
            "linkwright_clicklog_dropped_total",
            "Click events dropped: the queue was full and the event not journaled (a bot hit, or the journal failing), the log had shut down, or the final write failed.",
        ),
        (
            "linkwright_clicklog_overflowed_total",
            "Clicks journaled while the queue was full: kept in their journal segment only, and written from it (not lost).",
        ),
        (
            "linkwright_clicklog_write_errors_total",
            "Click-log batch writes that failed (the batch is retried).",
        ),
        (
            "linkwright_clicklog_journal_errors_total",
            "Click journal failures: a segment could not be made (clicks are dropped until one can), synced or removed.",
        ),
        (
            "linkwright_http_rejected_total",
            "Requests shed with 503 (reason overloaded) or answered 504 (reason timeout), by listener.",
        ),
        (
            "linkwright_links_created_total",
            "Links created, by provider and source (cli, api, go).",
        ),
        (
            "linkwright_geo_reloads_total",
            "Reloads of the geo database file after it changed on disk, by result (ok, error: the previous database stays).",
        ),
        (
            "linkwright_plugin_errors_total",
            "Template builds a provider refused or failed, by provider and stable error code.",
        ),
        (
            "linkwright_plugin_builds_total",
            "Template builds through a plugin, by provider and result (ok, declined, error, panic).",
        ),
        (
            "linkwright_store_errors_total",
            "Store operations that failed, by operation.",
        ),
        (
            "linkwright_admin_requests_total",
            "Admin listener requests, by route template and status class (2xx, 3xx, 4xx, 5xx).",
        ),
        (
            "linkwright_api_rate_limited_total",
            "Admin API requests refused with 429 by the per-key rate limit.",
        ),
        (
            "linkwright_bulk_jobs_submitted_total",
            "Bulk jobs accepted (202) by the admin API.",
        ),
        (
            "linkwright_bulk_jobs_finished_total",
            "Bulk jobs that ended, by status (done, failed).",
        ),
        (
            "linkwright_bulk_job_items_total",
            "Bulk job items made, by result (ok, error).",
        ),
        (
            "linkwright_webhook_deliveries_total",
            "Bulk-job webhook calls, by result (delivered, refused, failed: given up after retries).",
        ),
        (
            "linkwright_conversions_imported_total",
            "Conversion report rows inserted or updated, by provider (amazon, awin) and status.",
        ),
        (
            "linkwright_conversion_rows_total",
            "Conversion report rows read by an import, by format and outcome (inserted, updated, unchanged, rejected; unattributed counts the stored ones matching no click).",
        ),
        (
            "linkwright_conversion_import_failures_total",
            "Conversion imports or pulls that failed, by source (file, pull) and provider.",
        ),
    ] {
        describe_counter!(name, help);
    }
    for (name, help) in [
        (
            "linkwright_build_info",
            "Always 1; the version label says which linkwright runs.",
        ),
        (
            "linkwright_ready",
            "1 while the server accepts traffic and the store answers (what /readyz says), else 0.",
        ),
        (
            "linkwright_clicklog_queue_depth",
            "Click events waiting for the writer.",
        ),
        (
            "linkwright_clicklog_lag_seconds",
            "Age of the oldest click event not yet written to the store (0 when none waits).",
        ),
        (
            "linkwright_cache_entries",
            "Entries held, by cache (links, negative: unknown codes remembered, go: middleware-mode URLs).",
        ),
        (
            "linkwright_cache_memory_bytes",
            "Heap bytes held by the link cache's records and index.",
        ),
        (
            "linkwright_plugin_loaded",
            "1 for each provider whose plugin is loaded, by provider.",
        ),
        (
            "linkwright_plugin_poisoned",
            "1 if the provider's plugin panicked or overran its call time budget and is disabled, else 0, by provider.",
        ),
        (
            "linkwright_plugins_refused",
            "Configured providers whose plugin could not be loaded.",
        ),
        (
            "linkwright_bulk_jobs",
            "Bulk jobs not finished, by state (queued, running).",
        ),
    ] {
        describe_gauge!(name, help);
    }
    for (name, help) in [
        (
            "linkwright_clicklog_flush_duration_seconds",
            "Time to write one click-log batch to the store.",
        ),
        (
            "linkwright_clicklog_batch_size_clicks",
            "Click events per click-log batch written.",
        ),
        (
            "linkwright_store_operation_duration_seconds",
            "Duration of store operations, by operation.",
        ),
        (
            "linkwright_plugin_build_duration_seconds",
            "Duration of a template build through a plugin, by provider.",
        ),
    ] {
        describe_histogram!(name, help);
    }
}

/// The route label of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /{code}`.
    Redirect,
    /// `GET /go?url=`.
    Go,
    /// `/metrics`.
    Metrics,
    /// `/healthz`, `/readyz`.
    Health,
    /// Anything else.
    Other,
}

impl Route {
    /// Every route, in declaration order (so `route as usize` indexes it).
    pub const ALL: [Route; 5] = [
        Route::Redirect,
        Route::Go,
        Route::Metrics,
        Route::Health,
        Route::Other,
    ];
    fn as_str(self) -> &'static str {
        match self {
            Route::Redirect => "redirect",
            Route::Go => "go",
            Route::Metrics => "metrics",
            Route::Health => "health",
            Route::Other => "other",
        }
    }
}

/// The outcome label of a redirect-host request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Redirected.
    Redirect,
    /// Unknown code: 404.
    NotFound,
    /// Disabled link: 410.
    Gone,
    /// Bad request (a `/go` URL no provider accepts): 400.
    BadRequest,
    /// The store or a provider failed: 5xx.
    Error,
}

impl Outcome {
    const FAILURES: [Outcome; 4] = [
        Outcome::NotFound,
        Outcome::Gone,
        Outcome::BadRequest,
        Outcome::Error,
    ];
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Redirect => "redirect",
            Outcome::NotFound => "not_found",
            Outcome::Gone => "gone",
            Outcome::BadRequest => "bad_request",
            Outcome::Error => "error",
        }
    }
}

/// Result label of a cache lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Found in memory.
    Hit,
    /// Read from the store.
    Miss,
    /// Remembered as unknown.
    NegativeHit,
}

/// Counters and histograms the redirect path updates on every request,
/// kept per thread (see [`crate::shard`]) so that two cores serving
/// redirects never write the same cache line. A scrape sums the shards: the
/// counters into the exporter's handles (`Counter::absolute`), the
/// request-duration histogram straight into the text (the exporter's
/// histograms take raw samples, which would put one shared line back on
/// every request).
///
/// Cells of one shard, in order: per link label (provider × marketplace
/// slot, see [`Metrics::link_label`]) `[human clicks, bot clicks]`; the four
/// failure outcomes; `[links, go] × [hit, miss, negative_hit]` cache
/// lookups; then per `[public, admin] × Route::ALL` series, one cell per
/// bucket of [`REQUEST_BUCKETS`], one for above the last bucket, and the sum
/// of durations in nanoseconds. A redirect bumps one cell: the per-provider
/// redirect count and the per-marketplace click counts are sums taken at
/// the scrape.
#[derive(Debug)]
struct Hot {
    cells: Box<[AtomicU64]>,
    /// Cells per shard: the layout above, rounded up, plus 128 bytes so
    /// neighbouring shards never share a cache line.
    stride: usize,
    failures: usize,
    cache: usize,
    durations: usize,
}

/// Cells per histogram series: the buckets, the overflow, the sum.
const SERIES_CELLS: usize = REQUEST_BUCKETS.len() + 2;

impl Hot {
    fn new(labels: usize) -> Hot {
        let failures = 2 * labels;
        let cache = failures + Outcome::FAILURES.len();
        let durations = cache + 6;
        let len = durations + 2 * Route::ALL.len() * SERIES_CELLS;
        let stride = len.div_ceil(16) * 16 + 16;
        Hot {
            cells: (0..stride * SHARDS).map(|_| AtomicU64::new(0)).collect(),
            stride,
            failures,
            cache,
            durations,
        }
    }

    #[inline]
    fn add(&self, cell: usize, n: u64) {
        let at = shard::index() * self.stride + cell;
        if let Some(c) = self.cells.get(at) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn sum(&self, cell: usize) -> u64 {
        (0..SHARDS)
            .filter_map(|s| self.cells.get(s * self.stride + cell))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The first cell of a histogram series.
    fn series(&self, admin: bool, route: Route) -> usize {
        self.durations + (usize::from(admin) * Route::ALL.len() + route as usize) * SERIES_CELLS
    }
}

/// [`REQUEST_BUCKETS`] in nanoseconds.
fn bucket_bounds_ns() -> &'static [u64] {
    static NS: OnceLock<Vec<u64>> = OnceLock::new();
    NS.get_or_init(|| {
        REQUEST_BUCKETS
            .iter()
            .map(|s| (s * 1e9).round() as u64)
            .collect()
    })
}

/// Pre-registered metric handles for one listener pair.
#[derive(Debug)]
pub struct Metrics {
    hot: Hot,
    /// `linkwright_redirects_total{outcome="redirect"}` per provider.
    redirects: Vec<Counter>,
    /// `linkwright_clicks_total` per link label and bot flag, registered
    /// when the scrape first finds a click for it.
    clicks: Mutex<Vec<Option<[Counter; 2]>>>,
    /// Exporter counters of the failure and cache cells, in cell order from
    /// `hot.failures`.
    folded: Vec<Counter>,
    shed: [Counter; 2],
    timeouts: [Counter; 2],
    /// Click-log queue depth.
    pub queue_depth: Gauge,
    /// Click events dropped because the queue was full (and they could not
    /// be journaled), the log had shut down or the final write failed.
    pub clicks_dropped: Counter,
    /// Clicks journaled while the queue was full, written from the journal.
    pub clicks_overflowed: Counter,
    /// Click events written to the store.
    pub clicks_written: Counter,
    /// Failed click-log writes.
    pub clicklog_errors: Counter,
    /// Click journal failures (segment creation, sync, removal).
    pub journal_errors: Counter,
    /// Click-log flush durations.
    pub flush_duration: Histogram,
    /// Click events per batch written.
    pub batch_size: Histogram,
    providers: Vec<String>,
    /// Marketplace label values by slot: `none` first, `other` last.
    marketplaces: RwLock<Vec<String>>,
}

impl Metrics {
    /// Registers every handle, for these provider names.
    pub fn new<'a>(provider_names: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut providers: Vec<String> = provider_names.into_iter().map(str::to_owned).collect();
        providers.push(OTHER_PROVIDER.to_owned());
        let redirects = providers
            .iter()
            .map(|name| counter!("linkwright_redirects_total", "outcome" => "redirect", "provider" => name.clone()))
            .collect();
        // Links without a marketplace have a series from the start, so
        // dashboards show 0 rather than nothing before the first click.
        let mut clicks: Vec<Option<[Counter; 2]>> = (0..providers.len() * MARKETPLACE_SLOTS)
            .map(|_| None)
            .collect();
        for (p, name) in providers.iter().enumerate() {
            clicks[p * MARKETPLACE_SLOTS] = Some(click_counters(name, "none"));
        }
        let mut folded = Vec::new();
        for o in Outcome::FAILURES {
            folded.push(counter!("linkwright_redirects_total", "outcome" => o.as_str(), "provider" => "none"));
        }
        for c in ["links", "go"] {
            for r in ["hit", "miss", "negative_hit"] {
                folded
                    .push(counter!("linkwright_cache_lookups_total", "cache" => c, "result" => r));
            }
        }
        let hot = Hot::new(providers.len() * MARKETPLACE_SLOTS);
        debug_assert_eq!(hot.failures + folded.len(), hot.durations);
        let shed = ["public", "admin"]
            .map(|l| counter!("linkwright_http_rejected_total", "listener" => l, "reason" => "overloaded"));
        let timeouts = ["public", "admin"].map(
            |l| counter!("linkwright_http_rejected_total", "listener" => l, "reason" => "timeout"),
        );
        gauge!("linkwright_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        // Series an operator alerts on exist (at 0) before anything happens.
        for result in ["delivered", "refused", "failed"] {
            counter!("linkwright_webhook_deliveries_total", "result" => result).absolute(0);
        }
        for status in ["done", "failed"] {
            counter!("linkwright_bulk_jobs_finished_total", "status" => status).absolute(0);
        }
        for result in ["ok", "error"] {
            counter!("linkwright_bulk_job_items_total", "result" => result).absolute(0);
        }
        counter!("linkwright_bulk_jobs_submitted_total").absolute(0);
        counter!("linkwright_api_rate_limited_total").absolute(0);
        let mut marketplaces = vec!["none".to_owned()];
        marketplaces.resize(MARKETPLACE_SLOTS - 1, String::new());
        marketplaces.push("other".to_owned());
        Metrics {
            hot,
            redirects,
            clicks: Mutex::new(clicks),
            folded,
            shed,
            timeouts,
            queue_depth: gauge!("linkwright_clicklog_queue_depth"),
            clicks_dropped: counter!("linkwright_clicklog_dropped_total"),
            clicks_overflowed: counter!("linkwright_clicklog_overflowed_total"),
            clicks_written: counter!("linkwright_clicklog_written_total"),
            clicklog_errors: counter!("linkwright_clicklog_write_errors_total"),
            journal_errors: counter!("linkwright_clicklog_journal_errors_total"),
            flush_duration: histogram!("linkwright_clicklog_flush_duration_seconds"),
            batch_size: histogram!("linkwright_clicklog_batch_size_clicks"),
            providers,
            marketplaces: RwLock::new(marketplaces),
        }
    }

    /// The label index of a provider name (the `other` slot if unknown),
    /// for links without a marketplace.
    pub fn provider_index(&self, name: &str) -> u16 {
        self.link_label(name, None)
    }

    fn provider_slot(&self, name: &str) -> usize {
        self.providers
            .iter()
            .position(|n| n == name)
            .unwrap_or(self.providers.len() - 1)
    }

    /// The label index of a link, from its provider and marketplace, which
    /// [`CachedLink`](crate::cache::CachedLink) keeps so a redirect counts
    /// with one cell. Marketplaces take the free slots in the order first
    /// seen (they are validated domain names, so few); once the slots are
    /// taken, or for a name that does not look like a domain, `other`.
    /// Called when a link is cached, not per redirect.
    pub fn link_label(&self, provider: &str, marketplace: Option<&str>) -> u16 {
        let p = self.provider_slot(provider);
        let m = match marketplace {
            None => 0,
            Some(name) => self.marketplace_slot(name),
        };
        u16::try_from(p * MARKETPLACE_SLOTS + m).unwrap_or(0)
    }

    fn marketplace_slot(&self, name: &str) -> usize {
        const OTHER: usize = MARKETPLACE_SLOTS - 1;
        let plausible = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !plausible {
            return OTHER;
        }
        let find = |slots: &[String]| slots[1..OTHER].iter().position(|s| s == name);
        if let Some(i) = find(
            &self
                .marketplaces
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return i + 1;
        }
        let mut slots = self
            .marketplaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = find(&slots) {
            return i + 1;
        }
        match slots[1..OTHER].iter().position(String::is_empty) {
            Some(i) => {
                slots[i + 1] = name.to_owned();
                i + 1
            }
            None => OTHER,
        }
    }

    /// A redirect served for a link label, human or bot: one cell.
    #[inline]
    pub fn redirected(&self, label: u16, bot: bool) {
        let label = usize::from(label).min(self.hot.failures / 2 - 1);
        self.hot.add(2 * label + usize::from(bot), 1);
    }

    /// A redirect-host request that did not redirect.
    pub fn failed(&self, outcome: Outcome) {
        // FAILURES follows the declaration order after `Redirect`.
        if let Some(i) = (outcome as usize).checked_sub(1) {
            self.hot.add(self.hot.failures + i, 1);
        }
    }

    /// A cache lookup (`go`: the middleware-mode cache).
    pub fn cache_lookup(&self, go: bool, result: CacheResult) {
        self.hot
            .add(self.hot.cache + 3 * usize::from(go) + result as usize, 1);
    }

    /// A request's duration.
    pub fn request_duration(&self, admin: bool, route: Route, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bounds = bucket_bounds_ns();
        // The first bucket whose bound is at or above the duration; past the
        // last, the overflow cell.
        let bucket = bounds.partition_point(|&b| b < ns);
        let series = self.hot.series(admin, route);
        self.hot.add(series + bucket, 1);
        self.hot.add(series + REQUEST_BUCKETS.len() + 1, ns);
    }

    /// A request refused by load shedding or timed out.
    pub fn rejected(&self, admin: bool, timeout: bool) {
        if timeout {
            self.timeouts[usize::from(admin)].increment(1);
        } else {
            self.shed[usize::from(admin)].increment(1);
        }
    }

    /// Folds the sharded counters into the exporter's handles, for the
    /// exporter's render that follows.
    pub fn fold(&self) {
        let mut clicks = self.clicks.lock().unwrap_or_else(PoisonError::into_inner);
        let marketplaces = self
            .marketplaces
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for (p, redirects) in self.redirects.iter().enumerate() {
            let mut served = 0;
            for m in 0..MARKETPLACE_SLOTS {
                let label = p * MARKETPLACE_SLOTS + m;
                let human = self.hot.sum(2 * label);
                let bot = self.hot.sum(2 * label + 1);
                served += human + bot;
                let Some(slot) = clicks.get_mut(label) else {
                    continue;
                };
                if slot.is_none() && human + bot > 0 {
                    let market = marketplaces.get(m).map_or("other", String::as_str);
                    *slot = Some(click_counters(&self.providers[p], market));
                }
                if let Some([h, b]) = slot {
                    h.absolute(human);
                    b.absolute(bot);
                }
            }
            redirects.absolute(served);
        }
        for (i, counter) in self.folded.iter().enumerate() {
            counter.absolute(self.hot.sum(self.hot.failures + i));
        }
    }

    /// Appends `linkwright_http_request_duration_seconds` in the Prometheus
    /// text format: every series with at least one request.
    pub fn render_durations(&self, out: &mut String) {
        const NAME: &str = "linkwright_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {NAME} Time to handle a request, by listener (public, admin) and route (redirect, go, metrics, health, other)."
        );
        let _ = writeln!(out, "# TYPE {NAME} histogram");
        for (admin, listener) in [(false, "public"), (true, "admin")] {
            for route in Route::ALL {
                let series = self.hot.series(admin, route);
                let counts: Vec<u64> = (0..=REQUEST_BUCKETS.len())
                    .map(|b| self.hot.sum(series + b))
                    .collect();
                let count: u64 = counts.iter().sum();
                if count == 0 {
                    continue;
                }
                let labels = format!("listener=\"{listener}\",route=\"{}\"", route.as_str());
                let mut cumulative = 0;
                for (le, n) in REQUEST_BUCKETS.iter().zip(&counts) {
                    cumulative += n;
                    let _ = writeln!(out, "{NAME}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
                }
                let _ = writeln!(out, "{NAME}_bucket{{{labels},le=\"+Inf\"}} {count}");
                let sum_ns = self.hot.sum(series + REQUEST_BUCKETS.len() + 1);
                let _ = writeln!(out, "{NAME}_sum{{{labels}}} {}", sum_ns as f64 / 1e9);
                let _ = writeln!(out, "{NAME}_count{{{labels}}} {count}");
            }
        }
    }

    /// Renders every metric: sets the gauges read at scrape time from
    /// `state`, folds the sharded counters, reads the process metrics, and
    /// appends the hand-rendered histogram to the exporter's text.
    pub fn render(&self, prometheus: &PrometheusHandle, state: &ScrapeState) -> String {
        self.queue_depth.set(state.queue_depth as f64);
        gauge!("linkwright_clicklog_lag_seconds").set(state.clicklog_lag.as_secs_f64());
        gauge!("linkwright_ready").set(if state.ready { 1.0 } else { 0.0 });
        for (cache, entries) in [
            ("links", state.cache_links),
            ("negative", state.cache_missing),
            ("go", state.cache_go),
        ] {
            gauge!("linkwright_cache_entries", "cache" => cache).set(entries as f64);
        }
        for (cache, n) in [
            ("links", state.evictions_links),
            ("negative", state.evictions_missing),
            ("go", state.evictions_go),
        ] {
            counter!("linkwright_cache_evictions_total", "cache" => cache).absolute(n);
        }
        gauge!("linkwright_cache_memory_bytes", "cache" => "links")
            .set(state.cache_memory_bytes as f64);
        for (name, poisoned) in &state.plugins {
            gauge!("linkwright_plugin_loaded", "provider" => name.clone()).set(1.0);
            gauge!("linkwright_plugin_poisoned", "provider" => name.clone()).set(if *poisoned {
                1.0
            } else {
                0.0
            });
        }
        gauge!("linkwright_plugins_refused").set(state.plugins_refused as f64);
        let running = JOBS_RUNNING.load(Ordering::Relaxed);
        if let Some(unfinished) = state.jobs_unfinished {
            let queued = (unfinished as u64).saturating_sub(running);
            gauge!("linkwright_bulk_jobs", "state" => "queued").set(queued as f64);
        }
        gauge!("linkwright_bulk_jobs", "state" => "running").set(running as f64);
        process().collect();
        self.fold();
        let mut text = prometheus.render();
        self.render_durations(&mut text);
        render_money(&mut text);
        text
    }
}

/// `linkwright_clicks_total` for one provider and marketplace, human then bot.
fn click_counters(provider: &str, marketplace: &str) -> [Counter; 2] {
    ["false", "true"].map(|bot| {
        counter!("linkwright_clicks_total", "provider" => provider.to_owned(), "marketplace" => marketplace.to_owned(), "bot" => bot)
    })
}

/// What a scrape reads from the rest of the server (see
/// [`Metrics::render`]).
#[derive(Debug, Default)]
pub struct ScrapeState {
    /// `/readyz`'s answer.
    pub ready: bool,
    /// Click events waiting for the writer.
    pub queue_depth: usize,
    /// Age of the oldest of them.
    pub clicklog_lag: Duration,
    /// Links cached.
    pub cache_links: usize,
    /// Unknown codes remembered.
    pub cache_missing: usize,
    /// Middleware-mode URLs cached.
    pub cache_go: usize,
    /// Times each cache shed entries.
    pub evictions_links: u64,
    /// See `evictions_links`.
    pub evictions_missing: u64,
    /// See `evictions_links`.
    pub evictions_go: u64,
    /// Heap bytes of the link cache.
    pub cache_memory_bytes: usize,
    /// Each loaded provider and whether it is poisoned.
    pub plugins: Vec<(String, bool)>,
    /// Providers refused at load.
    pub plugins_refused: usize,
    /// Bulk jobs queued or running in the store, if it answered.
    pub jobs_unfinished: Option<usize>,
}

/// Bulk jobs running in this process.
static JOBS_RUNNING: AtomicU64 = AtomicU64::new(0);

/// Counts a bulk job as running while it lives (see [`job_running`]).
#[derive(Debug)]
pub struct JobRunning(());

impl Drop for JobRunning {
    fn drop(&mut self) {
        JOBS_RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A bulk job started running in this process; it counts until the guard
/// is dropped.
pub fn job_running() -> JobRunning {
    JOBS_RUNNING.fetch_add(1, Ordering::Relaxed);
    JobRunning(())
}

/// A bulk job accepted by the API.
pub fn job_submitted() {
    counter!("linkwright_bulk_jobs_submitted_total").increment(1);
}

/// A bulk job ended (`done` or `failed`).
pub fn job_finished(status: &'static str) {
    counter!("linkwright_bulk_jobs_finished_total", "status" => status).increment(1);
}

/// A bulk job item made.
pub fn job_item(ok: bool) {
    counter!("linkwright_bulk_job_items_total", "result" => if ok { "ok" } else { "error" })
        .increment(1);
}

/// A webhook call ended: `delivered`, `refused` (a 4xx, not retried) or
/// `failed` (given up, or the request could not be built).
pub fn webhook(result: &'static str) {
    counter!("linkwright_webhook_deliveries_total", "result" => result).increment(1);
}

/// An admin request answered, by the route template it matched (`other`
/// for none) and its status class.
pub fn admin_request(route: &str, status: u16) {
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("linkwright_admin_requests_total", "route" => route.to_owned(), "status" => class)
        .increment(1);
}

/// An admin API request refused by the rate limit.
pub fn rate_limited() {
    counter!("linkwright_api_rate_limited_total").increment(1);
}

/// The store operations that are timed (the [`crate::backend::Store`]
/// methods).
pub const STORE_OPERATIONS: [&str; 18] = [
    "create_link",
    "create_links",
    "link_by_code",
    "link_by_source_key",
    "list_links",
    "link_by_request_key",
    "set_disabled",
    "update_link",
    "delete_link",
    "link_stats",
    "insert_clicks",
    "clicks",
    "last_link_change",
    "link_changes",
    "prune_link_changes",
    "load_click_state",
    "save_click_state",
    "other",
];

/// Handles of one store operation.
#[derive(Debug)]
struct StoreOp {
    duration: Histogram,
    errors: Counter,
}

fn store_ops() -> &'static [StoreOp] {
    static OPS: OnceLock<Vec<StoreOp>> = OnceLock::new();
    OPS.get_or_init(|| {
        // Handles registered before the recorder is installed would count
        // into nothing for good (the server opens its store first).
        install_recorder();
        STORE_OPERATIONS
            .iter()
            .map(|&op| {
                let errors = counter!("linkwright_store_errors_total", "operation" => op);
                errors.absolute(0);
                StoreOp {
                    duration: histogram!("linkwright_store_operation_duration_seconds", "operation" => op),
                    errors,
                }
            })
            .collect()
    })
}

/// Registers the store-operation handles (so their error counters show 0
/// before the first error).
pub fn register_store_operations() {
    let _ = store_ops();
}

/// Times a store operation (one of [`STORE_OPERATIONS`]) and counts it if
/// it failed.
pub fn store_operation<R, E>(operation: &str, f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
    let ops = store_ops();
    let i = STORE_OPERATIONS
        .iter()
        .position(|&o| o == operation)
        .unwrap_or(STORE_OPERATIONS.len() - 1);
    let started = Instant::now();
    let result = f();
    if let Some(op) = ops.get(i) {
        op.duration.record(started.elapsed().as_secs_f64());
        if result.is_err() {
            op.errors.increment(1);
        }
    }
    result
}

/// What one conversion import did, for the counters.
#[derive(Debug, Default)]
pub struct ImportCounts {
    /// Rows by outcome: inserted, updated, unchanged, rejected, unattributed.
    pub rows: [(&'static str, u64); 5],
    /// Net change of commission per currency, in micro-units.
    pub commission: Vec<(Option<String>, i64)>,
}

/// Counts the rows and commission of a conversion import.
pub fn conversions_imported(format: &'static str, provider: &'static str, counts: &ImportCounts) {
    for (outcome, n) in counts.rows {
        if n > 0 {
            counter!("linkwright_conversion_rows_total", "format" => format, "outcome" => outcome)
                .increment(n);
        }
    }
    for (currency, micros) in &counts.commission {
        let currency = currency_label(currency.as_deref());
        let units = micros.unsigned_abs() as f64 / 1e6;
        let name = if *micros >= 0 {
            "linkwright_commission_earned_total"
        } else {
            "linkwright_commission_reversed_total"
        };
        if *micros != 0 {
            money().add(name, provider, currency, units);
        }
    }
}

/// An ISO 4217 code as a label value (three upper-case letters), else
/// `unknown`.
fn currency_label(currency: Option<&str>) -> &'static str {
    static SEEN: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    let Some(c) = currency.filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
    else {
        return "unknown";
    };
    let mut seen = SEEN
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = seen.iter().find(|s| **s == c) {
        return s;
    }
    // At most 26³ codes can ever be leaked, and only valid-looking ones.
    let leaked: &'static str = Box::leak(c.to_owned().into_boxed_str());
    seen.push(leaked);
    leaked
}

/// Money counters, `(name, provider, currency) → units`: the `metrics`
/// crate's counters count integers, and a gauge would be typed a gauge in
/// the text, so these are kept here and rendered by [`render_money`].
#[derive(Debug, Default)]
struct Money(Mutex<Vec<(MoneySeries, f64)>>);

/// A money counter's name, provider and currency.
type MoneySeries = (&'static str, &'static str, &'static str);

impl Money {
    fn add(&self, name: &'static str, provider: &'static str, currency: &'static str, amount: f64) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (name, provider, currency);
        match all.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v += amount,
            None => all.push((key, amount)),
        }
    }
}

fn money() -> &'static Money {
    static MONEY: OnceLock<Money> = OnceLock::new();
    MONEY.get_or_init(Money::default)
}

/// Appends the money counters in the Prometheus text format.
pub fn render_money(out: &mut String) {
    let all = money().0.lock().unwrap_or_else(PoisonError::into_inner);
    for (name, help) in [
        (
            "linkwright_commission_earned_total",
            "Commission added by imported conversion rows, in units of the currency, by provider and currency; Amazon Orders rows are preliminary and not counted (their Earnings rows are).",
        ),
        (
            "linkwright_commission_reversed_total",
            "Commission taken back by later reports (returns, rows declined or deleted), in units of the currency, by provider and currency.",
        ),
    ] {
        let mut series = all.iter().filter(|((n, _, _), _)| *n == name).peekable();
        if series.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for ((_, provider, currency), v) in series {
            {
                let _ = writeln!(
                    out,
                    "{name}{{provider=\"{provider}\",currency=\"{currency}\"}} {v}"
                );
            }
        }
    }
}

/// A link created, by provider and where it came from (`cli`, `go`, `api`).
pub fn link_created(provider: &str, source: &'static str) {
    counter!("linkwright_links_created_total", "provider" => provider.to_owned(), "source" => source)
        .increment(1);
}

/// A reload of the geo database, by result.
pub fn geo_reloaded(ok: bool) {
    counter!("linkwright_geo_reloads_total", "result" => if ok { "ok" } else { "error" })
        .increment(1);
}

/// A plugin error, by provider and stable error code.
pub fn plugin_error(provider: &str, code: &'static str) {
    counter!("linkwright_plugin_errors_total", "provider" => provider.to_owned(), "code" => code)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
    }

    #[test]
    fn durations_from_many_threads_render_as_one_cumulative_histogram() {
        let m = Metrics::new(["amazon"]);
        std::thread::scope(|s| {
            for _ in 0..(SHARDS + 2) {
                s.spawn(|| {
                    m.request_duration(false, Route::Redirect, Duration::from_micros(40));
                    m.request_duration(false, Route::Redirect, Duration::from_millis(3));
                    m.request_duration(false, Route::Redirect, Duration::from_secs(11));
                });
            }
        });
        m.request_duration(true, Route::Metrics, Duration::from_micros(10));
        let mut text = String::new();
        m.render_durations(&mut text);
        let n = (SHARDS + 2) as u64;
        let series = r#"linkwright_http_request_duration_seconds_bucket{listener="public",route="redirect","#;
        let bucket = |le: &str| -> u64 {
            line(&text, &format!("{series}le=\"{le}\"}}"))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"))
        };
        assert_eq!(bucket("0.000025"), 0);
        assert_eq!(bucket("0.00005"), n, "40 µs is in the 50 µs bucket");
        assert_eq!(bucket("0.0025"), n);
        assert_eq!(bucket("0.005"), 2 * n, "buckets are cumulative");
        assert_eq!(bucket("10"), 2 * n);
        assert_eq!(bucket("+Inf"), 3 * n, "11 s is only in +Inf");
        let count = line(
            &text,
            r#"linkwright_http_request_duration_seconds_count{listener="public",route="redirect"}"#,
        );
        assert_eq!(count, Some(format!("{}", 3 * n).as_str()));
        let sum: f64 = line(
            &text,
            r#"linkwright_http_request_duration_seconds_sum{listener="public",route="redirect"}"#,
        )
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
        assert!((sum - n as f64 * 11.00304).abs() < 1e-6, "{sum}");
        // A duration at a bound counts in that bucket (le is inclusive).
        assert_eq!(
            line(
                &text,
                r#"linkwright_http_request_duration_seconds_bucket{listener="admin",route="metrics",le="0.00001"}"#
            ),
            Some("1")
        );
        // Series without requests are left out.
        assert!(!text.contains(r#"route="go""#), "{text}");
    }

    #[test]
    fn counters_from_many_threads_sum_per_label_set() {
        let m = Metrics::new(["amazon", "awin"]);
        let awin = m.provider_index("awin");
        assert_eq!(m.provider_index("nope"), m.provider_index(OTHER_PROVIDER));
        std::thread::scope(|s| {
            for _ in 0..(SHARDS + 2) {
                s.spawn(|| {
                    for _ in 0..100 {
                        m.redirected(awin, false);
                    }
                    m.redirected(awin, true);
                    m.failed(Outcome::Gone);
                    m.cache_lookup(true, CacheResult::Miss);
                });
            }
        });
        let n = (SHARDS + 2) as u64;
        let cell = |c: usize| m.hot.sum(c);
        let awin = usize::from(awin);
        assert_eq!(cell(2 * awin), 100 * n, "human clicks");
        assert_eq!(cell(2 * awin + 1), n, "bot clicks");
        assert_eq!(cell(0), 0, "amazon untouched");
        assert_eq!(cell(m.hot.failures + Outcome::Gone as usize - 1), n);
        assert_eq!(cell(m.hot.cache + 3 + CacheResult::Miss as usize), n);
        assert_eq!(cell(m.hot.cache + CacheResult::Miss as usize), 0);
    }

    #[test]
    fn marketplaces_take_slots_in_order_seen_and_overflow_to_other() {
        let m = Metrics::new(["amazon"]);
        let de = m.link_label("amazon", Some("amazon.de"));
        assert_eq!(m.link_label("amazon", Some("amazon.de")), de);
        assert_ne!(m.link_label("amazon", Some("amazon.com")), de);
        assert_eq!(m.link_label("amazon", None), m.provider_index("amazon"));
        let other = m.link_label("amazon", Some("Not A Domain!"));
        assert_eq!(other as usize, MARKETPLACE_SLOTS - 1);
        for i in 0..MARKETPLACE_SLOTS {
            m.link_label("amazon", Some(&format!("m{i}.example")));
        }
        assert_eq!(
            m.link_label("amazon", Some("late.example")) as usize,
            MARKETPLACE_SLOTS - 1,
            "slots full: other"
        );
        // An unknown label index counts under the last provider, never
        // out of bounds.
        m.redirected(u16::MAX, false);
    }

    #[test]
    fn a_scrape_renders_help_for_every_metric_and_clicks_by_marketplace() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let text = metrics::with_local_recorder(&recorder, || {
            describe();
            process().describe();
            let m = Metrics::new(["amazon", "awin"]);
            let de = m.link_label("amazon", Some("amazon.de"));
            m.redirected(de, false);
            m.redirected(de, true);
            m.redirected(m.provider_index("awin"), false);
            m.request_duration(false, Route::Redirect, Duration::from_micros(30));
            // Money counters are process-wide: a provider and ISO 4217's
            // test currencies that no other test imports.
            conversions_imported(
                "awin-csv",
                "metrics-test",
                &ImportCounts {
                    rows: [
                        ("inserted", 2),
                        ("updated", 0),
                        ("unchanged", 0),
                        ("rejected", 1),
                        ("unattributed", 0),
                    ],
                    commission: vec![
                        (Some("XTS".into()), 2_500_000),
                        (Some("XXX".into()), -1_000_000),
                    ],
                },
            );
            m.render(&handle, &ScrapeState::default())
        });
        let value = |series: &str| -> f64 {
            line(&text, series)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        };
        assert_eq!(
            value(
                r#"linkwright_clicks_total{provider="amazon",marketplace="amazon.de",bot="true"}"#
            ),
            1.0
        );
        assert_eq!(
            value(r#"linkwright_redirects_total{outcome="redirect",provider="amazon"}"#),
            2.0
        );
        assert_eq!(
            value(r#"linkwright_clicks_total{provider="awin",marketplace="none",bot="false"}"#),
            1.0
        );
        assert_eq!(
            value(r#"linkwright_commission_earned_total{provider="metrics-test",currency="XTS"}"#),
            2.5
        );
        assert_eq!(
            value(
                r#"linkwright_commission_reversed_total{provider="metrics-test",currency="XXX"}"#
            ),
            1.0
        );
        // Every family has HELP text before its TYPE.
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = l.split(' ').nth(2).unwrap_or_default();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name} in\n{text}"
            );
        }
    }
}
