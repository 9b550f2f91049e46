//! Per-app aggregation in lock-free counters, time buckets, and the embedded store.
//!
//! * An **origin** (an agent's prefix, or a line-protocol tag set) is resolved once to an app and
//!   a label set and cached under a 64-bit hash of its raw text ([`Store::source`]).
//! * A **stack** is identified by the xxh3 hash of its raw encoded text; it is decoded and its
//!   frames interned only the first time it is seen. Later samples of the same stack cost one
//!   hash, two map reads and one atomic add.
//! * **Counts** live in time buckets of `--bucket`: per bucket a `DashMap<(label set, stack),
//!   AtomicU64>`. Samples are added, never overwritten (agents send per-flush deltas).
//! * **Memory holds recent buckets** (`--memory-window`); [`Store::flush`] writes every changed
//!   bucket whole to redb ([`disk`]) and evicts older ones. A sample for an evicted bucket (a late
//!   line-protocol timestamp) reloads it first. A query reads resident buckets from memory and
//!   the rest from disk.
//! * Start-up loads frames, stacks, label sets and gauges, not buckets: a restart costs the
//!   metadata, whatever the history.
//!
//! Eviction seals a bucket (a write lock) before its last write, so no count is added to a bucket
//! that is being dropped: a writer that finds its bucket sealed takes the reload path, which waits
//! for the eviction to finish and reads the bucket back from disk.
//!
//! Hash collisions of 64-bit xxh3 between distinct stacks of one app are not detected; at a
//! million stacks the chance is below 1e-7.

pub mod disk;

use std::collections::BTreeMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

use dashmap::DashMap;
use redb::{Durability, ReadableDatabase, ReadableTable};
use xxhash_rust::xxh3::Xxh3;

pub use disk::StoreError;
use disk::{get_ivarint, get_str, get_varint, put_ivarint, put_str, put_varint, Disk};

use crate::sample::{FamilyKind, Gauge, GaugeFamily, RawStack};

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_apps: 1_000, max_stacks_per_app: 100_000, max_label_values: 10_000, max_series_per_app: 100_000 }
    }
}

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
        }
    }
}

/// Why a sample could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("app limit reached (--max-apps)")]
    AppLimit,
    #[error("timestamp older than --retention")]
    TooOld,
    #[error("timestamp too far in the future")]
    InFuture,
    #[error("the store cannot be read, and this sample's time bucket is only on disk")]
    StoreUnavailable,
    #[error("gauge series limit reached (--max-series-per-app)")]
    SeriesLimit,
}

/// How a stack sample was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Stack,
    /// Counted under [`OVERFLOW_FRAME`] because the app has too many unique stacks.
    Overflow,
}

/// Labels of one origin, sorted by name.
pub type Labels = Vec<(String, String)>;

/// An app name and labels, as resolved from an origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    pub app: String,
    pub labels: Labels,
}

impl SourceSpec {
    /// What every origin is made into, whichever input resolved it: a non-empty app name
    /// (`unknown` otherwise), label names valid in Prometheus (statsd_exporter's escaping).
    fn normalised(mut self) -> Self {
        if self.app.is_empty() {
            self.app = "unknown".into();
        }
        for (k, _) in &mut self.labels {
            if !crate::sample::is_label_name(k) {
                *k = crate::sample::escape_label_name(k);
            }
        }
        self
    }
}

/// A resolved origin: where its samples go.
#[derive(Debug)]
pub struct Source {
    pub app: Arc<App>,
    labels: u32,
    stats: Arc<LabelStats>,
    /// Some label value was replaced by [`OVERFLOW_LABEL_VALUE`] when this origin was resolved.
    pub label_overflow: bool,
}

/// Samples and first/last sample time of one label set.
#[derive(Debug)]
struct LabelStats {
    samples: AtomicU64,
    first_ms: AtomicI64,
    last_ms: AtomicI64,
    /// Changed since it was last written.
    dirty: AtomicBool,
}

impl LabelStats {
    fn new(samples: u64, first_ms: i64, last_ms: i64, dirty: bool) -> Self {
        LabelStats {
            samples: AtomicU64::new(samples),
            first_ms: AtomicI64::new(first_ms),
            last_ms: AtomicI64::new(last_ms),
            dirty: AtomicBool::new(dirty),
        }
    }
}

/// Set a dirty flag without writing the cache line when it is already set (the hot path).
fn mark(flag: &AtomicBool) {
    if !flag.load(Ordering::Relaxed) {
        flag.store(true, Ordering::Release);
    }
}

/// All apps, the origin cache, the frame interner and the embedded store.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    bucket_ms: i64,
    retention_ms: i64,
    window_ms: i64,
    future_ms: i64,
    apps: DashMap<Arc<str>, Arc<App>>,
    sources: DashMap<u64, Arc<Source>>,
    /// Origins refused (app limit): refused again without resolving them (or logging) again.
    refused: DashMap<u64, Rejected>,
    frames: Interner,
    disk: Option<Disk>,
    family: fn(&str, FamilyKind) -> Option<&'static GaugeFamily>,
    /// One flush at a time; holds how many frames are on disk.
    flushing: Mutex<usize>,
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
            apps: DashMap::new(),
            sources: DashMap::new(),
            refused: DashMap::new(),
            frames: Interner::default(),
            disk: None,
            family: config.family,
            flushing: Mutex::new(0),
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
                let db = guard
                    .as_ref()
                    .and_then(|g| g.as_ref())
                    .ok_or_else(|| StoreError::Corrupt { path: path.clone(), detail: "not open".into() })?;
                disk::guarded(&path, || store.load(db, now_ms))?;
            }
            store.disk = Some(opened);
        }
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

    /// The source for an origin hash, resolving it with `resolve` on first sight. A refusal is
    /// remembered too, so a refused origin costs one lookup per sample, not a resolution.
    pub fn source(&self, origin: u64, resolve: impl FnOnce() -> SourceSpec) -> Result<Arc<Source>, Rejected> {
        if let Some(s) = self.sources.get(&origin) {
            return Ok(Arc::clone(&s));
        }
        if let Some(r) = self.refused.get(&origin) {
            return Err(*r);
        }
        let spec = resolve().normalised();
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
        let source = Arc::new(Source { app, labels, stats, label_overflow });
        if self.sources.len() >= MAX_CACHED_ORIGINS {
            return Ok(source);
        }
        Ok(Arc::clone(self.sources.entry(origin).or_insert(source).value()))
    }

    fn app_or_create(&self, name: &str) -> Result<Arc<App>, Rejected> {
        if let Some(app) = self.apps.get(name) {
            return Ok(Arc::clone(&app));
        }
        if self.apps.len() >= self.limits.max_apps {
            return Err(Rejected::AppLimit);
        }
        let name: Arc<str> = name.into();
        let app = self.apps.entry(Arc::clone(&name)).or_insert_with(|| Arc::new(App::new(name, &self.limits, i64::MIN)));
        Ok(Arc::clone(app.value()))
    }

    /// Refuse timestamps outside `[now - retention, now + max future]`.
    pub fn check_time(&self, time_ms: i64, now_ms: i64) -> Result<(), Rejected> {
        if time_ms < now_ms.saturating_sub(self.retention_ms) {
            return Err(Rejected::TooOld);
        }
        if time_ms > now_ms.saturating_add(self.future_ms) {
            return Err(Rejected::InFuture);
        }
        Ok(())
    }

    /// Add `count` samples of `stack` at `time_ms` (checked against the clock `now_ms`).
    pub fn add_stack(&self, source: &Source, stack: &RawStack<'_>, count: u64, time_ms: i64, now_ms: i64) -> Result<Stored, Rejected> {
        self.check_time(time_ms, now_ms)?;
        let app = &source.app;
        let (id, stored) = app.stack_id(stack, &self.frames);
        let bucket_no = time_ms.div_euclid(self.bucket_ms);
        loop {
            let bucket = self.bucket(app, bucket_no)?;
            let sealed = bucket.sealed.read().unwrap_or_else(|e| e.into_inner());
            if *sealed {
                continue; // being evicted: the next look takes the reload path, which waits
            }
            add_count(&bucket.counts, (source.labels, id), count);
            bucket.dirty.store(true, Ordering::Relaxed);
            break;
        }
        saturating_add(&app.total, count);
        app.last_seen_ms.fetch_max(time_ms, Ordering::Relaxed);
        let stats = &source.stats;
        saturating_add(&stats.samples, count);
        stats.first_ms.fetch_min(time_ms, Ordering::Relaxed);
        stats.last_ms.fetch_max(time_ms, Ordering::Relaxed);
        mark(&stats.dirty);
        Ok(stored)
    }

    /// The in-memory bucket `n` of `app`, reloading it from disk when it was evicted.
    fn bucket(&self, app: &App, n: i64) -> Result<Arc<Bucket>, Rejected> {
        if n >= app.oldest_resident.load(Ordering::Acquire) {
            if let Some(b) = app.buckets.get(&n) {
                return Ok(Arc::clone(&b));
            }
            return Ok(Arc::clone(&app.buckets.entry(n).or_insert_with(|| Arc::new(Bucket::default()))));
        }
        let _reload = app.lock_reload();
        if let Some(b) = app.buckets.get(&n) {
            if !*b.sealed.read().unwrap_or_else(|e| e.into_inner()) {
                return Ok(Arc::clone(&b));
            }
        }
        let bucket = Arc::new(Bucket::default());
        if let Some(blob) = self.read_bucket(&app.name, n)? {
            decode_bucket(&blob, |labels, stack, count| add_count(&bucket.counts, (labels, stack), count));
        }
        app.buckets.insert(n, Arc::clone(&bucket));
        Ok(bucket)
    }

    /// A stored bucket; `Err` when the store cannot be read (then nothing may start that bucket
    /// afresh: its next flush would overwrite what is stored).
    /// A damaged page makes the storage library panic: that is an unreadable store too, and must
    /// not take down the ingest thread that asked.
    fn read_bucket(&self, app: &str, n: i64) -> Result<Option<Vec<u8>>, Rejected> {
        let Some(disk) = &self.disk else { return Ok(None) };
        let guard = disk.db().ok_or(Rejected::StoreUnavailable)?;
        let db = guard.as_ref().ok_or(Rejected::StoreUnavailable)?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let read = db.begin_read().map_err(|_| Rejected::StoreUnavailable)?;
            let table = read.open_table(disk::BUCKETS).map_err(|_| Rejected::StoreUnavailable)?;
            let value = table.get((app, n)).map_err(|_| Rejected::StoreUnavailable)?;
            Ok(value.map(|v| v.value().to_vec()))
        }))
        .unwrap_or(Err(Rejected::StoreUnavailable))
    }

    /// Set (or, for relative gauges, change) a gauge. A new series beyond
    /// [`Limits::max_series_per_app`] is refused.
    pub fn set_gauge(&self, source: &Source, gauge: &Gauge<'_>, time_ms: i64) -> Result<(), Rejected> {
        let app = &source.app;
        let key = gauge_key(source.labels, gauge.family, gauge.label_value);
        let cell = match app.gauges.get(&key) {
            Some(c) => c,
            None if app.gauges.len() >= self.limits.max_series_per_app => return Err(Rejected::SeriesLimit),
            None => app
                .gauges
                .entry(key)
                .or_insert_with(|| GaugeCell::new(gauge.family, gauge.label_value.into(), source.labels, 0.0, time_ms, true))
                .downgrade(),
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
    /// others from disk. `None` when no label set matches.
    pub fn query(&self, app: &App, query: &Query) -> Option<Profile> {
        let matching = app.matching_labelsets(&query.labels)?;
        let first = query.from_ms.map_or(i64::MIN, |f| f.div_euclid(self.bucket_ms));
        let last = query.to_ms.map_or(i64::MAX, |t| (t - 1).div_euclid(self.bucket_ms));
        let stacks = app.stacks.read().unwrap_or_else(|e| e.into_inner());
        let mut per_stack = vec![0u64; stacks.len()];
        let mut add = |labels: u32, stack: u32, count: u64| {
            if matching.get(labels as usize).copied().unwrap_or(false) {
                if let Some(c) = per_stack.get_mut(stack as usize) {
                    *c = c.saturating_add(count);
                }
            }
        };
        let resident: BTreeMap<i64, Arc<Bucket>> =
            app.buckets.iter().filter(|b| (first..=last).contains(b.key())).map(|b| (*b.key(), Arc::clone(b.value()))).collect();
        for bucket in resident.values() {
            for e in bucket.counts.iter() {
                add(e.key().0, e.key().1, e.value().load(Ordering::Relaxed));
            }
        }
        if let Some(guard) = self.disk.as_ref().and_then(Disk::db) {
            if let Some(read) = guard.as_ref().and_then(|db| db.begin_read().ok()) {
                if let Ok(table) = read.open_table(disk::BUCKETS) {
                    if let Ok(range) = table.range((&*app.name, first)..=(&*app.name, last)) {
                        for (key, blob) in range.flatten() {
                            if !resident.contains_key(&key.value().1) {
                                decode_bucket(blob.value(), &mut add);
                            }
                        }
                    }
                }
            }
        }
        let mut profile = Profile::default();
        for (id, count) in per_stack.into_iter().enumerate() {
            if count > 0 {
                profile.total = profile.total.saturating_add(count);
                profile.stacks.push((stacks[id].frames.clone(), count));
            }
        }
        Some(profile)
    }

    /// Write everything changed since the last flush, evict buckets older than the memory window,
    /// delete buckets older than the retention. One redb transaction, durable when it returns.
    /// On failure nothing is lost from memory and the next flush writes it all again.
    pub fn flush(&self, now_ms: i64) -> Result<FlushStats, StoreError> {
        let Some(disk) = &self.disk else {
            return Ok(FlushStats::default());
        };
        let mut frames_on_disk = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let guard = match disk.db() {
            Some(g) => g,
            None => {
                disk.reopen()?;
                disk.db().ok_or_else(|| StoreError::write("the store could not be reopened"))?
            }
        };
        let Some(db) = guard.as_ref() else { return Err(StoreError::write("the store is not open")) };
        let now_bucket = now_ms.div_euclid(self.bucket_ms);
        let evict_before = now_bucket.saturating_sub(self.window_ms / self.bucket_ms + 1);
        let delete_before = (now_ms.saturating_sub(self.retention_ms)).div_euclid(self.bucket_ms);
        let apps = self.apps();
        // Seal what leaves memory; keep the apps' reload locks until the commit, so that nobody
        // reads those buckets back from disk before their last write is there.
        let mut reload_guards: Vec<MutexGuard<'_, ()>> = Vec::new();
        let mut sealed: Vec<(Arc<App>, i64, Arc<Bucket>)> = Vec::new();
        for app in &apps {
            reload_guards.push(app.lock_reload());
            let _ = app.oldest_resident.fetch_max(evict_before, Ordering::AcqRel);
            for b in app.buckets.iter() {
                if *b.key() < evict_before {
                    *b.value().sealed.write().unwrap_or_else(|e| e.into_inner()) = true;
                    sealed.push((Arc::clone(app), *b.key(), Arc::clone(b.value())));
                }
            }
        }
        let mut stats = FlushStats::default();
        let mut written: Vec<Arc<Bucket>> = Vec::new();
        let mut labels_written: Vec<Arc<LabelStats>> = Vec::new();
        let mut gauges_written: Vec<(Arc<App>, u64)> = Vec::new();
        // Lengths of the append-only id spaces as written, to be marked persisted on commit.
        let mut stacks_written: Vec<usize> = Vec::with_capacity(apps.len());
        let mut frames_written = *frames_on_disk;
        let result = (|| -> Result<(), StoreError> {
            let mut w = db.begin_write().map_err(StoreError::write)?;
            w.set_durability(Durability::Immediate).map_err(StoreError::write)?;
            let mut apps_t = w.open_table(disk::APPS).map_err(StoreError::write)?;
            let mut stacks_t = w.open_table(disk::STACKS).map_err(StoreError::write)?;
            let mut labels_t = w.open_table(disk::LABELSETS).map_err(StoreError::write)?;
            let mut buckets_t = w.open_table(disk::BUCKETS).map_err(StoreError::write)?;
            let mut gauges_t = w.open_table(disk::GAUGES).map_err(StoreError::write)?;
            let mut blob = Vec::with_capacity(64 * 1024);
            for app in &apps {
                let name = &*app.name;
                // Order matters: what is written first may refer only to ids written after it,
                // and ids only grow. Buckets, then gauges, then label sets, then stacks; frames
                // last of all.
                for b in app.buckets.iter() {
                    if b.value().dirty.swap(false, Ordering::AcqRel) {
                        written.push(Arc::clone(b.value()));
                        encode_bucket(&b.value().counts, &mut blob);
                        buckets_t.insert((name, *b.key()), &blob[..]).map_err(StoreError::write)?;
                        stats.buckets += 1;
                        stats.bytes += blob.len();
                    }
                }
                for g in app.gauges.iter() {
                    if !g.dirty.swap(false, Ordering::AcqRel) {
                        continue;
                    }
                    gauges_written.push((Arc::clone(app), *g.key()));
                    stats.rows += 1;
                    blob.clear();
                    put_str(&mut blob, g.family.name);
                    blob.push(g.family.kind as u8);
                    put_str(&mut blob, &g.label_value);
                    put_varint(&mut blob, u64::from(g.labels));
                    blob.extend_from_slice(&g.bits.load(Ordering::Relaxed).to_le_bytes());
                    put_ivarint(&mut blob, g.updated_ms.load(Ordering::Relaxed));
                    gauges_t.insert((name, *g.key()), &blob[..]).map_err(StoreError::write)?;
                }
                // Label sets carry their running totals: those that changed.
                for (id, (labels, st)) in app.labelsets.read().unwrap_or_else(|e| e.into_inner()).list.iter().enumerate() {
                    if !st.dirty.swap(false, Ordering::AcqRel) {
                        continue;
                    }
                    labels_written.push(Arc::clone(st));
                    stats.rows += 1;
                    blob.clear();
                    put_varint(&mut blob, st.samples.load(Ordering::Relaxed));
                    put_ivarint(&mut blob, st.first_ms.load(Ordering::Relaxed));
                    put_ivarint(&mut blob, st.last_ms.load(Ordering::Relaxed));
                    put_varint(&mut blob, labels.len() as u64);
                    for (k, v) in labels {
                        put_str(&mut blob, k);
                        put_str(&mut blob, v);
                    }
                    labels_t.insert((name, id as u32), &blob[..]).map_err(StoreError::write)?;
                }
                let persisted = app.persisted.lock().unwrap_or_else(|e| e.into_inner());
                if persisted.1 == 0 {
                    apps_t.insert(name, now_ms).map_err(StoreError::write)?;
                    stats.rows += 1;
                }
                let stacks = app.stacks.read().unwrap_or_else(|e| e.into_inner());
                for (id, s) in stacks.iter().enumerate().skip(persisted.0) {
                    blob.clear();
                    blob.extend_from_slice(&s.hash.to_le_bytes());
                    for f in s.frames.iter() {
                        put_varint(&mut blob, u64::from(*f));
                    }
                    stacks_t.insert((name, id as u32), &blob[..]).map_err(StoreError::write)?;
                    stats.rows += 1;
                }
                stacks_written.push(stacks.len());
                // Retention.
                let old: Vec<i64> = buckets_t
                    .range((name, i64::MIN)..(name, delete_before))
                    .map_err(StoreError::write)?
                    .flatten()
                    .map(|(k, _)| k.value().1)
                    .collect();
                for n in old {
                    buckets_t.remove((name, n)).map_err(StoreError::write)?;
                    stats.deleted += 1;
                }
            }
            drop((apps_t, stacks_t, labels_t, buckets_t, gauges_t));
            {
                let names = self.frames();
                let mut t = w.open_table(disk::FRAMES).map_err(StoreError::write)?;
                for (id, name) in names.iter().enumerate().skip(*frames_on_disk) {
                    t.insert(id as u32, &**name).map_err(StoreError::write)?;
                    stats.rows += 1;
                }
                frames_written = names.len();
            }
            if stats.buckets + stats.rows + stats.deleted == 0 {
                // Nothing changed: no commit, no fsync, the file is not touched.
                w.abort().map_err(StoreError::write)?;
                return Ok(());
            }
            w.commit().map_err(StoreError::write)
        })();
        match result {
            Ok(()) => {
                *frames_on_disk = frames_written;
                for (app, len) in apps.iter().zip(stacks_written) {
                    let mut persisted = app.persisted.lock().unwrap_or_else(|e| e.into_inner());
                    *persisted = (len, persisted.1 + 1);
                }
                for (app, n, _) in &sealed {
                    app.buckets.remove(n);
                    stats.evicted += 1;
                }
                drop(reload_guards);
                Ok(stats)
            }
            Err(e) => {
                // Keep everything: mark written buckets dirty again and unseal the evicted ones.
                for b in written {
                    b.dirty.store(true, Ordering::Release);
                }
                for st in labels_written {
                    st.dirty.store(true, Ordering::Release);
                }
                for (app, key) in gauges_written {
                    if let Some(g) = app.gauges.get(&key) {
                        g.dirty.store(true, Ordering::Release);
                    }
                }
                for (_, _, b) in sealed {
                    *b.sealed.write().unwrap_or_else(|e| e.into_inner()) = false;
                }
                drop(reload_guards);
                // redb accepts no writes after an I/O error until reopened: reopen now, so that
                // the next flush can succeed once there is room again.
                drop(guard);
                if let Err(again) = disk.reopen() {
                    tracing::error!(error = %again, "cannot reopen the store; flushes keep failing until it opens");
                }
                Err(e)
            }
        }
    }

    /// Load metadata from disk; buckets stay on disk until needed.
    fn load(&self, db: &impl ReadableDatabase, now_ms: i64) -> Result<(), StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt { path: PathBuf::new(), detail };
        let read = db.begin_read().map_err(|e| corrupt(e.to_string()))?;
        let frames_t = read.open_table(disk::FRAMES).map_err(|e| corrupt(e.to_string()))?;
        {
            let mut names = self.frames.names.write().unwrap_or_else(|e| e.into_inner());
            for (i, entry) in frames_t.iter().map_err(|e| corrupt(e.to_string()))?.enumerate() {
                let (id, name) = entry.map_err(|e| corrupt(e.to_string()))?;
                if id.value() as usize != i {
                    return Err(corrupt(format!("frame ids are not contiguous at {}", id.value())));
                }
                let name: Arc<str> = name.value().into();
                self.frames.ids.insert(Arc::clone(&name), i as u32);
                names.push(name);
            }
            *self.flushing.lock().unwrap_or_else(|e| e.into_inner()) = names.len();
        }
        // Buckets from now on, up to the furthest accepted future, may already be on disk:
        // their first sample takes the reload path.
        let first_fresh = now_ms.saturating_add(self.future_ms).div_euclid(self.bucket_ms) + 1;
        let apps_t = read.open_table(disk::APPS).map_err(|e| corrupt(e.to_string()))?;
        let stacks_t = read.open_table(disk::STACKS).map_err(|e| corrupt(e.to_string()))?;
        let labels_t = read.open_table(disk::LABELSETS).map_err(|e| corrupt(e.to_string()))?;
        let gauges_t = read.open_table(disk::GAUGES).map_err(|e| corrupt(e.to_string()))?;
        for entry in apps_t.iter().map_err(|e| corrupt(e.to_string()))? {
            let (name, _) = entry.map_err(|e| corrupt(e.to_string()))?;
            let name: Arc<str> = name.value().into();
            let app = App::new(Arc::clone(&name), &self.limits, first_fresh);
            {
                let mut stacks = app.stacks.write().unwrap_or_else(|e| e.into_inner());
                for (i, e) in stacks_t.range((&*name, 0u32)..=(&*name, u32::MAX)).map_err(|e| corrupt(e.to_string()))?.enumerate() {
                    let (key, blob) = e.map_err(|e| corrupt(e.to_string()))?;
                    let mut b = blob.value();
                    if key.value().1 as usize != i || b.len() < 8 {
                        return Err(corrupt(format!("stack {} of app {name:?} is malformed", key.value().1)));
                    }
                    let hash = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
                    b = &b[8..];
                    let mut frames = Vec::new();
                    while !b.is_empty() {
                        frames.push(get_varint(&mut b).ok_or_else(|| corrupt(format!("stack {i} of app {name:?} is truncated")))? as u32);
                    }
                    if frames.len() == 1 && self.frames().get(frames[0] as usize).is_some_and(|f| &**f == OVERFLOW_FRAME) {
                        let _ = app.overflow.set(i as u32);
                    } else {
                        app.stack_ids.insert(hash, i as u32);
                    }
                    stacks.push(StackEntry { hash, frames: frames.into_boxed_slice() });
                }
                *app.persisted.lock().unwrap_or_else(|e| e.into_inner()) = (stacks.len(), 1);
            }
            {
                let mut sets = app.labelsets.write().unwrap_or_else(|e| e.into_inner());
                for e in labels_t.range((&*name, 0u32)..=(&*name, u32::MAX)).map_err(|e| corrupt(e.to_string()))? {
                    let (_, blob) = e.map_err(|e| corrupt(e.to_string()))?;
                    let mut b = blob.value();
                    let bad = || corrupt(format!("a label set of app {name:?} is malformed"));
                    let samples = get_varint(&mut b).ok_or_else(bad)?;
                    let first = get_ivarint(&mut b).ok_or_else(bad)?;
                    let last = get_ivarint(&mut b).ok_or_else(bad)?;
                    let n = get_varint(&mut b).ok_or_else(bad)?;
                    let mut labels = Vec::new();
                    for _ in 0..n {
                        labels.push((get_str(&mut b).ok_or_else(bad)?, get_str(&mut b).ok_or_else(bad)?));
                    }
                    saturating_add(&app.total, samples);
                    app.last_seen_ms.fetch_max(last, Ordering::Relaxed);
                    sets.insert(labels, Arc::new(LabelStats::new(samples, first, last, false)));
                }
            }
            for e in gauges_t.range((&*name, 0u64)..=(&*name, u64::MAX)).map_err(|e| corrupt(e.to_string()))? {
                let (key, blob) = e.map_err(|e| corrupt(e.to_string()))?;
                let mut b = blob.value();
                let bad = || corrupt(format!("a gauge of app {name:?} is malformed"));
                let family = get_str(&mut b).ok_or_else(bad)?;
                let (&kind, rest) = b.split_first().ok_or_else(bad)?;
                b = rest;
                let label_value = get_str(&mut b).ok_or_else(bad)?;
                let labels = get_varint(&mut b).ok_or_else(bad)? as u32;
                let bits = u64::from_le_bytes(b.get(..8).ok_or_else(bad)?.try_into().unwrap_or_default());
                b = &b[8..];
                let updated = get_ivarint(&mut b).ok_or_else(bad)?;
                let Some(family) = FamilyKind::from_u8(kind).and_then(|k| (self.family)(&family, k)) else {
                    tracing::warn!(app = %name, family, "dropping a stored gauge of a family this stackd does not know");
                    continue;
                };
                app.gauges.insert(key.value().1, GaugeCell::new(family, label_value.into(), labels, f64::from_bits(bits), updated, false));
            }
            self.apps.insert(name, Arc::new(app));
        }
        Ok(())
    }
}

/// What one flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub buckets: usize,
    /// Rows other than buckets written (apps, stacks, label sets, gauges, frames).
    pub rows: usize,
    pub bytes: usize,
    pub evicted: usize,
    pub deleted: usize,
}

fn gauge_key(labels: u32, family: &GaugeFamily, label_value: &str) -> u64 {
    let mut h = Xxh3::new();
    h.update(&labels.to_le_bytes());
    h.update(family.name.as_bytes());
    h.update(&[family.kind as u8]);
    h.update(label_value.as_bytes());
    h.digest()
}

/// Entries sorted by (label set, stack): runs of one label set, stack ids delta-encoded:
/// `labels, n, (stack delta, count) × n`, repeated.
fn encode_bucket(counts: &DashMap<(u32, u32), AtomicU64>, out: &mut Vec<u8>) {
    let mut entries: Vec<(u32, u32, u64)> =
        counts.iter().map(|e| (e.key().0, e.key().1, e.value().load(Ordering::Relaxed))).filter(|e| e.2 > 0).collect();
    entries.sort_unstable();
    out.clear();
    let mut i = 0;
    while i < entries.len() {
        let labels = entries[i].0;
        let run = entries[i..].iter().take_while(|e| e.0 == labels).count();
        put_varint(out, u64::from(labels));
        put_varint(out, run as u64);
        let mut prev = 0u32;
        for &(_, stack, count) in &entries[i..i + run] {
            put_varint(out, u64::from(stack - prev));
            put_varint(out, count);
            prev = stack;
        }
        i += run;
    }
}

fn decode_bucket(mut blob: &[u8], mut f: impl FnMut(u32, u32, u64)) {
    while !blob.is_empty() {
        let (Some(labels), Some(run)) = (get_varint(&mut blob), get_varint(&mut blob)) else { return };
        let mut stack = 0u64;
        for _ in 0..run {
            let (Some(delta), Some(count)) = (get_varint(&mut blob), get_varint(&mut blob)) else { return };
            stack += delta;
            f(labels as u32, stack as u32, count);
        }
    }
}

fn add_count<K: Eq + Hash>(counts: &DashMap<K, AtomicU64>, key: K, n: u64) {
    if let Some(c) = counts.get(&key) {
        saturating_add(&c, n);
        return;
    }
    saturating_add(&counts.entry(key).or_default(), n);
}

/// Counts never wrap: at `u64::MAX` they stay there. (Ingest caps a single sample far below
/// that, but a long-lived total of many samples must not turn small.) One atomic add on the hot
/// path; only an add that overflows pays a second write, which pins the cell at the maximum (a
/// reader racing that write may see the wrapped value for an instant).
fn saturating_add(cell: &AtomicU64, n: u64) {
    let before = cell.fetch_add(n, Ordering::Relaxed);
    if before.checked_add(n).is_none() {
        cell.store(u64::MAX, Ordering::Relaxed);
    }
}

/// One time bucket of one app in memory.
#[derive(Debug, Default)]
struct Bucket {
    /// Set (under the write lock) when the bucket is being evicted.
    sealed: RwLock<bool>,
    dirty: AtomicBool,
    counts: DashMap<(u32, u32), AtomicU64>,
}

#[derive(Debug)]
struct StackEntry {
    hash: u64,
    frames: Box<[u32]>,
}

/// One app's stacks, buckets, label sets and gauges.
#[derive(Debug)]
pub struct App {
    pub name: Arc<str>,
    max_stacks: usize,
    stack_ids: DashMap<u64, u32>,
    stacks: RwLock<Vec<StackEntry>>,
    overflow: OnceLock<u32>,
    labelsets: RwLock<LabelSets>,
    buckets: DashMap<i64, Arc<Bucket>>,
    /// Buckets from this one on are in memory (when present at all).
    oldest_resident: AtomicI64,
    /// Serialises reloads of evicted buckets with evictions.
    reload: Mutex<()>,
    /// (stacks on disk, flushes that included this app).
    persisted: Mutex<(usize, usize)>,
    gauges: DashMap<u64, GaugeCell>,
    total: AtomicU64,
    last_seen_ms: AtomicI64,
}

#[derive(Debug)]
struct GaugeCell {
    family: &'static GaugeFamily,
    label_value: Box<str>,
    labels: u32,
    bits: AtomicU64,
    updated_ms: AtomicI64,
    /// Changed since it was last written.
    dirty: AtomicBool,
}

impl GaugeCell {
    fn new(family: &'static GaugeFamily, label_value: Box<str>, labels: u32, value: f64, updated_ms: i64, dirty: bool) -> Self {
        GaugeCell {
            family,
            label_value,
            labels,
            bits: AtomicU64::new(value.to_bits()),
            updated_ms: AtomicI64::new(updated_ms),
            dirty: AtomicBool::new(dirty),
        }
    }
}

/// A gauge as exported: family, its own label value, the origin's labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct GaugeReading {
    pub family: &'static GaugeFamily,
    pub label_value: String,
    pub labels: Labels,
    pub value: f64,
    pub updated_ms: i64,
}

/// What to aggregate: a time range (ms, `from` inclusive, `to` exclusive) and label matchers.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub labels: Vec<(String, String)>,
}

/// Aggregated stacks: frame ids root first, and their sample counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub stacks: Vec<(Box<[u32]>, u64)>,
    pub total: u64,
}

/// Samples and first/last sample time of one label value.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ValueStats {
    pub samples: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// A summary of an app for listings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AppInfo {
    pub name: String,
    /// Label name → value → samples and first/last sample time.
    pub labels: BTreeMap<String, BTreeMap<String, ValueStats>>,
    pub total_samples: u64,
    pub unique_stacks: usize,
    /// Unix ms of the newest sample or gauge.
    pub last_seen_ms: i64,
}

impl App {
    fn new(name: Arc<str>, limits: &Limits, oldest_resident: i64) -> Self {
        App {
            name,
            max_stacks: limits.max_stacks_per_app,
            stack_ids: DashMap::new(),
            stacks: RwLock::new(Vec::new()),
            overflow: OnceLock::new(),
            labelsets: RwLock::new(LabelSets {
                max_values: limits.max_label_values,
                max_sets: limits.max_series_per_app,
                ..LabelSets::default()
            }),
            buckets: DashMap::new(),
            oldest_resident: AtomicI64::new(oldest_resident),
            reload: Mutex::new(()),
            persisted: Mutex::new((0, 0)),
            gauges: DashMap::new(),
            total: AtomicU64::new(0),
            last_seen_ms: AtomicI64::new(i64::MIN),
        }
    }

    fn lock_reload(&self) -> MutexGuard<'_, ()> {
        self.reload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of a label set (created on first sight), its stats, and whether a value over the
    /// per-label limit was replaced by [`OVERFLOW_LABEL_VALUE`].
    fn labelset(&self, mut labels: Labels) -> (u32, Arc<LabelStats>, bool) {
        labels.sort();
        let mut sets = self.labelsets.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&i) = sets.index.get(&labels) {
            return (i, Arc::clone(&sets.list[i as usize].1), false);
        }
        let mut overflow = false;
        for (k, v) in &mut labels {
            let known = sets.values.get(k.as_str()).is_some_and(|vs| vs.contains(v.as_str()));
            if !known && sets.values.get(k.as_str()).is_some_and(|vs| vs.len() >= sets.max_values) {
                *v = OVERFLOW_LABEL_VALUE.to_string();
                overflow = true;
            }
        }
        // Distinct label names (tags) multiply label sets without any one label's values
        // growing: past the series limit, new sets share one overflow set.
        if !sets.index.contains_key(&labels) && sets.list.len() >= sets.max_sets {
            labels = vec![(OVERFLOW_LABEL.to_string(), OVERFLOW_LABEL_VALUE.to_string())];
            overflow = true;
        }
        if overflow {
            if let Some(&i) = sets.index.get(&labels) {
                return (i, Arc::clone(&sets.list[i as usize].1), true);
            }
        }
        let stats = Arc::new(LabelStats::new(0, i64::MAX, i64::MIN, true));
        let id = sets.insert(labels, Arc::clone(&stats));
        (id, stats, overflow)
    }

    /// Which label sets match all `matchers`; `None` when none does.
    fn matching_labelsets(&self, matchers: &[(String, String)]) -> Option<Vec<bool>> {
        let sets = self.labelsets.read().unwrap_or_else(|e| e.into_inner());
        let matching: Vec<bool> =
            sets.list.iter().map(|(set, _)| matchers.iter().all(|(k, v)| set.iter().any(|(sk, sv)| sk == k && sv == v))).collect();
        (matchers.is_empty() || matching.contains(&true)).then_some(matching)
    }

    fn stack_id(&self, stack: &RawStack<'_>, frames: &Interner) -> (u32, Stored) {
        let mut h = Xxh3::new();
        h.update(&[stack.format]);
        h.update(stack.text.as_bytes());
        let hash = h.digest();
        if let Some(id) = self.stack_ids.get(&hash) {
            return (*id, Stored::Stack);
        }
        if self.stack_ids.len() >= self.max_stacks {
            let id = *self.overflow.get_or_init(|| self.push_stack(0, Box::new([frames.intern(OVERFLOW_FRAME)])));
            return (id, Stored::Overflow);
        }
        let id = *self.stack_ids.entry(hash).or_insert_with(|| {
            let mut ids = Vec::with_capacity(32);
            (stack.decode)(stack.text, &mut |f| ids.push(frames.intern(f)));
            self.push_stack(hash, ids.into_boxed_slice())
        });
        (id, Stored::Stack)
    }

    fn push_stack(&self, hash: u64, frames: Box<[u32]>) -> u32 {
        let mut stacks = self.stacks.write().unwrap_or_else(|e| e.into_inner());
        stacks.push(StackEntry { hash, frames });
        (stacks.len() - 1) as u32
    }

    pub fn total_samples(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn unique_stacks(&self) -> usize {
        self.stack_ids.len()
    }

    /// Label names and values this app has seen, with samples and first/last sample time.
    pub fn label_values(&self) -> BTreeMap<String, BTreeMap<String, ValueStats>> {
        let mut out: BTreeMap<String, BTreeMap<String, ValueStats>> = BTreeMap::new();
        for (set, st) in self.labelsets.read().unwrap_or_else(|e| e.into_inner()).list.iter() {
            let (samples, first, last) =
                (st.samples.load(Ordering::Relaxed), st.first_ms.load(Ordering::Relaxed), st.last_ms.load(Ordering::Relaxed));
            for (k, v) in set {
                let e = out.entry(k.clone()).or_default().entry(v.clone()).or_insert(ValueStats {
                    samples: 0,
                    first_seen_ms: i64::MAX,
                    last_seen_ms: i64::MIN,
                });
                e.samples = e.samples.saturating_add(samples);
                e.first_seen_ms = e.first_seen_ms.min(first);
                e.last_seen_ms = e.last_seen_ms.max(last);
            }
        }
        // Label sets that only sent gauges have no sample times.
        for values in out.values_mut() {
            for v in values.values_mut() {
                if v.samples == 0 {
                    (v.first_seen_ms, v.last_seen_ms) = (0, 0);
                }
            }
        }
        out
    }

    pub fn info(&self) -> AppInfo {
        AppInfo {
            name: self.name.to_string(),
            labels: self.label_values(),
            total_samples: self.total_samples(),
            unique_stacks: self.unique_stacks(),
            last_seen_ms: self.last_seen_ms.load(Ordering::Relaxed).max(0),
        }
    }

    /// Current gauges of this app.
    pub fn gauges(&self) -> Vec<GaugeReading> {
        let sets = self.labelsets.read().unwrap_or_else(|e| e.into_inner());
        self.gauges
            .iter()
            .map(|g| GaugeReading {
                family: g.family,
                label_value: g.label_value.to_string(),
                labels: sets.list.get(g.labels as usize).map(|(l, _)| l.clone()).unwrap_or_default(),
                value: f64::from_bits(g.bits.load(Ordering::Relaxed)),
                updated_ms: g.updated_ms.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// One app's label sets: ids are positions in `list` (append-only, stored), `index` finds a set
/// in O(labels), `values` holds each label name's distinct values for the per-label limit.
#[derive(Debug, Default)]
struct LabelSets {
    list: Vec<(Labels, Arc<LabelStats>)>,
    index: std::collections::HashMap<Labels, u32>,
    values: std::collections::HashMap<String, std::collections::HashSet<String>>,
    max_values: usize,
    /// Label sets at most (the overflow set may go one over).
    max_sets: usize,
}

impl LabelSets {
    fn insert(&mut self, labels: Labels, stats: Arc<LabelStats>) -> u32 {
        let id = self.list.len() as u32;
        for (k, v) in &labels {
            self.values.entry(k.clone()).or_default().insert(v.clone());
        }
        self.index.insert(labels.clone(), id);
        self.list.push((labels, stats));
        id
    }
}

/// Frame names, interned once for all apps.
#[derive(Debug, Default)]
struct Interner {
    ids: DashMap<Arc<str>, u32>,
    names: RwLock<Vec<Arc<str>>>,
}

impl Interner {
    fn intern(&self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let name: Arc<str> = name.into();
        *self.ids.entry(Arc::clone(&name)).or_insert_with(|| {
            let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
            names.push(name);
            (names.len() - 1) as u32
        })
    }
}

/// Per-app totals by stack, for tests and tools.
pub fn folded_lines(store: &Store, app: &App, query: &Query) -> Option<Vec<(String, u64)>> {
    let profile = store.query(app, query)?;
    let names = store.frames();
    let mut v: Vec<(String, u64)> = profile
        .stacks
        .iter()
        .map(|(ids, c)| (ids.iter().map(|i| names.get(*i as usize).map_or("?", |n| n)).collect::<Vec<_>>().join(";"), *c))
        .collect();
    v.sort();
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{FamilyKind, GaugeFamily};

    fn split_frames(s: &str, sink: &mut dyn FnMut(&str)) {
        s.split(';').for_each(sink);
    }

    fn raw(text: &str) -> RawStack<'_> {
        RawStack { format: 9, text, decode: split_frames }
    }

    fn store(max_apps: usize, max_stacks: usize) -> Store {
        Store::new(Limits { max_apps, max_stacks_per_app: max_stacks, ..Limits::default() }, Duration::from_secs(60))
    }

    fn spec(app: &str, labels: &[(&str, &str)]) -> SourceSpec {
        SourceSpec { app: app.into(), labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn folded(store: &Store, app: &str, q: &Query) -> Vec<(String, u64)> {
        folded_lines(store, &store.app(app).expect("app"), q).expect("labels match")
    }

    fn add(s: &Store, src: &Source, text: &str, n: u64, t: i64) -> Stored {
        s.add_stack(src, &raw(text), n, t, t).expect("in range")
    }

    #[test]
    fn counts_add_up_and_decode_once() {
        let s = store(10, 10);
        let src = s.source(1, || spec("app", &[("executor", "1")])).expect("source");
        assert_eq!(add(&s, &src, "a;b", 3, 1_000), Stored::Stack);
        assert_eq!(add(&s, &src, "a;b", 2, 2_000), Stored::Stack);
        add(&s, &src, "a;c", 1, 2_000);
        assert_eq!(folded(&s, "app", &Query::default()), [("a;b".to_string(), 5), ("a;c".to_string(), 1)]);
        let app = s.app("app").expect("app");
        assert_eq!((app.total_samples(), app.unique_stacks()), (6, 2));
        let values = app.label_values();
        assert_eq!(values["executor"]["1"], ValueStats { samples: 6, first_seen_ms: 1_000, last_seen_ms: 2_000 });
    }

    #[test]
    fn origin_is_resolved_once() {
        let s = store(10, 10);
        s.source(7, || spec("a", &[])).expect("first");
        let again = s.source(7, || panic!("resolved twice")).expect("cached");
        assert_eq!(&*again.app.name, "a");
    }

    #[test]
    fn limits_are_enforced() {
        let s = store(1, 2);
        let src = s.source(1, || spec("a", &[])).expect("first app");
        assert_eq!(s.source(2, || spec("b", &[])).map(|_| ()), Err(Rejected::AppLimit));
        add(&s, &src, "x", 1, 0);
        add(&s, &src, "y", 1, 0);
        assert_eq!(add(&s, &src, "z", 4, 0), Stored::Overflow);
        assert_eq!(add(&s, &src, "w", 1, 0), Stored::Overflow);
        assert_eq!(add(&s, &src, "x", 1, 0), Stored::Stack);
        assert_eq!(
            folded(&s, "a", &Query::default()),
            [("[stackd: unique stack limit reached]".to_string(), 5), ("x".to_string(), 2), ("y".to_string(), 1)]
        );
    }

    #[test]
    fn queries_filter_by_time_and_labels() {
        let s = store(10, 10);
        let e1 = s.source(1, || spec("a", &[("executor", "1")])).expect("e1");
        let e2 = s.source(2, || spec("a", &[("executor", "2")])).expect("e2");
        add(&s, &e1, "m", 1, 0);
        add(&s, &e1, "m", 10, 60_000);
        add(&s, &e2, "m", 100, 120_000);
        let q = |from, to, labels: &[(&str, &str)]| Query {
            from_ms: from,
            to_ms: to,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        assert_eq!(folded(&s, "a", &q(None, None, &[])), [("m".to_string(), 111)]);
        assert_eq!(folded(&s, "a", &q(Some(60_000), None, &[])), [("m".to_string(), 110)]);
        assert_eq!(folded(&s, "a", &q(None, Some(60_000), &[])), [("m".to_string(), 1)]);
        assert_eq!(folded(&s, "a", &q(None, None, &[("executor", "1")])), [("m".to_string(), 11)]);
        assert!(s.query(&s.app("a").expect("a"), &q(None, None, &[("executor", "9")])).is_none());
    }

    #[test]
    fn time_limits() {
        let config = StoreConfig {
            retention: Duration::from_secs(3600),
            max_future: Duration::from_secs(600),
            ..StoreConfig::in_memory(Limits { max_apps: 1, max_stacks_per_app: 10, ..Limits::default() }, Duration::from_secs(60))
        };
        let s = Store::open(config, 0).expect("open");
        let src = s.source(1, || spec("a", &[])).expect("src");
        let now = 10_000_000;
        assert_eq!(s.add_stack(&src, &raw("x"), 1, now - 3_600_001, now), Err(Rejected::TooOld));
        assert_eq!(s.add_stack(&src, &raw("x"), 1, now + 600_001, now), Err(Rejected::InFuture));
        assert_eq!(s.add_stack(&src, &raw("x"), 1, now - 3_600_000, now), Ok(Stored::Stack));
    }

    static G: GaugeFamily = GaugeFamily { name: "g", help: "h", kind: FamilyKind::Gauge, label: None };

    #[test]
    fn gauges_set_and_relative() {
        let s = store(10, 10);
        let src = s.source(1, || spec("a", &[])).expect("src");
        let g = |value, relative| Gauge { family: &G, label_value: "", value, relative };
        s.set_gauge(&src, &g(0.0, false), 1).expect("set");
        s.set_gauge(&src, &g(-1.0, true), 2).expect("set");
        let readings = s.app("a").expect("a").gauges();
        assert_eq!(readings.len(), 1);
        assert_eq!((readings[0].value, readings[0].updated_ms), (-1.0, 2));
        s.set_gauge(&src, &g(5.0, false), 3).expect("set");
        assert_eq!(s.app("a").expect("a").gauges()[0].value, 5.0);
    }

    fn on_disk(dir: &std::path::Path, window: Duration) -> Store {
        let config = StoreConfig {
            data_dir: Some(dir.to_path_buf()),
            memory_window: window,
            retention: Duration::from_secs(7 * 86_400),
            max_future: Duration::from_secs(600),
            family: |name, kind| (name == "g" && kind == FamilyKind::Gauge).then_some(&G),
            ..StoreConfig::in_memory(Limits { max_apps: 10, max_stacks_per_app: 100, ..Limits::default() }, Duration::from_secs(60))
        };
        Store::open(config, 100 * 60_000).expect("open")
    }

    #[test]
    fn flush_evict_reload_and_restart() {
        let dir = std::env::temp_dir().join(format!("stackd-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = 100 * 60_000;
        {
            let s = on_disk(&dir, Duration::from_secs(120));
            let src = s.source(1, || spec("a", &[("executor", "1")])).expect("src");
            for minute in 90..=100 {
                s.add_stack(&src, &raw("r;x"), 1, minute * 60_000, now).expect("ok");
            }
            s.set_gauge(&src, &Gauge { family: &G, label_value: "", value: 7.0, relative: false }, now).expect("set");
            let stats = s.flush(now).expect("flush");
            assert_eq!(stats.buckets, 11);
            assert_eq!(stats.evicted, 7, "minutes 90..=96 leave memory (the window, plus one bucket of margin, stays)");
            // A late sample for an evicted minute reloads it; nothing is lost.
            s.add_stack(&src, &raw("r;x"), 5, 91 * 60_000, now).expect("ok");
            s.add_stack(&src, &raw("r;y"), 2, 95 * 60_000, now).expect("ok");
            let q = Query { from_ms: Some(90 * 60_000), to_ms: Some(92 * 60_000), labels: vec![] };
            assert_eq!(folded(&s, "a", &q), [("r;x".to_string(), 7)]);
            assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 16), ("r;y".to_string(), 2)]);
            s.flush(now).expect("flush");
        }
        let s = on_disk(&dir, Duration::from_secs(120));
        assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 16), ("r;y".to_string(), 2)]);
        let q = Query { from_ms: Some(95 * 60_000), to_ms: Some(96 * 60_000), labels: vec![] };
        assert_eq!(folded(&s, "a", &q), [("r;x".to_string(), 1), ("r;y".to_string(), 2)]);
        let app = s.app("a").expect("a");
        assert_eq!(app.total_samples(), 18);
        assert_eq!(app.gauges()[0].value, 7.0);
        // The current minute is on disk: new samples add to it rather than replace it.
        let src = s.source(1, || spec("a", &[("executor", "1")])).expect("src");
        s.add_stack(&src, &raw("r;x"), 1, now, now).expect("ok");
        s.flush(now).expect("flush");
        drop(s);
        let s = on_disk(&dir, Duration::from_secs(120));
        let q = Query { from_ms: Some(now), to_ms: None, labels: vec![] };
        assert_eq!(folded(&s, "a", &q), [("r;x".to_string(), 2)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flushes_write_only_what_changed() {
        let dir = std::env::temp_dir().join(format!("stackd-store-dirty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = 100 * 60_000;
        {
            let s = on_disk(&dir, Duration::from_secs(3600));
            for e in 0..50 {
                let src = s.source(e, || spec("a", &[("executor", &e.to_string())])).expect("src");
                s.add_stack(&src, &raw("r;x"), 1, now, now).expect("ok");
                s.set_gauge(&src, &Gauge { family: &G, label_value: "", value: e as f64, relative: false }, now).expect("set");
            }
            let first = s.flush(now).expect("flush");
            assert_eq!((first.buckets, first.rows), (1, 1 + 1 + 50 + 50 + 2), "app, stack, label sets, gauges, frames");
            assert_eq!(s.flush(now).expect("flush"), FlushStats::default(), "nothing changed, nothing written");
            let src = s.source(3, || unreachable!()).expect("cached");
            s.add_stack(&src, &raw("r;x"), 1, now, now).expect("ok");
            let third = s.flush(now).expect("flush");
            assert_eq!((third.buckets, third.rows), (1, 1), "the bucket (whole) and one label set");
        }
        let s = on_disk(&dir, Duration::from_secs(3600));
        assert_eq!(s.flush(now).expect("flush"), FlushStats::default(), "a restart writes nothing");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn many_label_sets_are_found_by_index() {
        let s = store(10, 10);
        for e in 0..30_000u64 {
            let src = s.source(e, || spec("a", &[("executor", &e.to_string()), ("host", "h")])).expect("src");
            s.add_stack(&src, &raw("x"), e + 1, 0, 0).expect("ok");
        }
        let app = s.app("a").expect("a");
        let values = app.label_values();
        assert_eq!(values["executor"].len(), 10_000 + 1, "the default cap, plus the overflow value");
        assert_eq!(values["executor"]["29"].samples, 30);
        let overflow: u64 = (10_000..30_000u64).map(|e| e + 1).sum();
        assert_eq!(values["executor"][OVERFLOW_LABEL_VALUE].samples, overflow);
        assert_eq!(app.total_samples(), (1..=30_000u64).sum::<u64>());
        // Resolving a known label set again finds the same id.
        let again = app.labelset(vec![("host".into(), "h".into()), ("executor".into(), "29".into())]);
        assert_eq!((again.0, again.2), (29, false));
    }

    #[test]
    fn label_sets_are_capped_whatever_the_label_names() {
        let limits = Limits { max_apps: 1, max_stacks_per_app: 10, max_label_values: 10, max_series_per_app: 3 };
        let s = Store::new(limits, Duration::from_secs(60));
        for n in 0..6u64 {
            let src = s.source(n, || spec("a", &[(&format!("tag{n}"), "v")])).expect("src");
            assert_eq!(src.label_overflow, n >= 3, "{n}");
            s.add_stack(&src, &raw("x"), 1, 0, 0).expect("ok");
        }
        let values = s.app("a").expect("a").label_values();
        assert_eq!(values.keys().collect::<Vec<_>>(), ["stackd_overflow", "tag0", "tag1", "tag2"]);
        assert_eq!(values[OVERFLOW_LABEL][OVERFLOW_LABEL_VALUE].samples, 3);
    }

    #[test]
    fn totals_saturate_instead_of_wrapping() {
        let s = store(10, 10);
        let src = s.source(1, || spec("a", &[])).expect("src");
        add(&s, &src, "x", u64::MAX - 1, 0);
        add(&s, &src, "x", 5, 0);
        assert_eq!(s.app("a").expect("a").total_samples(), u64::MAX);
        assert_eq!(folded(&s, "a", &Query::default()), [("x".to_string(), u64::MAX)]);
    }

    #[test]
    fn bucket_blobs_round_trip() {
        let counts: DashMap<(u32, u32), AtomicU64> = DashMap::new();
        for (k, v) in [((0, 5), 3), ((0, 1), 1), ((2, 7), 300), ((2, 1000), 1), ((1, 0), 0)] {
            counts.insert(k, AtomicU64::new(v));
        }
        let mut blob = Vec::new();
        encode_bucket(&counts, &mut blob);
        let mut back = Vec::new();
        decode_bucket(&blob, |l, s, c| back.push((l, s, c)));
        assert_eq!(back, [(0, 1, 1), (0, 5, 3), (2, 7, 300), (2, 1000, 1)]);
        assert_eq!(blob.len(), 14, "runs and deltas keep entries small");
    }
}
