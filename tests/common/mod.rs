//! Helpers shared by the integration tests: where cargo put the plugin files,
//! unique scratch folders, and compiling C plugins with the system compiler.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `target/<profile>/deps`: where cargo puts the test binaries and the
/// shared libraries of the plugin crates this package depends on.
pub fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

/// The file of a workspace plugin built by cargo (`amazon` → …/liblinkwright_amazon.so).
pub fn plugin_file(name: &str) -> PathBuf {
    let file = deps_dir().join(linkwright_core::plugin::plugin_file_name(name));
    assert!(file.is_file(), "{} was not built", file.display());
    file
}

/// A fresh, empty folder unique to this test process and call.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "linkwright-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles a C plugin into `dir/name` with the system C compiler (`$CC` or
/// `cc`) against the ABI header, with extra `-D` macros.
pub fn compile_c(source: &Path, defines: &[&str], dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut cmd = Command::new(&cc);
    cmd.args([
        "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-I",
    ])
    .arg(repo_root().join("plugins/sdk/include"))
    .arg("-o")
    .arg(&out)
    .arg(source);
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (install gcc): {e}"));
    assert!(
        output.status.success(),
        "{cc} failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// The repository's default config, with extra TOML appended.
pub fn config_with(dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("config.toml")).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, format!("{text}\n{extra}\n")).unwrap();
    path
}

/// Runs the real `linkwright` binary.
pub fn linkwright(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_linkwright"))
        .args(args)
        .env_remove("LINKWRIGHT_LOG")
        .output()
        .unwrap()
}

/// Runs `linkwright ARGS… --config CONFIG --data-dir DATA`.
pub fn linkwright_on(config: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend([
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    linkwright(&all)
}

/// Creates an admin API key with `linkwright keys create` and returns its
/// secret. `scopes`: `read`, `write`; none means both.
pub fn create_key(config: &Path, data: &Path, scopes: &[&str]) -> String {
    let mut args = vec!["keys", "create", "--name", "test"];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let out = linkwright_on(config, data, &args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `linkwright serve` on 127.0.0.1:0, with its own data folder.
pub struct TestServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT` of the redirect host.
    pub public: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// The config file.
    pub config: PathBuf,
    /// The data folder.
    pub data: PathBuf,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl TestServer {
    /// Starts a server on `config` and `data`, and waits until it listens.
    pub fn start(config: &Path, data: &Path) -> TestServer {
        TestServer::start_exe(Path::new(env!("CARGO_BIN_EXE_linkwright")), config, data)
    }

    /// [`TestServer::start`] with another `linkwright` executable (one
    /// unpacked from the Debian package).
    pub fn start_exe(exe: &Path, config: &Path, data: &Path) -> TestServer {
        use std::io::BufRead;
        let mut child = Command::new(exe)
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
            .env("LINKWRIGHT_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (err_tx, err_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = err_tx.send(line);
            }
        });
        let mut public = None;
        let mut admin = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while public.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match line_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let log: Vec<String> = err_rx.try_iter().collect();
                    panic!("server did not start:\n{}", log.join("\n"));
                }
            };
            if let Some(url) = line.strip_prefix("public ") {
                public = Some(url.to_owned());
            } else if let Some(url) = line.strip_prefix("admin ") {
                admin = Some(url.to_owned());
            }
        }
        TestServer {
            child,
            public: public.unwrap(),
            admin: admin.unwrap(),
            config: config.to_owned(),
            data: data.to_owned(),
            stderr: err_rx,
        }
    }

    /// Sends SIGTERM and waits; returns the exit status and the log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success(), "kill -TERM failed");
        let status = self.child.wait().unwrap();
        let log: Vec<String> = self.stderr.try_iter().collect();
        (status, log.join("\n"))
    }
}

impl TestServer {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it;
    /// returns its log.
    pub fn kill(mut self) -> String {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status:?}"
        );
        let log: Vec<String> = self.stderr.try_iter().collect();
        log.join("\n")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A current desktop browser's User-Agent.
pub const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A minimal HTTP/1.1 stand-in for a remote service (amzn.to, a webhook
/// receiver): answers every request with `respond(path)` = (status line,
/// extra headers) and records the paths it saw. It serves until the test
/// process ends.
pub struct StandIn {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Request paths seen, in order.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StandIn {
    /// Starts the stand-in on 127.0.0.1:0.
    pub fn start(respond: impl Fn(&str) -> (&'static str, String) + Send + 'static) -> StandIn {
        stand_in_with_body(move |path, _| {
            let (status, headers) = respond(path);
            (status, headers, String::new())
        })
    }
}

/// A [`StandIn`] that answers with a body and sees the request headers:
/// `respond(path, headers)` = (status line, extra headers, body), where
/// `headers` are the request's header lines, names lower-cased
/// (`authorization: Bearer …`). Used as a network API (Awin) stand-in.
pub fn stand_in_with_body(
    respond: impl Fn(&str, &[String]) -> (&'static str, String, String) + Send + 'static,
) -> StandIn {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                let header = header.trim_end();
                headers.push(match header.split_once(':') {
                    Some((name, value)) => format!("{}:{value}", name.to_ascii_lowercase()),
                    None => header.to_owned(),
                });
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            log.lock().unwrap().push(path.clone());
            let (status, extra, body) = respond(&path, &headers);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    StandIn { base, seen }
}

/// A fresh PostgreSQL database on the server `LINKWRIGHT_TEST_DATABASE_URL`
/// names (scripts/test starts a throwaway cluster and sets it), made and
/// dropped with `psql`. Panics when the variable is unset: a test that
/// needs PostgreSQL is never skipped.
pub struct PgDatabase {
    /// The new database's URL.
    pub url: String,
    server: String,
    name: String,
}

impl PgDatabase {
    /// Creates the database.
    pub fn create() -> PgDatabase {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let server = std::env::var("LINKWRIGHT_TEST_DATABASE_URL").unwrap_or_else(|_| {
            panic!(
                "set LINKWRIGHT_TEST_DATABASE_URL to a PostgreSQL server URL, or run scripts/test, \
                 which starts a cluster"
            )
        });
        let name = format!(
            "lw_it_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        psql(&server, &format!("CREATE DATABASE {name}"));
        let (base, _) = server.rsplit_once('/').expect("a URL ending in /database");
        PgDatabase {
            url: format!("{base}/{name}"),
            server,
            name,
        }
    }

    /// The first column of the first row of a query, as text.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.server.as_str(),
                "-qtAc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql (Debian's postgresql-client): {e}"));
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
