//! PostgreSQL restarted under load, with the real binary on a cluster of
//! the test's own: redirects of a cached link never fail meanwhile (the
//! link is in the cache, the click waits in the click log), and every click
//! answered is in the database afterwards.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{TestServer, client, config_with, create_key, repo_root, scratch};
use reqwest::header::{AUTHORIZATION, LOCATION, USER_AGENT};
use serde_json::json;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// A PostgreSQL cluster of this test's own (`scripts/pg-cluster` with
/// `PG_CLUSTER_DIR`), stopped when dropped.
struct Cluster {
    dir: PathBuf,
    url: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let out = cluster(dir, "start");
        Cluster {
            dir: dir.to_owned(),
            url: String::from_utf8(out).unwrap().trim().to_owned(),
        }
    }

    fn restart(&self) {
        cluster(&self.dir, "restart");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/pg-cluster"))
            .arg("stop")
            .env("PG_CLUSTER_DIR", &self.dir)
            .output();
    }
}

fn cluster(dir: &Path, command: &str) -> Vec<u8> {
    let out = Command::new(repo_root().join("scripts/pg-cluster"))
        .arg(command)
        .env("PG_CLUSTER_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg-cluster {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs SQL through `psql`, the statement on its standard input (a list
/// of thousands of click IDs is longer than one argument may be).
fn psql(url: &str, sql: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qtA", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_database_restart_under_load_fails_no_redirect_and_loses_no_click() {
    let dir = scratch("pg-outage");
    let pg = Cluster::start(&dir.join("pg"));
    let config = config_with(&dir, &format!("[store]\nurl = \"{}\"\n", pg.url));
    let data = dir.join("data");
    let key = create_key(&config, &data, &["write"]);
    let server = TestServer::start(&config, &data);
    let created = client()
        .post(format!("{}/api/v1/links", server.admin))
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .json(&json!({"url": "https://www.amazon.com/dp/B08N5WRWNW", "code": "steady"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let url = format!("{}/steady", server.public);

    // Four clients redirect until told to stop (at most 60 s or 200,000
    // redirects): the first 500 before the restart, then through it, then
    // 500 more after it.
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sub_ids = Arc::new(Mutex::new(Vec::new()));
    let (milestone_tx, milestone) = mpsc::channel::<usize>();
    let deadline = Instant::now() + Duration::from_secs(60);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (done, stop, failures, sub_ids, url, milestone_tx) = (
                Arc::clone(&done),
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&sub_ids),
                url.clone(),
                milestone_tx.clone(),
            );
            std::thread::spawn(move || {
                let http = client();
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let r = http.get(&url).header(USER_AGENT, BROWSER).send().unwrap();
                    if r.status() != 302 {
                        failures.lock().unwrap().push(r.status().as_u16());
                        continue;
                    }
                    let location = r.headers()[LOCATION].to_str().unwrap();
                    let sub_id = location.rsplit_once("ascsubtag=").unwrap().1.to_owned();
                    sub_ids.lock().unwrap().push(sub_id);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 500 == 0 {
                        let _ = milestone_tx.send(n);
                    }
                    if n >= 200_000 {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(milestone_tx);
    milestone.recv().expect("500 redirects before the restart");
    let restarted_at = Instant::now();
    pg.restart();
    let after = done.load(Ordering::Relaxed);
    eprintln!(
        "PostgreSQL restarted in {:?}, {after} redirects answered so far",
        restarted_at.elapsed()
    );
    while let Ok(n) = milestone.recv() {
        if n >= after + 500 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "redirects failed: {failures:?}");
    let sub_ids = sub_ids.lock().unwrap().clone();
    assert!(
        sub_ids.len() >= after + 500,
        "the load ran through the restart"
    );

    // SIGTERM writes every queued click; then each answered one is there.
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let stored: usize = psql(&pg.url, "SELECT count(*) FROM clicks_by_id")
        .parse()
        .unwrap();
    let missing: usize = {
        let list = sub_ids
            .iter()
            .map(|s| format!("('{s}')"))
            .collect::<Vec<_>>()
            .join(",");
        psql(
            &pg.url,
            &format!(
                "SELECT count(*) FROM (VALUES {list}) AS answered(id) \
                 WHERE NOT EXISTS (SELECT 1 FROM clicks_by_id c WHERE c.click_id = answered.id)"
            ),
        )
        .parse()
        .unwrap()
    };
    eprintln!(
        "{} redirects answered, {stored} clicks stored; {} click batch writes failed \
         during the restart and were retried",
        sub_ids.len(),
        log.matches("click log write failed; will retry").count()
    );
    assert_eq!(missing, 0, "answered clicks missing from the database");
    assert_eq!(stored, sub_ids.len());
}
