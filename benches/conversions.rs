//! Importing a large Amazon Earnings report: 100,000 rows (generated, 10% of
//! them naming a known click ID as sub-tag) into a fresh store, through
//! [`conversions::import`] exactly as the API and the CLI run it: parse,
//! attribute, upsert in one transaction. Budget: ≤ 2 s.
//!
//! `cargo bench --bench conversions` runs it. Without `--bench` among its
//! arguments (as `cargo test --all-targets` runs it) it exits at once.
//!
//! Measured per round, each on a fresh store: generating the file (not part
//! of the budget), parsing alone, the first import (every row inserted), a
//! re-import of the same file (every row unchanged), and an import of the
//! same file with returns on 1% of the rows (those rows updated).
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use linkwright_core::conversions::{self, ConversionsConfig, Format};
use linkwright_core::store::SqliteStore;

const ROWS: usize = 100_000;
const CLICKS: usize = 10_000;
const ROUNDS: usize = 3;
const BUDGET: Duration = Duration::from_secs(2);

fn click_id(i: usize) -> String {
    format!("C{i:013}")
}

/// A Fee-Earnings report of `ROWS` rows; every 10th names a known click.
fn report(returns_every: usize) -> Vec<u8> {
    let mut out = String::with_capacity(ROWS * 120);
    out.push_str("Fee-Earnings reports from 11-01-2026 to 11-30-2026\n");
    out.push_str("Category\tName\tASIN\tSeller\tTracking ID\tDate Shipped\tPrice($)\tItems Shipped\tReturns\tRevenue($)\tAd Fees($)\tDevice Type Group\tSub Tag\n");
    for i in 0..ROWS {
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

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let config = ConversionsConfig::default();
    let started = Instant::now();
    let file = report(0);
    let with_returns = report(100);
    let generated = started.elapsed();
    println!(
        "generated {ROWS} rows ({:.1} MiB) twice in {}",
        file.len() as f64 / (1024.0 * 1024.0),
        ms(generated)
    );
    let (mut parse, mut first, mut again, mut update) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let t = Instant::now();
        let parsed = conversions::parse(
            Format::AmazonEarnings,
            config.format(Format::AmazonEarnings),
            &file,
        )
        .unwrap();
        parse.push(t.elapsed());
        assert_eq!(parsed.rows.len(), ROWS);
        drop(parsed);

        let (dir, store) = fresh_store(round);
        let t = Instant::now();
        let s = conversions::import(&store, &config, Format::AmazonEarnings, &file).unwrap();
        first.push(t.elapsed());
        assert_eq!(
            (s.inserted, s.unattributed),
            (ROWS as u64, (ROWS - CLICKS) as u64)
        );

        let t = Instant::now();
        let s = conversions::import(&store, &config, Format::AmazonEarnings, &file).unwrap();
        again.push(t.elapsed());
        assert_eq!(s.unchanged, ROWS as u64);

        let t = Instant::now();
        let s =
            conversions::import(&store, &config, Format::AmazonEarnings, &with_returns).unwrap();
        update.push(t.elapsed());
        assert_eq!(s.updated, (ROWS / 100) as u64);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let first_median = median(first.clone());
    println!("rounds: {ROUNDS}, each on a fresh store with {CLICKS} known clicks");
    println!("| step | median | runs |");
    println!("|---|---|---|");
    for (name, runs) in [
        ("parse only", &parse),
        ("first import: 100,000 inserted (10,000 attributed)", &first),
        ("re-import: 100,000 unchanged", &again),
        (
            "import with returns: 1,000 updated, 99,000 unchanged",
            &update,
        ),
    ] {
        println!(
            "| {name} | {} | {} |",
            ms(median(runs.clone())),
            runs.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
        );
    }
    println!(
        "budget: first import ≤ {} s: {} ({:.0} rows/s)",
        BUDGET.as_secs(),
        if first_median <= BUDGET {
            "pass"
        } else {
            "FAIL"
        },
        ROWS as f64 / first_median.as_secs_f64()
    );
    ExitCode::SUCCESS
}
