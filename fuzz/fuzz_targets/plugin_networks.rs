//! Fuzz target `plugin_networks`: builds arbitrary input and parameters through the
//! real C ABI (the plugin library cargo built, loaded by the plugin host);
//! see `props::plugin_build` for the properties it asserts and
//! `props::fuzz_providers` for where the libraries are read from.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::plugin_build(
    props::fuzz_providers(),
    &["rakuten", "ebay"],
    data
));
