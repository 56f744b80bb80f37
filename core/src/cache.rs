//! In-memory caches on the redirect path: links by code (with a bounded
//! negative cache of unknown codes) and middleware-mode templates by
//! normalised URL.
//!
//! # The link cache
//!
//! The link cache holds up to a million links and is read on every redirect,
//! so it is built for two things: memory near the size of the data, and
//! lookups that slow down as little as possible as it grows.
//!
//! * **Shards.** 8 shards, each a [`RwLock`] padded to its own cache lines,
//!   chosen by bits 48–50 of the code's hash (the index takes its bucket from
//!   the low bits and its tag from the top byte, so neither is biased by the
//!   shard choice). A hit takes one read lock; writers lock one shard. Few
//!   shards, so that a large cache's shards are large enough for huge pages
//!   (below); a link that both cores serve is served from their memos.
//! * **Records in an arena** ([`arena`]). A link is one packed record —
//!   varint header (about 9 bytes for a typical link), code, template prefix,
//!   template suffix — appended to its shard's arena: chunks allocated once
//!   at their final capacity, so growth never copies, slack is at most one
//!   chunk per shard, and there is no allocation (nor allocator overhead) per
//!   link. A shard's first chunks (4 to 256 KiB) are `String`s, sliced into
//!   `&str` in O(1); later ones are 2 MiB blocks of huge pages, plain bytes,
//!   whose template halves are checked as UTF-8 on a hit (no `unsafe`).
//! * **The index** ([`index`]) maps hashes to `u32` record locations in
//!   64-byte buckets of 12 tags and 12 locations, so a probe reads one cache
//!   line (hashbrown would read two: control bytes, then slot). Keys are not
//!   duplicated: a probe compares the code in the record. A hit over a table
//!   far larger than the CPU caches costs two dependent misses (bucket,
//!   record, which holds the template too); an unknown code usually one.
//! * **Huge pages** ([`block`]). With 4 KiB pages, each of those misses also
//!   misses the TLB, and a page walk (two-dimensional on a VM) costs about
//!   as much again. Index tables of 512 KiB and more and full-size arena
//!   chunks are anonymous maps advised `MADV_HUGEPAGE`, owned by the cache,
//!   so a large cache is in huge pages whatever the allocator does (and in
//!   small pages, silently, where the kernel has none). Small caches stay on
//!   the heap: a 2 MiB page for a few links would be all slack.
//! * **Why readers still lock.** A read path with no locked instruction
//!   needs the index and records to be read while a writer changes them,
//!   and memory freed by a compaction or a table rebuild to outlive every
//!   reader still in it. In safe Rust the first means storing them as
//!   atomics (which cannot live in the byte maps that give huge pages) and
//!   the second a reference count or lock per read, which is the locked
//!   instruction again. The shard's read lock it is: uncontended, its two
//!   locked instructions cost far less than the misses.
//! * **Dead bytes.** Overwriting or removing a link only drops its index
//!   entry and counts its record as dead; once dead bytes exceed half of a
//!   shard's arena, the shard is compacted under its write lock (live records
//!   copied into fresh chunks), so the arena stays under twice the live data
//!   (a quarter would copy three times as much per dead byte).
//! * **The bound.** An exact count of links, reserved before an insert, never
//!   exceeds `max_links`. When the cache is full, one writer sheds about an
//!   eighth of the links, spread over all shards (one shard locked at a
//!   time), as the dashmap version did: no per-hit bookkeeping on the hot
//!   path, amortised O(1) per insert.
//!
//! * **A memo per thread.** Each thread keeps copies of up to 32 links it
//!   served lately (a link is copied in when it is looked up twice in a row
//!   through the same memo slot), checked before the shard lock. A shard's
//!   read lock is a write to a cache line: on a link that both cores serve,
//!   they trade that line on every request; a memo hit writes nothing
//!   shared. Copies are tagged with a generation that every insert and
//!   invalidation bumps, so a changed link is never served from a memo.
//!
//! The bytes per link against a dashmap of boxed templates are measured by
//! `benches/cache.rs` (figures in benches/RESULTS.md).
//!
//! Codes are hashed with foldhash, seeded per process (a `RandomState`).
//!
//! The negative cache and the middleware-mode cache stay dashmaps (with
//! foldhash): both are small or short-lived. No guard of any of these maps is
//! ever held across an `.await` or a second operation on the same map. Locks
//! are taken through poisoning: only this module's code runs under a write
//! lock, and a panic there can at worst leave a wrong entry in a cache, never
//! undefined behaviour.
#![forbid(unsafe_code)]

mod arena;
mod block;
mod caches;
mod index;

pub use self::caches::{Caches, Seen};

use crate::shard::Padded;

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use compact_str::CompactString;
use dashmap::DashMap;
use foldhash::fast::RandomState;

use self::arena::{Arena, Loc};
use self::index::Index;
use crate::store::Link;
use crate::targeting::{Device, OWN, Router, Targeting};

/// A link as the redirect path needs it, owned: what callers insert, and
/// what the middleware-mode cache keeps. One heap allocation (the template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLink {
    /// The link's row id (clicks refer to it).
    pub id: i64,
    /// Prefix and suffix of the template, back to back.
    template: Box<str>,
    /// Where the prefix ends (the sub-ID slot).
    split: u32,
    /// The link's metrics label index (provider × marketplace, see
    /// `Metrics::link_label`).
    pub provider: u16,
    /// Disabled links answer 410.
    pub disabled: bool,
    /// The link's targeting, compiled; `None` for a plain link.
    routes: Option<Arc<Routes>>,
}

/// One of a link's targets as the redirect needs it: the template halves
/// back to back and its metrics label index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedTarget {
    template: Box<str>,
    split: u32,
    provider: u16,
}

/// A link's targeting compiled for the redirect: the rule tables and the
/// templates of its targets (target `i` is `targets[i - 1]`; 0 is the
/// link's own template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    router: Router,
    targets: Box<[CachedTarget]>,
}

impl Routes {
    /// Compiles a link's stored targeting; `labels` gives the metrics
    /// label index of a provider and marketplace. `None` when every click
    /// goes to the link's own destination anyway.
    pub fn compile(
        targeting: &Targeting,
        labels: &impl Fn(&str, Option<&str>) -> u16,
    ) -> Option<Routes> {
        if targeting.is_empty() {
            return None;
        }
        let targets = targeting
            .targets
            .iter()
            .map(|t| {
                let mut template = String::with_capacity(t.prefix.len() + t.suffix.len());
                template.push_str(&t.prefix);
                template.push_str(&t.suffix);
                CachedTarget {
                    template: template.into_boxed_str(),
                    split: t.prefix.len() as u32,
                    provider: labels(&t.provider, t.marketplace.as_deref()),
                }
            })
            .collect();
        Some(Routes {
            router: targeting.router(),
            targets,
        })
    }
}

/// The destination a visitor is sent to: which target, its template
/// halves and its metrics label index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen<'a> {
    /// The target index (0: the link's own).
    pub target: u8,
    /// Template bytes before the sub-ID slot.
    pub prefix: &'a str,
    /// Template bytes after it.
    pub suffix: &'a str,
    /// The metrics label index of the target's provider and marketplace.
    pub provider: u16,
}

impl CachedLink {
    /// A cached link from its template halves.
    pub fn new(id: i64, prefix: &str, suffix: &str, disabled: bool, provider: u16) -> CachedLink {
        let mut template = String::with_capacity(prefix.len() + suffix.len());
        template.push_str(prefix);
        template.push_str(suffix);
        CachedLink {
            id,
            template: template.into_boxed_str(),
            split: prefix.len() as u32,
            provider,
            disabled,
            routes: None,
        }
    }

    /// From a stored link; `labels` gives the metrics label index of a
    /// provider and marketplace (`Metrics::link_label`).
    pub fn from_link(link: &Link, labels: impl Fn(&str, Option<&str>) -> u16) -> CachedLink {
        let mut cached = Self::new(
            link.id,
            &link.template_prefix,
            &link.template_suffix,
            link.disabled,
            labels(&link.provider, link.marketplace.as_deref()),
        );
        cached.routes = link
            .targeting
            .as_ref()
            .and_then(|t| Routes::compile(t, &labels))
            .map(Arc::new);
        cached
    }

    /// With these routes.
    pub fn with_routes(mut self, routes: Option<Arc<Routes>>) -> CachedLink {
        self.routes = routes;
        self
    }

    /// Template bytes before the sub-ID slot.
    pub fn prefix(&self) -> &str {
        &self.template[..self.split as usize]
    }

    /// Template bytes after the slot.
    pub fn suffix(&self) -> &str {
        &self.template[self.split as usize..]
    }

    /// A borrowed view, as lookups hand it out.
    pub fn as_ref(&self) -> LinkRef<'_> {
        LinkRef {
            id: self.id,
            provider: self.provider,
            disabled: self.disabled,
            routed: self.routes.is_some(),
            routes: self.routes.as_ref(),
            prefix: self.prefix(),
            suffix: self.suffix(),
        }
    }
}

impl From<LinkRef<'_>> for CachedLink {
    fn from(link: LinkRef<'_>) -> CachedLink {
        CachedLink::new(
            link.id,
            link.prefix,
            link.suffix,
            link.disabled,
            link.provider,
        )
        .with_routes(link.routes.cloned())
    }
}

/// A cached link, borrowed from wherever it is stored (the link cache's
/// arena, or a [`CachedLink`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRef<'a> {
    /// The link's row id (clicks refer to it).
    pub id: i64,
    /// The link's metrics label index (provider × marketplace, see
    /// `Metrics::link_label`).
    pub provider: u16,
    /// Disabled links answer 410.
    pub disabled: bool,
    /// The link has routes (in its shard's side table, when read from the
    /// arena; then filled into `routes`).
    routed: bool,
    /// The link's targeting, compiled.
    routes: Option<&'a Arc<Routes>>,
    prefix: &'a str,
    suffix: &'a str,
}

impl<'a> LinkRef<'a> {
    /// The destination for a visitor on `device` from `country`: the link's
    /// own, unless its targeting says otherwise. `roll` (0..100) is drawn
    /// only for an A/B split.
    #[inline]
    pub fn choose(
        &self,
        device: Device,
        country: Option<[u8; 2]>,
        roll: impl FnOnce() -> u8,
    ) -> Chosen<'a> {
        let own = Chosen {
            target: OWN,
            prefix: self.prefix,
            suffix: self.suffix,
            provider: self.provider,
        };
        let Some(routes) = self.routes else {
            return own;
        };
        let target = routes.router.pick(device, country, roll);
        match routes.targets.get(usize::from(target).wrapping_sub(1)) {
            Some(t) => Chosen {
                target,
                prefix: &t.template[..t.split as usize],
                suffix: &t.template[t.split as usize..],
                provider: t.provider,
            },
            None => own,
        }
    }

    /// Template bytes before the sub-ID slot.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// Template bytes after the slot.
    pub fn suffix(&self) -> &'a str {
        self.suffix
    }
}

/// A cache lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<R> {
    /// The link was cached; what the caller computed from it.
    Hit(R),
    /// Known not to exist.
    Missing,
    /// Not cached either way: ask the store.
    Unknown,
}

fn hash_code(state: &RandomState, code: &[u8]) -> u64 {
    // `write` mixes in the length itself; no terminator needed.
    let mut hasher = state.build_hasher();
    hasher.write(code);
    hasher.finish()
}

/// One shard of the link cache.
#[derive(Debug, Default)]
struct Shard {
    index: Index,
    arena: Arena,
    /// Bytes of records no longer in the index.
    dead: usize,
    /// The routes of the shard's routed links, by link id (few links have
    /// targeting; the arena keeps plain bytes).
    routes: std::collections::HashMap<i64, Arc<Routes>, RandomState>,
}

impl Shard {
    /// The link at `loc`, with its routes.
    #[inline]
    fn link(&self, loc: Loc) -> Option<LinkRef<'_>> {
        let mut link = self.arena.link(loc)?;
        if link.routed {
            link.routes = self.routes.get(&link.id);
        }
        Some(link)
    }

    #[inline]
    fn find(&self, hash: u64, code: &str) -> Option<Loc> {
        let arena = &self.arena;
        self.index
            .find(hash, |loc| arena.code(loc) == Some(code.as_bytes()))
    }

    /// Removes `code`'s entry, if any, counting its record as dead.
    fn remove(&mut self, hash: u64, code: &str) -> bool {
        let arena = &self.arena;
        match self
            .index
            .remove(hash, |loc| arena.code(loc) == Some(code.as_bytes()))
        {
            Some(loc) => {
                self.dead += arena.record_len(loc);
                if let Some(link) = arena.link(loc).filter(|l| l.routed) {
                    self.routes.remove(&link.id);
                }
                true
            }
            None => false,
        }
    }

    /// Adds an entry for a code known to be absent, unless the shard is out
    /// of chunk numbers even after compaction (beyond 4 GiB of records).
    ///
    /// Callers learn what changed from `index.len()`, which is the truth
    /// the link count is kept in line with.
    fn add(&mut self, state: &RandomState, hash: u64, code: &str, link: LinkRef<'_>) {
        let loc = match self.arena.append(code, link) {
            Some(loc) => loc,
            None if self.dead > 0 => {
                self.compact(state);
                match self.arena.append(code, link) {
                    Some(loc) => loc,
                    None => return,
                }
            }
            None => return,
        };
        self.index.insert(hash, loc, rehash(state, &self.arena));
        if let Some(routes) = link.routes {
            self.routes.insert(link.id, Arc::clone(routes));
        }
    }

    /// Compacts when dead bytes exceed half the arena.
    fn maybe_compact(&mut self, state: &RandomState) {
        if self.dead > self.arena.used / 2 {
            self.compact(state);
        }
    }

    /// Copies the live records into fresh chunks and frees the old ones;
    /// shrinks the index if it is mostly empty. A record that cannot be
    /// copied (only if the shard ran out of chunk numbers) is dropped.
    fn compact(&mut self, state: &RandomState) {
        let old = &self.arena;
        let mut fresh = Arena::default();
        self.index.retain(
            |loc| match old.record(*loc).and_then(|record| fresh.copy(record)) {
                Some(new) => {
                    *loc = new;
                    true
                }
                None => false,
            },
            rehash(state, old),
        );
        self.arena = fresh;
        self.dead = 0;
        self.index.shrink(rehash(state, &self.arena));
        // Routes of links shed since are dropped with their records.
        if !self.routes.is_empty() {
            let mut live = std::collections::HashSet::new();
            for loc in self.index.locs() {
                if let Some(l) = self.arena.link(loc).filter(|l| l.routed) {
                    live.insert(l.id);
                }
            }
            self.routes.retain(|id, _| live.contains(id));
        }
    }
}

/// An entry's hash, recomputed from the code in its record.
fn rehash<'a>(state: &'a RandomState, arena: &'a Arena) -> impl Fn(Loc) -> u64 + 'a {
    move |loc| arena.code(loc).map_or(0, |code| hash_code(state, code))
}

/// A shard on cache lines of its own, so that readers of one shard do not
/// slow down those of its neighbours.
#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedShard(RwLock<Shard>);

const SHARDS: usize = 8;
/// The hash bits that pick the shard start here: above the bucket bits of
/// any index that fits in memory, below the tag byte.
const SHARD_SHIFT: u32 = 48;

fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// The links, sharded, with an exact bound.
#[derive(Debug)]
struct Links {
    shards: Box<[PaddedShard]>,
    state: RandomState,
    /// Links stored, plus at most one reserved by each insert in progress.
    len: AtomicUsize,
    max: usize,
    /// Held by the one writer shedding links.
    shedding: Mutex<()>,
    /// Times the cache was full; also rotates the shard shedding starts at.
    evictions: AtomicUsize,
    /// Bumped after every change to a link's content (insert, invalidate);
    /// a thread's memo entries are good only for the generation they were
    /// taken in. On its own cache line: it is read on every hit and written
    /// only when links change.
    generation: Padded<AtomicU64>,
    /// Tells this cache's memo entries from another cache's.
    instance: u64,
}

/// Slots of a thread's memo of links it served lately.
const MEMO_SLOTS: usize = 32;

/// A memo slot: a link this thread served twice in a row from this slot,
/// copied out of the cache.
#[derive(Debug)]
struct MemoEntry {
    instance: u64,
    generation: u64,
    hash: u64,
    code: Box<str>,
    link: CachedLink,
}

/// A slot of the memo: the entry, and the hash of the last code looked up
/// through it that missed (a code is copied in when it misses twice in a
/// row, so traffic spread over many links does not copy on every hit).
#[derive(Debug, Default)]
struct MemoSlot {
    entry: Option<MemoEntry>,
    candidate: u64,
}

thread_local! {
    /// Every thread's own memo: a hit costs no lock and no write to memory
    /// another core reads, where a hit in the cache takes its shard's read
    /// lock, which on a link both cores serve is a cache line they trade on
    /// every request.
    static MEMO: RefCell<Vec<MemoSlot>> = const { RefCell::new(Vec::new()) };
}

impl Links {
    fn new(max: usize) -> Links {
        Links {
            shards: (0..SHARDS).map(|_| PaddedShard::default()).collect(),
            state: RandomState::default(),
            len: AtomicUsize::new(0),
            max,
            shedding: Mutex::new(()),
            evictions: AtomicUsize::new(0),
            generation: Padded(AtomicU64::new(0)),
            instance: {
                static INSTANCES: AtomicU64 = AtomicU64::new(0);
                INSTANCES.fetch_add(1, Ordering::Relaxed)
            },
        }
    }

    /// A link's content changed: every memo entry taken before is stale.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn hash(&self, code: &str) -> u64 {
        hash_code(&self.state, code.as_bytes())
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[(hash >> SHARD_SHIFT) as usize & (SHARDS - 1)].0
    }

    fn get<R>(&self, code: &str, f: impl FnOnce(LinkRef<'_>) -> R) -> Option<R> {
        let hash = self.hash(code);
        // Read before the lookup: a change after this makes a copy taken
        // below stale, never current.
        let generation = self.generation.load(Ordering::Acquire);
        let slot = hash as usize % MEMO_SLOTS;
        let mut f = Some(f);
        let memo_hit = MEMO
            .try_with(|memo| {
                // Not re-entered (`f` may not touch this cache), but a
                // failed borrow only means no memo.
                let memo = memo.try_borrow().ok()?;
                let entry = memo.get(slot)?.entry.as_ref()?;
                let fresh = entry.instance == self.instance
                    && entry.generation == generation
                    && entry.hash == hash
                    && &*entry.code == code;
                fresh.then(|| f.take().map(|f| f(entry.link.as_ref())))?
            })
            .ok()
            .flatten();
        if memo_hit.is_some() {
            return memo_hit;
        }
        let f = f?;
        let shard = read(self.shard(hash));
        let loc = shard.find(hash, code)?;
        let link = shard.link(loc)?;
        self.remember(slot, hash, generation, code, link);
        Some(f(link))
    }

    /// Copies a link into this thread's memo slot if the slot's last miss
    /// was the same code.
    fn remember(&self, slot: usize, hash: u64, generation: u64, code: &str, link: LinkRef<'_>) {
        let _ = MEMO.try_with(|memo| {
            let Ok(mut memo) = memo.try_borrow_mut() else {
                return;
            };
            if memo.is_empty() {
                memo.resize_with(MEMO_SLOTS, MemoSlot::default);
            }
            let Some(s) = memo.get_mut(slot) else {
                return;
            };
            if s.candidate != hash {
                s.candidate = hash;
                return;
            }
            s.entry = Some(MemoEntry {
                instance: self.instance,
                generation,
                hash,
                code: code.into(),
                link: CachedLink::from(link),
            });
        });
    }

    fn insert(&self, code: &str, link: LinkRef<'_>) {
        let hash = self.hash(code);
        loop {
            {
                let mut shard = write(self.shard(hash));
                // An overwrite reuses the old entry's place in the count.
                if shard.remove(hash, code) || self.try_reserve() {
                    let counted = shard.index.len() + 1;
                    shard.add(&self.state, hash, code, link);
                    self.changed();
                    shard.maybe_compact(&self.state);
                    // Normally 0: the count stays exact if a record could
                    // not be stored.
                    let unused = counted - shard.index.len();
                    if unused > 0 {
                        self.len.fetch_sub(unused, Ordering::Relaxed);
                    }
                    return;
                }
            }
            // Full: make room, with no shard locked.
            if !self.shed() {
                return;
            }
        }
    }

    fn invalidate(&self, code: &str) {
        let hash = self.hash(code);
        let mut shard = write(self.shard(hash));
        let before = shard.index.len();
        // Even if the code is not cached (evicted): a thread's memo may
        // still hold it.
        self.changed();
        if shard.remove(hash, code) {
            shard.maybe_compact(&self.state);
            self.len
                .fetch_sub(before - shard.index.len(), Ordering::Relaxed);
        }
    }

    fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = write(&shard.0);
            // With the shard locked, as in `invalidate`: no memo copy of
            // what it held can be taken at the new generation.
            self.changed();
            let dropped = shard.index.len();
            *shard = Shard::default();
            self.len.fetch_sub(dropped, Ordering::Relaxed);
        }
    }

    /// Counts one more link if that stays within the bound.
    fn try_reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Sheds about an eighth of the links (at least one), spread over the
    /// shards, unless another writer just did. `false` if nothing can ever
    /// be cached (`max` is 0).
    fn shed(&self) -> bool {
        if self.max == 0 {
            return false;
        }
        let _shedding = self.shedding.lock().unwrap_or_else(PoisonError::into_inner);
        if self.len.load(Ordering::Relaxed) < self.max {
            return true;
        }
        let start = self.evictions.fetch_add(1, Ordering::Relaxed);
        // Counting from 7 removes the first link seen, then every eighth.
        let mut seen = 7usize;
        for k in 0..SHARDS {
            let mut guard = write(&self.shards[start.wrapping_add(k) & (SHARDS - 1)].0);
            let shard = &mut *guard;
            let before = shard.index.len();
            let (arena, dead, routes) = (&shard.arena, &mut shard.dead, &mut shard.routes);
            shard.index.retain(
                |&mut loc| {
                    seen += 1;
                    if seen.is_multiple_of(8) {
                        *dead += arena.record_len(loc);
                        // A shed link's routes go with it, not at the next
                        // compaction: they are most of a routed link's memory.
                        if let Some(l) = arena.link(loc).filter(|l| l.routed) {
                            routes.remove(&l.id);
                        }
                        false
                    } else {
                        true
                    }
                },
                rehash(&self.state, arena),
            );
            shard.maybe_compact(&self.state);
            self.len
                .fetch_sub(before - shard.index.len(), Ordering::Relaxed);
        }
        true
    }
}

/// A dashmap with a size bound. Keys (link codes, URLs) are stored inline
/// when short, so comparing one needs no pointer chase.
#[derive(Debug)]
struct Bounded<V> {
    map: DashMap<CompactString, V, RandomState>,
    max: usize,
    evictions: AtomicUsize,
}

impl<V> Bounded<V> {
    fn new(max: usize) -> Self {
        Bounded {
            map: DashMap::with_hasher(RandomState::default()),
            max,
            evictions: AtomicUsize::new(0),
        }
    }

    fn insert(&self, key: &str, value: V, clear_when_full: bool) {
        if self.map.len() >= self.max && !self.map.contains_key(key) {
            if clear_when_full {
                self.map.clear();
            } else {
                // Shed about an eighth, spread over the map.
                let mut n = 0usize;
                self.map.retain(|_, _| {
                    n += 1;
                    !n.is_multiple_of(8)
                });
            }
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        self.map.insert(CompactString::from(key), value);
    }
}

/// Links by code, and unknown codes.
#[derive(Debug)]
pub struct LinkCache {
    links: Links,
    missing: Bounded<()>,
}

impl LinkCache {
    /// A cache holding at most `max_links` links and `max_missing` unknown codes.
    pub fn new(max_links: usize, max_missing: usize) -> LinkCache {
        LinkCache {
            links: Links::new(max_links),
            missing: Bounded::new(max_missing),
        }
    }

    /// Looks a code up and, on a hit, runs `f` on the link while its shard
    /// is read-locked or the thread's memo borrowed (so `f` must not touch
    /// this cache). A hit allocates nothing, except when it copies a link
    /// into the memo.
    pub fn get<R>(&self, code: &str, f: impl FnOnce(LinkRef<'_>) -> R) -> Lookup<R> {
        if let Some(r) = self.links.get(code, f) {
            return Lookup::Hit(r);
        }
        if self.missing.map.contains_key(code) {
            return Lookup::Missing;
        }
        Lookup::Unknown
    }

    /// Caches a link.
    pub fn insert(&self, code: &str, link: CachedLink) {
        self.missing.map.remove(code);
        self.links.insert(code, link.as_ref());
    }

    /// Remembers that a code does not exist.
    pub fn insert_missing(&self, code: &str) {
        self.missing.insert(code, (), true);
    }

    /// Forgets a code either way (after a change to the link).
    pub fn invalidate(&self, code: &str) {
        self.links.invalidate(code);
        self.missing.map.remove(code);
    }

    /// Forgets that a code was unknown (a link with it was just created).
    pub fn forget_missing(&self, code: &str) {
        self.missing.map.remove(code);
    }

    /// Forgets every link and every unknown code.
    pub fn clear(&self) {
        self.links.clear();
        self.missing.map.clear();
    }

    /// Links cached.
    pub fn len(&self) -> usize {
        self.links.len.load(Ordering::Relaxed)
    }

    /// Whether no link is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Unknown codes remembered.
    pub fn missing_len(&self) -> usize {
        self.missing.map.len()
    }

    /// Times the links and the unknown codes were full and shed entries
    /// (for metrics).
    pub fn evictions(&self) -> (u64, u64) {
        (
            self.links.evictions.load(Ordering::Relaxed) as u64,
            self.missing.evictions.load(Ordering::Relaxed) as u64,
        )
    }

    /// Bytes of memory of the links' records and index, heap and maps (for
    /// metrics; takes each shard's read lock in turn).
    pub fn memory_bytes(&self) -> usize {
        self.links
            .shards
            .iter()
            .map(|shard| {
                let shard = read(&shard.0);
                shard.arena.memory_bytes() + shard.index.memory_bytes()
            })
            .sum()
    }

    /// Of [`LinkCache::memory_bytes`], the bytes in anonymous maps (huge
    /// pages) rather than on the heap: a counting allocator does not see
    /// them.
    pub fn mapped_bytes(&self) -> usize {
        self.links
            .shards
            .iter()
            .map(|shard| {
                let shard = read(&shard.0);
                shard.arena.mapped_bytes() + shard.index.mapped_bytes()
            })
            .sum()
    }
}

/// Middleware-mode templates by normalised URL.
#[derive(Debug)]
pub struct GoCache {
    urls: Bounded<(CompactString, CachedLink)>,
}

impl GoCache {
    /// A cache of at most `max` URLs.
    pub fn new(max: usize) -> GoCache {
        GoCache {
            urls: Bounded::new(max),
        }
    }

    /// Runs `f` on the link code and cached link for a normalised URL, under
    /// the shard's read lock.
    pub fn get<R>(&self, key: &str, f: impl FnOnce(&str, LinkRef<'_>) -> R) -> Option<R> {
        self.urls
            .map
            .get(key)
            .map(|e| f(&e.value().0, e.value().1.as_ref()))
    }

    /// Caches the link made for a normalised URL.
    pub fn insert(&self, key: &str, code: &str, link: CachedLink) {
        self.urls.insert(key, (code.into(), link), false);
    }

    /// Forgets every URL whose link has one of these codes, in one pass.
    pub fn invalidate_codes(&self, codes: &std::collections::HashSet<&str>) {
        self.urls
            .map
            .retain(|_, (c, _)| !codes.contains(c.as_str()));
    }

    /// Forgets every URL.
    pub fn clear(&self) {
        self.urls.map.clear();
    }

    /// URLs cached.
    pub fn len(&self) -> usize {
        self.urls.map.len()
    }

    /// Whether no URL is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Times the cache was full and shed URLs (for metrics).
    pub fn evictions(&self) -> u64 {
        self.urls.evictions.load(Ordering::Relaxed) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::arena::{CHUNK, MAX_SHARED_RECORD};
    use super::*;

    fn link(id: i64) -> CachedLink {
        CachedLink::new(id, "https://t.test/?s=", "&x=1", false, 0)
    }

    fn id_of(cache: &LinkCache, code: &str) -> Lookup<i64> {
        cache.get(code, |l| l.id)
    }

    fn owned(cache: &LinkCache, code: &str) -> Lookup<CachedLink> {
        cache.get(code, |l| CachedLink::from(l))
    }

    /// Whether this thread's memo holds `code` for `cache`.
    fn memoized(cache: &LinkCache, code: &str) -> bool {
        MEMO.with_borrow(|memo| {
            memo.iter().any(|s| {
                s.entry
                    .as_ref()
                    .is_some_and(|e| e.instance == cache.links.instance && &*e.code == code)
            })
        })
    }

    #[test]
    fn a_link_looked_up_twice_is_served_from_the_memo_until_it_changes() {
        let cache = LinkCache::new(100, 10);
        cache.insert(
            "hot",
            CachedLink::new(1, "https://a.test/?s=", "", false, 0),
        );
        assert_eq!(id_of(&cache, "hot"), Lookup::Hit(1));
        assert!(!memoized(&cache, "hot"), "one lookup copies nothing");
        assert_eq!(id_of(&cache, "hot"), Lookup::Hit(1));
        assert!(memoized(&cache, "hot"), "the second one does");
        // A new template for the code: the memo copy is stale at once.
        cache.insert(
            "hot",
            CachedLink::new(1, "https://b.test/?s=", "", false, 0),
        );
        let prefix = |c: &LinkCache| c.get("hot", |l| l.prefix().to_owned());
        assert_eq!(prefix(&cache), Lookup::Hit("https://b.test/?s=".into()));
        assert_eq!(prefix(&cache), Lookup::Hit("https://b.test/?s=".into()));
        assert!(memoized(&cache, "hot"));
        // Disabled (invalidated, then stored again as disabled).
        cache.invalidate("hot");
        assert_eq!(id_of(&cache, "hot"), Lookup::Unknown);
        cache.insert("hot", CachedLink::new(1, "https://b.test/?s=", "", true, 0));
        assert_eq!(cache.get("hot", |l| l.disabled), Lookup::Hit(true));
    }

    #[test]
    fn an_evicted_link_invalidated_later_is_not_served_from_the_memo() {
        let cache = LinkCache::new(100, 10);
        cache.insert("x", link(7));
        assert_eq!(id_of(&cache, "x"), Lookup::Hit(7));
        assert_eq!(id_of(&cache, "x"), Lookup::Hit(7));
        assert!(memoized(&cache, "x"));
        // Dropped from the shards (as eviction does), then changed.
        let hash = cache.links.hash("x");
        assert!(write(cache.links.shard(hash)).remove(hash, "x"));
        cache.invalidate("x");
        assert_eq!(id_of(&cache, "x"), Lookup::Unknown);
    }

    #[test]
    fn clear_forgets_links_memo_copies_and_unknown_codes() {
        let cache = LinkCache::new(100, 10);
        for (i, code) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(code, link(i as i64));
        }
        assert_eq!(id_of(&cache, "a"), Lookup::Hit(0));
        assert_eq!(id_of(&cache, "a"), Lookup::Hit(0));
        assert!(memoized(&cache, "a"));
        cache.insert_missing("gone");
        assert_eq!(id_of(&cache, "gone"), Lookup::Missing);

        cache.clear();
        for code in ["a", "b", "c", "gone"] {
            assert_eq!(id_of(&cache, code), Lookup::Unknown, "{code}");
        }
        assert_eq!((cache.len(), indexed(&cache)), (0, 0));
        // Still a working cache, counting from zero.
        cache.insert("a", link(9));
        assert_eq!(id_of(&cache, "a"), Lookup::Hit(9));
        assert_eq!((cache.len(), indexed(&cache)), (1, 1));
    }

    #[test]
    fn memo_entries_of_one_cache_are_never_served_by_another() {
        let (a, b) = (LinkCache::new(10, 10), LinkCache::new(10, 10));
        a.insert("same", link(1));
        b.insert("same", link(2));
        for _ in 0..3 {
            assert_eq!(id_of(&a, "same"), Lookup::Hit(1));
            assert_eq!(id_of(&b, "same"), Lookup::Hit(2));
        }
        assert_eq!(id_of(&LinkCache::new(10, 10), "same"), Lookup::Unknown);
    }

    /// Links stored in the shards' indexes (not the counter).
    fn indexed(cache: &LinkCache) -> usize {
        cache
            .links
            .shards
            .iter()
            .map(|s| read(&s.0).index.len())
            .sum()
    }

    /// Checks every shard's arena accounting and bounds; returns the live
    /// record bytes and the chunk bytes allocated over all shards.
    fn check_arenas(cache: &LinkCache) -> (usize, usize) {
        cache
            .links
            .shards
            .iter()
            .fold((0, 0), |(live, allocated), s| {
                let s = read(&s.0);
                let l: usize = s.index.locs().map(|loc| s.arena.record_len(loc)).sum();
                assert_eq!(l, s.arena.used - s.dead, "the dead-byte count is exact");
                assert!(
                    s.dead <= s.arena.used / 2,
                    "compacted: {} of {}",
                    s.dead,
                    s.arena.used
                );
                // Shared chunks waste at most an eighth, the first few small
                // ones and the last one at most a chunk each.
                let a = s.arena.capacity();
                assert!(
                    a <= s.arena.used * 8 / 7 + 2 * CHUNK,
                    "{a} bytes allocated for {} used",
                    s.arena.used
                );
                (live + l, allocated + a)
            })
    }

    /// A deterministic template for version `v` of link `i`: lengths vary
    /// from empty to past the shared-record limit, and some are not ASCII.
    fn versioned(i: u64, v: u64) -> CachedLink {
        let x = (i * 31 + v * 17) % 23;
        let prefix = format!("https://{i}.test/v{v}/{}?s=", "é".repeat(x as usize * 3));
        let suffix = if x == 5 {
            "x".repeat(MAX_SHARED_RECORD + 100)
        } else {
            "&y".repeat(x as usize)
        };
        CachedLink::new(
            (i as i64) * 1000 - v as i64,
            &prefix,
            &suffix,
            v % 2 == 1,
            (i % 3) as u16,
        )
    }

    #[test]
    fn hit_missing_and_unknown() {
        let cache = LinkCache::new(10, 10);
        assert_eq!(id_of(&cache, "a"), Lookup::Unknown);
        cache.insert_missing("a");
        assert_eq!(id_of(&cache, "a"), Lookup::Missing);
        cache.insert("a", link(1));
        assert_eq!(
            cache.get("a", |l| (l.prefix().to_owned(), l.suffix().to_owned())),
            Lookup::Hit(("https://t.test/?s=".to_owned(), "&x=1".to_owned()))
        );
        cache.invalidate("a");
        assert_eq!(id_of(&cache, "a"), Lookup::Unknown);
        assert!(cache.is_empty());
    }

    #[test]
    fn every_field_reads_back() {
        let cache = LinkCache::new(10, 10);
        let cases = [
            CachedLink::new(i64::MIN, "", "", true, u16::MAX),
            CachedLink::new(i64::MAX, "https://a.test/?s=", "", false, 0),
            CachedLink::new(-1, "", "/tail", false, 7),
            CachedLink::new(42, "https://ü.test/ß?s=", "&q=日本", true, 300),
        ];
        for (n, l) in cases.iter().enumerate() {
            cache.insert(&format!("c{n}"), l.clone());
        }
        for (n, l) in cases.iter().enumerate() {
            assert_eq!(owned(&cache, &format!("c{n}")), Lookup::Hit(l.clone()));
        }
    }

    #[test]
    fn bounds_hold_under_many_inserts() {
        let cache = LinkCache::new(100, 50);
        for i in 0..10_000 {
            cache.insert(&format!("c{i}"), link(i));
            cache.insert_missing(&format!("m{i}"));
            assert!(cache.len() <= 100, "{}", cache.len());
        }
        assert_eq!(cache.len(), indexed(&cache));
        assert!(cache.len() > 80, "sheds about an eighth: {}", cache.len());
        assert!(cache.missing.map.len() <= 50);
        // The newest entries are always present.
        assert_eq!(id_of(&cache, "c9999"), Lookup::Hit(9999));
        assert_eq!(id_of(&cache, "m9999"), Lookup::Missing);
    }

    #[test]
    fn tiny_bounds_hold() {
        let cache = LinkCache::new(1, 1);
        cache.insert("a", link(1));
        cache.insert("b", link(2));
        assert_eq!(cache.len(), 1);
        assert_eq!(id_of(&cache, "a"), Lookup::Unknown);
        assert_eq!(id_of(&cache, "b"), Lookup::Hit(2));

        let none = LinkCache::new(0, 0);
        none.insert("a", link(1));
        assert_eq!(id_of(&none, "a"), Lookup::Unknown);
        assert!(none.is_empty());
    }

    #[test]
    fn overwrite_replaces_and_does_not_count_twice() {
        let cache = LinkCache::new(10, 10);
        cache.insert("a", link(1));
        cache.insert("a", CachedLink::new(2, "https://b.test/", "", true, 3));
        assert_eq!(cache.len(), 1);
        assert_eq!(
            owned(&cache, "a"),
            Lookup::Hit(CachedLink::new(2, "https://b.test/", "", true, 3))
        );
    }

    #[test]
    fn insert_forgets_the_code_was_missing() {
        let cache = LinkCache::new(10, 10);
        cache.insert_missing("a");
        cache.insert("a", link(1));
        cache.invalidate("a");
        assert_eq!(id_of(&cache, "a"), Lookup::Unknown);
    }

    #[test]
    fn long_codes_and_long_templates() {
        let cache = LinkCache::new(100, 10);
        let long_code = "k".repeat(70_000);
        let huge = "p".repeat(3 * CHUNK);
        let cases = [
            (long_code.clone(), link(1)),
            ("big".to_owned(), CachedLink::new(2, &huge, &huge, false, 1)),
            (
                "shared-limit".to_owned(),
                CachedLink::new(3, &"q".repeat(MAX_SHARED_RECORD - 40), "", false, 1),
            ),
            ("after".to_owned(), link(4)),
        ];
        for (code, l) in &cases {
            cache.insert(code, l.clone());
        }
        for (code, l) in &cases {
            assert_eq!(
                owned(&cache, code),
                Lookup::Hit(l.clone()),
                "{}",
                code.len()
            );
        }
        assert_eq!(id_of(&cache, &"k".repeat(69_999)), Lookup::Unknown);
    }

    #[test]
    fn churn_keeps_every_live_entry_exact_and_the_arena_bounded() {
        const N: u64 = 3_000;
        let cache = LinkCache::new(N as usize, 10);
        let mut version = vec![None::<u64>; N as usize];
        for round in 0..12u64 {
            for i in 0..N {
                let code = format!("code-{i}");
                match (i + round) % 5 {
                    0 => {
                        cache.invalidate(&code);
                        version[i as usize] = None;
                    }
                    1 if version[i as usize].is_some() => {}
                    _ => {
                        cache.insert(&code, versioned(i, round));
                        version[i as usize] = Some(round);
                    }
                }
            }
            let live = version.iter().flatten().count();
            assert_eq!(cache.len(), live);
            assert_eq!(indexed(&cache), live);
            for i in 0..N {
                let code = format!("code-{i}");
                let want = match version[i as usize] {
                    Some(v) => Lookup::Hit(versioned(i, v)),
                    None => Lookup::Unknown,
                };
                assert_eq!(owned(&cache, &code), want, "round {round}, {code}");
            }
            let (live_bytes, allocated) = check_arenas(&cache);
            assert!(live_bytes > 0 && allocated >= live_bytes);
        }
        // Removing everything frees every chunk: the last removal in a shard
        // leaves only dead bytes, which compacts it to nothing.
        for i in 0..N {
            cache.invalidate(&format!("code-{i}"));
        }
        assert!(cache.is_empty());
        assert_eq!(indexed(&cache), 0);
        assert_eq!(check_arenas(&cache), (0, 0));
        let index_bytes: usize = cache
            .links
            .shards
            .iter()
            .map(|s| read(&s.0).index.allocated())
            .sum();
        assert_eq!(index_bytes, 0, "and every index");
    }

    #[test]
    fn concurrent_readers_and_writers_see_exact_links() {
        const WRITERS: u64 = 3;
        const PER_WRITER: u64 = 2_000;
        const ROUNDS: u64 = 4;
        let cache = LinkCache::new((WRITERS * PER_WRITER) as usize, 10);
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let cache = &cache;
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        for k in 0..PER_WRITER {
                            let i = w * PER_WRITER + k;
                            let code = format!("w{i}");
                            if round == ROUNDS - 1 && k.is_multiple_of(4) {
                                cache.invalidate(&code);
                            } else {
                                cache.insert(&code, versioned(i, round));
                            }
                        }
                    }
                });
            }
            for r in 0..2u64 {
                let cache = &cache;
                s.spawn(move || {
                    for pass in 0..20u64 {
                        for i in 0..WRITERS * PER_WRITER {
                            let i = (i * 7 + pass + r) % (WRITERS * PER_WRITER);
                            // Whatever version is read must be one that was
                            // written, whole.
                            if let Lookup::Hit(l) = owned(cache, &format!("w{i}")) {
                                assert!(
                                    (0..ROUNDS).any(|v| versioned(i, v) == l),
                                    "torn or foreign link for w{i}: {l:?}"
                                );
                            }
                        }
                    }
                });
            }
        });
        for i in 0..WRITERS * PER_WRITER {
            let want = if (i % PER_WRITER).is_multiple_of(4) {
                Lookup::Unknown
            } else {
                Lookup::Hit(versioned(i, ROUNDS - 1))
            };
            assert_eq!(owned(&cache, &format!("w{i}")), want, "w{i}");
        }
        assert_eq!(cache.len(), indexed(&cache));
        assert_eq!(cache.len() as u64, WRITERS * PER_WRITER * 3 / 4);
    }

    #[test]
    fn concurrent_inserts_beyond_the_bound_keep_it() {
        let cache = LinkCache::new(500, 10);
        std::thread::scope(|s| {
            for w in 0..4 {
                let cache = &cache;
                s.spawn(move || {
                    for i in 0..5_000 {
                        cache.insert(&format!("{w}-{i}"), link(i));
                        assert!(cache.len() <= 500);
                    }
                });
            }
        });
        assert!(cache.len() <= 500);
        assert!(cache.len() > 400, "{}", cache.len());
        assert_eq!(cache.len(), indexed(&cache));
    }

    #[test]
    fn go_cache_forgets_urls_of_a_changed_link() {
        let go = GoCache::new(10);
        go.insert("https://a.test/1", "code1", link(1));
        go.insert("https://a.test/2", "code2", link(2));
        go.invalidate_codes(&std::collections::HashSet::from(["code1"]));
        assert!(go.get("https://a.test/1", |_, _| ()).is_none());
        assert_eq!(
            go.get("https://a.test/2", |c, l| (
                c.to_owned(),
                CachedLink::from(l)
            )),
            Some(("code2".to_owned(), link(2)))
        );
    }
    #[test]
    fn routed_links_keep_their_routes_and_shed_ones_drop_them() {
        use crate::targeting::{BuiltTarget, Targeting, Why};
        let targeting = Targeting {
            rules: vec![
                serde_json::from_str(r#"{"country": "DE", "url": "https://de.test/"}"#)
                    .expect("rule"),
            ],
            rule_targets: vec![1],
            targets: vec![BuiltTarget {
                provider: "p".into(),
                destination: "https://de.test/".into(),
                marketplace: None,
                prefix: "https://de.test/?s=".into(),
                suffix: String::new(),
                why: Why::Rule,
            }],
            ..Default::default()
        };
        let routes = Arc::new(Routes::compile(&targeting, &|_, _| 0).expect("routes"));
        let cache = LinkCache::new(64, 8);
        for i in 0..256i64 {
            let link = CachedLink::new(i, "https://own.test/?s=", "", false, 0)
                .with_routes(Some(Arc::clone(&routes)));
            cache.insert(&format!("c{i}"), link);
        }
        let (mut cached, mut routed) = (0, 0);
        for shard in cache.links.shards.iter() {
            let shard = read(&shard.0);
            cached += shard.index.len();
            routed += shard.routes.len();
        }
        assert_eq!(cached, cache.len());
        // Every cached link has its routes; shed ones left none behind.
        assert_eq!(routed, cached, "routes of shed links kept");
        let mut served = 0;
        for i in 0..256i64 {
            if let Lookup::Hit(target) = cache.get(&format!("c{i}"), |l| {
                l.choose(Device::Desktop, Some(*b"DE"), || 0)
                    .prefix
                    .to_owned()
            }) {
                assert_eq!(target, "https://de.test/?s=");
                served += 1;
            }
        }
        assert_eq!(served, cached);
    }
}
