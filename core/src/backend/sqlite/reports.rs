//! [`ReportStore`] on SQLite: clicks from the rollup and counted
//! conversions, summed per group in one read transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::SqliteStore;
use crate::reports::ReportStore;
use crate::reports::{
    GroupBy, MS_PER_DAY, NONE, Report, ReportQuery, ReportRow, TOTAL, UNATTRIBUTED, day_string,
};
use crate::store::stats::{COUNTED, Sums};
use crate::store::{StoreError, Targeting};

impl ReportStore for SqliteStore {
    fn report(&self, query: &ReportQuery) -> Result<Report, StoreError> {
        run(self, query)
    }
}

/// Runs a report on its own read-only connection to the store's file, so
/// that a long report holds up neither link lookups nor the click writer
/// (WAL readers do not block writers). Clicks and conversions are read in
/// one transaction: one consistent snapshot.
fn run(store: &SqliteStore, query: &ReportQuery) -> Result<Report, StoreError> {
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
fn report(conn: &Connection, query: &ReportQuery) -> Result<Report, StoreError> {
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
    } else if matches!(
        query.group_by,
        GroupBy::Country | GroupBy::Target | GroupBy::Marketplace
    ) {
        // Per click: which country it came from and which target served
        // it. Conversions meet their click by its ID.
        let g = query.group_by;
        let mut served = Served::default();
        type LinkRow = (i64, String, Option<String>, Option<String>, String);
        let mut key_of = |link: Option<LinkRow>,
                          country: Option<String>,
                          target: Option<u8>|
         -> (String, Option<String>) {
            match g {
                GroupBy::Country => (or_none(country), None),
                _ => match link {
                    None => (UNATTRIBUTED.to_owned(), None),
                    Some((id, code, marketplace, targeting, own)) => {
                        let target = target.unwrap_or(0);
                        let (m, destination) =
                            served.of(id, target, (marketplace, own), targeting.as_deref());
                        if g == GroupBy::Target {
                            (format!("{code}#{target}"), Some(m.unwrap_or(destination)))
                        } else {
                            (or_none(m), None)
                        }
                    }
                },
            }
        };
        let mut stmt = tx.prepare(
            "SELECT l.id, l.code, l.marketplace, l.targeting, l.destination, c.country, c.target, \
                    sum(c.bot = 0), sum(c.bot = 1) \
             FROM clicks c JOIN links l ON l.id = c.link_id \
             WHERE c.at_ms >= ?1 AND c.at_ms < ?2 \
             GROUP BY c.link_id, c.country, c.target",
        )?;
        let mut rows = stmt.query(params![from_ms, end_ms])?;
        while let Some(r) = rows.next()? {
            let link = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let (key, name) = key_of(Some(link), r.get(5)?, r.get(6)?);
            add(key, name, Sums::clicks(r.get(7)?, r.get(8)?));
        }
        let mut stmt = tx.prepare(&format!(
            "SELECT l.id, l.code, l.marketplace, l.targeting, l.destination, k.country, k.target, \
                    c.currency, count(*), sum(c.quantity - c.returns), sum(c.revenue_micros), \
                    sum(c.commission_micros) \
             FROM conversions c LEFT JOIN links l ON l.id = c.link_id \
             LEFT JOIN clicks_by_id k ON k.click_id = c.click_id \
             WHERE c.event_ms >= ?1 AND c.event_ms < ?2 AND {COUNTED} \
             GROUP BY c.link_id, k.country, k.target, c.currency"
        ))?;
        let mut rows = stmt.query(params![from_ms, end_ms])?;
        while let Some(r) = rows.next()? {
            let id: Option<i64> = r.get(0)?;
            let link = match id {
                Some(id) => Some((id, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                None => None,
            };
            let (key, name) = key_of(link, r.get(5)?, r.get(6)?);
            if let Some(c) = r.get::<_, Option<String>>(7)?.filter(|c| !c.is_empty()) {
                currencies.insert(c);
            }
            add(
                key,
                name,
                Sums::conversions(r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?),
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

/// The marketplace and destination each link's targets serve, from their
/// stored targeting, parsed once per link.
#[derive(Default)]
struct Served {
    links: std::collections::HashMap<i64, Option<Targeting>>,
}

impl Served {
    /// The marketplace and destination target `target` of link `id` serves
    /// (target 0, or one that is not there: the link's own, `own`).
    fn of(
        &mut self,
        id: i64,
        target: u8,
        own: (Option<String>, String),
        targeting: Option<&str>,
    ) -> (Option<String>, String) {
        let parsed = self
            .links
            .entry(id)
            .or_insert_with(|| targeting.and_then(|json| serde_json::from_str(json).ok()));
        match parsed
            .as_ref()
            .and_then(|t| t.targets.get(usize::from(target).wrapping_sub(1)))
        {
            Some(t) => (t.marketplace.clone(), t.destination.clone()),
            None => own,
        }
    }
}

fn or_none(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| NONE.to_owned())
}

/// A report row of a group's sums.
fn row(sums: &Sums, group: String, name: Option<String>) -> ReportRow {
    let conversion_rate = if sums.clicks == 0 {
        0.0
    } else {
        (sums.conversions as f64 / sums.clicks as f64 * 1e6).round() / 1e6
    };
    ReportRow {
        group,
        name,
        sums: sums.totals(),
        conversion_rate,
    }
}
