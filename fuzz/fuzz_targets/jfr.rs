#![no_main]
//! See `stackd::invariants::jfr`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::jfr(data));
