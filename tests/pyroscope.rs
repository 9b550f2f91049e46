//! Grafana Pyroscope's clients pointed at stackd unchanged: the real Python client
//! (`pyroscope-io` 1.4.0, Push API), the real Node.js client (`@pyroscope/nodejs` 0.6.4,
//! `/ingest?format=pprof`), the Java agent's exact request (multipart JFR + labels, built as its
//! exporter builds it, from a recording the JDK makes here), collapsed stacks as Pyroscope's
//! documentation sends them with curl, and what malformed input gets.

mod common;

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use common::{now_ms, parse_folded, Service, TempDir};
use serde_json::Value;
use stackd::protocol::pprof::{Function, Line, Location, Profile, Sample, ValueType};

async fn json_of(svc: &Service, path: &str) -> Value {
    let (status, text) = svc.get_text(path).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// The total of one type in `/apps/<app>`.
async fn type_total(svc: &Service, app: &str, ty: &str) -> Value {
    let info = json_of(svc, &format!("/apps/{app}")).await;
    info["types"].as_array().expect("types").iter().find(|t| t["type"] == ty).cloned().unwrap_or(Value::Null)
}

/// Sum of a `.folded` answer's counts.
async fn folded_total(svc: &Service, path: &str) -> u64 {
    let (status, text) = svc.get_text(path).await;
    assert_eq!(status, 200, "{path}: {text}");
    parse_folded(&text).iter().map(|(_, n)| n).sum()
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().expect("curl (installed by .ci/run)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsed_stacks_as_pyroscopes_documentation_sends_them_with_curl() {
    let svc = Service::start(&[]).await;
    let now = now_ms() / 1000;
    // docs/sources/reference-server-api: `printf "foo;bar 100\n foo;baz 200" | curl -X POST --data-binary @- '…/ingest?name=curl-test-app&from=…&until=…'`
    let url = svc.url(&format!("/ingest?name=curl-test-app&from={now}&until={now}"));
    let (status, body) = curl(&["-X", "POST", "--data-binary", "foo;bar 100\n foo;baz 200", &url]);
    assert_eq!((status, body.as_str()), (200, ""), "success is 200 with an empty body");
    let (_, folded) = svc.get_text("/flamegraph/curl-test-app.folded").await;
    assert_eq!(parse_folded(&folded), [("foo;bar".to_string(), 100), ("foo;baz".to_string(), 200)]);
    // Samples at Pyroscope's default 100 Hz: 300 samples are 3 s.
    let cpu = type_total(&svc, "curl-test-app", "cpu").await;
    assert_eq!((cpu["total"].as_u64(), cpu["time_ns"].as_u64()), (Some(300), Some(3_000_000_000)));

    // Tags and a type suffix; one stack a line with format=lines; sampleRate sets the period.
    let url = svc.url(&format!("/pyroscope/ingest?name=shop.wall%7Benv%3Dstaging%2Cregion%3Dus-west-1%7D&from={now}&format=lines&sampleRate=50&spyName=x&units=samples&aggregationType=sum"));
    let (status, _) = curl(&["-X", "POST", "--data-binary", "main;work\nmain;work\nmain;idle\n", &url]);
    assert_eq!(status, 200);
    let wall = type_total(&svc, "shop", "wall").await;
    assert_eq!((wall["total"].as_u64(), wall["time_ns"].as_u64()), (Some(3), Some(60_000_000)));
    assert_eq!(folded_total(&svc, "/flamegraph/shop.folded?type=wall&env=staging&region=us-west-1").await, 3);
    let (status, text) = svc.get_text("/flamegraph/shop.folded?type=wall&env=prod").await;
    assert_eq!(status, 404, "{text}");

    // An allocation type by its suffix: bytes, no period.
    let url = svc.url(&format!("/ingest?name=shop.alloc_space&from={now}"));
    assert_eq!(curl(&["-X", "POST", "--data-binary", "main;alloc 4096", &url]).0, 200);
    let alloc = type_total(&svc, "shop", "alloc_bytes").await;
    assert_eq!((alloc["total"].as_u64(), alloc["unit"].as_str()), (Some(4096), Some("bytes")));
    assert_eq!(svc.metric("stackd_pyroscope_requests_total{api=\"ingest\",format=\"folded\",outcome=\"stored\"}").await, 2.0);
    assert_eq!(svc.metric("stackd_pyroscope_requests_total{api=\"ingest\",format=\"lines\",outcome=\"stored\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_python_client_pushes_and_its_functions_show_under_its_application() {
    let svc = Service::start(&[]).await;
    let out = common::python("pyroscope_client.py", &[&svc.url(""), "pyspark-driver", "3"]);
    assert_eq!(out, "done");
    // Its last upload arrives with shutdown(): the data is there when it returns.
    let cpu = common::wait_for("the client's cpu samples", Duration::from_secs(10), || async {
        let t = type_total(&svc, "pyspark-driver", "cpu").await;
        t["total"].as_u64().filter(|n| *n > 0).map(|_| t)
    })
    .await;
    let total = cpu["total"].as_u64().expect("total");
    // py-spy samples at 100 Hz: the client's values are nanoseconds at a 10 ms period.
    assert_eq!(cpu["time_ns"].as_u64(), Some(total * 10_000_000));
    let (_, folded) = svc.get_text("/flamegraph/pyspark-driver.folded").await;
    let stacks = parse_folded(&folded);
    let crunch: u64 = stacks.iter().filter(|(s, _)| s.ends_with("shuffle_stage;crunch_numbers")).map(|(_, n)| n).sum();
    assert!(crunch > 0, "the busy function is in the graph: {folded}");
    // Tags: the static one and the tag_wrapper one select the same samples.
    assert_eq!(folded_total(&svc, "/flamegraph/pyspark-driver.folded?role=driver").await, total);
    // Samples taken inside tag_wrapper carry its tag (the sampler reads a thread's tags on its
    // own schedule, so a sample at the block's edges may go either way: no exact figure).
    let shuffle = folded_total(&svc, "/flamegraph/pyspark-driver.folded?stage=shuffle").await;
    assert!(shuffle > 0 && shuffle <= total, "{shuffle} of {total} samples tagged stage=shuffle");
    let (_, tagged) = svc.get_text("/flamegraph/pyspark-driver.folded?stage=shuffle").await;
    assert!(tagged.contains("shuffle_stage;crunch_numbers"), "{tagged}");
    let info = json_of(&svc, "/apps/pyspark-driver").await;
    assert!(info["labels"]["process_runtime_name"]["cpython"].is_object(), "{info}");
    assert!(svc.metric("stackd_pyroscope_requests_total{api=\"push\",format=\"pprof\",outcome=\"stored\"}").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_nodejs_client_uploads_wall_and_heap_profiles() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/node");
    assert!(
        std::path::Path::new(dir).join("node_modules/@pyroscope/nodejs").exists(),
        "@pyroscope/nodejs is not installed: `npm ci --prefix tests/clients/node` (.ci/run does)"
    );
    let svc = Service::start(&[]).await;
    let out = Command::new("node")
        .arg(format!("{dir}/pyroscope_client.js"))
        .args([&svc.url(""), "node-service", "3000"])
        .current_dir(dir)
        .output()
        .expect("node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let wall = type_total(&svc, "node-service", "wall").await;
    let total = wall["total"].as_u64().expect("wall samples");
    // The wall profiler samples every 10 ms for the ~3 s the script runs (its period is in the
    // profile): the samples stand for about that long.
    let ns = wall["time_ns"].as_u64().expect("time");
    assert!((2_000_000_000..6_000_000_000).contains(&ns), "{ns} ns of wall time for a 3 s run");
    assert!(total > 0);
    let (_, folded) = svc.get_text("/flamegraph/node-service.folded?type=wall&region=eu").await;
    assert!(folded.lines().any(|l| l.contains("busyWork")), "the busy function is in the wall graph: {folded}");
    for ty in ["inuse_bytes", "inuse_objects"] {
        assert!(type_total(&svc, "node-service", ty).await["total"].as_u64().is_some_and(|n| n > 0), "{ty}");
    }
}

/// A protobuf writer of the test's own (field numbers from `agent/jfr_labels.proto` of
/// grafana/pyroscope-java), so the snapshot is not encoded by the code under test.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

/// `LabelsSnapshot{contexts: {id: Context{labels: {k: v}}}, strings: {id: s}}`.
fn labels_snapshot(contexts: &[(u64, &[(u64, u64)])], strings: &[(u64, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, labels) in contexts {
        let mut context = Vec::new();
        for (k, v) in *labels {
            let mut entry = Vec::new();
            field_varint(&mut entry, 1, *k);
            field_varint(&mut entry, 2, *v);
            field_bytes(&mut context, 1, &entry);
        }
        let mut entry = Vec::new();
        field_varint(&mut entry, 1, *id);
        field_bytes(&mut entry, 2, &context);
        field_bytes(&mut out, 1, &entry);
    }
    for (id, s) in strings {
        let mut entry = Vec::new();
        field_varint(&mut entry, 1, *id);
        field_bytes(&mut entry, 2, s.as_bytes());
        field_bytes(&mut out, 2, &entry);
    }
    out
}

/// The body OkHttp's `MultipartBody.Builder().setType(FORM)` writes for the Java agent
/// (`PyroscopeExporter.uploadSnapshot`, grafana/pyroscope-java): `jfr` (gzip, no content type,
/// no length: a `GzipSink` body) and `labels` (gzip, `application/x-protobuf`).
fn agent_multipart(boundary: &str, jfr_gz: &[u8], labels_gz: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"jfr\"; filename=\"jfr\"\r\n\r\n").as_bytes());
    body.extend_from_slice(jfr_gz);
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"labels\"; filename=\"labels\"\r\nContent-Type: application/x-protobuf\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(labels_gz);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// Record tests/fixtures/jfr/ContextSamples.java with the JDK's Flight Recorder.
fn record_context_samples(dir: &TempDir) -> std::path::PathBuf {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/ContextSamples.java");
    let classes = dir.0.join("classes");
    let ok = Command::new("javac").args(["-d"]).arg(&classes).arg(src).status().expect("javac (Java 17, installed by .ci/run)");
    assert!(ok.success());
    let jfr = dir.0.join("context.jfr");
    let out = Command::new("java")
        .arg(format!("-XX:StartFlightRecording=filename={},settings=profile", jfr.display()))
        .arg("-cp")
        .arg(&classes)
        .args(["ContextSamples", "1500"])
        .output()
        .expect("java");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    jfr
}

/// Events per name in `jfr summary` (a recording may list one name twice: the JDK's type and
/// a program's).
fn summary_total(jfr: &std::path::Path, event: &str) -> u64 {
    let out = Command::new("jfr").arg("summary").arg(jfr).output().expect("jfr");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(event)).then(|| w.next().and_then(|n| n.parse::<u64>().ok())).flatten()
        })
        .sum()
}

#[tokio::test]
async fn the_java_agents_request_multipart_jfr_with_its_labels_snapshot() {
    let dir = TempDir::new("pyro-jfr");
    let jfr = record_context_samples(&dir);
    let expected = summary_total(&jfr, "jdk.ExecutionSample");
    // What `jfr print` says of the context ids, independently of stackd's reader.
    let printed = Command::new("jfr").args(["print", "--events", "jdk.ExecutionSample"]).arg(&jfr).output().expect("jfr print");
    let printed = String::from_utf8_lossy(&printed.stdout).to_string();
    let (ctx1, ctx2) = (printed.matches("contextId = 1\n").count() as u64, printed.matches("contextId = 2\n").count() as u64);
    assert_eq!((ctx1, ctx2), (30, 20), "the program records 30 and 20 samples of contexts 1 and 2");
    assert!(expected > ctx1 + ctx2, "the JDK's own samples are there too");

    // The async-profiler fixture below was recorded on the day it was made.
    let svc = Service::start(&["--write-credentials", "agent:s3cret", "--retention", "36500d"]).await;
    let snapshot = labels_snapshot(&[(1, &[(1, 2)]), (2, &[(1, 3)])], &[(1, "span_name"), (2, "checkout"), (3, "payment")]);
    let boundary = "9d3c2a0e-6f1b-4b7e-8c55-0a1b2c3d4e5f";
    let body = agent_multipart(boundary, &gzip(&std::fs::read(&jfr).expect("jfr")), &gzip(&snapshot));
    let now = now_ms() / 1000;
    // PyroscopeExporter.urlForSnapshot: name (with the static labels), units, aggregationType,
    // from, until, spyName, sampleRate (cpu, itimer, wall), format.
    let url = svc.url(&format!(
        "/ingest?name=spark-executor%7Bexecutor%3D7%7D&units=samples&aggregationType=sum&from={}&until={now}&spyName=javaspy&sampleRate=100&format=jfr",
        now - 10
    ));
    // A client of its own per request: a 401 is answered before the body is read, and the
    // connection is then closed, so a next request must not be sent on it.
    let send = |auth: Option<&'static str>| {
        let mut r = reqwest::Client::new()
            .post(&url)
            .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
            .header("X-Scope-OrgID", "tenant-1")
            .body(body.clone());
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    let denied = send(None).await.expect("send");
    assert_eq!(denied.status(), 401);
    let denied: Value = denied.json().await.expect("JSON");
    assert_eq!(denied["code"], "unauthenticated");
    // okhttp3.Credentials.basic("agent", "s3cret").
    let r = send(Some("Basic YWdlbnQ6czNjcmV0")).await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "");

    let svc_read = |path: String| {
        let svc = &svc;
        async move { folded_total(svc, &path).await }
    };
    let cpu = type_total(&svc, "spark-executor", "cpu").await;
    assert_eq!(cpu["total"].as_u64(), Some(expected), "every execution sample, as jfr summary counts them: {cpu}");
    assert_eq!(svc_read("/flamegraph/spark-executor.folded?span_name=checkout".into()).await, ctx1);
    assert_eq!(svc_read("/flamegraph/spark-executor.folded?span_name=payment".into()).await, ctx2);
    assert_eq!(svc_read("/flamegraph/spark-executor.folded?executor=7".into()).await, expected, "the name's labels are on every sample");
    let (_, folded) = svc.get_text("/flamegraph/spark-executor.folded?span_name=checkout").await;
    assert!(parse_folded(&folded).iter().all(|(s, _)| s.contains(";ContextSamples.checkout:")), "{folded}");
    assert_eq!(svc.metric("stackd_jfr_chunks_total{input=\"pyroscope\",outcome=\"stored\"}").await, 1.0);

    // async-profiler does not write its default interval into a recording: the request's
    // sampleRate (the agent sends its 100 Hz) is the period of its samples.
    let ap = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/ap-itimer.jfr")).expect("fixture");
    let expected = summary_total(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/ap-itimer.jfr")),
        "jdk.ExecutionSample",
    );
    let r = svc
        .client
        .post(svc.url("/ingest?name=ap-agent&format=jfr&sampleRate=100"))
        .basic_auth("agent", Some("s3cret"))
        .body(gzip(&ap))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let cpu = type_total(&svc, "ap-agent", "cpu").await;
    assert_eq!((cpu["total"].as_u64(), cpu["time_ns"].as_u64()), (Some(expected), Some(expected * 10_000_000)));
}

/// A pprof profile built here: `main;work` ×3 and `main;idle` ×1 at a 10 ms period, values in
/// ns (as pyroscope-rs encodes them), plus a goroutine-count type stackd has no type for.
fn pprof_profile(time_nanos: i64) -> Profile {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Profile {
        sample_type: vec![ValueType { r#type: 1, unit: 2 }, ValueType { r#type: 6, unit: 7 }],
        sample: vec![
            Sample { location_id: vec![2, 1], value: vec![30_000_000, 1], label: vec![] },
            Sample { location_id: vec![3, 1], value: vec![10_000_000, 1], label: vec![] },
        ],
        location: (1..=3).map(|id| Location { id, mapping_id: 0, address: 0, line: vec![Line { function_id: id, line: 1 }] }).collect(),
        function: (1..=3).map(|id| Function { id, name: 2 + id as i64, system_name: 0, filename: 0 }).collect(),
        string_table: s(&["", "cpu", "nanoseconds", "main", "work", "idle", "goroutine", "count"]),
        time_nanos,
        period_type: Some(ValueType { r#type: 1, unit: 2 }),
        period: 10_000_000,
        ..Profile::default()
    }
}

/// A series of a Push request: its labels and one raw profile.
type RawSeries<'a> = (&'a [(&'a str, &'a str)], Vec<u8>);

fn push_request(series: &[RawSeries<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (labels, raw) in series {
        let mut s = Vec::new();
        for (k, v) in *labels {
            let mut pair = Vec::new();
            field_bytes(&mut pair, 1, k.as_bytes());
            field_bytes(&mut pair, 2, v.as_bytes());
            field_bytes(&mut s, 1, &pair);
        }
        let mut sample = Vec::new();
        field_bytes(&mut sample, 1, raw);
        field_bytes(&mut s, 2, &sample);
        field_bytes(&mut out, 1, &s);
    }
    out
}

#[tokio::test]
async fn push_api_in_protobuf_and_json_and_ingest_pprof_store_the_same() {
    use prost::Message as _;
    let svc = Service::start(&[]).await;
    let now = now_ms();
    let pprof = pprof_profile(now * 1_000_000).encode_to_vec();
    let labels: &[(&str, &str)] = &[("__name__", "process_cpu"), ("service_name", "proto-app"), ("job", "etl")];
    // Protobuf, gzip-compressed whole, a plain pprof inside (what pyroscope-io sends).
    let r = svc
        .client
        .post(svc.url("/push.v1.PusherService/Push"))
        .header("Content-Type", "application/proto")
        .header("Content-Encoding", "gzip")
        .body(gzip(&push_request(&[(labels, pprof.clone())])))
        .send()
        .await
        .expect("push");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/proto");
    assert!(r.bytes().await.expect("body").is_empty(), "an empty PushResponse");
    // JSON with a base64 gzip pprof (the documentation's example).
    use base64::Engine as _;
    let json = serde_json::json!({"series": [{"labels": [{"name": "service_name", "value": "json-app"}, {"name": "job", "value": "etl"}],
        "samples": [{"rawProfile": base64::engine::general_purpose::STANDARD.encode(gzip(&pprof)), "ID": "x"}]}]});
    let r = svc.client.post(svc.url("/push.v1.PusherService/Push")).json(&json).send().await.expect("push");
    assert_eq!(r.status(), 200);
    // /ingest?format=pprof with a gzip body (the Node.js client).
    let r =
        svc.client.post(svc.url("/ingest?name=ingest-app%7Bjob%3Detl%7D&format=pprof")).body(gzip(&pprof)).send().await.expect("ingest");
    assert_eq!(r.status(), 200);
    for app in ["proto-app", "json-app", "ingest-app"] {
        let (_, folded) = svc.get_text(&format!("/flamegraph/{app}.folded?job=etl")).await;
        assert_eq!(parse_folded(&folded), [("main;idle".to_string(), 1), ("main;work".to_string(), 3)], "{app}");
        let cpu = type_total(&svc, app, "cpu").await;
        assert_eq!(cpu["time_ns"].as_u64(), Some(40_000_000), "{app}");
    }
    // The goroutine type was left out, and counted (once a profile).
    assert_eq!(svc.metric("stackd_pyroscope_skipped_total{reason=\"sample_type\"}").await, 3.0);
}

#[tokio::test]
async fn go_clients_multipart_with_prev_profile_stores_the_difference_of_cumulative_types() {
    use prost::Message as _;
    let svc = Service::start(&[]).await;
    let heap = |objects: i64, bytes: i64| {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }, ValueType { r#type: 3, unit: 4 }],
            sample: vec![Sample { location_id: vec![1], value: vec![objects, bytes], label: vec![] }],
            location: vec![Location { id: 1, mapping_id: 0, address: 0, line: vec![Line { function_id: 1, line: 1 }] }],
            function: vec![Function { id: 1, name: 5, system_name: 0, filename: 0 }],
            string_table: s(&["", "alloc_objects", "count", "alloc_space", "bytes", "main.alloc"]),
            ..Profile::default()
        }
        .encode_to_vec()
    };
    let config = br#"{"alloc_objects":{"units":"objects","cumulative":true},"alloc_space":{"units":"bytes","cumulative":true}}"#;
    let boundary = "gob0undary";
    let mut body = Vec::new();
    for (name, data) in [("profile", heap(150, 9000)), ("prev_profile", heap(100, 6000)), ("sample_type_config", config.to_vec())] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = svc
        .client
        .post(svc.url("/ingest?name=go-app&spyName=gospy"))
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("ingest");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    assert_eq!(type_total(&svc, "go-app", "alloc_objects").await["total"].as_u64(), Some(50));
    assert_eq!(type_total(&svc, "go-app", "alloc_bytes").await["total"].as_u64(), Some(3000));
}

#[tokio::test]
async fn malformed_input_gets_pyroscopes_4xx_is_counted_and_stores_nothing() {
    use prost::Message as _;
    let svc = Service::start(&["--max-body-size", "1000000"]).await;
    let now = now_ms();
    let push = |body: Vec<u8>| {
        svc.client.post(svc.url("/push.v1.PusherService/Push")).header("Content-Type", "application/proto").body(body).send()
    };
    let good = pprof_profile(now * 1_000_000).encode_to_vec();
    let mut dangling = pprof_profile(now * 1_000_000);
    dangling.sample[0].location_id.push(99);
    // A gzip bomb: 50 MB of zeros, well over the 1 MB limit once decompressed.
    let bomb = gzip(&vec![0u8; 50_000_000]);
    let app: &[(&str, &str)] = &[("service_name", "victim")];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not protobuf", b"\xff\xff\xff\xff".to_vec(), 400, "not a PushRequest"),
        // Field 1, length-delimited, claiming 1 GB.
        ("a 1 GB claimed length", vec![0x0a, 0x80, 0x80, 0x80, 0x80, 0x04, 0x01], 400, "not a PushRequest"),
        ("a dangling location id", push_request(&[(app, dangling.encode_to_vec())]), 400, "location 99"),
        ("a gzip bomb", push_request(&[(app, bomb)]), 413, "once decompressed"),
        // The first series is good, the second is not: nothing of either is stored.
        ("a good series beside a bad one", push_request(&[(app, good.clone()), (app, b"\x08".to_vec())]), 400, "series 1"),
        ("no service_name", push_request(&[(&[("job", "x")], good.clone())]), 400, "service_name"),
    ];
    for (what, body, status, says) in cases {
        let r = push(body).await.expect("push");
        assert_eq!(r.status().as_u16(), status, "{what}");
        let answer: Value = r.json().await.expect("a JSON error");
        assert!(answer["message"].as_str().is_some_and(|m| m.contains(says)), "{what}: {answer}");
        assert_eq!(answer["code"], if status == 400 { "invalid_argument" } else { "resource_exhausted" }, "{what}");
    }
    let ingest = |query: &str, body: Vec<u8>| svc.client.post(svc.url(&format!("/ingest?{query}"))).body(body).send();
    let ingest_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("name=victim%7Benv%3Dx", b"a;b 1".to_vec(), "does not end with }"),
        ("name=victim", b"a;b x".to_vec(), "line 1"),
        ("name=victim&format=jfr", b"not a recording".to_vec(), "chunk at byte 0"),
        ("name=victim&format=pprof", b"\x12\x05".to_vec(), "not a pprof profile"),
        ("name=victim&format=speedscope", b"{}".to_vec(), "format=speedscope"),
        ("name=victim&from=86400", b"a;b 1".to_vec(), "nothing stored"),
        ("from=1", b"a;b 1".to_vec(), "missing parameter name"),
        ("name=victim&from=%ZZ", b"a;b 1".to_vec(), "from: "),
    ];
    for (query, body, says) in ingest_cases {
        let r = ingest(query, body).await.expect("ingest");
        assert_eq!(r.status(), 400, "{query}");
        let answer: Value = r.json().await.expect("a JSON error");
        assert!(answer["message"].as_str().is_some_and(|m| m.contains(says)), "{query}: {answer}");
    }
    // A multipart body without its jfr part.
    let r = svc
        .client
        .post(svc.url("/ingest?name=victim&format=jfr"))
        .header("Content-Type", "multipart/form-data; boundary=b")
        .body("--b\r\nContent-Disposition: form-data; name=\"labels\"\r\n\r\nx\r\n--b--\r\n")
        .send()
        .await
        .expect("ingest");
    assert_eq!(r.status(), 400);
    // Nothing of any of it was stored.
    assert_eq!(svc.get("/apps/victim").await.status(), 404);
    assert_eq!(svc.metric("stackd_pyroscope_requests_total{api=\"push\",format=\"pprof\",outcome=\"bad\"}").await, 5.0);
    assert_eq!(svc.metric("stackd_pyroscope_requests_total{api=\"push\",format=\"pprof\",outcome=\"too_large\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_pyroscope_requests_total{api=\"ingest\",format=\"jfr\",outcome=\"bad\"}").await, 2.0);
    assert!(svc.metric("stackd_requests_rejected_total{reason=\"bad_document\"}").await >= 12.0);
}

#[tokio::test]
async fn a_profile_of_over_a_million_samples_is_refused_before_it_is_decoded() {
    let svc = Service::start(&[]).await;
    // 1,000,001 empty samples (field 2, length 0): 2 MB that would decode to far more.
    let bytes: Vec<u8> = std::iter::repeat_n([0x12u8, 0x00], 1_000_001).flatten().collect();
    let r = svc.client.post(svc.url("/ingest?name=huge&format=pprof")).body(gzip(&bytes)).send().await.expect("ingest");
    assert_eq!(r.status(), 413);
    let answer: Value = r.json().await.expect("JSON");
    assert_eq!(answer["code"], "resource_exhausted");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("1000001 samples")), "{answer}");
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"profile_size\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_pyroscope_requests_total{api=\"ingest\",format=\"pprof\",outcome=\"limit\"}").await, 1.0);
    assert_eq!(svc.get("/apps/huge").await.status(), 404);
}

#[tokio::test]
async fn a_bearer_token_is_taken_and_a_request_refused_whole_by_a_limit_is_a_429() {
    use prost::Message as _;
    let svc = Service::start(&["--write-credentials", "tok3n", "--max-apps", "1"]).await;
    let now = now_ms();
    let pprof = pprof_profile(now * 1_000_000).encode_to_vec();
    let push = |app: &'static str, token: &'static str| {
        let labels: Vec<(&str, &str)> = vec![("service_name", app)];
        let body = push_request(&[(&labels[..], pprof.clone())]);
        // A client of its own per request: the connection of a 401 is closed.
        reqwest::Client::new()
            .post(svc.url("/push.v1.PusherService/Push"))
            .header("Content-Type", "application/proto")
            .bearer_auth(token)
            .body(body)
            .send()
    };
    // PYROSCOPE_AUTH_TOKEN: `Authorization: Bearer <token>`.
    assert_eq!(push("first", "tok3n").await.expect("push").status(), 200);
    assert_eq!(push("first", "wrong").await.expect("push").status(), 401);
    // The one app --max-apps allows is taken: every sample of a second app is refused.
    let r = push("second", "tok3n").await.expect("push");
    assert_eq!(r.status(), 429);
    let answer: Value = r.json().await.expect("JSON");
    assert_eq!(answer["code"], "resource_exhausted");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("--max-apps")), "{answer}");
    assert_eq!(svc.metric("stackd_pyroscope_requests_total{api=\"push\",format=\"pprof\",outcome=\"limit\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"apps\"}").await, 1.0);
    assert_eq!(type_total(&svc, "first", "cpu").await["total"].as_u64(), Some(4));
}
