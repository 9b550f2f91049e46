//! Flink's built-in profiler, kept (`--flink-profiling`). Flink (1.19 and later, with
//! `rest.profiling.enabled: true`) runs the async-profiler it bundles on a TaskManager or the
//! JobManager when asked over REST, and serves the result, an async-profiler 2.x HTML flame
//! graph, until `rest.profiling.history-size` newer runs have rotated it away.
//!
//! For each `--flink-rest` endpoint one task visits the JobManager and every TaskManager
//! (`GET /taskmanagers`) in turn:
//!
//! 1. `GET …/profiler` lists the process's runs, newest first.
//! 2. Every run that ended since the last one kept (whoever started it: stackd, or someone in
//!    Flink's web UI) is fetched (`GET …/profiler/:outputFile`), read ([`ap_html`]) and stored at
//!    its `finishedTime` under the app `--flink-profiling-app` with the labels `endpoint`,
//!    `process` (`jobmanager` or `taskmanager`), `taskmanager` (its id), `host` and `mode`, as
//!    the mode's profile type ([`Mode::profile`]). How far each process was read is a note in
//!    the store written with the samples ([`Store::note`]), so that no run is stored twice, also
//!    across restarts.
//! 3. Unless a run is under way there, the mode whose last run started longest ago, and at least
//!    `--flink-profiling-interval` ago, is started: `POST …/profiler`
//!    `{"mode":…,"duration":--flink-profiling-duration}`. Flink runs one at a time per process;
//!    stackd never asks for a second.
//!
//! Flink's refusals are counted (`stackd_flink_profiling_errors_total`) and shown at `GET /flink`
//! without a tight retry: profiling disabled (404) or a run refused (a duration over
//! `rest.profiling.duration-max`) waits for the mode's next interval; a process busy with
//! someone else's run is asked again after the run's duration. What became of each run is
//! counted in `stackd_flink_profiling_runs_total`: a run that fails, a file that is gone or
//! does not read, too large a file (`--max-body-size`), is counted, shown and passed over; a run
//! still under way long after its duration is shown as `overdue`, and no other is started on
//! that process meanwhile. A JobManager that cannot be reached is retried after a backoff.
//!
//! [`ap_html`]: crate::protocol::ap_html
//! [`Store::note`]: crate::store::Store::note

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use hyper::Method;
use tokio_util::sync::CancellationToken;

use super::client::{Client, Endpoint, FetchError};
use super::rest::{error_message, ProfilingInfo, ProfilingList, TaskManagers};
use super::status::{ProcessStatus, ProfilingStatus, RunStatus, Status};
use crate::ingest::{truncated, Ingest};
use crate::metrics::Metrics;
use crate::sample::ProfileType;
use crate::store::SourceSpec;
use crate::{now_ms, percent_encode as segment, rfc3339_ms};

/// Processes profiled per endpoint (the JobManager and the first TaskManagers listed); the
/// others are counted at `GET /flink` as not profiled.
pub const MAX_PROCESSES: usize = 1024;

/// Runs of a process's list looked at (Flink keeps `rest.profiling.history-size`, 10 by default).
pub const MAX_LISTED: usize = 100;

/// The store notes' key prefix: `flink-profiling:<endpoint> <process>`.
pub const NOTE_PREFIX: &str = "flink-profiling:";

/// The profiler's modes, as Flink names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Mode {
    /// On-CPU, from perf events (falls back as async-profiler does where they are not allowed).
    Cpu,
    /// On-CPU, from a timer signal: no perf events needed.
    Itimer,
    /// Every thread, whatever it does.
    Wall,
    /// Allocations (sampled TLAB and outside-TLAB allocations).
    Alloc,
    /// Contended locks.
    Lock,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Cpu, Mode::Itimer, Mode::Wall, Mode::Alloc, Mode::Lock];

    /// Flink's name (`mode` in its REST calls; also the `mode` label).
    pub fn flink(self) -> &'static str {
        match self {
            Self::Cpu => "CPU",
            Self::Itimer => "ITIMER",
            Self::Wall => "WALL",
            Self::Alloc => "ALLOC",
            Self::Lock => "LOCK",
        }
    }

    pub fn from_flink(s: &str) -> Option<Mode> {
        Self::ALL.into_iter().find(|m| m.flink() == s)
    }

    /// What its graph counts. Flink asks async-profiler for the HTML graph without `total`, so
    /// every mode counts samples: CPU and ITIMER `cpu`, WALL `wall`, ALLOC `alloc_objects`
    /// (allocation samples), LOCK `lock_count` (contended lock samples).
    pub fn profile(self) -> ProfileType {
        match self {
            Self::Cpu | Self::Itimer => ProfileType::Cpu,
            Self::Wall => ProfileType::Wall,
            Self::Alloc => ProfileType::AllocObjects,
            Self::Lock => ProfileType::LockCount,
        }
    }
}

/// How the profiler runs are set up.
#[derive(Clone, Debug)]
pub struct ProfilingConfig {
    pub endpoints: Vec<Endpoint>,
    pub modes: Vec<Mode>,
    /// Whole seconds.
    pub duration: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_body: usize,
    pub app: String,
}

/// Start one task per endpoint (none without modes); their state shows in `status`.
pub fn start(config: ProfilingConfig, ingest: Arc<Ingest>, status: Status, token: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    if config.modes.is_empty() {
        return Vec::new();
    }
    (0..config.endpoints.len())
        .map(|i| {
            let profiler = Profiler::new(config.clone(), i, Arc::clone(&ingest), status.clone());
            tokio::spawn(profiler.run(token.clone()))
        })
        .collect()
}

/// Why a request did not go through.
#[derive(Debug)]
enum Error {
    Fetch(String, FetchError),
    Invalid(String, String),
    /// Flink answered 404: profiling is off.
    Disabled(String),
}

impl Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Fetch(_, e) => e.reason(),
            Self::Invalid(..) => "invalid_response",
            Self::Disabled(_) => "disabled",
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fetch(path, e) => write!(f, "{path}: {e}"),
            Self::Invalid(path, e) => write!(f, "{path}: {e}"),
            Self::Disabled(e) => f.write_str(e),
        }
    }
}

/// How far a process's runs were read: the newest run passed over (stored or not), by the end
/// of the run (its `finishedTime`, or its `triggerTime` if it failed without one).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Progress {
    end_ms: i64,
    #[serde(default)]
    file: Option<String>,
}

/// One process: the JobManager or a TaskManager.
struct Process {
    /// `jobmanager`, or the TaskManager's id.
    key: String,
    taskmanager: bool,
    /// `/jobmanager` or `/taskmanagers/<id>`.
    path: String,
    host: Option<String>,
    progress: Progress,
    /// When each mode's last run started (Flink's trigger times, and stackd's own starts).
    last_start: HashMap<Mode, i64>,
    /// A run under way: when it should end (trigger + duration), and its trigger time.
    running_until: Option<(i64, i64)>,
    /// An overdue run already counted (by its trigger time).
    overdue_counted: Option<i64>,
    /// Not asked to start a run before this (it was busy with someone else's).
    not_before_ms: i64,
    status: ProcessStatus,
}

/// One endpoint's profiler runs.
struct Profiler {
    config: ProfilingConfig,
    endpoint: Endpoint,
    index: usize,
    ingest: Arc<Ingest>,
    metrics: Metrics,
    status: Status,
    processes: Vec<Process>,
    /// Notes read at start-up, by process.
    notes: HashMap<String, Progress>,
    disabled_logged: bool,
    /// Held while a run is being stored: shutdown waits for it.
    storing: Arc<tokio::sync::Mutex<()>>,
}

impl Profiler {
    fn new(config: ProfilingConfig, index: usize, ingest: Arc<Ingest>, status: Status) -> Self {
        let endpoint = config.endpoints[index].clone();
        let prefix = note_prefix(&endpoint);
        let notes = ingest
            .store
            .notes(&prefix)
            .into_iter()
            .filter_map(|(k, v)| match serde_json::from_slice::<Progress>(&v) {
                Ok(p) => Some((k[prefix.len()..].to_string(), p)),
                Err(e) => {
                    tracing::error!(key = k, error = %e, "the stored progress of a Flink profiler cannot be read; its listed runs are read again");
                    None
                }
            })
            .collect();
        let metrics = ingest.metrics.clone();
        let profiler = Profiler {
            config,
            endpoint,
            index,
            ingest,
            metrics,
            status,
            processes: Vec::new(),
            notes,
            disabled_logged: false,
            storing: Arc::default(),
        };
        profiler.update(|s| {
            s.modes = profiler.config.modes.iter().map(|m| m.flink()).collect();
            s.duration_s = profiler.config.duration.as_secs();
            s.interval_s = profiler.config.interval.as_secs();
        });
        profiler
    }

    fn update(&self, f: impl FnOnce(&mut ProfilingStatus)) {
        let mut s = self.status.0[self.index].lock().unwrap_or_else(|e| e.into_inner());
        f(s.profiling.get_or_insert_with(ProfilingStatus::default));
    }

    /// Show the processes' state at `GET /flink`.
    fn publish(&self) {
        let processes: Vec<ProcessStatus> = self.processes.iter().map(|p| p.status.clone()).collect();
        self.update(|s| s.processes = processes);
    }

    async fn run(mut self, token: CancellationToken) {
        let storing = Arc::clone(&self.storing);
        let mut failures = 0u32;
        loop {
            let mut client = Client::new(self.endpoint.clone(), self.config.timeout, self.config.max_body);
            let result = tokio::select! {
                _ = token.cancelled() => {
                    drop(storing.lock().await);
                    return;
                }
                r = self.cycle(&mut client) => r,
            };
            let now = now_ms();
            let wait = match result {
                Ok(()) => {
                    failures = 0;
                    self.next_wake(now)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!(endpoint = %self.endpoint.url, error = %e, "Flink's profiler cannot be reached; retrying with backoff (see GET /flink)");
                    }
                    self.error(None, e.reason(), e.to_string());
                    super::poller::backoff(Duration::from_secs(5), failures).min(self.config.interval.max(Duration::from_secs(5)))
                }
            };
            self.publish();
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Count and show a refusal or error (`process`: where, if one process's).
    fn error(&mut self, process: Option<usize>, reason: &'static str, message: String) {
        self.metrics.flink_profiling_errors.with_label_values(&[&self.endpoint.url, reason]).inc();
        self.show(process, reason, message);
    }

    /// Show a refusal, an error or a run passed over at `GET /flink`.
    fn show(&mut self, process: Option<usize>, reason: &'static str, message: String) {
        let now = now_ms();
        tracing::debug!(endpoint = %self.endpoint.url, reason, %message, "a Flink profiler request did not go through");
        if let Some(p) = process.and_then(|i| self.processes.get_mut(i)) {
            p.status.last_error = Some(message.clone());
            p.status.last_error_ms = Some(now);
        }
        self.update(|s| {
            s.last_error = Some(message);
            s.last_error_ms = Some(now);
        });
    }

    /// One visit of every process.
    async fn cycle(&mut self, client: &mut Client) -> Result<(), Error> {
        let tms: TaskManagers = get_json(client, "/taskmanagers").await?;
        self.sync_processes(tms);
        for i in 0..self.processes.len() {
            match self.visit(client, i).await {
                Ok(()) => {}
                // The JobManager itself is in trouble: the cycle ends.
                Err(e @ Error::Fetch(_, FetchError::Connect(_) | FetchError::Timeout(_))) => return Err(e),
                Err(e) => self.error(Some(i), e.reason(), e.to_string()),
            }
        }
        Ok(())
    }

    /// The JobManager, then the TaskManagers listed (at most [`MAX_PROCESSES`] in all); what is
    /// known of those still there is kept.
    fn sync_processes(&mut self, tms: TaskManagers) {
        let mut old: HashMap<String, Process> = self.processes.drain(..).map(|p| (p.key.clone(), p)).collect();
        let listed = tms.taskmanagers.len();
        let wanted = std::iter::once(("jobmanager".to_string(), false, None))
            .chain(tms.taskmanagers.into_iter().take(MAX_PROCESSES - 1).map(|tm| {
                let host = tm.host();
                (tm.id, true, host)
            }))
            .collect::<Vec<_>>();
        for (key, taskmanager, host) in wanted {
            let process = old.remove(&key).unwrap_or_else(|| {
                let path = if taskmanager { format!("/taskmanagers/{}", segment(&key)) } else { "/jobmanager".to_string() };
                Process {
                    progress: self.notes.remove(&key).unwrap_or_default(),
                    status: ProcessStatus { process: key.clone(), host: host.clone(), ..ProcessStatus::default() },
                    key,
                    taskmanager,
                    path,
                    host,
                    last_start: HashMap::new(),
                    running_until: None,
                    overdue_counted: None,
                    not_before_ms: 0,
                }
            });
            self.processes.push(process);
        }
        let not_profiled = listed.saturating_sub(MAX_PROCESSES - 1);
        self.update(|s| s.not_profiled = not_profiled);
    }

    /// One process: keep the runs that ended, then start one if one is due.
    async fn visit(&mut self, client: &mut Client, i: usize) -> Result<(), Error> {
        let path = format!("{}/profiler", self.processes[i].path);
        let (status, body) = client.send(Method::GET, &path, None).await.map_err(|e| Error::Fetch(format!("GET {path}"), e))?;
        if status == hyper::StatusCode::NOT_FOUND {
            let message = error_message(&body);
            if message.contains("Could not find TaskExecutor") {
                return Ok(()); // gone since it was listed
            }
            return Err(self.disabled(i, &path, message));
        }
        if !status.is_success() {
            return Err(Error::Fetch(format!("GET {path}"), FetchError::Status(status.as_u16(), error_message(&body))));
        }
        self.update(|s| s.disabled = false);
        let list: ProfilingList = decode(&format!("GET {path}"), &body)?;
        let mut runs = list.runs;
        runs.truncate(MAX_LISTED);
        let p = &mut self.processes[i];
        for run in &runs {
            if let (Some(mode), Some(t)) = (run.mode.as_deref().and_then(Mode::from_flink), run.trigger_time) {
                let last = p.last_start.entry(mode).or_insert(t);
                *last = (*last).max(t);
            }
        }
        // Runs that ended and were not passed over yet, oldest first.
        let mut ended: Vec<ProfilingInfo> =
            runs.iter().filter(|r| r.status != "RUNNING" && end_of(r).is_some_and(|t| t > p.progress.end_ms)).cloned().collect();
        ended.sort_by_key(|r| end_of(r).unwrap_or_default());
        for run in ended {
            self.keep(client, i, run).await?;
        }
        let now = now_ms();
        let p = &mut self.processes[i];
        p.status.running = None;
        p.running_until = None;
        if let Some(run) = runs.iter().find(|r| r.status == "RUNNING") {
            let trigger = run.trigger_time.unwrap_or(now);
            let seconds = run.duration.unwrap_or(self.config.duration.as_secs() as i64).clamp(0, 86_400);
            let until = trigger.saturating_add(seconds * 1000);
            let overdue = now > until.saturating_add(grace_ms(seconds, self.config.interval));
            p.running_until = Some((until, trigger));
            p.status.running = Some(RunStatus {
                mode: run.mode.clone().unwrap_or_default(),
                trigger_ms: run.trigger_time,
                outcome: if overdue { "overdue" } else { "running" },
                message: overdue
                    .then(|| format!("still running at {}, {seconds} s after it started at {}", rfc3339_ms(now), rfc3339_ms(trigger))),
                ..RunStatus::default()
            });
            if overdue && p.overdue_counted != Some(trigger) {
                p.overdue_counted = Some(trigger);
                let mode = run.mode.as_deref().and_then(Mode::from_flink).map_or("unknown", Mode::flink);
                self.metrics.flink_profiling_runs.with_label_values(&[&self.endpoint.url, mode, "unfinished"]).inc();
            }
            self.schedule(i, now);
            return Ok(());
        }
        if now >= self.processes[i].not_before_ms {
            if let Some(mode) = self.due(i, now) {
                self.start_run(client, i, mode).await?;
            }
        }
        self.schedule(i, now_ms());
        Ok(())
    }

    /// Profiling is off on this JobManager (404).
    fn disabled(&mut self, i: usize, path: &str, message: String) -> Error {
        if !self.disabled_logged {
            self.disabled_logged = true;
            tracing::warn!(
                endpoint = %self.endpoint.url,
                "Flink's profiler is disabled on this JobManager; add `rest.profiling.enabled: true` to its config.yaml and restart it"
            );
        }
        self.update(|s| s.disabled = true);
        // Asked again after the interval, not before.
        let now = now_ms();
        let p = &mut self.processes[i];
        for m in &self.config.modes {
            p.last_start.insert(*m, now);
        }
        Error::Disabled(format!("{path}: HTTP 404: {message} (Flink's profiler is disabled: set rest.profiling.enabled: true)"))
    }

    /// The mode to run now: of those not run for the interval, the one run longest ago.
    fn due(&self, i: usize, now: i64) -> Option<Mode> {
        let p = &self.processes[i];
        let interval = self.config.interval.as_millis() as i64;
        self.config
            .modes
            .iter()
            .copied()
            .filter(|m| p.last_start.get(m).is_none_or(|t| now >= t.saturating_add(interval)))
            .min_by_key(|m| p.last_start.get(m).copied().unwrap_or(i64::MIN))
    }

    /// Show when the next run starts here.
    fn schedule(&mut self, i: usize, now: i64) {
        let interval = self.config.interval.as_millis() as i64;
        let p = &self.processes[i];
        let next = self
            .config
            .modes
            .iter()
            .map(|m| (p.last_start.get(m).map_or(now, |t| t.saturating_add(interval)), m.flink()))
            .min_by_key(|(t, _)| *t)
            .map(|(t, m)| (t.max(now).max(p.not_before_ms).max(p.running_until.map_or(0, |(u, _)| u)), m));
        let p = &mut self.processes[i];
        p.status.next_run_ms = next.map(|(t, _)| t);
        p.status.next_mode = next.map(|(_, m)| m);
    }

    /// How long to sleep: until a run under way should have ended, a run is due, or the
    /// interval (to see new TaskManagers and runs others started).
    fn next_wake(&self, now: i64) -> Duration {
        let duration_ms = self.config.duration.as_millis() as i64;
        let step = (duration_ms / 5).clamp(1000, 5000);
        let mut next = now.saturating_add(self.config.interval.as_millis() as i64);
        for p in &self.processes {
            if let Some((until, trigger)) = p.running_until {
                let seconds = (until - trigger) / 1000;
                let t = if now < until.saturating_add(1000) {
                    until.saturating_add(1000)
                } else if now < until.saturating_add(grace_ms(seconds, self.config.interval)) {
                    now + step
                } else {
                    now + step.max(60_000.min(self.config.interval.as_millis() as i64))
                };
                next = next.min(t);
            } else if let Some(t) = p.status.next_run_ms {
                next = next.min(t.max(now + 1000));
            }
        }
        Duration::from_millis((next - now).clamp(1000, i64::MAX) as u64)
    }

    /// `POST …/profiler`: start a run of `mode`.
    async fn start_run(&mut self, client: &mut Client, i: usize, mode: Mode) -> Result<(), Error> {
        let path = format!("{}/profiler", self.processes[i].path);
        let seconds = self.config.duration.as_secs();
        let body = Bytes::from(format!(r#"{{"mode":"{}","duration":{seconds}}}"#, mode.flink()));
        let (status, answer) = client.send(Method::POST, &path, Some(body)).await.map_err(|e| Error::Fetch(format!("POST {path}"), e))?;
        let now = now_ms();
        if status.is_success() {
            let run: ProfilingInfo = decode(&format!("POST {path}"), &answer)?;
            let trigger = run.trigger_time.unwrap_or(now);
            let p = &mut self.processes[i];
            p.last_start.insert(mode, now.max(trigger));
            p.running_until = Some((trigger.saturating_add(seconds as i64 * 1000), trigger));
            p.status.running =
                Some(RunStatus { mode: mode.flink().into(), trigger_ms: Some(trigger), outcome: "running", ..RunStatus::default() });
            self.metrics.flink_profiling_runs.with_label_values(&[&self.endpoint.url, mode.flink(), "started"]).inc();
            self.update(|s| s.runs_started += 1);
            return Ok(());
        }
        let message = error_message(&answer);
        if status == hyper::StatusCode::NOT_FOUND {
            return Err(self.disabled(i, &path, message));
        }
        let p = &mut self.processes[i];
        let (reason, message) = if message.starts_with("IllegalStateException") {
            // Someone else's run began meanwhile: asked again once it should be over.
            p.not_before_ms = now.saturating_add(seconds as i64 * 1000);
            ("busy", format!("POST {path} ({}): {message}", mode.flink()))
        } else {
            // The duration over rest.profiling.duration-max, or another refusal: not before
            // this mode's next interval.
            p.last_start.insert(mode, now);
            ("refused", format!("POST {path} ({}, {seconds} s): Flink refused the run: {message}", mode.flink()))
        };
        if reason == "refused" {
            tracing::warn!(endpoint = %self.endpoint.url, %message, "Flink refused a profiler run; it is asked again after --flink-profiling-interval");
        }
        self.error(Some(i), reason, message);
        Ok(())
    }

    /// A run that ended: fetched, read and stored, or passed over with the reason. Only an
    /// answer that may come right next time (no connection, a timeout) leaves it for the next
    /// visit.
    async fn keep(&mut self, client: &mut Client, i: usize, run: ProfilingInfo) -> Result<(), Error> {
        let end = end_of(&run).unwrap_or_default();
        let mode = run.mode.as_deref().and_then(Mode::from_flink);
        let mode_name = mode.map_or("unknown", Mode::flink);
        let mut status = RunStatus {
            mode: run.mode.clone().unwrap_or_default(),
            trigger_ms: run.trigger_time,
            finished_ms: run.finished_time,
            file: run.output_file.clone(),
            message: run.message.as_deref().map(|m| truncated(m, 300).to_string()),
            ..RunStatus::default()
        };
        let outcome = match (run.status.as_str(), mode, run.output_file.as_deref()) {
            ("FINISHED", Some(mode), Some(file)) if !file.is_empty() => match self.fetch_and_store(client, i, mode, file, end).await {
                Ok(samples) => {
                    status.samples = samples;
                    return self.kept(i, mode_name, if samples > 0 { "stored" } else { "empty" }, status);
                }
                Err(Unkept::Retry(e)) => return Err(e),
                Err(Unkept::Pass(outcome, why)) => {
                    status.message = Some(why);
                    outcome
                }
            },
            ("FINISHED", None, _) => {
                status.message = Some(format!("an unknown mode {:?}", truncated(run.mode.as_deref().unwrap_or(""), 40)));
                "unreadable"
            }
            ("FINISHED", ..) => {
                status.message = Some("finished without an outputFile".into());
                "unreadable"
            }
            _ => "failed",
        };
        let progress = Progress { end_ms: end, file: run.output_file.clone() };
        self.note(i, &progress);
        self.processes[i].progress = progress;
        let message = format!(
            "the {mode_name} run that ended {} on {}: {outcome}{}",
            rfc3339_ms(end),
            self.processes[i].key,
            status.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        );
        self.show(Some(i), outcome, message);
        self.kept(i, mode_name, outcome, status)
    }

    fn kept(&mut self, i: usize, mode: &str, outcome: &'static str, mut status: RunStatus) -> Result<(), Error> {
        self.metrics.flink_profiling_runs.with_label_values(&[&self.endpoint.url, mode, outcome]).inc();
        if outcome == "stored" {
            self.update(|s| s.runs_stored += 1);
        }
        status.outcome = outcome;
        self.processes[i].status.last_run = Some(status);
        Ok(())
    }

    fn note(&self, i: usize, progress: &Progress) {
        if let Ok(value) = serde_json::to_vec(progress) {
            self.ingest.store.note(&format!("{}{}", note_prefix(&self.endpoint), self.processes[i].key), value);
        }
    }

    /// Fetch, read and store one run's graph: the samples stored.
    async fn fetch_and_store(&mut self, client: &mut Client, i: usize, mode: Mode, file: &str, end: i64) -> Result<u64, Unkept> {
        let path = format!("{}/profiler/{}", self.processes[i].path, segment(file));
        let body = match client.send(Method::GET, &path, None).await {
            Ok((status, body)) if status.is_success() => body,
            Ok((status, body)) => {
                return Err(Unkept::Pass("unreadable", format!("GET {path}: HTTP {}: {}", status.as_u16(), error_message(&body))))
            }
            Err(e @ FetchError::TooLarge(_)) => return Err(Unkept::Pass("unreadable", format!("GET {path}: {e} (--max-body-size)"))),
            Err(e) => return Err(Unkept::Retry(Error::Fetch(format!("GET {path}"), e))),
        };
        let graph = tokio::task::spawn_blocking(move || {
            let text = simdutf8::compat::from_utf8(&body).map_err(|e| format!("not UTF-8: {e}"))?;
            crate::protocol::ap_html::parse(text).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("reading failed: {e}")))
        .map_err(|e| Unkept::Pass("unreadable", format!("{file}: not an async-profiler flame graph: {e}")))?;
        let p = &self.processes[i];
        let spec = self.spec(p, mode);
        let origin = origin(&self.endpoint, &p.key, mode);
        let source = match self.ingest.source_at(origin, end, now_ms(), || spec) {
            Ok(s) => s,
            Err(r) => return Err(Unkept::Pass("not_stored", format!("{file} ({}): {r}", rfc3339_ms(end)))),
        };
        let progress = Progress { end_ms: end, file: Some(file.to_string()) };
        let key = format!("{}{}", note_prefix(&self.endpoint), p.key);
        let value = serde_json::to_vec(&progress).unwrap_or_default();
        let ingest = Arc::clone(&self.ingest);
        let storing = Arc::clone(&self.storing).lock_owned().await;
        let stored = tokio::task::spawn_blocking(move || {
            let _storing = storing;
            // The run's samples and the note that it was read reach the disk together.
            let noting = ingest.store.noting();
            let stored = ingest.add_profile(&source, end, now_ms(), |sink| graph.each_stack(sink));
            if stored.is_ok() {
                ingest.store.note(&key, value);
            }
            drop(noting);
            stored
        })
        .await
        .unwrap_or(Err(crate::outcome::Reject::Internal))
        .map_err(|r| Unkept::Pass("not_stored", format!("{file} ({}): {r}", rfc3339_ms(end))))?;
        self.processes[i].progress = progress;
        Ok(stored)
    }

    /// Where a run's samples go.
    fn spec(&self, p: &Process, mode: Mode) -> SourceSpec {
        let mut labels = vec![
            ("endpoint".to_string(), self.endpoint.url.clone()),
            ("mode".to_string(), mode.flink().to_string()),
            ("process".to_string(), if p.taskmanager { "taskmanager" } else { "jobmanager" }.to_string()),
        ];
        if p.taskmanager {
            labels.push(("taskmanager".to_string(), p.key.clone()));
        }
        if let Some(h) = &p.host {
            labels.push(("host".to_string(), h.clone()));
        }
        labels.sort();
        SourceSpec { profile: mode.profile(), ..SourceSpec::new(self.config.app.clone(), labels) }
    }
}

/// A run not stored: try again next visit, or pass over it (the outcome and why).
enum Unkept {
    Retry(Error),
    Pass(&'static str, String),
}

/// When a run ended (the order runs are read in).
fn end_of(run: &ProfilingInfo) -> Option<i64> {
    run.finished_time.or(run.trigger_time)
}

/// How long past its duration a run may go before it is shown as overdue: its duration again,
/// and at least the interval (up to 30 s).
fn grace_ms(duration_s: i64, interval: Duration) -> i64 {
    duration_s.saturating_mul(1000).max(interval.as_millis().min(30_000) as i64)
}

fn note_prefix(endpoint: &Endpoint) -> String {
    format!("{NOTE_PREFIX}{} ", endpoint.url)
}

fn origin(endpoint: &Endpoint, process: &str, mode: Mode) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"flink-profiling\0");
    for part in [endpoint.url.as_str(), process, mode.flink()] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

async fn get_json<T: serde::de::DeserializeOwned>(client: &mut Client, path: &str) -> Result<T, Error> {
    let body = client.get(path).await.map_err(|e| Error::Fetch(format!("GET {path}"), e))?;
    decode(&format!("GET {path}"), &body)
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, Error> {
    super::rest::read_json(body).map_err(|e| Error::Invalid(what.to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_their_profile_types() {
        let names: Vec<(&str, &str)> = Mode::ALL.iter().map(|m| (m.flink(), m.profile().name())).collect();
        assert_eq!(names, [("CPU", "cpu"), ("ITIMER", "cpu"), ("WALL", "wall"), ("ALLOC", "alloc_objects"), ("LOCK", "lock_count")]);
        for m in Mode::ALL {
            assert_eq!(Mode::from_flink(m.flink()), Some(m));
        }
        assert_eq!(Mode::from_flink("itimer"), None, "Flink's names are upper case");
    }

    #[test]
    fn recorded_answers_read() {
        let fixture =
            |name: &str| std::fs::read(format!("{}/tests/fixtures/flink/profiling/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture");
        let list: ProfilingList = decode("list", &fixture("list.json")).expect("list");
        let modes: Vec<(&str, &str, Option<i64>)> =
            list.runs.iter().map(|r| (r.status.as_str(), r.mode.as_deref().unwrap_or(""), end_of(r))).collect();
        assert_eq!(
            modes,
            [
                ("FINISHED", "ALLOC", Some(1796330483855)),
                ("FINISHED", "CPU", Some(1796330480831)),
                ("FINISHED", "ITIMER", Some(1796330472215))
            ]
        );
        assert_eq!(list.runs[2].output_file.as_deref(), Some("localhost:40931-1b01bb_ITIMER_2026-12-03_20_41_12.html"));
        let started: ProfilingInfo = decode("post", &fixture("started.json")).expect("started");
        assert_eq!((started.status.as_str(), started.finished_time, started.duration), ("RUNNING", None, Some(2)));
        let tms: TaskManagers = decode("tms", &fixture("taskmanagers.json")).expect("tms");
        assert_eq!(tms.taskmanagers[0].host().as_deref(), Some("localhost"));
    }
}
