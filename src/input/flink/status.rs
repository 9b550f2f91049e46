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
}

/// The status of every endpoint, shared with the HTTP side.
#[derive(Clone, Debug, Default)]
pub struct Status(pub(super) Arc<Vec<Mutex<EndpointStatus>>>);

impl Status {
    pub fn snapshot(&self) -> Vec<EndpointStatus> {
        self.0.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect()
    }
}
