//! The shipped monitoring files against a real Prometheus: the Debian
//! `prometheus` binary scrapes the real `linkwright` binary (1 s interval)
//! under a short, bounded load (human and bot clicks, a 404, a 410, `/go`, a
//! bulk job with a webhook, conversion imports). Then `promtool check
//! metrics` must pass on the live `/metrics`, and every PromQL expression of
//! `examples/monitoring/grafana-dashboard.json` and
//! `examples/monitoring/linkwright-rules.yml` is evaluated through
//! Prometheus's HTTP API: each must parse and name only metrics that exist;
//! each panel and recording rule must return a non-empty result with a
//! finite value; each alert must stay quiet on this healthy load.
//!
//! Needs `prometheus` and `promtool` on the PATH (`scripts/test` installs
//! Debian's `prometheus` package when they are missing).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BROWSER, StandIn, TestServer, client, config_with, create_key, repo_root, scratch};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

/// Grafana's variables, as the test sets them: everything of this job.
const SUBSTITUTIONS: [(&str, &str); 4] = [
    ("$__rate_interval", "1m"),
    ("$__range", "2m"),
    ("$instance", ".+"),
    ("$job", "linkwright"),
];

/// Alerts whose quiet on a healthy load depends on the machine's speed (a
/// loaded CI machine may take 50 ms for a debug build's cache miss): they
/// must evaluate and name real metrics, and their recording rule is
/// checked, but they may fire.
const TIMING_DEPENDENT_ALERTS: [&str; 1] = ["LinkwrightRedirectLatencyHigh"];

/// How long anything the test waits for may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// A Prometheus server on a free loopback port with its own data folder;
/// killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (host:port) every second, with the
    /// shipped rules loaded, and waits until it is ready.
    fn start(dir: &Path, target: &str) -> Prometheus {
        let rules = repo_root().join("examples/monitoring/linkwright-rules.yml");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: linkwright\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .unwrap();
        // A port that was free a moment ago; if another process takes it in
        // between, Prometheus exits and the next attempt takes another.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let data = dir.join(format!("data-{port}"));
            let mut child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run `prometheus` (install Debian's prometheus package): {e}")
                });
            let base = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            while started.elapsed() < DEADLINE {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if client()
                    .get(format!("{base}/-/ready"))
                    .send()
                    .is_ok_and(|r| r.status().is_success())
                {
                    return Prometheus { child, base };
                }
                // Polling backoff; the loop ends on readiness, not on time.
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("prometheus did not become ready");
    }

    /// `/api/v1/query` at the current time: the result vector, or the error.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let r = client()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .map_err(|e| e.to_string())?;
        let body: Value = r.json().map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        match &body["data"]["result"] {
            Value::Array(v) => Ok(v.clone()),
            // A scalar answer (`time()`) as one sample.
            other => Ok(vec![json!({"metric": {}, "value": other})]),
        }
    }

    /// Polls until `expr` returns a non-empty result.
    fn wait_for(&self, expr: &str) {
        let started = Instant::now();
        loop {
            if self.query(expr).is_ok_and(|v| !v.is_empty()) {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "prometheus never answered `{expr}` with a sample"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every metric name Prometheus has.
    fn names(&self) -> BTreeSet<String> {
        let body: Value = client()
            .get(format!("{}/api/v1/label/__name__/values", self.base))
            .send()
            .unwrap()
            .json()
            .unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample's value as a number.
fn sample_value(sample: &Value) -> f64 {
    let v = &sample["value"][1];
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or(f64::NAN)
}

/// The expressions of the rules file: `(record or alert name, expr)`. A
/// small reader for the file's own shape (`expr:` inline or as a `|` block).
fn rule_expressions(text: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let mut name = (String::new(), false);
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if let Some(n) = t.strip_prefix("- record:") {
            name = (n.trim().to_owned(), false);
        } else if let Some(n) = t.strip_prefix("- alert:") {
            name = (n.trim().to_owned(), true);
        } else if let Some(expr) = t.strip_prefix("expr:") {
            let expr = expr.trim();
            let expr = if expr == "|" {
                let indent = line.len() - t.len();
                let mut block = Vec::new();
                while let Some(next) = lines.peek() {
                    let nt = next.trim_start();
                    if nt.is_empty() || next.len() - nt.len() <= indent {
                        break;
                    }
                    block.push(nt.to_owned());
                    lines.next();
                }
                block.join(" ")
            } else {
                expr.to_owned()
            };
            out.push((name.0.clone(), expr, name.1));
        }
    }
    out
}

/// The panels' expressions of the dashboard: `(panel title, expr)`, and
/// the metric each template variable reads its values from.
fn dashboard_expressions(dashboard: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let mut variables = Vec::new();
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        match var["type"].as_str() {
            Some("datasource") => assert_eq!(var["query"], "prometheus"),
            Some("query") => {
                let q = var["query"]["query"].as_str().unwrap();
                // label_values(SELECTOR, label)
                let inner = q
                    .strip_prefix("label_values(")
                    .and_then(|r| r.rsplit_once(','))
                    .map(|(sel, _)| sel.to_owned())
                    .unwrap_or_else(|| panic!("unexpected variable query {q}"));
                variables.push(inner);
            }
            other => panic!("unexpected variable type {other:?}"),
        }
    }
    (exprs, variables)
}

/// Grafana's variables replaced by the test's values.
fn substitute(expr: &str) -> String {
    SUBSTITUTIONS
        .iter()
        .fold(expr.to_owned(), |e, (var, value)| e.replace(var, value))
}

/// Metric names an expression reads (`linkwright_*`, `process_*`, and
/// recording-rule names with a colon), outside quoted strings.
fn metric_names(expr: &str) -> Vec<String> {
    let mut unquoted = String::new();
    let mut in_string = false;
    for c in expr.chars() {
        if c == '"' {
            in_string = !in_string;
            unquoted.push(' ');
        } else if !in_string {
            unquoted.push(c);
        }
    }
    unquoted
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("linkwright_") || t.starts_with("process_") || t.contains(':'))
        .filter(|t| !t.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// POSTs a link and returns its code.
fn create_link(admin: &str, key: &str, body: &Value) -> String {
    let r = client()
        .post(format!("{admin}/api/v1/links"))
        .header(AUTHORIZATION, bearer(key))
        .json(body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{body}: {}", r.status());
    let v: Value = r.json().unwrap();
    v["code"].as_str().unwrap().to_owned()
}

/// An Awin transactions answer with one row of 3.75 GBP in `status`.
fn awin_report(id: u64, status: &str) -> String {
    json!([{
        "id": id, "advertiserId": 1001, "commissionStatus": status,
        "commissionAmount": {"amount": 3.75, "currency": "GBP"},
        "saleAmount": {"amount": 75.0, "currency": "GBP"},
        "clickRefs": {"clickRef": "0A1b2C3d4E5f6P"},
        "clickDate": "2026-11-01T08:00:00", "transactionDate": "2026-11-01T09:15:00",
        "paidToPublisher": false,
    }])
    .to_string()
}

fn import(admin: &str, key: &str, body: String) {
    let r = client()
        .post(format!(
            "{admin}/api/v1/conversions/import?format=awin-json"
        ))
        .header(AUTHORIZATION, bearer(key))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "import: {}", r.status());
}

/// One round of the short, bounded load: every group of the dashboard gets
/// traffic. Each round makes new links (so plugins build templates again)
/// and imports new conversions; a series appears in `/metrics` with its
/// first event, so only from the second round on do rates move.
fn load(server: &TestServer, key: &str, webhook: &StandIn, round: u64) {
    let admin = server.admin.as_str();
    let asin = format!("B0{round:08}");
    let com = create_link(
        admin,
        key,
        &json!({"url": format!("https://www.amazon.com/dp/{asin}")}),
    );
    let de = create_link(
        admin,
        key,
        &json!({"url": format!("https://www.amazon.de/dp/{asin}")}),
    );
    let awin = create_link(
        admin,
        key,
        &json!({"url": format!("https://www.example-store.co.uk/product/{round}")}),
    );
    // The advertiser permits no deep links: a plugin error by code.
    let r = client()
        .post(format!("{admin}/api/v1/links"))
        .header(AUTHORIZATION, bearer(key))
        .json(&json!({"url": format!("https://www.nodeeplinks.example/p/{round}")}))
        .send()
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    let c = client();
    for code in [&com, &de, &awin] {
        for _ in 0..20 {
            let r = c
                .get(format!("{}/{code}", server.public))
                .header("user-agent", BROWSER)
                .send()
                .unwrap();
            assert_eq!(r.status(), 302);
        }
        for _ in 0..5 {
            let r = c
                .get(format!("{}/{code}", server.public))
                .header(
                    "user-agent",
                    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
                )
                .send()
                .unwrap();
            assert_eq!(r.status(), 302);
        }
    }
    let r = c
        .get(format!("{}/nosuchcode{round}", server.public))
        .header("user-agent", BROWSER)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    // A disabled link: 410.
    let r = c
        .patch(format!("{admin}/api/v1/links/{awin}"))
        .header(AUTHORIZATION, bearer(key))
        .json(&json!({"disabled": true}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = c
        .get(format!("{}/{awin}", server.public))
        .header("user-agent", BROWSER)
        .send()
        .unwrap();
    assert_eq!(r.status(), 410);
    // Middleware mode: a miss, then a hit.
    for _ in 0..2 {
        let r = c
            .get(format!("{}/go", server.public))
            .query(&[("url", format!("https://www.amazon.fr/dp/{asin}"))])
            .header("user-agent", BROWSER)
            .send()
            .unwrap();
        assert_eq!(r.status(), 302);
    }
    // A bulk job with a webhook, waited for.
    let r = c
        .post(format!("{admin}/api/v1/links/bulk"))
        .header(AUTHORIZATION, bearer(key))
        .json(&json!({
            "items": [
                {"asin": format!("B1{round:08}")},
                {"asin": format!("B2{round:08}")},
                {"url": format!("https://nowhere.example/{round}")},
            ],
            "webhook_url": format!("{}/hook", webhook.base),
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().unwrap();
    let status_url = format!("{admin}{}", job["status_url"].as_str().unwrap());
    let started = Instant::now();
    loop {
        let v: Value = c
            .get(&status_url)
            .header(AUTHORIZATION, bearer(key))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["status"] == "done" {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "bulk job did not end: {v}");
        // Polling backoff; the loop ends on the job's status.
        std::thread::sleep(Duration::from_millis(20));
    }
    // A conversion, then a later report that declines it.
    import(admin, key, awin_report(9_100_000 + round, "approved"));
    import(admin, key, awin_report(9_100_000 + round, "declined"));
    // And one that stays approved.
    import(admin, key, awin_report(9_200_000 + round, "approved"));
}

#[test]
fn dashboard_and_rules_queries_work_against_a_real_prometheus() {
    let started = Instant::now();
    let dir = scratch("monitoring");
    let config = config_with(
        &dir,
        "[api]\nrate_limit_per_minute = 0\nwebhook_hosts = [\"127.0.0.1\"]",
    );
    let data = dir.join("data");
    let key = create_key(&config, &data, &["write", "read"]);
    let webhook = StandIn::start(|_| ("200 OK", String::new()));
    let server = TestServer::start(&config, &data);
    let target = server.admin.strip_prefix("http://").unwrap().to_owned();
    let prometheus = Prometheus::start(&dir, &target);
    prometheus.wait_for("up{job=\"linkwright\"} == 1");

    // Round 1 makes every series appear; once Prometheus has them, round 2
    // moves them, so rates and increases over the load are not zero.
    load(&server, &key, &webhook, 1);
    prometheus.wait_for("linkwright_commission_reversed_total{currency=\"GBP\"} >= 3.75");
    load(&server, &key, &webhook, 2);
    assert!(
        webhook.seen.lock().unwrap().iter().any(|p| p == "/hook"),
        "the webhook was not called"
    );

    // The live /metrics passes promtool's checks (HELP, names, units).
    let text = client()
        .get(format!("{}/metrics", server.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let check = promtool_check_metrics(&text);
    assert!(check.0, "promtool check metrics failed:\n{}", check.1);

    // Prometheus has scraped the end of the load (the last change is the
    // second round's reversed commission), a second or more ago.
    prometheus.wait_for(
        "count_over_time((linkwright_commission_reversed_total{currency=\"GBP\"} >= 7.5)[1m:1s]) >= 2",
    );
    prometheus.wait_for("linkwright_bulk_jobs_finished_total{status=\"done\"} >= 2");

    let names = prometheus.names();
    let rules_text =
        std::fs::read_to_string(repo_root().join("examples/monitoring/linkwright-rules.yml"))
            .unwrap();
    let rules = rule_expressions(&rules_text);
    assert!(rules.len() >= 15, "rules read: {rules:?}");
    let recorded: BTreeSet<&str> = rules
        .iter()
        .filter(|(_, _, alert)| !alert)
        .map(|(n, _, _)| n.as_str())
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("examples/monitoring/grafana-dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let (panels, variables) = dashboard_expressions(&dashboard);
    assert!(panels.len() >= 30, "panel expressions: {}", panels.len());

    let mut failures = Vec::new();
    let known = |name: &str| names.contains(name) || recorded.contains(name);
    let mut check = |what: &str, expr: &str, must_fire: bool, must_be_quiet: bool| {
        let expr = substitute(expr);
        for name in metric_names(&expr) {
            if !known(&name) {
                failures.push(format!(
                    "{what}: `{name}` is no metric linkwright exports\n    {expr}"
                ));
            }
        }
        match prometheus.query(&expr) {
            Err(e) => failures.push(format!("{what}: does not evaluate: {e}\n    {expr}")),
            Ok(result) if must_fire => {
                let values: Vec<f64> = result.iter().map(sample_value).collect();
                if values.is_empty() {
                    failures.push(format!("{what}: empty result\n    {expr}"));
                } else if values.iter().any(|v| v.is_infinite())
                    || !values.iter().any(|v| v.is_finite())
                {
                    failures.push(format!("{what}: no finite value: {values:?}\n    {expr}"));
                }
            }
            Ok(result) if must_be_quiet && !result.is_empty() => failures.push(format!(
                "{what}: fires on a healthy load: {result:?}\n    {expr}"
            )),
            Ok(_) => {}
        }
    };
    for (title, expr) in &panels {
        check(&format!("panel \"{title}\""), expr, true, false);
    }
    for selector in &variables {
        check("template variable", selector, true, false);
    }
    for (name, expr, alert) in &rules {
        if *alert {
            let quiet = !TIMING_DEPENDENT_ALERTS.contains(&name.as_str());
            check(&format!("alert {name}"), expr, false, quiet);
        } else {
            check(&format!("recording rule {name}"), expr, true, false);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions failed:\n{}",
        failures.len(),
        panels.len() + variables.len() + rules.len(),
        failures.join("\n")
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the monitoring test took {:?}",
        started.elapsed()
    );
}

/// `promtool check metrics` on a text: (passed, what it said).
fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `promtool` (install Debian's prometheus package): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.trim().is_empty(), said)
}

/// A dashboard that names a metric linkwright does not export is caught by
/// the name check above.
#[test]
fn a_misspelt_metric_name_is_caught() {
    let names: BTreeSet<String> = ["linkwright_clicks_total".to_owned()].into();
    let expr = substitute(
        "sum(rate(linkwright_clickz_total{job=~\"$job\", instance=~\"$instance\"}[$__rate_interval]))",
    );
    let unknown: Vec<String> = metric_names(&expr)
        .into_iter()
        .filter(|n| !names.contains(n))
        .collect();
    assert_eq!(unknown, ["linkwright_clickz_total"]);
    assert!(metric_names("up{job=\"linkwright_x\"} == 0").is_empty());
}

/// Reading the rules file finds inline and block expressions.
#[test]
fn rule_expressions_are_read_inline_and_as_blocks() {
    let text = "groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: sum(x)\n      - alert: A\n        expr: |\n          sum(y)\n            / sum(z)\n        for: 1m\n";
    assert_eq!(
        rule_expressions(text),
        vec![
            ("a:b".to_owned(), "sum(x)".to_owned(), false),
            ("A".to_owned(), "sum(y) / sum(z)".to_owned(), true)
        ]
    );
}
