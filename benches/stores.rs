//! The two stores side by side (issue 16): how fast each takes clicks, and
//! what two instances on one PostgreSQL serve against one.
//!
//! 1. **Writer capacity**, store level: 200,000 clicks written in the click
//!    writer's batches (4,096, its default) by `ClickStore::insert_clicks`,
//!    into a fresh SQLite file and a fresh PostgreSQL database, rounds
//!    alternating: clicks per second each, and the ratio.
//! 2. **Sustained clicks**, the real binary under `wrk` (64 connections,
//!    `STORES_SECS` seconds, default 5): one instance on SQLite, one on
//!    PostgreSQL, two on one PostgreSQL (32 connections each, two wrk
//!    processes at once). Per setup: redirects per second, and the clicks
//!    the database holds after a SIGTERM per second of the run.
//!
//! PostgreSQL: `LINKWRIGHT_TEST_DATABASE_URL`, else the test cluster
//! (`scripts/pg-cluster start`, stopped at the end). Unpinned: on 2 cores
//! the servers, wrk and PostgreSQL share both, so the server-level figures
//! say what one machine does, not what a fleet scales to. Without
//! `--bench` among its arguments (as `cargo test --all-targets` runs it) it
//! exits at once.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use linkwright_core::backend::{PgStore, SqliteStore};
use linkwright_core::classify::UaClass;
use linkwright_core::click::ClickIdGenerator;
use linkwright_core::store::{ClickEvent, ClickStore, LinkStore, NewLink};

const CLICKS: usize = 200_000;
const BATCH: usize = 4_096;
const ROUNDS: usize = 5;
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (server_url, started) = match std::env::var("LINKWRIGHT_TEST_DATABASE_URL") {
        Ok(url) => (url, false),
        Err(_) => {
            let out = Command::new(root.join("scripts/pg-cluster"))
                .arg("start")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                String::from_utf8(out.stdout).unwrap().trim().to_owned(),
                true,
            )
        }
    };
    println!("# stores benchmark, {}", utc_now());
    println!("- machine: nproc {}, {}", nproc(), cpu_model());
    writer_capacity(&server_url);
    sustained(&server_url);
    if started {
        let _ = Command::new(root.join("scripts/pg-cluster"))
            .arg("stop")
            .status();
    }
}

// ---------------------------------------------------------------------------
// 1. Writer capacity

fn writer_capacity(server_url: &str) {
    println!("\n## writer capacity: {CLICKS} clicks in batches of {BATCH}, {ROUNDS} rounds");
    let (mut sqlite, mut pg) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let order: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for is_pg in order {
            let rate = if is_pg {
                let db = Database::create(server_url, &format!("bench_w{round}"));
                let store = PgStore::connect(&db.url).unwrap();
                insert_all(&store)
            } else {
                let dir = scratch(&format!("writer-{round}"));
                let store = SqliteStore::open(&dir).unwrap();
                let rate = insert_all(&store);
                drop(store);
                let _ = std::fs::remove_dir_all(&dir);
                rate
            };
            println!(
                "round {round}: {:<10} {:>9.0} clicks/s",
                if is_pg { "postgres" } else { "sqlite" },
                rate
            );
            if is_pg {
                pg.push(rate)
            } else {
                sqlite.push(rate)
            }
        }
    }
    let ratios: Vec<f64> = pg.iter().zip(&sqlite).map(|(p, s)| p / s).collect();
    println!(
        "median: sqlite {:.0} clicks/s, postgres {:.0} clicks/s; postgres / sqlite {:.2} (rounds {})",
        median(&sqlite),
        median(&pg),
        median(&ratios),
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn insert_all(store: &dyn ClickStoreAndLinks) -> f64 {
    let link = store.create_link(new_link()).unwrap();
    let ids = ClickIdGenerator::new(1);
    let now = linkwright_core::clock::now_ms();
    let clicks: Vec<ClickEvent> = (0..CLICKS)
        .map(|i| ClickEvent {
            click_id: Some(ids.next_id()),
            link_id: link.id,
            at_ms: now + (i / 100) as i64,
            bot: false,
            referrer_host: Some("www.youtube.com".into()),
            ua_class: UaClass::Mobile,
            country: Some(*b"DE"),
            target: 0,
        })
        .collect();
    let started = Instant::now();
    for batch in clicks.chunks(BATCH) {
        store.insert_clicks(batch).unwrap();
    }
    CLICKS as f64 / started.elapsed().as_secs_f64()
}

trait ClickStoreAndLinks: ClickStore + LinkStore {}
impl<T: ClickStore + LinkStore> ClickStoreAndLinks for T {}

fn new_link() -> NewLink {
    let builder = linkwright_core::template::Template {
        provider: "amazon".into(),
        built: linkwright_model::template::Built {
            prefix: "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag=".into(),
            suffix: String::new(),
            destination: "https://www.amazon.com/dp/B08N5WRWNW".into(),
            marketplace: Some("amazon.com".into()),
            subid_max_len: 64,
            subid_encoding: linkwright_plugin_sdk::SubIdEncoding::UrlSafe,
        },
    };
    NewLink {
        code: Some("bench".into()),
        input: "https://www.amazon.com/dp/B08N5WRWNW".into(),
        template: builder,
        name: None,
        campaign: None,
        tags: Vec::new(),
        params: Vec::new(),
        source_key: None,
        request_key: None,
        targeting: None,
    }
}

// ---------------------------------------------------------------------------
// 2. Sustained clicks through the real binary

fn sustained(server_url: &str) {
    let secs: u64 = std::env::var("STORES_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("\n## sustained: wrk, 64 connections, {secs} s per run, unpinned");
    let mut rows = Vec::new();
    for round in 0..3 {
        for setup in ["sqlite", "postgres", "postgres x2"] {
            let r = run_setup(server_url, setup, secs, round);
            println!(
                "round {round}: {setup:<12} {:>8.0} redirects/s, {:>8.0} clicks stored/s ({} stored of {} answered, {} dropped by a full click queue)",
                r.rps, r.stored_per_sec, r.stored, r.answered, r.dropped
            );
            rows.push((setup, r));
        }
    }
    for setup in ["sqlite", "postgres", "postgres x2"] {
        let rps: Vec<f64> = rows
            .iter()
            .filter(|(s, _)| *s == setup)
            .map(|(_, r)| r.rps)
            .collect();
        let stored: Vec<f64> = rows
            .iter()
            .filter(|(s, _)| *s == setup)
            .map(|(_, r)| r.stored_per_sec)
            .collect();
        println!(
            "median {setup:<12} {:>8.0} redirects/s, {:>8.0} clicks stored/s",
            median(&rps),
            median(&stored)
        );
    }
}

struct Outcome {
    rps: f64,
    answered: u64,
    dropped: u64,
    stored: u64,
    stored_per_sec: f64,
}

fn run_setup(server_url: &str, setup: &str, secs: u64, round: usize) -> Outcome {
    let dir = scratch(&format!("sustained-{}-{round}", setup.replace(' ', "")));
    let db = (setup != "sqlite").then(|| Database::create(server_url, &format!("bench_s{round}")));
    let instances = if setup == "postgres x2" { 2 } else { 1 };
    let mut servers = Vec::new();
    for i in 0..instances {
        let config = dir.join(format!("config-{i}.toml"));
        // No node_id: each instance leases its own.
        let base = include_str!("../config.toml");
        let store = db
            .as_ref()
            .map(|d| format!("[store]\nurl = \"{}\"\n", d.url))
            .unwrap_or_default();
        std::fs::write(&config, format!("{base}\n{store}")).unwrap();
        let data = dir.join(format!("data-{i}"));
        if i == 0 {
            let out = Command::new(env!("CARGO_BIN_EXE_linkwright"))
                .env_remove("LINKWRIGHT_LOG")
                .args(["links", "create", "--code", "bench", "--config"])
                .arg(&config)
                .arg("--data-dir")
                .arg(&data)
                .arg("https://www.amazon.com/dp/B08N5WRWNW")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        servers.push(Server::start(&config, &data));
    }
    let conns = 64 / instances;
    let started = Instant::now();
    let wrks: Vec<Child> = servers
        .iter()
        .map(|s| {
            Command::new("wrk")
                .args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s"), "-H"])
                .arg(format!("User-Agent: {USER_AGENT}"))
                .arg(format!("{}/bench", s.public))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut rps = 0.0;
    let mut answered = 0u64;
    for wrk in wrks {
        let out = wrk.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            if let Some(v) = line.trim().strip_prefix("Requests/sec:") {
                rps += v.trim().parse::<f64>().unwrap();
            }
            if line.contains("requests in") {
                answered += line
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    let dropped: u64 = servers.iter().map(Server::dropped).sum();
    for s in servers {
        s.terminate();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stored: u64 = match &db {
        Some(d) => d
            .query("SELECT count(*) FROM clicks_by_id")
            .parse()
            .unwrap(),
        None => {
            let conn = rusqlite::Connection::open(dir.join("data-0/linkwright.db")).unwrap();
            conn.query_row("SELECT count(*) FROM clicks_by_id", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    Outcome {
        rps,
        answered,
        dropped,
        stored,
        stored_per_sec: stored as f64 / elapsed,
    }
}

struct Server {
    child: Child,
    public: String,
    admin: String,
}

impl Server {
    fn start(config: &Path, data: &Path) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_linkwright"))
            .env_remove("LINKWRIGHT_LOG")
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
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let (mut public, mut admin) = (None, None);
        while public.is_none() || admin.is_none() {
            let line = lines
                .next()
                .expect("the server announces its addresses")
                .unwrap();
            if let Some(url) = line.strip_prefix("public ") {
                public = Some(url.to_owned());
            } else if let Some(url) = line.strip_prefix("admin ") {
                admin = Some(url.to_owned());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            public: public.unwrap(),
            admin: admin.unwrap(),
        }
    }

    /// Clicks the click log dropped (its queue full): from `/metrics`.
    fn dropped(&self) -> u64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.admin))
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("linkwright_clicklog_dropped_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A fresh database on the benchmark's server.
struct Database {
    url: String,
    server: String,
    name: String,
}

impl Database {
    fn create(server: &str, prefix: &str) -> Database {
        let name = format!("{prefix}_{}", std::process::id());
        psql(
            server,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(server, &format!("CREATE DATABASE {name}"));
        let (base, _) = server.rsplit_once('/').unwrap();
        Database {
            url: format!("{base}/{name}"),
            server: server.to_owned(),
            name,
        }
    }

    fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lw-stores-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn utc_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
