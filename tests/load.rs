//! A short run of the load generator (`stackd-load`) against the service: UDP and /write at a
//! modest rate, imports and /query beside them, with probes, then its store checks (every
//! datagram received, every line of every answered write and every sample of every answered
//! import is stored). A smoke test of the tool the overload figures come from;
//! no timing is asserted.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_checks_pass() {
    let svc = common::Service::start(&[]).await;
    let (statsd, http) = (svc.statsd.to_string(), svc.http.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_stackd-load"))
            .args(["--statsd", &statsd, "--http", &http, "--udp-rate", "2000", "--write-connections", "2", "--write-rate", "40"])
            .args(["--import-connections", "2", "--import-lines", "2000", "--query-connections", "1"])
            .args(["--duration", "2", "--probe", "--verify"])
            .output()
            .expect("run stackd-load")
    })
    .await
    .expect("join");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert!(out.status.success(), "{report}");
    assert_eq!(report["verify"]["ok"], true, "{report}");
    assert!(report["udp_sent"].as_u64().expect("udp_sent") > 1_000, "{report}");
    assert!(report["writes_ok"].as_u64().expect("writes_ok") > 10, "{report}");
    assert_eq!(report["verify"]["http_lines_stored"], report["verify"]["http_lines_answered_204"]);
    // Imports and /query beside the load: answered, and every imported sample stored.
    assert!(report["imports_ok"].as_u64().expect("imports_ok") >= 2, "{report}");
    assert!(report["queries_ok"].as_u64().expect("queries_ok") >= 10, "{report}");
    assert_eq!((report["imports_failed"].as_u64(), report["queries_failed"].as_u64()), (Some(0), Some(0)), "{report}");
    assert_eq!(report["verify"]["import_samples_stored"], report["verify"]["import_samples_answered_200"]);
    assert_eq!(report["probe_failures"], 0, "{report}");
}
