//! Load benchmark of the whole server: linkwright's redirect path (`GET /{code}`,
//! every click logged) against a bare hyper server that answers a constant 302,
//! side by side in one run on loopback, both driven by `wrk` with the same
//! settings (see docs/ARCHITECTURE.md, "Performance budgets").
//!
//! After the rounds, a localized link (issue 14: Amazon localization, the
//! visitor's country from the trusted header every run sends) is measured
//! against the plain one on the same pinned server: server CPU per redirect
//! ≤ 1.05× the plain link's.
//!
//! `cargo bench --bench load` runs it; `LOAD_SECS` (default 5),
//! `LOAD_CONNS` (default 64) and `LOAD_ROUNDS` (default 7) change the
//! duration and connection count of the measured runs and how many rounds
//! of (bare, linkwright) there are; the order alternates by round. Many
//! short rounds rather than a few long ones: on a shared 2-core VM a round's
//! ratio swings by ±10% (the bare server alone moves that much between
//! runs), and the median of seven moves much less than that of three.
//! Without `--bench` among its arguments
//! (as `cargo test --all-targets` runs it) it exits at once.
//!
//! The bare server runs in its own process: this binary re-executes itself with
//! `--bare-302-server`. linkwright is the release binary cargo builds for
//! benches, started with a temporary config and data dir.
//!
//! Two modes, each round running both servers in each: *unpinned* (the
//! servers and wrk share every core as the scheduler likes) and *pinned*
//! (each server confined to core 0 with `taskset -a -p`, every thread of it,
//! the click writer included; wrk to core 1 with `taskset -c 1`). Unpinned,
//! linkwright borrows wrk's core and looks cheaper than it is; pinned, its
//! whole cost is on one core, as on a loaded host (without 2 cores or
//! `taskset`, only unpinned runs are made). `LOAD_LINKWRIGHT` = the path of another
//! linkwright binary to measure (its plugins beside it), to compare builds.
//!
//! Budgets, judged on the pinned mode, as ratios linkwright / bare measured
//! in the same run (per round, then the median over rounds): server CPU per
//! redirect ≤ 1.15×, p99 latency ≤ 1.3×; and zero dropped clicks, every
//! click written. The unpinned mode's throughput and p99 ratios are
//! reported beside them. A failed budget is printed loudly, but the exit
//! status stays 0: this is a measurement, not a test. The exit status is
//! non-zero only when the benchmark itself could not run.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};

/// The argument that turns this binary into the bare 302 server.
const BARE_SERVER_FLAG: &str = "--bare-302-server";
/// What the bare server answers; the same shape (and about the same length) as
/// linkwright's tracked URL with a click ID.
const BARE_LOCATION: &str = "https://www.amazon.com/dp/B08N5WRWNW?tag=x-20&ascsubtag=0000000000000";
const LINK_CODE: &str = "bench1";
/// The same product, localized (issue 14): a shopper from DE (the country
/// header every wrk run sends) lands on its amazon.de target.
const LOCALIZED_CODE: &str = "bench2";
const LINK_INPUT: &str = "https://www.amazon.com/dp/B08N5WRWNW";
/// Sent by every run: linkwright trusts it (`server.trusted_country_header`),
/// so the plain link records the country and the localized one routes by it.
const COUNTRY_HEADER: &str = "cf-ipcountry: DE";
/// Pinned: a localized link's server CPU per redirect over a plain link's.
const LOCALIZED_CPU_BUDGET: f64 = 1.05;
/// Sent by wrk and by the sanity requests, so that linkwright takes the click
/// path (a browser) and not the bot path (no sub-ID, no click logged).
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(15);
const WARMUP_SECS: u64 = 2;
/// Rounds of (bare, linkwright) measured runs; `LOAD_ROUNDS` overrides.
const ROUNDS: usize = 7;
const WRK_THREADS: u32 = 2;

/// Unpinned, reported: linkwright's throughput over bare's.
const THROUGHPUT_BUDGET: f64 = 0.90;
/// Pinned: linkwright's server CPU per redirect over bare's.
const PINNED_CPU_BUDGET: f64 = 1.15;
/// Pinned: linkwright's p99 over bare's.
const PINNED_P99_BUDGET: f64 = 1.3;
/// Above this much CPU (in cores) taken by other processes during a run, the
/// report says the run was disturbed.
const DISTURBED_CORES: f64 = 0.1;
const P99_BUDGET: f64 = 1.5;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == BARE_SERVER_FLAG) {
        return bare::main();
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets`: nothing heavy here.
        self_check();
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nload benchmark could not run: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The measured-run settings, from the environment.
#[derive(Debug, Clone, Copy)]
struct Settings {
    secs: u64,
    conns: u32,
    rounds: usize,
    unpinned: bool,
    pinned: bool,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let secs = env_number("LOAD_SECS", 5)?;
        let conns = env_number("LOAD_CONNS", 64)?;
        let rounds = env_number("LOAD_ROUNDS", ROUNDS)?;
        let pinned = nproc() >= 2 && on_path("taskset");
        if !pinned {
            println!("the pinned mode needs 2 cores and taskset: measuring unpinned only");
        }
        ensure!(secs > 0, "LOAD_SECS must be at least 1");
        ensure!(rounds > 0, "LOAD_ROUNDS must be at least 1");
        ensure!(
            conns >= WRK_THREADS,
            "LOAD_CONNS must be at least {WRK_THREADS} (wrk's thread count)"
        );
        Ok(Self {
            secs,
            conns,
            rounds,
            unpinned: true,
            pinned,
        })
    }

    /// wrk's arguments for a run of `secs` seconds against `url`.
    fn wrk_args(&self, secs: u64, url: &str) -> Vec<String> {
        vec![
            format!("-t{WRK_THREADS}"),
            format!("-c{}", self.conns),
            format!("-d{secs}s"),
            "--latency".to_owned(),
            "-H".to_owned(),
            format!("User-Agent: {USER_AGENT}"),
            "-H".to_owned(),
            COUNTRY_HEADER.to_owned(),
            url.to_owned(),
        ]
    }

    /// The wrk command line as a shell would take it.
    fn wrk_command(&self, url: &str) -> String {
        let args = self.wrk_args(self.secs, url);
        let quoted: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect();
        format!("wrk {}", quoted.join(" "))
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn run() -> Result<()> {
    let settings = Settings::from_env()?;
    ensure_wrk()?;
    // Declared first, dropped last: the servers are stopped before it goes.
    let tmp = TempDir::new("linkwright-load")?;

    let mut bare = start_bare_server(&tmp)?;
    let mut lw = start_linkwright(&tmp)?;
    let bare_url = format!("http://{}/{LINK_CODE}", bare.addr);
    let lw_url = format!("http://{}/{LINK_CODE}", lw.addr);
    println!(
        "bare hyper 302 server: pid {}, {bare_url}",
        bare.server.pid()
    );
    println!(
        "linkwright: pid {}, {lw_url} (admin http://{})",
        lw.server.pid(),
        lw.admin
    );

    let sample = check_redirects(&bare.addr, &lw.addr)?;
    let mut wrk_requests_lw: u64 = sample.lw_requests;

    println!("\nwarming up ({WARMUP_SECS} s each) ...");
    run_wrk(&settings.wrk_args(WARMUP_SECS, &bare_url))?;
    wrk_requests_lw += run_wrk(&settings.wrk_args(WARMUP_SECS, &lw_url))?.requests;

    let mut bare_runs = Vec::new();
    let mut lw_runs = Vec::new();
    let mut bare_pinned = Vec::new();
    let mut lw_pinned = Vec::new();
    let modes: Vec<Pin> = [
        (settings.unpinned, Pin::Unpinned),
        (settings.pinned, Pin::Pinned),
    ]
    .into_iter()
    .filter_map(|(on, mode)| on.then_some(mode))
    .collect();
    for round in 1..=settings.rounds {
        // The order alternates (bare first in odd rounds, linkwright first
        // in even ones), so that neither server always runs in the other's
        // wake (the click writer finishing a round's clicks, the kernel
        // writing back its pages) and a drift of the host's speed through
        // the run falls on both alike.
        let bare_first = round % 2 == 1;
        let order = if bare_first {
            "bare, then linkwright"
        } else {
            "linkwright, then bare"
        };
        println!(
            "round {round}/{}: {order} ({} s each) ...",
            settings.rounds, settings.secs
        );
        for &pin in &modes {
            let (bare_runs, lw_runs) = match pin {
                Pin::Unpinned => (&mut bare_runs, &mut lw_runs),
                Pin::Pinned => (&mut bare_pinned, &mut lw_pinned),
            };
            if bare_first {
                bare_runs.push(measure(&bare.server, &settings, &bare_url, pin)?);
            }
            let m = measure(&lw.server, &settings, &lw_url, pin)?;
            wrk_requests_lw += m.wrk.requests;
            lw_runs.push(m);
            if !bare_first {
                bare_runs.push(measure(&bare.server, &settings, &bare_url, pin)?);
            }
        }
    }

    // Localized against plain, pinned, linkwright alone: the cost of
    // targeting on the redirect path.
    let mut localized = Vec::new();
    if settings.pinned {
        let localized_url = format!("http://{}/{LOCALIZED_CODE}", lw.addr);
        let r = http_get(&lw.addr, &format!("/{LOCALIZED_CODE}"))?;
        let location = r.header("location").unwrap_or_default().to_owned();
        ensure!(
            location.starts_with("https://www.amazon.de/dp/B08N5WRWNW?tag="),
            "the localized link did not send DE to amazon.de: {location:?}"
        );
        println!("\nlocalized ({localized_url}, DE → {location}) against plain, pinned ...");
        for round in 1..=settings.rounds {
            let plain_first = round % 2 == 1;
            let mut pair = [None, None];
            for i in 0..2 {
                let which = usize::from(plain_first == (i == 1));
                let url = if which == 0 { &lw_url } else { &localized_url };
                let m = measure(&lw.server, &settings, url, Pin::Pinned)?;
                wrk_requests_lw += m.wrk.requests;
                pair[which] = Some(m.cpu_us_per_request);
            }
            if let [Some(plain), Some(local)] = pair {
                println!(
                    "  round {round}: plain {plain:.2} µs, localized {local:.2} µs per redirect ({:.3}×)",
                    local / plain
                );
                localized.push(local / plain);
            }
        }
    }

    let clicks = settle_click_log(&lw.admin)?;
    println!("\nstopping linkwright with SIGTERM ...");
    let status = lw.server.terminate(SHUTDOWN_TIMEOUT)?;
    let shutdown_output = lw.server.output_since_listening();
    let shutdown_log = if status.success() {
        String::new()
    } else {
        lw.server.log_tail()
    };
    bare.server.stop();

    let report = Report {
        settings,
        bare_url,
        lw_url,
        sample,
        bare_runs,
        lw_runs,
        bare_pinned,
        lw_pinned,
        clicks,
        wrk_requests_lw,
        exit: status,
    };
    report.print();
    if !localized.is_empty() {
        localized.sort_by(f64::total_cmp);
        let median = localized[localized.len() / 2];
        println!(
            "\nlocalized link / plain link, server CPU per redirect (pinned), median of {}: {median:.3}× (budget ≤ {LOCALIZED_CPU_BUDGET}×): {}",
            localized.len(),
            if median <= LOCALIZED_CPU_BUDGET {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
    if !shutdown_output.is_empty() {
        println!("\nlinkwright's stdout after listening:");
        for line in shutdown_output.iter().rev().take(20).rev() {
            println!("  {line}");
        }
    }
    if !shutdown_log.is_empty() {
        println!("{shutdown_log}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// wrk

/// Installs wrk with apt-get if it is not on PATH.
fn ensure_wrk() -> Result<()> {
    if on_path("wrk") {
        return Ok(());
    }
    let script =
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq wrk";
    let mut cmd = if is_root() {
        Command::new("sh")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "sh"]);
        sudo
    };
    println!("wrk is not on PATH: installing it (apt-get install wrk) ...");
    let status = cmd.args(["-c", script]).status();
    match status {
        Ok(s) if s.success() && on_path("wrk") => Ok(()),
        Ok(s) => bail!(
            "wrk is not installed and `apt-get install wrk` failed ({s}{}); install wrk yourself and run again",
            if is_root() { "" } else { ", via sudo -n" }
        ),
        Err(e) => bail!(
            "wrk is not installed and apt-get could not be started ({e}); install wrk yourself and run again"
        ),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

#[allow(unsafe_code)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// What one wrk run reported.
#[derive(Debug, Clone, Default, PartialEq)]
struct WrkResult {
    requests: u64,
    requests_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// "Non-2xx or 3xx responses" (absent: 0).
    bad_status: u64,
    /// connect + read + write + timeout (absent: 0).
    socket_errors: u64,
}

fn run_wrk(args: &[String]) -> Result<WrkResult> {
    run_wrk_on(args, Pin::Unpinned)
}

/// How a measured run places the server and wrk on the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pin {
    /// Wherever the scheduler puts them.
    Unpinned,
    /// The server on core 0, wrk on core 1.
    Pinned,
}

/// Confines every thread of process `pid` to `cpus` (a taskset list).
fn set_affinity(pid: u32, cpus: &str) -> Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .context("could not run taskset")?;
    ensure!(
        out.status.success(),
        "taskset -a -p -c {cpus} {pid} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn run_wrk_on(args: &[String], pin: Pin) -> Result<WrkResult> {
    let mut cmd = match pin {
        Pin::Unpinned => Command::new("wrk"),
        Pin::Pinned => {
            let mut c = Command::new("taskset");
            c.args(["-c", "1", "wrk"]);
            c
        }
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("could not start wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk {} failed ({}):\n{stdout}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&stdout).with_context(|| format!("could not read wrk's output:\n{stdout}"))
}

fn parse_wrk(out: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let (mut rps, mut p50, mut p99, mut requests) = (None, None, None, None);
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if first == "50%" {
            p50 = words.next().and_then(parse_wrk_duration_us);
        } else if first == "99%" {
            p99 = words.next().and_then(parse_wrk_duration_us);
        } else if line.contains(" requests in ") {
            requests = first.parse().ok();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.bad_status = v.trim().parse().context("Non-2xx or 3xx responses")?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    r.requests_per_sec = rps.context("no `Requests/sec:` line")?;
    r.p50_us = p50.context("no 50% latency (was --latency given?)")?;
    r.p99_us = p99.context("no 99% latency (was --latency given?)")?;
    r.requests = requests.context("no `N requests in` line")?;
    Ok(r)
}

/// wrk's durations: "812.00us", "1.23ms", "2.00s", "1.50m".
fn parse_wrk_duration_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(number * scale)
}

// ---------------------------------------------------------------------------
// Server processes

/// A server child process; killed (and reaped) when dropped, on every path.
#[derive(Debug)]
struct Server {
    name: &'static str,
    child: Child,
    /// The child's stdout lines, read by a thread.
    lines: Receiver<String>,
    /// The child's stderr goes here.
    log: PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `timeout`).
    fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        send_signal(self.pid(), libc::SIGTERM)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.stop();
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM; killed it{}",
                    self.name,
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (if still running) and reaps it.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Whatever the child printed on stdout after the lines already taken,
    /// up to its end of output (once it has exited) or for at most 2 s.
    fn output_since_listening(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut lines = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        lines
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = &lines[lines.len().saturating_sub(30)..];
        format!(
            "\n--- {} stderr (last lines) ---\n{}",
            self.name,
            tail.join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill has no memory-safety preconditions; the pid is our own
    // child, not yet reaped, so it cannot have been reused.
    let rc = unsafe { libc::kill(pid, signal) };
    ensure!(
        rc == 0,
        "kill({pid}, {signal}) failed: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Starts `cmd` with stdout piped (read line by line by a thread) and stderr
/// to `log`. The child is killed if this process dies.
fn spawn_server(name: &'static str, mut cmd: Command, log: &Path) -> Result<Server> {
    let stderr = fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {name} ({cmd:?})"))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(Server {
        name,
        child,
        lines,
        log: log.to_owned(),
    })
}

/// Asks the kernel to SIGKILL the child if the benchmark dies without
/// cleaning up (e.g. killed itself), so no server outlives it.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl,
    // which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits until the server has printed a line starting with each prefix (in
/// any order, other lines skipped) and returns the rest of each such line.
fn wait_for_listen_line(server: &Server, prefixes: &[&str]) -> Result<Vec<String>> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    let mut found: Vec<Option<String>> = vec![None; prefixes.len()];
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match server.lines.recv_timeout(left) {
            Ok(line) => {
                for (prefix, slot) in prefixes.iter().zip(found.iter_mut()) {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        *slot = Some(rest.trim().to_owned());
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => bail!(
                "{} printed no {prefixes:?} line within {LISTEN_TIMEOUT:?}{}",
                server.name,
                server.log_tail()
            ),
            Err(RecvTimeoutError::Disconnected) => bail!(
                "{} closed its stdout (exited?) before printing {prefixes:?}{}",
                server.name,
                server.log_tail()
            ),
        }
    }
    Ok(found.into_iter().flatten().collect())
}

struct Bare {
    server: Server,
    addr: String,
}

fn start_bare_server(tmp: &TempDir) -> Result<Bare> {
    let exe = std::env::current_exe().context("current_exe")?;
    let mut cmd = Command::new(exe);
    cmd.arg(BARE_SERVER_FLAG);
    let server = spawn_server("bare hyper 302 server", cmd, &tmp.path.join("bare.log"))?;
    let addr = wait_for_listen_line(&server, &["listening http://"])?.remove(0);
    Ok(Bare { server, addr })
}

struct Linkwright {
    server: Server,
    addr: String,
    admin: String,
}

fn start_linkwright(tmp: &TempDir) -> Result<Linkwright> {
    let bin = std::env::var("LOAD_LINKWRIGHT")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_linkwright").to_owned());
    let bin = bin.as_str();
    let config = tmp.path.join("config.toml");
    let data = tmp.path.join("data");
    let text = format!(
        "[server]\ntrusted_country_header = \"cf-ipcountry\"\n\n{}",
        include_str!("../config.toml")
    );
    fs::write(&config, text).context("write config")?;
    fs::create_dir_all(&data).context("create data dir")?;
    let common = |cmd: &mut Command| {
        cmd.env_remove("LINKWRIGHT_LOG")
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data);
    };

    for (code, localize) in [(LINK_CODE, "false"), (LOCALIZED_CODE, "true")] {
        let mut create = Command::new(bin);
        create.args(["links", "create"]);
        common(&mut create);
        create.args(["--code", code, "--localize", localize, LINK_INPUT]);
        let out = create
            .output()
            .with_context(|| format!("could not run {bin}"))?;
        ensure!(
            out.status.success(),
            "`linkwright links create` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "created link {code} (localize {localize}): {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }

    let mut serve = Command::new(bin);
    serve.arg("serve");
    common(&mut serve);
    serve.args([
        "--public-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    let server = spawn_server("linkwright", serve, &tmp.path.join("linkwright.log"))?;
    let mut addrs = wait_for_listen_line(&server, &["public http://", "admin http://"])?;
    let admin = addrs.pop().unwrap();
    let addr = addrs.pop().unwrap();
    Ok(Linkwright {
        server,
        addr,
        admin,
    })
}

// ---------------------------------------------------------------------------
// Measuring

#[derive(Debug, Clone)]
struct Measurement {
    wrk: WrkResult,
    cpu_us_per_request: f64,
    /// Of `cpu_us_per_request`, what linkwright's click-log writer thread
    /// took (none for the bare server).
    writer_us_per_request: Option<f64>,
    /// Where the machine's CPU time went during the run, in cores (CPU
    /// seconds per wall second): the server, wrk, everything else.
    server_cores: f64,
    wrk_cores: f64,
    other_cores: f64,
    /// Time the hypervisor gave to other guests (a VM's "steal"), in cores.
    steal_cores: f64,
}

/// One wrk run, with the server's CPU time around it, and the machine's, so
/// that a run disturbed by other processes shows.
fn measure(server: &Server, settings: &Settings, url: &str, pin: Pin) -> Result<Measurement> {
    let pid = server.pid();
    if pin == Pin::Pinned {
        set_affinity(pid, "0")?;
    }
    let m = measure_run(server, settings, url, pin);
    if pin == Pin::Pinned {
        set_affinity(pid, &format!("0-{}", nproc() - 1))?;
    }
    m
}

fn measure_run(server: &Server, settings: &Settings, url: &str, pin: Pin) -> Result<Measurement> {
    let pid = server.pid();
    let tick = 1.0 / clock_ticks_per_sec() as f64;
    let machine_before = machine_cpu_ticks()?;
    let wrk_before = children_cpu_secs();
    let before = proc_cpu_ticks(pid)?;
    let writer_before = thread_cpu_ticks(pid, WRITER_THREAD);
    let start = Instant::now();
    let wrk = run_wrk_on(&settings.wrk_args(settings.secs, url), pin)?;
    let wall = start.elapsed().as_secs_f64();
    let after = proc_cpu_ticks(pid)?;
    let writer_after = thread_cpu_ticks(pid, WRITER_THREAD);
    let wrk_secs = children_cpu_secs() - wrk_before;
    let machine_after = machine_cpu_ticks()?;

    let server_secs = after.saturating_sub(before) as f64 * tick;
    let busy_secs = machine_after.busy.saturating_sub(machine_before.busy) as f64 * tick;
    let steal_secs = machine_after.steal.saturating_sub(machine_before.steal) as f64 * tick;
    let per_request = |secs: f64| secs * 1e6 / wrk.requests.max(1) as f64;
    Ok(Measurement {
        cpu_us_per_request: per_request(server_secs),
        writer_us_per_request: writer_before
            .zip(writer_after)
            .map(|(b, a)| per_request(a.saturating_sub(b) as f64 * tick)),
        wrk,
        server_cores: server_secs / wall,
        wrk_cores: wrk_secs / wall,
        other_cores: (busy_secs - server_secs - wrk_secs).max(0.0) / wall,
        steal_cores: steal_secs / wall,
    })
}

/// The machine's CPU time from /proc/stat, in clock ticks. With tick-based CPU
/// accounting (the usual kernel config, without IRQ_TIME_ACCOUNTING) the irq
/// and softirq ticks are also counted in the interrupted process's stime, so
/// busy − server − wrk is what every other process took.
#[derive(Debug, Clone, Copy)]
struct MachineTicks {
    /// user + nice + system + irq + softirq (guest time is inside user).
    busy: u64,
    steal: u64,
}

fn machine_cpu_ticks() -> Result<MachineTicks> {
    let stat = fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no `cpu` line in /proc/stat")?;
    // cpu user nice system idle iowait irq softirq steal ...
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    Ok(MachineTicks {
        busy: get(0) + get(1) + get(2) + get(5) + get(6),
        steal: get(7),
    })
}

/// CPU seconds of this process's children that have been waited for (that is
/// wrk's runs, not the servers, which are still running).
#[allow(unsafe_code)]
fn children_cpu_secs() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which
    // points to one; on failure it writes nothing and the zeroed value stays.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The name (as `/proc/PID/task/TID/comm` shows it, cut to 15 bytes) of
/// linkwright's click-log writer thread.
const WRITER_THREAD: &str = "click-log-write";

/// utime + stime of the threads of `pid` named `name`, in clock ticks; none
/// if it has no such thread.
fn thread_cpu_ticks(pid: u32, name: &str) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = None;
    for task in tasks.flatten() {
        let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let ticks = stat_cpu_ticks(&task.path().join("stat")).ok()?;
            *total.get_or_insert(0) += ticks;
        }
    }
    total
}

/// utime + stime of a process (all its threads), in clock ticks.
fn proc_cpu_ticks(pid: u32) -> Result<u64> {
    stat_cpu_ticks(Path::new(&format!("/proc/{pid}/stat")))
}

/// utime + stime from a `/proc` `stat` file, in clock ticks.
fn stat_cpu_ticks(path: &Path) -> Result<u64> {
    let path = path.display();
    let stat = fs::read_to_string(path.to_string()).with_context(|| format!("read {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count
    // from after the last ')'. Field 3 (state) is then index 0, so utime
    // (field 14) is index 11 and stime (field 15) index 12.
    let (_, rest) = stat.rsplit_once(')').context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no field {i} in {path}"))
    };
    Ok(field(11)? + field(12)?)
}

#[allow(unsafe_code)]
fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// A response from `http_get`.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.0 GET (so the body is neither chunked nor kept alive).
fn http_get(addr: &str, path: &str) -> Result<Response> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: {USER_AGENT}\r\n{COUNTRY_HEADER}\r\nAccept: */*\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("read GET http://{addr}{path}"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?} from http://{addr}{path}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// What the sanity requests saw before the load.
#[derive(Debug)]
struct Sample {
    bare_location: String,
    lw_locations: [String; 2],
    /// Requests sent to linkwright's public address.
    lw_requests: u64,
}

/// One GET to the bare server and two to linkwright: both must answer 302 with
/// `Cache-Control: private, no-store` and the product URL; linkwright's two
/// `Location`s must differ (a fresh click ID each).
fn check_redirects(bare: &str, lw: &str) -> Result<Sample> {
    let check = |name: &str, addr: &str| -> Result<String> {
        let r = http_get(addr, &format!("/{LINK_CODE}"))?;
        ensure!(
            r.status == 302,
            "{name} answered {} to GET /{LINK_CODE} (want 302): {r:?}",
            r.status
        );
        let location = r.header("location").unwrap_or_default().to_owned();
        ensure!(
            location.starts_with(LINK_INPUT),
            "{name}: unexpected Location {location:?}"
        );
        let cc = r.header("cache-control").unwrap_or_default();
        ensure!(
            cc.contains("no-store"),
            "{name}: Cache-Control {cc:?} (want private, no-store)"
        );
        Ok(location)
    };
    let bare_location = check("bare server", bare)?;
    let lw_locations = [check("linkwright", lw)?, check("linkwright", lw)?];
    ensure!(
        lw_locations[0] != lw_locations[1],
        "linkwright answered the same Location twice (no fresh click ID?): {}",
        lw_locations[0]
    );
    Ok(Sample {
        bare_location,
        lw_locations,
        lw_requests: 2,
    })
}

/// linkwright's click-log counters once the log has caught up.
#[derive(Debug, Clone, Default)]
struct Clicks {
    redirects: f64,
    written: f64,
    dropped: f64,
    /// Whether written + dropped reached redirects within FLUSH_TIMEOUT.
    settled: bool,
    /// Metric families that /metrics did not show (read as 0).
    absent: Vec<&'static str>,
    /// The non-zero `linkwright_redirects_total` lines, labels and all.
    redirect_lines: Vec<String>,
}

const REDIRECTS: &str = "linkwright_redirects_total";
const WRITTEN: &str = "linkwright_clicklog_written_total";
const DROPPED: &str = "linkwright_clicklog_dropped_total";

/// Reads /metrics until every served redirect is accounted for in the click
/// log (written or dropped): the background writer flushes in batches, so the
/// last batch may land a moment after wrk stops. Gives up after FLUSH_TIMEOUT
/// and reports what it saw.
fn settle_click_log(admin: &str) -> Result<Clicks> {
    let deadline = Instant::now() + FLUSH_TIMEOUT;
    loop {
        let r = http_get(admin, "/metrics")?;
        ensure!(r.status == 200, "GET /metrics answered {}", r.status);
        let mut clicks = Clicks::default();
        let mut read = |family: &'static str| {
            scrape_metric(&r.body, family).unwrap_or_else(|| {
                clicks.absent.push(family);
                0.0
            })
        };
        let (redirects, written, dropped) = (read(REDIRECTS), read(WRITTEN), read(DROPPED));
        clicks.redirects = redirects;
        clicks.written = written;
        clicks.dropped = dropped;
        clicks.redirect_lines = r
            .body
            .lines()
            .filter(|l| l.starts_with(REDIRECTS) && !l.ends_with(" 0"))
            .map(str::to_owned)
            .collect();
        clicks.settled = redirects > 0.0 && written + dropped >= redirects;
        if clicks.settled || Instant::now() >= deadline {
            return Ok(clicks);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The sum over all label sets of a metric family in Prometheus text, or None
/// if the family has no sample.
fn scrape_metric(text: &str, family: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(family) else {
            continue;
        };
        let value = if let Some(labels) = rest.strip_prefix('{') {
            labels.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with([' ', '\t']) {
            Some(rest)
        } else {
            None // another family that shares the prefix (`_bucket`, ...)
        };
        let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) else {
            continue;
        };
        *sum.get_or_insert(0.0) += v;
    }
    sum
}

// ---------------------------------------------------------------------------
// Report

struct Report {
    settings: Settings,
    bare_url: String,
    lw_url: String,
    sample: Sample,
    bare_runs: Vec<Measurement>,
    lw_runs: Vec<Measurement>,
    bare_pinned: Vec<Measurement>,
    lw_pinned: Vec<Measurement>,
    clicks: Clicks,
    wrk_requests_lw: u64,
    exit: ExitStatus,
}

/// The best of each number over a server's runs (highest requests/s, lowest
/// latencies and CPU time), and the error counts summed over them all.
#[derive(Debug, Clone, Copy)]
struct Best {
    requests_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_request: f64,
    writer_us_per_request: Option<f64>,
    bad_status: u64,
    socket_errors: u64,
}

fn best(runs: &[Measurement]) -> Best {
    let min = |f: fn(&Measurement) -> f64| runs.iter().map(f).fold(f64::INFINITY, f64::min);
    Best {
        requests_per_sec: runs
            .iter()
            .map(|m| m.wrk.requests_per_sec)
            .fold(0.0, f64::max),
        p50_us: min(|m| m.wrk.p50_us),
        p99_us: min(|m| m.wrk.p99_us),
        cpu_us_per_request: min(|m| m.cpu_us_per_request),
        writer_us_per_request: runs
            .iter()
            .filter_map(|m| m.writer_us_per_request)
            .reduce(f64::min),
        bad_status: runs.iter().map(|m| m.wrk.bad_status).sum(),
        socket_errors: runs.iter().map(|m| m.wrk.socket_errors).sum(),
    }
}

/// Per round, linkwright's `f` over bare's.
fn paired(bare: &[Measurement], lw: &[Measurement], f: fn(&Measurement) -> f64) -> Vec<f64> {
    bare.iter().zip(lw).map(|(b, l)| f(l) / f(b)).collect()
}

/// The median of `values` (not empty).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "**FAIL**" }
}

impl Report {
    /// Per round, linkwright's `f` over bare's.
    fn paired(&self, f: fn(&Measurement) -> f64) -> Vec<f64> {
        paired(&self.bare_runs, &self.lw_runs, f)
    }

    fn print(&self) {
        let s = &self.settings;
        let bare = best(&self.bare_runs);
        let lw = best(&self.lw_runs);
        let mut out = String::new();
        let w = &mut out;

        let _ = writeln!(
            w,
            "\n================ load: redirect throughput vs bare hyper 302 ================\n"
        );
        let _ = writeln!(w, "- date: {}", utc_now());
        let _ = writeln!(w, "- machine: nproc {}, {}", nproc(), cpu_model());
        let _ = writeln!(w, "- wrk (linkwright): `{}`", s.wrk_command(&self.lw_url));
        let _ = writeln!(w, "- wrk (bare): `{}`", s.wrk_command(&self.bare_url));
        let _ = writeln!(
            w,
            "- {WARMUP_SECS} s warm-up each, then {n} rounds of bare and linkwright, back to back, the order alternating by round. The budget checks take, per round, linkwright's number over bare's, and the median of those ratios: a shared machine drifts, and a round's two runs see about the same machine. The table below shows the best of the {n} runs for each number (errors: sum)",
            n = s.rounds
        );
        let _ = writeln!(w, "- bare Location: `{}`", self.sample.bare_location);
        let _ = writeln!(
            w,
            "- linkwright Location: `{}`",
            self.sample.lw_locations[0]
        );
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "| server | requests/s | p50 | p99 | server CPU µs/request | non-2xx/3xx | socket errors |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|");
        for (name, m) in [("bare hyper 302", bare), ("linkwright", lw)] {
            let _ = writeln!(
                w,
                "| {name} | {:.0} | {} | {} | {:.1} | {} | {} |",
                m.requests_per_sec,
                fmt_us(m.p50_us),
                fmt_us(m.p99_us),
                m.cpu_us_per_request,
                m.bad_status,
                m.socket_errors
            );
        }

        if let Some(writer) = lw.writer_us_per_request {
            let _ = writeln!(
                w,
                "\nOf linkwright's server CPU, its click-log writer thread (SQLite inserts) took {writer:.2} µs per request."
            );
        }

        // Where wrk and the server share the cores (and the scheduler gives
        // each about half), the server's throughput is its CPU share over
        // its CPU per request: the throughput ratio then follows this one.
        let cpu_ratios = self.paired(|m| 1.0 / m.cpu_us_per_request);
        let _ = writeln!(
            w,
            "\nServer CPU per request, bare / linkwright (median of rounds): {:.3}.",
            median(&cpu_ratios)
        );

        let throughput_ratios = self.paired(|m| m.wrk.requests_per_sec);
        let p99_ratios = self.paired(|m| m.wrk.p99_us);
        let throughput = median(&throughput_ratios);
        let p99 = median(&p99_ratios);
        let range = |r: &[f64]| {
            let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.iter().copied().fold(0.0, f64::max);
            format!("{lo:.3}–{hi:.3}")
        };
        let c = &self.clicks;
        let errors = bare.bad_status + bare.socket_errors + lw.bad_status + lw.socket_errors;
        let logged_all = c.settled && c.written == c.redirects && c.absent.is_empty();
        let clean_exit = self.exit.success();
        let pinned = !self.lw_pinned.is_empty();
        // Judged on the pinned runs when there are some; the unpinned
        // ratios are then reported only.
        let reported = if pinned { " (unpinned, reported)" } else { "" };
        let mut checks = vec![
            (
                format!("throughput linkwright / bare (median of rounds){reported}"),
                format!("{throughput:.3} (rounds {})", range(&throughput_ratios)),
                format!("≥ {THROUGHPUT_BUDGET:.2}"),
                throughput >= THROUGHPUT_BUDGET,
            ),
            (
                format!("p99 latency linkwright / bare (median of rounds){reported}"),
                format!("{p99:.2}×"),
                format!("≤ {P99_BUDGET:.1}×"),
                p99 <= P99_BUDGET,
            ),
            (
                "dropped clicks".to_owned(),
                format!("{}", c.dropped),
                "0".to_owned(),
                c.dropped == 0.0 && !c.absent.contains(&DROPPED),
            ),
            (
                "clicks written = redirects served".to_owned(),
                format!("{} / {}", c.written, c.redirects),
                "equal".to_owned(),
                logged_all,
            ),
            (
                "exit status after SIGTERM".to_owned(),
                self.exit
                    .code()
                    .map_or_else(|| self.exit.to_string(), |c| c.to_string()),
                "0".to_owned(),
                clean_exit,
            ),
            (
                "non-2xx/3xx + socket errors (all runs)".to_owned(),
                errors.to_string(),
                "0".to_owned(),
                errors == 0,
            ),
        ];
        let list = |r: &[f64]| {
            r.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if pinned {
            let (b, l) = (&self.bare_pinned, &self.lw_pinned);
            let cpu = paired(b, l, |m| m.cpu_us_per_request);
            let p99 = paired(b, l, |m| m.wrk.p99_us);
            checks.push((
                "pinned: server CPU per redirect linkwright / bare (median of rounds)".to_owned(),
                format!("{:.3}× (rounds {})", median(&cpu), range(&cpu)),
                format!("≤ {PINNED_CPU_BUDGET:.2}×"),
                median(&cpu) <= PINNED_CPU_BUDGET,
            ));
            checks.push((
                "pinned: p99 latency linkwright / bare (median of rounds)".to_owned(),
                format!("{:.2}× (rounds {})", median(&p99), range(&p99)),
                format!("≤ {PINNED_P99_BUDGET:.1}×"),
                median(&p99) <= PINNED_P99_BUDGET,
            ));
            let (bb, lb) = (best(b), best(l));
            let _ = writeln!(
                w,
                "\nPinned (each server on core 0, every thread; wrk on core 1), best of the {} runs each:\n",
                l.len()
            );
            let _ = writeln!(
                w,
                "| server | requests/s | p50 | p99 | server CPU µs/request | of which click-log writer |"
            );
            let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|");
            for (name, m) in [("bare hyper 302", bb), ("linkwright", lb)] {
                let _ = writeln!(
                    w,
                    "| {name} | {:.0} | {} | {} | {:.2} | {} |",
                    m.requests_per_sec,
                    fmt_us(m.p50_us),
                    fmt_us(m.p99_us),
                    m.cpu_us_per_request,
                    m.writer_us_per_request
                        .map_or_else(|| "–".to_owned(), |v| format!("{v:.2}")),
                );
            }
            let _ = writeln!(
                w,
                "\nPinned, per round, linkwright / bare: server CPU per redirect {}; p99 {}; throughput {}.",
                list(&cpu),
                list(&p99),
                list(&paired(b, l, |m| m.wrk.requests_per_sec))
            );
            let _ = writeln!(
                w,
                "\n| round | server | requests/s | p50 | p99 | CPU µs/request | of which click-log writer | server CPU | wrk CPU | other processes | steal |"
            );
            let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for (i, (b, l)) in b.iter().zip(l).enumerate() {
                for (name, m) in [("bare", b), ("linkwright", l)] {
                    let _ = writeln!(
                        w,
                        "| pinned {} | {name} | {:.0} | {} | {} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                        i + 1,
                        m.wrk.requests_per_sec,
                        fmt_us(m.wrk.p50_us),
                        fmt_us(m.wrk.p99_us),
                        m.cpu_us_per_request,
                        m.writer_us_per_request
                            .map_or_else(|| "–".to_owned(), |v| format!("{v:.2}")),
                        m.server_cores,
                        m.wrk_cores,
                        m.other_cores,
                        m.steal_cores
                    );
                }
            }
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "| check | measured | budget | result |");
        let _ = writeln!(w, "|---|---:|---:|---|");
        for (name, value, budget, ok) in &checks {
            let _ = writeln!(w, "| {name} | {value} | {budget} | {} |", verdict(*ok));
        }

        let _ = writeln!(
            w,
            "\nPer round, linkwright / bare: throughput {}; p99 {}.",
            list(&throughput_ratios),
            list(&p99_ratios)
        );
        let _ = writeln!(
            w,
            "\nAll runs (CPU in cores, i.e. CPU seconds per second, of {} available):",
            nproc()
        );
        let _ = writeln!(
            w,
            "\n| round | server | requests/s | p50 | p99 | CPU µs/request | of which click-log writer | server CPU | wrk CPU | other processes | steal |"
        );
        let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut disturbed = 0.0_f64;
        for (i, (b, l)) in self.bare_runs.iter().zip(&self.lw_runs).enumerate() {
            for (name, m) in [("bare", b), ("linkwright", l)] {
                let _ = writeln!(
                    w,
                    "| {} | {name} | {:.0} | {} | {} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    i + 1,
                    m.wrk.requests_per_sec,
                    fmt_us(m.wrk.p50_us),
                    fmt_us(m.wrk.p99_us),
                    m.cpu_us_per_request,
                    m.writer_us_per_request
                        .map_or_else(|| "–".to_owned(), |v| format!("{v:.2}")),
                    m.server_cores,
                    m.wrk_cores,
                    m.other_cores,
                    m.steal_cores
                );
                disturbed = disturbed.max(m.other_cores + m.steal_cores);
            }
        }
        if disturbed > DISTURBED_CORES {
            let _ = writeln!(
                w,
                "\n!!! other processes (or the hypervisor) took up to {disturbed:.2} cores during a run: the numbers are disturbed; run again on a quiet machine"
            );
        }
        let _ = writeln!(
            w,
            "\nClick log (from /metrics, before SIGTERM): {} written, {} dropped, {} redirects served by linkwright; \
             wrk counted {} responses from it (sanity requests + warm-up + runs; connections still in flight when wrk stops are served but not counted)",
            c.written, c.dropped, c.redirects, self.wrk_requests_lw
        );
        if !c.absent.is_empty() {
            let _ = writeln!(
                w,
                "Absent from /metrics (read as 0): {}",
                c.absent.join(", ")
            );
        }
        if !c.settled {
            let _ = writeln!(
                w,
                "The click log had not caught up with the redirects {FLUSH_TIMEOUT:?} after the load stopped."
            );
        }
        if !c.redirect_lines.is_empty() {
            let _ = writeln!(w, "Non-zero {REDIRECTS} samples:");
        }
        for line in &c.redirect_lines {
            let _ = writeln!(w, "  {line}");
        }

        let failed: Vec<&str> = checks
            .iter()
            .filter(|(name, _, _, ok)| !ok && !name.ends_with("reported)"))
            .map(|(name, ..)| name.as_str())
            .collect();
        if failed.is_empty() {
            let _ = writeln!(w, "\nAll budgets PASS.");
        } else {
            let _ = writeln!(
                w,
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
            );
            for name in &failed {
                let _ = writeln!(w, "!!! FAIL: {name}");
            }
            let _ = writeln!(
                w,
                "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
            );
        }
        print!("{out}");
        if !failed.is_empty() {
            eprintln!("load benchmark: FAIL: {}", failed.join("; "));
        }
    }
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            format!("unix time {secs}")
        })
}

fn nproc() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// A directory under the system temp dir, removed when dropped.
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(prefix: &str) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// The bare server (this binary with --bare-302-server)

mod bare {
    use std::convert::Infallible;
    use std::io::Write;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::process::ExitCode;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::header::{CACHE_CONTROL, LOCATION};
    use hyper::service::service_fn;
    use hyper::{Request, Response, StatusCode, header::HeaderValue};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use tokio::net::TcpSocket;

    use super::BARE_LOCATION;

    const BACKLOG: u32 = 4096;

    pub(super) fn main() -> ExitCode {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("bare server: runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(serve()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bare server: {e}");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve() -> std::io::Result<()> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let listener = socket.listen(BACKLOG)?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening http://{}", listener.local_addr()?)?;
        stdout.flush()?;

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(true);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("bare server: accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service_fn(redirect))
                    .await;
            });
        }
    }

    async fn redirect(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::FOUND;
        let headers = response.headers_mut();
        headers.insert(LOCATION, HeaderValue::from_static(BARE_LOCATION));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        Ok(response)
    }
}

/// Checks of the parsers on fixed text, run instead of the benchmark when the
/// binary is run without `--bench` (`cargo test --all-targets`): fast, no
/// processes, no network.
fn self_check() {
    const WRK: &str = "Running 10s test @ http://127.0.0.1:40000/bench1
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.34us  300.00us  12.00ms   90.00%
    Req/Sec    65.00k     2.00k   70.00k    75.00%
  Latency Distribution
     50%  455.00us
     75%  600.00us
     90%  800.00us
     99%    1.52ms
  1300000 requests in 10.00s, 250.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec: 129987.65
Transfer/sec:     25.00MB
";
    let r = parse_wrk(WRK).unwrap();
    assert_eq!(
        r,
        WrkResult {
            requests: 1_300_000,
            requests_per_sec: 129_987.65,
            p50_us: 455.0,
            p99_us: 1520.0,
            bad_status: 7,
            socket_errors: 3,
        }
    );
    assert!(parse_wrk("Requests/sec: 1.0").is_err());
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(median(&[0.8]), 0.8);
    assert_eq!(parse_wrk_duration_us("2.00s"), Some(2e6));
    assert_eq!(parse_wrk_duration_us("7"), None);

    const METRICS: &str = "# TYPE linkwright_redirects_total counter
linkwright_redirects_total{provider=\"amazon\",bot=\"false\"} 10
linkwright_redirects_total{provider=\"amazon\",bot=\"true\"} 2
linkwright_redirects_total_other 99
linkwright_clicklog_written_total 12
linkwright_request_duration_seconds_bucket{le=\"0.001\"} 5
";
    assert_eq!(scrape_metric(METRICS, REDIRECTS), Some(12.0));
    assert_eq!(scrape_metric(METRICS, WRITTEN), Some(12.0));
    assert_eq!(scrape_metric(METRICS, DROPPED), None);
}
