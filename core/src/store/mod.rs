//! What is stored about links and clicks, and the traits a backend
//! implements for them ([`LinkStore`], [`ClickStore`]). The other concerns
//! keep their traits beside their rules (`keys::KeyStore`,
//! `jobs::JobStore`, `conversions::ConversionStore`,
//! `reports::ReportStore`); [`crate::backend`] has the backends.
//!
//! Links are committed before a call returns; clicks arrive in batches from
//! the click log's background writer.

pub(crate) mod stats;

use std::fmt;

use linkwright_plugin_sdk::SubIdEncoding;
use serde::Serialize;

use crate::classify::UaClass;
use crate::click::ClickId;
use crate::money::Micros;
pub use crate::targeting::Targeting;
use crate::template::Template;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A link with this code exists already.
    #[error("the code `{0}` is taken")]
    Conflict(String),
    /// A link made from the same request (its `request_key`) or the same
    /// middleware URL (its `source_key`) exists already: here it is. Two
    /// identical requests racing each other end here, not in a second link.
    #[error("a link for the same request exists already: `{}`", .0.code)]
    Duplicate(Box<Link>),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL refused a statement, or the connection to it failed. The
    /// message carries the driver's cause (and the server's message), so the
    /// error has no separate source: a printed chain says it once.
    #[error("PostgreSQL: {}", describe_postgres(.0))]
    Postgres(tokio_postgres::Error),
    /// No connection to PostgreSQL could be had: the server is unreachable,
    /// refused the login, or every pooled connection stayed busy too long.
    /// Retrying later can help. No separate source either, as above.
    #[error("no connection to PostgreSQL: {}", describe_pool(.0))]
    PostgresPool(deadpool_postgres::PoolError),
    /// The data folder or file could not be used.
    #[error("cannot use the data folder {path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database was written by a newer linkwright.
    #[error(
        "the database has schema version {found}; this linkwright knows up to {known}: upgrade linkwright"
    )]
    SchemaTooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A store task on the blocking pool panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(String),
    /// The store did not answer in time.
    #[error("the store did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// A stored row could not be read back.
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::PostgresPool(e)
    }
}

/// A driver error and its causes, each once: the driver's own message
/// names only the kind of failure (`db error`, `error connecting to
/// server`); the cause says what happened (the server's message, the
/// socket's error).
fn describe_postgres(e: &tokio_postgres::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = next {
        let part = err.to_string();
        if parts.last() != Some(&part) {
            parts.push(part);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Why the pool gave no connection, in words an operator can act on.
fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    use deadpool_postgres::{PoolError, TimeoutType};
    match e {
        PoolError::Backend(e) => describe_postgres(e),
        PoolError::Timeout(TimeoutType::Wait) => {
            "every pooled connection stayed busy past the wait timeout".into()
        }
        PoolError::Timeout(TimeoutType::Create) => "connecting timed out".into(),
        PoolError::Timeout(TimeoutType::Recycle) => "checking a pooled connection timed out".into(),
        PoolError::Closed => "the store is closed".into(),
        other => other.to_string(),
    }
}

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Internal row id; clicks refer to it.
    #[serde(skip)]
    pub id: i64,
    /// The short code: `GET /{code}`.
    pub code: String,
    /// The provider that built the template.
    pub provider: String,
    /// The input as the user gave it.
    pub input: String,
    /// The canonical destination.
    pub destination: String,
    /// Template bytes before the sub-ID slot.
    #[serde(skip)]
    pub template_prefix: String,
    /// Template bytes after the slot.
    #[serde(skip)]
    pub template_suffix: String,
    /// Longest sub-ID the network keeps; 0 for no limit.
    #[serde(skip)]
    pub subid_max_len: u32,
    /// Characters the sub-ID may hold.
    #[serde(skip)]
    pub subid_encoding: SubIdEncoding,
    /// The user's own name for the link.
    pub name: Option<String>,
    /// Marketplace, region or advertiser key.
    pub marketplace: Option<String>,
    /// Campaign.
    pub campaign: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Network parameters.
    pub params: Vec<(String, String)>,
    /// For links made by middleware mode (`/go?url=`): the normalised URL.
    pub source_key: Option<String>,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Disabled links answer 410.
    pub disabled: bool,
    /// Targeting rules and the targets built for them, if any.
    #[serde(skip)]
    pub targeting: Option<Targeting>,
}

impl Link {
    /// The link's template.
    pub fn template(&self) -> Template {
        Template {
            provider: self.provider.clone(),
            built: linkwright_model::template::Built {
                prefix: self.template_prefix.clone(),
                suffix: self.template_suffix.clone(),
                destination: self.destination.clone(),
                marketplace: self.marketplace.clone(),
                subid_max_len: self.subid_max_len,
                subid_encoding: self.subid_encoding,
            },
        }
    }
}

/// A link to create.
#[derive(Debug, Clone)]
pub struct NewLink {
    /// A custom code, or `None` to generate one.
    pub code: Option<String>,
    /// The input as the user gave it.
    pub input: String,
    /// The template built for it.
    pub template: Template,
    /// The user's own name for the link.
    pub name: Option<String>,
    /// Campaign.
    pub campaign: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Network parameters.
    pub params: Vec<(String, String)>,
    /// For middleware-mode links: the normalised URL.
    pub source_key: Option<String>,
    /// For API-created links: a digest of the request, so the same request
    /// twice finds the same link.
    pub request_key: Option<String>,
    /// Targeting rules and the targets built for them, if any.
    pub targeting: Option<Targeting>,
}

impl NewLink {
    /// The link as stored with row id `id` under `code`: what a backend
    /// answers once it has inserted it.
    pub fn into_link(self, id: i64, code: String, created_ms: i64) -> Link {
        let t = self.template.built;
        Link {
            id,
            code,
            provider: self.template.provider,
            input: self.input,
            destination: t.destination,
            template_prefix: t.prefix,
            template_suffix: t.suffix,
            subid_max_len: t.subid_max_len,
            subid_encoding: t.subid_encoding,
            name: self.name,
            marketplace: t.marketplace,
            campaign: self.campaign,
            tags: self.tags,
            params: self.params,
            source_key: self.source_key,
            created_ms,
            disabled: false,
            targeting: self.targeting,
        }
    }
}

/// Whether an ASIN is sold in a marketplace, as the catalog said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    /// The ASIN.
    pub asin: String,
    /// The marketplace domain.
    pub marketplace: String,
    /// Sold there.
    pub available: bool,
    /// The product's title there, if the catalog gave one.
    pub title: Option<String>,
    /// When the catalog said so (Unix ms).
    pub checked_ms: i64,
}

/// Changes to a link; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct LinkUpdate {
    /// New name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New campaign (`Some(None)` clears it).
    pub campaign: Option<Option<String>>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// A new input and the template built for it.
    pub destination: Option<(String, Template)>,
    /// New targeting (`Some(None)` removes it).
    pub targeting: Option<Option<Targeting>>,
    /// The link no longer answers the request that made it (its rules
    /// changed): an identical request makes a new link.
    pub forget_request: bool,
}

/// Clicks and conversions summed: of a link, or of one of its days.
///
/// Money amounts are exact decimal strings of the currency's major unit
/// (see [`Micros`]); amounts in different currencies are summed as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    /// Human clicks.
    pub clicks: u64,
    /// Bot, preview and HEAD hits.
    pub bot_hits: u64,
    /// Conversions, except declined and deleted ones.
    pub conversions: u64,
    /// Items of those conversions: quantity minus returns.
    pub items: i64,
    /// Revenue (sales amount) of those conversions.
    #[schema(value_type = String, example = "35.00")]
    pub revenue: Micros,
    /// Commission earned.
    #[schema(value_type = String, example = "1.40")]
    pub commission: Micros,
    /// Commission per human click, to the micro-unit; 0 without clicks.
    #[schema(value_type = String, example = "0.466667")]
    pub earnings_per_click: Micros,
}

/// Clicks and conversions of one link: all time, and by UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LinkStats {
    /// All time.
    #[serde(flatten)]
    pub total: Totals,
    /// By UTC day (clicks by click time, conversions by event time), oldest
    /// first; only days with clicks, bot hits or conversions.
    pub by_day: Vec<DayStats>,
}

/// Clicks and conversions of one link on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DayStats {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// That day's sums.
    #[serde(flatten)]
    pub total: Totals,
}

/// One recorded redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickEvent {
    /// The click ID put in the sub-ID slot; `None` for bots and HEAD.
    pub click_id: Option<ClickId>,
    /// The link's row id.
    pub link_id: i64,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// A bot, link-preview fetcher or HEAD request.
    pub bot: bool,
    /// The Referer's host.
    pub referrer_host: Option<Box<str>>,
    /// The client class from the User-Agent.
    pub ua_class: UaClass,
    /// The visitor's country (trusted header or geo database), if known.
    pub country: Option<[u8; 2]>,
    /// The target that served the click: 0 for the link's own destination,
    /// else an index into its targeting's targets (1-based).
    pub target: u8,
}

/// Human clicks since a time, counted by country, device class and
/// referrer host, the largest groups first (`unknown` / `direct` where the
/// click carried none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClickBreakdown {
    /// Two-letter country codes.
    pub countries: Vec<(String, u64)>,
    /// `mobile`, `tablet`, `desktop`, `other`.
    pub devices: Vec<(String, u64)>,
    /// Referrer hosts.
    pub referrers: Vec<(String, u64)>,
}

/// A change to a link, from the store's journal of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    /// Its number; each change's is the one before's plus one.
    pub seq: i64,
    /// The link's code.
    pub code: String,
    /// The link was created; otherwise it was changed or deleted.
    pub created: bool,
}

/// What a store that pushes link changes tells whoever follows them
/// ([`LinkStore::push_link_changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChangePush {
    /// The store is listening for changes, first or again after it lost
    /// its connection: changes made meanwhile were not pushed, so read the
    /// journal now.
    Listening,
    /// The change with this number was committed.
    Made(i64),
}

/// Called by a store with each [`LinkChangePush`], on the store's own
/// threads: it must return at once (wake a task, send on a channel).
pub type OnLinkChange = std::sync::Arc<dyn Fn(LinkChangePush) + Send + Sync>;

/// A stored click, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredClick {
    /// The click ID, if one was minted.
    pub click_id: Option<String>,
    /// The link's code.
    pub code: String,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Bot hit.
    pub bot: bool,
    /// Referrer host.
    pub referrer_host: Option<String>,
    /// Client class.
    pub ua_class: String,
    /// Country code.
    pub country: Option<String>,
}

/// Which links to list.
#[derive(Debug, Clone, Default)]
pub struct LinkFilter {
    /// Only links with a row id above this (cursor paging).
    pub after_id: Option<i64>,
    /// At most this many.
    pub limit: usize,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this marketplace.
    pub marketplace: Option<String>,
    /// Only this campaign.
    pub campaign: Option<String>,
    /// Only links carrying this tag.
    pub tag: Option<String>,
    /// Only links whose name contains this text (case-insensitive).
    pub name: Option<String>,
    /// Only links whose name, code, input or destination contains this
    /// text (case-insensitive).
    pub search: Option<String>,
    /// Only disabled links (`Some(true)`) or only enabled ones.
    pub disabled: Option<bool>,
}

/// Links, the journal of their changes, and the catalog's answers about
/// their products.
pub trait LinkStore: Send + Sync + fmt::Debug {
    /// Creates a link, generating a code if none is given. Fails with
    /// [`StoreError::Conflict`] if a custom code is taken,
    /// [`StoreError::Duplicate`] with the existing link if its request key or
    /// source key is taken.
    fn create_link(&self, link: NewLink) -> Result<Link, StoreError>;
    /// Creates links in one transaction, in order, each exactly as
    /// [`Store::create_link`] would: one result per link, in the same order,
    /// where [`StoreError::Conflict`] and [`StoreError::Duplicate`] are that
    /// link's answer (a link made earlier in the same batch counts: the same
    /// request twice is one link). Any other failure fails the whole batch,
    /// and none of its links is kept.
    fn create_links(
        &self,
        links: Vec<NewLink>,
    ) -> Result<Vec<Result<Link, StoreError>>, StoreError>;
    /// The link with this code.
    fn link_by_code(&self, code: &str) -> Result<Option<Link>, StoreError>;
    /// The middleware-mode link for a normalised URL.
    fn link_by_source_key(&self, key: &str) -> Result<Option<Link>, StoreError>;
    /// Links in creation order.
    fn list_links(&self, filter: &LinkFilter) -> Result<Vec<Link>, StoreError>;
    /// The API-created link for a request digest.
    fn link_by_request_key(&self, key: &str) -> Result<Option<Link>, StoreError>;
    /// Disables or enables a link; false if there is no such code.
    fn set_disabled(&self, code: &str, disabled: bool) -> Result<bool, StoreError>;
    /// Applies changes; the updated link, or `None` if there is no such code.
    fn update_link(&self, code: &str, update: &LinkUpdate) -> Result<Option<Link>, StoreError>;
    /// Deletes a link (its clicks stay for reports); false if there is none.
    fn delete_link(&self, code: &str) -> Result<bool, StoreError>;
    /// The catalog's stored answers for an ASIN, one per marketplace asked.
    fn availability(&self, asin: &str) -> Result<Vec<Availability>, StoreError>;
    /// Stores catalog answers (replacing older ones).
    fn save_availability(&self, answers: &[Availability]) -> Result<(), StoreError>;
    /// Localized links whose availability was checked before
    /// `checked_before_ms`, or could not be checked (the catalog was
    /// unreachable), oldest check first, at most `limit`.
    fn localized_links(
        &self,
        checked_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<Link>, StoreError>;
    /// Clicks, bot hits and conversions of a link, total and by day.
    fn link_stats(&self, link_id: i64) -> Result<LinkStats, StoreError>;
    /// Human clicks at or after `since_ms` (of one link, or of all), by
    /// country, device class and referrer, at most `top` groups each.
    fn click_breakdown(
        &self,
        link_id: Option<i64>,
        since_ms: i64,
        top: usize,
    ) -> Result<ClickBreakdown, StoreError>;
    /// The number of the newest link change (0 if none): where a cache
    /// that starts empty now begins following [`Store::link_changes`].
    fn last_link_change(&self) -> Result<i64, StoreError>;
    /// Changes to links numbered after `after`, oldest first, at most
    /// `limit`, by whoever made them. Numbers follow each other with no
    /// gap, except where old changes were pruned.
    fn link_changes(&self, after: i64, limit: usize) -> Result<Vec<LinkChange>, StoreError>;
    /// Forgets the oldest link changes but the newest `keep` (at least one
    /// stays), at most `limit` of them; how many it forgot.
    fn prune_link_changes(&self, keep: usize, limit: usize) -> Result<usize, StoreError>;
    /// Starts telling `on_change` of link changes as they are committed,
    /// by anyone, for as long as the store is open; false if this store
    /// cannot (the default: its followers read the journal on their own
    /// schedule). A push only says when to read the journal, which stays
    /// the source of truth: pushes can be late, merged or, while the store
    /// reconnects, missing (it then says [`LinkChangePush::Listening`]).
    fn push_link_changes(&self, on_change: OnLinkChange) -> bool {
        let _ = on_change;
        false
    }
}

/// Clicks as the click writer records them, and the click ID generator's
/// saved state.
pub trait ClickStore: Send + Sync + fmt::Debug {
    /// Records a batch of clicks in one transaction.
    fn insert_clicks(&self, clicks: &[ClickEvent]) -> Result<(), StoreError>;
    /// Records, in one transaction, those of `clicks` not stored yet: a
    /// click with a click ID that is already there is skipped (and not
    /// counted again in the rollup), so a replay of the same clicks adds
    /// nothing. Clicks without an ID are always added. How many were new.
    fn insert_new_clicks(&self, clicks: &[ClickEvent]) -> Result<usize, StoreError>;
    /// Clicks in time order (at the same millisecond, those without a click
    /// ID first, then by click ID), at most `limit`.
    fn clicks(&self, limit: usize) -> Result<Vec<StoredClick>, StoreError>;
    /// The click ID generator state saved by the last run (0 if none).
    fn load_click_state(&self) -> Result<u64, StoreError>;
    /// Saves the click ID generator state.
    fn save_click_state(&self, state: u64) -> Result<(), StoreError>;
}

/// Codes the public host uses for itself.
pub const RESERVED_CODES: &[&str] = &[
    "go",
    "robots.txt",
    "favicon.ico",
    "healthz",
    "readyz",
    "metrics",
    "api",
];

/// Checks a custom code: 1-64 letters, digits, `-` or `_`, not reserved.
pub fn validate_code(code: &str) -> Result<(), String> {
    if code.is_empty() || code.len() > 64 {
        return Err(format!(
            "a code has 1 to 64 characters; `{code}` has {}",
            code.len()
        ));
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "`{code}` may hold only letters, digits, `-` and `_`"
        ));
    }
    if RESERVED_CODES.iter().any(|r| r.eq_ignore_ascii_case(code)) {
        return Err(format!("`{code}` is reserved"));
    }
    Ok(())
}

/// A random 7-character code of letters and digits.
pub fn generate_code() -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 7];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to the clock, still unique enough with
        // the store's retry on conflict.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (nanos as u64).to_le_bytes()[..7]
            .try_into()
            .unwrap_or([0; 7]);
    }
    // 256 is not a multiple of 62; the slight bias does not matter for codes.
    bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % 62] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_codes_are_validated() {
        assert!(validate_code("summer-sale_2026").is_ok());
        assert!(validate_code("").is_err());
        assert!(validate_code(&"x".repeat(65)).is_err());
        assert!(validate_code("a/b").is_err());
        assert!(validate_code("GO").is_err());
    }

    #[test]
    fn generated_codes_are_seven_alphanumerics_and_differ() {
        let a = generate_code();
        let b = generate_code();
        assert_eq!(a.len(), 7);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
