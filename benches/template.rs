//! Template building through the plugin ABI (budget: ≤ 5 µs per URL) and the
//! per-click work: minting a click ID and filling the template.
//!
//! Plugins are loaded from the files cargo built next to this bench binary,
//! through the same host code the server uses.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use linkwright_core::config::Config;
use linkwright_core::{BuildRequest, ClickIdGenerator, Providers};

fn providers() -> Providers {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let config = format!(
        r#"
        [plugins]
        dirs = ["{deps}"]
        [[providers]]
        name = "amazon"
        plugin = "amazon"
        [providers.config]
        tags = {{ "amazon.com" = "lw-20", "amazon.co.uk" = "lw-21" }}
        [[providers]]
        name = "awin"
        plugin = "awin"
        [providers.config]
        publisher_id = "123456"
        [[providers.config.advertisers]]
        id = "1001"
        name = "Example Store"
        domains = ["example-store.co.uk"]
        "#,
        deps = deps.display()
    );
    let providers = Config::from_toml_str(&config).unwrap().load_providers();
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    providers
}

fn build(c: &mut Criterion) {
    let providers = providers();
    let mut group = c.benchmark_group("template_build_via_abi");
    for (name, input) in [
        (
            "amazon_slug_ref_query",
            "https://www.amazon.co.uk/Some-Long-Product-Name/dp/B08N5WRWNW/ref=sr_1_3?crid=2X&keywords=x&qid=1&tag=other-21",
        ),
        ("amazon_bare_asin", "B08N5WRWNW"),
        (
            "awin_deep_link_second_provider",
            "https://www.example-store.co.uk/products/blue-widget?colour=blue",
        ),
    ] {
        let req = BuildRequest {
            input,
            ..Default::default()
        };
        providers.build(&req).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| providers.build(black_box(&req)).unwrap())
        });
    }
    group.finish();
    // Every build is one hand-off to a plugin-call worker (the price of the
    // time budget); a batch, as bulk jobs make them, is one hand-off for
    // all its builds. Per URL: the time / 100.
    let mut group = c.benchmark_group("template_build_batch_of_100");
    let req = BuildRequest {
        input: "https://www.amazon.co.uk/Some-Long-Product-Name/dp/B08N5WRWNW/ref=sr_1_3?crid=2X&keywords=x&qid=1&tag=other-21",
        ..Default::default()
    };
    let batch = vec![req; 100];
    group.throughput(criterion::Throughput::Elements(100));
    group.bench_function("amazon_slug_ref_query", |b| {
        b.iter(|| {
            let built = providers.build_many(black_box(&batch));
            assert!(built.iter().all(Result::is_ok));
        })
    });
    group.finish();
}

fn per_click(c: &mut Criterion) {
    let providers = providers();
    let template = providers
        .build(&BuildRequest {
            input: "https://www.amazon.com/dp/B08N5WRWNW",
            ..Default::default()
        })
        .unwrap();
    let ids = ClickIdGenerator::new(1);
    c.bench_function("click_id_mint", |b| b.iter(|| black_box(ids.next_id())));
    let id = ids.next_id();
    c.bench_function("template_fill", |b| {
        b.iter(|| template.fill(black_box(&id)))
    });
    c.bench_function("mint_and_fill", |b| {
        b.iter(|| template.fill(&ids.next_id()))
    });
}

criterion_group!(benches, build, per_click);
criterion_main!(benches);
