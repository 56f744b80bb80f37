//! Fuzz target `click_id`: see `props::click_id` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::click_id(data));
