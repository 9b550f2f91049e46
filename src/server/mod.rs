//! The running service: [`run`] opens the store, starts the statsd threads, the flush loop and
//! the HTTP server, and on shutdown drains and flushes everything.
//!
//! * [`udp`]: the statsd socket, its receive thread and its worker.
//! * [`conn`]: the HTTP connection layer (connection cap, timeouts, TLS).
//! * [`workers`]: the threads HTTP connections are served on, one single-threaded runtime each.
//! * [`auth`]: optional credentials for writers and readers.
//! * [`http`]: the router; the InfluxDB-compatible write API ([`http::write`]) and what people
//!   read ([`http::read`]).
//! * [`flush`]: the flush loop and `--sync-writes`.

pub mod auth;
pub mod conn;
pub mod flush;
pub mod http;
pub mod udp;
pub mod workers;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ingest::{Ingest, REJECT_LOG_INTERVAL};
use crate::input::Inputs;
use crate::metrics::Metrics;
use crate::now_ms;
use crate::store::{self, Limits, Store, StoreConfig};

/// Sockets bound by the caller (tests bind port 0 and read the addresses back).
#[derive(Debug)]
pub struct Listeners {
    pub statsd: std::net::UdpSocket,
    pub http: std::net::TcpListener,
}

impl Listeners {
    /// Bind both sockets as configured.
    pub fn bind(config: &Config) -> anyhow::Result<Self> {
        let statsd = udp::bind(config.statsd_addr, config.udp_recv_buffer).map_err(|e| {
            let held = if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another process, perhaps another stackd, holds this port: stop it or choose another --statsd-addr)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot bind statsd UDP socket on {}: {e}{held}", config.statsd_addr)
        })?;
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
            max_series: config.max_series,
            max_name_len: config.max_name_length,
            max_frame_len: config.max_frame_length,
            max_stack_depth: config.max_stack_depth,
        },
        bucket: config.bucket,
        retention: config.retention,
        memory_window: config.memory_window,
        max_future: config.max_future,
        data_dir: Some(config.data_dir.clone()),
        family: crate::input::family,
        outbox: config.object_store.is_some(),
    };
    Store::open(store_config, now_ms())
}

/// Run stackd until `shutdown` completes. The store is opened first: a damaged or newer-format
/// data dir stops stackd here, with the file named.
pub async fn run(config: Config, listeners: Listeners, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let store = Arc::new(
        tokio::task::spawn_blocking({
            let config = config.clone();
            move || open_store(&config)
        })
        .await??,
    );
    tracing::info!(apps = store.apps().len(), elapsed_ms = started.elapsed().as_millis() as u64, "store opened");
    let metrics = Metrics::new();
    let ingest = Arc::new(Ingest::new(Arc::clone(&store), metrics.clone()));
    let inputs = Arc::new(Inputs::new(ingest, config.prefix_labels.clone()));
    let token = CancellationToken::new();

    let statsd_addr = listeners.statsd.local_addr()?;
    let recv_buffer = udp::recv_buffer_size(&listeners.statsd);
    let udp_threads = udp::start(listeners.statsd, Arc::clone(&inputs), token.clone())?;

    let (flusher, flush_requests) = flush::Flusher::new();
    let flush_task = tokio::spawn(flush::flush_loop(
        Arc::clone(&store),
        metrics.clone(),
        config.flush_interval,
        config.gauge_ttl,
        flush_requests,
        token.clone(),
    ));

    // Scale-out: this node's segments out, the other nodes' in.
    let cluster = match &config.object_store {
        Some(objects) => {
            let node = crate::cluster::node_id(&store, config.node_id.as_deref())?;
            tracing::info!(store = %objects.describe(), node = %node, interval = ?config.segment_interval, "sharing this node's profiles through object storage");
            let status = Arc::new(crate::cluster::Status::new(objects.describe(), node.clone()));
            let sharing = crate::cluster::Sharing {
                node,
                interval: config.segment_interval,
                pack_segments: config.pack_segments,
                keep: config.retention + config.max_future,
            };
            let task = tokio::spawn(crate::cluster::run(
                Arc::clone(&store),
                objects.clone().counted(&metrics),
                sharing,
                metrics.clone(),
                Arc::clone(&status),
                token.clone(),
            ));
            Some((status, task))
        }
        None => None,
    };

    let (flink, flink_tasks) = crate::input::flink::poller::start(
        crate::input::flink::poller::PollerConfig {
            endpoints: config.flink_rest.clone(),
            interval: config.flink_poll_interval,
            timeout: config.flink_timeout,
            types: config.flink_graphs.clone(),
            max_body: config.max_body_size,
            max_requests: config.flink_max_requests,
            deadline: config.flink_poll_deadline,
        },
        Arc::clone(&inputs.ingest),
        token.clone(),
    );

    let profiling_tasks = crate::input::flink::profiling::start(
        crate::input::flink::profiling::ProfilingConfig {
            endpoints: config.flink_rest.clone(),
            modes: config.flink_profiling.clone(),
            duration: config.flink_profiling_duration,
            interval: config.flink_profiling_interval,
            timeout: config.flink_timeout,
            max_body: config.max_body_size,
            app: config.flink_profiling_app.clone(),
        },
        Arc::clone(&inputs.ingest),
        flink.clone(),
        token.clone(),
    );

    let jfr_dir = (!config.jfr_dirs.is_empty()).then(|| {
        tokio::spawn(crate::input::jfr_dir::watch(
            crate::input::jfr_dir::DirConfig {
                dirs: config.jfr_dirs.clone(),
                interval: config.jfr_scan_interval,
                max_chunk: config.max_jfr_chunk_size,
            },
            Arc::clone(&inputs.ingest),
            token.clone(),
        ))
    });

    listeners.http.set_nonblocking(true)?;
    let http = tokio::net::TcpListener::from_std(listeners.http)?;
    let http_addr = http.local_addr()?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(conn::tls_acceptor(cert, key)?),
        _ => None,
    };
    let state = Arc::new(http::AppState::new(
        inputs,
        http::Settings {
            limits: http::HttpLimits::from_config(&config),
            statsd: Some(http::StatsdSocket { port: statsd_addr.port(), recv_buffer }),
            store_file: Some(config.data_dir.join(store::disk::FILE_NAME)),
            flusher: config.sync_writes.then_some(flusher),
            auth: auth::Auth {
                write: config.write_credentials.clone(),
                read: config.read_credentials.clone(),
                protect_metrics: config.auth_metrics,
            },
            flink,
            cluster: cluster.as_ref().map(|(status, _)| Arc::clone(status)),
        },
    ));
    let conn_limits = conn::ConnLimits {
        max_connections: conn::fit_to_fd_limit(config.http_max_connections),
        header_timeout: config.http_header_timeout,
        idle_timeout: config.http_idle_timeout,
    };
    let workers = workers::Workers::start(config.http_threads.map_or_else(http::default_renders, usize::from))?;
    tracing::info!(
        %statsd_addr,
        %http_addr,
        tls = tls.is_some(),
        udp_recv_buffer = recv_buffer,
        max_connections = conn_limits.max_connections,
        http_threads = workers.threads(),
        data_dir = %config.data_dir.display(),
        flink_rest = config.flink_rest.len(),
        "stackd listening"
    );

    tokio::spawn(log_rejects(metrics.clone(), token.clone()));
    let server = tokio::spawn(conn::serve(http, workers, tls, http::router(state), conn_limits, metrics, token.clone()));
    shutdown.await;
    tracing::info!("shutting down");
    token.cancel();
    server.await.context("HTTP server task failed")?;
    // The receiver stops, then the worker drains what was queued.
    for thread in udp_threads {
        tokio::task::spawn_blocking(move || thread.join()).await?.map_err(|_| anyhow::anyhow!("a statsd thread panicked"))?;
    }
    for task in flink_tasks {
        task.await.context("Flink poller failed")?;
    }
    for task in profiling_tasks {
        task.await.context("the --flink-profiling task failed")?;
    }
    if let Some(task) = jfr_dir {
        task.await.context("the --jfr-dir watcher failed")?;
    }
    flush_task.await.context("flush task failed")?;
    if let Some((_, task)) = cluster {
        task.await.context("the object-store task failed")?;
    }
    // Everything received is in memory now: write it out.
    let stats = tokio::task::spawn_blocking(move || store.flush(now_ms())).await?.context("final flush failed")?;
    tracing::info!(buckets = stats.buckets, "stopped; everything flushed");
    Ok(())
}

/// Summarise rejected lines once a minute, never per packet.
async fn log_rejects(metrics: Metrics, token: CancellationToken) {
    let mut last = metrics.rejected_by_reason();
    let mut tick = tokio::time::interval(REJECT_LOG_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = metrics.rejected_by_reason();
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
