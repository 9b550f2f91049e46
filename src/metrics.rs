//! Prometheus metrics: stackd's own health in one non-global registry, plus families built at
//! scrape time from the store (per-app totals and the agents' JVM gauges).
//!
//! Every label here is bounded: `protocol` and `reason` are fixed sets, `route` is the matched
//! route pattern, `app` is bounded by `--max-apps`. Stacks never become series.

use std::collections::BTreeMap;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Summary};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

use crate::outcome::{Limit, RequestReject};
use crate::sample::{FamilyKind, SeriesKind};
use crate::store::{GaugeReading, Store};

/// `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// stackd's own counters and histograms.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub udp_datagrams: IntCounter,
    pub udp_processed: IntCounter,
    pub udp_bytes: IntCounter,
    pub udp_errors: IntCounter,
    pub lines_accepted: IntCounterVec,
    pub lines_rejected: IntCounterVec,
    pub lines_ignored: IntCounterVec,
    pub limit_hits: IntCounterVec,
    pub requests_rejected: IntCounterVec,
    pub http_connections: prometheus::IntGauge,
    pub http_accept_errors: IntCounter,
    pub http_requests: IntCounterVec,
    pub render_seconds: HistogramVec,
    pub flush_failures: IntCounter,
    pub flush_seconds: prometheus::Histogram,
    pub render_cache: IntCounterVec,
    pub flink_poll_errors: IntCounterVec,
    pub flink_snapshots: IntCounterVec,
    pub flink_last_success: prometheus::GaugeVec,
    pub flink_profiling_runs: IntCounterVec,
    pub flink_profiling_errors: IntCounterVec,
    pub jfr_chunks: IntCounterVec,
    pub jfr_file_failed: prometheus::IntGaugeVec,
    pub pyroscope_requests: IntCounterVec,
    pub pyroscope_skipped: IntCounterVec,
    pub segments: IntCounterVec,
    pub compaction: IntCounterVec,
    pub object_requests: IntCounterVec,
    pub object_bytes: IntCounterVec,
    pub outbox_backlog: prometheus::IntGauge,
    pub segment_last_upload: prometheus::Gauge,
}

/// A metric of one of stackd's fixed families, registered.
fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, made: prometheus::Result<C>) -> C {
    let c = made.expect("valid metric name");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        // A counter of one label whose every value is present from the start, at 0.
        let counter_of = |name: &str, help: &str, label: &str, values: &[&str]| {
            let c = counter_vec(name, help, &[label]);
            for v in values {
                c.with_label_values(&[v]);
            }
            c
        };
        let render_seconds = HistogramVec::new(
            HistogramOpts::new("stackd_render_duration_seconds", "Time to build and render a flame graph or folded output.")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["format"],
        )
        .expect("valid histogram");
        registry.register(Box::new(render_seconds.clone())).expect("registered once");
        let flush_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new("stackd_store_flush_duration_seconds", "Time to write changes to the embedded store (one durable commit).")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
        )
        .expect("valid histogram");
        registry.register(Box::new(flush_seconds.clone())).expect("registered once");
        let metrics = Metrics {
            flush_failures: counter(
                "stackd_store_flush_failures_total",
                "Flushes to the embedded store that failed (disk full, I/O error); the data stays in memory and is retried.",
            ),
            flush_seconds,
            udp_datagrams: counter("stackd_udp_datagrams_total", "UDP datagrams received."),
            udp_processed: counter(
                "stackd_udp_datagrams_processed_total",
                "UDP datagrams parsed and stored; received minus processed is the queue between them.",
            ),
            udp_bytes: counter("stackd_udp_bytes_total", "UDP payload bytes received."),
            udp_errors: counter("stackd_udp_receive_errors_total", "Errors returned by the UDP receive call."),
            lines_accepted: counter_vec("stackd_lines_accepted_total", "Lines parsed and stored, by protocol.", &["protocol"]),
            lines_rejected: counter_vec(
                "stackd_lines_rejected_total",
                "Lines refused, by protocol and reason; the good lines beside them are kept.",
                &["protocol", "reason"],
            ),
            lines_ignored: counter_vec(
                "stackd_lines_ignored_total",
                "Valid lines that carry nothing stackd keeps (other metrics, depth markers), by protocol and reason.",
                &["protocol", "reason"],
            ),
            limit_hits: counter_vec(
                "stackd_limit_hits_total",
                "Times a configured limit was hit: apps (sample refused), stacks (sample counted under the overflow frame), label_values (sample kept under the overflow label value), series (gauge refused), body (request refused), connections (connection closed at once), header_timeout and idle_timeout (connection closed), renders (request waited too long for a render slot).",
                &["limit"],
            ),
            http_requests: counter_vec("stackd_http_requests_total", "HTTP requests by route and status.", &["route", "status"]),
            requests_rejected: counter_vec(
                "stackd_requests_rejected_total",
                "HTTP requests refused (before their lines were read, or rather than answered in part): too_large, bad_gzip, unsupported_encoding, body_timeout, body_read_error, unauthorized, render_busy, tls_handshake, store_unreadable, bad_document.",
                &["reason"],
            ),
            http_connections: {
                let g = prometheus::IntGauge::new("stackd_http_connections", "HTTP connections open now.").expect("valid metric name");
                registry.register(Box::new(g.clone())).expect("registered once");
                g
            },
            http_accept_errors: counter(
                "stackd_http_accept_errors_total",
                "Errors accepting HTTP connections (such as running out of file descriptors).",
            ),
            render_cache: counter_vec(
                "stackd_render_cache_total",
                "Flame graph requests by how they were answered: hit (a kept render), not_modified (304 to If-None-Match), miss (rendered).",
                &["outcome"],
            ),
            flink_poll_errors: counter_vec(
                "stackd_flink_poll_errors_total",
                "Polls of a Flink JobManager (--flink-rest) that failed, by endpoint and reason: connect, timeout, http_status, too_large, http_error, invalid_response; refused counts snapshots stackd would not store (time outside the retention, app limit).",
                &["endpoint", "reason"],
            ),
            flink_snapshots: counter_vec(
                "stackd_flink_snapshots_total",
                "Flink flame graph snapshots with samples stored, by endpoint (each new endTimestamp of each graph once).",
                &["endpoint"],
            ),
            flink_profiling_runs: counter_vec(
                "stackd_flink_profiling_runs_total",
                "Runs of Flink's profiler (--flink-profiling), by endpoint, mode and outcome: started (by stackd), stored, empty (no samples), failed (Flink says FAILED), unreadable (the file could not be fetched or read), not_stored (its time outside the retention, a limit), unfinished (still running long after its duration).",
                &["endpoint", "mode", "outcome"],
            ),
            flink_profiling_errors: counter_vec(
                "stackd_flink_profiling_errors_total",
                "Profiler requests to a Flink JobManager (--flink-profiling) that did not go through, by endpoint and reason: busy (a run was under way), disabled (rest.profiling.enabled is off), refused (Flink refused the run, e.g. its duration), connect, timeout, http_status, too_large, http_error, invalid_response.",
                &["endpoint", "reason"],
            ),
            flink_last_success: register(
                &registry,
                prometheus::GaugeVec::new(
                    Opts::new("stackd_flink_last_success_timestamp_seconds", "When the last poll of a Flink JobManager went through, Unix seconds."),
                    &["endpoint"],
                ),
            ),
            jfr_chunks: {
                let c = counter_vec(
                    "stackd_jfr_chunks_total",
                    "JFR chunks read, by input (import: POST /import/jfr; dir: --jfr-dir; pyroscope: /ingest?format=jfr) and outcome: stored, incomplete (cut off or still being written), damaged, too_large (--max-jfr-chunk-size). A chunk is stored whole or not at all.",
                    &["input", "outcome"],
                );
                for input in ["import", "dir", "pyroscope"] {
                    for outcome in ["stored", "incomplete", "damaged", "too_large"] {
                        c.with_label_values(&[input, outcome]);
                    }
                }
                c
            },
            jfr_file_failed: register(
                &registry,
                prometheus::IntGaugeVec::new(
                    Opts::new("stackd_jfr_file_failed", "1 for each --jfr-dir file given up (unreadable, damaged, shrunk; the log says why); at most 100 named."),
                    &["file"],
                ),
            ),
            pyroscope_requests: {
                let c = counter_vec(
                    "stackd_pyroscope_requests_total",
                    "Requests of Pyroscope clients, by API (ingest: /ingest; push: /push.v1.PusherService/Push), format (folded, lines, jfr, pprof) and outcome: stored, bad (malformed, nothing stored), too_large, limit (refused by a limit: 429), busy (no import slot: 429).",
                    &["api", "format", "outcome"],
                );
                for (api, formats) in [("ingest", &["folded", "lines", "jfr", "pprof"][..]), ("push", &["pprof"][..])] {
                    for format in formats {
                        for outcome in ["stored", "bad", "too_large", "limit", "busy"] {
                            c.with_label_values(&[api, format, outcome]);
                        }
                    }
                }
                c
            },
            pyroscope_skipped: counter_of(
                "stackd_pyroscope_skipped_total",
                "Values of Pyroscope profiles left out, by reason: sample_type (a pprof sample type stackd has no profile type for, such as goroutine; counted once a profile), negative (a value below zero).",
                "reason",
                &["sample_type", "negative"],
            ),
            segments: counter_of(
                "stackd_segments_total",
                "Segments (--object-store), by outcome. This node's: uploaded (written to the object store), repeated (written before, by an upload that was not known to have finished: kept once), failed (the object store could not be reached or refused; retried), unresolved_counts (counts that could not be named: never expected). Other nodes': imported (their counts added here), damaged (unreadable, left out), import_failed (a round of reading them failed; retried).",
                "outcome",
                &["uploaded", "repeated", "failed", "unresolved_counts", "imported", "damaged", "import_failed"],
            ),
            compaction: counter_of(
                "stackd_compaction_total",
                "Compaction of the object store by this node (--object-store), by outcome: packed (segments of a node merged into a pack), lease_held (a window another node was packing: left to it), repeated (a window merged here and found packed already: work done twice, data kept once), sources_deleted (segments deleted once their pack was older than the grace period), expired (segments and packs deleted by retention), failed (a pass that could not finish; tried again).",
                "outcome",
                &["packed", "lease_held", "repeated", "sources_deleted", "expired", "failed"],
            ),
            object_requests: counter_of(
                "stackd_object_store_requests_total",
                "Requests this node made to the object store (--object-store), by operation: put, get, list, delete.",
                "op",
                &["put", "get", "list", "delete"],
            ),
            object_bytes: counter_of(
                "stackd_object_store_bytes_total",
                "Bytes of object bodies and listings this node sent to and received from the object store (--object-store), by direction.",
                "direction",
                &["sent", "received"],
            ),
            outbox_backlog: register(
                &registry,
                prometheus::IntGauge::new(
                    "stackd_outbox_backlog",
                    "Flushes of this node whose counts are in no segment yet (--object-store): grows while the object store is unreachable.",
                ),
            ),
            segment_last_upload: register(
                &registry,
                prometheus::Gauge::new("stackd_segment_last_upload_timestamp_seconds", "When this node last wrote a segment to the object store, Unix seconds."),
            ),
            render_seconds,
            registry,
        };
        metrics.zero();
        metrics
    }

    /// Every fixed label value of the counters present from the start, at 0: an alert on
    /// `increase(…)` sees the first hit, and a dashboard sees every reason.
    fn zero(&self) {
        use crate::outcome::{Ignored, Reject};
        let parsers: [(&str, Vec<&str>); 2] = [
            ("statsd", crate::protocol::statsd::LineError::ALL.iter().map(|e| e.reason()).collect()),
            ("influx", crate::protocol::influx::ErrorKind::ALL.iter().map(|e| e.reason()).collect()),
        ];
        for (protocol, reasons) in &parsers {
            self.lines_accepted.with_label_values(&[protocol]);
            for reason in reasons.iter().copied().chain(Reject::ALL.iter().map(|r| r.reason())) {
                self.lines_rejected.with_label_values(&[protocol, reason]);
            }
            for why in Ignored::ALL {
                self.lines_ignored.with_label_values(&[protocol, why.reason()]);
            }
        }
        for limit in Limit::ALL {
            self.limit_hits.with_label_values(&[limit.label()]);
        }
        for why in RequestReject::ALL {
            self.requests_rejected.with_label_values(&[why.reason()]);
        }
        for outcome in ["hit", "not_modified", "miss"] {
            self.render_cache.with_label_values(&[outcome]);
        }
    }

    /// The whole exposition: own metrics, per-app totals, the JVM gauges of live executors, and
    /// what only the host knows. Gauges not updated since `gauge_cutoff_ms` (Unix ms) are left
    /// out.
    pub fn render(&self, store: &Store, gauge_cutoff_ms: i64, host: &HostFigures) -> Vec<u8> {
        let mut families = self.registry.gather();
        families.extend(store_families(store, gauge_cutoff_ms));
        // The encoder refuses a family without series (and stops there): a family appears once
        // it has one (no apps yet, no samples per app).
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "encoding /metrics failed; the exposition is cut short");
        }
        let mut out = short_values(out);
        write_engine_families(store, gauge_cutoff_ms, &mut out);
        host.write(&mut out);
        write_build_info(&mut out);
        write_process(&mut out);
        out
    }

    /// A configured limit was hit.
    pub fn limit_hit(&self, limit: Limit) {
        self.limit_hits.with_label_values(&[limit.label()]).inc();
    }

    /// An HTTP request was refused.
    pub fn request_rejected(&self, why: RequestReject) {
        self.requests_rejected.with_label_values(&[why.reason()]).inc();
    }

    /// Total rejected lines, for the periodic aggregate log line.
    pub fn rejected_by_reason(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for mf in self.registry.gather() {
            if mf.name() != "stackd_lines_rejected_total" {
                continue;
            }
            for m in mf.get_metric() {
                let label = |n: &str| m.get_label().iter().find(|l| l.name() == n).map(|l| l.value().to_string()).unwrap_or_default();
                out.insert((label("protocol"), label("reason")), m.get_counter().get_value() as u64);
            }
        }
        out
    }
}

/// Figures only the host knows, read when /metrics is asked for (`None`: not known here).
#[derive(Clone, Copy, Debug, Default)]
pub struct HostFigures {
    /// SO_RCVBUF of the statsd socket, as granted.
    pub udp_recv_buffer: Option<usize>,
    /// Size of the store's file.
    pub store_bytes: Option<u64>,
    /// Datagrams the kernel dropped for the statsd socket.
    pub udp_kernel_drops: Option<u64>,
}

impl HostFigures {
    fn write(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let mut one = |name: &str, help: &str, kind: &str, value: Option<u64>| {
            if let Some(v) = value {
                let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n");
            }
        };
        one(
            "stackd_udp_receive_buffer_bytes",
            "Kernel receive buffer of the statsd socket (SO_RCVBUF as granted).",
            "gauge",
            self.udp_recv_buffer.map(|b| b as u64),
        );
        one("stackd_store_bytes", "Size of the embedded store's file.", "gauge", self.store_bytes);
        one(
            "stackd_udp_kernel_drops_total",
            "Datagrams the kernel dropped because the statsd socket's receive buffer was full.",
            "counter",
            self.udp_kernel_drops,
        );
    }
}

/// `stackd_build_info{version,revision} 1`.
fn write_build_info(out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "# HELP stackd_build_info The stackd build: its version and the revision it was built from.\n# TYPE stackd_build_info gauge\nstackd_build_info{{version=\"{}\",revision=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        env!("STACKD_REVISION").replace(['"', '\\', '\n'], "_")
    );
}

/// The process figures Prometheus' client libraries export under these names (Linux, from
/// /proc): CPU time, resident and virtual memory, open and allowed file descriptors, start time.
fn write_process(out: &mut Vec<u8>) {
    use std::io::Write as _;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command (which may hold spaces), from field 3 on.
    let Some(fields) = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>()) else { return };
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().filter(|t| *t > 0).unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().filter(|p| *p > 0).unwrap_or(4096) as u64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok())));
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).ok();
    let max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok().map(|(soft, _)| soft);
    let mut one = |name: &str, help: &str, kind: &str, value: Option<f64>| {
        if let Some(v) = value {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n");
        }
    };
    let cpu = field(14).zip(field(15)).map(|(user, system)| (user + system) as f64 / ticks);
    one("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", cpu);
    one("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", field(24).map(|p| (p * page) as f64));
    one("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", field(23).map(|b| b as f64));
    one("process_open_fds", "Number of open file descriptors.", "gauge", fds.map(|n| n.saturating_sub(1) as f64));
    one("process_max_fds", "Maximum number of open file descriptors.", "gauge", max_fds.map(|n| n as f64));
    let start = boot.zip(field(22)).map(|(boot, since)| boot as f64 + since as f64 / ticks);
    one("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", start);
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_string());
    mf.set_help(help.to_string());
    mf.set_field_type(kind);
    mf.set_metric(metrics);
    mf
}

fn gauge_metric(labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::from_label(labels);
    m.set_gauge(g);
    m
}

fn store_families(store: &Store, gauge_cutoff_ms: i64) -> Vec<MetricFamily> {
    let apps = store.apps();
    let mut samples = Vec::new();
    let mut typed = Vec::new();
    let mut stacks = Vec::new();
    let mut readings: Vec<(String, GaugeReading)> = Vec::new();
    for app in &apps {
        // What this node ingested: with --object-store, other nodes export their own, and a
        // dashboard sums over nodes (docs/scale-out.md).
        let (types, remote) = app.own_types();
        let total = if remote { types.iter().fold(0u64, |t, ty| t.saturating_add(ty.total)) } else { app.total_samples() };
        let mut c = Counter::default();
        c.set_value(total as f64);
        let mut m = Metric::from_label(vec![label("app", &app.name)]);
        m.set_counter(c);
        samples.push(m);
        for t in types {
            let mut c = Counter::default();
            c.set_value(t.total as f64);
            let mut m = Metric::from_label(vec![label("app", &app.name), label("type", t.profile.name()), label("unit", t.unit.name())]);
            m.set_counter(c);
            typed.push(m);
        }
        stacks.push(gauge_metric(vec![label("app", &app.name)], app.unique_stacks() as f64));
        readings.extend(app.gauges().into_iter().filter(|g| g.updated_ms >= gauge_cutoff_ms).map(|g| (app.name.to_string(), g)));
    }
    let mut out = vec![
        family("stackd_apps", "Apps with data in memory.", MetricType::GAUGE, vec![gauge_metric(vec![], apps.len() as f64)]),
        family(
            "stackd_samples_total",
            "Stack counts stored, per app, all profile types added (samples, bytes, nanoseconds): a volume; stackd_profile_total has each type in its unit.",
            MetricType::COUNTER,
            samples,
        ),
        family("stackd_profile_total", "What the stored stacks of each profile type add up to, per app, in the type's unit.", MetricType::COUNTER, typed),
        family("stackd_unique_stacks", "Distinct stacks kept, per app.", MetricType::GAUGE, stacks),
    ];
    out.extend(jvm_families(readings));
    out
}

/// Series labels of a reading: `app`, the origin's labels, then the family's own label.
fn series_labels(app: &str, r: &GaugeReading) -> Vec<LabelPair> {
    let own = r.family.label;
    let mut labels = vec![label("app", app)];
    for (k, v) in &r.labels {
        // An origin label may not shadow `app` or the family's own label.
        if k == "app" || Some(k.as_str()) == own {
            labels.push(label(&format!("exported_{k}"), v));
        } else {
            labels.push(label(k, v));
        }
    }
    if let Some(name) = own {
        labels.push(label(name, &r.label_value));
    }
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    labels
}

/// One engine family being written: its type, help, and each series' line after the family
/// name (suffix, labels, value) with its suffix to sort by.
struct EngineFamily {
    kind: SeriesKind,
    help: std::borrow::Cow<'static, str>,
    lines: Vec<(&'static str, Vec<u8>)>,
}

/// The engines' own metrics (Spark, Flink), written directly: their summaries have quantiles
/// and a `_count` but no `_sum`, which the encoder cannot express. A family is typed by its
/// first series; a series of the same name with another type is left out.
fn write_engine_families(store: &Store, cutoff_ms: i64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Per family: its type and help, and each series' line after the family name (suffix,
    // labels, value), written once and sorted by suffix and then text.
    let mut families: std::collections::HashMap<String, EngineFamily, ahash::RandomState> = std::collections::HashMap::default();
    for app in store.apps() {
        app.each_series(|r| {
            if r.updated_ms < cutoff_ms {
                return;
            }
            let entry = match families.get_mut(r.family) {
                Some(e) => e,
                None => families.entry(r.family.to_string()).or_insert_with(|| EngineFamily {
                    kind: r.kind,
                    help: r.origin.help(r.family),
                    lines: Vec::new(),
                }),
            };
            if entry.kind != r.kind {
                return;
            }
            let mut line = Vec::with_capacity(16 + r.labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>());
            line.extend_from_slice(r.suffix.as_bytes());
            if !r.labels.is_empty() {
                line.push(b'{');
                for (i, (k, v)) in r.labels.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    line.extend_from_slice(k.as_bytes());
                    line.extend_from_slice(b"=\"");
                    escape_label_value(v, &mut line);
                    line.push(b'"');
                }
                line.push(b'}');
            }
            let _ = writeln!(line, " {}", PromValue(r.value));
            entry.lines.push((r.suffix, line));
        });
    }
    let mut families: Vec<_> = families.into_iter().collect();
    families.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, EngineFamily { kind, help, mut lines }) in families {
        lines.sort_unstable();
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {}\n", kind.type_name());
        for (_, line) in lines {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&line);
        }
    }
}

/// A label value in the text format: `\`, `"` and line feeds escaped.
fn escape_label_value(v: &str, out: &mut Vec<u8>) {
    for b in v.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// A sample value as the text format writes it (`+Inf`, `-Inf`, `NaN`, else the shortest
/// decimal that reads back as the same f64, with an exponent when it is very large or small:
/// `1e308`, never 309 digits).
struct PromValue(f64);

impl std::fmt::Display for PromValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v if v != 0.0 && !(1e-5..1e16).contains(&v.abs()) => write!(f, "{v:e}"),
            v => write!(f, "{v}"),
        }
    }
}

/// The encoder writes every value in full (`1e308` as 309 digits): sample lines whose value is
/// longer than any [`PromValue`] are written again with it. Borrows nothing, costs one scan.
fn short_values(out: Vec<u8>) -> Vec<u8> {
    const LONGEST: usize = 24;
    let long = |line: &[u8]| !line.starts_with(b"#") && line.iter().rev().position(|&b| b == b' ').is_some_and(|n| n > LONGEST);
    if !out.split(|&b| b == b'\n').any(long) {
        return out;
    }
    let mut fixed = Vec::with_capacity(out.len());
    for line in out.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let value = body.iter().rposition(|&b| b == b' ').map(|at| (at, &body[at + 1..]));
        match value.and_then(|(at, v)| Some((at, std::str::from_utf8(v).ok()?.parse::<f64>().ok()?))) {
            Some((at, v)) if long(body) => {
                fixed.extend_from_slice(&body[..=at]);
                fixed.extend_from_slice(PromValue(v).to_string().as_bytes());
                fixed.push(b'\n');
            }
            _ => fixed.extend_from_slice(line),
        }
    }
    fixed
}

fn jvm_families(readings: Vec<(String, GaugeReading)>) -> Vec<MetricFamily> {
    // name → (help, type, series key → metric)
    let mut families: BTreeMap<&'static str, (&'static str, MetricType, BTreeMap<String, Metric>)> = BTreeMap::new();
    for (app, r) in readings {
        let labels = series_labels(&app, &r);
        let key = labels.iter().map(|l| format!("{}={}\u{0}", l.name(), l.value())).collect::<String>();
        let kind = match r.family.kind {
            FamilyKind::Gauge => MetricType::GAUGE,
            FamilyKind::Counter => MetricType::COUNTER,
            FamilyKind::SummaryCount | FamilyKind::SummarySum => MetricType::SUMMARY,
        };
        let entry = families.entry(r.family.name).or_insert_with(|| (r.family.help, kind, BTreeMap::new()));
        let metric = entry.2.entry(key).or_insert_with(|| Metric::from_label(labels));
        match r.family.kind {
            FamilyKind::Gauge => {
                let mut g = Gauge::default();
                g.set_value(r.value);
                metric.set_gauge(g);
            }
            FamilyKind::Counter => {
                let mut c = Counter::default();
                c.set_value(r.value);
                metric.set_counter(c);
            }
            FamilyKind::SummaryCount => {
                let mut s = metric.get_summary().clone();
                s.set_sample_count(r.value.max(0.0) as u64);
                metric.set_summary(s);
            }
            FamilyKind::SummarySum => {
                let mut s: Summary = metric.get_summary().clone();
                s.set_sample_sum(r.value);
                metric.set_summary(s);
            }
        }
    }
    families.into_iter().map(|(name, (help, kind, metrics))| family(name, help, kind, metrics.into_values().collect())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::profiler::names as jvm;
    use crate::store::{Limits, SourceSpec};

    #[test]
    fn an_empty_store_still_exposes_every_own_metric() {
        let store = Store::new(Limits::default(), std::time::Duration::from_secs(60));
        let text = String::from_utf8(Metrics::new().render(&store, 0, &HostFigures::default())).expect("utf-8");
        // Families after the (empty) per-app ones in name order were once cut off.
        for want in ["stackd_apps 0\n", "stackd_udp_datagrams_total 0\n", "stackd_store_flush_failures_total 0\n"] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("stackd_samples_total"), "no family without series");
    }

    #[test]
    fn jvm_gauges_render_as_java_client_families() {
        let store = Store::new(Limits { max_apps: 10, max_stacks_per_app: 10, ..Limits::default() }, std::time::Duration::from_secs(60));
        let src = store.source(1, || SourceSpec::new("app-42", vec![("executor".into(), "7".into())])).expect("source");
        for (name, raw) in
            [("heap.total.used", 123456789.0), ("gc.PS_Scavenge.count", 17.0), ("gc.PS_Scavenge.time", 1500.0), ("cpu.jvm", 12.5)]
        {
            let Some(jvm::Metric::Gauge { family, label_value }) = jvm::metric_name(name) else { panic!("{name}") };
            store.set_gauge(&src, &jvm::gauge_value(family, label_value, raw, false), 1_000).expect("under the series limit");
        }
        let text = String::from_utf8(Metrics::new().render(&store, 0, &HostFigures::default())).expect("utf-8");
        for want in [
            "jvm_memory_bytes_used{app=\"app-42\",area=\"heap\",executor=\"7\"} 123456789\n",
            "# TYPE jvm_gc_collection_seconds summary\n",
            "jvm_gc_collection_seconds_sum{app=\"app-42\",executor=\"7\",gc=\"PS_Scavenge\"} 1.5\n",
            "jvm_gc_collection_seconds_count{app=\"app-42\",executor=\"7\",gc=\"PS_Scavenge\"} 17\n",
            "jvm_cpu_load_ratio{app=\"app-42\",executor=\"7\",scope=\"process\"} 0.125\n",
            "stackd_apps 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // Expired gauges are left out.
        let text = String::from_utf8(Metrics::new().render(&store, 2_000, &HostFigures::default())).expect("utf-8");
        assert!(!text.contains("jvm_memory_bytes_used{"), "{text}");
    }

    #[test]
    fn huge_and_tiny_values_are_written_with_an_exponent() {
        let shown: Vec<String> =
            [1e308, -1e308, 1e16, 123456789.0, 0.125, 1e-7, 0.0, f64::NAN].iter().map(|v| PromValue(*v).to_string()).collect();
        assert_eq!(shown, ["1e308", "-1e308", "1e16", "123456789", "0.125", "1e-7", "0", "NaN"]);
        let store = Store::new(Limits::default(), std::time::Duration::from_secs(60));
        let src = store.source(1, || SourceSpec::new("a", vec![])).expect("source");
        let Some(jvm::Metric::Gauge { family, label_value }) = jvm::metric_name("heap.total.used") else { panic!("name") };
        store.set_gauge(&src, &jvm::gauge_value(family, label_value, 1e308, false), 1_000).expect("under the series limit");
        let text = String::from_utf8(Metrics::new().render(&store, 0, &HostFigures::default())).expect("utf-8");
        assert!(text.contains("jvm_memory_bytes_used{app=\"a\",area=\"heap\"} 1e308\n"), "{text}");
        assert!(text.lines().filter(|l| !l.starts_with('#')).all(|l| l.len() < 200), "no 309-digit value");
    }
}
