//! Scale-out (docs/scale-out.md): nodes that share object storage.
//!
//! - [`objects`]: the object store (S3 over its REST API, signed by [`sigv4`], or a directory);
//! - [`keys`]: what is stored under which name, sorted so that one listing after a number shows
//!   what is new;
//! - [`segment`]: the encodings (a segment per node and interval, packs of segments);
//! - [`uploader`]: this node's outbox up as segments;
//! - [`importer`]: the other nodes' segments and packs into this node's store;
//! - [`compactor`]: packs, deletion of their sources, retention;
//! - [`run`]: the round that does all of it every `--segment-interval`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::Store;

pub mod compactor;
pub mod importer;
pub mod keys;
pub mod objects;
pub mod segment;
pub mod sigv4;
pub mod uploader;

/// The note that keeps the id a data dir's profiles were shared under.
const NODE_NOTE: &str = "cluster:node";

/// This node's id. A data dir keeps the id it was first shared under: without `--node-id` that
/// one, and a different `--node-id` is refused. Under another id this node would import its own
/// old segments as another node's, and count its own profiles twice. The first time it is
/// `--node-id`, or the host name.
pub fn node_id(store: &crate::store::Store, given: Option<&str>) -> anyhow::Result<String> {
    let kept = store.notes(NODE_NOTE).into_iter().find(|(k, _)| k == NODE_NOTE).map(|(_, v)| String::from_utf8_lossy(&v).into_owned());
    let id = match (kept, given) {
        (Some(kept), Some(given)) if kept != given => anyhow::bail!(
            "this data dir holds the profiles of node {kept:?}, not {given:?}: start it with --node-id {kept} (or without --node-id), or give node {given:?} an empty data dir; under another id this node would count its own profiles twice"
        ),
        (Some(kept), _) => kept,
        (None, Some(given)) => given.to_string(),
        (None, None) => {
            let host = nix::unistd::gethostname().map_err(|e| anyhow::anyhow!("cannot read the host name for the node id ({e}); give --node-id"))?;
            crate::config::parse_node_id(&host.to_string_lossy()).map_err(|e| anyhow::anyhow!("the host name does not make a node id: {e}; give --node-id"))?
        }
    };
    store.note(NODE_NOTE, id.as_bytes().to_vec());
    Ok(id)
}

/// How this node's sharing stands, for `GET /health` (`--object-store`).
#[derive(Debug, Default)]
pub struct Status {
    /// Flushes whose counts are in no segment yet.
    pub backlog: AtomicU64,
    /// When a segment last went up, and when the other nodes' were last read (Unix ms; 0: not
    /// yet).
    pub last_upload_ms: AtomicI64,
    pub last_import_ms: AtomicI64,
    /// The last failure to reach the object store, while it lasts (cleared by a success).
    pub error: Mutex<Option<String>>,
    /// Where, without credentials.
    pub store: String,
    pub node: String,
}

impl Status {
    pub fn new(store: String, node: String) -> Status {
        Status { store, node, ..Status::default() }
    }

    /// `/health`'s `object_store` member; `warn` while the object store cannot be reached.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let error = self.error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ms = |a: &AtomicI64| Some(a.load(Ordering::Relaxed)).filter(|t| *t > 0);
        (
            error.is_none(),
            serde_json::json!({
                "store": self.store,
                "node": self.node,
                "backlog": self.backlog.load(Ordering::Relaxed),
                "last_upload_ms": ms(&self.last_upload_ms),
                "last_import_ms": ms(&self.last_import_ms),
                "error": error,
            }),
        )
    }
}

/// Compaction runs every this many rounds.
const COMPACT_EVERY: u64 = 5;

/// How a node shares: its id, and the flags of docs/scale-out.md.
#[derive(Clone, Debug)]
pub struct Sharing {
    pub node: String,
    pub interval: Duration,
    pub pack_segments: u64,
    /// `--retention` plus `--max-future`: no count of an object written longer ago is kept.
    pub keep: Duration,
}

impl Sharing {
    pub fn compaction(&self) -> compactor::Settings {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        compactor::Settings {
            pack_segments: self.pack_segments,
            grace_ms: ms(self.interval * 5),
            lease_ms: ms((self.interval * 10).max(Duration::from_secs(30))),
            keep_ms: Some(ms(self.keep)),
        }
    }
}

/// Every `--segment-interval` until `shutdown`, one round: this node's outbox up as segments,
/// one after another, then the other nodes' new segments in, and every few rounds a compaction
/// pass. A failure (the object store away) is kept for `/health` until a round goes through,
/// and logged once a minute at most. What the last flushes add after the last round stays in
/// the outbox, on disk, and goes up when the node starts again.
pub async fn run(
    store: Arc<Store>,
    objects: objects::Objects,
    sharing: Sharing,
    metrics: Metrics,
    status: Arc<Status>,
    shutdown: CancellationToken,
) {
    let node = sharing.node.clone();
    let mut imported = importer::Imported::load(&store);
    let mut rounds = 0u64;
    let mut tick = tokio::time::interval(sharing.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Numbering first: no upload before this data dir knows where its numbers start.
        let numbered = match imported.own {
            Some(_) => Ok(()),
            None => uploader::number(&store, &objects, &node).await.map(|n| imported.own = Some(n)),
        };
        let uploads = async {
            numbered?;
            while uploader::upload_once(&store, &objects, &node, &metrics).await? {
                status.last_upload_ms.store(crate::now_ms(), Ordering::Relaxed);
            }
            anyhow::Ok(())
        }
        .await;
        let imports = importer::import_once(&store, &objects, &node, &mut imported, &metrics).await;
        match &imports {
            Ok(_) => status.last_import_ms.store(crate::now_ms(), Ordering::Relaxed),
            Err(_) => metrics.segments.with_label_values(&["import_failed"]).inc(),
        }
        rounds += 1;
        let compaction = match rounds % COMPACT_EVERY {
            0 => compactor::compact_once(&objects, &node, sharing.compaction(), crate::now_ms(), &metrics).await.map(|_| ()),
            _ => Ok(()),
        };
        if compaction.is_err() {
            metrics.compaction.with_label_values(&["failed"]).inc();
        }
        let error = uploads.err().or(imports.err()).or(compaction.err());
        if let Some(e) = &error {
            if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                tracing::warn!(error = %e, store = %objects.describe(), "cannot reach the object store: this node's segments stay in its outbox, it answers from what it has, and it tries again");
                warned = Some(Instant::now());
            }
        }
        *status.error.lock().unwrap_or_else(|e| e.into_inner()) = error.map(|e| format!("{e:#}"));
        if let Ok(b) = store.outbox_backlog() {
            metrics.outbox_backlog.set(i64::try_from(b).unwrap_or(i64::MAX));
            status.backlog.store(b, Ordering::Relaxed);
        }
    }
}
