//! Fuzz target `request_head`: see `props::request_head` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::request_head(data));
