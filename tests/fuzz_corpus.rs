//! The fuzz targets' invariants (`stackd::invariants`) over every input the fuzzer kept
//! (`fuzz/corpus/<target>/`, minimised) and every input that once broke one
//! (`fuzz/regressions/<target>/`), so that what fuzzing found stays fixed without a nightly
//! toolchain. `fuzz/README.md` says how to run the fuzzer itself.

use std::path::Path;

fn each_input(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.expect("entry").path();
            let data = std::fs::read(&path).expect("read");
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(result.is_ok(), "{} breaks an invariant of {target}", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn statsd_parse_corpus() {
    assert!(each_input("statsd_parse", stackd::invariants::statsd_parse) > 0, "the corpus is kept");
}

#[test]
fn influx_parse_corpus() {
    assert!(each_input("influx_parse", stackd::invariants::influx_parse) > 0, "the corpus is kept");
}

#[test]
fn ingest_corpus() {
    assert!(each_input("ingest", stackd::invariants::ingest_payloads) > 0, "the corpus is kept");
}

#[test]
fn render_corpus() {
    assert!(each_input("render", stackd::invariants::render_folded) > 0, "the corpus is kept");
}

#[test]
fn flink_rest_corpus() {
    assert!(each_input("flink_rest", stackd::invariants::flink_rest) > 0, "the corpus is kept");
}

#[test]
fn jfr_corpus() {
    assert!(each_input("jfr", stackd::invariants::jfr) > 0, "the corpus is kept");
}

#[test]
fn ap_html_corpus() {
    assert!(each_input("ap_html", stackd::invariants::ap_html) > 0, "the corpus is kept");
}

#[test]
fn pprof_corpus() {
    assert!(each_input("pprof", stackd::invariants::pprof) > 0, "the corpus is kept");
}

#[test]
fn pyroscope_corpus() {
    assert!(each_input("pyroscope", stackd::invariants::pyroscope) > 0, "the corpus is kept");
}

/// The inputs of the hardening findings, as fuzz inputs: each must hold every invariant.
#[test]
fn hardening_findings_hold_the_invariants() {
    let deep = [&b"\x00spark.deep.1.cpu.trace."[..], &vec![&b"a"[..]; 32_700].join(&b"."[..]), b":1|g"].concat();
    stackd::invariants::ingest_payloads(&deep);
    stackd::invariants::ingest_payloads(b"\x00spark.big.1.cpu.trace.a-b-1:5|g\xffspark.big.1.cpu.trace.a-b-1:99999999999999999999|g");
    stackd::invariants::ingest_payloads(b"\x01cpu.trace.a-b-1,prefix=p value=18446744073709551615u\xffcpu.trace.a-b-1,prefix=p value=1e20");
    stackd::invariants::render_folded("a\u{1}b;c\u{fffe} 3\nx;y 18446744073709551615\nx;y 5\n".as_bytes());
    // The third round: a parallelism no Flink has, folded lines that once stored wrong frames.
    stackd::invariants::flink_rest(br#"{"vertices":[{"id":"v","name":"m","parallelism":4294967295,"status":"RUNNING"}]}"#);
    stackd::invariants::flink_rest(b"a;b 1 2\n;;; 5\n");
}
