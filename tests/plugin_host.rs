//! The plugin host against real plugin files: the bundled Rust plugins as
//! cargo built them, fixture plugins for every way loading can fail (C ones
//! compiled here with the system compiler, a Rust one that rejects its config
//! or panics), and the C example plugin.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{compile_c, plugin_file, repo_root, scratch};
use linkwright_core::config::Config;
use linkwright_core::plugin::{LoadError, Providers};
use linkwright_core::{BuildRequest, ClickIdGenerator, ErrorCode};

/// Loads a config whose providers name plugin files directly.
fn load(providers: &[(&str, &Path, &str)]) -> Providers {
    let mut text = String::new();
    for (name, file, settings) in providers {
        text.push_str(&format!(
            "[[providers]]\nname = \"{name}\"\nplugin = \"{}\"\n[providers.config]\n{settings}\n",
            file.display()
        ));
    }
    Config::from_toml_str(&text).unwrap().load_providers()
}

/// The single refusal of a one-provider config.
fn refusal(file: &Path, settings: &str) -> LoadError {
    let providers = load(&[("p", file, settings)]);
    assert!(providers.loaded().is_empty(), "{file:?} should be refused");
    assert_eq!(providers.refused().len(), 1);
    providers.refused()[0].error.clone()
}

fn bad_c_plugin(variant: &str) -> PathBuf {
    let dir = scratch(variant);
    compile_c(
        &repo_root().join("tests/fixtures/c/bad_plugin.c"),
        &[&format!("LW_FIXTURE_{variant}")],
        &dir,
        &format!("libbad_{}.so", variant.to_lowercase()),
    )
    .canonicalize()
    .unwrap()
}

const AMAZON: &str = "tags = { \"amazon.com\" = \"lw-20\", \"amazon.de\" = \"lw-21\" }";

#[test]
fn bundled_plugin_loads_and_builds_a_template() {
    let providers = load(&[("amazon", &plugin_file("amazon"), AMAZON)]);
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    let lib = providers.loaded()[0].library();
    assert_eq!(
        (lib.name.as_str(), lib.abi_major, lib.abi_minor),
        ("amazon", 1, 0)
    );
    assert!(lib.catches_panics);
    let t = providers
        .build(&BuildRequest {
            input: "https://www.amazon.de/Some-Product/dp/B08N5WRWNW/ref=sr_1_1?tag=other-21",
            ..Default::default()
        })
        .unwrap();
    assert_eq!(t.provider, "amazon");
    assert_eq!(
        t.display(),
        "https://www.amazon.de/dp/B08N5WRWNW?tag=lw-21&ascsubtag={click_id}"
    );
    let id = ClickIdGenerator::new(0).next_id();
    assert_eq!(
        t.fill(&id),
        format!("https://www.amazon.de/dp/B08N5WRWNW?tag=lw-21&ascsubtag={id}")
    );
}

/// The fuzz targets' path: the same answers as the budgeted build, for
/// templates, declines, refused inputs and unknown providers alike.
#[test]
fn building_on_this_thread_answers_as_the_budgeted_build_does() {
    let providers = load(&[("amazon", &plugin_file("amazon"), AMAZON)]);
    let tag = [("tag".to_owned(), "x-20".to_owned())];
    let requests = [
        BuildRequest {
            input: "https://www.amazon.de/dp/B08N5WRWNW",
            ..Default::default()
        },
        BuildRequest {
            input: "B08N5WRWNW",
            marketplace: Some("amazon.com"),
            params: &tag,
            ..Default::default()
        },
        BuildRequest {
            input: "https://shop.example/a",
            ..Default::default()
        },
        BuildRequest {
            input: "https://shop.example/a",
            provider: Some("amazon"),
            ..Default::default()
        },
        BuildRequest {
            input: "https://www.amazon.de/dp/B08N5WRWNW",
            provider: Some("nobody"),
            ..Default::default()
        },
        BuildRequest {
            input: "  ",
            ..Default::default()
        },
    ];
    let mut built = 0;
    for req in &requests {
        let here = providers.build_on_this_thread(req);
        built += usize::from(here.is_ok());
        assert_eq!(
            format!("{here:?}"),
            format!("{:?}", providers.build(req)),
            "{req:?}"
        );
    }
    assert_eq!(built, 2, "the two amazon inputs build templates");
}

#[test]
fn plugin_not_found_names_the_file_and_every_folder_searched() {
    let dir = scratch("empty-plugins");
    let config = Config::from_toml_str(&format!(
        "[plugins]\ndirs = [\"{}\"]\n[[providers]]\nname = \"nosuch\"\nplugin = \"nosuch\"\n",
        dir.display()
    ))
    .unwrap();
    let providers = config.load_providers();
    let error = &providers.refused()[0].error;
    // The configured folder first, then the built-in ones: this test
    // binary's folder (cargo's `target/<profile>/deps`).
    let mut searched = vec![dir.clone()];
    searched.extend(linkwright_core::config::default_plugin_dirs());
    assert_eq!(searched[1], common::deps_dir());
    assert_eq!(
        error,
        &LoadError::NotFound {
            plugin: "nosuch".into(),
            file_name: "liblinkwright_nosuch.so".into(),
            searched,
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "plugin `nosuch` not found: no liblinkwright_nosuch.so in {}, {}",
            dir.display(),
            common::deps_dir().display()
        )
    );
}

#[test]
fn missing_plugin_path_is_refused() {
    let path = scratch("missing").join("libnothing.so");
    assert!(matches!(
        refusal(&path, ""),
        LoadError::Missing { path: p, .. } if p == path
    ));
}

#[test]
fn file_that_is_not_a_shared_library_is_refused() {
    let path = scratch("text").join("libtext.so");
    std::fs::write(&path, "this is not an ELF file\n").unwrap();
    let path = path.canonicalize().unwrap();
    let error = refusal(&path, "");
    let LoadError::NotALibrary { path: p, reason } = &error else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(p, &path);
    assert!(reason.contains("libtext.so"), "{reason}");
    assert!(error.to_string().starts_with(&format!(
        "{} is not a plugin: it is not a loadable shared library",
        path.display()
    )));
}

#[test]
fn library_without_the_entry_symbol_is_not_a_plugin() {
    let path = bad_c_plugin("NO_SYMBOL");
    let error = refusal(&path, "");
    assert_eq!(error, LoadError::NoEntrySymbol { path: path.clone() });
    assert_eq!(
        error.to_string(),
        format!(
            "{} is not a linkwright plugin: it exports no `linkwright_plugin_v1` symbol",
            path.display()
        )
    );
}

#[test]
fn plugin_for_another_abi_major_says_what_it_exports_and_what_the_host_expects() {
    let path = bad_c_plugin("WRONG_MAJOR");
    let error = refusal(&path, "");
    assert_eq!(
        error.to_string(),
        format!(
            "{} speaks another plugin ABI: it exports `linkwright_plugin_v2`; \
             this host expects `linkwright_plugin_v1` (ABI major 1)",
            path.display()
        )
    );
}

#[test]
fn descriptor_with_another_major_is_refused() {
    let path = bad_c_plugin("MAJOR_FIELD_MISMATCH");
    assert_eq!(
        refusal(&path, ""),
        LoadError::AbiMismatch {
            path,
            exports: "linkwright_plugin_v1 with a descriptor for ABI major 7".into(),
        }
    );
}

/// Regression: the loader read the header unaligned, then made an aligned
/// reference to the descriptor all the same (undefined behaviour for a
/// misaligned pointer). Now a misaligned descriptor is refused unread.
#[test]
fn misaligned_descriptor_is_refused_before_it_is_read() {
    let path = bad_c_plugin("MISALIGNED");
    match refusal(&path, "") {
        LoadError::MisalignedDescriptor {
            path: p,
            address,
            align,
        } => {
            assert_eq!(p, path);
            assert_eq!(align, std::mem::align_of::<usize>());
            assert_ne!(address % align, 0);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_magic_is_refused() {
    let path = bad_c_plugin("BAD_MAGIC");
    let error = refusal(&path, "");
    assert_eq!(
        error,
        LoadError::BadMagic {
            path: path.clone(),
            found: 0xDEAD_BEEF
        }
    );
    assert!(
        error
            .to_string()
            .ends_with("bad plugin descriptor: magic is 0xdeadbeef, expected 0x4c50574c"),
        "{error}"
    );
}

#[test]
fn descriptor_too_small_is_refused() {
    let path = bad_c_plugin("SMALL_STRUCT");
    assert_eq!(
        refusal(&path, ""),
        LoadError::DescriptorTooSmall {
            path,
            size: 16,
            expected: 88, // ABI 1.0 on a 64-bit target
        }
    );
}

#[test]
fn null_descriptor_is_refused() {
    let path = bad_c_plugin("NULL_DESCRIPTOR");
    assert_eq!(refusal(&path, ""), LoadError::NullDescriptor { path });
}

#[test]
fn descriptor_without_build_is_refused() {
    let path = bad_c_plugin("MISSING_BUILD");
    assert_eq!(
        refusal(&path, ""),
        LoadError::MissingFunction {
            path,
            which: "build"
        }
    );
}

#[test]
fn failing_init_is_refused_with_the_plugins_message() {
    let path = bad_c_plugin("INIT_FAILS");
    let error = refusal(&path, "");
    assert_eq!(
        error,
        LoadError::InitFailed {
            path: path.clone(),
            message: "database of widgets missing".into()
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{} failed to initialise: database of widgets missing",
            path.display()
        )
    );
}

#[test]
fn rejected_config_carries_the_plugins_own_message() {
    let path = plugin_file("fixture").canonicalize().unwrap();
    let error = refusal(&path, "reject = \"widgets must be blue\"");
    assert_eq!(
        error,
        LoadError::ConfigRejected {
            provider: "p".into(),
            path: path.clone(),
            message: "widgets must be blue".into(),
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "plugin {} rejected the configuration of provider `p`: widgets must be blue",
            path.display()
        )
    );
}

#[test]
fn bundled_plugin_rejects_an_unknown_key_naming_it() {
    let path = plugin_file("amazon").canonicalize().unwrap();
    let LoadError::ConfigRejected { message, .. } = refusal(&path, "tagz = {}") else {
        panic!("expected a config rejection");
    };
    assert!(message.contains("tagz"), "{message}");
}

#[test]
fn panic_while_configuring_is_caught_and_reported() {
    let path = plugin_file("fixture").canonicalize().unwrap();
    assert_eq!(
        refusal(&path, "panic_on_new = true"),
        LoadError::Panicked {
            provider: "p".into(),
            path,
            message: "plugin panicked: fixture asked to panic in new".into(),
        }
    );
}

#[test]
fn panicking_plugin_is_poisoned_and_every_other_provider_keeps_working() {
    let providers = load(&[
        (
            "flaky",
            &plugin_file("fixture"),
            "panic_on_input = \"boom\"",
        ),
        ("amazon", &plugin_file("amazon"), AMAZON),
    ]);
    assert_eq!(providers.loaded().len(), 2, "{:?}", providers.refused());
    let build = |input: &str| {
        providers.build(&BuildRequest {
            input,
            ..Default::default()
        })
    };
    // Before the panic the fixture serves its host.
    assert_eq!(build("https://example.test/a").unwrap().provider, "flaky");

    let error = build("https://example.test/boom").unwrap_err();
    assert_eq!(error.code, ErrorCode::Internal);
    assert_eq!(
        error.message,
        "provider `flaky` failed and is disabled until restart: plugin panicked: fixture asked to panic on boom"
    );
    assert!(providers.get("flaky").unwrap().is_poisoned());

    // The process lives on; the other provider still works, the poisoned one
    // is skipped and named.
    assert_eq!(
        build("https://www.amazon.com/dp/B08N5WRWNW")
            .unwrap()
            .provider,
        "amazon"
    );
    let error = build("https://example.test/a").unwrap_err();
    assert_eq!(error.code, ErrorCode::UnsupportedHost);
    assert_eq!(
        error.message,
        "no provider handles host `example.test` (disabled after a plugin panic: flaky)"
    );
    // Asking for it by name says it is disabled.
    let error = providers
        .build(&BuildRequest {
            input: "https://example.test/a",
            provider: Some("flaky"),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        error.message,
        "provider `flaky` is disabled: its plugin panicked earlier"
    );
}

#[test]
fn one_library_serves_several_providers_and_is_loaded_once() {
    let providers = load(&[
        ("a", &plugin_file("fixture"), "hosts = [\"a.test\"]"),
        ("b", &plugin_file("fixture"), "hosts = [\"b.test\"]"),
    ]);
    let (a, b) = (&providers.loaded()[0], &providers.loaded()[1]);
    assert!(std::sync::Arc::ptr_eq(a.library(), b.library()));
    let build = |input: &str| {
        providers
            .build(&BuildRequest {
                input,
                ..Default::default()
            })
            .unwrap()
            .provider
    };
    assert_eq!(build("https://a.test/x"), "a");
    assert_eq!(build("https://b.test/x"), "b");
}

#[test]
fn c_plugin_loads_and_rewrites() {
    let dir = scratch("c-example");
    let file = compile_c(
        &repo_root().join("examples/c-plugin/example_plugin.c"),
        &[],
        &dir,
        "libc_example.so",
    );
    let providers = load(&[("shop", &file, "affiliate_id = \"abc123\"")]);
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    let p = &providers.loaded()[0];
    assert_eq!(p.library().name, "c-example");
    assert_eq!(
        p.describe(),
        Some(serde_json::json!({"hosts": ["shop.example"]}))
    );
    let t = providers
        .build(&BuildRequest {
            input: "https://shop.example/item/42",
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        t.display(),
        "https://track.shop.example/click?aff=abc123&item=42&sub={click_id}"
    );
    assert_eq!(t.marketplace.as_deref(), Some("shop.example"));
    assert_eq!(t.subid_max_len, 40);

    let error = providers
        .build(&BuildRequest {
            input: "https://shop.example/about",
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::NotAProductUrl);
    assert_eq!(
        providers
            .build(&BuildRequest {
                input: "https://elsewhere.example/item/1",
                ..Default::default()
            })
            .unwrap_err()
            .code,
        ErrorCode::UnsupportedHost
    );
}

#[test]
fn c_plugin_rejects_bad_config_with_its_message() {
    let dir = scratch("c-example-bad");
    let file = compile_c(
        &repo_root().join("examples/c-plugin/example_plugin.c"),
        &[],
        &dir,
        "libc_example.so",
    );
    let LoadError::ConfigRejected { message, .. } = refusal(&file, "other = 1") else {
        panic!("expected a config rejection");
    };
    assert!(message.contains("affiliate_id"), "{message}");
}

/// A hostile C fixture (`tests/fixtures/c/hostile_plugin.c`) as the first
/// provider, with the bundled Amazon plugin after it.
fn hostile_and_amazon(variant: &str) -> Providers {
    let dir = scratch(&format!("hostile-{variant}"));
    let file = compile_c(
        &repo_root().join("tests/fixtures/c/hostile_plugin.c"),
        &[&format!("LW_HOSTILE_{variant}")],
        &dir,
        &format!("libhostile_{}.so", variant.to_lowercase()),
    );
    let providers = load(&[
        ("amazon", &plugin_file("amazon"), AMAZON),
        ("hostile", &file, ""),
    ]);
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    providers
}

/// The hostile provider's build fails with `message` (naming the provider),
/// is not disabled for it, and Amazon links are still made.
fn refused_and_still_serving(providers: &Providers, message: &str) {
    let e = providers
        .build(&BuildRequest {
            input: "https://shop.example/item/1",
            provider: Some("hostile"),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(e.provider.as_deref(), Some("hostile"));
    assert_eq!(e.message, message);
    assert!(!providers.get("hostile").unwrap().is_poisoned());
    let t = providers
        .build(&BuildRequest {
            input: "https://www.amazon.com/dp/B08N5WRWNW",
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        t.display(),
        "https://www.amazon.com/dp/B08N5WRWNW?tag=lw-20&ascsubtag={click_id}"
    );
}

#[test]
fn plugin_template_that_is_not_utf8_is_refused_naming_the_provider() {
    refused_and_still_serving(
        &hostile_and_amazon("INVALID_UTF8"),
        "provider `hostile` failed: plugin wrote a template prefix that is not UTF-8",
    );
}

#[test]
fn plugin_template_that_is_not_a_url_is_refused_naming_the_provider() {
    refused_and_still_serving(
        &hostile_and_amazon("NOT_A_URL"),
        "provider `hostile` built `javascript:alert(1)//{click_id}`, which is not an http(s) URL",
    );
}

#[test]
fn plugin_writing_past_the_output_limit_is_refused_naming_the_provider() {
    refused_and_still_serving(
        &hostile_and_amazon("HUGE_OUTPUT"),
        &format!(
            "provider `hostile` failed: plugin wrote more than {} bytes to its template prefix",
            linkwright_core::plugin::loader::MAX_OUTPUT_LEN
        ),
    );
}

#[test]
fn plugin_template_on_a_host_the_provider_does_not_own_is_refused_naming_the_provider() {
    let providers = hostile_and_amazon("OTHER_HOST");
    assert_eq!(
        providers.get("hostile").unwrap().link_hosts(),
        ["shop.example"],
        "the hosts the plugin declares in its description"
    );
    refused_and_still_serving(
        &providers,
        "provider `hostile` built `https://evil.example/?sid={click_id}`, on host \
         `evil.example`, which is not one of its link hosts (shop.example)",
    );
}

#[test]
fn link_hosts_in_the_config_bound_where_a_providers_templates_may_point() {
    let config = |hosts: &str| {
        format!(
            "[[providers]]\nname = \"p\"\nplugin = \"{}\"\nlink_hosts = [{hosts}]\n",
            plugin_file("fixture").display()
        )
    };
    let build = |hosts: &str| {
        Config::from_toml_str(&config(hosts))
            .unwrap()
            .load_providers()
            .build(&BuildRequest {
                input: "https://example.test/a",
                ..Default::default()
            })
    };
    // The fixture builds on track.test: allowed as itself, and as a
    // subdomain of an allowed host (written in any case).
    assert_eq!(build("\"track.test\"").unwrap().provider, "p");
    assert_eq!(build("\"TEST\"").unwrap().provider, "p");
    let e = build("\"elsewhere.test\", \"ack.test\"").unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(
        e.message,
        "provider `p` built `https://track.test/?sub={click_id}&to=https://example.test/a`, \
         on host `track.test`, which is not one of its link hosts (elsewhere.test, ack.test)"
    );
}

/// Loads the hostile C fixture `variant` as provider `hostile` (with
/// `settings`) after Amazon, with this call budget, probed by the real
/// binary when `probe` is set.
fn hostile_with(variant: &str, settings: &str, budget_ms: u64, probe: bool) -> Providers {
    let dir = scratch(&format!("hostile-{variant}"));
    let file = compile_c(
        &repo_root().join("tests/fixtures/c/hostile_plugin.c"),
        &[&format!("LW_HOSTILE_{variant}")],
        &dir,
        &format!("libhostile_{}.so", variant.to_lowercase()),
    );
    let text = format!(
        "[plugins]\ncall_timeout_ms = {budget_ms}\n\
         [[providers]]\nname = \"amazon\"\nplugin = \"{}\"\n[providers.config]\n{AMAZON}\n\
         [[providers]]\nname = \"hostile\"\nplugin = \"{}\"\n[providers.config]\n{settings}\n",
        plugin_file("amazon").display(),
        file.display()
    );
    let config = Config::from_toml_str(&text).unwrap();
    config.load_providers_probed(probe.then(probe_command))
}

/// The real binary's probe subcommand, as `linkwright serve` runs it.
fn probe_command() -> linkwright_core::plugin::ProbeCommand {
    linkwright_core::plugin::ProbeCommand {
        program: env!("CARGO_BIN_EXE_linkwright").into(),
        args: vec!["plugin-probe".into()],
    }
}

fn amazon_still_builds(providers: &Providers) {
    let t = providers
        .build(&BuildRequest {
            input: "https://www.amazon.com/dp/B08N5WRWNW",
            ..Default::default()
        })
        .unwrap();
    assert_eq!(t.provider, "amazon");
}

#[test]
fn a_plugin_call_past_its_time_budget_fails_naming_the_provider_which_is_then_quarantined() {
    let providers = hostile_with("SLEEP", "", 1000, false);
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    let build = |input: &str, provider: Option<&str>| {
        providers.build(&BuildRequest {
            input,
            provider,
            ..Default::default()
        })
    };
    // It builds while it answers.
    assert_eq!(
        build("https://shop.example/a", Some("hostile"))
            .unwrap()
            .display(),
        "https://shop.example/?sid={click_id}"
    );
    // A build that never returns: the caller is answered once the budget
    // is spent, not later.
    let started = std::time::Instant::now();
    let e = build("https://shop.example/sleep", Some("hostile")).unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(1000)
            && waited < std::time::Duration::from_secs(10),
        "{waited:?}"
    );
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(e.provider.as_deref(), Some("hostile"));
    assert_eq!(
        e.message,
        "provider `hostile` did not answer within 1000 ms (build) and is disabled until restart"
    );
    let hostile = providers.get("hostile").unwrap();
    assert_eq!(
        hostile.disabled(),
        Some(linkwright_core::plugin::Disabled::TimedOut)
    );
    // Later calls fail at once without reaching the plugin (no thread more
    // is left hanging), naming why.
    let started = std::time::Instant::now();
    let e = build("https://shop.example/a", Some("hostile")).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_millis(1000));
    assert_eq!(
        e.message,
        "provider `hostile` is disabled: a call to its plugin took longer than 1000 ms earlier"
    );
    let e = build("https://shop.example/a", None).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedHost);
    assert_eq!(
        e.message,
        "no provider handles host `shop.example` (disabled after a plugin timeout: hostile)"
    );
    // Every other provider keeps serving.
    amazon_still_builds(&providers);
}

#[test]
fn bundled_plugins_pass_their_probe() {
    let config = Config::load(&repo_root().join("config.toml")).unwrap();
    let providers = config.load_providers_probed(Some(probe_command()));
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    assert_eq!(providers.loaded().len(), config.providers.len());
}

/// The single refusal of the hostile provider, which Amazon survives.
fn probe_refusal(providers: &Providers) -> String {
    assert_eq!(providers.refused().len(), 1, "{:?}", providers.refused());
    let refused = &providers.refused()[0];
    assert_eq!(refused.name, "hostile");
    let LoadError::ProbeFailed {
        provider, reason, ..
    } = &refused.error
    else {
        panic!("{:?}", refused.error);
    };
    assert_eq!(provider, "hostile");
    assert!(
        refused
            .error
            .to_string()
            .contains("failed its probe for provider `hostile` (run in a child process"),
        "{}",
        refused.error
    );
    amazon_still_builds(providers);
    reason.clone()
}

#[test]
fn a_plugin_that_aborts_on_a_build_is_refused_by_its_probe_and_this_process_lives_on() {
    let reason = probe_refusal(&hostile_with("ABORT", "", 2000, true));
    assert!(
        reason.starts_with(
            "it was killed by signal 6 (SIGABRT) while building `https://www.amazon.com/dp/B08N5WRWNW`"
        ),
        "{reason}"
    );
}

#[test]
fn a_plugin_that_aborts_while_making_its_instance_is_refused_by_its_probe() {
    let reason = probe_refusal(&hostile_with("ABORT", "abort_on_new = true", 2000, true));
    assert!(
        reason.starts_with(
            "it was killed by signal 6 (SIGABRT) while loading the plugin and making its instance"
        ),
        "{reason}"
    );
}

#[test]
fn a_plugin_that_hangs_on_ordinary_inputs_is_refused_by_its_probe() {
    let reason = probe_refusal(&hostile_with("SLEEP", "sleep_always = true", 1000, true));
    assert_eq!(
        reason,
        "it hung: no answer within the 1000 ms budget while building `https://www.amazon.com/dp/B08N5WRWNW`"
    );
}

#[test]
fn a_plugin_that_hangs_only_on_rare_inputs_passes_its_probe_and_meets_the_budget_later() {
    let providers = hostile_with("SLEEP", "", 2000, true);
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    let e = providers
        .build(&BuildRequest {
            input: "https://shop.example/sleep",
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.message.contains("did not answer within 2000 ms"), "{e:?}");
    amazon_still_builds(&providers);
}

/// The real server with the default providers, an aborting plugin and one
/// that hangs on `…/sleep` (call budget 1 s): the aborting one is refused
/// at start, the hanging one answers within its budget and is then
/// quarantined, and redirects and every other provider keep working.
#[test]
fn the_server_refuses_an_aborting_plugin_contains_a_hanging_one_and_keeps_serving() {
    use common::{BROWSER, TestServer, client, create_key};
    use reqwest::StatusCode;
    let dir = scratch("server-hostile");
    let compile = |variant: &str| {
        compile_c(
            &repo_root().join("tests/fixtures/c/hostile_plugin.c"),
            &[&format!("LW_HOSTILE_{variant}")],
            &dir,
            &format!("libhostile_{}.so", variant.to_lowercase()),
        )
    };
    let (abort, sleep) = (compile("ABORT"), compile("SLEEP"));
    let text = std::fs::read_to_string(repo_root().join("config.toml"))
        .unwrap()
        .replace("call_timeout_ms = 2000", "call_timeout_ms = 1000");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{text}\n[[providers]]\nname = \"crashy\"\nplugin = \"{}\"\n\n\
             [[providers]]\nname = \"sleepy\"\nplugin = \"{}\"\n",
            abort.display(),
            sleep.display()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let key = create_key(&config, &data, &[]);
    let server = TestServer::start(&config, &data);
    let api = |path: &str| format!("{}/api/v1{path}", server.admin);
    let auth = format!("Bearer {key}");
    let providers: serde_json::Value = client()
        .get(api("/providers"))
        .header("authorization", &auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let status_of = |name: &str| {
        providers["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    let crashy = status_of("crashy");
    assert_eq!(crashy["status"], "refused", "{crashy}");
    let reason = crashy["reason"].as_str().unwrap();
    assert!(
        reason.contains("failed its probe for provider `crashy`")
            && reason.contains("killed by signal 6 (SIGABRT) while building"),
        "{reason}"
    );
    assert_eq!(status_of("sleepy")["status"], "ok");
    assert_eq!(status_of("amazon")["status"], "ok");

    let create = |url: &str, provider: Option<&str>| {
        let mut body = serde_json::json!({"url": url});
        if let Some(p) = provider {
            body["provider"] = p.into();
        }
        let started = std::time::Instant::now();
        let r = client()
            .post(api("/links"))
            .header("authorization", &auth)
            .json(&body)
            .send()
            .unwrap();
        (
            r.status(),
            started.elapsed(),
            r.json::<serde_json::Value>().unwrap(),
        )
    };
    // The hanging build is answered once its budget is spent: a 500 whose
    // details (naming the plugin) go to the log.
    let (status, waited, body) = create("https://shop.example/sleep", Some("sleepy"));
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "internal");
    assert!(
        waited >= std::time::Duration::from_millis(1000),
        "{waited:?}"
    );
    let poisoned: serde_json::Value = client()
        .get(api("/providers"))
        .header("authorization", &auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let sleepy = poisoned["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sleepy")
        .unwrap()
        .clone();
    assert_eq!(sleepy["status"], "poisoned", "{sleepy}");
    assert_eq!(sleepy["reason"], "timeout", "{sleepy}");
    // Later builds for it fail at once; every other provider serves.
    let (status, waited, _) = create("https://shop.example/a", Some("sleepy"));
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        waited < std::time::Duration::from_millis(1000),
        "{waited:?}"
    );
    let (status, _, link) = create("https://www.amazon.com/dp/B08N5WRWNW", None);
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let r = client()
        .get(link["short_url"].as_str().unwrap())
        .header("user-agent", BROWSER)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let (_, log) = server.terminate();
    assert!(
        log.contains(
            "provider `sleepy` did not answer within 1000 ms (build) and is disabled until restart"
        ),
        "{log}"
    );
}

/// A batch goes on past a call that hangs: the hung item fails naming the
/// provider, the items after it are answered (on a fresh worker), in order.
#[test]
fn a_batch_with_a_hanging_call_answers_every_item_in_order() {
    let providers = hostile_with("SLEEP", "", 1000, false);
    let request = |input| BuildRequest {
        input,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let built = providers.build_many(&[
        request("https://shop.example/a"),
        request("https://shop.example/sleep"),
        request("https://www.amazon.com/dp/B08N5WRWNW"),
        request("https://shop.example/b"),
    ]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(built.len(), 4);
    assert_eq!(built[0].as_ref().unwrap().provider, "hostile");
    assert_eq!(
        built[1].as_ref().unwrap_err().message,
        "provider `hostile` did not answer within 1000 ms (build) and is disabled until restart"
    );
    assert_eq!(built[2].as_ref().unwrap().provider, "amazon");
    assert_eq!(
        built[3].as_ref().unwrap_err().message,
        "no provider handles host `shop.example` (disabled after a plugin timeout: hostile)"
    );
}
