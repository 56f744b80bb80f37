//! Prometheus metrics: the recorder, and handles registered once at start-up
//! so the redirect path bumps a cached `Counter` instead of looking one up.
//!
//! Names carry the `linkwright_` prefix and base units, counters end in
//! `_total`, histograms have explicit buckets, and label values come from
//! small fixed sets (provider names from the config, outcomes, results):
//! never a link code, URL or click ID.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
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

/// The label value for links whose provider is not loaded.
pub const OTHER_PROVIDER: &str = "other";

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install_recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Request durations are not the exporter's: see `Hot`.
            let builder = PrometheusBuilder::new().set_buckets_for_metric(
                Matcher::Full("linkwright_clicklog_flush_duration_seconds".into()),
                FLUSH_BUCKETS,
            );
            // The matchers and buckets are constants, so neither can fail;
            // fall back to a plain builder rather than panic.
            let builder = builder.unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (embedding); ours then
            // only renders what it sees, which is nothing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
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
/// Cells of one shard, in order: per provider `[redirects, human clicks, bot
/// clicks]`; the four failure outcomes; `[links, go] × [hit, miss,
/// negative_hit]` cache lookups; then per `[public, admin] × Route::ALL`
/// series, one cell per bucket of [`REQUEST_BUCKETS`], one for above the
/// last bucket, and the sum of durations in nanoseconds.
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
    fn new(providers: usize) -> Hot {
        let failures = 3 * providers;
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
    /// Exporter counters the hot counter cells are folded into, in cell
    /// order (everything before `hot.durations`).
    folded: Vec<Counter>,
    shed: [Counter; 2],
    timeouts: [Counter; 2],
    /// Click-log queue depth.
    pub queue_depth: Gauge,
    /// Click events dropped because the queue was full.
    pub clicks_dropped: Counter,
    /// Click events written to the store.
    pub clicks_written: Counter,
    /// Failed click-log writes.
    pub clicklog_errors: Counter,
    /// Click-log flush durations.
    pub flush_duration: Histogram,
    providers: Vec<String>,
}

impl Metrics {
    /// Registers every handle, for these provider names.
    pub fn new<'a>(provider_names: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut providers: Vec<String> = provider_names.into_iter().map(str::to_owned).collect();
        providers.push(OTHER_PROVIDER.to_owned());
        let mut folded = Vec::new();
        for name in &providers {
            folded.push(counter!("linkwright_redirects_total", "outcome" => "redirect", "provider" => name.clone()));
            folded.push(
                counter!("linkwright_clicks_total", "provider" => name.clone(), "bot" => "false"),
            );
            folded.push(
                counter!("linkwright_clicks_total", "provider" => name.clone(), "bot" => "true"),
            );
        }
        for o in Outcome::FAILURES {
            folded.push(counter!("linkwright_redirects_total", "outcome" => o.as_str(), "provider" => "none"));
        }
        for c in ["links", "go"] {
            for r in ["hit", "miss", "negative_hit"] {
                folded
                    .push(counter!("linkwright_cache_lookups_total", "cache" => c, "result" => r));
            }
        }
        let hot = Hot::new(providers.len());
        debug_assert_eq!(folded.len(), hot.durations);
        let shed = ["public", "admin"]
            .map(|l| counter!("linkwright_http_rejected_total", "listener" => l, "reason" => "overloaded"));
        let timeouts = ["public", "admin"].map(
            |l| counter!("linkwright_http_rejected_total", "listener" => l, "reason" => "timeout"),
        );
        gauge!("linkwright_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Metrics {
            hot,
            folded,
            shed,
            timeouts,
            queue_depth: gauge!("linkwright_clicklog_queue_depth"),
            clicks_dropped: counter!("linkwright_clicklog_dropped_total"),
            clicks_written: counter!("linkwright_clicklog_written_total"),
            clicklog_errors: counter!("linkwright_clicklog_write_errors_total"),
            flush_duration: histogram!("linkwright_clicklog_flush_duration_seconds"),
            providers,
        }
    }

    /// The label index of a provider name (the `other` slot if unknown).
    pub fn provider_index(&self, name: &str) -> u16 {
        let idx = self
            .providers
            .iter()
            .position(|n| n == name)
            .unwrap_or(self.providers.len() - 1);
        idx as u16
    }

    /// A redirect served for a provider, human or bot.
    pub fn redirected(&self, provider: u16, bot: bool) {
        let provider = usize::from(provider).min(self.providers.len() - 1);
        self.hot.add(3 * provider, 1);
        self.hot.add(3 * provider + 1 + usize::from(bot), 1);
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
        for (cell, counter) in self.folded.iter().enumerate() {
            counter.absolute(self.hot.sum(cell));
        }
    }

    /// Appends `linkwright_http_request_duration_seconds` in the Prometheus
    /// text format: every series with at least one request.
    pub fn render_durations(&self, out: &mut String) {
        const NAME: &str = "linkwright_http_request_duration_seconds";
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
}

/// A link created, by provider and where it came from (`cli`, `go`, `api`).
pub fn link_created(provider: &str, source: &'static str) {
    counter!("linkwright_links_created_total", "provider" => provider.to_owned(), "source" => source)
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
        assert_eq!(cell(3 * awin), 101 * n, "redirects");
        assert_eq!(cell(3 * awin + 1), 100 * n, "human clicks");
        assert_eq!(cell(3 * awin + 2), n, "bot clicks");
        assert_eq!(cell(0), 0, "amazon untouched");
        assert_eq!(cell(m.hot.failures + Outcome::Gone as usize - 1), n);
        assert_eq!(cell(m.hot.cache + 3 + CacheResult::Miss as usize), n);
        assert_eq!(cell(m.hot.cache + CacheResult::Miss as usize), 0);
    }
}
