//! `linkwright store copy` with the real binary: an embedded deployment
//! (links, clicks, a conversion import, a key) copied into PostgreSQL,
//! every table's count and digest matching, then served from PostgreSQL
//! by an instance that knows nothing else.
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    PgDatabase, TestServer, client, config_with, create_key, linkwright, linkwright_on, scratch,
};
use reqwest::header::{AUTHORIZATION, LOCATION, USER_AGENT};
use serde_json::{Value, json};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

#[test]
fn an_embedded_store_moves_into_postgresql_whole() {
    let dir = scratch("store-copy");
    let sqlite_config = config_with(&dir, "");
    let data = dir.join("data");
    let key = create_key(&sqlite_config, &data, &["write"]);
    let auth = format!("Bearer {key}");
    let server = TestServer::start(&sqlite_config, &data);
    let mut codes = Vec::new();
    for (i, asin) in ["B08N5WRWNW", "B07FZ8S74R", "B0BSHF7WHW"]
        .iter()
        .enumerate()
    {
        let made: Value = client()
            .post(format!("{}/api/v1/links", server.admin))
            .header(AUTHORIZATION, &auth)
            .json(&json!({"url": format!("https://www.amazon.com/dp/{asin}"), "name": format!("link {i}"), "tags": ["moved"]}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        codes.push(made["code"].as_str().unwrap().to_owned());
    }
    let mut first_sub_id = String::new();
    for i in 0..30 {
        let r = client()
            .get(format!("{}/{}", server.public, codes[i % 3]))
            .header(USER_AGENT, BROWSER)
            .send()
            .unwrap();
        assert_eq!(r.status(), 302);
        if i == 0 {
            let location = r.headers()[LOCATION].to_str().unwrap();
            first_sub_id = location.rsplit_once("ascsubtag=").unwrap().1.to_owned();
        }
    }
    // A bot's hit is stored without a click ID.
    let bot = client()
        .head(format!("{}/{}", server.public, codes[0]))
        .send()
        .unwrap();
    assert_eq!(bot.status(), 302);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    // A conversion of the first click, imported into the embedded store.
    let report = dir.join("awin.csv");
    std::fs::write(
        &report,
        format!(
            "Transaction ID,Advertiser ID,Advertiser Name,Click Ref,Transaction Date,\
             Commission Status,Sale Amount,Commission Amount,Currency\n\
             9001,7,Shop,{first_sub_id},01/11/2026 10:00:00,approved,40.00,2.00,GBP\n"
        ),
    )
    .unwrap();
    let imported = linkwright_on(
        &sqlite_config,
        &data,
        &[
            "conversions",
            "import",
            "--format",
            "awin-csv",
            report.to_str().unwrap(),
        ],
    );
    assert!(imported.status.success(), "{imported:?}");

    // A bulk job of two rows (its job and items rows are copied too).
    let input = dir.join("links.csv");
    std::fs::write(
        &input,
        "asin,marketplace,name\nB0D1XD1ZV3,,Bulk one\nB0CHX3QBCH,amazon.de,\n",
    )
    .unwrap();
    let bulk = linkwright_on(
        &sqlite_config,
        &data,
        &[
            "links",
            "import",
            "--output",
            dir.join("result.csv").to_str().unwrap(),
            input.to_str().unwrap(),
        ],
    );
    assert!(bulk.status.success(), "{bulk:?}");

    // Copied, every table compared.
    let db = PgDatabase::create();
    let copy = linkwright(&[
        "store",
        "copy",
        "--from",
        data.to_str().unwrap(),
        "--to",
        &db.url,
    ]);
    let stdout = String::from_utf8_lossy(&copy.stdout).into_owned();
    assert!(
        copy.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    assert!(stdout.contains("every table matches"), "{stdout}");
    eprintln!("{stdout}");
    let rows = |table: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(table))
            .unwrap_or_else(|| panic!("no line for {table}: {stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(rows("links")[1..3], ["5", "5"]);
    assert_eq!(rows("jobs")[1..3], ["1", "1"]);
    assert_eq!(rows("job_items")[1..3], ["2", "2"]);
    assert_eq!(rows("clicks_by_id")[1..3], ["30", "30"]);
    assert_eq!(rows("clicks_without_id")[1..3], ["1", "1"]);
    assert_eq!(rows("conversions")[1..3], ["1", "1"]);
    assert_eq!(rows("api_keys")[1..3], ["1", "1"]);
    assert_eq!(db.query("SELECT count(*) FROM clicks_by_id_default"), "0");

    // A second copy into the same database is refused.
    let again = linkwright(&[
        "store",
        "copy",
        "--from",
        data.to_str().unwrap(),
        "--to",
        &db.url,
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("holds 5 link(s) already"),
        "{again:?}"
    );

    // Served from PostgreSQL: the same key, links, stats; new links get new ids.
    let pg_dir = scratch("store-copy-pg");
    let pg_config = config_with(&pg_dir, &format!("[store]\nurl = \"{}\"\n", db.url));
    let pg = TestServer::start(&pg_config, &pg_dir.join("data"));
    let r = client()
        .get(format!("{}/{}", pg.public, codes[1]))
        .header(USER_AGENT, BROWSER)
        .send()
        .unwrap();
    assert_eq!(r.status(), 302);
    let stats: Value = client()
        .get(format!("{}/api/v1/links/{}/stats", pg.admin, codes[0]))
        .header(AUTHORIZATION, &auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["clicks"], 10, "{stats}");
    assert_eq!(stats["bot_hits"], 1, "{stats}");
    assert_eq!(stats["conversions"], 1, "{stats}");
    assert_eq!(stats["commission"], "2.00", "{stats}");
    let made = client()
        .post(format!("{}/api/v1/links", pg.admin))
        .header(AUTHORIZATION, &auth)
        .json(&json!({"url": "https://www.amazon.com/dp/B0CX23V2ZK"}))
        .send()
        .unwrap();
    assert_eq!(made.status(), 201);
    let (status, log) = pg.terminate();
    assert!(status.success(), "{log}");
}
