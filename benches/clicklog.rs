//! The click writer's cost per click: `SqliteStore::insert_clicks` (what the
//! click log's background thread runs) on batches of 10,000 clicks into a
//! real database file, reported per click. On a 2-core machine every
//! microsecond of it is taken from the request path.
//!
//! The clicks are what the redirect path records for a human visitor: a
//! click ID from `ClickIdGenerator` (time-ordered, unique), one link, a
//! referrer host, a user-agent class (mostly desktop and mobile) and a
//! country. Each batch is new (click IDs are unique in the table), made
//! outside the timed part. The table grows through the run, as it does in
//! production; the WAL's automatic checkpoints land in the timed part, as
//! they do in the writer.
//!
//! `cargo bench --bench clicklog -- --warm-up-time 1 --measurement-time 5`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use linkwright_core::ClickIdGenerator;
use linkwright_core::backend::SqliteStore;
use linkwright_core::classify::UaClass;
use linkwright_core::store::{ClickEvent, ClickStore};

const BATCH: usize = 10_000;

/// `BATCH` human clicks on `link_id`, as the redirect path records them.
fn batch(ids: &ClickIdGenerator, link_id: i64, round: &mut u64) -> Vec<ClickEvent> {
    const REFERRERS: [Option<&str>; 4] = [
        Some("news.example"),
        Some("www.youtube.com"),
        None,
        Some("t.co"),
    ];
    const CLASSES: [UaClass; 4] = [
        UaClass::Desktop,
        UaClass::Mobile,
        UaClass::Mobile,
        UaClass::Tablet,
    ];
    const COUNTRIES: [Option<[u8; 2]>; 3] = [Some(*b"US"), Some(*b"DE"), None];
    *round += 1;
    (0..BATCH)
        .map(|i| {
            let id = ids.next_id();
            let k = i + *round as usize;
            ClickEvent {
                click_id: Some(id),
                link_id,
                at_ms: id.unix_ms(),
                bot: false,
                referrer_host: REFERRERS[k % 4].map(Into::into),
                ua_class: CLASSES[k % 4],
                country: COUNTRIES[k % 3],
                target: 0,
            }
        })
        .collect()
}

fn insert_clicks(c: &mut Criterion) {
    let dir =
        std::env::temp_dir().join(format!("linkwright-bench-clicklog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir).unwrap();
    let link_id = store.with_conn(|c| {
        c.execute(
            "INSERT INTO links (code, provider, input, destination, template_prefix, \
             template_suffix, subid_max_len, subid_encoding, marketplace, created_ms) \
             VALUES ('bench', 'amazon', 'https://www.amazon.com/dp/B08N5WRWNW', \
             'https://www.amazon.com/dp/B08N5WRWNW', \
             'https://www.amazon.com/dp/B08N5WRWNW?tag=linkwright-20&ascsubtag=', '', 64, \
             'url_safe', 'amazon.com', 0)",
            [],
        )
        .unwrap();
        c.last_insert_rowid()
    });
    let ids = ClickIdGenerator::new(1);
    let mut round = 0;

    let mut group = c.benchmark_group("clicklog");
    group.throughput(Throughput::Elements(BATCH as u64));
    // One iteration writes 10,000 rows (milliseconds): few samples suffice.
    group.sample_size(20);
    group.bench_function("insert_clicks_10k_human", |b| {
        b.iter_batched(
            || batch(&ids, link_id, &mut round),
            // Returned, so that freeing the events is not timed.
            |clicks| {
                store.insert_clicks(black_box(&clicks)).unwrap();
                clicks
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let rows: i64 = store.with_conn(|c| {
        c.query_row("SELECT count(*) FROM clicks", [], |r| r.get(0))
            .unwrap()
    });
    println!("clicks table at the end: {rows} rows");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, insert_clicks);
criterion_main!(benches);
