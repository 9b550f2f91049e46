//! Per-app aggregation in lock-free counters, time buckets, and the embedded store.
//!
//! * An **origin** (an agent's prefix, or a line-protocol tag set) is resolved once to an app and
//!   a label set and cached under a 64-bit hash of its raw text ([`Store::source`]).
//! * A **stack** is identified by the xxh3 hash of its raw encoded text; it is decoded and its
//!   frames interned only the first time it is seen. Later samples of the same stack cost one
//!   hash, a look into the thread's cache of stack ids (the app's map on a miss), one map read
//!   and one atomic add.
//! * **Counts** live in time buckets of `--bucket`: per bucket a `DashMap<(label set, stack),
//!   AtomicU64>` per core (each thread adds to its own lane; readers add the lanes up). Samples
//!   are added, never overwritten (agents send per-flush deltas).
//! * **Memory holds recent buckets** (`--memory-window`); [`Store::flush`] writes every changed
//!   bucket whole to redb ([`disk`]) and evicts older ones. A sample for an evicted bucket (a late
//!   line-protocol timestamp) reloads it first. A query reads resident buckets from memory and
//!   the rest from disk.
//! * Start-up loads frames, stacks, label sets and gauges, not buckets: a restart costs the
//!   metadata, whatever the history.
//!
//! * **Writes come in runs** ([`Writes`]): the lines of one body or one batch of datagrams resolve
//!   each origin once, hold their bucket open, and write the app and label-set totals once.
//!
//! Eviction seals a bucket before its last write, waiting for the runs that hold it open to
//! leave, so no count is added to a bucket that is being dropped: a run that finds its bucket
//! sealed takes the reload path, which waits for the eviction to finish and reads the bucket back
//! from disk.
//!
//! Hash collisions of 64-bit xxh3 between distinct stacks of one app are not detected; at a
//! million stacks the chance is below 1e-7.

mod app;
pub mod disk;
#[cfg(test)]
mod tests;
mod writes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLockReadGuard};
use std::time::Duration;

use dashmap::DashMap;

use app::{gauge_key, mark, series_key, Bucket, GaugeCell, Interner, LabelStats, SeriesCell};
pub use app::{
    App, AppInfo, GaugeReading, Matcher, Profile, Query, SeriesReading, SeriesView, Timeline, TimelineSeries, TypeTotal, ValueStats,
};
use disk::Disk;
pub use disk::{FlushStats, StoreError};
pub use writes::{SourceId, Writes};

use crate::outcome::Reject;
use crate::sample::{FamilyKind, Gauge, GaugeFamily, ProfileType, Series, Stack};

/// The frame that samples of new stacks are counted under once an app has hit its stack limit.
pub const OVERFLOW_FRAME: &str = "[stackd: unique stack limit reached]";

/// Limits on what the store keeps. Hitting one is counted by the caller.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_apps: usize,
    pub max_stacks_per_app: usize,
    /// Distinct values of one label name within one app (executors, hosts, pids…).
    pub max_label_values: usize,
    /// Gauge series per app (family × its own label × label set).
    pub max_series_per_app: usize,
    /// Gauge and engine series of all apps together.
    pub max_series: usize,
    /// Bytes of an app name or a label value; longer ones are cut (on a character boundary).
    pub max_name_len: usize,
    /// Bytes of a frame; longer ones are cut.
    pub max_frame_len: usize,
    /// Frames of a stack; deeper stacks keep their first (root-most) frames and end in
    /// [`DEPTH_FRAME`].
    pub max_stack_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_apps: 1_000,
            max_stacks_per_app: 100_000,
            max_label_values: 10_000,
            max_series_per_app: 100_000,
            max_series: 200_000,
            max_name_len: 1_024,
            max_frame_len: 4_096,
            max_stack_depth: 4_096,
        }
    }
}

/// The last frame of a stack cut at [`Limits::max_stack_depth`].
pub const DEPTH_FRAME: &str = "[stackd: stack depth limit reached]";

/// The value that replaces a label value beyond [`Limits::max_label_values`]: the samples are
/// kept (totals stay right) under this value.
pub const OVERFLOW_LABEL_VALUE: &str = "[stackd: label value limit reached]";

/// The one label of the set that origins share once an app has [`Limits::max_series_per_app`]
/// label sets (with the value [`OVERFLOW_LABEL_VALUE`]).
pub const OVERFLOW_LABEL: &str = "stackd_overflow";

/// Origins cached at most (resolved or refused); beyond, new origins are resolved every time
/// (an O(labels) hash lookup), so the cache cannot grow without bound.
const MAX_CACHED_ORIGINS: usize = 1 << 20;

/// How the store keeps time and where it keeps data.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub limits: Limits,
    pub bucket: Duration,
    /// Samples older than this are refused; buckets older than this are deleted.
    pub retention: Duration,
    /// Buckets newer than this stay in memory.
    pub memory_window: Duration,
    /// Samples stamped further ahead of the clock than this are refused.
    pub max_future: Duration,
    /// `None`: memory only (tests, benchmarks).
    pub data_dir: Option<PathBuf>,
    /// Resolves a stored gauge family (name and kind) back to its definition.
    pub family: fn(&str, FamilyKind) -> Option<&'static GaugeFamily>,
    /// Keep an outbox of what this node ingested, for its segments (`--object-store`): each
    /// flush also writes what it added to the buckets it wrote, in the same transaction.
    pub outbox: bool,
}

impl StoreConfig {
    /// In-memory store with long retention, for tests and benchmarks.
    pub fn in_memory(limits: Limits, bucket: Duration) -> Self {
        StoreConfig {
            limits,
            bucket,
            retention: Duration::from_secs(100 * 365 * 86_400),
            memory_window: Duration::from_secs(100 * 365 * 86_400),
            max_future: Duration::from_secs(100 * 365 * 86_400),
            data_dir: None,
            family: |_, _| None,
            outbox: false,
        }
    }
}

/// How a stack sample was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Stack,
    /// Counted under [`OVERFLOW_FRAME`] because the app has too many unique stacks.
    Overflow,
    /// A new stack, kept cut: some frame was longer than [`Limits::max_frame_len`] (`frames`),
    /// or it was deeper than [`Limits::max_stack_depth`] (`depth`). Said once per stack.
    Cut {
        frames: bool,
        depth: bool,
    },
}

/// Labels of one origin, sorted by name.
pub type Labels = Vec<(String, String)>;

/// The label that holds a label set's profile type when it is not `cpu` (a set without it is
/// `cpu`: every store written before types existed). No label from outside can have this name
/// (names starting with `__` are escaped), and no listing shows it: the type is a dimension of
/// its own, as Pyroscope's `__name__` is.
pub const TYPE_LABEL: &str = "__type__";

/// The label that holds the sampling period, in nanoseconds, of a label set whose samples were
/// taken at a known one (a JFR recording's `period` setting): what turns its samples into time.
/// Hidden like [`TYPE_LABEL`]; sets sampled at different periods are different sets.
pub const PERIOD_LABEL: &str = "__period_ns__";

/// The sampling period (ns) of a label set, when known.
pub fn period_of(labels: &[(String, String)]) -> Option<u64> {
    labels.iter().find(|(k, _)| k == PERIOD_LABEL).and_then(|(_, v)| v.parse().ok()).filter(|p| *p > 0)
}

/// The reserved label of counts another node ingested (their segments, read from the object
/// store): its value names the node. Never in this node's own outbox.
pub const NODE_LABEL: &str = "__node__";

/// A label stackd keeps for itself (the type, the period), never listed or matched as a label.
pub fn is_reserved_label(name: &str) -> bool {
    name.starts_with("__")
}

/// The profile type of a label set.
pub fn profile_of(labels: &[(String, String)]) -> ProfileType {
    labels.iter().find(|(k, _)| k == TYPE_LABEL).and_then(|(_, v)| ProfileType::from_name(v)).unwrap_or_default()
}

/// An app name, labels and profile type, as resolved from an origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    pub app: String,
    pub labels: Labels,
    /// What its stack counts measure (gauges and engine series: the default, unused).
    pub profile: ProfileType,
    /// The sampling period of its samples in ns, when the sender says it.
    pub period_ns: Option<u64>,
    /// The node whose counts these are, for another node's (its segments): [`NODE_LABEL`].
    pub node: Option<String>,
}

impl SourceSpec {
    /// An origin whose stacks (if any) are `cpu` samples.
    pub fn new(app: impl Into<String>, labels: Labels) -> Self {
        SourceSpec { app: app.into(), labels, profile: ProfileType::Cpu, period_ns: None, node: None }
    }

    /// What every origin is made into, whichever input resolved it: a non-empty app name
    /// (`unknown` otherwise), label names valid in Prometheus (statsd_exporter's escaping), the
    /// app name, label names and values at most `max_len` bytes. Says whether anything was cut.
    fn normalised(mut self, max_len: usize) -> (Self, bool) {
        if self.app.is_empty() {
            self.app = "unknown".into();
        }
        let mut cut = cut_to(&mut self.app, max_len);
        for (k, v) in &mut self.labels {
            if !crate::sample::is_label_name(k) {
                *k = crate::sample::escape_label_name(k);
            }
            cut |= cut_to(k, max_len);
            cut |= cut_to(v, max_len);
        }
        if self.profile != ProfileType::Cpu {
            self.labels.push((TYPE_LABEL.to_string(), self.profile.name().to_string()));
        }
        if let Some(p) = self.period_ns.filter(|p| *p > 0) {
            self.labels.push((PERIOD_LABEL.to_string(), p.to_string()));
        }
        if let Some(node) = &self.node {
            self.labels.push((NODE_LABEL.to_string(), node.clone()));
        }
        (self, cut)
    }
}

/// Cut `s` to at most `max` bytes on a character boundary; whether it was.
fn cut_to(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let keep = crate::ingest::truncated(s, max).len();
    s.truncate(keep);
    true
}

/// A resolved origin: where its samples go.
#[derive(Debug)]
pub struct Source {
    pub app: Arc<App>,
    labels: u32,
    stats: Arc<LabelStats>,
    /// Some label value was replaced by [`OVERFLOW_LABEL_VALUE`] when this origin was resolved.
    pub label_overflow: bool,
    /// The app name or a label was cut to [`Limits::max_name_len`].
    pub names_cut: bool,
}

impl Source {
    /// The newest time a sample of this origin's label set was filed at (`i64::MIN`: none yet).
    /// Kept in the store, so it survives a restart.
    pub fn last_ms(&self) -> i64 {
        self.stats.last_ms.load(Ordering::Relaxed)
    }
}

/// The store's concurrent maps: keyed `ahash` (fast on the short keys here, seeded per process
/// so that senders cannot aim keys at one slot; std's SipHash cost a tenth of `/write`).
pub(crate) type Map<K, V> = DashMap<K, V, ahash::RandomState>;

/// All apps, the origin cache, the frame interner and the embedded store.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    bucket_ms: i64,
    retention_ms: i64,
    window_ms: i64,
    future_ms: i64,
    apps: Map<Arc<str>, Arc<App>>,
    sources: Map<u64, Arc<Source>>,
    /// Origins refused (app limit): refused again without resolving them (or logging) again.
    refused: Map<u64, Reject>,
    frames: Interner,
    disk: Option<Disk>,
    family: fn(&str, FamilyKind) -> Option<&'static GaugeFamily>,
    /// One flush at a time; holds how many frames are on disk.
    flushing: Mutex<usize>,
    /// Gauge and engine series of all apps ([`Limits::max_series`]).
    series_total: std::sync::atomic::AtomicUsize,
    /// Inputs' notes of their progress ([`Store::note`]).
    notes: Mutex<Notes>,
    /// Held shared while an input adds samples and notes their progress ([`Store::noting`]),
    /// exclusively by a flush: a flush writes a note with all the samples it covers, or neither.
    note_gate: std::sync::RwLock<()>,
    /// [`StoreConfig::outbox`].
    outbox: bool,
}

/// Notes by key: those on disk, and those the next flush writes.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub(crate) saved: BTreeMap<String, Vec<u8>>,
    pub(crate) pending: BTreeMap<String, Vec<u8>>,
}

/// `cell = max(cell, t)`, without a write when `t` is not larger.
fn raise(cell: &std::sync::atomic::AtomicI64, t: i64) {
    if t > cell.load(Ordering::Relaxed) {
        cell.fetch_max(t, Ordering::Relaxed);
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Open the store: with a data dir, load what it holds (metadata only; buckets are read
    /// when needed). Refuses a damaged or newer-format store.
    pub fn open(config: StoreConfig, now_ms: i64) -> Result<Store, StoreError> {
        let bucket_ms = ms(config.bucket).max(1);
        let mut store = Store {
            limits: config.limits,
            bucket_ms,
            retention_ms: ms(config.retention),
            // Nothing older than the retention stays in memory, whatever the window says.
            window_ms: ms(config.memory_window).min(ms(config.retention)),
            future_ms: ms(config.max_future),
            apps: Map::default(),
            sources: Map::default(),
            refused: Map::default(),
            frames: Interner::default(),
            disk: None,
            family: config.family,
            flushing: Mutex::new(0),
            series_total: std::sync::atomic::AtomicUsize::new(0),
            notes: Mutex::new(Notes::default()),
            note_gate: std::sync::RwLock::new(()),
            outbox: config.outbox,
        };
        let Some(dir) = config.data_dir.as_deref() else { return Ok(store) };
        let path = dir.join(disk::FILE_NAME);
        // A store that was closed cleanly is read (format, bucket width, metadata) through a
        // read-only handle first: a damaged or foreign file is refused before anything writes
        // to it. One left by a crash needs redb's repair, which only a writable handle does
        // (and which verifies every page's checksum).
        if let Some(read_only) = disk::open_read_only(&path)? {
            disk::check_format(&read_only, &path, bucket_ms as u64)?;
            disk::guarded(&path, || store.load(&read_only, now_ms))?;
            drop(read_only);
            store.disk = Some(Disk::open(dir, bucket_ms as u64)?);
        } else {
            let opened = Disk::open(dir, bucket_ms as u64)?;
            {
                let guard = opened.db();
                let db = guard.as_ref().and_then(|g| g.as_ref()).ok_or(StoreError::Unavailable)?;
                disk::guarded(&path, || store.load(db, now_ms))?;
            }
            store.disk = Some(opened);
        }
        let loaded: usize = store.apps.iter().map(|a| a.gauges.len() + a.series.len()).sum();
        store.series_total.store(loaded, Ordering::Relaxed);
        Ok(store)
    }

    /// An in-memory store that never refuses a timestamp.
    pub fn new(limits: Limits, bucket: Duration) -> Self {
        match Store::open(StoreConfig::in_memory(limits, bucket), 0) {
            Ok(s) => s,
            Err(_) => unreachable!("an in-memory store cannot fail to open"),
        }
    }

    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// Hold this while adding the samples a note will cover, and while making the note: no
    /// flush runs in between, so a note reaches the disk in the same transaction as exactly the
    /// samples it covers (drop every [`Writes`] run before dropping it).
    pub fn noting(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.note_gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep `value` under `key` (an input's progress: how far a file was read), written by the
    /// next flush in the same transaction as every sample added before this call (see
    /// [`Store::noting`]): after a crash, a note is on disk with the samples it covers or not at
    /// all.
    pub fn note(&self, key: &str, value: Vec<u8>) {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).pending.insert(key.to_string(), value);
    }

    /// Every note whose key starts with `prefix`, the newest of each.
    pub fn notes(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<&String, &Vec<u8>> =
            notes.saved.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)).collect();
        out.extend(notes.pending.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)));
        out.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A new series in `map` (the app's own limit checked by the caller), counted against
    /// [`Limits::max_series`] once, however many writers make it at once.
    fn new_series<'a, K: Eq + std::hash::Hash + Copy, V>(
        &self,
        map: &'a Map<K, V>,
        key: K,
        make: impl FnOnce() -> V,
    ) -> Result<dashmap::mapref::one::Ref<'a, K, V>, Reject> {
        self.series_total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < self.limits.max_series).then_some(n + 1))
            .map_err(|_| Reject::SeriesTotalLimit)?;
        let mut made = false;
        let cell = map
            .entry(key)
            .or_insert_with(|| {
                made = true;
                make()
            })
            .downgrade();
        if !made {
            // Another writer made it meanwhile.
            self.series_total.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(cell)
    }

    /// The source for an origin hash, resolving it with `resolve` on first sight. A refusal is
    /// remembered too, so a refused origin costs one lookup per sample, not a resolution.
    pub fn source(&self, origin: u64, resolve: impl FnOnce() -> SourceSpec) -> Result<Arc<Source>, Reject> {
        if let Some(s) = self.sources.get(&origin) {
            return Ok(Arc::clone(&s));
        }
        if let Some(r) = self.refused.get(&origin) {
            return Err(*r);
        }
        let (spec, names_cut) = resolve().normalised(self.limits.max_name_len);
        let app = match self.app_or_create(&spec.app) {
            Ok(app) => app,
            Err(r) => {
                if self.refused.len() >= MAX_CACHED_ORIGINS {
                    self.refused.clear();
                }
                self.refused.insert(origin, r);
                return Err(r);
            }
        };
        let (labels, stats, label_overflow) = app.labelset(spec.labels);
        let source = Arc::new(Source { app, labels, stats, label_overflow, names_cut });
        if self.sources.len() >= MAX_CACHED_ORIGINS {
            return Ok(source);
        }
        Ok(Arc::clone(self.sources.entry(origin).or_insert(source).value()))
    }

    fn app_or_create(&self, name: &str) -> Result<Arc<App>, Reject> {
        if let Some(app) = self.apps.get(name) {
            return Ok(Arc::clone(&app));
        }
        if self.apps.len() >= self.limits.max_apps {
            return Err(Reject::AppLimit);
        }
        let name: Arc<str> = name.into();
        let app = self.apps.entry(Arc::clone(&name)).or_insert_with(|| Arc::new(App::new(name, &self.limits, i64::MIN)));
        Ok(Arc::clone(app.value()))
    }

    /// Refuse timestamps outside `[now - retention, now + max future]`.
    pub fn check_time(&self, time_ms: i64, now_ms: i64) -> Result<(), Reject> {
        if time_ms < now_ms.saturating_sub(self.retention_ms) {
            return Err(Reject::TooOld);
        }
        if time_ms > now_ms.saturating_add(self.future_ms) {
            return Err(Reject::InFuture);
        }
        Ok(())
    }

    /// Add `count` samples of `stack` from the source `id` of the run `w` at `time_ms` (checked
    /// against the clock `now_ms`). The count is in its bucket when this returns; the totals
    /// follow when the run ends ([`Writes`]).
    pub fn add_stack(
        &self,
        w: &mut Writes,
        id: SourceId,
        stack: &Stack<'_>,
        count: u64,
        time_ms: i64,
        now_ms: i64,
    ) -> Result<Stored, Reject> {
        self.check_time(time_ms, now_ms)?;
        let source = w.source(id);
        let labels = source.labels;
        let (stack_id, stored) = source.app.stack_id(stack, &self.frames);
        let bucket = w.bucket(self, id, time_ms.div_euclid(self.bucket_ms))?;
        bucket.counts.add((labels, stack_id), count);
        w.tally(id, count, time_ms);
        Ok(stored)
    }

    /// [`Store::add_stack`] in a run of its own (tests, benchmarks): the totals are written
    /// before it returns.
    pub fn add_stack_now(&self, source: &Arc<Source>, stack: &Stack<'_>, count: u64, time_ms: i64, now_ms: i64) -> Result<Stored, Reject> {
        let mut w = Writes::default();
        let id = w.adopt(source);
        self.add_stack(&mut w, id, stack, count, time_ms, now_ms)
    }

    /// The in-memory bucket `n` of `app`, reloading it from disk when it was evicted.
    fn bucket(&self, app: &App, n: i64) -> Result<Arc<Bucket>, Reject> {
        if n >= app.oldest_resident.load(Ordering::Acquire) {
            if let Some(b) = app.buckets.get(&n) {
                return Ok(Arc::clone(&b));
            }
            return Ok(Arc::clone(&app.buckets.entry(n).or_insert_with(|| Arc::new(Bucket::default()))));
        }
        let _reload = app.lock_reload();
        if let Some(b) = app.buckets.get(&n) {
            if !b.is_sealed() {
                return Ok(Arc::clone(&b));
            }
        }
        let bucket = Arc::new(Bucket::default());
        // Unreadable: nothing may start this bucket afresh, its next flush would overwrite what
        // is stored.
        let stored = match &self.disk {
            Some(disk) => disk.read_bucket(&app.name, n).map_err(|_| Reject::StoreUnavailable)?,
            None => None,
        };
        if let Some(blob) = stored {
            disk::decode_bucket(&blob, |labels, stack, count| bucket.counts.add((labels, stack), count));
        }
        app.buckets.insert(n, Arc::clone(&bucket));
        Ok(bucket)
    }

    /// Set (or, for relative gauges, change) a gauge. A new series beyond
    /// [`Limits::max_series_per_app`] is refused.
    pub fn set_gauge(&self, source: &Source, gauge: &Gauge<'_>, time_ms: i64) -> Result<(), Reject> {
        let app = &source.app;
        let key = gauge_key(source.labels, gauge.family, gauge.label_value);
        let cell = match app.gauges.get(&key) {
            Some(c) => c,
            None if app.gauges.len() >= self.limits.max_series_per_app => return Err(Reject::SeriesLimit),
            None => self.new_series(&app.gauges, key, || {
                GaugeCell::new(gauge.family, gauge.label_value.into(), source.labels, 0.0, time_ms, true)
            })?,
        };
        if gauge.relative {
            let _ = cell.bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some((f64::from_bits(b) + gauge.value).to_bits()));
        } else {
            cell.bits.store(gauge.value.to_bits(), Ordering::Relaxed);
        }
        cell.updated_ms.store(time_ms, Ordering::Relaxed);
        mark(&cell.dirty);
        app.last_seen_ms.fetch_max(time_ms, Ordering::Relaxed);
        Ok(())
    }

    /// Set an engine metric's sample (engines send absolute values). A new series beyond
    /// [`Limits::max_series_per_app`] (gauges and engine series together) is refused.
    pub fn set_series(&self, source: &Source, series: &Series<'_>, time_ms: i64) -> Result<(), Reject> {
        let app = &source.app;
        let key = series_key(series);
        let cell = match app.series.get(&key) {
            Some(c) => c,
            None if app.gauges.len() + app.series.len() >= self.limits.max_series_per_app => return Err(Reject::SeriesLimit),
            None => self.new_series(&app.series, key, || SeriesCell::new(series, time_ms, true))?,
        };
        cell.bits.store(series.value.to_bits(), Ordering::Relaxed);
        cell.updated_ms.store(time_ms, Ordering::Relaxed);
        mark(&cell.dirty);
        app.last_seen_ms.fetch_max(time_ms, Ordering::Relaxed);
        Ok(())
    }

    /// Forget engine series not updated since `cutoff_ms` (their senders are gone: a finished
    /// job, a restarted task attempt); the next flush deletes their rows. Returns how many.
    pub fn expire_series(&self, cutoff_ms: i64) -> usize {
        let mut expired = 0;
        for app in self.apps() {
            let mut gone = Vec::new();
            app.series.retain(|key, cell| {
                let keep = cell.updated_ms.load(Ordering::Relaxed) >= cutoff_ms;
                if !keep {
                    gone.push(*key);
                }
                keep
            });
            expired += gone.len();
            self.series_total.fetch_sub(gone.len(), Ordering::Relaxed);
            if !gone.is_empty() {
                app.series_expired.lock().unwrap_or_else(|e| e.into_inner()).extend(gone);
            }
        }
        expired
    }

    pub fn app(&self, name: &str) -> Option<Arc<App>> {
        self.apps.get(name).map(|a| Arc::clone(&a))
    }

    /// All apps, sorted by name.
    pub fn apps(&self) -> Vec<Arc<App>> {
        let mut apps: Vec<_> = self.apps.iter().map(|a| Arc::clone(a.value())).collect();
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        apps
    }

    /// Frame names by id. Hold the guard briefly: interning a new frame waits for it.
    pub fn frames(&self) -> RwLockReadGuard<'_, Vec<Arc<str>>> {
        self.frames.names.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A profile with its frame ids resolved to names, root first.
    pub fn resolve(&self, profile: &Profile) -> Vec<(Vec<Arc<str>>, u64)> {
        let names = self.frames();
        profile
            .stacks
            .iter()
            .map(|(ids, count)| (ids.iter().map(|id| names.get(*id as usize).map_or_else(|| Arc::from("?"), Arc::clone)).collect(), *count))
            .collect()
    }

    /// Sum the counts of `app` that match `query`, per stack: resident buckets from memory, the
    /// others from disk. `Ok(None)` when no label set matches; an error when a stored bucket in
    /// the range cannot be read (never a profile with some buckets silently missing).
    pub fn query(&self, app: &App, query: &Query) -> Result<Option<Profile>, StoreError> {
        let Some(matching) = app.matching_labelsets(&query.labels, query.profile) else { return Ok(None) };
        let stacks = app.stacks.read().unwrap_or_else(|e| e.into_inner());
        let mut per_stack = vec![0u64; stacks.len()];
        self.each_count(app, query, &mut |_, labels, stack, count| {
            if matching.get(labels as usize).copied().unwrap_or(false) {
                if let Some(c) = per_stack.get_mut(stack as usize) {
                    *c = c.saturating_add(count);
                }
            }
        })?;
        let mut profile = Profile { period_ns: app.period(&matching), ..Profile::default() };
        for (id, count) in per_stack.into_iter().enumerate() {
            if count > 0 {
                profile.total = profile.total.saturating_add(count);
                profile.stacks.push((stacks[id].frames.clone(), count));
            }
        }
        Ok(Some(profile))
    }

    /// Samples of `app` that match `query` over time: per step of `step_ms` (a whole number of
    /// buckets, at least one), and per value of the label `by` when given (label sets without
    /// it count under `""`). `Ok(None)` when no label set matches.
    pub fn timeline(&self, app: &App, query: &Query, by: Option<&str>, step_ms: i64) -> Result<Option<Timeline>, StoreError> {
        let Some(matching) = app.matching_labelsets(&query.labels, query.profile) else { return Ok(None) };
        let step_ms = step_ms.max(self.bucket_ms) / self.bucket_ms * self.bucket_ms;
        // The group of each label set: its value of `by`.
        let mut groups: Vec<String> = Vec::new();
        let group_of: Vec<Option<u32>> = {
            let sets = app.labelsets.read().unwrap_or_else(|e| e.into_inner());
            sets.list
                .iter()
                .enumerate()
                .map(|(i, (set, _))| {
                    matching.get(i).copied().unwrap_or(false).then(|| {
                        let value = by.and_then(|k| set.iter().find(|(sk, _)| sk == k)).map_or("", |(_, v)| v.as_str());
                        let at = groups.iter().position(|g| g == value).unwrap_or_else(|| {
                            groups.push(value.to_string());
                            groups.len() - 1
                        });
                        at as u32
                    })
                })
                .collect()
        };
        let mut counts: BTreeMap<(u32, i64), u64> = BTreeMap::new();
        let bucket_ms = self.bucket_ms;
        self.each_count(app, query, &mut |bucket, labels, _, count| {
            if let Some(Some(group)) = group_of.get(labels as usize) {
                let at = (bucket * bucket_ms).div_euclid(step_ms) * step_ms;
                let c = counts.entry((*group, at)).or_default();
                *c = c.saturating_add(count);
            }
        })?;
        let mut series: Vec<TimelineSeries> =
            groups.into_iter().map(|value| TimelineSeries { value: by.map(|_| value), total: 0, points: Vec::new() }).collect();
        for ((group, at), count) in counts {
            let s = &mut series[group as usize];
            s.total = s.total.saturating_add(count);
            s.points.push((at, count));
        }
        series.retain(|s| s.total > 0);
        series.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.value.cmp(&b.value)));
        Ok(Some(Timeline { bucket_ms, step_ms, series }))
    }

    /// Every count of `app` in the buckets of `query`'s time range, whatever its labels, as
    /// (bucket number, label set, stack, count): resident buckets from memory, the others from
    /// disk.
    fn each_count(&self, app: &App, query: &Query, add: &mut dyn FnMut(i64, u32, u32, u64)) -> Result<(), StoreError> {
        let first = query.from_ms.map_or(i64::MIN, |f| f.div_euclid(self.bucket_ms));
        let last = query.to_ms.map_or(i64::MAX, |t| (t - 1).div_euclid(self.bucket_ms));
        let resident: BTreeMap<i64, Arc<Bucket>> =
            app.buckets.iter().filter(|b| (first..=last).contains(b.key())).map(|b| (*b.key(), Arc::clone(b.value()))).collect();
        for (n, bucket) in &resident {
            bucket.counts.each(|(labels, stack), count| add(*n, labels, stack, count));
        }
        // Buckets from `oldest_resident` on are all in memory; only older ones may be on disk only.
        let on_disk_last = last.min(app.oldest_resident.load(Ordering::Acquire).saturating_sub(1));
        if let (Some(disk), true) = (&self.disk, first <= on_disk_last) {
            disk.each_bucket(&app.name, first..=on_disk_last, |n| resident.contains_key(&n), add)?;
        }
        Ok(())
    }
}
