//! Third hardening round: each test reproduces a way one request once cost gigabytes, lost what
//! was answered as stored, or leaked a credential, and pins the bound or behaviour that replaced
//! it. Limits are lowered by their flags so that the tests stay small; the defaults are in the
//! README's limits table.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Binary, Service, TempDir};

fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions { allow_dtd: true, nodes_limit: u32::MAX };
    roxmltree::Document::parse_with_options(svg, options).expect("the SVG is well-formed XML")
}

async fn import(svc: &Service, query: &str, body: String) -> (u16, String) {
    let r = svc.client.post(svc.url(&format!("/import/folded?{query}"))).body(body).send().await.expect("POST");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test]
async fn query_requests_are_bounded_in_statements_names_and_body() {
    let svc = Service::start(&["--max-body-size", "2000"]).await;
    // One request repeating SHOW DATABASES once answered the list once per statement.
    let r = svc.get(&format!("/query?q={}", "SHOW+DATABASES%3B".repeat(40))).await;
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<serde_json::Value>().await.expect("json")["error"], "40 statements in one request; stackd answers at most 32");
    assert_eq!(svc.metric("stackd_requests_rejected_total{reason=\"query_too_long\"}").await, 1.0);
    // The names kept are bounded: the 257th is refused, the list stays 256 long.
    for batch in 0..10 {
        let q: Vec<String> = (0..30).map(|i| format!("CREATE DATABASE db{}", batch * 30 + i)).collect();
        let r = svc.client.get(svc.url("/query")).query(&[("q", q.join(";"))]).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 200);
        let results = r.json::<serde_json::Value>().await.expect("json")["results"].clone();
        for (i, result) in results.as_array().expect("results").iter().enumerate() {
            let n = batch * 30 + i;
            if n < 256 {
                assert_eq!(result.get("error"), None, "db{n}: {result}");
            } else {
                assert_eq!(result["error"], "stackd keeps at most 256 database names (writes need none of them): drop one first");
            }
        }
    }
    let r = svc.get("/query?q=SHOW+DATABASES").await.json::<serde_json::Value>().await.expect("json");
    assert_eq!(r["results"][0]["series"][0]["values"].as_array().expect("values").len(), 256);
    let long = format!("CREATE DATABASE {}", "d".repeat(300));
    let r = svc.client.get(svc.url("/query")).query(&[("q", long)]).send().await.expect("GET");
    assert_eq!(r.json::<serde_json::Value>().await.expect("json")["results"][0]["error"], "database name longer than 255 bytes");
    // A POST body is read within --max-body-size, like a write.
    let r = svc.client.post(svc.url("/query")).body(format!("q={}", "x".repeat(5000))).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 413);
    assert!(svc.metric("stackd_limit_hits_total{limit=\"query\"}").await >= 45.0);
}

#[tokio::test]
async fn imports_wait_for_a_slot_and_are_refused_when_none_frees() {
    let svc = Service::start(&["--max-concurrent-imports", "1", "--http-request-timeout", "1s"]).await;
    // Imports whose bodies are still arriving hold the only slot, one after the other (a slot
    // goes to the requests waiting in turn): the first until its body times out, then the second.
    let slow = |app: &str| {
        let mut c = std::net::TcpStream::connect(svc.http).expect("connect");
        let head = format!("POST /import/folded?app={app} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\na;b 1\n");
        c.write_all(head.as_bytes()).expect("send");
        c
    };
    let first = slow("slow1");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = slow("slow2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = import(&svc, "app=third", "a;b 2\n".into()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("1 imports are being read already (--max-concurrent-imports); retry later"), "{body}");
    assert_eq!(svc.metric("stackd_requests_rejected_total{reason=\"import_busy\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"imports\"}").await, 1.0);
    // The slow bodies time out (408) and free the slot.
    drop((first, second));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, body) = import(&svc, "app=second", "a;b 2\nc 3\n".into()).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((answer["samples"].as_u64(), answer["stacks"].as_u64()), (Some(5), Some(2)));
}

#[tokio::test]
async fn folded_lines_that_would_store_wrong_frames_are_refused() {
    let svc = Service::start(&[]).await;
    for (doc, why) in [
        ("ok;frame 1\na;b 1 2\n", "line 2: the last frame ends in a number: two counts?"),
        (";;; 5\n", "line 1: an empty frame"),
        ("a;;b 5\n", "line 1: an empty frame"),
    ] {
        let (status, body) = import(&svc, "app=folded", doc.into()).await;
        assert_eq!(status, 400, "{doc:?}");
        assert!(body.contains(why), "{doc:?}: {body}");
    }
    assert_eq!(svc.get("/apps/folded").await.status(), 404, "nothing of a refused document is stored");
}

#[tokio::test]
async fn names_frames_and_stacks_over_their_limits_are_cut_and_counted() {
    let svc = Service::start(&["--max-name-length", "64", "--max-frame-length", "100", "--max-stack-depth", "50"]).await;
    // A 10 MB app name, label value and frame were once kept whole.
    let app = "a".repeat(10_000);
    let frame = "F".repeat(1_000_000);
    let deep: Vec<String> = (0..5_000).map(|i| format!("f{i}")).collect();
    let body = format!("{frame};x 2\n{} 3\n", deep.join(";"));
    let (status, answer) = import(&svc, &format!("app={app}&host={}", "h".repeat(10_000)), body).await;
    assert_eq!(status, 200, "{answer}");
    let name = "a".repeat(64);
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(answer["app"], name.as_str());
    let (_, folded) = svc.get_text(&format!("/flamegraph/{name}.folded")).await;
    let mut lines: Vec<&str> = folded.lines().collect();
    lines.sort();
    let cut_deep = format!("{};[stackd: stack depth limit reached] 3", deep[..49].join(";"));
    assert_eq!(lines, [format!("{};x 2", "F".repeat(100)), cut_deep]);
    let (_, info) = svc.get_text(&format!("/apps/{name}")).await;
    assert!(info.contains(&format!("\"{}\"", "h".repeat(64))) && !info.contains(&"h".repeat(65)), "label value cut: {info}");
    for (limit, hits) in [("name_length", 1.0), ("frame_length", 1.0), ("stack_depth", 1.0)] {
        assert_eq!(svc.metric(&format!("stackd_limit_hits_total{{limit=\"{limit}\"}}")).await, hits, "{limit}");
    }
    // The same limits over line protocol (a host tag of 100 KB).
    let line = format!("cpu.trace.a-b-1,prefix=lp,host={} value=1i\n", "z".repeat(100_000));
    let r = svc.client.post(svc.url("/write?db=x")).body(line).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 204);
    let (_, info) = svc.get_text("/apps/lp").await;
    assert!(info.contains(&format!("\"{}\"", "z".repeat(64))), "{info}");
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"name_length\"}").await, 2.0);
    // And on engine metrics: a Spark app name of 200 bytes is a label value of 64 on /metrics;
    // a Flink measurement name of 200 bytes is refused.
    svc.send_udp([format!("{}.driver.jvm.heap.used:1|g", "s".repeat(200))]);
    svc.wait_datagrams(1).await;
    let (_, metrics) = svc.get_text("/metrics").await;
    assert!(metrics.contains(&format!("spark_jvm_heap_used_bytes{{app=\"{}\",executor=\"driver\"", "s".repeat(64))), "{metrics}");
    assert!(!metrics.contains(&"s".repeat(65)));
    let line = format!("{},host=tm1,tm_id=t1 value=1i\n", "taskmanager_".repeat(20));
    let r = svc.client.post(svc.url("/write?db=flink")).body(line).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.expect("body").contains("metric or label name longer than --max-name-length"));
}

#[tokio::test]
async fn a_flame_graph_draws_at_most_its_frame_budget_and_says_so() {
    let svc = Service::start(&["--max-render-frames", "500"]).await;
    // 5,000 distinct stacks of distinct widths; width=100000&minwidth=0 once drew every frame.
    let doc: String = (0..5_000).map(|i| format!("root;mid{};leaf{i} {}\n", i % 50, 1 + i)).collect();
    let (status, body) = import(&svc, "app=wide", doc).await;
    assert_eq!(status, 200, "{body}");
    let (status, svg) = svc.get_text("/flamegraph/wide.svg?width=100000&minwidth=0").await;
    assert_eq!(status, 200);
    let doc = parse_svg(&svg);
    let rects = svg.matches("fg:w=\"").count();
    // The root `all`, then the 500 widest: root, the 50 mids and the 449 widest leaves.
    assert_eq!(rects, 501);
    let text: String = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(text.contains("leaf4999 (5,000 samples") && text.contains("leaf4551 (") && !text.contains("leaf4550 ("), "the widest");
    assert!(text.contains("500 of 5051 frames drawn (the narrowest left out"), "the subtitle says so");
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"render_output\"}").await, 1.0);
    // Within the budget nothing is cut.
    let (_, small) = svc.get_text("/flamegraph/wide.svg?minwidth=1").await;
    assert!(!small.contains("frames drawn"));
}

#[tokio::test]
async fn series_are_capped_across_apps_too() {
    let svc = Service::start(&["--max-series", "5"]).await;
    let lines: Vec<String> = ["app-1", "app-2"]
        .iter()
        .flat_map(|app| ["heap.used", "heap.max", "heap.committed", "heap.init"].map(|m| format!("{app}.driver.jvm.{m}:1|g")))
        .collect();
    svc.send_udp(&lines);
    svc.wait_datagrams(8).await;
    let (_, metrics) = svc.get_text("/metrics").await;
    let series = metrics.lines().filter(|l| l.starts_with("spark_jvm_heap_")).count();
    assert_eq!(series, 5, "{metrics}");
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"series_total_limit\"}").await, 3.0);
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"series_total\"}").await, 3.0);
}

#[tokio::test]
async fn read_credentials_in_the_query_are_never_labels_nor_echoed() {
    let svc = Service::start(&["--read-credentials", "reader:s3cr3t-pw"]).await;
    let r = svc.client.post(svc.url("/import/folded?app=creds&executor=1")).body("a;b 4\n").send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let (status, folded) = svc.get_text("/flamegraph/creds.folded?u=reader&p=s3cr3t-pw").await;
    assert_eq!((status, folded.as_str()), (200, "a;b 4\n"));
    let (status, timeline) = svc.get_text("/apps/creds/timeline?u=reader&p=s3cr3t-pw").await;
    assert_eq!(status, 200, "{timeline}");
    let (status, message) = svc.get_text("/flamegraph/creds.svg?u=reader&p=s3cr3t-pw&executor=9").await;
    assert_eq!(status, 404);
    assert!(message.contains("executor=9") && !message.contains("s3cr3t"), "{message}");
    let (status, svg) = svc.get_text("/flamegraph/creds.svg?u=reader&p=s3cr3t-pw").await;
    assert_eq!(status, 200);
    assert!(!svg.contains("s3cr3t"), "nor in the graph");
}

#[tokio::test]
async fn graphs_are_served_with_a_content_security_policy() {
    let svc = Service::start(&[]).await;
    let r = svc.client.post(svc.url("/import/folded?app=csp")).body("a;b 4\n").send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    for ext in ["svg", "folded", "json"] {
        let r = svc.get(&format!("/flamegraph/csp.{ext}")).await;
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{ext}");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
            "{ext}"
        );
    }
}

#[tokio::test]
async fn sync_writes_covers_imports() {
    let data = TempDir::new("sync-import");
    let bin = Binary::start(&data.0, &["--sync-writes", "--flush-interval", "1h"]);
    let client = reqwest::Client::new();
    let r = client.post(bin.url("/import/folded?app=durable")).body("a;b 4\nc 1\n").send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    // No flush would come for an hour: only the import's own sync can have kept it.
    bin.kill9();
    let bin = Binary::start(&data.0, &[]);
    let (status, folded) = bin.get_text("/flamegraph/durable.folded").await;
    assert_eq!((status, folded.as_str()), (200, "a;b 4\nc 1\n"));
    bin.stop();
}

/// The explorer and the SVG match search terms with `stackdPattern` (src/render/search.js):
/// run it in node on the crafted link's term and others.
#[test]
fn search_terms_that_could_backtrack_are_matched_as_text() {
    let script = format!(
        "{}\n{}",
        stackd::render::SEARCH_JS,
        r#"
const cases = ["(.*.*)*#", "a*a*a*b", "(a|aa)+$", "\\1", "Foo|Bar", "^java\\.util", "Task.*run", "x{2,}y{1,}", "[a-z]+\\.run", "a{2,5}"];
const out = cases.map((t) => { const p = stackdPattern(t); return [t, p.literal, p.re.source]; });
const long = "a".repeat(30) + "!";
const started = Date.now();
for (const t of cases) stackdPattern(t).re.test(long);
out.push(["elapsed_ok", Date.now() - started < 1000]);
console.log(JSON.stringify(out));
"#
    );
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(script)
        .output()
        .expect("node (on the machine; .ci/run installs nodejs when missing)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let want = serde_json::json!([
        ["(.*.*)*#", true, "\\(\\.\\*\\.\\*\\)\\*#"],
        ["a*a*a*b", true, "a\\*a\\*a\\*b"],
        ["(a|aa)+$", true, "\\(a\\|aa\\)\\+\\$"],
        ["\\1", true, "\\\\1"],
        ["Foo|Bar", false, "Foo|Bar"],
        ["^java\\.util", false, "^java\\.util"],
        ["Task.*run", false, "Task.*run"],
        ["x{2,}y{1,}", true, "x\\{2,\\}y\\{1,\\}"],
        ["[a-z]+\\.run", false, "[a-z]+\\.run"],
        ["a{2,5}", false, "a{2,5}"],
        ["elapsed_ok", true]
    ]);
    assert_eq!(got, want);
}

/// A second stackd on the statsd port of a running one once took every datagram from it,
/// silently (SO_REUSEADDR on UDP): it must refuse to start, naming the port, and the first must
/// keep receiving.
#[tokio::test]
async fn a_second_stackd_on_the_same_statsd_port_refuses_to_start() {
    let (one, two) = (TempDir::new("port-one"), TempDir::new("port-two"));
    let first = Binary::start(&one.0, &[]);
    let port = first.statsd.clone();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_stackd"))
        .args(["--statsd-addr", &port, "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&two.0)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run a second stackd");
    // Bounded: a second stackd that started after all is stopped, and the test fails.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut log).expect("log");
    assert!(status.is_some_and(|s| !s.success()), "the second stackd must exit with an error: {status:?}\n{log}");
    assert!(log.contains(&format!("cannot bind statsd UDP socket on {port}")) && log.contains("choose another --statsd-addr"), "{log}");
    // Every datagram still reaches the first.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    for i in 0..200 {
        socket.send_to(format!("spark.port.1.cpu.trace.a-b-{i}:1|g").as_bytes(), &port).expect("send");
    }
    common::wait_for("200 samples", Duration::from_secs(10), || async {
        let (code, body) = first.get_text("/apps/spark.port.1").await;
        (code == 200 && body.contains("\"total_samples\":200")).then_some(())
    })
    .await;
    first.stop();
}
