//! The real `linkwright` binary, loading the plugins from their files.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{plugin_file, repo_root, scratch};
use serde_json::Value;

fn linkwright(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linkwright"))
        .args(args)
        .env_remove("LINKWRIGHT_LOG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn default_config() -> String {
    repo_root().join("config.toml").display().to_string()
}

fn is_click_id(s: &str) -> bool {
    s.len() == 13 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[test]
fn rewrite_prints_provider_and_url_with_a_fresh_click_id_per_input() {
    let url =
        "https://www.amazon.com/Some-Product/dp/B08N5WRWNW/ref=sr_1_1?tag=someone-20&linkCode=x";
    let out = linkwright(&["rewrite", "--config", &default_config(), url, url]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let prefix = "amazon\thttps://www.amazon.com/dp/B08N5WRWNW?tag=linkwright-20&ascsubtag=";
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l.strip_prefix(prefix).unwrap_or_else(|| panic!("{l}")))
        .collect();
    assert!(ids.iter().all(|id| is_click_id(id)), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn rewrite_json_prints_one_object_per_input_and_exits_1_if_any_failed() {
    let out = linkwright(&[
        "rewrite",
        "--config",
        &default_config(),
        "--json",
        "--marketplace",
        "amazon.de",
        "B08N5WRWNW",
        "https://nowhere.example/item",
        "https://www.example-store.co.uk/p/widget",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);

    assert_eq!(rows[0]["input"], "B08N5WRWNW");
    assert_eq!(rows[0]["provider"], "amazon");
    assert_eq!(
        rows[0]["template"],
        "https://www.amazon.de/dp/B08N5WRWNW?tag=linkwright0d-21&ascsubtag={click_id}"
    );
    let url = rows[0]["url"].as_str().unwrap();
    let id = url.rsplit('=').next().unwrap();
    assert!(is_click_id(id), "{url}");
    assert_eq!(rows[0]["error"], Value::Null);

    assert_eq!(rows[1]["url"], Value::Null);
    assert_eq!(rows[1]["error"]["code"], "unsupported_host");
    assert_eq!(
        rows[1]["error"]["message"],
        "no provider handles host `nowhere.example`"
    );

    assert_eq!(rows[2]["provider"], "awin");
    assert_eq!(
        rows[2]["template"],
        "https://www.awin1.com/cread.php?awinmid=1001&awinaffid=123456\
         &ued=https%3A%2F%2Fwww.example-store.co.uk%2Fp%2Fwidget&clickref={click_id}"
    );
}

#[test]
fn rewrite_reports_provider_errors_with_their_codes() {
    let out = linkwright(&[
        "rewrite",
        "--config",
        &default_config(),
        "--json",
        "https://www.amazon.com/gp/help/customer/display.html",
        "https://www.amazon.com/dp/B0BAD",
        "https://www.amazon.it/dp/B08N5WRWNW",
        "https://www.nodeeplinks.example/product/1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let codes: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["error"]["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        codes,
        [
            "not_a_product_url",
            "invalid_asin",
            "marketplace_not_configured",
            "deeplink_not_permitted"
        ]
    );
}

/// The CLI's rewrite expands short links as the API's does (here against a
/// local stand-in for amzn.to), and says which could not be expanded.
#[test]
fn rewrite_expands_short_links_like_the_api() {
    let amzn = common::StandIn::start(|path| match path {
        "/abc" => (
            "301 Moved Permanently",
            "location: https://www.amazon.co.uk/Thing/dp/B08N5WRWNW?ref=x\r\n".into(),
        ),
        _ => ("404 Not Found", String::new()),
    });
    let dir = scratch("cli-expand");
    let config = dir.join("lw.toml");
    let default = std::fs::read_to_string(default_config()).unwrap();
    std::fs::write(
        &config,
        format!(
            "{default}\n[upstream]\nretries = 0\nshort_link_override = {{ \"amzn.to\" = \"{}\" }}\n",
            amzn.base
        ),
    )
    .unwrap();
    let out = linkwright(&[
        "rewrite",
        "--config",
        &config.display().to_string(),
        "--json",
        "https://amzn.to/abc",
        "https://amzn.to/gone",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows[0]["template"],
        "https://www.amazon.co.uk/dp/B08N5WRWNW?tag=linkwright-21&ascsubtag={click_id}"
    );
    assert_eq!(rows[1]["error"]["code"], "invalid_input", "{}", rows[1]);
    assert_eq!(*amzn.seen.lock().unwrap(), ["/abc", "/gone"]);
}

/// The binary as if installed under `root`: `root/bin/linkwright`, a hard
/// link to the one cargo built (a copy on another file system), so that its
/// folder holds no plugin and its prefix is `root`.
fn installed_binary(root: &Path) -> std::path::PathBuf {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("linkwright");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_linkwright"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_linkwright"), &exe).unwrap();
    }
    exe
}

fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .env_remove("LINKWRIGHT_LOG")
        .output()
        .unwrap()
}

/// The plugin search order: the configured folders, then the executable's
/// folder, then `<prefix>/lib/linkwright/plugins`. Without any file the
/// provider is refused and nothing else can build its links: the plugins
/// are loaded from their files, not linked in.
#[test]
fn plugins_are_searched_in_the_configured_folders_the_exe_folder_then_the_prefix() {
    // Under cargo's target folder, so the binary can be hard-linked.
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let exe = installed_binary(&root);
    let configured = root.join("etc/plugins");
    let prefixed = root.join("lib/linkwright/plugins");
    std::fs::create_dir_all(&configured).unwrap();
    std::fs::create_dir_all(&prefixed).unwrap();
    let config = root.join("etc/lw.toml");
    std::fs::write(
        &config,
        "[plugins]\ndirs = [\"plugins\"]\n\
         [[providers]]\nname = \"amazon\"\nplugin = \"amazon\"\n\
         [providers.config]\ntags = { \"amazon.com\" = \"mine-20\" }\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let listing = |exe: &Path| -> Value {
        let out = run(exe, &["plugins", "--config", &config, "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_str(&stdout(&out)).unwrap()
    };

    // No plugin file anywhere: refused, naming every folder searched.
    let searched = format!(
        "{}, {}, {}",
        configured.display(),
        root.join("bin").display(),
        prefixed.display()
    );
    let got = listing(&exe);
    assert_eq!(got["providers"][0]["status"], "refused");
    assert_eq!(
        got["providers"][0]["reason"],
        format!("plugin `amazon` not found: no liblinkwright_amazon.so in {searched}")
    );
    let out = run(&exe, &["check-config", "--config", &config]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&searched), "{}", stdout(&out));
    let out = run(&exe, &["rewrite", "--config", &config, "B08N5WRWNW"]);
    assert_eq!(out.status.code(), Some(1));

    // Each place, from last to first: the later copy wins.
    let file_name = "liblinkwright_amazon.so";
    for dir in [&prefixed, &root.join("bin"), &configured] {
        let copy = dir.join(file_name);
        std::fs::copy(plugin_file("amazon"), &copy).unwrap();
        let got = listing(&exe);
        let loaded = &got["providers"][0];
        assert_eq!(loaded["status"], "ok");
        assert_eq!(loaded["name"], "amazon");
        assert_eq!(loaded["abi"], "1.0");
        assert_eq!(loaded["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            Path::new(loaded["file"].as_str().unwrap()),
            copy.canonicalize().unwrap()
        );
    }
    let out = run(&exe, &["rewrite", "--config", &config, "B08N5WRWNW"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out)
            .starts_with("amazon\thttps://www.amazon.com/dp/B08N5WRWNW?tag=mine-20&ascsubtag=")
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn check_config_accepts_the_default_config() {
    let out = linkwright(&["check-config", "--config", &default_config()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).ends_with("ok (7 provider(s) loaded)\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_config_reports_every_problem_with_its_key_path_and_exits_1() {
    let dir = scratch("check-config");
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        "[click_ids]\nnode_id = 9999\n\
         [[providers]]\nname = \"amazon\"\nplugin = \"amazon\"\nextra = 1\n\
         [[providers]]\nname = \"amazon\"\nplugin = \"awin\"\n",
    )
    .unwrap();
    let out = linkwright(&["check-config", "--config", &config.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let shown = config.display();
    assert_eq!(
        stdout(&out),
        format!(
            "{shown}: providers[0].extra: unknown key\n\
             {shown}: click_ids.node_id: must be between 0 and 4095, got 9999\n\
             {shown}: providers[1].name: duplicate provider name `amazon`\n\
             {shown}: 3 problem(s)\n"
        )
    );
}

#[test]
fn check_config_reports_plugin_refusals_with_the_providers_key_path() {
    let dir = scratch("check-config-plugin");
    let config = dir.join("lw.toml");
    let deps = common::deps_dir();
    std::fs::write(
        &config,
        format!(
            "[plugins]\ndirs = [\"{}\"]\n\
             [[providers]]\nname = \"amazon\"\nplugin = \"amazon\"\n\
             [providers.config]\ntags = {{ \"amazon.zz\" = \"x-20\" }}\n",
            deps.display()
        ),
    )
    .unwrap();
    let out = linkwright(&["check-config", "--config", &config.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("providers[0]: plugin ")
            && text.contains("rejected the configuration of provider `amazon`"),
        "{text}"
    );
    assert!(text.contains("amazon.zz"), "{text}");
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let out = linkwright(&["rewrite", "--config", "/nonexistent/lw.toml", "B08N5WRWNW"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: cannot read config file /nonexistent/lw.toml: "),
        "{err}"
    );
}
