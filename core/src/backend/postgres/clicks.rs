//! Clicks on PostgreSQL: batches into `clicks_by_id` / `clicks_without_id`
//! with the per-link, per-day rollup updated in the same transaction, the
//! clicks read back, and the click ID generator's saved state.
//!
//! The click writer's batches go in by binary `COPY`, one per table (the
//! least work per row PostgreSQL offers: no statement to plan, no text to
//! parse); a replay, which must skip clicks stored already, goes in as one
//! `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`, its columns
//! bound as arrays.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::bigint;
use crate::clock::MS_PER_DAY;
use crate::store::{ClickEvent, StoreError, StoredClick};

/// The click tables' columns after the click ID, as `unnest` yields them.
const UNNEST: &str = "unnest($1::bigint[], $2::bigint[], $3::boolean[], $4::text[], \
     $5::smallint[], $6::text[], $7::smallint[])";
const UNNEST_BY_ID: &str = "unnest($8::text[], $1::bigint[], $2::bigint[], $3::boolean[], \
     $4::text[], $5::smallint[], $6::text[], $7::smallint[])";
const COLUMNS: &str = "link_id, at_ms, bot, referrer_host, ua, country, target";

/// Clicks as columns, in the order of the events.
#[derive(Debug, Default)]
struct Columns {
    link_id: Vec<i64>,
    at_ms: Vec<i64>,
    bot: Vec<bool>,
    referrer_host: Vec<Option<String>>,
    ua: Vec<i16>,
    country: Vec<Option<String>>,
    target: Vec<i16>,
    /// For `clicks_by_id` only.
    click_id: Vec<String>,
}

impl Columns {
    fn push(&mut self, c: &ClickEvent) {
        self.link_id.push(c.link_id);
        self.at_ms.push(c.at_ms);
        self.bot.push(c.bot);
        self.referrer_host
            .push(c.referrer_host.as_deref().map(str::to_owned));
        self.ua.push(c.ua_class.index() as i16);
        self.country.push(
            c.country
                .as_ref()
                .and_then(|cc| std::str::from_utf8(cc).ok())
                .map(str::to_owned),
        );
        self.target.push(i16::from(c.target));
        if let Some(id) = &c.click_id {
            self.click_id.push(id.as_str().to_owned());
        }
    }

    fn is_empty(&self) -> bool {
        self.link_id.is_empty()
    }

    /// `COPY`s them into `clicks_by_id` (with their IDs) or
    /// `clicks_without_id`, in binary.
    async fn copy_in(&self, tx: &Transaction<'_>, by_id: bool) -> Result<(), StoreError> {
        let mut types = vec![
            Type::INT8,
            Type::INT8,
            Type::BOOL,
            Type::TEXT,
            Type::INT2,
            Type::TEXT,
            Type::INT2,
        ];
        let sql = if by_id {
            types.push(Type::TEXT);
            format!("COPY clicks_by_id ({COLUMNS}, click_id) FROM STDIN BINARY")
        } else {
            format!("COPY clicks_without_id ({COLUMNS}) FROM STDIN BINARY")
        };
        let sink = tx.copy_in(&sql).await?;
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for i in 0..self.link_id.len() {
            let mut row: Vec<&(dyn ToSql + Sync)> = vec![
                &self.link_id[i],
                &self.at_ms[i],
                &self.bot[i],
                &self.referrer_host[i],
                &self.ua[i],
                &self.country[i],
                &self.target[i],
            ];
            if by_id {
                row.push(&self.click_id[i]);
            }
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await?;
        Ok(())
    }

    /// `INSERT`s them into `clicks_by_id` (with their IDs) or
    /// `clicks_without_id`; `returning` is appended (a conflict clause,
    /// a `RETURNING`).
    async fn insert(
        &self,
        client: &impl GenericClient,
        by_id: bool,
        returning: &str,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let sql = if by_id {
            format!(
                "INSERT INTO clicks_by_id (click_id, {COLUMNS}) SELECT * FROM {UNNEST_BY_ID} {returning}"
            )
        } else {
            format!("INSERT INTO clicks_without_id ({COLUMNS}) SELECT * FROM {UNNEST} {returning}")
        };
        let stmt = client.prepare_cached(&sql).await?;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &self.link_id,
            &self.at_ms,
            &self.bot,
            &self.referrer_host,
            &self.ua,
            &self.country,
            &self.target,
        ];
        if by_id {
            params.push(&self.click_id);
        }
        Ok(client.query(&stmt, &params).await?)
    }
}

/// A batch of clicks as [`insert_clicks`] writes it, prepared on the
/// caller's thread.
#[derive(Debug)]
pub(super) struct Batch {
    by_id: Columns,
    without_id: Columns,
    rollup: Rollup,
}

impl Batch {
    pub(super) fn new(events: &[ClickEvent]) -> Batch {
        let mut by_id = Columns::default();
        let mut without_id = Columns::default();
        for c in events {
            if c.click_id.is_some() {
                by_id.push(c);
            } else {
                without_id.push(c);
            }
        }
        Batch {
            by_id,
            without_id,
            rollup: Rollup::of(events.iter()),
        }
    }
}

/// Clicks and bot hits summed by (link, UTC day), in key order so that two
/// writers upsert the same rows in the same order (no deadlock).
#[derive(Debug, Default)]
struct Rollup {
    link_id: Vec<i64>,
    day: Vec<i64>,
    clicks: Vec<i64>,
    bot_hits: Vec<i64>,
}

impl Rollup {
    fn of<'a>(clicks: impl Iterator<Item = &'a ClickEvent>) -> Rollup {
        let mut sums: HashMap<(i64, i64), (i64, i64), foldhash::fast::RandomState> =
            HashMap::default();
        for c in clicks {
            let s = sums
                .entry((c.link_id, c.at_ms.div_euclid(MS_PER_DAY)))
                .or_default();
            if c.bot {
                s.1 += 1;
            } else {
                s.0 += 1;
            }
        }
        let mut pairs: Vec<_> = sums.into_iter().collect();
        pairs.sort_unstable_by_key(|(key, _)| *key);
        let mut rollup = Rollup::default();
        for ((link_id, day), (humans, bots)) in pairs {
            rollup.link_id.push(link_id);
            rollup.day.push(day);
            rollup.clicks.push(humans);
            rollup.bot_hits.push(bots);
        }
        rollup
    }

    async fn add(&self, client: &impl GenericClient) -> Result<(), StoreError> {
        if self.link_id.is_empty() {
            return Ok(());
        }
        let stmt = client
            .prepare_cached(
                "INSERT INTO click_rollup (link_id, day, clicks, bot_hits) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) \
                 ON CONFLICT (link_id, day) DO UPDATE SET \
                 clicks = click_rollup.clicks + excluded.clicks, \
                 bot_hits = click_rollup.bot_hits + excluded.bot_hits",
            )
            .await?;
        client
            .execute(
                &stmt,
                &[&self.link_id, &self.day, &self.clicks, &self.bot_hits],
            )
            .await?;
        Ok(())
    }
}

pub(super) async fn insert_clicks(pool: &Pool, batch: Batch) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if !batch.by_id.is_empty() {
        batch.by_id.copy_in(&tx, true).await?;
    }
    if !batch.without_id.is_empty() {
        batch.without_id.copy_in(&tx, false).await?;
    }
    batch.rollup.add(&tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Inserts the clicks not stored yet: those whose click ID is there
/// already (or earlier in the same batch) are skipped and not counted in
/// the rollup. How many were new.
pub(super) async fn insert_new_clicks(
    pool: &Pool,
    events: Vec<ClickEvent>,
) -> Result<usize, StoreError> {
    let mut by_id = Columns::default();
    let mut without_id = Columns::default();
    let mut seen = HashSet::with_capacity(events.len());
    for c in &events {
        match &c.click_id {
            Some(id) => {
                if seen.insert(*id) {
                    by_id.push(c);
                }
            }
            None => without_id.push(c),
        }
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut inserted = HashSet::new();
    if !by_id.is_empty() {
        for row in by_id
            .insert(
                &tx,
                true,
                "ON CONFLICT (click_id) DO NOTHING RETURNING click_id",
            )
            .await?
        {
            inserted.insert(row.try_get::<_, String>(0)?);
        }
    }
    if !without_id.is_empty() {
        without_id.insert(&tx, false, "").await?;
    }
    let new: Vec<&ClickEvent> = events
        .iter()
        .filter(|c| match &c.click_id {
            // `remove`: a second event with the same ID is not new.
            Some(id) => inserted.remove(id.as_str()),
            None => true,
        })
        .collect();
    Rollup::of(new.iter().copied()).add(&tx).await?;
    tx.commit().await?;
    Ok(new.len())
}

pub(super) async fn clicks(pool: &Pool, limit: usize) -> Result<Vec<StoredClick>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT c.click_id, l.code, c.at_ms, c.bot, c.referrer_host, c.ua_class, c.country \
             FROM clicks c JOIN links l ON l.id = c.link_id \
             ORDER BY c.at_ms, c.click_id NULLS FIRST LIMIT $1",
        )
        .await?;
    let rows = client.query(&stmt, &[&bigint(limit)]).await?;
    rows.iter()
        .map(|r| {
            Ok(StoredClick {
                click_id: r.try_get(0)?,
                code: r.try_get(1)?,
                at_ms: r.try_get(2)?,
                bot: r.try_get(3)?,
                referrer_host: r.try_get(4)?,
                ua_class: r.try_get(5)?,
                country: r.try_get(6)?,
            })
        })
        .collect()
}

pub(super) async fn load_click_state(pool: &Pool) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT value FROM meta WHERE key = 'click_id_state'")
        .await?;
    let value: Option<i64> = match client.query_opt(&stmt, &[]).await? {
        Some(row) => row.try_get(0)?,
        None => None,
    };
    Ok(value.unwrap_or(0) as u64)
}

/// Saves the state unless a larger one is saved (as SQLite does, comparing
/// the state as a signed 64-bit number).
pub(super) async fn save_click_state(pool: &Pool, state: u64) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('click_id_state', $1) \
             ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value, excluded.value)",
        )
        .await?;
    client.execute(&stmt, &[&(state as i64)]).await?;
    Ok(())
}
