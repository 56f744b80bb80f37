//! A shard's index: record locations by hash, in cache-line buckets.
//!
//! hashbrown keeps its control bytes and its slots in two arrays, so a probe
//! over a table larger than the CPU caches misses twice (control group, then
//! slot) before the record itself. Here, as in Folly's F14, each 64-byte
//! bucket holds both: 12 one-byte tags, an overflow count and 12 `u32`
//! record locations. A hit costs one line of index and the record's line;
//! an unknown code usually costs the index line alone.
//!
//! * A tag is the hash's top byte (0 is taken to 1; 0 marks an empty slot).
//!   Bits 48–53 pick the shard and the low bits the home bucket, so the three
//!   never overlap. With 8-bit tags, one probe in ~20 compares a wrong record.
//! * An entry that finds its home bucket full goes to the next one with
//!   room, and every bucket it passed counts one more overflow. A lookup
//!   stops at the first bucket with no overflow: nothing whose probe started
//!   at or before it lies beyond it. Removal walks the same path back down.
//!   Counts saturate at 255 and then stay (lookups just probe further) until
//!   the next rebuild.
//! * The table grows (doubling, rehashing from the records' codes) past 10
//!   entries a bucket on average, so it is between 42% and 83% full: 6.4 to
//!   12.8 bytes an entry.
//! * The table is a [`Block`] of bytes: from 512 KiB, huge pages. A bucket
//!   is read and written as bytes (little-endian locations), which the
//!   compiler turns into plain loads: no `unsafe` cast of the map.

use super::block::Block;

/// Entries per bucket.
const SLOTS: usize = 12;
/// Where the overflow count sits in a bucket's head.
const OVERFLOW: usize = SLOTS;
/// The table grows beyond this many entries per bucket on average.
const MAX_PER_BUCKET: usize = 10;

/// 0x01 in each of the 12 tag bytes.
const LSB: u128 = 0x0101_0101_0101_0101_0101_0101;
/// 0x80 in each of the 12 tag bytes.
const MSB: u128 = LSB << 7;
/// The 12 tag bytes of a head.
const TAGS: u128 = (1 << (8 * SLOTS)) - 1;

/// Bytes of a bucket: one cache line.
const BUCKET: usize = 64;
/// Where a bucket's locations start.
const LOCS: usize = 16;

/// One bucket, read: bytes 0..12 a tag per slot, byte 12 the overflow
/// count, bytes 16..64 a little-endian `u32` location per slot.
#[derive(Debug, Clone, Copy)]
struct Bucket<'a>(&'a [u8; BUCKET]);

impl Bucket<'_> {
    #[inline]
    fn head(self) -> u128 {
        let mut head = [0; 16];
        head.copy_from_slice(&self.0[..16]);
        u128::from_le_bytes(head)
    }

    #[inline]
    fn tag(self, i: usize) -> u8 {
        self.0[i]
    }

    #[inline]
    fn overflow(self) -> u8 {
        self.0[OVERFLOW]
    }

    #[inline]
    fn loc(self, i: usize) -> u32 {
        let at = LOCS + 4 * i;
        u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }

    /// Slots that may hold `tag` (0: empty slots), as bit 8·i + 7 for slot
    /// i. Exact except that a match can flag the byte above it as well, so
    /// callers check the tag again.
    #[inline]
    fn candidates(self, tag: u8) -> u128 {
        let x = (self.head() & TAGS) ^ (LSB * u128::from(tag));
        x.wrapping_sub(LSB) & !x & MSB
    }

    /// The first empty slot.
    fn empty_slot(self) -> Option<usize> {
        let mut m = self.candidates(0);
        while m != 0 {
            let i = (m.trailing_zeros() / 8) as usize;
            if self.tag(i) == 0 {
                return Some(i);
            }
            m &= m - 1;
        }
        None
    }
}

fn set_loc(bucket: &mut [u8], i: usize, loc: u32) {
    bucket[LOCS + 4 * i..LOCS + 4 * i + 4].copy_from_slice(&loc.to_le_bytes());
}

#[inline]
fn tag_of(hash: u64) -> u8 {
    ((hash >> 56) as u8).max(1)
}

/// Record locations by hash. The index stores no keys: callers pass `eq`
/// to recognise the entry they want, and `rehash` to recompute an entry's
/// hash from its record when the table is rebuilt.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// A power of two of buckets, or none before the first insert; in huge
    /// pages when large (see [`Block`]).
    table: Option<Block>,
    /// Buckets in the table.
    buckets: usize,
    len: usize,
}

impl Index {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of memory held by the table.
    pub(super) fn memory_bytes(&self) -> usize {
        self.table.as_ref().map_or(0, Block::footprint)
    }

    /// Bytes of the table that are in a map (see [`Block`]).
    pub(super) fn mapped_bytes(&self) -> usize {
        self.table
            .as_ref()
            .filter(|t| t.is_mapped())
            .map_or(0, Block::footprint)
    }

    #[inline]
    fn bucket(&self, b: usize) -> Bucket<'_> {
        let bytes = self.table.as_ref().map_or(&[][..], Block::bytes);
        // A bucket number is always below `buckets`; an empty table has none.
        Bucket(
            bytes
                .get(b * BUCKET..)
                .and_then(<[u8]>::first_chunk)
                .unwrap_or(&[0; BUCKET]),
        )
    }

    #[inline]
    fn bucket_mut(&mut self, b: usize) -> &mut [u8] {
        match &mut self.table {
            Some(table) => &mut table.bytes_mut()[b * BUCKET..(b + 1) * BUCKET],
            None => &mut [],
        }
    }

    /// The location of the entry with this hash for which `eq` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(hash, eq).map(|(b, i)| self.bucket(b).loc(i))
    }

    /// Bucket and slot of the entry with this hash for which `eq` holds.
    #[inline]
    fn position(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<(usize, usize)> {
        let mask = self.buckets.checked_sub(1)?;
        let tag = tag_of(hash);
        let mut b = hash as usize & mask;
        // Every bucket at most once, even if saturated counts say go on.
        for _ in 0..self.buckets {
            let bucket = self.bucket(b);
            let mut m = bucket.candidates(tag);
            while m != 0 {
                let i = (m.trailing_zeros() / 8) as usize;
                if bucket.tag(i) == tag && eq(bucket.loc(i)) {
                    return Some((b, i));
                }
                m &= m - 1;
            }
            if bucket.overflow() == 0 {
                return None;
            }
            b = (b + 1) & mask;
        }
        None
    }

    /// Removes the entry with this hash for which `eq` holds; its location.
    pub(super) fn remove(&mut self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let (b, i) = self.position(hash, eq)?;
        let loc = self.bucket(b).loc(i);
        self.clear(hash, b, i);
        Some(loc)
    }

    /// Empties slot `i` of bucket `b`, holding an entry with this hash, and
    /// takes its passage off the overflow counts on its way from home.
    fn clear(&mut self, hash: u64, b: usize, i: usize) {
        let mask = self.buckets - 1;
        self.bucket_mut(b)[i] = 0;
        self.len -= 1;
        let mut p = hash as usize & mask;
        while p != b {
            let count = &mut self.bucket_mut(p)[OVERFLOW];
            if *count < u8::MAX {
                *count = count.saturating_sub(1);
            }
            p = (p + 1) & mask;
        }
    }

    /// Adds an entry the caller knows is absent, growing the table first if
    /// it is full enough.
    pub(super) fn insert(&mut self, hash: u64, loc: u32, rehash: impl Fn(u32) -> u64) {
        if self.len >= self.buckets * MAX_PER_BUCKET {
            self.rebuild((self.buckets * 2).max(1), rehash);
        }
        self.place(hash, loc);
    }

    /// Puts an entry in the first slot free from its home on. The table
    /// must have a free slot.
    fn place(&mut self, hash: u64, loc: u32) {
        let mask = self.buckets - 1;
        let mut b = hash as usize & mask;
        loop {
            if let Some(i) = self.bucket(b).empty_slot() {
                let bucket = self.bucket_mut(b);
                bucket[i] = tag_of(hash);
                set_loc(bucket, i, loc);
                self.len += 1;
                return;
            }
            let count = &mut self.bucket_mut(b)[OVERFLOW];
            *count = count.saturating_add(1);
            b = (b + 1) & mask;
        }
    }

    /// Moves every entry into a table of `buckets` buckets.
    fn rebuild(&mut self, buckets: usize, rehash: impl Fn(u32) -> u64) {
        let old = self.table.replace(Block::zeroed(buckets * BUCKET));
        let old_buckets = std::mem::replace(&mut self.buckets, buckets);
        self.len = 0;
        let Some(old) = old else { return };
        for line in old.bytes().chunks_exact(BUCKET).take(old_buckets) {
            let bucket = Bucket(line.first_chunk().unwrap_or(&[0; BUCKET]));
            for i in 0..SLOTS {
                if bucket.tag(i) != 0 {
                    let loc = bucket.loc(i);
                    self.place(rehash(loc), loc);
                }
            }
        }
    }

    /// Rebuilds a table less than a quarter full at the size its entries
    /// need (or frees it when empty).
    pub(super) fn shrink(&mut self, rehash: impl Fn(u32) -> u64) {
        let needed = self.len.div_ceil(MAX_PER_BUCKET).next_power_of_two();
        if self.len == 0 {
            self.table = None;
            self.buckets = 0;
        } else if self.buckets > 4 * needed {
            self.rebuild(needed, rehash);
        }
    }

    /// Keeps the entries for which `keep` holds; `keep` may change an
    /// entry's location. `rehash` gives a dropped entry's hash (from its
    /// location as it was).
    pub(super) fn retain(
        &mut self,
        mut keep: impl FnMut(&mut u32) -> bool,
        rehash: impl Fn(u32) -> u64,
    ) {
        for b in 0..self.buckets {
            for i in 0..SLOTS {
                let bucket = self.bucket(b);
                if bucket.tag(i) == 0 {
                    continue;
                }
                let loc = bucket.loc(i);
                let mut new = loc;
                if keep(&mut new) {
                    if new != loc {
                        set_loc(self.bucket_mut(b), i, new);
                    }
                } else {
                    self.clear(rehash(loc), b, i);
                }
            }
        }
    }

    /// Every entry's location.
    pub(super) fn locs(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.buckets).flat_map(move |b| {
            let bucket = self.bucket(b);
            (0..SLOTS)
                .filter(move |&i| bucket.tag(i) != 0)
                .map(move |i| bucket.loc(i))
        })
    }

    /// Bytes allocated.
    #[cfg(test)]
    pub(super) fn allocated(&self) -> usize {
        self.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn candidates_flag_every_match() {
        let mut line = [0u8; BUCKET];
        line[..SLOTS].copy_from_slice(&[5, 0, 5, 6, 1, 5, 0, 0, 5, 9, 5, 4]);
        line[OVERFLOW] = 5;
        set_loc(&mut line, 11, 0xdead_beef);
        let bucket = Bucket(&line);
        assert_eq!(bucket.loc(11), 0xdead_beef);
        assert_eq!(bucket.overflow(), 5);
        let slots = |tag: u8| {
            let mut m = bucket.candidates(tag);
            let mut found = Vec::new();
            while m != 0 {
                let i = (m.trailing_zeros() / 8) as usize;
                if bucket.tag(i) == tag {
                    found.push(i);
                }
                m &= m - 1;
            }
            found
        };
        assert_eq!(slots(5), [0, 2, 5, 8, 10]);
        assert_eq!(slots(0), [1, 6, 7]);
        assert_eq!(slots(4), [11]);
        assert_eq!(slots(7), Vec::<usize>::new());
        assert_eq!(bucket.empty_slot(), Some(1));
    }

    /// Hashes for key `k` from a "hash function" with few distinct home
    /// buckets and tags, so that chains, overflow counts and tag collisions
    /// are the common case. The key is the location itself.
    fn bad_hash(k: u32) -> u64 {
        (u64::from(k % 7) << 56) | u64::from(k % 3)
    }

    #[test]
    fn colliding_entries_are_found_and_removed_exactly() {
        let mut index = Index::default();
        let mut model: HashMap<u32, ()> = HashMap::new();
        // Inserts, removals and re-inserts in an order that mixes them.
        for round in 0..6u32 {
            for k in 0..400u32 {
                let key = k * 7 + round % 2;
                let present = model.contains_key(&key);
                if (k + round) % 3 == 0 && present {
                    assert_eq!(index.remove(bad_hash(key), |l| l == key), Some(key));
                    model.remove(&key);
                } else if !present {
                    index.insert(bad_hash(key), key, bad_hash);
                    model.insert(key, ());
                }
            }
            assert_eq!(index.len(), model.len());
            for key in 0..3000u32 {
                let want = model.contains_key(&key).then_some(key);
                assert_eq!(index.find(bad_hash(key), |l| l == key), want, "{key}");
            }
        }
        // Retain drops some and relocates the rest.
        index.retain(
            |loc| {
                if *loc % 2 == 0 {
                    false
                } else {
                    *loc += 1_000_000;
                    true
                }
            },
            bad_hash,
        );
        model.retain(|k, _| k % 2 == 1);
        assert_eq!(index.len(), model.len());
        for &key in model.keys() {
            let moved = key + 1_000_000;
            assert_eq!(index.find(bad_hash(key), |l| l == moved), Some(moved));
        }
        let mut locs: Vec<u32> = index.locs().collect();
        locs.sort_unstable();
        let mut want: Vec<u32> = model.keys().map(|k| k + 1_000_000).collect();
        want.sort_unstable();
        assert_eq!(locs, want);
    }

    #[test]
    fn removing_everything_resets_the_overflow_counts() {
        let mut index = Index::default();
        // Ten buckets' worth of entries with one home bucket.
        let same = |_: u32| 0x0100_0000_0000_0000u64;
        for k in 0..100 {
            index.insert(same(k), k, same);
        }
        assert!(index.bucket(0).overflow() > 0);
        for k in 0..100 {
            assert_eq!(index.remove(same(k), |l| l == k), Some(k));
        }
        assert_eq!(index.len(), 0);
        assert!((0..index.buckets).all(|b| index.bucket(b).head() == 0));
        index.shrink(same);
        assert_eq!(index.allocated(), 0);
    }

    #[test]
    fn a_miss_ends_even_when_every_count_is_saturated() {
        let mut index = Index::default();
        index.insert(1, 1, u64::from);
        for b in 0..index.buckets {
            index.bucket_mut(b)[OVERFLOW] = u8::MAX;
        }
        assert_eq!(index.find(2, |l| l == 2), None);
        assert_eq!(index.find(1, |l| l == 1), Some(1));
    }

    #[test]
    fn a_large_table_is_mapped_and_finds_every_entry() {
        let mut index = Index::default();
        let hash = |k: u32| u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        const N: u32 = 100_000;
        for k in 0..N {
            index.insert(hash(k), k, hash);
        }
        // 16384 buckets of 64 bytes: 1 MiB, in one 2 MiB map unless the
        // kernel refused it.
        assert_eq!(index.buckets, 16_384);
        let mapped = index.mapped_bytes();
        assert!(mapped == 0 || mapped == 2 << 20, "{mapped}");
        assert_eq!(index.memory_bytes(), mapped.max((1 << 20) + 63));
        for k in 0..N {
            assert_eq!(index.find(hash(k), |l| l == k), Some(k));
        }
        assert_eq!(index.find(hash(N), |l| l == N), None);
    }
}
