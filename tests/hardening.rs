//! Hostile and careless input: each test reproduces a way stackd once failed (crash, wrong
//! totals, invalid output, unbounded cost) and pins the behaviour that replaced it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Service;

/// Parse an SVG as XML (inferno's output carries a DOCTYPE).
fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions { allow_dtd: true, nodes_limit: u32::MAX };
    roxmltree::Document::parse_with_options(svg, options).expect("the SVG is well-formed XML")
}

/// A datagram close to the UDP maximum: one stack of 32,700 frames.
fn deep_datagram() -> Vec<u8> {
    let mut d = b"spark.deep.1.cpu.trace.".to_vec();
    d.extend(vec![&b"a"[..]; 32_700].join(&b"."[..]));
    d.extend(b":1|g");
    d
}

#[tokio::test]
async fn a_deep_stack_renders_in_every_format_and_stackd_stays_up() {
    // Deeper than --max-stack-depth allows by default (that cut: tests/hardening_limits.rs).
    let svc = Service::start(&["--max-stack-depth", "40000"]).await;
    svc.send_udp([deep_datagram()]);
    svc.wait_datagrams(1).await;
    // JSON used to recurse per frame and abort the process here.
    let (status, json) = svc.get_text("/flamegraph/spark.deep.1.json").await;
    assert_eq!(status, 200);
    let mut want = String::from(r#"{"name":"root","value":1,"children":["#);
    for _ in 0..32_700 {
        want.push_str(r#"{"name":"a","value":1,"children":["#);
    }
    want.push_str(&"]}".repeat(32_701));
    assert!(json == want, "JSON of the deep stack is not the exact nested tree ({} bytes)", json.len());
    let (status, folded) = svc.get_text("/flamegraph/spark.deep.1.folded").await;
    assert_eq!((status, folded.len()), (200, 32_700 * 2 - 1 + 3));
    let (status, svg) = svc.get_text("/flamegraph/spark.deep.1.svg").await;
    assert_eq!(status, 200);
    parse_svg(&svg);
    assert_eq!(svc.get("/ping").await.status(), 204, "still up");
}

#[tokio::test]
async fn counts_over_the_maximum_are_refused_and_totals_never_wrap() {
    let svc = Service::start(&[]).await;
    let stack = "spark.big.1.cpu.trace.a-b-1";
    svc.send_udp([
        format!("{stack}:5|g"),
        format!("{stack}:99999999999999999999|g"),
        format!("{stack}:1e19|g"),
        format!("{stack}:1000000000001|g"),
        format!("{stack}:1000000000000|g"),
    ]);
    svc.wait_datagrams(5).await;
    let body = "cpu.trace.a-b-1,prefix=spark.big.1 value=1e20\ncpu.trace.a-b-1,prefix=spark.big.1 value=18446744073709551615u\ncpu.trace.a-b-1,prefix=spark.big.1 value=2i\n";
    let r = svc.client.post(svc.url("/write?db=x")).body(body).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.expect("body");
    assert!(text.contains("stack sample count is larger than 1000000000000"), "{text}");
    let (_, folded) = svc.get_text("/flamegraph/spark.big.1.folded").await;
    assert_eq!(folded, "a.b:1 1000000000007\n");
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"count_too_large\"}").await, 3.0);
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"influx\",reason=\"count_too_large\"}").await, 2.0);
}

#[tokio::test]
async fn control_characters_never_make_the_svg_invalid() {
    let svc = Service::start(&[]).await;
    svc.send_udp([&b"spark.ctl.1.cpu.trace.a\x01b-c-1:1|g"[..], "spark.ctl.1.cpu.trace.x\u{fffe}y-c-2:2|g".as_bytes()]);
    svc.wait_datagrams(2).await;
    let (status, svg) = svc.get_text("/flamegraph/spark.ctl.1.svg?title=t%01%EF%BF%BEt").await;
    assert_eq!(status, 200);
    let doc = parse_svg(&svg);
    let text: String = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(text.contains("a\u{fffd}b.c:1") && text.contains("x\u{fffd}y.c:2"), "frames kept, controls replaced: {text}");
    assert!(text.contains("t\u{fffd}\u{fffd}t"), "title sanitised too");
    // The other formats keep the bytes as they came (JSON escapes them).
    let (_, json) = svc.get_text("/flamegraph/spark.ctl.1.json").await;
    assert!(json.contains(r#""a\u0001b.c:1""#), "{json}");
}

#[tokio::test]
async fn a_line_with_several_samples_counts_each_sample() {
    let svc = Service::start(&[]).await;
    svc.send_udp(["spark.multi.1.cpu.trace.a-b-1:4|g:-1|g:2|g"]);
    svc.wait_datagrams(1).await;
    let (_, folded) = svc.get_text("/flamegraph/spark.multi.1.folded").await;
    assert_eq!(folded, "a.b:1 6\n");
    assert_eq!(svc.metric("stackd_lines_accepted_total{protocol=\"statsd\"}").await, 2.0);
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"negative_count\"}").await, 1.0);
}

#[tokio::test]
async fn label_values_and_gauge_series_are_capped_and_counted() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor", "--max-label-values", "3"]).await;
    let datagrams: Vec<String> = (1..=5).map(|e| format!("spark.capped.{e}.cpu.trace.a-b-1:{e}|g")).collect();
    svc.send_udp(&datagrams);
    svc.wait_datagrams(5).await;
    let (_, info) = svc.get_text("/apps/capped").await;
    let info: serde_json::Value = serde_json::from_str(&info).expect("json");
    let executors: Vec<(&str, u64)> = info["labels"]["executor"]
        .as_object()
        .expect("executor label")
        .iter()
        .map(|(k, v)| (k.as_str(), v["samples"].as_u64().expect("samples")))
        .collect();
    assert_eq!(executors, [("1", 1), ("2", 2), ("3", 3), ("[stackd: label value limit reached]", 9)]);
    assert_eq!(info["total_samples"], 15, "no sample lost");
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"label_values\"}").await, 2.0);

    // Gauge pool names are agent-controlled: the third series of one app is refused.
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor", "--max-series-per-app", "2"]).await;
    svc.send_udp(["spark.capped.1.heap.a.used:1|g", "spark.capped.1.heap.b.used:2|g", "spark.capped.1.heap.c.used:3|g"]);
    svc.wait_datagrams(3).await;
    let (_, metrics) = svc.get_text("/metrics").await;
    assert_eq!(metrics.lines().filter(|l| l.starts_with("jvm_memory_pool_bytes_used{")).count(), 2, "{metrics}");
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"series\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"series_limit\"}").await, 1.0);
}

#[tokio::test]
async fn an_empty_app_name_never_takes_an_app_slot() {
    let svc = Service::start(&[]).await;
    let body = r#"Stacktrace count=3i,appId="",stacktrace="b,a""#;
    let r = svc.client.post(svc.url("/write?db=x")).body(body).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 204);
    let (_, apps) = svc.get_text("/apps").await;
    let apps: serde_json::Value = serde_json::from_str(&apps).expect("json");
    assert_eq!(apps[0]["name"], "unknown");
    let (status, folded) = svc.get_text("/flamegraph/unknown.folded").await;
    assert_eq!((status, folded.as_str()), (200, "a;b 3\n"));
}

#[tokio::test]
async fn the_index_neutralises_bidi_and_control_characters() {
    let svc = Service::start(&[]).await;
    svc.send_udp(["spark.evil\u{202e}gpj.exe\u{7}.cpu.trace.a-b-1:1|g"]);
    svc.wait_datagrams(1).await;
    let (_, html) = svc.get_text("/").await;
    assert!(!html.contains('\u{202e}') && !html.contains('\u{7}'), "{html}");
    assert!(html.contains("spark.evil&lt;U+202E&gt;gpj.exe&lt;U+0007&gt;"), "shown visibly: {html}");
    assert!(html.contains("/flamegraph/spark.evil%E2%80%AEgpj.exe%07.svg"), "links still reach the app: {html}");
}

#[tokio::test]
async fn bodies_in_unknown_encodings_or_broken_gzip_are_refused_and_counted() {
    let svc = Service::start(&[]).await;
    for encoding in ["br", "deflate", "zstd"] {
        let r = svc.client.post(svc.url("/write?db=x")).header("Content-Encoding", encoding).body("x value=1").send().await.expect("POST");
        assert_eq!(r.status().as_u16(), 415, "{encoding}");
        let text = r.text().await.expect("body");
        assert!(text.contains(&format!("unsupported Content-Encoding \\\"{encoding}\\\"")), "{text}");
    }
    let r =
        svc.client.post(svc.url("/api/v2/write?bucket=b")).header("Content-Encoding", "br").body("x value=1").send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 415);
    let r = svc.client.post(svc.url("/write?db=x")).header("Content-Encoding", "gzip").body("not gzip").send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(svc.metric("stackd_requests_rejected_total{reason=\"unsupported_encoding\"}").await, 4.0);
    assert_eq!(svc.metric("stackd_requests_rejected_total{reason=\"bad_gzip\"}").await, 1.0);
}

/// Read what the server sends until it closes the connection (or `limit` passes).
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (String::from_utf8_lossy(&got).into(), true),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed_and_connections_capped() {
    let svc = Service::start(&["--http-header-timeout", "300ms", "--http-idle-timeout", "600ms", "--http-max-connections", "8"]).await;
    let addr = svc.http;
    let (slow, idle, keep_alive) = tokio::task::spawn_blocking(move || {
        // Slowloris: half a request head, then nothing.
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n").expect("write");
        let started = Instant::now();
        let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5));
        let slow = (closed, started.elapsed());
        // Connected, never sends a byte.
        let mut idle = TcpStream::connect(addr).expect("connect");
        let started = Instant::now();
        let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5));
        let idle = (closed, started.elapsed());
        // A keep-alive connection that made one request is closed once idle.
        let mut ka = TcpStream::connect(addr).expect("connect");
        ka.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let (answer, closed) = read_until_closed(&mut ka, Duration::from_secs(5));
        (slow, idle, (answer, closed))
    })
    .await
    .expect("join");
    assert!(slow.0 && slow.1 < Duration::from_secs(3), "slow header connection closed: {slow:?}");
    assert!(idle.0 && idle.1 >= Duration::from_millis(500), "an idle connection lives out its idle timeout: {idle:?}");
    assert!(keep_alive.0.starts_with("HTTP/1.1 204") && keep_alive.1, "answered, then closed when idle: {keep_alive:?}");
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"header_timeout\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"idle_timeout\"}").await, 2.0);

    // Fill every slot with idle connections: a new client is still answered (the idlest
    // connection makes room), and the cap is counted.
    let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = svc.client.get(svc.url("/ping")).send().await.expect("answered despite 8 idle connections");
    assert_eq!(r.status().as_u16(), 204);
    drop(idle);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Fill every slot with busy requests (bodies that never finish): a new connection is closed
    // at once, without an answer.
    let busy: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"POST /write?db=x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx value=").expect("write");
            s
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        let mut extra = TcpStream::connect(addr).expect("the backlog still accepts");
        let _ = extra.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
        read_until_closed(&mut extra, Duration::from_secs(5))
    })
    .await
    .expect("join");
    assert!(closed && answer.is_empty(), "closed without an answer: {answer:?}");
    drop(busy);
    common::wait_until(Duration::from_secs(5), || async { svc.client.get(svc.url("/ping")).send().await.is_ok_and(|r| r.status() == 204) })
        .await;
    assert!(svc.metric("stackd_limit_hits_total{limit=\"connections\"}").await >= 2.0);
}

#[test]
fn refused_origins_are_not_logged_per_datagram() {
    let data = common::TempDir::new("refused");
    let bin = common::Binary::start(&data.0, &["--prefix-labels", "SKIP.app.executor", "--max-apps", "1", "--log", "info"]);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket.send_to(b"spark.first.1.cpu.trace.a-b-1:1|g", &bin.statsd).expect("send");
    // Prefixes that do not fit the template, for an app over the limit: 3,000 datagrams, from
    // 3 origins.
    for i in 0..3_000 {
        let d = format!("nofit{}.cpu.trace.a-b-1:1|g", i % 3);
        socket.send_to(d.as_bytes(), &bin.statsd).expect("send");
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let out = std::process::Command::new("curl").args(["-s", &bin.url("/metrics")]).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("stackd_udp_datagrams_processed_total 3001") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(metrics.contains("stackd_limit_hits_total{limit=\"apps\"} 3000"), "every refused sample counted:\n{metrics}");
    let lines = bin.stop();
    let mismatches = lines.iter().filter(|l| l.contains("prefix does not fit")).count();
    assert_eq!(mismatches, 1, "logged once, not per datagram or per origin: {lines:?}");
}

/// 100 concurrent renders of one large app used to take memory from 350 MB to 2.3 GB: now
/// identical requests share one render, and different ones wait for a render slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_renders_are_shared() {
    let svc = Service::start(&["--max-concurrent-renders", "1"]).await;
    // 5,000 distinct stacks of 30 frames: a render that takes a while.
    let body: String = (0..5_000)
        .map(|i| {
            let frames: Vec<String> = (0..30).map(|d| format!("com.example.Layer{d}.call:{}", if d == 0 { i } else { d })).collect();
            let frames: Vec<&str> = frames.iter().map(String::as_str).collect();
            format!("{},prefix=spark.wide.1 value=1i\n", common::agent_stack_name(&frames))
        })
        .collect();
    let r = svc.client.post(svc.url("/write?db=x")).body(body).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 204);
    let gets: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (svc.client.clone(), svc.url("/flamegraph/spark.wide.1.json"));
            tokio::spawn(async move { client.get(url).send().await.expect("GET").text().await.expect("body") })
        })
        .collect();
    let mut bodies = Vec::new();
    for get in gets {
        bodies.push(get.await.expect("join"));
    }
    assert!(bodies.iter().all(|b| b == &bodies[0] && b.starts_with(r#"{"name":"root","value":5000,"#)));
    let renders = svc.metric("stackd_render_duration_seconds_count{format=\"json\"}").await;
    assert!(renders < 20.0, "20 identical requests, {renders} renders");
}
