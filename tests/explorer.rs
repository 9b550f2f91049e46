//! The explorer in a real browser: headless Chromium (Debian `chromium`, `chromium-driver`)
//! driven by Selenium (PyPI), all installed by `.ci/run`. stackd holds real deep Spark executor
//! stacks (`tests/fixtures/jfr/spark.folded`, recorded from a real Spark job: up to 64 frames)
//! from three executors and a driver over the last two hours, a Flink-shaped app (on-CPU and
//! off-CPU), an app that only sends JVM gauges, an app whose name is markup, and an app of
//! 20,000 distinct deep stacks (the page's speed). A second stackd holds nothing (the empty
//! index). `tests/browser/explorer.py` walks every view, checking each figure against stackd's
//! JSON API and the folded text; screenshots land in `target/explorer/`.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{now_ms, parse_folded, Binary, TempDir};

const APP: &str = "spark-etl";
const FLINK: &str = "flink-job";
const GAUGES: &str = "gauges-only";
const OTHER: &str = "evil<b>x</b>";
const WIDE: &str = "wide-20k";

fn spark_stacks() -> Vec<(String, u64)> {
    parse_folded(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/spark.folded")).expect("fixture"))
}

fn workload() -> Vec<(String, u64)> {
    parse_folded(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/workload.folded")).expect("fixture"))
}

fn folded(stacks: &[(String, u64)], weight: impl Fn(&str) -> u64) -> String {
    stacks.iter().map(|(s, c)| format!("{s} {}\n", c * weight(s))).collect()
}

async fn import(client: &reqwest::Client, bin: &Binary, query: &str, body: String) {
    let r = client.post(bin.url(&format!("/import/folded?{query}"))).body(body).send().await.expect("POST");
    assert_eq!(r.status(), 200, "{query}: {}", r.text().await.unwrap_or_default());
}

/// Executor N weighs the shuffle writer N times; in the older hour sorting weighs three times:
/// executors and periods differ. The driver runs the small workload.
async fn load(bin: &Binary) {
    let client = reqwest::Client::new();
    let spark = spark_stacks();
    let now = now_ms();
    for minutes_ago in (5..120).step_by(20) {
        let t = now - minutes_ago * 60_000;
        for executor in 1..=3u64 {
            let body = folded(&spark, |s| {
                (if s.contains("ShuffleWriter") { executor } else { 1 }) * (if minutes_ago > 60 && s.contains("Sort") { 3 } else { 1 })
            });
            import(&client, bin, &format!("app={APP}&executor={executor}&time={t}"), body).await;
        }
        import(&client, bin, &format!("app={APP}&executor=driver&time={t}"), folded(&workload(), |_| 1)).await;
    }
    // Flink's flame graphs as stackd stores them: on-CPU and off-CPU of one vertex.
    import(&client, bin, &format!("app={FLINK}&vertex=Map&type=on_cpu"), folded(&workload(), |_| 2)).await;
    import(&client, bin, &format!("app={FLINK}&vertex=Map&type=off_cpu"), folded(&workload(), |s| if s.contains("sleep") { 7 } else { 1 }))
        .await;
    let gauge = format!("heap.total.used,hostname=h,jvmName=1@h,pid=1,prefix=spark.{GAUGES}.1 value=123.0\n");
    let r = client.post(bin.url("/write?db=p")).body(gauge).send().await.expect("POST");
    assert_eq!(r.status(), 204);
    import(&client, bin, &format!("app={}", urlencode(OTHER)), "com.example.Main.main:12 3\n".to_string()).await;
    // 20,000 distinct deep stacks: the Spark stacks, each with leaves of its own.
    let mut bodies = vec![String::new(); 4];
    for i in 0..20_000usize {
        let (stack, _) = &spark[i % spark.len()];
        bodies[i % 4].push_str(&format!("{stack};com.example.Leaf{}.work:{} {}\n", i / spark.len(), i % 97, 1 + i % 7));
    }
    for body in bodies {
        import(&client, bin, &format!("app={WIDE}"), body).await;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_in_chromium() {
    for tool in ["chromium", "chromedriver"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().expect("sh");
        assert!(found.status.success(), "{tool} not found: install the Debian packages chromium and chromium-driver (.ci/run does)");
    }
    let dir = TempDir::new("explorer");
    let empty_dir = TempDir::new("explorer-empty");
    let bin = Binary::start(&dir.0, &["--prefix-labels", "SKIP.app.executor"]);
    let empty = Binary::start(&empty_dir.0, &[]);
    load(&bin).await;
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/explorer");
    let mut child = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/explorer.py"))
        .args([&bin.url(""), &empty.url("")])
        .arg(&shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("python3 (with selenium: pip install selenium, which .ci/run does)");
    // The script bounds itself (alarm); this bounds it again, and stops its whole group.
    let deadline = Instant::now() + Duration::from_secs(360);
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
    println!("{report}");
    assert!(status.is_some_and(|s| s.success()), "the browser test failed (screenshots in {}):\n{report}", shots.display());
    assert!(report.contains("\"ok\": true"), "{report}");
    for png in [
        "index.png",
        "index-empty.png",
        "app.png",
        "table.png",
        "sandwich.png",
        "diff.png",
        "flink.png",
        "metrics-only.png",
        "not-found.png",
        "compare-pending.png",
        "error.png",
    ] {
        let size = std::fs::metadata(shots.join(png)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{png}: a screenshot of the view ({size} bytes)");
    }
    bin.stop();
    empty.stop();
}
