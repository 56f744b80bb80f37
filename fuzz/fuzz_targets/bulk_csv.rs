//! Fuzz target `bulk_csv`: see `props::bulk_csv` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::bulk_csv(data));
