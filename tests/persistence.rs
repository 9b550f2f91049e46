//! Nothing lost, everything queryable: time ranges, restarts, kill -9, retention, damaged stores.
//! Restarts use the real binary.

mod common;

use std::time::Duration;

use common::{now_ms, wait_until, Binary, Service, TempDir};

async fn post(client: &reqwest::Client, url: String, body: String) -> (u16, String) {
    let r = client.post(url).body(body).send().await.expect("POST");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let r = client.get(url).send().await.expect("GET");
    (r.status().as_u16(), r.text().await.expect("body"))
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn time_ranges_across_buckets() {
    let svc = Service::start(&["--bucket", "60s"]).await;
    // Relative ranges below are read against the minute this starts in: start early in one.
    let into_minute = now_ms() % 60_000;
    if into_minute > 45_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into_minute) as u64 + 50)).await;
    }
    // Three minutes, each with its own count, stamped in seconds.
    let minute = (now_ms() / 60_000) * 60_000;
    let (t1, t2, t3) = (minute - 10 * 60_000, minute - 5 * 60_000, minute - 60_000);
    let body = format!(
        "cpu.trace.a-B-c-1,prefix=p value=1 {}\ncpu.trace.a-B-c-1,prefix=p value=10 {}\ncpu.trace.a-B-c-1,prefix=p value=100 {}\n",
        t1 / 1000,
        t2 / 1000,
        t3 / 1000
    );
    assert_eq!(post(&svc.client, svc.url("/write?db=x&precision=s"), body).await.0, 204);
    let folded = |q: String| {
        let svc = &svc;
        async move { svc.get_text(&format!("/flamegraph/p.folded{q}")).await }
    };
    assert_eq!(folded(String::new()).await, (200, "a.B.c:1 111\n".into()));
    assert_eq!(folded(format!("?from={}", t2)).await.1, "a.B.c:1 110\n", "Unix ms");
    assert_eq!(folded(format!("?from={}&to={}", t2 / 1000, t3 / 1000)).await.1, "a.B.c:1 10\n", "Unix s, to exclusive");
    assert_eq!(folded(format!("?to={}", rfc3339(t2))).await.1, "a.B.c:1 1\n", "RFC 3339");
    assert_eq!(folded("?from=-3m".into()).await.1, "a.B.c:1 100\n", "relative");
    assert_eq!(folded("?from=now-7m&to=now-2m".into()).await.1, "a.B.c:1 10\n");
    let (status, text) = folded("?from=-15m&to=-14m".into()).await;
    assert_eq!(status, 404);
    assert!(text.starts_with("app \"p\" has no stack samples from "), "{text}");
    assert_eq!(
        folded("?from=yesterday".into()).await,
        (
            400,
            "invalid from: \"yesterday\" is not a time: use now, -15m, now-1h, 2026-11-21T10:00:00Z, or Unix seconds or milliseconds\n"
                .into()
        )
    );
    assert_eq!(folded("?from=-1m&to=-2m".into()).await.0, 400);
    let svg = svc.get_text(&format!("/flamegraph/p.svg?from={}&to={}", t1, t3)).await.1;
    assert!(svg.contains(&format!("{} to {}: 11 samples, 1 stacks", rfc3339(t1), rfc3339(t3))), "subtitle");

    // Too old and too far ahead are refused, counted, and named; the good line is kept.
    let old = now_ms() - 8 * 86_400_000;
    let ahead = now_ms() + 3_600_000;
    let body = format!(
        "cpu.trace.a-B-c-1,prefix=p value=1 {old}\ncpu.trace.a-B-c-1,prefix=p value=1000\ncpu.trace.a-B-c-1,prefix=p value=1 {ahead}\n"
    );
    let (status, text) = post(&svc.client, svc.url("/write?db=x&precision=ms"), body).await;
    assert_eq!(status, 400);
    assert_eq!(
        text,
        r#"{"error":"partial write: unable to parse 'cpu.trace.a-B-c-1': timestamp older than the retention (--retention)\nunable to parse 'cpu.trace.a-B-c-1': timestamp too far in the future dropped=0"}"#
    );
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"influx\",reason=\"too_old\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"influx\",reason=\"in_future\"}").await, 1.0);
    assert_eq!(folded(String::new()).await.1, "a.B.c:1 1111\n");

    // Label values with their samples and first/last seen.
    let info: serde_json::Value = serde_json::from_str(&svc.get_text("/apps/p").await.1).expect("json");
    assert_eq!(info["total_samples"], 1111);
    assert_eq!(svc.get_text("/apps/nope").await, (404, "no data for app \"nope\"; see /apps\n".into()));
    svc.stop().await;
}

/// Data of every kind through both protocols.
async fn feed(client: &reqwest::Client, bin: &Binary) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    for d in [
        "spark.app-r.1.cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12:3|g",
        "spark.app-r.2.cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12:4|g",
        "spark.app-r.2.cpu.trace.java-util-ArrayList-<init>-166.java-lang-Thread-run-748:5|g",
        "spark.app-r.1.heap.total.used:123456789|g",
    ] {
        socket.send_to(d.as_bytes(), &bin.statsd).expect("send");
    }
    let now = now_ms();
    let body = format!(
        "cpu.trace.a-B-c-1,hostname=h,jvmName=1@h,pid=1,prefix=spark.app-r.3 value=7 {}\ncpu.trace.a-B-c-1,hostname=h,jvmName=1@h,pid=1,prefix=spark.app-r.3 value=2 {}\n",
        now - 3 * 60_000,
        now
    );
    assert_eq!(post(client, bin.url("/write?db=x&precision=ms"), body).await.0, 204);
    wait_until(Duration::from_secs(10), || async {
        get(client, bin.url("/metrics")).await.1.contains("stackd_udp_datagrams_processed_total 4")
    })
    .await;
}

const QUERIES: &[&str] = &[
    "/flamegraph/app-r.folded",
    "/flamegraph/app-r.folded?executor=2",
    "/flamegraph/app-r.folded?from=-2m",
    "/flamegraph/app-r.json",
    "/flamegraph/app-r.svg?to=now",
];

async fn answers(client: &reqwest::Client, bin: &Binary) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(get(client, bin.url(q)).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_answers_byte_for_byte() {
    let dir = TempDir::new("restart");
    let client = reqwest::Client::new();
    let args = ["--prefix-labels", "SKIP.app.executor"];
    let bin = Binary::start(&dir.0, &args);
    feed(&client, &bin).await;
    let before = answers(&client, &bin).await;
    assert_eq!(
        before[0],
        (
            200,
            "a.B.c:1 9\ncom.example.Main.main:12;java.lang.Thread.sleep:-2 7\njava.lang.Thread.run:748;java.util.ArrayList.<init>:166 5\n"
                .into()
        )
    );
    let apps_before = get(&client, bin.url("/apps")).await;
    let log = bin.stop();
    assert!(log.iter().any(|l| l.contains("stopped; everything flushed")), "{log:?}");

    let bin = Binary::start(&dir.0, &args);
    // The SVG subtitle names "now", which moved; everything else is byte for byte the same.
    let after = answers(&client, &bin).await;
    assert_eq!(&after[..4], &before[..4]);
    assert_eq!(after[4].0, 200);
    assert_eq!(get(&client, bin.url("/apps")).await, apps_before);
    let metrics = get(&client, bin.url("/metrics")).await.1;
    assert!(metrics.contains("jvm_memory_bytes_used{app=\"app-r\",area=\"heap\",executor=\"1\"} 123456789"), "gauges survive");
    // New samples add to what was there.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket.send_to(b"spark.app-r.1.cpu.trace.a-B-c-1:1|g", &bin.statsd).expect("send");
    wait_until(Duration::from_secs(10), || async { get(&client, bin.url("/flamegraph/app-r.folded")).await.1.contains("a.B.c:1 10\n") })
        .await;
    bin.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_nothing_that_was_flushed() {
    let dir = TempDir::new("kill9");
    let client = reqwest::Client::new();
    let args = ["--prefix-labels", "SKIP.app.executor", "--flush-interval", "200ms"];
    let bin = Binary::start(&dir.0, &args);
    feed(&client, &bin).await;
    let before = get(&client, bin.url("/flamegraph/app-r.folded")).await;
    // Two flushes after the data arrived: it is on disk.
    let flushes = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("stackd_store_flush_duration_seconds_count "))
            .map_or(0, |v| v.parse::<u64>().expect("count"))
    };
    let start = flushes(&get(&client, bin.url("/metrics")).await.1);
    wait_until(Duration::from_secs(10), || async { flushes(&get(&client, bin.url("/metrics")).await.1) >= start + 2 }).await;
    bin.kill9();
    let bin = Binary::start(&dir.0, &args);
    assert_eq!(get(&client, bin.url("/flamegraph/app-r.folded")).await, before);
    bin.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_writes_are_durable_when_answered() {
    let dir = TempDir::new("sync");
    let client = reqwest::Client::new();
    let args = ["--sync-writes", "--flush-interval", "1h"];
    let bin = Binary::start(&dir.0, &args);
    // Concurrent writers share commits; every one is durable when answered.
    let writes = (0..8).map(|i| {
        let (client, url) = (client.clone(), bin.url("/write?db=x"));
        async move { post(&client, url, format!("cpu.trace.a-B-w{i}-1,prefix=p value=1\n")).await }
    });
    for (status, body) in futures_join_all(writes).await {
        assert_eq!((status, body.as_str()), (204, ""));
    }
    bin.kill9();
    let bin = Binary::start(&dir.0, &args);
    let folded = get(&client, bin.url("/flamegraph/p.folded")).await.1;
    assert_eq!(folded.lines().count(), 8, "{folded}");
    bin.stop();
}

async fn futures_join_all<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(futs: impl Iterator<Item = F>) -> Vec<T> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_drops_old_buckets() {
    let dir = TempDir::new("retention");
    let client = reqwest::Client::new();
    let args = ["--bucket", "1s", "--retention", "3s", "--memory-window", "1s", "--flush-interval", "200ms"];
    let bin = Binary::start(&dir.0, &args);
    assert_eq!(post(&client, bin.url("/write?db=x"), "cpu.trace.a-B-c-1,prefix=p value=5\n".into()).await.0, 204);
    assert_eq!(get(&client, bin.url("/flamegraph/p.folded")).await, (200, "a.B.c:1 5\n".into()));
    let old = format!("cpu.trace.a-B-c-1,prefix=p value=1 {}\n", now_ms() - 10_000);
    assert_eq!(post(&client, bin.url("/write?db=x&precision=ms"), old).await.0, 400, "older than the retention");
    // Within a few seconds the bucket leaves memory, then the disk.
    wait_until(Duration::from_secs(15), || async { get(&client, bin.url("/flamegraph/p.folded")).await.0 == 404 }).await;
    let log = bin.stop();
    assert!(!log.iter().any(|l| l.contains("ERROR")), "{log:?}");
    let bin = Binary::start(&dir.0, &args);
    assert_eq!(get(&client, bin.url("/flamegraph/p.folded")).await.0, 404, "gone from disk too");
    bin.stop();
}

/// stackd refused to start: exit code 1 and exactly this one line on stderr.
fn assert_refused(out: &std::process::Output, line: String) {
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("stackd: {line}\n"));
}

/// Run stackd on `dir` once (it is expected to refuse to start).
fn start_on(dir: &std::path::Path) -> std::process::Output {
    start_on_with(dir, &[])
}

fn start_on_with(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stackd"))
        .args(["--statsd-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .expect("run")
}

#[test]
fn a_damaged_store_is_refused_and_kept() {
    let dir = TempDir::new("damaged");
    let file = dir.0.join("stackd.redb");
    std::fs::write(&file, b"not a database").expect("write");
    assert_refused(
        &start_on(&dir.0),
        format!(
            "{} is damaged: I/O error: Not a redb database: magic number mismatch; stackd never deletes data, move the file away to start empty",
            file.display()
        ),
    );
    assert_eq!(std::fs::read(&file).expect("still there"), b"not a database");
}

/// Damage inside the file (not its header) used to panic in the storage library at start-up,
/// with the file unnamed, and the open had already modified the file. Now each damage that
/// stops start-up is one line naming the file, and the file is left byte for byte as it was.
#[tokio::test]
async fn a_store_damaged_in_its_middle_is_refused_untouched() {
    let dir = TempDir::new("middle");
    let bin = Binary::start(&dir.0, &["--prefix-labels", "SKIP.app.executor"]);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    for i in 0..600u32 {
        let frames: Vec<String> = (0..20).map(|j| format!("com.ex.C{}.m{j}:{}", (i * 7 + j) % 301, (i + j) % 97 + 1)).collect();
        let frames: Vec<&str> = frames.iter().map(String::as_str).collect();
        let name = format!("spark.app{}.{}.{}:{}|g", i % 7, i % 5, common::agent_stack_name(&frames), i % 9 + 1);
        socket.send_to(name.as_bytes(), &bin.statsd).expect("send");
        if i % 100 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    bin.stop();
    let file = dir.0.join("stackd.redb");
    let clean = std::fs::read(&file).expect("store");
    let mut refused = 0;
    for eighth in 1..=6 {
        let mut damaged = clean.clone();
        let at = clean.len() * eighth / 8 / 4096 * 4096;
        damaged[at..at + 4096].fill(0);
        std::fs::write(&file, &damaged).expect("write");
        let (code, stderr) = run_briefly(&dir.0);
        if code == Some(1) {
            refused += 1;
            let prefix = format!("stackd: {} is damaged: ", file.display());
            assert!(
                stderr.starts_with(&prefix) && stderr.ends_with("; stackd never deletes data, move the file away to start empty\n"),
                "{stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(std::fs::read(&file).expect("still there") == damaged, "a refused store is not modified");
        } else {
            // Damage where start-up does not read (a bucket page) is found later; stackd ran.
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    assert!(refused >= 3, "the damaged metadata pages were found: {refused} of 6 refused");
}

/// Start stackd on `dir`; its exit code and stderr if it stops within 5 s, else kill it (it
/// started) and return `None` with what it logged.
fn run_briefly(dir: &std::path::Path) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stackd"))
        .args(["--statsd-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().expect("stderr").read_to_string(&mut stderr);
    (code, stderr)
}

#[test]
fn a_newer_store_format_is_refused() {
    let dir = TempDir::new("newer");
    let file = dir.0.join("stackd.redb");
    {
        let db = redb::Database::create(&file).expect("create");
        let w = db.begin_write().expect("write");
        w.open_table(redb::TableDefinition::<&str, u64>::new("meta")).expect("table").insert("format", 99).expect("insert");
        w.commit().expect("commit");
    }
    assert_refused(
        &start_on(&dir.0),
        format!("{} was written by a newer stackd (format 99, this one reads 1); refusing to start rather than risk it", file.display()),
    );
}

/// A 16 MiB tmpfs, unmounted when dropped. Needs root (as .ci/run has).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(tag: &str) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!("stackd-small-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ok = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"]).arg(&dir).status().expect("mount");
        assert!(ok.success(), "mounting a tmpfs needs root: run the tests as .ci/run does");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_counted_served_through_and_recovered() {
    let disk = SmallDisk::mount("full");
    let data = disk.0.join("data");
    let filler = disk.0.join("filler");
    let client = reqwest::Client::new();
    let args = ["--flush-interval", "100ms"];
    let bin = Binary::start(&data, &args);
    // Fill the disk so that flushes fail, then keep writing.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        while f.write_all(&[0u8; 64 * 1024]).is_ok() {}
    }
    let mut total = 0;
    for batch in 0..20 {
        let body: String = (0..2000).map(|i| format!("cpu.trace.org-example-B{batch}-m{i}-{i},prefix=p value=1\n")).collect();
        assert_eq!(post(&client, bin.url("/write?db=x"), body).await.0, 204);
        total += 2000;
    }
    let failures =
        |text: &str| text.lines().find_map(|l| l.strip_prefix("stackd_store_flush_failures_total ")).map_or(0.0, |v| v.parse().expect("n"));
    wait_until(Duration::from_secs(10), || async { failures(&get(&client, bin.url("/metrics")).await.1) >= 1.0 }).await;
    // Still serving everything from memory.
    assert_eq!(get(&client, bin.url("/flamegraph/p.folded")).await.1.lines().count(), total);
    // Room again: the next flushes succeed and write it all; a restart shows it.
    std::fs::remove_file(&filler).expect("free space");
    let log = bin.stop();
    assert!(log.iter().any(|l| l.contains("stopped; everything flushed")), "{log:?}");
    let bin = Binary::start(&data, &args);
    assert_eq!(get(&client, bin.url("/flamegraph/p.folded")).await.1.lines().count(), total);
    bin.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_filed_by_another_bucket_width_is_refused() {
    let dir = TempDir::new("bucket");
    Binary::start(&dir.0, &["--bucket", "60s"]).stop();
    assert_refused(
        &start_on_with(&dir.0, &["--bucket", "10s"]),
        format!(
            "{} was written with --bucket 60000ms and stackd was started with --bucket 10000ms; start with the same --bucket (the stored counts are filed by it)",
            dir.0.join("stackd.redb").display()
        ),
    );
}
