//! Node IDs for click IDs, leased from the store: each instance sharing a
//! store mints click IDs with a node ID no other live instance holds.
//!
//! At start an instance leases a free node ID (the one it held before, if
//! it still has it; else the lowest free), or the one its config names
//! (`[click_ids] node_id`), which another live owner holding is a start-up
//! error. It renews the lease in the background well before it expires,
//! and releases it on a clean shutdown. A lease not renewed in time (its
//! instance crashed) expires, and another instance can take the node over:
//! click IDs carry their millisecond, so a new owner's IDs come after the
//! old owner's, as long as the hosts' clocks agree.
//!
//! An owner is a host and a data folder: the same instance restarted finds
//! its own lease, even one a crash left behind.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::click::MAX_NODE_ID;
use crate::clock::now_ms;
use crate::store::StoreError;

/// A row of `node_leases`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLeaseRow {
    /// The node ID.
    pub node: u16,
    /// Who holds it.
    pub owner: String,
    /// Until when (Unix ms); from then on, anyone may take it over.
    pub expires_ms: i64,
}

/// What asking for a lease got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased {
    /// This node ID is the asker's until the lease's expiry.
    Granted(u16),
    /// The node ID asked for is another owner's until `expires_ms`.
    Taken {
        /// The node ID.
        node: u16,
        /// Its holder.
        owner: String,
        /// When its lease runs out unless renewed (Unix ms).
        expires_ms: i64,
    },
    /// Every node ID is leased by a live owner.
    NoneFree,
}

/// Node ID leases, as a backend keeps them. Each call is one transaction.
pub trait NodeStore: Send + Sync + fmt::Debug {
    /// Leases `wanted`, or with `None` a free node ID (the lowest one
    /// `owner` holds, live or expired; else the lowest nobody holds or
    /// whose lease expired at `now_ms`), to `owner` until `until_ms`, as
    /// [`choose`] decides under a lock that makes concurrent callers take
    /// turns.
    fn lease_node(
        &self,
        owner: &str,
        wanted: Option<u16>,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Leased, StoreError>;
    /// Extends `owner`'s lease of `node` to `until_ms`; false if it is no
    /// longer theirs (released, or expired and taken over).
    fn renew_node(&self, node: u16, owner: &str, until_ms: i64) -> Result<bool, StoreError>;
    /// Gives `node` up if `owner` holds it; whether they did.
    fn release_node(&self, node: u16, owner: &str) -> Result<bool, StoreError>;
}

/// The rule every backend applies to the leases it read (under its lock):
/// which node ID `owner` gets, if any.
pub fn choose(leases: &[NodeLeaseRow], owner: &str, wanted: Option<u16>, now_ms: i64) -> Leased {
    let by_node: HashMap<u16, &NodeLeaseRow> = leases.iter().map(|l| (l.node, l)).collect();
    let live_elsewhere = |l: &NodeLeaseRow| l.owner != owner && l.expires_ms > now_ms;
    match wanted {
        Some(node) => match by_node.get(&node) {
            Some(l) if live_elsewhere(l) => Leased::Taken {
                node,
                owner: l.owner.clone(),
                expires_ms: l.expires_ms,
            },
            _ => Leased::Granted(node),
        },
        None => {
            let own = leases
                .iter()
                .filter(|l| l.owner == owner)
                .map(|l| l.node)
                .min();
            own.or_else(|| {
                (0..=MAX_NODE_ID).find(|n| by_node.get(n).is_none_or(|l| !live_elsewhere(l)))
            })
            .map_or(Leased::NoneFree, Leased::Granted)
        }
    }
}

/// Why no node ID could be had.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configured node ID is another live instance's.
    #[error(
        "node ID {node} ([click_ids] node_id) is leased by another instance, {owner}, for {left_ms} ms more: \
         give each instance its own node_id, or leave node_id out to lease a free one"
    )]
    Taken {
        /// The node ID.
        node: u16,
        /// Its holder.
        owner: String,
        /// How long its lease has left, unless renewed.
        left_ms: i64,
    },
    /// All 4096 node IDs are leased.
    #[error(
        "every node ID (0-{MAX_NODE_ID}) is leased by a live instance: stop one, or wait for crashed ones' leases to expire"
    )]
    NoneFree,
    /// The store failed.
    #[error("cannot lease a node ID: {0}")]
    Store(#[from] StoreError),
}

/// This process as a lease owner: its host and its data folder.
pub fn owner_for(data_dir: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    // Absolute, not canonical: the same whether or not the folder exists
    // yet, so a first start and a restart are the same owner.
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    format!("{host}:{}", dir.display())
}

/// This instance's node ID, leased.
#[derive(Debug)]
pub struct NodeLease {
    store: Arc<dyn NodeStore>,
    node: u16,
    owner: String,
    lease: Duration,
}

impl NodeLease {
    /// Leases `configured`, or a free node ID, for `lease`.
    pub fn acquire(
        store: Arc<dyn NodeStore>,
        configured: Option<u16>,
        owner: String,
        lease: Duration,
    ) -> Result<NodeLease, NodeError> {
        let now = now_ms();
        match store.lease_node(&owner, configured, now, now + millis(lease))? {
            Leased::Granted(node) => {
                info!(node, configured = configured.is_some(), %owner, "node ID leased");
                Ok(NodeLease {
                    store,
                    node,
                    owner,
                    lease,
                })
            }
            Leased::Taken {
                node,
                owner,
                expires_ms,
            } => Err(NodeError::Taken {
                node,
                owner,
                left_ms: expires_ms - now,
            }),
            Leased::NoneFree => Err(NodeError::NoneFree),
        }
    }

    /// The node ID.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// Extends the lease (blocking). When it was lost (this instance could
    /// not renew it in time and another took the node over), leases the
    /// node again if it is free, and says so loudly either way: two
    /// instances minting with one node ID can mint the same click ID.
    pub fn renew(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let until = now + millis(self.lease);
        if self.store.renew_node(self.node, &self.owner, until)? {
            return Ok(());
        }
        match self
            .store
            .lease_node(&self.owner, Some(self.node), now, until)?
        {
            Leased::Granted(_) => {
                warn!(
                    node = self.node,
                    "the node ID lease had lapsed and was taken again"
                );
            }
            Leased::Taken { owner, .. } => error!(
                node = self.node,
                holder = %owner,
                "this instance's node ID lease lapsed and another instance took the node: \
                 click IDs of the two may collide; restart this instance to lease another node ID"
            ),
            Leased::NoneFree => {}
        }
        Ok(())
    }

    /// Renews the lease every third of its length, for as long as the
    /// task runs.
    pub async fn keep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let lease = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || lease.renew()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(
                    node = self.node,
                    error = %e,
                    "cannot renew the node ID lease; trying again"
                ),
                Err(e) => error!(error = %e, "node ID lease renewal failed"),
            }
        }
    }

    /// Gives the node ID up (blocking), once no more click IDs are minted.
    pub fn release(&self) {
        match self.store.release_node(self.node, &self.owner) {
            Ok(true) => info!(node = self.node, "node ID released"),
            Ok(false) => warn!(
                node = self.node,
                "the node ID lease was no longer this instance's"
            ),
            Err(e) => warn!(
                node = self.node,
                error = %e,
                "cannot release the node ID; it is free again once its lease expires"
            ),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: u16, owner: &str, expires_ms: i64) -> NodeLeaseRow {
        NodeLeaseRow {
            node,
            owner: owner.into(),
            expires_ms,
        }
    }

    #[test]
    fn a_free_node_is_the_owners_own_else_the_lowest_not_held_by_a_live_owner() {
        let leases = [row(0, "a", 100), row(1, "b", 50), row(3, "c", 100)];
        // Node 1's lease expired at 50.
        assert_eq!(choose(&leases, "d", None, 60), Leased::Granted(1));
        assert_eq!(choose(&leases, "d", None, 40), Leased::Granted(2));
        // A restarted owner finds its own, even expired.
        assert_eq!(choose(&leases, "c", None, 500), Leased::Granted(3));
        assert_eq!(choose(&[], "a", None, 0), Leased::Granted(0));
        let full: Vec<_> = (0..=MAX_NODE_ID).map(|n| row(n, "x", 100)).collect();
        assert_eq!(choose(&full, "y", None, 99), Leased::NoneFree);
        assert_eq!(choose(&full, "y", None, 100), Leased::Granted(0));
    }

    #[test]
    fn a_wanted_node_is_refused_only_while_another_owner_holds_it() {
        let leases = [row(7, "a", 100)];
        assert_eq!(
            choose(&leases, "b", Some(7), 99),
            Leased::Taken {
                node: 7,
                owner: "a".into(),
                expires_ms: 100
            }
        );
        assert_eq!(choose(&leases, "b", Some(7), 100), Leased::Granted(7));
        assert_eq!(choose(&leases, "a", Some(7), 0), Leased::Granted(7));
        assert_eq!(choose(&leases, "b", Some(8), 0), Leased::Granted(8));
    }
}
