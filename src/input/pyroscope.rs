//! Grafana Pyroscope's clients: what their profiles mean in stackd. Every request is decoded and
//! checked whole into a [`Batch`] before anything of it is stored, so a malformed request stores
//! nothing.
//!
//! * The application: `/ingest`'s `name` before its tags, or the Push API's `service_name`
//!   label. A trailing `.cpu`, `.itimer`, `.wall`, `.alloc_objects`… ([`type_suffix`]) is cut
//!   off: for collapsed stacks it is their profile type (Pyroscope's convention), for pprof and
//!   JFR the types come from the profile itself.
//! * Labels: the name's tags, the Push API's labels (but `service_name`, and names starting
//!   with `__` such as `__name__`), pprof samples' string labels, the Java agent's context
//!   labels; each name escaped to `[a-zA-Z_][a-zA-Z0-9_]*` (`process.runtime.name` →
//!   `process_runtime_name`). A sample's own label does not replace one of its series.
//! * pprof sample types ([`sample_profile`]): `cpu`, `wall`, `samples` → `cpu` (`wall` when the
//!   type, the period type or the Push API's `__name__` says wall), values in time turned into
//!   samples at the profile's period; `alloc_objects`/`alloc_space`, `inuse_objects`/
//!   `inuse_space` (Node.js: `objects`/`space`), `contentions`/`delay`. Others (`goroutine`…)
//!   are skipped and counted. When two sample types mean one profile type (Go's CPU profile:
//!   `samples` and `cpu`), the first is taken.
//! * Frames: each location's function names, the functions inlined at it after the one they
//!   were inlined into; an unsymbolized location is its binary's file name and address.

use std::collections::HashMap;

use crate::ingest::{Ingest, MAX_SAMPLE_COUNT};
use crate::outcome::Reject;
use crate::protocol::pprof::{self, Checked};
use crate::sample::{escape_label_name, ProfileType, Stack};
use crate::store::{Labels, SourceSpec};

/// Pyroscope's default sampling rate (`types.DefaultSampleRate`): 100 Hz.
pub const DEFAULT_SAMPLE_RATE: u64 = 100;

/// Label sets a request may carry at most (series × the distinct label sets of their samples).
pub const MAX_GROUPS: usize = 10_000;

/// Labels of one series at most (Pyroscope's `max_label_names_per_series` is 30).
pub const MAX_LABELS: usize = 64;

/// The profile type a name's last dot-part stands for (`app.cpu`, `app.alloc_objects`), as
/// the Pyroscope clients before the Push API named their profiles.
pub fn type_suffix(suffix: &str) -> Option<ProfileType> {
    Some(match suffix {
        "cpu" | "itimer" | "samples" => ProfileType::Cpu,
        "wall" => ProfileType::Wall,
        "off_cpu" => ProfileType::OffCpu,
        "alloc_objects" | "alloc_in_new_tlab_objects" | "alloc_outside_tlab_objects" | "alloc_sample_objects" => ProfileType::AllocObjects,
        "alloc_space" | "alloc_bytes" | "alloc_in_new_tlab_bytes" | "alloc_outside_tlab_bytes" | "alloc_sample_bytes" => {
            ProfileType::AllocBytes
        }
        "inuse_objects" => ProfileType::InuseObjects,
        "inuse_space" | "inuse_bytes" => ProfileType::InuseBytes,
        "lock_count" | "contentions" => ProfileType::LockCount,
        "lock_duration" | "lock_ns" | "delay" => ProfileType::LockNs,
        _ => return None,
    })
}

/// An application name without its type suffix, and the type the suffix named.
pub fn split_type(name: &str) -> (&str, Option<ProfileType>) {
    match name.rsplit_once('.') {
        Some((app, suffix)) if !app.is_empty() => match type_suffix(suffix) {
            Some(t) => (app, Some(t)),
            None => (name, None),
        },
        _ => (name, None),
    }
}

/// Labels as stackd keeps them: names escaped, reserved ones (`__…`, `service_name`) dropped,
/// sorted; a name given twice keeps its first value.
pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Labels, String> {
    let mut out: Labels = Vec::new();
    for (k, v) in pairs {
        if k.starts_with("__") || k == "service_name" || k.is_empty() {
            continue;
        }
        let name = escape_label_name(k);
        if !out.iter().any(|(seen, _)| *seen == name) {
            out.push((name, v.to_string()));
        }
    }
    if out.len() > MAX_LABELS {
        return Err(format!("{} labels on one series, over the {MAX_LABELS} stackd takes", out.len()));
    }
    out.sort();
    Ok(out)
}

/// How a pprof sample type's values become a profile type's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Convert {
    /// Taken as they are.
    Same,
    /// Time in units of this many ns, divided by the period: samples.
    TimeToSamples { unit_ns: u64 },
    /// Time in units of this many ns, kept as ns.
    Nanoseconds { unit_ns: u64 },
}

/// ns in one of a pprof unit, for units of time.
fn unit_ns(unit: &str) -> Option<u64> {
    Some(match unit {
        "nanoseconds" | "nanosecond" | "ns" => 1,
        "microseconds" | "microsecond" | "us" => 1_000,
        "milliseconds" | "millisecond" | "ms" => 1_000_000,
        "seconds" | "second" | "s" => 1_000_000_000,
        _ => return None,
    })
}

/// The profile type of a pprof sample type (`type`/`unit`), and how its values convert;
/// `wall` says the samples are wall-clock (the period type or the Push API's `__name__`).
fn sample_profile(ty: &str, unit: &str, wall: bool) -> Option<(ProfileType, Convert)> {
    let time = unit_ns(unit);
    Some(match ty {
        "cpu" | "wall" | "samples" | "sample" => {
            let t = if wall || ty == "wall" { ProfileType::Wall } else { ProfileType::Cpu };
            (t, time.map_or(Convert::Same, |unit_ns| Convert::TimeToSamples { unit_ns }))
        }
        "alloc_objects" | "alloc_samples" => (ProfileType::AllocObjects, Convert::Same),
        "alloc_space" | "alloc_bytes" => (ProfileType::AllocBytes, Convert::Same),
        "inuse_objects" | "objects" => (ProfileType::InuseObjects, Convert::Same),
        "inuse_space" | "space" | "inuse_bytes" => (ProfileType::InuseBytes, Convert::Same),
        "contentions" | "lock_count" => (ProfileType::LockCount, Convert::Same),
        "delay" | "lock_duration" | "lock_time" => (ProfileType::LockNs, Convert::Nanoseconds { unit_ns: time? }),
        _ => return None,
    })
}

/// What the Go client's `sample_type_config` says of one sample type.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct SampleTypeConfig {
    #[serde(default)]
    pub units: Option<String>,
    #[serde(default, rename = "display-name")]
    pub display_name: Option<String>,
    /// Its values grow over the process's life: the profile holds them since the start, and
    /// `prev_profile` what they were at the last upload.
    #[serde(default)]
    pub cumulative: bool,
}

/// Where a profile goes and what its request said of it.
#[derive(Clone, Debug)]
pub struct Series {
    pub app: String,
    /// Already as [`labels`] makes them.
    pub labels: Labels,
    /// The request's time for the profile (`from`); `None`: the profile's own `time_nanos`,
    /// else now.
    pub time_ms: Option<i64>,
    /// `sampleRate`, Hz: the period of samples whose profile does not state one.
    pub sample_rate: Option<u64>,
    /// The samples are wall-clock time (the Push API's `__name__=wall`).
    pub wall: bool,
}

/// What was left out of a request, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Sample types stackd has no profile type for (`goroutine`, …), by name.
    pub types: std::collections::BTreeSet<String>,
    /// Values below zero (a cumulative profile whose counts went down).
    pub negative: u64,
}

/// One label set's stacks at one time.
#[derive(Debug)]
struct Group {
    spec: SourceSpec,
    time_ms: i64,
    /// Frames (indices into the batch's frame names), root first → value.
    stacks: HashMap<Vec<u32>, u64, ahash::RandomState>,
}

type GroupKey = (String, Labels, ProfileType, Option<u64>, i64);

/// A whole request, decoded and checked, not yet stored.
#[derive(Debug, Default)]
pub struct Batch {
    names: Vec<String>,
    name_ids: HashMap<String, u32, ahash::RandomState>,
    groups: Vec<Group>,
    by_key: HashMap<GroupKey, usize, ahash::RandomState>,
    pub skipped: Skipped,
    /// Deepest stack kept, frames (deeper ones are cut by the store).
    max_depth: usize,
}

/// What a batch stored, by profile type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// In each type's unit (by `ProfileType as usize`).
    pub totals: [u64; ProfileType::ALL.len()],
    pub refused: u64,
    pub reason: Option<Reject>,
}

impl Batch {
    /// `max_depth`: the store's `--max-stack-depth` (frames past it are not even named).
    pub fn new(max_depth: usize) -> Self {
        Batch { max_depth: max_depth.saturating_add(1), ..Batch::default() }
    }

    fn name(&mut self, frame: &str) -> u32 {
        if let Some(id) = self.name_ids.get(frame) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(frame.to_string());
        self.name_ids.insert(frame.to_string(), id);
        id
    }

    fn group(&mut self, spec: SourceSpec, time_ms: i64) -> Result<usize, String> {
        let key: GroupKey = (spec.app.clone(), spec.labels.clone(), spec.profile, spec.period_ns, time_ms);
        if let Some(at) = self.by_key.get(&key) {
            return Ok(*at);
        }
        if self.groups.len() >= MAX_GROUPS {
            return Err(format!("more than {MAX_GROUPS} label sets in one request"));
        }
        self.groups.push(Group { spec, time_ms, stacks: HashMap::default() });
        self.by_key.insert(key, self.groups.len() - 1);
        Ok(self.groups.len() - 1)
    }

    fn add(&mut self, group: usize, frames: Vec<u32>, value: u64) -> Result<(), String> {
        let cell = self.groups[group].stacks.entry(frames).or_default();
        *cell = cell.saturating_add(value);
        if *cell > MAX_SAMPLE_COUNT {
            return Err(format!("a stack's value adds up to over {MAX_SAMPLE_COUNT}"));
        }
        Ok(())
    }

    /// [`Batch::add`] of borrowed frames (copied only for a stack not in the group yet).
    fn add_ref(&mut self, group: usize, frames: &[u32], value: u64) -> Result<(), String> {
        let stacks = &mut self.groups[group].stacks;
        let cell = match stacks.get_mut(frames) {
            Some(cell) => cell,
            None => stacks.entry(frames.to_vec()).or_default(),
        };
        *cell = cell.saturating_add(value);
        if *cell > MAX_SAMPLE_COUNT {
            return Err(format!("a stack's value adds up to over {MAX_SAMPLE_COUNT}"));
        }
        Ok(())
    }

    /// Collapsed stacks (`frame;frame count`, `/ingest`'s default `format=folded`, or one stack
    /// per line with `lines`), of `profile` (`cpu` unless the name's suffix said otherwise).
    pub fn add_text(&mut self, series: &Series, profile: ProfileType, text: &str, lines: bool, now_ms: i64) -> Result<(), String> {
        let period_ns = if profile.unit() == crate::sample::Unit::Samples {
            Some(1_000_000_000 / series.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE).max(1))
        } else {
            None
        };
        let spec = SourceSpec { app: series.app.clone(), labels: series.labels.clone(), profile, period_ns, node: None };
        let group = self.group(spec, series.time_ms.unwrap_or(now_ms))?;
        for (n, line) in text.split('\n').enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (stack, count) = if lines {
                (line, 1)
            } else {
                let (stack, count) = line.rsplit_once(' ').ok_or_else(|| format!("line {}: no count after the stack", n + 1))?;
                let count: u64 = count
                    .parse()
                    .ok()
                    .filter(|c| *c <= MAX_SAMPLE_COUNT)
                    .ok_or_else(|| format!("line {}: the count {count:?} is not a whole number up to 10^12", n + 1))?;
                (stack.trim_end(), count)
            };
            let mut frames = Vec::new();
            for frame in stack.split(';').take(self.max_depth) {
                frames.push(self.name(frame));
            }
            if count > 0 {
                self.add(group, frames, count)?;
            }
        }
        Ok(())
    }

    /// A pprof profile; `prev` the same profile at the last upload (for `cumulative` types).
    pub fn add_pprof(
        &mut self,
        series: &Series,
        profile: &Checked,
        prev: Option<&Checked>,
        config: &HashMap<String, SampleTypeConfig>,
        now_ms: i64,
    ) -> Result<(), String> {
        let p = &profile.profile;
        let time_ms = series.time_ms.unwrap_or(if p.time_nanos > 0 { p.time_nanos / 1_000_000 } else { now_ms });
        // The period, in ns, when its type is a time.
        let (period_name, period_unit) = p.period_type.map_or(("", ""), |t| (profile.string(t.r#type), profile.string(t.unit)));
        let stated = unit_ns(period_unit).filter(|_| p.period > 0).map(|u| (p.period as u64).saturating_mul(u));
        let period_ns = stated.or(series.sample_rate.filter(|r| *r > 0).map(|r| 1_000_000_000 / r));
        let wall = series.wall || period_name == "wall";
        // Each sample type's profile type; the first of each taken.
        let mut taken: Vec<(usize, ProfileType, Convert, bool)> = Vec::new();
        for (i, t) in p.sample_type.iter().enumerate() {
            let (mut ty, mut unit) = (profile.string(t.r#type), profile.string(t.unit));
            let conf = config.get(ty);
            if let Some(c) = conf {
                ty = c.display_name.as_deref().unwrap_or(ty);
                unit = c.units.as_deref().unwrap_or(unit);
            }
            match sample_profile(ty, unit, wall) {
                Some((t, convert)) if !taken.iter().any(|(_, seen, ..)| *seen == t) => {
                    taken.push((i, t, convert, conf.is_some_and(|c| c.cumulative)));
                }
                Some(_) => {}
                None => {
                    self.skipped.types.insert(ty.to_string());
                }
            }
        }
        // For cumulative types: what the previous upload held of each stack.
        let mut before: HashMap<(Vec<u32>, Labels), Vec<i64>, ahash::RandomState> = HashMap::default();
        if let Some(prev) = prev.filter(|_| taken.iter().any(|t| t.3)) {
            let mut idx = Vec::new();
            for (i, pt) in prev.profile.sample_type.iter().enumerate() {
                let name = prev.string(pt.r#type);
                idx.push((name.to_string(), i));
            }
            for s in &prev.profile.sample {
                let frames = self.frames(prev, s);
                let labels = self.sample_labels(series, prev, s)?;
                let cell = before.entry((frames, labels)).or_insert_with(|| vec![0; p.sample_type.len()]);
                for (i, t) in p.sample_type.iter().enumerate() {
                    let name = profile.string(t.r#type);
                    if let Some((_, j)) = idx.iter().find(|(n, _)| n == name) {
                        cell[i] = cell[i].saturating_add(s.value[*j]);
                    }
                }
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        // Each location's frame names, interned once per profile.
        let mut located: Vec<Option<Vec<u32>>> = vec![None; profile.locations()];
        // Label set → the group of each profile type.
        let mut groups: HashMap<Labels, [Option<usize>; ProfileType::ALL.len()], ahash::RandomState> = HashMap::default();
        let mut frames: Vec<u32> = Vec::new();
        for s in &p.sample {
            self.sample_frames(profile, s, &mut located, &mut frames);
            let labels = self.sample_labels(series, profile, s)?;
            let prior = if before.is_empty() { None } else { before.remove(&(frames.clone(), labels.clone())) };
            for &(i, t, convert, cumulative) in &taken {
                let mut raw = s.value[i];
                if cumulative {
                    raw = raw.saturating_sub(prior.as_ref().map_or(0, |v| v[i]));
                }
                if raw < 0 {
                    self.skipped.negative += 1;
                    continue;
                }
                let (value, period) = match convert {
                    Convert::Same => (raw as u64, if t.unit() == crate::sample::Unit::Samples { period_ns } else { None }),
                    Convert::Nanoseconds { unit_ns } => ((raw as u64).saturating_mul(unit_ns), None),
                    Convert::TimeToSamples { unit_ns } => {
                        let period = period_ns.unwrap_or(1_000_000_000 / DEFAULT_SAMPLE_RATE).max(1);
                        let ns = (raw as u128) * unit_ns as u128;
                        (((ns + period as u128 / 2) / period as u128).min(u64::MAX as u128) as u64, Some(period))
                    }
                };
                if value == 0 {
                    continue;
                }
                let slots = match groups.get_mut(&labels) {
                    Some(slots) => slots,
                    None => groups.entry(labels.clone()).or_insert([None; ProfileType::ALL.len()]),
                };
                let group = match slots[t as usize] {
                    Some(g) => g,
                    None => {
                        let spec =
                            SourceSpec { app: series.app.clone(), labels: labels.clone(), profile: t, period_ns: period, node: None };
                        let g = self.group(spec, time_ms)?;
                        slots[t as usize] = Some(g);
                        g
                    }
                };
                self.add_ref(group, &frames, value)?;
            }
        }
        Ok(())
    }

    /// A sample's frames as name ids, root first, at most `max_depth`; each location's names
    /// looked up once a profile.
    fn sample_frames(&mut self, profile: &Checked, s: &pprof::Sample, located: &mut [Option<Vec<u32>>], out: &mut Vec<u32>) {
        out.clear();
        for at in profile.locations_of(s) {
            if located[at].is_none() {
                let names: Vec<u32> = profile.location_frames(at).collect::<Vec<_>>().into_iter().map(|f| self.name(f)).collect();
                located[at] = Some(names);
            }
            out.extend(located[at].iter().flatten());
            if out.len() >= self.max_depth {
                out.truncate(self.max_depth);
                break;
            }
        }
    }

    fn frames(&mut self, profile: &Checked, s: &pprof::Sample) -> Vec<u32> {
        let mut names: Vec<&str> = Vec::new();
        profile.frames_of(s, self.max_depth, &mut |f| names.push(f));
        names.into_iter().map(|f| self.name(f)).collect()
    }

    /// A sample's label set: its series' labels, and its own string labels.
    fn sample_labels(&self, series: &Series, profile: &Checked, s: &pprof::Sample) -> Result<Labels, String> {
        if s.label.iter().all(|l| l.str == 0) {
            return Ok(series.labels.clone());
        }
        let own = s.label.iter().filter(|l| l.str != 0).map(|l| (profile.string(l.key), profile.string(l.str)));
        labels(series.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(own))
    }

    /// Stacks in the batch.
    pub fn stacks(&self) -> usize {
        self.groups.iter().map(|g| g.stacks.len()).sum()
    }

    /// Check every group's time against the store's window: a request with a time outside it
    /// is refused whole.
    pub fn check_times(&self, ingest: &Ingest, now_ms: i64) -> Result<(), Reject> {
        self.groups.iter().try_for_each(|g| ingest.store.check_time(g.time_ms, now_ms))
    }

    /// Store the batch in one run.
    pub fn store(&self, ingest: &Ingest, now_ms: i64) -> Stored {
        let mut w = ingest.writer(None);
        let mut stored = Stored::default();
        for g in &self.groups {
            let spec = &g.spec;
            let source = w.source(origin(spec), || spec.clone());
            for (frames, value) in &g.stacks {
                let refs: Vec<&str> = frames.iter().map(|i| self.names[*i as usize].as_str()).collect();
                match source.and_then(|id| w.add_count(id, &Stack::Frames(&refs), *value, g.time_ms, now_ms)) {
                    Ok(()) => {
                        let t = &mut stored.totals[spec.profile as usize];
                        *t = t.saturating_add(*value);
                    }
                    Err(r) => {
                        stored.refused = stored.refused.saturating_add(*value);
                        stored.reason = stored.reason.or(Some(r));
                    }
                }
            }
        }
        stored
    }
}

/// The origin of a label set sent by a Pyroscope client.
fn origin(spec: &SourceSpec) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"pyroscope\0");
    for part in std::iter::once(&spec.app).chain(spec.labels.iter().flat_map(|(k, v)| [k, v])) {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(&[spec.profile as u8]);
    if let Some(p) = spec.period_ns {
        h.update(&p.to_le_bytes());
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_their_type_suffix() {
        assert_eq!(split_type("my.app.cpu"), ("my.app", Some(ProfileType::Cpu)));
        assert_eq!(split_type("app.alloc_objects"), ("app", Some(ProfileType::AllocObjects)));
        assert_eq!(split_type("app.itimer"), ("app", Some(ProfileType::Cpu)));
        assert_eq!(split_type("my.app"), ("my.app", None));
        assert_eq!(split_type(".cpu"), (".cpu", None));
        assert_eq!(split_type("app"), ("app", None));
    }

    #[test]
    fn labels_escaped_and_reserved_ones_dropped() {
        let l = labels([
            ("service_name", "x"),
            ("__name__", "process_cpu"),
            ("process.runtime.name", "cpython"),
            ("env", "prod"),
            ("env", "other"),
        ])
        .expect("valid");
        assert_eq!(l, [("env".to_string(), "prod".to_string()), ("process_runtime_name".to_string(), "cpython".to_string())]);
        let many: Vec<(String, String)> = (0..65).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert!(labels(many.iter().map(|(k, v)| (k.as_str(), v.as_str()))).is_err());
    }

    #[test]
    fn sample_types() {
        assert_eq!(sample_profile("cpu", "nanoseconds", false), Some((ProfileType::Cpu, Convert::TimeToSamples { unit_ns: 1 })));
        assert_eq!(sample_profile("cpu", "nanoseconds", true), Some((ProfileType::Wall, Convert::TimeToSamples { unit_ns: 1 })));
        assert_eq!(sample_profile("samples", "count", false), Some((ProfileType::Cpu, Convert::Same)));
        assert_eq!(sample_profile("wall", "microseconds", false), Some((ProfileType::Wall, Convert::TimeToSamples { unit_ns: 1000 })));
        assert_eq!(sample_profile("space", "bytes", false), Some((ProfileType::InuseBytes, Convert::Same)));
        assert_eq!(sample_profile("delay", "nanoseconds", false), Some((ProfileType::LockNs, Convert::Nanoseconds { unit_ns: 1 })));
        assert_eq!(sample_profile("delay", "count", false), None);
        assert_eq!(sample_profile("goroutine", "count", false), None);
    }
}
