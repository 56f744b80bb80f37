//! Node ID leases on PostgreSQL: the `node_leases` table.

use deadpool_postgres::Pool;

use crate::nodes::{Leased, NodeLeaseRow, choose};
use crate::store::StoreError;

pub(super) async fn lease_node(
    pool: &Pool,
    owner: String,
    wanted: Option<u16>,
    now_ms: i64,
    until_ms: i64,
) -> Result<Leased, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Conflicts with itself, not with plain reads: instances starting
    // together choose one after the other, never the same node.
    tx.batch_execute("LOCK TABLE node_leases IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let rows = tx
        .query("SELECT node_id, owner, expires_ms FROM node_leases", &[])
        .await?;
    let leases = rows
        .iter()
        .map(|r| {
            let node: i32 = r.try_get(0)?;
            Ok(NodeLeaseRow {
                node: u16::try_from(node).map_err(|_| StoreError::Corrupt {
                    table: "node_leases",
                    message: format!("node ID {node} out of range"),
                })?,
                owner: r.try_get(1)?,
                expires_ms: r.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let leased = choose(&leases, &owner, wanted, now_ms);
    if let Leased::Granted(node) = leased {
        tx.execute(
            "INSERT INTO node_leases (node_id, owner, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (node_id) DO UPDATE SET owner = EXCLUDED.owner, expires_ms = EXCLUDED.expires_ms",
            &[&i32::from(node), &owner, &until_ms],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(leased)
}

pub(super) async fn renew_node(
    pool: &Pool,
    node: u16,
    owner: String,
    until_ms: i64,
) -> Result<bool, StoreError> {
    let renewed = pool
        .get()
        .await?
        .execute(
            "UPDATE node_leases SET expires_ms = $3 WHERE node_id = $1 AND owner = $2",
            &[&i32::from(node), &owner, &until_ms],
        )
        .await?;
    Ok(renewed == 1)
}

pub(super) async fn release_node(
    pool: &Pool,
    node: u16,
    owner: String,
) -> Result<bool, StoreError> {
    let released = pool
        .get()
        .await?
        .execute(
            "DELETE FROM node_leases WHERE node_id = $1 AND owner = $2",
            &[&i32::from(node), &owner],
        )
        .await?;
    Ok(released == 1)
}
