//! `--jfr-dir`: Spark 4's profiler layout on a shared file system, written as Spark writes it
//! (a recording appended chunk by chunk, the last chunk arriving in pieces), read by the real
//! stackd binary across a restart: every whole chunk counted exactly once, a half-written chunk
//! not before it is whole, a damaged file reported once. The recordings are real
//! (async-profiler 2.9 and JDK 17, tests/fixtures/jfr).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Binary, TempDir};
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jfr").join(name)).expect("fixture")
}

/// The totals per type `GET /apps/<app>` reports (empty when the app is unknown).
async fn totals(bin: &Binary, app: &str) -> BTreeMap<String, u64> {
    let (status, text) = bin.get_text(&format!("/apps/{app}")).await;
    if status == 404 {
        return BTreeMap::new();
    }
    let info: Value = serde_json::from_str(&text).expect("json");
    info["types"]
        .as_array()
        .expect("types")
        .iter()
        .map(|t| (t["type"].as_str().expect("type").to_string(), t["total"].as_u64().expect("total")))
        .collect()
}

/// Wait (30 s at most) until `app`'s totals are `want`.
async fn wait_for(bin: &Binary, app: &str, want: &BTreeMap<String, u64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = totals(bin, app).await;
        if &got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{app}: {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metric(bin: &Binary, series: &str) -> f64 {
    let text = bin.get_text("/metrics").await.1;
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

/// The totals of a recording imported whole into a fresh stackd.
async fn whole(data: &Path, jfr: &[u8]) -> BTreeMap<String, u64> {
    let bin = Binary::start(data, &["--retention", "36500d"]);
    let r = reqwest::Client::new().post(bin.url("/import/jfr?app=whole")).body(jfr.to_vec()).send().await.expect("import");
    assert_eq!(r.status(), 200);
    let t = totals(&bin, "whole").await;
    bin.stop();
    t
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open");
    f.write_all(bytes).expect("append");
}

#[tokio::test]
async fn a_growing_recording_is_counted_once_across_a_restart() {
    let (data, shared, reference) = (TempDir::new("jfrdir-data"), TempDir::new("jfrdir-shared"), TempDir::new("jfrdir-ref"));
    let itimer = fixture("ap-itimer.jfr");
    let multi = fixture("ap-multichunk.jfr"); // ap-itimer's chunk, then ap-alloc's
    let first = whole(&reference.0, &itimer).await;
    let both = whole(&TempDir::new("jfrdir-ref2").0, &multi).await;
    assert!(both.contains_key("alloc_bytes") && first.len() == 1, "{first:?} {both:?}");

    let app_dir = shared.0.join("app-20261203121500-0007");
    std::fs::create_dir_all(&app_dir).expect("dir");
    let file = app_dir.join("profile-exec-3.jfr");
    let args = ["--retention", "36500d", "--jfr-dir", shared.0.to_str().expect("utf-8"), "--jfr-scan-interval", "100ms"];
    let bin = Binary::start(&data.0, &args);
    // The first chunk and half the second, as the first appends leave it.
    append(&file, &multi[..itimer.len() + (multi.len() - itimer.len()) / 2]);
    wait_for(&bin, "app-20261203121500-0007", &first).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(totals(&bin, "app-20261203121500-0007").await, first, "the half-written chunk is not read");
    let info: Value = serde_json::from_str(&bin.get_text("/apps/app-20261203121500-0007").await.1).expect("json");
    assert_eq!(info["labels"]["executor"]["3"]["samples"], first["cpu"], "labelled with its executor");
    bin.stop();

    // The rest arrives while stackd is down; after the restart only the new chunk is added.
    append(&file, &multi[itimer.len() + (multi.len() - itimer.len()) / 2..]);
    let bin = Binary::start(&data.0, &args);
    wait_for(&bin, "app-20261203121500-0007", &both).await;
    // Scans go on; nothing is counted twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(totals(&bin, "app-20261203121500-0007").await, both);
    assert_eq!(metric(&bin, "stackd_jfr_chunks_total{input=\"dir\",outcome=\"stored\"}").await, 1.0, "one chunk read by this run");

    // A plain recording in the dir, and a damaged one: reported once, never retried.
    std::fs::write(shared.0.join("nightly.jfr"), fixture("ap-lock.jfr")).expect("write");
    let mut broken = fixture("ap-lock.jfr");
    let meta = u64::from_be_bytes(broken[24..32].try_into().expect("8 bytes")) as usize;
    broken[meta + 12..meta + 40].fill(0xff);
    std::fs::write(app_dir.join("profile-driver.jfr"), &broken).expect("write");
    let deadline = Instant::now() + Duration::from_secs(30);
    while totals(&bin, "nightly").await.len() != 2 {
        assert!(Instant::now() < deadline, "nightly.jfr read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metric(&bin, "stackd_jfr_chunks_total{input=\"dir\",outcome=\"damaged\"}").await, 1.0, "reported once");
    let failed = format!("stackd_jfr_file_failed{{file=\"{}\"}}", app_dir.join("profile-driver.jfr").display());
    assert_eq!(metric(&bin, &failed).await, 1.0);
    let log = bin.stop();
    assert_eq!(
        log.iter().filter(|l| l.contains("a JFR file is not read any further") && l.contains("profile-driver.jfr")).count(),
        1,
        "{log:?}"
    );
}
