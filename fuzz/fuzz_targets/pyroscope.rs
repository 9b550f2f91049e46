#![no_main]
//! See `stackd::invariants::pyroscope`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::pyroscope(data));
