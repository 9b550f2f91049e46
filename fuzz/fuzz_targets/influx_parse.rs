#![no_main]
//! See `stackd::invariants::influx_parse`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::influx_parse(data));
