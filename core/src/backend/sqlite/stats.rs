//! One link's totals (`GET /api/v1/links/{code}/stats`) and the click
//! breakdown, on SQLite.

use std::collections::BTreeMap;

use rusqlite::Connection;

use crate::click::ClickId;
use crate::clock::MS_PER_DAY;
use crate::store::stats::{COUNTED, Sums, link_stats_of};
use crate::store::{ClickBreakdown, LinkStats, StoreError};

/// One link's clicks (from the rollup) and counted conversions (by their
/// event's UTC day), total and by day.
pub fn link_stats(conn: &Connection, link_id: i64) -> Result<LinkStats, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut days: BTreeMap<i64, Sums> = BTreeMap::new();
    {
        let mut stmt =
            tx.prepare_cached("SELECT day, clicks, bot_hits FROM click_rollup WHERE link_id = ?1")?;
        let mut rows = stmt.query([link_id])?;
        while let Some(r) = rows.next()? {
            days.entry(r.get(0)?)
                .or_default()
                .add(&Sums::clicks(r.get(1)?, r.get(2)?));
        }
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT c.event_ms / {MS_PER_DAY} AS day, count(*), sum(c.quantity - c.returns), \
                    sum(c.revenue_micros), sum(c.commission_micros) \
             FROM conversions c WHERE c.link_id = ?1 AND {COUNTED} GROUP BY day"
        ))?;
        let mut rows = stmt.query([link_id])?;
        while let Some(r) = rows.next()? {
            days.entry(r.get(0)?).or_default().add(&Sums::conversions(
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
            ));
        }
    }
    drop(tx);
    Ok(link_stats_of(days))
}

/// Human clicks since `since_ms` by country, device class and referrer
/// host, at most `top` groups each. Human clicks are the ones with a click
/// ID, which sort by time: the range from [`ClickId::first_at`] is one
/// seek on the table's key, not a scan of every click ever recorded.
pub fn click_breakdown(
    conn: &Connection,
    link_id: Option<i64>,
    since_ms: i64,
    top: usize,
) -> Result<ClickBreakdown, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let since = ClickId::first_at(since_ms);
    let group = |expr: &str| -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {expr} AS g, count(*) AS n FROM clicks_by_id \
             WHERE click_id >= ?1 AND at_ms >= ?2 AND (?3 IS NULL OR link_id = ?3) \
             GROUP BY g ORDER BY n DESC, g LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            rusqlite::params![since.as_str(), since_ms, link_id, top as i64],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let countries = group("coalesce(country, 'unknown')")?;
    let devices = group(
        "CASE ua WHEN 0 THEN 'bot' WHEN 1 THEN 'mobile' WHEN 2 THEN 'tablet' \
         WHEN 3 THEN 'desktop' ELSE 'other' END",
    )?;
    let referrers = group("coalesce(nullif(referrer_host, ''), 'direct')")?;
    drop(tx);
    Ok(ClickBreakdown {
        countries,
        devices,
        referrers,
    })
}
