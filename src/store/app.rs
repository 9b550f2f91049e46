//! One app in memory: its stacks (frame ids, root first), label sets with their running totals,
//! time buckets of counts, and gauges. Everything here is shared between ingest threads and
//! readers; the hot path (a stack already seen) is map reads and atomic adds.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use xxhash_rust::xxh3::Xxh3;

use super::{is_reserved_label, period_of, profile_of, Labels, Limits, Map, Stored, OVERFLOW_FRAME, OVERFLOW_LABEL, OVERFLOW_LABEL_VALUE};
use crate::sample::{GaugeFamily, Origin, ProfileType, Series, SeriesKind, Stack, Unit};

/// Samples and first/last sample time of one label set.
#[derive(Debug)]
pub(super) struct LabelStats {
    pub(super) samples: AtomicU64,
    pub(super) first_ms: AtomicI64,
    pub(super) last_ms: AtomicI64,
    /// Changed since it was last written.
    pub(super) dirty: AtomicBool,
}

impl LabelStats {
    pub(super) fn new(samples: u64, first_ms: i64, last_ms: i64, dirty: bool) -> Self {
        LabelStats {
            samples: AtomicU64::new(samples),
            first_ms: AtomicI64::new(first_ms),
            last_ms: AtomicI64::new(last_ms),
            dirty: AtomicBool::new(dirty),
        }
    }
}

/// Set a dirty flag without writing the cache line when it is already set (the hot path).
pub(super) fn mark(flag: &AtomicBool) {
    if !flag.load(Ordering::Relaxed) {
        flag.store(true, Ordering::Release);
    }
}

pub(super) fn add_count<K: Eq + Hash>(counts: &Map<K, AtomicU64>, key: K, n: u64) {
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
pub(super) fn saturating_add(cell: &AtomicU64, n: u64) {
    let before = cell.fetch_add(n, Ordering::Relaxed);
    if before.checked_add(n).is_none() {
        cell.store(u64::MAX, Ordering::Relaxed);
    }
}

/// One time bucket of one app in memory.
#[derive(Debug, Default)]
pub(super) struct Bucket {
    /// Writers holding the bucket open ([`Bucket::enter`]); sealing waits for them to leave.
    writers: AtomicU32,
    /// Set when the bucket is being evicted: nobody enters it any more.
    sealed: AtomicBool,
    pub(super) dirty: AtomicBool,
    pub(super) counts: Counts,
}

/// The counts of one bucket by (label set, stack), in lanes: each thread adds to its own lane,
/// so that threads adding at once do not take each other's cache lines (map locks, counters);
/// readers add the lanes up. A key may be in several lanes.
#[derive(Debug)]
pub(super) struct Counts {
    lanes: Box<[Map<(u32, u32), AtomicU64>]>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts { lanes: (0..lanes()).map(|_| Map::default()).collect() }
    }
}

/// Lanes per bucket: one per core, at most 8.
fn lanes() -> usize {
    static LANES: OnceLock<usize> = OnceLock::new();
    *LANES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// This thread's lane: threads take lanes in turn as they first add a count.
fn lane() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LANE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    LANE.with(|l| *l) % lanes()
}

impl Counts {
    pub(super) fn add(&self, key: (u32, u32), n: u64) {
        add_count(&self.lanes[lane()], key, n);
    }

    /// Every count, lane by lane: a key in several lanes comes once per lane.
    pub(super) fn each(&self, mut f: impl FnMut((u32, u32), u64)) {
        for lane in &self.lanes {
            for e in lane.iter() {
                f(*e.key(), e.value().load(Ordering::Relaxed));
            }
        }
    }

    /// `(label set, stack, count)` sorted, each key once with its lanes added up, zero counts left
    /// out.
    pub(super) fn sorted(&self) -> Vec<(u32, u32, u64)> {
        let mut entries: Vec<(u32, u32, u64)> = Vec::new();
        self.each(|(labels, stack), count| entries.push((labels, stack, count)));
        entries.sort_unstable();
        let mut merged: Vec<(u32, u32, u64)> = Vec::with_capacity(entries.len());
        for (labels, stack, count) in entries {
            match merged.last_mut() {
                Some(last) if (last.0, last.1) == (labels, stack) => last.2 = last.2.saturating_add(count),
                _ => merged.push((labels, stack, count)),
            }
        }
        merged.retain(|e| e.2 > 0);
        merged
    }
}

impl Bucket {
    /// Hold the bucket open for adding counts, until [`Bucket::leave`]; `false` (and not held)
    /// when it is sealed. A writer holds one bucket at a time, for one body or one batch of
    /// datagrams at most, and while it holds it takes no lock that a flush holds while sealing
    /// (it leaves before looking up another bucket, whose reload takes the app's reload lock):
    /// sealing cannot wait forever.
    pub(super) fn enter(&self) -> bool {
        // SeqCst here and in `seal`: either the writer sees the seal, or the sealer sees the
        // writer.
        self.writers.fetch_add(1, Ordering::SeqCst);
        if self.sealed.load(Ordering::SeqCst) {
            self.leave();
            return false;
        }
        true
    }

    pub(super) fn leave(&self) {
        self.writers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Refuse new writers and wait until those inside have left: after this, no count is
    /// added to the bucket.
    pub(super) fn seal(&self) {
        self.sealed.store(true, Ordering::SeqCst);
        let mut waited = 0u32;
        while self.writers.load(Ordering::SeqCst) != 0 {
            if waited < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            waited += 1;
        }
    }

    pub(super) fn unseal(&self) {
        self.sealed.store(false, Ordering::SeqCst);
    }

    pub(super) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
pub(super) struct StackEntry {
    pub(super) hash: u64,
    pub(super) frames: Box<[u32]>,
}

/// One app's stacks, buckets, label sets and gauges.
#[derive(Debug)]
pub struct App {
    pub name: Arc<str>,
    /// Unique among all apps of all stores of this process (the key of [`SEEN`]).
    serial: u64,
    pub(super) max_stacks: usize,
    max_frame_len: usize,
    max_stack_depth: usize,
    pub(super) stack_ids: Map<u64, u32>,
    pub(super) stacks: RwLock<Vec<StackEntry>>,
    pub(super) overflow: OnceLock<u32>,
    pub(super) labelsets: RwLock<LabelSets>,
    pub(super) buckets: Map<i64, Arc<Bucket>>,
    /// Buckets from this one on are in memory (when present at all).
    pub(super) oldest_resident: AtomicI64,
    /// Serialises reloads of evicted buckets with evictions.
    pub(super) reload: Mutex<()>,
    /// (stacks on disk, flushes that included this app).
    pub(super) persisted: Mutex<(usize, usize)>,
    pub(super) gauges: Map<u64, GaugeCell>,
    /// Engine metrics (Spark, Flink), by [`series_key`].
    pub(super) series: Map<u64, SeriesCell>,
    /// Keys of series expired since the last flush, whose rows the next flush deletes.
    pub(super) series_expired: Mutex<Vec<u64>>,
    pub(super) total: AtomicU64,
    pub(super) last_seen_ms: AtomicI64,
    /// Times retention deleted some of this app's buckets: with the total and the stack count,
    /// what tells a query's answer may have changed ([`App::generation`]).
    pub(super) deletions: AtomicU64,
}

#[derive(Debug)]
pub(super) struct GaugeCell {
    pub(super) family: &'static GaugeFamily,
    pub(super) label_value: Box<str>,
    pub(super) labels: u32,
    pub(super) bits: AtomicU64,
    pub(super) updated_ms: AtomicI64,
    /// Changed since it was last written.
    pub(super) dirty: AtomicBool,
}

impl GaugeCell {
    pub(super) fn new(family: &'static GaugeFamily, label_value: Box<str>, labels: u32, value: f64, updated_ms: i64, dirty: bool) -> Self {
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

/// One sample line of an engine's metric family, owned: what [`Series`] describes.
#[derive(Debug)]
pub(super) struct SeriesCell {
    pub(super) origin: Origin,
    pub(super) family: Box<str>,
    pub(super) kind: SeriesKind,
    pub(super) suffix: &'static str,
    pub(super) labels: Box<[(Box<str>, Box<str>)]>,
    pub(super) bits: AtomicU64,
    pub(super) updated_ms: AtomicI64,
    /// Changed since it was last written.
    pub(super) dirty: AtomicBool,
}

impl SeriesCell {
    pub(super) fn new(series: &Series<'_>, updated_ms: i64, dirty: bool) -> Self {
        SeriesCell {
            origin: series.origin,
            family: series.family.into(),
            kind: series.kind,
            suffix: series.suffix,
            labels: series.labels.iter().map(|(k, v)| (Box::from(&**k), Box::from(&**v))).collect(),
            bits: AtomicU64::new(series.value.to_bits()),
            updated_ms: AtomicI64::new(updated_ms),
            dirty: AtomicBool::new(dirty),
        }
    }
}

/// The summary suffixes a stored series may have.
pub(super) fn series_suffix(s: &str) -> Option<&'static str> {
    match s {
        "" => Some(""),
        "_count" => Some("_count"),
        _ => None,
    }
}

/// An engine metric's sample as exported.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesReading {
    pub origin: Origin,
    pub family: String,
    pub kind: SeriesKind,
    pub suffix: &'static str,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub updated_ms: i64,
}

/// An engine series as [`App::each_series`] lends it.
#[derive(Clone, Copy, Debug)]
pub struct SeriesView<'a> {
    pub origin: Origin,
    pub family: &'a str,
    pub kind: SeriesKind,
    pub suffix: &'static str,
    pub labels: &'a [(Box<str>, Box<str>)],
    pub value: f64,
    pub updated_ms: i64,
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

/// What to aggregate: a time range (ms, `from` inclusive, `to` exclusive), label matchers (all
/// must hold) and the one profile type.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub labels: Vec<Matcher>,
    pub profile: ProfileType,
}

/// One label condition of a query: the label's value is one of `values` (`executor=1,3`), or
/// with `negate` none of them (`executor!=driver`, which label sets without the label meet too,
/// as in PromQL).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Matcher {
    pub name: String,
    pub values: Vec<String>,
    pub negate: bool,
}

impl Matcher {
    /// `name=value`: exactly that value.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher { name: name.into(), values: vec![value.into()], negate: false }
    }

    /// A URL's `name=a,b` (or `name!=a,b` with `negate`): any of the comma-separated values, or
    /// the whole text (a value may hold a comma).
    pub fn parse(name: impl Into<String>, text: &str, negate: bool) -> Matcher {
        let mut values: Vec<String> = Vec::new();
        if text.contains(',') {
            values.extend(text.split(',').map(str::to_string));
        }
        values.push(text.to_string());
        values.dedup();
        Matcher { name: name.into(), values, negate }
    }

    /// Whether a label set meets this condition.
    pub fn matches(&self, set: &[(String, String)]) -> bool {
        let value = set.iter().find(|(k, _)| *k == self.name).map(|(_, v)| v);
        value.is_some_and(|v| self.values.contains(v)) != self.negate
    }

    /// `executor=1|3`, `executor!=driver`.
    pub fn describe(&self) -> String {
        let values: Vec<&str> = self.values.iter().map(String::as_str).filter(|v| !v.contains(',') || self.values.len() == 1).collect();
        format!("{}{}={}", self.name, if self.negate { "!" } else { "" }, values.join("|"))
    }
}

/// Aggregated stacks: frame ids root first, and their sample counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub stacks: Vec<(Box<[u32]>, u64)>,
    pub total: u64,
    /// The sampling period (ns) every matching label set was sampled at, when they share one.
    pub period_ns: Option<u64>,
}

/// Samples over time ([`super::Store::timeline`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timeline {
    pub bucket_ms: i64,
    /// Width of each point: a whole number of buckets.
    pub step_ms: i64,
    /// Largest total first.
    pub series: Vec<TimelineSeries>,
}

/// One line of a timeline: all matching samples, or those with one value of the grouping label.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TimelineSeries {
    /// The grouping label's value (`""` for label sets without it); absent when not grouped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub total: u64,
    /// (start of the step in Unix ms, samples), ascending; steps without samples left out.
    pub points: Vec<(i64, u64)>,
}

/// Samples and first/last sample time of one label value.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ValueStats {
    pub samples: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// The total of one profile type of an app, in its unit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TypeTotal {
    #[serde(rename = "type")]
    pub profile: ProfileType,
    pub unit: Unit,
    pub total: u64,
    /// For samples: the time they stand for (samples × sampling period), when every label set
    /// of the type has a known period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<u64>,
}

/// A summary of an app for listings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AppInfo {
    pub name: String,
    /// Label name → value → samples and first/last sample time (summed over profile types).
    pub labels: BTreeMap<String, BTreeMap<String, ValueStats>>,
    /// The profile types with samples, in [`ProfileType::ALL`]'s order, with their totals.
    pub types: Vec<TypeTotal>,
    /// The type a flame graph shows when the URL names none: `cpu` when the app has it, else
    /// its first type.
    pub default_type: ProfileType,
    /// The total of the default type.
    pub total_samples: u64,
    pub unique_stacks: usize,
    /// Unix ms of the newest sample or gauge.
    pub last_seen_ms: i64,
}

/// `cpu` when among `types`, else the first of them (`cpu` when there is none).
fn default_of(types: &[TypeTotal]) -> ProfileType {
    if types.iter().any(|t| t.profile == ProfileType::Cpu) {
        return ProfileType::Cpu;
    }
    types.first().map_or(ProfileType::Cpu, |t| t.profile)
}

/// Slots of [`SEEN`] per thread.
const SEEN_SLOTS: usize = 4096;

thread_local! {
    /// The stack ids this thread looked up last, by (app serial, stack hash) → id, one per slot
    /// (`hash % SEEN_SLOTS`), newest wins: a stack id never changes once given, so a hit needs
    /// no lock, and the app's map (whose locks every ingest thread takes) is read on a miss only.
    static SEEN: std::cell::RefCell<Vec<(u64, u64, u32)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn remember(seen: &mut Vec<(u64, u64, u32)>, slot: usize, entry: (u64, u64, u32)) {
    if seen.is_empty() {
        seen.resize(SEEN_SLOTS, (u64::MAX, 0, 0));
    }
    seen[slot] = entry;
}

impl App {
    pub(super) fn new(name: Arc<str>, limits: &Limits, oldest_resident: i64) -> Self {
        static SERIALS: AtomicU64 = AtomicU64::new(0);
        App {
            name,
            serial: SERIALS.fetch_add(1, Ordering::Relaxed),
            max_stacks: limits.max_stacks_per_app,
            max_frame_len: limits.max_frame_len,
            max_stack_depth: limits.max_stack_depth.max(1),
            stack_ids: Map::default(),
            stacks: RwLock::new(Vec::new()),
            overflow: OnceLock::new(),
            labelsets: RwLock::new(LabelSets {
                max_values: limits.max_label_values,
                max_sets: limits.max_series_per_app,
                ..LabelSets::default()
            }),
            buckets: Map::default(),
            oldest_resident: AtomicI64::new(oldest_resident),
            reload: Mutex::new(()),
            persisted: Mutex::new((0, 0)),
            gauges: Map::default(),
            series: Map::default(),
            series_expired: Mutex::new(Vec::new()),
            total: AtomicU64::new(0),
            last_seen_ms: AtomicI64::new(i64::MIN),
            deletions: AtomicU64::new(0),
        }
    }

    /// Changes whenever a query of this app could answer differently: a sample added (the total
    /// grows), or buckets deleted by retention. Equal generations, equal answers to the same
    /// query with absolute times.
    pub fn generation(&self) -> (u64, u64) {
        (self.total.load(Ordering::Acquire), self.deletions.load(Ordering::Acquire))
    }

    pub(super) fn lock_reload(&self) -> MutexGuard<'_, ()> {
        self.reload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of a label set (created on first sight), its stats, and whether a value over the
    /// per-label limit was replaced by [`OVERFLOW_LABEL_VALUE`].
    pub(super) fn labelset(&self, mut labels: Labels) -> (u32, Arc<LabelStats>, bool) {
        labels.sort();
        let mut sets = self.labelsets.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&i) = sets.index.get(&labels) {
            return (i, Arc::clone(&sets.list[i as usize].1), false);
        }
        let mut overflow = false;
        for (k, v) in &mut labels {
            if is_reserved_label(k) {
                continue;
            }
            let known = sets.values.get(k.as_str()).is_some_and(|vs| vs.contains(v.as_str()));
            if !known && sets.values.get(k.as_str()).is_some_and(|vs| vs.len() >= sets.max_values) {
                *v = OVERFLOW_LABEL_VALUE.to_string();
                overflow = true;
            }
        }
        // Distinct label names (tags) multiply label sets without any one label's values
        // growing: past the series limit, new sets share one overflow set.
        if !sets.index.contains_key(&labels) && sets.list.len() >= sets.max_sets {
            // One overflow set per profile type (and period): types are never summed.
            let profile: Vec<(String, String)> = labels.iter().filter(|(k, _)| is_reserved_label(k)).cloned().collect();
            labels = vec![(OVERFLOW_LABEL.to_string(), OVERFLOW_LABEL_VALUE.to_string())];
            labels.extend(profile);
            labels.sort();
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

    /// Which label sets of type `profile` match all `matchers`; `None` when none does.
    pub(super) fn matching_labelsets(&self, matchers: &[Matcher], profile: ProfileType) -> Option<Vec<bool>> {
        let sets = self.labelsets.read().unwrap_or_else(|e| e.into_inner());
        let matching: Vec<bool> =
            sets.list.iter().map(|(set, _)| profile_of(set) == profile && matchers.iter().all(|m| m.matches(set))).collect();
        (matchers.is_empty() || matching.contains(&true)).then_some(matching)
    }

    /// The profile types this app has samples of, with their totals, in [`ProfileType::ALL`]'s
    /// order.
    pub fn types(&self) -> Vec<TypeTotal> {
        self.types_where(|_| true)
    }

    /// What this node ingested itself, by type (other nodes' counts, imported from their
    /// segments, left out), and whether the app holds any other node's counts.
    pub fn own_types(&self) -> (Vec<TypeTotal>, bool) {
        let remote = self.labelsets.read().unwrap_or_else(|e| e.into_inner()).list.iter().any(|(set, _)| is_remote(set));
        (self.types_where(|set| !is_remote(set)), remote)
    }

    fn types_where(&self, keep: impl Fn(&Labels) -> bool) -> Vec<TypeTotal> {
        let mut totals = [0u64; ProfileType::ALL.len()];
        let mut times: [Option<u64>; ProfileType::ALL.len()] = [Some(0); ProfileType::ALL.len()];
        for (set, st) in self.labelsets.read().unwrap_or_else(|e| e.into_inner()).list.iter() {
            let samples = st.samples.load(Ordering::Relaxed);
            if samples == 0 || !keep(set) {
                continue;
            }
            let i = profile_of(set) as usize;
            totals[i] = totals[i].saturating_add(samples);
            times[i] = times[i].zip(period_of(set)).map(|(t, p)| t.saturating_add(samples.saturating_mul(p)));
        }
        ProfileType::ALL
            .iter()
            .zip(totals)
            .zip(times)
            .filter(|((_, total), _)| *total > 0)
            .map(|((&profile, total), time)| TypeTotal {
                profile,
                unit: profile.unit(),
                total,
                time_ns: time.filter(|_| profile.unit() == Unit::Samples),
            })
            .collect()
    }

    /// The sampling period every `matching` label set was sampled at, when they share one.
    pub(super) fn period(&self, matching: &[bool]) -> Option<u64> {
        let sets = self.labelsets.read().unwrap_or_else(|e| e.into_inner());
        let mut periods = sets.list.iter().zip(matching).filter(|(_, m)| **m).map(|((set, _), _)| period_of(set));
        let first = periods.next()??;
        periods.all(|p| p == Some(first)).then_some(first)
    }

    /// The type a graph shows when none is asked for: `cpu` when the app has it, else its first.
    pub fn default_type(&self) -> ProfileType {
        default_of(&self.types())
    }

    pub(super) fn stack_id(&self, stack: &Stack<'_>, frames: &Interner) -> (u32, Stored) {
        let hash = stack.identity();
        let slot = hash as usize % SEEN_SLOTS;
        if let Some(id) = SEEN.with_borrow(|seen| seen.get(slot).filter(|s| (s.0, s.1) == (self.serial, hash)).map(|s| s.2)) {
            return (id, Stored::Stack);
        }
        if let Some(id) = self.stack_ids.get(&hash) {
            SEEN.with_borrow_mut(|seen| remember(seen, slot, (self.serial, hash, *id)));
            return (*id, Stored::Stack);
        }
        if self.stack_ids.len() >= self.max_stacks {
            let id = *self.overflow.get_or_init(|| self.push_stack(0, Box::new([frames.intern(OVERFLOW_FRAME)])));
            return (id, Stored::Overflow);
        }
        let (mut long, mut deep) = (false, false);
        let id = *self.stack_ids.entry(hash).or_insert_with(|| {
            let mut ids = Vec::with_capacity(32);
            stack.each_frame(&mut |f| {
                if ids.len() >= self.max_stack_depth {
                    deep = true;
                    return;
                }
                let cut = crate::ingest::truncated(f, self.max_frame_len);
                long |= cut.len() < f.len();
                ids.push(frames.intern(cut));
            });
            if deep {
                ids.pop();
                ids.push(frames.intern(super::DEPTH_FRAME));
            }
            self.push_stack(hash, ids.into_boxed_slice())
        });
        if long || deep {
            return (id, Stored::Cut { frames: long, depth: deep });
        }
        (id, Stored::Stack)
    }

    /// Per label set id: whether it holds another node's counts ([`is_remote`]).
    pub(super) fn remote_labelsets(&self) -> Vec<bool> {
        self.labelsets.read().unwrap_or_else(|e| e.into_inner()).list.iter().map(|(l, _)| is_remote(l)).collect()
    }

    /// A label set by id.
    pub(super) fn labelset_by_id(&self, id: u32) -> Option<Labels> {
        self.labelsets.read().unwrap_or_else(|e| e.into_inner()).list.get(id as usize).map(|(l, _)| l.clone())
    }

    /// A stack's frame ids by stack id.
    pub(super) fn stack_frames(&self, id: u32) -> Option<Box<[u32]>> {
        self.stacks.read().unwrap_or_else(|e| e.into_inner()).get(id as usize).map(|s| s.frames.clone())
    }

    pub(super) fn push_stack(&self, hash: u64, frames: Box<[u32]>) -> u32 {
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
            for (k, v) in set.iter().filter(|(k, _)| !is_reserved_label(k)) {
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
        let types = self.types();
        let default_type = default_of(&types);
        AppInfo {
            name: self.name.to_string(),
            labels: self.label_values(),
            total_samples: types.iter().find(|t| t.profile == default_type).map_or(0, |t| t.total),
            types,
            default_type,
            unique_stacks: self.unique_stacks(),
            last_seen_ms: self.last_seen_ms.load(Ordering::Relaxed).max(0),
        }
    }

    /// Each engine series of this app, borrowed (for /metrics, which writes them as they come).
    pub fn each_series(&self, mut f: impl FnMut(SeriesView<'_>)) {
        for c in self.series.iter() {
            f(SeriesView {
                origin: c.origin,
                family: &c.family,
                kind: c.kind,
                suffix: c.suffix,
                labels: &c.labels,
                value: f64::from_bits(c.bits.load(Ordering::Relaxed)),
                updated_ms: c.updated_ms.load(Ordering::Relaxed),
            });
        }
    }

    /// Current engine metrics of this app, owned.
    pub fn series(&self) -> Vec<SeriesReading> {
        let mut out = Vec::with_capacity(self.series.len());
        self.each_series(|v| {
            out.push(SeriesReading {
                origin: v.origin,
                family: v.family.to_string(),
                kind: v.kind,
                suffix: v.suffix,
                labels: v.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                value: v.value,
                updated_ms: v.updated_ms,
            })
        });
        out
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
pub(super) struct LabelSets {
    pub(super) list: Vec<(Labels, Arc<LabelStats>)>,
    pub(super) index: std::collections::HashMap<Labels, u32>,
    pub(super) values: std::collections::HashMap<String, std::collections::HashSet<String>>,
    pub(super) max_values: usize,
    /// Label sets at most (the overflow set may go one over).
    pub(super) max_sets: usize,
}

impl LabelSets {
    pub(super) fn insert(&mut self, labels: Labels, stats: Arc<LabelStats>) -> u32 {
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
pub(super) struct Interner {
    pub(super) ids: Map<Arc<str>, u32>,
    pub(super) names: RwLock<Vec<Arc<str>>>,
}

impl Interner {
    pub(super) fn intern(&self, name: &str) -> u32 {
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

pub(super) fn gauge_key(labels: u32, family: &GaugeFamily, label_value: &str) -> u64 {
    let mut h = Xxh3::new();
    h.update(&labels.to_le_bytes());
    h.update(family.name.as_bytes());
    h.update(&[family.kind as u8]);
    h.update(label_value.as_bytes());
    h.digest()
}

/// What the store knows an engine series by: its family, kind, suffix and labels.
pub(super) fn series_key(series: &Series<'_>) -> u64 {
    let mut h = Xxh3::new();
    h.update(b"series\0");
    h.update(&[series.kind as u8]);
    for part in [series.family, series.suffix] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for (k, v) in &series.labels {
        for part in [&**k, &**v] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.digest()
}

/// Whether a label set holds another node's counts (it carries [`super::NODE_LABEL`]).
fn is_remote(labels: &Labels) -> bool {
    labels.iter().any(|(k, _)| k == super::NODE_LABEL)
}
