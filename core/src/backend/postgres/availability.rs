//! The catalog's answers on where an ASIN is sold, on PostgreSQL.

use deadpool_postgres::Pool;

use crate::store::{Availability, StoreError};

pub(super) async fn availability(pool: &Pool, asin: &str) -> Result<Vec<Availability>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT asin, marketplace, available, title, checked_ms FROM availability \
             WHERE asin = $1 ORDER BY marketplace",
        )
        .await?;
    let rows = client.query(&stmt, &[&asin]).await?;
    rows.iter()
        .map(|r| {
            Ok(Availability {
                asin: r.try_get(0)?,
                marketplace: r.try_get(1)?,
                available: r.try_get(2)?,
                title: r.try_get(3)?,
                checked_ms: r.try_get(4)?,
            })
        })
        .collect()
}

/// Replaces older answers for the same ASIN and marketplace, all in one
/// transaction.
pub(super) async fn save_availability(
    pool: &Pool,
    answers: &[Availability],
) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO availability (asin, marketplace, available, title, checked_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (asin, marketplace) DO UPDATE SET \
             available = excluded.available, title = excluded.title, \
             checked_ms = excluded.checked_ms",
        )
        .await?;
    for a in answers {
        tx.execute(
            &stmt,
            &[
                &a.asin,
                &a.marketplace,
                &a.available,
                &a.title,
                &a.checked_ms,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
