//! Bulk link jobs over HTTP: `POST /links/bulk` (JSON or CSV, up to
//! [`jobs::MAX_ITEMS`] items, answered `202 Accepted` once the job is
//! stored), `GET /jobs/{id}` (progress) and `GET /jobs/{id}/result.csv`.
//! The job machinery itself lives in [`crate::jobs`].

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::app::App;
use crate::error::ErrorCode;
use crate::jobs::{self, JobSummary, ResultError, SubmitError};

/// The jobs routes.
pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/links/bulk",
            // The inner body limit wins over the API-wide one.
            super::body::limited(post(submit), jobs::MAX_BODY_BYTES),
        )
        .route("/jobs/{id}", get(status))
        .route("/jobs/{id}/result.csv", get(result_csv))
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid { message, field } => {
                let e = ApiError::invalid(message);
                match field {
                    Some(f) => e.field(f),
                    None => e,
                }
            }
            e @ SubmitError::TooMany(_) => ApiError::limit(e.to_string()).field("items"),
            SubmitError::Store(e) => e.into(),
        }
    }
}

/// A JSON bulk submission.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkRequest {
    /// Up to 5,000 link requests (each like a `POST /links` body).
    items: Vec<serde_json::Value>,
    /// Where to POST the job summary when the job ends.
    webhook_url: Option<String>,
}

/// Query parameters of `POST /links/bulk`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkQuery {
    /// Where to POST the job summary when the job ends (for CSV uploads).
    webhook_url: Option<String>,
}

/// The answer to an accepted submission.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Accepted {
    job_id: String,
    status: jobs::JobStatus,
    total: u64,
    status_url: String,
    result_url: String,
}

/// The body's media type, without parameters, lower case.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(essence)
}

/// Accept a bulk job: JSON `{"items": [...], "webhook_url"}` or a CSV upload
/// (`Content-Type: text/csv`, optional `?webhook_url=`).
#[utoipa::path(post, path = "/api/v1/links/bulk", params(BulkQuery),
    request_body(content((BulkRequest = "application/json"), (String = "text/csv"))),
    responses(
        (status = 202, description = "Accepted; the job runs in the background", body = Accepted),
        (status = "4XX", description = "Bad input or more than 5,000 items", body = super::ErrorBody),
        (status = "5XX", body = super::ErrorBody),
    ))]
pub(super) async fn submit(
    State(app): State<Arc<App>>,
    query: Result<Query<BulkQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let body = body.map_err(|e| ApiError::from_body(&e, jobs::MAX_BODY_BYTES))?;
    let (items, webhook_url) = match media_type(&headers).as_deref() {
        Some("application/json") => {
            super::body::check_depth(&body)?;
            let req: BulkRequest = serde_json::from_slice(&body)
                .map_err(|e| ApiError::invalid(format!("malformed JSON: {e}")))?;
            if req.webhook_url.is_some() && query.webhook_url.is_some() {
                return Err(ApiError::invalid(
                    "give webhook_url in the body or in the query, not both",
                )
                .field("webhook_url"));
            }
            (req.items, req.webhook_url.or(query.webhook_url))
        }
        Some("text/csv" | "application/csv") => (jobs::parse_csv(&body)?, query.webhook_url),
        _ => {
            return Err(ApiError::invalid(
                "send the items as JSON (`Content-Type: application/json`, {\"items\": [...]}) \
                 or as CSV (`Content-Type: text/csv`)",
            ));
        }
    };
    if let Some(url) = &webhook_url {
        check_webhook_host(&app, url)?;
    }
    let summary = app.jobs.submit(items, webhook_url).await?;
    let id = summary.job_id.clone();
    let status_url = format!("/api/v1/jobs/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            result_url: format!("{status_url}/result.csv"),
            status_url: status_url.clone(),
            job_id: id,
            status: summary.status,
            total: summary.total,
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Outbound calls go only to allow-listed hosts (`api.webhook_hosts`), so a
/// key holder cannot make the server POST to internal addresses.
fn check_webhook_host(app: &App, url: &str) -> Result<(), ApiError> {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    match host {
        Some(h) if app.webhook_hosts.contains(&h) => Ok(()),
        Some(h) => Err(ApiError::invalid(format!(
            "webhooks may go only to the hosts in the config's `api.webhook_hosts`; `{h}` is not one of them"
        ))
        .field("webhook_url")),
        // Malformed URLs are reported by the job's own validation.
        None => Ok(()),
    }
}

/// A job's progress.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = jobs::JobSummary), (status = "4XX", body = super::ErrorBody)))]
pub(super) async fn status(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    let db = Arc::clone(&app.store);
    let shown = id.clone();
    tokio::task::spawn_blocking(move || jobs::summary(&*db, &id))
        .await
        .map_err(|e| ApiError::internal("job store task", &e))??
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no job with id `{shown}`")))
}

/// An ended job's result CSV: one row per submitted item, in order.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/result.csv", params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Input, Marketplace, Link Name, Short URL, Tracked URL, Status, Error", content_type = "text/csv", body = String),
        (status = "4XX", body = super::ErrorBody),
    ))]
pub(super) async fn result_csv(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let task_app = Arc::clone(&app);
    let task_id = id.clone();
    let csv = tokio::task::spawn_blocking(move || {
        jobs::result_csv(&*task_app.store, &task_id, &|code| task_app.short_url(code))
    })
    .await;
    let csv = match csv {
        Ok(Ok(csv)) => csv,
        Ok(Err(ResultError::NotFound(_))) => {
            return ApiError::not_found(format!("no job with id `{id}`")).into_response();
        }
        Ok(Err(e @ ResultError::NotFinished(_))) => {
            return ApiError::new(ErrorCode::Conflict, e.to_string())
                .retryable()
                .into_response();
        }
        Ok(Err(ResultError::Store(e))) => return ApiError::from(e).into_response(),
        Ok(Err(e @ ResultError::Csv(_))) => {
            return ApiError::internal("result csv", &e).into_response();
        }
        Err(e) => return ApiError::internal("job store task", &e).into_response(),
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{id}.csv\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response()
}
