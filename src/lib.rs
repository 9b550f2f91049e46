//! stackd: statsd for stack traces.
//!
//! JVM profiling agents (statsd-jvm-profiler, Uber jvm-profiler) send stack samples and JVM
//! gauges over statsd (UDP) and InfluxDB line protocol (HTTP). stackd adds the samples up per
//! app in lock-free counters, serves the gauges to Prometheus, and renders flame graphs on
//! request.
//!
//! # Data flow
//!
//! ```text
//!  UDP datagrams ─┐                                         ┌─> /metrics       (Prometheus text)
//!  HTTP /write  ──┼─> protocol::* ─> ingest ─> store ─> query┼─> /flamegraph/… (SVG, folded, JSON)
//!  /api/v2/write ─┘   (pure, borrowed)  (origin →   (per app:  └─> /apps, /       (JSON, HTML)
//!                                        app+labels) buckets × labels × stacks)
//! ```
//!
//! # Module map
//!
//! * [`config`]: flags with env twins, defaults as named constants, the `--prefix-labels`
//!   template.
//! * [`protocol`]: pure parsers — [`protocol::statsd`] (datagrams), [`protocol::influx`]
//!   (line protocol, nom), [`protocol::jvm`] (statsd-jvm-profiler metric names and stack
//!   encoding).
//! * [`sample`]: the protocol-neutral types the parsers produce (raw stacks, gauges).
//! * [`ingest`]: the edge between protocols and store: resolves origins to apps and labels,
//!   counts every line's outcome.
//! * [`store`]: per-app aggregation; never imports a protocol module.
//! * [`render`]: folded text, inferno SVG, d3/Flink JSON.
//! * [`metrics`]: stackd's own metrics and the exported JVM gauges.
//! * [`server`]: the UDP receive thread; the HTTP connection layer (connection cap, timeouts,
//!   TLS), optional authentication, and the axum handlers.
//! * `src/bin/stackd-load.rs`: the package's second binary, a profiler-shaped load generator with
//!   latency probes and store checks (`benches/overload.sh`, `BENCHMARKS.md`).
//! * `invariants` (feature `invariants`): what holds for any input, checked by the fuzz targets
//!   in `fuzz/` and over their kept corpora by `tests/fuzz_corpus.rs`.

pub mod config;
pub mod ingest;
#[cfg(feature = "invariants")]
pub mod invariants;
pub mod metrics;
pub mod protocol;
pub mod render;
pub mod sample;
pub mod server;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ingest::{Ingest, REJECT_LOG_INTERVAL};
use crate::metrics::Metrics;
use crate::server::http::AppState;
use crate::store::{Limits, Store, StoreConfig};

/// Sockets bound by the caller (tests bind port 0 and read the addresses back).
#[derive(Debug)]
pub struct Listeners {
    pub statsd: std::net::UdpSocket,
    pub http: std::net::TcpListener,
}

impl Listeners {
    /// Bind both sockets as configured.
    pub fn bind(config: &Config) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let statsd = server::udp::bind(config.statsd_addr, config.udp_recv_buffer)
            .with_context(|| format!("cannot bind statsd UDP socket on {}", config.statsd_addr))?;
        let http = std::net::TcpListener::bind(config.http_addr).with_context(|| format!("cannot bind HTTP on {}", config.http_addr))?;
        Ok(Listeners { statsd, http })
    }
}

/// Open the store configured by `config` (loads what the data dir holds).
pub fn open_store(config: &Config) -> Result<Store, store::StoreError> {
    let store_config = StoreConfig {
        limits: Limits {
            max_apps: config.max_apps,
            max_stacks_per_app: config.max_stacks_per_app,
            max_label_values: config.max_label_values,
            max_series_per_app: config.max_series_per_app,
        },
        bucket: config.bucket,
        retention: config.retention,
        memory_window: config.memory_window,
        max_future: config.max_future,
        data_dir: Some(config.data_dir.clone()),
        family: protocol::jvm::family,
    };
    Store::open(store_config, server::udp::now_ms())
}

/// Run stackd until `shutdown` completes. The store is opened first: a damaged or newer-format
/// data dir stops stackd here, with the file named.
pub async fn run(config: Config, listeners: Listeners, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let started = std::time::Instant::now();
    let store = Arc::new(
        tokio::task::spawn_blocking({
            let config = config.clone();
            move || open_store(&config)
        })
        .await??,
    );
    tracing::info!(apps = store.apps().len(), elapsed_ms = started.elapsed().as_millis() as u64, "store opened");
    let ingest = Arc::new(Ingest::new(Arc::clone(&store), Metrics::new(), config.prefix_labels.clone()));
    let token = CancellationToken::new();

    let statsd_addr = listeners.statsd.local_addr()?;
    let recv_buffer = server::udp::recv_buffer_size(&listeners.statsd);
    let (queue_tx, queue_rx) = server::udp::queue();
    let udp_threads = {
        let (for_receiver, token) = (Arc::clone(&ingest), token.clone());
        let receiver = std::thread::Builder::new()
            .name("stackd-udp-recv".into())
            .spawn(move || {
                if let Err(e) = server::udp::receive_loop(listeners.statsd, for_receiver, queue_tx, token) {
                    tracing::error!(error = %e, "statsd receive loop failed");
                }
            })
            .context("cannot start the statsd receive thread")?;
        let ingest = Arc::clone(&ingest);
        let worker = std::thread::Builder::new()
            .name("stackd-udp-work".into())
            .spawn(move || server::udp::work_loop(queue_rx, ingest))
            .context("cannot start the statsd worker thread")?;
        [receiver, worker]
    };

    let (flusher, flush_requests) = Flusher::new();
    let flush_task = tokio::spawn(flush_loop(Arc::clone(&ingest), config.flush_interval, flush_requests, token.clone()));

    listeners.http.set_nonblocking(true)?;
    let http = tokio::net::TcpListener::from_std(listeners.http)?;
    let http_addr = http.local_addr()?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(server::conn::tls_acceptor(cert, key)?),
        _ => None,
    };
    let gauge_ttl_ms = config.gauge_ttl.as_millis() as i64;
    let limits = server::http::HttpLimits {
        request_timeout: config.http_request_timeout,
        max_concurrent_renders: config.max_concurrent_renders.unwrap_or_else(server::http::default_renders),
    };
    let mut state =
        AppState::new(Arc::clone(&ingest), config.max_body_size, gauge_ttl_ms, Some(statsd_addr.port()), recv_buffer).with_limits(limits);
    state.store_file = Some(config.data_dir.join(store::disk::FILE_NAME));
    state.flusher = config.sync_writes.then(|| flusher.clone());
    state.auth = server::auth::Auth {
        write: config.write_credentials.clone(),
        read: config.read_credentials.clone(),
        protect_metrics: config.auth_metrics,
    };
    let state = Arc::new(state);
    let conn_limits = server::conn::ConnLimits {
        max_connections: server::conn::fit_to_fd_limit(config.http_max_connections),
        header_timeout: config.http_header_timeout,
        idle_timeout: config.http_idle_timeout,
    };
    tracing::info!(
        %statsd_addr,
        %http_addr,
        tls = tls.is_some(),
        udp_recv_buffer = recv_buffer,
        max_connections = conn_limits.max_connections,
        data_dir = %config.data_dir.display(),
        "stackd listening"
    );

    tokio::spawn(log_rejects(Arc::clone(&ingest), token.clone()));
    let server =
        tokio::spawn(server::conn::serve(http, tls, server::http::router(state), conn_limits, ingest.metrics.clone(), token.clone()));
    shutdown.await;
    tracing::info!("shutting down");
    token.cancel();
    server.await.context("HTTP server task failed")?;
    // The receiver stops, then the worker drains what was queued.
    for thread in udp_threads {
        tokio::task::spawn_blocking(move || thread.join()).await?.map_err(|_| anyhow::anyhow!("a statsd thread panicked"))?;
    }
    flush_task.await.context("flush task failed")?;
    // Everything received is in memory now: write it out.
    let stats = tokio::task::spawn_blocking(move || store.flush(server::udp::now_ms())).await?.context("final flush failed")?;
    tracing::info!(buckets = stats.buckets, "stopped; everything flushed");
    Ok(())
}

/// Asks the flush loop for a flush and waits until it is durable (`--sync-writes`).
#[derive(Clone, Debug)]
pub struct Flusher {
    requests: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

type FlushRequests = tokio::sync::mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<Result<(), String>>>;

impl Flusher {
    fn new() -> (Flusher, FlushRequests) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Flusher { requests: tx }, rx)
    }

    /// Wait for a flush that starts after this call. Concurrent callers share one commit.
    pub async fn sync(&self) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.requests.send(tx).map_err(|_| "stackd is shutting down".to_string())?;
        rx.await.map_err(|_| "stackd is shutting down".to_string())?
    }
}

/// Flush every `interval`, and at once when a writer waits for durability; every waiter that
/// arrived before a flush started is answered by that flush.
async fn flush_loop(ingest: Arc<Ingest>, interval: Duration, mut requests: FlushRequests, token: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut waiters = Vec::new();
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {}
            Some(w) = requests.recv() => waiters.push(w),
        }
        while let Ok(w) = requests.try_recv() {
            waiters.push(w);
        }
        let store = Arc::clone(&ingest.store);
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || store.flush(server::udp::now_ms())).await;
        ingest.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        let result = match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            ingest.metrics.flush_failures.inc();
            tracing::error!(error = %e, "flush to the store failed; the data stays in memory and the next flush retries");
        }
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
    // Writers still waiting get the final flush's durability only if they wait for shutdown;
    // tell them now rather than leave them hanging.
    while let Ok(w) = requests.try_recv() {
        let _ = w.send(Err("stackd is shutting down".into()));
    }
}

/// Summarise rejected lines once a minute, never per packet.
async fn log_rejects(ingest: Arc<Ingest>, token: CancellationToken) {
    let mut last = ingest.metrics.rejected_by_reason();
    let mut tick = tokio::time::interval(REJECT_LOG_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = ingest.metrics.rejected_by_reason();
        let delta: Vec<String> = now
            .iter()
            .filter_map(|(k, v)| {
                let d = v - last.get(k).copied().unwrap_or(0);
                (d > 0).then(|| format!("{}/{}={d}", k.0, k.1))
            })
            .collect();
        if !delta.is_empty() {
            tracing::warn!(rejected = %delta.join(" "), "lines rejected in the last minute (protocol/reason=count); see stackd_lines_rejected_total");
        }
        last = now;
    }
}
