//! The Creators API client against a local stand-in for the token endpoint
//! and GetItems, started per test on `127.0.0.1:0`. The stand-in counts the
//! calls and records each request; its answers are closures per test.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;

const TOKEN_PATH: &str = "/token";

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Recorded {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The number `n` of a `Bearer tN…` header.
    fn token_number(&self) -> usize {
        let auth = self.header("authorization");
        let token = auth.strip_prefix("Bearer t").unwrap_or("0");
        let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap_or(0)
    }
}

/// An answer: status, headers, body.
type Reply = (u16, Vec<(&'static str, String)>, String);

/// Answers the `n`-th (0-based) request to one path.
type Handler = Arc<dyn Fn(usize, &Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct Seen {
    token_calls: AtomicUsize,
    api_calls: AtomicUsize,
    other_calls: AtomicUsize,
    tokens: StdMutex<Vec<Recorded>>,
    api: StdMutex<Vec<Recorded>>,
}

struct StandIn {
    base: String,
    seen: Arc<Seen>,
}

impl StandIn {
    async fn start(token: Handler, api: Handler) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let state = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, token, api) = (state.clone(), token.clone(), api.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        route(state.clone(), token.clone(), api.clone(), req)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StandIn { base, seen }
    }

    /// A 2.2 (Cognito) configuration pointed at this stand-in, quick to
    /// retry and barely rate limited.
    fn config(&self) -> CreatorsConfig {
        let mut config = CreatorsConfig::new("my-id", "s3cr3t-value", "2.2");
        config.token_url = Some(format!("{}{TOKEN_PATH}", self.base));
        config.api_url = Some(self.base.clone());
        config.partner_tag = Some("default-20".into());
        config
            .partner_tags
            .insert("amazon.de".into(), "de-tag-21".into());
        config.requests_per_second = 1000.0;
        config.timeout_ms = 5000;
        config.retries = 2;
        config.backoff_ms = 1;
        config
    }

    fn client(&self) -> CreatorsClient {
        CreatorsClient::new(&self.config()).unwrap()
    }

    fn token_calls(&self) -> usize {
        self.seen.token_calls.load(Ordering::SeqCst)
    }

    fn api_calls(&self) -> usize {
        self.seen.api_calls.load(Ordering::SeqCst)
    }

    fn api_requests(&self) -> Vec<Recorded> {
        self.seen.api.lock().unwrap().clone()
    }

    fn token_requests(&self) -> Vec<Recorded> {
        self.seen.tokens.lock().unwrap().clone()
    }
}

async fn route(
    seen: Arc<Seen>,
    token: Handler,
    api: Handler,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    let recorded = Recorded { headers, body };
    let (status, headers, body) = match path.as_str() {
        TOKEN_PATH => {
            let n = seen.token_calls.fetch_add(1, Ordering::SeqCst);
            seen.tokens.lock().unwrap().push(recorded.clone());
            token(n, &recorded)
        }
        GET_ITEMS_PATH => {
            let n = seen.api_calls.fetch_add(1, Ordering::SeqCst);
            seen.api.lock().unwrap().push(recorded.clone());
            api(n, &recorded)
        }
        _ => {
            seen.other_calls.fetch_add(1, Ordering::SeqCst);
            (404, vec![], String::new())
        }
    };
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    Ok(response.body(Full::new(Bytes::from(body))).unwrap())
}

/// Issues `t1`, `t2`, … valid for `expires_in` seconds.
fn tokens(expires_in: u64) -> Handler {
    Arc::new(move |n, _| {
        let body = serde_json::json!({
            "access_token": format!("t{}", n + 1),
            "token_type": "bearer",
            "expires_in": expires_in,
        });
        (200, vec![], body.to_string())
    })
}

/// What the stand-in's catalog holds: ASIN, title, whether it has offers.
type Product = (&'static str, &'static str, bool);

/// A GetItems answer for the requested `itemIds` that are among
/// `products`; the others are reported under `errors`, as the API does.
fn items_answer(request: &Recorded, products: &[Product]) -> Reply {
    let request = request.json();
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for id in request["itemIds"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        match products.iter().find(|(asin, _, _)| *asin == id) {
            Some((asin, title, offers)) => {
                let mut item = serde_json::json!({
                    "asin": asin,
                    "detailPageURL": format!("https://www.amazon.de/dp/{asin}"),
                    "itemInfo": { "title": { "displayValue": title, "label": "Title" } },
                });
                if *offers {
                    item["offersV2"] = serde_json::json!({
                        "listings": [{ "availability": { "type": "IN_STOCK", "message": "In stock" } }]
                    });
                }
                items.push(item);
            }
            None => errors.push(serde_json::json!({
                "code": "ItemNotAccessible",
                "message": format!("The ItemId {id} is not accessible through the Creators API."),
            })),
        }
    }
    let mut body = serde_json::json!({ "itemsResult": { "items": items } });
    if !errors.is_empty() {
        body["errors"] = serde_json::Value::Array(errors);
    }
    (200, vec![], body.to_string())
}

const CATALOG: &[Product] = &[
    ("B08N5WRWNW", "Echo Dot (4th generation)", true),
    ("B000000001", "A book sold elsewhere", false),
];

/// A GetItems handler answering from [`CATALOG`].
fn catalog() -> Handler {
    Arc::new(|_, request| items_answer(request, CATALOG))
}

fn asins(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn unavailable(result: Result<Vec<ItemInfo>, CatalogError>) -> String {
    match result {
        Err(CatalogError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn rejected(result: Result<Vec<ItemInfo>, CatalogError>) -> String {
    match result {
        Err(CatalogError::Rejected(m)) => m,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// Moves tokio's clock `by` without sleeping, with no request in flight.
async fn jump(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn lookup_sends_the_documented_shape_and_reads_titles_and_offers() {
    let stand_in = StandIn::start(tokens(3600), catalog()).await;
    let client = stand_in.client();
    let answer = client
        .lookup(
            "www.Amazon.DE",
            &asins(&["b08n5wrwnw", "B000000001", "B0MISSING0"]),
        )
        .await
        .unwrap();
    assert_eq!(
        answer,
        [
            ItemInfo {
                asin: "B08N5WRWNW".into(),
                available: true,
                title: Some("Echo Dot (4th generation)".into()),
            },
            ItemInfo {
                asin: "B000000001".into(),
                available: false,
                title: Some("A book sold elsewhere".into()),
            },
            ItemInfo {
                asin: "B0MISSING0".into(),
                available: false,
                title: None,
            },
        ]
    );

    let token = &stand_in.token_requests()[0];
    assert_eq!(
        token.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "my-id");
    assert_eq!(form["client_secret"], "s3cr3t-value");
    assert_eq!(form["scope"], "creatorsapi/default");

    let api = &stand_in.api_requests()[0];
    assert_eq!(api.header("authorization"), "Bearer t1, Version 2.2");
    assert_eq!(api.header("x-marketplace"), "www.amazon.de");
    assert_eq!(api.header("content-type"), "application/json");
    assert_eq!(
        api.json(),
        serde_json::json!({
            "itemIds": ["B08N5WRWNW", "B000000001", "B0MISSING0"],
            "partnerTag": "de-tag-21",
            "resources": ["itemInfo.title", "offersV2.listings.availability"],
        })
    );
}

#[tokio::test]
async fn version_3_credentials_ask_for_a_token_in_json_and_send_a_plain_bearer() {
    let stand_in = StandIn::start(tokens(3600), catalog()).await;
    let mut config = stand_in.config();
    config.version = "3.2".into();
    let client = CreatorsClient::new(&config).unwrap();
    let answer = client
        .lookup("amazon.fr", &asins(&["B08N5WRWNW"]))
        .await
        .unwrap();
    assert!(answer[0].available);

    let token = &stand_in.token_requests()[0];
    assert_eq!(token.header("content-type"), "application/json");
    assert_eq!(
        token.json(),
        serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": "my-id",
            "client_secret": "s3cr3t-value",
            "scope": "creatorsapi::default",
        })
    );
    let api = &stand_in.api_requests()[0];
    assert_eq!(api.header("authorization"), "Bearer t1");
    assert_eq!(api.header("x-marketplace"), "www.amazon.fr");
    assert_eq!(
        api.json()["partnerTag"],
        "default-20",
        "no tag for amazon.fr"
    );
}

#[tokio::test]
async fn token_is_fetched_once_and_reused_across_lookups_and_clones() {
    let stand_in = StandIn::start(tokens(3600), catalog()).await;
    let client = stand_in.client();
    let clone = client.clone();
    let one = asins(&["B08N5WRWNW"]);
    for c in [&client, &clone, &client] {
        c.lookup("amazon.de", &one).await.unwrap();
    }
    let (a, b) = tokio::join!(
        client.lookup("amazon.de", &one),
        clone.lookup("amazon.it", &one),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(stand_in.api_calls(), 5);
    assert_eq!(stand_in.token_calls(), 1);
    assert!(
        stand_in
            .api_requests()
            .iter()
            .all(|r| r.header("authorization") == "Bearer t1, Version 2.2")
    );
}

#[tokio::test]
async fn token_is_refreshed_a_little_before_it_expires() {
    // 100 s tokens are replaced 10 s early.
    let stand_in = StandIn::start(tokens(100), catalog()).await;
    let client = stand_in.client();
    let ask = || client.lookup("amazon.de", &[]);
    assert!(ask().await.unwrap().is_empty(), "no ASIN: no request");
    assert_eq!(stand_in.token_calls(), 0);

    let one = asins(&["B08N5WRWNW"]);
    client.lookup("amazon.de", &one).await.unwrap();
    assert_eq!(stand_in.token_calls(), 1);
    jump(Duration::from_secs(85)).await;
    client.lookup("amazon.de", &one).await.unwrap();
    assert_eq!(stand_in.token_calls(), 1, "still fresh at 85 s");
    jump(Duration::from_secs(6)).await;
    client.lookup("amazon.de", &one).await.unwrap();
    assert_eq!(stand_in.token_calls(), 2, "refreshed at 91 s");
    let auth: Vec<String> = stand_in
        .api_requests()
        .iter()
        .map(|r| r.header("authorization").to_owned())
        .collect();
    assert_eq!(
        auth,
        [
            "Bearer t1, Version 2.2",
            "Bearer t1, Version 2.2",
            "Bearer t2, Version 2.2"
        ]
    );
}

#[tokio::test]
async fn a_401_with_a_cached_token_gets_one_fresh_token_and_one_retry() {
    // The API accepts only tokens from number `valid_from` on: raising it
    // revokes the ones issued before.
    let valid_from = Arc::new(AtomicUsize::new(1));
    let threshold = valid_from.clone();
    let api: Handler = Arc::new(move |_, request| {
        if request.token_number() < threshold.load(Ordering::SeqCst) {
            (
                401,
                vec![],
                r#"{"errors":[{"code":"Unauthorized"}]}"#.into(),
            )
        } else {
            items_answer(request, CATALOG)
        }
    });
    let stand_in = StandIn::start(tokens(3600), api).await;
    let client = stand_in.client();
    let one = asins(&["B08N5WRWNW"]);
    client.lookup("amazon.de", &one).await.unwrap();
    assert_eq!((stand_in.token_calls(), stand_in.api_calls()), (1, 1));

    valid_from.store(2, Ordering::SeqCst);
    let answer = client.lookup("amazon.de", &one).await.unwrap();
    assert!(answer[0].available);
    assert_eq!((stand_in.token_calls(), stand_in.api_calls()), (2, 3));
    let last = &stand_in.api_requests()[2];
    assert_eq!(last.header("authorization"), "Bearer t2, Version 2.2");

    // A 401 to the fresh token too: refused after that one retry.
    valid_from.store(usize::MAX, Ordering::SeqCst);
    let message = rejected(client.lookup("amazon.de", &one).await);
    assert!(message.contains("401"), "{message}");
    assert_eq!((stand_in.token_calls(), stand_in.api_calls()), (3, 5));
}

#[tokio::test]
async fn a_401_to_a_token_just_fetched_is_rejected_without_another_token() {
    let api: Handler = Arc::new(|_, _| (401, vec![], String::new()));
    let stand_in = StandIn::start(tokens(3600), api).await;
    let message = rejected(
        stand_in
            .client()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(message.contains("check the credential"), "{message}");
    assert_eq!((stand_in.token_calls(), stand_in.api_calls()), (1, 1));
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_succeeds() {
    let api: Handler = Arc::new(|n, request| {
        if n == 0 {
            let body = r#"{"errors":[{"code":"TooManyRequests","message":"throttled"}]}"#;
            (429, vec![("retry-after", "1".into())], body.into())
        } else {
            items_answer(request, CATALOG)
        }
    });
    let stand_in = StandIn::start(tokens(3600), api).await;
    let client = stand_in.client(); // backoff 1 ms: the wait is Retry-After's
    let started = Instant::now();
    let answer = client
        .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
        .await
        .unwrap();
    assert!(answer[0].available);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stand_in.api_calls(), 2);
    assert_eq!(stand_in.token_calls(), 1);
}

#[tokio::test]
async fn throttling_and_server_errors_are_unavailable_after_the_retries() {
    for status in [429, 500, 503] {
        let api: Handler = Arc::new(move |_, _| (status, vec![], String::new()));
        let stand_in = StandIn::start(tokens(3600), api).await;
        let message = unavailable(
            stand_in
                .client()
                .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
                .await,
        );
        assert!(message.contains("3 attempts"), "{status}: {message}");
        assert!(message.contains(&status.to_string()), "{message}");
        assert_eq!(stand_in.api_calls(), 3, "{status}: retries 2");
    }
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_is_unavailable_at_once() {
    let api: Handler = Arc::new(|_, _| (429, vec![("retry-after", "86400".into())], "".into()));
    let stand_in = StandIn::start(tokens(3600), api).await;
    let message = unavailable(
        stand_in
            .client()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(message.contains("more than 300 s"), "{message}");
    assert_eq!(stand_in.api_calls(), 1);
}

#[tokio::test]
async fn a_403_is_rejected_with_the_apis_reason_and_not_retried() {
    let api: Handler = Arc::new(|_, _| {
        let body =
            r#"{"errors":[{"code":"AccessDenied","message":"The Associate is not eligible."}]}"#;
        (403, vec![], body.into())
    });
    let stand_in = StandIn::start(tokens(3600), api).await;
    let message = rejected(
        stand_in
            .client()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(
        message.contains("403 Forbidden: AccessDenied: The Associate is not eligible."),
        "{message}"
    );
    assert_eq!(stand_in.api_calls(), 1);
}

#[tokio::test]
async fn a_400_is_rejected() {
    let api: Handler = Arc::new(|_, _| (400, vec![], "bad request".into()));
    let stand_in = StandIn::start(tokens(3600), api).await;
    let message = rejected(
        stand_in
            .client()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(
        message.contains("400 Bad Request: bad request"),
        "{message}"
    );
    assert_eq!(stand_in.api_calls(), 1);
}

#[tokio::test]
async fn refused_credentials_at_the_token_endpoint_are_rejected_and_never_echo_the_secret() {
    let token: Handler = Arc::new(|_, _| {
        let body =
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#;
        (401, vec![], body.into())
    });
    let stand_in = StandIn::start(token, catalog()).await;
    let message = rejected(
        stand_in
            .client()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(
        message.contains("invalid_client: Client authentication failed"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
    assert_eq!((stand_in.token_calls(), stand_in.api_calls()), (1, 0));
}

#[tokio::test]
async fn api_down_is_unavailable() {
    // A port that nothing listens on any more.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let stand_in = StandIn::start(tokens(3600), catalog()).await;
    let mut config = stand_in.config();
    config.api_url = Some(dead.clone());
    let message = unavailable(
        CreatorsClient::new(&config)
            .unwrap()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(
        message.contains("could not connect to the API"),
        "{message}"
    );
    assert!(message.contains("3 attempts"), "{message}");
    assert!(!message.contains("127.0.0.1"), "no address: {message}");
    assert_eq!(stand_in.token_calls(), 1);

    // The token endpoint down as well.
    config.token_url = Some(format!("{dead}{TOKEN_PATH}"));
    let message = unavailable(
        CreatorsClient::new(&config)
            .unwrap()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(
        message.contains("could not connect to the token endpoint"),
        "{message}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let stand_in = StandIn::start(tokens(3600), catalog()).await;
    let elsewhere = format!("{}/elsewhere", stand_in.base);
    let api: Handler =
        Arc::new(move |_, _| (302, vec![("location", elsewhere.clone())], "".into()));
    let redirecting = StandIn::start(tokens(3600), api).await;
    let message = rejected(
        redirecting
            .client()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(message.contains("redirects are not followed"), "{message}");
    assert_eq!(redirecting.seen.other_calls.load(Ordering::SeqCst), 0);
    assert_eq!(stand_in.seen.other_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_unavailable() {
    let api: Handler = Arc::new(|_, _| {
        let title = "x".repeat(MAX_RESPONSE_BYTES);
        let body = serde_json::json!({ "itemsResult": { "items": [{ "asin": "B08N5WRWNW", "itemInfo": { "title": { "displayValue": title } } }] } });
        (200, vec![], body.to_string())
    });
    let stand_in = StandIn::start(tokens(3600), api).await;
    let message = unavailable(
        stand_in
            .client()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(message.contains("larger than 1048576 bytes"), "{message}");
    assert_eq!(stand_in.api_calls(), 1);
}

#[tokio::test]
async fn a_malformed_answer_is_unavailable() {
    let api: Handler = Arc::new(|_, _| (200, vec![], "<html>maintenance</html>".into()));
    let stand_in = StandIn::start(tokens(3600), api).await;
    let message = unavailable(
        stand_in
            .client()
            .lookup("amazon.de", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(message.contains("not the expected JSON"), "{message}");
}

#[tokio::test]
async fn bad_input_is_rejected_before_any_request() {
    let stand_in = StandIn::start(tokens(3600), catalog()).await;
    let client = stand_in.client();
    let cases: [(&str, Vec<String>, &str); 3] = [
        (
            "amazon.xx",
            asins(&["B08N5WRWNW"]),
            "not an Amazon marketplace",
        ),
        ("amazon.de", asins(&["B08N5-RWNW"]), "not an ASIN"),
        ("amazon.de", vec!["B08N5WRWNW".to_owned(); 11], "at most 10"),
    ];
    for (marketplace, asins, why) in cases {
        let message = rejected(client.lookup(marketplace, &asins).await);
        assert!(message.contains(why), "{message}");
    }
    let mut config = stand_in.config();
    config.partner_tag = None;
    let message = rejected(
        CreatorsClient::new(&config)
            .unwrap()
            .lookup("amazon.fr", &asins(&["B08N5WRWNW"]))
            .await,
    );
    assert!(
        message.contains("no partner tag for amazon.fr"),
        "{message}"
    );
    assert_eq!((stand_in.token_calls(), stand_in.api_calls()), (0, 0));
}

#[tokio::test]
async fn duplicate_asins_are_asked_once_and_answered_each_time() {
    let stand_in = StandIn::start(tokens(3600), catalog()).await;
    let answer = stand_in
        .client()
        .lookup("amazon.de", &asins(&["B08N5WRWNW", "b08n5wrwnw"]))
        .await
        .unwrap();
    assert_eq!(answer.len(), 2);
    assert!(answer.iter().all(|i| i.available));
    assert_eq!(
        stand_in.api_requests()[0].json()["itemIds"],
        serde_json::json!(["B08N5WRWNW"])
    );
}

#[tokio::test]
async fn requests_are_spaced_to_the_rate_limit_across_callers() {
    let stand_in = StandIn::start(tokens(3600), catalog()).await;
    let mut config = stand_in.config();
    config.requests_per_second = 20.0; // 50 ms apart
    config.max_concurrent = 4;
    let client = CreatorsClient::new(&config).unwrap();
    let clone = client.clone();
    let one = asins(&["B08N5WRWNW"]);
    let started = Instant::now();
    let (a, b, c, d) = tokio::join!(
        client.lookup("amazon.de", &one),
        clone.lookup("amazon.de", &one),
        client.lookup("amazon.it", &one),
        client.lookup("amazon.fr", &one),
    );
    for r in [a, b, c, d] {
        r.unwrap();
    }
    assert_eq!(stand_in.api_calls(), 4);
    // N requests take at least (N - 1) / rps.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_limiter_hands_out_slots_one_spacing_apart() {
    let limiter = Arc::new(RateLimiter::new(Duration::from_millis(500)));
    let started = Instant::now();
    let mut waits = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let limiter = limiter.clone();
        waits.spawn(async move {
            limiter.wait().await;
            started.elapsed()
        });
    }
    let mut at = waits.join_all().await;
    at.sort();
    let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [0, 500, 1000, 1500, 2000]);

    // An idle limiter does not bank slots: after a pause, one wait is
    // immediate and the next is a spacing later.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = Instant::now();
    limiter.wait().await;
    assert_eq!(idle.elapsed(), Duration::ZERO);
    limiter.wait().await;
    assert_eq!(idle.elapsed(), Duration::from_millis(500));
}

#[test]
fn refresh_margin_is_a_tenth_at_most_a_minute() {
    assert_eq!(
        refresh_margin(Duration::from_secs(100)),
        Duration::from_secs(10)
    );
    assert_eq!(
        refresh_margin(Duration::from_secs(3600)),
        Duration::from_secs(60)
    );
    assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
}

#[test]
fn config_reads_from_toml_with_defaults_and_refuses_unknown_keys() {
    let config: CreatorsConfig = toml::from_str(
        r#"
        credential_id = "id"
        credential_secret = "secret"
        version = "2.2"
        partner_tags = { "amazon.de" = "mytag-21" }
        "#,
    )
    .unwrap();
    assert_eq!(config.requests_per_second, 1.0);
    assert_eq!(config.timeout_ms, 5000);
    assert_eq!(config.max_concurrent, 2);
    assert_eq!(config.retries, 3);
    assert_eq!(config.backoff_ms, 1000);
    assert_eq!(config.partner_tag, None);
    assert_eq!(config.partner_tags["amazon.de"], "mytag-21");
    assert!(config.token_url.is_none() && config.api_url.is_none());
    let client = CreatorsClient::new(&config).unwrap();
    assert_eq!(
        client.inner.token_url.as_str(),
        "https://creatorsapi.auth.eu-south-2.amazoncognito.com/oauth2/token"
    );
    assert_eq!(
        client.inner.get_items_url.as_str(),
        "https://creatorsapi.amazon/catalog/v1/getItems"
    );

    let typo = toml::from_str::<CreatorsConfig>(
        "credential_id = \"id\"\ncredential_secret = \"s\"\nversion = \"3.1\"\nrequest_per_second = 2.0\n",
    )
    .unwrap_err();
    assert!(
        typo.to_string()
            .contains("unknown field `request_per_second`"),
        "{typo}"
    );
}

#[test]
fn every_version_has_its_token_endpoint() {
    for (version, host, flavour) in [
        (
            "2.1",
            "creatorsapi.auth.us-east-1.amazoncognito.com",
            Flavour::Cognito,
        ),
        (
            "2.2",
            "creatorsapi.auth.eu-south-2.amazoncognito.com",
            Flavour::Cognito,
        ),
        (
            "2.3",
            "creatorsapi.auth.us-west-2.amazoncognito.com",
            Flavour::Cognito,
        ),
        ("3.1", "api.amazon.com", Flavour::LoginWithAmazon),
        ("3.2", "api.amazon.co.uk", Flavour::LoginWithAmazon),
        ("3.3", "api.amazon.co.jp", Flavour::LoginWithAmazon),
    ] {
        let client = CreatorsClient::new(&CreatorsConfig::new("id", "secret", version)).unwrap();
        assert_eq!(client.inner.token_url.host_str(), Some(host), "{version}");
        assert_eq!(client.inner.flavour, flavour, "{version}");
    }
    // An unknown minor version of a known kind works with an explicit URL.
    let mut config = CreatorsConfig::new("id", "secret", "3.9");
    assert!(CreatorsClient::new(&config).is_err());
    config.token_url = Some("https://api.amazon.com/auth/o2/token".into());
    assert!(CreatorsClient::new(&config).is_ok());
}

#[test]
fn invalid_config_reports_every_problem() {
    let mut config = CreatorsConfig::new(" ", "", "4.0");
    config.api_url = Some("http://creatorsapi.amazon".into());
    config.token_url = Some("https://user:pw@example.com/token?x=1".into());
    config.partner_tag = Some(String::new());
    config.partner_tags.insert("amazon.xx".into(), "t".into());
    config.partner_tags.insert("amazon.de".into(), " ".into());
    config.requests_per_second = 0.0;
    config.timeout_ms = 0;
    config.max_concurrent = 0;
    let message = CreatorsClient::new(&config).unwrap_err();
    let expected = [
        "credential_id: must not be empty",
        "credential_secret: must not be empty",
        "version: `4.0` is not a Creators API credential version",
        "token_url: `https://user:pw@example.com/token?x=1` must not carry credentials",
        "api_url: `http://creatorsapi.amazon` must be https (http only on a loopback address)",
        "partner_tag: must not be empty when set",
        "partner_tags.amazon.de: must not be empty",
        "partner_tags: `amazon.xx` is not an Amazon marketplace domain",
        "requests_per_second: must be between 0.001 and 1000, not 0",
        "timeout_ms: must not be zero",
        "max_concurrent: must be at least 1",
    ];
    for want in expected {
        assert!(message.contains(want), "missing {want:?} in {message}");
    }
    assert_eq!(
        message.matches("; ").count(),
        expected.len() - 1,
        "{message}"
    );

    for rps in [f64::NAN, f64::INFINITY, -1.0, 1e9] {
        let mut config = CreatorsConfig::new("id", "secret", "2.1");
        config.requests_per_second = rps;
        assert!(CreatorsClient::new(&config).is_err(), "{rps}");
    }
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let mut config = CreatorsConfig::new("my-id", "s3cr3t-value", "2.2");
    config.partner_tag = Some("t-20".into());
    let client = CreatorsClient::new(&config).unwrap();
    for printed in [format!("{config:?}"), format!("{client:?}")] {
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("my-id"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}

#[test]
fn marketplaces_are_named_by_domain_with_or_without_www() {
    for (input, want) in [
        ("amazon.de", Some("amazon.de")),
        ("www.amazon.co.uk", Some("amazon.co.uk")),
        ("WWW.Amazon.COM.", Some("amazon.com")),
        (" amazon.co.jp ", Some("amazon.co.jp")),
        ("amazon.xx", None),
        ("smile.amazon.com", None),
        ("", None),
        ("www.", None),
    ] {
        assert_eq!(marketplace_domain(input), want, "{input:?}");
    }
}

#[test]
fn lookups_are_send_and_the_client_is_a_catalog_object() {
    fn assert_send<T: Send>(_: &T) {}
    let client = CreatorsClient::new(&CreatorsConfig::new("id", "secret", "2.1")).unwrap();
    let catalog: Arc<dyn Catalog> = Arc::new(client);
    let list = asins(&["B08N5WRWNW"]);
    let future = catalog.lookup("amazon.com", &list);
    assert_send(&future);
}

#[test]
fn only_unavailable_is_retryable() {
    assert!(CatalogError::Unavailable("x".into()).retryable());
    assert!(!CatalogError::Rejected("x".into()).retryable());
}
