//! statsd over UDP against the running service.

mod common;

use common::{agent_stack_name, jfr_fixture, parse_folded, Service};

const SJ: &[&str] = &[
    "spark.app-42.7.cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12:3|g",
    "spark.app-42.7.cpu.trace.com-example-Main$$Lambda$1/1831932724-run--1.java-lang-Thread-run-748:1|g",
    "spark.app-42.7.cpu.trace.java-util-ArrayList-<init>-166.scala-collection-immutable-List$$anonfun$map$1-apply-245.java-lang-Thread-run-748:7|g",
    "spark.app-42.7.cpu.trace.com-example-FooTest-my test-10.java-lang-Thread-run-748:1|g",
    "spark.app-42.7.cpu.trace.6:6|g",
    "spark.app-42.7.cpu.trace.-2147483648:0|g\nspark.app-42.7.cpu.trace.-2147483648:-2147483648|g",
    "spark.app-42.7.heap.total.used:123456789|g",
    "spark.app-42.7.nonheap.total.max:0|g\nspark.app-42.7.nonheap.total.max:-1|g",
    "spark.app-42.7.gc.PS_Scavenge.count:17|g",
    "spark.app-42.7.gc.PS_Scavenge.time:250|g",
    "spark.app-42.7.nonheap.codeheap-'non-profiled-nmethods'.used:5242880|g",
    "spark.app-42.7.cpu.jvm:12.5|g",
    "spark.app-42.7.loaded-class-count:10234|g",
];

#[tokio::test(flavor = "multi_thread")]
async fn profiler_datagrams_become_a_flame_graph() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    let n = svc.send_udp(SJ);
    // The same stack again: counts are deltas and are added.
    let n = n + svc.send_udp(["spark.app-42.7.cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12:2|g"]);
    svc.wait_datagrams(n).await;

    let (status, folded) = svc.get_text("/flamegraph/app-42.folded").await;
    assert_eq!(status, 200);
    assert_eq!(
        folded,
        "com.example.Main.main:12;java.lang.Thread.sleep:-2 5\n\
         java.lang.Thread.run:748;com.example.FooTest.my test:10 1\n\
         java.lang.Thread.run:748;com.example.Main$$Lambda$1/1831932724.run:-1 1\n\
         java.lang.Thread.run:748;scala.collection.immutable.List$$anonfun$map$1.apply:245;java.util.ArrayList.<init>:166 7\n"
    );

    let svg = svc.get("/flamegraph/app-42.svg").await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let svg = svg.text().await.expect("svg");
    assert!(svg.starts_with("<?xml"), "{}", &svg[..100]);
    assert!(svg.contains("java.util.ArrayList.&lt;init&gt;:166"), "escaped frame");
    assert!(svg.contains("14 samples, 4 stacks"), "subtitle");
    assert!(svg.contains("function search("), "interactive: search script present");

    let metrics = svc.get_text("/metrics").await.1;
    for want in [
        "jvm_memory_bytes_used{app=\"app-42\",area=\"heap\",executor=\"7\"} 123456789",
        "jvm_memory_bytes_max{app=\"app-42\",area=\"nonheap\",executor=\"7\"} -1",
        "jvm_gc_collection_seconds_count{app=\"app-42\",executor=\"7\",gc=\"PS_Scavenge\"} 17",
        "jvm_gc_collection_seconds_sum{app=\"app-42\",executor=\"7\",gc=\"PS_Scavenge\"} 0.25",
        "jvm_memory_pool_bytes_used{app=\"app-42\",executor=\"7\",pool=\"codeheap-'non-profiled-nmethods'\"} 5242880",
        "jvm_cpu_load_ratio{app=\"app-42\",executor=\"7\",scope=\"process\"} 0.125",
        "jvm_classes_loaded{app=\"app-42\",executor=\"7\"} 10234",
        "stackd_samples_total{app=\"app-42\"} 14",
        "stackd_unique_stacks{app=\"app-42\"} 4",
        "stackd_lines_ignored_total{protocol=\"statsd\",reason=\"depth_marker\"} 3",
        "stackd_lines_accepted_total{protocol=\"statsd\"} 13",
    ] {
        assert!(metrics.lines().any(|l| l == want), "missing {want:?} in\n{metrics}");
    }
    assert!(!metrics.contains("cpu_trace"), "stacks never become series");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_template_the_prefix_is_the_app_and_names_may_need_encoding() {
    let svc = Service::start(&[]).await;
    let n = svc.send_udp(["spark.app-42.7.cpu.trace.a-B-run-1:2|g", "my app/ü.cpu.trace.a-B-run-1:3|g"]);
    svc.wait_datagrams(n).await;
    assert_eq!(svc.get_text("/flamegraph/spark.app-42.7.folded").await, (200, "a.B.run:1 2\n".to_string()));
    assert_eq!(svc.get_text("/flamegraph/my%20app%2F%C3%BC.folded").await, (200, "a.B.run:1 3\n".to_string()));
    let (status, apps) = svc.get_text("/apps").await;
    assert_eq!(status, 200);
    let apps: serde_json::Value = serde_json::from_str(&apps).expect("json");
    let names: Vec<&str> = apps.as_array().expect("array").iter().map(|a| a["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["my app/ü", "spark.app-42.7"]);
    assert_eq!(apps[1]["total_samples"], 2);
    assert_eq!(apps[1]["unique_stacks"], 1);
    assert!(apps[1]["last_seen_ms"].as_i64().expect("ms") > 1_700_000_000_000);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lines_are_counted_and_good_neighbours_kept() {
    let svc = Service::start(&[]).await;
    let n = svc.send_udp([
        &b"p.cpu.trace.a-B-c-1:1|g\r\nbroken\r\np.cpu.trace.a-B-c-1:2|g\r\n"[..],
        b"p.cpu.trace.a-B-c-1:x|g\np.cpu.trace.a-B-c-1:1|g|@0\np.cpu.trace.a-B-c-1:1.5|g\np.cpu.trace.a-B-c-1:-4|g",
        b"p.cpu.trace.a-B-c-1:4|g\n\xff\xfe:1|g",
        b"gorets:1|c",
    ]);
    svc.wait_datagrams(n).await;
    assert_eq!(svc.get_text("/flamegraph/p.folded").await.1, "a.B.c:1 7\n");
    for (series, want) in [
        ("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"missing_value\"}", 1.0),
        ("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"bad_value\"}", 1.0),
        ("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"bad_rate\"}", 1.0),
        ("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"fractional_count\"}", 1.0),
        ("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"negative_count\"}", 1.0),
        ("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"invalid_utf8\"}", 1.0),
        ("stackd_lines_ignored_total{protocol=\"statsd\",reason=\"unknown_metric\"}", 1.0),
        ("stackd_lines_accepted_total{protocol=\"statsd\"}", 3.0),
        ("stackd_udp_datagrams_total", 4.0),
    ] {
        assert_eq!(svc.metric(series).await, want, "{series}");
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_64k_datagram_with_one_deep_stack_is_accepted() {
    let svc = Service::start(&[]).await;
    let frames: Vec<String> = (0..1200).map(|i| format!("org.example.deep.Layer{i}.call:{i}")).collect();
    let refs: Vec<&str> = frames.iter().map(String::as_str).collect();
    let datagram = format!("p.{}:1|g", agent_stack_name(&refs));
    assert!(datagram.len() > 30_000 && datagram.len() <= 65_507, "{}", datagram.len());
    let big = {
        let frames: Vec<String> = (0..2500).map(|i| format!("org.example.deep.Layer{i}.call:{i}")).collect();
        let refs: Vec<&str> = frames.iter().map(String::as_str).collect();
        let mut d = format!("p.{}", agent_stack_name(&refs));
        d.truncate(65_000);
        d.push_str("-1:1|g");
        d
    };
    assert!(big.len() > 65_000 && big.len() <= 65_507);
    let n = svc.send_udp([datagram.as_bytes(), big.as_bytes()]);
    svc.wait_datagrams(n).await;
    let folded = parse_folded(&svc.get_text("/flamegraph/p.folded").await.1);
    assert_eq!(folded.len(), 2);
    assert!(folded.iter().any(|(s, c)| *s == frames.join(";") && *c == 1));
    assert_eq!(svc.metric("stackd_udp_bytes_total").await, (datagram.len() + big.len()) as f64);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn real_jvm_stacks_round_trip_through_the_agent_encoding() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    let fixture = jfr_fixture();
    let stacks = parse_folded(&fixture);
    assert!(stacks.len() >= 20, "fixture has {} stacks", stacks.len());
    // Each stack is sent by two executors, split in two flushes, as the agent does once a second.
    let mut datagrams = Vec::new();
    for (stack, count) in &stacks {
        let frames: Vec<&str> = stack.split(';').collect();
        let name = agent_stack_name(&frames);
        let first = count / 2;
        for (executor, value) in [(1, first), (2, count - first)] {
            datagrams.push(format!("spark.app-jfr.{executor}.{name}:{value}|g"));
        }
    }
    let n = svc.send_udp(&datagrams);
    svc.wait_datagrams(n).await;
    let (status, folded) = svc.get_text("/flamegraph/app-jfr.folded").await;
    assert_eq!(status, 200);
    assert_eq!(folded, fixture, "stackd reproduces the JFR profile byte for byte");
    // Filtering by a label gives that executor's share.
    let one = parse_folded(&svc.get_text("/flamegraph/app-jfr.folded?executor=1").await.1);
    let want: u64 = stacks.iter().map(|(_, c)| c / 2).sum();
    assert_eq!(one.iter().map(|(_, c)| c).sum::<u64>(), want);
    svc.stop().await;
}
