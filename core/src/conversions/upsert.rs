//! Merging parsed rows into the stored ones: which rows are new, changed or
//! unchanged, which keep an attribution made earlier, and what changed in
//! the counted commission. Backend-neutral: a store runs [`merge`] inside
//! one transaction through [`ConversionRows`].

use std::collections::HashMap;

use super::ConversionRows;
use super::{Conversion, Status};
use crate::store::StoreError;

/// What a write did.
#[derive(Debug, Default)]
pub struct Written {
    /// New rows.
    pub inserted: u64,
    /// Changed rows.
    pub updated: u64,
    /// Rows as stored already.
    pub unchanged: u64,
    /// Rows whose sub-ID matched no click.
    pub unattributed: u64,
    /// Inserted + updated rows, per [`Status::ALL`] entry.
    pub stored_by_status: [u64; 5],
    /// Net change of counted commission (rows not declined), in
    /// micro-units, per currency: for the commission metrics.
    pub commission: Vec<(Option<String>, i64)>,
}

impl Written {
    fn commission_changed(&mut self, old: Option<&StoredConversion>, new: &StoredConversion) {
        let counted = |s: &StoredConversion| {
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

/// The stored columns of a conversion that an import may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConversion {
    /// The sub-ID as the network reported it.
    pub sub_id: Option<String>,
    /// The click it was attributed to.
    pub click_id: Option<String>,
    /// The link of that click.
    pub link_id: Option<i64>,
    /// The network's tracking ID (Amazon's tag).
    pub tracking_id: Option<String>,
    /// When the sale happened (Unix ms).
    pub event_ms: i64,
    /// Product ID.
    pub product_id: Option<String>,
    /// Product name.
    pub product_name: Option<String>,
    /// Items.
    pub quantity: i64,
    /// Items returned.
    pub returns: i64,
    /// Unit price, micro-units.
    pub price_micros: i64,
    /// Sales amount, micro-units.
    pub revenue_micros: i64,
    /// Commission, micro-units.
    pub commission_micros: i64,
    /// `Status::as_str`.
    pub status: String,
    /// ISO currency code.
    pub currency: Option<String>,
}

/// Merges `rows` into the stored conversions through `db` (one open
/// transaction): new identities are inserted, changed ones updated,
/// identical ones left alone. A sub-ID is attributed to its click's link;
/// an attribution once made is kept for the same sub-ID even if the click
/// has gone since.
pub fn merge(
    rows: &[(u64, Conversion)],
    now_ms: i64,
    db: &mut dyn ConversionRows,
) -> Result<Written, StoreError> {
    let mut written = Written::default();
    // Sub-ID → link, per file: the same click may have several rows.
    let mut links: HashMap<&str, Option<i64>> = HashMap::new();
    for (_, c) in rows {
        let link_id = match c.sub_id.as_deref() {
            None => None,
            Some(sub) => match links.get(sub) {
                Some(found) => *found,
                None => {
                    let found = db.link_of_click(sub)?;
                    links.insert(sub, found);
                    found
                }
            },
        };
        let (provider, kind) = (c.provider.as_str(), c.kind.as_str());
        let old = db.existing(provider, kind, &c.row_key)?;
        let (click_id, link_id) = match (link_id, &old) {
            (Some(l), _) => (c.sub_id.clone(), Some(l)),
            (None, Some((_, o))) if o.link_id.is_some() && o.sub_id == c.sub_id => {
                (o.click_id.clone(), o.link_id)
            }
            _ => (None, None),
        };
        let new = StoredConversion {
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
                db.insert(provider, kind, &c.row_key, &new, now_ms)?;
                written.inserted += 1;
                written.stored_by_status[status_index] += 1;
                written.commission_changed(None, &new);
            }
            Some((_, ref o)) if *o == new => written.unchanged += 1,
            Some((id, ref o)) => {
                written.commission_changed(Some(o), &new);
                db.update(id, &new, now_ms)?;
                written.updated += 1;
                written.stored_by_status[status_index] += 1;
            }
        }
    }
    Ok(written)
}
