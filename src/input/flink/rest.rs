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

/// One answer read as every JSON document the poller asks for (the fuzz target `flink_rest`):
/// the subtask counts of the running vertices it would poll, if it is a job.
#[doc(hidden)]
pub fn read_answer(body: &[u8]) -> Vec<u32> {
    let _ = serde_json::from_slice::<Config>(body);
    let _ = serde_json::from_slice::<Overview>(body);
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
}
