//! A real Prometheus (the Debian package .ci/run installs) scraping a stackd every second,
//! stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{tool, TempDir};

pub struct Prometheus {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl Prometheus {
    /// Scrape `target` (host:port) as job `stackd`, with `rule_files` evaluated every second.
    pub fn start(target: &str, rule_files: &[&str]) -> Prometheus {
        let dir = TempDir::new("prom");
        std::fs::create_dir_all(&dir.0).expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let config = dir.0.join("prometheus.yml");
        let rules: String = rule_files.iter().map(|f| format!("  - {f}\n")).collect();
        let rules = if rules.is_empty() { String::new() } else { format!("rule_files:\n{rules}") };
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rules}scrape_configs:\n  - job_name: stackd\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config");
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus");
        Prometheus { port, child, _dir: dir }
    }

    /// The result of an instant query (`None` while Prometheus does not answer).
    pub async fn query(&self, q: &str) -> Option<Vec<serde_json::Value>> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let r = reqwest::Client::new().get(url).query(&[("query", q)]).timeout(Duration::from_secs(5)).send().await.ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        v["data"]["result"].as_array().cloned()
    }

    /// The first series of `q` once it has one, within `timeout`.
    pub async fn wait_for(&self, q: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(first) = self.query(q).await.and_then(|r| r.first().cloned()) {
                return Some(first);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
