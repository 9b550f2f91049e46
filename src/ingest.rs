//! The shared sink every input ends in: origins resolved to sources (cached by the store),
//! stack samples and gauge readings stored, limits applied and their hits counted, and each
//! line's outcome counted under the label of the wire it came over ([`Tally`]). Nothing here
//! knows which inputs exist.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::outcome::{Limit, Outcome, Reject};
use crate::sample::{Gauge, Series, Stack};
use crate::store::{Source, SourceId, SourceSpec, Store, Stored, Writes};

/// The largest sample count one line may carry: 10^12 (an agent sampling every 10 ms sends about
/// 100 per thread per second). Larger values are refused (`count_too_large`), so that no single
/// line can push a total near `u64::MAX`; totals saturate rather than wrap in any case. Exact in
/// an f64, so `1e12` and `1000000000000i` mean the same.
pub const MAX_SAMPLE_COUNT: u64 = 1_000_000_000_000;

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

/// Stores what inputs hand over.
#[derive(Debug)]
pub struct Ingest {
    pub store: Arc<Store>,
    pub metrics: Metrics,
}

/// Counts outcomes under one `protocol` label (the wire: `statsd`, `influx`); the accepted
/// counter is resolved once, since it is counted on every line.
#[derive(Clone, Debug)]
pub struct Tally {
    protocol: &'static str,
    accepted: prometheus::IntCounter,
    metrics: Metrics,
}

impl Tally {
    pub fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Accepted => self.accepted.inc(),
            Outcome::Ignored(why) => self.metrics.lines_ignored.with_label_values(&[self.protocol, why.reason()]).inc(),
            Outcome::Rejected(why) => self.rejected(why.reason()),
        }
    }

    /// A line refused for `reason` (a parser's, or [`Reject::reason`]).
    pub fn rejected(&self, reason: &'static str) {
        self.metrics.lines_rejected.with_label_values(&[self.protocol, reason]).inc();
    }
}

impl Ingest {
    pub fn new(store: Arc<Store>, metrics: Metrics) -> Self {
        Ingest { store, metrics }
    }

    /// The tally of one wire protocol.
    pub fn tally(&self, protocol: &'static str) -> Tally {
        Tally { protocol, accepted: self.metrics.lines_accepted.with_label_values(&[protocol]), metrics: self.metrics.clone() }
    }

    /// A run of writes: one body, one batch of datagrams, one profile ([`Writer`]). Accepted
    /// lines are counted under `tally` when it ends.
    pub fn writer<'a>(&'a self, tally: Option<&'a Tally>) -> Writer<'a> {
        Writer { ingest: self, writes: Writes::default(), tally, accepted: 0 }
    }

    /// The source of an origin for samples filed at `time_ms`, the time checked first: a
    /// profile refused for its time must not leave an empty app behind. Origins are hashed as
    /// for [`Writer::source`].
    pub fn source_at(&self, origin: u64, time_ms: i64, now_ms: i64, resolve: impl FnOnce() -> SourceSpec) -> Result<Arc<Source>, Reject> {
        self.store.check_time(time_ms, now_ms)?;
        let mut resolved = false;
        let source = self.store.source(origin, || {
            resolved = true;
            resolve()
        });
        self.resolved(source.as_deref().map_err(|r| *r), resolved);
        source
    }

    /// Count what resolving an origin hit: a refusal's limit each time, names cut once (when
    /// the origin was first resolved).
    fn resolved(&self, source: Result<&Source, Reject>, first: bool) {
        match source {
            Err(r) => self.limit_hit(r),
            Ok(s) if first && s.names_cut => self.metrics.limit_hit(Limit::NameLength),
            Ok(_) => {}
        }
    }

    /// Store one whole profile from one source at one time (an imported document, a Flink
    /// snapshot) in one run: `each` calls its sink with every stack (frames root first) and its
    /// count. The time is checked first, so a profile is stored whole or refused whole. Returns
    /// the samples stored.
    pub fn add_profile(
        &self,
        source: &Arc<Source>,
        time_ms: i64,
        now_ms: i64,
        each: impl FnOnce(&mut dyn FnMut(&[&str], u64)),
    ) -> Result<u64, Reject> {
        self.store.check_time(time_ms, now_ms)?;
        let mut w = self.writer(None);
        let id = w.writes.adopt(source);
        let (mut samples, mut failed) = (0u64, None);
        each(&mut |frames, count| match w.add_stack(id, &Stack::Frames(frames), count as f64, time_ms, now_ms) {
            Ok(()) => samples = samples.saturating_add(count),
            Err(r) => failed = failed.or(Some(r)),
        });
        match failed {
            // Only a store that stopped answering mid-way can get here (the time and the counts
            // were checked): say so rather than report the profile stored.
            Some(r) => Err(r),
            None => Ok(samples),
        }
    }

    fn limit_hit(&self, r: Reject) {
        if let Some(limit) = r.limit() {
            self.metrics.limit_hit(limit);
        }
    }
}

/// One run of writes through the ingest (see [`Writes`]): origins resolved once per run, counts
/// in their buckets line by line, totals and the accepted-lines counter written when it is
/// dropped. Not to be kept across an `.await`: drop it before answering.
#[derive(Debug)]
pub struct Writer<'a> {
    ingest: &'a Ingest,
    writes: Writes,
    tally: Option<&'a Tally>,
    accepted: u64,
}

impl Writer<'_> {
    /// The source of an origin: `origin` is the input's hash of the origin's raw text (each
    /// input hashes its own domain name first, so that inputs never share an origin), and
    /// `resolve` names its app and labels on first sight.
    pub fn source(&mut self, origin: u64, resolve: impl FnOnce() -> SourceSpec) -> Result<SourceId, Reject> {
        let mut resolved = false;
        let source = self.writes.resolve(&self.ingest.store, origin, || {
            resolved = true;
            resolve()
        });
        self.ingest.resolved(source.map(|id| &**self.writes.source(id)), resolved);
        source
    }

    /// Add `value` samples of `stack` at `time_ms` (checked against the clock `now_ms`). The
    /// value must be a whole number in `0..=MAX_SAMPLE_COUNT`.
    pub fn add_stack(&mut self, source: SourceId, stack: &Stack<'_>, value: f64, time_ms: i64, now_ms: i64) -> Result<(), Reject> {
        let count = sample_count(value)?;
        self.add_count(source, stack, count, time_ms, now_ms)
    }

    /// Add `count` of `stack` (in its source's unit: samples, bytes, nanoseconds) at `time_ms`:
    /// what a decoded profile hands over, already summed.
    pub fn add_count(&mut self, source: SourceId, stack: &Stack<'_>, count: u64, time_ms: i64, now_ms: i64) -> Result<(), Reject> {
        self.label_overflow(source);
        match self.ingest.store.add_stack(&mut self.writes, source, stack, count, time_ms, now_ms) {
            Ok(Stored::Stack) => Ok(()),
            Ok(Stored::Overflow) => {
                self.ingest.metrics.limit_hit(Limit::Stacks);
                Ok(())
            }
            Ok(Stored::Cut { frames, depth }) => {
                if frames {
                    self.ingest.metrics.limit_hit(Limit::FrameLength);
                }
                if depth {
                    self.ingest.metrics.limit_hit(Limit::StackDepth);
                }
                Ok(())
            }
            Err(r) => {
                self.ingest.limit_hit(r);
                Err(r)
            }
        }
    }

    /// Set (or change, for a relative reading) a gauge. Gauges age from arrival: pass the time
    /// the reading arrived, whatever the agent's clock says.
    pub fn set_gauge(&mut self, source: SourceId, gauge: &Gauge<'_>, now_ms: i64) -> Result<(), Reject> {
        self.label_overflow(source);
        let max = self.ingest.store.limits().max_name_len;
        let cut;
        let gauge = if gauge.label_value.len() > max {
            self.ingest.metrics.limit_hit(Limit::NameLength);
            cut = Gauge { label_value: truncated(gauge.label_value, max), ..*gauge };
            &cut
        } else {
            gauge
        };
        let result = self.ingest.store.set_gauge(self.writes.source(source), gauge, now_ms);
        if let Err(r) = result {
            self.ingest.limit_hit(r);
        }
        result
    }

    /// Set an engine metric's sample, stamped with its arrival (engines' clocks are theirs).
    /// A family or label name over `--max-name-length` is refused, a label value over it cut
    /// (both counted as `name_length`).
    pub fn set_series(&mut self, source: SourceId, series: &Series<'_>, now_ms: i64) -> Result<(), Reject> {
        let max = self.ingest.store.limits().max_name_len;
        let cut;
        if series.family.len() > max || series.labels.iter().any(|(k, _)| k.len() > max) {
            self.ingest.metrics.limit_hit(Limit::NameLength);
            return Err(Reject::NameTooLong);
        }
        let series = if series.labels.iter().any(|(_, v)| v.len() > max) {
            self.ingest.metrics.limit_hit(Limit::NameLength);
            let labels = series.labels.iter().map(|(k, v)| (k.clone(), std::borrow::Cow::Borrowed(truncated(v, max)))).collect();
            cut = Series { labels, ..*series };
            &cut
        } else {
            series
        };
        let result = self.ingest.store.set_series(self.writes.source(source), series, now_ms);
        if let Err(r) = result {
            self.ingest.limit_hit(r);
        }
        result
    }

    /// The store's bucket width in ms.
    pub fn bucket_ms(&self) -> i64 {
        self.ingest.store.bucket_ms()
    }

    /// Count a line's outcome under the run's tally (accepted lines once, when the run ends).
    pub fn count(&mut self, outcome: Outcome) {
        match (outcome, self.tally) {
            (Outcome::Accepted, _) => self.accepted += 1,
            (outcome, Some(tally)) => tally.count(outcome),
            (_, None) => {}
        }
    }

    /// A line refused for `reason` before any input saw it (a parser's).
    pub fn rejected(&mut self, reason: &'static str) {
        if let Some(tally) = self.tally {
            tally.rejected(reason);
        }
    }

    /// Samples of an origin whose label value was over `--max-label-values` are kept under the
    /// overflow value; each is a hit of that limit.
    fn label_overflow(&self, source: SourceId) {
        if self.writes.source(source).label_overflow {
            self.ingest.metrics.limit_hit(Limit::LabelValues);
        }
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if let (Some(tally), n @ 1..) = (self.tally, self.accepted) {
            tally.accepted.inc_by(n);
        }
    }
}

/// A sample count as sent (`3`, `3.0`, `3i`), checked: whole, not negative, at most
/// [`MAX_SAMPLE_COUNT`].
pub fn sample_count(value: f64) -> Result<u64, Reject> {
    if value < 0.0 {
        return Err(Reject::NegativeCount);
    }
    if value.fract() != 0.0 {
        return Err(Reject::FractionalCount);
    }
    if value > MAX_SAMPLE_COUNT as f64 {
        return Err(Reject::CountTooLarge);
    }
    Ok(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_counts() {
        assert_eq!(sample_count(3.0), Ok(3));
        assert_eq!(sample_count(1e12), Ok(MAX_SAMPLE_COUNT));
        assert_eq!(sample_count(1e12 + 1.0), Err(Reject::CountTooLarge));
        assert_eq!(sample_count(-1.0), Err(Reject::NegativeCount));
        assert_eq!(sample_count(0.5), Err(Reject::FractionalCount));
        assert_eq!(sample_count(0.0), Ok(0));
    }
}
