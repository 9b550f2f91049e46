#![no_main]
//! See `stackd::invariants::flink_rest`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::flink_rest(data));
