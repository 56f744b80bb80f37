//! Reports against a real store, with totals worked out by hand.

use std::path::PathBuf;

use linkwright_plugin_sdk::SubIdEncoding;

use super::*;
use crate::classify::UaClass;
use crate::money::Micros;
use rusqlite::params;

use super::ReportStore;
use crate::backend::SqliteStore;
use crate::store::{ClickEvent, ClickStore, LinkStore, NewLink};
use crate::template::Template;

/// 2024-10-04.
const D: i64 = 20_000;
const HOUR: i64 = 3_600_000;
/// Micro-units in a cent.
const CENT: i64 = 10_000;

/// A conversion: row key, link, provider, (day, hour), (quantity,
/// returns), (revenue, commission) in cents, status, currency.
type Conv<'a> = (
    &'a str,
    Option<i64>,
    &'a str,
    (i64, i64),
    (i64, i64),
    (i64, i64),
    &'a str,
    &'a str,
);

/// A store in a fresh folder, removed on drop.
struct Fixture {
    dir: PathBuf,
    store: SqliteStore,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = crate::testing::scratch(name);
        let store = SqliteStore::open(&dir).expect("open store");
        Fixture { dir, store }
    }

    fn link(
        &self,
        code: &str,
        provider: &str,
        marketplace: Option<&str>,
        campaign: Option<&str>,
        name: Option<&str>,
    ) -> i64 {
        let link = self
            .store
            .create_link(NewLink {
                code: Some(code.into()),
                input: format!("https://shop.example/{code}"),
                template: Template {
                    provider: provider.into(),
                    built: linkwright_model::template::Built {
                        prefix: format!("https://shop.example/{code}?sub="),
                        suffix: String::new(),
                        destination: format!("https://shop.example/{code}"),
                        marketplace: marketplace.map(str::to_owned),
                        subid_max_len: 64,
                        subid_encoding: SubIdEncoding::UrlSafe,
                    },
                },
                name: name.map(str::to_owned),
                campaign: campaign.map(str::to_owned),
                tags: vec![],
                params: vec![],
                source_key: None,
                request_key: None,
                targeting: None,
            })
            .expect("create link");
        link.id
    }

    /// `humans` human clicks and `bots` bot hits on `link` at `at_ms`,
    /// in one batch.
    fn clicks(&self, link_id: i64, at_ms: i64, humans: usize, bots: usize) {
        let batch: Vec<ClickEvent> = (0..humans + bots)
            .map(|i| click(link_id, at_ms, i >= humans))
            .collect();
        self.store.insert_clicks(&batch).expect("insert clicks");
    }

    /// Inserts conversions as an importer would.
    fn conversions(&self, rows: &[Conv<'_>]) {
        for &(row_key, link_id, provider, (day, hour), (qty, ret), (rev, com), status, cur) in rows
        {
            self.store.with_conn(|c| {
                c.execute(
                    "INSERT INTO conversions (provider, kind, row_key, link_id, event_ms, \
                     quantity, returns, revenue_micros, commission_micros, status, currency, \
                     imported_ms, updated_ms) \
                     VALUES (?1, 'test', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, 0)",
                    params![
                        provider,
                        row_key,
                        link_id,
                        ms(day, hour),
                        qty,
                        ret,
                        rev * CENT,
                        com * CENT,
                        status,
                        cur
                    ],
                )
                .expect("insert conversion")
            });
        }
    }

    fn report(&self, from: i64, to: i64, group_by: GroupBy) -> Report {
        self.store
            .report(&ReportQuery {
                from_day: from,
                to_day: to,
                group_by,
            })
            .expect("report")
    }

    fn rollup(&self) -> Vec<(i64, i64, i64, i64)> {
        self.store.with_conn(|c| {
            let mut stmt = c
                .prepare("SELECT link_id, day, clicks, bot_hits FROM click_rollup ORDER BY 1, 2")
                .expect("prepare");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn click(link_id: i64, at_ms: i64, bot: bool) -> ClickEvent {
    ClickEvent {
        click_id: None,
        link_id,
        at_ms,
        bot,
        referrer_host: None,
        ua_class: if bot { UaClass::Bot } else { UaClass::Desktop },
        country: None,
        target: 0,
    }
}

fn ms(day: i64, hours: i64) -> i64 {
    day * MS_PER_DAY + hours * HOUR
}

/// `(group, clicks, bot_hits, conversions, items, revenue, commission,
/// conversion_rate, earnings_per_click)`, money as shown.
type Expected<'a> = (&'a str, u64, u64, u64, i64, &'a str, &'a str, f64, &'a str);

fn assert_row(row: &ReportRow, e: Expected<'_>) {
    let got = (
        row.group.as_str(),
        row.sums.clicks,
        row.sums.bot_hits,
        row.sums.conversions,
        row.sums.items,
        row.sums.revenue.to_string(),
        row.sums.commission.to_string(),
        row.conversion_rate,
        row.sums.earnings_per_click.to_string(),
    );
    let want = (
        e.0,
        e.1,
        e.2,
        e.3,
        e.4,
        e.5.to_owned(),
        e.6.to_owned(),
        e.7,
        e.8.to_owned(),
    );
    assert_eq!(got, want, "row {}", row.group);
}

fn assert_rows(report: &Report, rows: &[Expected<'_>], total: Expected<'_>) {
    let groups: Vec<&str> = report.rows.iter().map(|r| r.group.as_str()).collect();
    let want: Vec<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(groups, want, "{}", report.group_by);
    for (row, e) in report.rows.iter().zip(rows) {
        assert_row(row, *e);
    }
    assert_row(&report.totals, total);
}

#[test]
fn clicks_written_in_batches_update_the_rollup_across_midnight() {
    let f = Fixture::new("rollup");
    let a = f.link("a", "amazon", Some("amazon.com"), None, None);
    let b = f.link("b", "amazon", Some("amazon.com"), None, None);
    // Batch 1: day D at 10:00.
    f.clicks(a, ms(D, 10), 3, 1);
    // Batch 2, same day: adds to the same rollup row.
    f.clicks(a, ms(D, 12), 2, 0);
    // Batch 3 spans midnight UTC: the last millisecond of D and the
    // first of D + 1, for two links.
    f.store
        .insert_clicks(&[
            click(a, ms(D + 1, 0) - 1, false),
            click(a, ms(D + 1, 0), false),
            click(a, ms(D + 1, 0), true),
            click(b, ms(D + 1, 0) - 1, true),
            click(b, ms(D + 1, 23), false),
        ])
        .expect("insert");
    assert_eq!(
        f.rollup(),
        vec![
            (a, D, 6, 1),
            (a, D + 1, 1, 1),
            (b, D, 0, 1),
            (b, D + 1, 1, 0)
        ]
    );
    // The rollup says what the raw clicks say (the migration's backfill).
    let recomputed: Vec<(i64, i64, i64, i64)> = f.store.with_conn(|c| {
        let mut stmt = c
            .prepare(
                "SELECT link_id, at_ms / 86400000, sum(bot = 0), sum(bot = 1) FROM clicks \
                 GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    });
    assert_eq!(f.rollup(), recomputed);
    // Link stats read the rollup.
    let stats = f.store.link_stats(a).expect("stats");
    assert_eq!((stats.total.clicks, stats.total.bot_hits), (7, 2));
    let days: Vec<(&str, u64, u64)> = stats
        .by_day
        .iter()
        .map(|d| (d.day.as_str(), d.total.clicks, d.total.bot_hits))
        .collect();
    assert_eq!(days, vec![("2024-10-04", 6, 1), ("2024-10-05", 1, 1)]);
}

/// Three links, clicks inside and outside the range D..=D+1, and
/// conversions: counted, declined, deleted, out of range, unattributed.
fn shop(name: &str) -> (Fixture, i64, i64, i64) {
    let f = Fixture::new(name);
    let a = f.link(
        "a",
        "amazon",
        Some("amazon.com"),
        Some("spring"),
        Some("Echo video"),
    );
    let b = f.link("b", "amazon", Some("amazon.co.uk"), Some("spring"), None);
    let c = f.link("c", "awin", None, None, Some("Widget post"));
    f.clicks(a, ms(D, 9), 10, 2);
    f.clicks(a, ms(D + 1, 9), 5, 0);
    f.clicks(b, ms(D, 20), 4, 0);
    f.clicks(c, ms(D + 1, 1), 1, 3);
    // Outside the range.
    f.clicks(a, ms(D - 1, 23), 7, 1);
    f.clicks(a, ms(D + 2, 0), 2, 0);

    #[rustfmt::skip]
    f.conversions(&[
        ("a1", Some(a), "amazon", (D, 10), (2, 1), (3000, 120), "approved", "USD"),
        ("a2", Some(a), "amazon", (D + 1, 23), (1, 0), (999, 40), "pending", "USD"),
        ("a3", Some(a), "amazon", (D, 11), (5, 0), (10000, 500), "declined", "USD"),
        // Outside the range.
        ("a4", Some(a), "amazon", (D - 1, 12), (1, 0), (5000, 200), "approved", "USD"),
        ("a5", Some(a), "amazon", (D + 2, 0), (1, 0), (100, 10), "approved", "USD"),
        ("b1", Some(b), "amazon", (D, 21), (3, 0), (1500, 75), "Approved", "GBP"),
        ("u1", None, "amazon", (D + 1, 2), (1, 0), (2000, 80), "pending", "USD"),
        ("u2", None, "awin", (D, 3), (1, 0), (1000, 100), "DELETED", "USD"),
    ]);
    (f, a, b, c)
}

const TOTAL_ROW: Expected<'static> = ("total", 20, 5, 4, 6, "74.99", "3.15", 0.2, "0.1575");

#[test]
fn report_by_link_matches_the_hand_worked_totals() {
    let (f, ..) = shop("by-link");
    let report = f.report(D, D + 1, GroupBy::Link);
    // a: 15 clicks, 2 bots; a1 (2 - 1 items) + a2 (1 item); 1.60 / 15.
    // b: 4 clicks; b1. c: 1 click, 3 bots, no conversions.
    assert_rows(
        &report,
        &[
            ("a", 15, 2, 2, 2, "39.99", "1.60", 0.133333, "0.106667"),
            ("b", 4, 0, 1, 3, "15.00", "0.75", 0.25, "0.1875"),
            ("c", 1, 3, 0, 0, "0.00", "0.00", 0.0, "0.00"),
            ("unattributed", 0, 0, 1, 1, "20.00", "0.80", 0.0, "0.00"),
        ],
        TOTAL_ROW,
    );
    let names: Vec<Option<&str>> = report.rows.iter().map(|r| r.name.as_deref()).collect();
    assert_eq!(
        names,
        vec![Some("Echo video"), None, Some("Widget post"), None]
    );
    assert_eq!(report.from, "2024-10-04");
    assert_eq!(report.to, "2024-10-05");
    assert_eq!(report.currencies, vec!["GBP", "USD"]);
}

#[test]
fn report_by_campaign_matches_the_hand_worked_totals() {
    let (f, ..) = shop("by-campaign");
    assert_rows(
        &f.report(D, D + 1, GroupBy::Campaign),
        &[
            ("(none)", 1, 3, 0, 0, "0.00", "0.00", 0.0, "0.00"),
            // a + b: 19 clicks; 3 conversions; 2.35 / 19.
            ("spring", 19, 2, 3, 5, "54.99", "2.35", 0.157895, "0.123684"),
            ("unattributed", 0, 0, 1, 1, "20.00", "0.80", 0.0, "0.00"),
        ],
        TOTAL_ROW,
    );
}

#[test]
fn report_by_provider_counts_conversions_under_the_reporting_provider() {
    let (f, ..) = shop("by-provider");
    assert_rows(
        &f.report(D, D + 1, GroupBy::Provider),
        &[
            // Clicks of a and b; conversions a1, a2, b1 and the
            // unattributed u1, all reported by amazon. 3.15 / 19.
            ("amazon", 19, 2, 4, 6, "74.99", "3.15", 0.210526, "0.165789"),
            ("awin", 1, 3, 0, 0, "0.00", "0.00", 0.0, "0.00"),
        ],
        TOTAL_ROW,
    );
}

/// Regression: a provider configured under its own name (`amz-us`,
/// plugin amazon) had its clicks under `amz-us` and the conversions its
/// clicks earned under `amazon`, the network's name: two rows.
#[test]
fn report_by_provider_has_one_row_per_configured_provider_whatever_its_name() {
    let f = Fixture::new("provider-name");
    let link = f.link("p", "amz-us", Some("amazon.com"), None, None);
    f.clicks(link, ms(D, 1), 4, 0);
    f.conversions(&[
        (
            "p1",
            Some(link),
            "amazon",
            (D, 2),
            (1, 0),
            (2000, 100),
            "approved",
            "USD",
        ),
        (
            "u1",
            None,
            "amazon",
            (D, 2),
            (1, 0),
            (1000, 50),
            "approved",
            "USD",
        ),
    ]);
    assert_rows(
        &f.report(D, D, GroupBy::Provider),
        &[
            ("amazon", 0, 0, 1, 1, "10.00", "0.50", 0.0, "0.00"),
            ("amz-us", 4, 0, 1, 1, "20.00", "1.00", 0.25, "0.25"),
        ],
        ("total", 4, 0, 2, 2, "30.00", "1.50", 0.5, "0.375"),
    );
}

#[test]
fn report_by_marketplace_matches_the_hand_worked_totals() {
    let (f, ..) = shop("by-marketplace");
    assert_rows(
        &f.report(D, D + 1, GroupBy::Marketplace),
        &[
            ("(none)", 1, 3, 0, 0, "0.00", "0.00", 0.0, "0.00"),
            ("amazon.co.uk", 4, 0, 1, 3, "15.00", "0.75", 0.25, "0.1875"),
            (
                "amazon.com",
                15,
                2,
                2,
                2,
                "39.99",
                "1.60",
                0.133333,
                "0.106667",
            ),
            ("unattributed", 0, 0, 1, 1, "20.00", "0.80", 0.0, "0.00"),
        ],
        TOTAL_ROW,
    );
}

#[test]
fn report_by_day_lists_every_day_oldest_first() {
    let (f, ..) = shop("by-day");
    assert_rows(
        &f.report(D, D + 1, GroupBy::Day),
        &[
            // a 10 + b 4 clicks; a1 (1 item, 30.00) + b1 (3, 15.00).
            (
                "2024-10-04",
                14,
                2,
                2,
                4,
                "45.00",
                "1.95",
                0.142857,
                "0.139286",
            ),
            // a 5 + c 1 clicks; a2 (9.99) + the unattributed u1 (20.00).
            ("2024-10-05", 6, 3, 2, 2, "29.99", "1.20", 0.333333, "0.20"),
        ],
        TOTAL_ROW,
    );
    // A wider range lists the quiet days too, with zeros.
    let wide = f.report(D - 2, D + 3, GroupBy::Day);
    let days: Vec<(&str, u64, u64)> = wide
        .rows
        .iter()
        .map(|r| (r.group.as_str(), r.sums.clicks, r.sums.conversions))
        .collect();
    assert_eq!(
        days,
        vec![
            ("2024-10-02", 0, 0),
            ("2024-10-03", 7, 1),
            ("2024-10-04", 14, 2),
            ("2024-10-05", 6, 2),
            ("2024-10-06", 2, 1),
            ("2024-10-07", 0, 0),
        ]
    );
}

#[test]
fn unattributed_conversions_have_their_own_group_and_count_in_the_totals() {
    let f = Fixture::new("unattributed");
    let a = f.link("a", "amazon", Some("amazon.com"), Some("spring"), None);
    f.clicks(a, ms(D, 1), 2, 0);
    f.conversions(&[(
        "u",
        None,
        "awin",
        (D, 2),
        (2, 0),
        (800, 50),
        "pending",
        "EUR",
    )]);
    for g in [GroupBy::Link, GroupBy::Campaign, GroupBy::Marketplace] {
        let report = f.report(D, D, g);
        let last = report.rows.last().expect("rows");
        assert_row(
            last,
            ("unattributed", 0, 0, 1, 2, "8.00", "0.50", 0.0, "0.00"),
        );
        assert_row(
            &report.totals,
            ("total", 2, 0, 1, 2, "8.00", "0.50", 0.5, "0.25"),
        );
    }
    let by_provider = f.report(D, D, GroupBy::Provider);
    let groups: Vec<&str> = by_provider.rows.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(groups, vec!["amazon", "awin"]);
    assert_eq!(by_provider.rows[1].sums.conversions, 1);
}

#[test]
fn an_amazon_sale_in_both_orders_and_earnings_reports_counts_once() {
    let f = Fixture::new("orders-vs-earnings");
    let a = f.link("a", "amazon", Some("amazon.com"), None, None);
    f.clicks(a, ms(D, 1), 4, 0);
    // The same sale, as the Orders report (at purchase) and the Earnings
    // report (at shipment) record it: only the Earnings row counts.
    for (kind, row_key, status) in [("orders", "o1", "pending"), ("earnings", "e1", "approved")] {
        f.store.with_conn(|c| {
            c.execute(
                "INSERT INTO conversions (provider, kind, row_key, link_id, event_ms, \
                 quantity, returns, revenue_micros, commission_micros, status, currency, \
                 imported_ms, updated_ms) \
                 VALUES ('amazon', ?1, ?2, ?3, ?4, 1, 0, ?5, ?6, ?7, 'USD', 0, 0)",
                params![kind, row_key, a, ms(D, 2), 2000 * CENT, 100 * CENT, status],
            )
            .expect("insert conversion")
        });
    }
    let report = f.report(D, D, GroupBy::Link);
    assert_row(
        &report.totals,
        ("total", 4, 0, 1, 1, "20.00", "1.00", 0.25, "0.25"),
    );
}

#[test]
fn declined_and_deleted_conversions_are_not_counted() {
    let f = Fixture::new("declined");
    let a = f.link("a", "amazon", Some("amazon.com"), None, None);
    f.clicks(a, ms(D, 1), 4, 0);
    #[rustfmt::skip]
    f.conversions(&[
        ("1", Some(a), "amazon", (D, 2), (1, 0), (500, 25), "declined", "USD"),
        ("2", Some(a), "amazon", (D, 2), (1, 0), (500, 25), "Declined", "USD"),
        ("3", Some(a), "amazon", (D, 2), (1, 0), (500, 25), "deleted", "USD"),
        ("4", Some(a), "amazon", (D, 3), (1, 0), (400, 20), "approved", "USD"),
    ]);
    let report = f.report(D, D, GroupBy::Link);
    assert_rows(
        &report,
        &[("a", 4, 0, 1, 1, "4.00", "0.20", 0.25, "0.05")],
        ("total", 4, 0, 1, 1, "4.00", "0.20", 0.25, "0.05"),
    );
    let stats = f.store.link_stats(a).expect("stats");
    assert_eq!(
        (
            stats.total.conversions,
            stats.total.commission,
            stats.total.earnings_per_click
        ),
        (1, Micros(200_000), Micros(50_000))
    );
}

#[test]
fn an_empty_range_has_no_rows_and_zero_totals() {
    let (f, ..) = shop("empty");
    let zero: Expected<'static> = ("total", 0, 0, 0, 0, "0.00", "0.00", 0.0, "0.00");
    for g in [
        GroupBy::Link,
        GroupBy::Campaign,
        GroupBy::Provider,
        GroupBy::Marketplace,
    ] {
        let report = f.report(D + 10, D + 12, g);
        assert!(report.rows.is_empty(), "{g}: {:?}", report.rows);
        assert_row(&report.totals, zero);
        assert!(report.currencies.is_empty());
    }
    let by_day = f.report(D + 10, D + 12, GroupBy::Day);
    assert_eq!(by_day.rows.len(), 3);
    assert!(
        by_day
            .rows
            .iter()
            .all(|r| r.sums.clicks == 0 && r.sums.conversions == 0)
    );
    assert_row(&by_day.totals, zero);
}

#[test]
fn link_stats_carry_conversions_and_earnings_per_day() {
    let (f, a, _, c) = shop("stats");
    let stats = f.store.link_stats(a).expect("stats");
    // Every day of a's life: D-1 .. D+2 (a3 declined).
    assert_eq!((stats.total.clicks, stats.total.bot_hits), (24, 3));
    assert_eq!((stats.total.conversions, stats.total.items), (4, 4));
    assert_eq!(stats.total.revenue.to_string(), "90.99");
    assert_eq!(stats.total.commission.to_string(), "3.70");
    assert_eq!(stats.total.earnings_per_click.to_string(), "0.154167");
    let days: Vec<(&str, u64, u64, String)> = stats
        .by_day
        .iter()
        .map(|d| {
            (
                d.day.as_str(),
                d.total.clicks,
                d.total.conversions,
                d.total.commission.to_string(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2024-10-03", 7, 1, "2.00".to_owned()),
            ("2024-10-04", 10, 1, "1.20".to_owned()),
            ("2024-10-05", 5, 1, "0.40".to_owned()),
            ("2024-10-06", 2, 1, "0.10".to_owned()),
        ]
    );
    assert_eq!(stats.by_day[1].total.earnings_per_click, Micros(120_000));
    let quiet = f.store.link_stats(c).expect("stats");
    assert_eq!(
        (quiet.total.conversions, quiet.total.earnings_per_click),
        (0, Micros::ZERO)
    );
}

#[test]
fn csv_and_table_carry_the_rows_and_the_total() {
    let (f, ..) = shop("render");
    let report = f.report(D, D + 1, GroupBy::Link);
    let csv = report.render(Format::Csv).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        vec![
            "group,clicks,bot_hits,conversions,items,revenue,commission,conversion_rate,earnings_per_click",
            "a,15,2,2,2,39.99,1.60,0.133333,0.106667",
            "b,4,0,1,3,15.00,0.75,0.25,0.1875",
            "c,1,3,0,0,0.00,0.00,0,0.00",
            "unattributed,0,0,1,1,20.00,0.80,0,0.00",
            "total,20,5,4,6,74.99,3.15,0.2,0.1575",
        ]
    );
    let table = report.render(Format::Table).expect("table");
    let lines: Vec<&str> = table.lines().collect();
    let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(words(0)[..3], ["link", "name", "clicks"], "{table}");
    assert_eq!(
        words(1),
        [
            "a", "Echo", "video", "15", "2", "2", "2", "39.99", "1.60", "0.133333", "0.106667"
        ],
        "{table}"
    );
    assert_eq!(words(2)[..2], ["b", "4"], "{table}");
    assert_eq!(
        words(6),
        [
            "total", "20", "5", "4", "6", "74.99", "3.15", "0.2", "0.1575"
        ],
        "{table}"
    );
    // Numbers align right: every line is as wide as the header.
    assert_eq!(lines[1].len(), lines[0].len(), "{table}");
    assert!(table.contains("amounts in GBP, USD"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&report.render(Format::Json).expect("json")).expect("parse");
    assert_eq!(json["group_by"], "link");
    assert_eq!(json["rows"][0]["revenue"], "39.99");
    assert_eq!(json["rows"][0]["conversion_rate"], 0.133333);
    assert_eq!(json["totals"]["earnings_per_click"], "0.1575");
}

#[test]
fn report_queries_are_validated_with_the_field_at_fault() {
    let ok = ReportQuery::parse(Some("2024-10-04"), Some("2024-10-05"), None).expect("ok");
    assert_eq!(
        (ok.from_day, ok.to_day, ok.group_by),
        (D, D + 1, GroupBy::Link)
    );
    let year = ReportQuery::parse(Some("2024-01-01"), Some("2024-12-31"), Some("day"));
    assert_eq!(
        year.map(|q| q.group_by),
        Ok(GroupBy::Day),
        "366 days is the limit"
    );
    for (from, to, group_by, field) in [
        (None, Some("2024-10-05"), None, "from"),
        (Some("2024-10-04"), None, None, "to"),
        (Some("2024-10-4"), Some("2024-10-05"), None, "from"),
        (Some("2024-02-30"), Some("2024-10-05"), None, "from"),
        (Some("2023-02-29"), Some("2024-10-05"), None, "from"),
        (Some("1969-12-31"), Some("2024-10-05"), None, "from"),
        (Some("2024-10-04"), Some("2024/10/05"), None, "to"),
        (Some("2024-10-04"), Some("2024-13-01"), None, "to"),
        (Some("2024-10-05"), Some("2024-10-04"), None, "to"),
        (Some("2024-01-01"), Some("2025-01-01"), None, "to"),
        (
            Some("2024-10-04"),
            Some("2024-10-05"),
            Some("week"),
            "group_by",
        ),
        (
            Some("2024-10-04"),
            Some("2024-10-05"),
            Some("Link"),
            "group_by",
        ),
    ] {
        let e = ReportQuery::parse(from, to, group_by).expect_err("invalid");
        assert_eq!(e.field, field, "{from:?} {to:?} {group_by:?}: {e}");
    }
    assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
    assert_eq!("xml".parse::<Format>().map_err(|e| e.field), Err("format"));
}

#[test]
fn days_convert_both_ways() {
    for (s, day) in [
        ("1970-01-01", 0),
        ("2000-03-01", 11_017),
        ("2024-02-29", 19_782),
        ("2024-10-04", D),
        ("9999-12-31", LAST_DAY),
    ] {
        assert_eq!(parse_day(s), Some(day), "{s}");
        assert_eq!(day_string(day), s);
    }
    for day in (0..LAST_DAY).step_by(997) {
        assert_eq!(parse_day(&day_string(day)), Some(day));
    }
}
