//! Spark's `StatsdSink`: one datagram per value, `<namespace>.<executor>.<source>.<metric>:<v>|<t>`
//! with no tags. The namespace (`spark.metrics.namespace`, else the application id) may hold
//! dots, so a name is anchored on the first `<executor>.<source>` pair: an executor id (`driver`
//! or a number) followed by one of Spark's metric sources. Everything before it is the app.
//!
//! Spark sends absolute values only: gauges (`|g`), counters as their running totals (`|c`, not
//! increments), and histogram, timer and meter statistics (`|ms`, their counts as `|g`). So each
//! value replaces the last one, a counter included; a counter that goes down (an executor that
//! restarted) is a reset to Prometheus. Values are written in the JVM's locale: `1,23` is 1.23.
//!
//! | sent | exported |
//! |---|---|
//! | `<source>.<metric>\|g` | gauge `spark_<source>_<metric>` |
//! | `<source>.<metric>\|c` | counter `spark_<source>_<metric>_total` |
//! | `<source>.<metric>.p50…p999\|ms` | gauge `spark_<source>_<metric>{quantile="0.5"…"0.999"}` |
//! | `<source>.<metric>.max/min/mean/stddev\|ms` | gauge `spark_<source>_<metric>_max` … |
//! | `<source>.<metric>.m1_rate/m5_rate/m15_rate/mean_rate\|ms` | gauge `spark_<source>_<metric>_m1_rate` … |
//!
//! Names are sanitised (`[^A-Za-z0-9_:]` → `_`); every series has the labels `app`, `executor`
//! and `role` (`driver` or `executor`).

use std::borrow::Cow;

use xxhash_rust::xxh3::Xxh3;

use crate::ingest::{Ingest, Tally};
use crate::input::StatsdInput;
use crate::outcome::{Outcome, Reject};
use crate::protocol::statsd::{self, MetricType};
use crate::sample::{sanitize_metric_name, Origin, Series, SeriesKind};
use crate::store::SourceSpec;

/// Spark's metric sources (`Source.sourceName`) in 4.x. A plugin's source is
/// `plugin.<class name>`, whose dots cannot be told from the metric's: it is `plugin`, and the
/// class is part of the metric.
const SOURCES: &[&str] = &[
    "executor",
    "ExecutorMetrics",
    "jvm",
    "JVMCPU",
    "BlockManager",
    "DAGScheduler",
    "appStatus",
    "CodeGenerator",
    "HiveExternalCatalog",
    "LiveListenerBus",
    "ExecutorAllocationManager",
    "NettyBlockTransfer",
    "shuffleService",
    "ShuffleMetrics",
    "ApplicationMaster",
    "spark.streaming",
    "plugin",
];

/// Timer and histogram percentiles, and the `quantile` label each becomes.
const QUANTILES: &[(&str, &str)] =
    &[("p50", "0.5"), ("p75", "0.75"), ("p95", "0.95"), ("p98", "0.98"), ("p99", "0.99"), ("p999", "0.999")];

/// One of Spark's names, split.
#[derive(Debug, PartialEq, Eq)]
pub struct Name<'a> {
    pub app: &'a str,
    pub executor: &'a str,
    pub source: &'a str,
    pub metric: &'a str,
}

/// Split a name at its first `<executor>.<source>.` pair; `None` when it has none.
pub fn split(name: &str) -> Option<Name<'_>> {
    let mut start = 0;
    // Each dot that could end the app.
    while let Some(dot) = name[start..].find('.').map(|i| start + i) {
        let rest = &name[dot + 1..];
        start = dot + 1;
        let Some((executor, after)) = rest.split_once('.') else { return None };
        if dot == 0 || !(executor == "driver" || (!executor.is_empty() && executor.bytes().all(|b| b.is_ascii_digit()))) {
            continue;
        }
        let Some(len) = SOURCES.iter().find(|s| after.starts_with(*s) && after.as_bytes().get(s.len()) == Some(&b'.')).map(|s| s.len())
        else {
            continue;
        };
        let metric = &after[len + 1..];
        if metric.is_empty() {
            continue;
        }
        return Some(Name { app: &name[..dot], executor, source: &after[..len], metric });
    }
    None
}

/// The family, extra label and kind a Spark value is exported as.
fn family(source: &str, metric: &str, kind: MetricType) -> Option<(String, Option<&'static str>, SeriesKind)> {
    let mut name = String::with_capacity(7 + source.len() + metric.len() + 6);
    name.push_str("spark_");
    sanitize_metric_name(source, &mut name);
    name.push('_');
    match kind {
        MetricType::Gauge => {
            sanitize_metric_name(metric, &mut name);
            Some((name, None, SeriesKind::Gauge))
        }
        MetricType::Counter => {
            sanitize_metric_name(metric, &mut name);
            name.push_str("_total");
            Some((name, None, SeriesKind::Counter))
        }
        MetricType::Timer => {
            let (base, stat) = metric.rsplit_once('.').unwrap_or(("", metric));
            if let Some((_, q)) = QUANTILES.iter().find(|(p, _)| *p == stat).filter(|_| !base.is_empty()) {
                sanitize_metric_name(base, &mut name);
                return Some((name, Some(q), SeriesKind::Gauge));
            }
            sanitize_metric_name(metric, &mut name);
            Some((name, None, SeriesKind::Gauge))
        }
        MetricType::Histogram | MetricType::Distribution | MetricType::Set => None,
    }
}

#[derive(Debug)]
pub struct Input;

impl StatsdInput for Input {
    fn line(&self, ingest: &Ingest, tally: &Tally, line: &statsd::Line<'_>, now_ms: i64) -> bool {
        let Some(name) = split(&line.name) else { return false };
        let role = if name.executor == "driver" { "driver" } else { "executor" };
        let mut h = Xxh3::new();
        for part in [name.app, name.executor] {
            h.update(b"spark\0");
            h.update(part.as_bytes());
        }
        let source = ingest.source(h.digest(), || SourceSpec {
            app: name.app.to_string(),
            labels: vec![("executor".into(), name.executor.into()), ("role".into(), role.into())],
        });
        let source = match source {
            Ok(s) => s,
            Err(r) => {
                tally.count(Outcome::Rejected(r));
                return true;
            }
        };
        for sample in line.samples() {
            let result = match (family(name.source, name.metric, sample.kind), sample.number) {
                (Some((family, quantile, kind)), Some(value)) => {
                    let label = |k, v| (Cow::Borrowed(k), Cow::Borrowed(v));
                    let mut labels = vec![label("app", name.app), label("executor", name.executor)];
                    labels.extend(quantile.map(|q| label("quantile", q)));
                    labels.push(label("role", role));
                    let series = Series { origin: Origin::Spark, family: &family, kind, suffix: "", labels, value };
                    ingest.set_series(&source, &series, now_ms)
                }
                _ => Err(Reject::WrongType),
            };
            tally.count(result.into());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::profiler::testing::inputs;

    #[test]
    fn names_anchor_on_the_executor_and_a_known_source() {
        let n = split("app-20261121101500-0001.1.executor.threadpool.activeTasks").expect("split");
        assert_eq!(n, Name { app: "app-20261121101500-0001", executor: "1", source: "executor", metric: "threadpool.activeTasks" });
        // A namespace with dots, a digit segment in it, and a plugin source.
        let n = split("team.etl.2.nightly.driver.plugin.com.example.Plugin.rows").expect("split");
        assert_eq!(n, Name { app: "team.etl.2.nightly", executor: "driver", source: "plugin", metric: "com.example.Plugin.rows" });
        let n = split("local-1795303019125.driver.jvm.G1-Young-Generation.count").expect("split");
        assert_eq!((n.app, n.source, n.metric), ("local-1795303019125", "jvm", "G1-Young-Generation.count"));
        for not_spark in ["driver.jvm.heap.used", "app.7.cpu.trace.x", "app.driver.jvm.", "app.driver.unknown.x", "x"] {
            assert_eq!(split(not_spark), None, "{not_spark}");
        }
    }

    #[test]
    fn every_kind_of_value_becomes_its_series() {
        let i = inputs(None);
        let lines: &[&[u8]] = &[
            b"local-1.driver.appStatus.jobs.succeededJobs:7|c",
            b"local-1.driver.appStatus.jobs.succeededJobs:3|c", // a reset: replaces, never adds
            b"local-1.driver.jvm.heap.usage:0,17|g",            // a German JVM
            b"local-1.driver.DAGScheduler.messageProcessingTime.p99:3.27|ms",
            b"local-1.driver.DAGScheduler.messageProcessingTime.max:10.16|ms",
            b"local-1.driver.DAGScheduler.messageProcessingTime.count:4|g",
            b"local-1.3.executor.threadpool.activeTasks:-1.00|g",
            b"local-1.3.executor.cpuTime:1|s",
        ];
        for l in lines {
            i.statsd_datagram(l, 1_000);
        }
        let mut got: Vec<String> = i
            .ingest
            .store
            .app("local-1")
            .expect("app")
            .series()
            .into_iter()
            .map(|s| {
                let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} {} {{{}}} {}", s.kind.type_name(), s.family, labels.join(","), s.value)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "counter spark_appStatus_jobs_succeededJobs_total {app=local-1,executor=driver,role=driver} 3",
                "gauge spark_DAGScheduler_messageProcessingTime {app=local-1,executor=driver,quantile=0.99,role=driver} 3.27",
                "gauge spark_DAGScheduler_messageProcessingTime_count {app=local-1,executor=driver,role=driver} 4",
                "gauge spark_DAGScheduler_messageProcessingTime_max {app=local-1,executor=driver,role=driver} 10.16",
                "gauge spark_executor_threadpool_activeTasks {app=local-1,executor=3,role=executor} -1",
                "gauge spark_jvm_heap_usage {app=local-1,executor=driver,role=driver} 0.17",
            ]
        );
        let m = &i.ingest.metrics;
        assert_eq!(m.lines_accepted.with_label_values(&["statsd"]).get(), 7);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "wrong_type"]).get(), 1, "a set");
        assert_eq!(i.ingest.store.app("local-1").expect("app").label_values()["executor"].keys().collect::<Vec<_>>(), ["3", "driver"]);
    }
}
