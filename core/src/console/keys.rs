//! `GET/POST /keys`: API keys (a new key shown once; revoke), through the
//! key functions the CLI uses; and `GET /providers`: every configured
//! provider, loaded, poisoned or refused with its reason, as the API's
//! `GET /api/v1/providers` shows them.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use maud::html;
use serde::Deserialize;

use super::layout::{self, datetime, error_page};
use super::{Console, Signed};
use crate::keys::{self, ApiKey, KeyError, Scope};
use crate::view::ProviderView;

async fn all_keys(console: &Console) -> Result<Vec<ApiKey>, Response> {
    let db = Arc::clone(&console.app.store);
    match tokio::task::spawn_blocking(move || keys::list_keys(&*db)).await {
        Ok(Ok(k)) => Ok(k),
        Ok(Err(e)) => Err(layout::internal("keys", &e)),
        Err(e) => Err(layout::internal("keys task", &e)),
    }
}

/// `GET /keys`.
pub(super) async fn page(State(console): State<Arc<Console>>, signed: Signed) -> Response {
    render(&console, &signed, None, None, StatusCode::OK).await
}

async fn render(
    console: &Console,
    signed: &Signed,
    created: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let all = match all_keys(console).await {
        Ok(k) => k,
        Err(e) => return e,
    };
    let ctx = signed.ctx();
    let content = html! {
        @if let Some(secret) = created {
            section.notice #new-key role="status" {
                h2 { "New key" }
                p { "Copy it now: it is shown once and cannot be recovered." }
                p { code #new-key-secret { (secret) } " " button.copy type="button" data-copy=(secret) { "Copy" } }
            }
        }
        @if let Some(message) = error { p.error role="alert" { (message) } }
        @if ctx.can_write {
            section {
                h2 { "Create a key" }
                form.filters #create-key method="post" action="/keys" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    div.field.wide {
                        label for="key-name" { "Name" }
                        input #key-name name="name" required maxlength="64" placeholder="what it is for";
                    }
                    div.field {
                        label for="key-scope" { "Scope" }
                        select #key-scope name="scope" {
                            option value="read" { "read" }
                            option value="write" { "write (and read)" }
                        }
                    }
                    div.field.actions { button type="submit" { "Create key" } }
                }
            }
        }
        section {
            h2 { "Keys" }
            div.table-wrap { table #keys {
                thead { tr { th { "Id" } th { "Name" } th { "Scopes" } th { "Created" } th { "Status" } } }
                tbody {
                    @for k in &all {
                        tr {
                            td { code { (k.id) } }
                            td { (k.name) @if k.id == signed.key.id { " " span.badge { "this session" } } }
                            td { (k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (datetime(k.created_ms)) }
                            td {
                                @if k.revoked { span.badge.off { "revoked" } }
                                @else if ctx.can_write {
                                    form.inline method="post" action={ "/keys/" (k.id) "/revoke" } {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        button.danger type="submit" aria-label={ "Revoke key " (k.name) } { "Revoke" }
                                    }
                                } @else { "active" }
                            }
                        }
                    }
                }
            } }
        }
    };
    (status, layout::page(ctx, "/keys", "API keys", content)).into_response()
}

/// The key form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct KeyForm {
    csrf: Option<String>,
    name: Option<String>,
    scope: Option<String>,
}

/// `POST /keys`: a new key, shown once on the page that answers.
pub(super) async fn create(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Form(form): Form<KeyForm>,
) -> Response {
    if let Err(refused) = signed.may_change(form.csrf.as_deref()) {
        return *refused;
    }
    let scopes = match form.scope.as_deref().unwrap_or("read").parse::<Scope>() {
        Ok(Scope::Write) => vec![Scope::Read, Scope::Write],
        Ok(Scope::Read) => vec![Scope::Read],
        Err(e) => {
            return render(
                &console,
                &signed,
                None,
                Some(&e.to_string()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let db = Arc::clone(&console.app.store);
    let name = form.name.unwrap_or_default();
    match tokio::task::spawn_blocking(move || keys::create_key(&*db, &name, &scopes)).await {
        Ok(Ok((_, secret))) => {
            render(&console, &signed, Some(&secret), None, StatusCode::CREATED).await
        }
        Ok(Err(e)) if e.is_client_error() => {
            render(
                &console,
                &signed,
                None,
                Some(&e.to_string()),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Ok(Err(e)) => layout::internal("create key", &e),
        Err(e) => layout::internal("create key task", &e),
    }
}

/// `POST /keys/{id}/revoke`: refused from the next request on; revoking
/// this session's own key ends the session.
pub(super) async fn revoke(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<super::auth::TokenForm>,
) -> Response {
    if let Err(refused) = signed.may_change(form.csrf.as_deref()) {
        return *refused;
    }
    let db = Arc::clone(&console.app.store);
    let task_id = id.clone();
    match tokio::task::spawn_blocking(move || keys::revoke_key(&*db, &task_id)).await {
        Ok(Ok(())) => Redirect::to("/keys").into_response(),
        Ok(Err(KeyError::NotFound(_))) => {
            error_page(StatusCode::NOT_FOUND, "No such key", "No key has this id.")
        }
        Ok(Err(e)) => layout::internal("revoke key", &e),
        Err(e) => layout::internal("revoke key task", &e),
    }
}

/// `GET /providers`.
pub(super) async fn providers(State(console): State<Arc<Console>>, signed: Signed) -> Response {
    let all = ProviderView::all(&console.app.providers);
    let content = html! {
        div.table-wrap { table #providers {
            thead { tr { th { "Provider" } th { "Status" } th { "Plugin" } th { "Details" } } }
            tbody {
                @for p in &all {
                    tr {
                        td { strong { (p.name) } }
                        td {
                            @match p.status {
                                "ok" => span.badge.ok { "loaded" },
                                "poisoned" => span.badge.off { "poisoned" },
                                _ => span.badge.off { "refused" },
                            }
                        }
                        td {
                            (p.plugin)
                            @if let Some(v) = &p.version { " " (v) }
                            @if let Some(abi) = &p.abi { br; small { "ABI " (abi) } }
                        }
                        td.dest {
                            @if let Some(reason) = &p.reason { p.error { (reason) } }
                            @if p.status == "poisoned" { p.error { "Its plugin panicked: new links for it fail until a restart." } }
                            @if let Some(f) = &p.file { small { (f) } }
                            @if !p.serves.is_null() {
                                details {
                                    summary { "What it serves" }
                                    pre { (serde_json::to_string_pretty(&p.serves).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
        } }
    };
    layout::page(signed.ctx(), "/providers", "Providers", content).into_response()
}
