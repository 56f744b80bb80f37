//! Storing parsed rows: one write transaction per report, on a connection of
//! its own so that a large import never holds the store's link connection
//! (the API and cache misses of the redirect path keep working; readers are
//! not blocked in WAL mode, and the click writer waits at most for this one
//! transaction, retrying its batch if it has to).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Conversion, Status};

/// How long an import waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The link of a click ID.
pub(super) const CLICK_SQL: &str = "SELECT link_id FROM clicks WHERE click_id = ?1";

/// A stored conversion by its identity.
pub(super) const EXISTING_SQL: &str = "SELECT id, sub_id, click_id, link_id, tracking_id, event_ms, \
     product_id, product_name, quantity, returns, price_micros, revenue_micros, commission_micros, \
     status, currency FROM conversions WHERE provider = ?1 AND kind = ?2 AND row_key = ?3";

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
#[derive(Debug, PartialEq, Eq)]
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

/// Upserts `rows` in one transaction.
pub(super) fn write(
    conn: &mut Connection,
    rows: &[(u64, Conversion)],
    now_ms: i64,
) -> rusqlite::Result<Written> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut written = Written::default();
    {
        let mut click = tx.prepare_cached(CLICK_SQL)?;
        let mut existing = tx.prepare_cached(EXISTING_SQL)?;
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
        // Sub-ID → link, per file: the same click may have several rows.
        let mut links: HashMap<&str, Option<i64>> = HashMap::new();
        for (_, c) in rows {
            let link_id = match c.sub_id.as_deref() {
                None => None,
                Some(sub) => match links.get(sub) {
                    Some(found) => *found,
                    None => {
                        let found: Option<i64> = click.query_row([sub], |r| r.get(0)).optional()?;
                        links.insert(sub, found);
                        found
                    }
                },
            };
            let provider = c.provider.as_str();
            let kind = c.kind.as_str();
            let old: Option<(i64, Stored)> = existing
                .query_row(params![provider, kind, c.row_key], |r| {
                    Ok((
                        r.get(0)?,
                        Stored {
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
                .optional()?;
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
                }
                Some((_, ref o)) if *o == new => written.unchanged += 1,
                Some((id, ref o)) => {
                    written.commission_changed(Some(o), &new);
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
                }
            }
        }
    }
    tx.commit()?;
    Ok(written)
}
