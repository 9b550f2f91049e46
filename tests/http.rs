//! Reading what stackd serves: flame graphs, /apps, /metrics (checked by the real promtool and
//! scraped by a real Prometheus), errors.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{series_value, tool, Service};

/// Samples of every kind, so that every metric family is present.
async fn feed(svc: &Service) {
    let n = svc.send_udp([
        "spark.app-1.1.cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12:3|g",
        "spark.app-1.1.heap.total.used:123456789|g",
        "spark.app-1.1.heap.ps-eden-space.max:0|g\nspark.app-1.1.heap.ps-eden-space.max:-1|g",
        "spark.app-1.1.gc.PS_Scavenge.count:17|g",
        "spark.app-1.1.gc.PS_Scavenge.time:250|g",
        "spark.app-1.1.gc.PS_Scavenge.runtime:12|g",
        "spark.app-1.1.total-loaded-class-count:12000|g",
        "spark.app-1.1.unloaded-class-count:3|g",
        "spark.app-1.1.pending-finalization-count:0|g",
        "spark.app-1.1.cpu.system:100|g",
        "broken",
    ]);
    svc.wait_datagrams(n).await;
    let r = svc
        .client
        .post(svc.url("/write?db=x"))
        .body("nonheap.metaspace.used,hostname=h,jvmName=1@h,pid=1,prefix=spark.app-1.2 value=1.0\ncpu value=x")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    assert_eq!(svc.get_text("/flamegraph/app-1.svg").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_finds_nothing_to_complain_about() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    feed(&svc).await;
    let r = svc.get("/metrics").await;
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = r.text().await.expect("body");
    common::promtool_check(&text);
    for family in [
        "jvm_memory_pool_bytes_max",
        "jvm_gc_interval_collection_seconds",
        "jvm_classes_loaded_total",
        "jvm_classes_unloaded_total",
        "jvm_memory_objects_pending_finalization",
        "stackd_render_duration_seconds_bucket",
        "stackd_http_requests_total{route=\"/flamegraph/{file}\",status=\"200\"}",
        "stackd_udp_receive_buffer_bytes",
        "stackd_udp_kernel_drops_total",
    ] {
        assert!(text.contains(family), "missing {family}");
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_stackd() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    feed(&svc).await;
    let prom = common::prometheus::Prometheus::start(&svc.http.to_string(), &[]);
    let found = prom.wait_for("jvm_memory_bytes_used{app=\"app-1\",area=\"heap\"}", Duration::from_secs(60)).await;
    drop(prom);
    let sample = found.expect("scraped");
    assert_eq!(sample["metric"]["executor"], "1");
    assert_eq!(sample["metric"]["job"], "stackd");
    assert_eq!(sample["value"][1], "123456789");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_plain_and_helpful() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    feed(&svc).await;
    let r = svc.get("/flamegraph/nope.svg").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.text().await.expect("body"), "no data for app \"nope\"; see /apps\n");
    assert_eq!(
        svc.get_text("/flamegraph/app-1.png").await,
        (404, "\"app-1.png\": ask for <app>.svg, <app>.folded, <app>.json or <app>.tree\n".into())
    );
    assert_eq!(
        svc.get_text("/flamegraph/app-1.folded?executor=9").await,
        (404, "no data for app \"app-1\" with executor=9; labels seen: executor=1|2, host=h, jvm=1@h, pid=1\n".into())
    );
    // app-1 executor 2 sent only a gauge.
    assert_eq!(
        svc.get_text("/flamegraph/app-1.folded?executor=2").await.1,
        "app \"app-1\" has no stack samples from the beginning to now\n"
    );
    assert_eq!(svc.get_text("/nope").await.0, 404);
    assert_eq!(svc.metric("stackd_http_requests_total{route=\"unmatched\",status=\"404\"}").await, 1.0);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flame_graph_formats() {
    let svc = Service::start(&[]).await;
    let n = svc.send_udp([
        "p.cpu.trace.com-example-Task-work-20.com-example-Task-run-10.java-lang-Thread-run-748:5|g",
        "p.cpu.trace.com-example-Task-run-10.java-lang-Thread-run-748:2|g",
        "p.cpu.trace.x-Evil-<script>alert(1)</script>-1:1|g",
    ]);
    svc.wait_datagrams(n).await;
    let r = svc.get("/flamegraph/p.json").await;
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"name":"root","value":8,"children":[{"name":"java.lang.Thread.run:748","value":7,"children":[{"name":"com.example.Task.run:10","value":7,"children":[{"name":"com.example.Task.work:20","value":5,"children":[]}]}]},{"name":"x.Evil.<script>alert(1)</script>:1","value":1,"children":[]}]}"#
    );
    let one = svc.get_text("/flamegraph/p.svg?title=My%20job").await.1;
    let two = svc.get_text("/flamegraph/p.svg?title=My%20job").await.1;
    assert_eq!(one, two, "deterministic");
    assert!(one.contains(">My job<"), "title");
    assert!(!one.contains("<script>alert"), "no markup injection");
    let index = svc.get_text("/").await.1;
    assert!(index.contains("<a href=\"/flamegraph/p.svg\">svg</a>"), "{index}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_counted_not_fatal() {
    let svc = Service::start(&["--max-apps", "1", "--max-stacks-per-app", "2"]).await;
    let n = svc.send_udp([
        "a.cpu.trace.x-A-a-1:1|g",
        "a.cpu.trace.x-A-b-1:1|g",
        "a.cpu.trace.x-A-c-1:4|g",
        "a.cpu.trace.x-A-d-1:5|g",
        "b.cpu.trace.x-A-a-1:1|g",
    ]);
    svc.wait_datagrams(n).await;
    assert_eq!(svc.get_text("/flamegraph/a.folded").await.1, "[stackd: unique stack limit reached] 9\nx.A.a:1 1\nx.A.b:1 1\n");
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"stacks\"}").await, 2.0);
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"apps\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"statsd\",reason=\"app_limit\"}").await, 1.0);
    assert_eq!(svc.get_text("/flamegraph/b.folded").await.0, 404);
    svc.stop().await;
}

#[test]
fn shipped_rules_are_valid_and_each_alert_passes_its_unit_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");
    let out = Command::new(tool("promtool")).args(["check", "rules", "stackd-rules.yml"]).current_dir(dir).output().expect("promtool");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 11 rules found"));
    let out = Command::new(tool("promtool")).args(["test", "rules", "stackd-rules.test.yml"]).current_dir(dir).output().expect("promtool");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Every alert has a test of its own.
    let rules = std::fs::read_to_string(format!("{dir}/stackd-rules.yml")).expect("rules");
    let tests = std::fs::read_to_string(format!("{dir}/stackd-rules.test.yml")).expect("tests");
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts.len(), 8);
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n        exp_alerts:\n          - exp_labels")),
            "{alert} has a test that fires it"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gauges_of_a_silent_executor_expire() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor", "--gauge-ttl", "1s"]).await;
    let n = svc.send_udp(["spark.app-g.4.heap.total.used:42|g"]);
    svc.wait_datagrams(n).await;
    let series = "jvm_memory_bytes_used{app=\"app-g\",area=\"heap\",executor=\"4\"}";
    assert_eq!(svc.metric(series).await, 42.0);
    common::wait_until(Duration::from_secs(10), || async { !svc.get_text("/metrics").await.1.contains(series) }).await;
    // The app and its samples stay; only the stale gauge left /metrics.
    assert_eq!(svc.metric("stackd_apps").await, 1.0);
    svc.stop().await;
}

/// A repeated request for an unchanged profile is answered from memory, or with 304 to
/// `If-None-Match`; the first new sample changes the answer at once.
#[tokio::test]
async fn unchanged_profiles_are_cached_and_revalidated_with_etags() {
    for cache in ["67108864", "0"] {
        let svc = Service::start(&["--render-cache-size", cache]).await;
        let write = |count: u32| {
            let body = format!("Stacktrace count={count}i,appId=\"cached\",stacktrace=\"b,a\"\n");
            let r = svc.client.post(svc.url("/write?db=x")).body(body).send();
            async move { assert_eq!(r.await.expect("POST").status().as_u16(), 204) }
        };
        write(3).await;
        let get = |path: &'static str, etag: Option<String>| {
            let mut r = svc.client.get(svc.url(path));
            if let Some(e) = etag {
                r = r.header("If-None-Match", e);
            }
            async move {
                let r = r.send().await.expect("GET");
                let etag = r.headers().get("etag").map(|v| v.to_str().expect("ascii").to_string());
                let cache_control = r.headers().get("cache-control").map(|v| v.to_str().expect("ascii").to_string());
                (r.status().as_u16(), etag.expect("ETag"), cache_control, r.text().await.expect("body"))
            }
        };
        let (status, etag, cache_control, body) = get("/flamegraph/cached.folded", None).await;
        assert_eq!((status, cache_control.as_deref(), body.as_str()), (200, Some("no-cache"), "a;b 3\n"));
        let (status, again, _, body) = get("/flamegraph/cached.folded", None).await;
        assert_eq!((status, &again, body.as_str()), (200, &etag, "a;b 3\n"), "the same bytes, the same ETag");
        let (status, same, _, body) = get("/flamegraph/cached.folded", Some(etag.clone())).await;
        assert_eq!((status, &same, body.as_str()), (304, &etag, ""), "revalidated without a body");
        let (status, _, _, _) = get("/flamegraph/cached.folded", Some(format!("\"other\", W/{etag}"))).await;
        assert_eq!(status, 304, "a list, and a weak tag");
        let (_, svg_etag, _, _) = get("/flamegraph/cached.svg", None).await;
        assert_ne!(svg_etag, etag, "another format, another ETag");

        // One new sample: a new answer at once, whatever was cached.
        write(2).await;
        let (status, fresh, _, body) = get("/flamegraph/cached.folded", Some(etag.clone())).await;
        assert_eq!((status, body.as_str()), (200, "a;b 5\n"));
        assert_ne!(fresh, etag);

        let metrics = svc.get_text("/metrics").await.1;
        let count = |outcome: &str| series_value(&metrics, &format!("stackd_render_cache_total{{outcome=\"{outcome}\"}}")).unwrap_or(0.0);
        let (hits, not_modified, misses) = (count("hit"), count("not_modified"), count("miss"));
        // Cached: the second request was a hit. Not cached: every request without a matching
        // ETag renders.
        let want = if cache == "0" { (0.0, 2.0, 4.0) } else { (1.0, 2.0, 3.0) };
        assert_eq!((hits, not_modified, misses), want, "--render-cache-size {cache}");
    }
}

/// The README's own words for a series' fixed label values: every `value` in backticks on its
/// row of the metrics table, leaving out the label names and the series itself.
fn documented_values(readme: &str, series: &str) -> Vec<String> {
    let row = readme.lines().find(|l| l.starts_with(&format!("| `{series}"))).unwrap_or_else(|| panic!("{series} in the README"));
    let meaning = row.splitn(3, '|').nth(2).expect("a meaning");
    meaning.split('`').skip(1).step_by(2).filter(|v| v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_stackd_exports_build_info_process_figures_and_every_counter_at_zero() {
    let svc = Service::start(&[]).await;
    let text = svc.get("/metrics").await.text().await.expect("body");
    common::promtool_check(&text);
    let revision =
        String::from_utf8(std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().expect("git").stdout)
            .expect("utf-8");
    assert_eq!(
        common::series_value(
            &text,
            &format!("stackd_build_info{{version=\"{}\",revision=\"{}\"}}", env!("CARGO_PKG_VERSION"), revision.trim())
        ),
        Some(1.0),
        "{text}"
    );
    let rss = common::series_value(&text, "process_resident_memory_bytes").expect("resident memory");
    assert!(rss > 1e6 && rss < 4e9, "{rss}");
    let start = common::series_value(&text, "process_start_time_seconds").expect("start time");
    assert!((common::now_ms() as f64 / 1000.0 - start).abs() < 600.0, "started within the test: {start}");
    for family in ["process_cpu_seconds_total", "process_virtual_memory_bytes", "process_open_fds", "process_max_fds"] {
        assert!(common::series_value(&text, family).is_some_and(|v| v > 0.0 || family == "process_cpu_seconds_total"), "{family}");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let mut checked = 0;
    for series in ["stackd_limit_hits_total", "stackd_requests_rejected_total", "stackd_lines_ignored_total", "stackd_lines_rejected_total"]
    {
        let values = documented_values(&readme, series);
        assert!(values.len() >= 3, "{series}: {values:?}");
        for value in values.iter().filter(|v| !["statsd", "influx", "protocol", "reason", "limit"].contains(&v.as_str())) {
            let names: Vec<String> = match series {
                "stackd_limit_hits_total" => vec![format!("{series}{{limit=\"{value}\"}}")],
                "stackd_requests_rejected_total" => vec![format!("{series}{{reason=\"{value}\"}}")],
                // Per protocol: a parser's reason under its own protocol at least.
                _ => ["statsd", "influx"].iter().map(|p| format!("{series}{{protocol=\"{p}\",reason=\"{value}\"}}")).collect(),
            };
            let found: Vec<Option<f64>> = names.iter().map(|n| common::series_value(&text, n)).collect();
            assert!(
                found.contains(&Some(0.0)) && found.iter().all(|f| f.is_none() || *f == Some(0.0)),
                "{names:?} present at 0: {found:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked}");
    // Every statsd and line-protocol reason is present for its protocol.
    for (protocol, reasons) in
        [("statsd", ["bad_rate", "too_many_components", "app_limit"]), ("influx", ["unbalanced_quotes", "time_key", "missing_stacktrace"])]
    {
        for reason in reasons {
            let name = format!("stackd_lines_rejected_total{{protocol=\"{protocol}\",reason=\"{reason}\"}}");
            assert_eq!(common::series_value(&text, &name), Some(0.0), "{name}");
        }
    }
    svc.stop().await;
}
