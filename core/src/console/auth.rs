//! Signing in and out, and the extractor every other page goes through:
//! [`Signed`], the session of the request with the key it stands for,
//! checked against the key store on every request (a revoked key ends its
//! sessions at once).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use maud::html;
use serde::Deserialize;

use super::Console;
use super::layout::{self, error_page};
use super::session::{self, SESSION_COOKIE, SIGN_IN_COOKIE, Session};
use crate::keys::{self, ApiKey, Scope};

/// A signed-in request: its session and the key behind it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The key, as it stands now.
    pub key: ApiKey,
    /// The session.
    pub session: Session,
}

impl Signed {
    /// Whether the key may change things (and so sees write actions).
    pub fn can_write(&self) -> bool {
        self.key.allows(Scope::Write)
    }

    /// The page context for templates.
    pub fn ctx(&self) -> layout::Ctx<'_> {
        layout::Ctx {
            key_name: &self.key.name,
            csrf: &self.session.csrf,
            can_write: self.can_write(),
        }
    }

    /// A state-changing request: the form's CSRF token must be the
    /// session's, and the key must hold `write`. Checked before anything
    /// else the request asks for.
    pub fn may_change(&self, csrf: Option<&str>) -> Result<(), Box<Response>> {
        if !session::tokens_match(&self.session.csrf, csrf) {
            return Err(Box::new(csrf_refused()));
        }
        if !self.can_write() {
            return Err(Box::new(error_page(
                StatusCode::FORBIDDEN,
                "Read-only key",
                "This key has the read scope only: it cannot change anything.",
            )));
        }
        Ok(())
    }

    /// [`Signed::may_change`] for actions any signed-in key may take
    /// (signing out).
    pub fn csrf_ok(&self, csrf: Option<&str>) -> Result<(), Box<Response>> {
        if session::tokens_match(&self.session.csrf, csrf) {
            Ok(())
        } else {
            Err(Box::new(csrf_refused()))
        }
    }
}

fn csrf_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Form refused",
        "The form's security token is missing or out of date. Go back, reload the page and try again.",
    )
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/sign-in").into_response();
        let token = session::cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_sign_in)?;
        let session = console.sessions.get(token).ok_or_else(to_sign_in)?;
        let db = Arc::clone(&console.app.store);
        let id = session.key_id.clone();
        let key = match tokio::task::spawn_blocking(move || keys::key_by_id(&*db, &id)).await {
            Ok(Ok(Some(key))) => key,
            Ok(Ok(None)) => return Err(to_sign_in()),
            Ok(Err(e)) => return Err(layout::internal("key lookup", &e)),
            Err(e) => return Err(layout::internal("key lookup task", &e)),
        };
        if !key.allows(Scope::Read) {
            console.sessions.end(token);
            return Err(to_sign_in());
        }
        Ok(Signed { key, session })
    }
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct SignInForm {
    key: Option<String>,
    csrf: Option<String>,
}

/// `GET /sign-in`: the form, with a fresh CSRF token in a cookie.
pub(super) async fn sign_in_page(State(console): State<Arc<Console>>) -> Response {
    sign_in_form(&console, StatusCode::OK, None)
}

fn sign_in_form(console: &Console, status: StatusCode, error: Option<&str>) -> Response {
    let token = match session::random_token() {
        Ok(t) => t,
        Err(e) => return layout::internal("randomness", &e),
    };
    let body = html! {
        main.signin {
            h1 { "linkwright" }
            p { "Sign in with an API key. Create one on the server with "
                code { "linkwright keys create --name NAME" } "." }
            form method="post" action="/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="key" { "API key" }
                input #key type="password" name="key" autocomplete="current-password"
                    required autofocus placeholder="lwk_…" aria-invalid=[error.map(|_| "true")];
                @if let Some(error) = error {
                    p.error role="alert" { (error) }
                }
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut response = (status, layout::bare("Sign in", body)).into_response();
    let cookie = session::set_cookie(
        SIGN_IN_COOKIE,
        &token,
        "/sign-in",
        Duration::from_secs(3600),
        console.secure_cookies,
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `POST /sign-in`: the key exchanged for a session. Failed attempts are
/// limited per client address like API requests per key (the same token
/// bucket, 429 with `Retry-After`); once the limit is reached no key is
/// even checked until it refills.
pub(super) async fn sign_in(
    State(console): State<Arc<Console>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let client = peer.map_or_else(
        || "unknown".to_owned(),
        |Extension(ConnectInfo(a))| a.ip().to_string(),
    );
    if let Err(retry_after) = console.sign_in_failures.peek(&client) {
        return too_many(retry_after);
    }
    let Ok(Form(form)) = form else {
        return csrf_refused();
    };
    let expected = session::cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if !session::tokens_match(expected, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let presented = format!("Bearer {}", form.key.as_deref().unwrap_or("").trim());
    let db = Arc::clone(&console.app.store);
    let outcome =
        tokio::task::spawn_blocking(move || keys::authenticate(&*db, Some(presented.as_bytes())))
            .await;
    let key = match outcome {
        Ok(Ok(key)) if key.allows(Scope::Read) => key,
        Ok(Ok(_)) | Ok(Err(keys::AuthError::Refused(_))) => {
            tracing::info!(client = %client, "console sign-in refused");
            if let Err(retry_after) = console.sign_in_failures.check(&client) {
                return too_many(retry_after);
            }
            return sign_in_form(
                &console,
                StatusCode::UNAUTHORIZED,
                Some("That key was not accepted: unknown, revoked or mistyped."),
            );
        }
        Ok(Err(e)) => return layout::internal("sign-in", &e),
        Err(e) => return layout::internal("sign-in task", &e),
    };
    let token = match console.sessions.start(&key.id) {
        Ok(t) => t,
        Err(e) => return layout::internal("randomness", &e),
    };
    tracing::info!(key_id = %key.id, "console sign-in");
    let mut response = Redirect::to("/").into_response();
    let cookies = [
        session::set_cookie(
            SESSION_COOKIE,
            &token,
            "/",
            console.sessions.ttl(),
            console.secure_cookies,
        ),
        session::set_cookie(
            SIGN_IN_COOKIE,
            "",
            "/sign-in",
            Duration::ZERO,
            console.secure_cookies,
        ),
    ];
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

fn too_many(retry_after: u64) -> Response {
    crate::metrics::rate_limited();
    let mut response = error_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed sign-ins",
        &format!("Too many failed sign-ins from this address; try again in {retry_after} s."),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// A form that carries only the CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct TokenForm {
    pub(super) csrf: Option<String>,
}

/// `POST /sign-out`: the session ends here and now.
pub(super) async fn sign_out(
    State(console): State<Arc<Console>>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Err(refused) = signed.csrf_ok(form.csrf.as_deref()) {
        return *refused;
    }
    if let Some(token) = session::cookie(&headers, SESSION_COOKIE) {
        console.sessions.end(token);
    }
    let mut response = Redirect::to("/sign-in").into_response();
    let gone = session::set_cookie(
        SESSION_COOKIE,
        "",
        "/",
        Duration::ZERO,
        console.secure_cookies,
    );
    if let Ok(v) = HeaderValue::from_str(&gone) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
