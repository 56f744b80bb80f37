//! Link changes reach every instance at once: two instances of the real
//! binary on one PostgreSQL database, each reading the journal of link
//! changes on its schedule only once a minute, so that only the store's
//! push (LISTEN/NOTIFY) can explain a change served within the test. The
//! budget is 100 ms; the assertion is looser, for loaded CI machines, and
//! the measured times are printed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{BROWSER, PgDatabase, TestServer, client, config_with, create_key, scratch};
use reqwest::header::{AUTHORIZATION, LOCATION, USER_AGENT};
use serde_json::{Value, json};

/// What the issue asks for.
const BUDGET: Duration = Duration::from_millis(100);
/// What the test asserts, so that a slow machine does not fail it.
const BOUND: Duration = Duration::from_secs(2);

/// An instance's config: the shared database, the journal read on its
/// schedule every minute only.
fn instance(name: &str, db: &PgDatabase) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(name);
    let config = config_with(
        &dir,
        &format!(
            "[store]\nurl = \"{}\"\n\n[cache]\nlink_refresh_ms = 60000\n",
            db.url
        ),
    );
    (config, dir.join("data"))
}

fn redirect(server: &TestServer, code: &str) -> reqwest::blocking::Response {
    client()
        .get(format!("{}/{code}", server.public))
        .header(USER_AGENT, BROWSER)
        .send()
        .unwrap()
}

/// Asks `server` for `code` until `done` says its answer shows the change
/// made at `changed`; how long that took.
fn until_served(
    server: &TestServer,
    code: &str,
    changed: Instant,
    what: &str,
    done: impl Fn(&reqwest::blocking::Response) -> bool,
) -> Duration {
    loop {
        let answer = redirect(server, code);
        if done(&answer) {
            let took = changed.elapsed();
            let verdict = if took <= BUDGET { "within" } else { "OVER" };
            eprintln!("{what}: served {took:?} after the change ({verdict} the {BUDGET:?} budget)");
            return took;
        }
        assert!(
            changed.elapsed() < BOUND,
            "{what}: still not served {BOUND:?} after the change (last answer {})",
            answer.status()
        );
    }
}

fn location(r: &reqwest::blocking::Response) -> &str {
    r.headers()
        .get(LOCATION)
        .map_or("", |l| l.to_str().unwrap())
}

#[test]
fn a_change_on_one_instance_is_served_by_the_other_at_once() {
    let db = PgDatabase::create();
    let (config_a, data_a) = instance("notify-a", &db);
    let (config_b, data_b) = instance("notify-b", &db);
    let key = create_key(&config_a, &data_a, &["write"]);
    let a = TestServer::start(&config_a, &data_a);
    let b = TestServer::start(&config_b, &data_b);
    let api = |server: &TestServer, path: &str| format!("{}/api/v1{path}", server.admin);
    let auth = format!("Bearer {key}");

    // B remembers the code as unknown; then A creates it.
    assert_eq!(redirect(&b, "pushed").status(), 404);
    let created = client()
        .post(api(&a, "/links"))
        .header(AUTHORIZATION, &auth)
        .json(&json!({"url": "https://www.amazon.com/dp/B08N5WRWNW", "code": "pushed"}))
        .send()
        .unwrap();
    let changed = Instant::now();
    assert_eq!(created.status(), 201, "{:?}", created.text());
    let mut took = vec![until_served(
        &b,
        "pushed",
        changed,
        "created on A, on B",
        |r| r.status() == 302,
    )];

    // A has the link cached; B gives it a new destination.
    let first = redirect(&a, "pushed");
    assert!(
        location(&first).contains("/dp/B08N5WRWNW"),
        "{}",
        location(&first)
    );
    let patched = client()
        .patch(api(&b, "/links/pushed"))
        .header(AUTHORIZATION, &auth)
        .json(&json!({"url": "https://www.amazon.com/dp/B07XJ8C8F5"}))
        .send()
        .unwrap();
    let changed = Instant::now();
    let body: Value = patched.json().unwrap();
    assert_eq!(
        body["destination"], "https://www.amazon.com/dp/B07XJ8C8F5",
        "{body}"
    );
    took.push(until_served(
        &a,
        "pushed",
        changed,
        "destination changed on B, on A",
        |r| r.status() == 302 && location(r).contains("/dp/B07XJ8C8F5"),
    ));

    // Disabled on B: A answers 410.
    let disabled = client()
        .patch(api(&b, "/links/pushed"))
        .header(AUTHORIZATION, &auth)
        .json(&json!({"disabled": true}))
        .send()
        .unwrap();
    let changed = Instant::now();
    assert_eq!(disabled.status(), 200);
    took.push(until_served(
        &a,
        "pushed",
        changed,
        "disabled on B, on A",
        |r| r.status() == 410,
    ));
    eprintln!("slowest: {:?}", took.iter().max().unwrap());

    for server in [a, b] {
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
        assert!(log.contains("listening for link changes"), "{log}");
    }
}
