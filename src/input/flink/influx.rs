//! Flink's `InfluxdbReporter`: one point per metric, the measurement `<logical scope>_<metric>`
//! (`taskmanager_job_task_operator_numRecordsIn`), every scope variable a tag, and the fields
//! by metric type. Exported as Flink's `PrometheusReporter` would:
//!
//! | fields (Flink type) | exported |
//! |---|---|
//! | `value` (gauge) | gauge; a string value is 1 for `true`, else 0, as Flink's reporter does |
//! | `count` (counter) | gauge (Flink counters may go down) |
//! | `count`, `rate` (meter) | gauge of the rate |
//! | `count`, `min`, …, `p50` … `p999` (histogram) | summary: quantiles and `_count` |
//!
//! A point whose fields were all NaN arrives as an empty line, which the parser skips.

use std::borrow::Cow;

use super::{family, source, Target};
use crate::ingest::Writer;
use crate::input::LineInput;
use crate::outcome::{Ignored, Outcome};
use crate::protocol::influx::{self, FieldValue};
use crate::sample::{SeriesKind, QUANTILES};

/// A measurement of Flink's: a logical scope that starts at a JobManager or a TaskManager.
fn is_flink(measurement: &str) -> bool {
    measurement.starts_with("taskmanager_") || measurement.starts_with("jobmanager_")
}

/// A gauge's value as Flink's `PrometheusReporter` exports it.
fn gauge_value(v: &FieldValue<'_>) -> f64 {
    match v {
        FieldValue::Bool(b) => f64::from(u8::from(*b)),
        FieldValue::Str(s) => f64::from(u8::from(&**s == "true")),
        v => v.as_f64().unwrap_or(0.0),
    }
}

#[derive(Debug)]
pub struct Input;

impl LineInput for Input {
    fn point(&self, w: &mut Writer<'_>, line: &influx::Line<'_>, _time_ms: i64, now_ms: i64) -> Option<Outcome> {
        let measurement = line.measurement();
        if !is_flink(&measurement) || line.tag("host").is_none() {
            return None;
        }
        let vars: Vec<(Cow<'_, str>, Cow<'_, str>)> = line.tags().collect();
        let job = vars.iter().find(|(k, _)| k == "job_name").map(|(_, v)| &**v);
        let source = match source(w, job) {
            Ok(s) => s,
            Err(r) => return Some(Outcome::Rejected(r)),
        };
        let fields: Vec<(Cow<'_, str>, FieldValue<'_>)> = line.fields().collect();
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let family = family(&measurement);
        let target = Target { source, family: &family, vars: &vars, now_ms };
        let mut set = |kind, suffix, quantile, value| target.set(w, kind, suffix, quantile, value);
        let result = if let (Some(v), 1) = (field("value"), fields.len()) {
            set(SeriesKind::Gauge, "", None, gauge_value(v))
        } else if QUANTILES.iter().any(|(p, _)| field(p).is_some()) {
            let mut result = Ok(());
            for (p, q) in QUANTILES {
                if let Some(v) = field(p).and_then(|v| v.as_f64()) {
                    result = result.and(set(SeriesKind::Summary, "", Some(q), v));
                }
            }
            if let Some(n) = field("count").and_then(|v| v.as_f64()) {
                result = result.and(set(SeriesKind::Summary, "_count", None, n));
            }
            result
        } else if let Some(rate) = field("rate").and_then(|v| v.as_f64()) {
            set(SeriesKind::Gauge, "", None, rate)
        } else if let (Some(n), 1) = (field("count").and_then(|v| v.as_f64()), fields.len()) {
            set(SeriesKind::Gauge, "", None, n)
        } else {
            return Some(Outcome::Ignored(Ignored::UnknownMetric));
        };
        Some(result.into())
    }
}

#[cfg(test)]
mod tests {
    use crate::input::profiler::testing::inputs;
    use crate::input::Precision;

    /// Lines as Flink 2.3's reporter wrote them (captured from a local cluster), and what its
    /// `PrometheusReporter` exported for the same metrics at the same time.
    #[test]
    fn points_become_what_flinks_prometheus_reporter_exports() {
        let i = inputs(None);
        let tm = r"host=localhost,job_id=3f3d97ddcc59dc9ab2040a4118238939,job_name=stackd\ cpu\ job,operator_id=570f707193e0fe32f4d86d067aba243b,operator_name=Burn,subtask_index=0,task_attempt_id=33850e031f8a351f712cad1be5a8201c_cbc357ccb763df2852fee8c4fc7d55f2_0_0,task_attempt_num=0,task_id=cbc357ccb763df2852fee8c4fc7d55f2,task_name=Source:\ Numbers\ ->\ Burn\ ->\ Discard:\ Writer,tm_id=localhost:43463-fb77ac";
        let body = format!(
            "taskmanager_job_task_operator_stackdKnownGauge,{tm} value=42i 1795302509677000000\n\
             taskmanager_job_task_operator_stackdResidues,{tm} count=1000i,max=99i,mean=49.50000000000002,min=0i,p50=49.5,p75=74.75,p95=94.94999999999993,p98=97.98000000000002,p99=98.99000000000001,p999=99.0,stddev=28.880513916550804 1795302509677000000\n\
             taskmanager_job_task_operator_numRecordsOutPerSecond,{tm} count=918244i,rate=1532.4666666666667 1795302509677000000\n\
             taskmanager_Status_JVM_Memory_Heap_Used,host=localhost,tm_id=localhost:43463-fb77ac value=57361456i 1795302076617000000\n\
             jobmanager_job_lastCheckpointExternalPath,host=localhost,job_id=3f3d97ddcc59dc9ab2040a4118238939,job_name=stackd\\ cpu\\ job value=\"n/a\" 1795302508650000000\n\
             \n\
             jobmanager_numRunningJobs,host=localhost value=1i 1795302508650000000\n"
        );
        let out = i.line_protocol(body.as_bytes(), Precision::Nanos, 0);
        assert_eq!((out.written, out.rejected), (6, 0));
        let text = String::from_utf8(crate::metrics::Metrics::new().render(&i.ingest.store, 0, &Default::default())).expect("utf-8");
        let labels = "host=\"localhost\",job_id=\"3f3d97ddcc59dc9ab2040a4118238939\",job_name=\"stackd_cpu_job\",operator_id=\"570f707193e0fe32f4d86d067aba243b\",operator_name=\"Burn\",subtask_index=\"0\",task_attempt_id=\"33850e031f8a351f712cad1be5a8201c_cbc357ccb763df2852fee8c4fc7d55f2_0_0\",task_attempt_num=\"0\",task_id=\"cbc357ccb763df2852fee8c4fc7d55f2\",task_name=\"Source:_Numbers____Burn____Discard:_Writer\",tm_id=\"localhost:43463_fb77ac\"";
        let quantile = |q: &str| labels.replace("subtask_index", &format!("quantile=\"{q}\",subtask_index"));
        for want in [
            format!("# TYPE flink_taskmanager_job_task_operator_stackdKnownGauge gauge\nflink_taskmanager_job_task_operator_stackdKnownGauge{{{labels}}} 42\n"),
            format!("# TYPE flink_taskmanager_job_task_operator_stackdResidues summary\nflink_taskmanager_job_task_operator_stackdResidues{{{}}} 49.5\n", quantile("0.5")),
            format!("flink_taskmanager_job_task_operator_stackdResidues{{{}}} 99\nflink_taskmanager_job_task_operator_stackdResidues_count{{{labels}}} 1000\n", quantile("0.999")),
            format!("flink_taskmanager_job_task_operator_numRecordsOutPerSecond{{{labels}}} 1532.4666666666667\n"),
            "flink_taskmanager_Status_JVM_Memory_Heap_Used{host=\"localhost\",tm_id=\"localhost:43463_fb77ac\"} 57361456\n".to_string(),
            "flink_jobmanager_job_lastCheckpointExternalPath{host=\"localhost\",job_id=\"3f3d97ddcc59dc9ab2040a4118238939\",job_name=\"stackd_cpu_job\"} 0\n".to_string(),
            "flink_jobmanager_numRunningJobs{host=\"localhost\"} 1\n".to_string(),
        ] {
            assert!(text.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("_sum{"), "Flink's summaries have no _sum");
        // The job's series are its app; the rest are the cluster's.
        let apps: Vec<String> = i.ingest.store.apps().iter().map(|a| a.name.to_string()).collect();
        assert_eq!(apps, ["flink", "stackd cpu job"]);
    }
}
