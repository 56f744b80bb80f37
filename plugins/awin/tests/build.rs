//! Table-driven tests of the Awin provider: configuration in, templates or
//! exact errors out.
#![allow(clippy::unwrap_used)]

use linkwright_awin::Awin;
use linkwright_plugin_sdk::{BuildRequest, PluginError, Provider, Status, SubIdEncoding, Template};

const CONFIG: &str = r#"{
    "publisher_id": "123456",
    "advertisers": [
        {"id": "1001", "name": "Example Shop", "domains": ["example.com", "www.example.co.uk"]},
        {"id": "1002", "name": "Landing Co", "domains": ["landing.test"],
         "default_landing": "https://www.landing.test/welcome?src=awin"},
        {"id": "1003", "name": "No Deep", "domains": ["nodeep.test"], "deeplinks": false},
        {"id": "1004", "name": "Pending", "domains": ["pending.test"], "approved": false},
        {"id": "1005", "name": "Example Outlet", "domains": ["outlet.example.com"]}
    ]
}"#;

const CREAD: &str = "https://www.awin1.com/cread.php";

fn awin() -> Awin {
    Awin::new(CONFIG).unwrap()
}

fn build(
    awin: &Awin,
    input: &str,
    params: &[(&'static str, &'static str)],
) -> Result<Template, PluginError> {
    let mut request = BuildRequest::new(input);
    request.params = params.to_vec();
    awin.build(&request)
}

/// A successful build: exact prefix, destination and marketplace.
struct Built {
    name: &'static str,
    input: &'static str,
    params: &'static [(&'static str, &'static str)],
    prefix: &'static str,
    destination: &'static str,
    marketplace: &'static str,
}

fn assert_builds(cases: &[Built]) {
    let awin = awin();
    for case in cases {
        let template = build(&awin, case.input, case.params)
            .unwrap_or_else(|e| panic!("{}: unexpected error {e}", case.name));
        assert_eq!(template.prefix, case.prefix, "{}: prefix", case.name);
        assert_eq!(template.suffix, "", "{}: suffix", case.name);
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
        assert_eq!(template.subid_max_len, 50, "{}: subid_max_len", case.name);
        assert_eq!(
            template.subid_encoding,
            SubIdEncoding::Alphanumeric,
            "{}: encoding",
            case.name
        );
        assert!(template.prefix.starts_with(CREAD), "{}", case.name);
        assert_eq!(
            template.prefix.matches("clickref=").count(),
            1,
            "{}: one clickref",
            case.name
        );
    }
}

#[test]
fn deep_links_carry_params_and_the_encoded_destination() {
    assert_builds(&[
        Built {
            name: "deep_link_carries_campaign_and_clickref2_to_6_in_order",
            input: "https://www.example.com/products/widget?colour=red",
            params: &[
                ("clickref6", "f"),
                ("campaign", "summer sale"),
                ("clickref2", "a&b"),
                ("clickref3", "c"),
                ("clickref4", "d"),
                ("clickref5", "e/é"),
            ],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
                     &campaign=summer%20sale&clickref2=a%26b&clickref3=c&clickref4=d\
                     &clickref5=e%2F%C3%A9&clickref6=f\
                     &ued=https%3A%2F%2Fwww.example.com%2Fproducts%2Fwidget%3Fcolour%3Dred\
                     &clickref=",
            destination: "https://www.example.com/products/widget?colour=red",
            marketplace: "1001",
        },
        Built {
            name: "deep_link_without_params_has_only_ued",
            input: "https://example.com/p/1",
            params: &[],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
                     &ued=https%3A%2F%2Fexample.com%2Fp%2F1&clickref=",
            destination: "https://example.com/p/1",
            marketplace: "1001",
        },
        Built {
            name: "empty_param_values_are_omitted",
            input: "https://example.com/p/1",
            params: &[("campaign", ""), ("clickref3", "x")],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
                     &clickref3=x&ued=https%3A%2F%2Fexample.com%2Fp%2F1&clickref=",
            destination: "https://example.com/p/1",
            marketplace: "1001",
        },
        Built {
            name: "destination_query_and_fragment_are_encoded_as_one_component",
            input: "https://example.com/search?q=a b&x=1+2#reviews",
            params: &[],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
                     &ued=https%3A%2F%2Fexample.com%2Fsearch%3Fq%3Da%2520b%26x%3D1%2B2%23reviews\
                     &clickref=",
            destination: "https://example.com/search?q=a%20b&x=1+2#reviews",
            marketplace: "1001",
        },
    ]);
}

#[test]
fn clickref_param_is_ignored() {
    assert_builds(&[Built {
        name: "clickref_param_is_ignored_because_the_click_sub_id_owns_it",
        input: "https://example.com/p/1",
        params: &[("clickref", "visitor-value"), ("clickref2", "kept")],
        prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
                     &clickref2=kept&ued=https%3A%2F%2Fexample.com%2Fp%2F1&clickref=",
        destination: "https://example.com/p/1",
        marketplace: "1001",
    }]);
}

#[test]
fn home_page_links_use_default_landing_or_no_ued() {
    assert_builds(&[
        Built {
            name: "home_page_without_default_landing_has_no_ued",
            input: "https://example.com",
            params: &[],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456&clickref=",
            destination: "https://example.com/",
            marketplace: "1001",
        },
        Built {
            name: "home_page_with_www_is_still_the_home_page",
            input: "https://www.example.com/",
            params: &[("campaign", "c1")],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456&campaign=c1&clickref=",
            destination: "https://www.example.com/",
            marketplace: "1001",
        },
        Built {
            name: "home_page_with_default_landing_goes_there",
            input: "https://www.landing.test/",
            params: &[],
            prefix: "https://www.awin1.com/cread.php?awinmid=1002&awinaffid=123456\
                     &ued=https%3A%2F%2Fwww.landing.test%2Fwelcome%3Fsrc%3Dawin&clickref=",
            destination: "https://www.landing.test/",
            marketplace: "1002",
        },
        Built {
            name: "home_page_of_advertiser_without_deep_links_is_allowed",
            input: "http://nodeep.test/",
            params: &[],
            prefix: "https://www.awin1.com/cread.php?awinmid=1003&awinaffid=123456&clickref=",
            destination: "http://nodeep.test/",
            marketplace: "1003",
        },
    ]);
}

#[test]
fn advertiser_is_found_by_host() {
    assert_builds(&[
        Built {
            name: "subdomain_matches_its_domain_and_configured_www_is_ignored",
            input: "https://m.example.co.uk/item/1",
            params: &[],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
                     &ued=https%3A%2F%2Fm.example.co.uk%2Fitem%2F1&clickref=",
            destination: "https://m.example.co.uk/item/1",
            marketplace: "1001",
        },
        Built {
            name: "host_match_is_case_insensitive",
            input: "HTTPS://WWW.EXAMPLE.COM/Path",
            params: &[],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
                     &ued=https%3A%2F%2Fwww.example.com%2FPath&clickref=",
            destination: "https://www.example.com/Path",
            marketplace: "1001",
        },
        Built {
            name: "most_specific_domain_wins",
            input: "https://outlet.example.com/deal",
            params: &[],
            prefix: "https://www.awin1.com/cread.php?awinmid=1005&awinaffid=123456\
                     &ued=https%3A%2F%2Foutlet.example.com%2Fdeal&clickref=",
            destination: "https://outlet.example.com/deal",
            marketplace: "1005",
        },
        Built {
            name: "forced_advertiser_overrides_the_more_specific_domain",
            input: "https://outlet.example.com/deal",
            params: &[("advertiser", "1001")],
            prefix: "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
                     &ued=https%3A%2F%2Foutlet.example.com%2Fdeal&clickref=",
            destination: "https://outlet.example.com/deal",
            marketplace: "1001",
        },
    ]);
}

/// A failed build: exact status and a fragment of the message.
struct Refused {
    name: &'static str,
    input: &'static str,
    params: &'static [(&'static str, &'static str)],
    status: Status,
    message: &'static str,
}

fn assert_refused(cases: &[Refused]) {
    let awin = awin();
    for case in cases {
        let error = match build(&awin, case.input, case.params) {
            Ok(t) => panic!("{}: expected {}, got {t:?}", case.name, case.status),
            Err(e) => e,
        };
        assert_eq!(error.status, case.status, "{}: {error}", case.name);
        assert!(
            error.message.contains(case.message),
            "{}: message {:?} lacks {:?}",
            case.name,
            error.message,
            case.message
        );
    }
}

#[test]
fn inputs_this_instance_does_not_serve_are_declined() {
    assert_refused(&[
        Refused {
            name: "unknown_domain_is_declined",
            input: "https://www.unknown.test/p/1",
            params: &[],
            status: Status::Declined,
            message: "",
        },
        Refused {
            name: "lookalike_domain_is_declined",
            input: "https://notexample.com/p/1",
            params: &[],
            status: Status::Declined,
            message: "",
        },
        Refused {
            name: "bare_product_id_is_declined",
            input: "B000123456",
            params: &[],
            status: Status::Declined,
            message: "",
        },
        Refused {
            name: "other_scheme_is_declined",
            input: "ftp://example.com/p/1",
            params: &[],
            status: Status::Declined,
            message: "",
        },
        Refused {
            name: "ip_address_host_is_declined",
            input: "https://192.0.2.1/p/1",
            params: &[],
            status: Status::Declined,
            message: "",
        },
    ]);
}

#[test]
fn malformed_http_urls_are_invalid_input() {
    assert_refused(&[
        Refused {
            name: "malformed_https_url_is_invalid_input",
            input: "https://exa mple.com/p/1",
            params: &[],
            status: Status::InvalidInput,
            message: "malformed URL",
        },
        Refused {
            name: "https_scheme_without_host_is_invalid_input",
            input: "https://",
            params: &[],
            status: Status::InvalidInput,
            message: "malformed URL",
        },
    ]);
}

#[test]
fn advertiser_policy_refuses_deep_links_and_unapproved_publishers() {
    assert_refused(&[
        Refused {
            name: "deep_link_to_advertiser_without_deep_links_is_refused",
            input: "https://nodeep.test/item/9",
            params: &[],
            status: Status::DeeplinkNotPermitted,
            message: "advertiser No Deep (1003) does not permit deep links",
        },
        Refused {
            name: "home_page_with_query_is_a_deep_link",
            input: "https://nodeep.test/?ref=x",
            params: &[],
            status: Status::DeeplinkNotPermitted,
            message: "No Deep (1003)",
        },
        Refused {
            name: "subdomain_root_is_a_deep_link",
            input: "https://blog.nodeep.test/",
            params: &[],
            status: Status::DeeplinkNotPermitted,
            message: "No Deep (1003)",
        },
        Refused {
            name: "unapproved_advertiser_is_refused",
            input: "https://pending.test/",
            params: &[],
            status: Status::NotApproved,
            message: "publisher 123456 is not approved for advertiser Pending (1004)",
        },
    ]);
}

#[test]
fn forced_advertiser_must_be_configured_and_serve_the_host() {
    assert_refused(&[
        Refused {
            name: "forced_advertiser_unknown_is_unsupported_host",
            input: "https://example.com/p/1",
            params: &[("advertiser", "9999")],
            status: Status::UnsupportedHost,
            message: "no Awin advertiser with id 9999 is configured",
        },
        Refused {
            name: "forced_advertiser_with_foreign_host_is_invalid_input",
            input: "https://example.com/p/1",
            params: &[("advertiser", "1003")],
            status: Status::InvalidInput,
            message: "example.com is not a domain of Awin advertiser No Deep (1003)",
        },
    ]);
}

#[test]
fn subid_max_len_is_configurable() {
    let awin = Awin::new(
        r#"{"publisher_id": "1", "subid_max_len": 16,
            "advertisers": [{"id": "2", "name": "A", "domains": ["a.test"]}]}"#,
    )
    .unwrap();
    let template = build(&awin, "https://a.test/x", &[]).unwrap();
    assert_eq!(template.subid_max_len, 16);
}

#[test]
fn ids_may_be_written_as_integers() {
    let awin = Awin::new(
        r#"{"publisher_id": 123456, "advertisers": [{"id": 42, "name": "A", "domains": ["a.test"]}]}"#,
    )
    .unwrap();
    let template = build(&awin, "https://a.test/x", &[]).unwrap();
    assert_eq!(
        template.prefix,
        "https://www.awin1.com/cread.php?awinmid=42&awinaffid=123456&ued=https%3A%2F%2Fa.test%2Fx&clickref="
    );
}

#[test]
fn describe_lists_publisher_and_normalised_advertisers() {
    let described: serde_json::Value = serde_json::from_str(&awin().describe()).unwrap();
    assert_eq!(described["publisher_id"], "123456");
    assert_eq!(
        described["link_hosts"],
        serde_json::json!(["www.awin1.com"])
    );
    assert_eq!(
        described["advertisers"][0],
        serde_json::json!({
            "id": "1001",
            "name": "Example Shop",
            "domains": ["example.com", "example.co.uk"],
            "deeplinks": true,
            "approved": true,
        })
    );
    assert_eq!(described["advertisers"][2]["deeplinks"], false);
    assert_eq!(described["advertisers"][3]["approved"], false);
    assert_eq!(described["advertisers"].as_array().unwrap().len(), 5);
}

/// A rejected configuration and fragments its message must hold.
struct Rejected {
    name: &'static str,
    config: &'static str,
    messages: &'static [&'static str],
}

#[test]
fn rejects_bad_configs_naming_the_key() {
    let cases = [
        Rejected {
            name: "duplicate_domain_across_advertisers",
            config: r#"{"publisher_id": "1", "advertisers": [
                {"id": "2", "name": "A", "domains": ["a.test"]},
                {"id": "3", "name": "B", "domains": ["b.test", "WWW.A.test"]}]}"#,
            messages: &[
                "advertisers[1].domains[1]: duplicate domain a.test, already listed for advertisers[0]",
            ],
        },
        Rejected {
            name: "publisher_id_not_digits",
            config: r#"{"publisher_id": "12a", "advertisers": []}"#,
            messages: &["publisher_id: \"12a\" is not an Awin publisher id"],
        },
        Rejected {
            name: "publisher_id_empty",
            config: r#"{"publisher_id": ""}"#,
            messages: &["publisher_id:"],
        },
        Rejected {
            name: "publisher_id_missing",
            config: r#"{"advertisers": []}"#,
            messages: &["missing field `publisher_id`"],
        },
        Rejected {
            name: "unknown_key_is_an_error",
            config: r#"{"publisher_id": "1", "advertisers": [
                {"id": "2", "name": "A", "domains": ["a.test"], "deeplink": false}]}"#,
            messages: &["unknown field `deeplink`"],
        },
        Rejected {
            name: "advertiser_id_not_digits_and_duplicate_id",
            config: r#"{"publisher_id": "1", "advertisers": [
                {"id": "x2", "name": "A", "domains": ["a.test"]},
                {"id": "3", "name": "B", "domains": ["b.test"]},
                {"id": "3", "name": "C", "domains": ["c.test"]}]}"#,
            messages: &[
                "advertisers[0].id: \"x2\" is not an Awin advertiser id",
                "advertisers[2].id: advertiser id 3 is already configured at advertisers[1]",
            ],
        },
        Rejected {
            name: "domain_given_as_url_or_empty_list",
            config: r#"{"publisher_id": "1", "advertisers": [
                {"id": "2", "name": "A", "domains": ["https://a.test/"]},
                {"id": "3", "name": "B", "domains": []}]}"#,
            messages: &[
                "advertisers[0].domains[0]: \"https://a.test/\" is a URL",
                "advertisers[1].domains: must list at least one domain",
            ],
        },
        Rejected {
            name: "default_landing_not_a_url",
            config: r#"{"publisher_id": "1", "advertisers": [
                {"id": "2", "name": "A", "domains": ["a.test"], "default_landing": "a.test/sale"}]}"#,
            messages: &["advertisers[0].default_landing: \"a.test/sale\" is not a URL"],
        },
        Rejected {
            name: "every_problem_is_reported_at_once",
            config: r#"{"publisher_id": "p", "advertisers": [
                {"id": "2", "name": " ", "domains": ["a.test"]}]}"#,
            messages: &["publisher_id:", "advertisers[0].name: must not be empty"],
        },
    ];
    for case in cases {
        let error = match Awin::new(case.config) {
            Ok(awin) => panic!("{}: accepted, {awin:?}", case.name),
            Err(e) => e,
        };
        assert_eq!(error.status, Status::ConfigRejected, "{}", case.name);
        for message in case.messages {
            assert!(
                error.message.contains(message),
                "{}: message {:?} lacks {:?}",
                case.name,
                error.message,
                message
            );
        }
    }
}
