//! Prometheus metrics: the recorder, and handles registered once at start-up
//! so the redirect path bumps a cached `Counter` instead of looking one up.
//!
//! Names carry the `linkwright_` prefix and base units, counters end in
//! `_total`, histograms have explicit buckets, and label values come from
//! small fixed sets (provider names from the config, outcomes, results):
//! never a link code, URL or click ID.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("linkwright_http_request_duration_seconds".into()),
                    REQUEST_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("linkwright_clicklog_flush_duration_seconds".into()),
                        FLUSH_BUCKETS,
                    )
                });
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
    const ALL: [Route; 5] = [
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

/// Per-provider handles.
#[derive(Debug)]
struct ProviderMetrics {
    redirects: Counter,
    /// `[human, bot]`.
    clicks: [Counter; 2],
}

/// Pre-registered metric handles for one listener pair.
#[derive(Debug)]
pub struct Metrics {
    providers: Vec<(String, ProviderMetrics)>,
    failures: [Counter; 4],
    /// `[links, go] × [hit, miss, negative_hit]`.
    cache: [[Counter; 3]; 2],
    /// `[public, admin] × Route::ALL`.
    durations: [[Histogram; 5]; 2],
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
}

impl Metrics {
    /// Registers every handle, for these provider names.
    pub fn new<'a>(provider_names: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut names: Vec<String> = provider_names.into_iter().map(str::to_owned).collect();
        names.push(OTHER_PROVIDER.to_owned());
        let providers = names
            .into_iter()
            .map(|name| {
                let m = ProviderMetrics {
                    redirects: counter!("linkwright_redirects_total", "outcome" => "redirect", "provider" => name.clone()),
                    clicks: [
                        counter!("linkwright_clicks_total", "provider" => name.clone(), "bot" => "false"),
                        counter!("linkwright_clicks_total", "provider" => name.clone(), "bot" => "true"),
                    ],
                };
                (name, m)
            })
            .collect();
        let failures = Outcome::FAILURES
            .map(|o| counter!("linkwright_redirects_total", "outcome" => o.as_str(), "provider" => "none"));
        let cache = ["links", "go"].map(|c| {
            ["hit", "miss", "negative_hit"]
                .map(|r| counter!("linkwright_cache_lookups_total", "cache" => c, "result" => r))
        });
        let durations = ["public", "admin"].map(|l| {
            Route::ALL.map(|r| {
                histogram!("linkwright_http_request_duration_seconds", "listener" => l, "route" => r.as_str())
            })
        });
        let shed = ["public", "admin"]
            .map(|l| counter!("linkwright_http_rejected_total", "listener" => l, "reason" => "overloaded"));
        let timeouts = ["public", "admin"].map(
            |l| counter!("linkwright_http_rejected_total", "listener" => l, "reason" => "timeout"),
        );
        gauge!("linkwright_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Metrics {
            providers,
            failures,
            cache,
            durations,
            shed,
            timeouts,
            queue_depth: gauge!("linkwright_clicklog_queue_depth"),
            clicks_dropped: counter!("linkwright_clicklog_dropped_total"),
            clicks_written: counter!("linkwright_clicklog_written_total"),
            clicklog_errors: counter!("linkwright_clicklog_write_errors_total"),
            flush_duration: histogram!("linkwright_clicklog_flush_duration_seconds"),
        }
    }

    /// The label index of a provider name (the `other` slot if unknown).
    pub fn provider_index(&self, name: &str) -> u16 {
        let idx = self
            .providers
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or(self.providers.len() - 1);
        idx as u16
    }

    /// A redirect served for a provider, human or bot.
    pub fn redirected(&self, provider: u16, bot: bool) {
        if let Some((_, m)) = self.providers.get(provider as usize) {
            m.redirects.increment(1);
            m.clicks[usize::from(bot)].increment(1);
        }
    }

    /// A redirect-host request that did not redirect.
    pub fn failed(&self, outcome: Outcome) {
        // FAILURES follows the declaration order after `Redirect`.
        if let Some(counter) = (outcome as usize)
            .checked_sub(1)
            .and_then(|i| self.failures.get(i))
        {
            counter.increment(1);
        }
    }

    /// A cache lookup (`go`: the middleware-mode cache).
    pub fn cache_lookup(&self, go: bool, result: CacheResult) {
        self.cache[usize::from(go)][result as usize].increment(1);
    }

    /// A request's duration.
    pub fn request_duration(&self, admin: bool, route: Route, seconds: f64) {
        // Route::ALL follows the declaration order.
        self.durations[usize::from(admin)][route as usize].record(seconds);
    }

    /// A request refused by load shedding or timed out.
    pub fn rejected(&self, admin: bool, timeout: bool) {
        if timeout {
            self.timeouts[usize::from(admin)].increment(1);
        } else {
            self.shed[usize::from(admin)].increment(1);
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
