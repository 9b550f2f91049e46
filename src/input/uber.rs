//! Uber jvm-profiler's InfluxDB reporter: `Stacktrace` points with the stack in the string field
//! `stacktrace` (frames leaf first, comma separated, kept as they come) and the sample count in
//! `count`. The app is `appId`, else `tag`, else `name`; `host` and `threadState` become the
//! labels `host` and `thread_state`. Every other measurement it sends is not a stack, and is
//! left to the inputs after this one.

use xxhash_rust::xxh3::Xxh3;

use crate::ingest::Writer;
use crate::input::LineInput;
use crate::outcome::{Outcome, Reject};
use crate::protocol::influx::{self, FieldValue};
use crate::sample::{Encoding, Stack};
use crate::store::SourceSpec;

/// Uber's stack encoding: `leaf,…,root` (id 2, stored).
pub static ENCODING: Encoding = Encoding { id: 2, decode: each_frame };

/// Root first, frames kept as they come.
fn each_frame(csv: &str, sink: &mut dyn FnMut(&str)) {
    csv.rsplit(',').for_each(sink);
}

#[derive(Debug)]
pub struct Input;

impl LineInput for Input {
    fn point(&self, w: &mut Writer<'_>, line: &influx::Line<'_>, time_ms: i64, now_ms: i64) -> Option<Outcome> {
        if line.measurement() != "Stacktrace" {
            return None;
        }
        let (mut stack, mut count, mut app_id, mut tag, mut name, mut host, mut state) = (None, None, None, None, None, None, None);
        for (k, v) in line.fields() {
            match (&*k, v) {
                ("stacktrace", FieldValue::Str(s)) => stack = Some(s),
                ("count", v) => count = v.as_f64(),
                ("appId", FieldValue::Str(s)) => app_id = Some(s),
                ("tag", FieldValue::Str(s)) => tag = Some(s),
                ("name", FieldValue::Str(s)) => name = Some(s),
                ("host", FieldValue::Str(s)) => host = Some(s),
                ("threadState", FieldValue::Str(s)) => state = Some(s),
                _ => {}
            }
        }
        let Some(stack) = stack.filter(|s| !s.is_empty()) else {
            return Some(Outcome::Rejected(Reject::MissingStacktrace));
        };
        let Some(count) = count else {
            return Some(Outcome::Rejected(Reject::MissingValue));
        };
        let app = [app_id, tag, name].into_iter().flatten().find(|s| !s.is_empty()).unwrap_or_default();
        let mut h = Xxh3::new();
        for part in [&*app, host.as_deref().unwrap_or(""), state.as_deref().unwrap_or("")] {
            h.update(b"uber\0");
            h.update(part.as_bytes());
        }
        let source = w.source(h.digest(), || {
            let mut labels = Vec::new();
            labels.extend(host.as_ref().map(|h| ("host".to_string(), h.to_string())));
            labels.extend(state.as_ref().map(|s| ("thread_state".to_string(), s.to_string())));
            SourceSpec::new(app, labels)
        });
        let source = match source {
            Ok(s) => s,
            Err(r) => return Some(Outcome::Rejected(r)),
        };
        let stack = Stack::Encoded { encoding: &ENCODING, text: &stack };
        Some(w.add_stack(source, &stack, count, time_ms, now_ms).into())
    }
}

#[cfg(test)]
mod tests {
    use crate::input::profiler::testing::{folded, inputs};
    use crate::input::Precision;

    #[test]
    fn stacktrace_points() {
        let i = inputs(None);
        let body = br#"Stacktrace,processUuid=3c2e count=3i,endEpoch=1515627003374i,host="machine01",name="24103@machine01",appId="application_1",stacktrace="java.lang.Thread.sleep,com.x.Main.main",threadName="main",threadState="TIMED_WAITING" 1515627003374000000"#;
        assert_eq!(i.line_protocol(body, Precision::Nanos, 0).written, 1);
        assert_eq!(folded(&i, "application_1"), ["com.x.Main.main;java.lang.Thread.sleep 3"]);
        let labels = i.ingest.store.app("application_1").expect("app").label_values();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["host", "thread_state"]);
    }
}
