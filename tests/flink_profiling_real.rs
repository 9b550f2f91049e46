//! Flink's own profiler on a real Flink 2.3 cluster (`apache-flink` from PyPI, installed by
//! .ci/run) with `rest.profiling.enabled: true`, running tests/engines/StackdCpuJob.java (its
//! `Burn` operator spins the CPU and boxes a `Long` per record). stackd runs ITIMER and ALLOC on
//! the TaskManager; what it stores of each run is the HTML Flink serves for it, fetched here from
//! Flink and read on its own (tests/common/ap_html.rs): the same stacks, the root's width as
//! the total, the job's frames and native ones, and the allocated class as a leaf.

mod common;

use std::time::Duration;

use common::ap_html::{comparable, merged, root_width, stacks};
use common::flink::Cluster;
use common::{parse_folded, wait_for, Binary, TempDir};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn profiler_runs_of_a_real_taskmanager_are_stored_as_flink_serves_them() {
    let runs = TempDir::new("flink-profiling-dir");
    std::fs::create_dir_all(&runs.0).expect("profiling dir");
    let config = format!("rest.profiling.enabled: true\nrest.profiling.dir: {}", runs.0.display());
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&config)).await.expect("join");
    let cluster = std::sync::Arc::new(cluster);
    cluster.wait_ready().await;
    let c = std::sync::Arc::clone(&cluster);
    let job_id = tokio::task::spawn_blocking(move || c.submit("stackd cpu job")).await.expect("join");
    wait_for("the job runs", Duration::from_secs(60), || async {
        let job = cluster.rest(&format!("/jobs/{job_id}")).await?;
        (job["vertices"].as_array()?.first()?["status"] == "RUNNING").then_some(())
    })
    .await;
    let tms = cluster.rest("/taskmanagers").await.expect("taskmanagers");
    let tm = tms["taskmanagers"][0]["id"].as_str().expect("a TaskManager").to_string();

    let data = TempDir::new("flink-profiling-real");
    let endpoint = format!("http://127.0.0.1:{}", cluster.rest);
    let args = [
        "--flink-rest",
        &endpoint,
        "--flink-profiling",
        "ITIMER,ALLOC",
        "--flink-profiling-duration",
        "4s",
        "--flink-profiling-interval",
        "1h",
    ];
    let bin = Binary::start(&data.0, &args);
    // ITIMER first (the modes in the order given), then ALLOC once ITIMER has ended.
    let status = wait_for("both runs stored", Duration::from_secs(90), || async {
        let (_, body) = bin.get_text("/flink").await;
        let s: Value = serde_json::from_str(&body).ok()?;
        let p = s["endpoints"][0]["profiling"]["processes"].as_array()?.iter().find(|p| p["process"] == tm.as_str())?.clone();
        (p["last_run"]["mode"] == "ALLOC" && p["last_run"]["outcome"] == "stored").then_some(p)
    })
    .await;
    assert_eq!(status["host"], "localhost", "{status}");

    // The runs as Flink lists and serves them to anyone.
    let encoded = |s: &str| s.replace(':', "%3A");
    let list = cluster.rest(&format!("/taskmanagers/{}/profiler", encoded(&tm))).await.expect("the list");
    let file_of = |mode: &str| -> String {
        let runs = list["profilingList"].as_array().expect("runs");
        let run = runs.iter().find(|r| r["mode"] == mode && r["status"] == "FINISHED").unwrap_or_else(|| panic!("a {mode} run: {list}"));
        run["outputFile"].as_str().expect("file").to_string()
    };
    for (mode, profile) in [("ITIMER", "cpu"), ("ALLOC", "alloc_objects")] {
        let html =
            cluster.rest_text(&format!("/taskmanagers/{}/profiler/{}", encoded(&tm), encoded(&file_of(mode)))).await.expect("the HTML");
        let (code, folded) = bin.get_text(&format!("/flamegraph/flink-cluster.folded?type={profile}&taskmanager={tm}&mode={mode}")).await;
        assert_eq!(code, 200, "{folded}");
        let stored = parse_folded(&folded);
        let total: u64 = stored.iter().map(|(_, n)| n).sum();
        assert_eq!(total, root_width(&html), "{mode}: the root's width");
        assert!(total > 0, "{mode}");
        assert_eq!(merged(stored.iter().map(|(s, n)| (comparable(s), *n))), stacks(&html), "{mode}: the stacks of Flink's HTML");
        let leaves: Vec<&str> = stored.iter().filter_map(|(s, _)| s.rsplit(';').next()).collect();
        match mode {
            "ITIMER" => {
                assert!(stored.iter().any(|(s, _)| s.contains("StackdCpuJob$Burn.map")), "the job's frames: {folded}");
                let native = stored.iter().flat_map(|(s, _)| s.split(';')).find(|f| !f.ends_with(']'));
                assert!(native.is_some(), "native or JVM frames, without a Java kind: {folded}");
            }
            _ => assert!(leaves.iter().any(|l| l.starts_with("java.lang.Long")), "the allocated class as a leaf: {leaves:?}"),
        }
    }
    // Java frames keep async-profiler's kinds (compiled, inlined, interpreted).
    let (_, folded) = bin.get_text(&format!("/flamegraph/flink-cluster.folded?type=cpu&taskmanager={tm}")).await;
    assert!(folded.contains("StackdCpuJob$Burn.spin_[j]") || folded.contains("StackdCpuJob$Burn.spin_[i]"), "{folded}");
    bin.stop();
    cluster.cancel(&job_id).await;
}
