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

use common::{TestServer, create_key, linkwright_on, scratch};

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

const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
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
