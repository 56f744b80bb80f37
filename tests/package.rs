//! The Debian package (`cargo deb`, configured in the root Cargo.toml) as an
//! operator installs it: unpacked with `dpkg-deb -x` into a scratch root, its
//! binary run from there against its own config. `scripts/test` builds the
//! package and names it in `LINKWRIGHT_DEB`; without that variable the tests
//! that need the package say so and pass (a plain `cargo test`), so CI runs
//! them through `scripts/test` only.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TestServer, client, repo_root};
use serde_json::Value;

/// Where the package puts things.
const BIN: &str = "usr/bin/linkwright";
const PLUGINS: &str = "usr/lib/linkwright/plugins";
const CONFIG: &str = "etc/linkwright/config.toml";
const BUNDLED: [&str; 3] = ["amazon", "awin", "networks"];

/// The package, unpacked once per test into its own root under target/.
struct Unpacked {
    root: PathBuf,
    control: PathBuf,
}

impl Unpacked {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(self.path(BIN))
            .args(args)
            .env_remove("LINKWRIGHT_LOG")
            .output()
            .unwrap()
    }

    /// The unit file, wherever the package put it (`lib/` or `usr/lib/`).
    fn unit(&self) -> PathBuf {
        ["lib/systemd/system", "usr/lib/systemd/system"]
            .iter()
            .map(|d| self.root.join(d).join("linkwright.service"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no linkwright.service in {}", self.root.display()))
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.root.parent().unwrap());
    }
}

/// Unpacks `$LINKWRIGHT_DEB`, or `None` (and a note) when it is not set.
fn unpack(test: &str) -> Option<Unpacked> {
    let Some(deb) = std::env::var_os("LINKWRIGHT_DEB") else {
        eprintln!("{test}: LINKWRIGHT_DEB is not set; scripts/test builds the package and sets it");
        return None;
    };
    let deb = PathBuf::from(deb);
    assert!(deb.is_file(), "LINKWRIGHT_DEB={} is no file", deb.display());
    let scratch =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deb-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let root = scratch.join("root");
    let control = scratch.join("control");
    for (flag, dir) in [("-x", &root), ("-e", &control)] {
        let out = Command::new("dpkg-deb")
            .arg(flag)
            .arg(&deb)
            .arg(dir)
            .output()
            .expect("dpkg-deb (package dpkg) is needed");
        assert!(out.status.success(), "dpkg-deb {flag}: {out:?}");
    }
    Some(Unpacked { root, control })
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn package_installs_the_binary_plugins_config_and_unit_in_the_documented_places() {
    let Some(deb) = unpack("layout") else { return };
    assert!(deb.path(BIN).is_file());
    for plugin in BUNDLED {
        let file = deb
            .path(PLUGINS)
            .join(linkwright_core::plugin::plugin_file_name(plugin));
        assert!(file.is_file(), "{} is not in the package", file.display());
    }
    // Nothing else is shipped next to the binary: the plugins must be found
    // through the prefix rule, not the executable's folder.
    let in_bin: Vec<_> = std::fs::read_dir(deb.path("usr/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(in_bin, vec!["linkwright"]);
    assert_eq!(
        std::fs::read_to_string(deb.path(CONFIG)).unwrap(),
        std::fs::read_to_string(repo_root().join("debian/config.toml")).unwrap()
    );
    let unit = std::fs::read_to_string(deb.unit()).unwrap();
    assert!(unit.contains("\nType=notify\n"), "{unit}");

    // The config is a conffile: dpkg keeps an edited one on upgrade.
    let conffiles = std::fs::read_to_string(deb.control.join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/linkwright/config.toml"),
        "{conffiles}"
    );
    // The maintainer scripts create the user and own the data folder, and
    // the generated part enables and starts the unit.
    let postinst = std::fs::read_to_string(deb.control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group"), "{postinst}");
    assert!(
        postinst.contains("chown linkwright:linkwright /var/lib/linkwright"),
        "{postinst}"
    );
    assert!(!postinst.contains("#DEBHELPER#"), "{postinst}");
    assert!(postinst.contains("linkwright.service"), "{postinst}");
    for script in ["postinst", "prerm", "postrm"] {
        let out = Command::new("sh")
            .arg("-n")
            .arg(deb.control.join(script))
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
    }
    let control = std::fs::read_to_string(deb.control.join("control")).unwrap();
    assert!(
        control.contains("Depends: ") && control.contains("adduser"),
        "{control}"
    );
}

#[test]
fn unpacked_binary_loads_every_bundled_plugin_from_the_package_and_serves_a_redirect() {
    let Some(deb) = unpack("serve") else { return };
    let config = deb.path(CONFIG).display().to_string();

    // Every provider of the packaged config loads, each from the package's
    // plugin folder (found through <prefix>/lib/linkwright/plugins).
    let out = deb.run(&["plugins", "--config", &config, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listing: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let plugins = deb.path(PLUGINS).canonicalize().unwrap();
    let providers = listing["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 7, "{listing}");
    let mut seen: Vec<&str> = Vec::new();
    for p in providers {
        assert_eq!(p["status"], "ok", "{p}");
        let file = Path::new(p["file"].as_str().unwrap());
        assert_eq!(file.parent().unwrap(), plugins, "{p}");
        seen.push(p["plugin"].as_str().unwrap());
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, BUNDLED);

    let out = deb.run(&["check-config", "--config", &config]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).ends_with("ok (7 provider(s) loaded)\n"),
        "{}",
        stdout(&out)
    );

    // The unit's ExecStartPre, on a fresh data folder and again.
    let data = deb.root.parent().unwrap().join("data");
    let data_arg = data.display().to_string();
    for _ in 0..2 {
        let out = deb.run(&["migrate", "--config", &config, "--data-dir", &data_arg]);
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).contains("schema version "), "{out:?}");
    }

    let out = deb.run(&[
        "links",
        "create",
        "--config",
        &config,
        "--data-dir",
        &data_arg,
        "--json",
        "https://www.amazon.de/dp/B08N5WRWNW",
    ]);
    assert!(out.status.success(), "{out:?}");
    let link: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let code = link["code"].as_str().unwrap();

    let server = TestServer::start_exe(&deb.path(BIN), Path::new(&config), &data);
    let answer = client()
        .get(format!("{}/{code}", server.public))
        .header("user-agent", common::BROWSER)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://www.amazon.de/dp/B08N5WRWNW?tag=linkwright0d-21&ascsubtag="),
        "{location}"
    );
    let ready = client()
        .get(format!("{}/readyz", server.admin))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 200);
    let (status, log) = server.terminate();
    assert!(status.success(), "{status:?}\n{log}");
}

/// `systemd-analyze verify` loads the unit as systemd would. It checks
/// that each command's executable exists, so it verifies a copy whose
/// absolute paths point into the unpacked root; everything else is the
/// packaged unit as is. The hardening score is printed (and bounded, so a
/// weakened unit fails here).
#[test]
fn systemd_accepts_the_unit_and_rates_its_hardening() {
    let Some(deb) = unpack("unit") else { return };
    let unit = std::fs::read_to_string(deb.unit()).unwrap();
    let root = deb.root.display().to_string();
    let dir = deb.root.parent().unwrap().join("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("linkwright.service");
    let rooted = unit
        .replace("/usr/bin/linkwright", &format!("{root}/usr/bin/linkwright"))
        .replace("/etc/linkwright/", &format!("{root}/etc/linkwright/"));
    assert_ne!(rooted, unit);
    std::fs::write(&copy, rooted).unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (package systemd) is needed; scripts/test installs it");
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );

    // The verifier does look at the commands: the packaged paths, absent on
    // this machine (unless linkwright is installed), would fail it.
    if !Path::new("/usr/bin/linkwright").exists() {
        let original = dir.join("original");
        std::fs::create_dir_all(&original).unwrap();
        std::fs::write(original.join("linkwright.service"), &unit).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(original.join("linkwright.service"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "verify did not check ExecStart");
    }

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap();
    let text = stdout(&out);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for linkwright.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{text}"));
    eprintln!("systemd-analyze security --offline=true: exposure {score}");
    assert!(score <= 1.5, "the unit's exposure rose to {score}:\n{text}");
}

/// The packaged config is the default config but for the install paths,
/// so the two cannot drift apart. Needs no package.
#[test]
fn packaged_config_is_the_default_config_with_the_install_paths() {
    let read = |rel: &str| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(repo_root().join(rel)).unwrap()).unwrap()
    };
    let default = read("config.toml");
    let mut packaged = read("debian/config.toml");
    let server = packaged.remove("server").unwrap();
    assert_eq!(server["data_dir"].as_str(), Some("/var/lib/linkwright"));
    // The listeners are the built-in defaults (the admin port is not
    // Prometheus's 9090).
    let defaults = linkwright_core::config::Config::from_toml_str("").unwrap();
    for (key, addr) in [
        ("public_addr", defaults.server.public_addr),
        ("admin_addr", defaults.server.admin_addr),
    ] {
        assert_eq!(
            server[key].as_str(),
            Some(addr.to_string().as_str()),
            "{key}"
        );
    }
    assert_eq!(packaged, default);
    assert_eq!(
        default["plugins"]["dirs"],
        toml::Value::Array(Vec::new()),
        "the package relies on the built-in plugin folders"
    );
    // And it is valid as a whole.
    linkwright_core::config::Config::from_toml_str(
        &std::fs::read_to_string(repo_root().join("debian/config.toml")).unwrap(),
    )
    .unwrap();
}
