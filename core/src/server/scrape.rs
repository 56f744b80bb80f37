//! One metrics scrape: reads what the gauges show from the server's parts
//! (caches, click log, providers, store) and renders every metric.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::App;
use crate::metrics::ScrapeState;

/// The Prometheus text of every metric. Blocking (it asks the store and
/// reads `/proc`): call it off the async workers.
pub(super) fn render(app: &App) -> String {
    let (evictions_links, evictions_missing) = app.cache.evictions();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let clicklog_lag = app
        .clicklog
        .oldest_unwritten_ms()
        .map_or(Duration::ZERO, |oldest| {
            Duration::from_millis(u64::try_from(now_ms - oldest).unwrap_or(0))
        });
    let store_answers = app.store.load_click_state().is_ok();
    let state = ScrapeState {
        ready: app.is_ready() && store_answers,
        queue_depth: usize::try_from(app.clicklog.depth()).unwrap_or(0),
        clicklog_lag,
        cache_links: app.cache.len(),
        cache_missing: app.cache.missing_len(),
        cache_go: app.go.len(),
        evictions_links,
        evictions_missing,
        evictions_go: app.go.evictions(),
        cache_memory_bytes: app.cache.memory_bytes(),
        plugins: app
            .providers
            .loaded()
            .iter()
            .map(|p| (p.name.clone(), p.is_poisoned()))
            .collect(),
        plugins_refused: app.providers.refused().len(),
        jobs_unfinished: crate::jobs::unfinished(&app.db).ok().map(|j| j.len()),
    };
    app.metrics.render(&app.prometheus, &state)
}
