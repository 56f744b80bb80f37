//! Fuzz target `go_url`: see `props::go_url` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::go_url(data));
