//! linkwright as a systemd service: the `Type=notify` messages, read from a
//! stand-in for systemd's `$NOTIFY_SOCKET` (a Unix datagram socket bound
//! here), and `linkwright migrate`, the unit's ExecStartPre.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{client, config_with, scratch};

const BIN: &str = env!("CARGO_BIN_EXE_linkwright");

/// Kills the server if the test fails before it stopped it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The next datagram, one state per line.
fn next_message(socket: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("no notification within the read timeout");
    String::from_utf8(buf[..n].to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `linkwright serve` on free ports, not started: each test sets its own
/// environment and output (these servers must see a NOTIFY_SOCKET, which
/// `TestServer` does not give).
fn serve(config: &std::path::Path, data: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--public-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ]);
    cmd
}

#[test]
fn ready_is_sent_once_both_listeners_accept_and_stopping_when_sigterm_starts_the_drain() {
    let dir = scratch("notify");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    // A bound on a hung test, not a synchronisation: every wait below ends
    // when a datagram arrives.
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let config = config_with(&dir, "");
    // Standard output goes to a file, so what the server printed before it
    // sent a datagram is there to read once the datagram is here.
    let printed = dir.join("stdout");
    let server = serve(&config, &dir.join("data"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("LINKWRIGHT_LOG")
        .stdout(std::fs::File::create(&printed).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running(server);

    let ready = next_message(&socket);
    assert!(ready.iter().any(|l| l == "READY=1"), "{ready:?}");
    assert!(!ready.iter().any(|l| l == "STOPPING=1"), "{ready:?}");

    // Both listeners were bound (their addresses printed) before READY=1,
    // and both answer at once: no retry, no wait.
    let printed = std::fs::read_to_string(&printed).unwrap();
    let address = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` line before READY=1: {printed:?}"))
            .to_owned()
    };
    let (public, admin) = (address("public "), address("admin "));
    let answer = client().get(format!("{admin}/readyz")).send().unwrap();
    assert_eq!(
        answer.status(),
        200,
        "the store is open and traffic accepted"
    );
    let answer = client()
        .get(format!("{public}/nosuchcode"))
        .header("user-agent", common::BROWSER)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 404);

    // SIGTERM: STOPPING=1 as the drain begins, then a clean exit.
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = next_message(&socket);
    assert!(stopping.iter().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert!(server.0.wait().unwrap().success());
    // Nothing after it (and READY=1 only once).
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        socket.recv(&mut buf).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );
}

#[test]
fn a_notify_socket_that_cannot_be_reached_does_not_stop_the_server() {
    let dir = scratch("notify-missing");
    let config = config_with(&dir, "");
    // Not through TestServer: this one must inherit a NOTIFY_SOCKET.
    let mut server = Running(
        serve(&config, &dir.join("data"))
            .env("NOTIFY_SOCKET", dir.join("nobody-listens.sock"))
            .env("LINKWRIGHT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = server.0.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let admin = loop {
        let line = lines.next().expect("the server stopped").unwrap();
        if let Some(url) = line.strip_prefix("admin ") {
            break url.to_owned();
        }
    };
    let answer = client().get(format!("{admin}/readyz")).send().unwrap();
    assert_eq!(answer.status(), 200);
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stderr = server.0.stderr.take().unwrap();
    let log = std::io::read_to_string(stderr).unwrap();
    assert!(server.0.wait().unwrap().success(), "{log}");
    assert!(log.contains("cannot notify the service manager"), "{log}");
}

fn migrate(config: &std::path::Path, data: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(["migrate", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env_remove("LINKWRIGHT_LOG")
        .output()
        .unwrap()
}

/// `migrate` opens the store and applies its migrations, and nothing else:
/// a provider whose plugin is missing (which `check-config` refuses) does
/// not stop it, and a second run changes nothing.
#[test]
fn migrate_creates_the_store_and_loads_no_plugin() {
    let dir = scratch("migrate");
    let config = config_with(
        &dir,
        "[[providers]]\nname = \"gone\"\nplugin = \"nosuchplugin\"\n",
    );
    let data = dir.join("data");
    let first = migrate(&config, &data);
    assert!(first.status.success(), "{first:?}");
    let db = data.join("linkwright.db");
    assert!(db.is_file());
    let text = String::from_utf8(first.stdout).unwrap();
    let version: i64 = text
        .trim_end()
        .strip_prefix(&format!("{}: schema version ", db.display()))
        .unwrap_or_else(|| panic!("{text:?}"))
        .parse()
        .unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(stored, version);
    assert!(version > 0);

    let again = migrate(&config, &data);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
}

/// A store migrated by a newer linkwright (a downgrade) stops the service
/// before it serves: ExecStartPre fails.
#[test]
fn migrate_refuses_a_store_of_a_newer_version() {
    let dir = scratch("migrate-newer");
    let config = config_with(&dir, "");
    let data = dir.join("data");
    assert!(migrate(&config, &data).status.success());
    let conn = rusqlite::Connection::open(data.join("linkwright.db")).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let out = migrate(&config, &data);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("the database has schema version 999; this linkwright knows up to"),
        "{err}"
    );
}
