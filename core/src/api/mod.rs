//! The admin API under `/api/v1` (JSON, bearer API keys), together with
//! `/metrics`, `/healthz` and `/readyz`: everything the admin listener serves.
//!
//! The OpenAPI document is generated from the handlers and types below with
//! utoipa and served at `/api/v1/openapi.json`.

mod body;
mod conversions;
mod error;
mod jobs;
mod links;
mod reports;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, Method, StatusCode, header};
use utoipa::OpenApi;

pub use body::{ApiJson, MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_LINK_BODY_BYTES, json_depth};
pub use error::{ApiError, ErrorBody, ErrorDetail};

use crate::app::App;
use crate::error::ErrorCode;
use crate::keys::{self, Scope};
use crate::metrics::Route;

/// The generated OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "linkwright admin API", description = "Create and manage tracked affiliate links."),
    paths(
        links::create_link,
        links::create_batch,
        links::list_links,
        links::get_link,
        links::patch_link,
        links::delete_link,
        links::link_stats,
        links::link_targets,
        links::providers,
        links::rewrite,
        jobs::submit,
        jobs::status,
        jobs::result_csv,
        reports::report,
        conversions::import_conversions,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The admin listener's router: the API under `/api/v1`, `/metrics`,
/// `/healthz`, `/readyz`, and `pages` (the web console, given by the
/// server), every route timed and counted.
pub fn router(app: Arc<App>, pages: Router) -> Router {
    use body::limited;
    // Body limits per route (README, "Limits on input"): a link's create or
    // change is small; batches, bulk uploads and reports have their own.
    let api = Router::new()
        .route(
            "/links",
            limited(
                get(links::list_links).post(links::create_link),
                MAX_LINK_BODY_BYTES,
            ),
        )
        .route("/links/batch", axum::routing::post(links::create_batch))
        .route(
            "/links/{code}",
            limited(
                get(links::get_link)
                    .patch(links::patch_link)
                    .delete(links::delete_link),
                MAX_LINK_BODY_BYTES,
            ),
        )
        .route("/links/{code}/stats", get(links::link_stats))
        .route("/links/{code}/targets", get(links::link_targets))
        .route("/providers", get(links::providers))
        .route("/rewrite", axum::routing::post(links::rewrite))
        .route("/reports", get(reports::report))
        .merge(jobs::routes())
        .merge(conversions::routes());
    let api = body::default_limit(api)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            authenticate,
        ))
        .route("/openapi.json", get(openapi));
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Arc::clone(&app))
        .merge(pages)
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(middleware::from_fn_with_state(app, observe))
}

/// Times every admin request into the request-duration histogram and
/// counts it by route template (`other` where no route matched) and status
/// class.
async fn observe(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = match req.uri().path() {
        "/metrics" => Route::Metrics,
        "/healthz" | "/readyz" => Route::Health,
        _ => Route::Other,
    };
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    app.metrics.request_duration(true, route, started.elapsed());
    crate::metrics::admin_request(&template, response.status().as_u16());
    response
}

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => ApiError::internal("openapi", &e).into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    // The scrape asks the store and reads /proc: off the async workers.
    match tokio::task::spawn_blocking(move || app.render_metrics()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal("metrics", &e).into_response(),
    }
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if !app.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting or shutting down\n",
        )
            .into_response();
    }
    let store = Arc::clone(&app.store);
    match tokio::task::spawn_blocking(move || store.load_click_state()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: store unreachable\n",
        )
            .into_response(),
    }
}

/// Bearer-key authentication, scope check (GET and HEAD need `read`,
/// everything else `write`) and the per-key rate limit.
async fn authenticate(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    // Keys never travel in a query string, where logs and proxies keep them.
    if req
        .uri()
        .query()
        .is_some_and(|q| q.contains(keys::KEY_PREFIX) || q.to_ascii_lowercase().contains("api_key"))
    {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "API keys are accepted only in the `Authorization: Bearer` header, never in the query string",
        )
        .into_response();
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let db = Arc::clone(&app.store);
    let key = match tokio::task::spawn_blocking(move || keys::authenticate(&*db, header.as_deref()))
        .await
    {
        Ok(Ok(key)) => key,
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => return ApiError::internal("auth task", &e).into_response(),
    };
    let needed = if matches!(*req.method(), Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Write
    };
    if !key.allows(needed) {
        return ApiError::new(
            ErrorCode::Forbidden,
            format!("this key lacks the `{}` scope", needed.as_str()),
        )
        .into_response();
    }
    if let Err(retry_after) = app.limiter.check(&key.id) {
        crate::metrics::rate_limited();
        let mut e = ApiError::new(
            ErrorCode::RateLimited,
            format!("too many requests for this key; retry in {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        return e.into_response();
    }
    next.run(req).await
}
