//! The HTTP server: the public redirect host and the admin listener.
//!
//! Connections are served by hyper-util's auto builder (HTTP/1.1 and HTTP/2).
//! The admin listener serves behind the tower stack built in [`stack`]. The
//! public host does the same work without tower, whose per-request service
//! clone and `Oneshot` cost about as much as a redirect (callgrind: ~1,000
//! instructions of ~10,500 per request): `public::Public` is a hyper
//! service that takes an admission permit (a concurrency limit that sheds at
//! once, in `admission`) and answers a cache hit before returning; the
//! header-read watchdog and graceful shutdown reach its connections through
//! `connections`. Shutdown stops accepting, lets in-flight requests finish
//! within the grace period (and says so when the deadline runs out), then
//! drains the click log.

mod admission;
mod connections;
mod follow;
mod public;
pub mod redirect;
mod scrape;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tower::{BoxError, Service, ServiceBuilder};
use tracing::{debug, error, info, warn};

use dashmap::DashMap;

use self::connections::{Connections, Control};
use crate::cache::{GoCache, LinkCache};
use crate::click::ClickIdGenerator;
use crate::clicklog::ClickLog;
use crate::config::Config;
use crate::expand::Expander;
use crate::keys::RateLimiter;
use crate::metrics::{self, Metrics};
use crate::plugin::Providers;
use crate::store::{SqliteStore, Store, StoreError};

/// Response body type of both listeners.
pub type Body = Full<Bytes>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
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
    /// The click log writer could not start.
    #[error("cannot start the click log writer: {0}")]
    ClickLog(std::io::Error),
    /// The outbound HTTP client could not be built.
    #[error("cannot build the outbound HTTP client: {0}")]
    Upstream(String),
}

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct App {
    /// The loaded providers.
    pub providers: Arc<Providers>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The same store, typed: API keys and jobs keep tables in it.
    pub db: Arc<SqliteStore>,
    /// Per-key API rate limit.
    pub limiter: RateLimiter,
    /// Short-link expansion.
    pub expander: Expander,
    /// Links made by the API, by request digest: the same request twice
    /// answers the same link without another build.
    pub request_keys: DashMap<String, String>,
    /// Links by code.
    pub cache: LinkCache,
    /// Middleware-mode templates by URL.
    pub go: GoCache,
    /// Click ID generator.
    pub ids: Arc<ClickIdGenerator>,
    /// The click log.
    pub clicklog: ClickLog,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
    /// The public host's concurrency limit.
    pub(crate) admission: admission::Admission,
    /// How conversion reports are read (`[conversions]`).
    pub conversions: Arc<crate::conversions::ConversionsConfig>,
    prometheus: PrometheusHandle,
    redirect_status: StatusCode,
    country_header: Option<HeaderName>,
    ready: AtomicBool,
    short_base: OnceLock<String>,
    configured_base: Option<String>,
    /// How long the redirect host waits for the store on a cache miss.
    pub(crate) store_timeout: Duration,
    /// Hosts bulk-job webhooks may call.
    pub(crate) webhook_hosts: Vec<String>,
    /// Bulk jobs left unfinished by the previous run, listed when the store
    /// was opened (before the listeners are announced, so a job queued
    /// after that is this run's, not one to resume); `run` resumes them.
    pub(crate) interrupted_jobs: std::sync::Mutex<Vec<String>>,
    /// The store's newest link change when the caches were empty: `run`
    /// follows the changes after it ([`follow`]).
    link_changes_seen: i64,
    link_refresh: Duration,
    /// See [`App::changes_seen`].
    forgets: std::sync::atomic::AtomicU64,
    creations: std::sync::atomic::AtomicU64,
}

/// What [`App::changes_seen`] returned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    forgets: u64,
    creations: u64,
}

impl App {
    /// Opens the store, restores the click ID state and starts the click log.
    pub fn new(config: &Config, providers: Arc<Providers>) -> Result<App, ServeError> {
        let db = Arc::new(SqliteStore::open(&config.server.data_dir)?);
        let interrupted_jobs = crate::jobs::unfinished(&db).unwrap_or_else(|e| {
            error!(error = %e, "cannot list unfinished bulk jobs; they resume at the next start");
            Vec::new()
        });
        let store: Arc<dyn Store> = Arc::new(crate::store::Timed(Arc::clone(&db)));
        let link_changes_seen = store.last_link_change()?;
        let prometheus = metrics::install_recorder();
        let metrics = Arc::new(Metrics::new(
            providers.loaded().iter().map(|p| p.name.as_str()),
        ));
        let floor = store.load_click_state()?;
        let ids = Arc::new(ClickIdGenerator::with_floor(config.node_id, floor));
        let clicklog = ClickLog::start(
            Arc::clone(&store),
            Arc::clone(&ids),
            config.click_log,
            Arc::clone(&metrics),
        )
        .map_err(ServeError::ClickLog)?;
        let s = &config.server;
        let expander = Expander::new(config.upstream.expand.clone())
            .map_err(|e| ServeError::Upstream(e.to_string()))?;
        Ok(App {
            providers,
            store,
            db,
            limiter: RateLimiter::new(
                config.api.rate_limit_per_minute,
                config.api.rate_limit_burst,
            ),
            expander,
            request_keys: DashMap::new(),
            cache: LinkCache::new(config.cache.max_links, config.cache.max_missing),
            go: GoCache::new(config.cache.max_go_urls),
            ids,
            clicklog,
            metrics,
            admission: admission::Admission::new(s.max_concurrent_requests),
            conversions: Arc::new(config.conversions.clone()),
            prometheus,
            redirect_status: StatusCode::from_u16(s.redirect_status).unwrap_or(StatusCode::FOUND),
            country_header: s
                .trusted_country_header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            ready: AtomicBool::new(false),
            short_base: OnceLock::new(),
            configured_base: s.public_base_url.clone(),
            store_timeout: s.request_timeout,
            webhook_hosts: config.api.webhook_hosts.clone(),
            interrupted_jobs: std::sync::Mutex::new(interrupted_jobs),
            link_changes_seen,
            link_refresh: config.cache.link_refresh,
            forgets: std::sync::atomic::AtomicU64::new(0),
            creations: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The short URL of a code on the public host.
    pub fn short_url(&self, code: &str) -> String {
        let base = self
            .short_base
            .get()
            .or(self.configured_base.as_ref())
            .map_or("", String::as_str);
        format!("{base}/{code}")
    }

    /// The Prometheus text of every metric. Blocking (it asks the store):
    /// call it off the async workers.
    pub fn render_metrics(&self) -> String {
        scrape::render(self)
    }

    /// How many changes this instance has forgotten so far, by kind. A
    /// request that reads a link from the store takes this before the read
    /// and, after caching what it read, checks it with
    /// [`App::keep_link`] or [`App::keep_missing`]: a change forgotten
    /// meanwhile may postdate the read, so the entry is dropped again.
    pub(crate) fn changes_seen(&self) -> Seen {
        Seen {
            forgets: self.forgets.load(Ordering::SeqCst),
            creations: self.creations.load(Ordering::SeqCst),
        }
    }

    /// After caching `code`'s link: drops it if a link was changed or
    /// deleted since `seen`. True if it stays.
    pub(crate) fn keep_link(&self, seen: Seen, code: &str) -> bool {
        let kept = self.forgets.load(Ordering::SeqCst) == seen.forgets;
        if !kept {
            self.forget(code);
        }
        kept
    }

    /// After caching `code` as unknown: drops that if a link was created
    /// since `seen`. True if it stays.
    pub(crate) fn keep_missing(&self, seen: Seen, code: &str) -> bool {
        let kept = self.creations.load(Ordering::SeqCst) == seen.creations;
        if !kept {
            self.cache.forget_missing(code);
        }
        kept
    }

    /// Drops these codes from the negative cache: links with them were
    /// created elsewhere. (Counted first, see [`App::changes_seen`].)
    pub fn forget_created(&self, codes: &std::collections::HashSet<&str>) {
        self.creations.fetch_add(1, Ordering::SeqCst);
        for code in codes {
            self.cache.forget_missing(code);
        }
    }

    /// Counts a forgetting before it happens: a request that caches after
    /// this sees the count move (see [`App::changes_seen`]).
    fn count_forget(&self) {
        self.forgets.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops a link from every cache of this instance (after it changed).
    pub fn forget(&self, code: &str) {
        self.forget_many(&std::collections::HashSet::from([code]));
    }

    /// [`App::forget`] for many codes, with one pass over the caches that
    /// are searched by code (a bulk change is thousands).
    pub fn forget_many(&self, codes: &std::collections::HashSet<&str>) {
        self.count_forget();
        for code in codes {
            self.cache.invalidate(code);
        }
        self.go.invalidate_codes(codes);
        self.request_keys.retain(|_, c| !codes.contains(c.as_str()));
    }

    /// Empties every cache of links (after changes this instance missed).
    pub fn forget_all(&self) {
        self.count_forget();
        self.cache.clear();
        self.go.clear();
        self.request_keys.clear();
    }

    /// Whether the server is accepting traffic (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
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
        let base = match &s.public_base_url {
            Some(base) => base.clone(),
            None => format!("http://{}", public.local_addr().unwrap_or(s.public_addr)),
        };
        let _ = app.short_base.set(base);
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
        // queueing head and body for a vectored write: measured ~4% less
        // server CPU per redirect (benches/RESULTS.md, session 6).
        let mut public_builder = auto::Builder::new(TokioExecutor::new());
        public_builder.http1().keep_alive(true).writev(false);
        public_builder.http2().timer(TokioTimer::new());

        let admin_svc = {
            stack(
                crate::api::router(Arc::clone(&app)),
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

        let follower = tokio::spawn(follow::follow(
            Arc::clone(&app),
            app.link_changes_seen,
            app.link_refresh,
        ));
        // Bulk jobs interrupted by a restart carry on.
        crate::api::resume_jobs(Arc::clone(&app));
        // Admin connections are few: hyper-util's graceful shutdown is
        // enough. Public ones are supervised through their own `Conn`.
        let graceful = GracefulShutdown::new();
        let connections = Arc::new(Connections::default());
        let watchdog = tokio::spawn(Arc::clone(&connections).watch(s.header_read_timeout));
        app.ready.store(true, Ordering::Release);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = public.accept() => {
                    if let Some(stream) = accepted_stream(accepted, "public").await {
                        let conn = Arc::new(Conn {
                            app: Arc::clone(&app),
                            control: Arc::new(Control::new()),
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
                    if let Some(stream) = accepted_stream(accepted, "admin").await {
                        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(admin_svc.clone()));
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
        app.ready.store(false, Ordering::Release);
        drop(public);
        drop(admin);
        // The watchdog keeps running while connections drain: a client
        // stuck halfway through a request head is not idle, so a graceful
        // shutdown alone would wait for it until the deadline.
        connections.drain();
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
        upkeep.abort();
        follower.abort();
        let flush_app = Arc::clone(&app);
        if tokio::task::spawn_blocking(move || flush_app.clicklog.shutdown())
            .await
            .is_err()
        {
            error!("click log shutdown panicked");
        }
        info!("stopped");
    }
}

/// One public-host connection: what its requests need, its request
/// counters, and how the watchdog and shutdown reach it.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) app: Arc<App>,
    pub(crate) control: Arc<Control>,
}

/// Turns an accept result into a stream, backing off on errors such as
/// EMFILE so a full file table does not spin the loop.
async fn accepted_stream(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    which: &'static str,
) -> Option<TcpStream> {
    match accepted {
        Ok((stream, _)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
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

/// A JSON error response: `{"error": {"code", "message", "retryable"}}`.
pub(crate) fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    retryable: bool,
) -> Response<Body> {
    let body =
        serde_json::json!({"error": {"code": code, "message": message, "retryable": retryable}});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
