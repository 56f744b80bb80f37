//! Conversion import over HTTP: `POST /conversions/import?format=F` with the
//! report file as the body (any content type, up to
//! [`MAX_IMPORT_BYTES`]). The work is [`crate::conversions::import`].

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::routing::post;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiError;
use crate::app::App;
use crate::conversions::{self, Format, ImportError, ImportSummary, MAX_IMPORT_BYTES};

/// The conversion routes.
pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route(
        "/conversions/import",
        // The inner body limit wins over the API-wide one.
        super::body::limited(post(import_conversions), MAX_IMPORT_BYTES),
    )
}

/// Query of `POST /conversions/import`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// The report's format.
    #[param(value_type = Format, inline)]
    pub format: Option<String>,
}

/// Imports a network report: Amazon Associates Earnings, Orders or Bounty
/// (CSV or tab-separated, with or without the title line) or Awin
/// transactions (CSV export or API JSON). The whole file is imported in one
/// transaction, or nothing is: a malformed file answers 400 with the line of
/// the first problem. Rows that cannot be used are rejected one by one and
/// listed; the rest import. Importing the same file again changes nothing.
#[utoipa::path(post, path = "/api/v1/conversions/import", params(ImportQuery),
    request_body(description = "The report file, as downloaded from the network",
        content(
            (String = "text/csv"),
            (String = "text/tab-separated-values"),
            (String = "application/json"),
        )),
    responses(
        (status = 200, description = "Imported: what each row did", body = ImportSummary),
        (status = "4XX", description = "Unknown format, malformed file (with `line`), body too large", body = super::ErrorBody),
        (status = "5XX", description = "The store failed", body = super::ErrorBody),
    ))]
pub(super) async fn import_conversions(
    State(app): State<Arc<App>>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportSummary>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()).field("format"))?;
    let format = match query.format.as_deref() {
        None | Some("") => {
            return Err(ApiError::invalid(format!(
                "say which report this is with ?format=, one of {}",
                Format::names()
            ))
            .field("format"));
        }
        Some(name) => Format::parse(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "unknown format `{name}`; use one of {}",
                Format::names()
            ))
            .field("format")
        })?,
    };
    let body = body.map_err(|e| ApiError::from_body(&e, MAX_IMPORT_BYTES))?;
    let task_app = Arc::clone(&app);
    let outcome = tokio::task::spawn_blocking(move || {
        conversions::import(&*task_app.store, &task_app.conversions, format, &body)
    })
    .await
    .map_err(|e| ApiError::internal("conversion import task", &e))?;
    match outcome {
        Ok(summary) => Ok(Json(summary)),
        Err(e @ ImportError::Malformed { line, .. }) => {
            Err(ApiError::invalid(e.to_string()).field("body").line(line))
        }
        Err(e @ ImportError::Store(_)) => {
            Err(ApiError::internal("conversion import", &e).retryable())
        }
    }
}
