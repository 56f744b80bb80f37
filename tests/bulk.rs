//! Bulk link jobs against the real binary: `POST /api/v1/links/bulk` (CSV and
//! JSON), progress, the result CSV, the webhook, limits and auth, a restart
//! in the middle of a job, and `linkwright links import`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestServer, client, config_with, create_key, linkwright, scratch};
use reqwest::StatusCode;
use reqwest::blocking::Response;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};

const RESULT_HEADER: [&str; 7] = [
    "Input",
    "Marketplace",
    "Link Name",
    "Short URL",
    "Tracked URL",
    "Status",
    "Error",
];

/// A scratch folder with a config (API rate limit off: the tests poll; job
/// claims renewed every 100 ms, so a claim left by a killed server runs out
/// in a second) and a data folder holding a read-write and a read-only API
/// key.
struct Setup {
    config: PathBuf,
    data: PathBuf,
    key: String,
    read_key: String,
}

fn setup(name: &str) -> Setup {
    let dir = scratch(name);
    let config = config_with(
        &dir,
        "[api]\nrate_limit_per_minute = 0\nwebhook_hosts = [\"127.0.0.1\"]\n\
         job_claim_interval_ms = 100",
    );
    let data = dir.join("data");
    let key = create_key(&config, &data, &[]);
    let read_key = create_key(&config, &data, &["read"]);
    Setup {
        config,
        data,
        key,
        read_key,
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn post_csv(server: &TestServer, key: &str, query: &str, csv: &str) -> Response {
    client()
        .post(format!("{}/api/v1/links/bulk{query}", server.admin))
        .header(AUTHORIZATION, bearer(key))
        .header(CONTENT_TYPE, "text/csv")
        .body(csv.to_owned())
        .send()
        .unwrap()
}

fn post_json(server: &TestServer, key: &str, body: &Value) -> Response {
    client()
        .post(format!("{}/api/v1/links/bulk", server.admin))
        .header(AUTHORIZATION, bearer(key))
        .json(body)
        .send()
        .unwrap()
}

fn get(server: &TestServer, key: &str, path: &str) -> Response {
    client()
        .get(format!("{}{path}", server.admin))
        .header(AUTHORIZATION, bearer(key))
        .send()
        .unwrap()
}

/// Checks a 202 answer and returns the job id.
fn accepted(r: Response, total: u64) -> String {
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let body: Value = r.json().unwrap();
    let id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({
            "job_id": id,
            "status": "queued",
            "total": total,
            "status_url": format!("/api/v1/jobs/{id}"),
            "result_url": format!("/api/v1/jobs/{id}/result.csv"),
        })
    );
    assert_eq!(location, format!("/api/v1/jobs/{id}"));
    id
}

/// Polls `GET /jobs/{id}` until the job has ended (30 s at most) and returns
/// its summary. Progress must never go backwards.
fn wait_until_ended(server: &TestServer, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_processed = 0;
    loop {
        let r = get(server, key, &format!("/api/v1/jobs/{id}"));
        assert_eq!(r.status(), StatusCode::OK);
        let summary: Value = r.json().unwrap();
        let processed = summary["processed"].as_u64().unwrap();
        assert!(processed >= last_processed, "progress went back: {summary}");
        last_processed = processed;
        match summary["status"].as_str().unwrap() {
            "done" | "failed" => return summary,
            "queued" | "running" => {}
            other => panic!("unknown status {other}: {summary}"),
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not end within 30 s: {summary}"
        );
        // Backoff between polls only, so the poller does not take the CPU
        // from the server; nothing depends on its length.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF line ends.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Fetches an ended job's result CSV.
fn result_rows(server: &TestServer, key: &str, id: &str) -> Vec<Vec<String>> {
    let r = get(server, key, &format!("/api/v1/jobs/{id}/result.csv"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    let rows = parse_csv(&r.text().unwrap());
    assert_eq!(rows[0], RESULT_HEADER);
    rows
}

fn count_links(data: &Path) -> i64 {
    let db = rusqlite::Connection::open(data.join("linkwright.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM links", [], |r| r.get(0))
        .unwrap()
}

fn error_code(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let body: Value = r.json().unwrap();
    (status, body["error"].clone())
}

/// What one submitted row should come out as.
struct Expect {
    input: String,
    marketplace: String,
    name: String,
    /// `Ok(exact tracked URL or prefix)` or `Err(error code)`.
    outcome: Result<String, &'static str>,
}

/// `n` rows: every 7th an unknown host, every 11th a malformed ASIN, every
/// 3rd an Awin advertiser page with a name and a `clickref2` parameter, the
/// rest distinct Amazon ASINs in two marketplaces. Returns the CSV (columns
/// in an unusual order and case) and what each row should yield.
fn mixed_rows(n: usize, salt: &str) -> (String, Vec<Expect>) {
    let mut csv = String::from("Name,URL,param:clickref2,ASIN,marketplace,tags\n");
    let mut expect = Vec::with_capacity(n);
    for i in 0..n {
        if i % 7 == 0 {
            let url = format!("https://unknown-{i}.example/p/{salt}");
            csv.push_str(&format!(",{url},,,,\n"));
            expect.push(Expect {
                input: url,
                marketplace: String::new(),
                name: String::new(),
                outcome: Err("unsupported_host"),
            });
        } else if i % 11 == 0 {
            let asin = format!("B{i:08}!");
            csv.push_str(&format!(",,,{asin},amazon.de,\n"));
            expect.push(Expect {
                input: asin,
                marketplace: "amazon.de".into(),
                name: String::new(),
                outcome: Err("invalid_asin"),
            });
        } else if i % 3 == 0 {
            let url = format!("https://www.example-store.co.uk/p/{salt}-{i}");
            let name = format!("Video \"{i}\", channel A");
            csv.push_str(&format!(
                "\"{}\",{url},r{i},,,a|b\n",
                name.replace('"', "\"\"")
            ));
            expect.push(Expect {
                input: url,
                marketplace: "1001".into(),
                name,
                outcome: Ok(format!(
                    "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456&clickref2=r{i}&ued="
                )),
            });
        } else {
            let asin = format!("B{salt}{i:08}");
            let (marketplace, host, tag) = if i % 2 == 0 {
                ("amazon.com", "www.amazon.com", "linkwright-20")
            } else {
                ("amazon.de", "www.amazon.de", "linkwright0d-21")
            };
            csv.push_str(&format!(",,,{asin},{marketplace},\n"));
            expect.push(Expect {
                input: asin.clone(),
                marketplace: marketplace.into(),
                name: String::new(),
                outcome: Ok(format!(
                    "https://{host}/dp/{asin}?tag={tag}&ascsubtag={{click_id}}"
                )),
            });
        }
    }
    (csv, expect)
}

fn check_rows(rows: &[Vec<String>], expect: &[Expect], public: &str) {
    assert_eq!(
        rows.len(),
        expect.len() + 1,
        "one row per item plus the header"
    );
    for (i, (row, e)) in rows[1..].iter().zip(expect).enumerate() {
        assert_eq!(row.len(), 7, "row {i}: {row:?}");
        assert_eq!(row[0], e.input, "row {i}: {row:?}");
        assert_eq!(row[1], e.marketplace, "row {i}: {row:?}");
        assert_eq!(row[2], e.name, "row {i}: {row:?}");
        match &e.outcome {
            Ok(tracked) => {
                assert_eq!(row[5], "ok", "row {i}: {row:?}");
                assert_eq!(row[6], "", "row {i}: {row:?}");
                let code = row[3]
                    .strip_prefix(&format!("{public}/"))
                    .unwrap_or_else(|| panic!("row {i}: {row:?}"));
                assert!(!code.is_empty() && !code.contains('/'), "row {i}: {row:?}");
                if tracked.ends_with("{click_id}") {
                    assert_eq!(&row[4], tracked, "row {i}");
                } else {
                    assert!(row[4].starts_with(tracked.as_str()), "row {i}: {row:?}");
                    assert!(row[4].ends_with("&clickref={click_id}"), "row {i}: {row:?}");
                }
            }
            Err(code) => {
                assert_eq!(row[5], "error", "row {i}: {row:?}");
                assert_eq!(row[3], "", "row {i}: {row:?}");
                assert_eq!(row[4], "", "row {i}: {row:?}");
                assert!(
                    row[6].starts_with(&format!("{code}: ")) && row[6].len() > code.len() + 2,
                    "row {i}: {row:?}"
                );
            }
        }
    }
}

#[test]
fn a_csv_job_of_5000_mixed_rows_yields_one_result_row_per_item_in_order() {
    let s = setup("bulk-csv");
    let server = TestServer::start(&s.config, &s.data);
    let (csv, expect) = mixed_rows(5_000, "A");
    let good = expect.iter().filter(|e| e.outcome.is_ok()).count() as u64;
    assert!(good > 3_000 && good < 5_000, "{good}");

    let id = accepted(post_csv(&server, &s.key, "", &csv), 5_000);
    let summary = wait_until_ended(&server, &s.read_key, &id);
    assert_eq!(summary["status"], "done", "{summary}");
    assert_eq!(summary["total"], 5_000);
    assert_eq!(summary["processed"], 5_000);
    assert_eq!(summary["ok"], good);
    assert_eq!(summary["errors"], 5_000 - good);
    assert!(summary["finished_ms"].as_i64().unwrap() >= summary["created_ms"].as_i64().unwrap());
    assert_eq!(summary["failure"], Value::Null);

    let rows = result_rows(&server, &s.read_key, &id);
    check_rows(&rows, &expect, &server.public);

    // The links are real: a short URL from the result redirects to its
    // tracked URL with a fresh click ID.
    let row = &rows[2];
    let r = client()
        .get(&row[3])
        .header("user-agent", common::BROWSER)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()[LOCATION].to_str().unwrap();
    let prefix = row[4].strip_suffix("{click_id}").unwrap();
    assert!(
        location.starts_with(prefix) && location.len() > prefix.len(),
        "{location}"
    );

    drop(server);
    assert_eq!(count_links(&s.data), good as i64, "one link per good row");
}

/// One HTTP request as a test server saw it.
struct Received {
    request_line: String,
    /// Lower-cased `name: value` lines.
    headers: Vec<String>,
    body: Vec<u8>,
    /// When the connection was accepted.
    at: Instant,
}

/// Answers one HTTP request per status in `statuses`, in turn (closing each
/// connection), and hands each request over.
fn hook_server(statuses: &'static [u16]) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/bulk", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let (stream, _) = listener.accept().unwrap();
            let at = Instant::now();
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_owned();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
                headers.push(line.to_ascii_lowercase());
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            reader.get_mut().write_all(answer.as_bytes()).unwrap();
            let received = Received {
                request_line: request_line.trim_end().to_owned(),
                headers,
                body,
                at,
            };
            if tx.send(received).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn a_json_job_posts_its_summary_to_the_webhook_when_it_ends() {
    let s = setup("bulk-webhook");
    let server = TestServer::start(&s.config, &s.data);
    let (hook, requests) = hook_server(&[200]);
    let body = json!({
        "items": [
            {"asin": "B08N5WRWNW", "name": "Echo"},
            {"url": "https://nowhere.example/item"},
            {"url": "https://www.example-store.co.uk/p/42", "params": {"clickref2": "yt"}},
            {"asin": "B08N5WRWNW", "colour": "red"},
        ],
        "webhook_url": hook,
    });
    let id = accepted(post_json(&server, &s.key, &body), 4);

    let Received {
        request_line,
        headers,
        body,
        ..
    } = requests
        .recv_timeout(Duration::from_secs(30))
        .expect("the webhook was not called within 30 s");
    assert_eq!(request_line, "POST /hooks/bulk HTTP/1.1");
    assert!(
        headers
            .iter()
            .any(|h| h == "content-type: application/json"),
        "{headers:?}"
    );
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["job_id"], id.as_str());
    assert_eq!(sent["status"], "done");
    assert_eq!(sent["total"], 4);
    assert_eq!(sent["processed"], 4);
    assert_eq!(sent["ok"], 2);
    assert_eq!(sent["errors"], 2);
    assert!(sent["finished_ms"].is_i64(), "{sent}");
    // The webhook body is the job summary.
    let summary: Value = get(&server, &s.read_key, &format!("/api/v1/jobs/{id}"))
        .json()
        .unwrap();
    assert_eq!(sent, summary);

    let rows = result_rows(&server, &s.read_key, &id);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1][0..3], ["B08N5WRWNW", "amazon.com", "Echo"]);
    assert_eq!(rows[1][5], "ok");
    assert_eq!(rows[2][0], "https://nowhere.example/item");
    assert!(
        rows[2][6].starts_with("unsupported_host: "),
        "{:?}",
        rows[2]
    );
    assert_eq!(rows[3][5], "ok");
    assert!(rows[3][4].contains("clickref2=yt"), "{:?}", rows[3]);
    // A malformed item fails alone, as in a synchronous batch.
    assert!(
        rows[4][6].starts_with("invalid_input: malformed item: unknown field `colour`"),
        "{:?}",
        rows[4]
    );
}

#[test]
fn bulk_limits_bad_input_and_auth_are_refused_with_the_api_error_shape() {
    let s = setup("bulk-limits");
    let server = TestServer::start(&s.config, &s.data);

    let mut csv = String::from("asin\n");
    for _ in 0..5_001 {
        csv.push_str("B08N5WRWNW\n");
    }
    let (status, e) = error_code(post_csv(&server, &s.key, "", &csv));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "limit_exceeded", "{e}");
    assert!(e["message"].as_str().unwrap().contains("5001"), "{e}");

    let items: Vec<Value> = (0..5_001).map(|_| json!({"asin": "B08N5WRWNW"})).collect();
    let (status, e) = error_code(post_json(&server, &s.key, &json!({ "items": items })));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "limit_exceeded", "{e}");

    let (status, e) = error_code(post_csv(
        &server,
        &s.key,
        "",
        "url,Colour,name\nB08N5WRWNW,red,x\n",
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "invalid_input", "{e}");
    assert!(e["message"].as_str().unwrap().contains("`Colour`"), "{e}");

    let (status, e) = error_code(post_json(&server, &s.key, &json!({"items": []})));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "invalid_input", "{e}");

    let (status, e) = error_code(post_csv(
        &server,
        &s.key,
        "?webhook_url=ftp://hooks.example/x",
        "asin\nB08N5WRWNW\n",
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "invalid_input", "{e}");
    assert_eq!(e["field"], "webhook_url", "{e}");

    // Outbound calls go only to allow-listed hosts (api.webhook_hosts).
    let (status, e) = error_code(post_json(
        &server,
        &s.key,
        &json!({"items": [{"asin": "B08N5WRWNW"}], "webhook_url": "http://169.254.169.254/latest"}),
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "invalid_input", "{e}");
    assert_eq!(e["field"], "webhook_url", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("api.webhook_hosts"),
        "{e}"
    );

    // Larger than the API-wide 1 MiB body limit, within the bulk route's 16 MiB.
    let long = "x".repeat(400);
    let items: Vec<Value> = (0..5_000)
        .map(|i| json!({"asin": "B08N5WRWNW", "name": format!("{long}{i}")}))
        .collect();
    let body = json!({ "items": items });
    assert!(body.to_string().len() > 2 * 1024 * 1024);
    let id = accepted(post_json(&server, &s.key, &body), 5_000);

    let r = client()
        .post(format!("{}/api/v1/links/bulk", server.admin))
        .header(CONTENT_TYPE, "text/csv")
        .body("asin\nB08N5WRWNW\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).1["code"], "unauthorized");

    let r = post_csv(&server, &s.read_key, "", "asin\nB08N5WRWNW\n");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).1["code"], "forbidden");

    for path in ["/api/v1/jobs/job_nope", "/api/v1/jobs/job_nope/result.csv"] {
        let (status, e) = error_code(get(&server, &s.read_key, path));
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(e["code"], "not_found", "{path}");
    }
    let r = client()
        .get(format!("{}/api/v1/jobs/{id}", server.admin))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Writes a job straight into the store, as a runner that died would have
/// left it: `status`, the first `done` items recorded with `fake` results,
/// and the runner's claim, live for an hour.
fn insert_job(data: &Path, id: &str, status: &str, total: i64, requests: &[Value], done: usize) {
    let db = rusqlite::Connection::open(data.join("linkwright.db")).unwrap();
    let hour_from_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    db.execute(
        "INSERT INTO jobs (id, status, total, processed, ok, errors, created_ms,
                           claimed_by, claimed_until_ms)
         VALUES (?1, ?2, ?3, ?4, ?4, 0, 1, 'dead-runner', ?5)",
        rusqlite::params![id, status, total, done as i64, hour_from_now],
    )
    .unwrap();
    for (seq, request) in requests.iter().enumerate() {
        let result = (seq < done).then(|| {
            json!({"status": 201, "body": {"code": format!("pre{seq}"), "marketplace": "amazon.com",
                "name": "made before the restart", "template": format!("https://before.example/{seq}?s={{click_id}}")}})
            .to_string()
        });
        db.execute(
            "INSERT INTO job_items (job_id, seq, request, result) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, seq as i64, request.to_string(), result],
        )
        .unwrap();
    }
}

#[test]
fn an_interrupted_job_resumes_after_a_restart_from_its_first_unprocessed_item() {
    let s = setup("bulk-restart");
    let first = TestServer::start(&s.config, &s.data);

    // A job left `running` by a runner that died after 3 of 10 items, and a
    // job whose items are gone. Their runner's claim is live: this server
    // leaves them alone, and the result is not ready.
    let requests: Vec<Value> = (0..10)
        .map(|i| match i {
            7 => json!({"url": "https://nowhere.example/7"}),
            i => json!({"asin": format!("B0RESTART{i}")}),
        })
        .collect();
    insert_job(&s.data, "job_interrupted", "running", 10, &requests, 3);
    insert_job(&s.data, "job_itemless", "queued", 2, &[], 0);
    let r = get(
        &first,
        &s.read_key,
        "/api/v1/jobs/job_interrupted/result.csv",
    );
    let (status, e) = error_code(r);
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(e["code"], "conflict");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("still running: 3 of 10"),
        "{e}"
    );
    let (status, _) = first.terminate();
    assert!(status.success());

    // An hour later, the claims have run out: the next server takes both.
    rusqlite::Connection::open(s.data.join("linkwright.db"))
        .unwrap()
        .execute("UPDATE jobs SET claimed_until_ms = 1", [])
        .unwrap();
    let second = TestServer::start(&s.config, &s.data);
    let summary = wait_until_ended(&second, &s.read_key, "job_interrupted");
    assert_eq!(summary["status"], "done", "{summary}");
    assert_eq!(summary["processed"], 10);
    assert_eq!(summary["ok"], 9);
    assert_eq!(summary["errors"], 1);
    let rows = result_rows(&second, &s.read_key, "job_interrupted");
    assert_eq!(rows.len(), 11);
    for (i, row) in rows[1..].iter().enumerate() {
        if i < 3 {
            // Recorded before the restart: not made again.
            assert_eq!(row[4], format!("https://before.example/{i}?s={{click_id}}"));
        } else if i == 7 {
            assert!(row[6].starts_with("unsupported_host: "), "{row:?}");
        } else {
            assert_eq!(
                row[4],
                format!(
                    "https://www.amazon.com/dp/B0RESTART{i}?tag=linkwright-20&ascsubtag={{click_id}}"
                )
            );
        }
    }

    let broken = wait_until_ended(&second, &s.read_key, "job_itemless");
    assert_eq!(broken["status"], "failed", "{broken}");
    assert!(
        broken["failure"]
            .as_str()
            .unwrap()
            .starts_with("cannot read the job's items:"),
        "{broken}"
    );
    drop(second);
    assert_eq!(
        count_links(&s.data),
        6,
        "links for items 3..10 but 7, once each"
    );
}

#[test]
fn a_job_cut_off_by_sigkill_finishes_after_a_restart_without_duplicate_links() {
    let s = setup("bulk-kill");
    let server = TestServer::start(&s.config, &s.data);
    let (csv, expect) = mixed_rows(5_000, "K");
    let good = expect.iter().filter(|e| e.outcome.is_ok()).count();
    let id = accepted(post_csv(&server, &s.key, "", &csv), 5_000);
    // SIGKILL right after the 202: no chance to finish or flush anything.
    drop(server);

    let server = TestServer::start(&s.config, &s.data);
    let summary = wait_until_ended(&server, &s.read_key, &id);
    assert_eq!(summary["status"], "done", "{summary}");
    assert_eq!(summary["processed"], 5_000);
    assert_eq!(summary["ok"], good);
    check_rows(
        &result_rows(&server, &s.read_key, &id),
        &expect,
        &server.public,
    );
    drop(server);
    assert_eq!(count_links(&s.data), good as i64, "every item made once");
}

#[test]
fn links_import_writes_the_result_csv_and_exits_1_when_a_row_fails() {
    let s = setup("bulk-import");
    let dir = s.data.parent().unwrap();
    let input = dir.join("links.csv");
    let output = dir.join("result.csv");
    let c = s.config.to_str().unwrap();
    let d = s.data.to_str().unwrap();
    std::fs::write(
        &input,
        "asin,marketplace,name\nB08N5WRWNW,,Echo\nB08N5WRWN!,amazon.de,Broken\nB07XJ8C8F5,amazon.de,\n",
    )
    .unwrap();
    let out = linkwright(&[
        "links",
        "import",
        "--config",
        c,
        "--data-dir",
        d,
        "--output",
        output.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("2 of 3 rows made a link, 1 failed"),
        "{stderr}"
    );
    let rows = parse_csv(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], RESULT_HEADER);
    assert_eq!(rows[1][0..3], ["B08N5WRWNW", "amazon.com", "Echo"]);
    assert!(
        rows[1][3].starts_with("http://127.0.0.1:8080/"),
        "{:?}",
        rows[1]
    );
    assert_eq!(
        rows[1][4..],
        [
            "https://www.amazon.com/dp/B08N5WRWNW?tag=linkwright-20&ascsubtag={click_id}",
            "ok",
            ""
        ]
    );
    assert_eq!(
        rows[2][0..6],
        ["B08N5WRWN!", "amazon.de", "Broken", "", "", "error"]
    );
    assert!(rows[2][6].starts_with("invalid_asin: "), "{:?}", rows[2]);
    assert_eq!(rows[3][1], "amazon.de");
    assert_eq!(rows[3][5], "ok");

    // All good: exit 0, the result on standard output.
    std::fs::write(&input, "url\nhttps://www.amazon.com/dp/B08N5WRWNW\n").unwrap();
    let out = linkwright(&[
        "links",
        "import",
        "--config",
        c,
        "--data-dir",
        d,
        input.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let rows = parse_csv(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][5], "ok");
    assert_eq!(
        count_links(&s.data),
        3,
        "B08N5WRWNW twice in different shapes, B07XJ8C8F5"
    );

    // A bad header is refused before anything runs.
    std::fs::write(&input, "link\nhttps://www.amazon.com/dp/B08N5WRWNW\n").unwrap();
    let out = linkwright(&[
        "links",
        "import",
        "--config",
        c,
        "--data-dir",
        d,
        input.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown CSV column(s): `link`")
    );
}

#[test]
fn items_of_one_job_interact_as_if_made_one_by_one() {
    let s = setup("bulk-order");
    let server = TestServer::start(&s.config, &s.data);
    // Pairs that race if made at once: two requests for one custom code (the
    // first must get it), and the same request twice (one link for both).
    let mut items = Vec::new();
    for i in 0..20 {
        items.push(json!({"asin": format!("B0ORDERA{i:02}"), "code": format!("code-{i}")}));
        items.push(json!({"asin": format!("B0ORDERB{i:02}"), "code": format!("code-{i}")}));
        items.push(json!({"asin": format!("B0ORDERC{i:02}"), "name": "twice"}));
        items.push(json!({"asin": format!("B0ORDERC{i:02}"), "name": "twice"}));
    }
    let id = accepted(post_json(&server, &s.key, &json!({ "items": items })), 80);
    let summary = wait_until_ended(&server, &s.read_key, &id);
    assert_eq!(summary["ok"], 60, "{summary}");
    let rows = result_rows(&server, &s.read_key, &id);
    for (i, four) in rows[1..].chunks(4).enumerate() {
        assert_eq!(four[0][0], format!("B0ORDERA{i:02}"));
        assert_eq!(
            four[0][3],
            format!("{}/code-{i}", server.public),
            "{four:?}"
        );
        assert_eq!(four[1][5], "error", "{four:?}");
        assert!(
            four[1][6].starts_with(&format!("conflict: the code `code-{i}` is taken")),
            "{four:?}"
        );
        assert_eq!(four[2][5], "ok");
        assert_eq!(four[2][3], four[3][3], "the same request twice is one link");
    }
    drop(server);
    assert_eq!(count_links(&s.data), 40);
}

#[test]
fn a_webhook_answering_5xx_is_retried_with_doubling_backoff() {
    let s = setup("bulk-webhook-retry");
    let server = TestServer::start(&s.config, &s.data);
    let (hook, requests) = hook_server(&[503, 502, 200]);
    let items = json!({"items": [{"asin": "B08N5WRWNW"}], "webhook_url": hook});
    let id = accepted(post_json(&server, &s.key, &items), 1);
    let mut bodies = Vec::new();
    let mut times = Vec::new();
    for attempt in 1..=3 {
        let r = requests
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("webhook attempt {attempt} did not come"));
        bodies.push(serde_json::from_slice::<Value>(&r.body).unwrap());
        times.push(r.at);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    // Doubling backoff: 200 ms, then 400 ms.
    assert!(times[1] - times[0] >= Duration::from_millis(200));
    assert!(times[2] - times[1] >= Duration::from_millis(400));
    assert_eq!(bodies[0]["job_id"], id.as_str());
    assert_eq!(bodies[0]["status"], "done");
}

/// An `asin` cell that is not an ASIN is `invalid_asin` in the result, as
/// through the API's `asin` field and the CLI (one link service).
#[test]
fn an_asin_column_that_is_not_an_asin_is_invalid_asin_in_the_result() {
    let s = setup("bulk-invalid-asin");
    let server = TestServer::start(&s.config, &s.data);
    let csv = "asin,marketplace\nB0-NOT-ONE,amazon.com\nB08N5WRWNW,amazon.de\n";
    let id = accepted(post_csv(&server, &s.key, "", csv), 2);
    assert_eq!(wait_until_ended(&server, &s.key, &id)["errors"], 1);
    let rows = result_rows(&server, &s.key, &id);
    assert_eq!(rows[1][0], "B0-NOT-ONE");
    assert_eq!(rows[1][5], "error");
    assert!(rows[1][6].starts_with("invalid_asin: "), "{:?}", rows[1]);
    assert_eq!(rows[2][1], "amazon.de");
    assert_eq!(rows[2][5], "ok");
}

/// SIGTERM in the middle of a job: the server waits for the chunk it is
/// making until the shutdown grace runs out, then hands the job back, so
/// the next start goes on with it at once, although a claim here lives 10
/// minutes.
#[test]
fn a_job_cut_off_by_sigterm_is_handed_back_and_taken_at_the_next_start() {
    let gate = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let amzn = {
        let gate = std::sync::Arc::clone(&gate);
        common::StandIn::start(move |_| {
            let (open, opened) = &*gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = opened.wait(open).unwrap();
            }
            (
                "301 Moved Permanently",
                "location: https://www.amazon.com/dp/B0GATED000\r\n".into(),
            )
        })
    };
    let dir = scratch("bulk-term");
    let config = config_with(
        &dir,
        &format!(
            "[api]\nrate_limit_per_minute = 0\njob_claim_interval_ms = 60000\n\n\
             [server]\nshutdown_grace_ms = 200\n\n\
             [upstream]\nretries = 0\ntimeout_ms = 60000\n\
             short_link_override = {{ \"amzn.to\" = \"{}\" }}\n",
            amzn.base
        ),
    );
    let data = dir.join("data");
    let key = create_key(&config, &data, &[]);
    let server = TestServer::start(&config, &data);
    // Chunk 2 waits at the gate for its short link.
    let items: Vec<Value> = (0..600)
        .map(|i| match i {
            300 => json!({"url": "https://amzn.to/gated"}),
            i => json!({"url": format!("https://www.amazon.com/dp/B1{i:08}")}),
        })
        .collect();
    let id = accepted(post_json(&server, &key, &json!({ "items": items })), 600);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&server, &key, &format!("/api/v1/jobs/{id}"))
        .json::<Value>()
        .unwrap()["processed"]
        != 250
        || amzn.seen.lock().unwrap().is_empty()
    {
        assert!(Instant::now() < deadline, "chunk 2 never reached the gate");
        // Backoff between polls only; nothing depends on its length.
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("bulk job handed back"), "{log}");
    let db = rusqlite::Connection::open(data.join("linkwright.db")).unwrap();
    let (state, processed, holder): (String, i64, Option<String>) = db
        .query_row(
            "SELECT status, processed, claimed_by FROM jobs WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), processed, holder), ("running", 250, None));

    let (open, opened) = &*gate;
    *open.lock().unwrap() = true;
    opened.notify_all();
    let server = TestServer::start(&config, &data);
    let summary = wait_until_ended(&server, &key, &id);
    assert_eq!(summary["status"], "done", "{summary}");
    assert_eq!(summary["ok"], 600, "{summary}");
    drop(server);
    assert_eq!(count_links(&data), 600, "every item made once");
}
