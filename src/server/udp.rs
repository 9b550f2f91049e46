//! The statsd socket: bound with socket2 (SO_RCVBUF sized for bursts), read by a dedicated
//! thread that parses and stores each datagram in place — no queue, no allocation per datagram.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use crate::ingest::Ingest;

/// Larger than any UDP payload (65,507 bytes over IPv4), so no datagram is ever truncated.
const RECV_BUFFER: usize = 65_536;
/// How often the receive thread looks at the shutdown token while the socket is idle.
const POLL: Duration = Duration::from_millis(100);

/// Bind the statsd socket and ask for a kernel receive buffer of `recv_buffer` bytes.
pub fn bind(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_recv_buffer_size(recv_buffer)?;
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size()?;
    // Linux reports twice what it grants, and caps the request at net.core.rmem_max.
    if granted < recv_buffer {
        tracing::warn!(
            requested = recv_buffer,
            granted,
            "the kernel granted a smaller UDP receive buffer than --udp-recv-buffer; raise net.core.rmem_max to avoid drops in bursts"
        );
    }
    Ok(socket.into())
}

/// Effective receive buffer of a bound socket, bytes.
pub fn recv_buffer_size(socket: &UdpSocket) -> usize {
    socket2::SockRef::from(socket).recv_buffer_size().unwrap_or(0)
}

/// Receive until `shutdown` is cancelled. Runs on its own thread.
pub fn receive_loop(socket: UdpSocket, ingest: Arc<Ingest>, shutdown: CancellationToken) {
    if let Err(e) = socket.set_read_timeout(Some(POLL)) {
        tracing::error!(error = %e, "cannot set the statsd socket timeout; shutdown may wait for a datagram");
    }
    let mut buf = vec![0u8; RECV_BUFFER];
    while !shutdown.is_cancelled() {
        match socket.recv(&mut buf) {
            Ok(n) => {
                ingest.metrics.udp_datagrams.inc();
                ingest.metrics.udp_bytes.inc_by(n as u64);
                ingest.statsd_datagram(&buf[..n], now_ms());
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            Err(e) => {
                ingest.metrics.udp_errors.inc();
                tracing::debug!(error = %e, "statsd receive error");
            }
        }
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
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
