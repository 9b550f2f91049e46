//! Shared test harness: the real service on 127.0.0.1:0, an HTTP client, and the agent's stack
//! encoding (so that real JVM stacks can be sent as statsd-jvm-profiler would send them).
#![allow(dead_code)]

pub mod ap_html;
pub mod dashboards;
pub mod flink;
pub mod moto;
pub mod prometheus;

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::oneshot;

/// A running stackd on loopback, stopped when dropped.
pub struct Service {
    pub http: SocketAddr,
    pub statsd: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _data: TempDir,
}

impl Service {
    /// Start with `--statsd-addr 127.0.0.1:0 --http-addr 127.0.0.1:0` plus `args`.
    pub async fn start(args: &[&str]) -> Service {
        let data = TempDir::new("svc");
        let mut argv = vec!["stackd", "--statsd-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log", "warn"];
        let dir = data.0.to_string_lossy().to_string();
        argv.extend(["--data-dir", &dir]);
        argv.extend(args);
        let config = stackd::config::Config::try_parse_from(argv).expect("valid flags");
        let listeners = stackd::Listeners::bind(&config).expect("bind");
        let http = listeners.http.local_addr().expect("addr");
        let statsd = listeners.statsd.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(stackd::run(config, listeners, async move {
            let _ = rx.await;
        }));
        Service { http, statsd, client: reqwest::Client::new(), stop: Some(tx), task: Some(task), _data: data }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    /// Send each payload as one datagram.
    pub fn send_udp<B: AsRef<[u8]>>(&self, datagrams: impl IntoIterator<Item = B>) -> usize {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("client socket");
        socket.connect(self.statsd).expect("connect");
        let mut n = 0;
        for d in datagrams {
            socket.send(d.as_ref()).expect("send");
            n += 1;
        }
        n
    }

    /// The value of one sample line of /metrics (`name{labels}` exactly as exposed). A series
    /// that is not exposed fails the test, naming the series of that family that are.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get_text("/metrics").await;
        series_value(&text, series).unwrap_or_else(|| {
            let family = series.split('{').next().unwrap_or(series);
            let seen: Vec<&str> = text.lines().filter(|l| l.starts_with(family)).collect();
            panic!(
                "/metrics has no series {series}; of {family} it has:\n{}\n(/metrics began: {:?})",
                seen.join("\n"),
                &text[..text.len().min(300)]
            )
        })
    }

    /// Wait until stackd has received and stored `n` datagrams (bounded; UDP is asynchronous).
    pub async fn wait_datagrams(&self, n: usize) {
        let want = n as f64;
        wait_until(Duration::from_secs(10), || async { self.metric("stackd_udp_datagrams_processed_total").await >= want }).await;
    }

    /// Stop the service and wait for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("clean exit");
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The value of `series` (`name{labels}` exactly as exposed) in an exposition.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.parse::<f64>().expect("number")))
}

/// Poll `cond` until it holds; panic after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < timeout, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll `cond` until it yields a value, and return it; after `timeout`, fail naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "not within {timeout:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("stackd-test-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `pkg.Class.method:line` (root first) → the agent's `cpu.trace.<leaf>.….<root>` name.
pub fn agent_stack_name(frames_root_first: &[&str]) -> String {
    stackd::input::profiler::encode_stack(frames_root_first)
}

/// Parse folded text into `(stack, count)` pairs.
pub fn parse_folded(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .map(|l| {
            let (stack, count) = l.rsplit_once(' ').expect("count");
            (stack.to_string(), count.parse().expect("integer count"))
        })
        .collect()
}

/// The real-JVM fixture (JFR recording of tests/fixtures/jfr/Workload.java).
pub fn jfr_fixture() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/workload.folded")).expect("fixture")
}

/// Run a client script from tests/clients with python3; its trimmed stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3").arg(&path).args(args).output().expect("python3 (install it, or run .ci/run)");
    assert!(
        out.status.success(),
        "{script} failed (needs `pip install statsd influxdb influxdb-client`, which .ci/run does):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// The example timestamps of the protocol documents (2017–2018) moved to now, so that vectors stay readable and
/// samples stay within the retention: `1500000000123000000` (ns) becomes now, the others keep
/// their offsets from it; `1500000000123` (ms) likewise.
pub fn recent(body: &str) -> String {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let ns = |t_ms: i64| ((now_ms + t_ms - 1_500_000_000_123) * 1_000_000).to_string();
    body.replace("1500000000123000000", &ns(1_500_000_000_123))
        .replace("1500000010124000000", &ns(1_500_000_010_124))
        .replace("1515627003374000000", &ns(1_500_000_000_123))
        .replace("1500000000123", &now_ms.to_string())
}

/// The real stackd binary on 127.0.0.1:0, with its log lines.
pub struct Binary {
    pub child: std::process::Child,
    pub http: String,
    pub statsd: String,
    lines: std::sync::mpsc::Receiver<String>,
    /// What it logged up to its "listening" line (inputs may start logging before it).
    early: Vec<String>,
}

impl Binary {
    /// Start `stackd --data-dir <dir> <args>` and wait for its "listening" line.
    pub fn start(dir: &std::path::Path, args: &[&str]) -> Binary {
        Binary::start_with_env(dir, args, &[])
    }

    /// [`Binary::start`] with these environment variables too.
    pub fn start_with_env(dir: &std::path::Path, args: &[&str], env: &[(String, String)]) -> Binary {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_stackd"))
            .args(["--statsd-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn stackd");
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut bin = Binary { child, http: String::new(), statsd: String::new(), lines, early: Vec::new() };
        let listening = loop {
            let line = bin.lines.recv_timeout(Duration::from_secs(20)).expect("stackd starts within 20 s");
            if line.contains("stackd listening") {
                break line;
            }
            bin.early.push(line);
        };
        let field = |name: &str| {
            let start = listening.find(&format!("{name}=")).expect("field") + name.len() + 1;
            listening[start..].split_whitespace().next().expect("value").to_string()
        };
        bin.http = field("http_addr");
        bin.statsd = field("statsd_addr");
        bin
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// `GET <path>`: status and body (stackd must answer within 10 s).
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = reqwest::Client::new().get(self.url(path)).timeout(Duration::from_secs(10)).send().await.expect("stackd answers");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// SIGTERM, then wait (10 s at most) for a clean exit; its log lines (all but "listening").
    pub fn stop(mut self) -> Vec<String> {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut lines = std::mem::take(&mut self.early);
        lines.extend(self.lines.iter());
        assert!(status.success(), "exit status {status:?}; log:\n{}", lines.join("\n"));
        lines
    }

    /// SIGKILL: no chance to flush.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unix time now, in ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// A Debian tool's path; fails naming the package when it is missing.
pub fn tool(name: &str) -> String {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().expect("sh");
    assert!(found.status.success(), "{name} not found: install the Debian package `prometheus` (.ci/run does)");
    String::from_utf8(found.stdout).expect("path").trim().to_string()
}

/// `promtool check metrics` on an exposition: it must find nothing to complain about.
pub fn promtool_check(exposition: &str) {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child.stdin.take().expect("stdin").write_all(exposition.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool: {report}\n---\n{exposition}");
}

/// A flame graph tree (`name`, `value`, `children`) with children sorted by name, so that trees
/// compare whatever order their children came in (Flink's come in hash map order).
pub fn sorted_tree(mut node: serde_json::Value) -> serde_json::Value {
    if let Some(children) = node.get_mut("children").and_then(serde_json::Value::as_array_mut) {
        let mut list: Vec<serde_json::Value> = children.drain(..).map(sorted_tree).collect();
        list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        *children = list;
    } else if let Some(obj) = node.as_object_mut() {
        obj.insert("children".into(), serde_json::Value::Array(Vec::new()));
    }
    node
}

/// How many `event` events the JDK's `jfr summary` counts in a recording.
pub fn jfr_summary_count(path: &std::path::Path, event: &str) -> u64 {
    let out = Command::new("jfr").arg("summary").arg(path).output().expect("jfr summary (Java 17, installed by .ci/run)");
    assert!(out.status.success(), "jfr summary {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(event)).then(|| w.next().and_then(|n| n.parse().ok())).flatten()
        })
        .unwrap_or(0)
}

/// The apache-flink wheel's `flink-dist` jar (which .ci/run installs) and the async-profiler 2.9
/// library inside it, unpacked into `work`: the async-profiler Flink's own profiler runs.
pub fn async_profiler(work: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let site =
        Command::new("python3").args(["-c", "import pyflink, os; print(os.path.dirname(pyflink.__file__))"]).output().expect("python3");
    assert!(site.status.success(), "apache-flink is installed by .ci/run: {}", String::from_utf8_lossy(&site.stderr));
    let jar = std::path::Path::new(String::from_utf8_lossy(&site.stdout).trim()).join("lib/flink-dist-2.3.0.jar");
    // The jar is a zip: Python's zipfile, as the engines' own installs have it.
    let extract = "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).extract('linux-x64/libasyncProfiler.so', sys.argv[2])";
    let status = Command::new("python3").args(["-c", extract]).arg(&jar).arg(work).status();
    assert!(status.expect("python3").success(), "async-profiler is in {}", jar.display());
    (jar, work.join("linux-x64/libasyncProfiler.so"))
}
