//! Command-line flags (each with an environment-variable twin) and their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::sample::is_label_name;

pub const DEFAULT_STATSD_ADDR: &str = "0.0.0.0:8125";
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8086";
pub const DEFAULT_DATA_DIR: &str = "./stackd-data";
/// 32 MiB: a second of bursts from dozens of executors (hundreds of 1–6 KB datagrams each, and
/// the kernel counts about twice the payload). Memory is used only while datagrams wait.
pub const DEFAULT_UDP_RECV_BUFFER: usize = 32 * 1024 * 1024;
/// InfluxDB 1.x's own default `max-body-size`.
pub const DEFAULT_MAX_BODY_SIZE: usize = 25_000_000;
pub const DEFAULT_MAX_APPS: usize = 1_000;
pub const DEFAULT_MAX_STACKS_PER_APP: usize = 100_000;
pub const DEFAULT_MAX_LABEL_VALUES: usize = 10_000;
pub const DEFAULT_MAX_SERIES_PER_APP: usize = 100_000;
/// Series of all apps: /metrics of 200,000 series is about 20 MB.
pub const DEFAULT_MAX_SERIES: usize = 200_000;
pub const DEFAULT_MAX_NAME_LENGTH: usize = 1_024;
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 4_096;
/// async-profiler's own default depth is 2,048 frames.
pub const DEFAULT_MAX_STACK_DEPTH: usize = 4_096;
pub const DEFAULT_MAX_RENDER_FRAMES: usize = 200_000;
/// Largest JFR chunk read (one chunk is in memory at a time): async-profiler's default
/// `chunksize` is 100 MB, the JDK's chunks about 12 MB.
pub const DEFAULT_JFR_SCAN_INTERVAL: &str = "10s";
pub const DEFAULT_MAX_JFR_CHUNK_SIZE: usize = 128 << 20;
pub const DEFAULT_BUCKET: &str = "60s";
pub const DEFAULT_RETENTION: &str = "7d";
pub const DEFAULT_MEMORY_WINDOW: &str = "15m";
pub const DEFAULT_FLUSH_INTERVAL: &str = "1s";
pub const DEFAULT_MAX_FUTURE: &str = "10m";
pub const DEFAULT_GAUGE_TTL: &str = "5m";
pub const DEFAULT_SEGMENT_INTERVAL: &str = "1m";
pub const DEFAULT_PACK_SEGMENTS: u64 = 60;
/// Well under the file descriptors stackd asks for at start-up (it raises its soft limit to the
/// hard one; deploy/stackd.service sets 65536).
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 4_096;
pub const DEFAULT_HTTP_HEADER_TIMEOUT: &str = "10s";
pub const DEFAULT_HTTP_IDLE_TIMEOUT: &str = "60s";
pub const DEFAULT_HTTP_REQUEST_TIMEOUT: &str = "60s";
/// A quarter of Flink's `rest.flamegraph.refresh-interval` (60 s): a new sample is asked for
/// within 15 s of the last one expiring.
pub const DEFAULT_FLINK_POLL_INTERVAL: &str = "15s";
pub const DEFAULT_FLINK_TIMEOUT: &str = "10s";
/// A job of 50 vertices at parallelism 100 with two graph types takes about 10,000 requests.
pub const DEFAULT_FLINK_MAX_REQUESTS: usize = 20_000;
pub const DEFAULT_FLINK_POLL_DEADLINE: &str = "2m";
/// 64 MiB: a few dozen large SVGs.
pub const DEFAULT_RENDER_CACHE_SIZE: usize = 64 << 20;

/// statsd for stack traces: JVM profiler samples in, flame graphs and Prometheus metrics out.
#[derive(Clone, Debug, Parser)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("STACKD_REVISION"), ")"), about, long_about = None, after_help = EXAMPLES)]
pub struct Config {
    /// UDP address for statsd datagrams (statsd-jvm-profiler's StatsDReporter). Port 0 picks a
    /// free port; the chosen address is logged.
    #[arg(help_heading = "Network", long, env = "STACKD_STATSD_ADDR", default_value = DEFAULT_STATSD_ADDR, value_parser = parse_listen_addr)]
    pub statsd_addr: SocketAddr,

    /// HTTP address: InfluxDB write API, /metrics, /flamegraph/<app>.svg, /apps. Port 0 picks a
    /// free port; the chosen address is logged.
    #[arg(help_heading = "Network", long, env = "STACKD_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR, value_parser = parse_listen_addr)]
    pub http_addr: SocketAddr,

    /// Directory of the embedded store (stackd.redb); created if missing.
    #[arg(help_heading = "Storage", long, env = "STACKD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// Template that splits an agent prefix into labels, in the agent's own tagMapping syntax:
    /// dot-separated label names, SKIP to drop a component. The `app` label names the app;
    /// without one (or without a template) the whole prefix is the app. Example:
    /// SKIP.app.executor turns prefix spark.app-42.7 into app "app-42", executor "7".
    #[arg(help_heading = "Inputs", long, env = "STACKD_PREFIX_LABELS", value_parser = PrefixTemplate::parse)]
    pub prefix_labels: Option<PrefixTemplate>,

    /// Kernel receive buffer for the statsd socket, bytes. Agents flush once a second in bursts; a
    /// small buffer drops datagrams in the kernel (stackd_udp_kernel_drops_total). Without
    /// CAP_NET_ADMIN the kernel caps it at net.core.rmem_max: raise that sysctl to match.
    #[arg(help_heading = "Network", long, env = "STACKD_UDP_RECV_BUFFER", default_value_t = DEFAULT_UDP_RECV_BUFFER, value_parser = parse_size)]
    pub udp_recv_buffer: usize,

    /// Largest HTTP request body accepted, bytes, after gzip decompression (413 beyond).
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_BODY_SIZE", default_value_t = DEFAULT_MAX_BODY_SIZE, value_parser = parse_size)]
    pub max_body_size: usize,

    /// Most apps kept; samples for further apps are refused and counted.
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_APPS", default_value_t = DEFAULT_MAX_APPS)]
    pub max_apps: usize,

    /// Most distinct stacks kept per app; samples of further stacks are counted under the frame
    /// "[stackd: unique stack limit reached]" so that totals stay right.
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_STACKS_PER_APP", default_value_t = DEFAULT_MAX_STACKS_PER_APP)]
    pub max_stacks_per_app: usize,

    /// Most distinct values of one label (executor, host, pid…) per app; origins with further
    /// values are kept under the value "[stackd: label value limit reached]".
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_LABEL_VALUES", default_value_t = DEFAULT_MAX_LABEL_VALUES)]
    pub max_label_values: usize,

    /// Most gauge series (exported on /metrics) per app, and most label sets per app: readings of
    /// further gauge series are refused and counted; origins with a further label set (new tag
    /// names, say) share the set {stackd_overflow="[stackd: label value limit reached]"}.
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_SERIES_PER_APP", default_value_t = DEFAULT_MAX_SERIES_PER_APP)]
    pub max_series_per_app: usize,

    /// Most gauge and engine series of all apps together (exported on /metrics); readings of
    /// further series are refused and counted.
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_SERIES", default_value_t = DEFAULT_MAX_SERIES)]
    pub max_series: usize,

    /// Longest app name, label name or label value kept, bytes (on every input); longer ones
    /// are cut to it and counted (stackd_limit_hits_total{limit="name_length"}).
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_NAME_LENGTH", default_value_t = DEFAULT_MAX_NAME_LENGTH, value_parser = at_least(16))]
    pub max_name_length: usize,

    /// Longest frame kept, bytes; longer ones are cut to it and counted once per stack
    /// (limit="frame_length").
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_FRAME_LENGTH", default_value_t = DEFAULT_MAX_FRAME_LENGTH, value_parser = at_least(16))]
    pub max_frame_length: usize,

    /// Deepest stack kept, frames; a deeper stack keeps its root-most frames and ends in the
    /// frame "[stackd: stack depth limit reached]", counted once per stack (limit="stack_depth").
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_STACK_DEPTH", default_value_t = DEFAULT_MAX_STACK_DEPTH, value_parser = at_least(2))]
    pub max_stack_depth: usize,

    /// Most frames drawn in one flame graph (SVG and JSON); the narrowest are left out beyond it,
    /// and the graph's subtitle says how many (limit="render_output").
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_RENDER_FRAMES", default_value_t = DEFAULT_MAX_RENDER_FRAMES, value_parser = at_least(1))]
    pub max_render_frames: usize,

    /// Largest JFR chunk read, bytes. A recording is read one chunk at a time, whatever its
    /// size; a larger chunk is refused (what came before it is kept) and counted
    /// (stackd_jfr_chunks_total{outcome="too_large"}).
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_JFR_CHUNK_SIZE", default_value_t = DEFAULT_MAX_JFR_CHUNK_SIZE, value_parser = size_at_least(1024))]
    pub max_jfr_chunk_size: usize,

    /// Imports (/import/…) parsed at once; further ones wait up to --http-request-timeout
    /// (503 after). Default: the number of CPUs.
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_CONCURRENT_IMPORTS")]
    pub max_concurrent_imports: Option<usize>,

    /// Width of the time buckets that stack counts are kept in (e.g. 60s, 5m).
    #[arg(help_heading = "Storage", long, env = "STACKD_BUCKET", default_value = DEFAULT_BUCKET, value_parser = parse_duration)]
    pub bucket: Duration,

    /// How long profiles are kept: older samples are refused, older buckets deleted from memory
    /// and disk.
    #[arg(help_heading = "Storage", long, env = "STACKD_RETENTION", default_value = DEFAULT_RETENTION, value_parser = parse_duration)]
    pub retention: Duration,

    /// Buckets newer than this stay in memory; queries for older ranges read the store.
    #[arg(help_heading = "Storage", long, env = "STACKD_MEMORY_WINDOW", default_value = DEFAULT_MEMORY_WINDOW, value_parser = parse_duration)]
    pub memory_window: Duration,

    /// How often changes are written to the store. A kill -9 loses at most this much.
    #[arg(help_heading = "Storage", long, env = "STACKD_FLUSH_INTERVAL", default_value = DEFAULT_FLUSH_INTERVAL, value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// Answer a line-protocol write only once it is on disk (concurrent writes share one commit).
    #[arg(help_heading = "Storage", long, env = "STACKD_SYNC_WRITES")]
    pub sync_writes: bool,

    /// Share this node's profiles with other stackd nodes through object storage:
    /// s3://bucket/prefix (endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION) or file:///dir. docs/scale-out.md.
    #[arg(help_heading = "Scale-out", long, env = "STACKD_OBJECT_STORE", value_parser = parse_object_store)]
    pub object_store: Option<crate::cluster::objects::Objects>,

    /// This node's name in the object store (letters, digits, '.', '_', '-'); the host name by
    /// default. Two live nodes must not share one; a data dir keeps the id it was first shared
    /// under.
    #[arg(help_heading = "Scale-out", long, env = "STACKD_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// How often this node writes what it ingested to the object store as a segment.
    #[arg(help_heading = "Scale-out", long, env = "STACKD_SEGMENT_INTERVAL", default_value = DEFAULT_SEGMENT_INTERVAL, value_parser = parse_duration)]
    pub segment_interval: Duration,

    /// Segments of a node compacted into one pack in the object store, once all of them are
    /// there (docs/scale-out.md).
    #[arg(help_heading = "Scale-out", long, env = "STACKD_PACK_SEGMENTS", default_value_t = DEFAULT_PACK_SEGMENTS, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub pack_segments: u64,

    /// Samples stamped further ahead of stackd's clock than this are refused.
    #[arg(help_heading = "Storage", long, env = "STACKD_MAX_FUTURE", default_value = DEFAULT_MAX_FUTURE, value_parser = parse_duration)]
    pub max_future: Duration,

    /// A JVM gauge not updated for this long is no longer exported on /metrics.
    #[arg(help_heading = "Storage", long, env = "STACKD_GAUGE_TTL", default_value = DEFAULT_GAUGE_TTL, value_parser = parse_duration)]
    pub gauge_ttl: Duration,

    /// Most HTTP connections open at once; further ones are closed at once and counted
    /// (stackd_limit_hits_total{limit="connections"}).
    #[arg(help_heading = "Network", long, env = "STACKD_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS)]
    pub http_max_connections: usize,

    /// A request head (or a TLS handshake) that has started must be complete within this time.
    #[arg(help_heading = "Network", long, env = "STACKD_HTTP_HEADER_TIMEOUT", default_value = DEFAULT_HTTP_HEADER_TIMEOUT, value_parser = parse_duration)]
    pub http_header_timeout: Duration,

    /// A connection with no request in flight and no bytes moving for this long is closed.
    #[arg(help_heading = "Network", long, env = "STACKD_HTTP_IDLE_TIMEOUT", default_value = DEFAULT_HTTP_IDLE_TIMEOUT, value_parser = parse_duration)]
    pub http_idle_timeout: Duration,

    /// A request body must arrive within this time (408 otherwise); also how long a flame graph
    /// request waits for a render slot (503 otherwise).
    #[arg(help_heading = "Network", long, env = "STACKD_HTTP_REQUEST_TIMEOUT", default_value = DEFAULT_HTTP_REQUEST_TIMEOUT, value_parser = parse_duration)]
    pub http_request_timeout: Duration,

    /// Threads serving HTTP connections, each connection on one of them from accept to close
    /// (rendering, imports and bodies over 256 KiB run on a pool of their own). Default: the
    /// number of CPUs.
    #[arg(help_heading = "Network", long, env = "STACKD_HTTP_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub http_threads: Option<u16>,

    /// Flame graphs rendered at once (each can take hundreds of MB for a large app); further
    /// requests wait. Default: the number of CPUs.
    #[arg(help_heading = "Limits", long, env = "STACKD_MAX_CONCURRENT_RENDERS")]
    pub max_concurrent_renders: Option<usize>,

    /// Bytes of rendered flame graphs kept for repeated requests (answered from memory, or with
    /// 304 Not Modified to If-None-Match), dropped oldest first; 0 keeps none. An app's entries
    /// stop being used the moment new samples arrive.
    #[arg(help_heading = "Limits", long, env = "STACKD_RENDER_CACHE_SIZE", default_value_t = DEFAULT_RENDER_CACHE_SIZE, value_parser = parse_size)]
    pub render_cache_size: usize,

    /// PEM certificate chain: serve HTTPS instead of HTTP (with --tls-key).
    #[arg(help_heading = "Security", long, env = "STACKD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(help_heading = "Security", long, env = "STACKD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Who may write (/write, /api/v2/write, /query, /import/…): comma-separated user:password pairs or
    /// tokens, checked like InfluxDB (u/p parameters, Basic, "Token user:password"). Unset:
    /// anyone may write. Prefer the environment variable (or a systemd EnvironmentFile) to keep
    /// them out of the process list.
    #[arg(help_heading = "Security", long, env = "STACKD_WRITE_CREDENTIALS", value_delimiter = ',', value_parser = crate::server::auth::Credential::parse, hide_env_values = true)]
    pub write_credentials: Vec<crate::server::auth::Credential>,

    /// Who may read flame graphs, /apps and the index (HTTP Basic or the write forms). Unset:
    /// anyone may read.
    #[arg(help_heading = "Security", long, env = "STACKD_READ_CREDENTIALS", value_delimiter = ',', value_parser = crate::server::auth::Credential::parse, hide_env_values = true)]
    pub read_credentials: Vec<crate::server::auth::Credential>,

    /// Put /metrics, /ping and /health behind --read-credentials too (open by default, for
    /// Prometheus and health checks).
    #[arg(help_heading = "Security", long, env = "STACKD_AUTH_METRICS")]
    pub auth_metrics: bool,

    /// A Flink JobManager's REST address (http://host:8081) whose running jobs' flame graphs
    /// stackd keeps; repeat the flag (or separate with commas) for several. Flink must have
    /// `rest.flamegraph.enabled: true`.
    #[arg(help_heading = "Flink", long = "flink-rest", env = "STACKD_FLINK_REST", value_delimiter = ',', value_parser = crate::input::flink::client::Endpoint::parse)]
    pub flink_rest: Vec<crate::input::flink::client::Endpoint>,

    /// A directory of JFR recordings to read as they grow (repeatable): Spark 4's profiler's
    /// spark.profiler.dfsDir (`DIR/<appId>[_<attempt>]/profile-exec-<id>.jfr`,
    /// `profile-driver.jfr`; app: the app id, labels executor and attempt), and plain
    /// `DIR/<name>.jfr` files (app: the name). Each whole chunk is read once, also across
    /// restarts and crashes (the progress is kept in the store with the samples it covers).
    #[arg(help_heading = "Inputs", long = "jfr-dir", env = "STACKD_JFR_DIRS", value_delimiter = ',')]
    pub jfr_dirs: Vec<PathBuf>,

    /// How often the --jfr-dir directories are scanned for new chunks.
    #[arg(help_heading = "Inputs", long, env = "STACKD_JFR_SCAN_INTERVAL", default_value = DEFAULT_JFR_SCAN_INTERVAL, value_parser = parse_duration)]
    pub jfr_scan_interval: Duration,

    /// How often each --flink-rest JobManager is asked for its flame graphs. Flink samples a
    /// vertex again when asked after its rest.flamegraph.refresh-interval (60 s) has passed.
    #[arg(help_heading = "Flink", long, env = "STACKD_FLINK_POLL_INTERVAL", default_value = DEFAULT_FLINK_POLL_INTERVAL, value_parser = parse_duration)]
    pub flink_poll_interval: Duration,

    /// Which of Flink's flame graphs to keep (the `type` label): on-cpu, off-cpu, full. `full`
    /// is on-cpu and off-cpu together: keep it instead of them, not beside them.
    #[arg(help_heading = "Flink", long, env = "STACKD_FLINK_GRAPHS", value_delimiter = ',', default_value = "on-cpu,off-cpu", value_enum)]
    pub flink_graphs: Vec<crate::input::flink::poller::GraphType>,

    /// How long one request to a --flink-rest JobManager may take (connect, answer and body).
    #[arg(help_heading = "Flink", long, env = "STACKD_FLINK_TIMEOUT", default_value = DEFAULT_FLINK_TIMEOUT, value_parser = parse_duration)]
    pub flink_timeout: Duration,

    /// Most requests one poll of a --flink-rest JobManager makes; a poll that reaches it ends,
    /// and the next one starts with the vertex it did not reach (see GET /flink).
    #[arg(help_heading = "Flink", long, env = "STACKD_FLINK_MAX_REQUESTS", default_value_t = DEFAULT_FLINK_MAX_REQUESTS, value_parser = at_least(1))]
    pub flink_max_requests: usize,

    /// Longest time one poll of a --flink-rest JobManager takes; a poll that reaches it ends,
    /// and the next one starts with the vertex it did not reach.
    #[arg(help_heading = "Flink", long, env = "STACKD_FLINK_POLL_DEADLINE", default_value = DEFAULT_FLINK_POLL_DEADLINE, value_parser = parse_duration)]
    pub flink_poll_deadline: Duration,

    /// Run Flink's built-in profiler (Flink 1.19 and later, `rest.profiling.enabled: true`) in
    /// these modes, as Flink names them (CPU, ITIMER, WALL, ALLOC, LOCK), on the JobManager and
    /// every TaskManager of each --flink-rest endpoint, one run at a time per process, and keep
    /// every run that ends there (also those started by hand). Off unless given.
    #[arg(
        help_heading = "Flink",
        long = "flink-profiling",
        env = "STACKD_FLINK_PROFILING",
        value_delimiter = ',',
        ignore_case = true,
        value_enum,
        requires = "flink_rest"
    )]
    pub flink_profiling: Vec<crate::input::flink::profiling::Mode>,

    /// How long each --flink-profiling run lasts, whole seconds (Flink refuses more than its
    /// rest.profiling.duration-max, 300 s by default).
    #[arg(help_heading = "Flink", long, env = "STACKD_FLINK_PROFILING_DURATION", default_value = "30s", value_parser = parse_whole_seconds)]
    pub flink_profiling_duration: Duration,

    /// Time between the starts of two --flink-profiling runs of one mode on one process.
    #[arg(help_heading = "Flink", long, env = "STACKD_FLINK_PROFILING_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub flink_profiling_interval: Duration,

    /// The app --flink-profiling runs are stored under.
    #[arg(help_heading = "Flink", long, env = "STACKD_FLINK_PROFILING_APP", default_value = "flink-cluster")]
    pub flink_profiling_app: String,

    /// Do not start: ask the stackd listening on --http-addr for GET /health (on 127.0.0.1 when
    /// it listens on all interfaces) and exit 0 if it answers 200, 1 if not. For container
    /// health checks in images without curl.
    #[arg(help_heading = "Logging", long)]
    pub health_probe: bool,

    /// Log filter (tracing's EnvFilter syntax), e.g. "info" or "stackd=debug".
    #[arg(help_heading = "Logging", long, env = "STACKD_LOG", default_value = "info")]
    pub log: String,
}

const EXAMPLES: &str = "\
Examples:
  stackd --data-dir /var/lib/stackd
      statsd on :8125, HTTP on :8086, anyone may read and write: put it behind a firewall,
      or add --write-credentials and --read-credentials
  stackd --data-dir /var/lib/stackd --prefix-labels SKIP.app.executor --udp-recv-buffer 64MiB
  stackd --data-dir /var/lib/stackd --flink-rest http://jobmanager:8081 --flink-profiling ITIMER,ALLOC
  stackd --data-dir /var/lib/stackd --jfr-dir /shared/spark-profiles --retention 30d

Sizes take a unit (64MiB, 25MB, 1GiB, or bytes); durations too (500ms, 30s, 5m, 7d).
Every flag has an environment twin (shown with each); the README explains them all.";

/// An address to listen on: `host:port`, `:port` or a bare `port` (all interfaces), or a
/// name that resolves (its first address).
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    match std::net::ToSocketAddrs::to_socket_addrs(s) {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("{s:?} resolves to no address")),
        Err(_) => Err(format!("{s:?} is not an address to listen on; write host:port (127.0.0.1:8086, [::1]:8086), :port or port")),
    }
}

/// A size in bytes: a plain number, or one with a unit (`64MiB`, `25MB`, `1GiB`, `512KiB`,
/// `4k`); units of 1000 (`kB`, `MB`, `GB`) and of 1024 (`KiB`, `MiB`, `GiB`, also `k`, `m`, `g`).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a size: write bytes or a number with a unit, e.g. 32MiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" | "k" | "K" => 1 << 10,
        "MiB" | "m" | "M" => 1 << 20,
        "GiB" | "g" | "G" => 1 << 30,
        other => return Err(format!("{s:?}: unknown unit {other:?}; use B, kB, MB, GB, KiB, MiB or GiB")),
    };
    n.checked_mul(factor).and_then(|b| usize::try_from(b).ok()).ok_or_else(|| format!("{s:?} is too large"))
}

/// A size of at least `min` bytes.
fn size_at_least(min: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s: &str| match parse_size(s)? {
        n if n >= min => Ok(n),
        _ => Err(format!("must be at least {min} bytes")),
    }
}

/// A count of at least `min`.
fn at_least(min: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s: &str| match s.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_object_store(s: &str) -> Result<crate::cluster::objects::Objects, String> {
    crate::cluster::objects::Objects::parse(s, |k| std::env::var(k).ok())
}

/// A node id: a key component in the object store.
pub fn parse_node_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(format!("{s:?}: a node id is 1 to 128 letters, digits, '.', '_' or '-'"));
    }
    Ok(s.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 60s, 5m, 1h)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// A duration of whole seconds, at least one.
fn parse_whole_seconds(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{s:?}: give whole seconds (Flink takes the duration in seconds)"));
    }
    Ok(d)
}

/// A parsed `--prefix-labels` template: one entry per prefix component, `None` for `SKIP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixTemplate {
    components: Vec<Option<String>>,
}

impl PrefixTemplate {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut components = Vec::new();
        for part in s.split('.') {
            if part == "SKIP" {
                components.push(None);
                continue;
            }
            if !is_label_name(part) {
                return Err(format!(
                    "label name {part:?} must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __ (use SKIP to drop a component)"
                ));
            }
            if components.iter().flatten().any(|c| c == part) {
                return Err(format!("label name {part:?} appears twice"));
            }
            components.push(Some(part.to_string()));
        }
        Ok(PrefixTemplate { components })
    }

    /// Split `prefix` into `(label, value)` pairs. `None` when the number of components differs
    /// from the template's (then the whole prefix is the app).
    pub fn apply<'a>(&'a self, prefix: &'a str) -> Option<Vec<(&'a str, &'a str)>> {
        let parts = prefix.split('.');
        if parts.clone().count() != self.components.len() {
            return None;
        }
        Some(self.components.iter().zip(parts).filter_map(|(name, value)| Some((name.as_deref()?, value))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::flink::poller::GraphType;

    #[test]
    fn template_splits_prefix() {
        let t = PrefixTemplate::parse("SKIP.app.executor").expect("valid");
        assert_eq!(t.apply("spark.app-42.7"), Some(vec![("app", "app-42"), ("executor", "7")]));
        assert_eq!(t.apply("spark.app-42"), None);
        assert_eq!(t.apply("a.b.c.d"), None);
    }

    #[test]
    fn template_errors() {
        assert_eq!(
            PrefixTemplate::parse("SKIP.app-id").expect_err("dash"),
            "label name \"app-id\" must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __ (use SKIP to drop a component)"
        );
        assert_eq!(PrefixTemplate::parse("app.app").expect_err("dup"), "label name \"app\" appears twice");
        assert!(PrefixTemplate::parse("__x").is_err());
    }

    #[test]
    fn defaults_and_env_twins() {
        let c = Config::try_parse_from(["stackd"]).expect("defaults");
        assert_eq!(c.statsd_addr.to_string(), DEFAULT_STATSD_ADDR);
        assert_eq!(c.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(c.bucket, Duration::from_secs(60));
        assert_eq!(c.gauge_ttl, Duration::from_secs(300));
        assert!(c.flink_rest.is_empty());
        assert_eq!(c.flink_graphs, [GraphType::OnCpu, GraphType::OffCpu]);
        let c = Config::try_parse_from(["stackd", "--flink-rest", "http://a:8081,http://b:8081", "--flink-rest", "http://c:8081"])
            .expect("flink");
        let urls: Vec<&str> = c.flink_rest.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, ["http://a:8081", "http://b:8081", "http://c:8081"]);
        let err = Config::try_parse_from(["stackd", "--flink-rest", "https://a:8081"]).expect_err("https");
        assert!(err.to_string().contains("https is not supported"), "{err}");
        let err = Config::try_parse_from(["stackd", "--bucket", "0s"]).expect_err("zero");
        assert!(err.to_string().contains("must be greater than zero"), "{err}");
    }

    #[test]
    fn addresses_and_sizes_as_people_write_them() {
        let c = Config::try_parse_from(["stackd", "--http-addr", "8086", "--statsd-addr", ":9125"]).expect("bare ports");
        assert_eq!((c.http_addr.to_string().as_str(), c.statsd_addr.to_string().as_str()), ("0.0.0.0:8086", "0.0.0.0:9125"));
        let c = Config::try_parse_from(["stackd", "--http-addr", "[::1]:8086", "--statsd-addr", "localhost:8125"]).expect("host:port");
        assert_eq!(c.http_addr.to_string(), "[::1]:8086");
        assert!(c.statsd_addr.ip().is_loopback() && c.statsd_addr.port() == 8125);
        let err = Config::try_parse_from(["stackd", "--http-addr", "http://x:8086"]).expect_err("a URL");
        assert!(err.to_string().contains("write host:port (127.0.0.1:8086, [::1]:8086), :port or port"), "{err}");
        for (given, bytes) in
            [("32MiB", 32 << 20), ("25MB", 25_000_000), ("1GiB", 1 << 30), ("64k", 65_536), ("4096", 4096), ("2 MiB", 2 << 20)]
        {
            assert_eq!(parse_size(given), Ok(bytes), "{given}");
        }
        assert!(parse_size("12 parsecs").expect_err("unit").contains("unknown unit \"parsecs\""));
        assert!(parse_size("MiB").expect_err("no number").contains("e.g. 32MiB"));
        assert!(parse_size("99999999999GiB").expect_err("overflow").contains("too large"));
        let c = Config::try_parse_from(["stackd", "--udp-recv-buffer", "64MiB", "--max-body-size", "50MB", "--max-jfr-chunk-size", "1GiB"])
            .expect("sizes");
        assert_eq!((c.udp_recv_buffer, c.max_body_size, c.max_jfr_chunk_size), (64 << 20, 50_000_000, 1 << 30));
        let err = Config::try_parse_from(["stackd", "--max-jfr-chunk-size", "1KB"]).expect_err("small");
        assert!(err.to_string().contains("must be at least 1024 bytes"), "{err}");
    }

    #[test]
    fn help_is_grouped_by_topic_with_examples() {
        use clap::CommandFactory;
        let help = Config::command().render_long_help().to_string();
        let positions: Vec<usize> = ["Network:", "Storage:", "Limits:", "Security:", "Inputs:", "Flink:", "Logging:", "Examples:"]
            .iter()
            .map(|h| help.find(h).unwrap_or_else(|| panic!("{h} in --help")))
            .collect();
        assert!(help[positions[0]..positions[1]].contains("--statsd-addr"));
        assert!(help[positions[5]..positions[6]].contains("--flink-profiling-interval"));
        assert!(help.contains("anyone may read and write"));
    }

    #[test]
    fn flink_profiling_flags() {
        use crate::input::flink::profiling::Mode;
        let c = Config::try_parse_from(["stackd"]).expect("defaults");
        assert!(c.flink_profiling.is_empty(), "off unless asked for");
        assert_eq!((c.flink_profiling_duration, c.flink_profiling_interval), (Duration::from_secs(30), Duration::from_secs(300)));
        assert_eq!(c.flink_profiling_app, "flink-cluster");
        let c = Config::try_parse_from([
            "stackd",
            "--flink-rest",
            "http://jm:8081",
            "--flink-profiling",
            "ITIMER,alloc",
            "--flink-profiling-duration",
            "1m",
        ])
        .expect("profiling");
        assert_eq!(c.flink_profiling, [Mode::Itimer, Mode::Alloc]);
        assert_eq!(c.flink_profiling_duration, Duration::from_secs(60));
        let err = Config::try_parse_from(["stackd", "--flink-profiling", "ITIMER"]).expect_err("needs an endpoint");
        assert!(err.to_string().contains("--flink-rest"), "{err}");
        let err = Config::try_parse_from(["stackd", "--flink-rest", "http://jm:8081", "--flink-profiling", "HEAP"]).expect_err("mode");
        assert!(err.to_string().contains("possible values: cpu, itimer, wall, alloc, lock"), "{err}");
        let err = Config::try_parse_from(["stackd", "--flink-rest", "http://jm:8081", "--flink-profiling-duration", "1500ms"])
            .expect_err("whole");
        assert!(err.to_string().contains("give whole seconds"), "{err}");
    }
}
