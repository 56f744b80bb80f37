//! Fuzz target `plugin_awin`: builds arbitrary input and parameters through the
//! real C ABI (the plugin library cargo built, loaded by the plugin host);
//! see `props::plugin_build` for the properties it asserts. The plugin
//! libraries are read from `$LINKWRIGHT_PLUGIN_DIR` (default: the
//! workspace's `target/debug`; `scripts/fuzz` builds them first).
#![no_main]

#[path = "../props.rs"]
mod props;

use std::path::PathBuf;
use std::sync::LazyLock;

use linkwright_core::plugin::Providers;

static PROVIDERS: LazyLock<Providers> = LazyLock::new(|| {
    let dir = std::env::var_os("LINKWRIGHT_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug")));
    props::load_providers(&dir)
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::plugin_build(&PROVIDERS, &["awin"], data));
