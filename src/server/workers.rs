//! The threads HTTP connections are served on: one single-threaded tokio runtime each, one per
//! core by default (`--http-threads`).
//!
//! The accept loop hands each new connection to the thread with the fewest open (ties taken in
//! turn), and the connection stays there until it closes: its socket's readiness, the request's
//! parsing, the ingest and the response all happen on that thread. On the shared multi-threaded
//! runtime a request woke one worker, which then woke another to steal its queue, and a
//! connection moved between cores from request to request; at tens of thousands of small writes
//! a second that cost more CPU than storing them (BENCHMARKS.md, "Against the peers"). Placing
//! connections here rather than with a kernel-balanced `SO_REUSEPORT` keeps the threads evenly
//! loaded with few connections (the kernel's hash can put 3 of 4 on one thread) and as
//! connections come and go.
//!
//! Slow work still leaves the thread: rendering, large bodies and imports go to the blocking
//! pool, as they did before.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// The connection threads, started by [`Workers::start`] and joined by [`Workers::stop`].
#[derive(Debug)]
pub struct Workers {
    runtimes: Vec<Handle>,
    /// Open connections on each thread.
    load: Arc<[AtomicUsize]>,
    threads: Vec<JoinHandle<()>>,
    next: AtomicUsize,
    stop: CancellationToken,
}

impl Workers {
    /// Start `count` threads (at least one), each running its own runtime until [`Workers::stop`].
    pub fn start(count: usize) -> io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut runtimes = Vec::new();
        let mut threads = Vec::new();
        for i in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().thread_name(format!("stackd-http-{i}-blocking")).build()?;
            runtimes.push(runtime.handle().clone());
            let stopped = stop.clone();
            let thread = std::thread::Builder::new().name(format!("stackd-http-{i}")).spawn(move || runtime.block_on(stopped.cancelled()));
            match thread {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    Workers::new(runtimes, threads, stop).stop();
                    return Err(e);
                }
            }
        }
        Ok(Workers::new(runtimes, threads, stop))
    }

    fn new(runtimes: Vec<Handle>, threads: Vec<JoinHandle<()>>, stop: CancellationToken) -> Workers {
        let load = runtimes.iter().map(|_| AtomicUsize::new(0)).collect();
        Workers { runtimes, load, threads, next: AtomicUsize::new(0), stop }
    }

    /// How many threads serve connections.
    pub fn threads(&self) -> usize {
        self.runtimes.len()
    }

    /// Where a new connection goes: the runtime with the fewest open connections, ties taken in
    /// turn, and a [`Seat`] that counts the connection there until it is dropped.
    pub fn place(&self) -> (&Handle, Seat) {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.runtimes.len();
        let index = (0..n).map(|k| (start + k) % n).min_by_key(|&i| self.load[i].load(Ordering::Relaxed)).unwrap_or(0);
        self.load[index].fetch_add(1, Ordering::Relaxed);
        (&self.runtimes[index], Seat { load: Arc::clone(&self.load), index })
    }

    /// Stop every thread and wait for it. Tasks still on a runtime are dropped: call this once
    /// the connections have ended.
    pub fn stop(mut self) {
        self.stop.cancel();
        for thread in std::mem::take(&mut self.threads) {
            if thread.join().is_err() {
                tracing::error!("an HTTP connection thread panicked");
            }
        }
    }
}

impl Drop for Workers {
    /// Threads not stopped (an error ended the server early) end with it.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A connection's place on a thread; the thread's count goes down when it is dropped.
#[derive(Debug)]
pub struct Seat {
    load: Arc<[AtomicUsize]>,
    index: usize,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.load[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name of the thread a task spawned on `runtime` runs on.
    fn runs_on(runtime: &Handle) -> String {
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move { tx.send(std::thread::current().name().unwrap_or_default().to_string()).expect("the test waits") });
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the task ran")
    }

    #[test]
    fn connections_go_to_the_thread_with_fewest_and_run_there() {
        let workers = Workers::start(3).expect("threads start");
        assert_eq!(workers.threads(), 3);
        // Equal load: in turn.
        let mut seats = Vec::new();
        let mut names = Vec::new();
        for _ in 0..6 {
            let (runtime, seat) = workers.place();
            names.push(runs_on(runtime));
            seats.push(seat);
        }
        assert_eq!(names, ["stackd-http-0", "stackd-http-1", "stackd-http-2", "stackd-http-0", "stackd-http-1", "stackd-http-2"]);
        // Both connections of thread 1 close: the next two go there, whoever's turn it is.
        drop(seats.remove(4));
        drop(seats.remove(1));
        let placed: Vec<(String, Seat)> = (0..2)
            .map(|_| {
                let (runtime, seat) = workers.place();
                (runs_on(runtime), seat)
            })
            .collect();
        assert_eq!(placed.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["stackd-http-1", "stackd-http-1"]);
        let (runtime, _seat) = workers.place();
        assert_eq!(runs_on(runtime), "stackd-http-2", "all at two: in turn again (the turn is at thread 2)");
        workers.stop();
    }

    #[test]
    fn zero_threads_means_one() {
        let workers = Workers::start(0).expect("a thread starts");
        assert_eq!(workers.threads(), 1);
        workers.stop();
    }
}
