//! Per-app aggregation in lock-free counters.
//!
//! * An **origin** (an agent's prefix, or a line-protocol tag set) is resolved once to an app and
//!   a label set and cached under a 64-bit hash of its raw text ([`Store::source`]).
//! * A **stack** is identified by the xxh3 hash of its raw encoded text; it is decoded and its
//!   frames interned only the first time it is seen ([`App::add_stack`]). Later samples of the
//!   same stack cost one hash, one map read and one atomic add.
//! * **Counts** live in `DashMap<(bucket, label set, stack), AtomicU64>`; samples are added,
//!   never overwritten (the agent sends per-flush deltas).
//! * **Gauges** keep the latest value per (label set, family, label value).
//!
//! Hash collisions of 64-bit xxh3 between distinct stacks of one app are not detected; at a
//! million stacks the chance is below 1e-7.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use dashmap::DashMap;
use xxhash_rust::xxh3::Xxh3;

use crate::sample::{Gauge, GaugeFamily, RawStack};

/// The frame that samples of new stacks are counted under once an app has hit its stack limit.
pub const OVERFLOW_FRAME: &str = "[stackd: unique stack limit reached]";

/// Limits on what the store keeps. Hitting one is counted by the caller.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_apps: usize,
    pub max_stacks_per_app: usize,
}

/// Why a sample could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("app limit reached")]
    AppLimit,
}

impl Rejected {
    pub fn reason(self) -> &'static str {
        match self {
            Self::AppLimit => "app_limit",
        }
    }
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

/// A resolved origin: where its samples go.
#[derive(Debug)]
pub struct Source {
    pub app: Arc<App>,
    labels: u32,
}

/// All apps, the origin cache and the frame interner.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    bucket_ms: i64,
    apps: DashMap<Arc<str>, Arc<App>>,
    sources: DashMap<u64, Arc<Source>>,
    frames: Interner,
}

impl Store {
    pub fn new(limits: Limits, bucket: std::time::Duration) -> Self {
        Store {
            limits,
            bucket_ms: (bucket.as_millis() as i64).max(1),
            apps: DashMap::new(),
            sources: DashMap::new(),
            frames: Interner::default(),
        }
    }

    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// The source for an origin hash, resolving it with `resolve` on first sight.
    pub fn source(&self, origin: u64, resolve: impl FnOnce() -> SourceSpec) -> Result<Arc<Source>, Rejected> {
        if let Some(s) = self.sources.get(&origin) {
            return Ok(Arc::clone(&s));
        }
        let spec = resolve();
        let app = self.app_or_create(&spec.app)?;
        let labels = app.labelset_id(spec.labels);
        let source = Arc::new(Source { app, labels });
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
        let app = self.apps.entry(Arc::clone(&name)).or_insert_with(|| Arc::new(App::new(name, self.limits.max_stacks_per_app)));
        Ok(Arc::clone(app.value()))
    }

    /// Add `count` samples of `stack` at `time_ms`.
    pub fn add_stack(&self, source: &Source, stack: &RawStack<'_>, count: u64, time_ms: i64) -> Stored {
        let app = &source.app;
        let (id, stored) = app.stack_id(stack, &self.frames);
        let key = CountKey { bucket: time_ms.div_euclid(self.bucket_ms), labels: source.labels, stack: id };
        add_count(&app.counts, key, count);
        app.total.fetch_add(count, Ordering::Relaxed);
        app.last_seen_ms.fetch_max(time_ms, Ordering::Relaxed);
        stored
    }

    /// Set (or, for relative gauges, change) a gauge.
    pub fn set_gauge(&self, source: &Source, gauge: &Gauge<'_>, time_ms: i64) {
        let app = &source.app;
        let mut h = Xxh3::new();
        h.update(&source.labels.to_le_bytes());
        h.update(gauge.family.name.as_bytes());
        h.update(&[gauge.family.kind as u8]);
        h.update(gauge.label_value.as_bytes());
        let key = h.digest();
        let cell = match app.gauges.get(&key) {
            Some(c) => c,
            None => app
                .gauges
                .entry(key)
                .or_insert_with(|| GaugeCell {
                    family: gauge.family,
                    label_value: gauge.label_value.into(),
                    labels: source.labels,
                    bits: AtomicU64::new(0f64.to_bits()),
                    updated_ms: AtomicI64::new(time_ms),
                })
                .downgrade(),
        };
        if gauge.relative {
            let _ = cell.bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some((f64::from_bits(b) + gauge.value).to_bits()));
        } else {
            cell.bits.store(gauge.value.to_bits(), Ordering::Relaxed);
        }
        cell.updated_ms.store(time_ms, Ordering::Relaxed);
        app.last_seen_ms.fetch_max(time_ms, Ordering::Relaxed);
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
}

fn add_count<K: Eq + Hash>(counts: &DashMap<K, AtomicU64>, key: K, n: u64) {
    if let Some(c) = counts.get(&key) {
        c.fetch_add(n, Ordering::Relaxed);
        return;
    }
    counts.entry(key).or_default().fetch_add(n, Ordering::Relaxed);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CountKey {
    bucket: i64,
    labels: u32,
    stack: u32,
}

/// One app's stacks, counts, label sets and gauges.
#[derive(Debug)]
pub struct App {
    pub name: Arc<str>,
    max_stacks: usize,
    stack_ids: DashMap<u64, u32>,
    /// Stack id → frame ids, root first.
    stacks: RwLock<Vec<Box<[u32]>>>,
    overflow: OnceLock<u32>,
    labelsets: RwLock<Vec<Labels>>,
    counts: DashMap<CountKey, AtomicU64>,
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

/// A summary of an app for listings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AppInfo {
    pub name: String,
    /// Label name → values seen.
    pub labels: BTreeMap<String, BTreeSet<String>>,
    pub total_samples: u64,
    pub unique_stacks: usize,
    /// Unix ms of the newest sample or gauge.
    pub last_seen_ms: i64,
}

impl App {
    fn new(name: Arc<str>, max_stacks: usize) -> Self {
        App {
            name,
            max_stacks,
            stack_ids: DashMap::new(),
            stacks: RwLock::new(Vec::new()),
            overflow: OnceLock::new(),
            labelsets: RwLock::new(Vec::new()),
            counts: DashMap::new(),
            gauges: DashMap::new(),
            total: AtomicU64::new(0),
            last_seen_ms: AtomicI64::new(i64::MIN),
        }
    }

    fn labelset_id(&self, mut labels: Labels) -> u32 {
        labels.sort();
        let mut sets = self.labelsets.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = sets.iter().position(|l| *l == labels) {
            return i as u32;
        }
        sets.push(labels);
        (sets.len() - 1) as u32
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
            let id = *self.overflow.get_or_init(|| self.push_stack(Box::new([frames.intern(OVERFLOW_FRAME)])));
            return (id, Stored::Overflow);
        }
        let id = *self.stack_ids.entry(hash).or_insert_with(|| {
            let mut ids = Vec::with_capacity(32);
            (stack.decode)(stack.text, &mut |f| ids.push(frames.intern(f)));
            self.push_stack(ids.into_boxed_slice())
        });
        (id, Stored::Stack)
    }

    fn push_stack(&self, frames: Box<[u32]>) -> u32 {
        let mut stacks = self.stacks.write().unwrap_or_else(|e| e.into_inner());
        stacks.push(frames);
        (stacks.len() - 1) as u32
    }

    pub fn total_samples(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn unique_stacks(&self) -> usize {
        self.stack_ids.len()
    }

    /// Sum the counts that match `query`, per stack. `None` when no label set matches.
    pub fn query(&self, query: &Query, bucket_ms: i64) -> Option<Profile> {
        let matching: Vec<bool> = {
            let sets = self.labelsets.read().unwrap_or_else(|e| e.into_inner());
            sets.iter().map(|set| query.labels.iter().all(|(k, v)| set.iter().any(|(sk, sv)| sk == k && sv == v))).collect()
        };
        if !query.labels.is_empty() && !matching.contains(&true) {
            return None;
        }
        // A bucket is included when it overlaps the range.
        let first = query.from_ms.map_or(i64::MIN, |f| f.div_euclid(bucket_ms));
        let last = query.to_ms.map_or(i64::MAX, |t| (t - 1).div_euclid(bucket_ms));
        let mut per_stack: HashMap<u32, u64> = HashMap::new();
        for e in self.counts.iter() {
            let k = e.key();
            if k.bucket >= first && k.bucket <= last && matching.get(k.labels as usize).copied().unwrap_or(false) {
                *per_stack.entry(k.stack).or_default() += e.value().load(Ordering::Relaxed);
            }
        }
        let stacks = self.stacks.read().unwrap_or_else(|e| e.into_inner());
        let mut profile = Profile::default();
        for (id, count) in per_stack {
            if count == 0 {
                continue;
            }
            profile.total += count;
            profile.stacks.push((stacks[id as usize].clone(), count));
        }
        Some(profile)
    }

    /// Label names and values this app has seen, for error messages and listings.
    pub fn label_values(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for set in self.labelsets.read().unwrap_or_else(|e| e.into_inner()).iter() {
            for (k, v) in set {
                out.entry(k.clone()).or_default().insert(v.clone());
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
                labels: sets.get(g.labels as usize).cloned().unwrap_or_default(),
                value: f64::from_bits(g.bits.load(Ordering::Relaxed)),
                updated_ms: g.updated_ms.load(Ordering::Relaxed),
            })
            .collect()
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
        Store::new(Limits { max_apps, max_stacks_per_app: max_stacks }, std::time::Duration::from_secs(60))
    }

    fn spec(app: &str, labels: &[(&str, &str)]) -> SourceSpec {
        SourceSpec { app: app.into(), labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn folded(store: &Store, app: &str, q: &Query) -> Vec<(String, u64)> {
        let p = store.app(app).expect("app").query(q, store.bucket_ms()).expect("labels match");
        let names = store.frames();
        let mut v: Vec<_> = p
            .stacks
            .iter()
            .map(|(ids, c)| (ids.iter().map(|i| names[*i as usize].to_string()).collect::<Vec<_>>().join(";"), *c))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn counts_add_up_and_decode_once() {
        let s = store(10, 10);
        let src = s.source(1, || spec("app", &[("executor", "1")])).expect("source");
        assert_eq!(s.add_stack(&src, &raw("a;b"), 3, 1_000), Stored::Stack);
        assert_eq!(s.add_stack(&src, &raw("a;b"), 2, 2_000), Stored::Stack);
        s.add_stack(&src, &raw("a;c"), 1, 2_000);
        assert_eq!(folded(&s, "app", &Query::default()), [("a;b".to_string(), 5), ("a;c".to_string(), 1)]);
        let app = s.app("app").expect("app");
        assert_eq!((app.total_samples(), app.unique_stacks()), (6, 2));
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
        s.add_stack(&src, &raw("x"), 1, 0);
        s.add_stack(&src, &raw("y"), 1, 0);
        assert_eq!(s.add_stack(&src, &raw("z"), 4, 0), Stored::Overflow);
        assert_eq!(s.add_stack(&src, &raw("w"), 1, 0), Stored::Overflow);
        assert_eq!(s.add_stack(&src, &raw("x"), 1, 0), Stored::Stack);
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
        s.add_stack(&e1, &raw("m"), 1, 0);
        s.add_stack(&e1, &raw("m"), 10, 60_000);
        s.add_stack(&e2, &raw("m"), 100, 120_000);
        let q = |from, to, labels: &[(&str, &str)]| Query {
            from_ms: from,
            to_ms: to,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        assert_eq!(folded(&s, "a", &q(None, None, &[])), [("m".to_string(), 111)]);
        assert_eq!(folded(&s, "a", &q(Some(60_000), None, &[])), [("m".to_string(), 110)]);
        assert_eq!(folded(&s, "a", &q(None, Some(60_000), &[])), [("m".to_string(), 1)]);
        assert_eq!(folded(&s, "a", &q(None, None, &[("executor", "1")])), [("m".to_string(), 11)]);
        assert!(s.app("a").expect("a").query(&q(None, None, &[("executor", "9")]), 60_000).is_none());
    }

    static G: GaugeFamily = GaugeFamily { name: "g", help: "h", kind: FamilyKind::Gauge, label: None };

    #[test]
    fn gauges_set_and_relative() {
        let s = store(10, 10);
        let src = s.source(1, || spec("a", &[])).expect("src");
        let g = |value, relative| Gauge { family: &G, label_value: "", value, relative };
        s.set_gauge(&src, &g(0.0, false), 1);
        s.set_gauge(&src, &g(-1.0, true), 2);
        let readings = s.app("a").expect("a").gauges();
        assert_eq!(readings.len(), 1);
        assert_eq!((readings[0].value, readings[0].updated_ms), (-1.0, 2));
        s.set_gauge(&src, &g(5.0, false), 3);
        assert_eq!(s.app("a").expect("a").gauges()[0].value, 5.0);
    }
}
