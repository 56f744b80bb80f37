//! No answered click is lost to a crash: a bounded load from clients that
//! keep every sub-ID they were answered with, `kill -9` of the real binary
//! in the middle of it, a restart on the same data folder, and every sub-ID
//! received must be in the store.
//!
//! One round runs in the test suite, with the click writer held off (a flush
//! interval of a minute), so that every click must come back through the
//! journal's replay. `crash_rounds` repeats it (default 20 rounds, with the
//! default flush interval, so the store holds part of the clicks and the
//! journal the rest) and prints the figures for benches/RESULTS.md:
//!
//! ```sh
//! CRASH_ROUNDS=20 cargo test --release --test crash -- --ignored --nocapture crash_rounds
//! ```
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BROWSER, TestServer, client, config_with, linkwright_on, scratch};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, USER_AGENT};

const ECHO: &str = "https://www.amazon.com/dp/B08N5WRWNW?tag=linkwright-20&ascsubtag=";
/// Client threads, each on its own keep-alive connection.
const CLIENTS: usize = 4;
/// Most requests one client sends: the load is bounded even if the kill
/// never came.
const MAX_PER_CLIENT: usize = 50_000;

/// What one round saw.
#[derive(Debug)]
struct Round {
    /// 302s received before the kill cut the connections.
    received: usize,
    /// Of those, sub-IDs in the store after the restart.
    stored: usize,
    /// Clicks in the store before the restart (written by the writer).
    written_before: usize,
    /// From the kill to the restarted server listening (replay included).
    restart: Duration,
}

/// The IDs in the `clicks` view of the store in `data`.
fn stored_ids(data: &Path) -> HashSet<String> {
    let db = rusqlite::Connection::open(data.join("linkwright.db")).unwrap();
    db.prepare("SELECT click_id FROM clicks WHERE click_id IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A fresh deployment in `dir` with the link `echo`, on `click_log`
/// settings: (config, data folder).
fn echo_deployment(dir: &Path, click_log: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = config_with(dir, click_log);
    let data = dir.join("data");
    let out = linkwright_on(
        &config,
        &data,
        &[
            "links",
            "create",
            "--code",
            "echo",
            "https://www.amazon.com/dp/B08N5WRWNW",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    (config, data)
}

/// The value of an unlabelled counter in a `/metrics` text; 0 if absent.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One round: load, `kill -9` once `kill_after` 302s have been received,
/// restart, compare.
fn crash_round(name: &str, click_log: &str, kill_after: usize) -> Round {
    let dir = scratch(name);
    let (config, data) = echo_deployment(&dir, click_log);
    let server = TestServer::start(&config, &data);
    let url = format!("{}/echo", server.public);
    let received_count = AtomicUsize::new(0);
    let (reached, kill_now) = mpsc::channel::<()>();

    let (received, killed_at): (Vec<String>, Instant) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (url, count, reached) = (&url, &received_count, reached.clone());
                s.spawn(move || {
                    let c = client();
                    let mut mine = Vec::new();
                    for _ in 0..MAX_PER_CLIENT {
                        // A request cut by the kill is an error: that click
                        // was never answered, so it is not owed.
                        let Ok(r) = c.get(url).header(USER_AGENT, BROWSER).send() else {
                            break;
                        };
                        assert_eq!(r.status(), StatusCode::FOUND);
                        let location = r.headers()[LOCATION].to_str().unwrap();
                        mine.push(location.strip_prefix(ECHO).unwrap().to_owned());
                        if count.fetch_add(1, Ordering::Relaxed) + 1 == kill_after {
                            let _ = reached.send(());
                        }
                    }
                    mine
                })
            })
            .collect();
        drop(reached);
        kill_now
            .recv_timeout(Duration::from_secs(120))
            .expect("the clients reach the kill point");
        let log = server.kill();
        let killed_at = Instant::now();
        assert!(!log.contains("panicked"), "{log}");
        let received = clients
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        (received, killed_at)
    });
    assert!(received.len() >= kill_after);
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "each sub-ID once");
    let written_before = stored_ids(&data).len();

    let server = TestServer::start(&config, &data);
    let restart = killed_at.elapsed();
    let stored = stored_ids(&data);
    let (status, log) = server.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    let missing: Vec<&String> = received.iter().filter(|id| !stored.contains(*id)).collect();
    let round = Round {
        received: received.len(),
        stored: received.len() - missing.len(),
        written_before,
        restart,
    };
    assert!(
        missing.is_empty(),
        "{} of {} answered clicks lost, e.g. {:?}; {round:?}\n{log}",
        missing.len(),
        received.len(),
        &missing[..missing.len().min(5)]
    );
    std::fs::remove_dir_all(&dir).ok();
    round
}

#[test]
fn every_click_answered_before_a_kill_9_is_in_the_store_after_the_restart() {
    // The writer never wakes before the kill: every click comes back
    // through the journal (without it, none would be stored).
    let round = crash_round("crash", "[click_log]\nflush_interval_ms = 600000", 2_000);
    assert_eq!(round.written_before, 0, "{round:?}");
    assert_eq!(round.stored, round.received, "{round:?}");
}

/// A click queue far too small for the load (16 events; the writer wakes
/// every 20 ms): the clicks beyond it stay in their journal segment only and
/// are written from there. None is dropped, the count says so, and after a
/// clean shutdown every answered sub-ID is in the store once.
#[test]
fn clicks_beyond_a_full_click_queue_are_written_from_the_journal() {
    let dir = scratch("overflow");
    let (config, data) = echo_deployment(
        &dir,
        "[click_log]\nqueue_capacity = 16\nflush_interval_ms = 20",
    );
    let server = TestServer::start(&config, &data);
    let url = format!("{}/echo", server.public);
    let received: Vec<String> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let url = &url;
                s.spawn(move || {
                    let c = client();
                    (0..500)
                        .map(|_| {
                            let r = c.get(url).header(USER_AGENT, BROWSER).send().unwrap();
                            assert_eq!(r.status(), StatusCode::FOUND);
                            let location = r.headers()[LOCATION].to_str().unwrap();
                            location.strip_prefix(ECHO).unwrap().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let metrics = client()
        .get(format!("{}/metrics", server.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let overflowed = counter(&metrics, "linkwright_clicklog_overflowed_total");
    assert!(overflowed > 0.0, "the queue overflowed:\n{metrics}");
    assert_eq!(counter(&metrics, "linkwright_clicklog_dropped_total"), 0.0);
    let (status, log) = server.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    let stored = stored_ids(&data);
    assert_eq!(
        stored.len(),
        received.len(),
        "each once ({overflowed} overflowed)"
    );
    assert!(
        received.iter().all(|id| stored.contains(id)),
        "every answered click stored"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The same too-small queue, and a `kill -9`: the journal holds every
/// answered click, buffered or not.
#[test]
fn a_kill_9_with_a_full_click_queue_loses_no_answered_click() {
    let round = crash_round(
        "crash-overflow",
        "[click_log]\nqueue_capacity = 16\nflush_interval_ms = 20",
        2_000,
    );
    assert_eq!(round.stored, round.received, "{round:?}");
}

#[test]
#[ignore = "a benchmark: run with --ignored (see the module doc)"]
fn crash_rounds() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut all = Vec::new();
    for i in 0..rounds {
        // Kill points spread over the load: early, mid, late.
        let kill_after = 2_000 + (i % 5) * 3_000;
        let round = crash_round(&format!("crash-{i}"), "", kill_after);
        println!(
            "round {i:2}: received {:6}  in the store {:6}  lost 0  written before the kill {:6}  journal-only {:6}  kill to listening {:.0} ms",
            round.received,
            round.stored,
            round.written_before,
            round.received.saturating_sub(round.written_before),
            round.restart.as_secs_f64() * 1e3
        );
        all.push(round);
    }
    let received: usize = all.iter().map(|r| r.received).sum();
    let from_journal: usize = all
        .iter()
        .map(|r| r.received.saturating_sub(r.written_before))
        .sum();
    println!(
        "{rounds} rounds: {received} answered clicks, all {received} in the store after the restart; \
         {from_journal} of them came back from the journal only"
    );
}
