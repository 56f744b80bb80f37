//! [`NodeStore`] on SQLite: the `node_leases` table.

use rusqlite::{TransactionBehavior, params};

use super::{SqliteStore, lock};
use crate::nodes::{Leased, NodeLeaseRow, NodeStore, choose};
use crate::store::StoreError;

/// Takes a node for its new owner, or extends its owner's lease.
const UPSERT: &str = "INSERT INTO node_leases (node_id, owner, expires_ms) VALUES (?1, ?2, ?3) \
     ON CONFLICT (node_id) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms";

impl NodeStore for SqliteStore {
    fn lease_node(
        &self,
        owner: &str,
        wanted: Option<u16>,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Leased, StoreError> {
        let mut conn = lock(&self.links);
        // Immediate: the write lock first, so that two processes choosing
        // at once take turns instead of both choosing the same node.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let leases = {
            let mut stmt = tx.prepare("SELECT node_id, owner, expires_ms FROM node_leases")?;
            stmt.query_map([], |r| {
                Ok(NodeLeaseRow {
                    node: r.get(0)?,
                    owner: r.get(1)?,
                    expires_ms: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let leased = choose(&leases, owner, wanted, now_ms);
        if let Leased::Granted(node) = leased {
            tx.execute(UPSERT, params![node, owner, until_ms])?;
        }
        tx.commit()?;
        Ok(leased)
    }

    fn renew_node(&self, node: u16, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        let renewed = self.with_conn(|c| {
            c.execute(
                "UPDATE node_leases SET expires_ms = ?3 WHERE node_id = ?1 AND owner = ?2",
                params![node, owner, until_ms],
            )
        })?;
        Ok(renewed == 1)
    }

    fn release_node(&self, node: u16, owner: &str) -> Result<bool, StoreError> {
        let released = self.with_conn(|c| {
            c.execute(
                "DELETE FROM node_leases WHERE node_id = ?1 AND owner = ?2",
                params![node, owner],
            )
        })?;
        Ok(released == 1)
    }
}
