//! Probing a plugin in a child process before this process loads it.
//!
//! Plugin code runs in the host's process: a plugin that calls `abort()`,
//! dereferences a wild pointer or never returns from `init` takes the whole
//! server with it, and no `catch_unwind` or time budget can stop that from
//! inside. So before loading a plugin, the host can run a child process (the
//! `linkwright` binary again, with a hidden subcommand that calls
//! [`serve`]) that loads the plugin, makes the provider's instance, asks for
//! its description and builds a fixed set of [`probe_inputs`] through it,
//! each call within the time budget, reporting every step on its standard
//! output. The parent ([`run`]) refuses the plugin if the child dies (a
//! signal, a non-zero exit) or stops answering, naming the step it was at.
//!
//! What this catches: a plugin that crashes or hangs while loading, while
//! making its instance, or on ordinary inputs. What it cannot catch: one that
//! crashes only on some other input later; plugin calls at link creation run
//! in this process (within a time budget, see [`crate::budget`]), so such a
//! crash ends the server (systemd restarts it).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{BuildRequest, LoadOptions, PluginRef, ProviderConfig, Providers};

/// How to start a probe: a program and its first arguments (the binary's
/// hidden subcommand); [`run`] appends `--file`, `--name`, `--budget-ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeCommand {
    /// The program (the running executable).
    pub program: PathBuf,
    /// Its arguments before the probe's own.
    pub args: Vec<OsString>,
}

/// Time a child has, beyond the budget of the call it is in, to report its
/// next step: starting the process and loading the library included.
const STEP_GRACE: Duration = Duration::from_secs(10);

/// Marks the lines of the child's protocol on its standard output.
const STEP: &str = "probe-step ";
const DONE: &str = "probe-ok";
const TIMED_OUT: &str = "probe-timeout";

/// Probes the plugin at `file` with a provider's settings (JSON): `Ok` if
/// the child went through every step, else why not (for the refusal).
pub fn run(
    command: &ProbeCommand,
    file: &Path,
    settings_json: &str,
    budget: Duration,
) -> Result<(), String> {
    let mut child = Command::new(&command.program)
        .args(&command.args)
        .arg("--file")
        .arg(file)
        .arg("--budget-ms")
        .arg(budget.as_millis().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start the probe `{}`: {e}",
                command.program.display()
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that died already is reported below by its status.
        let _ = stdin.write_all(settings_json.as_bytes());
    }
    let (lines, next_line) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = e.by_ref().take(64 * 1024).read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    let mut step = "starting and loading the plugin".to_owned();
    let (mut done, mut timed_out) = (false, false);
    let outcome = loop {
        match next_line.recv_timeout(budget + STEP_GRACE) {
            Ok(line) => {
                if let Some(s) = line.strip_prefix(STEP) {
                    step = s.to_owned();
                } else if line == DONE {
                    done = true;
                } else if line == TIMED_OUT {
                    timed_out = true;
                }
            }
            // Standard output closed: the child has ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                break Some(format!(
                    "it hung: no answer within {} ms while {step}; the child was killed",
                    (budget + STEP_GRACE).as_millis()
                ));
            }
        }
    };
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the probe: {e}"))?;
    let said = stderr
        .and_then(|t| t.join().ok())
        .and_then(|text| last_line(&text))
        .map(|l| format!(" (it said: {l})"))
        .unwrap_or_default();
    if let Some(hung) = outcome {
        return Err(hung);
    }
    if timed_out {
        return Err(format!(
            "it hung: no answer within the {} ms budget while {step}",
            budget.as_millis()
        ));
    }
    if let Some(signal) = status.signal() {
        return Err(format!(
            "it was killed by signal {signal} ({}) while {step}{said}",
            signal_name(signal)
        ));
    }
    if !status.success() || !done {
        return Err(format!("it ended with {status} while {step}{said}"));
    }
    Ok(())
}

/// The last non-empty line of a text, at most 300 bytes of it.
fn last_line(text: &str) -> Option<String> {
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    let mut end = line.len().min(300);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    Some(line[..end].to_owned())
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        _ => "a signal",
    }
}

/// The inputs a probe builds, besides one URL per host name the plugin's
/// description mentions: product URLs of several shapes, bare ids, inputs
/// that are not URLs, non-ASCII, and the longest input the host accepts.
pub fn probe_inputs() -> Vec<String> {
    let mut inputs: Vec<String> = [
        "https://www.amazon.com/dp/B08N5WRWNW",
        "https://www.amazon.de/Some-Product/dp/B08N5WRWNW/ref=sr_1_1?tag=other-21",
        "B08N5WRWNW",
        "https://example.com/",
        "https://www.example.com/product/123?colour=red&size=m#reviews",
        "http://127.0.0.1:8080/x",
        "https://user:pass@shop.example:8443/a/../b/%2e%2e/?q=%00",
        "https://xn--bcher-kva.example/bücher?ß=ü",
        "not a url",
        "javascript:alert(1)",
        "https://",
    ]
    .map(str::to_owned)
    .to_vec();
    inputs.push(format!(
        "https://example.com/{}",
        "a".repeat(crate::MAX_INPUT_LEN - "https://example.com/".len())
    ));
    inputs
}

/// Host names in a plugin's description (any string value that looks like
/// one, at most 16), to probe the inputs it says it accepts.
fn described_hosts(description: &serde_json::Value, hosts: &mut Vec<String>) {
    match description {
        serde_json::Value::String(s) => {
            let looks_like_host = s.contains('.')
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if looks_like_host && hosts.len() < 16 && !hosts.contains(s) {
                hosts.push(s.clone());
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|v| described_hosts(v, hosts));
        }
        serde_json::Value::Object(map) => map.values().for_each(|v| described_hosts(v, hosts)),
        _ => {}
    }
}

/// The child's side: loads the plugin at `file` as provider `probe` with
/// `settings_json`, describes it and builds every probe input with it,
/// writing a `probe-step` line to `out` before each step and `probe-ok` at
/// the end. Returns the process's exit code: 0 when every step answered
/// (a plugin's error answers are fine: the parent refuses only crashes and
/// hangs), 1 when a call overran the budget. A plugin the host refuses to
/// load is not this probe's business: the parent's own load says why.
pub fn serve(file: &Path, settings_json: &str, budget: Duration, out: &mut dyn Write) -> i32 {
    let mut step = |text: &str| {
        let _ = writeln!(out, "{STEP}{text}");
        let _ = out.flush();
    };
    step("loading the plugin and making its instance");
    let settings = serde_json::from_str(settings_json).unwrap_or(serde_json::Value::Null);
    let config = ProviderConfig {
        index: 0,
        name: "probe".to_owned(),
        plugin: PluginRef::Path(file.to_owned()),
        settings,
        link_hosts: Vec::new(),
    };
    let providers = Providers::load_with(
        &[config],
        &[],
        &LoadOptions {
            call_budget: budget,
            probe: None,
        },
    );
    let Some(provider) = providers.get("probe") else {
        step("refused by the host");
        let _ = writeln!(out, "{DONE}");
        return 0;
    };
    step("describing the instance");
    if provider.disabled() == Some(crate::Disabled::TimedOut) {
        let _ = writeln!(out, "{TIMED_OUT}");
        return 1;
    }
    let mut hosts = Vec::new();
    if let Some(description) = provider.describe() {
        described_hosts(&description, &mut hosts);
    }
    let mut inputs = probe_inputs();
    for host in &hosts {
        inputs.push(format!("https://{host}/"));
        inputs.push(format!("https://{host}/dp/B08N5WRWNW?ref=x"));
    }
    let params = [("tag".to_owned(), "probe-20".to_owned())];
    for input in &inputs {
        for (marketplace, params) in [(None, &[][..]), (Some("amazon.de"), &params[..])] {
            let shown: String = input.chars().take(80).collect();
            step(&format!("building `{shown}`"));
            let _ = providers.build(&BuildRequest {
                input,
                marketplace,
                params,
                provider: Some("probe"),
            });
            if provider.disabled() == Some(crate::Disabled::TimedOut) {
                let _ = writeln!(out, "{TIMED_OUT}");
                return 1;
            }
        }
    }
    let _ = writeln!(out, "{DONE}");
    0
}
