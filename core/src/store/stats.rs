//! Sums of clicks and conversions as every backend computes them: the rule
//! for which conversions count and running sums per group. Reports and a
//! link's totals build on these.

use std::collections::BTreeMap;

use super::{DayStats, LinkStats, Totals};
use crate::clock::Day;
use crate::money::Micros;

/// The SQL condition on a `conversions` row (aliased `c`) that counts it:
/// not declined or deleted, and not an Amazon Orders row. Amazon reports each
/// sale twice, in the Orders report (at purchase, preliminary) and again in
/// the Earnings report (at shipment, with the final amounts and returns), so
/// counting both would count the sale twice; Orders rows stay stored.
pub(crate) const COUNTED: &str = "lower(c.status) NOT IN ('declined', 'deleted') AND NOT (c.provider = 'amazon' AND c.kind = 'orders')";

/// Running sums of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    pub(crate) clicks: u64,
    pub(crate) bot_hits: u64,
    pub(crate) conversions: u64,
    pub(crate) items: i64,
    pub(crate) revenue: i64,
    pub(crate) commission: i64,
}

impl Sums {
    pub(crate) fn add(&mut self, o: &Sums) {
        self.clicks = self.clicks.saturating_add(o.clicks);
        self.bot_hits = self.bot_hits.saturating_add(o.bot_hits);
        self.conversions = self.conversions.saturating_add(o.conversions);
        self.items = self.items.saturating_add(o.items);
        self.revenue = self.revenue.saturating_add(o.revenue);
        self.commission = self.commission.saturating_add(o.commission);
    }

    pub(crate) fn clicks(clicks: i64, bot_hits: i64) -> Sums {
        Sums {
            clicks: clicks.max(0) as u64,
            bot_hits: bot_hits.max(0) as u64,
            ..Sums::default()
        }
    }

    pub(crate) fn conversions(conversions: i64, items: i64, revenue: i64, commission: i64) -> Sums {
        Sums {
            conversions: conversions.max(0) as u64,
            items,
            revenue,
            commission,
            ..Sums::default()
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            clicks: self.clicks,
            bot_hits: self.bot_hits,
            conversions: self.conversions,
            items: self.items,
            revenue: Micros(self.revenue),
            commission: Micros(self.commission),
            earnings_per_click: Micros(self.commission).per(self.clicks),
        }
    }
}

/// A link's totals from its sums by UTC day (days since the epoch).
pub(crate) fn link_stats_of(days: BTreeMap<i64, Sums>) -> LinkStats {
    let mut total = Sums::default();
    let by_day = days
        .into_iter()
        .map(|(day, sums)| {
            total.add(&sums);
            DayStats {
                day: Day::from_days(day).to_string(),
                total: sums.totals(),
            }
        })
        .collect();
    LinkStats {
        total: total.totals(),
        by_day,
    }
}
