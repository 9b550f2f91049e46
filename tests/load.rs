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

/// The realistic mix as the benchmarks send it, against a stackd that splits the agents'
/// prefixes: the /write bodies of `--print-bodies` sent as bursts (every executor at the start of
/// every second, each on its own connection), and UDP under every executor's own prefix. Every
/// line and datagram lands in the app its prefix names, labelled with its executor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_lands_in_its_apps_and_executors() {
    let svc = common::Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    let dir = common::TempDir::new("mix");
    let (statsd, http, mix) = (svc.statsd.to_string(), svc.http.to_string(), dir.0.join("mix"));
    let run = |args: Vec<String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stackd-load")).args(args).output().expect("run stackd-load");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
        assert!(out.status.success(), "{report} {}", String::from_utf8_lossy(&out.stderr));
        report
    };
    let mix_args = ["--executors", "14", "--apps", "7", "--lines", "35", "--app", "m"].map(String::from);
    let (burst, udp) = tokio::task::spawn_blocking(move || {
        let mut print = vec!["--print-bodies".to_string(), mix.display().to_string(), "--windows".into(), "2".into()];
        print.extend(mix_args.clone());
        assert_eq!(run(print)["bodies"], 28);
        let mut burst =
            vec!["--http".to_string(), http.clone(), "--burst".into(), mix.display().to_string(), "--duration".into(), "2".into()];
        burst.extend(mix_args.clone());
        burst.push("--verify".into());
        let burst = run(burst);
        let mut udp = vec![
            "--statsd".to_string(),
            statsd,
            "--http".into(),
            http,
            "--udp-rate".into(),
            "2000".into(),
            "--duration".into(),
            "1".into(),
        ];
        udp.extend(mix_args);
        udp.push("--verify".into());
        (burst, run(udp))
    })
    .await
    .expect("join");
    // 14 executors, 2 bursts: 28 bodies of 35 lines, each answered 204 and stored.
    assert_eq!((burst["requests_ok"].as_u64(), burst["requests_failed"].as_u64()), (Some(28), Some(0)), "{burst}");
    assert_eq!(burst["lines_answered_204"], 28 * 35, "{burst}");
    assert_eq!(burst["verify"]["lines_stored"], 28 * 35, "{burst}");
    assert_eq!(udp["verify"]["ok"], true, "{udp}");
    let received = udp["verify"]["udp_received"].as_u64().expect("received");
    assert!(received > 1_000, "{udp}");
    // The bodies' apps m-mix-0 … m-mix-6, two executors each (executor e is app e % 7's); the
    // datagrams' apps m-udp-0 … m-udp-6, the same executors.
    let apps: serde_json::Value = reqwest::get(format!("http://{}/apps", svc.http)).await.expect("GET /apps").json().await.expect("JSON");
    let executors = |name: &str| -> Vec<u32> {
        let app = apps.as_array().expect("apps").iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("no app {name} in {apps}"));
        let mut e: Vec<u32> =
            app["labels"]["executor"].as_object().expect("executor label").keys().map(|k| k.parse().expect("a number")).collect();
        e.sort();
        e
    };
    for k in 0..7 {
        assert_eq!(executors(&format!("m-mix-{k}")), [k, k + 7]);
        assert_eq!(executors(&format!("m-udp-{k}")), [k, k + 7]);
    }
    let stored: u64 = apps
        .as_array()
        .expect("apps")
        .iter()
        .filter(|a| a["name"].as_str().is_some_and(|n| n.starts_with("m-udp-")))
        .map(|a| a["total_samples"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(stored, received, "every datagram received is in an m-udp-* app");
}
