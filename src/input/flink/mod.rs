//! Flink's own metrics, from its `InfluxdbReporter` ([`influx`]) and `StatsDReporter`
//! ([`statsd`]), exported under the names, types and labels Flink's own `PrometheusReporter`
//! gives them (`flink_` + the logical scope and metric name, every scope variable a label, label
//! values with `[^A-Za-z0-9:_]` → `_`), so that dashboards built for that reporter work against
//! stackd unchanged.
//!
//! The app of a series is the job it belongs to (the `job_name` variable, as sent); metrics of
//! no job (JobManager and TaskManager JVMs, cluster figures) belong to the app [`CLUSTER_APP`].

pub mod client;
pub mod flamegraph;
pub mod influx;
pub mod poller;
pub mod profiling;
pub mod rest;
pub mod statsd;
pub mod status;

use std::borrow::Cow;

use xxhash_rust::xxh3::Xxh3;

use crate::ingest::Writer;
use crate::outcome::Reject;
use crate::sample::{sanitize_metric_name, Origin, Series, SeriesKind};
use crate::store::{SourceId, SourceSpec};

/// The app of Flink metrics that belong to no job.
pub const CLUSTER_APP: &str = "flink";

/// A label value as Flink's `PrometheusReporter` writes it: `[^A-Za-z0-9:_]` → `_`.
pub fn label_value(v: &str) -> Cow<'_, str> {
    if v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_') {
        return Cow::Borrowed(v);
    }
    Cow::Owned(v.chars().map(|c| if c.is_ascii_alphanumeric() || c == ':' || c == '_' { c } else { '_' }).collect())
}

/// A label name from a scope variable (`<job_name>` arrives as `job_name`).
fn label_name(k: &str) -> Cow<'_, str> {
    if crate::sample::is_label_name(k) {
        Cow::Borrowed(k)
    } else {
        Cow::Owned(crate::sample::escape_label_name(k))
    }
}

/// The family of a measurement (`taskmanager_Status_JVM_Memory_Heap_Used`).
fn family(measurement: &str) -> String {
    let mut name = String::with_capacity(6 + measurement.len());
    name.push_str("flink_");
    sanitize_metric_name(measurement, &mut name);
    name
}

/// The source (app and nothing else: Flink's variables are the series' labels) of a job.
fn source(w: &mut Writer<'_>, job_name: Option<&str>) -> Result<SourceId, Reject> {
    let app = job_name.filter(|j| !j.is_empty()).unwrap_or(CLUSTER_APP);
    let mut h = Xxh3::new();
    h.update(b"flink\0");
    h.update(app.as_bytes());
    w.source(h.digest(), || SourceSpec::new(app.to_string(), Vec::new()))
}

/// Labels from variables (raw names and values), sorted, plus an optional `quantile`.
fn labels<'a>(vars: &'a [(Cow<'a, str>, Cow<'a, str>)], quantile: Option<&'static str>) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    let mut out: Vec<(Cow<'_, str>, Cow<'_, str>)> = vars.iter().map(|(k, v)| (label_name(k), label_value(v))).collect();
    out.extend(quantile.map(|q| (Cow::Borrowed("quantile"), Cow::Borrowed(q))));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// Where the values of one metric go: its family, its app, and the variables as labels.
struct Target<'a> {
    source: SourceId,
    family: &'a str,
    vars: &'a [(Cow<'a, str>, Cow<'a, str>)],
    now_ms: i64,
}

impl Target<'_> {
    /// One value of the family (`suffix` `_count` and a `quantile` for summaries).
    fn set(
        &self,
        w: &mut Writer<'_>,
        kind: SeriesKind,
        suffix: &'static str,
        quantile: Option<&'static str>,
        value: f64,
    ) -> Result<(), Reject> {
        let series = Series { origin: Origin::Flink, family: self.family, kind, suffix, labels: labels(self.vars, quantile), value };
        w.set_series(self.source, &series, self.now_ms)
    }
}
