//! The journal of link changes on PostgreSQL. Triggers on `links` write it
//! (schema migration 1 says how its numbers stay gap-free); this reads and
//! prunes it.

use deadpool_postgres::Pool;

use super::bigint;
use crate::store::{LinkChange, StoreError};

pub(super) async fn last_link_change(pool: &Pool) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM link_changes")
        .await?;
    Ok(client.query_one(&stmt, &[]).await?.try_get(0)?)
}

pub(super) async fn link_changes(
    pool: &Pool,
    after: i64,
    limit: usize,
) -> Result<Vec<LinkChange>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT seq, code, created FROM link_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .await?;
    let rows = client.query(&stmt, &[&after, &bigint(limit)]).await?;
    rows.iter()
        .map(|r| {
            Ok(LinkChange {
                seq: r.try_get(0)?,
                code: r.try_get(1)?,
                created: r.try_get(2)?,
            })
        })
        .collect()
}

pub(super) async fn prune_link_changes(
    pool: &Pool,
    keep: usize,
    limit: usize,
) -> Result<usize, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "DELETE FROM link_changes WHERE seq IN (SELECT seq FROM link_changes \
             WHERE seq <= (SELECT max(seq) FROM link_changes) - $1 ORDER BY seq LIMIT $2)",
        )
        .await?;
    let pruned = client
        .execute(&stmt, &[&bigint(keep.max(1)), &bigint(limit)])
        .await?;
    Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
}
