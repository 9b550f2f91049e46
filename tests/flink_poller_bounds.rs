//! The Flink poller against JobManagers whose answers are hostile or huge: a parallelism no
//! Flink has, vertices that fail or hang, ids that would change the request path, a clock
//! running ahead, and more vertices than one poll may ask for. Real Flink cannot be made to
//! answer so; each JobManager here answers from a table of paths.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{now_ms, wait_for, Service};

/// An answer: status and body, or never answering.
#[derive(Clone, Debug)]
enum Answer {
    Json(u16, String),
    Hang,
}

type Route = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// A JobManager answering each path by `route`, logging every path asked.
struct JobManager {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl JobManager {
    async fn start(route: Route) -> JobManager {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (route, log) = (Arc::clone(&route), Arc::clone(&log));
                tokio::spawn(async move {
                    let Some(path) = common::flink::request_path(&mut conn).await else { return };
                    log.lock().expect("lock").push(path.clone());
                    let (status, body) = match route(&path) {
                        Answer::Hang => return std::future::pending().await,
                        Answer::Json(status, body) => (status, body),
                    };
                    common::flink::respond(&mut conn, &format!("{status} X"), &body).await;
                });
            }
        });
        JobManager { url, requests, task }
    }

    fn asked(&self, path: &str) -> usize {
        self.requests.lock().expect("lock").iter().filter(|p| *p == path).count()
    }

    fn paths(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for JobManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ok(body: String) -> Answer {
    Answer::Json(200, body)
}

/// A flame graph of `samples` samples in one stack, ending at `end_ms`.
fn graph(end_ms: i64, frame: &str, samples: u64) -> String {
    format!(
        r#"{{"endTimestamp":{end_ms},"data":{{"name":"root","value":{samples},"children":[{{"name":"java.lang.Thread.run:840","value":{samples},"children":[{{"name":"{frame}","value":{samples}}}]}}]}}}}"#
    )
}

fn overview(jobs: &[(&str, &str)]) -> String {
    let jobs: Vec<String> = jobs.iter().map(|(jid, name)| format!(r#"{{"jid":"{jid}","name":"{name}","state":"RUNNING"}}"#)).collect();
    format!(r#"{{"jobs":[{}]}}"#, jobs.join(","))
}

fn job(vertices: &[(&str, &str)]) -> String {
    let v: Vec<String> = vertices
        .iter()
        .map(|(id, parallelism)| format!(r#"{{"id":"{id}","name":"{id}","parallelism":{parallelism},"status":"RUNNING"}}"#))
        .collect();
    format!(r#"{{"vertices":[{}]}}"#, v.join(","))
}

const CONFIG: &str = r#"{"flink-version":"2.3.0"}"#;

async fn flink_status(svc: &Service) -> serde_json::Value {
    let (code, body) = svc.get_text("/flink").await;
    assert_eq!(code, 200);
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["endpoints"][0].clone()
}

async fn samples(svc: &Service, app: &str) -> u64 {
    let (code, body) = svc.get_text(&format!("/apps/{app}")).await;
    if code != 200 {
        return 0;
    }
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["total_samples"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_vertex_is_skipped_and_counted_and_the_rest_is_polled() {
    let end = now_ms() - 5_000;
    // Job 1's id would climb out of /jobs; its vertices claim 2^32 - 1 subtasks, answer 500,
    // never answer, and (the last) answer well. Job 2 answers well.
    let evil = "../../x?y=1#";
    let evil_path = "/jobs/..%2F..%2Fx%3Fy%3D1%23";
    let route: Route = Arc::new(move |path: &str| {
        let table: HashMap<String, Answer> = [
            ("/config".to_string(), ok(CONFIG.into())),
            ("/jobs/overview".to_string(), ok(overview(&[(evil, "evil"), ("j2", "good")]))),
            (evil_path.to_string(), ok(job(&[("huge", "4294967295"), ("broken", "1"), ("slow", "1"), ("fine", "1")]))),
            ("/jobs/j2".to_string(), ok(job(&[("v", "1")]))),
        ]
        .into_iter()
        .collect();
        if let Some(a) = table.get(path) {
            return a.clone();
        }
        match path {
            p if p.contains("/vertices/broken/") => Answer::Json(500, r#"{"errors":["Internal server error."]}"#.into()),
            p if p.contains("/vertices/slow/") => Answer::Hang,
            p if p.contains("/vertices/fine/flamegraph") => ok(graph(end, "Evil.fine:1", 7)),
            p if p.starts_with("/jobs/j2/vertices/v/flamegraph") => ok(graph(end, "Good.v:1", 5)),
            _ => Answer::Json(404, r#"{"errors":["Not found"]}"#.into()),
        }
    });
    let jm = JobManager::start(route).await;
    let svc = Service::start(&[
        "--flink-rest",
        &jm.url,
        "--flink-poll-interval",
        "200ms",
        "--flink-timeout",
        "500ms",
        "--flink-graphs",
        "on-cpu",
    ])
    .await;

    // Both the vertex after the hostile ones and the next job are stored, once each.
    wait_for("both jobs stored", Duration::from_secs(20), || async {
        (samples(&svc, "evil").await == 7 && samples(&svc, "good").await == 5).then_some(())
    })
    .await;
    let s = wait_for("a finished poll", Duration::from_secs(10), || async {
        let s = flink_status(&svc).await;
        s["last_poll"]["finished_ms"].is_i64().then_some(s)
    })
    .await;
    assert_eq!(s["consecutive_failures"], 0, "skipped vertices do not fail the poll: {s}");
    let poll = &s["last_poll"];
    assert_eq!((poll["jobs"].as_u64(), poll["vertices"].as_u64()), (Some(2), Some(5)), "{s}");
    assert_eq!((poll["vertices_done"].as_u64(), poll["errors"].as_u64()), (Some(2), Some(3)), "{s}");
    let errors = |reason: &str| format!("stackd_flink_poll_errors_total{{endpoint=\"{}\",reason=\"{reason}\"}}", jm.url);
    assert!(svc.metric(&errors("invalid_response")).await >= 1.0, "the parallelism");
    assert!(svc.metric(&errors("http_status")).await >= 1.0, "the 500");
    assert!(svc.metric(&errors("timeout")).await >= 1.0, "the hang");

    // Nothing was asked per subtask of the huge vertex, and ids never changed the path.
    let paths = jm.paths();
    assert!(!paths.iter().any(|p| p.contains("/vertices/huge/")), "{paths:?}");
    assert!(jm.asked(evil_path) >= 1, "{paths:?}");
    assert!(paths.iter().all(|p| !p.contains("/../") && !p.contains('#')), "{paths:?}");
    assert!(paths.iter().any(|p| p == &format!("{evil_path}/vertices/fine/flamegraph?type=on_cpu&subtaskindex=0")), "{paths:?}");
    assert_eq!(svc.get("/ping").await.status(), 204, "still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_refused_for_its_time_does_not_hide_the_next_ones() {
    // The JobManager's clock is an hour ahead for its first snapshots, then right.
    let end = Arc::new(Mutex::new(now_ms() + 3_600_000));
    let e = Arc::clone(&end);
    let route: Route = Arc::new(move |path: &str| match path {
        "/config" => ok(CONFIG.into()),
        "/jobs/overview" => ok(overview(&[("j", "clock")])),
        "/jobs/j" => ok(job(&[("v", "1")])),
        p if p.starts_with("/jobs/j/vertices/v/flamegraph") => ok(graph(*e.lock().expect("lock"), "Clock.tick:1", 3)),
        _ => Answer::Json(404, "{}".into()),
    });
    let jm = JobManager::start(route).await;
    let svc = Service::start(&["--flink-rest", &jm.url, "--flink-poll-interval", "100ms", "--flink-graphs", "on-cpu"]).await;
    let refused = format!("stackd_flink_poll_errors_total{{endpoint=\"{}\",reason=\"refused\"}}", jm.url);
    wait_for("the snapshot from the future refused", Duration::from_secs(10), || async {
        (common::series_value(&svc.get_text("/metrics").await.1, &refused).unwrap_or(0.0) >= 2.0).then_some(())
    })
    .await;
    assert_eq!(samples(&svc, "clock").await, 0);
    // The clock is put right: the next snapshot (older than the refused one) is stored.
    *end.lock().expect("lock") = now_ms() - 1_000;
    wait_for("the correct snapshot stored", Duration::from_secs(10), || async { (samples(&svc, "clock").await == 3).then_some(()) }).await;
    let asked = jm.asked("/jobs/overview");
    wait_for("three more polls", Duration::from_secs(10), || async { (jm.asked("/jobs/overview") >= asked + 3).then_some(()) }).await;
    assert_eq!(samples(&svc, "clock").await, 3, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_over_its_budget_ends_and_the_next_goes_on_where_it_stopped() {
    let end = now_ms() - 5_000;
    let ids: Vec<String> = (0..30).map(|i| format!("v{i:02}")).collect();
    let vertices: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "1")).collect();
    let job_body = job(&vertices);
    let route: Route = Arc::new(move |path: &str| match path {
        "/config" => ok(CONFIG.into()),
        "/jobs/overview" => ok(overview(&[("j", "wide")])),
        "/jobs/j" => ok(job_body.clone()),
        p if p.starts_with("/jobs/j/vertices/") => ok(graph(end, "Wide.work:1", 2)),
        _ => Answer::Json(404, "{}".into()),
    });
    let jm = JobManager::start(route).await;
    // Each poll: the overview, the job, and two requests per vertex: 13 reach 5 vertices and a half.
    let svc = Service::start(&[
        "--flink-rest",
        &jm.url,
        "--flink-poll-interval",
        "50ms",
        "--flink-graphs",
        "on-cpu",
        "--flink-max-requests",
        "13",
    ])
    .await;
    wait_for("every vertex stored, over several polls", Duration::from_secs(30), || async {
        (samples(&svc, "wide").await == 60).then_some(())
    })
    .await;
    for id in &ids {
        assert!(jm.asked(&format!("/jobs/j/vertices/{id}/flamegraph?type=on_cpu&subtaskindex=0")) >= 1, "{id} reached");
    }
    let s = flink_status(&svc).await;
    let poll = &s["last_poll"];
    assert_eq!(poll["requests"], 13, "{s}");
    assert!(poll["cut_short"].as_str().is_some_and(|m| m.contains("13 requests (--flink-max-requests)")), "{s}");
    assert_eq!(s["consecutive_failures"], 0, "a poll cut short still went through: {s}");
    let budget = format!("stackd_flink_poll_errors_total{{endpoint=\"{}\",reason=\"poll_budget\"}}", jm.url);
    assert!(svc.metric(&budget).await >= 5.0);
}
