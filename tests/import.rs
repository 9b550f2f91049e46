//! `POST /import/flink` and `POST /import/folded`: a flame graph recorded from Flink 2.3.0
//! (tests/fixtures/flink/on_cpu.json), documents that must be refused whole, and the round trip
//! of stackd's own `.json` and `.folded` output of real JVM stacks. The same endpoint with the
//! JSON of a live Flink run is in tests/flink_flamegraph.rs.

mod common;

use common::{agent_stack_name, jfr_fixture, now_ms, parse_folded, sorted_tree, Service};
use serde_json::Value;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/flink/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

async fn post(svc: &Service, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = svc.client.post(svc.url(path)).body(body).send().await.expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON answer"))
}

async fn json_of(svc: &Service, path: &str) -> Value {
    let (status, body) = svc.get_text(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

#[tokio::test]
async fn a_saved_flink_flame_graph_is_filed_at_its_end_timestamp_with_the_labels_given() {
    let svc = Service::start(&["--bucket", "1s"]).await;
    let end = now_ms() - 30_000;
    let saved = fixture("on_cpu.json").replace("1795307259523", &end.to_string());
    let (status, answer) = post(&svc, "/import/flink?app=wordcount&job_id=86d1&label.subtask=0", saved.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["app"].as_str(), answer["time_ms"].as_i64()), (Some("wordcount"), Some(end)));
    assert_eq!((answer["samples"].as_u64(), answer["stacks"].as_u64()), (Some(100), Some(1)));

    // The stored tree is Flink's tree.
    let flink: Value = serde_json::from_str(&saved).expect("json");
    let range = format!("from={end}&to={}", end + 1);
    let ours = json_of(&svc, &format!("/flamegraph/wordcount.json?{range}&job_id=86d1&subtask=0")).await;
    assert_eq!(sorted_tree(ours), sorted_tree(flink["data"].clone()));
    let before = end - end % 1000; // the start of its 1 s bucket
    assert_eq!(svc.get_text(&format!("/flamegraph/wordcount.json?to={before}")).await.0, 404, "nothing before endTimestamp");

    // Just the tree, filed at `time=`; the same labels add up.
    let tree = flink["data"].to_string();
    let (status, answer) = post(&svc, &format!("/import/flink?app=wordcount&job_id=86d1&subtask=0&time={}", end - 10_000), tree).await;
    assert_eq!((status, answer["time_ms"].as_i64()), (200, Some(end - 10_000)), "{answer}");
    let info = json_of(&svc, "/apps/wordcount").await;
    assert_eq!(info["total_samples"], 200);
    assert_eq!(info["labels"]["subtask"]["0"]["samples"], 200);

    // gzip, as curl --data-binary @graph.json.gz -H 'Content-Encoding: gzip' sends it.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, saved.as_bytes()).expect("gzip");
    let r = svc
        .client
        .post(svc.url("/import/flink?app=zipped"))
        .header("Content-Encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(json_of(&svc, "/apps/zipped").await["total_samples"], 100);
}

#[tokio::test]
async fn malformed_documents_are_refused_whole_and_counted() {
    let svc = Service::start(&[]).await;
    let now = now_ms();
    let root = |children: &str, value: i64| {
        format!(r#"{{"endTimestamp":{now},"data":{{"name":"root","value":{value},"children":[{children}]}}}}"#)
    };
    let ok_child = r#"{"name":"java.lang.Thread.run:840","value":4,"children":[]}"#;
    let cases: Vec<(&str, String, &str)> = vec![
        ("/import/flink?app=bad", root(ok_child, 4)[..60].to_string(), "not a Flink flame graph: EOF while parsing"),
        ("/import/flink?app=bad", root(&format!("{ok_child},{ok_child}"), 5), "the root: its children add up to 8, more than its value 5"),
        (
            "/import/flink?app=bad",
            root(&format!("{ok_child},{}", r#"{"name":"B.b:1","value":-2}"#), 4),
            "frame B.b:1: value -2 is negative",
        ),
        ("/import/flink?app=bad", r#"{"endTimestamp":-1}"#.into(), "Flink's answer holds no flame graph (Finished"),
        ("/import/flink?app=bad", "[1,2,3]".into(), "not a Flink flame graph: expected a JSON object"),
        ("/import/flink", root(ok_child, 4), "missing parameter app"),
        ("/import/flink?app=bad&bad-label=1", root(ok_child, 4), "\"bad-label\" cannot be a label"),
        ("/import/flink?app=bad&from=1", root(ok_child, 4), "\"from\" cannot be a label"),
        ("/import/flink?app=bad&time=1000", root(ok_child, 4), "nothing stored: timestamp older than the retention"),
        ("/import/folded?app=bad", "A.a:1;B.b:2 3\nA.a:1;C.c:3\n".into(), "line 2: no count"),
        ("/import/folded?app=bad", "A.a:1 -3\n".into(), "line 1: the count is not a whole number"),
        ("/import/folded?app=bad", "A.a:1 3\n\u{0}".into(), "line 2: no count"),
    ];
    for (path, body, says) in &cases {
        let (status, answer) = post(&svc, path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body:?}: {answer}");
        let message = answer["error"].as_str().expect("error message");
        assert!(message.starts_with(says), "{path} {body:?}: {message:?} should start with {says:?}");
    }
    assert_eq!(svc.get_text("/apps/bad").await.0, 404, "nothing of a refused document is stored");
    assert_eq!(svc.metric("stackd_requests_rejected_total{reason=\"bad_document\"}").await, cases.len() as f64);
    let r = svc.client.post(svc.url("/import/folded?app=x")).header("Content-Encoding", "br").body("a 1").send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 415);
}

/// Real JVM stacks (the JFR fixture) as the agent sends them, under one app.
async fn agent_app(svc: &Service, app: &str) {
    let mut body = String::new();
    for (stack, count) in parse_folded(&jfr_fixture()) {
        let frames: Vec<&str> = stack.split(';').collect();
        body.push_str(&format!("{},prefix={app} value={count}i\n", agent_stack_name(&frames).replace(' ', "\\ ")));
    }
    // Frames that only JSON carries as they are: markup, a `;`, a space before digits, a quote.
    body.push_str("Stacktrace count=3i,appId=\"");
    body.push_str(app);
    body.push_str("\",stacktrace=\"x;y,frame 12,say \\\"hi\\\",java.lang.Thread.run\"\n");
    let r = svc.client.post(svc.url("/write?db=profiler")).body(body).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 204);
}

#[tokio::test]
async fn stackds_own_json_and_folded_output_import_back_exactly() {
    let svc = Service::start(&[]).await;
    agent_app(&svc, "agent").await;
    let (_, json) = svc.get_text("/flamegraph/agent.json").await;
    let (_, folded) = svc.get_text("/flamegraph/agent.folded").await;
    assert!(folded.lines().count() >= 20, "{folded}");

    let (status, answer) = post(&svc, "/import/flink?app=from_json", json.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(svc.get_text("/flamegraph/from_json.json").await.1, json, "the JSON round trip is exact");
    assert_eq!(svc.get_text("/flamegraph/from_json.folded").await.1, folded);

    // Folded text cannot carry a `;` inside a frame (it is written as `_`): the profile comes
    // back exactly as folded text tells it.
    let (status, answer) = post(&svc, "/import/folded?app=from_folded", folded.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(svc.get_text("/flamegraph/from_folded.folded").await.1, folded, "the folded round trip is exact");
    let original = json_of(&svc, "/apps/agent").await;
    for app in ["from_json", "from_folded"] {
        let info = json_of(&svc, &format!("/apps/{app}")).await;
        assert_eq!(info["total_samples"], original["total_samples"], "{app}");
    }
}

#[tokio::test]
async fn an_import_names_its_profile_type() {
    let svc = Service::start(&[]).await;
    let (status, answer) = post(&svc, "/import/folded?app=typed&type=alloc_bytes", "main;alloc 4096\nmain;other 100\n").await;
    assert_eq!(status, 200, "{answer}");
    post(&svc, "/import/folded?app=typed", "main;work 3\n").await;
    // Flink's graph names, as its REST API and the README's example give them.
    let saved = fixture("on_cpu.json");
    let (status, answer) = post(&svc, "/import/flink?app=typed&type=off_cpu&time=now", saved).await;
    assert_eq!(status, 200, "{answer}");
    let info = json_of(&svc, "/apps/typed").await;
    let types: Vec<(&str, u64)> = info["types"]
        .as_array()
        .expect("types")
        .iter()
        .map(|t| (t["type"].as_str().expect("type"), t["total"].as_u64().expect("total")))
        .collect();
    assert_eq!(types, [("cpu", 3), ("off_cpu", 100), ("alloc_bytes", 4196)]);
    assert_eq!(svc.get_text("/flamegraph/typed.folded").await.1, "main;work 3\n", "cpu by default, nothing else added");
    assert_eq!(svc.get_text("/flamegraph/typed.folded?type=alloc_bytes").await.1, "main;alloc 4096\nmain;other 100\n");
    assert!(info["labels"].get("type").is_none(), "{info}");
    let (status, answer) = post(&svc, "/import/folded?app=typed&type=heap", "a 1\n").await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().expect("error").starts_with("invalid type=\"heap\": one of cpu, wall, off_cpu"), "{answer}");
    svc.stop().await;
}
