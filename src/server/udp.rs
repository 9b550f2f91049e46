//! The statsd socket: bound with socket2 (SO_RCVBUF sized for bursts) and drained by a dedicated
//! thread that does nothing but receive. Agents flush once a second as a burst of hundreds of
//! datagrams, and a stack seen for the first time costs far more to store than to receive, so
//! received datagrams are copied into a shared arena (one allocation per [`ARENA_CHUNK`]) and
//! handed to a worker thread through a bounded queue. When the queue is full the receiver waits and
//! the kernel buffer absorbs the rest; drops beyond that are counted by the kernel and exported.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use crate::input::Inputs;
use crate::metrics::Metrics;
use crate::now_ms;
use crate::outcome::{Outcome, Reject};

/// Larger than any UDP payload (65,507 bytes over IPv4), so no datagram is ever truncated.
const RECV_BUFFER: usize = 65_536;
/// Datagrams are copied into chunks of this size; a chunk is freed when its last datagram is.
const ARENA_CHUNK: usize = 4 * 1024 * 1024;
/// Batches waiting for the worker, at most. A full queue makes the receiver wait, and the kernel
/// buffer absorbs the rest.
const QUEUE_BATCHES: usize = 256;

/// Bind the statsd socket and ask for a kernel receive buffer of `recv_buffer` bytes.
///
/// Linux caps SO_RCVBUF at `net.core.rmem_max`; with CAP_NET_ADMIN (root, or the capability
/// granted to the service) SO_RCVBUFFORCE sets the size regardless, and is tried first.
pub fn bind(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    let size = recv_buffer.min(i32::MAX as usize);
    if force_recv_buffer(&socket, size).is_err() {
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size()?;
    // Linux reports twice what it grants.
    if granted < recv_buffer {
        tracing::warn!(
            requested = recv_buffer,
            granted,
            "the kernel granted a smaller UDP receive buffer than --udp-recv-buffer; raise net.core.rmem_max to avoid drops in bursts"
        );
    }
    Ok(socket.into())
}

#[cfg(target_os = "linux")]
fn force_recv_buffer(socket: &Socket, size: usize) -> nix::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::RcvBufForce, &size)
}

#[cfg(not(target_os = "linux"))]
fn force_recv_buffer(_: &Socket, _: usize) -> Result<(), ()> {
    Err(())
}

/// Effective receive buffer of a bound socket, bytes.
pub fn recv_buffer_size(socket: &UdpSocket) -> usize {
    socket2::SockRef::from(socket).recv_buffer_size().unwrap_or(0)
}

/// Start the receive thread and the worker thread; both stop when `shutdown` is cancelled (the
/// worker once it has drained the queue).
pub fn start(socket: UdpSocket, inputs: Arc<Inputs>, shutdown: CancellationToken) -> anyhow::Result<[std::thread::JoinHandle<()>; 2]> {
    let (queue_tx, queue_rx) = queue();
    let metrics = inputs.ingest.metrics.clone();
    let receiver = std::thread::Builder::new()
        .name("stackd-udp-recv".into())
        .spawn(move || {
            if let Err(e) = receive_loop(socket, &metrics, queue_tx, shutdown) {
                tracing::error!(error = %e, "statsd receive loop failed");
            }
        })
        .context("cannot start the statsd receive thread")?;
    let worker = std::thread::Builder::new()
        .name("stackd-udp-work".into())
        .spawn(move || work_loop(queue_rx, &inputs))
        .context("cannot start the statsd worker thread")?;
    Ok([receiver, worker])
}

/// A batch of datagrams handed from the receiver to the worker.
pub type Batch = Vec<Bytes>;

/// Most datagrams in one batch.
const BATCH: usize = 512;

/// Receive until `shutdown` is cancelled, handing batches to `queue`. Runs on its own thread with
/// a single-threaded runtime: it drains everything the socket holds (`try_recv` until it would
/// block), hands the batch over with one wake-up, then waits for readiness.
fn receive_loop(socket: UdpSocket, metrics: &Metrics, queue: SyncSender<Batch>, shutdown: CancellationToken) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    runtime.block_on(async move {
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut arena = BytesMut::with_capacity(ARENA_CHUNK);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ready = socket.readable() => ready?,
            }
            let mut batch = Vec::with_capacity(64);
            loop {
                match socket.try_recv(&mut buf) {
                    Ok(n) => {
                        metrics.udp_datagrams.inc();
                        metrics.udp_bytes.inc_by(n as u64);
                        if arena.capacity() - arena.len() < n {
                            arena = BytesMut::with_capacity(ARENA_CHUNK.max(n));
                        }
                        arena.extend_from_slice(&buf[..n]);
                        batch.push(arena.split_to(n).freeze());
                        if batch.len() == BATCH {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        metrics.udp_errors.inc();
                        tracing::debug!(error = %e, "statsd receive error");
                        break;
                    }
                }
            }
            if !batch.is_empty() && queue.send(batch).is_err() {
                return Ok(()); // the worker is gone
            }
        }
    })
}

/// Parse and store queued datagrams until the receiver hangs up (it drains fully on shutdown).
fn work_loop(queue: Receiver<Batch>, inputs: &Inputs) {
    let metrics = &inputs.ingest.metrics;
    for batch in queue {
        let now = now_ms();
        for datagram in &batch {
            // No datagram may stop this thread: a panic (a bug) costs that datagram only, and is
            // counted and logged.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inputs.statsd_datagram(datagram, now))).is_err() {
                inputs.statsd_tally().count(Outcome::Rejected(Reject::Internal));
                tracing::error!(
                    bytes = datagram.len(),
                    "a datagram made stackd fail; it was dropped (stackd_lines_rejected_total{{reason=\"internal_error\"}})"
                );
            }
        }
        metrics.udp_processed.inc_by(batch.len() as u64);
    }
}

/// The queue between the receive thread and the worker, in batches.
fn queue() -> (SyncSender<Batch>, Receiver<Batch>) {
    std::sync::mpsc::sync_channel(QUEUE_BATCHES)
}

/// Datagrams the kernel dropped for the UDP socket bound to `port` (the `drops` column of
/// /proc/net/udp and /proc/net/udp6). `None` where that file does not exist.
pub fn kernel_drops(port: u16) -> Option<u64> {
    let mut total = None;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols.get(1).and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                let drops = cols.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
                *total.get_or_insert(0) += drops;
            }
        }
    }
    total
}
