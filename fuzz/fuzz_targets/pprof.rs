#![no_main]
//! See `stackd::invariants::pprof`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::pprof(data));
