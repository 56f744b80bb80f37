//! Importing a large Amazon Earnings report: 100,000 rows (generated, 10% of
//! them naming a known click ID as sub-tag) into a fresh store, through
//! [`conversions::import`] exactly as the API and the CLI run it: parse,
//! attribute, upsert in one transaction.
//!
//! Budgets are ratios to a floor measured in the same round (a shared
//! machine's speed cancels out): the floor is the same rows, already parsed
//! and attributed, written by the store with one prepared `INSERT` each in
//! one transaction into a fresh store with the same clicks. The first
//! import (parsing included) must stay within [`FIRST_RATIO`]× the floor, a
//! re-import of unchanged rows within [`AGAIN_RATIO`]×. The absolute
//! figures are printed too, with the old absolute budget for the record.
//!
//! `cargo bench --bench conversions` runs it; `CONVERSIONS_ROWS` (default
//! 100,000) and `CONVERSIONS_ROUNDS` (default 3) make it smaller. Without
//! `--bench` among its arguments (as `cargo test --all-targets` runs it) it
//! exits at once.
//!
//! Measured per round, each on a fresh store: generating the file (not part
//! of the budget), parsing alone, the floor, the first import (every row
//! inserted), a re-import of the same file (every row unchanged), and an
//! import of the same file with returns on 1% of the rows (those rows
//! updated).
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use linkwright_core::backend::SqliteStore;
use linkwright_core::conversions::{self, Conversion, ConversionsConfig, Format};

const CLICKS: usize = 10_000;
/// The old absolute budget of a first import of 100,000 rows, printed for
/// the record only.
const OLD_BUDGET: Duration = Duration::from_secs(2);
/// A first import (parsing included) within this many times the floor.
const FIRST_RATIO: f64 = 3.0;
/// A re-import of unchanged rows within this many times the floor.
const AGAIN_RATIO: f64 = 2.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn click_id(i: usize) -> String {
    format!("C{i:013}")
}

/// A Fee-Earnings report of `ROWS` rows; every 10th names a known click.
fn report(rows: usize, returns_every: usize) -> Vec<u8> {
    let mut out = String::with_capacity(rows * 120);
    out.push_str("Fee-Earnings reports from 11-01-2026 to 11-30-2026\n");
    out.push_str("Category\tName\tASIN\tSeller\tTracking ID\tDate Shipped\tPrice($)\tItems Shipped\tReturns\tRevenue($)\tAd Fees($)\tDevice Type Group\tSub Tag\n");
    for i in 0..rows {
        let sub = if i.is_multiple_of(10) {
            click_id(i / 10)
        } else {
            format!("U{i:013}")
        };
        let returns = usize::from(returns_every > 0 && i.is_multiple_of(returns_every));
        let cents = 100 + (i % 50_000);
        let _ = writeln!(
            out,
            "Electronics\tProduct number {i}\tB{:09}\tAmazon.com\tlinkwright-20\t2026-11-{:02}\t{}.{:02}\t1\t{returns}\t{}.{:02}\t{}.{:02}\tDESKTOP\t{sub}",
            i % 1_000_000_000,
            1 + i % 30,
            cents / 100,
            cents % 100,
            cents / 100,
            cents % 100,
            cents / 2_500,
            (cents / 25) % 100,
        );
    }
    out.into_bytes()
}

fn fresh_store(round: usize) -> (std::path::PathBuf, SqliteStore) {
    let dir = std::env::temp_dir().join(format!(
        "linkwright-bench-conversions-{}-{round}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir).unwrap();
    store.with_conn(|c| {
        c.execute_batch("BEGIN").unwrap();
        c.execute(
            "INSERT INTO links (code, provider, input, destination, template_prefix, \
             template_suffix, subid_max_len, subid_encoding, created_ms) \
             VALUES ('bench', 'amazon', 'x', 'x', 'x', '', 0, 'alphanumeric', 0)",
            [],
        )
        .unwrap();
        let link = c.last_insert_rowid();
        let mut insert = c
            .prepare(
                "INSERT INTO clicks_by_id (click_id, link_id, at_ms, bot, ua) \
                 VALUES (?1, ?2, 0, 0, 3)",
            )
            .unwrap();
        for i in 0..CLICKS {
            insert
                .execute(rusqlite::params![click_id(i), link])
                .unwrap();
        }
        drop(insert);
        c.execute_batch("COMMIT").unwrap();
    });
    (dir, store)
}

/// The floor: `rows` written into the store in one transaction, one
/// prepared `INSERT` each, with the attribution an import would find
/// (a known click ID: its link; otherwise none) already resolved.
fn floor(store: &SqliteStore, rows: &[(u64, Conversion)]) -> Duration {
    let started = Instant::now();
    store.with_conn(|c| {
        let link: i64 = c
            .query_row("SELECT id FROM links WHERE code = 'bench'", [], |r| r.get(0))
            .unwrap();
        c.execute_batch("BEGIN").unwrap();
        let mut insert = c
            .prepare(
                "INSERT INTO conversions (provider, kind, row_key, sub_id, click_id, link_id, \
                 tracking_id, event_ms, product_id, product_name, quantity, returns, price_micros, \
                 revenue_micros, commission_micros, status, currency, imported_ms, updated_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 0, 0)",
            )
            .unwrap();
        for (_, r) in rows {
            let known = r.sub_id.as_deref().filter(|s| s.starts_with('C'));
            insert
                .execute(rusqlite::params![
                    r.provider.as_str(),
                    r.kind.as_str(),
                    r.row_key,
                    r.sub_id,
                    known,
                    known.map(|_| link),
                    r.tracking_id,
                    r.event_ms,
                    r.product_id,
                    r.product_name,
                    r.quantity,
                    r.returns,
                    r.price_micros,
                    r.revenue_micros,
                    r.commission_micros,
                    r.status.as_str(),
                    r.currency,
                ])
                .unwrap();
        }
        drop(insert);
        c.execute_batch("COMMIT").unwrap();
    });
    started.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let rows = env_usize("CONVERSIONS_ROWS", 100_000).max(CLICKS);
    let rounds = env_usize("CONVERSIONS_ROUNDS", 3).max(1);
    let config = ConversionsConfig::default();
    let started = Instant::now();
    let file = report(rows, 0);
    let with_returns = report(rows, 100);
    let generated = started.elapsed();
    println!(
        "generated {rows} rows ({:.1} MiB) twice in {}",
        file.len() as f64 / (1024.0 * 1024.0),
        ms(generated)
    );
    let (mut parse, mut floors, mut first, mut again, mut update) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut first_ratio, mut again_ratio) = (vec![], vec![]);
    for round in 0..rounds {
        let t = Instant::now();
        let parsed = conversions::parse(
            Format::AmazonEarnings,
            config.format(Format::AmazonEarnings),
            &file,
        )
        .unwrap();
        parse.push(t.elapsed());
        assert_eq!(parsed.rows.len(), rows);

        // The floor, on a fresh store of its own with the same clicks.
        let (floor_dir, floor_store) = fresh_store(rounds + round);
        let f = floor(&floor_store, &parsed.rows);
        floors.push(f);
        drop(floor_store);
        let _ = std::fs::remove_dir_all(&floor_dir);
        drop(parsed);

        let (dir, store) = fresh_store(round);
        let t = Instant::now();
        let s = conversions::import(&store, &config, Format::AmazonEarnings, &file).unwrap();
        first.push(t.elapsed());
        assert_eq!(
            (s.inserted, s.unattributed),
            (rows as u64, (rows - CLICKS) as u64)
        );

        let t = Instant::now();
        let s = conversions::import(&store, &config, Format::AmazonEarnings, &file).unwrap();
        again.push(t.elapsed());
        assert_eq!(s.unchanged, rows as u64);

        let t = Instant::now();
        let s =
            conversions::import(&store, &config, Format::AmazonEarnings, &with_returns).unwrap();
        update.push(t.elapsed());
        assert_eq!(s.updated, (rows / 100) as u64);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        first_ratio.push(ratio(first[round], f));
        again_ratio.push(ratio(again[round], f));
        println!(
            "  round {round}: floor {}, first import {} ({:.2}×), re-import {} ({:.2}×)",
            ms(f),
            ms(first[round]),
            first_ratio[round],
            ms(again[round]),
            again_ratio[round]
        );
    }
    println!("rounds: {rounds}, each on a fresh store with {CLICKS} known clicks; {rows} rows");
    let floor_median = median(floors.clone());
    println!("| step | median | × floor (median of rounds) | runs |");
    println!("|---|---|---|---|");
    for (name, runs) in [
        ("parse only", &parse),
        (
            "floor: the same rows, one INSERT each, one transaction",
            &floors,
        ),
        (
            "first import: all rows inserted (10,000 attributed)",
            &first,
        ),
        ("re-import: all rows unchanged", &again),
        (
            "import with returns: 1% updated, the rest unchanged",
            &update,
        ),
    ] {
        let ratios: Vec<f64> = runs
            .iter()
            .zip(&floors)
            .map(|(d, f)| ratio(*d, *f))
            .collect();
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "| {name} | {} | {:.2}× | {} |",
            ms(median(runs.clone())),
            sorted[sorted.len() / 2],
            runs.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
        );
    }
    let median_ratio = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (fr, ar) = (
        median_ratio(&mut first_ratio),
        median_ratio(&mut again_ratio),
    );
    let verdict = |r: f64, budget: f64| if r <= budget { "pass" } else { "FAIL" };
    println!(
        "budget: first import ≤ {FIRST_RATIO}× floor: {} ({fr:.2}×); re-import ≤ {AGAIN_RATIO}× floor: {} ({ar:.2}×)",
        verdict(fr, FIRST_RATIO),
        verdict(ar, AGAIN_RATIO)
    );
    let first_median = median(first);
    println!(
        "absolute, for the record: first import {} ({:.0} rows/s), floor {}; the old budget (≤ {} s for 100,000 rows) {}",
        ms(first_median),
        rows as f64 / first_median.as_secs_f64(),
        ms(floor_median),
        OLD_BUDGET.as_secs(),
        if first_median <= OLD_BUDGET {
            "held"
        } else {
            "missed"
        }
    );
    println!(
        "machine load average (1 min): {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    ExitCode::SUCCESS
}
