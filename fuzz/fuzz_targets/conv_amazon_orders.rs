//! Fuzz target `conv_amazon_orders`: see `props::conv_amazon_orders` for the properties it asserts.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::conv_amazon_orders(data));
