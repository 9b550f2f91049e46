//! The threads HTTP connections are served on: one single-threaded tokio runtime each, one per
//! core by default (`--http-threads`).
//!
//! The accept loop hands each new connection to the next thread in turn, and the connection
//! stays there until it closes: its socket's readiness, the request's parsing, the ingest and the
//! response all happen on that thread. On the shared multi-threaded runtime a request woke one
//! worker, which then woke another to steal its queue, and a connection moved between cores from
//! request to request; at tens of thousands of small writes a second that cost more CPU than
//! storing them (BENCHMARKS.md, "What changed the `/write` figure this time"). Taking turns keeps
//! the threads evenly loaded even with few connections (a kernel-balanced `SO_REUSEPORT` can put
//! 3 of 4 connections on one thread).
//!
//! Slow work still leaves the thread: rendering, large bodies and imports go to the blocking
//! pool, as they did before.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// The connection threads, started by [`Workers::start`] and joined by [`Workers::stop`].
#[derive(Debug)]
pub struct Workers {
    runtimes: Vec<Handle>,
    threads: Mutex<Vec<JoinHandle<()>>>,
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
                    Workers { runtimes, threads: Mutex::new(threads), next: AtomicUsize::new(0), stop }.stop();
                    return Err(e);
                }
            }
        }
        Ok(Workers { runtimes, threads: Mutex::new(threads), next: AtomicUsize::new(0), stop })
    }

    /// How many threads serve connections.
    pub fn threads(&self) -> usize {
        self.runtimes.len()
    }

    /// The runtime whose turn it is to take a connection.
    pub fn next(&self) -> &Handle {
        &self.runtimes[self.next.fetch_add(1, Ordering::Relaxed) % self.runtimes.len()]
    }

    /// Stop every thread and wait for it. Tasks still on a runtime are dropped: call this once
    /// the connections have ended.
    pub fn stop(&self) {
        self.stop.cancel();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("an HTTP connection thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_each_thread_in_turn_and_run_there() {
        let workers = Workers::start(3).expect("threads start");
        assert_eq!(workers.threads(), 3);
        let names: Vec<String> = (0..6)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel();
                workers
                    .next()
                    .spawn(async move { tx.send(std::thread::current().name().unwrap_or_default().to_string()).expect("the test waits") });
                rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the task ran")
            })
            .collect();
        assert_eq!(names, ["stackd-http-0", "stackd-http-1", "stackd-http-2", "stackd-http-0", "stackd-http-1", "stackd-http-2"]);
        workers.stop();
    }

    #[test]
    fn zero_threads_means_one() {
        let workers = Workers::start(0).expect("a thread starts");
        assert_eq!(workers.threads(), 1);
        workers.stop();
    }
}
