//! Fuzz target `conv_awin_csv`: see `props::conv_awin_csv` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::conv_awin_csv(data));
