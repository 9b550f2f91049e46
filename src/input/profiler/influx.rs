//! statsd-jvm-profiler's InfluxDB reporter: one point per metric, the metric name as the
//! measurement, the count or reading in the field `value`, the origin in tags: `prefix` (split
//! by `--prefix-labels`) or the agent's tagMapping tags, and `hostname`, `jvmName`, `pid`
//! (labelled `host`, `jvm`, `pid`). Stack counts are filed at the point's timestamp.

use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::names::{self, Metric};
use super::Prefixes;
use crate::ingest::Writer;
use crate::input::LineInput;
use crate::outcome::{Ignored, Outcome, Reject};
use crate::protocol::influx;
use crate::store::{SourceId, SourceSpec};

/// The seed of this input's origin hashes (`influx\0` as a number).
const ORIGIN_SEED: u64 = u64::from_le_bytes(*b"influx\0\0");

/// The input, sharing the `--prefix-labels` template with the other reporter's.
#[derive(Debug)]
pub struct Input(pub Arc<Prefixes>);

impl Input {
    fn source(&self, w: &mut Writer<'_>, line: &influx::Line<'_>) -> Result<SourceId, Reject> {
        // Hashed in one call (most lines of a body share the tag text): the seed keeps the
        // origins of this input apart from every other input's.
        w.source(xxh3_64_with_seed(line.raw_tags().as_bytes(), ORIGIN_SEED), || {
            let mut spec = SourceSpec::new(String::new(), Vec::new());
            let mut mapped: Vec<(String, String)> = Vec::new();
            for (k, v) in line.tags() {
                match &*k {
                    "prefix" => {
                        let from_prefix = self.0.split(&v);
                        spec.app = from_prefix.app;
                        spec.labels.extend(from_prefix.labels);
                    }
                    "hostname" => spec.labels.push(("host".into(), v.into_owned())),
                    "jvmName" => spec.labels.push(("jvm".into(), v.into_owned())),
                    "pid" => spec.labels.push(("pid".into(), v.into_owned())),
                    _ => mapped.push((k.into_owned(), v.into_owned())),
                }
            }
            if spec.app.is_empty() {
                spec.app = app_from_mapped_tags(&mapped);
            }
            mapped.retain(|(k, _)| k != "app");
            spec.labels.extend(mapped);
            spec
        })
    }
}

impl LineInput for Input {
    fn point(&self, w: &mut Writer<'_>, line: &influx::Line<'_>, time_ms: i64, now_ms: i64) -> Option<Outcome> {
        let measurement = line.measurement();
        let metric = names::metric_name(&measurement)?;
        let Some(value) = line.field("value").and_then(|v| v.as_f64()) else {
            return Some(Outcome::Rejected(Reject::MissingValue));
        };
        let source = match self.source(w, line) {
            Ok(s) => s,
            Err(r) => return Some(Outcome::Rejected(r)),
        };
        Some(match metric {
            Metric::Bounds => Outcome::Ignored(Ignored::DepthMarker),
            Metric::Stack(text) => w.add_stack(source, &names::stack(text), value, time_ms, now_ms).into(),
            // A gauge's age is about when it arrived: it expires when the executor goes silent,
            // whatever the agent's clock says.
            Metric::Gauge { family, label_value } => {
                w.set_gauge(source, &names::gauge_value(family, label_value, value, false), now_ms).into()
            }
        })
    }
}

/// With tagMapping and no `app` tag: one mapped tag's value names the app; several are joined
/// with `.` in tag-name order (the agent sends them sorted).
fn app_from_mapped_tags(mapped: &[(String, String)]) -> String {
    if let Some((_, v)) = mapped.iter().find(|(k, _)| k == "app") {
        return v.clone();
    }
    mapped.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use crate::input::profiler::testing::{folded, inputs};
    use crate::input::{Precision, WriteOutcome};

    #[test]
    fn lines_with_tag_mapping_and_prefix() {
        let i = inputs(Some("SKIP.app.executor"));
        let body = b"cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12,hostname=worker-1,jvmName=4242@worker-1,pid=4242,spark=sparkapp value=3.0 1500000000123000000\n\
cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12,hostname=worker-1,jvmName=4242@worker-1,pid=4242,spark=sparkapp value=3i 1500000000123000000\n\
heap.total.used,hostname=h,jvmName=1@h,pid=1,prefix=spark.app-9.3 value=123456789.0 1500000010124000000\n";
        let out = i.line_protocol(body, Precision::Nanos, 7);
        assert_eq!(out, WriteOutcome { written: 3, rejected: 0, errors: vec![] });
        assert_eq!(folded(&i, "sparkapp"), ["com.example.Main.main:12;java.lang.Thread.sleep:-2 6"]);
        // The tagMapping tag names the app and stays a label.
        let labels = i.ingest.store.app("sparkapp").expect("app").label_values();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["host", "jvm", "pid", "spark"]);
        let g = i.ingest.store.app("app-9").expect("app-9").gauges();
        assert_eq!((g[0].value, g[0].updated_ms), (123456789.0, 7), "gauges age from arrival");
        assert!(g[0].labels.contains(&("executor".to_string(), "3".to_string())));
    }

    #[test]
    fn a_partial_write_keeps_the_good_lines() {
        let i = inputs(None);
        let out = i.line_protocol(
            b"cpu.trace.a-B-c-1,prefix=p value=1\ncpu value=invalid\ncpu.trace.a-B-c-1,prefix=p value=-1\nfoo value=1",
            Precision::Nanos,
            0,
        );
        assert_eq!(out.written, 2);
        assert_eq!(
            out.errors,
            ["unable to parse 'cpu value=invalid': invalid boolean", "unable to parse 'cpu.trace.a-B-c-1': stack sample count is negative"]
        );
        assert_eq!(folded(&i, "p"), ["a.B.c:1 1"]);
    }
}
