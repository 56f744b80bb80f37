//! Table-driven tests of the amazon provider, called directly (no FFI).
#![allow(clippy::unwrap_used)]

use linkwright_amazon::Amazon;
use linkwright_plugin_sdk::{BuildRequest, PluginError, Provider, Status, SubIdEncoding, Template};

/// A store ID for every marketplace, each distinct so that a wrong mapping shows.
const ALL_TAGS: &str = r#"{"tags": {
    "amazon.com": "lw-us-20", "amazon.ca": "lw-ca-20", "amazon.com.mx": "lw-mx-20",
    "amazon.com.br": "lw-br-20", "amazon.co.uk": "lw-uk-21", "amazon.de": "lw-de-21",
    "amazon.fr": "lw-fr-21", "amazon.it": "lw-it-21", "amazon.es": "lw-es-21",
    "amazon.nl": "lw-nl-21", "amazon.com.be": "lw-be-21", "amazon.se": "lw-se-21",
    "amazon.pl": "lw-pl-21", "amazon.ie": "lw-ie-21", "amazon.com.tr": "lw-tr-21",
    "amazon.ae": "lw-ae-21", "amazon.sa": "lw-sa-21", "amazon.eg": "lw-eg-21",
    "amazon.in": "lw-in-21", "amazon.co.jp": "lw-jp-22", "amazon.sg": "lw-sg-22",
    "amazon.com.au": "lw-au-22"}}"#;

fn provider(config: &str) -> Amazon {
    Amazon::new(config).unwrap()
}

fn request<'a>(
    input: &'a str,
    marketplace: Option<&'a str>,
    params: &[(&'a str, &'a str)],
) -> BuildRequest<'a> {
    BuildRequest {
        input,
        marketplace,
        params: params.to_vec(),
    }
}

/// One successful build: the input, the request's marketplace and params, and
/// the exact expected prefix and marketplace.
struct Builds {
    input: &'static str,
    marketplace: Option<&'static str>,
    params: &'static [(&'static str, &'static str)],
    prefix: &'static str,
    expected_marketplace: &'static str,
}

const fn builds(
    input: &'static str,
    prefix: &'static str,
    expected_marketplace: &'static str,
) -> Builds {
    Builds {
        input,
        marketplace: None,
        params: &[],
        prefix,
        expected_marketplace,
    }
}

const SUCCESS: &[Builds] = &[
    // amazon.com (US): every path shape.
    builds(
        "https://www.amazon.com/dp/B08N5WRWNW",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/Echo-Dot-4th-Gen/dp/B08N5WRWNW/ref=sr_1_1?crid=2X&keywords=echo+dot&qid=1700000000&sr=8-1",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/dp/B08N5WRWNW?tag=someoneelse-20&ascsubtag=theirs&linkCode=ll1&linkId=abc123&creative=9325&creativeASIN=B08N5WRWNW&camp=1789&th=1&psc=1",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/gp/product/B08N5WRWNW",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/gp/product/B08N5WRWNW/ref=ppx_yo_dt_b_asin_title_o00_s00?ie=UTF8&psc=1",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/gp/aw/d/B08N5WRWNW/?_encoding=UTF8&pd_rd_plhdr=t",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "http://www.amazon.com/exec/obidos/ASIN/0262033844/",
        "https://www.amazon.com/dp/0262033844?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "http://www.amazon.com/exec/obidos/tg/detail/-/0262033844/qid=1100000000",
        "https://www.amazon.com/dp/0262033844?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/o/ASIN/B08N5WRWNW/ref=nosim",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://smile.amazon.com/dp/B08N5WRWNW/ref=smi_www_rco2_go_smi",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://amazon.com/dp/B08N5WRWNW",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "HTTPS://WWW.AMAZON.COM/DP/B08N5WRWNW",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/dp/b08n5wrwnw",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/Introduction-Algorithms-3rd-MIT-Press/dp/080442957x/ref=sr_1_3",
        "https://www.amazon.com/dp/080442957X?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com/dp/B08N5WRWNW?pf_rd_r=XYZ&pf_rd_p=123&ref_=nav_signin&maas=maas_adg_api_1&aa_campaignid=9#customerReviews",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "https://www.amazon.com./dp/B08N5WRWNW",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    // The other 21 marketplaces.
    builds(
        "https://www.amazon.ca/Apple-AirPods-Pro-2nd-Generation/dp/B0CHWRXH8B/ref=sr_1_1",
        "https://www.amazon.ca/dp/B0CHWRXH8B?tag=lw-ca-20&ascsubtag=",
        "amazon.ca",
    ),
    builds(
        "https://www.amazon.com.mx/gp/product/B07PDHSLM6?pf_rd_r=ABC&pf_rd_p=def",
        "https://www.amazon.com.mx/dp/B07PDHSLM6?tag=lw-mx-20&ascsubtag=",
        "amazon.com.mx",
    ),
    builds(
        "https://www.amazon.com.br/Kindle-11a-Gera%C3%A7%C3%A3o/dp/B09SWW583J",
        "https://www.amazon.com.br/dp/B09SWW583J?tag=lw-br-20&ascsubtag=",
        "amazon.com.br",
    ),
    builds(
        "https://www.amazon.co.uk/dp/B08H95Y452?tag=other-21&linkCode=osi&th=1&psc=1",
        "https://www.amazon.co.uk/dp/B08H95Y452?tag=lw-uk-21&ascsubtag=",
        "amazon.co.uk",
    ),
    builds(
        "https://smile.amazon.co.uk/gp/product/B08H95Y452/ref=ox_sc_act_title_1",
        "https://www.amazon.co.uk/dp/B08H95Y452?tag=lw-uk-21&ascsubtag=",
        "amazon.co.uk",
    ),
    builds(
        "https://m.amazon.co.uk/gp/aw/d/B08H95Y452",
        "https://www.amazon.co.uk/dp/B08H95Y452?tag=lw-uk-21&ascsubtag=",
        "amazon.co.uk",
    ),
    builds(
        "https://www.amazon.de/-/en/Bosch-Professional-GSR/dp/B07PQVB8MJ/ref=sr_1_5?dib=eyJ2&keywords=bosch",
        "https://www.amazon.de/dp/B07PQVB8MJ?tag=lw-de-21&ascsubtag=",
        "amazon.de",
    ),
    builds(
        "https://amazon.de/exec/obidos/ASIN/3446429530/",
        "https://www.amazon.de/dp/3446429530?tag=lw-de-21&ascsubtag=",
        "amazon.de",
    ),
    builds(
        "https://www.amazon.fr/dp/B0BDHWDR12/ref=cm_sw_r_cp_api_i_ABC?_encoding=UTF8&psc=1",
        "https://www.amazon.fr/dp/B0BDHWDR12?tag=lw-fr-21&ascsubtag=",
        "amazon.fr",
    ),
    builds(
        "https://www.amazon.it/o/ASIN/B0BDHWDR12",
        "https://www.amazon.it/dp/B0BDHWDR12?tag=lw-it-21&ascsubtag=",
        "amazon.it",
    ),
    builds(
        "https://www.amazon.es/Cecotec-Robot-Aspirador/dp/B08KH2ZQ1V?ascsubtag=otherclick&tag=rival-21",
        "https://www.amazon.es/dp/B08KH2ZQ1V?tag=lw-es-21&ascsubtag=",
        "amazon.es",
    ),
    builds(
        "https://www.amazon.nl/gp/aw/d/B08KH2ZQ1V/ref=ox_sc_saved_image_1?smid=A17D2BRD4YMT0X",
        "https://www.amazon.nl/dp/B08KH2ZQ1V?tag=lw-nl-21&ascsubtag=",
        "amazon.nl",
    ),
    builds(
        "https://www.amazon.com.be/-/fr/dp/B0CHX3QBCH",
        "https://www.amazon.com.be/dp/B0CHX3QBCH?tag=lw-be-21&ascsubtag=",
        "amazon.com.be",
    ),
    builds(
        "https://www.amazon.se/Philips-Hue/dp/B07SS3RYSL/ref=sr_1_1?crid=1&keywords=hue",
        "https://www.amazon.se/dp/B07SS3RYSL?tag=lw-se-21&ascsubtag=",
        "amazon.se",
    ),
    builds(
        "https://www.amazon.pl/gp/product/B07SS3RYSL?linkId=0123456789abcdef&creativeASIN=B07SS3RYSL",
        "https://www.amazon.pl/dp/B07SS3RYSL?tag=lw-pl-21&ascsubtag=",
        "amazon.pl",
    ),
    builds(
        "https://www.amazon.ie/dp/1529100178",
        "https://www.amazon.ie/dp/1529100178?tag=lw-ie-21&ascsubtag=",
        "amazon.ie",
    ),
    builds(
        "https://www.amazon.com.tr/Xiaomi-Redmi-Note/dp/B0CQYG2ZPN/ref=zg_bs_c_electronics_d_sccl_1/262-1234567-1234567?pd_rd_w=abc&psc=1",
        "https://www.amazon.com.tr/dp/B0CQYG2ZPN?tag=lw-tr-21&ascsubtag=",
        "amazon.com.tr",
    ),
    builds(
        "https://www.amazon.ae/-/en/dp/B0CQYG2ZPN",
        "https://www.amazon.ae/dp/B0CQYG2ZPN?tag=lw-ae-21&ascsubtag=",
        "amazon.ae",
    ),
    builds(
        "https://www.amazon.sa/-/ar/gp/product/B0CQYG2ZPN",
        "https://www.amazon.sa/dp/B0CQYG2ZPN?tag=lw-sa-21&ascsubtag=",
        "amazon.sa",
    ),
    builds(
        "https://www.amazon.eg/-/en/Samsung-Galaxy/dp/B0CS6RXN1T?th=1",
        "https://www.amazon.eg/dp/B0CS6RXN1T?tag=lw-eg-21&ascsubtag=",
        "amazon.eg",
    ),
    builds(
        "https://www.amazon.in/OnePlus-Nord-Lite-Pastel-Storage/dp/B0BY8JZ22K/ref=sr_1_3?crid=X&tag=deals-21",
        "https://www.amazon.in/dp/B0BY8JZ22K?tag=lw-in-21&ascsubtag=",
        "amazon.in",
    ),
    builds(
        "https://m.amazon.in/dp/B0BY8JZ22K",
        "https://www.amazon.in/dp/B0BY8JZ22K?tag=lw-in-21&ascsubtag=",
        "amazon.in",
    ),
    builds(
        "https://www.amazon.co.jp/%E3%82%BD%E3%83%8B%E3%83%BC/dp/B09Y2MYL5C/ref=sr_1_1?__mk_ja_JP=%E3%82%AB%E3%82%BF%E3%82%AB%E3%83%8A",
        "https://www.amazon.co.jp/dp/B09Y2MYL5C?tag=lw-jp-22&ascsubtag=",
        "amazon.co.jp",
    ),
    builds(
        "https://www.amazon.co.jp/exec/obidos/ASIN/4774142042/",
        "https://www.amazon.co.jp/dp/4774142042?tag=lw-jp-22&ascsubtag=",
        "amazon.co.jp",
    ),
    builds(
        "https://www.amazon.sg/Logitech-MX-Master-3S/dp/B09HM94VDS",
        "https://www.amazon.sg/dp/B09HM94VDS?tag=lw-sg-22&ascsubtag=",
        "amazon.sg",
    ),
    builds(
        "https://www.amazon.com.au/dp/B09HM94VDS/ref=twister_B0?_encoding=UTF8&th=1&camp=1789&creative=9325",
        "https://www.amazon.com.au/dp/B09HM94VDS?tag=lw-au-22&ascsubtag=",
        "amazon.com.au",
    ),
    builds(
        "https://Amazon.Com.Au/gp/aw/d/B09HM94VDS",
        "https://www.amazon.com.au/dp/B09HM94VDS?tag=lw-au-22&ascsubtag=",
        "amazon.com.au",
    ),
    // Bare ASINs.
    builds(
        "B08N5WRWNW",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    builds(
        "  b08n5wrwnw\n",
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-us-20&ascsubtag=",
        "amazon.com",
    ),
    Builds {
        marketplace: Some("amazon.co.jp"),
        ..builds(
            "4774142042",
            "https://www.amazon.co.jp/dp/4774142042?tag=lw-jp-22&ascsubtag=",
            "amazon.co.jp",
        )
    },
    Builds {
        marketplace: Some("Amazon.De"),
        ..builds(
            "080442957X",
            "https://www.amazon.de/dp/080442957X?tag=lw-de-21&ascsubtag=",
            "amazon.de",
        )
    },
    // A URL's host wins over the request's marketplace.
    Builds {
        marketplace: Some("amazon.de"),
        ..builds(
            "https://www.amazon.fr/dp/B0BDHWDR12",
            "https://www.amazon.fr/dp/B0BDHWDR12?tag=lw-fr-21&ascsubtag=",
            "amazon.fr",
        )
    },
    // The per-link tag override, and unknown params that are ignored.
    Builds {
        params: &[("tag", "override_99-21")],
        ..builds(
            "https://www.amazon.co.uk/Some-Book/dp/0241988268/ref=sr_1_1?tag=theirs-21",
            "https://www.amazon.co.uk/dp/0241988268?tag=override_99-21&ascsubtag=",
            "amazon.co.uk",
        )
    },
    Builds {
        marketplace: Some("amazon.com.au"),
        params: &[("clickref", "abc"), ("tag", "first-22"), ("tag", "last-22")],
        ..builds(
            "B09HM94VDS",
            "https://www.amazon.com.au/dp/B09HM94VDS?tag=last-22&ascsubtag=",
            "amazon.com.au",
        )
    },
    Builds {
        params: &[("clickref", "newsletter"), ("p", "https://elsewhere.test/")],
        ..builds(
            "https://www.amazon.it/dp/B0BDHWDR12",
            "https://www.amazon.it/dp/B0BDHWDR12?tag=lw-it-21&ascsubtag=",
            "amazon.it",
        )
    },
];

fn check_success(provider: &Amazon, case: &Builds) -> Template {
    let req = request(case.input, case.marketplace, case.params);
    let template = provider
        .build(&req)
        .unwrap_or_else(|e| panic!("{}: {e}", case.input));
    let destination = &case.prefix[..case.prefix.find('?').unwrap()];
    assert_eq!(template.prefix, case.prefix, "prefix of {}", case.input);
    assert_eq!(template.suffix, "", "suffix of {}", case.input);
    assert_eq!(
        template.destination, destination,
        "destination of {}",
        case.input
    );
    assert_eq!(
        template.marketplace.as_deref(),
        Some(case.expected_marketplace),
        "marketplace of {}",
        case.input
    );
    template
}

#[test]
fn product_urls_and_bare_asins_build_canonical_tagged_links() {
    let amazon = provider(ALL_TAGS);
    for case in SUCCESS {
        let template = check_success(&amazon, case);
        assert_eq!(template.subid_max_len, 64, "{}", case.input);
        assert_eq!(
            template.subid_encoding,
            SubIdEncoding::UrlSafe,
            "{}",
            case.input
        );
    }
}

#[test]
fn success_cases_cover_every_marketplace() {
    let amazon = provider(ALL_TAGS);
    assert!(SUCCESS.len() >= 40, "only {} success cases", SUCCESS.len());
    let mut seen: Vec<&str> = SUCCESS.iter().map(|c| c.expected_marketplace).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 22, "{seen:?}");
    let described: serde_json::Value = serde_json::from_str(&amazon.describe()).unwrap();
    assert_eq!(described["marketplaces"].as_array().unwrap().len(), 22);
}

#[test]
fn foreign_tracking_parameters_never_survive() {
    let amazon = provider(ALL_TAGS);
    for case in SUCCESS {
        let template = check_success(&amazon, case);
        let link = format!("{}click123{}", template.prefix, template.suffix);
        let query = link.split_once('?').unwrap().1;
        let keys: Vec<&str> = query
            .split('&')
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(keys, ["tag", "ascsubtag"], "{link}");
        assert!(link.ends_with("&ascsubtag=click123"), "{link}");
        assert!(!link.contains("maas"), "{link}");
    }
}

#[test]
fn default_marketplace_serves_bare_asins() {
    let amazon = provider(
        r#"{"tags": {"amazon.co.uk": "lw-uk-21"}, "default_marketplace": "amazon.co.uk"}"#,
    );
    check_success(
        &amazon,
        &builds(
            "0241988268",
            "https://www.amazon.co.uk/dp/0241988268?tag=lw-uk-21&ascsubtag=",
            "amazon.co.uk",
        ),
    );
}

#[test]
fn subid_max_len_comes_from_config() {
    let amazon = provider(r#"{"tags": {"amazon.com": "lw-us-20"}, "subid_max_len": 40}"#);
    let template = amazon.build(&BuildRequest::new("B08N5WRWNW")).unwrap();
    assert_eq!(template.subid_max_len, 40);
}

/// One failing build: the input, the request's marketplace and params, the
/// expected status and a piece of the expected message.
struct Fails {
    input: &'static str,
    marketplace: Option<&'static str>,
    params: &'static [(&'static str, &'static str)],
    status: Status,
    message: &'static str,
}

const fn fails(input: &'static str, status: Status, message: &'static str) -> Fails {
    Fails {
        input,
        marketplace: None,
        params: &[],
        status,
        message,
    }
}

const FAILURES: &[Fails] = &[
    // Amazon pages that are not product pages.
    fails(
        "https://www.amazon.com/",
        Status::NotAProductUrl,
        "not an Amazon product page",
    ),
    fails(
        "https://www.amazon.com/s?k=echo+dot&tag=x-20",
        Status::NotAProductUrl,
        "not an Amazon product page",
    ),
    fails(
        "https://www.amazon.co.uk/gp/help/customer/display.html?nodeId=508510",
        Status::NotAProductUrl,
        "not an Amazon product page",
    ),
    fails(
        "https://www.amazon.de/b?node=562066",
        Status::NotAProductUrl,
        "not an Amazon product page",
    ),
    fails(
        "https://www.amazon.com/hz/wishlist/ls/2K3XYZ",
        Status::NotAProductUrl,
        "not an Amazon product page",
    ),
    fails(
        "https://www.amazon.com/?asin=B08N5WRWNW",
        Status::NotAProductUrl,
        "not an Amazon product page",
    ),
    fails(
        "https://aws.amazon.com/ec2/",
        Status::NotAProductUrl,
        "aws.amazon.com is not an Amazon store host",
    ),
    // A product path with a malformed ASIN.
    fails(
        "https://www.amazon.com/dp/B08N5WRWN",
        Status::InvalidProductId,
        "\"B08N5WRWN\" is not a valid ASIN: 10 letters or digits",
    ),
    fails(
        "https://www.amazon.com/Echo/dp/B08N5WRWNWX/ref=sr_1_1",
        Status::InvalidProductId,
        "\"B08N5WRWNWX\" is not a valid ASIN",
    ),
    fails(
        "https://www.amazon.com/dp/B08N5-RWNW",
        Status::InvalidProductId,
        "\"B08N5-RWNW\" is not a valid ASIN",
    ),
    fails(
        "https://www.amazon.com/gp/product/",
        Status::InvalidProductId,
        "\"\" is not a valid ASIN",
    ),
    fails(
        "https://www.amazon.fr/gp/aw/d/B0BD%C3%A9DR1",
        Status::InvalidProductId,
        "\"B0BD%C3%A9DR1\" is not a valid ASIN",
    ),
    fails(
        "https://www.amazon.com/exec/obidos/ASIN/12345",
        Status::InvalidProductId,
        "\"12345\" is not a valid ASIN",
    ),
    // Not Amazon: the host tries other providers.
    fails(
        "https://www.example.com/dp/B08N5WRWNW",
        Status::Declined,
        "not handled",
    ),
    fails(
        "https://www.amazon.com.evil.test/dp/B08N5WRWNW",
        Status::Declined,
        "not handled",
    ),
    fails(
        "https://notamazon.com/dp/B08N5WRWNW",
        Status::Declined,
        "not handled",
    ),
    fails(
        "https://www.amazon.cn/dp/B08N5WRWNW",
        Status::Declined,
        "not handled",
    ),
    fails(
        "https://192.0.2.1/dp/B08N5WRWNW",
        Status::Declined,
        "not handled",
    ),
    // Short links.
    fails(
        "https://amzn.to/3xYzAbC",
        Status::NeedsExpansion,
        "amzn.to is an Amazon short link: it must be expanded first",
    ),
    fails(
        "https://amzn.eu/d/9aBcDeF",
        Status::NeedsExpansion,
        "amzn.eu is an Amazon short link: it must be expanded first",
    ),
    fails(
        "https://a.co/d/5GhIjKl",
        Status::NeedsExpansion,
        "a.co is an Amazon short link: it must be expanded first",
    ),
    // Bare strings that are not ASINs.
    fails(
        "B08N5WRWN",
        Status::InvalidProductId,
        "\"B08N5WRWN\" is not a valid ASIN: 10 letters or digits",
    ),
    fails(
        "B08N5WRWNW12",
        Status::InvalidProductId,
        "\"B08N5WRWNW12\" is not a valid ASIN",
    ),
    fails(
        "B08N5_RWNW",
        Status::InvalidProductId,
        "\"B08N5_RWNW\" is not a valid ASIN",
    ),
    fails(
        "www.amazon.com/dp/B08N5WRWNW",
        Status::InvalidInput,
        "neither an http(s) Amazon URL nor a 10-character ASIN",
    ),
    fails(
        "ftp://amazon.com/dp/B08N5WRWNW",
        Status::InvalidInput,
        "neither an http(s) Amazon URL nor a 10-character ASIN",
    ),
    fails(
        "hello",
        Status::InvalidInput,
        "neither an http(s) Amazon URL nor a 10-character ASIN",
    ),
    fails(
        "",
        Status::InvalidInput,
        "neither an http(s) Amazon URL nor a 10-character ASIN",
    ),
    fails("https://", Status::InvalidInput, "not a valid URL"),
    // A bare ASIN for a marketplace that does not exist.
    Fails {
        marketplace: Some("amazon.cn"),
        ..fails(
            "B08N5WRWNW",
            Status::InvalidInput,
            "unknown marketplace \"amazon.cn\": must be one of amazon.com, amazon.ca,",
        )
    },
    Fails {
        marketplace: Some("uk"),
        ..fails(
            "B08N5WRWNW",
            Status::InvalidInput,
            "unknown marketplace \"uk\"",
        )
    },
    // Invalid tag overrides.
    Fails {
        params: &[("tag", "")],
        ..fails(
            "B08N5WRWNW",
            Status::InvalidInput,
            "tag parameter \"\" must be a non-empty store ID",
        )
    },
    Fails {
        params: &[("tag", "evil&maas=x")],
        ..fails(
            "https://www.amazon.com/dp/B08N5WRWNW",
            Status::InvalidInput,
            "tag parameter \"evil&maas=x\"",
        )
    },
    Fails {
        params: &[("tag", "with space-20")],
        ..fails(
            "https://www.amazon.com/dp/B08N5WRWNW",
            Status::InvalidInput,
            "tag parameter \"with space-20\"",
        )
    },
];

#[test]
fn bad_inputs_fail_with_the_exact_status() {
    let amazon = provider(ALL_TAGS);
    for case in FAILURES {
        let req = request(case.input, case.marketplace, case.params);
        let error: PluginError = amazon.build(&req).unwrap_err();
        assert_eq!(error.status, case.status, "{}: {error}", case.input);
        assert!(
            error.message.contains(case.message),
            "{}: {:?} does not contain {:?}",
            case.input,
            error.message,
            case.message
        );
    }
}

#[test]
fn marketplace_without_a_tag_is_not_configured() {
    let amazon = provider(r#"{"tags": {"amazon.com": "lw-us-20"}}"#);
    let cases = [
        (
            "https://www.amazon.co.uk/dp/0241988268",
            None,
            "amazon.co.uk",
        ),
        ("https://m.amazon.in/gp/aw/d/B0BY8JZ22K", None, "amazon.in"),
        ("B09HM94VDS", Some("amazon.com.au"), "amazon.com.au"),
    ];
    for (input, marketplace, named) in cases {
        let error = amazon.build(&request(input, marketplace, &[])).unwrap_err();
        assert_eq!(error.status, Status::MarketplaceNotConfigured, "{input}");
        assert!(
            error
                .message
                .contains(&format!("no store ID configured for marketplace {named}")),
            "{input}: {}",
            error.message
        );
    }
}

#[test]
fn tag_override_serves_an_unconfigured_marketplace() {
    let amazon = provider(r#"{"tags": {}}"#);
    let template = amazon
        .build(&request(
            "https://www.amazon.se/dp/B07SS3RYSL",
            None,
            &[("tag", "guest-21")],
        ))
        .unwrap();
    assert_eq!(
        template.prefix,
        "https://www.amazon.se/dp/B07SS3RYSL?tag=guest-21&ascsubtag="
    );
}

#[test]
fn bad_configs_are_rejected_naming_the_key() {
    let cases = [
        (
            r#"{"tags": {}, "tracking_id": "x"}"#,
            "unknown field `tracking_id`",
        ),
        (r#"{}"#, "missing field `tags`"),
        (
            r#"{"tags": {"amazon.cn": "lw-20"}}"#,
            "tags.\"amazon.cn\": unknown marketplace; must be one of amazon.com",
        ),
        (
            r#"{"tags": {"www.amazon.com": "lw-20"}}"#,
            "tags.\"www.amazon.com\": unknown marketplace",
        ),
        (
            r#"{"tags": {"amazon.de": ""}}"#,
            "tags.\"amazon.de\": the store ID is empty",
        ),
        (
            r#"{"tags": {"amazon.de": "   "}}"#,
            "tags.\"amazon.de\": the store ID is empty",
        ),
        (
            r#"{"tags": {"amazon.de": "lw de-21"}}"#,
            "tags.\"amazon.de\": store ID \"lw de-21\" may hold only letters, digits, '-' and '_'",
        ),
        (
            r#"{"tags": {"amazon.fr": "lw&x=1"}}"#,
            "tags.\"amazon.fr\": store ID \"lw&x=1\"",
        ),
        (
            r#"{"tags": {"amazon.de": "a-21", "Amazon.DE": "b-21"}}"#,
            "marketplace amazon.de is configured twice",
        ),
        (
            r#"{"tags": {}, "default_marketplace": "amazon.cn"}"#,
            "default_marketplace: unknown marketplace \"amazon.cn\"",
        ),
        (r#"{"tags": {}, "subid_max_len": -1}"#, "expected u32"),
        (r#"{"tags": {"amazon.com": 20}}"#, "invalid type"),
        (r#"not json"#, "expected"),
    ];
    for (config, message) in cases {
        let error = Amazon::new(config).unwrap_err();
        assert_eq!(error.status, Status::ConfigRejected, "{config}");
        assert!(
            error.message.contains(message),
            "{config}: {:?} does not contain {message:?}",
            error.message
        );
    }
}

#[test]
fn config_reports_every_problem_at_once() {
    let error = Amazon::new(
        r#"{"tags": {"amazon.xx": "a-20", "amazon.de": "b c"}, "default_marketplace": "nowhere"}"#,
    )
    .unwrap_err();
    assert_eq!(error.status, Status::ConfigRejected);
    for part in [
        "tags.\"amazon.xx\"",
        "tags.\"amazon.de\"",
        "default_marketplace",
    ] {
        assert!(error.message.contains(part), "{part}: {}", error.message);
    }
}

#[test]
fn tag_suffix_is_not_validated() {
    let amazon = provider(r#"{"tags": {"amazon.com": "mysite0a-22", "amazon.co.uk": "shop_uk"}}"#);
    let template = amazon.build(&BuildRequest::new("B08N5WRWNW")).unwrap();
    assert_eq!(
        template.prefix,
        "https://www.amazon.com/dp/B08N5WRWNW?tag=mysite0a-22&ascsubtag="
    );
}

#[test]
fn describe_lists_configured_marketplaces_and_short_hosts() {
    let amazon = provider(
        r#"{"tags": {"amazon.co.uk": "lw-uk-21", "amazon.com": "lw-us-20"}, "default_marketplace": "amazon.co.uk"}"#,
    );
    let mut described: serde_json::Value = serde_json::from_str(&amazon.describe()).unwrap();
    // Its links may point at any marketplace (a `tag` parameter can stand
    // in for a configured store ID).
    let link_hosts = described
        .as_object_mut()
        .unwrap()
        .remove("link_hosts")
        .unwrap();
    assert_eq!(
        link_hosts,
        serde_json::json!(linkwright_model::amazon::MARKETPLACES)
    );
    assert_eq!(
        described,
        serde_json::json!({
            "marketplaces": ["amazon.com", "amazon.co.uk"],
            "default_marketplace": "amazon.co.uk",
            "short_hosts": ["amzn.to", "amzn.eu", "a.co"],
            "subid_max_len": 64,
        })
    );
}

#[test]
fn provider_identity() {
    assert_eq!(Amazon::NAME, "amazon");
    assert_eq!(Amazon::VERSION, env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_search_parameter_builds_a_tracked_search_on_the_marketplace() {
    let p = provider(ALL_TAGS);
    let t = p
        .build(&request(
            "B08N5WRWNW",
            Some("amazon.de"),
            &[("search", "Echo Dot (5th Gen) & more")],
        ))
        .unwrap();
    assert_eq!(
        t.destination,
        "https://www.amazon.de/s?k=Echo+Dot+%285th+Gen%29+%26+more"
    );
    assert_eq!(
        t.prefix,
        "https://www.amazon.de/s?k=Echo+Dot+%285th+Gen%29+%26+more&tag=lw-de-21&ascsubtag="
    );
    assert_eq!(t.marketplace.as_deref(), Some("amazon.de"));
    for bad in ["", "   ", &"x".repeat(201)] {
        let e = p
            .build(&request(
                "B08N5WRWNW",
                Some("amazon.de"),
                &[("search", bad)],
            ))
            .unwrap_err();
        assert_eq!(e.status, Status::InvalidInput, "{bad:?}");
    }
}
