//! The flush loop: memory is written to the store every `--flush-interval`, and at once when a
//! writer waits for durability (`--sync-writes`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::now_ms;
use crate::store::Store;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Asks the flush loop for a flush and waits until it is durable (`--sync-writes`).
#[derive(Clone, Debug)]
pub struct Flusher {
    requests: mpsc::UnboundedSender<Waiter>,
}

/// The flush loop's end of a [`Flusher`].
pub type FlushRequests = mpsc::UnboundedReceiver<Waiter>;

impl Flusher {
    pub fn new() -> (Flusher, FlushRequests) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Flusher { requests: tx }, rx)
    }

    /// Wait for a flush that starts after this call. Concurrent callers share one commit.
    pub async fn sync(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(tx).map_err(|_| "stackd is shutting down".to_string())?;
        rx.await.map_err(|_| "stackd is shutting down".to_string())?
    }
}

/// Flush every `interval`, and at once when a writer waits for durability; every waiter that
/// arrived before a flush started is answered by that flush. Before each flush, engine series
/// older than `series_ttl` (`--gauge-ttl`) are forgotten, in memory and on disk.
pub async fn flush_loop(
    store: Arc<Store>,
    metrics: Metrics,
    interval: Duration,
    series_ttl: Duration,
    mut requests: FlushRequests,
    token: CancellationToken,
) {
    let ttl_ms = i64::try_from(series_ttl.as_millis()).unwrap_or(i64::MAX);
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
        let store = Arc::clone(&store);
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            store.expire_series(now.saturating_sub(ttl_ms));
            store.flush(now)
        })
        .await;
        metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        let result = match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            metrics.flush_failures.inc();
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
