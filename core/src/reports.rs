//! Attribution reports: human clicks, bot hits, conversions, items, revenue,
//! commission, conversion rate and earnings per click, grouped by link,
//! campaign, provider, marketplace or UTC day over an inclusive range of
//! days. The API (`GET /api/v1/reports`) and the CLI (`linkwright report`)
//! both parse with [`ReportQuery::parse`], query with [`run`] and render with
//! [`Report::render`]; a link's own totals ([`link_stats`]) come from the
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::Day;
use crate::money::Micros;
use crate::store::stats::{COUNTED, Sums};
use crate::store::{SqliteStore, StoreError};

pub use crate::clock::MS_PER_DAY;

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
    /// One row per marketplace; links without one are `(none)`.
    Marketplace,
    /// One row per UTC day of the range, every day listed.
    Day,
}

impl GroupBy {
    /// Every grouping, in the order the docs list them.
    pub const ALL: [GroupBy; 5] = [
        GroupBy::Link,
        GroupBy::Campaign,
        GroupBy::Provider,
        GroupBy::Marketplace,
        GroupBy::Day,
    ];

    /// The name used in queries and output.
    pub const fn as_str(self) -> &'static str {
        match self {
            GroupBy::Link => "link",
            GroupBy::Campaign => "campaign",
            GroupBy::Provider => "provider",
            GroupBy::Marketplace => "marketplace",
            GroupBy::Day => "day",
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
                        "group_by is one of link, campaign, provider, marketplace, day; got `{s}`"
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
    /// Human clicks.
    pub clicks: u64,
    /// Bot, link-preview and HEAD hits.
    pub bot_hits: u64,
    /// Conversions, except declined and deleted ones.
    pub conversions: u64,
    /// Items: quantity minus returns.
    pub items: i64,
    /// Revenue (sales amount), an exact decimal string.
    #[schema(value_type = String, example = "35.00")]
    pub revenue: Micros,
    /// Commission, an exact decimal string.
    #[schema(value_type = String, example = "1.40")]
    pub commission: Micros,
    /// Conversions per human click, rounded to 6 decimals; 0 without clicks.
    pub conversion_rate: f64,
    /// Commission per human click, to the micro-unit; 0 without clicks.
    #[schema(value_type = String, example = "0.466667")]
    pub earnings_per_click: Micros,
}

/// Runs a report on its own read-only connection to the store's file, so
/// that a long report holds up neither link lookups nor the click writer
/// (WAL readers do not block writers). Clicks and conversions are read in
/// one transaction: one consistent snapshot.
pub fn run(store: &SqliteStore, query: &ReportQuery) -> Result<Report, StoreError> {
    let conn = Connection::open_with_flags(
        store.path(),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", true)?;
    report(&conn, query)
}

/// The report over `conn` (a connection to the store's database, with no
/// transaction open: the report reads in a transaction of its own).
pub fn report(conn: &Connection, query: &ReportQuery) -> Result<Report, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let (from, to) = (query.from_day, query.to_day);
    let (from_ms, end_ms) = (from * MS_PER_DAY, (to + 1) * MS_PER_DAY);
    // Group key → (link name, sums); a BTreeMap keeps rows sorted by key.
    let mut groups: BTreeMap<String, (Option<String>, Sums)> = BTreeMap::new();
    let mut currencies = BTreeSet::new();
    let mut add = |key: String, name: Option<String>, sums: Sums| {
        let entry = groups.entry(key).or_insert((None, Sums::default()));
        if entry.0.is_none() {
            entry.0 = name;
        }
        entry.1.add(&sums);
    };
    if query.group_by == GroupBy::Day {
        for day in from..=to {
            add(day_string(day), None, Sums::default());
        }
        // Driven by `links` so that each link's rollup rows are one range
        // seek on the (link_id, day) key rather than a scan of every day.
        let mut stmt = tx.prepare(
            "SELECT r.day, sum(r.clicks), sum(r.bot_hits) \
             FROM links l CROSS JOIN click_rollup r ON r.link_id = l.id AND r.day BETWEEN ?1 AND ?2 \
             GROUP BY r.day",
        )?;
        let mut rows = stmt.query(params![from, to])?;
        while let Some(r) = rows.next()? {
            add(
                day_string(r.get(0)?),
                None,
                Sums::clicks(r.get(1)?, r.get(2)?),
            );
        }
        let mut stmt = tx.prepare(&format!(
            "SELECT c.event_ms / {MS_PER_DAY}, c.currency, count(*), sum(c.quantity - c.returns), \
                    sum(c.revenue_micros), sum(c.commission_micros) \
             FROM conversions c WHERE c.event_ms >= ?1 AND c.event_ms < ?2 AND {COUNTED} \
             GROUP BY 1, 2"
        ))?;
        let mut rows = stmt.query(params![from_ms, end_ms])?;
        while let Some(r) = rows.next()? {
            if let Some(c) = r.get::<_, Option<String>>(1)?.filter(|c| !c.is_empty()) {
                currencies.insert(c);
            }
            add(
                day_string(r.get(0)?),
                None,
                Sums::conversions(r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
            );
        }
    } else {
        let g = query.group_by;
        let mut stmt = tx.prepare(
            "SELECT l.code, l.name, l.campaign, l.provider, l.marketplace, \
                    sum(r.clicks), sum(r.bot_hits) \
             FROM links l CROSS JOIN click_rollup r ON r.link_id = l.id AND r.day BETWEEN ?1 AND ?2 \
             GROUP BY l.id",
        )?;
        let mut rows = stmt.query(params![from, to])?;
        while let Some(r) = rows.next()? {
            let code: String = r.get(0)?;
            let (key, name) = match g {
                GroupBy::Link => (code, r.get(1)?),
                GroupBy::Campaign => (or_none(r.get(2)?), None),
                GroupBy::Provider => (r.get(3)?, None),
                _ => (or_none(r.get(4)?), None),
            };
            add(key, name, Sums::clicks(r.get(5)?, r.get(6)?));
        }
        let mut stmt = tx.prepare(&format!(
            "SELECT l.code, l.name, l.campaign, l.marketplace, coalesce(l.provider, c.provider), \
                    c.currency, count(*), sum(c.quantity - c.returns), sum(c.revenue_micros), \
                    sum(c.commission_micros) \
             FROM conversions c LEFT JOIN links l ON l.id = c.link_id \
             WHERE c.event_ms >= ?1 AND c.event_ms < ?2 AND {COUNTED} \
             GROUP BY c.link_id, c.provider, c.currency"
        ))?;
        let mut rows = stmt.query(params![from_ms, end_ms])?;
        while let Some(r) = rows.next()? {
            // No link: `link_id` NULL (or naming a link that is not there).
            let code: Option<String> = r.get(0)?;
            let attributed = code.is_some();
            let (key, name) = match g {
                GroupBy::Link => match code {
                    Some(code) => (code, r.get(1)?),
                    None => (UNATTRIBUTED.to_owned(), None),
                },
                GroupBy::Provider => (r.get(4)?, None),
                GroupBy::Campaign if attributed => (or_none(r.get(2)?), None),
                GroupBy::Marketplace if attributed => (or_none(r.get(3)?), None),
                _ => (UNATTRIBUTED.to_owned(), None),
            };
            if let Some(c) = r.get::<_, Option<String>>(5)?.filter(|c| !c.is_empty()) {
                currencies.insert(c);
            }
            add(
                key,
                name,
                Sums::conversions(r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?),
            );
        }
    }
    drop(tx);
    let mut total = Sums::default();
    let rows = groups
        .into_iter()
        .map(|(key, (name, sums))| {
            total.add(&sums);
            row(&sums, key, name)
        })
        .collect();
    Ok(Report {
        from: day_string(from),
        to: day_string(to),
        group_by: query.group_by,
        rows,
        totals: row(&total, TOTAL.to_owned(), None),
        currencies: currencies.into_iter().collect(),
    })
}

fn or_none(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| NONE.to_owned())
}

/// A report row of a group's sums.
fn row(sums: &Sums, group: String, name: Option<String>) -> ReportRow {
    let rate = if sums.clicks == 0 {
        0.0
    } else {
        (sums.conversions as f64 / sums.clicks as f64 * 1e6).round() / 1e6
    };
    ReportRow {
        group,
        name,
        clicks: sums.clicks,
        bot_hits: sums.bot_hits,
        conversions: sums.conversions,
        items: sums.items,
        revenue: Micros(sums.revenue),
        commission: Micros(sums.commission),
        conversion_rate: rate,
        earnings_per_click: Micros(sums.commission).per(sums.clicks),
    }
}

impl Report {
    /// The report in `format`.
    pub fn render(&self, format: Format) -> Result<String, std::io::Error> {
        match format {
            Format::Json => serde_json::to_string_pretty(self)
                .map(|mut s| {
                    s.push('\n');
                    s
                })
                .map_err(std::io::Error::other),
            Format::Csv => self.to_csv(),
            Format::Table => Ok(self.to_table()),
        }
    }

    /// [`CSV_HEADER`], one line per row, then the `total` line.
    pub fn to_csv(&self) -> Result<String, std::io::Error> {
        let mut out = csv::Writer::from_writer(Vec::with_capacity(64 * (self.rows.len() + 2)));
        out.write_record(CSV_HEADER)?;
        for row in self.rows.iter().chain([&self.totals]) {
            out.write_record(row.cells())?;
        }
        let bytes = out.into_inner().map_err(|e| e.into_error())?;
        String::from_utf8(bytes).map_err(std::io::Error::other)
    }

    /// Aligned columns for a terminal: a header, the rows, a rule and the
    /// totals; links also show their names.
    pub fn to_table(&self) -> String {
        let with_name = self.group_by == GroupBy::Link;
        let mut header: Vec<String> = vec![self.group_by.as_str().to_owned()];
        if with_name {
            header.push("name".to_owned());
        }
        header.extend(CSV_HEADER[1..].iter().map(|h| (*h).to_owned()));
        let line = |row: &ReportRow| {
            let mut cells = row.cells();
            if with_name {
                cells.insert(1, row.name.clone().unwrap_or_default());
            }
            cells
        };
        let body: Vec<Vec<String>> = self.rows.iter().map(line).collect();
        let total = line(&self.totals);
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for cells in body.iter().chain([&total]) {
            for (w, c) in widths.iter_mut().zip(cells) {
                *w = (*w).max(c.chars().count());
            }
        }
        // Text columns (group, name) align left, numbers right.
        let text_columns = if with_name { 2 } else { 1 };
        let mut out = String::new();
        let mut write_line = |cells: &[String]| {
            let mut line = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w.saturating_sub(cell.chars().count());
                if i < text_columns {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        };
        write_line(&header);
        for cells in &body {
            write_line(cells);
        }
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        write_line(&rule);
        write_line(&total);
        if self.currencies.len() > 1 {
            let _ = writeln!(
                out,
                "note: the money columns add up amounts in {}",
                self.currencies.join(", ")
            );
        }
        out
    }
}

impl ReportRow {
    /// The CSV cells, in [`CSV_HEADER`] order.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.group.clone(),
            self.clicks.to_string(),
            self.bot_hits.to_string(),
            self.conversions.to_string(),
            self.items.to_string(),
            self.revenue.to_string(),
            self.commission.to_string(),
            self.conversion_rate.to_string(),
            self.earnings_per_click.to_string(),
        ]
    }
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
mod tests {
    use std::path::PathBuf;

    use linkwright_plugin_sdk::SubIdEncoding;

    use super::*;
    use crate::classify::UaClass;
    use crate::store::{ClickEvent, NewLink, Store};
    use crate::template::Template;

    /// 2024-10-04.
    const D: i64 = 20_000;
    const HOUR: i64 = 3_600_000;
    /// Micro-units in a cent.
    const CENT: i64 = 10_000;

    /// A conversion: row key, link, provider, (day, hour), (quantity,
    /// returns), (revenue, commission) in cents, status, currency.
    type Conv<'a> = (
        &'a str,
        Option<i64>,
        &'a str,
        (i64, i64),
        (i64, i64),
        (i64, i64),
        &'a str,
        &'a str,
    );

    /// A store in a fresh folder, removed on drop.
    struct Fixture {
        dir: PathBuf,
        store: SqliteStore,
    }

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir =
                std::env::temp_dir().join(format!("lw-reports-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let store = SqliteStore::open(&dir).expect("open store");
            Fixture { dir, store }
        }

        fn link(
            &self,
            code: &str,
            provider: &str,
            marketplace: Option<&str>,
            campaign: Option<&str>,
            name: Option<&str>,
        ) -> i64 {
            let link = self
                .store
                .create_link(NewLink {
                    code: Some(code.into()),
                    input: format!("https://shop.example/{code}"),
                    template: Template {
                        provider: provider.into(),
                        built: linkwright_model::template::Built {
                            prefix: format!("https://shop.example/{code}?sub="),
                            suffix: String::new(),
                            destination: format!("https://shop.example/{code}"),
                            marketplace: marketplace.map(str::to_owned),
                            subid_max_len: 64,
                            subid_encoding: SubIdEncoding::UrlSafe,
                        },
                    },
                    name: name.map(str::to_owned),
                    campaign: campaign.map(str::to_owned),
                    tags: vec![],
                    params: vec![],
                    source_key: None,
                    request_key: None,
                })
                .expect("create link");
            link.id
        }

        /// `humans` human clicks and `bots` bot hits on `link` at `at_ms`,
        /// in one batch.
        fn clicks(&self, link_id: i64, at_ms: i64, humans: usize, bots: usize) {
            let batch: Vec<ClickEvent> = (0..humans + bots)
                .map(|i| click(link_id, at_ms, i >= humans))
                .collect();
            self.store.insert_clicks(&batch).expect("insert clicks");
        }

        /// Inserts conversions as an importer would.
        fn conversions(&self, rows: &[Conv<'_>]) {
            for &(row_key, link_id, provider, (day, hour), (qty, ret), (rev, com), status, cur) in
                rows
            {
                self.store.with_conn(|c| {
                    c.execute(
                        "INSERT INTO conversions (provider, kind, row_key, link_id, event_ms, \
                         quantity, returns, revenue_micros, commission_micros, status, currency, \
                         imported_ms, updated_ms) \
                         VALUES (?1, 'test', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, 0)",
                        params![
                            provider,
                            row_key,
                            link_id,
                            ms(day, hour),
                            qty,
                            ret,
                            rev * CENT,
                            com * CENT,
                            status,
                            cur
                        ],
                    )
                    .expect("insert conversion")
                });
            }
        }

        fn report(&self, from: i64, to: i64, group_by: GroupBy) -> Report {
            run(
                &self.store,
                &ReportQuery {
                    from_day: from,
                    to_day: to,
                    group_by,
                },
            )
            .expect("report")
        }

        fn rollup(&self) -> Vec<(i64, i64, i64, i64)> {
            self.store.with_conn(|c| {
                let mut stmt = c
                    .prepare(
                        "SELECT link_id, day, clicks, bot_hits FROM click_rollup ORDER BY 1, 2",
                    )
                    .expect("prepare");
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .expect("query")
                    .collect::<Result<_, _>>()
                    .expect("rows")
            })
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn click(link_id: i64, at_ms: i64, bot: bool) -> ClickEvent {
        ClickEvent {
            click_id: None,
            link_id,
            at_ms,
            bot,
            referrer_host: None,
            ua_class: if bot { UaClass::Bot } else { UaClass::Desktop },
            country: None,
        }
    }

    fn ms(day: i64, hours: i64) -> i64 {
        day * MS_PER_DAY + hours * HOUR
    }

    /// `(group, clicks, bot_hits, conversions, items, revenue, commission,
    /// conversion_rate, earnings_per_click)`, money as shown.
    type Expected<'a> = (&'a str, u64, u64, u64, i64, &'a str, &'a str, f64, &'a str);

    fn assert_row(row: &ReportRow, e: Expected<'_>) {
        let got = (
            row.group.as_str(),
            row.clicks,
            row.bot_hits,
            row.conversions,
            row.items,
            row.revenue.to_string(),
            row.commission.to_string(),
            row.conversion_rate,
            row.earnings_per_click.to_string(),
        );
        let want = (
            e.0,
            e.1,
            e.2,
            e.3,
            e.4,
            e.5.to_owned(),
            e.6.to_owned(),
            e.7,
            e.8.to_owned(),
        );
        assert_eq!(got, want, "row {}", row.group);
    }

    fn assert_rows(report: &Report, rows: &[Expected<'_>], total: Expected<'_>) {
        let groups: Vec<&str> = report.rows.iter().map(|r| r.group.as_str()).collect();
        let want: Vec<&str> = rows.iter().map(|r| r.0).collect();
        assert_eq!(groups, want, "{}", report.group_by);
        for (row, e) in report.rows.iter().zip(rows) {
            assert_row(row, *e);
        }
        assert_row(&report.totals, total);
    }

    #[test]
    fn clicks_written_in_batches_update_the_rollup_across_midnight() {
        let f = Fixture::new("rollup");
        let a = f.link("a", "amazon", Some("amazon.com"), None, None);
        let b = f.link("b", "amazon", Some("amazon.com"), None, None);
        // Batch 1: day D at 10:00.
        f.clicks(a, ms(D, 10), 3, 1);
        // Batch 2, same day: adds to the same rollup row.
        f.clicks(a, ms(D, 12), 2, 0);
        // Batch 3 spans midnight UTC: the last millisecond of D and the
        // first of D + 1, for two links.
        f.store
            .insert_clicks(&[
                click(a, ms(D + 1, 0) - 1, false),
                click(a, ms(D + 1, 0), false),
                click(a, ms(D + 1, 0), true),
                click(b, ms(D + 1, 0) - 1, true),
                click(b, ms(D + 1, 23), false),
            ])
            .expect("insert");
        assert_eq!(
            f.rollup(),
            vec![
                (a, D, 6, 1),
                (a, D + 1, 1, 1),
                (b, D, 0, 1),
                (b, D + 1, 1, 0)
            ]
        );
        // The rollup says what the raw clicks say (the migration's backfill).
        let recomputed: Vec<(i64, i64, i64, i64)> = f.store.with_conn(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT link_id, at_ms / 86400000, sum(bot = 0), sum(bot = 1) FROM clicks \
                     GROUP BY 1, 2 ORDER BY 1, 2",
                )
                .expect("prepare");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        });
        assert_eq!(f.rollup(), recomputed);
        // Link stats read the rollup.
        let stats = f.store.link_stats(a).expect("stats");
        assert_eq!((stats.clicks, stats.bot_hits), (7, 2));
        let days: Vec<(&str, u64, u64)> = stats
            .by_day
            .iter()
            .map(|d| (d.day.as_str(), d.clicks, d.bot_hits))
            .collect();
        assert_eq!(days, vec![("2024-10-04", 6, 1), ("2024-10-05", 1, 1)]);
    }

    /// Three links, clicks inside and outside the range D..=D+1, and
    /// conversions: counted, declined, deleted, out of range, unattributed.
    fn shop(name: &str) -> (Fixture, i64, i64, i64) {
        let f = Fixture::new(name);
        let a = f.link(
            "a",
            "amazon",
            Some("amazon.com"),
            Some("spring"),
            Some("Echo video"),
        );
        let b = f.link("b", "amazon", Some("amazon.co.uk"), Some("spring"), None);
        let c = f.link("c", "awin", None, None, Some("Widget post"));
        f.clicks(a, ms(D, 9), 10, 2);
        f.clicks(a, ms(D + 1, 9), 5, 0);
        f.clicks(b, ms(D, 20), 4, 0);
        f.clicks(c, ms(D + 1, 1), 1, 3);
        // Outside the range.
        f.clicks(a, ms(D - 1, 23), 7, 1);
        f.clicks(a, ms(D + 2, 0), 2, 0);

        #[rustfmt::skip]
        f.conversions(&[
            ("a1", Some(a), "amazon", (D, 10), (2, 1), (3000, 120), "approved", "USD"),
            ("a2", Some(a), "amazon", (D + 1, 23), (1, 0), (999, 40), "pending", "USD"),
            ("a3", Some(a), "amazon", (D, 11), (5, 0), (10000, 500), "declined", "USD"),
            // Outside the range.
            ("a4", Some(a), "amazon", (D - 1, 12), (1, 0), (5000, 200), "approved", "USD"),
            ("a5", Some(a), "amazon", (D + 2, 0), (1, 0), (100, 10), "approved", "USD"),
            ("b1", Some(b), "amazon", (D, 21), (3, 0), (1500, 75), "Approved", "GBP"),
            ("u1", None, "amazon", (D + 1, 2), (1, 0), (2000, 80), "pending", "USD"),
            ("u2", None, "awin", (D, 3), (1, 0), (1000, 100), "DELETED", "USD"),
        ]);
        (f, a, b, c)
    }

    const TOTAL_ROW: Expected<'static> = ("total", 20, 5, 4, 6, "74.99", "3.15", 0.2, "0.1575");

    #[test]
    fn report_by_link_matches_the_hand_worked_totals() {
        let (f, ..) = shop("by-link");
        let report = f.report(D, D + 1, GroupBy::Link);
        // a: 15 clicks, 2 bots; a1 (2 - 1 items) + a2 (1 item); 1.60 / 15.
        // b: 4 clicks; b1. c: 1 click, 3 bots, no conversions.
        assert_rows(
            &report,
            &[
                ("a", 15, 2, 2, 2, "39.99", "1.60", 0.133333, "0.106667"),
                ("b", 4, 0, 1, 3, "15.00", "0.75", 0.25, "0.1875"),
                ("c", 1, 3, 0, 0, "0.00", "0.00", 0.0, "0.00"),
                ("unattributed", 0, 0, 1, 1, "20.00", "0.80", 0.0, "0.00"),
            ],
            TOTAL_ROW,
        );
        let names: Vec<Option<&str>> = report.rows.iter().map(|r| r.name.as_deref()).collect();
        assert_eq!(
            names,
            vec![Some("Echo video"), None, Some("Widget post"), None]
        );
        assert_eq!(report.from, "2024-10-04");
        assert_eq!(report.to, "2024-10-05");
        assert_eq!(report.currencies, vec!["GBP", "USD"]);
    }

    #[test]
    fn report_by_campaign_matches_the_hand_worked_totals() {
        let (f, ..) = shop("by-campaign");
        assert_rows(
            &f.report(D, D + 1, GroupBy::Campaign),
            &[
                ("(none)", 1, 3, 0, 0, "0.00", "0.00", 0.0, "0.00"),
                // a + b: 19 clicks; 3 conversions; 2.35 / 19.
                ("spring", 19, 2, 3, 5, "54.99", "2.35", 0.157895, "0.123684"),
                ("unattributed", 0, 0, 1, 1, "20.00", "0.80", 0.0, "0.00"),
            ],
            TOTAL_ROW,
        );
    }

    #[test]
    fn report_by_provider_counts_conversions_under_the_reporting_provider() {
        let (f, ..) = shop("by-provider");
        assert_rows(
            &f.report(D, D + 1, GroupBy::Provider),
            &[
                // Clicks of a and b; conversions a1, a2, b1 and the
                // unattributed u1, all reported by amazon. 3.15 / 19.
                ("amazon", 19, 2, 4, 6, "74.99", "3.15", 0.210526, "0.165789"),
                ("awin", 1, 3, 0, 0, "0.00", "0.00", 0.0, "0.00"),
            ],
            TOTAL_ROW,
        );
    }

    /// Regression: a provider configured under its own name (`amz-us`,
    /// plugin amazon) had its clicks under `amz-us` and the conversions its
    /// clicks earned under `amazon`, the network's name: two rows.
    #[test]
    fn report_by_provider_has_one_row_per_configured_provider_whatever_its_name() {
        let f = Fixture::new("provider-name");
        let link = f.link("p", "amz-us", Some("amazon.com"), None, None);
        f.clicks(link, ms(D, 1), 4, 0);
        f.conversions(&[
            (
                "p1",
                Some(link),
                "amazon",
                (D, 2),
                (1, 0),
                (2000, 100),
                "approved",
                "USD",
            ),
            (
                "u1",
                None,
                "amazon",
                (D, 2),
                (1, 0),
                (1000, 50),
                "approved",
                "USD",
            ),
        ]);
        assert_rows(
            &f.report(D, D, GroupBy::Provider),
            &[
                ("amazon", 0, 0, 1, 1, "10.00", "0.50", 0.0, "0.00"),
                ("amz-us", 4, 0, 1, 1, "20.00", "1.00", 0.25, "0.25"),
            ],
            ("total", 4, 0, 2, 2, "30.00", "1.50", 0.5, "0.375"),
        );
    }

    #[test]
    fn report_by_marketplace_matches_the_hand_worked_totals() {
        let (f, ..) = shop("by-marketplace");
        assert_rows(
            &f.report(D, D + 1, GroupBy::Marketplace),
            &[
                ("(none)", 1, 3, 0, 0, "0.00", "0.00", 0.0, "0.00"),
                ("amazon.co.uk", 4, 0, 1, 3, "15.00", "0.75", 0.25, "0.1875"),
                (
                    "amazon.com",
                    15,
                    2,
                    2,
                    2,
                    "39.99",
                    "1.60",
                    0.133333,
                    "0.106667",
                ),
                ("unattributed", 0, 0, 1, 1, "20.00", "0.80", 0.0, "0.00"),
            ],
            TOTAL_ROW,
        );
    }

    #[test]
    fn report_by_day_lists_every_day_oldest_first() {
        let (f, ..) = shop("by-day");
        assert_rows(
            &f.report(D, D + 1, GroupBy::Day),
            &[
                // a 10 + b 4 clicks; a1 (1 item, 30.00) + b1 (3, 15.00).
                (
                    "2024-10-04",
                    14,
                    2,
                    2,
                    4,
                    "45.00",
                    "1.95",
                    0.142857,
                    "0.139286",
                ),
                // a 5 + c 1 clicks; a2 (9.99) + the unattributed u1 (20.00).
                ("2024-10-05", 6, 3, 2, 2, "29.99", "1.20", 0.333333, "0.20"),
            ],
            TOTAL_ROW,
        );
        // A wider range lists the quiet days too, with zeros.
        let wide = f.report(D - 2, D + 3, GroupBy::Day);
        let days: Vec<(&str, u64, u64)> = wide
            .rows
            .iter()
            .map(|r| (r.group.as_str(), r.clicks, r.conversions))
            .collect();
        assert_eq!(
            days,
            vec![
                ("2024-10-02", 0, 0),
                ("2024-10-03", 7, 1),
                ("2024-10-04", 14, 2),
                ("2024-10-05", 6, 2),
                ("2024-10-06", 2, 1),
                ("2024-10-07", 0, 0),
            ]
        );
    }

    #[test]
    fn unattributed_conversions_have_their_own_group_and_count_in_the_totals() {
        let f = Fixture::new("unattributed");
        let a = f.link("a", "amazon", Some("amazon.com"), Some("spring"), None);
        f.clicks(a, ms(D, 1), 2, 0);
        f.conversions(&[(
            "u",
            None,
            "awin",
            (D, 2),
            (2, 0),
            (800, 50),
            "pending",
            "EUR",
        )]);
        for g in [GroupBy::Link, GroupBy::Campaign, GroupBy::Marketplace] {
            let report = f.report(D, D, g);
            let last = report.rows.last().expect("rows");
            assert_row(
                last,
                ("unattributed", 0, 0, 1, 2, "8.00", "0.50", 0.0, "0.00"),
            );
            assert_row(
                &report.totals,
                ("total", 2, 0, 1, 2, "8.00", "0.50", 0.5, "0.25"),
            );
        }
        let by_provider = f.report(D, D, GroupBy::Provider);
        let groups: Vec<&str> = by_provider.rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(groups, vec!["amazon", "awin"]);
        assert_eq!(by_provider.rows[1].conversions, 1);
    }

    #[test]
    fn an_amazon_sale_in_both_orders_and_earnings_reports_counts_once() {
        let f = Fixture::new("orders-vs-earnings");
        let a = f.link("a", "amazon", Some("amazon.com"), None, None);
        f.clicks(a, ms(D, 1), 4, 0);
        // The same sale, as the Orders report (at purchase) and the Earnings
        // report (at shipment) record it: only the Earnings row counts.
        for (kind, row_key, status) in [("orders", "o1", "pending"), ("earnings", "e1", "approved")]
        {
            f.store.with_conn(|c| {
                c.execute(
                    "INSERT INTO conversions (provider, kind, row_key, link_id, event_ms, \
                     quantity, returns, revenue_micros, commission_micros, status, currency, \
                     imported_ms, updated_ms) \
                     VALUES ('amazon', ?1, ?2, ?3, ?4, 1, 0, ?5, ?6, ?7, 'USD', 0, 0)",
                    params![kind, row_key, a, ms(D, 2), 2000 * CENT, 100 * CENT, status],
                )
                .expect("insert conversion")
            });
        }
        let report = f.report(D, D, GroupBy::Link);
        assert_row(
            &report.totals,
            ("total", 4, 0, 1, 1, "20.00", "1.00", 0.25, "0.25"),
        );
    }

    #[test]
    fn declined_and_deleted_conversions_are_not_counted() {
        let f = Fixture::new("declined");
        let a = f.link("a", "amazon", Some("amazon.com"), None, None);
        f.clicks(a, ms(D, 1), 4, 0);
        #[rustfmt::skip]
        f.conversions(&[
            ("1", Some(a), "amazon", (D, 2), (1, 0), (500, 25), "declined", "USD"),
            ("2", Some(a), "amazon", (D, 2), (1, 0), (500, 25), "Declined", "USD"),
            ("3", Some(a), "amazon", (D, 2), (1, 0), (500, 25), "deleted", "USD"),
            ("4", Some(a), "amazon", (D, 3), (1, 0), (400, 20), "approved", "USD"),
        ]);
        let report = f.report(D, D, GroupBy::Link);
        assert_rows(
            &report,
            &[("a", 4, 0, 1, 1, "4.00", "0.20", 0.25, "0.05")],
            ("total", 4, 0, 1, 1, "4.00", "0.20", 0.25, "0.05"),
        );
        let stats = f.store.link_stats(a).expect("stats");
        assert_eq!(
            (
                stats.conversions,
                stats.commission,
                stats.earnings_per_click
            ),
            (1, Micros(200_000), Micros(50_000))
        );
    }

    #[test]
    fn an_empty_range_has_no_rows_and_zero_totals() {
        let (f, ..) = shop("empty");
        let zero: Expected<'static> = ("total", 0, 0, 0, 0, "0.00", "0.00", 0.0, "0.00");
        for g in [
            GroupBy::Link,
            GroupBy::Campaign,
            GroupBy::Provider,
            GroupBy::Marketplace,
        ] {
            let report = f.report(D + 10, D + 12, g);
            assert!(report.rows.is_empty(), "{g}: {:?}", report.rows);
            assert_row(&report.totals, zero);
            assert!(report.currencies.is_empty());
        }
        let by_day = f.report(D + 10, D + 12, GroupBy::Day);
        assert_eq!(by_day.rows.len(), 3);
        assert!(
            by_day
                .rows
                .iter()
                .all(|r| r.clicks == 0 && r.conversions == 0)
        );
        assert_row(&by_day.totals, zero);
    }

    #[test]
    fn link_stats_carry_conversions_and_earnings_per_day() {
        let (f, a, _, c) = shop("stats");
        let stats = f.store.link_stats(a).expect("stats");
        // Every day of a's life: D-1 .. D+2 (a3 declined).
        assert_eq!((stats.clicks, stats.bot_hits), (24, 3));
        assert_eq!((stats.conversions, stats.items), (4, 4));
        assert_eq!(stats.revenue.to_string(), "90.99");
        assert_eq!(stats.commission.to_string(), "3.70");
        assert_eq!(stats.earnings_per_click.to_string(), "0.154167");
        let days: Vec<(&str, u64, u64, String)> = stats
            .by_day
            .iter()
            .map(|d| {
                (
                    d.day.as_str(),
                    d.clicks,
                    d.conversions,
                    d.commission.to_string(),
                )
            })
            .collect();
        assert_eq!(
            days,
            vec![
                ("2024-10-03", 7, 1, "2.00".to_owned()),
                ("2024-10-04", 10, 1, "1.20".to_owned()),
                ("2024-10-05", 5, 1, "0.40".to_owned()),
                ("2024-10-06", 2, 1, "0.10".to_owned()),
            ]
        );
        assert_eq!(stats.by_day[1].earnings_per_click, Micros(120_000));
        let quiet = f.store.link_stats(c).expect("stats");
        assert_eq!(
            (quiet.conversions, quiet.earnings_per_click),
            (0, Micros::ZERO)
        );
    }

    #[test]
    fn csv_and_table_carry_the_rows_and_the_total() {
        let (f, ..) = shop("render");
        let report = f.report(D, D + 1, GroupBy::Link);
        let csv = report.render(Format::Csv).expect("csv");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            vec![
                "group,clicks,bot_hits,conversions,items,revenue,commission,conversion_rate,earnings_per_click",
                "a,15,2,2,2,39.99,1.60,0.133333,0.106667",
                "b,4,0,1,3,15.00,0.75,0.25,0.1875",
                "c,1,3,0,0,0.00,0.00,0,0.00",
                "unattributed,0,0,1,1,20.00,0.80,0,0.00",
                "total,20,5,4,6,74.99,3.15,0.2,0.1575",
            ]
        );
        let table = report.render(Format::Table).expect("table");
        let lines: Vec<&str> = table.lines().collect();
        let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(words(0)[..3], ["link", "name", "clicks"], "{table}");
        assert_eq!(
            words(1),
            [
                "a", "Echo", "video", "15", "2", "2", "2", "39.99", "1.60", "0.133333", "0.106667"
            ],
            "{table}"
        );
        assert_eq!(words(2)[..2], ["b", "4"], "{table}");
        assert_eq!(
            words(6),
            [
                "total", "20", "5", "4", "6", "74.99", "3.15", "0.2", "0.1575"
            ],
            "{table}"
        );
        // Numbers align right: every line is as wide as the header.
        assert_eq!(lines[1].len(), lines[0].len(), "{table}");
        assert!(table.contains("amounts in GBP, USD"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&report.render(Format::Json).expect("json")).expect("parse");
        assert_eq!(json["group_by"], "link");
        assert_eq!(json["rows"][0]["revenue"], "39.99");
        assert_eq!(json["rows"][0]["conversion_rate"], 0.133333);
        assert_eq!(json["totals"]["earnings_per_click"], "0.1575");
    }

    #[test]
    fn report_queries_are_validated_with_the_field_at_fault() {
        let ok = ReportQuery::parse(Some("2024-10-04"), Some("2024-10-05"), None).expect("ok");
        assert_eq!(
            (ok.from_day, ok.to_day, ok.group_by),
            (D, D + 1, GroupBy::Link)
        );
        let year = ReportQuery::parse(Some("2024-01-01"), Some("2024-12-31"), Some("day"));
        assert_eq!(
            year.map(|q| q.group_by),
            Ok(GroupBy::Day),
            "366 days is the limit"
        );
        for (from, to, group_by, field) in [
            (None, Some("2024-10-05"), None, "from"),
            (Some("2024-10-04"), None, None, "to"),
            (Some("2024-10-4"), Some("2024-10-05"), None, "from"),
            (Some("2024-02-30"), Some("2024-10-05"), None, "from"),
            (Some("2023-02-29"), Some("2024-10-05"), None, "from"),
            (Some("1969-12-31"), Some("2024-10-05"), None, "from"),
            (Some("2024-10-04"), Some("2024/10/05"), None, "to"),
            (Some("2024-10-04"), Some("2024-13-01"), None, "to"),
            (Some("2024-10-05"), Some("2024-10-04"), None, "to"),
            (Some("2024-01-01"), Some("2025-01-01"), None, "to"),
            (
                Some("2024-10-04"),
                Some("2024-10-05"),
                Some("week"),
                "group_by",
            ),
            (
                Some("2024-10-04"),
                Some("2024-10-05"),
                Some("Link"),
                "group_by",
            ),
        ] {
            let e = ReportQuery::parse(from, to, group_by).expect_err("invalid");
            assert_eq!(e.field, field, "{from:?} {to:?} {group_by:?}: {e}");
        }
        assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
        assert_eq!("xml".parse::<Format>().map_err(|e| e.field), Err("format"));
    }

    #[test]
    fn days_convert_both_ways() {
        for (s, day) in [
            ("1970-01-01", 0),
            ("2000-03-01", 11_017),
            ("2024-02-29", 19_782),
            ("2024-10-04", D),
            ("9999-12-31", LAST_DAY),
        ] {
            assert_eq!(parse_day(s), Some(day), "{s}");
            assert_eq!(day_string(day), s);
        }
        for day in (0..LAST_DAY).step_by(997) {
            assert_eq!(parse_day(&day_string(day)), Some(day));
        }
    }
}
