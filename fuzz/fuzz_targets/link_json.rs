//! Fuzz target `link_json`: see `props::link_json` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::link_json(data));
