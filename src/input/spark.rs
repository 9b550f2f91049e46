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
//! Values are exported in base units with the unit in the name, as Prometheus names go:
//! milliseconds and nanoseconds become `_seconds` (`executor.runTime` ms →
//! `spark_executor_run_time_seconds_total`, `executor.cpuTime` ns →
//! `spark_executor_cpu_time_seconds_total`, `jvm.<gc>.time` ms → `spark_jvm_<gc>_time_seconds`,
//! timers' quantiles, max, min, mean and stddev → `spark_<source>_<timer>_seconds…`), memory
//! figures become `_bytes` (`jvm.heap.used` → `spark_jvm_heap_used_bytes`,
//! `ExecutorMetrics.JVMHeapMemory` → `spark_executor_metrics_jvm_heap_memory_bytes`, the code
//! generator's size histograms); a name that already says `bytes` keeps its name ([`unit_of`]).
//! Every family has a HELP line of its own ([`help`]): its source, what it measures, its unit.
//!
//! Every series has the labels `app`, `executor` and `role` (`driver` or `executor`).
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
    /// The value is multiplied by `scale` (MiB to bytes) and divided by `divisor` (ms or ns
    /// to seconds: a division, so that `4364` ms is exactly `4364.0 / 1000.0`).
    scale: f64,
    divisor: f64,
    spelling: &'a str,
}

/// Exported names kept with who has them (checked while there are fewer; a name is a few
/// dozen bytes).
const MAX_NAMES: usize = 100_000;

/// What Spark measures a metric in, when it is not a count or a ratio: exported in the base
/// unit, with the unit in the name (`_seconds`, `_bytes`), as Prometheus names go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Millis,
    Nanos,
    Bytes,
}

impl Unit {
    /// What a value is divided by.
    fn divisor(self) -> f64 {
        match self {
            Self::Millis => 1e3,
            Self::Nanos => 1e9,
            Self::Bytes => 1.0,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Millis | Self::Nanos => "_seconds",
            Self::Bytes => "_bytes",
        }
    }
}

/// The unit of a gauge or counter `<source>.<metric>` as Spark 4 sends it (its ExecutorSource,
/// JvmSource, ExecutorMetricsSource and JVMCPUSource).
fn unit_of(source: &str, metric: &str) -> Option<Unit> {
    match source {
        "executor" => match metric {
            "runTime" | "deserializeTime" | "jvmGCTime" | "resultSerializationTime" | "shuffleFetchWaitTime" => Some(Unit::Millis),
            "shuffleRemoteReqsDuration" | "shuffleMergedRemoteReqsDuration" => Some(Unit::Millis),
            "cpuTime" | "deserializeCpuTime" | "shuffleWriteTime" => Some(Unit::Nanos),
            "resultSize" => Some(Unit::Bytes),
            m if m.contains("Bytes") || m.ends_with("_bytes") => Some(Unit::Bytes),
            _ => None,
        },
        // Memory figures (heap, non-heap, pools, direct and mapped buffers) and GC times.
        "jvm" => match metric.rsplit('.').next().unwrap_or(metric) {
            "used" | "committed" | "init" | "max" | "capacity" | "used-after-gc" => Some(Unit::Bytes),
            "time" => Some(Unit::Millis),
            _ => None,
        },
        "ExecutorMetrics" if metric.ends_with("GCTime") => Some(Unit::Millis),
        "ExecutorMetrics" if metric.ends_with("Memory") => Some(Unit::Bytes),
        "JVMCPU" if metric == "jvmCpuTime" => Some(Unit::Nanos),
        _ => None,
    }
}

/// The unit of a timer's or histogram's statistics (`|ms`): timers (`…Time`) in milliseconds,
/// the code generator's size histograms in bytes.
fn stat_unit_of(metric: &str) -> Option<Unit> {
    if metric.ends_with("Time") || metric.ends_with("time") {
        Some(Unit::Millis)
    } else if metric.ends_with("Size") {
        Some(Unit::Bytes)
    } else {
        None
    }
}

/// Append a unit's suffix, unless the name already says it (`bytes_read`).
fn push_unit(family: &mut String, unit: Unit) {
    if !(unit == Unit::Bytes && family.contains("bytes")) {
        family.push_str(unit.suffix());
    }
}

/// The family a Spark value is exported as; `None` for types Spark never sends.
fn export<'a>(source: &str, metric: &'a str, kind: MetricType) -> Option<Export<'a>> {
    let mut family = String::with_capacity(7 + source.len() + metric.len() + 6);
    family.push_str("spark_");
    snake_case(source, &mut family);
    family.push('_');
    let (mut quantile, mut series_kind, mut scale, mut divisor, mut spelling) = (None, SeriesKind::Gauge, 1.0, 1.0, metric);
    match kind {
        MetricType::Gauge | MetricType::Counter => {
            let (metric, mebibytes) = match metric.strip_suffix("_MB") {
                Some(m) => (m, true),
                None => (metric, false),
            };
            snake_case(metric, &mut family);
            // A count (`.count` of a histogram, timer or meter, a GC count) is cumulative.
            let count = kind == MetricType::Gauge && family.ends_with("_count");
            if mebibytes {
                family.push_str("_bytes");
                scale = 1024.0 * 1024.0;
            } else if let Some(unit) = unit_of(source, metric).filter(|_| !count) {
                push_unit(&mut family, unit);
                divisor = unit.divisor();
            }
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
            let unit = stat_unit_of(base);
            match QUANTILES.iter().find(|(p, _)| *p == stat).filter(|_| !base.is_empty()) {
                Some((_, q)) => {
                    spelling = base;
                    snake_case(base, &mut family);
                    if let Some(u) = unit {
                        push_unit(&mut family, u);
                        divisor = u.divisor();
                    }
                    quantile = Some(*q);
                    series_kind = SeriesKind::Summary;
                }
                // max, min, mean and stddev are in the statistic's unit; the rates are events
                // per second.
                None if !base.is_empty() && unit.is_some() && ["max", "min", "mean", "stddev"].contains(&stat) => {
                    let u = unit.unwrap_or(Unit::Bytes);
                    snake_case(base, &mut family);
                    push_unit(&mut family, u);
                    family.push('_');
                    family.push_str(stat);
                    divisor = u.divisor();
                }
                None => snake_case(metric, &mut family),
            }
        }
        MetricType::Histogram | MetricType::Distribution | MetricType::Set => return None,
    }
    Some(Export { family, quantile, kind: series_kind, scale, divisor, spelling })
}

/// The HELP line of an exported family: its source, what it measures, its unit.
pub fn help(family: &str) -> String {
    let rest = family.strip_prefix("spark_").unwrap_or(family);
    let mut found: Option<(&str, &str)> = None;
    for s in SOURCES {
        let mut snake = String::new();
        snake_case(s, &mut snake);
        if let Some(r) = rest.strip_prefix(snake.as_str()).and_then(|r| r.strip_prefix('_')) {
            if found.is_none_or(|(_, best)| r.len() < best.len()) {
                found = Some((s, r));
            }
        }
    }
    let (source, metric) = found.unwrap_or(("unknown", rest));
    let mut words = metric;
    let mut what = Vec::new();
    for (suffix, says) in [
        ("_m1_rate", "per second, 1-minute rate"),
        ("_m5_rate", "per second, 5-minute rate"),
        ("_m15_rate", "per second, 15-minute rate"),
        ("_mean_rate", "per second, mean rate"),
        ("_max", "maximum"),
        ("_min", "minimum"),
        ("_mean", "mean"),
        ("_stddev", "standard deviation"),
        ("_total", "cumulative"),
    ] {
        if let Some(w) = words.strip_suffix(suffix) {
            words = w;
            what.push(says);
            break;
        }
    }
    let unit = if let Some(w) = words.strip_suffix("_seconds") {
        words = w;
        "in seconds"
    } else if let Some(w) = words.strip_suffix("_bytes") {
        words = w;
        "in bytes"
    } else if words.contains("bytes") {
        "in bytes"
    } else if what.contains(&"cumulative") {
        "a count"
    } else {
        "as Spark reports it"
    };
    let what = if what.is_empty() { String::new() } else { format!(" ({})", what.join(", ")) };
    format!("Spark's {source} source: {}{what}, {unit}. From its StatsdSink; labels app, executor, role.", words.replace('_', " "))
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
                (Some(Export { family, quantile, kind, scale, divisor, .. }), Some(value)) => {
                    let label = |k, v| (Cow::Borrowed(k), Cow::Borrowed(v));
                    let mut labels = vec![label("app", name.app), label("executor", name.executor)];
                    labels.extend(quantile.map(|q| label("quantile", q)));
                    labels.push(label("role", role));
                    let series =
                        Series { origin: Origin::Spark, family: &family, kind, suffix: "", labels, value: value * scale / divisor };
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
    fn each_family_says_what_it_is() {
        assert_eq!(
            help("spark_executor_run_time_seconds_total"),
            "Spark's executor source: run time (cumulative), in seconds. From its StatsdSink; labels app, executor, role."
        );
        assert_eq!(
            help("spark_executor_metrics_jvm_heap_memory_bytes"),
            "Spark's ExecutorMetrics source: jvm heap memory, in bytes. From its StatsdSink; labels app, executor, role."
        );
        assert_eq!(
            help("spark_dag_scheduler_message_processing_time_seconds_max"),
            "Spark's DAGScheduler source: message processing time (maximum), in seconds. From its StatsdSink; labels app, executor, role."
        );
        assert_eq!(
            help("spark_app_status_jobs_succeeded_jobs_total"),
            "Spark's appStatus source: jobs succeeded jobs (cumulative), a count. From its StatsdSink; labels app, executor, role."
        );
        assert_eq!(
            help("spark_executor_threadpool_active_tasks"),
            "Spark's executor source: threadpool active tasks, as Spark reports it. From its StatsdSink; labels app, executor, role."
        );
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
            // Base units: ms and ns become seconds, memory figures are bytes.
            b"local-1.3.executor.runTime:4364|c",
            b"local-1.3.executor.cpuTime:1500000000|c",
            b"local-1.3.executor.bytesRead:10|c",
            b"local-1.3.jvm.heap.used:1048576|g",
            b"local-1.3.jvm.G1-Young-Generation.time:250|g",
            b"local-1.3.ExecutorMetrics.MinorGCTime:120|g",
            b"local-1.3.JVMCPU.jvmCpuTime:2000000000|g",
            b"local-1.3.CodeGenerator.generatedClassSize.max:1200|ms",
            b"local-1.3.DAGScheduler.messageProcessingTime.m1_rate:0.5|ms",
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
        let (d, e) = ("{app=local-1,executor=driver,role=driver}", "{app=local-1,executor=3,role=executor}");
        let mut want = vec![
            format!("counter spark_app_status_jobs_succeeded_jobs_total {d} 3"),
            format!("counter spark_dag_scheduler_message_processing_time_total {d} 4"),
            format!("counter spark_executor_bytes_read_total {e} 10"),
            format!("counter spark_executor_cpu_time_seconds_total {e} 1.5"),
            format!("counter spark_executor_metrics_minor_gc_total {d} 5"),
            format!("counter spark_executor_run_time_seconds_total {e} {}", 4364.0 / 1000.0),
            format!("gauge spark_block_manager_memory_mem_used_bytes {d} 12582912"),
            format!("gauge spark_code_generator_generated_class_size_bytes_max {e} 1200"),
            format!("gauge spark_dag_scheduler_message_processing_time_m1_rate {e} 0.5"),
            format!("gauge spark_dag_scheduler_message_processing_time_seconds_max {d} {}", 10.16 / 1000.0),
            format!("gauge spark_executor_metrics_minor_gc_time_seconds {e} 0.12"),
            format!("gauge spark_executor_threadpool_active_tasks {e} -1"),
            format!("gauge spark_jvm_g1_young_generation_time_seconds {e} 0.25"),
            format!("gauge spark_jvm_heap_usage {d} 0.17"),
            format!("gauge spark_jvm_heap_used_bytes {e} 1048576"),
            format!("gauge spark_jvmcpu_jvm_cpu_time_seconds {e} 2"),
            format!(
                "summary spark_dag_scheduler_message_processing_time_seconds {{app=local-1,executor=driver,quantile=0.99,role=driver}} {}",
                3.27 / 1000.0
            ),
        ];
        want.sort();
        assert_eq!(got, want);
        let m = &i.ingest.metrics;
        assert_eq!(m.lines_accepted.with_label_values(&["statsd"]).get(), 18);
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
