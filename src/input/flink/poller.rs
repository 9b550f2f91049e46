//! Flink's flame graphs, kept: each `--flink-rest` JobManager is polled for its running jobs
//! (`/jobs/overview`), their running vertices (`/jobs/:jid`), and each vertex's flame graph
//! (`/jobs/:jid/vertices/:vid/flamegraph?type=…`, per subtask from Flink 1.17 on), every
//! `--flink-poll-interval`.
//!
//! Flink samples a vertex when its flame graph is asked for and the last sample ended more than
//! `rest.flamegraph.refresh-interval` ago, and answers with the last sample meanwhile. Each new
//! sample (a new `endTimestamp`) is stored once, at its `endTimestamp`, under the app named by
//! the job and the labels `job_id`, `vertex`, `type` and `subtask`; a sample already stored (also
//! before a restart: the label set's newest time is kept in the store) is not stored again.
//! Per subtask, the vertex is asked first, so that Flink samples all its subtasks at once rather
//! than one by one.
//!
//! A JobManager that cannot be reached, does not answer in time or answers garbage ends the
//! poll: counted in `stackd_flink_poll_errors_total{endpoint,reason}`, shown at `GET /flink`, and
//! retried after a backoff (the interval, doubled per failure up to a minute or the interval).
//! Polling runs on its own tasks and never holds anything ingest or queries wait for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::client::{Client, Endpoint, FetchError};
use super::flamegraph::{self, Document, Sentinel};
use crate::ingest::{truncated, Ingest};
use crate::metrics::Metrics;
use crate::store::SourceSpec;
use crate::{now_ms, rfc3339_ms};

/// Which of Flink's flame graphs are kept (the `type` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphType {
    /// Threads running or runnable.
    #[value(alias = "on_cpu")]
    OnCpu,
    /// Threads waiting, timed waiting or blocked.
    #[value(alias = "off_cpu")]
    OffCpu,
    /// Both (do not keep it beside the other two: every sample would count twice).
    Full,
}

impl GraphType {
    /// The `type` label value and Flink's query value.
    pub fn label(self) -> &'static str {
        match self {
            Self::OnCpu => "on_cpu",
            Self::OffCpu => "off_cpu",
            Self::Full => "full",
        }
    }
}

/// How the poller is set up.
#[derive(Clone, Debug)]
pub struct PollerConfig {
    pub endpoints: Vec<Endpoint>,
    pub interval: Duration,
    pub timeout: Duration,
    pub types: Vec<GraphType>,
    pub max_body: usize,
}

/// What `GET /flink` shows for one endpoint.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EndpointStatus {
    pub endpoint: String,
    /// `flink-version` from the JobManager's `/config`.
    pub flink_version: Option<String>,
    /// Whether graphs are taken per subtask (Flink 1.17 and later).
    pub per_subtask: bool,
    /// End of the last poll that went through, RFC 3339, and Unix ms.
    pub last_success: Option<String>,
    pub last_success_ms: Option<i64>,
    /// The last failure, and when.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// Failed polls since the last one that went through.
    pub consecutive_failures: u32,
    /// Running jobs at the last poll.
    pub running_jobs: usize,
    /// Snapshots with samples stored since stackd started.
    pub snapshots_stored: u64,
    /// The JobManager answered `{"endTimestamp":-2}`: `rest.flamegraph.enabled` is not set.
    pub flamegraph_disabled: bool,
}

/// The status of every endpoint, shared with the HTTP side.
#[derive(Clone, Debug, Default)]
pub struct Status(Arc<Vec<Mutex<EndpointStatus>>>);

impl Status {
    pub fn snapshot(&self) -> Vec<EndpointStatus> {
        self.0.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect()
    }
}

/// Start one polling task per endpoint.
pub fn start(config: PollerConfig, ingest: Arc<Ingest>, token: CancellationToken) -> (Status, Vec<tokio::task::JoinHandle<()>>) {
    let status = Status(Arc::new(
        config.endpoints.iter().map(|e| Mutex::new(EndpointStatus { endpoint: e.url.clone(), ..Default::default() })).collect(),
    ));
    let tasks = (0..config.endpoints.len())
        .map(|i| {
            let poller = Poller::new(config.clone(), i, Arc::clone(&ingest), status.clone());
            tokio::spawn(poller.run(token.clone()))
        })
        .collect();
    (status, tasks)
}

/// How long to wait after `failures` failed polls in a row.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let cap = interval.max(Duration::from_secs(60));
    interval.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(cap)
}

#[derive(Deserialize)]
struct Config {
    #[serde(rename = "flink-version")]
    flink_version: Option<String>,
}

#[derive(Deserialize)]
struct Overview {
    jobs: Vec<JobSummary>,
}

#[derive(Deserialize)]
struct JobSummary {
    jid: String,
    name: String,
    state: String,
}

#[derive(Deserialize)]
struct Job {
    vertices: Vec<Vertex>,
}

#[derive(Deserialize)]
struct Vertex {
    id: String,
    name: String,
    parallelism: u32,
    status: String,
}

/// Why a poll ended early.
#[derive(Debug)]
enum PollError {
    Fetch(String, FetchError),
    /// Not the JSON Flink sends.
    Invalid(String, String),
}

impl PollError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Fetch(_, e) => e.reason(),
            Self::Invalid(..) => "invalid_response",
        }
    }
}

impl std::fmt::Display for PollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fetch(path, e) => write!(f, "GET {path}: {e}"),
            Self::Invalid(path, e) => write!(f, "GET {path}: {e}"),
        }
    }
}

/// One endpoint's poller.
struct Poller {
    config: PollerConfig,
    endpoint: Endpoint,
    ingest: Arc<Ingest>,
    metrics: Metrics,
    status: Status,
    index: usize,
    /// `None` until `/config` answered.
    per_subtask: Option<bool>,
    /// Newest `endTimestamp` seen per graph (origin hash), for graphs of running vertices.
    seen: HashMap<u64, i64>,
    disabled_logged: bool,
    /// Held while a snapshot is being stored (on a blocking thread, which a cancelled poll does
    /// not stop): shutdown waits for it, so the final flush has every snapshot whole.
    storing: Arc<tokio::sync::Mutex<()>>,
}

/// One graph to fetch: where it goes.
struct Graph<'a> {
    job: &'a JobSummary,
    vertex: &'a Vertex,
    kind: GraphType,
    subtask: Option<u32>,
}

impl Graph<'_> {
    fn path(&self) -> String {
        let mut p = format!("/jobs/{}/vertices/{}/flamegraph?type={}", self.job.jid, self.vertex.id, self.kind.label());
        if let Some(s) = self.subtask {
            p.push_str(&format!("&subtaskindex={s}"));
        }
        p
    }

    fn spec(&self) -> SourceSpec {
        let mut labels = vec![
            ("job_id".to_string(), self.job.jid.clone()),
            ("type".to_string(), self.kind.label().to_string()),
            ("vertex".to_string(), self.vertex.name.clone()),
        ];
        if let Some(s) = self.subtask {
            labels.push(("subtask".to_string(), s.to_string()));
        }
        labels.sort();
        SourceSpec { app: self.job.name.clone(), labels }
    }

    fn origin(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(b"flink-rest\0");
        for part in [self.job.name.as_str(), &self.job.jid, &self.vertex.id, self.kind.label()] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        h.update(&self.subtask.map_or(-1, i64::from).to_le_bytes());
        h.digest()
    }
}

impl Poller {
    fn new(config: PollerConfig, index: usize, ingest: Arc<Ingest>, status: Status) -> Self {
        let endpoint = config.endpoints[index].clone();
        let metrics = ingest.metrics.clone();
        Poller {
            config,
            endpoint,
            ingest,
            metrics,
            status,
            index,
            per_subtask: None,
            seen: HashMap::new(),
            disabled_logged: false,
            storing: Arc::default(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut EndpointStatus)) {
        f(&mut self.status.0[self.index].lock().unwrap_or_else(|e| e.into_inner()));
    }

    async fn run(mut self, token: CancellationToken) {
        let mut failures = 0u32;
        let storing = Arc::clone(&self.storing);
        loop {
            let result = tokio::select! {
                _ = token.cancelled() => {
                    drop(storing.lock().await);
                    return;
                }
                r = self.poll() => r,
            };
            let now = now_ms();
            match result {
                Ok(jobs) => {
                    failures = 0;
                    self.metrics.flink_last_success.with_label_values(&[&self.endpoint.url]).set(now as f64 / 1000.0);
                    self.update(|s| {
                        s.last_success_ms = Some(now);
                        s.last_success = Some(rfc3339_ms(now));
                        s.consecutive_failures = 0;
                        s.running_jobs = jobs;
                    });
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    self.metrics.flink_poll_errors.with_label_values(&[&self.endpoint.url, e.reason()]).inc();
                    let message = e.to_string();
                    if failures == 1 {
                        tracing::warn!(endpoint = %self.endpoint.url, error = %message, "polling Flink failed; retrying with backoff (see GET /flink)");
                    }
                    self.update(|s| {
                        s.last_error = Some(message);
                        s.last_error_ms = Some(now);
                        s.consecutive_failures = failures;
                    });
                }
            }
            let wait = if failures == 0 { self.config.interval } else { backoff(self.config.interval, failures) };
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One poll: every running job's running vertices. Returns the number of running jobs.
    async fn poll(&mut self) -> Result<usize, PollError> {
        let mut client = Client::new(self.endpoint.clone(), self.config.timeout, self.config.max_body);
        if self.per_subtask.is_none() {
            let config: Config = get_json(&mut client, "/config").await?;
            let per_subtask = config.flink_version.as_deref().is_some_and(has_subtask_graphs);
            self.per_subtask = Some(per_subtask);
            self.update(|s| {
                s.flink_version = config.flink_version;
                s.per_subtask = per_subtask;
            });
        }
        let per_subtask = self.per_subtask == Some(true);
        let types = self.config.types.clone();
        let overview: Overview = get_json(&mut client, "/jobs/overview").await?;
        let running: Vec<&JobSummary> = overview.jobs.iter().filter(|j| j.state == "RUNNING").collect();
        let mut touched = std::collections::HashSet::new();
        for job in &running {
            let Some(detail) = get_json_or_gone::<Job>(&mut client, &format!("/jobs/{}", job.jid)).await? else { continue };
            for vertex in detail.vertices.iter().filter(|v| v.status == "RUNNING") {
                if per_subtask {
                    // Ask for the vertex first: Flink then samples all its subtasks in one go.
                    let path = format!("/jobs/{}/vertices/{}/flamegraph?type=full", job.jid, vertex.id);
                    if let Some(body) = get_or_gone(&mut client, &path).await? {
                        self.sentinel(&path, &body).await?;
                    }
                }
                let subtasks: Vec<Option<u32>> = if per_subtask { (0..vertex.parallelism).map(Some).collect() } else { vec![None] };
                for subtask in subtasks {
                    for kind in types.iter().copied() {
                        let graph = Graph { job, vertex, kind, subtask };
                        touched.insert(graph.origin());
                        self.fetch(&mut client, &graph).await?;
                    }
                }
            }
        }
        // Graphs of vertices no longer running are forgotten (the store keeps their newest time).
        self.seen.retain(|origin, _| touched.contains(origin));
        Ok(running.len())
    }

    /// Notice `{"endTimestamp":-2}` in an answer that is not stored.
    async fn sentinel(&mut self, path: &str, body: &axum::body::Bytes) -> Result<(), PollError> {
        if let Document::Sentinel(Sentinel::Disabled) = parse(path, body.clone()).await? {
            self.disabled();
        }
        Ok(())
    }

    fn disabled(&mut self) {
        if !self.disabled_logged {
            self.disabled_logged = true;
            tracing::warn!(
                endpoint = %self.endpoint.url,
                "Flink's flame graphs are disabled on this JobManager; add `rest.flamegraph.enabled: true` to its config.yaml (flink-conf.yaml before Flink 1.19) and restart it"
            );
        }
        self.update(|s| s.flamegraph_disabled = true);
    }

    /// Fetch one graph and store it if it is new.
    async fn fetch(&mut self, client: &mut Client, graph: &Graph<'_>) -> Result<(), PollError> {
        let path = graph.path();
        let Some(body) = get_or_gone(client, &path).await? else { return Ok(()) };
        let (end_ms, tree) = match parse(&path, body).await? {
            Document::Sentinel(Sentinel::Disabled) => {
                self.disabled();
                return Ok(());
            }
            Document::Sentinel(Sentinel::Finished | Sentinel::Waiting) => return Ok(()),
            Document::Graph { end_ms: None, .. } => return Err(PollError::Invalid(path, "a flame graph without endTimestamp".into())),
            Document::Graph { end_ms: Some(t), tree } => (t, tree),
        };
        self.update(|s| s.flamegraph_disabled = false);
        let origin = graph.origin();
        if self.seen.get(&origin).is_some_and(|&newest| end_ms <= newest) {
            return Ok(()); // seen at an earlier poll
        }
        // Marked seen before it is stored: a snapshot that is refused is refused once.
        self.seen.insert(origin, end_ms);
        let source = match self.ingest.source_at(origin, end_ms, now_ms(), || graph.spec()) {
            Ok(source) => source,
            Err(r) => {
                self.refused(format!("{path}: the snapshot of {} of job {:?} was not stored: {r}", rfc3339_ms(end_ms), graph.job.name));
                return Ok(());
            }
        };
        if end_ms <= source.last_ms() {
            return Ok(()); // stored before a restart (the label set's newest time is kept)
        }
        if tree.is_empty() {
            return Ok(()); // no samples (an off-CPU graph of a busy thread): nothing to store
        }
        let ingest = Arc::clone(&self.ingest);
        let storing = Arc::clone(&self.storing).lock_owned().await;
        let stored = tokio::task::spawn_blocking(move || {
            let _storing = storing;
            ingest.add_profile(&source, end_ms, now_ms(), |sink| tree.each_stack(sink))
        })
        .await
        .unwrap_or(Err(crate::outcome::Reject::Internal));
        match stored {
            Ok(_) => {
                self.metrics.flink_snapshots.with_label_values(&[&self.endpoint.url]).inc();
                self.update(|s| s.snapshots_stored += 1);
            }
            Err(r) => self.refused(format!("{path}: the snapshot of {} was not stored: {r}", rfc3339_ms(end_ms))),
        }
        Ok(())
    }

    /// A snapshot stackd will not store (its time is outside the retention or too far ahead of
    /// stackd's clock, the app limit): counted and shown, and the poll goes on.
    fn refused(&self, message: String) {
        self.metrics.flink_poll_errors.with_label_values(&[&self.endpoint.url, "refused"]).inc();
        tracing::debug!(endpoint = %self.endpoint.url, %message, "Flink snapshot refused");
        let now = now_ms();
        self.update(|s| {
            s.last_error = Some(message);
            s.last_error_ms = Some(now);
        });
    }
}

/// Flink 1.17 and later take `subtaskindex`.
fn has_subtask_graphs(version: &str) -> bool {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (1, 17),
        _ => false,
    }
}

/// Parse a flame graph answer off the async threads.
async fn parse(path: &str, body: axum::body::Bytes) -> Result<Document, PollError> {
    tokio::task::spawn_blocking(move || flamegraph::parse(&body))
        .await
        .unwrap_or_else(|e| Err(format!("parsing failed: {e}")))
        .map_err(|e| PollError::Invalid(path.to_string(), e))
}

/// A 404 means the job or vertex is gone (finished between two requests): `None`.
async fn get_or_gone(client: &mut Client, path: &str) -> Result<Option<axum::body::Bytes>, PollError> {
    match client.get(path).await {
        Ok(body) => Ok(Some(body)),
        Err(FetchError::Status(404, _)) => Ok(None),
        Err(e) => Err(PollError::Fetch(path.to_string(), e)),
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(client: &mut Client, path: &str) -> Result<T, PollError> {
    let body = client.get(path).await.map_err(|e| PollError::Fetch(path.to_string(), e))?;
    decode(path, &body)
}

async fn get_json_or_gone<T: serde::de::DeserializeOwned>(client: &mut Client, path: &str) -> Result<Option<T>, PollError> {
    match get_or_gone(client, path).await? {
        Some(body) => decode(path, &body).map(Some),
        None => Ok(None),
    }
}

fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, PollError> {
    serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        PollError::Invalid(path.to_string(), format!("not the JSON Flink sends ({e}); the answer began {:?}", truncated(&start, 80)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_with_subtask_graphs() {
        for (v, want) in [("2.3.0", true), ("1.17.0", true), ("1.16.3", false), ("1.13.6", false), ("1.20-SNAPSHOT", true), ("x", false)] {
            assert_eq!(has_subtask_graphs(v), want, "{v}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let s = Duration::from_secs;
        let waits: Vec<Duration> = (1..=8).map(|n| backoff(s(1), n)).collect();
        assert_eq!(waits, [s(1), s(2), s(4), s(8), s(16), s(32), s(60), s(60)]);
        assert_eq!(backoff(s(15), 3), s(60));
        assert_eq!(backoff(s(120), 5), s(120), "never more often than the interval, never longer than it when it is over a minute");
    }

    #[test]
    fn graph_labels() {
        let job = JobSummary { jid: "86d1".into(), name: "stackd cpu job".into(), state: "RUNNING".into() };
        let vertex = Vertex { id: "cbc3".into(), name: "Source: Numbers -> Burn".into(), parallelism: 2, status: "RUNNING".into() };
        let g = Graph { job: &job, vertex: &vertex, kind: GraphType::OnCpu, subtask: Some(1) };
        assert_eq!(g.path(), "/jobs/86d1/vertices/cbc3/flamegraph?type=on_cpu&subtaskindex=1");
        let spec = g.spec();
        assert_eq!(spec.app, "stackd cpu job");
        let labels: Vec<(&str, &str)> = spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("job_id", "86d1"), ("subtask", "1"), ("type", "on_cpu"), ("vertex", "Source: Numbers -> Burn")]);
        let whole = Graph { subtask: None, ..g };
        assert_ne!(whole.origin(), Graph { job: &job, vertex: &vertex, kind: GraphType::OnCpu, subtask: Some(0) }.origin());
        assert_eq!(whole.path(), "/jobs/86d1/vertices/cbc3/flamegraph?type=on_cpu");
    }
}
