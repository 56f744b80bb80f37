//! A bulk job on several instances sharing one PostgreSQL database, with
//! the real binary: the instance a job was submitted to is killed with
//! SIGKILL in the middle of it, at the worst moment (a chunk's links
//! committed, its outcomes not), and another instance takes the job over
//! once its claim runs out and finishes it, with no duplicate link.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{PgDatabase, StandIn, TestServer, client, config_with, create_key, scratch};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

/// Items in the job: three chunks (250, 250, 100).
const ITEMS: usize = 600;
/// The item whose short link waits at the gate: in the second chunk.
const GATED: usize = 300;

/// An instance's config: the shared database, its own node ID, claims
/// renewed every 100 ms (a dead instance's claim runs out after 1 s), the
/// API rate limit off (the test polls), and `amzn.to` sent to `short_links`.
fn instance(
    name: &str,
    db: &PgDatabase,
    node_id: u16,
    short_links: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(name);
    let config = config_with(
        &dir,
        &format!(
            "[store]\nurl = \"{}\"\n\n\
             [api]\nrate_limit_per_minute = 0\njob_claim_interval_ms = 100\n\n\
             [upstream]\nretries = 0\ntimeout_ms = 60000\n\
             short_link_override = {{ \"amzn.to\" = \"{short_links}\" }}\n",
            db.url
        ),
    );
    // config_with starts from the repository's config: put the node ID in.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("node_id = 0", &format!("node_id = {node_id}"), 1),
    )
    .unwrap();
    (config, dir.join("data"))
}

/// A door that requests wait at until the test opens it (no timing).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

fn status(server: &TestServer, key: &str, id: &str) -> Value {
    let r = client()
        .get(format!("{}/api/v1/jobs/{id}", server.admin))
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

/// Polls until `done(value)` holds for what `probe` answers (60 s at most).
fn poll<T: std::fmt::Debug>(what: &str, probe: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = probe();
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: still {value:?}");
        // Backoff between polls only; nothing depends on its length.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_bulk_job_whose_instance_is_killed_is_finished_by_another_without_duplicate_links() {
    let db = PgDatabase::create();
    let gate = Arc::new(Gate::default());
    let amzn = {
        let gate = Arc::clone(&gate);
        StandIn::start(move |path| {
            gate.wait();
            match path {
                "/gated" => (
                    "301 Moved Permanently",
                    "location: https://www.amazon.com/dp/B0GATED000\r\n".into(),
                ),
                _ => ("404 Not Found", String::new()),
            }
        })
    };
    let (config_a, data_a) = instance("jobs-a", &db, 1, &amzn.base);
    let (config_b, data_b) = instance("jobs-b", &db, 2, &amzn.base);
    let key = create_key(&config_a, &data_a, &[]);
    let a = TestServer::start(&config_a, &data_a);

    // Distinct requests, so distinct links; one short link in chunk 2.
    let items: Vec<Value> = (0..ITEMS)
        .map(|i| match i {
            GATED => json!({"url": "https://amzn.to/gated"}),
            i => json!({"url": format!("https://www.amazon.com/dp/B0{i:08}")}),
        })
        .collect();
    let r = client()
        .post(format!("{}/api/v1/links/bulk", a.admin))
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .json(&json!({ "items": items }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A made chunk 1 and waits at the gate in chunk 2. The job is A's:
    // runners are named host/pid/random.
    poll(
        "chunk 1 recorded, chunk 2 at the gate",
        || {
            (
                status(&a, &key, &id)["processed"].as_u64().unwrap(),
                amzn.seen.lock().unwrap().len(),
            )
        },
        |&(processed, seen)| processed == 250 && seen == 1,
    );
    let holder = db.query(&format!("SELECT claimed_by FROM jobs WHERE id = '{id}'"));
    assert!(
        holder.contains(&format!("/{}/", a.pid())),
        "claimed by {holder}, not by A (pid {})",
        a.pid()
    );
    let b = TestServer::start(&config_b, &data_b);

    // Hold the job's row, so A's outcomes for chunk 2 wait; let chunk 2
    // through the gate; once its links are committed, kill A.
    let mut lock = Command::new("psql")
        .args([db.url.as_str(), "-qtA", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sql = lock.stdin.take().unwrap();
    writeln!(
        sql,
        "BEGIN;\nSELECT id FROM jobs WHERE id = '{id}' FOR UPDATE;"
    )
    .unwrap();
    sql.flush().unwrap();
    let mut locked = String::new();
    BufReader::new(lock.stdout.take().unwrap())
        .read_line(&mut locked)
        .unwrap();
    assert_eq!(locked.trim(), id, "the job's row is locked");
    gate.open();
    poll(
        "chunk 2's links committed by A",
        || db.query("SELECT count(*) FROM links"),
        |n| n == "500",
    );
    assert_eq!(
        status(&b, &key, &id)["processed"],
        250,
        "chunk 2 unrecorded"
    );
    let log_a = a.kill();
    writeln!(sql, "ROLLBACK;").unwrap();
    drop(sql);
    assert!(lock.wait().unwrap().success());

    // B claims the job once A's claim has run out, makes chunk 2 again
    // (its links are answered by request idempotency) and chunk 3.
    let summary = poll(
        "the job finished by B",
        || status(&b, &key, &id),
        |s| s["status"] != "queued" && s["status"] != "running",
    );
    assert_eq!(summary["status"], "done", "{summary}\nA's log:\n{log_a}");
    assert_eq!(summary["total"], ITEMS);
    assert_eq!(summary["processed"], ITEMS);
    assert_eq!(summary["ok"], ITEMS, "{summary}");
    assert_eq!(summary["errors"], 0);
    assert_eq!(
        db.query(&format!(
            "SELECT count(*) FROM job_items WHERE job_id = '{id}' AND result LIKE '{{\"outcome\":\"link\"%'"
        )),
        ITEMS.to_string(),
        "every item has a link"
    );
    assert_eq!(
        db.query("SELECT count(*) || ' ' || count(DISTINCT request_key) FROM links"),
        format!("{ITEMS} {ITEMS}"),
        "one link per distinct item, none twice"
    );
    assert_eq!(
        db.query(&format!(
            "SELECT count(*) FROM jobs WHERE id = '{id}' AND claimed_by IS NULL"
        )),
        "1",
        "an ended job holds no claim"
    );
    let (exit, log_b) = b.terminate();
    assert!(exit.success(), "{log_b}");
    let took_over = log_b
        .lines()
        .find(|l| l.contains("claimed bulk job"))
        .unwrap_or_else(|| panic!("B did not claim the job:\n{log_b}"));
    assert!(
        took_over.contains(&id) && took_over.contains("processed=250"),
        "B took the job over at chunk 2: {took_over}"
    );
}
