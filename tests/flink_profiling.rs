//! `--flink-profiling` against a JobManager that misbehaves in every way Flink's profiler can:
//! a run that never finishes, one that fails, a file that is gone, a 50 MB file, a file with a
//! broken `f(` line, a TaskManager busy with someone else's run, a run refused for its duration.
//! Real Flink cannot be made to do these on demand, so this JobManager answers as Flink 2.3.0
//! did (tests/fixtures/flink/profiling/, recorded from a real cluster: the task manager list,
//! the answers to POST …/profiler, the refusals, and an ITIMER flame graph). The happy path
//! against real Flink is tests/flink_profiling_real.rs.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ap_html::root_width;
use common::{now_ms, series_value, wait_for, Binary, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/flink/profiling/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// The TaskManagers, by what they do (ids with `:`, as Flink's are).
const TMS: [&str; 7] = ["ok", "never", "failed", "gone", "missing", "huge", "broken"];
const BUSY: &str = "busy";

fn tm_id(name: &str) -> String {
    format!("localhost:4093{}-{name}", TMS.iter().position(|t| *t == name).unwrap_or(9))
}

#[derive(Clone, Debug)]
struct Run {
    mode: String,
    trigger: i64,
    duration: i64,
}

#[derive(Default)]
struct Process {
    runs: Vec<Run>,
    /// (when, mode) of every POST, and whether it was refused as busy.
    posts: Vec<(i64, String, bool)>,
    lists: usize,
    files: usize,
}

#[derive(Default)]
struct State {
    processes: HashMap<String, Process>,
    /// No new runs start (POSTs are answered as busy).
    frozen: bool,
    /// `rest.profiling.enabled` is off: Flink answers 404 to the profiler's calls.
    disabled: bool,
}

/// A JobManager with profiling enabled, answering from its state.
struct JobManager {
    port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JobManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request: method, path (percent-decoded) and body.
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<(String, String, String)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while data.len() < head_end + length {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let mut words = head.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let decoded = percent_decode(&path);
    Some((method, decoded, String::from_utf8_lossy(&data[head_end..head_end + length]).to_string()))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn respond(conn: &mut tokio::net::TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body).await;
}

/// How a run shows in the list, as Flink writes it.
fn listed(process: &str, run: &Run, now: i64) -> String {
    let end = run.trigger + run.duration * 1000;
    let file = format!("{process}_{}_{}.html", run.mode, run.trigger);
    let (status, finished, message, output) = match process {
        _ if now < end || process.ends_with("-never") => ("RUNNING", "null".to_string(), "null".to_string(), "null".to_string()),
        _ if process.ends_with("-failed") => {
            ("FAILED", end.to_string(), "\"Profiling Failed: java.lang.RuntimeException: perf_event_open failed\"".into(), "null".into())
        }
        _ => ("FINISHED", end.to_string(), "\"Profiling Successful\"".into(), format!("\"{file}\"")),
    };
    format!(
        r#"{{"status":"{status}","mode":"{m}","triggerTime":{t},"finishedTime":{finished},"duration":{d},"message":{message},"outputFile":{output},"profilingMode":"{m}"}}"#,
        m = run.mode,
        t = run.trigger,
        d = run.duration
    )
}

impl JobManager {
    async fn start(disabled: bool) -> JobManager {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State { disabled, ..State::default() }));
        let html = fixture("itimer.html");
        let broken = html.replacen("f(1,1,5,1,'java/lang/Thread.run')", "f(1,1,5,1,'java/lang/Thread.run'", 1);
        assert_ne!(broken, html);
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (state, html, broken) = (Arc::clone(&shared), html.clone(), broken.clone());
                tokio::spawn(async move {
                    let Some((method, path, body)) = read_request(&mut conn).await else { return };
                    let now = now_ms();
                    let json = "application/json; charset=UTF-8";
                    if path == "/taskmanagers" {
                        let tms: Vec<String> = TMS
                            .iter()
                            .chain([&BUSY])
                            .map(|t| {
                                format!(
                                    r#"{{"id":"{}","path":"pekko.tcp://flink@host-{t}:6122/user/rpc/taskmanager_0","dataPort":1}}"#,
                                    tm_id(t)
                                )
                            })
                            .collect();
                        return respond(&mut conn, "200 OK", json, format!(r#"{{"taskmanagers":[{}]}}"#, tms.join(",")).as_bytes()).await;
                    }
                    if path == "/config" {
                        return respond(&mut conn, "200 OK", json, br#"{"flink-version":"2.3.0"}"#).await;
                    }
                    if path == "/jobs/overview" {
                        return respond(&mut conn, "200 OK", json, br#"{"jobs":[]}"#).await;
                    }
                    let Some((process, rest)) = path
                        .strip_prefix("/taskmanagers/")
                        .and_then(|p| p.split_once("/profiler"))
                        .or_else(|| path.strip_prefix("/jobmanager/profiler").map(|r| ("jobmanager", r)))
                    else {
                        return respond(&mut conn, "404 Not Found", json, br#"{"errors":["Not found: /x"]}"#).await;
                    };
                    let (process, rest) = (process.to_string(), rest.to_string());
                    if state.lock().expect("lock").disabled {
                        // As Flink 2.3.0 answers without rest.profiling.enabled.
                        let message =
                            if method == "POST" { format!("Not found: {path}") } else { format!("Unable to load requested file {path}.") };
                        state.lock().expect("lock").processes.entry(process).or_default().posts.push((now, method, false));
                        return respond(&mut conn, "404 Not Found", json, format!(r#"{{"errors":["{message}"]}}"#).as_bytes()).await;
                    }
                    let answer: (&str, Vec<u8>, &str) = {
                        let mut st = state.lock().expect("lock");
                        let frozen = st.frozen;
                        let p = st.processes.entry(process.clone()).or_default();
                        match (method.as_str(), rest.as_str()) {
                            ("POST", "") => {
                                let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
                                let mode = v["mode"].as_str().expect("mode").to_string();
                                let duration = v["duration"].as_i64().expect("duration");
                                let running = p.runs.iter().any(|r| now < r.trigger + r.duration * 1000 || process.ends_with("-never"));
                                if process == "jobmanager" {
                                    p.posts.push((now, mode, false));
                                    ("500 Internal Server Error", fixture("duration.json").into_bytes(), json)
                                } else if running || frozen || process.ends_with(BUSY) {
                                    p.posts.push((now, mode, true));
                                    let busy = fixture("busy.json").replace("localhost:40931-1b01bb", &process);
                                    ("500 Internal Server Error", busy.into_bytes(), json)
                                } else {
                                    p.posts.push((now, mode.clone(), false));
                                    let run = Run { mode, trigger: now, duration };
                                    p.runs.insert(0, run.clone());
                                    (
                                        "200 OK",
                                        format!(
                                            r#"{{"status":"RUNNING","mode":"{m}","triggerTime":{now},"finishedTime":null,"duration":{duration},"message":null,"outputFile":null,"profilingMode":"{m}"}}"#,
                                            m = run.mode
                                        )
                                        .into_bytes(),
                                        json,
                                    )
                                }
                            }
                            ("GET", "") => {
                                p.lists += 1;
                                let runs: Vec<String> = p.runs.iter().take(10).map(|r| listed(&process, r, now)).collect();
                                ("200 OK", format!(r#"{{"profilingList":[{}]}}"#, runs.join(",")).into_bytes(), json)
                            }
                            ("GET", file) => {
                                p.files += 1;
                                let known = p.runs.iter().any(|r| file == format!("/{process}_{}_{}.html", r.mode, r.trigger));
                                match process.rsplit('-').next() {
                                    _ if !known => ("400 Bad Request", b"{\"errors\":[\"stackd asked for a file never listed\"]}".to_vec(), json),
                                    Some("missing") => ("404 Not Found", b"{\"errors\":[\"Not found\"]}".to_vec(), json),
                                    Some("gone") => (
                                        "500 Internal Server Error",
                                        format!("{{\"errors\":[\"Internal server error.\",\"<Exception on server side:\\norg.apache.flink.util.FlinkException: Failed to transfer file from TaskExecutor {process}.\\n\\tat x\"]}}").into_bytes(),
                                        json,
                                    ),
                                    Some("huge") => ("200 OK", vec![b' '; 50 << 20], "text/plain"),
                                    Some("broken") => ("200 OK", broken.clone().into_bytes(), "text/plain"),
                                    _ => ("200 OK", html.clone().into_bytes(), "text/plain"),
                                }
                            }
                            _ => ("404 Not Found", b"{\"errors\":[\"Not found\"]}".to_vec(), json),
                        }
                    };
                    respond(&mut conn, answer.0, answer.2, &answer.1).await;
                });
            }
        });
        JobManager { port, state, task }
    }

    fn with<T>(&self, process: &str, f: impl FnOnce(&Process) -> T) -> T {
        let st = self.state.lock().expect("lock");
        f(st.processes.get(process).unwrap_or(&Process::default()))
    }
}

async fn profiling(bin: &Binary) -> serde_json::Value {
    profiling_of(bin, 0).await
}

async fn profiling_of(bin: &Binary, endpoint: usize) -> serde_json::Value {
    let (code, body) = bin.get_text("/flink").await;
    assert_eq!(code, 200);
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["endpoints"][endpoint]["profiling"].clone()
}

async fn process(bin: &Binary, id: &str) -> serde_json::Value {
    let p = profiling(bin).await;
    p["processes"].as_array().expect("processes").iter().find(|p| p["process"] == id).cloned().unwrap_or_default()
}

async fn metric(bin: &Binary, series: &str) -> f64 {
    series_value(&bin.get_text("/metrics").await.1, series).unwrap_or(0.0)
}

async fn folded_total(bin: &Binary, query: &str) -> u64 {
    let (code, text) = bin.get_text(&format!("/flamegraph/flink-cluster.folded?{query}")).await;
    if code != 200 {
        return 0;
    }
    common::parse_folded(&text).iter().map(|(_, n)| n).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn profiler_runs_are_kept_and_every_misbehaviour_is_shown_counted_and_bounded() {
    let jm = JobManager::start(false).await;
    let off = JobManager::start(true).await;
    let endpoint = format!("http://127.0.0.1:{}", jm.port);
    let endpoints = format!("{endpoint},http://127.0.0.1:{}", off.port);
    let data = TempDir::new("flink-profiling");
    let args = [
        "--flink-rest",
        &endpoints,
        "--flink-profiling",
        "ITIMER,ALLOC",
        "--flink-profiling-duration",
        "1s",
        "--flink-profiling-interval",
        "3s",
        "--flink-timeout",
        "3s",
        "--flink-poll-interval",
        "1h",
    ];
    let started = Instant::now();
    let bin = Binary::start(&data.0, &args);
    let runs = |mode: &str, outcome: &str| {
        format!("stackd_flink_profiling_runs_total{{endpoint=\"{endpoint}\",mode=\"{mode}\",outcome=\"{outcome}\"}}")
    };
    let errors = |reason: &str| format!("stackd_flink_profiling_errors_total{{endpoint=\"{endpoint}\",reason=\"{reason}\"}}");

    // Each misbehaviour, shown on its process and counted.
    let ok = tm_id("ok");
    for (tm, outcome, says) in [
        ("ok", "stored", "Profiling Successful"),
        ("failed", "failed", "perf_event_open failed"),
        ("gone", "unreadable", "HTTP 500: FlinkException: Failed to transfer file from TaskExecutor"),
        ("missing", "unreadable", "HTTP 404: Not found"),
        ("huge", "unreadable", "the answer is larger than 25000000 bytes (--max-body-size)"),
        ("broken", "unreadable", "not an async-profiler flame graph: line 237:"),
    ] {
        let id = tm_id(tm);
        let last = wait_for(&format!("{tm}: {outcome}"), Duration::from_secs(20), || async {
            let p = process(&bin, &id).await;
            (p["last_run"]["outcome"] == outcome).then_some(p["last_run"].clone())
        })
        .await;
        assert!(last["message"].as_str().is_some_and(|m| m.contains(says)), "{tm}: {last}");
        assert_eq!(last["file"].is_string(), tm != "failed", "{last}");
    }
    let never = wait_for("never: overdue", Duration::from_secs(20), || async {
        let p = process(&bin, &tm_id("never")).await;
        (p["running"]["outcome"] == "overdue").then_some(p)
    })
    .await;
    assert!(never["running"]["message"].as_str().is_some_and(|m| m.contains("still running")), "{never}");
    let busy = wait_for("busy", Duration::from_secs(20), || async {
        let p = process(&bin, &tm_id(BUSY)).await;
        p["last_error"].as_str().is_some_and(|e| e.contains("is still under profiling")).then_some(p)
    })
    .await;
    assert!(busy["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("IllegalStateException: localhost:40939-busy is still under profiling.")));
    let jobmanager = wait_for("the duration refused", Duration::from_secs(20), || async {
        let p = process(&bin, "jobmanager").await;
        p["last_error"].is_string().then_some(p)
    })
    .await;
    assert!(
        jobmanager["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Flink refused the run: IllegalArgumentException: `duration` must be set between (0s, 300s].")),
        "{jobmanager}"
    );
    for reason in ["busy", "refused"] {
        assert!(metric(&bin, &errors(reason)).await >= 1.0, "{reason}");
    }
    assert!(metric(&bin, &runs("ITIMER", "unreadable")).await + metric(&bin, &runs("ALLOC", "unreadable")).await >= 4.0);
    assert!(metric(&bin, &runs("ITIMER", "failed")).await + metric(&bin, &runs("ALLOC", "failed")).await >= 1.0);
    assert!(metric(&bin, &runs("ITIMER", "unfinished")).await + metric(&bin, &runs("ALLOC", "unfinished")).await == 1.0);
    let p = profiling(&bin).await;
    assert_eq!(
        (p["modes"].clone(), p["duration_s"].clone(), p["interval_s"].clone()),
        (serde_json::json!(["ITIMER", "ALLOC"]), 1.into(), 3.into())
    );
    assert_eq!(p["processes"].as_array().map(Vec::len), Some(9), "the JobManager and eight TaskManagers: {p}");
    // The 50 MB answers were read no further than --max-body-size.
    let status = std::fs::read_to_string(format!("/proc/{}/status", bin.child.id())).expect("/proc");
    let peak_kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).expect("VmHWM");
    assert!(peak_kib < 100 * 1024, "stackd's peak resident memory: {peak_kib} KiB");
    eprintln!("stackd's peak resident memory: {peak_kib} KiB");

    // Profiling switched off on the other JobManager: shown, counted, not asked again sooner
    // than the interval, and logged once with the line to set.
    let off_status = wait_for("disabled", Duration::from_secs(20), || async {
        let p = profiling_of(&bin, 1).await;
        (p["disabled"] == true).then_some(p)
    })
    .await;
    let said = off_status["processes"][0]["last_error"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        said,
        "/jobmanager/profiler: HTTP 404: Unable to load requested file /jobmanager/profiler. (Flink's profiler is disabled: set rest.profiling.enabled: true)"
    );
    let off_errors = format!("stackd_flink_profiling_errors_total{{endpoint=\"http://127.0.0.1:{}\",reason=\"disabled\"}}", off.port);
    assert!(metric(&bin, &off_errors).await >= 1.0);
    assert!(off.with("jobmanager", |p| p.posts.iter().all(|(_, m, _)| m == "GET")), "no run asked of a JobManager that has profiling off");

    // Queries never wait for the profiler, whatever Flink does.
    let asked = Instant::now();
    assert_eq!(bin.get_text("/apps").await.0, 200);
    assert!(asked.elapsed() < Duration::from_secs(2));

    // Both modes ran on the healthy TaskManager, and every stored run is its whole graph: the
    // root width of the recorded HTML, read here on its own.
    wait_for("an ALLOC run stored too", Duration::from_secs(20), || async {
        (metric(&bin, &runs("ALLOC", "stored")).await >= 1.0).then_some(())
    })
    .await;
    let width = root_width(&fixture("itimer.html"));
    assert_eq!(width, 9);
    let ok_q = format!("taskmanager={}", ok);
    let stored_itimer = metric(&bin, &runs("ITIMER", "stored")).await as u64;
    assert_eq!(folded_total(&bin, &format!("type=cpu&{ok_q}")).await, stored_itimer * width);
    let (_, folded) =
        bin.get_text(&format!("/flamegraph/flink-cluster.folded?type=cpu&{ok_q}&mode=ITIMER&host=host-ok&process=taskmanager")).await;
    assert!(folded.contains("java.lang.Thread.run_[j];"), "Java frames with async-profiler's kind: {folded}");
    assert!(folded.lines().any(|l| l.starts_with("_itoa_word ")), "native frames as they are: {folded}");
    assert!(folded_total(&bin, &format!("type=alloc_objects&{ok_q}&mode=ALLOC")).await > 0);

    // Bounded: never a second run while one is under way, never one mode sooner than the
    // interval, a busy process asked again only after a run's duration, a refused run only
    // after the interval.
    let elapsed = started.elapsed().as_millis() as i64;
    for tm in TMS.iter().chain([&BUSY]) {
        let posts = jm.with(&tm_id(tm), |p| p.posts.clone());
        let refused = posts.iter().filter(|(_, _, busy)| *busy).count();
        if *tm != BUSY {
            assert_eq!(refused, 0, "{tm}: a POST while its run was under way: {posts:?}");
        }
        for mode in ["ITIMER", "ALLOC"] {
            let times: Vec<i64> = posts.iter().filter(|(_, m, _)| m == mode).map(|(t, ..)| *t).collect();
            let gap = if *tm == BUSY { 1000 } else { 3000 };
            for w in times.windows(2) {
                assert!(w[1] - w[0] >= gap - 20, "{tm} {mode}: POSTs {} ms apart: {times:?}", w[1] - w[0]);
            }
            assert!(times.len() as i64 <= elapsed / gap + 1, "{tm} {mode}: {} POSTs in {elapsed} ms", times.len());
        }
    }
    assert_eq!(jm.with(&tm_id("never"), |p| p.posts.len()), 1, "one run, never finished: no second one");
    let jm_posts = jm.with("jobmanager", |p| p.posts.clone());
    for mode in ["ITIMER", "ALLOC"] {
        let times: Vec<i64> = jm_posts.iter().filter(|(_, m, _)| m == mode).map(|(t, ..)| *t).collect();
        assert!(!times.is_empty() && times.windows(2).all(|w| w[1] - w[0] >= 2980), "refused runs retried after the interval: {times:?}");
    }

    // Every run of the healthy TaskManager that ended is stored once; after a restart, with
    // Flink still listing them, none is stored again.
    jm.state.lock().expect("lock").frozen = true;
    let finished = || jm.with(&ok, |p| p.runs.len() as f64);
    tokio::time::sleep(Duration::from_millis(1500)).await; // the last run ends
    let want = finished();
    wait_for("every ended run stored", Duration::from_secs(20), || async {
        let stored = metric(&bin, &runs("ITIMER", "stored")).await + metric(&bin, &runs("ALLOC", "stored")).await;
        (stored == want).then_some(())
    })
    .await;
    let total = folded_total(&bin, &ok_q).await;
    let log = bin.stop();
    assert!(log.iter().any(|l| l.contains("Flink refused a profiler run")), "{log:#?}");
    let told = log.iter().filter(|l| l.contains("add `rest.profiling.enabled: true`")).count();
    assert_eq!(told, 1, "logged once: {log:#?}");
    let files = jm.with(&ok, |p| p.files);
    let lists = jm.with(&ok, |p| p.lists);
    let bin = Binary::start(&data.0, &args);
    wait_for("two visits after the restart", Duration::from_secs(20), || async { (jm.with(&ok, |p| p.lists) >= lists + 2).then_some(()) })
        .await;
    assert_eq!(jm.with(&ok, |p| p.files), files, "no file fetched again");
    assert_eq!(folded_total(&bin, &ok_q).await, total);
    assert_eq!(metric(&bin, &runs("ITIMER", "stored")).await, 0.0);
    bin.stop();
}
