//! Sums of clicks and conversions on PostgreSQL: one link's totals and the
//! breakdown of human clicks. The rules (which conversions count, how sums
//! add up) are the store's, in [`crate::store::stats`]; each answer is one
//! statement, so it reads one snapshot.

use std::collections::BTreeMap;

use deadpool_postgres::Pool;

use super::bigint;
use crate::click::ClickId;
use crate::clock::MS_PER_DAY;
use crate::store::stats::{COUNTED, Sums, link_stats_of};
use crate::store::{ClickBreakdown, LinkStats, StoreError};

/// One link's clicks (from the rollup) and counted conversions (by their
/// event's UTC day), total and by day.
pub(super) async fn link_stats(pool: &Pool, link_id: i64) -> Result<LinkStats, StoreError> {
    let client = pool.get().await?;
    // `sum` of BIGINT is NUMERIC in PostgreSQL: back to BIGINT.
    let stmt = client
        .prepare_cached(&format!(
            "SELECT false, day, clicks, bot_hits, 0::bigint, 0::bigint, 0::bigint \
             FROM click_rollup WHERE link_id = $1 \
             UNION ALL \
             SELECT true, c.event_ms / {MS_PER_DAY} AS day, count(*), \
                    sum(c.quantity - c.returns)::bigint, sum(c.revenue_micros)::bigint, \
                    sum(c.commission_micros)::bigint, 0::bigint \
             FROM conversions c WHERE c.link_id = $1 AND {COUNTED} GROUP BY day"
        ))
        .await?;
    let mut days: BTreeMap<i64, Sums> = BTreeMap::new();
    for r in client.query(&stmt, &[&link_id]).await? {
        let conversions: bool = r.try_get(0)?;
        let sums = if conversions {
            Sums::conversions(r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?)
        } else {
            Sums::clicks(r.try_get(2)?, r.try_get(3)?)
        };
        days.entry(r.try_get(1)?).or_default().add(&sums);
    }
    Ok(link_stats_of(days))
}

/// Human clicks since `since_ms` by country, device class and referrer
/// host, at most `top` groups each, the largest first (ties by name, in
/// byte order). Human clicks are the ones with a click ID, which sort by
/// time: the range from [`ClickId::first_at`] is a range of the key.
pub(super) async fn click_breakdown(
    pool: &Pool,
    link_id: Option<i64>,
    since_ms: i64,
    top: usize,
) -> Result<ClickBreakdown, StoreError> {
    let client = pool.get().await?;
    let group = |kind: u8, expr: &str| {
        format!(
            "(SELECT {kind} AS kind, {expr} COLLATE \"C\" AS g, count(*) AS n FROM clicks_by_id \
             WHERE click_id >= $1 AND at_ms >= $2 AND ($3::bigint IS NULL OR link_id = $3) \
             GROUP BY g ORDER BY n DESC, g LIMIT $4)"
        )
    };
    let sql = format!(
        "{} UNION ALL {} UNION ALL {} ORDER BY kind, n DESC, g",
        group(0, "coalesce(country, 'unknown')"),
        group(
            1,
            "CASE ua WHEN 0 THEN 'bot' WHEN 1 THEN 'mobile' WHEN 2 THEN 'tablet' \
             WHEN 3 THEN 'desktop' ELSE 'other' END"
        ),
        group(2, "coalesce(nullif(referrer_host, ''), 'direct')"),
    );
    let stmt = client.prepare_cached(&sql).await?;
    let since = ClickId::first_at(since_ms);
    let rows = client
        .query(&stmt, &[&since.as_str(), &since_ms, &link_id, &bigint(top)])
        .await?;
    let mut breakdown = ClickBreakdown::default();
    for r in rows {
        let kind: i32 = r.try_get(0)?;
        let group = (r.try_get(1)?, r.try_get::<_, i64>(2)?.max(0) as u64);
        match kind {
            0 => breakdown.countries.push(group),
            1 => breakdown.devices.push(group),
            _ => breakdown.referrers.push(group),
        }
    }
    Ok(breakdown)
}
