//! Storing parsed rows: one write transaction per report, on a connection of
//! its own so that a large import never holds the store's link connection
//! (the API and cache misses of the redirect path keep working; readers are
//! not blocked in WAL mode, and the click writer waits at most for this one
//! transaction, retrying its batch if it has to).
//!
//! Set-wise: a file's sub-IDs are resolved to their clicks' links in one
//! statement, and the stored rows it names are read in one statement per
//! (provider, kind); only the rows that are new or changed are written.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};

use super::{Conversion, Status};

/// How long an import waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The link of each click ID of a JSON array (those with a click), in one
/// statement: a primary-key search of `clicks_by_id` per ID. (Only clicks
/// with an ID live there; the `clicks` view's other half has none.)
pub(super) const CLICK_SQL: &str = "SELECT s.value, c.link_id FROM json_each(?1) s \
     CROSS JOIN clicks_by_id c ON c.click_id = s.value";

/// The stored conversions of one provider and kind whose row keys are in a
/// JSON array, in one statement: a search of the (provider, kind, row_key)
/// index per key.
pub(super) const EXISTING_SQL: &str = "SELECT o.row_key, o.id, o.sub_id, o.click_id, o.link_id, \
     o.tracking_id, o.event_ms, o.product_id, o.product_name, o.quantity, o.returns, \
     o.price_micros, o.revenue_micros, o.commission_micros, o.status, o.currency \
     FROM json_each(?3) k CROSS JOIN conversions o \
     ON o.provider = ?1 AND o.kind = ?2 AND o.row_key = k.value";

/// What a write did.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub unattributed: u64,
    /// Inserted + updated rows, per [`Status::ALL`] entry.
    pub stored_by_status: [u64; 5],
    /// Net change of counted commission (rows not declined), in
    /// micro-units, per currency: for the commission metrics.
    pub commission: Vec<(Option<String>, i64)>,
}

impl Written {
    fn commission_changed(&mut self, old: Option<&Stored>, new: &Stored) {
        let counted = |s: &Stored| {
            if s.status == "declined" {
                0
            } else {
                s.commission_micros
            }
        };
        let mut add = |currency: &Option<String>, micros: i64| {
            if micros == 0 {
                return;
            }
            match self.commission.iter_mut().find(|(c, _)| c == currency) {
                Some((_, v)) => *v = v.saturating_add(micros),
                None => self.commission.push((currency.clone(), micros)),
            }
        };
        if let Some(old) = old {
            add(&old.currency, -counted(old));
        }
        add(&new.currency, counted(new));
    }
}

/// Opens a write connection to the store's database file.
pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// The stored columns of a conversion that an import may change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    sub_id: Option<String>,
    click_id: Option<String>,
    link_id: Option<i64>,
    tracking_id: Option<String>,
    event_ms: i64,
    product_id: Option<String>,
    product_name: Option<String>,
    quantity: i64,
    returns: i64,
    price_micros: i64,
    revenue_micros: i64,
    commission_micros: i64,
    status: String,
    currency: Option<String>,
}

/// A JSON array of strings, bound as one parameter.
fn json_array<'a>(items: impl Iterator<Item = &'a str>) -> rusqlite::Result<String> {
    serde_json::to_string(&items.collect::<BTreeSet<_>>())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Upserts `rows` in one transaction.
pub(super) fn write(
    conn: &mut Connection,
    rows: &[(u64, Conversion)],
    now_ms: i64,
) -> rusqlite::Result<Written> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut written = Written::default();
    {
        // Sub-ID → link, for every sub-ID of the file at once.
        let subs = json_array(rows.iter().filter_map(|(_, c)| c.sub_id.as_deref()))?;
        let links: HashMap<String, i64> = tx
            .prepare_cached(CLICK_SQL)?
            .query_map([subs], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        // The stored rows this file names, by (provider, kind, row key);
        // rows written below replace their entry, so a key seen twice in
        // one file meets what its first row stored, as one by one.
        let mut known: HashMap<(&str, &str, String), (i64, Stored)> = HashMap::new();
        let groups: BTreeSet<(&str, &str)> = rows
            .iter()
            .map(|(_, c)| (c.provider.as_str(), c.kind.as_str()))
            .collect();
        for (provider, kind) in groups {
            let keys = json_array(
                rows.iter()
                    .filter(|(_, c)| c.provider.as_str() == provider && c.kind.as_str() == kind)
                    .map(|(_, c)| c.row_key.as_str()),
            )?;
            let mut existing = tx.prepare_cached(EXISTING_SQL)?;
            let found = existing.query_map(params![provider, kind, keys], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    Stored {
                        sub_id: r.get(2)?,
                        click_id: r.get(3)?,
                        link_id: r.get(4)?,
                        tracking_id: r.get(5)?,
                        event_ms: r.get(6)?,
                        product_id: r.get(7)?,
                        product_name: r.get(8)?,
                        quantity: r.get(9)?,
                        returns: r.get(10)?,
                        price_micros: r.get(11)?,
                        revenue_micros: r.get(12)?,
                        commission_micros: r.get(13)?,
                        status: r.get(14)?,
                        currency: r.get(15)?,
                    },
                ))
            })?;
            for row in found {
                let (row_key, id, stored) = row?;
                known.insert((provider, kind, row_key), (id, stored));
            }
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO conversions (provider, kind, row_key, sub_id, click_id, link_id, \
             tracking_id, event_ms, product_id, product_name, quantity, returns, price_micros, \
             revenue_micros, commission_micros, status, currency, imported_ms, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18)",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE conversions SET sub_id = ?2, click_id = ?3, link_id = ?4, tracking_id = ?5, \
             event_ms = ?6, product_id = ?7, product_name = ?8, quantity = ?9, returns = ?10, \
             price_micros = ?11, revenue_micros = ?12, commission_micros = ?13, status = ?14, \
             currency = ?15, updated_ms = ?16 WHERE id = ?1",
        )?;
        for (_, c) in rows {
            let link_id = c.sub_id.as_deref().and_then(|sub| links.get(sub).copied());
            let provider = c.provider.as_str();
            let kind = c.kind.as_str();
            let key = (provider, kind, c.row_key.clone());
            let old = known.remove(&key);
            // An attribution once made is kept for the same sub-ID, even if
            // the click has gone since.
            let (click_id, link_id) = match (link_id, &old) {
                (Some(l), _) => (c.sub_id.clone(), Some(l)),
                (None, Some((_, o))) if o.link_id.is_some() && o.sub_id == c.sub_id => {
                    (o.click_id.clone(), o.link_id)
                }
                _ => (None, None),
            };
            let new = Stored {
                sub_id: c.sub_id.clone(),
                click_id,
                link_id,
                tracking_id: c.tracking_id.clone(),
                event_ms: c.event_ms,
                product_id: c.product_id.clone(),
                product_name: c.product_name.clone(),
                quantity: c.quantity,
                returns: c.returns,
                price_micros: c.price_micros,
                revenue_micros: c.revenue_micros,
                commission_micros: c.commission_micros,
                status: c.status.as_str().to_owned(),
                currency: c.currency.clone(),
            };
            if new.link_id.is_none() {
                written.unattributed += 1;
            }
            let status_index = Status::ALL.iter().position(|s| *s == c.status).unwrap_or(0);
            match old {
                None => {
                    insert.execute(params![
                        provider,
                        kind,
                        c.row_key,
                        new.sub_id,
                        new.click_id,
                        new.link_id,
                        new.tracking_id,
                        new.event_ms,
                        new.product_id,
                        new.product_name,
                        new.quantity,
                        new.returns,
                        new.price_micros,
                        new.revenue_micros,
                        new.commission_micros,
                        new.status,
                        new.currency,
                        now_ms,
                    ])?;
                    written.inserted += 1;
                    written.stored_by_status[status_index] += 1;
                    written.commission_changed(None, &new);
                    known.insert(key, (tx.last_insert_rowid(), new));
                }
                Some((id, o)) if o == new => {
                    written.unchanged += 1;
                    known.insert(key, (id, o));
                }
                Some((id, o)) => {
                    written.commission_changed(Some(&o), &new);
                    update.execute(params![
                        id,
                        new.sub_id,
                        new.click_id,
                        new.link_id,
                        new.tracking_id,
                        new.event_ms,
                        new.product_id,
                        new.product_name,
                        new.quantity,
                        new.returns,
                        new.price_micros,
                        new.revenue_micros,
                        new.commission_micros,
                        new.status,
                        new.currency,
                        now_ms,
                    ])?;
                    written.updated += 1;
                    written.stored_by_status[status_index] += 1;
                    known.insert(key, (id, new));
                }
            }
        }
    }
    tx.commit()?;
    Ok(written)
}
