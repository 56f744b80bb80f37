//! The link cache at 1,000, 100,000 and 1,000,000 links: lookup time should
//! stay flat as the cache grows, and memory should stay near the size of the
//! data.
//!
//! Memory per cached link is measured first, two ways, while filling a cache
//! of 1M links: the heap bytes the cache kept, counted by a counting global
//! allocator (`stats_alloc`: every allocation and free of the process), per
//! link and per link beyond its template strings (budget: 120 bytes); and
//! the growth of the process's resident set (pages the allocator touched,
//! its own overhead included), next to the bytes of the link data itself
//! (code + template).
//!
//! Lookups are measured under two access patterns:
//! * `uniform`: every link equally likely, in a scattered order. At 1M links
//!   the table is far larger than the CPU caches, so each lookup pays cache
//!   and TLB misses that no hash map avoids.
//! * `zipf`: rank k drawn with probability ∝ 1/k (s = 1, the usual model of
//!   click traffic), ranks spread over the links so hot links are not
//!   neighbours. The share of lookups that go to the top 1% is printed.
//!
//! Every lookup reads the link's template (its last byte), as a redirect
//! does when it copies the template into the `Location` header; reading the
//! id alone would flatter a map that keeps the template in a separate
//! allocation.
//!
//! Baselines, measured in the same run:
//! * `baseline_hashmap_*`: a plain single-threaded `HashMap<String, String>`
//!   (same hasher, foldhash) of the same codes and templates, doing the same
//!   lookups: the floor for any hash map, with no locking and no sharding.
//! * `baseline_array_read`: uniform scattered reads over a plain array as
//!   large as the cache's measured resident memory. These reads are
//!   independent, so the CPU keeps many in flight at once: this is the
//!   memory system's throughput, a floor no map reaches, since a lookup's
//!   misses depend on each other (index, then record).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use linkwright_core::cache::{CachedLink, LinkCache, Lookup};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes per link beyond its template strings: the budget.
const BYTES_PER_LINK_BUDGET: f64 = 120.0;

/// Bytes of resident memory per link the cache took, as measured by
/// [`memory`] (which runs first); sizes the array baseline.
static CACHE_BYTES_PER_LINK: AtomicU64 = AtomicU64::new(0);

/// 7-character codes like the generated ones, deterministic per index.
fn code(i: u64) -> [u8; 7] {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
    let mut out = [0u8; 7];
    for b in &mut out {
        *b = ALPHABET[(x % 62) as usize];
        x /= 62;
    }
    out
}

fn as_str(code: &[u8; 7]) -> &str {
    std::str::from_utf8(code).unwrap()
}

/// A 65-byte Amazon template prefix (the slot is at the end).
fn prefix(i: u64) -> String {
    format!("https://www.amazon.com/dp/B0{i:08}?tag=linkwright-20&ascsubtag=")
}

/// A pseudo-random index in `0..len` for the `i`-th access, so that neither
/// side of the comparison gets help from the hardware prefetcher.
fn scatter(i: u64, len: usize) -> usize {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % len as u64) as usize
}

/// splitmix64: a deterministic stream of well-mixed 64-bit values.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Length of the precomputed skewed access sequence (a power of two).
const ZIPF_LEN: usize = 1 << 16;

/// `ZIPF_LEN` link indices drawn from a Zipf-like distribution with s = 1
/// over `n` links: the continuous inverse CDF, rank = (n + 1)^u − 1 for a
/// uniform u, so P(rank ≤ k) = ln(k + 1) / ln(n + 1). Ranks map to links by
/// multiplication with a prime modulo `n` (a bijection, as the prime does
/// not divide a power of ten), so hot links are spread over the codes.
/// Precomputed, so the benchmark loop only reads it sequentially.
fn zipf_indices(n: u64) -> Vec<u32> {
    const PRIME: u64 = 1_000_003;
    let ln = ((n + 1) as f64).ln();
    (0..ZIPF_LEN as u64)
        .map(|i| {
            let u = (mix(i) >> 11) as f64 / (1u64 << 53) as f64;
            let rank = (((u * ln).exp() - 1.0) as u64).min(n - 1);
            ((rank * PRIME) % n) as u32
        })
        .collect()
}

/// The share of the sequence's lookups that go to the top 1% of ranks.
fn top_percent_share(n: u64) -> f64 {
    let top = (n / 100).max(1) as f64;
    ((top + 1.0).ln() / ((n + 1) as f64).ln()).min(1.0)
}

/// What every lookup computes: the id plus the template's last byte.
fn touch(id: i64, template: &str) -> i64 {
    id + i64::from(template.as_bytes().last().copied().unwrap_or(0))
}

/// Resident set size in bytes, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// The process's memory in transparent huge pages, from
/// /proc/self/smaps_rollup.
fn huge_pages() -> String {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "AnonHugePages: unknown".to_owned())
}

/// A cache of `n` links; codes are made on the fly so nothing else stays
/// allocated.
fn filled(n: u64) -> LinkCache {
    let cache = LinkCache::new(n as usize, 1024);
    for i in 0..n {
        cache.insert(
            as_str(&code(i)),
            CachedLink::new(i as i64, &prefix(i), "", false, 0),
        );
    }
    cache
}

/// The same links in a plain map: code → template.
fn plain_map(n: u64) -> HashMap<String, String, foldhash::fast::RandomState> {
    let mut map = HashMap::with_hasher(foldhash::fast::RandomState::default());
    for i in 0..n {
        map.insert(as_str(&code(i)).to_owned(), prefix(i));
    }
    map
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("link_cache_lookup");
    for n in [1_000u64, 100_000, 1_000_000] {
        let cache = filled(n);
        assert_eq!(cache.len() as u64, n);
        let map = plain_map(n);
        assert_eq!(map.len() as u64, n);
        // The codes to look up, in one contiguous buffer (a request's code is
        // in cache too).
        let codes: Vec<[u8; 7]> = (0..n).map(code).collect();
        let zipf = zipf_indices(n);
        println!(
            "zipf at {n} links: the top 1% of links get {:.0}% of lookups",
            100.0 * top_percent_share(n)
        );

        let mut i = 0u64;
        group.bench_with_input(BenchmarkId::new("cache_uniform", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                let code = &codes[scatter(i, codes.len())];
                match cache.get(black_box(as_str(code)), |l| touch(l.id, l.prefix())) {
                    Lookup::Hit(id) => black_box(id),
                    _ => unreachable!("every code is cached"),
                }
            })
        });
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("cache_zipf", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & (ZIPF_LEN - 1);
                let code = &codes[zipf[i] as usize];
                match cache.get(black_box(as_str(code)), |l| touch(l.id, l.prefix())) {
                    Lookup::Hit(id) => black_box(id),
                    _ => unreachable!("every code is cached"),
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("cache_unknown_code", n), &n, |b, _| {
            b.iter(|| black_box(cache.get(black_box("zzzzzzzzz"), |l| l.id)))
        });

        let mut i = 0u64;
        group.bench_with_input(
            BenchmarkId::new("baseline_hashmap_uniform", n),
            &n,
            |b, _| {
                b.iter(|| {
                    i += 1;
                    let code = &codes[scatter(i, codes.len())];
                    black_box(touch(0, map.get(black_box(as_str(code))).unwrap()))
                })
            },
        );
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("baseline_hashmap_zipf", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & (ZIPF_LEN - 1);
                let code = &codes[zipf[i] as usize];
                black_box(touch(0, map.get(black_box(as_str(code))).unwrap()))
            })
        });
        drop(map);

        // Whatever the cache costs beyond this is the map's own work; the
        // rest is the memory system.
        let per_link = CACHE_BYTES_PER_LINK.load(Ordering::Relaxed).max(8);
        let words: Vec<u64> = (0..n * per_link / 8).collect();
        let mut j = 0u64;
        group.bench_with_input(BenchmarkId::new("baseline_array_read", n), &n, |b, _| {
            b.iter(|| {
                j += 1;
                black_box(words[scatter(j, words.len())])
            })
        });
    }
    group.finish();
}

fn memory(_: &mut Criterion) {
    const N: u64 = 1_000_000;
    let before = rss_bytes();
    let region = Region::new(GLOBAL);
    let cache = filled(N);
    let change = region.change();
    let after = rss_bytes();
    println!("memory: {}", huge_pages());
    // What the cache kept: allocated, less freed, plus grown in place, plus
    // its anonymous maps (huge pages), which the allocator does not see.
    let mapped = cache.mapped_bytes() as i64;
    let heap = change.bytes_allocated as i64 - change.bytes_deallocated as i64
        + change.bytes_reallocated as i64
        + mapped;
    let templates: u64 = (0..N).map(|i| prefix(i).len() as u64).sum();
    let beyond = (heap - templates as i64) as f64 / N as f64;
    println!(
        "memory (counting allocator + maps): {} links cached keep {:.1} MiB of heap and maps \
         ({:.1} MiB mapped) = {:.1} bytes per link, \
         {beyond:.1} bytes per link beyond its {:.0} bytes of template: budget ≤ {BYTES_PER_LINK_BUDGET:.0}: {}",
        cache.len(),
        heap as f64 / (1024.0 * 1024.0),
        mapped as f64 / (1024.0 * 1024.0),
        heap as f64 / N as f64,
        templates as f64 / N as f64,
        if beyond <= BYTES_PER_LINK_BUDGET {
            "PASS"
        } else {
            "FAIL"
        },
    );
    let data: u64 = (0..N).map(|i| 7 + prefix(i).len() as u64).sum();
    let per_link = (after - before) as f64 / N as f64;
    let data_per_link = data as f64 / N as f64;
    CACHE_BYTES_PER_LINK.store(per_link.round() as u64, Ordering::Relaxed);
    println!(
        "memory: {} links cached; resident growth {:.1} MiB = {:.1} bytes per link \
         for {:.0} bytes of link data (code + template) = {:.2}x the data",
        cache.len(),
        (after - before) as f64 / (1024.0 * 1024.0),
        per_link,
        data_per_link,
        per_link / data_per_link,
    );
}

// Memory first, while the process has allocated nothing else.
criterion_group!(benches, memory, lookups);
criterion_main!(benches);
