//! The web console on the admin listener: server-rendered pages (maud
//! templates, compiled with the binary), SVG charts drawn here, one small
//! script and one style sheet embedded in the binary; nothing loaded from
//! another origin.
//!
//! Sign-in exchanges an API key for a server-side session ([`session`]);
//! every state-changing form carries the session's CSRF token, checked
//! before anything else; every response carries a Content-Security-Policy
//! that allows no inline script. A read-only key sees no write action, and
//! the handlers refuse one anyway.
//!
//! The pages call the same domain services as the admin API: the link
//! service for links, the job runner for bulk uploads, the reports module,
//! the conversion import and the key functions. Nothing here is a second
//! implementation of any of them.

mod auth;
mod chart;
mod conversions;
mod keys;
mod layout;
mod links;
mod overview;
mod reports;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, Method, StatusCode, header};

use crate::app::App;
use crate::keys::RateLimiter;
use session::Sessions;

pub use auth::Signed;

/// The policy on every console response: scripts, styles and images from
/// this origin only (SVG charts are inline markup, not script), no inline
/// script or style, forms posting only here, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// What the console's handlers share.
#[derive(Debug)]
pub struct Console {
    /// The instance.
    pub app: Arc<App>,
    /// Signed-in browsers.
    pub sessions: Sessions,
    /// Failed sign-ins per client address.
    pub sign_in_failures: RateLimiter,
    /// Cookies carry `Secure`.
    pub secure_cookies: bool,
}

/// The console's routes, with their state; merged into the admin router.
pub fn router(app: Arc<App>) -> Router {
    let c = app.console;
    let console = Arc::new(Console {
        sessions: Sessions::new(c.session_ttl),
        sign_in_failures: RateLimiter::new(c.sign_in_failures_per_minute, c.sign_in_failure_burst),
        secure_cookies: c.secure_cookies,
        app,
    });
    Router::new()
        .route("/", get(overview::page))
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/sign-out", post(auth::sign_out))
        .route("/links", get(links::list))
        .route("/links/{code}", get(links::detail))
        .route("/links/{code}/edit", post(links::edit))
        .route("/links/{code}/disable", post(links::disable))
        .route("/links/{code}/enable", post(links::enable))
        .route("/links/{code}/qr.svg", get(links::qr))
        .route("/create", get(links::create_page).post(links::create))
        .route(
            "/create/bulk",
            post(links::bulk).layer(DefaultBodyLimit::max(crate::jobs::MAX_BODY_BYTES)),
        )
        .route("/jobs/{id}", get(links::job_page))
        .route("/jobs/{id}/progress", get(links::job_progress))
        .route("/jobs/{id}/result.csv", get(links::job_result))
        .route("/reports", get(reports::page))
        .route("/reports/report.csv", get(reports::csv))
        .route(
            "/conversions",
            get(conversions::page)
                .post(conversions::upload)
                .layer(DefaultBodyLimit::max(crate::conversions::MAX_IMPORT_BYTES)),
        )
        .route("/keys", get(keys::page).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/providers", get(keys::providers))
        .route("/assets/console.css", get(style))
        .route("/assets/console.js", get(script))
        .layer(middleware::from_fn(guard))
        .with_state(console)
}

/// Every console response: the security headers; every state-changing
/// request: refused when the browser says it comes from another site (a
/// second line behind the CSRF token and the `SameSite=Strict` cookie).
async fn guard(req: Request, next: Next) -> Response {
    let cross_site = req.method() != Method::GET
        && req.method() != Method::HEAD
        && req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
    let mut response = if cross_site {
        layout::error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site.",
        )
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn style(State(_): State<Arc<Console>>) -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script(State(_): State<Arc<Console>>) -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
