//! The storage backends: every concern's trait implemented over one
//! database. The embedded default is SQLite in WAL mode ([`SqliteStore`]).
//! [`App`](crate::app::App) holds one [`Store`]; callers take the narrowest
//! trait they need, and no caller names a backend.

#[cfg(test)]
mod conformance;
pub mod copy;
/// A link to create in tests, the same for every backend.
#[cfg(test)]
pub(crate) fn conformance_link(code: &str) -> crate::store::NewLink {
    conformance::new_link(Some(code))
}
mod postgres;
mod sqlite;
mod timed;

use std::fmt;
use std::sync::Arc;

use crate::config::Config;
use crate::conversions::ConversionStore;
use crate::jobs::JobStore;
use crate::keys::KeyStore;
use crate::nodes::NodeStore;
use crate::reports::ReportStore;
use crate::store::{ClickStore, LinkStore, StoreError};

pub use postgres::PgStore;
pub use sqlite::{DB_FILE as SQLITE_FILE, SqliteStore};
pub use timed::Timed;

/// What every backend tells about itself.
pub trait Backend: Send + Sync {
    /// Where the data is, for people: a file path, or a database URL
    /// without its password.
    fn location(&self) -> String;
    /// The schema version the store is at (the number of migrations applied).
    fn schema_version(&self) -> Result<i64, StoreError>;
}

/// Everything linkwright keeps, in one backend.
pub trait Store:
    Backend
    + LinkStore
    + ClickStore
    + ReportStore
    + KeyStore
    + JobStore
    + ConversionStore
    + NodeStore
    + fmt::Debug
{
}

impl<T> Store for T where
    T: Backend
        + LinkStore
        + ClickStore
        + ReportStore
        + KeyStore
        + JobStore
        + ConversionStore
        + NodeStore
        + fmt::Debug
{
}

/// Opens the store a config names (`store.url`: PostgreSQL; none: the
/// embedded SQLite file under `server.data_dir`), migrated and with every
/// operation timed.
pub fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.store.url {
        Some(url) => Arc::new(Timed(Arc::new(PgStore::connect_with(
            url,
            config.store.click_retention_months,
        )?))),
        None => Arc::new(Timed(Arc::new(SqliteStore::open(&config.server.data_dir)?))),
    })
}

/// The SQL of the SQLite backend's conversion lookups, for tests of their
/// query plans.
#[cfg(test)]
pub(crate) mod sqlite_conversions {
    pub(crate) use super::sqlite::{CLICK_SQL, EXISTING_SQL};
}
