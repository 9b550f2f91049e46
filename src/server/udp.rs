//! The statsd socket: bound with socket2 (SO_RCVBUF sized for bursts) and drained by a dedicated
//! thread that does nothing but receive. Agents flush once a second as a burst of hundreds of
//! datagrams, and a stack seen for the first time costs far more to store than to receive, so
//! the receiver takes up to [`SLOTS`] datagrams per system call (`recvmmsg` on Linux), packs them
//! into a batch buffer and hands whole batches to a worker thread through a bounded queue; the
//! worker hands each buffer back when it is done, so buffers are reused, not allocated. When the
//! queue is full the receiver waits and the kernel buffer absorbs the rest; drops beyond that
//! are counted by the kernel and exported.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use crate::input::Inputs;
use crate::metrics::Metrics;
use crate::now_ms;
use crate::outcome::{Outcome, Reject};

/// Larger than any UDP payload (65,507 bytes over IPv4): each datagram is received into a slot
/// of this size, so no datagram is ever truncated.
const MAX_DATAGRAM: usize = 65_536;
/// Most datagrams one system call receives. The receiver's slots are reused for every call, and
/// their memory is only touched as far as datagrams reach.
const SLOTS: usize = 32;
/// A batch takes more datagrams while it holds fewer than this many, and fewer bytes than
/// [`BATCH_BYTES`].
const BATCH: usize = 512;
const BATCH_BYTES: usize = 512 * 1024;
/// Batches waiting for the worker, at most. A full queue makes the receiver wait, and the kernel
/// buffer absorbs the rest.
const QUEUE_BATCHES: usize = 256;
/// Emptied batch buffers kept for reuse, at most.
const SPARE_BATCHES: usize = 8;

/// Bind the statsd socket and ask for a kernel receive buffer of `recv_buffer` bytes.
///
/// Linux caps SO_RCVBUF at `net.core.rmem_max`; with CAP_NET_ADMIN (root, or the capability
/// granted to the service) SO_RCVBUFFORCE sets the size regardless, and is tried first.
///
/// No SO_REUSEADDR: on Linux it lets a second socket bind the same UDP port and take every
/// datagram from the first, silently. A port another process holds is an error.
pub fn bind(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
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
pub fn recv_buffer_size(socket: &impl std::os::fd::AsFd) -> usize {
    socket2::SockRef::from(socket).recv_buffer_size().unwrap_or(0)
}

/// Start the receive thread and the worker thread; both stop when `shutdown` is cancelled (the
/// worker once it has drained the queue).
pub fn start(socket: UdpSocket, inputs: Arc<Inputs>, shutdown: CancellationToken) -> anyhow::Result<[std::thread::JoinHandle<()>; 2]> {
    let (queue_tx, queue_rx) = std::sync::mpsc::sync_channel(QUEUE_BATCHES);
    // Buffers go back to the receiver; it never waits for one (it allocates when none is back).
    // A few are kept: after a burst that filled the queue the rest are freed, not held.
    let (spare_tx, spare_rx) = std::sync::mpsc::sync_channel(SPARE_BATCHES);
    let metrics = inputs.ingest.metrics.clone();
    let receiver = std::thread::Builder::new()
        .name("stackd-udp-recv".into())
        .spawn(move || {
            if let Err(e) = receive_loop(socket, &metrics, queue_tx, spare_rx, shutdown) {
                tracing::error!(error = %e, "statsd receive loop failed");
            }
        })
        .context("cannot start the statsd receive thread")?;
    let worker = std::thread::Builder::new()
        .name("stackd-udp-work".into())
        .spawn(move || work_loop(queue_rx, spare_tx, &inputs))
        .context("cannot start the statsd worker thread")?;
    Ok([receiver, worker])
}

/// Datagrams received back to back into one buffer, handed from the receiver to the worker.
#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    /// Where each datagram ends in `data`.
    ends: Vec<usize>,
}

impl Batch {
    fn is_full(&self) -> bool {
        self.ends.len() >= BATCH || self.data.len() >= BATCH_BYTES
    }

    fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let d = &self.data[start..end];
            start = end;
            d
        })
    }

    fn push(&mut self, datagram: &[u8]) {
        self.data.extend_from_slice(datagram);
        self.ends.push(self.data.len());
    }
}

/// Receive until `shutdown` is cancelled, handing batches to `queue`. Runs on its own thread with
/// a single-threaded runtime: once the socket is readable it drains everything the socket holds
/// (up to [`SLOTS`] datagrams a system call). A batch that is not full when the socket runs dry
/// is held for up to [`HOLD`], draining again every [`HOLD_STEP`], while datagrams keep coming:
/// under load, one wake-up of the worker and one readiness wait per batch instead of one per few
/// datagrams (the thread switches cost more than the datagrams). A drain that finds nothing hands
/// the batch over at once, so a lone datagram waits at most one step.
fn receive_loop(
    socket: UdpSocket,
    metrics: &Metrics,
    queue: SyncSender<Batch>,
    spare: Receiver<Batch>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    runtime.block_on(async move {
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let mut slots = Slots::new();
        // A step that brought more than this is not repeated: the kernel buffer must not fill
        // while the receiver sleeps (the kernel charges a datagram its buffer overhead too,
        // about twice a small datagram's size).
        let hold_bytes = recv_buffer_size(&socket) / 16;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ready = socket.readable() => ready?,
            }
            let mut batch = spare.try_recv().unwrap_or_default();
            let started = std::time::Instant::now();
            // The first drain goes through tokio, which clears the readiness it saw once the
            // socket runs dry; the later ones ask the socket itself (tokio's readiness is not
            // refreshed while this thread sleeps). Datagrams that arrive after the last drain
            // wake the readiness wait again.
            let mut through_tokio = true;
            loop {
                let bytes = drain(&socket, &mut slots, &mut batch, metrics, through_tokio);
                if bytes == 0 || bytes > hold_bytes || batch.is_full() || started.elapsed() >= HOLD {
                    break;
                }
                std::thread::sleep(HOLD_STEP);
                through_tokio = false;
            }
            if !batch.ends.is_empty() && queue.send(batch).is_err() {
                return Ok(()); // the worker is gone
            }
        }
    })
}

/// How long a batch that is not full gathers datagrams before it is handed over, at most.
const HOLD: std::time::Duration = std::time::Duration::from_millis(2);
/// How long the receiver sleeps between drains while it holds a batch.
const HOLD_STEP: std::time::Duration = std::time::Duration::from_micros(500);

/// Receive into `batch` until the socket would block or the batch is full: how many bytes.
/// `through_tokio`: each call through tokio's readiness (which a would-block clears), or straight
/// to the socket.
fn drain(socket: &tokio::net::UdpSocket, slots: &mut Slots, batch: &mut Batch, metrics: &Metrics, through_tokio: bool) -> usize {
    let mut total = 0;
    while !batch.is_full() {
        let result =
            if through_tokio { socket.try_io(tokio::io::Interest::READABLE, || slots.receive(socket)) } else { slots.receive(socket) };
        match result {
            Ok(received) => {
                let mut bytes = 0;
                for datagram in slots.datagrams(received) {
                    bytes += datagram.len();
                    batch.push(datagram);
                }
                metrics.udp_datagrams.inc_by(received as u64);
                metrics.udp_bytes.inc_by(bytes as u64);
                total += bytes;
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
    total
}

/// The receiver's slots: on Linux up to [`SLOTS`] datagrams per `recvmmsg`, elsewhere one `recv`
/// at a time.
struct Slots {
    /// [`SLOTS`] slots of [`MAX_DATAGRAM`] bytes.
    data: Vec<u8>,
    /// The length of the datagram in each slot filled by the last call.
    lens: Vec<usize>,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<()>,
}

impl Slots {
    fn new() -> Self {
        Slots {
            data: vec![0; SLOTS * MAX_DATAGRAM],
            lens: Vec::with_capacity(SLOTS),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(SLOTS, None),
        }
    }

    /// The datagrams of the last call.
    fn datagrams(&self, received: usize) -> impl Iterator<Item = &[u8]> {
        self.lens[..received].iter().enumerate().map(|(i, &len)| &self.data[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len])
    }

    /// Receive what the socket holds, up to the slots; how many datagrams.
    #[cfg(target_os = "linux")]
    fn receive(&mut self, socket: &tokio::net::UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd as _;

        use nix::sys::socket::{recvmmsg, MsgFlags};
        let mut iovs: Vec<[io::IoSliceMut<'_>; 1]> = self.data.chunks_mut(MAX_DATAGRAM).map(|slot| [io::IoSliceMut::new(slot)]).collect();
        let received = recvmmsg(socket.as_raw_fd(), &mut self.headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
        self.lens.clear();
        self.lens.extend(received.map(|m| m.bytes));
        Ok(self.lens.len())
    }

    #[cfg(not(target_os = "linux"))]
    fn receive(&mut self, socket: &tokio::net::UdpSocket) -> io::Result<usize> {
        let n = socket.try_recv(&mut self.data[..MAX_DATAGRAM])?;
        self.lens.clear();
        self.lens.push(n);
        Ok(1)
    }
}

/// Parse and store queued datagrams until the receiver hangs up (it drains fully on shutdown),
/// handing each buffer back to the receiver.
fn work_loop(queue: Receiver<Batch>, spare: SyncSender<Batch>, inputs: &Inputs) {
    let metrics = &inputs.ingest.metrics;
    for mut batch in queue {
        let now = now_ms();
        // One run of writes per batch: origins resolved once, totals written once.
        let mut w = inputs.statsd_writer();
        for datagram in batch.datagrams() {
            // No datagram may stop this thread: a panic (a bug) costs that datagram only, and is
            // counted and logged.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inputs.statsd_into(&mut w, datagram, now))).is_err() {
                inputs.statsd_tally().count(Outcome::Rejected(Reject::Internal));
                tracing::error!(
                    bytes = datagram.len(),
                    "a datagram made stackd fail; it was dropped (stackd_lines_rejected_total{{reason=\"internal_error\"}})"
                );
            }
        }
        drop(w);
        metrics.udp_processed.inc_by(batch.ends.len() as u64);
        batch.data.clear();
        batch.ends.clear();
        let _ = spare.try_send(batch); // when enough are spare, this one is freed
    }
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
