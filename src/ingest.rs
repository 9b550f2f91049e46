//! The edge between the protocols and the store: parsed lines become stack counts and gauges,
//! each line's outcome is counted (accepted, ignored, or rejected with a bounded reason).
//!
//! Origins (who sent a sample) are hashed from their raw text and resolved to an app and labels
//! once; see [`Store::source`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::Xxh3;

use crate::config::PrefixTemplate;
use crate::metrics::Metrics;
use crate::protocol::influx::{self, FieldValue};
use crate::protocol::{jvm, statsd};
use crate::sample::RawStack;
use crate::store::{Rejected, Source, SourceSpec, Store, Stored};

const STATSD: &str = "statsd";
const INFLUX: &str = "influx";

/// Turns parsed input into store updates.
#[derive(Debug)]
pub struct Ingest {
    pub store: Arc<Store>,
    pub metrics: Metrics,
    template: Option<PrefixTemplate>,
    /// `stackd_lines_accepted_total{protocol}`, resolved once: counted on every line.
    accepted_statsd: prometheus::IntCounter,
    accepted_influx: prometheus::IntCounter,
    /// When a prefix mismatch was last logged, and how many were not logged since.
    prefix_warned: Mutex<Option<std::time::Instant>>,
    prefix_unlogged: AtomicU64,
}

/// How often aggregated warnings (rejected lines, prefix mismatches) are logged at most.
pub const REJECT_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// At most `max` bytes of `s` (on a char boundary), for logs and messages.
pub fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Time unit of line-protocol timestamps (`precision=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Nanos,
    Micros,
    Millis,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// InfluxDB 1.x `precision` values (empty = ns).
    pub fn from_v1(s: &str) -> Option<Self> {
        Some(match s {
            "" | "n" | "ns" => Self::Nanos,
            "u" | "us" | "µ" => Self::Micros,
            "ms" => Self::Millis,
            "s" => Self::Seconds,
            "m" => Self::Minutes,
            "h" => Self::Hours,
            _ => return None,
        })
    }

    /// InfluxDB 2.x `precision` values (empty = ns).
    pub fn from_v2(s: &str) -> Option<Self> {
        Some(match s {
            "" | "ns" => Self::Nanos,
            "us" => Self::Micros,
            "ms" => Self::Millis,
            "s" => Self::Seconds,
            _ => return None,
        })
    }

    /// A timestamp in this precision as Unix milliseconds; `None` if it does not fit.
    fn to_millis(self, t: i64) -> Option<i64> {
        match self {
            Self::Nanos => Some(t.div_euclid(1_000_000)),
            Self::Micros => Some(t.div_euclid(1_000)),
            Self::Millis => Some(t),
            Self::Seconds => t.checked_mul(1_000),
            Self::Minutes => t.checked_mul(60_000),
            Self::Hours => t.checked_mul(3_600_000),
        }
    }
}

/// What happened to a line-protocol body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Lines taken (stored or knowingly ignored), as InfluxDB would count points written.
    pub written: usize,
    pub rejected: usize,
    /// The first few rejections, `unable to parse '<line>': <reason>`.
    pub errors: Vec<String>,
}

/// The largest sample count one line may carry: 10^12 (an agent sampling every 10 ms sends about
/// 100 per thread per second). Larger values are refused (`count_too_large`), so that no single
/// line can push a total near `u64::MAX`; totals saturate rather than wrap in any case. Exact in
/// an f64, so `1e12` and `1000000000000i` mean the same.
pub const MAX_SAMPLE_COUNT: u64 = 1_000_000_000_000;

/// At most this many rejection messages go into one HTTP error body.
const MAX_ERRORS_SHOWN: usize = 10;

/// A semantic rejection of a syntactically valid line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reject {
    AppLimit,
    NegativeCount,
    FractionalCount,
    CountTooLarge,
    MissingValue,
    WrongType,
    MissingStacktrace,
    BadTimestamp,
    TooOld,
    InFuture,
    StoreUnavailable,
    SeriesLimit,
}

impl Reject {
    fn reason(self) -> &'static str {
        match self {
            Self::AppLimit => "app_limit",
            Self::NegativeCount => "negative_count",
            Self::FractionalCount => "fractional_count",
            Self::CountTooLarge => "count_too_large",
            Self::MissingValue => "missing_value",
            Self::WrongType => "wrong_type",
            Self::MissingStacktrace => "missing_stacktrace",
            Self::BadTimestamp => "bad_timestamp",
            Self::TooOld => "too_old",
            Self::InFuture => "in_future",
            Self::StoreUnavailable => "store_unavailable",
            Self::SeriesLimit => "series_limit",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::AppLimit => "app limit reached (--max-apps)",
            Self::NegativeCount => "stack sample count is negative",
            Self::FractionalCount => "stack sample count is not a whole number",
            Self::CountTooLarge => "stack sample count is larger than 1000000000000",
            Self::MissingValue => "missing numeric field \"value\"",
            Self::WrongType => "stack samples must be gauges or counters",
            Self::MissingStacktrace => "Stacktrace point without a string field \"stacktrace\"",
            Self::BadTimestamp => "timestamp out of range",
            Self::TooOld => "timestamp older than the retention (--retention)",
            Self::InFuture => "timestamp too far in the future",
            Self::StoreUnavailable => "the store cannot be read and this sample's time bucket is only on disk; retry later",
            Self::SeriesLimit => "gauge series limit reached (--max-series-per-app)",
        }
    }
}

/// Line outcome before counting.
enum Outcome {
    Accepted,
    Ignored(&'static str),
    Rejected(Reject),
}

impl Ingest {
    pub fn new(store: Arc<Store>, metrics: Metrics, template: Option<PrefixTemplate>) -> Self {
        let accepted_statsd = metrics.lines_accepted.with_label_values(&[STATSD]);
        let accepted_influx = metrics.lines_accepted.with_label_values(&[INFLUX]);
        Ingest {
            store,
            metrics,
            template,
            accepted_statsd,
            accepted_influx,
            prefix_warned: Mutex::new(None),
            prefix_unlogged: AtomicU64::new(0),
        }
    }

    /// One statsd datagram, received at `now_ms`.
    pub fn statsd_datagram(&self, datagram: &[u8], now_ms: i64) {
        for line in statsd::parse_datagram(datagram) {
            match line {
                Err(e) => self.metrics.lines_rejected.with_label_values(&[STATSD, e.reason()]).inc(),
                Ok(line) => self.statsd_line(&line, now_ms),
            }
        }
    }

    fn count(&self, protocol: &str, outcome: Outcome) {
        match outcome {
            Outcome::Accepted if protocol == STATSD => self.accepted_statsd.inc(),
            Outcome::Accepted => self.accepted_influx.inc(),
            Outcome::Ignored(reason) => self.metrics.lines_ignored.with_label_values(&[protocol, reason]).inc(),
            Outcome::Rejected(r) => {
                match r {
                    Reject::AppLimit => self.metrics.limit_hits.with_label_values(&["apps"]).inc(),
                    Reject::SeriesLimit => self.metrics.limit_hits.with_label_values(&["series"]).inc(),
                    _ => {}
                }
                self.metrics.lines_rejected.with_label_values(&[protocol, r.reason()]).inc();
            }
        }
    }

    /// One statsd line. A line with several samples (`x:4|g:-1|g`) has one outcome per sample:
    /// the good ones are kept and counted as accepted, the bad ones refused and counted.
    fn statsd_line(&self, line: &statsd::Line<'_>, now_ms: i64) {
        let Some((prefix, metric)) = jvm::split_name(&line.name) else {
            return self.count(STATSD, Outcome::Ignored("unknown_metric"));
        };
        let (stack, gauge) = match metric {
            jvm::Metric::Bounds => return self.count(STATSD, Outcome::Ignored("depth_marker")),
            jvm::Metric::Stack(text) => (Some(jvm::profiler_stack(text)), None),
            jvm::Metric::Gauge { family, label_value } => (None, Some((family, label_value))),
        };
        let source = match self.statsd_source(prefix, &line.tags) {
            Ok(s) => s,
            Err(r) => return self.count(STATSD, Outcome::Rejected(r)),
        };
        for sample in line.samples() {
            // `parse_line` validated every value as a finite number (sets aside).
            let value = sample.number().unwrap_or(0.0);
            let result = match (&stack, gauge) {
                (Some(_), _) if !matches!(sample.kind, statsd::MetricType::Gauge | statsd::MetricType::Counter) => Err(Reject::WrongType),
                (Some(stack), _) => self.add_stack(&source, stack, value, now_ms, now_ms),
                (None, Some((family, label_value))) => {
                    self.set_gauge(&source, &jvm::gauge_value(family, label_value, value, sample.is_relative()), now_ms)
                }
                (None, None) => Ok(()),
            };
            self.count(STATSD, result.map_or_else(Outcome::Rejected, |()| Outcome::Accepted));
        }
    }

    fn set_gauge(&self, source: &Source, gauge: &crate::sample::Gauge<'_>, now_ms: i64) -> Result<(), Reject> {
        self.label_overflow(source);
        self.store.set_gauge(source, gauge, now_ms).map_err(|_| Reject::SeriesLimit)
    }

    /// Samples of an origin whose label value was over `--max-label-values` are kept under the
    /// overflow value; each is a hit of that limit.
    fn label_overflow(&self, source: &Source) {
        if source.label_overflow {
            self.metrics.limit_hits.with_label_values(&["label_values"]).inc();
        }
    }

    fn add_stack(&self, source: &Source, stack: &RawStack<'_>, value: f64, time_ms: i64, now_ms: i64) -> Result<(), Reject> {
        self.label_overflow(source);
        if value < 0.0 {
            return Err(Reject::NegativeCount);
        }
        if value.fract() != 0.0 {
            return Err(Reject::FractionalCount);
        }
        if value > MAX_SAMPLE_COUNT as f64 {
            return Err(Reject::CountTooLarge);
        }
        match self.store.add_stack(source, stack, value as u64, time_ms, now_ms) {
            Ok(Stored::Stack) => Ok(()),
            Ok(Stored::Overflow) => {
                self.metrics.limit_hits.with_label_values(&["stacks"]).inc();
                Ok(())
            }
            Err(Rejected::TooOld) => Err(Reject::TooOld),
            Err(Rejected::InFuture) => Err(Reject::InFuture),
            Err(Rejected::AppLimit) => Err(Reject::AppLimit),
            Err(Rejected::StoreUnavailable) => Err(Reject::StoreUnavailable),
            Err(Rejected::SeriesLimit) => Err(Reject::SeriesLimit),
        }
    }

    fn statsd_source(&self, prefix: &str, tags: &statsd::Tags<'_>) -> Result<Arc<Source>, Reject> {
        let mut h = Xxh3::new();
        h.update(b"statsd\0");
        h.update(prefix.as_bytes());
        h.update(b"\0");
        h.update(tags.raw().as_bytes());
        self.store
            .source(h.digest(), || {
                let mut spec = self.split_prefix(prefix);
                spec.labels.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                spec
            })
            .map_err(|_| Reject::AppLimit)
    }

    /// App and labels from an agent prefix and the `--prefix-labels` template.
    fn split_prefix(&self, prefix: &str) -> SourceSpec {
        let mut spec = SourceSpec { app: prefix.to_string(), labels: Vec::new() };
        let Some(template) = &self.template else {
            return spec;
        };
        match template.apply(prefix) {
            Some(pairs) => {
                for (name, value) in pairs {
                    if name == "app" {
                        spec.app = value.to_string();
                    } else {
                        spec.labels.push((name.to_string(), value.to_string()));
                    }
                }
            }
            None => self.prefix_mismatch(prefix),
        }
        spec
    }

    /// A prefix that does not fit the template: logged at most once a minute, with how many
    /// were not logged (each origin is resolved once, but there may be many origins).
    fn prefix_mismatch(&self, prefix: &str) {
        let mut last = self.prefix_warned.lock().unwrap_or_else(|e| e.into_inner());
        let unlogged = self.prefix_unlogged.fetch_add(1, Ordering::Relaxed);
        if last.is_some_and(|t| t.elapsed() < REJECT_LOG_INTERVAL) {
            return;
        }
        *last = Some(std::time::Instant::now());
        self.prefix_unlogged.store(0, Ordering::Relaxed);
        tracing::warn!(prefix = %truncated(prefix, 200), not_logged_before = unlogged, "prefix does not fit --prefix-labels; the whole prefix names the app (logged at most once a minute)");
    }

    /// A line-protocol body (already decompressed).
    pub fn influx_body(&self, body: &[u8], precision: Precision, now_ms: i64) -> WriteOutcome {
        let mut out = WriteOutcome::default();
        for line in influx::parse_body(body) {
            let (outcome, text) = match line {
                Err(e) => {
                    self.metrics.lines_rejected.with_label_values(&[INFLUX, e.kind.reason()]).inc();
                    out.reject(e.to_string());
                    continue;
                }
                Ok(line) => (self.influx_line(&line, precision, now_ms), line),
            };
            if let Outcome::Rejected(r) = outcome {
                out.reject(format!("unable to parse '{}': {}", text.measurement(), r.message()));
            } else {
                out.written += 1;
            }
            self.count(INFLUX, outcome);
        }
        out
    }

    fn influx_line(&self, line: &influx::Line<'_>, precision: Precision, now_ms: i64) -> Outcome {
        let time_ms = match line.timestamp {
            None => now_ms,
            Some(t) => match precision.to_millis(t) {
                Some(ms) => ms,
                None => return Outcome::Rejected(Reject::BadTimestamp),
            },
        };
        let measurement = line.measurement();
        if measurement == "Stacktrace" {
            return self.uber_line(line, time_ms, now_ms);
        }
        let Some(metric) = jvm::metric_name(&measurement) else {
            return Outcome::Ignored("unknown_metric");
        };
        let Some(value) = line.field("value").and_then(|v| v.as_f64()) else {
            return Outcome::Rejected(Reject::MissingValue);
        };
        let source = match self.influx_source(line) {
            Ok(s) => s,
            Err(r) => return Outcome::Rejected(r),
        };
        match metric {
            jvm::Metric::Bounds => return Outcome::Ignored("depth_marker"),
            jvm::Metric::Stack(text) => {
                if let Err(r) = self.add_stack(&source, &jvm::profiler_stack(text), value, time_ms, now_ms) {
                    return Outcome::Rejected(r);
                }
            }
            // A gauge's age is about when it arrived: it expires when the executor goes silent,
            // whatever the agent's clock says.
            jvm::Metric::Gauge { family, label_value } => {
                if let Err(r) = self.set_gauge(&source, &jvm::gauge_value(family, label_value, value, false), now_ms) {
                    return Outcome::Rejected(r);
                }
            }
        }
        Outcome::Accepted
    }

    /// statsd-jvm-profiler's InfluxDB reporter: app from the `prefix` tag (split by the
    /// template) or from the agent's tagMapping tags; `hostname`, `jvmName`, `pid` become
    /// `host`, `jvm`, `pid`.
    fn influx_source(&self, line: &influx::Line<'_>) -> Result<Arc<Source>, Reject> {
        let mut h = Xxh3::new();
        h.update(b"influx\0");
        h.update(line.raw_tags().as_bytes());
        self.store
            .source(h.digest(), || {
                let mut spec = SourceSpec { app: String::new(), labels: Vec::new() };
                let mut mapped: Vec<(String, String)> = Vec::new();
                for (k, v) in line.tags() {
                    match &*k {
                        "prefix" => {
                            let from_prefix = self.split_prefix(&v);
                            spec.app = from_prefix.app;
                            spec.labels.extend(from_prefix.labels);
                        }
                        "hostname" => spec.labels.push(("host".into(), v.into_owned())),
                        "jvmName" => spec.labels.push(("jvm".into(), v.into_owned())),
                        "pid" => spec.labels.push(("pid".into(), v.into_owned())),
                        _ => mapped.push((k.into_owned(), v.into_owned())),
                    }
                }
                if spec.app.is_empty() {
                    spec.app = app_from_mapped_tags(&mapped);
                }
                mapped.retain(|(k, _)| k != "app");
                spec.labels.extend(mapped);
                spec
            })
            .map_err(|_| Reject::AppLimit)
    }

    /// Uber jvm-profiler's `Stacktrace` measurement: `stacktrace` (leaf first, comma separated)
    /// and `count` fields; app from `appId`, else `tag`, else `name`.
    fn uber_line(&self, line: &influx::Line<'_>, time_ms: i64, now_ms: i64) -> Outcome {
        let (mut stack, mut count, mut app_id, mut tag, mut name, mut host, mut state) = (None, None, None, None, None, None, None);
        for (k, v) in line.fields() {
            match (&*k, v) {
                ("stacktrace", FieldValue::Str(s)) => stack = Some(s),
                ("count", v) => count = v.as_f64(),
                ("appId", FieldValue::Str(s)) => app_id = Some(s),
                ("tag", FieldValue::Str(s)) => tag = Some(s),
                ("name", FieldValue::Str(s)) => name = Some(s),
                ("host", FieldValue::Str(s)) => host = Some(s),
                ("threadState", FieldValue::Str(s)) => state = Some(s),
                _ => {}
            }
        }
        let Some(stack) = stack.filter(|s| !s.is_empty()) else {
            return Outcome::Rejected(Reject::MissingStacktrace);
        };
        let Some(count) = count else {
            return Outcome::Rejected(Reject::MissingValue);
        };
        let app = [app_id, tag, name].into_iter().flatten().find(|s| !s.is_empty()).unwrap_or_default();
        let mut h = Xxh3::new();
        for part in [&*app, host.as_deref().unwrap_or(""), state.as_deref().unwrap_or("")] {
            h.update(b"uber\0");
            h.update(part.as_bytes());
        }
        let source = self.store.source(h.digest(), || {
            let mut labels = Vec::new();
            labels.extend(host.as_ref().map(|h| ("host".to_string(), h.to_string())));
            labels.extend(state.as_ref().map(|s| ("thread_state".to_string(), s.to_string())));
            SourceSpec { app: app.to_string(), labels }
        });
        let Ok(source) = source else {
            return Outcome::Rejected(Reject::AppLimit);
        };
        match self.add_stack(&source, &jvm::uber_stack(&stack), count, time_ms, now_ms) {
            Ok(()) => Outcome::Accepted,
            Err(r) => Outcome::Rejected(r),
        }
    }
}

impl WriteOutcome {
    fn reject(&mut self, message: String) {
        self.rejected += 1;
        if self.errors.len() < MAX_ERRORS_SHOWN {
            self.errors.push(message);
        }
    }
}

/// With tagMapping and no `app` tag: one mapped tag's value names the app; several are joined
/// with `.` in tag-name order (the agent sends them sorted).
fn app_from_mapped_tags(mapped: &[(String, String)]) -> String {
    if let Some((_, v)) = mapped.iter().find(|(k, _)| k == "app") {
        return v.clone();
    }
    mapped.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Limits, Query};

    fn ingest(template: Option<&str>) -> Ingest {
        let store =
            Arc::new(Store::new(Limits { max_apps: 5, max_stacks_per_app: 100, ..Limits::default() }, std::time::Duration::from_secs(60)));
        Ingest::new(store, Metrics::new(), template.map(|t| PrefixTemplate::parse(t).expect("template")))
    }

    fn folded(i: &Ingest, app: &str) -> Vec<String> {
        let a = i.store.app(app).unwrap_or_else(|| panic!("no app {app}"));
        let lines = crate::store::folded_lines(&i.store, &a, &Query::default()).expect("profile");
        lines.into_iter().map(|(stack, count)| format!("{stack} {count}")).collect()
    }

    #[test]
    fn statsd_stack_deltas_are_added() {
        let i = ingest(Some("SKIP.app.executor"));
        let d = b"spark.app-42.7.cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12:3|g";
        i.statsd_datagram(d, 1_000);
        i.statsd_datagram(d, 2_000);
        assert_eq!(folded(&i, "app-42"), ["com.example.Main.main:12;java.lang.Thread.sleep:-2 6"]);
        assert_eq!(i.store.app("app-42").expect("app").label_values()["executor"].keys().collect::<Vec<_>>(), ["7"]);
    }

    #[test]
    fn statsd_counts_every_outcome() {
        let i = ingest(None);
        i.statsd_datagram(
            b"p.cpu.trace.a-B-c-1:1|g\np.cpu.trace.6:6|g\nbroken\ngorets:1|c\np.cpu.trace.a-B-c-1:-1|g\np.cpu.trace.a-B-c-1:1|ms",
            0,
        );
        let m = &i.metrics;
        assert_eq!(m.lines_accepted.with_label_values(&["statsd"]).get(), 1);
        assert_eq!(m.lines_ignored.with_label_values(&["statsd", "depth_marker"]).get(), 1);
        assert_eq!(m.lines_ignored.with_label_values(&["statsd", "unknown_metric"]).get(), 1);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "missing_value"]).get(), 1);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "negative_count"]).get(), 1);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "wrong_type"]).get(), 1);
        assert_eq!(folded(&i, "p"), ["a.B.c:1 1"]);
    }

    #[test]
    fn negative_gauge_idiom() {
        let i = ingest(None);
        i.statsd_datagram(b"statsd-jvm-profiler.nonheap.total.max:0|g\nstatsd-jvm-profiler.nonheap.total.max:-1|g", 0);
        let g = i.store.app("statsd-jvm-profiler").expect("app").gauges();
        assert_eq!((g.len(), g[0].value, g[0].family.name, g[0].label_value.as_str()), (1, -1.0, "jvm_memory_bytes_max", "nonheap"));
    }

    #[test]
    fn influx_profiler_lines_with_tag_mapping_and_prefix() {
        let i = ingest(Some("SKIP.app.executor"));
        let body = b"cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12,hostname=worker-1,jvmName=4242@worker-1,pid=4242,spark=sparkapp value=3.0 1500000000123000000\n\
cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12,hostname=worker-1,jvmName=4242@worker-1,pid=4242,spark=sparkapp value=3i 1500000000123000000\n\
heap.total.used,hostname=h,jvmName=1@h,pid=1,prefix=spark.app-9.3 value=123456789.0 1500000010124000000\n";
        let out = i.influx_body(body, Precision::Nanos, 7);
        assert_eq!(out, WriteOutcome { written: 3, rejected: 0, errors: vec![] });
        assert_eq!(folded(&i, "sparkapp"), ["com.example.Main.main:12;java.lang.Thread.sleep:-2 6"]);
        // The tagMapping tag names the app and stays a label.
        let labels = i.store.app("sparkapp").expect("app").label_values();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["host", "jvm", "pid", "spark"]);
        let g = i.store.app("app-9").expect("app-9").gauges();
        assert_eq!((g[0].value, g[0].updated_ms), (123456789.0, 7), "gauges age from arrival");
        assert!(g[0].labels.contains(&("executor".to_string(), "3".to_string())));
    }

    #[test]
    fn influx_partial_write_keeps_good_lines() {
        let i = ingest(None);
        let out = i.influx_body(
            b"cpu.trace.a-B-c-1,prefix=p value=1\ncpu value=invalid\ncpu.trace.a-B-c-1,prefix=p value=-1\nfoo value=1",
            Precision::Nanos,
            0,
        );
        assert_eq!(out.written, 2);
        assert_eq!(
            out.errors,
            ["unable to parse 'cpu value=invalid': invalid boolean", "unable to parse 'cpu.trace.a-B-c-1': stack sample count is negative"]
        );
        assert_eq!(folded(&i, "p"), ["a.B.c:1 1"]);
    }

    #[test]
    fn uber_stacktrace_points() {
        let i = ingest(None);
        let body = br#"Stacktrace,processUuid=3c2e count=3i,endEpoch=1515627003374i,host="machine01",name="24103@machine01",appId="application_1",stacktrace="java.lang.Thread.sleep,com.x.Main.main",threadName="main",threadState="TIMED_WAITING" 1515627003374000000"#;
        assert_eq!(i.influx_body(body, Precision::Nanos, 0).written, 1);
        assert_eq!(folded(&i, "application_1"), ["com.x.Main.main;java.lang.Thread.sleep 3"]);
        let labels = i.store.app("application_1").expect("app").label_values();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["host", "thread_state"]);
    }

    #[test]
    fn precision_conversion() {
        assert_eq!(Precision::from_v1("ms").and_then(|p| p.to_millis(1500000000123)), Some(1500000000123));
        assert_eq!(Precision::from_v1("s").and_then(|p| p.to_millis(1500000000)), Some(1500000000000));
        assert_eq!(Precision::from_v1("n").and_then(|p| p.to_millis(-1)), Some(-1));
        assert_eq!(Precision::from_v1("h").and_then(|p| p.to_millis(i64::MAX)), None);
        assert_eq!(Precision::from_v2("m"), None);
        assert_eq!(Precision::from_v1("x"), None);
    }
}
