//! Property tests (proptest) of the invariants that are cheap to state, run
//! through the real plugin libraries over the C ABI:
//!
//! - a sub-ID never holds a byte outside its provider's encoding and never
//!   exceeds the provider's maximum;
//! - no rewrite ever yields a URL on a host outside the provider's
//!   allow-list (the no-open-redirect property), for hostile hosts: user
//!   info, IDN/punycode look-alikes, backslashes, percent-encoded dots,
//!   mixed case, trailing dots, IPv6 and IPv4 literals and ports.
//!
//! The properties are those of the fuzz targets (`fuzz/props.rs`); case
//! counts are kept small so the suite stays fast, and the seed is fixed by
//! proptest's deterministic runner.
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../fuzz/props.rs"]
mod props;

use std::sync::LazyLock;

use linkwright_core::plugin::{BuildRequest, Providers};
use linkwright_core::{ClickIdGenerator, ErrorCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

static PROVIDERS: LazyLock<Providers> =
    LazyLock::new(|| props::load_providers(common::plugin_file("amazon").parent().unwrap()));

/// A deterministic runner: the same cases on every run and machine.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// Hosts the providers own and their look-alikes.
const HOSTS: &[&str] = &[
    "www.amazon.com",
    "amazon.de",
    "www.amazon.co.uk",
    "example.com",
    "www.example.co.uk",
    "nodeep.example",
    "shop.example",
    "sub.shop.example",
    "ebay.com",
    "www.ebay.co.uk",
    // look-alikes and attackers
    "evil.example",
    "amazon.com.evil.example",
    "ebay.com.evil.example",
    "shop.example.evil.example",
    "evilshop.example",
    "notebay.com",
    "xn--amazn-mye.com",
    "xn--eby-7cd.com",
    "\u{430}mazon.com",
    "\u{435}bay.com",
    "amazon%2ecom",
    "ebay%2Ecom",
    "shop%2eexample",
    "127.0.0.1",
    "[::1]",
    "[2001:db8::1]",
    "[::ffff:127.0.0.1]",
    "0x7f000001",
];

/// A hostile product URL built from parts.
fn hostile_url() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["https", "http", "HTTPS", "hTtP"]);
    let slashes = prop::sample::select(vec!["//", "//", "\\\\", "/\\", "///"]);
    let userinfo = prop::sample::select(vec![
        "",
        "",
        "evil.example@",
        "user:pw@",
        "www.amazon.com@",
        "shop.example@",
        "ebay.com:443@",
        "evil.example\\@",
    ]);
    let host = (prop::sample::select(HOSTS.to_vec()), 0u8..6).prop_map(|(h, how)| match how {
        0 => h.to_owned(),
        1 => h.to_ascii_uppercase(),
        2 => format!("{h}."),
        3 => h
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
        4 => format!("{h}.evil.example"),
        _ => format!("evil.example\\.{h}"),
    });
    let port = prop::sample::select(vec!["", "", ":443", ":80", ":8080", ":0", ":99999"]);
    let path = prop::sample::select(vec![
        "/dp/B08N5WRWNW",
        "/gp/product/B08N5WRWNW?tag=x-20",
        "/itm/123456?customid=theirs",
        "/item/1?x=1#frag",
        "/",
        "",
        "/%2e%2e/evil.example",
        "\\evil.example/",
        "@evil.example/",
    ]);
    (scheme, slashes, userinfo, host, port, path)
        .prop_map(|(s, sl, u, h, p, path)| format!("{s}:{sl}{u}{h}{p}{path}"))
}

#[test]
fn no_rewrite_leaves_the_providers_hosts() {
    let names = ["amazon", "awin", "rakuten", "ebay"];
    let built = std::cell::Cell::new(0u32);
    runner(256)
        .run(&hostile_url(), |url| {
            // Routed by host, then each provider by name.
            let routed = PROVIDERS.build(&BuildRequest {
                input: &url,
                ..Default::default()
            });
            if let Ok(t) = &routed {
                props::check_template(t);
                built.set(built.get() + 1);
            }
            for name in names {
                let req = BuildRequest {
                    input: &url,
                    provider: Some(name),
                    ..Default::default()
                };
                match PROVIDERS.build(&req) {
                    Ok(t) => props::check_template(&t),
                    Err(e) => prop_assert!(
                        e.code.is_client_error(),
                        "{name}: {url}: a non-client error {e:?}"
                    ),
                }
            }
            Ok(())
        })
        .unwrap();
    // The strategy reaches the providers' hosts, so some cases build: the
    // property is tested on templates, not only on refusals.
    let built = built.get();
    assert!(built > 10, "only {built} hostile URLs built a template");
}

#[test]
fn hostile_urls_are_tracked_only_when_their_host_is_a_providers() {
    // Cases written out: each either builds a link on the owned host or is
    // refused (never a tracked link to the attacker).
    for url in [
        "https://evil.example@www.amazon.com/dp/B08N5WRWNW",
        "https://www.amazon.com@evil.example/dp/B08N5WRWNW",
        "https://www.amazon.com\\@evil.example/dp/B08N5WRWNW",
        "https://www.amazon.com.evil.example/dp/B08N5WRWNW",
        "https://www.amazon%2ecom/dp/B08N5WRWNW",
        "https://xn--amazn-mye.com/dp/B08N5WRWNW",
        "https://[::1]/dp/B08N5WRWNW",
        "https://shop.example@evil.example/item/1",
        "https://evil.example\\@shop.example/item/1",
        "http://EBAY.COM.:8080/itm/1",
        "https://ebay.com%2eevil.example/itm/1",
    ] {
        if let Ok(t) = PROVIDERS.build(&BuildRequest {
            input: url,
            ..Default::default()
        }) {
            props::check_template(&t);
        }
    }
}

#[test]
fn sub_ids_hold_only_their_encodings_bytes_and_fit_every_provider() {
    let inputs = [
        "https://www.amazon.com/dp/B08N5WRWNW",
        "https://www.example.com/product/42",
        "https://shop.example/item/1",
        "https://www.ebay.com/itm/1",
    ];
    let templates: Vec<_> = inputs
        .iter()
        .map(|input| {
            PROVIDERS
                .build(&BuildRequest {
                    input,
                    ..Default::default()
                })
                .unwrap()
        })
        .collect();
    let names: Vec<&str> = templates.iter().map(|t| t.provider.as_str()).collect();
    assert_eq!(names, ["amazon", "awin", "rakuten", "ebay"]);
    runner(256)
        .run(
            &(0u16..=u16::MAX, 0u64..(1 << 62), 1usize..200),
            |(node, floor, n)| {
                let generator = ClickIdGenerator::with_floor(node, floor);
                let mut id = generator.next_id();
                for _ in 1..n {
                    id = generator.next_id();
                }
                for t in &templates {
                    let max = t.subid_max_len as usize;
                    prop_assert!(max == 0 || id.as_str().len() <= max, "{}: {id}", t.provider);
                    prop_assert!(
                        id.as_bytes()
                            .iter()
                            .all(|&b| props::subid_byte_allowed(t.subid_encoding, b)),
                        "{}: {id}",
                        t.provider
                    );
                    let filled = t.fill(&id);
                    prop_assert!(filled.contains(id.as_str()));
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn providers_refuse_a_forced_foreign_host_with_a_client_error() {
    // A provider named explicitly never tracks a host it does not serve.
    for name in ["amazon", "awin", "rakuten", "ebay"] {
        let e = PROVIDERS
            .build(&BuildRequest {
                input: "https://evil.example/dp/B08N5WRWNW",
                provider: Some(name),
                ..Default::default()
            })
            .unwrap_err();
        assert!(e.code.is_client_error(), "{name}: {e:?}");
        assert_ne!(e.code, ErrorCode::Internal);
    }
}
