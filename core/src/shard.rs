//! Per-thread shards for state the redirect path writes on every request.
//!
//! A counter or queue that every request updates is a cache line that both
//! cores fight over: each update waits for the line to come over from the
//! other core. Splitting such state into [`SHARDS`] cache-line-aligned
//! copies, one picked per thread, keeps each core on its own lines; readers
//! (a metrics scrape, the click-log writer) sum or drain every shard.
//!
//! A thread takes the next shard index the first time it asks, so the
//! runtime's worker threads (started together) get distinct shards. Threads
//! beyond [`SHARDS`] share: shards stay correct under sharing (they hold
//! atomics or locks), only slower.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many shards each sharded structure has.
pub const SHARDS: usize = 16;

/// The shard index of the calling thread, in `0..SHARDS`.
#[inline]
pub fn index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let mut v = i.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            i.set(v);
        }
        v
    })
}

/// A value aligned to (and padded out to) 128 bytes: two 64-byte cache
/// lines, as the adjacent-line prefetcher of x86 cores pulls pairs.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One `T` per shard.
#[derive(Debug)]
pub struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

impl<T> Sharded<T> {
    /// [`SHARDS`] values made by `make`.
    pub fn new(mut make: impl FnMut() -> T) -> Sharded<T> {
        Sharded {
            shards: (0..SHARDS).map(|_| Padded(make())).collect(),
        }
    }

    /// The calling thread's shard.
    #[inline]
    pub fn local(&self) -> &T {
        &self.shards[index()]
    }

    /// Shard `i` (an index from [`index`]), for an update that must undo
    /// one made earlier, possibly on another thread.
    #[inline]
    pub fn get(&self, i: usize) -> &T {
        &self.shards[i % SHARDS]
    }

    /// Every shard, for readers that sum or drain them.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|p| &p.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn threads_get_shards_in_range_and_sums_see_every_update() {
        let counts = Sharded::new(|| AtomicU64::new(0));
        std::thread::scope(|s| {
            for _ in 0..(SHARDS + 4) {
                s.spawn(|| {
                    assert!(index() < SHARDS);
                    assert_eq!(index(), index(), "a thread keeps its shard");
                    for _ in 0..1000 {
                        counts.local().fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let total: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, (SHARDS as u64 + 4) * 1000);
        assert!(
            counts
                .iter()
                .filter(|c| c.load(Ordering::Relaxed) > 0)
                .count()
                > 1,
            "threads are spread over shards"
        );
        assert_eq!(std::mem::align_of::<Padded<u8>>(), 128);
    }
}
