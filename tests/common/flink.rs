//! A real local Flink cluster (`apache-flink` from PyPI, installed by .ci/run) running
//! tests/engines/StackdCpuJob.java, compiled here with javac against the distribution's jars.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{wait_until, TempDir};

/// The pyflink distribution (`bin/`, `lib/`, `conf/`).
pub fn flink_home() -> PathBuf {
    let out =
        Command::new("python3").args(["-c", "import pyflink, os; print(os.path.dirname(pyflink.__file__))"]).output().expect("python3");
    assert!(out.status.success(), "pyflink is missing: `pip install apache-flink==2.3.0` (.ci/run does)");
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port()
}

/// A local Flink cluster with its own config, logs and pid files; stopped (and every process it
/// started killed) when dropped, whatever the test did.
pub struct Cluster {
    home: PathBuf,
    dir: TempDir,
    pub rest: u16,
}

impl Cluster {
    /// Start a cluster with the distribution's config plus `extra` (YAML lines) and its own
    /// ports and directories. Blocking: call from `spawn_blocking`.
    pub fn start(extra: &str) -> Cluster {
        let home = flink_home();
        let dir = TempDir::new("flink");
        let conf = dir.0.join("conf");
        std::fs::create_dir_all(&conf).expect("conf dir");
        // FLINK_LOG_DIR must exist, or the daemons do not start (and say nothing).
        std::fs::create_dir_all(dir.0.join("log")).expect("log dir");
        for f in std::fs::read_dir(home.join("conf")).expect("conf") {
            let f = f.expect("entry").path();
            std::fs::copy(&f, conf.join(f.file_name().expect("name"))).expect("copy conf");
        }
        let (rest, rpc) = (free_port(), free_port());
        let own = format!("\n{extra}\nrest.port: {rest}\njobmanager.rpc.port: {rpc}\nenv.pid.dir: {}\n", dir.0.display());
        let config = conf.join("config.yaml");
        let mut text = std::fs::read_to_string(&config).expect("config.yaml");
        text.push_str(&own);
        std::fs::write(&config, text).expect("write config");
        let cluster = Cluster { home, dir, rest };
        let out = cluster.command("start-cluster.sh").output().expect("start-cluster.sh");
        assert!(out.status.success(), "start-cluster.sh: {}", String::from_utf8_lossy(&out.stderr));
        cluster
    }

    /// A script of the distribution, bounded in time, with this cluster's config and logs.
    pub fn command(&self, script: &str) -> Command {
        let mut c = Command::new("timeout");
        c.arg("120").arg(self.home.join("bin").join(script));
        c.env("FLINK_CONF_DIR", self.dir.0.join("conf")).env("FLINK_LOG_DIR", self.dir.0.join("log"));
        c
    }

    /// `GET <path>` of the REST API, as JSON (`None` while it does not answer).
    pub async fn rest(&self, path: &str) -> Option<serde_json::Value> {
        let body = self.rest_text(path).await?;
        serde_json::from_str(&body).ok()
    }

    /// `GET <path>` of the REST API, as sent.
    pub async fn rest_text(&self, path: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:{}{path}", self.rest);
        reqwest::Client::new().get(url).timeout(Duration::from_secs(5)).send().await.ok()?.text().await.ok()
    }

    /// Wait until the REST server and a TaskManager with a free slot are up (start-cluster.sh
    /// returns before they are).
    pub async fn wait_ready(&self) {
        wait_until(Duration::from_secs(90), || async {
            self.rest("/overview").await.is_some_and(|o| o["taskmanagers"].as_u64() >= Some(1) && o["slots-available"].as_u64() >= Some(1))
        })
        .await;
    }

    /// Compile the job and submit it, detached; its job id. Blocking.
    pub fn submit(&self, name: &str) -> String {
        let build = self.dir.0.join("job");
        std::fs::create_dir_all(&build).expect("build dir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/StackdCpuJob.java");
        let classpath = format!("{}/lib/*", self.home.display());
        let ok = Command::new("javac").args(["-cp", &classpath, "-d"]).arg(&build).arg(&src).status().expect("javac");
        assert!(ok.success(), "javac failed");
        let jar = build.join("stackd-cpu-job.jar");
        let ok = Command::new("jar").args(["cfe"]).arg(&jar).arg("StackdCpuJob").args(["-C"]).arg(&build).arg(".").status().expect("jar");
        assert!(ok.success(), "jar failed");
        let out = self
            .command("flink")
            .args(["run", "-d", "-m", &format!("127.0.0.1:{}", self.rest)])
            .arg(&jar)
            .arg(name)
            .output()
            .expect("flink run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout.lines().find_map(|l| l.strip_prefix("Job has been submitted with JobID ")).map(|s| s.trim().to_string());
        id.unwrap_or_else(|| panic!("flink run: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
    }

    /// Cancel a job and wait until Flink says it is cancelled.
    pub async fn cancel(&self, job_id: &str) {
        let mut cancel = self.command("flink");
        cancel.args(["cancel", "-m", &format!("127.0.0.1:{}", self.rest), job_id]);
        let out = tokio::task::spawn_blocking(move || cancel.output()).await.expect("join").expect("flink cancel");
        assert!(out.status.success(), "flink cancel: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let job = format!("/jobs/{job_id}");
        wait_until(Duration::from_secs(30), || async { self.rest(&job).await.is_some_and(|j| j["state"] == "CANCELED") }).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.command("stop-cluster.sh").output();
        // Whatever stop-cluster.sh did not stop: the pids Flink recorded.
        if let Ok(entries) = std::fs::read_dir(&self.dir.0) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".pid") {
                    for pid in std::fs::read_to_string(e.path()).unwrap_or_default().split_whitespace() {
                        let _ = Command::new("kill").args(["-KILL", pid]).status();
                    }
                }
            }
        }
    }
}

/// The path of the one request on a connection to a fake JobManager (`None`: it closed first).
pub async fn request_path(conn: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&head).split_whitespace().nth(1).unwrap_or("").to_string())
}

/// Answer a fake JobManager's request as Flink does (JSON), then close.
pub async fn respond(conn: &mut tokio::net::TcpStream, status: &str, body: &str) {
    use tokio::io::AsyncWriteExt;
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json; charset=UTF-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes()).await;
}
