//! Real Flink (`apache-flink` from PyPI, installed by .ci/run) with flame graphs enabled runs
//! tests/engines/StackdCpuJob.java (its `Burn` operator spins the CPU). stackd polls the
//! JobManager; the tree it stores for a snapshot equals the JSON Flink returns for it (fetched
//! here directly); the JSON saved from the run imports back to the same tree; after the job is
//! cancelled, and after a stackd restart, the flame graph is still served, unchanged.

mod common;

use std::time::Duration;

use common::flink::Cluster;
use common::sorted_tree;
use common::{wait_for, Binary, TempDir};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn flink_flame_graphs_are_kept_exactly_after_the_job_and_a_restart() {
    // Sampling takes 40 × 25 ms = 1 s; a vertex is sampled again 2 s after the last sample ended.
    let config = "rest.flamegraph.enabled: true\n\
                  rest.flamegraph.refresh-interval: 2 s\n\
                  rest.flamegraph.num-samples: 40\n\
                  rest.flamegraph.delay-between-samples: 25 ms";
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(config)).await.expect("join");
    let cluster = std::sync::Arc::new(cluster);
    cluster.wait_ready().await;
    let c = std::sync::Arc::clone(&cluster);
    let job_id = tokio::task::spawn_blocking(move || c.submit("stackd cpu job")).await.expect("join");

    let data = TempDir::new("flink-flamegraph");
    let endpoint = format!("http://127.0.0.1:{}", cluster.rest);
    // 1 ms buckets: a snapshot can be read back alone by its endTimestamp.
    let args = ["--flink-rest", &endpoint, "--flink-poll-interval", "500ms", "--bucket", "1ms"];
    let bin = Binary::start(&data.0, &args);

    let vertex = wait_for("the job's vertex runs", Duration::from_secs(60), || async {
        let job = cluster.rest(&format!("/jobs/{job_id}")).await?;
        let v = job["vertices"].as_array()?.first()?.clone();
        (v["status"] == "RUNNING").then_some(v)
    })
    .await;
    let (vid, vname) = (vertex["id"].as_str().expect("id").to_string(), vertex["name"].as_str().expect("name").to_string());
    assert_eq!(vname, "Source: Numbers -> Burn -> Discard: Writer");
    assert_eq!(vertex["parallelism"], 1);

    // A snapshot with samples, as Flink serves it to anyone who asks. The test asks for the
    // vertex's graph: with one subtask it is subtask 0's, from the same sample and with the same
    // endTimestamp (Flink files each vertex sample under its subtasks). Asking for the subtask
    // itself would make Flink take a sample of its own, which the vertex's next sample can
    // replace before stackd's next poll sees it.
    let graph = format!("/jobs/{job_id}/vertices/{vid}/flamegraph?type=on_cpu");
    let (saved, flink) = wait_for("a snapshot with samples", Duration::from_secs(60), || async {
        let text = cluster.rest_text(&graph).await?;
        let doc: Value = serde_json::from_str(&text).ok()?;
        (doc["data"]["value"].as_u64() > Some(0)).then_some((text, doc))
    })
    .await;
    let end = flink["endTimestamp"].as_i64().expect("endTimestamp");

    // stackd stored that snapshot, filed at its endTimestamp, as the same tree.
    let app = "/flamegraph/stackd%20cpu%20job";
    let vertex_q: String =
        vname.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    let labels = format!("job_id={job_id}&vertex={vertex_q}&type=on_cpu&subtask=0");
    let snapshot = format!("{app}.json?{labels}&from={end}&to={}", end + 1);
    let ours = wait_for("stackd has the snapshot", Duration::from_secs(30), || async {
        let (status, body) = bin.get_text(&snapshot).await;
        (status == 200).then(|| serde_json::from_str::<Value>(&body).expect("json"))
    })
    .await;
    assert_eq!(sorted_tree(ours.clone()), sorted_tree(flink["data"].clone()), "stackd's tree for the snapshot is Flink's");
    // Flink's on-CPU graph is the cpu profile type, shown when no type is asked for; its
    // off-CPU graph is another type, never added to it.
    let range = format!("from={end}&to={}", end + 1);
    let (_, by_default) = bin.get_text(&format!("{app}.folded?{range}")).await;
    assert_eq!(by_default, bin.get_text(&format!("{app}.folded?{range}&type=cpu")).await.1, "cpu by default");
    let info: Value = serde_json::from_str(&bin.get_text("/apps/stackd%20cpu%20job").await.1).expect("json");
    assert_eq!((info["default_type"].as_str(), info["types"][0]["type"].as_str()), (Some("cpu"), Some("cpu")), "{info}");
    assert!(info["labels"].get("type").is_none(), "the graph type is no label: {info}");
    if let Some(off) = info["types"].as_array().expect("types").iter().find(|t| t["type"] == "off_cpu") {
        let (_, off_folded) = bin.get_text(&format!("{app}.folded?type=off_cpu")).await;
        let off_total: u64 = common::parse_folded(&off_folded).iter().map(|(_, c)| c).sum();
        assert_eq!(Some(off_total), off["total"].as_u64());
    }
    let (_, folded) = bin.get_text(&format!("{app}.folded?type=on_cpu")).await;
    assert!(folded.contains("StackdCpuJob$Burn.spin:"), "the job's own frames: {folded}");
    assert!(folded.contains("java.lang.Thread.run:"), "root first: {folded}");

    // The JSON saved from the run imports to the same tree, at its endTimestamp.
    let client = reqwest::Client::new();
    let r = client.post(bin.url("/import/flink?app=saved&source=flink_ui")).body(saved.clone()).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().await.expect("json");
    assert_eq!((answer["time_ms"].as_i64(), answer["samples"].as_u64()), (Some(end), flink["data"]["value"].as_u64()));
    let (_, imported) = bin.get_text("/flamegraph/saved.json").await;
    assert_eq!(sorted_tree(serde_json::from_str(&imported).expect("json")), sorted_tree(flink["data"].clone()));
    // The same document made inconsistent is refused whole.
    let total = flink["data"]["value"].as_u64().expect("value");
    let broken = saved.replacen(&format!("\"value\":{total},"), &format!("\"value\":{},", total - 1), 1);
    let r = client.post(bin.url("/import/flink?app=broken")).body(broken).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.expect("body").contains(&format!("its children add up to {total}, more than its value {}", total - 1)));
    assert_eq!(bin.get_text("/apps/broken").await.0, 404);

    // Cancelled: no longer polled, everything kept.
    cluster.cancel(&job_id).await;
    wait_for("no running job", Duration::from_secs(20), || async {
        let status: Value = serde_json::from_str(&bin.get_text("/flink").await.1).ok()?;
        (status["endpoints"][0]["running_jobs"] == 0).then_some(())
    })
    .await;
    let (status, body) = bin.get_text("/flink").await;
    assert_eq!(status, 200);
    let s: Value = serde_json::from_str(&body).expect("json");
    let s = &s["endpoints"][0];
    assert_eq!((s["flink_version"].as_str(), s["per_subtask"].as_bool()), (Some("2.3.0"), Some(true)), "{s}");
    assert!(s["snapshots_stored"].as_u64() >= Some(1) && s["consecutive_failures"] == 0, "{s}");
    let (_, before) = bin.get_text("/apps/stackd%20cpu%20job").await;
    let (status, svg) = bin.get_text(&format!("{app}.svg")).await;
    assert!(status == 200 && svg.contains("StackdCpuJob$Burn.spin"), "served after the job ended");
    drop(cluster); // stops the cluster (also when a step above failed: Drop)

    // Restarted (the JobManager gone too): the same profile, the same snapshot.
    bin.stop();
    let bin = Binary::start(&data.0, &args);
    assert_eq!(bin.get_text("/apps/stackd%20cpu%20job").await.1, before);
    let (status, body) = bin.get_text(&snapshot).await;
    assert_eq!(status, 200);
    assert_eq!(sorted_tree(serde_json::from_str(&body).expect("json")), sorted_tree(flink["data"].clone()));
    bin.stop();
}
