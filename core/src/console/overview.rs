//! `GET /`: clicks (human and bot) and earnings for today, 7 and 30 days,
//! earnings per click, top links, top countries and clicks per day. The
//! numbers are the reports module's (the 30-day report by day and by link)
//! and the link service's click breakdown.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::chart::{self, Bar};
use super::layout::{self, count};
use super::{Console, Signed};
use crate::clock::{MS_PER_DAY, now_ms};
use crate::money::Micros;
use crate::reports::{self, GroupBy, Report, ReportQuery};

/// Days on the overview.
const DAYS: i64 = 30;

/// The 30-day report grouped by `group_by`, through the reports module.
pub(super) async fn last_days(
    console: &Console,
    days: i64,
    group_by: GroupBy,
) -> Result<Report, Response> {
    let today = now_ms().div_euclid(MS_PER_DAY);
    let query = ReportQuery {
        from_day: today - days + 1,
        to_day: today,
        group_by,
    };
    let db = Arc::clone(&console.app.store);
    match tokio::task::spawn_blocking(move || db.report(&query)).await {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => Err(layout::internal("overview report", &e)),
        Err(e) => Err(layout::internal("overview report task", &e)),
    }
}

pub(super) async fn page(State(console): State<Arc<Console>>, signed: Signed) -> Response {
    let by_day = match last_days(&console, DAYS, GroupBy::Day).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut by_link = match last_days(&console, DAYS, GroupBy::Link).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let since = now_ms() - DAYS * MS_PER_DAY;
    let breakdown = match console.app.links.breakdown(None, since, 10).await {
        Ok(b) => b,
        Err(e) => return layout::internal("overview breakdown", &e),
    };
    by_link
        .rows
        .retain(|r| r.group != reports::UNATTRIBUTED && r.sums.clicks + r.sums.bot_hits > 0);
    by_link.rows.sort_by(|a, b| {
        (b.sums.clicks, b.sums.commission.0).cmp(&(a.sums.clicks, a.sums.commission.0))
    });
    by_link.rows.truncate(10);

    // Sums of the last n days of the by-day report (its rows are every day,
    // oldest first).
    let period = |n: usize| {
        let rows = &by_day.rows[by_day.rows.len().saturating_sub(n)..];
        let clicks: u64 = rows.iter().map(|r| r.sums.clicks).sum();
        let bots: u64 = rows.iter().map(|r| r.sums.bot_hits).sum();
        let earned = Micros(rows.iter().map(|r| r.sums.commission.0).sum());
        (clicks, bots, earned, earned.per(clicks))
    };
    let bars: Vec<Bar> = by_day
        .rows
        .iter()
        .map(|r| Bar {
            label: r.group.clone(),
            value: r.sums.clicks,
            extra: r.sums.bot_hits,
        })
        .collect();
    let content = html! {
        section.cards aria-label="Totals" {
            @for (label, n) in [("Today", 1usize), ("7 days", 7), ("30 days", 30)] {
                @let (clicks, bots, earned, epc) = period(n);
                div.card {
                    h2 { (label) }
                    dl {
                        dt { "Clicks" } dd.big { (count(clicks)) }
                        dt { "Bot hits" } dd { (count(bots)) }
                        dt { "Earnings" } dd { (earned) }
                        dt { "EPC" } dd { (epc) }
                    }
                }
            }
        }
        @if by_day.currencies.len() > 1 {
            p.note { "Earnings add amounts in " (by_day.currencies.join(", ")) " as they are." }
        }
        section {
            h2 { "Clicks per day" }
            (chart::bars("Clicks per day, last 30 days", &bars, "human clicks", "bot hits"))
        }
        div.split {
            section {
                h2 { "Top links, 30 days" }
                @if by_link.rows.is_empty() {
                    p.empty { "No clicks yet." }
                } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Link" } th.num { "Clicks" } th.num { "Bots" } th.num { "Earnings" } th.num { "EPC" } } }
                        tbody {
                            @for r in &by_link.rows {
                                tr {
                                    td {
                                        a href={ "/links/" (layout::q(&r.group)) } { (r.group) }
                                        @if let Some(name) = &r.name { br; small { (name) } }
                                    }
                                    td.num { (count(r.sums.clicks)) }
                                    td.num { (count(r.sums.bot_hits)) }
                                    td.num { (r.sums.commission) }
                                    td.num { (r.sums.earnings_per_click) }
                                }
                            }
                        }
                    } }
                }
            }
            section {
                h2 { "Top countries, 30 days" }
                @if breakdown.countries.is_empty() {
                    p.empty { "No clicks yet." }
                } @else {
                    (share_table("Country", &breakdown.countries))
                }
            }
        }
    };
    layout::page(signed.ctx(), "/", "Overview", content).into_response()
}

/// Groups and their counts, with each one's share as a meter.
pub(super) fn share_table(what: &str, rows: &[(String, u64)]) -> maud::Markup {
    let total: u64 = rows.iter().map(|(_, n)| n).sum();
    html! {
        div.table-wrap { table {
            thead { tr { th { (what) } th.num { "Clicks" } th { span.visually-hidden { "Share" } } } }
            tbody {
                @for (group, n) in rows {
                    tr {
                        td { (group) }
                        td.num { (count(*n)) }
                        td { meter min="0" max=(total.max(1)) value=(n) { (n) } }
                    }
                }
            }
        } }
    }
}
