//! `POST /import/jfr`: real recordings of the JDK's Flight Recorder and async-profiler 2.9 (the
//! copy inside the apache-flink wheel), made here by real JVMs, read exactly as the JDK's own
//! `jfr print` reads them (tests/fixtures/jfr/jfr_expected.py); and the recordings a file can
//! come as: cut off, damaged, too large, not JFR at all.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Service;
use serde_json::Value;

type Expected = BTreeMap<String, BTreeMap<String, u64>>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jfr")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

/// What the JDK's reader finds in a recording, per type, as stackd's `.folded` writes it.
fn expected(path: &Path) -> Expected {
    let out = Command::new("python3").arg(fixtures().join("jfr_expected.py")).arg("--folded").arg(path).output().expect("python3");
    assert!(out.status.success(), "jfr_expected.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Recordings outlive the default retention: the fixtures were made on the day they were.
const ARGS: &[&str] = &["--retention", "36500d", "--bucket", "1s"];

async fn import(svc: &Service, query: &str, body: Vec<u8>) -> (u16, Value) {
    let r = svc.client.post(svc.url(&format!("/import/jfr?{query}"))).body(body).send().await.expect("POST");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Per type, the app's stacks as `/flamegraph/<app>.folded?type=` serves them.
async fn stored(svc: &Service, app: &str, types: impl Iterator<Item = &String>) -> Expected {
    let mut out = Expected::new();
    for t in types {
        let (status, text) = svc.get_text(&format!("/flamegraph/{app}.folded?type={t}")).await;
        assert_eq!(status, 200, "{app} {t}: {text}");
        out.insert(t.clone(), common::parse_folded(&text).into_iter().collect());
    }
    out
}

/// Imported, the recording reads as the JDK reads it: every type, every stack, every count; and
/// the answer's totals are those.
async fn check_import(svc: &Service, app: &str, path: &Path) -> (Value, Expected) {
    let want = expected(path);
    let (status, answer) = import(svc, &format!("app={app}&executor=1"), std::fs::read(path).expect("read")).await;
    assert_eq!(status, 200, "{answer}");
    let answered: Vec<&String> = answer["types"].as_object().expect("types").keys().collect();
    assert_eq!(answered, want.keys().collect::<Vec<_>>(), "{answer}");
    for (t, stacks) in &want {
        assert_eq!(answer["types"][t]["total"].as_u64(), Some(stacks.values().sum::<u64>()), "{t}: {answer}");
    }
    assert_eq!(stored(svc, app, want.keys()).await, want, "{app}");
    (answer, want)
}

#[tokio::test]
async fn recordings_of_the_jdk_and_async_profiler_read_as_jfr_print_reads_them() {
    let svc = Service::start(ARGS).await;
    for name in ["jdk-profile", "ap-itimer", "ap-wall", "ap-alloc", "ap-lock"] {
        check_import(&svc, name, &fixtures().join(format!("{name}.jfr"))).await;
    }
    // The app's types, with units; cpu shown when no type is asked for, and never summed
    // with another type.
    let info: Value = serde_json::from_str(&svc.get_text("/apps/jdk-profile").await.1).expect("json");
    let types: Vec<(&str, &str)> = info["types"]
        .as_array()
        .expect("types")
        .iter()
        .map(|t| (t["type"].as_str().expect("ok"), t["unit"].as_str().expect("ok")))
        .collect();
    assert_eq!(
        types,
        [
            ("cpu", "samples"),
            ("wall", "samples"),
            ("alloc_bytes", "bytes"),
            ("alloc_objects", "objects"),
            ("lock_ns", "nanoseconds"),
            ("lock_count", "count")
        ]
    );
    assert_eq!(info["default_type"], "cpu");
    // The JDK samples on-CPU stacks every 10 ms (settings=profile): the samples read as time.
    let cpu_total = info["types"][0]["total"].as_u64().expect("cpu total");
    assert_eq!(info["types"][0]["time_ns"].as_u64(), Some(cpu_total * 10_000_000), "{info}");
    let (_, svg) = svc.get_text("/flamegraph/jdk-profile.svg").await;
    let at = format!("{cpu_total} samples ≈ {} at 10.0 ms", seconds(cpu_total * 10_000_000));
    assert!(svg.contains(&at), "the subtitle says {at:?}");
    let cpu = svc.get_text("/flamegraph/jdk-profile.folded").await.1;
    assert_eq!(cpu, svc.get_text("/flamegraph/jdk-profile.folded?type=cpu").await.1);
    let wall_only: Value = serde_json::from_str(&svc.get_text("/apps/ap-wall").await.1).expect("json");
    assert_eq!(wall_only["default_type"], "wall", "an app without cpu shows its first type");
    // The SVG speaks the type's unit.
    let (status, svg) = svc.get_text("/flamegraph/ap-lock.svg?type=lock_ns").await;
    assert_eq!(status, 200);
    let total: u64 = info_total(&svc, "ap-lock", "lock_ns").await;
    assert!(svg.contains(&format!("({total} nanoseconds)")), "the subtitle has the exact total");
    assert!(svg.contains(" nanoseconds, 100%)"), "tooltips count nanoseconds");
    let (status, text) = svc.get_text("/flamegraph/ap-lock.svg?type=cpu").await;
    assert_eq!((status, text.as_str()), (404, "app \"ap-lock\" has no cpu samples; its profile types: lock_ns, lock_count (type=)\n"));
    let (status, text) = svc.get_text("/flamegraph/ap-lock.svg?type=heap").await;
    assert_eq!(status, 400);
    assert!(text.starts_with("invalid type=\"heap\": one of cpu, wall, off_cpu, alloc_bytes"), "{text}");
    assert_eq!(svc.metric("stackd_jfr_chunks_total{input=\"import\",outcome=\"stored\"}").await, 5.0);
    let series = "stackd_profile_total{app=\"ap-lock\",type=\"lock_ns\",unit=\"nanoseconds\"}";
    assert_eq!(svc.metric(series).await, total as f64, "each type in its unit on /metrics");
    svc.stop().await;
}

/// Nanoseconds as stackd writes them (`1.23 s`, `680 ms`): three significant digits.
fn seconds(ns: u64) -> String {
    let (v, unit) = if ns >= 1_000_000_000 { (ns as f64 / 1e9, "s") } else { (ns as f64 / 1e6, "ms") };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {unit}")
}

async fn info_total(svc: &Service, app: &str, t: &str) -> u64 {
    let info: Value = serde_json::from_str(&svc.get_text(&format!("/apps/{app}")).await.1).expect("json");
    info["types"].as_array().expect("types").iter().find(|x| x["type"] == t).and_then(|x| x["total"].as_u64()).expect("the type")
}

/// async-profiler 2.9 run here, now, on a real JVM in each of its modes: every type it records
/// is stored as the JDK's reader reads the same file.
#[tokio::test]
async fn async_profiler_run_now_in_each_mode() {
    let dir = common::TempDir::new("ap-live");
    let work = &dir.0;
    std::fs::create_dir_all(work).expect("work dir");
    let (_, ap) = common::async_profiler(work);
    let javac = Command::new("javac")
        .arg("-d")
        .arg(work)
        .arg(fixtures().join("Workload.java"))
        .arg(fixtures().join("Contended.java"))
        .status()
        .expect("javac");
    assert!(javac.success());
    let svc = Service::start(ARGS).await;
    for (mode, main, types) in [
        ("itimer", "Workload", &["cpu"][..]),
        ("cpu", "Workload", &["cpu"]),
        ("wall", "Workload", &["wall"]),
        ("alloc", "Workload", &["alloc_bytes", "alloc_objects"]),
        ("lock", "Contended", &["lock_count", "lock_ns"]),
    ] {
        let file = work.join(format!("{mode}.jfr"));
        let agent = format!("-agentpath:{}=start,event={mode},file={},jfr", ap.display(), file.display());
        let run = Command::new("timeout").args(["60", "java", &agent, "-cp"]).arg(work).args([main, "1"]).output().expect("java");
        assert!(run.status.success(), "{mode}: {}", String::from_utf8_lossy(&run.stderr));
        let (_, want) = check_import(&svc, &format!("live-{mode}"), &file).await;
        assert_eq!(want.keys().map(String::as_str).collect::<Vec<_>>(), types, "{mode}");
    }
    svc.stop().await;
}

#[tokio::test]
async fn gzip_and_many_chunks() {
    let svc = Service::start(ARGS).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &fixture("ap-multichunk.jfr")).expect("gzip");
    // As curl --data-binary @x.jfr.gz sends it, with or without Content-Encoding.
    let (status, answer) = import(&svc, "app=zipped", gz.finish().expect("gzip")).await;
    assert_eq!((status, answer["chunks"].as_u64()), (200, Some(2)), "{answer}");
    let mut want = expected(&fixtures().join("ap-itimer.jfr"));
    want.extend(expected(&fixtures().join("ap-alloc.jfr")));
    assert_eq!(stored(&svc, "zipped", want.keys()).await, want);
    svc.stop().await;
}

#[tokio::test]
async fn bad_recordings_are_refused_whole_or_kept_up_to_the_damage() {
    let svc = Service::start(ARGS).await;
    let itimer = fixture("ap-itimer.jfr");
    let refused = |answer: &Value| answer.as_object().and_then(|o| o.get("error")).and_then(Value::as_str).unwrap_or_default().to_string();
    // Nothing readable: 400, nothing stored.
    for (what, body, message) in [
        ("empty", Vec::new(), "not a JFR recording stackd can read: the body is empty; nothing stored"),
        (
            "random bytes",
            (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(),
            "not a JFR recording stackd can read: not a JFR file (it starts with",
        ),
        (
            "cut in its first chunk",
            itimer[..itimer.len() / 2].to_vec(),
            "not a JFR recording stackd can read: the chunk is incomplete: its header says",
        ),
        ("a header alone", itimer[..68].to_vec(), "not a JFR recording stackd can read: the chunk is incomplete"),
    ] {
        let (status, answer) = import(&svc, &format!("app=bad-{}", what.replace(' ', "-")), body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(refused(&answer).starts_with(message), "{what}: {answer}");
    }
    // A chunk that claims 2 GB: refused before anything is read or allocated.
    let mut huge = itimer.clone();
    huge[8..16].copy_from_slice(&(2i64 << 30).to_be_bytes());
    let (status, answer) = import(&svc, "app=huge", huge).await;
    assert_eq!(status, 400);
    assert!(
        refused(&answer).contains("the chunk is 2147483648 bytes, over the 134217728 bytes stackd reads at once (--max-jfr-chunk-size)"),
        "{answer}"
    );
    let apps: Value = serde_json::from_str(&svc.get_text("/apps").await.1).expect("json");
    assert_eq!(apps.as_array().map(Vec::len), Some(0), "nothing half-stored: {apps}");
    // A recording cut in its second chunk (Spark's copy while it is written): the first chunk
    // is kept, the rest reported and counted.
    let multi = fixture("ap-multichunk.jfr");
    let (status, answer) = import(&svc, "app=cut", multi[..itimer.len() + 1000].to_vec()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["chunks"], 1);
    assert_eq!(answer["types"]["cpu"]["total"].as_u64(), Some(expected(&fixtures().join("ap-itimer.jfr"))["cpu"].values().sum()));
    let incomplete = answer["incomplete"].as_str().expect("said");
    assert!(incomplete.starts_with(&format!("chunk 2 at byte {}: the chunk is incomplete", itimer.len())), "{incomplete}");
    assert!(answer["types"].get("alloc_bytes").is_none());
    assert_eq!(svc.metric("stackd_jfr_chunks_total{input=\"import\",outcome=\"incomplete\"}").await, 3.0);
    assert_eq!(svc.metric("stackd_jfr_chunks_total{input=\"import\",outcome=\"too_large\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_jfr_chunks_total{input=\"import\",outcome=\"damaged\"}").await, 1.0);
    // Samples older than the retention are refused and said so; the rest of the recording is kept.
    let (status, text) = import(&svc, "app=x&time=now", itimer.clone()).await;
    assert_eq!(status, 400, "{text}");
    svc.stop().await;
    // The fixture was recorded more than a minute before any run of this test.
    let svc = Service::start(&["--retention", "1m"]).await;
    let (status, answer) = import(&svc, "app=old", itimer).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["types"]["cpu"]["total"], 0);
    assert!(answer["types"]["cpu"]["refused"].as_u64().unwrap_or(0) > 0, "{answer}");
    assert_eq!(answer["refused"], "some samples were refused: timestamp older than the retention (--retention)");
    svc.stop().await;
}

/// A real recording of about 250,000 allocations, each from a call path of its own (2^18
/// paths: tests/fixtures/jfr/ManyStacks.java under async-profiler's alloc mode): stored with
/// every allocation counted, the stacks beyond `--max-stacks-per-app` under the overflow frame,
/// and stackd's memory bounded.
#[tokio::test]
async fn a_recording_of_a_quarter_million_distinct_stacks() {
    let dir = common::TempDir::new("many-stacks");
    let work = &dir.0;
    let (_, ap) = common::async_profiler(work);
    let javac = Command::new("javac").arg("-d").arg(work).arg(fixtures().join("ManyStacks.java")).status().expect("javac");
    assert!(javac.success());
    let file = work.join("many.jfr");
    let agent = format!("-agentpath:{}=start,event=alloc,alloc=1,file={},jfr", ap.display(), file.display());
    let run = Command::new("timeout")
        .args(["120", "java", "-XX:-UseTLAB", &agent, "-cp"])
        .arg(work)
        .args(["ManyStacks", "18"])
        .output()
        .expect("java");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let events = common::jfr_summary_count(&file, "jdk.ObjectAllocationInNewTLAB");
    assert!(events > 150_000, "{events} allocations recorded");

    let data = common::TempDir::new("many-stacks-data");
    let bin = common::Binary::start(&data.0, &["--retention", "36500d"]);
    let r = reqwest::Client::new()
        .post(bin.url("/import/jfr?app=many"))
        .body(std::fs::read(&file).expect("read"))
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(answer["types"]["alloc_objects"]["total"].as_u64(), Some(events), "every allocation counted: {answer}");
    let info: Value = serde_json::from_str(&bin.get_text("/apps/many").await.1).expect("json");
    assert_eq!(info["unique_stacks"], 100_000, "the stack limit holds");
    let (_, folded) = bin.get_text("/flamegraph/many.folded?type=alloc_objects").await;
    let lines = common::parse_folded(&folded);
    assert_eq!(lines.iter().map(|(_, c)| c).sum::<u64>(), events, "totals stay right");
    let overflow = lines.iter().find(|(s, _)| s == "[stackd: unique stack limit reached]").map(|(_, c)| *c).expect("the overflow frame");
    assert!(overflow > 0 && events - overflow >= 100_000, "{overflow} allocations over the limit, the rest in 100,000 stacks");
    let metrics = bin.get_text("/metrics").await.1;
    assert!(common::series_value(&metrics, "stackd_limit_hits_total{limit=\"stacks\"}").unwrap_or(0.0) > 0.0);
    let status = std::fs::read_to_string(format!("/proc/{}/status", bin.child.id())).expect("status");
    let hwm_kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix(" kB")?.trim().parse().ok()).expect("VmHWM");
    let mb = std::fs::metadata(&file).expect("size").len() >> 20;
    assert!(hwm_kb < 400 * 1024, "peak RSS {hwm_kb} kB for a {mb} MB recording");
    eprintln!("peak RSS {} MiB importing a {mb} MB recording of {events} allocations", hwm_kb >> 10);
    bin.stop();
}
