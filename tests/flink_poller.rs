//! The Flink poller against a JobManager that misbehaves on cue: refusing connections, hanging,
//! answering garbage, then coming back; and one with flame graphs disabled. Real Flink cannot be
//! made to do these on demand, so the JobManager here replays answers recorded from Flink 2.3.0
//! (tests/fixtures/flink/, with `endTimestamp` moved to now) over plain HTTP. The happy path
//! against real Flink is tests/flink_flamegraph.rs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{now_ms, series_value, wait_for, Binary, TempDir};

const JOB: &str = "86d1a00df77b01f15d0c1e7c353152c7";
const VERTEX: &str = "cbc357ccb763df2852fee8c4fc7d55f2";
const RECORDED_END: &str = "1795307259523";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Answer as Flink did, with flame graphs ending at the given time.
    Serve(i64),
    /// Accept, read the request, never answer.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// `{"endTimestamp":-2}` for flame graphs.
    Disabled,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/flink/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// A JobManager replaying recorded answers; `stop` closes its port (connections refused).
struct JobManager {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<Mutex<Vec<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl JobManager {
    async fn start(port: u16, mode: Mode) -> JobManager {
        let mut jm = JobManager { port, mode: Arc::new(Mutex::new(mode)), requests: Arc::default(), task: None };
        jm.listen().await;
        jm
    }

    async fn listen(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("bind");
        self.port = listener.local_addr().expect("addr").port();
        let (mode, requests) = (Arc::clone(&self.mode), Arc::clone(&self.requests));
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (mode, requests) = (Arc::clone(&mode), Arc::clone(&requests));
                tokio::spawn(async move {
                    let Some(path) = common::flink::request_path(&mut conn).await else { return };
                    requests.lock().expect("lock").push(path.clone());
                    let mode = *mode.lock().expect("lock");
                    let body = match mode {
                        Mode::Hang => {
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                        Mode::Garbage => "<html>502 Bad Gateway</html>".to_string(),
                        Mode::Disabled if path.contains("/flamegraph") => r#"{"endTimestamp":-2}"#.to_string(),
                        Mode::Serve(end) if path.contains("/flamegraph") => {
                            let file = if path.contains("type=off_cpu") { "off_cpu.json" } else { "on_cpu.json" };
                            fixture(file).replace(RECORDED_END, &end.to_string())
                        }
                        _ if path == "/config" => fixture("config.json"),
                        _ if path == "/jobs/overview" => fixture("overview.json"),
                        _ if path == format!("/jobs/{JOB}") => fixture("job.json"),
                        _ => String::from(r#"{"errors":["Not found"]}"#),
                    };
                    let status = if body.contains("Not found") { "404 Not Found" } else { "200 OK" };
                    common::flink::respond(&mut conn, status, &body).await;
                });
            }
        }));
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    fn requests(&self, path: &str) -> usize {
        self.requests.lock().expect("lock").iter().filter(|p| *p == path).count()
    }

    /// Close the port: connections are refused until `listen` again.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for JobManager {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn status(bin: &Binary) -> serde_json::Value {
    let (code, body) = bin.get_text("/flink").await;
    assert_eq!(code, 200);
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["endpoints"][0].clone()
}

async fn metric(bin: &Binary, series: &str) -> f64 {
    series_value(&bin.get_text("/metrics").await.1, series).unwrap_or(0.0)
}

async fn total(bin: &Binary) -> u64 {
    let (code, body) = bin.get_text("/apps/stackd%20cpu%20job").await;
    if code != 200 {
        return 0;
    }
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["total_samples"].as_u64().expect("total")
}

#[tokio::test(flavor = "multi_thread")]
async fn poller_survives_a_jobmanager_that_refuses_hangs_or_answers_garbage_and_recovers() {
    let t0 = now_ms() - 60_000;
    let mut jm = JobManager::start(0, Mode::Serve(t0)).await;
    let endpoint = format!("http://127.0.0.1:{}", jm.port);
    let data = TempDir::new("flink-poller");
    let args = ["--flink-rest", &endpoint, "--flink-poll-interval", "100ms", "--flink-timeout", "500ms"];
    let bin = Binary::start(&data.0, &args);
    let errors = |reason: &str| format!("stackd_flink_poll_errors_total{{endpoint=\"{endpoint}\",reason=\"{reason}\"}}");

    // The recorded snapshot: 100 on-CPU samples in one stack, none off-CPU. Stored once, however
    // often it is seen.
    wait_for("the first snapshot", Duration::from_secs(10), || async { (total(&bin).await == 100).then_some(()) }).await;
    let polls = jm.requests("/jobs/overview");
    wait_for("five more polls", Duration::from_secs(10), || async { (jm.requests("/jobs/overview") >= polls + 5).then_some(()) }).await;
    assert_eq!(total(&bin).await, 100, "the same snapshot is not counted twice");
    let s = status(&bin).await;
    assert_eq!((s["flink_version"].as_str(), s["per_subtask"].as_bool(), s["running_jobs"].as_u64()), (Some("2.3.0"), Some(true), Some(1)));
    assert_eq!(s["snapshots_stored"], 1, "the on-CPU snapshot (the off-CPU one has no samples): {s}");
    let (_, folded) = bin.get_text(&format!("/flamegraph/stackd%20cpu%20job.folded?job_id={JOB}&type=on_cpu&subtask=0")).await;
    assert!(folded.ends_with(";StackdCpuJob$Burn.map:34;StackdCpuJob$Burn.spin:38 100\n"), "{folded}");
    assert_eq!(jm.requests(&format!("/jobs/{JOB}/vertices/{VERTEX}/flamegraph?type=full")), jm.requests("/jobs/overview"));

    // Garbage, a hang and a closed port: each counted, shown, and stackd keeps answering.
    for (mode, reason, says) in
        [(Mode::Garbage, "invalid_response", "not the JSON Flink sends"), (Mode::Hang, "timeout", "no answer within 500ms")]
    {
        jm.set(mode);
        wait_for(reason, Duration::from_secs(10), || async { (metric(&bin, &errors(reason)).await >= 1.0).then_some(()) }).await;
        // A cycle under way when the mode changed may fail on a later request, with that
        // request's message; the next cycle fails on the first one.
        wait_for(says, Duration::from_secs(10), || async {
            status(&bin).await["last_error"].as_str().is_some_and(|e| e.contains(says)).then_some(())
        })
        .await;
        let s = status(&bin).await;
        assert!(s["consecutive_failures"].as_u64() >= Some(1), "{s}");
        let started = Instant::now();
        assert_eq!(bin.get_text("/apps").await.0, 200);
        assert!(started.elapsed() < Duration::from_secs(2), "queries do not wait for the poller");
    }
    jm.stop();
    wait_for("connect", Duration::from_secs(10), || async { (metric(&bin, &errors("connect")).await >= 1.0).then_some(()) }).await;
    assert!(status(&bin).await["last_error"].as_str().is_some_and(|e| e.contains("cannot connect")));

    // Back, with a new snapshot: stored, and the status clears (within the backoff, ≤ 1.6 s here).
    jm.set(Mode::Serve(t0 + 5_000));
    jm.listen().await;
    wait_for("recovery", Duration::from_secs(15), || async { (total(&bin).await == 200).then_some(()) }).await;
    // The snapshot is stored during the cycle; the status is updated when the cycle ends.
    wait_for("the status to clear", Duration::from_secs(5), || async { (status(&bin).await["consecutive_failures"] == 0).then_some(()) })
        .await;
    let s = status(&bin).await;
    assert_eq!(s["consecutive_failures"], 0, "{s}");
    assert_eq!(s["snapshots_stored"], 2, "{s}");
    assert!(s["last_success_ms"].as_i64() > s["last_error_ms"].as_i64(), "{s}");

    // Flame graphs switched off: shown, logged once with the line to set.
    jm.set(Mode::Disabled);
    wait_for("disabled", Duration::from_secs(10), || async { (status(&bin).await["flamegraph_disabled"] == true).then_some(()) }).await;
    let polls = jm.requests("/jobs/overview");
    wait_for("five more polls", Duration::from_secs(10), || async { (jm.requests("/jobs/overview") >= polls + 5).then_some(()) }).await;
    let log = bin.stop();
    let told: Vec<&String> = log.iter().filter(|l| l.contains("rest.flamegraph.enabled: true")).collect();
    assert_eq!(told.len(), 1, "logged once: {log:#?}");

    // A restart while Flink still serves the last snapshot: it was stored, so it is not again.
    jm.set(Mode::Serve(t0 + 5_000));
    let bin = Binary::start(&data.0, &args);
    let polls = jm.requests("/jobs/overview");
    wait_for("five polls after the restart", Duration::from_secs(10), || async {
        (jm.requests("/jobs/overview") >= polls + 5).then_some(())
    })
    .await;
    assert_eq!(total(&bin).await, 200);
    assert_eq!(status(&bin).await["snapshots_stored"], 0);
    bin.stop();
}
