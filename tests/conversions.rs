//! Conversion import against the real binary: the report fixtures under
//! `tests/fixtures/conversions/` (totals worked out by hand below), the API,
//! pulling from an Awin stand-in, and clicks joined to conversions end to end.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    BROWSER, TestServer, client, config_with, create_key, linkwright, repo_root, scratch,
    stand_in_with_body,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, LOCATION, USER_AGENT};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/conversions").join(name)
}

/// A config (the default one plus `extra`) and an empty data folder.
struct Setup {
    config: PathBuf,
    data: PathBuf,
}

impl Setup {
    fn new(name: &str, extra: &str) -> Setup {
        let dir = scratch(name);
        Setup {
            config: config_with(&dir, extra),
            data: dir.join("data"),
        }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend([
            "--config",
            self.config.to_str().unwrap(),
            "--data-dir",
            self.data.to_str().unwrap(),
        ]);
        all
    }

    /// `linkwright conversions import --json`: exit success and the answer.
    fn import(&self, format: &str, file: &Path) -> (bool, Value, String) {
        let out = linkwright(&self.args(&[
            "conversions",
            "import",
            "--json",
            "--format",
            format,
            file.to_str().unwrap(),
        ]));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.success(), value, stderr)
    }

    /// `linkwright conversions pull awin …` with a token in the environment.
    fn pull(&self, token: Option<&str>, from: &str, to: &str) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_linkwright"));
        cmd.args(self.args(&[
            "conversions",
            "pull",
            "awin",
            "--json",
            "--from",
            from,
            "--to",
            to,
        ]))
        .env_remove("LINKWRIGHT_LOG")
        .env_remove("AWIN_API_TOKEN");
        if let Some(t) = token {
            cmd.env("AWIN_API_TOKEN", t);
        }
        cmd.output().unwrap()
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data.join("linkwright.db")).unwrap()
    }

    fn number(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// The counts of an answer: rows, inserted, updated, unchanged,
/// unattributed, rejected.
fn counts(v: &Value) -> [u64; 6] {
    [
        "rows",
        "inserted",
        "updated",
        "unchanged",
        "unattributed",
        "rejected",
    ]
    .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}")))
}

#[test]
fn every_fixture_imports_with_totals_worked_out_by_hand() {
    let s = Setup::new("fixtures", "");

    // amazon-earnings.tsv: a title line, the header on line 2, data rows on
    // lines 3-8. Line 8 has no date: rejected. Lines 5 and 6 are identical
    // (two kettles sold the same day) and stay two rows. No click is known
    // in this store, so all 5 stored rows are unattributed.
    let (ok, v, err) = s.import("amazon-earnings", &fixture("amazon-earnings.tsv"));
    assert!(ok, "{err}");
    assert_eq!(counts(&v), [6, 5, 0, 0, 5, 1], "{v}");
    assert_eq!(
        v["rejections"],
        json!([{"line": 8, "reason": "missing date (column `Date Shipped`)"}])
    );
    assert_eq!(v["warnings"], json!([]));
    let earnings = "FROM conversions WHERE kind = 'earnings'";
    // Ad fees: 3.00 + 1.80 + 38.97 + 38.97 + 2.21 = 84.95
    assert_eq!(
        s.number(&format!("SELECT sum(commission_micros) {earnings}")),
        84_950_000
    );
    // Revenue: 99.98 + 39.95 + 1,299.00 + 1,299.00 + 73.50 = 2,811.43
    assert_eq!(
        s.number(&format!("SELECT sum(revenue_micros) {earnings}")),
        2_811_430_000
    );
    // Items shipped: 2 + 1 + 1 + 1 + 3 = 8, all approved.
    assert_eq!(s.number(&format!("SELECT sum(quantity) {earnings}")), 8);
    assert_eq!(
        s.number(&format!(
            "SELECT count(*) {earnings} AND status = 'approved'"
        )),
        5
    );
    // 11/06/2026 (month first, as Amazon US writes it) is 6 November:
    // 2026-11-06 is day 20,763 since 1970.
    assert_eq!(
        s.number(&format!(
            "SELECT event_ms {earnings} AND product_id = 'B0TOYS0001'"
        )),
        20_763 * 86_400_000
    );

    // amazon-orders.csv: no title line; data rows on lines 2-5, line 5's
    // price `abc` is rejected. Revenue is price × quantity:
    // 49.99 × 2 + 39.95 × 1 + 1,049.00 × 1 = 99.98 + 39.95 + 1,049.00 = 1,188.93.
    // Orders earn nothing yet (commission 0) and are pending.
    let (ok, v, err) = s.import("amazon-orders", &fixture("amazon-orders.csv"));
    assert!(ok, "{err}");
    assert_eq!(counts(&v), [4, 3, 0, 0, 3, 1], "{v}");
    assert_eq!(
        v["rejections"],
        json!([{"line": 5, "reason": "column `Price($)`: `abc` is not an amount: no digits"}])
    );
    let orders = "FROM conversions WHERE kind = 'orders'";
    assert_eq!(
        s.number(&format!("SELECT sum(revenue_micros) {orders}")),
        1_188_930_000
    );
    assert_eq!(
        s.number(&format!("SELECT sum(commission_micros) {orders}")),
        0
    );
    assert_eq!(
        s.number(&format!("SELECT count(*) {orders} AND status = 'pending'")),
        3
    );
    // The quoted name with a comma and an escaped quote survives.
    let name: String = s
        .db()
        .query_row(
            "SELECT product_name FROM conversions WHERE product_id = 'B0KNIFE001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, "Chef's Knife, 8\"");

    // amazon-bounty.csv: title line, header on line 2, 3 data rows, the two
    // Audible rows identical. Quantity 1 + (empty → 1) + (empty → 1) = 3;
    // ad fees 3.00 + 5.00 + 5.00 = 13.00.
    let (ok, v, err) = s.import("amazon-bounty", &fixture("amazon-bounty.csv"));
    assert!(ok, "{err}");
    assert_eq!(counts(&v), [3, 3, 0, 0, 3, 0], "{v}");
    let bounty = "FROM conversions WHERE kind = 'bounty'";
    assert_eq!(s.number(&format!("SELECT sum(quantity) {bounty}")), 3);
    assert_eq!(
        s.number(&format!("SELECT sum(commission_micros) {bounty}")),
        13_000_000
    );

    // awin-transactions.csv: data rows on lines 2-7. Line 6 repeats
    // transaction 3000002: rejected; line 7's status `on hold` is unknown:
    // rejected. Stored: 3000001 pending, 3000002 approved and paid → paid,
    // 3000003 declined, 3000004 deleted → declined.
    // Commission 6.00 + 2.28 + 4.00 + 0.50 = 12.78;
    // sales 120.00 + 45.50 + 80.00 + 10.00 = 255.50.
    let (ok, v, err) = s.import("awin-csv", &fixture("awin-transactions.csv"));
    assert!(ok, "{err}");
    assert_eq!(counts(&v), [6, 4, 0, 0, 4, 2], "{v}");
    assert_eq!(v["rejections"][0]["line"], 6);
    assert_eq!(v["rejections"][1]["line"], 7);
    let csv = "FROM conversions WHERE provider = 'awin' AND row_key LIKE '3%'";
    assert_eq!(
        s.number(&format!("SELECT sum(commission_micros) {csv}")),
        12_780_000
    );
    assert_eq!(
        s.number(&format!("SELECT sum(revenue_micros) {csv}")),
        255_500_000
    );
    let statuses: Vec<(String, String)> = {
        let db = s.db();
        let mut q = db
            .prepare(&format!("SELECT row_key, status {csv} ORDER BY row_key"))
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        statuses,
        [
            ("3000001", "pending"),
            ("3000002", "paid"),
            ("3000003", "declined"),
            ("3000004", "declined"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    // awin-transactions.json: 4 transactions; the 4th (starting on line 43)
    // has no transactionDate: rejected. Stored: 4000001 approved, 4000002
    // pending, 4000003 approved and paid → paid. Commission 3.75 + 1 + 0.62
    // = 5.37; sales 75.0 + 19.99 + 12.30 = 107.29.
    let (ok, v, err) = s.import("awin-json", &fixture("awin-transactions.json"));
    assert!(ok, "{err}");
    assert_eq!(counts(&v), [4, 3, 0, 0, 3, 1], "{v}");
    assert_eq!(
        v["rejections"],
        json!([{"line": 43, "reason": "transaction 4000004: missing transactionDate"}])
    );
    let api = "FROM conversions WHERE provider = 'awin' AND row_key LIKE '4%'";
    assert_eq!(
        s.number(&format!("SELECT sum(commission_micros) {api}")),
        5_370_000
    );
    assert_eq!(
        s.number(&format!("SELECT sum(revenue_micros) {api}")),
        107_290_000
    );

    // 5 + 3 + 3 + 4 + 3 conversions in all.
    assert_eq!(s.number("SELECT count(*) FROM conversions"), 18);
}

#[test]
fn reimporting_a_report_changes_nothing() {
    let s = Setup::new("reimport", "");
    let (ok, first, err) = s.import("amazon-earnings", &fixture("amazon-earnings.tsv"));
    assert!(ok, "{err}");
    assert_eq!(counts(&first), [6, 5, 0, 0, 5, 1]);
    let stamps = s.number("SELECT sum(updated_ms) FROM conversions");
    let (ok, second, err) = s.import("amazon-earnings", &fixture("amazon-earnings.tsv"));
    assert!(ok, "{err}");
    // The same 6 rows: 5 unchanged, the same row rejected again.
    assert_eq!(counts(&second), [6, 0, 0, 5, 5, 1], "{second}");
    assert_eq!(s.number("SELECT count(*) FROM conversions"), 5);
    assert_eq!(
        s.number("SELECT sum(updated_ms) FROM conversions"),
        stamps,
        "unchanged rows are not rewritten"
    );
}

#[test]
fn a_returns_report_updates_the_row_to_returned() {
    let s = Setup::new("returns", "");
    s.import("amazon-earnings", &fixture("amazon-earnings.tsv"));
    // The December report carries the Echo Dot row again with both items
    // returned (Returns 2 ≥ Items Shipped 2 → returned) and the book row
    // unchanged.
    let (ok, v, err) = s.import("amazon-earnings", &fixture("amazon-earnings-returns.tsv"));
    assert!(ok, "{err}");
    assert_eq!(counts(&v), [2, 0, 1, 1, 2, 0], "{v}");
    let (returns, status): (i64, String) = s
        .db()
        .query_row(
            "SELECT returns, status FROM conversions WHERE product_id = 'B09B8V1LZ3'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((returns, status.as_str()), (2, "returned"));
    assert_eq!(s.number("SELECT count(*) FROM conversions"), 5);
}

#[test]
fn unattributed_rows_are_kept_with_their_tag_and_sub_tag() {
    let s = Setup::new("unattributed", "");
    let (ok, _, err) = s.import("amazon-earnings", &fixture("amazon-earnings.tsv"));
    assert!(ok, "{err}");
    let rows: Vec<(String, Option<String>, Option<i64>)> = {
        let db = s.db();
        let mut q = db
            .prepare("SELECT tracking_id, sub_id, link_id FROM conversions ORDER BY event_ms, id")
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let own = |sub: Option<&str>| ("linkwright-20".to_owned(), sub.map(str::to_owned), None);
    assert_eq!(
        rows,
        vec![
            own(Some("0A1b2C3d4E5f6G")),
            own(Some("0A1b2C3d4E5f6H")),
            own(None),
            own(None),
            (
                "other-20".to_owned(),
                Some("0A1b2C3d4E5f6J".to_owned()),
                None
            ),
        ]
    );
}

#[test]
fn a_malformed_file_imports_nothing() {
    let s = Setup::new("malformed", "");
    // The header has no ASIN column (`Product` instead).
    let (ok, v, err) = s.import("amazon-earnings", &fixture("amazon-earnings-malformed.csv"));
    assert!(!ok, "{v}");
    assert!(
        err.contains("line 1: no header line found") && err.contains("asin (ASIN)"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    // The first transaction is fine, the second lacks a comma on line 14:
    // the file fails as a whole.
    let (ok, _, err) = s.import("awin-json", &fixture("awin-transactions-malformed.json"));
    assert!(!ok);
    assert!(err.contains("line 14: malformed JSON"), "{err}");
    assert_eq!(s.number("SELECT count(*) FROM conversions"), 0);
}

/// A server with a write key and a read-only key.
struct Api {
    server: TestServer,
    key: String,
    read_key: String,
}

impl Api {
    fn start(name: &str, extra: &str) -> Api {
        let s = Setup::new(name, extra);
        let key = |scope: &str| create_key(&s.config, &s.data, &[scope]);
        let (key, read_key) = (key("write"), key("read"));
        Api {
            server: TestServer::start(&s.config, &s.data),
            key,
            read_key,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.server.admin)
    }

    fn upload(&self, key: &str, query: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let r = client()
            .post(self.url(&format!("/conversions/import{query}")))
            .header(AUTHORIZATION, format!("Bearer {key}"))
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .unwrap();
        let status = r.status();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> Value {
        let r = client()
            .get(self.url(path))
            .header(AUTHORIZATION, format!("Bearer {}", self.key))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().unwrap()
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.server.data.join("linkwright.db")).unwrap()
    }
}

#[test]
fn the_api_answers_the_counts_and_names_bad_input() {
    let api = Api::start("api", "");
    let body = std::fs::read(fixture("awin-transactions.json")).unwrap();
    let (status, v) = api.upload(&api.key, "?format=awin-json", body.clone());
    assert_eq!(status, StatusCode::OK, "{v}");
    // As worked out above: 4 transactions, 3 stored, 1 rejected (line 43).
    assert_eq!(counts(&v), [4, 3, 0, 0, 3, 1], "{v}");
    assert_eq!(
        (&v["format"], &v["provider"], &v["kind"]),
        (&json!("awin-json"), &json!("awin"), &json!("transaction"))
    );
    assert_eq!(v["rejections"][0]["line"], 43);
    let (status, v) = api.upload(&api.key, "?format=awin-json", body.clone());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counts(&v), [4, 0, 0, 3, 3, 1], "{v}");

    for query in ["?format=amazon", ""] {
        let (status, v) = api.upload(&api.key, query, body.clone());
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["code"], "invalid_input");
        assert_eq!(v["error"]["field"], "format");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("amazon-earnings, amazon-orders"),
            "{v}"
        );
    }

    let malformed = std::fs::read(fixture("awin-transactions-malformed.json")).unwrap();
    let (status, v) = api.upload(&api.key, "?format=awin-json", malformed);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_input");
    assert_eq!(v["error"]["line"], 14);
    assert_eq!(v["error"]["field"], "body");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 14: malformed JSON"),
        "{v}"
    );

    let (status, v) = api.upload(&api.read_key, "?format=awin-json", body);
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");

    let stored: i64 = api
        .db()
        .query_row("SELECT count(*) FROM conversions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 3);

    // Stored rows are counted by provider and status (4000001 approved,
    // 4000002 pending, 4000003 paid; the re-import stored nothing), the
    // malformed upload as a failure.
    let metrics = client()
        .get(format!("{}/metrics", api.server.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let sample = |name: &str, labels: &[&str]| -> Option<String> {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    for status in ["approved", "pending", "paid"] {
        assert_eq!(
            sample(
                "linkwright_conversions_imported_total",
                &["provider=\"awin\"", &format!("status=\"{status}\"")]
            )
            .as_deref(),
            Some("1"),
            "{metrics}"
        );
    }
    assert_eq!(
        sample(
            "linkwright_conversion_import_failures_total",
            &["source=\"file\"", "provider=\"awin\""]
        )
        .as_deref(),
        Some("1"),
        "{metrics}"
    );

    // The route and its answer are in the OpenAPI document.
    let doc: Value = client()
        .get(api.url("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(doc["paths"]["/api/v1/conversions/import"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ImportSummary"].is_object());
}

/// Awin API answers: the January window has two transactions, February's
/// one, March's none.
fn awin_answer(path: &str) -> String {
    let t = |id: u32, status: &str, day: &str, sale: &str, commission: &str, click: &str| {
        json!({
            "id": id, "advertiserId": 1001, "commissionStatus": status,
            "transactionDate": format!("{day}T10:00:00"), "clickDate": format!("{day}T09:00:00"),
            "saleAmount": {"amount": sale, "currency": "GBP"},
            "commissionAmount": {"amount": commission, "currency": "GBP"},
            "clickRefs": {"clickRef": click}, "paidToPublisher": false,
        })
    };
    let list = if path.contains("startDate=2026-01-01") {
        json!([
            t(
                7_000_001,
                "pending",
                "2026-01-15",
                "100.00",
                "5.00",
                "CLICKA"
            ),
            t(
                7_000_002,
                "approved",
                "2026-01-31",
                "20.00",
                "1.00",
                "CLICKB"
            ),
        ])
    } else if path.contains("startDate=2026-02-01") {
        json!([t(
            7_000_003,
            "declined",
            "2026-03-02",
            "40.00",
            "2.00",
            "CLICKC"
        )])
    } else {
        json!([])
    };
    list.to_string()
}

fn pull_config(base: &str, calls_per_minute: u32) -> String {
    format!(
        "[conversions.awin]\napi_base = \"{base}\"\npublisher_id = \"123456\"\n\
         calls_per_minute = {calls_per_minute}\nbackoff_ms = 1\ntimeout_ms = 10000\n"
    )
}

#[test]
fn a_pull_over_75_days_makes_three_calls_with_the_right_windows_and_upserts() {
    let awin = stand_in_with_body(|path, headers| {
        if !headers
            .iter()
            .any(|h| h == "authorization: Bearer test-token")
        {
            return ("401 Unauthorized", String::new(), String::new());
        }
        (
            "200 OK",
            "content-type: application/json\r\n".to_owned(),
            awin_answer(path),
        )
    });
    // 1,200 calls per minute: calls start at least 50 ms apart.
    let s = Setup::new("pull", &pull_config(&awin.base, 1_200));
    let started = Instant::now();
    // 2026-01-01..2026-03-16 is 31 + 28 + 16 = 75 days: windows of 31, 31
    // and 13 days.
    let out = s.pull(Some("test-token"), "2026-01-01", "2026-03-16");
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        *awin.seen.lock().unwrap(),
        vec![
            "/publishers/123456/transactions/?startDate=2026-01-01T00:00:00&endDate=2026-01-31T23:59:59&timezone=UTC",
            "/publishers/123456/transactions/?startDate=2026-02-01T00:00:00&endDate=2026-03-03T23:59:59&timezone=UTC",
            "/publishers/123456/transactions/?startDate=2026-03-04T00:00:00&endDate=2026-03-16T23:59:59&timezone=UTC",
        ]
    );
    assert_eq!(v["calls"], 3);
    // Three calls, two gaps of at least 50 ms.
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    let windows: Vec<(&str, &str, u64)> = v["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["from"].as_str().unwrap(),
                w["to"].as_str().unwrap(),
                w["inserted"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        windows,
        vec![
            ("2026-01-01", "2026-01-31", 2),
            ("2026-02-01", "2026-03-03", 1),
            ("2026-03-04", "2026-03-16", 0),
        ]
    );
    // 2 + 1 + 0 transactions, none attributed (no clicks in this store).
    assert_eq!(counts(&v["totals"]), [3, 3, 0, 0, 3, 0], "{v}");
    // Commission 5.00 + 1.00 + 2.00 = 8.00.
    assert_eq!(
        s.number("SELECT sum(commission_micros) FROM conversions"),
        8_000_000
    );

    // Pulling again upserts: nothing new, nothing changed.
    let out = s.pull(Some("test-token"), "2026-01-01", "2026-03-16");
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts(&v["totals"]), [3, 0, 0, 3, 3, 0], "{v}");
    assert_eq!(awin.seen.lock().unwrap().len(), 6);
}

#[test]
fn a_pull_retries_429_and_5xx_and_stops_on_a_refused_token() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let awin = stand_in_with_body(move |path, headers| {
        if !headers
            .iter()
            .any(|h| h == "authorization: Bearer test-token")
        {
            return (
                "401 Unauthorized",
                String::new(),
                "{\"error\":\"invalid token\"}".to_owned(),
            );
        }
        match seen.fetch_add(1, Ordering::SeqCst) {
            0 => (
                "429 Too Many Requests",
                "retry-after: 1\r\n".to_owned(),
                String::new(),
            ),
            1 => ("503 Service Unavailable", String::new(), String::new()),
            _ => ("200 OK", String::new(), awin_answer(path)),
        }
    });
    let s = Setup::new("pull-retry", &pull_config(&awin.base, 60_000));
    let started = Instant::now();
    let out = s.pull(Some("test-token"), "2026-01-01", "2026-01-10");
    assert!(out.status.success(), "{out:?}");
    // The 429 asked for 1 s: honoured.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // 429, 503, then the answer: three calls for one window.
    assert_eq!(v["calls"], 3);
    assert_eq!(awin.seen.lock().unwrap().len(), 3);
    assert_eq!(v["totals"]["inserted"], 2);

    // A refused token is final: one call, exit 1, a message that says why.
    let out = s.pull(Some("wrong"), "2026-01-01", "2026-01-10");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Awin API refused 2026-01-01..2026-01-10: HTTP 401"),
        "{err}"
    );
    assert!(err.contains("AWIN_API_TOKEN"), "{err}");
    assert_eq!(awin.seen.lock().unwrap().len(), 4);

    // No token at all: nothing is called.
    let out = s.pull(None, "2026-01-01", "2026-01-10");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("set the environment variable AWIN_API_TOKEN"),
        "{err}"
    );
    assert_eq!(awin.seen.lock().unwrap().len(), 4);
}

/// The click ID in a redirect's `Location` (after `ascsubtag=`).
fn click_id(location: &str) -> String {
    let (_, rest) = location.split_once("ascsubtag=").unwrap();
    rest.split('&').next().unwrap().to_owned()
}

#[test]
fn clicks_through_the_redirect_host_are_joined_to_imported_earnings() {
    let api = Api::start("end-to-end", "[click_log]\nflush_interval_ms = 10");
    for (asin, code) in [("B09B8V1LZ3", "echo"), ("1718503105", "book")] {
        let r = client()
            .post(api.url("/links"))
            .header(AUTHORIZATION, format!("Bearer {}", api.key))
            .json(&json!({"asin": asin, "code": code}))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let click = |code: &str| {
        let r = client()
            .get(format!("{}/{code}", api.server.public))
            .header(USER_AGENT, BROWSER)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        click_id(r.headers()[LOCATION].to_str().unwrap())
    };
    let (echo1, echo2, book1) = (click("echo"), click("echo"), click("book"));
    assert!(echo1 != echo2 && echo1.len() <= 16, "{echo1} {echo2}");

    // The click log writes within a flush interval: wait until the three
    // clicks are in the store.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = api
            .db()
            .query_row(
                "SELECT count(*) FROM clicks WHERE click_id IN (?1, ?2, ?3)",
                [&echo1, &echo2, &book1],
                |r| r.get(0),
            )
            .unwrap();
        if n == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "clicks never reached the store");
        std::thread::yield_now();
    }

    // Amazon's Earnings report names the click IDs as sub-tags; one row's
    // sub-tag matches no click.
    let header = "Category\tName\tASIN\tTracking ID\tDate Shipped\tPrice($)\tItems Shipped\tReturns\tRevenue($)\tAd Fees($)\tSub Tag";
    let report = format!(
        "Fee-Earnings reports from 11-01-2026 to 11-30-2026\n{header}\n\
         Electronics\tEcho Dot\tB09B8V1LZ3\tlinkwright-20\t2026-11-03\t49.99\t2\t0\t99.98\t3.00\t{echo1}\n\
         Electronics\tEcho Dot\tB09B8V1LZ3\tlinkwright-20\t2026-11-04\t49.99\t1\t0\t49.99\t1.50\t{echo2}\n\
         Books\tRust\t1718503105\tlinkwright-20\t2026-11-04\t39.95\t1\t0\t39.95\t1.80\t{book1}\n\
         Toys\tBuilding Set\tB0TOYS0001\tlinkwright-20\t2026-11-05\t24.50\t1\t0\t24.50\t0.74\tNOSUCHCLICK00\n"
    );
    let (status, v) = api.upload(&api.key, "?format=amazon-earnings", report.into_bytes());
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(counts(&v), [4, 4, 0, 0, 1, 0], "{v}");

    // Per link: echo has 2 conversions (ad fees 3.00 + 1.50 = 4.50), book 1
    // (1.80); the unknown sub-tag stays unattributed (0.74).
    let per_link: Vec<(Option<String>, i64, i64, i64)> = {
        let db = api.db();
        let mut q = db
            .prepare(
                "SELECT l.code, count(*), sum(c.commission_micros), sum(c.click_id IS NOT NULL) \
                 FROM conversions c LEFT JOIN links l ON l.id = c.link_id \
                 GROUP BY l.code ORDER BY l.code",
            )
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        per_link,
        vec![
            (None, 1, 740_000, 0),
            (Some("book".to_owned()), 1, 1_800_000, 1),
            (Some("echo".to_owned()), 2, 4_500_000, 2),
        ]
    );
    let echo_click: String = api
        .db()
        .query_row(
            "SELECT click_id FROM conversions WHERE sub_id = ?1",
            [&echo1],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(echo_click, echo1);

    // The link stats (the reports side) agree with the table.
    // Items 2 + 1 = 3; revenue 99.98 + 49.99 = 149.97; 2 clicks, so
    // earnings per click 4.50 / 2 = 2.25.
    let echo = api.get("/links/echo/stats");
    assert_eq!(echo["clicks"], 2, "{echo}");
    assert_eq!(echo["conversions"], 2, "{echo}");
    assert_eq!(echo["items"], 3, "{echo}");
    assert_eq!(echo["revenue"], "149.97", "{echo}");
    assert_eq!(echo["commission"], "4.50", "{echo}");
    assert_eq!(echo["earnings_per_click"], "2.25", "{echo}");
    let book = api.get("/links/book/stats");
    assert_eq!(book["conversions"], 1, "{book}");
    assert_eq!(book["commission"], "1.80", "{book}");

    // A later report: the first Echo Dot row's two items came back.
    let header_and_row = format!(
        "{header}\nElectronics\tEcho Dot\tB09B8V1LZ3\tlinkwright-20\t2026-11-03\t49.99\t2\t2\t99.98\t3.00\t{echo1}\n"
    );
    let (status, v) = api.upload(
        &api.key,
        "?format=amazon-earnings",
        header_and_row.into_bytes(),
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(counts(&v), [1, 0, 1, 0, 0, 0], "{v}");
    let status: String = api
        .db()
        .query_row(
            "SELECT status FROM conversions WHERE sub_id = ?1",
            [&echo1],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "returned");
}
