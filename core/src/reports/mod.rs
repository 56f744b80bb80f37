//! Attribution reports: human clicks, bot hits, conversions, items, revenue,
//! commission, conversion rate and earnings per click, grouped by link,
//! campaign, provider, marketplace or UTC day over an inclusive range of
//! days. The API (`GET /api/v1/reports`) and the CLI (`linkwright report`)
//! both parse with [`ReportQuery::parse`], query with [`ReportStore::report`] and render with
//! [`Report::render`]; a link's own totals (`LinkStore::link_stats`) come from the
//! same tables.
//!
//! Where the numbers come from:
//! - clicks and bot hits: `click_rollup` (one row per link and UTC day),
//!   which the click writer keeps in step with the raw clicks in the same
//!   transaction, joined to `links` for the link's attributes;
//! - conversions: `conversions` rows whose `event_ms` falls in the range,
//!   except those whose status is `declined` or `deleted` (in any case),
//!   joined to `links` through `link_id`. Conversions not joined to a click
//!   (`link_id` NULL) are grouped under [`UNATTRIBUTED`] by link, campaign
//!   and marketplace. Grouping by provider puts an attributed conversion
//!   under its link's provider (the configured name, as its clicks are), and
//!   an unattributed one under the network that reported it
//!   (`conversions.provider`); grouping by day counts every conversion on
//!   its event's day.
//!
//! Items are quantity minus returns. Money is summed exactly in integer
//! micro-units and shown as decimal strings ([`Micros`]); amounts in
//! different currencies are summed as they are, and [`Report::currencies`]
//! lists the currencies the counted conversions carry so that a mixed report
//! can be told apart. The conversion rate is conversions per human click
//! (a number rounded to 6 decimals); earnings per click are commission per
//! human click, to the micro-unit; both are 0 without clicks.

pub(crate) mod assemble;
mod render;
mod store;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::Day;
use crate::store::Totals;

pub use crate::clock::MS_PER_DAY;
pub use store::ReportStore;

/// Longest report range, in days (both ends included).
pub const MAX_DAYS: i64 = 366;

/// The group of conversions that no click was found for.
pub const UNATTRIBUTED: &str = "unattributed";

/// The group of links without a campaign (or marketplace).
pub const NONE: &str = "(none)";

/// The `group` of the totals row.
pub const TOTAL: &str = "total";

/// The CSV header.
pub const CSV_HEADER: [&str; 9] = [
    "group",
    "clicks",
    "bot_hits",
    "conversions",
    "items",
    "revenue",
    "commission",
    "conversion_rate",
    "earnings_per_click",
];

/// First and last accepted dates: Unix days 0 and 9999-12-31.
const FIRST_DAY: i64 = 0;
const LAST_DAY: i64 = 2_932_896;

/// What a report's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row per link (its code; the name is given too).
    Link,
    /// One row per campaign; links without one are `(none)`.
    Campaign,
    /// One row per provider.
    Provider,
    /// One row per marketplace served (a targeted click counts for the
    /// marketplace of the target that served it); `(none)` without one.
    Marketplace,
    /// One row per UTC day of the range, every day listed.
    Day,
    /// One row per visitor country; `(none)` when it was not known.
    Country,
    /// One row per link target: `<code>#<n>` (0 is the link's own
    /// destination), named by the marketplace or destination it serves.
    Target,
}

impl GroupBy {
    /// Every grouping, in the order the docs list them.
    pub const ALL: [GroupBy; 7] = [
        GroupBy::Link,
        GroupBy::Campaign,
        GroupBy::Provider,
        GroupBy::Marketplace,
        GroupBy::Day,
        GroupBy::Country,
        GroupBy::Target,
    ];

    /// The name used in queries and output.
    pub const fn as_str(self) -> &'static str {
        match self {
            GroupBy::Link => "link",
            GroupBy::Campaign => "campaign",
            GroupBy::Provider => "provider",
            GroupBy::Marketplace => "marketplace",
            GroupBy::Day => "day",
            GroupBy::Country => "country",
            GroupBy::Target => "target",
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupBy {
    type Err = InvalidReport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                InvalidReport::new(
                    "group_by",
                    format!(
                        "group_by is one of link, campaign, provider, marketplace, day, country, target; got `{s}`"
                    ),
                )
            })
    }
}

/// How a report is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"from","to","group_by","rows","totals","currencies"}`.
    Json,
    /// [`CSV_HEADER`], one line per row, then the `total` line.
    Csv,
    /// Aligned columns for a terminal (the CLI's default).
    Table,
}

impl FromStr for Format {
    type Err = InvalidReport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "table" => Ok(Format::Table),
            other => Err(InvalidReport::new(
                "format",
                format!("format is one of json, csv, table; got `{other}`"),
            )),
        }
    }
}

/// A report request that cannot be answered, and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidReport {
    /// The parameter at fault: `from`, `to`, `group_by` or `format`.
    pub field: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl InvalidReport {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        InvalidReport {
            field,
            message: message.into(),
        }
    }
}

/// A validated report request: an inclusive range of UTC days and a grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportQuery {
    /// First day, in days since the Unix epoch.
    pub from_day: i64,
    /// Last day (included), in days since the Unix epoch.
    pub to_day: i64,
    /// The grouping.
    pub group_by: GroupBy,
}

impl ReportQuery {
    /// Validates `from` and `to` (`YYYY-MM-DD`, both required, `from` ≤
    /// `to`, at most [`MAX_DAYS`] days) and `group_by` (default `link`).
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        group_by: Option<&str>,
    ) -> Result<ReportQuery, InvalidReport> {
        let day = |field: &'static str, value: Option<&str>| {
            let value = value.ok_or_else(|| {
                InvalidReport::new(field, format!("`{field}` is required (YYYY-MM-DD, UTC)"))
            })?;
            parse_day(value).ok_or_else(|| {
                InvalidReport::new(
                    field,
                    format!(
                        "`{field}` must be a date YYYY-MM-DD between 1970-01-01 and 9999-12-31; got `{value}`"
                    ),
                )
            })
        };
        let from_day = day("from", from)?;
        let to_day = day("to", to)?;
        if to_day < from_day {
            return Err(InvalidReport::new(
                "to",
                format!(
                    "`to` ({}) is before `from` ({})",
                    day_string(to_day),
                    day_string(from_day)
                ),
            ));
        }
        let days = to_day - from_day + 1;
        if days > MAX_DAYS {
            return Err(InvalidReport::new(
                "to",
                format!("a report covers at most {MAX_DAYS} days; {days} asked"),
            ));
        }
        let group_by = group_by.map_or(Ok(GroupBy::Link), str::parse)?;
        Ok(ReportQuery {
            from_day,
            to_day,
            group_by,
        })
    }
}

/// A report: one row per group, sorted by group key (days oldest first),
/// and the totals.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Report {
    /// First day, `YYYY-MM-DD` (UTC).
    pub from: String,
    /// Last day, included.
    pub to: String,
    /// The grouping.
    pub group_by: GroupBy,
    /// The groups with any clicks, bot hits or counted conversions in the
    /// range (by day: every day of the range).
    pub rows: Vec<ReportRow>,
    /// The sums of all rows; `group` is `total`.
    pub totals: ReportRow,
    /// The currencies of the counted conversions, sorted. More than one
    /// means the money columns add up amounts in different currencies.
    pub currencies: Vec<String>,
}

/// One group's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReportRow {
    /// The group key: a link's code, a campaign, provider, marketplace or
    /// `YYYY-MM-DD`; `(none)` for links without a campaign or marketplace;
    /// `unattributed` for conversions without a click; `total` for totals.
    pub group: String,
    /// The link's name (link grouping only).
    pub name: Option<String>,
    /// Clicks, bot hits, conversions, items, revenue, commission and
    /// earnings per click.
    #[serde(flatten)]
    pub sums: Totals,
    /// Conversions per human click, rounded to 6 decimals; 0 without clicks.
    pub conversion_rate: f64,
}

/// Days since the Unix epoch of a `YYYY-MM-DD` date from 1970-01-01 to
/// 9999-12-31; `None` for anything else.
pub fn parse_day(s: &str) -> Option<i64> {
    if s.len() != 10 || s.trim().len() != 10 {
        return None;
    }
    let day = s.parse::<Day>().ok()?.days();
    (FIRST_DAY..=LAST_DAY).contains(&day).then_some(day)
}

/// `YYYY-MM-DD` of a day since the Unix epoch.
pub fn day_string(day: i64) -> String {
    Day::from_days(day).to_string()
}

#[cfg(test)]
mod tests;
