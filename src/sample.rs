//! The protocol-neutral vocabulary every input ends in, and the store takes: stacks (frames
//! root first) and gauge readings, both borrowed. Nothing after an input knows which wire a
//! sample came over.

/// How a Prometheus family built from agent gauges is exposed. The discriminants are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FamilyKind {
    Gauge = 0,
    Counter = 1,
    /// The `_count` of a summary whose `_sum` is another family with the same `name`.
    SummaryCount = 2,
    /// The `_sum` of a summary.
    SummarySum = 3,
}

impl FamilyKind {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Gauge,
            1 => Self::Counter,
            2 => Self::SummaryCount,
            3 => Self::SummarySum,
            _ => return None,
        })
    }
}

/// A Prometheus metric family that JVM gauges are exported as.
#[derive(Debug, PartialEq, Eq)]
pub struct GaugeFamily {
    /// Family name as exposed (for summaries, without `_count` / `_sum`).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: FamilyKind,
    /// The label that tells series of this family apart within one JVM (`area`, `pool`, `gc`).
    pub label: Option<&'static str>,
}

/// One gauge reading from an agent, already in Prometheus units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gauge<'a> {
    pub family: &'static GaugeFamily,
    /// Value of `family.label`; empty when the family has no label.
    pub label_value: &'a str,
    pub value: f64,
    /// statsd `+N` / `-N`: add to the current value instead of replacing it.
    pub relative: bool,
}

/// Which engine an engine metric came from; stored with each series (never renumber), and
/// names the family's `# HELP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Origin {
    /// Spark's `StatsdSink`.
    Spark = 1,
    /// Flink's `InfluxdbReporter` or `StatsDReporter`.
    Flink = 2,
}

impl Origin {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Spark,
            2 => Self::Flink,
            _ => return None,
        })
    }

    /// `# HELP` of a family from this engine.
    /// The HELP line of one of its families.
    pub fn help(self, family: &str) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Spark => crate::input::spark::help(family).into(),
            Self::Flink => "Flink metric, named as Flink's PrometheusReporter names it.".into(),
        }
    }
}

/// How an engine's metric family is exposed. Stored (never renumber).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SeriesKind {
    Gauge = 0,
    Counter = 1,
    /// Quantiles (a `quantile` label) and a `_count`, no `_sum` (the engines send none).
    Summary = 2,
}

impl SeriesKind {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Gauge,
            1 => Self::Counter,
            2 => Self::Summary,
            _ => return None,
        })
    }

    /// The `# TYPE` word.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Counter => "counter",
            Self::Summary => "summary",
        }
    }
}

/// One sample line of an engine's metric family as exposed: `<family><suffix>{labels} value`.
/// Engines send absolute values (cumulative counters included), so a reading replaces the last
/// one; a counter that goes down is a reset, as Prometheus expects.
#[derive(Clone, Debug, PartialEq)]
pub struct Series<'a> {
    pub origin: Origin,
    /// Family name, a valid Prometheus metric name.
    pub family: &'a str,
    pub kind: SeriesKind,
    /// `""`, or `_count` for a summary's count.
    pub suffix: &'static str,
    /// Label names (valid, unique) and values, sorted by name.
    pub labels: Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    pub value: f64,
}

/// The percentile statistics Spark's and Flink's histograms send (`p50` … `p999`), and the
/// Prometheus `quantile` label value each becomes.
pub const QUANTILES: &[(&str, &str)] =
    &[("p50", "0.5"), ("p75", "0.75"), ("p95", "0.95"), ("p98", "0.98"), ("p99", "0.99"), ("p999", "0.999")];

/// `[^A-Za-z0-9:_]` → `_`, as Prometheus metric names need (and Flink's reporters write names).
pub fn sanitize_metric_name(name: &str, out: &mut String) {
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }));
}

/// What a stack's count measures: the profile type. Counts of different types are never added
/// together; every query asks for one. The names are those of URLs (`type=`), `/apps` and the
/// page; the discriminants are stored (never renumber).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ProfileType {
    /// Sampled on-CPU: statsd-jvm-profiler, Uber's jvm-profiler, JFR's `jdk.ExecutionSample`,
    /// Flink's on-CPU graph. Samples.
    #[default]
    Cpu = 0,
    /// Sampled whatever the thread does (async-profiler's wall mode, JFR's native method samples,
    /// Flink's full graph). Samples.
    Wall = 1,
    /// Threads waiting, timed waiting or blocked (Flink's off-CPU graph). Samples.
    OffCpu = 2,
    /// Bytes allocated.
    AllocBytes = 3,
    /// Objects allocated.
    AllocObjects = 4,
    /// Nanoseconds blocked on monitors or parked.
    LockNs = 5,
    /// Times blocked on monitors or parked.
    LockCount = 6,
    /// Bytes live on the heap when the profile was taken (pprof's `inuse_space`: Go, Node.js,
    /// Python). Profiles of several moments add up, as in Pyroscope: divide by their number
    /// for the average.
    InuseBytes = 7,
    /// Objects live on the heap when the profile was taken (pprof's `inuse_objects`).
    InuseObjects = 8,
}

/// The unit a profile type counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Samples,
    Bytes,
    Objects,
    Nanoseconds,
    Count,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Samples => "samples",
            Self::Bytes => "bytes",
            Self::Objects => "objects",
            Self::Nanoseconds => "nanoseconds",
            Self::Count => "count",
        }
    }

    /// `value` as a person reads it: `1.23 s`, `45.6 MiB`, `1,234 samples`.
    pub fn format(self, value: u64) -> String {
        match self {
            Self::Bytes => {
                const STEPS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
                let mut v = value as f64;
                let mut step = 0;
                while v >= 1024.0 && step + 1 < STEPS.len() {
                    v /= 1024.0;
                    step += 1;
                }
                if step == 0 {
                    format!("{value} B")
                } else {
                    format!("{} {}", three_digits(v), STEPS[step])
                }
            }
            Self::Nanoseconds => seconds(value),
            Self::Samples | Self::Objects => format!("{} {}", thousands(value), self.name()),
            Self::Count => thousands(value),
        }
    }
}

/// Nanoseconds as a person reads them: `1.23 s`, `45.6 ms`, `812 µs`, `3 ns`.
pub fn seconds(ns: u64) -> String {
    let v = ns as f64;
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{} µs", three_digits(v / 1e3)),
        1_000_000..=999_999_999 => format!("{} ms", three_digits(v / 1e6)),
        _ => format!("{} s", three_digits(v / 1e9)),
    }
}

/// Three significant digits (`1.23`, `45.6`, `812`), more for values of 1,000 and over.
fn three_digits(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl ProfileType {
    pub const ALL: [ProfileType; 9] = [
        Self::Cpu,
        Self::Wall,
        Self::OffCpu,
        Self::AllocBytes,
        Self::AllocObjects,
        Self::LockNs,
        Self::LockCount,
        Self::InuseBytes,
        Self::InuseObjects,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wall => "wall",
            Self::OffCpu => "off_cpu",
            Self::AllocBytes => "alloc_bytes",
            Self::AllocObjects => "alloc_objects",
            Self::LockNs => "lock_ns",
            Self::LockCount => "lock_count",
            Self::InuseBytes => "inuse_bytes",
            Self::InuseObjects => "inuse_objects",
        }
    }

    /// A type by its name; also Flink's graph names (`on_cpu`, `off_cpu`, `full`: its full graph
    /// samples threads whatever they do, which is wall-clock time).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "cpu" | "on_cpu" => Self::Cpu,
            "wall" | "full" => Self::Wall,
            "off_cpu" => Self::OffCpu,
            "alloc_bytes" => Self::AllocBytes,
            "alloc_objects" => Self::AllocObjects,
            "lock_ns" => Self::LockNs,
            "lock_count" => Self::LockCount,
            "inuse_bytes" => Self::InuseBytes,
            "inuse_objects" => Self::InuseObjects,
            _ => return None,
        })
    }

    pub fn unit(self) -> Unit {
        match self {
            Self::Cpu | Self::Wall | Self::OffCpu => Unit::Samples,
            Self::AllocBytes | Self::InuseBytes => Unit::Bytes,
            Self::AllocObjects | Self::InuseObjects => Unit::Objects,
            Self::LockNs => Unit::Nanoseconds,
            Self::LockCount => Unit::Count,
        }
    }

    /// The names `type=` takes, for messages.
    pub fn names() -> String {
        Self::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Display for ProfileType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Calls the sink with each frame of an encoded stack, root first. Frames are lent, not
/// allocated: the store copies only frames it has never seen.
pub type DecodeFn = fn(&str, &mut dyn FnMut(&str));

/// An agent's text encoding of a whole stack (statsd-jvm-profiler's metric names, Uber's
/// comma-separated field).
#[derive(Debug)]
pub struct Encoding {
    /// Tells apart encodings whose texts could coincide; stored (in each stack's identity), so
    /// never reused for another encoding. 0 is [`Stack::Frames`].
    pub id: u8,
    pub decode: DecodeFn,
}

/// A stack as an input hands it to the store: its frames, root first, either still in the
/// agent's encoding (decoded only the first time the store sees the stack) or already split
/// (a path in a tree, a folded line).
#[derive(Clone, Copy, Debug)]
pub enum Stack<'a> {
    Encoded { encoding: &'static Encoding, text: &'a str },
    Frames(&'a [&'a str]),
}

impl Stack<'_> {
    /// What the store knows a stack by: the xxh3 of the encoding id and the text, or of the
    /// frames (each with its length, so that no two frame lists give the same bytes). Stored,
    /// so it must never change. The same frames sent in two encodings are two stacks of the
    /// store; every output merges them.
    pub fn identity(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        match self {
            // The same bytes hashed in one call (the streaming state costs more than the copy
            // into a buffer kept per thread): the same value.
            Stack::Encoded { encoding, text } => {
                thread_local! {
                    static BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
                }
                return BYTES.with_borrow_mut(|bytes| {
                    bytes.clear();
                    bytes.push(encoding.id);
                    bytes.extend_from_slice(text.as_bytes());
                    let hash = xxhash_rust::xxh3::xxh3_64(bytes);
                    if bytes.capacity() > 1 << 16 {
                        *bytes = Vec::new(); // one huge name does not stay
                    }
                    hash
                });
            }
            Stack::Frames(frames) => {
                h.update(&[0]);
                for f in *frames {
                    h.update(&(f.len() as u64).to_le_bytes());
                    h.update(f.as_bytes());
                }
            }
        }
        h.digest()
    }

    /// Call `sink` with each frame, root first.
    pub fn each_frame(&self, sink: &mut dyn FnMut(&str)) {
        match self {
            Stack::Encoded { encoding, text } => (encoding.decode)(text, sink),
            Stack::Frames(frames) => frames.iter().for_each(|f| sink(f)),
        }
    }
}

/// A valid Prometheus label name that is not reserved.
pub fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.starts_with("__")
}

/// `[^A-Za-z0-9_]` → `_`, a leading digit gets a `_` prefix, runs of `-` collapse, reserved
/// `__` prefixes are cut to one `_`.
pub fn escape_label_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    let mut prev_dash = false;
    for c in name.chars() {
        if c == '-' && prev_dash {
            continue;
        }
        prev_dash = c == '-';
        out.push(if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' });
    }
    while out.starts_with("__") {
        out.remove(0);
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identities are stored: hashing in one call must give what the streaming hash of the
    /// same bytes gave when they were stored, at every length (xxh3 changes method at 16, 128
    /// and 240 bytes, and per 1 KB block).
    #[test]
    fn encoded_identity_is_the_stored_hash() {
        fn none(_: &str, _: &mut dyn FnMut(&str)) {}
        static ENCODINGS: [Encoding; 3] =
            [Encoding { id: 0, decode: none }, Encoding { id: 1, decode: none }, Encoding { id: 9, decode: none }];
        let text: String = (0..2_100u32).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
        for encoding in &ENCODINGS {
            let id = encoding.id;
            for len in (0..=2_100).step_by(7).chain([15, 16, 17, 127, 128, 129, 239, 240, 241, 1023, 1024, 1025]) {
                let mut streamed = xxhash_rust::xxh3::Xxh3::new();
                streamed.update(&[id]);
                streamed.update(&text.as_bytes()[..len]);
                assert_eq!(Stack::Encoded { encoding, text: &text[..len] }.identity(), streamed.digest(), "id {id}, {len} bytes");
            }
        }
    }

    #[test]
    fn profile_types_by_name_and_units_as_people_read_them() {
        for t in ProfileType::ALL {
            assert_eq!(ProfileType::from_name(t.name()), Some(t));
        }
        assert_eq!(ProfileType::from_name("on_cpu"), Some(ProfileType::Cpu));
        assert_eq!(ProfileType::from_name("full"), Some(ProfileType::Wall));
        assert_eq!(ProfileType::from_name("alloc"), None);
        assert_eq!(Unit::Bytes.format(512), "512 B");
        assert_eq!(Unit::Bytes.format(47_815_066), "45.6 MiB");
        assert_eq!(Unit::Bytes.format(1536), "1.50 KiB");
        assert_eq!(Unit::Nanoseconds.format(1_234_000_000), "1.23 s");
        assert_eq!(Unit::Nanoseconds.format(45_600_000), "45.6 ms");
        assert_eq!(Unit::Nanoseconds.format(812_000), "812 µs");
        assert_eq!(Unit::Nanoseconds.format(7), "7 ns");
        assert_eq!(Unit::Samples.format(1_234_567), "1,234,567 samples");
        assert_eq!(Unit::Count.format(1_000), "1,000");
    }

    #[test]
    fn escape_label_names_like_statsd_exporter() {
        for (input, want) in [
            ("jvmName", "jvmName"),
            ("0starts_with_digit", "_0starts_with_digit"),
            ("with--doubledash", "with_doubledash"),
            ("with---multiple-dashes", "with_multiple_dashes"),
            ("with.*.multiple", "with___multiple"),
            ("with😱emoji", "with_emoji"),
            ("test.web-server.foo.bar", "test_web_server_foo_bar"),
        ] {
            assert_eq!(escape_label_name(input), want, "{input}");
        }
    }
}
