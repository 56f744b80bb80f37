//! Conversions on PostgreSQL. The rows a report touches are read first (two
//! queries: the clicks of its sub-IDs, the stored rows of its identities),
//! [`merge`] decides against them in memory, and the inserts and updates
//! it made are written in the same transaction. The merge rules are the
//! ones every backend runs.

use std::collections::HashMap;

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;

use crate::conversions::{Conversion, ConversionRows, StoredConversion, Written, merge};
use crate::store::StoreError;

/// The columns of a stored row after its identity, in [`stored_from`]'s order.
const STORED: &str = "c.sub_id, c.click_id, c.link_id, c.tracking_id, c.event_ms, c.product_id, \
     c.product_name, c.quantity, c.returns, c.price_micros, c.revenue_micros, c.commission_micros, \
     c.status, c.currency";

fn stored_from(r: &tokio_postgres::Row, first: usize) -> Result<StoredConversion, StoreError> {
    Ok(StoredConversion {
        sub_id: r.try_get(first)?,
        click_id: r.try_get(first + 1)?,
        link_id: r.try_get(first + 2)?,
        tracking_id: r.try_get(first + 3)?,
        event_ms: r.try_get(first + 4)?,
        product_id: r.try_get(first + 5)?,
        product_name: r.try_get(first + 6)?,
        quantity: r.try_get(first + 7)?,
        returns: r.try_get(first + 8)?,
        price_micros: r.try_get(first + 9)?,
        revenue_micros: r.try_get(first + 10)?,
        commission_micros: r.try_get(first + 11)?,
        status: r.try_get(first + 12)?,
        currency: r.try_get(first + 13)?,
    })
}

/// The stored columns of a row, in [`STORED`]'s order, as parameters.
fn stored_params(n: &StoredConversion) -> [&(dyn ToSql + Sync); 14] {
    [
        &n.sub_id,
        &n.click_id,
        &n.link_id,
        &n.tracking_id,
        &n.event_ms,
        &n.product_id,
        &n.product_name,
        &n.quantity,
        &n.returns,
        &n.price_micros,
        &n.revenue_micros,
        &n.commission_micros,
        &n.status,
        &n.currency,
    ]
}

type Identity = (String, String, String);

/// What the report's rows find stored, and what the merge wrote.
#[derive(Default)]
struct Prefetched {
    links: HashMap<String, i64>,
    existing: HashMap<Identity, (i64, StoredConversion)>,
    inserts: Vec<(Identity, StoredConversion)>,
    updates: Vec<(i64, StoredConversion)>,
}

impl ConversionRows for Prefetched {
    fn link_of_click(&mut self, click_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.links.get(click_id).copied())
    }

    fn existing(
        &mut self,
        provider: &str,
        kind: &str,
        row_key: &str,
    ) -> Result<Option<(i64, StoredConversion)>, StoreError> {
        let key = (provider.to_owned(), kind.to_owned(), row_key.to_owned());
        Ok(self.existing.get(&key).cloned())
    }

    fn insert(
        &mut self,
        provider: &str,
        kind: &str,
        row_key: &str,
        row: &StoredConversion,
        _now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = (provider.to_owned(), kind.to_owned(), row_key.to_owned());
        self.inserts.push((key, row.clone()));
        Ok(())
    }

    fn update(&mut self, id: i64, row: &StoredConversion, _now_ms: i64) -> Result<(), StoreError> {
        self.updates.push((id, row.clone()));
        Ok(())
    }
}

pub(super) async fn upsert_conversions(
    pool: &Pool,
    rows: Vec<(u64, Conversion)>,
    now_ms: i64,
) -> Result<Written, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Imports run one at a time (on any instance): each reads the rows it
    // will change before writing them.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('linkwright conversion import'))",
        &[],
    )
    .await?;
    let mut found = Prefetched::default();
    let mut sub_ids: Vec<&str> = rows
        .iter()
        .filter_map(|(_, c)| c.sub_id.as_deref())
        .collect();
    sub_ids.sort_unstable();
    sub_ids.dedup();
    for r in tx
        .query(
            "SELECT click_id, link_id FROM clicks_by_id WHERE click_id = ANY($1)",
            &[&sub_ids],
        )
        .await?
    {
        found.links.insert(r.try_get(0)?, r.try_get(1)?);
    }
    let (mut providers, mut kinds, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for (_, c) in &rows {
        providers.push(c.provider.as_str());
        kinds.push(c.kind.as_str());
        keys.push(c.row_key.as_str());
    }
    for r in tx
        .query(
            &format!(
                "SELECT c.id, c.provider, c.kind, c.row_key, {STORED} FROM conversions c \
                 JOIN unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS k(p, k, r) \
                 ON c.provider = k.p AND c.kind = k.k AND c.row_key = k.r"
            ),
            &[&providers, &kinds, &keys],
        )
        .await?
    {
        let identity = (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        found
            .existing
            .insert(identity, (r.try_get(0)?, stored_from(&r, 4)?));
    }
    let written = merge(&rows, now_ms, &mut found)?;
    let insert = tx
        .prepare(
            "INSERT INTO conversions (provider, kind, row_key, sub_id, click_id, link_id, \
             tracking_id, event_ms, product_id, product_name, quantity, returns, price_micros, \
             revenue_micros, commission_micros, status, currency, imported_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)",
        )
        .await?;
    for ((provider, kind, row_key), n) in &found.inserts {
        tx.execute(
            &insert,
            &[
                &[provider as &(dyn ToSql + Sync), kind, row_key][..],
                &stored_params(n),
                &[&now_ms],
            ]
            .concat(),
        )
        .await?;
    }
    let update = tx
        .prepare(
            "UPDATE conversions SET sub_id = $2, click_id = $3, link_id = $4, tracking_id = $5, \
             event_ms = $6, product_id = $7, product_name = $8, quantity = $9, returns = $10, \
             price_micros = $11, revenue_micros = $12, commission_micros = $13, status = $14, \
             currency = $15, updated_ms = $16 WHERE id = $1",
        )
        .await?;
    for (id, n) in &found.updates {
        tx.execute(
            &update,
            &[
                &[id as &(dyn ToSql + Sync)][..],
                &stored_params(n),
                &[&now_ms],
            ]
            .concat(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(written)
}
