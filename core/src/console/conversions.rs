//! `GET/POST /conversions`: upload a network report with its format, then
//! the outcome counts and every rejected line. The import is
//! [`crate::conversions::import`], as for `POST /api/v1/conversions/import`.

use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::html;

use super::layout::{self, count};
use super::{Console, Signed};
use crate::conversions::{self, Format, ImportError, ImportSummary};

/// `GET /conversions`.
pub(super) async fn page(signed: Signed) -> Response {
    render(&signed, None, None, None, StatusCode::OK)
}

fn render(
    signed: &Signed,
    chosen: Option<&str>,
    summary: Option<&ImportSummary>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let ctx = signed.ctx();
    let content = html! {
        @if ctx.can_write {
            form.stack #import method="post" action="/conversions" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label for="format" { "Report format" }
                select #format name="format" required {
                    @for f in Format::ALL {
                        option value=(f.name()) selected[chosen == Some(f.name())] { (f.name()) }
                    }
                }
                label for="report" { "Report file" span.hint { " as downloaded from the network" } }
                input #report type="file" name="file" required;
                button type="submit" { "Import" }
            }
        } @else {
            p.note { "This key is read-only: it cannot import reports." }
        }
        @if let Some(message) = error {
            p.error #import-error role="alert" { (message) }
        }
        @if let Some(s) = summary {
            section #import-summary {
                h2 { "Imported " (s.format) }
                dl.totals {
                    div { dt { "Rows" } dd { (count(s.rows)) } }
                    div { dt { "Inserted" } dd #inserted { (count(s.inserted)) } }
                    div { dt { "Updated" } dd { (count(s.updated)) } }
                    div { dt { "Unchanged" } dd { (count(s.unchanged)) } }
                    div { dt { "Unattributed" } dd { (count(s.unattributed)) } }
                    div { dt { "Rejected" } dd #rejected { (count(s.rejected)) } }
                }
                @for w in &s.warnings { p.note { (w) } }
                @if !s.rejections.is_empty() {
                    h3 { "Rejected lines" }
                    div.table-wrap { table #rejections {
                        thead { tr { th.num { "Line" } th { "Reason" } } }
                        tbody { @for r in &s.rejections { tr { td.num { (r.line) } td { (r.reason) } } } }
                    } }
                    @if (s.rejections.len() as u64) < s.rejected {
                        p.note { "The first " (s.rejections.len()) " rejected lines are listed." }
                    }
                }
            }
        }
    };
    (
        status,
        layout::page(ctx, "/conversions", "Conversions", content),
    )
        .into_response()
}

/// `POST /conversions`: the report imported in one transaction, or not at
/// all (a malformed file names its line).
pub(super) async fn upload(
    State(console): State<Arc<Console>>,
    signed: Signed,
    mut multipart: Multipart,
) -> Response {
    let mut csrf = None;
    let mut format = None;
    let mut file = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_owned();
                let Ok(bytes) = field.bytes().await else {
                    return render(
                        &signed,
                        None,
                        None,
                        Some("The upload was cut short; try again."),
                        StatusCode::BAD_REQUEST,
                    );
                };
                match name.as_str() {
                    "csrf" => csrf = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "format" => format = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "file" => file = Some(bytes),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => {
                return render(
                    &signed,
                    None,
                    None,
                    Some(&format!("The upload could not be read: {e}")),
                    StatusCode::BAD_REQUEST,
                );
            }
        }
    }
    if let Err(refused) = signed.may_change(csrf.as_deref()) {
        return *refused;
    }
    let chosen = format.as_deref();
    let Some(fmt) = chosen.and_then(Format::parse) else {
        let message = format!("Pick the report's format: one of {}.", Format::names());
        return render(
            &signed,
            chosen,
            None,
            Some(&message),
            StatusCode::BAD_REQUEST,
        );
    };
    let Some(body) = file.filter(|f| !f.is_empty()) else {
        return render(
            &signed,
            chosen,
            None,
            Some("Choose the report file to upload."),
            StatusCode::BAD_REQUEST,
        );
    };
    let app = Arc::clone(&console.app);
    let outcome = tokio::task::spawn_blocking(move || {
        conversions::import(&*app.store, &app.conversions, fmt, &body)
    })
    .await;
    match outcome {
        Ok(Ok(summary)) => render(&signed, chosen, Some(&summary), None, StatusCode::OK),
        Ok(Err(e @ ImportError::Malformed { .. })) => render(
            &signed,
            chosen,
            None,
            Some(&format!("Nothing was imported: {e}")),
            StatusCode::BAD_REQUEST,
        ),
        Ok(Err(e)) => layout::internal("conversion import", &e),
        Err(e) => layout::internal("conversion import task", &e),
    }
}
