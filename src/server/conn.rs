//! The HTTP connection layer: accept loop, connection cap, timeouts, optional TLS.
//!
//! axum's own `serve` has no connection cap and no timeouts, so one client holding idle or
//! half-sent connections can exhaust file descriptors. Here every connection:
//!
//! * takes a slot of `--http-max-connections`. When none is free, the connection that has been
//!   idle longest (no request in flight) is closed to make room, as nginx reuses keep-alive
//!   connections; when every connection is busy, the new one is closed at once. Either way it is
//!   counted (`stackd_limit_hits_total{limit="connections"}`), so a flood of idle connections
//!   never makes stackd unanswerable and the listen backlog keeps draining;
//! * is closed when a request head has started arriving but is not complete within
//!   `--http-header-timeout` (slow headers; `limit="header_timeout"`), or when it has been idle,
//!   no request in flight and no bytes moving, for `--http-idle-timeout` (`limit="idle_timeout"`);
//! * with `--tls-cert`/`--tls-key`, completes its TLS handshake within the header timeout.
//!
//! Request bodies have their own deadline (`--http-request-timeout`, in the handlers). Shutdown
//! stops accepting, lets requests in flight finish (bounded), then closes what is left.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::outcome::{Limit, RequestReject};
use crate::server::workers::Workers;

/// How long shutdown waits for requests in flight before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Connection limits and timeouts (the `--http-*` flags).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// A TLS server configuration from PEM files: the certificate chain and its private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("{} holds no PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not fit together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serve `router` on `listener` until `shutdown` is cancelled, each connection on one of
/// `workers`' threads; the threads are stopped once the connections have ended.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    workers: Workers,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ConnLimits,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open: Arc<Mutex<HashMap<u64, Arc<Handle>>>> = Arc::default();
    let mut next_id = 0u64;
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: say so, back off, keep serving.
                    metrics.http_accept_errors.inc();
                    tracing::warn!(error = %e, "cannot accept an HTTP connection (stackd_http_accept_errors_total)");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics.limit_hit(Limit::Connections);
                let Some(idlest) = idlest(&open) else {
                    drop(stream); // every connection is busy
                    continue;
                };
                idlest.close.notify_one();
                match tokio::time::timeout(EVICTION_WAIT, Arc::clone(&slots).acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => {
                        drop(stream);
                        continue;
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        // Out of this runtime's reactor, into the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "cannot hand an accepted connection to a worker");
                continue;
            }
        };
        let handle = Arc::new(Handle { activity: Arc::new(Activity::new()), close: Notify::new() });
        next_id += 1;
        let id = next_id;
        open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Arc::clone(&handle));
        let (router, metrics, tls, shutdown, open) = (router.clone(), metrics.clone(), tls.clone(), shutdown.clone(), Arc::clone(&open));
        let (runtime, seat) = workers.place();
        let serve = async move {
            let _seat = seat;
            metrics.http_connections.inc();
            match TcpStream::from_std(stream) {
                Ok(stream) => serve_connection(stream, tls, router, limits, &metrics, &handle, shutdown).await,
                Err(e) => tracing::debug!(error = %e, "cannot register an accepted connection"),
            }
            metrics.http_connections.dec();
            open.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            drop(slot);
        };
        connections.spawn_on(serve, runtime);
    }
    drop(listener);
    // Let requests in flight finish; idle connections close at once on graceful shutdown.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = connections.len(), "closing HTTP connections still busy after the shutdown grace period");
        connections.shutdown().await;
    }
    if tokio::task::spawn_blocking(move || workers.stop()).await.is_err() {
        tracing::error!("stopping the HTTP connection threads failed");
    }
}

/// How long a new connection waits for the slot of an idle connection it asked to close.
const EVICTION_WAIT: Duration = Duration::from_millis(200);

/// An open connection, as the accept loop sees it.
#[derive(Debug)]
struct Handle {
    activity: Arc<Activity>,
    /// Asks the connection to close (to make room for a new one).
    close: Notify,
}

/// The open connection idle the longest (none in flight), if any.
fn idlest(open: &Mutex<HashMap<u64, Arc<Handle>>>) -> Option<Arc<Handle>> {
    let open = open.lock().unwrap_or_else(|e| e.into_inner());
    open.values().filter(|h| h.activity.in_flight.load(Ordering::Relaxed) == 0).min_by_key(|h| h.activity.idle_since()).map(Arc::clone)
}

/// What the watchdog of one connection reads: set by the I/O wrapper and the service.
#[derive(Debug)]
struct Activity {
    started: Instant,
    /// Requests being handled.
    in_flight: AtomicUsize,
    /// Milliseconds since `started` of the last byte moved, or the last response.
    last_active: AtomicI64,
    /// Milliseconds since `started` of the first byte of a request head not yet complete; -1
    /// when none is arriving.
    head_started: AtomicI64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_active: AtomicI64::new(0),
            head_started: AtomicI64::new(-1),
        }
    }

    /// When this connection last did something, on one clock for all connections.
    fn idle_since(&self) -> Instant {
        self.started + Duration::from_millis(self.last_active.load(Ordering::Relaxed).max(0) as u64)
    }

    fn now(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn on_read(&self) {
        let now = self.now();
        self.last_active.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started.compare_exchange(-1, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn on_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(-1, Ordering::Relaxed);
    }

    fn on_response(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.last_active.store(self.now(), Ordering::Relaxed);
    }

    /// Why the connection should be closed now, if it should.
    fn expired(&self, limits: &ConnLimits) -> Option<Limit> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = self.now();
        let head = self.head_started.load(Ordering::Relaxed);
        if head >= 0 && now - head >= limits.header_timeout.as_millis() as i64 {
            return Some(Limit::HeaderTimeout);
        }
        if head < 0 && now - self.last_active.load(Ordering::Relaxed) >= limits.idle_timeout.as_millis() as i64 {
            return Some(Limit::IdleTimeout);
        }
        None
    }
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ConnLimits,
    metrics: &Metrics,
    handle: &Handle,
    shutdown: CancellationToken,
) {
    let io = Watched { inner: stream, activity: Arc::clone(&handle.activity) };
    match tls {
        None => drive(io, router, limits, metrics, handle, shutdown).await,
        Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
            Ok(Ok(tls_stream)) => drive(tls_stream, router, limits, metrics, handle, shutdown).await,
            Ok(Err(e)) => {
                metrics.request_rejected(RequestReject::TlsHandshake);
                tracing::debug!(error = %e, "TLS handshake failed");
            }
            Err(_) => metrics.limit_hit(Limit::HeaderTimeout),
        },
    }
}

async fn drive<I>(io: I, router: Router, limits: ConnLimits, metrics: &Metrics, handle: &Handle, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = &handle.activity;
    let service = {
        let activity = Arc::clone(activity);
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut router = router.clone();
            let activity = Arc::clone(&activity);
            activity.on_request();
            async move {
                let response = tower_service::Service::call(&mut router, request).await;
                activity.on_response();
                response
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // The watchdog below times headers (and idleness) itself.
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut watchdog = tokio::time::interval(tick);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            // Evicted to make room, unless a request started meanwhile.
            _ = handle.close.notified() => if activity.in_flight.load(Ordering::Relaxed) == 0 { return },
            _ = watchdog.tick() => {
                if let Some(limit) = activity.expired(&limits) {
                    metrics.limit_hit(limit);
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// The socket, noting when bytes move (for the watchdog).
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.last_active.store(self.activity.now(), Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.last_active.store(self.activity.now(), Ordering::Relaxed);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// File descriptors kept for everything but HTTP connections (store, sockets, /proc reads).
const FD_RESERVE: u64 = 64;

/// Raise the soft open-files limit to the hard one (as Go's runtime does), and return how many
/// HTTP connections fit under it: `wanted`, or fewer (with a warning) when the limit is lower.
pub fn fit_to_fd_limit(wanted: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return wanted };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    let room = usize::try_from(soft.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX).max(16);
    if room < wanted {
        tracing::warn!(
            open_files_limit = soft,
            wanted,
            using = room,
            "the open-files limit leaves room for fewer HTTP connections than --http-max-connections; raise LimitNOFILE (deploy/stackd.service) or ulimit -n"
        );
        return room;
    }
    wanted
}
