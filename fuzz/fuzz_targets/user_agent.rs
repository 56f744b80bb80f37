//! Fuzz target `user_agent`: see `props::user_agent` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::user_agent(data));
