//! Attribution reports at scale: a store with 10,000,000 clicks over 10,000
//! links and 60 days, and 100,000 conversions; then a 30-day report grouped
//! by link, timed and judged against a floor measured in the same run: a
//! hand-written SQL aggregate of the same stored rows (the click rollup and
//! the counted conversions of the 30 days, summed per link, every row
//! stepped through) on a connection of its own. Budget: the report within
//! 3× the floor; the absolute figure is printed with the old budget
//! (≤ 500 ms) for the record. The other groupings are timed for reference.
//!
//! `REPORTS_CLICKS` (default 10,000,000) builds a smaller store when the
//! full one takes too long to build on a busy machine; the cache of the
//! built store is kept per click count.
//!
//! The clicks go through `SqliteStore::insert_clicks` in batches of 4,096
//! (the click writer's batch size), so the build also measures the cost of
//! keeping the click rollup in step; the build time is printed. The built
//! file is cached under the target folder (`CARGO_TARGET_TMPDIR`) and reused
//! by later runs; delete `reports-bench/` there to rebuild.
//!
//! Does nothing unless run by `cargo bench` (`--bench` in the arguments).
//!
//! `cargo bench --bench reports`
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use linkwright_core::ClickIdGenerator;
use linkwright_core::backend::SqliteStore;
use linkwright_core::classify::UaClass;
use linkwright_core::reports::ReportStore;
use linkwright_core::reports::{GroupBy, MS_PER_DAY, ReportQuery};
use linkwright_core::store::{ClickEvent, ClickStore, LinkStore};
use rusqlite::params;

const LINKS: i64 = 10_000;
/// Clicks in the store: `REPORTS_CLICKS`, default 10,000,000.
static CLICKS: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
    std::env::var("REPORTS_CLICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
});
/// The report within this many times its floor.
const RATIO_BUDGET: f64 = 3.0;
const DAYS: i64 = 60;
const CONVERSIONS: i64 = 100_000;
const BATCH: usize = 4_096;
const CAMPAIGNS: i64 = 50;
/// 2026-09-01: the first day of the data.
const FIRST_DAY: i64 = 20_697;
/// Bumped when the data set changes, so a stale cache is rebuilt.
fn version() -> String {
    format!(
        "reports-bench v2: 10,000 links, {} clicks, 60 days, 100,000 conversions",
        *CLICKS
    )
}

/// A deterministic pseudo-random stream (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A link id, skewed like real traffic: the cube of a uniform number
    /// puts half the clicks on the most popular 12.5% of links.
    fn link(&mut self) -> i64 {
        let u = self.unit();
        1 + ((u * u * u) * LINKS as f64) as i64
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(if *CLICKS == 10_000_000 {
        "reports-bench".to_owned()
    } else {
        format!("reports-bench-{}", *CLICKS)
    });
    let marker = dir.join("built.txt");
    let built = std::fs::read_to_string(&marker).ok();
    match built {
        Some(text) if text.starts_with(&version()) => {
            println!("reusing {} ({})", dir.display(), text.trim());
        }
        _ => {
            let _ = std::fs::remove_dir_all(&dir);
            let summary = build(&dir);
            std::fs::write(&marker, format!("{}; {summary}\n", version())).unwrap();
        }
    }
    measure(&dir);
    rollup_cost(
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reports-bench-rollup"),
        256,
    );
}

/// Builds the store; returns a one-line summary of the build.
fn build(dir: &Path) -> String {
    let store = SqliteStore::open(dir).unwrap();
    let started = Instant::now();
    insert_links(&store);
    println!("{LINKS} links in {:.2?}", started.elapsed());

    let mut stream = ClickStream::new();
    let mut pairs_touched = 0usize;
    let mut batches = 0usize;
    let started = Instant::now();
    while let Some(batch) = stream.batch() {
        store.insert_clicks(&batch).unwrap();
        pairs_touched += pairs(&batch);
        batches += 1;
        if batches.is_multiple_of(500) {
            println!("  {} clicks, {:.0?}", batches * BATCH, started.elapsed());
        }
    }
    let click_time = started.elapsed();
    let per_sec = *CLICKS as f64 / click_time.as_secs_f64();
    println!(
        "{} clicks through insert_clicks in {batches} batches of {BATCH}: {:.1?} \
         ({per_sec:.0} clicks/s; {:.0} (link, day) pairs upserted per batch on average)",
        *CLICKS,
        click_time,
        pairs_touched as f64 / batches as f64
    );

    let started = Instant::now();
    insert_conversions(&store, &mut Rng(11));
    println!("{CONVERSIONS} conversions in {:.2?}", started.elapsed());
    let started = Instant::now();
    store.with_conn(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap());
    println!("checkpoint in {:.2?}", started.elapsed());
    format!(
        "clicks inserted in {:.1} s ({per_sec:.0}/s)",
        click_time.as_secs_f64()
    )
}

/// The bench's clicks: `CLICKS` of them spread evenly over `DAYS` days in
/// time order (as the click log writes them), links skewed like real
/// traffic, one in ten a bot; cut into batches of `BATCH`.
struct ClickStream {
    ids: ClickIdGenerator,
    rng: Rng,
    next: i64,
}

impl ClickStream {
    fn new() -> ClickStream {
        ClickStream {
            ids: ClickIdGenerator::new(1),
            rng: Rng(7),
            next: 0,
        }
    }

    fn batch(&mut self) -> Option<Vec<ClickEvent>> {
        let end = (*CLICKS).min(self.next + BATCH as i64);
        if self.next >= end {
            return None;
        }
        let span_ms = i128::from(DAYS * MS_PER_DAY);
        let batch = (self.next..end)
            .map(|i| {
                let at_ms =
                    FIRST_DAY * MS_PER_DAY + (i128::from(i) * span_ms / i128::from(*CLICKS)) as i64;
                let bot = self.rng.next().is_multiple_of(10);
                ClickEvent {
                    click_id: (!bot).then(|| self.ids.next_id()),
                    link_id: self.rng.link(),
                    at_ms,
                    bot,
                    referrer_host: Some("news.example".into()),
                    ua_class: if bot { UaClass::Bot } else { UaClass::Mobile },
                    country: Some(*b"DE"),
                    target: 0,
                }
            })
            .collect();
        self.next = end;
        Some(batch)
    }
}

/// Distinct (link, day) pairs in a batch: the rollup upserts it costs.
fn pairs(batch: &[ClickEvent]) -> usize {
    let set: std::collections::HashSet<(i64, i64)> = batch
        .iter()
        .map(|c| (c.link_id, c.at_ms.div_euclid(MS_PER_DAY)))
        .collect();
    set.len()
}

/// What keeping the rollup costs the click writer: the first `batches`
/// batches of the stream written, in turn, to two fresh stores: through
/// `insert_clicks` (clicks + rollup), and through the click insert alone
/// (the writer as it was before the rollup).
fn rollup_cost(dir: &Path, batches: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let with = SqliteStore::open(&dir.join("with")).unwrap();
    let without = SqliteStore::open(&dir.join("without")).unwrap();
    insert_links(&with);
    insert_links(&without);
    let mut stream = ClickStream::new();
    let (mut t_with, mut t_without) = (Duration::ZERO, Duration::ZERO);
    let mut clicks = 0;
    for i in 0..batches {
        let Some(batch) = stream.batch() else { break };
        clicks += batch.len();
        // Take turns going first, so that neither store always meets a
        // cache the other warmed.
        for with_first in [i % 2 == 0, i % 2 == 1] {
            let t = Instant::now();
            if with_first {
                with.insert_clicks(&batch).unwrap();
                t_with += t.elapsed();
            } else {
                clicks_only(&without, &batch);
                t_without += t.elapsed();
            }
        }
    }
    let rate = |t: Duration| clicks as f64 / t.as_secs_f64();
    println!(
        "rollup cost, {clicks} clicks into fresh stores: with the rollup {:.1?} ({:.0} clicks/s), \
         clicks only {:.1?} ({:.0} clicks/s): {:.2}x the time",
        t_with,
        rate(t_with),
        t_without,
        rate(t_without),
        t_with.as_secs_f64() / t_without.as_secs_f64()
    );
    drop((with, without));
    let _ = std::fs::remove_dir_all(dir);
}

/// The click insert of `insert_clicks` without the rollup upkeep: clicks
/// with a click ID in `clicks_by_id`, the others in `clicks_without_id`.
fn clicks_only(store: &SqliteStore, batch: &[ClickEvent]) {
    store.with_conn(|c| {
        let tx = c.unchecked_transaction().unwrap();
        let mut by_id = tx
            .prepare_cached(
                "INSERT INTO clicks_by_id (click_id, link_id, at_ms, bot, referrer_host, ua, \
                 country) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .unwrap();
        let mut without_id = tx
            .prepare_cached(
                "INSERT INTO clicks_without_id (link_id, at_ms, bot, referrer_host, ua, \
                 country) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .unwrap();
        for c in batch {
            let country = c
                .country
                .as_ref()
                .and_then(|cc| std::str::from_utf8(cc).ok());
            let (link, at, bot, referrer, class) = (
                c.link_id,
                c.at_ms,
                c.bot,
                c.referrer_host.as_deref(),
                c.ua_class.index() as i64,
            );
            match &c.click_id {
                Some(id) => by_id.execute(params![
                    id.as_str(),
                    link,
                    at,
                    bot,
                    referrer,
                    class,
                    country
                ]),
                None => without_id.execute(params![link, at, bot, referrer, class, country]),
            }
            .unwrap();
        }
        drop((by_id, without_id));
        tx.commit().unwrap();
    });
}

fn insert_links(store: &SqliteStore) {
    store.with_conn(|c| {
        c.execute_batch("BEGIN").unwrap();
        let mut stmt = c
            .prepare(
                "INSERT INTO links (id, code, provider, input, destination, template_prefix, \
                 template_suffix, subid_max_len, subid_encoding, name, marketplace, campaign, \
                 created_ms) VALUES (?1, ?2, ?3, ?4, ?4, ?5, '', 64, 'url_safe', ?6, ?7, ?8, 0)",
            )
            .unwrap();
        for id in 1..=LINKS {
            let (provider, marketplace) = match id % 10 {
                0..=5 => ("amazon", Some("amazon.com")),
                6 | 7 => ("amazon", Some("amazon.co.uk")),
                8 => ("awin", Some("1001")),
                _ => ("rakuten", None),
            };
            let destination = format!("https://www.amazon.com/dp/B{id:09}");
            let campaign = (id % 7 != 0).then(|| format!("campaign-{:02}", id % CAMPAIGNS));
            stmt.execute(params![
                id,
                format!("L{id:06}"),
                provider,
                destination,
                format!("{destination}?tag=linkwright-20&ascsubtag="),
                format!("Video {id}"),
                marketplace,
                campaign,
            ])
            .unwrap();
        }
        drop(stmt);
        c.execute_batch("COMMIT").unwrap();
    });
}

fn insert_conversions(store: &SqliteStore, rng: &mut Rng) {
    store.with_conn(|c| {
        c.execute_batch("BEGIN").unwrap();
        let mut stmt = c
            .prepare(
                "INSERT INTO conversions (provider, kind, row_key, link_id, event_ms, quantity, \
                 returns, price_micros, revenue_micros, commission_micros, status, currency, \
                 imported_ms, updated_ms) \
                 VALUES (?1, 'orders', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'USD', 0, 0)",
            )
            .unwrap();
        for i in 0..CONVERSIONS {
            let attributed = !rng.next().is_multiple_of(10);
            let link_id = attributed.then(|| rng.link());
            let event_ms =
                FIRST_DAY * MS_PER_DAY + (rng.unit() * (DAYS * MS_PER_DAY) as f64) as i64;
            let quantity = 1 + (rng.next() % 3) as i64;
            let returns = i64::from(rng.next().is_multiple_of(20));
            let price = 5_000_000 + (rng.next() % 95_000_000) as i64;
            let status = match rng.next() % 20 {
                0 => "declined",
                1 => "deleted",
                2..=9 => "pending",
                _ => "approved",
            };
            stmt.execute(params![
                if rng.next().is_multiple_of(4) {
                    "awin"
                } else {
                    "amazon"
                },
                format!("row-{i}"),
                link_id,
                event_ms,
                quantity,
                returns,
                price,
                price * (quantity - returns),
                price * (quantity - returns) / 25,
                status,
            ])
            .unwrap();
        }
        drop(stmt);
        c.execute_batch("COMMIT").unwrap();
    });
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    (
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1],
    )
}

/// The floor: the same rows the 30-day report sums, summed per link by
/// hand-written SQL on a read-only connection of its own (the report opens
/// one too), every result row stepped through. Returns the row count.
fn floor(store: &SqliteStore, from_day: i64, to_day: i64) -> usize {
    let conn = rusqlite::Connection::open_with_flags(
        store.path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    let mut n = 0usize;
    let mut clicks = tx
        .prepare(
            "SELECT link_id, sum(clicks), sum(bot_hits) FROM click_rollup \
             WHERE day BETWEEN ?1 AND ?2 GROUP BY link_id",
        )
        .unwrap();
    let mut rows = clicks.query(params![from_day, to_day]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        std::hint::black_box((r.get::<_, i64>(1).unwrap(), r.get::<_, i64>(2).unwrap()));
        n += 1;
    }
    let mut conversions = tx
        .prepare(
            "SELECT link_id, currency, count(*), sum(quantity - returns), sum(revenue_micros), \
             sum(commission_micros) FROM conversions \
             WHERE event_ms >= ?1 AND event_ms < ?2 \
             AND lower(status) NOT IN ('declined', 'deleted') \
             AND NOT (provider = 'amazon' AND kind = 'orders') \
             GROUP BY link_id, currency",
        )
        .unwrap();
    let mut rows = conversions
        .query(params![from_day * MS_PER_DAY, (to_day + 1) * MS_PER_DAY])
        .unwrap();
    while let Some(r) = rows.next().unwrap() {
        std::hint::black_box((
            r.get::<_, i64>(2).unwrap(),
            r.get::<_, Option<i64>>(5).unwrap(),
        ));
        n += 1;
    }
    n
}

fn measure(dir: &Path) {
    let store = SqliteStore::open(dir).unwrap();
    let (rollup_rows, db_bytes) = store.with_conn(|c| {
        let rows: i64 = c
            .query_row("SELECT count(*) FROM click_rollup", [], |r| r.get(0))
            .unwrap();
        let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (rows, pages * size)
    });
    println!(
        "store: {} MiB, {rollup_rows} click_rollup rows",
        db_bytes / (1 << 20)
    );
    let from = FIRST_DAY + 15;
    let query = |group_by| ReportQuery {
        from_day: from,
        to_day: from + 29,
        group_by,
    };

    // Warm up (page cache), and show what the report holds.
    let report = store.report(&query(GroupBy::Link)).unwrap();
    println!(
        "30-day report by link, {} to {}: {} rows; totals: {} clicks, {} bot hits, \
         {} conversions, revenue {}, commission {}, EPC {}",
        report.from,
        report.to,
        report.rows.len(),
        report.totals.sums.clicks,
        report.totals.sums.bot_hits,
        report.totals.sums.conversions,
        report.totals.sums.revenue,
        report.totals.sums.commission,
        report.totals.sums.earnings_per_click
    );

    // Report and floor in turn, so that both meet the same machine.
    let runs = 20;
    let (mut samples, mut floors, mut ratios) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(store.report(&query(GroupBy::Link)).unwrap());
        let report = t.elapsed();
        let t = Instant::now();
        std::hint::black_box(floor(&store, from, from + 29));
        let floor = t.elapsed();
        samples.push(report);
        floors.push(floor);
        ratios.push(report.as_secs_f64() / floor.as_secs_f64());
    }
    let (min, median, max) = stats(samples);
    let (fmin, fmedian, _) = stats(floors);
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    println!(
        "30-day report by link ({runs} runs): min {min:.1?}, median {median:.1?}, max {max:.1?}; \
         floor (hand-written SQL aggregate of the same rows): min {fmin:.1?}, median {fmedian:.1?}"
    );
    println!(
        "ratio to the floor (median of runs): {ratio:.2}× (min {:.2}×, max {:.2}×) — budget ≤ {RATIO_BUDGET}×: {}",
        ratios[0],
        ratios[ratios.len() - 1],
        if ratio <= RATIO_BUDGET {
            "pass"
        } else {
            "FAIL"
        }
    );
    println!(
        "absolute, for the record: the old budget (≤ 500 ms) {}",
        if median <= Duration::from_millis(500) {
            "held"
        } else {
            "missed"
        }
    );
    for group_by in [
        GroupBy::Campaign,
        GroupBy::Provider,
        GroupBy::Marketplace,
        GroupBy::Day,
    ] {
        let samples: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(store.report(&query(group_by)).unwrap());
                t.elapsed()
            })
            .collect();
        let (min, median, _) = stats(samples);
        println!("30-day report by {group_by} (5 runs): min {min:.1?}, median {median:.1?}");
    }
    let samples: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(
                store
                    .report(&ReportQuery {
                        from_day: FIRST_DAY,
                        to_day: FIRST_DAY + 365,
                        group_by: GroupBy::Link,
                    })
                    .unwrap(),
            );
            t.elapsed()
        })
        .collect();
    let (min, median, _) = stats(samples);
    println!(
        "366-day report by link (all 60 days of data, 5 runs): min {min:.1?}, median {median:.1?}"
    );
    let samples: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(store.link_stats(1).unwrap());
            t.elapsed()
        })
        .collect();
    let (min, median, _) = stats(samples);
    println!("link stats of the busiest link (20 runs): min {min:.1?}, median {median:.1?}");
}
