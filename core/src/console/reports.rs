//! `GET /reports`: the attribution report over a range of days, grouped as
//! asked, as a table and a chart, with its CSV. Parsed, run and rendered by
//! the reports module, as `GET /api/v1/reports` is.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use maud::html;
use serde::Deserialize;

use super::chart::{self, Bar};
use super::layout::{self, count};
use super::{Console, Signed};
use crate::clock::{Day, MS_PER_DAY, now_ms};
use crate::reports::{self, GroupBy, Report, ReportQuery};

/// The report form's fields.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ReportForm {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

impl ReportForm {
    /// The form with the last 30 days filled in where a date is missing.
    fn or_defaults(self) -> (String, String, String) {
        let today = now_ms().div_euclid(MS_PER_DAY);
        let from = self
            .from
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| Day::from_days(today - 29).to_string());
        let to = self
            .to
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| Day::from_days(today).to_string());
        let group_by = self
            .group_by
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "day".to_owned());
        (from, to, group_by)
    }
}

async fn run(console: &Console, query: ReportQuery) -> Result<Report, Response> {
    let db = Arc::clone(&console.app.store);
    match tokio::task::spawn_blocking(move || db.report(&query)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(layout::internal("report", &e)),
        Err(e) => Err(layout::internal("report task", &e)),
    }
}

/// `GET /reports`.
pub(super) async fn page(
    State(console): State<Arc<Console>>,
    signed: Signed,
    form: Result<Query<ReportForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (from, to, group_by) = form.map(|Query(f)| f).unwrap_or_default().or_defaults();
    let parsed = ReportQuery::parse(Some(&from), Some(&to), Some(&group_by));
    let (report, error) = match parsed {
        Ok(query) => match run(&console, query).await {
            Ok(r) => (Some(r), None),
            Err(e) => return e,
        },
        Err(e) => (None, Some(e)),
    };
    let csv_url = format!(
        "/reports/report.csv?from={}&to={}&group_by={}",
        layout::q(&from),
        layout::q(&to),
        layout::q(&group_by)
    );
    let content = html! {
        form.filters method="get" action="/reports" {
            div.field {
                label for="from" { "From" }
                input #from type="date" name="from" value=(from) required;
            }
            div.field {
                label for="to" { "To" }
                input #to type="date" name="to" value=(to) required;
            }
            div.field {
                label for="group_by" { "Group by" }
                select #group_by name="group_by" {
                    @for g in GroupBy::ALL {
                        option value=(g.as_str()) selected[g.as_str() == group_by] { (g.as_str()) }
                    }
                }
            }
            div.field.actions { button type="submit" { "Show" } }
        }
        @if let Some(e) = &error {
            p.error role="alert" { (e.message) }
        }
        @if let Some(r) = &report {
            p { a.button href=(csv_url) download { "Download CSV" } }
            @if r.currencies.len() > 1 {
                p.note { "Money columns add amounts in " (r.currencies.join(", ")) " as they are." }
            }
            @if r.group_by == GroupBy::Day {
                (chart::bars("Clicks per day", &r.rows.iter().map(|row| Bar {
                    label: row.group.clone(), value: row.sums.clicks, extra: row.sums.bot_hits,
                }).collect::<Vec<_>>(), "human clicks", "bot hits"))
            } @else {
                (top_chart(r))
            }
            div.table-wrap { table #report {
                thead { tr {
                    th { (r.group_by.as_str()) } th.num { "Clicks" } th.num { "Bots" } th.num { "Conv." }
                    th.num { "Items" } th.num { "Revenue" } th.num { "Earnings" } th.num { "Conv. rate" } th.num { "EPC" }
                } }
                tbody {
                    @for row in &r.rows {
                        tr {
                            td {
                                @if r.group_by == GroupBy::Link && row.group != reports::UNATTRIBUTED {
                                    a href={ "/links/" (layout::q(&row.group)) } { (row.group) }
                                } @else { (row.group) }
                                @if let Some(name) = &row.name { br; small { (name) } }
                            }
                            td.num { (count(row.sums.clicks)) } td.num { (count(row.sums.bot_hits)) }
                            td.num { (count(row.sums.conversions)) } td.num { (row.sums.items) }
                            td.num { (row.sums.revenue) } td.num { (row.sums.commission) }
                            td.num { (format!("{:.2}%", row.conversion_rate * 100.0)) }
                            td.num { (row.sums.earnings_per_click) }
                        }
                    }
                }
                tfoot { tr {
                    th { "total" } td.num { (count(r.totals.sums.clicks)) } td.num { (count(r.totals.sums.bot_hits)) }
                    td.num { (count(r.totals.sums.conversions)) } td.num { (r.totals.sums.items) }
                    td.num { (r.totals.sums.revenue) } td.num { (r.totals.sums.commission) }
                    td.num { (format!("{:.2}%", r.totals.conversion_rate * 100.0)) }
                    td.num { (r.totals.sums.earnings_per_click) }
                } }
            } }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        layout::page(signed.ctx(), "/reports", "Reports", content),
    )
        .into_response()
}

/// The ten groups with the most clicks, as bars.
fn top_chart(r: &Report) -> maud::Markup {
    let mut rows: Vec<_> = r.rows.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.sums.clicks));
    rows.truncate(10);
    let bars: Vec<Bar> = rows
        .iter()
        .map(|row| Bar {
            label: row.group.clone(),
            value: row.sums.clicks,
            extra: row.sums.bot_hits,
        })
        .collect();
    html! {
        @if !bars.is_empty() {
            (chart::bars("Clicks of the top groups", &bars, "human clicks", "bot hits"))
        }
    }
}

/// `GET /reports/report.csv`: the report's CSV, the API's.
pub(super) async fn csv(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    form: Result<Query<ReportForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (from, to, group_by) = form.map(|Query(f)| f).unwrap_or_default().or_defaults();
    let query = match ReportQuery::parse(Some(&from), Some(&to), Some(&group_by)) {
        Ok(q) => q,
        Err(e) => return layout::error_page(StatusCode::BAD_REQUEST, "Bad report", &e.message),
    };
    let report = match run(&console, query).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let csv = match report.to_csv() {
        Ok(c) => c,
        Err(e) => return layout::internal("report csv", &e),
    };
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"report-{}-{}-{}.csv\"",
        report.group_by, report.from, report.to
    ))
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
