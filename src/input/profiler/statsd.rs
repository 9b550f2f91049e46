//! statsd-jvm-profiler's StatsD reporter: `<prefix>.<metric>:<value>|g` datagrams. Stack counts
//! are filed at arrival time (statsd has no timestamps); tags, in any of the four styles the
//! parser reads, become labels.

use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use super::names::{self, Metric};
use super::Prefixes;
use crate::ingest::Writer;
use crate::input::StatsdInput;
use crate::outcome::{Ignored, Outcome, Reject};
use crate::protocol::statsd::{self, MetricType};
use crate::store::SourceId;

/// The input, sharing the `--prefix-labels` template with the other reporter's.
#[derive(Debug)]
pub struct Input(pub Arc<Prefixes>);

impl Input {
    fn source(&self, w: &mut Writer<'_>, prefix: &str, tags: &statsd::Tags<'_>) -> Result<SourceId, Reject> {
        let mut h = Xxh3::new();
        h.update(b"statsd\0");
        h.update(prefix.as_bytes());
        h.update(b"\0");
        h.update(tags.raw().as_bytes());
        w.source(h.digest(), || {
            let mut spec = self.0.split(prefix);
            spec.labels.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            spec
        })
    }
}

impl StatsdInput for Input {
    /// A line with several samples (`x:4|g:-1|g`) has one outcome per sample: the good ones are
    /// kept and counted as accepted, the bad ones refused and counted.
    fn line(&self, w: &mut Writer<'_>, line: &statsd::Line<'_>, now_ms: i64) -> bool {
        let Some((prefix, metric)) = names::split_name(&line.name) else {
            return false;
        };
        if metric == Metric::Bounds {
            w.count(Outcome::Ignored(Ignored::DepthMarker));
            return true;
        }
        let source = match self.source(w, prefix, &line.tags) {
            Ok(s) => s,
            Err(r) => {
                w.count(Outcome::Rejected(r));
                return true;
            }
        };
        for sample in line.samples() {
            let result = match (metric, sample.number) {
                (_, None) => Err(Reject::WrongType),
                _ if sample.decimal_comma => Err(Reject::BadValue),
                (Metric::Stack(_), _) if !matches!(sample.kind, MetricType::Gauge | MetricType::Counter) => Err(Reject::WrongType),
                (Metric::Stack(text), Some(value)) => w.add_stack(source, &names::stack(text), value, now_ms, now_ms),
                (Metric::Gauge { family, label_value }, Some(value)) => {
                    w.set_gauge(source, &names::gauge_value(family, label_value, value, sample.relative), now_ms)
                }
                (Metric::Bounds, _) => Ok(()),
            };
            w.count(result.into());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::input::profiler::testing::{folded, inputs};

    #[test]
    fn stack_deltas_are_added() {
        let i = inputs(Some("SKIP.app.executor"));
        let d = b"spark.app-42.7.cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12:3|g";
        i.statsd_datagram(d, 1_000);
        i.statsd_datagram(d, 2_000);
        assert_eq!(folded(&i, "app-42"), ["com.example.Main.main:12;java.lang.Thread.sleep:-2 6"]);
        assert_eq!(i.ingest.store.app("app-42").expect("app").label_values()["executor"].keys().collect::<Vec<_>>(), ["7"]);
    }

    #[test]
    fn every_outcome_is_counted() {
        let i = inputs(None);
        i.statsd_datagram(
            b"p.cpu.trace.a-B-c-1:1|g\np.cpu.trace.6:6|g\nbroken\ngorets:1|c\np.cpu.trace.a-B-c-1:-1|g\np.cpu.trace.a-B-c-1:1|ms\np.heap.total.used:7|s",
            0,
        );
        let m = &i.ingest.metrics;
        assert_eq!(m.lines_accepted.with_label_values(&["statsd"]).get(), 1);
        assert_eq!(m.lines_ignored.with_label_values(&["statsd", "depth_marker"]).get(), 1);
        assert_eq!(m.lines_ignored.with_label_values(&["statsd", "unknown_metric"]).get(), 1);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "missing_value"]).get(), 1);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "negative_count"]).get(), 1);
        assert_eq!(m.lines_rejected.with_label_values(&["statsd", "wrong_type"]).get(), 2, "a timer stack, a set gauge");
        assert_eq!(folded(&i, "p"), ["a.B.c:1 1"]);
    }

    #[test]
    fn negative_gauge_idiom() {
        let i = inputs(None);
        i.statsd_datagram(b"statsd-jvm-profiler.nonheap.total.max:0|g\nstatsd-jvm-profiler.nonheap.total.max:-1|g", 0);
        let g = i.ingest.store.app("statsd-jvm-profiler").expect("app").gauges();
        assert_eq!((g.len(), g[0].value, g[0].family.name, g[0].label_value.as_str()), (1, -1.0, "jvm_memory_bytes_max", "nonheap"));
    }
}
