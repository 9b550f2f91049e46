//! What statsd-jvm-profiler's metric names mean (docs/protocols.md, "statsd-jvm-profiler"): the
//! same names arrive over statsd and as line-protocol measurements.
//!
//! The agent sends `<prefix>.<metric>`; the prefix may itself contain dots, so it is split off by
//! locating the metric grammar (`.cpu.trace.` from the start; the gauge names from the end), never
//! by counting dots. Stacks arrive leaf first, one frame per `.`-component, each frame written as
//! `package-Class-method-line` (dots of the class replaced by `-`, negative lines as `--1`/`--2`).
//! They are decoded to `package.Class.method:line`, root first — Flink's frame form.

use crate::sample::{Encoding, FamilyKind, Gauge, GaugeFamily, Stack};

/// What a metric name (after the prefix) means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric<'a> {
    /// `cpu.trace.<leaf>.<…>.<root>`: the encoded frames, leaf first.
    Stack(&'a str),
    /// `cpu.trace.<integer>`: the shutdown "bounds" marker (min/max depth); not a stack.
    Bounds,
    /// A JVM gauge; `value` is filled in by the caller with [`gauge_value`].
    Gauge { family: &'static GaugeFamily, label_value: &'a str },
}

/// The agent's stack encoding: leaf first, one `.`-component per frame (id 1, stored).
pub static ENCODING: Encoding = Encoding { id: 1, decode: each_frame };

const TRACE: &str = "cpu.trace.";

/// Where a stack sample's metric starts in a full statsd name (`[<prefix>.]cpu.trace.…`):
/// the first `cpu.trace.` at the start or after a dot. One search, built once.
pub fn trace_start(name: &str) -> Option<usize> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b".cpu.trace."));
    if name.starts_with(TRACE) {
        return Some(0);
    }
    FINDER.find(name.as_bytes()).map(|i| i + 1)
}

/// Split a full statsd name into `(prefix, metric)`. `None` when it is no profiler metric.
pub fn split_name(name: &str) -> Option<(&str, Metric<'_>)> {
    if let Some(i) = trace_start(name) {
        return Some((name[..i].strip_suffix('.').unwrap_or(""), trace(&name[i + TRACE.len()..])));
    }
    // Gauge names have one to three components: try the last three, two, one.
    let mut starts = [0usize; 3];
    let mut dots = 0;
    for (i, _) in name.bytes().enumerate().rev().filter(|(_, b)| *b == b'.') {
        starts[dots] = i + 1;
        dots += 1;
        if dots == 3 {
            break;
        }
    }
    for n in (1..=3).rev() {
        let start = match n {
            n if n <= dots => starts[n - 1],
            n if n == dots + 1 => 0,
            _ => continue,
        };
        if let Some(m @ Metric::Gauge { .. }) = metric_name(&name[start..]) {
            return Some((name[..start].strip_suffix('.').unwrap_or(""), m));
        }
    }
    None
}

fn trace(rest: &str) -> Metric<'_> {
    let digits = rest.strip_prefix('-').unwrap_or(rest);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Metric::Bounds
    } else {
        Metric::Stack(rest)
    }
}

/// A metric name without prefix (also an InfluxDB measurement) → what it means.
pub fn metric_name(metric: &str) -> Option<Metric<'_>> {
    if let Some(rest) = metric.strip_prefix(TRACE) {
        return Some(trace(rest));
    }
    let single = |family| Some(Metric::Gauge { family, label_value: "" });
    match metric {
        "pending-finalization-count" => return single(&PENDING_FINALIZATION),
        "loaded-class-count" => return single(&CLASSES_LOADED),
        "total-loaded-class-count" => return single(&CLASSES_LOADED_TOTAL),
        "unloaded-class-count" => return single(&CLASSES_UNLOADED_TOTAL),
        "cpu.jvm" => return Some(Metric::Gauge { family: &CPU_LOAD, label_value: "process" }),
        "cpu.system" => return Some(Metric::Gauge { family: &CPU_LOAD, label_value: "system" }),
        _ => {}
    }
    let mut it = metric.splitn(3, '.');
    let (first, middle, last) = (it.next()?, it.next()?, it.next()?);
    if middle.is_empty() || last.contains('.') {
        return None;
    }
    match first {
        "heap" | "nonheap" | "unknown" => {
            let field = MEMORY_FIELDS.iter().position(|f| *f == last)?;
            if middle == "total" {
                Some(Metric::Gauge { family: &MEMORY[field], label_value: first })
            } else {
                Some(Metric::Gauge { family: &MEMORY_POOL[field], label_value: middle })
            }
        }
        "gc" => {
            let family = match last {
                "count" => &GC_COUNT,
                "time" => &GC_SUM,
                "runtime" => &GC_INTERVAL,
                _ => return None,
            };
            Some(Metric::Gauge { family, label_value: middle })
        }
        _ => None,
    }
}

/// Every family JVM gauges are exported as.
pub fn families() -> impl Iterator<Item = &'static GaugeFamily> {
    MEMORY.iter().chain(&MEMORY_POOL).chain([
        &GC_COUNT,
        &GC_SUM,
        &GC_INTERVAL,
        &PENDING_FINALIZATION,
        &CLASSES_LOADED,
        &CLASSES_LOADED_TOTAL,
        &CLASSES_UNLOADED_TOTAL,
        &CPU_LOAD,
    ])
}

/// The family with this name and kind (how the store finds a stored gauge's family again).
pub fn family(name: &str, kind: crate::sample::FamilyKind) -> Option<&'static GaugeFamily> {
    families().find(|f| f.name == name && f.kind == kind)
}

/// Build the gauge reading for `family` from the agent's raw value (ms → s, % → ratio).
pub fn gauge_value<'a>(family: &'static GaugeFamily, label_value: &'a str, raw: f64, relative: bool) -> Gauge<'a> {
    let value = if std::ptr::eq(family, &GC_SUM) || std::ptr::eq(family, &GC_INTERVAL) {
        raw / 1000.0
    } else if std::ptr::eq(family, &CPU_LOAD) {
        raw / 100.0
    } else {
        raw
    };
    Gauge { family, label_value, value, relative }
}

/// A profiler-encoded stack (the part after `cpu.trace.`).
pub fn stack(text: &str) -> Stack<'_> {
    Stack::Encoded { encoding: &ENCODING, text }
}

/// The inverse of [`decode_stack`]: root-first `package.Class.method:line` frames → the name
/// statsd-jvm-profiler sends (`cpu.trace.<leaf>.….<root>`, class dots as `-`, then
/// `-method-line`). For tests, benchmarks and load generators. A frame without `:line` or
/// without a `.` before its method is written as it is.
pub fn encode_stack(frames_root_first: &[&str]) -> String {
    let mut out = String::from("cpu.trace");
    for frame in frames_root_first.iter().rev() {
        out.push('.');
        match frame.rsplit_once(':').and_then(|(name, line)| Some((name.rsplit_once('.')?, line))) {
            Some(((class, method), line)) => {
                out.extend(class.chars().map(|c| if c == '.' { '-' } else { c }));
                out.push('-');
                out.push_str(method);
                out.push('-');
                out.push_str(line);
            }
            None => out.push_str(frame),
        }
    }
    out
}

/// Decode `leaf.….root` profiler frames into root-first `package.Class.method:line` frames.
pub fn decode_stack(encoded: &str) -> Vec<String> {
    let mut out = Vec::new();
    each_frame(encoded, &mut |f| out.push(f.to_owned()));
    out
}

/// [`decode_stack`] without allocating per frame: one scratch buffer, lent to `sink`.
fn each_frame(encoded: &str, sink: &mut dyn FnMut(&str)) {
    let mut scratch = String::with_capacity(128);
    for frame in encoded.rsplit('.') {
        scratch.clear();
        write_frame(frame, &mut scratch);
        sink(&scratch);
    }
}

/// `java-lang-Thread-sleep--2` → `java.lang.Thread.sleep:-2`. A frame without a numeric line
/// suffix (not something the agent sends) is kept with its dashes turned into dots.
pub fn decode_frame(frame: &str) -> String {
    let mut out = String::with_capacity(frame.len() + 1);
    write_frame(frame, &mut out);
    out
}

fn write_frame(frame: &str, out: &mut String) {
    let parsed = frame.rsplit_once('-').and_then(|(name, line)| {
        if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match name.strip_suffix('-') {
            Some(name) => Some((name, "-", line)),
            None => Some((name, "", line)),
        }
    });
    let dots = |s: &str, out: &mut String| out.extend(s.chars().map(|c| if c == '-' { '.' } else { c }));
    match parsed {
        Some((name, sign, line)) => {
            dots(name, out);
            out.push(':');
            out.push_str(sign);
            out.push_str(line);
        }
        None => dots(frame, out),
    }
}

const MEMORY_FIELDS: [&str; 4] = ["used", "committed", "max", "init"];

static MEMORY: [GaugeFamily; 4] = [
    memory("jvm_memory_bytes_used", "Used bytes of a given JVM memory area."),
    memory("jvm_memory_bytes_committed", "Committed (bytes) of a given JVM memory area."),
    memory("jvm_memory_bytes_max", "Max (bytes) of a given JVM memory area; -1 when undefined."),
    memory("jvm_memory_bytes_init", "Initial bytes of a given JVM memory area."),
];

static MEMORY_POOL: [GaugeFamily; 4] = [
    pool("jvm_memory_pool_bytes_used", "Used bytes of a given JVM memory pool."),
    pool("jvm_memory_pool_bytes_committed", "Committed bytes of a given JVM memory pool."),
    pool("jvm_memory_pool_bytes_max", "Max bytes of a given JVM memory pool; -1 when undefined."),
    pool("jvm_memory_pool_bytes_init", "Initial bytes of a given JVM memory pool."),
];

const fn memory(name: &'static str, help: &'static str) -> GaugeFamily {
    GaugeFamily { name, help, kind: FamilyKind::Gauge, label: Some("area") }
}

const fn pool(name: &'static str, help: &'static str) -> GaugeFamily {
    GaugeFamily { name, help, kind: FamilyKind::Gauge, label: Some("pool") }
}

static GC_COUNT: GaugeFamily = GaugeFamily {
    name: "jvm_gc_collection_seconds",
    help: "Time spent in a given JVM garbage collector in seconds.",
    kind: FamilyKind::SummaryCount,
    label: Some("gc"),
};
static GC_SUM: GaugeFamily = GaugeFamily { kind: FamilyKind::SummarySum, ..GC_COUNT };
static GC_INTERVAL: GaugeFamily = GaugeFamily {
    name: "jvm_gc_interval_collection_seconds",
    help: "Time spent in a given garbage collector during the agent's last report interval.",
    kind: FamilyKind::Gauge,
    label: Some("gc"),
};
static PENDING_FINALIZATION: GaugeFamily = GaugeFamily {
    name: "jvm_memory_objects_pending_finalization",
    help: "The number of objects waiting in the finalizer queue.",
    kind: FamilyKind::Gauge,
    label: None,
};
static CLASSES_LOADED: GaugeFamily = GaugeFamily {
    name: "jvm_classes_loaded",
    help: "The number of classes that are currently loaded in the JVM.",
    kind: FamilyKind::Gauge,
    label: None,
};
static CLASSES_LOADED_TOTAL: GaugeFamily = GaugeFamily {
    name: "jvm_classes_loaded_total",
    help: "The total number of classes that have been loaded since the JVM started.",
    kind: FamilyKind::Counter,
    label: None,
};
static CLASSES_UNLOADED_TOTAL: GaugeFamily = GaugeFamily {
    name: "jvm_classes_unloaded_total",
    help: "The total number of classes that have been unloaded since the JVM started.",
    kind: FamilyKind::Counter,
    label: None,
};
static CPU_LOAD: GaugeFamily = GaugeFamily {
    name: "jvm_cpu_load_ratio",
    help: "Recent CPU load (0..1) of the JVM process (scope=process) or the whole machine (scope=system).",
    kind: FamilyKind::Gauge,
    label: Some("scope"),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(name: &str) -> (String, Vec<String>) {
        match split_name(name) {
            Some((prefix, Metric::Stack(s))) => (prefix.to_string(), decode_stack(s)),
            other => panic!("{name}: not a stack: {other:?}"),
        }
    }

    fn gauge(name: &str) -> (String, &'static str, String) {
        match split_name(name) {
            Some((prefix, Metric::Gauge { family, label_value })) => (prefix.to_string(), family.name, label_value.to_string()),
            other => panic!("{name}: not a gauge: {other:?}"),
        }
    }

    #[test]
    fn stack_vectors() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "statsd-jvm-profiler.cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12",
                "statsd-jvm-profiler",
                &["com.example.Main.main:12", "java.lang.Thread.sleep:-2"],
            ),
            (
                "statsd-jvm-profiler.cpu.trace.com-example-Main$$Lambda$1/1831932724-run--1.java-lang-Thread-run-748",
                "statsd-jvm-profiler",
                &["java.lang.Thread.run:748", "com.example.Main$$Lambda$1/1831932724.run:-1"],
            ),
            (
                "statsd-jvm-profiler.cpu.trace.java-util-ArrayList-<init>-166.scala-collection-immutable-List$$anonfun$map$1-apply-245.java-lang-Thread-run-748",
                "statsd-jvm-profiler",
                &["java.lang.Thread.run:748", "scala.collection.immutable.List$$anonfun$map$1.apply:245", "java.util.ArrayList.<init>:166"],
            ),
            ("bigdata.profiler.ajohnson.job1.cpu.trace.com-etsy-Foo-bar-10", "bigdata.profiler.ajohnson.job1", &["com.etsy.Foo.bar:10"]),
            (
                "statsd-jvm-profiler.cpu.trace.com-example-FooTest-my test-10.java-lang-Thread-run-748",
                "statsd-jvm-profiler",
                &["java.lang.Thread.run:748", "com.example.FooTest.my test:10"],
            ),
            ("cpu.trace.a-B-c-1", "", &["a.B.c:1"]),
            (
                "cpu.trace.com-etsy-statsd-profiler-util-StackTraceFormatter-formatStackTraceElement-21.com-etsy-statsd-profiler-util-StackTraceFormatterTest-testFormatStackTraceElement-17",
                "",
                &[
                    "com.etsy.statsd.profiler.util.StackTraceFormatterTest.testFormatStackTraceElement:17",
                    "com.etsy.statsd.profiler.util.StackTraceFormatter.formatStackTraceElement:21",
                ],
            ),
        ];
        for (name, prefix, frames) in cases {
            assert_eq!(stack(name), (prefix.to_string(), frames.iter().map(|f| f.to_string()).collect()), "{name}");
        }
    }

    #[test]
    fn spark_flamegraph_worked_example() {
        let name = "cpu.trace.java-net-SocketInputStream-socketRead0--2.java-net-SocketInputStream-read-116.scala-collection-Iterator$$anon$11-next-409.org-apache-spark-sql-catalyst-expressions-GeneratedClass$GeneratedIteratorForCodegenStage1-processNext--1.org-apache-spark-executor-Executor$TaskRunner-run-338.java-lang-Thread-run-748";
        assert_eq!(
            stack(name).1.join(";"),
            "java.lang.Thread.run:748;org.apache.spark.executor.Executor$TaskRunner.run:338;org.apache.spark.sql.catalyst.expressions.GeneratedClass$GeneratedIteratorForCodegenStage1.processNext:-1;scala.collection.Iterator$$anon$11.next:409;java.net.SocketInputStream.read:116;java.net.SocketInputStream.socketRead0:-2"
        );
    }

    #[test]
    fn bounds_markers_are_not_stacks() {
        for name in ["statsd-jvm-profiler.cpu.trace.6", "p.cpu.trace.-2147483648", "cpu.trace.2147483647"] {
            assert!(matches!(split_name(name), Some((_, Metric::Bounds))), "{name}");
        }
    }

    #[test]
    fn gauge_vectors() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("statsd-jvm-profiler.heap.total.used", "statsd-jvm-profiler", "jvm_memory_bytes_used", "heap"),
            ("statsd-jvm-profiler.nonheap.total.max", "statsd-jvm-profiler", "jvm_memory_bytes_max", "nonheap"),
            ("statsd-jvm-profiler.gc.PS_Scavenge.count", "statsd-jvm-profiler", "jvm_gc_collection_seconds", "PS_Scavenge"),
            ("spark.app.1.gc.G1_Young_Generation.time", "spark.app.1", "jvm_gc_collection_seconds", "G1_Young_Generation"),
            ("p.gc.PS_Scavenge.runtime", "p", "jvm_gc_interval_collection_seconds", "PS_Scavenge"),
            (
                "statsd-jvm-profiler.nonheap.codeheap-'non-profiled-nmethods'.used",
                "statsd-jvm-profiler",
                "jvm_memory_pool_bytes_used",
                "codeheap-'non-profiled-nmethods'",
            ),
            ("a.b.heap.ps-eden-space.committed", "a.b", "jvm_memory_pool_bytes_committed", "ps-eden-space"),
            ("statsd-jvm-profiler.cpu.jvm", "statsd-jvm-profiler", "jvm_cpu_load_ratio", "process"),
            ("statsd-jvm-profiler.cpu.system", "statsd-jvm-profiler", "jvm_cpu_load_ratio", "system"),
            ("statsd-jvm-profiler.loaded-class-count", "statsd-jvm-profiler", "jvm_classes_loaded", ""),
            ("x.total-loaded-class-count", "x", "jvm_classes_loaded_total", ""),
            ("x.unloaded-class-count", "x", "jvm_classes_unloaded_total", ""),
            ("x.pending-finalization-count", "x", "jvm_memory_objects_pending_finalization", ""),
            ("heap.total.init", "", "jvm_memory_bytes_init", "heap"),
        ];
        for (name, prefix, family, label) in cases {
            assert_eq!(gauge(name), (prefix.to_string(), *family, label.to_string()), "{name}");
        }
    }

    #[test]
    fn unknown_names() {
        for name in ["gorets", "a.b.c", "p.heap.total.usage", "p.gc.x.y.count", "pxcpu.jvm", "p.xloaded-class-count"] {
            assert_eq!(split_name(name), None, "{name}");
        }
    }

    #[test]
    fn units_are_converted() {
        let Some(Metric::Gauge { family, label_value }) = metric_name("gc.PS_Scavenge.time") else { panic!() };
        assert_eq!(gauge_value(family, label_value, 1500.0, false).value, 1.5);
        let Some(Metric::Gauge { family, label_value }) = metric_name("cpu.jvm") else { panic!() };
        assert_eq!(gauge_value(family, label_value, 12.5, false).value, 0.125);
        let Some(Metric::Gauge { family, label_value }) = metric_name("heap.total.max") else { panic!() };
        assert_eq!(gauge_value(family, label_value, -1.0, false).value, -1.0);
    }

    #[test]
    fn encode_is_the_agents_format() {
        assert_eq!(
            encode_stack(&["com.example.Main.main:12", "java.lang.Thread.sleep:-2"]),
            "cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12"
        );
    }

    #[test]
    fn families_are_found_by_name_and_kind() {
        use crate::sample::FamilyKind;
        assert_eq!(families().count(), 16);
        assert!(std::ptr::eq(family("jvm_gc_collection_seconds", FamilyKind::SummarySum).expect("sum"), &GC_SUM));
        assert!(family("jvm_gc_collection_seconds", FamilyKind::Gauge).is_none());
    }

    #[test]
    fn frames_without_line_are_kept() {
        assert_eq!(decode_frame("weird-frame"), "weird.frame");
        assert_eq!(decode_frame(""), "");
        assert_eq!(decode_frame("a-b-c--x"), "a.b.c..x");
    }
}
