//! [`ReportStore`] on SQLite: clicks from the rollup and counted
//! conversions, summed per group in one read transaction. Which group a
//! row falls in is [`Assembler`]'s to say.

use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::SqliteStore;
use crate::reports::ReportStore;
use crate::reports::assemble::{Assembler, LinkGroups, ServedLink, Shape};
use crate::reports::{MS_PER_DAY, Report, ReportQuery};
use crate::store::StoreError;
use crate::store::stats::{COUNTED, Sums};

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
    let mut report = Assembler::new(query);
    match report.shape() {
        Shape::Day => {
            // Driven by `links` so that each link's rollup rows are one range
            // seek on the (link_id, day) key rather than a scan of every day.
            let mut stmt = tx.prepare(
                "SELECT r.day, sum(r.clicks), sum(r.bot_hits) \
                 FROM links l CROSS JOIN click_rollup r ON r.link_id = l.id AND r.day BETWEEN ?1 AND ?2 \
                 GROUP BY r.day",
            )?;
            let mut rows = stmt.query(params![from, to])?;
            while let Some(r) = rows.next()? {
                report.day_clicks(r.get(0)?, Sums::clicks(r.get(1)?, r.get(2)?));
            }
            let mut stmt = tx.prepare(&format!(
                "SELECT c.event_ms / {MS_PER_DAY}, c.currency, count(*), sum(c.quantity - c.returns), \
                        sum(c.revenue_micros), sum(c.commission_micros) \
                 FROM conversions c WHERE c.event_ms >= ?1 AND c.event_ms < ?2 AND {COUNTED} \
                 GROUP BY 1, 2"
            ))?;
            let mut rows = stmt.query(params![from_ms, end_ms])?;
            while let Some(r) = rows.next()? {
                report.day_conversions(
                    r.get(0)?,
                    r.get(1)?,
                    Sums::conversions(r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                );
            }
        }
        Shape::Served => {
            // Per click: which country it came from and which target served
            // it. Conversions meet their click by its ID.
            let mut stmt = tx.prepare(
                "SELECT l.id, l.code, l.marketplace, l.targeting, l.destination, c.country, c.target, \
                        sum(c.bot = 0), sum(c.bot = 1) \
                 FROM clicks c JOIN links l ON l.id = c.link_id \
                 WHERE c.at_ms >= ?1 AND c.at_ms < ?2 \
                 GROUP BY c.link_id, c.country, c.target",
            )?;
            let mut rows = stmt.query(params![from_ms, end_ms])?;
            while let Some(r) = rows.next()? {
                let link = ServedLink {
                    id: r.get(0)?,
                    code: r.get(1)?,
                    marketplace: r.get(2)?,
                    targeting: r.get(3)?,
                    destination: r.get(4)?,
                };
                report.served_clicks(
                    link,
                    r.get(5)?,
                    r.get(6)?,
                    Sums::clicks(r.get(7)?, r.get(8)?),
                );
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
                let link = match r.get::<_, Option<i64>>(0)? {
                    Some(id) => Some(ServedLink {
                        id,
                        code: r.get(1)?,
                        marketplace: r.get(2)?,
                        targeting: r.get(3)?,
                        destination: r.get(4)?,
                    }),
                    None => None,
                };
                report.served_conversions(
                    link,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    Sums::conversions(r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?),
                );
            }
        }
        Shape::Link => {
            let mut stmt = tx.prepare(
                "SELECT l.code, l.name, l.campaign, l.provider, l.marketplace, \
                        sum(r.clicks), sum(r.bot_hits) \
                 FROM links l CROSS JOIN click_rollup r ON r.link_id = l.id AND r.day BETWEEN ?1 AND ?2 \
                 GROUP BY l.id",
            )?;
            let mut rows = stmt.query(params![from, to])?;
            while let Some(r) = rows.next()? {
                let link = LinkGroups {
                    code: r.get(0)?,
                    name: r.get(1)?,
                    campaign: r.get(2)?,
                    provider: r.get(3)?,
                    marketplace: r.get(4)?,
                };
                report.link_clicks(link, Sums::clicks(r.get(5)?, r.get(6)?));
            }
            let mut stmt = tx.prepare(&format!(
                "SELECT l.code, l.name, l.campaign, l.provider, l.marketplace, c.provider, \
                        c.currency, count(*), sum(c.quantity - c.returns), sum(c.revenue_micros), \
                        sum(c.commission_micros) \
                 FROM conversions c LEFT JOIN links l ON l.id = c.link_id \
                 WHERE c.event_ms >= ?1 AND c.event_ms < ?2 AND {COUNTED} \
                 GROUP BY c.link_id, c.provider, c.currency"
            ))?;
            let mut rows = stmt.query(params![from_ms, end_ms])?;
            while let Some(r) = rows.next()? {
                // No link: `link_id` NULL (or naming a link that is not there).
                let link = match r.get::<_, Option<String>>(0)? {
                    Some(code) => Some(LinkGroups {
                        code,
                        name: r.get(1)?,
                        campaign: r.get(2)?,
                        provider: r.get(3)?,
                        marketplace: r.get(4)?,
                    }),
                    None => None,
                };
                report.link_conversions(
                    link,
                    r.get(5)?,
                    r.get(6)?,
                    Sums::conversions(r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
                );
            }
        }
    }
    drop(tx);
    Ok(report.finish())
}
