//! The web console over plain HTTP, against the real binary: sign-in and
//! its cookie, sign-out, session expiry, the CSRF token, the security
//! headers, the limit on failed sign-ins, read-only keys, and that no page
//! loads anything from another origin. (The browser tests are in
//! tests/console_browser.rs.)
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, client, config_with, create_key, scratch};
use reqwest::StatusCode;
use reqwest::blocking::Response;

/// A server and a browser-like client that keeps cookies by hand, so the
/// tests see every `Set-Cookie`.
struct Console {
    server: TestServer,
    http: reqwest::blocking::Client,
}

impl Console {
    fn start(name: &str, extra: &str) -> Console {
        let dir = scratch(name);
        let config = config_with(&dir, extra);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let server = TestServer::start(&config, &data);
        Console {
            server,
            http: client(),
        }
    }

    fn key(&self, scopes: &[&str]) -> String {
        create_key(&self.server.config, &self.server.data, scopes)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.admin)
    }

    fn get(&self, path: &str, cookie: &str) -> Response {
        self.http
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .unwrap()
    }

    fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url(path))
            .header("cookie", cookie)
            .form(form)
            .send()
            .unwrap()
    }

    /// The sign-in form's token and cookie.
    fn sign_in_form(&self) -> (String, String) {
        let r = self.get("/sign-in", "");
        assert_eq!(r.status(), StatusCode::OK);
        let cookie = set_cookie(&r, "lw_signin").unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let token = csrf(&r.text().unwrap());
        (token, cookie)
    }

    /// Posts a key to the sign-in form.
    fn try_sign_in(&self, key: &str) -> Response {
        let (token, cookie) = self.sign_in_form();
        self.post("/sign-in", &cookie, &[("key", key), ("csrf", &token)])
    }

    /// Signs in; returns the session cookie (`lw_session=…`) and the
    /// session's CSRF token.
    fn sign_in(&self, key: &str) -> (String, String) {
        let r = self.try_sign_in(key);
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text());
        assert_eq!(r.headers()["location"], "/");
        let cookie = set_cookie(&r, "lw_session").unwrap();
        let session = cookie.split(';').next().unwrap().to_owned();
        let page = self.get("/", &session);
        assert_eq!(page.status(), StatusCode::OK);
        let token = csrf(&page.text().unwrap());
        (session, token)
    }
}

/// The `Set-Cookie` header for cookie `name`.
fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// The first CSRF token in a page.
fn csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf in {html}"))
        + marker.len();
    html[start..][..64].to_owned()
}

fn is_sign_in_redirect(r: &Response) -> bool {
    r.status() == StatusCode::SEE_OTHER && r.headers()["location"] == "/sign-in"
}

#[test]
fn sign_in_sets_a_strict_httponly_cookie_and_sign_out_ends_the_session() {
    let c = Console::start("console-sign-in", "");
    let key = c.key(&[]);
    assert!(is_sign_in_redirect(&c.get("/", "")));
    let r = c.try_sign_in(&key);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&r, "lw_session").unwrap();
    let value = cookie.split(';').next().unwrap();
    assert_eq!(value.len(), "lw_session=".len() + 64, "{cookie}");
    assert!(!cookie.contains(&key), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    let (session, token) = c.sign_in(&key);
    let overview = c.get("/", &session);
    assert_eq!(overview.status(), StatusCode::OK);
    assert!(overview.text().unwrap().contains("Clicks per day"));

    // Signing out needs the token too.
    assert_eq!(
        c.post("/sign-out", &session, &[]).status(),
        StatusCode::FORBIDDEN
    );
    let out = c.post("/sign-out", &session, &[("csrf", &token)]);
    assert!(is_sign_in_redirect(&out));
    let gone = set_cookie(&out, "lw_session").unwrap();
    assert!(gone.contains("Max-Age=0"), "{gone}");
    // The old cookie is dead on the server, not just in the browser.
    assert!(is_sign_in_redirect(&c.get("/", &session)));
    assert!(is_sign_in_redirect(&c.get("/links", &session)));
}

#[test]
fn the_cookie_is_secure_when_the_public_base_url_is_https() {
    let c = Console::start(
        "console-secure",
        "[server]\npublic_base_url = \"https://go.example.com\"",
    );
    let key = c.key(&[]);
    let r = c.try_sign_in(&key);
    let cookie = set_cookie(&r, "lw_session").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[test]
fn a_wrong_key_is_refused_and_failed_sign_ins_are_rate_limited() {
    let c = Console::start(
        "console-limit",
        "[console]\nsign_in_failure_burst = 3\nsign_in_failures_per_minute = 1",
    );
    let key = c.key(&[]);
    let last = if key.ends_with('x') { "y" } else { "x" };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    for _ in 0..3 {
        let r = c.try_sign_in(&wrong);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie(&r, "lw_session").is_none());
        assert!(r.text().unwrap().contains("not accepted"));
    }
    let r = c.try_sign_in(&wrong);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Past the limit not even the right key is looked at.
    let r = c.try_sign_in(&key);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(&r, "lw_session").is_none());
}

#[test]
fn sessions_expire() {
    let c = Console::start("console-expiry", "[console]\nsession_ttl_ms = 1000");
    let key = c.key(&[]);
    let r = c.try_sign_in(&key);
    let cookie = set_cookie(&r, "lw_session").unwrap();
    assert!(cookie.contains("Max-Age=1;"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(c.get("/", &session).status(), StatusCode::OK);
    // Poll until the server ends it: at its expiry, a second from sign-in.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.get("/", &session);
        if is_sign_in_redirect(&r) {
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(Instant::now() < deadline, "the session did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_revoked_key_ends_its_sessions() {
    let c = Console::start("console-revoked", "");
    let admin = c.key(&[]);
    let other = c.key(&["read"]);
    let (session, _) = c.sign_in(&other);
    let (admin_session, token) = c.sign_in(&admin);
    let keys = c.get("/keys", &admin_session).text().unwrap();
    let id = other.split('_').nth(1).unwrap();
    assert!(keys.contains(id), "{keys}");
    let r = c.post(
        &format!("/keys/{id}/revoke"),
        &admin_session,
        &[("csrf", &token)],
    );
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(is_sign_in_redirect(&c.get("/", &session)));
    assert_eq!(c.get("/", &admin_session).status(), StatusCode::OK);
}

#[test]
fn forms_without_the_right_csrf_token_are_refused() {
    let c = Console::start("console-csrf", "");
    let key = c.key(&[]);
    // The sign-in form: its token must match its cookie.
    let (token, cookie) = c.sign_in_form();
    let r = c.post("/sign-in", &cookie, &[("key", &key)]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c.post("/sign-in", "", &[("key", &key), ("csrf", &token)]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (session, token) = c.sign_in(&key);
    let url = "https://www.amazon.com/dp/B08N5WRWNW";
    for form in [
        vec![("url", url)],
        vec![("url", url), ("csrf", "")],
        vec![("url", url), ("csrf", &"0".repeat(64))],
    ] {
        let r = c.post("/create", &session, &form);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().unwrap().contains("security token"));
    }
    // A form from another site is refused even with the token.
    let r = c
        .http
        .post(c.url("/create"))
        .header("cookie", &session)
        .header("sec-fetch-site", "cross-site")
        .form(&[("url", url), ("csrf", &token)])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let api = format!("Bearer {key}");
    let links: serde_json::Value = c
        .http
        .get(c.url("/api/v1/links"))
        .header("authorization", &api)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(links["items"].as_array().unwrap().len(), 0, "{links}");
    // With the token it goes through, to the new link's page.
    let r = c.post("/create", &session, &[("url", url), ("csrf", &token)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text());
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/links/")
    );
}

#[test]
fn a_read_only_key_sees_no_write_action_and_cannot_post_one() {
    let c = Console::start("console-read-only", "");
    let key = c.key(&["read"]);
    let (session, token) = c.sign_in(&key);
    let overview = c.get("/", &session).text().unwrap();
    assert!(overview.contains("(read-only)"));
    assert!(!overview.contains("href=\"/create\""), "{overview}");
    for page in [
        "/",
        "/links",
        "/keys",
        "/conversions",
        "/reports",
        "/providers",
    ] {
        let html = c.get(page, &session).text().unwrap();
        // The sign-out form is the only form that posts.
        assert_eq!(html.matches("method=\"post\"").count(), 1, "{page}: {html}");
    }
    assert_eq!(c.get("/create", &session).status(), StatusCode::FORBIDDEN);
    let r = c.post(
        "/create",
        &session,
        &[
            ("url", "https://www.amazon.com/dp/B08N5WRWNW"),
            ("csrf", &token),
        ],
    );
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().unwrap().contains("read scope only"));
    let r = c.post("/keys", &session, &[("name", "x"), ("csrf", &token)]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[test]
fn every_page_carries_the_policy_and_loads_nothing_from_another_origin() {
    let c = Console::start("console-csp", "");
    let key = c.key(&[]);
    let (session, token) = c.sign_in(&key);
    let r = c.post(
        "/create",
        &session,
        &[
            ("url", "https://www.amazon.com/dp/B08N5WRWNW"),
            ("code", "echo"),
            ("name", "<script>alert(1)</script>"),
            ("csrf", &token),
        ],
    );
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let pages = [
        "/sign-in",
        "/",
        "/links",
        "/links/echo",
        "/create",
        "/reports",
        "/reports?group_by=link",
        "/conversions",
        "/keys",
        "/providers",
    ];
    for page in pages {
        let r = c.get(page, &session);
        assert_eq!(r.status(), StatusCode::OK, "{page}");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
        assert!(
            h["content-type"].to_str().unwrap().starts_with("text/html"),
            "{page}"
        );
        let html = r.text().unwrap();
        // What loads: scripts, style sheets, images. All from here.
        for attr in ["src=\"", "<link rel=\"stylesheet\" href=\""] {
            for (i, _) in html.match_indices(attr) {
                let value = &html[i + attr.len()..];
                assert!(
                    value.starts_with('/') && !value.starts_with("//"),
                    "{page} loads {}",
                    &value[..value.find('"').unwrap()]
                );
            }
        }
        // No inline script, no inline style, no event handler attribute.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=\"/assets/console.js\"").count(),
            "{page}"
        );
        for banned in [
            " style=\"",
            " onclick=",
            " onload=",
            "<style",
            "javascript:",
        ] {
            assert!(!html.contains(banned), "{page} has {banned}");
        }
        assert!(!html.contains("<script>alert(1)"), "{page} did not escape");
    }
    for (asset, kind) in [
        ("/assets/console.css", "text/css"),
        ("/assets/console.js", "text/javascript"),
    ] {
        let r = c.get(asset, "");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        let text = r.text().unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{asset}"
        );
    }
    let qr = c.get("/links/echo/qr.svg?download=1", &session);
    assert_eq!(qr.status(), StatusCode::OK);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    assert_eq!(
        qr.headers()["content-disposition"],
        "attachment; filename=\"echo.svg\""
    );
    assert!(qr.text().unwrap().starts_with("<?xml"));
    // The API is untouched: JSON errors, bearer keys.
    let r = c.get("/api/v1/links", &session);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("content-security-policy").is_none());
}

#[test]
fn targets_are_made_and_previewed_from_the_console_with_errors_on_their_field() {
    let console = Console::start("console-targets", "");
    let key = console.key(&[]);
    let (cookie, token) = console.sign_in(&key);
    let rules = r#"[{"country": ["DE", "AT"], "url": "https://www.amazon.de/dp/B08N5WRWNW"}]"#;
    let r = console.post(
        "/create",
        &cookie,
        &[
            ("csrf", &token),
            ("url", "https://www.amazon.com/dp/B08N5WRWNW"),
            ("code", "geo1"),
            ("targets", rules),
            ("localize", "off"),
        ],
    );
    assert!(r.status().is_redirection(), "{}", r.status());
    let page = console.get("/links/geo1", &cookie).text().unwrap();
    assert!(page.contains("id=\"targets\""), "no targets section");
    assert!(page.contains("id=\"preview\""), "no per-country preview");
    assert!(
        page.contains("<td>AT</td><td>rule</td>"),
        "AT not shown as a rule"
    );
    assert!(page.contains("https://www.amazon.de/dp/B08N5WRWNW"));
    // Rules that are not JSON, and a country that does not exist: the
    // error is shown on the targets field, the form kept.
    for (bad, needle) in [
        ("[{country: DE}]", "not a JSON list of rules"),
        (
            r#"[{"country": "XY", "url": "https://www.amazon.de/dp/B08N5WRWNW"}]"#,
            "unknown country code",
        ),
    ] {
        let r = console.post(
            "/create",
            &cookie,
            &[
                ("csrf", &token),
                ("url", "https://www.amazon.com/dp/B08N5WRWNW"),
                ("targets", bad),
            ],
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let html = r.text().unwrap();
        assert!(html.contains(needle), "{needle}");
        assert!(
            html.contains("id=\"targets-error\""),
            "the error is not on the targets field"
        );
    }
}
