//! The HTTP server: the public redirect host and the admin listener.
//!
//! Connections are served by hyper-util's auto builder (HTTP/1.1 and HTTP/2).
//! The admin listener serves behind the tower stack built in [`stack`]. The
//! public host does the same work without tower, whose per-request service
//! clone and `Oneshot` are a sizeable share of a redirect's own cost (see
//! benches/RESULTS.md): `public::Public` is a hyper
//! service that takes an admission permit (a concurrency limit that sheds at
//! once, in `admission`) and answers a cache hit before returning; the
//! header-read watchdog and graceful shutdown reach its connections through
//! `connections`. Shutdown stops accepting, lets in-flight requests finish
//! within the grace period (and says so when the deadline runs out), then
//! drains the click log.

mod admission;
mod connections;
mod follow;
mod notify;
mod public;
pub mod redirect;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tracing::{debug, error, info, warn};

use self::connections::{Connections, Control};
pub use crate::app::App;
use crate::config::{Config, ServerConfig};
use crate::error::ErrorCode;
use crate::metrics::Metrics;

/// Most header fields in a request to the public host (HTTP/1): hyper's own
/// bound, which it applies when none is configured. Configuring one, even a
/// smaller one, costs every request: hyper then fills a header table of that
/// size per request (~1,400 instructions, 8% of a redirect, in callgrind)
/// instead of taking an uninitialised one; see benches/RESULTS.md.
pub const MAX_HEADERS: usize = 100;

/// Largest request head to the public host, in bytes (request line and
/// headers; HTTP/1 read buffer and HTTP/2 header list).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Response body type of both listeners.
pub type Body = Full<Bytes>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({which}): {source}")]
    Bind {
        /// Which listener.
        which: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What the public host needs beyond the [`App`]: its admission limit and
/// how it answers. Derefs to the app.
#[derive(Debug)]
pub(crate) struct PublicHost {
    app: Arc<App>,
    /// The public host's concurrency limit.
    pub(crate) admission: admission::Admission,
    redirect_status: StatusCode,
    /// How long the redirect host waits for the store on a cache miss.
    store_timeout: Duration,
}

impl PublicHost {
    pub(crate) fn new(app: Arc<App>, s: &ServerConfig) -> PublicHost {
        PublicHost {
            app,
            admission: admission::Admission::new(s.max_concurrent_requests),
            redirect_status: StatusCode::from_u16(s.redirect_status).unwrap_or(StatusCode::FOUND),
            store_timeout: s.request_timeout,
        }
    }
}

impl std::ops::Deref for PublicHost {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

/// A server with both listeners bound, ready to run.
#[derive(Debug)]
pub struct Server {
    app: Arc<App>,
    public: TcpListener,
    admin: TcpListener,
    config: Config,
}

fn bind(addr: SocketAddr, backlog: u32, which: &'static str) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Bind {
        which,
        addr,
        source,
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(backlog).map_err(err)
}

impl Server {
    /// Binds both listeners. Must be called inside a tokio runtime.
    pub fn bind(config: Config, app: Arc<App>) -> Result<Server, ServeError> {
        let s = &config.server;
        let public = bind(s.public_addr, s.listen_backlog, "public")?;
        let admin = bind(s.admin_addr, 1024, "admin")?;
        app.short_urls
            .bound(public.local_addr().unwrap_or(s.public_addr));
        Ok(Server {
            app,
            public,
            admin,
            config,
        })
    }

    /// The public listener's address.
    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .local_addr()
            .unwrap_or(self.config.server.public_addr)
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or(self.config.server.admin_addr)
    }

    /// Serves until `shutdown` completes, then drains connections within the
    /// grace period and flushes the click log.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            app,
            public,
            admin,
            config,
        } = self;
        let s = &config.server;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(s.header_read_timeout)
            .keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        // The public host enforces the header-read timeout with one watchdog
        // for all its connections (see `connections`), not with hyper's
        // timer, which arms and clears a tokio timer on every request.
        // Its answers are small (a redirect has a head and no body), so
        // hyper writes each one from a single flat buffer rather than
        // queueing head and body for a vectored write, which costs less
        // server CPU per redirect (figures in benches/RESULTS.md).
        // A request to the public host is a short GET: a request head larger
        // than MAX_HEAD_BYTES, or with more than MAX_HEADERS fields, is
        // answered 431 and the connection closed.
        let mut public_builder = auto::Builder::new(TokioExecutor::new());
        public_builder
            .http1()
            .keep_alive(true)
            .writev(false)
            .max_buf_size(MAX_HEAD_BYTES);
        public_builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEAD_BYTES as u32);

        let admin_svc = {
            stack(
                crate::api::router(Arc::clone(&app), crate::console::router(Arc::clone(&app))),
                s.max_concurrent_requests,
                s.request_timeout,
                Arc::clone(&app.metrics),
            )
        };

        // Histograms keep samples until drained: drain them regularly even if
        // nobody scrapes.
        let upkeep = {
            let handle = app.prometheus.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    handle.run_upkeep();
                }
            })
        };

        // Localized links whose availability is stale or was assumed are
        // looked up again (only with catalog credentials).
        let relocalize = app.links.refresh_every().map(|every| {
            let links = Arc::clone(&app.links);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = links.refresh_localized(100).await {
                        warn!(error = %e, "localized links not refreshed");
                    }
                }
            })
        });

        let follower = tokio::spawn(follow::follow(
            Arc::clone(&app.caches),
            Arc::clone(&app.store) as Arc<dyn crate::store::LinkStore>,
            app.link_changes_seen,
            app.link_refresh,
        ));
        let node_lease = tokio::spawn(Arc::clone(&app.node).keep());
        // Bulk jobs nobody runs (queued, left by a restart or by an
        // instance that died) are claimed and run here, the first at once.
        let claims = tokio::spawn(Arc::clone(&app.jobs).claim_loop());
        let host = Arc::new(PublicHost::new(Arc::clone(&app), s));
        // Admin connections are few: hyper-util's graceful shutdown is
        // enough. Public ones are supervised through their own `Conn`.
        let graceful = GracefulShutdown::new();
        let connections = Arc::new(Connections::default());
        let watchdog = tokio::spawn(Arc::clone(&connections).watch(s.header_read_timeout));
        let geo_watch = app.geo_check.and_then(|every| app.geo.watch(every));
        app.set_ready(true);
        notify::ready();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = public.accept() => {
                    if let Some((stream, peer)) = accepted_stream(accepted, "public").await {
                        let conn = Arc::new(Conn {
                            app: Arc::clone(&host),
                            control: Arc::new(Control::new()),
                            peer: peer.ip(),
                        });
                        let registered = connections.register(&conn.control);
                        let served = public_builder
                            .serve_connection(TokioIo::new(stream), public::Public::new(Arc::clone(&conn)))
                            .into_owned();
                        tokio::spawn(async move {
                            let ended = connections::supervise(&conn.control, served, |c| {
                                c.graceful_shutdown()
                            })
                            .await;
                            if let Some(Err(e)) = ended {
                                debug!(error = %e, "public connection ended with an error");
                            }
                            drop(registered);
                        });
                    }
                }
                accepted = admin.accept() => {
                    if let Some((stream, peer)) = accepted_stream(accepted, "admin").await {
                        // The peer's address, for the console's limit on
                        // failed sign-ins per client.
                        let peer = Some(peer);
                        let svc = admin_svc.clone().map_request(move |mut req: http::Request<Incoming>| {
                            if let Some(peer) = peer {
                                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                            }
                            req
                        });
                        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
                        let conn = graceful.watch(conn.into_owned());
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                debug!(error = %e, "admin connection ended with an error");
                            }
                        });
                    }
                }
                () = &mut shutdown => break,
            }
        }

        info!("shutting down: no longer accepting connections");
        notify::stopping();
        app.set_ready(false);
        drop(public);
        drop(admin);
        // The watchdog keeps running while connections drain: a client
        // stuck halfway through a request head is not idle, so a graceful
        // shutdown alone would wait for it until the deadline.
        connections.drain();
        // Meanwhile bulk jobs record the chunk they are making and hand
        // their claims back, so another instance (or this one restarted)
        // goes on with them at once.
        let jobs_stopped = {
            let jobs = Arc::clone(&app.jobs);
            let grace = s.shutdown_grace;
            tokio::spawn(async move { jobs.stop(grace).await })
        };
        let drained = async {
            tokio::join!(graceful.shutdown(), connections.drained());
        };
        match tokio::time::timeout(s.shutdown_grace, drained).await {
            Ok(()) => info!("all connections drained"),
            Err(_) => {
                warn!(
                    grace_ms = s.shutdown_grace.as_millis() as u64,
                    "shutdown deadline ran out; closing the remaining connections"
                );
                // Closed before the click log's last flush, so that no
                // click is recorded after it. Admin connections record none.
                connections.abort();
                if tokio::time::timeout(Duration::from_secs(1), connections.drained())
                    .await
                    .is_err()
                {
                    warn!("some public connections did not close");
                }
            }
        }
        watchdog.abort();
        if let Some(task) = geo_watch {
            task.abort();
        }
        upkeep.abort();
        if let Some(task) = relocalize {
            task.abort();
        }
        follower.abort();
        if jobs_stopped.await.is_err() {
            error!("stopping bulk jobs panicked");
        }
        // Stopped with the jobs: it ends after its current look, if any.
        if claims.await.is_err() {
            error!("the bulk job claim loop panicked");
        }
        let flush_app = Arc::clone(&app);
        if tokio::task::spawn_blocking(move || flush_app.clicklog.shutdown())
            .await
            .is_err()
        {
            error!("click log shutdown panicked");
        }
        // No click ID is minted any more: the node ID is free for another
        // instance.
        node_lease.abort();
        let node = Arc::clone(&app.node);
        if tokio::task::spawn_blocking(move || node.release())
            .await
            .is_err()
        {
            error!("node ID release panicked");
        }
        info!("stopped");
    }
}

/// One public-host connection: what its requests need, its request
/// counters, and how the watchdog and shutdown reach it.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) app: Arc<PublicHost>,
    pub(crate) control: Arc<Control>,
    /// The client's socket address (a proxy's, behind one).
    pub(crate) peer: std::net::IpAddr,
}

/// Turns an accept result into a stream, backing off on errors such as
/// EMFILE so a full file table does not spin the loop.
async fn accepted_stream(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    which: &'static str,
) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) if is_connection_error(&e) => None,
        Err(e) => {
            error!(listener = which, error = %e, "accept failed; backing off");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// The admin listener's tower stack, outermost first:
///
/// 1. error mapping: load-shed and timeout errors become 503 and 504
///    responses (and are counted), so hyper only ever sees responses (the
///    error type stays `BoxError` only because tower's `MapResult` needs
///    `From<inner error>`; `call` never fails);
/// 2. load shedding: when the concurrency limit is reached, refuse at once
///    rather than queue;
/// 3. concurrency limit: at most `max_concurrent` requests in flight;
/// 4. timeout: a request must be answered within `timeout` (the redirect
///    host does not pay for a timer on every request: its handler awaits
///    only store lookups on a cache miss, and those carry the same timeout
///    themselves, `public::with_timeout`);
/// 5. the router, which also times each request into
///    `linkwright_http_request_duration_seconds` and logs it at debug level.
fn stack<S, B>(
    router: S,
    max_concurrent: usize,
    timeout: Duration,
    metrics: Arc<Metrics>,
) -> impl Service<
    http::Request<Incoming>,
    Response = Response<B>,
    Error = BoxError,
    Future = impl Future<Output = Result<Response<B>, BoxError>> + Send,
> + Clone
+ Send
+ 'static
where
    S: Service<http::Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: From<Bytes> + Send + 'static,
{
    ServiceBuilder::new()
        .map_result(move |result: Result<Response<B>, BoxError>| {
            Ok::<_, BoxError>(match result {
                Ok(response) => response,
                Err(e) if e.is::<tower::timeout::error::Elapsed>() => {
                    metrics.rejected(true, true);
                    text(StatusCode::GATEWAY_TIMEOUT, "request timed out\n")
                }
                Err(e) if e.is::<tower::load_shed::error::Overloaded>() => {
                    metrics.rejected(true, false);
                    overloaded()
                }
                Err(e) => {
                    error!(error = %e, "request failed");
                    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
                }
            })
        })
        .load_shed()
        .concurrency_limit(max_concurrent)
        .timeout(timeout)
        .service(router)
}

/// The answer to a request shed by a concurrency limit: 503 with
/// `Retry-After`.
pub(crate) fn overloaded<B: From<Bytes>>() -> Response<B> {
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded, retry shortly\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// A plain-text response.
pub(crate) fn text<B: From<Bytes>>(status: StatusCode, body: &'static str) -> Response<B> {
    let mut r = Response::new(B::from(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON error response in the API's shape,
/// `{"error": {"code", "message", "retryable"}}`, with the code's status.
pub(crate) fn json_error(code: ErrorCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {
        "code": code.as_str(),
        "message": message,
        "retryable": code.retryable(),
    }});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
