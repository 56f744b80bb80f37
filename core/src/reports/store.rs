//! Where reports are read from.

use std::fmt;

use super::{Report, ReportQuery};
use crate::store::StoreError;

/// Reports over the stored clicks and conversions.
pub trait ReportStore: Send + Sync + fmt::Debug {
    /// A report: clicks and conversions over a range of days, grouped, read
    /// in one consistent snapshot.
    fn report(&self, query: &ReportQuery) -> Result<Report, StoreError>;
}
