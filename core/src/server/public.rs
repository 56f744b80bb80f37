//! The public redirect host: `GET /{code}`, middleware mode `GET /go?url=`,
//! and `robots.txt`. Nothing else is served here.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tracing::{debug, error, warn};

use super::admission::{self, Permit};
use super::redirect::{Resolution, resolve};
use super::{Body, Conn, PublicHost, json_error, text};
use crate::cache::{CachedLink, LinkRef, Lookup};
use crate::classify::{classify, referrer_host};
use crate::clock::now_ms;
use crate::error::ErrorCode;
use crate::links::LinkError;
use crate::metrics::{CacheResult, Outcome, Route};
use crate::store::{ClickEvent, StoreError, validate_code};

const NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");

/// A public-host response: ready at once for everything that needs no store
/// (every cache hit, the 404s and 400s, robots.txt), or a boxed future for
/// the rare requests that wait on the store (a cache miss). The hot path so
/// builds no async state machine: nothing to set up, move or poll again.
pub(super) enum Handled {
    Ready(Option<Response<Body>>),
    Waiting(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Future for Handled {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Handled::Ready(response) => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")))),
            Handled::Waiting(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// What the synchronous part of a route decided.
enum Step {
    Done(Response<Body>),
    /// A redirect code that is in no cache: ask the store.
    LookUp,
    /// A middleware URL (normalised) that is in no cache: find or make its link.
    Generate(String),
}

/// The public host's service on one connection. hyper calls it by
/// reference, so a request clones nothing: it takes a permit, and a cache
/// hit is answered before `call` returns.
#[derive(Debug)]
pub(super) struct Public {
    conn: Arc<Conn>,
}

impl Public {
    pub(super) fn new(conn: Arc<Conn>) -> Public {
        Public { conn }
    }
}

impl hyper::service::Service<Request<Incoming>> for Public {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Handled;

    fn call(&self, req: Request<Incoming>) -> Handled {
        match admission::admit(&self.conn) {
            Some(permit) => handle(permit, req),
            None => Handled::Ready(Some(admission::shed(&self.conn))),
        }
    }
}

/// Routes a public-host request admitted with `permit`.
fn handle(permit: Permit<&Arc<Conn>>, req: Request<Incoming>) -> Handled {
    let conn: &Arc<Conn> = permit.arc();
    let app = &conn.app;
    let peer = conn.peer;
    let started = Instant::now();
    let (route, step) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/go") => (Route::Go, go(app, peer, &req)),
        (&Method::GET | &Method::HEAD, "/robots.txt") => (
            Route::Other,
            Step::Done(text(StatusCode::OK, "User-agent: *\nDisallow: /\n")),
        ),
        (&Method::GET | &Method::HEAD, path) => {
            (Route::Redirect, redirect(app, peer, &req, &path[1..]))
        }
        _ => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            (Route::Other, Step::Done(r))
        }
    };
    match step {
        // The permit goes back as this returns.
        Step::Done(response) => {
            finish(app, &req, route, started, &response);
            Handled::Ready(Some(response))
        }
        // A cache miss: the store answers, on a future that owns the permit.
        slow => {
            let permit = permit.owned();
            Handled::Waiting(Box::pin(async move {
                let app = &permit.conn().app;
                let response = match slow {
                    Step::Generate(key) => generate(app, peer, &req, key).await,
                    _ => look_up(app, peer, &req, &req.uri().path()[1..]).await,
                };
                finish(app, &req, route, started, &response);
                response
            }))
        }
    }
}

/// Times a finished request.
fn finish(
    app: &PublicHost,
    req: &Request<Incoming>,
    route: Route,
    started: Instant,
    response: &Response<Body>,
) {
    let elapsed = started.elapsed();
    app.metrics.request_duration(false, route, elapsed);
    debug!(
        method = %req.method(),
        path = req.uri().path(),
        status = response.status().as_u16(),
        micros = elapsed.as_micros() as u64,
        "public request"
    );
}

fn not_found(app: &PublicHost) -> Response<Body> {
    app.metrics.failed(Outcome::NotFound);
    text(StatusCode::NOT_FOUND, "no such link\n")
}

fn redirect(app: &PublicHost, peer: IpAddr, req: &Request<Incoming>, code: &str) -> Step {
    match app
        .caches
        .links
        .get(code, |link| respond(app, peer, req, link))
    {
        Lookup::Hit(response) => {
            app.metrics.cache_lookup(false, CacheResult::Hit);
            Step::Done(response)
        }
        Lookup::Missing => {
            app.metrics.cache_lookup(false, CacheResult::NegativeHit);
            Step::Done(not_found(app))
        }
        // Codes are short and plain; anything else cannot exist, and is not
        // worth a store lookup or a negative-cache slot. (Only codes that
        // passed this check are ever cached, so hits skip it.)
        Lookup::Unknown if validate_code(code).is_err() => Step::Done(not_found(app)),
        Lookup::Unknown => {
            app.metrics.cache_lookup(false, CacheResult::Miss);
            Step::LookUp
        }
    }
}

/// A code in no cache: the store has the link, or knows it does not exist.
async fn look_up(
    app: &PublicHost,
    peer: IpAddr,
    req: &Request<Incoming>,
    code: &str,
) -> Response<Body> {
    let store = Arc::clone(&app.store);
    let key = code.to_owned();
    let seen = app.caches.changes_seen();
    match with_timeout(app, move || store.link_by_code(&key)).await {
        Ok(Ok(Some(link))) => {
            let cached = CachedLink::from_link(&link, |p, m| app.metrics.link_label(p, m));
            let response = respond(app, peer, req, cached.as_ref());
            app.caches.links.insert(code, cached);
            app.caches.keep_link(seen, code);
            response
        }
        Ok(Ok(None)) => {
            app.caches.links.insert_missing(code);
            app.caches.keep_missing(seen, code);
            not_found(app)
        }
        Ok(Err(e)) => store_unavailable(app, &e),
        Err(e) => {
            error!(error = %e, "link lookup task failed");
            app.metrics.failed(Outcome::Error);
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

/// Runs a store call on the blocking pool, bounded by the request timeout
/// (the redirect host's only wait). A timeout reads as the store failing.
async fn with_timeout<R: Send + 'static>(
    app: &PublicHost,
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<Result<R, StoreError>, tokio::task::JoinError> {
    match tokio::time::timeout(app.store_timeout, tokio::task::spawn_blocking(f)).await {
        Ok(joined) => joined,
        Err(_) => Ok(Err(StoreError::Timeout(app.store_timeout))),
    }
}

fn store_unavailable(app: &PublicHost, e: &StoreError) -> Response<Body> {
    error!(error = %e, "store unavailable");
    app.metrics.failed(Outcome::Error);
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily unavailable, retry shortly\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Answers the redirect for a resolved link and records the click.
fn respond(
    app: &PublicHost,
    peer: IpAddr,
    req: &Request<Incoming>,
    link: LinkRef<'_>,
) -> Response<Body> {
    let headers = req.headers();
    let visitor = classify(
        req.method() == Method::HEAD,
        headers.get(header::USER_AGENT).map(HeaderValue::as_bytes),
    );
    let mut minted_ms = None;
    let mint = || {
        let (id, ms) = app.ids.mint();
        minted_ms = Some(ms);
        id
    };
    let country = app.geo.country(headers, Some(peer));
    let (location, click_id, target, provider) = match resolve(link, visitor, country, mint) {
        Resolution::Gone => {
            app.metrics.failed(Outcome::Gone);
            return text(StatusCode::GONE, "this link has been disabled\n");
        }
        Resolution::Redirect {
            location,
            click_id,
            target,
            provider,
        } => (location, click_id, target, provider),
    };
    let Ok(location) = HeaderValue::from_maybe_shared(Bytes::from(location)) else {
        // Templates are checked when built, so this is a bug, not input.
        error!(
            link = link.id,
            "stored template is not a valid header value"
        );
        app.metrics.failed(Outcome::Error);
        return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
    };
    app.clicklog.record(ClickEvent {
        click_id,
        link_id: link.id,
        at_ms: minted_ms.unwrap_or_else(now_ms),
        bot: visitor.bot,
        referrer_host: referrer_host(headers.get(header::REFERER).map(HeaderValue::as_bytes)),
        ua_class: visitor.class,
        country,
        target,
    });
    app.metrics.redirected(provider, visitor.bot);

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = app.redirect_status;
    let h = response.headers_mut();
    h.insert(header::LOCATION, location);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    response
}

/// Middleware mode: redirect a product URL through its provider. Only URLs a
/// loaded provider accepts are redirected; the proxy is never an open redirect.
fn go(app: &PublicHost, peer: IpAddr, req: &Request<Incoming>) -> Step {
    let bad = |message: &str| {
        app.metrics.failed(Outcome::BadRequest);
        Step::Done(json_error(ErrorCode::InvalidInput, message))
    };
    let Some(raw) = super::redirect::url_param(req.uri().query()) else {
        return bad("missing the `url` query parameter: /go?url=<product URL>");
    };
    let key = match super::redirect::middleware_key(&raw) {
        Ok(key) => key,
        Err(message) => return bad(message),
    };

    if let Some(response) = app
        .caches
        .go
        .get(&key, |_, link| respond(app, peer, req, link))
    {
        app.metrics.cache_lookup(true, CacheResult::Hit);
        return Step::Done(response);
    }
    app.metrics.cache_lookup(true, CacheResult::Miss);
    Step::Generate(key)
}

/// A middleware URL in no cache: the link service finds the link made for
/// it earlier (by this instance or another sharing the store) or makes one
/// through the provider that accepts it; then redirect.
async fn generate(
    app: &PublicHost,
    peer: IpAddr,
    req: &Request<Incoming>,
    key: String,
) -> Response<Body> {
    let seen = app.caches.changes_seen();
    let link = match app.links.for_url(&key).await {
        Ok(created) => created.link,
        Err(LinkError::Store(e)) => return store_unavailable(app, &e),
        Err(e) => {
            let code = e.code();
            if code.is_client_error() {
                app.metrics.failed(Outcome::BadRequest);
                return json_error(code, &e.message());
            }
            // A provider or upstream failure: the details go to the log.
            warn!(error = %e, "middleware build failed");
            app.metrics.failed(Outcome::Error);
            let message = if code == ErrorCode::Internal {
                "internal error".to_owned()
            } else {
                e.message()
            };
            return json_error(code, &message);
        }
    };
    let cached = CachedLink::from_link(&link, |p, m| app.metrics.link_label(p, m));
    let response = respond(app, peer, req, cached.as_ref());
    app.caches.go.insert(&key, &link.code, cached.clone());
    app.caches.links.insert(&link.code, cached);
    app.caches.keep_link(seen, &link.code);
    response
}
