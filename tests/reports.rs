//! Attribution reports against the real binary: links made through the API,
//! clicked through the redirect host, conversions written into the SQLite
//! file while the server is down (as an importer would, joined to the click
//! IDs from the `Location` headers), then the reports API, the link stats
//! and `linkwright report` after a restart.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::{BROWSER, TestServer, client, config_with, create_key, linkwright, scratch};
use reqwest::StatusCode;
use reqwest::blocking::Response;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, USER_AGENT};
use serde_json::{Value, json};

const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn get(server: &TestServer, key: &str, path: &str) -> Response {
    client()
        .get(format!("{}/api/v1{path}", server.admin))
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .send()
        .unwrap()
}

fn json_ok(r: Response) -> Value {
    let status = r.status();
    let body: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Clicks `url` as `ua` and returns the sub-ID the redirect carries in
/// `param` (None when there is none, as for bots).
fn click(url: &str, ua: &str, param: &str) -> Option<String> {
    let r = client().get(url).header(USER_AGENT, ua).send().unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "{url}");
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let start = location.find(&format!("{param}="))? + param.len() + 1;
    let id: String = location[start..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// Today's UTC date and the days either side, from SQLite's clock.
fn around_today() -> (String, String) {
    rusqlite::Connection::open_in_memory()
        .unwrap()
        .query_row(
            "SELECT date('now', '-1 day'), date('now', '+1 day')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct Shop {
    server: TestServer,
    config: PathBuf,
    data: PathBuf,
    read_key: String,
    from: String,
    to: String,
}

/// Two links (`echo` on Amazon in campaign `holiday`, `widget` on Awin),
/// 3 browser clicks and a Googlebot hit on `echo`, 2 browser clicks on
/// `widget`; then, server down: on `echo` two counted conversions and a
/// declined one, and one unattributed Awin conversion; server up again.
fn shop(name: &str) -> Shop {
    let dir = scratch(name);
    let config = config_with(&dir, "");
    let data = dir.join("data");
    let write_key = create_key(&config, &data, &["write"]);
    let read_key = create_key(&config, &data, &["read"]);
    let server = TestServer::start(&config, &data);

    for body in [
        json!({"url": "https://www.amazon.com/Echo-Dot/dp/B08N5WRWNW", "code": "echo",
               "name": "Echo video", "campaign": "holiday"}),
        json!({"url": "https://www.example-store.co.uk/p/widget", "code": "widget"}),
    ] {
        let r = client()
            .post(format!("{}/api/v1/links", server.admin))
            .header(AUTHORIZATION, format!("Bearer {write_key}"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().unwrap());
    }
    let echo = format!("{}/echo", server.public);
    let widget = format!("{}/widget", server.public);
    let echo_ids: Vec<String> = (0..3)
        .map(|_| click(&echo, BROWSER, "ascsubtag").unwrap())
        .collect();
    assert_eq!(
        click(&echo, GOOGLEBOT, "ascsubtag"),
        None,
        "bots get no sub-ID"
    );
    for _ in 0..2 {
        assert!(click(&widget, BROWSER, "clickref").is_some());
    }
    let (status, log) = server.terminate();
    assert!(status.success(), "{status:?}\n{log}");

    let db = rusqlite::Connection::open(data.join("linkwright.db")).unwrap();
    let link_id = |code: &str| -> i64 {
        db.query_row("SELECT id FROM links WHERE code = ?1", [code], |r| r.get(0))
            .unwrap()
    };
    let echo_id = link_id("echo");
    let now = now_ms();
    // (row key, click ID, link, provider, quantity, returns, revenue and
    // commission in micro-units, status, currency).
    #[rustfmt::skip]
    let rows = [
        ("o1", Some(echo_ids[0].as_str()), Some(echo_id), "amazon", 2, 1, 25_000_000, 1_000_000, "approved", "USD"),
        ("o2", Some(echo_ids[1].as_str()), Some(echo_id), "amazon", 1, 0, 10_000_000, 400_000, "pending", "USD"),
        ("o3", Some(echo_ids[2].as_str()), Some(echo_id), "amazon", 1, 0, 99_000_000, 5_000_000, "declined", "USD"),
        ("t1", None, None, "awin", 1, 0, 12_000_000, 600_000, "pending", "GBP"),
    ];
    for (row_key, click_id, link, provider, qty, ret, revenue, commission, status, currency) in rows
    {
        db.execute(
            "INSERT INTO conversions (provider, kind, row_key, sub_id, click_id, link_id, event_ms, \
             quantity, returns, revenue_micros, commission_micros, status, currency, imported_ms, \
             updated_ms) VALUES (?1, 'earnings', ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?5, ?5)",
            rusqlite::params![
                provider,
                row_key,
                click_id.unwrap_or("not-ours"),
                link,
                now,
                qty,
                ret,
                revenue,
                commission,
                status,
                currency
            ],
        )
        .unwrap();
    }
    drop(db);

    let server = TestServer::start(&config, &data);
    let (from, to) = around_today();
    Shop {
        server,
        config,
        data,
        read_key,
        from,
        to,
    }
}

/// (group, clicks, bot_hits, conversions, items, revenue, commission,
/// conversion_rate, earnings_per_click) of a JSON row.
fn numbers(row: &Value) -> Value {
    json!([
        row["group"],
        row["clicks"],
        row["bot_hits"],
        row["conversions"],
        row["items"],
        row["revenue"],
        row["commission"],
        row["conversion_rate"],
        row["earnings_per_click"],
    ])
}

#[test]
fn reports_and_link_stats_show_clicks_conversions_and_earnings_after_a_restart() {
    let shop = shop("by-link");
    let query = format!("/reports?from={}&to={}&group_by=link", shop.from, shop.to);

    let report = json_ok(get(&shop.server, &shop.read_key, &query));
    assert_eq!(report["from"], shop.from.as_str());
    assert_eq!(report["to"], shop.to.as_str());
    assert_eq!(report["group_by"], "link");
    let rows: Vec<Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(numbers)
        .collect();
    assert_eq!(
        rows,
        vec![
            // 3 clicks, 1 bot; o1 (2 items - 1 returned) + o2; o3 declined.
            // 2 / 3 conversions; 1.40 / 3 per click.
            json!(["echo", 3, 1, 2, 2, "35.00", "1.40", 0.666667, "0.466667"]),
            json!(["unattributed", 0, 0, 1, 1, "12.00", "0.60", 0.0, "0.00"]),
            json!(["widget", 2, 0, 0, 0, "0.00", "0.00", 0.0, "0.00"]),
        ],
        "{report}"
    );
    assert_eq!(report["rows"][0]["name"], "Echo video");
    assert_eq!(
        numbers(&report["totals"]),
        json!(["total", 5, 1, 3, 3, "47.00", "2.00", 0.6, "0.40"])
    );
    assert_eq!(report["currencies"], json!(["GBP", "USD"]));

    // The same report as CSV.
    let r = get(&shop.server, &shop.read_key, &format!("{query}&format=csv"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    let csv = r.text().unwrap();
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        vec![
            "group,clicks,bot_hits,conversions,items,revenue,commission,conversion_rate,earnings_per_click",
            "echo,3,1,2,2,35.00,1.40,0.666667,0.466667",
            "unattributed,0,0,1,1,12.00,0.60,0,0.00",
            "widget,2,0,0,0,0.00,0.00,0,0.00",
            "total,5,1,3,3,47.00,2.00,0.6,0.40",
        ]
    );

    // By campaign: `widget` has none; the Awin conversion has no link.
    let by_campaign = json_ok(get(
        &shop.server,
        &shop.read_key,
        &format!(
            "/reports?from={}&to={}&group_by=campaign",
            shop.from, shop.to
        ),
    ));
    let groups: Vec<(&str, u64, u64)> = by_campaign["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap(),
                r["clicks"].as_u64().unwrap(),
                r["conversions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![("(none)", 2, 0), ("holiday", 3, 2), ("unattributed", 0, 1)]
    );

    // The link's own stats carry the conversions and earnings too.
    let stats = json_ok(get(&shop.server, &shop.read_key, "/links/echo/stats"));
    assert_eq!(
        json!([
            stats["clicks"],
            stats["bot_hits"],
            stats["conversions"],
            stats["items"],
            stats["revenue"],
            stats["commission"],
            stats["earnings_per_click"],
        ]),
        json!([3, 1, 2, 2, "35.00", "1.40", "0.466667"]),
        "{stats}"
    );
    let by_day = stats["by_day"].as_array().unwrap();
    let sum = |field: &str| {
        by_day
            .iter()
            .map(|d| d[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("clicks"), sum("conversions")), (3, 2), "{stats}");

    // `linkwright report` prints the same report, here while the server runs.
    let cli = |format: &str| {
        let out = linkwright(&[
            "report",
            "--config",
            shop.config.to_str().unwrap(),
            "--data-dir",
            shop.data.to_str().unwrap(),
            "--from",
            &shop.from,
            "--to",
            &shop.to,
            "--format",
            format,
        ]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(serde_json::from_str::<Value>(&cli("json")).unwrap(), report);
    assert_eq!(cli("csv"), csv);
    let table = cli("table");
    let echo_line: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("echo "))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        echo_line,
        [
            "echo", "Echo", "video", "3", "1", "2", "2", "35.00", "1.40", "0.666667", "0.466667"
        ]
    );
}

#[test]
fn bad_report_parameters_answer_400_invalid_input_naming_the_field() {
    let dir = scratch("bad-params");
    let config = config_with(&dir, "");
    let data = dir.join("data");
    let key = create_key(&config, &data, &["read"]);
    let server = TestServer::start(&config, &data);
    for (query, field) in [
        ("to=2026-01-31", "from"),
        ("from=2026-01-01", "to"),
        ("from=2026-02-30&to=2026-03-01", "from"),
        ("from=01/01/2026&to=2026-03-01", "from"),
        ("from=2026-01-01&to=2026-1-31", "to"),
        ("from=2026-01-31&to=2026-01-01", "to"),
        ("from=2026-01-01&to=2027-01-02", "to"),
        ("from=2026-01-01&to=2026-01-31&group_by=week", "group_by"),
        ("from=2026-01-01&to=2026-01-31&format=xml", "format"),
        ("from=2026-01-01&to=2026-01-31&format=table", "format"),
        ("from=2026-01-01&to=2026-01-31&limit=10", "limit"),
        ("from=2026-01-01&from=2026-01-02&to=2026-01-31", "from"),
    ] {
        let r = get(&server, &key, &format!("/reports?{query}"));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"]["code"], "invalid_input", "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
        assert_eq!(body["error"]["retryable"], false, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // A full leap year is the longest range; an empty store answers zeros.
    let report = json_ok(get(
        &server,
        &key,
        "/reports?from=2024-01-01&to=2024-12-31&group_by=day",
    ));
    assert_eq!(report["rows"].as_array().unwrap().len(), 366);
    assert_eq!(report["totals"]["clicks"], 0);
    // Reports need a key.
    let r = client()
        .get(format!(
            "{}/api/v1/reports?from=2024-01-01&to=2024-01-02",
            server.admin
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
