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
//! Names become `spark_` + source + metric in `snake_case` (`DAGScheduler.messageProcessingTime`
//! → `spark_dag_scheduler_message_processing_time`), so that `promtool check metrics` has
//! nothing to say:
//!
//! | sent | exported |
//! |---|---|
//! | `<source>.<metric>\|g` | gauge `spark_<source>_<metric>` |
//! | `<source>.<metric>\|c` | counter `spark_<source>_<metric>_total` |
//! | `<source>.<…>count\|g` (histogram, timer and meter counts, GC counts) | counter `spark_<source>_<…>_total` |
//! | `<source>.<metric>_MB\|g` | gauge `spark_<source>_<metric>_bytes`, in bytes |
//! | `<source>.<metric>.p50…p999\|ms` | summary `spark_<source>_<metric>{quantile="0.5"…"0.999"}` |
//! | `<source>.<metric>.max/min/mean/stddev\|ms` | gauge `spark_<source>_<metric>_max` … |
//! | `<source>.<metric>.m1_rate/m5_rate/m15_rate/mean_rate\|ms` | gauge `spark_<source>_<metric>_m1_rate` … |
//!
//! Every series has the labels `app`, `executor` and `role` (`driver` or `executor`). Timer
//! statistics are in milliseconds, as Spark sends them.
//!
//! Names spelled differently can become one exported name (`heap.usage`, `heapUsage` and
//! `heap_usage` are all `spark_jvm_heap_usage`), and a counter and a gauge can share one: the
//! first spelling and type seen keep the name, values of the others are refused
//! (`reason="name_collision"`) rather than merged into it.

use std::borrow::Cow;

use xxhash_rust::xxh3::Xxh3;

use crate::ingest::Writer;
use crate::input::StatsdInput;
use crate::outcome::{Outcome, Reject};
use crate::protocol::statsd::{self, MetricType};
use crate::sample::{Origin, Series, SeriesKind, QUANTILES};
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
    // A profiler stack sample (`<prefix>.cpu.trace.<frames>`, a kilobyte with a dot between
    // frames) is never one of Spark's metrics: one search rules it out, instead of a look at
    // each of its dots.
    if crate::input::profiler::names::trace_start(name).is_some() {
        return None;
    }
    // Each dot that could end the app, and the next one, which ends the executor (one pass:
    // profiler stack names that reach here have a dot every few bytes).
    let mut dots = memchr::memchr_iter(b'.', name.as_bytes()).peekable();
    while let Some(dot) = dots.next() {
        let next = *dots.peek()?;
        let (executor, after) = (&name[dot + 1..next], &name[next + 1..]);
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

/// `camelCase`, dots and dashes to `snake_case` (`DAGScheduler.messageProcessingTime` →
/// `dag_scheduler_message_processing_time`), appended to `out`.
fn snake_case(name: &str, out: &mut String) {
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase()) && next.is_some_and(|n| n.is_ascii_lowercase()));
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
}

/// How a Spark value is exported: family, extra label, kind, the factor its value is multiplied
/// by (mebibytes become bytes), and the part of the name the family was made from.
#[derive(Debug, PartialEq)]
struct Export<'a> {
    family: String,
    quantile: Option<&'static str>,
    kind: SeriesKind,
    scale: f64,
    spelling: &'a str,
}

/// Exported names kept with who has them (checked while there are fewer; a name is a few
/// dozen bytes).
const MAX_NAMES: usize = 100_000;

/// The family a Spark value is exported as; `None` for types Spark never sends.
fn export<'a>(source: &str, metric: &'a str, kind: MetricType) -> Option<Export<'a>> {
    let mut family = String::with_capacity(7 + source.len() + metric.len() + 6);
    family.push_str("spark_");
    snake_case(source, &mut family);
    family.push('_');
    let (mut quantile, mut series_kind, mut scale, mut spelling) = (None, SeriesKind::Gauge, 1.0, metric);
    match kind {
        MetricType::Gauge | MetricType::Counter => {
            let (metric, mebibytes) = match metric.strip_suffix("_MB") {
                Some(m) => (m, true),
                None => (metric, false),
            };
            snake_case(metric, &mut family);
            if mebibytes {
                family.push_str("_bytes");
                scale = 1024.0 * 1024.0;
            }
            // A count (`.count` of a histogram, timer or meter, a GC count) is cumulative.
            let count = kind == MetricType::Gauge && family.ends_with("_count");
            if count {
                family.truncate(family.len() - "count".len());
                family.push_str("total");
                series_kind = SeriesKind::Counter;
            } else if kind == MetricType::Counter {
                family.push_str("_total");
                series_kind = SeriesKind::Counter;
            }
        }
        MetricType::Timer => {
            let (base, stat) = metric.rsplit_once('.').unwrap_or(("", metric));
            match QUANTILES.iter().find(|(p, _)| *p == stat).filter(|_| !base.is_empty()) {
                Some((_, q)) => {
                    spelling = base;
                    snake_case(base, &mut family);
                    quantile = Some(*q);
                    series_kind = SeriesKind::Summary;
                }
                None => snake_case(metric, &mut family),
            }
        }
        MetricType::Histogram | MetricType::Distribution | MetricType::Set => return None,
    }
    Some(Export { family, quantile, kind: series_kind, scale, spelling })
}

/// Spark's statsd lines, with the spelling and type that owns each exported name.
#[derive(Debug, Default)]
pub struct Input {
    owners: crate::store::Map<String, (u64, SeriesKind)>,
}

impl Input {
    /// Whether `export` may use its family: the first spelling and type seen own it.
    fn owns(&self, source: &str, export: &Export<'_>) -> bool {
        let mut h = Xxh3::new();
        h.update(source.as_bytes());
        h.update(b".");
        h.update(export.spelling.as_bytes());
        let owner = (h.digest(), export.kind);
        if let Some(o) = self.owners.get(&export.family) {
            return *o == owner;
        }
        if self.owners.len() >= MAX_NAMES {
            return true;
        }
        *self.owners.entry(export.family.clone()).or_insert(owner) == owner
    }
}

impl StatsdInput for Input {
    fn line(&self, w: &mut Writer<'_>, line: &statsd::Line<'_>, now_ms: i64) -> bool {
        let Some(name) = split(&line.name) else { return false };
        let role = if name.executor == "driver" { "driver" } else { "executor" };
        let mut h = Xxh3::new();
        for part in [name.app, name.executor] {
            h.update(b"spark\0");
            h.update(part.as_bytes());
        }
        let source = w.source(h.digest(), || {
            SourceSpec::new(name.app, vec![("executor".into(), name.executor.into()), ("role".into(), role.into())])
        });
        let source = match source {
            Ok(s) => s,
            Err(r) => {
                w.count(Outcome::Rejected(r));
                return true;
            }
        };
        for sample in line.samples() {
            let result = match (export(name.source, name.metric, sample.kind), sample.number) {
                (Some(e), Some(_)) if !self.owns(name.source, &e) => Err(Reject::NameCollision),
                (Some(Export { family, quantile, kind, scale, .. }), Some(value)) => {
                    let label = |k, v| (Cow::Borrowed(k), Cow::Borrowed(v));
                    let mut labels = vec![label("app", name.app), label("executor", name.executor)];
                    labels.extend(quantile.map(|q| label("quantile", q)));
                    labels.push(label("role", role));
                    let series = Series { origin: Origin::Spark, family: &family, kind, suffix: "", labels, value: value * scale };
                    w.set_series(source, &series, now_ms)
                }
                _ => Err(Reject::WrongType),
            };
            w.count(result.into());
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
    fn names_become_snake_case() {
        for (name, want) in [
            ("DAGScheduler", "dag_scheduler"),
            ("JVMHeapMemory", "jvm_heap_memory"),
            ("jvm.G1-Young-Generation.time", "jvm_g1_young_generation_time"),
            ("threadpool.activeTasks", "threadpool_active_tasks"),
            ("JVMCPU", "jvmcpu"),
            ("filesystem.hdfs.largeRead_ops", "filesystem_hdfs_large_read_ops"),
        ] {
            let mut out = String::new();
            snake_case(name, &mut out);
            assert_eq!(out, want, "{name}");
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
            b"local-1.driver.BlockManager.memory.memUsed_MB:12|g",
            b"local-1.driver.ExecutorMetrics.MinorGCCount:5|g",
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
                "counter spark_app_status_jobs_succeeded_jobs_total {app=local-1,executor=driver,role=driver} 3",
                "counter spark_dag_scheduler_message_processing_time_total {app=local-1,executor=driver,role=driver} 4",
                "counter spark_executor_metrics_minor_gc_total {app=local-1,executor=driver,role=driver} 5",
                "gauge spark_block_manager_memory_mem_used_bytes {app=local-1,executor=driver,role=driver} 12582912",
                "gauge spark_dag_scheduler_message_processing_time_max {app=local-1,executor=driver,role=driver} 10.16",
                "gauge spark_executor_threadpool_active_tasks {app=local-1,executor=3,role=executor} -1",
                "gauge spark_jvm_heap_usage {app=local-1,executor=driver,role=driver} 0.17",
                "summary spark_dag_scheduler_message_processing_time {app=local-1,executor=driver,quantile=0.99,role=driver} 3.27",
            ]
        );
        let m = &i.ingest.metrics;
        assert_eq!(m.lines_accepted.with_label_values(&["statsd"]).get(), 9);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "name_collision"]).get(), 0);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "wrong_type"]).get(), 1, "a set");
        assert_eq!(i.ingest.store.app("local-1").expect("app").label_values()["executor"].keys().collect::<Vec<_>>(), ["3", "driver"]);
    }

    #[test]
    fn names_that_collide_are_refused_not_merged() {
        let i = inputs(None);
        for l in [
            &b"app-1.driver.jvm.heap.usage:0.5|g"[..],
            b"app-1.driver.jvm.heapUsage:0.9|g",             // the same exported name, spelled otherwise
            b"app-1.driver.jvm.heap_usage:0.8|g",            // and again
            b"app-1.driver.jvm.heap.usage:0.6|g",            // the owner: replaces its value
            b"app-1.driver.appStatus.stages.done:4|c",       // counter spark_app_status_stages_done_total
            b"app-1.driver.appStatus.stages.done.count:9|g", // a gauge count: the same counter name
            b"app-1.driver.DAGScheduler.t.p50:1|ms",
            b"app-1.driver.DAGScheduler.t.p99:2|ms", // the same summary: not a collision
        ] {
            i.statsd_datagram(l, 1_000);
        }
        let app = i.ingest.store.app("app-1").expect("app");
        let mut got: Vec<(String, f64)> = app.series().into_iter().map(|s| (s.family.clone(), s.value)).collect();
        got.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
        assert_eq!(
            got,
            [
                ("spark_app_status_stages_done_total".to_string(), 4.0),
                ("spark_dag_scheduler_t".to_string(), 1.0),
                ("spark_dag_scheduler_t".to_string(), 2.0),
                ("spark_jvm_heap_usage".to_string(), 0.6),
            ]
        );
        assert_eq!(i.ingest.metrics.lines_rejected.with_label_values(&["statsd", "name_collision"]).get(), 3);
    }
}
