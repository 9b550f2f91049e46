//! Flink's flame graphs, kept: each `--flink-rest` JobManager is polled for its running jobs
//! (`/jobs/overview`), their running vertices (`/jobs/:jid`), and each vertex's flame graph
//! (`/jobs/:jid/vertices/:vid/flamegraph?type=…`, per subtask from Flink 1.17 on), every
//! `--flink-poll-interval`.
//!
//! Flink samples a vertex when its flame graph is asked for and the last sample ended more than
//! `rest.flamegraph.refresh-interval` ago, and answers with the last sample meanwhile. Each new
//! sample (a new `endTimestamp`) is stored once, at its `endTimestamp`, under the app named by
//! the job, with the labels `job_id`, `vertex` and `subtask`, as the graph's profile type (`cpu`,
//! `off_cpu`, or `wall` for the full graph); a sample already stored (also
//! before a restart: the label set's newest time is kept in the store) is not stored again.
//! Per subtask, the vertex is asked first, so that Flink samples all its subtasks at once rather
//! than one by one.
//!
//! A JobManager that cannot be reached, does not answer in time or answers garbage at
//! `/config` or `/jobs/overview` ends the poll: counted in
//! `stackd_flink_poll_errors_total{endpoint,reason}`, shown at `GET /flink`, and retried after a
//! backoff (the interval, doubled per failure up to a minute or the interval). A job or vertex
//! whose answers fail is counted and skipped, and the poll goes on with the next one; only
//! [`MAX_FAILURES_IN_A_ROW`] failures in a row end it.
//!
//! A poll is bounded: at most `--flink-max-requests` requests and `--flink-poll-deadline` of
//! time. One cut short says so (`cut_short` at `GET /flink`, `reason="poll_budget"`), and the
//! next poll starts with the vertex after the last one asked, so that every vertex is reached
//! in turn however many there are. No number from a JobManager sizes anything before it is
//! checked: a parallelism over Flink's own maximum ([`MAX_PARALLELISM`]) is refused.
//! `GET /flink` shows the poll under way (`current_poll`) and the last one (`last_poll`).
//!
//! Polling runs on its own tasks and never holds anything ingest or queries wait for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::client::{Client, Endpoint, FetchError};
use super::flamegraph::{self, Document, Sentinel};
use super::rest::{has_subtask_graphs, Config, Job, JobSummary, Overview, Vertex};
pub use super::status::{EndpointStatus, PollProgress, Status};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::SourceSpec;
use crate::{now_ms, percent_encode as segment, rfc3339_ms};

/// Which of Flink's flame graphs are kept (each as its profile type: [`GraphType::profile`]).
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
    /// The profile type its samples are stored as.
    pub fn profile(self) -> crate::sample::ProfileType {
        use crate::sample::ProfileType;
        match self {
            Self::OnCpu => ProfileType::Cpu,
            Self::OffCpu => ProfileType::OffCpu,
            Self::Full => ProfileType::Wall,
        }
    }

    /// Flink's query value.
    pub fn label(self) -> &'static str {
        match self {
            Self::OnCpu => "on_cpu",
            Self::OffCpu => "off_cpu",
            Self::Full => "full",
        }
    }
}

/// Jobs or vertices failing one after another that end a poll (the JobManager itself is in
/// trouble, not one vertex).
pub const MAX_FAILURES_IN_A_ROW: u32 = 5;

/// How the poller is set up.
#[derive(Clone, Debug)]
pub struct PollerConfig {
    pub endpoints: Vec<Endpoint>,
    pub interval: Duration,
    pub timeout: Duration,
    pub types: Vec<GraphType>,
    pub max_body: usize,
    /// Requests one poll may make.
    pub max_requests: usize,
    /// How long one poll may take.
    pub deadline: Duration,
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

/// Why a poll (or one job or vertex of it) did not go through.
#[derive(Debug)]
enum PollError {
    Fetch(String, FetchError),
    /// Not the JSON Flink sends.
    Invalid(String, String),
    /// The poll's budget of requests or time is spent.
    Budget(String),
}

impl PollError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Fetch(_, e) => e.reason(),
            Self::Invalid(..) => "invalid_response",
            Self::Budget(_) => "poll_budget",
        }
    }
}

impl std::fmt::Display for PollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fetch(path, e) => write!(f, "GET {path}: {e}"),
            Self::Invalid(path, e) => write!(f, "GET {path}: {e}"),
            Self::Budget(why) => f.write_str(why),
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
    /// Where the next poll starts in the list of running vertices (after the last one asked by
    /// a poll that was cut short).
    cursor: usize,
    /// Requests made by the poll under way, and when it must end.
    requests: usize,
    deadline: Instant,
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
        let mut p = format!("/jobs/{}/vertices/{}/flamegraph?type={}", segment(&self.job.jid), segment(&self.vertex.id), self.kind.label());
        if let Some(s) = self.subtask {
            p.push_str(&format!("&subtaskindex={s}"));
        }
        p
    }

    /// The graph's type is its profile type (not a label): on-CPU `cpu`, off-CPU `off_cpu`,
    /// full `wall`.
    fn spec(&self) -> SourceSpec {
        let mut labels = vec![("job_id".to_string(), self.job.jid.clone()), ("vertex".to_string(), self.vertex.name.clone())];
        if let Some(s) = self.subtask {
            labels.push(("subtask".to_string(), s.to_string()));
        }
        labels.sort();
        SourceSpec { profile: self.kind.profile(), ..SourceSpec::new(self.job.name.clone(), labels) }
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
            cursor: 0,
            requests: 0,
            deadline: Instant::now(),
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
            let started = now_ms();
            self.update(|s| s.current_poll = Some(PollProgress { started_ms: started, ..PollProgress::default() }));
            // Every request is bounded by --flink-timeout and the poll checks its deadline before
            // each: this bound is only a backstop.
            let limit = self.config.deadline.saturating_add(self.config.timeout.saturating_mul(2));
            let result = tokio::select! {
                _ = token.cancelled() => {
                    drop(storing.lock().await);
                    return;
                }
                r = tokio::time::timeout(limit, self.poll()) => r.unwrap_or_else(|_| Err(PollError::Budget(format!("the poll took longer than {limit:?}")))),
            };
            let now = now_ms();
            self.update(|s| {
                if let Some(mut p) = s.current_poll.take() {
                    p.finished_ms = Some(now);
                    s.last_poll = Some(p);
                }
            });
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

    fn progress(&self, f: impl FnOnce(&mut PollProgress)) {
        self.update(|s| {
            if let Some(p) = s.current_poll.as_mut() {
                f(p);
            }
        });
    }

    /// A job or vertex whose answers failed: counted and shown, and the poll goes on.
    fn skipped(&self, e: &PollError) {
        self.metrics.flink_poll_errors.with_label_values(&[&self.endpoint.url, e.reason()]).inc();
        let (now, message) = (now_ms(), e.to_string());
        tracing::debug!(endpoint = %self.endpoint.url, error = %message, "a Flink job or vertex skipped");
        self.update(|s| {
            s.last_error = Some(message);
            s.last_error_ms = Some(now);
            if let Some(p) = s.current_poll.as_mut() {
                p.errors += 1;
            }
        });
    }

    /// One request of the poll, within its budget.
    async fn get(&mut self, client: &mut Client, path: &str) -> Result<Option<axum::body::Bytes>, PollError> {
        if self.requests >= self.config.max_requests {
            return Err(PollError::Budget(format!("the poll made its {} requests (--flink-max-requests)", self.config.max_requests)));
        }
        if Instant::now() >= self.deadline {
            return Err(PollError::Budget(format!("the poll took its {:?} (--flink-poll-deadline)", self.config.deadline)));
        }
        self.requests += 1;
        let requests = self.requests;
        self.progress(|p| p.requests = requests);
        get_or_gone(client, path).await
    }

    /// One poll: every running job's running vertices. Returns the number of running jobs.
    async fn poll(&mut self) -> Result<usize, PollError> {
        self.requests = 0;
        self.deadline = Instant::now() + self.config.deadline;
        let mut client = Client::new(self.endpoint.clone(), self.config.timeout, self.config.max_body);
        if self.per_subtask.is_none() {
            let config: Config = self.get_json(&mut client, "/config").await?;
            let per_subtask = config.flink_version.as_deref().is_some_and(has_subtask_graphs);
            self.per_subtask = Some(per_subtask);
            self.update(|s| {
                s.flink_version = config.flink_version;
                s.per_subtask = per_subtask;
            });
        }
        let overview: Overview = self.get_json(&mut client, "/jobs/overview").await?;
        let running: Vec<&JobSummary> = overview.jobs.iter().filter(|j| j.state == "RUNNING").collect();
        self.progress(|p| p.jobs = running.len());
        // Every running vertex of every running job; a job whose answer fails is skipped.
        let mut details: Vec<(&JobSummary, Job)> = Vec::with_capacity(running.len());
        let mut failures = 0u32;
        for job in running.iter().copied() {
            let path = format!("/jobs/{}", segment(&job.jid));
            let detail = match self.get(&mut client, &path).await {
                Ok(Some(body)) => decode::<Job>(&path, &body).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match detail {
                Ok(Some(d)) => details.push((job, d)),
                Ok(None) => {}
                Err(e @ PollError::Budget(_)) => return self.cut_short(e, running.len()),
                Err(e) => self.failed(e, &mut failures)?,
            }
        }
        let vertices: Vec<(&JobSummary, &Vertex)> =
            details.iter().flat_map(|(job, d)| d.vertices.iter().filter(|v| v.status == "RUNNING").map(move |v| (*job, v))).collect();
        self.progress(|p| p.vertices = vertices.len());
        let mut touched = std::collections::HashSet::new();
        let start = if vertices.is_empty() { 0 } else { self.cursor % vertices.len() };
        for i in 0..vertices.len() {
            let at = (start + i) % vertices.len();
            let (job, vertex) = vertices[at];
            match self.poll_vertex(&mut client, job, vertex, &mut touched).await {
                Ok(()) => {
                    failures = 0;
                    self.progress(|p| p.vertices_done += 1);
                }
                Err(e @ PollError::Budget(_)) => {
                    // The next poll starts with this vertex; what was seen of the others is kept.
                    self.cursor = at;
                    return self.cut_short(e, running.len());
                }
                Err(e) => self.failed(e, &mut failures)?,
            }
        }
        self.cursor = 0;
        // Graphs of vertices no longer running are forgotten (the store keeps their newest time).
        self.seen.retain(|origin, _| touched.contains(origin));
        Ok(running.len())
    }

    /// A job or vertex failed: skipped and counted, unless too many failed in a row.
    fn failed(&self, e: PollError, failures: &mut u32) -> Result<(), PollError> {
        *failures += 1;
        if *failures >= MAX_FAILURES_IN_A_ROW {
            return Err(e);
        }
        self.skipped(&e);
        Ok(())
    }

    /// A poll that spent its budget: what it stored is kept, and it counts as having gone
    /// through, with the reason shown and counted.
    fn cut_short(&self, e: PollError, jobs: usize) -> Result<usize, PollError> {
        self.metrics.flink_poll_errors.with_label_values(&[&self.endpoint.url, e.reason()]).inc();
        let message = e.to_string();
        tracing::debug!(endpoint = %self.endpoint.url, %message, "a Flink poll was cut short");
        self.progress(|p| p.cut_short = Some(message));
        Ok(jobs)
    }

    /// Every graph of one vertex (per subtask from Flink 1.17 on).
    async fn poll_vertex(
        &mut self,
        client: &mut Client,
        job: &JobSummary,
        vertex: &Vertex,
        touched: &mut std::collections::HashSet<u64>,
    ) -> Result<(), PollError> {
        let per_subtask = self.per_subtask == Some(true);
        let subtasks = if per_subtask {
            let path = format!("/jobs/{}/vertices/{}", segment(&job.jid), segment(&vertex.id));
            let n = vertex.subtasks().map_err(|e| PollError::Invalid(path, e))?;
            // Ask for the vertex first: Flink then samples all its subtasks in one go.
            let path = format!("/jobs/{}/vertices/{}/flamegraph?type=full", segment(&job.jid), segment(&vertex.id));
            if let Some(body) = self.get(client, &path).await? {
                self.sentinel(&path, &body).await?;
            }
            Some(n)
        } else {
            None
        };
        let types = self.config.types.clone();
        // One subtask at a time: nothing is sized by the parallelism.
        let mut subtask = subtasks.map(|_| 0u32);
        loop {
            for kind in types.iter().copied() {
                let graph = Graph { job, vertex, kind, subtask };
                touched.insert(graph.origin());
                self.fetch(client, &graph).await?;
            }
            match (subtask, subtasks) {
                (Some(s), Some(n)) if s + 1 < n => subtask = Some(s + 1),
                _ => return Ok(()),
            }
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&mut self, client: &mut Client, path: &str) -> Result<T, PollError> {
        match self.get(client, path).await? {
            Some(body) => decode(path, &body),
            None => Err(PollError::Fetch(path.to_string(), FetchError::Status(404, "not found".into()))),
        }
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

    /// Fetch one graph and store it if it is new. Only a snapshot that was stored (or had
    /// nothing to store) counts as seen: one refused for its time is asked for again, so that a
    /// JobManager's clock running ahead once does not hide its later snapshots.
    async fn fetch(&mut self, client: &mut Client, graph: &Graph<'_>) -> Result<(), PollError> {
        let path = graph.path();
        let Some(body) = self.get(client, &path).await? else { return Ok(()) };
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
            return Ok(()); // stored at an earlier poll
        }
        let source = match self.ingest.source_at(origin, end_ms, now_ms(), || graph.spec()) {
            Ok(source) => source,
            Err(r) => {
                self.refused(format!("{path}: the snapshot of {} of job {:?} was not stored: {r}", rfc3339_ms(end_ms), graph.job.name));
                return Ok(());
            }
        };
        if end_ms <= source.last_ms() || tree.is_empty() {
            // Stored before a restart (the label set's newest time is kept), or no samples (an
            // off-CPU graph of a busy thread): nothing to store.
            self.seen.insert(origin, end_ms);
            return Ok(());
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
                self.seen.insert(origin, end_ms);
                self.metrics.flink_snapshots.with_label_values(&[&self.endpoint.url]).inc();
                self.update(|s| {
                    s.snapshots_stored += 1;
                    if let Some(p) = s.current_poll.as_mut() {
                        p.snapshots_stored += 1;
                    }
                });
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

fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, PollError> {
    super::rest::read_json(body).map_err(|e| PollError::Invalid(path.to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let s = Duration::from_secs;
        let waits: Vec<Duration> = (1..=8).map(|n| backoff(s(1), n)).collect();
        assert_eq!(waits, [s(1), s(2), s(4), s(8), s(16), s(32), s(60), s(60)]);
        assert_eq!(backoff(s(15), 3), s(60));
        assert_eq!(backoff(s(120), 5), s(120), "never more often than the interval, never longer than it when it is over a minute");
    }

    #[test]
    fn ids_cannot_change_the_path() {
        assert_eq!(segment("86d1a00df77b01f15d0c1e7c353152c7"), "86d1a00df77b01f15d0c1e7c353152c7");
        assert_eq!(segment("../../x?y=1#"), "..%2F..%2Fx%3Fy%3D1%23");
        let job = JobSummary { jid: "a/b".into(), name: "j".into(), state: "RUNNING".into() };
        let vertex = Vertex { id: "v?type=full&".into(), name: "v".into(), parallelism: 1.into(), status: "RUNNING".into() };
        let g = Graph { job: &job, vertex: &vertex, kind: GraphType::OffCpu, subtask: None };
        assert_eq!(g.path(), "/jobs/a%2Fb/vertices/v%3Ftype%3Dfull%26/flamegraph?type=off_cpu");
    }

    #[test]
    fn graph_labels() {
        let job = JobSummary { jid: "86d1".into(), name: "stackd cpu job".into(), state: "RUNNING".into() };
        let vertex = Vertex { id: "cbc3".into(), name: "Source: Numbers -> Burn".into(), parallelism: 2.into(), status: "RUNNING".into() };
        let g = Graph { job: &job, vertex: &vertex, kind: GraphType::OnCpu, subtask: Some(1) };
        assert_eq!(g.path(), "/jobs/86d1/vertices/cbc3/flamegraph?type=on_cpu&subtaskindex=1");
        let spec = g.spec();
        assert_eq!(spec.app, "stackd cpu job");
        let labels: Vec<(&str, &str)> = spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("job_id", "86d1"), ("subtask", "1"), ("vertex", "Source: Numbers -> Burn")]);
        assert_eq!(spec.profile, crate::sample::ProfileType::Cpu);
        for (kind, profile) in [(GraphType::OffCpu, "off_cpu"), (GraphType::Full, "wall")] {
            assert_eq!(Graph { kind, ..g }.spec().profile.name(), profile);
        }
        let whole = Graph { subtask: None, ..g };
        assert_ne!(whole.origin(), Graph { job: &job, vertex: &vertex, kind: GraphType::OnCpu, subtask: Some(0) }.origin());
        assert_eq!(whole.path(), "/jobs/86d1/vertices/cbc3/flamegraph?type=on_cpu");
    }
}
