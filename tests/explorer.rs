//! The explorer in a real browser: headless Chromium (Debian `chromium`, `chromium-driver`)
//! driven by Selenium (PyPI), all installed by `.ci/run`. stackd holds real JVM stacks (the JFR
//! fixture) from three executors over the last two hours, sent as statsd-jvm-profiler's
//! InfluxDB reporter sends them, and an app whose name is markup. `tests/browser/explorer.py`
//! walks the index, the app page, a label, a preset range, a dragged range, a search, the
//! permalink and a diff, checking each figure against the JSON API; screenshots land in
//! `target/explorer/`.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent_stack_name, jfr_fixture, now_ms, parse_folded, Binary, TempDir};

const APP: &str = "demo-app";
const OTHER: &str = "evil<b>x</b>";

/// Line protocol of the fixture for executors 1..=3, every third minute of the last two
/// hours: executor N has N times the `split` samples, and `hashCode` has five times its
/// samples in the first hour, so that executors and periods differ.
fn body() -> String {
    let now_min = now_ms() / 60_000;
    let mut out = String::new();
    let stacks = parse_folded(&jfr_fixture());
    for executor in 1..=3u64 {
        for minute in (0..120).step_by(3) {
            let t_ns = (now_min - minute) * 60_000 * 1_000_000;
            for (stack, count) in &stacks {
                let mut n = *count;
                if stack.contains("split") {
                    n *= executor;
                }
                if minute > 60 && stack.contains("hashCode") {
                    n *= 5;
                }
                let frames: Vec<&str> = stack.split(';').collect();
                out.push_str(&format!(
                    "{},hostname=worker-{executor},jvmName=4{executor}@worker-{executor},pid=4{executor},prefix=spark.{APP}.{executor} value={n}i {t_ns}\n",
                    agent_stack_name(&frames)
                ));
            }
        }
    }
    out.push_str("cpu.trace.com-example-Main-main-12,prefix=spark.evil<b>x</b>.1 value=3i\n");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_in_chromium() {
    for tool in ["chromium", "chromedriver"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().expect("sh");
        assert!(found.status.success(), "{tool} not found: install the Debian packages chromium and chromium-driver (.ci/run does)");
    }
    let dir = TempDir::new("explorer");
    let bin = Binary::start(&dir.0, &["--prefix-labels", "SKIP.app.executor"]);
    let r = reqwest::Client::new().post(bin.url("/write?db=profiler")).body(body()).send().await.expect("POST");
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/explorer");
    let mut child = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/explorer.py"))
        .args([&bin.url(""), APP, OTHER])
        .arg(&shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("python3 (with selenium: pip install selenium, which .ci/run does)");
    // The script bounds itself (alarm); this bounds it again, and stops its whole group.
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(status.is_some_and(|s| s.success()), "the browser test failed (screenshots in {}):\n{report}", shots.display());
    assert!(report.contains("\"ok\": true"), "{report}");
    for png in ["index.png", "app.png", "app-range.png", "search.png", "diff.png"] {
        let size = std::fs::metadata(shots.join(png)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{png}: a screenshot of the view ({size} bytes)");
    }
    bin.stop();
}
