//! The shared sink every input ends in: origins resolved to sources (cached by the store),
//! stack samples and gauge readings stored, limits applied and their hits counted, and each
//! line's outcome counted under the label of the wire it came over ([`Tally`]). Nothing here
//! knows which inputs exist.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::outcome::{Limit, Outcome, Reject};
use crate::sample::{Gauge, Series, Stack};
use crate::store::{Source, SourceSpec, Store, Stored};

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

    /// The source of an origin: `origin` is the input's hash of the origin's raw text (each
    /// input hashes its own domain name first, so that inputs never share an origin), and
    /// `resolve` names its app and labels on first sight.
    pub fn source(&self, origin: u64, resolve: impl FnOnce() -> SourceSpec) -> Result<Arc<Source>, Reject> {
        let source = self.store.source(origin, resolve);
        if let Err(r) = source {
            self.limit_hit(r);
        }
        source
    }

    /// Add `value` samples of `stack` at `time_ms` (checked against the clock `now_ms`). The
    /// value must be a whole number in `0..=MAX_SAMPLE_COUNT`.
    pub fn add_stack(&self, source: &Source, stack: &Stack<'_>, value: f64, time_ms: i64, now_ms: i64) -> Result<(), Reject> {
        self.label_overflow(source);
        let count = sample_count(value)?;
        match self.store.add_stack(source, stack, count, time_ms, now_ms) {
            Ok(Stored::Stack) => Ok(()),
            Ok(Stored::Overflow) => {
                self.metrics.limit_hit(Limit::Stacks);
                Ok(())
            }
            Err(r) => {
                self.limit_hit(r);
                Err(r)
            }
        }
    }

    /// The source of an origin for samples filed at `time_ms`, the time checked first: a
    /// profile refused for its time must not leave an empty app behind.
    pub fn source_at(&self, origin: u64, time_ms: i64, now_ms: i64, resolve: impl FnOnce() -> SourceSpec) -> Result<Arc<Source>, Reject> {
        self.store.check_time(time_ms, now_ms)?;
        self.source(origin, resolve)
    }

    /// Store one whole profile from one source at one time (an imported document, a Flink
    /// snapshot): `each` calls its sink with every stack (frames root first) and its count. The
    /// time is checked first, so a profile is stored whole or refused whole. Returns the samples
    /// stored.
    pub fn add_profile(
        &self,
        source: &Source,
        time_ms: i64,
        now_ms: i64,
        each: impl FnOnce(&mut dyn FnMut(&[&str], u64)),
    ) -> Result<u64, Reject> {
        self.store.check_time(time_ms, now_ms)?;
        let (mut samples, mut failed) = (0u64, None);
        each(&mut |frames, count| match self.add_stack(source, &Stack::Frames(frames), count as f64, time_ms, now_ms) {
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

    /// Set (or change, for a relative reading) a gauge. Gauges age from arrival: pass the time
    /// the reading arrived, whatever the agent's clock says.
    pub fn set_gauge(&self, source: &Source, gauge: &Gauge<'_>, now_ms: i64) -> Result<(), Reject> {
        self.label_overflow(source);
        let result = self.store.set_gauge(source, gauge, now_ms);
        if let Err(r) = result {
            self.limit_hit(r);
        }
        result
    }

    /// Set an engine metric's sample, stamped with its arrival (engines' clocks are theirs).
    pub fn set_series(&self, source: &Source, series: &Series<'_>, now_ms: i64) -> Result<(), Reject> {
        let result = self.store.set_series(source, series, now_ms);
        if let Err(r) = result {
            self.limit_hit(r);
        }
        result
    }

    /// Samples of an origin whose label value was over `--max-label-values` are kept under the
    /// overflow value; each is a hit of that limit.
    fn label_overflow(&self, source: &Source) {
        if source.label_overflow {
            self.metrics.limit_hit(Limit::LabelValues);
        }
    }

    fn limit_hit(&self, r: Reject) {
        if let Some(limit) = r.limit() {
            self.metrics.limit_hit(limit);
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
