//! Click IDs: unique across instances without coordination, letters and
//! digits only, time-sortable, and short enough for every network's sub-ID.
//!
//! An ID is a 76-bit number written as exactly [`CLICK_ID_LEN`] base-62 digits
//! (`0-9A-Za-z`, in ASCII order, so string order is number order):
//!
//! ```text
//!  42 bits: milliseconds since 2024-01-01 UTC (until the year 2163)
//!  12 bits: node id (0..=4095), one per instance sharing a store
//!  22 bits: sequence within the millisecond (4,194,304 per ms)
//! ```
//!
//! The generator keeps `(milliseconds << 22) | sequence` in one atomic and
//! moves it forward with a compare-and-swap: the next value is the larger of
//! "previous + 1" and "now, sequence 0". It never repeats and never goes back,
//! even if the wall clock does; a burst of more than four million IDs in one
//! millisecond borrows from the next millisecond. Seeding it with the last
//! state of a previous run ([`ClickIdGenerator::with_floor`]) keeps IDs after
//! a restart sorting after those before.
//!
//! Threads take values from the atomic in blocks of [`LEASE`] and mint from
//! their block without touching shared memory, so two cores minting IDs do
//! not fight over the atomic's cache line on every click. A block is used
//! only within the millisecond it was taken in (a thread takes a new one when
//! the clock moves on), so every ID still carries the millisecond it was
//! minted in; within one millisecond, IDs of different threads interleave by
//! block. The values left in a block are never used by anyone: the atomic
//! always holds the last value of the newest block, which is also what is
//! persisted, so restarts stay safe.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Values a thread takes from a generator's atomic at a time.
const LEASE: u64 = 64;

/// Length of every click ID.
pub const CLICK_ID_LEN: usize = 13;
/// The largest node id.
pub const MAX_NODE_ID: u16 = (1 << NODE_BITS) - 1;

const NODE_BITS: u32 = 12;
const SEQ_BITS: u32 = 22;
const TIME_BITS: u32 = 42;
/// 2024-01-01T00:00:00Z in Unix milliseconds.
const EPOCH_MS: u64 = 1_704_067_200_000;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 62^7: splits the 76-bit value into two parts that each fit a `u64`.
const POW62_7: u128 = 3_521_614_606_208;

/// A click ID: 13 ASCII letters and digits, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClickId([u8; CLICK_ID_LEN]);

impl ClickId {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        // Only ALPHABET bytes are ever stored, which are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The ID's 13 ASCII bytes (the text of [`ClickId::as_str`], without
    /// the UTF-8 check).
    pub fn as_bytes(&self) -> &[u8; CLICK_ID_LEN] {
        &self.0
    }

    /// Parses an ID written by [`ClickId::as_str`].
    pub fn parse(s: &str) -> Option<ClickId> {
        let bytes: [u8; CLICK_ID_LEN] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(ClickId(bytes))
    }

    /// The number behind the ID.
    pub fn value(&self) -> u128 {
        self.0
            .iter()
            .fold(0u128, |acc, &b| acc * 62 + u128::from(digit(b)))
    }

    /// The node that minted the ID.
    pub fn node(&self) -> u16 {
        ((self.value() >> SEQ_BITS) & u128::from(MAX_NODE_ID)) as u16
    }

    /// When the ID was minted (to the millisecond).
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.unix_ms() as u64)
    }

    /// When the ID was minted, in Unix milliseconds (no clock read).
    pub fn unix_ms(&self) -> i64 {
        ((self.value() >> (SEQ_BITS + NODE_BITS)) as u64 + EPOCH_MS) as i64
    }

    /// The smallest ID minted at or after `unix_ms` (by any node): IDs sort
    /// by time, so "clicks since T" is a range of IDs from this one.
    pub fn first_at(unix_ms: i64) -> ClickId {
        let ms = u64::try_from(unix_ms)
            .unwrap_or(0)
            .saturating_sub(EPOCH_MS)
            .min((1 << TIME_BITS) - 1);
        ClickId::encode(u128::from(ms) << (SEQ_BITS + NODE_BITS))
    }

    fn encode(value: u128) -> ClickId {
        let mut out = [b'0'; CLICK_ID_LEN];
        // One 128-bit division, then 64-bit arithmetic for the 13 digits.
        let mut hi = (value / POW62_7) as u64;
        let mut lo = (value % POW62_7) as u64;
        for slot in out[CLICK_ID_LEN - 7..].iter_mut().rev() {
            *slot = ALPHABET[(lo % 62) as usize];
            lo /= 62;
        }
        for slot in out[..CLICK_ID_LEN - 7].iter_mut().rev() {
            *slot = ALPHABET[(hi % 62) as usize];
            hi /= 62;
        }
        ClickId(out)
    }
}

fn digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'A'..=b'Z' => b - b'A' + 10,
        _ => b - b'a' + 36,
    }
}

impl std::fmt::Debug for ClickId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClickId({})", self.as_str())
    }
}

impl std::fmt::Display for ClickId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Mints click IDs for one node. Cheap to share: one atomic, taken from in
/// blocks per thread.
#[derive(Debug)]
pub struct ClickIdGenerator {
    node: u16,
    /// `(ms since EPOCH_MS << SEQ_BITS) | sequence`: the last value handed
    /// out to any thread's block.
    state: AtomicU64,
    /// Tells this generator's blocks from another's in a thread's lease.
    instance: u64,
}

/// A thread's block of values, `next..end`, from generator `instance`.
#[derive(Debug, Clone, Copy)]
struct Lease {
    instance: u64,
    next: u64,
    end: u64,
}

thread_local! {
    static LEASED: Cell<Lease> = const { Cell::new(Lease { instance: 0, next: 0, end: 0 }) };
}

impl ClickIdGenerator {
    /// A generator for `node` (masked to 12 bits).
    pub fn new(node: u16) -> Self {
        Self::with_floor(node, 0)
    }

    /// A generator whose IDs all sort after `floor`, the [`state`](Self::state)
    /// saved by a previous run.
    pub fn with_floor(node: u16, floor: u64) -> Self {
        // 0 is no generator's, so a thread's empty lease matches none.
        static INSTANCES: AtomicU64 = AtomicU64::new(1);
        ClickIdGenerator {
            node: node & MAX_NODE_ID,
            state: AtomicU64::new(floor),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The node id.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// The last state handed out; persist it to seed [`with_floor`](Self::with_floor).
    pub fn state(&self) -> u64 {
        self.state.load(Ordering::Acquire)
    }

    /// Mints the next ID.
    pub fn next_id(&self) -> ClickId {
        self.mint().0
    }

    /// Mints the next ID, with the Unix millisecond it carries (what
    /// [`ClickId::unix_ms`] would decode from it, without decoding).
    pub fn mint(&self) -> (ClickId, i64) {
        let now = now_ms() << SEQ_BITS;
        let state = LEASED.with(|leased| {
            let mut lease = leased.get();
            let stale = lease.instance != self.instance
                || lease.next >= lease.end
                || lease.next >> SEQ_BITS < now >> SEQ_BITS;
            if stale {
                lease = self.lease(now);
            }
            let state = lease.next;
            lease.next = lease.next.saturating_add(1);
            leased.set(lease);
            state
        });
        let ms = u128::from(state >> SEQ_BITS) & ((1u128 << TIME_BITS) - 1);
        let seq = u128::from(state) & ((1u128 << SEQ_BITS) - 1);
        let value = (ms << (NODE_BITS + SEQ_BITS)) | (u128::from(self.node) << SEQ_BITS) | seq;
        (ClickId::encode(value), (ms as u64 + EPOCH_MS) as i64)
    }

    /// Takes the next [`LEASE`] values: from the larger of "previous + 1"
    /// and `now` (sequence 0). At the end of the 64-bit state (the year
    /// 2163, or a corrupt saved floor) the values stay at `u64::MAX`: IDs
    /// then repeat, but never panic on overflow nor wrap back to 2024.
    fn lease(&self, now: u64) -> Lease {
        let mut prev = self.state.load(Ordering::Relaxed);
        loop {
            let first = now.max(prev.saturating_add(1));
            let last = first.saturating_add(LEASE - 1);
            match self
                .state
                .compare_exchange_weak(prev, last, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Lease {
                        instance: self.instance,
                        next: first,
                        end: last.saturating_add(1),
                    };
                }
                Err(actual) => prev = actual,
            }
        }
    }
}

fn now_ms() -> u64 {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    unix_ms.saturating_sub(EPOCH_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Regression (found by the `click_id` fuzz target): a floor at the
    /// end of the state (a corrupt saved state) overflowed `prev + 1`, a
    /// panic in debug builds and IDs from 2024 again in release builds.
    #[test]
    fn generator_at_the_end_of_its_state_neither_panics_nor_goes_back() {
        for floor in [u64::MAX, u64::MAX - 1, u64::MAX - LEASE] {
            let g = ClickIdGenerator::with_floor(9, floor);
            let first = g.next_id();
            let mut last = first;
            for _ in 0..3 * LEASE {
                let id = g.next_id();
                assert!(id >= last, "{id} went back from {last}");
                assert_eq!(id.node(), 9);
                last = id;
            }
            assert_eq!(g.state(), u64::MAX);
            assert!(
                first.unix_ms() > 6_000_000_000_000,
                "{first} is not in 2163"
            );
        }
    }

    #[test]
    fn first_at_bounds_the_ids_minted_since() {
        let g = ClickIdGenerator::new(4095);
        let (id, at) = g.mint();
        assert!(ClickId::first_at(at) <= id, "{id} at {at}");
        assert!(ClickId::first_at(at + 1) > id, "{id} at {at}");
        assert_eq!(ClickId::first_at(at).unix_ms(), at);
        assert_eq!(ClickId::first_at(0).as_str(), "0000000000000");
    }

    #[test]
    fn ids_are_13_alphanumerics_carrying_their_node() {
        let g = ClickIdGenerator::new(4095);
        let id = g.next_id();
        assert_eq!(id.as_str().len(), CLICK_ID_LEN);
        assert!(
            id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()),
            "{id}"
        );
        assert_eq!(id.node(), 4095);
        assert_eq!(ClickId::parse(id.as_str()), Some(id));
        let age = SystemTime::now()
            .duration_since(id.time())
            .unwrap_or_default();
        assert!(age < Duration::from_secs(5), "id time is {age:?} ago");
    }

    #[test]
    fn encoding_round_trips_and_keeps_order_at_the_extremes() {
        let max = (1u128 << 76) - 1;
        for v in [0, 1, 61, 62, POW62_7 - 1, POW62_7, max / 3, max] {
            assert_eq!(ClickId::encode(v).value(), v, "value {v}");
        }
        assert!(ClickId::encode(max - 1) < ClickId::encode(max));
        assert!(ClickId::encode(POW62_7 - 1) < ClickId::encode(POW62_7));
    }

    #[test]
    fn hundred_thousand_ids_minted_on_four_threads_are_distinct_and_increasing_per_thread() {
        let g = ClickIdGenerator::new(7);
        let per_thread: Vec<Vec<ClickId>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..25_000).map(|_| g.next_id()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        for ids in &per_thread {
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ids go up within a thread"
            );
        }
        let all: HashSet<ClickId> = per_thread.iter().flatten().copied().collect();
        assert_eq!(all.len(), 100_000);
    }

    #[test]
    fn ids_after_a_restart_sort_after_those_before_even_with_the_clock_behind() {
        let before = ClickIdGenerator::new(1);
        let last = (0..1000).map(|_| before.next_id()).last().expect("ids");
        // A state far in the future models a clock that went back across the
        // restart: the floor still wins.
        let floor = before.state() + (10_000 << SEQ_BITS);
        let after = ClickIdGenerator::with_floor(1, floor);
        let first = after.next_id();
        assert!(first > last, "{first} must sort after {last}");
        assert!(after.state() > floor);
    }

    #[test]
    fn the_saved_state_covers_every_id_any_thread_minted() {
        // Threads mint from blocks; the state persisted for a restart must
        // still be at or past every ID handed out, with the clock unchanged.
        let g = &ClickIdGenerator::new(3);
        let minted: Vec<ClickId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| s.spawn(move || (0..(100 + i * 37)).map(|_| g.next_id()).max()))
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("thread"))
                .collect()
        });
        let newest = minted.iter().max().copied().expect("ids");
        let after = ClickIdGenerator::with_floor(3, g.state());
        assert!(after.next_id() > newest);
    }

    #[test]
    fn mint_reports_the_millisecond_the_id_carries() {
        let ids = ClickIdGenerator::with_floor(7, 5 << SEQ_BITS);
        for _ in 0..(3 * LEASE) {
            let (id, ms) = ids.mint();
            assert_eq!(ms, id.unix_ms());
        }
    }

    #[test]
    fn every_id_carries_the_millisecond_it_was_minted_in() {
        let g = ClickIdGenerator::new(5);
        for _ in 0..20_000 {
            let before = now_ms() + EPOCH_MS;
            let id = g.next_id();
            let after = now_ms() + EPOCH_MS;
            let ms = id.unix_ms() as u64;
            assert!(before <= ms && ms <= after, "{before} <= {ms} <= {after}");
        }
    }

    #[test]
    fn generators_used_by_one_thread_keep_their_blocks_apart() {
        let (a, b) = (ClickIdGenerator::new(9), ClickIdGenerator::new(9));
        let mut last = (None, None);
        for _ in 0..1000 {
            let (x, y) = (a.next_id(), b.next_id());
            assert!(last.0.is_none_or(|p| p < x) && last.1.is_none_or(|p| p < y));
            last = (Some(x), Some(y));
        }
        // Each generator's state covers its own IDs, not the other's.
        let (x, y) = (last.0.expect("a"), last.1.expect("b"));
        assert!(ClickIdGenerator::with_floor(9, a.state()).next_id() > x);
        assert!(ClickIdGenerator::with_floor(9, b.state()).next_id() > y);
    }

    #[test]
    fn different_nodes_never_collide_in_the_same_millisecond() {
        let a = ClickIdGenerator::with_floor(1, 0);
        let b = ClickIdGenerator::with_floor(2, 0);
        let ids: HashSet<ClickId> = (0..10_000)
            .flat_map(|_| [a.next_id(), b.next_id()])
            .collect();
        assert_eq!(ids.len(), 20_000);
    }
}
