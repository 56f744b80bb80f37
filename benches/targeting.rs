//! Targeting on the redirect path: the visitor's country from the geo
//! database (budget ≤ 1 µs) and a link's rule evaluation (budget ≤ 100 ns),
//! with the plain trusted-header lookup and a link without targeting as the
//! baselines in the same run.
//!
//! The database is a real MaxMind-format file written with Debian's
//! MaxMind::DB::Writer (`libmaxmind-db-writer-perl`, installed by
//! scripts/test): 2,000 IPv4 /24 networks and 500 IPv6 /48s, in an IPv6
//! tree like GeoLite2-Country's.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use linkwright_core::cache::CachedLink;
use linkwright_core::geo::Geo;
use linkwright_core::store::Link;
use linkwright_core::targeting::{Device, TargetRule, Targeting};

const COUNTRIES: [&str; 8] = ["DE", "FR", "JP", "US", "GB", "IT", "ES", "AU"];

fn database(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("bench.mmdb");
    let mut inserts = String::new();
    for i in 0..2000u32 {
        let cc = COUNTRIES[i as usize % COUNTRIES.len()];
        inserts.push_str(&format!(
            "$t->insert_network('{}.{}.{}.0/24', {{ country => {{ iso_code => '{cc}' }} }});\n",
            10 + i / 65536,
            (i / 256) % 256,
            i % 256
        ));
    }
    for i in 0..500u32 {
        let cc = COUNTRIES[i as usize % COUNTRIES.len()];
        inserts.push_str(&format!(
            "$t->insert_network('2001:db8:{i:x}::/48', {{ country => {{ iso_code => '{cc}' }} }});\n"
        ));
    }
    let script = format!(
        r#"use MaxMind::DB::Writer::Tree;
my %types = (country => 'map', iso_code => 'utf8_string');
my $t = MaxMind::DB::Writer::Tree->new(ip_version => 6, record_size => 24,
  database_type => 'GeoLite2-Country', languages => ['en'], description => {{ en => 'bench' }},
  remove_reserved_networks => 0, map_key_type_callback => sub {{ $types{{ $_[0] }} }});
{inserts}
open my $fh, '>:raw', $ARGV[0] or die; $t->write_tree($fh); close $fh or die;"#
    );
    let script_file = dir.join("write.pl");
    std::fs::write(&script_file, script).unwrap();
    let ok = std::process::Command::new("perl")
        .arg(&script_file)
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "install libmaxmind-db-writer-perl");
    path
}

fn link(targeting: Option<Targeting>) -> Link {
    Link {
        id: 1,
        code: "c".into(),
        provider: "amazon".into(),
        input: String::new(),
        destination: "https://www.amazon.com/dp/B08N5WRWNW".into(),
        template_prefix: "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag=".into(),
        template_suffix: String::new(),
        subid_max_len: 64,
        subid_encoding: linkwright_plugin_sdk::SubIdEncoding::UrlSafe,
        name: None,
        marketplace: Some("amazon.com".into()),
        campaign: None,
        tags: Vec::new(),
        params: Vec::new(),
        source_key: None,
        created_ms: 0,
        disabled: false,
        targeting,
    }
}

/// A localized-like link: 20 country rules and a device rule.
fn targeted() -> Targeting {
    let mut rules = vec![
        serde_json::from_str::<TargetRule>(r#"{"device": "ios", "url": "https://a.test/"}"#)
            .unwrap(),
    ];
    let mut targets = Vec::new();
    let mut rule_targets = vec![1u8];
    targets.push(target("https://a.test/?s="));
    for (i, cc) in ["DE AT CH", "FR BE", "JP", "GB IE", "IT", "ES PT", "AU NZ"]
        .iter()
        .enumerate()
    {
        let countries: Vec<&str> = cc.split(' ').collect();
        rules.push(
            serde_json::from_value(
                serde_json::json!({"country": countries, "url": "https://b.test/"}),
            )
            .unwrap(),
        );
        targets.push(target(&format!("https://b{i}.test/?s=")));
        rule_targets.push(targets.len() as u8);
    }
    Targeting {
        rules,
        rule_targets,
        targets,
        ..Default::default()
    }
}

fn target(prefix: &str) -> linkwright_core::targeting::BuiltTarget {
    linkwright_core::targeting::BuiltTarget {
        provider: "amazon".into(),
        destination: prefix.into(),
        marketplace: None,
        prefix: prefix.into(),
        suffix: String::new(),
        why: linkwright_core::targeting::Why::Rule,
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("linkwright-bench-geo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = database(&dir);
    let geo = Geo::new(None, Vec::new(), Some(&db)).unwrap();
    let header = Geo::new(
        Some(HeaderName::from_static("cf-ipcountry")),
        Vec::new(),
        None,
    )
    .unwrap();
    let empty = HeaderMap::new();
    let mut with_header = HeaderMap::new();
    with_header.insert("cf-ipcountry", HeaderValue::from_static("DE"));
    let v4: Vec<IpAddr> = (0..4096u32)
        .map(|i| {
            IpAddr::V4(Ipv4Addr::new(
                10,
                ((i * 7) / 256 % 8) as u8,
                (i * 7 % 256) as u8,
                9,
            ))
        })
        .collect();
    let v6: Vec<IpAddr> = (0..4096u32)
        .map(|i| {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                (i * 7 % 500) as u16,
                0,
                0,
                0,
                0,
                1,
            ))
        })
        .collect();
    assert!(geo.country(&empty, Some(v4[0])).is_some());
    assert!(geo.country(&empty, Some(v6[0])).is_some());

    let mut g = c.benchmark_group("country");
    g.bench_function("baseline_trusted_header", |b| {
        b.iter(|| black_box(header.country(black_box(&with_header), Some(v4[0]))))
    });
    let mut i = 0usize;
    g.bench_function("mmdb_ipv4", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(geo.country(&empty, Some(v4[i])))
        })
    });
    g.bench_function("mmdb_ipv6", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(geo.country(&empty, Some(v6[i])))
        })
    });
    g.finish();

    let labels = |_: &str, _: Option<&str>| 0u16;
    let plain = CachedLink::from_link(&link(None), labels);
    let routed = CachedLink::from_link(&link(Some(targeted())), labels);
    let codes: Vec<[u8; 2]> = ["DE", "US", "JP", "BR", "CH", "NZ", "KR", "IE"]
        .iter()
        .map(|c| [c.as_bytes()[0], c.as_bytes()[1]])
        .collect();
    let mut g = c.benchmark_group("rules");
    g.bench_function("baseline_plain_link", |b| {
        b.iter(|| {
            i = (i + 1) & 7;
            black_box(plain.as_ref().choose(Device::Desktop, Some(codes[i]), || 0))
        })
    });
    g.bench_function("targeted_link", |b| {
        b.iter(|| {
            i = (i + 1) & 7;
            black_box(
                routed
                    .as_ref()
                    .choose(Device::Desktop, Some(codes[i]), || 0),
            )
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
