//! `GET /api/v1/reports`: attribution reports as JSON or CSV. The query and
//! the rendering live in [`crate::reports`], shared with `linkwright report`.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use utoipa::IntoParams;

use super::ApiError;
use crate::app::App;
use crate::reports::{Format, GroupBy, Report, ReportQuery};

/// The report's query parameters; any other parameter is refused.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// First UTC day, `YYYY-MM-DD`.
    #[param(required = true, value_type = String, format = Date, example = "2026-11-01")]
    pub from: Option<String>,
    /// Last UTC day, included, `YYYY-MM-DD`; at most 366 days from `from`.
    #[param(required = true, value_type = String, format = Date, example = "2026-11-30")]
    pub to: Option<String>,
    /// The grouping (default `link`).
    #[param(value_type = Option<GroupBy>)]
    pub group_by: Option<String>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<String>, pattern = "^(json|csv)$")]
    pub format: Option<String>,
}

impl ReportParams {
    /// Collects the parameters, refusing unknown and repeated ones.
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<ReportParams, ApiError> {
        let mut params = ReportParams::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "from" => &mut params.from,
                "to" => &mut params.to,
                "group_by" => &mut params.group_by,
                "format" => &mut params.format,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "unknown parameter `{name}`; the parameters are from, to, group_by and format"
                    ))
                    .field(name));
                }
            };
            if slot.replace(value).is_some() {
                return Err(
                    ApiError::invalid(format!("`{name}` is given more than once")).field(name),
                );
            }
        }
        Ok(params)
    }
}

/// Clicks, bot hits, conversions, items, revenue, commission, conversion
/// rate and earnings per click over an inclusive range of UTC days, grouped
/// by link, campaign, provider, marketplace or day, with totals.
///
/// Conversions are counted by their event time, except declined and
/// deleted ones; those without a click are grouped as `unattributed`
/// (grouping by provider uses the provider that reported them). Money is
/// given as exact decimal strings; amounts in different currencies are
/// added as they are (`currencies` lists them). CSV: the header
/// `group,clicks,bot_hits,conversions,items,revenue,commission,conversion_rate,earnings_per_click`,
/// one line per row, then a `total` line.
#[utoipa::path(get, path = "/api/v1/reports", params(ReportParams),
    responses(
        (status = 200, description = "The report", content(
            (Report = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A missing or invalid parameter, named in `field`", body = super::ErrorBody),
    ))]
pub(super) async fn report(
    State(app): State<Arc<App>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let params = ReportParams::from_pairs(pairs)?;
    let query = ReportQuery::parse(
        params.from.as_deref(),
        params.to.as_deref(),
        params.group_by.as_deref(),
    )?;
    let format = match params.format.as_deref().map(str::parse::<Format>) {
        None => Format::Json,
        Some(Ok(Format::Table)) => {
            return Err(
                ApiError::invalid("format is json or csv here (`table` is for the CLI)")
                    .field("format"),
            );
        }
        Some(format) => format?,
    };
    let db = Arc::clone(&app.store);
    let report = tokio::task::spawn_blocking(move || db.report(&query))
        .await
        .map_err(|e| ApiError::internal("report task", &e))??;
    if format == Format::Json {
        return Ok(Json(report).into_response());
    }
    let csv = report
        .to_csv()
        .map_err(|e| ApiError::internal("report csv", &e))?;
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"report-{}-{}-{}.csv\"",
        report.group_by, report.from, report.to
    ))
    .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}
