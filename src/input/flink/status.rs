//! What `GET /flink` shows of each `--flink-rest` JobManager: the endpoint's state, the poll
//! under way and the last one.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One poll's progress, as `GET /flink` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PollProgress {
    /// When the poll started and ended (Unix ms; no end while under way).
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// Running jobs, and running vertices found in them so far.
    pub jobs: usize,
    pub vertices: usize,
    /// Vertices whose graphs were all asked for, and jobs or vertices skipped after an error.
    pub vertices_done: usize,
    pub errors: usize,
    pub requests: usize,
    /// Snapshots stored by this poll.
    pub snapshots_stored: u64,
    /// Why the poll ended before every vertex was asked (its budget of requests or time).
    pub cut_short: Option<String>,
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
    /// The poll under way, and the last one that ended (whether it went through or not).
    pub current_poll: Option<PollProgress>,
    pub last_poll: Option<PollProgress>,
    /// Flink's profiler runs (`--flink-profiling`), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiling: Option<ProfilingStatus>,
}

/// What `GET /flink` shows of the profiler runs on one endpoint.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProfilingStatus {
    /// As Flink names them (`ITIMER`, `ALLOC`), the run's duration and the time between runs
    /// of one mode on one process, seconds.
    pub modes: Vec<&'static str>,
    pub duration_s: u64,
    pub interval_s: u64,
    /// Flink answers 404 to the profiler's calls: `rest.profiling.enabled` is not set.
    pub disabled: bool,
    /// Runs started by stackd, and runs stored (by anyone), since stackd started.
    pub runs_started: u64,
    pub runs_stored: u64,
    /// The last refusal or error, and when.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// TaskManagers past the first [`MAX_PROCESSES`](super::profiling::MAX_PROCESSES), not profiled.
    pub not_profiled: usize,
    /// The JobManager and each TaskManager.
    pub processes: Vec<ProcessStatus>,
}

/// One process profiled.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessStatus {
    /// `jobmanager`, or the TaskManager's id.
    pub process: String,
    pub host: Option<String>,
    /// The run under way (whoever started it).
    pub running: Option<RunStatus>,
    /// The newest run that ended, and what became of it.
    pub last_run: Option<RunStatus>,
    /// When and in which mode stackd starts its next run here (Unix ms).
    pub next_run_ms: Option<i64>,
    pub next_mode: Option<&'static str>,
    /// The last refusal or error here, and when.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// One run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunStatus {
    pub mode: String,
    /// Flink's times (Unix ms).
    pub trigger_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub file: Option<String>,
    /// `running`, `overdue` (running long after its duration), or what became of it: `stored`,
    /// `empty`, `failed`, `unreadable`, `not_stored`.
    pub outcome: &'static str,
    /// Samples (or the mode's unit) stored.
    pub samples: u64,
    pub message: Option<String>,
}

/// The status of every endpoint, shared with the HTTP side.
#[derive(Clone, Debug, Default)]
pub struct Status(pub(super) Arc<Vec<Mutex<EndpointStatus>>>);

impl Status {
    pub fn snapshot(&self) -> Vec<EndpointStatus> {
        self.0.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect()
    }
}
