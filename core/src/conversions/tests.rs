//! Parsing (table-driven, no database) and storing (a scratch store).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::backend::SqliteStore;

fn settings(format: Format) -> FormatSettings {
    FormatSettings::defaults(format)
}

fn parse_ok(format: Format, text: &str) -> Report {
    match parse(format, &settings(format), text.as_bytes()) {
        Ok(r) => r,
        Err(e) => panic!("{format}: {e}"),
    }
}

fn malformed(format: Format, bytes: &[u8]) -> (u64, String) {
    match parse(format, &settings(format), bytes) {
        Err(ImportError::Malformed { line, message }) => (line, message),
        Err(e) => panic!("{e}"),
        Ok(r) => panic!("accepted: {r:?}"),
    }
}

const EARNINGS: &str = "Fee-Earnings reports from 11-01-2026 to 11-30-2026\n\
Category\tName\tASIN\tSeller\tTracking ID\tDate Shipped\tPrice($)\tItems Shipped\tReturns\tRevenue($)\tAd Fees($)\tDevice Type Group\tSub Tag\n\
Electronics\tEcho Dot\tB09B8V1LZ3\tAmazon.com\tlw-20\t2026-11-03\t49.99\t2\t0\t99.98\t3.00\tDESKTOP\tCLICK1\n\
Books\tRust\t1718503105\tAmazon.com\tlw-20\t2026-11-04\t39.95\t1\t1\t39.95\t0.00\tPHONE\t\n";

const DAY: i64 = 86_400_000;
const NOV_3: i64 = 20_760 * DAY;

#[test]
fn earnings_rows_become_approved_or_returned_conversions() {
    let r = parse_ok(Format::AmazonEarnings, EARNINGS);
    assert!(r.rejections.is_empty(), "{:?}", r.rejections);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.rows.len(), 2);
    let (line, echo) = &r.rows[0];
    assert_eq!(*line, 3);
    assert_eq!(echo.provider, Provider::Amazon);
    assert_eq!(echo.kind, Kind::Earnings);
    assert_eq!(echo.event_ms, NOV_3);
    assert_eq!(echo.product_id.as_deref(), Some("B09B8V1LZ3"));
    assert_eq!(echo.product_name.as_deref(), Some("Echo Dot"));
    assert_eq!(echo.tracking_id.as_deref(), Some("lw-20"));
    assert_eq!(echo.sub_id.as_deref(), Some("CLICK1"));
    assert_eq!(
        (echo.quantity, echo.returns, echo.price_micros),
        (2, 0, 49_990_000)
    );
    assert_eq!(
        (echo.revenue_micros, echo.commission_micros),
        (99_980_000, 3_000_000)
    );
    assert_eq!(echo.status, Status::Approved);
    // `$` is ambiguous (US, CA, MX, AU): no currency unless configured.
    assert_eq!(echo.currency, None);
    let (_, book) = &r.rows[1];
    assert_eq!(book.sub_id, None);
    // One item shipped, one returned: returned.
    assert_eq!(book.status, Status::Returned);
}

#[test]
fn orders_are_pending_and_their_revenue_is_price_times_quantity() {
    let text = "Category,Name,ASIN,Date,Qty,Price(£),Link Type,Tag,Sub Tag\n\
                Kitchen,\"Knife, 8\"\"\",B0KNIFE001,2026-11-03 10:00:00,3,\"1,049.50\",Text,lw-21,S1\n";
    let r = parse_ok(Format::AmazonOrders, text);
    let (_, c) = &r.rows[0];
    assert_eq!(c.kind, Kind::Orders);
    assert_eq!(c.status, Status::Pending);
    assert_eq!(c.product_name.as_deref(), Some("Knife, 8\""));
    assert_eq!(c.event_ms, NOV_3 + 10 * 3_600_000);
    assert_eq!(c.price_micros, 1_049_500_000);
    assert_eq!(c.revenue_micros, 3_148_500_000);
    assert_eq!(c.commission_micros, 0);
    assert_eq!(c.currency.as_deref(), Some("GBP"));
}

#[test]
fn bounty_rows_count_one_each_and_identical_rows_stay_distinct() {
    let text = "Name,Date Shipped,Tracking Id,Quantity,Ad Fees($)\n\
                Audible Free Trial,2026-11-04,lw-20,,5.00\n\
                Audible Free Trial,2026-11-04,lw-20,,5.00\n\
                Prime Free Trial,2026-11-04,lw-20,1,3.00\n";
    let r = parse_ok(Format::AmazonBounty, text);
    assert_eq!(r.rows.len(), 3);
    let keys: Vec<&str> = r.rows.iter().map(|(_, c)| c.row_key.as_str()).collect();
    assert_ne!(keys[0], keys[1]);
    assert_eq!(keys[1], format!("{}-1", keys[0]));
    assert_ne!(keys[0], keys[2], "the name tells bounties apart");
    assert!(
        r.rows
            .iter()
            .all(|(_, c)| c.quantity == 1 && c.status == Status::Approved)
    );
    // The same file read again gives the same keys.
    let again = parse_ok(Format::AmazonBounty, text);
    let again: Vec<&str> = again.rows.iter().map(|(_, c)| c.row_key.as_str()).collect();
    assert_eq!(keys, again);
}

#[test]
fn row_keys_ignore_what_later_reports_change() {
    let later = EARNINGS
        .replace("2\t0\t99.98\t3.00", "2\t2\t0.00\t0.00")
        .replace("Echo Dot\t", "Echo Dot (5th Gen)\t");
    let a = parse_ok(Format::AmazonEarnings, EARNINGS);
    let b = parse_ok(Format::AmazonEarnings, &later);
    assert_eq!(a.rows[0].1.row_key, b.rows[0].1.row_key);
    assert_eq!(b.rows[0].1.status, Status::Returned);
    // A different sub-tag is a different row.
    let other = EARNINGS.replace("CLICK1", "CLICK2");
    let c = parse_ok(Format::AmazonEarnings, &other);
    assert_ne!(a.rows[0].1.row_key, c.rows[0].1.row_key);
}

#[test]
fn unusable_rows_are_rejected_with_line_and_reason() {
    let text = "Category,Name,ASIN,Date,Qty,Price($),Tag\n\
                A,ok,B000000001,2026-11-03,1,1.00,t-20\n\
                A,no date,B000000002,,1,1.00,t-20\n\
                A,bad date,B000000003,2026-02-30,1,1.00,t-20\n\
                A,bad price,B000000004,2026-11-03,1,1.0.0x,t-20\n\
                A,no asin,,2026-11-03,1,1.00,t-20\n\
                A,bad qty,B000000005,2026-11-03,1.5,1.00,t-20\n\
                ,,,,,,\n\
                A,ok too,B000000006,11/03/2026,1,1.00,t-20\n";
    let r = parse_ok(Format::AmazonOrders, text);
    let lines: Vec<u64> = r.rows.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![2, 9]);
    let got: Vec<(u64, &str)> = r
        .rejections
        .iter()
        .map(|x| (x.line, x.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "missing date (column `Date`)"),
            (
                4,
                "column `Date`: `2026-02-30`: there is no day 30 in month 2 of 2026"
            ),
            (
                5,
                "column `Price($)`: `1.0.0x` is not an amount: misplaced thousands separator"
            ),
            (6, "missing ASIN (column `ASIN`)"),
            (7, "column `Qty`: `1.5` is not a whole number"),
        ]
    );
    assert_eq!(r.warnings.len(), 1, "no sub-tag column: {:?}", r.warnings);
    assert!(r.warnings[0].contains("sub_id"), "{:?}", r.warnings);
}

#[test]
fn malformed_files_fail_with_the_line_of_the_first_problem() {
    let cases: &[(Format, &[u8], u64, &str)] = &[
        (Format::AmazonEarnings, b"", 1, "the file is empty"),
        (
            Format::AmazonEarnings,
            b"Name,Date\nx,2026-11-03\n",
            1,
            "no header line found",
        ),
        (
            Format::AmazonOrders,
            b"ASIN,Date,Qty,Price\nB000000001,2026-11-03,1,1.00\nB000000002,2026-11-03,1,\xff\n",
            3,
            "not UTF-8",
        ),
        (
            Format::AmazonOrders,
            b"ASIN,Date,Qty,Price\nB000000001,,1,1.00\nB000000002,,1,1.00\n",
            2,
            "no row of the file can be used; the first problem: missing date",
        ),
        (Format::AwinJson, b"{\"id\": 1}", 1, "expected a JSON array"),
        (
            Format::AwinJson,
            b"[\n {\"id\": 1,\n  \"transactionDate\": \"2026-11-03T10:00:00\",\n  \"commissionStatus\": \"pending\"},\n {\"id\": 2,\n  \"oops\n",
            6,
            "malformed JSON",
        ),
        (Format::AwinJson, b"[\n {\"id\": 1} {}]", 2, "expected `,` or `]`"),
        (Format::AwinJson, b"[] []", 1, "text after the array"),
    ];
    for (format, bytes, line, message) in cases {
        let (got_line, got) = malformed(*format, bytes);
        assert_eq!(got_line, *line, "{format} {got}");
        assert!(got.contains(message), "{format}: {got}");
    }
}

#[test]
fn utf16_reports_with_a_byte_order_mark_are_read() {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in EARNINGS.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    let r = parse(
        Format::AmazonEarnings,
        &settings(Format::AmazonEarnings),
        &bytes,
    )
    .unwrap();
    assert_eq!(r.rows.len(), 2);
}

#[test]
fn configured_columns_currency_and_date_order_apply() {
    let mut s = settings(Format::AmazonEarnings);
    for (field, headers) in &mut s.columns {
        if *field == "sub_id" {
            *headers = vec!["Tracking Sub".to_owned()];
        }
    }
    s.currency = Some("EUR".to_owned());
    s.date_order = dates::DateOrder::DayFirst;
    let text = "ASIN,Date Shipped,Items Shipped,Ad Fees,Tracking Sub\nB000000001,03/11/2026,1,\"0,45\",XYZ\n";
    let r = parse(Format::AmazonEarnings, &s, text.as_bytes()).unwrap();
    let (_, c) = &r.rows[0];
    assert_eq!(c.sub_id.as_deref(), Some("XYZ"));
    assert_eq!(c.currency.as_deref(), Some("EUR"));
    assert_eq!(c.event_ms, NOV_3);
    assert_eq!(c.commission_micros, 450_000);
}

const AWIN_CSV: &str = "Transaction ID,Advertiser ID,Advertiser Name,Click Ref,Transaction Date,Commission Status,Sale Amount,Commission Amount,Currency,Paid to Publisher\n\
1,1001,Shop,R1,03/11/2026 09:30:00,pending,£120.00,£6.00,GBP,No\n\
2,1001,Shop,R2,03/11/2026,approved,45.50,2.28,gbp,Yes\n\
3,1001,Shop,,03/11/2026,deleted,80.00,4.00,GBP,No\n\
2,1001,Shop,R2,03/11/2026,approved,45.50,2.28,GBP,Yes\n\
4,1001,Shop,R4,03/11/2026,on hold,1,1,GBP,No\n";

#[test]
fn awin_csv_statuses_paid_and_duplicates() {
    let r = parse_ok(Format::AwinCsv, AWIN_CSV);
    let got: Vec<(&str, Status, i64, Option<&str>)> = r
        .rows
        .iter()
        .map(|(_, c)| {
            (
                c.row_key.as_str(),
                c.status,
                c.commission_micros,
                c.sub_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("1", Status::Pending, 6_000_000, Some("R1")),
            ("2", Status::Paid, 2_280_000, Some("R2")),
            ("3", Status::Declined, 4_000_000, None),
        ]
    );
    let (_, first) = &r.rows[0];
    assert_eq!(first.event_ms, NOV_3 + 9 * 3_600_000 + 30 * 60_000);
    assert_eq!(first.tracking_id.as_deref(), Some("1001"));
    assert_eq!(first.product_name.as_deref(), Some("Shop"));
    assert_eq!(r.rows[1].1.currency.as_deref(), Some("GBP"));
    let got: Vec<(u64, &str)> = r
        .rejections
        .iter()
        .map(|x| (x.line, x.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, "duplicate transaction id `2` (first on line 3)"),
            (
                6,
                "unknown commission status `on hold` (expected pending, approved, declined or deleted)"
            ),
        ]
    );
}

#[test]
fn awin_json_reads_numbers_exactly_and_rejects_by_starting_line() {
    let text = r#"[
  {"id": 11, "advertiserId": 1001, "commissionStatus": "approved",
   "transactionDate": "2026-11-03T09:30:00",
   "saleAmount": {"amount": 0.1, "currency": "gbp"},
   "commissionAmount": {"amount": 1234567.89, "currency": "GBP"},
   "clickRefs": {"clickRef": "R11", "clickRef2": "x"}, "paidToPublisher": true},
  {"id": "12", "commissionStatus": "declined", "transactionDate": "2026-11-03T00:00:00",
   "saleAmount": {"amount": "12.30", "currency": "EUR"}, "clickRefs": null},
  {"id": 13, "commissionStatus": "approved"},
  "not an object",
  {"id": 11, "commissionStatus": "approved", "transactionDate": "2026-11-03T00:00:00"},
  {"id": 14, "commissionStatus": "pending", "transactionDate": "2026-11-03T00:00:00",
   "commissionAmount": {"amount": true}}
]"#;
    let r = parse_ok(Format::AwinJson, text);
    assert_eq!(r.rows.len(), 2);
    let (line, a) = &r.rows[0];
    assert_eq!(*line, 2);
    assert_eq!(a.status, Status::Paid);
    assert_eq!(
        (a.price_micros, a.commission_micros),
        (100_000, 1_234_567_890_000)
    );
    assert_eq!(a.sub_id.as_deref(), Some("R11"));
    assert_eq!(a.tracking_id.as_deref(), Some("1001"));
    assert_eq!(a.currency.as_deref(), Some("GBP"));
    assert_eq!(a.event_ms, NOV_3 + 9 * 3_600_000 + 30 * 60_000);
    let (line, b) = &r.rows[1];
    assert_eq!(*line, 7);
    assert_eq!((b.row_key.as_str(), b.status), ("12", Status::Declined));
    assert_eq!((b.revenue_micros, b.sub_id.as_deref()), (12_300_000, None));
    assert_eq!(b.currency.as_deref(), Some("EUR"));
    let got: Vec<(u64, &str)> = r
        .rejections
        .iter()
        .map(|x| (x.line, x.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (9, "transaction 13: missing transactionDate"),
            (10, "not a transaction (a JSON object)"),
            (11, "duplicate transaction id `11` (first on line 2)"),
            (12, "transaction 14: commissionAmount: not a number"),
        ]
    );
    assert_eq!(parse_ok(Format::AwinJson, " [ ] ").rows.len(), 0);
}

// ---- storing ----

/// sub_id, link_id, tracking_id, returns, status.
type StoredRow = (Option<String>, Option<i64>, Option<String>, i64, String);

struct Fixture {
    dir: std::path::PathBuf,
    store: SqliteStore,
    config: ConversionsConfig,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = crate::testing::scratch(name);
        let store = SqliteStore::open(&dir).unwrap();
        Fixture {
            dir,
            store,
            config: ConversionsConfig::default(),
        }
    }

    /// A link with clicks carrying these click IDs; its row id.
    fn link_with_clicks(&self, code: &str, click_ids: &[&str]) -> i64 {
        self.store.with_conn(|c| {
            c.execute(
                "INSERT INTO links (code, provider, input, destination, template_prefix, \
                 template_suffix, subid_max_len, subid_encoding, created_ms) \
                 VALUES (?1, 'amazon', 'x', 'x', 'x', '', 0, 'alphanumeric', 0)",
                [code],
            )
            .unwrap();
            let id = c.last_insert_rowid();
            for click in click_ids {
                c.execute(
                    "INSERT INTO clicks_by_id (click_id, link_id, at_ms, bot, ua) \
                     VALUES (?1, ?2, 0, 0, 3)",
                    rusqlite::params![click, id],
                )
                .unwrap();
            }
            id
        })
    }

    fn import(&self, format: Format, text: &str) -> ImportSummary {
        import(&self.store, &self.config, format, text.as_bytes()).unwrap()
    }

    /// (row_key-less) stored rows: sub_id, link_id, tracking_id, returns, status.
    fn rows(&self) -> Vec<StoredRow> {
        self.store.with_conn(|c| {
            let mut s = c
                .prepare("SELECT sub_id, link_id, tracking_id, returns, status FROM conversions ORDER BY id")
                .unwrap();
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn counts(s: &ImportSummary) -> [u64; 6] {
    [
        s.rows,
        s.inserted,
        s.updated,
        s.unchanged,
        s.unattributed,
        s.rejected,
    ]
}

#[test]
fn import_attributes_by_click_id_keeps_the_rest_and_is_idempotent() {
    let f = Fixture::new("idempotent");
    let link = f.link_with_clicks("a", &["CLICK1"]);
    let first = f.import(Format::AmazonEarnings, EARNINGS);
    // rows, inserted, updated, unchanged, unattributed, rejected
    assert_eq!(counts(&first), [2, 2, 0, 0, 1, 0]);
    assert_eq!(first.format, "amazon-earnings");
    assert_eq!(
        f.rows(),
        vec![
            (
                Some("CLICK1".into()),
                Some(link),
                Some("lw-20".into()),
                0,
                "approved".into()
            ),
            (None, None, Some("lw-20".into()), 1, "returned".into()),
        ]
    );
    let again = f.import(Format::AmazonEarnings, EARNINGS);
    assert_eq!(counts(&again), [2, 0, 0, 2, 1, 0]);
}

#[test]
fn a_later_report_with_returns_updates_the_row() {
    let f = Fixture::new("returns");
    f.import(Format::AmazonEarnings, EARNINGS);
    let later = EARNINGS.replace("2\t0\t99.98\t3.00", "2\t2\t99.98\t3.00");
    let s = f.import(Format::AmazonEarnings, &later);
    assert_eq!(counts(&s), [2, 0, 1, 1, 2, 0]);
    assert_eq!(f.rows()[0].3, 2);
    assert_eq!(f.rows()[0].4, "returned");
}

#[test]
fn a_click_known_later_attributes_on_reimport_and_attribution_is_kept() {
    let f = Fixture::new("later-click");
    let s = f.import(Format::AmazonEarnings, EARNINGS);
    assert_eq!(s.unattributed, 2);
    let link = f.link_with_clicks("a", &["CLICK1"]);
    let s = f.import(Format::AmazonEarnings, EARNINGS);
    assert_eq!(counts(&s), [2, 0, 1, 1, 1, 0]);
    assert_eq!(f.rows()[0].1, Some(link));
    // The click is gone (pruned): the attribution stays.
    f.store
        .with_conn(|c| c.execute("DELETE FROM clicks_by_id", []).unwrap());
    let s = f.import(Format::AmazonEarnings, EARNINGS);
    assert_eq!(counts(&s), [2, 0, 0, 2, 1, 0]);
    assert_eq!(f.rows()[0].1, Some(link));
}

#[test]
fn a_malformed_file_stores_nothing() {
    let f = Fixture::new("malformed");
    // Good rows first (lines 3-5), then a line that is not UTF-8 (line 6).
    let mut bytes =
        format!("{EARNINGS}Toys\tX\tB0\tA\tt\t2026-11-05\t1\t1\t0\t1\t1\tD\tS\n").into_bytes();
    bytes.extend_from_slice(b"Toys\t\xc3\x28\n");
    let err = import(&f.store, &f.config, Format::AmazonEarnings, &bytes).unwrap_err();
    assert_eq!(err.line(), Some(6));
    assert!(f.rows().is_empty());
}

#[test]
fn awin_transactions_update_by_id_when_their_status_changes() {
    let f = Fixture::new("awin");
    let link = f.link_with_clicks("w", &["R1"]);
    let s = f.import(Format::AwinCsv, AWIN_CSV);
    // 5 rows: 3 stored (R2 and the declined one unattributed), 2 rejected.
    assert_eq!(counts(&s), [5, 3, 0, 0, 2, 2]);
    let approved = AWIN_CSV.replacen("pending,£120.00", "approved,£120.00", 1);
    let s = f.import(Format::AwinCsv, &approved);
    assert_eq!(counts(&s), [5, 0, 1, 2, 2, 2]);
    let rows = f.rows();
    assert_eq!(
        rows[0],
        (
            Some("R1".into()),
            Some(link),
            Some("1001".into()),
            0,
            "approved".into()
        )
    );
    // The JSON of the same transaction updates the same row (same provider,
    // kind and id), whichever way it arrived.
    let json = r#"[{"id": 1, "advertiserId": 1001, "commissionStatus": "declined",
        "transactionDate": "2026-11-03T09:30:00", "clickRefs": {"clickRef": "R1"},
        "saleAmount": {"amount": 120, "currency": "GBP"},
        "commissionAmount": {"amount": 6, "currency": "GBP"}}]"#;
    let s = f.import(Format::AwinJson, json);
    assert_eq!(counts(&s), [1, 0, 1, 0, 0, 0]);
    assert_eq!(f.rows()[0].4, "declined");
    assert_eq!(f.rows().len(), 3);
}

#[test]
fn lookups_use_their_indexes() {
    // A scan of the click log per report row would not survive millions of
    // clicks: the sub-ID lookup must use the click ID key, the row lookup
    // the (provider, kind, row_key) one.
    let f = Fixture::new("plan");
    let plan = |sql: &str| -> String {
        f.store.with_conn(|c| {
            let mut s = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let args =
                rusqlite::params_from_iter(std::iter::repeat_n("x", sql.matches('?').count()));
            s.query_map(args, |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
                .join("; ")
        })
    };
    let clicks = plan(crate::backend::sqlite_conversions::CLICK_SQL);
    // Through the `clicks` view: a primary key search of `clicks_by_id`.
    assert!(
        clicks.contains("SEARCH clicks_by_id USING PRIMARY KEY (click_id=?)"),
        "{clicks}"
    );
    // The view's other half (`clicks_without_id`, whose click ID is NULL)
    // shows in the plan as a scan, but a non-NULL ID skips it: with bot hits
    // stored, the lookup takes no full-scan step.
    let link = f.link_with_clicks("a", &["CLICK1"]);
    f.store.with_conn(|c| {
        for at_ms in 0..100 {
            c.execute(
                "INSERT INTO clicks_without_id (link_id, at_ms, bot, ua) \
                 VALUES (?1, ?2, 1, 0)",
                rusqlite::params![link, at_ms],
            )
            .unwrap();
        }
        let mut s = c
            .prepare(crate::backend::sqlite_conversions::CLICK_SQL)
            .unwrap();
        let found: i64 = s.query_row(["CLICK1"], |r| r.get(0)).unwrap();
        assert_eq!(found, link);
        assert_eq!(s.get_status(rusqlite::StatementStatus::FullscanStep), 0);
    });
    let rows = plan(crate::backend::sqlite_conversions::EXISTING_SQL);
    assert!(
        rows.contains("USING INDEX sqlite_autoindex_conversions_1"),
        "{rows}"
    );
}

/// Regression (found by the conv_amazon_* and conv_awin_csv fuzz targets):
/// a bare CR ended a record for the CSV reader but not a line for the line
/// numbers, so one line could hold a row accepted and a row rejected.
#[test]
fn bare_carriage_returns_end_lines() {
    let text = EARNINGS.replace('\n', "\r");
    let text = text.replacen("\t2\t0\t99.98", "\tabc\t0\t99.98", 1);
    let report = parse_ok(Format::AmazonEarnings, &text);
    let lines: Vec<u64> = report.rows.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [4]);
    assert_eq!(report.rejections.len(), 1);
    assert_eq!(report.rejections[0].line, 3);
}

/// Regression (found by the conv_amazon_bounty fuzz target): a negative
/// item count was imported, making the row's revenue negative.
#[test]
fn negative_item_count_is_rejected_with_its_line() {
    let text = EARNINGS.replacen("\t2\t0\t99.98", "\t-2\t0\t99.98", 1);
    let report = parse_ok(Format::AmazonEarnings, &text);
    assert_eq!(report.rows.len(), 1);
    assert_eq!(report.rejections.len(), 1);
    assert_eq!(report.rejections[0].line, 3);
    assert!(
        report.rejections[0].reason.contains("`-2` is negative"),
        "{}",
        report.rejections[0].reason
    );
}

#[test]
fn a_report_cell_past_its_limit_makes_the_file_malformed_at_its_line() {
    let long = "x".repeat(MAX_CELL_BYTES + 1);
    let text = EARNINGS.replacen("\tRust\t", &format!("\t{long}\t"), 1);
    let (line, message) = malformed(Format::AmazonEarnings, text.as_bytes());
    assert_eq!(line, 4);
    assert_eq!(
        message,
        format!(
            "column `Name` holds a cell of {} bytes; a cell holds at most {MAX_CELL_BYTES}",
            MAX_CELL_BYTES + 1
        )
    );
}

#[test]
fn a_report_of_more_rows_than_the_limit_is_refused_at_the_first_line_past_it() {
    // Rows of empty cells are read (and counted) but cost nothing else.
    let mut text = String::from("Date,Status,Commission Amount,Sale Amount,Transaction ID\n");
    let rows = usize::try_from(MAX_REPORT_ROWS).unwrap();
    text.push_str(&",,,,\n".repeat(rows + 1));
    let (line, message) = malformed(Format::AwinCsv, text.as_bytes());
    assert_eq!(line, MAX_REPORT_ROWS + 2);
    assert_eq!(
        message,
        format!("a report holds at most {MAX_REPORT_ROWS} rows; split the file")
    );
}
