//! Conversions' rows: one per network report row, by its identity.

use std::fmt;

use super::{Conversion, StoredConversion, Written};
use crate::store::StoreError;

/// Conversion storage. How rows merge (attribution kept, unchanged rows
/// left alone, the counts) lives in this module; a backend keeps
/// rows and runs [`crate::conversions::merge`] in one transaction.
pub trait ConversionStore: Send + Sync + fmt::Debug {
    /// Upserts `rows` (their report line and the parsed conversion) in one
    /// transaction at `now_ms`: nothing of them is stored if it fails.
    fn upsert_conversions(
        &self,
        rows: &[(u64, Conversion)],
        now_ms: i64,
    ) -> Result<Written, StoreError>;
}

/// One transaction's view of the conversion rows, for
/// [`crate::conversions::merge`].
pub trait ConversionRows {
    /// The link of the click with this ID, if it is stored.
    fn link_of_click(&mut self, click_id: &str) -> Result<Option<i64>, StoreError>;
    /// The stored conversion with this identity and its row id.
    fn existing(
        &mut self,
        provider: &str,
        kind: &str,
        row_key: &str,
    ) -> Result<Option<(i64, StoredConversion)>, StoreError>;
    /// Stores a new conversion.
    fn insert(
        &mut self,
        provider: &str,
        kind: &str,
        row_key: &str,
        row: &StoredConversion,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Replaces the stored columns of row `id`.
    fn update(&mut self, id: i64, row: &StoredConversion, now_ms: i64) -> Result<(), StoreError>;
}
