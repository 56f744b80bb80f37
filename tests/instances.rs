//! Several instances on one PostgreSQL database, with the real binary:
//! a link created on one is served by the other, a link disabled on one is
//! refused by the other once it follows the journal, and click IDs stay
//! unique across instances.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{PgDatabase, TestServer, client, config_with, create_key, scratch};
use reqwest::header::{AUTHORIZATION, LOCATION, USER_AGENT};
use serde_json::{Value, json};

const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/// An instance's config: the shared database, its own node ID, and the
/// journal read every 20 ms.
fn instance(name: &str, db: &PgDatabase, node_id: u16) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(name);
    let config = config_with(
        &dir,
        &format!(
            "[store]\nurl = \"{}\"\n\n[cache]\nlink_refresh_ms = 20\n",
            db.url
        ),
    );
    // config_with starts from the repository's config, which leaves the
    // node ID out (leased): put it in.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("\n[click_ids]\n"),
        "config.toml has [click_ids]"
    );
    std::fs::write(
        &config,
        text.replacen(
            "\n[click_ids]\n",
            &format!("\n[click_ids]\nnode_id = {node_id}\n"),
            1,
        ),
    )
    .unwrap();
    (config, dir.join("data"))
}

fn redirect(server: &TestServer, code: &str) -> reqwest::blocking::Response {
    client()
        .get(format!("{}/{code}", server.public))
        .header(USER_AGENT, BROWSER)
        .send()
        .unwrap()
}

#[test]
fn two_instances_share_links_changes_and_unique_click_ids() {
    let db = PgDatabase::create();
    let (config_a, data_a) = instance("instances-a", &db, 1);
    let (config_b, data_b) = instance("instances-b", &db, 2);
    // A key made through one instance's config is in the shared store.
    let key = create_key(&config_a, &data_a, &["write"]);
    let a = TestServer::start(&config_a, &data_a);
    let b = TestServer::start(&config_b, &data_b);
    let api = |server: &TestServer, path: &str| format!("{}/api/v1{path}", server.admin);

    // Created on A, served by B.
    let created: Value = client()
        .post(api(&a, "/links"))
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .json(&json!({"url": "https://www.amazon.com/dp/B08N5WRWNW", "code": "shared"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(created["code"], "shared", "{created}");
    let on_b = redirect(&b, "shared");
    assert_eq!(on_b.status(), 302);
    let location = on_b.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://www.amazon.com/dp/B08N5WRWNW?tag="),
        "{location}"
    );

    // Clicks on both instances, each with its own node: no ID twice.
    let mut sub_ids = std::collections::HashSet::new();
    for i in 0..200 {
        let server = if i % 2 == 0 { &a } else { &b };
        let r = redirect(server, "shared");
        assert_eq!(r.status(), 302);
        let location = r.headers()[LOCATION].to_str().unwrap();
        let sub_id = location.rsplit_once("ascsubtag=").unwrap().1.to_owned();
        assert!(sub_ids.insert(sub_id), "a sub-ID was given twice");
    }

    // Disabled on B (A has the link cached): A answers 410 once it reads
    // the change from the shared journal.
    let disabled = client()
        .patch(api(&b, "/links/shared"))
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .json(&json!({"disabled": true}))
        .send()
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let changed = Instant::now();
    let deadline = changed + Duration::from_secs(10);
    // Each 302 A gives before it learns of the change is a click too.
    let mut served_meanwhile = 0;
    loop {
        let status = redirect(&a, "shared").status();
        if status == 410 {
            break;
        }
        assert_eq!(status, 302);
        served_meanwhile += 1;
        assert!(
            Instant::now() < deadline,
            "A still serves a link disabled on B"
        );
    }
    eprintln!(
        "A answered 410 {:?} after B disabled the link",
        changed.elapsed()
    );

    // Every click either instance answered is in the database, once.
    let (status_a, log_a) = a.terminate();
    let (status_b, log_b) = b.terminate();
    assert!(status_a.success(), "{log_a}");
    assert!(status_b.success(), "{log_b}");
    let stored = db.query("SELECT count(*) || ' ' || count(DISTINCT click_id) FROM clicks_by_id");
    let clicks = 201 + served_meanwhile;
    assert_eq!(
        stored,
        format!("{clicks} {clicks}"),
        "one row per click, no ID twice"
    );
    for sub_id in sub_ids.iter().take(20) {
        assert_eq!(
            db.query(&format!(
                "SELECT count(*) FROM clicks_by_id WHERE click_id = '{sub_id}'"
            )),
            "1"
        );
    }
}
