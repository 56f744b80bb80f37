//! Turning a backend's grouped rows into a [`Report`]: which group each row
//! falls in, summing the groups, the currencies and the totals. Every
//! backend runs the queries [`Shape`] asks for, over one snapshot, and
//! feeds each row to the matching [`Assembler`] method; what the rows mean
//! is decided here, once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{GroupBy, NONE, Report, ReportQuery, ReportRow, TOTAL, UNATTRIBUTED, day_string};
use crate::store::Targeting;
use crate::store::stats::Sums;

/// The queries a grouping needs, and the [`Assembler`] methods their rows
/// go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Clicks from the rollup by UTC day ([`Assembler::day_clicks`]);
    /// counted conversions by their event's UTC day and currency
    /// ([`Assembler::day_conversions`]).
    Day,
    /// Clicks from the raw clicks by link, country and target
    /// ([`Assembler::served_clicks`]); counted conversions by link, the
    /// country and target of their click (by click ID), and currency
    /// ([`Assembler::served_conversions`]).
    Served,
    /// Clicks from the rollup by link ([`Assembler::link_clicks`]); counted
    /// conversions by link, reporting network and currency
    /// ([`Assembler::link_conversions`]).
    Link,
}

impl Shape {
    /// The queries `group_by` is answered from.
    pub(crate) fn of(group_by: GroupBy) -> Shape {
        match group_by {
            GroupBy::Day => Shape::Day,
            GroupBy::Country | GroupBy::Target | GroupBy::Marketplace => Shape::Served,
            GroupBy::Link | GroupBy::Campaign | GroupBy::Provider => Shape::Link,
        }
    }
}

/// A link as the [`Shape::Served`] queries read it: what its targets serve.
#[derive(Debug, Clone)]
pub(crate) struct ServedLink {
    pub(crate) id: i64,
    pub(crate) code: String,
    /// The link's own marketplace.
    pub(crate) marketplace: Option<String>,
    /// The stored targeting, as JSON.
    pub(crate) targeting: Option<String>,
    /// The link's own destination.
    pub(crate) destination: String,
}

/// A link as the [`Shape::Link`] queries read it.
#[derive(Debug, Clone)]
pub(crate) struct LinkGroups {
    pub(crate) code: String,
    pub(crate) name: Option<String>,
    pub(crate) campaign: Option<String>,
    /// The link's provider (its configured name).
    pub(crate) provider: String,
    pub(crate) marketplace: Option<String>,
}

/// A report being put together from a backend's rows.
pub(crate) struct Assembler {
    query: ReportQuery,
    /// Group key → (link name, sums); a BTreeMap keeps rows sorted by key.
    groups: BTreeMap<String, (Option<String>, Sums)>,
    currencies: BTreeSet<String>,
    served: Served,
}

impl Assembler {
    /// An empty report for `query`; by day, every day of the range is
    /// there already.
    pub(crate) fn new(query: &ReportQuery) -> Assembler {
        let mut assembler = Assembler {
            query: *query,
            groups: BTreeMap::new(),
            currencies: BTreeSet::new(),
            served: Served::default(),
        };
        if query.group_by == GroupBy::Day {
            for day in query.from_day..=query.to_day {
                assembler.add(day_string(day), None, Sums::default());
            }
        }
        assembler
    }

    /// The queries to run.
    pub(crate) fn shape(&self) -> Shape {
        Shape::of(self.query.group_by)
    }

    fn add(&mut self, key: String, name: Option<String>, sums: Sums) {
        let entry = self.groups.entry(key).or_insert((None, Sums::default()));
        if entry.0.is_none() {
            entry.0 = name;
        }
        entry.1.add(&sums);
    }

    fn currency(&mut self, currency: Option<String>) {
        if let Some(c) = currency.filter(|c| !c.is_empty()) {
            self.currencies.insert(c);
        }
    }

    /// [`Shape::Day`]: the clicks of UTC day `day` (days since the epoch).
    pub(crate) fn day_clicks(&mut self, day: i64, sums: Sums) {
        self.add(day_string(day), None, sums);
    }

    /// [`Shape::Day`]: counted conversions of UTC day `day` in `currency`.
    pub(crate) fn day_conversions(&mut self, day: i64, currency: Option<String>, sums: Sums) {
        self.currency(currency);
        self.add(day_string(day), None, sums);
    }

    /// [`Shape::Served`]: clicks on `link` from `country`, served by
    /// target `target` (0: the link's own destination).
    pub(crate) fn served_clicks(
        &mut self,
        link: ServedLink,
        country: Option<String>,
        target: Option<i64>,
        sums: Sums,
    ) {
        let (key, name) = self.served_key(Some(link), country, target);
        self.add(key, name, sums);
    }

    /// [`Shape::Served`]: counted conversions in `currency` on `link`
    /// (`None`: no link), whose click came from `country` and was served by
    /// `target` (both `None` without a click found).
    pub(crate) fn served_conversions(
        &mut self,
        link: Option<ServedLink>,
        country: Option<String>,
        target: Option<i64>,
        currency: Option<String>,
        sums: Sums,
    ) {
        let (key, name) = self.served_key(link, country, target);
        self.currency(currency);
        self.add(key, name, sums);
    }

    fn served_key(
        &mut self,
        link: Option<ServedLink>,
        country: Option<String>,
        target: Option<i64>,
    ) -> (String, Option<String>) {
        let g = self.query.group_by;
        if g == GroupBy::Country {
            return (or_none(country), None);
        }
        let Some(link) = link else {
            return (UNATTRIBUTED.to_owned(), None);
        };
        let target = target.unwrap_or(0);
        let (marketplace, destination) = self.served.of(
            link.id,
            target,
            (link.marketplace, link.destination),
            link.targeting.as_deref(),
        );
        if g == GroupBy::Target {
            (
                format!("{}#{target}", link.code),
                Some(marketplace.unwrap_or(destination)),
            )
        } else {
            (or_none(marketplace), None)
        }
    }

    /// [`Shape::Link`]: the clicks on `link`.
    pub(crate) fn link_clicks(&mut self, link: LinkGroups, sums: Sums) {
        let (key, name) = match self.query.group_by {
            GroupBy::Link => (link.code, link.name),
            GroupBy::Campaign => (or_none(link.campaign), None),
            GroupBy::Provider => (link.provider, None),
            _ => (or_none(link.marketplace), None),
        };
        self.add(key, name, sums);
    }

    /// [`Shape::Link`]: counted conversions in `currency` on `link`
    /// (`None`: no link, or one that is not there) that `network` reported.
    pub(crate) fn link_conversions(
        &mut self,
        link: Option<LinkGroups>,
        network: String,
        currency: Option<String>,
        sums: Sums,
    ) {
        let (key, name) = match (self.query.group_by, link) {
            (GroupBy::Link, Some(link)) => (link.code, link.name),
            (GroupBy::Provider, Some(link)) => (link.provider, None),
            (GroupBy::Provider, None) => (network, None),
            (GroupBy::Campaign, Some(link)) => (or_none(link.campaign), None),
            (GroupBy::Marketplace, Some(link)) => (or_none(link.marketplace), None),
            _ => (UNATTRIBUTED.to_owned(), None),
        };
        self.currency(currency);
        self.add(key, name, sums);
    }

    /// The report: the groups in key order, their totals and currencies.
    pub(crate) fn finish(self) -> Report {
        let mut total = Sums::default();
        let rows = self
            .groups
            .into_iter()
            .map(|(key, (name, sums))| {
                total.add(&sums);
                row(&sums, key, name)
            })
            .collect();
        Report {
            from: day_string(self.query.from_day),
            to: day_string(self.query.to_day),
            group_by: self.query.group_by,
            rows,
            totals: row(&total, TOTAL.to_owned(), None),
            currencies: self.currencies.into_iter().collect(),
        }
    }
}

/// The marketplace and destination each link's targets serve, from their
/// stored targeting, parsed once per link.
#[derive(Default)]
struct Served {
    links: HashMap<i64, Option<Targeting>>,
}

impl Served {
    /// The marketplace and destination target `target` of link `id` serves
    /// (target 0, or one that is not there: the link's own, `own`).
    fn of(
        &mut self,
        id: i64,
        target: i64,
        own: (Option<String>, String),
        targeting: Option<&str>,
    ) -> (Option<String>, String) {
        let parsed = self
            .links
            .entry(id)
            .or_insert_with(|| targeting.and_then(|json| serde_json::from_str(json).ok()));
        let index = usize::try_from(target).ok().and_then(|t| t.checked_sub(1));
        match parsed
            .as_ref()
            .zip(index)
            .and_then(|(t, i)| t.targets.get(i))
        {
            Some(t) => (t.marketplace.clone(), t.destination.clone()),
            None => own,
        }
    }
}

fn or_none(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| NONE.to_owned())
}

/// A report row of a group's sums.
fn row(sums: &Sums, group: String, name: Option<String>) -> ReportRow {
    let conversion_rate = if sums.clicks == 0 {
        0.0
    } else {
        (sums.conversions as f64 / sums.clicks as f64 * 1e6).round() / 1e6
    };
    ReportRow {
        group,
        name,
        sums: sums.totals(),
        conversion_rate,
    }
}
