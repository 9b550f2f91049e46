//! Flink's `StatsDReporter`: `<scope>.<metric>:<value>|g` for every metric, where the scope is
//! built from Flink's scope formats with `.` between components and the components keep their
//! own dots and spaces. Every value is absolute (a counter's count, a gauge's value; numeric
//! gauges are sent twice, a negative one after a `:0`), so each replaces the last.
//!
//! Only what can be split exactly is claimed (default scope formats):
//!
//! | name | exported |
//! |---|---|
//! | `<host>.jobmanager.Status.<path>` and the cluster figures (`numRunningJobs`, …) | `flink_jobmanager_<path>{host}` |
//! | `<host>.jobmanager.<job name>.<job metric>` (`numRestarts`, `uptime`, …) | `flink_jobmanager_job_<metric>{host,job_name}` |
//! | `<host>.taskmanager.<tm id>.Status.<path>` | `flink_taskmanager_Status_<path>{host,tm_id}` |
//!
//! Each `.` of the path becomes `_`. Task and operator metrics
//! (`<host>.taskmanager.<tm id>.<job>.<task or operator>.<subtask>.<metric>`) cannot be: task and
//! operator scopes have the same shape and every part may hold dots. They are counted as
//! ignored (`ambiguous_name`); the InfluxDB reporter carries them exactly. The StatsD reporter
//! does not send `job_id`, and writes the TaskManager id with `-` for `:`, so those labels
//! differ from the InfluxDB reporter's.

use std::borrow::Cow;

use super::{source, Target};
use crate::ingest::Writer;
use crate::input::StatsdInput;
use crate::outcome::{Ignored, Outcome, Reject};
use crate::protocol::statsd::{self, MetricType};
use crate::sample::{sanitize_metric_name, SeriesKind};

/// JobManager metrics of the whole cluster (scope `<host>.jobmanager`).
const CLUSTER_METRICS: &[&str] =
    &["numRegisteredTaskManagers", "numPendingTaskManagers", "numRunningJobs", "taskSlotsAvailable", "taskSlotsTotal"];

/// JobManager metrics of one job (scope `<host>.jobmanager.<job_name>`), Flink 2.3.
const JOB_METRICS: &[&str] = &[
    "allSubTasksRunningOrFinishedTime",
    "cancellingTime",
    "createdTime",
    "deployingTime",
    "downtime",
    "failingTime",
    "fullRestarts",
    "initializingTime",
    "lastCheckpointCompletedTimestamp",
    "lastCheckpointDuration",
    "lastCheckpointExternalPath",
    "lastCheckpointFullSize",
    "lastCheckpointMetadataSize",
    "lastCheckpointPersistedData",
    "lastCheckpointProcessedData",
    "lastCheckpointRestoreTimestamp",
    "lastCheckpointSize",
    "lastCompletedCheckpointId",
    "numRescales",
    "numRestarts",
    "numberOfCompletedCheckpoints",
    "numberOfFailedCheckpoints",
    "numberOfInProgressCheckpoints",
    "restartingTime",
    "runningTime",
    "totalNumberOfCheckpoints",
    "uptime",
];

/// A name split into what Flink's `PrometheusReporter` would call it.
#[derive(Debug, PartialEq, Eq)]
pub enum Name<'a> {
    /// Measurement (`jobmanager_Status_JVM_CPU_Load`), host, and the job or TaskManager id.
    Known { measurement: String, host: &'a str, job_name: Option<&'a str>, tm_id: Option<&'a str> },
    /// A JobManager or TaskManager name that cannot be split exactly.
    Ambiguous,
}

/// `None` when the name is not Flink's (no `jobmanager` / `taskmanager` component after a host).
pub fn split(name: &str) -> Option<Name<'_>> {
    let (host, scope, rest) = ["jobmanager", "taskmanager"].iter().find_map(|scope| {
        let at = find_component(name, scope)?;
        (at > 0).then(|| (&name[..at - 1], *scope, name.get(at + scope.len() + 1..).unwrap_or("")))
    })?;
    if rest.is_empty() {
        return None;
    }
    let measurement = |prefix: &str, path: &str| {
        let mut m = String::with_capacity(prefix.len() + path.len());
        m.push_str(prefix);
        sanitize_metric_name(path, &mut m); // `.` becomes `_` with the rest
        m
    };
    if scope == "jobmanager" {
        if rest.starts_with("Status.") || CLUSTER_METRICS.contains(&rest) {
            return Some(Name::Known { measurement: measurement("jobmanager_", rest), host, job_name: None, tm_id: None });
        }
        if let Some((job, metric)) = rest.rsplit_once('.').filter(|(_, m)| JOB_METRICS.contains(m)) {
            return Some(Name::Known { measurement: measurement("jobmanager_job_", metric), host, job_name: Some(job), tm_id: None });
        }
        return Some(Name::Ambiguous);
    }
    match find_component(rest, "Status") {
        Some(at) if at > 0 => {
            Some(Name::Known { measurement: measurement("taskmanager_", &rest[at..]), host, job_name: None, tm_id: Some(&rest[..at - 1]) })
        }
        _ => Some(Name::Ambiguous),
    }
}

/// Byte offset of the first `.`-delimited component equal to `component`.
fn find_component(name: &str, component: &str) -> Option<usize> {
    let mut start = 0;
    loop {
        let end = name[start..].find('.').map_or(name.len(), |i| start + i);
        if &name[start..end] == component {
            return Some(start);
        }
        if end == name.len() {
            return None;
        }
        start = end + 1;
    }
}

#[derive(Debug)]
pub struct Input;

impl StatsdInput for Input {
    fn line(&self, w: &mut Writer<'_>, line: &statsd::Line<'_>, now_ms: i64) -> bool {
        let Some(name) = split(&line.name) else { return false };
        let Name::Known { measurement, host, job_name, tm_id } = name else {
            w.count(Outcome::Ignored(Ignored::AmbiguousName));
            return true;
        };
        let source = match source(w, job_name) {
            Ok(s) => s,
            Err(r) => {
                w.count(Outcome::Rejected(r));
                return true;
            }
        };
        let mut vars = vec![(Cow::Borrowed("host"), Cow::Borrowed(host))];
        vars.extend(job_name.map(|j| (Cow::Borrowed("job_name"), Cow::Borrowed(j))));
        vars.extend(tm_id.map(|t| (Cow::Borrowed("tm_id"), Cow::Borrowed(t))));
        let family = super::family(&measurement);
        let target = Target { source, family: &family, vars: &vars, now_ms };
        for sample in line.samples() {
            let result = match (sample.kind, sample.number) {
                (MetricType::Gauge, Some(v)) if !sample.decimal_comma => target.set(w, SeriesKind::Gauge, "", None, v),
                (MetricType::Gauge, _) => Err(Reject::BadValue),
                _ => Err(Reject::WrongType),
            };
            w.count(result.into());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::profiler::testing::inputs;

    #[test]
    fn names_split_where_they_can_be_split_exactly() {
        let known = |m: &str, host, job_name, tm_id| Some(Name::Known { measurement: m.into(), host, job_name, tm_id });
        assert_eq!(
            split("tm.host.example.taskmanager.10.0.0.12-40027-3fa9c1.Status.JVM.Memory.Heap.Used"),
            known("taskmanager_Status_JVM_Memory_Heap_Used", "tm.host.example", None, Some("10.0.0.12-40027-3fa9c1"))
        );
        assert_eq!(split("jm-host.jobmanager.Status.JVM.CPU.Load"), known("jobmanager_Status_JVM_CPU_Load", "jm-host", None, None));
        assert_eq!(split("localhost.jobmanager.numRunningJobs"), known("jobmanager_numRunningJobs", "localhost", None, None));
        assert_eq!(
            split("localhost.jobmanager.Word.Count v2.numRestarts"),
            known("jobmanager_job_numRestarts", "localhost", Some("Word.Count v2"), None)
        );
        for ambiguous in [
            "tm-host-1.taskmanager.10.0.0.12-40027-3fa9c1.WordCount.Map.0.numRecordsOutPerSecond.rate",
            "localhost.jobmanager.stackd cpu job.Source- Numbers -> Burn -> Discard- Writer.coordinator.enumerator.unassignedSplits",
        ] {
            assert_eq!(split(ambiguous), Some(Name::Ambiguous), "{ambiguous}");
        }
        for not_flink in ["jobmanager.Status.JVM.CPU.Load", "app.driver.jvm.heap.used", "host.taskmanager"] {
            assert_eq!(split(not_flink), None, "{not_flink}");
        }
    }

    #[test]
    fn values_are_absolute_and_labelled_like_flinks_own_reporter() {
        let i = inputs(None);
        // As Flink sends a negative gauge: `:0` first, then the value, twice.
        i.statsd_datagram(b"localhost.jobmanager.stackd cpu job.numRestarts:0|g", 0);
        for _ in 0..2 {
            i.statsd_datagram(b"localhost.jobmanager.stackd cpu job.numRestarts:-3|g", 0);
        }
        i.statsd_datagram(b"localhost.taskmanager.localhost-43463-fb77ac.Status.JVM.Memory.Heap.Used:1.0E7|g", 0);
        i.statsd_datagram(b"localhost.taskmanager.localhost-43463-fb77ac.stackd cpu job.Burn.0.stackdKnownGauge:42|g", 0);
        let text = String::from_utf8(crate::metrics::Metrics::new().render(&i.ingest.store, 0, &Default::default())).expect("utf-8");
        for want in [
            "flink_jobmanager_job_numRestarts{host=\"localhost\",job_name=\"stackd_cpu_job\"} -3\n",
            "flink_taskmanager_Status_JVM_Memory_Heap_Used{host=\"localhost\",tm_id=\"localhost_43463_fb77ac\"} 10000000\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let m = &i.ingest.metrics;
        assert_eq!(m.lines_accepted.with_label_values(&["statsd"]).get(), 4);
        assert_eq!(m.lines_ignored.with_label_values(&["statsd", "ambiguous_name"]).get(), 1);
    }
}
