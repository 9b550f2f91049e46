//! What a JobManager's REST API answers, as the poller reads it: `/config`, `/jobs/overview`,
//! `/jobs/:jid`. Only the fields stackd uses; other keys are ignored. No number from an answer
//! sizes anything before it is checked ([`Vertex::subtasks`]).

use serde::Deserialize;

use crate::ingest::truncated;

/// Flink's largest possible parallelism (its `maxParallelism` is at most 2^15): a vertex that
/// claims more is not Flink's answer and is skipped.
pub const MAX_PARALLELISM: u32 = 1 << 15;

#[derive(Deserialize)]
pub(super) struct Config {
    #[serde(rename = "flink-version")]
    pub(super) flink_version: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Overview {
    pub(super) jobs: Vec<JobSummary>,
}

#[derive(Deserialize)]
pub(super) struct JobSummary {
    pub(super) jid: String,
    pub(super) name: String,
    pub(super) state: String,
}

#[derive(Deserialize)]
pub(super) struct Job {
    pub(super) vertices: Vec<Vertex>,
}

#[derive(Deserialize)]
pub(super) struct Vertex {
    pub(super) id: String,
    pub(super) name: String,
    /// Any JSON number (checked against [`MAX_PARALLELISM`] before it is used).
    pub(super) parallelism: serde_json::Number,
    pub(super) status: String,
}

/// A JobManager's answer read as `T`, or why it is not the JSON Flink sends (with how it began).
pub(super) fn read_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        format!("not the JSON Flink sends ({e}); the answer began {:?}", truncated(&start, 80))
    })
}

/// `GET /taskmanagers`.
#[derive(Deserialize)]
pub(super) struct TaskManagers {
    pub(super) taskmanagers: Vec<TaskManager>,
}

#[derive(Deserialize)]
pub(super) struct TaskManager {
    pub(super) id: String,
    /// Its RPC address, `pekko.tcp://flink@<host>:<port>/user/rpc/taskmanager_0`.
    #[serde(default)]
    pub(super) path: Option<String>,
}

impl TaskManager {
    /// The host of its RPC address (Flink's TaskManager list has no host field of its own).
    pub(super) fn host(&self) -> Option<String> {
        let rest = self.path.as_deref()?.split_once('@')?.1;
        let host = if rest.starts_with('[') { &rest[..=rest.find(']')?] } else { rest.split([':', '/']).next()? };
        (!host.is_empty() && host.len() <= 255).then(|| host.to_string())
    }
}

/// `GET /taskmanagers/:id/profiler` and `GET /jobmanager/profiler`: the process's runs, newest
/// first (Flink keeps `rest.profiling.history-size` of them, 10 by default).
#[derive(Deserialize)]
pub(super) struct ProfilingList {
    #[serde(rename = "profilingList")]
    pub(super) runs: Vec<ProfilingInfo>,
}

/// One run, as `POST …/profiler` answers it and the list shows it.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct ProfilingInfo {
    /// `RUNNING`, `FINISHED` or `FAILED`.
    pub(super) status: String,
    pub(super) mode: Option<String>,
    #[serde(rename = "triggerTime")]
    pub(super) trigger_time: Option<i64>,
    #[serde(rename = "finishedTime")]
    pub(super) finished_time: Option<i64>,
    /// Seconds.
    pub(super) duration: Option<i64>,
    pub(super) message: Option<String>,
    #[serde(rename = "outputFile")]
    pub(super) output_file: Option<String>,
}

/// What a failed REST call says: the exception Flink names (`IllegalStateException: … is
/// still under profiling.`) or the first error, cut to 300 characters.
pub(super) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    let Ok(e) = serde_json::from_slice::<Errors>(body) else {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return truncated(text.trim(), 300).to_string();
    };
    let exception = e.errors.iter().flat_map(|m| m.lines()).find_map(|line| {
        let line = line.trim();
        let (class, message) = line.split_once(": ")?;
        let simple = class.rsplit('.').next()?;
        (simple.ends_with("Exception") && !class.contains(' ')).then(|| format!("{simple}: {message}"))
    });
    let first = e.errors.iter().find(|m| !m.starts_with("Internal server error")).or(e.errors.first());
    let text = exception.or_else(|| first.map(|m| m.lines().next().unwrap_or_default().to_string())).unwrap_or_default();
    truncated(&text, 300).to_string()
}

impl Vertex {
    /// The subtask count, or why it cannot be one.
    pub(super) fn subtasks(&self) -> Result<u32, String> {
        match self.parallelism.as_u64() {
            Some(n @ 1..) if n <= u64::from(MAX_PARALLELISM) => Ok(n as u32),
            _ => Err(format!(
                "vertex {:?} claims parallelism {}, outside Flink's 1..={MAX_PARALLELISM}; skipped",
                truncated(&self.name, 100),
                self.parallelism
            )),
        }
    }
}

/// One answer read as every JSON document the poller and the profiler ask for (the fuzz target
/// `flink_rest`):
/// the subtask counts of the running vertices it would poll, if it is a job.
#[doc(hidden)]
pub fn read_answer(body: &[u8]) -> Vec<u32> {
    let _ = serde_json::from_slice::<Config>(body);
    let _ = serde_json::from_slice::<Overview>(body);
    if let Ok(tms) = serde_json::from_slice::<TaskManagers>(body) {
        tms.taskmanagers.iter().for_each(|tm| drop(tm.host()));
    }
    let _ = serde_json::from_slice::<ProfilingList>(body);
    let _ = serde_json::from_slice::<ProfilingInfo>(body);
    let _ = error_message(body);
    match serde_json::from_slice::<Job>(body) {
        Ok(job) => job.vertices.iter().filter(|v| v.status == "RUNNING").filter_map(|v| v.subtasks().ok()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Flink 1.17 and later take `subtaskindex`.
pub(super) fn has_subtask_graphs(version: &str) -> bool {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (1, 17),
        _ => false,
    }
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
    fn parallelism_is_checked_before_it_counts_anything() {
        let vertex = |p: serde_json::Number| Vertex { id: "v".into(), name: "Map".into(), parallelism: p, status: "RUNNING".into() };
        assert_eq!(vertex(4.into()).subtasks(), Ok(4));
        assert_eq!(vertex(MAX_PARALLELISM.into()).subtasks(), Ok(MAX_PARALLELISM));
        for bad in [serde_json::Number::from(4_294_967_295u64), 0.into(), (-1).into(), serde_json::Number::from_f64(2.5).expect("finite")] {
            let e = vertex(bad.clone()).subtasks().expect_err("out of range");
            assert_eq!(e, format!("vertex \"Map\" claims parallelism {bad}, outside Flink's 1..=32768; skipped"));
        }
    }

    #[test]
    fn taskmanager_hosts() {
        let tm = |path: &str| TaskManager { id: "x".into(), path: Some(path.into()) }.host();
        assert_eq!(tm("pekko.tcp://flink@localhost:33437/user/rpc/taskmanager_0").as_deref(), Some("localhost"));
        assert_eq!(tm("akka.tcp://flink@10.0.3.7:6122/user/rpc/taskmanager_0").as_deref(), Some("10.0.3.7"));
        assert_eq!(tm("pekko.tcp://flink@[fd00::7]:6122/user/rpc/taskmanager_0").as_deref(), Some("[fd00::7]"));
        assert_eq!(tm("no-at-sign"), None);
        assert_eq!(TaskManager { id: "x".into(), path: None }.host(), None);
    }

    #[test]
    fn flink_errors_name_their_exception() {
        let fixture =
            |name: &str| std::fs::read(format!("{}/tests/fixtures/flink/profiling/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture");
        assert_eq!(error_message(&fixture("busy.json")), "IllegalStateException: localhost:40931-1b01bb is still under profiling.");
        assert_eq!(error_message(&fixture("duration.json")), "IllegalArgumentException: `duration` must be set between (0s, 300s].");
        assert_eq!(error_message(br#"{"errors":["Not found: /taskmanagers/x/profiler"]}"#), "Not found: /taskmanagers/x/profiler");
        assert_eq!(error_message(b"<html>502 Bad Gateway</html>"), "<html>502 Bad Gateway</html>");
    }
}
