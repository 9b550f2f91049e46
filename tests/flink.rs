//! Real Flink (`apache-flink` from PyPI, installed by .ci/run): a local cluster runs a small
//! streaming job (tests/engines/StackdCpuJob.java, compiled here with javac) with its
//! `InfluxdbReporter` pointed at one stackd, its `StatsDReporter` at another, and Flink's own
//! `PrometheusReporter` on local ports. The families stackd exports are compared with Flink's own
//! exposition: names, types, label sets, and values.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::flink::{free_port, Cluster};
use common::{series_value, wait_until, Service};

/// The cluster's config for this test: three reporters, Flink's own on local ports.
fn reporters(influx_http: u16, statsd_udp: u16, prom_ports: &std::ops::RangeInclusive<u16>) -> String {
    // The lines the README gives, plus Flink's own reporter to compare with.
    format!(
        "metrics.reporters: influx,statsd,prom\n\
         metrics.reporter.influx.factory.class: org.apache.flink.metrics.influxdb.InfluxdbReporterFactory\n\
         metrics.reporter.influx.scheme: http\n\
         metrics.reporter.influx.host: 127.0.0.1\n\
         metrics.reporter.influx.port: {influx_http}\n\
         metrics.reporter.influx.db: flink\n\
         metrics.reporter.influx.interval: 1 SECONDS\n\
         metrics.reporter.statsd.factory.class: org.apache.flink.metrics.statsd.StatsDReporterFactory\n\
         metrics.reporter.statsd.host: 127.0.0.1\n\
         metrics.reporter.statsd.port: {statsd_udp}\n\
         metrics.reporter.statsd.interval: 1 SECONDS\n\
         metrics.reporter.prom.factory.class: org.apache.flink.metrics.prometheus.PrometheusReporterFactory\n\
         metrics.reporter.prom.port: {}-{}\n",
        prom_ports.start(),
        prom_ports.end(),
    )
}

/// Flink's own `PrometheusReporter` expositions (JobManager's and TaskManager's).
async fn flink_prometheus(ports: &std::ops::RangeInclusive<u16>) -> String {
    let client = reqwest::Client::new();
    let mut all = String::new();
    for port in ports.clone() {
        let r = client.get(format!("http://127.0.0.1:{port}/metrics")).timeout(Duration::from_secs(5)).send().await;
        if let Ok(r) = r {
            all.push_str(&r.text().await.unwrap_or_default());
        }
    }
    all
}

/// One exposition's series, by family: the family's type, and each series' labels and value.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    /// (sample name, sorted labels) → value.
    series: BTreeMap<(String, Vec<(String, String)>), f64>,
}

/// Parse the text format (as both Flink's client and stackd write it), keeping the families
/// whose name starts with one of `prefixes`.
fn parse(text: &str, prefixes: &[&str]) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            if prefixes.iter().any(|p| name.starts_with(p)) {
                e.types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, rest) = line.split_once('{').unwrap_or_else(|| line.split_once(' ').expect("sample"));
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let (labels, value) = rest.rsplit_once("} ").unwrap_or(("", rest));
        let mut set: Vec<(String, String)> = labels
            .split("\",")
            .filter(|kv| !kv.is_empty() && *kv != ",")
            .map(|kv| {
                let (k, v) = kv.split_once("=\"").expect("label");
                (k.to_string(), v.trim_end_matches(['"', ',']).to_string())
            })
            .collect();
        set.sort();
        let value = match value.trim() {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
        };
        e.series.insert((name.to_string(), set), value);
    }
    e
}

/// Sink-writer metrics Flink's InfluxdbReporter does not keep sending (see the comparison).
const SINK_WRITER_UNREPORTED: &[&str] = &["_operator_numBytesOut", "_operator_numRecordsOut", "_operator_numRecordsOutErrors"];

/// The scopes compared: job, task, operator and TaskManager families.
const SCOPES: &[&str] = &["flink_taskmanager_", "flink_jobmanager_job_"];

#[tokio::test(flavor = "multi_thread")]
async fn flink_reporters_feed_stackd_what_flinks_own_reporter_exports() {
    let influx = Service::start(&[]).await;
    let statsd = Service::start(&[]).await;
    let prom = free_port();
    let prom_ports = prom..=prom + 4;
    let config = reporters(influx.http.port(), statsd.statsd.port(), &prom_ports);
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&config)).await.expect("join");
    let cluster = std::sync::Arc::new(cluster);
    cluster.wait_ready().await;
    // A poller of flame graphs, which this cluster leaves disabled (Flink's default).
    let poller = Service::start(&["--flink-rest", &format!("http://127.0.0.1:{}", cluster.rest), "--flink-poll-interval", "500ms"]).await;
    let c = std::sync::Arc::clone(&cluster);
    let job_id = tokio::task::spawn_blocking(move || c.submit("stackd cpu job")).await.expect("join");
    // The job's own metric reaches stackd over line protocol.
    let known = "flink_taskmanager_job_task_operator_stackdKnownGauge{";
    wait_until(Duration::from_secs(90), || async { influx.get_text("/metrics").await.1.contains(known) }).await;

    // Differential: stackd's families against Flink's own exposition. Metrics come and go as
    // tasks start, so the comparison is retried until both sides hold the same series (bounded).
    let started = Instant::now();
    let ((before, after), theirs) = loop {
        let before = parse(&influx.get_text("/metrics").await.1, SCOPES);
        let theirs = parse(&flink_prometheus(&prom_ports).await, SCOPES);
        tokio::time::sleep(Duration::from_millis(2_500)).await; // two report intervals
        let after = parse(&influx.get_text("/metrics").await.1, SCOPES);
        // A NaN value is not reported over line protocol (Flink writes an empty line). The sink
        // writer's output counters are sent by Flink's InfluxdbReporter at most once (in a
        // capture of its requests: in 1 report of 1,108, before the writer replaced them) while
        // its PrometheusReporter shows them: Flink's, not stackd's, so they are not compared.
        let sent_by_flink = |(name, labels): &(String, Vec<(String, String)>)| {
            let writer = labels.iter().any(|(k, v)| k == "operator_name" && v.ends_with(":_Writer"));
            !(writer && SINK_WRITER_UNREPORTED.iter().any(|m| name.ends_with(m)))
        };
        let flink_keys: BTreeSet<_> =
            theirs.series.iter().filter(|(k, v)| !v.is_nan() && sent_by_flink(k)).map(|(k, _)| k.clone()).collect();
        let our_keys: BTreeSet<_> = after.series.keys().filter(|k| sent_by_flink(k)).cloned().collect();
        if flink_keys == our_keys || started.elapsed() > Duration::from_secs(60) {
            let missing: Vec<_> = flink_keys.difference(&our_keys).take(10).collect();
            let extra: Vec<_> = our_keys.difference(&flink_keys).take(10).collect();
            assert!(missing.is_empty() && extra.is_empty(), "series differ:\nonly in Flink's: {missing:#?}\nonly in stackd's: {extra:#?}");
            for (family, kind) in &theirs.types {
                let reported = flink_keys.iter().any(|(n, _)| n == family || n.strip_suffix("_count") == Some(family.as_str()));
                if reported {
                    assert_eq!(after.types.get(family), Some(kind), "type of {family}");
                }
            }
            break ((before, after), theirs);
        }
    };
    // Values: a gauge whose value is known is equal; a counter read by Flink between two
    // stackd reads lies between them.
    let known_series =
        theirs.series.iter().find(|((n, _), _)| n == "flink_taskmanager_job_task_operator_stackdKnownGauge").expect("known gauge");
    assert_eq!(*known_series.1, 42.0);
    assert_eq!(after.series[known_series.0], 42.0);
    let burned = theirs.series.iter().find(|((n, _), _)| n == "flink_taskmanager_job_task_operator_stackdBurned").expect("counter");
    let (lo, hi) = (before.series.get(burned.0).copied().unwrap_or(0.0), after.series[burned.0]);
    assert!(lo <= *burned.1 && *burned.1 <= hi, "stackd read {lo} then {hi}; Flink between them read {}", burned.1);
    assert!(after.series.keys().any(|(n, _)| n == "flink_taskmanager_job_task_operator_stackdResidues_count"), "the histogram's _count");

    // The StatsD reporter, for the names stackd claims: exact values for gauges whose value is
    // known (one running job, one task slot), and the TaskManager's heap maximum.
    let host = "host=\"localhost\"";
    wait_until(Duration::from_secs(30), || async {
        let text = statsd.get_text("/metrics").await.1;
        series_value(&text, &format!("flink_jobmanager_numRunningJobs{{{host}}}")) == Some(1.0)
            && series_value(&text, &format!("flink_jobmanager_taskSlotsTotal{{{host}}}")) == Some(1.0)
    })
    .await;
    let text = statsd.get_text("/metrics").await.1;
    let restarts = format!("flink_jobmanager_job_numRestarts{{{host},job_name=\"stackd_cpu_job\"}}");
    assert_eq!(series_value(&text, &restarts), Some(0.0), "{text}");
    let heap_max = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("flink_taskmanager_Status_JVM_Memory_Heap_Max{"))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse::<f64>().expect("number"))
    };
    let from_influx = heap_max(&influx.get_text("/metrics").await.1).expect("heap max over line protocol");
    assert_eq!(heap_max(&text), Some(from_influx), "the same constant over both reporters");
    assert!(
        series_value(&text, "stackd_lines_ignored_total{protocol=\"statsd\",reason=\"ambiguous_name\"}").expect("task metrics ignored")
            > 0.0
    );

    // Flink answers {"endTimestamp":-2} for every flame graph: shown, nothing stored.
    wait_until(Duration::from_secs(30), || async {
        let status: serde_json::Value = serde_json::from_str(&poller.get_text("/flink").await.1).expect("json");
        status["endpoints"][0]["flamegraph_disabled"] == true && status["endpoints"][0]["running_jobs"] == 1
    })
    .await;
    assert_eq!(poller.get_text("/apps").await.1, "[]", "no flame graph, no app");

    // The job's metrics belong to its app; cancelling the job leaves them until --gauge-ttl.
    let (_, apps) = influx.get_text("/apps").await;
    assert!(apps.contains("\"stackd cpu job\"") && apps.contains("\"flink\""), "{apps}");
    cluster.cancel(&job_id).await;
    assert!(influx.get_text("/metrics").await.1.contains(known), "kept after the job ended");
    drop(cluster); // stops the cluster (also when a step above failed: Drop)
    influx.stop().await;
    statsd.stop().await;
    poller.stop().await;
}
