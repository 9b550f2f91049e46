#![no_main]
//! See `stackd::invariants::render_folded`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::render_folded(data));
