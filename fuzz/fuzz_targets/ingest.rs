#![no_main]
//! See `stackd::invariants::ingest_payloads`: datagrams or bodies into a store, then every output.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackd::invariants::ingest_payloads(data));
