//! stackd-load: profiler-shaped load for stackd (or any statsd / InfluxDB peer), with the checks
//! that make a figure worth reporting.
//!
//! * UDP: statsd-jvm-profiler datagrams (one stack each, built from JFR recordings of real JVM
//!   stacks: `--fixture workload`, about 1 KB, or `spark`, Spark executors', about 2 KB), at
//!   `--udp-rate` datagrams per second or flat out (`0`). By default the realistic mix of
//!   prefixes: `--executors` executors of `--apps` apps, each flushing `--lines` stacks of its own
//!   window of the rotation in turn, prefixed `spark.<app>.<executor>` as the agent's
//!   `prefix=spark.{{APP_ID}}.{{EXECUTOR_ID}}` does; `--executors 0` sends every stack under the
//!   one prefix `<app>-udp`.
//! * HTTP: `/write` bodies of `--lines` profiler lines over `--connections` keep-alive
//!   connections, at `--write-rate` requests per second in all or flat out (`0`).
//! * Beside them (`--import-connections`, `--query-connections`): collapsed-stack imports of
//!   `--import-lines` lines to `/import/folded`, and `/query` requests (`CREATE DATABASE`,
//!   `SHOW DATABASES`), each connection one after another.
//! * While it runs, a monitoring client asks `/ping` and `/metrics` every 100 ms on fresh
//!   connections and records how long each answer took; with `--pid`, stackd's RSS is sampled.
//! * Afterwards (`--verify`, stackd only) it waits for stackd's queue to drain and checks that
//!   every datagram stackd received, every line of every answered write, and every sample of
//!   every answered import is in the store: `stackd_samples_total` of the load's apps against
//!   what was sent and received.
//!
//! Prints one JSON object of figures. Exit status 1 when a check fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

const FIXTURE: &str = include_str!("../../tests/fixtures/jfr/workload.folded");
/// On-CPU stacks of Spark executor task threads (tests/fixtures/jfr/record_spark.sh).
const SPARK: &str = include_str!("../../tests/fixtures/jfr/spark.folded");

/// Where the load's stacks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Fixture {
    /// A small JVM program's stacks (workload.folded) under a synthetic executor chain of 14
    /// frames: about 1 KB each.
    Workload,
    /// Spark executor task threads recorded with JFR (spark.folded, 571 stacks): about 2 KB each.
    Spark,
}

#[derive(Debug, Parser)]
#[command(about = "Profiler-shaped UDP and /write load, with latency probes and store checks")]
struct Args {
    /// statsd address; no UDP load without it.
    #[arg(long)]
    statsd: Option<SocketAddr>,
    /// HTTP address (host:port) for /write load, probes and checks.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Datagrams per second; 0 sends as fast as it can.
    #[arg(long, default_value_t = 0)]
    udp_rate: u64,
    /// /write requests per second in all; 0 as fast as the connections go; no writes unless
    /// --write-connections > 0.
    #[arg(long, default_value_t = 0)]
    write_rate: u64,
    #[arg(long, default_value_t = 0)]
    write_connections: usize,
    /// Profiler lines per /write body.
    #[arg(long, default_value_t = 35)]
    lines: usize,
    /// Distinct stacks to cycle through.
    #[arg(long, default_value_t = 2_000)]
    stacks: usize,
    /// Connections sending collapsed-stack imports (`/import/folded`), one after another.
    #[arg(long, default_value_t = 0)]
    import_connections: usize,
    /// Lines (stacks) per import.
    #[arg(long, default_value_t = 5_000)]
    import_lines: usize,
    /// Connections sending `/query` requests, one after another.
    #[arg(long, default_value_t = 0)]
    query_connections: usize,
    /// The stacks sent.
    #[arg(long, value_enum, default_value_t = Fixture::Workload)]
    fixture: Fixture,
    /// How long to send, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// stackd's pid, to sample its resident memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Probe /ping and /metrics while sending.
    #[arg(long)]
    probe: bool,
    /// After sending, check stackd's store against what was sent.
    #[arg(long)]
    verify: bool,
    /// App names are <prefix>-udp and <prefix>-http (a fresh prefix keeps runs apart).
    #[arg(long, default_value = "load")]
    app: String,
    /// Print one /write body (--lines profiler lines, each `value=1i`) and exit: for other load
    /// tools (wrk) sending the same bytes.
    #[arg(long)]
    print_body: bool,
    /// Write the realistic mix of /write bodies into this directory and exit: --executors
    /// executors spread over --apps apps (`<app>-mix-<n>`), --windows flush windows each, every
    /// body a different window of --lines stacks (the stacks rotated, so that they repeat across
    /// executors and flushes as on a cluster), listed in DIR/index.txt. For wrk (mix.lua).
    #[arg(long)]
    print_bodies: Option<std::path::PathBuf>,
    /// Executors of the mix (of /write bodies and of UDP prefixes); 0: UDP under one prefix.
    #[arg(long, default_value_t = 200)]
    executors: usize,
    /// Apps of the mix.
    #[arg(long, default_value_t = 7)]
    apps: usize,
    /// Flush windows per executor in the mix (bodies = executors × windows).
    #[arg(long, default_value_t = 5)]
    windows: usize,
    /// Timestamp the mix's lines this many seconds in the past (0: no timestamp, the server's
    /// now). 1800 puts them outside stackd's in-memory window.
    #[arg(long, default_value_t = 0)]
    late: u64,
    /// The burst variant of the mix: every one of --executors executors sends its next body of
    /// the mix in DIR (from --print-bodies with the same --executors and --app) at the start of
    /// every second, all at once, each on its own keep-alive connection to --http, for --duration
    /// seconds. Reports each request's latency and how long each burst took to be answered;
    /// with --verify, that every answered line is stored.
    #[arg(long)]
    burst: Option<std::path::PathBuf>,
    /// Be the peer that does nothing: receive datagrams on this address for --duration seconds
    /// (plus 2 s for the queue to drain) with a --recv-buffer socket buffer, print how many.
    #[arg(long)]
    null_receiver: Option<SocketAddr>,
    /// Receive buffer of --null-receiver, bytes (stackd's default).
    #[arg(long, default_value_t = stackd::config::DEFAULT_UDP_RECV_BUFFER)]
    recv_buffer: usize,
}

/// A root-first stack of about 1 KB (15 to 46 frames): a fixture stack under a synthetic executor frame chain.
fn stacks(n: usize, fixture: Fixture) -> Vec<String> {
    if fixture == Fixture::Spark {
        let base: Vec<&str> = SPARK.lines().filter_map(|l| l.rsplit_once(' ')).map(|(s, _)| s).collect();
        // Past the recorded stacks, the same ones again with another line number on the root
        // frame (java.lang.Thread.run), so that every stack is distinct.
        return (0..n)
            .map(|i| {
                let stack = base[i % base.len()];
                match (i / base.len(), stack.split_once(';')) {
                    (0, _) | (_, None) => stack.to_string(),
                    (round, Some((root, rest))) => format!("{}:{round};{rest}", root.rsplit_once(':').map_or(root, |(f, _)| f)),
                }
            })
            .collect();
    }
    let base: Vec<Vec<&str>> = FIXTURE.lines().filter_map(|l| l.rsplit_once(' ')).map(|(s, _)| s.split(';').collect()).collect();
    (0..n)
        .map(|i| {
            // The root frame's line number is `i`: every stack is distinct.
            let mut frames: Vec<String> = (0..14)
                .map(|d| {
                    format!("org.apache.spark.executor.Stage{d}$Task{}.run:{}", (i / 7 + d) % 13, if d == 0 { i } else { 100 + i % 97 })
                })
                .collect();
            frames.extend(base[i % base.len()].iter().map(|f| f.to_string()));
            frames.join(";")
        })
        .collect()
}

fn encode(stack: &str) -> String {
    let frames: Vec<&str> = stack.split(';').collect();
    stackd::input::profiler::encode_stack(&frames)
}

/// One HTTP/1.1 request on a keep-alive connection: the status code.
fn request(conn: &mut BufReader<TcpStream>, head: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut request = Vec::with_capacity(head.len() + body.len());
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(body);
    conn.get_mut().write_all(&request)?;
    let mut status = String::new();
    conn.read_line(&mut status)?;
    let code = status.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut rest = vec![0u8; length];
    conn.read_exact(&mut rest)?;
    Ok(code)
}

/// GET on a fresh connection: status and body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: stackd\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Ok((code, body))
}

/// The value of one series in Prometheus text, 0 when absent.
fn series(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse().ok())).unwrap_or(0.0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// Sleep until `i` events fit `rate` per second since `start`.
fn pace(rate: u64, start: Instant, i: u64) {
    if rate == 0 {
        return;
    }
    let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The null receiver: recv into one buffer, count, nothing else.
fn null_receiver(addr: SocketAddr, recv_buffer: usize, duration: Duration) -> std::io::Result<()> {
    let socket = stackd::server::udp::bind(addr, recv_buffer)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let granted = stackd::server::udp::recv_buffer_size(&socket);
    eprintln!("null receiver on {} (buffer {granted} bytes)", socket.local_addr()?);
    let mut buf = vec![0u8; 65_536];
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    let deadline = Instant::now() + duration + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            datagrams += 1;
            bytes += n as u64;
        }
    }
    println!("{}", serde_json::json!({"received": datagrams, "bytes": bytes, "recv_buffer": granted}));
    Ok(())
}

/// The realistic mix: one body per executor and flush window, written to `dir` with an index.
/// Executor `e` belongs to app `e % apps`; its window `w` starts at stack `e * step + w * lines`
/// of the rotation, `step` 13 (or `--stacks / --executors` when larger), so that with the
/// default 2,000 stacks neighbouring executors and consecutive flushes share stacks, and with
/// many more every executor has stacks of its own (the memory bench's 100,000). Each
/// line carries the tags the agent's InfluxDB reporter adds (`hostname`, `jvmName`, `pid`; four
/// executors a host) and its prefix `spark.<app>.<executor>`, and is timestamped `late` seconds
/// ago (nanoseconds, as the reporter sends), or carries no timestamp (the server's now).
fn write_mix(dir: &std::path::Path, stacks: &[String], args: &Args) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let stamp = if args.late == 0 {
        String::new()
    } else {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!(" {}", (now - Duration::from_secs(args.late)).as_nanos())
    };
    let mut index = String::new();
    let mut n = 0;
    let step = (stacks.len() / args.executors.max(1)).max(13);
    for w in 0..args.windows.max(1) {
        for e in 0..args.executors.max(1) {
            let app = format!("{}-mix-{}", args.app, e % args.apps.max(1));
            let (host, pid) = (e / 4, 20_000 + e);
            let tags = format!("hostname=worker-{host},jvmName={pid}@worker-{host},pid={pid},prefix=spark.{app}.{e}");
            let first = e * step + w * args.lines;
            let body: String =
                (0..args.lines).map(|l| format!("{},{tags} value=1.0{stamp}\n", encode(&stacks[(first + l) % stacks.len()]))).collect();
            let name = format!("body-{n:05}.txt");
            std::fs::write(dir.join(&name), body)?;
            index.push_str(&dir.join(&name).display().to_string());
            index.push('\n');
            n += 1;
        }
    }
    std::fs::write(dir.join("index.txt"), index)?;
    Ok(n)
}

/// The datagrams the UDP load cycles through. The mix: executor `e` of app `e % apps` flushes
/// `lines` stacks from `e * 13` of the rotation under `spark.<app>-<e % apps>.<e>`, executor
/// after executor, as agents' once-a-second flushes arrive. Without executors: every stack under
/// `<app>-udp`.
fn udp_payloads(stacks: &[String], args: &Args) -> Vec<Vec<u8>> {
    if args.executors == 0 {
        return stacks.iter().map(|s| format!("{}.{}:1|g", args.app_udp(), encode(s)).into_bytes()).collect();
    }
    let mut payloads = Vec::with_capacity(args.executors * args.lines);
    for e in 0..args.executors {
        let prefix = format!("spark.{}-{}.{e}", args.app_udp(), e % args.apps.max(1));
        payloads.extend((0..args.lines).map(|l| format!("{prefix}.{}:1|g", encode(&stacks[(e * 13 + l) % stacks.len()])).into_bytes()));
    }
    payloads
}

/// Samples stored for the UDP load's apps: `<app>-udp`, and the mix's apps whether stackd splits
/// their prefixes (`--prefix-labels SKIP.app.executor`: `<app>-udp-<k>`) or not (the whole prefix
/// `spark.<app>-udp-<k>.<e>`).
fn udp_stored(metrics: &str, app_udp: &str) -> u64 {
    let (labelled, whole) = (format!("{app_udp}-"), format!("spark.{app_udp}-"));
    samples_of(metrics, |app| app == app_udp || app.starts_with(&labelled) || app.starts_with(&whole))
}

/// `stackd_samples_total` summed over the apps `which` takes.
fn samples_of(metrics: &str, which: impl Fn(&str) -> bool) -> u64 {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("stackd_samples_total{app=\""))
        .filter_map(|l| l.split_once("\"} "))
        .filter(|(app, _)| which(app))
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One /write body of `lines` profiler lines for `app`, stacks from `first` on.
fn write_body(stacks: &[String], lines: usize, first: usize, executor: usize, app: &str) -> String {
    (0..lines).map(|l| format!("{},executor={executor},prefix={app} value=1i\n", encode(&stacks[(first + l) % stacks.len()]))).collect()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(addr) = args.null_receiver {
        return match null_receiver(addr, args.recv_buffer, Duration::from_secs_f64(args.duration)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("null receiver: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let stacks = stacks(args.stacks.max(1), args.fixture);
    if args.print_body {
        print!("{}", write_body(&stacks, args.lines, 0, 0, &args.app_http()));
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(dir) = &args.print_bodies {
        return match write_mix(dir, &stacks, &args) {
            Ok(n) => {
                println!("{}", serde_json::json!({"bodies": n, "lines_per_body": args.lines, "dir": dir}));
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("writing the mix: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = &args.burst {
        return match burst(dir, &args) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::FAILURE,
            Err(e) => {
                eprintln!("burst: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let duration = Duration::from_secs_f64(args.duration);
    // stackd's counters are since its start: what this run adds is the difference.
    let before = args.http.filter(|_| args.verify).and_then(|h| get(h, "/metrics").ok()).map(|(_, b)| b).unwrap_or_default();
    let (received_before, drops_before) =
        (series(&before, "stackd_udp_datagrams_total") as u64, series(&before, "stackd_udp_kernel_drops_total") as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut threads = Vec::new();

    let datagrams = Arc::new(AtomicU64::new(0));
    if let Some(statsd) = args.statsd {
        let payloads = udp_payloads(&stacks, &args);
        let (stop, sent, rate) = (Arc::clone(&stop), Arc::clone(&datagrams), args.udp_rate);
        threads.push(std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("UDP socket");
            socket.connect(statsd).expect("connect");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pace(rate, started, i);
                // ECONNREFUSED and ENOBUFS are the receiver's or the kernel's business: count
                // only what left.
                if socket.send(&payloads[i as usize % payloads.len()]).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }

    let (writes_ok, writes_failed, lines_written) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let write_latency = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    if let (Some(http), true) = (args.http, args.write_connections > 0) {
        let per_conn_rate = args.write_rate.div_ceil(args.write_connections as u64);
        for c in 0..args.write_connections {
            let bodies: Vec<Post> = (0..16)
                .map(|b| Post {
                    head: "POST /write?db=load".into(),
                    body: write_body(&stacks, args.lines, b * args.lines, c, &args.app_http()).into_bytes(),
                    samples: args.lines as u64,
                    ok: 204,
                })
                .collect();
            let tally = Tally { ok: Arc::clone(&writes_ok), failed: Arc::clone(&writes_failed), samples: Arc::clone(&lines_written) };
            let (stop, latency) = (Arc::clone(&stop), Arc::clone(&write_latency));
            threads.push(std::thread::spawn(move || {
                let mine = post_loop(http, &bodies, per_conn_rate, started, &stop, &tally);
                latency.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
            }));
        }
    }
    // Imports and /query beside the load (each request waits for the one before).
    let (imports, imported_samples) = (Tally::default(), Arc::new(AtomicU64::new(0)));
    let queries = Tally::default();
    if let Some(http) = args.http {
        for c in 0..args.import_connections {
            // Each connection sends its own profiles in turn, as different executors would.
            let posts: Vec<Post> = (0..4)
                .map(|k| {
                    let (body, samples) = import_body(&stacks, args.import_lines, c * 4 + k);
                    Post { head: format!("POST /import/folded?app={}&executor={c}", args.app_import()), body, samples, ok: 200 }
                })
                .collect();
            let tally = Tally { samples: Arc::clone(&imported_samples), ..imports.clone() };
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || drop(post_loop(http, &posts, 0, started, &stop, &tally))));
        }
        for c in 0..args.query_connections {
            let q = format!("q=CREATE+DATABASE+load{c}%3BSHOW+DATABASES");
            let post = Post { head: "POST /query".into(), body: q.into_bytes(), samples: 0, ok: 200 };
            let (tally, stop) = (queries.clone(), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || drop(post_loop(http, &[post], 0, started, &stop, &tally))));
        }
    }

    let probes = Arc::new(std::sync::Mutex::new((Vec::<f64>::new(), Vec::<f64>::new(), 0u64)));
    let rss = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    if let (Some(http), true) = (args.http, args.probe || args.pid.is_some()) {
        let (stop, probes, rss, pid, probe) = (Arc::clone(&stop), Arc::clone(&probes), Arc::clone(&rss), args.pid, args.probe);
        threads.push(std::thread::spawn(move || {
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if probe {
                    for (k, path) in ["/ping", "/metrics"].into_iter().enumerate() {
                        let t = Instant::now();
                        let ok = get(http, path).is_ok_and(|(code, _)| code == 200 || code == 204);
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        let mut p = probes.lock().unwrap_or_else(|e| e.into_inner());
                        if ok {
                            if k == 0 {
                                p.0.push(ms)
                            } else {
                                p.1.push(ms)
                            }
                        } else {
                            p.2 += 1;
                        }
                    }
                }
                if tick % 10 == 0 {
                    if let Some(kib) = pid.and_then(rss_kib) {
                        rss.lock().unwrap_or_else(|e| e.into_inner()).push(kib);
                    }
                }
                tick += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }

    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = datagrams.load(Ordering::Relaxed);
    let (mut ping, mut metrics, probe_failures) = std::mem::take(&mut *probes.lock().unwrap_or_else(|e| e.into_inner()));
    ping.sort_by(f64::total_cmp);
    metrics.sort_by(f64::total_cmp);
    let mut wl = std::mem::take(&mut *write_latency.lock().unwrap_or_else(|e| e.into_inner()));
    wl.sort_by(f64::total_cmp);
    let rss = rss.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut report = serde_json::json!({
        "seconds": elapsed,
        "udp_sent": sent,
        "udp_sent_per_s": sent as f64 / elapsed,
        "writes_ok": writes_ok.load(Ordering::Relaxed),
        "writes_failed": writes_failed.load(Ordering::Relaxed),
        "writes_per_s": writes_ok.load(Ordering::Relaxed) as f64 / elapsed,
        "write_ms": {"p50": percentile(&wl, 0.5), "p99": percentile(&wl, 0.99)},
        "ping_ms": {"n": ping.len(), "p50": percentile(&ping, 0.5), "p99": percentile(&ping, 0.99), "max": ping.last().copied().unwrap_or(0.0)},
        "metrics_ms": {"n": metrics.len(), "p50": percentile(&metrics, 0.5), "p99": percentile(&metrics, 0.99), "max": metrics.last().copied().unwrap_or(0.0)},
        "imports_ok": imports.ok.load(Ordering::Relaxed),
        "imports_failed": imports.failed.load(Ordering::Relaxed),
        "queries_ok": queries.ok.load(Ordering::Relaxed),
        "queries_failed": queries.failed.load(Ordering::Relaxed),
        "probe_failures": probe_failures,
        "rss_mib": {"first": rss.first().map_or(0.0, |k| *k as f64 / 1024.0), "last": rss.last().map_or(0.0, |k| *k as f64 / 1024.0), "max": rss.iter().max().map_or(0.0, |k| *k as f64 / 1024.0), "every_10s": rss.iter().step_by(10).map(|k| (*k as f64 / 1024.0).round()).collect::<Vec<f64>>()},
    });
    let mut ok = true;
    if let (true, Some(http)) = (args.verify, args.http) {
        // Wait (bounded) until every received datagram is processed.
        let deadline = Instant::now() + Duration::from_secs(60);
        let text = loop {
            let text = get(http, "/metrics").map(|(_, b)| b).unwrap_or_default();
            let (received, processed) =
                (series(&text, "stackd_udp_datagrams_total"), series(&text, "stackd_udp_datagrams_processed_total"));
            if received == processed || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let received = series(&text, "stackd_udp_datagrams_total") as u64;
        let received = received.saturating_sub(received_before);
        let kernel_drops = (series(&text, "stackd_udp_kernel_drops_total") as u64).saturating_sub(drops_before);
        let udp_stored = udp_stored(&text, &args.app_udp());
        let http_stored = series(&text, &format!("stackd_samples_total{{app=\"{}\"}}", args.app_http())) as u64;
        let import_stored = series(&text, &format!("stackd_samples_total{{app=\"{}\"}}", args.app_import())) as u64;
        let lines = lines_written.load(Ordering::Relaxed);
        let imported = imported_samples.load(Ordering::Relaxed);
        let udp_ok = args.statsd.is_none() || udp_stored == received;
        let http_ok = http_stored == lines && import_stored == imported;
        report["verify"] = serde_json::json!({
            "udp_received": received, "udp_stored": udp_stored, "kernel_drops": kernel_drops,
            "udp_lost_before_stackd": sent.saturating_sub(received),
            "http_lines_answered_204": lines, "http_lines_stored": http_stored,
            "import_samples_answered_200": imported, "import_samples_stored": import_stored,
            "ok": udp_ok && http_ok,
        });
        ok = udp_ok && http_ok;
    }
    println!("{report}");
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

impl Args {
    fn app_udp(&self) -> String {
        format!("{}-udp", self.app)
    }
    fn app_http(&self) -> String {
        format!("{}-http", self.app)
    }
    fn app_import(&self) -> String {
        format!("{}-import", self.app)
    }
}

/// Samples stored for the apps of a mix written with `--app app` (`<app>-mix-<k>`, its prefixes
/// split by `--prefix-labels SKIP.app.executor`).
fn mix_stored(metrics: &str, app: &str) -> u64 {
    let prefix = format!("{app}-mix-");
    samples_of(metrics, |a| a.starts_with(&prefix))
}

/// The burst variant (`--burst DIR`): true when every check passed.
fn burst(dir: &std::path::Path, args: &Args) -> std::io::Result<bool> {
    let http = args.http.ok_or_else(|| std::io::Error::other("--burst needs --http"))?;
    let index = std::fs::read_to_string(dir.join("index.txt"))?;
    let paths: Vec<&str> = index.lines().collect();
    let executors = args.executors.max(1);
    if paths.len() < executors {
        return Err(std::io::Error::other(format!("{} has {} bodies, fewer than --executors {executors}", dir.display(), paths.len())));
    }
    // Executor e's windows: bodies e, e + executors, … (the order --print-bodies writes them in).
    let mut mine: Vec<Vec<Vec<u8>>> = vec![Vec::new(); executors];
    for (n, path) in paths.iter().enumerate() {
        mine[n % executors].push(std::fs::read(path)?);
    }
    let stored_before = if args.verify { mix_stored(&get(http, "/metrics")?.1, &args.app) } else { 0 };
    let bursts = args.duration.round().max(1.0) as usize;
    // Every connection is open before the first burst, as executors' are.
    let mut conns = Vec::with_capacity(executors);
    for _ in 0..executors {
        let s = TcpStream::connect(http)?;
        s.set_nodelay(true)?;
        conns.push(BufReader::new(s));
    }
    let start = Instant::now() + Duration::from_millis(200);
    // Per burst, when its last answer came (µs after the burst's second began).
    let finished: Arc<Vec<AtomicU64>> = Arc::new((0..bursts).map(|_| AtomicU64::new(0)).collect());
    let (ok, failed, lines) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let threads: Vec<_> = conns
        .into_iter()
        .zip(mine)
        .map(|(mut conn, bodies)| {
            let (finished, ok, failed, lines) = (Arc::clone(&finished), Arc::clone(&ok), Arc::clone(&failed), Arc::clone(&lines));
            std::thread::spawn(move || {
                let mut latency = Vec::with_capacity(bursts);
                for b in 0..bursts {
                    let due = start + Duration::from_secs(b as u64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let body = &bodies[b % bodies.len()];
                    let head = format!("POST /write?db=load HTTP/1.1\r\nHost: stackd\r\nContent-Length: {}\r\n\r\n", body.len());
                    let t = Instant::now();
                    match request(&mut conn, &head, body) {
                        Ok(204) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            lines.fetch_add(body.iter().filter(|&&c| c == b'\n').count() as u64, Ordering::Relaxed);
                            latency.push(t.elapsed().as_secs_f64() * 1000.0);
                            finished[b].fetch_max(due.elapsed().as_micros() as u64, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            return latency; // a broken connection sends no more
                        }
                    }
                }
                latency
            })
        })
        .collect();
    let mut latency: Vec<f64> = threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect();
    latency.sort_by(f64::total_cmp);
    let mut absorbed: Vec<f64> = finished.iter().map(|f| f.load(Ordering::Relaxed) as f64 / 1000.0).collect();
    absorbed.sort_by(f64::total_cmp);
    let (ok, failed, lines) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed), lines.load(Ordering::Relaxed));
    let mut report = serde_json::json!({
        "executors": executors, "bursts": bursts, "requests_ok": ok, "requests_failed": failed, "lines_answered_204": lines,
        "latency_ms": {"p50": percentile(&latency, 0.5), "p99": percentile(&latency, 0.99), "max": latency.last().copied().unwrap_or(0.0)},
        "burst_answered_ms": {"p50": percentile(&absorbed, 0.5), "max": absorbed.last().copied().unwrap_or(0.0)},
    });
    let mut good = failed == 0;
    if args.verify {
        let stored = mix_stored(&get(http, "/metrics")?.1, &args.app).saturating_sub(stored_before);
        report["verify"] = serde_json::json!({"lines_stored": stored, "ok": stored == lines});
        good &= stored == lines;
    }
    println!("{report}");
    Ok(good)
}

/// One request a connection sends again and again: its request line (without the version),
/// body, the samples it carries, and the status that means they were taken.
struct Post {
    head: String,
    body: Vec<u8>,
    samples: u64,
    ok: u16,
}

/// Requests answered as hoped and not, and the samples of those answered.
#[derive(Clone, Debug, Default)]
struct Tally {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
}

/// Send `posts` in turn on one keep-alive connection (a new one after a failure) at `rate` per
/// second (0: one after another) until `stop`; the latency of each answered, ms.
fn post_loop(http: SocketAddr, posts: &[Post], rate: u64, started: Instant, stop: &AtomicBool, tally: &Tally) -> Vec<f64> {
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut i = 0u64;
    let mut latency = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        pace(rate, started, i);
        let post = &posts[i as usize % posts.len()];
        i += 1;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect(http) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn.insert(BufReader::new(s))
                }
                Err(_) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let head = format!("{} HTTP/1.1\r\nHost: stackd\r\nContent-Length: {}\r\n\r\n", post.head, post.body.len());
        let t = Instant::now();
        match request(c, &head, &post.body) {
            Ok(code) if code == post.ok => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                tally.samples.fetch_add(post.samples, Ordering::Relaxed);
                latency.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            _ => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
    latency
}

/// The `n`th collapsed-stack document of `lines` stacks (the `n`th takes its stacks from its own
/// place in the list, with its own counts), and the samples it holds.
fn import_body(stacks: &[String], lines: usize, n: usize) -> (Vec<u8>, u64) {
    let mut text = String::new();
    let mut samples = 0;
    for l in 0..lines {
        let count = 1 + ((l + n) % 7) as u64;
        text.push_str(&stacks[(l + n * 997) % stacks.len()]);
        text.push_str(&format!(" {count}\n"));
        samples += count;
    }
    (text.into_bytes(), samples)
}
