//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the
//! process is up) and `/readyz` (accepting traffic, store reachable).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use super::{App, Body, text};
use crate::metrics::Route;

/// Routes an admin request.
pub(super) async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let (route, response) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (Route::Metrics, render_metrics(&app)),
        (&Method::GET, "/healthz") => (Route::Health, text(StatusCode::OK, "ok\n")),
        (&Method::GET, "/readyz") => (Route::Health, ready(&app).await),
        _ => (Route::Other, text(StatusCode::NOT_FOUND, "not found\n")),
    };
    app.metrics
        .request_duration(true, route, started.elapsed().as_secs_f64());
    Ok(response)
}

fn render_metrics(app: &App) -> Response<Body> {
    app.metrics
        .queue_depth
        .set(app.clicklog.depth().max(0) as f64);
    let mut r = Response::new(Full::new(Bytes::from(app.prometheus.render())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn ready(app: &Arc<App>) -> Response<Body> {
    if !app.is_ready() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting or shutting down\n",
        );
    }
    let store = Arc::clone(&app.store);
    match tokio::task::spawn_blocking(move || store.load_click_state()).await {
        Ok(Ok(_)) => text(StatusCode::OK, "ready\n"),
        _ => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: store unreachable\n",
        ),
    }
}
