//! The raw click tables' monthly partitions: the current and the next
//! month are made ahead of their clicks, and months older than the
//! retention are dropped whole (a `DROP TABLE`, not a `DELETE`). The
//! rollup keeps their sums, so per-link and per-day numbers stay; what goes
//! is the raw click (its country, target, referrer). Clicks of a month that
//! has no partition (a replay of an old click) land in the default one.

use std::sync::atomic::{AtomicI64, Ordering};

use deadpool_postgres::Pool;

use crate::click::ClickId;
use crate::clock::{MS_PER_DAY, civil_from_days, days_from_civil};
use crate::store::StoreError;

/// Key of the advisory lock held while partitions are made or dropped, so
/// that instances doing it at once do not race (`lwparts` in ASCII).
const PARTITION_LOCK: i64 = 0x006c_7770_6172_7473;

/// Months as `year * 12 + month - 1`.
pub(super) fn month_of(ms: i64) -> i64 {
    let (year, month, _) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    year * 12 + i64::from(month) - 1
}

/// The first millisecond of a month.
pub(super) fn month_start_ms(month: i64) -> i64 {
    let (year, month0) = (month.div_euclid(12), month.rem_euclid(12));
    days_from_civil(year, month0 as u32 + 1, 1) * MS_PER_DAY
}

/// `YYYYMM`, the suffix of a month's partitions.
fn suffix(month: i64) -> String {
    format!("{:04}{:02}", month.div_euclid(12), month.rem_euclid(12) + 1)
}

/// What this store made already, and how long raw clicks are kept.
#[derive(Debug)]
pub(super) struct Partitions {
    /// The month whose partitions (and the next month's) are known to be
    /// there; `i64::MIN` before the first check.
    ensured: AtomicI64,
    /// Months of raw clicks kept, the current one included; 0: all.
    retention_months: u32,
}

impl Partitions {
    pub(super) fn new(retention_months: u32) -> Partitions {
        Partitions {
            ensured: AtomicI64::new(i64::MIN),
            retention_months,
        }
    }

    /// Whether the partitions are known to be there for `now_ms`.
    pub(super) fn ready_for(&self, now_ms: i64) -> bool {
        self.ensured.load(Ordering::Relaxed) == month_of(now_ms)
    }

    /// Makes the partitions of `at_ms`'s month and the next (for copied
    /// clicks of past months), without dropping anything.
    pub(super) async fn make_month(&self, pool: &Pool, at_ms: i64) -> Result<(), StoreError> {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await?;
        make(&tx, month_of(at_ms)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes the partitions of `now_ms`'s month and the next, and drops
    /// those older than the retention.
    pub(super) async fn maintain(&self, pool: &Pool, now_ms: i64) -> Result<(), StoreError> {
        let month = month_of(now_ms);
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        // Making or dropping a partition locks the parent table: rather
        // than queue every click writer behind a long report, give up and
        // try again with the next batch.
        tx.batch_execute("SET LOCAL lock_timeout = '2s'").await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await?;
        make(&tx, month).await?;
        if self.retention_months > 0 {
            let oldest_kept = month - i64::from(self.retention_months) + 1;
            // The partitions of this schema's tables (`regclass` resolves
            // the names as the inserts do, through the search path).
            let rows = tx
                .query(
                    "SELECT c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
                     FROM pg_inherits i \
                     JOIN pg_class c ON c.oid = i.inhrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE i.inhparent IN ('clicks_by_id'::regclass, 'clicks_without_id'::regclass)",
                    &[],
                )
                .await?;
            for row in rows {
                let name: String = row.try_get(0)?;
                let qualified: String = row.try_get(1)?;
                let Some(m) = partition_month(&name) else {
                    continue;
                };
                if m < oldest_kept {
                    tx.batch_execute(&format!("DROP TABLE {qualified}")).await?;
                    tracing::info!(partition = %name, "dropped raw clicks older than the retention");
                }
            }
        }
        tx.commit().await?;
        self.ensured.store(month, Ordering::Relaxed);
        Ok(())
    }
}

/// Makes the partitions of `month` and the next, if not there.
async fn make(tx: &tokio_postgres::Transaction<'_>, month: i64) -> Result<(), StoreError> {
    for m in [month, month + 1] {
        let (start, end) = (month_start_ms(m), month_start_ms(m + 1));
        let (first, next) = (ClickId::first_at(start), ClickId::first_at(end));
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS clicks_by_id_{s} PARTITION OF clicks_by_id \
             FOR VALUES FROM ('{}') TO ('{}'); \
             CREATE TABLE IF NOT EXISTS clicks_without_id_{s} PARTITION OF clicks_without_id \
             FOR VALUES FROM ({start}) TO ({end});",
            first.as_str(),
            next.as_str(),
            s = suffix(m),
        ))
        .await?;
    }
    Ok(())
}

/// The month of a partition named `…_YYYYMM`.
fn partition_month(name: &str) -> Option<i64> {
    let digits = name.rsplit_once('_')?.1;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = digits[..4].parse().ok()?;
    let month: i64 = digits[4..].parse().ok()?;
    (1..=12).contains(&month).then_some(year * 12 + month - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_round_trip_through_their_start_and_suffix() {
        // 2026-12-04 and 2027-01-01.
        let dec = 20_791 * MS_PER_DAY;
        assert_eq!(suffix(month_of(dec)), "202612");
        assert_eq!(suffix(month_of(dec) + 1), "202701");
        assert_eq!(
            month_of(month_start_ms(month_of(dec) + 1)),
            month_of(dec) + 1
        );
        assert_eq!(
            month_of(month_start_ms(month_of(dec) + 1) - 1),
            month_of(dec)
        );
        assert_eq!(partition_month("clicks_by_id_202612"), Some(month_of(dec)));
        assert_eq!(partition_month("clicks_by_id_default"), None);
        assert_eq!(partition_month("clicks_without_id_202613"), None);
    }
}
