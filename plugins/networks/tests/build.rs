//! Table-driven tests of the networks provider, with one example
//! configuration per supported network shape.
#![allow(clippy::unwrap_used)]

use linkwright_networks::Networks;
use linkwright_plugin_sdk::{BuildRequest, Provider, Status, SubIdEncoding, Template};

/// Rakuten Advertising: `u1` carries the sub-ID, up to 72 characters.
const RAKUTEN: &str = r#"{
    "network": "rakuten",
    "hosts": ["shop.example"],
    "template": "https://click.linksynergy.com/deeplink?id=AbCdEfGh123&mid=24285&murl={url}&u1={subid}",
    "subid_max_len": 72
}"#;

/// eBay Partner Network: parameters appended to the eBay URL itself.
const EBAY: &str = r#"{
    "network": "ebay",
    "hosts": ["ebay.com", "ebay.co.uk", "ebay.de"],
    "append": "mkevt=1&mkcid=1&mkrid=711-53200-19255-0&campid=5338000000&toolid=10001&customid={subid}",
    "subid_max_len": 256
}"#;

/// Skimlinks: `xcust` carries the sub-ID, up to 50 characters.
const SKIMLINKS: &str = r#"{
    "network": "skimlinks",
    "hosts": ["merchant.example", "*.other-merchant.example"],
    "template": "https://go.skimresources.com/?id=12345X678901&xs=1&url={url}&xcust={subid}",
    "subid_max_len": 50
}"#;

/// Impact: `subId1` before the destination; the limit is not confirmed.
const IMPACT: &str = r#"{
    "network": "impact",
    "hosts": ["brand.example"],
    "template": "https://brand.sjv.io/c/1234567/890123/4567?subId1={subid}&u={url}",
    "subid_max_len": 255
}"#;

/// CJ: the sub-ID and the raw destination are path segments; the limit is
/// not confirmed.
const CJ: &str = r#"{
    "network": "cj",
    "hosts": ["store.example"],
    "template": "https://www.anrdoezrs.net/links/1234567/type/dlg/sid/{subid}/{url_raw}",
    "subid_max_len": 64,
    "subid_encoding": "url_safe"
}"#;

fn build(config: &str, input: &str) -> Result<Template, linkwright_plugin_sdk::PluginError> {
    Networks::new(config)
        .unwrap()
        .build(&BuildRequest::new(input))
}

/// A successful build and every field of the template it must make.
struct Built {
    name: &'static str,
    config: &'static str,
    input: &'static str,
    prefix: &'static str,
    suffix: &'static str,
    destination: &'static str,
    marketplace: &'static str,
    subid_max_len: u32,
    subid_encoding: SubIdEncoding,
}

fn assert_builds(cases: &[Built]) {
    for case in cases {
        let template = build(case.config, case.input)
            .unwrap_or_else(|e| panic!("{}: unexpected error {e}", case.name));
        assert_eq!(template.prefix, case.prefix, "{}: prefix", case.name);
        assert_eq!(template.suffix, case.suffix, "{}: suffix", case.name);
        assert_eq!(
            template.destination, case.destination,
            "{}: destination",
            case.name
        );
        assert_eq!(
            template.marketplace.as_deref(),
            Some(case.marketplace),
            "{}: marketplace",
            case.name
        );
        assert_eq!(
            template.subid_max_len, case.subid_max_len,
            "{}: subid_max_len",
            case.name
        );
        assert_eq!(
            template.subid_encoding, case.subid_encoding,
            "{}: encoding",
            case.name
        );
    }
}

#[test]
fn example_networks_make_their_exact_tracked_urls() {
    assert_builds(&[
        Built {
            name: "rakuten_encodes_destination_in_murl_and_ends_with_u1",
            config: RAKUTEN,
            input: "https://www.shop.example/p/42?size=m&colour=red",
            prefix: "https://click.linksynergy.com/deeplink?id=AbCdEfGh123&mid=24285\
                     &murl=https%3A%2F%2Fwww.shop.example%2Fp%2F42%3Fsize%3Dm%26colour%3Dred&u1=",
            suffix: "",
            destination: "https://www.shop.example/p/42?size=m&colour=red",
            marketplace: "rakuten",
            subid_max_len: 72,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
        Built {
            name: "ebay_appends_its_parameters_to_the_item_url",
            config: EBAY,
            input: "https://www.ebay.com/itm/123456789",
            prefix: "https://www.ebay.com/itm/123456789?mkevt=1&mkcid=1&mkrid=711-53200-19255-0\
                     &campid=5338000000&toolid=10001&customid=",
            suffix: "",
            destination: "https://www.ebay.com/itm/123456789",
            marketplace: "ebay",
            subid_max_len: 256,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
        Built {
            name: "skimlinks_encodes_destination_in_url_and_ends_with_xcust",
            config: SKIMLINKS,
            input: "https://merchant.example/basket?a=1#top",
            prefix: "https://go.skimresources.com/?id=12345X678901&xs=1\
                     &url=https%3A%2F%2Fmerchant.example%2Fbasket%3Fa%3D1%23top&xcust=",
            suffix: "",
            destination: "https://merchant.example/basket?a=1#top",
            marketplace: "skimlinks",
            subid_max_len: 50,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
        Built {
            name: "impact_puts_the_destination_after_the_sub_id",
            config: IMPACT,
            input: "https://brand.example/shoes/trail-runner",
            prefix: "https://brand.sjv.io/c/1234567/890123/4567?subId1=",
            suffix: "&u=https%3A%2F%2Fbrand.example%2Fshoes%2Ftrail-runner",
            destination: "https://brand.example/shoes/trail-runner",
            marketplace: "impact",
            subid_max_len: 255,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
        Built {
            name: "cj_puts_sub_id_and_raw_destination_in_the_path",
            config: CJ,
            input: "https://www.store.example/p/1?x=1",
            prefix: "https://www.anrdoezrs.net/links/1234567/type/dlg/sid/",
            suffix: "/https://www.store.example/p/1?x=1",
            destination: "https://www.store.example/p/1?x=1",
            marketplace: "cj",
            subid_max_len: 64,
            subid_encoding: SubIdEncoding::UrlSafe,
        },
    ]);
}

#[test]
fn ebay_append_joins_and_replaces_query_parameters() {
    assert_builds(&[
        Built {
            name: "url_with_a_query_gets_an_ampersand",
            config: EBAY,
            input: "https://www.ebay.co.uk/itm/1?var=2&hash=item1",
            prefix: "https://www.ebay.co.uk/itm/1?var=2&hash=item1&mkevt=1&mkcid=1\
                     &mkrid=711-53200-19255-0&campid=5338000000&toolid=10001&customid=",
            suffix: "",
            destination: "https://www.ebay.co.uk/itm/1?var=2&hash=item1",
            marketplace: "ebay",
            subid_max_len: 256,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
        Built {
            name: "existing_customid_and_campid_are_replaced_and_fragment_kept_last",
            config: EBAY,
            input: "https://www.ebay.de/itm/1?customid=visitor&var=2&campid=999&mkevt=1#desc",
            prefix: "https://www.ebay.de/itm/1?var=2&mkevt=1&mkcid=1\
                     &mkrid=711-53200-19255-0&campid=5338000000&toolid=10001&customid=",
            suffix: "#desc",
            destination: "https://www.ebay.de/itm/1?customid=visitor&var=2&campid=999&mkevt=1#desc",
            marketplace: "ebay",
            subid_max_len: 256,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
        Built {
            name: "percent_encoded_parameter_name_is_still_replaced",
            config: EBAY,
            input: "https://ebay.com/itm/1?custom%69d=x",
            prefix: "https://ebay.com/itm/1?mkevt=1&mkcid=1\
                     &mkrid=711-53200-19255-0&campid=5338000000&toolid=10001&customid=",
            suffix: "",
            destination: "https://ebay.com/itm/1?custom%69d=x",
            marketplace: "ebay",
            subid_max_len: 256,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
        Built {
            name: "empty_query_gets_no_second_question_mark",
            config: EBAY,
            input: "https://www.ebay.com/itm/1?",
            prefix: "https://www.ebay.com/itm/1?mkevt=1&mkcid=1\
                     &mkrid=711-53200-19255-0&campid=5338000000&toolid=10001&customid=",
            suffix: "",
            destination: "https://www.ebay.com/itm/1?",
            marketplace: "ebay",
            subid_max_len: 256,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
    ]);
}

#[test]
fn hosts_match_subdomains_case_insensitively() {
    assert_builds(&[
        Built {
            name: "subdomain_of_a_tracked_host",
            config: EBAY,
            input: "HTTPS://M.EBAY.DE/itm/1",
            prefix: "https://m.ebay.de/itm/1?mkevt=1&mkcid=1\
                     &mkrid=711-53200-19255-0&campid=5338000000&toolid=10001&customid=",
            suffix: "",
            destination: "https://m.ebay.de/itm/1",
            marketplace: "ebay",
            subid_max_len: 256,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
        Built {
            name: "wildcard_host_matches_the_domain_itself",
            config: SKIMLINKS,
            input: "http://other-merchant.example/",
            prefix: "https://go.skimresources.com/?id=12345X678901&xs=1\
                     &url=http%3A%2F%2Fother-merchant.example%2F&xcust=",
            suffix: "",
            destination: "http://other-merchant.example/",
            marketplace: "skimlinks",
            subid_max_len: 50,
            subid_encoding: SubIdEncoding::Alphanumeric,
        },
    ]);
}

#[test]
fn inputs_this_instance_does_not_serve_are_declined() {
    let cases = [
        ("host_not_tracked", EBAY, "https://www.ebay.fr/itm/1"),
        ("lookalike_host", EBAY, "https://notebay.com/itm/1"),
        (
            "tracked_host_as_a_prefix",
            RAKUTEN,
            "https://shop.example.evil.test/p",
        ),
        ("bare_id", RAKUTEN, "123456789"),
        ("other_scheme", RAKUTEN, "ftp://shop.example/p"),
        ("ip_address", CJ, "http://192.0.2.7/p"),
    ];
    for (name, config, input) in cases {
        let error = build(config, input).unwrap_err();
        assert_eq!(error.status, Status::Declined, "{name}: {error}");
    }
}

#[test]
fn malformed_http_urls_are_invalid_input() {
    for input in ["https://shop exam ple/p", "http://", "https://[::1/p"] {
        let error = build(RAKUTEN, input).unwrap_err();
        assert_eq!(error.status, Status::InvalidInput, "{input}: {error}");
        assert!(error.message.contains("malformed URL"), "{input}: {error}");
    }
}

#[test]
fn describe_reports_network_hosts_and_pattern() {
    let described: serde_json::Value =
        serde_json::from_str(&Networks::new(SKIMLINKS).unwrap().describe()).unwrap();
    assert_eq!(
        described,
        serde_json::json!({
            "network": "skimlinks",
            "hosts": ["merchant.example", "other-merchant.example"],
            "template": "https://go.skimresources.com/?id=12345X678901&xs=1&url={url}&xcust={subid}",
            "subid_max_len": 50,
            "subid_encoding": "alphanumeric",
            "link_hosts": ["go.skimresources.com"],
        })
    );
    let described: serde_json::Value =
        serde_json::from_str(&Networks::new(EBAY).unwrap().describe()).unwrap();
    assert_eq!(
        described["append"],
        "mkevt=1&mkcid=1&mkrid=711-53200-19255-0&campid=5338000000&toolid=10001&customid={subid}"
    );
    assert_eq!(
        described["hosts"],
        serde_json::json!(["ebay.com", "ebay.co.uk", "ebay.de"])
    );
    // Appended to the destination: its links point at the hosts it tracks.
    assert_eq!(described["link_hosts"], described["hosts"]);
}

/// Wraps a template, append or other keys into an otherwise valid config.
fn config_with(fields: &str) -> String {
    format!(r#"{{"network": "test", "hosts": ["shop.example"], {fields}}}"#)
}

#[test]
fn rejects_bad_configs_naming_the_key() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "template_without_subid",
            config_with(r#""template": "https://t.example/?u={url}", "subid_max_len": 10"#),
            &["template: must contain {subid} (the click sub-ID slot) exactly once; it has none"],
        ),
        (
            "template_with_subid_twice",
            config_with(r#""template": "https://t.example/?a={subid}&b={subid}", "subid_max_len": 10"#),
            &["template: must contain {subid} exactly once; it has it 2 times"],
        ),
        (
            "template_with_unknown_placeholder",
            config_with(r#""template": "https://t.example/?s={subid}&u={URL}", "subid_max_len": 10"#),
            &["template: has an unknown placeholder {URL}; the placeholders are {url}, {url_raw}, {subid}"],
        ),
        (
            "template_with_unmatched_brace",
            config_with(r#""template": "https://t.example/?s={subid}&u={url", "subid_max_len": 10"#),
            &["template: has a '{' without a matching '}'"],
        ),
        (
            "template_not_http",
            config_with(r#""template": "ftp://t.example/?s={subid}", "subid_max_len": 10"#),
            &["template: \"ftp://t.example/?s={subid}\" must start with https:// or http://"],
        ),
        (
            "template_that_is_not_a_url",
            config_with(r#""template": "https://t exa mple/?s={subid}", "subid_max_len": 10"#),
            &["template: \"https://t exa mple/?s={subid}\" does not make a valid URL"],
        ),
        (
            "both_template_and_append",
            config_with(
                r#""template": "https://t.example/?s={subid}", "append": "c={subid}", "subid_max_len": 10"#,
            ),
            &["template, append: give exactly one of them, not both"],
        ),
        (
            "neither_template_nor_append",
            config_with(r#""subid_max_len": 10"#),
            &["template, append: give exactly one of them"],
        ),
        (
            "zero_subid_max_len",
            config_with(r#""template": "https://t.example/?s={subid}", "subid_max_len": 0"#),
            &["subid_max_len: must be greater than 0"],
        ),
        (
            "missing_subid_max_len",
            config_with(r#""template": "https://t.example/?s={subid}""#),
            &["missing field `subid_max_len`"],
        ),
        (
            "append_without_subid",
            config_with(r#""append": "campid=1", "subid_max_len": 10"#),
            &["append: must contain {subid}"],
        ),
        (
            "append_with_url_placeholder",
            config_with(r#""append": "u={url}&c={subid}", "subid_max_len": 10"#),
            &["append: has an unknown placeholder {url}; the placeholders are {subid}"],
        ),
        (
            "append_with_a_pair_without_value",
            config_with(r#""append": "campid&c={subid}", "subid_max_len": 10"#),
            &["append: \"campid\" is not a name=value pair"],
        ),
        (
            "unknown_subid_encoding",
            config_with(r#""template": "https://t.example/?s={subid}", "subid_max_len": 10, "subid_encoding": "base64""#),
            &["unknown variant `base64`"],
        ),
        (
            "unknown_key",
            config_with(r#""template": "https://t.example/?s={subid}", "subid_max_len": 10, "subid_max_length": 10"#),
            &["unknown field `subid_max_length`"],
        ),
        (
            "every_problem_is_reported_at_once",
            r#"{"network": "", "hosts": ["https://shop.example/", "a.example", "www.a.example"],
                "template": "https://t.example/", "subid_max_len": 0}"#
                .to_owned(),
            &[
                "network: must not be empty",
                "hosts[0]: \"https://shop.example/\" is a URL",
                "hosts[2]: duplicate host a.example",
                "template: must contain {subid}",
                "subid_max_len: must be greater than 0",
            ],
        ),
        (
            "empty_hosts",
            r#"{"network": "n", "hosts": [], "template": "https://t.example/?s={subid}", "subid_max_len": 5}"#
                .to_owned(),
            &["hosts: must list at least one host"],
        ),
    ];
    for (name, config, messages) in cases {
        let error = match Networks::new(config) {
            Ok(networks) => panic!("{name}: accepted, {networks:?}"),
            Err(e) => e,
        };
        assert_eq!(error.status, Status::ConfigRejected, "{name}");
        for message in *messages {
            assert!(
                error.message.contains(message),
                "{name}: message {:?} lacks {message:?}",
                error.message
            );
        }
    }
}

/// Regression (found by tests/properties.rs, the no-open-redirect property):
/// the append style copied the destination's user info into the tracked
/// link, `https://evil.example@ebay.com/…`, a phishing-shaped URL.
#[test]
fn user_info_of_the_destination_is_dropped() {
    let t = build(EBAY, "https://evil.example:pw@www.ebay.com/itm/1?x=1").unwrap();
    assert_eq!(
        t.prefix,
        "https://www.ebay.com/itm/1?x=1&mkevt=1&mkcid=1&mkrid=711-53200-19255-0&campid=5338000000&toolid=10001&customid="
    );
    assert_eq!(t.destination, "https://www.ebay.com/itm/1?x=1");
    let t = build(RAKUTEN, "https://evil.example@shop.example/p").unwrap();
    assert!(!t.prefix.contains("evil"), "{}", t.prefix);
    assert_eq!(t.destination, "https://shop.example/p");
}

/// Regression (found by the plugin_networks fuzz target): `ebay.com..` lost
/// every trailing dot when matched, so it was tracked as eBay, in a link to
/// a name with an empty label. Names with an empty label are declined; one
/// trailing dot (a fully qualified name) is still the same host.
#[test]
fn hosts_with_an_empty_label_are_declined() {
    for input in [
        "https://ebay.com../itm/1",
        "https://www..ebay.com/itm/1",
        "https://.ebay.com/itm/1",
    ] {
        let e = build(EBAY, input).unwrap_err();
        assert_eq!(e.status, Status::Declined, "{input}");
    }
    assert!(build(EBAY, "https://www.ebay.com./itm/1").is_ok());
}
