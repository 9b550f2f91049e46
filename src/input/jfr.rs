//! JFR recordings (the JDK's Flight Recorder, async-profiler, Spark 4's profiler): each chunk's
//! sample events become stack counts of their profile type, in the time bucket of each event.
//!
//! | event | profile type | value |
//! |---|---|---|
//! | `jdk.ExecutionSample` | `cpu` (`wall` when async-profiler ran with `event=wall`) | 1 a sample |
//! | `profiler.WallClockSample` | `wall` | its `samples` |
//! | `jdk.NativeMethodSample` | `wall` | 1 a sample |
//! | `jdk.ObjectAllocationSample` | `alloc_bytes`, `alloc_objects` | `weight`, 1 |
//! | `jdk.ObjectAllocationInNewTLAB` / `…OutsideTLAB` | `alloc_bytes`, `alloc_objects` | `tlabSize` / `allocationSize`, 1 |
//! | `jdk.JavaMonitorEnter`, `jdk.ThreadPark` | `lock_ns`, `lock_count` | `duration` in ns, 1 |
//!
//! A chunk with `jdk.ObjectAllocationSample` events takes its allocations from those alone (the
//! JDK samples the same allocations its TLAB events report: both would count them twice).
//!
//! Frames read as everywhere else in stackd, `package.Class.method:line` as Java prints a stack
//! (a native Java method's line is `-2`, a hidden class is `Name/0x…`); async-profiler's native
//! and JVM frames are their symbol (`_[k]` after a kernel one). An allocation's class is the
//! leaf frame; a stack the recorder cut (`truncated`) starts with [`TRUNCATED_FRAME`].
//!
//! A chunk is read whole before anything of it is stored: a damaged chunk stores nothing.

use std::collections::HashMap;

use crate::ingest::Writer;
use crate::outcome::Reject;
use crate::protocol::jfr::{Chunk, Error, Frame, Kind};
use crate::sample::{ProfileType, Stack};
use crate::store::{Labels, SourceSpec};

/// The root frame of a stack the recorder cut at its stack depth (`stackdepth=`, 64 by
/// default in the JDK).
pub const TRUNCATED_FRAME: &str = "[truncated stack]";

/// The one frame of a sample the recorder took without a stack.
pub const NO_STACK_FRAME: &str = "[no stack]";

/// Where a recording's samples go: an app and labels (each type a label set of its own), and
/// the labels of each context id (the Pyroscope Java agent's `labels` snapshot; samples of a
/// context not in it, or of none, get `labels` alone).
#[derive(Clone, Debug)]
pub struct Target {
    pub app: String,
    pub labels: Labels,
    /// Context id → the whole label set of its samples (`labels` and the context's own).
    pub contexts: HashMap<u64, Labels>,
}

impl Target {
    pub fn new(app: String, labels: Labels) -> Self {
        Target { app, labels, contexts: HashMap::new() }
    }

    /// The label set of a sample of `context`.
    fn labels_of(&self, context: u64) -> &Labels {
        self.contexts.get(&context).unwrap_or(&self.labels)
    }

    fn origin(&self, profile: ProfileType, period_ns: Option<u64>, context: u64) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(b"jfr\0");
        h.update(self.app.as_bytes());
        for (k, v) in self.labels_of(context) {
            for part in [k, v] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        h.update(&[profile as u8]);
        if let Some(p) = period_ns {
            h.update(&p.to_le_bytes());
        }
        h.digest()
    }
}

/// What the chunks of one file said that later chunks need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileState {
    /// async-profiler ran in wall mode: its execution samples are wall-clock samples.
    pub wall: bool,
    /// The sampling period of execution samples (the JDK's `period` of `jdk.ExecutionSample`,
    /// async-profiler's `interval` when one was given), ns.
    #[serde(default)]
    pub execution_period_ns: Option<u64>,
    /// The same of native method samples.
    #[serde(default)]
    pub native_period_ns: Option<u64>,
}

/// A recording setting's duration (`10 ms`, `20 ms`, `1 s`), in ns; `None` for anything else
/// (`everyChunk`, `0`).
fn setting_ns(value: &str) -> Option<u64> {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    humantime::parse_duration(&compact).ok().and_then(|d| u64::try_from(d.as_nanos()).ok()).filter(|ns| *ns > 0)
}

/// What was stored of one type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TypeStored {
    /// In the type's unit.
    pub total: u64,
    /// Events of this type.
    pub events: u64,
    /// Refused (older than the retention, ahead of the clock, a limit): in the type's unit.
    pub refused: u64,
    /// Samples stored × their sampling period, for the samples whose period is known.
    pub time_ns: u64,
    /// Samples stored whose period is not known.
    pub untimed: u64,
}

/// What was stored of one or more chunks, per profile type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub types: [TypeStored; ProfileType::ALL.len()],
    /// Distinct stacks per (type, bucket), summed: what was handed to the store.
    pub stacks: usize,
    /// Unix ms of the first and last sample event.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Why some samples were refused, the first reason.
    pub refused: Option<Reject>,
}

impl Stored {
    pub fn add(&mut self, other: &Stored) {
        for (a, b) in self.types.iter_mut().zip(&other.types) {
            a.total = a.total.saturating_add(b.total);
            a.events += b.events;
            a.refused = a.refused.saturating_add(b.refused);
            a.time_ns = a.time_ns.saturating_add(b.time_ns);
            a.untimed = a.untimed.saturating_add(b.untimed);
        }
        self.stacks += other.stacks;
        self.first_ms = self.first_ms.into_iter().chain(other.first_ms).min();
        self.last_ms = self.last_ms.into_iter().chain(other.last_ms).max();
        self.refused = self.refused.or(other.refused);
    }
}

/// What an aggregate of a chunk's events is worth in one profile type.
struct Entry {
    bucket: i64,
    profile: ProfileType,
    /// The sampling period of its samples, when the recording says it.
    period_ns: Option<u64>,
    /// The stack and (for allocations) the class keys.
    stack: u64,
    class: u64,
    /// The context id of its samples (0: none).
    context: u64,
    /// In the type's unit.
    value: u64,
    events: u64,
}

/// Aggregated events of one chunk: (bucket, kind, stack key, class key, context) → (events,
/// weight).
type Aggregate = HashMap<(i64, Kind, u64, u64, u64), (u64, u64), ahash::RandomState>;

/// Read one chunk and store its samples in the run `w` (each type under its own source). The
/// chunk is read whole first: an error stores nothing.
pub fn store_chunk(w: &mut Writer<'_>, target: &Target, chunk: &Chunk<'_>, state: &mut FileState, now_ms: i64) -> Result<Stored, Error> {
    prepare(w.bucket_ms(), chunk, state)?.store(w, target, chunk, now_ms)
}

/// A chunk read whole and checked (every sample's stack named once), ready to store.
pub struct Prepared {
    entries: Vec<Entry>,
    names: Names,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("entries", &self.entries.len()).finish()
    }
}

/// Read one chunk whole and check it, storing nothing: what [`Prepared::store`] then stores
/// (several chunks can be prepared first, so that a damaged one stores none of them).
pub fn prepare(bucket_ms: i64, chunk: &Chunk<'_>, state: &mut FileState) -> Result<Prepared, Error> {
    let mut agg = Aggregate::default();
    let mut has_allocation_samples = false;
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    chunk.events(|e| {
        if e.kind == Kind::Setting {
            if let Some((name, value)) = &e.setting {
                match &**name {
                    "event" => state.wall = value == "wall",
                    // The JDK: the period of each event type (`id` names it).
                    "period" if chunk.is_event_type(e.weight, "jdk.ExecutionSample") => state.execution_period_ns = setting_ns(value),
                    "period" if chunk.is_event_type(e.weight, "jdk.NativeMethodSample") => state.native_period_ns = setting_ns(value),
                    // async-profiler: its sampling interval in ns (0: its default, not said; a
                    // period known otherwise, such as a Pyroscope agent's sampleRate, stays).
                    "interval" => {
                        if let Some(ns) = value.parse().ok().filter(|ns: &u64| *ns > 0) {
                            state.execution_period_ns = Some(ns);
                        }
                    }
                    _ => {}
                }
            }
            return;
        }
        has_allocation_samples |= e.kind == Kind::AllocationSample;
        let ms = chunk.unix_ms(e.ticks);
        (first, last) = (first.min(ms), last.max(ms));
        let class =
            if matches!(e.kind, Kind::AllocationSample | Kind::AllocationInNewTlab | Kind::AllocationOutsideTlab) { e.class } else { 0 };
        let cell = agg.entry((ms.div_euclid(bucket_ms), e.kind, e.stack, class, e.context)).or_default();
        cell.0 += 1;
        cell.1 = cell.1.saturating_add(e.weight);
    })?;
    // What each aggregate is worth in each type (and at which sampling period).
    let mut entries: Vec<Entry> = Vec::with_capacity(agg.len());
    for ((bucket, kind, stack, class, context), (events, weight)) in agg {
        let entry = |profile, period_ns, value| Entry { bucket, profile, period_ns, stack, class, context, value, events };
        let mut put = |t: ProfileType, value: u64| entries.push(entry(t, None, value));
        match kind {
            Kind::Execution => {
                let t = if state.wall { ProfileType::Wall } else { ProfileType::Cpu };
                entries.push(entry(t, state.execution_period_ns, events));
            }
            Kind::NativeMethod => entries.push(entry(ProfileType::Wall, state.native_period_ns, events)),
            Kind::WallClock => put(ProfileType::Wall, weight),
            Kind::AllocationSample => {
                put(ProfileType::AllocBytes, weight);
                put(ProfileType::AllocObjects, events);
            }
            Kind::AllocationInNewTlab | Kind::AllocationOutsideTlab if !has_allocation_samples => {
                put(ProfileType::AllocBytes, weight);
                put(ProfileType::AllocObjects, events);
            }
            Kind::MonitorEnter | Kind::ThreadPark => {
                put(ProfileType::LockNs, chunk.ticks_to_ns(weight));
                put(ProfileType::LockCount, events);
            }
            _ => {}
        }
    }
    // In bucket order (a run holds one bucket at a time).
    entries.sort_unstable_by_key(|e| (e.bucket, e.profile as u8, e.period_ns, e.context, e.stack, e.class));
    // Every distinct stack read once before anything is stored (a damaged pool refuses the
    // chunk whole), and again as it is stored: no stack's names are held beyond its turn, so a
    // chunk of a million distinct stacks costs its methods' names, not its stacks'.
    let mut names = Names::default();
    let mut frames = FrameText::default();
    let mut checked: std::collections::HashSet<(u64, u64), ahash::RandomState> = Default::default();
    for e in &entries {
        if checked.insert((e.stack, e.class)) {
            names.stack(chunk, e.stack, e.class, &mut frames)?;
        }
    }
    drop(checked);
    let (first_ms, last_ms) = if first <= last { (Some(first), Some(last)) } else { (None, None) };
    Ok(Prepared { entries, names, first_ms, last_ms })
}

impl Prepared {
    /// Unix ms of its first and last sample event.
    pub fn span(&self) -> (Option<i64>, Option<i64>) {
        (self.first_ms, self.last_ms)
    }

    /// Store a prepared chunk in the run `w`, its samples going to `target` (each type, period
    /// and context under its own source).
    pub fn store(self, w: &mut Writer<'_>, target: &Target, chunk: &Chunk<'_>, now_ms: i64) -> Result<Stored, Error> {
        let Prepared { entries, mut names, first_ms, last_ms } = self;
        let bucket_ms = w.bucket_ms();
        let mut frames = FrameText::default();
        let mut stored = Stored { stacks: entries.len(), first_ms, last_ms, ..Stored::default() };
        type SourceKey = (ProfileType, Option<u64>, u64);
        let mut sources: HashMap<SourceKey, Result<crate::store::SourceId, Reject>, ahash::RandomState> = HashMap::default();
        for Entry { bucket, profile: t, period_ns, stack, class, context, value, events } in entries {
            let slot = &mut stored.types[t as usize];
            slot.events += events;
            let source = *sources.entry((t, period_ns, context)).or_insert_with(|| {
                w.source(target.origin(t, period_ns, context), || SourceSpec {
                    app: target.app.clone(),
                    labels: target.labels_of(context).clone(),
                    profile: t,
                    period_ns,
                    node: None,
                })
            });
            names.stack(chunk, stack, class, &mut frames)?;
            let refs: Vec<&str> = frames.each().collect();
            let result = source.and_then(|id| w.add_count(id, &Stack::Frames(&refs), value, bucket * bucket_ms, now_ms));
            match result {
                Ok(()) => {
                    slot.total = slot.total.saturating_add(value);
                    match period_ns {
                        Some(p) => slot.time_ns = slot.time_ns.saturating_add(value.saturating_mul(p)),
                        None => slot.untimed = slot.untimed.saturating_add(value),
                    }
                }
                Err(r) => {
                    slot.refused = slot.refused.saturating_add(value);
                    stored.refused = stored.refused.or(Some(r));
                }
            }
        }
        Ok(stored)
    }
}

/// Why a stream of chunks stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Jfr(#[from] Error),
    #[error("the chunk is {size} bytes, over the {max} bytes stackd reads at once (--max-jfr-chunk-size)")]
    TooLarge { size: u64, max: usize },
    #[error("reading failed: {0}")]
    Read(String),
}

impl StreamError {
    /// The bounded label of `stackd_jfr_chunks_total{outcome}`.
    pub fn outcome(&self) -> &'static str {
        match self {
            StreamError::Jfr(Error::Incomplete { .. }) | StreamError::Read(_) => "incomplete",
            StreamError::TooLarge { .. } => "too_large",
            StreamError::Jfr(_) => "damaged",
        }
    }
}

/// Read `r` to its end one chunk at a time (never more than one chunk in memory, at most
/// `max_chunk` bytes), calling `each` with every whole chunk's bytes in turn. Returns how many
/// chunks went through, and where and why it stopped early: a chunk cut off, damaged, too
/// large, or refused by `each`.
pub fn each_chunk(
    r: &mut dyn std::io::Read,
    max_chunk: usize,
    mut each: impl FnMut(&[u8]) -> Result<(), Error>,
) -> (usize, Option<(u64, StreamError)>) {
    use std::io::Read;
    let mut buf = Vec::new();
    let (mut done, mut offset) = (0usize, 0u64);
    loop {
        buf.clear();
        match (&mut *r).take(crate::protocol::jfr::HEADER_SIZE as u64).read_to_end(&mut buf) {
            Ok(0) => return (done, None),
            Ok(_) => {}
            Err(e) => return (done, Some((offset, StreamError::Read(e.to_string())))),
        }
        let header = match crate::protocol::jfr::header(&buf) {
            Ok(h) => h,
            Err(e) => return (done, Some((offset, e.into()))),
        };
        if header.size > max_chunk as u64 {
            return (done, Some((offset, StreamError::TooLarge { size: header.size, max: max_chunk })));
        }
        // Grown as the bytes arrive: a header that lies about its size costs nothing.
        let rest = header.size - buf.len() as u64;
        if let Err(e) = (&mut *r).take(rest).read_to_end(&mut buf) {
            return (done, Some((offset, StreamError::Read(e.to_string()))));
        }
        if (buf.len() as u64) < header.size {
            return (done, Some((offset, Error::Incomplete { need: header.size, have: buf.len() as u64 }.into())));
        }
        if let Err(e) = each(&buf) {
            return (done, Some((offset, e.into())));
        }
        done += 1;
        offset += header.size;
        if buf.capacity() > 1 << 24 {
            buf = Vec::new(); // a large chunk's buffer does not stay for the small ones after it
        }
    }
}

/// Frame names of one chunk, each method named once.
#[derive(Default)]
struct Names {
    methods: HashMap<(u64, u64), Option<(String, Style)>, ahash::RandomState>,
    classes: HashMap<u64, Option<String>, ahash::RandomState>,
    frames: Vec<Frame>,
}

/// One stack's frame names, in one reused buffer.
#[derive(Default)]
struct FrameText {
    text: String,
    ends: Vec<usize>,
}

impl FrameText {
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    fn push(&mut self, frame: impl std::fmt::Display) {
        use std::fmt::Write as _;
        let _ = write!(self.text, "{frame}");
        self.ends.push(self.text.len());
    }

    fn each(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(a, b)| &self.text[a..b])
    }
}

impl Names {
    /// A stack's frames into `out`, root first, with the allocated class as its leaf when
    /// `class` is one.
    fn stack(&mut self, chunk: &Chunk<'_>, key: u64, class: u64, out: &mut FrameText) -> Result<(), Error> {
        out.clear();
        let truncated = if key == 0 { None } else { chunk.stack(key, &mut self.frames)? };
        match truncated {
            None => out.push(NO_STACK_FRAME),
            Some(truncated) => {
                if truncated {
                    out.push(TRUNCATED_FRAME);
                }
                let frames = std::mem::take(&mut self.frames);
                for f in frames.iter().rev() {
                    self.frame(chunk, f, out)?;
                }
                self.frames = frames;
            }
        }
        if class != 0 {
            if let Some(name) = self.class(chunk, class)? {
                out.push(name);
            }
        }
        Ok(())
    }

    /// An allocated class's name, read once per chunk.
    fn class(&mut self, chunk: &Chunk<'_>, key: u64) -> Result<Option<&str>, Error> {
        if let std::collections::hash_map::Entry::Vacant(v) = self.classes.entry(key) {
            v.insert(chunk.class_name(key)?);
        }
        Ok(self.classes[&key].as_deref())
    }

    fn frame(&mut self, chunk: &Chunk<'_>, f: &Frame, out: &mut FrameText) -> Result<(), Error> {
        if let std::collections::hash_map::Entry::Vacant(v) = self.methods.entry((f.method, f.kind)) {
            let named = match chunk.method(f.method)? {
                None => None,
                Some(m) => Some(match &*chunk.frame_type(f.kind)? {
                    // async-profiler's frames outside Java: the symbol (its "class" is the
                    // library).
                    "C++" => (m.name, Style::Symbol),
                    "Kernel" => (format!("{}_[k]", m.name), Style::Symbol),
                    "Native" if m.class.is_empty() || m.class.contains(".so") || m.class.starts_with('[') => (m.name, Style::Symbol),
                    _ if m.class.is_empty() => (m.name, Style::Symbol),
                    _ if m.native => (format!("{}.{}", m.class, m.name), Style::NativeJava),
                    _ => (format!("{}.{}", m.class, m.name), Style::Java),
                }),
            };
            v.insert(named);
        }
        match &self.methods[&(f.method, f.kind)] {
            None => out.push(format_args!("[unknown method {}]", f.method)),
            Some((name, Style::Symbol)) => out.push(name),
            Some((name, Style::NativeJava)) => out.push(format_args!("{name}:-2")),
            Some((name, Style::Java)) => out.push(format_args!("{name}:{}", f.line)),
        }
        Ok(())
    }
}

/// How a method's frames are written.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// `Class.method:line`.
    Java,
    /// A native Java method: `Class.method:-2`, as Java prints it.
    NativeJava,
    /// A native or JVM symbol, no line.
    Symbol,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::ingest::Ingest;
    use crate::metrics::Metrics;
    use crate::store::{Limits, Query, Store};

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jfr").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Import every chunk of a fixture into a fresh store; per type, its folded stacks.
    fn import(name: &str) -> (BTreeMap<String, BTreeMap<String, u64>>, Stored) {
        let store = Arc::new(Store::new(Limits { max_stacks_per_app: 1_000_000, ..Limits::default() }, std::time::Duration::from_secs(60)));
        let ingest = Ingest::new(Arc::clone(&store), Metrics::new());
        let bytes = fixture(&format!("{name}.jfr"));
        let target = Target::new("app".into(), vec![("executor".into(), "1".into())]);
        let (mut at, mut state, mut total) = (0, FileState::default(), Stored::default());
        let mut w = ingest.writer(None);
        while at < bytes.len() {
            let chunk = Chunk::parse(&bytes[at..]).expect("a whole chunk");
            at += chunk.header.size as usize;
            total.add(&store_chunk(&mut w, &target, &chunk, &mut state, crate::now_ms()).expect("stored"));
        }
        drop(w);
        let app = store.app("app").expect("the app");
        let mut out = BTreeMap::new();
        for t in app.types() {
            let profile = store.query(&app, &Query { profile: t.profile, ..Query::default() }).expect("readable").expect("some");
            let folded: BTreeMap<String, u64> = store.resolve(&profile).into_iter().map(|(f, c)| (f.join(";"), c)).collect();
            assert_eq!(folded.values().sum::<u64>(), t.total, "{name} {}: the type's total is its stacks'", t.profile);
            out.insert(t.profile.name().to_string(), folded);
        }
        (out, total)
    }

    /// Exactly what the JDK's `jfr print` reads from the same file (tests/fixtures/jfr/jfr_expected.py).
    fn check(name: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
        let expected: BTreeMap<String, BTreeMap<String, u64>> =
            serde_json::from_slice(&fixture(&format!("{name}.expected.json"))).expect("expected json");
        let (got, stored) = import(name);
        assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{name}: the types");
        for (t, stacks) in &expected {
            let g = &got[t];
            let missing: Vec<_> = stacks.iter().filter(|(s, c)| g.get(*s) != Some(c)).take(3).collect();
            assert!(
                missing.is_empty(),
                "{name} {t}: {} stacks, {} expected; differing: {missing:?} got {:?}",
                g.len(),
                stacks.len(),
                missing.iter().map(|(s, _)| g.get(*s)).collect::<Vec<_>>()
            );
            assert_eq!(g.len(), stacks.len(), "{name} {t}: no other stacks");
            let t = ProfileType::from_name(t).expect("a type");
            assert_eq!(stored.types[t as usize].total, stacks.values().sum::<u64>(), "{name} {t}: what the import says it stored");
        }
        expected
    }

    #[test]
    fn jdk_recording_as_jfr_print_reads_it() {
        let e = check("jdk-profile");
        assert!(["cpu", "wall", "alloc_bytes", "alloc_objects"].iter().all(|t| e.contains_key(*t)), "{:?}", e.keys());
    }

    /// The JDK's `profile` settings sample on-CPU stacks every 10 ms and native methods every
    /// 20 ms: stored with each sample's period, so that samples read as time.
    #[test]
    fn sampling_periods_of_the_jdk_make_samples_time() {
        let store = Arc::new(Store::new(Limits::default(), std::time::Duration::from_secs(60)));
        let ingest = Ingest::new(Arc::clone(&store), Metrics::new());
        let bytes = fixture("jdk-profile.jfr");
        let chunk = Chunk::parse(&bytes).expect("chunk");
        let mut state = FileState::default();
        let target = Target::new("p".into(), vec![]);
        let stored = store_chunk(&mut ingest.writer(None), &target, &chunk, &mut state, crate::now_ms()).expect("stored");
        assert_eq!((state.execution_period_ns, state.native_period_ns), (Some(10_000_000), Some(20_000_000)));
        let cpu = stored.types[ProfileType::Cpu as usize];
        assert_eq!((cpu.time_ns, cpu.untimed), (cpu.total * 10_000_000, 0));
        let app = store.app("p").expect("app");
        let types = app.types();
        let time = |t: ProfileType| types.iter().find(|x| x.profile == t).and_then(|x| x.time_ns);
        assert_eq!(time(ProfileType::Cpu), Some(cpu.total * 10_000_000));
        assert_eq!(time(ProfileType::Wall), Some(stored.types[ProfileType::Wall as usize].total * 20_000_000));
        assert_eq!(time(ProfileType::AllocBytes), None, "bytes are no samples");
        let profile = store.query(&app, &Query::default()).expect("readable").expect("some");
        assert_eq!(profile.period_ns, Some(10_000_000));
        assert!(app.info().labels.is_empty(), "the period is no label");
        // async-profiler's default interval is not written down: samples stay samples.
        let bytes = fixture("ap-itimer.jfr");
        let chunk = Chunk::parse(&bytes).expect("chunk");
        let mut state = FileState::default();
        let target = Target::new("ap".into(), vec![]);
        store_chunk(&mut ingest.writer(None), &target, &chunk, &mut state, crate::now_ms()).expect("stored");
        assert_eq!(state.execution_period_ns, None);
        assert_eq!(store.app("ap").expect("app").types()[0].time_ns, None);
    }

    #[test]
    fn async_profiler_itimer_is_cpu() {
        assert_eq!(check("ap-itimer").keys().collect::<Vec<_>>(), ["cpu"]);
    }

    #[test]
    fn async_profiler_wall_mode_is_wall() {
        assert_eq!(check("ap-wall").keys().collect::<Vec<_>>(), ["wall"]);
    }

    #[test]
    fn async_profiler_allocations() {
        assert_eq!(check("ap-alloc").keys().collect::<Vec<_>>(), ["alloc_bytes", "alloc_objects"]);
    }

    #[test]
    fn async_profiler_locks() {
        assert_eq!(check("ap-lock").keys().collect::<Vec<_>>(), ["lock_count", "lock_ns"]);
    }

    /// Each chunk is read on its own (constant pool keys are the chunk's): two recordings one
    /// after the other read as the two files do.
    #[test]
    fn chunks_one_after_another() {
        let (got, stored) = import("ap-multichunk");
        let mut want = check("ap-itimer");
        want.extend(check("ap-alloc"));
        assert_eq!(got, want);
        assert_eq!(stored.types[ProfileType::Cpu as usize].events, want["cpu"].values().sum::<u64>());
    }
}
