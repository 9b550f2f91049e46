#![no_main]
//! See `stackd::invariants::statsd_parse`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::statsd_parse(data));
