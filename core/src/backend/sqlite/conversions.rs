//! [`ConversionStore`] on SQLite: one write transaction per report, on a
//! connection of its own so that a large import never holds the store's
//! link connection (the API and cache misses of the redirect path keep
//! working; readers are not blocked in WAL mode, and the click writer waits
//! at most for this one transaction, retrying its batch if it has to).

use std::path::Path;
use std::time::Duration;

use rusqlite::{
    Connection, OptionalExtension, ToSql, Transaction, TransactionBehavior, params,
    params_from_iter,
};

use super::SqliteStore;
use crate::conversions::{Conversion, StoredConversion, Written, merge};
use crate::conversions::{ConversionRows, ConversionStore};
use crate::store::StoreError;

/// How long an import waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The link of a click ID.
pub(crate) const CLICK_SQL: &str = "SELECT link_id FROM clicks WHERE click_id = ?1";

/// A stored conversion by its identity.
pub(crate) const EXISTING_SQL: &str = "SELECT id, sub_id, click_id, link_id, tracking_id, event_ms, \
     product_id, product_name, quantity, returns, price_micros, revenue_micros, commission_micros, \
     status, currency FROM conversions WHERE provider = ?1 AND kind = ?2 AND row_key = ?3";

impl ConversionStore for SqliteStore {
    fn upsert_conversions(
        &self,
        rows: &[(u64, Conversion)],
        now_ms: i64,
    ) -> Result<Written, StoreError> {
        let mut conn = open(self.path())?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let written = merge(rows, now_ms, &mut Rows(&tx))?;
        tx.commit()?;
        Ok(written)
    }
}

/// Opens a write connection to the store's database file.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// The stored columns of a row, in [`EXISTING_SQL`]'s order after the id,
/// as parameters.
fn stored_params(n: &StoredConversion) -> [&dyn ToSql; 14] {
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

/// The rows of one import transaction.
struct Rows<'t>(&'t Transaction<'t>);

impl ConversionRows for Rows<'_> {
    fn link_of_click(&mut self, click_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .prepare_cached(CLICK_SQL)?
            .query_row([click_id], |r| r.get(0))
            .optional()?)
    }

    fn existing(
        &mut self,
        provider: &str,
        kind: &str,
        row_key: &str,
    ) -> Result<Option<(i64, StoredConversion)>, StoreError> {
        Ok(self
            .0
            .prepare_cached(EXISTING_SQL)?
            .query_row(params![provider, kind, row_key], |r| {
                Ok((
                    r.get(0)?,
                    StoredConversion {
                        sub_id: r.get(1)?,
                        click_id: r.get(2)?,
                        link_id: r.get(3)?,
                        tracking_id: r.get(4)?,
                        event_ms: r.get(5)?,
                        product_id: r.get(6)?,
                        product_name: r.get(7)?,
                        quantity: r.get(8)?,
                        returns: r.get(9)?,
                        price_micros: r.get(10)?,
                        revenue_micros: r.get(11)?,
                        commission_micros: r.get(12)?,
                        status: r.get(13)?,
                        currency: r.get(14)?,
                    },
                ))
            })
            .optional()?)
    }

    fn insert(
        &mut self,
        provider: &str,
        kind: &str,
        row_key: &str,
        new: &StoredConversion,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO conversions (provider, kind, row_key, sub_id, click_id, link_id, \
                 tracking_id, event_ms, product_id, product_name, quantity, returns, price_micros, \
                 revenue_micros, commission_micros, status, currency, imported_ms, updated_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18)",
            )?
            .execute(params_from_iter(
                [&provider as &dyn ToSql, &kind, &row_key]
                    .into_iter()
                    .chain(stored_params(new))
                    .chain([&now_ms as &dyn ToSql]),
            ))?;
        Ok(())
    }

    fn update(&mut self, id: i64, new: &StoredConversion, now_ms: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE conversions SET sub_id = ?2, click_id = ?3, link_id = ?4, tracking_id = ?5, \
                 event_ms = ?6, product_id = ?7, product_name = ?8, quantity = ?9, returns = ?10, \
                 price_micros = ?11, revenue_micros = ?12, commission_micros = ?13, status = ?14, \
                 currency = ?15, updated_ms = ?16 WHERE id = ?1",
            )?
            .execute(params_from_iter(
                [&id as &dyn ToSql]
                    .into_iter()
                    .chain(stored_params(new))
                    .chain([&now_ms as &dyn ToSql]),
            ))?;
        Ok(())
    }
}
