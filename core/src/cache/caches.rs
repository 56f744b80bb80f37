//! The caches of one instance together, and how a change reaches them:
//! [`Caches`] owns the link cache and the middleware cache, forgets changed
//! links, and guards a request that read the store while a change was being
//! forgotten from keeping what it read.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{GoCache, LinkCache};

/// Every cache of links of one instance.
#[derive(Debug)]
pub struct Caches {
    /// Links by code (and unknown codes).
    pub links: LinkCache,
    /// Middleware-mode templates by URL.
    pub go: GoCache,
    /// See [`Caches::changes_seen`].
    forgets: AtomicU64,
    creations: AtomicU64,
}

/// What [`Caches::changes_seen`] returned.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    forgets: u64,
    creations: u64,
}

impl Caches {
    /// Empty caches with these bounds.
    pub fn new(max_links: usize, max_missing: usize, max_go_urls: usize) -> Caches {
        Caches {
            links: LinkCache::new(max_links, max_missing),
            go: GoCache::new(max_go_urls),
            forgets: AtomicU64::new(0),
            creations: AtomicU64::new(0),
        }
    }

    /// How many changes this instance has forgotten so far, by kind. A
    /// request that reads a link from the store takes this before the read
    /// and, after caching what it read, checks it with
    /// [`Caches::keep_link`] or [`Caches::keep_missing`]: a change forgotten
    /// meanwhile may postdate the read, so the entry is dropped again.
    pub fn changes_seen(&self) -> Seen {
        Seen {
            forgets: self.forgets.load(Ordering::SeqCst),
            creations: self.creations.load(Ordering::SeqCst),
        }
    }

    /// After caching `code`'s link: drops it if a link was changed or
    /// deleted since `seen`. True if it stays.
    pub fn keep_link(&self, seen: Seen, code: &str) -> bool {
        let kept = self.forgets.load(Ordering::SeqCst) == seen.forgets;
        if !kept {
            self.forget(code);
        }
        kept
    }

    /// After caching `code` as unknown: drops that if a link was created
    /// since `seen`. True if it stays.
    pub fn keep_missing(&self, seen: Seen, code: &str) -> bool {
        let kept = self.creations.load(Ordering::SeqCst) == seen.creations;
        if !kept {
            self.links.forget_missing(code);
        }
        kept
    }

    /// Drops these codes from the negative cache: links with them were
    /// created. (Counted first, see [`Caches::changes_seen`].)
    pub fn forget_created(&self, codes: &HashSet<&str>) {
        self.creations.fetch_add(1, Ordering::SeqCst);
        for code in codes {
            self.links.forget_missing(code);
        }
    }

    /// Drops a link from every cache (after it changed).
    pub fn forget(&self, code: &str) {
        self.forget_many(&HashSet::from([code]));
    }

    /// [`Caches::forget`] for many codes, with one pass over the cache that
    /// is searched by code (a bulk change is thousands).
    pub fn forget_many(&self, codes: &HashSet<&str>) {
        self.forgets.fetch_add(1, Ordering::SeqCst);
        for code in codes {
            self.links.invalidate(code);
        }
        self.go.invalidate_codes(codes);
    }

    /// Empties every cache of links (after changes this instance missed).
    pub fn forget_all(&self) {
        self.forgets.fetch_add(1, Ordering::SeqCst);
        self.links.clear();
        self.go.clear();
    }
}
