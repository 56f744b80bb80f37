#![allow(clippy::unwrap_used)]
use linkwright_amazon::Amazon;
use linkwright_plugin_sdk::{BuildRequest, Provider};
#[test]
fn timing() {
    let a = Amazon::new(r#"{"tags": {"amazon.com": "lw-20", "amazon.co.uk": "lw-21"}}"#).unwrap();
    for input in ["https://www.amazon.com/Echo-Dot-4th-Gen/dp/B08N5WRWNW/ref=sr_1_1?crid=2X&keywords=echo+dot&qid=1700000000&sr=8-1", "B08N5WRWNW", "https://www.amazon.co.uk/gp/product/B08H95Y452"] {
        let r = BuildRequest::new(input);
        let n = 1_000_000;
        let t = std::time::Instant::now();
        for _ in 0..n { std::hint::black_box(a.build(std::hint::black_box(&r)).unwrap()); }
        eprintln!("{input}: {:?}/build", t.elapsed() / n);
    }
}
