//! The embedded store at size: 50 apps × 5,000 distinct stacks × 24 h of one-minute buckets.
//!
//! Generates the store through the library (each app has 4 executors; each minute each app
//! samples 1,000 of its 5,000 stacks, skewed towards a hot few, counts 1–5), then measures:
//! bytes on disk per (stack, bucket) entry, the real binary's restart time and RSS, and query
//! times for 1 h and 24 h over HTTP (median of 9) and in-process (criterion).
//!
//! Run: `cargo bench --bench store`. Smaller: `STACKD_BENCH_APPS=5 STACKD_BENCH_HOURS=2 cargo bench --bench store`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use stackd::sample::{Encoding, Stack};
use stackd::store::{Limits, Query, SourceSpec, Store, StoreConfig};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

static SEMICOLONS: Encoding = Encoding { id: 7, decode: frames };

fn frames(text: &str, sink: &mut dyn FnMut(&str)) {
    text.split(';').for_each(sink);
}

/// A small deterministic generator (xorshift), so that every run stores the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        limits: Limits { max_apps: 1000, max_stacks_per_app: 100_000, ..Limits::default() },
        bucket: Duration::from_secs(60),
        retention: Duration::from_secs(7 * 86_400),
        memory_window: Duration::from_secs(15 * 60),
        max_future: Duration::from_secs(600),
        data_dir: Some(dir.to_path_buf()),
        family: stackd::input::family,
        outbox: false,
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let (apps, stacks, hours, per_minute) = (
        env("STACKD_BENCH_APPS", 50),
        env("STACKD_BENCH_STACKS", 5000),
        env("STACKD_BENCH_HOURS", 24),
        env("STACKD_BENCH_PER_MINUTE", 1000),
    );
    let dir = std::env::temp_dir().join(format!("stackd-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let now = now_ms();
    let start = now - hours as i64 * 3_600_000;

    // Stack texts: 8–40 frames from a vocabulary of 4,000 JVM-like frames.
    let mut rng = Rng(0x5eed);
    let vocabulary: Vec<String> =
        (0..4000).map(|i| format!("org.example.pkg{}.Class{}.method{}:{}", i % 37, i % 211, i, 10 + i % 900)).collect();
    let texts: Vec<String> = (0..stacks)
        .map(|i| {
            let depth = 8 + rng.below(33) as usize;
            let mut f = vec!["java.lang.Thread.run:748".to_string(), format!("org.example.Entry.task{}:1", i % 50)];
            f.extend((0..depth).map(|_| vocabulary[rng.below(vocabulary.len() as u64) as usize].clone()));
            f.push(format!("org.example.Leaf.unique{i}:1"));
            f.join(";")
        })
        .collect();

    let generated = Instant::now();
    let mut entries = 0u64;
    let mut app0_samples = 0u64;
    {
        let store = Store::open(config(&dir), now).expect("open");
        let sources: Vec<Vec<_>> = (0..apps)
            .map(|a| {
                (0..4)
                    .map(|e| {
                        let spec = SourceSpec::new(format!("app-{a}"), vec![("executor".into(), e.to_string())]);
                        store.source((a * 4 + e) as u64, || spec).expect("source")
                    })
                    .collect()
            })
            .collect();
        for minute in 0..hours * 60 {
            let t = start + minute as i64 * 60_000;
            for app_sources in &sources {
                let first_app = std::ptr::eq(app_sources, &sources[0]);
                for _ in 0..per_minute {
                    // Skewed: squaring a uniform pick favours low stack numbers.
                    let u = rng.below(1 << 16) as f64 / 65536.0;
                    let s = ((u * u) * stacks as f64) as usize;
                    let source = &app_sources[rng.below(4) as usize];
                    let raw = Stack::Encoded { encoding: &SEMICOLONS, text: &texts[s] };
                    let count = 1 + rng.below(5);
                    store.add_stack_now(source, &raw, count, t, now).expect("in range");
                    if first_app {
                        app0_samples += count;
                    }
                }
            }
            if minute % 60 == 59 {
                store.flush(now).expect("flush");
            }
        }
        store.flush(now).expect("flush");
        for app in store.apps() {
            entries += store.query(&app, &Query::default()).expect("readable").map_or(0, |p| p.stacks.len() as u64);
        }
    }
    let gen_secs = generated.elapsed().as_secs_f64();
    let file = dir.join("stackd.redb");
    let bytes = std::fs::metadata(&file).expect("store file").len();
    // Entries actually stored: distinct (label set, stack) per bucket, counted from the blobs.
    let stored_entries = {
        let store = Store::open(config(&dir), now).expect("reopen");
        let mut n = 0u64;
        for app in store.apps() {
            for m in 0..hours * 60 {
                let from = start + m as i64 * 60_000;
                let q = Query { from_ms: Some(from), to_ms: Some(from + 60_000), labels: vec![], ..Default::default() };
                n += store.query(&app, &q).expect("readable").map_or(0, |p| p.stacks.len() as u64);
            }
        }
        n
    };
    println!("generated {apps} apps x {stacks} stacks x {hours} h in {gen_secs:.1} s ({entries} distinct stacks kept)");
    println!(
        "store file: {:.1} MiB for {stored_entries} (stack, bucket) entries: {:.2} bytes per entry",
        bytes as f64 / 1048576.0,
        bytes as f64 / stored_entries.max(1) as f64
    );

    // In-process restart.
    let opens: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            drop(Store::open(config(&dir), now).expect("open"));
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    println!("Store::open (metadata load), median of 5: {:.0} ms", median(opens));

    // The real binary: restart time, RSS, HTTP query times.
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackd"))
        .args(["--statsd-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .expect("stackd");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let listening = lines.by_ref().map_while(Result::ok).find(|l| l.contains("stackd listening")).expect("listening");
    let restart_ms = started.elapsed().as_secs_f64() * 1000.0;
    let http = listening.split("http_addr=").nth(1).and_then(|s| s.split_whitespace().next()).expect("addr").to_string();
    println!("binary restart (spawn to listening): {restart_ms:.0} ms; RSS after start: {} MiB", rss_kib(child.id()) / 1024);
    let time_query = |range: &str| {
        let url = format!("http://{http}/flamegraph/app-0.folded?from={range}");
        let runs: Vec<f64> = (0..9)
            .map(|_| {
                let t = Instant::now();
                let out = Command::new("curl").args(["-sf", "-o", "/dev/null", &url]).status().expect("curl");
                assert!(out.success(), "{url}");
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        median(runs)
    };
    let (q1, q24) = (time_query("-1h"), time_query(&format!("-{hours}h")));
    println!("HTTP folded query, one app, median of 9: 1 h {q1:.0} ms, {hours} h {q24:.0} ms");
    println!("RSS after queries: {} MiB", rss_kib(child.id()) / 1024);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();

    // In-process query cost, with criterion's statistics.
    let store = Arc::new(Store::open(config(&dir), now).expect("open"));
    let app = store.app("app-0").expect("app-0");
    // The whole range, read back from disk after a restart, holds every sample generated.
    let all = store
        .query(&app, &Query { from_ms: Some(start), to_ms: None, labels: vec![], ..Default::default() })
        .expect("readable")
        .expect("profile");
    assert_eq!(all.total, app0_samples, "24 h query total");
    println!("24 h query of app-0 returns all {app0_samples} generated samples");
    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut g = c.benchmark_group("store_query");
    for (name, from) in [("1h", now - 3_600_000), ("24h", start)] {
        let q = Query { from_ms: Some(from), to_ms: None, labels: vec![], ..Default::default() };
        g.bench_function(name, |b| b.iter(|| store.query(&app, &q).map(|p| p.map(|p| p.total))));
    }
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
