//! Geo targeting and Amazon localization with the real binary: a country
//! database written by the test itself (Debian's MaxMind::DB::Writer, from
//! `libmaxmind-db-writer-perl`), clients connecting from different
//! 127.0.0.x addresses, and the file replaced on disk while the server runs.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BROWSER, TestServer, create_key, linkwright_on, scratch};

/// Writes a GeoLite2-Country-shaped database mapping each network to a
/// country, to `out` (through a temporary file and a rename, as
/// geoipupdate does).
fn write_mmdb(out: &Path, networks: &[(&str, &str)]) {
    let inserts: String = networks
        .iter()
        .map(|(net, cc)| {
            format!("$t->insert_network('{net}', {{ country => {{ iso_code => '{cc}' }} }});\n")
        })
        .collect();
    let script = format!(
        r#"
use strict; use warnings;
use MaxMind::DB::Writer::Tree;
my %types = (country => 'map', iso_code => 'utf8_string');
my $t = MaxMind::DB::Writer::Tree->new(
    ip_version => 6, record_size => 24, database_type => 'GeoLite2-Country',
    languages => ['en'], description => {{ en => 'linkwright test' }},
    remove_reserved_networks => 0,
    map_key_type_callback => sub {{ $types{{ $_[0] }} }},
);
{inserts}
open my $fh, '>:raw', $ARGV[0] or die "open: $!";
$t->write_tree($fh);
close $fh or die "close: $!";
"#
    );
    let tmp = out.with_extension("tmp");
    let status = Command::new("perl")
        .arg("-e")
        .arg(&script)
        .arg(&tmp)
        .status()
        .expect("perl (install libmaxmind-db-writer-perl: scripts/test does)");
    assert!(status.success(), "the mmdb writer failed");
    std::fs::rename(&tmp, out).unwrap();
}

/// A client whose connections come from `from`.
fn client_from(from: Ipv4Addr) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(IpAddr::V4(from))
        .build()
        .unwrap()
}

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

/// The `Location` of a redirect of `code` for a client at `from`.
fn location(
    server: &TestServer,
    from: Ipv4Addr,
    code: &str,
    ua: &str,
    xff: Option<&str>,
) -> String {
    let mut req = client_from(from)
        .get(format!("{}/{code}", server.public))
        .header("user-agent", ua);
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().unwrap();
    assert_eq!(resp.status(), 302);
    resp.headers()["location"].to_str().unwrap().to_owned()
}

fn config(dir: &Path, mmdb: &Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
trusted_proxies = ["127.0.0.9"]

[geoip]
database = "{}"
check_interval_ms = 20

[[providers]]
name = "amazon"
plugin = "amazon"
localize = true
[providers.config]
tags = {{ "amazon.com" = "lw-us-20", "amazon.de" = "lw-de-21", "amazon.co.jp" = "lw-jp-22" }}
"#,
            mmdb.display()
        ),
    )
    .unwrap();
    path
}

/// The sub-ID in a tracked Amazon URL.
fn subid(location: &str) -> &str {
    location.rsplit_once("ascsubtag=").unwrap().1
}

#[test]
fn shoppers_land_in_their_own_store_by_address_and_the_database_reloads() {
    let dir = scratch("geo");
    let mmdb = dir.join("GeoLite2-Country.mmdb");
    write_mmdb(
        &mmdb,
        &[
            ("127.0.0.2/32", "DE"),
            ("127.0.0.3/32", "JP"),
            ("127.0.0.4/32", "AQ"),
            ("127.0.0.5/32", "AT"),
        ],
    );
    let config = config(&dir, &mmdb);
    let data = dir.join("data");
    let out = linkwright_on(
        &config,
        &data,
        &[
            "links",
            "create",
            "--code",
            "echo",
            "--json",
            "--targets",
            r#"[{"device": "ios", "url": "https://www.amazon.co.jp/dp/B0IPHONE01"}]"#,
            "https://www.amazon.com/dp/B08N5WRWNW",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let link: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // No catalog credentials: the same ASIN assumed sold everywhere, and said.
    assert_eq!(link["targeting"]["availability"], "assumed");
    assert_eq!(link["targeting"]["localize"], true);

    let server = TestServer::start(&config, &data);
    let lo = |last: u8| Ipv4Addr::new(127, 0, 0, last);
    let mut seen = std::collections::HashSet::new();
    for (from, prefix) in [
        (
            2,
            "https://www.amazon.de/dp/B08N5WRWNW?tag=lw-de-21&ascsubtag=",
        ),
        (
            5,
            "https://www.amazon.de/dp/B08N5WRWNW?tag=lw-de-21&ascsubtag=",
        ),
        (
            3,
            "https://www.amazon.co.jp/dp/B08N5WRWNW?tag=lw-jp-22&ascsubtag=",
        ),
        // Antarctica has no store: the link's own.
        (
            4,
            "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        ),
        // Not in the database at all: the link's own.
        (
            6,
            "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        ),
    ] {
        for _ in 0..2 {
            let loc = location(&server, lo(from), "echo", BROWSER, None);
            assert!(loc.starts_with(prefix), "from 127.0.0.{from}: {loc}");
            let id = subid(&loc);
            assert!(
                !id.is_empty() && seen.insert(id.to_owned()),
                "a fresh sub-ID each click: {loc}"
            );
        }
    }
    // The device rule comes before the country.
    let loc = location(&server, lo(2), "echo", IPHONE, None);
    assert!(
        loc.starts_with("https://www.amazon.co.jp/dp/B0IPHONE01?tag=lw-jp-22&ascsubtag="),
        "{loc}"
    );
    // A forwarded address from a peer that is not a trusted proxy is ignored…
    let loc = location(&server, lo(2), "echo", BROWSER, Some("127.0.0.3"));
    assert!(
        loc.starts_with("https://www.amazon.de/"),
        "spoofed header believed: {loc}"
    );
    // …and believed from one that is.
    let loc = location(&server, lo(9), "echo", BROWSER, Some("127.0.0.3"));
    assert!(
        loc.starts_with("https://www.amazon.co.jp/"),
        "trusted proxy ignored: {loc}"
    );

    // The preview says where each country lands and why.
    let key = create_key(&config, &data, &["read"]);
    let preview: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/links/echo/targets", server.admin))
        .bearer_auth(&key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let country = |cc: &str| {
        preview["countries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["country"] == cc)
            .unwrap()
            .clone()
    };
    assert_eq!(country("DE")["why"], "assumed");
    assert_eq!(country("DE")["marketplace"], "amazon.de");
    assert_eq!(country("CH")["marketplace"], "amazon.de");
    assert_eq!(country("US")["why"], "own");
    assert_eq!(country("AQ")["why"], "own");
    assert_eq!(preview["devices"][0]["device"], "ios");

    // Operators refresh the file: 127.0.0.2 is now in Japan, no restart.
    write_mmdb(&mmdb, &[("127.0.0.2/32", "JP")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let loc = location(&server, lo(2), "echo", BROWSER, None);
        if loc.starts_with("https://www.amazon.co.jp/dp/B08N5WRWNW?tag=lw-jp-22&ascsubtag=") {
            break;
        }
        assert!(loc.starts_with("https://www.amazon.de/"), "{loc}");
        assert!(Instant::now() < deadline, "the new database was never used");
        std::thread::yield_now();
    }
    drop(server);

    // Every click recorded its country and the target that served it.
    use linkwright_core::clock::{Day, MS_PER_DAY, now_ms};
    let today = Day::from_days(now_ms() / MS_PER_DAY);
    let (from, to) = (today.plus(-1).to_string(), today.plus(1).to_string());
    let out = linkwright_on(
        &config,
        &data,
        &[
            "report",
            "--from",
            &from,
            "--to",
            &to,
            "--group-by",
            "country",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let clicks = |cc: &str| {
        rows.iter()
            .find(|r| r["group"] == cc)
            .map_or(0, |r| r["clicks"].as_u64().unwrap())
    };
    assert_eq!(clicks("AT"), 2);
    assert_eq!(clicks("AQ"), 2);
    assert!(clicks("DE") >= 4, "{rows:?}");
}

/// A Creators API stand-in: tokens, and GetItems answering by the
/// `x-marketplace` header — the Echo Dot is sold on amazon.com and
/// amazon.de, not on amazon.co.jp. While `down` is set, GetItems answers
/// 503. Counts GetItems calls.
struct Creators {
    stand_in: common::StandIn,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Creators {
    fn start(down: bool) -> Creators {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(down));
        let (c, d) = (Arc::clone(&calls), Arc::clone(&down));
        let stand_in = common::stand_in_with_body(move |path, headers| {
            let json = "content-type: application/json\r\n".to_owned();
            if path.contains("token") {
                return (
                    "200 OK",
                    json,
                    r#"{"access_token":"t0k3n","token_type":"bearer","expires_in":3600}"#.into(),
                );
            }
            c.fetch_add(1, Ordering::SeqCst);
            if d.load(Ordering::SeqCst) {
                return ("503 Service Unavailable", String::new(), String::new());
            }
            let marketplace = headers
                .iter()
                .find_map(|h| h.strip_prefix("x-marketplace:"))
                .map(str::trim)
                .unwrap_or_default();
            let body = if marketplace == "www.amazon.co.jp" {
                serde_json::json!({"errors": [{"code": "ItemNotAccessible", "message": "not here"}]})
            } else {
                serde_json::json!({"itemsResult": {"items": [{
                    "asin": "B08N5WRWNW",
                    "itemInfo": {"title": {"displayValue": "Echo Dot (5th Gen)"}},
                    "offersV2": {"listings": [{"availability": {"type": "IN_STOCK"}}]}
                }]}})
            };
            ("200 OK", json, body.to_string())
        });
        Creators {
            stand_in,
            calls,
            down,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `[[localize.creators]]` for every region, all on this stand-in.
    fn config(&self) -> String {
        ["2.1", "2.2", "2.3"]
            .iter()
            .map(|v| {
                format!(
                    "[[localize.creators]]\ncredential_id = \"id\"\ncredential_secret = \"s3cret\"\n\
                     version = \"{v}\"\npartner_tag = \"lw-20\"\ntoken_url = \"{b}/token\"\n\
                     api_url = \"{b}\"\nrequests_per_second = 1000\nretries = 0\nbackoff_ms = 10\n",
                    b = self.stand_in.base
                )
            })
            .collect()
    }
}

fn countries_of(
    preview: &serde_json::Value,
) -> std::collections::HashMap<String, serde_json::Value> {
    preview["countries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["country"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

/// The test config with `[localize]` (`localize` settings, then the
/// stand-in's credentials), and the link `echo` made with it by the CLI.
fn localized_echo(
    dir: &Path,
    mmdb: &Path,
    creators: &Creators,
    localize: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = config(dir, mmdb);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = format!("{text}\n[localize]\n{localize}\n{}", creators.config());
    std::fs::write(&config, text).unwrap();
    let data = dir.join("data");
    let url = "https://www.amazon.com/dp/B08N5WRWNW";
    let out = linkwright_on(&config, &data, &["links", "create", "--code", "echo", url]);
    assert!(out.status.success(), "{out:?}");
    (config, data)
}

fn preview_of(config: &Path, data: &Path, code: &str) -> serde_json::Value {
    let out = linkwright_on(config, data, &["links", "targets", "--json", code]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_catalog_decides_exact_or_search_and_is_never_asked_during_a_redirect() {
    let dir = scratch("creators");
    let mmdb = dir.join("GeoLite2-Country.mmdb");
    write_mmdb(&mmdb, &[("127.0.0.3/32", "JP"), ("127.0.0.2/32", "DE")]);
    let creators = Creators::start(false);
    let (config, data) = localized_echo(&dir, &mmdb, &creators, "");
    // amazon.de, amazon.co.jp and the link's own amazon.com (for the title).
    assert_eq!(creators.calls(), 3);
    let preview = preview_of(&config, &data, "echo");
    assert_eq!(preview["availability"], "confirmed");
    let by = countries_of(&preview);
    assert_eq!(by["DE"]["why"], "exact");
    assert_eq!(by["AT"]["why"], "exact");
    // Not sold in Japan: a search there for the title, tracked.
    assert_eq!(by["JP"]["why"], "search");
    assert_eq!(
        by["JP"]["destination"],
        "https://www.amazon.co.jp/s?k=Echo+Dot+%285th+Gen%29"
    );

    let server = TestServer::start(&config, &data);
    let lo = |last: u8| Ipv4Addr::new(127, 0, 0, last);
    let loc = location(&server, lo(3), "echo", BROWSER, None);
    assert!(
        loc.starts_with(
            "https://www.amazon.co.jp/s?k=Echo+Dot+%285th+Gen%29&tag=lw-jp-22&ascsubtag="
        ),
        "{loc}"
    );
    assert!(!subid(&loc).is_empty());
    for _ in 0..20 {
        location(&server, lo(2), "echo", BROWSER, None);
    }
    assert_eq!(creators.calls(), 3, "a redirect asked the catalog");
}

#[test]
fn with_the_catalog_down_availability_is_assumed_and_asked_again_later() {
    let dir = scratch("creators-down");
    let mmdb = dir.join("GeoLite2-Country.mmdb");
    write_mmdb(&mmdb, &[("127.0.0.3/32", "JP")]);
    let creators = Creators::start(true);
    let (config, data) = localized_echo(&dir, &mmdb, &creators, "retry_ms = 50");
    assert!(creators.calls() >= 2, "the catalog was asked");
    let preview = preview_of(&config, &data, "echo");
    assert_eq!(preview["availability"], "assumed");
    assert_eq!(countries_of(&preview)["JP"]["why"], "assumed");

    // The API is back: the server's background refresh asks again.
    creators
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let server = TestServer::start(&config, &data);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let preview = preview_of(&config, &data, "echo");
        if preview["availability"] == "confirmed" {
            assert_eq!(countries_of(&preview)["JP"]["why"], "search");
            break;
        }
        assert!(Instant::now() < deadline, "never asked again: {preview}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The running server serves the new targets at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !location(&server, Ipv4Addr::new(127, 0, 0, 3), "echo", BROWSER, None)
        .starts_with("https://www.amazon.co.jp/s?k=")
    {
        assert!(Instant::now() < deadline, "the server kept the old targets");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn targets_through_the_api_patch_and_bulk_csv_with_clear_errors() {
    let dir = scratch("targets-api");
    let mmdb = dir.join("GeoLite2-Country.mmdb");
    write_mmdb(&mmdb, &[("127.0.0.2/32", "DE"), ("2001:db8::/32", "DE")]);
    let config = config(&dir, &mmdb);
    let data = dir.join("data");
    let key = create_key(&config, &data, &[]);
    let server = TestServer::start(&config, &data);
    let http = reqwest::blocking::Client::new();
    let api = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        let r = http
            .request(method, format!("{}/api/v1{path}", server.admin))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().unwrap_or_default())
    };

    // Rules on create; localization off for this link (the provider has it on).
    let (status, link) = api(
        reqwest::Method::POST,
        "/links",
        serde_json::json!({
            "url": "https://www.amazon.com/dp/B08N5WRWNW",
            "code": "split",
            "localize": false,
            "targets": [
                {"country": "uk", "asin": "B08N5WRWNW", "marketplace": "amazon.de"},
                {"weight": 50},
                {"weight": 50, "url": "https://www.amazon.com/dp/B0OTHER000"}
            ]
        }),
    );
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["targeting"]["rules"][0]["country"], "uk");
    assert_eq!(
        link["targeting"]["destinations"].as_array().unwrap().len(),
        2
    );
    assert!(link["targeting"].get("availability").is_none());

    // Over many clicks from an unmapped address both halves of the split show.
    let lo6 = Ipv4Addr::new(127, 0, 0, 6);
    let mut halves = std::collections::HashSet::new();
    for _ in 0..64 {
        let loc = location(&server, lo6, "split", BROWSER, None);
        halves.insert(loc.contains("B0OTHER000"));
    }
    assert_eq!(halves.len(), 2, "one half of the split never served");
    // Refused at creation, naming the rule: a bad country, weights that do
    // not add up, and a target no provider can track.
    for (targets, code, needle) in [
        (
            serde_json::json!([{"country": "XY", "url": "https://www.amazon.de/dp/B08N5WRWNW"}]),
            "invalid_input",
            "targets[0].country",
        ),
        (
            serde_json::json!([{"weight": 60}, {"weight": 30, "url": "https://www.amazon.de/dp/B08N5WRWNW"}]),
            "invalid_input",
            "sum to 90",
        ),
        (
            serde_json::json!([{"country": "DE", "url": "https://untracked.example/page"}]),
            "unsupported_host",
            "targets[0]",
        ),
        (
            serde_json::json!([{"country": "DE", "asin": "B08N5WRWNW", "marketplace": "amazon.fr"}]),
            "marketplace_not_configured",
            "targets[0]",
        ),
    ] {
        let (status, body) = api(
            reqwest::Method::POST,
            "/links",
            serde_json::json!({"url": "https://www.amazon.com/dp/B08N5WRWNW", "targets": targets}),
        );
        assert!((400..500).contains(&status), "{status} {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["field"], "targets", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }

    // PATCH replaces the rules; the running server serves them at once.
    let (status, patched) = api(
        reqwest::Method::PATCH,
        "/links/split",
        serde_json::json!({"targets": [{"country": "DE", "url": "https://www.amazon.co.jp/dp/B08N5WRWNW"}]}),
    );
    assert_eq!(status, 200, "{patched}");
    let loc = location(&server, Ipv4Addr::new(127, 0, 0, 2), "split", BROWSER, None);
    assert!(
        loc.starts_with("https://www.amazon.co.jp/dp/B08N5WRWNW?tag=lw-jp-22&ascsubtag="),
        "{loc}"
    );
    let loc = location(&server, lo6, "split", BROWSER, None);
    assert!(
        loc.starts_with("https://www.amazon.com/dp/B08N5WRWNW?"),
        "{loc}"
    );
    // An empty list removes them.
    let (status, cleared) = api(
        reqwest::Method::PATCH,
        "/links/split",
        serde_json::json!({"targets": []}),
    );
    assert_eq!(status, 200, "{cleared}");
    assert!(cleared.get("targeting").is_none(), "{cleared}");
    let loc = location(&server, Ipv4Addr::new(127, 0, 0, 2), "split", BROWSER, None);
    assert!(loc.starts_with("https://www.amazon.com/"), "{loc}");

    // Bulk CSV: a `targets` column of JSON and a `localize` column.
    let csv = "url,code,localize,targets\n\
        https://www.amazon.com/dp/B08N5WRWNW,bulk1,false,\"[{\"\"country\"\": \"\"DE\"\", \"\"url\"\": \"\"https://www.amazon.de/dp/B08N5WRWNW\"\"}]\"\n\
        https://www.amazon.com/dp/B08N5WRWNW,bulk2,false,\"[{\"\"country\"\": \"\"ZZZ\"\", \"\"url\"\": \"\"https://www.amazon.de/dp/B08N5WRWNW\"\"}]\"\n";
    let r = http
        .post(format!("{}/api/v1/links/bulk", server.admin))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: serde_json::Value = r.json().unwrap();
    let id = job["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = api(
            reqwest::Method::GET,
            &format!("/jobs/{id}"),
            serde_json::Value::Null,
        );
        if status["status"] == "done" {
            assert_eq!(
                (status["ok"].as_u64(), status["errors"].as_u64()),
                (Some(1), Some(1)),
                "{status}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let loc = location(&server, Ipv4Addr::new(127, 0, 0, 2), "bulk1", BROWSER, None);
    assert!(
        loc.starts_with("https://www.amazon.de/dp/B08N5WRWNW?tag=lw-de-21"),
        "{loc}"
    );
    let result = http
        .get(format!("{}/api/v1/jobs/{id}/result.csv", server.admin))
        .bearer_auth(&key)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(result.contains("unknown country code"), "{result}");
}

#[test]
fn with_fallback_own_a_store_that_does_not_sell_the_product_is_not_targeted() {
    let dir = scratch("creators-own");
    let mmdb = dir.join("GeoLite2-Country.mmdb");
    write_mmdb(&mmdb, &[("127.0.0.3/32", "JP")]);
    let creators = Creators::start(false);
    let (config, data) = localized_echo(&dir, &mmdb, &creators, "fallback = \"own\"");
    let by = countries_of(&preview_of(&config, &data, "echo"));
    assert_eq!(by["DE"]["why"], "exact");
    assert_eq!(by["JP"]["why"], "own");
    assert_eq!(
        by["JP"]["destination"],
        "https://www.amazon.com/dp/B08N5WRWNW"
    );
    let server = TestServer::start(&config, &data);
    let loc = location(&server, Ipv4Addr::new(127, 0, 0, 3), "echo", BROWSER, None);
    assert!(
        loc.starts_with("https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag="),
        "{loc}"
    );
}
