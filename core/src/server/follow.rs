//! Link changes made outside this process reach its caches.
//!
//! This instance forgets a link at once when its own API changes it. The
//! CLI, and other instances sharing the store, change links behind its
//! back: a link disabled there would go on redirecting here from the cache,
//! and a code created there would stay "unknown" in the negative cache. So
//! every `cache.link_refresh_ms` the server reads the store's journal of
//! link changes (written by triggers, whoever changes `links`) from where it
//! stopped, and forgets each code changed or deleted from every cache; a
//! created code only leaves the negative cache. A store that pushes changes
//! (PostgreSQL's LISTEN/NOTIFY) wakes the reader at once, so a change made
//! on another instance is served here within milliseconds; the schedule
//! stays as the fallback, and the journal as the source of truth. (A row replaced in place,
//! `INSERT OR REPLACE`, is journaled as changed, then created: migration 9.)
//! If the journal was pruned past where this instance stopped, or
//! starts again below it (emptied, or restored from a backup), it cannot
//! know what it missed and forgets everything. A request that read a link
//! from the store while a change was being forgotten does not keep what it
//! cached ([`Caches::keep_link`], [`Caches::keep_missing`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{debug, error, warn};

use crate::cache::Caches;
use crate::store::{LinkChange, LinkStore, StoreError};

/// Changes read at a time.
const READ_LIMIT: usize = 10_000;
/// Changes the journal keeps: far more than instances polling every second
/// fall behind by, so pruning never passes one of them in practice.
const KEEP: usize = 100_000;
/// Reads between two prunings of the journal.
const PRUNE_EVERY: u64 = 600;
/// Changes pruned at a time (one short transaction on the links
/// connection); more wait for the next read.
const PRUNE_AT_ONCE: usize = 10_000;

/// Follows the journal from `after` (the newest change when the caches were
/// empty) every `every`, and at once whenever the store pushes a change
/// (PostgreSQL does), for as long as the server runs.
pub(super) async fn follow(
    caches: Arc<Caches>,
    store: Arc<dyn LinkStore>,
    mut after: i64,
    every: Duration,
) {
    // Pushes arriving while a read runs are kept as one permit: the next
    // read takes them all from the journal.
    let pushed = Arc::new(Notify::new());
    let pushes = {
        let pushed = Arc::clone(&pushed);
        store.push_link_changes(Arc::new(move |_| pushed.notify_one()))
    };
    debug!(
        pushes,
        every_ms = every.as_millis() as u64,
        "following link changes"
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_more = false;
    for reads in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            () = pushed.notified() => {}
        }
        if prune_more || reads % PRUNE_EVERY == PRUNE_EVERY - 1 {
            let pruner = Arc::clone(&store);
            match tokio::task::spawn_blocking(move || {
                pruner.prune_link_changes(KEEP, PRUNE_AT_ONCE)
            })
            .await
            {
                Ok(Ok(pruned)) => prune_more = pruned == PRUNE_AT_ONCE,
                Ok(Err(e)) => warn!(error = %e, "cannot prune the link change journal"),
                Err(e) => error!(error = %e, "link change pruner failed"),
            }
        }
        // Until a short read: a burst of changes (a bulk job) is taken in
        // several reads.
        loop {
            let reader = Arc::clone(&store);
            let read = tokio::task::spawn_blocking(move || {
                let changes = reader.link_changes(after, READ_LIMIT)?;
                // Nothing new: make sure the journal did not start again
                // below us (emptied by hand, or the file restored from a
                // backup), where nothing would ever look new.
                let newest = match changes.is_empty() {
                    true => Some(reader.last_link_change()?),
                    false => None,
                };
                Ok::<_, StoreError>((changes, newest))
            });
            let changes = match read.await {
                Ok(Ok((_, Some(newest)))) if newest < after => {
                    warn!(
                        after,
                        newest, "the link change journal went back; forgetting every cached link"
                    );
                    caches.forget_all();
                    after = newest;
                    break;
                }
                Ok(Ok((changes, _))) => changes,
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot read link changes; cached links may be stale until the next read");
                    break;
                }
                Err(e) => {
                    error!(error = %e, "link change reader failed");
                    break;
                }
            };
            after = apply(&caches, after, &changes);
            if changes.len() < READ_LIMIT {
                break;
            }
        }
    }
}

/// Forgets what `changes` (read after `after`) make stale; the number of
/// the last change applied.
pub(super) fn apply(caches: &Caches, after: i64, changes: &[LinkChange]) -> i64 {
    let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
        return after;
    };
    if first.seq != after + 1 {
        warn!(
            after,
            next = first.seq,
            "link changes were pruned before this instance read them; forgetting every cached link"
        );
        caches.forget_all();
        return last.seq;
    }
    // A created code only leaves the negative cache: forgetting it
    // everywhere would also drop what this instance cached when it created
    // the link itself. The middleware cache is searched by
    // code: one pass for all the changed codes, not one per change.
    let (mut created, mut changed) = (HashSet::new(), HashSet::new());
    for c in changes {
        debug!(code = %c.code, created = c.created, "link changed elsewhere");
        if c.created {
            &mut created
        } else {
            &mut changed
        }
        .insert(c.code.as_str());
    }
    if !created.is_empty() {
        caches.forget_created(&created);
    }
    if !changed.is_empty() {
        caches.forget_many(&changed);
    }
    last.seq
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SqliteStore;
    use crate::cache::{CachedLink, Lookup};
    use std::collections::HashSet;

    fn change(seq: i64, code: &str, created: bool) -> LinkChange {
        LinkChange {
            seq,
            code: code.into(),
            created,
        }
    }

    fn cached(caches: &Caches, code: &str) -> Lookup<i64> {
        caches.links.get(code, |l| l.id)
    }

    fn link(id: i64) -> CachedLink {
        CachedLink::new(id, "https://t.test/?s=", "", false, 0)
    }

    fn caches() -> Caches {
        Caches::new(100, 100, 100)
    }

    #[test]
    fn a_link_cached_while_a_change_was_forgotten_is_not_kept() {
        let app = caches();
        let seen = app.changes_seen();
        app.links.insert("x", link(1));
        // A creation elsewhere does not make a cached link stale.
        app.forget_created(&HashSet::from(["other"]));
        assert!(app.keep_link(seen, "x"), "nothing changed meanwhile");
        assert_eq!(cached(&app, "x"), Lookup::Hit(1));

        let seen = app.changes_seen();
        // The store read ran; a change to `x` was forgotten before the
        // request cached what it had read.
        app.forget_many(&HashSet::from(["x"]));
        app.links.insert("x", link(1));
        assert!(!app.keep_link(seen, "x"));
        assert_eq!(cached(&app, "x"), Lookup::Unknown);

        // Likewise an unknown code whose link was created meanwhile.
        let seen = app.changes_seen();
        app.forget_created(&HashSet::from(["y"]));
        app.links.insert_missing("y");
        assert!(!app.keep_missing(seen, "y"));
        assert_eq!(cached(&app, "y"), Lookup::Unknown);
    }

    #[tokio::test]
    async fn a_journal_that_went_back_forgets_everything() {
        let dir = crate::testing::scratch("follow-back");
        let store: Arc<dyn LinkStore> = Arc::new(SqliteStore::open(&dir).expect("store"));
        let app = Arc::new(caches());
        app.links.insert("x", link(1));
        // This instance had read up to change 50; the journal (restored from
        // an older backup) ends at 0.
        let follower = tokio::spawn(follow(
            Arc::clone(&app),
            store,
            50,
            Duration::from_millis(10),
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while cached(&app, "x") != Lookup::Unknown && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        follower.abort();
        assert_eq!(cached(&app, "x"), Lookup::Unknown);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn changes_forget_their_codes_and_a_gap_forgets_everything() {
        let app = caches();
        for (id, code) in [(1, "kept"), (2, "changed"), (3, "deleted")] {
            app.links.insert(code, link(id));
        }
        app.links.insert_missing("created");
        app.links.insert_missing("unknown");
        for code in ["kept", "changed"] {
            app.go
                .insert(&format!("https://shop.test/{code}"), code, link(9));
        }
        let go = |code: &str| {
            app.go
                .get(&format!("https://shop.test/{code}"), |c, _| c.to_owned())
        };

        // In order: each code named leaves the caches it could be stale in.
        let changes = [
            change(8, "changed", false),
            change(9, "created", true),
            change(10, "deleted", false),
        ];
        assert_eq!(apply(&app, 7, &changes), 10);
        assert_eq!(cached(&app, "kept"), Lookup::Hit(1));
        assert_eq!(cached(&app, "changed"), Lookup::Unknown);
        assert_eq!(cached(&app, "deleted"), Lookup::Unknown);
        assert_eq!(cached(&app, "created"), Lookup::Unknown);
        assert_eq!(cached(&app, "unknown"), Lookup::Missing);
        assert_eq!(go("kept").as_deref(), Some("kept"));
        assert_eq!(go("changed"), None);
        assert_eq!(apply(&app, 10, &[]), 10, "nothing new");
        // A link this instance cached as it created it stays cached when its
        // creation comes back through the journal.
        app.links.insert("mine", link(4));
        assert_eq!(apply(&app, 10, &[change(11, "mine", true)]), 11);
        assert_eq!(cached(&app, "mine"), Lookup::Hit(4));

        // Change 11 was pruned unread: anything may be stale.
        assert_eq!(apply(&app, 10, &[change(12, "other", true)]), 12);
        assert_eq!(cached(&app, "kept"), Lookup::Unknown);
        assert_eq!(cached(&app, "unknown"), Lookup::Unknown);
        assert_eq!(go("kept"), None);
    }
}
