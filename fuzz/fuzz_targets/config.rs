//! Fuzz target `config`: see `props::config` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::config(data));
