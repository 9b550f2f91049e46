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
//! * [`server`]: the UDP receive thread and the axum HTTP server.

pub mod config;
pub mod ingest;
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
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::server::http::AppState;
use crate::store::{Limits, Store};

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

/// How often rejected lines are summarised in the log.
const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Run stackd until `shutdown` completes.
pub async fn run(config: Config, listeners: Listeners, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create --data-dir {}", config.data_dir.display()))?;
    let store = Arc::new(Store::new(Limits { max_apps: config.max_apps, max_stacks_per_app: config.max_stacks_per_app }, config.bucket));
    let ingest = Arc::new(Ingest::new(store, Metrics::new(), config.prefix_labels.clone()));
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

    listeners.http.set_nonblocking(true)?;
    let http = tokio::net::TcpListener::from_std(listeners.http)?;
    let http_addr = http.local_addr()?;
    let gauge_ttl_ms = config.gauge_ttl.as_millis() as i64;
    let state = Arc::new(AppState::new(Arc::clone(&ingest), config.max_body_size, gauge_ttl_ms, Some(statsd_addr.port()), recv_buffer));
    tracing::info!(%statsd_addr, %http_addr, udp_recv_buffer = recv_buffer, data_dir = %config.data_dir.display(), "stackd listening");

    tokio::spawn(log_rejects(Arc::clone(&ingest), token.clone()));
    let server = {
        let token = token.clone();
        axum::serve(http, server::http::router(state)).with_graceful_shutdown(async move { token.cancelled().await })
    };
    let server = tokio::spawn(async move { server.await });
    shutdown.await;
    tracing::info!("shutting down");
    token.cancel();
    server.await.context("HTTP server task failed")?.context("HTTP server failed")?;
    // The receiver stops, then the worker drains what was queued.
    for thread in udp_threads {
        tokio::task::spawn_blocking(move || thread.join()).await?.map_err(|_| anyhow::anyhow!("a statsd thread panicked"))?;
    }
    tracing::info!("stopped");
    Ok(())
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
