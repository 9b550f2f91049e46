//! Real Spark (`pyspark` from PyPI, installed by .ci/run) with its `StatsdSink` pointed at
//! stackd: the driver's and executor's families appear under the real application id, and the
//! values stackd exports agree with what Spark itself reports for the job.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{series_value, wait_until, Service};

/// Run the job in its own process group, bounded; whatever it started is killed afterwards.
fn run_spark_job(statsd_port: u16, jfr: &std::path::Path) -> serde_json::Value {
    use std::os::unix::process::CommandExt as _;
    let ui_port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/engines/spark_job.py");
    let child = Command::new("timeout")
        .args(["300", "python3", script, &statsd_port.to_string(), &ui_port.to_string()])
        .arg(jfr)
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let pgid = child.id();
    let out = child.wait_with_output().expect("spark job");
    // The JVM that pyspark started is in the same group: nothing of it may outlive the test.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
    assert!(
        out.status.success(),
        "the Spark job failed (needs `pip install pyspark==4.3.0` and Java 17, which .ci/run installs):\n{}",
        String::from_utf8_lossy(&out.stderr).lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let json = stdout.lines().rev().find(|l| l.starts_with('{')).expect("the job's JSON line");
    serde_json::from_str(json).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn spark_statsd_sink_metrics_agree_with_spark() {
    let svc = Service::start(&[]).await;
    let port = svc.statsd.port();
    let dir = common::TempDir::new("spark-jfr");
    let jfr = dir.0.join("driver.jfr");
    let path = jfr.clone();
    let spark = tokio::task::spawn_blocking(move || run_spark_job(port, &path)).await.expect("join");
    let app = spark["app"].as_str().expect("application id").to_string();
    let app_id = app.clone();
    assert!(app.starts_with("local-"), "{spark}");
    let driver = format!("app=\"{app}\",executor=\"driver\",role=\"driver\"");
    let completed = spark["completed_tasks"].as_f64().expect("Spark's completedTasks");
    let succeeded = spark["succeeded_jobs"].as_f64().expect("Spark's succeeded jobs");
    assert_eq!((completed, succeeded), (12.0, 3.0), "three jobs of four tasks each");
    // The sink's last report (on stop) may still be in flight.
    let tasks = format!("spark_executor_threadpool_complete_tasks{{{driver}}}");
    let jobs = format!("spark_app_status_jobs_succeeded_jobs_total{{{driver}}}");
    wait_until(Duration::from_secs(10), || async {
        let (_, text) = svc.get_text("/metrics").await;
        series_value(&text, &tasks) == Some(completed) && series_value(&text, &jobs) == Some(succeeded)
    })
    .await;
    let (_, text) = svc.get_text("/metrics").await;
    // Times in seconds and memory in bytes, exactly what Spark's own REST API says of the stages.
    let run_ms = spark["run_time_ms"].as_f64().expect("Spark's executorRunTime");
    let cpu_ns = spark["cpu_time_ns"].as_f64().expect("Spark's executorCpuTime");
    assert!(run_ms > 0.0 && cpu_ns > 0.0, "{spark}");
    assert_eq!(series_value(&text, &format!("spark_executor_run_time_seconds_total{{{driver}}}")), Some(run_ms / 1000.0), "run time");
    assert_eq!(series_value(&text, &format!("spark_executor_cpu_time_seconds_total{{{driver}}}")), Some(cpu_ns / 1e9), "CPU time");
    // A HELP line of its own for each family.
    let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP spark_")).collect();
    let distinct: std::collections::HashSet<&str> = helps.iter().map(|l| l.splitn(4, ' ').nth(3).unwrap_or_default()).collect();
    assert_eq!(distinct.len(), helps.len(), "every Spark family says what it is");
    assert!(text.contains("# HELP spark_executor_run_time_seconds_total Spark's executor source: run time (cumulative), in seconds."));
    for (family, kind) in [
        ("spark_executor_threadpool_complete_tasks", "gauge"),
        ("spark_app_status_jobs_succeeded_jobs_total", "counter"),
        ("spark_executor_cpu_time_seconds_total", "counter"),
        ("spark_executor_run_time_seconds_total", "counter"),
        ("spark_jvm_heap_used_bytes", "gauge"),
        ("spark_jvm_g1_young_generation_total", "counter"),
        ("spark_executor_metrics_jvm_heap_memory_bytes", "gauge"),
        ("spark_block_manager_memory_mem_used_bytes", "gauge"),
        ("spark_dag_scheduler_message_processing_time_seconds", "summary"),
        ("spark_dag_scheduler_message_processing_time_total", "counter"),
        ("spark_dag_scheduler_message_processing_time_seconds_max", "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {family} {kind}\n{family}{{")), "no {kind} {family} in\n{text}");
    }
    assert!(series_value(&text, &format!("spark_jvm_heap_used_bytes{{{driver}}}")).expect("heap used") > 1e6, "bytes, not MiB");
    let p99 = format!(
        "spark_dag_scheduler_message_processing_time_seconds{{app=\"{app}\",executor=\"driver\",quantile=\"0.99\",role=\"driver\"}}"
    );
    assert!(series_value(&text, &p99).is_some(), "no {p99}");
    // An app that sent only metrics is listed.
    let (status, apps) = svc.get_text("/apps").await;
    assert_eq!(status, 200);
    assert!(apps.contains(&format!("\"{app}\"")), "{apps}");
    // Nothing Spark sent was refused.
    let rejected: f64 = text
        .lines()
        .filter(|l| l.starts_with("stackd_lines_rejected_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(rejected, 0.0, "{text}");
    assert!(series_value(&text, "stackd_lines_accepted_total{protocol=\"statsd\"}").expect("accepted") > 100.0);
    common::promtool_check(&text);

    // The driver's recording (spark.driver.extraJavaOptions=-XX:StartFlightRecording=…), imported:
    // what the JDK's own jfr tool counts in the same file.
    let recording = std::fs::read(&jfr).expect("the driver's recording");
    let r = svc.client.post(svc.url(&format!("/import/jfr?app={app}&executor=driver"))).body(recording).send().await.expect("import");
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.expect("json");
    let samples = common::jfr_summary_count(&jfr, "jdk.ExecutionSample");
    assert!(samples > 0, "the recorder sampled the job");
    assert_eq!(answer["types"]["cpu"]["total"].as_u64(), Some(samples), "{answer}");
    let print =
        Command::new("jfr").args(["print", "--json", "--events", "jdk.ObjectAllocationSample"]).arg(&jfr).output().expect("jfr print");
    let printed: serde_json::Value = serde_json::from_slice(&print.stdout).expect("json");
    let weight: u64 =
        printed["recording"]["events"].as_array().expect("events").iter().map(|e| e["values"]["weight"].as_u64().expect("weight")).sum();
    assert_eq!(answer["types"]["alloc_bytes"]["total"].as_u64(), Some(weight), "{answer}");
    // Every stack of every type, as the JDK's reader reads the file.
    let expected = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/jfr_expected.py"))
        .arg("--folded")
        .arg(&jfr)
        .output()
        .expect("jfr_expected.py");
    let expected: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        serde_json::from_slice(&expected.stdout).expect("json");
    for (t, stacks) in &expected {
        let (status, folded) = svc.get_text(&format!("/flamegraph/{app}.folded?type={t}&executor=driver")).await;
        assert_eq!(status, 200, "{t}: {folded}");
        let got: std::collections::BTreeMap<String, u64> = common::parse_folded(&folded).into_iter().collect();
        assert_eq!(&got, stacks, "{t}");
    }
    assert!(expected["cpu"].keys().any(|s| s.contains("org.apache.spark.")), "Spark's own frames are among the stacks");

    // The shipped dashboards, queried by a real Prometheus scraping this stackd (with the
    // shipped recording rules): every panel that has something to show here shows it. The
    // agents' JVM gauges come from statsd-jvm-profiler's datagrams.
    let n = svc.send_udp([
        "agent-app.heap.total.used:123456789|g\nagent-app.heap.total.max:1073741824|g\nagent-app.nonheap.total.used:50331648|g",
        "agent-app.gc.G1_Young_Generation.count:17|g\nagent-app.gc.G1_Young_Generation.time:250|g",
        "agent-app.cpu.jvm:12.5|g\nagent-app.loaded-class-count:9000|g",
    ]);
    svc.wait_datagrams(n).await;
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/stackd-rules.yml");
    let prom = common::prometheus::Prometheus::start(&svc.http.to_string(), &[rules]);
    assert!(prom.wait_for("stackd:lines_accepted:rate5m", Duration::from_secs(60)).await.is_some(), "Prometheus scrapes and records");
    // Enough scrapes for every rate() over the panels' 30 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Nothing was rejected, and there is no Flink here.
    let empty_here = ["Lines rejected per second", "Flink polls failing"];
    for (dashboard, title, expr) in common::dashboards::panel_queries() {
        let result = prom.query(&expr).await.unwrap_or_else(|| panic!("{dashboard}: {title}: no answer to {expr}"));
        if empty_here.contains(&title.as_str()) {
            assert!(result.is_empty(), "{dashboard}: {title}: {result:?}");
        } else {
            assert!(!result.is_empty(), "{dashboard}: {title}: no data for {expr}");
        }
        if dashboard != "stackd.json" {
            let app = result[0]["metric"]["app"].as_str().unwrap_or_default();
            assert!(app == app_id || app == "agent-app", "{dashboard}: {title}: {app}");
        }
    }
    drop(prom);
    svc.stop().await;
}
