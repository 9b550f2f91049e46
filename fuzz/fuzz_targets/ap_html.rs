#![no_main]
//! See `stackd::invariants::ap_html`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::ap_html(data));
