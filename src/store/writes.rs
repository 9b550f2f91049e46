//! Writes in runs: the lines of one body or one batch of datagrams share their origins and
//! their time bucket, so a run resolves each origin once, holds its bucket open while its
//! lines go there, and adds up the totals (app, label set) to write them once at its end.
//! What every line still pays for is its own stack: one hash, one map read, one atomic add.
//!
//! Counts reach their bucket line by line; the totals, and with them an app's
//! [`generation`](super::App::generation), move when the run ends (when [`Writes`] is
//! dropped). A run must not outlive the request or batch it serves, and must not wait for a
//! flush while it lives (a flush may wait for its bucket).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::app::{mark, saturating_add, Bucket};
use super::{raise, App, Source, Store};
use crate::outcome::Reject;

/// Origins one run keeps resolved at most; the next one starts a new round (totals written,
/// origins forgotten), so that a body of a million distinct tag sets stays bounded.
const MAX_HELD: usize = 1024;

/// Up to this many held origins are found by looking at each; beyond, by a map.
const FEW: usize = 8;

/// A source resolved within one run ([`Writes::resolve`]): valid until the run resolves more
/// than [`MAX_HELD`] origins, which inputs never notice since they use a source right after
/// resolving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceId {
    index: u32,
    round: u32,
}

/// One run of writes: see the module documentation.
#[derive(Debug, Default)]
pub struct Writes {
    held: Vec<Held>,
    by_origin: HashMap<u64, u32, ahash::RandomState>,
    /// The origin resolved last: most lines of a body share it.
    last: Option<(u64, u32)>,
    round: u32,
    open: Option<Open>,
}

#[derive(Debug)]
struct Held {
    /// `None` for an adopted source.
    origin: Option<u64>,
    source: Arc<Source>,
    /// Samples added and their time span, not yet in the totals.
    samples: u64,
    first_ms: i64,
    last_ms: i64,
}

/// The bucket this run holds open.
#[derive(Debug)]
struct Open {
    app: Arc<App>,
    n: i64,
    bucket: Arc<Bucket>,
}

impl Writes {
    /// The source of `origin` for this run: resolved through the store's cache the first time,
    /// from the run's own table after that.
    pub fn resolve(&mut self, store: &Store, origin: u64, resolve: impl FnOnce() -> super::SourceSpec) -> Result<SourceId, Reject> {
        let index = match self.last {
            Some((o, i)) if o == origin => i,
            _ => match self.find(origin) {
                Some(i) => i,
                None => {
                    let source = store.source(origin, resolve)?;
                    self.hold(Some(origin), source)
                }
            },
        };
        self.last = Some((origin, index));
        Ok(SourceId { index, round: self.round })
    }

    /// Take a source resolved elsewhere (an imported profile's) into this run.
    pub fn adopt(&mut self, source: &Arc<Source>) -> SourceId {
        let index = self.hold(None, Arc::clone(source));
        SourceId { index, round: self.round }
    }

    /// A held origin: a look at each while there are few (a body's usual one to a dozen), the
    /// map once there are more.
    fn find(&self, origin: u64) -> Option<u32> {
        if self.held.len() <= FEW {
            return self.held.iter().position(|h| h.origin == Some(origin)).map(|i| i as u32);
        }
        self.by_origin.get(&origin).copied()
    }

    fn hold(&mut self, origin: Option<u64>, source: Arc<Source>) -> u32 {
        if self.held.len() >= MAX_HELD {
            self.settle();
            self.held.clear();
            self.by_origin.clear();
            self.last = None;
            self.round = self.round.wrapping_add(1);
        }
        let index = self.held.len() as u32;
        self.held.push(Held { origin, source, samples: 0, first_ms: i64::MAX, last_ms: i64::MIN });
        if self.held.len() == FEW + 1 {
            self.by_origin.extend(self.held.iter().enumerate().filter_map(|(i, h)| Some((h.origin?, i as u32))));
        } else if let (Some(origin), true) = (origin, self.held.len() > FEW) {
            self.by_origin.insert(origin, index);
        }
        index
    }

    /// The resolved source behind an id of this run.
    pub fn source(&self, id: SourceId) -> &Arc<Source> {
        self.check(id);
        &self.held[id.index as usize].source
    }

    fn check(&self, id: SourceId) {
        assert_eq!(id.round, self.round, "a SourceId was used after its run resolved {MAX_HELD} more origins");
    }

    /// Count `count` samples at `time_ms` towards the totals of the source `id`, written when
    /// the run ends.
    pub(super) fn tally(&mut self, id: SourceId, count: u64, time_ms: i64) {
        self.check(id);
        let held = &mut self.held[id.index as usize];
        held.samples = held.samples.saturating_add(count);
        held.first_ms = held.first_ms.min(time_ms);
        held.last_ms = held.last_ms.max(time_ms);
    }

    /// The bucket `n` of the app of `id`, held open: the one held already, or (after leaving
    /// that one, so that nothing is held while waiting) the store's, entered.
    pub(super) fn bucket(&mut self, store: &Store, id: SourceId, n: i64) -> Result<&Bucket, Reject> {
        self.check(id);
        let Writes { held, open, .. } = self;
        let app = &held[id.index as usize].source.app;
        let reuse = open.as_ref().is_some_and(|o| o.n == n && Arc::ptr_eq(&o.app, app) && !o.bucket.is_sealed());
        if !reuse {
            close(open);
            loop {
                let bucket = store.bucket(app, n)?;
                if bucket.enter() {
                    *open = Some(Open { app: Arc::clone(app), n, bucket });
                    break;
                }
                // Being evicted: the next look takes the reload path, which waits for it.
            }
        }
        match open {
            Some(o) => Ok(&o.bucket),
            None => unreachable!("a bucket was just opened"),
        }
    }

    /// Write the totals counted so far.
    fn settle(&mut self) {
        for held in &mut self.held {
            if held.first_ms > held.last_ms {
                continue; // nothing added
            }
            let (source, app) = (&held.source, &held.source.app);
            saturating_add(&app.total, held.samples);
            raise(&app.last_seen_ms, held.last_ms);
            let stats = &source.stats;
            saturating_add(&stats.samples, held.samples);
            if held.first_ms < stats.first_ms.load(Ordering::Relaxed) {
                stats.first_ms.fetch_min(held.first_ms, Ordering::Relaxed);
            }
            raise(&stats.last_ms, held.last_ms);
            mark(&stats.dirty);
            (held.samples, held.first_ms, held.last_ms) = (0, i64::MAX, i64::MIN);
        }
    }
}

impl Drop for Writes {
    /// The run ends: leave the bucket first, then move the totals (and so the generation), so
    /// that whoever sees the new generation finds every count of the run in its bucket.
    fn drop(&mut self) {
        close(&mut self.open);
        self.settle();
    }
}

/// Leave the open bucket, marked changed (once per run rather than once per line: a flush that
/// wrote it while the run was adding writes it again).
fn close(open: &mut Option<Open>) {
    if let Some(o) = open.take() {
        o.bucket.dirty.store(true, Ordering::Release);
        o.bucket.leave();
    }
}
