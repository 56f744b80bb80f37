//! The admin API against the real binary: every route and every error code.
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    BROWSER, StandIn, TestServer, client, config_with, create_key, linkwright_on, scratch,
};
use reqwest::StatusCode;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, LOCATION, RETRY_AFTER, USER_AGENT};
use serde_json::{Value, json};

/// Extra providers for error cases: an Awin publisher not approved for an
/// advertiser, and a fixture plugin that panics on `boom`.
const EXTRA: &str = r#"
[[providers]]
name = "awin-pending"
plugin = "awin"
[providers.config]
publisher_id = "999"
[[providers.config.advertisers]]
id = "5"
name = "Pending Brand"
domains = ["pending.example"]
approved = false

[[providers]]
name = "flaky"
plugin = "fixture"
[providers.config]
hosts = ["boom.example"]
panic_on_input = "boom"
"#;

struct Api {
    server: TestServer,
    key: String,
    read_key: String,
}

impl Api {
    fn start(name: &str, extra: &str) -> Api {
        let dir = scratch(name);
        let config = config_with(&dir, &format!("{EXTRA}\n{extra}"));
        let data = dir.join("data");
        let key = |scope: &str| create_key(&config, &data, &[scope]);
        let (key, read_key) = (key("write"), key("read"));
        let server = TestServer::start(&config, &data);
        Api {
            server,
            key,
            read_key,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.server.admin)
    }

    fn auth(&self, r: RequestBuilder) -> RequestBuilder {
        r.header(AUTHORIZATION, format!("Bearer {}", self.key))
    }

    fn get(&self, path: &str) -> Response {
        self.auth(client().get(self.url(path))).send().unwrap()
    }

    fn post(&self, path: &str, body: Value) -> Response {
        self.auth(client().post(self.url(path)))
            .json(&body)
            .send()
            .unwrap()
    }

    fn patch(&self, path: &str, body: Value) -> Response {
        self.auth(client().patch(self.url(path)))
            .json(&body)
            .send()
            .unwrap()
    }
}

/// Status and parsed JSON body.
fn json_of(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

/// Asserts the one error shape with this code.
fn assert_error(r: Response, status: StatusCode, code: &str) -> Value {
    let (got, body) = json_of(r);
    assert_eq!(got, status, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["retryable"].is_boolean(), "{body}");
    assert!(e.get("field").is_some(), "{body}");
    body
}

#[test]
fn create_answers_201_then_200_for_the_same_request_and_the_link_redirects() {
    let api = Api::start("create", "");
    let req = json!({
        "url": "https://www.amazon.com/Echo-Dot/dp/B08N5WRWNW/ref=sr_1_1?tag=other-20",
        "name": "Echo video, channel A, 2026-11-22",
        "campaign": "holiday",
        "tags": ["video", "echo"],
    });
    let (status, link) = json_of(api.post("/links", req.clone()));
    assert_eq!(status, StatusCode::CREATED, "{link}");
    assert_eq!(link["provider"], "amazon");
    assert_eq!(link["marketplace"], "amazon.com");
    assert_eq!(link["destination"], "https://www.amazon.com/dp/B08N5WRWNW");
    assert_eq!(
        link["template"],
        "https://www.amazon.com/dp/B08N5WRWNW?tag=linkwright-20&ascsubtag={click_id}"
    );
    assert_eq!(link["name"], "Echo video, channel A, 2026-11-22");
    assert_eq!(link["campaign"], "holiday");
    let code = link["code"].as_str().unwrap().to_owned();
    assert_eq!(link["short_url"], format!("{}/{code}", api.server.public));
    assert!(link["created_ms"].as_i64().unwrap() > 0);

    let (status, again) = json_of(api.post("/links", req));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["code"], code.as_str(), "no duplicate");

    let r = client()
        .get(format!("{}/{code}", api.server.public))
        .header(USER_AGENT, BROWSER)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("https://www.amazon.com/dp/B08N5WRWNW?tag=linkwright-20&ascsubtag=")
    );

    // An ASIN plus a marketplace, with an Amazon tag override and a custom code.
    let (status, link) = json_of(api.post(
        "/links",
        json!({"asin": "B08N5WRWNW", "marketplace": "amazon.de", "code": "echo-de", "params": {"tag": "mine-21"}}),
    ));
    assert_eq!(status, StatusCode::CREATED, "{link}");
    assert_eq!(link["code"], "echo-de");
    assert_eq!(
        link["template"],
        "https://www.amazon.de/dp/B08N5WRWNW?tag=mine-21&ascsubtag={click_id}"
    );
    // The same code for another destination is a conflict.
    assert_error(
        api.post("/links", json!({"asin": "B000000001", "code": "echo-de"})),
        StatusCode::CONFLICT,
        "conflict",
    );
    // Awin network parameters.
    let (status, link) = json_of(api.post(
        "/links",
        json!({"url": "https://www.example-store.co.uk/p/1", "params": {"campaign": "xmas", "clickref2": "yt"}}),
    ));
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        link["template"],
        "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456&campaign=xmas&clickref2=yt\
         &ued=https%3A%2F%2Fwww.example-store.co.uk%2Fp%2F1&clickref={click_id}"
    );
}

#[test]
fn every_error_code_has_the_one_shape() {
    let api = Api::start("errors", "");
    let cases: &[(Value, StatusCode, &str)] = &[
        (
            json!({"url": "https://www.amazon.com/gp/help/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_product_url",
        ),
        (
            json!({"url": "https://www.amazon.com/dp/B0BAD"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_asin",
        ),
        (
            json!({"url": "https://nowhere.example/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_host",
        ),
        (
            json!({"asin": "B08N5WRWNW", "marketplace": "amazon.it"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "marketplace_not_configured",
        ),
        (
            json!({"url": "https://www.nodeeplinks.example/p/2"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "deeplink_not_permitted",
        ),
        (
            json!({"url": "https://pending.example/p"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_approved",
        ),
        (
            json!({"url": "https://boom.example/boom"}),
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "invalid_input"),
        (
            json!({"url": "https://www.amazon.com/dp/B08N5WRWNW", "tags": vec!["t"; 51]}),
            StatusCode::BAD_REQUEST,
            "limit_exceeded",
        ),
        (
            json!({"url": "x", "asin": "y"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"url": "https://www.amazon.com/dp/B08N5WRWNW", "code": "has space"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"url": "https://www.amazon.com/dp/B08N5WRWNW", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ];
    for (body, status, code) in cases {
        let answer = assert_error(api.post("/links", body.clone()), *status, code);
        if *code == "internal" {
            // A provider's own failure says nothing of its insides to the
            // client (the log has them).
            assert_eq!(answer["error"]["message"], "internal error");
        }
    }
    // Malformed JSON names the problem.
    let r = api
        .auth(client().post(api.url("/links")))
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .unwrap();
    let body = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{body}"
    );
    // Oversized bodies are refused.
    let big = json!({"url": "x".repeat(2 * 1024 * 1024)});
    assert_error(
        api.post("/links", big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    // Unknown links and routes.
    assert_error(api.get("/links/nope"), StatusCode::NOT_FOUND, "not_found");
    assert_error(api.get("/nothing-here"), StatusCode::NOT_FOUND, "not_found");
}

#[test]
fn keys_scopes_and_rate_limits_guard_the_api() {
    let api = Api::start(
        "auth",
        "[api]\nrate_limit_per_minute = 60\nrate_limit_burst = 5",
    );
    let url = api.url("/links");
    assert_error(
        client().get(&url).send().unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        client()
            .get(&url)
            .header(AUTHORIZATION, "Bearer lwk_nope")
            .send()
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // Never in a query string, even a valid key.
    assert_error(
        client()
            .get(format!("{url}?api_key={}", api.key))
            .send()
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // A read key reads but cannot write.
    let read = |r: RequestBuilder| r.header(AUTHORIZATION, format!("Bearer {}", api.read_key));
    assert_eq!(
        read(client().get(&url)).send().unwrap().status(),
        StatusCode::OK
    );
    assert_error(
        read(client().post(&url))
            .json(&json!({"asin": "B08N5WRWNW"}))
            .send()
            .unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // The write key has a burst of 5 and was used by nobody yet.
    for _ in 0..5 {
        assert_eq!(api.get("/links").status(), StatusCode::OK);
    }
    let r = api.get("/links");
    let retry_after: u64 = r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let body = assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(body["error"]["retryable"], true);
    // The OpenAPI document needs no key.
    let doc: Value = client()
        .get(api.url("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/links",
        "/api/v1/links/batch",
        "/api/v1/links/{code}",
        "/api/v1/links/{code}/stats",
        "/api/v1/providers",
        "/api/v1/rewrite",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[test]
fn batch_answers_each_item_in_order_and_refuses_more_than_100() {
    let api = Api::start("batch", "");
    let items = json!([
        {"asin": "B08N5WRWNW"},
        {"url": "https://nowhere.example/"},
        {"url": "https://www.amazon.co.uk/dp/B08N5WRWNW", "name": "uk"},
        {"bogus": 1},
    ]);
    let (status, body) = json_of(api.post("/links/batch", json!({"items": items})));
    assert_eq!(status, StatusCode::OK);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 201, 400]);
    for (r, sent) in results.iter().zip(items.as_array().unwrap()) {
        assert_eq!(&r["request"], sent, "the request is echoed");
    }
    assert_eq!(results[1]["body"]["error"]["code"], "unsupported_host");
    assert_eq!(results[2]["body"]["name"], "uk");

    let many: Vec<Value> = (0..101)
        .map(|i| json!({"asin": format!("B{i:09}")}))
        .collect();
    assert_error(
        api.post("/links/batch", json!({"items": many})),
        StatusCode::BAD_REQUEST,
        "limit_exceeded",
    );
}

#[test]
fn list_pages_with_a_cursor_and_filters() {
    let api = Api::start("list", "");
    for (i, (asin, mp, campaign, tag, name)) in [
        ("B000000001", "amazon.com", "a", "video", "Alpha review"),
        ("B000000002", "amazon.de", "a", "blog", "Beta"),
        ("B000000003", "amazon.com", "b", "video", "alpha unboxing"),
        ("B000000004", "amazon.co.uk", "b", "blog", "Gamma"),
        ("B000000005", "amazon.com", "a", "video", "Delta"),
    ]
    .iter()
    .enumerate()
    {
        let (status, _) = json_of(api.post(
            "/links",
            json!({"asin": asin, "marketplace": mp, "campaign": campaign, "tags": [tag], "name": name, "code": format!("l{i}")}),
        ));
        assert_eq!(status, StatusCode::CREATED);
    }
    let codes = |path: &str| -> (Vec<String>, Value) {
        let (status, page) = json_of(api.get(path));
        assert_eq!(status, StatusCode::OK, "{page}");
        let codes = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["code"].as_str().unwrap().to_owned())
            .collect();
        (codes, page["next_cursor"].clone())
    };
    let (first, cursor) = codes("/links?limit=2");
    assert_eq!(first, ["l0", "l1"]);
    let (second, cursor) = codes(&format!(
        "/links?limit=2&cursor={}",
        cursor.as_str().unwrap()
    ));
    assert_eq!(second, ["l2", "l3"]);
    let (third, cursor) = codes(&format!(
        "/links?limit=2&cursor={}",
        cursor.as_str().unwrap()
    ));
    assert_eq!((third, cursor), (vec!["l4".to_owned()], Value::Null));

    assert_eq!(codes("/links?marketplace=amazon.com").0, ["l0", "l2", "l4"]);
    assert_eq!(codes("/links?campaign=b").0, ["l2", "l3"]);
    assert_eq!(codes("/links?tag=video").0, ["l0", "l2", "l4"]);
    assert_eq!(codes("/links?name=ALPHA").0, ["l0", "l2"]);
    assert_eq!(codes("/links?provider=awin").0, Vec::<String>::new());
    assert_error(
        api.get("/links?limit=0"),
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert_error(
        api.get("/links?cursor=zz"),
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
}

#[test]
fn patch_takes_effect_on_the_redirect_host_at_once_and_delete_removes_the_link() {
    let api = Api::start("patch", "");
    let (_, link) = json_of(api.post("/links", json!({"asin": "B08N5WRWNW", "code": "p1"})));
    assert_eq!(link["code"], "p1");
    let redirect = || {
        client()
            .get(format!("{}/p1", api.server.public))
            .header(USER_AGENT, BROWSER)
            .send()
            .unwrap()
    };
    // Warm the redirect cache with the old template.
    assert!(
        redirect().headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("https://www.amazon.com/dp/B08N5WRWNW?")
    );

    let (status, patched) = json_of(api.patch(
        "/links/p1",
        json!({"url": "https://www.amazon.co.uk/dp/B000000042", "name": "moved", "tags": ["x"]}),
    ));
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "moved");
    assert_eq!(
        patched["destination"],
        "https://www.amazon.co.uk/dp/B000000042"
    );
    let loc = redirect().headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with("https://www.amazon.co.uk/dp/B000000042?tag=linkwright-21&ascsubtag="),
        "{loc}"
    );

    let (_, patched) = json_of(api.patch("/links/p1", json!({"disabled": true, "name": null})));
    assert_eq!(patched["disabled"], true);
    assert_eq!(patched["name"], Value::Null);
    assert_eq!(redirect().status(), StatusCode::GONE);
    json_of(api.patch("/links/p1", json!({"disabled": false})));
    assert_eq!(redirect().status(), StatusCode::FOUND);
    assert_error(
        api.patch("/links/p1", json!({"url": "https://nowhere.example/"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported_host",
    );

    let r = api
        .auth(client().delete(api.url("/links/p1")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_error(api.get("/links/p1"), StatusCode::NOT_FOUND, "not_found");
    assert_eq!(redirect().status(), StatusCode::NOT_FOUND);
    let r = api
        .auth(client().delete(api.url("/links/p1")))
        .send()
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found");
}

#[test]
fn stats_count_clicks_and_bot_hits_after_the_click_log_flushes() {
    let api = Api::start("stats", "[click_log]\nflush_interval_ms = 10");
    json_of(api.post("/links", json!({"asin": "B08N5WRWNW", "code": "s1"})));
    for ua in [BROWSER, BROWSER, BROWSER, "Slackbot 1.0"] {
        let r = client()
            .get(format!("{}/s1", api.server.public))
            .header(USER_AGENT, ua)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
    }
    // Clicks reach the store within a flush interval: poll until they do.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stats = loop {
        let (status, stats) = json_of(api.get("/links/s1/stats"));
        assert_eq!(status, StatusCode::OK);
        if stats["clicks"] == 3 && stats["bot_hits"] == 1 {
            break stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "clicks never arrived: {stats}"
        );
        std::thread::yield_now();
    };
    let days = stats["by_day"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["clicks"], 3);
    assert_eq!(days[0]["bot_hits"], 1);
}

#[test]
fn providers_show_their_status_and_rewrite_builds_without_storing() {
    let api = Api::start(
        "providers",
        "[[providers]]\nname = \"missing\"\nplugin = \"nosuchplugin\"\n",
    );
    // Poison the fixture provider.
    json_of(api.post("/links", json!({"url": "https://boom.example/boom"})));
    let (status, body) = json_of(api.get("/providers"));
    assert_eq!(status, StatusCode::OK);
    let by_name = |n: &str| {
        body["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    let amazon = by_name("amazon");
    assert_eq!(amazon["status"], "ok");
    assert_eq!(amazon["abi"], "1.0");
    assert!(
        amazon["serves"]["marketplaces"]
            .as_array()
            .unwrap()
            .contains(&json!("amazon.co.uk"))
    );
    assert_eq!(by_name("awin")["serves"]["advertisers"][0]["id"], "1001");
    assert_eq!(by_name("flaky")["status"], "poisoned");
    let missing = by_name("missing");
    assert_eq!(missing["status"], "refused");
    assert!(
        missing["reason"]
            .as_str()
            .unwrap()
            .starts_with("plugin `nosuchplugin` not found")
    );

    let (status, body) = json_of(api.post(
        "/rewrite",
        json!({"items": [{"url": "https://www.amazon.de/dp/B08N5WRWNW"}, {"url": "https://nowhere.example"}]}),
    ));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["results"][0]["body"]["template"],
        "https://www.amazon.de/dp/B08N5WRWNW?tag=linkwright0d-21&ascsubtag={click_id}"
    );
    assert_eq!(body["results"][1]["status"], 422);
    let (_, page) = json_of(api.get("/links"));
    assert_eq!(page["items"], json!([]), "rewrite stores nothing");
    let many: Vec<Value> = (0..101).map(|_| json!({"asin": "B08N5WRWNW"})).collect();
    assert_error(
        api.post("/rewrite", json!({"items": many})),
        StatusCode::BAD_REQUEST,
        "limit_exceeded",
    );
}

#[test]
fn short_links_are_expanded_through_the_upstream_and_failures_are_retryable() {
    let amzn = StandIn::start(|path| match path {
        "/abc" => (
            "301 Moved Permanently",
            "location: https://www.amazon.co.uk/Thing/dp/B08N5WRWNW?ref=x\r\n".into(),
        ),
        "/nothing" => ("404 Not Found", String::new()),
        _ => ("500 Internal Server Error", String::new()),
    });
    let down = StandIn::start(|_| ("503 Service Unavailable", String::new()));
    let api = Api::start(
        "expand",
        &format!(
            "[upstream]\nretries = 1\nbackoff_ms = 10\ntimeout_ms = 2000\n\
             short_link_override = {{ \"amzn.to\" = \"{}\", \"a.co\" = \"{}\" }}",
            amzn.base, down.base
        ),
    );
    let (status, link) = json_of(api.post("/links", json!({"url": "https://amzn.to/abc"})));
    assert_eq!(status, StatusCode::CREATED, "{link}");
    assert_eq!(
        link["template"],
        "https://www.amazon.co.uk/dp/B08N5WRWNW?tag=linkwright-21&ascsubtag={click_id}"
    );
    assert_eq!(link["input"], "https://amzn.to/abc");

    assert_error(
        api.post("/links", json!({"url": "https://amzn.to/nothing"})),
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    let body = assert_error(
        api.post("/links", json!({"url": "https://a.co/d/xyz"})),
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream_unavailable",
    );
    assert_eq!(body["error"]["retryable"], true);
    assert_eq!(down.seen.lock().unwrap().len(), 2, "one try and one retry");
}

/// The CLI and the API are two doors to one link service: the same input
/// through both is the same request, answered with the same link in the
/// same JSON shape (the API's second answer is 200, not a second link).
#[test]
fn the_cli_and_the_api_make_the_same_link_from_the_same_input() {
    // Short URLs on a configured base: the CLI knows no listener's port.
    let api = Api::start(
        "cli-api-same",
        "[server]\npublic_base_url = \"https://go.example\"",
    );
    let url = "https://www.amazon.com/Echo-Dot/dp/B08N5WRWNW/ref=sr_1_1?tag=other-20";
    let out = linkwright_on(
        &api.server.config,
        &api.server.data,
        &[
            "links",
            "create",
            "--name",
            "Echo",
            "--tag",
            "video",
            "--param",
            "tag=mine-20",
            "--json",
            url,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let from_cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (status, from_api) = json_of(api.post(
        "/links",
        json!({"url": url, "name": "Echo", "tags": ["video"], "params": {"tag": "mine-20"}}),
    ));
    assert_eq!(status, StatusCode::OK, "{from_api}");
    assert_eq!(from_cli, from_api);
    assert!(
        from_api["short_url"]
            .as_str()
            .unwrap()
            .starts_with("https://go.example/")
    );
    assert_eq!(
        from_api["template"],
        "https://www.amazon.com/dp/B08N5WRWNW?tag=mine-20&ascsubtag={click_id}"
    );
    // A different request is a different link, from either door.
    let (status, other) = json_of(api.post("/links", json!({"url": url})));
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(other["code"], from_cli["code"]);
}

/// `invalid_asin`, with the field at fault, from the API and the CLI alike.
#[test]
fn an_asin_that_is_not_one_is_invalid_asin_from_the_api_and_the_cli() {
    let api = Api::start("invalid-asin", "");
    let body = assert_error(
        api.post(
            "/links",
            json!({"asin": "B0-NOT-ONE", "marketplace": "amazon.de"}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_asin",
    );
    assert_eq!(body["error"]["field"], "asin");
    let out = linkwright_on(
        &api.server.config,
        &api.server.data,
        &["links", "create", "B0-NOT-ONE"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: invalid_asin (asin): "), "{err}");
}

/// The error of a refused body: 413 `body_too_large` naming the route's
/// limit.
fn assert_too_large(r: Response, limit: &str) {
    let body = assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert_eq!(
        body["error"]["message"],
        format!("the request body is too large: this route accepts at most {limit}")
    );
    assert_eq!(body["error"]["field"], "body");
}

#[test]
fn each_route_bounds_its_body_with_413_and_json_nesting_with_400() {
    let api = Api::start("body-limits", "");
    let amazon = "https://www.amazon.com/dp/B08N5WRWNW";
    // One link: 128 KiB, for a create and a change alike.
    let link = json!({"url": amazon, "name": "n".repeat(130 * 1024)});
    assert_too_large(api.post("/links", link), "128 KiB");
    let (status, created) = json_of(api.post("/links", json!({"url": amazon, "code": "lim"})));
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_too_large(
        api.patch("/links/lim", json!({"name": "n".repeat(130 * 1024)})),
        "128 KiB",
    );
    // A batch takes more (1 MiB): a 200 KiB item is its own item's problem.
    let (status, answer) = json_of(api.post(
        "/links/batch",
        json!({"items": [{"url": amazon, "name": "n".repeat(200 * 1024)}]}),
    ));
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["results"][0]["body"]["error"]["code"],
        "limit_exceeded"
    );
    let batch = json!({"items": [{"url": "x".repeat(1100 * 1024)}]});
    assert_too_large(api.post("/links/batch", batch.clone()), "1 MiB");
    assert_too_large(api.post("/rewrite", batch), "1 MiB");
    // A bulk upload: 16 MiB; a conversion report: 64 MiB.
    let csv = format!("url\n{}\n", "x".repeat(16 * 1024 * 1024));
    let r = api
        .auth(client().post(api.url("/links/bulk")))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .unwrap();
    assert_too_large(r, "16 MiB");
    let report = vec![b'x'; 64 * 1024 * 1024 + 1];
    let r = api
        .auth(client().post(api.url("/conversions/import?format=awin-csv")))
        .header("content-type", "text/csv")
        .body(report)
        .send()
        .unwrap();
    assert_too_large(r, "64 MiB");

    // JSON nested past 32 levels is refused before it is parsed, however
    // deep (never a stack overflow), on every JSON route.
    for depth in [33, 50_000] {
        let deep = format!(
            "{{\"url\": \"{amazon}\", \"params\": {}1{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        );
        for path in ["/links", "/links/batch", "/links/bulk"] {
            let r = api
                .auth(client().post(api.url(path)))
                .header("content-type", "application/json")
                .body(deep.clone())
                .send()
                .unwrap();
            let body = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input");
            assert_eq!(
                body["error"]["message"],
                format!("the JSON body nests {depth} levels deep; at most 32 are accepted"),
                "{path}"
            );
        }
    }
    // 32 levels are parsed (and refused for what they say).
    let deep = format!(
        "{{\"url\": \"{amazon}\", \"params\": {}1{}}}",
        "[".repeat(31),
        "]".repeat(31)
    );
    let r = api
        .auth(client().post(api.url("/links")))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .unwrap();
    let body = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{body}"
    );
    // The server keeps serving.
    assert_eq!(api.get("/links/lim").status(), StatusCode::OK);
}
