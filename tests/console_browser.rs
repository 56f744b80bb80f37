//! The web console in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver) by fantoccini, against the real
//! binary. Signs in, creates a link and follows it, bulk-uploads a CSV and
//! waits for the result, imports a conversion report and finds the
//! earnings on the link, disables the link, signs out; a read-only key sees
//! no write control. Every page is photographed at desktop (1280 px) and
//! phone (390 px) widths into `target/console-screenshots/`, and no page
//! is wider than a phone's screen.
//!
//! `scripts/test` installs `chromium` and `chromium-driver` when missing;
//! `CHROMIUM` and `CHROMEDRIVER` name other executables.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BROWSER, TestServer, config_with, create_key, repo_root, scratch};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

fn executable(var: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
    assert!(
        path.is_file(),
        "{} not found: install Debian's chromium and chromium-driver (scripts/test does), or set {var}",
        path.display()
    );
    path
}

/// chromedriver on a free port of 127.0.0.1, ended on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(log: &Path) -> Driver {
        let exe = executable("CHROMEDRIVER", "/usr/bin/chromedriver");
        // A port the OS says is free; chromedriver binds it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        // Ready when /status says so.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited: {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    async fn browser(&self, profile: &Path) -> Client {
        let chromium = executable("CHROMIUM", "/usr/bin/chromium");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-default-apps",
                    "--disable-extensions",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go.
fn shots() -> PathBuf {
    let dir = repo_root().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Photographs the page at desktop and phone widths, each as tall as the
/// page, and checks that at phone width nothing makes the page scroll
/// sideways.
async fn shoot(c: &Client, name: &str) {
    // The page's script ran to its end, without an error.
    let ready = c
        .execute(
            "return document.documentElement.getAttribute('data-console');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(ready, json!("ready"), "{name}: the console's script failed");
    for (label, width) in [("desktop", 1280u32), ("phone", 390)] {
        c.set_window_size(width, 900).await.unwrap();
        let height = c
            .execute(
                "return Math.min(5000, document.documentElement.scrollHeight) \
                 + (window.outerHeight - window.innerHeight);",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900);
        c.set_window_size(width, height.max(600) as u32)
            .await
            .unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(shots().join(format!("{name}-{label}.png")), png).unwrap();
        if label == "phone" {
            let overflow = c
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(overflow, json!(0), "{name} is wider than a phone");
        }
    }
    c.set_window_size(1280, 900).await.unwrap();
}

/// The text of the element `css`, waiting for it to appear: after a form
/// is submitted, the click can return before the answer's page is loaded.
async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn fill(c: &Client, css: &str, value: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn sign_in(c: &Client, admin: &str, key: &str) {
    c.goto(&format!("{admin}/")).await.unwrap();
    // Not signed in: sent to the sign-in form.
    assert_eq!(c.current_url().await.unwrap().path(), "/sign-in");
    fill(c, "#key", key).await;
    click(c, "main.signin button[type=submit]").await;
    c.wait()
        .for_element(Locator::Css("header.top"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/");
}

async fn is_present(c: &Client, css: &str) -> bool {
    !c.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

/// Polls the API until the link has `n` human clicks recorded.
async fn wait_for_clicks(server: &TestServer, key: &str, code: &str, n: u64) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats: Value = http
            .get(format!("{}/api/v1/links/{code}/stats", server.admin))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stats["clicks"] == n {
            return;
        }
        assert!(Instant::now() < deadline, "clicks not recorded: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let dir = scratch("console-browser");
    let config = config_with(&dir, "");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = TestServer::start(&config, &data);
    let key = create_key(&config, &data, &[]);
    let read_key = create_key(&config, &data, &["read"]);
    let admin = server.admin.clone();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let driver = Driver::start(&dir.join("chromedriver.log")).await;
    let c = driver.browser(&dir.join("profile")).await;

    // Sign in.
    c.goto(&format!("{admin}/sign-in")).await.unwrap();
    shoot(&c, "sign-in").await;
    sign_in(&c, &admin, &key).await;

    // Create one link; a bad one first, whose error shows by its field.
    c.goto(&format!("{admin}/create")).await.unwrap();
    fill(&c, "#url", "https://example.com/some/page").await;
    click(&c, "#create button[type=submit]").await;
    let error = c.wait().for_element(Locator::Css("p.error")).await.unwrap();
    assert_eq!(
        error.attr("id").await.unwrap().as_deref(),
        Some("url-error")
    );
    let error = error.text().await.unwrap();
    assert!(error.contains("unsupported_host"), "{error}");
    shoot(&c, "create").await;
    fill(
        &c,
        "#url",
        "https://www.amazon.com/Echo-Dot/dp/B08N5WRWNW/ref=sr_1_1?tag=someone-20",
    )
    .await;
    fill(&c, "#name", "Echo review video").await;
    fill(&c, "#campaign", "spring").await;
    fill(&c, "#tags", "video, echo").await;
    fill(&c, "#code", "echo-review").await;
    click(&c, "#create button[type=submit]").await;
    c.wait().for_element(Locator::Css("#status")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/links/echo-review");
    let short = c
        .find(Locator::Css("dl.facts button.copy"))
        .await
        .unwrap()
        .attr("data-copy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(short, format!("{}/echo-review", server.public));

    // Follow its short URL, as a browser would: a tracked Amazon link with
    // this click's sub-ID.
    let r = no_redirects
        .get(&short)
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://www.amazon.com/dp/B08N5WRWNW?tag="),
        "{location}"
    );
    let click_id = location.split("ascsubtag=").nth(1).unwrap().to_owned();
    assert_eq!(click_id.len(), 13, "{location}");
    wait_for_clicks(&server, &key, "echo-review", 1).await;

    // Bulk: upload a CSV, wait for the job to end, fetch its result.
    let csv = dir.join("links.csv");
    std::fs::write(
        &csv,
        "url,name,campaign\n\
         https://www.amazon.com/dp/B000000001,bulk one,bulk\n\
         https://www.amazon.de/dp/B000000002,bulk two,bulk\n\
         https://example.com/not-a-product,bad,bulk\n",
    )
    .unwrap();
    c.goto(&format!("{admin}/create")).await.unwrap();
    c.find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(csv.to_str().unwrap())
        .await
        .unwrap();
    click(&c, "#bulk button[type=submit]").await;
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#job[data-status=done]"))
        .await
        .unwrap();
    assert_eq!(text(&c, "#job-ok").await, "2");
    assert_eq!(text(&c, "#job-errors").await, "1");
    let progress = c
        .execute(
            "const p = document.getElementById('job-progress'); return [p.value, p.max];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(progress, json!([3, 3]));
    assert!(
        c.find(Locator::Css("#job-result"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    shoot(&c, "bulk-job").await;
    let result_href = c
        .find(Locator::Css("#job-result a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let session = c.get_named_cookie("lw_session").await.unwrap();
    let result = no_redirects
        .get(format!("{admin}{result_href}"))
        .header("cookie", format!("lw_session={}", session.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    let result = result.text().await.unwrap();
    let lines: Vec<&str> = result.lines().collect();
    assert_eq!(lines.len(), 4, "{result}");
    assert!(
        lines[1].contains(",ok,") && lines[2].contains(",ok,"),
        "{result}"
    );
    assert!(lines[3].contains("unsupported_host"), "{result}");

    // The links page: search finds the bulk links.
    c.goto(&format!("{admin}/links")).await.unwrap();
    fill(&c, "#q", "bulk").await;
    click(&c, "form.filters button[type=submit]").await;
    // The unfiltered page has the table too: wait for the filtered one.
    c.wait()
        .for_element(Locator::Css("form.filters input#q[value=bulk]"))
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("table.links"))
        .await
        .unwrap();
    let rows = c
        .find_all(Locator::Css("table.links tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    c.goto(&format!("{admin}/links")).await.unwrap();
    shoot(&c, "links").await;

    // A conversion report with this click's sub-ID: earnings on the link.
    let today = c
        .execute("return new Date().toISOString().slice(0, 10);", vec![])
        .await
        .unwrap();
    let report = dir.join("earnings.tsv");
    std::fs::write(
        &report,
        format!(
            "Category\tName\tASIN\tSeller\tTracking ID\tDate Shipped\tPrice($)\tItems Shipped\tReturns\tRevenue($)\tAd Fees($)\tDevice Type Group\tDirect Sale\tSub Tag\n\
             Electronics\tEcho Dot\tB08N5WRWNW\tAmazon.com\tlinkwright-20\t{}\t49.99\t1\t0\t49.99\t3.75\tDESKTOP\tY\t{click_id}\n\
             Electronics\tBroken row\tB08N5WRWNW\tAmazon.com\tlinkwright-20\t\t49.99\t1\t0\t49.99\t3.75\tDESKTOP\tY\t{click_id}\n",
            today.as_str().unwrap()
        ),
    )
    .unwrap();
    c.goto(&format!("{admin}/conversions")).await.unwrap();
    c.find(Locator::Css("#format"))
        .await
        .unwrap()
        .select_by_value("amazon-earnings")
        .await
        .unwrap();
    c.find(Locator::Css("#report"))
        .await
        .unwrap()
        .send_keys(report.to_str().unwrap())
        .await
        .unwrap();
    click(&c, "#import button[type=submit]").await;
    c.wait()
        .for_element(Locator::Css("#import-summary"))
        .await
        .unwrap();
    assert_eq!(text(&c, "#inserted").await, "1");
    assert_eq!(text(&c, "#rejected").await, "1");
    let rejection = text(&c, "#rejections tbody tr").await;
    assert!(rejection.contains("Date Shipped"), "{rejection}");
    shoot(&c, "conversions").await;

    c.goto(&format!("{admin}/links/echo-review")).await.unwrap();
    assert_eq!(text(&c, "#earnings").await, "3.75");
    assert_eq!(text(&c, "#conversions").await, "1");
    assert_eq!(text(&c, "#clicks").await, "1");

    // Disable the link: the short URL answers 410.
    click(&c, "#toggle").await;
    c.wait()
        .for_element(Locator::Css("#status .badge.off"))
        .await
        .unwrap();
    let r = no_redirects
        .get(&short)
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(text(&c, "#toggle").await, "Enable link");
    shoot(&c, "link").await;

    c.goto(&format!("{admin}/")).await.unwrap();
    let cards = text(&c, "section.cards").await;
    assert!(cards.contains("3.75"), "{cards}");
    shoot(&c, "overview").await;
    c.goto(&format!("{admin}/reports?group_by=link"))
        .await
        .unwrap();
    let report_table = text(&c, "#report").await;
    assert!(report_table.contains("echo-review"), "{report_table}");
    shoot(&c, "reports").await;
    c.goto(&format!("{admin}/keys")).await.unwrap();
    fill(&c, "#key-name", "ci").await;
    click(&c, "#create-key button[type=submit]").await;
    let secret = text(&c, "#new-key-secret").await;
    assert!(secret.starts_with("lwk_"), "{secret}");
    shoot(&c, "keys").await;
    c.goto(&format!("{admin}/keys")).await.unwrap();
    assert!(!is_present(&c, "#new-key").await, "a new key is shown once");
    c.goto(&format!("{admin}/providers")).await.unwrap();
    let providers = text(&c, "#providers").await;
    assert!(providers.contains("amazon") && providers.contains("loaded"));
    shoot(&c, "providers").await;

    // Sign out: back to the form, and the pages are closed.
    click(&c, "form.signout button").await;
    c.wait().for_element(Locator::Css("#key")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/sign-in");
    c.goto(&format!("{admin}/links")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/sign-in");

    // A read-only key: no write control anywhere.
    sign_in(&c, &admin, &read_key).await;
    for page in ["/", "/links", "/links/echo-review", "/conversions", "/keys"] {
        c.goto(&format!("{admin}{page}")).await.unwrap();
        let forms = c.find_all(Locator::Css("form[method=post]")).await.unwrap();
        assert_eq!(forms.len(), 1, "{page}: only the sign-out form");
        assert!(!is_present(&c, "a[href='/create']").await, "{page}");
        assert!(!is_present(&c, "#toggle").await, "{page}");
    }
    c.goto(&format!("{admin}/links/echo-review")).await.unwrap();
    shoot(&c, "link-read-only").await;

    c.close().await.unwrap();
    drop(driver);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
