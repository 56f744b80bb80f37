//! The link cache at 1,000, 100,000 and 1,000,000 links: lookup time should
//! stay flat as the cache grows, and memory should stay near the size of the
//! data. Memory per cached link is measured as the growth of the process's
//! resident set while filling the cache, divided by the number of links, and
//! printed next to the bytes of the link data itself (code + template).
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use linkwright_core::cache::{CachedLink, LinkCache, Lookup};
use std::hint::black_box;

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

fn prefix(i: u64) -> String {
    format!("https://www.amazon.com/dp/B0{i:08}?tag=linkwright-20&ascsubtag=")
}

/// A pseudo-random index in `0..len` for the `i`-th access, so that neither
/// side of the comparison gets help from the hardware prefetcher.
fn scatter(i: u64, len: usize) -> usize {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % len as u64) as usize
}

/// Resident set size in bytes, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
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

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("link_cache_lookup");
    for n in [1_000u64, 100_000, 1_000_000] {
        let cache = filled(n);
        assert_eq!(cache.len() as u64, n);
        // The codes to look up, in one contiguous buffer (a request's code is
        // in cache too), visited in a scattered order.
        let codes: Vec<[u8; 7]> = (0..n).map(code).collect();
        let mut i = 0u64;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                let i = scatter(i, codes.len());
                match cache.get(black_box(as_str(&codes[i])), |l| l.id) {
                    Lookup::Hit(id) => black_box(id),
                    _ => unreachable!("every code is cached"),
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("unknown_code", n), &n, |b, _| {
            b.iter(|| black_box(cache.get(black_box("zzzzzzzzz"), |l| l.id)))
        });
        // Baseline: the same scattered reads over a plain array as large as
        // the cache's resident memory (~141 bytes per link). Whatever the
        // cache costs beyond this is the map's own work; the rest is the
        // memory system (CPU cache and TLB misses), which no map avoids when
        // lookups spread evenly over a table larger than the CPU caches.
        let words: Vec<u64> = (0..n * 141 / 8).collect();
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
    let cache = filled(N);
    let after = rss_bytes();
    let data: u64 = (0..N).map(|i| 7 + prefix(i).len() as u64).sum();
    println!(
        "memory: {} links cached; resident growth {:.1} MiB = {:.0} bytes per link \
         (the link data itself, code + template, is {:.0} bytes per link)",
        cache.len(),
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) as f64 / N as f64,
        data as f64 / N as f64
    );
}

// Memory first, while the process has allocated nothing else.
criterion_group!(benches, memory, lookups);
criterion_main!(benches);
