//! [`ReportStore`](crate::reports::ReportStore) on PostgreSQL: the same
//! queries as SQLite's, in PostgreSQL's dialect, read in one REPEATABLE
//! READ read-only transaction (one snapshot for clicks and conversions).
//! Which group a row falls in is [`Assembler`]'s to say.
//!
//! The dialect: `sum` of BIGINT is NUMERIC (cast back to BIGINT), `bot` is
//! a BOOLEAN (counted with `FILTER`), `target` a SMALLINT and `targeting`
//! JSONB (read as text, as SQLite stores it).

use deadpool_postgres::Pool;
use tokio_postgres::IsolationLevel;

use crate::reports::assemble::{Assembler, LinkGroups, ServedLink, Shape};
use crate::reports::{MS_PER_DAY, Report, ReportQuery};
use crate::store::StoreError;
use crate::store::stats::{COUNTED, Sums};

/// The report `query` asks for.
pub(super) async fn report(pool: &Pool, query: ReportQuery) -> Result<Report, StoreError> {
    let mut client = pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let (from, to) = (query.from_day, query.to_day);
    let (from_ms, end_ms) = (from * MS_PER_DAY, (to + 1) * MS_PER_DAY);
    let mut report = Assembler::new(&query);
    match report.shape() {
        Shape::Day => {
            let clicks = tx
                .query(
                    "SELECT r.day, sum(r.clicks)::bigint, sum(r.bot_hits)::bigint \
                     FROM links l JOIN click_rollup r ON r.link_id = l.id AND r.day BETWEEN $1 AND $2 \
                     GROUP BY r.day",
                    &[&from, &to],
                )
                .await?;
            for r in clicks {
                report.day_clicks(r.try_get(0)?, Sums::clicks(r.try_get(1)?, r.try_get(2)?));
            }
            let conversions = tx
                .query(
                    &format!(
                        "SELECT c.event_ms / {MS_PER_DAY}, c.currency, count(*), \
                                sum(c.quantity - c.returns)::bigint, sum(c.revenue_micros)::bigint, \
                                sum(c.commission_micros)::bigint \
                         FROM conversions c WHERE c.event_ms >= $1 AND c.event_ms < $2 AND {COUNTED} \
                         GROUP BY 1, 2"
                    ),
                    &[&from_ms, &end_ms],
                )
                .await?;
            for r in conversions {
                report.day_conversions(
                    r.try_get(0)?,
                    r.try_get(1)?,
                    Sums::conversions(r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?),
                );
            }
        }
        Shape::Served => {
            // Per click: which country it came from and which target served
            // it. Conversions meet their click by its ID.
            let clicks = tx
                .query(
                    "SELECT l.id, l.code, l.marketplace, l.targeting::text, l.destination, \
                            c.country, c.target::bigint, \
                            count(*) FILTER (WHERE NOT c.bot), count(*) FILTER (WHERE c.bot) \
                     FROM clicks c JOIN links l ON l.id = c.link_id \
                     WHERE c.at_ms >= $1 AND c.at_ms < $2 \
                     GROUP BY l.id, c.country, c.target",
                    &[&from_ms, &end_ms],
                )
                .await?;
            for r in clicks {
                let link = ServedLink {
                    id: r.try_get(0)?,
                    code: r.try_get(1)?,
                    marketplace: r.try_get(2)?,
                    targeting: r.try_get(3)?,
                    destination: r.try_get(4)?,
                };
                report.served_clicks(
                    link,
                    r.try_get(5)?,
                    r.try_get(6)?,
                    Sums::clicks(r.try_get(7)?, r.try_get(8)?),
                );
            }
            let conversions = tx
                .query(
                    &format!(
                        "SELECT l.id, l.code, l.marketplace, l.targeting::text, l.destination, \
                                k.country, k.target::bigint, c.currency, count(*), \
                                sum(c.quantity - c.returns)::bigint, sum(c.revenue_micros)::bigint, \
                                sum(c.commission_micros)::bigint \
                         FROM conversions c LEFT JOIN links l ON l.id = c.link_id \
                         LEFT JOIN clicks_by_id k ON k.click_id = c.click_id \
                         WHERE c.event_ms >= $1 AND c.event_ms < $2 AND {COUNTED} \
                         GROUP BY l.id, k.country, k.target, c.currency"
                    ),
                    &[&from_ms, &end_ms],
                )
                .await?;
            for r in conversions {
                let link = match r.try_get::<_, Option<i64>>(0)? {
                    Some(id) => Some(ServedLink {
                        id,
                        code: r.try_get(1)?,
                        marketplace: r.try_get(2)?,
                        targeting: r.try_get(3)?,
                        destination: r.try_get(4)?,
                    }),
                    None => None,
                };
                report.served_conversions(
                    link,
                    r.try_get(5)?,
                    r.try_get(6)?,
                    r.try_get(7)?,
                    Sums::conversions(r.try_get(8)?, r.try_get(9)?, r.try_get(10)?, r.try_get(11)?),
                );
            }
        }
        Shape::Link => {
            let clicks = tx
                .query(
                    "SELECT l.code, l.name, l.campaign, l.provider, l.marketplace, \
                            sum(r.clicks)::bigint, sum(r.bot_hits)::bigint \
                     FROM links l JOIN click_rollup r ON r.link_id = l.id AND r.day BETWEEN $1 AND $2 \
                     GROUP BY l.id",
                    &[&from, &to],
                )
                .await?;
            for r in clicks {
                let link = LinkGroups {
                    code: r.try_get(0)?,
                    name: r.try_get(1)?,
                    campaign: r.try_get(2)?,
                    provider: r.try_get(3)?,
                    marketplace: r.try_get(4)?,
                };
                report.link_clicks(link, Sums::clicks(r.try_get(5)?, r.try_get(6)?));
            }
            let conversions = tx
                .query(
                    &format!(
                        "SELECT l.code, l.name, l.campaign, l.provider, l.marketplace, c.provider, \
                                c.currency, count(*), sum(c.quantity - c.returns)::bigint, \
                                sum(c.revenue_micros)::bigint, sum(c.commission_micros)::bigint \
                         FROM conversions c LEFT JOIN links l ON l.id = c.link_id \
                         WHERE c.event_ms >= $1 AND c.event_ms < $2 AND {COUNTED} \
                         GROUP BY l.id, c.provider, c.currency"
                    ),
                    &[&from_ms, &end_ms],
                )
                .await?;
            for r in conversions {
                // No link: `link_id` NULL (or naming a link that is not there).
                let link = match r.try_get::<_, Option<String>>(0)? {
                    Some(code) => Some(LinkGroups {
                        code,
                        name: r.try_get(1)?,
                        campaign: r.try_get(2)?,
                        provider: r.try_get(3)?,
                        marketplace: r.try_get(4)?,
                    }),
                    None => None,
                };
                report.link_conversions(
                    link,
                    r.try_get(5)?,
                    r.try_get(6)?,
                    Sums::conversions(r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?),
                );
            }
        }
    }
    tx.commit().await?;
    Ok(report.finish())
}
