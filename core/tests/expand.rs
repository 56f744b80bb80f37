//! Short-link expansion against a local stand-in for `amzn.to`.
//!
//! Each test starts its own hyper server on `127.0.0.1:0` and points the
//! expander's upstream override for every short host at it, so no request
//! ever leaves the machine. The stand-in counts requests per path and
//! records the `Host` and `User-Agent` headers it was sent.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HOST, LOCATION, USER_AGENT};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use linkwright_core::expand::{ExpandConfig, ExpandError, Expander};
use tokio::net::TcpListener;

const PRODUCT: &str = "https://www.amazon.com/dp/B08N5WRWNW?ref=x";

/// How many times `/flaky` answers 503 before it redirects.
const FLAKY_FAILURES: usize = 2;

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    /// Requests per path.
    hits: Mutex<HashMap<String, usize>>,
    /// `(path, Host header)` of every request, in order.
    hosts: Mutex<Vec<(String, String)>>,
    /// `User-Agent` headers seen.
    agents: Mutex<Vec<String>>,
    /// Requests `/flaky` has answered.
    flaky: AtomicUsize,
    /// Bytes of endless bodies handed to hyper to send.
    endless_bytes: Arc<AtomicUsize>,
}

/// A running stand-in.
struct StandIn {
    base: String,
    seen: Arc<Seen>,
}

impl StandIn {
    async fn start() -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let state = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| route(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StandIn { base, seen }
    }

    fn hits(&self, path: &str) -> usize {
        self.seen
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.seen.hits.lock().unwrap().values().sum()
    }

    /// An expander whose short hosts all resolve to this stand-in.
    fn expander(&self, tweak: impl FnOnce(&mut ExpandConfig)) -> Expander {
        let mut config = ExpandConfig {
            timeout: Duration::from_secs(2),
            backoff: Duration::from_millis(10),
            ..ExpandConfig::default()
        };
        for host in ["amzn.to", "amzn.eu", "a.co"] {
            config
                .upstream_override
                .insert(host.to_owned(), self.base.clone());
        }
        tweak(&mut config);
        Expander::new(config).unwrap()
    }
}

type ResponseBody = BoxBody<Bytes, Infallible>;

fn redirect(status: StatusCode, location: &str) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header(LOCATION, location)
        .body(Full::new(Bytes::from_static(b"moved")).boxed())
        .unwrap()
}

fn status(status: StatusCode) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .body(Empty::new().boxed())
        .unwrap()
}

/// A body that never ends, for showing bodies are not read to the end; it
/// counts the bytes it produces.
struct Endless(Arc<AtomicUsize>);

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        const CHUNK: &[u8] = &[b'x'; 16 * 1024];
        self.0.fetch_add(CHUNK.len(), Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(CHUNK)))))
    }
}

async fn route(
    seen: Arc<Seen>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    *seen.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    seen.hosts
        .lock()
        .unwrap()
        .push((path.clone(), header(HOST)));
    seen.agents.lock().unwrap().push(header(USER_AGENT));

    Ok(match path.as_str() {
        "/abc" => redirect(StatusCode::MOVED_PERMANENTLY, PRODUCT),
        "/two" => redirect(StatusCode::FOUND, "https://amzn.to/abc"),
        "/via-eu" => redirect(StatusCode::FOUND, "https://amzn.eu/abc"),
        "/evil" => redirect(StatusCode::FOUND, "https://evil.example/"),
        "/loop" => redirect(StatusCode::FOUND, "https://amzn.to/loop"),
        "/relative" => redirect(StatusCode::FOUND, "/abc"),
        "/scheme-relative" => redirect(StatusCode::FOUND, "//www.amazon.co.uk/dp/B000000001"),
        "/http-target" => redirect(
            StatusCode::TEMPORARY_REDIRECT,
            "http://amazon.de/dp/B000000002",
        ),
        "/metadata" => redirect(
            StatusCode::FOUND,
            "http://169.254.169.254/latest/meta-data/",
        ),
        "/lookalike" => redirect(
            StatusCode::FOUND,
            "https://www.amazon.com.evil.example/dp/X",
        ),
        "/no-location" => status(StatusCode::FOUND),
        "/gone" => status(StatusCode::NOT_FOUND),
        "/gone410" => status(StatusCode::GONE),
        "/forbidden" => status(StatusCode::FORBIDDEN),
        "/flaky" => {
            if seen.flaky.fetch_add(1, Ordering::SeqCst) < FLAKY_FAILURES {
                status(StatusCode::SERVICE_UNAVAILABLE)
            } else {
                redirect(StatusCode::MOVED_PERMANENTLY, PRODUCT)
            }
        }
        "/down" => status(StatusCode::SERVICE_UNAVAILABLE),
        "/rate-limited" => status(StatusCode::TOO_MANY_REQUESTS),
        "/ok" => Response::new(Full::new(Bytes::from_static(b"<html>a page</html>")).boxed()),
        "/ok-endless" => Response::new(Endless(seen.endless_bytes.clone()).boxed()),
        "/redirect-endless" => Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(LOCATION, PRODUCT)
            .body(Endless(seen.endless_bytes.clone()).boxed())
            .unwrap(),
        "/hang" => {
            // Never answers: the sender is alive until after the receive,
            // so the receive never completes and the client's timeout must
            // end the request.
            let (never_sent, never) = tokio::sync::oneshot::channel::<()>();
            let _ = never.await;
            drop(never_sent);
            status(StatusCode::OK)
        }
        _ => status(StatusCode::IM_A_TEAPOT),
    })
}

fn unwrap_err(result: Result<String, ExpandError>) -> ExpandError {
    match result {
        Ok(url) => panic!("expected an error, got {url}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_redirect_to_amazon_returns_the_product_url() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    assert_eq!(e.expand("https://amzn.to/abc").await.unwrap(), PRODUCT);
    assert_eq!(s.hits("/abc"), 1);
    // The override keeps the short host in Host; our User-Agent is sent.
    assert_eq!(
        *s.seen.hosts.lock().unwrap(),
        [("/abc".to_owned(), "amzn.to".to_owned())]
    );
    assert_eq!(
        *s.seen.agents.lock().unwrap(),
        [format!("linkwright/{}", env!("CARGO_PKG_VERSION"))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn short_host_is_matched_case_insensitively_and_with_www() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    assert_eq!(e.expand("https://AMZN.TO/abc").await.unwrap(), PRODUCT);
    assert_eq!(e.expand("http://www.amzn.to/abc").await.unwrap(), PRODUCT);
    let hosts: Vec<String> = s
        .seen
        .hosts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, h)| h.clone())
        .collect();
    assert_eq!(hosts, ["amzn.to", "www.amzn.to"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hops_through_the_short_host() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    assert_eq!(e.expand("https://amzn.to/two").await.unwrap(), PRODUCT);
    assert_eq!((s.hits("/two"), s.hits("/abc")), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_to_another_short_host_sends_that_host() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    assert_eq!(e.expand("https://a.co/via-eu").await.unwrap(), PRODUCT);
    assert_eq!(
        *s.seen.hosts.lock().unwrap(),
        [
            ("/via-eu".to_owned(), "a.co".to_owned()),
            ("/abc".to_owned(), "amzn.eu".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn relative_locations_are_resolved_against_the_short_link() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    // "/abc" resolves to https://amzn.to/abc, fetched through the stand-in.
    assert_eq!(e.expand("https://amzn.to/relative").await.unwrap(), PRODUCT);
    assert_eq!((s.hits("/relative"), s.hits("/abc")), (1, 1));
    // "//host/path" keeps the short link's scheme.
    assert_eq!(
        e.expand("https://amzn.to/scheme-relative").await.unwrap(),
        "https://www.amazon.co.uk/dp/B000000001"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn target_page_is_returned_not_fetched() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    assert_eq!(
        e.expand("https://amzn.to/http-target").await.unwrap(),
        "http://amazon.de/dp/B000000002"
    );
    assert_eq!(s.total_hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_off_the_allow_list_are_disallowed() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    for (path, named) in [
        ("/evil", "evil.example"),
        ("/lookalike", "www.amazon.com.evil.example"),
        ("/metadata", "169.254.169.254"),
    ] {
        let err = unwrap_err(e.expand(&format!("https://amzn.to{path}")).await);
        match &err {
            ExpandError::Disallowed(m) => assert!(m.contains(named), "{path}: {m}"),
            other => panic!("{path}: expected Disallowed, got {other:?}"),
        }
        assert!(!err.retryable());
        assert_eq!(s.hits(path), 1, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_loop_stops_after_max_hops() {
    let s = StandIn::start().await;
    let e = s.expander(|c| c.max_hops = 3);
    let err = unwrap_err(e.expand("https://amzn.to/loop").await);
    match &err {
        ExpandError::Disallowed(m) => assert!(m.contains("more than 3 redirects"), "{m}"),
        other => panic!("expected Disallowed, got {other:?}"),
    }
    assert!(!err.retryable());
    assert_eq!(s.hits("/loop"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_links_and_non_redirects_are_not_found() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    for (path, says) in [
        ("/gone", "404 Not Found"),
        ("/gone410", "410 Gone"),
        ("/no-location", "without a Location"),
        ("/ok", "the short link does not redirect to a product"),
    ] {
        let err = unwrap_err(e.expand(&format!("https://amzn.to{path}")).await);
        match &err {
            ExpandError::NotFound(m) => assert!(m.contains(says), "{path}: {m}"),
            other => panic!("{path}: expected NotFound, got {other:?}"),
        }
        assert!(!err.retryable());
        assert_eq!(s.hits(path), 1, "{path}: not retried");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_bodies_are_not_read_to_the_end() {
    let s = StandIn::start().await;
    let e = s.expander(|c| c.retries = 0);
    assert_eq!(
        e.expand("https://amzn.to/redirect-endless").await.unwrap(),
        PRODUCT
    );
    let err = unwrap_err(e.expand("https://amzn.to/ok-endless").await);
    assert!(matches!(err, ExpandError::NotFound(_)), "{err:?}");
    // The client reads at most max_body_bytes (64 KiB) of each; the server
    // gets no further ahead than the socket buffers allow (about 8 MB here).
    // Reading on until the 2 s timeout moves gigabytes on loopback.
    let produced = s.seen.endless_bytes.load(Ordering::SeqCst);
    assert!(produced < 256 << 20, "{produced} bytes sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_are_retried_until_success() {
    let s = StandIn::start().await;
    let e = s.expander(|c| c.retries = 2);
    assert_eq!(e.expand("https://amzn.to/flaky").await.unwrap(), PRODUCT);
    assert_eq!(s.hits("/flaky"), FLAKY_FAILURES + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_stop_after_the_configured_count() {
    let s = StandIn::start().await;
    let e = s.expander(|c| c.retries = 1);
    let err = unwrap_err(e.expand("https://amzn.to/flaky").await);
    match &err {
        ExpandError::Unavailable(m) => {
            assert!(
                m.contains("503 Service Unavailable") && m.contains("2 attempts"),
                "{m}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.retryable());
    assert_eq!(s.hits("/flaky"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_5xx_and_429_are_unavailable_after_retries() {
    let s = StandIn::start().await;
    let e = s.expander(|c| c.retries = 2);
    for path in ["/down", "/rate-limited"] {
        let err = unwrap_err(e.expand(&format!("https://amzn.to{path}")).await);
        assert!(
            matches!(err, ExpandError::Unavailable(_)),
            "{path}: {err:?}"
        );
        assert!(err.retryable());
        assert_eq!(s.hits(path), 3, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn other_client_errors_are_unavailable_without_retrying() {
    let s = StandIn::start().await;
    let e = s.expander(|c| c.retries = 2);
    let err = unwrap_err(e.expand("https://amzn.to/forbidden").await);
    match &err {
        ExpandError::Unavailable(m) => assert!(m.contains("403 Forbidden"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(s.hits("/forbidden"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_host_that_never_answers_times_out_as_unavailable() {
    let s = StandIn::start().await;
    let e = s.expander(|c| {
        c.timeout = Duration::from_millis(200);
        c.retries = 1;
    });
    let started = Instant::now();
    let err = unwrap_err(e.expand("https://amzn.to/hang").await);
    let elapsed = started.elapsed();
    match &err {
        ExpandError::Unavailable(m) => {
            assert!(m.contains("timed out") && m.contains("2 attempts"), "{m}");
            assert!(!m.contains("127.0.0.1"), "the override address leaked: {m}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.retryable());
    assert_eq!(s.hits("/hang"), 2);
    // Two 200 ms attempts and a 10 ms backoff, with slack for a slow machine.
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_is_unavailable_after_retries() {
    // A "server" that accepts each connection and closes it at once.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let mut config = ExpandConfig {
        backoff: Duration::from_millis(10),
        retries: 1,
        ..ExpandConfig::default()
    };
    config
        .upstream_override
        .insert("amzn.to".into(), format!("http://{addr}"));
    let e = Expander::new(config).unwrap();
    let err = unwrap_err(e.expand("https://amzn.to/abc").await);
    match &err {
        ExpandError::Unavailable(m) => {
            assert!(m.contains("2 attempts"), "{m}");
            assert!(
                !m.contains(&addr.to_string()),
                "the override address leaked: {m}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.retryable());
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_short_inputs_are_refused_without_a_request() {
    let s = StandIn::start().await;
    let e = s.expander(|_| {});
    for input in [
        "https://www.amazon.com/dp/B08N5WRWNW",
        "https://evil.example/abc",
        "https://amzn.to.evil.example/abc",
        "ftp://amzn.to/abc",
        "amzn.to/abc",
        "https://amzn.to:8080/abc",
        "https://user:pw@amzn.to/abc",
        "",
    ] {
        assert!(!e.is_short_link(input), "{input}");
        let err = unwrap_err(e.expand(input).await);
        match &err {
            ExpandError::NotShortLink(s) => assert_eq!(s, input),
            other => panic!("{input}: expected NotShortLink, got {other:?}"),
        }
        assert!(!err.retryable());
    }
    assert_eq!(s.total_hits(), 0);
}
