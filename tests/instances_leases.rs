//! Node IDs leased from the store: two instances of the real binary on one
//! PostgreSQL database, neither configured with a node ID, each lease their
//! own, mint no click ID twice under load, and give their node IDs back on
//! a clean shutdown; a configured node ID another live instance holds is
//! refused at start, naming the node.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{BROWSER, PgDatabase, TestServer, client, config_with, create_key, scratch};
use reqwest::header::{AUTHORIZATION, LOCATION, USER_AGENT};
use serde_json::json;

/// Threads of load, and redirects each sends, alternating instances.
const THREADS: usize = 4;
const EACH: usize = 750;

/// An instance's config on the shared database; with `node_id`, that node
/// ID configured (the repository's config leaves it out).
fn instance(name: &str, db: &PgDatabase, node_id: Option<u16>) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let config = config_with(&dir, &format!("[store]\nurl = \"{}\"\n", db.url));
    if let Some(node) = node_id {
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(
            text.contains("\n[click_ids]\n"),
            "config.toml has [click_ids]"
        );
        std::fs::write(
            &config,
            text.replacen(
                "\n[click_ids]\n",
                &format!("\n[click_ids]\nnode_id = {node}\n"),
                1,
            ),
        )
        .unwrap();
    }
    (config, dir.join("data"))
}

#[test]
fn two_instances_without_node_ids_lease_their_own_and_mint_unique_click_ids_under_load() {
    let db = PgDatabase::create();
    let (config_a, data_a) = instance("leases-a", &db, None);
    let (config_b, data_b) = instance("leases-b", &db, None);
    let key = create_key(&config_a, &data_a, &["write"]);
    let a = TestServer::start(&config_a, &data_a);
    let b = TestServer::start(&config_b, &data_b);
    assert_eq!(
        db.query("SELECT string_agg(node_id::text, ',' ORDER BY node_id) FROM node_leases"),
        "0,1",
        "one node ID each"
    );
    let created = client()
        .post(format!("{}/api/v1/links", a.admin))
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .json(&json!({"url": "https://www.amazon.com/dp/B08N5WRWNW", "code": "load"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);

    let publics = [a.public.clone(), b.public.clone()];
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let publics = &publics;
            s.spawn(move || {
                let http = client();
                for i in 0..EACH {
                    let r = http
                        .get(format!("{}/load", publics[(t + i) % 2]))
                        .header(USER_AGENT, BROWSER)
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 302);
                    assert!(
                        r.headers()[LOCATION]
                            .to_str()
                            .unwrap()
                            .contains("ascsubtag=")
                    );
                }
            });
        }
    });

    for server in [a, b] {
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
        assert!(log.contains("node ID released"), "{log}");
    }
    let redirects = THREADS * EACH;
    assert_eq!(
        db.query("SELECT count(*) || ' ' || count(DISTINCT click_id) FROM clicks_by_id"),
        format!("{redirects} {redirects}"),
        "every redirect stored once, no click ID twice"
    );
    assert_eq!(
        db.query("SELECT count(*) FROM node_leases"),
        "0",
        "released on shutdown"
    );
}

/// `linkwright serve` expected to fail at start: its exit status and log,
/// or a panic (after killing it) if it is still running after a minute.
fn serve_refused(config: &Path, data: &Path) -> (std::process::ExitStatus, String) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_linkwright"))
        .args(["serve", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--public-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => {
            let out = out.unwrap();
            (
                out.status,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the second instance started on a node ID held by the first");
        }
    }
}

#[test]
fn a_configured_node_id_held_by_a_live_instance_refuses_to_start_naming_the_node() {
    let db = PgDatabase::create();
    let (config_a, data_a) = instance("clash-a", &db, Some(7));
    let (config_b, data_b) = instance("clash-b", &db, Some(7));
    let a = TestServer::start(&config_a, &data_a);
    let (status, log) = serve_refused(&config_b, &data_b);
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("node ID 7 ([click_ids] node_id) is leased by another instance"),
        "{log}"
    );
    assert!(log.contains("clash-a"), "names the holder: {log}");
    // Released by A's clean shutdown: B may have it now.
    let (status, log) = a.terminate();
    assert!(status.success(), "{log}");
    let b = TestServer::start(&config_b, &data_b);
    assert_eq!(db.query("SELECT node_id FROM node_leases"), "7");
    let (status, log) = b.terminate();
    assert!(status.success(), "{log}");
}
