//! The redirect host and admin listener: the real binary on 127.0.0.1:0, real
//! plugin files, a real SQLite file, and an HTTP client that does not follow
//! redirects.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};

use common::{BROWSER, TestServer, client, config_with, linkwright, linkwright_on, scratch};
use reqwest::StatusCode;
use reqwest::blocking::Response;
use reqwest::header::{CACHE_CONTROL, LOCATION, USER_AGENT};

const ECHO: &str = "https://www.amazon.com/dp/B08N5WRWNW?tag=linkwright-20&ascsubtag=";

/// A data folder holding the link `echo` (Amazon) and a config for it.
fn setup(name: &str, extra_config: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(name);
    let config = config_with(&dir, extra_config);
    let data = dir.join("data");
    let out = linkwright_on(
        &config,
        &data,
        &[
            "links",
            "create",
            "--code",
            "echo",
            "--name",
            "Echo review video",
            "https://www.amazon.com/Echo-Dot/dp/B08N5WRWNW/ref=sr_1_1?tag=someone-else-20",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "http://127.0.0.1:8080/echo\n"
    );
    (config, data)
}

fn get(url: &str, ua: Option<&str>) -> Response {
    let mut req = client().get(url);
    if let Some(ua) = ua {
        req = req.header(USER_AGENT, ua);
    }
    req.send().unwrap()
}

fn location(r: &Response) -> String {
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

fn is_click_id(s: &str) -> bool {
    s.len() == 13 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The value of a metric with exactly these labels in Prometheus text.
fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn redirect_answers_302_with_the_tracked_url_and_a_fresh_sub_id_per_click() {
    let (config, data) = setup("redirect", "");
    let server = TestServer::start(&config, &data);
    let mut ids = HashSet::new();
    for _ in 0..5 {
        let r = get(&format!("{}/echo", server.public), Some(BROWSER));
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()[CACHE_CONTROL], "private, no-store");
        let loc = location(&r);
        let id = loc.strip_prefix(ECHO).unwrap_or_else(|| panic!("{loc}"));
        assert!(is_click_id(id), "{id}");
        ids.insert(id.to_owned());
    }
    assert_eq!(ids.len(), 5, "every click gets its own sub-ID");
}

#[test]
fn visitor_query_parameters_never_override_the_tag_or_sub_id() {
    let (config, data) = setup("query", "");
    let server = TestServer::start(&config, &data);
    let r = get(
        &format!(
            "{}/echo?tag=evil-20&ascsubtag=stolen&url=https://evil.example/",
            server.public
        ),
        Some(BROWSER),
    );
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = location(&r);
    assert!(loc.starts_with(ECHO), "{loc}");
    assert!(is_click_id(&loc[ECHO.len()..]), "{loc}");
    assert!(!loc.contains("evil") && !loc.contains("stolen"), "{loc}");
}

/// `linkwright links create --code CODE` for an Amazon ASIN, with the CLI.
fn create_code(config: &str, data: &str, code: &str) {
    let out = linkwright(&[
        "links",
        "create",
        "--config",
        config,
        "--data-dir",
        data,
        "--code",
        code,
        "B08N5WRWNW",
    ]);
    assert!(out.status.success(), "{out:?}");
}

/// GETs `/echo` as a browser `times` times, asserting each is redirected.
fn follow_echo(server: &TestServer, times: usize) {
    for _ in 0..times {
        assert_eq!(
            get(&format!("{}/echo", server.public), Some(BROWSER)).status(),
            StatusCode::FOUND
        );
    }
}

/// GETs `path` until it answers `want`, for at most ten seconds (the server
/// reads link changes every 50 ms in these tests); the last status.
fn status_becomes(server: &TestServer, path: &str, want: StatusCode) -> StatusCode {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = get(&format!("{}{path}", server.public), Some(BROWSER)).status();
        if status == want || std::time::Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn links_changed_by_the_cli_reach_a_running_servers_caches() {
    let (config, data) = setup("follow", "[cache]\nlink_refresh_ms = 50\n");
    let c = config.to_str().unwrap();
    let d = data.to_str().unwrap();
    let server = TestServer::start(&config, &data);
    // Both cached: `echo` as a link, `later` as an unknown code.
    for _ in 0..2 {
        assert_eq!(
            get(&format!("{}/echo", server.public), Some(BROWSER)).status(),
            StatusCode::FOUND
        );
        assert_eq!(
            get(&format!("{}/later", server.public), Some(BROWSER)).status(),
            StatusCode::NOT_FOUND
        );
    }

    let out = linkwright(&["links", "disable", "--config", c, "--data-dir", d, "echo"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        status_becomes(&server, "/echo", StatusCode::GONE),
        StatusCode::GONE
    );
    let out = linkwright(&["links", "enable", "--config", c, "--data-dir", d, "echo"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        status_becomes(&server, "/echo", StatusCode::FOUND),
        StatusCode::FOUND
    );

    create_code(c, d, "later");
    assert_eq!(
        status_becomes(&server, "/later", StatusCode::FOUND),
        StatusCode::FOUND
    );
    let r = get(&format!("{}/later", server.public), Some(BROWSER));
    assert!(location(&r).starts_with(ECHO), "{}", location(&r));
}

#[test]
fn a_link_replaced_in_place_by_hand_reaches_a_running_servers_cache() {
    let (config, data) = setup("replace", "[cache]\nlink_refresh_ms = 50\n");
    let server = TestServer::start(&config, &data);
    follow_echo(&server, 2);
    // Another tool replaces the cached row with a disabled copy of itself:
    // SQLite deletes the old row without firing its delete trigger.
    let db = rusqlite::Connection::open(data.join("linkwright.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TEMP TABLE copy AS SELECT * FROM links WHERE code = 'echo';
         UPDATE copy SET disabled = 1;
         INSERT OR REPLACE INTO links SELECT * FROM copy;",
    )
    .unwrap();
    assert_eq!(
        status_becomes(&server, "/echo", StatusCode::GONE),
        StatusCode::GONE
    );
}

#[test]
fn unknown_codes_are_404_disabled_links_410_and_other_methods_405() {
    let (config, data) = setup("statuses", "");
    let c = config.to_str().unwrap();
    let d = data.to_str().unwrap();
    create_code(c, d, "old");
    let out = linkwright(&["links", "disable", "--config", c, "--data-dir", d, "old"]);
    assert!(out.status.success(), "{out:?}");
    let server = TestServer::start(&config, &data);

    for path in ["/nope", "/nope", "/", "/a%2Fb", "/has.dot"] {
        let r = get(&format!("{}{path}", server.public), Some(BROWSER));
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(r.headers().get(LOCATION).is_none());
    }
    let r = get(&format!("{}/old", server.public), Some(BROWSER));
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.headers().get(LOCATION).is_none());

    let r = client()
        .post(format!("{}/echo", server.public))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET, HEAD");

    // The second /nope came from the negative cache, not the store.
    let metrics = get(&format!("{}/metrics", server.admin), None)
        .text()
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            r#"linkwright_cache_lookups_total{cache="links",result="negative_hit"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"linkwright_redirects_total{outcome="gone",provider="none"}"#
        ),
        1.0
    );
}

#[test]
fn bots_previews_and_head_are_redirected_without_a_sub_id() {
    let (config, data) = setup("bots", "");
    let server = TestServer::start(&config, &data);
    let url = format!("{}/echo", server.public);
    for ua in [
        Some("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
        Some("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
        Some("WhatsApp/2.23.20.0"),
        Some("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"),
        Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
        None,
    ] {
        let r = get(&url, ua);
        assert_eq!(r.status(), StatusCode::FOUND, "{ua:?}");
        assert_eq!(location(&r), ECHO, "{ua:?} must get no sub-ID");
    }
    let r = client()
        .head(&url)
        .header(USER_AGENT, BROWSER)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(location(&r), ECHO);

    let metrics = get(&format!("{}/metrics", server.admin), None)
        .text()
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            r#"linkwright_clicks_total{provider="amazon",marketplace="amazon.com",bot="true"}"#
        ),
        7.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"linkwright_clicks_total{provider="amazon",marketplace="amazon.com",bot="false"}"#
        ),
        0.0
    );
}

#[test]
fn middleware_mode_redirects_accepted_urls_once_generated_and_refuses_the_rest() {
    let (config, data) = setup("go", "");
    let server = TestServer::start(&config, &data);
    let go = |target: &str| {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/go", server.public), [("url", target)])
                .unwrap();
        get(url.as_str(), Some(BROWSER))
    };
    let product = "https://www.amazon.de/Some-Thing/dp/B08N5WRWNW/ref=x?tag=other-21#reviews";
    let first = go(product);
    assert_eq!(first.status(), StatusCode::FOUND);
    let prefix = "https://www.amazon.de/dp/B08N5WRWNW?tag=linkwright0d-21&ascsubtag=";
    let a = location(&first);
    let b = location(&go(product));
    assert!(a.starts_with(prefix) && b.starts_with(prefix), "{a} {b}");
    assert_ne!(a, b, "a fresh sub-ID per click");

    let awin = location(&go("https://www.example-store.co.uk/p/widget?colour=blue"));
    assert!(
        awin.starts_with(
            "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
             &ued=https%3A%2F%2Fwww.example-store.co.uk%2Fp%2Fwidget%3Fcolour%3Dblue&clickref="
        ),
        "{awin}"
    );

    // Never an open redirect.
    // The statuses are the API's for the same codes: 400 for malformed
    // input, 422 for a URL no provider can track.
    for (target, status, code) in [
        (
            "https://evil.example/phish",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_host",
        ),
        (
            "javascript:alert(1)",
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        ("not a url", StatusCode::BAD_REQUEST, "invalid_input"),
        (
            "https://www.amazon.com/gp/help/customer",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_product_url",
        ),
    ] {
        let r = go(target);
        assert_eq!(r.status(), status, "{target}");
        assert!(r.headers().get(LOCATION).is_none());
        let body: serde_json::Value = r.json().unwrap();
        assert_eq!(body["error"]["code"], code, "{target}");
    }
    let r = get(&format!("{}/go", server.public), Some(BROWSER));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let metrics = get(&format!("{}/metrics", server.admin), None)
        .text()
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            r#"linkwright_cache_lookups_total{cache="go",result="hit"}"#
        ),
        1.0
    );
    let (status, _) = server.terminate();
    assert!(status.success());

    // Generated once: one auto-created link per URL, kept in the store.
    let out = linkwright_on(&config, &data, &["links", "list", "--json"]);
    let links: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // (Every link but `echo`, made with the CLI; a /go link's input is the
    // normalised URL it was made for.)
    let auto: Vec<_> = links.iter().filter(|l| l["code"] != "echo").collect();
    assert_eq!(auto.len(), 2, "{links:?}");
    assert_eq!(
        auto[0]["input"],
        "https://www.amazon.de/Some-Thing/dp/B08N5WRWNW/ref=x?tag=other-21"
    );
    assert_eq!(auto[0]["provider"], "amazon");
}

#[test]
fn metrics_count_a_known_number_of_clicks_with_fixed_labels_only() {
    let (config, data) = setup("metrics", "");
    let server = TestServer::start(&config, &data);
    follow_echo(&server, 7);
    for _ in 0..3 {
        get(&format!("{}/echo", server.public), Some("Twitterbot/1.0"));
    }
    get(&format!("{}/missing", server.public), Some(BROWSER));

    assert_eq!(
        get(&format!("{}/healthz", server.admin), None).status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("{}/readyz", server.admin), None).status(),
        StatusCode::OK
    );
    // The admin routes are not on the public host, and redirects are not on the admin one.
    assert_eq!(
        get(&format!("{}/metrics", server.public), Some(BROWSER)).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&format!("{}/echo", server.admin), None).status(),
        StatusCode::NOT_FOUND
    );

    let r = get(&format!("{}/metrics", server.admin), None);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().unwrap();
    let build_info = format!(
        r#"linkwright_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    for (series, want) in [
        (
            r#"linkwright_redirects_total{outcome="redirect",provider="amazon"}"#,
            10.0,
        ),
        // `/missing`, and `/metrics` asked of the public host.
        (
            r#"linkwright_redirects_total{outcome="not_found",provider="none"}"#,
            2.0,
        ),
        (
            r#"linkwright_clicks_total{provider="amazon",marketplace="amazon.com",bot="false"}"#,
            7.0,
        ),
        (
            r#"linkwright_clicks_total{provider="amazon",marketplace="amazon.com",bot="true"}"#,
            3.0,
        ),
        // `/metrics` is a reserved code: refused before any lookup.
        (
            r#"linkwright_cache_lookups_total{cache="links",result="miss"}"#,
            2.0,
        ),
        (
            r#"linkwright_cache_lookups_total{cache="links",result="hit"}"#,
            9.0,
        ),
        ("linkwright_clicklog_dropped_total", 0.0),
        (build_info.as_str(), 1.0),
        (
            r#"linkwright_http_request_duration_seconds_count{listener="public",route="redirect"}"#,
            12.0,
        ),
    ] {
        assert_eq!(metric(&text, series), want, "{series}");
    }
    assert!(text.contains(r#"linkwright_http_request_duration_seconds_bucket{listener="public",route="redirect",le="0.001"}"#));
    for family in [
        "linkwright_clicklog_queue_depth",
        "linkwright_clicklog_written_total",
        "linkwright_clicklog_flush_duration_seconds",
        "linkwright_http_rejected_total",
    ] {
        assert!(text.contains(family), "{family} missing");
    }
    // Label values come from fixed sets: never a code, URL or click ID.
    for line in text.lines().filter(|l| l.starts_with("linkwright_")) {
        let labels = line.split_once('{').map_or("", |(_, rest)| rest);
        assert!(
            !labels.contains("echo") && !labels.contains("missing") && !labels.contains("http"),
            "{line}"
        );
    }
}

#[test]
fn every_redirect_is_in_the_store_after_a_clean_shutdown_and_ids_keep_rising_across_restarts() {
    let (config, data) = setup(
        "shutdown",
        "[server]\ntrusted_country_header = \"CF-IPCountry\"",
    );
    let server = TestServer::start(&config, &data);
    let url = format!("{}/echo", server.public);
    let before: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let c = client();
                    (0..100)
                        .map(|_| {
                            let r = c
                                .get(&url)
                                .header(USER_AGENT, BROWSER)
                                .header("referer", "https://News.Example:443/article?x=1")
                                .header("cf-ipcountry", "de")
                                .send()
                                .unwrap();
                            assert_eq!(r.status(), StatusCode::FOUND);
                            location(&r)[ECHO.len()..].to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    get(&url, Some("Slackbot 1.0"));
    let (status, log) = server.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("all connections drained"), "{log}");

    let db = rusqlite::Connection::open(data.join("linkwright.db")).unwrap();
    let (total, bots, distinct): (i64, i64, i64) = db
        .query_row(
            "SELECT count(*), sum(bot), count(DISTINCT click_id) FROM clicks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (total, bots, distinct),
        (401, 1, 400),
        "every redirect served is stored"
    );
    let (referrer, country, class): (String, String, String) = db
        .query_row(
            "SELECT referrer_host, country, ua_class FROM clicks WHERE bot = 0 LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (referrer.as_str(), country.as_str(), class.as_str()),
        ("news.example", "DE", "desktop")
    );
    let stored: HashSet<String> = db
        .prepare("SELECT click_id FROM clicks WHERE click_id IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored, before.iter().cloned().collect::<HashSet<_>>());
    drop(db);

    // After a restart every new ID sorts after every earlier one.
    let server = TestServer::start(&config, &data);
    let after =
        location(&get(&format!("{}/echo", server.public), Some(BROWSER)))[ECHO.len()..].to_owned();
    let newest_before = before.iter().max().unwrap();
    assert!(
        &after > newest_before,
        "{after} must sort after {newest_before}"
    );
}

#[test]
fn http2_clients_are_served() {
    let (config, data) = setup("h2", "");
    let server = TestServer::start(&config, &data);
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/echo", server.public))
        .header(USER_AGENT, BROWSER)
        .send()
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(location(&r).starts_with(ECHO));
}

#[test]
fn an_idle_http2_connection_is_closed_with_a_goaway() {
    let (config, data) = setup("h2idle", "[server]\nheader_read_timeout_ms = 200");
    let server = TestServer::start(&config, &data);
    let addr = server.public.strip_prefix("http://").unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ended = runtime.block_on(async move {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let request = hyper::Request::get(format!("http://{addr}/echo"))
            .header(USER_AGENT, BROWSER)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), hyper::StatusCode::FOUND);
        drop(response);
        // Now idle: the watchdog closes it within two periods. The client
        // connection ends cleanly only if the server said GOAWAY first; a
        // connection just dropped ends in an unexpected EOF.
        tokio::time::timeout(std::time::Duration::from_secs(10), conn).await
    });
    let ended = ended.expect("the idle connection was not closed").unwrap();
    assert!(ended.is_ok(), "closed without a GOAWAY: {ended:?}");
}

#[test]
fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    let (config, data) = setup("slow", "[server]\nheader_read_timeout_ms = 300");
    let server = TestServer::start(&config, &data);
    let addr = server.public.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Never finish the headers; the server must close the connection. The
    // read timeout only bounds the test if it does not.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let sent = std::time::Instant::now();
    let result = stream.read_to_end(&mut buf);
    assert!(
        result.is_ok(),
        "the server kept the connection open: {result:?}"
    );
    // Asked to close after one or two periods, dropped a period later:
    // within three periods (0.9 s), with room for a loaded machine.
    let held = sent.elapsed();
    assert!(
        held < std::time::Duration::from_secs(5),
        "held for {held:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

/// Sends one raw HTTP/1.1 request head and returns the response's status
/// line.
fn raw_status(server: &TestServer, head: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let addr = server.public.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

/// The public host bounds a request head: more than 100 header fields, or a
/// head (request line included) over 16 KiB, is answered 431 (never
/// buffered without limit).
#[test]
fn oversized_request_heads_are_refused_with_431() {
    let (config, data) = setup("head-limits", "");
    let server = TestServer::start(&config, &data);
    let request = |extra: &str| {
        format!(
            "GET /echo HTTP/1.1\r\nHost: t\r\nUser-Agent: {BROWSER}\r\n{extra}Connection: close\r\n\r\n"
        )
    };
    assert_eq!(raw_status(&server, &request("")), "HTTP/1.1 302 Found");
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(
        raw_status(&server, &request(&many)),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    assert_eq!(
        raw_status(&server, &request(&big)),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // The request line counts toward the head: a request target of 20 KiB
    // is refused the same way, one of 8 KiB answered as any unknown code.
    let line = |target: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nUser-Agent: {BROWSER}\r\nConnection: close\r\n\r\n"
        )
    };
    assert_eq!(
        raw_status(&server, &line(&format!("/{}", "a".repeat(20 * 1024)))),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(
        raw_status(
            &server,
            &line(&format!("/go?url={}", "a".repeat(20 * 1024)))
        ),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(
        raw_status(&server, &line(&format!("/{}", "a".repeat(8 * 1024)))),
        "HTTP/1.1 404 Not Found"
    );
    // The server keeps serving.
    assert_eq!(raw_status(&server, &request("")), "HTTP/1.1 302 Found");
}
